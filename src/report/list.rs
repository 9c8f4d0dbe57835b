//! `baton list`: one line per task.

use std::fmt::Write;

use serde::Serialize;

use super::format::{symbol, thousands};
use crate::engine::cost::CostTotal;
use crate::engine::{Task, TaskState};

/// A task as one row, for text and for `--json`.
#[derive(Debug, Serialize)]
pub struct Row<'a> {
    pub id: &'a str,
    pub state: TaskState,
    pub phase: Option<&'a str>,
    pub phases_done: usize,
    pub phases_total: usize,
    pub attempts: usize,
    pub tokens: u64,
    /// Known dollars; see `cost_unknown`.
    pub cost_usd: f64,
    /// Attempts whose cost is unknown.
    pub cost_unknown: u32,
    pub created_at: String,
    pub updated_at: String,
}

pub fn row(task: &Task) -> Row<'_> {
    let cost = task.cost();
    Row {
        id: &task.id,
        state: task.state,
        phase: task.current_phase(),
        phases_done: task.phases_settled(),
        phases_total: task.phases.len(),
        attempts: task.attempts(),
        tokens: task.tokens(),
        cost_usd: cost.usd,
        cost_unknown: cost.unknown,
        created_at: task.created_at.to_string(),
        updated_at: task.updated_at.to_string(),
    }
}

pub fn text<'a>(tasks: impl Iterator<Item = &'a Task>) -> String {
    let tasks: Vec<&Task> = tasks.collect();
    if tasks.is_empty() {
        return "no tasks\n".to_string();
    }
    let id_width = tasks.iter().map(|t| t.id.len()).max().unwrap_or(2).max(2);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<id_width$}  {:<17}  {:<16}  {:>6}  {:>8}  {:>10}  {:>8}",
        "ID", "STATE", "PHASE", "DONE", "ATTEMPTS", "TOKENS", "COST"
    );
    let mut total = CostTotal::default();
    let mut tokens = 0;
    for t in &tasks {
        let r = row(t);
        let cost = t.cost();
        total.merge(cost);
        tokens += r.tokens;
        let _ = writeln!(
            out,
            "{:<id_width$}  {} {:<15}  {:<16}  {:>6}  {:>8}  {:>10}  {:>8}",
            r.id,
            symbol(r.state),
            r.state.as_str(),
            r.phase.unwrap_or("-"),
            format!("{}/{}", r.phases_done, r.phases_total),
            r.attempts,
            thousands(r.tokens),
            short_cost(cost),
        );
    }
    let _ = writeln!(
        out,
        "{} task(s), {} tokens, {}",
        tasks.len(),
        thousands(tokens),
        total
    );
    out
}

/// Dollars in a table cell; "?" marks a sum that misses unknown costs.
pub fn short_cost(cost: CostTotal) -> String {
    match (cost.unknown, cost.usd) {
        (0, usd) => format!("${usd:.4}"),
        (_, 0.0) => "?".to_string(),
        (_, usd) => format!("${usd:.4}+?"),
    }
}
