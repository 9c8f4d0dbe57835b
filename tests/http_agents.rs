//! http agents against local servers that speak each provider's wire
//! format as documented: whole and streamed replies, usage with cache
//! counts, every error class with its retries and `retry-after`, hangs,
//! broken streams, bad JSON, the JSON contract and the output schema fed
//! back, refusals, the live progress of a streaming reply (and of a command
//! agent's stderr), and http agents under routes, budgets and rate limits.

#[path = "support/llm_server.rs"]
mod llm_server;
mod support;

use std::path::Path;
use std::sync::Arc;

use baton::engine::event::{AttemptOutcome, ErrorClass, EventKind};
use baton::engine::live::LiveKind;
use baton::engine::{Engine, Task, TaskState};
use baton::spec::Pipeline;
use llm_server::{Piece, Server, Step, sse_event};
use serde_json::{Value, json};
use support::{input, load, opts};

/// A pipeline with one http agent `llm` of `provider` at `server` and one
/// phase `sum`; `agent` and `phase` add keys to each. Retries are quick.
fn pipeline(dir: &Path, server: &Server, provider: &str, agent: &str, phase: &str) -> Pipeline {
    let base = match provider {
        "openai" => server.url("/v1"),
        _ => server.url(""),
    };
    let text = format!(
        "name = \"http-test\"\n[defaults]\nretry = {{ max_attempts = 3, initial_delay = \"1ms\", max_delay = \"5ms\", jitter = 0 }}\n\
         [agents.llm]\nkind = \"http\"\nprovider = \"{provider}\"\nbase_url = \"{base}\"\n\
         prompt = \"Summarise: {{{{input.note}}}}\"\n{agent}\n\
         [[phases]]\nid = \"sum\"\nagent = \"llm\"\n{phase}\n"
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, &text).unwrap();
    baton::spec::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

/// Runs one task to idle; gives it as the state folder holds it, and the
/// retry waits the engine scheduled.
async fn run_one(p: Pipeline, dir: &Path) -> (Task, Vec<u64>) {
    run_one_with(p, dir, json!({"note": "chest pain at rest"})).await
}

/// `run_one` with the task's input given.
async fn run_one_with(p: Pipeline, dir: &Path, task_input: Value) -> (Task, Vec<u64>) {
    let state = dir.join("state");
    let mut engine = Engine::open(p.clone(), &state, opts(true)).expect("open");
    engine
        .submit(vec![input("t1", task_input)])
        .await
        .expect("submit");
    let mut events = engine.handle().subscribe();
    engine.run().await.expect("run");
    let mut delays = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let EventKind::RetryScheduled { delay_ms, .. } = ev.kind {
            delays.push(delay_ms);
        }
    }
    let task = load(p, &state).await.remove(0);
    (task, delays)
}

fn failure(task: &Task, attempt: usize) -> (ErrorClass, String) {
    match &task.phases[0].attempts[attempt].outcome {
        Some(AttemptOutcome::Failed { class, message }) => (*class, message.clone()),
        other => panic!("attempt {attempt} did not fail: {other:?}"),
    }
}

fn openai_chunk(content: &str) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    .to_string()
}

fn openai_stream(words: &[&str], usage: Value) -> Vec<(Option<&'static str>, String)> {
    let mut evs: Vec<(Option<&str>, String)> =
        words.iter().map(|w| (None, openai_chunk(w))).collect();
    evs.push((
        None,
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string(),
    ));
    evs.push((None, json!({"choices": [], "usage": usage}).to_string()));
    evs.push((None, "[DONE]".to_string()));
    evs
}

fn openai_whole(content: &str) -> Value {
    json!({"id": "c2", "object": "chat.completion", "model": "gpt-4o-mini-2024-07-18",
           "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": null}, "finish_reason": "stop"}],
           "usage": {"prompt_tokens": 30, "completion_tokens": 5, "total_tokens": 35, "prompt_tokens_details": {"cached_tokens": 0}}})
}

fn anthropic_stream(words: &[&str]) -> Vec<(Option<&'static str>, String)> {
    let mut evs = vec![
        (Some("message_start"), json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-haiku-4-5-20251001", "stop_reason": null, "usage": {"input_tokens": 40, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000, "output_tokens": 1}}}).to_string()),
        (Some("content_block_start"), json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}).to_string()),
        (Some("ping"), json!({"type": "ping"}).to_string()),
    ];
    for w in words {
        evs.push((Some("content_block_delta"), json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}}).to_string()));
    }
    evs.push((
        Some("content_block_stop"),
        json!({"type": "content_block_stop", "index": 0}).to_string(),
    ));
    evs.push((Some("message_delta"), json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 12}}).to_string()));
    evs.push((
        Some("message_stop"),
        json!({"type": "message_stop"}).to_string(),
    ));
    evs
}

fn anthropic_whole(text: &str, stop: &str) -> Value {
    json!({"id": "msg_2", "type": "message", "role": "assistant", "model": "claude-haiku-4-5-20251001",
           "content": [{"type": "text", "text": text}], "stop_reason": stop, "stop_sequence": null,
           "usage": {"input_tokens": 10, "output_tokens": 3}})
}

/// A whole (not streamed) reply of `text` in `provider`'s format.
fn whole(provider: &str, text: &str) -> Value {
    match provider {
        "openai" => openai_whole(text),
        _ => anthropic_whole(text, "end_turn"),
    }
}

#[tokio::test]
async fn openai_stream_gives_text_usage_with_cache_and_a_price() {
    let dir = tempfile::tempdir().unwrap();
    let usage = json!({"prompt_tokens": 1200, "completion_tokens": 3, "total_tokens": 1203, "prompt_tokens_details": {"cached_tokens": 1000}});
    let server = Server::start(vec![
        Step::sse(&openai_stream(&["Stable ", "angina", "."], usage))
            .with_header("x-request-id", "req_abc"),
    ]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"gpt-4o-mini\"\nsystem = \"Be brief.\"\ntemperature = 0.2\nmax_tokens = 50",
        "",
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Completed);
    let phase = &task.phases[0];
    assert_eq!(phase.output, Some(json!({"text": "Stable angina."})));
    let a = &phase.attempts[0];
    let u = a.usage.as_ref().unwrap();
    assert_eq!(
        (u.input_tokens, u.cache_read_tokens, u.output_tokens),
        (200, 1000, 3)
    );
    assert_eq!(u.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
    // gpt-4o-mini: $0.15 in, $0.075 cached, $0.60 out per million tokens.
    let want = (200.0 * 0.15 + 1000.0 * 0.075 + 3.0 * 0.6) / 1e6;
    assert!(
        (a.cost_usd.unwrap() - want).abs() < 1e-12,
        "{:?}",
        a.cost_usd
    );
    let http = a.http.as_ref().unwrap();
    assert_eq!(
        (http.status, http.request_id.as_deref()),
        (Some(200), Some("req_abc"))
    );

    let reqs = server.requests();
    assert_eq!(reqs.len(), 1);
    assert_eq!(
        (reqs[0].method.as_str(), reqs[0].path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        reqs[0].header("authorization"),
        None,
        "no key goes to a server of one's own unless named"
    );
    let body = reqs[0].json();
    assert_eq!(body["model"], "gpt-4o-mini");
    assert_eq!(body["stream"], true);
    assert_eq!(body["stream_options"], json!({"include_usage": true}));
    assert_eq!(body["max_tokens"], 50);
    assert_eq!(body["temperature"], 0.2);
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Summarise: chest pain at rest"}])
    );
}

#[tokio::test]
async fn openai_whole_reply_as_json_from_a_fenced_block() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![Step::json(
        200,
        openai_whole("Here:\n```json\n{\"risk\": \"low\"}\n```"),
    )]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"gpt-4.1\"\nstream = false\noutput = \"json\"",
        "required_output = [\"risk\"]",
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(task.phases[0].output, Some(json!({"risk": "low"})));
    let body = server.requests()[0].json();
    assert_eq!(body["stream"], false);
    assert!(body.get("stream_options").is_none());
}

#[tokio::test]
async fn anthropic_stream_with_cache_reads_and_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![
        Step::sse(&anthropic_stream(&["Hello", " there"])).with_header("request-id", "req_018"),
    ]);
    let p = pipeline(
        dir.path(),
        &server,
        "anthropic",
        "model = \"claude-haiku-4-5\"\nsystem = \"Be brief.\"",
        "",
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(
        task.state,
        TaskState::Completed,
        "{:?}",
        task.phases[0].attempts
    );
    assert_eq!(task.phases[0].output, Some(json!({"text": "Hello there"})));
    let a = &task.phases[0].attempts[0];
    let u = a.usage.as_ref().unwrap();
    assert_eq!(
        (
            u.input_tokens,
            u.cache_write_tokens,
            u.cache_read_tokens,
            u.output_tokens
        ),
        (40, 1000, 2000, 12)
    );
    // claude-haiku-4-5: $1 in, $1.25 cache write, $0.10 cache read, $5 out per million.
    let want = (40.0 * 1.0 + 1000.0 * 1.25 + 2000.0 * 0.1 + 12.0 * 5.0) / 1e6;
    assert!(
        (a.cost_usd.unwrap() - want).abs() < 1e-12,
        "{:?}",
        a.cost_usd
    );
    assert_eq!(
        a.http.as_ref().unwrap().request_id.as_deref(),
        Some("req_018")
    );
    let req = &server.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    let body = req.json();
    assert_eq!(body["max_tokens"], 4096);
    assert_eq!(body["system"], "Be brief.");
    assert_eq!(
        body["messages"],
        json!([{"role": "user", "content": "Summarise: chest pain at rest"}])
    );
}

#[tokio::test]
async fn anthropic_whole_reply() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![Step::json(
        200,
        anthropic_whole("{\"code\": \"I20.8\"}", "end_turn"),
    )]);
    let p = pipeline(
        dir.path(),
        &server,
        "anthropic",
        "model = \"claude-sonnet-4-5\"\nstream = false\noutput = \"json\"\nmax_tokens = 100",
        "",
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.phases[0].output, Some(json!({"code": "I20.8"})));
    assert_eq!(server.requests()[0].json()["max_tokens"], 100);
}

fn error_body(provider: &str, kind: &str, message: &str) -> Value {
    match provider {
        "openai" => {
            json!({"error": {"message": message, "type": kind, "param": null, "code": null}})
        }
        _ => json!({"type": "error", "error": {"type": kind, "message": message}}),
    }
}

#[tokio::test]
async fn client_errors_are_fatal_and_not_retried() {
    for (provider, status, kind) in [
        ("openai", 400, "invalid_request_error"),
        ("openai", 401, "invalid_request_error"),
        ("anthropic", 403, "permission_error"),
        ("anthropic", 404, "not_found_error"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(vec![
            Step::json(status, error_body(provider, kind, "no such thing"))
                .with_header("x-request-id", "req_err"),
            Step::json(200, openai_whole("never asked for")),
        ]);
        let p = pipeline(
            dir.path(),
            &server,
            provider,
            "model = \"m\"\nstream = false",
            "",
        );
        let (task, delays) = run_one(p, dir.path()).await;
        assert_eq!(task.state, TaskState::Failed, "{provider} {status}");
        assert_eq!(
            task.phases[0].attempts.len(),
            1,
            "{provider} {status} retried"
        );
        assert!(delays.is_empty());
        let (class, message) = failure(&task, 0);
        assert_eq!(class, ErrorClass::Fatal, "{provider} {status}");
        assert!(
            message.contains(&format!("HTTP {status}")) && message.contains("no such thing"),
            "{message}"
        );
        let http = task.phases[0].attempts[0].http.clone().unwrap();
        assert_eq!(http.status, Some(status));
        assert_eq!(http.error_type.as_deref(), Some(kind));
        assert_eq!(http.request_id.as_deref(), Some("req_err"));
        assert_eq!(server.requests().len(), 1);
    }
}

#[tokio::test]
async fn rate_limits_and_overload_are_retried_no_sooner_than_retry_after() {
    for (provider, status, kind, after) in [
        ("openai", 429, "rate_limit_exceeded", "1"),
        ("anthropic", 529, "overloaded_error", "1"),
        ("anthropic", 429, "rate_limit_error", "1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ok = match provider {
            "openai" => Step::json(200, openai_whole("fine")),
            _ => Step::json(200, anthropic_whole("fine", "end_turn")),
        };
        let server = Server::start(vec![
            Step::json(status, error_body(provider, kind, "slow down"))
                .with_header("retry-after", after),
            ok,
        ]);
        let p = pipeline(
            dir.path(),
            &server,
            provider,
            "model = \"m\"\nstream = false",
            "",
        );
        let (task, delays) = run_one(p, dir.path()).await;
        assert_eq!(task.state, TaskState::Completed, "{provider} {status}");
        let (class, _) = failure(&task, 0);
        assert_eq!(class, ErrorClass::Retryable);
        let first = &task.phases[0].attempts[0];
        assert_eq!(first.retry_after_ms, Some(1000));
        assert_eq!(
            first.http.as_ref().unwrap().error_type.as_deref(),
            Some(kind)
        );
        // The policy alone would wait 1ms; the server asked for a second.
        assert_eq!(delays.len(), 1);
        assert!(delays[0] >= 1000, "{delays:?}");
        assert_eq!(first.retry_delay_ms, Some(delays[0]));
    }
}

#[tokio::test]
async fn server_errors_are_retried_with_the_policy_backoff() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![
        Step::json(500, error_body("openai", "server_error", "boom")),
        Step::Reply {
            status: 502,
            headers: vec![],
            body: "<html>bad gateway</html>".into(),
        },
        Step::json(200, openai_whole("fine")),
    ]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"m\"\nstream = false",
        "",
    );
    let (task, delays) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(task.phases[0].attempts.len(), 3);
    assert_eq!(failure(&task, 0).0, ErrorClass::Retryable);
    let (class, message) = failure(&task, 1);
    assert_eq!(class, ErrorClass::Retryable);
    assert!(
        message.contains("HTTP 502") && message.contains("bad gateway"),
        "{message}"
    );
    assert!(delays.iter().all(|d| *d <= 5), "{delays:?}");
}

#[tokio::test]
async fn connection_refused_is_retryable() {
    let dir = tempfile::tempdir().unwrap();
    // A port that was just free: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let text = format!(
        "name = \"x\"\n[defaults]\nretry = {{ max_attempts = 2, initial_delay = \"1ms\", max_delay = \"1ms\" }}\n[agents.llm]\nkind = \"http\"\nprovider = \"openai\"\nbase_url = \"http://127.0.0.1:{port}/v1\"\nmodel = \"m\"\nprompt = \"hi\"\n[[phases]]\nid = \"sum\"\nagent = \"llm\"\n"
    );
    let path = dir.path().join("p.toml");
    std::fs::write(&path, text).unwrap();
    let (task, delays) = run_one(baton::spec::load(&path).unwrap(), dir.path()).await;
    assert_eq!(task.state, TaskState::Failed);
    assert_eq!(task.phases[0].attempts.len(), 2);
    assert_eq!(delays.len(), 1);
    let (class, message) = failure(&task, 1);
    assert_eq!(class, ErrorClass::Retryable);
    assert!(message.contains("no response from"), "{message}");
    assert_eq!(
        task.phases[0].attempts[1].http.as_ref().unwrap().status,
        None
    );
}

#[tokio::test]
async fn a_server_that_hangs_times_out_and_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![
        Step::Hang,
        Step::json(200, openai_whole("late but fine")),
    ]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"m\"\nstream = false\ntimeout = \"300ms\"",
        "",
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Completed);
    assert_eq!(failure(&task, 0).0, ErrorClass::Timeout);
    assert_eq!(
        task.phases[0].output,
        Some(json!({"text": "late but fine"}))
    );
}

#[tokio::test]
async fn a_stream_that_breaks_off_or_ends_early_is_retried() {
    let dir = tempfile::tempdir().unwrap();
    let cut = Step::Stream {
        headers: vec![],
        pieces: vec![
            Piece::Data(sse_event(None, &openai_chunk("Half"))),
            Piece::Cut,
        ],
    };
    let early = Step::sse(&[(None, openai_chunk("Half"))]);
    let usage = json!({"prompt_tokens": 5, "completion_tokens": 1});
    let server = Server::start(vec![
        cut,
        early,
        Step::sse(&openai_stream(&["Whole"], usage)),
    ]);
    let p = pipeline(dir.path(), &server, "openai", "model = \"m\"", "");
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(
        task.state,
        TaskState::Completed,
        "{:?}",
        task.phases[0].attempts
    );
    let (class, message) = failure(&task, 0);
    assert_eq!(class, ErrorClass::Retryable);
    assert!(message.contains("mid-reply"), "{message}");
    let (class, message) = failure(&task, 1);
    assert_eq!(class, ErrorClass::Retryable);
    assert!(message.contains("the stream closed mid-reply"), "{message}");
    assert_eq!(task.phases[0].output, Some(json!({"text": "Whole"})));
}

#[tokio::test]
async fn a_reply_that_is_not_json_at_all_is_a_protocol_failure() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![Step::Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/json".into())],
        body: "{\"choices\": [".into(),
    }]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"m\"\nstream = false",
        "",
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Failed);
    let (class, message) = failure(&task, 0);
    assert_eq!(class, ErrorClass::Protocol);
    assert!(message.contains("the reply is not JSON"), "{message}");
}

#[tokio::test]
async fn json_output_that_does_not_parse_is_retried_with_the_error_fed_back() {
    for provider in ["openai", "anthropic"] {
        let dir = tempfile::tempdir().unwrap();
        let (bad, good) = match provider {
            "openai" => (
                openai_whole("Sure! risk: low"),
                openai_whole("{\"risk\": \"low\"}"),
            ),
            _ => (
                anthropic_whole("Sure! risk: low", "end_turn"),
                anthropic_whole("{\"risk\": \"low\"}", "end_turn"),
            ),
        };
        let server = Server::start(vec![Step::json(200, bad), Step::json(200, good)]);
        let p = pipeline(
            dir.path(),
            &server,
            provider,
            "model = \"m\"\nstream = false\noutput = \"json\"",
            "",
        );
        let (task, _) = run_one(p, dir.path()).await;
        assert_eq!(task.state, TaskState::Completed, "{provider}");
        let (class, message) = failure(&task, 0);
        assert_eq!(class, ErrorClass::Contract);
        assert!(
            message.starts_with("the reply is not JSON: expected value"),
            "{message}"
        );
        assert_eq!(task.phases[0].output, Some(json!({"risk": "low"})));
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        let messages = reqs[1].json()["messages"].clone();
        let messages = messages.as_array().unwrap();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": "Sure! risk: low"})
        );
        let fed_back = messages[2]["content"].as_str().unwrap();
        assert!(
            fed_back.contains("the reply is not JSON: expected value at line 1 column 1"),
            "{fed_back}"
        );
        assert_eq!(reqs[0].json()["messages"].as_array().unwrap().len(), 1);
    }
}

/// An inline schema for `sum`: a risk that is one of three words.
const RISK_SCHEMA: &str = "output_schema = { type = \"object\", required = [\"risk\"], properties = { risk = { enum = [\"low\", \"medium\", \"high\"] } } }";

#[tokio::test]
async fn output_breaking_the_schema_is_asked_again_with_the_errors() {
    for provider in ["openai", "anthropic"] {
        let dir = tempfile::tempdir().unwrap();
        let reply = |text: &str| whole(provider, text);
        let server = Server::start(vec![
            Step::json(200, reply("{\"risk\": \"lowish\"}")),
            Step::json(200, reply("{\"risk\": \"low\"}")),
        ]);
        let p = pipeline(
            dir.path(),
            &server,
            provider,
            "model = \"m\"\nstream = false\noutput = \"json\"",
            RISK_SCHEMA,
        );
        let (task, _) = run_one(p, dir.path()).await;
        assert_eq!(task.state, TaskState::Completed, "{provider}");
        let (class, message) = failure(&task, 0);
        assert_eq!(class, ErrorClass::Contract);
        assert_eq!(
            message,
            "output breaks its schema (the inline schema): /risk: \"lowish\" is not one of \"low\", \"medium\" or \"high\""
        );
        assert_eq!(task.phases[0].output, Some(json!({"risk": "low"})));
        let reqs = server.requests();
        assert_eq!(reqs.len(), 2);
        let messages = reqs[1].json()["messages"].clone();
        let messages = messages.as_array().unwrap();
        assert_eq!(messages.len(), 3, "{messages:?}");
        assert_eq!(
            messages[1],
            json!({"role": "assistant", "content": "{\"risk\": \"lowish\"}"})
        );
        assert_eq!(
            messages[2]["content"],
            "Your reply does not match the required JSON Schema:\n- /risk: \"lowish\" is not one of \"low\", \"medium\" or \"high\"\nReply again with only the corrected JSON, no other text."
        );
    }
}

/// A drafter and a reviewer that may send the draft back, both models.
fn review_loop(dir: &Path, server: &Server, provider: &str) -> Pipeline {
    let base = match provider {
        "openai" => server.url("/v1"),
        _ => server.url(""),
    };
    let text = format!(
        "name = \"http-loop\"\n\
         [agents.llm]\nkind = \"http\"\nprovider = \"{provider}\"\nbase_url = \"{base}\"\n\
         model = \"m\"\nstream = false\noutput = \"json\"\n\
         prompt = \"Work on: {{{{input.note}}}}. Feedback, if any: {{{{feedback}}}}\"\n\
         [[phases]]\nid = \"draft\"\nagent = \"llm\"\n\
         [[phases]]\nid = \"review\"\nagent = \"llm\"\nafter = [\"draft\"]\n\
         send_back = {{ to = [\"draft\"], max_rounds = 2 }}\n"
    );
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, &text).unwrap();
    baton::spec::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn a_model_reviewer_sends_the_draft_back_with_its_feedback() {
    for provider in ["openai", "anthropic"] {
        let dir = tempfile::tempdir().unwrap();
        let reply = |text: &str| whole(provider, text);
        let server = Server::start(vec![
            Step::json(200, reply("{\"text\": \"first draft\"}")),
            // The verdict, as a command agent gives it, in a fenced block.
            Step::json(
                200,
                reply(
                    "Not yet.\n```json\n{\"send_back\": {\"to\": \"draft\", \"feedback\": \"name the risks\"}, \"output\": {\"score\": 2}}\n```",
                ),
            ),
            Step::json(200, reply("{\"text\": \"second draft, with the risks\"}")),
            Step::json(200, reply("{\"score\": 5}")),
        ]);
        let p = review_loop(dir.path(), &server, provider);
        let (task, _) = run_one(p, dir.path()).await;
        assert_eq!(task.state, TaskState::Completed, "{provider}");
        let draft = &task.phases[0];
        let review = &task.phases[1];
        assert_eq!(review.rounds, 1, "{provider}");
        assert_eq!(draft.attempts.len(), 2, "{provider}");
        assert_eq!(
            draft.output,
            Some(json!({"text": "second draft, with the risks"}))
        );
        assert_eq!(review.output, Some(json!({"score": 5})));
        assert!(matches!(
            &review.attempts[0].outcome,
            Some(AttemptOutcome::SentBack { to, feedback }) if to == "draft" && feedback == "name the risks"
        ));
        // The drafter was asked again with the reviewer's words.
        let reqs = server.requests();
        assert_eq!(reqs.len(), 4, "{provider}");
        let asked = reqs[2].json()["messages"].to_string();
        assert!(
            asked.contains("Feedback, if any: name the risks"),
            "{asked}"
        );
    }
}

#[tokio::test]
async fn a_send_back_the_reviewer_gets_wrong_is_asked_again() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![
        Step::json(200, openai_whole("{\"text\": \"draft\"}")),
        Step::json(200, openai_whole("{\"send_back\": {\"to\": \"draft\"}}")),
        Step::json(200, openai_whole("{\"score\": 4}")),
    ]);
    let p = review_loop(dir.path(), &server, "openai");
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Completed);
    let review = &task.phases[1];
    assert_eq!(review.rounds, 0);
    assert!(matches!(
        &review.attempts[0].outcome,
        Some(AttemptOutcome::Failed { class: ErrorClass::Contract, message }) if message == "the reply's send_back lacks \"feedback\""
    ));
    let reqs = server.requests();
    let asked = reqs[2].json()["messages"].to_string();
    assert!(asked.contains("send_back lacks"), "{asked}");
}

#[tokio::test]
async fn output_that_keeps_breaking_the_schema_fails_after_the_retries() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![
        Step::json(200, openai_whole("{\"risk\": 1}")),
        Step::json(200, openai_whole("{\"risk\": 2}")),
        Step::json(200, openai_whole("{}")),
    ]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"m\"\nstream = false\noutput = \"json\"",
        RISK_SCHEMA,
    );
    let (task, _) = run_one(p, dir.path()).await;
    assert_eq!(task.state, TaskState::Failed);
    assert_eq!(task.phases[0].attempts.len(), 3, "max_attempts = 3");
    let (class, message) = failure(&task, 2);
    assert_eq!(class, ErrorClass::Contract);
    assert_eq!(
        message,
        "output breaks its schema (the inline schema): (the output): \"risk\" is a required property"
    );
    // Each retry showed the model its last reply and what was wrong with it.
    let reqs = server.requests();
    assert_eq!(reqs.len(), 3);
    let last = reqs[2].json()["messages"].clone();
    assert_eq!(last[1]["content"], "{\"risk\": 2}");
    assert!(
        last[2]["content"]
            .as_str()
            .unwrap()
            .contains("- /risk: 2 is not one of"),
        "{last}"
    );
}

#[tokio::test]
async fn refusals_are_fatal() {
    let refusal = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": null, "refusal": "I can't help with that."}, "finish_reason": "stop"}]});
    let filtered = json!({"choices": [{"index": 0, "message": {"role": "assistant", "content": ""}, "finish_reason": "content_filter"}]});
    for (provider, step, words) in [
        (
            "openai",
            Step::json(200, refusal),
            "I can't help with that.",
        ),
        ("openai", Step::json(200, filtered), "content filter"),
        (
            "anthropic",
            Step::json(200, anthropic_whole("", "refusal")),
            "declined",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(vec![step]);
        let p = pipeline(
            dir.path(),
            &server,
            provider,
            "model = \"m\"\nstream = false",
            "",
        );
        let (task, delays) = run_one(p, dir.path()).await;
        assert_eq!(task.state, TaskState::Failed);
        assert!(delays.is_empty());
        let (class, message) = failure(&task, 0);
        assert_eq!(class, ErrorClass::Fatal);
        assert!(
            message.starts_with("the model refused") && message.contains(words),
            "{message}"
        );
    }
}

/// Fails the test instead of hanging it when something never comes.
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(60), f)
        .await
        .expect("waited a minute for an update")
}

#[tokio::test]
async fn a_streaming_reply_is_seen_live_before_the_attempt_finishes() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(tokio::sync::Notify::new());
    let rest = openai_stream(
        &["ok."],
        json!({"prompt_tokens": 9, "completion_tokens": 4}),
    );
    let mut pieces = vec![Piece::Data(sse_event(
        None,
        &openai_chunk("Thinking about "),
    ))];
    pieces.push(Piece::Wait(gate.clone()));
    pieces.extend(rest.iter().map(|(n, d)| Piece::Data(sse_event(*n, d))));
    let server = Server::start(vec![Step::Stream {
        headers: vec![],
        pieces,
    }]);
    let p = pipeline(dir.path(), &server, "openai", "model = \"m\"", "");
    let state = dir.path().join("state");
    let mut engine = Engine::open(p.clone(), &state, opts(true)).expect("open");
    engine
        .submit(vec![input("t1", json!({"note": "x"}))])
        .await
        .unwrap();
    let handle = engine.handle();
    let mut live = handle.subscribe_live();
    let mut events = handle.subscribe();
    let run = tokio::spawn(engine.run());

    let ev = within(live.recv()).await.expect("a live update");
    assert_eq!(
        (ev.task.as_str(), ev.phase.as_str(), ev.attempt),
        ("t1", "sum", 1)
    );
    let LiveKind::Progress(progress) = &ev.kind else {
        panic!("{ev:?}")
    };
    assert_eq!(progress.text, "Thinking about ");
    assert_eq!((progress.output_tokens, progress.estimated), (1, true));
    // The server holds the rest back, so the attempt cannot have finished.
    let snap = handle.snapshot().await.unwrap();
    assert!(snap.tasks[0].phases[0].attempts[0].is_open());
    while let Ok(e) = events.try_recv() {
        assert!(
            !matches!(e.kind, EventKind::AttemptFinished { .. }),
            "{e:?}"
        );
    }

    gate.notify_one();
    let last = loop {
        let ev = within(live.recv()).await.expect("the final update");
        if let LiveKind::Progress(p) = &ev.kind
            && !p.estimated
        {
            break p.clone();
        }
    };
    assert_eq!(
        (last.text.as_str(), last.output_tokens),
        ("Thinking about ok.", 4)
    );
    run.await.unwrap().unwrap();
    let task = load(p, &state).await.remove(0);
    assert_eq!(
        task.phases[0].output,
        Some(json!({"text": "Thinking about ok."}))
    );
}

#[tokio::test]
async fn command_agents_stderr_lines_are_seen_live_too() {
    let dir = tempfile::tempdir().unwrap();
    let gate = dir.path().join("gate");
    let text = format!(
        "name = \"x\"\n[agents.cmd]\nkind = \"command\"\ncommand = [\"sh\", \"-c\", \"echo 'reading the note' >&2; while [ ! -e {} ]; do sleep 0.01; done; echo '{{\\\"output\\\": {{\\\"n\\\": 1}}}}'\"]\n[[phases]]\nid = \"sum\"\nagent = \"cmd\"\n",
        gate.display()
    );
    let path = dir.path().join("p.toml");
    std::fs::write(&path, &text).unwrap();
    let p = baton::spec::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let state = dir.path().join("state");
    let mut engine = Engine::open(p.clone(), &state, opts(true)).expect("open");
    engine.submit(vec![input("t1", json!({}))]).await.unwrap();
    let handle = engine.handle();
    let mut live = handle.subscribe_live();
    let run = tokio::spawn(engine.run());
    let ev = within(live.recv()).await.expect("a live line");
    assert_eq!(
        ev.kind,
        LiveKind::Trace {
            line: "reading the note".into()
        }
    );
    // The agent waits for the gate, so its attempt is still open.
    let snap = handle.snapshot().await.unwrap();
    assert!(snap.tasks[0].phases[0].attempts[0].is_open());
    std::fs::write(&gate, "").unwrap();
    run.await.unwrap().unwrap();
    let task = load(p, &state).await.remove(0);
    assert_eq!(task.phases[0].output, Some(json!({"n": 1})));
    assert_eq!(task.phases[0].attempts[0].trace, ["reading the note"]);
}

/// One of the bundled example pipelines, pointed at `base` instead of the
/// provider, with no key.
fn bundled(name: &str, base: &str, dir: &Path) -> Pipeline {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("pipelines").join(name)).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        out.push_str(line);
        out.push('\n');
        if line.starts_with("provider = ") {
            out.push_str(&format!("base_url = \"{base}\"\n"));
        }
    }
    assert!(out.contains("base_url"), "{name} has no provider lines");
    let path = dir.join(name);
    std::fs::write(&path, out).unwrap();
    baton::spec::load(&path).unwrap()
}

#[tokio::test]
async fn the_bundled_examples_run_their_prompts_through_both_wire_formats() {
    let reply = json!({"subjective": "s", "objective": "o", "assessment": "a", "plan": "p",
                       "icd10": [{"code": "I20.8", "description": "angina"}], "cpt": [],
                       "status": "pass", "issues": []})
    .to_string();
    let openai = Server::start(vec![Step::sse(&openai_stream(
        &[&reply],
        json!({"prompt_tokens": 100, "completion_tokens": 50}),
    ))]);
    let anthropic = Server::start(vec![Step::sse(&anthropic_stream(&[&reply]))]);
    for (file, base, server) in [
        ("openai.toml", openai.url("/v1"), &openai),
        ("anthropic.toml", anthropic.url(""), &anthropic),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let p = bundled(file, &base, dir.path());
        let state = dir.path().join("state");
        let mut engine = Engine::open(p.clone(), &state, opts(true)).expect("open");
        let note =
            json!({"patient": {"age": 58, "sex": "M"}, "note": "Chest pressure on exertion."});
        engine.submit(vec![input("enc-001", note)]).await.unwrap();
        engine.run().await.expect("run");
        let task = load(p, &state).await.remove(0);
        // Compliance always waits for a person's approval.
        assert_eq!(
            task.state,
            TaskState::AwaitingReview,
            "{file}: {:?}",
            task.phases
        );
        assert!(task.phases.iter().all(|ph| ph.output.is_some()), "{file}");
        assert!(
            task.cost().usd > 0.0 && task.cost().is_known(),
            "{file}: {:?}",
            task.cost()
        );
        let reqs = server.requests();
        assert_eq!(reqs.len(), 3, "{file}");
        let first = reqs[0].body.clone();
        assert!(
            first.contains("Chest pressure on exertion.") && first.contains("{\\\"age\\\":58"),
            "{file}: {first}"
        );
        // Later phases see the earlier phases' outputs.
        assert!(reqs[2].body.contains("I20.8"), "{file}: {}", reqs[2].body);
    }
}

/// Runs `inputs` to idle with the rate window `window`; gives the tasks as
/// the state folder holds them and the due times of scheduled retries.
async fn run_many(
    p: Pipeline,
    dir: &Path,
    inputs: Vec<baton::spec::input::InputTask>,
    window: std::time::Duration,
) -> (Vec<Task>, Vec<jiff::Timestamp>) {
    let state = dir.join("state");
    let o = baton::engine::EngineOptions {
        rate_window: window,
        ..opts(true)
    };
    let mut engine = Engine::open(p.clone(), &state, o).expect("open");
    engine.submit(inputs).await.expect("submit");
    let mut events = engine.handle().subscribe();
    engine.run().await.expect("run");
    let mut dues = Vec::new();
    while let Ok(ev) = events.try_recv() {
        if let EventKind::RetryScheduled { due, .. } = ev.kind {
            dues.push(due);
        }
    }
    (load(p, &state).await, dues)
}

#[tokio::test]
async fn a_routed_model_is_the_one_asked_for_recorded_and_priced() {
    // OpenAI's reply names no model: the routed one prices it. Anthropic's
    // names the dated routed model, as the service does.
    let anthropic_routed = {
        let mut evs = anthropic_stream(&["Fine"]);
        evs[0].1 = evs[0]
            .1
            .replace("claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929");
        evs
    };
    let mut openai_reply = openai_whole("fine");
    openai_reply.as_object_mut().unwrap().remove("model");
    let cases = [
        (
            "openai",
            "gpt-4o-mini",
            "gpt-4.1",
            Step::json(200, openai_reply),
            // gpt-4.1: 30 in at $2/M, 5 out at $8/M.
            (30.0 * 2.0 + 5.0 * 8.0) / 1e6,
            "gpt-4.1",
        ),
        (
            "anthropic",
            "claude-haiku-4-5",
            "claude-sonnet-4-5",
            Step::sse(&anthropic_routed),
            // claude-sonnet-4-5: $3 in, $3.75 cache write, $0.30 cache read, $15 out.
            (40.0 * 3.0 + 1000.0 * 3.75 + 2000.0 * 0.3 + 12.0 * 15.0) / 1e6,
            "claude-sonnet-4-5-20250929",
        ),
    ];
    for (provider, own, routed, step, want, priced_as) in cases {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(vec![step]);
        let p = pipeline(
            dir.path(),
            &server,
            provider,
            &format!(
                "model = \"{own}\"\nstream = {}\n[[agents.llm.route]]\nwhen = \"input.risk == 'high'\"\nmodel = \"{routed}\"",
                provider == "anthropic"
            ),
            "",
        );
        let (task, _) = run_one_with(p, dir.path(), json!({"note": "n", "risk": "high"})).await;
        assert_eq!(task.state, TaskState::Completed, "{provider}");
        let a = &task.phases[0].attempts[0];
        assert_eq!(a.model.as_deref(), Some(routed), "{provider}");
        assert_eq!(a.route.as_ref().map(|r| r.index), Some(0), "{provider}");
        assert_eq!(
            a.usage.as_ref().unwrap().model.as_deref(),
            Some(priced_as),
            "{provider}"
        );
        assert!(
            (a.cost_usd.unwrap() - want).abs() < 1e-12,
            "{provider}: {:?} want {want}",
            a.cost_usd
        );
        let reqs = server.requests();
        assert_eq!(reqs.len(), 1);
        assert_eq!(reqs[0].json()["model"], routed, "{provider}");

        // A task no rule takes asks for the agent's own model.
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(vec![Step::json(200, openai_whole("fine"))]);
        let p = pipeline(
            dir.path(),
            &server,
            "openai",
            &format!(
                "model = \"{own}\"\nstream = false\n[[agents.llm.route]]\nwhen = \"input.risk == 'high'\"\nmodel = \"{routed}\""
            ),
            "",
        );
        let (task, _) = run_one_with(p, dir.path(), json!({"note": "n", "risk": "low"})).await;
        let a = &task.phases[0].attempts[0];
        assert_eq!(a.model.as_deref(), Some(own));
        assert!(a.route.is_none());
        assert_eq!(server.requests()[0].json()["model"], own);
    }
}

#[tokio::test]
async fn budgets_count_the_cache_reads_and_writes_of_http_agents() {
    // One call: 40 in, 1000 cache write, 2000 cache read, 12 out of
    // claude-haiku-4-5, $0.00155 in all, 3052 tokens; without its cache
    // figures it would be $0.0001 and 52 tokens, under either limit.
    for limit in ["budget_usd = 0.001", "budget_tokens = 1000"] {
        let dir = tempfile::tempdir().unwrap();
        let server = Server::start(vec![Step::sse(&anthropic_stream(&["Hi"]))]);
        let path = dir.path().join("pipeline.toml");
        let text = format!(
            "name = \"http-budget\"\n[defaults]\n{limit}\n\
             [agents.llm]\nkind = \"http\"\nprovider = \"anthropic\"\nbase_url = \"{}\"\nmodel = \"claude-haiku-4-5\"\nprompt = \"{{{{input.note}}}}\"\n\
             [[phases]]\nid = \"first\"\nagent = \"llm\"\n[[phases]]\nid = \"second\"\nagent = \"llm\"\n",
            server.url("")
        );
        std::fs::write(&path, &text).unwrap();
        let p = baton::spec::load(&path).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let (tasks, _) = run_many(
            p,
            dir.path(),
            vec![input("t1", json!({"note": "n"}))],
            std::time::Duration::from_secs(60),
        )
        .await;
        let t = &tasks[0];
        assert_eq!(t.state, TaskState::AwaitingReview, "{limit}");
        let a = &t.phases[0].attempts[0];
        assert!((a.cost_usd.unwrap() - 0.00155).abs() < 1e-12, "{limit}");
        assert_eq!(a.usage.as_ref().unwrap().tokens(), 3052, "{limit}");
        let hold = &t.holds[0];
        assert_eq!(hold.phase, "second", "{limit}");
        assert!(
            matches!(
                hold.review,
                Some(baton::engine::event::ReviewReason::Budget {
                    scope: baton::engine::event::BudgetScope::Task,
                    ..
                })
            ),
            "{limit}: {hold:?}"
        );
        assert!(t.phases[1].attempts.is_empty(), "{limit}");
        assert_eq!(server.requests().len(), 1, "{limit}");
    }
}

#[tokio::test]
async fn tpm_counts_the_tokens_http_agents_report_cache_included() {
    // 3052 tokens a call, 52 of them outside the cache; tpm = 3000 lets one
    // call a window through only when the cache counts.
    let window = std::time::Duration::from_millis(400);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![Step::sse(&anthropic_stream(&["Hi"]))]);
    let p = pipeline(
        dir.path(),
        &server,
        "anthropic",
        "model = \"claude-haiku-4-5\"\ntpm = 3000",
        "",
    );
    let inputs = (1..=3)
        .map(|i| input(&format!("t{i}"), json!({"note": "n"})))
        .collect();
    let (tasks, _) = run_many(p, dir.path(), inputs, window).await;
    assert!(tasks.iter().all(|t| t.state == TaskState::Completed));
    let mut starts: Vec<jiff::Timestamp> = tasks
        .iter()
        .map(|t| t.phases[0].attempts[0].started_at)
        .collect();
    starts.sort();
    let w = jiff::SignedDuration::try_from(window).unwrap();
    for pair in starts.windows(2) {
        assert!(pair[1] >= pair[0] + w, "one call a window: {starts:?}");
    }
}

#[tokio::test]
async fn a_retry_waits_for_retry_after_and_for_the_rate_limit_whatever_else_finishes() {
    // t1's first call is told to wait a second. Meanwhile t2 runs on the
    // same agent (max_parallel = 1), and its finishing wakes the agent's
    // queue; the retry still starts no sooner than retry-after asked, nor
    // than rpm allows (two calls in 1.5s).
    let window = std::time::Duration::from_millis(1500);
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(vec![
        Step::json(
            429,
            error_body("openai", "rate_limit_exceeded", "slow down"),
        )
        .with_header("retry-after", "1"),
        Step::json(200, openai_whole("fine")),
    ]);
    let p = pipeline(
        dir.path(),
        &server,
        "openai",
        "model = \"gpt-4o-mini\"\nstream = false\nmax_parallel = 1\nrpm = 2",
        "",
    );
    let inputs = vec![
        input("t1", json!({"note": "first"})),
        input("t2", json!({"note": "second"})),
    ];
    let (tasks, dues) = run_many(p, dir.path(), inputs, window).await;
    assert!(tasks.iter().all(|t| t.state == TaskState::Completed));
    let t1 = tasks.iter().find(|t| t.id == "t1").unwrap();
    let t2 = tasks.iter().find(|t| t.id == "t2").unwrap();
    let first = &t1.phases[0].attempts[0];
    let retry = &t1.phases[0].attempts[1];
    assert_eq!(first.retry_after_ms, Some(1000));
    assert_eq!(dues.len(), 1);
    assert_eq!(t2.phases[0].attempts.len(), 1);
    assert!(retry.started_at >= dues[0], "{retry:?} before {}", dues[0]);
    let w = jiff::SignedDuration::try_from(window).unwrap();
    assert!(
        retry.started_at >= first.started_at + w,
        "rpm = 2: the third call waits for the first to leave the window"
    );
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn an_agent_of_a_role_without_its_key_stops_the_run_before_the_state_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pipeline.toml");
    std::fs::write(
        &path,
        "name = \"role-key\"\n\
         [agents.sim]\nkind = \"sim\"\n\
         [agents.llm]\nkind = \"http\"\nprovider = \"anthropic\"\nmodel = \"claude-haiku-4-5\"\nprompt = \"{{input}}\"\napi_key_env = \"BATON_TEST_KEY_NEVER_SET\"\n\
         [roles]\nwriter = [\"sim\", \"llm\"]\n\
         [[phases]]\nid = \"write\"\nrole = \"writer\"\n",
    )
    .unwrap();
    let p = baton::spec::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let state = dir.path().join("state");
    let err = match Engine::open(p, &state, opts(true)) {
        Ok(_) => panic!("opened without the key of a role's agent"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("$BATON_TEST_KEY_NEVER_SET"), "{err}");
    assert!(!state.exists());
}
