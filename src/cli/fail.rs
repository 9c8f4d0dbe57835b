//! How a command says it failed: `error: ...` on stderr, and, when it was
//! asked for `--json`, one JSON object on stdout too (`{"error": "...",
//! "exit_code": N}`), so that a script reading stdout gets JSON either way
//! (a damaged database, a full disk, a folder that is not the user's).

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, Ordering};

static JSON: AtomicBool = AtomicBool::new(false);

/// The command was asked for `--json`: its errors go to stdout as JSON too.
pub fn json_errors(on: bool) {
    JSON.store(on, Ordering::Relaxed);
}

/// Says `e`, and returns exit status 2 (bad usage or files).
pub fn error(e: &impl Display) -> i32 {
    error_code(e, 2)
}

/// Says `e`, and returns `code`.
pub fn error_code(e: &impl Display, code: i32) -> i32 {
    let message = e.to_string();
    if JSON.load(Ordering::Relaxed) {
        super::out::line(serde_json::json!({"error": message, "exit_code": code}));
    }
    eprintln!("error: {message}");
    code
}
