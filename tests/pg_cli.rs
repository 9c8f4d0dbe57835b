//! The run kept in PostgreSQL (`--store`, `BATON_STORE`) through the real
//! binary: a run there reads back the same as in a state folder, from a
//! machine with no state folder; decisions are taken with no engine
//! running; an unreachable server is refused clearly;
//! a password never shows; a server restarted mid-run loses nothing and
//! runs nothing twice. Each test takes a database of its own in the shared
//! test cluster, or a cluster of its own; all skip without PostgreSQL
//! (unless `BATON_REQUIRE_PG=1`).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;
#[path = "support/pty.rs"]
mod pty;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Stdio;

use cli::{Live, Out, Sandbox, baton, output, str_at, wait_for};
use pg_cluster::{cluster, private_cluster};
use serde_json::{Value, json};

/// Simulated agents answering at once, with retries, reviews and
/// blockers: every command has something to show. The simulator draws from
/// the task, phase and attempt alone, so two runs give the same results.
const PIPELINE: &str = r#"
name = "pg-cli"

[defaults]
retry = { max_attempts = 3, backoff = "exponential", initial_delay = "1ms", max_delay = "5ms" }
concurrency = 8

[agents.w]
kind = "sim"
latency = "0ms..0ms"
tokens = "100..900"
fail_rate = 0.2
review_rate = 0.15
block_rate = 0.1
model = "claude-sonnet-4-5"
seed = 5

[agents.g]
kind = "sim"
latency = "0ms..0ms"
tokens = "50..200"
fail_rate = 0.1
model = "house-model"
seed = 9

[[phases]]
id = "draft"
agent = "w"

[[phases]]
id = "check"
agent = "g"

[[phases]]
id = "polish"
agent = "w"
"#;

const PASSWORD: &str = "s3cret-pw";

/// `baton ARGS --state-dir STATE [--store STORE]`.
fn at(store: Option<&str>, state: &Path, args: &[&str]) -> Out {
    let mut cmd = baton();
    cmd.env_remove("BATON_STORE")
        .args(args)
        .arg("--state-dir")
        .arg(state);
    if let Some(s) = store {
        cmd.arg("--store").arg(s);
    }
    output(&mut cmd)
}

/// `baton run PIPELINE --headless [--input INPUT]` on `state`.
fn run(sb: &Sandbox, store: Option<&str>, state: &Path, input: bool) -> Out {
    let pipeline = sb.path("pipeline.toml");
    let tasks = sb.path("tasks.jsonl");
    let mut args = vec!["run", pipeline.to_str().unwrap(), "--headless"];
    if input {
        args.extend(["--input", tasks.to_str().unwrap()]);
    }
    at(store, state, &args)
}

#[track_caller]
fn parse(out: &Out) -> Value {
    out.expect(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"))
}

/// `value` without what depends on when things ran: times, durations,
/// event numbers and the place named; dollars rounded, as the two stores
/// may add them in another order. Arrays of review entries are sorted by
/// task, since their order is by waiting time.
fn timeless(value: &Value) -> Value {
    match value {
        Value::Object(map) => map
            .iter()
            .filter(|(k, _)| {
                !(k.ends_with("_at")
                    || k.ends_with("_ms")
                    || ["since", "seq", "state_dir", "store"].contains(&k.as_str()))
            })
            .map(|(k, v)| (k.clone(), timeless(v)))
            .collect(),
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(timeless).collect();
            if items.iter().all(|i| i.get("task").is_some()) {
                items.sort_by_key(|i| i["task"].to_string());
            }
            Value::Array(items)
        }
        Value::Number(n) if n.is_f64() => json!(format!("{:.9}", n.as_f64().unwrap())),
        other => other.clone(),
    }
}

/// Writes the pipeline and `n` tasks.
fn sandbox(pipeline: &str, n: usize) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("pipeline.toml", pipeline);
    let tasks: Vec<Value> = (1..=n)
        .map(|i| json!({"id": format!("t{i}"), "n": i}))
        .collect();
    sb.inputs(&tasks);
    sb
}

/// Every row of every table of the run's schema, as text.
fn dump(url: &str, schema: &str) -> String {
    let (url, schema) = (url.to_string(), schema.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .expect("connect to dump");
                tokio::spawn(conn);
                let tables = client
                    .query(
                        "SELECT table_name::text FROM information_schema.tables WHERE table_schema = $1",
                        &[&schema],
                    )
                    .await
                    .unwrap();
                assert!(!tables.is_empty(), "no tables in schema {schema}");
                let mut text = String::new();
                for t in tables {
                    let name: String = t.get(0);
                    let sql = format!("SELECT t::text FROM \"{schema}\".\"{name}\" t");
                    for row in client.query(&sql, &[]).await.unwrap() {
                        let line: String = row.get(0);
                        text.push_str(&line);
                        text.push('\n');
                    }
                }
                text
            })
    })
    .join()
    .unwrap()
}

/// The text of every file under `dir`.
fn files_under(dir: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else if let Ok(bytes) = std::fs::read(&path) {
            found.push((
                path.display().to_string(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ));
        }
    }
    found
}

/// A port on 127.0.0.1 where nothing listens.
fn dead_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// `url` with `PASSWORD` in its user information.
fn with_password(url: &str) -> String {
    url.replacen("baton_test@", &format!("baton_test:{PASSWORD}@"), 1)
}

#[test]
fn a_run_in_postgres_reads_back_like_one_in_a_folder_without_any_folder() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = sandbox(PIPELINE, 40);

    let in_folder = run(&sb, None, &sb.path("folder"), true);
    let in_pg = run(&sb, Some(&db), &sb.path("engine"), true);
    assert_eq!(in_pg.code(), in_folder.code(), "{in_pg}\n{in_folder}");
    assert_eq!(
        in_pg.code(),
        3,
        "the run leaves tasks for a person\n{in_pg}"
    );
    assert!(
        sb.path("folder").join("baton.db").is_file(),
        "the folder store keeps its database"
    );
    assert!(
        !sb.path("engine").join("baton.db").exists(),
        "a run in PostgreSQL keeps no database in its state folder"
    );

    // Readers with an empty, missing state folder.
    let nowhere = sb.path("reader");
    let pg = |args: &[&str]| at(Some(&db), &nowhere, args);
    let folder = |args: &[&str]| at(None, &sb.path("folder"), args);

    let list = parse(&pg(&["list", "--json"]));
    assert_eq!(list.as_array().unwrap().len(), 40);
    assert_eq!(
        timeless(&list),
        timeless(&parse(&folder(&["list", "--json"])))
    );
    for state in ["completed", "awaiting_review", "blocked", "failed"] {
        let args = ["list", "--json", "--state", state];
        let rows = parse(&pg(&args));
        assert!(
            !rows.as_array().unwrap().is_empty(),
            "the run has {state} tasks to compare"
        );
        assert_eq!(timeless(&rows), timeless(&parse(&folder(&args))), "{state}");
    }
    for row in list.as_array().unwrap() {
        let id = str_at(row, "id");
        assert_eq!(
            timeless(&parse(&pg(&["show", &id, "--json"]))),
            timeless(&parse(&folder(&["show", &id, "--json"]))),
            "show {id}"
        );
    }
    for cmd in ["summary", "stats", "review"] {
        assert_eq!(
            timeless(&parse(&pg(&[cmd, "--json"]))),
            timeless(&parse(&folder(&[cmd, "--json"]))),
            "{cmd} --json"
        );
    }

    // The text forms answer too, and name the database as the run's place.
    let place = db.clone();
    for args in [
        &["list"][..],
        &["show", "t1"],
        &["summary"],
        &["stats"],
        &["review"],
    ] {
        let out = pg(args);
        out.expect(0);
        assert!(!out.stdout.is_empty(), "{args:?} printed nothing\n{out}");
    }
    for cmd in ["summary", "stats"] {
        let out = pg(&[cmd]);
        assert!(
            !out.stdout.contains(&*nowhere.to_string_lossy()),
            "{cmd} names the reader's state folder as the run's place\n{out}"
        );
    }
    for cmd in ["summary", "stats"] {
        let out = pg(&[cmd]);
        let first = out.stdout.lines().next().unwrap_or_default();
        assert!(
            first.contains(&place),
            "{cmd} names the run's database on its first line\n{out}"
        );
    }
    let review = pg(&["review"]);
    assert!(
        review.stdout.contains(&format!("--store {place}")),
        "review's hint reaches the same run\n{review}"
    );
    cli::check_suggested_commands(&review.stdout);
    for cmd in ["summary", "stats"] {
        let v = parse(&pg(&[cmd, "--json"]));
        assert_eq!(v["store"], json!(place), "{cmd} --json names the database");
    }

    // Nothing was made on the reading side.
    assert!(!nowhere.exists(), "reading made {}", nowhere.display());
}

#[test]
fn a_decision_taken_with_no_engine_running_is_carried_on_by_the_next_run() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = Sandbox::new();
    sb.pipeline(
        "[[phases]]\nid = \"one\"\nagent = \"a\"\n\n[[phases]]\nid = \"two\"\nagent = \"a\"\n",
    );
    sb.inputs(&[
        json!({"id": "t1", "do": {"one": "review"}}),
        json!({"id": "t2"}),
    ]);
    let engine = sb.path("engine");
    let first = run(&sb, Some(&db), &engine, true);
    assert_eq!(first.code(), 3, "t1 waits for a review\n{first}");
    assert!(
        first.stderr.contains(&format!("--store {db}")),
        "the hint names the run's database\n{first}"
    );

    let reader = sb.path("reader");
    let show = |id: &str| parse(&at(Some(&db), &reader, &["show", id, "--json"]));
    assert_eq!(show("t1")["state"], "awaiting_review");
    assert_eq!(show("t2")["state"], "completed");

    let approved = at(Some(&db), &engine, &["approve", "t1", "--note", "fine"]);
    approved.expect(0);
    assert!(
        approved.stdout.contains("approve: recorded for task t1"),
        "{approved}"
    );
    assert!(
        approved.stderr.contains(&db),
        "says the next run on the database carries on\n{approved}"
    );
    let t1 = show("t1");
    assert_ne!(t1["state"], "awaiting_review", "{t1}");
    assert_eq!(t1["holds"].as_array().map_or(0, Vec::len), 0, "{t1}");

    let second = run(&sb, Some(&db), &engine, false);
    assert_eq!(second.code(), 0, "{second}");
    let t1 = show("t1");
    assert_eq!(t1["state"], "completed", "{t1}");
    let phases: Vec<(String, String)> = t1["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (str_at(p, "id"), str_at(p, "state")))
        .collect();
    assert_eq!(
        phases,
        [
            ("one".into(), "completed".into()),
            ("two".into(), "completed".into())
        ]
    );
    // The review was asked once, then approved: `one` ran once.
    assert_eq!(sb.runs_of("t1", "one"), 1);
    assert_eq!(sb.runs_of("t1", "two"), 1);
    let log = std::fs::read_to_string(engine.join("RUN_LOG.md")).unwrap();
    assert!(
        log.contains("baton approve t1"),
        "the run log records the decision\n{log}"
    );
    assert!(
        log.contains(&format!("- run kept in: `{db}`")),
        "the run log names the run's database\n{log}"
    );
}

#[test]
fn an_address_where_nothing_listens_is_refused_with_what_to_check() {
    let sb = sandbox(PIPELINE, 2);
    let port = dead_port();
    let url = format!("postgres://baton_test@127.0.0.1:{port}/db");
    let runs = run(&sb, Some(&url), &sb.path("state"), true);
    let lists = at(Some(&url), &sb.path("state"), &["list"]);
    let summary = at(Some(&url), &sb.path("other"), &["summary", "--json"]);
    for out in [&runs, &lists, &summary] {
        out.expect(2);
        assert!(
            out.stderr.contains(&format!("127.0.0.1:{port}")),
            "names host and port\n{out}"
        );
        assert!(out.stderr.contains("check"), "says what to check\n{out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
}

#[test]
fn a_password_in_the_address_shows_nowhere() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let sb = sandbox(PIPELINE, 12);
    let dead = with_password(&format!(
        "postgres://baton_test@127.0.0.1:{}/db",
        dead_port()
    ));
    let live = with_password(&db);

    let mut outs = Vec::new();
    let mut states = Vec::new();
    for (i, address) in [&dead, &live].into_iter().enumerate() {
        // By the flag, then by the environment.
        let state = sb.path(&format!("flag{i}"));
        outs.push(run(&sb, Some(address), &state, true));
        outs.push(at(Some(address), &state, &["list"]));
        outs.push(at(Some(address), &state, &["summary"]));
        outs.push(at(Some(address), &state, &["stats"]));
        outs.push(at(Some(address), &state, &["review"]));
        outs.push(at(Some(address), &state, &["approve", "t404"]));
        states.push(state);

        let state = sb.path(&format!("env{i}"));
        let mut cmd = baton();
        cmd.env("BATON_STORE", address)
            .arg("run")
            .arg(sb.path("pipeline.toml"))
            .args(["--headless", "--input"])
            .arg(sb.path("tasks.jsonl"))
            .arg("--state-dir")
            .arg(&state);
        outs.push(output(&mut cmd));
        let mut cmd = baton();
        cmd.env("BATON_STORE", address)
            .args(["summary", "--state-dir"])
            .arg(&state);
        outs.push(output(&mut cmd));
        states.push(state);
        let mut help = baton();
        help.env("BATON_STORE", address).arg("--help");
        outs.push(output(&mut help));
        let mut help = baton();
        help.env("BATON_STORE", address).args(["run", "--help"]);
        outs.push(output(&mut help));
    }
    // The dead address fails, the live one runs (trust ignores the password).
    assert_eq!(outs[0].code(), 2, "{}", outs[0]);
    assert_eq!(outs[10].code(), 3, "{}", outs[10]);
    for out in &outs {
        assert!(!out.stdout.contains(PASSWORD), "stdout shows it\n{out}");
        assert!(!out.stderr.contains(PASSWORD), "stderr shows it\n{out}");
    }
    for state in &states {
        for (path, text) in files_under(state) {
            assert!(!text.contains(PASSWORD), "{path} holds it");
        }
    }
    let rows = dump(&db, "baton");
    assert!(rows.contains("\"t1\""), "the dump reads the run");
    assert!(!rows.contains(PASSWORD), "the database holds it");
}

#[test]
fn a_server_restarted_mid_run_loses_nothing_and_runs_nothing_twice() {
    let Some(c) = private_cluster() else { return };
    let db = c.fresh_db();
    const TASKS: usize = 300;
    let pipeline = r#"
name = "pg-restart"

[defaults]
retry = { max_attempts = 5, backoff = "exponential", initial_delay = "10ms", max_delay = "100ms" }
concurrency = 4

[agents.w]
kind = "sim"
latency = "20ms..20ms"
tokens = "100..200"
model = "claude-sonnet-4-5"
seed = 3

[[phases]]
id = "one"
agent = "w"

[[phases]]
id = "two"
agent = "w"

[[phases]]
id = "three"
agent = "w"
"#;
    let sb = sandbox(pipeline, TASKS);
    let mut cmd = baton();
    cmd.arg("run")
        .arg(sb.path("pipeline.toml"))
        .args(["--headless", "--input"])
        .arg(sb.path("tasks.jsonl"))
        .arg("--state-dir")
        .arg(sb.path("engine"))
        .arg("--store")
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut engine = Live::from_child(cmd.spawn().expect("start baton"));
    let reader = sb.path("reader");
    let completed = || -> Option<u64> {
        let out = at(Some(&db), &reader, &["summary", "--json"]);
        let v: Value = serde_json::from_str(&out.stdout).ok()?;
        v["states"]["completed"].as_u64()
    };
    let before = wait_for("some tasks to complete", || {
        completed().filter(|n| *n >= 10)
    });
    assert!(
        (before as usize) < TASKS && !engine.has_exited(),
        "the run ended before the restart: make it longer\n{}",
        engine.stderr()
    );
    c.restart();
    let out = engine.wait();
    assert_eq!(
        out.code(),
        0,
        "{out}\n--- server log ---\n{}",
        c.server_log()
    );
    assert!(
        out.stderr.contains("stopped answering") && out.stderr.contains("answers again"),
        "the engine says it lost the store and got it back\n{out}"
    );

    let summary = parse(&at(Some(&db), &reader, &["summary", "--json"]));
    assert_eq!(summary["tasks"], json!(TASKS), "{summary}");
    assert_eq!(summary["states"]["completed"], json!(TASKS), "{summary}");

    let mut attempts = 0u64;
    let mut tokens = 0u64;
    let mut cost = 0f64;
    let mut done_twice = BTreeMap::new();
    for i in 1..=TASKS {
        let id = format!("t{i}");
        let task = parse(&at(Some(&db), &reader, &["show", &id, "--json"]));
        assert_eq!(task["state"], "completed", "{task}");
        for phase in task["phases"].as_array().unwrap() {
            assert_eq!(phase["state"], "completed", "{id}: {phase}");
            let tries = phase["attempts"].as_array().unwrap();
            let succeeded = tries
                .iter()
                .filter(|a| a["outcome"]["result"] == "succeeded")
                .count();
            if succeeded != 1 {
                done_twice.insert(format!("{id}/{}", str_at(phase, "id")), succeeded);
            }
            for a in tries {
                attempts += 1;
                let usage = &a["usage"];
                tokens += usage["input_tokens"].as_u64().unwrap_or(0)
                    + usage["output_tokens"].as_u64().unwrap_or(0);
                cost += a["cost_usd"].as_f64().unwrap_or(0.0);
            }
        }
    }
    assert!(
        done_twice.is_empty(),
        "phases with other than one successful attempt: {done_twice:?}"
    );
    assert_eq!(summary["attempts"], json!(attempts), "{summary}");
    assert_eq!(summary["tokens"], json!(tokens), "{summary}");
    let stored = summary["cost_usd"].as_f64().unwrap();
    assert!(
        (stored - cost).abs() < 1e-6,
        "cost {stored} != recount {cost}"
    );
}

#[test]
fn without_a_store_the_run_is_kept_in_the_state_folder() {
    let sb = sandbox(PIPELINE, 6);
    let mut cmd = baton();
    // Even with PostgreSQL's own variables about, nothing goes there.
    cmd.env("PGHOST", "127.0.0.1")
        .env("PGPORT", dead_port().to_string())
        .env_remove("BATON_STORE")
        .arg("run")
        .arg(sb.path("pipeline.toml"))
        .args(["--headless", "--input"])
        .arg(sb.path("tasks.jsonl"))
        .arg("--state-dir")
        .arg(sb.state());
    let out = output(&mut cmd);
    assert_eq!(out.code(), 3, "{out}");
    assert!(
        sb.state().join("baton.db").is_file(),
        "the folder keeps the run"
    );
    assert_eq!(sb.list().len(), 6);
    let summary = sb.cli(&["summary"]);
    summary.expect(0);
    assert!(
        summary
            .stdout
            .lines()
            .next()
            .unwrap_or_default()
            .contains(&*sb.state().to_string_lossy()),
        "{summary}"
    );
    assert!(
        parse(&sb.cli(&["summary", "--json"]))
            .get("store")
            .is_none()
    );
}

#[test]
fn attach_reads_a_running_engines_run_from_postgres() {
    let Some(c) = cluster() else { return };
    let db = c.fresh_db();
    let slow = PIPELINE.replacen("latency = \"0ms..0ms\"", "latency = \"600s..600s\"", 1);
    let sb = sandbox(&slow, 3);
    let engine_dir = sb.path("engine");
    let mut cmd = baton();
    cmd.arg("run")
        .arg(sb.path("pipeline.toml"))
        .args(["--headless", "--wait", "--input"])
        .arg(sb.path("tasks.jsonl"))
        .arg("--state-dir")
        .arg(&engine_dir)
        .arg("--store")
        .arg(&db)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let engine = Live::from_child(cmd.spawn().expect("start baton"));
    wait_for("the engine's control socket", || {
        engine_dir.join("baton.sock").exists().then_some(())
    });
    let dir = engine_dir.to_str().unwrap();
    let mut term = pty::Term::spawn(
        &["attach", "--state-dir", dir, "--store", &db],
        sb.root(),
        140,
        40,
        &[],
    );
    // The table is read from the run's store: the tasks show.
    let screen = term.wait_until("the tasks on screen", 60, |s| {
        s.contains("t1") && s.contains("t2") && s.contains("t3")
    });
    assert!(!screen.contains("cannot read"), "{screen}");
    // The header says where the run is: the database, not the folder.
    let header: String = screen.lines().take(3).collect::<Vec<_>>().join("\n");
    assert!(header.contains("postgres://"), "{header}");
    assert!(!header.contains(dir), "{header}");
    // The detail of the selected task names the engine that runs it.
    term.wait_until(
        "the engine holding the task in the detail's title",
        60,
        |s| s.contains(&format!("pid {}", engine.pid())) && s.contains("Detail · t"),
    );
    term.send("q");
    term.wait_exit(30);
    // An engine serves the run: its tasks under way are running, not
    // interrupted, for a command on another machine (an empty folder).
    let elsewhere = sb.path("elsewhere");
    let list = output(
        baton()
            .args(["list", "--state-dir"])
            .arg(&elsewhere)
            .args(["--store", &db]),
    );
    assert!(list.stdout.contains("running"), "{list}");
    assert!(!list.stdout.contains("interrupted"), "{list}");
    let summary = output(
        baton()
            .args(["summary", "--json", "--state-dir"])
            .arg(&elsewhere)
            .args(["--store", &db]),
    );
    let summary: Value = serde_json::from_str(&summary.stdout).expect("summary JSON");
    assert_eq!(summary["interrupted"], 0, "{summary}");
    drop(engine);
}
