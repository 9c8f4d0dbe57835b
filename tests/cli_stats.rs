//! `baton stats` through the binary, on a run of simulated agents with
//! failures, retries, fatal errors, blockers, routed models, an unpriced
//! model and a skipped phase: every figure is checked against a recount
//! from `baton show TASK --json` of every task, and the run's budget (raised
//! after the run) is shown beside the projection.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;

use cli::{Sandbox, str_at};
use serde_json::{Value, json};

const TASKS: usize = 300;

const PIPELINE: &str = r#"
name = "stats-test"

[defaults]
concurrency = 16
retry = { max_attempts = 3, initial_delay = "1ms", max_delay = "5ms" }

[agents.planner]
kind = "sim"
latency = "1ms..20ms"
tokens = "100..900"
fail_rate = 0.15
model = "claude-sonnet-4-5"
seed = 3

[agents.coder]
kind = "sim"
latency = "2ms..40ms"
tokens = "500..3000"
fail_rate = 0.1
fatal_rate = 0.03
block_rate = 0.03
model = "gpt-5"
seed = 5
[[agents.coder.route]]
when = "input.priority == 'high'"
model = "claude-opus-4-5"
[[agents.coder.route]]
model = "claude-haiku-4-5"

[agents.gate]
kind = "sim"
latency = "1ms..10ms"
tokens = "50..200"
fail_rate = 0.1
model = "house-lint-1"
seed = 9

[[phases]]
id = "plan"
agent = "planner"

[[phases]]
id = "implement"
agent = "coder"

[[phases]]
id = "docs"
agent = "planner"
after = ["plan"]
when = ["docs"]

[[phases]]
id = "check"
agent = "gate"
after = ["implement", "docs"]
"#;

/// The figures of one phase, agent and model, recounted from tasks.
#[derive(Debug, Default, Clone, PartialEq)]
struct Recount {
    attempts: u64,
    succeeded: u64,
    blocked: u64,
    failed: BTreeMap<String, u64>,
    interrupted: u64,
    cancelled: u64,
    input_tokens: u64,
    output_tokens: u64,
    cost_usd: f64,
    cost_unknown: u64,
    durations: Vec<u64>,
}

impl Recount {
    fn add(&mut self, a: &Value) {
        let outcome = &a["outcome"];
        self.attempts += 1;
        let result = str_at(outcome, "result");
        match result.as_str() {
            "succeeded" | "review_requested" => self.succeeded += 1,
            "blocked" => self.blocked += 1,
            "failed" => *self.failed.entry(str_at(outcome, "class")).or_default() += 1,
            "interrupted" => self.interrupted += 1,
            "cancelled" => self.cancelled += 1,
            other => panic!("unknown outcome {other}"),
        }
        if !matches!(result.as_str(), "interrupted" | "cancelled") {
            self.durations
                .push(a["duration_ms"].as_u64().expect("a duration"));
        }
        let usage = &a["usage"];
        if usage.is_object() {
            self.input_tokens += usage["input_tokens"].as_u64().unwrap_or(0);
            self.output_tokens += usage["output_tokens"].as_u64().unwrap_or(0);
        }
        if usage.is_object() || !a["cost_usd"].is_null() {
            match a["cost_usd"].as_f64() {
                Some(c) => self.cost_usd += c,
                None => self.cost_unknown += 1,
            }
        }
    }

    fn merge(&mut self, o: &Recount) {
        self.attempts += o.attempts;
        self.succeeded += o.succeeded;
        self.blocked += o.blocked;
        for (k, v) in &o.failed {
            *self.failed.entry(k.clone()).or_default() += v;
        }
        self.interrupted += o.interrupted;
        self.cancelled += o.cancelled;
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.cost_usd += o.cost_usd;
        self.cost_unknown += o.cost_unknown;
        self.durations.extend(&o.durations);
    }

    /// The exact value of rank ⌈p·n⌉, as the histogram reads it.
    fn percentile(&self, p: f64) -> Option<u64> {
        let mut v = self.durations.clone();
        if v.is_empty() {
            return None;
        }
        v.sort_unstable();
        let rank = ((p * v.len() as f64).ceil() as usize).clamp(1, v.len());
        Some(v[rank - 1])
    }
}

/// Checks `figures` (a phase's, or an agent's and model's) against `want`.
fn check(what: &str, figures: &Value, want: &Recount) {
    let n = |k: &str| {
        figures[k]
            .as_u64()
            .unwrap_or_else(|| panic!("{what}: no {k}"))
    };
    assert_eq!(n("attempts"), want.attempts, "{what}: attempts");
    assert_eq!(n("succeeded"), want.succeeded, "{what}: succeeded");
    assert_eq!(n("blocked"), want.blocked, "{what}: blocked");
    assert_eq!(n("interrupted"), want.interrupted, "{what}: interrupted");
    assert_eq!(n("cancelled"), want.cancelled, "{what}: cancelled");
    let failed: BTreeMap<String, u64> = figures["failed"]
        .as_object()
        .expect("failed by class")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .filter(|(_, v)| *v > 0)
        .collect();
    assert_eq!(failed, want.failed, "{what}: failures by class");
    assert_eq!(
        n("failed_total"),
        want.failed.values().sum::<u64>(),
        "{what}: failed_total"
    );
    assert_eq!(
        figures["tokens"]["input"].as_u64(),
        Some(want.input_tokens),
        "{what}: input tokens"
    );
    assert_eq!(
        figures["tokens"]["output"].as_u64(),
        Some(want.output_tokens),
        "{what}: output tokens"
    );
    let usd = figures["cost_usd"].as_f64().unwrap();
    assert!(
        (usd - want.cost_usd).abs() < 1e-6,
        "{what}: dollars {usd} vs {}",
        want.cost_usd
    );
    assert_eq!(n("cost_unknown"), want.cost_unknown, "{what}: cost_unknown");
    for (key, p) in [("p50", 0.50), ("p95", 0.95)] {
        let got = figures["duration_ms"][key].as_u64();
        let exact = want.percentile(p);
        match (got, exact) {
            (Some(g), Some(e)) => assert!(
                (g as f64 - e as f64).abs() <= e as f64 / 16.0,
                "{what}: {key} {g} ms, exact {e} ms: off by more than the histogram's 1/16"
            ),
            (g, e) => assert_eq!(g, e, "{what}: {key}"),
        }
    }
}

fn inputs() -> Vec<Value> {
    (0..TASKS)
        .map(|i| {
            let priority = if i % 5 == 0 { "high" } else { "low" };
            let docs = if i % 3 == 0 { json!(true) } else { json!(null) };
            json!({"id": format!("S-{i:03}"), "priority": priority, "docs": docs})
        })
        .collect()
}

#[test]
fn stats_agree_with_a_recount_of_every_task() {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", PIPELINE);
    sandbox.inputs(&inputs());
    let out = sandbox.run();
    assert!(
        matches!(out.code(), 0 | 1 | 3),
        "the run ends with tasks done, failed or blocked\n{out}"
    );
    // A run budget from a raise (a configured one would hold every task at
    // the first attempt of unknown cost).
    sandbox.cli(&["budget", "--usd", "100"]).expect(0);

    let stats = sandbox.cli(&["stats", "--json"]);
    stats.expect(0);
    let stats: Value = serde_json::from_str(&stats.stdout)
        .unwrap_or_else(|e| panic!("stats --json is not JSON: {e}\n{stats}"));

    // The recount, from every task as `show` gives it.
    let phases = ["plan", "implement", "docs", "check"];
    let mut by_key: BTreeMap<(String, String, String), Recount> = BTreeMap::new();
    let mut left: BTreeMap<String, u64> = BTreeMap::new();
    let mut ends: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let mut states: BTreeMap<String, u64> = BTreeMap::new();
    let rows = sandbox.list();
    assert_eq!(rows.len(), TASKS);
    for row in &rows {
        let task = sandbox.show(&str_at(row, "id"));
        let state = str_at(&task, "state");
        *states.entry(state.clone()).or_default() += 1;
        let done = matches!(state.as_str(), "completed" | "failed" | "cancelled");
        for p in task["phases"].as_array().unwrap() {
            let id = str_at(p, "id");
            let phase_state = str_at(p, "state");
            let e = ends.entry(id.clone()).or_default();
            match phase_state.as_str() {
                "skipped" => e.0 += 1,
                "failed" => e.1 += 1,
                _ => {}
            }
            if !done && !matches!(phase_state.as_str(), "completed" | "skipped" | "failed") {
                *left.entry(id.clone()).or_default() += 1;
            }
            for a in p["attempts"].as_array().into_iter().flatten() {
                if a["outcome"].is_null() {
                    continue;
                }
                let model = a["model"]
                    .as_str()
                    .or_else(|| a["usage"]["model"].as_str())
                    .unwrap_or("")
                    .to_string();
                by_key
                    .entry((id.clone(), str_at(a, "agent"), model))
                    .or_default()
                    .add(a);
            }
        }
    }

    // The run had what the figures must tell apart.
    let all = by_key.values().fold(Recount::default(), |mut acc, r| {
        acc.merge(r);
        acc
    });
    for class in ["retryable", "fatal"] {
        assert!(
            all.failed.get(class).is_some_and(|n| *n > 0),
            "no {class} failure"
        );
    }
    assert!(all.blocked > 0 && all.cost_unknown > 0, "{all:?}");
    assert!(ends["docs"].0 > 0, "docs is skipped without input.docs");

    let json_phases = stats["phases"].as_array().unwrap();
    let names: Vec<String> = json_phases.iter().map(|p| str_at(p, "phase")).collect();
    assert_eq!(names, phases, "phases in pipeline order");
    for p in json_phases {
        let phase = str_at(p, "phase");
        let mut total = Recount::default();
        let mut seen = 0;
        for a in p["by_agent"].as_array().unwrap() {
            let key = (phase.clone(), str_at(a, "agent"), str_at(a, "model"));
            let want = by_key
                .get(&key)
                .unwrap_or_else(|| panic!("{key:?} is not in the recount"));
            check(&format!("{key:?}"), a, want);
            total.merge(want);
            seen += 1;
        }
        let recounted = by_key.keys().filter(|(ph, _, _)| *ph == phase).count();
        assert_eq!(seen, recounted, "{phase}: every agent and model is listed");
        check(&phase, p, &total);
        let (skipped, failed) = ends.get(&phase).copied().unwrap_or_default();
        assert_eq!(
            p["passes"].as_u64(),
            Some(total.succeeded + skipped + failed),
            "{phase}: passes"
        );
        assert_eq!(
            p["tasks_left"].as_u64(),
            Some(left.get(&phase).copied().unwrap_or(0)),
            "{phase}: tasks left"
        );
    }
    let implement = &json_phases[1]["by_agent"];
    let models: Vec<String> = implement
        .as_array()
        .unwrap()
        .iter()
        .map(|a| str_at(a, "model"))
        .collect();
    assert!(
        models.contains(&"claude-opus-4-5".to_string())
            && models.contains(&"claude-haiku-4-5".to_string()),
        "routed models are apart: {models:?}"
    );

    // Tasks, the projection and the budget.
    let count = |s: &str| states.get(s).copied().unwrap_or(0);
    assert_eq!(stats["tasks"]["total"], TASKS);
    assert_eq!(stats["tasks"]["completed"], count("completed"));
    assert_eq!(stats["tasks"]["failed"], count("failed"));
    let not_done = TASKS as u64 - count("completed") - count("failed") - count("cancelled");
    assert_eq!(stats["tasks"]["not_done"], not_done);
    assert!(not_done > 0, "blocked tasks wait: {states:?}");
    let pr = &stats["projection"];
    let sum = |key: &str| -> f64 {
        pr["phases"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|p| p[key].as_f64())
            .sum()
    };
    let p50 = pr["p50_usd"].as_f64().unwrap();
    let p95 = pr["p95_usd"].as_f64().unwrap();
    assert!(
        (p50 - sum("p50_usd")).abs() < 1e-9,
        "the phases' p50s add up"
    );
    assert!(p50 > 0.0 && p95 > p50, "{pr}");
    let spend = &stats["spend"];
    assert_eq!(spend["budget_usd"].as_f64(), Some(100.0));
    let spent = spend["spent_usd"].as_f64().unwrap();
    assert!(
        (spent - all.cost_usd).abs() < 1e-6,
        "spent {spent} vs {}",
        all.cost_usd
    );
    assert!((spend["p50_total_usd"].as_f64().unwrap() - (spent + p50)).abs() < 1e-9);

    let text = sandbox.cli(&["stats"]);
    text.expect(0);
    for part in [
        "PHASE / AGENT·MODEL",
        "implement",
        "TO FINISH",
        "run budget     $100.0000",
    ] {
        assert!(text.stdout.contains(part), "{part:?} missing:\n{text}");
    }
    // Every line fits 80 columns but the one naming the folder.
    for line in text.stdout.lines().filter(|l| !l.starts_with("pipeline ")) {
        assert!(
            line.chars().count() <= 80,
            "wider than 80 columns: {line:?}"
        );
    }
}

#[test]
fn stats_explain_a_missing_state_folder() {
    let sandbox = Sandbox::new();
    let out = sandbox.cli(&["stats"]);
    out.expect(2);
    assert!(out.stderr.contains("no state folder"), "{out}");
}
