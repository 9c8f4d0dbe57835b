//! An engine's part in a fleet (a store other engines share): now and then
//! it drops the tasks another engine took over, looks for work others left
//! or submitted, and takes up what they changed in the run (a pause, a
//! budget raise); and it stays up while the run has work anywhere, to take
//! over an engine that dies.
//!
//! Limits hold across the fleet, not per engine. `concurrency` and each
//! agent's `max_parallel` are places the engines lease from the store, like
//! tasks: an engine runs only as many tasks (or attempts of the agent) as
//! it holds places, takes up to its fair share (the limit cut by the
//! engines that have work) when it has more to do, and gives back what it
//! does not use. An agent's `rpm` is granted by the store per window of the
//! database's clock, never more than `rpm` in a window across the fleet:
//! an engine starts an attempt only with a grant in hand.

use std::time::{Duration, Instant};

use std::collections::HashMap;

use super::Engine;
use crate::engine::event::{BudgetScope, TaskId};
use crate::engine::run_state::RunState;
use crate::store::{Reserved, StoreError};

/// How often a fleet's engine looks around.
const EVERY: Duration = Duration::from_secs(1);
/// A grant is not used this close to its window's end, so that an attempt
/// it lets start is counted in the window that granted it.
const GRANT_MARGIN: Duration = Duration::from_millis(20);

/// The engine's share of the run's `concurrency`.
#[derive(Debug, Default)]
pub(super) struct RunShare {
    /// The store is a fleet's: the places below count.
    pub shared: bool,
    /// Places of `concurrency` this engine holds.
    pub held: usize,
    /// Engines with work, this one included.
    pub busy: u32,
    /// A limit stopped a start for want of this engine's share: ask the
    /// store for more before waiting.
    pub wants: bool,
}

/// An agent's share of its `max_parallel`, `rpm` and `tpm` in a fleet.
#[derive(Debug, Default, Clone)]
pub(super) struct AgentShare {
    /// Places of its `max_parallel` held; `None` on its own, or unlimited.
    pub held: Option<usize>,
    /// Its `rpm`, when a fleet counts it.
    pub rpm: Option<u32>,
    /// Its `tpm`, when a fleet counts it.
    pub tpm: Option<u64>,
    /// Starts granted and not used yet, until `until` (the window's end).
    pub grant: u32,
    pub until: Option<Instant>,
    /// Tokens the window has used across the fleet, as last heard, plus
    /// this engine's since; and this engine's not told yet.
    pub window_tokens: u64,
    pub unsent_tokens: u64,
    /// The others' tokens are to be heard before the next start.
    pub refresh: bool,
}

impl AgentShare {
    pub fn shared(limit: Option<usize>, rpm: Option<u32>, tpm: Option<u64>) -> AgentShare {
        AgentShare {
            held: limit.map(|_| 0),
            rpm,
            tpm,
            ..AgentShare::default()
        }
    }

    /// The places it may use of `limit`.
    pub fn places(&self, limit: usize) -> usize {
        self.held.map_or(limit, |h| h.min(limit))
    }

    /// Whether the window counts this agent (it has an `rpm` or a `tpm`).
    fn metered(&self) -> bool {
        self.rpm.is_some() || self.tpm.is_some()
    }

    /// Whether the `rpm` and `tpm` let an attempt start now: a grant in
    /// hand within its window, and tokens left in the window. Like one
    /// engine's `tpm`, attempts under way may still take the window over.
    pub fn may_start(&self) -> bool {
        if !self.metered() {
            return true;
        }
        let in_window = self.until.is_some_and(|u| Instant::now() < u);
        let requests = self.rpm.is_none() || self.grant > 0;
        let tokens = self.tpm.is_none_or(|t| self.window_tokens < t);
        in_window && requests && tokens && !self.refresh
    }

    /// Counts an ended attempt's tokens against the window: the engine
    /// tells the store (and hears the others' tokens) before its next
    /// start, so that the fleet goes past the `tpm` by no more than the
    /// attempts under way when the window filled, as one engine does.
    pub fn used(&mut self, tokens: u64) {
        if self.tpm.is_some() {
            self.window_tokens = self.window_tokens.saturating_add(tokens);
            self.unsent_tokens = self.unsent_tokens.saturating_add(tokens);
            self.refresh = true;
        }
    }

    pub fn use_grant(&mut self) {
        if self.rpm.is_some() {
            self.grant = self.grant.saturating_sub(1);
        }
    }

    /// Whether more of the fleet's places or grants would let it start.
    pub fn wants_more(&self, inflight: usize) -> bool {
        self.held.is_some_and(|h| inflight >= h) || !self.may_start()
    }
}

/// What a reservation of the run budget is for: a task's phase (by its
/// place in the pipeline), and the item for a `for_each` phase.
type Start = (TaskId, usize, Option<u32>);

/// A fleet's run budget, from the engine's side: starts waiting for a
/// reservation, reservations granted and not used yet, and what ended
/// attempts give back with the next batch. Phases' attempts and items'
/// reserve alike.
#[derive(Debug, Default)]
pub(super) struct BudgetGate {
    asked: Vec<(Start, String, Reserved)>,
    granted: HashMap<Start, Reserved>,
    pub unreserve: Reserved,
}

impl BudgetGate {
    /// A task that ended, was cancelled or put down: reservations it did
    /// not use go back with the next batch.
    pub fn forget(&mut self, id: &TaskId) {
        self.asked.retain(|((t, ..), ..)| t != id);
        let unused: Vec<Start> = self
            .granted
            .keys()
            .filter(|(t, ..)| t == id)
            .cloned()
            .collect();
        for key in unused {
            if let Some(r) = self.granted.remove(&key) {
                self.unreserve.add(r);
            }
        }
    }
}

/// A fair share of `cap` among `busy` engines: at least one.
fn share(cap: usize, busy: u32) -> usize {
    cap.div_ceil(busy.max(1) as usize).max(1)
}

pub(super) fn interval() -> tokio::time::Interval {
    let mut every = tokio::time::interval(EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every
}

/// The next tick, or never for an engine on its own.
pub(super) async fn tick(every: &mut Option<tokio::time::Interval>) {
    match every {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

impl Engine {
    /// How many tasks may hold a slot here: the pipeline's `concurrency`,
    /// or in a fleet the places of it this engine holds.
    pub(super) fn task_cap(&self) -> usize {
        let cap = self.pipeline.defaults.concurrency;
        if self.fleet_share.shared {
            // No more than a fair share: as its tasks end, an engine holding
            // more gives places back to engines that joined.
            self.fleet_share.held.min(share(cap, self.fleet_share.busy))
        } else {
            cap
        }
    }

    /// Takes places of `concurrency` up to this engine's fair share while
    /// it has tasks to start and every place it holds is taken.
    pub(super) async fn fleet_run_places(&mut self) -> Result<(), StoreError> {
        let cap = self.pipeline.defaults.concurrency;
        if self.fleet_share.busy == 0 {
            // An engine that joins takes its share from its first look,
            // not the whole limit until its first tick.
            self.fleet_share.busy = self.store.busy_engines().await?;
        }
        let share = &self.fleet_share;
        let target = self::share(cap, share.busy);
        let demand = !self.queue.is_empty() || self.pending_left;
        if !demand || share.held >= target || self.slots.len() < share.held {
            return Ok(());
        }
        let want = (target - share.held) as u32;
        let got = self
            .store
            .acquire_slots("run", cap.min(u32::MAX as usize) as u32, want)
            .await?;
        self.fleet_share.held += got as usize;
        Ok(())
    }

    /// Gives back at once the places of `concurrency` beyond this engine's
    /// share that its tasks no longer use, for engines that joined.
    pub(super) async fn fleet_give_back(&mut self) -> Result<(), StoreError> {
        let keep = self.slots.len().max(self.task_cap());
        if self.fleet_share.held > keep {
            let spare = (self.fleet_share.held - keep) as u32;
            self.store.release_slots("run", spare).await?;
            self.fleet_share.held = keep;
        }
        Ok(())
    }

    /// What an attempt of phase `idx` (of its `item`, for a `for_each`
    /// phase) by agent `a` reserves of a fleet's run budget: nothing on its
    /// own or without a run budget; `None` while it waits for the store to
    /// reserve it (then it starts from there).
    pub(super) fn fleet_reservation(
        &mut self,
        id: &TaskId,
        idx: usize,
        item: Option<u32>,
        a: usize,
    ) -> Option<Reserved> {
        if !self.fleet_share.shared || self.run_limits().is_none() {
            return Some(Reserved::default());
        }
        let start = (id.clone(), idx, item);
        if let Some(r) = self.fleet_budget.granted.remove(&start) {
            return Some(r);
        }
        let gate = &mut self.fleet_budget;
        if !gate.asked.iter().any(|(s, ..)| *s == start) {
            let est = self.agents[a].average.estimate(1);
            gate.asked.push((
                start,
                self.agents[a].name.clone(),
                Reserved {
                    usd: est.usd,
                    tokens: est.tokens,
                },
            ));
        }
        self.fleet_share.wants = true;
        None
    }

    /// Reserves the run budget for the starts that wait for it; those the
    /// budget has no room for wait for a person, as on one engine.
    async fn fleet_reserve(&mut self) -> Result<(), StoreError> {
        let asked = std::mem::take(&mut self.fleet_budget.asked);
        if asked.is_empty() {
            return Ok(());
        }
        let wants = asked.iter().map(|(_, a, r)| (a.clone(), *r)).collect();
        let (given, refused) = self.store.reserve_budget(self.run_limits(), wants).await?;
        let mut held = Vec::new();
        for (i, ((id, idx, item), ..)) in asked.into_iter().enumerate() {
            match given.get(i) {
                Some(r) => {
                    self.fleet_budget
                        .granted
                        .insert((id.clone(), idx, item), *r);
                    match item {
                        None => self.start_phase(&id, idx),
                        Some(_) => self.start_items(&id),
                    }
                }
                None => {
                    let why = refused.clone().unwrap_or_default();
                    let free = self
                        .tasks
                        .get(&id)
                        .is_some_and(|t| t.holds.is_empty() && !t.state.is_final());
                    if free {
                        self.hold_for_budget(&id, idx, BudgetScope::Run, why);
                        held.push(id);
                    }
                }
            }
        }
        // A task held for the budget starts nothing more: what it was
        // granted goes back.
        for id in held {
            self.fleet_budget.forget(&id);
        }
        Ok(())
    }

    /// Asks the store for the places, grants and reservations the fleet's
    /// limits want.
    pub(super) async fn fleet_refill(&mut self) -> Result<(), StoreError> {
        self.fleet_share.wants = false;
        self.fleet_reserve().await?;
        let busy = self.fleet_share.busy;
        let window = self.opts.rate_window;
        let mut woken = Vec::new();
        let mut wake: Option<Duration> = None;
        for a in 0..self.agents.len() {
            let slot = &self.agents[a];
            if slot.waiting.is_empty() {
                continue;
            }
            let resource = format!("agent:{}", slot.name);
            if let (Some(limit), Some(held)) = (slot.limit, slot.fleet.held)
                && slot.inflight >= held
                && held < limit
            {
                let target = share(limit, busy).max(held + 1).min(limit);
                let got = self
                    .store
                    .acquire_slots(&resource, limit as u32, (target - held) as u32)
                    .await?;
                self.agents[a].fleet.held = Some(held + got as usize);
                if got > 0 {
                    woken.push(a);
                }
            }
            let slot = &self.agents[a];
            if slot.fleet.metered() && !slot.fleet.may_start() {
                let rpm = slot.fleet.rpm;
                let want = (slot.waiting.len() as u32).clamp(1, rpm.unwrap_or(u32::MAX));
                let used = slot.fleet.unsent_tokens;
                let grant = self
                    .store
                    .grant_requests(&slot.name, rpm, window, want, used)
                    .await?;
                let share = &mut self.agents[a].fleet;
                share.unsent_tokens -= used;
                share.refresh = false;
                // Grants left of the same window stay usable.
                let same_window = share.until.is_some_and(|u| Instant::now() < u);
                let kept = if same_window { share.grant } else { 0 };
                share.grant = if rpm.is_some() {
                    kept + grant.granted
                } else {
                    0
                };
                share.window_tokens = grant.tokens;
                share.until = Some(Instant::now() + grant.left.saturating_sub(GRANT_MARGIN));
                if share.may_start() {
                    woken.push(a);
                } else {
                    // Spent for this window: look again when it ends.
                    wake = Some(wake.map_or(grant.left, |w| w.min(grant.left)));
                }
            }
        }
        if let Some(w) = wake {
            let at = crate::engine::clock::after(self.opts.clock.now(), w);
            self.wake_at(at);
        }
        for a in woken {
            self.start_waiting(a);
        }
        Ok(())
    }

    /// Gives back the places this engine holds and does not need, and
    /// learns how many engines share the work.
    async fn fleet_release(&mut self) -> Result<(), StoreError> {
        self.fleet_share.busy = self.store.busy_engines().await?;
        let cap = self.pipeline.defaults.concurrency;
        let target = share(cap, self.fleet_share.busy);
        let in_use = self.slots.len();
        let demand = !self.queue.is_empty() || self.pending_left;
        let keep = if demand {
            in_use.max(self.fleet_share.held.min(target))
        } else {
            in_use
        };
        if self.fleet_share.held > keep {
            let spare = (self.fleet_share.held - keep) as u32;
            self.store.release_slots("run", spare).await?;
            self.fleet_share.held = keep;
        }
        for a in 0..self.agents.len() {
            let slot = &self.agents[a];
            let (Some(held), Some(limit)) = (slot.fleet.held, slot.limit) else {
                continue;
            };
            let keep = if slot.waiting.is_empty() {
                slot.inflight
            } else {
                slot.inflight
                    .max(held.min(share(limit, self.fleet_share.busy)))
            };
            if held > keep {
                let resource = format!("agent:{}", slot.name);
                self.store
                    .release_slots(&resource, (held - keep) as u32)
                    .await?;
                self.agents[a].fleet.held = Some(keep);
            }
        }
        Ok(())
    }

    pub(super) async fn fleet_tick(&mut self) -> Result<(), StoreError> {
        for ord in self.store.take_lost() {
            self.drop_lost(ord);
        }
        // The run's own events, whoever recorded them.
        self.send_outbox().await?;
        self.store.flush().await?;
        let run = RunState::of(&self.store.run_events().await?);
        let resumed = self.run.paused && !run.paused;
        self.run = run;
        if resumed {
            self.advance_slotted();
        }
        // The run's spend, whichever engine spent it, for its budget.
        let totals = self.store.totals().await?;
        self.run_spend = crate::engine::budget::Spend {
            cost: totals.cost(),
            tokens: totals.tokens,
        };
        self.pending_left = true;
        self.fleet_release().await?;
        self.pump().await?;
        self.fleet_refill().await
    }

    /// Whether the run has work left anywhere that this engine might yet
    /// take: a fleet's engine that is idle stays while another holds tasks
    /// under way, in case it dies.
    pub(super) async fn fleet_busy(&mut self) -> Result<bool, StoreError> {
        if !self.store.is_shared() || !self.opts.dispatch {
            return Ok(false);
        }
        self.send_outbox().await?;
        self.store.flush().await?;
        self.store.work_left().await
    }

    /// Task `id` is put down (it waits for a person, or is final): it
    /// leaves the step cache's flights here (see `cache_claims`), and gives
    /// back what it reserved of the run budget and did not use.
    pub(super) fn fleet_put_down(&mut self, id: &TaskId) {
        self.cache_put_down(id);
        // Reservations it did not use go back with this batch.
        self.fleet_budget.forget(id);
    }

    /// A task another engine took over: its attempts here stop and it
    /// leaves this engine.
    fn drop_lost(&mut self, ord: crate::store::TaskNo) {
        let Some(id) = self
            .tasks
            .keys()
            .find(|id| self.checkpoint.ord(id) == Some(ord))
            .cloned()
        else {
            return;
        };
        tracing::warn!(task = %id, "another engine took this task over; it stops here");
        self.abort_task(&id);
        self.running.release(&id);
        self.tasks.remove(&id);
        self.slots.remove(&id);
        self.timers.forget(&id);
        self.queue.retain(|q| q != &id);
        self.checkpoint.forget(&id);
    }
}
