//! Agents written in Rust by a program that embeds baton: an async function
//! (or any [`Agent`]) registered by name in [`Agents`], standing in for an
//! agent the pipeline declares with `kind = "rust"` (or for any other of its
//! agents, e.g. to script replies in tests).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use serde_json::Value;

use super::{Agent, AgentRequest, BoxFuture, CallContext, CallResult, Reply};
use crate::engine::cost::Usage;
use crate::engine::escalation::Escalation;
use crate::engine::event::ErrorClass;

/// What a Rust agent answers one request with: a reply, and what it spent
/// when it called a model (priced like a command agent's `usage`).
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    /// What the phase gets: an output, a review request, a blocker, an
    /// error or a send-back.
    pub reply: Reply,
    /// Tokens and model of the call, priced by the pipeline's price table.
    pub usage: Option<Usage>,
}

impl Answer {
    /// Adds what the call spent: the model and its tokens in and out.
    pub fn with_usage(mut self, model: &str, input_tokens: u64, output_tokens: u64) -> Answer {
        self.usage = Some(Usage {
            model: Some(model.to_string()),
            input_tokens,
            output_tokens,
            ..Usage::default()
        });
        self
    }
}

impl From<Reply> for Answer {
    fn from(reply: Reply) -> Answer {
        Answer { reply, usage: None }
    }
}

impl Reply {
    /// The phase's output: an object whose fields later phases read as
    /// `outputs.PHASE.FIELD`.
    pub fn output(output: Value) -> Reply {
        Reply::Output { output }
    }

    /// Output a person must approve before the task goes on.
    pub fn review(reason: impl Into<String>, output: Value) -> Reply {
        Reply::Review {
            reason: reason.into(),
            output,
            escalation: Escalation::default(),
        }
    }

    /// The agent cannot go on without a person.
    pub fn blocked(reason: impl Into<String>) -> Reply {
        Reply::Blocked {
            reason: reason.into(),
            escalation: Escalation::default(),
        }
    }

    /// A failure; `retryable` says whether another attempt may succeed.
    pub fn error(message: impl Into<String>, retryable: bool) -> Reply {
        Reply::Error {
            message: message.into(),
            retryable,
        }
    }

    /// A reviewer's verdict: phase `to` runs again with `feedback` (the
    /// phase needs `send_back`, see the README's reviewer loops).
    pub fn send_back(to: impl Into<String>, feedback: impl Into<String>) -> Reply {
        Reply::SendBack {
            to: to.into(),
            feedback: feedback.into(),
            output: None,
        }
    }
}

type Call = dyn Fn(Arc<AgentRequest>) -> BoxFuture<Answer> + Send + Sync;

/// An agent made of an async function; see [`agent_fn`].
pub struct FnAgent {
    model: Option<String>,
    call: Arc<Call>,
}

/// An agent from an async function of the request. The function answers
/// with a [`Reply`] (or an [`Answer`], to report usage); the engine times it
/// out by dropping its future, retries it, and records it like any agent.
///
/// ```
/// use baton::{Reply, agent_fn};
/// use serde_json::json;
///
/// let planner = agent_fn(|req| async move {
///     let ticket = req.task.input["title"].as_str().unwrap_or("?").to_string();
///     Reply::output(json!({"plan": format!("steps for {ticket}")}))
/// })
/// .model("house-planner-1");
/// # let _ = planner;
/// ```
pub fn agent_fn<F, Fut, A>(f: F) -> FnAgent
where
    F: Fn(Arc<AgentRequest>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = A> + Send + 'static,
    A: Into<Answer>,
{
    FnAgent {
        model: None,
        call: Arc::new(move |req| {
            let fut = f(req);
            Box::pin(async move { fut.await.into() })
        }),
    }
}

impl FnAgent {
    /// The model the agent reports when its usage names none.
    pub fn model(mut self, model: impl Into<String>) -> FnAgent {
        self.model = Some(model.into());
        self
    }
}

impl Agent for FnAgent {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn call(&self, request: Arc<AgentRequest>, _ctx: CallContext) -> BoxFuture<CallResult> {
        let fut = (self.call)(request);
        Box::pin(async move {
            let answer = fut.await;
            CallResult {
                reply: Ok(answer.reply),
                usage: answer.usage,
                trace: Vec::new(),
                http: None,
                retry_after: None,
            }
        })
    }
}

/// Rust agents by the names the pipeline gives them.
///
/// ```
/// use baton::{Agents, Reply, agent_fn};
/// use serde_json::json;
///
/// let agents = Agents::new()
///     .with("planner", agent_fn(|_| async { Reply::output(json!({"plan": "…"})) }))
///     .with("checker", agent_fn(|_| async { Reply::output(json!({"ok": true})) }));
/// assert_eq!(agents.names(), ["checker", "planner"]);
/// ```
#[derive(Clone, Default)]
pub struct Agents {
    by_name: BTreeMap<String, Arc<dyn Agent>>,
}

impl Agents {
    /// No agents yet; add them with `with`.
    pub fn new() -> Agents {
        Agents::default()
    }

    /// Registers `agent` as the pipeline's agent `name`.
    pub fn with(mut self, name: impl Into<String>, agent: impl Agent + 'static) -> Agents {
        self.by_name.insert(name.into(), Arc::new(agent));
        self
    }

    /// Registers an agent already shared.
    pub fn insert(&mut self, name: impl Into<String>, agent: Arc<dyn Agent>) {
        self.by_name.insert(name.into(), agent);
    }

    /// The registered names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    pub(crate) fn into_map(self) -> BTreeMap<String, Arc<dyn Agent>> {
        self.by_name
    }
}

/// A `kind = "rust"` agent no program registered: it cannot run, and says
/// how to give it an implementation before the run starts.
pub(crate) struct Unregistered {
    pub name: String,
    pub model: Option<String>,
}

impl Unregistered {
    fn why(&self) -> String {
        format!(
            "agent \"{}\" is kind = \"rust\": it is a function of the program that embeds baton, which registers it (Agents::new().with(\"{}\", ...)) and opens the engine with Engine::open_with_agents; the baton command cannot run it",
            self.name, self.name
        )
    }
}

impl Agent for Unregistered {
    fn model(&self) -> Option<&str> {
        self.model.as_deref()
    }

    fn ready(&self) -> Result<(), String> {
        Err(self.why())
    }

    fn call(&self, _request: Arc<AgentRequest>, _ctx: CallContext) -> BoxFuture<CallResult> {
        let why = self.why();
        Box::pin(async move { CallResult::failed(ErrorClass::Spawn, why) })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;
    use crate::agents::TaskRef;

    fn request() -> Arc<AgentRequest> {
        Arc::new(AgentRequest {
            task: TaskRef {
                id: "t1".into(),
                input: json!({"n": 2}),
            },
            phase: "double".into(),
            attempt: 1,
            outputs: serde_json::Map::new(),
            feedback: None,
            model: None,
            send_back: None,
            item: None,
            item_index: None,
        })
    }

    #[tokio::test]
    async fn a_function_answers_with_its_reply_and_usage() {
        let agent = agent_fn(|req: Arc<AgentRequest>| async move {
            let n = req.task.input["n"].as_i64().unwrap_or(0);
            Answer::from(Reply::output(json!({"twice": n * 2}))).with_usage("m", 10, 3)
        })
        .model("house");
        assert_eq!(Agent::model(&agent), Some("house"));
        let out = agent
            .call(request(), CallContext::quiet(Duration::from_secs(1)))
            .await;
        assert_eq!(out.reply, Ok(Reply::output(json!({"twice": 4}))));
        assert_eq!(
            out.usage.map(|u| (u.input_tokens, u.output_tokens)),
            Some((10, 3))
        );
    }

    #[tokio::test]
    async fn an_unregistered_rust_agent_says_how_to_register_it() {
        let agent = Unregistered {
            name: "planner".into(),
            model: None,
        };
        let why = agent.ready().unwrap_err();
        assert!(why.contains("Agents::new().with(\"planner\""), "{why}");
        let out = agent
            .call(request(), CallContext::quiet(Duration::from_secs(1)))
            .await;
        assert!(matches!(out.reply, Err(f) if f.class == ErrorClass::Spawn));
    }
}
