//! The markdown run log (`state/RUN_LOG.md`): a fold over the event stream
//! that turns each event into lines a person reads in a pager. Pure: events
//! and context in, text out; writing the file is the caller's job.
//!
//! Text copied from inputs, outputs, errors, reasons and notes is put on one
//! line, capped, and passed through the pipeline's [`Masker`].

use std::fmt::Write;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::Value;

use super::format::{between, duration, thousands};
use super::markdown::{clock, code, date_time, day_of};
use super::mask::Masker;
use super::run_log_lines::{end_line, event_line, excerpt, run_event_line};
use super::summary::{cost_words, from_totals};
use super::task_fold::TaskFold;
use crate::engine::{Actor, Event, EventKind, RunSnapshot, Task, TaskState};

/// The longest excerpt of an input or output, in characters.
pub const EXCERPT_CHARS: usize = 160;
/// The longest error message, reason or note, in characters.
pub const MESSAGE_CHARS: usize = 300;

/// The file's name inside the state folder.
pub const FILE_NAME: &str = "RUN_LOG.md";

/// The title written once, when the file is new.
pub const TITLE: &str = "# baton run log\n";

/// Why a section of the log begins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opening {
    /// The first run on this state folder.
    Started,
    /// A later run on a folder that already has a log.
    Resumed,
    /// A command that changes the folder without running it, e.g. `baton approve`.
    Command(String),
}

/// The log's view of a run: every task as folded so far, each kept as
/// little as the lines need.
pub struct RunLog {
    masker: Masker,
    pipeline: String,
    state_dir: String,
    /// Where the run is kept when not in the state folder.
    store: Option<String>,
    session_started: Timestamp,
    tasks: TaskFold,
    /// Events at or below this seq are already in `tasks`.
    seq: u64,
    /// The date of the last line written, so that a new day gets a heading.
    day: Option<Date>,
}

impl RunLog {
    /// A log that goes on from `snapshot`. Events the snapshot already holds
    /// (those at or below its seq) are still written, from the event alone.
    pub fn new(snapshot: RunSnapshot, masker: Masker) -> RunLog {
        RunLog {
            masker,
            pipeline: snapshot.pipeline,
            state_dir: snapshot.state_dir,
            store: snapshot.store,
            session_started: snapshot.started_at,
            tasks: TaskFold::of(snapshot.phases, snapshot.tasks),
            seq: snapshot.seq,
            day: None,
        }
    }

    /// A log that goes on from the store: the run's overview, its tasks in
    /// flight and its totals (the way an engine starts it).
    pub fn follow(start: crate::engine::FollowStart, masker: Masker) -> RunLog {
        RunLog {
            masker,
            pipeline: start.overview.pipeline,
            state_dir: start.overview.state_dir,
            store: start.overview.store,
            session_started: start.overview.started_at,
            tasks: TaskFold::resume(start.overview.phases, start.tasks, start.totals),
            seq: start.overview.seq,
            day: None,
        }
    }

    /// The task to read from the store before `ev` can be told (see
    /// [`TaskFold::needs`]).
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

    /// The section heading for this session, with the run's context.
    pub fn header(
        &mut self,
        opening: &Opening,
        pipeline_file: Option<&str>,
        by: &Actor,
        at: Timestamp,
    ) -> String {
        let mut out = String::new();
        let what = match opening {
            Opening::Started => "Run started".to_string(),
            Opening::Resumed => "Run resumed".to_string(),
            Opening::Command(cmd) => format!("`{cmd}`"),
        };
        let _ = writeln!(out, "\n## {what} · {}\n", date_time(at));
        let file = pipeline_file
            .map(|f| format!(" ({})", code(f)))
            .unwrap_or_default();
        let _ = writeln!(out, "- pipeline: {}{file}", self.pipeline);
        let _ = writeln!(out, "- state folder: {}", code(&self.state_dir));
        if let Some(store) = &self.store {
            let _ = writeln!(out, "- run kept in: {}", code(store));
        }
        let who = match opening {
            Opening::Started => "started by",
            Opening::Resumed => "resumed by",
            Opening::Command(_) => "by",
        };
        let _ = writeln!(out, "- {who}: {by}");
        let summary = from_totals(self.tasks.totals());
        let states: Vec<String> = TaskState::ALL
            .iter()
            .filter(|s| summary.states.get(**s) > 0)
            .map(|s| format!("{} {s}", summary.states.get(*s)))
            .collect();
        let states = if states.is_empty() {
            String::new()
        } else {
            format!(": {}", states.join(", "))
        };
        let kept = if self.store.is_some() {
            "the run"
        } else {
            "the folder"
        };
        let _ = writeln!(out, "- tasks in {kept}: {}{states}\n", summary.tasks);
        self.day = Some(day_of(at));
        out
    }

    /// The seq of the run as last given whole (a snapshot).
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The lines for one event; empty when it adds nothing to read.
    pub fn apply(&mut self, ev: &Event) -> String {
        let lines = match &ev.task {
            None => run_event_line(&ev.kind).into_iter().collect(),
            Some(id) => self.task_lines(id, ev),
        };
        if lines.is_empty() {
            return String::new();
        }
        let mut out = self.day_heading(ev.at);
        for line in lines {
            let _ = writeln!(out, "- {} {line}", clock(ev.at));
        }
        out
    }

    /// The closing section: tasks per state, tokens, dollars and time.
    pub fn summary(&mut self, at: Timestamp) -> String {
        let s = from_totals(self.tasks.totals());
        let mut out = String::new();
        let _ = writeln!(out, "\n### Summary · {}\n", date_time(at));
        let _ = writeln!(out, "| state | tasks |\n| --- | ---: |");
        for state in TaskState::ALL {
            let n = s.states.get(state);
            if n > 0 {
                let _ = writeln!(out, "| {state} | {n} |");
            }
        }
        let _ = writeln!(out, "| **all** | **{}** |\n", s.tasks);
        let _ = writeln!(
            out,
            "- waiting for a person: {} ({} awaiting review, {} blocked)",
            s.waiting_for_people, s.states.awaiting_review, s.states.blocked
        );
        let _ = writeln!(
            out,
            "- attempts: {} · tokens: {}",
            s.attempts,
            thousands(s.tokens)
        );
        let _ = writeln!(out, "- cost: {}", cost_words(s.cost()));
        let _ = writeln!(
            out,
            "- run time: {} this session; {} since the first task was submitted",
            duration(between(self.session_started, at)),
            duration(Duration::from_millis(s.run_time_ms))
        );
        self.day = Some(day_of(at));
        out
    }

    fn day_heading(&mut self, at: Timestamp) -> String {
        let day = day_of(at);
        if self.day.is_some_and(|d| d != day) {
            self.day = Some(day);
            return format!("\n### {day}\n\n");
        }
        self.day = Some(day);
        String::new()
    }

    fn task_lines(&mut self, id: &str, ev: &Event) -> Vec<String> {
        let mut lines = Vec::new();
        let who = format!("**{id}**");
        if let EventKind::TaskSubmitted { input } = &ev.kind {
            if ev.seq > self.seq {
                self.tasks.submit(ev);
            }
            lines.push(format!("{who} submitted · input {}", self.excerpt(input)));
            return lines;
        }
        let Some(task) = self.tasks.task_mut(id) else {
            // A task the log does not hold (final, or not read from the
            // store): the event is told from itself.
            let mut task = Task::new(
                id.to_string(),
                serde_json::Value::Null,
                self.tasks.phases(),
                ev.at,
                0,
            );
            if let EventKind::TaskFinished { state, .. } = &ev.kind {
                task.state = *state;
            }
            if let Some(line) = event_line(&self.masker, &[], &task, ev) {
                lines.push(format!("{who} {line}"));
            }
            return lines;
        };
        // Only what the lines need from before the event, not a copy of the
        // task with its inputs and outputs.
        let state_before = task.state;
        let holds_before = match ev.kind {
            EventKind::DecisionRecorded { .. } => task.holds.clone(),
            _ => Vec::new(),
        };
        // An event the snapshot already holds (at or below its seq) is told
        // from the task as it is; the engine sends no event a task refuses.
        if ev.seq > self.seq {
            let _ = task.apply_light(ev);
        }
        let task = &*task;
        if state_before == TaskState::Pending && task.state == TaskState::Running {
            lines.push(format!(
                "{who} ▶ started after {} in the queue",
                duration(between(task.created_at, ev.at))
            ));
        }
        if let Some(line) = event_line(&self.masker, &holds_before, task, ev) {
            lines.push(format!("{who} {line}"));
        }
        if task.state.is_final() && !state_before.is_final() {
            lines.push(format!("{who} {}", end_line(task, ev.at, &self.masker)));
        }
        self.tasks.settle(id);
        lines
    }

    fn excerpt(&self, v: &Value) -> String {
        excerpt(&self.masker, v)
    }
}

#[cfg(test)]
#[path = "run_log_tests.rs"]
mod tests;
