//! OpenAI's chat completions, `POST {base_url}/chat/completions`, as
//! OpenAI documents it and as vLLM, Ollama and llama.cpp serve it.
//! Usage: `prompt_tokens` (cached ones included, split out here),
//! `completion_tokens`, `prompt_tokens_details.cached_tokens`; a stream
//! sends it in a last chunk when asked with `stream_options.include_usage`.

use serde_json::{Value, json};

use super::sse::SseEvent;
use super::wire::{Conversation, Turn, WireError, count, parse_json};
use crate::engine::event::ErrorClass;
use crate::spec::model::HttpSpec;

pub fn url(spec: &HttpSpec) -> String {
    format!("{}/chat/completions", spec.base_url)
}

/// The request's body, asking for `model` (the agent's, or the one a
/// routing rule chose).
pub fn body(spec: &HttpSpec, model: &str, conv: &Conversation) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &conv.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    for (role, text) in &conv.messages {
        messages.push(json!({"role": role.as_str(), "content": text}));
    }
    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": spec.stream,
    });
    if spec.stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    if let Some(n) = spec.max_tokens {
        // OpenAI's own API wants the newer name (its reasoning models refuse
        // `max_tokens`); servers that copy the API know the older one.
        let key = if spec.base_url.starts_with("https://api.openai.com") {
            "max_completion_tokens"
        } else {
            "max_tokens"
        };
        body[key] = json!(n);
    }
    if let Some(t) = spec.temperature {
        body["temperature"] = json!(t);
    }
    body
}

fn take_usage(turn: &mut Turn, usage: &Value) {
    if !usage.is_object() {
        return;
    }
    let prompt = count(usage, "prompt_tokens").unwrap_or(0);
    let cached = usage
        .get("prompt_tokens_details")
        .and_then(|d| count(d, "cached_tokens"))
        .unwrap_or(0)
        .min(prompt);
    turn.usage.input_tokens = prompt - cached;
    turn.usage.cache_read_tokens = cached;
    turn.usage.output_tokens = count(usage, "completion_tokens").unwrap_or(0);
    turn.usage_seen = true;
}

fn take_choice_end(turn: &mut Turn, choice: &Value, message: &Value) {
    if let Some(r) = message.get("refusal").and_then(Value::as_str) {
        turn.refusal.get_or_insert_with(String::new).push_str(r);
    }
    if let Some(f) = choice.get("finish_reason").and_then(Value::as_str) {
        turn.finish = Some(f.to_string());
        if f == "content_filter" && turn.refusal.is_none() {
            turn.refusal = Some("the reply was stopped by the content filter".into());
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
    let choice = v
        .get("choices")
        .and_then(|c| c.get(0))
        .ok_or_else(|| WireError::protocol("the reply has no choices"))?;
    let message = choice.get("message").unwrap_or(&Value::Null);
    if let Some(text) = message.get("content").and_then(Value::as_str) {
        turn.text = text.to_string();
    }
    take_choice_end(&mut turn, choice, message);
    if let Some(u) = v.get("usage") {
        take_usage(&mut turn, u);
    }
    Ok(turn)
}

/// Folds one streamed event into `turn`; gives the text it added.
pub fn on_event(turn: &mut Turn, ev: &SseEvent) -> Result<Option<String>, WireError> {
    if ev.data.trim() == "[DONE]" {
        turn.complete = true;
        return Ok(None);
    }
    let v = parse_json(&ev.data, "a streamed chunk")?;
    if let Some(e) = v.get("error") {
        let kind = e
            .get("type")
            .or_else(|| e.get("code"))
            .and_then(Value::as_str)
            .map(str::to_string);
        let message = e
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("an error in the stream")
            .to_string();
        return Err(WireError {
            // A failure the server reports mid-stream is its own trouble.
            class: ErrorClass::Retryable,
            error_type: kind,
            message,
        });
    }
    if turn.model.is_none() {
        turn.model = v.get("model").and_then(Value::as_str).map(str::to_string);
    }
    if let Some(u) = v.get("usage") {
        take_usage(turn, u);
    }
    let Some(choice) = v.get("choices").and_then(|c| c.get(0)) else {
        return Ok(None);
    };
    let delta = choice.get("delta").unwrap_or(&Value::Null);
    take_choice_end(turn, choice, delta);
    match delta.get("content").and_then(Value::as_str) {
        Some(piece) if !piece.is_empty() => {
            turn.text.push_str(piece);
            turn.pieces += 1;
            Ok(Some(piece.to_string()))
        }
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(s: &str) -> SseEvent {
        SseEvent {
            event: None,
            data: s.into(),
        }
    }

    #[test]
    fn whole_reply_with_cached_usage() {
        let t = parse_reply(r#"{"id":"x","model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"hi","refusal":null},"finish_reason":"stop"}],"usage":{"prompt_tokens":100,"completion_tokens":7,"total_tokens":107,"prompt_tokens_details":{"cached_tokens":60}}}"#).unwrap();
        assert_eq!(t.text, "hi");
        assert_eq!(t.model.as_deref(), Some("gpt-4o-mini-2024-07-18"));
        assert_eq!(
            (
                t.usage.input_tokens,
                t.usage.cache_read_tokens,
                t.usage.output_tokens
            ),
            (40, 60, 7)
        );
        assert_eq!(t.refusal, None);
        assert_eq!(t.finish.as_deref(), Some("stop"));
    }

    #[test]
    fn refusals_and_content_filter() {
        let t = parse_reply(r#"{"choices":[{"message":{"content":null,"refusal":"I can't help with that."},"finish_reason":"stop"}]}"#).unwrap();
        assert_eq!(t.refusal.as_deref(), Some("I can't help with that."));
        let t = parse_reply(
            r#"{"choices":[{"message":{"content":""},"finish_reason":"content_filter"}]}"#,
        )
        .unwrap();
        assert!(t.refusal.unwrap().contains("content filter"));
    }

    #[test]
    fn stream_folds_text_usage_and_done() {
        let mut t = Turn::default();
        let evs = [
            r#"{"model":"gpt-4.1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"Hel"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"lo"},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":0}}}"#,
            "[DONE]",
        ];
        let mut pieces = Vec::new();
        for e in evs {
            pieces.extend(on_event(&mut t, &data(e)).unwrap());
        }
        assert_eq!(pieces, ["Hel", "lo"]);
        assert_eq!(t.text, "Hello");
        assert!(t.complete && t.usage_seen);
        assert_eq!((t.usage.input_tokens, t.usage.output_tokens), (12, 2));
        assert_eq!(t.model.as_deref(), Some("gpt-4.1"));
    }

    #[test]
    fn an_error_chunk_is_retryable_and_bad_json_is_protocol() {
        let mut t = Turn::default();
        let e = on_event(
            &mut t,
            &data(r#"{"error":{"message":"overloaded","type":"server_error"}}"#),
        )
        .unwrap_err();
        assert_eq!(
            (e.class, e.error_type.as_deref()),
            (ErrorClass::Retryable, Some("server_error"))
        );
        let e = on_event(&mut t, &data("{nope")).unwrap_err();
        assert_eq!(e.class, ErrorClass::Protocol);
    }
}
