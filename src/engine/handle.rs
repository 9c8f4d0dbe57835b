//! How the outside talks to a running engine: commands in, events out, an
//! overview of the run (no tasks: those are read from the store), and, in
//! this process, a snapshot of everything for tools that fold the whole run.

use std::sync::Arc;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::budget::{Limits, Raise};
use super::event::{Command, Event};
use super::live::LiveEvent;
use super::task::Task;

/// The whole run at one point of the event stream.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct RunSnapshot {
    pub pipeline: String,
    /// Phase ids in pipeline order.
    pub phases: Vec<String>,
    pub state_dir: String,
    /// Where the run is kept when not in the state folder: the database's
    /// address, without its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    pub started_at: Timestamp,
    pub paused: bool,
    /// Every task as of `seq`; events after `seq` apply on top.
    pub tasks: Vec<Task>,
    pub seq: u64,
    /// The budgets in force as of `seq`.
    #[serde(default)]
    pub budget: BudgetSnapshot,
    /// What running attempts have shown so far (the reply streamed up to
    /// now, recent trace lines), for a watcher that arrives mid-attempt.
    /// Filled by the control socket, which follows the live updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<LiveEvent>,
}

/// The run without its tasks, at one point of the event stream: what a
/// watcher needs besides the store (which it queries for rows, totals and
/// the review queue). Small whatever the size of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunOverview {
    pub pipeline: String,
    /// Phase ids in pipeline order.
    pub phases: Vec<String>,
    pub state_dir: String,
    /// Where the run is kept when not in the state folder: the database's
    /// address, without its password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    pub started_at: Timestamp,
    pub paused: bool,
    /// Everything up to `seq` is committed; events after it follow.
    pub seq: u64,
    #[serde(default)]
    pub budget: BudgetSnapshot,
    /// What running attempts have shown so far (bounded by the attempts in
    /// flight); filled by the control socket, which follows live updates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub live: Vec<LiveEvent>,
}

/// Where a follower of the run (the run log, progress lines) starts: the
/// overview, the tasks in flight, and the run's totals, all as of the
/// overview's `seq`. Small whatever the size of the run: pending and final
/// tasks are only counted.
#[derive(Debug, Clone, Default)]
pub struct FollowStart {
    pub overview: RunOverview,
    /// Tasks that have started and are not final, whole.
    pub tasks: Vec<Task>,
    pub totals: crate::store::Totals,
}

impl RunSnapshot {
    /// The snapshot without its tasks.
    pub fn overview(&self) -> RunOverview {
        RunOverview {
            pipeline: self.pipeline.clone(),
            phases: self.phases.clone(),
            state_dir: self.state_dir.clone(),
            store: self.store.clone(),
            started_at: self.started_at,
            paused: self.paused,
            seq: self.seq,
            budget: self.budget,
            live: self.live.clone(),
        }
    }
}

/// The configured budgets and the run's raises; a task's own raises are on
/// the task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetSnapshot {
    /// Each task's limits, as configured.
    #[serde(default)]
    pub task: Limits,
    /// The run's limits, as configured.
    #[serde(default)]
    pub run: Limits,
    /// What operators raised the run's budget to.
    #[serde(default)]
    pub run_raise: Raise,
}

impl BudgetSnapshot {
    /// The run's limits in force.
    pub fn run_limits(&self) -> Limits {
        self.run_raise.over(self.run)
    }

    /// A task's limits in force.
    pub fn task_limits(&self, task: &Task) -> Limits {
        task.budget.over(self.task)
    }
}

/// Why the engine refused a command; the text is for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[error("{0}")]
pub struct Refusal(pub String);

pub(crate) enum Request {
    Command(Command, oneshot::Sender<Result<(), Refusal>>),
    Snapshot(oneshot::Sender<RunSnapshot>),
    Overview(oneshot::Sender<RunOverview>),
}

/// How a handle on an engine in another process is connected to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Talking to the engine with process id `pid`. `generation` grows with
    /// each new connection (and each time the engine starts the stream over),
    /// and a reader should then take a fresh snapshot.
    Connected { generation: u64, pid: u32 },
    /// The engine went away; the handle keeps trying to reconnect.
    Lost { reason: String },
}

/// A cheap, cloneable handle on a running engine.
#[derive(Clone)]
pub struct EngineHandle {
    pub(crate) requests: mpsc::Sender<Request>,
    pub(crate) events: broadcast::Sender<Arc<Event>>,
    /// Set for an engine in another process, reached over its control socket.
    pub(crate) link: Option<watch::Receiver<Link>>,
    pub(crate) live: broadcast::Sender<Arc<LiveEvent>>,
    /// The run's store, for an engine in this process: a follower that falls
    /// behind the broadcast reads the events it missed from here.
    pub(crate) reader: Option<Arc<dyn crate::store::RunReader>>,
}

impl EngineHandle {
    /// Events as they become durable. A receiver that falls behind gets
    /// `RecvError::Lagged` and should take a fresh `snapshot`.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.events.subscribe()
    }

    /// The run's store, for an engine in this process (see the field).
    pub fn reader(&self) -> Option<Arc<dyn crate::store::RunReader>> {
        self.reader.clone()
    }

    /// Events after `seq` from the store, for a follower that fell behind;
    /// `None` when this handle has no store to read (an engine elsewhere).
    pub async fn events_after(&self, seq: u64, limit: u64) -> Option<Vec<Arc<Event>>> {
        let reader = self.reader.as_ref()?;
        match reader.events_after(seq, limit).await {
            Ok(events) => Some(events.into_iter().map(Arc::new).collect()),
            Err(e) => {
                tracing::warn!("cannot read events after seq {seq}: {e}");
                None
            }
        }
    }

    /// For an engine in another process, the state of the connection to it;
    /// `None` for an engine in this process.
    pub fn link(&self) -> Option<watch::Receiver<Link>> {
        self.link.clone()
    }

    /// Updates about running attempts (the reply as it streams in, trace
    /// lines), never journaled. Lossy: a receiver that falls behind gets
    /// `RecvError::Lagged` and simply carries on with newer updates.
    pub fn subscribe_live(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.live.subscribe()
    }

    /// Everything now. Subscribe first, then snapshot, and skip events whose
    /// `seq` the snapshot already covers.
    pub async fn snapshot(&self) -> Option<RunSnapshot> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Snapshot(tx)).await.ok()?;
        rx.await.ok()
    }

    /// The run without its tasks, everything up to its `seq` committed.
    /// Subscribe first, then ask, and skip events the overview covers.
    pub async fn overview(&self) -> Option<RunOverview> {
        let (tx, rx) = oneshot::channel();
        self.requests.send(Request::Overview(tx)).await.ok()?;
        rx.await.ok()
    }

    /// Sends a command and waits until its events are durable, or the refusal.
    pub async fn send(&self, command: Command) -> Result<(), Refusal> {
        let (tx, rx) = oneshot::channel();
        self.requests
            .send(Request::Command(command, tx))
            .await
            .map_err(|_| Refusal("the engine has stopped".into()))?;
        rx.await
            .map_err(|_| Refusal("the engine has stopped".into()))?
    }
}
