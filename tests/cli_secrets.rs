//! Values named in `secret_env` never reach the state folder, the run log,
//! what `show` prints or what a dashboard sees live: in a task's input, an
//! agent's output, its trace, its error or review reason, or an operator's
//! note, whole, in another letter case or cut short at either end.

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;

use cli::{Sandbox, baton, output};
use serde_json::json;

const TOKEN: &str = "tt-9d8c7b6a5f4e3d2c1b0a";

/// Every run of eight characters of `secret` in `text`, in any case.
fn pieces_in(text: &str, secret: &str) -> Vec<String> {
    let hay = text.to_ascii_lowercase();
    let secret: Vec<char> = secret.to_ascii_lowercase().chars().collect();
    let mut found: Vec<String> = secret
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|piece| hay.contains(piece.as_str()))
        .collect();
    found.dedup();
    found
}

/// Every file of the state folder holding a piece of `secret`.
fn files_with_pieces(dir: &Path, secret: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            seen += 1;
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            if !pieces_in(&text, secret).is_empty() {
                found.push(path.display().to_string());
            }
        }
    }
    assert!(seen >= 3, "only {seen} files in {}", dir.display());
    found
}

/// Says the token every way it can: whole in the output, upper-cased in a
/// key, cut at either end in the trace, and in the review reason.
const LEAKY_AGENT: &str = r#"
import json, os, sys
req = json.loads(sys.stdin.readline())
tok = os.environ["TEAM_TOKEN"]
sys.stderr.write("connecting with %s\n" % tok[2:])
sys.stderr.write("retrying with %s\n" % tok[:-3])
out = {"said": "token is " + tok, tok.upper(): "as a key", "seen": req["task"]["input"]}
if req["phase"] == "one":
    print(json.dumps({"review": {"reason": "is %s right?" % tok.lower()}, "output": out}))
else:
    print(json.dumps({"output": {"before": req["outputs"]["one"]["said"]}}))
"#;

#[test]
fn secret_env_values_are_masked_everywhere_text_is_kept_or_shown() {
    let sandbox = Sandbox::new();
    sandbox.write("leaky.py", LEAKY_AGENT);
    sandbox.write(
        "pipeline.toml",
        &format!(
            "name = \"secrets\"\nsecret_env = [\"TEAM_TOKEN\"]\n\
             [agents.leaky]\nkind = \"command\"\ncommand = [\"python3\", {:?}]\n\
             [[phases]]\nid = \"one\"\nagent = \"leaky\"\n\
             [[phases]]\nid = \"two\"\nagent = \"leaky\"\nafter = [\"one\"]\n",
            sandbox.path("leaky.py")
        ),
    );
    sandbox.inputs(&[json!({"id": "t1", "note": format!("the token {}", &TOKEN[..12])})]);
    let run = |args: &[&str]| {
        output(
            baton()
                .args(args)
                .arg("--state-dir")
                .arg(sandbox.state())
                .env("TEAM_TOKEN", TOKEN),
        )
    };
    let first = run(&[
        "run",
        sandbox.path("pipeline.toml").to_str().unwrap(),
        "--headless",
        "--input",
        sandbox.path("tasks.jsonl").to_str().unwrap(),
    ]);
    first.expect(3);
    let approve = run(&["approve", "t1", "--note", &format!("ok, {TOKEN} is fine")]);
    approve.expect(0);
    let second = run(&[
        "run",
        sandbox.path("pipeline.toml").to_str().unwrap(),
        "--headless",
    ]);
    second.expect(0);

    let shown = run(&["show", "t1"]);
    let json_shown = run(&["show", "t1", "--json"]);
    let task: serde_json::Value = serde_json::from_str(&json_shown.stdout).unwrap();
    let one = &task["phases"][0];
    assert_eq!(one["output"]["said"], "token is [secret]", "{task}");
    assert_eq!(one["output"]["[secret]"], "as a key", "{task}");
    assert_eq!(
        one["output"]["seen"]["note"], "the token [secret]",
        "{task}"
    );
    assert_eq!(task["phases"][1]["output"]["before"], "token is [secret]");
    let attempt = &one["attempts"][0];
    assert_eq!(
        attempt["trace"],
        json!(["connecting with [secret]", "retrying with [secret]"]),
        "{task}"
    );
    assert_eq!(attempt["outcome"]["reason"], "is [secret] right?", "{task}");
    assert_eq!(
        task["decisions"][0]["note"], "ok, [secret] is fine",
        "{task}"
    );

    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).unwrap();
    for (what, text) in [
        ("the first run", format!("{}{}", first.stdout, first.stderr)),
        ("approve", format!("{}{}", approve.stdout, approve.stderr)),
        (
            "the second run",
            format!("{}{}", second.stdout, second.stderr),
        ),
        ("show", shown.stdout.clone()),
        ("show --json", json_shown.stdout.clone()),
        ("the run log", log),
    ] {
        assert_eq!(
            pieces_in(&text, TOKEN),
            Vec::<String>::new(),
            "{what}:\n{text}"
        );
    }
    assert_eq!(
        files_with_pieces(&sandbox.state(), TOKEN),
        Vec::<String>::new(),
        "the state folder holds the token"
    );
}
