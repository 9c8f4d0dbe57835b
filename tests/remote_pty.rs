//! The dashboard over the control socket, in a pseudo-terminal: detach and
//! attach again, watch an engine die and come back, read-only, and the
//! demo's folder on quit and on detach.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pty.rs"]
mod pty;
#[path = "support/remote.rs"]
mod remote;

use std::path::{Path, PathBuf};

use cli::{baton, is_alive, output, wait_for};
use pty::{REVIEW_PIPELINE, Term, setup_with};
use remote::{engine, sandbox, socket_of, wait_all, wait_for_socket};

/// The pid in a state folder's LOCK.
fn engine_pid(state: &Path) -> u32 {
    std::fs::read_to_string(state.join("LOCK"))
        .expect("LOCK")
        .trim()
        .parse()
        .expect("a pid in LOCK")
}

fn wait_until_gone(pid: u32) {
    wait_for(&format!("engine pid {pid} to end"), || {
        (!is_alive(pid)).then_some(())
    });
}

/// Quits: `q`, and `y` if the dashboard asks; returns the exit status.
fn quit(term: &mut Term) -> u32 {
    term.send("q");
    wait_for("the dashboard to quit or ask", || {
        if term.exited().is_some() {
            return Some(());
        }
        if term.contents().contains("Quit the dashboard?") {
            term.send("y");
            return Some(());
        }
        None
    });
    term.wait_exit(30)
}

#[test]
fn detach_leaves_the_run_going_and_attach_comes_back_to_it() {
    let dir = tempfile::tempdir().unwrap();
    setup_with(dir.path(), REVIEW_PIPELINE, &["t1"]);
    let state = dir.path().join("state");
    let run = [
        "run",
        "p.toml",
        "--input",
        "in.jsonl",
        "--state-dir",
        "state",
    ];
    let mut term = Term::spawn(&run, dir.path(), 120, 40, &[("USER", "operator")]);
    term.wait_for("1 need you", 30);
    term.send("d");
    assert_eq!(term.wait_exit(30), 0);
    let screen = term.contents();
    assert!(screen.contains("detached"), "{screen}");
    assert!(
        screen.contains("baton attach --state-dir state"),
        "{screen}"
    );

    // The engine runs on without a terminal, and answers the CLI.
    let pid = engine_pid(&state);
    assert!(is_alive(pid));
    let out = output(baton().args(["list", "--state-dir"]).arg(&state));
    assert!(out.stdout.contains("awaiting_review"), "{out}");

    let attach = ["attach", "--state-dir", "state"];
    let mut term = Term::spawn(&attach, dir.path(), 120, 40, &[("USER", "operator")]);
    term.wait_for("1 need you", 30);
    // The header counts before the table's first page is read: the keys
    // below act on the selected task, so wait until t1 is selected.
    term.wait_for("Detail · t1", 30);
    // Keys act through the socket: B raises t1's budget in the engine.
    term.send("B");
    term.wait_for("Raise the budget of t1", 10);
    term.send("$3\r");
    wait_for("t1's budget raised by the engine", || {
        let t1 = output(
            baton()
                .args(["show", "t1", "--json", "--state-dir"])
                .arg(&state),
        );
        let t1: serde_json::Value = serde_json::from_str(&t1.stdout).ok()?;
        (t1["budget"]["usd"] == 3.0).then_some(())
    });
    term.send("a");
    term.wait_for("1 completed", 30);
    // Quitting an attached dashboard does not ask: the engine is not stopped by it.
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
    // Every task is final and nobody is attached: the engine ends.
    wait_until_gone(pid);
    let t1 = output(
        baton()
            .args(["show", "t1", "--json", "--state-dir"])
            .arg(&state),
    );
    let t1: serde_json::Value = serde_json::from_str(&t1.stdout).unwrap();
    assert_eq!(t1["state"], "completed");
    assert_eq!(t1["decisions"][0]["by"]["user"], cli::os_user());
}

#[test]
fn an_attached_dashboard_says_when_the_engine_dies_and_reconnects_when_it_is_back() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let attach = ["attach", "--state-dir", "state"];
    let mut term = Term::spawn(&attach, sandbox.root(), 140, 40, &[]);
    term.wait_for("1 need you", 30);

    live.kill9();
    term.wait_for("ENGINE GONE", 30);
    // While it is gone, actions are refused with the reason.
    term.send("a");
    term.wait_for("not connected", 30);

    let live = engine(&sandbox, false);
    term.wait_until("the reconnection", 60, |s| {
        !s.contains("ENGINE GONE") && s.contains("reconnected to the engine")
    });
    // Resynced from the new engine: decisions work again.
    term.send("a");
    term.wait_for("1 blocked", 30);
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
    assert!(
        std::os::unix::net::UnixStream::connect(&socket).is_ok(),
        "left running"
    );
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn a_read_only_dashboard_says_actions_are_refused() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let attach = ["attach", "--read-only", "--state-dir", "state"];
    let mut term = Term::spawn(&attach, sandbox.root(), 140, 40, &[]);
    term.wait_for("READ-ONLY", 30);
    term.send("a");
    term.wait_for("approve t1 refused: read-only", 30);
    // So is raising a budget, which asks first like anywhere else.
    term.send("B");
    term.wait_for("Raise the budget of t1", 10);
    term.send("$5\r");
    term.wait_for("raise the budget of t1 refused: read-only", 30);
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
    assert!(sandbox.show("t1").get("decisions").is_none());
    assert!(sandbox.show("t1")["budget"]["usd"].is_null());
    live.signal(libc::SIGTERM);
    live.wait().expect(143);
}

#[test]
fn attach_on_a_stopped_run_opens_it_read_only_and_says_so() {
    let sandbox = sandbox(1);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    live.signal(libc::SIGTERM);
    live.wait().expect(143);

    let attach = ["attach", "--state-dir", "state"];
    let mut term = Term::spawn(&attach, sandbox.root(), 140, 40, &[]);
    term.wait_for("STOPPED · READ-ONLY", 30);
    term.wait_for("1 need you", 30);
    term.wait_for("awaiting_review", 30);
    // The detail of the stored task is there to read.
    term.wait_for("output needs approval", 30);
    term.send("a");
    term.wait_for(
        "approve t1 refused: no engine is running on this folder",
        30,
    );
    // Nothing to stop: quitting does not ask.
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
    assert!(sandbox.show("t1").get("decisions").is_none());
    assert_eq!(sandbox.show("t1")["state"], "awaiting_review");
}

/// The demo folders in `tmp`.
fn demo_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("baton-demo-"))
        })
        .collect()
}

#[test]
fn the_demo_cleans_up_when_quit_and_keeps_its_folder_when_detached() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let demo = ["demo", "--tasks", "3"];

    let mut term = Term::spawn(&demo, tmp.path(), 140, 40, &[("TMPDIR", tmpdir)]);
    term.wait_for("demo-dev-squad", 30);
    assert_eq!(demo_dirs(tmp.path()).len(), 1);
    quit(&mut term);
    assert!(
        term.contents().contains("removed the demo folder"),
        "{}",
        term.contents()
    );
    assert!(
        demo_dirs(tmp.path()).is_empty(),
        "the demo folder is removed"
    );

    let mut term = Term::spawn(&demo, tmp.path(), 140, 40, &[("TMPDIR", tmpdir)]);
    term.wait_for("demo-dev-squad", 30);
    term.send("d");
    assert_eq!(term.wait_exit(30), 0);
    let dirs = demo_dirs(tmp.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let screen = term.contents();
    assert!(
        screen.contains(dirs[0].file_name().unwrap().to_str().unwrap()),
        "the folder is named: {screen}"
    );
    // Stop the demo's engine, left running by the detach.
    let pid = engine_pid(&dirs[0].join("state"));
    // SAFETY: a plain signal to the engine this test started.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGTERM);
    }
    wait_until_gone(pid);
    // The engine kept the run log, and closed it when it stopped.
    let log = run_log(&dirs[0].join("state"));
    assert!(log.contains("- pipeline: demo-dev-squad ("), "{log}");
    assert_eq!(log.matches("### Summary · ").count(), 1, "{log}");
}

/// The run log in a state folder, once per run.
fn run_log(state: &Path) -> String {
    let log = std::fs::read_to_string(state.join("RUN_LOG.md")).expect("a run log");
    assert_eq!(log.matches("# baton run log").count(), 1, "{log}");
    assert_eq!(log.matches("## Run started · ").count(), 1, "{log}");
    log
}

#[test]
fn the_demo_in_a_folder_of_ones_choosing_keeps_it_and_its_run_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("demo");
    let dir_arg = dir.to_str().unwrap();
    let mut term = Term::spawn(
        &["demo", "--tasks", "3", "--dir", dir_arg],
        tmp.path(),
        140,
        40,
        &[("USER", "operator")],
    );
    term.wait_for("demo-dev-squad", 30);
    quit(&mut term);
    let screen = term.contents();
    assert!(!screen.contains("removed the demo folder"), "{screen}");
    assert!(dir.join("state").is_dir());
    let log = run_log(&dir.join("state"));
    assert!(
        log.contains(&format!("- started by: {}", cli::os_user())),
        "{log}"
    );
    assert!(log.contains("**DEV-"), "{log}");
    assert_eq!(log.matches("### Summary · ").count(), 1, "{log}");
}

/// A run whose every task is final is finished, not crashed: the attached
/// dashboard says so with the exit status when the engine ends.
#[test]
fn a_finished_run_says_finished_not_engine_gone() {
    let sandbox = sandbox(1);
    // One phase that asks for a review: approved, the task completes.
    sandbox.write("pipeline.toml", REVIEW_PIPELINE);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    let attach = ["attach", "--state-dir", "state"];
    let mut term = Term::spawn(&attach, sandbox.root(), 160, 40, &[]);
    term.wait_for("1 need you", 30);
    term.wait_for("Detail · t1", 30);
    term.send("a");
    let screen = term.wait_until("the run to finish", 60, |s| s.contains("FINISHED"));
    assert!(!screen.contains("ENGINE GONE"), "{screen}");
    // The --wait engine ends once every task is final and nobody holds it.
    live.wait();
    let screen = term.wait_until("the engine's end said", 30, |s| {
        s.contains("the engine has ended")
    });
    assert!(!screen.contains("ENGINE GONE"), "{screen}");
    assert!(screen.contains("all done (exit 0)"), "{screen}");
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
}

/// `q` says that quitting stops the engine and offers `d`; the footer shows
/// `d` too; a read-only dashboard lists no action keys.
#[test]
fn quit_says_it_stops_the_engine_and_offers_detach_and_read_only_shows_no_actions() {
    let dir = tempfile::tempdir().unwrap();
    setup_with(dir.path(), REVIEW_PIPELINE, &["t1"]);
    let run = [
        "run",
        "p.toml",
        "--input",
        "in.jsonl",
        "--state-dir",
        "state",
    ];
    let mut term = Term::spawn(&run, dir.path(), 160, 40, &[]);
    term.wait_for("1 need you", 30);
    let screen = term.wait_until("the whole frame, down to the footer", 10, |s| {
        s.lines().last().is_some_and(|l| l.contains("quit"))
    });
    let footer = screen.lines().last().unwrap_or_default().to_string();
    assert!(footer.contains("d detach"), "{footer}");
    assert!(footer.contains("a approve"), "{footer}");
    term.send("q");
    // The dialog can arrive over more than one read: wait for all of it.
    let screen = term.wait_until("the whole quit dialog", 10, |s| {
        s.contains("Quit the dashboard?") && s.contains("detach: leave it running")
    });
    assert!(screen.contains("Quitting stops the engine"), "{screen}");
    term.send("d");
    assert_eq!(term.wait_exit(30), 0);
    assert!(term.contents().contains("detached"), "{}", term.contents());
    let state = dir.path().join("state");
    let pid = engine_pid(&state);
    assert!(is_alive(pid), "d left the engine running");

    let attach = ["attach", "--read-only", "--state-dir", "state"];
    let mut term = Term::spawn(&attach, dir.path(), 160, 40, &[]);
    term.wait_for("READ-ONLY", 30);
    let screen = term.wait_until("the whole frame, down to the footer", 10, |s| {
        s.lines().last().is_some_and(|l| l.contains("quit"))
    });
    let footer = screen.lines().last().unwrap_or_default().to_string();
    assert!(!footer.contains("approve"), "no action keys: {footer}");
    assert!(footer.contains("q quit"), "{footer}");
    term.send("q");
    assert_eq!(term.wait_exit(30), 0);
    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    wait_until_gone(pid);
}

/// The demo's terminal is closed (its dashboard dies): with nobody watching
/// and nothing left to run, its engine ends after a while and removes the
/// temporary folder, instead of waiting forever over it.
#[test]
fn a_demo_whose_terminal_closes_ends_and_cleans_up() {
    let tmp = tempfile::tempdir().unwrap();
    let tmpdir = tmp.path().to_str().unwrap();
    let demo = ["demo", "--tasks", "3"];
    let term = Term::spawn(
        &demo,
        tmp.path(),
        140,
        40,
        &[("TMPDIR", tmpdir), ("BATON_DEMO_LINGER", "1")],
    );
    term.wait_for("demo-dev-squad", 30);
    let dirs = demo_dirs(tmp.path());
    assert_eq!(dirs.len(), 1);
    let engine = engine_pid(&dirs[0].join("state"));
    // The window is shut: the dashboard gets SIGHUP and is gone.
    let dashboard = term.pid().expect("the dashboard's pid");
    unsafe {
        libc::kill(dashboard as i32, libc::SIGHUP);
    }
    wait_until_gone(engine);
    wait_for("the demo folder to go", || {
        demo_dirs(tmp.path()).is_empty().then_some(())
    });
}
