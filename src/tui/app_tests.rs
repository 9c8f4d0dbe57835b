use tokio::sync::broadcast;

use super::*;
use crate::engine::handle::Request;
use crate::engine::state::TaskState;
use crate::tui::test_support::{StoredRun, sample_events};
use crate::tui::{Exit, TuiOptions};

/// An engine that answers overviews with `overview` and refuses every command.
fn fake_engine(overview: RunOverview, reader: Arc<dyn RunReader>) -> EngineHandle {
    let (requests, mut rx) = mpsc::channel(8);
    let (events, _) = broadcast::channel(16);
    let (live, _) = broadcast::channel(16);
    tokio::spawn(async move {
        while let Some(req) = rx.recv().await {
            match req {
                Request::Overview(tx) => {
                    let _ = tx.send(overview.clone());
                }
                Request::Snapshot(_) => {}
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
        reader: Some(reader),
    }
}

fn source(run: &StoredRun, engine: bool) -> (Source, mpsc::UnboundedReceiver<Reply>) {
    let (replies, rx) = mpsc::unbounded_channel();
    let handle = engine.then(|| fake_engine(run.overview.clone(), run.reader.clone()));
    (Source::new(handle, run.reader.clone(), replies), rx)
}

#[tokio::test]
async fn a_read_is_due_at_once_for_a_new_want_and_after_a_pause_for_changes() {
    let run = StoredRun::sample();
    let (mut source, mut rx) = source(&run, true);
    let want = Want::default();
    let t = Instant::now();
    assert_eq!(source.read_due(&want, t), Some(t), "nothing read yet");
    source.read(want.clone(), t);
    assert_eq!(source.read_due(&want, t), None, "one read at a time");
    let Some(Reply::Page(page)) = rx.recv().await else {
        panic!("expected a page");
    };
    let Ok(page) = *page else {
        panic!("expected a page");
    };
    assert_eq!(page.totals.tasks, 9);
    source.reading = false;
    assert_eq!(source.read_due(&want, t), None, "nothing changed");
    source.stale = true;
    assert_eq!(source.read_due(&want, t), Some(t + REFRESH_EVERY));
    let other = Want {
        selected: Some("t-004".into()),
        ..Want::default()
    };
    assert_eq!(
        source.read_due(&other, t),
        Some(t),
        "the screen asks for something new"
    );
}

#[tokio::test]
async fn a_page_read_off_the_loop_has_the_window_the_queue_and_the_selected_task() {
    let run = StoredRun::sample();
    let (mut source, mut rx) = source(&run, true);
    let want = Want {
        table: crate::tui::rows::query(Default::default(), "", 2, 3),
        queue_offset: 0,
        queue_limit: 10,
        selected: Some("t-004".into()),
        finished_since: None,
    };
    source.read(want, Instant::now());
    let Some(Reply::Page(page)) = rx.recv().await else {
        panic!("expected a page");
    };
    let Ok(page) = *page else {
        panic!("expected a page");
    };
    let ids: Vec<_> = page.rows.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(ids, ["t-003", "t-004", "t-005"]);
    assert_eq!(page.matching, 9);
    assert_eq!(page.queue.len(), 2);
    let task = page.selected.expect("t-004 read whole");
    assert_eq!(task.state, TaskState::AwaitingReview);
    assert_eq!(page.seq, sample_events().len() as u64);
}

#[tokio::test]
async fn a_refusal_comes_back_as_its_text() {
    let run = StoredRun::sample();
    let (source, mut rx) = source(&run, true);
    source.send(
        Command::Pause {
            by: Actor::engine(),
        },
        "pause".into(),
    );
    match rx.recv().await {
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

#[tokio::test]
async fn with_no_engine_every_command_is_refused_saying_why() {
    let run = StoredRun::sample();
    let (source, mut rx) = source(&run, false);
    source.send(
        Command::Pause {
            by: Actor::engine(),
        },
        "pause".into(),
    );
    match rx.recv().await {
        Some(Reply::Sent { result: Err(r), .. }) => assert_eq!(r.0, READ_ONLY_STOPPED),
        _ => panic!("expected the refusal"),
    }
}

/// The real loop in a real terminal, driven by hand or by a script:
/// `cargo test --lib tui::app::tests::live -- --ignored` in a terminal,
/// then press q and y.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a terminal to draw on"]
async fn live_dashboard() {
    let stored = StoredRun::sample();
    let handle = fake_engine(stored.overview.clone(), stored.reader.clone());
    let exit = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        run(handle, TuiOptions::default()),
    )
    .await
    .expect("quit within 30 s")
    .unwrap_or_else(|e| panic!("runs without error: {e:#}"));
    assert_eq!(exit, Exit::Quit);
}
