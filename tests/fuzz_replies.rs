//! Fuzzing a command agent's replies: generated stdout (replies of every
//! shape with counts and costs at and past their limits, the same with
//! bytes cut, added or broken, deep nesting, garbage) goes through the
//! reply parser and, when it parses, through the engine's turning of a
//! call's result into an event (usage checked, output contract, pricing).
//! Each must end in a reply or a clear error; never a panic, an abort or a
//! hang. See `fuzz_support` for `BATON_FUZZ_CASES`.

mod fuzz_support;

use std::time::Duration;

use baton::agents::CallResult;
use baton::agents::command::parse_reply;
use baton::engine::attempt::finished;
use baton::engine::cost::{MAX_CALL_TOKENS, PriceTable};
use baton::engine::event::EventKind;
use baton::spec::model::{Backoff, OnFailure, PhaseSpec, RetryPolicy, ReviewMode};
use fuzz_support::{Outcome, Watchdog, float_text, fuzz, integer_text};
use proptest::prelude::*;

fn spec(required: Vec<String>) -> PhaseSpec {
    PhaseSpec {
        id: "one".into(),
        agent: "a".into(),
        role: None,
        after: Vec::new(),
        when: Vec::new(),
        when_condition: None,
        on_failure: OnFailure::Stop,
        review: ReviewMode::Never,
        required_output: required,
        output_schema: None,
        timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            jitter: 0.2,
        },
        disabled: None,
        fan_out: None,
        cache: None,
        send_back: None,
    }
}

/// A JSON value as text, nested a little.
fn json_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("null".to_string()),
        Just("true".to_string()),
        integer_text().prop_filter("JSON numbers", |n| {
            n.bytes().all(|b| b.is_ascii_digit() || b == b'-') && !n.starts_with("-0")
        }),
        "\"[a-z é\\\\n]{0,12}\"",
        Just("1e400".to_string()),
        Just("-0.0".to_string()),
    ];
    leaf.prop_recursive(4, 32, 5, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec(("[a-z_]{1,6}", inner), 0..5).prop_map(|kv| {
                let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!("{{{}}}", body.join(","))
            }),
        ]
    })
}

fn number_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => integer_text(),
        1 => float_text(),
        1 => Just("1e308".to_string()),
        1 => Just("\"12\"".to_string()),
        1 => Just("null".to_string()),
    ]
}

fn usage_text() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "input_tokens",
        "output_tokens",
        "cache_read_tokens",
        "cache_write_tokens",
        "cost_usd",
        "model",
        "extra",
    ]);
    prop::collection::vec((key, number_text()), 0..7).prop_map(|kv| {
        let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
        format!("{{{}}}", body.join(","))
    })
}

/// A reply of some shape: the known keys (and a stranger), each with a
/// value that fits or does not.
fn reply_text() -> impl Strategy<Value = String> {
    let part = prop_oneof![
        3 => json_text().prop_map(|v| format!("\"output\":{v}")),
        1 => ("\\PC{0,20}", prop::sample::select(vec!["true", "false", "1", "null"])).prop_map(|(m, r)| {
            format!("\"error\":{{\"message\":{},\"retryable\":{r}}}", serde_json::json!(m))
        }),
        1 => json_text().prop_map(|v| format!("\"blocked\":{{\"reason\":{v}}}")),
        1 => json_text().prop_map(|v| format!("\"review\":{{\"reason\":{v}}}")),
        3 => usage_text().prop_map(|u| format!("\"usage\":{u}")),
        1 => json_text().prop_map(|v| format!("\"usgae\":{v}")),
    ];
    prop::collection::vec(part, 0..4).prop_map(|parts| format!("{{{}}}\n", parts.join(",")))
}

/// A reply of one shape, with usage whose figures are mostly within their
/// limits and sometimes at or just past them.
fn well_formed_reply() -> impl Strategy<Value = String> {
    let count = prop_oneof![
        6 => (0u64..100_000).prop_map(|n| n.to_string()),
        1 => prop::sample::select(vec![
            "1000000000000", "1000000000001", "18446744073709551615", "0", "-1", "1.5",
        ])
        .prop_map(str::to_string),
    ];
    let cost = prop_oneof![
        6 => (0.0f64..10.0).prop_map(|c| format!("{c}")),
        1 => prop::sample::select(vec!["1000000", "1000000.01", "1e308", "-0.01", "0"])
            .prop_map(str::to_string),
    ];
    let usage = (count.clone(), count.clone(), count, prop::option::of(cost)).prop_map(
        |(i, o, c, cost)| {
            let cost = cost.map(|c| format!(",\"cost_usd\":{c}")).unwrap_or_default();
            format!(",\"usage\":{{\"input_tokens\":{i},\"output_tokens\":{o},\"cache_read_tokens\":{c}{cost}}}")
        },
    );
    let shape = prop_oneof![
        4 => json_text().prop_map(|v| format!("\"output\":{v}")),
        2 => prop::collection::vec(("[a-z_]{1,6}", json_text()), 0..5).prop_map(|kv| {
            let body: Vec<String> = kv.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
            format!("\"output\":{{{}}}", body.join(","))
        }),
        1 => json_text().prop_map(|v| format!("\"review\":{{\"reason\":\"unsure\"}},\"output\":{v}")),
        1 => any::<bool>().prop_map(|r| format!("\"error\":{{\"message\":\"no\",\"retryable\":{r}}}")),
        1 => Just("\"blocked\":{\"reason\":\"needs a payer\"}".to_string()),
    ];
    (shape, prop::option::of(usage))
        .prop_map(|(shape, usage)| format!("{{{shape}{}}}\n", usage.unwrap_or_default()))
}

/// Bytes changed here and there: cut, added (some not UTF-8), doubled.
fn mutated(base: impl Strategy<Value = String>) -> impl Strategy<Value = Vec<u8>> {
    let edit = (
        0u8..5,
        any::<prop::sample::Index>(),
        prop::collection::vec(any::<u8>(), 0..6),
    );
    (base, prop::collection::vec(edit, 1..6)).prop_map(|(text, edits)| {
        let mut bytes = text.into_bytes();
        for (kind, at, junk) in edits {
            let i = at.index(bytes.len() + 1);
            match kind {
                0 => {
                    let end = (i + junk.len() + 1).min(bytes.len());
                    bytes.drain(i..end);
                }
                1 => bytes.splice(i..i, junk).for_each(drop),
                2 => bytes.truncate(i),
                3 => {
                    let copy = bytes[i..].to_vec();
                    bytes.extend_from_slice(&copy);
                }
                _ => bytes
                    .splice(i..i, b"{\"output\":[".iter().copied())
                    .for_each(drop),
            }
        }
        bytes
    })
}

fn stdout() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => well_formed_reply().prop_map(String::into_bytes),
        2 => reply_text().prop_map(String::into_bytes),
        2 => mutated(well_formed_reply()),
        1 => mutated(reply_text()),
        1 => (1usize..5000, any::<bool>()).prop_map(|(n, obj)| {
            let open = if obj { "{\"output\":".repeat(n) } else { "[".repeat(n) };
            format!("{{\"output\":{open}").into_bytes()
        }),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

#[test]
fn generated_replies_parse_or_fail_cleanly_and_become_events() {
    let prices = PriceTable::built_in();
    let watchdog =
        Watchdog::new(move |(out, required): (Vec<u8>, Vec<String>)| {
            match parse_reply(&out, Some("claude-haiku-4-5")) {
                Ok(parsed) => {
                    if let Some(u) = &parsed.usage {
                        assert!(u.check().is_ok(), "the parser let through {u:?}");
                        assert!(u.input_tokens <= MAX_CALL_TOKENS);
                    }
                    let result = CallResult {
                        reply: Ok(parsed.reply),
                        usage: parsed.usage,
                        trace: Vec::new(),
                        http: None,
                        retry_after: None,
                    };
                    let event = finished(
                        result,
                        1,
                        Duration::from_millis(5),
                        &spec(required),
                        None,
                        &prices,
                    );
                    let EventKind::AttemptFinished { cost_usd, .. } = event else {
                        panic!("not an AttemptFinished: {event:?}");
                    };
                    assert!(cost_usd.is_none_or(f64::is_finite));
                    Outcome::Accepted
                }
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    Outcome::Refused
                }
            }
        });
    let required = prop::collection::vec("[a-z_]{1,6}", 0..3);
    fuzz("fuzz replies", 5000, (stdout(), required), watchdog);
}
