//! Decisions on a task: which hold a decision settles, and what approving,
//! rejecting, sending back, resolving, retrying or cancelling does to it.

use jiff::Timestamp;

use super::super::event::{Action, Decision, ReviewReason};
use super::super::state::{HoldKind, PhaseSignal, PhaseState, TaskSignal, TaskState};
use super::{ApplyError, Hold, Task};

impl Task {
    /// The hold a decision of `kind` settles: the named phase's, else the
    /// oldest of the kind.
    pub fn hold_for(&self, kind: HoldKind, phase: Option<&str>) -> Option<&Hold> {
        self.holds
            .iter()
            .find(|h| h.kind == kind && phase.is_none_or(|p| p == h.phase))
    }

    /// Takes the hold a decision settles: the named phase's, else the oldest of the kind.
    fn take_hold(
        &mut self,
        kind: HoldKind,
        phase: Option<&str>,
        action: &Action,
    ) -> Result<Hold, ApplyError> {
        let pos = self
            .holds
            .iter()
            .position(|h| h.kind == kind && phase.is_none_or(|p| p == h.phase));
        match pos {
            Some(pos) => Ok(self.holds.remove(pos)),
            None => {
                let what = match kind {
                    HoldKind::Review => "awaiting review",
                    HoldKind::Blocked => "blocked",
                };
                let on = phase.map(|p| format!(" on phase {p}")).unwrap_or_default();
                // Two operators deciding at once: the second learns who was first.
                let settles = |a: &Action| match kind {
                    HoldKind::Review => {
                        matches!(
                            a,
                            Action::Approve | Action::Reject | Action::SendBack { .. }
                        )
                    }
                    HoldKind::Blocked => matches!(
                        a,
                        Action::ResolveRetry | Action::ResolveSkip | Action::ResolveFail
                    ),
                };
                let earlier = self
                    .decisions
                    .iter()
                    .rev()
                    .find(|d| {
                        settles(&d.action) && phase.is_none_or(|p| d.phase.as_deref() == Some(p))
                    })
                    .map(|d| {
                        format!(
                            "; already decided by {}: {} on phase {} at {}",
                            d.by,
                            d.action.name(),
                            d.phase.as_deref().unwrap_or("?"),
                            d.at
                        )
                    })
                    .unwrap_or_default();
                Err(self.refused(format!(
                    "cannot {}: nothing is {what}{on} (task is {}){earlier}",
                    action.name(),
                    self.state
                )))
            }
        }
    }

    fn settled(&self) -> TaskSignal {
        TaskSignal::HoldSettled {
            next: self.holds.first().map(|h| h.kind),
        }
    }

    /// Applies a decision; returns the signal and the phase it settled.
    pub(super) fn decide(
        &mut self,
        d: &Decision,
        at: Timestamp,
    ) -> Result<(TaskSignal, Option<String>), ApplyError> {
        let phase = d.phase.as_deref();
        let mut target = None;
        let signal = match &d.action {
            Action::Approve | Action::Reject | Action::SendBack { .. } => {
                let hold = self.take_hold(HoldKind::Review, phase, &d.action)?;
                let idx = self.index(&hold.phase)?;
                target = Some(hold.phase.clone());
                let budget = hold.is_budget();
                match &d.action {
                    // A budget hold has no output to accept: the phase
                    // simply may start again.
                    Action::Approve if budget => self.settled(),
                    Action::SendBack { .. } if budget => {
                        return Err(self.refused(format!(
                            "phase {} waits for its budget and has no output to send back; approve it after raising the budget, or reject it",
                            hold.phase
                        )));
                    }
                    Action::Approve => {
                        self.phases[idx].approved = true;
                        self.settled()
                    }
                    Action::Reject => {
                        self.holds.clear();
                        self.finished_at = Some(at);
                        self.finish_reason = Some(match &d.note {
                            Some(n) => format!("rejected at {}: {n}", hold.phase),
                            None => format!("rejected at {}", hold.phase),
                        });
                        TaskSignal::HoldFailed
                    }
                    // The reviewer's rounds are spent: a person's feedback
                    // grants one more, carried out as the agent's would be.
                    Action::SendBack { feedback }
                        if matches!(hold.review, Some(ReviewReason::RoundsSpent { .. })) =>
                    {
                        self.phases[idx].granted = Some(feedback.clone());
                        self.settled()
                    }
                    Action::SendBack { feedback } => {
                        self.phase_step(idx, PhaseSignal::Reset)?;
                        self.phases[idx].reset(Some(feedback.clone()));
                        self.settled()
                    }
                    _ => unreachable!("matched above"),
                }
            }
            Action::ResolveRetry | Action::ResolveSkip | Action::ResolveFail => {
                let hold = self.take_hold(HoldKind::Blocked, phase, &d.action)?;
                let idx = self.index(&hold.phase)?;
                target = Some(hold.phase.clone());
                match d.action {
                    Action::ResolveRetry => {
                        self.phase_step(idx, PhaseSignal::Reset)?;
                        self.phases[idx].reset(None);
                        self.settled()
                    }
                    Action::ResolveSkip => {
                        self.phase_step(idx, PhaseSignal::Skip)?;
                        let p = &mut self.phases[idx];
                        p.skip_reason = Some(format!("skipped by {}", d.by.user));
                        p.finished_at = Some(at);
                        self.settled()
                    }
                    _ => {
                        self.phase_step(idx, PhaseSignal::Fail)?;
                        let p = &mut self.phases[idx];
                        p.error = Some(format!("blocked: {}", hold.reason));
                        p.finished_at = Some(at);
                        self.holds.clear();
                        self.finished_at = Some(at);
                        self.finish_reason =
                            Some(format!("blocker at {} resolved as failed", hold.phase));
                        TaskSignal::HoldFailed
                    }
                }
            }
            Action::Retry => {
                let idx = self.retry_target(phase)?;
                target = Some(self.phases[idx].id.clone());
                let p = &mut self.phases[idx];
                if p.state == PhaseState::Running {
                    // Waiting for a retry: clearing the due time makes it start now.
                    p.retry_due = None;
                } else {
                    self.phase_step(idx, PhaseSignal::Reset)?;
                    self.phases[idx].reset(None);
                    self.finished_at = None;
                    self.finish_reason = None;
                }
                TaskSignal::RetryRequested
            }
            Action::Cancel => {
                self.stop_running_phases(at)?;
                self.holds.clear();
                self.finished_at = Some(at);
                self.finish_reason = Some(match &d.note {
                    Some(n) => format!("cancelled by {}: {n}", d.by.user),
                    None => format!("cancelled by {}", d.by.user),
                });
                TaskSignal::Cancelled
            }
        };
        Ok((signal, target))
    }

    /// The phase a retry acts on: the one named, else the one waiting to
    /// retry, else the first failed one.
    fn retry_target(&self, phase: Option<&str>) -> Result<usize, ApplyError> {
        if let Some(name) = phase {
            let idx = self.index(name)?;
            let p = &self.phases[idx];
            let ok = p.state == PhaseState::Failed
                || p.state == PhaseState::Completed && self.state == TaskState::Failed
                || (p.state == PhaseState::Running && p.retry_due.is_some());
            if !ok {
                return Err(self.refused(format!(
                    "phase {name} is {} and has nothing to retry",
                    p.state
                )));
            }
            return Ok(idx);
        }
        self.phases
            .iter()
            .position(|p| p.state == PhaseState::Running && p.retry_due.is_some())
            .or_else(|| {
                self.phases
                    .iter()
                    .position(|p| p.state == PhaseState::Failed)
            })
            .ok_or_else(|| {
                if self.state == TaskState::Failed {
                    // Failed by a decision (a rejection): no phase failed on
                    // its own, so say which can run again and how to name it.
                    let done: Vec<&str> = self
                        .phases
                        .iter()
                        .filter(|p| p.state == PhaseState::Completed)
                        .map(|p| p.id.as_str())
                        .collect();
                    self.refused(format!(
                        "no phase of {} failed on its own (it was failed by a decision); name the phase to run again: --phase {}",
                        self.id,
                        if done.is_empty() {
                            "PHASE".to_string()
                        } else {
                            done.join("|")
                        }
                    ))
                } else {
                    self.refused(format!("nothing to retry (task is {})", self.state))
                }
            })
    }
}
