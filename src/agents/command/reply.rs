//! Reading a command agent's stdout as exactly one reply object.

use serde_json::{Map, Value};

use crate::agents::Reply;
use crate::engine::cost::Usage;
use crate::engine::escalation::Escalation;

/// Characters of the received text quoted in error messages.
const PREVIEW_CHARS: usize = 200;

/// Top-level keys a reply may carry. The top level is closed so that a typo
/// (say `"usgae"`) surfaces instead of silently losing data; the nested
/// objects may carry extra keys for the agent's own use.
const KNOWN_KEYS: [&str; 6] = ["output", "error", "blocked", "review", "send_back", "usage"];

/// A reply and the usage that came with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedReply {
    pub reply: Reply,
    pub usage: Option<Usage>,
}

/// Why stdout is not a reply. Every variant that saw text quotes its start.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    #[error("stdout is empty; expected one JSON object")]
    Empty,
    #[error(
        "stdout is not valid UTF-8 (first invalid byte at offset {offset}); received {preview}"
    )]
    NotUtf8 { offset: usize, preview: String },
    #[error("stdout is not JSON ({detail}); received {preview}")]
    NotJson { detail: String, preview: String },
    #[error(
        "stdout holds more than one JSON value; expected exactly one object; received {preview}"
    )]
    SeveralValues { preview: String },
    #[error("reply is a JSON {found}, not an object; received {preview}")]
    NotObject {
        found: &'static str,
        preview: String,
    },
    #[error(
        "reply has unknown key \"{key}\" (allowed: output, error, blocked, review, send_back, usage); received {preview}"
    )]
    UnknownKey { key: String, preview: String },
    #[error(
        "reply has none of \"output\", \"error\", \"blocked\", \"review\", \"send_back\"; received {preview}"
    )]
    NoShape { preview: String },
    #[error(
        "reply mixes {keys}; send one of output, error, blocked, review with output, or send_back (with output or without); received {preview}"
    )]
    SeveralShapes { keys: String, preview: String },
    #[error("reply field \"{field}\" {problem}; received {preview}")]
    BadField {
        field: String,
        problem: String,
        preview: String,
    },
}

/// Parses a command's stdout. `default_model` fills `usage.model` when the
/// reply names none.
///
/// Shapes: `{"output": ANY}`, `{"error": {"message": str, "retryable": bool}}`,
/// `{"blocked": {"reason": str}}`, `{"review": {"reason": str}, "output": ANY}`,
/// `{"send_back": {"to": str, "feedback": str}, "output"?: ANY}`; `blocked`
/// and `review` may add `"attempted": str | [str]` and `"severity"`;
/// each may also carry `"usage": {"model"?, "input_tokens", "output_tokens",
/// "cost_usd"?}`.
pub fn parse_reply(stdout: &[u8], default_model: Option<&str>) -> Result<ParsedReply, ReplyError> {
    let text = std::str::from_utf8(stdout).map_err(|e| {
        // Quote a bounded prefix: the invalid bytes may sit anywhere.
        let head = &stdout[..stdout.len().min(PREVIEW_CHARS * 4)];
        ReplyError::NotUtf8 {
            offset: e.valid_up_to(),
            preview: preview(&String::from_utf8_lossy(head)),
        }
    })?;
    if text.trim().is_empty() {
        return Err(ReplyError::Empty);
    }
    let shown = || preview(text);
    let mut values = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let value = match values.next() {
        Some(Ok(v)) => v,
        Some(Err(e)) => {
            return Err(ReplyError::NotJson {
                detail: e.to_string(),
                preview: shown(),
            });
        }
        None => return Err(ReplyError::Empty),
    };
    match values.next() {
        None => {}
        Some(Ok(_)) => return Err(ReplyError::SeveralValues { preview: shown() }),
        Some(Err(e)) => {
            return Err(ReplyError::NotJson {
                detail: format!("text after the first value: {e}"),
                preview: shown(),
            });
        }
    }
    let mut obj = match value {
        Value::Object(obj) => obj,
        other => {
            return Err(ReplyError::NotObject {
                found: type_name(&other),
                preview: shown(),
            });
        }
    };
    if let Some(key) = obj.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
        return Err(ReplyError::UnknownKey {
            key: key.clone(),
            preview: shown(),
        });
    }
    let bad = |field: &str, problem: &str| ReplyError::BadField {
        field: field.to_string(),
        problem: problem.to_string(),
        preview: shown(),
    };

    let usage = match obj.remove("usage") {
        None | Some(Value::Null) => None,
        Some(Value::Object(u)) => {
            Some(parse_usage(&u, default_model).map_err(|p| bad("usage", &p))?)
        }
        Some(_) => return Err(bad("usage", "must be an object")),
    };

    let present: Vec<&str> = ["output", "error", "blocked", "review", "send_back"]
        .into_iter()
        .filter(|k| obj.contains_key(*k))
        .collect();
    let reply = match present.as_slice() {
        [] => return Err(ReplyError::NoShape { preview: shown() }),
        ["output"] => Reply::Output {
            output: obj.remove("output").unwrap_or(Value::Null),
        },
        ["output", "review"] => {
            let review = obj.remove("review").unwrap_or(Value::Null);
            let reason = string_field(&review, "reason").map_err(|p| bad("review", &p))?;
            let escalation = Escalation::from_reply(&review).map_err(|p| bad("review", &p))?;
            Reply::Review {
                reason,
                output: obj.remove("output").unwrap_or(Value::Null),
                escalation,
            }
        }
        ["send_back"] | ["output", "send_back"] => {
            let verdict = obj.remove("send_back").unwrap_or(Value::Null);
            let to = string_field(&verdict, "to").map_err(|p| bad("send_back", &p))?;
            let feedback = string_field(&verdict, "feedback").map_err(|p| bad("send_back", &p))?;
            Reply::SendBack {
                to,
                feedback,
                output: obj.remove("output"),
            }
        }
        ["review"] => return Err(bad("review", "needs an \"output\" beside it")),
        ["error"] => {
            let error = obj.remove("error").unwrap_or(Value::Null);
            let message = string_field(&error, "message").map_err(|p| bad("error", &p))?;
            let retryable = match error.get("retryable") {
                Some(Value::Bool(b)) => *b,
                Some(_) => return Err(bad("error", "has \"retryable\" that is not true or false")),
                None => return Err(bad("error", "lacks \"retryable\" (true or false)")),
            };
            Reply::Error { message, retryable }
        }
        ["blocked"] => {
            let blocked = obj.remove("blocked").unwrap_or(Value::Null);
            let reason = string_field(&blocked, "reason").map_err(|p| bad("blocked", &p))?;
            let escalation = Escalation::from_reply(&blocked).map_err(|p| bad("blocked", &p))?;
            Reply::Blocked { reason, escalation }
        }
        several => {
            return Err(ReplyError::SeveralShapes {
                keys: several
                    .iter()
                    .map(|k| format!("\"{k}\""))
                    .collect::<Vec<_>>()
                    .join(" and "),
                preview: shown(),
            });
        }
    };
    Ok(ParsedReply { reply, usage })
}

/// `value` must be an object holding a string under `key`.
fn string_field(value: &Value, key: &str) -> Result<String, String> {
    let Value::Object(obj) = value else {
        return Err(format!("must be an object with a string \"{key}\""));
    };
    match obj.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "has \"{key}\" that is a {}, not a string",
            type_name(other)
        )),
        None => Err(format!("lacks \"{key}\" (a string)")),
    }
}

fn parse_usage(u: &Map<String, Value>, default_model: Option<&str>) -> Result<Usage, String> {
    let tokens = |key: &str| match u.get(key) {
        Some(v) => v
            .as_u64()
            .ok_or_else(|| format!("has \"{key}\" that is not a whole number of 0 or more")),
        None => Err(format!("lacks \"{key}\"")),
    };
    let optional_tokens = |key: &str| match u.get(key) {
        None | Some(Value::Null) => Ok(0),
        Some(_) => tokens(key),
    };
    let model = match u.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err("has \"model\" that is not a string".into()),
    };
    let cost_usd = match u.get("cost_usd") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(c) if c.is_finite() && c >= 0.0 => Some(c),
            _ => return Err("has \"cost_usd\" that is not a number of 0 or more".into()),
        },
    };
    let usage = Usage {
        model: model.or_else(|| default_model.map(str::to_string)),
        input_tokens: tokens("input_tokens")?,
        output_tokens: tokens("output_tokens")?,
        cache_read_tokens: optional_tokens("cache_read_tokens")?,
        cache_write_tokens: optional_tokens("cache_write_tokens")?,
        cost_usd,
    };
    // "has ..." reads on from `reply field "usage"`.
    usage
        .check()
        .map_err(|why| why.replacen("usage has", "has", 1))?;
    Ok(usage)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// The start of `text` in backticks, on one line: control characters are
/// escaped so a multi-line reply cannot break the message apart.
pub(crate) fn preview(text: &str) -> String {
    let text = text.trim();
    let mut out = String::from("`");
    for (i, c) in text.chars().enumerate() {
        if i == PREVIEW_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_debug());
        } else {
            out.push(c);
        }
    }
    out.push('`');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(s: &str) -> Result<ParsedReply, ReplyError> {
        parse_reply(s.as_bytes(), Some("house-model"))
    }

    #[test]
    fn output_with_usage_and_model_fallback() {
        let p = parse(
            r#"  {"output": {"a": 1}, "usage": {"input_tokens": 10, "output_tokens": 5}}
"#,
        )
        .unwrap();
        assert_eq!(
            p.reply,
            Reply::Output {
                output: json!({"a": 1})
            }
        );
        let u = p.usage.unwrap();
        assert_eq!(u.model.as_deref(), Some("house-model"));
        assert_eq!((u.input_tokens, u.output_tokens, u.cost_usd), (10, 5, None));
    }

    #[test]
    fn send_back_with_or_without_output() {
        let p = parse(r#"{"send_back": {"to": "plan", "feedback": "cover errors"}}"#).unwrap();
        assert_eq!(
            p.reply,
            Reply::SendBack {
                to: "plan".into(),
                feedback: "cover errors".into(),
                output: None
            }
        );
        let p = parse(r#"{"send_back": {"to": "plan", "feedback": "f"}, "output": {"score": 2}}"#)
            .unwrap();
        assert!(
            matches!(p.reply, Reply::SendBack { output: Some(o), .. } if o == json!({"score": 2}))
        );
        let e = parse(r#"{"send_back": {"to": "plan"}}"#).unwrap_err();
        assert!(e.to_string().contains("lacks \"feedback\""), "{e}");
        let e =
            parse(r#"{"send_back": {"to": "plan", "feedback": "f"}, "blocked": {"reason": "r"}}"#)
                .unwrap_err();
        assert!(matches!(e, ReplyError::SeveralShapes { .. }), "{e}");
    }

    #[test]
    fn blocked_and_review_carry_what_was_tried_and_how_severe() {
        let p = parse(r#"{"blocked": {"reason": "no access", "attempted": ["ssh", "vpn"], "severity": "critical"}}"#)
            .unwrap();
        let Reply::Blocked { reason, escalation } = p.reply else {
            panic!("not blocked");
        };
        assert_eq!(reason, "no access");
        assert_eq!(escalation.describe(), "critical · tried: ssh; vpn");
        let p =
            parse(r#"{"review": {"reason": "unsure", "attempted": "two parses"}, "output": {}}"#)
                .unwrap();
        assert!(
            matches!(p.reply, Reply::Review { escalation, .. } if escalation.attempted == ["two parses"])
        );
        let e = parse(r#"{"blocked": {"reason": "r", "severity": "meh"}}"#).unwrap_err();
        assert!(e.to_string().contains("low, medium, high, critical"), "{e}");
    }

    #[test]
    fn usage_model_and_cost_are_kept() {
        let p = parse(r#"{"output": null, "usage": {"model": "m", "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.25}}"#).unwrap();
        assert_eq!(
            p.reply,
            Reply::Output {
                output: Value::Null
            }
        );
        let u = p.usage.unwrap();
        assert_eq!(u.model.as_deref(), Some("m"));
        assert_eq!(u.cost_usd, Some(0.25));
    }

    #[test]
    fn every_shape() {
        assert_eq!(
            parse(r#"{"error": {"message": "rate limited", "retryable": true}}"#)
                .unwrap()
                .reply,
            Reply::Error {
                message: "rate limited".into(),
                retryable: true
            }
        );
        assert_eq!(
            parse(r#"{"blocked": {"reason": "no note"}, "usage": {"input_tokens": 1, "output_tokens": 0}}"#)
                .unwrap()
                .reply,
            Reply::Blocked {
                reason: "no note".into(),
                escalation: Default::default()
            }
        );
        assert_eq!(
            parse(r#"{"review": {"reason": "unsure", "extra": 1}, "output": [1]}"#)
                .unwrap()
                .reply,
            Reply::Review {
                reason: "unsure".into(),
                output: json!([1]),
                escalation: Default::default()
            }
        );
    }

    #[test]
    fn broken_replies_say_what_was_wrong() {
        let cases: &[(&str, &str)] = &[
            ("   \n", "empty"),
            ("not json", "not JSON"),
            (r#"{"output": 1} {"output": 2}"#, "more than one JSON value"),
            (r#"{"output": 1} trailing"#, "text after the first value"),
            ("[1, 2]", "JSON array, not an object"),
            (r#"{"outptu": 1}"#, "unknown key \"outptu\""),
            ("{}", "none of"),
            (
                r#"{"usage": {"input_tokens": 1, "output_tokens": 1}}"#,
                "none of",
            ),
            (
                r#"{"output": 1, "error": {"message": "x", "retryable": false}}"#,
                "mixes \"output\" and \"error\"",
            ),
            (r#"{"review": {"reason": "x"}}"#, "needs an \"output\""),
            (r#"{"error": {"message": "x"}}"#, "lacks \"retryable\""),
            (
                r#"{"error": {"message": 3, "retryable": true}}"#,
                "number, not a string",
            ),
            (r#"{"blocked": "why"}"#, "must be an object"),
            (
                r#"{"output": 1, "usage": {"input_tokens": -1, "output_tokens": 1}}"#,
                "\"input_tokens\" that is not",
            ),
            (
                r#"{"output": 1, "usage": {"input_tokens": 1}}"#,
                "lacks \"output_tokens\"",
            ),
            (
                r#"{"output": 1, "usage": 5}"#,
                "\"usage\" must be an object",
            ),
            (
                r#"{"output": {}, "usage": {"input_tokens": 18446744073709551615, "output_tokens": 4}}"#,
                "reply field \"usage\" has \"input_tokens\" = 18446744073709551615, more than the 1000000000000 tokens one call can use",
            ),
            (
                r#"{"output": {}, "usage": {"input_tokens": 1, "output_tokens": 4, "cache_read_tokens": 1000000000001}}"#,
                "\"cache_read_tokens\" = 1000000000001",
            ),
            (
                r#"{"output": {}, "usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 1e308}}"#,
                "reply field \"usage\" has \"cost_usd\" = 1e308, not a number of dollars from 0 to 1000000",
            ),
            (
                r#"{"output": {}, "usage": {"input_tokens": 1, "output_tokens": 1, "cost_usd": 1000000.5}}"#,
                "\"cost_usd\" = 1000000.5",
            ),
        ];
        for (input, want) in cases {
            let err = parse(input).unwrap_err().to_string();
            assert!(err.contains(want), "{input:?}: {err}");
            if !input.trim().is_empty() {
                assert!(err.contains("received `"), "{input:?}: {err}");
            }
        }
    }

    #[test]
    fn invalid_utf8_names_the_offset() {
        let err = parse_reply(b"{\"output\": \"\xff\"}", None).unwrap_err();
        assert!(
            matches!(err, ReplyError::NotUtf8 { offset: 12, .. }),
            "{err:?}"
        );
        assert!(err.to_string().contains("offset 12"));
    }

    #[test]
    fn preview_is_short_and_on_one_line() {
        let long = format!("line one\nline two {}", "x".repeat(1000));
        let p = preview(&long);
        assert!(p.starts_with("`line one\\nline two"), "{p}");
        assert!(p.ends_with("…`"));
        assert!(p.chars().count() < PREVIEW_CHARS + 10);
    }
}
