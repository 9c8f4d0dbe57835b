//! What goes to the store next: the events the engine made, in order, and
//! the rows of the tasks they changed, each row handed over only when it
//! differs from the one the store has. The engine applies an event to its
//! task first; only an event its task took is recorded here.

use std::collections::HashMap;
use std::sync::Arc;

use jiff::Timestamp;

use crate::engine::event::{Event, EventKind, TaskId};
use crate::engine::task::Task;
use crate::secrets::Secrets;
use crate::store::{Batch, RowChange, RunMeta, TaskNo, TaskRow};

#[derive(Debug, Default)]
pub(super) struct Checkpoint {
    /// The last seq given out.
    seq: u64,
    events: Vec<(Option<TaskNo>, Event)>,
    /// Tasks changed since their row was last handed over.
    touched: Vec<TaskId>,
    /// Each held task's place in submission order, and its row as last
    /// handed over (`None` until then).
    rows: HashMap<TaskId, (TaskNo, Option<TaskRow>)>,
    /// The pipeline's name and phases, to record with the first commit.
    meta: Option<RunMeta>,
    /// Masked out of every event before anything sees it.
    secrets: Arc<Secrets>,
}

impl Checkpoint {
    pub(super) fn new(seq: u64, meta: Option<RunMeta>, secrets: Arc<Secrets>) -> Checkpoint {
        Checkpoint {
            seq,
            meta,
            secrets,
            ..Checkpoint::default()
        }
    }

    /// The last seq given out.
    pub(super) fn seq(&self) -> u64 {
        self.seq
    }

    /// The next event, not recorded yet: `record` it once its task took it.
    /// Its text is masked here, so no secret reaches a task, the store or
    /// anyone who follows the events.
    pub(super) fn next(&self, task: Option<&TaskId>, mut kind: EventKind, at: Timestamp) -> Event {
        self.secrets.mask_event(&mut kind);
        Event {
            seq: self.seq + 1,
            at,
            task: task.cloned(),
            kind,
        }
    }

    /// Moves past an event handed to the store some other way (submissions
    /// go straight to it in their own batches).
    pub(super) fn skip_to(&mut self, seq: u64) {
        self.seq = self.seq.max(seq);
    }

    /// Queues an event its task (or the run) has taken.
    pub(super) fn record(&mut self, ev: Event) {
        self.seq = ev.seq;
        let ord = ev.task.as_ref().and_then(|id| {
            self.touched.push(id.clone());
            self.rows.get(id).map(|(ord, _)| *ord)
        });
        self.events.push((ord, ev));
    }

    /// A task the engine now holds, read from the store (`row` as stored).
    pub(super) fn hold(&mut self, id: TaskId, ord: TaskNo, row: TaskRow) {
        self.rows.insert(id, (ord, Some(row)));
    }

    /// Looks at a task's row again at the next batch.
    pub(super) fn touch(&mut self, id: &TaskId) {
        self.touched.push(id.clone());
    }

    /// Lets go of a task without a row for it: another engine holds it now.
    pub(super) fn forget(&mut self, id: &TaskId) {
        self.rows.remove(id);
        self.touched.retain(|t| t != id);
    }

    pub(super) fn ord(&self, id: &str) -> Option<TaskNo> {
        self.rows.get(id).map(|(ord, _)| *ord)
    }

    /// The pipeline to record, once.
    pub(super) fn take_meta(&mut self) -> Option<RunMeta> {
        self.meta.take()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.events.is_empty() && self.touched.is_empty()
    }

    /// The batch for the store: the events queued, and the rows of the
    /// touched tasks that changed. Tasks for which `done` says so (final,
    /// nothing running) are no longer tracked, and are returned to be let go.
    pub(super) fn take(
        &mut self,
        tasks: &HashMap<TaskId, Task>,
        done: impl Fn(&Task) -> bool,
    ) -> (Batch, Vec<TaskId>) {
        let mut rows = Vec::with_capacity(self.touched.len());
        let mut finished = Vec::new();
        let mut released = Vec::new();
        for id in std::mem::take(&mut self.touched) {
            let (Some(task), Some((ord, last))) = (tasks.get(&id), self.rows.get_mut(&id)) else {
                continue;
            };
            let new = TaskRow::of(task, *ord);
            if last.as_ref() != Some(&new) {
                rows.push(RowChange {
                    old: last.replace(new.clone()),
                    new,
                });
            }
            if done(task) {
                released.push(*ord);
                self.rows.remove(&id);
                finished.push(id);
            }
        }
        let events = std::mem::take(&mut self.events);
        (
            Batch {
                events,
                rows,
                released,
                ..Batch::default()
            },
            finished,
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_row_goes_once_per_change_and_a_done_task_is_let_go() {
        let at: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let phases = vec!["one".to_string()];
        let mut cp = Checkpoint::new(10, None, Arc::default());
        let ev = cp.next(
            Some(&"t1".to_string()),
            EventKind::TaskSubmitted { input: json!({}) },
            at,
        );
        let task = Task::from_submitted(&ev, &phases).unwrap();
        cp.hold("t1".into(), 1, TaskRow::of(&task, 1));
        let mut tasks = HashMap::from([("t1".to_string(), task)]);
        cp.touch(&"t1".to_string());
        let (batch, done) = cp.take(&tasks, |_| false);
        assert!(batch.is_empty() && done.is_empty(), "nothing changed");

        let start = cp.next(
            Some(&"t1".to_string()),
            EventKind::PhaseStarted {
                phase: "one".into(),
                attempt: 1,
                agent: "a".into(),
                model: None,
                feedback: None,
                route: None,
                role: None,
            },
            at,
        );
        assert_eq!(start.seq, 11);
        tasks.get_mut("t1").unwrap().apply(&start).unwrap();
        cp.record(start);
        assert_eq!(cp.seq(), 11);
        // Here "done" is running, to see a task let go.
        let (batch, done) = cp.take(&tasks, |t| t.state == crate::engine::TaskState::Running);
        assert_eq!(batch.events.len(), 1);
        assert_eq!(
            batch.events[0].0,
            Some(1),
            "the event carries its task's number"
        );
        assert_eq!(batch.rows.len(), 1);
        assert_eq!(done, ["t1"]);
        assert_eq!(cp.ord("t1"), None, "let go");
        assert!(cp.is_empty());
    }
}
