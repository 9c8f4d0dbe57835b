//! A control-socket client for tests: plain blocking I/O on the socket,
//! JSON values in and out, with a deadline on every wait.
//!
//! Declared from a test file with `#[path = "support/remote.rs"] mod remote;`,
//! beside `#[path = "support/cli.rs"] mod cli;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use std::process::Stdio;

use crate::cli::{Live, Sandbox, baton, wait_for};

/// Longest any wait for a message lasts before the test fails.
pub const DEADLINE: Duration = Duration::from_secs(45);

/// The protocol version these tests speak.
pub const VERSION: u64 = 3;

/// The socket of a state folder (short paths keep it inside the folder).
pub fn socket_of(state: &Path) -> PathBuf {
    std::fs::canonicalize(state)
        .unwrap_or_else(|_| state.to_path_buf())
        .join("baton.sock")
}

pub struct Proto {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Proto {
    /// Connects without saying anything.
    pub fn raw(socket: &Path) -> Proto {
        let stream = UnixStream::connect(socket)
            .unwrap_or_else(|e| panic!("connect to {}: {e}", socket.display()));
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Proto {
            stream,
            reader,
            next_id: 1,
        }
    }

    /// Connects, reads hello and the first overview, and says hello back;
    /// returns the overview (which never carries tasks).
    pub fn connect(socket: &Path, read_only: bool) -> (Proto, Value) {
        let mut p = Proto::raw(socket);
        let hello = p.next();
        assert_eq!(hello["type"], "hello", "{hello}");
        assert_eq!(hello["version"], VERSION, "{hello}");
        assert!(
            hello["store"]
                .as_str()
                .is_some_and(|s| s.ends_with("baton.db")),
            "the hello says where the run is kept: {hello}"
        );
        let first = p.next();
        assert_eq!(first["type"], "overview", "{first}");
        assert!(first.get("id").is_none(), "{first}");
        let overview = first["overview"].clone();
        assert_no_tasks(&overview);
        p.send(&json!({"type": "hello", "version": VERSION, "read_only": read_only}));
        (p, overview)
    }

    pub fn send(&mut self, msg: &Value) {
        self.send_raw(format!("{msg}\n").as_bytes());
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the socket");
    }

    /// The next message; fails the test after `DEADLINE`.
    pub fn next(&mut self) -> Value {
        self.try_next()
            .unwrap_or_else(|| panic!("the engine closed the connection"))
    }

    /// The next message, or `None` when the connection is closed.
    pub fn try_next(&mut self) -> Option<Value> {
        let deadline = Instant::now() + DEADLINE;
        let mut line = String::new();
        loop {
            match self.reader.read_line(&mut line) {
                Ok(0) => return None,
                Ok(_) if line.ends_with('\n') => {
                    return Some(serde_json::from_str(&line).unwrap_or_else(|e| {
                        panic!("the engine sent something that is not JSON ({e}): {line}")
                    }));
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) => {}
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read from the socket: {e}"),
            }
            assert!(
                Instant::now() < deadline,
                "no message from the engine in time"
            );
        }
    }

    /// Reads until a message satisfies `want`, and returns it.
    pub fn wait_for(&mut self, what: &str, want: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let msg = self
                .try_next()
                .unwrap_or_else(|| panic!("connection closed while waiting for {what}"));
            if want(&msg) {
                return msg;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
        }
    }

    /// Sends a command and returns its id.
    pub fn command(&mut self, command: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        self.send(&json!({"type": "command", "id": id, "command": command}));
        id
    }

    /// Waits for the reply to command `id`.
    pub fn reply(&mut self, id: u64) -> Value {
        self.wait_for(&format!("the reply to command {id}"), |m| {
            m["type"] == "reply" && m["id"] == id
        })
    }

    /// Reads until the engine closes the connection; returns what it sent.
    pub fn until_closed(&mut self) -> Vec<Value> {
        let mut all = Vec::new();
        while let Some(m) = self.try_next() {
            all.push(m);
        }
        all
    }
}

/// An operator decision on a task, as the `command` of a message.
pub fn act(task: &str, action: &str, user: &str) -> Value {
    json!({
        "command": "act",
        "task": task,
        "action": {"action": action},
        "by": {"user": user},
    })
}

/// Waits until something answers on `socket`.
pub fn wait_for_socket(socket: &Path) {
    let deadline = Instant::now() + DEADLINE;
    while UnixStream::connect(socket).is_err() {
        assert!(
            Instant::now() < deadline,
            "nothing answers on {}",
            socket.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An overview is the run without its tasks.
pub fn assert_no_tasks(overview: &Value) {
    assert!(overview.is_object(), "not an overview: {overview}");
    assert!(
        overview.get("tasks").is_none(),
        "an overview with tasks: {overview}"
    );
    assert!(overview["seq"].is_u64(), "{overview}");
}

/// The state folder's database, opened to read beside a running engine.
fn database(state: &Path) -> Option<rusqlite::Connection> {
    let path = state.join("baton.db");
    if !path.is_file() {
        return None;
    }
    let conn = rusqlite::Connection::open_with_flags(
        &path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .ok()?;
    conn.busy_timeout(Duration::from_secs(5)).ok()?;
    conn.pragma_update(None, "query_only", true).ok()?;
    Some(conn)
}

/// Task id to state, as committed in the state folder's store (nothing
/// before the engine has made it).
pub fn states(state: &Path) -> std::collections::BTreeMap<String, String> {
    let Some(conn) = database(state) else {
        return Default::default();
    };
    let Ok(mut stmt) = conn.prepare("SELECT id, state FROM tasks ORDER BY ord") else {
        return Default::default();
    };
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .and_then(|rows| rows.collect())
        .unwrap_or_default()
}

/// Every committed event, in order: `(seq, kind, the event as JSON)`.
pub fn events(state: &Path) -> Vec<(u64, String, Value)> {
    let Some(conn) = database(state) else {
        return Vec::new();
    };
    let mut stmt = conn
        .prepare("SELECT seq, kind, body FROM events ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| {
        let body: String = r.get(2)?;
        let seq: i64 = r.get(0)?;
        Ok((seq as u64, r.get(1)?, serde_json::from_str(&body).unwrap()))
    })
    .unwrap()
    .collect::<Result<_, _>>()
    .unwrap()
}

/// The highest seq committed in the state folder's store.
pub fn last_seq(state: &Path) -> u64 {
    database(state)
        .and_then(|c| {
            c.query_row("SELECT COALESCE(MAX(seq), 0) FROM events", [], |r| {
                r.get::<_, i64>(0)
            })
            .ok()
        })
        .unwrap_or(0) as u64
}

/// Every task waits for a review of `draft`, then is blocked at `fix`.
pub const REVIEW_THEN_BLOCK: &str = r#"
name = "remote-test"

[agents.sim]
kind = "sim"
latency = "0ms"
tokens = "100..200"
model = "claude-haiku-4-5"

[agents.blocker]
kind = "sim"
latency = "0ms"
tokens = "100..200"
block_rate = 1.0
model = "claude-haiku-4-5"

[[phases]]
id = "draft"
agent = "sim"
review = "always"

[[phases]]
id = "fix"
agent = "blocker"
"#;

/// A sandbox with the pipeline above and tasks `t1`..`tN`.
pub fn sandbox(tasks: usize) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", REVIEW_THEN_BLOCK);
    let inputs: Vec<Value> = (1..=tasks)
        .map(|i| json!({"id": format!("t{i}")}))
        .collect();
    sandbox.inputs(&inputs);
    sandbox
}

/// `baton run --headless --wait` in the background.
pub fn engine(sandbox: &Sandbox, input: bool) -> Live {
    let mut cmd = baton();
    cmd.arg("run")
        .arg(sandbox.path("pipeline.toml"))
        .args(["--headless", "--wait", "--state-dir"])
        .arg(sandbox.state());
    if input {
        cmd.arg("--input").arg(sandbox.path("tasks.jsonl"));
    }
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton");
    Live::from_child(child)
}

/// Waits until there are tasks and every one is in `state`, as committed
/// in the store of the state folder `dir`.
pub fn wait_all(dir: &Path, state: &str) {
    wait_for(&format!("every task {state}"), || {
        let states = states(dir);
        (!states.is_empty() && states.values().all(|s| s == state)).then_some(())
    });
}

/// Waits until every task but `except` is in `state`.
pub fn wait_all_but(dir: &Path, except: &str, state: &str) {
    wait_for(&format!("tasks other than {except} {state}"), || {
        let states = states(dir);
        (!states.is_empty()
            && states
                .iter()
                .filter(|(id, _)| id.as_str() != except)
                .all(|(_, s)| s == state))
        .then_some(())
    });
}

/// Waits until task `id` is in `state`, as committed.
pub fn wait_for_state(dir: &Path, id: &str, state: &str) {
    wait_for(&format!("{id} to be {state}"), || {
        (states(dir).get(id).map(String::as_str) == Some(state)).then_some(())
    });
}
