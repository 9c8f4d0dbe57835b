//! From the reply's text to the phase's output.

use serde_json::{Value, json};

use crate::spec::model::OutputFormat;

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
}
