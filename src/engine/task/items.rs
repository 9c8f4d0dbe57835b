//! The items of a `for_each` phase, as the fold of their events. Each item
//! is a small record of its own (state, tries, output); the phase keeps
//! counts so that the engine never scans ten thousand items to decide.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ApplyError, Payloads, Task};
use crate::engine::cost::{CostTotal, Usage};
use crate::engine::event::{AttemptOutcome, EventKind};
use crate::engine::state::{PhaseSignal, PhaseState, TaskSignal, TaskState, task_transition};

/// A `for_each` phase's items, in item order.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ItemsRecord {
    pub items: Vec<ItemRecord>,
    /// Items with an attempt running.
    pub running: u32,
    pub done: u32,
    /// Items that failed for good.
    pub failed: u32,
    /// Items between attempts after a failure: a retry or a failure is next.
    pub waiting: u32,
    /// Item attempts over all items.
    pub attempts: u32,
    pub tokens: u64,
    pub cost: CostTotal,
    /// Items before this one are not pending: where a search for the next
    /// item to start begins.
    #[serde(default)]
    pub cursor: u32,
    /// What the items are called (`scenes`), when the list's field has a
    /// name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    Pending,
    Running,
    /// Its last attempt failed; it retries or fails for good next.
    Waiting,
    Done,
    Failed,
}

/// One item of a `for_each` phase.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    pub state: ItemState,
    /// Attempts started, interrupted ones included: the next is numbered one more.
    #[serde(default)]
    pub attempts: u32,
    /// Attempts counted against the retry limit.
    #[serde(default)]
    pub tries: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_due: Option<Timestamp>,
    /// How its last attempt ended, while it waits or after it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<AttemptOutcome>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ItemRecord {
    fn new() -> ItemRecord {
        ItemRecord {
            state: ItemState::Pending,
            attempts: 0,
            tries: 0,
            retry_due: None,
            last: None,
            output: None,
            error: None,
        }
    }
}

impl ItemsRecord {
    fn new(count: u32) -> ItemsRecord {
        ItemsRecord {
            items: vec![ItemRecord::new(); count as usize],
            ..ItemsRecord::default()
        }
    }

    pub fn count(&self) -> u32 {
        self.items.len() as u32
    }

    /// Moves the cursor past items that are no longer pending.
    fn advance_cursor(&mut self) {
        let mut c = self.cursor as usize;
        while c < self.items.len() && self.items[c].state != ItemState::Pending {
            c += 1;
        }
        self.cursor = c as u32;
    }

    /// Items not done go back to pending (finished ones stay done), for an
    /// operator's retry of the phase; outputs the fan-in took come back.
    /// Items still marked running were cut short when the task ended.
    pub(super) fn reopen(&mut self, fanned_in: Option<Value>) {
        if let Some(Value::Array(outputs)) = fanned_in {
            for (item, output) in self.items.iter_mut().zip(outputs) {
                if item.state == ItemState::Done {
                    item.output = Some(output);
                }
            }
        }
        for (i, item) in self.items.iter_mut().enumerate() {
            if matches!(
                item.state,
                ItemState::Failed | ItemState::Waiting | ItemState::Running
            ) {
                item.state = ItemState::Pending;
                item.tries = 0;
                item.retry_due = None;
                item.error = None;
                self.cursor = self.cursor.min(i as u32);
            }
        }
        self.failed = 0;
        self.waiting = 0;
        self.running = 0;
    }

    /// Items still running when their task ended (failed or cancelled):
    /// their attempts were cut short, so they are pending again.
    pub(super) fn stop_running(&mut self) {
        if self.running == 0 {
            return;
        }
        for (i, item) in self.items.iter_mut().enumerate() {
            if item.state == ItemState::Running {
                item.state = ItemState::Pending;
                item.tries = item.tries.saturating_sub(1);
                self.cursor = self.cursor.min(i as u32);
            }
        }
        self.running = 0;
    }

    /// The items' outputs in item order; `null` for an item without one.
    /// The outputs move out: the phase's output holds them from now on.
    fn take_outputs(&mut self) -> Value {
        Value::Array(
            self.items
                .iter_mut()
                .map(|i| i.output.take().unwrap_or(Value::Null))
                .collect(),
        )
    }
}

impl Task {
    /// Applies an item event, or changes nothing and says why not.
    pub(super) fn apply_item(
        &mut self,
        kind: &EventKind,
        at: Timestamp,
        payloads: Payloads,
    ) -> Result<TaskState, ApplyError> {
        match kind {
            EventKind::ItemsListed {
                phase,
                count,
                error,
                name,
            } => self.items_listed(phase, *count, error.as_deref(), name.as_deref(), at),
            EventKind::ItemStarted {
                phase,
                item,
                attempt,
                ..
            } => self.item_started(phase, *item, *attempt, at),
            EventKind::ItemFinished {
                phase,
                item,
                attempt,
                outcome,
                usage,
                cost_usd,
                output,
                ..
            } => {
                let output = if payloads == Payloads::Copy {
                    output.clone()
                } else {
                    None
                };
                self.item_finished(
                    phase,
                    *item,
                    *attempt,
                    outcome,
                    usage.as_ref(),
                    *cost_usd,
                    output,
                )
            }
            EventKind::ItemRetryScheduled {
                phase,
                item,
                attempt,
                due,
                ..
            } => self.item_retry(phase, *item, *attempt, *due),
            EventKind::ItemFailed { phase, item, error } => self.item_failed(phase, *item, error),
            EventKind::ItemsSettled { phase } => self.items_settled(phase, at),
            _ => Err(self.refused("not an item event")),
        }
    }

    fn items_mut(&mut self, phase: &str) -> Result<(usize, &mut ItemsRecord), ApplyError> {
        let idx = self.index(phase)?;
        if self.phases[idx].items.is_none() {
            return Err(self.refused(format!("phase {phase} has no items listed")));
        }
        Ok((
            idx,
            self.phases[idx]
                .items
                .as_deref_mut()
                .expect("checked above"),
        ))
    }

    fn item_mut(
        &mut self,
        phase: &str,
        item: u32,
    ) -> Result<(usize, &mut ItemsRecord), ApplyError> {
        let idx = self.index(phase)?;
        match self.phases[idx].items.as_ref().map(|i| i.count()) {
            None => Err(self.refused(format!("phase {phase} has no items listed"))),
            Some(count) if item >= count => Err(self.refused(format!(
                "phase {phase} has {count} items, not an item {item}"
            ))),
            Some(_) => Ok((
                idx,
                self.phases[idx]
                    .items
                    .as_deref_mut()
                    .expect("checked above"),
            )),
        }
    }

    fn items_listed(
        &mut self,
        phase: &str,
        count: u32,
        error: Option<&str>,
        name: Option<&str>,
        at: Timestamp,
    ) -> Result<TaskState, ApplyError> {
        let idx = self.index(phase)?;
        let p = &self.phases[idx];
        if p.items.is_some() || p.state != PhaseState::Pending {
            return Err(self.refused(format!(
                "phase {phase} is {} and cannot list items",
                p.state
            )));
        }
        let to = task_transition(self.state, TaskSignal::PhaseStarted)?;
        self.phase_step(idx, PhaseSignal::Start)?;
        let p = &mut self.phases[idx];
        p.started_at.get_or_insert(at);
        p.finished_at = None;
        match error {
            // The list could not be read: the phase fails at once.
            Some(error) => {
                self.phase_step(idx, PhaseSignal::Fail)?;
                let p = &mut self.phases[idx];
                p.error = Some(error.to_string());
                p.finished_at = Some(at);
            }
            None => {
                let mut items = ItemsRecord::new(count);
                items.name = name.map(str::to_string);
                self.phases[idx].items = Some(Box::new(items));
            }
        }
        Ok(to)
    }

    fn item_started(
        &mut self,
        phase: &str,
        item: u32,
        attempt: u32,
        at: Timestamp,
    ) -> Result<TaskState, ApplyError> {
        let (idx, items) = self.item_mut(phase, item)?;
        let it = &items.items[item as usize];
        let problem = match it.state {
            ItemState::Pending | ItemState::Waiting if attempt == it.attempts + 1 => None,
            ItemState::Pending | ItemState::Waiting => Some(format!(
                "item {item} of phase {phase}: attempt {attempt} out of order (had {})",
                it.attempts
            )),
            other => Some(format!(
                "item {item} of phase {phase} is {other:?} and cannot start"
            )),
        };
        if let Some(message) = problem {
            return Err(self.refused(message));
        }
        let to = task_transition(self.state, TaskSignal::PhaseStarted)?;
        if self.phases[idx].state == PhaseState::Pending {
            self.phase_step(idx, PhaseSignal::Start)?;
        }
        let p = &mut self.phases[idx];
        p.started_at.get_or_insert(at);
        let items = p.items.as_deref_mut().expect("checked above");
        let it = &mut items.items[item as usize];
        if it.state == ItemState::Waiting {
            items.waiting -= 1;
        }
        it.state = ItemState::Running;
        it.attempts = attempt;
        it.tries += 1;
        it.retry_due = None;
        it.last = None;
        items.running += 1;
        items.attempts = items.attempts.saturating_add(1);
        items.advance_cursor();
        Ok(to)
    }

    #[allow(clippy::too_many_arguments)]
    fn item_finished(
        &mut self,
        phase: &str,
        item: u32,
        attempt: u32,
        outcome: &AttemptOutcome,
        usage: Option<&Usage>,
        cost_usd: Option<f64>,
        output: Option<Value>,
    ) -> Result<TaskState, ApplyError> {
        let (_, items) = self.item_mut(phase, item)?;
        let it = &items.items[item as usize];
        if it.state != ItemState::Running || it.attempts != attempt {
            return Err(self.refused(format!(
                "item {item} of phase {phase} has no running attempt {attempt}"
            )));
        }
        let signal = match outcome {
            AttemptOutcome::Interrupted => TaskSignal::Interrupted,
            AttemptOutcome::Cancelled => {
                return Err(self.refused("cancelled attempts end with the task"));
            }
            _ => TaskSignal::AttemptFinished,
        };
        let to = task_transition(self.state, signal)?;
        let (_, items) = self.item_mut(phase, item)?;
        items.running -= 1;
        if usage.is_some() || cost_usd.is_some() {
            items.tokens = items.tokens.saturating_add(usage.map_or(0, Usage::tokens));
            items.cost.add(cost_usd);
        }
        let it = &mut items.items[item as usize];
        match outcome {
            AttemptOutcome::Succeeded => {
                it.state = ItemState::Done;
                it.output = output;
                it.error = None;
                items.done += 1;
            }
            AttemptOutcome::Interrupted => {
                it.state = ItemState::Pending;
                it.tries = it.tries.saturating_sub(1);
                items.cursor = items.cursor.min(item);
            }
            other => {
                it.state = ItemState::Waiting;
                it.error = Some(describe(other));
                it.last = Some(other.clone());
                items.waiting += 1;
            }
        }
        Ok(to)
    }

    fn item_retry(
        &mut self,
        phase: &str,
        item: u32,
        attempt: u32,
        due: Timestamp,
    ) -> Result<TaskState, ApplyError> {
        let (_, items) = self.item_mut(phase, item)?;
        let it = &items.items[item as usize];
        if it.state != ItemState::Waiting || attempt != it.attempts + 1 {
            return Err(self.refused(format!(
                "item {item} of phase {phase} has no failed attempt to retry as attempt {attempt}"
            )));
        }
        let to = task_transition(self.state, TaskSignal::AttemptFinished)?;
        let (_, items) = self.item_mut(phase, item)?;
        items.items[item as usize].retry_due = Some(due);
        Ok(to)
    }

    fn item_failed(
        &mut self,
        phase: &str,
        item: u32,
        error: &str,
    ) -> Result<TaskState, ApplyError> {
        let (_, items) = self.item_mut(phase, item)?;
        if items.items[item as usize].state != ItemState::Waiting {
            return Err(self.refused(format!(
                "item {item} of phase {phase} has no failed attempt"
            )));
        }
        let to = task_transition(self.state, TaskSignal::PhaseFailed)?;
        let (_, items) = self.item_mut(phase, item)?;
        let it = &mut items.items[item as usize];
        it.state = ItemState::Failed;
        it.retry_due = None;
        it.error = Some(error.to_string());
        items.waiting -= 1;
        items.failed += 1;
        Ok(to)
    }

    fn items_settled(&mut self, phase: &str, at: Timestamp) -> Result<TaskState, ApplyError> {
        let (idx, items) = self.items_mut(phase)?;
        if items.running > 0 || items.waiting > 0 {
            let (running, waiting) = (items.running, items.waiting);
            return Err(self.refused(format!(
                "phase {phase} has {running} items running and {waiting} waiting to retry"
            )));
        }
        let to = task_transition(self.state, TaskSignal::AttemptFinished)?;
        if self.phases[idx].state == PhaseState::Pending {
            self.phase_step(idx, PhaseSignal::Start)?;
        }
        self.phase_step(idx, PhaseSignal::Succeed)?;
        let p = &mut self.phases[idx];
        let outputs = p
            .items
            .as_deref_mut()
            .expect("checked above")
            .take_outputs();
        p.output = Some(outputs);
        p.error = None;
        p.finished_at = Some(at);
        Ok(to)
    }
}

/// An attempt's end in words, for an item's error.
fn describe(outcome: &AttemptOutcome) -> String {
    match outcome {
        AttemptOutcome::Failed { class, message } => format!("{}: {message}", class.as_str()),
        AttemptOutcome::Blocked { reason, .. } => format!("blocked: {reason}"),
        AttemptOutcome::ReviewRequested { reason, .. } => format!("asked for a review: {reason}"),
        AttemptOutcome::SentBack { to, feedback } => {
            format!("sent back to {to}: {feedback}")
        }
        AttemptOutcome::Succeeded => "succeeded".into(),
        AttemptOutcome::Interrupted => "interrupted".into(),
        AttemptOutcome::Cancelled => "cancelled".into(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::engine::event::{ErrorClass, Event};

    fn ev(seq: u64, kind: EventKind) -> Event {
        Event {
            seq,
            at: Timestamp::from_second(1_700_000_000 + seq as i64).unwrap(),
            task: Some("t".into()),
            kind,
        }
    }

    fn started(item: u32, attempt: u32) -> EventKind {
        EventKind::ItemStarted {
            phase: "each".into(),
            item,
            attempt,
            agent: "a".into(),
            model: None,
        }
    }

    fn finished(item: u32, attempt: u32, outcome: AttemptOutcome) -> EventKind {
        EventKind::ItemFinished {
            phase: "each".into(),
            item,
            attempt,
            agent: "a".into(),
            duration_ms: 1,
            outcome,
            usage: Some(Usage {
                input_tokens: 3,
                output_tokens: 4,
                ..Usage::default()
            }),
            cost_usd: Some(0.5),
            output: Some(json!({"item": item})),
        }
    }

    fn listed(count: u32) -> Task {
        let mut t = Task::new(
            "t".into(),
            json!({}),
            &["each".to_string()],
            Timestamp::UNIX_EPOCH,
            1,
        );
        t.apply(&ev(
            2,
            EventKind::ItemsListed {
                phase: "each".into(),
                count,
                error: None,
                name: None,
            },
        ))
        .unwrap();
        t
    }

    fn apply(t: &mut Task, kind: EventKind) {
        let e = ev(t.seq + 1, kind);
        t.apply(&e).unwrap_or_else(|err| panic!("refused: {err}"));
    }

    fn refused_untouched(t: &Task, kind: EventKind) {
        let mut copy = t.clone();
        assert!(
            copy.apply(&ev(t.seq + 1, kind.clone())).is_err(),
            "{kind:?}"
        );
        assert_eq!(&copy, t, "a refused event changed the task");
    }

    #[test]
    fn items_settle_into_the_list_of_outputs_in_item_order() {
        let mut t = listed(3);
        assert_eq!(t.state, TaskState::Running);
        assert_eq!(t.phases[0].state, PhaseState::Running);
        for i in [2, 0, 1] {
            apply(&mut t, started(i, 1));
        }
        let failed = AttemptOutcome::Failed {
            class: ErrorClass::Fatal,
            message: "no".into(),
        };
        apply(&mut t, finished(2, 1, AttemptOutcome::Succeeded));
        apply(&mut t, finished(1, 1, failed));
        apply(&mut t, finished(0, 1, AttemptOutcome::Succeeded));
        refused_untouched(
            &t,
            EventKind::ItemsSettled {
                phase: "each".into(),
            },
        );
        apply(
            &mut t,
            EventKind::ItemFailed {
                phase: "each".into(),
                item: 1,
                error: "fatal: no".into(),
            },
        );
        apply(
            &mut t,
            EventKind::ItemsSettled {
                phase: "each".into(),
            },
        );
        let p = &t.phases[0];
        assert_eq!(p.state, PhaseState::Completed);
        assert_eq!(p.output, Some(json!([{"item": 0}, null, {"item": 2}])));
        assert_eq!(t.tokens(), 21);
        assert_eq!(t.cost().usd, 1.5);
        assert_eq!(t.attempts(), 3);
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(serde_json::from_str::<Task>(&json).unwrap(), t);
    }

    #[test]
    fn item_events_out_of_turn_are_refused_and_change_nothing() {
        let mut t = listed(2);
        refused_untouched(&t, started(2, 1));
        refused_untouched(&t, started(0, 2));
        refused_untouched(&t, finished(0, 1, AttemptOutcome::Succeeded));
        refused_untouched(
            &t,
            EventKind::ItemsListed {
                phase: "each".into(),
                count: 4,
                error: None,
                name: None,
            },
        );
        apply(&mut t, started(0, 1));
        refused_untouched(&t, started(0, 2));
        refused_untouched(
            &t,
            EventKind::ItemFailed {
                phase: "each".into(),
                item: 0,
                error: "x".into(),
            },
        );
        apply(&mut t, finished(0, 1, AttemptOutcome::Interrupted));
        let it = &t.phases[0].items.as_ref().unwrap().items[0];
        assert_eq!(
            (it.state, it.tries, it.attempts),
            (ItemState::Pending, 0, 1)
        );
        apply(&mut t, started(0, 2));
        apply(&mut t, finished(0, 2, AttemptOutcome::Succeeded));
        refused_untouched(&t, started(0, 3));
    }

    #[test]
    fn a_list_that_cannot_be_read_fails_the_phase() {
        let mut t = Task::new(
            "t".into(),
            json!({}),
            &["each".to_string()],
            Timestamp::UNIX_EPOCH,
            1,
        );
        apply(
            &mut t,
            EventKind::ItemsListed {
                phase: "each".into(),
                count: 0,
                error: Some("no such field".into()),
                name: None,
            },
        );
        assert_eq!(t.phases[0].state, PhaseState::Failed);
        assert_eq!(t.phases[0].error.as_deref(), Some("no such field"));
        assert!(t.phases[0].items.is_none());
    }
}
