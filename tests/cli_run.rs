//! `baton run --headless` through the binary: exit statuses, the lines it
//! prints, inputs from a folder, resuming a state folder, and what `list`
//! and `show` report afterwards.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;

use cli::{Sandbox, TWO_PHASES, str_at, wait_for};
use serde_json::{Value, json};

fn states(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn all_tasks_complete_exits_0_with_one_line_per_task() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[
        json!({"id": "t1"}),
        json!({"id": "t2"}),
        json!({"id": "t3"}),
    ]);
    let out = sandbox.run();
    out.expect(0);
    let mut lines = out.rest_lines();
    lines.sort();
    let want: Vec<(String, String)> = ["t1", "t2", "t3"]
        .iter()
        .map(|id| (id.to_string(), "completed".to_string()))
        .collect();
    assert_eq!(lines, want, "{out}");
    assert_eq!(
        out.stdout.lines().count(),
        3,
        "only task lines on stdout\n{out}"
    );
    assert!(out.stderr.contains("3 new task(s), 0 already in"), "{out}");
}

#[test]
fn list_and_show_json_agree_with_what_ran() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[
        json!({"id": "t1", "note": "first"}),
        json!({"id": "t2", "do": {"one": ["fail", "ok"]}}),
    ]);
    sandbox.run().expect(0);

    let rows = sandbox.list();
    let ids: Vec<String> = rows.iter().map(|r| str_at(r, "id")).collect();
    assert_eq!(ids, ["t1", "t2"], "submission order");
    for r in &rows {
        assert_eq!(str_at(r, "state"), "completed", "{r}");
        assert_eq!(r["phases_done"], 2, "{r}");
        assert_eq!(r["phases_total"], 2, "{r}");
    }
    assert_eq!(rows[0]["attempts"], 2, "{}", rows[0]);
    assert_eq!(rows[1]["attempts"], 3, "one retry\n{}", rows[1]);

    let t1 = sandbox.show("t1");
    assert_eq!(t1["id"], "t1");
    assert_eq!(t1["state"], "completed");
    assert_eq!(t1["input"], json!({"id": "t1", "note": "first"}));
    let one = &t1["phases"][0];
    let two = &t1["phases"][1];
    assert_eq!(one["id"], "one");
    assert_eq!(one["state"], "completed");
    assert_eq!(one["output"]["task"], "t1");
    assert_eq!(one["output"]["phase"], "one");
    assert_eq!(
        two["output"]["seen"],
        json!(["one"]),
        "two saw one's output"
    );

    // The outputs shown are those of the runs the side log recorded.
    for task in ["t1", "t2"] {
        let shown = sandbox.show(task);
        for phase in shown["phases"].as_array().unwrap() {
            let nonce = str_at(&phase["output"], "nonce");
            let logged = sandbox
                .side_log_lines()
                .iter()
                .filter(|l| l[0] == task && l[1] == str_at(phase, "id"))
                .map(|l| l[3].clone())
                .collect::<Vec<_>>();
            assert_eq!(logged, [nonce], "{task}");
        }
    }

    let t2 = sandbox.show("t2");
    let attempts = t2["phases"][0]["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[0]["outcome"]["result"], "failed");
    assert_eq!(attempts[0]["outcome"]["class"], "retryable");
    assert_eq!(attempts[1]["outcome"]["result"], "succeeded");
}

#[test]
fn a_failed_task_exits_1_and_its_later_phases_do_not_run() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[
        json!({"id": "ok"}),
        json!({"id": "bad", "do": {"one": "fatal"}}),
    ]);
    let out = sandbox.run();
    out.expect(1);
    let lines: BTreeMap<String, String> = out.rest_lines().into_iter().collect();
    assert_eq!(
        lines,
        states(&[("bad", "failed"), ("ok", "completed")]),
        "{out}"
    );
    let bad = sandbox.show("bad");
    assert_eq!(bad["phases"][0]["state"], "failed");
    assert!(
        str_at(&bad["phases"][0], "error").contains("fatal trouble"),
        "{bad}"
    );
    assert_eq!(bad["phases"][1]["state"], "pending");
    assert_eq!(sandbox.runs_of("bad", "two"), 0);
}

#[test]
fn a_phase_that_fails_the_task_stops_the_phases_running_beside_it() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(
        r#"
[defaults]
timeout = "10m"
retry = { max_attempts = 1 }

[[phases]]
id = "one"
agent = "a"

[[phases]]
id = "fails"
agent = "a"
after = ["one"]

[[phases]]
id = "hangs"
agent = "a"
after = ["one"]
"#,
    );
    sandbox.inputs(&[json!({
        "id": "t",
        "do": {"fails": ["fatal", "ok"], "hangs": ["hang", "ok"]},
    })]);
    // The run ends with the task, not ten minutes later with the hanging
    // phase, and its agent does not outlive it.
    let out = sandbox.run();
    out.expect(1);
    assert_eq!(out.rest_lines(), [("t".into(), "failed".into())], "{out}");
    assert!(!out.stderr.contains("refused its own event"), "{out}");
    sandbox.wait_for_no_stray_agents();
    // The stopped phase is not shown as running: its attempt ended with the
    // task, as a cancelled one does.
    let shown = sandbox.show("t");
    let hangs = shown["phases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["id"] == "hangs")
        .unwrap();
    assert_eq!(hangs["state"], "pending", "{shown}");
    assert_eq!(
        hangs["attempts"][0]["outcome"]["result"], "cancelled",
        "{shown}"
    );
    assert!(!hangs["attempts"][0]["finished_at"].is_null(), "{shown}");
    // Retried, the task runs the stopped phase again and completes.
    sandbox.cli(&["retry", "t"]).expect(0);
    sandbox.resume().expect(0);
    let shown = sandbox.show("t");
    assert_eq!(shown["state"], "completed", "{shown}");
    assert_eq!(sandbox.runs_of("t", "hangs"), 1);
}

#[test]
fn a_task_awaiting_review_exits_3() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[
        json!({"id": "ok"}),
        json!({"id": "look", "do": {"one": "review"}}),
        json!({"id": "bad", "do": {"one": "fatal"}}),
    ]);
    let out = sandbox.run();
    out.expect(3);
    let lines: BTreeMap<String, String> = out.rest_lines().into_iter().collect();
    assert_eq!(
        lines,
        states(&[
            ("bad", "failed"),
            ("look", "awaiting_review"),
            ("ok", "completed")
        ]),
        "{out}"
    );
    assert!(out.stderr.contains("1 task(s) wait for a person"), "{out}");
    cli::check_suggested_commands(&out.stderr);
    assert!(
        out.stdout
            .contains("review at one: agent asks: please check"),
        "{out}"
    );
}

#[test]
fn a_blocked_task_exits_3() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[json!({"id": "stuck", "do": {"two": "block"}})]);
    let out = sandbox.run();
    out.expect(3);
    assert_eq!(
        out.rest_lines(),
        [("stuck".to_string(), "blocked".to_string())],
        "{out}"
    );
    assert!(
        out.stdout.contains("blocked at two: needs a credential"),
        "{out}"
    );
    assert_eq!(sandbox.states(), states(&[("stuck", "blocked")]));
}

#[test]
fn a_bad_pipeline_exits_2_and_makes_no_state_folder() {
    let sandbox = Sandbox::new();
    sandbox.pipeline("[[phases]]\nid = \"one\"\nagent = \"nobody\"\n");
    sandbox.inputs(&[json!({"id": "t1"})]);
    let out = sandbox.run();
    out.expect(2);
    assert!(out.stderr.contains("pipeline.toml:"), "{out}");
    assert!(out.stderr.contains("nobody"), "{out}");
    assert!(!sandbox.state().exists());
}

#[test]
fn inputs_can_be_a_folder_of_json_files() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.write("in/alpha.json", r#"{"text": "a"}"#);
    sandbox.write("in/beta.json", r#"{"id": "named-b", "text": "b"}"#);
    sandbox.write("in/readme.txt", "not a task");
    let out = cli::output(
        cli::baton()
            .arg("run")
            .arg(sandbox.path("pipeline.toml"))
            .arg("--headless")
            .arg("--input")
            .arg(sandbox.path("in"))
            .arg("--state-dir")
            .arg(sandbox.state()),
    );
    out.expect(0);
    assert_eq!(
        sandbox.states(),
        states(&[("alpha", "completed"), ("named-b", "completed")])
    );
    assert_eq!(sandbox.show("alpha")["input"], json!({"text": "a"}));
}

#[test]
fn the_same_input_again_adds_no_tasks_and_runs_nothing() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[json!({"id": "t1"}), json!({"id": "t2"})]);
    sandbox.run().expect(0);
    let log_before = sandbox.side_log_lines();
    let shown_before = sandbox.show("t1");

    let out = sandbox.run();
    out.expect(0);
    assert!(
        out.stderr.contains("2 task(s) already in")
            && out.stderr.contains("were left as they are: t1, t2"),
        "{out}"
    );
    assert!(out.stderr.contains("0 new task(s), 2 already in"), "{out}");
    assert_eq!(sandbox.list().len(), 2);
    assert_eq!(sandbox.side_log_lines(), log_before, "nothing ran again");
    assert_eq!(sandbox.show("t1"), shown_before);

    // Adding one more task to the same file adds only that one.
    sandbox.inputs(&[
        json!({"id": "t1"}),
        json!({"id": "t2"}),
        json!({"id": "t3"}),
    ]);
    let out = sandbox.run();
    out.expect(0);
    assert!(out.stderr.contains("1 new task(s), 2 already in"), "{out}");
    assert_eq!(
        out.rest_lines(),
        [("t3".to_string(), "completed".to_string())]
    );
    assert_eq!(sandbox.list().len(), 3);
}

#[test]
fn running_again_without_input_picks_up_unfinished_tasks() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    let pidfile = sandbox.path("hang.pid");
    sandbox.inputs(&[
        json!({"id": "quick"}),
        // The first attempt of `two` hangs; the one after the restart replies.
        json!({"id": "slow", "do": {"two": ["hang", "ok"]}, "pidfile": pidfile}),
    ]);
    let live = sandbox.spawn_run(true);
    wait_for("quick to finish and the hanging attempt to start", || {
        let quick_done = live.printed("quick", "completed");
        (quick_done && pidfile.exists()).then_some(())
    });
    live.signal(libc::SIGTERM);
    let out = live.wait();
    out.expect(143);
    assert_eq!(
        out.rest_lines(),
        [("quick".to_string(), "completed".to_string())],
        "{out}"
    );

    let out = sandbox.resume();
    out.expect(0);
    assert!(out.stderr.contains("0 new task(s), 2 already in"), "{out}");
    assert_eq!(
        out.rest_lines(),
        [("slow".to_string(), "completed".to_string())],
        "{out}"
    );
    assert_eq!(
        sandbox.states(),
        states(&[("quick", "completed"), ("slow", "completed")])
    );
    assert_eq!(sandbox.runs_of("quick", "one"), 1);
    assert_eq!(sandbox.runs_of("slow", "one"), 1);
    assert_eq!(sandbox.runs_of("slow", "two"), 1);
    let slow = sandbox.show("slow");
    let attempts = slow["phases"][1]["attempts"].as_array().unwrap();
    assert_eq!(attempts[0]["outcome"]["result"], "interrupted", "{slow}");
    assert_eq!(attempts[1]["outcome"]["result"], "succeeded", "{slow}");
}

#[test]
fn a_state_folder_of_another_pipeline_is_refused() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[json!({"id": "t1"})]);
    sandbox.run().expect(0);
    let before = sandbox.show("t1");

    sandbox.pipeline("[[phases]]\nid = \"other\"\nagent = \"a\"\n");
    let out = sandbox.run();
    out.expect(2);
    assert!(
        out.stderr.contains("holds tasks of another pipeline"),
        "{out}"
    );
    assert!(out.stderr.contains("has phases [one, two]"), "{out}");
    assert!(out.stderr.contains("has [other]"), "{out}");
    assert!(out.stderr.contains("help: "), "{out}");
    cli::check_suggested_commands(&out.stderr);
    assert!(out.stdout.is_empty(), "{out}");
    // The folder still belongs to the first pipeline.
    assert_eq!(sandbox.show("t1"), before);
    assert_eq!(sandbox.list()[0]["phases_total"], 2);
}

#[test]
fn list_filters_by_state_and_refuses_unknown_states() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[
        json!({"id": "ok1"}),
        json!({"id": "bad", "do": {"one": "fatal"}}),
        json!({"id": "ok2"}),
    ]);
    sandbox.run().expect(1);

    let out = sandbox.cli(&["list", "--json", "--state", "completed"]);
    out.expect(0);
    let rows: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let ids: Vec<String> = rows.iter().map(|r| str_at(r, "id")).collect();
    assert_eq!(ids, ["ok1", "ok2"]);

    let out = sandbox.cli(&["list", "--state", "failed"]);
    out.expect(0);
    assert!(out.stdout.contains("bad"), "{out}");
    assert!(!out.stdout.contains("ok1"), "{out}");

    let out = sandbox.cli(&["list", "--json", "--state", "blocked"]);
    out.expect(0);
    assert_eq!(
        serde_json::from_str::<Value>(&out.stdout).unwrap(),
        json!([])
    );

    let out = sandbox.cli(&["list", "--state", "finished"]);
    out.expect(2);
    assert!(out.stderr.contains("unknown state \"finished\""), "{out}");
    assert!(
        out.stderr.contains(
            "pending, running, retrying, awaiting_review, blocked, completed, failed, cancelled"
        ),
        "{out}"
    );
}

#[test]
fn list_and_show_explain_a_missing_state_folder_or_task() {
    let sandbox = Sandbox::new();
    let out = sandbox.cli(&["list"]);
    out.expect(2);
    assert!(out.stderr.contains("no state folder at"), "{out}");
    cli::check_suggested_commands(&out.stderr);

    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(&[json!({"id": "t1"})]);
    sandbox.run().expect(0);
    let out = sandbox.cli(&["show", "t9"]);
    assert_ne!(out.code(), 0, "{out}");
    assert!(out.stderr.contains("no task \"t9\""), "{out}");
    assert!(out.stderr.contains("t1"), "names the tasks there\n{out}");
}

/// `baton run --state-dir DIR` without the pipeline path goes on with the
/// pipeline the folder keeps, and says which.
#[test]
fn run_without_a_pipeline_goes_on_with_the_folders_copy() {
    let sandbox = cli::Sandbox::new();
    sandbox.pipeline("[[phases]]\nid = \"one\"\nagent = \"a\"\n");
    sandbox.inputs(&[serde_json::json!({"id": "t", "do": {"one": "review"}})]);
    sandbox.run().expect(3);
    sandbox.cli(&["approve", "t"]).expect(0);
    let out = cli::output(
        cli::baton()
            .args(["run", "--headless", "--state-dir"])
            .arg(sandbox.state()),
    );
    out.expect(0);
    assert!(
        out.stderr.contains("going on with the pipeline kept in")
            && out.stderr.contains("pipeline.toml")
            && out.stderr.contains("first run from"),
        "{out}"
    );
    assert_eq!(sandbox.states()["t"], "completed");
    // A folder with no run says what to give.
    let empty = tempfile::tempdir().unwrap();
    let out = cli::output(
        cli::baton()
            .args(["run", "--headless", "--state-dir"])
            .arg(empty.path().join("none")),
    );
    out.expect(2);
    assert!(out.stderr.contains("give the pipeline file"), "{out}");
}
