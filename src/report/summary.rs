//! `baton summary` and the run log's closing lines: tasks per state, who
//! waits for a person, tokens, dollars (with unknown costs marked) and run
//! time, from tasks alone.

use std::fmt::Write;

use jiff::Timestamp;
use serde::Serialize;

use super::format::{between, duration, thousands};
use super::task_fold::Figures;
use crate::engine::cost::CostTotal;
use crate::engine::{Task, TaskState};

/// Tasks in each state; every state is always present, in lifecycle order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct StateCounts {
    pub pending: usize,
    pub running: usize,
    pub retrying: usize,
    pub awaiting_review: usize,
    pub blocked: usize,
    pub completed: usize,
    pub failed: usize,
    pub cancelled: usize,
}

impl StateCounts {
    pub fn get(&self, state: TaskState) -> usize {
        match state {
            TaskState::Pending => self.pending,
            TaskState::Running => self.running,
            TaskState::Retrying => self.retrying,
            TaskState::AwaitingReview => self.awaiting_review,
            TaskState::Blocked => self.blocked,
            TaskState::Completed => self.completed,
            TaskState::Failed => self.failed,
            TaskState::Cancelled => self.cancelled,
        }
    }

    fn add(&mut self, state: TaskState) {
        let slot = match state {
            TaskState::Pending => &mut self.pending,
            TaskState::Running => &mut self.running,
            TaskState::Retrying => &mut self.retrying,
            TaskState::AwaitingReview => &mut self.awaiting_review,
            TaskState::Blocked => &mut self.blocked,
            TaskState::Completed => &mut self.completed,
            TaskState::Failed => &mut self.failed,
            TaskState::Cancelled => &mut self.cancelled,
        };
        *slot += 1;
    }
}

/// The whole of a state folder or a run, for text and for `--json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub tasks: usize,
    pub states: StateCounts,
    /// Tasks in `awaiting_review` or `blocked`.
    pub waiting_for_people: usize,
    /// Open reviews and blockers over all tasks (a task may hold several phases).
    pub open_holds: usize,
    pub attempts: usize,
    pub tokens: u64,
    /// Known dollars; a lower bound when `cost_unknown` is not zero.
    pub cost_usd: f64,
    /// Attempts whose cost is not known (a model with no price).
    pub cost_unknown: u32,
    /// When the first task was submitted (RFC 3339, UTC).
    pub first_submitted_at: Option<Timestamp>,
    /// When any task last changed.
    pub last_change_at: Option<Timestamp>,
    /// From the first submission to the last change.
    pub run_time_ms: u64,
}

impl Summary {
    pub fn cost(&self) -> CostTotal {
        CostTotal {
            usd: self.cost_usd,
            unknown: self.cost_unknown,
        }
    }
}

/// The same from the store's running totals, without reading a task.
pub fn from_totals(t: &crate::store::Totals) -> Summary {
    let mut states = StateCounts::default();
    for state in TaskState::ALL {
        let n = t.count(state) as usize;
        match state {
            TaskState::Pending => states.pending = n,
            TaskState::Running => states.running = n,
            TaskState::Retrying => states.retrying = n,
            TaskState::AwaitingReview => states.awaiting_review = n,
            TaskState::Blocked => states.blocked = n,
            TaskState::Completed => states.completed = n,
            TaskState::Failed => states.failed = n,
            TaskState::Cancelled => states.cancelled = n,
        }
    }
    let cost = t.cost();
    let run_time = match (t.first_submitted_at, t.last_change_at) {
        (Some(f), Some(l)) => between(f, l),
        _ => std::time::Duration::ZERO,
    };
    Summary {
        tasks: t.tasks as usize,
        states,
        waiting_for_people: states.awaiting_review + states.blocked,
        open_holds: t.holds as usize,
        attempts: t.attempts as usize,
        tokens: t.tokens,
        cost_usd: cost.usd,
        cost_unknown: cost.unknown,
        first_submitted_at: t.first_submitted_at,
        last_change_at: t.last_change_at,
        run_time_ms: u64::try_from(run_time.as_millis()).unwrap_or(u64::MAX),
    }
}

pub fn summarize<'a>(tasks: impl IntoIterator<Item = &'a Task>) -> Summary {
    summarize_figures(tasks.into_iter().map(Figures::of))
}

/// The same from each task's figures.
pub fn summarize_figures(tasks: impl IntoIterator<Item = Figures>) -> Summary {
    let mut states = StateCounts::default();
    let mut cost = CostTotal::default();
    let (mut n, mut attempts, mut tokens, mut holds) = (0, 0, 0, 0);
    let mut first: Option<Timestamp> = None;
    let mut last: Option<Timestamp> = None;
    for t in tasks {
        n += 1;
        states.add(t.state);
        cost.merge(t.cost);
        attempts += t.attempts;
        tokens = u64::saturating_add(tokens, t.tokens);
        holds += t.holds;
        first = Some(first.map_or(t.created_at, |f| f.min(t.created_at)));
        last = Some(last.map_or(t.updated_at, |l| l.max(t.updated_at)));
    }
    let run_time = match (first, last) {
        (Some(f), Some(l)) => between(f, l),
        _ => std::time::Duration::ZERO,
    };
    Summary {
        tasks: n,
        states,
        waiting_for_people: states.awaiting_review + states.blocked,
        open_holds: holds,
        attempts,
        tokens,
        cost_usd: cost.usd,
        cost_unknown: cost.unknown,
        first_submitted_at: first,
        last_change_at: last,
        run_time_ms: u64::try_from(run_time.as_millis()).unwrap_or(u64::MAX),
    }
}

/// Dollars in words, saying when the sum is a lower bound.
pub fn cost_words(cost: CostTotal) -> String {
    match cost.unknown {
        0 => cost.to_string(),
        _ => format!("{cost} (a lower bound)"),
    }
}

/// Tasks recorded as under way that were interrupted: with `stopped` (no
/// engine serves the run), every running or retrying task.
pub fn interrupted(s: &Summary, stopped: bool) -> usize {
    match stopped {
        true => s.states.running + s.states.retrying,
        false => 0,
    }
}

/// The summary for people. With `stopped` (no engine serves the run), tasks
/// recorded as running or retrying are counted as interrupted, as `baton
/// list` shows them: they go on with the next `baton run`.
pub fn text(s: &Summary, stopped: bool) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tasks      {}", s.tasks);
    let interrupted = interrupted(s, stopped);
    for state in TaskState::ALL {
        let n = s.states.get(state);
        if interrupted > 0 && matches!(state, TaskState::Running | TaskState::Retrying) {
            continue;
        }
        if n > 0 {
            let _ = writeln!(out, "  {:<16} {n}", state.as_str());
        }
    }
    if interrupted > 0 {
        let _ = writeln!(
            out,
            "  {:<16} {interrupted} (no engine serves the run: they go on with the next `baton run`)",
            "interrupted"
        );
    }
    let _ = writeln!(
        out,
        "waiting    {} for a person ({} awaiting review, {} blocked)",
        s.waiting_for_people, s.states.awaiting_review, s.states.blocked
    );
    let _ = writeln!(out, "attempts   {}", s.attempts);
    let _ = writeln!(out, "tokens     {}", thousands(s.tokens));
    let _ = writeln!(out, "cost       {}", cost_words(s.cost()));
    let span = match (s.first_submitted_at, s.last_change_at) {
        (Some(f), Some(l)) => format!(" ({} to {})", seconds(f), seconds(l)),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "run time   {}{span}",
        duration(std::time::Duration::from_millis(s.run_time_ms))
    );
    out
}

/// `2026-11-21 02:34:21 UTC`.
fn seconds(at: Timestamp) -> String {
    at.strftime("%Y-%m-%d %H:%M:%S UTC").to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::report::testing::{finished, held, task};

    #[test]
    fn counts_every_state_and_marks_unknown_costs() {
        let a = finished(task("a", 0), TaskState::Completed, 10, Some(0.5));
        let b = held(
            task("b", 5),
            crate::engine::state::HoldKind::Review,
            20,
            None,
        );
        let c = task("c", 2);
        let s = summarize([&a, &b, &c]);
        assert_eq!(s.tasks, 3);
        assert_eq!(s.states.completed, 1);
        assert_eq!(s.states.awaiting_review, 1);
        assert_eq!(s.states.pending, 1);
        assert_eq!(s.waiting_for_people, 1);
        assert_eq!(s.open_holds, 1);
        assert_eq!(s.attempts, 2);
        assert_eq!(s.tokens, 30);
        assert_eq!(s.cost_unknown, 1);
        assert_eq!(
            cost_words(s.cost()),
            "$0.5000 + unknown (1 unpriced) (a lower bound)"
        );
        let shown = text(&s, false);
        assert!(shown.contains("  awaiting_review  1\n"), "{shown}");
        assert!(!shown.contains("running"), "{shown}");
        assert!(
            shown.contains("cost       $0.5000 + unknown (1 unpriced) (a lower bound)"),
            "{shown}"
        );
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(
            v["states"],
            json!({"pending": 1, "running": 0, "retrying": 0, "awaiting_review": 1,
                   "blocked": 0, "completed": 1, "failed": 0, "cancelled": 0})
        );
        assert_eq!(v["cost_unknown"], 1);
        assert_eq!(v["run_time_ms"], 8000);
        assert_eq!(v["first_submitted_at"], "1970-01-01T00:00:00Z");
        assert!(
            shown.contains("run time   8.0s (1970-01-01 00:00:00 UTC to 1970-01-01 00:00:08 UTC)"),
            "{shown}"
        );
    }

    #[test]
    fn no_tasks() {
        let s = summarize([]);
        assert_eq!(s.tasks, 0);
        assert_eq!(s.run_time_ms, 0);
        assert!(text(&s, false).contains("cost       $0.0000"));
    }

    #[test]
    fn tasks_under_way_with_no_engine_are_interrupted() {
        let mut s = summarize([]);
        s.tasks = 5;
        s.states.running = 2;
        s.states.retrying = 1;
        s.states.completed = 2;
        let live = text(&s, false);
        assert!(live.contains("  running          2\n"), "{live}");
        assert!(live.contains("  retrying         1\n"), "{live}");
        assert!(!live.contains("interrupted"), "{live}");
        assert_eq!(interrupted(&s, false), 0);
        let stopped = text(&s, true);
        assert!(!stopped.contains("running "), "{stopped}");
        assert!(!stopped.contains("retrying "), "{stopped}");
        assert!(
            stopped.contains("  interrupted      3 (no engine serves the run: they go on with the next `baton run`)\n"),
            "{stopped}"
        );
        assert!(stopped.contains("  completed        2\n"), "{stopped}");
        assert_eq!(interrupted(&s, true), 3);
    }
}
