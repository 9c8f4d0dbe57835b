//! The shared step cache through the binary: a command agent that logs each
//! call to a file runs a cached phase once per key, across tasks and runs;
//! `show`, the run log and `baton cache list|clear` tell what happened.

#[path = "support/cli.rs"]
mod cli;

use cli::{Sandbox, output, wait_for};
use serde_json::{Value, json};

const PHASES: &str = r#"
[defaults]
concurrency = 4

[[phases]]
id = "fetch"
agent = "a"
cache_key = "{{input.q}}"
cache_ttl = "7d"

[[phases]]
id = "use"
agent = "a"
"#;

/// A task asking for `q`; `fetch` takes a while, so that tasks started
/// together ask for the key while its one attempt runs.
fn ask(id: &str, q: &str) -> Value {
    json!({"id": id, "q": q, "sleep_ms": {"fetch": 300}})
}

/// Calls of the agent for `phase`, over every task, from its side log.
fn calls(sandbox: &Sandbox, phase: &str) -> usize {
    sandbox
        .side_log_lines()
        .iter()
        .filter(|l| l[1] == phase)
        .count()
}

fn cache_json(sandbox: &Sandbox) -> Vec<Value> {
    let out = sandbox.cli(&["cache", "list", "--json"]);
    out.expect(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"))
}

#[test]
fn a_cached_phase_runs_once_per_key_across_tasks_and_runs() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(PHASES);
    sandbox.inputs(&[
        ask("t1", "cats"),
        ask("t2", "cats"),
        ask("t3", "cats"),
        ask("t4", "cats"),
        ask("d1", "dogs"),
    ]);
    sandbox.run().expect(0);
    assert_eq!(calls(&sandbox, "fetch"), 2, "one call per key");
    assert_eq!(calls(&sandbox, "use"), 5);

    // `show --json` marks the reused phase, with no attempt and nothing spent.
    let shown = sandbox.show("t3");
    let fetch = &shown["phases"][0];
    assert_eq!(fetch["state"], "completed");
    assert_eq!(fetch["cached"]["key"], "cats");
    assert_eq!(fetch["cached"]["from_task"], "t1");
    assert!(fetch["attempts"].as_array().is_none_or(Vec::is_empty));
    assert_eq!(fetch["output"]["task"], "t1", "t1's output, reused");
    let text = sandbox.cli(&["show", "t3"]);
    text.expect(0);
    assert!(
        text.stdout.contains("phase fetch  completed (cached)"),
        "{text}"
    );
    assert!(
        text.stdout
            .contains("cached    key \"cats\" · from task t1"),
        "{text}"
    );
    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).unwrap();
    assert!(
        log.contains("✓ `fetch` cached · key “cats” · from task t1 · 0 tokens · $0"),
        "{log}"
    );

    // The entries: what made them and how often they served.
    let listed = sandbox.cli(&["cache", "list"]);
    listed.expect(0);
    let lines: Vec<&str> = listed.stdout.lines().collect();
    assert!(lines[0].starts_with("KEY   PHASE  AGE"), "{listed}");
    let cats = lines.iter().find(|l| l.starts_with("cats ")).expect("cats");
    let words: Vec<&str> = cats.split_whitespace().collect();
    assert_eq!(
        (words[1], words[3], words[6]),
        ("fetch", "3", "t1"),
        "{listed}"
    );
    assert!(
        lines.last().unwrap().starts_with("2 entries · 3 reuses · "),
        "{listed}"
    );
    let entries = cache_json(&sandbox);
    let mut uses: Vec<(String, u64)> = entries
        .iter()
        .map(|e| {
            (
                e["key"].as_str().unwrap().to_string(),
                e["uses"].as_u64().unwrap(),
            )
        })
        .collect();
    uses.sort();
    assert_eq!(uses, [("cats".into(), 3), ("dogs".into(), 0)]);

    // A later run on the folder reuses the entry.
    sandbox.inputs(&[ask("t5", "cats")]);
    sandbox.run().expect(0);
    assert_eq!(calls(&sandbox, "fetch"), 2);
    assert_eq!(sandbox.show("t5")["phases"][0]["cached"]["from_task"], "t1");

    // Cleared, the key runs again.
    let cleared = sandbox.cli(&["cache", "clear", "--phase", "fetch", "--key", "cats"]);
    cleared.expect(0);
    assert!(
        cleared
            .stdout
            .contains("removed 1 step cache entry of phase fetch and key \"cats\""),
        "{cleared}"
    );
    let left: Vec<Value> = cache_json(&sandbox);
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["key"], "dogs");
    sandbox.inputs(&[ask("t6", "cats")]);
    sandbox.run().expect(0);
    assert_eq!(calls(&sandbox, "fetch"), 3);
    let all = sandbox.cli(&["cache", "clear"]);
    all.expect(0);
    assert!(
        all.stdout.contains("removed 2 step cache entries from"),
        "{all}"
    );
    let empty = sandbox.cli(&["cache", "list"]);
    assert!(
        empty.stdout.starts_with("no step cache entries in "),
        "{empty}"
    );
}

#[test]
fn clearing_is_refused_while_an_engine_runs_on_the_folder() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(PHASES);
    sandbox.inputs(&[json!({"id": "slow", "q": "x", "do": {"fetch": "hang"}})]);
    let live = sandbox.spawn_run(true);
    // Asked before the engine has made its database, `list` fails: ask again.
    wait_for("the slow task to start", || {
        let out = sandbox.cli(&["list", "--json"]);
        let rows: Vec<Value> = serde_json::from_str(&out.stdout).ok()?;
        rows.iter()
            .any(|r| r["id"] == "slow" && r["state"] == "running")
            .then_some(())
    });
    let refused = sandbox.cli(&["cache", "clear"]);
    refused.expect(2);
    assert!(refused.stderr.contains("an engine runs on"), "{refused}");
    assert!(refused.stderr.contains("once the run stops"), "{refused}");
    // Listing works beside it.
    sandbox.cli(&["cache", "list"]).expect(0);
    live.signal(libc::SIGTERM);
    live.wait();
    sandbox.wait_for_no_stray_agents();
}

#[test]
fn validate_points_at_a_bad_cache_key() {
    let sandbox = Sandbox::new();
    let good = sandbox.pipeline(PHASES);
    let out = output(cli::baton().arg("validate").arg(&good));
    out.expect(0);
    assert!(
        out.stdout
            .contains("  cached: fetch by {{input.q}}, kept 7d"),
        "{out}"
    );
    let path = sandbox.pipeline(&PHASES.replace("{{input.q}}", "{{outputs.use.id}}"));
    let out = output(cli::baton().arg("validate").arg(&path));
    out.expect(2);
    assert!(
        out.stderr
            .contains("uses outputs.use, but phase \"use\" does not run before \"fetch\""),
        "{out}"
    );
    assert!(out.stderr.contains("pipeline.toml:10:14: error:"), "{out}");
}

#[test]
fn an_output_approved_after_the_run_stopped_serves_the_tasks_that_waited() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(&PHASES.replace("cache_ttl = \"7d\"", "review = \"always\""));
    sandbox.inputs(&[ask("t1", "cats"), ask("t2", "cats"), ask("t3", "cats")]);
    // t1's output waits for a person; t2 and t3 wait for t1's, still
    // pending when the headless run stops.
    sandbox.run().expect(4);
    let states = sandbox.states();
    assert_eq!(states["t1"], "awaiting_review");
    assert_eq!(
        (states["t2"].as_str(), states["t3"].as_str()),
        ("pending", "pending")
    );
    assert_eq!(calls(&sandbox, "fetch"), 1);
    sandbox.cli(&["approve", "t1"]).expect(0);
    assert_eq!(cache_json(&sandbox).len(), 1, "stored when approved");
    sandbox.resume().expect(0);
    assert_eq!(
        calls(&sandbox, "fetch"),
        1,
        "t2 and t3 took the approved output"
    );
    for id in ["t2", "t3"] {
        assert_eq!(sandbox.show(id)["phases"][0]["cached"]["from_task"], "t1");
    }
}
