//! An engine's part in a fleet (a store other engines share): now and then
//! it drops the tasks another engine took over, looks for work others left
//! or submitted, and takes up what they changed in the run (a pause, a
//! budget raise); and it stays up while the run has work anywhere, to take
//! over an engine that dies.

use std::time::Duration;

use super::Engine;
use crate::engine::run_state::RunState;
use crate::store::StoreError;

/// How often a fleet's engine looks around.
const EVERY: Duration = Duration::from_secs(1);

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
        self.pending_left = true;
        self.pump().await
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
