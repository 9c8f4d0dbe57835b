//! The run's own state as the fold of its run-level events, the sibling of
//! `Task::apply`: whether dispatch is paused, and how far operators raised
//! the run's budget. The engine, recovery and every view use this one fold,
//! so a pause or a raise outlives a restart exactly as it was recorded.

use serde::{Deserialize, Serialize};

use super::budget::Raise;
use super::event::{Actor, Event, EventKind};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// No new attempts start while paused.
    pub paused: bool,
    /// Who paused the run, while it is paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub paused_by: Option<Actor>,
    /// What operators raised the run's budget to.
    #[serde(default)]
    pub raise: Raise,
    /// Seq of the last run-level event applied.
    #[serde(default)]
    pub seq: u64,
}

impl RunState {
    /// The fold of `events`; task events are passed over.
    pub fn of<'a>(events: impl IntoIterator<Item = &'a Event>) -> RunState {
        let mut state = RunState::default();
        for e in events {
            state.apply(e);
        }
        state
    }

    /// Applies a run-level event; returns whether it changed anything the
    /// fold keeps. Task events and repeats (a pause while paused) change
    /// nothing.
    pub fn apply(&mut self, ev: &Event) -> bool {
        if ev.task.is_some() {
            return false;
        }
        let changed = match &ev.kind {
            EventKind::RunPaused { by } if !self.paused => {
                self.paused = true;
                self.paused_by = Some(by.clone());
                true
            }
            EventKind::RunResumed { .. } if self.paused => {
                self.paused = false;
                self.paused_by = None;
                true
            }
            EventKind::BudgetRaised {
                usd,
                tokens,
                accept_unknown,
                ..
            } => {
                self.raise.raise(*usd, *tokens, *accept_unknown);
                true
            }
            _ => false,
        };
        if changed {
            self.seq = ev.seq;
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::Timestamp;

    fn ev(seq: u64, task: Option<&str>, kind: EventKind) -> Event {
        Event {
            seq,
            at: Timestamp::UNIX_EPOCH,
            task: task.map(str::to_string),
            kind,
        }
    }

    fn by() -> Actor {
        Actor {
            user: "ana".into(),
            ssh_client: None,
        }
    }

    #[test]
    fn pause_resume_and_raises_fold_in_order() {
        let events = [
            ev(1, None, EventKind::RunPaused { by: by() }),
            ev(2, None, EventKind::RunPaused { by: by() }),
            ev(
                3,
                None,
                EventKind::BudgetRaised {
                    usd: Some(5.0),
                    tokens: None,
                    accept_unknown: 2,
                    by: by(),
                },
            ),
            ev(
                4,
                None,
                EventKind::BudgetRaised {
                    usd: Some(3.0),
                    tokens: Some(100),
                    accept_unknown: 1,
                    by: by(),
                },
            ),
        ];
        let s = RunState::of(&events);
        assert!(s.paused);
        assert_eq!(s.paused_by, Some(by()));
        assert_eq!(s.raise.usd, Some(5.0), "limits only go up");
        assert_eq!(s.raise.tokens, Some(100));
        assert_eq!(s.raise.accept_unknown, 2);
        assert_eq!(s.seq, 4);
        let mut s = s;
        assert!(s.apply(&ev(5, None, EventKind::RunResumed { by: by() })));
        assert!(!s.paused);
        assert!(!s.apply(&ev(6, None, EventKind::RunResumed { by: by() })));
        assert_eq!(s.seq, 5);
    }

    #[test]
    fn task_events_change_nothing() {
        let mut s = RunState::default();
        let raise = EventKind::BudgetRaised {
            usd: Some(9.0),
            tokens: None,
            accept_unknown: 0,
            by: by(),
        };
        assert!(!s.apply(&ev(1, Some("t1"), raise)));
        assert_eq!(s, RunState::default());
    }
}
