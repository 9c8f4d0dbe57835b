//! The engine task: owns every task, decides what runs, starts attempts,
//! takes their results and operator commands, and hands each event to the
//! store. One `select!` loop; no locks.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use super::attempt::AttemptDone;
use super::backoff::Jitter;
use super::budget::{Average, Spend};
use super::clock::{self, Clock, SystemClock};
use super::cost::{PriceTable, PricingError};
use super::event::{EventKind, TaskId};
use super::handle::{EngineHandle, Request};
use super::live::LiveEvent;
use super::rate_limit::RateLimiter;
use super::recovery;
use super::run_state::RunState;
use super::state::TaskState;
use super::task::{ApplyError, Task};
use crate::agents::Agent;
use crate::secrets::Secrets;
use crate::spec::Pipeline;
use crate::spec::input::InputTask;
use crate::store::{Batch, RowChange, RunStore, StoreError, TaskNo, TaskRow};
use attempts::Attempts;
use cache_flights::CacheFlights;
use checkpoint::Checkpoint;
use retry_timers::RetryTimers;

mod attempts;
mod budget_gate;
mod cache_claims;
mod cache_flights;
mod capacity;
mod checkpoint;
mod commands;
mod dispatch;
mod fleet;
mod items;
mod open;
mod retry_timers;

/// Pending tasks read from the store at a time, as slots free up.
const PENDING_BATCH: u64 = 256;
/// Tasks submitted per transaction when adding inputs.
const SUBMIT_CHUNK: usize = 4096;
/// How often an engine whose store lost its connection looks again.
const OFFLINE_RECHECK: Duration = Duration::from_millis(250);
/// Attempt results taken in one turn of the engine's loop, before what
/// they made is handed to the store and the other inputs get their turn.
const RESULTS_PER_TURN: usize = 1024;

/// How an engine behaves; the defaults suit `baton run`.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Start attempts. Off for CLI commands that only record a decision.
    pub dispatch: bool,
    /// Return from `run` once nothing more can happen without a person.
    pub exit_when_idle: bool,
    /// The window of agents' `rpm` and `tpm`: a minute. Shorter in tests,
    /// where the limits then mean per window.
    pub rate_window: Duration,
    /// The wall clock events are stamped with (see [`super::clock`]).
    pub clock: Arc<dyn Clock>,
    /// Where the run is kept: the state folder unless told otherwise.
    pub store: crate::store::Place,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            dispatch: true,
            exit_when_idle: true,
            rate_window: Duration::from_secs(60),
            clock: Arc::new(SystemClock),
            store: crate::store::Place::Folder,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Pricing(#[from] PricingError),
    #[error(
        "the state folder {dir} holds tasks of another pipeline: {stored} has phases [{found}], \
         but {pipeline} has [{expected}]\n  help: use another --state-dir for this pipeline, or delete that folder to start over"
    )]
    PipelineMismatch {
        dir: PathBuf,
        stored: String,
        found: String,
        pipeline: String,
        expected: String,
    },
    /// An agent cannot work at all (its API key is not set).
    #[error("{0}")]
    AgentNotReady(String),
    #[error("task {id} ({origin}) {problem}")]
    BadTask {
        id: String,
        origin: String,
        problem: String,
    },
}

struct AgentSlot {
    name: String,
    agent: Arc<dyn Agent>,
    limit: Option<usize>,
    inflight: usize,
    /// Phases ready to start but waiting for this agent's capacity.
    waiting: VecDeque<(TaskId, usize)>,
    limiter: RateLimiter,
    /// What its finished attempts spent, to estimate those in flight.
    average: Average,
    routes: Vec<crate::spec::model::Route>,
    /// Its share of a fleet's limits (see `fleet`).
    fleet: fleet::AgentShare,
}

impl AgentSlot {
    fn full(&self) -> bool {
        self.limit
            .map(|limit| self.fleet.places(limit))
            .is_some_and(|limit| self.inflight >= limit)
    }
}

/// What a run ended with.
#[derive(Debug, Clone, Default)]
pub struct RunSummary {
    pub counts: BTreeMap<TaskState, usize>,
    /// What the store did over the run, once everything was written.
    pub store: crate::store::StoreStats,
}

impl RunSummary {
    pub fn count(&self, state: TaskState) -> usize {
        self.counts.get(&state).copied().unwrap_or(0)
    }

    /// The run's exit status (see [`super::exit_status`]).
    pub fn exit_code(&self) -> i32 {
        super::exit_status::of(|s| self.count(s) as u64)
    }
}

/// The result of adding inputs to a run.
#[derive(Debug, Default)]
pub struct Submitted {
    /// How many tasks were added.
    pub added: usize,
    /// Ids already in the state folder; their tasks were left as they are.
    pub already_present: Vec<TaskId>,
}

pub struct Engine {
    pipeline: Arc<Pipeline>,
    phase_ids: Vec<String>,
    agents: Vec<AgentSlot>,
    /// For each phase, the agents that can run it (indices into `agents`),
    /// preferred first: its agent, or its role's agents.
    phase_agents: Vec<Vec<usize>>,
    prices: Arc<PriceTable>,
    store: Box<dyn RunStore>,
    state_dir: PathBuf,
    opts: EngineOptions,
    /// The tasks in flight: started and not final, or waiting for a person,
    /// or read from the store to start next. A task that reaches a final
    /// state leaves once its last events are handed to the store; its row
    /// stays there.
    tasks: HashMap<TaskId, Task>,
    /// Events and changed rows on their way to the store.
    checkpoint: Checkpoint,
    /// The last task number given out.
    last_ord: TaskNo,
    /// Pending tasks in the store are read in submission order after this.
    pending_cursor: TaskNo,
    /// Whether the store may hold pending tasks after `pending_cursor`.
    pending_left: bool,
    /// Tasks waiting for a concurrency slot: pending ones, and ones a person
    /// let go on while every slot was taken.
    queue: VecDeque<TaskId>,
    /// Tasks holding a concurrency slot.
    slots: HashSet<TaskId>,
    /// Retries waiting out their delay.
    timers: RetryTimers,
    /// Attempts in flight.
    running: Attempts,
    results_tx: mpsc::UnboundedSender<AttemptDone>,
    results_rx: mpsc::UnboundedReceiver<AttemptDone>,
    /// Running attempts' progress, for watchers; never journaled.
    live: broadcast::Sender<Arc<LiveEvent>>,
    requests_tx: mpsc::Sender<Request>,
    requests_rx: mpsc::Receiver<Request>,
    /// The run's own state: paused, budget raises.
    run: RunState,
    stopping: bool,
    /// When phases waiting for an agent's rate limit may start.
    rate_wake: Option<Instant>,
    /// What every task has spent, over all finished attempts.
    run_spend: Spend,
    jitter: Jitter,
    started_at: Timestamp,
    warnings: Vec<String>,
    /// A reader of the store for followers (see `EngineHandle::reader`).
    reader: Arc<dyn crate::store::RunReader>,
    /// Masked out of events and of what running attempts show.
    secrets: Arc<Secrets>,
    /// Some phase runs once per item (`for_each`).
    has_fan_out: bool,
    /// The shared step cache's flights (see `cache_flights`).
    cache: CacheFlights,
    /// Attempts were held back because the store's connection was lost:
    /// the loop looks again until it answers.
    held_offline: bool,
    /// In a fleet: when to look for work others left, and for what the
    /// others changed in the run (a pause, a budget raise).
    fleet_every: Option<tokio::time::Interval>,
    /// This engine's share of the fleet's `concurrency` and whether a
    /// limit wants more of its share (see `fleet`).
    fleet_share: fleet::RunShare,
    /// Reservations of a fleet's run budget: asked, granted, given back.
    fleet_budget: fleet::BudgetGate,
}

impl Engine {
    /// Puts another agent in place of the one the pipeline names; for
    /// embedding baton and for tests that script replies.
    pub fn replace_agent(&mut self, name: &str, agent: Arc<dyn Agent>) -> bool {
        match self.agents.iter_mut().find(|a| a.name == name) {
            Some(slot) => {
                slot.agent = agent;
                true
            }
            None => false,
        }
    }

    /// Whether `run` ends once nothing more can happen without a person
    /// (`EngineOptions::exit_when_idle`); a dashboard in this process keeps
    /// it up until the operator quits.
    pub fn set_exit_when_idle(&mut self, exit: bool) {
        self.opts.exit_when_idle = exit;
    }

    /// Warnings from recovery (quarantined files, events that did not apply).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// The pipeline this engine runs, with its switches and budgets applied.
    pub fn pipeline(&self) -> &Pipeline {
        &self.pipeline
    }

    /// The tasks this engine holds now: in flight, waiting for a person, or
    /// next to start. Finished tasks are in the store only (see `reader`).
    pub fn tasks(&self) -> impl Iterator<Item = &Task> {
        self.tasks.values()
    }

    /// One of the tasks this engine holds now (see `tasks`).
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.tasks.get(id)
    }

    /// The run as stored: every task, totals, the review queue.
    pub fn reader(&self) -> &dyn crate::store::RunReader {
        &*self.store
    }

    /// The run's own state: paused, budget raises.
    pub fn run_state(&self) -> &RunState {
        &self.run
    }

    pub fn store_stats(&self) -> crate::store::StoreStats {
        self.store.stats()
    }

    /// A handle for watchers and operators: the event stream
    /// (`subscribe`) and commands (`send`), usable while `run` goes on.
    pub fn handle(&self) -> EngineHandle {
        EngineHandle {
            requests: self.requests_tx.clone(),
            events: self.store.broadcaster(),
            link: None,
            live: self.live.clone(),
            reader: Some(self.reader.clone()),
        }
    }

    /// Puts recovered work back in motion: attempts that were running when
    /// the last engine stopped are marked interrupted and will run again;
    /// retries keep their due times.
    fn resume_recovered(&mut self) {
        let now = self.opts.clock.now();
        let mut held: Vec<(TaskNo, TaskId)> = self
            .tasks
            .keys()
            .filter_map(|id| Some((self.checkpoint.ord(id)?, id.clone())))
            .collect();
        held.sort_unstable();
        for (_, id) in held {
            if self.resume_task(&id, now) {
                self.queue.push_back(id.clone());
            }
        }
    }

    /// Puts one task taken up again back in motion (see
    /// `resume_recovered`); `true` when it waits for a slot as pending.
    fn resume_task(&mut self, id: &TaskId, now: Timestamp) -> bool {
        let Some(task) = self.tasks.get(id) else {
            return false;
        };
        let open: Vec<(String, u32)> = task
            .phases
            .iter()
            .filter_map(|p| p.running_attempt().map(|a| (p.id.clone(), a.number)))
            .collect();
        for (phase, attempt) in open {
            self.emit_logged(id, recovery::interrupted(phase, attempt));
        }
        self.resume_items(id, now);
        let dues: Vec<Timestamp> = self.tasks[id]
            .phases
            .iter()
            .filter_map(|p| p.retry_due)
            .collect();
        for due in dues {
            self.timers.add(id.clone(), clock::until(now, due), due);
        }
        match self.tasks[id].state {
            TaskState::Pending => true,
            s if s.is_active() => {
                self.slots.insert(id.clone());
                false
            }
            _ => false,
        }
    }

    /// Adds tasks; ids already present are left alone and reported. They go
    /// to the store in chunks, each durable before the next is checked, and
    /// stay there until the engine has room to start them.
    pub async fn submit(&mut self, inputs: Vec<InputTask>) -> Result<Submitted, EngineError> {
        let mut result = Submitted::default();
        let mut inputs = inputs.into_iter().peekable();
        let mut seen: HashSet<TaskId> = HashSet::new();
        while inputs.peek().is_some() {
            let mut chunk = Vec::with_capacity(SUBMIT_CHUNK);
            for InputTask { id, input, origin } in inputs.by_ref().take(SUBMIT_CHUNK) {
                if !input.is_object() {
                    return Err(EngineError::BadTask {
                        id: id.unwrap_or_default(),
                        origin,
                        problem: "is not a JSON object".into(),
                    });
                }
                chunk.push((id, input));
            }
            // Generated ids follow the task count, skipping any taken.
            let named: Vec<TaskId> = chunk
                .iter()
                .zip(self.last_ord + 1..)
                .map(|((id, _), n)| id.clone().unwrap_or_else(|| format!("task-{n:05}")))
                .collect();
            let taken: HashSet<String> = self.store.existing(&named).await?.into_iter().collect();
            let mut batch = Batch::default();
            for ((id, input), mut name) in chunk.into_iter().zip(named) {
                // A generated id already taken moves on to the next free one;
                // the store is asked only about those later candidates.
                let (mut n, mut first) = (self.last_ord + 1, true);
                while id.is_none()
                    && (taken.contains(&name)
                        || seen.contains(&name)
                        || self.tasks.contains_key(&name)
                        || (!first
                            && !self
                                .store
                                .existing(std::slice::from_ref(&name))
                                .await?
                                .is_empty()))
                {
                    n += 1;
                    first = false;
                    name = format!("task-{n:05}");
                }
                if taken.contains(&name) || seen.contains(&name) || self.tasks.contains_key(&name) {
                    result.already_present.push(name);
                    continue;
                }
                self.last_ord += 1;
                let ev = self.checkpoint.next(
                    Some(&name),
                    EventKind::TaskSubmitted { input },
                    self.opts.clock.now(),
                );
                // Straight to the store: the engine reads pending tasks from it.
                self.checkpoint.skip_to(ev.seq);
                let task = Task::from_submitted(&ev, &self.phase_ids)
                    .expect("a submitted event makes a task");
                batch.rows.push(RowChange {
                    old: None,
                    new: TaskRow::of(&task, self.last_ord),
                });
                // Not held: a fleet's engines claim it when they have room.
                batch.released.push(self.last_ord);
                batch.events.push((Some(self.last_ord), ev));
                seen.insert(name);
                result.added += 1;
            }
            self.send_meta().await?;
            self.store.append(batch).await?;
            self.store.flush().await?;
        }
        self.pending_left = true;
        Ok(result)
    }

    /// Runs until idle (with `exit_when_idle`) or a `Shutdown` command.
    pub async fn run(mut self) -> Result<RunSummary, EngineError> {
        if self.run.paused {
            tracing::warn!(
                "the run is paused{}; no attempt starts until it is resumed",
                self.run
                    .paused_by
                    .as_ref()
                    .map(|by| format!(" (by {})", by.user))
                    .unwrap_or_default()
            );
        }
        if self.opts.dispatch {
            self.pump().await?;
            self.advance_slotted();
        }
        loop {
            self.run_cache_flights().await?;
            self.send_outbox().await?;
            if self.stopping
                || (self.opts.exit_when_idle && self.idle() && !self.fleet_busy().await?)
            {
                break;
            }
            let next_timer = self.timers.next_at();
            let recheck = self.cache_recheck_at();
            tokio::select! {
                Some(done) = self.results_rx.recv() => {
                    self.on_result(done);
                    // Those that are in already, up to a turn's worth: agents
                    // that answer at once would otherwise keep the turn going
                    // (each result starts the next attempt), holding every
                    // event in memory, uncommitted, and commands waiting.
                    for _ in 1..RESULTS_PER_TURN {
                        let Ok(done) = self.results_rx.try_recv() else {
                            break;
                        };
                        self.on_result(done);
                    }
                }
                Some(request) = self.requests_rx.recv() => self.on_request(request).await?,
                _ = tokio::time::sleep_until(next_timer.unwrap_or_else(Instant::now)), if next_timer.is_some() => {
                    self.fire_timers();
                }
                _ = fleet::tick(&mut self.fleet_every) => self.fleet_tick().await?,
                _ = tokio::time::sleep_until(recheck.unwrap_or_else(Instant::now)), if recheck.is_some() => {
                    self.cache_recheck();
                }
                _ = tokio::time::sleep(OFFLINE_RECHECK), if self.held_offline => {
                    if self.store.online() {
                        self.held_offline = false;
                        tracing::warn!("the store answers again: attempts start again");
                        self.advance_slotted();
                    }
                }
                _ = tokio::time::sleep_until(self.rate_wake.unwrap_or_else(Instant::now)), if self.rate_wake.is_some() => {
                    self.rate_wake = None;
                    for a in 0..self.agents.len() {
                        self.start_waiting(a);
                    }
                }
            }
            self.pump().await?;
            if self.fleet_share.wants {
                self.fleet_refill().await?;
            }
            if self.fleet_share.shared {
                self.fleet_give_back().await?;
            }
        }
        self.shut_down().await
    }

    fn idle(&self) -> bool {
        !self.opts.dispatch
            || (self.running.count() == 0
                && !self.held_offline
                && self.timers.is_empty()
                && self.queue.is_empty()
                && (!self.pending_left || self.run.paused)
                && self.agents.iter().all(|a| a.waiting.is_empty()))
    }

    async fn shut_down(mut self) -> Result<RunSummary, EngineError> {
        // Results that already arrived are finished work: keep them.
        while let Ok(done) = self.results_rx.try_recv() {
            self.on_result(done);
        }
        // Attempts cut short here were never finished: record that, so the
        // next run starts them again.
        for (id, idx) in self.running.all() {
            if let Some(r) = self.running.take(&id, idx) {
                r.handle.abort();
            }
            let open = self.tasks[&id].phases[idx]
                .running_attempt()
                .map(|a| a.number);
            if let Some(attempt) = open {
                self.emit_logged(
                    &id,
                    recovery::interrupted(self.phase_ids[idx].clone(), attempt),
                );
            }
        }
        self.interrupt_items();
        self.send_outbox().await?;
        self.store.flush().await?;
        let totals = self.store.totals().await?;
        let mut summary = RunSummary::default();
        for state in TaskState::ALL {
            let n = totals.count(state);
            if n > 0 {
                summary.counts.insert(state, n as usize);
            }
        }
        summary.store = self.store.close().await?;
        Ok(summary)
    }

    /// Hands the store the events queued and the rows of the tasks they
    /// changed; then lets go of tasks that are final and idle.
    async fn send_outbox(&mut self) -> Result<(), StoreError> {
        self.send_meta().await?;
        self.send_cache_writes().await?;
        if self.checkpoint.is_empty() {
            return Ok(());
        }
        let running = &self.running;
        // In a fleet a task that waits for a person is put down too: the
        // engine that receives the decision takes it up.
        let shared = self.store.is_shared();
        let (mut batch, done) = self.checkpoint.take(&self.tasks, |t| {
            !running.keeps(&t.id)
                && (t.state.is_final()
                    || (shared
                        && matches!(t.state, TaskState::AwaitingReview | TaskState::Blocked)))
        });
        for id in done {
            if shared {
                self.fleet_put_down(&id);
            }
            self.tasks.remove(&id);
            self.slots.remove(&id);
            self.timers.forget(&id);
        }
        batch.unreserved = std::mem::take(&mut self.fleet_budget.unreserve);
        self.store.append(batch).await
    }

    /// Records the pipeline's name and phases once, before the first events.
    async fn send_meta(&mut self) -> Result<(), StoreError> {
        if let Some(meta) = self.checkpoint.take_meta() {
            self.store.set_meta(meta).await?;
        }
        Ok(())
    }

    /// Reads the next pending tasks from the store into the queue.
    async fn pull_pending(&mut self) -> Result<(), StoreError> {
        // The store answers from what is committed.
        self.send_outbox().await?;
        if self.store.durable_seq() < self.checkpoint.seq() {
            self.store.flush().await?;
        }
        // A fleet's engine claims only what it has room for, leaving the
        // rest to the others.
        let batch = if self.store.is_shared() {
            let room = self
                .task_cap()
                .saturating_sub(self.slots.len() + self.queue.len());
            (room as u64).clamp(1, PENDING_BATCH)
        } else {
            PENDING_BATCH
        };
        let found = self.store.pending_after(self.pending_cursor, batch).await?;
        if (found.len() as u64) < batch {
            self.pending_left = false;
        }
        let now = self.opts.clock.now();
        for (ord, task) in found {
            self.pending_cursor = self.pending_cursor.max(ord);
            if self.tasks.contains_key(&task.id) {
                continue;
            }
            let id = task.id.clone();
            let pending = task.state == TaskState::Pending;
            self.checkpoint
                .hold(id.clone(), ord, TaskRow::of(&task, ord));
            self.tasks.insert(id.clone(), task);
            // Work another engine left under way (it stopped, or its lease
            // ran out): its open attempts run again.
            if pending || self.resume_task(&id, now) {
                self.queue.push_back(id);
            } else {
                self.checkpoint.touch(&id);
                self.advance(&id);
            }
        }
        Ok(())
    }

    /// Makes sure the engine holds task `id`, reading it from the store
    /// when it is not in flight (a finished task a person retries, a
    /// pending one not read yet). `false` when the run has no such task.
    async fn hold(&mut self, id: &TaskId) -> Result<bool, StoreError> {
        if self.tasks.contains_key(id) {
            return Ok(true);
        }
        self.send_outbox().await?;
        if self.store.durable_seq() < self.checkpoint.seq() {
            self.store.flush().await?;
        }
        let Some((ord, task)) = self.store.load(id).await? else {
            return Ok(false);
        };
        self.checkpoint
            .hold(id.clone(), ord, TaskRow::of(&task, ord));
        self.tasks.insert(id.clone(), task);
        // Looked at again at the next send: let go if nothing changed it.
        self.checkpoint.touch(id);
        Ok(true)
    }

    /// Applies an event to its task and queues it for the journal, or
    /// changes nothing and says why.
    fn emit(&mut self, id: &TaskId, kind: EventKind) -> Result<(), ApplyError> {
        self.emit_at(id, kind, self.opts.clock.now())
    }

    fn emit_at(&mut self, id: &TaskId, kind: EventKind, at: Timestamp) -> Result<(), ApplyError> {
        let ev = self.checkpoint.next(Some(id), kind, at);
        let task = self.tasks.get_mut(id).ok_or_else(|| ApplyError::Refused {
            task: id.clone(),
            message: "no such task".into(),
        })?;
        task.apply(&ev)?;
        self.checkpoint.record(ev);
        Ok(())
    }

    /// For events the engine itself derived: a refusal is a bug, so it is
    /// logged loudly rather than handed to an operator.
    fn emit_logged(&mut self, id: &TaskId, kind: EventKind) -> bool {
        match self.emit(id, kind) {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(task = %id, "engine refused its own event: {e}");
                false
            }
        }
    }

    fn emit_run_event(&mut self, kind: EventKind) {
        let ev = self.checkpoint.next(None, kind, self.opts.clock.now());
        self.run.apply(&ev);
        self.checkpoint.record(ev);
    }

    /// Fills free concurrency slots from the queue, and the queue from the
    /// store's pending tasks.
    async fn pump(&mut self) -> Result<(), StoreError> {
        if !self.opts.dispatch || self.run.paused || self.stopping {
            return Ok(());
        }
        if self.fleet_share.shared {
            self.fleet_run_places().await?;
        }
        while self.slots.len() < self.task_cap() {
            if self.queue.is_empty() && self.pending_left {
                self.pull_pending().await?;
            }
            let Some(id) = self.queue.pop_front() else {
                break;
            };
            if self
                .tasks
                .get(&id)
                .is_some_and(|t| t.state == TaskState::Pending || t.state.is_active())
            {
                self.slots.insert(id.clone());
                self.advance(&id);
            }
        }
        Ok(())
    }
}
