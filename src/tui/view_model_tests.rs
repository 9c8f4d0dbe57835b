use jiff::SignedDuration;

use super::*;
use crate::engine::event::{Action as Decide, Actor, Decision};
use crate::engine::live::{LiveEvent, LiveKind};
use crate::tui::test_support::{Journal, empty_snapshot, now, sample_events, sample_run, t0};

/// Totals recomputed from scratch, to check the running ones against.
fn recount(view: &RunView) -> ([usize; 8], u64, CostTotal, usize) {
    let mut counts = [0; 8];
    let mut tokens = 0;
    let mut cost = CostTotal::default();
    let mut held = 0;
    for e in view.entries() {
        counts[e.task.state as usize] += 1;
        tokens += e.task.tokens();
        cost.merge(e.task.cost());
        held += usize::from(e.task.state.needs_human());
    }
    (counts, tokens, cost, held)
}

fn assert_totals_match(view: &RunView) {
    let (counts, tokens, cost, held) = recount(view);
    for s in TaskState::ALL {
        assert_eq!(view.count(s), counts[s as usize], "{s}");
    }
    assert_eq!(view.tokens(), tokens);
    assert!((view.cost().usd - cost.usd).abs() < 1e-9);
    assert_eq!(view.cost().unknown, cost.unknown);
    assert_eq!(view.review_len(), held);
}

#[test]
fn sample_run_has_one_task_in_every_state() {
    let view = sample_run();
    use TaskState::*;
    let want = [
        (Pending, 1),
        (Running, 1),
        (Retrying, 1),
        (AwaitingReview, 1),
        (Blocked, 1),
        (Completed, 2),
        (Failed, 1),
        (Cancelled, 1),
    ];
    for (state, n) in want {
        assert_eq!(view.count(state), n, "{state}");
    }
    assert_eq!(view.len(), 9);
    assert_eq!(view.unfinished(), 5);
}

#[test]
fn running_totals_match_a_recount_after_every_event() {
    let mut view = RunView::from_snapshot(empty_snapshot());
    for ev in sample_events() {
        assert_eq!(view.apply(&ev), Applied::Changed);
        assert_totals_match(&view);
    }
    let cost = view.cost();
    // t-007 ran three attempts on a model nobody priced.
    assert_eq!(cost.unknown, 3);
    assert!(!cost.is_known());
    assert!(cost.to_string().contains("unknown"), "{cost}");
}

#[test]
fn review_queue_lists_oldest_hold_first_with_phase_and_reason() {
    let view = sample_run();
    let queue: Vec<_> = view.review_queue().collect();
    let ids: Vec<_> = queue.iter().map(|e| e.task.id.as_str()).collect();
    assert_eq!(ids, ["t-005", "t-004"]);
    assert_eq!(queue[0].kind, HoldKind::Blocked);
    assert_eq!(queue[0].phase, "research");
    assert_eq!(queue[0].reason, "needs access to the paywalled source");
    assert_eq!(queue[1].phase, "draft");
    assert_eq!(queue[1].since, t0() + SignedDuration::from_secs(201));
    assert_eq!(view.review_position("t-005"), Some(0));
    assert_eq!(view.review_position("t-004"), Some(1));
    assert_eq!(view.review_position("t-001"), None);
}

#[test]
fn a_decision_takes_the_task_off_the_queue() {
    let mut view = sample_run();
    let mut j = Journal::new();
    j.events = sample_events();
    j.push(
        Some("t-004"),
        650,
        EventKind::DecisionRecorded {
            decision: Decision {
                action: Decide::Approve,
                phase: Some("draft".into()),
                by: Actor::engine(),
                at: now(),
                note: None,
            },
        },
    );
    let last = j.events.last().unwrap();
    assert_eq!(view.apply(last), Applied::Changed);
    let ids: Vec<_> = view.review_queue().map(|e| e.task.id.clone()).collect();
    assert_eq!(ids, ["t-005"]);
    assert_eq!(view.count(TaskState::AwaitingReview), 0);
    assert_eq!(view.count(TaskState::Running), 2);
    assert_totals_match(&view);
}

#[test]
fn events_the_view_already_covers_are_ignored() {
    let mut view = sample_run();
    let before = view.version();
    for ev in sample_events() {
        assert_eq!(view.apply(&ev), Applied::Stale);
    }
    assert_eq!(view.version(), before);
    assert_totals_match(&view);
}

#[test]
fn resync_from_a_snapshot_matches_the_fold() {
    let folded = sample_run();
    let mut snapshot = empty_snapshot();
    snapshot.tasks = folded
        .entries()
        .iter()
        .filter_map(|e| folded.whole_task(&e.task.id))
        .collect();
    snapshot.seq = folded.seq();
    let mut fresh = RunView::from_snapshot(snapshot);
    assert_totals_match(&fresh);
    for s in TaskState::ALL {
        assert_eq!(fresh.count(s), folded.count(s));
    }
    let a: Vec<_> = fresh.review_queue().map(|e| e.task.id.clone()).collect();
    let b: Vec<_> = folded.review_queue().map(|e| e.task.id.clone()).collect();
    assert_eq!(a, b);
    assert_eq!(fresh.throughput(now()), folded.throughput(now()));
    // Replayed events from before the snapshot change nothing.
    for ev in sample_events() {
        assert_eq!(fresh.apply(&ev), Applied::Stale);
    }
}

#[test]
fn an_event_for_an_unknown_task_asks_for_a_resync() {
    let mut view = RunView::from_snapshot(empty_snapshot());
    let mut j = Journal::new();
    j.start("ghost", 1, "research", 1, "m");
    assert!(matches!(view.apply(&j.events[0]), Applied::OutOfSync(_)));
}

#[test]
fn pause_and_resume_follow_run_events() {
    let mut view = RunView::from_snapshot(empty_snapshot());
    let mut j = Journal::new();
    j.push(
        None,
        1,
        EventKind::RunPaused {
            by: Actor::engine(),
        },
    );
    j.push(
        None,
        2,
        EventKind::RunResumed {
            by: Actor::engine(),
        },
    );
    view.apply(&j.events[0]);
    assert!(view.paused);
    view.apply(&j.events[1]);
    assert!(!view.paused);
}

#[test]
fn throughput_counts_recent_finishes_per_minute() {
    let view = sample_run();
    // Only t-009 (cancelled at 320 s) finished in the last five minutes.
    assert!((view.throughput(now()) - 0.2).abs() < 1e-9);
    // At 250 s, t-006, t-001 and t-007 had finished: 3 in 250 s.
    let early = t0() + SignedDuration::from_secs(250);
    assert!((view.throughput(early) - 0.72).abs() < 1e-9);
    assert_eq!(
        RunView::from_snapshot(empty_snapshot()).throughput(t0()),
        0.0
    );
}

#[test]
fn a_run_budget_raise_folds_into_the_view_and_in_flight_is_estimated() {
    let mut view = sample_run();
    let seq = view.seq() + 1;
    let ev = Event {
        seq,
        at: now(),
        task: None,
        kind: EventKind::BudgetRaised {
            usd: Some(12.0),
            tokens: None,
            accept_unknown: 1,
            by: Actor::engine(),
        },
    };
    assert_eq!(view.apply(&ev), Applied::Changed);
    assert_eq!(view.budget.run_limits().usd, Some(12.0));
    assert_eq!(view.budget.run_raise.accept_unknown, 1);
    // One attempt in flight in the sample (t-002), at the run's mean.
    let flying = view.in_flight();
    assert!(flying.usd > 0.0 && flying.tokens > 0, "{flying:?}");
    assert_eq!(view.task_in_flight("t-002"), flying);
    assert_eq!(
        view.task_in_flight("t-001"),
        crate::engine::budget::Estimate::default()
    );
}

fn live(task: &str, phase: &str, attempt: u32, kind: LiveKind) -> LiveEvent {
    LiveEvent {
        task: task.into(),
        phase: phase.into(),
        attempt,
        kind,
    }
}

fn progress(text: &str, tokens: u64) -> LiveKind {
    LiveKind::Progress(crate::engine::live::Progress {
        text: text.into(),
        output_tokens: tokens,
        estimated: true,
    })
}

#[test]
fn live_updates_fold_into_the_running_attempt_until_it_finishes() {
    let mut view = sample_run();
    let version = view.version();
    assert!(view.apply_live(&live("t-002", "draft", 1, progress("Once", 1))));
    assert!(view.apply_live(&live("t-002", "draft", 1, progress("Once upon", 2))));
    assert!(view.apply_live(&live(
        "t-002",
        "draft",
        1,
        LiveKind::Trace {
            line: "thinking".into()
        }
    )));
    let l = view.live("t-002", "draft").expect("live entry");
    assert_eq!(
        (l.text.as_str(), l.output_tokens, l.attempt),
        ("Once upon", 2, 1)
    );
    assert_eq!(l.trace, ["thinking"]);
    // Live updates are not journal events: the view's position stays.
    assert_eq!(view.version(), version);

    // Not running: another attempt, a finished phase, an unknown task.
    assert!(!view.apply_live(&live("t-002", "draft", 2, progress("x", 1))));
    assert!(!view.apply_live(&live("t-002", "research", 1, progress("x", 1))));
    assert!(!view.apply_live(&live("t-999", "draft", 1, progress("x", 1))));

    // The attempt's event is the truth: the live entry goes with it.
    let mut j = Journal::new();
    j.events = sample_events();
    j.finish(
        "t-002",
        600,
        "draft",
        1,
        crate::engine::event::AttemptOutcome::Succeeded,
        100,
        Some(0.01),
    );
    let last = j.events.last().unwrap().clone();
    assert_eq!(view.apply(&last), Applied::Changed);
    assert!(view.live("t-002", "draft").is_none());
    assert!(!view.apply_live(&live("t-002", "draft", 1, progress("late", 3))));
}

#[test]
fn the_detail_gets_input_and_outputs_back() {
    use crate::engine::event::AttemptOutcome;
    let phases = vec!["one".to_string()];
    let at = jiff::Timestamp::from_second(1).unwrap();
    let mut snapshot = empty_snapshot();
    snapshot.phases = phases.clone();
    let mut view = RunView::from_snapshot(snapshot);
    let ev = |seq: u64, kind: EventKind| Event {
        seq,
        at,
        task: Some("t1".into()),
        kind,
    };
    let input = serde_json::json!({"n": 1, "note": "x"});
    view.apply(&ev(
        1,
        EventKind::TaskSubmitted {
            input: input.clone(),
        },
    ));
    view.apply(&ev(
        2,
        EventKind::PhaseStarted {
            phase: "one".into(),
            attempt: 1,
            agent: "a".into(),
            model: None,
            feedback: None,
            route: None,
            role: None,
        },
    ));
    let output = serde_json::json!({"answer": [1, 2.5, "three"]});
    view.apply(&ev(
        3,
        EventKind::AttemptFinished {
            phase: "one".into(),
            attempt: 1,
            duration_ms: 5,
            outcome: AttemptOutcome::Succeeded,
            usage: None,
            cost_usd: None,
            output: Some(output.clone()),
            trace: vec!["a line".into()],
            http: None,
            retry_after_ms: None,
        },
    ));
    let light = view.task("t1").unwrap();
    assert_eq!(light.phases[0].output, None);
    let whole = view.whole_task("t1").unwrap();
    assert_eq!(whole.input, input);
    assert_eq!(whole.phases[0].output, Some(output));
    assert_eq!(
        whole.phases[0].attempts[0].trace,
        vec!["a line".to_string()]
    );
    assert_eq!(whole.state, TaskState::Running);
}
