//! The dashboard's costs, in three parts:
//!
//! - `render`: frame time with 10,000 tasks at 160x48 (goal: under 1 ms),
//!   drawn into ratatui's TestBackend from a real run's events: frames while
//!   events arrive (100 per frame, the fold timed apart) and settled frames
//!   where only the clock moves.
//! - `bytes`: what the real binary writes to a pseudo-terminal at 120x40,
//!   per second, while `baton demo --tasks 1000` runs (goal: under 20 KB/s)
//!   and once a run has settled (goal: nothing but the clock).
//! - `rss`: the dashboard process's peak RSS over a 10,000-task run (goal:
//!   under 100 MB), and how long a key takes to show on screen while the
//!   engine is busy.
//!
//! cargo bench --bench dashboard [-- render|bytes|rss] [--seconds N]

#[path = "../tests/support/pty.rs"]
mod pty;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use baton::engine::handle::RunSnapshot;
use baton::engine::{Actor, Engine, EngineOptions, Event};
use baton::spec;
use baton::spec::input::InputTask;
use baton::tui::keymap::Keymap;
use baton::tui::theme_file::built_in_default;
use baton::tui::ui::Ui;
use baton::tui::view_model::RunView;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use pty::Term;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use serde_json::json;

/// Five phases of simulated agents that fail, block and ask for reviews now
/// and then, so that the table holds every state.
fn pipeline_text(latency: &str, concurrency: usize) -> String {
    let mut text = format!(
        "name = \"dashboard-bench\"\n[defaults]\nconcurrency = {concurrency}\n\
         retry = {{ max_attempts = 2, initial_delay = \"1ms\" }}\n\
         [agents.sim]\nkind = \"sim\"\nlatency = \"{latency}\"\ntokens = \"200..2000\"\n\
         model = \"claude-sonnet-4-5\"\nfail_rate = 0.03\nblock_rate = 0.01\nreview_rate = 0.01\n"
    );
    for id in ["documentation", "coding", "compliance", "prior_auth", "qa"] {
        text.push_str(&format!("[[phases]]\nid = \"{id}\"\nagent = \"sim\"\n"));
    }
    text
}

fn write_inputs(path: &Path, tasks: usize) {
    let lines: String = (0..tasks)
        .map(|i| format!("{{\"id\": \"t{i:05}\", \"n\": {i}}}\n"))
        .collect();
    std::fs::write(path, lines).expect("write inputs");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(mut v: Vec<f64>) -> String {
    v.sort_by(f64::total_cmp);
    let mean = v.iter().sum::<f64>() / v.len().max(1) as f64;
    format!(
        "mean {:.3} ms  p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  ({} frames)",
        mean,
        percentile(&v, 0.5),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

/// Runs the tasks in process and keeps every event the screen would get;
/// `None` when the recorder fell behind the engine (a busy machine).
fn record_run(tasks: usize, concurrency: usize) -> Option<(RunSnapshot, Vec<Arc<Event>>)> {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let file = dir.path().join("bench.toml");
    std::fs::write(&file, pipeline_text("1ms..10ms", concurrency)).expect("write pipeline");
    let pipeline = spec::load(&file).expect("pipeline");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let mut engine = Engine::open(
            pipeline,
            &dir.path().join("state"),
            EngineOptions::default(),
        )
        .expect("engine");
        let handle = engine.handle();
        let mut events = handle.subscribe();
        // Asked before any task, answered once the engine runs. The handle
        // goes with it: the event stream ends only when no handle is left.
        let empty = tokio::spawn(async move { handle.snapshot().await });
        let inputs = (0..tasks)
            .map(|i| InputTask {
                id: Some(format!("t{i:05}")),
                input: json!({"n": i, "note": "a short clinical note for the bench"}),
                origin: "bench".into(),
            })
            .collect();
        engine.submit(inputs).await.expect("submit");
        let collector = tokio::spawn(async move {
            let mut all = Vec::new();
            loop {
                match events.recv().await {
                    Ok(ev) => all.push(ev),
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break None,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break Some(all),
                }
            }
        });
        let running = tokio::spawn(engine.run());
        let first = empty.await.expect("join").expect("a snapshot");
        running.await.expect("join").expect("run");
        Some((first, collector.await.expect("collector")?))
    })
}

fn render(tasks: usize) {
    println!("render: {tasks} tasks at 160x48, TestBackend");
    let t0 = Instant::now();
    let (snapshot, events) = [400, 200, 100, 50]
        .into_iter()
        .find_map(|concurrency| {
            record_run(tasks, concurrency).or_else(|| {
                println!(
                    "  (the recorder fell behind at concurrency {concurrency}; again, slower)"
                );
                None
            })
        })
        .expect("a run recorded whole");
    println!(
        "  recorded {} events of a real run in {:.1} s",
        events.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut ui = Ui::new(
        RunView::from_snapshot(snapshot),
        Keymap::default(),
        vec![built_in_default()],
        Actor::engine(),
    );
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    let tz = TimeZone::UTC;
    let mut now = Timestamp::now();

    // Everything but the last 20,000 events, folded without drawing.
    let split = events.len().saturating_sub(20_000);
    let fold = Instant::now();
    for ev in &events[..split] {
        ui.view.apply(ev);
    }
    let fold_secs = fold.elapsed().as_secs_f64();
    println!(
        "  fold: {:.2} µs per event ({} events)",
        fold_secs * 1e6 / split.max(1) as f64,
        split
    );

    // A busy run: 100 events between frames (1,000 events/s at 10 frames/s).
    let mut busy = Vec::new();
    let mut busy_fold = Vec::new();
    for chunk in events[split..].chunks(100) {
        let f = Instant::now();
        for ev in chunk {
            ui.view.apply(ev);
        }
        busy_fold.push(f.elapsed().as_secs_f64() * 1e3);
        now += Duration::from_millis(100);
        let d = Instant::now();
        terminal.draw(|f| ui.draw(f, now, &tz)).expect("draw");
        busy.push(d.elapsed().as_secs_f64() * 1e3);
    }
    println!("  frames while events arrive: {}", summary(busy));
    println!(
        "  folding 100 events between those frames: {}",
        summary(busy_fold)
    );

    // Settled: the clock moves, nothing else does.
    let mut settled = Vec::new();
    for _ in 0..300 {
        now += Duration::from_secs(1);
        let d = Instant::now();
        terminal.draw(|f| ui.draw(f, now, &tz)).expect("draw");
        settled.push(d.elapsed().as_secs_f64() * 1e3);
    }
    println!("  settled frames, clock ticking: {}", summary(settled));

    // The operator pages through the table and opens a task.
    let mut paging = Vec::new();
    for i in 0..300 {
        let key = if i % 50 == 49 { "enter" } else { "pagedown" };
        let code = match key {
            "enter" => crossterm::event::KeyCode::Enter,
            _ => crossterm::event::KeyCode::PageDown,
        };
        ui.on_key(&crossterm::event::KeyEvent::from(code));
        if key == "enter" {
            ui.on_key(&crossterm::event::KeyEvent::from(
                crossterm::event::KeyCode::Esc,
            ));
        }
        let d = Instant::now();
        terminal.draw(|f| ui.draw(f, now, &tz)).expect("draw");
        paging.push(d.elapsed().as_secs_f64() * 1e3);
    }
    println!("  frames while paging the table: {}", summary(paging));
}

/// Nothing running, retrying or pending, in the header's long or short form.
fn settled(screen: &str) -> bool {
    [
        ("▶ 0 running", "▶0 run"),
        ("↻ 0 retrying", "↻0 retry"),
        ("· 0 pending", "·0 pend"),
    ]
    .iter()
    .all(|(long, short)| screen.contains(long) || screen.contains(short))
}

/// Bytes per one-second window between `from` and `to` seconds of `samples`.
fn rates(samples: &[(f64, u64)], from: f64, to: f64) -> (f64, u64) {
    let inside: Vec<&(f64, u64)> = samples
        .iter()
        .filter(|(t, _)| *t >= from && *t <= to)
        .collect();
    let (Some(first), Some(last)) = (inside.first(), inside.last()) else {
        return (f64::NAN, 0);
    };
    let avg = (last.1 - first.1) as f64 / (last.0 - first.0).max(1e-9);
    let max = inside
        .windows(2)
        .map(|w| w[1].1 - w[0].1)
        .max()
        .unwrap_or(0);
    (avg, max)
}

/// Samples the byte counter once a second for `secs` seconds.
fn sample(term: &Term, secs: u64) -> Vec<(f64, u64)> {
    let t0 = Instant::now();
    let mut samples = vec![(0.0, term.bytes_written())];
    for i in 1..=secs {
        let at = t0 + Duration::from_secs(i);
        std::thread::sleep(at.saturating_duration_since(Instant::now()));
        samples.push((t0.elapsed().as_secs_f64(), term.bytes_written()));
    }
    samples
}

fn bytes(secs: u64) {
    println!("bytes: what the dashboard writes to a 120x40 terminal");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let demo_dir = dir.path().join("demo-state");
    let demo_dir = demo_dir.to_str().expect("utf-8 path");
    let mut term = Term::spawn(
        &["demo", "--tasks", "1000", "--dir", demo_dir],
        dir.path(),
        120,
        40,
        &[("COLORTERM", "truecolor")],
    );
    term.wait_for("demo-dev-squad", 60);
    let first_frame = term.bytes_written();
    let samples = sample(&term, secs);
    let (avg, max) = rates(&samples, 0.0, secs as f64);
    println!("  first frame: {first_frame} bytes");
    println!(
        "  baton demo --tasks 1000, running, over {secs} s: {:.0} B/s on average, {max} B in the busiest second",
        avg
    );
    term.send("q");
    term.wait_for("Quit the dashboard?", 10);
    term.send("y");
    term.wait_exit(60);

    // A run that settles within a second or two: then only the clock moves.
    let file = dir.path().join("settle.toml");
    std::fs::write(&file, pipeline_text("0ms", 100)).expect("write pipeline");
    write_inputs(&dir.path().join("settle.jsonl"), 1000);
    let mut term = Term::spawn(
        &[
            "run",
            "settle.toml",
            "--input",
            "settle.jsonl",
            "--state-dir",
            "settle-state",
        ],
        dir.path(),
        120,
        40,
        &[("COLORTERM", "truecolor")],
    );
    term.wait_until("the run to settle", 120, settled);
    std::thread::sleep(Duration::from_secs(2));
    let samples = sample(&term, secs);
    let (avg, max) = rates(&samples, 0.0, secs as f64);
    println!(
        "  settled (1000 tasks, some awaiting review), over {secs} s: {:.0} B/s on average, {max} B in the busiest second",
        avg
    );
    let mut keys = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(700));
        let quiet = Instant::now();
        term.send("?");
        term.wait_for("Keys", 10);
        keys.push(quiet.elapsed().as_secs_f64() * 1e3);
        term.send("\x1b");
        term.wait_until("help closed", 10, |s| !s.contains("Keys"));
    }
    println!(
        "  key to screen on the settled dashboard: {}",
        summary(keys).replace("frames", "keys")
    );
    term.wait_until("help closed", 10, |s| !s.contains("Keys"));
    term.send("q");
    term.wait_for("Quit the dashboard?", 10);
    term.send("y");
    term.wait_exit(60);
}

/// A `/proc/PID/status` figure in MB: `VmHWM` (peak RSS) or `VmRSS` (now).
fn status_mb(pid: u32, field: &str) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn rss_line(what: &str, pid: u32) -> String {
    format!(
        "  {what}: peak RSS {:.1} MB, {:.1} MB now",
        status_mb(pid, "VmHWM:"),
        status_mb(pid, "VmRSS:")
    )
}

fn rss(tasks: usize) {
    println!("rss: the dashboard and its engine over a {tasks}-task run at 160x48");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    std::fs::write(dir.path().join("rss.toml"), pipeline_text("5ms..40ms", 200))
        .expect("write pipeline");
    write_inputs(&dir.path().join("rss.jsonl"), tasks);
    let mut term = Term::spawn(
        &[
            "run",
            "rss.toml",
            "--input",
            "rss.jsonl",
            "--state-dir",
            "state",
        ],
        dir.path(),
        160,
        48,
        &[("COLORTERM", "truecolor")],
    );
    let pid = term.pid().expect("the dashboard's pid");
    term.wait_for("dashboard-bench", 60);
    // How long a key takes to show while the engine is busy.
    let mut keys = Vec::new();
    for _ in 0..5 {
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        term.send("?");
        term.wait_for("Keys", 10);
        keys.push(t.elapsed().as_secs_f64() * 1e3);
        term.send("\x1b");
        term.wait_until("help closed", 10, |s| !s.contains("Keys"));
    }
    let busy = term.contents();
    term.wait_until("the run to settle", 600, settled);
    println!(
        "  key to screen while busy: {}",
        summary(keys).replace("frames", "keys")
    );
    println!(
        "  (header when the keys were pressed: {})",
        busy.lines().nth(1).unwrap_or("").trim()
    );
    println!("{}", rss_line("the dashboard process", pid));
    // The dashboard runs the engine as a process of its own; its pid is in LOCK.
    let engine = std::fs::read_to_string(dir.path().join("state/LOCK"))
        .ok()
        .and_then(|t| t.trim().parse::<u32>().ok())
        .filter(|p| *p != pid);
    if let Some(engine) = engine {
        println!("{}", rss_line("the engine process", engine));
    }
    term.send("q");
    if term.contents().contains("Quit the dashboard?") || {
        std::thread::sleep(Duration::from_millis(500));
        term.contents().contains("Quit the dashboard?")
    } {
        term.send("y");
    }
    term.wait_exit(120);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(20);
    let parts: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["render", "bytes", "rss"].contains(a))
        .collect();
    let all = parts.is_empty();
    if all || parts.contains(&"render") {
        render(10_000);
    }
    if all || parts.contains(&"bytes") {
        bytes(seconds);
    }
    if all || parts.contains(&"rss") {
        rss(10_000);
    }
}
