//! Durable engine throughput: 10,000 tasks through a 5-phase pipeline of
//! simulated agents with zero latency, journal fsynced, snapshots on.
//! Prints phases per second, per-phase latency inside baton (p50/p99: from
//! the phase's start to its completion being durable, agents taking no
//! time), fsync batches and peak RSS.
//!
//! cargo bench --bench engine_throughput [-- TASKS [CONCURRENCY]]

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use baton::engine::{Engine, EngineOptions, EventKind, TaskState};
use baton::spec;
use baton::spec::input::InputTask;
use serde_json::json;

fn pipeline_text(concurrency: usize) -> String {
    let mut text = format!(
        "name = \"bench\"\n[defaults]\nconcurrency = {concurrency}\n\
         [agents.sim]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"200..2000\"\nmodel = \"claude-sonnet-4-5\"\n"
    );
    for id in ["documentation", "coding", "compliance", "prior_auth", "qa"] {
        text.push_str(&format!("[[phases]]\nid = \"{id}\"\nagent = \"sim\"\n"));
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

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let tasks: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let concurrency: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1_000);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let dir = tempfile::tempdir_in(&root).expect("temp dir");
    let file = dir.path().join("bench.toml");
    std::fs::write(&file, pipeline_text(concurrency)).expect("write pipeline");
    let pipeline = spec::load(&file).expect("pipeline");
    let phases = pipeline.phases.len();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let state = dir.path().join("state");
        let mut engine = Engine::open(pipeline, &state, EngineOptions::default()).expect("engine");
        let inputs = (0..tasks)
            .map(|i| InputTask { id: Some(format!("t{i:06}")), input: json!({"n": i}), origin: "bench".into() })
            .collect();
        engine.submit(inputs).expect("submit");
        let mut events = engine.handle().subscribe();
        let watcher = tokio::spawn(async move {
            let mut started: HashMap<(String, String), Instant> = HashMap::new();
            let mut latencies = Vec::with_capacity(tasks * phases);
            let mut lagged = 0u64;
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
                                    latencies.push(now - s);
                                }
                            }
                            _ => {}
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => lagged += n,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
            (latencies, lagged)
        });
        let t0 = Instant::now();
        let handle = engine.handle();
        let summary = engine.run().await.expect("run");
        let elapsed = t0.elapsed();
        drop(handle);
        let (mut latencies, lagged) = watcher.await.expect("watcher");
        latencies.sort();
        let completed = summary.count(TaskState::Completed);
        let phase_count = completed * phases;
        println!("engine_throughput: {tasks} tasks x {phases} phases, concurrency {concurrency}, durable journal");
        println!("  completed tasks        {completed}");
        println!("  wall time              {:.3} s", elapsed.as_secs_f64());
        println!("  phases per second      {:.0}", phase_count as f64 / elapsed.as_secs_f64());
        println!("  tasks per second       {:.0}", completed as f64 / elapsed.as_secs_f64());
        println!(
            "  per-phase latency      p50 {:.3} ms, p99 {:.3} ms (start to durable completion, {} samples{})",
            percentile(&latencies, 0.50).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3,
            latencies.len(),
            if lagged > 0 { format!(", {lagged} events not observed: watcher lagged") } else { String::new() }
        );
        let st = summary.store;
        println!(
            "  journal                {} events in {} fdatasync batches ({:.0} events per sync), {:.1} MB, {} snapshots written",
            st.events_written,
            st.batches,
            st.events_written as f64 / st.batches.max(1) as f64,
            st.bytes_written as f64 / 1e6,
            st.snapshots_written
        );
        println!("  peak RSS               {:.1} MB", peak_rss_mb());
    });
}
