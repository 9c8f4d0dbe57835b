//! The projected cost to finish the tasks not yet done, per phase and in
//! all, from what the finished attempts cost.
//!
//! For each phase, in pipeline order:
//! - tasks left: tasks not final whose phase is not settled (completed,
//!   skipped or failed): every pending task, and those under way or
//!   waiting for a person whose phase is still to run ([`super::tasks_left`]);
//! - attempts per pass: the phase's attempts over the times tasks got past
//!   it (an output, a skip, a failure for good), so that retries and skips
//!   are both counted in;
//! - attempts expected: tasks left × attempts per pass;
//! - the cost of those attempts: each costs like a random attempt of the
//!   phase that ended with a known cost (mean and spread from the phase's
//!   dollars and dollars squared), and their number varies like a Poisson
//!   count. The sum of many such is close to normal: p50 is its mean and
//!   p95 is the mean plus 1.645 standard deviations, the variance being
//!   attempts expected × the mean of the squared cost of one attempt.
//!
//! Phases add up the same way (means and variances add). A phase with tasks
//! left but no task past it, or no attempt of known cost, has no basis:
//! it is left out and the total says it is incomplete. Tasks that will fail
//! before a later phase are counted as running it: the projection errs high.

use serde::Serialize;

use crate::store::stats::{AttemptFigures, RunStats};

/// The 95th percentile of the standard normal distribution.
pub const Z95: f64 = 1.644_853_626_951_472_2;

/// The projection of one phase.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseProjection {
    pub phase: String,
    /// Tasks not final that have not settled this phase.
    pub tasks_left: u64,
    /// Times tasks got past this phase: outputs, skips, failures for good.
    pub passes: u64,
    /// Attempts per pass; `None` before the first pass.
    pub attempts_per_pass: Option<f64>,
    /// Attempts the tasks left are expected to make here.
    pub attempts_expected: Option<f64>,
    /// Mean known dollars of one attempt; `None` without a priced attempt.
    pub usd_per_attempt: Option<f64>,
    pub p50_usd: Option<f64>,
    pub p95_usd: Option<f64>,
    /// Why there is no figure, when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_basis: Option<String>,
}

/// What finishing the run is expected to cost.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Projection {
    /// Tasks not final: pending, running, retrying, waiting for a person.
    pub tasks_not_done: u64,
    pub phases: Vec<PhaseProjection>,
    /// Dollars still to spend, half the time at most this.
    pub p50_usd: f64,
    /// Dollars still to spend, 19 times in 20 at most this.
    pub p95_usd: f64,
    /// False when a phase with tasks left had no basis: the figures leave
    /// it out and are lower bounds.
    pub complete: bool,
    /// Attempts of unknown cost so far, left out of the means.
    pub cost_unknown: u64,
}

/// Every phase's figures added up, in `phases` order (then any phase the
/// figures name that `phases` lacks).
pub fn per_phase(phases: &[String], stats: &RunStats) -> Vec<AttemptFigures> {
    let mut out: Vec<AttemptFigures> = phases
        .iter()
        .map(|p| AttemptFigures::new(p, "", ""))
        .collect();
    for f in &stats.attempts {
        let i = match out.iter().position(|p| p.phase == f.phase) {
            Some(i) => i,
            None => {
                out.push(AttemptFigures::new(&f.phase, "", ""));
                out.len() - 1
            }
        };
        out[i].merge(f);
    }
    out
}

fn project_phase(f: &AttemptFigures, left: u64, stats: &RunStats) -> (PhaseProjection, f64, f64) {
    let passes = stats.passes(&f.phase);
    let priced = f.priced();
    let per_pass = (passes > 0).then(|| f.attempts as f64 / passes as f64);
    let per_attempt = (priced > 0).then(|| f.cost_usd() / priced as f64);
    let mut p = PhaseProjection {
        phase: f.phase.clone(),
        tasks_left: left,
        passes,
        attempts_per_pass: per_pass,
        attempts_expected: per_pass.map(|r| r * left as f64),
        usd_per_attempt: per_attempt,
        p50_usd: None,
        p95_usd: None,
        no_basis: None,
    };
    if left == 0 {
        p.attempts_expected = Some(0.0);
        (p.p50_usd, p.p95_usd) = (Some(0.0), Some(0.0));
        return (p, 0.0, 0.0);
    }
    let (Some(n), Some(mean_one)) = (p.attempts_expected, per_attempt) else {
        p.no_basis = Some(if passes == 0 {
            "no task is past this phase yet".to_string()
        } else {
            "the cost of its attempts is unknown (a model with no price)".to_string()
        });
        return (p, 0.0, 0.0);
    };
    let square_one = f.cost_sq / priced as f64;
    let (mean, var) = (n * mean_one, n * square_one);
    p.p50_usd = Some(mean);
    p.p95_usd = Some(mean + Z95 * var.sqrt());
    (p, mean, var)
}

/// The projection of every phase of `phases` (pipeline order) and in all;
/// `left[i]` is the tasks left in phase `i` (missing: none).
pub fn project(phases: &[String], stats: &RunStats, left: &[u64], not_done: u64) -> Projection {
    let mut out = Projection {
        tasks_not_done: not_done,
        phases: Vec::new(),
        p50_usd: 0.0,
        p95_usd: 0.0,
        complete: true,
        cost_unknown: 0,
    };
    let (mut mean, mut var) = (0.0, 0.0);
    for (pos, f) in per_phase(phases, stats).iter().enumerate() {
        let (p, m, v) = project_phase(f, left.get(pos).copied().unwrap_or(0), stats);
        out.complete &= p.no_basis.is_none();
        out.cost_unknown += f.cost_unknown;
        mean += m;
        var += v;
        out.phases.push(p);
    }
    out.p50_usd = mean;
    out.p95_usd = mean + Z95 * var.sqrt();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::AttemptOutcome;
    use crate::store::stats::PhaseEnds;

    fn phases() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    /// `ok` attempts with output and `failed` without, of `phase`, at `usd` each.
    fn attempts(phase: &str, ok: u64, failed: u64, usd: f64) -> AttemptFigures {
        let mut f = AttemptFigures::new(phase, "x", "m");
        let usage = crate::engine::cost::Usage::default();
        for i in 0..ok + failed {
            let outcome = if i < ok {
                AttemptOutcome::Succeeded
            } else {
                AttemptOutcome::Failed {
                    class: crate::engine::event::ErrorClass::Retryable,
                    message: "x".into(),
                }
            };
            f.count(&outcome, Some(&usage), Some(usd), 10);
        }
        f
    }

    #[test]
    fn equal_costs_project_tasks_left_times_the_mean() {
        let stats = RunStats {
            attempts: vec![attempts("a", 6, 0, 0.5), attempts("b", 4, 0, 1.0)],
            ends: Vec::new(),
        };
        let p = project(&phases(), &stats, &[4, 6], 6);
        assert_eq!(p.phases[0].attempts_per_pass, Some(1.0));
        let want = 4.0 * 0.5 + 6.0 * 1.0;
        assert!((p.p50_usd - want).abs() < 1e-9, "{}", p.p50_usd);
        assert!(p.p95_usd > p.p50_usd, "the count of attempts varies");
        assert!(p.complete);
    }

    #[test]
    fn retries_raise_and_skips_lower_the_attempts_per_pass() {
        // 6 attempts for 3 outputs: 2 each; then 3 skips: 1 each.
        let mut stats = RunStats {
            attempts: vec![attempts("a", 3, 3, 0.1)],
            ends: Vec::new(),
        };
        let p = project(&["a".to_string()], &stats, &[1], 1);
        assert_eq!(p.phases[0].attempts_expected, Some(2.0));
        assert!((p.p50_usd - 0.2).abs() < 1e-9);
        stats.ends.push(PhaseEnds {
            phase: "a".into(),
            skipped: 3,
            failed: 0,
        });
        let p = project(&["a".to_string()], &stats, &[1], 1);
        assert_eq!(p.phases[0].attempts_expected, Some(1.0));
    }

    #[test]
    fn a_phase_no_task_has_passed_has_no_basis() {
        let stats = RunStats {
            attempts: vec![attempts("a", 2, 0, 0.1)],
            ends: Vec::new(),
        };
        let p = project(&phases(), &stats, &[0, 2], 2);
        assert_eq!(p.phases[0].p50_usd, Some(0.0), "nothing left in a");
        assert_eq!(p.phases[1].p50_usd, None);
        assert!(p.phases[1].no_basis.as_deref().unwrap().contains("no task"));
        assert!(!p.complete);
    }

    #[test]
    fn the_spread_shrinks_relative_to_the_mean_as_tasks_grow() {
        let mut a = AttemptFigures::new("a", "x", "m");
        let usage = crate::engine::cost::Usage::default();
        for usd in [0.1, 0.3, 0.1, 0.5, 0.2, 0.1, 0.9, 0.2] {
            a.count(&AttemptOutcome::Succeeded, Some(&usage), Some(usd), 10);
        }
        let stats = RunStats {
            attempts: vec![a],
            ends: Vec::new(),
        };
        let rel = |left: u64| {
            let p = project(&["a".to_string()], &stats, &[left], left);
            (p.p95_usd - p.p50_usd) / p.p50_usd
        };
        assert!(rel(10_000) < rel(10) / 10.0);
    }
}
