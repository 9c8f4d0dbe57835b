//! Putting recovered work back in motion.

use super::event::{AttemptOutcome, EventKind};

/// The event that closes an attempt lost to a stop of the engine.
pub fn interrupted(phase: String, attempt: u32) -> EventKind {
    EventKind::AttemptFinished {
        phase,
        attempt,
        duration_ms: 0,
        outcome: AttemptOutcome::Interrupted,
        usage: None,
        cost_usd: None,
        output: None,
        trace: vec!["interrupted: the engine stopped while this attempt ran; it runs again".into()],
        http: None,
        retry_after_ms: None,
    }
}
