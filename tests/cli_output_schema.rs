//! `output_schema` through the binary: a command agent whose output breaks
//! the schema fails its task with each JSON pointer and rule in `show`; one
//! whose output fits completes; a run going on without its pipeline file
//! checks against the schema it kept, even once the file is gone.

#[path = "support/cli.rs"]
mod cli;

use cli::{Sandbox, baton, output, str_at};
use serde_json::json;

const LIGHTING: &str = r#"{
  "type": "object",
  "required": ["groups"],
  "properties": {
    "groups": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["id", "intensity"],
        "properties": {
          "id": {"type": "string"},
          "intensity": {"type": "number", "minimum": 0, "maximum": 1}
        }
      }
    }
  }
}"#;

/// Replies with one lighting group per number in the input's `levels`.
const LIGHTS_PY: &str = r#"
import json, sys
req = json.loads(sys.stdin.readline())
levels = req["task"]["input"]["levels"]
groups = [{"id": "g%d" % i, "intensity": v} for i, v in enumerate(levels)]
print(json.dumps({"output": {"groups": groups}}))
"#;

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("schemas/lighting.json", LIGHTING);
    sandbox.write("lights.py", LIGHTS_PY);
    sandbox.pipeline(&format!(
        r#"
[defaults]
retry = {{ max_attempts = 2, initial_delay = "10ms", max_delay = "20ms" }}

[agents.lights]
kind = "command"
command = ["python3", {:?}]

[[phases]]
id = "lighting"
agent = "lights"
output_schema = "schemas/lighting.json"
"#,
        sandbox.path("lights.py")
    ));
    sandbox
}

#[test]
fn validate_names_each_phases_schema() {
    let sandbox = sandbox();
    let out = output(baton().arg("validate").arg(sandbox.path("pipeline.toml")));
    out.expect(0);
    assert!(
        out.stdout
            .contains("  schema: lighting (schemas/lighting.json)\n"),
        "{out}"
    );
}

const BROKEN: &str = "output breaks its schema (schemas/lighting.json): /groups/2/intensity: 1.4 is greater than the maximum of 1";

#[test]
fn an_output_breaking_the_schema_fails_the_task_with_pointer_and_rule() {
    let sandbox = sandbox();
    sandbox.inputs(&[
        json!({"id": "fits", "levels": [0, 0.5, 1]}),
        json!({"id": "too-bright", "levels": [0.2, 0.3, 1.4]}),
    ]);
    sandbox.run().expect(1);
    assert_eq!(
        sandbox.states(),
        [
            ("fits".to_string(), "completed".to_string()),
            ("too-bright".to_string(), "failed".to_string())
        ]
        .into()
    );
    let fits = sandbox.show("fits");
    assert_eq!(fits["phases"][0]["output"]["groups"][2]["intensity"], 1);

    let bad = sandbox.show("too-bright");
    let phase = &bad["phases"][0];
    assert_eq!(
        str_at(phase, "error"),
        format!("contract: {BROKEN}"),
        "{bad}"
    );
    let attempts = phase["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "a contract error is retried: {bad}");
    for a in attempts {
        assert_eq!(a["outcome"]["class"], "contract", "{a}");
    }
    // The text view says it too.
    let out = sandbox.cli(&["show", "too-bright"]);
    out.expect(0);
    assert!(out.stdout.contains(BROKEN), "{out}");
}

#[test]
fn a_run_going_on_without_its_file_keeps_the_schema_it_started_with() {
    let sandbox = sandbox();
    sandbox.inputs(&[json!({"id": "first", "levels": [0.5]})]);
    sandbox.run().expect(0);
    let kept = sandbox.state().join("pipeline.schemas.json");
    assert!(kept.is_file(), "the schema is kept with the run");

    // The file goes; the run goes on with the kept pipeline and new tasks.
    std::fs::remove_file(sandbox.path("schemas/lighting.json")).unwrap();
    sandbox.inputs(&[
        json!({"id": "second", "levels": [0.9]}),
        json!({"id": "third", "levels": [2]}),
    ]);
    let out = output(
        baton()
            .arg("run")
            .arg("--headless")
            .arg("--input")
            .arg(sandbox.path("tasks.jsonl"))
            .arg("--state-dir")
            .arg(sandbox.state()),
    );
    out.expect(1);
    assert!(
        out.stderr.contains("going on with the pipeline kept in"),
        "{out}"
    );
    assert_eq!(sandbox.show("second")["state"], "completed");
    assert_eq!(
        str_at(&sandbox.show("third")["phases"][0], "error"),
        "contract: output breaks its schema (schemas/lighting.json): /groups/0/intensity: 2 is greater than the maximum of 1"
    );

    // Given the file again, the run reads the schema anew: here, it is gone.
    let out = sandbox.resume();
    out.expect(2);
    assert!(
        out.stderr
            .contains("pipeline.toml:14:17: error: cannot read the output schema"),
        "{out}"
    );
}
