//! The markdown run log and the read-side commands through the real binary:
//! `state/RUN_LOG.md` over a run with retries, a review, a blocker and
//! decisions, masked and appended to by a restart; `baton summary`, `baton
//! review` and `baton clean-state`, text and `--json`.

#[path = "support/cli.rs"]
mod cli;

use cli::{Sandbox, TWO_PHASES, baton, check_suggested_commands, output, wait_for};
use serde_json::{Value, json};

/// Agent `a` on two phases, with the pipeline's own mask for account numbers.
fn sandbox() -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.pipeline(&format!("mask = ['ACCT-\\d+']\n{TWO_PHASES}"));
    sandbox
}

fn run_log(sandbox: &Sandbox) -> String {
    std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).expect("RUN_LOG.md is written")
}

#[track_caller]
fn has(log: &str, want: &str) {
    assert!(log.contains(want), "the run log lacks {want:?}:\n{log}");
}

fn json_of(sandbox: &Sandbox, args: &[&str]) -> Value {
    let out = sandbox.cli(args);
    out.expect(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"))
}

#[test]
fn the_run_log_tells_the_run_masked_and_a_restart_appends() {
    let sandbox = sandbox();
    sandbox.inputs(&[
        json!({"id": "t1", "do": {"one": ["fail", "ok"], "two": "review"},
               "contact": "jane.doe@example.com", "phone": "+1 555 123 4567",
               "account": "ACCT-99812", "visit": "2024-01-15"}),
        json!({"id": "t2", "do": {"one": "block"}}),
    ]);
    sandbox.run().expect(3);
    let first = run_log(&sandbox);
    assert!(
        first.starts_with("# baton run log\n\n## Run started · "),
        "{first}"
    );
    has(&first, "- pipeline: cli-test (`");
    // The user the system says, not what `$USER` says (`tester`).
    let me = cli::os_user();
    has(&first, &format!("- started by: {me}\n"));
    // Attempts, the retry and its reason.
    has(&first, "**t1** `one` #1 started · agent a");
    has(
        &first,
        "**t1** ✗ `one` #1 failed (retryable): “transient trouble” · agent a · no usage reported · no cost · ",
    );
    has(&first, "**t1** ↻ `one` retry #2 in ");
    has(&first, "· after a retryable error: “transient trouble”");
    has(&first, "**t1** ✓ `one` #2 succeeded · agent a");
    // The review and the blocker.
    has(
        &first,
        "**t1** ⏸ review requested at `two`: agent asks: “please check”",
    );
    has(&first, "**t2** ⛔ blocked at `one`: “needs a credential”");
    // Personal data from the input is masked; a date is not.
    has(&first, "\"contact\":\"[email]\"");
    has(&first, "\"phone\":\"[phone]\"");
    has(&first, "\"account\":\"[masked]\"");
    has(&first, "\"visit\":\"2024-01-15\"");
    for secret in ["jane.doe@example.com", "555 123 4567", "ACCT-99812"] {
        assert!(!first.contains(secret), "{secret} is in the log:\n{first}");
    }
    // The summary closes the section.
    has(&first, "### Summary · ");
    has(
        &first,
        "| awaiting_review | 1 |\n| blocked | 1 |\n| **all** | **2** |",
    );
    has(
        &first,
        "- waiting for a person: 2 (1 awaiting review, 1 blocked)",
    );
    has(&first, "- cost: $0.0000\n");

    // Decisions from the command line, over SSH, are logged with who and why.
    let out = output(
        baton()
            .env("SSH_CLIENT", "10.9.8.7 50000 22")
            .args(["reject", "t1", "--feedback", "add the code; ask jo@x.org"])
            .arg("--state-dir")
            .arg(sandbox.state()),
    );
    out.expect(0);
    sandbox
        .cli(&["resolve", "t2", "--skip", "--note", "credential not needed"])
        .expect(0);
    let decided = run_log(&sandbox);
    assert!(decided.starts_with(&first), "a decision appends");
    let added = &decided[first.len()..];
    has(added, "\n## `baton reject t1` · ");
    has(
        added,
        &format!("- by: {me} (ssh from 10.9.8.7, as its client claims)\n"),
    );
    has(
        added,
        &format!(
            "**t1** ↩ **sent back** at `two` by {me} (ssh from 10.9.8.7, as its client claims) at "
        ),
    );
    has(added, " waiting · feedback “add the code; ask [email]”");
    has(added, "\n## `baton resolve t2` · ");
    has(
        added,
        &format!("**t2** ✔ **blocker resolved: skip** at `one` by {me} at "),
    );
    has(added, " · note “credential not needed”");

    // The restart carries on and appends.
    sandbox.resume().expect(0);
    let last = run_log(&sandbox);
    assert!(
        last.starts_with(&decided),
        "the restart must append, not rewrite"
    );
    let resumed = &last[decided.len()..];
    assert!(resumed.starts_with("\n## Run resumed · "), "{resumed}");
    has(resumed, &format!("- resumed by: {me}\n"));
    has(resumed, "- tasks in the folder: 2: 2 running\n");
    has(
        resumed,
        "**t1** `two` #2 started · agent a · with feedback “add the code; ask [email]”",
    );
    has(resumed, "**t1** ✓ **task completed** · in ");
    has(resumed, "**t2** ✓ **task completed** · in ");
    has(resumed, "| completed | 2 |\n| **all** | **2** |");
    assert_eq!(last.matches("# baton run log\n").count(), 1);
    assert_eq!(last.matches("## Run started").count(), 1);
    assert_eq!(last.matches("## Run resumed").count(), 1);
    assert!(!last.contains("jo@x.org"), "{last}");
}

#[test]
fn summary_and_review_read_a_stopped_folder() {
    let sandbox = sandbox();
    sandbox.inputs(&[
        json!({"id": "ok", "do": {}}),
        json!({"id": "held", "do": {"two": "review"}}),
        json!({"id": "stuck", "do": {"one": "block"}}),
        json!({"id": "bad", "do": {"one": "fatal"}}),
    ]);
    sandbox.run().expect(3);

    let s = json_of(&sandbox, &["summary", "--json"]);
    assert_eq!(s["pipeline"], "cli-test");
    assert_eq!(s["tasks"], 4);
    assert_eq!(
        s["states"],
        json!({"pending": 0, "running": 0, "retrying": 0, "awaiting_review": 1,
               "blocked": 1, "completed": 1, "failed": 1, "cancelled": 0})
    );
    assert_eq!(s["waiting_for_people"], 2);
    assert_eq!(s["open_holds"], 2);
    assert_eq!(s["attempts"], 6);
    assert_eq!(s["tokens"], 0);
    assert_eq!(s["cost_usd"], 0.0);
    assert_eq!(s["cost_unknown"], 0);
    assert!(s["run_time_ms"].as_u64().is_some());
    assert!(
        s["first_submitted_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );

    let out = sandbox.cli(&["summary"]);
    out.expect(0);
    assert!(out.stdout.starts_with("pipeline   cli-test  ("), "{out}");
    assert!(out.stdout.contains("  awaiting_review  1\n"), "{out}");
    assert!(
        out.stdout
            .contains("waiting    2 for a person (1 awaiting review, 1 blocked)"),
        "{out}"
    );
    assert!(out.stdout.contains("cost       $0.0000\n"), "{out}");

    let q = json_of(&sandbox, &["review", "--json"]);
    let q = q.as_array().expect("an array");
    assert_eq!(q.len(), 2, "{q:?}");
    let since: Vec<&str> = q.iter().map(|w| w["since"].as_str().unwrap()).collect();
    let mut sorted = since.clone();
    sorted.sort();
    assert_eq!(since, sorted, "oldest first");
    let by_task = |id: &str| q.iter().find(|w| w["task"] == id).unwrap().clone();
    let held = by_task("held");
    assert_eq!(held["kind"], "review");
    assert_eq!(held["phase"], "two");
    assert_eq!(held["reason"], "agent asks: please check");
    assert!(held["waited_ms"].as_u64().is_some());
    let stuck = by_task("stuck");
    assert_eq!(stuck["kind"], "blocked");
    assert_eq!(stuck["phase"], "one");
    assert_eq!(stuck["reason"], "needs a credential");

    let out = sandbox.cli(&["review"]);
    out.expect(0);
    assert!(
        out.stdout
            .starts_with("TASK   WAITING   PHASE   WAITED  WHY\n"),
        "{out}"
    );
    assert!(
        out.stdout.contains("2 waiting: 1 review(s), 1 blocker(s)"),
        "{out}"
    );
    check_suggested_commands(&out.stdout);

    // Once settled, nothing waits.
    sandbox.cli(&["approve", "held"]).expect(0);
    sandbox.cli(&["resolve", "stuck", "--fail"]).expect(0);
    assert_eq!(json_of(&sandbox, &["review", "--json"]), json!([]));
    let out = sandbox.cli(&["review"]);
    assert_eq!(out.stdout, "nothing waits for a person\n", "{out}");

    // No folder: a clear error, status 2.
    let out = output(
        baton()
            .args(["summary", "--state-dir"])
            .arg(sandbox.path("nowhere")),
    );
    out.expect(2);
    assert!(out.stderr.contains("no state folder at"), "{out}");
}

#[test]
fn clean_state_is_refused_while_an_engine_holds_the_folder() {
    let sandbox = sandbox();
    sandbox.inputs(&[json!({"id": "slow", "do": {"one": "hang"}})]);
    let live = sandbox.spawn_run(true);
    wait_for("the run to start the attempt", || {
        std::fs::read_to_string(sandbox.state().join("RUN_LOG.md"))
            .ok()
            .filter(|log| log.contains("`one` #1 started"))
    });
    let pid = live.pid().to_string();
    for args in [&["clean-state", "--force"][..], &["clean-state"][..]] {
        let out = sandbox.cli(args);
        out.expect(2);
        assert!(
            out.stderr
                .contains(&format!("is in use by baton (pid {pid}); nothing removed")),
            "{out}"
        );
    }
    assert!(
        sandbox.state().join("baton.db").is_file(),
        "nothing was removed"
    );

    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    sandbox.wait_for_no_stray_agents();

    // Without --force: what would go, and status 1.
    let out = sandbox.cli(&["clean-state"]);
    out.expect(1);
    assert!(out.stdout.contains("would remove from "), "{out}");
    for entry in ["  RUN_LOG.md  (", "  baton.db  (", "  pipeline.toml  ("] {
        assert!(out.stdout.contains(entry), "{entry} missing\n{out}");
    }
    check_suggested_commands(&out.stdout);
    assert!(sandbox.state().join("RUN_LOG.md").exists());

    let out = sandbox.cli(&["clean-state", "--force"]);
    out.expect(0);
    assert!(out.stdout.contains("the folder is empty"), "{out}");
    assert_eq!(std::fs::read_dir(sandbox.state()).unwrap().count(), 0);

    // Again: nothing to do.
    let out = sandbox.cli(&["clean-state", "--force"]);
    out.expect(0);
    assert!(out.stdout.contains("is empty: nothing to remove"), "{out}");
    let out = output(
        baton()
            .args(["clean-state", "--force", "--state-dir"])
            .arg(sandbox.path("absent")),
    );
    out.expect(0);
}

#[test]
fn clean_state_leaves_other_folders_alone() {
    let sandbox = Sandbox::new();
    let other = sandbox.path("papers");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::write(other.join("thesis.txt"), "years of work").unwrap();
    let out = output(
        baton()
            .args(["clean-state", "--force", "--state-dir"])
            .arg(&other),
    );
    out.expect(2);
    assert!(
        out.stderr
            .contains("does not look like a baton state folder"),
        "{out}"
    );
    assert!(other.join("thesis.txt").exists());
}

#[test]
fn the_demo_keeps_a_run_log_too() {
    let sandbox = Sandbox::new();
    let dir = sandbox.path("demo");
    let out = output(
        baton()
            .args(["demo", "--headless", "--tasks", "3", "--dir"])
            .arg(&dir),
    );
    assert!(matches!(out.code(), 0 | 1 | 3), "{out}");
    let log = std::fs::read_to_string(dir.join("state/RUN_LOG.md")).expect("the demo's run log");
    has(&log, "## Run started · ");
    has(&log, "- pipeline: demo-dev-squad (`");
    has(&log, "**DEV-101** submitted · input `{");
    has(
        &log,
        "**DEV-101** `plan` #1 started · agent planner · model claude-sonnet-4-5",
    );
    has(&log, "| **all** | **3** |");
}

#[test]
fn a_refused_decision_leaves_the_log_as_it_was() {
    let sandbox = sandbox();
    sandbox.inputs(&[json!({"id": "t1", "do": {}})]);
    sandbox.run().expect(0);
    let before = run_log(&sandbox);
    let out = sandbox.cli(&["approve", "t1"]);
    out.expect(1);
    assert_eq!(run_log(&sandbox), before);
}
