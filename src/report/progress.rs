//! What `baton run --headless` prints: a line per task that comes to rest
//! (finished, or waiting for a person) and a progress line now and then.
//! A fold over the durable event stream, like every other view.

use std::io::Write;

use jiff::Timestamp;

use super::format::{between, duration, symbol, thousands};
use super::list::short_cost;
use super::task_fold::{Figures, TaskFold};
use crate::engine::cost::CostTotal;
use crate::engine::{Event, RunSnapshot, TaskState};

pub struct Progress {
    /// Each task as little as its lines need.
    tasks: TaskFold,
    counts: [usize; 8],
    started: Timestamp,
    seq: u64,
}

fn slot(state: TaskState) -> usize {
    TaskState::ALL.iter().position(|s| *s == state).unwrap_or(0)
}

impl Progress {
    pub fn new(snapshot: RunSnapshot) -> Progress {
        let mut counts = [0; 8];
        for t in &snapshot.tasks {
            counts[slot(t.state)] += 1;
        }
        Progress {
            tasks: TaskFold::of(snapshot.phases, snapshot.tasks),
            counts,
            started: snapshot.started_at,
            seq: snapshot.seq,
        }
    }

    /// Folds one event; returns the line to print when a task came to rest.
    pub fn apply(&mut self, ev: &Event) -> Option<String> {
        if ev.seq <= self.seq {
            return None;
        }
        self.seq = ev.seq;
        let id = ev.task.as_ref()?;
        if self.tasks.submit(ev) {
            self.counts[slot(TaskState::Pending)] += 1;
            return None;
        }
        let task = self.tasks.task_mut(id)?;
        let before = task.state;
        let applied = task.apply(ev);
        let after = task.state;
        let line =
            (applied.is_ok() && before != after && (after.is_final() || after.needs_human()))
                .then(|| rest_line(&Figures::of(task)));
        self.tasks.settle(id);
        applied.ok()?;
        if before == after {
            return None;
        }
        self.counts[slot(before)] -= 1;
        self.counts[slot(after)] += 1;
        line
    }

    /// The last event folded.
    pub fn seq(&self) -> u64 {
        self.seq
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
        for t in self.tasks.figures() {
            cost.merge(t.cost);
            tokens += t.tokens;
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
pub fn rest_line(task: &Figures) -> String {
    let end = task.finished_at.unwrap_or(task.updated_at);
    let head = format!(
        "{} {:<12} {:<15} {}/{} phases  {:>8} tok  {:>10}  {}",
        symbol(task.state),
        task.id,
        task.state.as_str(),
        task.phases_settled,
        task.phases,
        thousands(task.tokens),
        short_cost(task.cost),
        duration(between(task.created_at, end)),
    );
    let why = match (&task.first_hold, &task.finish_reason) {
        (Some((phase, reason)), _) => format!(
            "  {} at {}: {}",
            if task.state == TaskState::Blocked {
                "blocked"
            } else {
                "review"
            },
            phase,
            reason
        ),
        (None, Some(r)) if task.state != TaskState::Completed => format!("  {r}"),
        _ => String::new(),
    };
    format!("{head}{why}")
}
