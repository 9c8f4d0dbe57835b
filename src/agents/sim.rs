//! The `sim` agent: a stand-in for an LLM with seeded latency, token counts,
//! failures, blockers and review requests. The same seed, task, phase and
//! attempt always give the same result, whatever order calls run in.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::{Agent, AgentRequest, BoxFuture, CallContext, CallResult, Failure, Reply};
use crate::engine::cost::Usage;
use crate::engine::escalation::{Escalation, Severity};
use crate::engine::event::ErrorClass;
use crate::spec::model::SimSpec;

pub struct SimAgent {
    spec: Arc<SimSpec>,
}

impl SimAgent {
    pub fn new(spec: SimSpec) -> SimAgent {
        SimAgent {
            spec: Arc::new(spec),
        }
    }
}

/// SplitMix64: small, fast, and the same on every platform and version.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi], for any two values.
    fn between(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        match (hi - lo).checked_add(1) {
            Some(span) => lo + self.next_u64() % span,
            // The whole of u64.
            None => self.next_u64(),
        }
    }
}

/// FNV-1a over the parts, so each call gets its own stream.
fn seed_for(seed: u64, parts: &[&[u8]]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64 ^ seed;
    for part in parts {
        for b in part.iter().chain(&[0xff]) {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// What the simulator decides for one call, before any waiting.
pub(crate) fn decide(spec: &SimSpec, req: &AgentRequest) -> (Duration, CallResult) {
    let attempt = req.attempt.to_le_bytes();
    let item = req.item_index.map(u32::to_le_bytes);
    let mut parts: Vec<&[u8]> = vec![req.task.id.as_bytes(), req.phase.as_bytes(), &attempt];
    // Each item of a `for_each` phase draws its own.
    if let Some(item) = &item {
        parts.push(item);
    }
    let mut rng = Rng(seed_for(spec.seed, &parts));
    let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
    let latency =
        Duration::from_micros(rng.between(micros(spec.latency.lo), micros(spec.latency.hi)));
    let output_tokens = rng.between(spec.tokens.lo, spec.tokens.hi);
    let usage = Usage {
        model: Some(req.model.clone().unwrap_or_else(|| spec.model.clone())),
        input_tokens: (output_tokens / 4).saturating_add(50),
        output_tokens,
        ..Usage::default()
    };
    let roll = rng.unit();
    let mut edge = spec.fail_rate;
    let reply = if roll < edge {
        Err(Failure::new(
            ErrorClass::Retryable,
            "simulated transient failure (overloaded)",
        ))
    } else if roll < {
        edge += spec.fatal_rate;
        edge
    } {
        Ok(Reply::Error {
            message: "simulated failure that will not go away".into(),
            retryable: false,
        })
    } else if roll < {
        edge += spec.block_rate;
        edge
    } {
        Ok(Reply::Blocked {
            reason: format!(
                "simulated blocker: {} needs information it lacks",
                req.phase
            ),
            escalation: Escalation {
                attempted: vec![
                    "searched the task's input".into(),
                    "asked the earlier phases' outputs".into(),
                ],
                severity: Some(Severity::Medium),
            },
        })
    } else if roll < {
        edge += spec.review_rate;
        edge
    } {
        Ok(Reply::Review {
            reason: "simulated low confidence".into(),
            output: output(spec, req, output_tokens),
            escalation: Escalation::default(),
        })
    } else if let Some(to) = req.send_back.as_ref().and_then(|s| s.to.first())
        && roll < {
            edge += spec.send_back_rate;
            edge
        }
    {
        Ok(Reply::SendBack {
            to: to.clone(),
            feedback: format!(
                "simulated review: {to} misses the error cases (round {})",
                req.send_back.as_ref().map_or(0, |s| s.rounds) + 1
            ),
            output: Some(output(spec, req, output_tokens)),
        })
    } else {
        Ok(Reply::Output {
            output: output(spec, req, output_tokens),
        })
    };
    let reply = match reply {
        Ok(Reply::Error {
            message,
            retryable: false,
        }) => Err(Failure::new(ErrorClass::Fatal, message)),
        other => other,
    };
    let trace = vec![format!(
        "sim {}: {} tokens in {:?}",
        req.model.as_deref().unwrap_or(&spec.model),
        output_tokens,
        latency
    )];
    (
        latency,
        CallResult {
            reply,
            usage: Some(usage),
            trace,
            http: None,
            retry_after: None,
        },
    )
}

fn output(spec: &SimSpec, req: &AgentRequest, tokens: u64) -> Value {
    let mut out = Map::new();
    out.insert(
        "summary".into(),
        json!(format!(
            "{} for task {} (attempt {})",
            req.phase, req.task.id, req.attempt
        )),
    );
    for field in &spec.output_fields {
        out.insert(field.clone(), json!(format!("{field} of {}", req.task.id)));
    }
    out.insert("tokens".into(), json!(tokens));
    if let Some(i) = req.item_index {
        out.insert("item_index".into(), json!(i));
    }
    if let Some(feedback) = &req.feedback {
        out.insert("addressed_feedback".into(), json!(feedback));
    }
    Value::Object(out)
}

impl Agent for SimAgent {
    fn model(&self) -> Option<&str> {
        Some(&self.spec.model)
    }

    fn call(&self, request: Arc<AgentRequest>, ctx: CallContext) -> BoxFuture<CallResult> {
        let spec = self.spec.clone();
        Box::pin(async move {
            let (latency, mut result) = decide(&spec, &request);
            if let (Some(schema), Ok(Reply::Output { output } | Reply::Review { output, .. })) =
                (&ctx.output_schema, &mut result.reply)
            {
                *output = super::sim_schema::fit(schema, std::mem::take(output));
            }
            if latency > ctx.timeout {
                tokio::time::sleep(ctx.timeout).await;
                return CallResult::failed(
                    ErrorClass::Timeout,
                    format!("no reply within {:?}", ctx.timeout),
                );
            }
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            if let Some(tx) = &ctx.trace {
                for line in &result.trace {
                    let _ = tx.send(line.clone());
                }
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agents::TaskRef;
    use crate::spec::model::Range;

    fn spec(fail: f64, fatal: f64, block: f64, review: f64) -> SimSpec {
        SimSpec {
            latency: Range {
                lo: Duration::ZERO,
                hi: Duration::ZERO,
            },
            tokens: Range { lo: 100, hi: 200 },
            fail_rate: fail,
            fatal_rate: fatal,
            block_rate: block,
            review_rate: review,
            send_back_rate: 0.0,
            model: "claude-sonnet-4-5".into(),
            seed: 7,
            output_fields: vec!["plan".into()],
        }
    }

    fn req(task: &str, attempt: u32) -> AgentRequest {
        AgentRequest {
            task: TaskRef {
                id: task.into(),
                input: json!({}),
            },
            phase: "p".into(),
            attempt,
            outputs: Map::new(),
            feedback: None,
            model: None,
            item: None,
            item_index: None,
            send_back: None,
        }
    }

    #[test]
    fn same_inputs_same_result() {
        let s = spec(0.3, 0.1, 0.1, 0.1);
        for i in 0..50 {
            let r = req(&format!("t{i}"), 1);
            assert_eq!(decide(&s, &r).1, decide(&s, &r).1);
        }
    }

    #[test]
    fn proportions_follow_the_rates() {
        let s = spec(0.2, 0.1, 0.05, 0.05);
        let (mut retry, mut fatal, mut block, mut review, mut ok) = (0, 0, 0, 0, 0);
        for i in 0..20_000 {
            match decide(&s, &req(&format!("t{i}"), 1)).1.reply {
                Err(f) if f.class == ErrorClass::Retryable => retry += 1,
                Err(f) if f.class == ErrorClass::Fatal => fatal += 1,
                Ok(Reply::Blocked { .. }) => block += 1,
                Ok(Reply::Review { .. }) => review += 1,
                Ok(Reply::Output { output }) => {
                    assert!(output.get("plan").is_some());
                    ok += 1
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        let near = |n: i32, share: f64| ((n as f64 / 20_000.0) - share).abs() < 0.015;
        assert!(
            near(retry, 0.2)
                && near(fatal, 0.1)
                && near(block, 0.05)
                && near(review, 0.05)
                && near(ok, 0.6),
            "{retry} {fatal} {block} {review} {ok}"
        );
    }

    #[test]
    fn tokens_stay_in_range_and_model_is_reported() {
        let s = spec(0.0, 0.0, 0.0, 0.0);
        for i in 0..200 {
            let usage = decide(&s, &req(&format!("t{i}"), 1)).1.usage.unwrap();
            assert!((100..=200).contains(&usage.output_tokens));
            assert_eq!(usage.model.as_deref(), Some("claude-sonnet-4-5"));
        }
    }

    #[test]
    fn ranges_as_wide_as_the_types_do_not_panic() {
        let mut s = spec(0.0, 0.0, 0.0, 0.0);
        s.tokens = Range {
            lo: 0,
            hi: u64::MAX,
        };
        s.latency = Range {
            lo: Duration::ZERO,
            hi: Duration::MAX,
        };
        for i in 0..100 {
            let (latency, result) = decide(&s, &req(&format!("t{i}"), 1));
            assert!(latency <= Duration::MAX);
            assert!(result.usage.is_some());
        }
    }

    #[test]
    fn a_routed_model_is_the_one_reported() {
        let s = spec(0.0, 0.0, 0.0, 0.0);
        let mut r = req("t", 1);
        r.model = Some("claude-opus-4".into());
        let usage = decide(&s, &r).1.usage.unwrap();
        assert_eq!(usage.model.as_deref(), Some("claude-opus-4"));
    }

    #[tokio::test]
    async fn latency_past_timeout_is_a_timeout() {
        let mut s = spec(0.0, 0.0, 0.0, 0.0);
        s.latency = Range {
            lo: Duration::from_secs(5),
            hi: Duration::from_secs(5),
        };
        let agent = SimAgent::new(s);
        let ctx = CallContext {
            timeout: Duration::from_millis(10),
            trace: None,
            progress: None,
            output_schema: None,
        };
        let r = agent.call(Arc::new(req("t", 1)), ctx).await;
        assert_eq!(r.reply.unwrap_err().class, ErrorClass::Timeout);
    }

    #[tokio::test]
    async fn the_output_is_shaped_to_the_phases_schema() {
        let schema = crate::spec::model::OutputSchema::compile(
            "s.json".into(),
            json!({"type": "object", "required": ["groups"], "properties": {
                "groups": {"type": "array", "items": {"type": "object", "required": ["intensity"],
                    "properties": {"intensity": {"type": "number", "minimum": 0, "maximum": 1}}}}
            }}),
        )
        .unwrap();
        let mut ctx = CallContext::quiet(Duration::from_secs(1));
        ctx.output_schema = Some(schema.clone());
        let agent = SimAgent::new(spec(0.0, 0.0, 0.0, 0.0));
        let r = agent.call(Arc::new(req("t", 1)), ctx).await;
        let Ok(Reply::Output { output }) = r.reply else {
            panic!("{:?}", r.reply)
        };
        assert!(schema.holds(&output), "{output}");
        assert_eq!(output["groups"], json!([{"intensity": 0.5}]));
        assert_eq!(output["plan"], "plan of t", "the usual fields stay");
    }
}
