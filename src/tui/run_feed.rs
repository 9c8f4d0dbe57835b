//! The log pane's lines: the run's events as they happen, one short line
//! each (tasks finished and failed, failed attempts and their retries,
//! holds and why, decisions and who, pauses and budget raises), and the
//! warnings of the engine and of this dashboard. Bounded: the newest
//! [`CAPACITY`] lines.

use std::collections::VecDeque;
use std::sync::{Mutex, OnceLock};

use jiff::{SignedDuration, Timestamp};

use crate::engine::event::{Action as Decide, AttemptOutcome, Event, EventKind};
use crate::engine::state::TaskState;

use super::format::duration;

/// Lines kept.
pub const CAPACITY: usize = 2000;

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tone {
    Done,
    Failed,
    Waiting,
    Decision,
    Info,
    Warn,
    Error,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FeedLine {
    pub at: Timestamp,
    pub tone: Tone,
    pub text: String,
}

#[derive(Debug, Default)]
pub struct RunFeed {
    lines: VecDeque<FeedLine>,
    /// The last event taken: one seen twice (read back, then broadcast) is
    /// told once.
    seq: u64,
    /// Bumped with every line, for drawing only on change.
    version: u64,
}

impl RunFeed {
    pub fn push(&mut self, line: FeedLine) {
        if self.lines.len() == CAPACITY {
            self.lines.pop_front();
        }
        self.lines.push_back(line);
        self.version += 1;
    }

    /// Adds the line an event makes, if it makes one; true when it did.
    pub fn event(&mut self, ev: &Event) -> bool {
        if ev.seq <= self.seq {
            return false;
        }
        self.seq = ev.seq;
        match line_of(ev) {
            Some(line) => {
                self.push(line);
                true
            }
            None => false,
        }
    }

    /// Takes the warnings logged since the last call; true when any came.
    pub fn take_warnings(&mut self) -> bool {
        let taken: Vec<FeedLine> = warnings()
            .lock()
            .map(|mut w| w.drain(..).collect())
            .unwrap_or_default();
        let any = !taken.is_empty();
        for line in taken {
            self.push(line);
        }
        any
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    /// The lines whose text contains `filter` (any case), oldest first.
    pub fn matching<'a>(&'a self, filter: &'a str) -> impl Iterator<Item = &'a FeedLine> + 'a {
        let needle = filter.trim().to_lowercase();
        self.lines
            .iter()
            .filter(move |l| needle.is_empty() || l.text.to_lowercase().contains(&needle))
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }
}

/// The line for one event; `None` for those that are routine (a phase
/// starting, an attempt that succeeded, a submission).
pub fn line_of(ev: &Event) -> Option<FeedLine> {
    let task = ev.task.as_deref().unwrap_or("run");
    let (tone, text) = match &ev.kind {
        EventKind::TaskFinished { state, reason } => {
            let (tone, what) = match state {
                TaskState::Completed => (Tone::Done, "✓ completed"),
                TaskState::Failed => (Tone::Failed, "✗ failed"),
                _ => (Tone::Info, "⊘ cancelled"),
            };
            let why = reason
                .as_deref()
                .filter(|_| *state != TaskState::Completed)
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            (tone, format!("{task} {what}{why}"))
        }
        EventKind::AttemptFinished {
            phase,
            attempt,
            outcome: AttemptOutcome::Failed { class, message },
            ..
        } => (
            Tone::Failed,
            format!(
                "{task} {phase} #{attempt} failed [{}]: {message}",
                class.as_str()
            ),
        ),
        EventKind::RetryScheduled {
            phase,
            attempt,
            delay_ms,
            ..
        } => (
            Tone::Info,
            format!(
                "{task} {phase} retries (attempt {attempt}) in {}",
                duration(SignedDuration::from_millis(*delay_ms as i64))
            ),
        ),
        EventKind::PhaseFailed { phase, error } => {
            (Tone::Failed, format!("{task} {phase} gave up: {error}"))
        }
        EventKind::ReviewRequested { phase, reason } => (
            Tone::Waiting,
            format!(
                "{task} ⏸ waits for review at {phase}: {}",
                reason.describe()
            ),
        ),
        EventKind::TaskBlocked {
            phase,
            reason,
            escalation,
        } if escalation.is_empty() => (
            Tone::Waiting,
            format!("{task} ■ blocked at {phase}: {reason}"),
        ),
        EventKind::TaskBlocked {
            phase,
            reason,
            escalation,
        } => (
            Tone::Waiting,
            format!(
                "{task} ■ blocked at {phase}: {reason} ({})",
                escalation.describe()
            ),
        ),
        EventKind::LoopRound {
            phase,
            to,
            feedback,
            round,
            ..
        } => (
            Tone::Waiting,
            format!("{task} ↩ {phase} sent back to {to} (round {round}): “{feedback}”"),
        ),
        EventKind::DecisionRecorded { decision } => {
            let what = match &decision.action {
                Decide::SendBack { feedback } => format!("sent back: “{feedback}”"),
                other => other.name().replace('_', " "),
            };
            let phase = decision
                .phase
                .as_deref()
                .map(|p| format!(" at {p}"))
                .unwrap_or_default();
            let note = decision
                .note
                .as_deref()
                .map(|n| format!(" · “{n}”"))
                .unwrap_or_default();
            (
                Tone::Decision,
                format!("{task} {what}{phase} by {}{note}", decision.by),
            )
        }
        EventKind::RunPaused { by } => (Tone::Decision, format!("run paused by {by}")),
        EventKind::RunResumed { by } => (Tone::Decision, format!("run resumed by {by}")),
        EventKind::BudgetRaised {
            usd, tokens, by, ..
        } => {
            let mut limits = Vec::new();
            if let Some(u) = usd {
                limits.push(format!("${u:.2}"));
            }
            if let Some(t) = tokens {
                limits.push(format!("{t} tokens"));
            }
            let whose = if ev.task.is_some() {
                format!("{task}'s")
            } else {
                "the run's".to_string()
            };
            (
                Tone::Decision,
                format!("{whose} budget raised to {} by {by}", limits.join(", ")),
            )
        }
        _ => return None,
    };
    Some(FeedLine {
        at: ev.at,
        tone,
        text,
    })
}

/// Warnings and errors logged (by the engine, forwarded over the socket, or
/// by this dashboard), waiting for the feed to take them.
fn warnings() -> &'static Mutex<VecDeque<FeedLine>> {
    static WARNINGS: OnceLock<Mutex<VecDeque<FeedLine>>> = OnceLock::new();
    WARNINGS.get_or_init(|| Mutex::new(VecDeque::new()))
}

/// A `tracing` layer that hands warnings and errors to the log pane.
pub struct WarningLayer;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for WarningLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let level = *event.metadata().level();
        let tone = if level == tracing::Level::ERROR {
            Tone::Error
        } else if level == tracing::Level::WARN {
            Tone::Warn
        } else {
            return;
        };
        let mut text = String::new();
        event.record(&mut Message(&mut text));
        if let Ok(mut w) = warnings().lock() {
            if w.len() == CAPACITY {
                w.pop_front();
            }
            w.push_back(FeedLine {
                at: Timestamp::now(),
                tone,
                text,
            });
        }
    }
}

/// Collects an event's message (and other fields after it).
struct Message<'a>(&'a mut String);

impl tracing::field::Visit for Message<'_> {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write;
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.0.push_str(&format!("{}={value}", field.name()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::test_support::sample_events;

    #[test]
    fn events_that_matter_make_one_line_each_and_routine_ones_none() {
        let mut feed = RunFeed::default();
        let shown = sample_events().iter().filter(|e| feed.event(e)).count();
        assert!(shown > 0 && shown < sample_events().len());
        let text: Vec<&str> = feed.matching("").map(|l| l.text.as_str()).collect();
        assert!(text.iter().any(|t| t.contains("✓ completed")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("waits for review")),
            "{text:?}"
        );
        assert!(text.iter().any(|t| t.contains("■ blocked")), "{text:?}");
        assert!(
            text.iter().any(|t| t.contains("by ops")),
            "a decision says who: {text:?}"
        );
        assert!(!text.iter().any(|t| t.contains("submitted")), "{text:?}");
        // Filtered by text, in any case.
        assert!(feed.matching("BLOCKED").all(|l| l.text.contains("blocked")));
        assert!(feed.matching("BLOCKED").count() >= 1);
    }

    #[test]
    fn the_feed_keeps_the_newest_lines() {
        let mut feed = RunFeed::default();
        for i in 0..CAPACITY + 10 {
            feed.push(FeedLine {
                at: Timestamp::UNIX_EPOCH,
                tone: Tone::Info,
                text: format!("line {i}"),
            });
        }
        assert_eq!(feed.len(), CAPACITY);
        assert_eq!(feed.matching("").next().unwrap().text, "line 10");
    }
}
