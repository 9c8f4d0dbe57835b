//! The engine: tasks, their lifecycles, scheduling, attempts, reviews and
//! costs. It emits events and takes commands; it never touches a terminal.

pub mod account;
pub mod advance;
pub mod attempt;
pub mod backoff;
pub mod bounds;
pub mod budget;
pub mod cache_key;
pub mod clock;
pub mod contract;
pub mod cost;
pub mod escalation;
pub mod event;
pub mod exit_status;
pub mod fan_out;
pub mod handle;
pub mod live;
pub mod rate_limit;
pub mod recovery;
pub mod route;
pub mod run_state;
pub mod runtime;
pub mod send_back;
pub mod state;
pub mod task;

pub use event::{Action, Actor, Command, Event, EventKind};
pub use handle::{EngineHandle, FollowStart, Link, Refusal, RunOverview, RunSnapshot};
pub use runtime::{Engine, EngineError, EngineOptions, RunSummary};
pub use state::{PhaseState, TaskState};
pub use task::Task;
