//! The validated pipeline: what the engine runs. Built by `spec::load` from a
//! TOML file; every reference in it has been checked.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::condition::Condition;
pub use super::output_schema::OutputSchema;
pub use crate::agents::http::template::Template;

/// A pipeline after loading and validation.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    /// The file it was read from.
    pub source: PathBuf,
    /// The folder relative paths in the file are resolved against.
    pub base_dir: PathBuf,
    pub defaults: Defaults,
    pub agents: BTreeMap<String, AgentSpec>,
    /// Phases in file order. `after` of each holds indices into this vector.
    pub phases: Vec<PhaseSpec>,
    /// An explicit `pricing = "file.toml"`, resolved against `base_dir`.
    pub pricing: Option<PathBuf>,
    /// Regular expressions (checked at load) whose matches the run log hides
    /// as `[masked]`, on top of the built-in email and phone masks.
    pub mask: Vec<String>,
    /// `secret_env`: environment variables whose values are secrets,
    /// masked wherever baton writes or shows text (as http agents' keys are).
    pub secret_env: Vec<String>,
    /// `[run_budget]`: limits over every task of the state folder.
    pub run_budget: BudgetLimits,
    /// `[roles]`: agents that can serve a role, first preferred.
    pub roles: BTreeMap<String, Vec<String>>,
    /// Every `{{outputs.PHASE}}` place in an agent's prompt, so that a plan
    /// that switches off a phase whose output is needed can be refused.
    pub output_uses: Vec<OutputUse>,
}

/// An agent's prompt reads `outputs.PHASE`, at this place of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutputUse {
    pub agent: String,
    pub phase: String,
    /// 1-based; 0 when the place is not known.
    pub line: usize,
    pub col: usize,
}

impl Pipeline {
    pub fn phase_index(&self, id: &str) -> Option<usize> {
        self.phases.iter().position(|p| p.id == id)
    }

    /// The schema files the phases were loaded with, by resolved path, as
    /// read: what a run keeps so that it goes on with the same contracts.
    pub fn schema_files(&self) -> BTreeMap<PathBuf, String> {
        self.phases
            .iter()
            .filter_map(|p| p.output_schema.as_ref())
            .filter_map(|s| Some((s.file.clone()?, s.text.as_deref()?.to_string())))
            .collect()
    }
}

#[derive(Debug, Clone)]
pub struct Defaults {
    /// Per attempt, unless the phase sets its own.
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Tasks in flight at once.
    pub concurrency: usize,
    /// `budget_usd` and `budget_tokens`: limits of each task.
    pub task_budget: BudgetLimits,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults {
            timeout: Duration::from_secs(120),
            retry: RetryPolicy::default(),
            concurrency: 8,
            task_budget: BudgetLimits::default(),
        }
    }
}

/// Spending limits of one scope; `None` is no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct BudgetLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
}

impl BudgetLimits {
    pub fn is_none(&self) -> bool {
        self.usd.is_none() && self.tokens.is_none()
    }

    /// Each limit `other` sets replaces this one's.
    pub fn overridden_by(self, other: BudgetLimits) -> BudgetLimits {
        BudgetLimits {
            usd: other.usd.or(self.usd),
            tokens: other.tokens.or(self.tokens),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    Exponential,
    Fixed,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; 1 means no retry.
    pub max_attempts: u32,
    pub backoff: Backoff,
    pub initial_delay: Duration,
    pub max_delay: Duration,
    /// Fraction of the delay drawn at random and added or taken away (0.0..=1.0).
    pub jitter: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: 0.2,
        }
    }
}

#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    /// Attempts of this agent in flight at once, across all tasks.
    pub max_parallel: Option<usize>,
    /// Calls started per minute, across all tasks.
    pub rpm: Option<u32>,
    /// Tokens used per minute, across all tasks.
    pub tpm: Option<u64>,
    /// `[[agents.NAME.route]]`: the first rule whose condition holds picks the model.
    pub routes: Vec<Route>,
    pub kind: AgentKind,
}

/// A condition with the text it was written as.
#[derive(Debug, Clone)]
pub struct WrittenCondition {
    pub condition: Condition,
    pub text: String,
}

/// One routing rule of an agent.
#[derive(Debug, Clone)]
pub struct Route {
    /// `None` for a rule without `when`: it always applies.
    pub when: Option<Condition>,
    /// The condition as written.
    pub when_text: Option<String>,
    pub model: String,
}

#[derive(Debug, Clone)]
pub enum AgentKind {
    Command(CommandSpec),
    Sim(SimSpec),
    Http(HttpSpec),
    /// A function of the program that embeds baton, registered with
    /// [`crate::agents::Agents`]; `model` is what it reports when its
    /// replies name none; `version`, which the program bumps when the
    /// function changes, is part of a cached phase's definition.
    Rust {
        model: Option<String>,
        version: Option<String>,
    },
}

/// Which wire format an http agent speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provider {
    /// Chat completions: `POST {base_url}/chat/completions`. Also what
    /// OpenAI-compatible servers (vLLM, Ollama, llama.cpp) speak.
    OpenAi,
    /// Messages: `POST {base_url}/v1/messages`.
    Anthropic,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
        }
    }

    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Anthropic => "https://api.anthropic.com",
        }
    }

    /// The variable the key is read from when `api_key_env` is not given
    /// and `base_url` is the provider's own.
    pub fn default_key_env(self) -> &'static str {
        match self {
            Provider::OpenAi => "OPENAI_API_KEY",
            Provider::Anthropic => "ANTHROPIC_API_KEY",
        }
    }
}

/// What the phase's output is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    /// The reply text must be JSON (a ```json fence around it is allowed).
    Json,
    /// The reply text as `{"text": ...}`.
    Text,
}

#[derive(Debug, Clone)]
pub struct HttpSpec {
    pub provider: Provider,
    pub model: String,
    /// Without a trailing slash.
    pub base_url: String,
    /// The NAME of the variable holding the API key; `None` sends no key
    /// (a local server).
    pub api_key_env: Option<String>,
    pub system: Option<Template>,
    pub prompt: Template,
    pub max_tokens: Option<u64>,
    pub temperature: Option<f64>,
    /// Limit on one HTTP call, on top of the phase's timeout.
    pub timeout: Option<Duration>,
    pub output: OutputFormat,
    pub stream: bool,
}

#[derive(Debug, Clone)]
pub struct CommandSpec {
    /// Program and arguments; a relative program path containing a `/` is
    /// resolved against the pipeline's folder, a bare name through PATH.
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Working directory of the child; defaults to the pipeline's folder.
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    /// Bytes of stdout accepted before the reply counts as too large.
    pub max_output_bytes: usize,
    /// The model to report when the reply's usage names none.
    pub model: Option<String>,
}

/// An inclusive range; `lo == hi` for a single value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    pub lo: T,
    pub hi: T,
}

#[derive(Debug, Clone)]
pub struct SimSpec {
    pub latency: Range<Duration>,
    /// Output tokens per call; input tokens are a quarter of these.
    pub tokens: Range<u64>,
    /// Share of calls that fail with a retryable error.
    pub fail_rate: f64,
    /// Share of calls that fail with an error that is not retryable.
    pub fatal_rate: f64,
    /// Share of calls that reply `blocked`.
    pub block_rate: f64,
    /// Share of calls that reply `review`.
    pub review_rate: f64,
    /// Share of calls that send the task back, where the phase allows it
    /// (`send_back`): to its first target, with made-up feedback.
    pub send_back_rate: f64,
    pub model: String,
    pub seed: u64,
    /// Keys the output object carries, so that phases with a
    /// `required_output` contract can run on the simulator.
    pub output_fields: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnFailure {
    /// Fatal: the task fails and later phases do not run.
    Stop,
    /// Non-fatal: the phase is failed and the task goes on.
    Continue,
    /// A human decides.
    Review,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewMode {
    Never,
    /// A human approves the phase's output before the task goes on.
    Always,
}

#[derive(Debug, Clone)]
pub struct PhaseSpec {
    pub id: String,
    /// The agent that runs the phase; empty when `role` names agents instead.
    pub agent: String,
    /// A role of `[roles]`: the first of its agents with room runs each attempt.
    pub role: Option<String>,
    /// Indices of the phases that must be done before this one starts.
    pub after: Vec<usize>,
    /// Input fields that must be present and non-null, else the phase is skipped.
    pub when: Vec<String>,
    /// `when` written as a condition (`"input.risk == 'high'"`): the phase is
    /// skipped unless it holds.
    pub when_condition: Option<WrittenCondition>,
    pub on_failure: OnFailure,
    pub review: ReviewMode,
    /// Top-level keys the output object must have.
    pub required_output: Vec<String>,
    /// `output_schema`: a JSON Schema the output must satisfy, compiled at load.
    pub output_schema: Option<OutputSchema>,
    pub timeout: Duration,
    pub retry: RetryPolicy,
    /// Why the phase is switched off, if it is (`enabled = false`,
    /// `--disable`, `--only`): each task records it as skipped with this reason.
    pub disabled: Option<String>,
    /// `for_each`: the phase runs once per item of a list.
    pub fan_out: Option<super::fan_out::FanOut>,
    /// `cache_key` (and `cache_ttl`): tasks with the same key share one
    /// output of this phase (see `engine::step_cache`).
    pub cache: Option<CacheSpec>,
    /// The phases this one's agent may send the task back to.
    pub send_back: Option<SendBackSpec>,
}

/// A phase's shared step cache.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheSpec {
    /// Rendered per task; the same text means the same output.
    pub key: Template,
    /// The key as written, part of the phase's definition.
    pub text: String,
    /// Entries older than this are not reused; `None` keeps them until cleared.
    pub ttl: Option<Duration>,
}

/// A reviewer loop: the phases a reviewer may send a task back to, and how
/// many rounds it gets before a person decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendBackSpec {
    /// Phase ids, each one that runs before the reviewer.
    pub to: Vec<String>,
    pub max_rounds: u32,
}
