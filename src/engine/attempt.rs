//! One attempt of one phase: the request an agent gets, the task that runs
//! it under a timeout, and the event its result becomes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;

use super::clock;
use super::cost::{PriceTable, Usage};
use super::event::{AttemptOutcome, ErrorClass, EventKind, TaskId};
use super::live::{LiveEvent, LiveKind};
use super::state::PhaseState;
use super::task::Task;
use crate::agents::{Agent, AgentRequest, CallContext, CallResult, Failure, Reply, TaskRef};
use crate::secrets::Secrets;
use crate::spec::Pipeline;
use crate::spec::model::PhaseSpec;

/// A finished call, on its way back to the engine as the event it becomes.
pub struct AttemptDone {
    pub task: TaskId,
    pub phase: usize,
    /// The item, for a `for_each` phase.
    pub item: Option<u32>,
    /// An `AttemptFinished` event, priced and checked against the contract.
    pub event: EventKind,
}

/// The request for the next attempt of phase `idx`, on `model` when a
/// routing rule chose one.
pub fn request(
    task: &Task,
    pipeline: &Pipeline,
    idx: usize,
    model: Option<String>,
) -> AgentRequest {
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
        item: None,
        item_index: None,
        send_back: super::send_back::offer(task, pipeline, idx),
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
    let item = request.item_index;
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
            output_schema: spec.output_schema.clone(),
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
        let _ = results.send(AttemptDone {
            task,
            phase,
            item,
            event,
        });
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
    // Figures no call can have are the agent misbehaving: the attempt fails,
    // and they are not kept, so that no sum or budget takes them in.
    let (usage, impossible) = match usage.as_ref().map(Usage::check) {
        Some(Err(why)) => (None, Some(why)),
        _ => (usage, None),
    };
    let cost_usd = usage.as_ref().and_then(|u| prices.cost(u));
    let contract = |output: &serde_json::Value| {
        super::contract::broken(spec, output).map(|message| AttemptOutcome::Failed {
            class: ErrorClass::Contract,
            message,
        })
    };
    let reply = match (reply, impossible) {
        (_, Some(why)) => Err(Failure::new(
            ErrorClass::Protocol,
            format!("the agent reported usage no call can have: {why}"),
        )),
        (
            Ok(
                Reply::Output { output }
                | Reply::Review { output, .. }
                | Reply::SendBack {
                    output: Some(output),
                    ..
                },
            ),
            None,
        ) if !output.is_object() => Err(Failure::new(ErrorClass::Protocol, not_an_object(&output))),
        (reply, None) => reply,
    };
    let (outcome, output) = match reply {
        Ok(Reply::Output { output }) => (
            contract(&output).unwrap_or(AttemptOutcome::Succeeded),
            Some(output),
        ),
        Ok(Reply::Review {
            reason,
            output,
            escalation,
        }) => (
            contract(&output).unwrap_or(AttemptOutcome::ReviewRequested { reason, escalation }),
            Some(output),
        ),
        Ok(Reply::SendBack {
            to,
            feedback,
            output,
        }) => match super::send_back::refusal(spec, &to) {
            Some(message) => (
                AttemptOutcome::Failed {
                    class: ErrorClass::Protocol,
                    message,
                },
                None,
            ),
            None => (AttemptOutcome::SentBack { to, feedback }, output),
        },
        Ok(Reply::Error { message, retryable }) => {
            let class = if retryable {
                ErrorClass::Retryable
            } else {
                ErrorClass::Fatal
            };
            (AttemptOutcome::Failed { class, message }, None)
        }
        Ok(Reply::Blocked { reason, escalation }) => {
            (AttemptOutcome::Blocked { reason, escalation }, None)
        }
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
        duration_ms: clock::millis(duration),
        outcome,
        usage,
        cost_usd,
        output,
        trace,
        http,
        retry_after_ms: retry_after.map(clock::millis),
    }
}

/// Why `output` cannot be a phase's output: later phases and conditions
/// read it as `outputs.PHASE.FIELD`, so it must be an object.
fn not_an_object(output: &serde_json::Value) -> String {
    let what = match output {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    };
    format!(
        "the output is {what}, not a JSON object; a phase's output must be an object of fields (later phases read them as outputs.PHASE.FIELD), e.g. {{\"output\": {{\"result\": ...}}}}"
    )
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;
    use crate::spec::model::{Backoff, OnFailure, RetryPolicy, ReviewMode};

    fn spec() -> PhaseSpec {
        PhaseSpec {
            id: "one".into(),
            agent: "a".into(),
            role: None,
            after: Vec::new(),
            when: Vec::new(),
            when_condition: None,
            on_failure: OnFailure::Stop,
            review: ReviewMode::Never,
            required_output: Vec::new(),
            output_schema: None,
            timeout: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 1,
                backoff: Backoff::Fixed,
                initial_delay: Duration::ZERO,
                max_delay: Duration::ZERO,
                jitter: 0.0,
            },
            disabled: None,
            fan_out: None,
            cache: None,
            send_back: None,
        }
    }

    fn outcome_of(
        reply: Reply,
        usage: Option<Usage>,
    ) -> (AttemptOutcome, Option<Usage>, Option<Value>) {
        outcome_for(&spec(), reply, usage)
    }

    fn outcome_for(
        spec: &PhaseSpec,
        reply: Reply,
        usage: Option<Usage>,
    ) -> (AttemptOutcome, Option<Usage>, Option<Value>) {
        let result = CallResult {
            reply: Ok(reply),
            usage,
            trace: Vec::new(),
            http: None,
            retry_after: None,
        };
        let prices = PriceTable::built_in();
        match finished(result, 1, Duration::MAX, spec, Some("gpt-4o"), &prices) {
            EventKind::AttemptFinished {
                outcome,
                usage,
                output,
                duration_ms,
                ..
            } => {
                assert_eq!(duration_ms, u64::MAX, "saturates");
                (outcome, usage, output)
            }
            other => panic!("{other:?}"),
        }
    }

    fn protocol_message(outcome: &AttemptOutcome) -> &str {
        match outcome {
            AttemptOutcome::Failed {
                class: ErrorClass::Protocol,
                message,
            } => message,
            other => panic!("expected a protocol error, got {other:?}"),
        }
    }

    #[test]
    fn impossible_usage_fails_the_attempt_and_is_not_kept() {
        let huge = Usage {
            input_tokens: u64::MAX,
            output_tokens: 4,
            ..Usage::default()
        };
        let (outcome, usage, output) = outcome_of(
            Reply::Output {
                output: json!({"a": 1}),
            },
            Some(huge),
        );
        let message = protocol_message(&outcome);
        assert!(message.contains("input_tokens"), "{message}");
        assert!(usage.is_none() && output.is_none());
        let dear = Usage {
            input_tokens: 1,
            cost_usd: Some(1e308),
            ..Usage::default()
        };
        let (outcome, ..) = outcome_of(Reply::Output { output: json!({}) }, Some(dear));
        assert!(protocol_message(&outcome).contains("cost_usd"));
        let fine = Usage {
            input_tokens: 10,
            ..Usage::default()
        };
        let (outcome, usage, _) = outcome_of(Reply::Output { output: json!({}) }, Some(fine));
        assert_eq!(outcome, AttemptOutcome::Succeeded);
        assert_eq!(usage.unwrap().model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn an_output_that_is_not_an_object_is_a_protocol_error() {
        for (output, what) in [
            (json!(5), "a number"),
            (json!("text"), "a string"),
            (json!([1, 2]), "an array"),
            (Value::Null, "null"),
            (json!(true), "a boolean"),
        ] {
            let (outcome, _, kept) = outcome_of(
                Reply::Output {
                    output: output.clone(),
                },
                None,
            );
            let message = protocol_message(&outcome);
            assert!(
                message.contains(&format!("the output is {what}, not a JSON object")),
                "{message}"
            );
            assert!(kept.is_none());
            let (outcome, ..) = outcome_of(
                Reply::Review {
                    reason: "unsure".into(),
                    output,
                    escalation: Default::default(),
                },
                None,
            );
            protocol_message(&outcome);
        }
        let (outcome, _, kept) = outcome_of(
            Reply::Output {
                output: json!({"a": 1}),
            },
            None,
        );
        assert_eq!(outcome, AttemptOutcome::Succeeded);
        assert_eq!(kept, Some(json!({"a": 1})));
    }

    fn contract_message(outcome: &AttemptOutcome) -> &str {
        match outcome {
            AttemptOutcome::Failed {
                class: ErrorClass::Contract,
                message,
            } => message,
            other => panic!("expected a contract error, got {other:?}"),
        }
    }

    fn lighting() -> PhaseSpec {
        let schema = json!({
            "type": "object",
            "required": ["groups"],
            "properties": {"groups": {"type": "array", "items": {
                "type": "object",
                "required": ["id"],
                "properties": {"intensity": {"type": "number", "minimum": 0, "maximum": 1}}
            }}}
        });
        PhaseSpec {
            output_schema: Some(
                crate::spec::model::OutputSchema::compile("schemas/lighting.json".into(), schema)
                    .unwrap(),
            ),
            ..spec()
        }
    }

    #[test]
    fn an_output_breaking_the_schema_names_each_pointer_and_rule() {
        let output = json!({"groups": [
            {"id": "a", "intensity": 0.5},
            {"id": "b", "intensity": 0.1},
            {"id": "c", "intensity": 1.4},
            {"intensity": -1}
        ]});
        let (outcome, _, kept) = outcome_for(
            &lighting(),
            Reply::Output {
                output: output.clone(),
            },
            None,
        );
        assert_eq!(
            contract_message(&outcome),
            "output breaks its schema (schemas/lighting.json): /groups/2/intensity: 1.4 is greater than the maximum of 1; /groups/3: \"id\" is a required property; /groups/3/intensity: -1 is less than the minimum of 0"
        );
        assert_eq!(kept, Some(output), "the output is kept to look at");
        // A review reply's output is held to the schema too.
        let (outcome, ..) = outcome_for(
            &lighting(),
            Reply::Review {
                reason: "unsure".into(),
                output: json!({"groups": 3}),
                escalation: Default::default(),
            },
            None,
        );
        assert_eq!(
            contract_message(&outcome),
            "output breaks its schema (schemas/lighting.json): /groups: 3 is not of type \"array\""
        );
        let (outcome, ..) = outcome_for(
            &lighting(),
            Reply::Output {
                output: json!({"groups": [{"id": "a", "intensity": 1}]}),
            },
            None,
        );
        assert_eq!(outcome, AttemptOutcome::Succeeded);
    }

    #[test]
    fn required_output_and_the_schema_both_apply() {
        let spec = PhaseSpec {
            required_output: vec!["summary".into()],
            ..lighting()
        };
        let (outcome, ..) = outcome_for(&spec, Reply::Output { output: json!({}) }, None);
        assert_eq!(
            contract_message(&outcome),
            "output lacks required field(s): summary; output breaks its schema (schemas/lighting.json): (the output): \"groups\" is a required property"
        );
        let (outcome, ..) = outcome_for(
            &spec,
            Reply::Output {
                output: json!({"groups": []}),
            },
            None,
        );
        assert_eq!(
            contract_message(&outcome),
            "output lacks required field(s): summary"
        );
        let (outcome, ..) = outcome_for(
            &spec,
            Reply::Output {
                output: json!({"groups": [], "summary": "s"}),
            },
            None,
        );
        assert_eq!(outcome, AttemptOutcome::Succeeded);
    }
}
