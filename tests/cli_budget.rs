//! Budgets through the binary: `--budget` on `run`, and `baton budget` on a
//! state folder no run holds, then `approve` and a run that carries on.

#[path = "support/cli.rs"]
mod cli;

use cli::{Out, Sandbox, baton, output, str_at};
use serde_json::json;

/// Three phases on a simulator that reports 175 tokens an attempt.
const SIM_PIPELINE: &str = r#"name = "cli-budget"

[agents.s]
kind = "sim"
tokens = 100
model = "house-model"

[[phases]]
id = "one"
agent = "s"

[[phases]]
id = "two"
agent = "s"

[[phases]]
id = "three"
agent = "s"
"#;

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", SIM_PIPELINE);
    sandbox.inputs(&[json!({"id": "t"})]);
    sandbox
}

fn run_with(sandbox: &Sandbox, extra: &[&str]) -> Out {
    output(
        baton()
            .arg("run")
            .arg(sandbox.path("pipeline.toml"))
            .arg("--headless")
            .arg("--input")
            .arg(sandbox.path("tasks.jsonl"))
            .arg("--state-dir")
            .arg(sandbox.state())
            .args(extra),
    )
}

#[test]
fn a_budget_flag_holds_the_task_and_baton_budget_lets_it_go_on() {
    let sandbox = sandbox();
    let out = run_with(&sandbox, &["--budget", "task.tokens=350"]);
    out.expect(3);
    let t = sandbox.show("t");
    assert_eq!(t["state"], "awaiting_review");
    assert_eq!(t["holds"][0]["phase"], "three");
    assert_eq!(t["holds"][0]["review"]["kind"], "budget");
    assert_eq!(t["holds"][0]["review"]["scope"], "task");
    assert_eq!(
        t["holds"][0]["reason"],
        "budget: task 350 tokens reached: 350 used"
    );

    // Approving grants no money: the next run with the same flag holds
    // the task again before the phase starts.
    sandbox.cli(&["approve", "t"]).expect(0);
    run_with(&sandbox, &["--budget", "task.tokens=350"]).expect(3);
    let t = sandbox.show("t");
    assert_eq!(t["holds"][0]["review"]["kind"], "budget");
    assert_eq!(
        t["phases"][2]["attempts"],
        json!(null),
        "phase three never started"
    );

    let out = sandbox.cli(&["budget", "t", "--tokens", "525"]);
    out.expect(0);
    assert!(
        out.stdout.contains("budget of task t raised to 525 tokens"),
        "{out}"
    );
    sandbox.cli(&["approve", "t"]).expect(0);
    run_with(&sandbox, &["--budget", "task.tokens=350"]).expect(0);
    let t = sandbox.show("t");
    assert_eq!(t["state"], "completed");
    assert_eq!(t["budget"]["tokens"], 525);
    let shown = sandbox.cli(&["show", "t"]);
    assert!(
        shown.stdout.contains("budget    raised to 525 tokens"),
        "{shown}"
    );
}

#[test]
fn an_approval_waits_for_a_raise_of_a_budget_in_the_file() {
    let sandbox = sandbox_held_by_file_budget();
    let out = sandbox.cli(&["approve", "t"]);
    out.expect(1);
    assert!(
        out.stderr.contains("the task budget is still reached"),
        "{out}"
    );
    assert!(
        out.stderr.contains("baton budget t --usd X --tokens N"),
        "{out}"
    );
    let out = sandbox.cli(&["budget", "t", "--tokens", "100"]);
    out.expect(1);
    assert!(out.stderr.contains("budgets only go up"), "{out}");
    // The same with --json: one object saying what was asked and why not.
    let out = sandbox.cli(&["budget", "t", "--tokens", "100", "--json"]);
    out.expect(1);
    let said: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(said["task"], "t", "{out}");
    assert_eq!(said["tokens"], 100, "{out}");
    assert_eq!(said["usd"], serde_json::Value::Null, "{out}");
    assert_eq!(said["recorded"], false, "{out}");
    assert!(
        said["refusal"]
            .as_str()
            .unwrap()
            .contains("budgets only go up"),
        "{out}"
    );
    let out = sandbox.cli(&["budget", "t", "--tokens", "525", "--json"]);
    out.expect(0);
    let said: serde_json::Value = serde_json::from_str(out.stdout.trim()).expect("one JSON object");
    assert_eq!(said["recorded"], true, "{out}");
    assert_eq!(said["refusal"], serde_json::Value::Null, "{out}");
    assert_eq!(sandbox.show("t")["budget"]["tokens"], 525);
    sandbox.cli(&["approve", "t"]).expect(0);
    sandbox.resume().expect(0);
    assert_eq!(str_at(&sandbox.show("t"), "state"), "completed");
}

/// A run stopped with task `t` held by `budget_tokens = 350` in the file.
fn sandbox_held_by_file_budget() -> Sandbox {
    let sandbox = Sandbox::new();
    let text = SIM_PIPELINE.replace(
        "[agents.s]",
        "[defaults]\nbudget_tokens = 350\n\n[agents.s]",
    );
    sandbox.write("pipeline.toml", &text);
    sandbox.inputs(&[json!({"id": "t"})]);
    sandbox.run().expect(3);
    assert_eq!(str_at(&sandbox.show("t"), "state"), "awaiting_review");
    sandbox
}

#[test]
fn a_run_budget_flag_and_a_run_raise() {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", SIM_PIPELINE);
    sandbox.inputs(&[json!({"id": "a"}), json!({"id": "b"})]);
    let out = run_with(
        &sandbox,
        &["--budget", "run.tokens=525", "--budget", "task.usd=10"],
    );
    // The house model has no price: the task dollar limit holds each task
    // after its first attempt, and the run's tokens run out as well.
    out.expect(3);
    let listed = sandbox.list();
    assert!(
        listed.iter().all(|t| t["state"] == "awaiting_review"),
        "{listed:?}"
    );
    let out = sandbox.cli(&["budget", "--tokens", "5000"]);
    out.expect(0);
    assert!(
        out.stdout
            .contains("budget of the run raised to 5000 tokens"),
        "{out}"
    );
}

#[test]
fn bad_budget_values_are_refused_with_how_to_write_them() {
    let sandbox = sandbox();
    let out = run_with(&sandbox, &["--budget", "task.usd=cheap"]);
    out.expect(2);
    assert!(
        out.stderr.contains("\"cheap\" is not an amount of dollars"),
        "{out}"
    );
    let out = run_with(&sandbox, &["--budget", "week.usd=5"]);
    out.expect(2);
    assert!(out.stderr.contains("unknown scope \"week\""), "{out}");
    assert!(out.stderr.contains("task.usd=0.50"), "{out}");
    let out = sandbox.cli(&["budget", "t"]);
    out.expect(2);
    assert!(out.stderr.contains("--usd"), "{out}");
    let out = sandbox.cli(&["budget", "t", "--usd", "0"]);
    out.expect(2);
    assert!(out.stderr.contains("not a budget"), "{out}");
    let out = sandbox.cli(&["budget", "t", "--tokens", "1.5"]);
    out.expect(2);
    assert!(out.stderr.contains("not a whole number of tokens"), "{out}");
}
