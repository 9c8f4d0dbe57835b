//! Retries waiting out their delay. Each wait is counted on the monotonic
//! clock; a retry whose timer has fired is due whatever the wall clock says
//! by then, so a clock stepped back never strands it (see
//! [`crate::engine::clock`]).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use jiff::Timestamp;
use tokio::time::Instant;

use crate::engine::clock;
use crate::engine::event::TaskId;

#[derive(Debug, Default)]
pub(super) struct RetryTimers {
    /// When (monotonic, with a tie-breaker), and the task with the due time
    /// recorded for its retry.
    waiting: BTreeMap<(Instant, u64), (TaskId, Timestamp)>,
    next: u64,
    /// Per task, the latest due time of a retry whose timer has fired.
    released: HashMap<TaskId, Timestamp>,
}

impl RetryTimers {
    /// Wakes `id` after `wait`; `due` is the wall-clock time recorded for it.
    pub(super) fn add(&mut self, id: TaskId, wait: Duration, due: Timestamp) {
        self.next += 1;
        self.waiting
            .insert((clock::instant_after(wait), self.next), (id, due));
    }

    /// When the next timer fires, if any waits.
    pub(super) fn next_at(&self) -> Option<Instant> {
        self.waiting.first_key_value().map(|((at, _), _)| *at)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Takes the timers that have fired by `now`; their retries are due.
    pub(super) fn fire(&mut self, now: Instant) -> Vec<TaskId> {
        let mut fired = Vec::new();
        while let Some(entry) = self.waiting.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let (id, due) = entry.remove();
            let released = self.released.entry(id.clone()).or_insert(due);
            *released = (*released).max(due);
            fired.push(id);
        }
        fired
    }

    /// The time a task's retries are judged by: the wall clock `now`, or the
    /// due time of a retry whose timer has fired, whichever is later.
    pub(super) fn now_for(&self, id: &str, now: Timestamp) -> Timestamp {
        self.released.get(id).map_or(now, |r| now.max(*r))
    }

    /// A task left the engine: nothing of its retries is kept.
    pub(super) fn forget(&mut self, id: &str) {
        self.released.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fired_timer_makes_its_retry_due_whatever_the_wall_clock_says() {
        let mut timers = RetryTimers::default();
        let due: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        timers.add("t1".into(), Duration::from_millis(50), due);
        let at = timers.next_at().unwrap();
        assert!(timers.fire(at - Duration::from_millis(1)).is_empty());
        assert_eq!(timers.fire(at), ["t1"]);
        assert!(timers.is_empty());
        // The wall clock stepped back an hour: the retry is due all the same.
        let stepped_back = due - jiff::SignedDuration::from_hours(1);
        assert_eq!(timers.now_for("t1", stepped_back), due);
        assert_eq!(timers.now_for("t2", stepped_back), stepped_back);
        timers.forget("t1");
        assert_eq!(timers.now_for("t1", stepped_back), stepped_back);
    }

    #[test]
    fn a_wait_too_long_to_add_waits_far_off_instead_of_panicking() {
        let mut timers = RetryTimers::default();
        timers.add("t1".into(), Duration::MAX, Timestamp::MAX);
        let at = timers.next_at().unwrap();
        assert!(timers.fire(Instant::now()).is_empty());
        assert!(at > Instant::now() + Duration::from_secs(10 * 365 * 24 * 3600));
    }
}
