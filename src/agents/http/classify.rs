//! What an HTTP failure means for the next attempt, as the providers
//! document it: rate limits (429), overload (529, `overloaded_error`),
//! server errors (5xx), dropped connections, timeouts and replies cut off
//! mid-stream may work next time; bad requests (400), keys (401, 403),
//! unknown models or paths (404) and refusals will not.

use std::time::Duration;

use jiff::Timestamp;
use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::engine::event::ErrorClass;

/// The class of a failed response, from its status and the provider's
/// error type.
pub fn class_of(status: u16, error_type: Option<&str>) -> ErrorClass {
    if matches!(
        error_type,
        Some("overloaded_error" | "rate_limit_error" | "api_error" | "server_error")
    ) {
        return ErrorClass::Retryable;
    }
    match status {
        408 | 409 | 429 | 529 | 500..=599 => ErrorClass::Retryable,
        _ => ErrorClass::Fatal,
    }
}

/// The class of a call that got no response (or lost it part way).
pub fn class_of_transport(e: &reqwest::Error) -> ErrorClass {
    if e.is_timeout() {
        ErrorClass::Timeout
    } else if e.is_builder() {
        ErrorClass::Fatal
    } else {
        // Refused, reset, closed: the network or the server, not the request.
        ErrorClass::Retryable
    }
}

/// Words for a transport failure, with its causes (reqwest's own message
/// alone is often just "error sending request").
pub fn describe_transport(e: &reqwest::Error) -> String {
    let mut out = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let s_text = s.to_string();
        if !out.contains(&s_text) {
            out.push_str(": ");
            out.push_str(&s_text);
        }
        source = s.source();
    }
    out
}

/// The error type and message in an error body: OpenAI's
/// `{"error": {"type", "code", "message"}}` or Anthropic's
/// `{"type": "error", "error": {"type", "message"}}`.
pub fn error_body(body: &str) -> (Option<String>, Option<String>) {
    let Ok(v) = serde_json::from_str::<Value>(body) else {
        return (None, None);
    };
    let e = v.get("error").unwrap_or(&v);
    let text = |key: &str| e.get(key).and_then(Value::as_str).map(str::to_string);
    let kind = text("type")
        .filter(|t| !t.is_empty() && t != "error")
        .or_else(|| text("code"));
    (kind, text("message"))
}

/// How long the server asked to wait: `retry-after-ms`, else `retry-after`
/// as seconds or as an HTTP date.
pub fn retry_after(headers: &HeaderMap, now: Timestamp) -> Option<Duration> {
    let get = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = get("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return seconds(ms / 1000.0);
    }
    let v = get("retry-after")?;
    if let Ok(secs) = v.parse::<f64>() {
        return seconds(secs);
    }
    let at = jiff::fmt::rfc2822::DateTimeParser::new()
        .parse_timestamp(v)
        .ok()?;
    let wait = Duration::try_from(at.duration_since(now)).unwrap_or(Duration::ZERO);
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The longest a server's `retry-after` is heeded: a day.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(86_400);

fn seconds(s: f64) -> Option<Duration> {
    (s.is_finite() && s >= 0.0).then(|| Duration::from_secs_f64(s.min(86_400.0)))
}

/// The provider's id for the request.
pub fn request_id(headers: &HeaderMap) -> Option<String> {
    ["x-request-id", "request-id"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn classes_by_status_and_type() {
        for s in [429, 500, 502, 503, 504, 529] {
            assert_eq!(class_of(s, None), ErrorClass::Retryable, "{s}");
        }
        for s in [400, 401, 403, 404, 422] {
            assert_eq!(class_of(s, None), ErrorClass::Fatal, "{s}");
        }
        assert_eq!(
            class_of(400, Some("overloaded_error")),
            ErrorClass::Retryable
        );
        assert_eq!(
            class_of(401, Some("authentication_error")),
            ErrorClass::Fatal
        );
    }

    #[test]
    fn error_bodies_of_both_providers() {
        assert_eq!(
            error_body(
                r#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#
            ),
            (Some("requests".into()), Some("Rate limit reached".into()))
        );
        assert_eq!(
            error_body(r#"{"error":{"message":"bad key","type":null,"code":"invalid_api_key"}}"#),
            (Some("invalid_api_key".into()), Some("bad key".into()))
        );
        assert_eq!(
            error_body(
                r#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}"#
            ),
            (Some("overloaded_error".into()), Some("Overloaded".into()))
        );
        assert_eq!(error_body("<html>bad gateway</html>"), (None, None));
    }

    #[test]
    fn retry_after_in_seconds_milliseconds_or_a_date() {
        let now: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Thu, 01 Jan 2026 00:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 31 Dec 2025 00:00:30 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h, now), Some(Duration::from_millis(1500)));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h, now), None);
        // A date far ahead is heeded for a day at most, as seconds are.
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 01 Jan 9000 00:00:00 GMT"),
        );
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(86_400)));
    }
}
