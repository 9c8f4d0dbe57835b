//! What the tests of a run in PostgreSQL share: engines of the real binary
//! on the run, commands on it, and queries of its tables. Needs the
//! including test's `cli` module (`tests/support/cli.rs`).

// Each test uses the part it needs.
#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;

use serde_json::{Value, json};

use super::cli::{Live, Out, Sandbox, baton, output, wait_for};

/// Writes the pipeline and `n` tasks, `t0001` on.
pub fn sandbox(pipeline: &str, n: usize) -> Sandbox {
    let sb = Sandbox::new();
    sb.write("pipeline.toml", pipeline);
    let tasks: Vec<Value> = (1..=n)
        .map(|i| json!({"id": format!("t{i:04}"), "n": i}))
        .collect();
    sb.inputs(&tasks);
    sb
}

/// An engine: `baton run [PIPELINE] --headless [--input] [--wait]
/// --state-dir DIR` on the run at `db`, with `BATON_LEASE_SECS` when given.
pub fn engine(
    db: &str,
    file: Option<&Path>,
    dir: &Path,
    input: Option<&Path>,
    wait: bool,
    lease: Option<&str>,
) -> Live {
    let mut cmd = baton();
    cmd.env("BATON_STORE", db).arg("run");
    if let Some(l) = lease {
        cmd.env("BATON_LEASE_SECS", l);
    }
    if let Some(f) = file {
        cmd.arg(f);
    }
    cmd.arg("--headless")
        .arg("--state-dir")
        .arg(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(i) = input {
        cmd.arg("--input").arg(i);
    }
    if wait {
        cmd.arg("--wait");
    }
    Live::from_child(cmd.spawn().expect("start baton"))
}

/// `baton ARGS --state-dir STATE` on the run at `db`.
pub fn at(db: &str, state: &Path, args: &[&str]) -> Out {
    let mut cmd = baton();
    cmd.env("BATON_STORE", db)
        .args(args)
        .arg("--state-dir")
        .arg(state);
    output(&mut cmd)
}

/// Waits until the run at `db` holds `n` tasks (as `summary` reads it from
/// the folder `reader`, which need not exist).
pub fn wait_for_tasks(db: &str, reader: &Path, n: u64) {
    wait_for("the tasks to be submitted", || {
        let out = at(db, reader, &["summary", "--json"]);
        (out.code() == 0
            && serde_json::from_str::<Value>(&out.stdout)
                .is_ok_and(|v| v["tasks"].as_u64() == Some(n)))
        .then_some(())
    });
}

/// Rows of a query on the run's tables, each as JSON.
pub fn query(db: &str, sql: &str) -> Vec<Value> {
    try_query(db, sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// The `n` of a query's first row.
pub fn count(db: &str, sql: &str) -> i64 {
    query(db, sql)[0]["n"].as_i64().unwrap()
}

/// Rows of a query on the run's tables, or why not (the tables may not be
/// there yet).
pub fn try_query(db: &str, sql: &str) -> Result<Vec<Value>, String> {
    let (db, sql) = (db.to_string(), sql.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
                    .await
                    .map_err(|e| e.to_string())?;
                tokio::spawn(conn);
                let rows = client
                    .query(&format!("SELECT to_json(q)::text FROM ({sql}) q"), &[])
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(rows
                    .iter()
                    .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
                    .collect())
            })
    })
    .join()
    .unwrap()
}

/// Three engines on the run at `db`, on the pipeline of `sb`: two that
/// serve (`--wait`) start first, and once they are live, a third submits
/// `tasks.jsonl` (serving too when `wait`), so that the three share the
/// tasks from the start (each takes its fair share of `concurrency`). The
/// submitter comes first in the list.
pub fn three_engines(sb: &Sandbox, db: &str, wait: bool, lease: Option<&str>) -> Vec<Live> {
    let file = sb.path("pipeline.toml");
    let serving: Vec<Live> = ["e2", "e3"]
        .iter()
        .map(|dir| engine(db, Some(&file), &sb.path(dir), None, true, lease))
        .collect();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let rows = try_query(
            db,
            "SELECT count(*) AS live FROM baton.engines \
             WHERE stopped_at IS NULL AND lease_until >= now()",
        );
        if rows.as_ref().is_ok_and(|r| r[0]["live"] == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "two engines do not serve the run: {rows:?}\n{}",
            serving
                .iter()
                .map(|e| e.stderr())
                .collect::<Vec<_>>()
                .join("\n---\n")
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let tasks = sb.path("tasks.jsonl");
    let submitter = engine(db, Some(&file), &sb.path("e1"), Some(&tasks), wait, lease);
    std::iter::once(submitter).chain(serving).collect()
}

/// A command agent for the step cache in a fleet, run as `python3 SCRIPT
/// LOG MARKS`. It logs each call as it starts and as it ends (`start`,
/// `done` or `failed`, then task, phase, the task's `q`, the engine's pid
/// and its own) and sleeps the task's `sleep_ms` of its phase. The first
/// call of phase `fetch` for each `q`, anywhere in the fleet (a file in
/// MARKS says which came first), does what the task's `first` says:
/// `fail` (a fatal error), `hang` (sleeps ten minutes) or succeed.
pub const CACHE_AGENT_PY: &str = r#"
import json, os, sys, time

req = json.loads(sys.stdin.readline())
task = req["task"]["id"]
inp = req["task"]["input"]
phase = req["phase"]
log, marks = sys.argv[1], sys.argv[2]
q = str(inp.get("q", "-"))

def note(what):
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %s %s %d %d\n" % (what, task, phase, q, os.getppid(), os.getpid())).encode())
    os.close(fd)

first = False
if phase == "fetch":
    try:
        os.close(os.open(os.path.join(marks, q), os.O_WRONLY | os.O_CREAT | os.O_EXCL))
        first = True
    except FileExistsError:
        pass
note("start")
time.sleep(inp.get("sleep_ms", {}).get(phase, 0) / 1000.0)
then = inp.get("first", "ok") if first else "ok"
if then == "hang":
    time.sleep(600)
if then == "fail":
    note("failed")
    sys.stdout.write(json.dumps({"error": {"message": "the source is down", "retryable": False}}))
    sys.exit(0)
note("done")
sys.stdout.write(json.dumps({"output": {"task": task, "q": q}}))
"#;

/// `[agents.NAME]` running [`CACHE_AGENT_PY`], written into `sb` with a
/// fresh folder of marks, logging to its side log.
pub fn cache_agent(sb: &Sandbox, name: &str) -> String {
    let script = sb.write("cache_agent.py", CACHE_AGENT_PY);
    let marks = sb.path("marks");
    std::fs::create_dir_all(&marks).expect("create the marks folder");
    format!(
        "[agents.{name}]\nkind = \"command\"\ncommand = [\"python3\", {:?}, {:?}, {:?}]\n",
        script,
        sb.side_log(),
        marks
    )
}

/// One line of the side log of [`CACHE_AGENT_PY`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `start`, `done` or `failed`.
    pub what: String,
    pub task: String,
    pub phase: String,
    pub q: String,
    /// The pid of the engine that ran it.
    pub engine: u32,
    /// The agent's own pid.
    pub pid: u32,
}

/// The side log's lines, in order.
pub fn calls(sb: &Sandbox) -> Vec<Call> {
    sb.side_log_lines()
        .into_iter()
        .map(|l| Call {
            what: l[0].clone(),
            task: l[1].clone(),
            phase: l[2].clone(),
            q: l[3].clone(),
            engine: l[4].parse().unwrap(),
            pid: l[5].parse().unwrap(),
        })
        .collect()
}
