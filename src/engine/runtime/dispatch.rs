//! What starts next: a task's follow-up events, its ready phases, and the
//! attempts that take an agent's place, their results and the timers.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use super::super::advance::{follow_up, ready_phases};
use super::super::attempt::{self, AttemptDone};
use super::super::backoff::delay;
use super::super::clock;
use super::super::event::{AttemptOutcome, EventKind, TaskId};
use super::super::rate_limit::Admit;
use super::super::route;
use super::Engine;
use super::attempts::Running;
use super::cache_flights::Gate;

impl Engine {
    /// Emits whatever the task's state calls for, then starts what is ready.
    pub(super) fn advance(&mut self, id: &TaskId) {
        let items_waiting = self.tasks.get(id).map_or(0, super::super::fan_out::waiting);
        for _ in 0..(4 * self.phase_ids.len() + 8 + items_waiting) {
            let Some(task) = self.tasks.get(id) else {
                return;
            };
            match follow_up(task, &self.pipeline) {
                Some(kind) => {
                    if !self.emit_logged(id, kind) {
                        break;
                    }
                }
                None => break,
            }
        }
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let state = task.state;
        if state.is_final() || state.needs_human() {
            if state.is_final() {
                if self.running.of(id).next().is_some() {
                    // A phase failed the task while others ran beside it:
                    // their results could no longer be recorded, so they
                    // stop now rather than hold the run until they end.
                    self.abort_task(id);
                } else {
                    self.abort_items(id);
                }
            }
            self.slots.remove(id);
            self.running.release(id);
            return;
        }
        if state.is_active() && !self.slots.contains(id) {
            if self.slots.len() < self.task_cap() || !self.opts.dispatch {
                self.slots.insert(id.clone());
            } else {
                // Resumed by a person while every slot is taken (after a
                // budget raise, many may be): first in line for the next one.
                if !self.queue.contains(id) {
                    self.queue.push_front(id.clone());
                }
                return;
            }
        }
        if !self.slots.contains(id) {
            return;
        }
        let now = self.now_for(id);
        for idx in ready_phases(task, &self.pipeline, now) {
            self.start_phase(id, idx);
        }
        self.start_items(id);
    }

    /// Whether the store cannot commit now (its connection is lost): no
    /// attempt starts, since its outcome could not be recorded; those under
    /// way go on, and their results wait in the store's queue.
    pub(super) fn offline(&mut self) -> bool {
        if self.store.online() {
            return false;
        }
        if !self.held_offline {
            tracing::warn!("the store does not answer: no new attempt starts until it does");
        }
        self.held_offline = true;
        true
    }

    /// Advances every task that holds a slot: at start, and on resume.
    pub(super) fn advance_slotted(&mut self) {
        let slotted: Vec<TaskId> = self.slots.iter().cloned().collect();
        for id in slotted {
            self.advance(&id);
        }
    }

    pub(super) fn start_phase(&mut self, id: &TaskId, idx: usize) {
        if !self.opts.dispatch || self.run.paused || self.stopping || self.running.runs(id, idx) {
            return;
        }
        if self.offline() {
            return;
        }
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        // A hold opened by an earlier phase of this round (a budget) stops the rest.
        if !task.holds.is_empty() || task.state.is_final() {
            return;
        }
        // Before the budget: a cached output costs nothing.
        if let Gate::Held = self.cache_gate(id, idx) {
            return;
        }
        if let Some((scope, detail)) = self.budget_reached(id) {
            self.hold_for_budget(id, idx, scope, detail);
            return;
        }
        let Some((a, at)) = self.pick_agent(id, idx) else {
            return;
        };
        // A fleet's run budget: an attempt starts with a reservation of it.
        let Some(reserved) = self.fleet_reservation(id, idx, None, a) else {
            return;
        };
        let task = &self.tasks[id];
        let pipeline = self.pipeline.clone();
        let spec = &pipeline.phases[idx];
        let slot = &self.agents[a];
        let routed = route::choose(&slot.routes, &task.input);
        let (model, route) = match routed {
            Some((model, choice)) => (Some(model), Some(choice)),
            None => (None, None),
        };
        let request = attempt::request(task, &pipeline, idx, model.clone());
        let agent = slot.agent.clone();
        let kind = EventKind::PhaseStarted {
            phase: spec.id.clone(),
            attempt: request.attempt,
            agent: slot.name.clone(),
            model: model.or_else(|| agent.model().map(str::to_string)),
            feedback: request.feedback.clone(),
            route,
            role: spec.role.clone(),
        };
        if self.emit_at(id, kind, at).is_err() {
            tracing::error!(task = %id, "engine refused its own start of phase {}", spec.id);
            return;
        }
        let slot = &mut self.agents[a];
        slot.inflight += 1;
        slot.fleet.use_grant();
        let ticket = slot.limiter.started(at);
        let handle = attempt::spawn(
            agent,
            Arc::new(request),
            pipeline.clone(),
            idx,
            self.prices.clone(),
            attempt::Outlets {
                results: self.results_tx.clone(),
                live: self.live.clone(),
                secrets: self.secrets.clone(),
            },
        );
        let running = Running {
            phase: idx,
            item: None,
            agent: a,
            ticket,
            handle,
            reserved,
        };
        self.running.add(id, running);
    }

    pub(super) fn on_result(&mut self, done: AttemptDone) {
        if let Some(item) = done.item {
            return self.on_item_result(done, item);
        }
        let Some(run) = self.running.take(&done.task, done.phase) else {
            return; // cancelled while it finished
        };
        let a = run.agent;
        self.agent_done(&run, &done.event);
        let AttemptDone {
            task: id,
            phase: idx,
            event: kind,
            ..
        } = done;
        let (retry, retry_after) = match &kind {
            EventKind::AttemptFinished {
                outcome: AttemptOutcome::Failed { class, .. },
                attempt,
                retry_after_ms,
                ..
            } if class.is_retryable() => (
                Some(*attempt),
                Duration::from_millis(retry_after_ms.unwrap_or(0)),
            ),
            _ => (None, Duration::ZERO),
        };
        if self.emit_logged(&id, kind) {
            let tries = self.tasks[&id].phases[idx].tries;
            if let Some(attempt) = retry {
                self.schedule_retry(&id, idx, tries, retry_after, |phase, delay_ms, due| {
                    EventKind::RetryScheduled {
                        phase,
                        attempt: attempt.saturating_add(1),
                        delay_ms,
                        due,
                    }
                });
            }
            self.advance(&id);
        }
        self.cache_settle(&id);
        self.start_waiting(a);
    }

    /// After a retryable failure, when phase `idx`'s policy allows another
    /// try after `tries`: records the event `scheduled` makes of the phase,
    /// the delay and the due time, and sets its timer. The service's own
    /// `retry-after` wins over a shorter backoff.
    pub(super) fn schedule_retry(
        &mut self,
        id: &TaskId,
        idx: usize,
        tries: u32,
        retry_after: Duration,
        scheduled: impl FnOnce(String, u64, Timestamp) -> EventKind,
    ) {
        let policy = &self.pipeline.phases[idx].retry;
        if tries >= policy.max_attempts {
            return;
        }
        let wait = delay(policy, tries, self.jitter.unit()).max(retry_after);
        let due = clock::after(self.opts.clock.now(), wait);
        let kind = scheduled(self.phase_ids[idx].clone(), clock::millis(wait), due);
        if self.emit_logged(id, kind) {
            self.timers.add(id.clone(), wait, due);
        }
    }

    /// Gives back the agent's place an attempt took, and counts what it spent.
    pub(super) fn agent_done(&mut self, run: &Running, event: &EventKind) {
        self.fleet_budget.unreserve.add(run.reserved);
        let slot = &mut self.agents[run.agent];
        slot.inflight -= 1;
        if let EventKind::AttemptFinished {
            usage, cost_usd, ..
        } = event
        {
            slot.limiter
                .finished(run.ticket, usage.as_ref().map(|u| u.tokens()));
            slot.fleet.used(usage.as_ref().map_or(0, |u| u.tokens()));
            if usage.is_some() || cost_usd.is_some() {
                slot.average.add(usage.as_ref(), *cost_usd);
            }
            self.run_spend.add_attempt(usage.as_ref(), *cost_usd);
        } else {
            slot.limiter.finished(run.ticket, None);
        }
    }

    /// Starts phases that waited for this agent, as far as its capacity and
    /// rate limits allow.
    pub(super) fn start_waiting(&mut self, a: usize) {
        loop {
            let slot = &mut self.agents[a];
            if slot.waiting.is_empty() {
                break;
            }
            if slot.full() || !slot.fleet.may_start() {
                if slot.fleet.wants_more(slot.inflight) {
                    self.fleet_share.wants = true;
                }
                break;
            }
            let at = slot.limiter.clock(self.opts.clock.now());
            match slot.limiter.admit(at) {
                Admit::Now => {}
                Admit::At(t) => {
                    self.wake_at(t);
                    break;
                }
                Admit::AfterCall => break,
            }
            let Some((id, idx)) = self.agents[a].waiting.pop_front() else {
                break;
            };
            if self.pipeline.phases[idx].fan_out.is_some() {
                if self.slots.contains(&id) {
                    self.start_items(&id);
                }
                continue;
            }
            let still_ready = self
                .tasks
                .get(&id)
                .is_some_and(|t| ready_phases(t, &self.pipeline, self.now_for(&id)).contains(&idx));
            if still_ready && self.slots.contains(&id) {
                self.start_phase(&id, idx);
            }
        }
    }

    pub(super) fn fire_timers(&mut self) {
        for id in self.timers.fire(Instant::now()) {
            self.advance(&id);
        }
    }

    /// The time a task's retries are judged by (see [`RetryTimers::now_for`]).
    pub(super) fn now_for(&self, id: &str) -> Timestamp {
        self.timers.now_for(id, self.opts.clock.now())
    }
}
