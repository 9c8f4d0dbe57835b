//! Fuzzing the control socket: generated and mutated JSON lines sent to a
//! real engine (`baton run --headless --wait`) must each be answered (an
//! error, a refusal, a reply or an overview), never with a panic, a hang or
//! a dead engine.
//!
//! `cargo test --test fuzz_socket` sends a CI-sized batch; for a longer
//! run: `BATON_FUZZ_CASES=20000 cargo test --release --test fuzz_socket -- --nocapture`
//! (the counts are printed at the end).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/remote.rs"]
mod remote;

use std::cell::RefCell;
use std::path::Path;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use remote::{Proto, VERSION, engine, sandbox, socket_of, wait_all, wait_for_socket};
use serde_json::{Value, json};

/// Cases `cargo test` sends when `BATON_FUZZ_CASES` is not set.
const CI_CASES: u32 = 400;

/// Well-formed lines, the seeds of mutation.
fn seeds() -> Vec<String> {
    [
        json!({"type": "hello", "version": VERSION}),
        json!({"type": "hello", "version": VERSION, "read_only": true, "logs": true, "live": true}),
        json!({"type": "overview", "id": 1}),
        json!({"type": "command", "id": 2, "command": {"command": "act", "task": "t1", "action": {"action": "approve"}, "by": {"user": "ann"}}}),
        json!({"type": "command", "id": 3, "command": {"command": "act", "task": "t2", "action": {"action": "send_back", "feedback": "again"}, "note": "n", "by": {"user": "ann", "ssh_client": "10.0.0.1"}}}),
        json!({"type": "command", "id": 4, "command": {"command": "raise_budget", "task": "t3", "usd": 2.5, "tokens": 100, "by": {"user": "ann"}}}),
        json!({"type": "command", "id": 5, "command": {"command": "pause", "by": {"user": "ann"}}}),
        json!({"type": "command", "id": 6, "command": {"command": "resume", "by": {"user": "ann"}}}),
        json!({"type": "command", "id": 7, "command": {"command": "act", "task": "t4", "phase": "fix", "action": {"action": "resolve_skip"}, "by": {"user": "ann"}}}),
    ]
    .iter()
    .map(Value::to_string)
    .collect()
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[a-z_]{0,12}".prop_map(Value::from),
        ".{0,40}".prop_map(Value::from),
        (1usize..200_000).prop_map(|n| Value::from("x".repeat(n))),
        prop_oneof![
            Just("hello"),
            Just("command"),
            Just("overview"),
            Just("snapshot"),
            Just("act"),
            Just("approve"),
            Just("send_back"),
            Just("raise_budget"),
            Just("pause"),
            Just("resume"),
            Just("t1"),
            Just("t2"),
            Just("draft"),
            Just("fix"),
        ]
        .prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    "[a-z_]{1,10}",
                    Just("type".to_string()),
                    Just("id".to_string()),
                    Just("command".to_string()),
                    Just("action".to_string()),
                    Just("by".to_string()),
                    Just("task".to_string()),
                    Just("version".to_string()),
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A message shaped like the protocol's, with any values in its fields.
fn shaped() -> impl Strategy<Value = String> {
    (
        prop_oneof![
            Just("hello"),
            Just("command"),
            Just("overview"),
            Just("snapshot"),
            Just("dance")
        ],
        value(),
        prop_oneof![
            Just("act"),
            Just("raise_budget"),
            Just("pause"),
            Just("resume"),
            Just("bogus")
        ],
        value(),
        value(),
        value(),
    )
        .prop_map(|(ty, id, command, task, action, by)| {
            json!({"type": ty, "id": id, "version": VERSION,
                   "command": {"command": command, "task": task, "action": action, "by": by}})
            .to_string()
        })
}

/// A well-formed command with one of its fields given any value.
fn reshaped() -> impl Strategy<Value = String> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop_oneof![
            Just("task"),
            Just("note"),
            Just("by"),
            Just("action"),
            Just("phase"),
            Just("tokens"),
            Just("usd")
        ],
        value(),
    )
        .prop_map(move |(i, field, v)| {
            let mut msg: Value = serde_json::from_str(&seeds[i]).expect("seeds are JSON");
            if let Some(command) = msg.get_mut("command").and_then(Value::as_object_mut) {
                command.insert(field.to_string(), v);
            }
            msg.to_string()
        })
}

/// A seed with bytes flipped, cut, repeated or inserted.
fn mutated() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop::collection::vec((any::<usize>(), any::<u8>(), 0u8..4), 0..4),
    )
        .prop_map(move |(i, edits)| {
            let mut bytes = seeds[i].clone().into_bytes();
            for (at, byte, how) in edits {
                if bytes.is_empty() {
                    bytes.push(byte);
                    continue;
                }
                let at = at % bytes.len();
                match how {
                    0 => bytes[at] = byte,
                    1 => {
                        bytes.truncate(at);
                    }
                    2 => {
                        let tail = bytes[at..].to_vec();
                        bytes.extend_from_slice(&tail);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            bytes
        })
}

fn line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => shaped().prop_map(String::into_bytes),
        3 => mutated(),
        2 => reshaped().prop_map(String::into_bytes),
        1 => value().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

/// What the engine said over the whole run, for the report.
#[derive(Default, Debug)]
struct Counts {
    sent: u64,
    errors: u64,
    replies: u64,
    refusals: u64,
    closed: u64,
}

struct Client {
    proto: Proto,
    next_sentinel: u64,
}

impl Client {
    fn connect(socket: &Path) -> Client {
        let (proto, _) = Proto::connect(socket, false);
        Client {
            proto,
            next_sentinel: 1_000_000_000,
        }
    }
}

#[test]
fn generated_and_mutated_messages_are_answered_and_never_break_the_engine() {
    let cases = std::env::var("BATON_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(CI_CASES);
    let sandbox = sandbox(6);
    let live = RefCell::new(engine(&sandbox, true));
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    // Keeps the engine up even once the fuzz has settled every task.
    let mut holder = Proto::raw(&socket);
    holder.wait_for("the first overview", |m| m["type"] == "overview");
    holder.send(&json!({"type": "hello", "version": VERSION, "hold": true, "read_only": true}));

    let client = RefCell::new(Client::connect(&socket));
    let counts = RefCell::new(Counts::default());
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&line(), |mut bytes| {
        // A shutdown is a legitimate way to stop the engine; not a finding.
        if String::from_utf8_lossy(&bytes).contains("shutdown") {
            return Ok(());
        }
        bytes.retain(|b| *b != b'\n');
        bytes.push(b'\n');
        let mut c = client.borrow_mut();
        let mut n = counts.borrow_mut();
        n.sent += 1;
        c.next_sentinel += 1;
        let sentinel = c.next_sentinel;
        c.proto.send_raw(&bytes);
        c.proto.send(&json!({"type": "overview", "id": sentinel}));
        loop {
            // Every message is JSON (`try_next` fails the test otherwise),
            // and one comes within its deadline (a hang fails it too).
            match c.proto.try_next() {
                None => {
                    n.closed += 1;
                    *c = Client::connect(&socket);
                    break;
                }
                Some(m) if m["type"] == "overview" && m["id"] == sentinel => break,
                Some(m) if m["type"] == "error" => n.errors += 1,
                Some(m) if m["type"] == "reply" && m["ok"] == false => n.refusals += 1,
                Some(m) if m["type"] == "reply" => n.replies += 1,
                Some(_) => {}
            }
        }
        let mut engine = live.borrow_mut();
        if engine.has_exited() {
            return Err(TestCaseError::fail(format!(
                "the engine died on {:?}\n{}",
                String::from_utf8_lossy(&bytes),
                engine.stderr()
            )));
        }
        Ok(())
    });
    let counts = counts.into_inner();
    eprintln!(
        "socket fuzz: {cases} cases, {} lines sent: {} errors, {} refusals, {} replies, {} connections closed by the engine; panics 0, hangs 0, engine deaths 0",
        counts.sent, counts.errors, counts.refusals, counts.replies, counts.closed
    );
    if let Err(e) = result {
        panic!("{e}");
    }
    let mut live = live.into_inner();
    assert!(!live.has_exited(), "the engine died:\n{}", live.stderr());
    // Still serving, and nothing panicked inside it along the way.
    let (_, overview) = Proto::connect(&socket, true);
    assert_eq!(overview["pipeline"], "remote-test");
    drop(holder);
    live.signal(libc::SIGTERM);
    let out = live.wait();
    assert!(!out.stderr.contains("panicked"), "{out}");
    assert!(counts.sent as f64 >= f64::from(cases) * 0.9, "{counts:?}");
}
