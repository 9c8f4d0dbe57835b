//! A task as the fold of its events. `Task::apply` is the only way a task
//! changes, in the engine, in recovery and in every view alike.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::budget::Raise;
use super::cost::{CostTotal, Usage};
use super::escalation::Escalation;
use super::event::{
    AttemptOutcome, Decision, Event, EventKind, HttpInfo, ReviewReason, RouteChoice, TaskId,
};
use super::state::{
    HoldKind, InvalidPhaseTransition, InvalidTransition, PhaseSignal, PhaseState, TaskSignal,
    TaskState, phase_transition, task_transition,
};

mod decide;
mod items;
pub use items::{ItemRecord, ItemState, ItemsRecord};

/// Trace lines kept per attempt; later ones are counted, not kept.
pub const MAX_TRACE_LINES: usize = 200;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Task {
    pub id: TaskId,
    pub input: Value,
    pub state: TaskState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    pub phases: Vec<PhaseRecord>,
    /// Open reviews and blockers, oldest first; the first decides the state.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<Hold>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub decisions: Vec<Decision>,
    /// Budget raises an operator made for this task.
    #[serde(default, skip_serializing_if = "Raise::is_none")]
    pub budget: Raise,
    /// The journal sequence number of the last event applied.
    pub seq: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRecord {
    pub id: String,
    pub state: PhaseState,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempts: Vec<AttemptRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    /// The last failure's message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Reviewer feedback for the next attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skip_reason: Option<String>,
    /// A person approved this phase: its output, or its failure.
    #[serde(default, skip_serializing_if = "is_false")]
    pub approved: bool,
    /// Attempts counted against the retry limit since the last reset.
    #[serde(default)]
    pub tries: u32,
    /// When the next attempt is due, while the phase waits to retry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_due: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    /// A `for_each` phase's items, once listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<Box<ItemsRecord>>,
    /// The output came from the shared step cache, not from an attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached: Option<CacheHit>,
    /// Rounds this phase's agent has sent the task back (reviewer loops);
    /// kept when the phase runs again.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub rounds: u32,
    /// A person's feedback granting one more round after the rounds ran out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub granted: Option<String>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Where a phase's cached output came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheHit {
    /// The phase's `cache_key` as rendered for the task.
    pub key: String,
    /// The task whose attempt made the output.
    pub from_task: TaskId,
    pub stored_at: Timestamp,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AttemptRecord {
    pub number: u32,
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The routing rule that chose `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteChoice>,
    /// The role the phase names, when `agent` was picked for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    pub started_at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feedback: Option<String>,
    /// `None` while the attempt runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<AttemptOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// The wait before the attempt after this one, when a retry was scheduled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_delay_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trace: Vec<String>,
    /// The HTTP exchange, for agents that speak HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpInfo>,
    /// The service asked for no retry before this many milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

impl AttemptRecord {
    pub fn is_open(&self) -> bool {
        self.outcome.is_none()
    }
}

/// An open review or blocker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Hold {
    pub kind: HoldKind,
    pub phase: String,
    pub since: Timestamp,
    /// Why, in words.
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<ReviewReason>,
    /// What the agent tried and how severe it says the problem is.
    #[serde(default, skip_serializing_if = "Escalation::is_empty")]
    pub escalation: Escalation,
}

impl Hold {
    /// The reason with what the agent tried and how severe it says the
    /// problem is: "high · REASON · tried: a; b".
    pub fn why(&self) -> String {
        self.escalation
            .around(&self.reason, |s| s.as_str().to_string(), str::to_string)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Task(#[from] InvalidTransition),
    #[error("phase {phase}: {source}")]
    Phase {
        phase: String,
        source: InvalidPhaseTransition,
    },
    #[error("task {task} has no phase {phase}")]
    UnknownPhase { task: TaskId, phase: String },
    #[error("task {task}: {message}")]
    Refused { task: TaskId, message: String },
    #[error("event {seq} is for task {got:?}, not {want}")]
    WrongTask {
        seq: u64,
        got: Option<TaskId>,
        want: TaskId,
    },
}

impl Task {
    /// A new task in `pending`, with every phase `pending`.
    pub fn new(id: TaskId, input: Value, phases: &[String], at: Timestamp, seq: u64) -> Task {
        Task {
            id,
            input,
            state: TaskState::Pending,
            created_at: at,
            updated_at: at,
            finished_at: None,
            finish_reason: None,
            phases: phases.iter().map(|p| PhaseRecord::new(p.clone())).collect(),
            holds: Vec::new(),
            decisions: Vec::new(),
            budget: Raise::default(),
            seq,
        }
    }

    /// A task from its `TaskSubmitted` event.
    pub fn from_submitted(ev: &Event, phases: &[String]) -> Option<Task> {
        match (&ev.kind, &ev.task) {
            (EventKind::TaskSubmitted { input }, Some(id)) => {
                Some(Task::new(id.clone(), input.clone(), phases, ev.at, ev.seq))
            }
            _ => None,
        }
    }

    pub fn phase_index(&self, id: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.id == id)
    }

    pub fn phase(&self, id: &str) -> Option<&PhaseRecord> {
        self.phases.iter().find(|p| p.id == id)
    }

    /// Tokens over every phase; saturates rather than wraps.
    pub fn tokens(&self) -> u64 {
        self.phases
            .iter()
            .map(PhaseRecord::tokens)
            .fold(0, u64::saturating_add)
    }

    pub fn cost(&self) -> CostTotal {
        let mut total = CostTotal::default();
        for p in &self.phases {
            total.merge(p.cost());
        }
        total
    }

    pub fn attempts(&self) -> usize {
        self.phases
            .iter()
            .map(|p| p.attempts.len() + p.items.as_ref().map_or(0, |i| i.attempts as usize))
            .sum()
    }

    /// The phase to show as current: running first, then held, then the last touched.
    pub fn current_phase(&self) -> Option<&str> {
        if let Some(p) = self.phases.iter().find(|p| p.state == PhaseState::Running) {
            return Some(&p.id);
        }
        if let Some(h) = self.holds.first() {
            return Some(&h.phase);
        }
        self.phases
            .iter()
            .filter(|p| p.started_at.is_some())
            .max_by_key(|p| p.started_at)
            .map(|p| p.id.as_str())
    }

    /// Phases that are done one way or another.
    pub fn phases_settled(&self) -> usize {
        self.phases
            .iter()
            .filter(|p| {
                matches!(
                    p.state,
                    PhaseState::Completed | PhaseState::Failed | PhaseState::Skipped
                )
            })
            .count()
    }

    fn refused(&self, message: impl Into<String>) -> ApplyError {
        ApplyError::Refused {
            task: self.id.clone(),
            message: message.into(),
        }
    }

    fn index(&self, phase: &str) -> Result<usize, ApplyError> {
        self.phase_index(phase)
            .ok_or_else(|| ApplyError::UnknownPhase {
                task: self.id.clone(),
                phase: phase.to_string(),
            })
    }

    fn phase_step(&mut self, idx: usize, signal: PhaseSignal) -> Result<(), ApplyError> {
        let p = &mut self.phases[idx];
        p.state = phase_transition(p.state, signal).map_err(|source| ApplyError::Phase {
            phase: p.id.clone(),
            source,
        })?;
        Ok(())
    }

    /// Checks an event against both lifecycles and applies it, or changes
    /// nothing and says why not.
    pub fn apply(&mut self, ev: &Event) -> Result<(), ApplyError> {
        if ev.task.as_deref() != Some(self.id.as_str()) {
            return Err(ApplyError::WrongTask {
                seq: ev.seq,
                got: ev.task.clone(),
                want: self.id.clone(),
            });
        }
        // Every branch checks before it changes anything, so a refused event
        // leaves the task as it was.
        self.state = self.apply_in_place(ev, Payloads::Copy)?;
        self.seq = ev.seq;
        self.updated_at = ev.at;
        Ok(())
    }

    /// Like [`Task::apply`], but an attempt's output, trace and HTTP
    /// exchange are not copied into the task: for followers that keep a
    /// task's state and figures, not its payloads. An output can be many
    /// megabytes, and many times that as a JSON tree.
    pub fn apply_light(&mut self, ev: &Event) -> Result<(), ApplyError> {
        if ev.task.as_deref() != Some(self.id.as_str()) {
            return Err(ApplyError::WrongTask {
                seq: ev.seq,
                got: ev.task.clone(),
                want: self.id.clone(),
            });
        }
        self.state = self.apply_in_place(ev, Payloads::Skip)?;
        self.seq = ev.seq;
        self.updated_at = ev.at;
        Ok(())
    }

    /// Applies the event and returns the task's next state.
    fn apply_in_place(&mut self, ev: &Event, payloads: Payloads) -> Result<TaskState, ApplyError> {
        let copy = payloads == Payloads::Copy;
        let at = ev.at;
        let to = match &ev.kind {
            EventKind::TaskSubmitted { .. } => return Err(self.refused("was already submitted")),
            kind @ (EventKind::ItemsListed { .. }
            | EventKind::ItemStarted { .. }
            | EventKind::ItemFinished { .. }
            | EventKind::ItemRetryScheduled { .. }
            | EventKind::ItemFailed { .. }
            | EventKind::ItemsSettled { .. }) => self.apply_item(kind, at, payloads)?,
            EventKind::RunPaused { .. } | EventKind::RunResumed { .. } => {
                return Err(self.refused("run events do not apply to a task"));
            }
            EventKind::BudgetRaised {
                usd,
                tokens,
                accept_unknown,
                ..
            } => {
                let to = task_transition(self.state, TaskSignal::BudgetRaised)?;
                self.budget.raise(*usd, *tokens, *accept_unknown);
                to
            }
            EventKind::PhaseStarted {
                phase,
                attempt,
                agent,
                model,
                feedback,
                route,
                role,
            } => {
                let idx = self.index(phase)?;
                let p = &self.phases[idx];
                if p.attempts.last().is_some_and(AttemptRecord::is_open) {
                    return Err(
                        self.refused(format!("phase {phase} already has an attempt running"))
                    );
                }
                if *attempt as usize != p.attempts.len() + 1 {
                    return Err(self.refused(format!(
                        "phase {phase} attempt {attempt} out of order (had {})",
                        p.attempts.len()
                    )));
                }
                let to = task_transition(self.state, TaskSignal::PhaseStarted)?;
                self.phase_step(idx, PhaseSignal::Start)?;
                let p = &mut self.phases[idx];
                p.tries += 1;
                p.retry_due = None;
                p.cached = None;
                p.started_at.get_or_insert(at);
                p.finished_at = None;
                // Most phases run once or twice: room for this attempt only,
                // not the four a growing Vec would make (a run of many
                // thousand tasks would carry the spare room in every fold).
                p.attempts.reserve_exact(1);
                p.attempts.push(AttemptRecord {
                    number: *attempt,
                    agent: agent.clone(),
                    model: model.clone(),
                    route: route.clone(),
                    role: role.clone(),
                    started_at: at,
                    feedback: feedback.clone(),
                    outcome: None,
                    finished_at: None,
                    duration_ms: None,
                    usage: None,
                    cost_usd: None,
                    retry_delay_ms: None,
                    trace: Vec::new(),
                    http: None,
                    retry_after_ms: None,
                });
                to
            }
            EventKind::AttemptFinished {
                phase,
                attempt,
                duration_ms,
                outcome,
                usage,
                cost_usd,
                output,
                trace,
                http,
                retry_after_ms,
            } => {
                let idx = self.index(phase)?;
                let open = self.phases[idx]
                    .attempts
                    .last()
                    .filter(|a| a.is_open())
                    .map(|a| a.number);
                if open != Some(*attempt) {
                    return Err(
                        self.refused(format!("phase {phase} has no running attempt {attempt}"))
                    );
                }
                let (phase_signal, task_signal) = match outcome {
                    AttemptOutcome::Succeeded
                    | AttemptOutcome::ReviewRequested { .. }
                    | AttemptOutcome::SentBack { .. } => {
                        (PhaseSignal::Succeed, TaskSignal::AttemptFinished)
                    }
                    AttemptOutcome::Failed { .. } => {
                        (PhaseSignal::AttemptFailed, TaskSignal::AttemptFinished)
                    }
                    AttemptOutcome::Blocked { .. } => {
                        (PhaseSignal::Block, TaskSignal::AttemptFinished)
                    }
                    AttemptOutcome::Interrupted => {
                        (PhaseSignal::Interrupt, TaskSignal::Interrupted)
                    }
                    AttemptOutcome::Cancelled => {
                        return Err(self.refused("cancelled attempts end with the task"));
                    }
                };
                let to = task_transition(self.state, task_signal)?;
                self.phase_step(idx, phase_signal)?;
                let p = &mut self.phases[idx];
                match outcome {
                    AttemptOutcome::Succeeded
                    | AttemptOutcome::ReviewRequested { .. }
                    | AttemptOutcome::SentBack { .. } => {
                        p.output = if copy { output.clone() } else { None };
                        p.error = None;
                        p.feedback = None;
                        p.finished_at = Some(at);
                    }
                    AttemptOutcome::Failed { message, .. } => {
                        p.error = Some(message.clone());
                        // The phase shows what its latest attempt gave:
                        // an output that broke its contract, or none, never
                        // one left from before the phase was sent back.
                        if copy {
                            p.output = output.clone();
                        }
                    }
                    AttemptOutcome::Interrupted => p.tries = p.tries.saturating_sub(1),
                    _ => {}
                }
                let a = p.attempts.last_mut().expect("open attempt checked above");
                a.outcome = Some(outcome.clone());
                a.finished_at = Some(at);
                a.duration_ms = Some(*duration_ms);
                a.usage = usage.clone();
                a.cost_usd = *cost_usd;
                if copy {
                    a.trace = trace.clone();
                    a.http = http.clone();
                }
                a.retry_after_ms = *retry_after_ms;
                to
            }
            EventKind::RetryScheduled {
                phase,
                attempt,
                delay_ms,
                due,
            } => {
                let idx = self.index(phase)?;
                let to = task_transition(self.state, TaskSignal::RetryScheduled)?;
                let p = &mut self.phases[idx];
                if p.state != PhaseState::Running
                    || p.attempts.last().is_none_or(AttemptRecord::is_open)
                {
                    return Err(
                        self.refused(format!("phase {phase} has no failed attempt to retry"))
                    );
                }
                if *attempt as usize != p.attempts.len() + 1 {
                    return Err(self.refused(format!(
                        "phase {phase} retry numbered {attempt} out of order"
                    )));
                }
                p.retry_due = Some(*due);
                if let Some(a) = p.attempts.last_mut() {
                    a.retry_delay_ms = Some(*delay_ms);
                }
                to
            }
            EventKind::PhaseFailed { phase, error } => {
                let idx = self.index(phase)?;
                let to = task_transition(self.state, TaskSignal::PhaseFailed)?;
                if self.phases[idx]
                    .attempts
                    .last()
                    .is_some_and(AttemptRecord::is_open)
                {
                    return Err(self.refused(format!("phase {phase} still has an attempt running")));
                }
                self.phase_step(idx, PhaseSignal::Fail)?;
                let p = &mut self.phases[idx];
                p.error = Some(error.clone());
                p.retry_due = None;
                p.finished_at = Some(at);
                to
            }
            EventKind::PhaseSkipped { phase, reason } => {
                let idx = self.index(phase)?;
                let to = task_transition(self.state, TaskSignal::PhaseSkipped)?;
                self.phase_step(idx, PhaseSignal::Skip)?;
                let p = &mut self.phases[idx];
                p.skip_reason = Some(reason.clone());
                p.finished_at = Some(at);
                to
            }
            EventKind::PhaseCached {
                phase,
                key,
                output,
                from_task,
                stored_at,
            } => {
                let idx = self.index(phase)?;
                // Pending, or between attempts: a retry may find the output
                // another task's attempt stored meanwhile.
                let p = &self.phases[idx];
                let between = p.state == PhaseState::Running
                    && !p.attempts.last().is_some_and(AttemptRecord::is_open);
                if p.state != PhaseState::Pending && !between {
                    return Err(self.refused(format!(
                        "phase {phase} is {}{}; only a phase that is not running takes a cached output",
                        p.state.as_str(),
                        if p.state == PhaseState::Running { " an attempt" } else { "" }
                    )));
                }
                let to = task_transition(self.state, TaskSignal::PhaseStarted)?;
                self.phase_step(idx, PhaseSignal::Start)?;
                self.phase_step(idx, PhaseSignal::Succeed)?;
                let p = &mut self.phases[idx];
                p.output = if copy { Some(output.clone()) } else { None };
                p.error = None;
                p.feedback = None;
                p.retry_due = None;
                p.started_at.get_or_insert(at);
                p.finished_at = Some(at);
                p.cached = Some(CacheHit {
                    key: key.clone(),
                    from_task: from_task.clone(),
                    stored_at: *stored_at,
                });
                to
            }
            EventKind::ReviewRequested { phase, reason } => self.open_hold(
                HoldKind::Review,
                phase,
                reason.describe(),
                Some(reason.clone()),
                at,
            )?,
            EventKind::TaskBlocked {
                phase,
                reason,
                escalation,
            } => {
                let to = self.open_hold(HoldKind::Blocked, phase, reason.clone(), None, at)?;
                if let Some(h) = self.holds.last_mut() {
                    h.escalation = escalation.clone();
                }
                to
            }
            EventKind::LoopRound {
                phase,
                to,
                feedback,
                round,
                reset,
                granted,
            } => self.loop_round(phase, to, feedback, *round, reset, *granted, at)?,
            EventKind::DecisionRecorded { decision } => {
                // Decisions touch several parts of a task; they are rare, so
                // they work on a copy and replace the task only on success.
                let mut next = self.clone();
                let (signal, phase) = next.decide(decision, at)?;
                let to = task_transition(next.state, signal)?;
                let mut decision = decision.clone();
                decision.phase = decision.phase.or(phase);
                next.decisions.push(decision);
                *self = next;
                to
            }
            EventKind::TaskFinished { state, reason } => {
                let signal = match state {
                    TaskState::Completed => TaskSignal::Completed,
                    TaskState::Failed => TaskSignal::Failed,
                    other => return Err(self.refused(format!("a task cannot finish as {other}"))),
                };
                let to = task_transition(self.state, signal)?;
                if *state == TaskState::Completed
                    && let Some(p) = self
                        .phases
                        .iter()
                        .find(|p| matches!(p.state, PhaseState::Pending | PhaseState::Running))
                {
                    return Err(self.refused(format!(
                        "cannot complete with phase {} still {}",
                        p.id, p.state
                    )));
                }
                // A phase failed the task while others ran beside it: the
                // engine stops them, and their attempts end with the task.
                self.stop_running_phases(at)?;
                self.finish_reason = reason.clone();
                self.finished_at = Some(at);
                to
            }
        };
        Ok(to)
    }

    /// Ends every attempt still open as cancelled and puts its phase back
    /// to pending (so a retry runs it again), and stops the items under way:
    /// for a task that ends while phases run, cancelled or failed by one of
    /// them.
    fn stop_running_phases(&mut self, at: Timestamp) -> Result<(), ApplyError> {
        // Checked first, so that a refusal leaves the task as it was.
        for p in &self.phases {
            if p.state == PhaseState::Running {
                phase_transition(p.state, PhaseSignal::Interrupt).map_err(|source| {
                    ApplyError::Phase {
                        phase: p.id.clone(),
                        source,
                    }
                })?;
            }
        }
        for p in &mut self.phases {
            if let Some(a) = p.attempts.last_mut().filter(|a| a.is_open()) {
                a.outcome = Some(AttemptOutcome::Cancelled);
                a.finished_at = Some(at);
            }
            if p.state == PhaseState::Running
                && let Ok(next) = phase_transition(p.state, PhaseSignal::Interrupt)
            {
                p.state = next;
                p.retry_due = None;
            }
            if let Some(items) = p.items.as_deref_mut() {
                items.stop_running();
            }
        }
        Ok(())
    }

    fn open_hold(
        &mut self,
        kind: HoldKind,
        phase: &str,
        reason: String,
        review: Option<ReviewReason>,
        at: Timestamp,
    ) -> Result<TaskState, ApplyError> {
        let idx = self.index(phase)?;
        if self.holds.iter().any(|h| h.phase == phase) {
            return Err(self.refused(format!("phase {phase} is already held")));
        }
        let p = &self.phases[idx];
        let budget = matches!(review, Some(ReviewReason::Budget { .. }));
        let fits = match kind {
            // Before an attempt starts: a fresh phase, or one between attempts.
            HoldKind::Review if budget => {
                p.state == PhaseState::Pending
                    || (p.state == PhaseState::Running && p.running_attempt().is_none())
            }
            HoldKind::Review => matches!(p.state, PhaseState::Completed | PhaseState::Failed),
            HoldKind::Blocked => p.state == PhaseState::Pending && !p.attempts.is_empty(),
        };
        if !fits {
            return Err(self.refused(format!(
                "phase {phase} in state {} cannot be held for {}",
                p.state,
                if budget { "its budget" } else { "review" }
            )));
        }
        let signal = if budget {
            TaskSignal::BudgetHold
        } else {
            TaskSignal::Hold(kind)
        };
        let to = task_transition(self.state, signal)?;
        let escalation = match &review {
            Some(ReviewReason::AgentAsked { escalation, .. }) => escalation.clone(),
            _ => Escalation::default(),
        };
        self.holds.push(Hold {
            kind,
            phase: phase.to_string(),
            since: at,
            reason,
            review,
            escalation,
        });
        Ok(to)
    }

    /// A reviewer's send-back carried out: the phases in `reset` pending
    /// again, `to` with the feedback, and the round counted on the reviewer.
    #[allow(clippy::too_many_arguments)]
    fn loop_round(
        &mut self,
        phase: &str,
        to: &str,
        feedback: &str,
        round: u32,
        reset: &[String],
        granted: bool,
        at: Timestamp,
    ) -> Result<TaskState, ApplyError> {
        let idx = self.index(phase)?;
        let state = task_transition(self.state, TaskSignal::LoopedBack)?;
        let p = &self.phases[idx];
        if p.state != PhaseState::Completed || p.sent_back().is_none() || p.approved {
            return Err(self.refused(format!("phase {phase} has no send-back to carry out")));
        }
        if granted != p.granted.is_some() || round != p.rounds.saturating_add(1) {
            return Err(self.refused(format!(
                "phase {phase}'s round {round} is out of order (it has sent back {} times)",
                p.rounds
            )));
        }
        self.index(to)?;
        let mut next = self.clone();
        for id in reset {
            let i = next.index(id)?;
            next.phase_step(i, PhaseSignal::Reset)?;
            next.phases[i].reset((id == to).then(|| feedback.to_string()));
            // A fan-out runs every item again: its list may have changed
            // with the phases before it, and the feedback is for all.
            next.phases[i].items = None;
            next.phases[i].output = None;
        }
        let p = &mut next.phases[idx];
        p.rounds = round;
        p.granted = None;
        next.updated_at = at;
        *self = next;
        Ok(state)
    }
}

impl Hold {
    /// Held because a budget was reached.
    pub fn is_budget(&self) -> bool {
        matches!(self.review, Some(ReviewReason::Budget { .. }))
    }
}

impl PhaseRecord {
    pub fn new(id: String) -> PhaseRecord {
        PhaseRecord {
            id,
            state: PhaseState::Pending,
            attempts: Vec::new(),
            output: None,
            error: None,
            feedback: None,
            skip_reason: None,
            approved: false,
            tries: 0,
            retry_due: None,
            started_at: None,
            finished_at: None,
            items: None,
            cached: None,
            rounds: 0,
            granted: None,
        }
    }

    /// Back to a fresh series of attempts, keeping the history. A
    /// `for_each` phase keeps its finished items and runs the others again.
    fn reset(&mut self, feedback: Option<String>) {
        if let Some(items) = self.items.as_deref_mut() {
            items.reopen(self.output.take());
        }
        self.cached = None;
        self.feedback = feedback;
        self.approved = false;
        self.tries = 0;
        self.retry_due = None;
        self.finished_at = None;
        self.error = None;
    }

    /// Tokens over every attempt, items' included; saturates rather than wraps.
    pub fn tokens(&self) -> u64 {
        self.attempts
            .iter()
            .filter_map(|a| a.usage.as_ref())
            .map(Usage::tokens)
            .fold(
                self.items.as_ref().map_or(0, |i| i.tokens),
                u64::saturating_add,
            )
    }

    pub fn cost(&self) -> CostTotal {
        let mut total = self
            .items
            .as_ref()
            .map_or_else(CostTotal::default, |i| i.cost);
        for a in self
            .attempts
            .iter()
            .filter(|a| a.usage.is_some() || a.cost_usd.is_some())
        {
            total.add(a.cost_usd);
        }
        total
    }

    pub fn running_attempt(&self) -> Option<&AttemptRecord> {
        self.attempts.last().filter(|a| a.is_open())
    }

    /// Where and with what the last attempt sent the task back, if it did.
    pub fn sent_back(&self) -> Option<(&str, &str)> {
        if self.cached.is_some() {
            // Served from the cache since: that verdict is over.
            return None;
        }
        match self.attempts.last().and_then(|a| a.outcome.as_ref()) {
            Some(AttemptOutcome::SentBack { to, feedback }) => Some((to, feedback)),
            _ => None,
        }
    }

    /// The last attempt asked for a person to look at its output.
    pub fn agent_asked_review(&self) -> bool {
        matches!(
            self.attempts.last().and_then(|a| a.outcome.as_ref()),
            Some(AttemptOutcome::ReviewRequested { .. })
        )
    }
}

/// Whether applying an event copies an attempt's payloads into the task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Payloads {
    Copy,
    Skip,
}

#[cfg(test)]
mod tests;
