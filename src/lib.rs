//! baton: runs multi-agent pipelines and lets an operator steer them.
//!
//! The crate is split by job: `spec` reads pipeline files, `engine` runs tasks
//! through them and emits one stream of events, `agents` talks to the programs
//! and models that do the work, `store` makes the event stream durable, and
//! `report` turns state into text for people and scripts, and
//! `run_log_writer` keeps the markdown run log beside the state. The engine knows
//! nothing of terminals.

pub mod agents;
pub mod engine;
pub mod filter;
pub mod remote;
pub mod report;
pub mod run_log_writer;
pub mod secrets;
pub mod spec;
pub mod store;
pub mod tui;
