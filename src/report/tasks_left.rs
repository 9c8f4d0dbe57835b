//! How many tasks still have each phase to run: every pending task (a task
//! is pending until its first attempt, so none of its phases is settled),
//! and each task under way or waiting for a person whose phase is not yet
//! completed, skipped or failed. Reads only the tasks not final and not
//! pending: the work in flight, which the engine holds in memory anyway.

use crate::engine::TaskState;
use crate::engine::state::PhaseState;
use crate::store::{ListQuery, RunReader, StoreError, Totals};

/// States of tasks that have started and are not final.
const UNDER_WAY: [TaskState; 4] = [
    TaskState::Running,
    TaskState::Retrying,
    TaskState::AwaitingReview,
    TaskState::Blocked,
];

/// Tasks left per phase of `phases`, in its order.
pub async fn tasks_left(
    reader: &dyn RunReader,
    phases: &[String],
    totals: &Totals,
) -> Result<Vec<u64>, StoreError> {
    let mut left = vec![totals.count(TaskState::Pending); phases.len()];
    for state in UNDER_WAY {
        let q = ListQuery {
            state: Some(state),
            ..ListQuery::default()
        };
        for row in reader.list(&q).await? {
            // Gone final or away since the list: nothing left to run.
            let Some(task) = reader.task(&row.id).await? else {
                continue;
            };
            if task.state.is_final() {
                continue;
            }
            for (n, id) in left.iter_mut().zip(phases) {
                let settled = task.phase(id).is_some_and(|p| {
                    matches!(
                        p.state,
                        PhaseState::Completed | PhaseState::Skipped | PhaseState::Failed
                    )
                });
                if !settled {
                    *n += 1;
                }
            }
        }
    }
    Ok(left)
}
