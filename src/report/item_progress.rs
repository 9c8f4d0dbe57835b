//! How far a `for_each` phase's items have got: `37/120 scenes`, with the
//! failed ones by item number. One source for `show`, `show --json` and the
//! dashboard's detail, so that they say the same.

use serde::Serialize;

use crate::engine::task::{ItemState, PhaseRecord};

/// Failed items listed at most, in text; the JSON lists them all.
pub const FAILURES_SHOWN: usize = 10;

/// One `for_each` phase's items.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemProgress {
    pub phase: String,
    /// What the items are called: the list's field name (`scenes`), or
    /// `items`.
    pub name: String,
    pub done: u32,
    pub total: u32,
    pub running: u32,
    /// In a completed phase, items that never ran: they failed in a phase
    /// before it in its chain.
    pub skipped: u32,
    /// Items that failed for good, by item number (from 0), with why.
    pub failed: Vec<ItemFailure>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemFailure {
    pub item: u32,
    pub error: String,
}

impl ItemProgress {
    /// The phase's items, once listed.
    pub fn of(p: &PhaseRecord) -> Option<ItemProgress> {
        let items = p.items.as_deref()?;
        let failed = match items.failed {
            0 => Vec::new(),
            _ => items
                .items
                .iter()
                .enumerate()
                .filter(|(_, it)| it.state == ItemState::Failed)
                .map(|(i, it)| ItemFailure {
                    item: i as u32,
                    error: it.error.clone().unwrap_or_else(|| "failed".into()),
                })
                .collect(),
        };
        let skipped = match p.state {
            crate::engine::PhaseState::Completed => items
                .count()
                .saturating_sub(items.done + items.failed + items.running),
            _ => 0,
        };
        Some(ItemProgress {
            phase: p.id.clone(),
            name: items.name.clone().unwrap_or_else(|| "items".into()),
            done: items.done,
            total: items.count(),
            running: items.running,
            skipped,
            failed,
        })
    }

    /// `37/120 scenes · 2 failed · 3 running`, leaving out what is zero.
    pub fn line(&self) -> String {
        let mut parts = vec![format!("{}/{} {}", self.done, self.total, self.name)];
        if !self.failed.is_empty() {
            parts.push(format!("{} failed", self.failed.len()));
        }
        if self.skipped > 0 {
            parts.push(format!("{} skipped", self.skipped));
        }
        if self.running > 0 {
            parts.push(format!("{} running", self.running));
        }
        parts.join(" · ")
    }

    /// `item 3: fatal: unreadable`, for the first few failures, then how
    /// many more.
    pub fn failure_lines(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .failed
            .iter()
            .take(FAILURES_SHOWN)
            .map(|f| format!("item {}: {}", f.item, f.error))
            .collect();
        if self.failed.len() > FAILURES_SHOWN {
            lines.push(format!(
                "… and {} more (baton show TASK --json lists them all)",
                self.failed.len() - FAILURES_SHOWN
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use jiff::Timestamp;
    use serde_json::json;

    use super::*;
    use crate::engine::event::{AttemptOutcome, ErrorClass, Event, EventKind};
    use crate::engine::task::Task;

    #[test]
    fn progress_counts_done_items_and_names_the_failed_ones() {
        let mut t = Task::new(
            "t".into(),
            json!({}),
            &["each".to_string()],
            Timestamp::UNIX_EPOCH,
            1,
        );
        assert_eq!(ItemProgress::of(&t.phases[0]), None);
        let mut seq = 1;
        let mut apply = |t: &mut Task, kind: EventKind| {
            seq += 1;
            t.apply(&Event {
                seq,
                at: Timestamp::UNIX_EPOCH,
                task: Some("t".into()),
                kind,
            })
            .unwrap();
        };
        apply(
            &mut t,
            EventKind::ItemsListed {
                phase: "each".into(),
                count: 120,
                error: None,
                name: None,
            },
        );
        for i in 0..13 {
            apply(
                &mut t,
                EventKind::ItemStarted {
                    phase: "each".into(),
                    item: i,
                    attempt: 1,
                    agent: "a".into(),
                    model: None,
                },
            );
        }
        for i in 0..12 {
            let outcome = match i {
                0..10 => AttemptOutcome::Succeeded,
                _ => AttemptOutcome::Failed {
                    class: ErrorClass::Fatal,
                    message: format!("scene {i} unreadable"),
                },
            };
            apply(
                &mut t,
                EventKind::ItemFinished {
                    phase: "each".into(),
                    item: i,
                    attempt: 1,
                    agent: "a".into(),
                    duration_ms: 1,
                    outcome,
                    usage: None,
                    cost_usd: None,
                    output: None,
                },
            );
        }
        for i in 10..12 {
            apply(
                &mut t,
                EventKind::ItemFailed {
                    phase: "each".into(),
                    item: i,
                    error: format!("fatal: scene {i} unreadable"),
                },
            );
        }
        let p = ItemProgress::of(&t.phases[0]).unwrap();
        assert_eq!(p.line(), "10/120 items · 2 failed · 1 running");
        assert_eq!(
            p.failure_lines(),
            [
                "item 10: fatal: scene 10 unreadable",
                "item 11: fatal: scene 11 unreadable"
            ]
        );
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["failed"][1]["item"], 11);
    }
}
