//! Items of `for_each` phases in flight: started within their chain's
//! bound, the agents' limits and the budgets, their results taken, and
//! put back in motion after a restart. What may start, and what an item
//! needs next, is decided in `engine::fan_out` from the task alone.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::super::attempt;
use super::super::clock;
use super::super::event::{AttemptOutcome, EventKind, TaskId};
use super::super::fan_out;
use super::super::route;
use super::super::task::ItemState;
use super::Engine;
use super::attempts::Running;

impl Engine {
    /// Starts the items of task `id` that may start now.
    pub(super) fn start_items(&mut self, id: &TaskId) {
        if !self.opts.dispatch
            || self.run.paused
            || self.stopping
            || !self.has_fan_out
            || self.offline()
        {
            return;
        }
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        let now = self.timers.now_for(id, self.opts.clock.now());
        let ready = fan_out::ready_items(
            task,
            &self.pipeline,
            now,
            self.pipeline.defaults.concurrency,
        );
        for (idx, item) in ready {
            if !self.start_item(id, idx, item) {
                break;
            }
        }
    }

    /// Starts one item's attempt, or asks a fleet's store to reserve the
    /// run budget for it (it starts once reserved); `false` when nothing
    /// more can start now (no agent has room, a budget is reached, the task
    /// is held).
    fn start_item(&mut self, id: &TaskId, idx: usize, item: u32) -> bool {
        let Some(task) = self.tasks.get(id) else {
            return false;
        };
        if !task.holds.is_empty() || task.state.is_final() {
            return false;
        }
        if let Some((scope, detail)) = self.budget_reached(id) {
            self.hold_for_budget(id, idx, scope, detail);
            return false;
        }
        let Some((a, at)) = self.pick_agent(id, idx) else {
            return false;
        };
        // A fleet's run budget: an item's attempt starts with a reservation
        // of it, as a phase's does; the next items ask in the same round.
        let Some(reserved) = self.fleet_reservation(id, idx, Some(item), a) else {
            return true;
        };
        let pipeline = self.pipeline.clone();
        let task = &self.tasks[id];
        let slot = &self.agents[a];
        let model = route::choose(&slot.routes, &task.input).map(|(model, _)| model);
        let Some(request) = fan_out::request(task, &pipeline, idx, item, model.clone()) else {
            tracing::error!(task = %id, "no request for item {item} of phase {}", self.phase_ids[idx]);
            self.fleet_budget.unreserve.add(reserved);
            return false;
        };
        let agent = slot.agent.clone();
        let kind = EventKind::ItemStarted {
            phase: self.phase_ids[idx].clone(),
            item,
            attempt: request.attempt,
            agent: slot.name.clone(),
            model: model.or_else(|| agent.model().map(str::to_string)),
        };
        if let Err(e) = self.emit_at(id, kind, at) {
            tracing::error!(task = %id, "engine refused its own start of an item: {e}");
            self.fleet_budget.unreserve.add(reserved);
            return false;
        }
        let slot = &mut self.agents[a];
        slot.inflight += 1;
        slot.fleet.use_grant();
        let ticket = slot.limiter.started(at);
        let handle = attempt::spawn(
            agent,
            Arc::new(request),
            pipeline,
            idx,
            self.prices.clone(),
            attempt::Outlets {
                results: self.results_tx.clone(),
                live: self.live.clone(),
                secrets: self.secrets.clone(),
            },
        );
        self.running.add(
            id,
            Running {
                phase: idx,
                item: Some(item),
                agent: a,
                ticket,
                handle,
                reserved,
            },
        );
        true
    }

    /// An item's call came back: record it, schedule its retry if it may
    /// have one, and go on with the task.
    pub(super) fn on_item_result(&mut self, done: attempt::AttemptDone, item: u32) {
        let Some(run) = self.running.take_item(&done.task, done.phase, item) else {
            return; // its task ended while it finished
        };
        let a = run.agent;
        self.agent_done(&run, &done.event);
        let (id, idx) = (done.task, done.phase);
        let retry_after = match &done.event {
            EventKind::AttemptFinished { retry_after_ms, .. } => {
                Duration::from_millis(retry_after_ms.unwrap_or(0))
            }
            _ => Duration::ZERO,
        };
        let agent = self.agents[a].name.clone();
        let Some(kind) = fan_out::item_finished(done.event, item, &agent) else {
            return;
        };
        let retry = match &kind {
            EventKind::ItemFinished {
                outcome: AttemptOutcome::Failed { class, .. },
                attempt,
                ..
            } if class.is_retryable() => Some(*attempt),
            _ => None,
        };
        if self.emit_logged(&id, kind) {
            let tries = self.tasks[&id].phases[idx]
                .items
                .as_deref()
                .map_or(0, |x| x.items[item as usize].tries);
            if let Some(attempt) = retry {
                self.schedule_retry(&id, idx, tries, retry_after, |phase, delay_ms, due| {
                    EventKind::ItemRetryScheduled {
                        phase,
                        item,
                        attempt: attempt.saturating_add(1),
                        delay_ms,
                        due,
                    }
                });
            }
            self.advance(&id);
        }
        self.start_waiting(a);
    }

    /// Stops the item attempts of a task that ended or was cancelled.
    pub(super) fn abort_items(&mut self, id: &TaskId) {
        for r in self.running.take_items(id) {
            r.handle.abort();
            self.fleet_budget.unreserve.add(r.reserved);
            let slot = &mut self.agents[r.agent];
            slot.inflight -= 1;
            slot.limiter.finished(r.ticket, None);
        }
    }

    /// After a restart: item attempts that were running are recorded as
    /// interrupted (they run again; a finished item never does), and
    /// waiting retries keep their due times.
    pub(super) fn resume_items(&mut self, id: &TaskId, now: Timestamp) {
        let Some(task) = self.tasks.get(id) else {
            return;
        };
        if task.state.is_final() {
            return;
        }
        let mut open = Vec::new();
        let mut dues = Vec::new();
        for p in &task.phases {
            let Some(items) = p.items.as_deref() else {
                continue;
            };
            for (i, it) in items.items.iter().enumerate() {
                match it.state {
                    ItemState::Running => open.push((p.id.clone(), i as u32, it.attempts)),
                    ItemState::Waiting => dues.extend(it.retry_due),
                    _ => {}
                }
            }
        }
        for (phase, item, attempt) in open {
            self.emit_logged(id, fan_out::item_interrupted(phase, item, attempt, ""));
        }
        for due in dues {
            self.timers.add(id.clone(), clock::until(now, due), due);
        }
    }

    /// At shutdown: item attempts cut short are recorded as interrupted, so
    /// the next run starts them again.
    pub(super) fn interrupt_items(&mut self) {
        for id in self.running.tasks_with_items() {
            let running = self.running.take_items(&id);
            for r in running {
                r.handle.abort();
                let Some(item) = r.item else { continue };
                let attempt = self.tasks[&id].phases[r.phase]
                    .items
                    .as_deref()
                    .map(|x| &x.items[item as usize])
                    .filter(|it| it.state == ItemState::Running)
                    .map(|it| it.attempts);
                if let Some(attempt) = attempt
                    && !self.tasks[&id].state.is_final()
                {
                    let phase = self.phase_ids[r.phase].clone();
                    let agent = self.agents[r.agent].name.clone();
                    self.emit_logged(&id, fan_out::item_interrupted(phase, item, attempt, &agent));
                }
            }
        }
    }
}
