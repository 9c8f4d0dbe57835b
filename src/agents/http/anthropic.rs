//! Anthropic's messages API, `POST {base_url}/v1/messages` with `x-api-key`
//! and `anthropic-version: 2023-06-01`. Usage: `input_tokens` (uncached),
//! `cache_read_input_tokens`, `cache_creation_input_tokens`,
//! `output_tokens`; a stream gives them in `message_start` and updates them
//! in `message_delta`.

use serde_json::{Value, json};

use super::sse::SseEvent;
use super::wire::{Conversation, Turn, WireError, count, parse_json};
use crate::engine::event::ErrorClass;
use crate::spec::model::HttpSpec;

pub const VERSION: &str = "2023-06-01";
/// `max_tokens` is required by the API; this when the pipeline sets none.
pub const DEFAULT_MAX_TOKENS: u64 = 4096;

pub fn url(spec: &HttpSpec) -> String {
    format!("{}/v1/messages", spec.base_url)
}

/// The request's body, asking for `model` (the agent's, or the one a
/// routing rule chose).
pub fn body(spec: &HttpSpec, model: &str, conv: &Conversation) -> Value {
    let messages: Vec<Value> = conv
        .messages
        .iter()
        .map(|(role, text)| json!({"role": role.as_str(), "content": text}))
        .collect();
    let mut body = json!({
        "model": model,
        "max_tokens": spec.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
        "messages": messages,
        "stream": spec.stream,
    });
    if let Some(system) = &conv.system {
        body["system"] = json!(system);
    }
    if let Some(t) = spec.temperature {
        body["temperature"] = json!(t);
    }
    body
}

/// Takes the counts `usage` has; later counts replace earlier ones.
fn take_usage(turn: &mut Turn, usage: &Value) {
    if !usage.is_object() {
        return;
    }
    let u = &mut turn.usage;
    if let Some(n) = count(usage, "input_tokens") {
        u.input_tokens = n;
    }
    if let Some(n) = count(usage, "cache_read_input_tokens") {
        u.cache_read_tokens = n;
    }
    if let Some(n) = count(usage, "cache_creation_input_tokens") {
        u.cache_write_tokens = n;
    }
    if let Some(n) = count(usage, "output_tokens") {
        u.output_tokens = n;
    }
    turn.usage_seen = true;
}

fn take_stop(turn: &mut Turn, stop: Option<&Value>) {
    if let Some(s) = stop.and_then(Value::as_str) {
        turn.finish = Some(s.to_string());
        if s == "refusal" && turn.refusal.is_none() {
            turn.refusal = Some("the model declined to answer".into());
        }
    }
}

/// A whole (non-streamed) reply.
pub fn parse_reply(body: &str) -> Result<Turn, WireError> {
    let v = parse_json(body, "the reply")?;
    let mut turn = Turn {
        model: v.get("model").and_then(Value::as_str).map(str::to_string),
        complete: true,
        ..Turn::default()
    };
    let content = v
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| WireError::protocol("the reply has no content"))?;
    for block in content {
        if block.get("type").and_then(Value::as_str) == Some("text")
            && let Some(t) = block.get("text").and_then(Value::as_str)
        {
            turn.text.push_str(t);
        }
    }
    take_stop(&mut turn, v.get("stop_reason"));
    if let Some(u) = v.get("usage") {
        take_usage(&mut turn, u);
    }
    Ok(turn)
}

/// Folds one streamed event into `turn`; gives the text it added.
pub fn on_event(turn: &mut Turn, ev: &SseEvent) -> Result<Option<String>, WireError> {
    let v = parse_json(&ev.data, "a streamed event")?;
    let kind = ev
        .event
        .as_deref()
        .or_else(|| v.get("type").and_then(Value::as_str))
        .unwrap_or("");
    match kind {
        "message_start" => {
            let m = v.get("message").unwrap_or(&Value::Null);
            turn.model = m.get("model").and_then(Value::as_str).map(str::to_string);
            if let Some(u) = m.get("usage") {
                take_usage(turn, u);
            }
        }
        "content_block_delta" => {
            let d = v.get("delta").unwrap_or(&Value::Null);
            if d.get("type").and_then(Value::as_str) == Some("text_delta")
                && let Some(piece) = d.get("text").and_then(Value::as_str)
                && !piece.is_empty()
            {
                turn.text.push_str(piece);
                turn.pieces += 1;
                return Ok(Some(piece.to_string()));
            }
        }
        "message_delta" => {
            take_stop(turn, v.get("delta").and_then(|d| d.get("stop_reason")));
            if let Some(u) = v.get("usage") {
                take_usage(turn, u);
            }
        }
        "message_stop" => turn.complete = true,
        "error" => {
            let e = v.get("error").unwrap_or(&Value::Null);
            let error_type = e.get("type").and_then(Value::as_str).map(str::to_string);
            let message = e
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("an error in the stream")
                .to_string();
            let class = match error_type.as_deref() {
                Some(
                    "invalid_request_error"
                    | "authentication_error"
                    | "permission_error"
                    | "not_found_error",
                ) => ErrorClass::Fatal,
                _ => ErrorClass::Retryable,
            };
            return Err(WireError {
                class,
                error_type,
                message,
            });
        }
        // ping, content_block_start, content_block_stop, and kinds to come.
        _ => {}
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(kind: &str, data: &str) -> SseEvent {
        SseEvent {
            event: Some(kind.into()),
            data: data.into(),
        }
    }

    #[test]
    fn whole_reply_with_cache_usage() {
        let t = parse_reply(r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":[{"type":"text","text":"Hi "},{"type":"text","text":"there"}],"stop_reason":"end_turn","usage":{"input_tokens":20,"cache_creation_input_tokens":100,"cache_read_input_tokens":300,"output_tokens":5}}"#).unwrap();
        assert_eq!(t.text, "Hi there");
        let u = &t.usage;
        assert_eq!(
            (
                u.input_tokens,
                u.cache_write_tokens,
                u.cache_read_tokens,
                u.output_tokens
            ),
            (20, 100, 300, 5)
        );
        assert_eq!(t.refusal, None);
        let t = parse_reply(r#"{"content":[],"stop_reason":"refusal","usage":{"input_tokens":1,"output_tokens":0}}"#).unwrap();
        assert!(t.refusal.is_some());
    }

    #[test]
    fn stream_as_documented() {
        let mut t = Turn::default();
        let events = [
            ev(
                "message_start",
                r#"{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"claude-haiku-4-5","stop_reason":null,"usage":{"input_tokens":25,"cache_read_input_tokens":10,"cache_creation_input_tokens":0,"output_tokens":1}}}"#,
            ),
            ev(
                "content_block_start",
                r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
            ),
            ev("ping", r#"{"type": "ping"}"#),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello"}}"#,
            ),
            ev(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"!"}}"#,
            ),
            ev(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
            ev(
                "message_delta",
                r#"{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}"#,
            ),
            ev("message_stop", r#"{"type":"message_stop"}"#),
        ];
        for e in &events {
            on_event(&mut t, e).unwrap();
        }
        assert_eq!(t.text, "Hello!");
        assert!(t.complete);
        assert_eq!(
            (
                t.usage.input_tokens,
                t.usage.cache_read_tokens,
                t.usage.output_tokens
            ),
            (25, 10, 15)
        );
        assert_eq!(t.finish.as_deref(), Some("end_turn"));
    }

    #[test]
    fn stream_errors() {
        let mut t = Turn::default();
        let e = on_event(
            &mut t,
            &ev(
                "error",
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#,
            ),
        )
        .unwrap_err();
        assert_eq!(
            (e.class, e.error_type.as_deref()),
            (ErrorClass::Retryable, Some("overloaded_error"))
        );
    }
}
