//! What commands print when things go wrong around them: `--json` commands
//! print a JSON error object (a damaged database, a full disk); a reader
//! that goes away (`baton list | head`) ends the printing quietly, with no
//! panic, and does not stop a run.

#[path = "support/cli.rs"]
mod cli;

use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::Stdio;

use cli::{Out, Sandbox, baton, output};
use serde_json::{Value, json};

const SIM: &str = r#"
name = "output"
[defaults]
concurrency = 64
[agents.sim]
kind = "sim"
latency = "0ms"
review_rate = 0.0
[[phases]]
id = "one"
agent = "sim"
"#;

fn sim_sandbox(tasks: usize) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", SIM);
    let inputs: Vec<Value> = (0..tasks)
        .map(|i| json!({"id": format!("task-with-a-longish-name-{i:05}")}))
        .collect();
    sandbox.inputs(&inputs);
    sandbox
}

/// Fails unless stdout is one JSON object with the error and the status.
#[track_caller]
fn assert_json_error(out: &Out, code: i32, says: &str) {
    out.expect(code);
    let v: Value = serde_json::from_str(out.stdout.trim())
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e})\n{out}"));
    let error = v["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {v}"));
    assert!(error.contains(says), "{v}");
    assert_eq!(v["exit_code"], code, "{v}");
    assert!(out.stderr.contains("error: "), "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
}

#[test]
fn json_commands_print_a_json_error_object_on_failure() {
    let sandbox = sim_sandbox(3);
    sandbox.run().expect(0);
    // A task that is not there.
    let out = sandbox.cli(&["show", "nope", "--json"]);
    assert_json_error(&out, 1, "no task \"nope\"");

    // A full disk (a file size limit stands in for it): the decision cannot
    // be written.
    let mut cmd = baton();
    cmd.args([
        "retry",
        "task-with-a-longish-name-00001",
        "--json",
        "--state-dir",
    ])
    .arg(sandbox.state());
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
            let lim = libc::rlimit {
                rlim_cur: 0,
                rlim_max: libc::RLIM_INFINITY,
            };
            if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let out = output(&mut cmd);
    assert_json_error(&out, 2, "");

    // A damaged database.
    let db = sandbox.state().join("baton.db");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes.iter_mut().take(4096).for_each(|b| *b = b'x');
    std::fs::write(&db, &bytes).unwrap();
    for args in [
        &["list", "--json"][..],
        &["show", "task-with-a-longish-name-00001", "--json"],
        &["summary", "--json"],
        &["review", "--json"],
        &["approve", "task-with-a-longish-name-00001", "--json"],
    ] {
        let out = sandbox.cli(args);
        assert_json_error(&out, 2, "baton.db");
    }
}

/// Runs `cmd` with a stdout whose reader has gone away.
fn with_closed_stdout(cmd: &mut std::process::Command) -> Out {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let child = cmd
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    cli::Live::from_child(child).wait()
}

#[test]
fn a_reader_that_goes_away_ends_the_printing_quietly() {
    let sandbox = sim_sandbox(3000);
    // The run's lines (one per task, far more than a pipe holds) go
    // nowhere; the run goes on to the end all the same.
    let mut run = baton();
    run.arg("run")
        .arg(sandbox.path("pipeline.toml"))
        .args(["--headless", "--input"])
        .arg(sandbox.path("tasks.jsonl"))
        .arg("--state-dir")
        .arg(sandbox.state());
    let out = with_closed_stdout(&mut run);
    assert!(!out.stderr.contains("panicked"), "{out}");
    out.expect(0);
    let states = sandbox.states();
    assert_eq!(states.len(), 3000);
    assert!(states.values().all(|s| s == "completed"));

    // `baton list | head`: ended by the closed pipe, as `cat` would be.
    for args in [&["list"][..], &["list", "--json"]] {
        let mut cmd = baton();
        cmd.args(args).arg("--state-dir").arg(sandbox.state());
        let out = with_closed_stdout(&mut cmd);
        assert!(!out.stderr.contains("panicked"), "{args:?}\n{out}");
        assert!(out.stderr.is_empty(), "{args:?} said something\n{out}");
        assert!(
            out.status.success() || out.status.signal() == Some(libc::SIGPIPE),
            "{args:?}\n{out}"
        );
    }
}
