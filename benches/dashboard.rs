//! The dashboard's costs, in three parts:
//!
//! - `reads`: what one screen costs to read from the store, over a run of
//!   TASKS tasks (100,000 unless given; measure 10,000, 100,000 and
//!   1,000,000): the first page, every sort both ways, a text filter,
//!   scrolling to the middle and the end, the review queue and the selected
//!   task, each while the engine writes and again once it is done (goal:
//!   under 100 ms each at a million), and a frame drawn from such a page.
//! - `bytes`: what the real binary writes to a pseudo-terminal at 120x40,
//!   per second, while `baton demo --tasks 1000` runs (goal: under 20 KB/s)
//!   and once a run has settled (goal: nothing but the clock).
//! - `rss`: the dashboard process's peak RSS over a TASKS-task run (10,000
//!   unless given; goal: under 50 MB whatever the size), and how long a key
//!   takes to show on screen while the engine is busy.
//!
//! cargo bench --bench dashboard [-- reads|bytes|rss] [--tasks N] [--seconds N]

#[path = "../tests/support/pty.rs"]
mod pty;

use std::path::Path;
use std::time::{Duration, Instant};

use baton::engine::{Actor, Engine, EngineOptions};
use baton::spec;
use baton::spec::input::InputTask;
use baton::store::{RunReader, SqliteReader};
use baton::tui::fetch::{Want, fetch};
use baton::tui::keymap::Keymap;
use baton::tui::rows::query;
use baton::tui::theme_file::built_in_default;
use baton::tui::ui::Ui;
use baton::tui::view_model::RunView;
use baton::tui::view_state::{Sort, SortColumn};
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

/// Times one read of `want`: the best and the median of five.
fn time_read(rt: &tokio::runtime::Runtime, reader: &SqliteReader, want: &Want) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..5)
        .map(|_| {
            let t = Instant::now();
            rt.block_on(fetch(reader, want.clone())).expect("a page");
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[0], ms[2])
}

/// The screens an operator asks for, as reads.
fn screens(tasks: usize) -> Vec<(String, Want)> {
    let rows = 40;
    let window = |sort: Sort, filter: &str, offset: usize| Want {
        table: query(sort, filter, offset.saturating_sub(rows), 3 * rows),
        queue_offset: 0,
        queue_limit: 60,
        selected: Some("t0000042".into()),
        finished_since: None,
    };
    let mut out = vec![
        ("first page".to_string(), window(Sort::default(), "", 0)),
        (
            "scrolled to the middle".into(),
            window(Sort::default(), "", tasks / 2),
        ),
        (
            "scrolled to the end".into(),
            window(Sort::default(), "", tasks.saturating_sub(rows)),
        ),
        (
            "filter \"t00099\" (a substring of ids)".into(),
            window(Sort::default(), "t00099", 0),
        ),
        (
            "filter \"review\" (a state)".into(),
            window(Sort::default(), "review", 0),
        ),
    ];
    for column in SortColumn::CYCLE {
        for descending in [false, true] {
            let sort = Sort { column, descending };
            let dir = if descending { "▼" } else { "▲" };
            out.push((format!("sort {} {dir}", column.name()), window(sort, "", 0)));
        }
    }
    // Elapsed time merges two indexes: an offset is skipped through both.
    let elapsed = Sort {
        column: SortColumn::Elapsed,
        descending: true,
    };
    out.push((
        "sort elapsed ▼, scrolled to the middle".into(),
        window(elapsed, "", tasks / 2),
    ));
    out
}

/// Where the first page's time goes, query by query.
fn print_breakdown(rt: &tokio::runtime::Runtime, reader: &SqliteReader, want: &Want) {
    let time = |what: &str, f: &dyn Fn()| {
        let mut ms: Vec<f64> = (0..5)
            .map(|_| {
                let t = Instant::now();
                f();
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect();
        ms.sort_by(f64::total_cmp);
        println!("      {what:<36} median {:>7.2} ms", ms[2]);
    };
    time("last seq", &|| {
        rt.block_on(reader.last_seq()).expect("seq");
    });
    time("totals", &|| {
        rt.block_on(reader.totals()).expect("totals");
    });
    time("table window (120 rows)", &|| {
        rt.block_on(reader.list(&want.table)).expect("rows");
    });
    time("review queue page (60)", &|| {
        rt.block_on(reader.waiting(0, Some(60))).expect("queue");
    });
    time("selected task, whole", &|| {
        rt.block_on(reader.task("t0000042")).expect("task");
    });
}

fn print_reads(rt: &tokio::runtime::Runtime, reader: &SqliteReader, tasks: usize) {
    println!("    the first page, query by query:");
    print_breakdown(rt, reader, &screens(tasks)[0].1);
    let mut worst = (0.0, String::new());
    for (what, want) in screens(tasks) {
        let (best, median) = time_read(rt, reader, &want);
        println!("    {what:<38} best {best:>7.2} ms  median {median:>7.2} ms");
        if median > worst.0 {
            worst = (median, what);
        }
    }
    println!("    slowest: {} ({:.2} ms)", worst.1, worst.0);
}

fn reads(tasks: usize) {
    println!("reads: one screen's worth of a {tasks}-task run, read from the store");
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).expect("temp dir");
    let file = dir.path().join("bench.toml");
    std::fs::write(&file, pipeline_text("0ms", 16)).expect("write pipeline");
    let pipeline = spec::load(&file).expect("pipeline");
    let state = dir.path().join("state");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let t0 = Instant::now();
    let running = rt.block_on(async {
        let mut engine = Engine::open(pipeline, &state, EngineOptions::default()).expect("engine");
        let inputs = (0..tasks)
            .map(|i| InputTask {
                id: Some(format!("t{i:07}")),
                input: json!({"n": i, "note": "a short clinical note for the bench"}),
                origin: "bench".into(),
            })
            .collect();
        engine.submit(inputs).await.expect("submit");
        engine
    });
    let running = rt.spawn(running.run());
    println!(
        "  submitted in {:.1} s; the engine runs",
        t0.elapsed().as_secs_f64()
    );
    let reader = SqliteReader::open(&state).expect("a reader");
    let totals = rt.block_on(reader.totals()).expect("totals");
    println!(
        "  while the engine writes ({} of {} tasks final):",
        totals.count(baton::engine::TaskState::Completed)
            + totals.count(baton::engine::TaskState::Failed),
        totals.tasks
    );
    print_reads(&rt, &reader, tasks);
    rt.block_on(running).expect("join").expect("run");
    println!(
        "  the run took {:.1} s; on the finished run:",
        t0.elapsed().as_secs_f64()
    );
    print_reads(&rt, &reader, tasks);

    // A frame drawn from such a page, and what the view holds.
    let overview = baton::engine::handle::RunOverview {
        pipeline: "dashboard-bench".into(),
        phases: Vec::new(),
        state_dir: state.display().to_string(),
        started_at: Timestamp::now(),
        ..Default::default()
    };
    let mut ui = Ui::new(
        RunView::new(overview),
        Keymap::default(),
        vec![built_in_default()],
        Actor::engine(),
    );
    ui.area = ratatui::layout::Rect::new(0, 0, 160, 48);
    let mut terminal = Terminal::new(TestBackend::new(160, 48)).expect("terminal");
    let tz = TimeZone::UTC;
    let mut frames = Vec::new();
    let mut keys = Vec::new();
    for i in 0..200 {
        let key = if i % 2 == 0 {
            crossterm::event::KeyCode::PageDown
        } else {
            crossterm::event::KeyCode::Char('j')
        };
        let k = Instant::now();
        ui.on_key(&crossterm::event::KeyEvent::from(key));
        ui.prepare(Timestamp::now());
        let page = rt.block_on(fetch(&reader, ui.want())).expect("a page");
        ui.view.set_page(page, Timestamp::now());
        ui.prepare(Timestamp::now());
        let d = Instant::now();
        terminal
            .draw(|f| ui.draw(f, Timestamp::now(), &tz))
            .expect("draw");
        frames.push(d.elapsed().as_secs_f64() * 1e3);
        keys.push(k.elapsed().as_secs_f64() * 1e3);
    }
    println!("  frames drawn from a page: {}", summary(frames));
    println!(
        "  key, read, frame (paging down): {}",
        summary(keys).replace("frames", "keys")
    );
    println!(
        "  rows the view holds: {} of {}",
        ui.view.rows().count(),
        ui.view.len()
    );
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
    let tasks: Option<usize> = args
        .iter()
        .position(|a| a == "--tasks")
        .and_then(|i| args.get(i + 1)?.parse().ok());
    let parts: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["reads", "bytes", "rss"].contains(a))
        .collect();
    let all = parts.is_empty();
    if all || parts.contains(&"reads") {
        reads(tasks.unwrap_or(100_000));
    }
    if all || parts.contains(&"bytes") {
        bytes(seconds);
    }
    if all || parts.contains(&"rss") {
        rss(tasks.unwrap_or(10_000));
    }
}
