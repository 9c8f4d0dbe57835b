//! Helpers for tests that drive the real `baton` binary: a sandbox folder
//! with a pipeline, inputs and a scriptable command agent; runs with a
//! deadline; live runs to signal or kill; the state read back as JSON.
//!
//! Declared from a test file with `#[path = "support/cli.rs"] mod cli;`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_baton");

/// Longest any single command may take before the test gives up on it.
pub const COMMAND_DEADLINE: Duration = Duration::from_secs(90);

/// Longest a condition is polled for.
pub const POLL_DEADLINE: Duration = Duration::from_secs(45);

/// The agent every test pipeline uses. It reads the request, looks up what
/// to do in the task's input, and replies:
///
/// - `input.do[phase]`: `ok` (default), `review` (asks for a review unless
///   the request carries feedback), `fail` (retryable error), `fatal`,
///   `block`, `hang` (sleeps for ten minutes), `grandchild` (starts a
///   background `sleep`, writes its pid to `input.pidfile`, then hangs),
///   `escape` (starts `setsid sleep 600`, which leaves the agent's process
///   group and session, writes its pid to `input.pidfile`, then replies) or
///   `escape_hang` (the same, then hangs).
///   A list gives one action per attempt, the last one repeating.
/// - `input.sleep_ms`: a number, or an object by phase: sleep before replying.
/// - `input.pidfile`: with `hang`, the agent writes its own pid there.
///
/// The output names task, phase, attempt, the feedback received, the phases
/// whose outputs it saw, and a random nonce. With a side log path as its
/// argument, each reply carrying output first appends
/// `task phase attempt nonce` to that file.
pub const AGENT_PY: &str = r#"
import json, os, subprocess, sys, time, uuid

req = json.loads(sys.stdin.readline())
task = req["task"]["id"]
inp = req["task"]["input"]
phase = req["phase"]
attempt = req["attempt"]
feedback = req.get("feedback")

def pick(value, default):
    if isinstance(value, dict):
        value = value.get(phase, default)
    if isinstance(value, list):
        value = value[min(attempt, len(value)) - 1] if value else default
    return default if value is None else value

action = pick(inp.get("do", {}), "ok")
time.sleep(pick(inp.get("sleep_ms", 0), 0) / 1000.0)

def write_pid(pid):
    path = inp["pidfile"]
    with open(path + ".tmp", "w") as f:
        f.write(str(pid))
    os.rename(path + ".tmp", path)

if action == "hang":
    if "pidfile" in inp:
        write_pid(os.getpid())
    time.sleep(600)
if action == "grandchild":
    child = subprocess.Popen(["sleep", "600"])
    write_pid(child.pid)
    time.sleep(600)
if action in ("escape", "escape_hang"):
    quiet = subprocess.DEVNULL
    child = subprocess.Popen(["setsid", "sleep", "600"], stdin=quiet, stdout=quiet, stderr=quiet)
    write_pid(child.pid)
    if action == "escape_hang":
        time.sleep(600)

out = {
    "task": task,
    "phase": phase,
    "attempt": attempt,
    "feedback": feedback,
    "seen": sorted(req["outputs"].keys()),
    "nonce": uuid.uuid4().hex,
}
if action == "fail":
    reply = {"error": {"message": "transient trouble", "retryable": True}}
elif action == "fatal":
    reply = {"error": {"message": "fatal trouble", "retryable": False}}
elif action == "block":
    reply = {"blocked": {"reason": "needs a credential"}}
elif action == "block_detail":
    reply = {"blocked": {"reason": "needs a credential", "attempted": ["read the vault", "asked the ticket"], "severity": "high"}}
elif action == "review" and feedback is None:
    reply = {"review": {"reason": "please check"}, "output": out}
elif action.startswith("send_back:"):
    rounds = (req.get("send_back") or {}).get("rounds", 0)
    feedback_out = "round %d: cover the error cases" % (rounds + 1)
    reply = {"send_back": {"to": action.split(":", 1)[1], "feedback": feedback_out}, "output": out}
else:
    reply = {"output": out}

if "output" in reply and len(sys.argv) > 1:
    fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.write(fd, ("%s %s %d %s\n" % (task, phase, attempt, out["nonce"])).encode())
    os.close(fd)
sys.stdout.write(json.dumps(reply))
"#;

/// Two phases in a row on the agent script, with fast retries.
pub const TWO_PHASES: &str = r#"
[defaults]
retry = { max_attempts = 2, initial_delay = "10ms", max_delay = "20ms" }

[[phases]]
id = "one"
agent = "a"

[[phases]]
id = "two"
agent = "a"
after = ["one"]
"#;

/// How a finished command ended and what it printed.
#[derive(Debug, Clone)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// The exit code; fails the test if a signal ended the process.
    pub fn code(&self) -> i32 {
        self.status
            .code()
            .unwrap_or_else(|| panic!("ended by a signal, not an exit code\n{self}"))
    }

    /// Fails the test unless the exit code is `want`.
    #[track_caller]
    pub fn expect(&self, want: i32) -> &Out {
        assert_eq!(self.status.code(), Some(want), "wrong exit status\n{self}");
        self
    }

    /// Lines of stdout about tasks that came to rest: `(id, state)`.
    pub fn rest_lines(&self) -> Vec<(String, String)> {
        rest_lines(self.stdout.lines())
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "status: {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `(id, state)` of each headless line about a task at rest: a symbol, the
/// id, the state, then figures.
pub fn rest_lines<'a>(lines: impl IntoIterator<Item = &'a str>) -> Vec<(String, String)> {
    lines
        .into_iter()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let _symbol = words.next()?;
            let id = words.next()?;
            let state = words.next()?;
            Some((id.to_string(), state.to_string()))
        })
        .collect()
}

/// The binary with a predictable environment: a known user, no SSH client,
/// default logging.
pub fn baton() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("USER", "tester")
        .env_remove("SSH_CLIENT")
        .env_remove("SSH_CONNECTION")
        .env_remove("BATON_LOG")
        .stdin(Stdio::null());
    cmd
}

/// The account name of the user the tests run as, as the system knows it
/// (baton records that, not `$USER`).
pub fn os_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The uid the tests run as.
pub fn os_uid() -> u32 {
    // SAFETY: geteuid only reads the process's credentials.
    unsafe { libc::geteuid() }
}

/// Runs `cmd` to its end, within `COMMAND_DEADLINE`.
pub fn output(cmd: &mut Command) -> Out {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start baton");
    Live::from_child(child).wait()
}

/// Polls `probe` until it yields a value; fails the test after
/// `POLL_DEADLINE`, naming `what`.
#[track_caller]
pub fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + POLL_DEADLINE;
    loop {
        if let Some(v) = probe() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A baton process running in the background; its output is collected as
/// it comes, so lines printed before a kill can be read after it.
pub struct Live {
    child: Child,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
}

impl Live {
    pub fn from_child(mut child: Child) -> Live {
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut readers = Vec::new();
        if let Some(pipe) = child.stdout.take() {
            readers.push(collect(pipe, stdout.clone()));
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(collect(pipe, stderr.clone()));
        }
        Live {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Complete lines printed on stdout so far.
    pub fn stdout_lines(&self) -> Vec<String> {
        let text = self.stdout.lock().unwrap().clone();
        let complete = text.rfind('\n').map_or("", |end| &text[..end]);
        complete.lines().map(str::to_string).collect()
    }

    /// Whether a line saying task `id` came to rest in `state` was printed.
    pub fn printed(&self, id: &str, state: &str) -> bool {
        let lines = self.stdout_lines();
        rest_lines(lines.iter().map(String::as_str))
            .iter()
            .any(|(i, s)| i == id && s == state)
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Whether the process has exited (it is reaped if so).
    pub fn has_exited(&mut self) -> bool {
        self.child.try_wait().expect("poll child").is_some()
    }

    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: a plain signal to our own child, which is not reaped yet.
        unsafe {
            libc::kill(pid, signal);
        }
    }

    /// SIGKILL, then collects what it printed.
    pub fn kill9(mut self) -> Out {
        // Fails only when the child has exited already: `wait` tells.
        let _ = self.child.kill();
        self.wait()
    }

    /// Waits for the exit, within `COMMAND_DEADLINE` (then kills it and
    /// fails the test), and collects everything it printed.
    pub fn wait(mut self) -> Out {
        let deadline = Instant::now() + COMMAND_DEADLINE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!(
                    "baton did not finish within {COMMAND_DEADLINE:?}\n--- stdout ---\n{}\n--- stderr ---\n{}",
                    self.stdout.lock().unwrap(),
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // Agents left running by a kill -9 may hold the pipes open; read
        // what is there without waiting for them.
        let read_deadline = Instant::now() + Duration::from_secs(2);
        while self.readers.iter().any(|r| !r.is_finished()) && Instant::now() < read_deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        for r in self.readers.drain(..).filter(|r| r.is_finished()) {
            let _ = r.join();
        }
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Out {
            status,
            stdout,
            stderr,
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        // A failed test must not leave a run behind.
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn collect(pipe: impl Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = Vec::new();
        while let Ok(n) = reader.read_until(b'\n', &mut line) {
            if n == 0 {
                break;
            }
            into.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&line));
            line.clear();
        }
    })
}

/// A temporary folder holding a pipeline, inputs, the agent script, a side
/// log and a state folder, with the commands that work on them.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("baton-cli-")
            .tempdir()
            .expect("temp dir");
        std::fs::write(dir.path().join("agent.py"), AGENT_PY).expect("write agent");
        Sandbox { dir }
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create folder");
        }
        std::fs::write(&path, text).expect("write file");
        path
    }

    pub fn state(&self) -> PathBuf {
        self.path("state")
    }

    pub fn side_log(&self) -> PathBuf {
        self.path("side.log")
    }

    /// `[agents.NAME]` running the agent script, logging to the side log.
    pub fn command_agent(&self, name: &str) -> String {
        format!(
            "[agents.{name}]\nkind = \"command\"\ncommand = [\"python3\", {:?}, {:?}]\n",
            self.path("agent.py"),
            self.side_log()
        )
    }

    /// Writes `pipeline.toml`: a name, fast retries, the agent script as
    /// agent `a`, then `rest` (defaults overrides, phases).
    pub fn pipeline(&self, rest: &str) -> PathBuf {
        let text = format!(
            "name = \"cli-test\"\n\n{rest}\n\n{}",
            self.command_agent("a")
        );
        self.write("pipeline.toml", &text)
    }

    /// Writes `tasks.jsonl`, one object per line.
    pub fn inputs(&self, tasks: &[Value]) -> PathBuf {
        let text: String = tasks.iter().map(|t| format!("{t}\n")).collect();
        self.write("tasks.jsonl", &text)
    }

    /// `baton ARGS... --state-dir STATE`.
    pub fn cli(&self, args: &[&str]) -> Out {
        output(baton().args(args).arg("--state-dir").arg(self.state()))
    }

    fn run_command(&self, input: bool) -> Command {
        let mut cmd = baton();
        cmd.arg("run")
            .arg(self.path("pipeline.toml"))
            .arg("--headless")
            .arg("--state-dir")
            .arg(self.state());
        if input {
            cmd.arg("--input").arg(self.path("tasks.jsonl"));
        }
        cmd
    }

    /// `baton run pipeline.toml --headless --input tasks.jsonl`.
    pub fn run(&self) -> Out {
        output(&mut self.run_command(true))
    }

    /// `baton run pipeline.toml --headless` without inputs: resumes.
    pub fn resume(&self) -> Out {
        output(&mut self.run_command(false))
    }

    /// `baton run` in the background, with the inputs or without.
    pub fn spawn_run(&self, input: bool) -> Live {
        let child = self
            .run_command(input)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start baton");
        Live::from_child(child)
    }

    /// `baton list --json`, parsed.
    pub fn list(&self) -> Vec<Value> {
        let out = self.cli(&["list", "--json"]);
        out.expect(0);
        serde_json::from_str::<Vec<Value>>(&out.stdout)
            .unwrap_or_else(|e| panic!("list --json is not a JSON array: {e}\n{out}"))
    }

    /// Task id to state, from `baton list --json`.
    pub fn states(&self) -> std::collections::BTreeMap<String, String> {
        self.list()
            .iter()
            .map(|r| (str_at(r, "id"), str_at(r, "state")))
            .collect()
    }

    /// `baton show ID --json`, parsed.
    pub fn show(&self, id: &str) -> Value {
        let out = self.cli(&["show", id, "--json"]);
        out.expect(0);
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("show --json is not JSON: {e}\n{out}"))
    }

    /// The side log's lines, split into words.
    pub fn side_log_lines(&self) -> Vec<Vec<String>> {
        std::fs::read_to_string(self.side_log())
            .unwrap_or_default()
            .lines()
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .collect()
    }

    /// How many times the agent replied with output for `task`'s `phase`.
    pub fn runs_of(&self, task: &str, phase: &str) -> usize {
        self.side_log_lines()
            .iter()
            .filter(|l| l[0] == task && l[1] == phase)
            .count()
    }

    /// Processes other than baton itself whose command line names this
    /// sandbox: agents a killed run left behind.
    pub fn stray_agents(&self) -> Vec<u32> {
        let me = self.root().to_string_lossy().into_owned();
        processes_mentioning(&me)
    }

    /// Waits until no agent started from this sandbox is left running.
    pub fn wait_for_no_stray_agents(&self) {
        wait_for("agents of a killed run to finish", || {
            self.stray_agents().is_empty().then_some(())
        });
    }
}

/// Fails the test unless every command that `text` suggests in backticks
/// (`` `baton list ...` ``, `` `baton approve|reject TASK` ``) exists.
#[track_caller]
pub fn check_suggested_commands(text: &str) {
    let mut named = Vec::new();
    for (_, rest) in text
        .match_indices("`baton ")
        .map(|(i, _)| text.split_at(i + 7))
    {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '|')
            .collect();
        named.extend(word.split('|').map(str::to_string));
    }
    for cmd in named {
        let out = output(baton().arg(&cmd).arg("--help"));
        assert_eq!(
            out.status.code(),
            Some(0),
            "the message suggests `baton {cmd}`, which does not exist:\n{text}"
        );
    }
}

/// A string field of a JSON object; fails the test when it is missing.
#[track_caller]
pub fn str_at(v: &Value, key: &str) -> String {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {v}"))
        .to_string()
}

/// Live (not zombie) processes whose command line contains `needle`.
pub fn processes_mentioning(needle: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != std::process::id() && is_alive(pid))
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

/// Whether `pid` exists and is not a zombie.
pub fn is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
