//! Fan-out through the binary: kill -9 in the middle of a task's items,
//! again and again; every item finished before a kill never runs again,
//! and the fan-in still gets every item's output in item order. Then
//! `show` reports the items' progress and failures.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;

use cli::{Sandbox, wait_for};
use serde_json::{Value, json};

/// A command agent for item phases: `parse` lists `input.count` scenes;
/// an item phase sleeps `input.sleep_ms`, appends `task phase item
/// attempt` to the side log, and replies with its item's number; item
/// numbers in `input.fail` fail for good; `metrics` counts what it got.
const ITEM_AGENT: &str = r#"
import json, os, sys, time

req = json.loads(sys.stdin.readline())
inp = req["task"]["input"]
phase = req["phase"]
if phase == "parse":
    out = {"scenes": [{"n": i} for i in range(inp["count"])]}
elif phase == "metrics":
    got = req["outputs"]["light"]
    out = {"order": [o and o["n"] for o in got]}
else:
    item = req["item_index"]
    assert req["item"]["n"] == item
    time.sleep(inp.get("sleep_ms", 0) / 1000.0)
    if item in inp.get("fail", []):
        sys.stdout.write(json.dumps({"error": {"message": "scene %d is unreadable" % item, "retryable": False}}))
        sys.exit(0)
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %d %d\n" % (req["task"]["id"], phase, item, req["attempt"])).encode())
    os.close(fd)
    out = {"n": item}
sys.stdout.write(json.dumps({"output": out}))
"#;

const PHASES: &str = r#"
[defaults]
concurrency = 2
retry = { max_attempts = 2, initial_delay = "10ms", max_delay = "20ms" }

[[phases]]
id = "parse"
agent = "items"

[[phases]]
id = "enrich"
agent = "items"
for_each = "outputs.parse.scenes"
max_items_in_flight = 4
on_item_failure = "continue"

[[phases]]
id = "light"
agent = "items"
for_each = "outputs.parse.scenes"
on_item_failure = "continue"

[[phases]]
id = "metrics"
agent = "items"
"#;

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("items.py", ITEM_AGENT);
    sandbox.pipeline(&format!(
        "{PHASES}\n[agents.items]\nkind = \"command\"\ncommand = [\"python3\", {:?}, {:?}]\n",
        sandbox.path("items.py"),
        sandbox.side_log()
    ));
    sandbox
}

/// Runs of each (phase, item) the side log records.
fn runs(sandbox: &Sandbox) -> BTreeMap<(String, u64), usize> {
    let mut n = BTreeMap::new();
    for l in sandbox.side_log_lines() {
        *n.entry((l[1].clone(), l[2].parse().unwrap())).or_default() += 1;
    }
    n
}

/// The (phase, item) pairs `show --json` has as done.
fn done_items(task: &Value) -> Vec<(String, u64)> {
    let mut done = Vec::new();
    for p in task["phases"].as_array().unwrap() {
        let Some(items) = p["items"]["items"].as_array() else {
            continue;
        };
        for (i, it) in items.iter().enumerate() {
            if it["state"] == "done" {
                done.push((p["id"].as_str().unwrap().to_string(), i as u64));
            }
        }
    }
    done
}

#[test]
fn kill_9_mid_fan_out_never_runs_a_finished_item_again() {
    let sandbox = sandbox();
    sandbox.inputs(&[json!({"id": "t", "count": 24, "sleep_ms": 30, "fail": [5]})]);
    // Kill once the side log has this many lines: items at both phases
    // finish between kills.
    let mut settled: BTreeMap<(String, u64), usize> = BTreeMap::new();
    let mut kills = 0;
    for lines in [3, 9, 16, 24, 33, 40] {
        let mut live = sandbox.spawn_run(true);
        let reached = wait_for("the kill point or the end of the run", || {
            if sandbox.side_log_lines().len() >= lines {
                Some(true)
            } else if live.has_exited() {
                Some(false)
            } else {
                None
            }
        });
        if !reached {
            live.wait().expect(0);
            break;
        }
        live.kill9();
        kills += 1;
        sandbox.wait_for_no_stray_agents();
        let task = sandbox.show("t");
        let now = runs(&sandbox);
        for key in done_items(&task) {
            let count = now.get(&key).copied().unwrap_or(0);
            assert!(count >= 1, "{key:?} is done but never ran");
            match settled.get(&key) {
                None => {
                    settled.insert(key, count);
                }
                Some(then) => {
                    assert_eq!(count, *then, "{key:?} ran again after it finished")
                }
            }
        }
    }
    assert!(kills >= 3, "the run ended before the kills: only {kills}");
    // The last run, to the end: item 5 failed, and was skipped.
    sandbox.resume().expect(0);
    let task = sandbox.show("t");
    assert_eq!(task["state"], "completed", "{task}");
    let now = runs(&sandbox);
    for (key, then) in &settled {
        assert_eq!(now[key], *then, "{key:?} ran again after it finished");
    }
    let mut order: Vec<Value> = (0..24).map(|i| json!(i)).collect();
    order[5] = Value::Null;
    let metrics = &task["phases"][3]["output"];
    assert_eq!(metrics["order"], Value::Array(order), "{task}");
    assert!(!now.contains_key(&("light".to_string(), 5)));
}

#[test]
fn show_gives_item_progress_and_lists_failed_items() {
    let sandbox = sandbox();
    sandbox.inputs(&[json!({"id": "t", "count": 6, "fail": [2, 4]})]);
    sandbox.run().expect(0);
    let out = sandbox.cli(&["show", "t"]);
    out.expect(0);
    for want in [
        "items     4/6 scenes · 2 failed\n",
        "failed    item 2: fatal: scene 2 is unreadable\n",
        "failed    item 4: fatal: scene 4 is unreadable\n",
        "items     4/6 scenes · 2 skipped\n",
        // Six items' outputs: five shown, the rest in `show --json`.
        "    … and 1 more (baton show t --json gives them all)\n",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?} in\n{out}");
    }
    let task = sandbox.show("t");
    let progress = &task["item_progress"];
    assert_eq!(progress[0]["phase"], "enrich");
    assert_eq!(progress[0]["name"], "scenes");
    assert_eq!(task["phases"][1]["output"].as_array().unwrap().len(), 6);
    assert_eq!(progress[0]["done"], 4);
    assert_eq!(progress[0]["total"], 6);
    assert_eq!(
        progress[0]["failed"],
        json!([
            {"item": 2, "error": "fatal: scene 2 is unreadable"},
            {"item": 4, "error": "fatal: scene 4 is unreadable"}
        ])
    );
    assert_eq!(progress[1]["skipped"], 2);
    assert_eq!(
        task["phases"][3]["output"]["order"],
        json!([0, 1, null, 3, null, 5])
    );
    // Figures per phase count each item's attempt.
    let out = sandbox.cli(&["stats", "--json"]);
    out.expect(0);
    let stats: Value = serde_json::from_str(&out.stdout).unwrap();
    let phase = |id: &str| {
        stats["phases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["phase"] == id)
            .cloned()
            .unwrap_or_else(|| panic!("no {id} in {stats}"))
    };
    assert_eq!(phase("enrich")["attempts"], 6, "{stats}");
    assert_eq!(phase("enrich")["succeeded"], 4, "{stats}");
    assert_eq!(phase("light")["attempts"], 4, "{stats}");
}

#[test]
fn validate_shows_the_chains_and_points_at_a_bad_for_each() {
    let sandbox = sandbox();
    let out = cli::output(
        cli::baton()
            .arg("validate")
            .arg(sandbox.path("pipeline.toml")),
    );
    out.expect(0);
    for want in [
        "for each: enrich over outputs.parse.scenes (on item failure: continue; at most 4 items in flight)\n",
        "for each: light over outputs.parse.scenes, after enrich in its chain (on item failure: continue)\n",
    ] {
        assert!(out.stdout.contains(want), "missing {want:?} in\n{out}");
    }
    let bad = sandbox.write(
        "bad.toml",
        "name = \"x\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"light\"\nagent = \"a\"\nfor_each = \"outputs.light.scenes\"\n",
    );
    let out = cli::output(cli::baton().arg("validate").arg(&bad));
    out.expect(2);
    assert!(
        out.stderr.contains(
            "bad.toml:7:12: error: phase \"light\" fans out over outputs.light, but \"light\" does not run before it"
        ),
        "{out}"
    );
}

#[test]
fn sigterm_mid_fan_out_records_running_items_as_interrupted_and_the_next_run_finishes() {
    let sandbox = sandbox();
    sandbox.inputs(&[json!({"id": "t", "count": 12, "sleep_ms": 200})]);
    let live = sandbox.spawn_run(true);
    // An agent's reply is in the side log before the engine records it:
    // wait for an item the state folder says is done.
    wait_for("an item recorded as done", || {
        let out = sandbox.cli(&["show", "t", "--json"]);
        let task: Value = serde_json::from_str(&out.stdout).ok()?;
        (out.code() == 0 && !done_items(&task).is_empty()).then_some(())
    });
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    sandbox.wait_for_no_stray_agents();
    let task = sandbox.show("t");
    let items = &task["phases"][1]["items"];
    assert_eq!(items["running"], 0, "{items}");
    let states: Vec<&str> = items["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert!(!states.contains(&"running"), "{states:?}");
    let before = runs(&sandbox);
    let done = done_items(&task);
    assert!(!done.is_empty());
    sandbox.resume().expect(0);
    let after = runs(&sandbox);
    for key in done {
        assert_eq!(after[&key], before[&key], "{key:?} ran again");
    }
    assert_eq!(sandbox.show("t")["state"], "completed");
}
