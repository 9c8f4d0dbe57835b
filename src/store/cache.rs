//! The shared step cache as the store keeps it: one output per phase,
//! phase definition and rendered `cache_key`. The store only keeps and
//! finds entries; the engine decides what is stored and when an entry is
//! too old to reuse.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What one entry is found by.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CacheKey {
    pub phase: String,
    /// A hash of the phase's definition (agent, model, prompt or command,
    /// output contract, the key's template): a changed phase finds nothing.
    pub definition: String,
    /// The phase's `cache_key` as rendered for a task.
    pub key: String,
}

/// An output kept for reuse.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    #[serde(flatten)]
    pub key: CacheKey,
    pub output: Value,
    /// The task whose attempt made it.
    pub task: String,
    /// When it was stored (wall clock, UTC); a TTL counts from here.
    pub created_at: Timestamp,
}

/// One entry as `baton cache list` shows it, without its output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheInfo {
    #[serde(flatten)]
    pub key: CacheKey,
    pub task: String,
    pub created_at: Timestamp,
    /// Tasks that reused it.
    pub uses: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<Timestamp>,
    /// Bytes of its output as JSON.
    pub size: u64,
}

/// A change the engine hands the store; committed with the next group.
#[derive(Debug, Clone, PartialEq)]
pub enum CacheWrite {
    /// Stores an entry, replacing one with the same key (its uses start over).
    Put(CacheEntry),
    /// `n` more tasks reused the entry at `key`.
    Used {
        key: CacheKey,
        n: u64,
        at: Timestamp,
    },
}

/// Which entries `baton cache list` and `clear` take: all, or those of a
/// phase, or of a rendered key, or both.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CacheFilter {
    pub phase: Option<String>,
    pub key: Option<String>,
}
