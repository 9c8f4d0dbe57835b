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
    let (db, sql) = (db.to_string(), sql.to_string());
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async move {
                let (client, conn) = tokio_postgres::connect(&db, tokio_postgres::NoTls)
                    .await
                    .expect("connect");
                tokio::spawn(conn);
                client
                    .query(&format!("SELECT to_json(q)::text FROM ({sql}) q"), &[])
                    .await
                    .unwrap_or_else(|e| panic!("{sql}: {e}"))
                    .iter()
                    .map(|r| serde_json::from_str(&r.get::<_, String>(0)).unwrap())
                    .collect()
            })
    })
    .join()
    .unwrap()
}

/// The `n` of a query's first row.
pub fn count(db: &str, sql: &str) -> i64 {
    query(db, sql)[0]["n"].as_i64().unwrap()
}
