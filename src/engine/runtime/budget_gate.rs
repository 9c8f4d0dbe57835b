//! The engine's side of budgets: whether a task may start another attempt,
//! holding it for a person when not, and operators' raises.

use super::super::budget::{self, Estimate, Limits, Spend};
use super::super::event::{Actor, BudgetScope, EventKind, ReviewReason, TaskId};
use super::super::handle::Refusal;
use super::super::state::{HoldKind, TaskState};
use super::Engine;

impl Engine {
    /// Why approving the task's held phase must wait, when the hold is a
    /// budget's and the budget is still reached.
    pub(super) fn budget_refuses_approval(
        &self,
        id: &TaskId,
        phase: Option<&str>,
    ) -> Option<Refusal> {
        let held_for_budget = self
            .tasks
            .get(id)?
            .hold_for(HoldKind::Review, phase)
            .is_some_and(|h| h.is_budget());
        if !held_for_budget {
            return None;
        }
        let (scope, why) = self.budget_reached(id)?;
        let which = match scope {
            BudgetScope::Task => format!(" {id}"),
            BudgetScope::Run => String::new(),
        };
        Some(Refusal(format!(
            "the {} budget is still reached: {why}; raise it first (B in the dashboard, or `baton budget{which} --usd X --tokens N`), then approve",
            scope.as_str()
        )))
    }

    /// The budget that keeps the task from starting another attempt, if any:
    /// its own, then the run's.
    pub(super) fn budget_reached(&self, id: &TaskId) -> Option<(BudgetScope, String)> {
        let task = self.tasks.get(id)?;
        let limits = task.budget.over(self.pipeline.defaults.task_budget);
        if !limits.is_none() {
            let mut flying = Estimate::default();
            for r in self.running.of(id) {
                flying.add(self.agents[r.agent].average.estimate(1));
            }
            let spent = Spend::of_task(task);
            if let Some(why) = budget::reached(limits, spent, flying, task.budget.accept_unknown) {
                return Some((BudgetScope::Task, why));
            }
        }
        let limits = self.run_limits();
        if !limits.is_none() {
            let why = budget::reached(
                limits,
                self.run_spend,
                self.run_in_flight(),
                self.run.raise.accept_unknown,
            );
            if let Some(why) = why {
                return Some((BudgetScope::Run, why));
            }
        }
        None
    }

    pub(super) fn run_limits(&self) -> Limits {
        self.run.raise.over(self.pipeline.run_budget)
    }

    /// What the attempts in flight are expected to spend.
    pub(super) fn run_in_flight(&self) -> Estimate {
        let mut flying = Estimate::default();
        for slot in &self.agents {
            flying.add(slot.average.estimate(slot.inflight as u32));
        }
        flying
    }

    /// Holds the task for a person instead of starting phase `idx`, and
    /// gives its concurrency slot to another task.
    pub(super) fn hold_for_budget(
        &mut self,
        id: &TaskId,
        idx: usize,
        scope: BudgetScope,
        detail: String,
    ) {
        let kind = EventKind::ReviewRequested {
            phase: self.phase_ids[idx].clone(),
            reason: ReviewReason::Budget { scope, detail },
        };
        if self.emit_logged(id, kind) {
            self.slots.remove(id);
            self.running.release(id);
        }
    }

    /// Raises a task's budget, or the run's. Limits only go up; the attempts
    /// of unknown cost so far are accepted with the raise.
    pub(super) fn raise_budget(
        &mut self,
        task: Option<TaskId>,
        usd: Option<f64>,
        tokens: Option<u64>,
        by: Actor,
    ) -> Result<(), Refusal> {
        if usd.is_none() && tokens.is_none() {
            return Err(Refusal(
                "give a new limit: dollars, tokens, or both".to_string(),
            ));
        }
        if let Some(u) = usd.filter(|u| !u.is_finite() || *u <= 0.0) {
            return Err(Refusal(format!(
                "{u} is not a budget: give dollars above 0, e.g. 5.00"
            )));
        }
        if tokens == Some(0) {
            return Err(Refusal(
                "0 is not a budget: give tokens above 0".to_string(),
            ));
        }
        let (scope, current, unknown) = match &task {
            Some(id) => {
                let t = self
                    .tasks
                    .get(id)
                    .ok_or_else(|| Refusal(format!("no task {id} in this run")))?;
                if matches!(t.state, TaskState::Completed | TaskState::Cancelled) {
                    return Err(Refusal(format!(
                        "task {id} is {}: it starts no more attempts, so its budget no longer matters",
                        t.state
                    )));
                }
                (
                    format!("task {id}"),
                    t.budget.over(self.pipeline.defaults.task_budget),
                    t.cost().unknown,
                )
            }
            None => (
                "the run".to_string(),
                self.run_limits(),
                self.run_spend.cost.unknown,
            ),
        };
        if let (Some(new), Some(old)) = (usd, current.usd)
            && new < old
        {
            return Err(Refusal(format!(
                "budgets only go up: {scope} already has ${old:.4}; give more than that"
            )));
        }
        if let (Some(new), Some(old)) = (tokens, current.tokens)
            && new < old
        {
            return Err(Refusal(format!(
                "budgets only go up: {scope} already has {old} tokens; give more than that"
            )));
        }
        let kind = EventKind::BudgetRaised {
            usd,
            tokens,
            accept_unknown: unknown,
            by: by.clone(),
        };
        match task {
            Some(id) => self.emit(&id, kind).map_err(|e| Refusal(e.to_string())),
            None => {
                self.emit_run_event(kind);
                Ok(())
            }
        }
    }
}
