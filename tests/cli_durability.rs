//! Durability through the binary: one engine per state folder, kill -9 at
//! many points, damaged files, timeouts that must not leave processes
//! behind, and SIGTERM.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/remote.rs"]
mod remote;

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::Duration;

use cli::{Out, Sandbox, is_alive, str_at, wait_for};
use serde_json::{Value, json};

const ONE_PHASE: &str = r#"
[defaults]
retry = { max_attempts = 2, initial_delay = "10ms", max_delay = "20ms" }

[[phases]]
id = "one"
agent = "a"
"#;

const TWO_PHASES: &str = r#"
[defaults]
concurrency = 2
retry = { max_attempts = 2, initial_delay = "10ms", max_delay = "20ms" }

[[phases]]
id = "one"
agent = "a"

[[phases]]
id = "two"
agent = "a"
after = ["one"]
"#;

fn read_pid(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn wait_until_gone(pid: u32, what: &str) {
    wait_for(&format!("{what} (pid {pid}) to be gone"), || {
        (!is_alive(pid)).then_some(())
    });
}

#[test]
fn a_second_engine_on_the_same_folder_is_refused_naming_the_first() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(ONE_PHASE);
    let pidfile = sandbox.path("agent.pid");
    sandbox.inputs(&[json!({"id": "t", "do": {"one": "hang"}, "pidfile": pidfile})]);
    let live = sandbox.spawn_run(true);
    // The lock is taken before any agent starts.
    wait_for("the agent to start", || pidfile.exists().then_some(()));
    let holder = format!("pid {}", live.pid());

    for out in [sandbox.resume(), sandbox.run()] {
        out.expect(2);
        assert!(out.stderr.contains("is in use by baton"), "{out}");
        assert!(out.stderr.contains(&holder), "want {holder}\n{out}");
    }
    // Decisions go to the running engine, which has the last word.
    let out = sandbox.cli(&["approve", "t"]);
    out.expect(1);
    assert!(out.stderr.contains("refused:"), "{out}");
    // Reading works while the run holds the folder.
    assert_eq!(sandbox.states()["t"], "running");
    assert!(sandbox.show("t").get("decisions").is_none());

    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    wait_until_gone(read_pid(&pidfile), "the hanging agent");
}

/// Phases of the kill test: a fan-out and a join.
const FAN: &str = r#"
[defaults]
concurrency = 3
retry = { max_attempts = 3, initial_delay = "10ms", max_delay = "20ms" }

[[phases]]
id = "fetch"
agent = "a"

[[phases]]
id = "draft"
agent = "a"
after = ["fetch"]

[[phases]]
id = "check"
agent = "a"
after = ["fetch"]

[[phases]]
id = "final"
agent = "a"
after = ["draft", "check"]
"#;
const FAN_PHASES: [&str; 4] = ["fetch", "draft", "check", "final"];
#[test]
fn an_agent_dies_with_an_engine_killed_by_sigkill() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(ONE_PHASE);
    let pidfile = sandbox.path("agent.pid");
    sandbox.inputs(&[json!({"id": "t", "do": {"one": "hang"}, "pidfile": pidfile})]);
    let live = sandbox.spawn_run(true);
    wait_for("the agent to start", || pidfile.exists().then_some(()));
    let agent = read_pid(&pidfile);
    assert!(is_alive(agent));
    // No clean shutdown to kill it: the kernel does, as its parent dies.
    live.kill9();
    wait_until_gone(agent, "the agent of the killed engine");
}

/// Asks for a review at `fetch`, approved between kills.
const REVIEWED: &str = "k2";

fn fan_tasks() -> Vec<Value> {
    (0..6)
        .map(|i| {
            let sleeps: serde_json::Map<String, Value> = FAN_PHASES
                .iter()
                .enumerate()
                .map(|(j, p)| (p.to_string(), json!((i * 37 + j * 23) % 90 + 5)))
                .collect();
            let mut t = json!({"id": format!("k{i}"), "sleep_ms": sleeps});
            if t["id"] == REVIEWED {
                t["do"] = json!({"fetch": "review"});
            }
            t
        })
        .collect()
}

/// What the kill test learns as it goes, and checks at every stop.
#[derive(Default)]
struct Ledger {
    kills: usize,
    /// (task, phase) seen completed: side-log runs then, and the output.
    settled: BTreeMap<(String, String), (usize, Value)>,
    /// Tasks a run printed as completed before it stopped.
    reported: BTreeSet<String>,
    /// Tasks whose review was approved, and said so (exit status 0).
    approved: BTreeSet<String>,
}

impl Ledger {
    fn runs(sandbox: &Sandbox) -> BTreeMap<(String, String), usize> {
        let mut n = BTreeMap::new();
        for l in sandbox.side_log_lines() {
            *n.entry((l[0].clone(), l[1].clone())).or_default() += 1;
        }
        n
    }

    /// After a run stopped (killed or not): what it printed is durable, no
    /// settled phase ran again or changed, and a waiting review is approved.
    fn check_stop(&mut self, sandbox: &Sandbox, out: &Out) {
        sandbox.wait_for_no_stray_agents();
        for (id, state) in out.rest_lines() {
            if state == "completed" {
                self.reported.insert(id);
            }
        }
        let runs = Ledger::runs(sandbox);
        // A kill before the run recorded its pipeline leaves nothing to read.
        let states = if sandbox.state().join("pipeline.toml").exists() {
            sandbox.states()
        } else {
            BTreeMap::new()
        };
        for id in &self.reported {
            assert_eq!(
                states.get(id).map(String::as_str),
                Some("completed"),
                "{id} was printed as completed before kill {}\n{out}",
                self.kills
            );
        }
        for id in states.keys() {
            let task = sandbox.show(id);
            for phase in task["phases"].as_array().unwrap() {
                if phase["state"] != "completed" {
                    continue;
                }
                let key = (id.clone(), str_at(phase, "id"));
                let now = runs.get(&key).copied().unwrap_or(0);
                match self.settled.get(&key) {
                    None => {
                        self.settled.insert(key, (now, phase["output"].clone()));
                    }
                    Some((then, output)) => {
                        assert_eq!(now, *then, "{key:?} ran again after it completed");
                        assert_eq!(&phase["output"], output, "{key:?} output changed");
                    }
                }
            }
            if self.approved.contains(id) {
                assert_eq!(
                    task["decisions"][0]["action"]["action"], "approve",
                    "the approval of {id} was lost\n{task}"
                );
            }
        }
        for (id, state) in &states {
            if state == "awaiting_review" {
                sandbox.cli(&["approve", id]).expect(0);
                self.approved.insert(id.clone());
            }
        }
    }
}

#[test]
fn kill_9_at_many_points_loses_nothing_and_repeats_only_interrupted_work() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(FAN);
    sandbox.inputs(&fan_tasks());
    let side_runs = || sandbox.side_log_lines().len();

    // Kill once the side log has this many lines, after this many ms more:
    // from before the state folder is open to the last phases.
    let schedule: [(usize, u64); 14] = [
        (0, 0),
        (0, 15),
        (0, 60),
        (1, 0),
        (2, 5),
        (4, 0),
        (6, 20),
        (8, 0),
        (10, 40),
        (12, 2),
        (14, 0),
        (16, 25),
        (19, 5),
        (22, 0),
    ];
    let mut ledger = Ledger::default();
    let mut done = false;
    'schedule: for (lines, extra_ms) in schedule {
        loop {
            // Every run is given the inputs: only the first adds them.
            let mut live = sandbox.spawn_run(true);
            let reached = wait_for("the kill point or the end of the run", || {
                if side_runs() >= lines {
                    Some(true)
                } else if live.has_exited() {
                    Some(false)
                } else {
                    None
                }
            });
            if reached && extra_ms > 0 {
                std::thread::sleep(Duration::from_millis(extra_ms));
            }
            let out = live.kill9();
            let killed = out.status.signal() == Some(libc::SIGKILL);
            if killed {
                ledger.kills += 1;
            }
            ledger.check_stop(&sandbox, &out);
            match out.status.code() {
                None if killed => continue 'schedule,
                Some(0) => {
                    done = true;
                    break 'schedule;
                }
                // Stopped for the review, approved above; same kill point again.
                Some(3) => continue,
                _ => panic!("unexpected end of a run\n{out}"),
            }
        }
    }
    eprintln!("{} kills, {} runs of agents", ledger.kills, side_runs());
    assert!(
        ledger.kills >= 10,
        "only {} kills landed: the runs finished too early",
        ledger.kills
    );

    if !done {
        for _ in 0..3 {
            let out = sandbox.run();
            ledger.check_stop(&sandbox, &out);
            match out.code() {
                0 => break,
                3 => continue,
                _ => panic!("the final run failed\n{out}"),
            }
        }
    }

    let states = sandbox.states();
    assert_eq!(states.len(), 6, "{states:?}");
    assert!(
        states.values().all(|s| s == "completed"),
        "not all completed: {states:?}"
    );
    assert!(
        ledger.approved.contains(REVIEWED),
        "{REVIEWED} never waited for its review"
    );

    let log = sandbox.side_log_lines();
    let runs = Ledger::runs(&sandbox);
    for id in states.keys() {
        let task = sandbox.show(id);
        for phase in task["phases"].as_array().unwrap() {
            let pid = str_at(phase, "id");
            assert_eq!(phase["state"], "completed", "{id}/{pid}");
            let output = &phase["output"];
            assert_eq!(output["task"], id.as_str());
            assert_eq!(output["phase"], pid.as_str());
            // The output kept is one the agent really produced, by the
            // attempt the state says succeeded.
            let nonce = str_at(output, "nonce");
            let attempt = output["attempt"].as_u64().unwrap().to_string();
            assert!(
                log.iter()
                    .any(|l| l[0] == *id && l[1] == pid && l[2] == attempt && l[3] == nonce),
                "{id}/{pid}: output not from any logged run"
            );
            let last = phase["attempts"].as_array().unwrap().last().unwrap();
            let result = last["outcome"]["result"].as_str().unwrap();
            let asked = *id == REVIEWED && pid == "fetch";
            let want = if asked {
                "review_requested"
            } else {
                "succeeded"
            };
            assert_eq!(result, want, "{id}/{pid}");
            assert_eq!(last["number"].as_u64().unwrap().to_string(), attempt);

            let key = (id.clone(), pid.clone());
            let n = runs.get(&key).copied().unwrap_or(0);
            assert!(
                n <= 1 + ledger.kills,
                "{id}/{pid} ran {n} times with {} kills",
                ledger.kills
            );
        }
        let last = &task["phases"][3]["output"];
        assert_eq!(last["seen"], json!(["check", "draft", "fetch"]), "{id}");
    }
}

#[test]
fn a_damaged_database_is_reported_with_its_file_and_the_way_out() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(ONE_PHASE);
    sandbox.inputs(&[json!({"id": "t1"}), json!({"id": "t2"})]);
    sandbox.run().expect(0);
    let db = sandbox.state().join("baton.db");
    // Overwrite the header and the first pages: no longer a database.
    let mut bytes = std::fs::read(&db).unwrap();
    for b in bytes.iter_mut().take(4096) {
        *b = b'x';
    }
    std::fs::write(&db, &bytes).unwrap();
    for out in [
        sandbox.resume(),
        sandbox.cli(&["list"]),
        sandbox.cli(&["summary"]),
    ] {
        out.expect(2);
        assert!(
            out.stderr.contains(&db.display().to_string()),
            "names the file\n{out}"
        );
        assert!(out.stderr.contains("help: "), "{out}");
        assert!(!out.stderr.contains("panicked"), "{out}");
    }
    // Nothing was changed by trying.
    assert_eq!(std::fs::read(&db).unwrap(), bytes);
}

#[test]
fn a_killed_run_leaves_a_database_that_reads_and_resumes() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    let inputs: Vec<Value> = (0..40).map(|i| json!({"id": format!("t{i:02}")})).collect();
    sandbox.inputs(&inputs);
    let live = sandbox.spawn_run(true);
    wait_for("some tasks to finish", || {
        let list = sandbox.cli(&["list", "--json", "--state", "completed"]);
        (list.code() == 0 && list.stdout.matches("\"id\"").count() >= 3).then_some(())
    });
    live.signal(libc::SIGKILL);
    let _ = live.wait();
    // The write-ahead log the kill left behind is read back: nothing lost.
    let before = sandbox.cli(&["summary", "--json"]);
    before.expect(0);
    // No engine holds the folder: what was under way shows as interrupted.
    let list = sandbox.cli(&["list"]);
    list.expect(0);
    let under_way = sandbox
        .list()
        .iter()
        .filter(|r| r["state"] == "running" || r["state"] == "retrying")
        .count();
    assert_eq!(
        list.stdout.matches("interrupted").count(),
        under_way,
        "{list}"
    );
    assert!(!list.stdout.contains(" running "), "{list}");
    // The summary counts them the same way; its JSON keeps the recorded
    // states and says how many of them were interrupted.
    let summary = sandbox.cli(&["summary"]);
    summary.expect(0);
    let before: Value = serde_json::from_str(&before.stdout).unwrap();
    assert_eq!(before["interrupted"], under_way, "{before}");
    if under_way > 0 {
        assert!(
            summary.stdout.contains(&format!(
                "  interrupted      {under_way} (no engine serves the run"
            )),
            "{summary}"
        );
        assert!(!summary.stdout.contains("  running "), "{summary}");
    }
    sandbox.resume().expect(0);
    let states = sandbox.states();
    assert_eq!(states.len(), 40);
    assert!(states.values().all(|s| s == "completed"), "{states:?}");
}

#[test]
fn a_timeout_kills_the_agents_whole_process_group() {
    let sandbox = Sandbox::new();
    let pidfile = sandbox.path("grandchild.pid");
    let script = format!(
        "sleep 600 & echo $! > {0}.tmp && mv {0}.tmp {0}; wait",
        pidfile.display()
    );
    sandbox.write(
        "pipeline.toml",
        &format!(
            r#"
name = "timeouts"

[agents.spawner]
kind = "command"
command = ["sh", "-c", {script:?}]

[[phases]]
id = "one"
agent = "spawner"
timeout = "1s"
retry = {{ max_attempts = 1 }}
"#
        ),
    );
    sandbox.inputs(&[json!({"id": "t"})]);
    let out = sandbox.run();
    out.expect(1);
    let t = sandbox.show("t");
    let attempt = &t["phases"][0]["attempts"][0];
    assert_eq!(attempt["outcome"]["class"], "timeout", "{t}");
    assert!(pidfile.exists(), "the agent never started its grandchild");
    wait_until_gone(read_pid(&pidfile), "the grandchild `sleep`");
}

#[test]
fn sigterm_stops_a_run_cleanly_and_the_next_run_completes() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    let pidfile = sandbox.path("hang.pid");
    sandbox.inputs(&[
        json!({"id": "a"}),
        json!({"id": "b", "do": {"two": ["hang", "ok"]}, "pidfile": pidfile}),
    ]);
    let live = sandbox.spawn_run(true);
    wait_for("the hanging attempt to start", || {
        pidfile.exists().then_some(())
    });
    live.signal(libc::SIGTERM);
    let out = live.wait();
    out.expect(143);
    assert!(
        out.stderr.contains("terminated: finishing the journal"),
        "{out}"
    );
    wait_until_gone(read_pid(&pidfile), "the running agent");

    // The stop was recorded by the run itself, not left for recovery.
    let b = sandbox.show("b");
    let attempts = b["phases"][1]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{b}");
    assert_eq!(attempts[0]["outcome"]["result"], "interrupted", "{b}");

    let out = sandbox.resume();
    out.expect(0);
    let states = sandbox.states();
    assert!(states.values().all(|s| s == "completed"), "{states:?}");
    // At least once per attempt: only an attempt the stop interrupted may
    // have run twice.
    for (task, phase, idx) in [
        ("a", "one", 0),
        ("a", "two", 1),
        ("b", "one", 0),
        ("b", "two", 1),
    ] {
        let n = sandbox.runs_of(task, phase);
        let shown = sandbox.show(task);
        let interrupted = shown["phases"][idx]["attempts"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["outcome"]["result"] == "interrupted")
            .count();
        assert!(
            n >= 1 && n <= 1 + interrupted,
            "{task}/{phase} ran {n} times with {interrupted} interrupted attempt(s)"
        );
    }
}

/// The state folder's disk fills up mid-run (a file size limit on the
/// process stands in for a full disk: every write past it fails, as with
/// ENOSPC). The run stops with a clear error naming the database and what
/// to do; what it had committed is intact; run again with room, it carries
/// on and finishes, and no task completed before the failure runs again.
#[test]
fn a_full_disk_stops_the_run_clearly_and_it_resumes_when_there_is_room() {
    use std::os::unix::process::CommandExt;

    let sandbox = Sandbox::new();
    let pipeline = sandbox.write(
        "sim.toml",
        r#"name = "full-disk"
[defaults]
concurrency = 8
[agents.sim]
kind = "sim"
latency = "0ms"
tokens = "200..400"
[[phases]]
id = "one"
agent = "sim"
[[phases]]
id = "two"
agent = "sim"
"#,
    );
    let tasks: Vec<Value> = (0..3000)
        .map(|i| json!({"id": format!("t{i:04}"), "note": "x".repeat(200)}))
        .collect();
    let inputs = sandbox.inputs(&tasks);
    let run = |limit: Option<u64>| {
        let mut cmd = cli::baton();
        cmd.arg("run")
            .arg(&pipeline)
            .arg("--headless")
            .arg("--input")
            .arg(&inputs)
            .arg("--state-dir")
            .arg(sandbox.state());
        if let Some(bytes) = limit {
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                cmd.pre_exec(move || {
                    libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
                    let lim = libc::rlimit {
                        rlim_cur: bytes,
                        rlim_max: libc::RLIM_INFINITY,
                    };
                    if libc::setrlimit(libc::RLIMIT_FSIZE, &lim) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
        }
        cli::output(&mut cmd)
    };

    // Room for the submissions and some of the work, not all of it.
    let full = run(Some(3 * 1024 * 1024));
    assert_ne!(
        full.code(),
        0,
        "the run cannot finish on a full disk\n{full}"
    );
    assert!(
        full.stderr.contains("baton.db") && full.stderr.contains("could not be written"),
        "the error names the database\n{full}"
    );
    assert!(
        full.stderr.contains("space"),
        "the error says what to check\n{full}"
    );
    assert!(!full.stderr.contains("panicked"), "{full}");
    // What was committed reads back whole.
    let before = sandbox.states();
    assert!(!before.is_empty(), "the submissions were committed\n{full}");
    let done_before: Vec<String> = before
        .iter()
        .filter(|(_, s)| s.as_str() == "completed")
        .map(|(id, _)| id.clone())
        .collect();
    assert!(
        done_before.len() < tasks.len(),
        "the limit must stop the run before its end"
    );
    let outputs_before: Vec<(String, Value)> = done_before
        .iter()
        .take(20)
        .map(|id| (id.clone(), sandbox.show(id)["phases"].clone()))
        .collect();

    // Room again: it goes on from the last commit and finishes.
    let again = run(None);
    again.expect(0);
    let after = sandbox.states();
    assert_eq!(after.len(), tasks.len(), "{again}");
    assert!(after.values().all(|s| s == "completed"), "{again}");
    for (id, phases) in outputs_before {
        let now = sandbox.show(&id)["phases"].clone();
        assert_eq!(
            now, phases,
            "{id} completed before the failure and ran again"
        );
    }
}

/// A descendant that calls `setsid` leaves the agent's process group and
/// session, out of reach of a group kill; it is gone all the same once its
/// attempt is over, whether the agent replied and exited or hung and was
/// timed out.
#[test]
fn a_descendant_that_calls_setsid_does_not_outlive_its_attempt() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(
        r#"
[[phases]]
id = "one"
agent = "a"
timeout = "3s"
retry = { max_attempts = 1 }
"#,
    );
    let exits = sandbox.path("exits.pid");
    let hangs = sandbox.path("hangs.pid");
    sandbox.inputs(&[
        json!({"id": "exits", "do": {"one": "escape"}, "pidfile": exits}),
        json!({"id": "hangs", "do": {"one": "escape_hang"}, "pidfile": hangs}),
    ]);
    let out = sandbox.run();
    out.expect(1);
    let states = sandbox.states();
    assert_eq!(states["exits"], "completed", "{out}");
    assert_eq!(states["hangs"], "failed", "{out}");
    let hung = sandbox.show("hangs");
    assert_eq!(
        hung["phases"][0]["attempts"][0]["outcome"]["class"], "timeout",
        "{hung}"
    );
    for (what, pidfile) in [("replied", &exits), ("timed out", &hangs)] {
        assert!(
            pidfile.exists(),
            "the agent that {what} started no descendant"
        );
        let pid = read_pid(pidfile);
        // Killed before the attempt's end was recorded: no waiting here.
        assert!(
            !is_alive(pid),
            "the setsid descendant (pid {pid}) of the agent that {what} outlived its attempt"
        );
    }
}

/// About 30 kill -9s of a real engine over a run whose tasks ask for
/// reviews, approved while the engine runs (over its socket) and between
/// kills (in the folder): no approval that was acknowledged is lost, no
/// completed phase runs again or changes, and the run ends with every task
/// completed by outputs its agents really produced.
#[test]
fn soak_of_30_kill_9s_over_a_run_with_reviews_and_decisions() {
    let started = std::time::Instant::now();
    let sandbox = Sandbox::new();
    sandbox.pipeline(FAN);
    let tasks: Vec<Value> = (0..16)
        .map(|i| {
            let sleeps: serde_json::Map<String, Value> = FAN_PHASES
                .iter()
                .enumerate()
                .map(|(j, p)| (p.to_string(), json!((i * 31 + j * 17) % 60 + 5)))
                .collect();
            let mut t = json!({"id": format!("s{i:02}"), "sleep_ms": sleeps});
            if i % 4 == 1 {
                t["do"] = json!({"draft": "review"});
            }
            t
        })
        .collect();
    let reviewed: BTreeSet<String> = tasks
        .iter()
        .filter(|t| t.get("do").is_some())
        .map(|t| str_at(t, "id"))
        .collect();
    sandbox.inputs(&tasks);
    let side_runs = || sandbox.side_log_lines().len();
    let spawn = || {
        let child = cli::baton()
            .arg("run")
            .arg(sandbox.path("pipeline.toml"))
            .args(["--headless", "--wait", "--input"])
            .arg(sandbox.path("tasks.jsonl"))
            .arg("--state-dir")
            .arg(sandbox.state())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start baton");
        cli::Live::from_child(child)
    };

    let mut ledger = Ledger::default();
    let mut live_approvals = 0;
    let mut done = false;
    for round in 0..60 {
        if ledger.kills >= 30 {
            break;
        }
        let target = side_runs() + 1 + round % 3;
        let mut live = spawn();
        // Let it work, approving what waits for a review as it goes: the
        // engine answers only once the approval is committed.
        loop {
            if live.has_exited() || side_runs() >= target {
                break;
            }
            for (id, state) in remote::states(&sandbox.state()) {
                if state == "awaiting_review" && !ledger.approved.contains(&id) {
                    let out = sandbox.cli(&["approve", &id]);
                    if out.status.code() == Some(0) {
                        ledger.approved.insert(id);
                        live_approvals += 1;
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis((round as u64 * 7) % 25));
        let out = live.kill9();
        if out.status.signal() == Some(libc::SIGKILL) {
            ledger.kills += 1;
        }
        ledger.check_stop(&sandbox, &out);
        if out.status.code() == Some(0) {
            done = true;
            break;
        }
    }
    // The rest without kills; a review the last run stopped for is
    // approved in the folder between runs.
    for _ in 0..6 {
        if done {
            break;
        }
        let out = sandbox.run();
        ledger.check_stop(&sandbox, &out);
        match out.code() {
            0 => done = true,
            3 => {}
            _ => panic!("the final run failed\n{out}"),
        }
    }
    assert!(done, "the run did not finish");
    eprintln!(
        "soak: {} kills, {} agent runs, {live_approvals} approvals to a live engine, {} approvals in all, {:.1}s",
        ledger.kills,
        side_runs(),
        ledger.approved.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(ledger.kills >= 25, "only {} kills landed", ledger.kills);
    let states = sandbox.states();
    assert_eq!(states.len(), 16, "{states:?}");
    assert!(states.values().all(|s| s == "completed"), "{states:?}");
    assert_eq!(ledger.approved, reviewed, "every review was approved once");
    let log = sandbox.side_log_lines();
    let runs = Ledger::runs(&sandbox);
    for id in states.keys() {
        let task = sandbox.show(id);
        for phase in task["phases"].as_array().unwrap() {
            let pid = str_at(phase, "id");
            let output = &phase["output"];
            let nonce = str_at(output, "nonce");
            let attempt = output["attempt"].as_u64().unwrap().to_string();
            assert!(
                log.iter()
                    .any(|l| l[0] == *id && l[1] == pid && l[2] == attempt && l[3] == nonce),
                "{id}/{pid}: output not from any logged run"
            );
            let n = runs.get(&(id.clone(), pid.clone())).copied().unwrap_or(0);
            assert!(
                n <= 1 + ledger.kills,
                "{id}/{pid} ran {n} times with {} kills",
                ledger.kills
            );
        }
        if reviewed.contains(id) {
            let decisions = task["decisions"].as_array().unwrap();
            assert_eq!(decisions.len(), 1, "{id}: {task}");
            assert_eq!(decisions[0]["action"]["action"], "approve");
        }
    }
}
