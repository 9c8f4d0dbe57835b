//! Idle clients on the control socket: CLIENTS clients (1,000 unless given)
//! connect to a running engine's socket, say hello and never read, while
//! TASKS tasks (20,000 unless given) go through a 5-phase pipeline of
//! simulated agents that answer at once, streaming far more events than
//! any socket buffers. The engine and its server are in this process; the
//! clients are plain sockets that hold nothing of their own in it.
//!
//! Prints the process's RSS before the clients connect, once they are all
//! in, and after the run, its peak RSS, how long the run took and whether
//! it finished. The goal: the idle clients cost at most 100 MB.
//!
//! cargo bench --bench idle_clients [-- CLIENTS [TASKS]] [--linger]
//!
//! With `--linger` it then waits past the server's write stall and counts
//! the clients the server has dropped.

#[path = "support/seed.rs"]
mod seed;

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use baton::engine::{Actor, Command, Engine, EngineHandle, EngineOptions, TaskState};
use baton::remote::Server;
use baton::spec;
use serde_json::json;

const PHASES: usize = 5;

/// The server drops a client that takes nothing for this long (30 s), and
/// a little more.
const PAST_THE_STALL: Duration = Duration::from_secs(35);

fn pipeline_text() -> String {
    let mut text = "name = \"idle-clients\"\n[defaults]\nconcurrency = 16\n\
         [agents.sim]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"200..2000\"\nmodel = \"claude-sonnet-4-5\"\n"
        .to_string();
    for i in 0..PHASES {
        text.push_str(&format!("[[phases]]\nid = \"p{i}\"\nagent = \"sim\"\n"));
    }
    text
}

/// A figure of /proc/self/status, in MB.
fn status_mb(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn rss_mb() -> f64 {
    status_mb("VmRSS:")
}

fn peak_mb() -> f64 {
    status_mb("VmHWM:")
}

/// Raises the soft limit on open files to what `want` needs (each client
/// is two descriptors here: its end and the server's), up to the hard
/// limit. Returns the limit in force.
fn raise_open_files(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct given.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        if limit.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want.min(limit.rlim_max),
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// Connects `n` clients that say hello (holding the engine, so the server
/// counts them) and never read.
fn connect_idle(socket: &Path, n: usize) -> std::io::Result<Vec<UnixStream>> {
    let hello = format!(
        "{}\n",
        json!({"type": "hello", "version": baton::remote::protocol::VERSION, "hold": true})
    );
    (0..n)
        .map(|_| {
            let mut stream = UnixStream::connect(socket)?;
            stream.write_all(hello.as_bytes())?;
            Ok(stream)
        })
        .collect()
}

/// How many of `clients` the server has closed.
fn closed_by_server(clients: &[UnixStream]) -> usize {
    let mut fds: Vec<libc::pollfd> = clients
        .iter()
        .map(|c| libc::pollfd {
            fd: c.as_raw_fd(),
            events: libc::POLLRDHUP,
            revents: 0,
        })
        .collect();
    // SAFETY: the descriptors are open for as long as `clients` lives.
    let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 0) };
    if ready < 0 {
        return 0;
    }
    fds.iter()
        .filter(|p| p.revents & (libc::POLLRDHUP | libc::POLLHUP) != 0)
        .count()
}

async fn completed(handle: &EngineHandle) -> u64 {
    let Some(reader) = handle.reader() else {
        return 0;
    };
    let at = TaskState::ALL
        .iter()
        .position(|s| *s == TaskState::Completed)
        .expect("a state");
    reader.totals().await.map_or(0, |t| t.states[at])
}

async fn bench(clients: usize, tasks: usize, linger: bool) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(&root).expect("temp dir");
    let file = dir.path().join("bench.toml");
    std::fs::write(&file, pipeline_text()).expect("write pipeline");
    let pipeline = spec::load(&file).expect("pipeline");
    let state = dir.path().join("state");
    let opts = EngineOptions {
        exit_when_idle: false,
        ..EngineOptions::default()
    };
    let mut engine = Engine::open(pipeline, &state, opts).expect("engine");
    seed::submit_numbered(&mut engine, tasks).await;
    let handle = engine.handle();
    let server = Server::start(&state, handle.clone())
        .await
        .expect("control socket");
    let running = tokio::spawn(engine.run());
    let by = Actor::engine();
    handle
        .send(Command::Pause { by: by.clone() })
        .await
        .expect("pause");
    let before = rss_mb();

    // The clients connect while the run is paused.
    let socket = server.path().to_path_buf();
    let idle = tokio::task::spawn_blocking(move || connect_idle(&socket, clients))
        .await
        .expect("connecting")
        .expect("connect the clients");
    let mut holders = server.holders();
    tokio::time::timeout(Duration::from_secs(60), holders.wait_for(|n| *n == clients))
        .await
        .expect("every client said hello in time")
        .expect("the server is up");
    let connected = rss_mb();

    let t0 = Instant::now();
    handle
        .send(Command::Resume { by: by.clone() })
        .await
        .expect("resume");
    let deadline = t0 + Duration::from_secs(600);
    while completed(&handle).await < tasks as u64 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = t0.elapsed();
    let after = rss_mb();
    let events = handle
        .reader()
        .expect("an engine in this process has a reader")
        .last_seq()
        .await
        .unwrap_or(0);
    let _ = handle.send(Command::Shutdown).await;
    let summary = running.await.expect("engine task").expect("engine run");
    let done = summary.count(TaskState::Completed);
    let peak = peak_mb();

    println!(
        "  RSS: {before:.0} MB before the clients, {connected:.0} MB with them connected, \
         {after:.0} MB after the run; peak {peak:.0} MB"
    );
    println!(
        "  growth with {clients} idle clients: {:+.0} MB to the end of the run, {:+.0} MB to the peak (goal: at most 100 MB)",
        after - before,
        peak - before
    );
    println!(
        "  run: {done} of {tasks} tasks completed ({}), {events} events, {:.1} s",
        if done == tasks {
            "finished"
        } else {
            "NOT finished"
        },
        took.as_secs_f64()
    );
    if linger {
        tokio::time::sleep(PAST_THE_STALL).await;
        println!(
            "  after {} s more: {} of {clients} clients dropped by the server; RSS {:.0} MB",
            PAST_THE_STALL.as_secs(),
            closed_by_server(&idle),
            rss_mb()
        );
    }
    drop(idle);
    drop(server);
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let clients: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(1000);
    let tasks: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let linger = std::env::args().any(|a| a == "--linger");
    let need = 2 * clients as u64 + 256;
    let limit = raise_open_files(need);
    println!(
        "idle_clients: {clients} clients that never read, {tasks} tasks x {PHASES} phases of simulated agents; open files limit {limit}"
    );
    if limit < need {
        println!(
            "  warning: {need} descriptors wanted, the hard limit allows {limit}; some clients will not connect"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(bench(clients, tasks, linger));
}
