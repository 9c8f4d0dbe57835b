//! `kind = "http"` agents: an LLM behind an HTTP API, OpenAI's chat
//! completions (and the servers that copy it) or Anthropic's messages.
//!
//! Defaults: `base_url` is the provider's own; the key comes from
//! `OPENAI_API_KEY` / `ANTHROPIC_API_KEY` unless `api_key_env` names another
//! variable, and no key is sent to a `base_url` of your own unless
//! `api_key_env` is given; `output = "text"`; `stream = true`; Anthropic
//! calls ask for at most 4096 tokens unless `max_tokens` says otherwise.

use std::ops::Range;

use toml::de::DeValue;

use super::error::Diag;
use super::limits::MAX_HTTP_MAX_TOKENS;
use super::model::{HttpSpec, OutputFormat, Provider, Template};
use super::raw::Table;
use super::suggest::did_you_mean;

pub(crate) const HTTP_KEYS: &[&str] = &[
    "kind",
    "provider",
    "model",
    "base_url",
    "api_key_env",
    "system",
    "prompt",
    "max_tokens",
    "temperature",
    "timeout",
    "output",
    "stream",
    "max_parallel",
    "rpm",
    "tpm",
    "route",
];

const PROVIDERS: &[&str] = &["openai", "anthropic"];

/// Where in the pipeline file a template names a phase, for checking the
/// names once the phases are known.
#[derive(Debug, Clone)]
pub(crate) struct PhaseRef {
    pub(crate) at: Range<usize>,
    pub(crate) phase: String,
    pub(crate) agent: String,
}

pub(crate) fn read_http(
    d: &mut Diag<'_>,
    name: &str,
    t: &Table<'_, '_>,
    refs: &mut Vec<PhaseRef>,
) -> Option<HttpSpec> {
    if t.get("provider").is_none() {
        t.missing(
            d,
            "provider",
            "add provider = \"openai\" (chat completions, also vLLM, Ollama, llama.cpp) or provider = \"anthropic\"",
        );
    }
    let provider = t
        .choice(d, "provider", PROVIDERS)
        .map(|p| match *p.get_ref() {
            "anthropic" => Provider::Anthropic,
            _ => Provider::OpenAi,
        });
    let model = t.required_string(
        d,
        "model",
        "name the model, e.g. model = \"gpt-4.1-mini\" or model = \"claude-sonnet-4-5\"",
    );
    if let Some(m) = model.as_ref().filter(|m| m.get_ref().trim().is_empty()) {
        d.error(
            m.span(),
            format!("`model` {} is empty", t.place),
            "name the model, e.g. model = \"gpt-4.1-mini\"",
        );
    }
    let base_url = t.string(d, "base_url");
    if let Some(u) = &base_url {
        let s = u.get_ref();
        if !(s.starts_with("http://") || s.starts_with("https://")) || s.len() <= "https://".len() {
            d.error(
                u.span(),
                format!("`base_url` {} must be an http:// or https:// address", t.place),
                "write e.g. base_url = \"http://127.0.0.1:8000/v1\" for a local OpenAI-compatible server",
            );
        }
    }
    let api_key_env = t.string(d, "api_key_env");
    if let Some(k) = &api_key_env {
        let s = k.get_ref();
        let ok = !s.is_empty()
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
            // A key pasted here by mistake must not be echoed as a name.
            && !s.starts_with("sk_");
        if !ok {
            d.error(
                k.span(),
                format!(
                    "`api_key_env` {} must be the name of an environment variable",
                    t.place
                ),
                "give the variable's NAME, not the key, e.g. api_key_env = \"OPENAI_API_KEY\"",
            );
        }
    }
    let system = read_template(d, t, "system", name, refs);
    if t.get("prompt").is_none() {
        t.missing(
            d,
            "prompt",
            "give the prompt, e.g. prompt = \"Summarise this note: {{input.note}}\"",
        );
    }
    let prompt = read_template(d, t, "prompt", name, refs);
    let max_tokens = t
        .count(d, "max_tokens", 1, MAX_HTTP_MAX_TOKENS)
        .map(|n| n.into_inner());
    let temperature = read_temperature(d, t);
    let timeout = t.timeout(d, "timeout").map(|t| t.into_inner());
    let output = t
        .choice(d, "output", &["json", "text"])
        .map(|o| match *o.get_ref() {
            "json" => OutputFormat::Json,
            _ => OutputFormat::Text,
        });
    let stream = match t.get("stream") {
        None => Some(true),
        Some(v) => match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                d.error(
                    v.span(),
                    format!("`stream` {} must be true or false", t.place),
                    "write stream = true (the reply shows as it grows) or stream = false",
                );
                None
            }
        },
    };
    let provider = provider?;
    let api_key_env = match (&api_key_env, &base_url) {
        (Some(k), _) => Some(k.get_ref().to_string()),
        (None, None) => Some(provider.default_key_env().to_string()),
        (None, Some(_)) => None,
    };
    Some(HttpSpec {
        provider,
        model: model?.get_ref().to_string(),
        base_url: base_url
            .map_or(provider.default_base_url(), |u| *u.get_ref())
            .trim_end_matches('/')
            .to_string(),
        api_key_env,
        system: system?,
        prompt: prompt??,
        max_tokens,
        temperature: temperature?,
        timeout,
        output: match (t.get("output"), output) {
            (None, _) => OutputFormat::Text,
            (Some(_), o) => o?,
        },
        stream: stream?,
    })
}

/// `Some(None)` when absent, `None` when a problem was reported.
fn read_temperature(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<Option<f64>> {
    let Some(v) = t.get("temperature") else {
        return Some(None);
    };
    let x = match v.get_ref() {
        DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
        DeValue::Integer(i) => i.as_str().parse::<f64>().ok(),
        _ => None,
    };
    match x {
        Some(x) if (0.0..=2.0).contains(&x) => Some(Some(x)),
        _ => {
            d.error(
                v.span(),
                format!("`temperature` {} must be a number from 0 to 2", t.place),
                "write e.g. temperature = 0.2, or leave it out for the model's default",
            );
            None
        }
    }
}

/// A template at `key`: `Some(None)` when absent, `None` when a problem was
/// reported. Places that name phases are added to `refs`.
fn read_template(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    key: &str,
    agent: &str,
    refs: &mut Vec<PhaseRef>,
) -> Option<Option<Template>> {
    let Some(v) = t.get(key) else {
        return Some(None);
    };
    let s = t.string(d, key)?;
    let text: &str = s.get_ref();
    let span = v.span();
    let origin = content_start(d.text(), span.clone(), text);
    match Template::parse(text) {
        Ok(tpl) => {
            for (offset, phase) in tpl.phase_refs() {
                let at = origin.map_or(span.start, |o| o + offset);
                refs.push(PhaseRef {
                    at: at..at + 2,
                    phase: phase.clone(),
                    agent: agent.to_string(),
                });
            }
            Some(Some(tpl))
        }
        Err(e) => {
            let at = origin.map_or(span.start, |o| o + e.offset);
            d.error(
                at..at + 2,
                format!("{} in `{key}` {}", e.message, t.place),
                e.help,
            );
            None
        }
    }
}

/// Where the string's text starts in the file, when the written text is the
/// text itself (no escapes), so that offsets in it are offsets in the file.
pub(crate) fn content_start(file: &str, span: Range<usize>, text: &str) -> Option<usize> {
    let raw = file.get(span.clone())?;
    let quote = if raw.starts_with("\"\"\"") || raw.starts_with("'''") {
        3
    } else {
        1
    };
    let mut start = quote;
    let inner = raw.get(quote..raw.len().checked_sub(quote)?)?;
    let inner = if quote == 3 {
        // TOML drops a newline right after the opening quotes.
        if let Some(rest) = inner.strip_prefix("\r\n") {
            start += 2;
            rest
        } else if let Some(rest) = inner.strip_prefix('\n') {
            start += 1;
            rest
        } else {
            inner
        }
    } else {
        inner
    };
    (inner == text).then_some(span.start + start)
}

/// Reports `{{outputs.PHASE}}` places that name no phase of the pipeline.
pub(crate) fn check_phase_refs(d: &mut Diag<'_>, refs: &[PhaseRef], phase_ids: &[&str]) {
    for r in refs {
        if phase_ids.contains(&r.phase.as_str()) {
            continue;
        }
        d.error(
            r.at.clone(),
            format!(
                "unknown phase \"{}\" in `{{{{outputs.{}}}}}` in agent \"{}\"",
                r.phase, r.phase, r.agent
            ),
            format!(
                "phases here are: {}{}",
                phase_ids.join(", "),
                did_you_mean(&r.phase, phase_ids.iter().copied())
            ),
        );
    }
}
