//! The two lifecycles, as explicit transition tables: a task's and a phase's.
//! Anything not listed here is refused with `InvalidTransition`.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    /// Submitted, no phase started yet.
    Pending,
    /// A phase's attempt runs, or the next phase is about to start.
    Running,
    /// Waiting out a retry's delay.
    Retrying,
    /// A person must approve, reject or send back a phase's output.
    AwaitingReview,
    /// An agent cannot go on without a person (`baton resolve`).
    Blocked,
    Completed,
    Failed,
    Cancelled,
}

impl TaskState {
    /// How much a state asks of a person, for sorting: needing a person
    /// first, then trouble, then work under way, then done.
    pub fn attention(self) -> u8 {
        match self {
            TaskState::Blocked => 0,
            TaskState::AwaitingReview => 1,
            TaskState::Failed => 2,
            TaskState::Retrying => 3,
            TaskState::Running => 4,
            TaskState::Pending => 5,
            TaskState::Completed => 6,
            TaskState::Cancelled => 7,
        }
    }

    pub const ALL: [TaskState; 8] = [
        TaskState::Pending,
        TaskState::Running,
        TaskState::Retrying,
        TaskState::AwaitingReview,
        TaskState::Blocked,
        TaskState::Completed,
        TaskState::Failed,
        TaskState::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Pending => "pending",
            TaskState::Running => "running",
            TaskState::Retrying => "retrying",
            TaskState::AwaitingReview => "awaiting_review",
            TaskState::Blocked => "blocked",
            TaskState::Completed => "completed",
            TaskState::Failed => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        TaskState::ALL.into_iter().find(|st| st.as_str() == s)
    }

    /// Completed, failed or cancelled: nothing more happens without an operator.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            TaskState::Completed | TaskState::Failed | TaskState::Cancelled
        )
    }

    /// Waiting for a person: a review or a blocker.
    pub fn needs_human(self) -> bool {
        matches!(self, TaskState::AwaitingReview | TaskState::Blocked)
    }

    /// Holds a concurrency slot: work is under way or about to resume.
    pub fn is_active(self) -> bool {
        matches!(self, TaskState::Running | TaskState::Retrying)
    }
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseState {
    Pending,
    Running,
    Completed,
    Failed,
    Skipped,
}

impl PhaseState {
    pub fn as_str(self) -> &'static str {
        match self {
            PhaseState::Pending => "pending",
            PhaseState::Running => "running",
            PhaseState::Completed => "completed",
            PhaseState::Failed => "failed",
            PhaseState::Skipped => "skipped",
        }
    }
}

impl fmt::Display for PhaseState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a task is held for a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldKind {
    Review,
    Blocked,
}

impl HoldKind {
    pub fn state(self) -> TaskState {
        match self {
            HoldKind::Review => TaskState::AwaitingReview,
            HoldKind::Blocked => TaskState::Blocked,
        }
    }
}

/// What happened to a task, reduced to what its lifecycle depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskSignal {
    PhaseStarted,
    AttemptFinished,
    RetryScheduled,
    PhaseSkipped,
    PhaseFailed,
    /// A review request or a blocker; queued behind one already open.
    Hold(HoldKind),
    /// A budget is reached before an attempt starts: the task waits for a
    /// person in `awaiting_review`, even one that has not started yet.
    BudgetHold,
    /// An operator raised the task's budget; the state stays as it is.
    BudgetRaised,
    /// A person settled a hold; `next` is the hold still open after it, if any.
    HoldSettled {
        next: Option<HoldKind>,
    },
    /// A person settled a hold by failing the task.
    HoldFailed,
    /// An operator asked for a phase to run again now.
    RetryRequested,
    /// A reviewer's send-back: earlier phases run again.
    LoopedBack,
    /// A running attempt was lost to a restart.
    Interrupted,
    Cancelled,
    Completed,
    /// The pipeline's policy fails the task (a fatal phase failed).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transition: task in state {from} cannot take {signal:?}")]
pub struct InvalidTransition {
    pub from: TaskState,
    pub signal: TaskSignal,
}

/// The task lifecycle. Pure: the same inputs always give the same answer.
pub fn task_transition(
    from: TaskState,
    signal: TaskSignal,
) -> Result<TaskState, InvalidTransition> {
    use TaskSignal as S;
    use TaskState::*;
    let to = match (from, signal) {
        (Pending | Running | Retrying, S::PhaseStarted) => Running,
        (Running | Retrying | AwaitingReview | Blocked, S::AttemptFinished) => from,
        (Running, S::RetryScheduled) => Retrying,
        (Retrying | AwaitingReview | Blocked, S::RetryScheduled) => from,
        (Pending | Running | Retrying | AwaitingReview | Blocked, S::PhaseSkipped) => from,
        (Running | Retrying | AwaitingReview | Blocked, S::PhaseFailed) => from,
        (Running | Retrying, S::Hold(kind)) => kind.state(),
        (AwaitingReview | Blocked, S::Hold(_)) => from,
        (Pending | Running | Retrying, S::BudgetHold) => AwaitingReview,
        (AwaitingReview | Blocked, S::BudgetHold) => from,
        (Pending | Running | Retrying | AwaitingReview | Blocked | Failed, S::BudgetRaised) => from,
        (AwaitingReview | Blocked, S::HoldSettled { next }) => {
            next.map_or(Running, HoldKind::state)
        }
        (AwaitingReview | Blocked, S::HoldFailed) => Failed,
        (Running | Retrying | Failed, S::RetryRequested) => Running,
        (Running | Retrying | AwaitingReview | Blocked, S::LoopedBack) => from,
        (Running | Retrying | AwaitingReview | Blocked, S::Interrupted) => from,
        (Pending | Running | Retrying | AwaitingReview | Blocked, S::Cancelled) => Cancelled,
        (Pending | Running, S::Completed) => Completed,
        (Running | Retrying, S::Failed) => Failed,
        _ => return Err(InvalidTransition { from, signal }),
    };
    Ok(to)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseSignal {
    /// An attempt starts (the first, a retry, or a re-run).
    Start,
    /// The attempt produced an accepted output.
    Succeed,
    /// An attempt failed and another will follow.
    AttemptFailed,
    /// The phase failed for good.
    Fail,
    /// The agent is blocked; the phase waits for an operator.
    Block,
    /// The running attempt was lost (restart) or cut short (cancel).
    Interrupt,
    Skip,
    /// Back to pending so that it runs again (feedback, operator retry).
    Reset,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid transition: phase in state {from} cannot take {signal:?}")]
pub struct InvalidPhaseTransition {
    pub from: PhaseState,
    pub signal: PhaseSignal,
}

/// The phase lifecycle. A phase waiting for a retry stays `Running`.
pub fn phase_transition(
    from: PhaseState,
    signal: PhaseSignal,
) -> Result<PhaseState, InvalidPhaseTransition> {
    use PhaseSignal as S;
    use PhaseState::*;
    let to = match (from, signal) {
        (Pending | Running, S::Start) => Running,
        (Running, S::Succeed) => Completed,
        (Running, S::AttemptFailed) => Running,
        (Running | Pending, S::Fail) => Failed,
        (Running, S::Block) => Pending,
        (Running, S::Interrupt) => Pending,
        (Pending, S::Skip) => Skipped,
        (Pending | Completed | Failed, S::Reset) => Pending,
        _ => return Err(InvalidPhaseTransition { from, signal }),
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK_SIGNALS: [TaskSignal; 19] = [
        TaskSignal::PhaseStarted,
        TaskSignal::AttemptFinished,
        TaskSignal::RetryScheduled,
        TaskSignal::PhaseSkipped,
        TaskSignal::PhaseFailed,
        TaskSignal::Hold(HoldKind::Review),
        TaskSignal::Hold(HoldKind::Blocked),
        TaskSignal::HoldSettled { next: None },
        TaskSignal::HoldSettled {
            next: Some(HoldKind::Blocked),
        },
        TaskSignal::HoldFailed,
        TaskSignal::RetryRequested,
        TaskSignal::Interrupted,
        TaskSignal::Cancelled,
        TaskSignal::Completed,
        TaskSignal::Failed,
        TaskSignal::HoldSettled {
            next: Some(HoldKind::Review),
        },
        TaskSignal::Hold(HoldKind::Review),
        TaskSignal::BudgetHold,
        TaskSignal::BudgetRaised,
    ];

    #[test]
    fn final_states_refuse_everything_but_a_retry_or_a_raise_of_a_failed_task() {
        for from in [
            TaskState::Completed,
            TaskState::Failed,
            TaskState::Cancelled,
        ] {
            for signal in TASK_SIGNALS {
                let result = task_transition(from, signal);
                if from == TaskState::Failed && signal == TaskSignal::RetryRequested {
                    assert_eq!(result, Ok(TaskState::Running));
                } else if from == TaskState::Failed && signal == TaskSignal::BudgetRaised {
                    assert_eq!(result, Ok(TaskState::Failed));
                } else {
                    assert_eq!(
                        result,
                        Err(InvalidTransition { from, signal }),
                        "{from} {signal:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn pending_task_only_starts_skips_completes_or_cancels() {
        let allowed: Vec<_> = TASK_SIGNALS
            .into_iter()
            .filter(|s| task_transition(TaskState::Pending, *s).is_ok())
            .collect();
        assert_eq!(
            allowed,
            vec![
                TaskSignal::PhaseStarted,
                TaskSignal::PhaseSkipped,
                TaskSignal::Cancelled,
                TaskSignal::Completed,
                TaskSignal::BudgetHold,
                TaskSignal::BudgetRaised,
            ]
        );
    }

    #[test]
    fn a_budget_hold_waits_in_review_from_pending_running_or_retrying() {
        use TaskState::*;
        for from in [Pending, Running, Retrying] {
            assert_eq!(
                task_transition(from, TaskSignal::BudgetHold),
                Ok(AwaitingReview),
                "{from}"
            );
        }
        assert_eq!(
            task_transition(Blocked, TaskSignal::BudgetHold),
            Ok(Blocked),
            "queues behind an open blocker"
        );
        for from in [Completed, Failed, Cancelled] {
            assert!(task_transition(from, TaskSignal::BudgetHold).is_err());
        }
        assert_eq!(
            task_transition(AwaitingReview, TaskSignal::HoldSettled { next: None }),
            Ok(Running),
            "approving the hold resumes the task"
        );
    }

    #[test]
    fn a_budget_raise_keeps_the_state() {
        for from in TaskState::ALL {
            let result = task_transition(from, TaskSignal::BudgetRaised);
            if matches!(from, TaskState::Completed | TaskState::Cancelled) {
                assert!(result.is_err(), "{from}");
            } else {
                assert_eq!(result, Ok(from));
            }
        }
    }

    #[test]
    fn holds_move_to_their_state_and_queue_behind_an_open_one() {
        use TaskState::*;
        assert_eq!(
            task_transition(Running, TaskSignal::Hold(HoldKind::Review)),
            Ok(AwaitingReview)
        );
        assert_eq!(
            task_transition(Retrying, TaskSignal::Hold(HoldKind::Blocked)),
            Ok(Blocked)
        );
        assert_eq!(
            task_transition(Blocked, TaskSignal::Hold(HoldKind::Review)),
            Ok(Blocked)
        );
        assert_eq!(
            task_transition(
                AwaitingReview,
                TaskSignal::HoldSettled {
                    next: Some(HoldKind::Blocked)
                }
            ),
            Ok(Blocked)
        );
        assert_eq!(
            task_transition(Blocked, TaskSignal::HoldSettled { next: None }),
            Ok(Running)
        );
        assert_eq!(
            task_transition(AwaitingReview, TaskSignal::HoldFailed),
            Ok(Failed)
        );
        assert!(task_transition(Pending, TaskSignal::Hold(HoldKind::Review)).is_err());
        assert!(task_transition(Running, TaskSignal::HoldSettled { next: None }).is_err());
        assert!(task_transition(Running, TaskSignal::HoldFailed).is_err());
    }

    #[test]
    fn a_held_task_cannot_start_phases_complete_or_fail_by_policy() {
        for from in [TaskState::AwaitingReview, TaskState::Blocked] {
            for signal in [
                TaskSignal::PhaseStarted,
                TaskSignal::Completed,
                TaskSignal::Failed,
                TaskSignal::RetryRequested,
            ] {
                assert!(task_transition(from, signal).is_err(), "{from} {signal:?}");
            }
        }
    }

    #[test]
    fn retrying_and_running() {
        use TaskState::*;
        assert_eq!(
            task_transition(Running, TaskSignal::RetryScheduled),
            Ok(Retrying)
        );
        assert_eq!(
            task_transition(Retrying, TaskSignal::PhaseStarted),
            Ok(Running)
        );
        assert_eq!(
            task_transition(Retrying, TaskSignal::RetryRequested),
            Ok(Running)
        );
        assert!(task_transition(Retrying, TaskSignal::Completed).is_err());
        assert!(task_transition(Pending, TaskSignal::Failed).is_err());
    }

    #[test]
    fn phase_table() {
        use PhaseSignal as S;
        use PhaseState::*;
        assert_eq!(phase_transition(Pending, S::Start), Ok(Running));
        assert_eq!(phase_transition(Running, S::Succeed), Ok(Completed));
        assert_eq!(phase_transition(Running, S::AttemptFailed), Ok(Running));
        assert_eq!(phase_transition(Running, S::Block), Ok(Pending));
        assert_eq!(phase_transition(Completed, S::Reset), Ok(Pending));
        assert_eq!(phase_transition(Failed, S::Reset), Ok(Pending));
        for from in [Completed, Failed, Skipped] {
            for signal in [
                S::Start,
                S::Succeed,
                S::AttemptFailed,
                S::Fail,
                S::Block,
                S::Interrupt,
                S::Skip,
            ] {
                assert!(phase_transition(from, signal).is_err(), "{from} {signal:?}");
            }
        }
        assert!(phase_transition(Skipped, S::Reset).is_err());
        assert!(phase_transition(Pending, S::Succeed).is_err());
        assert!(phase_transition(Pending, S::Block).is_err());
    }
}
