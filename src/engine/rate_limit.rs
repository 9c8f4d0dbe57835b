//! Requests and tokens per minute for one agent, across all tasks: a sliding
//! window over the calls' start times.
//!
//! - `rpm`: a call starts only while fewer than `rpm` calls started in the
//!   window ending now.
//! - `tpm`: each call's tokens (as the agent reported them once it finished,
//!   cache reads and writes included) count at the time it started. A call starts only while the tokens of the
//!   window, with each call still in flight counted at the agent's mean so
//!   far, are below `tpm`. Until one call has finished there is no mean, so
//!   calls start one at a time. A call can use more than the room left; the
//!   window then stays full until that call's start leaves it.
//!
//! The window is a minute in production; the engine's options can shorten
//! it (tests do), with `rpm` and `tpm` then meaning per window.

use std::collections::VecDeque;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

/// Whether a call may start now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Now,
    /// Not before this time.
    At(Timestamp),
    /// Not before a call in flight finishes.
    AfterCall,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    ticket: u64,
    at: Timestamp,
    /// `None` while the call is in flight.
    tokens: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct RateLimiter {
    rpm: Option<u32>,
    tpm: Option<u64>,
    window: SignedDuration,
    /// Calls started within the window, oldest first.
    log: VecDeque<Entry>,
    next_ticket: u64,
    in_flight: u32,
    /// The last start time handed out; start times never go backwards.
    last_start: Option<Timestamp>,
    tokens_sum: u64,
    tokens_n: u64,
}

impl RateLimiter {
    pub fn new(rpm: Option<u32>, tpm: Option<u64>, window: Duration) -> RateLimiter {
        RateLimiter {
            rpm,
            tpm,
            window: SignedDuration::try_from(window).unwrap_or(SignedDuration::MAX),
            log: VecDeque::new(),
            next_ticket: 0,
            in_flight: 0,
            last_start: None,
            tokens_sum: 0,
            tokens_n: 0,
        }
    }

    /// Starts allowed per window, if limited.
    pub fn rpm(&self) -> Option<u32> {
        self.rpm
    }

    /// Tokens allowed per window, if limited.
    pub fn tpm(&self) -> Option<u64> {
        self.tpm
    }

    /// No limit to keep.
    pub fn is_unlimited(&self) -> bool {
        self.rpm.is_none() && self.tpm.is_none()
    }

    /// `now`, or the last start time if the clock went back: the time to
    /// check and record a start at.
    pub fn clock(&self, now: Timestamp) -> Timestamp {
        self.last_start.map_or(now, |last| now.max(last))
    }

    fn prune(&mut self, now: Timestamp) {
        let edge = now.saturating_sub(self.window).unwrap_or(now);
        while self.log.front().is_some_and(|e| e.at <= edge) {
            self.log.pop_front();
        }
    }

    fn mean_tokens(&self) -> Option<u64> {
        (self.tokens_n > 0).then(|| self.tokens_sum / self.tokens_n)
    }

    /// Whether a call may start at `now` (from [`RateLimiter::clock`]).
    pub fn admit(&mut self, now: Timestamp) -> Admit {
        if self.is_unlimited() {
            return Admit::Now;
        }
        self.prune(now);
        let mut wait: Option<Timestamp> = None;
        if let Some(rpm) = self.rpm {
            let rpm = rpm as usize;
            if self.log.len() >= rpm {
                // The oldest starts must leave the window first.
                let leaving = self.log[self.log.len() - rpm];
                wait = Some(
                    leaving
                        .at
                        .saturating_add(self.window)
                        .unwrap_or(Timestamp::MAX),
                );
            }
        }
        if let Some(tpm) = self.tpm {
            let mean = self.mean_tokens();
            if mean.is_none() && self.in_flight > 0 {
                return Admit::AfterCall;
            }
            let weight = |e: &Entry| e.tokens.unwrap_or(mean.unwrap_or(0));
            let mut used: u64 = self.log.iter().map(weight).fold(0, u64::saturating_add);
            if used >= tpm {
                let mut at = None;
                for e in &self.log {
                    used = used.saturating_sub(weight(e));
                    if used < tpm {
                        at = Some(e.at.saturating_add(self.window).unwrap_or(Timestamp::MAX));
                        break;
                    }
                }
                match at {
                    Some(at) => wait = Some(wait.map_or(at, |w| w.max(at))),
                    None => return Admit::AfterCall,
                }
            }
        }
        match wait {
            Some(at) => Admit::At(at),
            None => Admit::Now,
        }
    }

    /// Records a call started at `at`; the ticket is handed back when it ends.
    pub fn started(&mut self, at: Timestamp) -> u64 {
        self.next_ticket += 1;
        self.in_flight += 1;
        self.last_start = Some(at);
        if !self.is_unlimited() {
            self.log.push_back(Entry {
                ticket: self.next_ticket,
                at,
                tokens: None,
            });
        }
        self.next_ticket
    }

    /// Records that a call ended, with the tokens it used (`None` when it
    /// reported no usage, or was cut short).
    pub fn finished(&mut self, ticket: u64, tokens: Option<u64>) {
        self.in_flight = self.in_flight.saturating_sub(1);
        if let Some(t) = tokens {
            self.tokens_sum = self.tokens_sum.saturating_add(t);
            self.tokens_n = self.tokens_n.saturating_add(1);
        }
        if let Some(e) = self.log.iter_mut().find(|e| e.ticket == ticket) {
            e.tokens = Some(tokens.unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millisecond(1_700_000_000_000 + ms).unwrap()
    }

    const W: Duration = Duration::from_secs(60);

    #[test]
    fn rpm_admits_until_the_window_is_full_then_names_when() {
        let mut r = RateLimiter::new(Some(2), None, W);
        assert_eq!(r.admit(t(0)), Admit::Now);
        r.started(t(0));
        assert_eq!(r.admit(t(10)), Admit::Now);
        r.started(t(10));
        assert_eq!(r.admit(t(20)), Admit::At(t(60_000)));
        // Exactly a window after the first start, it has left.
        assert_eq!(r.admit(t(60_000)), Admit::Now);
        r.started(t(60_000));
        assert_eq!(r.admit(t(60_001)), Admit::At(t(60_010)));
    }

    #[test]
    fn huge_token_counts_saturate_and_hold_the_window() {
        let mut r = RateLimiter::new(Some(1_000_000), Some(1000), W);
        let a = r.started(t(0));
        r.finished(a, Some(u64::MAX));
        let b = r.started(t(0));
        r.finished(b, Some(u64::MAX));
        assert_eq!(r.admit(t(1)), Admit::At(t(60_000)));
        let mut late = RateLimiter::new(Some(1), None, W);
        late.started(Timestamp::MAX);
        assert_eq!(late.admit(Timestamp::MAX), Admit::At(Timestamp::MAX));
    }

    #[test]
    fn tpm_waits_for_the_first_call_then_uses_the_mean() {
        let mut r = RateLimiter::new(None, Some(300), W);
        let a = r.started(t(0));
        assert_eq!(r.admit(t(1)), Admit::AfterCall);
        r.finished(a, Some(100));
        assert_eq!(r.admit(t(2)), Admit::Now);
        r.started(t(2));
        // 100 used + one in flight at the mean (100): room for one more.
        assert_eq!(r.admit(t(3)), Admit::Now);
        r.started(t(3));
        assert_eq!(r.admit(t(4)), Admit::At(t(60_000)));
    }

    #[test]
    fn a_big_call_keeps_the_window_full_until_its_start_leaves() {
        let mut r = RateLimiter::new(None, Some(100), W);
        let a = r.started(t(0));
        r.finished(a, Some(250));
        assert_eq!(r.admit(t(5)), Admit::At(t(60_000)));
        assert_eq!(r.admit(t(60_000)), Admit::Now);
    }

    #[test]
    fn both_limits_wait_for_the_later_time() {
        let mut r = RateLimiter::new(Some(1), Some(1000), W);
        let a = r.started(t(0));
        r.finished(a, Some(10));
        let b = r.started(t(30_000));
        r.finished(b, Some(2000));
        // rpm: the start at 30s must leave (90s); tpm: so must the big call.
        assert_eq!(r.admit(t(31_000)), Admit::At(t(90_000)));
    }

    #[test]
    fn the_clock_never_goes_back() {
        let mut r = RateLimiter::new(Some(5), None, W);
        r.started(t(100));
        assert_eq!(r.clock(t(50)), t(100));
        assert_eq!(r.clock(t(150)), t(150));
    }

    #[test]
    fn no_limits_admit_everything_and_keep_no_log() {
        let mut r = RateLimiter::new(None, None, W);
        for i in 0..1000 {
            assert_eq!(r.admit(t(i)), Admit::Now);
            r.started(t(i));
        }
        assert!(r.log.is_empty());
    }
}
