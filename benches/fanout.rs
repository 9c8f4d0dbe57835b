//! Fan-out throughput: TASKS tasks (1 unless given) of ITEMS items each
//! through two item phases (a chain) and one fan-in, on simulated agents
//! with zero latency, every commit synced: the shape of the script-to-
//! lighting runner, where a script's scenes are enriched, then lit, then
//! measured all together.
//!
//! Prints, per size: items per second (each item through both phases,
//! from submission to the close of the engine), item attempts per second,
//! the events and commits it took, bytes on disk per item, and the
//! process's peak RSS (the high-water mark so far: sizes run smallest
//! first, so each figure is that size's).
//!
//! cargo bench --bench fanout                  # 1,000 then 10,000 items in one task
//! cargo bench --bench fanout -- 10000 10      # 10 tasks of 10,000 items each
//!
//! One task fans out over at most 10,000 items; 100,000 items are ten
//! such tasks.

use std::path::PathBuf;
use std::time::Instant;

use baton::engine::{Engine, EngineOptions, TaskState};
use baton::spec;
use baton::spec::input::InputTask;
use serde_json::json;

const PIPELINE: &str = "name = \"fanout-bench\"\n[defaults]\nconcurrency = 16\n\
[agents.sim]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"200..2000\"\nmodel = \"claude-sonnet-4-5\"\n\
[[phases]]\nid = \"enrich\"\nagent = \"sim\"\nfor_each = \"input.scenes\"\nmax_items_in_flight = 64\n\
[[phases]]\nid = \"light\"\nagent = \"sim\"\nfor_each = \"input.scenes\"\n\
[[phases]]\nid = \"metrics\"\nagent = \"sim\"\n";

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

async fn round(items: usize, tasks: usize) {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
    let temp = tempfile::tempdir_in(&root).expect("temp dir");
    let file = temp.path().join("fanout.toml");
    std::fs::write(&file, PIPELINE).expect("write pipeline");
    let pipeline = spec::load(&file).expect("pipeline");
    let state = temp.path().join("state");
    let mut engine = Engine::open(pipeline, &state, EngineOptions::default()).expect("engine");
    let t0 = Instant::now();
    let inputs = (0..tasks)
        .map(|t| InputTask {
            id: Some(format!("script-{t:03}")),
            input: json!({
                "scenes": (0..items).map(|i| json!({"scene": i, "text": format!("scene {i}")})).collect::<Vec<_>>()
            }),
            origin: "bench".into(),
        })
        .collect();
    engine.submit(inputs).await.expect("submit");
    let summary = engine.run().await.expect("run");
    let took = t0.elapsed().as_secs_f64();
    assert_eq!(
        summary.count(TaskState::Completed),
        tasks,
        "every task completes"
    );
    let disk: u64 = std::fs::read_dir(&state)
        .expect("state folder")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    let all = (items * tasks) as f64;
    let st = summary.store;
    println!(
        "  {tasks} task(s) x {items} items: {:>7.0} items/s ({:.0} item attempts/s), {:.2} s; \
         {} events in {} commits; {:.0} bytes on disk per item; peak RSS {:.0} MB",
        all / took,
        2.0 * all / took,
        took,
        st.events_written,
        st.batches,
        disk as f64 / all,
        peak_rss_mb()
    );
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let runs: Vec<(usize, usize)> = match args.as_slice() {
        [] => vec![(1_000, 1), (10_000, 1)],
        [items] => vec![(*items, 1)],
        [items, tasks, ..] => vec![(*items, *tasks)],
    };
    println!(
        "fanout: items through two item phases and a fan-in, zero-latency sim agents, every commit synced"
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for (items, tasks) in runs {
        runtime.block_on(round(items, tasks));
    }
}
