//! The state folder is private: 0700, every file in it 0600, whatever the
//! umask; a folder found more open is tightened with a warning; a folder of
//! another user is refused with the way out, root included, and another
//! user's `approve` is told so rather than "permission denied".

#[path = "support/cli.rs"]
mod cli;
#[path = "support/remote.rs"]
mod remote;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;

use cli::{Live, Out, Sandbox, baton, output};
use remote::{socket_of, wait_all, wait_for_socket};
use serde_json::json;

const REVIEWED: &str = r#"
name = "private"

[agents.sim]
kind = "sim"
latency = "0ms"

[[phases]]
id = "draft"
agent = "sim"
review = "always"
"#;

fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.write("pipeline.toml", REVIEWED);
    sandbox.inputs(&[json!({"id": "t1", "note": "chest pain"})]);
    sandbox
}

fn is_root() -> bool {
    // SAFETY: geteuid only reads the process's credentials.
    unsafe { libc::geteuid() == 0 }
}

/// `baton ARGS --state-dir STATE` with the umask at 0, as a careless
/// profile might leave it.
fn open_umask(sandbox: &Sandbox, args: &[&str]) -> std::process::Command {
    let mut cmd = baton();
    cmd.args(args).arg("--state-dir").arg(sandbox.state());
    // SAFETY: umask is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            libc::umask(0);
            Ok(())
        });
    }
    cmd
}

/// Everything in `dir` (one level) with its mode.
fn modes(dir: &Path) -> Vec<(String, u32)> {
    let mut out: Vec<(String, u32)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let mode = e.metadata().unwrap().mode() & 0o777;
            (e.file_name().to_string_lossy().into_owned(), mode)
        })
        .collect();
    out.sort();
    out
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().mode() & 0o777
}

#[test]
fn the_folder_and_every_file_in_it_are_private_whatever_the_umask() {
    let sandbox = sandbox();
    let pipeline = sandbox.path("pipeline.toml");
    let tasks = sandbox.path("tasks.jsonl");
    let mut cmd = open_umask(
        &sandbox,
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--headless",
            "--wait",
            "--input",
            tasks.to_str().unwrap(),
        ],
    );
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let live = Live::from_child(child);
    wait_for_socket(&socket_of(&sandbox.state()));
    wait_all(&sandbox.state(), "awaiting_review");
    // While the engine runs, SQLite's -wal and -shm are there too.
    let seen = modes(&sandbox.state());
    let names: Vec<&str> = seen.iter().map(|(n, _)| n.as_str()).collect();
    for want in [
        "LOCK",
        "RUN_LOG.md",
        "baton.db",
        "baton.db-shm",
        "baton.db-wal",
        "baton.sock",
        "pipeline.source",
        "pipeline.toml",
    ] {
        assert!(names.contains(&want), "no {want} in {names:?}");
    }
    assert_eq!(mode(&sandbox.state()), 0o700, "the state folder");
    for (name, mode) in &seen {
        assert_eq!(*mode, 0o600, "{name} is {mode:o}: {seen:?}");
    }
    // A decision made with the same umask adds nothing more open.
    output(&mut open_umask(&sandbox, &["approve", "t1"])).expect(0);
    live.signal(libc::SIGTERM);
    live.wait();
    for (name, mode) in modes(&sandbox.state()) {
        assert_eq!(mode, 0o600, "{name} is {mode:o} after the run");
    }
}

#[test]
fn a_folder_open_to_others_is_tightened_with_a_warning() {
    let sandbox = sandbox();
    sandbox.run().expect(3);
    std::fs::set_permissions(sandbox.state(), std::fs::Permissions::from_mode(0o755)).unwrap();
    for name in ["baton.db", "RUN_LOG.md", "pipeline.toml"] {
        let path = sandbox.state().join(name);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let out = sandbox.resume();
    out.expect(3);
    assert!(
        out.stderr.contains("warning: the state folder")
            && out.stderr.contains("was open to other users")
            && out.stderr.contains("baton.db was 644"),
        "{out}"
    );
    assert_eq!(mode(&sandbox.state()), 0o700);
    for (name, mode) in modes(&sandbox.state()) {
        assert_eq!(mode, 0o600, "{name} is {mode:o}");
    }
    // Said once: the next run finds nothing to tighten.
    let again = sandbox.resume();
    assert!(!again.stderr.contains("open to other users"), "{again}");
}

/// What refusing a folder of another user must say.
fn assert_refused_as_not_theirs(out: &Out, owner: &str) {
    out.expect(2);
    assert!(out.stderr.contains("is not yours"), "{out}");
    assert!(out.stderr.contains(owner), "names the owner {owner}: {out}");
    assert!(
        out.stderr.contains("chown -R") && out.stderr.contains("--state-dir"),
        "says the way out: {out}"
    );
    assert!(!out.stderr.contains("ermission denied"), "{out}");
    assert!(!out.stderr.contains("panicked"), "{out}");
}

fn chown_all(dir: &Path, uid: u32) {
    let status = std::process::Command::new("chown")
        .args(["-R", &format!("{uid}:{uid}")])
        .arg(dir)
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn root_is_refused_a_folder_of_another_user_and_leaves_no_file_in_it() {
    let sandbox = sandbox();
    sandbox.run().expect(3);
    if !is_root() {
        eprintln!("not root: cannot give the folder away; checking that one's own folder is taken");
        sandbox.cli(&["list"]).expect(0);
        return;
    }
    chown_all(&sandbox.state(), 65534);
    let before = modes(&sandbox.state());
    for out in [
        sandbox.resume(),
        sandbox.cli(&["list"]),
        sandbox.cli(&["show", "t1"]),
        sandbox.cli(&["approve", "t1"]),
    ] {
        assert_refused_as_not_theirs(&out, "uid 65534");
    }
    assert_eq!(
        modes(&sandbox.state()),
        before,
        "files were added or changed"
    );
    for e in std::fs::read_dir(sandbox.state()).unwrap() {
        let e = e.unwrap();
        assert_eq!(e.metadata().unwrap().uid(), 65534, "{:?}", e.file_name());
    }
    // One file of another user inside one's own folder is refused too.
    chown_all(&sandbox.state(), 0);
    chown_all(&sandbox.state().join("RUN_LOG.md"), 65534);
    let out = sandbox.resume();
    assert_refused_as_not_theirs(&out, "uid 65534");
    assert!(out.stderr.contains("RUN_LOG.md"), "names the file: {out}");
}

#[test]
fn another_users_approve_on_a_socket_left_by_a_killed_engine_is_told_the_folder_is_not_theirs() {
    let sandbox = sandbox();
    let live = remote::engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&sandbox.state(), "awaiting_review");
    live.kill9();
    assert!(socket.exists(), "the killed engine left its socket");
    if !is_root() {
        eprintln!("not root: no second user to ask as; checking the owner's own approve");
        let out = sandbox.cli(&["approve", "t1"]);
        out.expect(0);
        assert!(out.stderr.contains("carries on from here"), "{out}");
        return;
    }
    // Others may reach the folder, as in a shared project directory.
    std::fs::set_permissions(sandbox.root(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = output(
        baton()
            .args(["approve", "t1", "--state-dir"])
            .arg(sandbox.state())
            .uid(65534)
            .gid(65534),
    );
    assert_refused_as_not_theirs(&out, "root (uid 0)");
    let out = output(
        baton()
            .args(["approve", "t1", "--json", "--state-dir"])
            .arg(sandbox.state())
            .uid(65534)
            .gid(65534),
    );
    out.expect(2);
    assert!(!out.stderr.contains("ermission denied"), "{out}");
    // The owner's approve goes through to the folder.
    sandbox.cli(&["approve", "t1"]).expect(0);
}
