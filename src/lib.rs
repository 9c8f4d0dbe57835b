//! baton runs multi-agent pipelines over many tasks, durably, and lets an
//! operator steer them: approve, reject, send back with feedback, resolve
//! blockers, retry, cancel.
//!
//! As a library it runs the same engine inside a Rust program, with agents
//! written as Rust functions beside the command, http and simulated ones a
//! pipeline file can name. The surface is small:
//!
//! - a [`Pipeline`], read with [`Pipeline::from_file`] or built with
//!   [`Pipeline::builder`] and [`PhaseBuilder`];
//! - Rust agents: [`agent_fn`] (an async function from an [`AgentRequest`]
//!   to a [`Reply`] or an [`Answer`]) or any [`Agent`], registered by name in
//!   [`Agents`];
//! - an [`Engine`], opened on a state folder with
//!   [`Engine::open_with_agents`], given tasks ([`InputTask`]) with
//!   [`Engine::submit`], then either run headless ([`Engine::run`], its
//!   [`Event`]s read from [`EngineHandle::subscribe`]) or shown to an
//!   operator in this process with [`Dashboard::run`] (the `dashboard`
//!   feature, on by default);
//! - [`ControlSocket::start`] serves the state folder's control socket, so
//!   `baton attach`, `baton approve` and the rest reach an embedded engine.
//!
//! Without the `dashboard` feature the crate builds without any terminal
//! dependency, for services that embed only the engine.
//!
//! The modules below the re-exports are how the `baton` command itself is
//! built; they are not a stable interface and are hidden from the docs.

#[doc(hidden)]
pub mod agents;
#[doc(hidden)]
pub mod engine;
#[doc(hidden)]
pub mod filter;
#[doc(hidden)]
pub mod remote;
#[doc(hidden)]
pub mod report;
#[doc(hidden)]
pub mod run_log_writer;
#[doc(hidden)]
pub mod secrets;
#[doc(hidden)]
pub mod spec;
#[doc(hidden)]
pub mod store;
#[cfg(feature = "dashboard")]
#[doc(hidden)]
pub mod tui;

pub use agents::{
    Agent, AgentRequest, Agents, Answer, CallContext, CallResult, FnAgent, Reply, agent_fn,
};
pub use engine::event::{Action, AttemptOutcome, Command, Event, EventKind};
pub use engine::{Engine, EngineError, EngineOptions};
pub use engine::{EngineHandle, PhaseState, RunSummary, TaskState};
pub use remote::Server as ControlSocket;
pub use spec::input::InputTask;
pub use spec::{PhaseBuilder, Pipeline, PipelineBuilder, SpecError};
#[cfg(feature = "dashboard")]
pub use tui::{Dashboard, DashboardError, TuiOptions};
