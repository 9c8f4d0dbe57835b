//! One HTTP call to the provider: send the conversation, read the reply
//! whole or as a stream (telling watchers how it grows), and say what the
//! exchange was (status, error type, request id, retry-after).

use std::time::{Duration, Instant};

use jiff::Timestamp;
use reqwest::header::{CONTENT_TYPE, HeaderMap, HeaderValue};
use tokio::sync::mpsc::UnboundedSender;

use super::classify::{
    class_of, class_of_transport, describe_transport, error_body, request_id, retry_after,
};
use super::sse::SseParser;
use super::wire::{Conversation, Turn, WireError};
use super::{anthropic, openai};
use crate::engine::event::{ErrorClass, HttpInfo};
use crate::engine::live::Progress;
use crate::spec::model::{HttpSpec, Provider};

/// Bytes of a reply body read at most; more is a protocol failure.
const MAX_BODY: usize = 32 * 1024 * 1024;
/// Bytes of an error body read at most.
const MAX_ERROR_BODY: usize = 64 * 1024;
/// Characters of a provider's error message kept.
const MAX_MESSAGE: usize = 600;
/// Watchers get the growing reply at most this often (and once at the end).
const PROGRESS_EVERY: Duration = Duration::from_millis(80);

/// How a call went, whatever its result.
#[derive(Debug, Default)]
pub struct Exchange {
    pub http: HttpInfo,
    pub retry_after: Option<Duration>,
    pub trace: Vec<String>,
}

/// A call that gave no usable reply.
#[derive(Debug)]
pub struct CallError {
    pub class: ErrorClass,
    pub message: String,
}

pub async fn send(
    client: &reqwest::Client,
    spec: &HttpSpec,
    model: &str,
    key: Option<&str>,
    conv: &Conversation,
    progress: Option<&UnboundedSender<Progress>>,
    ex: &mut Exchange,
) -> Result<Turn, CallError> {
    let (url, body) = match spec.provider {
        Provider::OpenAi => (openai::url(spec), openai::body(spec, model, conv)),
        Provider::Anthropic => (anthropic::url(spec), anthropic::body(spec, model, conv)),
    };
    let mut req = client
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .headers(auth_headers(spec.provider, key))
        .body(body.to_string());
    if let Some(t) = spec.timeout {
        req = req.timeout(t);
    }
    let mut resp = match req.send().await {
        Ok(r) => r,
        Err(e) => {
            ex.trace.push(format!("POST {url}: no response"));
            return Err(CallError {
                class: class_of_transport(&e),
                message: format!("no response from {url}: {}", describe_transport(&e)),
            });
        }
    };
    let status = resp.status().as_u16();
    ex.http.status = Some(status);
    ex.http.request_id = request_id(resp.headers());
    ex.trace.push(match &ex.http.request_id {
        Some(id) => format!("POST {url} → HTTP {status} (request {id})"),
        None => format!("POST {url} → HTTP {status}"),
    });
    if !resp.status().is_success() {
        let after = retry_after(resp.headers(), Timestamp::now());
        let raw = read_capped(&mut resp, MAX_ERROR_BODY)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&raw);
        let (error_type, message) = error_body(&text);
        let class = class_of(status, error_type.as_deref());
        ex.http.error_type = error_type.clone();
        if class.is_retryable() {
            ex.retry_after = after;
        }
        let said = message.unwrap_or_else(|| text.trim().to_string());
        let said = cut(&said, MAX_MESSAGE);
        let kind = error_type.map(|t| format!(" {t}")).unwrap_or_default();
        return Err(CallError {
            class,
            message: format!("HTTP {status}{kind}: {said}"),
        });
    }
    let streamed = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"));
    let result = if streamed {
        read_stream(&mut resp, spec.provider, progress, ex).await
    } else {
        read_whole(&mut resp, spec.provider).await
    };
    result.map_err(|e| {
        ex.http.error_type = e.error_type.clone().or(ex.http.error_type.take());
        let kind = e.error_type.map(|t| format!("{t}: ")).unwrap_or_default();
        CallError {
            class: e.class,
            message: format!("{kind}{}", cut(&e.message, MAX_MESSAGE)),
        }
    })
}

fn auth_headers(provider: Provider, key: Option<&str>) -> HeaderMap {
    let mut h = HeaderMap::new();
    if provider == Provider::Anthropic {
        h.insert(
            "anthropic-version",
            HeaderValue::from_static(anthropic::VERSION),
        );
    }
    let Some(key) = key else {
        return h;
    };
    let (name, value) = match provider {
        Provider::OpenAi => ("authorization", format!("Bearer {key}")),
        Provider::Anthropic => ("x-api-key", key.to_string()),
    };
    // A key with characters a header cannot hold is sent as nothing; the
    // service then answers 401, which names the problem without the key.
    if let Ok(mut v) = HeaderValue::from_str(&value) {
        v.set_sensitive(true);
        h.insert(name, v);
    }
    h
}

fn transport(e: &reqwest::Error, what: &str) -> WireError {
    let class = match class_of_transport(e) {
        ErrorClass::Fatal => ErrorClass::Retryable,
        c => c,
    };
    WireError {
        class,
        error_type: None,
        message: format!("{what}: {}", describe_transport(e)),
    }
}

async fn read_capped(resp: &mut reqwest::Response, cap: usize) -> Result<Vec<u8>, WireError> {
    let mut out = Vec::new();
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| transport(&e, "the reply broke off"))?
    {
        if out.len() + chunk.len() > cap {
            return Err(WireError::protocol(format!(
                "the reply is larger than {} MiB",
                cap / (1024 * 1024)
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

async fn read_whole(resp: &mut reqwest::Response, provider: Provider) -> Result<Turn, WireError> {
    let body = read_capped(resp, MAX_BODY).await?;
    let text = String::from_utf8_lossy(&body);
    match provider {
        Provider::OpenAi => openai::parse_reply(&text),
        Provider::Anthropic => anthropic::parse_reply(&text),
    }
}

async fn read_stream(
    resp: &mut reqwest::Response,
    provider: Provider,
    progress: Option<&UnboundedSender<Progress>>,
    ex: &mut Exchange,
) -> Result<Turn, WireError> {
    let mut parser = SseParser::new();
    let mut turn = Turn::default();
    let mut last_sent: Option<Instant> = None;
    let mut read = 0usize;
    let tell = |turn: &Turn, last: &mut Option<Instant>, force: bool| {
        let Some(tx) = progress else { return };
        if !force && last.is_some_and(|t| t.elapsed() < PROGRESS_EVERY) {
            return;
        }
        *last = Some(Instant::now());
        let _ = tx.send(Progress {
            text: turn.text.clone(),
            output_tokens: if turn.usage_seen && turn.usage.output_tokens >= turn.pieces {
                turn.usage.output_tokens
            } else {
                turn.pieces
            },
            estimated: !(turn.usage_seen && turn.usage.output_tokens >= turn.pieces),
        });
    };
    let fold = |turn: &mut Turn, ev| match provider {
        Provider::OpenAi => openai::on_event(turn, &ev),
        Provider::Anthropic => anthropic::on_event(turn, &ev),
    };
    loop {
        let chunk = resp
            .chunk()
            .await
            .map_err(|e| transport(&e, "the stream broke off mid-reply"))?;
        let Some(chunk) = chunk else { break };
        read += chunk.len();
        if read > MAX_BODY {
            return Err(WireError::protocol(
                "the streamed reply is larger than 32 MiB",
            ));
        }
        let mut grew = false;
        for ev in parser.feed(&chunk) {
            grew |= fold(&mut turn, ev)?.is_some();
        }
        if grew {
            tell(&turn, &mut last_sent, false);
        }
    }
    if let Some(ev) = parser.finish() {
        fold(&mut turn, ev)?;
    }
    ex.trace
        .push(format!("streamed {} pieces of text", turn.pieces));
    if !turn.complete {
        return Err(WireError {
            class: ErrorClass::Retryable,
            error_type: None,
            message: format!(
                "the stream closed mid-reply, after {} characters",
                turn.text.chars().count()
            ),
        });
    }
    tell(&turn, &mut last_sent, true);
    Ok(turn)
}

/// At most `max` characters of `s`, marked when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}
