//! The writer's fold of [`RunStats`]: what each event adds, with what it
//! must remember in between (the agent and model of each attempt under
//! way, which only its start names) and which rows changed since the last
//! commit.
//!
//! What it remembers is bounded by the attempts in flight: an attempt's
//! entry goes when it ends, or when its task ends (cancelled, failed by a
//! decision, finished). On reopening,
//! the entries come back from the tasks the engine recovers (every open
//! attempt is in one of them).

use std::collections::{BTreeSet, HashMap};

use super::model::TaskNo;
use super::stats::{PhaseEnds, RunStats};
use crate::engine::cost::Usage;
use crate::engine::event::{Action, AttemptOutcome, EventKind};
use crate::engine::state::PhaseState;
use crate::engine::task::Task;

/// An attempt under way, as its start named it.
#[derive(Debug, Clone)]
struct Open {
    phase: String,
    agent: String,
    model: Option<String>,
}

#[derive(Debug, Default, Clone)]
pub(crate) struct StatsFold {
    stats: RunStats,
    /// Attempts under way, per task.
    open: HashMap<TaskNo, Vec<Open>>,
    /// Rows of `stats.attempts` changed since `take_changes`.
    changed_rows: BTreeSet<usize>,
    /// Rows of `stats.ends` changed since `take_changes`.
    changed_ends: BTreeSet<usize>,
}

/// The model an attempt is counted under: the one it started with, else the
/// one its usage names, else none.
fn model_of<'a>(started: Option<&'a str>, usage: Option<&'a Usage>) -> &'a str {
    started
        .or_else(|| usage.and_then(|u| u.model.as_deref()))
        .unwrap_or("")
}

impl StatsFold {
    /// Carries on from stored figures, with the attempts under way in
    /// `tasks` (the tasks the store gives back to the engine).
    pub(crate) fn new(stats: RunStats, tasks: &[(TaskNo, Task)]) -> StatsFold {
        let mut fold = StatsFold {
            stats,
            ..StatsFold::default()
        };
        for (ord, task) in tasks {
            fold.hold_open(*ord, task);
        }
        fold
    }

    /// Carries on from `stats` as stored now (written meanwhile by other
    /// engines of a fleet), keeping the attempts under way.
    pub(crate) fn reset_stats(&mut self, stats: RunStats) {
        self.stats = stats;
        self.changed_rows.clear();
        self.changed_ends.clear();
    }

    pub(crate) fn stats(&self) -> &RunStats {
        &self.stats
    }

    /// Remembers the attempts under way in `task`.
    pub(crate) fn hold_open(&mut self, ord: TaskNo, task: &Task) {
        for p in &task.phases {
            if let Some(a) = p.running_attempt() {
                self.open.entry(ord).or_default().push(Open {
                    phase: p.id.clone(),
                    agent: a.agent.clone(),
                    model: a.model.clone(),
                });
            }
        }
    }

    /// Counts the attempts that ended in a task known whole (a converted
    /// folder's task) and its phases skipped or failed, and remembers the
    /// attempts under way.
    pub(crate) fn count_task(&mut self, ord: TaskNo, task: &Task) {
        for p in &task.phases {
            match p.state {
                PhaseState::Skipped => self.count_end(&p.id, |e| e.skipped += 1),
                PhaseState::Failed => self.count_end(&p.id, |e| e.failed += 1),
                _ => {}
            }
            for a in &p.attempts {
                let Some(outcome) = &a.outcome else { continue };
                let model = model_of(a.model.as_deref(), a.usage.as_ref());
                let i = self.stats.row_of(&p.id, &a.agent, model);
                self.stats.attempts[i].count(
                    outcome,
                    a.usage.as_ref(),
                    a.cost_usd,
                    a.duration_ms.unwrap_or(0),
                );
                self.changed_rows.insert(i);
            }
        }
        self.hold_open(ord, task);
    }

    fn count_end(&mut self, phase: &str, add: impl FnOnce(&mut PhaseEnds)) {
        let i = self.stats.ends_of(phase);
        add(&mut self.stats.ends[i]);
        self.changed_ends.insert(i);
    }

    /// What one event adds: an attempt's start is remembered, its end
    /// counted; a cancellation ends the task's attempts under way; a phase
    /// skipped or failed for good is counted (by a person too, when the
    /// decision names the phase).
    pub(crate) fn apply_event(&mut self, ord: Option<TaskNo>, kind: &EventKind) {
        let Some(ord) = ord else { return };
        match kind {
            EventKind::PhaseStarted {
                phase,
                agent,
                model,
                ..
            } => {
                let open = self.open.entry(ord).or_default();
                open.retain(|o| o.phase != *phase);
                open.push(Open {
                    phase: phase.clone(),
                    agent: agent.clone(),
                    model: model.clone(),
                });
            }
            EventKind::AttemptFinished {
                phase,
                outcome,
                usage,
                cost_usd,
                duration_ms,
                ..
            } => {
                let started = self.take_open(ord, phase);
                let agent = started.as_ref().map_or("", |o| o.agent.as_str());
                let model = model_of(
                    started.as_ref().and_then(|o| o.model.as_deref()),
                    usage.as_ref(),
                );
                let i = self.stats.row_of(phase, agent, model);
                self.stats.attempts[i].count(outcome, usage.as_ref(), *cost_usd, *duration_ms);
                self.changed_rows.insert(i);
            }
            // An item's attempt, counted under its phase like any attempt;
            // one found interrupted at a restart names no agent and is not.
            EventKind::ItemFinished {
                phase,
                agent,
                outcome,
                usage,
                cost_usd,
                duration_ms,
                ..
            } if !agent.is_empty() => {
                let model = model_of(None, usage.as_ref());
                let i = self.stats.row_of(phase, agent, model);
                self.stats.attempts[i].count(outcome, usage.as_ref(), *cost_usd, *duration_ms);
                self.changed_rows.insert(i);
            }
            EventKind::PhaseSkipped { phase, .. } => self.count_end(phase, |e| e.skipped += 1),
            EventKind::PhaseFailed { phase, .. } => self.count_end(phase, |e| e.failed += 1),
            EventKind::DecisionRecorded { decision } => match (&decision.action, &decision.phase) {
                (Action::Cancel, _) => {
                    for o in self.open.remove(&ord).unwrap_or_default() {
                        let model = o.model.as_deref().unwrap_or("");
                        let i = self.stats.row_of(&o.phase, &o.agent, model);
                        self.stats.attempts[i].count(&AttemptOutcome::Cancelled, None, None, 0);
                        self.changed_rows.insert(i);
                    }
                }
                (Action::ResolveSkip, Some(phase)) => self.count_end(phase, |e| e.skipped += 1),
                (Action::ResolveFail, phase) => {
                    if let Some(phase) = phase {
                        self.count_end(phase, |e| e.failed += 1);
                    }
                    self.open.remove(&ord);
                }
                (Action::Reject, _) => {
                    self.open.remove(&ord);
                }
                _ => {}
            },
            // A task that ends takes no more events: an attempt of another
            // phase still under way (phases run side by side) never ends in
            // the record, and is not counted.
            EventKind::TaskFinished { .. } => {
                self.open.remove(&ord);
            }
            _ => {}
        }
    }

    fn take_open(&mut self, ord: TaskNo, phase: &str) -> Option<Open> {
        let open = self.open.get_mut(&ord)?;
        let at = open.iter().position(|o| o.phase == phase)?;
        let o = open.swap_remove(at);
        if open.is_empty() {
            self.open.remove(&ord);
        }
        Some(o)
    }

    /// Marks every row and entry changed, for writing all of them.
    pub(crate) fn touch_all(&mut self) {
        self.changed_rows = (0..self.stats.attempts.len()).collect();
        self.changed_ends = (0..self.stats.ends.len()).collect();
    }

    /// The rows of attempts and of ends changed since the last call.
    pub(crate) fn take_changes(&mut self) -> (BTreeSet<usize>, BTreeSet<usize>) {
        (
            std::mem::take(&mut self.changed_rows),
            std::mem::take(&mut self.changed_ends),
        )
    }

    /// Attempts remembered as under way, for tests of the bound.
    #[cfg(test)]
    pub(crate) fn open_attempts(&self) -> usize {
        self.open.values().map(Vec::len).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Actor, Decision, ErrorClass};

    fn started(phase: &str, model: Option<&str>) -> EventKind {
        EventKind::PhaseStarted {
            phase: phase.into(),
            attempt: 1,
            agent: "x".into(),
            model: model.map(str::to_string),
            feedback: None,
            route: None,
            role: None,
        }
    }

    fn finished(phase: &str, outcome: AttemptOutcome, usage_model: Option<&str>) -> EventKind {
        EventKind::AttemptFinished {
            phase: phase.into(),
            attempt: 1,
            duration_ms: 10,
            outcome,
            usage: usage_model.map(|m| Usage {
                model: Some(m.into()),
                ..Usage::default()
            }),
            cost_usd: None,
            output: None,
            trace: Vec::new(),
            http: None,
            retry_after_ms: None,
        }
    }

    #[test]
    fn what_it_remembers_is_bounded_by_the_attempts_in_flight() {
        let mut fold = StatsFold::default();
        for ord in 0..1000 {
            fold.apply_event(Some(ord), &started("a", Some("m")));
            let failure = AttemptOutcome::Failed {
                class: ErrorClass::Retryable,
                message: "x".into(),
            };
            fold.apply_event(Some(ord), &finished("a", failure, None));
            fold.apply_event(Some(ord), &started("a", Some("m")));
            if ord % 2 == 0 {
                fold.apply_event(Some(ord), &finished("a", AttemptOutcome::Succeeded, None));
            }
        }
        assert_eq!(fold.open_attempts(), 500);
        for ord in (1..1000).step_by(2) {
            let decision = Decision {
                action: Action::Cancel,
                phase: None,
                by: Actor::engine(),
                at: jiff::Timestamp::now(),
                note: None,
            };
            fold.apply_event(Some(ord), &EventKind::DecisionRecorded { decision });
        }
        assert_eq!(fold.open_attempts(), 0);
        let f = &fold.stats().attempts[0];
        assert_eq!(
            (f.attempts, f.succeeded, f.cancelled, f.failed.total()),
            (2000, 500, 500, 1000)
        );
    }

    #[test]
    fn an_attempt_under_way_when_its_task_ends_is_forgotten() {
        let mut fold = StatsFold::default();
        fold.apply_event(Some(1), &started("a", Some("m")));
        fold.apply_event(Some(1), &started("b", Some("m")));
        fold.apply_event(Some(1), &finished("a", AttemptOutcome::Succeeded, None));
        let failed = EventKind::TaskFinished {
            state: crate::engine::TaskState::Failed,
            reason: None,
        };
        fold.apply_event(Some(1), &failed);
        assert_eq!(fold.open_attempts(), 0);
        assert_eq!(fold.stats().attempts.len(), 1, "b never ended: not counted");
    }

    #[test]
    fn the_model_is_the_started_one_else_the_usages() {
        let mut fold = StatsFold::default();
        fold.apply_event(Some(1), &started("a", Some("chosen")));
        fold.apply_event(
            Some(1),
            &finished("a", AttemptOutcome::Succeeded, Some("dated")),
        );
        fold.apply_event(Some(2), &started("a", None));
        fold.apply_event(
            Some(2),
            &finished("a", AttemptOutcome::Succeeded, Some("dated")),
        );
        fold.apply_event(Some(3), &finished("a", AttemptOutcome::Succeeded, None));
        let keys: Vec<(&str, &str)> = fold
            .stats()
            .attempts
            .iter()
            .map(|f| (f.agent.as_str(), f.model.as_str()))
            .collect();
        assert_eq!(keys, [("x", "chosen"), ("x", "dated"), ("", "")]);
    }
}
