//! What a task needs next, decided from its state alone. Because these are
//! pure functions of the task, a restart that lands between two related
//! events (a phase failed, but the review was not yet requested) simply asks
//! again and gets the missing step.

use jiff::Timestamp;
use serde_json::Value;

use super::event::{AttemptOutcome, EventKind, ReviewReason};
use super::send_back;
use super::state::{PhaseState, TaskState};
use super::task::{PhaseRecord, Task};
use crate::spec::model::{OnFailure, PhaseSpec, Pipeline, ReviewMode};

/// A phase no longer holds up the phases after it.
pub fn is_settled(p: &PhaseRecord, on_failure: OnFailure, needs_approval: bool) -> bool {
    match p.state {
        PhaseState::Completed => !needs_approval || p.approved,
        PhaseState::Skipped => true,
        PhaseState::Failed => on_failure == OnFailure::Continue || p.approved,
        PhaseState::Pending | PhaseState::Running => false,
    }
}

/// Its output waits for a person, or for its send-back to be carried out.
/// A cached output was approved when it was stored, if it needed to be.
pub fn needs_approval(p: &PhaseRecord, review: ReviewMode) -> bool {
    p.cached.is_none()
        && (review == ReviewMode::Always || p.agent_asked_review() || p.sent_back().is_some())
}

fn settled_at(task: &Task, pipeline: &Pipeline, idx: usize) -> bool {
    let spec = &pipeline.phases[idx];
    let p = &task.phases[idx];
    is_settled(p, spec.on_failure, needs_approval(p, spec.review))
}

fn held(task: &Task, phase: &str) -> bool {
    task.holds.iter().any(|h| h.phase == phase)
}

/// Fields of `fields` that `value` lacks (absent or null): a phase's `when`
/// against the task input, or its `required_output` against an output.
pub fn missing_fields<'a>(value: &Value, fields: &'a [String]) -> Vec<&'a str> {
    fields
        .iter()
        .filter(|f| value.get(f.as_str()).is_none_or(Value::is_null))
        .map(String::as_str)
        .collect()
}

/// Why a phase's `when` keeps it from running for this input, if it does.
pub fn when_fails(spec: &PhaseSpec, input: &Value) -> Option<String> {
    let missing = missing_fields(input, &spec.when);
    if !missing.is_empty() {
        return Some(format!("input lacks {}", missing.join(", ")));
    }
    spec.when_condition
        .as_ref()
        .filter(|w| !w.condition.eval(input))
        .map(|w| format!("condition does not hold: {}", w.text))
}

/// The next event the task's own state calls for, if any. Call again after
/// applying it until it returns `None`.
pub fn follow_up(task: &Task, pipeline: &Pipeline) -> Option<EventKind> {
    if task.state.is_final() {
        return None;
    }
    for (idx, spec) in pipeline.phases.iter().enumerate() {
        let p = &task.phases[idx];
        let id = &p.id;
        match p.state {
            PhaseState::Failed if !p.approved && !held(task, id) => match spec.on_failure {
                OnFailure::Stop => {
                    let error = p.error.clone().unwrap_or_else(|| "failed".into());
                    return Some(EventKind::TaskFinished {
                        state: TaskState::Failed,
                        reason: Some(format!("phase {id} failed: {error}")),
                    });
                }
                OnFailure::Review => {
                    let error = p.error.clone().unwrap_or_else(|| "failed".into());
                    return Some(EventKind::ReviewRequested {
                        phase: id.clone(),
                        reason: ReviewReason::PhaseFailed { error },
                    });
                }
                OnFailure::Continue => {}
            },
            PhaseState::Completed if !p.approved && p.cached.is_none() && !held(task, id) => {
                if p.sent_back().is_some() {
                    // A round waits while a phase it would reset runs.
                    match send_back::next(task, pipeline, idx) {
                        Some(step) => return Some(step),
                        None => continue,
                    }
                }
                if let Some(AttemptOutcome::ReviewRequested { reason, escalation }) =
                    p.attempts.last().and_then(|a| a.outcome.as_ref())
                {
                    return Some(EventKind::ReviewRequested {
                        phase: id.clone(),
                        reason: ReviewReason::AgentAsked {
                            reason: reason.clone(),
                            escalation: escalation.clone(),
                        },
                    });
                }
                if spec.review == ReviewMode::Always {
                    return Some(EventKind::ReviewRequested {
                        phase: id.clone(),
                        reason: ReviewReason::Always,
                    });
                }
            }
            PhaseState::Pending if !held(task, id) => {
                if let Some(AttemptOutcome::Blocked { reason, escalation }) =
                    p.attempts.last().and_then(|a| a.outcome.as_ref())
                    && p.tries > 0
                {
                    return Some(EventKind::TaskBlocked {
                        phase: id.clone(),
                        reason: reason.clone(),
                        escalation: escalation.clone(),
                    });
                }
            }
            PhaseState::Running if p.running_attempt().is_none() && p.retry_due.is_none() => {
                // Between attempts with no retry scheduled: either an operator
                // asked to retry now (the start happens in `ready_phases`), or
                // the engine stopped before deciding. Decide now.
                if let Some(AttemptOutcome::Failed { class, message }) =
                    p.attempts.last().and_then(|a| a.outcome.as_ref())
                    && (!class.is_retryable() || p.tries >= spec.retry.max_attempts)
                {
                    return Some(EventKind::PhaseFailed {
                        phase: id.clone(),
                        error: format!("{}: {message}", class.as_str()),
                    });
                }
            }
            _ => {}
        }
    }
    if let Some(kind) = super::fan_out::follow_up(task, pipeline) {
        return Some(kind);
    }
    if !task.holds.is_empty() {
        return None;
    }
    // Switched-off phases are skipped at once, so every task records them.
    for (idx, spec) in pipeline.phases.iter().enumerate() {
        let p = &task.phases[idx];
        if let (PhaseState::Pending, Some(reason)) = (p.state, &spec.disabled) {
            return Some(EventKind::PhaseSkipped {
                phase: p.id.clone(),
                reason: reason.clone(),
            });
        }
    }
    // Phases whose turn has come but whose condition fails are skipped.
    for (idx, spec) in pipeline.phases.iter().enumerate() {
        let p = &task.phases[idx];
        if p.state == PhaseState::Pending
            && p.attempts.is_empty()
            && deps_settled(task, pipeline, idx)
            && let Some(reason) = when_fails(spec, &task.input)
        {
            return Some(EventKind::PhaseSkipped {
                phase: p.id.clone(),
                reason,
            });
        }
    }
    let all_settled = (0..pipeline.phases.len()).all(|i| settled_at(task, pipeline, i));
    if all_settled
        && task.holds.is_empty()
        && matches!(task.state, TaskState::Pending | TaskState::Running)
    {
        return Some(EventKind::TaskFinished {
            state: TaskState::Completed,
            reason: None,
        });
    }
    None
}

fn deps_settled(task: &Task, pipeline: &Pipeline, idx: usize) -> bool {
    pipeline.phases[idx]
        .after
        .iter()
        .all(|&d| settled_at(task, pipeline, d))
}

/// Phases that can start an attempt now. Empty while the task is held or final.
pub fn ready_phases(task: &Task, pipeline: &Pipeline, now: Timestamp) -> Vec<usize> {
    if task.state.is_final() || !task.holds.is_empty() {
        return Vec::new();
    }
    // A send-back about to reset phases: only retries already under way go on.
    let round_due = send_back::awaits_round(task);
    let mut ready = Vec::new();
    for (idx, spec) in pipeline.phases.iter().enumerate() {
        let p = &task.phases[idx];
        let startable = match p.state {
            // A `for_each` phase starts items, not attempts (`fan_out::ready_items`).
            PhaseState::Pending => {
                !round_due
                    && spec.fan_out.is_none()
                    && spec.disabled.is_none()
                    && deps_settled(task, pipeline, idx)
                    && (!p.attempts.is_empty() || when_fails(spec, &task.input).is_none())
            }
            // Between attempts, its wait over (or cut short), and a retry is still allowed.
            PhaseState::Running => {
                p.running_attempt().is_none()
                    && p.retry_due.is_none_or(|due| due <= now)
                    && matches!(
                        p.attempts.last().and_then(|a| a.outcome.as_ref()),
                        Some(AttemptOutcome::Failed { class, .. }) if class.is_retryable()
                    )
                    && p.tries < spec.retry.max_attempts
            }
            _ => false,
        };
        if startable {
            ready.push(idx);
        }
    }
    ready
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;

    const TWO: &str = "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"one\"\nagent = \"a\"\nenabled = false\n[[phases]]\nid = \"two\"\nagent = \"a\"\n";

    #[test]
    fn a_disabled_phase_is_skipped_with_its_reason_and_never_started() {
        let pipeline = crate::spec::parse(TWO, Path::new("p.toml")).expect("valid");
        let ids: Vec<String> = pipeline.phases.iter().map(|p| p.id.clone()).collect();
        let mut task = Task::new("t".into(), json!({}), &ids, Timestamp::UNIX_EPOCH, 1);
        assert!(ready_phases(&task, &pipeline, Timestamp::UNIX_EPOCH).is_empty());
        match follow_up(&task, &pipeline) {
            Some(EventKind::PhaseSkipped { phase, reason }) => {
                assert_eq!(phase, "one");
                assert_eq!(reason, crate::spec::IN_FILE);
            }
            other => panic!("expected a skip, got {other:?}"),
        }
        // Once skipped, the phase after it runs.
        task.phases[0].state = PhaseState::Skipped;
        assert_eq!(follow_up(&task, &pipeline), None);
        assert_eq!(ready_phases(&task, &pipeline, Timestamp::UNIX_EPOCH), [1]);
    }
}
