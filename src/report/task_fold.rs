//! Tasks as the text reports (progress lines, the run log) follow them: the
//! work in flight, never the whole run, so that a million tasks cost what
//! is moving.
//!
//! A task that is moving (started, waiting for a person) is kept as the
//! task without its input, outputs, traces and HTTP exchanges, folded with
//! `Task::apply` as the engine folds it. A pending task is kept as its
//! submission time while there are few of them ([`FRESH_KEPT`]). A final
//! task is dropped. The run's figures are kept as running [`Totals`],
//! moved by each change the way the store moves its own.
//!
//! An event for a task the fold does not hold (a pending task past the
//! limit, a failed task that is retried, a task of an earlier session)
//! needs the task as it was before it: [`TaskFold::needs`] names it, the
//! follower reads it from the store
//! ([`RunReader::task_before`](crate::store::RunReader::task_before)) and
//! hands it over with [`TaskFold::provide`].

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::Value;

use crate::engine::cost::CostTotal;
use crate::engine::event::TaskId;
use crate::engine::task::PhaseRecord;
use crate::engine::{Event, EventKind, Task, TaskState};
use crate::store::{RowChange, TaskRow, Totals};

/// Pending tasks kept as their submission time, at most; the first event of
/// any other is told after reading it from the store.
pub const FRESH_KEPT: usize = 4096;

/// What the reports say about a task at rest, and add up over a run.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    pub id: TaskId,
    pub state: TaskState,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub finished_at: Option<Timestamp>,
    pub finish_reason: Option<String>,
    pub phases: usize,
    pub phases_settled: usize,
    pub attempts: usize,
    pub tokens: u64,
    pub cost: CostTotal,
    /// Open reviews and blockers.
    pub holds: usize,
    /// The oldest open hold: its phase and why.
    pub first_hold: Option<(String, String)>,
}

impl Figures {
    pub fn of(task: &Task) -> Figures {
        Figures {
            id: task.id.clone(),
            state: task.state,
            created_at: task.created_at,
            updated_at: task.updated_at,
            finished_at: task.finished_at,
            finish_reason: task.finish_reason.clone(),
            phases: task.phases.len(),
            phases_settled: task.phases_settled(),
            attempts: task.attempts(),
            tokens: task.tokens(),
            cost: task.cost(),
            holds: task.holds.len(),
            first_hold: task
                .holds
                .first()
                .map(|h| (h.phase.clone(), h.reason.clone())),
        }
    }
}

/// One task, kept as little as it can be.
#[derive(Debug, Clone)]
pub enum Kept {
    /// Submitted; nothing has happened to it since.
    Fresh { created_at: Timestamp, seq: u64 },
    /// Still moving: the task without its payloads.
    Moving(Box<Task>),
}

impl Kept {
    pub fn state(&self) -> TaskState {
        match self {
            Kept::Fresh { .. } => TaskState::Pending,
            Kept::Moving(t) => t.state,
        }
    }

    pub fn attempts(&self) -> usize {
        match self {
            Kept::Fresh { .. } => 0,
            Kept::Moving(t) => t.attempts(),
        }
    }
}

/// The work in flight of a run, and the run's running totals.
#[derive(Debug, Clone, Default)]
pub struct TaskFold {
    phases: Vec<String>,
    tasks: HashMap<TaskId, Kept>,
    fresh: usize,
    totals: Totals,
    /// The row of the task handed out by `task_mut`, until `settle`.
    before: Option<TaskRow>,
}

impl TaskFold {
    pub fn new(phases: Vec<String>) -> TaskFold {
        TaskFold {
            phases,
            ..TaskFold::default()
        }
    }

    /// A fold of every task of a run (the totals are theirs; the moving
    /// and a few pending ones are kept).
    pub fn of(phases: Vec<String>, tasks: Vec<Task>) -> TaskFold {
        let mut fold = TaskFold::new(phases);
        for task in tasks {
            fold.totals.apply_row(&RowChange {
                old: None,
                new: TaskRow::of(&task, 0),
            });
            fold.insert(task);
        }
        fold
    }

    /// A fold that goes on from the store: the tasks in flight, and the
    /// run's totals as committed with them.
    pub fn resume(phases: Vec<String>, in_flight: Vec<Task>, totals: Totals) -> TaskFold {
        let mut fold = TaskFold::new(phases);
        fold.totals = totals;
        for task in in_flight {
            fold.insert(task);
        }
        fold
    }

    /// Keeps a task as it is now, unless it is final.
    fn insert(&mut self, task: Task) {
        let id = task.id.clone();
        if let Some(kept) = self.keep(task) {
            self.put(id, kept);
        }
    }

    fn put(&mut self, id: TaskId, kept: Kept) {
        let fresh = matches!(kept, Kept::Fresh { .. });
        if fresh && self.fresh >= FRESH_KEPT {
            return;
        }
        self.fresh += usize::from(fresh);
        if let Some(Kept::Fresh { .. }) = self.tasks.insert(id, kept) {
            self.fresh -= 1;
        }
    }

    /// The run's figures: counts per state, attempts, tokens, dollars.
    pub fn totals(&self) -> &Totals {
        &self.totals
    }

    /// Takes a `TaskSubmitted` event in; `false` for any other event.
    pub fn submit(&mut self, ev: &Event) -> bool {
        match (&ev.kind, &ev.task) {
            (EventKind::TaskSubmitted { .. }, Some(id)) => {
                let task = Task::new(id.clone(), Value::Null, &self.phases, ev.at, ev.seq);
                self.totals.apply_row(&RowChange {
                    old: None,
                    new: TaskRow::of(&task, 0),
                });
                let kept = Kept::Fresh {
                    created_at: ev.at,
                    seq: ev.seq,
                };
                self.put(id.clone(), kept);
                true
            }
            _ => false,
        }
    }

    /// The task whose state before `ev` must be read from the store first:
    /// an event about a task the fold does not hold.
    pub fn needs<'e>(&self, ev: &'e Event) -> Option<&'e str> {
        let id = ev.task.as_deref()?;
        if matches!(ev.kind, EventKind::TaskSubmitted { .. }) || self.tasks.contains_key(id) {
            return None;
        }
        Some(id)
    }

    /// Hands over a task as it was before the next event about it, read
    /// from the store after [`TaskFold::needs`] named it.
    pub fn provide(&mut self, mut task: Task) {
        lighten(&mut task);
        let id = task.id.clone();
        self.tasks.insert(id, Kept::Moving(Box::new(task)));
    }

    /// Phase ids in pipeline order.
    pub fn phases(&self) -> &[String] {
        &self.phases
    }

    /// Tasks kept: the work in flight.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    pub fn contains_key(&self, id: &str) -> bool {
        self.tasks.contains_key(id)
    }

    pub fn get(&self, id: &str) -> Option<&Kept> {
        self.tasks.get(id)
    }

    /// The task to fold the next event into; `None` for a task the fold
    /// does not hold. Call [`TaskFold::settle`] after.
    pub fn task_mut(&mut self, id: &str) -> Option<&mut Task> {
        let kept = self.tasks.get_mut(id)?;
        if let Kept::Fresh { created_at, seq } = *kept {
            let task = Task::new(id.to_string(), Value::Null, &self.phases, created_at, seq);
            *kept = Kept::Moving(Box::new(task));
            self.fresh -= 1;
        }
        match kept {
            Kept::Moving(t) => {
                self.before = Some(TaskRow::of(t, 0));
                Some(t)
            }
            Kept::Fresh { .. } => None,
        }
    }

    /// After an event was folded into [`TaskFold::task_mut`]'s task: moves
    /// the totals, drops what no line needs, and drops a final task.
    pub fn settle(&mut self, id: &str) {
        let Some(Kept::Moving(task)) = self.tasks.get_mut(id) else {
            return;
        };
        if let Some(old) = self.before.take() {
            self.totals.apply_row(&RowChange {
                old: Some(old),
                new: TaskRow::of(task, 0),
            });
        }
        if task.state.is_final() {
            self.tasks.remove(id);
        } else {
            lighten(task);
        }
    }

    fn keep(&self, mut task: Task) -> Option<Kept> {
        if task.state.is_final() {
            return None;
        }
        let untouched = task.state == TaskState::Pending
            && task.updated_at == task.created_at
            && task.holds.is_empty()
            && task.decisions.is_empty()
            && task.budget.is_none()
            && task.phases.len() == self.phases.len()
            && task
                .phases
                .iter()
                .zip(&self.phases)
                .all(|(p, id)| *p == PhaseRecord::new(id.clone()));
        if untouched {
            return Some(Kept::Fresh {
                created_at: task.created_at,
                seq: task.seq,
            });
        }
        lighten(&mut task);
        Some(Kept::Moving(Box::new(task)))
    }
}

impl std::ops::Index<&str> for TaskFold {
    type Output = Kept;

    fn index(&self, id: &str) -> &Kept {
        &self.tasks[id]
    }
}

/// Drops what no report line reads and no event's fold needs: the input,
/// outputs, traces and HTTP exchanges.
fn lighten(task: &mut Task) {
    task.input = Value::Null;
    for p in &mut task.phases {
        p.output = None;
        p.attempts.shrink_to_fit();
        for a in &mut p.attempts {
            a.trace = Vec::new();
            a.http = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::event::AttemptOutcome;

    fn event(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            at: Timestamp::from_second(seq as i64).unwrap(),
            task: Some("t1".into()),
            kind,
        }
    }

    fn phases() -> Vec<String> {
        vec!["one".to_string()]
    }

    fn started() -> Event {
        event(
            2,
            EventKind::PhaseStarted {
                phase: "one".into(),
                attempt: 1,
                agent: "a".into(),
                model: None,
                feedback: None,
                route: None,
                role: None,
            },
        )
    }

    #[test]
    fn a_task_is_fresh_then_moving_then_gone_and_the_totals_follow() {
        let mut fold = TaskFold::new(phases());
        assert!(fold.submit(&event(
            1,
            EventKind::TaskSubmitted {
                input: json!({"big": "input"})
            }
        )));
        assert!(matches!(fold.get("t1"), Some(Kept::Fresh { .. })));
        assert_eq!(fold.totals().count(TaskState::Pending), 1);
        fold.task_mut("t1").unwrap().apply(&started()).unwrap();
        fold.settle("t1");
        assert_eq!(fold.totals().count(TaskState::Running), 1);
        let finished = event(
            3,
            EventKind::AttemptFinished {
                phase: "one".into(),
                attempt: 1,
                duration_ms: 5,
                outcome: AttemptOutcome::Succeeded,
                usage: None,
                cost_usd: Some(0.5),
                output: Some(json!({"answer": 42})),
                trace: vec!["a line".into()],
                http: None,
                retry_after_ms: None,
            },
        );
        fold.task_mut("t1").unwrap().apply(&finished).unwrap();
        fold.settle("t1");
        let Some(Kept::Moving(task)) = fold.get("t1") else {
            panic!("a running task is kept whole");
        };
        assert_eq!(task.phases[0].output, None);
        assert!(task.phases[0].attempts[0].trace.is_empty());
        assert_eq!(task.attempts(), 1);
        let done = event(
            4,
            EventKind::TaskFinished {
                state: TaskState::Completed,
                reason: None,
            },
        );
        fold.task_mut("t1").unwrap().apply(&done).unwrap();
        fold.settle("t1");
        assert!(fold.get("t1").is_none(), "a final task is not kept");
        let t = fold.totals();
        assert_eq!(
            (t.tasks, t.count(TaskState::Completed), t.attempts),
            (1, 1, 1)
        );
        assert_eq!(t.cost().usd, 0.5);
        assert_eq!(
            fold.needs(&done),
            Some("t1"),
            "a later event reads it first"
        );
    }

    #[test]
    fn snapshot_tasks_count_in_the_totals_and_only_unfinished_ones_are_kept() {
        let at = Timestamp::from_second(1).unwrap();
        let fresh = Task::new("t1".into(), json!({"x": 1}), &phases(), at, 1);
        let mut done = Task::new("t2".into(), json!({}), &phases(), at, 2);
        done.state = TaskState::Cancelled;
        let fold = TaskFold::of(phases(), vec![fresh, done]);
        assert!(matches!(fold.get("t1"), Some(Kept::Fresh { .. })));
        assert!(fold.get("t2").is_none());
        assert_eq!(fold.totals().tasks, 2);
        assert_eq!(fold.totals().count(TaskState::Cancelled), 1);
    }

    #[test]
    fn pending_tasks_past_the_limit_are_read_back_when_they_start() {
        let mut fold = TaskFold::new(phases());
        for i in 0..FRESH_KEPT + 10 {
            let mut ev = event(i as u64 + 1, EventKind::TaskSubmitted { input: json!({}) });
            ev.task = Some(format!("t{i}"));
            fold.submit(&ev);
        }
        assert_eq!(fold.len(), FRESH_KEPT, "memory stays bounded");
        assert_eq!(
            fold.totals().count(TaskState::Pending),
            FRESH_KEPT as u64 + 10
        );
        let mut start = started();
        start.task = Some(format!("t{}", FRESH_KEPT + 5));
        let id = fold.needs(&start).expect("not kept").to_string();
        let at = Timestamp::from_second(1).unwrap();
        fold.provide(Task::new(id.clone(), json!({"x": 1}), &phases(), at, 1));
        assert!(fold.needs(&start).is_none());
        fold.task_mut(&id).unwrap().apply(&start).unwrap();
        fold.settle(&id);
        assert_eq!(fold.totals().count(TaskState::Running), 1);
        assert_eq!(
            fold.totals().count(TaskState::Pending),
            FRESH_KEPT as u64 + 9
        );
    }
}
