//! From the reply's text to the phase's output.

use serde_json::{Value, json};

use crate::agents::Reply;
use crate::spec::model::OutputFormat;

/// A reviewer's verdict in a JSON reply, read as a command agent's is:
/// `{"send_back": {"to": "PHASE", "feedback": "…"}, "output"?: {…}}`; or
/// what is wrong with it.
pub fn send_back(mut reply: Value) -> Result<Reply, String> {
    let verdict = reply
        .as_object_mut()
        .and_then(|o| o.remove("send_back"))
        .unwrap_or(Value::Null);
    let field = |name: &str| match verdict.get(name) {
        Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.clone()),
        Some(Value::String(_)) => Err(format!("has an empty \"{name}\"")),
        Some(_) => Err(format!("has \"{name}\" that is not a text")),
        None => Err(format!("lacks \"{name}\"")),
    };
    if !verdict.is_object() {
        return Err("is not an object with \"to\" and \"feedback\"".into());
    }
    Ok(Reply::SendBack {
        to: field("to")?,
        feedback: field("feedback")?,
        output: reply.as_object_mut().and_then(|o| o.remove("output")),
    })
}

/// The output for `text`, or why it is not JSON when JSON was asked for.
pub fn output(format: OutputFormat, text: &str) -> Result<Value, String> {
    match format {
        OutputFormat::Text => Ok(json!({ "text": text })),
        OutputFormat::Json => json_of(text),
    }
}

/// The JSON in a reply: the whole text, or the inside of a ```json (or
/// plain ```) fenced block in it.
fn json_of(text: &str) -> Result<Value, String> {
    let whole = text.trim();
    let first = match serde_json::from_str(whole) {
        Ok(v) => return Ok(v),
        Err(e) => e,
    };
    if let Some(inner) = fenced(whole) {
        return serde_json::from_str(inner.trim())
            .map_err(|e| format!("the fenced block is not JSON: {e}"));
    }
    if whole.is_empty() {
        return Err("the reply is empty".into());
    }
    Err(format!("the reply is not JSON: {first}"))
}

fn fenced(text: &str) -> Option<&str> {
    let start = text.find("```")?;
    let after = &text[start + 3..];
    // The info string (`json`) runs to the end of the line.
    let body = after.split_once('\n').map_or(after, |(_, rest)| rest);
    let end = body.find("```")?;
    Some(&body[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_fenced_and_bad_json() {
        assert_eq!(
            output(OutputFormat::Json, " {\"a\": 1}\n").unwrap(),
            json!({"a": 1})
        );
        assert_eq!(
            output(
                OutputFormat::Json,
                "Here it is:\n```json\n{\"a\": [1, 2]}\n```\nDone."
            )
            .unwrap(),
            json!({"a": [1, 2]})
        );
        assert_eq!(
            output(OutputFormat::Json, "```\n[true]\n```").unwrap(),
            json!([true])
        );
        let e = output(OutputFormat::Json, "{\"a\": 1").unwrap_err();
        assert!(
            e.starts_with("the reply is not JSON: EOF while parsing"),
            "{e}"
        );
        assert!(
            output(OutputFormat::Json, "```json\n{oops}\n```")
                .unwrap_err()
                .contains("fenced block")
        );
        assert_eq!(
            output(OutputFormat::Json, "  ").unwrap_err(),
            "the reply is empty"
        );
    }

    #[test]
    fn text_is_wrapped() {
        assert_eq!(
            output(OutputFormat::Text, "hi").unwrap(),
            json!({"text": "hi"})
        );
    }

    #[test]
    fn a_send_back_is_read_as_a_command_agent_s_and_says_what_is_wrong() {
        let reply = send_back(json!({
            "send_back": {"to": "plan", "feedback": "cover the error paths"},
            "output": {"score": 2}
        }))
        .unwrap();
        assert_eq!(
            reply,
            Reply::SendBack {
                to: "plan".into(),
                feedback: "cover the error paths".into(),
                output: Some(json!({"score": 2})),
            }
        );
        let bare = send_back(json!({"send_back": {"to": "plan", "feedback": "f"}})).unwrap();
        assert!(matches!(bare, Reply::SendBack { output: None, .. }));
        for (bad, says) in [
            (json!({"send_back": "plan"}), "is not an object"),
            (json!({"send_back": {"feedback": "f"}}), "lacks \"to\""),
            (json!({"send_back": {"to": "plan"}}), "lacks \"feedback\""),
            (
                json!({"send_back": {"to": 3, "feedback": "f"}}),
                "\"to\" that is not a text",
            ),
            (
                json!({"send_back": {"to": "plan", "feedback": " "}}),
                "an empty \"feedback\"",
            ),
        ] {
            let e = send_back(bad.clone()).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }
}
