//! The command agent against real child processes. Scripts run through
//! `/bin/sh -c` or `python3 -c`, so no test writes and then executes a file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use baton::agents::command::CommandAgent;
use baton::agents::{Agent, AgentRequest, CallContext, CallResult, Reply, TaskRef};
use baton::engine::event::ErrorClass;
use baton::engine::task::MAX_TRACE_LINES;
use baton::spec::model::CommandSpec;
use serde_json::{Map, Value, json};

/// Long enough never to fire on a loaded machine unless the test wants it.
const GENEROUS: Duration = Duration::from_secs(60);

fn spec(program: &str, args: &[&str], cwd: &Path) -> CommandSpec {
    CommandSpec {
        program: PathBuf::from(program),
        args: args.iter().map(|a| a.to_string()).collect(),
        cwd: cwd.to_path_buf(),
        env: BTreeMap::new(),
        max_output_bytes: 1 << 20,
        model: Some("house-model".into()),
    }
}

fn sh(script: &str, cwd: &Path) -> CommandSpec {
    spec("/bin/sh", &["-c", script], cwd)
}

fn request(input: Value) -> Arc<AgentRequest> {
    Arc::new(AgentRequest {
        task: TaskRef {
            id: "t-1".into(),
            input,
        },
        phase: "coding".into(),
        attempt: 2,
        outputs: Map::new(),
        feedback: Some("use the newer codes".into()),
        model: None,
        item: None,
        item_index: None,
        send_back: None,
    })
}

fn ctx(timeout: Duration) -> CallContext {
    CallContext {
        timeout,
        trace: None,
        progress: None,
        output_schema: None,
    }
}

async fn call(spec: CommandSpec) -> CallResult {
    CommandAgent::new(spec)
        .call(request(json!({"note": "hi"})), ctx(GENEROUS))
        .await
}

fn failure(r: &CallResult) -> (ErrorClass, String) {
    let f = r.reply.clone().expect_err("expected a failure");
    (f.class, f.message)
}

#[tokio::test]
async fn each_reply_shape() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            r#"{"output": {"codes": ["I10"]}}"#,
            Reply::Output {
                output: json!({"codes": ["I10"]}),
            },
        ),
        (
            r#"{"error": {"message": "rate limited", "retryable": true}}"#,
            Reply::Error {
                message: "rate limited".into(),
                retryable: true,
            },
        ),
        (
            r#"{"blocked": {"reason": "no note"}}"#,
            Reply::Blocked {
                reason: "no note".into(),
                escalation: Default::default(),
            },
        ),
        (
            r#"{"review": {"reason": "unsure"}, "output": 3}"#,
            Reply::Review {
                reason: "unsure".into(),
                output: json!(3),
                escalation: Default::default(),
            },
        ),
    ];
    for (reply, want) in cases {
        let r = call(sh(
            &format!("cat >/dev/null; printf '%s\\n' '{reply}'"),
            dir.path(),
        ))
        .await;
        assert_eq!(r.reply, Ok(want));
        assert_eq!(r.usage, None);
    }
}

#[tokio::test]
async fn request_arrives_as_one_json_line() {
    let dir = tempfile::tempdir().unwrap();
    let echo = r#"import sys, json
line = sys.stdin.readline()
rest = sys.stdin.read()
print(json.dumps({"output": {"request": json.loads(line), "rest": rest}}))"#;
    let r = call(spec("python3", &["-c", echo], dir.path())).await;
    let Ok(Reply::Output { output }) = r.reply else {
        panic!("{:?}", r.reply)
    };
    assert_eq!(output["rest"], "");
    assert_eq!(
        output["request"],
        json!({"task": {"id": "t-1", "input": {"note": "hi"}}, "phase": "coding", "attempt": 2,
               "outputs": {}, "feedback": "use the newer codes"})
    );
}

#[tokio::test]
async fn usage_falls_back_to_the_spec_model() {
    let dir = tempfile::tempdir().unwrap();
    let r = call(sh(
        r#"echo '{"output": 1, "usage": {"input_tokens": 12, "output_tokens": 34}}'"#,
        dir.path(),
    ))
    .await;
    let u = r.usage.unwrap();
    assert_eq!(u.model.as_deref(), Some("house-model"));
    assert_eq!((u.input_tokens, u.output_tokens), (12, 34));

    let r = call(sh(
        r#"echo '{"blocked": {"reason": "x"}, "usage": {"model": "claude-haiku-4-5", "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.5}}'"#,
        dir.path(),
    ))
    .await;
    let u = r.usage.unwrap();
    assert_eq!(u.model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(u.cost_usd, Some(0.5));
}

#[tokio::test]
async fn a_routed_model_is_in_the_request_and_prices_usage_that_names_none() {
    let dir = tempfile::tempdir().unwrap();
    let echo = r#"import sys, json
req = json.loads(sys.stdin.readline())
print(json.dumps({"output": {"model": req.get("model")}, "usage": {"input_tokens": 1, "output_tokens": 2}}))"#;
    let agent = CommandAgent::new(spec("python3", &["-c", echo], dir.path()));
    let mut req = (*request(json!({}))).clone();
    req.model = Some("claude-opus-4-5".into());
    let r = agent
        .call(Arc::new(req), ctx(Duration::from_secs(10)))
        .await;
    let Ok(Reply::Output { output }) = r.reply else {
        panic!("{:?}", r.reply)
    };
    assert_eq!(output["model"], "claude-opus-4-5");
    assert_eq!(
        r.usage.unwrap().model.as_deref(),
        Some("claude-opus-4-5"),
        "the routed model wins over the spec's"
    );
}

#[tokio::test]
async fn env_and_cwd_are_applied() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sh(
        r#"printf '{"output": {"cwd": "%s", "x": "%s"}}' "$(pwd -P)" "$BATON_TEST_X""#,
        dir.path(),
    );
    s.env.insert("BATON_TEST_X".into(), "forty two".into());
    let r = call(s).await;
    let Ok(Reply::Output { output }) = r.reply else {
        panic!("{:?}", r.reply)
    };
    assert_eq!(output["x"], "forty two");
    let want = dir.path().canonicalize().unwrap();
    assert_eq!(output["cwd"], want.display().to_string());
}

#[tokio::test]
async fn stderr_lines_become_the_trace_live_and_kept() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let agent = CommandAgent::new(sh(
        r#"echo 'reading the note' >&2; printf 'half a line\n\377 bad\n' >&2; echo '{"output": 1}'"#,
        dir.path(),
    ));
    let context = CallContext {
        timeout: GENEROUS,
        trace: Some(tx),
        progress: None,
        output_schema: None,
    };
    let r = agent.call(request(json!({})), context).await;
    assert_eq!(r.reply, Ok(Reply::Output { output: json!(1) }));
    assert_eq!(r.trace, ["reading the note", "half a line", "\u{fffd} bad"]);
    let mut live = Vec::new();
    while let Ok(line) = rx.try_recv() {
        live.push(line);
    }
    assert_eq!(live, r.trace);
}

#[tokio::test]
async fn exit_status_without_a_reply() {
    let dir = tempfile::tempdir().unwrap();

    let r = call(sh("echo 'overloaded, later' >&2; exit 75", dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Retryable);
    assert!(
        message.contains("exited 75") && message.contains("overloaded, later"),
        "{message}"
    );

    let r = call(sh("echo 'bad config' >&2; exit 1", dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Fatal);
    assert!(
        message.contains("exited 1 without a reply") && message.contains("bad config"),
        "{message}"
    );
    assert_eq!(r.trace, ["bad config"]);

    let r = call(sh("kill -SEGV $$", dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Crashed);
    assert!(message.contains("signal 11 (SIGSEGV)"), "{message}");

    let r = call(sh("true", dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Protocol);
    assert!(message.contains("exited 0 without a reply"), "{message}");
}

#[tokio::test]
async fn an_endless_timeout_is_no_problem() {
    let dir = tempfile::tempdir().unwrap();
    let r = CommandAgent::new(sh(r#"echo '{"output": 1}'"#, dir.path()))
        .call(request(json!({})), ctx(Duration::MAX))
        .await;
    assert_eq!(r.reply, Ok(Reply::Output { output: json!(1) }));
}

#[tokio::test]
async fn a_well_formed_reply_wins_over_the_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let r = call(sh(r#"echo '{"output": "fine"}'; exit 3"#, dir.path())).await;
    assert_eq!(
        r.reply,
        Ok(Reply::Output {
            output: json!("fine")
        })
    );
}

#[tokio::test]
async fn broken_replies_are_protocol_failures() {
    let dir = tempfile::tempdir().unwrap();
    let r = call(sh("echo 'Traceback: something broke'", dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Protocol);
    assert!(
        message.contains("not JSON") && message.contains("`Traceback: something broke`"),
        "{message}"
    );

    let r = call(sh(r#"printf '{"output": "\377"}'"#, dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Protocol);
    assert!(message.contains("offset 12"), "{message}");

    // Cut short by a failure: the status decides, the parse error is told.
    let r = call(sh(r#"printf '{"output": '; exit 2"#, dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Fatal);
    assert!(
        message.contains("exited 2") && message.contains("not JSON"),
        "{message}"
    );
}

#[tokio::test]
async fn endless_output_is_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = sh("yes '{\"output\": 1}'", dir.path());
    s.max_output_bytes = 64 * 1024;
    let r = call(s).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Protocol);
    assert!(message.contains("reply exceeded 65536 bytes"), "{message}");
}

#[tokio::test]
async fn spawn_failures_say_how_to_fix_them() {
    let dir = tempfile::tempdir().unwrap();
    let r = call(spec("/nonexistent/agent.py", &[], dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Spawn);
    assert!(
        message.contains("/nonexistent/agent.py") && message.contains("pipeline's folder"),
        "{message}"
    );

    let plain = dir.path().join("not-executable.sh");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let r = call(spec(plain.to_str().unwrap(), &[], dir.path())).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Spawn);
    assert!(message.contains("ermission denied"), "{message}");

    let r = call(spec("/bin/sh", &["-c", "true"], &dir.path().join("gone"))).await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Spawn);
    assert!(
        message.contains("working directory") && message.contains("cwd"),
        "{message}"
    );
}

#[tokio::test]
async fn a_large_request_and_a_chatty_child_do_not_deadlock() {
    let dir = tempfile::tempdir().unwrap();
    // 300 KB of stderr before reading 1 MiB of stdin: both pipes fill up
    // unless both are served at once.
    let chatty = r#"import sys, json
for i in range(3000):
    sys.stderr.write("line %d %s\n" % (i, "x" * 90))
sys.stderr.flush()
req = json.load(sys.stdin)
print(json.dumps({"output": {"len": len(req["task"]["input"]["note"])}}))"#;
    let big = "n".repeat(1 << 20);
    let r = CommandAgent::new(spec("python3", &["-c", chatty], dir.path()))
        .call(request(json!({ "note": big })), ctx(GENEROUS))
        .await;
    assert_eq!(
        r.reply,
        Ok(Reply::Output {
            output: json!({"len": 1 << 20})
        })
    );
    assert_eq!(r.trace.len(), MAX_TRACE_LINES + 1);
    assert_eq!(
        r.trace.last().unwrap(),
        &format!("… {} more lines", 3000 - MAX_TRACE_LINES)
    );
}

#[tokio::test]
async fn a_child_that_never_reads_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let r = CommandAgent::new(sh(r#"echo '{"output": "ignored you"}'"#, dir.path()))
        .call(
            request(json!({ "note": "n".repeat(1 << 20) })),
            ctx(GENEROUS),
        )
        .await;
    assert_eq!(
        r.reply,
        Ok(Reply::Output {
            output: json!("ignored you")
        })
    );
}

#[tokio::test]
async fn background_helpers_do_not_hold_the_call_open() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut s = sh(
        r#"sleep 1000 & echo $! > "$PIDS"; echo '{"output": 1}'"#,
        dir.path(),
    );
    s.env.insert("PIDS".into(), pids.display().to_string());
    let r = call(s).await;
    assert_eq!(r.reply, Ok(Reply::Output { output: json!(1) }));
    let helper = read_pid(&pids).await;
    assert_gone(helper, "background helper").await;
}

#[tokio::test]
async fn timeout_kills_the_whole_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut s = sh(
        r#"sleep 1000 & echo $! > "$PIDS.tmp"; mv "$PIDS.tmp" "$PIDS"; echo 'waiting' >&2; wait"#,
        dir.path(),
    );
    s.env.insert("PIDS".into(), pids.display().to_string());
    let r = CommandAgent::new(s)
        .call(request(json!({})), ctx(Duration::from_secs(5)))
        .await;
    let (class, message) = failure(&r);
    assert_eq!(class, ErrorClass::Timeout);
    assert!(
        message.contains("no reply within 5s") && message.contains("waiting"),
        "{message}"
    );
    let grandchild = read_pid(&pids).await;
    assert_gone(grandchild, "grandchild").await;
}

// The engine runs on the multi-threaded runtime; so does this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_call_kills_the_group() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    let mut s = sh(
        r#"sleep 1000 & echo "$$ $!" > "$PIDS.tmp"; mv "$PIDS.tmp" "$PIDS"; wait"#,
        dir.path(),
    );
    s.env.insert("PIDS".into(), pids.display().to_string());
    let agent = CommandAgent::new(s);
    let mut fut = agent.call(request(json!({})), ctx(GENEROUS));
    // Drive the call until the child has started its grandchild.
    let text = tokio::select! {
        r = &mut fut => panic!("call ended early: {:?}", r.reply),
        text = async {
            loop {
                if let Ok(text) = std::fs::read_to_string(&pids) {
                    break text;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => text,
    };
    drop(fut);
    let mut ids = text.split_whitespace().map(|p| p.parse::<i32>().unwrap());
    let (child, grandchild) = (ids.next().unwrap(), ids.next().unwrap());
    assert_gone(grandchild, "grandchild").await;
    assert_gone(child, "child").await;
}

async fn read_pid(path: &Path) -> i32 {
    for _ in 0..500 {
        if let Ok(text) = std::fs::read_to_string(path)
            && let Ok(pid) = text.trim().parse()
        {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no pid in {}", path.display());
}

/// Waits (generously; reaping happens in the background) until `pid` has
/// died. A zombie that is not ours counts as dead: reaping orphans is the
/// init process's job, and some containers' init does not do it.
async fn assert_gone(pid: i32, what: &str) {
    for _ in 0..1000 {
        if gone(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{what} {pid} still exists");
}

fn gone(pid: i32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    if unsafe { libc::kill(pid, 0) } != 0 {
        return std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH);
    }
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return true;
    };
    // "pid (comm) state ppid ...": comm may hold spaces, so split after ')'.
    let mut fields = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .unwrap_or("")
        .split_whitespace();
    let state = fields.next();
    let ppid: i32 = fields.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    state == Some("Z") && ppid != std::process::id() as i32
}

#[tokio::test]
async fn a_daemon_holding_the_pipes_does_not_hold_the_call() {
    let dir = tempfile::tempdir().unwrap();
    let pids = dir.path().join("pids");
    // setsid takes the sleeper out of the group, so no group kill reaches it
    // and it keeps stdout and stderr open after the child exits.
    let mut s = sh(
        r#"setsid sleep 60 & echo $! > "$PIDS"; echo '{"output": 1}'"#,
        dir.path(),
    );
    s.env.insert("PIDS".into(), pids.display().to_string());
    let r = CommandAgent::new(s)
        .call(request(json!({})), ctx(Duration::from_secs(40)))
        .await;
    let daemon = read_pid(&pids).await;
    // SAFETY: plain kill of the daemon this test started.
    unsafe { libc::kill(daemon, libc::SIGKILL) };
    // A reply, not a timeout: the daemon did not hold the call open.
    assert_eq!(r.reply, Ok(Reply::Output { output: json!(1) }));
}

/// `setsid sleep 600` in the background, its pid in `$PIDS`, then `rest`.
fn escaping(rest: &str, dir: &Path) -> (CommandSpec, PathBuf) {
    let pids = dir.join("pids");
    let mut s = sh(
        &format!(
            r#"setsid sleep 600 </dev/null >/dev/null 2>&1 & echo $! > "$PIDS.tmp"; mv "$PIDS.tmp" "$PIDS"; {rest}"#
        ),
        dir,
    );
    s.env.insert("PIDS".into(), pids.display().to_string());
    (s, pids)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_descendant_dies_when_the_agent_exits() {
    let dir = tempfile::tempdir().unwrap();
    let (s, pids) = escaping(r#"echo '{"output": 1}'"#, dir.path());
    let r = call(s).await;
    assert_eq!(r.reply, Ok(Reply::Output { output: json!(1) }));
    let escaped = read_pid(&pids).await;
    assert!(
        gone(escaped),
        "the setsid descendant {escaped} outlived the call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_descendant_dies_when_the_attempt_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let (s, pids) = escaping("sleep 600", dir.path());
    let r = CommandAgent::new(s)
        .call(request(json!({})), ctx(Duration::from_secs(3)))
        .await;
    assert_eq!(failure(&r).0, ErrorClass::Timeout);
    let escaped = read_pid(&pids).await;
    assert!(
        gone(escaped),
        "the setsid descendant {escaped} outlived the call"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setsid_descendant_dies_when_the_call_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let (s, pids) = escaping("sleep 600", dir.path());
    let agent = CommandAgent::new(s);
    let mut fut = agent.call(request(json!({})), ctx(GENEROUS));
    tokio::select! {
        r = &mut fut => panic!("call ended early: {:?}", r.reply),
        () = async {
            while !pids.exists() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        } => {}
    }
    drop(fut);
    let escaped = read_pid(&pids).await;
    assert_gone(escaped, "setsid descendant").await;
}
