//! `baton list`: one line per task.

use std::fmt::Write;

use serde::Serialize;

use super::format::{symbol, thousands};
use crate::engine::TaskState;
use crate::engine::cost::CostTotal;
use crate::store::TaskRow;

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

pub fn row(task: &TaskRow) -> Row<'_> {
    Row {
        id: &task.id,
        state: task.state,
        phase: task.phase.as_deref(),
        phases_done: task.phases_done as usize,
        phases_total: task.phases_total as usize,
        attempts: task.attempts as usize,
        tokens: task.tokens,
        cost_usd: task.cost_usd,
        cost_unknown: task.cost_unknown,
        created_at: task.created_at.to_string(),
        updated_at: task.updated_at.to_string(),
    }
}

/// A task recorded as under way in a folder no engine holds: it was
/// interrupted, and resumes on the next `baton run`.
pub fn interrupted(state: TaskState, stopped: bool) -> bool {
    stopped && matches!(state, TaskState::Running | TaskState::Retrying)
}

/// The table of tasks. With `stopped` (no engine holds the folder), tasks
/// recorded as running or retrying show as interrupted: they resume on the
/// next `baton run`.
pub fn text<'a>(tasks: impl Iterator<Item = &'a TaskRow>, stopped: bool) -> String {
    let tasks: Vec<&TaskRow> = tasks.collect();
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
    let mut tokens: u64 = 0;
    for t in &tasks {
        let r = row(t);
        let cost = t.cost();
        total.merge(cost);
        tokens = tokens.saturating_add(r.tokens);
        let _ = writeln!(
            out,
            "{:<id_width$}  {} {:<15}  {:<16}  {:>6}  {:>8}  {:>10}  {:>8}",
            r.id,
            if interrupted(r.state, stopped) {
                "↯"
            } else {
                symbol(r.state)
            },
            if interrupted(r.state, stopped) {
                "interrupted"
            } else {
                r.state.as_str()
            },
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
