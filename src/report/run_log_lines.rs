//! The text of each run log line: what an event says about its task, with
//! everything copied from inputs, outputs and people masked and capped.

use std::fmt::Write;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::Value;

use super::format::{between, duration, thousands};
use super::markdown::{cap, clock, code, json_head, one_line};
use super::mask::Masker;
use super::run_log::{EXCERPT_CHARS, MESSAGE_CHARS};
use crate::engine::escalation::Escalation;
use crate::engine::event::{AttemptOutcome, Decision, ReviewReason};
use crate::engine::task::{AttemptRecord, Hold};
use crate::engine::{Action, Event, EventKind, Task, TaskState};

/// The line an event adds about its task, after it was applied to `after`.
pub(super) fn event_line(
    m: &Masker,
    holds_before: &[Hold],
    after: &Task,
    ev: &Event,
) -> Option<String> {
    Some(match &ev.kind {
        EventKind::TaskSubmitted { .. } | EventKind::TaskFinished { .. } => return None,
        EventKind::RunPaused { .. } | EventKind::RunResumed { .. } => return None,
        // One line per item would drown the log: the listing, each item
        // that fails for good, and the fan-in are what a reader needs.
        EventKind::ItemStarted { .. }
        | EventKind::ItemFinished { .. }
        | EventKind::ItemRetryScheduled { .. } => return None,
        EventKind::ItemsListed {
            phase,
            error: Some(error),
            ..
        } => format!("✗ `{phase}` has no list of items: {}", quote(m, error)),
        EventKind::ItemsListed {
            phase, count, name, ..
        } => {
            format!(
                "▶ `{phase}` runs once per item: {} {}",
                thousands(*count as u64),
                name.as_deref().unwrap_or("items")
            )
        }
        EventKind::ItemFailed { phase, item, error } => {
            format!("✗ `{phase}` item {item} failed: {}", quote(m, error))
        }
        EventKind::ItemsSettled { phase } => {
            let (done, failed) = after
                .phase(phase)
                .and_then(|p| p.items.as_deref())
                .map_or((0, 0), |i| (i.done, i.failed));
            format!("✓ `{phase}` items settled: {done} done, {failed} failed")
        }
        EventKind::PhaseStarted {
            phase,
            attempt,
            agent,
            model,
            feedback,
            route,
            role,
        } => {
            let role = role
                .as_deref()
                .map(|r| format!(" for role {r}"))
                .unwrap_or_default();
            let model = model
                .as_deref()
                .map(|m| format!(" · model {m}"))
                .unwrap_or_default();
            let route = route
                .as_ref()
                .map(|r| format!(" by {}", r.describe()))
                .unwrap_or_default();
            let feedback = feedback
                .as_deref()
                .map(|f| format!(" · with feedback {}", quote(m, f)))
                .unwrap_or_default();
            format!("`{phase}` #{attempt} started · agent {agent}{role}{model}{route}{feedback}")
        }
        EventKind::AttemptFinished {
            phase,
            attempt,
            duration_ms,
            outcome,
            usage,
            cost_usd,
            output,
            ..
        } => {
            let record = after
                .phase(phase)
                .and_then(|p| p.attempts.iter().find(|a| a.number == *attempt));
            let figures = attempt_figures(record, *duration_ms, usage.as_ref(), *cost_usd);
            let output = match (outcome, output) {
                (
                    AttemptOutcome::Succeeded
                    | AttemptOutcome::ReviewRequested { .. }
                    | AttemptOutcome::SentBack { .. },
                    Some(v),
                ) => {
                    format!(" · output {}", excerpt(m, v))
                }
                _ => String::new(),
            };
            let head = match outcome {
                AttemptOutcome::Succeeded => format!("✓ `{phase}` #{attempt} succeeded"),
                // What the agent tried goes with the hold's line, once.
                AttemptOutcome::ReviewRequested { reason, .. } => format!(
                    "✓ `{phase}` #{attempt} succeeded, asks for a review: {}",
                    quote(m, reason)
                ),
                AttemptOutcome::SentBack { to, feedback } => format!(
                    "↩ `{phase}` #{attempt} sends the task back to `{to}`: {}",
                    quote(m, feedback)
                ),
                AttemptOutcome::Failed { class, message } => format!(
                    "✗ `{phase}` #{attempt} failed ({}): {}",
                    class.as_str(),
                    quote(m, message)
                ),
                AttemptOutcome::Blocked { reason, .. } => {
                    format!("■ `{phase}` #{attempt} blocked: {}", quote(m, reason))
                }
                AttemptOutcome::Interrupted => format!(
                    "↺ `{phase}` #{attempt} interrupted when the engine stopped; it runs again"
                ),
                AttemptOutcome::Cancelled => format!("⊘ `{phase}` #{attempt} cancelled"),
            };
            format!("{head} · {figures}{output}")
        }
        EventKind::RetryScheduled {
            phase,
            attempt,
            delay_ms,
            due,
        } => {
            let why = after
                .phase(phase)
                .and_then(|p| p.attempts.iter().find(|a| a.number + 1 == *attempt))
                .and_then(|a| a.outcome.as_ref())
                .map(|o| match o {
                    AttemptOutcome::Failed { class, message } => {
                        format!(" · after a {} error: {}", class.as_str(), quote(m, message))
                    }
                    _ => String::new(),
                })
                .unwrap_or_default();
            format!(
                "↻ `{phase}` retry #{attempt} in {} (at {}){why}",
                duration(Duration::from_millis(*delay_ms)),
                clock(*due)
            )
        }
        EventKind::PhaseFailed { phase, error } => {
            format!("✗ `{phase}` failed: {}", quote(m, error))
        }
        EventKind::PhaseSkipped { phase, reason } => {
            format!("· `{phase}` skipped: {}", quote(m, reason))
        }
        EventKind::PhaseCached {
            phase,
            key,
            output,
            from_task,
            ..
        } => format!(
            "✓ `{phase}` cached · key {} · from task {} · 0 tokens · $0 · output {}",
            quote(m, key),
            m.mask(from_task),
            excerpt(m, output)
        ),
        EventKind::ReviewRequested { phase, reason } => {
            format!(
                "⏸ review requested at `{phase}`: {}",
                review_reason(m, reason)
            )
        }
        EventKind::TaskBlocked {
            phase,
            reason,
            escalation,
        } => format!(
            "⛔ blocked at `{phase}`: {}{}",
            quote(m, reason),
            escalation_note(m, escalation)
        ),
        EventKind::LoopRound {
            phase,
            to,
            round,
            reset,
            granted,
            ..
        } => format!(
            "↩ round {round}: `{phase}` sent the task back to `{to}`{}; {} run again",
            if *granted {
                " (granted by a person)"
            } else {
                ""
            },
            reset
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        EventKind::DecisionRecorded { decision } => decision_line(m, holds_before, after, decision),
        EventKind::BudgetRaised {
            usd, tokens, by, ..
        } => format!(
            "$ **budget raised** to {} by {by}",
            raised_limits(*usd, *tokens)
        ),
    })
}

/// An input or output: its JSON, masked, capped, as inline code.
pub(super) fn excerpt(m: &Masker, v: &Value) -> String {
    code(&cap(&m.mask(&json_head(v)), EXCERPT_CHARS))
}

/// The line for a run-level event.
pub(super) fn run_event_line(kind: &EventKind) -> Option<String> {
    match kind {
        EventKind::RunPaused { by } => Some(format!("⏸ **run paused** by {by}")),
        EventKind::RunResumed { by } => Some(format!("▶ **run resumed** by {by}")),
        EventKind::BudgetRaised {
            usd, tokens, by, ..
        } => Some(format!(
            "$ **run budget raised** to {} by {by}",
            raised_limits(*usd, *tokens)
        )),
        _ => None,
    }
}

/// The new limits of a raise: `$2.0000 and 5,000 tokens`.
fn raised_limits(usd: Option<f64>, tokens: Option<u64>) -> String {
    let parts: Vec<String> = usd
        .map(|u| format!("${u:.4}"))
        .into_iter()
        .chain(tokens.map(|t| format!("{} tokens", thousands(t))))
        .collect();
    parts.join(" and ")
}

/// Agent, model, tokens, cost and duration of an attempt.
pub(super) fn attempt_figures(
    record: Option<&AttemptRecord>,
    duration_ms: u64,
    usage: Option<&crate::engine::cost::Usage>,
    cost: Option<f64>,
) -> String {
    let mut parts = Vec::new();
    if let Some(r) = record {
        parts.push(format!("agent {}", r.agent));
    }
    let model = usage
        .and_then(|u| u.model.as_deref())
        .or(record.and_then(|r| r.model.as_deref()));
    if let Some(model) = model {
        parts.push(format!("model {model}"));
    }
    match usage {
        Some(u) => parts.push(format!(
            "{} tok ({} in / {} out)",
            thousands(u.tokens()),
            thousands(u.input_tokens),
            thousands(u.output_tokens)
        )),
        None => parts.push("no usage reported".to_string()),
    }
    parts.push(match cost {
        Some(usd) => format!("${usd:.4}"),
        None if usage.is_some() => "cost unknown".to_string(),
        None => "no cost".to_string(),
    });
    parts.push(duration(Duration::from_millis(duration_ms)));
    parts.join(" · ")
}

/// Who decided what, when, after how long, and why.
pub(super) fn decision_line(
    m: &Masker,
    holds_before: &[Hold],
    after: &Task,
    d: &Decision,
) -> String {
    // The engine fills in the phase a decision settled.
    let phase = after
        .decisions
        .last()
        .filter(|last| last.at == d.at && last.by == d.by)
        .and_then(|last| last.phase.clone())
        .or_else(|| d.phase.clone());
    let at_phase = phase
        .as_deref()
        .map(|p| format!(" at `{p}`"))
        .unwrap_or_default();
    let waited = phase
        .as_deref()
        .and_then(|p| holds_before.iter().find(|h| h.phase == p))
        .map(|h| format!(" after {} waiting", duration(between(h.since, d.at))))
        .unwrap_or_default();
    let (symbol, what) = match &d.action {
        Action::Approve => ("✔", "approved".to_string()),
        Action::Reject => ("✘", "rejected".to_string()),
        Action::SendBack { .. } => ("↩", "sent back".to_string()),
        Action::ResolveRetry => ("✔", "blocker resolved: retry".to_string()),
        Action::ResolveSkip => ("✔", "blocker resolved: skip".to_string()),
        Action::ResolveFail => ("✘", "blocker resolved: fail".to_string()),
        Action::Retry => ("↻", "retry asked".to_string()),
        Action::Cancel => ("⊘", "cancel asked".to_string()),
    };
    let mut line = format!(
        "{symbol} **{what}**{at_phase} by {} at {}{waited}",
        d.by,
        clock(d.at)
    );
    if let Action::SendBack { feedback } = &d.action {
        let _ = write!(line, " · feedback {}", quote(m, feedback));
    }
    if let Some(note) = &d.note {
        let label = match d.action {
            Action::Reject => "reason",
            _ => "note",
        };
        let _ = write!(line, " · {label} {}", quote(m, note));
    }
    line
}

/// A task's end: its state, how long it took, attempts, tokens and cost.
pub(super) fn end_line(t: &Task, at: Timestamp, m: &Masker) -> String {
    let started = t
        .phases
        .iter()
        .filter_map(|p| p.attempts.first().map(|a| a.started_at))
        .min();
    let took = match started {
        Some(s) => format!(
            "in {} ({} since submitted)",
            duration(between(s, at)),
            duration(between(t.created_at, at))
        ),
        None => format!(
            "{} after it was submitted",
            duration(between(t.created_at, at))
        ),
    };
    let symbol = super::format::symbol(t.state);
    let reason = match (&t.finish_reason, t.state) {
        (Some(r), s) if s != TaskState::Completed => format!(": {}", quote(m, r)),
        _ => String::new(),
    };
    format!(
        "{symbol} **task {}**{reason} · {took} · {} attempt(s) · {} tok · {}",
        t.state,
        t.attempts(),
        thousands(t.tokens()),
        t.cost()
    )
}

/// " · severity high · tried: …", or nothing when the agent said neither.
fn escalation_note(m: &Masker, e: &Escalation) -> String {
    let mut out = String::new();
    if let Some(s) = e.severity {
        out.push_str(&format!(" · severity {s}"));
    }
    if !e.attempted.is_empty() {
        let tried: Vec<String> = e.attempted.iter().map(|a| quote(m, a)).collect();
        out.push_str(&format!(" · tried: {}", tried.join("; ")));
    }
    out
}

pub(super) fn review_reason(m: &Masker, r: &ReviewReason) -> String {
    match r {
        ReviewReason::Always => "output needs approval".to_string(),
        ReviewReason::PhaseFailed { error } => format!("phase failed: {}", quote(m, error)),
        ReviewReason::AgentAsked { reason, escalation } => format!(
            "agent asks: {}{}",
            quote(m, reason),
            escalation_note(m, escalation)
        ),
        ReviewReason::RoundsSpent {
            to,
            feedback,
            rounds,
        } => format!(
            "sent back to `{to}` once more after {rounds} rounds: {}",
            quote(m, feedback)
        ),
        ReviewReason::Budget { scope, detail } => {
            format!("{} budget: {}", scope.as_str(), quote(m, detail))
        }
    }
}

/// Free text on one line, masked and capped, in quotation marks.
pub(super) fn quote(m: &Masker, text: &str) -> String {
    format!("“{}”", cap(&m.mask(&one_line(text)), MESSAGE_CHARS))
}
