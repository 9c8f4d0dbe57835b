//! Nothing an agent starts outlives its attempt.
//!
//! A process group does not hold a descendant that calls `setsid`, and a
//! descendant whose parent exits is handed to init, out of reach. So:
//!
//! - The process that runs command agents makes itself a child subreaper
//!   (`PR_SET_CHILD_SUBREAPER`): orphans of its agents' trees are handed to
//!   it, not to init, and stay in view.
//! - Each attempt's child is started with `BATON_ATTEMPT=<pid>.<n>` in its
//!   environment, which its descendants inherit; `/proc/PID/environ` keeps
//!   the value a process started with, so an orphan handed to the engine
//!   can be told apart from another attempt's.
//! - When an attempt ends, times out or is cancelled, `/proc` is walked:
//!   every descendant of the agent (while it lives), and every orphan
//!   handed to the engine that carries the attempt's token (or the token of
//!   any attempt already over), with all their descendants, is killed with
//!   SIGKILL and reaped. Rounds repeat until a walk finds none, so a child
//!   forked while the last round was killing is found by the next.
//!
//! A cgroup per attempt would hold even a descendant that clears its
//! environment, but needs root or a delegated cgroup subtree, which most
//! users running baton do not have; `/proc` serves every user the same.
//! What the walk cannot attribute, an orphan that also dropped the token
//! from its environment, is killed by `baton`'s engine (which starts no
//! other children, see [`own_all_children`]) at the first sweep with no
//! attempt in flight, and otherwise when the engine exits.
//!
//! Pids are checked against their start time right before a signal, so a
//! pid reused between the walk and the kill is left alone; only processes
//! that are this process's children are reaped, and never an attempt's own
//! child, which tokio reaps.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, Mutex, Once, PoisonError};
use std::time::{Duration, Instant};

use super::procfs::{self, Proc};

/// The variable that marks an attempt's processes.
pub const TOKEN_VAR: &str = "BATON_ATTEMPT";

/// Walks per sweep, at most: each one kills what the last one missed.
const ROUNDS: usize = 8;

/// How long a sweep waits for the processes it killed to be reaped.
const REAP_WAIT: Duration = Duration::from_secs(2);

#[derive(Default)]
struct Registry {
    /// Attempts in flight: token to the pid of their child (`None` once
    /// it has been reaped).
    in_flight: HashMap<String, Option<i32>>,
    started: u64,
}

impl Registry {
    fn is_leader(&self, pid: i32) -> bool {
        self.in_flight.values().any(|l| *l == Some(pid))
    }

    /// Whether a token read from a process belongs to one of this
    /// process's attempts that is over.
    fn is_over(&self, token: &str) -> bool {
        token
            .split_once('.')
            .is_some_and(|(pid, _)| pid == std::process::id().to_string())
            && !self.in_flight.contains_key(token)
    }
}

static REGISTRY: LazyLock<Mutex<Registry>> = LazyLock::new(Mutex::default);
static OWN_ALL: AtomicBool = AtomicBool::new(false);
static SUBREAPER: Once = Once::new();

fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Says that this process starts no children but its agents, so that any
/// child of its own that is not an attempt's is a leftover of one: the
/// engine of `baton run` calls it. Makes the process a subreaper now.
pub fn own_all_children() {
    OWN_ALL.store(true, Ordering::Relaxed);
    become_subreaper();
}

/// The engine is done: kills what its agents left that no sweep could
/// tell apart (see the module's notes). Only after [`own_all_children`].
pub fn kill_leftovers() {
    if OWN_ALL.load(Ordering::Relaxed) {
        sweep("", None);
    }
}

/// Whether orphans of this process's descendants come to it (Linux 3.4+).
pub fn is_subreaper() -> bool {
    let mut flag: libc::c_int = 0;
    // SAFETY: the kernel writes one int through the pointer.
    let rc = unsafe { libc::prctl(libc::PR_GET_CHILD_SUBREAPER, &mut flag as *mut libc::c_int) };
    rc == 0 && flag != 0
}

fn become_subreaper() {
    SUBREAPER.call_once(|| {
        // SAFETY: prctl with integer arguments only.
        if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
            tracing::warn!(
                "cannot become a child subreaper ({}); a descendant of an agent that leaves its process group may outlive its attempt",
                std::io::Error::last_os_error()
            );
        }
    });
}

/// One attempt's processes. Dropping it before [`Attempt::finish`] (the
/// call was cancelled) kills them at once and reaps them on a thread.
#[derive(Debug)]
pub(super) struct Attempt {
    token: String,
    leader: Option<i32>,
    done: bool,
}

impl Attempt {
    /// Marks `command` with a fresh token and spawns it, registered as in
    /// flight before any sweep can look at it.
    pub fn spawn(
        command: &mut tokio::process::Command,
    ) -> (Attempt, std::io::Result<tokio::process::Child>) {
        become_subreaper();
        let mut reg = registry();
        reg.started += 1;
        let token = format!("{}.{}", std::process::id(), reg.started);
        command.env(TOKEN_VAR, &token);
        let child = command.spawn();
        let leader = child
            .as_ref()
            .ok()
            .and_then(|c| c.id())
            .and_then(|p| i32::try_from(p).ok());
        reg.in_flight.insert(token.clone(), leader);
        drop(reg);
        let attempt = Attempt {
            token,
            leader,
            done: false,
        };
        (attempt, child)
    }

    /// The child has been reaped: its pid is no longer its own.
    pub fn leader_reaped(&mut self) {
        self.leader = None;
        if let Some(l) = registry().in_flight.get_mut(&self.token) {
            *l = None;
        }
    }

    /// Kills the attempt's processes other than its child: the child's
    /// descendants while it is unreaped, and the orphans with its token.
    pub async fn sweep(&self) {
        let (token, leader) = (self.token.clone(), self.leader);
        let _ = tokio::task::spawn_blocking(move || sweep(&token, leader)).await;
    }

    /// The attempt is over: nothing of it may remain.
    pub async fn finish(mut self) {
        self.done = true;
        let (token, leader) = (self.token.clone(), self.leader);
        registry().in_flight.remove(&token);
        let _ = tokio::task::spawn_blocking(move || sweep(&token, leader)).await;
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Cancelled: the child is not reaped yet (it is dropped after this
        // guard), so its tree is whole; kill it now, reap on a thread.
        let killed = match self.leader {
            Some(leader) => {
                let tree = procfs::children(&procfs::all());
                kill(&procfs::descendants(&tree, leader))
            }
            None => Vec::new(),
        };
        registry().in_flight.remove(&self.token);
        let token = self.token.clone();
        let _ = std::thread::Builder::new()
            .name("baton-reap".into())
            .spawn(move || {
                reap(&killed);
                sweep(&token, None);
            });
    }
}

/// Kills and reaps the attempt's processes, in rounds until none is left.
/// Returns how many were killed.
fn sweep(token: &str, leader: Option<i32>) -> usize {
    let me = std::process::id() as i32;
    let mut total = 0;
    for _ in 0..ROUNDS {
        let procs = procfs::all();
        let tree = procfs::children(&procs);
        let mut targets: Vec<Proc> = Vec::new();
        if let Some(l) = leader {
            targets.extend(procfs::descendants(&tree, l));
        }
        let mut strays = Vec::new();
        {
            let reg = registry();
            let own_all = OWN_ALL.load(Ordering::Relaxed);
            for p in tree.get(&me).into_iter().flatten() {
                if reg.is_leader(p.pid) || targets.iter().any(|t| t.pid == p.pid) {
                    continue;
                }
                if p.is_dead() {
                    if own_all {
                        strays.push(*p);
                    }
                    continue;
                }
                let ours = match procfs::env_var(p.pid, TOKEN_VAR) {
                    Some(t) => t == token || reg.is_over(&t),
                    None => own_all && reg.in_flight.is_empty(),
                };
                if ours {
                    targets.push(*p);
                    targets.extend(procfs::descendants(&tree, p.pid));
                }
            }
        }
        reap_zombies(&strays);
        if targets.is_empty() {
            break;
        }
        let killed = kill(&targets);
        total += killed.len();
        reap(&killed);
    }
    total
}

/// SIGKILL to each process still the one that was seen; returns those signalled.
fn kill(targets: &[Proc]) -> Vec<Proc> {
    let mut killed = Vec::new();
    for p in targets {
        if p.pid <= 1 || p.pid == std::process::id() as i32 {
            continue;
        }
        match procfs::stat(p.pid) {
            Some(now) if now.start == p.start && !now.is_dead() => {
                // SAFETY: kill has no memory effects; the pid was checked
                // against its start time just now.
                unsafe {
                    libc::kill(p.pid, libc::SIGKILL);
                }
                killed.push(*p);
            }
            _ => {}
        }
    }
    killed
}

/// Waits until each killed process is gone, reaping those that became this
/// process's children; gives up after `REAP_WAIT` (a process stuck in the
/// kernel dies later, and a later sweep reaps it).
fn reap(killed: &[Proc]) {
    let me = std::process::id() as i32;
    let deadline = Instant::now() + REAP_WAIT;
    let mut left: Vec<Proc> = killed.to_vec();
    while !left.is_empty() {
        left.retain(|p| match procfs::stat(p.pid) {
            Some(now) if now.start == p.start => {
                if now.ppid == me && now.is_dead() {
                    reap_one(p.pid);
                    false
                } else {
                    true
                }
            }
            // Gone, or the pid is someone else's now.
            _ => false,
        });
        if left.is_empty() || Instant::now() >= deadline {
            break;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

fn reap_zombies(zombies: &[Proc]) {
    for z in zombies {
        reap_one(z.pid);
    }
}

fn reap_one(pid: i32) {
    let mut status = 0;
    // SAFETY: waits on one child by pid, without blocking.
    unsafe {
        libc::waitpid(pid, &mut status, libc::WNOHANG);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_of_this_process_are_over_once_out_of_flight() {
        let mut reg = Registry::default();
        let me = std::process::id();
        reg.in_flight.insert(format!("{me}.1"), Some(42));
        assert!(!reg.is_over(&format!("{me}.1")));
        assert!(reg.is_over(&format!("{me}.2")));
        // Another engine's attempts are its own business.
        assert!(!reg.is_over(&format!("{}.2", me + 1)));
        assert!(!reg.is_over("garbage"));
        assert!(reg.is_leader(42));
        assert!(!reg.is_leader(43));
    }
}
