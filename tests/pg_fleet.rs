//! Several engines serving one run kept in PostgreSQL, through the real
//! binary: three engines share a thousand tasks and no phase completes
//! twice; an engine killed with SIGKILL loses its tasks to the others once
//! its lease runs out, and they run its open attempts again; two operators
//! deciding one task through different engines: one wins, the other is
//! told who holds it and what was decided. Skipped without PostgreSQL
//! (unless `BATON_REQUIRE_PG=1`).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;
#[path = "support/pg_fleet.rs"]
mod pg_fleet;

use cli::{Live, Sandbox, wait_for};
use pg_cluster::cluster;
use pg_fleet::{at, count, query, sandbox, wait_for_tasks};
use serde_json::Value;

/// Three phases on a simulated agent that always succeeds.
fn pipeline(latency: &str, concurrency: usize) -> String {
    format!(
        r#"
name = "fleet"

[defaults]
concurrency = {concurrency}

[agents.sim]
kind = "sim"
latency = "{latency}"
tokens = "100..100"
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

/// An engine in the state folder `name` of `sb`, on its pipeline.
fn start(sb: &Sandbox, db: &str, name: &str, input: bool, wait: bool, lease: &str) -> Live {
    let tasks = sb.path("tasks.jsonl");
    pg_fleet::engine(
        db,
        Some(&sb.path("pipeline.toml")),
        &sb.path(name),
        input.then_some(tasks.as_path()),
        wait,
        Some(lease),
    )
}

/// Successful attempts per task and phase beyond the first: none may be.
fn completed_twice(db: &str) -> Vec<Value> {
    query(
        db,
        "SELECT t.id, e.body::json->>'phase' AS phase, count(*) AS n \
         FROM baton.events e JOIN baton.tasks t ON t.ord = e.task \
         WHERE e.kind = 'attempt_finished' \
           AND e.body::json->'outcome'->>'result' = 'succeeded' \
         GROUP BY 1, 2 HAVING count(*) > 1",
    )
}

#[test]
fn three_engines_share_a_thousand_tasks_and_no_phase_completes_twice() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = sandbox(&pipeline("2ms..10ms", 16), 1000);
    let first = start(&sb, &db, "e1", true, false, "10");
    // The others join once the tasks are in the run.
    wait_for_tasks(&db, &sb.path("reader"), 1000);
    let second = start(&sb, &db, "e2", false, false, "10");
    let third = start(&sb, &db, "e3", false, false, "10");
    for e in [first, second, third] {
        let out = e.wait();
        out.expect(0);
        // Each engine's followers see every engine's events: it prints the
        // tasks the others finished too (the last few may come after it
        // ended).
        let seen: std::collections::HashSet<&str> = out
            .stdout
            .lines()
            .filter(|l| l.contains(" completed "))
            .filter_map(|l| l.split_whitespace().nth(1))
            .collect();
        assert!(
            seen.len() >= 900,
            "an engine followed the whole run: {} tasks seen\n{out}",
            seen.len()
        );
    }
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM baton.tasks WHERE state = 'completed'"
        ),
        1000
    );
    assert_eq!(completed_twice(&db), Vec::<Value>::new());
    // Nothing was interrupted, so every attempt that started ended once.
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM baton.events WHERE kind = 'attempt_finished'"
        ),
        3000
    );
    // Every engine did part of the work, and `baton fleet` lists them all
    // as stopped cleanly, holding nothing.
    let fleet = at(&db, &sb.path("reader"), &["fleet", "--all", "--json"]);
    let engines: Vec<Value> = serde_json::from_str(&fleet.expect(0).stdout).unwrap();
    assert_eq!(engines.len(), 3, "{fleet}");
    for e in &engines {
        assert!(e["stopped_at"].is_string(), "{e}");
        assert_eq!(e["tasks_held"], 0, "{e}");
    }
    let commits = query(&db, "SELECT commits FROM baton.engines");
    assert!(
        commits.iter().all(|c| c["commits"].as_i64() > Some(1)),
        "each engine committed work: {commits:?}"
    );
    // The run's totals are those of its tasks, whichever engine ran them.
    let summary: Value = serde_json::from_str(
        &at(&db, &sb.path("reader"), &["summary", "--json"])
            .expect(0)
            .stdout,
    )
    .unwrap();
    assert_eq!(summary["attempts"], 3000, "{summary}");
    let tokens = count(&db, "SELECT sum(tokens)::bigint AS n FROM baton.tasks");
    assert_eq!(summary["tokens"].as_i64(), Some(tokens), "{summary}");
}

#[test]
fn an_engine_killed_mid_run_loses_its_tasks_to_the_others_after_its_lease() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = sandbox(&pipeline("40ms..60ms", 8), 240);
    let first = start(&sb, &db, "e1", true, false, "2");
    wait_for_tasks(&db, &sb.path("reader"), 240);
    let doomed = start(&sb, &db, "e2", false, false, "2");
    let third = start(&sb, &db, "e3", false, false, "2");
    let doomed_pid = i64::from(doomed.pid());
    // Killed while it holds attempts under way.
    wait_for("the doomed engine to hold running tasks", || {
        (count(
            &db,
            &format!(
                "SELECT count(*) AS n FROM baton.tasks t JOIN baton.engines e ON e.id = t.owner \
                 WHERE e.pid = {doomed_pid} AND t.state = 'running'"
            ),
        ) > 0)
            .then_some(())
    });
    doomed.kill9();
    first.wait().expect(0);
    third.wait().expect(0);
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM baton.tasks WHERE state = 'completed'"
        ),
        240
    );
    assert_eq!(completed_twice(&db), Vec::<Value>::new());
    // Its open attempts were recorded as interrupted by the engine that
    // took the task over, and run again.
    let interrupted = count(
        &db,
        "SELECT count(*) AS n FROM baton.events WHERE kind = 'attempt_finished' \
         AND body::json->'outcome'->>'result' = 'interrupted'",
    );
    assert!(interrupted > 0, "the killed engine's attempts ran again");
    let fleet = at(&db, &sb.path("reader"), &["fleet", "--all", "--json"]);
    let engines: Vec<Value> = serde_json::from_str(&fleet.expect(0).stdout).unwrap();
    let dead = engines
        .iter()
        .find(|e| e["pid"].as_i64() == Some(doomed_pid))
        .expect("the killed engine is listed");
    assert_eq!(dead["live"], false, "{dead}");
    assert!(
        dead["stopped_at"].is_null(),
        "it never stopped cleanly: {dead}"
    );
    assert_eq!(dead["tasks_held"], 0, "its tasks were taken: {dead}");
}

#[test]
fn two_operators_deciding_one_task_through_two_engines_one_wins_the_other_is_told_who() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    // The first phase always asks for review; the second takes long, so
    // the approved task stays with the engine that took the decision.
    let pipeline = r#"
name = "fleet-review"

[agents.ask]
kind = "sim"
latency = "0ms..0ms"
review_rate = 1.0
fail_rate = 0.0
block_rate = 0.0

[agents.slow]
kind = "sim"
latency = "600s..600s"
fail_rate = 0.0

[[phases]]
id = "draft"
agent = "ask"

[[phases]]
id = "sign"
agent = "slow"
"#;
    let sb = sandbox(pipeline, 1);
    let one = start(&sb, &db, "e1", true, true, "10");
    let two = start(&sb, &db, "e2", false, true, "10");
    wait_for("the task to wait for review", || {
        let out = at(&db, &sb.path("reader"), &["show", "t0001", "--json"]);
        (out.code() == 0 && out.stdout.contains("\"awaiting_review\"")).then_some(())
    });
    // Both engines answer on their sockets.
    for (dir, e) in [("e1", &one), ("e2", &two)] {
        let mut waited = 0;
        while !(sb.path(dir).join("baton.sock").exists()
            || sb.path(dir).join("baton.sock.path").exists())
        {
            waited += 1;
            assert!(
                waited < 4500,
                "no control socket in {dir}: {:?}\n{}\n{}",
                std::fs::read_dir(sb.path(dir)).map(|d| d.count()),
                e.stdout_lines().join("\n"),
                e.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
    let first = at(&db, &sb.path("e1"), &["approve", "t0001"]);
    first.expect(0);
    let second = at(&db, &sb.path("e2"), &["approve", "t0001"]);
    assert_eq!(second.code(), 1, "the second decision is refused\n{second}");
    assert!(
        second.stderr.contains("held by engine")
            && second.stderr.contains(&format!("pid {}", one.pid()))
            && second.stderr.contains("approve by"),
        "names the engine that holds it and the decision taken\n{second}"
    );
    let task: Value = serde_json::from_str(
        &at(&db, &sb.path("reader"), &["show", "t0001", "--json"])
            .expect(0)
            .stdout,
    )
    .unwrap();
    let decisions = count(
        &db,
        "SELECT count(*) AS n FROM baton.events WHERE kind = 'decision_recorded'",
    );
    assert_eq!(decisions, 1, "one decision recorded: {task}");
    assert_eq!(task["state"], "running", "{task}");
    // Which engine runs it, from anywhere.
    let held_by = task["held_by"].as_str().unwrap_or_default();
    assert!(
        held_by.starts_with("engine ") && held_by.ends_with(&format!("pid {}", one.pid())),
        "{task}"
    );
    let text = at(&db, &sb.path("reader"), &["show", "t0001"]);
    assert!(
        text.expect(0)
            .stdout
            .contains(&format!("held by   {held_by}")),
        "{text}"
    );
    for e in [one, two] {
        e.signal(libc::SIGTERM);
        e.wait();
    }
}
