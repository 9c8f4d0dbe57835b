//! What `baton run --headless` prints: a line per task that comes to rest
//! (finished, or waiting for a person) and a progress line now and then.
//! A fold over the durable event stream, like every other view.

use std::collections::HashMap;
use std::io::Write;

use jiff::Timestamp;

use super::format::{between, duration, symbol, thousands};
use super::list::short_cost;
use crate::engine::cost::CostTotal;
use crate::engine::{Event, EventKind, RunSnapshot, Task, TaskState};

pub struct Progress {
    phases: Vec<String>,
    tasks: HashMap<String, Task>,
    counts: [usize; 8],
    started: Timestamp,
    seq: u64,
}

fn slot(state: TaskState) -> usize {
    TaskState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

impl Progress {
    pub fn new(snapshot: RunSnapshot) -> Progress {
        let mut p = Progress {
            phases: snapshot.phases,
            tasks: HashMap::new(),
            counts: [0; 8],
            started: snapshot.started_at,
            seq: snapshot.seq,
        };
        for t in snapshot.tasks {
            p.counts[slot(t.state)] += 1;
            p.tasks.insert(t.id.clone(), t);
        }
        p
    }

    /// Folds one event; returns the line to print when a task came to rest.
    pub fn apply(&mut self, ev: &Event) -> Option<String> {
        if ev.seq <= self.seq {
            return None;
        }
        self.seq = ev.seq;
        let id = ev.task.as_ref()?;
        if let EventKind::TaskSubmitted { .. } = ev.kind {
            let task = Task::from_submitted(ev, &self.phases)?;
            self.counts[slot(task.state)] += 1;
            self.tasks.insert(id.clone(), task);
            return None;
        }
        let task = self.tasks.get_mut(id)?;
        let before = task.state;
        task.apply(ev).ok()?;
        let after = task.state;
        if before == after {
            return None;
        }
        self.counts[slot(before)] -= 1;
        self.counts[slot(after)] += 1;
        (after.is_final() || after.needs_human()).then(|| rest_line(task))
    }

    pub fn count(&self, state: TaskState) -> usize {
        self.counts[slot(state)]
    }

    /// Tasks not yet completed, failed or cancelled.
    pub fn unfinished(&self) -> usize {
        TaskState::ALL
            .iter()
            .filter(|s| !s.is_final())
            .map(|s| self.count(*s))
            .sum()
    }

    pub fn line(&self, now: Timestamp) -> String {
        let mut cost = CostTotal::default();
        let mut tokens = 0;
        for t in self.tasks.values() {
            cost.merge(t.cost());
            tokens += t.tokens();
        }
        let done = self.count(TaskState::Completed)
            + self.count(TaskState::Failed)
            + self.count(TaskState::Cancelled);
        let mut parts = vec![format!("{done}/{} done", self.tasks.len())];
        for state in [
            TaskState::Running,
            TaskState::Retrying,
            TaskState::Pending,
            TaskState::AwaitingReview,
            TaskState::Blocked,
            TaskState::Failed,
        ] {
            let n = self.count(state);
            if n > 0 {
                parts.push(format!("{n} {state}"));
            }
        }
        parts.push(format!("{} tok", thousands(tokens)));
        parts.push(cost.to_string());
        format!(
            "[{}] {}",
            duration(between(self.started, now)),
            parts.join(" · ")
        )
    }

    pub fn print_line(&self, out: &mut impl Write) {
        let _ = writeln!(out, "{}", self.line(Timestamp::now()));
    }
}

/// One line about a task at rest.
pub fn rest_line(task: &Task) -> String {
    let end = task.finished_at.unwrap_or(task.updated_at);
    let head = format!(
        "{} {:<12} {:<15} {}/{} phases  {:>8} tok  {:>10}  {}",
        symbol(task.state),
        task.id,
        task.state.as_str(),
        task.phases_settled(),
        task.phases.len(),
        thousands(task.tokens()),
        short_cost(task.cost()),
        duration(between(task.created_at, end)),
    );
    let why = match (task.holds.first(), &task.finish_reason) {
        (Some(h), _) => format!(
            "  {} at {}: {}",
            if task.state == TaskState::Blocked {
                "blocked"
            } else {
                "review"
            },
            h.phase,
            h.reason
        ),
        (None, Some(r)) if task.state != TaskState::Completed => format!("  {r}"),
        _ => String::new(),
    };
    format!("{head}{why}")
}
