//! Time as the engine reads it, passed in so that tests can step it.
//!
//! What is recorded (event times, a retry's due time) is wall-clock time,
//! read from a [`Clock`]. Waiting is monotonic: a retry's timer counts its
//! delay on [`tokio::time::Instant`], and when it fires the retry is due
//! whatever the wall clock says by then, so a clock stepped back (NTP, a
//! suspended laptop, an operator) never strands a retry. After a restart,
//! the recorded due time is turned back into a wait from the new now.

use std::sync::Mutex;

use jiff::{SignedDuration, Timestamp};

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
    fn a_stepped_clock_moves_by_its_steps() {
        let clock = SteppedClock::new();
        clock.step(SignedDuration::from_hours(-1));
        let behind = Timestamp::now().duration_since(clock.now());
        assert!(behind >= SignedDuration::from_mins(59), "{behind:?}");
        clock.step(SignedDuration::from_hours(1));
        assert!(Timestamp::now().duration_since(clock.now()).abs() < SignedDuration::from_secs(5));
    }
}
