//! What the store keeps and answers with, apart from events: a row per task
//! with the columns people ask about, the running totals, and the queries.
//! These are the store's own formats, versioned with its schema, not the
//! engine's in-memory task.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::engine::TaskState;
use crate::engine::cost::CostTotal;
use crate::engine::event::Event;
use crate::engine::task::{Hold, Task};

/// A task's place in submission order, from 1; the store's key for it.
pub type TaskNo = i64;

/// One task as a row: what `list`, `summary`, `review` and the dashboard's
/// table show, kept up to date in the same transaction as its events.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TaskRow {
    pub ord: TaskNo,
    pub id: String,
    pub state: TaskState,
    /// The phase to show as current (`Task::current_phase`).
    pub phase: Option<String>,
    /// Where `phase` stands in the pipeline, for sorting by phase.
    #[serde(skip)]
    pub phase_pos: Option<u32>,
    /// The agent and model of the latest attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub phases_done: u32,
    pub phases_total: u32,
    pub attempts: u32,
    pub tokens: u64,
    pub cost_usd: f64,
    pub cost_unknown: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub finish_reason: Option<String>,
    /// Open reviews and blockers, oldest first.
    pub holds: Vec<Hold>,
    /// Seq of the last event applied.
    pub seq: u64,
}

impl TaskRow {
    pub fn of(task: &Task, ord: TaskNo) -> TaskRow {
        let cost = task.cost();
        TaskRow {
            ord,
            id: task.id.clone(),
            state: task.state,
            phase: task.current_phase().map(str::to_string),
            phase_pos: task
                .current_phase()
                .and_then(|p| task.phase_index(p))
                .map(|i| i as u32),
            agent: latest(task).map(|a| a.agent.clone()),
            model: latest(task).and_then(|a| a.model.clone()),
            phases_done: task.phases_settled() as u32,
            phases_total: task.phases.len() as u32,
            attempts: task.attempts() as u32,
            tokens: task.tokens(),
            cost_usd: cost.usd,
            cost_unknown: cost.unknown,
            created_at: task.created_at,
            updated_at: task.updated_at,
            finished_at: task.finished_at,
            finish_reason: task.finish_reason.clone(),
            holds: task.holds.clone(),
            seq: task.seq,
        }
    }

    pub fn cost(&self) -> CostTotal {
        CostTotal {
            usd: self.cost_usd,
            unknown: self.cost_unknown,
        }
    }

    /// The oldest open hold: since when, and why.
    pub fn waiting(&self) -> Option<&Hold> {
        self.holds.first()
    }
}

/// The task's attempt that started last.
fn latest(task: &Task) -> Option<&crate::engine::task::AttemptRecord> {
    task.phases
        .iter()
        .flat_map(|p| &p.attempts)
        .max_by_key(|a| a.started_at)
}

/// A task's row before and after a batch; `old` is `None` for a new task.
#[derive(Debug, Clone, PartialEq)]
pub struct RowChange {
    pub old: Option<TaskRow>,
    pub new: TaskRow,
}

/// One append: events (each with its task's `TaskNo`, `None` for run-level
/// events) and the rows they changed, committed together.
#[derive(Debug, Clone, Default)]
pub struct Batch {
    pub events: Vec<(Option<TaskNo>, Event)>,
    pub rows: Vec<RowChange>,
    /// Tasks the engine put down with this batch (finished, or waiting for
    /// a person with nothing under way): a fleet's store lets go of their
    /// leases once the batch is committed.
    pub released: Vec<TaskNo>,
    /// What the attempts that ended in this batch had reserved of a fleet's
    /// run budget: given back in the same commit as their spend.
    pub unreserved: Reserved,
}

/// Dollars and tokens reserved of a run's budget.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Reserved {
    pub usd: f64,
    pub tokens: u64,
}

impl Reserved {
    pub fn is_zero(&self) -> bool {
        self.usd == 0.0 && self.tokens == 0
    }
    pub fn add(&mut self, other: Reserved) {
        self.usd += other.usd;
        self.tokens = self.tokens.saturating_add(other.tokens);
    }
}

impl Batch {
    /// Checks that the batch's events come after `last` (the seq of the
    /// last event queued), in increasing order, and moves `last` past them;
    /// `last` is left as it was when they do not.
    pub(crate) fn follow(&self, last: &mut u64) -> Result<(), super::StoreError> {
        let mut prev = *last;
        for (_, e) in &self.events {
            if e.seq <= prev {
                return Err(super::StoreError::OutOfOrder {
                    seq: e.seq,
                    after: prev,
                });
            }
            prev = e.seq;
        }
        *last = prev;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.rows.is_empty()
            && self.released.is_empty()
            && self.unreserved.is_zero()
    }
}

/// What the run has done, per phase.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PhaseTotals {
    pub phase: String,
    pub attempts: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub tokens: u64,
    pub cost_usd: f64,
    pub cost_unknown: u64,
    pub duration_ms: u64,
}

/// The run's running totals, kept in the store and changed in the same
/// transaction as the events and rows that change them; never recounted.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub tasks: u64,
    /// Tasks per state, in `TaskState::ALL` order.
    pub states: [u64; 8],
    pub attempts: u64,
    pub tokens: u64,
    /// Known dollars, in nano-dollars so that sums are exact.
    pub cost_nano: i64,
    pub cost_unknown: u64,
    /// Open reviews and blockers.
    pub holds: u64,
    pub first_submitted_at: Option<Timestamp>,
    pub last_change_at: Option<Timestamp>,
    /// In pipeline order of first appearance.
    pub phases: Vec<PhaseTotals>,
}

pub(crate) fn nano(usd: f64) -> i64 {
    (usd * 1e9).round() as i64
}

fn state_index(s: TaskState) -> usize {
    TaskState::ALL.iter().position(|x| *x == s).unwrap_or(0)
}

impl Totals {
    pub fn count(&self, state: TaskState) -> u64 {
        self.states[state_index(state)]
    }

    pub fn cost(&self) -> CostTotal {
        CostTotal {
            usd: self.cost_nano as f64 / 1e9,
            unknown: u32::try_from(self.cost_unknown).unwrap_or(u32::MAX),
        }
    }

    /// Moves a task's figures from its old row to its new one.
    pub fn apply_row(&mut self, change: &RowChange) {
        let new = &change.new;
        match &change.old {
            Some(old) => {
                let s = &mut self.states[state_index(old.state)];
                *s = s.saturating_sub(1);
                self.attempts = self.attempts.saturating_sub(old.attempts as u64);
                self.tokens = self.tokens.saturating_sub(old.tokens);
                self.cost_nano = self.cost_nano.saturating_sub(nano(old.cost_usd));
                self.cost_unknown = self.cost_unknown.saturating_sub(old.cost_unknown as u64);
                self.holds = self.holds.saturating_sub(old.holds.len() as u64);
            }
            None => {
                self.tasks += 1;
                self.first_submitted_at = Some(
                    self.first_submitted_at
                        .map_or(new.created_at, |f| f.min(new.created_at)),
                );
            }
        }
        self.states[state_index(new.state)] += 1;
        // Saturating: a folder may hold figures from before replies were
        // checked, and a sum must never wrap to a small one.
        self.attempts = self.attempts.saturating_add(new.attempts as u64);
        self.tokens = self.tokens.saturating_add(new.tokens);
        self.cost_nano = self.cost_nano.saturating_add(nano(new.cost_usd));
        self.cost_unknown = self.cost_unknown.saturating_add(new.cost_unknown as u64);
        self.holds += new.holds.len() as u64;
        self.last_change_at = Some(
            self.last_change_at
                .map_or(new.updated_at, |l| l.max(new.updated_at)),
        );
    }

    /// Counts a finished attempt in its phase's figures.
    pub fn apply_event(&mut self, event: &Event) {
        use crate::engine::event::{AttemptOutcome, EventKind};
        let EventKind::AttemptFinished {
            phase,
            outcome,
            usage,
            cost_usd,
            duration_ms,
            ..
        } = &event.kind
        else {
            return;
        };
        if matches!(
            outcome,
            AttemptOutcome::Interrupted | AttemptOutcome::Cancelled
        ) {
            return;
        }
        let i = match self.phases.iter().position(|p| p.phase == *phase) {
            Some(i) => i,
            None => {
                self.phases.push(PhaseTotals {
                    phase: phase.clone(),
                    ..PhaseTotals::default()
                });
                self.phases.len() - 1
            }
        };
        let p = &mut self.phases[i];
        p.attempts += 1;
        match outcome {
            AttemptOutcome::Failed { .. } => p.failed += 1,
            _ => p.succeeded += 1,
        }
        p.tokens = p
            .tokens
            .saturating_add(usage.as_ref().map_or(0, |u| u.tokens()));
        if usage.is_some() || cost_usd.is_some() {
            match cost_usd {
                Some(c) => p.cost_usd = crate::engine::cost::add_usd(p.cost_usd, *c),
                None => p.cost_unknown = p.cost_unknown.saturating_add(1),
            }
        }
        p.duration_ms = p.duration_ms.saturating_add(*duration_ms);
    }
}

/// How `list` orders tasks. Each has a natural direction (the one `list`
/// uses); [`ListQuery::reverse`] turns the whole order round. Ties run the
/// way the key runs: submission order when it rises, the reverse when it
/// falls (so that an index gives any order in one scan).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Sort {
    /// Submission order.
    #[default]
    Submitted,
    /// Most recently changed first.
    Updated,
    /// Most tokens first.
    Tokens,
    /// Most dollars first.
    Cost,
    /// By id.
    Id,
    /// Needing a person first, then trouble, then work under way, then done
    /// ([`TaskState::attention`]).
    State,
    /// By current phase in pipeline order; tasks with none last.
    Phase,
    /// Fewest phases settled first.
    Progress,
    /// Most attempts first.
    Attempts,
    /// Longest first: to the finish, or to now for tasks under way.
    Elapsed,
}

impl Sort {
    pub const ALL: [Sort; 10] = [
        Sort::Submitted,
        Sort::Updated,
        Sort::Tokens,
        Sort::Cost,
        Sort::Id,
        Sort::State,
        Sort::Phase,
        Sort::Progress,
        Sort::Attempts,
        Sort::Elapsed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Sort::Submitted => "submitted",
            Sort::Updated => "updated",
            Sort::Tokens => "tokens",
            Sort::Cost => "cost",
            Sort::Id => "id",
            Sort::State => "state",
            Sort::Phase => "phase",
            Sort::Progress => "progress",
            Sort::Attempts => "attempts",
            Sort::Elapsed => "elapsed",
        }
    }

    pub fn parse(s: &str) -> Option<Sort> {
        Sort::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Which tasks `list` returns, and in what order.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ListQuery {
    pub state: Option<TaskState>,
    pub phase: Option<String>,
    /// Only tasks whose id, state or current phase contains this text,
    /// ignoring ASCII case.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub sort: Sort,
    /// The sort's other direction: the whole order reversed.
    #[serde(default)]
    pub reverse: bool,
    /// Only tasks the filter language's filter keeps (see [`crate::filter`]).
    #[serde(skip)]
    pub filter: Option<crate::filter::Filter>,
    /// Only tasks that reached a final state at or after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_since: Option<Timestamp>,
    /// Only tasks after this one in the sort order (paging by key).
    pub after: Option<String>,
    /// Skip this many rows first (paging by position, for a scrolled table).
    pub offset: u64,
    pub limit: Option<u64>,
}

/// A state folder's identity: the pipeline its tasks run with.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunMeta {
    pub pipeline: String,
    /// Phase ids in pipeline order.
    pub phases: Vec<String>,
}

/// What the engine picks up at start.
#[derive(Debug, Default)]
pub struct Recovered {
    /// Tasks that are neither final nor pending, folded, with their ords:
    /// work in flight or waiting for a person. Pending tasks stay in the
    /// store until the engine has room for them.
    pub tasks: Vec<(TaskNo, Task)>,
    /// Run-level events (pause, resume, run budget raises), in order.
    pub run_events: Vec<Event>,
    pub last_seq: u64,
    pub last_ord: TaskNo,
    pub totals: Totals,
    /// Damage found, conversions made: for the operator.
    pub warnings: Vec<String>,
}

/// Counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub events_written: u64,
    /// Commits; each one makes a whole batch durable.
    pub batches: u64,
    /// Task rows written.
    pub rows_written: u64,
}
