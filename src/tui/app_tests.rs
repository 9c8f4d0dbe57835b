use tokio::sync::broadcast;

use super::*;
use crate::engine::handle::Request;
use crate::engine::state::TaskState;
use crate::tui::test_support::{empty_snapshot, sample_events, sample_run};
use crate::tui::{Exit, TuiOptions};

/// An engine that answers snapshots with `snapshot` and refuses every command.
fn fake_engine(snapshot: RunSnapshot) -> EngineHandle {
    let (requests, mut rx) = mpsc::channel(8);
    let (events, _) = broadcast::channel(16);
    let (live, _) = broadcast::channel(16);
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            match req {
                Request::Snapshot(tx) => {
                    let _ = tx.send(snapshot.clone());
                }
                Request::Overview(tx) => {
                    let _ = tx.send(snapshot.overview());
                }
                Request::Command(_, tx) => {
                    let _ = tx.send(Err(Refusal("t-003 is not awaiting review".into())));
                }
            }
        }
    });
    EngineHandle {
        requests,
        events,
        link: None,
        live,
        reader: None,
    }
}

fn ui_from(snapshot: RunSnapshot) -> Ui {
    Ui::new(
        RunView::from_snapshot(snapshot),
        Keymap::default(),
        Vec::new(),
        Actor::engine(),
    )
}

/// The sample run as a snapshot taken after its first `n` events.
fn snapshot_after(n: usize) -> RunSnapshot {
    let mut view = RunView::from_snapshot(empty_snapshot());
    for ev in &sample_events()[..n] {
        view.apply(ev);
    }
    RunSnapshot {
        tasks: view
            .entries()
            .iter()
            .filter_map(|e| view.whole_task(&e.task.id))
            .collect(),
        seq: view.seq(),
        ..empty_snapshot()
    }
}

#[tokio::test]
async fn a_resync_applies_the_snapshot_then_the_events_held_meanwhile() {
    let events = sample_events();
    let cut = events.len() / 2;
    let (replies, mut replies_rx) = mpsc::unbounded_channel();
    let mut engine = Engine {
        handle: fake_engine(snapshot_after(cut)),
        replies,
        resync: None,
    };
    let mut ui = ui_from(empty_snapshot());
    engine.request_snapshot();
    // Events arriving while the snapshot is on its way, some of them already
    // in it: held, not applied.
    for ev in &events[cut - 3..] {
        assert!(!engine.on_event(&mut ui, Arc::new(ev.clone())));
    }
    assert!(ui.view.is_empty());
    let Some(Reply::Snapshot(Some(snapshot))) = replies_rx.recv().await else {
        panic!("expected a snapshot");
    };
    engine.on_snapshot(&mut ui, *snapshot);
    assert!(engine.resync.is_none());
    let want = sample_run();
    assert_eq!(ui.view.seq(), want.seq());
    for s in TaskState::ALL {
        assert_eq!(ui.view.count(s), want.count(s), "{s}");
    }
    assert_eq!(ui.view.tokens(), want.tokens());
}

#[tokio::test]
async fn an_event_that_does_not_fit_asks_for_a_snapshot() {
    let (replies, mut replies_rx) = mpsc::unbounded_channel();
    let mut engine = Engine {
        handle: fake_engine(snapshot_after(sample_events().len())),
        replies,
        resync: None,
    };
    let mut ui = ui_from(empty_snapshot());
    // The first event for t-001 after its submission, without the submission.
    let stray = sample_events().into_iter().find(|e| e.seq > 9).unwrap();
    engine.on_event(&mut ui, Arc::new(stray));
    assert!(engine.resync.is_some());
    let Some(Reply::Snapshot(Some(s))) = replies_rx.recv().await else {
        panic!("expected a snapshot");
    };
    engine.on_snapshot(&mut ui, *s);
    assert_eq!(ui.view.len(), 9);
}

#[tokio::test]
async fn a_lag_while_resyncing_takes_one_more_snapshot() {
    let (replies, mut replies_rx) = mpsc::unbounded_channel();
    let mut engine = Engine {
        handle: fake_engine(snapshot_after(5)),
        replies,
        resync: None,
    };
    let mut ui = ui_from(empty_snapshot());
    engine.request_snapshot();
    engine.request_snapshot();
    let Some(Reply::Snapshot(Some(s))) = replies_rx.recv().await else {
        panic!("expected a snapshot");
    };
    engine.on_snapshot(&mut ui, *s);
    assert!(engine.resync.is_some(), "a second snapshot is on its way");
    assert!(matches!(
        replies_rx.recv().await,
        Some(Reply::Snapshot(Some(_)))
    ));
}

#[tokio::test]
async fn a_refusal_comes_back_as_its_text() {
    let (replies, mut replies_rx) = mpsc::unbounded_channel();
    let engine = Engine {
        handle: fake_engine(empty_snapshot()),
        replies,
        resync: None,
    };
    engine.send(
        Command::Pause {
            by: Actor::engine(),
        },
        "pause".into(),
    );
    match replies_rx.recv().await {
        Some(Reply::Sent {
            label,
            result: Err(r),
        }) => {
            assert_eq!(label, "pause");
            assert_eq!(r.to_string(), "t-003 is not awaiting review");
        }
        _ => panic!("expected the refusal"),
    }
}

/// The real loop in a real terminal, driven by hand or by a script:
/// `cargo test --lib tui::app::tests::live -- --ignored` in a terminal,
/// then press q and y.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a terminal to draw on"]
async fn live_dashboard() {
    let handle = fake_engine(snapshot_after(sample_events().len()));
    let exit = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run(handle, TuiOptions::default()),
    )
    .await
    .expect("quit within 30 s")
    .unwrap_or_else(|e| panic!("runs without error: {e:#}"));
    assert_eq!(exit, Exit::Quit);
}
