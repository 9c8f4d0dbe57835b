//! Limits hold across a fleet, not per engine: three engines on one run in
//! PostgreSQL never run more tasks at once than the pipeline's
//! `concurrency`, nor more attempts of an agent than its `max_parallel`,
//! nor start more attempts of an agent in a window than its `rpm`. Checked
//! from the run's events, whichever engine recorded them; and engines
//! whose clocks disagree by hours share a run without taking each other's
//! tasks (leases go by the database's clock). A run budget holds across
//! the fleet for the items of a `for_each` phase as for phases. Skipped
//! without PostgreSQL (unless `BATON_REQUIRE_PG=1`).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;
#[path = "support/pg_fleet.rs"]
mod pg_fleet;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use baton::store::Place;
use baton::{Engine, EngineOptions, InputTask, Pipeline};
use cli::Sandbox;
use pg_cluster::cluster;
use pg_fleet::{engine, query, three_engines, wait_for_tasks};
use serde_json::{Value, json};

/// Engines in this process on the run at `db`, one per `options` (its
/// store set to the run), each in a state folder of its own; the first
/// submits `tasks` tasks, each with `input`. Returns once every engine has
/// ended.
fn run_in_process(
    sb: &Sandbox,
    db: &str,
    file: &Path,
    options: Vec<EngineOptions>,
    tasks: usize,
    input: Value,
) {
    let place = Place::parse(Some(db)).unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let mut running = Vec::new();
        for (n, opts) in options.into_iter().enumerate() {
            let opts = EngineOptions {
                store: place.clone(),
                ..opts
            };
            let pipeline = Pipeline::from_file(file).unwrap();
            let dir = sb.path(&format!("e{n}"));
            let mut engine = tokio::task::spawn_blocking(move || {
                Engine::open(pipeline, &dir, opts).expect("an engine on the run")
            })
            .await
            .unwrap();
            if n == 0 {
                let inputs = (1..=tasks)
                    .map(|i| InputTask::new(format!("t{i:03}"), input.clone()))
                    .collect();
                engine.submit(inputs).await.unwrap();
            }
            running.push(tokio::spawn(engine.run()));
        }
        for r in running {
            r.await.unwrap().expect("the engine ends well");
        }
    });
}

/// The rate limits' window in these tests: a second, so that a test sees
/// several.
const WINDOW: Duration = Duration::from_millis(1000);

/// Options for three engines whose rate limits count per `WINDOW`.
fn three_windowed() -> Vec<EngineOptions> {
    (0..3)
        .map(|_| EngineOptions {
            rate_window: WINDOW,
            ..EngineOptions::default()
        })
        .collect()
}

/// Attempts started per window of `window`, by the times their events
/// carry: phases' (`phase_started`) or items' (`item_started`).
fn starts_per_window(db: &str, window: Duration, kind: &str) -> Vec<i64> {
    query(
        db,
        &format!(
            "SELECT floor(extract(epoch FROM at::timestamptz) * 1000 / {})::bigint AS w, count(*) AS n \
             FROM baton.events WHERE kind = '{kind}' GROUP BY 1 ORDER BY 1",
            window.as_millis()
        ),
    )
    .iter()
    .map(|r| r["n"].as_i64().unwrap())
    .collect()
}

/// The most attempts under way at once, by the times the events carry:
/// each attempt from its start to its end; `agent` narrows to one agent.
fn most_at_once(db: &str, agent: Option<&str>) -> usize {
    let rows = query(
        db,
        "SELECT e.task, e.kind, e.at, e.body::json->>'phase' AS phase, \
                e.body::json->>'agent' AS agent \
         FROM baton.events e WHERE e.kind IN ('phase_started', 'attempt_finished') ORDER BY e.seq",
    );
    // An attempt's agent is named by its start only.
    let mut agent_of: BTreeMap<(i64, String), String> = BTreeMap::new();
    let mut edges: Vec<(String, i32)> = Vec::new();
    for r in &rows {
        let key = (
            r["task"].as_i64().unwrap(),
            r["phase"].as_str().unwrap().to_string(),
        );
        let at = r["at"].as_str().unwrap().to_string();
        let who = if r["kind"] == "phase_started" {
            let a = r["agent"].as_str().unwrap_or("").to_string();
            agent_of.insert(key.clone(), a.clone());
            a
        } else {
            agent_of.get(&key).cloned().unwrap_or_default()
        };
        if agent.is_some_and(|want| want != who) {
            continue;
        }
        // Ends sort before starts at the same instant.
        edges.push((at, if r["kind"] == "phase_started" { 1 } else { -1 }));
    }
    edges.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut now, mut most) = (0i32, 0i32);
    for (_, d) in edges {
        now += d;
        most = most.max(now);
    }
    most as usize
}

#[test]
fn concurrency_and_max_parallel_hold_across_three_engines() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    sb.write(
        "pipeline.toml",
        r#"
name = "limits"

[defaults]
concurrency = 6

[agents.quick]
kind = "sim"
latency = "80ms..120ms"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[agents.scarce]
kind = "sim"
latency = "80ms..120ms"
max_parallel = 2
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "quick"

[[phases]]
id = "b"
agent = "scarce"
"#,
    );
    let tasks: Vec<Value> = (1..=150)
        .map(|i| json!({"id": format!("t{i:03}")}))
        .collect();
    sb.inputs(&tasks);
    let start = |name: &str, input: bool| {
        let tasks = sb.path("tasks.jsonl");
        engine(
            &db,
            Some(&sb.path("pipeline.toml")),
            &sb.path(name),
            input.then_some(tasks.as_path()),
            false,
            Some("5"),
        )
    };
    let first = start("e1", true);
    // The others join once the tasks are in the run.
    wait_for_tasks(&db, &sb.path("reader"), 150);
    let engines = [first, start("e2", false), start("e3", false)];
    for e in engines {
        e.wait().expect(0);
    }
    let done = query(
        &db,
        "SELECT count(*) AS n FROM baton.tasks WHERE state = 'completed'",
    );
    assert_eq!(done[0]["n"], 150);
    let engines_that_worked = query(
        &db,
        "SELECT count(*) AS n FROM baton.engines WHERE commits > 1",
    );
    assert!(
        engines_that_worked[0]["n"].as_i64() >= Some(2),
        "the work was shared"
    );
    let all = most_at_once(&db, None);
    assert!(all <= 6, "{all} attempts at once; concurrency is 6");
    assert!(all >= 2, "the engines ran side by side ({all})");
    let scarce = most_at_once(&db, Some("scarce"));
    assert!(
        scarce <= 2,
        "{scarce} attempts of scarce at once; its max_parallel is 2"
    );
}

#[test]
fn an_agents_rpm_holds_across_three_engines_in_every_window() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    let file = sb.write(
        "pipeline.toml",
        r#"
name = "rpm"

[defaults]
concurrency = 30

[agents.metered]
kind = "sim"
latency = "0ms..0ms"
rpm = 10
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "metered"
"#,
    );
    run_in_process(&sb, &db, &file, three_windowed(), 45, json!({}));
    let counts = starts_per_window(&db, WINDOW, "phase_started");
    assert_eq!(counts.iter().sum::<i64>(), 45, "{counts:?}");
    assert!(
        counts.iter().all(|&n| n <= 10),
        "no window starts more than the rpm of 10: {counts:?}"
    );
    assert!(
        counts.iter().filter(|&&n| n == 10).count() >= 2,
        "the limit is used, not just kept: {counts:?}"
    );
}

#[test]
fn an_agents_rpm_holds_across_three_engines_for_the_items_of_a_fan_out() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    let file = sb.write(
        "pipeline.toml",
        r#"
name = "rpm-items"

[defaults]
concurrency = 3

[agents.metered]
kind = "sim"
latency = "0ms..0ms"
rpm = 10
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "scenes"
agent = "metered"
for_each = "input.scenes"
"#,
    );
    run_in_process(
        &sb,
        &db,
        &file,
        three_windowed(),
        15,
        json!({"scenes": [1, 2, 3]}),
    );
    let counts = starts_per_window(&db, WINDOW, "item_started");
    assert_eq!(counts.iter().sum::<i64>(), 45, "{counts:?}");
    assert!(
        counts.iter().all(|&n| n <= 10),
        "no window starts more items than the rpm of 10: {counts:?}"
    );
    let worked = query(
        &db,
        "SELECT count(*) AS n FROM baton.engines WHERE commits > 1",
    );
    assert!(
        worked[0]["n"].as_i64() >= Some(2),
        "the engines shared the work"
    );
}

#[test]
fn a_run_budget_holds_across_three_engines() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    // Each attempt uses 175 tokens (100 out, 75 in): the budget is twenty.
    sb.write(
        "pipeline.toml",
        r#"
name = "budget"

[defaults]
concurrency = 6

[run_budget]
tokens = 3500

[agents.sim]
kind = "sim"
latency = "30ms..50ms"
tokens = "100..100"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "sim"
"#,
    );
    let tasks: Vec<Value> = (1..=100)
        .map(|i| json!({"id": format!("t{i:03}")}))
        .collect();
    sb.inputs(&tasks);
    let start = |name: &str, input: bool| {
        let tasks = sb.path("tasks.jsonl");
        engine(
            &db,
            Some(&sb.path("pipeline.toml")),
            &sb.path(name),
            input.then_some(tasks.as_path()),
            false,
            None,
        )
    };
    // The others join once the tasks are in the run (an engine that finds
    // the run empty ends at once).
    let first = start("e1", true);
    wait_for_tasks(&db, &sb.path("reader"), 100);
    let engines = [first, start("e2", false), start("e3", false)];
    for e in engines {
        // Tasks wait for a person once the budget is reached.
        let out = e.wait();
        assert!(matches!(out.code(), 0 | 3), "{out}");
    }
    let started = query(
        &db,
        "SELECT count(*) AS n FROM baton.events WHERE kind = 'phase_started'",
    );
    let tokens = query(&db, "SELECT sum(tokens)::bigint AS n FROM baton.tasks");
    assert_eq!(
        (started[0]["n"].as_i64(), tokens[0]["n"].as_i64()),
        (Some(20), Some(3500)),
        "the twenty attempts the budget allows, across the engines"
    );
    let held = query(
        &db,
        "SELECT count(*) AS n FROM baton.holds WHERE reason LIKE '%reached%'",
    );
    assert_eq!(held[0]["n"], 80, "every other task waits on the budget");
}

#[test]
fn a_run_budget_holds_across_three_engines_running_fan_outs() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    // Each item's attempt uses 175 tokens (100 out, 75 in): the budget is
    // twenty, and 30 tasks have three items each.
    let file = sb.write(
        "pipeline.toml",
        r#"
name = "fan-out-budget"

[defaults]
concurrency = 6

[run_budget]
tokens = 3500

[agents.sim]
kind = "sim"
latency = "150ms..250ms"
tokens = "100..100"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "scenes"
agent = "sim"
for_each = "input.scenes"
max_items_in_flight = 2
"#,
    );
    // A first task on its own gives the fleet its average per attempt, by
    // which every later attempt reserves (before any attempt ended, one
    // reserves nothing, as one engine estimates nothing for it).
    let warm = sb.write("warm.jsonl", "{\"id\": \"w\", \"scenes\": [0]}\n");
    engine(&db, Some(&file), &sb.path("e0"), Some(&warm), false, None)
        .wait()
        .expect(0);
    let tasks: Vec<Value> = (1..=30)
        .map(|i| json!({"id": format!("t{i:03}"), "scenes": [1, 2, 3]}))
        .collect();
    sb.inputs(&tasks);
    let mut engines = three_engines(&sb, &db, false, None).into_iter();
    // Tasks wait for a person once the budget is reached.
    engines.next().unwrap().wait().expect(3);
    for e in engines {
        e.signal(libc::SIGTERM);
        e.wait();
    }
    let n = |sql: &str| query(&db, sql)[0]["n"].as_i64().unwrap();
    let items = n("SELECT count(*) AS n FROM baton.events WHERE kind = 'item_started'");
    let tokens = n("SELECT sum(tokens)::bigint AS n FROM baton.tasks");
    assert_eq!(
        (items, tokens),
        (20, 3500),
        "the twenty item attempts the budget allows, across the engines"
    );
    let by_engine = query(
        &db,
        "SELECT count(*) AS n FROM baton.engines WHERE commits > 1",
    );
    assert!(
        by_engine[0]["n"].as_i64() >= Some(3),
        "the engines shared the work"
    );
    // The rest waits for the budget, as on one engine: every task not
    // completed is held for it, none failed.
    let open = n("SELECT count(*) AS n FROM baton.tasks WHERE state <> 'completed'");
    let held = n(
        "SELECT count(*) AS n FROM baton.tasks t WHERE state = 'awaiting_review' \
                  AND EXISTS (SELECT 1 FROM baton.holds h WHERE h.task = t.ord \
                              AND h.reason LIKE '%reached%')",
    );
    assert!(open > 0);
    assert_eq!(held, open, "every task left waits on the budget");
}

#[test]
fn an_agents_tpm_holds_across_three_engines_but_for_attempts_under_way() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    // 175 tokens an attempt; ten attempts' worth a window.
    let file = sb.write(
        "pipeline.toml",
        r#"
name = "tpm"

[defaults]
concurrency = 3

[agents.metered]
kind = "sim"
latency = "10ms..10ms"
tokens = "100..100"
tpm = 1750
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "metered"
"#,
    );
    run_in_process(&sb, &db, &file, three_windowed(), 40, json!({}));
    // Attempts by the window they started in.
    let counts = starts_per_window(&db, WINDOW, "phase_started");
    assert_eq!(counts.iter().sum::<i64>(), 40, "{counts:?}");
    // Ten attempts fill a window; the attempts under way when it fills
    // (at most the concurrency of 3) may still take it over, as on one
    // engine.
    assert!(
        counts.iter().all(|&n| n <= 10 + 3),
        "no window goes past the tpm by more than the attempts under way: {counts:?}"
    );
    assert!(
        counts.len() >= 3,
        "the tpm spread the work over windows: {counts:?}"
    );
}

#[test]
fn engines_whose_clocks_disagree_by_hours_never_take_each_others_tasks() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    let file = sb.write(
        "pipeline.toml",
        r#"
name = "clocks"

[defaults]
concurrency = 8

[agents.sim]
kind = "sim"
latency = "20ms..40ms"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "sim"

[[phases]]
id = "b"
agent = "sim"
"#,
    );
    // One engine's clock two hours ahead, the other's two hours behind:
    // were leases judged by them, each would find every lease of the
    // other long expired, or its own never due.
    let skewed = [2, -2]
        .into_iter()
        .map(|hours| {
            let clock = std::sync::Arc::new(baton::engine::clock::SteppedClock::new());
            clock.step(jiff::SignedDuration::from_hours(hours));
            EngineOptions {
                clock,
                ..EngineOptions::default()
            }
        })
        .collect();
    run_in_process(&sb, &db, &file, skewed, 200, json!({}));
    let n = |sql: &str| query(&db, sql)[0]["n"].as_i64().unwrap();
    assert_eq!(
        n("SELECT count(*) AS n FROM baton.tasks WHERE state = 'completed'"),
        200
    );
    assert_eq!(
        n(
            "SELECT count(*) AS n FROM baton.events WHERE kind = 'attempt_finished' \
           AND body::json->'outcome'->>'result' = 'interrupted'"
        ),
        0,
        "no task was taken from a live engine"
    );
    assert_eq!(
        n("SELECT count(*) AS n FROM baton.engines WHERE commits > 1"),
        2,
        "both engines worked"
    );
}
