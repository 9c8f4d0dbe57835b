//! A fleet on PostgreSQL: several `baton` engines (the release binary,
//! each a process with a state folder of its own) serving one run kept in
//! a PostgreSQL cluster this bench starts for itself, on a three-phase
//! pipeline of simulated agents that never fail, ask for review or block.
//!
//! Prints three tables:
//!
//! - throughput: phases per second with 1, 2 and 3 engines, for agents that
//!   answer at once (TASKS tasks, 3,000 unless given, a concurrency of 48)
//!   and for agents that take 50 ms (3,000 tasks, a concurrency of 150),
//!   and each engine's share of the run's commits. The concurrency is the
//!   run's, shared by the engines (a fleet's limits hold across it);
//! - takeover: 3 engines on 50 ms agents with a lease of 2 s, then 5 s; one
//!   is killed with SIGKILL while it runs tasks, and it prints how long
//!   until none of its tasks is held by it and all run elsewhere, how long
//!   until the run completes, and how many attempts under way ran again;
//! - the cost curve: agents that answer at once, 1 and 3 engines, TASKS and
//!   BIG tasks (10,000 unless given, which keeps the whole bench near two
//!   minutes on 2 cores; `-- curve 3000 30000` for the README's figures; 0
//!   leaves the curve out).
//!
//! What is timed: engine 1 starts with `--input` and submits every task
//! before it runs any; the moment all of them are in the run (polled every
//! 10 ms), the other engines start, and the clock starts. It stops at the
//! last task's completion (its `finished_at`, recorded by its engine); the
//! time until every engine exited (each looks around once a second and
//! ends when the run has no work left) is printed too.
//!
//! cargo bench --bench fleet [-- [throughput] [takeover] [curve] [TASKS [BIG]]]
//!
//! Naming parts runs only those.
//!
//! Every run is checked afterwards: all tasks completed, no phase of a
//! task completed twice. Engines' output goes to files in the round's
//! temporary folder; when an engine fails, a check fails or a run takes far
//! too long, their last lines and the server's log from its first error
//! are printed, the bench goes on with the next measurement and exits 1 at
//! the end. Without PostgreSQL's server programs it says so and exits 0.

#[path = "../tests/support/pg_cluster.rs"]
mod pg_cluster;

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use pg_cluster::{Cluster, private_cluster};

const BIN: &str = env!("CARGO_BIN_EXE_baton");
const PHASES: usize = 3;
/// The run's, shared by its engines, for agents that answer at once.
const FAST_CONCURRENCY: usize = 48;
/// The run's, shared by its engines, for 50 ms agents.
const SLOW_CONCURRENCY: usize = 150;
const SLOW_TASKS: usize = 3_000;
const TAKEOVER_TASKS: usize = 3_000;

fn pipeline(latency_ms: u64, concurrency: usize) -> String {
    let mut text = format!(
        "name = \"fleet-bench\"\n[defaults]\nconcurrency = {concurrency}\n\
         [agents.sim]\nkind = \"sim\"\nlatency = \"{latency_ms}ms\"\ntokens = \"100..100\"\n\
         fail_rate = 0.0\nreview_rate = 0.0\nblock_rate = 0.0\n"
    );
    for id in ["a", "b", "c"] {
        text.push_str(&format!("[[phases]]\nid = \"{id}\"\nagent = \"sim\"\n"));
    }
    text
}

/// A connection to the run's database, for the bench's own queries.
struct Db {
    rt: tokio::runtime::Runtime,
    client: tokio_postgres::Client,
}

impl Db {
    fn connect(url: &str) -> Db {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let client = rt.block_on(async {
            let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect to the bench's database");
            tokio::spawn(conn);
            client
        });
        Db { rt, client }
    }

    fn rows(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        self.rt.block_on(self.client.query(sql, &[]))
    }

    /// The first column of the first row, as a number (NULL as 0).
    fn number(&self, sql: &str) -> Result<f64, tokio_postgres::Error> {
        let rows = self.rows(&format!("SELECT ({sql})::float8"))?;
        Ok(rows
            .first()
            .and_then(|r| r.get::<_, Option<f64>>(0))
            .unwrap_or(0.0))
    }

    fn must(&self, sql: &str) -> f64 {
        self.number(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
}

/// An engine: `baton run PIPELINE --headless [--input FILE]` with a state
/// folder of its own; stdout and stderr go to files next to it.
struct EngineProc {
    name: String,
    child: Child,
    out: PathBuf,
    err: PathBuf,
    exited: Option<(Instant, std::process::ExitStatus)>,
}

impl EngineProc {
    fn start(dir: &Path, url: &str, name: &str, input: bool, lease_secs: u64) -> EngineProc {
        let out = dir.join(format!("{name}.stdout"));
        let err = dir.join(format!("{name}.stderr"));
        let mut cmd = Command::new(BIN);
        cmd.env("BATON_STORE", url)
            .env("BATON_LEASE_SECS", lease_secs.to_string())
            .env_remove("BATON_LOG")
            .arg("run")
            .arg(dir.join("pipeline.toml"))
            .arg("--headless")
            .arg("--state-dir")
            .arg(dir.join(name))
            .stdin(Stdio::null())
            .stdout(File::create(&out).expect("engine stdout file"))
            .stderr(File::create(&err).expect("engine stderr file"));
        if input {
            cmd.arg("--input").arg(dir.join("tasks.jsonl"));
        }
        // No engine outlives the bench, however it ends.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {BIN}: {e}"));
        EngineProc {
            name: name.into(),
            child,
            out,
            err,
            exited: None,
        }
    }

    fn poll(&mut self) -> bool {
        if self.exited.is_none()
            && let Ok(Some(status)) = self.child.try_wait()
        {
            self.exited = Some((Instant::now(), status));
        }
        self.exited.is_some()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.exited = Some((Instant::now(), std::process::ExitStatus::default()));
    }

    fn tails(&self) -> String {
        let tail = |p: &Path| {
            let text = std::fs::read_to_string(p).unwrap_or_default();
            let lines: Vec<&str> = text.lines().collect();
            lines[lines.len().saturating_sub(12)..].join("\n")
        };
        format!(
            "--- {} ({}) stdout, last lines:\n{}\n--- stderr, last lines:\n{}",
            self.name,
            match self.exited {
                Some((_, s)) => s.to_string(),
                None => "still running".into(),
            },
            tail(&self.out),
            tail(&self.err)
        )
    }
}

impl Drop for EngineProc {
    fn drop(&mut self) {
        if !self.poll() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One run: a fresh database, the pipeline and tasks in a fresh folder.
struct Run {
    dir: tempfile::TempDir,
    url: String,
    db: Db,
    tasks: usize,
    lease_secs: u64,
}

impl Run {
    fn new(
        cluster: &Cluster,
        latency_ms: u64,
        concurrency: usize,
        tasks: usize,
        lease_secs: u64,
    ) -> Run {
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR"));
        let dir = tempfile::Builder::new()
            .prefix("fleet-")
            .tempdir_in(&root)
            .expect("temp dir");
        std::fs::write(
            dir.path().join("pipeline.toml"),
            pipeline(latency_ms, concurrency),
        )
        .expect("pipeline file");
        let lines: String = (1..=tasks)
            .map(|i| format!("{{\"id\":\"t{i:06}\",\"n\":{i}}}\n"))
            .collect();
        std::fs::write(dir.path().join("tasks.jsonl"), lines).expect("tasks file");
        let url = cluster.fresh_db();
        let db = Db::connect(&url);
        Run {
            dir,
            url,
            db,
            tasks,
            lease_secs,
        }
    }

    fn engine(&self, n: usize, input: bool) -> EngineProc {
        EngineProc::start(
            self.dir.path(),
            &self.url,
            &format!("e{n}"),
            input,
            self.lease_secs,
        )
    }

    /// Starts engine 1 with the tasks, waits until all are in the run,
    /// then starts the others: the engines and when the last one started.
    fn start_fleet(
        &self,
        engines: usize,
    ) -> Result<(Vec<EngineProc>, Instant, SystemTime), String> {
        let mut first = self.engine(1, true);
        let deadline = Instant::now() + Duration::from_secs(120 + self.tasks as u64 / 100);
        loop {
            // Counted once the first engine made the table.
            let made = self
                .db
                .number("SELECT (to_regclass('baton.tasks') IS NOT NULL)::int")
                .unwrap_or(0.0);
            let n = if made > 0.0 {
                self.db
                    .number("SELECT count(*) FROM baton.tasks")
                    .unwrap_or(0.0)
            } else {
                0.0
            };
            if n as usize >= self.tasks {
                break;
            }
            if first.poll() || Instant::now() > deadline {
                return Err(format!(
                    "the tasks were not all submitted ({n} of {})\n{}",
                    self.tasks,
                    first.tails()
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let (t0, wall0) = (Instant::now(), SystemTime::now());
        let mut all = vec![first];
        all.extend((2..=engines).map(|n| self.engine(n, false)));
        Ok((all, t0, wall0))
    }

    /// Waits until every engine exited; an error with their output if one
    /// failed or the run took too long.
    fn wait_all(&self, engines: &mut [EngineProc], deadline: Duration) -> Result<Instant, String> {
        let until = Instant::now() + deadline;
        loop {
            let mut done = true;
            for e in engines.iter_mut() {
                done &= e.poll();
            }
            if done {
                break;
            }
            if Instant::now() > until {
                let left = self
                    .db
                    .number("SELECT count(*) FROM baton.tasks WHERE state <> 'completed'")
                    .unwrap_or(f64::NAN);
                return Err(format!(
                    "engines still running after {}s, {left} task(s) not completed\n{}",
                    deadline.as_secs(),
                    engines
                        .iter()
                        .map(EngineProc::tails)
                        .collect::<Vec<_>>()
                        .join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let failed: Vec<String> = engines
            .iter()
            .filter(|e| {
                e.exited
                    .is_some_and(|(_, s)| !s.success() && s.code().is_some())
            })
            .map(EngineProc::tails)
            .collect();
        if !failed.is_empty() {
            return Err(format!("an engine failed\n{}", failed.join("\n")));
        }
        Ok(engines
            .iter()
            .filter_map(|e| e.exited.map(|(at, _)| at))
            .max()
            .expect("engines"))
    }

    /// Seconds from `wall0` to the last task's completion.
    fn last_finish(&self, wall0: SystemTime) -> f64 {
        let last = self
            .db
            .must("SELECT extract(epoch FROM max(finished_at)::timestamptz) FROM baton.tasks");
        last - wall0
            .duration_since(SystemTime::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64()
    }

    /// What went wrong with the run's outcome, if anything: tasks not
    /// completed, a phase completed twice.
    fn check(&self) -> Vec<String> {
        let mut wrong = Vec::new();
        let completed = self
            .db
            .must("SELECT count(*) FROM baton.tasks WHERE state = 'completed'")
            as usize;
        if completed != self.tasks {
            let states = self
                .db
                .rows("SELECT state, count(*) FROM baton.tasks GROUP BY 1 ORDER BY 1")
                .map(|rows| {
                    rows.iter()
                        .map(|r| format!("{} {}", r.get::<_, String>(0), r.get::<_, i64>(1)))
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            wrong.push(format!(
                "{completed} of {} tasks completed ({states})",
                self.tasks
            ));
        }
        let twice = self.db.must(
            "SELECT count(*) FROM (SELECT e.task, e.body::json->>'phase' \
             FROM baton.events e WHERE e.kind = 'attempt_finished' \
               AND e.body::json->'outcome'->>'result' = 'succeeded' \
             GROUP BY 1, 2 HAVING count(*) > 1) q",
        );
        if twice > 0.0 {
            wrong.push(format!("{twice} task phase(s) completed more than once"));
        }
        wrong
    }

    fn interrupted(&self) -> usize {
        self.db.must(
            "SELECT count(*) FROM baton.events WHERE kind = 'attempt_finished' \
             AND body::json->'outcome'->>'result' = 'interrupted'",
        ) as usize
    }

    /// Each engine's share of the run's commits, in order of start.
    fn commit_shares(&self) -> String {
        let rows = self
            .db
            .rows("SELECT id, commits FROM baton.engines ORDER BY id")
            .unwrap_or_default();
        let total: i64 = rows.iter().map(|r| r.get::<_, i64>(1)).sum();
        rows.iter()
            .map(|r| {
                let c: i64 = r.get(1);
                format!("{:.0}%", 100.0 * c as f64 / total.max(1) as f64)
            })
            .collect::<Vec<_>>()
            .join(" / ")
            + &format!(" of {total}")
    }
}

struct Throughput {
    engines: usize,
    latency_ms: u64,
    tasks: usize,
    phases: usize,
    secs: f64,
    exited_secs: f64,
    shares: String,
}

fn throughput(
    cluster: &Cluster,
    engines: usize,
    latency_ms: u64,
    concurrency: usize,
    tasks: usize,
) -> Result<Throughput, String> {
    let run = Run::new(cluster, latency_ms, concurrency, tasks, 10);
    let (mut fleet, t0, wall0) = run.start_fleet(engines)?;
    // What engine 1 did between the tasks' arrival and the clock's start.
    let before = run.db.must("SELECT sum(phases_done) FROM baton.tasks") as usize;
    let deadline = Duration::from_secs(300 + (tasks * PHASES) as u64 * (latency_ms + 5) / 1000);
    let exited = run.wait_all(&mut fleet, deadline)?;
    let wrong = run.check();
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    Ok(Throughput {
        engines,
        latency_ms,
        tasks,
        phases: tasks * PHASES - before,
        secs: run.last_finish(wall0),
        exited_secs: (exited - t0).as_secs_f64(),
        shares: run.commit_shares(),
    })
}

struct Takeover {
    lease_secs: u64,
    held: usize,
    lease_left: f64,
    freed: f64,
    resumed: f64,
    completed: f64,
    interrupted: usize,
    secs: f64,
}

fn takeover(cluster: &Cluster, lease_secs: u64, tasks: usize) -> Result<Takeover, String> {
    let run = Run::new(cluster, 50, SLOW_CONCURRENCY, tasks, lease_secs);
    let (mut fleet, t0, wall0) = run.start_fleet(3)?;
    let victim_pid = fleet[1].child.id();
    // Its number in the run, and then a moment of steady work.
    let found = Instant::now();
    let dead = loop {
        let id = run
            .db
            .number(&format!(
                "SELECT id FROM baton.engines WHERE pid = {victim_pid}"
            ))
            .unwrap_or(0.0) as i64;
        if id > 0 {
            break id;
        }
        if fleet[1].poll() || found.elapsed() > Duration::from_secs(60) {
            return Err(format!("engine 2 never registered\n{}", fleet[1].tails()));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_secs(1));
    let holds_running =
        format!("SELECT count(*) FROM baton.tasks WHERE owner = {dead} AND state = 'running'");
    while run.db.must(&holds_running) < 1.0 {
        if fleet[1].poll() || found.elapsed() > Duration::from_secs(60) {
            return Err(format!("engine 2 never ran a task\n{}", fleet[1].tails()));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    fleet[1].kill9();
    let killed = Instant::now();
    let lease_left = run.db.must(&format!(
        "SELECT extract(epoch FROM max(lease_until) - now()) FROM baton.tasks WHERE owner = {dead}"
    ));
    // Dead, it holds what it held: those tasks must run elsewhere.
    let held: Vec<i64> = run
        .db
        .rows(&format!("SELECT ord FROM baton.tasks WHERE owner = {dead}"))
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let list = held
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let still_held = format!("SELECT count(*) FROM baton.tasks WHERE owner = {dead}");
    let not_elsewhere = format!(
        "SELECT count(*) FROM baton.tasks WHERE ord IN ({list}) \
         AND state <> 'completed' AND (owner IS NULL OR owner = {dead})"
    );
    let (mut freed, mut resumed) = (None, None);
    let give_up = killed + Duration::from_secs(60 + 3 * lease_secs);
    while resumed.is_none() {
        if freed.is_none() && run.db.must(&still_held) == 0.0 {
            freed = Some(killed.elapsed().as_secs_f64());
        }
        if freed.is_some() && run.db.must(&not_elsewhere) == 0.0 {
            resumed = Some(killed.elapsed().as_secs_f64());
        }
        if Instant::now() > give_up {
            return Err(format!(
                "the killed engine's {} task(s) were not taken over within {}s ({} still held by it)\n{}",
                held.len(),
                give_up.duration_since(killed).as_secs(),
                run.db.must(&still_held),
                fleet
                    .iter()
                    .map(EngineProc::tails)
                    .collect::<Vec<_>>()
                    .join("\n")
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let deadline = Duration::from_secs(300 + (tasks * PHASES) as u64 * 55 / 1000);
    run.wait_all(&mut fleet, deadline)?;
    let wrong = run.check();
    if !wrong.is_empty() {
        return Err(wrong.join("; "));
    }
    let kill_after = (killed - t0).as_secs_f64();
    let secs = run.last_finish(wall0);
    Ok(Takeover {
        lease_secs,
        held: held.len(),
        lease_left,
        freed: freed.expect("freed before resumed"),
        resumed: resumed.expect("loop ends resumed"),
        completed: secs - kill_after,
        interrupted: run.interrupted(),
        secs,
    })
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sizes: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let parts: Vec<&str> = args
        .iter()
        .map(String::as_str)
        .filter(|a| ["throughput", "takeover", "curve"].contains(a))
        .collect();
    let part = |p: &str| parts.is_empty() || parts.contains(&p);
    let tasks = sizes.first().copied().unwrap_or(3_000).max(1);
    let big = sizes.get(1).copied().unwrap_or(10_000);
    let Some(cluster) = private_cluster() else {
        println!(
            "fleet: PostgreSQL is not installed (no initdb, postgres, pg_ctl): nothing measured"
        );
        return;
    };
    println!(
        "fleet: engines of the release binary ({BIN}) on one run in a PostgreSQL cluster of \
         the bench's own (port {}); 3 phases of sim agents that never fail, ask or block",
        cluster.port()
    );
    println!(
        "timed: from all tasks submitted by engine 1 (the others start then) to the last \
         task's completion; `exited` is until every engine ended\n"
    );
    let mut failures = 0;
    let mut log_seen = 0;
    let mut fail = |what: &str, why: String| {
        failures += 1;
        println!("FAILED {what}: {why}");
        // What the server said since, from its first error on.
        let log = cluster.server_log();
        let new = log.get(log_seen..).unwrap_or_default();
        log_seen = log.len();
        if let Some(at) = new.find("ERROR:") {
            let start = new[..at].rfind('\n').map_or(0, |n| n + 1);
            let lines: Vec<&str> = new[start..].lines().take(40).collect();
            println!(
                "--- the server's log from its first error:\n{}",
                lines.join("\n")
            );
        }
    };

    let header = || {
        println!(
            "  {:>7} {:>7} {:>7} {:>7} {:>7} {:>8} {:>7}  commits by engine",
            "engines", "latency", "tasks", "phases", "seconds", "phases/s", "exited"
        )
    };
    let row = |t: &Throughput| {
        println!(
            "  {:>7} {:>5}ms {:>7} {:>7} {:>7.2} {:>8.0} {:>6.2}s  {}",
            t.engines,
            t.latency_ms,
            t.tasks,
            t.phases,
            t.secs,
            t.phases as f64 / t.secs,
            t.exited_secs,
            t.shares
        )
    };
    let mut fast = Vec::new();
    let throughput_runs = if part("throughput") {
        println!(
            "throughput (the run's concurrency, shared by its engines: {FAST_CONCURRENCY} at 0 ms, {SLOW_CONCURRENCY} at 50 ms; lease 10 s)"
        );
        header();
        vec![
            (0, FAST_CONCURRENCY, tasks),
            (50, SLOW_CONCURRENCY, SLOW_TASKS),
        ]
    } else {
        Vec::new()
    };
    for (latency, concurrency, n) in throughput_runs {
        for engines in 1..=3 {
            match throughput(&cluster, engines, latency, concurrency, n) {
                Ok(t) => {
                    row(&t);
                    if latency == 0 && engines != 2 {
                        fast.push(t);
                    }
                }
                Err(why) => fail(&format!("{engines} engine(s), {latency} ms"), why),
            }
        }
    }

    let leases: &[u64] = if part("takeover") { &[2, 5] } else { &[] };
    if !leases.is_empty() {
        println!(
            "\ntakeover: 3 engines, 50 ms agents, concurrency {SLOW_CONCURRENCY}, {TAKEOVER_TASKS} tasks; \
             engine 2 killed (SIGKILL) while it runs tasks, 1 s after it registered"
        );
        println!(
            "  {:>5} {:>6} {:>10} {:>8} {:>11} {:>12} {:>11} {:>7}",
            "lease",
            "held",
            "lease left",
            "freed",
            "all resumed",
            "run complete",
            "interrupted",
            "run"
        );
    }
    for &lease in leases {
        match takeover(&cluster, lease, TAKEOVER_TASKS) {
            Ok(t) => println!(
                "  {:>4}s {:>6} {:>9.2}s {:>7.2}s {:>10.2}s {:>11.2}s {:>11} {:>6.2}s",
                t.lease_secs,
                t.held,
                t.lease_left,
                t.freed,
                t.resumed,
                t.completed,
                t.interrupted,
                t.secs
            ),
            Err(why) => fail(&format!("takeover, lease {lease} s"), why),
        }
    }
    if !leases.is_empty() {
        println!(
            "  held: the killed engine's tasks; lease left: of their lease at the kill; freed: until it \
             holds none; all resumed: until each is held by another engine (or done); run complete: \
             from the kill to the last completion; interrupted: attempts under way that ran again"
        );
    }

    if part("curve") && big > 0 {
        println!("\ncost curve: 0 ms agents, the run's concurrency {FAST_CONCURRENCY}");
        header();
        for n in [tasks, big] {
            for engines in [1, 3] {
                if let Some(t) = fast.iter().find(|t| t.engines == engines && t.tasks == n) {
                    row(t);
                    continue;
                }
                match throughput(&cluster, engines, 0, FAST_CONCURRENCY, n) {
                    Ok(t) => row(&t),
                    Err(why) => fail(&format!("{engines} engine(s), {n} tasks"), why),
                }
            }
        }
    }
    drop(cluster);
    if failures > 0 {
        std::process::exit(1);
    }
}
