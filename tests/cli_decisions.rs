//! Operator decisions through the binary, on a state folder no run holds:
//! each is recorded, and the next `baton run` carries on from it.

#[path = "support/cli.rs"]
mod cli;

use cli::{Sandbox, TWO_PHASES, str_at};
use serde_json::{Value, json};

/// A sandbox whose run stopped with `tasks` as given; `expect` is the
/// first run's exit status.
fn stopped(tasks: &[Value], expect: i32) -> Sandbox {
    let sandbox = Sandbox::new();
    sandbox.pipeline(TWO_PHASES);
    sandbox.inputs(tasks);
    sandbox.run().expect(expect);
    sandbox
}

fn state_of(sandbox: &Sandbox, task: &str) -> String {
    str_at(&sandbox.show(task), "state")
}

#[test]
fn approve_lets_the_task_go_on_when_run_again() {
    let sandbox = stopped(&[json!({"id": "t", "do": {"one": "review"}})], 3);
    assert_eq!(state_of(&sandbox, "t"), "awaiting_review");

    let out = sandbox.cli(&["approve", "t", "--note", "looks right"]);
    out.expect(0);
    assert!(out.stdout.contains("approve: recorded for task t"), "{out}");

    let out = sandbox.resume();
    out.expect(0);
    assert_eq!(
        out.rest_lines(),
        [("t".to_string(), "completed".to_string())]
    );
    let t = sandbox.show("t");
    assert_eq!(t["state"], "completed");
    assert_eq!(t["phases"][0]["approved"], true);
    assert_eq!(t["phases"][1]["output"]["seen"], json!(["one"]));
    assert_eq!(
        sandbox.runs_of("t", "one"),
        1,
        "the approved phase did not run again"
    );
    assert_eq!(sandbox.runs_of("t", "two"), 1);
    let d = &t["decisions"][0];
    assert_eq!(d["action"], json!({"action": "approve"}));
    assert_eq!(d["phase"], "one");
    assert_eq!(d["note"], "looks right");
}

#[test]
fn reject_with_a_reason_fails_the_task() {
    let sandbox = stopped(&[json!({"id": "t", "do": {"one": "review"}})], 3);
    let out = sandbox.cli(&["reject", "t", "--reason", "wrong codes"]);
    out.expect(0);
    let t = sandbox.show("t");
    assert_eq!(t["state"], "failed");
    assert_eq!(t["finish_reason"], "rejected at one: wrong codes");
    assert_eq!(t["decisions"][0]["action"], json!({"action": "reject"}));
    assert_eq!(t["decisions"][0]["note"], "wrong codes");

    let out = sandbox.resume();
    out.expect(1);
    assert_eq!(state_of(&sandbox, "t"), "failed");
    assert_eq!(sandbox.runs_of("t", "two"), 0);

    // Nothing failed on its own: retry says how to name the phase.
    let out = sandbox.cli(&["retry", "t"]);
    out.expect(1);
    assert!(
        out.stderr
            .contains("name the phase to run again: --phase one"),
        "{out}"
    );
    sandbox.cli(&["retry", "t", "--phase", "one"]).expect(0);
}

#[test]
fn reject_with_feedback_runs_the_phase_again_with_the_feedback() {
    let sandbox = stopped(&[json!({"id": "t", "do": {"one": "review"}})], 3);
    let out = sandbox.cli(&["reject", "t", "--feedback", "cite the guideline"]);
    out.expect(0);
    assert!(
        out.stdout.contains("send back: recorded for task t"),
        "{out}"
    );

    // The agent asks for review only while it has no feedback.
    let out = sandbox.resume();
    out.expect(0);
    let t = sandbox.show("t");
    assert_eq!(t["state"], "completed");
    let one = &t["phases"][0];
    let attempts = one["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2, "{one}");
    assert!(attempts[0].get("feedback").is_none(), "{one}");
    assert_eq!(attempts[1]["feedback"], "cite the guideline");
    assert_eq!(one["output"]["feedback"], "cite the guideline");
    assert_eq!(one["output"]["attempt"], 2);
    assert_eq!(sandbox.runs_of("t", "one"), 2);
    assert_eq!(
        t["decisions"][0]["action"],
        json!({"action": "send_back", "feedback": "cite the guideline"})
    );
    // `show` says what the phase was sent back with.
    let text = sandbox.cli(&["show", "t"]);
    assert!(
        text.stdout.contains("send back with “cite the guideline”"),
        "{text}"
    );
}

#[test]
fn resolve_settles_blocked_tasks_by_retry_skip_or_fail() {
    let blocked_once = json!({"two": ["block", "ok"]});
    let sandbox = stopped(
        &[
            json!({"id": "r", "do": blocked_once}),
            json!({"id": "s", "do": blocked_once}),
            json!({"id": "f", "do": blocked_once}),
        ],
        3,
    );
    for id in ["r", "s", "f"] {
        assert_eq!(state_of(&sandbox, id), "blocked");
    }
    sandbox.cli(&["resolve", "r", "--retry"]).expect(0);
    sandbox
        .cli(&["resolve", "s", "--skip", "--note", "not needed"])
        .expect(0);
    sandbox.cli(&["resolve", "f", "--fail"]).expect(0);

    let out = sandbox.resume();
    out.expect(1);

    let r = sandbox.show("r");
    assert_eq!(r["state"], "completed");
    assert_eq!(r["phases"][1]["state"], "completed");
    assert_eq!(r["phases"][1]["output"]["attempt"], 2);

    let s = sandbox.show("s");
    assert_eq!(s["state"], "completed");
    assert_eq!(s["phases"][1]["state"], "skipped");
    assert_eq!(
        s["phases"][1]["skip_reason"],
        format!("skipped by {}", cli::os_user())
    );
    assert_eq!(sandbox.runs_of("s", "two"), 0);

    let f = sandbox.show("f");
    assert_eq!(f["state"], "failed");
    assert_eq!(f["phases"][1]["state"], "failed");
    assert_eq!(f["finish_reason"], "blocker at two resolved as failed");

    let actions: Vec<Value> = ["r", "s", "f"]
        .iter()
        .map(|id| sandbox.show(id)["decisions"][0]["action"].clone())
        .collect();
    assert_eq!(
        actions,
        [
            json!({"action": "resolve_retry"}),
            json!({"action": "resolve_skip"}),
            json!({"action": "resolve_fail"}),
        ]
    );
}

#[test]
fn resolve_needs_exactly_one_way() {
    let sandbox = stopped(&[json!({"id": "b", "do": {"one": "block"}})], 3);
    let out = sandbox.cli(&["resolve", "b"]);
    out.expect(2);
    let out = sandbox.cli(&["resolve", "b", "--retry", "--skip"]);
    out.expect(2);
    assert_eq!(state_of(&sandbox, "b"), "blocked");
    assert!(sandbox.show("b").get("decisions").is_none());
}

#[test]
fn retry_reopens_a_failed_task() {
    let sandbox = stopped(&[json!({"id": "t", "do": {"one": ["fatal", "ok"]}})], 1);
    assert_eq!(state_of(&sandbox, "t"), "failed");

    let out = sandbox.cli(&["retry", "t"]);
    out.expect(0);
    let out = sandbox.resume();
    out.expect(0);
    let t = sandbox.show("t");
    assert_eq!(t["state"], "completed");
    assert_eq!(t["phases"][0]["attempts"].as_array().unwrap().len(), 2);
    assert_eq!(t["decisions"][0]["action"], json!({"action": "retry"}));
    assert_eq!(t["decisions"][0]["phase"], "one");
}

#[test]
fn cancel_ends_a_task_for_good() {
    let sandbox = stopped(
        &[
            json!({"id": "c", "do": {"one": "review"}}),
            json!({"id": "ok"}),
        ],
        3,
    );
    sandbox
        .cli(&["cancel", "c", "--note", "duplicate ticket"])
        .expect(0);
    let c = sandbox.show("c");
    assert_eq!(c["state"], "cancelled");
    assert_eq!(
        c["finish_reason"],
        format!("cancelled by {}: duplicate ticket", cli::os_user())
    );

    let out = sandbox.resume();
    out.expect(0);
    assert_eq!(state_of(&sandbox, "c"), "cancelled");
    assert_eq!(sandbox.runs_of("c", "two"), 0);
}

#[test]
fn refused_decisions_exit_1_with_a_reason_and_change_nothing() {
    let sandbox = stopped(&[json!({"id": "done"})], 0);
    let before = sandbox.show("done");
    let cases: [(&[&str], &str); 6] = [
        (
            &["approve", "done"],
            "cannot approve: nothing is awaiting review (task is completed)",
        ),
        (
            &["reject", "done"],
            "cannot reject: nothing is awaiting review",
        ),
        (
            &["reject", "done", "--feedback", "more"],
            "cannot send back: nothing is awaiting review",
        ),
        (&["resolve", "done", "--skip"], "nothing is blocked"),
        (&["retry", "done"], "nothing to retry (task is completed)"),
        (&["approve", "ghost"], "no task ghost in this run"),
    ];
    for (args, reason) in cases {
        let out = sandbox.cli(args);
        out.expect(1);
        assert!(out.stderr.starts_with("refused: "), "{args:?}\n{out}");
        assert!(
            out.stderr.contains(reason),
            "{args:?}: want {reason:?}\n{out}"
        );
        assert!(out.stdout.is_empty(), "{args:?}\n{out}");
    }
    let out = sandbox.cli(&["cancel", "done"]);
    out.expect(1);
    assert!(out.stderr.starts_with("refused: "), "{out}");
    assert_eq!(sandbox.show("done"), before);
}

#[test]
fn a_decision_without_a_state_folder_exits_2() {
    let sandbox = Sandbox::new();
    let out = sandbox.cli(&["approve", "t"]);
    out.expect(2);
    assert!(out.stderr.contains("no state folder at"), "{out}");
    assert!(!sandbox.state().exists(), "a decision made a state folder");
}

#[test]
fn decisions_record_the_system_user_and_the_claimed_ssh_client_address() {
    let sandbox = stopped(
        &[
            json!({"id": "remote", "do": {"one": "review"}}),
            json!({"id": "local", "do": {"one": "review"}}),
        ],
        3,
    );
    let decide = |task: &str, env: &[(&str, &str)]| {
        let mut cmd = cli::baton();
        cmd.args(["approve", task, "--state-dir"])
            .arg(sandbox.state());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cli::output(&mut cmd).expect(0);
    };
    decide(
        "remote",
        &[("USER", "alice"), ("SSH_CLIENT", "203.0.113.7 51234 22")],
    );
    decide("local", &[("USER", "bob")]);

    // The user is the one the system says, whatever `$USER` claims; the
    // SSH address is kept as the client's claim.
    let (me, uid) = (cli::os_user(), cli::os_uid());
    assert_eq!(
        sandbox.show("remote")["decisions"][0]["by"],
        json!({"user": me, "uid": uid, "ssh_client": "203.0.113.7"})
    );
    assert_eq!(
        sandbox.show("local")["decisions"][0]["by"],
        json!({"user": me, "uid": uid})
    );

    // They stay recorded once the tasks go on.
    sandbox.resume().expect(0);
    assert_eq!(
        sandbox.show("remote")["decisions"][0]["by"]["ssh_client"],
        "203.0.113.7"
    );
}

#[test]
fn a_decision_records_the_user_the_system_says_and_a_note_past_the_limit_is_refused() {
    let sandbox = stopped(&[json!({"id": "c", "do": {"one": "review"}})], 3);
    // `baton()` sets USER=tester: anyone can set it, so it is not recorded.
    let out = sandbox.cli(&["approve", "c", "--note", &"n".repeat(10_001)]);
    out.expect(1);
    assert!(
        out.stderr
            .contains("refused: the note is longer than 10000 characters"),
        "{out}"
    );
    assert!(sandbox.show("c").get("decisions").is_none());
    sandbox
        .cli(&["approve", "c", "--note", &"n".repeat(10_000)])
        .expect(0);
    let by = &sandbox.show("c")["decisions"][0]["by"];
    assert_eq!(by["user"], cli::os_user(), "{by}");
    assert_eq!(by["uid"], cli::os_uid(), "{by}");
}

/// `--where` decides every task a filter keeps, printing each; a bad
/// filter points at the character.
#[test]
fn approve_where_decides_every_task_the_filter_keeps() {
    let review = json!({"one": "review"});
    let sandbox = stopped(
        &[
            json!({"id": "qa-1", "do": review}),
            json!({"id": "qa-2", "do": review}),
            json!({"id": "ops-1", "do": review}),
            json!({"id": "done-1"}),
        ],
        3,
    );
    let out = sandbox.cli(&["approve", "--where", "state:awaiting_review id:qa-*"]);
    out.expect(0);
    assert!(
        out.stdout.contains("approve: recorded for task qa-1"),
        "{out}"
    );
    assert!(
        out.stdout.contains("approve: recorded for task qa-2"),
        "{out}"
    );
    assert!(!out.stdout.contains("ops-1"), "{out}");
    assert!(
        out.stderr.contains("approve: 2 recorded, 0 refused"),
        "{out}"
    );
    for id in ["qa-1", "qa-2"] {
        assert_eq!(
            sandbox.show(id)["decisions"][0]["action"]["action"],
            "approve"
        );
    }
    assert!(sandbox.show("ops-1").get("decisions").is_none());

    let bad = sandbox.cli(&["approve", "--where", "state:awaiting phase:one"]);
    bad.expect(2);
    assert!(bad.stderr.contains("at character 7"), "{bad}");
    assert!(bad.stderr.contains("      ^"), "the caret under it: {bad}");
    let none = sandbox.cli(&["cancel", "--where", "id:zzz*"]);
    none.expect(1);
    assert!(none.stderr.contains("no task matches"), "{none}");
}
