//! The clinical example's agents, run directly with JSON on stdin, and their
//! replies read by the command agent's own parser.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use baton::agents::command::{CommandAgent, ParsedReply, parse_reply};
use baton::agents::{Agent, AgentRequest, CallContext, Reply, TaskRef};
use baton::spec::model::CommandSpec;
use serde_json::{Map, Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn agents_dir() -> PathBuf {
    root().join("examples/clinical/agents")
}

fn request(
    task: &Value,
    phase: &str,
    outputs: &Map<String, Value>,
    feedback: Option<&str>,
) -> Value {
    // A task in a request carries its id beside the whole input object.
    let task = if task.get("input").is_some() {
        task.clone()
    } else {
        json!({"id": task["id"], "input": task})
    };
    json!({"task": task, "phase": phase, "attempt": 1, "outputs": outputs, "feedback": feedback})
}

/// Runs one script from an unrelated working directory, as baton would with
/// the request on stdin, and parses its stdout.
fn run(script: &str, request: &Value) -> (ParsedReply, String) {
    let mut child = Command::new("python3")
        .arg(agents_dir().join(script))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{request}\n").as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{script}: {:?}\n{stderr}", out.status);
    let parsed = parse_reply(&out.stdout, None)
        .unwrap_or_else(|e| panic!("{script}: {e}\nstderr:\n{stderr}"));
    let usage = parsed.usage.as_ref().expect("usage");
    assert!(
        usage
            .model
            .as_deref()
            .is_some_and(|m| m.starts_with("claude-"))
    );
    assert!(usage.input_tokens > 0 && usage.output_tokens > 0);
    assert!(!stderr.trim().is_empty(), "{script} wrote no trace");
    (parsed, stderr)
}

fn notes() -> Vec<Value> {
    let text = std::fs::read_to_string(root().join("examples/clinical/notes.jsonl")).unwrap();
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn output_of(parsed: &ParsedReply) -> &Value {
    match &parsed.reply {
        Reply::Output { output } | Reply::Review { output, .. } => output,
        other => panic!("no output in {other:?}"),
    }
}

#[test]
fn every_note_runs_through_all_five_agents() {
    let notes = notes();
    assert!(notes.len() >= 5);
    let mut reviewed = Vec::new();
    let mut authorised = 0;
    for task in &notes {
        let id = task["id"].as_str().unwrap();
        let input = task;
        let mut outputs = Map::new();
        let phases = ["documentation", "coding", "compliance", "prior_auth", "qa"];
        let scripts = [
            "documenter.py",
            "coder.py",
            "compliance.py",
            "prior_auth.py",
            "qa.py",
        ];
        for (phase, script) in phases.into_iter().zip(scripts) {
            if phase == "prior_auth"
                && (input.get("payer").is_none() || input.get("procedure").is_none())
            {
                continue;
            }
            let (parsed, _) = run(script, &request(task, phase, &outputs, None));
            let output = output_of(&parsed).clone();
            match (phase, &parsed.reply) {
                ("qa", Reply::Review { reason, .. }) => {
                    assert!(reason.contains("compliance"), "{id}: {reason}");
                    reviewed.push(id.to_string());
                }
                (_, Reply::Output { .. }) => {}
                (_, other) => panic!("{id} {phase}: {other:?}"),
            }
            let want: &[&str] = match phase {
                "documentation" => &["subjective", "objective", "assessment", "plan"],
                "coding" => &["icd10", "cpt", "ordered"],
                "compliance" => &["status", "issues"],
                "prior_auth" => &["payer", "procedure", "required"],
                _ => &["status", "diagnoses", "findings"],
            };
            for key in want {
                assert!(
                    output.get(key).is_some(),
                    "{id} {phase} lacks {key}: {output}"
                );
            }
            if phase == "prior_auth" {
                authorised += 1;
            }
            outputs.insert(phase.to_string(), output);
        }
    }
    assert_eq!(reviewed, ["enc-004"]);
    assert!(authorised >= 2 && authorised < notes.len());
}

#[test]
fn feedback_settles_qa_findings() {
    let task = json!({"id": "enc-x", "input": {}});
    let mut outputs = Map::new();
    outputs.insert(
        "compliance".into(),
        json!({"status": "issues", "issues": [{"code": "J18.9", "problem": "uncertain diagnosis"}]}),
    );
    let (parsed, _) = run("qa.py", &request(&task, "qa", &outputs, None));
    assert!(
        matches!(parsed.reply, Reply::Review { .. }),
        "{:?}",
        parsed.reply
    );
    let (parsed, _) = run(
        "qa.py",
        &request(&task, "qa", &outputs, Some("code R05.9 and R50.9")),
    );
    let Reply::Output { output } = parsed.reply else {
        panic!("{:?}", parsed.reply)
    };
    assert_eq!(output["feedback_applied"], "code R05.9 and R50.9");
}

#[test]
fn a_missing_note_blocks_and_an_unknown_procedure_errors() {
    let task = json!({"id": "enc-x", "input": {"note": "  "}});
    let (parsed, _) = run(
        "documenter.py",
        &request(&task, "documentation", &Map::new(), None),
    );
    assert!(
        matches!(parsed.reply, Reply::Blocked { .. }),
        "{:?}",
        parsed.reply
    );

    let task = json!({"id": "enc-x", "input": {"payer": "Aetna", "procedure": "00000"}});
    let (parsed, _) = run(
        "prior_auth.py",
        &request(&task, "prior_auth", &Map::new(), None),
    );
    let Reply::Error { message, retryable } = parsed.reply else {
        panic!("{:?}", parsed.reply)
    };
    assert!(!retryable && message.contains("00000"), "{message}");
}

/// The pipeline file names scripts that exist where its `cwd` points, and a
/// command agent set up the same way gets a reply.
#[tokio::test]
async fn the_pipeline_points_at_the_scripts() {
    let pipelines = root().join("pipelines");
    let text = std::fs::read_to_string(pipelines.join("clinical.toml")).unwrap();
    let file: toml::Table = toml::from_str(&text).unwrap();
    assert_eq!(file["name"].as_str(), Some("clinical-coding"));
    let agents = file["agents"].as_table().unwrap();
    assert_eq!(agents.len(), 5);
    for (name, agent) in agents {
        let command: Vec<&str> = agent["command"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let cwd = pipelines.join(agent["cwd"].as_str().unwrap());
        assert_eq!(command[0], "python3", "{name}");
        assert!(cwd.join(command[1]).is_file(), "{name}: {}", command[1]);
    }
    let phases: Vec<&str> = file["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["documentation", "coding", "compliance", "prior_auth", "qa"]
    );

    let doc = &agents["documenter"];
    let spec = CommandSpec {
        program: PathBuf::from("python3"),
        args: vec!["documenter.py".into()],
        cwd: pipelines.join(doc["cwd"].as_str().unwrap()),
        env: BTreeMap::new(),
        max_output_bytes: 1 << 20,
        model: doc["model"].as_str().map(str::to_string),
    };
    let task = &notes()[0];
    let req = AgentRequest {
        task: TaskRef {
            id: task["id"].as_str().unwrap().into(),
            input: task.clone(),
        },
        phase: "documentation".into(),
        attempt: 1,
        outputs: Map::new(),
        feedback: None,
        model: None,
        item: None,
        item_index: None,
        send_back: None,
    };
    let ctx = CallContext {
        timeout: Duration::from_secs(60),
        trace: None,
        progress: None,
        output_schema: None,
    };
    let r = CommandAgent::new(spec).call(Arc::new(req), ctx).await;
    let Ok(Reply::Output { output }) = r.reply else {
        panic!("{:?}", r.reply)
    };
    assert!(output["assessment"].as_str().unwrap().contains("angina"));
    assert!(
        r.trace.iter().any(|l| l.contains("enc-001")),
        "{:?}",
        r.trace
    );
}
