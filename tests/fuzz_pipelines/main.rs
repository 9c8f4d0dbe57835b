//! Fuzzing pipeline files: generated pipelines (every key with values that
//! fit, values at and past their ranges, values of the wrong type, names
//! that do not resolve) and mutations of those and of the shipped
//! pipelines (bytes cut, added, some not UTF-8; lines doubled or swapped;
//! numbers and durations swapped for extreme ones; deep nesting) go
//! through `spec::load` like `baton validate`. A pipeline that loads is
//! then put to what the engine does with its numbers: every retry's delay
//! and due time, rate limiters at their limits, each condition evaluated.
//! Each must end in a pipeline or errors at file:line:col; never a panic,
//! an abort or a hang. See `fuzz_support` for `BATON_FUZZ_CASES`.

#[path = "../fuzz_support/mod.rs"]
mod fuzz_support;
mod generate;
mod mutate;

use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::engine::backoff::delay;
use baton::engine::clock;
use baton::engine::rate_limit::{Admit, RateLimiter};
use baton::spec::Pipeline;
use fuzz_support::{Outcome, Watchdog, fuzz};
use generate::{generated, well_formed};
use mutate::mutated;
use proptest::prelude::*;

/// The pipelines the repository ships, and those its tests load.
fn shipped() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    for dir in [
        "pipelines",
        "tests/fixtures/valid_pipelines",
        "tests/fixtures/invalid_pipelines",
    ] {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        texts.extend(files.iter().map(|f| std::fs::read_to_string(f).unwrap()));
    }
    texts
}

/// What the engine does with a loaded pipeline's numbers, short of
/// running it: each retry's delay and due time, the agents' rate limits at
/// their edges, every condition on a few inputs.
fn exercise(p: &Pipeline) {
    let now = jiff::Timestamp::now();
    for phase in &p.phases {
        let tries = phase.retry.max_attempts.min(8);
        for retry in (0..=tries).chain([63, 64, phase.retry.max_attempts, u32::MAX]) {
            for unit in [0.0, 0.999_999] {
                let wait = delay(&phase.retry, retry, unit);
                assert!(wait <= phase.retry.max_delay);
                let _ = clock::after(now, wait);
                let _ = clock::instant_after(wait);
                let _ = clock::millis(wait);
            }
        }
        if let Some(w) = &phase.when_condition {
            for input in inputs() {
                let _ = w.condition.eval(&input);
            }
        }
    }
    for agent in p.agents.values() {
        let mut limiter = RateLimiter::new(agent.rpm, agent.tpm, Duration::from_secs(60));
        for i in 0..3 {
            let at = limiter.clock(now);
            if limiter.admit(at) == Admit::Now || i == 0 {
                let ticket = limiter.started(at);
                limiter.finished(ticket, Some(u64::MAX / 2));
            }
        }
        for route in &agent.routes {
            if let Some(c) = &route.when {
                for input in inputs() {
                    let _ = c.eval(&input);
                }
            }
        }
    }
}

fn inputs() -> [serde_json::Value; 3] {
    [
        serde_json::json!({}),
        serde_json::json!({"risk": "high", "pages": 30, "payer": "Aetna", "a": {"b": [1, 2]}}),
        serde_json::json!({"risk": null, "pages": 1e300, "draft": true}),
    ]
}

#[test]
fn generated_and_mutated_pipeline_files_load_or_fail_at_a_place() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fuzz.toml");
    let watchdog = Watchdog::new(move |bytes: Vec<u8>| {
        std::fs::write(&file, &bytes).unwrap();
        match baton::spec::load(&file) {
            Ok(p) => {
                exercise(&p);
                Outcome::Accepted
            }
            Err(e) => {
                assert!(!e.problems.is_empty(), "an error without a problem");
                for p in &e.problems {
                    assert!(!p.message.is_empty());
                }
                // Shown as `baton validate` shows it.
                let _ = e.to_string();
                Outcome::Refused
            }
        }
    });
    let shipped = shipped();
    let strategy = prop_oneof![
        3 => well_formed().prop_map(String::into_bytes),
        3 => mutated(well_formed()),
        3 => generated().prop_map(String::into_bytes),
        2 => mutated(generated()),
        3 => mutated(prop::sample::select(shipped.clone())),
        1 => prop::sample::select(shipped).prop_map(String::into_bytes),
    ];
    fuzz("fuzz pipelines", 1000, strategy, watchdog);
}
