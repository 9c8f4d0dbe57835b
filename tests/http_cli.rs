//! http agents through the real binary: the API key reaches the server and
//! nothing else — not the state folder, the run log, stdout, stderr or what
//! `show` and `list` print, even when the server quotes it back — and a key
//! that is not set stops the run before it starts, naming the variable.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/llm_server.rs"]
mod llm_server;

use std::path::Path;

use cli::{Sandbox, baton, output};
use llm_server::{Server, Step};
use serde_json::json;

const KEY: &str = "sk-test-SECRET123";
const SECRET: &str = "SECRET123";

fn pipeline(sandbox: &Sandbox, openai: &Server, anthropic: &Server) {
    let text = format!(
        "name = \"secret-test\"\n\
         [defaults]\nretry = {{ max_attempts = 2, initial_delay = \"1ms\", max_delay = \"1ms\" }}\n\
         [agents.gpt]\nkind = \"http\"\nprovider = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"BATON_TEST_OPENAI_KEY\"\nmodel = \"gpt-4o-mini\"\nprompt = \"Plan: {{{{input.note}}}}\"\n\
         [agents.claude]\nkind = \"http\"\nprovider = \"anthropic\"\nbase_url = \"{}\"\napi_key_env = \"BATON_TEST_ANTHROPIC_KEY\"\nmodel = \"claude-haiku-4-5\"\nstream = false\nprompt = \"Check: {{{{outputs.plan.text}}}}\"\n\
         [[phases]]\nid = \"plan\"\nagent = \"gpt\"\n\
         [[phases]]\nid = \"check\"\nagent = \"claude\"\n",
        openai.url("/v1"),
        anthropic.url("")
    );
    sandbox.write("pipeline.toml", &text);
    sandbox.inputs(&[
        json!({"id": "t1", "note": "chest pain"}),
        json!({"id": "t2", "note": "cough"}),
    ]);
}

/// Every file under `dir` whose bytes contain `needle`.
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    let mut seen = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                seen += 1;
                let bytes = std::fs::read(&path).unwrap();
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    assert!(seen > 3, "only {seen} files under {}", dir.display());
    found
}

#[test]
fn the_api_key_goes_to_the_server_and_nowhere_else() {
    let stream = [
        (None, json!({"choices": [{"index": 0, "delta": {"content": "rest and review"}, "finish_reason": null}]}).to_string()),
        (None, json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}).to_string()),
        (None, "[DONE]".to_string()),
    ];
    let openai = Server::start(vec![Step::sse(&stream)]);
    // The messages service refuses the key for one task and quotes it back,
    // as some services do.
    let anthropic = Server::start(vec![
        Step::json(401, json!({"type": "error", "error": {"type": "authentication_error", "message": format!("invalid x-api-key: {KEY}")}}))
            .with_header("request-id", "req_401"),
        Step::json(200, json!({"id": "m", "type": "message", "role": "assistant", "model": "claude-haiku-4-5", "content": [{"type": "text", "text": "ok"}], "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 1}})),
    ]);
    let sandbox = Sandbox::new();
    pipeline(&sandbox, &openai, &anthropic);
    let run = output(
        baton()
            .args([
                "run",
                "pipeline.toml",
                "--headless",
                "--input",
                "tasks.jsonl",
                "--state-dir",
                "state",
            ])
            .current_dir(sandbox.root())
            .env("BATON_TEST_OPENAI_KEY", KEY)
            .env("BATON_TEST_ANTHROPIC_KEY", KEY),
    );
    // One task failed on the 401 (not retried), the other completed.
    run.expect(1);
    assert_eq!(anthropic.requests().len(), 2);
    for r in openai.requests() {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {KEY}").as_str())
        );
    }
    for r in anthropic.requests() {
        assert_eq!(r.header("x-api-key"), Some(KEY));
        assert_eq!(r.header("authorization"), None);
    }

    let mut printed = vec![("run", run.stdout.clone(), run.stderr.clone())];
    for args in [
        vec!["list"],
        vec!["list", "--json"],
        vec!["show", "t1"],
        vec!["show", "t2"],
        vec!["show", "t1", "--json"],
        vec!["show", "t2", "--json"],
    ] {
        let out = sandbox.cli(&args);
        printed.push((args[0], out.stdout.clone(), out.stderr.clone()));
    }
    let shown: String = printed.iter().map(|(_, o, e)| format!("{o}{e}")).collect();
    // The refusal is shown, with the key taken out of it.
    assert!(
        shown.contains("authentication_error") && shown.contains("invalid x-api-key: [api key]"),
        "{shown}"
    );
    assert!(shown.contains("request req_401"), "{shown}");
    for (what, out, err) in &printed {
        assert!(
            !out.contains(SECRET) && !err.contains(SECRET),
            "{what} printed the key:\n{out}\n{err}"
        );
    }
    assert_eq!(
        files_containing(sandbox.root(), SECRET),
        Vec::<String>::new()
    );
}

#[test]
fn a_key_that_is_not_set_stops_the_run_before_it_starts() {
    let openai = Server::start(vec![Step::json(500, json!({}))]);
    let sandbox = Sandbox::new();
    pipeline(&sandbox, &openai, &openai);
    let out = output(
        baton()
            .args([
                "run",
                "pipeline.toml",
                "--headless",
                "--input",
                "tasks.jsonl",
                "--state-dir",
                "state",
            ])
            .current_dir(sandbox.root())
            .env("BATON_TEST_OPENAI_KEY", KEY)
            .env("BATON_TEST_ANTHROPIC_KEY", "  "),
    );
    assert_ne!(out.code(), 0);
    assert!(
        out.stderr.contains(
            "agent \"claude\" reads its API key from $BATON_TEST_ANTHROPIC_KEY, which is empty"
        ),
        "{out}"
    );
    assert!(
        out.stderr
            .contains("help: export BATON_TEST_ANTHROPIC_KEY="),
        "{out}"
    );
    assert!(!out.stderr.contains(SECRET) && !out.stdout.contains(SECRET));
    assert!(openai.requests().is_empty());
    assert!(!sandbox.state().exists(), "the state folder was made");
}

/// Every run of eight characters of `secret` found in `text`, in any case.
fn pieces_in(text: &str, secret: &str) -> Vec<String> {
    let hay = text.to_ascii_lowercase();
    let secret: Vec<char> = secret.to_ascii_lowercase().chars().collect();
    secret
        .windows(8)
        .map(|w| w.iter().collect::<String>())
        .filter(|piece| hay.contains(piece.as_str()))
        .collect()
}

/// Files under `dir` holding a piece of `secret` in any case, with the pieces.
fn files_with_pieces(dir: &Path, secret: &str) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let pieces = pieces_in(&text, secret);
            if !pieces.is_empty() {
                found.push((path.display().to_string(), pieces));
            }
        }
    }
    found
}

#[test]
fn a_key_in_a_successful_reply_is_masked_in_any_case_and_cut_short() {
    const LONG_KEY: &str = "sk-live-7f3a9c2e5b1d4086";
    let said = format!(
        "whole {LONG_KEY}, upper {}, head cut {}, tail cut {}, a piece {}.",
        LONG_KEY.to_uppercase(),
        &LONG_KEY[1..],
        &LONG_KEY[..LONG_KEY.len() - 1],
        &LONG_KEY[6..16],
    );
    let stream = [
        (None, json!({"choices": [{"index": 0, "delta": {"content": said}, "finish_reason": null}]}).to_string()),
        (None, json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 9, "completion_tokens": 3}}).to_string()),
        (None, "[DONE]".to_string()),
    ];
    let openai = Server::start(vec![Step::sse(&stream)]);
    let sandbox = Sandbox::new();
    let text = format!(
        "name = \"reply-key\"\n\
         [agents.gpt]\nkind = \"http\"\nprovider = \"openai\"\nbase_url = \"{}\"\napi_key_env = \"BATON_TEST_OPENAI_KEY\"\nmodel = \"gpt-4o-mini\"\nprompt = \"Plan: {{{{input.note}}}}\"\n\
         [[phases]]\nid = \"plan\"\nagent = \"gpt\"\n",
        openai.url("/v1"),
    );
    sandbox.write("pipeline.toml", &text);
    sandbox.inputs(&[json!({"id": "t1", "note": "chest pain"})]);
    let run = output(
        baton()
            .args([
                "run",
                "pipeline.toml",
                "--headless",
                "--input",
                "tasks.jsonl",
            ])
            .args(["--state-dir", "state"])
            .current_dir(sandbox.root())
            .env("BATON_TEST_OPENAI_KEY", LONG_KEY),
    );
    run.expect(0);
    let shown = sandbox.cli(&["show", "t1"]);
    let json_shown = sandbox.cli(&["show", "t1", "--json"]);
    let task: serde_json::Value = serde_json::from_str(&json_shown.stdout).unwrap();
    assert_eq!(
        task["phases"][0]["output"]["text"],
        "whole [secret], upper [secret], head cut [secret], tail cut [secret], a piece [secret].",
        "{task}"
    );
    for (what, text) in [
        ("run", format!("{}{}", run.stdout, run.stderr)),
        ("show", shown.stdout.clone()),
        ("show --json", json_shown.stdout.clone()),
    ] {
        assert_eq!(
            pieces_in(&text, LONG_KEY),
            Vec::<String>::new(),
            "{what}:\n{text}"
        );
    }
    assert_eq!(
        files_with_pieces(&sandbox.state(), LONG_KEY),
        Vec::<(String, Vec<String>)>::new(),
        "the state folder holds the key"
    );
}
