//! What a running attempt shows while it runs: the reply as it grows and
//! the trace lines as they come. None of it is journaled; the attempt's
//! `AttemptFinished` event stays the truth. It travels on its own lossy
//! broadcast channel, so a slow watcher misses updates rather than holding
//! the engine back.

use serde::{Deserialize, Serialize};

use super::event::TaskId;

/// How far a streaming reply has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Progress {
    /// The reply text so far, whole: a watcher that missed updates is right
    /// again with the next one.
    pub text: String,
    /// Output tokens so far.
    pub output_tokens: u64,
    /// The count is an estimate (one per streamed piece) until the service
    /// reports its own.
    pub estimated: bool,
}

/// One update about a running attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveEvent {
    pub task: TaskId,
    pub phase: String,
    pub attempt: u32,
    pub kind: LiveKind,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "live", rename_all = "snake_case")]
pub enum LiveKind {
    Progress(Progress),
    /// A line the agent wrote for people (a command's stderr).
    Trace {
        line: String,
    },
}

/// Updates kept for a watcher that lags; older ones are dropped for it.
pub const LIVE_CAPACITY: usize = 1024;
