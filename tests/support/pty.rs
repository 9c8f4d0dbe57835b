//! The real binary in a pseudo-terminal: type keys, read the screen back
//! through a terminal emulator, resize, and wait for the process to end.
#![allow(dead_code)]

use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portable_pty::{Child, CommandBuilder, MasterPty, PtySize, native_pty_system};

fn nz(n: u16) -> std::num::NonZeroU16 {
    std::num::NonZeroU16::new(n.max(1)).expect("at least 1")
}

/// For dashboard tests: one phase whose simulated agent always asks for a review.
pub const REVIEW_PIPELINE: &str = r#"
name = "review-me"
[agents.sim]
kind = "sim"
latency = "0ms"
tokens = "100..200"
review_rate = 1.0
model = "claude-haiku-4-5"

[[phases]]
id = "draft"
agent = "sim"
"#;

/// Writes `pipeline` and one input line per task id into `dir`.
pub fn setup_with(dir: &Path, pipeline: &str, tasks: &[&str]) {
    std::fs::write(dir.join("p.toml"), pipeline).unwrap();
    let lines: String = tasks
        .iter()
        .map(|t| format!("{{\"id\": \"{t}\"}}\n"))
        .collect();
    std::fs::write(dir.join("in.jsonl"), lines).unwrap();
}

/// The dashboard's tests compiled as `dashboard_pty_in_process` run baton
/// with the engine inside the dashboard's process.
pub fn in_process_suite() -> bool {
    env!("CARGO_CRATE_NAME") == "dashboard_pty_in_process"
}

pub struct Term {
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    screen: Arc<Mutex<vt100::Parser>>,
    /// Where the program may make a state folder that did not exist before it.
    made: Made,
    /// Bytes the program has written to the terminal so far.
    written: Arc<AtomicU64>,
    /// Everything it wrote, raw (the first 64 MiB).
    raw: Arc<Mutex<Vec<u8>>>,
}

impl Term {
    /// Starts `baton ARGS` in `cwd` on a `cols`x`rows` terminal with `env` set.
    pub fn spawn(args: &[&str], cwd: &Path, cols: u16, rows: u16, env: &[(&str, &str)]) -> Term {
        Term::spawn_program(env!("CARGO_BIN_EXE_baton"), args, cwd, cols, rows, env)
    }

    /// Another program than baton (an example embedding it) in the terminal.
    pub fn spawn_program(
        program: &str,
        args: &[&str],
        cwd: &Path,
        cols: u16,
        rows: u16,
        env: &[(&str, &str)],
    ) -> Term {
        let pty = native_pty_system();
        let pair = pty
            .openpty(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pseudo-terminal");
        let made = Made::before(args, cwd, env);
        let mut cmd = CommandBuilder::new(program);
        if in_process_suite() {
            cmd.env("BATON_IN_PROCESS", "1");
        } else {
            cmd.env_remove("BATON_IN_PROCESS");
        }
        cmd.args(args);
        cmd.cwd(cwd);
        cmd.env("TERM", "xterm-256color");
        cmd.env_remove("NO_COLOR");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = pair
            .slave
            .spawn_command(cmd)
            .expect("spawn baton in the pty");
        drop(pair.slave);
        let screen = Arc::new(Mutex::new(vt100::Parser::new(nz(rows), nz(cols), 0)));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let s = screen.clone();
        let written = Arc::new(AtomicU64::new(0));
        let counter = written.clone();
        let raw = Arc::new(Mutex::new(Vec::new()));
        let raw_in = raw.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        counter.fetch_add(n as u64, Ordering::Relaxed);
                        {
                            let mut r = raw_in.lock().unwrap();
                            if r.len() < 64 << 20 {
                                r.extend_from_slice(&buf[..n]);
                            }
                        }
                        s.lock().unwrap().process(&buf[..n]);
                    }
                }
            }
        });
        let writer = pair.master.take_writer().expect("pty writer");
        Term {
            master: pair.master,
            writer,
            child,
            screen,
            made,
            written,
            raw,
        }
    }

    /// Whether the program has written `needle` to the terminal, raw.
    pub fn wrote(&self, needle: &[u8]) -> bool {
        let raw = self.raw.lock().unwrap();
        raw.windows(needle.len()).any(|w| w == needle)
    }

    /// Waits until the program has written `needle`, raw.
    pub fn wait_for_bytes(&self, what: &str, needle: &[u8], secs: u64) {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
        while std::time::Instant::now() < until {
            if self.wrote(needle) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("timed out waiting for {what} in the terminal's output");
    }

    /// Bytes written to the terminal since the start.
    pub fn bytes_written(&self) -> u64 {
        self.written.load(Ordering::Relaxed)
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.process_id()
    }

    pub fn contents(&self) -> String {
        self.screen.lock().unwrap().screen().contents()
    }

    /// Waits until the screen shows `text`; fails the test with the screen after `secs`.
    pub fn wait_for(&self, text: &str, secs: u64) -> String {
        self.wait_until(&format!("{text:?} on screen"), secs, |s| s.contains(text))
    }

    pub fn wait_until(&self, what: &str, secs: u64, cond: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let screen = self.contents();
            if cond(&screen) {
                return screen;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; the screen shows:\n{screen}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn send(&mut self, keys: &str) {
        self.writer
            .write_all(keys.as_bytes())
            .expect("type into the pty");
        self.writer.flush().expect("flush the pty");
    }

    pub fn resize(&mut self, cols: u16, rows: u16) {
        self.master
            .resize(PtySize {
                rows,
                cols,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("resize the pty");
        self.screen
            .lock()
            .unwrap()
            .screen_mut()
            .set_size(nz(rows), nz(cols));
    }

    /// Any cell drawn with a colour other than the default.
    pub fn has_colour(&self) -> bool {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        let (rows, cols) = screen.size();
        (0..rows.get()).any(|r| {
            (0..cols.get()).any(|c| {
                screen.cell(r, c).is_some_and(|cell| {
                    cell.fgcolor() != vt100::Color::Default
                        || cell.bgcolor() != vt100::Color::Default
                })
            })
        })
    }

    /// Every cell's colours, row by row: equal for two screens drawn alike.
    pub fn colours(&self) -> Vec<(vt100::Color, vt100::Color)> {
        let parser = self.screen.lock().unwrap();
        let screen = parser.screen();
        let (rows, cols) = screen.size();
        (0..rows.get())
            .flat_map(|r| (0..cols.get()).map(move |c| (r, c)))
            .filter_map(|(r, c)| screen.cell(r, c).map(|x| (x.fgcolor(), x.bgcolor())))
            .collect()
    }

    /// Quits while work waits: `q`, the confirmation, `y`; returns the exit status.
    pub fn quit_confirmed(&mut self) -> u32 {
        self.send("q");
        self.wait_for("Quit the dashboard?", 10);
        self.send("y");
        self.wait_exit(30)
    }

    /// The exit status, if the program has exited.
    pub fn exited(&mut self) -> Option<u32> {
        self.child
            .try_wait()
            .expect("poll child")
            .map(|s| s.exit_code())
    }

    /// Waits for the program to exit and returns its status code.
    pub fn wait_exit(&mut self, secs: u64) -> u32 {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().expect("poll child") {
                return status.exit_code();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("baton did not exit; the screen shows:\n{}", self.contents());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Term {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // The dashboard starts its engine in a session of its own, which
        // outlives it: a test that fails before stopping it must not leave
        // it running. Only folders the program made are looked at, so an
        // engine the test started itself (for `baton attach`) is its own.
        for state in self.made.state_dirs() {
            stop_engine_holding(&state);
        }
    }
}

/// The state folders a `baton` command line may create, noted before it runs.
struct Made {
    /// The folder named by `--state-dir`, `--dir` or the default, if it did not exist.
    fixed: Option<PathBuf>,
    /// For a demo without `--dir`: the temp dir and its demo folders before.
    demo_tmp: Option<(PathBuf, Vec<PathBuf>)>,
}

impl Made {
    fn before(args: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Made {
        let value_of = |flag: &str| {
            args.iter()
                .position(|a| *a == flag)
                .and_then(|i| args.get(i + 1))
                .map(|v| cwd.join(v))
        };
        let (fixed, demo_tmp) = match args.first() {
            Some(&"demo") => match value_of("--dir") {
                Some(dir) => (Some(dir.join("state")), None),
                None => {
                    let tmp = env
                        .iter()
                        .find(|(k, _)| *k == "TMPDIR")
                        .map_or_else(std::env::temp_dir, |(_, v)| PathBuf::from(v));
                    let existing = demo_dirs(&tmp);
                    (None, Some((tmp, existing)))
                }
            },
            Some(&"run") => (
                Some(value_of("--state-dir").unwrap_or_else(|| cwd.join("state"))),
                None,
            ),
            _ => (None, None),
        };
        Made {
            fixed: fixed.filter(|d| !d.exists()),
            demo_tmp,
        }
    }

    fn state_dirs(&self) -> Vec<PathBuf> {
        let mut dirs: Vec<PathBuf> = self.fixed.iter().cloned().collect();
        if let Some((tmp, existing)) = &self.demo_tmp {
            dirs.extend(
                demo_dirs(tmp)
                    .into_iter()
                    .filter(|d| !existing.contains(d))
                    .map(|d| d.join("state")),
            );
        }
        dirs
    }
}

fn demo_dirs(tmp: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(tmp)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("baton-demo-"))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Stops the process that holds `state`'s LOCK, if one still does: SIGTERM,
/// then SIGKILL if it is still there after a while.
fn stop_engine_holding(state: &Path) {
    let Ok(mut lock) = File::open(state.join("LOCK")) else {
        return;
    };
    // Free to take: nobody holds the folder (the pid in it is stale).
    if !matches!(lock.try_lock(), Err(TryLockError::WouldBlock)) {
        return;
    }
    let mut text = String::new();
    let _ = lock.read_to_string(&mut text);
    let Ok(pid) = text.trim().parse::<libc::pid_t>() else {
        return;
    };
    for signal in [libc::SIGTERM, libc::SIGKILL] {
        // SAFETY: a plain signal to the engine that holds a folder this test made.
        unsafe {
            libc::kill(pid, signal);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if matches!(lock.try_lock(), Ok(())) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
