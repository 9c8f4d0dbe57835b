//! The store through its public API, on real temporary folders.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use jiff::Timestamp;
use serde_json::json;

use super::journal::tests::{ev, line};
use super::layout::{Layout, segment_name};
use super::{Store, StoreError};
use crate::engine::event::{Actor, Event, EventKind};
use crate::engine::task::Task;

fn events(seqs: impl IntoIterator<Item = u64>) -> Vec<Event> {
    seqs.into_iter().map(ev).collect()
}

fn task(id: &str, seq: u64) -> Task {
    let at = Timestamp::from_second(1_700_000_000).unwrap();
    Task::new(id.into(), json!({ "id": id }), &["build".into()], at, seq)
}

fn seqs(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

/// Every file under `dir` with its bytes.
fn tree(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                todo.push(path);
            } else {
                out.insert(path.clone(), fs::read(&path).unwrap());
            }
        }
    }
    out
}

/// All journal bytes, segments in order.
fn journal_bytes(dir: &Path) -> Vec<u8> {
    let files = tree(&Layout::new(dir).journal());
    files.into_values().flatten().collect()
}

fn quarantined(dir: &Path) -> Vec<(String, Vec<u8>)> {
    tree(&Layout::new(dir).quarantine())
        .into_iter()
        .map(|(p, b)| (p.file_name().unwrap().to_string_lossy().into_owned(), b))
        .collect()
}

/// Writes events `range` to a fresh store in `dir` and closes it.
async fn write_and_close(dir: &Path, range: std::ops::RangeInclusive<u64>) {
    let (store, _) = Store::open(dir).unwrap();
    store.append(events(range)).await.unwrap();
    store.close().await.unwrap();
}

#[tokio::test]
async fn appended_events_come_back_after_reopen() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.last_seq, 0);
    assert!(rec.events.is_empty() && rec.snapshots.is_empty() && rec.warnings.is_empty());
    assert_eq!(store.dir(), tmp.path());

    for chunk in (1..=20).collect::<Vec<u64>>().chunks(3) {
        store.append(events(chunk.iter().copied())).await.unwrap();
    }
    assert_eq!(store.flush().await.unwrap(), 20);
    assert_eq!(store.durable_seq(), 20);
    let stats = store.stats();
    assert_eq!(stats.events_written, 20);
    assert!(stats.batches >= 1 && stats.bytes_written > 0);
    store.close().await.unwrap();

    let (store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.events, events(1..=20));
    assert_eq!(rec.last_seq, 20);
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert_eq!(store.durable_seq(), 20);
    // Numbering goes on above what was recovered.
    store.append(events(21..=22)).await.unwrap();
    store.close().await.unwrap();
    let rec = Store::load_readonly(tmp.path()).unwrap();
    assert_eq!(seqs(&rec.events), (1..=22).collect::<Vec<_>>());
}

#[tokio::test]
async fn subscribers_see_events_only_once_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let mut rx = store.subscribe();
    let mut rx2 = store.broadcaster().subscribe();
    for seq in 1..=30u64 {
        store.append(vec![ev(seq)]).await.unwrap();
    }
    for seq in 1..=30u64 {
        let got = rx.recv().await.unwrap();
        assert_eq!(got.seq, seq);
        assert!(store.durable_seq() >= seq);
        let on_disk = journal_bytes(tmp.path());
        let want = line(&ev(seq));
        assert!(
            on_disk.windows(want.len()).any(|w| w == want),
            "event {seq} was published before it was written"
        );
        assert_eq!(rx2.recv().await.unwrap().seq, seq);
    }
    store.close().await.unwrap();
}

#[test]
fn one_sync_covers_everything_queued() {
    const ROUNDS: u64 = 20;
    const PER_ROUND: u64 = 500;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let mut seq = 0;
    for _ in 0..ROUNDS {
        // With the gate held the writer cannot start its next batch, so the
        // whole round is queued behind it, single-event batches and all.
        let gate = store.shared().writer_gate.lock().unwrap();
        for _ in 0..PER_ROUND {
            seq += 1;
            rt.block_on(store.append(vec![ev(seq)])).unwrap();
        }
        drop(gate);
        assert_eq!(rt.block_on(store.flush()).unwrap(), seq);
    }
    let stats = store.stats();
    assert_eq!(stats.events_written, ROUNDS * PER_ROUND);
    assert!(
        stats.batches <= ROUNDS,
        "{} syncs for {} events",
        stats.batches,
        stats.events_written
    );
    assert!(stats.events_written / stats.batches >= PER_ROUND);
    rt.block_on(store.close()).unwrap();
    let rec = Store::load_readonly(tmp.path()).unwrap();
    assert_eq!(rec.events.len() as u64, ROUNDS * PER_ROUND);
}

#[tokio::test]
async fn a_burst_of_small_batches_all_arrives_in_order() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    let mut rx = store.subscribe();
    for seq in 1..=10_000u64 {
        store.append(vec![ev(seq)]).await.unwrap();
    }
    assert_eq!(store.flush().await.unwrap(), 10_000);
    for seq in 1..=10_000u64 {
        assert_eq!(rx.recv().await.unwrap().seq, seq);
    }
    assert_eq!(store.stats().events_written, 10_000);
    store.close().await.unwrap();
}

#[tokio::test]
async fn appends_must_increase() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.append(events(1..=2)).await.unwrap();
    assert!(matches!(
        store.append(vec![ev(2)]).await,
        Err(StoreError::OutOfOrder { seq: 2, after: 2 })
    ));
    assert!(matches!(
        store.append(vec![ev(4), ev(3)]).await,
        Err(StoreError::OutOfOrder { seq: 3, after: 4 })
    ));
    store.append(vec![]).await.unwrap();
    store.append(vec![ev(3)]).await.unwrap();
    assert_eq!(store.flush().await.unwrap(), 3);
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_second_open_is_refused_until_the_first_is_gone() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    match Store::open(tmp.path()) {
        Err(e @ StoreError::Locked { .. }) => {
            let pid = std::process::id();
            assert!(matches!(e, StoreError::Locked { pid: Some(p), .. } if p == pid));
            let text = e.to_string();
            assert!(text.contains(&format!("pid {pid}")), "{text}");
            assert!(text.contains(&tmp.path().display().to_string()), "{text}");
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("a second open succeeded"),
    }
    drop(store);
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.close().await.unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    drop(store);
}

#[tokio::test]
async fn dropping_the_store_still_writes_what_was_appended() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.append(events(1..=50)).await.unwrap();
    drop(store);
    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.events, events(1..=50));
}

#[tokio::test]
async fn a_torn_tail_is_cut_off_and_kept_in_quarantine() {
    let tmp = tempfile::tempdir().unwrap();
    write_and_close(tmp.path(), 1..=5).await;
    let seg = Layout::new(tmp.path()).segment(1);
    let good_len = fs::metadata(&seg).unwrap().len();
    let torn = &line(&ev(6))[..25];
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(torn);
    fs::write(&seg, &bytes).unwrap();

    let (store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.events, events(1..=5));
    assert_eq!(rec.last_seq, 5);
    assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
    assert!(
        rec.warnings[0].contains(&segment_name(1)),
        "{}",
        rec.warnings[0]
    );
    assert!(
        rec.warnings[0].contains("incomplete write"),
        "{}",
        rec.warnings[0]
    );
    assert_eq!(fs::metadata(&seg).unwrap().len(), good_len);
    let q = quarantined(tmp.path());
    assert_eq!(q.len(), 1);
    assert!(
        q[0].0.starts_with(&format!("{}.", segment_name(1))),
        "{}",
        q[0].0
    );
    assert_eq!(q[0].1, torn);

    store.append(events(6..=7)).await.unwrap();
    store.close().await.unwrap();
    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert_eq!(rec.events, events(1..=7));
}

#[tokio::test]
async fn a_corrupt_line_mid_file_is_dropped_and_the_rest_loads() {
    let tmp = tempfile::tempdir().unwrap();
    write_and_close(tmp.path(), 1..=5).await;
    let seg = Layout::new(tmp.path()).segment(1);
    let original = fs::read_to_string(&seg).unwrap();
    // Line 3 keeps its shape but not its checksum.
    let corrupt = original.replacen("\"seq\":3,", "\"seq\":8,", 1);
    assert_ne!(corrupt, original);
    fs::write(&seg, &corrupt).unwrap();

    let (store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(seqs(&rec.events), vec![1, 2, 4, 5]);
    assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
    let w = &rec.warnings[0];
    assert!(w.contains(&segment_name(1)) && w.contains("line 3"), "{w}");
    let q = quarantined(tmp.path());
    assert_eq!(q.len(), 1);
    assert_eq!(q[0].1, corrupt.as_bytes(), "the whole segment is kept");
    let rewritten = fs::read_to_string(&seg).unwrap();
    assert_eq!(rewritten.lines().count(), 4);
    store.close().await.unwrap();

    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert_eq!(seqs(&rec.events), vec![1, 2, 4, 5]);
}

#[tokio::test]
async fn a_bad_last_line_of_an_older_segment_is_not_a_torn_write() {
    let tmp = tempfile::tempdir().unwrap();
    write_and_close(tmp.path(), 1..=3).await;
    write_and_close(tmp.path(), 4..=5).await;
    let seg = Layout::new(tmp.path()).segment(1);
    let mut bytes = fs::read(&seg).unwrap();
    bytes.extend_from_slice(b"junk");
    fs::write(&seg, &bytes).unwrap();

    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.events, events(1..=5));
    assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
    assert!(rec.warnings[0].contains("line 4"), "{}", rec.warnings[0]);
    assert_eq!(quarantined(tmp.path())[0].1, bytes);
}

#[tokio::test]
async fn events_out_of_order_on_disk_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    fs::create_dir_all(layout.journal()).unwrap();
    fs::write(layout.segment(1), [line(&ev(1)), line(&ev(5))].concat()).unwrap();
    fs::write(layout.segment(6), [line(&ev(4)), line(&ev(6))].concat()).unwrap();
    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(seqs(&rec.events), vec![1, 5, 6]);
    assert_eq!(rec.warnings.len(), 1, "{:?}", rec.warnings);
    assert!(rec.warnings[0].contains("seq 4"), "{}", rec.warnings[0]);
}

#[tokio::test]
async fn a_corrupt_snapshot_is_quarantined_and_the_rest_load() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    fs::create_dir_all(layout.tasks()).unwrap();
    let good = task("good", 3);
    fs::write(
        layout.snapshot("good"),
        serde_json::to_vec_pretty(&good).unwrap(),
    )
    .unwrap();
    fs::write(layout.snapshot("bad"), b"{ \"id\": \"bad\", trunc").unwrap();
    // A snapshot under the wrong name is no more trusted than a broken one.
    fs::write(
        layout.snapshot("other"),
        serde_json::to_vec(&task("x", 1)).unwrap(),
    )
    .unwrap();
    fs::write(layout.snapshot_tmp("good"), b"half written").unwrap();

    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.snapshots, vec![good]);
    assert_eq!(rec.last_seq, 3);
    assert_eq!(rec.warnings.len(), 2, "{:?}", rec.warnings);
    assert!(rec.warnings.iter().any(|w| w.contains("bad.json")));
    assert!(rec.warnings.iter().any(|w| w.contains("other.json")));
    assert!(!layout.snapshot("bad").exists());
    assert!(!layout.snapshot_tmp("good").exists());
    let q = quarantined(tmp.path());
    assert_eq!(q.len(), 2);
    assert!(
        q.iter()
            .any(|(n, b)| n.starts_with("bad.json.") && b.starts_with(b"{ \"id\""))
    );
}

#[tokio::test]
async fn a_checkpoint_replaces_covered_segments_with_snapshots() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.append(events(1..=10)).await.unwrap();
    // ev(n) belongs to task t(n % 3): last events 9, 10 and 8.
    let tasks = vec![task("t0", 9), task("t1", 10), task("t2", 8)];
    store.checkpoint(tasks.iter().cloned().map(Arc::new).collect(), 10);
    store.append(events(11..=15)).await.unwrap();
    store.close().await.unwrap();

    for t in &tasks {
        let text = fs::read_to_string(layout.snapshot(&t.id)).unwrap();
        assert!(text.contains("\n  \"id\""), "snapshots are pretty-printed");
    }
    let (store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.snapshots, tasks);
    assert_eq!(rec.events, events(11..=15));
    assert_eq!(rec.last_seq, 15);
    assert!(rec.warnings.is_empty(), "{:?}", rec.warnings);
    assert!(!layout.segment(1).exists(), "covered segment deleted");
    assert!(
        layout.segment(11).exists(),
        "the later events start a segment"
    );
    store.close().await.unwrap();
}

#[tokio::test]
async fn a_checkpoint_at_rest_prunes_everything_yet_seqs_are_not_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    let (store, _) = Store::open(tmp.path()).unwrap();
    let paused = Event {
        seq: 3,
        at: Timestamp::from_second(1_700_000_100).unwrap(),
        task: None,
        kind: EventKind::RunPaused {
            by: Actor::engine(),
        },
    };
    store.append(vec![ev(1), ev(2), paused]).await.unwrap();
    store.flush().await.unwrap();
    store.checkpoint(vec![Arc::new(task("t1", 1)), Arc::new(task("t2", 2))], 3);
    store.close().await.unwrap();

    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert!(rec.events.is_empty(), "{:?}", rec.events);
    assert_eq!(rec.snapshots.len(), 2);
    assert_eq!(rec.last_seq, 3);
    let names: Vec<_> = tree(&layout.journal()).into_keys().collect();
    assert_eq!(names, vec![layout.segment(4)]);
}

#[tokio::test]
async fn snapshots_never_go_back() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.append(events(1..=4)).await.unwrap();
    store.checkpoint(vec![Arc::new(task("a", 1)), Arc::new(task("b", 2))], 2);
    store.checkpoint(vec![Arc::new(task("a", 4))], 4);
    store.checkpoint(vec![Arc::new(task("a", 3))], 3);
    store.close().await.unwrap();
    let (_store, rec) = Store::open(tmp.path()).unwrap();
    assert_eq!(rec.snapshots, vec![task("a", 4), task("b", 2)]);
}

#[tokio::test]
async fn load_readonly_changes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::new(tmp.path());
    write_and_close(tmp.path(), 1..=5).await;
    let seg = layout.segment(1);
    let text = fs::read_to_string(&seg).unwrap();
    let mut corrupt = text.replacen("\"seq\":2,", "\"seq\":7,", 1).into_bytes();
    corrupt.extend_from_slice(b"{\"seq\":6");
    fs::write(&seg, &corrupt).unwrap();
    fs::write(layout.snapshot("broken"), b"nope").unwrap();
    fs::write(layout.snapshot_tmp("x"), b"leftover").unwrap();
    let before = tree(tmp.path());

    let rec = Store::load_readonly(tmp.path()).unwrap();
    assert_eq!(seqs(&rec.events), vec![1, 3, 4, 5]);
    assert!(rec.snapshots.is_empty());
    assert_eq!(rec.warnings.len(), 2, "{:?}", rec.warnings);
    assert!(rec.warnings.iter().any(|w| w.contains("line 2")));
    assert!(rec.warnings.iter().any(|w| w.contains("broken.json")));
    assert_eq!(tree(tmp.path()), before, "load_readonly touched the folder");

    assert!(matches!(
        Store::load_readonly(&tmp.path().join("missing")),
        Err(StoreError::Io { .. })
    ));
}

#[tokio::test]
async fn load_readonly_works_while_the_folder_is_in_use() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(tmp.path()).unwrap();
    store.append(events(1..=3)).await.unwrap();
    store.flush().await.unwrap();
    let rec = Store::load_readonly(tmp.path()).unwrap();
    assert_eq!(rec.events, events(1..=3));
    assert!(rec.warnings.is_empty());
    store.close().await.unwrap();
}
