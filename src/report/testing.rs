//! Tasks and events for the reports' tests, built through `Task::apply` so
//! that they are tasks the engine could have made.

use jiff::Timestamp;
use serde_json::json;

use crate::engine::cost::Usage;
use crate::engine::event::{AttemptOutcome, Event, EventKind, ReviewReason};
use crate::engine::state::HoldKind;
use crate::engine::{Task, TaskState};

pub const PHASES: [&str; 2] = ["one", "two"];

/// `secs` seconds after the epoch.
pub fn at(secs: i64) -> Timestamp {
    Timestamp::from_second(secs).unwrap()
}

pub fn event(seq: u64, secs: i64, task: &str, kind: EventKind) -> Event {
    Event {
        seq,
        at: at(secs),
        task: Some(task.to_string()),
        kind,
    }
}

/// A pending task with phases `one` and `two`, submitted at `secs`.
pub fn task(id: &str, secs: i64) -> Task {
    let phases: Vec<String> = PHASES.iter().map(|p| p.to_string()).collect();
    Task::new(id.to_string(), json!({"id": id}), &phases, at(secs), 1)
}

fn apply(t: &mut Task, kind: EventKind) {
    let ev = event(t.seq + 1, t.updated_at.as_second() + 1, &t.id.clone(), kind);
    t.apply(&ev).unwrap_or_else(|e| panic!("{e}"));
}

pub fn started(phase: &str, attempt: u32) -> EventKind {
    EventKind::PhaseStarted {
        phase: phase.into(),
        attempt,
        agent: "a".into(),
        model: Some("m".into()),
        feedback: None,
        route: None,
        role: None,
    }
}

pub fn finished_attempt(
    phase: &str,
    attempt: u32,
    outcome: AttemptOutcome,
    tokens: u64,
    cost: Option<f64>,
) -> EventKind {
    EventKind::AttemptFinished {
        phase: phase.into(),
        attempt,
        duration_ms: 250,
        outcome,
        usage: Some(Usage {
            model: Some("m".into()),
            input_tokens: tokens,
            output_tokens: 0,
            cost_usd: None,
            ..Default::default()
        }),
        cost_usd: cost,
        output: Some(json!({"ok": true})),
        trace: Vec::new(),
        http: None,
        retry_after_ms: None,
    }
}

/// Runs phase `one` once and finishes the task in `state` (completed or failed).
pub fn finished(mut t: Task, state: TaskState, tokens: u64, cost: Option<f64>) -> Task {
    apply(&mut t, started("one", 1));
    apply(
        &mut t,
        finished_attempt("one", 1, AttemptOutcome::Succeeded, tokens, cost),
    );
    apply(
        &mut t,
        EventKind::PhaseSkipped {
            phase: "two".into(),
            reason: "not needed".into(),
        },
    );
    apply(
        &mut t,
        EventKind::TaskFinished {
            state,
            reason: None,
        },
    );
    t
}

/// Runs phase `one` once and holds the task there.
pub fn held(mut t: Task, kind: HoldKind, tokens: u64, cost: Option<f64>) -> Task {
    apply(&mut t, started("one", 1));
    match kind {
        HoldKind::Review => {
            let reason = "please check".to_string();
            apply(
                &mut t,
                finished_attempt(
                    "one",
                    1,
                    AttemptOutcome::ReviewRequested {
                        reason: reason.clone(),
                        escalation: Default::default(),
                    },
                    tokens,
                    cost,
                ),
            );
            apply(
                &mut t,
                EventKind::ReviewRequested {
                    phase: "one".into(),
                    reason: ReviewReason::AgentAsked {
                        reason,
                        escalation: Default::default(),
                    },
                },
            );
        }
        HoldKind::Blocked => {
            let reason = "needs a key".to_string();
            apply(
                &mut t,
                finished_attempt(
                    "one",
                    1,
                    AttemptOutcome::Blocked {
                        reason: reason.clone(),
                        escalation: Default::default(),
                    },
                    tokens,
                    cost,
                ),
            );
            apply(
                &mut t,
                EventKind::TaskBlocked {
                    phase: "one".into(),
                    reason,
                    escalation: Default::default(),
                },
            );
        }
    }
    t
}
