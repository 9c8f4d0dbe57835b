//! The one stream: everything the engine does is an `Event`; everything an
//! operator can do is a `Command`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::cost::Usage;
use super::escalation::Escalation;
use super::state::TaskState;

pub type TaskId = String;

/// One thing that happened, in journal order. `seq` is unique and increasing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub seq: u64,
    /// Wall clock, UTC.
    pub at: Timestamp,
    /// The task it concerns; `None` for run-level events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskId>,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// A task entered the run with this input.
    TaskSubmitted {
        input: Value,
    },
    /// An attempt of a phase began.
    PhaseStarted {
        phase: String,
        attempt: u32,
        agent: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        feedback: Option<String>,
        /// The routing rule that chose `model`, when the agent has routes.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        route: Option<RouteChoice>,
        /// The role the phase names, when an agent was picked for it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// An attempt ended, with its outcome, usage, cost and output.
    AttemptFinished {
        phase: String,
        attempt: u32,
        duration_ms: u64,
        outcome: AttemptOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        /// Dollars; `None` when the price is not known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        trace: Vec<String>,
        /// The HTTP exchange, for agents that speak HTTP.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        http: Option<HttpInfo>,
        /// The service asked for no retry before this many milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    RetryScheduled {
        phase: String,
        /// The attempt that will run.
        attempt: u32,
        delay_ms: u64,
        /// When it will run (wall clock).
        due: Timestamp,
    },
    /// A phase failed for good (retries spent, or a fatal error).
    PhaseFailed {
        phase: String,
        error: String,
    },
    /// A phase will not run: its condition, a switch or a person.
    PhaseSkipped {
        phase: String,
        reason: String,
    },
    /// The phase took the shared step cache's output for its key instead
    /// of running: no attempt, no tokens, no cost.
    PhaseCached {
        phase: String,
        /// The phase's `cache_key` as rendered for this task.
        key: String,
        output: Value,
        /// The task whose attempt made the output.
        from_task: TaskId,
        /// When the output was stored.
        stored_at: Timestamp,
    },
    /// The task waits for a person to decide on a phase.
    ReviewRequested {
        phase: String,
        reason: ReviewReason,
    },
    /// An agent cannot go on without a person.
    TaskBlocked {
        phase: String,
        reason: String,
        #[serde(default, skip_serializing_if = "Escalation::is_empty")]
        escalation: Escalation,
    },
    /// A reviewer phase sent the task back: `to` and every settled phase
    /// after it (`reset`, which includes `phase`) run again, `to` with the
    /// feedback.
    LoopRound {
        /// The phase whose agent sent the task back.
        phase: String,
        to: String,
        feedback: String,
        /// This round's number, from 1.
        round: u32,
        /// The phases made pending again, in pipeline order.
        reset: Vec<String>,
        /// A person granted this round after the agent's rounds ran out.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        granted: bool,
    },
    /// A person's (or the engine's policy's) decision.
    DecisionRecorded {
        decision: Decision,
    },
    /// The task ended: completed or failed.
    TaskFinished {
        state: TaskState,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    RunPaused {
        by: Actor,
    },
    RunResumed {
        by: Actor,
    },
    /// An operator raised a budget: the task's when the event names a task,
    /// else the run's. Limits are the new figures, not increments.
    BudgetRaised {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<u64>,
        /// Attempts of unknown cost the operator accepted with this raise:
        /// the scope's count when it was made.
        #[serde(default)]
        accept_unknown: u32,
        by: Actor,
    },
    /// A `for_each` phase's list, read when its turn came: `count` items;
    /// or, with `error`, why there is no list (the phase fails).
    ItemsListed {
        phase: String,
        count: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
        /// What the items are called: the list's field name (`scenes`),
        /// for progress lines such as `37/120 scenes`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        name: Option<String>,
    },
    /// One attempt of one item of a `for_each` phase started.
    ItemStarted {
        phase: String,
        item: u32,
        attempt: u32,
        agent: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<String>,
    },
    /// One attempt of one item ended; fields as for `AttemptFinished`.
    ItemFinished {
        phase: String,
        item: u32,
        attempt: u32,
        /// The agent that ran it, for the figures per phase; empty for an
        /// attempt found interrupted when the engine restarted.
        #[serde(default, skip_serializing_if = "String::is_empty")]
        agent: String,
        duration_ms: u64,
        outcome: AttemptOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usage: Option<Usage>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<Value>,
    },
    ItemRetryScheduled {
        phase: String,
        item: u32,
        /// The attempt that will run.
        attempt: u32,
        delay_ms: u64,
        due: Timestamp,
    },
    /// An item failed for good (after its retries, or blocked, or asking
    /// for a review, which an item cannot hold its task for).
    ItemFailed {
        phase: String,
        item: u32,
        error: String,
    },
    /// Every item of a `for_each` phase is done or failed: the phase is
    /// complete, its output the list of the items' outputs in item order.
    ItemsSettled {
        phase: String,
    },
}

/// Which routing rule of an agent chose the model of an attempt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteChoice {
    /// Position of the rule among the agent's routes, from 0.
    pub index: usize,
    /// The rule's condition as written; `None` for the default rule.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when: Option<String>,
}

impl RouteChoice {
    pub fn describe(&self) -> String {
        match &self.when {
            Some(w) => format!("route #{} ({w})", self.index + 1),
            None => format!("route #{} (default)", self.index + 1),
        }
    }
}

impl EventKind {
    /// The phase an event is about, if it is about one.
    pub fn phase(&self) -> Option<&str> {
        match self {
            EventKind::PhaseStarted { phase, .. }
            | EventKind::AttemptFinished { phase, .. }
            | EventKind::RetryScheduled { phase, .. }
            | EventKind::PhaseFailed { phase, .. }
            | EventKind::PhaseSkipped { phase, .. }
            | EventKind::PhaseCached { phase, .. }
            | EventKind::ReviewRequested { phase, .. }
            | EventKind::TaskBlocked { phase, .. }
            | EventKind::ItemsListed { phase, .. }
            | EventKind::ItemStarted { phase, .. }
            | EventKind::ItemFinished { phase, .. }
            | EventKind::ItemRetryScheduled { phase, .. }
            | EventKind::ItemFailed { phase, .. }
            | EventKind::ItemsSettled { phase }
            | EventKind::LoopRound { phase, .. } => Some(phase),
            _ => None,
        }
    }
}

/// What one HTTP call said about itself, kept with the attempt so that a
/// failure can be traced at the provider.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpInfo {
    /// The response's status code; `None` when no response came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// The provider's name for the error, e.g. `rate_limit_error`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    /// The provider's id for the request (`x-request-id` / `request-id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl HttpInfo {
    /// "HTTP 429 rate_limit_error, request req_123", leaving out what is unknown.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        match self.status {
            Some(s) => parts.push(format!("HTTP {s}")),
            None => parts.push("no HTTP response".to_string()),
        }
        if let Some(t) = &self.error_type {
            parts.push(t.clone());
        }
        if let Some(id) = &self.request_id {
            parts.push(format!("request {id}"));
        }
        parts.join(" · ")
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum AttemptOutcome {
    Succeeded,
    Failed {
        class: ErrorClass,
        message: String,
    },
    Blocked {
        reason: String,
        #[serde(default, skip_serializing_if = "Escalation::is_empty")]
        escalation: Escalation,
    },
    /// The agent produced output but asks for a person to look.
    ReviewRequested {
        reason: String,
        #[serde(default, skip_serializing_if = "Escalation::is_empty")]
        escalation: Escalation,
    },
    /// A reviewer's verdict: phase `to`, before this one, must run again
    /// with this feedback. The attempt's output, if any, is kept.
    SentBack {
        to: String,
        feedback: String,
    },
    /// Lost to a restart of the engine; the attempt runs again.
    Interrupted,
    /// Cut short because the task was cancelled.
    Cancelled,
}

/// What kind of failure an attempt had; decides whether it is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// The agent said it may work next time.
    Retryable,
    /// The agent said it will not work next time.
    Fatal,
    /// The attempt ran past its timeout and was killed.
    Timeout,
    /// The agent process died from a signal.
    Crashed,
    /// The output lacked what the phase requires.
    Contract,
    /// The agent's reply broke the protocol: not JSON, not UTF-8, too large.
    Protocol,
    /// The agent could not be started at all.
    Spawn,
}

impl ErrorClass {
    /// Every class, in the order figures list them.
    pub const ALL: [ErrorClass; 7] = [
        ErrorClass::Retryable,
        ErrorClass::Fatal,
        ErrorClass::Timeout,
        ErrorClass::Crashed,
        ErrorClass::Contract,
        ErrorClass::Protocol,
        ErrorClass::Spawn,
    ];

    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorClass::Retryable
                | ErrorClass::Timeout
                | ErrorClass::Crashed
                | ErrorClass::Contract
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Retryable => "retryable",
            ErrorClass::Fatal => "fatal",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Crashed => "crashed",
            ErrorClass::Contract => "contract",
            ErrorClass::Protocol => "protocol",
            ErrorClass::Spawn => "spawn",
        }
    }
}

/// Why a task waits for a review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReviewReason {
    /// `on_failure = "review"` and the phase failed after its retries.
    PhaseFailed { error: String },
    /// `review = "always"`: the phase's output needs approval.
    Always,
    /// The agent asked for a person to look.
    AgentAsked {
        reason: String,
        #[serde(default, skip_serializing_if = "Escalation::is_empty")]
        escalation: Escalation,
    },
    /// A reviewer sent the task back once more after `max_rounds` rounds:
    /// a person decides (approve goes on, send back grants another round
    /// to `to` with their feedback, reject fails the task).
    RoundsSpent {
        to: String,
        feedback: String,
        rounds: u32,
    },
    /// A budget is reached: no new attempt starts until it is raised and
    /// the hold approved.
    Budget { scope: BudgetScope, detail: String },
}

/// Whose budget: one task's or the whole run's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BudgetScope {
    Task,
    Run,
}

impl BudgetScope {
    pub fn as_str(self) -> &'static str {
        match self {
            BudgetScope::Task => "task",
            BudgetScope::Run => "run",
        }
    }
}

impl ReviewReason {
    pub fn describe(&self) -> String {
        match self {
            ReviewReason::PhaseFailed { error } => format!("phase failed: {error}"),
            ReviewReason::Always => "output needs approval".to_string(),
            ReviewReason::AgentAsked { reason, .. } => format!("agent asks: {reason}"),
            ReviewReason::RoundsSpent {
                to,
                feedback,
                rounds,
            } => format!("sent back to {to} after {rounds} rounds: {feedback}"),
            ReviewReason::Budget { scope, detail } => {
                format!("budget: {} {detail}", scope.as_str())
            }
        }
    }
}

/// Who did something: the user the operating system says it is (the uid
/// of the process, or of the control socket's peer, and its account name)
/// and, over SSH, the address the client claims to come from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "ActorRecord", into = "ActorRecord")]
pub struct Actor {
    pub user: User,
    /// Claimed by the client (its `SSH_CLIENT`); nothing vouches for it.
    pub ssh_client: Option<String>,
}

/// A user: the account name, and the uid when the system gave it (older
/// records and the engine's own decisions have none).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct User {
    pub name: String,
    pub uid: Option<u32>,
}

impl User {
    /// The user with this uid, named by the password database ("uid N"
    /// when it has no name for it).
    pub fn of_uid(uid: u32) -> User {
        User {
            name: super::account::name_of(uid).unwrap_or_else(|| format!("uid {uid}")),
            uid: Some(uid),
        }
    }
}

impl From<&str> for User {
    fn from(name: &str) -> User {
        User {
            name: name.to_string(),
            uid: None,
        }
    }
}

impl From<String> for User {
    fn from(name: String) -> User {
        User { name, uid: None }
    }
}

impl std::ops::Deref for User {
    type Target = str;
    fn deref(&self) -> &str {
        &self.name
    }
}

impl PartialEq<&str> for User {
    fn eq(&self, other: &&str) -> bool {
        self.name == *other
    }
}

impl PartialEq<str> for User {
    fn eq(&self, other: &str) -> bool {
        self.name == other
    }
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// How an actor is written: `{"user": "ann", "uid": 1000, "ssh_client": "10.0.0.5"}`.
#[derive(Serialize, Deserialize)]
struct ActorRecord {
    user: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    uid: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ssh_client: Option<String>,
}

impl From<ActorRecord> for Actor {
    fn from(r: ActorRecord) -> Actor {
        Actor {
            user: User {
                name: r.user,
                uid: r.uid,
            },
            ssh_client: r.ssh_client,
        }
    }
}

impl From<Actor> for ActorRecord {
    fn from(a: Actor) -> ActorRecord {
        ActorRecord {
            user: a.user.name,
            uid: a.user.uid,
            ssh_client: a.ssh_client,
        }
    }
}

impl Actor {
    /// The person running this process, as the system knows them (not as
    /// `$USER` says, which anyone can set).
    pub fn current() -> Actor {
        // SSH_CLIENT is "address port localport"; SSH_CONNECTION starts the same way.
        let ssh_client = std::env::var("SSH_CLIENT")
            .or_else(|_| std::env::var("SSH_CONNECTION"))
            .ok()
            .and_then(|v| v.split_whitespace().next().map(str::to_string));
        Actor {
            user: User::of_uid(super::account::euid()),
            ssh_client,
        }
    }

    /// The peer of a control-socket connection: the uid the kernel gave for
    /// it, and the SSH address its client claims.
    pub fn peer(uid: u32, claimed_ssh_client: Option<String>) -> Actor {
        Actor {
            user: User::of_uid(uid),
            ssh_client: claimed_ssh_client,
        }
    }

    /// The engine itself, for decisions made by policy.
    pub fn engine() -> Actor {
        Actor {
            user: "baton".into(),
            ssh_client: None,
        }
    }
}

impl std::fmt::Display for Actor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.ssh_client {
            Some(addr) => write!(f, "{} (ssh from {addr}, as its client claims)", self.user),
            None => write!(f, "{}", self.user),
        }
    }
}

/// A person's decision, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub action: Action,
    /// The phase it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    pub by: Actor,
    pub at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What an operator can do to one task.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// Accept the held phase (its output, or its failure) and go on.
    Approve,
    /// Fail the task.
    Reject,
    /// Run the held phase again with this feedback in the request.
    SendBack {
        feedback: String,
    },
    /// Settle a blocker by running the blocked phase again.
    ResolveRetry,
    /// Settle a blocker by skipping the blocked phase.
    ResolveSkip,
    /// Settle a blocker by failing the task.
    ResolveFail,
    /// Run a phase again now: skip a retry's wait, or re-open a failed task.
    Retry,
    Cancel,
}

impl Action {
    pub fn name(&self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::SendBack { .. } => "send back",
            Action::ResolveRetry => "resolve: retry",
            Action::ResolveSkip => "resolve: skip",
            Action::ResolveFail => "resolve: fail",
            Action::Retry => "retry",
            Action::Cancel => "cancel",
        }
    }
}

/// Everything an operator can ask of the engine. Keys, CLI calls and socket
/// messages all become one of these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// A person's decision on one task (approve, reject, send back,
    /// resolve, retry, cancel).
    Act {
        task: TaskId,
        action: Action,
        /// The phase to act on; the task's oldest hold (or failed phase) when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        phase: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
        by: Actor,
    },
    /// Start no new attempts until resumed.
    Pause {
        by: Actor,
    },
    Resume {
        by: Actor,
    },
    /// Raise a task's budget, or the run's when `task` is `None`. The limits
    /// given become the new ones; a held task goes on once approved.
    RaiseBudget {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<TaskId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        usd: Option<f64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tokens: Option<u64>,
        by: Actor,
    },
    /// Stop starting attempts, let nothing new begin, and shut down.
    Shutdown,
}
