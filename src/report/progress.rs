//! What `baton run --headless` prints: a line per task that comes to rest
//! (finished, or waiting for a person) and a progress line now and then.
//! A fold over the durable event stream, like every other view.

use std::io::Write;

use jiff::Timestamp;

use super::format::{between, duration, symbol, thousands};
use super::list::short_cost;
use super::markdown::one_line;
use super::task_fold::{Figures, TaskFold};
use crate::engine::{Event, FollowStart, RunSnapshot, Task, TaskState};

pub struct Progress {
    /// The work in flight, as little as its lines need, and the totals.
    tasks: TaskFold,
    started: Timestamp,
    seq: u64,
}

impl Progress {
    pub fn new(snapshot: RunSnapshot) -> Progress {
        Progress {
            tasks: TaskFold::of(snapshot.phases, snapshot.tasks),
            started: snapshot.started_at,
            seq: snapshot.seq,
        }
    }

    /// Progress that goes on from the store (the way an engine starts it).
    pub fn follow(start: FollowStart) -> Progress {
        Progress {
            tasks: TaskFold::resume(start.overview.phases, start.tasks, start.totals),
            started: start.overview.started_at,
            seq: start.overview.seq,
        }
    }

    /// The task to read from the store before `ev` can be folded.
    pub fn needs<'e>(&self, ev: &'e Event) -> Option<&'e str> {
        if ev.seq <= self.seq {
            return None;
        }
        self.tasks.needs(ev)
    }

    /// Hands over a task read from the store as it was before the next event.
    pub fn provide(&mut self, task: Task) {
        self.tasks.provide(task);
    }

    /// Folds one event; returns the line to print when a task came to rest.
    pub fn apply(&mut self, ev: &Event) -> Option<String> {
        if ev.seq <= self.seq {
            return None;
        }
        self.seq = ev.seq;
        let id = ev.task.as_ref()?;
        if self.tasks.submit(ev) {
            return None;
        }
        let task = self.tasks.task_mut(id)?;
        let before = task.state;
        let applied = task.apply_light(ev);
        let after = task.state;
        let line =
            (applied.is_ok() && before != after && (after.is_final() || after.needs_human()))
                .then(|| rest_line(&Figures::of(task)));
        self.tasks.settle(id);
        line
    }

    /// The last event folded.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn count(&self, state: TaskState) -> usize {
        self.tasks.totals().count(state) as usize
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
        let totals = self.tasks.totals();
        let (cost, tokens) = (totals.cost(), totals.tokens);
        let done = self.count(TaskState::Completed)
            + self.count(TaskState::Failed)
            + self.count(TaskState::Cancelled);
        let mut parts = vec![format!("{done}/{} done", totals.tasks)];
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

/// One line about a task at rest; a reason over several lines (a test
/// run's output) is put on it.
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
            one_line(reason)
        ),
        (None, Some(r)) if task.state != TaskState::Completed => format!("  {}", one_line(r)),
        _ => String::new(),
    };
    format!("{head}{why}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::state::HoldKind;
    use crate::report::testing::{held, task};

    #[test]
    fn a_reason_over_several_lines_stays_on_the_task_line() {
        let mut t = held(task("t1", 0), HoldKind::Review, 1, None);
        t.holds[0].reason = "tests failed:\nFAIL: test_one\n\n  AssertionError: 1 != 2\n".into();
        let line = rest_line(&Figures::of(&t));
        assert!(!line.contains('\n'), "{line}");
        assert!(
            line.ends_with("review at one: tests failed: FAIL: test_one AssertionError: 1 != 2"),
            "{line}"
        );
    }
}
