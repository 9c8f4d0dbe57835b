//! What both wire formats share: the conversation sent, the reply folded
//! from a whole body or from a stream, and the ways a reply can be bad.

use serde_json::Value;

use crate::engine::cost::Usage;
use crate::engine::event::ErrorClass;

/// Who said a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// The conversation one call sends.
#[derive(Debug, Clone, PartialEq)]
pub struct Conversation {
    pub system: Option<String>,
    pub messages: Vec<(Role, String)>,
}

/// A reply, whole or as far as it has streamed.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Turn {
    pub text: String,
    /// Token counts as the service reported them (no model set).
    pub usage: Usage,
    /// The service reported usage at all.
    pub usage_seen: bool,
    /// The model the service says answered.
    pub model: Option<String>,
    /// The model refused, with its words when it gave some.
    pub refusal: Option<String>,
    /// Why the reply ended (`stop`, `length`, `end_turn`, `max_tokens`...).
    pub finish: Option<String>,
    /// The stream said it was complete.
    pub complete: bool,
    /// Pieces of text streamed so far, the output token estimate until the
    /// service counts.
    pub pieces: u64,
}

/// A reply that cannot be used.
#[derive(Debug, Clone, PartialEq)]
pub struct WireError {
    pub class: ErrorClass,
    pub error_type: Option<String>,
    pub message: String,
}

impl WireError {
    pub fn protocol(message: impl Into<String>) -> WireError {
        WireError {
            class: ErrorClass::Protocol,
            error_type: None,
            message: message.into(),
        }
    }
}

pub fn parse_json(data: &str, what: &str) -> Result<Value, WireError> {
    serde_json::from_str(data).map_err(|e| WireError::protocol(format!("{what} is not JSON: {e}")))
}

/// A whole number at `key` of `v`, when there is one.
pub fn count(v: &Value, key: &str) -> Option<u64> {
    v.get(key).and_then(Value::as_u64)
}
