//! The engine's semantics, end to end through a real state folder: policies,
//! conditions, retries, reviews, blockers, waves, limits and commands.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton::agents::{CallResult, Reply};
use baton::engine::event::{AttemptOutcome, ErrorClass};
use baton::engine::{Action, PhaseState, TaskState};
use baton::spec::model::{OnFailure, ReviewMode};
use serde_json::json;
use support::*;

fn find<'a>(tasks: &'a [baton::engine::Task], id: &str) -> &'a baton::engine::Task {
    tasks.iter().find(|t| t.id == id).unwrap()
}

fn fatal(msg: &str) -> CallResult {
    reply(Reply::Error {
        message: msg.into(),
        retryable: false,
    })
}

fn transient(msg: &str) -> CallResult {
    reply(Reply::Error {
        message: msg.into(),
        retryable: true,
    })
}

#[tokio::test]
async fn phases_run_in_order_and_see_earlier_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("a"), phase("b"), phase("c")], &[]);
    let agent = Arc::new(Scripted::new(|r| ok(json!({"from": r.phase}))));
    let (summary, tasks) = run_to_idle(p, dir.path(), agent.clone(), tasks(&["t1", "t2"])).await;
    assert_eq!(summary.count(TaskState::Completed), 2);
    assert_eq!(summary.exit_code(), 0);
    let c = agent.requests_for("c");
    assert_eq!(c.len(), 2);
    assert_eq!(c[0].outputs["a"], json!({"from": "a"}));
    assert_eq!(c[0].outputs["b"], json!({"from": "b"}));
    let t = find(&tasks, "t1");
    assert!(t.phases.iter().all(|p| p.state == PhaseState::Completed));
    assert_eq!(t.tokens(), 450);
    // claude-sonnet-4-5: 100 in at $3/M + 50 out at $15/M, three times.
    assert!((t.cost().usd - 3.0 * (100.0 * 3.0 + 50.0 * 15.0) / 1e6).abs() < 1e-12);
    assert!(t.cost().is_known());
}

#[tokio::test]
async fn a_fatal_phase_failure_stops_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("a"), phase("b"), phase("c")], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.phase == "b" {
            fatal("bad input")
        } else {
            ok(json!({}))
        }
    }));
    let (summary, tasks) = run_to_idle(p, dir.path(), agent.clone(), tasks(&["t1"])).await;
    assert_eq!(summary.exit_code(), 1);
    let t = find(&tasks, "t1");
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.phases[1].state, PhaseState::Failed);
    assert_eq!(t.phases[1].attempts.len(), 1, "not retryable, so no retry");
    assert_eq!(t.phases[2].state, PhaseState::Pending);
    assert!(agent.requests_for("c").is_empty());
    assert!(
        t.finish_reason
            .as_deref()
            .unwrap()
            .contains("phase b failed")
    );
}

#[tokio::test]
async fn a_non_fatal_failure_lets_the_task_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = phase("b");
    b.on_failure = OnFailure::Continue;
    let p = pipeline(vec![phase("a"), b, phase("c")], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.phase == "b" {
            fatal("no payer")
        } else {
            ok(json!({}))
        }
    }));
    let (summary, tasks) = run_to_idle(p, dir.path(), agent, tasks(&["t1"])).await;
    assert_eq!(summary.exit_code(), 0);
    let t = find(&tasks, "t1");
    assert_eq!(t.state, TaskState::Completed);
    assert_eq!(t.phases[1].state, PhaseState::Failed);
    assert_eq!(t.phases[2].state, PhaseState::Completed);
}

#[tokio::test]
async fn a_phase_whose_condition_fails_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut auth = phase("prior_auth");
    auth.when = vec!["payer".into(), "procedure".into()];
    let p = pipeline(vec![phase("a"), auth, phase("qa")], &[]);
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))));
    let inputs = vec![
        input("with", json!({"payer": "X", "procedure": "99214"})),
        input("without", json!({"payer": "X", "procedure": null})),
    ];
    let (_, tasks) = run_to_idle(p, dir.path(), agent.clone(), inputs).await;
    assert_eq!(find(&tasks, "with").phases[1].state, PhaseState::Completed);
    let without = find(&tasks, "without");
    assert_eq!(without.phases[1].state, PhaseState::Skipped);
    assert_eq!(
        without.phases[1].skip_reason.as_deref(),
        Some("input lacks procedure")
    );
    assert_eq!(without.phases[2].state, PhaseState::Completed);
    assert_eq!(without.state, TaskState::Completed);
    assert_eq!(agent.requests_for("prior_auth").len(), 1);
}

#[tokio::test]
async fn a_phase_whose_written_condition_fails_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut review = phase("legal_review");
    review.when_condition = Some(baton::spec::model::WrittenCondition {
        condition: baton::spec::model::Condition::parse("input.risk == 'high' or input.pages > 50")
            .unwrap(),
        text: "input.risk == 'high' or input.pages > 50".into(),
    });
    let p = pipeline(vec![phase("a"), review, phase("b")], &[]);
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))));
    let inputs = vec![
        input("risky", json!({"risk": "high"})),
        input("long", json!({"risk": "low", "pages": 80})),
        input("plain", json!({"risk": "low", "pages": 3})),
    ];
    let (_, tasks) = run_to_idle(p, dir.path(), agent.clone(), inputs).await;
    assert_eq!(find(&tasks, "risky").phases[1].state, PhaseState::Completed);
    assert_eq!(find(&tasks, "long").phases[1].state, PhaseState::Completed);
    let plain = find(&tasks, "plain");
    assert_eq!(plain.phases[1].state, PhaseState::Skipped);
    assert_eq!(
        plain.phases[1].skip_reason.as_deref(),
        Some("condition does not hold: input.risk == 'high' or input.pages > 50")
    );
    assert_eq!(plain.state, TaskState::Completed);
    assert_eq!(agent.requests_for("legal_review").len(), 2);
}

#[tokio::test]
async fn retryable_errors_retry_with_backoff_until_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = phase("a");
    a.retry.max_attempts = 4;
    a.retry.initial_delay = Duration::from_millis(2);
    a.retry.max_delay = Duration::from_millis(5);
    let p = pipeline(vec![a], &[]);
    // t1 succeeds on the third attempt; t2 never does.
    let agent = Arc::new(Scripted::new(|r| {
        if r.task.id == "t1" && r.attempt == 3 {
            ok(json!({"done": true}))
        } else {
            transient("overloaded")
        }
    }));
    let (_, tasks) = run_to_idle(p, dir.path(), agent, tasks(&["t1", "t2"])).await;
    let t1 = find(&tasks, "t1");
    assert_eq!(t1.state, TaskState::Completed);
    assert_eq!(t1.phases[0].attempts.len(), 3);
    let delays: Vec<u64> = t1.phases[0]
        .attempts
        .iter()
        .filter_map(|a| a.retry_delay_ms)
        .collect();
    assert_eq!(delays, vec![2, 4], "exponential from 2ms, no jitter");
    let t2 = find(&tasks, "t2");
    assert_eq!(t2.state, TaskState::Failed);
    assert_eq!(t2.phases[0].attempts.len(), 4);
    assert_eq!(
        t2.phases[0].attempts[3].retry_delay_ms, None,
        "no retry after the last attempt"
    );
    let capped: Vec<u64> = t2.phases[0]
        .attempts
        .iter()
        .filter_map(|a| a.retry_delay_ms)
        .collect();
    assert_eq!(capped, vec![2, 4, 5], "capped at max_delay");
    for a in &t2.phases[0].attempts {
        assert!(
            matches!(&a.outcome, Some(AttemptOutcome::Failed { class: ErrorClass::Retryable, message }) if message == "overloaded")
        );
    }
}

#[tokio::test]
async fn output_contract_violations_are_retried_then_fail() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = phase("a");
    a.required_output = vec!["plan".into(), "codes".into()];
    let p = pipeline(vec![a], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.task.id == "good" && r.attempt == 2 {
            ok(json!({"plan": 1, "codes": []}))
        } else {
            ok(json!({"plan": 1}))
        }
    }));
    let (_, tasks) = run_to_idle(p, dir.path(), agent, tasks(&["good", "bad"])).await;
    assert_eq!(find(&tasks, "good").state, TaskState::Completed);
    let bad = find(&tasks, "bad");
    assert_eq!(bad.state, TaskState::Failed);
    assert!(matches!(&bad.phases[0].attempts[0].outcome,
        Some(AttemptOutcome::Failed { class: ErrorClass::Contract, message }) if message.contains("codes")));
}

#[tokio::test]
async fn a_timeout_is_a_retryable_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = phase("a");
    a.timeout = Duration::from_millis(50);
    a.retry.max_attempts = 2;
    let p = pipeline(vec![a], &[]);
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))).with_delay(Duration::from_secs(30)));
    let (_, tasks) = run_to_idle(p, dir.path(), agent, tasks(&["t1"])).await;
    let t = find(&tasks, "t1");
    assert_eq!(t.state, TaskState::Failed);
    assert_eq!(t.phases[0].attempts.len(), 2);
    assert!(matches!(
        &t.phases[0].attempts[0].outcome,
        Some(AttemptOutcome::Failed {
            class: ErrorClass::Timeout,
            ..
        })
    ));
}

#[tokio::test]
async fn independent_phases_run_as_a_parallel_wave() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(
        vec![phase("a"), phase("b"), phase("c"), phase("d")],
        &[("b", &["a"]), ("c", &["a"]), ("d", &["b", "c"])],
    );
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))).with_delay(Duration::from_millis(100)));
    let (_, tasks) = run_to_idle(p, dir.path(), agent.clone(), tasks(&["t1"])).await;
    let t = find(&tasks, "t1");
    assert_eq!(t.state, TaskState::Completed);
    assert_eq!(
        agent.max_in_flight.load(Ordering::SeqCst),
        2,
        "b and c overlap"
    );
    let (b, c, d) = (&t.phases[1], &t.phases[2], &t.phases[3]);
    assert!(d.started_at.unwrap() >= b.finished_at.unwrap().max(c.finished_at.unwrap()));
}

#[tokio::test]
async fn concurrency_and_agent_limits_hold() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(vec![phase("a")], &[]);
    p.defaults.concurrency = 3;
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))).with_delay(Duration::from_millis(20)));
    let ids: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (summary, _) = run_to_idle(p.clone(), dir.path(), agent.clone(), tasks(&refs)).await;
    assert_eq!(summary.count(TaskState::Completed), 12);
    assert_eq!(agent.max_in_flight.load(Ordering::SeqCst), 3);

    let dir = tempfile::tempdir().unwrap();
    p.defaults.concurrency = 10;
    p.agents.get_mut("scripted").unwrap().max_parallel = Some(2);
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))).with_delay(Duration::from_millis(20)));
    let (summary, _) = run_to_idle(p, dir.path(), agent.clone(), tasks(&refs)).await;
    assert_eq!(summary.count(TaskState::Completed), 12);
    assert_eq!(agent.max_in_flight.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_failed_review_phase_waits_and_each_decision_does_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let mut qa = phase("qa");
    qa.on_failure = OnFailure::Review;
    qa.retry.max_attempts = 1;
    let p = pipeline(vec![phase("a"), qa], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.phase == "qa" && r.feedback.is_none() {
            fatal("codes unsupported")
        } else {
            ok(json!({"fb": r.feedback}))
        }
    }));
    let live = Live::start(
        p,
        dir.path(),
        agent.clone(),
        tasks(&["approve", "reject", "feedback"]),
    );
    live.wait_for("three reviews", |s| {
        s.tasks.iter().all(|t| t.state == TaskState::AwaitingReview)
    })
    .await;

    // Decisions on something not held are refused with a reason.
    let err = live
        .act("approve", Action::ResolveRetry, None)
        .await
        .unwrap_err();
    assert!(err.contains("nothing is blocked"), "{err}");

    live.act("approve", Action::Approve, Some("fine by me"))
        .await
        .unwrap();
    live.act("reject", Action::Reject, Some("wrong patient"))
        .await
        .unwrap();
    live.act(
        "feedback",
        Action::SendBack {
            feedback: "use ICD-10 I10".into(),
        },
        None,
    )
    .await
    .unwrap();
    let snap = live
        .wait_for("all settled", |s| {
            s.tasks.iter().all(|t| t.state.is_final())
        })
        .await;
    let approved = task(&snap, "approve");
    assert_eq!(approved.state, TaskState::Completed);
    assert_eq!(
        approved.phases[1].state,
        PhaseState::Failed,
        "an approved failure stays failed"
    );
    let decision = &approved.decisions[0];
    assert_eq!(decision.by.user, "tester");
    assert_eq!(decision.by.ssh_client.as_deref(), Some("10.0.0.9"));
    assert_eq!(decision.note.as_deref(), Some("fine by me"));
    let rejected = task(&snap, "reject");
    assert_eq!(rejected.state, TaskState::Failed);
    assert!(
        rejected
            .finish_reason
            .as_deref()
            .unwrap()
            .contains("wrong patient")
    );
    let fed = task(&snap, "feedback");
    assert_eq!(fed.state, TaskState::Completed);
    assert_eq!(fed.phases[1].attempts.len(), 2);
    assert_eq!(fed.phases[1].output, Some(json!({"fb": "use ICD-10 I10"})));
    assert_eq!(
        agent.requests_for("qa").last().unwrap().feedback.as_deref(),
        Some("use ICD-10 I10")
    );
    // A decided task refuses a second decision.
    let err = live
        .act("approve", Action::Approve, None)
        .await
        .unwrap_err();
    assert!(err.contains("nothing is awaiting review"), "{err}");
    live.stop().await;
}

#[tokio::test]
async fn review_always_and_agent_requests_hold_output_for_approval() {
    let dir = tempfile::tempdir().unwrap();
    let mut release = phase("release");
    release.review = ReviewMode::Always;
    let p = pipeline(vec![phase("draft"), release], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.phase == "draft" && r.task.id == "unsure" && r.attempt == 1 {
            reply(Reply::Review {
                reason: "low confidence".into(),
                output: json!({"draft": 1}),
                escalation: Default::default(),
            })
        } else {
            ok(json!({"phase": r.phase}))
        }
    }));
    let live = Live::start(p, dir.path(), agent, tasks(&["sure", "unsure"]));
    let snap = live
        .wait_for("reviews", |s| {
            s.tasks.iter().all(|t| t.state == TaskState::AwaitingReview)
        })
        .await;
    let unsure = task(&snap, "unsure");
    assert_eq!(unsure.holds[0].phase, "draft");
    assert!(unsure.holds[0].reason.contains("low confidence"));
    assert_eq!(unsure.phases[0].output, Some(json!({"draft": 1})));
    assert_eq!(task(&snap, "sure").holds[0].phase, "release");
    live.act("unsure", Action::Approve, None).await.unwrap();
    live.wait_for("release review", |s| {
        task(s, "unsure")
            .holds
            .first()
            .is_some_and(|h| h.phase == "release")
    })
    .await;
    live.act("unsure", Action::Approve, None).await.unwrap();
    live.act("sure", Action::Approve, None).await.unwrap();
    let snap = live
        .wait_for("done", |s| {
            s.tasks.iter().all(|t| t.state == TaskState::Completed)
        })
        .await;
    assert_eq!(task(&snap, "unsure").decisions.len(), 2);
    live.stop().await;
}

#[tokio::test]
async fn a_blocker_waits_and_each_resolution_does_what_it_says() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("a"), phase("b"), phase("c")], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.phase == "b" && r.attempt == 1 {
            reply(Reply::Blocked {
                reason: "needs the payer id".into(),
                escalation: Default::default(),
            })
        } else {
            ok(json!({"attempt": r.attempt}))
        }
    }));
    let live = Live::start(
        p,
        dir.path(),
        agent.clone(),
        tasks(&["retry", "skip", "fail"]),
    );
    let snap = live
        .wait_for("blocked", |s| {
            s.tasks.iter().all(|t| t.state == TaskState::Blocked)
        })
        .await;
    assert_eq!(task(&snap, "skip").holds[0].reason, "needs the payer id");
    let err = live.act("retry", Action::Approve, None).await.unwrap_err();
    assert!(err.contains("nothing is awaiting review"), "{err}");
    live.act("retry", Action::ResolveRetry, None).await.unwrap();
    live.act("skip", Action::ResolveSkip, None).await.unwrap();
    live.act("fail", Action::ResolveFail, None).await.unwrap();
    let snap = live
        .wait_for("final", |s| s.tasks.iter().all(|t| t.state.is_final()))
        .await;
    let retried = task(&snap, "retry");
    assert_eq!(retried.state, TaskState::Completed);
    assert_eq!(retried.phases[1].output, Some(json!({"attempt": 2})));
    let skipped = task(&snap, "skip");
    assert_eq!(skipped.state, TaskState::Completed);
    assert_eq!(skipped.phases[1].state, PhaseState::Skipped);
    assert_eq!(skipped.phases[2].state, PhaseState::Completed);
    let failed = task(&snap, "fail");
    assert_eq!(failed.state, TaskState::Failed);
    assert_eq!(failed.phases[2].state, PhaseState::Pending);
    live.stop().await;
}

#[tokio::test]
async fn cancel_stops_a_running_attempt_and_retry_reopens_a_failed_task() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("slow"), phase("b")], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.phase == "slow" && r.attempt == 1 {
            fatal("broken")
        } else {
            ok(json!({}))
        }
    }));
    let slow = Arc::new(Scripted::new(|_| ok(json!({}))).with_delay(Duration::from_secs(60)));
    let live = Live::start(p.clone(), dir.path(), slow.clone(), tasks(&["slow"]));
    live.wait_for("running", |s| task(s, "slow").state == TaskState::Running)
        .await;
    live.act("slow", Action::Cancel, Some("wrong note"))
        .await
        .unwrap();
    let snap = live
        .wait_for("cancelled", |s| {
            task(s, "slow").state == TaskState::Cancelled
        })
        .await;
    let t = task(&snap, "slow");
    assert_eq!(
        t.phases[0].attempts[0].outcome,
        Some(AttemptOutcome::Cancelled)
    );
    assert!(t.finish_reason.as_deref().unwrap().contains("wrong note"));
    let err = live.act("slow", Action::Approve, None).await.unwrap_err();
    assert!(err.contains("cancelled"), "{err}");
    live.stop().await;

    let dir = tempfile::tempdir().unwrap();
    let live = Live::start(p, dir.path(), agent, tasks(&["flaky"]));
    live.wait_for("failed", |s| task(s, "flaky").state == TaskState::Failed)
        .await;
    live.act("flaky", Action::Retry, None).await.unwrap();
    let snap = live
        .wait_for("completed", |s| {
            task(s, "flaky").state == TaskState::Completed
        })
        .await;
    assert_eq!(task(&snap, "flaky").phases[0].attempts.len(), 2);
    live.stop().await;
}

#[tokio::test]
async fn pause_starts_nothing_new_until_resume() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("a"), phase("b")], &[]);
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))).with_delay(Duration::from_millis(100)));
    let live = Live::start(p, dir.path(), agent.clone(), tasks(&["t1"]));
    live.handle
        .send(baton::engine::Command::Pause {
            by: baton::engine::Actor::current(),
        })
        .await
        .unwrap();
    let snap = live.wait_for("paused", |s| s.paused).await;
    // Whatever was running finishes; nothing new starts.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let snap2 = live.handle.snapshot().await.unwrap();
    assert!(snap2.paused);
    let started = |s: &baton::engine::RunSnapshot| task(s, "t1").attempts();
    assert!(started(&snap2) <= started(&snap).max(1));
    assert_ne!(task(&snap2, "t1").state, TaskState::Completed);
    live.handle
        .send(baton::engine::Command::Resume {
            by: baton::engine::Actor::current(),
        })
        .await
        .unwrap();
    live.wait_for("completed", |s| task(s, "t1").state == TaskState::Completed)
        .await;
    live.stop().await;
}

#[tokio::test]
async fn unknown_models_cost_unknown_not_zero() {
    let dir = tempfile::tempdir().unwrap();
    let p = pipeline(vec![phase("a"), phase("b")], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        let mut res = ok(json!({}));
        if r.phase == "b" {
            res.usage.as_mut().unwrap().model = Some("in-house-7b".into());
        }
        res
    }));
    let (_, tasks) = run_to_idle(p, dir.path(), agent, tasks(&["t1"])).await;
    let t = find(&tasks, "t1");
    assert_eq!(t.phases[1].cost().unknown, 1);
    assert_eq!(t.cost().unknown, 1);
    assert!(t.cost().usd > 0.0);
    assert!(t.cost().to_string().contains("unknown"));
}
