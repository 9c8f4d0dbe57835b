//! The engine: tasks, their lifecycles, scheduling, attempts, reviews and
//! costs. It emits events and takes commands; it never touches a terminal.

pub mod cost;
pub mod event;
pub mod handle;
pub mod state;
pub mod task;
