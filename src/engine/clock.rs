//! Time as the engine reads it, passed in so that tests can step it.
//!
//! What is recorded (event times, a retry's due time) is wall-clock time,
//! read from a [`Clock`]. Waiting is monotonic: a retry's timer counts its
//! delay on [`tokio::time::Instant`], and when it fires the retry is due
//! whatever the wall clock says by then, so a clock stepped back (NTP, a
//! suspended laptop, an operator) never strands a retry. After a restart,
//! the recorded due time is turned back into a wait from the new now.

use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio::time::Instant;

/// How far off a monotonic deadline is set when the wait asked for is too
/// long to add: a century, which tokio's timers take as "not in this run".
const FAR_OFF: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `now + wait`, or the clock's last instant (the end of the year 9999)
/// when that lies past it. Pipelines cap every delay at 30 days; this keeps
/// a wait from anywhere else (a stored due time, a server's `retry-after`)
/// from ending the engine.
pub fn after(now: Timestamp, wait: Duration) -> Timestamp {
    now.checked_add(wait).unwrap_or(Timestamp::MAX)
}

/// The monotonic instant `wait` from now, or a century off when `wait` is
/// too long to add.
pub fn instant_after(wait: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(wait.min(FAR_OFF))
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

/// The wait from `now` until `due`: zero when `due` has passed.
pub fn until(now: Timestamp, due: Timestamp) -> Duration {
    if due > now {
        due.duration_since(now).unsigned_abs()
    } else {
        Duration::ZERO
    }
}

/// Milliseconds of `d`, as events record them; saturates at `u64::MAX`.
pub fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The wall clock.
pub trait Clock: std::fmt::Debug + Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// The system's clock moved by an offset a test can change at any moment:
/// a clock stepped back or forward while the engine runs.
#[derive(Debug, Default)]
pub struct SteppedClock {
    offset: Mutex<SignedDuration>,
}

impl SteppedClock {
    pub fn new() -> SteppedClock {
        SteppedClock::default()
    }

    /// Moves the clock by `by` (negative: back).
    pub fn step(&self, by: SignedDuration) {
        let mut offset = self.offset.lock().unwrap_or_else(|e| e.into_inner());
        *offset = offset.saturating_add(by);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> Timestamp {
        let offset = *self.offset.lock().unwrap_or_else(|e| e.into_inner());
        Timestamp::now()
            .saturating_add(offset)
            .unwrap_or(Timestamp::now())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_too_long_for_the_clock_saturate() {
        let now = Timestamp::now();
        assert_eq!(after(now, Duration::MAX), Timestamp::MAX);
        assert_eq!(
            after(now, Duration::from_secs(360_000_000_000)),
            Timestamp::MAX,
            "100000000h"
        );
        assert_eq!(
            after(Timestamp::MAX, Duration::from_millis(1)),
            Timestamp::MAX
        );
        assert_eq!(
            after(now, Duration::from_secs(2)),
            now + SignedDuration::from_secs(2)
        );
        let soon = Instant::now();
        let far = instant_after(Duration::MAX);
        assert!(far > soon + Duration::from_secs(50 * 365 * 24 * 3600));
        assert!(instant_after(Duration::from_millis(5)) < soon + Duration::from_secs(60));
        assert!(!until(now, Timestamp::MAX).is_zero());
        assert_eq!(until(Timestamp::MAX, now), Duration::ZERO);
        assert_eq!(millis(Duration::MAX), u64::MAX);
        assert_eq!(millis(Duration::from_secs(2)), 2000);
    }

    #[test]
    fn a_stepped_clock_moves_by_its_steps() {
        let clock = SteppedClock::new();
        clock.step(SignedDuration::from_hours(-1));
        let behind = Timestamp::now().duration_since(clock.now());
        assert!(behind >= SignedDuration::from_mins(59), "{behind:?}");
        clock.step(SignedDuration::from_hours(1));
        assert!(Timestamp::now().duration_since(clock.now()).abs() < SignedDuration::from_secs(5));
    }
}
