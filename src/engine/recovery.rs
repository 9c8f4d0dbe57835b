//! Rebuilding tasks from what the store kept: newest snapshots, then the
//! journal events after each.

use std::collections::HashMap;

use super::event::{AttemptOutcome, EventKind, TaskId};
use super::task::Task;
use crate::store::Recovered;

pub struct Folded {
    pub tasks: HashMap<TaskId, Task>,
    /// Submission order.
    pub order: Vec<TaskId>,
    pub last_seq: u64,
    pub warnings: Vec<String>,
    /// Tasks whose state comes partly from the journal, with the first
    /// journal seq applied: no snapshot holds them yet, so the journal must
    /// keep those events until one does.
    pub unsnapshotted: HashMap<TaskId, u64>,
}

/// Replays the journal over the snapshots. Events a snapshot already covers
/// are skipped; events that do not apply are reported and skipped.
pub fn fold(recovered: Recovered, phases: &[String]) -> Folded {
    let Recovered {
        snapshots,
        events,
        last_seq,
        mut warnings,
    } = recovered;
    let mut tasks: HashMap<TaskId, Task> = HashMap::new();
    let mut unsnapshotted: HashMap<TaskId, u64> = HashMap::new();
    for snap in snapshots {
        tasks.insert(snap.id.clone(), snap);
    }
    for ev in &events {
        let Some(id) = &ev.task else { continue };
        match tasks.get_mut(id) {
            Some(task) if ev.seq <= task.seq => {}
            Some(task) => {
                unsnapshotted.entry(id.clone()).or_insert(ev.seq);
                if let Err(e) = task.apply(ev) {
                    warnings.push(format!(
                        "journal event {} for task {id} does not apply and was skipped: {e}",
                        ev.seq
                    ));
                }
            }
            None => match Task::from_submitted(ev, phases) {
                Some(task) => {
                    unsnapshotted.entry(id.clone()).or_insert(ev.seq);
                    tasks.insert(id.clone(), task);
                }
                None => warnings.push(format!(
                    "journal event {} for task {id} comes before the task was submitted; skipped",
                    ev.seq
                )),
            },
        }
    }
    let mut order: Vec<TaskId> = tasks.keys().cloned().collect();
    order.sort_by(|a, b| {
        let (ta, tb) = (&tasks[a], &tasks[b]);
        ta.created_at.cmp(&tb.created_at).then_with(|| a.cmp(b))
    });
    let last_seq = tasks
        .values()
        .map(|t| t.seq)
        .max()
        .unwrap_or(0)
        .max(last_seq);
    Folded {
        tasks,
        order,
        last_seq,
        warnings,
        unsnapshotted,
    }
}

/// The event that closes an attempt lost to a stop of the engine.
pub fn interrupted(phase: String, attempt: u32) -> EventKind {
    EventKind::AttemptFinished {
        phase,
        attempt,
        duration_ms: 0,
        outcome: AttemptOutcome::Interrupted,
        usage: None,
        cost_usd: None,
        output: None,
        trace: vec!["interrupted: the engine stopped while this attempt ran; it runs again".into()],
        http: None,
        retry_after_ms: None,
    }
}
