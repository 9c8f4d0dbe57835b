//! The `attempt_stats` and `phase_ends` tables: read whole (they have a
//! row per phase, agent and model, and one per phase), written by the
//! writer for what changed in each commit, and filled once from the events
//! of a database made before them.

use std::sync::LazyLock;

use rusqlite::types::Value;
use rusqlite::{Connection, Row, Transaction, params, params_from_iter};

use super::read::json_err;
use crate::engine::event::{ErrorClass, EventKind};
use crate::engine::task::Task;
use crate::store::histogram::Histogram;
use crate::store::model::TaskNo;
use crate::store::stats::{AttemptFigures, FailureCounts, PhaseEnds, RunStats};
use crate::store::stats_fold::StatsFold;

/// The columns of `attempt_stats`, in the order read and written; the
/// failures have one column per class, `failed_<class>`.
static COLUMNS: LazyLock<String> = LazyLock::new(|| {
    let failed: Vec<String> = ErrorClass::ALL
        .iter()
        .map(|c| format!("failed_{}", c.as_str()))
        .collect();
    format!(
        "phase, agent, model, attempts, succeeded, blocked, {}, interrupted, cancelled, \
         input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_nano, \
         cost_sq, cost_unknown, duration_ms",
        failed.join(", ")
    )
});

/// Columns before the failures, and after them.
const BEFORE_FAILED: usize = 6;
const AFTER_FAILED: usize = 10;

fn int(n: u64) -> Value {
    Value::Integer(n.min(i64::MAX as u64) as i64)
}

fn values(f: &AttemptFigures) -> rusqlite::Result<Vec<Value>> {
    let mut v = vec![
        Value::Text(f.phase.clone()),
        Value::Text(f.agent.clone()),
        Value::Text(f.model.clone()),
        int(f.attempts),
        int(f.succeeded),
        int(f.blocked),
    ];
    v.extend(f.failed.iter().map(|(_, n)| int(n)));
    v.extend([
        int(f.interrupted),
        int(f.cancelled),
        int(f.input_tokens),
        int(f.output_tokens),
        int(f.cache_read_tokens),
        int(f.cache_write_tokens),
        Value::Integer(f.cost_nano),
        Value::Real(f.cost_sq),
        int(f.cost_unknown),
        Value::Text(serde_json::to_string(&f.duration_ms).map_err(json_err)?),
    ]);
    Ok(v)
}

fn figures(r: &Row<'_>) -> rusqlite::Result<AttemptFigures> {
    let uint = |i: usize| -> rusqlite::Result<u64> { Ok(r.get::<_, i64>(i)?.max(0) as u64) };
    let mut failed = FailureCounts::default();
    for (k, class) in ErrorClass::ALL.iter().enumerate() {
        failed.set(*class, uint(BEFORE_FAILED + k)?);
    }
    let at = BEFORE_FAILED + ErrorClass::ALL.len();
    let histogram: String = r.get(at + AFTER_FAILED - 1)?;
    Ok(AttemptFigures {
        phase: r.get(0)?,
        agent: r.get(1)?,
        model: r.get(2)?,
        attempts: uint(3)?,
        succeeded: uint(4)?,
        blocked: uint(5)?,
        failed,
        interrupted: uint(at)?,
        cancelled: uint(at + 1)?,
        input_tokens: uint(at + 2)?,
        output_tokens: uint(at + 3)?,
        cache_read_tokens: uint(at + 4)?,
        cache_write_tokens: uint(at + 5)?,
        cost_nano: r.get(at + 6)?,
        cost_sq: r.get(at + 7)?,
        cost_unknown: uint(at + 8)?,
        duration_ms: serde_json::from_str::<Histogram>(&histogram).map_err(json_err)?,
    })
}

/// Both tables, whole.
pub fn read(conn: &Connection) -> rusqlite::Result<RunStats> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {} FROM attempt_stats ORDER BY phase, agent, model",
        *COLUMNS
    ))?;
    let attempts = stmt
        .query_map([], figures)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let mut stmt =
        conn.prepare_cached("SELECT phase, skipped, failed FROM phase_ends ORDER BY phase")?;
    let ends = stmt
        .query_map([], |r| {
            Ok(PhaseEnds {
                phase: r.get(0)?,
                skipped: r.get::<_, i64>(1)?.max(0) as u64,
                failed: r.get::<_, i64>(2)?.max(0) as u64,
            })
        })?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(RunStats { attempts, ends })
}

/// Writes the rows the fold changed since it last wrote.
pub(crate) fn write(tx: &Transaction<'_>, fold: &mut StatsFold) -> rusqlite::Result<()> {
    let (rows, ends) = fold.take_changes();
    if !rows.is_empty() {
        let marks: Vec<String> = (1..=BEFORE_FAILED + ErrorClass::ALL.len() + AFTER_FAILED)
            .map(|i| format!("?{i}"))
            .collect();
        let mut put = tx.prepare_cached(&format!(
            "INSERT OR REPLACE INTO attempt_stats({}) VALUES ({})",
            *COLUMNS,
            marks.join(", ")
        ))?;
        for i in rows {
            if let Some(f) = fold.stats().attempts.get(i) {
                put.execute(params_from_iter(values(f)?))?;
            }
        }
    }
    if !ends.is_empty() {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO phase_ends(phase, skipped, failed) VALUES (?1, ?2, ?3)",
        )?;
        for i in ends {
            if let Some(e) = fold.stats().ends.get(i) {
                put.execute(params![e.phase, int(e.skipped), int(e.failed)])?;
            }
        }
    }
    Ok(())
}

/// Migration 6: the figures of what is already in the database, by the
/// writer's own fold: a converted folder's tasks as they were kept, then
/// every event the fold counts, in order.
pub(crate) fn fill(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let mut fold = StatsFold::default();
    {
        let mut stmt = tx.prepare("SELECT ord, base FROM tasks WHERE base IS NOT NULL")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ord: TaskNo = r.get(0)?;
            let base: String = r.get(1)?;
            let task: Task = serde_json::from_str(&base).map_err(json_err)?;
            fold.count_task(ord, &task);
        }
    }
    {
        let mut stmt = tx.prepare(
            "SELECT task, body FROM events WHERE task IS NOT NULL \
             AND kind IN ('phase_started', 'attempt_finished', 'decision_recorded', \
               'phase_skipped', 'phase_failed') \
             ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ord: TaskNo = r.get(0)?;
            let body: String = r.get(1)?;
            let kind: EventKind = serde_json::from_str(&body).map_err(json_err)?;
            fold.apply_event(Some(ord), &kind);
        }
    }
    fold.touch_all();
    write(tx, &mut fold)
}
