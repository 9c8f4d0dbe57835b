//! `baton review`: every open review and blocker, oldest first, with how
//! long it has waited.

use std::fmt::Write;

use jiff::Timestamp;
use serde::Serialize;

use super::format::{between, duration};
use super::markdown::one_line;
use crate::engine::Task;
use crate::engine::escalation::Escalation;
use crate::engine::event::ReviewReason;
use crate::engine::state::HoldKind;
use crate::engine::task::Hold;

/// One thing a person has to settle.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Waiting<'a> {
    pub task: &'a str,
    /// `review` or `blocked`.
    pub kind: HoldKind,
    pub phase: &'a str,
    /// Why, in words.
    pub reason: &'a str,
    /// For reviews: why, as data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub review: Option<&'a ReviewReason>,
    /// What the agent tried and how severe it says the problem is.
    #[serde(skip_serializing_if = "Escalation::is_empty")]
    pub escalation: &'a Escalation,
    /// Since when (RFC 3339, UTC).
    pub since: String,
    pub waited_ms: u64,
}

/// Every open hold of `tasks`, oldest first (ties by task id, then phase).
pub fn queue<'a>(tasks: impl IntoIterator<Item = &'a Task>, now: Timestamp) -> Vec<Waiting<'a>> {
    from_holds(
        tasks
            .into_iter()
            .flat_map(|t| t.holds.iter().map(move |h| (t.id.as_str(), h))),
        now,
    )
}

/// The same from holds and their tasks' ids, as the store's review queue
/// gives them.
pub fn from_holds<'a>(
    holds: impl IntoIterator<Item = (&'a str, &'a Hold)>,
    now: Timestamp,
) -> Vec<Waiting<'a>> {
    let mut holds: Vec<(Timestamp, Waiting<'a>)> = holds
        .into_iter()
        .map(|(t, h)| {
            let waited = between(h.since, now);
            (
                h.since,
                Waiting {
                    task: t,
                    kind: h.kind,
                    phase: &h.phase,
                    reason: &h.reason,
                    review: h.review.as_ref(),
                    escalation: &h.escalation,
                    since: h.since.to_string(),
                    waited_ms: u64::try_from(waited.as_millis()).unwrap_or(u64::MAX),
                },
            )
        })
        .collect();
    holds.sort_by(|(a, x), (b, y)| a.cmp(b).then(x.task.cmp(y.task)).then(x.phase.cmp(y.phase)));
    holds.into_iter().map(|(_, w)| w).collect()
}

/// The reason, with the severity before it and what was tried after, on
/// one line: a multi-line reason (a test run's output) keeps its row.
fn why(w: &Waiting<'_>) -> String {
    w.escalation
        .around(&one_line(w.reason), |s| s.as_str().to_string(), one_line)
}

pub fn text(queue: &[Waiting<'_>]) -> String {
    if queue.is_empty() {
        return "nothing waits for a person\n".to_string();
    }
    let id_width = queue.iter().map(|w| w.task.len()).max().unwrap_or(4).max(4);
    let phase_width = queue
        .iter()
        .map(|w| w.phase.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<id_width$}  {:<8}  {:<phase_width$}  {:>7}  WHY",
        "TASK", "WAITING", "PHASE", "WAITED"
    );
    for w in queue {
        let kind = match w.kind {
            HoldKind::Review => "review",
            HoldKind::Blocked => "blocked",
        };
        let _ = writeln!(
            out,
            "{:<id_width$}  {kind:<8}  {:<phase_width$}  {:>7}  {}",
            w.task,
            w.phase,
            duration(std::time::Duration::from_millis(w.waited_ms)),
            why(w)
        );
    }
    let reviews = queue.iter().filter(|w| w.kind == HoldKind::Review).count();
    let _ = writeln!(
        out,
        "{} waiting: {reviews} review(s), {} blocker(s)",
        queue.len(),
        queue.len() - reviews
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::testing::{at, held, task};

    #[test]
    fn oldest_first_with_waits() {
        let late = held(task("late", 0), HoldKind::Review, 1, None);
        let early = held(task("early", 0), HoldKind::Blocked, 1, None);
        let mut late = late;
        late.holds[0].since = at(100);
        let mut early = early;
        early.holds[0].since = at(40);
        let idle = task("idle", 0);
        let q = queue([&late, &idle, &early], at(160));
        assert_eq!(q.len(), 2);
        assert_eq!(
            (q[0].task, q[0].kind, q[0].waited_ms),
            ("early", HoldKind::Blocked, 120_000)
        );
        assert_eq!((q[1].task, q[1].waited_ms), ("late", 60_000));
        let shown = text(&q);
        assert!(
            shown.starts_with("TASK   WAITING   PHASE   WAITED  WHY\n"),
            "{shown}"
        );
        assert!(
            shown.contains("early  blocked   one      2m00s  "),
            "{shown}"
        );
        assert!(
            shown.ends_with("2 waiting: 1 review(s), 1 blocker(s)\n"),
            "{shown}"
        );
        let v = serde_json::to_value(&q).unwrap();
        assert_eq!(v[0]["kind"], "blocked");
        assert_eq!(v[1]["review"]["kind"], "agent_asked");
        assert_eq!(v[0]["since"], "1970-01-01T00:00:40Z");
        assert_eq!(text(&[]), "nothing waits for a person\n");
    }

    #[test]
    fn a_reason_over_several_lines_keeps_to_its_row() {
        let mut t = held(task("t1", 0), HoldKind::Review, 1, None);
        t.holds[0].reason = "tests failed:\nFAIL: test_one\n\n  AssertionError: 1 != 2\n".into();
        t.holds[0].escalation.attempted = vec!["ran\nthe tests".into()];
        let shown = text(&queue([&t], at(60)));
        assert_eq!(shown.lines().count(), 3, "{shown}");
        assert!(
            shown.contains(
                "tests failed: FAIL: test_one AssertionError: 1 != 2 · tried: ran the tests\n"
            ),
            "{shown}"
        );
        // The JSON keeps the reason as the agent gave it.
        let v = serde_json::to_value(queue([&t], at(60))).unwrap();
        assert_eq!(
            v[0]["reason"],
            "tests failed:\nFAIL: test_one\n\n  AssertionError: 1 != 2\n"
        );
    }
}
