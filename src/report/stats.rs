//! `baton stats`: figures per phase, then per agent and model within each
//! phase, and the projected cost to finish, from the store's kept figures
//! (never from reading tasks). The JSON form is `StatsReport` as it
//! serializes; its fields are documented in the README.

use serde::Serialize;

use super::projection::{Projection, per_phase, project};
use crate::engine::TaskState;
use crate::store::stats::{AttemptFigures, FailureCounts, RunStats};
use crate::store::{RunMeta, Totals};

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub p50: Option<u64>,
    pub p95: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_read: u64,
    pub cache_write: u64,
    pub total: u64,
}

/// The figures of a phase, or of one agent and model within it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Attempts that ended, however they ended.
    pub attempts: u64,
    /// Ended with the phase's output: each is a task completing the phase.
    pub succeeded: u64,
    pub blocked: u64,
    /// Failed attempts by class; every class is present.
    pub failed: FailureCounts,
    pub failed_total: u64,
    pub interrupted: u64,
    pub cancelled: u64,
    /// Of attempts that ended with a result (not interrupted or cancelled),
    /// within 6.25%.
    pub duration_ms: Percentiles,
    pub tokens: Tokens,
    /// Known dollars; a lower bound when `cost_unknown` is not zero.
    pub cost_usd: f64,
    pub cost_unknown: u64,
    /// Known dollars over attempts of known cost.
    pub usd_per_attempt: Option<f64>,
    /// Known dollars over `succeeded`; `None` when no attempt's cost is
    /// known (a lower bound when some are unknown).
    pub usd_per_completed: Option<f64>,
}

impl Figures {
    pub fn of(f: &AttemptFigures) -> Figures {
        let cost = f.cost_usd();
        let per = |n: u64| (n > 0).then(|| cost / n as f64);
        Figures {
            attempts: f.attempts,
            succeeded: f.succeeded,
            blocked: f.blocked,
            failed: f.failed,
            failed_total: f.failed.total(),
            interrupted: f.interrupted,
            cancelled: f.cancelled,
            duration_ms: Percentiles {
                p50: f.duration_ms.percentile(0.50),
                p95: f.duration_ms.percentile(0.95),
            },
            tokens: Tokens {
                input: f.input_tokens,
                output: f.output_tokens,
                cache_read: f.cache_read_tokens,
                cache_write: f.cache_write_tokens,
                total: f.tokens(),
            },
            cost_usd: cost,
            cost_unknown: f.cost_unknown,
            usd_per_attempt: per(f.priced()),
            usd_per_completed: if f.priced() > 0 {
                per(f.succeeded)
            } else {
                None
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgentStats {
    /// Empty when not known.
    pub agent: String,
    /// Empty when neither the attempt's start nor its usage named one.
    pub model: String,
    #[serde(flatten)]
    pub figures: Figures,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseStats {
    pub phase: String,
    /// Times tasks got past the phase: outputs, skips, failures for good.
    pub passes: u64,
    /// Tasks not final whose phase is not yet completed, skipped or failed.
    pub tasks_left: u64,
    #[serde(flatten)]
    pub figures: Figures,
    /// Most dollars first, then most attempts.
    pub by_agent: Vec<AgentStats>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TaskCounts {
    pub total: u64,
    pub completed: u64,
    pub failed: u64,
    pub cancelled: u64,
    pub not_done: u64,
}

/// The run's spending beside its budget.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Spend {
    /// Known dollars spent so far.
    pub spent_usd: f64,
    /// Attempts of unknown cost so far.
    pub cost_unknown: u64,
    /// The run's budget in force (configured, or raised); `None` without one.
    pub budget_usd: Option<f64>,
    /// Spent plus the projection's p50 and p95.
    pub p50_total_usd: f64,
    pub p95_total_usd: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsReport {
    pub pipeline: String,
    pub state_dir: String,
    /// Where the run is kept when not in the state folder: the database's
    /// address, without its password.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<String>,
    pub tasks: TaskCounts,
    /// In pipeline order.
    pub phases: Vec<PhaseStats>,
    pub projection: Projection,
    pub spend: Spend,
}

/// What the report is made from: the store's figures and totals, the
/// tasks left per phase ([`super::tasks_left`]) and the run's budget.
pub struct Inputs<'a> {
    pub meta: &'a RunMeta,
    pub state_dir: &'a str,
    pub stats: &'a RunStats,
    pub totals: &'a Totals,
    /// Per phase of `meta.phases`, in its order.
    pub tasks_left: &'a [u64],
    /// The run's budget in force, if any.
    pub budget_usd: Option<f64>,
}

/// Builds the report.
pub fn build(i: Inputs<'_>) -> StatsReport {
    let Inputs {
        meta,
        state_dir,
        stats,
        totals,
        tasks_left,
        budget_usd,
    } = i;
    let not_done: u64 = TaskState::ALL
        .iter()
        .filter(|s| !s.is_final())
        .map(|s| totals.count(*s))
        .sum();
    let projection = project(&meta.phases, stats, tasks_left, not_done);
    let phases = per_phase(&meta.phases, stats)
        .iter()
        .zip(&projection.phases)
        .map(|(total, p)| {
            let mut by_agent: Vec<AgentStats> = stats
                .attempts
                .iter()
                .filter(|f| f.phase == total.phase)
                .map(|f| AgentStats {
                    agent: f.agent.clone(),
                    model: f.model.clone(),
                    figures: Figures::of(f),
                })
                .collect();
            by_agent.sort_by(|a, b| {
                b.figures
                    .cost_usd
                    .total_cmp(&a.figures.cost_usd)
                    .then(b.figures.attempts.cmp(&a.figures.attempts))
                    .then_with(|| (&a.agent, &a.model).cmp(&(&b.agent, &b.model)))
            });
            PhaseStats {
                phase: total.phase.clone(),
                passes: p.passes,
                tasks_left: p.tasks_left,
                figures: Figures::of(total),
                by_agent,
            }
        })
        .collect();
    let cost = totals.cost();
    let spend = Spend {
        spent_usd: cost.usd,
        cost_unknown: u64::from(cost.unknown),
        budget_usd,
        p50_total_usd: cost.usd + projection.p50_usd,
        p95_total_usd: cost.usd + projection.p95_usd,
    };
    StatsReport {
        pipeline: meta.pipeline.clone(),
        state_dir: state_dir.to_string(),
        store: None,
        tasks: TaskCounts {
            total: totals.tasks,
            completed: totals.count(TaskState::Completed),
            failed: totals.count(TaskState::Failed),
            cancelled: totals.count(TaskState::Cancelled),
            not_done,
        },
        phases,
        projection,
        spend,
    }
}

/// The report of a run, read from its store: what `baton stats` prints and
/// the dashboard's figures view shows. `budget_usd` is the run's dollar
/// budget in force, if any.
pub async fn from_reader(
    reader: &dyn crate::store::RunReader,
    state_dir: &str,
    budget_usd: Option<f64>,
) -> Result<StatsReport, crate::store::StoreError> {
    let meta = reader.meta().await?.unwrap_or_default();
    let totals = reader.totals().await?;
    let figures = reader.run_stats().await?;
    let left = super::tasks_left::tasks_left(reader, &meta.phases, &totals).await?;
    Ok(build(Inputs {
        meta: &meta,
        state_dir,
        stats: &figures,
        totals: &totals,
        tasks_left: &left,
        budget_usd,
    }))
}
