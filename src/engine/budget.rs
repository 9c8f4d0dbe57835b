//! Budgets: limits in dollars and tokens per task and per run, what a scope
//! has spent, an estimate for attempts still in flight, and the check made
//! before an attempt starts.
//!
//! Rules:
//! - A new attempt starts only while spent plus the in-flight estimate is
//!   below every limit in force. Attempts in flight always finish and what
//!   they used counts, so a scope can end above its limit by at most what
//!   was in flight when it was reached.
//! - Tokens count what agents reported, cache reads and writes included
//!   (`Usage::tokens`); an attempt with no usage counts none. Dollars are
//!   the attempts' costs, cache prices included.
//! - Dollars count known costs only. An attempt whose cost is unknown makes
//!   a dollar limit unknowable, so it counts as reached: the task waits until
//!   an operator raises the budget (even to the same figure), which accepts
//!   the attempts of unknown cost so far.

use serde::{Deserialize, Serialize};

use super::cost::{CostTotal, Usage, add_usd};
use super::task::Task;

pub use crate::spec::model::BudgetLimits as Limits;

/// What operators raised a scope's budget to. Limits only go up: the limit
/// in force is the larger of the configured one and the raised one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Raise {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// Attempts of unknown cost accepted by a raise.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub accept_unknown: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Raise {
    pub fn is_none(&self) -> bool {
        *self == Raise::default()
    }

    pub fn raise(&mut self, usd: Option<f64>, tokens: Option<u64>, accept_unknown: u32) {
        if let Some(u) = usd {
            self.usd = Some(self.usd.map_or(u, |old| old.max(u)));
        }
        if let Some(t) = tokens {
            self.tokens = Some(self.tokens.map_or(t, |old| old.max(t)));
        }
        self.accept_unknown = self.accept_unknown.max(accept_unknown);
    }

    /// The limits in force: each the larger of `configured` and the raise.
    pub fn over(&self, configured: Limits) -> Limits {
        Limits {
            usd: max_opt(configured.usd, self.usd, f64::max),
            tokens: max_opt(configured.tokens, self.tokens, u64::max),
        }
    }
}

fn max_opt<T>(a: Option<T>, b: Option<T>, max: fn(T, T) -> T) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(max(a, b)),
        (a, b) => a.or(b),
    }
}

/// What a scope has spent.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Spend {
    pub cost: CostTotal,
    pub tokens: u64,
}

impl Spend {
    /// A task's spending over all its attempts.
    pub fn of_task(task: &Task) -> Spend {
        Spend {
            cost: task.cost(),
            tokens: task.tokens(),
        }
    }

    /// Counts one finished attempt, as `PhaseRecord::cost` and `tokens` do.
    pub fn add_attempt(&mut self, usage: Option<&Usage>, cost_usd: Option<f64>) {
        if usage.is_some() || cost_usd.is_some() {
            self.cost.add(cost_usd);
        }
        self.tokens = self.tokens.saturating_add(usage.map_or(0, Usage::tokens));
    }

    pub fn merge(&mut self, other: Spend) {
        self.cost.merge(other.cost);
        self.tokens = self.tokens.saturating_add(other.tokens);
    }
}

/// What attempts in flight are expected to spend.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Estimate {
    pub usd: f64,
    pub tokens: u64,
    /// Attempts in flight with nothing to estimate them from yet.
    pub unestimated: u32,
}

impl Estimate {
    pub fn add(&mut self, other: Estimate) {
        self.usd = add_usd(self.usd, other.usd);
        self.tokens = self.tokens.saturating_add(other.tokens);
        self.unestimated = self.unestimated.saturating_add(other.unestimated);
    }
}

/// The mean spend of an agent's finished attempts, to estimate the ones in
/// flight.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Average {
    usd_sum: f64,
    usd_n: u32,
    tokens_sum: u64,
    tokens_n: u32,
}

impl Average {
    /// Counts a finished attempt that reported usage or a cost.
    pub fn add(&mut self, usage: Option<&Usage>, cost_usd: Option<f64>) {
        if let Some(c) = cost_usd {
            self.usd_sum = add_usd(self.usd_sum, c);
            self.usd_n = self.usd_n.saturating_add(1);
        }
        if let Some(u) = usage {
            self.tokens_sum = self.tokens_sum.saturating_add(u.tokens());
            self.tokens_n = self.tokens_n.saturating_add(1);
        }
    }

    /// The estimate for `n` attempts in flight.
    pub fn estimate(&self, n: u32) -> Estimate {
        if n == 0 {
            return Estimate::default();
        }
        let known = self.usd_n > 0 || self.tokens_n > 0;
        Estimate {
            usd: if self.usd_n > 0 {
                (self.usd_sum / f64::from(self.usd_n) * f64::from(n)).min(f64::MAX)
            } else {
                0.0
            },
            tokens: (self.tokens_sum / u64::from(self.tokens_n.max(1)))
                .saturating_mul(u64::from(n)),
            unestimated: if known { 0 } else { n },
        }
    }
}

/// Why a scope may start no new attempt, or `None` while it may.
pub fn reached(
    limits: Limits,
    spent: Spend,
    in_flight: Estimate,
    accepted_unknown: u32,
) -> Option<String> {
    if let Some(limit) = limits.usd {
        let unknown = spent.cost.unknown.saturating_sub(accepted_unknown);
        if unknown > 0 {
            return Some(format!(
                "${limit:.4} cannot be checked: {unknown} attempt(s) of unknown cost (add their model to the price table, or raise the budget to accept them)"
            ));
        }
        let projected = add_usd(spent.cost.usd, in_flight.usd);
        if projected >= limit {
            return Some(format!(
                "${limit:.4} reached: ${:.4} spent{}",
                spent.cost.usd,
                in_flight_usd(in_flight)
            ));
        }
    }
    if let Some(limit) = limits.tokens {
        let projected = spent.tokens.saturating_add(in_flight.tokens);
        if projected >= limit {
            let flying = if in_flight.tokens > 0 {
                format!(" + {} in flight", in_flight.tokens)
            } else {
                String::new()
            };
            return Some(format!(
                "{limit} tokens reached: {} used{flying}",
                spent.tokens
            ));
        }
    }
    None
}

fn in_flight_usd(e: Estimate) -> String {
    if e.usd > 0.0 {
        format!(" + ${:.4} in flight", e.usd)
    } else {
        String::new()
    }
}

/// A scope's spending beside its limits, for people: `$0.1200 (+$0.0300 in
/// flight) of $0.5000 · 1200 of 10000 tok`. Empty without limits.
pub fn describe(limits: Limits, spent: Spend, in_flight: Estimate) -> String {
    let mut parts = Vec::new();
    if let Some(limit) = limits.usd {
        let flying = if in_flight.usd > 0.0 {
            format!(" (+${:.4} in flight)", in_flight.usd)
        } else {
            String::new()
        };
        let unknown = if spent.cost.unknown > 0 {
            format!(" + unknown ({} unpriced)", spent.cost.unknown)
        } else {
            String::new()
        };
        parts.push(format!(
            "${:.4}{unknown}{flying} of ${limit:.4}",
            spent.cost.usd
        ));
    }
    if let Some(limit) = limits.tokens {
        let flying = if in_flight.tokens > 0 {
            format!(" (+{} in flight)", in_flight.tokens)
        } else {
            String::new()
        };
        parts.push(format!("{} tok{flying} of {limit}", spent.tokens));
    }
    parts.join(" · ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spend(usd: f64, unknown: u32, tokens: u64) -> Spend {
        Spend {
            cost: CostTotal { usd, unknown },
            tokens,
        }
    }

    #[test]
    fn a_limit_is_reached_at_the_figure_not_above_it() {
        let l = Limits {
            usd: Some(0.3),
            tokens: None,
        };
        assert!(reached(l, spend(0.2, 0, 0), Estimate::default(), 0).is_none());
        assert!(reached(l, spend(0.3, 0, 0), Estimate::default(), 0).is_some());
        let t = Limits {
            usd: None,
            tokens: Some(100),
        };
        assert!(reached(t, spend(0.0, 0, 99), Estimate::default(), 0).is_none());
        let why = reached(t, spend(0.0, 0, 100), Estimate::default(), 0).unwrap();
        assert_eq!(why, "100 tokens reached: 100 used");
    }

    #[test]
    fn attempts_in_flight_count_at_their_estimate() {
        let l = Limits {
            usd: None,
            tokens: Some(100),
        };
        let flying = Estimate {
            usd: 0.0,
            tokens: 40,
            unestimated: 0,
        };
        assert!(reached(l, spend(0.0, 0, 60), flying, 0).is_some());
        assert!(reached(l, spend(0.0, 0, 59), flying, 0).is_none());
    }

    #[test]
    fn unknown_cost_reaches_a_dollar_limit_until_accepted() {
        let l = Limits {
            usd: Some(10.0),
            tokens: None,
        };
        let why = reached(l, spend(0.01, 2, 0), Estimate::default(), 0).unwrap();
        assert!(why.contains("2 attempt(s) of unknown cost"), "{why}");
        assert!(reached(l, spend(0.01, 2, 0), Estimate::default(), 2).is_none());
        assert!(reached(l, spend(0.01, 3, 0), Estimate::default(), 2).is_some());
        let tokens_only = Limits {
            usd: None,
            tokens: Some(10),
        };
        assert!(reached(tokens_only, spend(0.0, 5, 1), Estimate::default(), 0).is_none());
    }

    #[test]
    fn raises_only_go_up_and_win_over_lower_configured_limits() {
        let mut r = Raise::default();
        r.raise(Some(2.0), None, 1);
        r.raise(Some(1.0), Some(500), 0);
        assert_eq!(r.usd, Some(2.0));
        assert_eq!(r.tokens, Some(500));
        assert_eq!(r.accept_unknown, 1);
        let configured = Limits {
            usd: Some(3.0),
            tokens: Some(100),
        };
        assert_eq!(
            r.over(configured),
            Limits {
                usd: Some(3.0),
                tokens: Some(500)
            }
        );
        assert_eq!(Raise::default().over(configured), configured);
    }

    #[test]
    fn averages_estimate_calls_in_flight() {
        let mut a = Average::default();
        assert_eq!(a.estimate(2).unestimated, 2);
        let u = Usage {
            model: None,
            input_tokens: 30,
            output_tokens: 70,
            ..Usage::default()
        };
        a.add(Some(&u), Some(0.5));
        a.add(Some(&u), None);
        let e = a.estimate(3);
        assert_eq!(e.tokens, 300);
        assert!((e.usd - 1.5).abs() < 1e-12);
        assert_eq!(e.unestimated, 0);
    }

    #[test]
    fn huge_counts_saturate_and_still_reach_the_limit() {
        let huge = Usage {
            input_tokens: u64::MAX,
            output_tokens: 4,
            ..Usage::default()
        };
        let mut s = Spend::default();
        s.add_attempt(Some(&huge), Some(f64::MAX));
        s.add_attempt(Some(&huge), Some(f64::MAX));
        assert_eq!(
            s.tokens,
            u64::MAX,
            "saturates, never wraps to a small figure"
        );
        assert!(s.cost.usd.is_finite());
        let mut merged = s;
        merged.merge(s);
        assert_eq!(merged.tokens, u64::MAX);
        let l = Limits {
            usd: Some(1.0),
            tokens: Some(1000),
        };
        assert!(reached(l, s, Estimate::default(), 0).is_some());
        let tokens_only = Limits {
            usd: None,
            tokens: Some(1000),
        };
        let why = reached(
            tokens_only,
            spend(0.0, 0, 3),
            Estimate {
                usd: 0.0,
                tokens: u64::MAX,
                unestimated: 0,
            },
            0,
        );
        assert!(why.is_some());
        let mut a = Average::default();
        a.add(Some(&huge), Some(f64::MAX));
        a.add(Some(&huge), Some(f64::MAX));
        let e = a.estimate(u32::MAX);
        assert_eq!(e.tokens, u64::MAX);
        assert!(e.usd.is_finite());
        let mut both = e;
        both.add(e);
        assert_eq!(both.tokens, u64::MAX);
        assert!(both.usd.is_finite());
    }

    #[test]
    fn description_shows_spent_in_flight_and_limit() {
        let l = Limits {
            usd: Some(0.5),
            tokens: Some(10_000),
        };
        let e = Estimate {
            usd: 0.03,
            tokens: 200,
            unestimated: 0,
        };
        assert_eq!(
            describe(l, spend(0.12, 1, 1200), e),
            "$0.1200 + unknown (1 unpriced) (+$0.0300 in flight) of $0.5000 · 1200 tok (+200 in flight) of 10000"
        );
        assert_eq!(describe(Limits::default(), spend(1.0, 0, 1), e), "");
    }
}
