//! The layout baton used before its database: an append-only journal of
//! CRC-checked JSON lines in `journal/`, a JSON snapshot per task in
//! `tasks/`. Read once, to convert such a folder (see `store::convert`);
//! nothing writes it any more.

pub(crate) mod fsync;
pub(crate) mod journal;
pub(crate) mod layout;
pub(crate) mod quarantine;
pub(crate) mod recover;
pub(crate) mod snapshot;

use std::collections::HashMap;
use std::path::Path;

use crate::engine::event::{Event, TaskId};
use crate::engine::task::Task;
use crate::store::error::StoreError;
use layout::Layout;

/// What an old folder's journal and snapshots held.
#[derive(Debug, Clone, Default)]
pub(crate) struct Recovered {
    /// Newest snapshot of each task.
    pub snapshots: Vec<Task>,
    /// Journal events in seq order.
    pub events: Vec<Event>,
    /// The highest seq used so far, over snapshots, events and segment names.
    pub last_seq: u64,
    pub warnings: Vec<String>,
}

/// An old folder's run, folded.
pub(crate) struct LegacyRun {
    /// Every task, in submission order.
    pub tasks: Vec<Task>,
    /// Run-level events (pause, resume, run budget raises), in order.
    pub run_events: Vec<Event>,
    pub last_seq: u64,
    pub warnings: Vec<String>,
}

/// Whether `dir` holds the old layout.
pub(crate) fn present(dir: &Path) -> bool {
    let layout = Layout::new(dir);
    layout.journal().is_dir() || layout.tasks().is_dir()
}

/// Reads the old layout, repairing damage as the old store did (the
/// originals go to `quarantine/`), and folds the journal over the snapshots.
/// The caller holds the folder's lock.
pub(crate) fn read(dir: &Path, phases: &[String]) -> Result<LegacyRun, StoreError> {
    let recovered = recover::recover(&Layout::new(dir), recover::Mode::Repair)?.recovered;
    Ok(fold(recovered, phases))
}

fn fold(recovered: Recovered, phases: &[String]) -> LegacyRun {
    let Recovered {
        snapshots,
        events,
        last_seq,
        mut warnings,
    } = recovered;
    let mut tasks: HashMap<TaskId, Task> = HashMap::new();
    for snap in snapshots {
        tasks.insert(snap.id.clone(), snap);
    }
    let mut run_events = Vec::new();
    for ev in events {
        let Some(id) = &ev.task else {
            run_events.push(ev);
            continue;
        };
        match tasks.get_mut(id) {
            Some(task) if ev.seq <= task.seq => {}
            Some(task) => {
                if let Err(e) = task.apply(&ev) {
                    warnings.push(format!(
                        "journal event {} for task {id} does not apply and was skipped: {e}",
                        ev.seq
                    ));
                }
            }
            None => match Task::from_submitted(&ev, phases) {
                Some(task) => {
                    tasks.insert(id.clone(), task);
                }
                None => warnings.push(format!(
                    "journal event {} for task {id} comes before the task was submitted; skipped",
                    ev.seq
                )),
            },
        }
    }
    let mut tasks: Vec<Task> = tasks.into_values().collect();
    tasks.sort_by(|a, b| {
        a.created_at
            .cmp(&b.created_at)
            .then_with(|| a.id.cmp(&b.id))
    });
    let last_seq = tasks.iter().map(|t| t.seq).max().unwrap_or(0).max(last_seq);
    LegacyRun {
        tasks,
        run_events,
        last_seq,
        warnings,
    }
}
