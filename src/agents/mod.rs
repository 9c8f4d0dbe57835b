//! Agents do the work of a phase: one request in, one reply out. The engine
//! holds them as `Arc<dyn Agent>` and knows nothing of how they work.

pub mod command;
pub mod http;
pub mod rust;
pub mod sim;
mod sim_schema;

pub use rust::{Agents, Answer, FnAgent, agent_fn};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use crate::engine::cost::Usage;
use crate::engine::escalation::Escalation;
use crate::engine::event::{ErrorClass, HttpInfo};
use crate::engine::live::Progress;
use crate::spec::model::{AgentKind, AgentSpec, OutputSchema};

pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What an agent is asked, as written to a command agent's stdin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentRequest {
    /// The task: its id and its input object.
    pub task: TaskRef,
    /// The phase this call is for.
    pub phase: String,
    /// From 1; a retry, a send-back or a person's retry counts on.
    pub attempt: u32,
    /// Earlier phases' outputs, by phase id.
    pub outputs: Map<String, Value>,
    /// A reviewer's feedback when the phase was sent back.
    pub feedback: Option<String>,
    /// The model a routing rule chose for this attempt; the agent's own
    /// when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// For a `for_each` phase: the item this call is for (the list itself
    /// is left out of `task.input` and `outputs`, so a request stays small).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item: Option<Value>,
    /// The item's place in its list, from 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_index: Option<u32>,
    /// The phases this phase may send the task back to (its `send_back`),
    /// with the rounds so far and the most allowed; absent when it may not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub send_back: Option<SendBackOffer>,
}

/// What a reviewer phase may do with `{"send_back": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendBackOffer {
    pub to: Vec<String>,
    /// Rounds this phase has already sent the task back.
    pub rounds: u32,
    pub max_rounds: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskRef {
    pub id: String,
    /// The task's input object, as submitted.
    pub input: Value,
}

/// A well-formed answer from an agent.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The phase's output: an object whose fields later phases read.
    Output { output: Value },
    /// The agent failed and says whether trying again may help.
    Error { message: String, retryable: bool },
    /// The agent cannot go on without a person: the task waits, blocked.
    Blocked {
        reason: String,
        /// What it tried and how severe it says the problem is.
        escalation: Escalation,
    },
    /// Output that a person must look at before the task goes on.
    Review {
        reason: String,
        output: Value,
        escalation: Escalation,
    },
    /// A reviewer's verdict: phase `to`, which ran before this one, runs
    /// again with `feedback`; allowed where the phase has `send_back`.
    SendBack {
        to: String,
        feedback: String,
        /// The reviewer's own output, kept with its attempt.
        output: Option<Value>,
    },
}

/// The agent could not give a well-formed reply (timeout, crash, bad output).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub class: ErrorClass,
    pub message: String,
}

impl Failure {
    pub fn new(class: ErrorClass, message: impl Into<String>) -> Failure {
        Failure {
            class,
            message: message.into(),
        }
    }
}

/// Everything one call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct CallResult {
    pub reply: Result<Reply, Failure>,
    pub usage: Option<Usage>,
    /// Lines the agent wrote for people (a command's stderr), capped.
    pub trace: Vec<String>,
    /// What the HTTP exchange said about itself (status, error type,
    /// request id), for agents that speak HTTP.
    pub http: Option<HttpInfo>,
    /// The service asked not to be called again before this much time.
    pub retry_after: Option<Duration>,
}

impl CallResult {
    pub fn failed(class: ErrorClass, message: impl Into<String>) -> CallResult {
        CallResult {
            reply: Err(Failure::new(class, message)),
            usage: None,
            trace: Vec::new(),
            http: None,
            retry_after: None,
        }
    }
}

/// What the engine gives a call besides the request.
#[derive(Clone)]
pub struct CallContext {
    /// The agent must give up (and clean up) by then; the engine also drops
    /// the call's future when it passes, and a dropped call must leave nothing
    /// running.
    pub timeout: Duration,
    /// Live trace lines for whoever watches; may be dropped when nobody does.
    pub trace: Option<mpsc::UnboundedSender<String>>,
    /// The reply as it grows, for whoever watches; never journaled, and
    /// may be dropped when nobody does.
    pub progress: Option<mpsc::UnboundedSender<Progress>>,
    /// The phase's `output_schema`: an http agent that gets output breaking
    /// it asks the model again with the errors, and the simulator shapes
    /// its output to fit it.
    pub output_schema: Option<OutputSchema>,
}

impl CallContext {
    /// A context with nobody watching.
    pub fn quiet(timeout: Duration) -> CallContext {
        CallContext {
            timeout,
            trace: None,
            progress: None,
            output_schema: None,
        }
    }
}

pub trait Agent: Send + Sync {
    /// The model this agent reports when the reply names none.
    fn model(&self) -> Option<&str>;

    /// What stops this agent from working at all (an API key that is not
    /// set), checked before a run starts attempts.
    fn ready(&self) -> Result<(), String> {
        Ok(())
    }

    /// One attempt. The future must be cancel-safe: dropping it stops the work.
    fn call(&self, request: Arc<AgentRequest>, ctx: CallContext) -> BoxFuture<CallResult>;
}

/// Builds the agent a spec describes.
pub fn build(spec: &AgentSpec) -> Arc<dyn Agent> {
    match &spec.kind {
        AgentKind::Command(c) => Arc::new(command::CommandAgent::new(c.clone())),
        AgentKind::Sim(s) => Arc::new(sim::SimAgent::new(s.clone())),
        AgentKind::Http(h) => Arc::new(http::HttpAgent::new(&spec.name, h.clone())),
        AgentKind::Rust { model, .. } => Arc::new(rust::Unregistered {
            name: spec.name.clone(),
            model: model.clone(),
        }),
    }
}
