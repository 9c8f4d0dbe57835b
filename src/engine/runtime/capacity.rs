//! Which agent runs an attempt: the first of the phase's agents (its own, or
//! its role's, preferred first) that has room under `max_parallel` and its
//! rate limits.

use jiff::Timestamp;

use super::super::clock;
use super::super::event::TaskId;
use super::super::rate_limit::Admit;
use super::Engine;

impl Engine {
    /// The first of the phase's agents with room (its `max_parallel` and its
    /// rate limits), and the time to start at; else the phase waits in each
    /// agent's queue, with a wake-up set for when a rate limit lets it go.
    pub(super) fn pick_agent(&mut self, id: &TaskId, idx: usize) -> Option<(usize, Timestamp)> {
        let now = self.opts.clock.now();
        let mut wake: Option<Timestamp> = None;
        for &a in &self.phase_agents[idx] {
            let slot = &mut self.agents[a];
            if slot.full() || !slot.fleet.may_start() {
                if slot.fleet.wants_more(slot.inflight) {
                    self.fleet_share.wants = true;
                }
                continue;
            }
            let at = slot.limiter.clock(now);
            match slot.limiter.admit(at) {
                Admit::Now => return Some((a, at)),
                Admit::At(t) => wake = Some(wake.map_or(t, |w| w.min(t))),
                Admit::AfterCall => {}
            }
        }
        for &a in &self.phase_agents[idx] {
            let slot = &mut self.agents[a];
            if !slot.waiting.iter().any(|(t, i)| t == id && *i == idx) {
                slot.waiting.push_back((id.clone(), idx));
            }
        }
        if let Some(t) = wake {
            self.wake_at(t);
        }
        None
    }

    pub(super) fn wake_at(&mut self, t: Timestamp) {
        let at = clock::instant_after(clock::until(self.opts.clock.now(), t));
        self.rate_wake = Some(self.rate_wake.map_or(at, |w| w.min(at)));
    }
}
