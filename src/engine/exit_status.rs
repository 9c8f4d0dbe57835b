//! What a run's exit status says, from its tasks' states. One rule for
//! `baton run` headless or with the dashboard, for a run that ends on its
//! own and for one that is stopped:
//!
//! | status | when |
//! | --- | --- |
//! | `4` | work the engine could still do was left: tasks pending, running or retrying (the dashboard was quit mid-run, the run was paused) — whatever else is true |
//! | `3` | nothing more can run without a person: a task waits for a review or a blocker |
//! | `1` | everything is final and a task failed |
//! | `0` | everything is final; completed or cancelled (a person settled those) |
//!
//! Stopped by a signal: `130` (SIGINT) or `143` (SIGTERM), decided by the
//! caller. Work left takes precedence over waiting: run again and it goes on
//! by itself; only then does a person matter.

use super::state::TaskState;

/// The exit status for a run whose tasks are counted by `count`.
pub fn of(count: impl Fn(TaskState) -> u64) -> i32 {
    let left = [TaskState::Pending, TaskState::Running, TaskState::Retrying]
        .into_iter()
        .map(&count)
        .sum::<u64>();
    let waiting = count(TaskState::AwaitingReview) + count(TaskState::Blocked);
    if left > 0 {
        4
    } else if waiting > 0 {
        3
    } else if count(TaskState::Failed) > 0 {
        1
    } else {
        0
    }
}

/// What the status means, for people.
pub fn meaning(status: i32) -> &'static str {
    match status {
        0 => "all done",
        1 => "a task failed",
        3 => "tasks wait for a person",
        4 => "work was left unfinished",
        130 => "interrupted",
        143 => "terminated",
        _ => "stopped",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every mix of the four kinds of state that matter.
    #[test]
    fn every_mix_has_one_status() {
        use TaskState::*;
        let kinds = [
            (vec![Pending, Running, Retrying], "left"),
            (vec![AwaitingReview, Blocked], "waiting"),
            (vec![Failed], "failed"),
            (vec![Completed, Cancelled], "done"),
        ];
        for mask in 0u32..16 {
            let present: Vec<TaskState> = kinds
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .flat_map(|(_, (states, _))| states.clone())
                .collect();
            let status = of(|s| u64::from(present.contains(&s)));
            let want = if mask & 1 != 0 {
                4
            } else if mask & 2 != 0 {
                3
            } else if mask & 4 != 0 {
                1
            } else {
                0
            };
            assert_eq!(status, want, "mix {mask:04b}: {present:?}");
        }
        // Each state alone.
        for (state, want) in [
            (Pending, 4),
            (Running, 4),
            (Retrying, 4),
            (AwaitingReview, 3),
            (Blocked, 3),
            (Failed, 1),
            (Completed, 0),
            (Cancelled, 0),
        ] {
            assert_eq!(of(|s| u64::from(s == state)), want, "{state}");
        }
    }
}
