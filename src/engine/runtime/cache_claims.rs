//! The step cache's single flight across a fleet. A flight (see
//! `cache_flights`) lives in one engine's memory; the store keeps which
//! engine runs each key's attempt (`RunStore::cache_claim`).
//!
//! A flight whose lookup missed claims its key before its owner may start
//! the attempt. Got, the owner runs (unless the entry was stored in the
//! meantime: the claim is then given back and the flight served). Held by
//! another engine, the flight waits: every `RECHECK` it looks for the
//! entry again and, when there is still none, tries the claim again, so
//! that it takes the other engine's output once stored, or the key itself
//! once that engine let go of it (its attempt came to nothing) or died
//! (its lease ran out).
//!
//! A task this engine puts down while its output waits for a person keeps
//! its claim in the store (a person's review holds it, whichever engine
//! carries the decision out); the flight's other tasks then wait as those
//! of other engines do. An engine on its own never comes here.

use std::time::Duration;

use tokio::time::Instant;

use super::Engine;
use crate::engine::event::TaskId;
use crate::engine::state::HoldKind;
use crate::store::StoreError;
use crate::store::cache::CacheKey;

/// How often a flight waiting for another engine's attempt looks again.
const RECHECK: Duration = Duration::from_millis(250);

impl Engine {
    /// Claims the keys whose lookup found no entry; the owners of those
    /// got start, the other flights wait for the engines that hold them.
    pub(super) async fn claim_missed(&mut self, missed: Vec<CacheKey>) -> Result<(), StoreError> {
        let asks: Vec<(CacheKey, TaskId)> = missed
            .into_iter()
            .filter_map(|ck| {
                let owner = self.cache.flights.get(&ck)?.owner.0.clone();
                Some((ck, owner))
            })
            .collect();
        if asks.is_empty() {
            return Ok(());
        }
        let got = self.store.cache_claim(&asks).await?;
        let mut claimed = Vec::new();
        for ((ck, _), got) in asks.into_iter().zip(got) {
            match self.cache.flights.get_mut(&ck) {
                Some(f) if got => {
                    f.claimed = true;
                    claimed.push(ck);
                }
                Some(f) => {
                    f.elsewhere = true;
                    self.recheck_soon();
                }
                None if got => self.cache.releases.push(ck),
                None => {}
            }
        }
        if claimed.is_empty() {
            return Ok(());
        }
        // The engine that held a key ends its claim with the commit that
        // stores the entry: one stored between the lookup and the claim is
        // there now.
        let found = self.store.cache_get(&claimed).await?;
        let now = self.opts.clock.now();
        for (ck, entry) in claimed.into_iter().zip(found) {
            match self.fresh(&ck, entry, now) {
                Some(entry) => self.serve_flight(&ck, &entry, None),
                None => self.run_owner(&ck),
            }
        }
        Ok(())
    }

    fn recheck_soon(&mut self) {
        if self.cache.recheck_at.is_none() {
            self.cache.recheck_at = Some(Instant::now() + RECHECK);
        }
    }

    /// When the flights waiting for another engine look again, if any do.
    pub(super) fn cache_recheck_at(&self) -> Option<Instant> {
        self.cache.recheck_at
    }

    /// The flights waiting for another engine look in the store again.
    pub(super) fn cache_recheck(&mut self) {
        self.cache.recheck_at = None;
        let cache = &mut self.cache;
        for (ck, f) in cache.flights.iter_mut() {
            if std::mem::take(&mut f.elsewhere) {
                cache.lookups.push(ck.clone());
            }
        }
    }

    /// Task `id` is put down (a fleet's engine lets go of a task that waits
    /// for a person, and of a final one): it leaves the flights it waits
    /// in, and those it owns go to their next task. An output of its own
    /// that waits for a person's review keeps its claim in the store, for
    /// the person's decision; the next task waits for it as for another
    /// engine's.
    pub(super) fn cache_put_down(&mut self, id: &TaskId) {
        for f in self.cache.flights.values_mut() {
            f.waiters.retain(|(t, _)| t != id);
        }
        for idx in 0..self.phase_ids.len() {
            let Some(ck) = self.cache.owners.get(&(id.clone(), idx)).cloned() else {
                continue;
            };
            let reviewed = self.tasks.get(id).is_some_and(|t| {
                t.hold_for(HoldKind::Review, Some(&self.phase_ids[idx]))
                    .is_some()
            });
            if reviewed {
                self.leave_to_person(&ck);
            } else {
                self.hand_over(&ck);
            }
        }
    }

    /// The flight at `ck` waits for a person's decision on its owner, which
    /// this engine puts down: its next task waits for the decision in the
    /// store, the claim staying the person's.
    fn leave_to_person(&mut self, ck: &CacheKey) {
        let Some(f) = self.cache.flights.get_mut(ck) else {
            return;
        };
        let old = f.owner.clone();
        self.cache.owners.remove(&old);
        if f.waiters.is_empty() {
            self.cache.flights.remove(ck);
            return;
        }
        let next = f.waiters.remove(0);
        f.owner = next.clone();
        f.claimed = false;
        self.cache.owners.insert(next, ck.clone());
        if !f.looking {
            f.looking = true;
            f.elsewhere = true;
            self.recheck_soon();
        }
    }
}
