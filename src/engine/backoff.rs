//! How long to wait before the next attempt.

use std::time::Duration;

use crate::spec::model::{Backoff, RetryPolicy};

/// The wait before retry number `retry` (1 for the first retry), with
/// `unit` a uniform draw in [0, 1) that places the jitter. Never more than
/// `max_delay`. Worked in floating seconds, clamped before it becomes a
/// `Duration` again, so that no policy (however long its delays) panics.
pub fn delay(policy: &RetryPolicy, retry: u32, unit: f64) -> Duration {
    let max = policy.max_delay.as_secs_f64();
    let initial = policy.initial_delay.as_secs_f64();
    let base = match policy.backoff {
        Backoff::Fixed => initial,
        Backoff::Exponential => initial * 2f64.powi(retry.saturating_sub(1).min(62) as i32),
    }
    .min(max);
    let jitter = policy.jitter.clamp(0.0, 1.0);
    // Spread the wait over [base * (1 - jitter), base * (1 + jitter)].
    let scaled = base * (1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0));
    Duration::try_from_secs_f64(scaled.clamp(0.0, max))
        .unwrap_or(policy.max_delay)
        .min(policy.max_delay)
}

/// A small random source for jitter, seeded from the clock.
pub struct Jitter(u64);

impl Jitter {
    pub fn from_clock() -> Jitter {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0x1234_5678);
        Jitter(nanos | 1)
    }

    /// Uniform in [0, 1) (xorshift64*).
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff, jitter: f64) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 10,
            backoff,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter,
        }
    }

    #[test]
    fn exponential_doubles_then_caps() {
        let p = policy(Backoff::Exponential, 0.0);
        let secs: Vec<u64> = (1..=8).map(|n| delay(&p, n, 0.5).as_secs()).collect();
        assert_eq!(secs, vec![1, 2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(delay(&p, 1000, 0.5), Duration::from_secs(60));
    }

    #[test]
    fn delays_too_long_for_any_clock_do_not_panic() {
        for (initial, max) in [
            (
                Duration::from_secs(360_000_000_000),
                Duration::from_secs(720_000_000_000),
            ),
            (Duration::MAX, Duration::MAX),
            (Duration::from_secs(1), Duration::MAX),
        ] {
            for backoff in [Backoff::Exponential, Backoff::Fixed] {
                let p = RetryPolicy {
                    max_attempts: u32::MAX,
                    backoff,
                    initial_delay: initial,
                    max_delay: max,
                    jitter: 1.0,
                };
                for retry in [0, 1, 2, 63, 64, 1000, u32::MAX] {
                    for unit in [0.0, 0.5, 0.999, 1.0, f64::NAN] {
                        assert!(delay(&p, retry, unit) <= max);
                    }
                }
            }
        }
        let odd = RetryPolicy {
            jitter: f64::NAN,
            ..policy(Backoff::Exponential, 0.0)
        };
        assert!(delay(&odd, 3, 0.5) <= Duration::from_secs(60));
    }

    #[test]
    fn fixed_stays_fixed() {
        let p = policy(Backoff::Fixed, 0.0);
        assert!((1..=5).all(|n| delay(&p, n, 0.3) == Duration::from_secs(1)));
    }

    #[test]
    fn jitter_spreads_around_the_base_and_never_passes_the_cap() {
        let p = policy(Backoff::Exponential, 0.5);
        assert_eq!(delay(&p, 3, 0.0), Duration::from_secs(2));
        assert_eq!(delay(&p, 3, 0.5), Duration::from_secs(4));
        assert!(delay(&p, 3, 0.999) < Duration::from_secs(6));
        assert_eq!(delay(&p, 7, 0.999), Duration::from_secs(60));
        let mut j = Jitter::from_clock();
        for _ in 0..1000 {
            let u = j.unit();
            assert!((0.0..1.0).contains(&u));
            let d = delay(&p, 9, u);
            assert!(d <= Duration::from_secs(60) && d >= Duration::from_secs(30));
        }
    }
}
