//! The control socket: one per state folder, served by the engine process,
//! for `baton attach` and for CLI commands while an engine runs. The same
//! events go out as the engine emits, the same commands come in as keys
//! send; nothing here goes around the engine. No message carries the whole
//! run: clients read tasks from the store, beside the engine.
//!
//! - `protocol`: the messages (JSON lines)
//! - `lines`: reading lines with a size cap
//! - `path`: where the socket lives
//! - `peer`: who may connect (the engine's own user)
//! - `identity`: who a command is from, by the kernel's word, and its size
//! - `server`: the engine's side: binding, accepting, who may connect
//! - `conversation`: one connection on the engine's side
//! - `command_queue`: a connection's commands, to the engine in order
//! - `event_stream`: a connection's place in the engine's events, and
//!   where its answers go in them
//! - `client`: one connection from the other side
//! - `remote_handle`: an `EngineHandle` over a connection that comes back
//!   after the engine restarts, for the dashboard, with a reader of the
//!   run's store beside the engine
//! - `waiter`: what the remote handle answers with an overview
//! - `log_feed`: the engine's log lines for attached log panes
//! - `live_cache`: what running attempts have shown, for clients arriving mid-attempt

pub mod client;
mod command_queue;
mod conversation;
mod event_stream;
mod identity;
pub mod lines;
pub mod live_cache;
pub mod log_feed;
pub mod path;
pub mod peer;
pub mod protocol;
pub mod remote_handle;
pub mod server;
mod waiter;

pub use client::{ClientOptions, ConnectError, Connection, connect, connect_dir};
pub use server::Server;
