//! The shared step cache across a fleet, through the real binary: three
//! engines on one run in PostgreSQL run each key's attempt once between
//! them, the others' tasks waiting for it; an engine killed with SIGKILL
//! while it runs a key's attempt loses the key to another once its lease
//! runs out; a key's attempt that fails stores nothing, and a task waiting
//! on another engine runs its own; an output waiting for a person's review
//! holds its key until approved. A command agent logs every call, with
//! the pid of the engine that ran it. Skipped without PostgreSQL (unless
//! `BATON_REQUIRE_PG=1`).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;
#[path = "support/pg_fleet.rs"]
mod pg_fleet;

use std::collections::{BTreeMap, BTreeSet};

use cli::{Sandbox, wait_for};
use pg_cluster::cluster;
use pg_fleet::{Call, at, cache_agent, calls, count, query, three_engines};
use serde_json::{Value, json};

/// A cached `fetch` by `q`, then `use`, on the logging agent, `concurrency`
/// tasks at once across the fleet; `tasks` as given.
fn sandbox(concurrency: usize, tasks: &[Value]) -> Sandbox {
    sandbox_with(concurrency, "", tasks)
}

/// As [`sandbox`], with `fetch` settings of its own (`review = …`).
fn sandbox_with(concurrency: usize, fetch: &str, tasks: &[Value]) -> Sandbox {
    let sb = Sandbox::new();
    let agent = cache_agent(&sb, "a");
    sb.write(
        "pipeline.toml",
        &format!(
            r#"
name = "fleet-cache"

[defaults]
concurrency = {concurrency}

[[phases]]
id = "fetch"
agent = "a"
cache_key = "{{{{input.q}}}}"
{fetch}

[[phases]]
id = "use"
agent = "a"

{agent}"#
        ),
    );
    sb.inputs(tasks);
    sb
}

/// Task `t{n:02}` asking for `q`, whose `fetch` takes `fetch_ms`; `first`
/// says what the first `fetch` of its `q` in the fleet does.
fn task(n: usize, q: &str, fetch_ms: u64, first: &str) -> Value {
    json!({
        "id": format!("t{n:02}"), "q": q, "first": first,
        "sleep_ms": {"fetch": fetch_ms, "use": 50},
    })
}

/// The agent's calls of `phase` that logged `what`.
fn of<'a>(all: &'a [Call], what: &str, phase: &str) -> Vec<&'a Call> {
    all.iter()
        .filter(|c| c.what == what && c.phase == phase)
        .collect()
}

fn state_count(db: &str, state: &str) -> i64 {
    count(
        db,
        &format!("SELECT count(*) AS n FROM baton.tasks WHERE state = '{state}'"),
    )
}

fn events(db: &str, kind: &str) -> i64 {
    count(
        db,
        &format!("SELECT count(*) AS n FROM baton.events WHERE kind = '{kind}'"),
    )
}

/// Waits until every task of the run is `completed` or `failed`.
fn wait_until_settled(db: &str, tasks: i64) {
    wait_for("every task to settle", || {
        (state_count(db, "completed") + state_count(db, "failed") == tasks).then_some(())
    });
}

#[test]
fn three_engines_run_each_keys_attempt_once_between_them() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    // Four keys over 24 tasks, in turn: each engine takes two tasks at
    // first, so that some wait for a key another engine runs.
    let tasks: Vec<Value> = (1..=24)
        .map(|n| task(n, &format!("q{}", n % 4), 1500, "ok"))
        .collect();
    let sb = sandbox(6, &tasks);
    let mut engines = three_engines(&sb, &db, false, None).into_iter();
    let submitter = engines.next().unwrap();
    submitter.wait().expect(0);
    for e in engines {
        e.signal(libc::SIGTERM);
        e.wait();
    }
    assert_eq!(state_count(&db, "completed"), 24);
    let all = calls(&sb);
    let mut runs: BTreeMap<&str, Vec<&Call>> = BTreeMap::new();
    for c in of(&all, "start", "fetch") {
        runs.entry(c.q.as_str()).or_default().push(c);
    }
    let once: BTreeMap<&str, usize> = runs.iter().map(|(q, c)| (*q, c.len())).collect();
    assert_eq!(
        once,
        BTreeMap::from([("q0", 1), ("q1", 1), ("q2", 1), ("q3", 1)]),
        "each key's phase ran once across the fleet: {runs:#?}"
    );
    assert_eq!(
        events(&db, "phase_cached"),
        20,
        "every other task is cached"
    );
    // The tasks of a key were served on other engines than the one that
    // ran its attempt: the engine that runs a task's `use` holds it.
    let engine_of: BTreeMap<&str, u32> = of(&all, "start", "use")
        .iter()
        .map(|c| (c.task.as_str(), c.engine))
        .collect();
    let served_elsewhere = tasks
        .iter()
        .filter(|t| {
            let (id, q) = (t["id"].as_str().unwrap(), t["q"].as_str().unwrap());
            runs[q][0].task != id && engine_of[id] != runs[q][0].engine
        })
        .count();
    assert!(
        served_elsewhere > 0,
        "no task was served by another engine than its key's maker"
    );
    let engines: BTreeSet<u32> = engine_of.values().copied().collect();
    assert_eq!(engines.len(), 3, "the three engines shared the tasks");
    // Every claim ended with its key's entry.
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM baton.cache_claims"),
        0
    );
    let listed = at(&db, &sb.path("reader"), &["cache", "list", "--json"]);
    let entries: Vec<Value> = serde_json::from_str(&listed.expect(0).stdout).unwrap();
    let uses: u64 = entries.iter().map(|e| e["uses"].as_u64().unwrap()).sum();
    assert_eq!((entries.len(), uses), (4, 20), "{listed}");
}

#[test]
fn an_engine_killed_while_it_runs_a_keys_attempt_loses_the_key_after_its_lease() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    // One key; its first attempt hangs. Leases of two seconds.
    let tasks: Vec<Value> = (1..=6).map(|n| task(n, "q0", 300, "hang")).collect();
    let sb = sandbox(6, &tasks);
    let engines = three_engines(&sb, &db, true, Some("2"));
    // The engine that claimed the key runs its attempt.
    let (holder, hung) = wait_for("the key's attempt to run", || {
        let first = of(&calls(&sb), "start", "fetch")
            .first()
            .copied()
            .cloned()?;
        let claimed = query(
            &db,
            "SELECT e.pid FROM baton.cache_claims c JOIN baton.engines e ON e.id = c.engine",
        );
        let pid = claimed.first()?["pid"].as_u64()?;
        (pid == u64::from(first.engine)).then_some((first.engine, first.pid))
    });
    let (doomed, survivors): (Vec<_>, Vec<_>) =
        engines.into_iter().partition(|e| e.pid() == holder);
    for e in doomed {
        e.kill9();
    }
    // The killed engine's agent would sleep on.
    // SAFETY: a plain signal to a process this test's agent script started.
    unsafe {
        libc::kill(hung as libc::pid_t, libc::SIGKILL);
    }
    wait_until_settled(&db, 6);
    for e in survivors {
        e.signal(libc::SIGTERM);
        e.wait();
    }
    assert_eq!(state_count(&db, "completed"), 6);
    let all = calls(&sb);
    let started = of(&all, "start", "fetch");
    assert_eq!(
        started.len(),
        2,
        "the hung attempt, then one more: {all:#?}"
    );
    assert_ne!(started[1].engine, holder, "run again by a live engine");
    assert_eq!(of(&all, "done", "fetch").len(), 1);
    assert_eq!(events(&db, "phase_cached"), 5, "the others took its output");
    assert_eq!(
        count(
            &db,
            "SELECT count(*) AS n FROM baton.events WHERE kind = 'attempt_finished' \
             AND body::json->'outcome'->>'result' = 'interrupted'"
        ),
        1,
        "the killed engine's attempt, recorded by the engine that took its task"
    );
    let entry = query(&db, "SELECT task FROM baton.step_cache");
    assert_eq!(entry, [json!({"task": started[1].task})]);
}

#[test]
fn a_keys_failed_attempt_stores_nothing_and_a_task_on_another_engine_runs_its_own() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    // Three tasks with one key, one on each engine; the key's first
    // attempt fails (for good) after a while.
    let tasks: Vec<Value> = (1..=3).map(|n| task(n, "q0", 2000, "fail")).collect();
    let sb = sandbox(3, &tasks);
    let mut engines = three_engines(&sb, &db, false, None).into_iter();
    let submitter = engines.next().unwrap();
    // A task failed: everything is final, status 1.
    submitter.wait().expect(1);
    for e in engines {
        e.signal(libc::SIGTERM);
        e.wait();
    }
    let all = calls(&sb);
    let started = of(&all, "start", "fetch");
    assert_eq!(started.len(), 2, "{all:#?}");
    let (failed, rerun) = (started[0], started[1]);
    assert_eq!(of(&all, "failed", "fetch").len(), 1);
    assert_ne!(rerun.task, failed.task);
    assert_ne!(
        rerun.engine, failed.engine,
        "a task waiting on another engine ran its own attempt"
    );
    let states = query(&db, "SELECT id, state FROM baton.tasks ORDER BY id");
    for s in &states {
        let want = if s["id"] == failed.task.as_str() {
            "failed"
        } else {
            "completed"
        };
        assert_eq!(s["state"], want, "{states:?}");
    }
    assert_eq!(events(&db, "phase_cached"), 1);
    // Nothing of the failure was stored: the entry is the second attempt's.
    let entry = query(&db, "SELECT task, output FROM baton.step_cache");
    assert_eq!(entry.len(), 1);
    assert_eq!(entry[0]["task"], rerun.task.as_str());
    let output: Value = serde_json::from_str(entry[0]["output"].as_str().unwrap()).unwrap();
    assert_eq!(output["task"], rerun.task.as_str());
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM baton.cache_claims"),
        0
    );
}

#[test]
fn an_output_waiting_for_review_holds_its_key_until_a_person_approves_it() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    // Six tasks with one key, two on each engine; every fetch output waits
    // for a person.
    let tasks: Vec<Value> = (1..=6).map(|n| task(n, "q0", 300, "ok")).collect();
    let sb = sandbox_with(6, "review = \"always\"", &tasks);
    let engines = three_engines(&sb, &db, true, None);
    let made = wait_for("the key's output to wait for review", || {
        let done = of(&calls(&sb), "done", "fetch").first().copied().cloned()?;
        (count(
            &db,
            "SELECT count(*) AS n FROM baton.holds WHERE kind = 'review' AND phase = 'fetch'",
        ) == 1)
            .then_some(done)
    });
    // Whichever engine the others are on, they wait for the decision: no
    // other attempt starts (a flight looks again every quarter second).
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert_eq!(of(&calls(&sb), "start", "fetch").len(), 1);
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM baton.cache_claims"),
        1
    );
    at(&db, &sb.path("reader"), &["approve", &made.task]).expect(0);
    wait_until_settled(&db, 6);
    for e in engines {
        e.signal(libc::SIGTERM);
        e.wait();
    }
    assert_eq!(state_count(&db, "completed"), 6);
    assert_eq!(of(&calls(&sb), "start", "fetch").len(), 1);
    assert_eq!(
        events(&db, "phase_cached"),
        5,
        "the approved output, without a second review"
    );
    assert_eq!(
        count(&db, "SELECT count(*) AS n FROM baton.cache_claims"),
        0
    );
}
