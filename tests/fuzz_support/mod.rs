//! What the fuzz tests share: how many cases to try, a watchdog that runs
//! each case on a thread of its own (a panic is caught and named, a case
//! past its time limit is a hang), the tally they print, and generators
//! of the values baton reads: numbers, durations and conditions at and
//! past their limits.
//!
//! `cargo test` tries a few thousand cases per fuzzer; set
//! `BATON_FUZZ_CASES=100000` for a longer run, and `BATON_FUZZ_SEED` to a
//! number for another sequence of cases than the fixed default
//! (`BATON_FUZZ_SEED=random` draws one and prints it).
#![allow(dead_code)]

use std::any::Any;
use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};

/// How long one case may take before it counts as a hang. Generous: a
/// debug build on a busy machine parses a large file in well under it.
pub const CASE_LIMIT: Duration = Duration::from_secs(20);

/// Cases to try: `BATON_FUZZ_CASES`, else `default`.
pub fn cases(default: u32) -> u32 {
    std::env::var("BATON_FUZZ_CASES")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(default)
}

/// A runner with the cases asked for, a seed from `BATON_FUZZ_SEED` (fixed
/// by default, so that CI sees the same cases each time), and no files
/// written on failure: the failing case is printed instead.
pub fn runner(name: &str, default_cases: u32) -> TestRunner {
    let seed: u64 = match std::env::var("BATON_FUZZ_SEED").ok().as_deref() {
        Some("random") => {
            let s = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64);
            eprintln!("{name}: BATON_FUZZ_SEED={s}");
            s
        }
        Some(v) => v.trim().parse().unwrap_or(1),
        None => 0x0ba7_0a11,
    };
    let mut bytes = [0u8; 16];
    for (i, chunk) in bytes.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&(seed.wrapping_add(i as u64 * 0x9E37_79B9)).to_le_bytes());
    }
    let config = Config {
        cases: cases(default_cases),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    TestRunner::new_with_rng(
        config,
        TestRng::from_seed(RngAlgorithm::XorShift, &bytes[..16]),
    )
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A result: the input was taken.
    Accepted,
    /// A clear error.
    Refused,
}

/// Counts of one fuzzer's run.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub tried: u64,
    pub accepted: u64,
    pub refused: u64,
    pub panics: u64,
    pub hangs: u64,
}

impl Tally {
    pub fn line(&self, what: &str) -> String {
        format!(
            "{what}: {} cases tried ({} accepted, {} refused with an error); panics: {}, aborts: 0, hangs: {}",
            self.tried, self.accepted, self.refused, self.panics, self.hangs
        )
    }
}

/// Runs each case on a worker thread of its own, so that a panic is caught
/// and a case that never ends is seen as a hang rather than stalling the
/// test. (An abort, e.g. a stack overflow, ends the test process: the test
/// fails with it.)
pub struct Watchdog<I: Send + 'static> {
    cases: mpsc::Sender<I>,
    results: mpsc::Receiver<Result<Outcome, String>>,
    pub tally: Tally,
}

fn panic_text(p: Box<dyn Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into())
}

impl<I: Send + Clone + Debug + 'static> Watchdog<I> {
    /// `check` is called on each case, on a thread with the 2 MiB stack
    /// that tokio's workers have (the smallest baton runs code on).
    pub fn new(check: impl Fn(I) -> Outcome + Send + 'static) -> Watchdog<I> {
        let (case_tx, case_rx) = mpsc::channel::<I>();
        let (result_tx, result_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("fuzz-case".into())
            .stack_size(2 * 1024 * 1024)
            .spawn(move || {
                for case in case_rx {
                    let result = catch_unwind(AssertUnwindSafe(|| check(case))).map_err(panic_text);
                    if result_tx.send(result).is_err() {
                        break;
                    }
                }
            })
            .expect("start the fuzz worker");
        Watchdog {
            cases: case_tx,
            results: result_rx,
            tally: Tally::default(),
        }
    }

    /// Runs one case: a panic fails the case (proptest then shrinks it);
    /// a hang fails the whole test at once, naming the case.
    pub fn run(&mut self, case: I) -> Result<(), TestCaseError> {
        // Kept to be shown should the case hang; formatted only then.
        let kept = case.clone();
        self.tally.tried += 1;
        self.cases.send(case).expect("the fuzz worker is alive");
        match self.results.recv_timeout(CASE_LIMIT) {
            Ok(Ok(Outcome::Accepted)) => {
                self.tally.accepted += 1;
                Ok(())
            }
            Ok(Ok(Outcome::Refused)) => {
                self.tally.refused += 1;
                Ok(())
            }
            Ok(Err(panic)) => {
                self.tally.panics += 1;
                Err(TestCaseError::fail(format!("panicked: {panic}")))
            }
            Err(_) => {
                self.tally.hangs += 1;
                let cut: String = format!("{kept:?}").chars().take(4000).collect();
                panic!("a case ran past {CASE_LIMIT:?} (a hang): {cut}");
            }
        }
    }
}

/// Runs `strategy`'s cases through `watchdog`, prints the tally, and fails
/// on any panic or hang with the (shrunk) case.
pub fn fuzz<S: Strategy>(name: &str, default_cases: u32, strategy: S, watchdog: Watchdog<S::Value>)
where
    S::Value: Send + Clone + Debug + 'static,
{
    let mut runner = runner(name, default_cases);
    let watchdog = std::cell::RefCell::new(watchdog);
    let result = runner.run(&strategy, |case| watchdog.borrow_mut().run(case));
    let tally = watchdog.borrow().tally;
    eprintln!("{}", tally.line(name));
    if let Err(e) = result {
        panic!("{name}: {e}");
    }
    assert_eq!((tally.panics, tally.hangs), (0, 0), "{}", tally.line(name));
}

/// Whole numbers as a pipeline file may write them: at and past every
/// range's ends, past `i64`, odd forms.
pub fn integer_text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "0", "1", "-1", "2", "7", "64", "100", "1_000", "10_000", "100_000", "100_001",
            "1_000_000", "1_000_001", "4294967295", "4294967296", "1_073_741_824",
            "1_073_741_825", "1_000_000_000_000", "1_000_000_000_001",
            "1_000_000_000_000_000", "1_000_000_000_000_001", "9223372036854775807",
            "-9223372036854775808", "9223372036854775808", "18446744073709551615",
            "99999999999999999999999999999999999999999", "0x10", "0o7", "0b11", "+5",
            "1__0", "01",
        ])
        .prop_map(str::to_string),
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => any::<u32>().prop_map(|n| n.to_string()),
    ]
}

/// Floats: shares, dollars, temperatures at and past their ranges.
pub fn float_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "0.0", "0.05", "0.5", "1.0", "1.0000001", "2.0", "2.5", "-0.1", "-0.0", "nan",
            "inf", "-inf", "+inf", "1e308", "1e-320", "1e9", "1000000000.5", "0.000_5",
            "3.0e2", "5e-1",
        ])
        .prop_map(str::to_string),
        1 => any::<f64>().prop_map(|f| {
            if f.is_finite() { format!("{f:?}") } else { "nan".to_string() }
        }),
    ]
}

/// A duration as written in quotes (without them).
pub fn duration_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => prop::sample::select(vec![
            "0ms", "0s", "1ms", "250ms", "2s", "30s", "5m", "1h", "720h", "721h", "43200m",
            "2592000000ms", "2592000001ms", "100000000h", "9223372036854775807ms",
            "18446744073709551615ms", "18446744073709551616ms", "99999999999999999999s",
            "1d", "-1s", "", "1.5s", "5 min", "s", "10", "ms10", " 1s ",
        ])
        .prop_map(str::to_string),
        1 => (any::<u64>(), prop::sample::select(vec!["ms", "s", "m", "h"]))
            .prop_map(|(n, u)| format!("{n}{u}")),
    ]
}

/// A duration range for a sim agent's latency, or a token range.
pub fn range_text() -> impl Strategy<Value = String> {
    prop_oneof![
        (duration_text(), duration_text()).prop_map(|(a, b)| format!("{a}..{b}")),
        duration_text(),
        (integer_text(), integer_text()).prop_map(|(a, b)| format!("{a}..{b}")),
        Just("..".to_string()),
        Just("1...3".to_string()),
    ]
}

/// The text of a condition: mostly well formed (fields, literals,
/// comparisons, `and`, `or`, `not`, parentheses nested up to three times
/// the limit), sometimes cut or with stray tokens.
pub fn condition_text() -> impl Strategy<Value = String> {
    let operand = prop_oneof![
        4 => "input(\\.[a-z_]{1,6}){1,3}",
        2 => any::<i64>().prop_map(|n| n.to_string()),
        1 => integer_text(),
        1 => float_text(),
        2 => prop::sample::select(vec!["'high'", "\"Aetna\"", "true", "false", "null", "''"])
            .prop_map(str::to_string),
    ];
    let op = prop_oneof![
        12 => prop::sample::select(vec!["==", "!=", "<", "<=", ">", ">="]),
        1 => prop::sample::select(vec!["=", "!", "=>", "<>"]),
    ];
    let atom = prop_oneof![
        3 => (operand.clone(), op, operand.clone()).prop_map(|(a, o, b)| format!("{a} {o} {b}")),
        1 => operand,
    ];
    let tree = atom.prop_recursive(6, 64, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..5).prop_map(|v| v.join(" and ")),
            prop::collection::vec(inner.clone(), 2..5).prop_map(|v| v.join(" or ")),
            inner.clone().prop_map(|c| format!("not {c}")),
            inner.prop_map(|c| format!("({c})")),
        ]
    });
    let deep = || prop_oneof![4 => 0usize..200, 1 => 1_000usize..20_000];
    let nested =
        (tree.clone(), deep(), deep(), any::<bool>()).prop_map(|(c, depth, nots, balanced)| {
            let close = if balanced { depth } else { depth / 2 };
            format!(
                "{}{}{c}{}",
                "not ".repeat(nots),
                "(".repeat(depth),
                ")".repeat(close)
            )
        });
    let long = (tree.clone(), 1usize..500).prop_map(|(c, n)| vec![c; n].join(" and "));
    let stray =
        (tree.clone(), "[ -~]{0,12}", any::<prop::sample::Index>()).prop_map(|(c, junk, at)| {
            let mut cut = at.index(c.len() + 1);
            while !c.is_char_boundary(cut) {
                cut -= 1;
            }
            format!("{}{junk}{}", &c[..cut], &c[cut..])
        });
    prop_oneof![6 => tree, 2 => nested, 1 => long, 2 => stray, 1 => "\\PC{0,40}"]
}

/// `text` as a TOML basic string, quotes included.
pub fn toml_string(text: &str) -> String {
    let mut out = String::from("\"");
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
