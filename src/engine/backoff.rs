//! How long to wait before the next attempt.

use std::time::Duration;

use crate::spec::model::{Backoff, RetryPolicy};

/// The wait before retry number `retry` (1 for the first retry), with
/// `unit` a uniform draw in [0, 1) that places the jitter. Never more than
/// `max_delay`.
pub fn delay(policy: &RetryPolicy, retry: u32, unit: f64) -> Duration {
    let base = match policy.backoff {
        Backoff::Fixed => policy.initial_delay,
        Backoff::Exponential => {
            let factor = 2f64.powi(retry.saturating_sub(1).min(62) as i32);
            policy.initial_delay.mul_f64(factor.min(1e12))
        }
    }
    .min(policy.max_delay);
    let jitter = policy.jitter.clamp(0.0, 1.0);
    // Spread the wait over [base * (1 - jitter), base * (1 + jitter)].
    let scaled = base.as_secs_f64() * (1.0 - jitter + 2.0 * jitter * unit.clamp(0.0, 1.0));
    Duration::from_secs_f64(scaled.max(0.0)).min(policy.max_delay)
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
