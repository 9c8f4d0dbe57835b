//! The dashboard of `baton run` and `baton demo`, with the engine in a
//! process of its own.
//!
//! Why a second process: detaching (`d`) must give the terminal back to the
//! shell while the run goes on, and a process cannot both return the
//! terminal to its shell and keep running in the foreground job. So the
//! engine always runs as `baton run --headless --wait` in a new session
//! (setsid: no controlling terminal, so a closed terminal or a dropped SSH
//! connection sends it no SIGHUP), writing its output to `engine.log` in the
//! state folder, and this process attaches to it over the control socket
//! like `baton attach` does, asking it to stay up while attached. `q` asks
//! the engine to stop and waits for it; `d` just leaves. The dashboard is
//! the same either way, and an engine crash can no longer take the terminal
//! with it.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use baton::engine::{Command, Link, TaskState};
use baton::remote::ConnectError;
use baton::remote::client::{ClientOptions, connect_dir};
use baton::remote::remote_handle;
use baton::tui::{Exit, TuiOptions};

/// The file in the state folder that a background engine writes to.
pub const ENGINE_LOG: &str = "engine.log";

/// What to start the engine with.
pub struct Plan<'a> {
    /// `None`: the folder's kept pipeline.
    pub pipeline_file: Option<&'a Path>,
    pub input: Option<&'a Path>,
    pub state_dir: &'a Path,
    /// `--budget` settings, handed on to the engine.
    pub budgets: &'a [super::budget::BudgetSetting],
    /// `--disable` and `--only`, handed on to the engine.
    pub switches: &'a super::run::Switches,
    /// For a demo: end the engine once nobody watches and nothing is left
    /// to run, after this long, and remove this folder.
    pub linger: Option<(u64, Option<&'a Path>)>,
}

/// How the dashboard ended.
pub enum Ended {
    /// The operator quit; the engine stopped with this exit status.
    Stopped(i32),
    /// The operator detached; the engine runs on.
    Detached,
    /// Nothing ran, or something broke; the reason was said.
    Failed(i32),
}

impl Ended {
    pub fn code(&self) -> i32 {
        match self {
            Ended::Stopped(c) | Ended::Failed(c) => *c,
            Ended::Detached => 0,
        }
    }
}

pub async fn run(plan: Plan<'_>, opts: TuiOptions) -> Ended {
    let state_dir = plan.state_dir;
    if let Ok(conn) = connect_dir(state_dir, ClientOptions::default()).await {
        eprintln!(
            "error: state folder {} is in use by baton (pid {}); stop it or use another --state-dir\n  help: `baton attach --state-dir {}` opens its dashboard",
            state_dir.display(),
            conn.pid,
            state_dir.display()
        );
        return Ended::Failed(2);
    }
    let (mut child, log_path, mut log_from) = match spawn(&plan) {
        Ok(started) => started,
        Err(e) => {
            eprintln!("error: cannot start the engine: {e}");
            return Ended::Failed(2);
        }
    };
    // Wait for the engine to answer on its socket, or to give up.
    let (handle, pid) = loop {
        if let Ok(Some(status)) = child.try_wait() {
            relay(&log_path, &mut log_from);
            return Ended::Failed(exit_code(status));
        }
        let hold = ClientOptions {
            logs: true,
            live: true,
            hold: true,
            read_only: false,
        };
        match remote_handle::attach(state_dir.to_path_buf(), hold).await {
            Ok(attached) => break attached,
            Err(ConnectError::NoEngine(_)) => {
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(20)) => {}
                    // Interrupted before the dashboard is up: the engine,
                    // out of reach of the terminal's signals, stops too.
                    _ = tokio::signal::ctrl_c() => {
                        if let Some(pid) = child.id() {
                            // SAFETY: a plain signal to our own unreaped child.
                            unsafe {
                                libc::kill(pid as libc::pid_t, libc::SIGTERM);
                            }
                        }
                        let _ = child.wait().await;
                        relay(&log_path, &mut log_from);
                        return Ended::Failed(130);
                    }
                }
            }
            Err(e) => {
                relay(&log_path, &mut log_from);
                eprintln!("error: {e}");
                eprintln!(
                    "the engine (pid {}) may still be running; its log is {}",
                    child.id().unwrap_or(0),
                    log_path.display()
                );
                return Ended::Failed(2);
            }
        }
    };
    // What it said while starting (new and resumed tasks, warnings).
    relay(&log_path, &mut log_from);
    let shown = baton::tui::run(handle.clone(), opts).await;
    let exit = match shown {
        Ok(exit) => exit,
        Err(e) => {
            eprintln!("error: the dashboard failed: {e:#}");
            Exit::Detach
        }
    };
    if exit == Exit::Detach {
        eprintln!(
            "detached: the run goes on in the background (engine pid {pid}, log {})\n  `baton attach --state-dir {}` comes back to it",
            log_path.display(),
            state_dir.display()
        );
        return Ended::Detached;
    }
    // Quit: the engine stops cleanly (the journal is finished; running
    // attempts run again next time).
    let connected = matches!(
        handle.link().map(|l| l.borrow().clone()),
        Some(Link::Connected { .. })
    );
    let counts = match handle.reader() {
        Some(reader) if connected => tokio::time::timeout(Duration::from_secs(5), reader.totals())
            .await
            .ok()
            .and_then(Result::ok)
            .map(|totals| {
                TaskState::ALL
                    .into_iter()
                    .zip(totals.states)
                    .filter(|(_, n)| *n > 0)
                    .collect::<Vec<(TaskState, u64)>>()
            }),
        _ => None,
    };
    let serving = match handle.link().map(|l| l.borrow().clone()) {
        Some(Link::Connected { pid, .. }) => Some(pid),
        _ => None,
    };
    let _ = handle.send(Command::Shutdown).await;
    let waited = child.wait().await;
    let code = if serving.is_some_and(|p| p != pid) {
        // Another engine serves the folder now (ours ended, and the
        // dashboard reconnected): our child's status is about a run that
        // was over; the status is the run's as it stands.
        match handle.reader() {
            Some(reader) => match reader.totals().await {
                Ok(t) => baton::engine::exit_status::of(|s| t.count(s)),
                Err(e) => {
                    eprintln!("error: cannot read the run: {e}");
                    2
                }
            },
            None => 2,
        }
    } else {
        match waited {
            Ok(status) => exit_code(status),
            Err(e) => {
                eprintln!("error: cannot wait for the engine: {e}");
                2
            }
        }
    };
    let said: Vec<String> = counts
        .unwrap_or_default()
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    eprintln!(
        "stopped: {}; `baton run` on {} carries on from here",
        if said.is_empty() {
            "the engine".to_string()
        } else {
            said.join(", ")
        },
        super::place::describe(state_dir)
    );
    Ended::Stopped(code)
}

/// Starts `baton run --headless --wait` in a new session, its output in the
/// state folder's engine log. Returns the child, the log, and where this
/// start's lines begin in it.
fn spawn(plan: &Plan<'_>) -> std::io::Result<(tokio::process::Child, PathBuf, u64)> {
    for w in baton::store::private::secure(plan.state_dir).map_err(std::io::Error::other)? {
        eprintln!("warning: {w}");
    }
    let log_path = plan.state_dir.join(ENGINE_LOG);
    let log = baton::store::private::append_file(&log_path)?;
    let from = log.metadata()?.len();
    let mut cmd = std::process::Command::new(std::env::current_exe()?);
    cmd.arg("run");
    if let Some(file) = plan.pipeline_file {
        cmd.arg(file);
    }
    cmd.args(["--headless", "--wait", "--state-dir"])
        .arg(plan.state_dir);
    // The store's address by the environment, where other users cannot
    // read it (a password in it would show in `ps` as an argument).
    if let Some(address) = super::place::address() {
        cmd.env("BATON_STORE", address);
    }
    if let Some(input) = plan.input {
        cmd.arg("--input").arg(input);
    }
    for arg in plan.budgets.iter().flat_map(|b| b.to_args()) {
        cmd.arg("--budget").arg(arg);
    }
    cmd.args(plan.switches.to_args());
    if let Some((secs, remove)) = plan.linger {
        cmd.arg("--linger").arg(secs.to_string());
        if let Some(dir) = remove {
            cmd.arg("--remove-after").arg(dir);
        }
    }
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe and touches no memory.
    unsafe {
        cmd.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = tokio::process::Command::from(cmd).spawn()?;
    Ok((child, log_path, from))
}

/// Copies what the engine wrote to its log since `from` to stderr.
fn relay(log: &Path, from: &mut u64) {
    let Ok(mut file) = std::fs::File::open(log) else {
        return;
    };
    let mut text = String::new();
    if file.seek(SeekFrom::Start(*from)).is_ok() && file.read_to_string(&mut text).is_ok() {
        *from += text.len() as u64;
        eprint!("{text}");
    }
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(2)
}
