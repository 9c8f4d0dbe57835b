//! One attempt of one phase: the request an agent gets, the task that runs
//! it under a timeout, and the event its result becomes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::advance::missing_fields;
use super::cost::{PriceTable, Usage};
use super::event::{AttemptOutcome, ErrorClass, EventKind, TaskId};
use super::live::{LiveEvent, LiveKind};
use super::state::PhaseState;
use super::task::Task;
use crate::agents::{Agent, AgentRequest, CallContext, CallResult, Reply, TaskRef};
use crate::secrets::Secrets;
use crate::spec::Pipeline;
use crate::spec::model::PhaseSpec;

/// A finished call, on its way back to the engine as the event it becomes.
pub struct AttemptDone {
    pub task: TaskId,
    pub phase: usize,
    /// An `AttemptFinished` event, priced and checked against the contract.
    pub event: EventKind,
}

/// The request for the next attempt of phase `idx`, on `model` when a
/// routing rule chose one.
pub fn request(task: &Task, idx: usize, model: Option<String>) -> AgentRequest {
    let p = &task.phases[idx];
    AgentRequest {
        task: TaskRef {
            id: task.id.clone(),
            input: task.input.clone(),
        },
        phase: p.id.clone(),
        attempt: p.attempts.len() as u32 + 1,
        outputs: completed_outputs(task),
        feedback: p.feedback.clone(),
        model,
    }
}

/// The outputs of completed phases, by phase id, as agents receive them.
fn completed_outputs(task: &Task) -> serde_json::Map<String, serde_json::Value> {
    task.phases
        .iter()
        .filter(|p| p.state == PhaseState::Completed)
        .filter_map(|p| p.output.clone().map(|o| (p.id.clone(), o)))
        .collect()
}

/// Where an attempt's result and what it shows meanwhile go.
pub struct Outlets {
    pub results: mpsc::UnboundedSender<AttemptDone>,
    /// Progress and trace lines, lossy, never journaled.
    pub live: broadcast::Sender<Arc<LiveEvent>>,
    /// Masked out of what goes on `live`.
    pub secrets: Arc<Secrets>,
}

/// Runs the call on the runtime, and turns its result into an event there,
/// off the engine's thread. Aborting the returned handle drops the call,
/// which stops the agent's work. While the call runs, its progress and
/// trace lines go out on `live` (lossy, never journaled), with `secrets`
/// masked. Usage that names
/// no model is priced as the request's model, else the agent's.
pub fn spawn(
    agent: Arc<dyn Agent>,
    request: Arc<AgentRequest>,
    pipeline: Arc<Pipeline>,
    phase: usize,
    prices: Arc<PriceTable>,
    outlets: Outlets,
) -> AbortHandle {
    let Outlets {
        results,
        live,
        secrets,
    } = outlets;
    let attempt = request.attempt;
    let handle = tokio::spawn(async move {
        let spec = &pipeline.phases[phase];
        let task = request.task.id.clone();
        let timeout = spec.timeout;
        let started = Instant::now();
        let (trace_tx, mut trace_rx) = mpsc::unbounded_channel();
        let (progress_tx, mut progress_rx) = mpsc::unbounded_channel();
        let ctx = CallContext {
            timeout,
            trace: Some(trace_tx),
            progress: Some(progress_tx),
        };
        let publish = |kind: LiveKind| {
            // Nobody watching: nothing to build.
            if live.receiver_count() > 0 {
                let mut event = LiveEvent {
                    task: task.clone(),
                    phase: spec.id.clone(),
                    attempt,
                    kind,
                };
                secrets.mask_live(&mut event);
                let _ = live.send(Arc::new(event));
            }
        };
        let call = tokio::time::timeout(timeout, agent.call(request.clone(), ctx));
        tokio::pin!(call);
        let result = loop {
            tokio::select! {
                biased;
                done = &mut call => break done,
                Some(line) = trace_rx.recv() => publish(LiveKind::Trace { line }),
                Some(p) = progress_rx.recv() => publish(LiveKind::Progress(p)),
            }
        };
        // What the agent said last, just before it returned.
        while let Ok(line) = trace_rx.try_recv() {
            publish(LiveKind::Trace { line });
        }
        while let Ok(p) = progress_rx.try_recv() {
            publish(LiveKind::Progress(p));
        }
        let result = match result {
            Ok(result) => result,
            Err(_) => CallResult::failed(
                ErrorClass::Timeout,
                format!("no reply within {}", human(timeout)),
            ),
        };
        let model = request.model.as_deref().or(agent.model());
        let event = finished(result, attempt, started.elapsed(), spec, model, &prices);
        let _ = results.send(AttemptDone { task, phase, event });
    });
    handle.abort_handle()
}

fn human(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

/// The `AttemptFinished` event for a call's result, with the phase's output
/// contract checked and the cost priced.
pub fn finished(
    result: CallResult,
    attempt: u32,
    duration: Duration,
    spec: &PhaseSpec,
    agent_model: Option<&str>,
    prices: &PriceTable,
) -> EventKind {
    let CallResult {
        reply,
        usage,
        trace,
        http,
        retry_after,
    } = result;
    let usage = usage.map(|mut u: Usage| {
        if u.model.is_none() {
            u.model = agent_model.map(str::to_string);
        }
        u
    });
    let cost_usd = usage.as_ref().and_then(|u| prices.cost(u));
    let contract = |output: &serde_json::Value| -> Option<AttemptOutcome> {
        if spec.required_output.is_empty() {
            return None;
        }
        if !output.is_object() {
            return Some(AttemptOutcome::Failed {
                class: ErrorClass::Contract,
                message: format!(
                    "output is not an object with {}",
                    spec.required_output.join(", ")
                ),
            });
        }
        let missing = missing_fields(output, &spec.required_output);
        (!missing.is_empty()).then(|| AttemptOutcome::Failed {
            class: ErrorClass::Contract,
            message: format!("output lacks required field(s): {}", missing.join(", ")),
        })
    };
    let (outcome, output) = match reply {
        Ok(Reply::Output { output }) => (
            contract(&output).unwrap_or(AttemptOutcome::Succeeded),
            Some(output),
        ),
        Ok(Reply::Review { reason, output }) => (
            contract(&output).unwrap_or(AttemptOutcome::ReviewRequested { reason }),
            Some(output),
        ),
        Ok(Reply::Error { message, retryable }) => {
            let class = if retryable {
                ErrorClass::Retryable
            } else {
                ErrorClass::Fatal
            };
            (AttemptOutcome::Failed { class, message }, None)
        }
        Ok(Reply::Blocked { reason }) => (AttemptOutcome::Blocked { reason }, None),
        Err(failure) => (
            AttemptOutcome::Failed {
                class: failure.class,
                message: failure.message,
            },
            None,
        ),
    };
    EventKind::AttemptFinished {
        phase: spec.id.clone(),
        attempt,
        duration_ms: duration.as_millis() as u64,
        outcome,
        usage,
        cost_usd,
        output,
        trace,
        http,
        retry_after_ms: retry_after.map(|d| d.as_millis() as u64),
    }
}
