//! The embedding examples, run as a person would: `examples/embed.rs` (Rust
//! agents, a pipeline built in code, the dashboard in the same process) in a
//! pseudo-terminal, approving its reviews with a key; and
//! `examples/embed_headless.rs`, whose events come out as JSON lines.

#[path = "support/pty.rs"]
mod pty;

use std::path::PathBuf;
use std::process::Command;

use pty::Term;
use serde_json::Value;

/// An example's binary, built by `cargo test` beside this test's.
fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test's own path");
    // target/debug/deps/embed-HASH → target/debug/examples/NAME
    let debug = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/debug");
    let path = debug.join("examples").join(name);
    assert!(
        path.is_file(),
        "{} is not built; `cargo test` builds the examples",
        path.display()
    );
    path
}

fn show(state: &std::path::Path, task: &str) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args(["show", task, "--json", "--state-dir"])
        .arg(state)
        .output()
        .expect("baton show");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("show --json")
}

#[test]
fn the_embedded_dashboard_takes_an_approval_and_the_task_completes() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let program = example("embed");
    let mut term = Term::spawn_program(
        program.to_str().expect("utf-8 path"),
        &[state.to_str().expect("utf-8 path")],
        dir.path(),
        160,
        48,
        &[("USER", "operator")],
    );
    // Two vague tickets wait; the other four complete.
    term.wait_for("Review queue · 2 waiting", 30);
    term.wait_for("4 completed", 30);
    // Tasks → Detail → Review queue; approve both, one key each.
    term.send("\t\t");
    term.wait_for("Detail · SUP-2", 10);
    term.send("a");
    term.wait_for("approve SUP-2: done", 10);
    term.wait_for("Detail · SUP-5", 10);
    term.send("a");
    term.wait_for("approve SUP-5: done", 10);
    term.wait_for("6 completed", 30);
    // `d` cannot leave an in-process engine running, and says why.
    term.send("d");
    term.wait_for("cannot be left running", 10);
    term.send("q");
    assert_eq!(term.wait_exit(30), 0, "every task completed");
    let sup2 = show(&state, "SUP-2");
    assert_eq!(sup2["state"], "completed");
    assert_eq!(sup2["decisions"][0]["action"]["action"], "approve");
    assert_eq!(
        sup2["phases"][1]["output"]["reply"],
        "Thanks for reporting SUP-2: our product team is on it."
    );
}

#[test]
fn the_headless_example_prints_its_events_as_json_lines() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out = Command::new(example("embed_headless"))
        .arg(&state)
        .output()
        .expect("the example runs");
    // INV-2's lines do not add up: it waits for a person, so the run ends 3.
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON event"))
        .collect();
    let finished: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "task_finished")
        .filter_map(|e| e["task"].as_str())
        .collect();
    assert_eq!(finished.len(), 2, "{finished:?}");
    assert!(events.iter().any(|e| e["event"] == "review_requested"
        && e["task"] == "INV-2"
        && e["reason"]["reason"] == "lines add up to 99.99, the invoice says 100.00"));
    assert_eq!(show(&state, "INV-2")["state"], "awaiting_review");
}

#[test]
fn a_rust_agent_in_a_file_validates_and_the_command_says_who_can_run_it() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = dir.path().join("p.toml");
    std::fs::write(
        &pipeline,
        "name = \"p\"\n[agents.triage]\nkind = \"rust\"\nmodel = \"house-1\"\nmax_parallel = 2\n[[phases]]\nid = \"triage\"\nagent = \"triage\"\n",
    )
    .unwrap();
    let validated = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("validate")
        .arg(&pipeline)
        .output()
        .unwrap();
    assert!(
        validated.status.success(),
        "{}",
        String::from_utf8_lossy(&validated.stderr)
    );
    std::fs::write(dir.path().join("in.jsonl"), "{\"id\": \"t1\"}\n").unwrap();
    let ran = Command::new(env!("CARGO_BIN_EXE_baton"))
        .args([
            "run",
            "p.toml",
            "--headless",
            "--input",
            "in.jsonl",
            "--state-dir",
            "state",
        ])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(ran.status.code(), Some(2));
    let said = String::from_utf8_lossy(&ran.stderr);
    assert!(
        said.contains("agent \"triage\" is kind = \"rust\""),
        "{said}"
    );
    assert!(said.contains("Engine::open_with_agents"), "{said}");
    // A key of another kind on a rust agent is placed and named.
    std::fs::write(
        &pipeline,
        "name = \"p\"\n[agents.triage]\nkind = \"rust\"\ncommand = [\"x\"]\n[[phases]]\nid = \"triage\"\nagent = \"triage\"\n",
    )
    .unwrap();
    let bad = Command::new(env!("CARGO_BIN_EXE_baton"))
        .arg("validate")
        .arg(&pipeline)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&bad.stderr);
    assert!(said.contains("p.toml:4:1"), "{said}");
    assert!(
        said.contains("`command` is a key of command agents"),
        "{said}"
    );
}

#[test]
fn a_registered_agent_the_pipeline_lacks_is_refused_before_the_folder_is_touched() {
    use baton::{Agents, Engine, EngineOptions, PhaseBuilder, Pipeline, Reply, agent_fn};
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let pipeline = Pipeline::builder("p")
        .rust_agent("triage")
        .phase(PhaseBuilder::new("triage", "triage"))
        .build()
        .unwrap();
    let agents = Agents::new()
        .with(
            "triage",
            agent_fn(|_| async { Reply::output(serde_json::json!({})) }),
        )
        .with(
            "traige",
            agent_fn(|_| async { Reply::output(serde_json::json!({})) }),
        );
    let e = match Engine::open_with_agents(pipeline, &state, EngineOptions::default(), agents) {
        Err(e) => e.to_string(),
        Ok(_) => panic!("a misspelt registration must be refused"),
    };
    assert!(e.contains("registered as \"traige\""), "{e}");
    assert!(e.contains("its agents: triage"), "{e}");
    assert!(!state.exists(), "nothing was written");
}

#[tokio::test]
async fn a_rust_agent_s_version_decides_whether_its_cached_outputs_are_reused() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use baton::{
        Agents, Engine, EngineOptions, InputTask, PhaseBuilder, Pipeline, Reply, agent_fn,
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let calls = Arc::new(AtomicUsize::new(0));
    // One run of two tasks sharing a key, with the agent at `version`.
    let run = |version: &'static str, run: usize| {
        let (state, calls) = (state.clone(), calls.clone());
        async move {
            let pipeline = Pipeline::builder("cached")
                .rust_agent_version("fetch", version)
                .phase(PhaseBuilder::new("fetch", "fetch").cache_key("{{input.region}}"))
                .build()
                .unwrap();
            let agents = Agents::new().with(
                "fetch",
                agent_fn(move |_| {
                    let calls = calls.clone();
                    async move {
                        calls.fetch_add(1, Ordering::SeqCst);
                        Reply::output(serde_json::json!({"rows": 3}))
                    }
                }),
            );
            let mut engine =
                Engine::open_with_agents(pipeline, &state, EngineOptions::default(), agents)
                    .unwrap();
            let tasks = (0..2)
                .map(|n| {
                    InputTask::new(
                        format!("r{run}-{n}"),
                        serde_json::json!({"region": "north"}),
                    )
                })
                .collect();
            engine.submit(tasks).await.unwrap();
            engine.run().await.unwrap();
        }
    };
    run("1", 1).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "two tasks, one key: one call"
    );
    run("1", 2).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "the same version reuses the entry"
    );
    run("2", 3).await;
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a new version runs again");
}
