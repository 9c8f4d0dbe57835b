//! Figures per phase, agent and model, as the store keeps them: counted by
//! the writer from each attempt's events in the same transaction as the
//! events (see `stats_fold`), never recounted by reading tasks.

use serde::Serialize;

use super::histogram::Histogram;
use super::model::nano;
use crate::engine::cost::Usage;
use crate::engine::event::{AttemptOutcome, ErrorClass};

/// Failed attempts, by what kind of failure they had.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FailureCounts([u64; ErrorClass::ALL.len()]);

fn class_index(class: ErrorClass) -> usize {
    ErrorClass::ALL
        .iter()
        .position(|c| *c == class)
        .unwrap_or(0)
}

impl FailureCounts {
    pub fn get(&self, class: ErrorClass) -> u64 {
        self.0[class_index(class)]
    }

    pub fn set(&mut self, class: ErrorClass, n: u64) {
        self.0[class_index(class)] = n;
    }

    fn add(&mut self, class: ErrorClass) {
        self.0[class_index(class)] += 1;
    }

    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn merge(&mut self, other: &FailureCounts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a += b;
        }
    }

    /// Each class with its count, in `ErrorClass::ALL` order.
    pub fn iter(&self) -> impl Iterator<Item = (ErrorClass, u64)> + '_ {
        ErrorClass::ALL.iter().copied().zip(self.0)
    }
}

/// Every class, zeros included, as `{"retryable": 2, "fatal": 0, ...}`.
impl Serialize for FailureCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter().map(|(c, n)| (c.as_str(), n)))
    }
}

/// What the attempts of one phase run by one agent on one model came to.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct AttemptFigures {
    pub phase: String,
    /// The agent the attempt started with; empty when not known.
    pub agent: String,
    /// The model the attempt started with, else the one its usage names;
    /// empty when neither says.
    pub model: String,
    /// Attempts that ended, however they ended.
    pub attempts: u64,
    /// Ended with the phase's output (succeeded, or asked for a review).
    pub succeeded: u64,
    /// Ended with the agent saying it is blocked.
    pub blocked: u64,
    pub failed: FailureCounts,
    /// Lost to a restart of the engine (they run again).
    pub interrupted: u64,
    /// Cut short by the task's cancellation.
    pub cancelled: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cache_read_tokens: u64,
    pub cache_write_tokens: u64,
    /// Known dollars, in nano-dollars so that sums are exact.
    pub cost_nano: i64,
    /// The sum of each priced attempt's dollars squared: with `cost_nano`,
    /// the spread of the cost of one attempt.
    pub cost_sq: f64,
    /// Attempts that reported usage but whose cost is not known.
    pub cost_unknown: u64,
    /// Durations in milliseconds of the attempts that ended with a result
    /// (not interrupted, not cancelled).
    pub duration_ms: Histogram,
}

impl AttemptFigures {
    pub fn new(phase: &str, agent: &str, model: &str) -> AttemptFigures {
        AttemptFigures {
            phase: phase.to_string(),
            agent: agent.to_string(),
            model: model.to_string(),
            ..AttemptFigures::default()
        }
    }

    /// Counts one attempt that ended.
    pub fn count(
        &mut self,
        outcome: &AttemptOutcome,
        usage: Option<&Usage>,
        cost_usd: Option<f64>,
        duration_ms: u64,
    ) {
        self.attempts += 1;
        match outcome {
            AttemptOutcome::Succeeded
            | AttemptOutcome::ReviewRequested { .. }
            | AttemptOutcome::SentBack { .. } => self.succeeded += 1,
            AttemptOutcome::Blocked { .. } => self.blocked += 1,
            AttemptOutcome::Failed { class, .. } => self.failed.add(*class),
            AttemptOutcome::Interrupted => self.interrupted += 1,
            AttemptOutcome::Cancelled => self.cancelled += 1,
        }
        if !matches!(
            outcome,
            AttemptOutcome::Interrupted | AttemptOutcome::Cancelled
        ) {
            self.duration_ms.add(duration_ms);
        }
        if let Some(u) = usage {
            self.input_tokens = self.input_tokens.saturating_add(u.input_tokens);
            self.output_tokens = self.output_tokens.saturating_add(u.output_tokens);
            self.cache_read_tokens = self.cache_read_tokens.saturating_add(u.cache_read_tokens);
            self.cache_write_tokens = self.cache_write_tokens.saturating_add(u.cache_write_tokens);
        }
        // As task costs count: an attempt with neither usage nor a cost
        // used nothing known; one with usage and no price is unknown.
        if usage.is_some() || cost_usd.is_some() {
            match cost_usd {
                Some(c) => {
                    self.cost_nano += nano(c);
                    self.cost_sq += c * c;
                }
                None => self.cost_unknown += 1,
            }
        }
    }

    /// Adds another row's figures (of the same phase, or not).
    pub fn merge(&mut self, other: &AttemptFigures) {
        self.attempts += other.attempts;
        self.succeeded += other.succeeded;
        self.blocked += other.blocked;
        self.failed.merge(&other.failed);
        self.interrupted += other.interrupted;
        self.cancelled += other.cancelled;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_tokens += other.cache_read_tokens;
        self.cache_write_tokens += other.cache_write_tokens;
        self.cost_nano += other.cost_nano;
        self.cost_sq += other.cost_sq;
        self.cost_unknown += other.cost_unknown;
        self.duration_ms.merge(&other.duration_ms);
    }

    /// Every token, as `Usage::tokens` counts them.
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens + self.cache_read_tokens + self.cache_write_tokens
    }

    pub fn cost_usd(&self) -> f64 {
        self.cost_nano as f64 / 1e9
    }

    /// Attempts whose cost is known (zero for those that reported nothing).
    pub fn priced(&self) -> u64 {
        self.attempts.saturating_sub(self.cost_unknown)
    }
}

/// How often a phase ended other than by an attempt's output: skipped
/// (its condition did not hold, or a person skipped its blocker) or failed
/// for good (retries spent, a fatal error, or a person failed its blocker).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PhaseEnds {
    pub phase: String,
    pub skipped: u64,
    pub failed: u64,
}

/// The run's figures per phase, agent and model, and how phases ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunStats {
    /// One row per phase, agent and model seen.
    pub attempts: Vec<AttemptFigures>,
    /// One row per phase that was skipped or failed.
    pub ends: Vec<PhaseEnds>,
}

impl RunStats {
    /// The row of `(phase, agent, model)`, made when first seen.
    pub(crate) fn row_of(&mut self, phase: &str, agent: &str, model: &str) -> usize {
        match self
            .attempts
            .iter()
            .position(|f| f.phase == phase && f.agent == agent && f.model == model)
        {
            Some(i) => i,
            None => {
                self.attempts.push(AttemptFigures::new(phase, agent, model));
                self.attempts.len() - 1
            }
        }
    }

    /// The ends of `phase`, made when first seen.
    pub(crate) fn ends_of(&mut self, phase: &str) -> usize {
        match self.ends.iter().position(|e| e.phase == phase) {
            Some(i) => i,
            None => {
                self.ends.push(PhaseEnds {
                    phase: phase.to_string(),
                    ..PhaseEnds::default()
                });
                self.ends.len() - 1
            }
        }
    }

    /// Times tasks got past `phase`: its attempts' outputs, skips and
    /// failures for good (a task sent back and done again counts again).
    pub fn passes(&self, phase: &str) -> u64 {
        let outputs: u64 = self
            .attempts
            .iter()
            .filter(|f| f.phase == phase)
            .map(|f| f.succeeded)
            .sum();
        let ends = self
            .ends
            .iter()
            .find(|e| e.phase == phase)
            .map_or(0, |e| e.skipped + e.failed);
        outputs + ends
    }
}
