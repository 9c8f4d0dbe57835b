//! The shared step cache in the engine: one flight per key.
//!
//! A phase with a `cache_key` does not start an attempt at once. Its key is
//! made from the task; if a flight for that key is under way (a lookup in
//! the store, or the one attempt that will fill it), the phase waits in it.
//! Otherwise the phase opens a flight and the store is asked, with what the
//! engine queued committed first. A fresh entry completes the phase, and
//! every phase waiting in the flight, with a `PhaseCached` event: no agent,
//! no slot of its `max_parallel`, no rate-limit token, no tokens, no cost.
//! A miss lets the flight's owner start its attempt as any phase does.
//!
//! When that attempt's output is accepted (approved by a person, when the
//! phase needs that), it is stored and serves the waiters. When it fails,
//! is blocked, sent back or cancelled, nothing is stored and the first
//! waiter takes the flight over and runs its own attempt.
//!
//! An attempt with reviewer feedback belongs to its task: it neither reads
//! nor fills the cache. Flights live in memory; a restart starts them over
//! from the store.
//!
//! In a fleet (a store other engines share) a flight is one engine's, so
//! the single flight across engines is kept in the store: a miss claims
//! the key before its attempt may start, and a key another engine holds
//! makes the flight wait for that engine's entry (see `cache_claims`).

use std::collections::HashMap;

use super::super::advance::needs_approval;
use super::super::cache_key;
use super::super::clock;
use super::super::event::{Action, AttemptOutcome, ErrorClass, EventKind, TaskId};
use super::super::state::PhaseState;
use super::Engine;
use crate::spec::Pipeline;
use crate::store::StoreError;
use crate::store::cache::{CacheEntry, CacheKey, CacheWrite};

/// One key's work in flight: the phase that looks it up or runs it, and
/// the phases waiting for its output.
pub(super) struct Flight {
    pub(super) owner: (TaskId, usize),
    /// The store has not answered yet (or, in a fleet, another engine
    /// holds the key).
    pub(super) looking: bool,
    pub(super) waiters: Vec<(TaskId, usize)>,
    /// In a fleet: this engine holds the key's claim in the store.
    pub(super) claimed: bool,
    /// In a fleet: another engine holds the key's claim; the flight looks
    /// again at the next recheck.
    pub(super) elsewhere: bool,
}

/// The step cache's state in the engine.
#[derive(Default)]
pub(super) struct CacheFlights {
    /// Each phase's definition hash; `None` for phases without a cache.
    definitions: Vec<Option<String>>,
    pub(super) flights: HashMap<CacheKey, Flight>,
    /// The key each flight owner works for.
    pub(super) owners: HashMap<(TaskId, usize), CacheKey>,
    /// Flights whose store lookup is due.
    pub(super) lookups: Vec<CacheKey>,
    /// Tasks to advance once the current step is done: a served waiter, an
    /// owner whose lookup missed.
    pub(super) wake: Vec<TaskId>,
    /// Changes for the store, sent with the next outbox.
    writes: Vec<CacheWrite>,
    /// An entry was handed to the store since its last flush: a lookup
    /// waits for that commit, so that it finds the entry.
    stored_unflushed: bool,
    /// In a fleet: claims to let go, sent with the next outbox.
    pub(super) releases: Vec<CacheKey>,
    /// In a fleet: when the flights waiting for another engine look again.
    pub(super) recheck_at: Option<tokio::time::Instant>,
}

impl CacheFlights {
    pub(super) fn new(pipeline: &Pipeline) -> CacheFlights {
        CacheFlights {
            definitions: (0..pipeline.phases.len())
                .map(|i| {
                    pipeline.phases[i]
                        .cache
                        .as_ref()
                        .map(|_| cache_key::definition(pipeline, i))
                })
                .collect(),
            ..CacheFlights::default()
        }
    }
}

/// What the step cache makes of a phase about to start.
pub(super) enum Gate {
    /// Start an attempt as usual.
    Run,
    /// The cache has it: it waits for a lookup or another task's attempt,
    /// or its key could not be made and it failed.
    Held,
}

impl Engine {
    /// Decides whether phase `idx` of task `id` starts an attempt now.
    pub(super) fn cache_gate(&mut self, id: &TaskId, idx: usize) -> Gate {
        let Some(definition) = self.cache.definitions[idx].clone() else {
            return Gate::Run;
        };
        let pipeline = self.pipeline.clone();
        let Some(spec) = pipeline.phases[idx].cache.as_ref() else {
            return Gate::Run;
        };
        let Some(task) = self.tasks.get(id) else {
            return Gate::Held;
        };
        if task.phases[idx].feedback.is_some() {
            return Gate::Run;
        }
        let key = match cache_key::render(spec, task, &self.pipeline, idx) {
            Ok(key) => key,
            Err(why) => {
                self.fail_without_key(id, idx, why);
                return Gate::Held;
            }
        };
        let ck = CacheKey {
            phase: pipeline.phases[idx].id.clone(),
            definition,
            key,
        };
        let me = (id.clone(), idx);
        match self.cache.flights.get_mut(&ck) {
            Some(f) if f.owner == me => match f.looking {
                true => Gate::Held,
                false => Gate::Run,
            },
            Some(f) => {
                if !f.waiters.contains(&me) {
                    f.waiters.push(me);
                }
                Gate::Held
            }
            None => {
                self.cache.flights.insert(
                    ck.clone(),
                    Flight {
                        owner: me.clone(),
                        looking: true,
                        waiters: Vec::new(),
                        claimed: false,
                        elsewhere: false,
                    },
                );
                self.cache.owners.insert(me, ck.clone());
                self.cache.lookups.push(ck);
                Gate::Held
            }
        }
    }

    /// A key the task cannot make is the phase's failure, as an attempt
    /// that ends at once, so that `on_failure` and the run log treat it as
    /// any other.
    fn fail_without_key(&mut self, id: &TaskId, idx: usize, why: String) {
        let Some(&a) = self.phase_agents[idx].first() else {
            return;
        };
        let attempt = self.tasks[id].phases[idx].attempts.len() as u32 + 1;
        let phase = self.phase_ids[idx].clone();
        let started = EventKind::PhaseStarted {
            phase: phase.clone(),
            attempt,
            agent: self.agents[a].name.clone(),
            model: None,
            feedback: None,
            route: None,
            role: self.pipeline.phases[idx].role.clone(),
        };
        let finished = EventKind::AttemptFinished {
            phase,
            attempt,
            duration_ms: 0,
            outcome: AttemptOutcome::Failed {
                class: ErrorClass::Fatal,
                message: why,
            },
            usage: None,
            cost_usd: None,
            output: None,
            trace: Vec::new(),
            http: None,
            retry_after_ms: None,
        };
        if self.emit_logged(id, started) && self.emit_logged(id, finished) {
            self.cache.wake.push(id.clone());
        }
    }

    /// Answers the lookups due and advances the tasks the cache let go,
    /// until neither is left. Called where the engine may await.
    pub(super) async fn run_cache_flights(&mut self) -> Result<(), StoreError> {
        loop {
            for id in std::mem::take(&mut self.cache.wake) {
                self.advance(&id);
            }
            if self.cache.lookups.is_empty() {
                if self.cache.wake.is_empty() {
                    return Ok(());
                }
                continue;
            }
            let keys = std::mem::take(&mut self.cache.lookups);
            // The store answers from what is committed: what this engine
            // stored a moment ago included.
            self.send_outbox().await?;
            if std::mem::take(&mut self.cache.stored_unflushed) {
                self.store.flush().await?;
            }
            let found = self.store.cache_get(&keys).await?;
            let now = self.opts.clock.now();
            let mut missed = Vec::new();
            for (ck, entry) in keys.into_iter().zip(found) {
                match self.fresh(&ck, entry, now) {
                    Some(entry) => self.serve_flight(&ck, &entry, None),
                    None => missed.push(ck),
                }
            }
            if self.store.is_shared() {
                self.claim_missed(missed).await?;
            } else {
                for ck in missed {
                    self.run_owner(&ck);
                }
            }
        }
    }

    /// `entry` when it may be reused at `now`: no older than its phase's
    /// `cache_ttl`.
    pub(super) fn fresh(
        &self,
        ck: &CacheKey,
        entry: Option<CacheEntry>,
        now: jiff::Timestamp,
    ) -> Option<CacheEntry> {
        let idx = self.pipeline.phase_index(&ck.phase);
        let ttl = idx.and_then(|i| self.pipeline.phases[i].cache.as_ref()?.ttl);
        entry.filter(|e| ttl.is_none_or(|ttl| clock::after(e.created_at, ttl) > now))
    }

    /// The key has no entry: the flight's owner starts its attempt.
    pub(super) fn run_owner(&mut self, ck: &CacheKey) {
        if let Some(f) = self.cache.flights.get_mut(ck) {
            f.looking = false;
            self.cache.wake.push(f.owner.0.clone());
        }
    }

    /// Completes every phase in the flight at `ck` with `entry`'s output,
    /// but `made_by`, whose own attempt made it; ends the flight.
    pub(super) fn serve_flight(
        &mut self,
        ck: &CacheKey,
        entry: &CacheEntry,
        made_by: Option<&TaskId>,
    ) {
        let Some(f) = self.cache.flights.remove(ck) else {
            return;
        };
        self.cache.owners.remove(&f.owner);
        if f.claimed && made_by.is_none() {
            // Found stored by another engine: the claim is not needed. (An
            // entry this engine stores ends its claim in the same commit.)
            self.cache.releases.push(ck.clone());
        }
        let mut served = 0;
        for (id, idx) in std::iter::once(f.owner).chain(f.waiters) {
            if Some(&id) == made_by || !self.may_take_cached(&id, idx) {
                continue;
            }
            let kind = EventKind::PhaseCached {
                phase: ck.phase.clone(),
                key: ck.key.clone(),
                output: entry.output.clone(),
                from_task: entry.task.clone(),
                stored_at: entry.created_at,
            };
            if self.emit_logged(&id, kind) {
                served += 1;
                self.cache.wake.push(id);
            }
        }
        if served > 0 {
            self.cache.writes.push(CacheWrite::Used {
                key: ck.clone(),
                n: served,
                at: self.opts.clock.now(),
            });
        }
    }

    /// Whether phase `idx` of task `id` can take a cached output now: it
    /// is not running, and nothing holds the task.
    fn may_take_cached(&self, id: &str, idx: usize) -> bool {
        self.tasks.get(id).is_some_and(|t| {
            let p = &t.phases[idx];
            !t.state.is_final()
                && t.holds.is_empty()
                && (p.state == PhaseState::Pending
                    || (p.state == PhaseState::Running && p.running_attempt().is_none()))
                && !self.running.runs(id, idx)
        })
    }

    /// After something happened to task `id` (an attempt ended, a person
    /// decided, a cancel): settles the flights it owns.
    pub(super) fn cache_settle(&mut self, id: &TaskId) {
        self.settle_owned(id);
    }

    /// Settles the flights task `id` owns; gives their phases.
    fn settle_owned(&mut self, id: &TaskId) -> Vec<usize> {
        let mut owned = Vec::new();
        for idx in 0..self.phase_ids.len() {
            if let Some(ck) = self.cache.owners.get(&(id.clone(), idx)).cloned() {
                owned.push(idx);
                self.settle_flight(id, idx, ck);
            }
        }
        owned
    }

    /// After a person's decision on task `id`: its flights settle, and an
    /// output just approved is stored even when no flight owns it.
    pub(super) fn cache_after_decision(&mut self, id: &TaskId) {
        let owned = self.settle_owned(id);
        self.store_approved(id, &owned);
    }

    /// A person approved an output the cache waits for, though no flight
    /// of this engine owns it (it was made before a restart, or the
    /// decision is applied to a stopped folder): it is stored now.
    fn store_approved(&mut self, id: &TaskId, settled: &[usize]) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let Some(phase) = task
            .decisions
            .last()
            .filter(|d| d.action == Action::Approve)
            .and_then(|d| d.phase.clone())
        else {
            return;
        };
        let Some(idx) = task.phase_index(&phase).filter(|i| !settled.contains(i)) else {
            return;
        };
        let (Some(definition), Some(spec)) = (
            self.cache.definitions[idx].clone(),
            self.pipeline.phases[idx].cache.as_ref(),
        ) else {
            return;
        };
        let p = &task.phases[idx];
        let made_here = p.attempts.last().is_some_and(|a| a.feedback.is_none());
        let accepted = p.state == PhaseState::Completed && p.approved && p.cached.is_none();
        let (Some(output), true, true) = (p.output.clone(), made_here, accepted) else {
            return;
        };
        let Ok(key) = cache_key::render(spec, task, &self.pipeline, idx) else {
            return;
        };
        let ck = CacheKey {
            phase,
            definition,
            key,
        };
        let entry = CacheEntry {
            key: ck.clone(),
            output,
            task: id.clone(),
            created_at: self.opts.clock.now(),
        };
        self.cache.writes.push(CacheWrite::Put(entry.clone()));
        if self.cache.flights.contains_key(&ck) {
            self.serve_flight(&ck, &entry, Some(id));
        }
    }

    fn settle_flight(&mut self, id: &TaskId, idx: usize, ck: CacheKey) {
        let Some(task) = self.tasks.get(id) else {
            return self.hand_over(&ck);
        };
        let p = &task.phases[idx];
        if self.running.runs(id, idx) || self.cache.flights.get(&ck).is_some_and(|f| f.looking) {
            return;
        }
        let spec = &self.pipeline.phases[idx];
        let asks_approval = needs_approval(p, spec.review);
        let output = p.output.clone().filter(|_| {
            p.state == PhaseState::Completed && p.cached.is_none() && (!asks_approval || p.approved)
        });
        if let Some(output) = output {
            let entry = CacheEntry {
                key: ck.clone(),
                output,
                task: id.clone(),
                created_at: self.opts.clock.now(),
            };
            self.cache.writes.push(CacheWrite::Put(entry.clone()));
            self.serve_flight(&ck, &entry, Some(id));
            return;
        }
        let awaits_person =
            p.state == PhaseState::Completed && asks_approval && !task.state.is_final();
        let still_to_start =
            p.state == PhaseState::Pending && p.attempts.is_empty() && !task.state.is_final();
        if awaits_person || still_to_start {
            return;
        }
        self.hand_over(&ck);
    }

    /// The flight's attempt came to nothing: its first waiter runs its own.
    /// In a fleet the waiter looks in the store first (another engine may
    /// have stored the key meanwhile) and takes this engine's claim over;
    /// with no waiter, the claim is let go for the other engines' tasks.
    pub(super) fn hand_over(&mut self, ck: &CacheKey) {
        let Some(f) = self.cache.flights.get_mut(ck) else {
            return;
        };
        let old = f.owner.clone();
        if f.waiters.is_empty() {
            if f.claimed {
                self.cache.releases.push(ck.clone());
            }
            self.cache.flights.remove(ck);
            self.cache.owners.remove(&old);
            return;
        }
        let next = f.waiters.remove(0);
        f.owner = next.clone();
        // A lookup still under way answers the new owner.
        let looking = f.looking;
        self.cache.owners.remove(&old);
        self.cache.owners.insert(next.clone(), ck.clone());
        if looking {
            return;
        }
        if self.store.is_shared() {
            f.looking = true;
            self.cache.lookups.push(ck.clone());
        } else {
            self.cache.wake.push(next.0);
        }
    }

    /// A cancelled task leaves every flight: those it waits in, and those
    /// it owns go to their first waiter.
    pub(super) fn cache_forget(&mut self, id: &TaskId) {
        for f in self.cache.flights.values_mut() {
            f.waiters.retain(|(t, _)| t != id);
        }
        let owned: Vec<CacheKey> = (0..self.phase_ids.len())
            .filter_map(|idx| self.cache.owners.get(&(id.clone(), idx)).cloned())
            .collect();
        for ck in owned {
            self.hand_over(&ck);
        }
    }

    /// Hands the store what the cache changed.
    pub(super) async fn send_cache_writes(&mut self) -> Result<(), StoreError> {
        if !self.cache.releases.is_empty() {
            let keys = std::mem::take(&mut self.cache.releases);
            self.store.cache_release(keys).await?;
        }
        if self.cache.writes.is_empty() {
            return Ok(());
        }
        let writes = std::mem::take(&mut self.cache.writes);
        if writes.iter().any(|w| matches!(w, CacheWrite::Put(_))) {
            self.cache.stored_unflushed = true;
        }
        self.store.cache_write(writes).await
    }
}
