//! A realistic run for tests: every task state, costs known and unknown, a
//! retry with its error, a review and a blocker, all at fixed times.

use jiff::{SignedDuration, Timestamp};
use serde_json::json;

use crate::engine::cost::Usage;
use crate::engine::event::{
    Action as Decide, Actor, AttemptOutcome, Decision, ErrorClass, Event, EventKind, ReviewReason,
};
use std::collections::HashMap;
use std::sync::Arc;

use crate::engine::handle::RunOverview;
use crate::engine::state::TaskState;
use crate::engine::task::Task;
use crate::store::{
    Batch, RowChange, RunMeta, RunReader, RunStore, SqliteReader, SqliteStore, TaskRow,
};

use super::fetch::{Page, Want, fetch};
use super::ui::Ui;
use super::view_model::RunView;

pub const PHASES: [&str; 3] = ["research", "draft", "edit"];

/// When the sample run started.
pub fn t0() -> Timestamp {
    "2025-06-01T12:00:00Z".parse().expect("fixed timestamp")
}

/// The clock every rendering test uses: ten minutes into the run.
pub fn now() -> Timestamp {
    t0() + SignedDuration::from_secs(600)
}

pub fn empty_overview() -> RunOverview {
    RunOverview {
        pipeline: "article-pipeline".into(),
        phases: PHASES.iter().map(|p| p.to_string()).collect(),
        state_dir: "./state/run-42".into(),
        store: None,
        started_at: t0(),
        paused: false,
        seq: 0,
        budget: Default::default(),
        live: Vec::new(),
    }
}

/// Runs a future to its end on a runtime of its own, on a thread of its
/// own, so that sync tests and tokio tests alike can call it.
pub fn block_on<T: Send>(fut: impl std::future::Future<Output = T> + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
                .block_on(fut)
        })
        .join()
        .expect("the test's thread")
    })
}

/// A run written to a real store in a temporary folder, as an engine would
/// have written it: events, task rows and totals.
pub struct StoredRun {
    /// Kept so the folder lives as long as the run.
    #[allow(dead_code)]
    pub dir: tempfile::TempDir,
    pub reader: Arc<dyn RunReader>,
    pub overview: RunOverview,
}

impl StoredRun {
    pub fn new(events: &[Event]) -> StoredRun {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let overview = empty_overview();
        let meta = RunMeta {
            pipeline: overview.pipeline.clone(),
            phases: overview.phases.clone(),
        };
        block_on(async {
            let (store, _, _) = SqliteStore::open(dir.path(), &meta).expect("a store");
            store.set_meta(meta.clone()).await.expect("meta");
            let mut tasks: HashMap<String, (i64, Task)> = HashMap::new();
            let mut paused = false;
            for chunk in events.chunks(64) {
                let mut batch = Batch::default();
                for ev in chunk {
                    let Some(id) = &ev.task else {
                        paused = matches!(ev.kind, EventKind::RunPaused { .. })
                            || (paused && !matches!(ev.kind, EventKind::RunResumed { .. }));
                        batch.events.push((None, ev.clone()));
                        continue;
                    };
                    let (ord, old, task) = match tasks.get(id) {
                        Some((ord, t)) => {
                            let mut task = t.clone();
                            task.apply(ev).expect("the sample run folds");
                            (*ord, Some(TaskRow::of(t, *ord)), task)
                        }
                        None => {
                            let ord = tasks.len() as i64 + 1;
                            let task =
                                Task::from_submitted(ev, &meta.phases).expect("a submission");
                            (ord, None, task)
                        }
                    };
                    batch.events.push((Some(ord), ev.clone()));
                    batch.rows.push(RowChange {
                        old,
                        new: TaskRow::of(&task, ord),
                    });
                    tasks.insert(id.clone(), (ord, task));
                }
                store.append(batch).await.expect("append");
            }
            store.flush().await.expect("flush");
            Box::new(store).close().await.expect("close");
            let _ = paused;
        });
        let reader: Arc<dyn RunReader> =
            Arc::new(SqliteReader::open(dir.path()).expect("a reader"));
        let mut overview = overview;
        overview.seq = events.last().map_or(0, |e| e.seq);
        overview.paused = events.iter().fold(false, |p, e| match e.kind {
            EventKind::RunPaused { .. } => true,
            EventKind::RunResumed { .. } => false,
            _ => p,
        });
        StoredRun {
            dir,
            reader,
            overview,
        }
    }

    pub fn sample() -> StoredRun {
        StoredRun::new(&sample_events())
    }

    pub fn page(&self, want: Want) -> Page {
        let reader = self.reader.clone();
        block_on(async move { fetch(reader.as_ref(), want).await.expect("a page") })
    }

    /// The run as a dashboard shows it with everything in one window.
    pub fn view(&self) -> RunView {
        let mut view = RunView::new(self.overview.clone());
        let want = Want {
            table: crate::store::ListQuery {
                limit: Some(1000),
                ..Default::default()
            },
            queue_limit: 1000,
            finished_since: Some(view.throughput_since(now())),
            ..Want::default()
        };
        view.set_page(self.page(want), now());
        view
    }

    /// Reads what the dashboard asks for until it asks for nothing new, as
    /// the loop does between frames.
    pub fn settle(&self, ui: &mut Ui) {
        for _ in 0..8 {
            let want = ui.want();
            ui.view.set_page(self.page(want.clone()), now());
            ui.prepare(now());
            if ui.want() == want {
                return;
            }
        }
        panic!("the dashboard keeps asking for something new");
    }
}

/// Writes events with increasing `seq`.
pub struct Journal {
    pub events: Vec<Event>,
}

impl Journal {
    pub fn new() -> Journal {
        Journal { events: Vec::new() }
    }

    pub fn push(&mut self, task: Option<&str>, secs: i64, kind: EventKind) -> &mut Self {
        let seq = self.events.len() as u64 + 1;
        self.events.push(Event {
            seq,
            at: t0() + SignedDuration::from_secs(secs),
            task: task.map(str::to_string),
            kind,
        });
        self
    }

    pub fn submit(&mut self, id: &str, secs: i64) -> &mut Self {
        self.push(
            Some(id),
            secs,
            EventKind::TaskSubmitted {
                input: json!({ "topic": format!("topic for {id}") }),
            },
        )
    }

    pub fn start(
        &mut self,
        id: &str,
        secs: i64,
        phase: &str,
        attempt: u32,
        model: &str,
    ) -> &mut Self {
        self.push(
            Some(id),
            secs,
            EventKind::PhaseStarted {
                phase: phase.into(),
                attempt,
                agent: format!("{phase}-agent"),
                model: Some(model.into()),
                feedback: None,
                route: None,
                role: None,
            },
        )
    }

    /// Finishes the running attempt; `cost` of `None` means the price is unknown.
    #[allow(clippy::too_many_arguments)]
    pub fn finish(
        &mut self,
        id: &str,
        secs: i64,
        phase: &str,
        attempt: u32,
        outcome: AttemptOutcome,
        tokens: u64,
        cost: Option<f64>,
    ) -> &mut Self {
        let output = matches!(outcome, AttemptOutcome::Succeeded).then(
            || json!({ "phase": phase, "summary": format!("{phase} of {id}"), "words": 420 }),
        );
        self.push(
            Some(id),
            secs,
            EventKind::AttemptFinished {
                phase: phase.into(),
                attempt,
                duration_ms: 12_500,
                outcome,
                usage: Some(Usage {
                    model: None,
                    input_tokens: tokens * 3 / 4,
                    output_tokens: tokens / 4,
                    ..Usage::default()
                }),
                cost_usd: cost,
                output,
                trace: vec![format!("calling {phase} agent"), "reply received".into()],
                http: None,
                retry_after_ms: None,
            },
        )
    }

    pub fn done(&mut self, id: &str, secs: i64, state: TaskState) -> &mut Self {
        self.push(
            Some(id),
            secs,
            EventKind::TaskFinished {
                state,
                reason: None,
            },
        )
    }
}

fn fail(class: ErrorClass, message: &str) -> AttemptOutcome {
    AttemptOutcome::Failed {
        class,
        message: message.into(),
    }
}

/// Events of the sample run, in journal order.
pub fn sample_events() -> Vec<Event> {
    use AttemptOutcome::Succeeded as Ok;
    let sonnet = "claude-sonnet-4-5";
    let mut j = Journal::new();
    for (i, id) in [
        "t-001", "t-002", "t-003", "t-004", "t-005", "t-006", "t-007", "t-008", "t-009",
    ]
    .iter()
    .enumerate()
    {
        j.submit(id, i as i64);
    }
    // Completed, every phase priced.
    j.start("t-001", 10, "research", 1, sonnet)
        .finish("t-001", 40, "research", 1, Ok, 4_000, Some(0.0123))
        .start("t-001", 41, "draft", 1, sonnet)
        .finish("t-001", 90, "draft", 1, Ok, 12_000, Some(0.0456))
        .start("t-001", 91, "edit", 1, sonnet)
        .finish("t-001", 120, "edit", 1, Ok, 3_000, Some(0.0101))
        .done("t-001", 121, TaskState::Completed);
    // Running its second phase.
    j.start("t-002", 20, "research", 1, sonnet)
        .finish("t-002", 60, "research", 1, Ok, 5_000, Some(0.02))
        .start("t-002", 500, "draft", 1, sonnet);
    // Retrying after a rate limit.
    j.start("t-003", 30, "research", 1, sonnet)
        .finish(
            "t-003",
            570,
            "research",
            1,
            fail(ErrorClass::Retryable, "rate limited (429)"),
            200,
            Some(0.001),
        )
        .push(
            Some("t-003"),
            571,
            EventKind::RetryScheduled {
                phase: "research".into(),
                attempt: 2,
                delay_ms: 45_000,
                due: t0() + SignedDuration::from_secs(616),
            },
        );
    // Awaiting review of its draft.
    j.start("t-004", 40, "research", 1, sonnet)
        .finish("t-004", 80, "research", 1, Ok, 4_500, Some(0.015))
        .start("t-004", 81, "draft", 1, sonnet)
        .finish("t-004", 200, "draft", 1, Ok, 11_000, Some(0.04))
        .push(
            Some("t-004"),
            201,
            EventKind::ReviewRequested {
                phase: "draft".into(),
                reason: ReviewReason::Always,
            },
        );
    // Blocked: the agent needs something only a person can give.
    j.start("t-005", 50, "research", 1, sonnet)
        .finish(
            "t-005",
            100,
            "research",
            1,
            AttemptOutcome::Blocked {
                reason: "needs access to the paywalled source".into(),
                escalation: Default::default(),
            },
            800,
            Some(0.003),
        )
        .push(
            Some("t-005"),
            101,
            EventKind::TaskBlocked {
                phase: "research".into(),
                reason: "needs access to the paywalled source".into(),
                escalation: Default::default(),
            },
        );
    // Failed for good.
    j.start("t-006", 60, "research", 1, sonnet)
        .finish(
            "t-006",
            75,
            "research",
            1,
            fail(ErrorClass::Fatal, "input has no topic"),
            300,
            Some(0.0009),
        )
        .push(
            Some("t-006"),
            76,
            EventKind::PhaseFailed {
                phase: "research".into(),
                error: "input has no topic".into(),
            },
        )
        .done("t-006", 77, TaskState::Failed);
    // Completed on a house model nobody priced.
    let house = "house-model-7";
    j.start("t-007", 70, "research", 1, house)
        .finish("t-007", 110, "research", 1, Ok, 6_000, None)
        .start("t-007", 111, "draft", 1, house)
        .finish("t-007", 180, "draft", 1, Ok, 9_000, None)
        .start("t-007", 181, "edit", 1, house)
        .finish("t-007", 240, "edit", 1, Ok, 2_000, None)
        .done("t-007", 241, TaskState::Completed);
    // t-008 stays pending. t-009 is cancelled while it runs.
    j.start("t-009", 300, "research", 1, sonnet).push(
        Some("t-009"),
        320,
        EventKind::DecisionRecorded {
            decision: Decision {
                action: Decide::Cancel,
                phase: None,
                by: Actor {
                    user: "ops".into(),
                    ssh_client: None,
                },
                at: t0() + SignedDuration::from_secs(320),
                note: None,
            },
        },
    );
    j.events
}

/// The sample run as the dashboard holds it, read from a real store.
pub fn sample_run() -> RunView {
    StoredRun::sample().view()
}

/// A run of `n` tasks spread over every state, for size tests.
pub fn big_run(n: usize) -> StoredRun {
    let mut j = Journal::new();
    for i in 0..n {
        let id = format!("t-{i:05}");
        j.submit(&id, 0);
        if i % 3 != 0 {
            j.start(&id, 1, "research", 1, "claude-sonnet-4-5");
        }
        if i % 3 == 2 {
            j.finish(
                &id,
                2,
                "research",
                1,
                AttemptOutcome::Succeeded,
                1_000,
                Some(0.01),
            );
        }
    }
    StoredRun::new(&j.events)
}
