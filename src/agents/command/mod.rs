//! The `command` agent: one child process per attempt, the request as one
//! JSON line on stdin, the reply as one JSON object on stdout, and stderr
//! lines as the attempt's trace.
//!
//! The child runs directly (no shell, so task data is never interpreted) in
//! a process group of its own; timeouts, oversized replies and cancellation
//! kill that whole group, and every descendant it started, inside the group
//! or not, is killed when the attempt ends (see `contain`).

mod contain;
mod group;
mod io;
mod procfs;
mod reply;

use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::process::Command;
use tokio::time::{Instant, sleep_until};

use super::{Agent, AgentRequest, BoxFuture, CallContext, CallResult, Failure};
use crate::engine::event::ErrorClass;
use crate::spec::model::CommandSpec;
use contain::Attempt;
use group::{ProcessGroup, signal_name};
use io::{TraceLog, read_capped, read_lines, write_request};

pub use contain::{TOKEN_VAR, is_subreaper, kill_leftovers, own_all_children};
pub use reply::{ParsedReply, ReplyError, parse_reply};

/// Exit code asking for another try (`EX_TEMPFAIL` in sysexits.h).
pub const EXIT_TEMPFAIL: i32 = 75;

/// After the child exits, how long its pipes may stay open. Only processes
/// that left its group (daemons) can hold them that long.
const DRAIN_GRACE: Duration = Duration::from_secs(2);

/// How long to wait for a killed child to be reaped before leaving it to
/// the runtime, which reaps dropped children in the background.
const REAP_WAIT: Duration = Duration::from_secs(5);

pub struct CommandAgent {
    spec: Arc<CommandSpec>,
}

impl CommandAgent {
    pub fn new(spec: CommandSpec) -> CommandAgent {
        CommandAgent {
            spec: Arc::new(spec),
        }
    }
}

impl Agent for CommandAgent {
    fn model(&self) -> Option<&str> {
        self.spec.model.as_deref()
    }

    fn call(&self, request: Arc<AgentRequest>, ctx: CallContext) -> BoxFuture<CallResult> {
        Box::pin(run(self.spec.clone(), request, ctx))
    }
}

/// How the pipes and the child ended up, when the call stopped watching.
struct Finish {
    status: Option<std::io::Result<ExitStatus>>,
    overflow: bool,
    timed_out: bool,
}

async fn run(spec: Arc<CommandSpec>, request: Arc<AgentRequest>, ctx: CallContext) -> CallResult {
    // A timeout too large to add (say `Duration::MAX`) means no deadline
    // worth having; a year stands in for it rather than overflowing.
    let now = Instant::now();
    let deadline = now
        .checked_add(ctx.timeout)
        .unwrap_or_else(|| now + Duration::from_secs(365 * 24 * 3600));
    let mut input = match serde_json::to_vec(&*request) {
        Ok(bytes) => bytes,
        Err(e) => {
            return CallResult::failed(
                ErrorClass::Fatal,
                format!("cannot encode the request: {e}"),
            );
        }
    };
    input.push(b'\n');

    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .envs(&spec.env)
        .process_group(0);
    group::die_with_parent(&mut command);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Cancellation drops the child; tokio then kills it and reaps it in
        // the background, while the guards below kill its descendants.
        .kill_on_drop(true);
    let (contained, spawned) = Attempt::spawn(&mut command);
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            contained.finish().await;
            return CallResult::failed(ErrorClass::Spawn, spawn_message(&spec, &e));
        }
    };
    let mut group = ProcessGroup::new(child.id().unwrap_or(0));
    // Declared after the child and its group, so dropped before them: on
    // cancellation the tree is still whole when it is walked.
    let mut contained = contained;
    let (Some(stdin), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return CallResult::failed(ErrorClass::Spawn, "child started without its pipes");
    };

    let mut out = Vec::new();
    let mut log = TraceLog::new(ctx.trace.clone());
    let mut finish = Finish {
        status: None,
        overflow: false,
        timed_out: false,
    };
    {
        let writer = write_request(stdin, input);
        let reader = read_capped(stdout, spec.max_output_bytes, &mut out);
        let errors = read_lines(stderr, &mut log);
        tokio::pin!(writer, reader, errors);
        let (mut wrote, mut read_out, mut read_err) = (false, false, false);
        let mut grace: Option<Instant> = None;
        loop {
            tokio::select! {
                _ = &mut writer, if !wrote => wrote = true,
                r = &mut reader, if !read_out => {
                    read_out = true;
                    if r.is_err() {
                        finish.overflow = true;
                        contained.sweep().await;
                        group.kill();
                    }
                }
                _ = &mut errors, if !read_err => read_err = true,
                s = child.wait(), if finish.status.is_none() => {
                    if s.is_ok() {
                        // What it left behind (background helpers, daemons
                        // that may hold the pipes) goes with it.
                        contained.leader_reaped();
                        contained.sweep().await;
                        group.leader_reaped();
                    }
                    finish.status = Some(s);
                    grace = Some(Instant::now() + DRAIN_GRACE);
                }
                _ = sleep_until(grace.unwrap_or(deadline)), if grace.is_some() => break,
                _ = sleep_until(deadline) => {
                    finish.timed_out = true;
                    break;
                }
            }
            if finish.status.is_some() && read_out && read_err {
                break;
            }
        }
    }

    // A child that exited in time but whose pipes stayed open (a daemon it
    // started holds them) is judged by what it wrote; only a child still
    // running at the deadline timed out.
    let exited = matches!(finish.status, Some(Ok(_)));
    if finish.status.is_none() {
        // Timed out, or gave up waiting after an oversized reply.
        contained.sweep().await;
        group.kill();
        if let Ok(s) = tokio::time::timeout(REAP_WAIT, child.wait()).await {
            finish.status = Some(s);
            contained.leader_reaped();
            group.leader_reaped();
        }
    }
    contained.finish().await;
    log.flush();
    let program = spec.program.display().to_string();

    let result = if finish.overflow {
        Err(Failure::new(
            ErrorClass::Protocol,
            with_stderr(
                format!(
                    "reply exceeded {} bytes on stdout; `{program}` was killed (raise max_output_bytes if replies this large are expected)",
                    spec.max_output_bytes
                ),
                &log,
            ),
        ))
    } else if finish.timed_out && !exited {
        Err(Failure::new(
            ErrorClass::Timeout,
            with_stderr(
                format!(
                    "no reply within {:?}; killed `{program}` and every process it started",
                    ctx.timeout
                ),
                &log,
            ),
        ))
    } else {
        match finish.status {
            Some(Ok(status)) => {
                let model = request.model.as_deref().or(spec.model.as_deref());
                judge(model, &program, status, &out, &log)
            }
            Some(Err(e)) => Err(Failure::new(
                ErrorClass::Crashed,
                with_stderr(format!("lost track of `{program}`: {e}"), &log),
            )),
            None => Err(Failure::new(
                ErrorClass::Crashed,
                with_stderr(format!("`{program}` did not exit after being killed"), &log),
            )),
        }
    };
    let (reply, usage) = match result {
        Ok(parsed) => (Ok(parsed.reply), parsed.usage),
        Err(f) => (Err(f), None),
    };
    CallResult {
        reply,
        usage,
        trace: log.into_lines(),
        http: None,
        retry_after: None,
    }
}

/// The outcome of a child that exited: a well-formed reply wins whatever
/// the status; otherwise the status says what went wrong.
fn judge(
    default_model: Option<&str>,
    program: &str,
    status: ExitStatus,
    out: &[u8],
    log: &TraceLog,
) -> Result<ParsedReply, Failure> {
    let no_reply = out.iter().all(u8::is_ascii_whitespace);
    let bad_reply = if no_reply {
        None
    } else {
        match parse_reply(out, default_model) {
            Ok(parsed) => return Ok(parsed),
            Err(e) => Some(e),
        }
    };
    let (class, what) = if let Some(signal) = status.signal() {
        let name = signal_name(signal)
            .map(|n| format!(" ({n})"))
            .unwrap_or_default();
        (
            ErrorClass::Crashed,
            format!("`{program}` was killed by signal {signal}{name}"),
        )
    } else {
        match status.code() {
            Some(0) => match bad_reply {
                Some(e) => {
                    return Err(Failure::new(
                        ErrorClass::Protocol,
                        with_stderr(e.to_string(), log),
                    ));
                }
                None => (
                    ErrorClass::Protocol,
                    format!("`{program}` exited 0 without a reply"),
                ),
            },
            Some(EXIT_TEMPFAIL) => (
                ErrorClass::Retryable,
                format!("`{program}` exited {EXIT_TEMPFAIL} (temporary failure)"),
            ),
            Some(code) => (ErrorClass::Fatal, format!("`{program}` exited {code}")),
            None => (
                ErrorClass::Crashed,
                format!("`{program}` ended with {status}"),
            ),
        }
    };
    // A broken reply from a child that failed anyway is most likely cut short
    // by that failure, so the status decides the class.
    let message = match bad_reply {
        Some(e) => format!("{what}; its stdout was no valid reply: {e}"),
        None if status.success() => what,
        None => format!("{what} without a reply"),
    };
    Err(Failure::new(class, with_stderr(message, log)))
}

/// Appends the last stderr lines, which usually say why.
fn with_stderr(message: String, log: &TraceLog) -> String {
    let tail: Vec<String> = log.tail().map(reply::preview).collect();
    if tail.is_empty() {
        message
    } else {
        format!("{message}; stderr ends: {}", tail.join(" "))
    }
}

fn spawn_message(spec: &CommandSpec, e: &std::io::Error) -> String {
    let program = spec.program.display();
    // A missing working directory fails the spawn with the same error as a
    // missing program; say which it is.
    if !spec.cwd.is_dir() {
        return format!(
            "cannot start `{program}`: working directory {} does not exist or is not a folder ({e}); check `cwd` in the pipeline file; relative paths are resolved against the pipeline's folder",
            spec.cwd.display()
        );
    }
    format!(
        "cannot start `{program}`: {e}; check `command` in the pipeline file (the program must exist and be executable); relative paths are resolved against the pipeline's folder"
    )
}
