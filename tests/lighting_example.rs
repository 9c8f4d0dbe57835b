//! The script-to-lighting example end to end: `pipelines/lighting.toml` and
//! its Python agents run by the real binary in a temporary folder. Scenes
//! fan out through enrichment, lighting and a preview; a corrupt scene is
//! skipped while the others go on; a lighting instruction that breaks its
//! schema (a key light past full) is asked for again; the metrics see every
//! scene; the hardware phase is off unless switched on.

#[path = "support/cli.rs"]
mod cli;

use std::path::PathBuf;

use cli::{baton, output};
use serde_json::Value;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn show(state: &std::path::Path, task: &str) -> Value {
    let out = output(
        baton()
            .args(["show", task, "--json", "--state-dir"])
            .arg(state),
    );
    out.expect(0);
    serde_json::from_str(&out.stdout).expect("show --json")
}

fn phase<'a>(task: &'a Value, id: &str) -> &'a Value {
    task["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no phase {id}"))
}

#[test]
fn scenes_fan_out_a_corrupt_one_is_skipped_and_every_instruction_meets_its_contract() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let validated = output(
        baton()
            .arg("validate")
            .arg(root().join("pipelines/lighting.toml")),
    );
    validated.expect(0);
    assert!(
        validated
            .stdout
            .contains("off: hardware (disabled in the pipeline file)"),
        "{}",
        validated.stdout
    );
    let run = output(
        baton()
            .arg("run")
            .arg(root().join("pipelines/lighting.toml"))
            .arg("--input")
            .arg(root().join("examples/lighting/scripts.jsonl"))
            .arg("--headless")
            .arg("--state-dir")
            .arg(&state),
    );
    run.expect(0);

    // The clean script: four scenes, each lit, previewed and measured.
    let one = show(&state, "SCRIPT-1");
    assert_eq!(one["state"], "completed");
    let metrics = &phase(&one, "metrics")["output"];
    assert_eq!(metrics["scenes"], 4);
    assert_eq!(metrics["lit"], 4);
    assert_eq!(metrics["skipped"], serde_json::json!([]));
    assert_eq!(
        metrics["emotions"],
        serde_json::json!({"calm": 1, "joy": 1, "sorrow": 1, "tension": 1})
    );
    // Every instruction kept is within the contract: intensities in [0, 1].
    for lit in phase(&one, "light")["output"]
        .as_array()
        .expect("the fan-in list")
    {
        for g in lit["groups"].as_array().expect("groups") {
            let x = g["intensity"].as_f64().expect("an intensity");
            assert!((0.0..=1.0).contains(&x), "{g}");
            assert!(g["id"].as_str().is_some_and(|id| !id.is_empty()), "{g}");
        }
    }
    // The ecstatic wedding scene's first instruction broke the schema and
    // was asked for again: the run's figures count the contract failure.
    let stats = output(baton().args(["stats", "--json", "--state-dir"]).arg(&state));
    stats.expect(0);
    let stats: Value = serde_json::from_str(&stats.stdout).expect("stats --json");
    let light = stats["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["phase"] == "light")
        .expect("light's figures");
    assert!(
        light["failed"]["contract"].as_u64().unwrap_or(0) >= 1,
        "{light}"
    );

    // The script with a corrupt scene: it is skipped, the others go on.
    let two = show(&state, "SCRIPT-2");
    assert_eq!(two["state"], "completed");
    let progress = two["item_progress"].as_array().expect("item progress");
    let enrich = progress
        .iter()
        .find(|p| p["phase"] == "enrich")
        .expect("enrich's items");
    assert_eq!(
        (enrich["done"].as_u64(), enrich["total"].as_u64()),
        (Some(2), Some(3))
    );
    assert_eq!(enrich["failed"][0]["item"], 1);
    assert!(
        enrich["failed"][0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("scene S2 is unreadable")),
        "{enrich}"
    );
    let metrics = &phase(&two, "metrics")["output"];
    assert_eq!(metrics["lit"], 2);
    assert_eq!(metrics["skipped"], serde_json::json!(["S2"]));
    assert_eq!(phase(&two, "light")["output"][1], Value::Null);
    let previews = phase(&two, "visualize")["output"]
        .as_array()
        .expect("previews")
        .clone();
    assert_eq!(previews.len(), 3);
    assert!(
        previews[2]["preview"]
            .as_str()
            .is_some_and(|p| p.starts_with("[EXT. ROOFTOP - DUSK] key "))
    );

    // The rig was never driven: the hardware phase is off by default.
    for task in [&one, &two] {
        let hw = phase(task, "hardware");
        assert_eq!(hw["state"], "skipped");
        assert_eq!(hw["skip_reason"], "disabled in the pipeline file");
    }
}

#[test]
fn the_agents_answer_bad_input_with_an_error_not_a_crash() {
    let agents = root().join("examples/lighting/agents");
    for (script, request) in [
        (
            "parse.py",
            r#"{"task": {"id": "x", "input": {}}, "phase": "parse", "attempt": 1, "outputs": {}}"#,
        ),
        (
            "parse.py",
            r#"{"task": {"id": "x", "input": {"script": "no headings here"}}, "phase": "parse", "attempt": 1, "outputs": {}}"#,
        ),
        (
            "hardware.py",
            r#"{"task": {"id": "x", "input": {}}, "phase": "hardware", "attempt": 1, "outputs": {"light": []}}"#,
        ),
    ] {
        let mut child = std::process::Command::new("python3")
            .arg(agents.join(script))
            .env_remove("BATON_LIGHTING_RIG")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3 runs");
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{request}\n").as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{script}");
        let reply: Value = serde_json::from_slice(&out.stdout).expect("one JSON reply");
        assert!(
            reply["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{script}: {reply}"
        );
    }
}
