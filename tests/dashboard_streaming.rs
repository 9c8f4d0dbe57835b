//! A streaming model reply seen growing in the real dashboard, through the
//! background engine and its control socket, before the attempt finishes.

#[path = "support/llm_server.rs"]
mod llm_server;
#[path = "support/pty.rs"]
mod pty;

use std::sync::Arc;

use llm_server::{Piece, Server, Step, sse_event};
use pty::Term;
use serde_json::json;

fn chunk(content: &str) -> String {
    json!({"id": "c1", "object": "chat.completion.chunk", "model": "gpt-4o-mini",
           "choices": [{"index": 0, "delta": {"content": content}, "finish_reason": null}]})
    .to_string()
}

#[test]
fn the_task_detail_shows_the_reply_as_it_streams() {
    let gate = Arc::new(tokio::sync::Notify::new());
    let mut pieces = vec![Piece::Data(sse_event(None, &chunk("Stable angina, ")))];
    pieces.push(Piece::Wait(gate.clone()));
    for data in [
        chunk("no acute findings."),
        json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}).to_string(),
        json!({"choices": [], "usage": {"prompt_tokens": 20, "completion_tokens": 7}}).to_string(),
        "[DONE]".to_string(),
    ] {
        pieces.push(Piece::Data(sse_event(None, &data)));
    }
    let server = Server::start(vec![Step::Stream {
        headers: vec![],
        pieces,
    }]);

    let dir = tempfile::tempdir().unwrap();
    let pipeline = format!(
        "name = \"streaming\"\n\
         [agents.llm]\nkind = \"http\"\nprovider = \"openai\"\nbase_url = \"{}\"\n\
         model = \"gpt-4o-mini\"\nprompt = \"Summarise: {{{{input.note}}}}\"\noutput = \"text\"\n\
         [[phases]]\nid = \"summary\"\nagent = \"llm\"\n",
        server.url("/v1")
    );
    std::fs::write(dir.path().join("p.toml"), pipeline).unwrap();
    std::fs::write(
        dir.path().join("in.jsonl"),
        "{\"id\": \"t1\", \"note\": \"chest pain on exertion\"}\n",
    )
    .unwrap();
    let mut term = Term::spawn(
        &[
            "run",
            "p.toml",
            "--input",
            "in.jsonl",
            "--state-dir",
            "state",
        ],
        dir.path(),
        140,
        40,
        &[],
    );
    // The first words are on screen while the server holds back the rest.
    term.wait_until("the partial reply in the task detail", 30, |s| {
        s.contains("Stable angina,") && s.contains("▶ 1 running")
    });
    assert!(
        !term.contents().contains("no acute findings"),
        "the rest was not sent yet"
    );
    gate.notify_one();
    term.wait_for("1 completed", 30);
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
}
