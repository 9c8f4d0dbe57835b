//! The real dashboard in a pseudo-terminal: keys in, screen and state
//! folder checked.

#[path = "support/pty.rs"]
mod pty;

use std::path::Path;
use std::process::Command;

use pty::Term;
use serde_json::Value;

/// One task, one phase whose simulated agent always asks for a review.
const REVIEW_PIPELINE: &str = r#"
name = "review-me"
[agents.sim]
kind = "sim"
latency = "0ms"
tokens = "100..200"
review_rate = 1.0
model = "claude-haiku-4-5"

[[phases]]
id = "draft"
agent = "sim"
"#;

fn setup(dir: &Path) {
    std::fs::write(dir.join("p.toml"), REVIEW_PIPELINE).unwrap();
    std::fs::write(dir.join("in.jsonl"), "{\"id\": \"t1\"}\n").unwrap();
}

fn show(dir: &Path, task: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["show", task, "--json", "--state-dir"])
        .arg(dir.join("state"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The run log the dashboard's run kept.
fn run_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("state/RUN_LOG.md")).expect("the dashboard keeps a run log")
}

const RUN: &[&str] = &[
    "run",
    "p.toml",
    "--input",
    "in.jsonl",
    "--state-dir",
    "state",
];

#[test]
fn approve_from_the_dashboard_reaches_the_state_folder() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut term = Term::spawn(RUN, dir.path(), 120, 40, &[("USER", "operator")]);
    term.wait_for("Review queue · 1 waiting", 30);
    term.send("a");
    term.wait_for("1 completed", 10);
    term.send("q");
    let code = term.wait_exit(30);
    assert_eq!(code, 0, "all done, so quitting exits 0");
    let t1 = show(dir.path(), "t1");
    assert_eq!(t1["state"], "completed");
    assert_eq!(t1["decisions"][0]["action"]["action"], "approve");
    assert_eq!(t1["decisions"][0]["by"]["user"], "operator");
    let log = run_log(dir.path());
    assert!(log.contains("## Run started · "), "{log}");
    assert!(log.contains("- started by: operator"), "{log}");
    assert!(
        log.contains("**t1** ⏸ review requested at `draft`"),
        "{log}"
    );
    assert!(
        log.contains("**t1** ✔ **approved** at `draft` by operator at "),
        "{log}"
    );
    assert!(log.contains("**t1** ✓ **task completed**"), "{log}");
    assert!(log.contains("| completed | 1 |"), "{log}");
}

#[test]
fn pause_shows_and_quit_asks_while_work_waits() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut term = Term::spawn(RUN, dir.path(), 120, 40, &[]);
    term.wait_for("1 need you", 30);
    term.send("p");
    term.wait_for("PAUSED", 10);
    term.send("p");
    term.wait_until("PAUSED gone", 10, |s| !s.contains("PAUSED"));
    assert_eq!(term.quit_confirmed(), 3, "a task still waits for a person");
    // The state folder is consistent: the next run picks the task up.
    assert_eq!(show(dir.path(), "t1")["state"], "awaiting_review");
    let log = run_log(dir.path());
    assert!(log.contains(" ⏸ **run paused** by "), "{log}");
    assert!(log.contains(" ▶ **run resumed** by "), "{log}");
    assert!(log.contains("| awaiting_review | 1 |"), "{log}");
}

#[test]
fn no_color_draws_without_colour() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut term = Term::spawn(RUN, dir.path(), 100, 30, &[("NO_COLOR", "1")]);
    term.wait_for("1 need you", 30);
    assert!(
        !term.has_colour(),
        "NO_COLOR set, yet the screen has colour:\n{}",
        term.contents()
    );
    term.quit_confirmed();
}

#[test]
fn colour_is_used_when_allowed() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut term = Term::spawn(RUN, dir.path(), 100, 30, &[("COLORTERM", "truecolor")]);
    term.wait_for("1 need you", 30);
    assert!(
        term.has_colour(),
        "no colour on screen:\n{}",
        term.contents()
    );
    term.quit_confirmed();
}

#[test]
fn below_the_minimum_size_it_says_so_and_recovers_on_resize() {
    let dir = tempfile::tempdir().unwrap();
    setup(dir.path());
    let mut term = Term::spawn(RUN, dir.path(), 50, 12, &[]);
    term.wait_for("terminal too small", 30);
    term.resize(100, 30);
    term.wait_for("review-me", 10);
    term.quit_confirmed();
}
