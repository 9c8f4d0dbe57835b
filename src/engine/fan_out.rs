//! What a `for_each` phase needs next, decided from the task's state alone
//! (the sibling of `advance` for items): list the items when the phase's
//! turn comes, retry or fail an item whose attempt failed, settle the phase
//! once every item is done or failed, and say which items may start.
//!
//! Counts kept by the fold (`ItemsRecord`) keep these cheap: a scan over
//! the items happens only when one waits after a failure, or at the end.

use jiff::Timestamp;
use serde_json::{Map, Value};

use super::advance::{is_settled, when_fails};
use super::event::{AttemptOutcome, EventKind};
use super::state::PhaseState;
use super::task::{ItemState, ItemsRecord, Task};
use crate::agents::{AgentRequest, TaskRef};
use crate::spec::Pipeline;
use crate::spec::fan_out::{FanOut, ItemFailure, ItemSource};
use crate::spec::model::PhaseSpec;

/// The next event the task's items call for, if any.
pub fn follow_up(task: &Task, pipeline: &Pipeline) -> Option<EventKind> {
    for (idx, spec) in pipeline.phases.iter().enumerate() {
        let Some(fan_out) = &spec.fan_out else {
            continue;
        };
        let p = &task.phases[idx];
        let found = match p.items.as_deref() {
            None => list(task, pipeline, idx, spec, fan_out),
            Some(items) if p.state == PhaseState::Running => {
                item_step(task, pipeline, idx, spec, fan_out, items)
            }
            Some(_) => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

/// The phase's items, listed once its turn has come.
fn list(
    task: &Task,
    pipeline: &Pipeline,
    idx: usize,
    spec: &PhaseSpec,
    fan_out: &FanOut,
) -> Option<EventKind> {
    let p = &task.phases[idx];
    if p.state != PhaseState::Pending || spec.disabled.is_some() || !task.holds.is_empty() {
        return None;
    }
    if !turn_has_come(task, pipeline, idx, fan_out) || when_fails(spec, &task.input).is_some() {
        return None;
    }
    let (count, error) = match list_of(task, fan_out) {
        Ok(items) => (items.len() as u32, None),
        Err(why) => (0, Some(why)),
    };
    Some(EventKind::ItemsListed {
        phase: p.id.clone(),
        count,
        error,
        name: fan_out.source.name().map(str::to_string),
    })
}

/// The list a phase fans out over, for this task.
fn list_of<'t>(task: &'t Task, fan_out: &FanOut) -> Result<&'t [Value], String> {
    fan_out.source.items(
        &task.input,
        |phase| {
            task.phase(phase)
                .filter(|p| p.state == PhaseState::Completed)
                .and_then(|p| p.output.as_ref())
        },
        &fan_out.text,
    )
}

/// The phases it waits for are settled; in a chain, the phase before it
/// need only have listed its items (item i goes on when it is done there).
fn turn_has_come(task: &Task, pipeline: &Pipeline, idx: usize, fan_out: &FanOut) -> bool {
    pipeline.phases[idx].after.iter().all(|&d| {
        let settled = settled(task, pipeline, d);
        match fan_out.chain_prev {
            Some(prev) if prev == d => settled || task.phases[d].items.is_some(),
            _ => settled,
        }
    })
}

fn settled(task: &Task, pipeline: &Pipeline, idx: usize) -> bool {
    let spec = &pipeline.phases[idx];
    let p = &task.phases[idx];
    let approval = spec.review == crate::spec::model::ReviewMode::Always || p.agent_asked_review();
    is_settled(p, spec.on_failure, approval)
}

/// For a listed phase under way: an item to fail for good, the phase to
/// fail (`stop`), or the phase to settle.
fn item_step(
    task: &Task,
    pipeline: &Pipeline,
    idx: usize,
    spec: &PhaseSpec,
    fan_out: &FanOut,
    items: &ItemsRecord,
) -> Option<EventKind> {
    let phase = &task.phases[idx].id;
    if items.waiting > 0 {
        for (i, it) in items.items.iter().enumerate() {
            if it.state != ItemState::Waiting || it.retry_due.is_some() {
                continue;
            }
            let gives_up = match &it.last {
                Some(AttemptOutcome::Failed { class, .. }) => {
                    !class.is_retryable() || it.tries >= spec.retry.max_attempts
                }
                _ => true,
            };
            if gives_up {
                return Some(EventKind::ItemFailed {
                    phase: phase.clone(),
                    item: i as u32,
                    error: it.error.clone().unwrap_or_else(|| "failed".into()),
                });
            }
        }
    }
    if items.failed > 0 && fan_out.on_item_failure == ItemFailure::Stop {
        let (i, it) = items
            .items
            .iter()
            .enumerate()
            .find(|(_, it)| it.state == ItemState::Failed)?;
        return Some(EventKind::PhaseFailed {
            phase: phase.clone(),
            error: format!(
                "item {i} failed: {}",
                it.error.as_deref().unwrap_or("failed")
            ),
        });
    }
    if items.running > 0 || items.waiting > 0 {
        return None;
    }
    let all = items.done + items.failed == items.count();
    let rest_dead = || {
        fan_out
            .chain_prev
            .is_some_and(|prev| settled(task, pipeline, prev))
            && (0..items.count()).all(|i| settled_item(task, pipeline, idx, i))
    };
    (all || rest_dead()).then(|| EventKind::ItemsSettled {
        phase: phase.clone(),
    })
}

/// Item `i` of phase `idx` is done, failed, or will never run because it
/// failed earlier in its chain.
fn settled_item(task: &Task, pipeline: &Pipeline, idx: usize, i: u32) -> bool {
    let Some(it) = task.phases[idx]
        .items
        .as_deref()
        .map(|x| &x.items[i as usize])
    else {
        return false;
    };
    match it.state {
        ItemState::Done | ItemState::Failed => true,
        ItemState::Pending if it.attempts == 0 => dead(task, pipeline, idx, i),
        _ => false,
    }
}

/// Item `i` failed in a phase before `idx` in its chain.
fn dead(task: &Task, pipeline: &Pipeline, idx: usize, i: u32) -> bool {
    let Some(prev) = pipeline.phases[idx]
        .fan_out
        .as_ref()
        .and_then(|f| f.chain_prev)
    else {
        return false;
    };
    match task.phases[prev]
        .items
        .as_deref()
        .map(|x| &x.items[i as usize])
    {
        Some(it) if it.state == ItemState::Failed => true,
        Some(it) if it.state == ItemState::Pending && it.attempts == 0 => {
            dead(task, pipeline, prev, i)
        }
        _ => false,
    }
}

/// Items that may start now, as (phase, item): later phases of a chain
/// first, so that items already under way finish before new ones start;
/// at most `max_items_in_flight` (else `concurrency`) per chain, running
/// ones included.
pub fn ready_items(
    task: &Task,
    pipeline: &Pipeline,
    now: Timestamp,
    concurrency: usize,
) -> Vec<(usize, u32)> {
    let mut ready = Vec::new();
    if task.state.is_final() || !task.holds.is_empty() {
        return ready;
    }
    for (idx, spec) in pipeline.phases.iter().enumerate().rev() {
        let Some(fan_out) = &spec.fan_out else {
            continue;
        };
        let p = &task.phases[idx];
        let Some(items) = p.items.as_deref() else {
            continue;
        };
        if !matches!(p.state, PhaseState::Running | PhaseState::Pending) || spec.disabled.is_some()
        {
            continue;
        }
        let head = fan_out.chain_head;
        let cap = pipeline.phases[head]
            .fan_out
            .as_ref()
            .and_then(|f| f.max_items_in_flight)
            .unwrap_or(concurrency);
        let in_chain = |i: usize| {
            pipeline.phases[i]
                .fan_out
                .as_ref()
                .is_some_and(|f| f.chain_head == head)
        };
        let busy = (0..pipeline.phases.len())
            .filter(|&i| in_chain(i))
            .map(|i| {
                task.phases[i]
                    .items
                    .as_ref()
                    .map_or(0, |x| x.running as usize)
            })
            .sum::<usize>()
            + ready.iter().filter(|(i, _)| in_chain(*i)).count();
        let mut free = cap.saturating_sub(busy);
        if free == 0 {
            continue;
        }
        if items.waiting > 0 {
            for (i, it) in items.items.iter().enumerate() {
                if free == 0 {
                    break;
                }
                let retry = it.state == ItemState::Waiting
                    && it.retry_due.is_none_or(|due| due <= now)
                    && it.tries < spec.retry.max_attempts
                    && matches!(&it.last, Some(AttemptOutcome::Failed { class, .. }) if class.is_retryable());
                if retry {
                    ready.push((idx, i as u32));
                    free -= 1;
                }
            }
        }
        let prev = fan_out
            .chain_prev
            .and_then(|prev| task.phases[prev].items.as_deref());
        for i in items.cursor..items.count() {
            if free == 0 {
                break;
            }
            if items.items[i as usize].state != ItemState::Pending {
                continue;
            }
            if let Some(prev) = prev {
                let there = &prev.items[i as usize];
                // Past the phase before's first pending item, none is done
                // yet, unless that item never runs there: it failed earlier
                // in the chain (and holds that phase's cursor back for good).
                if i >= prev.cursor && there.state == ItemState::Pending {
                    if dead(task, pipeline, idx, i) {
                        continue;
                    }
                    break;
                }
                if there.state != ItemState::Done {
                    continue;
                }
            }
            ready.push((idx, i));
            free -= 1;
        }
    }
    ready
}

/// The request for the next attempt of item `item` of phase `idx`: the
/// task's input and the completed phases' outputs without the list being
/// fanned out (each request would carry it whole), the item's own outputs
/// of the phases before it in its chain, and the item.
pub fn request(
    task: &Task,
    pipeline: &Pipeline,
    idx: usize,
    item: u32,
    model: Option<String>,
) -> Option<AgentRequest> {
    let fan_out = pipeline.phases[idx].fan_out.as_ref()?;
    let p = &task.phases[idx];
    let record = p.items.as_deref()?.items.get(item as usize)?;
    let value = list_of(task, fan_out).ok()?.get(item as usize)?.clone();
    let (input, list_phase, list_path) = match &fan_out.source {
        ItemSource::Input(path) => (without(&task.input, path), None, &[][..]),
        ItemSource::Output { phase, path } => (task.input.clone(), Some(phase.as_str()), &path[..]),
    };
    let mut chain = Vec::new();
    let mut prev = fan_out.chain_prev;
    while let Some(pi) = prev {
        chain.push(pi);
        prev = pipeline.phases[pi]
            .fan_out
            .as_ref()
            .and_then(|f| f.chain_prev);
    }
    let mut outputs = Map::new();
    for (qi, q) in task.phases.iter().enumerate() {
        // The chain's phases give this item's own output, below.
        if q.state != PhaseState::Completed || chain.contains(&qi) {
            continue;
        }
        if let Some(o) = &q.output {
            let o = match list_phase {
                Some(ph) if ph == q.id => without(o, list_path),
                _ => o.clone(),
            };
            outputs.insert(q.id.clone(), o);
        }
    }
    for pi in chain {
        let q = &task.phases[pi];
        // Settled, the phase holds the items' outputs as its list.
        let own = match (&q.output, q.items.as_deref()) {
            (Some(Value::Array(list)), _) if q.state == PhaseState::Completed => {
                list.get(item as usize).cloned()
            }
            (_, Some(x)) => x.items[item as usize].output.clone(),
            _ => None,
        };
        if let Some(o) = own {
            outputs.insert(q.id.clone(), o);
        }
    }
    Some(AgentRequest {
        task: TaskRef {
            id: task.id.clone(),
            input,
        },
        phase: p.id.clone(),
        attempt: record.attempts + 1,
        outputs,
        feedback: None,
        model,
        item: Some(value),
        item_index: Some(item),
        send_back: None,
    })
}

/// A copy of `v` without the field at `path`, copying nothing under it.
fn without(v: &Value, path: &[String]) -> Value {
    match (v, path) {
        (Value::Object(m), [first, rest @ ..]) => Value::Object(
            m.iter()
                .filter(|(k, _)| !(rest.is_empty() && *k == first))
                .map(|(k, x)| {
                    let x = if k == first {
                        without(x, rest)
                    } else {
                        x.clone()
                    };
                    (k.clone(), x)
                })
                .collect(),
        ),
        _ => v.clone(),
    }
}

/// Items of the task waiting after a failure: each may need one follow-up.
pub fn waiting(task: &Task) -> usize {
    task.phases
        .iter()
        .filter_map(|p| p.items.as_deref())
        .map(|i| i.waiting as usize)
        .sum()
}

/// The `ItemFinished` event for an item's finished call: the
/// `AttemptFinished` event the call became, for item `item`. `None` for
/// any other event.
pub fn item_finished(event: EventKind, item: u32, agent: &str) -> Option<EventKind> {
    match event {
        EventKind::AttemptFinished {
            phase,
            attempt,
            duration_ms,
            outcome,
            usage,
            cost_usd,
            output,
            ..
        } => Some(EventKind::ItemFinished {
            phase,
            item,
            attempt,
            agent: agent.to_string(),
            duration_ms,
            outcome,
            usage,
            cost_usd,
            output,
        }),
        _ => None,
    }
}

/// The event that records an item attempt lost to a restart; `agent` is
/// empty when no longer known.
pub fn item_interrupted(phase: String, item: u32, attempt: u32, agent: &str) -> EventKind {
    EventKind::ItemFinished {
        phase,
        item,
        attempt,
        agent: agent.to_string(),
        duration_ms: 0,
        outcome: AttemptOutcome::Interrupted,
        usage: None,
        cost_usd: None,
        output: None,
    }
}
