//! The task fold's tests: every event from the states it applies to, and
//! refusals that leave the task as it was.

use super::*;
use crate::engine::event::{Action, Actor, ErrorClass};
use serde_json::json;

fn ev(seq: u64, kind: EventKind) -> Event {
    Event {
        seq,
        at: Timestamp::from_second(1_700_000_000 + seq as i64).unwrap(),
        task: Some("t".into()),
        kind,
    }
}

fn started(phase: &str, attempt: u32) -> EventKind {
    EventKind::PhaseStarted {
        phase: phase.into(),
        attempt,
        agent: "a".into(),
        model: None,
        feedback: None,
        route: None,
        role: None,
    }
}

fn finished(phase: &str, attempt: u32, outcome: AttemptOutcome) -> EventKind {
    EventKind::AttemptFinished {
        phase: phase.into(),
        attempt,
        duration_ms: 5,
        outcome,
        usage: None,
        cost_usd: None,
        output: Some(json!({"ok": true})),
        trace: vec![],
        http: None,
        retry_after_ms: None,
    }
}

fn decision(action: Action) -> EventKind {
    EventKind::DecisionRecorded {
        decision: Decision {
            action,
            phase: None,
            by: Actor {
                user: "ann".into(),
                ssh_client: None,
            },
            at: Timestamp::from_second(1_800_000_000).unwrap(),
            note: None,
        },
    }
}

fn task() -> Task {
    Task::new(
        "t".into(),
        json!({}),
        &["a".to_string(), "b".to_string()],
        Timestamp::UNIX_EPOCH,
        1,
    )
}

/// Applies events in order, failing the test on the first refusal.
fn run(task: &mut Task, kinds: Vec<EventKind>) {
    for (i, kind) in kinds.into_iter().enumerate() {
        let e = ev(task.seq + 1 + i as u64, kind);
        task.apply(&e)
            .unwrap_or_else(|err| panic!("event {i} refused: {err}"));
    }
}

fn refused_untouched(task: &Task, kind: EventKind) {
    let mut copy = task.clone();
    let result = copy.apply(&ev(task.seq + 1, kind.clone()));
    assert!(
        result.is_err(),
        "{kind:?} should be refused in {}",
        task.state
    );
    assert_eq!(&copy, task, "a refused event changed the task");
}

#[test]
fn a_refused_event_changes_nothing() {
    let mut t = task();
    refused_untouched(&t, finished("a", 1, AttemptOutcome::Succeeded));
    refused_untouched(&t, started("a", 2));
    refused_untouched(&t, started("nope", 1));
    refused_untouched(&t, decision(Action::Approve));
    refused_untouched(&t, EventKind::TaskSubmitted { input: json!({}) });
    run(&mut t, vec![started("a", 1)]);
    refused_untouched(&t, started("a", 2));
    refused_untouched(
        &t,
        EventKind::TaskFinished {
            state: TaskState::Completed,
            reason: None,
        },
    );
    refused_untouched(
        &t,
        EventKind::TaskFinished {
            state: TaskState::Cancelled,
            reason: None,
        },
    );
    refused_untouched(&t, decision(Action::ResolveSkip));
    run(
        &mut t,
        vec![
            finished("a", 1, AttemptOutcome::Succeeded),
            started("b", 1),
            finished("b", 1, AttemptOutcome::Succeeded),
        ],
    );
    run(
        &mut t,
        vec![EventKind::TaskFinished {
            state: TaskState::Completed,
            reason: None,
        }],
    );
    for kind in [
        started("a", 2),
        decision(Action::Cancel),
        decision(Action::Retry),
        decision(Action::Approve),
        EventKind::ReviewRequested {
            phase: "a".into(),
            reason: ReviewReason::Always,
        },
        EventKind::TaskFinished {
            state: TaskState::Failed,
            reason: None,
        },
    ] {
        refused_untouched(&t, kind);
    }
}

#[test]
fn events_for_another_task_are_refused() {
    let t = task();
    let mut e = ev(2, started("a", 1));
    e.task = Some("other".into());
    assert!(matches!(
        t.clone().apply(&e),
        Err(ApplyError::WrongTask { .. })
    ));
}

#[test]
fn a_retry_keeps_each_attempt_and_its_delay() {
    let mut t = task();
    let failed = AttemptOutcome::Failed {
        class: ErrorClass::Timeout,
        message: "slow".into(),
    };
    run(
        &mut t,
        vec![
            started("a", 1),
            finished("a", 1, failed),
            EventKind::RetryScheduled {
                phase: "a".into(),
                attempt: 2,
                delay_ms: 1000,
                due: Timestamp::from_second(1_700_000_100).unwrap(),
            },
        ],
    );
    assert_eq!(t.state, TaskState::Retrying);
    assert_eq!(t.phases[0].state, PhaseState::Running);
    assert_eq!(t.phases[0].attempts[0].retry_delay_ms, Some(1000));
    assert_eq!(t.phases[0].error.as_deref(), Some("slow"));
    run(
        &mut t,
        vec![started("a", 2), finished("a", 2, AttemptOutcome::Succeeded)],
    );
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.phases[0].state, PhaseState::Completed);
    assert_eq!(t.phases[0].attempts.len(), 2);
    assert_eq!(t.phases[0].error, None);
}

#[test]
fn sums_of_stored_figures_saturate_rather_than_wrap() {
    // Figures a folder may hold from before replies were checked.
    let huge = |phase: &str, outcome| EventKind::AttemptFinished {
        phase: phase.into(),
        attempt: 1,
        duration_ms: 5,
        outcome,
        usage: Some(Usage {
            input_tokens: u64::MAX,
            output_tokens: 4,
            ..Usage::default()
        }),
        cost_usd: Some(1e308),
        output: Some(json!({"ok": true})),
        trace: vec![],
        http: None,
        retry_after_ms: None,
    };
    let mut t = task();
    run(
        &mut t,
        vec![
            started("a", 1),
            huge("a", AttemptOutcome::Succeeded),
            started("b", 1),
            huge("b", AttemptOutcome::Succeeded),
        ],
    );
    assert_eq!(t.phases[0].tokens(), u64::MAX);
    assert_eq!(t.tokens(), u64::MAX, "not wrapped to a small figure");
    assert!(t.cost().usd.is_finite(), "{}", t.cost());
}

#[test]
fn a_light_fold_reaches_the_same_state_without_the_payloads() {
    let events = vec![
        started("a", 1),
        finished(
            "a",
            1,
            AttemptOutcome::Failed {
                class: ErrorClass::Timeout,
                message: "slow".into(),
            },
        ),
        EventKind::RetryScheduled {
            phase: "a".into(),
            attempt: 2,
            delay_ms: 1000,
            due: Timestamp::from_second(1_700_000_100).unwrap(),
        },
        started("a", 2),
        finished("a", 2, AttemptOutcome::Succeeded),
    ];
    let (mut full, mut light) = (task(), task());
    for (i, kind) in events.into_iter().enumerate() {
        let e = ev(2 + i as u64, kind);
        full.apply(&e).unwrap();
        light.apply_light(&e).unwrap();
    }
    assert_eq!(full.phases[0].output, Some(json!({"ok": true})));
    assert_eq!(light.phases[0].output, None);
    assert_eq!((light.state, light.seq), (full.state, full.seq));
    assert_eq!(light.phases[0].state, full.phases[0].state);
    assert_eq!(light.phases[0].attempts.len(), 2);
    assert_eq!(light.tokens(), full.tokens());
    assert!(
        light
            .apply_light(&Event {
                task: Some("other".into()),
                ..ev(9, started("b", 1))
            })
            .is_err()
    );
}

#[test]
fn two_holds_queue_and_each_decision_settles_its_own() {
    let mut t = task();
    run(
        &mut t,
        vec![
            started("a", 1),
            started("b", 1),
            finished(
                "a",
                1,
                AttemptOutcome::ReviewRequested {
                    reason: "unsure".into(),
                    escalation: Default::default(),
                },
            ),
            EventKind::ReviewRequested {
                phase: "a".into(),
                reason: ReviewReason::AgentAsked {
                    reason: "unsure".into(),
                    escalation: Default::default(),
                },
            },
            finished(
                "b",
                1,
                AttemptOutcome::Blocked {
                    reason: "no key".into(),
                    escalation: Default::default(),
                },
            ),
            EventKind::TaskBlocked {
                phase: "b".into(),
                reason: "no key".into(),
                escalation: Default::default(),
            },
        ],
    );
    assert_eq!(t.state, TaskState::AwaitingReview);
    assert_eq!(t.holds.len(), 2);
    run(&mut t, vec![decision(Action::Approve)]);
    assert_eq!(t.state, TaskState::Blocked, "the blocker is next");
    assert_eq!(
        t.decisions[0].phase.as_deref(),
        Some("a"),
        "the decision names the phase it settled"
    );
    run(&mut t, vec![decision(Action::ResolveRetry)]);
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.phases[1].state, PhaseState::Pending);
    assert_eq!(t.phases[1].tries, 0);
    // A second operator deciding late learns who was first.
    let err = t
        .apply(&ev(99, decision(Action::Reject)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("nothing is awaiting review (task is running); already decided by ann: approve on phase a at"),
        "{err}"
    );
    let err = t
        .apply(&ev(100, decision(Action::ResolveSkip)))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("already decided by ann: resolve: retry on phase b"),
        "{err}"
    );
}

#[test]
fn an_interrupted_attempt_does_not_count_against_retries() {
    let mut t = task();
    run(
        &mut t,
        vec![
            started("a", 1),
            finished("a", 1, AttemptOutcome::Interrupted),
        ],
    );
    assert_eq!(t.phases[0].state, PhaseState::Pending);
    assert_eq!(t.phases[0].tries, 0);
    run(&mut t, vec![started("a", 2)]);
    assert_eq!(t.phases[0].tries, 1);
}

#[test]
fn cancel_closes_the_running_attempt() {
    let mut t = task();
    run(&mut t, vec![started("a", 1), decision(Action::Cancel)]);
    assert_eq!(t.state, TaskState::Cancelled);
    assert_eq!(
        t.phases[0].attempts[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    assert_eq!(t.phases[0].state, PhaseState::Pending);
    assert!(t.finish_reason.as_deref().unwrap().contains("ann"));
}

#[test]
fn a_task_failed_by_one_phase_ends_the_attempts_running_beside_it() {
    let mut t = task();
    run(
        &mut t,
        vec![
            started("a", 1),
            started("b", 1),
            finished(
                "a",
                1,
                AttemptOutcome::Failed {
                    class: ErrorClass::Fatal,
                    message: "no".into(),
                },
            ),
            EventKind::PhaseFailed {
                phase: "a".into(),
                error: "no".into(),
            },
            EventKind::TaskFinished {
                state: TaskState::Failed,
                reason: Some("phase a failed".into()),
            },
        ],
    );
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.phases[0].state, PhaseState::Failed);
    let b = &t.phases[1];
    assert_eq!(b.state, PhaseState::Pending);
    assert_eq!(b.attempts[0].outcome, Some(AttemptOutcome::Cancelled));
    assert!(b.attempts[0].finished_at.is_some());
    // Its late result is refused: the attempt is over.
    refused_untouched(&t, finished("b", 1, AttemptOutcome::Succeeded));
}

fn budget_hold(phase: &str) -> EventKind {
    EventKind::ReviewRequested {
        phase: phase.into(),
        reason: ReviewReason::Budget {
            scope: crate::engine::event::BudgetScope::Run,
            detail: "$1.0000 reached: $1.0000 spent".into(),
        },
    }
}

#[test]
fn a_budget_hold_can_stop_a_task_before_its_first_attempt() {
    let mut t = task();
    run(&mut t, vec![budget_hold("a")]);
    assert_eq!(t.state, TaskState::AwaitingReview);
    assert_eq!(t.phases[0].state, PhaseState::Pending);
    assert!(t.holds[0].is_budget());
    assert_eq!(
        t.holds[0].reason,
        "budget: run $1.0000 reached: $1.0000 spent"
    );
    refused_untouched(&t, started("a", 1));
    refused_untouched(
        &t,
        decision(Action::SendBack {
            feedback: "x".into(),
        }),
    );
    run(&mut t, vec![decision(Action::Approve)]);
    assert_eq!(t.state, TaskState::Running);
    assert!(
        !t.phases[0].approved,
        "approving a budget hold accepts no output"
    );
    run(
        &mut t,
        vec![started("a", 1), finished("a", 1, AttemptOutcome::Succeeded)],
    );
    assert_eq!(t.phases[0].state, PhaseState::Completed);
}

#[test]
fn a_budget_hold_fits_only_before_an_attempt() {
    let mut t = task();
    run(&mut t, vec![started("a", 1)]);
    refused_untouched(&t, budget_hold("a"));
    let failed = AttemptOutcome::Failed {
        class: ErrorClass::Retryable,
        message: "busy".into(),
    };
    run(&mut t, vec![finished("a", 1, failed)]);
    // Between attempts, waiting to retry: the next one may be held.
    run(&mut t, vec![budget_hold("a")]);
    assert_eq!(t.state, TaskState::AwaitingReview);
    run(&mut t, vec![decision(Action::Reject)]);
    assert_eq!(t.state, TaskState::Failed);
}

#[test]
fn a_raise_is_kept_on_the_task_and_only_goes_up() {
    let mut t = task();
    let raise = |usd: f64, accept_unknown: u32| EventKind::BudgetRaised {
        usd: Some(usd),
        tokens: None,
        accept_unknown,
        by: Actor::engine(),
    };
    run(&mut t, vec![raise(2.0, 1), raise(1.0, 0)]);
    assert_eq!(t.state, TaskState::Pending);
    assert_eq!(t.budget.usd, Some(2.0));
    assert_eq!(t.budget.accept_unknown, 1);
    let json = serde_json::to_string(&t).unwrap();
    assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), t);
    run(&mut t, vec![decision(Action::Cancel)]);
    refused_untouched(&t, raise(5.0, 0));
}

#[test]
fn records_written_before_budgets_and_routes_still_load() {
    let old = r#"{"id":"t","input":{},"state":"running","created_at":"2025-01-01T00:00:00Z",
        "updated_at":"2025-01-01T00:00:00Z","phases":[{"id":"a","state":"running","attempts":[
        {"number":1,"agent":"x","started_at":"2025-01-01T00:00:00Z"}]}],"seq":3}"#;
    let t: Task = serde_json::from_str(old).unwrap();
    assert!(t.budget.is_none());
    assert_eq!(t.phases[0].attempts[0].route, None);
    assert_eq!(t.phases[0].attempts[0].role, None);
    let ev: Event = serde_json::from_str(
        r#"{"seq":4,"at":"2025-01-01T00:00:01Z","task":"t","event":"phase_started","phase":"a","attempt":2,"agent":"x"}"#,
    )
    .unwrap();
    assert!(matches!(
        ev.kind,
        EventKind::PhaseStarted {
            route: None,
            role: None,
            ..
        }
    ));
}

#[test]
fn snapshots_round_trip_through_json() {
    let mut t = task();
    run(
        &mut t,
        vec![started("a", 1), finished("a", 1, AttemptOutcome::Succeeded)],
    );
    let json = serde_json::to_string(&t).unwrap();
    let back: Task = serde_json::from_str(&json).unwrap();
    assert_eq!(back, t);
}

fn cached(phase: &str) -> EventKind {
    EventKind::PhaseCached {
        phase: phase.into(),
        key: "k".into(),
        output: json!({"rows": 1}),
        from_task: "t0".into(),
        stored_at: Timestamp::UNIX_EPOCH,
    }
}

#[test]
fn a_cached_output_completes_a_phase_without_an_attempt_and_only_when_none_runs() {
    let mut t = task();
    run(&mut t, vec![cached("a")]);
    let a = &t.phases[0];
    assert_eq!(a.state, PhaseState::Completed);
    assert!(a.attempts.is_empty() && a.tries == 0);
    assert_eq!(a.output, Some(json!({"rows": 1})));
    assert_eq!(a.cached.as_ref().unwrap().from_task, "t0");
    assert_eq!(t.state, TaskState::Running);
    assert_eq!(t.tokens(), 0);
    // A completed phase, or one whose attempt runs, takes none.
    refused_untouched(&t, cached("a"));
    run(&mut t, vec![started("b", 1)]);
    refused_untouched(&t, cached("b"));
    // Between attempts, a retry may take one.
    run(
        &mut t,
        vec![finished(
            "b",
            1,
            AttemptOutcome::Failed {
                class: ErrorClass::Retryable,
                message: "busy".into(),
            },
        )],
    );
    run(&mut t, vec![cached("b")]);
    assert_eq!(t.phases[1].state, PhaseState::Completed);
    // A new attempt is its own again.
    let mut again = task();
    run(&mut again, vec![cached("a")]);
    again.phases[0].state = PhaseState::Pending;
    run(&mut again, vec![started("a", 1)]);
    assert!(again.phases[0].cached.is_none());
}
