//! Tasks as the text reports (progress lines, the run log) keep them: no more
//! than their lines need, so that a run of many thousand tasks costs little
//! beside the engine's own fold.
//!
//! A task that has not started is its submission time. A task that still
//! moves is the task itself without its input, outputs, traces and HTTP
//! exchanges, folded with `Task::apply` as the engine folds it. A completed
//! or cancelled task, which no event changes again, is its figures.

use std::collections::HashMap;

use jiff::Timestamp;
use serde_json::Value;

use crate::engine::cost::CostTotal;
use crate::engine::event::TaskId;
use crate::engine::task::PhaseRecord;
use crate::engine::{Event, EventKind, Task, TaskState};

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

    fn fresh(id: &str, created_at: Timestamp, phases: usize) -> Figures {
        Figures {
            id: id.to_string(),
            state: TaskState::Pending,
            created_at,
            updated_at: created_at,
            finished_at: None,
            finish_reason: None,
            phases,
            phases_settled: 0,
            attempts: 0,
            tokens: 0,
            cost: CostTotal::default(),
            holds: 0,
            first_hold: None,
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
    /// Completed or cancelled for good.
    Rested(Box<Figures>),
}

impl Kept {
    pub fn state(&self) -> TaskState {
        match self {
            Kept::Fresh { .. } => TaskState::Pending,
            Kept::Moving(t) => t.state,
            Kept::Rested(f) => f.state,
        }
    }

    pub fn attempts(&self) -> usize {
        match self {
            Kept::Fresh { .. } => 0,
            Kept::Moving(t) => t.attempts(),
            Kept::Rested(f) => f.attempts,
        }
    }
}

/// Completed and cancelled tasks take no more events.
fn rests_for_good(state: TaskState) -> bool {
    matches!(state, TaskState::Completed | TaskState::Cancelled)
}

/// Every task of a run, each kept as little as it can be.
#[derive(Debug, Clone, Default)]
pub struct TaskFold {
    phases: Vec<String>,
    tasks: HashMap<TaskId, Kept>,
}

impl TaskFold {
    pub fn new(phases: Vec<String>) -> TaskFold {
        TaskFold {
            phases,
            tasks: HashMap::new(),
        }
    }

    /// A fold of a snapshot's tasks.
    pub fn of(phases: Vec<String>, tasks: Vec<Task>) -> TaskFold {
        let mut fold = TaskFold::new(phases);
        fold.tasks.reserve(tasks.len());
        for task in tasks {
            fold.insert(task);
        }
        fold
    }

    /// Keeps a task as it is now.
    pub fn insert(&mut self, task: Task) {
        let id = task.id.clone();
        let kept = self.keep(task);
        self.tasks.insert(id, kept);
    }

    /// Takes a `TaskSubmitted` event in; `false` for any other event.
    pub fn submit(&mut self, ev: &Event) -> bool {
        match (&ev.kind, &ev.task) {
            (EventKind::TaskSubmitted { .. }, Some(id)) => {
                let kept = Kept::Fresh {
                    created_at: ev.at,
                    seq: ev.seq,
                };
                self.tasks.insert(id.clone(), kept);
                true
            }
            _ => false,
        }
    }

    /// Phase ids in pipeline order.
    pub fn phases(&self) -> &[String] {
        &self.phases
    }

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

    /// The task to fold the next event into; `None` for an unknown task and
    /// for one at rest for good, which takes no event.
    pub fn task_mut(&mut self, id: &str) -> Option<&mut Task> {
        let kept = self.tasks.get_mut(id)?;
        if let Kept::Fresh { created_at, seq } = *kept {
            let task = Task::new(id.to_string(), Value::Null, &self.phases, created_at, seq);
            *kept = Kept::Moving(Box::new(task));
        }
        match kept {
            Kept::Moving(t) => Some(t),
            _ => None,
        }
    }

    /// After an event was folded into [`TaskFold::task_mut`]'s task: drops
    /// what it brought that no line needs, and keeps a task that came to
    /// rest for good as its figures.
    pub fn settle(&mut self, id: &str) {
        let Some(kept) = self.tasks.get_mut(id) else {
            return;
        };
        if let Kept::Moving(task) = kept {
            if rests_for_good(task.state) {
                *kept = Kept::Rested(Box::new(Figures::of(task)));
            } else {
                lighten(task);
            }
        }
    }

    /// Every task's figures, in no particular order.
    pub fn figures(&self) -> impl Iterator<Item = Figures> + '_ {
        let phases = self.phases.len();
        self.tasks.iter().map(move |(id, kept)| match kept {
            Kept::Fresh { created_at, .. } => Figures::fresh(id, *created_at, phases),
            Kept::Moving(t) => Figures::of(t),
            Kept::Rested(f) => (**f).clone(),
        })
    }

    fn keep(&self, mut task: Task) -> Kept {
        if rests_for_good(task.state) {
            return Kept::Rested(Box::new(Figures::of(&task)));
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
            return Kept::Fresh {
                created_at: task.created_at,
                seq: task.seq,
            };
        }
        lighten(&mut task);
        Kept::Moving(Box::new(task))
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

    #[test]
    fn a_task_is_fresh_then_moving_then_its_figures() {
        let mut fold = TaskFold::new(phases());
        assert!(fold.submit(&event(
            1,
            EventKind::TaskSubmitted {
                input: json!({"big": "input"})
            }
        )));
        assert!(matches!(fold.get("t1"), Some(Kept::Fresh { .. })));
        let started = event(
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
        );
        fold.task_mut("t1").unwrap().apply(&started).unwrap();
        fold.settle("t1");
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
        let Some(Kept::Rested(f)) = fold.get("t1") else {
            panic!("a completed task is kept as its figures");
        };
        assert_eq!(f.state, TaskState::Completed);
        assert_eq!((f.attempts, f.phases, f.phases_settled), (1, 1, 1));
        assert_eq!(f.cost.usd, 0.5);
        assert!(fold.task_mut("t1").is_none());
    }

    #[test]
    fn snapshot_tasks_are_kept_by_how_far_they_came() {
        let at = Timestamp::from_second(1).unwrap();
        let fresh = Task::new("t1".into(), json!({"x": 1}), &phases(), at, 1);
        let mut done = Task::new("t2".into(), json!({}), &phases(), at, 2);
        done.state = TaskState::Cancelled;
        let fold = TaskFold::of(phases(), vec![fresh, done]);
        assert!(matches!(fold.get("t1"), Some(Kept::Fresh { .. })));
        assert!(matches!(fold.get("t2"), Some(Kept::Rested(_))));
        let mut states: Vec<TaskState> = fold.figures().map(|f| f.state).collect();
        states.sort_by_key(|s| s.as_str());
        assert_eq!(states, vec![TaskState::Cancelled, TaskState::Pending]);
    }
}
