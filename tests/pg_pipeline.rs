//! One pipeline per run kept in PostgreSQL, through the real binary: an
//! engine started with another pipeline is refused while the run is served,
//! naming the difference, and the serving engine goes on; an engine started
//! without a file serves the run with its pipeline; decisions and figures
//! work from an empty state folder with the run's pipeline. Skipped without
//! PostgreSQL (unless `BATON_REQUIRE_PG=1`).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;
#[path = "support/pg_fleet.rs"]
mod pg_fleet;

use cli::{Sandbox, wait_for};
use pg_cluster::cluster;
use pg_fleet::{at, count, engine, query, sandbox, wait_for_tasks};
use serde_json::Value;

/// Three phases on a simulated agent that always succeeds.
fn pipeline(latency: &str, concurrency: usize) -> String {
    format!(
        r#"name = "one-pipeline"

[defaults]
concurrency = {concurrency}

[agents.sim]
kind = "sim"
latency = "{latency}"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "sim"

[[phases]]
id = "b"
agent = "sim"

[[phases]]
id = "c"
agent = "sim"
"#
    )
}

fn completed(db: &str) -> i64 {
    count(
        db,
        "SELECT count(*) AS n FROM baton.tasks WHERE state = 'completed'",
    )
}

fn run_pipeline_text(db: &str) -> String {
    query(
        db,
        "SELECT value FROM baton.meta WHERE key = 'pipeline_text'",
    )[0]["value"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn an_engine_with_another_pipeline_is_refused_naming_the_difference_while_the_run_is_served() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = sandbox(&pipeline("20ms..40ms", 2), 30);
    let mut first = engine(
        &db,
        Some(&sb.path("pipeline.toml")),
        &sb.path("e1"),
        Some(&sb.path("tasks.jsonl")),
        true,
        None,
    );
    wait_for("the run to keep its pipeline", || {
        let rows = query(
            &db,
            "SELECT count(*) AS n FROM information_schema.tables \
             WHERE table_schema = 'baton' AND table_name = 'meta'",
        );
        (rows[0]["n"] == 1
            && !query(
                &db,
                "SELECT 1 AS n FROM baton.meta WHERE key = 'pipeline_text'",
            )
            .is_empty())
        .then_some(())
    });
    let other = sb.write("other.toml", &pipeline("1ms..2ms", 2));
    let refused = engine(&db, Some(&other), &sb.path("e2"), None, true, None).wait();
    assert_eq!(refused.code(), 2, "{refused}");
    for said in [
        "this pipeline is not the run's, and an engine serves the run in ",
        &format!("pid {}", first.pid()),
        "agents.sim.latency: here \"1ms..2ms\", in the run \"20ms..40ms\"",
        "line 8: here `latency = \"1ms..2ms\"`, in the run `latency = \"20ms..40ms\"`",
        "leaving the file out (`baton run --headless --state-dir",
        "?schema=NAME",
    ] {
        assert!(refused.stderr.contains(said), "says {said:?}\n{refused}");
    }
    // Comments and spacing are no difference.
    let commented = sb.write(
        "commented.toml",
        &format!("# the same pipeline\n{}", pipeline("20ms..40ms", 2)).replace(" = ", "   =   "),
    );
    let same = engine(&db, Some(&commented), &sb.path("e3"), None, false, None).wait();
    assert_eq!(same.code(), 0, "{same}");
    // The first goes on, and finishes the run.
    wait_for("every task to complete", || {
        (completed(&db) == 30).then_some(())
    });
    assert!(!first.has_exited(), "the first engine serves on");
    first.signal(libc::SIGTERM);
    first.wait();
    assert_eq!(
        run_pipeline_text(&db),
        pipeline("20ms..40ms", 2),
        "the run's pipeline is the first engine's"
    );
    // Once no engine serves the run, another pipeline becomes the run's.
    let alone = engine(&db, Some(&other), &sb.path("e2"), None, false, None).wait();
    assert_eq!(alone.code(), 0, "{alone}");
    assert!(
        alone.stderr.contains("no engine serves the run in ")
            && alone.stderr.contains("this pipeline becomes the run's"),
        "{alone}"
    );
    assert_eq!(run_pipeline_text(&db), pipeline("1ms..2ms", 2));
}

#[test]
fn an_engine_without_a_file_serves_the_run_with_its_pipeline() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = sandbox(&pipeline("20ms..30ms", 2), 80);
    let first = engine(
        &db,
        Some(&sb.path("pipeline.toml")),
        &sb.path("e1"),
        Some(&sb.path("tasks.jsonl")),
        false,
        None,
    );
    wait_for_tasks(&db, &sb.path("reader"), 80);
    // Another machine: no pipeline file, an empty state folder.
    let elsewhere = Sandbox::new();
    let second = engine(&db, None, &elsewhere.path("e2"), None, false, None);
    let second_pid = second.pid();
    let second = second.wait();
    first.wait().expect(0);
    second.expect(0);
    assert!(
        second
            .stderr
            .contains("one-pipeline: going on with the pipeline kept with the run in "),
        "{second}"
    );
    assert_eq!(completed(&db), 80);
    let commits = query(
        &db,
        &format!("SELECT commits FROM baton.engines WHERE pid = {second_pid}"),
    );
    assert!(
        commits[0]["commits"].as_i64() > Some(1),
        "the engine without a file did part of the work: {commits:?}"
    );
    // Its folder keeps the run's pipeline, for its own use.
    assert_eq!(
        std::fs::read_to_string(elsewhere.path("e2").join("pipeline.toml")).unwrap(),
        pipeline("20ms..30ms", 2)
    );
}

#[test]
fn decisions_and_figures_from_an_empty_state_folder_use_the_runs_pipeline() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let text = r#"name = "asks"

[run_budget]
usd = 7.5

[agents.ask]
kind = "sim"
model = "claude-sonnet-4-5"
tokens = "100..100"
latency = "0ms..0ms"
review_rate = 1.0
fail_rate = 0.0
block_rate = 0.0

[agents.sim]
kind = "sim"
model = "claude-sonnet-4-5"
tokens = "100..100"
latency = "0ms..0ms"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "draft"
agent = "ask"

[[phases]]
id = "sign"
agent = "sim"
"#;
    let sb = sandbox(text, 2);
    let ran = engine(
        &db,
        Some(&sb.path("pipeline.toml")),
        &sb.path("e1"),
        Some(&sb.path("tasks.jsonl")),
        false,
        None,
    )
    .wait();
    assert_eq!(ran.code(), 3, "the tasks wait for review\n{ran}");
    // Another machine, no engine running, an empty folder.
    let elsewhere = Sandbox::new();
    let empty = elsewhere.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let stats = at(&db, &empty, &["stats", "--json"]);
    let stats: Value = serde_json::from_str(&stats.expect(0).stdout).unwrap();
    assert_eq!(stats["spend"]["budget_usd"], 7.5, "{stats}");
    let approved = at(&db, &empty, &["approve", "t0001", "--note", "fine"]);
    approved.expect(0);
    assert!(
        approved.stdout.contains("approve: recorded for task t0001"),
        "{approved}"
    );
    let shown = at(&db, &empty, &["show", "t0001", "--json"]);
    let task: Value = serde_json::from_str(&shown.expect(0).stdout).unwrap();
    assert_ne!(task["state"], "awaiting_review", "{task}");
    // The next engine, anywhere, carries the decision on.
    let again = engine(&db, None, &elsewhere.path("e2"), None, false, None).wait();
    assert_eq!(again.code(), 3, "t0002 still waits\n{again}");
    let shown = at(&db, &empty, &["show", "t0001", "--json"]);
    let task: Value = serde_json::from_str(&shown.expect(0).stdout).unwrap();
    assert_eq!(task["state"], "completed", "{task}");
}
