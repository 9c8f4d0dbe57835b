//! Durable engine throughput: TASKS tasks (10,000 unless given) through a
//! 5-phase pipeline of simulated agents with zero latency, every commit
//! synced, as a new user runs them: submitted, run, closed.
//!
//! Prints, for each round and the median: phases per second from the first
//! submission to the close, and until the last completion was durable;
//! per-phase latency inside baton (p50/p99, from the phase's start event to
//! its completion event, both observed after commit; agents take no time),
//! commits, bytes on disk per task, and the process's peak RSS.
//!
//! cargo bench --bench engine_throughput [-- TASKS [CONCURRENCY [ROUNDS]]] [--run-log]
//! Measure the curve: `-- 10000 16 1`, `-- 100000 16 1`, `-- 1000000 16 1`.
//!
//! With `--keep DIR` the last round's folder is left in DIR (pipeline file
//! and `state/`), for timing the CLI on it; with `--reviews` one task in a
//! thousand ends waiting for a review (for timing a restart with work left).
//!
//! With `--run-log` the markdown run log follows each round too, and its
//! size and how long it took to finish after the engine are printed.

#[path = "support/seed.rs"]
mod seed;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton::engine::{Engine, EngineOptions, EventKind, TaskState};
use baton::spec;

const PHASES: [&str; 5] = ["documentation", "coding", "compliance", "prior_auth", "qa"];

/// With `reviews`, the last phase asks a person to review one task in a
/// thousand: a run that ends with work waiting, for timing a restart.
fn pipeline_text(concurrency: usize, reviews: bool) -> String {
    let mut text = format!(
        "name = \"bench\"\n[defaults]\nconcurrency = {concurrency}\n\
         [agents.sim]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"200..2000\"\nmodel = \"claude-sonnet-4-5\"\n\
         [agents.last]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"200..2000\"\nmodel = \"claude-sonnet-4-5\"\nreview_rate = {}\n",
        if reviews { 0.001 } else { 0.0 }
    );
    for (i, id) in PHASES.iter().enumerate() {
        let agent = if i + 1 == PHASES.len() { "last" } else { "sim" };
        text.push_str(&format!("[[phases]]\nid = \"{id}\"\nagent = \"{agent}\"\n"));
    }
    text
}

fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Latencies in buckets of 1/8 of a power of two microseconds: constant
/// memory however many phases run, within 9% of the true value.
#[derive(Default)]
struct Histogram {
    buckets: Vec<u64>,
    n: u64,
}

impl Histogram {
    fn bucket(us: u64) -> usize {
        let us = us.max(1);
        let log = 63 - us.leading_zeros() as usize;
        let frac = if log >= 3 {
            ((us >> (log - 3)) & 7) as usize
        } else {
            0
        };
        log * 8 + frac
    }

    fn add(&mut self, d: Duration) {
        let b = Self::bucket(d.as_micros() as u64);
        if self.buckets.len() <= b {
            self.buckets.resize(b + 1, 0);
        }
        self.buckets[b] += 1;
        self.n += 1;
    }

    fn percentile(&self, p: f64) -> Duration {
        let want = (self.n as f64 * p).ceil() as u64;
        let mut seen = 0;
        for (b, count) in self.buckets.iter().enumerate() {
            seen += count;
            if seen >= want.max(1) {
                let (log, frac) = (b / 8, b % 8);
                let us = if log >= 3 {
                    (8 + frac as u64) << (log - 3)
                } else {
                    1 << log
                };
                return Duration::from_micros(us);
            }
        }
        Duration::ZERO
    }
}

struct Round {
    phases_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    shutdown_ms: f64,
}

async fn round(
    tasks: usize,
    concurrency: usize,
    run_log: bool,
    reviews: bool,
    keep: Option<&PathBuf>,
) -> Round {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let temp = tempfile::tempdir_in(&root).expect("temp dir");
    let at = match keep {
        Some(k) => {
            let _ = std::fs::remove_dir_all(k);
            std::fs::create_dir_all(k).expect("the --keep folder");
            k.clone()
        }
        None => temp.path().to_path_buf(),
    };
    let dir = at.as_path();
    let file = dir.join("bench.toml");
    std::fs::write(&file, pipeline_text(concurrency, reviews)).expect("write pipeline");
    let pipeline = spec::load(&file).expect("pipeline");
    let state = dir.join("state");
    let mut engine = Engine::open(pipeline, &state, EngineOptions::default()).expect("engine");
    let mut events = engine.handle().subscribe();
    let watcher = tokio::spawn(async move {
        let mut started: HashMap<(String, String), Instant> = HashMap::new();
        let mut latencies = Histogram::default();
        let (mut lagged, mut last_finish) = (0u64, None);
        loop {
            match events.recv().await {
                Ok(ev) => {
                    let now = Instant::now();
                    match (&ev.kind, &ev.task) {
                        (EventKind::PhaseStarted { phase, .. }, Some(t)) => {
                            started.insert((t.clone(), phase.clone()), now);
                        }
                        (EventKind::AttemptFinished { phase, .. }, Some(t)) => {
                            if let Some(s) = started.remove(&(t.clone(), phase.clone())) {
                                latencies.add(now - s);
                            }
                        }
                        (EventKind::TaskFinished { .. }, _) => last_finish = Some(now),
                        _ => {}
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => lagged += n,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
        (latencies, lagged, last_finish)
    });
    let start = engine.follow_start().await.expect("a start");
    let writer = run_log.then(|| {
        baton::run_log_writer::RunLogWriter::start(
            &engine.handle(),
            start,
            baton::report::mask::Masker::default(),
            baton::run_log_writer::Session::Run,
            None,
            &baton::engine::Actor::engine(),
        )
        .expect("run log")
    });
    let t0 = Instant::now();
    seed::submit_numbered(&mut engine, tasks).await;
    let submitted = t0.elapsed();
    let summary = engine.run().await.expect("run");
    let closed = Instant::now();
    if let Some(writer) = writer {
        let path = writer.path().to_path_buf();
        writer.finish().await.expect("run log written");
        let text = std::fs::read_to_string(&path).expect("run log");
        println!(
            "  run log: {} lines, {:.1} MB, finished {:.0} ms after the engine{}",
            text.lines().count(),
            text.len() as f64 / 1e6,
            closed.elapsed().as_secs_f64() * 1e3,
            if text.contains("the log fell behind") {
                " (it fell behind and re-synced)"
            } else {
                ""
            }
        );
    }
    let (latencies, lagged, last_finish) = watcher.await.expect("watcher");
    let disk: u64 = std::fs::read_dir(&state)
        .expect("state folder")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let waiting = summary.count(TaskState::AwaitingReview);
    assert_eq!(
        summary.count(TaskState::Completed) + waiting,
        tasks,
        "every task completes, or waits for a review when asked to"
    );
    if reviews {
        println!("  {waiting} task(s) left awaiting review");
    }
    let done = last_finish.unwrap_or(closed);
    let phases = (tasks * PHASES.len()) as f64;
    let r = Round {
        phases_per_sec: phases / (closed - t0).as_secs_f64(),
        p50_ms: latencies.percentile(0.50).as_secs_f64() * 1e3,
        p99_ms: latencies.percentile(0.99).as_secs_f64() * 1e3,
        shutdown_ms: closed.saturating_duration_since(done).as_secs_f64() * 1e3,
    };
    let st = summary.store;
    println!(
        "  round: {:>7.0} phases/s start to exit ({:.0}/s to the last durable completion; submit {:.1} s)  \
         latency p50 {:>6.2} ms  p99 {:>7.2} ms  close {:>5.0} ms  \
         {} events in {} commits  {:.0} bytes on disk per task  peak RSS {:.0} MB{}",
        r.phases_per_sec,
        phases / done.saturating_duration_since(t0).as_secs_f64(),
        submitted.as_secs_f64(),
        r.p50_ms,
        r.p99_ms,
        r.shutdown_ms,
        st.events_written,
        st.batches,
        disk as f64 / tasks as f64,
        peak_rss_mb(),
        if lagged > 0 {
            format!(" ({lagged} events not observed: watcher lagged)")
        } else {
            String::new()
        }
    );
    r
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() {
    let all: Vec<String> = std::env::args().skip(1).collect();
    let keep_at = all.iter().position(|a| a == "--keep");
    let keep = keep_at.and_then(|i| all.get(i + 1)).map(PathBuf::from);
    let args: Vec<String> = all
        .iter()
        .enumerate()
        .filter(|(i, a)| !a.starts_with("--") && keep_at.is_none_or(|k| *i != k + 1))
        .map(|(_, a)| a.clone())
        .collect();
    let tasks: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(16);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3).max(1);
    let run_log = std::env::args().any(|a| a == "--run-log");
    let reviews = std::env::args().any(|a| a == "--reviews");
    println!(
        "engine_throughput: {tasks} tasks x {} phases, concurrency {concurrency}, every commit synced, {rounds} rounds{}",
        PHASES.len(),
        if run_log { ", with the run log" } else { "" }
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let results: Vec<Round> = (0..rounds)
        .map(|_| runtime.block_on(round(tasks, concurrency, run_log, reviews, keep.as_ref())))
        .collect();
    println!(
        "  median: {:.0} phases/s, latency p50 {:.2} ms, p99 {:.2} ms, shutdown {:.0} ms",
        median(results.iter().map(|r| r.phases_per_sec).collect()),
        median(results.iter().map(|r| r.p50_ms).collect()),
        median(results.iter().map(|r| r.p99_ms).collect()),
        median(results.iter().map(|r| r.shutdown_ms).collect()),
    );
    println!("  peak RSS: {:.1} MB", peak_rss_mb());
}
