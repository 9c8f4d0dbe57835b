//! `kind = "http"`: a language model behind an HTTP API. One request per
//! attempt, built from the agent's templates; the reply streams in where
//! the API allows, and becomes the phase's output as text or JSON.
//!
//! The API key is read from the environment once, when the agent is built,
//! and goes nowhere but the request's header: not into errors, traces,
//! events or state.

mod anthropic;
mod classify;
mod exchange;
mod openai;
mod output;
mod sse;
pub mod template;
mod wire;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{Agent, AgentRequest, BoxFuture, CallContext, CallResult, Failure, Reply};
use crate::engine::cost::Usage;
use crate::engine::event::ErrorClass;
use crate::spec::model::{HttpSpec, OutputFormat, OutputSchema};
use exchange::{CallError, Exchange};
use wire::{Conversation, Role};

/// Bytes of a bad reply kept to show the model what it sent.
const MAX_REPAIR_TEXT: usize = 16 * 1024;

pub struct HttpAgent {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    spec: HttpSpec,
    /// One client, so that connections are reused across calls.
    client: Result<reqwest::Client, String>,
    /// `Ok(None)`: no key is sent. `Err`: why the key is missing.
    key: Result<Option<String>, String>,
    /// The last reply of a (task, phase) that was not the JSON asked for,
    /// or broke the phase's schema, fed back to the model in the next attempt.
    repairs: Mutex<HashMap<(String, String), Repair>>,
}

struct Repair {
    attempt: u32,
    reply: String,
    /// What the model is told about that reply.
    ask: String,
}

impl HttpAgent {
    pub fn new(name: &str, spec: HttpSpec) -> HttpAgent {
        let key = match &spec.api_key_env {
            None => Ok(None),
            Some(var) => match std::env::var(var) {
                Ok(k) if !k.trim().is_empty() => Ok(Some(k.trim().to_string())),
                Ok(_) => Err(format!(
                    "agent \"{name}\" reads its API key from ${var}, which is empty\n  help: export {var}=<your key>, or name another variable with api_key_env"
                )),
                Err(_) => Err(format!(
                    "agent \"{name}\" reads its API key from ${var}, which is not set\n  help: export {var}=<your key>, or name another variable with api_key_env"
                )),
            },
        };
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .user_agent(concat!("baton/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("agent \"{name}\" cannot set up HTTP: {e}"));
        HttpAgent {
            inner: Arc::new(Inner {
                name: name.to_string(),
                spec,
                client,
                key,
                repairs: Mutex::new(HashMap::new()),
            }),
        }
    }
}

impl Agent for HttpAgent {
    fn model(&self) -> Option<&str> {
        Some(&self.inner.spec.model)
    }

    fn ready(&self) -> Result<(), String> {
        self.inner.key.as_ref().map(|_| ())?;
        self.inner.client.as_ref().map(|_| ()).map_err(Clone::clone)
    }

    fn call(&self, request: Arc<AgentRequest>, ctx: CallContext) -> BoxFuture<CallResult> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let mut result = inner.call(&request, &ctx).await;
            if let Ok(Some(key)) = &inner.key {
                scrub(&mut result, key);
            }
            result
        })
    }
}

impl Inner {
    async fn call(&self, request: &AgentRequest, ctx: &CallContext) -> CallResult {
        let key = match &self.key {
            Ok(k) => k.as_deref(),
            Err(why) => return CallResult::failed(ErrorClass::Fatal, why.clone()),
        };
        let client = match &self.client {
            Ok(c) => c,
            Err(why) => return CallResult::failed(ErrorClass::Fatal, why.clone()),
        };
        let conv = match self.conversation(request) {
            Ok(c) => c,
            Err(why) => return CallResult::failed(ErrorClass::Fatal, why),
        };
        // A routing rule's choice wins over the agent's own model.
        let model = request.model.as_deref().unwrap_or(&self.spec.model);
        let mut ex = Exchange::default();
        let sent = exchange::send(
            client,
            &self.spec,
            model,
            key,
            &conv,
            ctx.progress.as_ref(),
            &mut ex,
        )
        .await;
        let (reply, usage) = match sent {
            Err(CallError { class, message }) => (Err(Failure::new(class, message)), None),
            Ok(turn) => {
                let usage = turn.usage_seen.then(|| Usage {
                    model: turn.model.clone().or_else(|| Some(model.to_string())),
                    ..turn.usage.clone()
                });
                if !turn.usage_seen {
                    ex.trace.push("the service reported no token usage".into());
                }
                if let Some(f) = turn
                    .finish
                    .as_deref()
                    .filter(|f| matches!(*f, "length" | "max_tokens"))
                {
                    ex.trace
                        .push(format!("the reply was cut at the token limit ({f})"));
                }
                (self.reply(request, turn, ctx.output_schema.as_ref()), usage)
            }
        };
        CallResult {
            reply,
            usage,
            trace: ex.trace,
            http: Some(ex.http),
            retry_after: ex.retry_after,
        }
    }

    /// The messages for this attempt: the prompt, and when the last attempt
    /// of this phase was not the JSON asked for or broke the phase's
    /// schema, that reply and what was wrong with it.
    fn conversation(&self, request: &AgentRequest) -> Result<Conversation, String> {
        let system = match &self.spec.system {
            Some(t) => Some(t.render(request).map_err(|e| format!("system: {e}"))?),
            None => None,
        };
        let prompt = self.spec.prompt.render(request)?;
        let mut messages = vec![(Role::User, prompt)];
        let repair = self
            .repairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(request.task.id.clone(), request.phase.clone()));
        if let Some(r) = repair.filter(|r| r.attempt < request.attempt) {
            messages.push((Role::Assistant, r.reply));
            messages.push((Role::User, r.ask));
        }
        Ok(Conversation { system, messages })
    }

    /// The output in the reply. JSON that cannot be read fails the attempt;
    /// JSON that breaks the phase's schema goes to the engine, which fails
    /// the attempt on it. Either way the next attempt shows the model its
    /// reply and what was wrong with it.
    fn reply(
        &self,
        request: &AgentRequest,
        turn: wire::Turn,
        schema: Option<&OutputSchema>,
    ) -> Result<Reply, Failure> {
        if let Some(why) = turn.refusal {
            return Err(Failure::new(
                ErrorClass::Fatal,
                format!("the model refused: {why}"),
            ));
        }
        match output::output(self.spec.output, &turn.text) {
            // A reviewer whose phase may send the task back, replying as a
            // command agent does: `{"send_back": {"to", "feedback"}}`.
            Ok(output) if request.send_back.is_some() && output.get("send_back").is_some() => {
                match output::send_back(output) {
                    Ok(reply) => Ok(reply),
                    Err(error) => {
                        self.remember(
                            request,
                            turn.text,
                            format!("Your reply's send_back {error}. Reply again with only the corrected JSON, no other text."),
                        );
                        Err(Failure::new(
                            ErrorClass::Contract,
                            format!("the reply's send_back {error}"),
                        ))
                    }
                }
            }
            Ok(output) => {
                if let Some(broken) = schema.and_then(|s| s.violations(&output)) {
                    self.remember(
                        request,
                        turn.text,
                        format!(
                            "Your reply does not match the required JSON Schema:\n- {}\nReply again with only the corrected JSON, no other text.",
                            broken.join("\n- ")
                        ),
                    );
                }
                Ok(Reply::Output { output })
            }
            Err(error) => {
                debug_assert_eq!(self.spec.output, OutputFormat::Json);
                self.remember(
                    request,
                    turn.text,
                    format!(
                        "Your reply could not be read as JSON ({error}). Reply again with only the JSON, no other text."
                    ),
                );
                Err(Failure::new(
                    ErrorClass::Contract,
                    format!("{error} (agent \"{}\" has output = \"json\")", self.name),
                ))
            }
        }
    }

    /// Keeps a reply that was not what the phase needs, cut to a bounded
    /// size, for the next attempt of its (task, phase).
    fn remember(&self, request: &AgentRequest, mut reply: String, ask: String) {
        if reply.len() > MAX_REPAIR_TEXT {
            let mut end = MAX_REPAIR_TEXT;
            while !reply.is_char_boundary(end) {
                end -= 1;
            }
            reply.truncate(end);
        }
        self.repairs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                (request.task.id.clone(), request.phase.clone()),
                Repair {
                    attempt: request.attempt,
                    reply,
                    ask,
                },
            );
    }
}

/// Takes the key out of everything a result carries to people and disk, in
/// case a service quotes it back.
fn scrub(result: &mut CallResult, key: &str) {
    const HIDDEN: &str = "[api key]";
    let clean = |s: &mut String| {
        if s.contains(key) {
            *s = s.replace(key, HIDDEN);
        }
    };
    match &mut result.reply {
        Err(f) => clean(&mut f.message),
        Ok(Reply::Error { message, .. }) => clean(message),
        Ok(_) => {}
    }
    result.trace.iter_mut().for_each(clean);
    if let Some(h) = &mut result.http {
        h.error_type.as_mut().map(clean);
        h.request_id.as_mut().map(clean);
    }
}
