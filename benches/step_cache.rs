//! The shared step cache's cost and gain: TASKS tasks (10,000 unless given)
//! through two phases of simulated agents with zero latency, durable, the
//! first keyed on one of KEYS values (100 unless given).
//!
//! Prints, for the pipeline without the cache, with it on a fresh folder
//! (one attempt per key, every other task served from the cache), and with
//! it again on the same folder (every task served from the store): tasks
//! per second from the first submission to the close, the first phase's
//! attempts, and the process's peak RSS.
//!
//! cargo bench --bench step_cache [-- TASKS [KEYS]]

use std::path::Path;
use std::time::Instant;

use baton::engine::{Engine, EngineOptions};
use baton::spec::input::InputTask;
use baton::store::{RunReader, SqliteReader};
use serde_json::json;

fn pipeline_text(cached: bool) -> String {
    let key = if cached {
        "cache_key = \"{{input.k}}\"\n"
    } else {
        ""
    };
    format!(
        "name = \"bench\"\n[defaults]\nconcurrency = 16\n\
         [agents.sim]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"200..2000\"\nmodel = \"claude-sonnet-4-5\"\n\
         [[phases]]\nid = \"prefetch\"\nagent = \"sim\"\n{key}\
         [[phases]]\nid = \"write\"\nagent = \"sim\"\n"
    )
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

/// Runs `tasks` new tasks (ids from `first`) on the folder; gives tasks
/// per second and the attempts of `prefetch` in this round.
async fn round(root: &Path, cached: bool, first: usize, tasks: usize, keys: usize) -> (f64, u64) {
    let file = root.join("pipeline.toml");
    std::fs::write(&file, pipeline_text(cached)).expect("write pipeline");
    let pipeline = spec_load(&file);
    let state = root.join("state");
    let before = prefetch_attempts(&state).await;
    let t0 = Instant::now();
    let mut engine = Engine::open(pipeline, &state, EngineOptions::default()).expect("engine");
    let mut next = first;
    while next < first + tasks {
        let end = (next + 10_000).min(first + tasks);
        let inputs = (next..end)
            .map(|i| InputTask {
                id: Some(format!("t{i:07}")),
                input: json!({"n": i, "k": format!("key-{}", i % keys)}),
                origin: "bench".into(),
            })
            .collect();
        engine.submit(inputs).await.expect("submit");
        next = end;
    }
    engine.run().await.expect("run");
    let secs = t0.elapsed().as_secs_f64();
    let after = prefetch_attempts(&state).await;
    (tasks as f64 / secs, after - before)
}

fn spec_load(file: &Path) -> baton::spec::Pipeline {
    baton::spec::load(file).unwrap_or_else(|e| panic!("{e}"))
}

async fn prefetch_attempts(state: &Path) -> u64 {
    let Ok(reader) = SqliteReader::open(state) else {
        return 0;
    };
    let stats = reader.run_stats().await.expect("figures");
    stats
        .attempts
        .iter()
        .filter(|r| r.phase == "prefetch")
        .map(|r| r.attempts)
        .sum()
}

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let tasks = args.first().copied().unwrap_or(10_000);
    let keys = args.get(1).copied().unwrap_or(100).max(1);
    let root = std::env::current_dir()
        .expect("cwd")
        .join("target")
        .join("tmp");
    std::fs::create_dir_all(&root).expect("target/tmp");
    println!("step cache: {tasks} tasks, {keys} keys, two phases, zero latency, durable");
    let plain = tempfile::tempdir_in(&root).expect("temp dir");
    let (rate, calls) = round(plain.path(), false, 0, tasks, keys).await;
    println!("  without the cache        {rate:>9.0} tasks/s   prefetch attempts {calls}");
    let cached = tempfile::tempdir_in(&root).expect("temp dir");
    let (rate, calls) = round(cached.path(), true, 0, tasks, keys).await;
    println!("  cache, fresh folder      {rate:>9.0} tasks/s   prefetch attempts {calls}");
    let (rate, calls) = round(cached.path(), true, tasks, tasks, keys).await;
    println!("  cache, second run        {rate:>9.0} tasks/s   prefetch attempts {calls}");
    println!("  peak RSS {:.0} MB", peak_rss_mb());
}
