//! Someone waiting on the remote handle for an overview of the run: a plain
//! `overview()`, or a `snapshot()`, which is composed from the tasks read
//! from the store and an overview at least as new as they are.

use std::sync::Arc;

use tokio::sync::oneshot;

use crate::engine::handle::{RunOverview, RunSnapshot};
use crate::engine::task::Task;
use crate::store::RunReader;

pub enum Waiter {
    Overview(oneshot::Sender<RunOverview>),
    /// Every task, read from the store as of `seq`.
    Snapshot {
        tasks: Vec<Task>,
        seq: u64,
        reply: oneshot::Sender<RunSnapshot>,
    },
}

impl Waiter {
    /// The oldest overview that may answer: one older than the tasks would
    /// skip, as already covered, run-level events it does not reflect.
    pub fn needs(&self) -> u64 {
        match self {
            Waiter::Overview(_) => 0,
            Waiter::Snapshot { seq, .. } => *seq,
        }
    }

    pub fn answer(self, overview: &RunOverview) {
        match self {
            Waiter::Overview(reply) => {
                let _ = reply.send(overview.clone());
            }
            Waiter::Snapshot { tasks, seq, reply } => {
                let _ = reply.send(compose(overview, tasks, seq));
            }
        }
    }
}

/// The run as a snapshot: tasks as of `seq` (events after it apply on top),
/// the rest from `overview`, taken at `seq` or later. Re-applying the
/// run-level events in between (pause, resume, budget raises) is harmless:
/// each sets a value rather than changing it.
pub fn compose(overview: &RunOverview, tasks: Vec<Task>, seq: u64) -> RunSnapshot {
    let o = overview.clone();
    RunSnapshot {
        pipeline: o.pipeline,
        phases: o.phases,
        state_dir: o.state_dir,
        store: o.store,
        started_at: o.started_at,
        paused: o.paused,
        tasks,
        seq,
        budget: o.budget,
        live: o.live,
    }
}

/// Every task and the seq they reflect, read on a blocking thread so that
/// a large run does not hold up the caller's runtime.
pub async fn read_all_tasks(reader: Arc<dyn RunReader>) -> Result<(Vec<Task>, u64), String> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(reader.all_tasks()))
        .await
        .map_err(|e| format!("the read stopped: {e}"))?
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_takes_its_seq_from_the_tasks_and_the_rest_from_the_overview() {
        let overview = RunOverview {
            pipeline: "p".into(),
            phases: vec!["draft".into()],
            paused: true,
            seq: 12,
            ..RunOverview::default()
        };
        let (tx, mut rx) = oneshot::channel();
        let waiter = Waiter::Snapshot {
            tasks: Vec::new(),
            seq: 10,
            reply: tx,
        };
        assert_eq!(waiter.needs(), 10);
        waiter.answer(&overview);
        let snapshot = rx.try_recv().unwrap();
        assert_eq!(snapshot.seq, 10);
        assert!(snapshot.paused);
        assert_eq!(snapshot.phases, ["draft"]);
        assert_eq!(snapshot.overview().pipeline, "p");
    }
}
