//! Converting a folder of the old layout (journal and snapshots) into the
//! database, once, in one transaction. Each task becomes a row whose `base`
//! is the task as the old store had it; run-level events are copied; the
//! totals and the figures per phase are counted once here and kept up to
//! date from then on. The old
//! files are then moved, not deleted, into `legacy-<time>/`.

use std::fs;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use rusqlite::{Connection, params};

use super::read::{json_err, ts};
use super::writer::{write_events, write_rows, write_totals};
use crate::engine::event::{Event, EventKind};
use crate::engine::task::Task;
use crate::store::error::{IoContext, StoreError};
use crate::store::legacy::{self, layout::Layout};
use crate::store::model::{RowChange, RunMeta, TaskNo, TaskRow, Totals};
use crate::store::stats_fold::StatsFold;

/// What a conversion did, for the operator.
pub(crate) struct Converted {
    pub tasks: usize,
    pub kept_in: PathBuf,
    pub warnings: Vec<String>,
}

pub(crate) fn convert(
    conn: &mut Connection,
    db_path: &Path,
    dir: &Path,
    meta: &RunMeta,
) -> Result<Converted, StoreError> {
    let run = legacy::read(dir, &meta.phases)?;
    let mut totals = Totals::default();
    let mut stats = StatsFold::default();
    let tx = conn.transaction().map_err(|e| StoreError::db(db_path, e))?;
    let result = (|| -> rusqlite::Result<()> {
        let first_ord: TaskNo = super::read::last_ord(&tx)? + 1;
        let rows: Vec<RowChange> = run
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| RowChange {
                old: None,
                new: TaskRow::of(t, first_ord + i as TaskNo),
            })
            .collect();
        write_rows(&tx, &rows, &mut totals)?;
        let mut base = tx.prepare("UPDATE tasks SET base = ?2, base_seq = ?3 WHERE ord = ?1")?;
        for (change, task) in rows.iter().zip(&run.tasks) {
            let json = serde_json::to_string(task).map_err(json_err)?;
            base.execute(params![change.new.ord, json, task.seq as i64])?;
            count_attempts(task, &mut totals);
            stats.count_task(change.new.ord, task);
        }
        drop(base);
        let events: Vec<(Option<TaskNo>, Event)> =
            run.run_events.iter().map(|e| (None, e.clone())).collect();
        write_events(&tx, &events, &mut totals, &mut stats)?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('last_seq', ?1)",
            [run.last_seq.to_string()],
        )?;
        tx.execute(
            "INSERT OR IGNORE INTO meta(key, value) VALUES ('run', ?1)",
            [serde_json::to_string(meta).map_err(json_err)?],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta(key, value) VALUES ('converted_at', ?1)",
            [ts(Timestamp::now())],
        )?;
        write_totals(&tx, &totals)?;
        super::stats::write(&tx, &mut stats)?;
        Ok(())
    })();
    result
        .and_then(|()| tx.commit())
        .map_err(|e| StoreError::db(db_path, e))?;
    let kept_in = move_aside(dir)?;
    Ok(Converted {
        tasks: run.tasks.len(),
        kept_in,
        warnings: run.warnings,
    })
}

/// Per-phase figures from a converted task's attempts, as the writer counts
/// `attempt_finished` events.
fn count_attempts(task: &Task, totals: &mut Totals) {
    for p in &task.phases {
        for a in &p.attempts {
            let Some(outcome) = &a.outcome else { continue };
            totals.apply_event(&Event {
                seq: 0,
                at: a.started_at,
                task: None,
                kind: EventKind::AttemptFinished {
                    phase: p.id.clone(),
                    attempt: a.number,
                    duration_ms: a.duration_ms.unwrap_or(0),
                    outcome: outcome.clone(),
                    usage: a.usage.clone(),
                    cost_usd: a.cost_usd,
                    output: None,
                    trace: Vec::new(),
                    http: None,
                    retry_after_ms: None,
                },
            });
        }
    }
}

/// Moves `journal/`, `tasks/` and `quarantine/` into `legacy-<time>/`.
fn move_aside(dir: &Path) -> Result<PathBuf, StoreError> {
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%SZ").to_string();
    let kept = dir.join(format!("legacy-{stamp}"));
    {
        use std::os::unix::fs::DirBuilderExt;
        fs::DirBuilder::new()
            .recursive(true)
            .mode(crate::store::private::DIR_MODE)
            .create(&kept)
            .at(&kept)?;
    }
    let layout = Layout::new(dir);
    for from in [layout.journal(), layout.tasks(), layout.quarantine()] {
        if from.exists() {
            let to = kept.join(from.file_name().unwrap_or_default());
            fs::rename(&from, &to).at(&from)?;
        }
    }
    legacy::fsync::sync_dir(dir)?;
    Ok(kept)
}
