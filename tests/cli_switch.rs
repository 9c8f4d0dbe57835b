//! Switchable phases through the binary: `enabled = false`, `--disable` and
//! `--only` on `run`, what `show` and `validate` say, and plans refused
//! because an enabled phase needs a disabled phase's output.

#[path = "support/cli.rs"]
mod cli;

use cli::{Sandbox, baton, output, str_at};
use serde_json::json;

/// Three phases in a row on the agent script.
const THREE: &str = r#"
[[phases]]
id = "one"
agent = "a"

[[phases]]
id = "two"
agent = "a"

[[phases]]
id = "three"
agent = "a"
"#;

fn run_with(sandbox: &Sandbox, extra: &[&str]) -> cli::Out {
    output(
        baton()
            .arg("run")
            .arg(sandbox.path("pipeline.toml"))
            .arg("--headless")
            .arg("--input")
            .arg(sandbox.path("tasks.jsonl"))
            .args(extra)
            .arg("--state-dir")
            .arg(sandbox.state()),
    )
}

/// `(phase, state, skip_reason)` of each phase of the task, from `show --json`.
fn phases(sandbox: &Sandbox, task: &str) -> Vec<(String, String, String)> {
    let shown = sandbox.show(task);
    shown["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .map(|p| {
            (
                str_at(p, "id"),
                str_at(p, "state"),
                p["skip_reason"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

fn row(id: &str, state: &str, reason: &str) -> (String, String, String) {
    (id.into(), state.into(), reason.into())
}

#[test]
fn a_phase_disabled_in_the_file_is_skipped_with_its_reason_and_never_runs() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(&THREE.replace("id = \"two\"", "id = \"two\"\nenabled = false"));
    sandbox.inputs(&[json!({"id": "t1"}), json!({"id": "t2"})]);
    run_with(&sandbox, &[]).expect(0);
    for task in ["t1", "t2"] {
        assert_eq!(
            phases(&sandbox, task),
            [
                row("one", "completed", ""),
                row("two", "skipped", "disabled in the pipeline file"),
                row("three", "completed", ""),
            ]
        );
        assert_eq!(sandbox.runs_of(task, "two"), 0, "two never ran");
        assert_eq!(sandbox.runs_of(task, "three"), 1, "three ran after it");
    }
    let out = output(baton().arg("validate").arg(sandbox.path("pipeline.toml")));
    out.expect(0);
    assert!(
        out.stdout
            .contains("  off: two (disabled in the pipeline file)\n"),
        "{out}"
    );
}

#[test]
fn disable_on_the_command_line_skips_the_phase_in_every_task() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(THREE);
    sandbox.inputs(&[json!({"id": "t1"})]);
    run_with(&sandbox, &["--disable", "one", "--disable", "three"]).expect(0);
    assert_eq!(
        phases(&sandbox, "t1"),
        [
            row("one", "skipped", "disabled by --disable"),
            row("two", "completed", ""),
            row("three", "skipped", "disabled by --disable"),
        ]
    );
    let ran: Vec<String> = sandbox
        .side_log_lines()
        .iter()
        .map(|l| l[1].clone())
        .collect();
    assert_eq!(ran, ["two"]);
    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).expect("run log");
    assert!(
        log.contains("`one` skipped: “disabled by --disable”"),
        "{log}"
    );
}

#[test]
fn a_run_goes_on_with_its_switches_until_new_ones_or_all_phases_are_given() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(THREE);
    sandbox.inputs(&[json!({"id": "t1"})]);
    run_with(&sandbox, &["--disable", "two"]).expect(0);
    // Going on with new tasks and no switches: two stays off, and it says so.
    sandbox.inputs(&[json!({"id": "t2"})]);
    let out = run_with(&sandbox, &[]);
    out.expect(0);
    assert!(
        out.stderr
            .contains("going on with the phases switched off when this run began (--disable two)"),
        "{}",
        out.stderr
    );
    assert_eq!(sandbox.runs_of("t2", "two"), 0);
    assert_eq!(
        phases(&sandbox, "t2")[1],
        row("two", "skipped", "disabled by --disable")
    );
    // Going on without the pipeline file keeps them too.
    sandbox.inputs(&[json!({"id": "t3"})]);
    output(
        baton()
            .arg("run")
            .arg("--headless")
            .arg("--input")
            .arg(sandbox.path("tasks.jsonl"))
            .arg("--state-dir")
            .arg(sandbox.state()),
    )
    .expect(0);
    assert_eq!(sandbox.runs_of("t3", "two"), 0);
    // --all-phases forgets them: every phase runs for the next task.
    sandbox.inputs(&[json!({"id": "t4"})]);
    run_with(&sandbox, &["--all-phases"]).expect(0);
    assert_eq!(sandbox.runs_of("t4", "two"), 1);
    sandbox.inputs(&[json!({"id": "t5"})]);
    run_with(&sandbox, &[]).expect(0);
    assert_eq!(
        sandbox.runs_of("t5", "two"),
        1,
        "nothing kept after --all-phases"
    );
    // Switches and --all-phases together are refused by the parser.
    let both = run_with(&sandbox, &["--all-phases", "--disable", "two"]);
    assert_eq!(both.code(), 2, "{both}");
}

#[test]
fn only_runs_just_the_phases_named() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(THREE);
    sandbox.inputs(&[json!({"id": "t1"})]);
    run_with(&sandbox, &["--only", "one,three"]).expect(0);
    assert_eq!(
        phases(&sandbox, "t1"),
        [
            row("one", "completed", ""),
            row("two", "skipped", "not in --only"),
            row("three", "completed", ""),
        ]
    );
    assert_eq!(sandbox.runs_of("t1", "two"), 0);
}

#[test]
fn an_unknown_phase_name_is_refused_with_the_phases_listed() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(THREE);
    sandbox.inputs(&[json!({"id": "t1"})]);
    let out = run_with(&sandbox, &["--disable", "tow"]);
    out.expect(2);
    assert!(
        out.stderr.contains("unknown phase \"tow\" in --disable"),
        "{out}"
    );
    assert!(
        out.stderr.contains("phases here are: one, two, three"),
        "{out}"
    );
    assert!(!sandbox.state().exists(), "nothing ran");
    let out = run_with(&sandbox, &["--only", "one,for"]);
    out.expect(2);
    assert!(
        out.stderr.contains("unknown phase \"for\" in --only"),
        "{out}"
    );
}

/// An http agent whose prompt reads the output of phase `draft`.
const NEEDS_DRAFT: &str = r#"name = "needs"
[agents.a]
kind = "sim"
[agents.reviewer]
kind = "http"
provider = "openai"
model = "m"
base_url = "http://127.0.0.1:9"
prompt = "Review: {{outputs.draft}}"
[[phases]]
id = "draft"
agent = "a"
[[phases]]
id = "review"
agent = "reviewer"
"#;

#[test]
fn validate_refuses_an_enabled_phase_needing_a_disabled_phases_output() {
    let sandbox = Sandbox::new();
    let file = sandbox.write(
        "pipeline.toml",
        &NEEDS_DRAFT.replace("agent = \"a\"", "agent = \"a\"\nenabled = false"),
    );
    let out = output(baton().arg("validate").arg(&file));
    out.expect(2);
    let want = format!(
        "{}:9:19: error: phase \"review\" needs `outputs.draft` (in the prompt of agent \"reviewer\"), but phase \"draft\" is disabled in the pipeline file",
        file.display()
    );
    assert!(out.stderr.contains(&want), "{out}");
    assert!(
        out.stderr
            .contains("help: enable \"draft\" (remove `enabled = false` from it), or disable \"review\" too (enabled = false)"),
        "{out}"
    );
}

#[test]
fn run_and_validate_refuse_disabling_a_phase_whose_output_is_needed() {
    let sandbox = Sandbox::new();
    let file = sandbox.write("pipeline.toml", NEEDS_DRAFT);
    sandbox.inputs(&[json!({"id": "t1"})]);
    let out = run_with(&sandbox, &["--disable", "draft"]);
    out.expect(2);
    let want = format!("{}:9:19: error: phase \"review\" needs", file.display());
    assert!(out.stderr.contains(&want), "{out}");
    assert!(out.stderr.contains("is disabled by --disable"), "{out}");
    assert!(out.stderr.contains("--disable review"), "{out}");
    assert!(!sandbox.state().exists(), "nothing ran");

    let out = output(baton().args(["validate", "--only", "review"]).arg(&file));
    out.expect(2);
    assert!(out.stderr.contains("is not in --only"), "{out}");
    // Switching the reader off too makes the plan valid.
    let out = output(
        baton()
            .args(["validate", "--disable", "draft", "--disable", "review"])
            .arg(&file),
    );
    out.expect(0);
    assert!(
        out.stdout.contains("off: draft (disabled by --disable)"),
        "{out}"
    );
    assert!(
        out.stdout.contains("off: review (disabled by --disable)"),
        "{out}"
    );
}
