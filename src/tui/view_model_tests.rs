use jiff::SignedDuration;

use super::*;
use crate::engine::event::{Action as Decide, Actor, Decision};
use crate::engine::live::{LiveEvent, LiveKind};
use crate::store::ListQuery;
use crate::tui::fetch::Want;
use crate::tui::test_support::{
    Journal, StoredRun, big_run, empty_overview, now, sample_events, sample_run, t0,
};

/// Everything in one window, with `selected` read whole.
fn want_all(selected: Option<&str>) -> Want {
    Want {
        table: ListQuery {
            limit: Some(1000),
            ..ListQuery::default()
        },
        queue_limit: 1000,
        selected: selected.map(str::to_string),
        ..Want::default()
    }
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
    assert_eq!(view.matching(), 9);
    assert_eq!(view.unfinished(), 5);
}

#[test]
fn the_store_totals_match_a_recount_of_the_rows() {
    let view = sample_run();
    let rows: Vec<_> = view.rows().map(|(_, r)| r).collect();
    assert_eq!(rows.len(), 9);
    for s in TaskState::ALL {
        assert_eq!(
            view.count(s),
            rows.iter().filter(|r| r.state == s).count(),
            "{s}"
        );
    }
    assert_eq!(view.tokens(), rows.iter().map(|r| r.tokens).sum::<u64>());
    let cost = view.cost();
    // t-007 ran three attempts on a model nobody priced.
    assert_eq!(cost.unknown, 3);
    assert!(!cost.is_known());
    assert!(cost.to_string().contains("unknown"), "{cost}");
    assert_eq!(view.review_len(), 2);
}

#[test]
fn review_queue_lists_oldest_hold_first_with_phase_and_reason() {
    let view = sample_run();
    let queue: Vec<_> = view.review_queue().collect();
    let ids: Vec<_> = queue.iter().map(|e| e.task).collect();
    assert_eq!(ids, ["t-005", "t-004"]);
    assert_eq!(queue[0].kind, HoldKind::Blocked);
    assert_eq!(queue[0].phase, "research");
    assert_eq!(queue[0].reason, "needs access to the paywalled source");
    assert_eq!(queue[1].phase, "draft");
    assert_eq!(queue[1].since, t0() + SignedDuration::from_secs(201));
    assert_eq!(view.review_position("t-005"), Some(0));
    assert_eq!(view.review_position("t-004"), Some(1));
    assert_eq!(view.review_position("t-001"), None);
    assert_eq!(view.review_at(1).map(|e| e.task), Some("t-004"));
}

#[test]
fn a_decision_marks_the_page_stale_and_the_next_read_shows_it() {
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
    let last = j.events.last().unwrap().clone();
    assert_eq!(view.apply(&last), Applied::Changed);
    // The store the engine wrote, as the next read finds it.
    let after = StoredRun::new(&j.events);
    view.set_page(after.page(want_all(None)), now());
    let ids: Vec<_> = view.review_queue().map(|e| e.task.to_string()).collect();
    assert_eq!(ids, ["t-005"]);
    assert_eq!(view.count(TaskState::AwaitingReview), 0);
    assert_eq!(view.count(TaskState::Running), 2);
}

#[test]
fn events_the_view_already_covers_are_ignored() {
    let mut view = sample_run();
    let before = view.version();
    for ev in sample_events() {
        assert_eq!(view.apply(&ev), Applied::Stale);
    }
    assert_eq!(view.version(), before);
}

#[test]
fn pause_and_resume_follow_run_events() {
    let mut view = RunView::new(empty_overview());
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
fn throughput_counts_tasks_finished_between_reads_per_minute() {
    let run = StoredRun::sample();
    let mut view = RunView::new(run.overview.clone());
    assert_eq!(view.throughput(t0()), 0.0);
    let page = run.page(want_all(None));
    view.set_page(page.clone(), t0());
    // Five tasks final at the first read; three more a minute later.
    let mut later = page;
    later.totals.states[TaskState::ALL
        .iter()
        .position(|s| *s == TaskState::Completed)
        .unwrap()] += 3;
    let minute = t0() + SignedDuration::from_secs(60);
    view.set_page(later, minute);
    assert!((view.throughput(minute) - 3.0).abs() < 1e-9);
    // Two minutes in, the same three over two minutes.
    let two = t0() + SignedDuration::from_secs(120);
    assert!((view.throughput(two) - 1.5).abs() < 1e-9);
}

#[test]
fn a_run_budget_raise_folds_into_the_view_and_in_flight_is_estimated() {
    let run = StoredRun::sample();
    let mut view = RunView::new(run.overview.clone());
    view.set_page(run.page(want_all(Some("t-002"))), now());
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
        crate::engine::budget::Estimate::default(),
        "not the task read whole"
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
    let run = StoredRun::sample();
    let mut view = RunView::new(run.overview.clone());
    view.set_page(run.page(want_all(Some("t-002"))), now());
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

    // An attempt the selected task's read shows over is late; one it does
    // not show yet is early (the store lags the stream) and kept, and a
    // read that still lags does not drop it.
    assert!(!view.apply_live(&live("t-002", "research", 1, progress("x", 1))));
    assert!(view.apply_live(&live("t-002", "edit", 1, progress("early", 1))));
    view.set_page(run.page(want_all(Some("t-002"))), now());
    assert_eq!(
        view.live("t-002", "edit").map(|l| l.text.as_str()),
        Some("early")
    );
    assert_eq!(
        view.live("t-002", "draft").map(|l| l.text.as_str()),
        Some("Once upon")
    );
    // Other tasks' attempts are kept (bounded) for when they are selected.
    assert!(view.apply_live(&live("t-999", "draft", 1, progress("x", 1))));

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
    // Once the next read shows the attempt over, late updates are not shown.
    let after = StoredRun::new(&j.events);
    view.set_page(after.page(want_all(Some("t-002"))), now());
    assert!(!view.apply_live(&live("t-002", "draft", 1, progress("late", 3))));
}

#[test]
fn a_fresh_overview_keeps_what_running_attempts_showed() {
    let run = StoredRun::sample();
    let mut view = RunView::new(run.overview.clone());
    view.set_page(run.page(want_all(Some("t-002"))), now());
    assert!(view.apply_live(&live("t-002", "draft", 1, progress("Once upon", 2))));
    // Taken before that update: it has no live progress.
    view.set_overview(run.overview.clone());
    let l = view.live("t-002", "draft").expect("kept");
    assert_eq!(l.text, "Once upon");
}

#[test]
fn the_detail_reads_the_selected_task_whole() {
    let run = StoredRun::sample();
    let mut view = RunView::new(run.overview.clone());
    view.set_page(run.page(want_all(Some("t-001"))), now());
    let whole = view.whole_task("t-001").expect("read whole");
    assert_eq!(whole.input["topic"], "topic for t-001");
    assert!(whole.phases.iter().all(|p| p.output.is_some()));
    assert_eq!(whole.state, TaskState::Completed);
    assert!(
        view.task("t-002").is_none(),
        "only the selected task is whole"
    );
}

#[test]
fn the_view_holds_the_window_not_the_run() {
    let run = big_run(5_000);
    let mut view = RunView::new(run.overview.clone());
    let want = Want {
        table: ListQuery {
            offset: 4_000,
            limit: Some(60),
            ..ListQuery::default()
        },
        queue_limit: 20,
        ..Want::default()
    };
    view.set_page(run.page(want), now());
    assert_eq!(view.len(), 5_000);
    assert_eq!(view.rows().count(), 60);
    assert_eq!(view.row_at(4_000).map(|r| r.id.as_str()), Some("t-04000"));
    assert_eq!(view.row_of("t-04059"), Some(4_059));
    assert!(view.row_at(3_999).is_none() && view.row_at(4_060).is_none());
}

#[test]
fn recent_slices_count_what_finished_and_what_was_spent_in_each() {
    let run = StoredRun::sample();
    let mut view = RunView::new(run.overview.clone());
    let page = run.page(want_all(None));
    let completed = TaskState::ALL
        .iter()
        .position(|s| *s == TaskState::Completed)
        .unwrap();
    let start = now() - SignedDuration::from_secs(290);
    view.set_page(page.clone(), start);
    // Two minutes later: 2 more done, $0.50 more spent.
    let mut later = page.clone();
    later.totals.states[completed] += 2;
    later.totals.cost_nano += 500_000_000;
    view.set_page(later.clone(), start + SignedDuration::from_secs(120));
    // Just now: 1 more done.
    let mut last = later;
    last.totals.states[completed] += 1;
    view.set_page(last, now());
    let (done, spent) = view.recent(now(), 10);
    assert_eq!(done.iter().sum::<u64>(), 3);
    assert_eq!(done[9], 1, "the newest slice: {done:?}");
    assert_eq!(spent.iter().sum::<u64>(), 500_000_000, "{spent:?}");
    assert_eq!(spent.iter().filter(|&&v| v > 0).count(), 1);
}
