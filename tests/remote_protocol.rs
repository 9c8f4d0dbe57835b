//! The control socket from the outside: a headless engine serving it, and
//! protocol clients (plain JSON lines) deciding, watching, misbehaving.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/remote.rs"]
mod remote;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use cli::{Sandbox, baton, wait_for};
use remote::{
    Proto, VERSION, act, assert_no_tasks, engine, sandbox, socket_of, wait_all, wait_all_but,
    wait_for_socket,
};
use serde_json::{Value, json};

/// A decision on `task`, recorded as the user the tests run as: every
/// client here is that user, whatever name it sends (`_claimed`).
fn is_decision(msg: &Value, task: &str, _claimed: &str) -> bool {
    msg["type"] == "event"
        && msg["event"]["task"] == task
        && msg["event"]["event"] == "decision_recorded"
        && msg["event"]["decision"]["by"]["user"] == cli::os_user()
}

#[test]
fn a_decision_from_one_client_reaches_the_other_and_the_second_of_two_is_refused() {
    let sandbox = sandbox(3);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");

    let (mut ann, _) = Proto::connect(&socket, false);
    let (mut bob, overview) = Proto::connect(&socket, false);
    assert_eq!(overview["pipeline"], "remote-test");
    assert_eq!(overview["phases"], json!(["draft", "fix"]));
    assert_eq!(remote::states(&sandbox.state()).len(), 3);

    // Ann approves; Bob sees it happen.
    let id = ann.command(act("t1", "approve", "ann"));
    let reply = ann.reply(id);
    assert_eq!(reply["ok"], true, "{reply}");
    bob.wait_for("ann's approval of t1", |m| is_decision(m, "t1", "ann"));

    // Both approve t2 at once: one wins, the other is told it was decided.
    let a = ann.command(act("t2", "approve", "ann"));
    let b = bob.command(act("t2", "approve", "bob"));
    let (ra, rb) = (ann.reply(a), bob.reply(b));
    let oks = [&ra, &rb].iter().filter(|r| r["ok"] == true).count();
    assert_eq!(oks, 1, "exactly one approval wins:\n{ra}\n{rb}");
    let lost = if ra["ok"] == true { &rb } else { &ra };
    let why = lost["refusal"].as_str().unwrap();
    assert!(why.contains("already decided by"), "{why}");

    // Blockers are settled the same way, and the other client sees it.
    wait_all_but(&sandbox.state(), "t3", "blocked");
    let id = bob.command(act("t1", "resolve_skip", "bob"));
    assert_eq!(bob.reply(id)["ok"], true);
    ann.wait_for("bob's resolution of t1", |m| is_decision(m, "t1", "bob"));
    for (task, action) in [("t2", "resolve_skip"), ("t3", "approve")] {
        let id = ann.command(act(task, action, "ann"));
        assert_eq!(ann.reply(id)["ok"], true);
    }
    remote::wait_for_state(&sandbox.state(), "t3", "blocked");
    let id = ann.command(act("t3", "resolve_skip", "ann"));
    assert_eq!(ann.reply(id)["ok"], true);

    // Every task is final and nobody holds the run: the engine ends, and
    // tells its clients by closing.
    ann.until_closed();
    bob.until_closed();
    let out = live.wait();
    out.expect(0);
    assert!(
        !socket.exists(),
        "the socket is removed when the engine stops"
    );
    let states = sandbox.states();
    assert!(states.values().all(|s| s == "completed"), "{states:?}");
}

#[test]
fn read_only_clients_watch_but_every_command_is_refused() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let (mut watcher, _) = Proto::connect(&socket, true);
    for command in [
        act("t1", "approve", "eve"),
        json!({"command": "pause", "by": {"user": "eve"}}),
        json!({"command": "raise_budget", "task": "t1", "usd": 9.0, "by": {"user": "eve"}}),
        json!({"command": "raise_budget", "tokens": 900000, "by": {"user": "eve"}}),
        json!({"command": "shutdown"}),
    ] {
        let id = watcher.command(command);
        let reply = watcher.reply(id);
        assert_eq!(reply["ok"], false, "{reply}");
        assert!(
            reply["refusal"].as_str().unwrap().starts_with("read-only"),
            "{reply}"
        );
    }
    // The whole run is no longer sent: a version 1 request says what to do.
    watcher.send(&json!({"type": "snapshot", "id": 42}));
    let gone = watcher.wait_for("the answer to a snapshot request", |m| m["id"] == 42);
    assert_eq!(gone["type"], "error", "{gone}");
    let said = gone["message"].as_str().unwrap();
    assert!(said.contains("gone"), "{said}");
    assert!(
        said.contains("store") && said.contains("baton.db"),
        "{said}"
    );
    assert!(said.contains("\"overview\""), "{said}");
    // An overview is asked for by id, and answered with it.
    watcher.send(&json!({"type": "overview", "id": 43}));
    let answer = watcher.wait_for("the overview asked for", |m| {
        m["type"] == "overview" && m["id"] == 43
    });
    let overview = &answer["overview"];
    assert_no_tasks(overview);
    assert_eq!(overview["budget"]["run_raise"], json!({}));
    assert_eq!(overview["paused"], false);
    assert_eq!(remote::states(&sandbox.state())["t1"], "awaiting_review");
    assert_eq!(sandbox.show("t1").get("decisions"), None);
    assert!(
        sandbox
            .show("t1")
            .get("budget")
            .is_none_or(|b| b == &json!({}))
    );

    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn budgets_are_raised_over_the_socket_and_every_client_sees_it() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let (mut ann, _) = Proto::connect(&socket, false);
    let (mut bob, _) = Proto::connect(&socket, false);

    let id = ann.command(json!({
        "command": "raise_budget", "task": "t1", "usd": 2.5, "tokens": 5000,
        "by": {"user": "ann"}
    }));
    assert_eq!(ann.reply(id)["ok"], true);
    let seen = bob.wait_for("ann's raise of t1", |m| {
        m["type"] == "event" && m["event"]["event"] == "budget_raised" && m["event"]["task"] == "t1"
    });
    assert_eq!(seen["event"]["usd"], 2.5, "{seen}");
    assert_eq!(seen["event"]["by"]["user"], cli::os_user(), "{seen}");

    let id =
        bob.command(json!({"command": "raise_budget", "tokens": 900000, "by": {"user": "bob"}}));
    assert_eq!(bob.reply(id)["ok"], true);
    ann.wait_for("bob's raise of the run", |m| {
        m["type"] == "event"
            && m["event"]["event"] == "budget_raised"
            && m["event"].get("task").is_none()
    });
    // Budgets only go up: a lower one is refused with the engine's reason.
    let id = ann.command(json!({"command": "raise_budget", "tokens": 10, "by": {"user": "ann"}}));
    let reply = ann.reply(id);
    assert_eq!(reply["ok"], false, "{reply}");
    assert!(
        reply["refusal"].as_str().unwrap().contains("only go up"),
        "{reply}"
    );

    let (_, overview) = Proto::connect(&socket, true);
    assert_eq!(
        overview["budget"]["run_raise"]["tokens"], 900000,
        "{overview}"
    );
    let t1 = sandbox.show("t1");
    assert_eq!(t1["budget"], json!({"usd": 2.5, "tokens": 5000}), "{t1}");

    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    assert_eq!(
        sandbox.show("t1")["budget"],
        json!({"usd": 2.5, "tokens": 5000})
    );
}

#[test]
fn the_socket_is_private_and_a_stale_one_is_replaced() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    let mode = std::fs::metadata(&socket).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "socket mode {mode:o}");

    // Killed: the socket file stays behind but nobody answers.
    wait_all(&sandbox.state(), "awaiting_review");
    live.kill9();
    assert!(socket.exists());
    assert!(std::os::unix::net::UnixStream::connect(&socket).is_err());
    // Commands see that no engine runs and use the folder.
    let out = sandbox.cli(&["list", "--state", "awaiting_review"]);
    out.expect(0);
    assert!(out.stdout.contains("t1"), "{out}");

    // The next engine replaces the stale socket and serves.
    let live = engine(&sandbox, false);
    wait_for_socket(&socket);
    let (_, overview) = Proto::connect(&socket, false);
    assert_eq!(overview["pipeline"], "remote-test");
    assert_eq!(remote::states(&sandbox.state())["t1"], "awaiting_review");
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    assert!(!socket.exists());
}

#[test]
fn malformed_messages_get_errors_and_the_engine_carries_on() {
    let sandbox = sandbox(1);
    let mut live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");

    let error = |p: &mut Proto| {
        p.wait_for("an error", |m| m["type"] == "error")["message"]
            .as_str()
            .unwrap()
            .to_string()
    };

    // Before hello, commands are refused; garbage and unknown types get errors.
    let mut p = Proto::raw(&socket);
    p.command(act("t1", "approve", "mallory"));
    assert!(error(&mut p).contains("say hello first"));
    p.send_raw(b"this is not json\n");
    assert!(error(&mut p).contains("not JSON"));
    p.send(&json!({"type": "dance", "id": 9}));
    let msg = p.wait_for("an error", |m| m["type"] == "error");
    assert_eq!(msg["id"], 9, "the error names the message's id: {msg}");
    p.send(&json!({"type": "command", "id": 10, "command": {"command": "explode"}}));
    let msg = p.wait_for("an error", |m| m["type"] == "error");
    assert_eq!(msg["id"], 10, "{msg}");
    assert!(
        msg["message"].as_str().unwrap().contains("command"),
        "{msg}"
    );
    // An unknown version ends the conversation.
    p.send(&json!({"type": "hello", "version": 99}));
    assert!(error(&mut p).contains("version 99 is not supported"));
    assert!(
        p.until_closed().is_empty(),
        "closed after the version error"
    );

    // Half a line, then the client stops writing.
    let (mut p, _) = Proto::connect(&socket, false);
    p.send_raw(b"{\"type\":\"comm");
    p.stream.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(error(&mut p).contains("middle of a line"));
    p.until_closed();

    // A line over the cap: the connection is closed, nothing else happens.
    let (mut p, _) = Proto::connect(&socket, false);
    let mut writer = p.stream.try_clone().unwrap();
    let flood = std::thread::spawn(move || {
        let chunk = vec![b'x'; 64 * 1024];
        for _ in 0..40 {
            if std::io::Write::write_all(&mut writer, &chunk).is_err() {
                return;
            }
        }
    });
    let said = p.until_closed();
    flood.join().unwrap();
    for m in said.iter().filter(|m| m["type"] == "error") {
        assert!(
            m["message"].as_str().unwrap().contains("longer than"),
            "{m}"
        );
    }

    // Through all of it the engine kept going and still takes decisions.
    assert!(!live.has_exited(), "the engine died:\n{}", live.stderr());
    let (mut p, _) = Proto::connect(&socket, false);
    let id = p.command(act("t1", "approve", "ann"));
    assert_eq!(p.reply(id)["ok"], true);
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn a_peer_of_another_user_is_refused_and_logged() {
    // SAFETY: geteuid only reads the process's credentials.
    if unsafe { libc::geteuid() } != 0 {
        // Without root there is no second uid to connect as; the check
        // itself is tested in `remote::peer`.
        eprintln!("skipped: needs root to connect as another user");
        return;
    }
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    // Open the door wide, as a careless admin might: the peer check still holds.
    for dir in [sandbox.root(), sandbox.state().as_path()] {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).unwrap();
    // An attached dashboard's log pane hears of the refusal too.
    let mut watcher = Proto::raw(&socket);
    watcher.wait_for("the first overview", |m| m["type"] == "overview");
    watcher.send(&json!({"type": "hello", "version": VERSION, "read_only": true, "logs": true}));
    watcher.send(&json!({"type": "overview", "id": 1}));
    watcher.wait_for("the hello to be taken", |m| {
        m["type"] == "overview" && m["id"] == 1
    });
    let client = "import socket, sys\ns = socket.socket(socket.AF_UNIX)\ns.connect(sys.argv[1])\nprint(s.makefile().readline().strip())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", client])
        .arg(&socket)
        .uid(65534)
        .gid(65534)
        .output()
        .expect("run python3 as nobody");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let msg: Value = serde_json::from_str(&said).unwrap();
    assert_eq!(msg["type"], "error", "{msg}");
    assert!(
        msg["message"]
            .as_str()
            .unwrap()
            .contains("refused a connection from uid 65534"),
        "{msg}"
    );
    wait_for("the refusal in the engine's log", || {
        live.stderr().contains("uid 65534 (pid ").then_some(())
    });
    let logged = watcher.wait_for("the refusal as a log line", |m| m["type"] == "log");
    assert_eq!(logged["level"], "WARN", "{logged}");
    assert!(
        logged["message"].as_str().unwrap().contains("uid 65534"),
        "{logged}"
    );
    // The owner is still welcome.
    let (_, overview) = Proto::connect(&socket, true);
    assert_eq!(overview["pipeline"], "remote-test");
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn a_state_folder_too_deep_for_a_socket_path_serves_from_the_runtime_dir() {
    let sandbox = sandbox(1);
    let runtime = tempfile::tempdir().unwrap();
    let deep = sandbox.path(&format!("{}/{}/state", "d".repeat(50), "e".repeat(50)));
    let child = baton()
        .arg("run")
        .arg(sandbox.path("pipeline.toml"))
        .args(["--headless", "--wait", "--input"])
        .arg(sandbox.path("tasks.jsonl"))
        .arg("--state-dir")
        .arg(&deep)
        .env("XDG_RUNTIME_DIR", runtime.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let live = cli::Live::from_child(child);
    let pointer = deep.join("baton.sock.path");
    let socket = wait_for("the pointer to the socket", || {
        std::fs::read_to_string(&pointer).ok()
    });
    let socket = std::path::PathBuf::from(socket.trim());
    assert!(socket.starts_with(runtime.path()), "{}", socket.display());
    wait_for_socket(&socket);
    wait_all(&deep, "awaiting_review");
    // Commands find it through the pointer.
    let out = cli::output(baton().args(["approve", "t1", "--state-dir"]).arg(&deep));
    out.expect(0);
    assert!(out.stderr.contains("the running engine (pid"), "{out}");
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    assert!(!socket.exists() && !pointer.exists(), "both are removed");

    // Without a runtime dir to fall back on, a --wait engine says why it cannot serve.
    let out = cli::output(
        baton()
            .arg("run")
            .arg(sandbox.path("pipeline.toml"))
            .args(["--headless", "--wait", "--state-dir"])
            .arg(&deep)
            .env_remove("XDG_RUNTIME_DIR"),
    );
    out.expect(2);
    assert!(
        out.stderr.contains("more than a Unix socket allows"),
        "{out}"
    );
    assert!(
        out.stderr.contains("help: use a shorter --state-dir"),
        "{out}"
    );
}

#[test]
fn a_client_too_slow_for_the_stream_gets_a_fresh_overview() {
    let sandbox = Sandbox::new();
    sandbox.write(
        "pipeline.toml",
        r#"
name = "flood"
[defaults]
concurrency = 256
[agents.sim]
kind = "sim"
latency = "0ms"
tokens = "10..20"
model = "claude-haiku-4-5"
[[phases]]
id = "draft"
agent = "sim"
review = "always"
"#,
    );
    // More events than the engine's broadcast keeps, with the socket's
    // buffer, even when the client connects after the engine has run a
    // good part of them (on a loaded machine, it may).
    let tasks = 16_000;
    let inputs: Vec<Value> = (1..=tasks)
        .map(|i| json!({"id": format!("t{i}")}))
        .collect();
    sandbox.inputs(&inputs);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    let (mut slow, first) = Proto::connect(&socket, false);
    let mut seen = first["seq"].as_u64().unwrap();

    // Read slowly (the server drops a client that takes nothing for long)
    // until the engine has committed far more than its broadcast keeps past
    // what this client has seen, then read as fast as it sends.
    let keeps = 16_384;
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut far_behind = false;
    let fresh = loop {
        assert!(
            Instant::now() < deadline,
            "no fresh overview: the client never fell behind the stream"
        );
        let msg = slow.next();
        match msg["type"].as_str() {
            Some("overview") => break msg,
            Some("event") => seen = msg["event"]["seq"].as_u64().unwrap(),
            _ => {}
        }
        if !far_behind {
            far_behind = remote::last_seq(&sandbox.state()) > seen + keeps + 8192;
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    // Nobody asked: it says the client missed events, and the stream goes
    // on after it.
    assert!(fresh.get("id").is_none(), "nobody asked: {fresh}");
    let overview = &fresh["overview"];
    assert_no_tasks(overview);
    let covered = overview["seq"].as_u64().unwrap();
    assert!(covered > seen + keeps, "{covered} after {seen}");

    // Every task held: the engine is quiet. Catch up with the stream (this
    // client may fall behind again meanwhile, and be sent another overview),
    // so that the approval's event is not covered by one.
    wait_all(&sandbox.state(), "awaiting_review");
    let last = remote::last_seq(&sandbox.state());
    slow.wait_for("the stream to catch up", |m| {
        m["event"]["seq"]
            .as_u64()
            .or_else(|| m["overview"]["seq"].as_u64())
            .is_some_and(|seq| seq >= last)
    });
    let id = slow.command(act("t1", "approve", "ann"));
    // The event is durable, and sent, before the reply.
    let approval = slow.wait_for("t1's approval", |m| is_decision(m, "t1", "ann"));
    assert!(
        approval["event"]["seq"].as_u64().unwrap() > covered,
        "{approval}"
    );
    assert_eq!(slow.reply(id)["ok"], true);
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn commands_from_one_connection_take_effect_in_the_order_sent() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let (mut ann, _) = Proto::connect(&socket, false);
    let by = json!({"user": "ann"});

    // Sent all at once, without waiting for any answer: a pause, a run of
    // budget raises (each must be above the one before, or it is refused),
    // an approval and a resume.
    let raises: Vec<u64> = (1..=60).map(|i| 100_000 + i).collect();
    let mut ids = vec![ann.command(json!({"command": "pause", "by": by}))];
    for tokens in &raises {
        ids.push(ann.command(json!({"command": "raise_budget", "tokens": tokens, "by": by})));
    }
    ids.push(ann.command(act("t1", "approve", "ann")));
    ids.push(ann.command(json!({"command": "resume", "by": by})));

    // Every one is carried out, and the replies come back in the order sent.
    let mut replied = Vec::new();
    while replied.len() < ids.len() {
        let msg = ann.wait_for("a reply", |m| m["type"] == "reply" || m["type"] == "error");
        assert_eq!(msg["type"], "reply", "{msg}");
        assert_eq!(msg["ok"], true, "{msg}");
        replied.push(msg["id"].as_u64().unwrap());
    }
    assert_eq!(replied, ids);

    // The engine's journal has them in the order sent.
    let ours: Vec<(String, Value)> = remote::events(&sandbox.state())
        .into_iter()
        .filter(|(_, _, body)| {
            let me = cli::os_user();
            body["by"]["user"] == me || body["decision"]["by"]["user"] == me
        })
        .map(|(_, kind, body)| (kind, body))
        .collect();
    let kinds: Vec<&str> = ours.iter().map(|(k, _)| k.as_str()).collect();
    let mut want = vec!["run_paused"];
    want.extend(std::iter::repeat_n("budget_raised", raises.len()));
    want.extend(["decision_recorded", "run_resumed"]);
    assert_eq!(kinds, want);
    let tokens: Vec<u64> = ours
        .iter()
        .filter(|(k, _)| k == "budget_raised")
        .map(|(_, b)| b["tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(tokens, raises);

    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

/// A command agent that says something on stderr, then takes its time.
const SLOW_TALKER: &str = r#"
name = "remote-live"

[agents.talker]
kind = "command"
command = ["python3", "-c", "import sys, time; print('reading the note', file=sys.stderr, flush=True); time.sleep(8)"]

[[phases]]
id = "draft"
agent = "talker"
"#;

#[test]
fn live_updates_reach_clients_that_ask_for_them() {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", SLOW_TALKER);
    sandbox.inputs(&[json!({"id": "t1"})]);
    let _live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);

    let mut quiet = Proto::raw(&socket);
    assert_eq!(quiet.next()["type"], "hello");
    assert_eq!(quiet.next()["type"], "overview");
    quiet.send(&json!({"type": "hello", "version": VERSION}));
    let mut watcher = Proto::raw(&socket);
    assert_eq!(watcher.next()["type"], "hello");
    assert_eq!(watcher.next()["type"], "overview");
    watcher.send(&json!({"type": "hello", "version": VERSION, "live": true}));

    let trace = watcher.wait_for("the agent's stderr line, live", |m| {
        m["type"] == "live" && m["live"]["kind"]["line"] == "reading the note"
    });
    assert_eq!(trace["live"]["task"], "t1", "{trace}");
    assert_eq!(trace["live"]["phase"], "draft", "{trace}");
    // The attempt is still running: nothing final has been said about it.
    while let Some(m) = quiet.try_next() {
        assert_ne!(m["type"], "live", "a client that did not ask got {m}");
    }
}

#[test]
fn a_remote_handle_reads_the_run_from_the_store_and_asks_the_engine_for_overviews() {
    use baton::engine::{Actor, Command};
    use baton::remote::{ClientOptions, remote_handle};

    let sandbox = sandbox(3);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (handle, pid) = remote_handle::attach(sandbox.state(), ClientOptions::default())
            .await
            .unwrap();
        assert_eq!(pid, live.pid());
        let reader = handle.reader().expect("a reader of the run's store");
        assert_eq!(reader.totals().await.unwrap().tasks, 3);
        let first = handle.overview().await.unwrap();
        assert_eq!(first.pipeline, "remote-test");
        assert!(!first.paused);

        // After a command, the overview is the engine's, not the one from
        // the connection.
        let by = Actor {
            user: "ann".into(),
            ssh_client: None,
        };
        handle.send(Command::Pause { by }).await.unwrap();
        let paused = handle.overview().await.unwrap();
        assert!(paused.paused);
        assert!(paused.seq > first.seq, "{} after {}", paused.seq, first.seq);

        // A snapshot for tools: the tasks from the store, the rest from an overview.
        let snapshot = handle.snapshot().await.unwrap();
        assert_eq!(snapshot.tasks.len(), 3);
        assert!(snapshot.paused);
        assert!(snapshot.seq >= paused.seq);
    });
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn a_decision_records_the_peer_the_kernel_names_not_the_name_the_client_sends() {
    let sandbox = sandbox(3);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let (mut p, _) = Proto::connect(&socket, false);

    // Over-long fields are refused, each with the figures; nothing is recorded.
    let long_name = act("t1", "approve", &"m".repeat(100_000));
    let mut long_note = act("t1", "approve", "ann");
    long_note["note"] = json!("n".repeat(10_001));
    let mut long_feedback = act("t1", "reject", "ann");
    long_feedback["action"] = json!({"action": "send_back", "feedback": "f".repeat(10_001)});
    let mut long_address = act("t1", "approve", "ann");
    long_address["by"]["ssh_client"] = json!("1".repeat(5_000));
    for (command, what) in [
        (long_name, "user name is longer than 1000"),
        (long_note, "note is longer than 10000"),
        (long_feedback, "feedback is longer than 10000"),
        (long_address, "SSH address is longer than 1000"),
    ] {
        let id = p.command(command);
        let reply = p.reply(id);
        assert_eq!(reply["ok"], false, "{reply}");
        let refusal = reply["refusal"].as_str().unwrap();
        assert!(refusal.contains(what), "{refusal}");
    }
    assert_eq!(remote::states(&sandbox.state())["t1"], "awaiting_review");

    // A forged name: recorded as the peer the kernel names, the address as claimed.
    let mut forged = act("t1", "approve", "the-ceo");
    forged["by"]["ssh_client"] = json!("203.0.113.7");
    forged["note"] = json!("n".repeat(10_000));
    let id = p.command(forged);
    assert_eq!(p.reply(id)["ok"], true);
    let recorded = remote::events(&sandbox.state())
        .into_iter()
        .rev()
        .find(|(_, kind, _)| kind == "decision_recorded")
        .expect("the decision is recorded")
        .2;
    let by = &recorded["decision"]["by"];
    assert_eq!(by["user"], cli::os_user(), "{recorded}");
    assert_eq!(by["uid"], cli::os_uid(), "{recorded}");
    assert_eq!(by["ssh_client"], "203.0.113.7", "{recorded}");
    let shown = sandbox.cli(&["show", "t1"]);
    assert!(
        shown
            .stdout
            .contains("(ssh from 203.0.113.7, as its client claims)"),
        "{shown}"
    );
    assert!(!shown.stdout.contains("the-ceo"), "{shown}");
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}
