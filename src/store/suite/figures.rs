//! The store's figures per phase, agent and model against a recount of the
//! tasks it gives back: every outcome, known and unknown costs, a cancelled
//! attempt, and an attempt under way when the store is closed and reopened.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde_json::json;

use super::{Driver, Open, open};
use crate::engine::cost::Usage;
use crate::engine::event::{AttemptOutcome, Decision, ErrorClass, EventKind};
use crate::engine::state::PhaseState;
use crate::engine::task::Task;
use crate::engine::{Action, Actor, TaskState};
use crate::store::RunStore;
use crate::store::histogram::Histogram;
use crate::store::model::nano;
use crate::store::stats::{AttemptFigures, RunStats};

impl Driver {
    pub(super) fn start(&mut self, id: &str, phase: &str, agent: &str, model: Option<&str>) {
        let n = self.tasks[id].1.phase(phase).unwrap().attempts.len() as u32 + 1;
        self.emit(
            id,
            EventKind::PhaseStarted {
                phase: phase.into(),
                attempt: n,
                agent: agent.into(),
                model: model.map(str::to_string),
                feedback: None,
                route: None,
                role: None,
            },
        );
    }

    /// Ends the phase's attempt under way; `tokens` of `usage_model` when
    /// given (input, output, cache read), with `usd` when priced.
    pub(super) fn end(
        &mut self,
        id: &str,
        phase: &str,
        outcome: AttemptOutcome,
        usage: Option<(&str, [u64; 3])>,
        usd: Option<f64>,
        duration_ms: u64,
    ) {
        let n = self.tasks[id].1.phase(phase).unwrap().attempts.len() as u32;
        self.emit(
            id,
            EventKind::AttemptFinished {
                phase: phase.into(),
                attempt: n,
                duration_ms,
                outcome,
                usage: usage.map(|(model, [i, o, c])| Usage {
                    model: Some(model.into()),
                    input_tokens: i,
                    output_tokens: o,
                    cache_read_tokens: c,
                    ..Usage::default()
                }),
                cost_usd: usd,
                output: Some(json!({"ok": phase})),
                trace: Vec::new(),
                http: None,
                retry_after_ms: None,
            },
        );
    }

    fn cancel(&mut self, id: &str) {
        self.emit(
            id,
            EventKind::DecisionRecorded {
                decision: Decision {
                    action: Action::Cancel,
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
    }
}

pub(super) fn failed(class: ErrorClass) -> AttemptOutcome {
    AttemptOutcome::Failed {
        class,
        message: "no".into(),
    }
}

/// The figures counted again from the tasks' attempts, by another road
/// than the store's fold.
fn recount(tasks: &[Task]) -> BTreeMap<(String, String, String), AttemptFigures> {
    let mut out: BTreeMap<(String, String, String), AttemptFigures> = BTreeMap::new();
    for t in tasks {
        for p in &t.phases {
            for a in &p.attempts {
                let Some(outcome) = &a.outcome else { continue };
                let model = a
                    .model
                    .clone()
                    .or_else(|| a.usage.as_ref().and_then(|u| u.model.clone()))
                    .unwrap_or_default();
                let key = (p.id.clone(), a.agent.clone(), model.clone());
                let f = out
                    .entry(key)
                    .or_insert_with(|| AttemptFigures::new(&p.id, &a.agent, &model));
                f.attempts += 1;
                match outcome {
                    AttemptOutcome::Succeeded
                    | AttemptOutcome::ReviewRequested { .. }
                    | AttemptOutcome::SentBack { .. } => f.succeeded += 1,
                    AttemptOutcome::Blocked { .. } => f.blocked += 1,
                    AttemptOutcome::Failed { class, .. } => {
                        f.failed.set(*class, f.failed.get(*class) + 1)
                    }
                    AttemptOutcome::Interrupted => f.interrupted += 1,
                    AttemptOutcome::Cancelled => f.cancelled += 1,
                }
                if !matches!(
                    outcome,
                    AttemptOutcome::Interrupted | AttemptOutcome::Cancelled
                ) {
                    f.duration_ms.add(a.duration_ms.unwrap());
                }
                if let Some(u) = &a.usage {
                    f.input_tokens += u.input_tokens;
                    f.output_tokens += u.output_tokens;
                    f.cache_read_tokens += u.cache_read_tokens;
                    f.cache_write_tokens += u.cache_write_tokens;
                    match a.cost_usd {
                        Some(c) => {
                            f.cost_nano += nano(c);
                            f.cost_sq += c * c;
                        }
                        None => f.cost_unknown += 1,
                    }
                }
            }
        }
    }
    out
}

async fn check_against_a_recount(store: &dyn RunStore, ids: &[&str]) -> RunStats {
    let stats = store.run_stats().await.unwrap();
    let mut tasks = Vec::new();
    for id in ids {
        tasks.push(store.task(id).await.unwrap().unwrap());
    }
    let want = recount(&tasks);
    let got: BTreeMap<(String, String, String), AttemptFigures> = stats
        .attempts
        .iter()
        .map(|f| {
            (
                (f.phase.clone(), f.agent.clone(), f.model.clone()),
                f.clone(),
            )
        })
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>()
    );
    for (key, w) in &want {
        let g = &got[key];
        assert!(
            (g.cost_sq - w.cost_sq).abs() < 1e-12,
            "{key:?}: {} vs {}",
            g.cost_sq,
            w.cost_sq
        );
        let (mut g, mut w) = (g.clone(), w.clone());
        (g.cost_sq, w.cost_sq) = (0.0, 0.0);
        assert_eq!(g, w, "{key:?}");
    }
    // Phases skipped and failed for good, as the tasks' phases stand.
    let mut ends: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for t in &tasks {
        for p in &t.phases {
            let e = ends.entry(p.id.clone()).or_default();
            match p.state {
                PhaseState::Skipped => e.0 += 1,
                PhaseState::Failed => e.1 += 1,
                _ => {}
            }
        }
    }
    ends.retain(|_, e| *e != (0, 0));
    let got: BTreeMap<String, (u64, u64)> = stats
        .ends
        .iter()
        .map(|e| (e.phase.clone(), (e.skipped, e.failed)))
        .collect();
    assert_eq!(got, ends);
    stats
}

pub(crate) async fn figures_per_phase_agent_and_model_equal_a_recount(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    let ids = ["t0", "t1", "t2", "t3", "t4", "t5", "t6"];
    for id in ids {
        d.submit(id);
    }
    d.commit().await;
    // t0: a retryable failure then success on x/m1; b on y with no model
    // at the start: counted under the model its usage names, unpriced.
    d.start("t0", "a", "x", Some("m1"));
    d.end(
        "t0",
        "a",
        failed(ErrorClass::Retryable),
        Some(("m1", [5, 1, 0])),
        Some(0.01),
        40,
    );
    d.start("t0", "a", "x", Some("m1"));
    d.commit().await;
    d.end(
        "t0",
        "a",
        AttemptOutcome::Succeeded,
        Some(("m1", [100, 20, 30])),
        Some(0.25),
        900,
    );
    d.start("t0", "b", "y", None);
    d.end(
        "t0",
        "b",
        AttemptOutcome::Succeeded,
        Some(("u2", [7, 7, 0])),
        None,
        1500,
    );
    d.emit(
        "t0",
        EventKind::TaskFinished {
            state: TaskState::Completed,
            reason: None,
        },
    );
    // t1: a timeout with nothing reported, then a fatal failure: the task fails.
    d.start("t1", "a", "x", Some("m1"));
    d.end("t1", "a", failed(ErrorClass::Timeout), None, None, 20_000);
    d.start("t1", "a", "x", Some("m2"));
    d.end(
        "t1",
        "a",
        failed(ErrorClass::Fatal),
        Some(("m2", [3, 0, 0])),
        Some(0.002),
        12,
    );
    d.emit(
        "t1",
        EventKind::PhaseFailed {
            phase: "a".into(),
            error: "no".into(),
        },
    );
    d.emit(
        "t1",
        EventKind::TaskFinished {
            state: TaskState::Failed,
            reason: None,
        },
    );
    // t2: interrupted, then asks for a review.
    d.start("t2", "a", "x", Some("m1"));
    d.end("t2", "a", AttemptOutcome::Interrupted, None, None, 0);
    d.start("t2", "a", "x", Some("m1"));
    let review = AttemptOutcome::ReviewRequested {
        reason: "look".into(),
        escalation: Default::default(),
    };
    d.end("t2", "a", review, Some(("m1", [9, 9, 0])), Some(0.5), 3000);
    // t3: cancelled with an attempt under way.
    d.start("t3", "a", "z", Some("m3"));
    d.commit().await;
    d.cancel("t3");
    // t4: blocked; t5: an attempt under way across a reopening.
    d.start("t4", "a", "x", Some("m1"));
    let blocked = AttemptOutcome::Blocked {
        reason: "needs data".into(),
        escalation: Default::default(),
    };
    d.end("t4", "a", blocked, None, None, 77);
    d.start("t5", "a", "w", Some("m4"));
    // t6: a skipped by its condition.
    let skipped = EventKind::PhaseSkipped {
        phase: "a".into(),
        reason: "input lacks x".into(),
    };
    d.emit("t6", skipped);
    d.commit().await;
    let before = check_against_a_recount(d.store.as_ref(), &ids).await;
    assert_eq!(before.passes("a"), 2 + 1 + 1, "outputs, a failure, a skip");

    let tasks = d.tasks.clone();
    let seq = d.seq;
    d.store.close().await.unwrap();
    let (store, recovered) = open_store(dir.path()).unwrap();
    assert_eq!(
        store.run_stats().await.unwrap(),
        before,
        "kept as committed"
    );
    if store.is_shared() {
        // A fleet's engine claims the task it carries on with.
        assert!(store.load("t5").await.unwrap().is_some());
    }
    let mut d = Driver::new(store, &recovered);
    d.tasks = tasks;
    d.seq = seq;
    d.end(
        "t5",
        "a",
        AttemptOutcome::Succeeded,
        Some(("m4-2025", [1, 1, 0])),
        Some(0.125),
        60_000,
    );
    d.commit().await;
    let after = check_against_a_recount(d.store.as_ref(), &ids).await;
    let w = after.attempts.iter().find(|f| f.agent == "w").unwrap();
    assert_eq!(
        (w.model.as_str(), w.succeeded),
        ("m4", 1),
        "the agent and model of an attempt under way outlive a reopening"
    );
    let z = after.attempts.iter().find(|f| f.agent == "z").unwrap();
    assert_eq!((z.attempts, z.cancelled), (1, 1));
    let mut all = Histogram::default();
    for f in &after.attempts {
        all.merge(&f.duration_ms);
    }
    assert_eq!(
        all.count(),
        8,
        "interrupted and cancelled attempts have no duration"
    );
}

/// A database written before the figures were kept (schema 5) gets them
/// from its events when opened: the same as the writer kept.
pub(crate) async fn a_database_before_the_figures_gets_them_from_its_events(open_store: Open) {
    let dir = tempfile::tempdir().unwrap();
    let mut d = open(open_store, dir.path()).await;
    for id in ["t0", "t1", "t2"] {
        d.submit(id);
    }
    d.finish("t0");
    d.start("t1", "a", "x", Some("m1"));
    d.end(
        "t1",
        "a",
        failed(ErrorClass::Crashed),
        Some(("m1", [5, 1, 0])),
        Some(0.01),
        40,
    );
    d.start("t1", "a", "x", Some("m1"));
    d.start("t2", "a", "x", Some("m1"));
    d.cancel("t2");
    d.commit().await;
    let kept = d.store.run_stats().await.unwrap();
    d.store.close().await.unwrap();
    let conn = rusqlite::Connection::open(crate::store::sqlite::db_path(dir.path())).unwrap();
    // As a schema 5 folder was: what migrations 6 and later add, taken away.
    conn.execute_batch(
        "DROP TABLE attempt_stats; DROP TABLE phase_ends; DROP TABLE step_cache; \
         ALTER TABLE holds DROP COLUMN escalation; DROP INDEX tasks_by_took; \
         DROP INDEX tasks_unfinished_by_age; ALTER TABLE tasks DROP COLUMN took_ns; \
         PRAGMA user_version = 5;",
    )
    .unwrap();
    drop(conn);
    let (store, _) = open_store(dir.path()).unwrap();
    assert_eq!(store.run_stats().await.unwrap(), kept);
}
