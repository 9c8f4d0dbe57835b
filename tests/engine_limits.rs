//! Figures at and past their limits, end to end through a real state
//! folder: a retry delay too long for the clock, token counts no call can
//! have, outputs that are not objects. Pipelines built in code skip
//! `validate`, as a folder written before the limits existed may.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton::agents::{CallResult, Reply};
use baton::engine::TaskState;
use baton::engine::cost::Usage;
use baton::engine::event::{AttemptOutcome, ErrorClass};
use baton::spec::model::BudgetLimits;
use jiff::Timestamp;
use serde_json::json;
use support::*;

fn transient() -> CallResult {
    reply(Reply::Error {
        message: "overloaded".into(),
        retryable: true,
    })
}

#[tokio::test]
async fn a_retry_delay_past_the_clock_waits_instead_of_panicking_even_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = phase("a");
    // `initial_delay = "100000000h"`: eleven thousand years.
    a.retry.initial_delay = Duration::from_secs(100_000_000 * 3600);
    a.retry.max_delay = Duration::from_secs(200_000_000 * 3600);
    a.retry.jitter = 0.2;
    let p = pipeline(vec![a], &[]);
    let agent = Arc::new(Scripted::new(|_| transient()));
    for round in 0..3 {
        let inputs = if round == 0 {
            tasks(&["t1"])
        } else {
            Vec::new()
        };
        let live = Live::start(p.clone(), dir.path(), agent.clone(), inputs);
        let snap = live
            .wait_for("the retry to be scheduled", |s| {
                s.tasks.iter().any(|t| t.state == TaskState::Retrying)
            })
            .await;
        let t1 = task(&snap, "t1");
        assert_eq!(
            t1.phases[0].retry_due,
            Some(Timestamp::MAX),
            "saturates at the clock's end"
        );
        assert!(t1.phases[0].attempts[0].retry_delay_ms.unwrap() >= 80_000_000 * 3_600_000);
        live.stop().await;
    }
    assert_eq!(agent.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_count_no_call_can_have_fails_the_attempt_and_cannot_wrap_under_a_budget() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(vec![phase("a"), phase("b")], &[]);
    p.defaults.task_budget = BudgetLimits {
        usd: None,
        tokens: Some(1000),
    };
    // Wrapped, u64::MAX + 4 would be 3 tokens: well under the budget.
    let agent = Arc::new(Scripted::new(|_| CallResult {
        reply: Ok(Reply::Output {
            output: json!({"done": true}),
        }),
        usage: Some(Usage {
            input_tokens: u64::MAX,
            output_tokens: 4,
            ..Usage::default()
        }),
        trace: Vec::new(),
        http: None,
        retry_after: None,
    }));
    let (_, tasks) = run_to_idle(p, dir.path(), agent.clone(), tasks(&["t1"])).await;
    let t1 = &tasks[0];
    assert_eq!(t1.state, TaskState::Failed);
    let attempt = &t1.phases[0].attempts[0];
    match &attempt.outcome {
        Some(AttemptOutcome::Failed {
            class: ErrorClass::Protocol,
            message,
        }) => assert!(
            message.contains("\"input_tokens\" = 18446744073709551615"),
            "{message}"
        ),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(attempt.usage.is_none(), "impossible figures are not kept");
    assert!(agent.requests_for("b").is_empty());
}

#[tokio::test]
async fn an_output_that_is_not_an_object_is_refused_as_a_phase_output() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("a"), phase("b")], &[]);
    let agent = Arc::new(Scripted::new(|_| ok(json!(5))));
    let (_, tasks) = run_to_idle(p, dir.path(), agent.clone(), tasks(&["t1"])).await;
    let t1 = &tasks[0];
    assert_eq!(t1.state, TaskState::Failed);
    assert_eq!(t1.phases[0].output, None);
    match &t1.phases[0].attempts[0].outcome {
        Some(AttemptOutcome::Failed {
            class: ErrorClass::Protocol,
            message,
        }) => assert!(
            message.contains("the output is a number, not a JSON object"),
            "{message}"
        ),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert!(agent.requests_for("b").is_empty());
}
