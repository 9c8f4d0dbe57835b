//! The store's tests, written once against [`RunStore`] and run on every
//! backend: each backend names a function that opens a fresh store in a
//! folder (see the bottom of this file).

mod figures;
/// The PostgreSQL cluster the tests start, shared with the integration tests.
#[path = "../../tests/support/pg_cluster.rs"]
pub(crate) mod pg_cluster;

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use serde_json::json;

use super::cache::{CacheEntry, CacheFilter, CacheKey, CacheWrite};
use super::{
    Batch, ListQuery, Recovered, RowChange, RunMeta, RunReader, RunStore, Sort, StoreError, TaskNo,
    TaskRow,
};
use crate::engine::cost::Usage;
use crate::engine::event::{AttemptOutcome, ErrorClass, Event, EventKind, ReviewReason};
use crate::engine::task::Task;
use crate::engine::{Actor, TaskState};

/// Opens the store of a folder as the engine does.
type Open = fn(&Path) -> Result<(Box<dyn RunStore>, Recovered), StoreError>;

fn meta() -> RunMeta {
    RunMeta {
        pipeline: "suite".into(),
        phases: vec!["a".into(), "b".into()],
    }
}

/// What the engine does, in small: tasks it holds, events it numbers, rows
/// it hands over with them.
struct Driver {
    store: Box<dyn RunStore>,
    seq: u64,
    ord: TaskNo,
    tasks: HashMap<String, (TaskNo, Task, Option<TaskRow>)>,
    batch: Batch,
    /// When the events happen; `None`: the time now.
    clock: Option<Timestamp>,
}

impl Driver {
    fn new(store: Box<dyn RunStore>, recovered: &Recovered) -> Driver {
        Driver {
            store,
            seq: recovered.last_seq,
            ord: recovered.last_ord,
            tasks: recovered
                .tasks
                .iter()
                .map(|(ord, t)| (t.id.clone(), (*ord, t.clone(), Some(TaskRow::of(t, *ord)))))
                .collect(),
            batch: Batch::default(),
            clock: None,
        }
    }

    fn now(&self) -> Timestamp {
        self.clock.unwrap_or_else(Timestamp::now)
    }

    fn submit(&mut self, id: &str) {
        self.seq += 1;
        self.ord += 1;
        let ev = Event {
            seq: self.seq,
            at: self.now(),
            task: Some(id.into()),
            kind: EventKind::TaskSubmitted {
                input: json!({"id": id}),
            },
        };
        let task = Task::from_submitted(&ev, &meta().phases).unwrap();
        self.batch.events.push((Some(self.ord), ev));
        self.tasks.insert(id.into(), (self.ord, task, None));
        self.row(id);
    }

    fn emit(&mut self, id: &str, kind: EventKind) {
        self.seq += 1;
        let ev = Event {
            seq: self.seq,
            at: self.now(),
            task: Some(id.into()),
            kind,
        };
        let (ord, task, _) = self.tasks.get_mut(id).unwrap();
        task.apply(&ev).unwrap();
        self.batch.events.push((Some(*ord), ev));
        self.row(id);
    }

    fn run_event(&mut self, kind: EventKind) {
        self.seq += 1;
        self.batch.events.push((
            None,
            Event {
                seq: self.seq,
                at: self.now(),
                task: None,
                kind,
            },
        ));
    }

    fn row(&mut self, id: &str) {
        let (ord, task, last) = self.tasks.get_mut(id).unwrap();
        let new = TaskRow::of(task, *ord);
        self.batch.rows.push(RowChange {
            old: last.replace(new.clone()),
            new,
        });
    }

    /// One attempt of `phase` that succeeds with `tokens` and `usd`.
    fn attempt(&mut self, id: &str, phase: &str, tokens: u64, usd: Option<f64>) {
        let n = self.tasks[id].1.phase(phase).unwrap().attempts.len() as u32 + 1;
        self.emit(
            id,
            EventKind::PhaseStarted {
                phase: phase.into(),
                attempt: n,
                agent: "sim".into(),
                model: Some("m".into()),
                feedback: None,
                route: None,
                role: None,
            },
        );
        self.emit(
            id,
            EventKind::AttemptFinished {
                phase: phase.into(),
                attempt: n,
                duration_ms: 5,
                outcome: AttemptOutcome::Succeeded,
                usage: Some(Usage {
                    model: Some("m".into()),
                    input_tokens: tokens,
                    output_tokens: 0,
                    ..Usage::default()
                }),
                cost_usd: usd,
                output: Some(json!({"ok": phase})),
                trace: vec!["line".into()],
                http: None,
                retry_after_ms: None,
            },
        );
    }

    fn finish(&mut self, id: &str) {
        self.attempt(id, "a", 10, Some(0.25));
        self.attempt(id, "b", 20, Some(0.5));
        self.emit(
            id,
            EventKind::TaskFinished {
                state: TaskState::Completed,
                reason: None,
            },
        );
    }

    fn hold(&mut self, id: &str) {
        self.attempt(id, "a", 10, None);
        self.emit(
            id,
            EventKind::ReviewRequested {
                phase: "a".into(),
                reason: ReviewReason::Always,
            },
        );
    }

    async fn commit(&mut self) -> u64 {
        let batch = std::mem::take(&mut self.batch);
        self.store.append(batch).await.unwrap();
        self.store.flush().await.unwrap()
    }
}

async fn open(open: Open, dir: &Path) -> Driver {
    let (store, recovered) = open(dir).unwrap();
    store.set_meta(meta()).await.unwrap();
    Driver::new(store, &recovered)
}

pub(crate) async fn events_are_durable_in_order_and_read_back_by_seq(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    let mut rx = d.store.subscribe();
    d.submit("t1");
    d.submit("t2");
    d.finish("t1");
    d.run_event(EventKind::RunPaused {
        by: Actor {
            user: "ana".into(),
            ssh_client: None,
        },
    });
    let durable = d.commit().await;
    assert_eq!(durable, d.seq);
    assert_eq!(d.store.durable_seq(), d.seq);
    let mut seen = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        seen.push(ev.seq);
    }
    assert_eq!(
        seen,
        (1..=d.seq).collect::<Vec<_>>(),
        "broadcast in order, all of it"
    );
    let all = d.store.events_after(0, 1000).await.unwrap();
    assert_eq!(all.len() as u64, d.seq);
    assert_eq!(all[0].task.as_deref(), Some("t1"));
    assert!(matches!(
        all.last().unwrap().kind,
        EventKind::RunPaused { .. }
    ));
    assert_eq!(all.last().unwrap().task, None);
    let tail = d.store.events_after(3, 2).await.unwrap();
    assert_eq!(tail.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
    assert_eq!(d.store.run_events().await.unwrap().len(), 1);
    assert_eq!(d.store.meta().await.unwrap(), Some(meta()));
}

pub(crate) async fn out_of_order_seqs_are_refused(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    d.submit("t1");
    d.commit().await;
    d.seq = 0;
    d.submit("t2");
    let err = d
        .store
        .append(std::mem::take(&mut d.batch))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::OutOfOrder { .. }), "{err}");
}

pub(crate) async fn rows_and_totals_follow_every_change(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for i in 0..6 {
        d.submit(&format!("t{i}"));
    }
    d.commit().await;
    d.finish("t0");
    d.finish("t1");
    d.hold("t2");
    d.attempt("t3", "a", 7, Some(0.125));
    d.commit().await;
    let t = d.store.totals().await.unwrap();
    assert_eq!(t.tasks, 6);
    assert_eq!(t.count(TaskState::Completed), 2);
    assert_eq!(t.count(TaskState::AwaitingReview), 1);
    assert_eq!(t.count(TaskState::Running), 1);
    assert_eq!(t.count(TaskState::Pending), 2);
    assert_eq!(t.holds, 1);
    assert_eq!(t.attempts, 2 + 2 + 1 + 1);
    assert_eq!(t.tokens, 30 + 30 + 10 + 7);
    assert_eq!(t.cost().usd, 0.75 + 0.75 + 0.125);
    assert_eq!(t.cost().unknown, 1, "t2's attempt has no price");
    // The totals are what a recount of the rows gives.
    let rows = d.store.list(&ListQuery::default()).await.unwrap();
    assert_eq!(rows.len(), 6);
    assert_eq!(rows.iter().map(|r| r.tokens).sum::<u64>(), t.tokens);
    assert_eq!(
        rows.iter().map(|r| r.attempts as u64).sum::<u64>(),
        t.attempts
    );
    let a = t.phases.iter().find(|p| p.phase == "a").unwrap();
    assert_eq!((a.attempts, a.succeeded, a.tokens), (4, 4, 37));
    assert_eq!(
        t.phases.iter().find(|p| p.phase == "b").unwrap().attempts,
        2
    );
    assert!(t.first_submitted_at <= t.last_change_at);
}

pub(crate) async fn list_filters_sorts_and_pages(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for i in 0..10 {
        d.submit(&format!("t{i}"));
    }
    for i in 0..10 {
        if i % 3 == 0 {
            d.finish(&format!("t{i}"));
        } else if i % 3 == 1 {
            d.attempt(&format!("t{i}"), "a", 100 + i, Some(0.01));
        }
    }
    d.commit().await;
    let q = |state: Option<TaskState>, sort: Sort| ListQuery {
        state,
        sort,
        ..ListQuery::default()
    };
    let ids = |rows: Vec<TaskRow>| rows.into_iter().map(|r| r.id).collect::<Vec<_>>();
    let done = d
        .store
        .list(&q(Some(TaskState::Completed), Sort::Submitted))
        .await
        .unwrap();
    assert_eq!(ids(done), ["t0", "t3", "t6", "t9"]);
    assert_eq!(
        d.store
            .count(&q(Some(TaskState::Running), Sort::Submitted))
            .await
            .unwrap(),
        3
    );
    let by_tokens = d
        .store
        .list(&q(Some(TaskState::Running), Sort::Tokens))
        .await
        .unwrap();
    assert_eq!(ids(by_tokens), ["t7", "t4", "t1"]);
    let at_a = ListQuery {
        phase: Some("a".into()),
        ..ListQuery::default()
    };
    assert_eq!(ids(d.store.list(&at_a).await.unwrap()), ["t1", "t4", "t7"]);
    // Pages by key and by position meet without a gap or a repeat.
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = ListQuery {
            after: after.clone(),
            limit: Some(4),
            sort: Sort::Tokens,
            ..ListQuery::default()
        };
        let rows = d.store.list(&page).await.unwrap();
        if rows.is_empty() {
            break;
        }
        after = rows.last().map(|r| r.id.clone());
        seen.extend(ids(rows));
    }
    let whole = ids(d.store.list(&q(None, Sort::Tokens)).await.unwrap());
    assert_eq!(seen, whole);
    let window = ListQuery {
        offset: 2,
        limit: Some(3),
        sort: Sort::Tokens,
        ..ListQuery::default()
    };
    assert_eq!(ids(d.store.list(&window).await.unwrap()), whole[2..5]);
}

/// Every sort, both ways, with and without a text filter, is the order a
/// sort of the rows in memory gives (ties the way the key runs), and paging
/// by key walks it without a gap or a repeat.
pub(crate) async fn every_sort_and_the_text_filter_agree_with_a_recount(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for i in 0..12 {
        d.submit(&format!("T{i:02}"));
    }
    for i in 0..12 {
        let id = format!("T{i:02}");
        match i % 4 {
            0 => d.finish(&id),
            1 => d.attempt(&id, "a", 100 + (i as u64 % 3), Some(0.01)),
            2 => d.hold(&id),
            _ => {}
        }
    }
    d.submit("odd_%_id");
    d.commit().await;
    let all = d.store.list(&ListQuery::default()).await.unwrap();
    assert_eq!(all.len(), 13);
    let now = jiff::Timestamp::now();
    let key = |sort: Sort, r: &TaskRow| -> (i128, String) {
        let n = |v: i128| (v, String::new());
        match sort {
            Sort::Submitted => n(0),
            Sort::Updated => n(r.updated_at.as_nanosecond()),
            Sort::Tokens => n(r.tokens as i128),
            Sort::Cost => n((r.cost_usd * 1e9) as i128),
            Sort::Id => (0, r.id.clone()),
            Sort::State => n(r.state.attention() as i128),
            Sort::Phase => n(r.phase_pos.map_or(u32::MAX as i128, |p| p as i128)),
            Sort::Progress => n(r.phases_done as i128),
            Sort::Attempts => n(r.attempts as i128),
            Sort::Elapsed => n(r
                .finished_at
                .unwrap_or(now)
                .duration_since(r.created_at)
                .as_millis()),
        }
    };
    for sort in Sort::ALL {
        for reverse in [false, true] {
            for text in [
                None,
                Some("t0"),
                Some("T01"),
                Some("REVIEW"),
                Some("%_"),
                Some("_%_"),
            ] {
                let q = ListQuery {
                    sort,
                    reverse,
                    text: text.map(str::to_string),
                    ..ListQuery::default()
                };
                let got: Vec<String> = d
                    .store
                    .list(&q)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|r| r.id)
                    .collect();
                let needle = text.unwrap_or("").to_ascii_lowercase();
                let mut want: Vec<&TaskRow> = all
                    .iter()
                    .filter(|r| {
                        needle.is_empty()
                            || r.id.to_ascii_lowercase().contains(&needle)
                            || r.state.as_str().contains(&needle)
                            || r.phase.as_deref().is_some_and(|p| p.contains(&needle))
                    })
                    .collect();
                let natural_desc = matches!(
                    sort,
                    Sort::Updated | Sort::Tokens | Sort::Cost | Sort::Attempts | Sort::Elapsed
                );
                want.sort_by(|a, b| {
                    let by = key(sort, a).cmp(&key(sort, b)).then(a.ord.cmp(&b.ord));
                    if natural_desc != reverse {
                        by.reverse()
                    } else {
                        by
                    }
                });
                let want: Vec<String> = want.iter().map(|r| r.id.clone()).collect();
                if sort == Sort::Elapsed {
                    // Unfinished tasks' elapsed time moves with the clock;
                    // compare the sets and the finished ones' order.
                    let (mut g, mut w) = (got.clone(), want.clone());
                    g.sort();
                    w.sort();
                    assert_eq!(g, w, "{sort:?} reverse={reverse} text={text:?}");
                    continue;
                }
                assert_eq!(got, want, "{sort:?} reverse={reverse} text={text:?}");
                assert_eq!(d.store.count(&q).await.unwrap(), want.len() as u64);
                // Paging by key meets the whole list.
                let mut seen = Vec::new();
                let mut after = None;
                loop {
                    let page = ListQuery {
                        after: after.clone(),
                        limit: Some(5),
                        ..q.clone()
                    };
                    let rows = d.store.list(&page).await.unwrap();
                    if rows.is_empty() {
                        break;
                    }
                    after = rows.last().map(|r| r.id.clone());
                    seen.extend(rows.into_iter().map(|r| r.id));
                }
                assert_eq!(
                    seen, want,
                    "paged: {sort:?} reverse={reverse} text={text:?}"
                );
            }
        }
    }
}

fn ids(rows: Vec<TaskRow>) -> Vec<String> {
    rows.into_iter().map(|r| r.id).collect()
}

/// Elapsed time is a finished task's time and an unfinished one's age: the
/// two interleave in one order, both ways, paged by key or by offset, with
/// a filter, equal times broken by submission order.
pub(crate) async fn the_elapsed_sort_interleaves_finished_and_unfinished_tasks(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    let t = |s: &str| -> Timestamp { s.parse().unwrap() };
    // (id, created, finished): ages in years, as of this test's years.
    let tasks = [
        ("U1", "1990-01-01T00:00:00Z", None),
        ("F1", "2000-01-01T00:00:00Z", Some("2025-01-01T00:00:00Z")),
        ("U2", "2010-01-01T00:00:00.5Z", None),
        ("U3", "2010-01-01T00:00:00.5Z", None),
        ("F2", "2020-01-01T00:00:00Z", Some("2030-01-01T00:00:00Z")),
        ("F3", "2020-01-01T00:00:00Z", Some("2030-01-01T00:00:00Z")),
        ("U4", "2026-01-01T00:00:00Z", None),
        (
            "F4",
            "2026-01-01T00:00:00Z",
            Some("2026-01-01T01:00:00.000000001Z"),
        ),
    ];
    for (id, created, _) in tasks {
        d.clock = Some(t(created));
        d.submit(id);
    }
    for (id, _, finished) in tasks {
        if let Some(at) = finished {
            d.clock = Some(t(at));
            d.finish(id);
        }
    }
    d.commit().await;
    let longest_first = ["U1", "F1", "U3", "U2", "F3", "F2", "U4", "F4"];
    for reverse in [false, true] {
        let mut want: Vec<&str> = longest_first.to_vec();
        if reverse {
            want.reverse();
        }
        for only_unfinished in [false, true] {
            let want: Vec<&str> = want
                .iter()
                .copied()
                .filter(|id| !only_unfinished || id.starts_with('U'))
                .collect();
            let q = ListQuery {
                sort: Sort::Elapsed,
                reverse,
                filter: only_unfinished.then(|| crate::filter::Filter::parse("id:U*").unwrap()),
                ..ListQuery::default()
            };
            let what = format!("reverse={reverse} only_unfinished={only_unfinished}");
            assert_eq!(ids(d.store.list(&q).await.unwrap()), want, "{what}");
            for page in [1, 2, 3] {
                let mut seen = Vec::new();
                let mut after: Option<String> = None;
                loop {
                    let rows = d
                        .store
                        .list(&ListQuery {
                            after: after.clone(),
                            limit: Some(page),
                            ..q.clone()
                        })
                        .await
                        .unwrap();
                    if rows.is_empty() {
                        break;
                    }
                    after = rows.last().map(|r| r.id.clone());
                    seen.extend(ids(rows));
                }
                assert_eq!(seen, want, "{what}, by key, {page} a page");
            }
            for offset in 0..=want.len() + 1 {
                let window = ListQuery {
                    offset: offset as u64,
                    limit: Some(3),
                    ..q.clone()
                };
                let got = ids(d.store.list(&window).await.unwrap());
                let end = (offset + 3).min(want.len());
                let expected = want.get(offset..end).unwrap_or(&[]);
                assert_eq!(got, expected, "{what}, from {offset}");
            }
            // An offset after a key counts from the key.
            let got = ids(d
                .store
                .list(&ListQuery {
                    after: Some(want[0].to_string()),
                    offset: 1,
                    limit: Some(2),
                    ..q.clone()
                })
                .await
                .unwrap());
            assert_eq!(got, want[2..4.min(want.len())], "{what}, after and offset");
        }
    }
    let nobody = ListQuery {
        sort: Sort::Elapsed,
        after: Some("nobody".into()),
        ..ListQuery::default()
    };
    assert!(d.store.list(&nobody).await.unwrap().is_empty());

    // The oldest task fails in a second: the shortest time of all. Run
    // again, it is unfinished again, and the longest waiting.
    d.clock = Some(t("1980-01-01T00:00:00Z"));
    d.submit("R");
    d.clock = Some(t("1980-01-01T00:00:01Z"));
    d.start("R", "a", "sim", None);
    d.end("R", "a", figures::failed(ErrorClass::Fatal), None, None, 5);
    d.emit(
        "R",
        EventKind::PhaseFailed {
            phase: "a".into(),
            error: "no".into(),
        },
    );
    d.emit(
        "R",
        EventKind::TaskFinished {
            state: TaskState::Failed,
            reason: None,
        },
    );
    d.commit().await;
    let longest = ListQuery {
        sort: Sort::Elapsed,
        ..ListQuery::default()
    };
    let got = ids(d.store.list(&longest).await.unwrap());
    assert_eq!(got.last().map(String::as_str), Some("R"), "{got:?}");
    d.emit(
        "R",
        EventKind::DecisionRecorded {
            decision: crate::engine::event::Decision {
                action: crate::engine::Action::Retry,
                phase: Some("a".into()),
                by: Actor::engine(),
                at: t("1980-01-01T00:00:02Z"),
                note: None,
            },
        },
    );
    d.commit().await;
    let got = ids(d.store.list(&longest).await.unwrap());
    assert_eq!(got.first().map(String::as_str), Some("R"), "{got:?}");
}

/// The filter language's terms, one by one and together, keep what an
/// evaluation of the rows in memory keeps.
pub(crate) async fn the_filter_language_agrees_with_a_recount(open_store: Open) {
    use crate::filter::{Field, Filter, Number, Op, Test};
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for i in 0..12 {
        d.submit(&format!("DEV-{i:02}"));
    }
    for i in 0..12 {
        let id = format!("DEV-{i:02}");
        match i % 4 {
            0 => d.finish(&id),
            1 => d.attempt(&id, "a", 100 * i as u64, Some(0.01 * i as f64)),
            2 => d.hold(&id),
            _ => {}
        }
    }
    d.commit().await;
    let all = d.store.list(&ListQuery::default()).await.unwrap();
    let now = jiff::Timestamp::now();
    let keeps = |test: &Test, r: &TaskRow| -> bool {
        let cmp = |a: f64, op: Op, b: f64| match op {
            Op::Gt => a > b,
            Op::Ge => a >= b,
            Op::Lt => a < b,
            Op::Le => a <= b,
            Op::Eq => a == b,
        };
        match test {
            Test::Is { field, value } => match field {
                Field::State => r.state.as_str() == value,
                Field::Phase => r.phase.as_deref() == Some(value),
                Field::Agent => r.agent.as_deref() == Some(value),
                Field::Model => r.model.as_deref() == Some(value),
                Field::Id => r.id == *value,
            },
            Test::IdPrefix(p) => r.id.starts_with(p.as_str()),
            Test::Compare { number, op, value } => match number {
                Number::Cost => cmp(r.cost_usd, *op, *value),
                Number::Tokens => cmp(r.tokens as f64, *op, *value),
                Number::Attempts => cmp(r.attempts as f64, *op, *value),
                Number::Waited => r
                    .waiting()
                    .is_some_and(|h| cmp(now.duration_since(h.since).as_secs_f64(), *op, *value)),
            },
            Test::Regex(p) => {
                let re = regex::Regex::new(p).unwrap();
                re.is_match(&r.id)
                    || re.is_match(r.finish_reason.as_deref().unwrap_or(""))
                    || r.holds.iter().any(|h| re.is_match(&h.reason))
            }
            Test::Text(t) => {
                let n = t.to_ascii_lowercase();
                r.id.to_ascii_lowercase().contains(&n)
                    || r.state.as_str().contains(&n)
                    || r.phase
                        .as_deref()
                        .is_some_and(|p| p.to_ascii_lowercase().contains(&n))
            }
        }
    };
    let agent = all
        .iter()
        .find_map(|r| r.agent.clone())
        .expect("an agent recorded");
    let texts = [
        "state:completed".to_string(),
        "!state:completed".into(),
        "phase:a".into(),
        format!("agent:{agent}"),
        "id:DEV-1*".into(),
        "id:DEV-03".into(),
        "cost>0.02".into(),
        "tokens>=500 !state:pending".into(),
        "attempts>=2".into(),
        "attempts<1".into(),
        "waited>0s".into(),
        "waited>1d".into(),
        "/DEV-0[0-4]/".into(),
        "/needs/".into(),
        "DEV-1 state:running".into(),
        "review".into(),
    ];
    for text in texts {
        let filter = Filter::parse(&text).unwrap();
        let q = ListQuery {
            filter: Some(filter.clone()),
            ..ListQuery::default()
        };
        let got: Vec<String> = d
            .store
            .list(&q)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.id)
            .collect();
        let want: Vec<String> = all
            .iter()
            .filter(|r| filter.terms.iter().all(|t| keeps(&t.test, r) != t.negated))
            .map(|r| r.id.clone())
            .collect();
        assert_eq!(got, want, "{text}");
        assert_eq!(
            d.store.count(&q).await.unwrap(),
            want.len() as u64,
            "{text}"
        );
    }
}

pub(crate) async fn the_review_queue_is_oldest_first(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for id in ["late", "early", "other"] {
        d.submit(id);
    }
    d.hold("early");
    d.commit().await;
    d.hold("late");
    d.commit().await;
    let queue = d.store.waiting(0, None).await.unwrap();
    let ids: Vec<&str> = queue.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, ["early", "late"]);
    assert_eq!(queue[0].1.phase, "a");
    assert_eq!(d.store.waiting(1, Some(5)).await.unwrap().len(), 1);
    // A decision takes it off the queue.
    d.emit(
        "early",
        EventKind::DecisionRecorded {
            decision: crate::engine::event::Decision {
                action: crate::engine::Action::Cancel,
                phase: None,
                by: Actor {
                    user: "ana".into(),
                    ssh_client: None,
                },
                at: Timestamp::now(),
                note: None,
            },
        },
    );
    d.commit().await;
    let queue = d.store.waiting(0, None).await.unwrap();
    assert_eq!(queue.len(), 1);
    assert_eq!(d.store.totals().await.unwrap().holds, 1);
}

pub(crate) async fn a_task_reads_back_whole(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    d.submit("t1");
    d.finish("t1");
    d.commit().await;
    let stored = d.store.task("t1").await.unwrap().unwrap();
    assert_eq!(&stored, &d.tasks["t1"].1);
    assert_eq!(stored.phases[1].output, Some(json!({"ok": "b"})));
    assert!(d.store.task("nope").await.unwrap().is_none());
    let (ord, loaded) = d.store.load("t1").await.unwrap().unwrap();
    assert_eq!((ord, &loaded), (1, &stored));
    assert_eq!(
        d.store.row("t1").await.unwrap().unwrap().state,
        TaskState::Completed
    );
    assert_eq!(
        d.store.existing(&["t1".into(), "t2".into()]).await.unwrap(),
        ["t1"]
    );
    // As it was before an event: just submitted before its second event.
    let events = d.store.events_after(0, 100).await.unwrap();
    let second = events[1].seq;
    let pending = d.store.task_before("t1", second).await.unwrap().unwrap();
    assert_eq!(pending.state, TaskState::Pending);
    assert_eq!(pending.attempts(), 0);
    assert!(
        d.store
            .task_before("t1", events[0].seq)
            .await
            .unwrap()
            .is_none()
    );
    let last = events.last().unwrap().seq;
    let before_last = d.store.task_before("t1", last).await.unwrap().unwrap();
    assert!(!before_last.state.is_final(), "{:?}", before_last.state);
    assert_eq!(
        d.store.task_before("t1", last + 1).await.unwrap().unwrap(),
        stored
    );
}

pub(crate) async fn a_reopened_store_gives_back_only_the_work_in_flight(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for i in 0..5 {
        d.submit(&format!("t{i}"));
    }
    d.finish("t0");
    d.hold("t1");
    d.attempt("t2", "a", 5, Some(0.5));
    d.run_event(EventKind::RunPaused {
        by: Actor {
            user: "ana".into(),
            ssh_client: None,
        },
    });
    d.commit().await;
    let (seq, tasks) = (d.seq, d.tasks.clone());
    d.store.close().await.unwrap();

    let (store, recovered) = open_store(dir.path()).unwrap();
    assert_eq!(recovered.last_seq, seq);
    assert_eq!(recovered.last_ord, 5);
    assert_eq!(recovered.run_events.len(), 1);
    assert_eq!(recovered.totals.tasks, 5);
    if store.is_shared() {
        // A fleet's store hands nothing over at open: an engine claims what
        // is pending or under way with no live holder (the closed store let
        // go of its tasks), never what waits for a person or is final.
        assert!(recovered.tasks.is_empty());
        let claimed = store.pending_after(0, 10).await.unwrap();
        let ids: Vec<&str> = claimed.iter().map(|(_, t)| t.id.as_str()).collect();
        assert_eq!(ids, ["t2", "t3", "t4"]);
        assert_eq!(claimed[0].1, tasks["t2"].1);
        assert!(
            store.pending_after(0, 10).await.unwrap().is_empty(),
            "claimed once"
        );
        return;
    }
    let mut held: Vec<&str> = recovered.tasks.iter().map(|(_, t)| t.id.as_str()).collect();
    held.sort();
    assert_eq!(
        held,
        ["t1", "t2"],
        "final and pending tasks stay in the store"
    );
    for (_, t) in &recovered.tasks {
        assert_eq!(t, &tasks[&t.id].1);
    }
    assert_eq!(recovered.last_seq, seq);
    assert_eq!(recovered.last_ord, 5);
    assert_eq!(recovered.run_events.len(), 1);
    assert_eq!(recovered.totals.tasks, 5);
    let pending = store.pending_after(0, 10).await.unwrap();
    let ids: Vec<&str> = pending.iter().map(|(_, t)| t.id.as_str()).collect();
    assert_eq!(ids, ["t3", "t4"]);
    assert_eq!(
        store.pending_after(pending[0].0, 10).await.unwrap().len(),
        1
    );
}

pub(crate) async fn a_second_writer_is_refused(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let (held, _) = open_store(dir.path()).unwrap();
    if held.is_shared() {
        // A fleet's store is opened by several engines at once.
        let (second, _) = open_store(dir.path()).unwrap();
        assert!(second.is_shared());
        return;
    }
    match open_store(dir.path()) {
        Err(e @ (StoreError::Locked { .. } | StoreError::RunHeld { .. })) => {
            assert_eq!(e.holder_pid(), Some(std::process::id()), "{e}")
        }
        Err(e) => panic!("expected Locked, got {e}"),
        Ok(_) => panic!("expected Locked, got a second store"),
    }
}

pub(crate) async fn a_reader_sees_whole_commits_only(
    open_store: Open,
    reader: fn(&Path) -> Box<dyn RunReader>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    d.submit("t1");
    d.commit().await;
    let r = reader(dir.path());
    assert_eq!(r.totals().await.unwrap().tasks, 1);
    d.submit("t2");
    d.finish("t1");
    d.commit().await;
    let t = r.totals().await.unwrap();
    assert_eq!((t.tasks, t.count(TaskState::Completed)), (2, 1));
    assert_eq!(r.last_seq().await.unwrap(), d.seq);
}

fn cache_key(phase: &str, definition: &str, key: &str) -> CacheKey {
    CacheKey {
        phase: phase.into(),
        definition: definition.into(),
        key: key.into(),
    }
}

fn cache_entry(key: CacheKey, output: serde_json::Value, at: Timestamp) -> CacheEntry {
    CacheEntry {
        key,
        output,
        task: "t1".into(),
        created_at: at,
    }
}

pub(crate) async fn the_step_cache_keeps_finds_counts_and_clears(
    open_store: Open,
    reader: fn(&Path) -> Box<dyn RunReader>,
) {
    let dir = tempfile::tempdir().unwrap();
    let d = open(open_store, dir.path()).await;
    let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    let q1 = cache_key("a", "def1", "q1");
    let q2 = cache_key("a", "def1", "q2");
    let other = cache_key("b", "def9", "q1");
    d.store
        .cache_write(vec![
            CacheWrite::Put(cache_entry(q1.clone(), json!({"rows": [1, 2]}), at)),
            CacheWrite::Put(cache_entry(q2.clone(), json!({"rows": []}), at)),
            CacheWrite::Put(cache_entry(other.clone(), json!({"x": 1}), at)),
            CacheWrite::Used {
                key: q1.clone(),
                n: 3,
                at,
            },
        ])
        .await
        .unwrap();
    d.store.flush().await.unwrap();
    // Found only by all three parts: another definition is another entry.
    let found = d
        .store
        .cache_get(&[q1.clone(), cache_key("a", "def2", "q1"), q2.clone()])
        .await
        .unwrap();
    assert_eq!(found[0].as_ref().unwrap().output, json!({"rows": [1, 2]}));
    assert_eq!(found[0].as_ref().unwrap().created_at, at);
    assert_eq!(found[0].as_ref().unwrap().task, "t1");
    assert!(found[1].is_none());
    assert!(found[2].is_some());
    let all = d.store.cache_list(&CacheFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let first = all.iter().find(|e| e.key == q1).unwrap();
    assert_eq!((first.uses, first.size), (3, 14));
    assert_eq!(first.last_used_at, Some(at));
    // A reader beside the writer sees the same.
    let r = reader(dir.path());
    assert_eq!(r.cache_list(&CacheFilter::default()).await.unwrap(), all);
    // Storing again at a key replaces the entry and starts its uses over.
    let later: Timestamp = "2026-01-03T00:00:00Z".parse().unwrap();
    d.store
        .cache_write(vec![CacheWrite::Put(cache_entry(
            q1.clone(),
            json!({"rows": [3]}),
            later,
        ))])
        .await
        .unwrap();
    d.store.flush().await.unwrap();
    let again = d.store.cache_get(std::slice::from_ref(&q1)).await.unwrap();
    assert_eq!(again[0].as_ref().unwrap().output, json!({"rows": [3]}));
    let by_key = CacheFilter {
        phase: None,
        key: Some("q1".into()),
    };
    let listed = d.store.cache_list(&by_key).await.unwrap();
    assert_eq!(listed.len(), 2, "q1 of phase a and of phase b");
    assert_eq!(listed[0].uses, 0);
    assert_eq!(listed[0].created_at, later);
    // Clearing by phase and key, then by phase.
    let both = CacheFilter {
        phase: Some("a".into()),
        key: Some("q1".into()),
    };
    assert_eq!(d.store.cache_clear(both).await.unwrap(), 1);
    let by_phase = CacheFilter {
        phase: Some("a".into()),
        key: None,
    };
    assert_eq!(d.store.cache_clear(by_phase.clone()).await.unwrap(), 1);
    assert_eq!(d.store.cache_clear(by_phase).await.unwrap(), 0);
    // What is left survives a reopen.
    drop(d);
    let d = open(open_store, dir.path()).await;
    let left = d.store.cache_list(&CacheFilter::default()).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].key, other);
    assert_eq!(
        d.store.cache_clear(CacheFilter::default()).await.unwrap(),
        1
    );
}

/// A claim of `key` for `task`, as the engine asks for one.
fn claim(key: &CacheKey, task: &str) -> (CacheKey, String) {
    (key.clone(), task.to_string())
}

pub(crate) async fn a_cache_key_is_claimed_by_one_engine_at_a_time(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(open_store, dir.path()).await;
    a.submit("t1");
    a.submit("t2");
    a.commit().await;
    let (q1, q2, q3) = (
        cache_key("a", "def1", "q1"),
        cache_key("a", "def1", "q2"),
        cache_key("a", "def1", "q3"),
    );
    // Free keys are claimed; the engine holding one may claim it again,
    // for another of its tasks.
    let asked = [claim(&q1, "t1"), claim(&q2, "t2")];
    let got = a.store.cache_claim(&asked).await.unwrap();
    assert_eq!(got, [true, true]);
    let got = a.store.cache_claim(&[claim(&q1, "t2")]).await.unwrap();
    assert_eq!(got, [true]);
    assert_eq!(a.store.cache_claim(&[]).await.unwrap(), Vec::<bool>::new());
    if !a.store.is_shared() {
        // An engine on its own has every key, and nothing to let go.
        a.store.cache_release(vec![q1.clone()]).await.unwrap();
        return;
    }
    // A second engine on the run waits for the keys the first one runs.
    let (store, recovered) = open_store(dir.path()).unwrap();
    let mut b = Driver::new(store, &recovered);
    b.submit("t3");
    b.commit().await;
    let asked = [claim(&q1, "t3"), claim(&q3, "t3")];
    let got = b.store.cache_claim(&asked).await.unwrap();
    assert_eq!(got, [false, true], "q1 is held by the first");
    let got = a.store.cache_claim(&[claim(&q3, "t1")]).await.unwrap();
    assert_eq!(got, [false], "and q3 by the second");
    // Let go, a key is the next asker's.
    a.store.cache_release(vec![q1.clone()]).await.unwrap();
    let got = b.store.cache_claim(&[claim(&q1, "t3")]).await.unwrap();
    assert_eq!(got, [true]);
    // A release lets go of the engine's own claims only.
    a.store.cache_release(vec![q1.clone()]).await.unwrap();
    let got = a.store.cache_claim(&[claim(&q1, "t1")]).await.unwrap();
    assert_eq!(got, [false], "still the second engine's");
    // The entry stored at a key ends its claim, whoever stored it.
    let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
    let entry = cache_entry(q1.clone(), json!({"rows": [1]}), at);
    a.store
        .cache_write(vec![CacheWrite::Put(entry)])
        .await
        .unwrap();
    a.store.flush().await.unwrap();
    let got = a.store.cache_claim(&[claim(&q1, "t1")]).await.unwrap();
    assert_eq!(got, [true], "the entry ended the second engine's claim");
    // An output that waits for a person's review holds its key, even
    // against its own engine and once the task is put down.
    a.hold("t2");
    let t2 = a.tasks["t2"].0;
    a.batch.released.push(t2);
    a.commit().await;
    let got = b.store.cache_claim(&[claim(&q2, "t3")]).await.unwrap();
    assert_eq!(got, [false], "t2's review holds q2");
    let got = a.store.cache_claim(&[claim(&q2, "t1")]).await.unwrap();
    assert_eq!(got, [false]);
    // An engine that stops lets go of what its attempts held, not of what
    // waits for a person.
    let Driver { store, .. } = a;
    store.close().await.unwrap();
    let asked = [claim(&q1, "t3"), claim(&q2, "t3")];
    let got = b.store.cache_claim(&asked).await.unwrap();
    assert_eq!(got, [true, false]);
}

/// Every test of the suite, on one backend.
macro_rules! store_suite {
    ($open:expr, $reader:expr, $ready:expr) => {
        #[tokio::test]
        async fn events_are_durable_in_order_and_read_back_by_seq() {
            if !($ready)() {
                return;
            }
            super::events_are_durable_in_order_and_read_back_by_seq($open).await
        }
        #[tokio::test]
        async fn out_of_order_seqs_are_refused() {
            if !($ready)() {
                return;
            }
            super::out_of_order_seqs_are_refused($open).await
        }
        #[tokio::test]
        async fn rows_and_totals_follow_every_change() {
            if !($ready)() {
                return;
            }
            super::rows_and_totals_follow_every_change($open).await
        }
        #[tokio::test]
        async fn list_filters_sorts_and_pages() {
            if !($ready)() {
                return;
            }
            super::list_filters_sorts_and_pages($open).await
        }
        #[tokio::test]
        async fn every_sort_and_the_text_filter_agree_with_a_recount() {
            if !($ready)() {
                return;
            }
            super::every_sort_and_the_text_filter_agree_with_a_recount($open).await
        }
        #[tokio::test]
        async fn the_elapsed_sort_interleaves_finished_and_unfinished_tasks() {
            if !($ready)() {
                return;
            }
            super::the_elapsed_sort_interleaves_finished_and_unfinished_tasks($open).await
        }
        #[tokio::test]
        async fn the_filter_language_agrees_with_a_recount() {
            if !($ready)() {
                return;
            }
            super::the_filter_language_agrees_with_a_recount($open).await
        }
        #[tokio::test]
        async fn the_review_queue_is_oldest_first() {
            if !($ready)() {
                return;
            }
            super::the_review_queue_is_oldest_first($open).await
        }
        #[tokio::test]
        async fn a_task_reads_back_whole() {
            if !($ready)() {
                return;
            }
            super::a_task_reads_back_whole($open).await
        }
        #[tokio::test]
        async fn a_reopened_store_gives_back_only_the_work_in_flight() {
            if !($ready)() {
                return;
            }
            super::a_reopened_store_gives_back_only_the_work_in_flight($open).await
        }
        #[tokio::test]
        async fn a_second_writer_is_refused() {
            if !($ready)() {
                return;
            }
            super::a_second_writer_is_refused($open).await
        }
        #[tokio::test]
        async fn a_reader_sees_whole_commits_only() {
            if !($ready)() {
                return;
            }
            super::a_reader_sees_whole_commits_only($open, $reader).await
        }
        #[tokio::test]
        async fn the_step_cache_keeps_finds_counts_and_clears() {
            if !($ready)() {
                return;
            }
            super::the_step_cache_keeps_finds_counts_and_clears($open, $reader).await
        }
        #[tokio::test]
        async fn a_cache_key_is_claimed_by_one_engine_at_a_time() {
            if !($ready)() {
                return;
            }
            super::a_cache_key_is_claimed_by_one_engine_at_a_time($open).await
        }
        #[tokio::test]
        async fn figures_per_phase_agent_and_model_equal_a_recount() {
            if !($ready)() {
                return;
            }
            super::figures::figures_per_phase_agent_and_model_equal_a_recount($open).await
        }
    };
}

mod sqlite {
    use std::path::Path;

    use crate::store::{Recovered, RunReader, RunStore, SqliteReader, SqliteStore, StoreError};

    fn open(dir: &Path) -> Result<(Box<dyn RunStore>, Recovered), StoreError> {
        let (store, recovered, _) = SqliteStore::open(dir, &super::meta())?;
        Ok((Box::new(store), recovered))
    }

    fn reader(dir: &Path) -> Box<dyn RunReader> {
        Box::new(SqliteReader::open(dir).unwrap())
    }

    store_suite!(open, reader, || true);

    #[tokio::test]
    async fn a_database_before_the_figures_gets_them_from_its_events() {
        super::figures::a_database_before_the_figures_gets_them_from_its_events(open).await
    }

    /// Group commit: batches queued while the writer is busy share one
    /// commit, and none is seen before it.
    #[tokio::test]
    // The writer is held at its gate across the appends on purpose.
    #[allow(clippy::await_holding_lock)]
    async fn batches_queued_together_share_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let (store, recovered, _) = SqliteStore::open(dir.path(), &super::meta()).unwrap();
        let shared = store.shared();
        let gate = shared.writer_gate.lock().unwrap();
        let mut d = super::Driver::new(Box::new(store), &recovered);
        // The writer takes the first batch and waits at the gate.
        d.submit("t0");
        let batch = std::mem::take(&mut d.batch);
        d.store.append(batch).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        for i in 1..50 {
            d.submit(&format!("t{i}"));
            let batch = std::mem::take(&mut d.batch);
            d.store.append(batch).await.unwrap();
        }
        assert_eq!(
            d.store.durable_seq(),
            0,
            "nothing is durable before its commit"
        );
        drop(gate);
        d.store.flush().await.unwrap();
        let stats = d.store.stats();
        assert_eq!(stats.events_written, 50);
        assert!(
            stats.batches <= 2,
            "{stats:?}: the 49 queued batches share a commit"
        );
    }
}

/// The suite on PostgreSQL: a cluster the tests start (see
/// `tests/support/pg_cluster.rs`), one database for this test binary and a
/// schema per test folder. Without PostgreSQL installed the tests say so and
/// pass, unless `BATON_REQUIRE_PG=1` (as in CI) makes that a failure.
mod postgres {
    use std::path::Path;
    use std::sync::OnceLock;

    use super::pg_cluster;
    use crate::store::postgres::{PgReader, PgStore, PgTarget};
    use crate::store::{Recovered, RunReader, RunStore, StoreError};

    /// The database of this test binary, once a cluster runs.
    fn database() -> Option<&'static str> {
        static DB: OnceLock<Option<String>> = OnceLock::new();
        DB.get_or_init(|| pg_cluster::cluster().map(|c| c.fresh_db()))
            .as_deref()
    }

    fn ready() -> bool {
        database().is_some()
    }

    /// The run of a test folder: a schema named after the folder.
    pub(super) fn target(dir: &Path) -> PgTarget {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in dir.as_os_str().as_encoded_bytes() {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        let url = database().expect("a PostgreSQL cluster for the tests");
        PgTarget::parse(&format!("{url}?schema=run_{h:016x}")).expect("the test cluster's address")
    }

    fn open(dir: &Path) -> Result<(Box<dyn RunStore>, Recovered), StoreError> {
        let (store, recovered, _) = PgStore::open(&target(dir), &super::meta())?;
        Ok((Box::new(store), recovered))
    }

    fn reader(dir: &Path) -> Box<dyn RunReader> {
        Box::new(PgReader::open(&target(dir)).unwrap())
    }

    store_suite!(open, reader, ready);
}
