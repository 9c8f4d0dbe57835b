//! Reviewer loops and escalation details through the binary: a reviewer
//! sends the task back to an earlier phase, which runs again with the
//! feedback and everything after it follows; after `max_rounds` a person
//! decides; blockers carry what the agent tried and how severe it is.

#[path = "support/cli.rs"]
mod cli;

use cli::{Sandbox, str_at};
use serde_json::{Value, json};

/// plan → code → review, where review may send the task back to plan or code.
const LOOP: &str = r#"
[[phases]]
id = "plan"
agent = "a"

[[phases]]
id = "code"
agent = "a"

[[phases]]
id = "review"
agent = "a"
send_back = { to = ["plan", "code"], max_rounds = 2 }

[[phases]]
id = "ship"
agent = "a"
"#;

fn phase<'a>(shown: &'a Value, id: &str) -> &'a Value {
    shown["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no phase {id} in {shown}"))
}

/// The feedback each attempt of `id` ran with, in order.
fn feedbacks(shown: &Value, id: &str) -> Vec<Option<String>> {
    phase(shown, id)["attempts"]
        .as_array()
        .expect("attempts")
        .iter()
        .map(|a| a["feedback"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn a_reviewer_sends_the_task_back_and_everything_after_the_target_runs_again() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(LOOP);
    sandbox.inputs(&[
        json!({"id": "t1", "do": {"review": ["send_back:plan", "send_back:code", "ok"]}}),
        json!({"id": "t2"}),
    ]);
    sandbox.run().expect(0);
    assert_eq!(sandbox.states()["t1"], "completed");
    // Round 1 went back to plan (plan, code, review again); round 2 to code.
    assert_eq!(sandbox.runs_of("t1", "plan"), 2);
    assert_eq!(sandbox.runs_of("t1", "code"), 3);
    assert_eq!(sandbox.runs_of("t1", "review"), 3);
    assert_eq!(
        sandbox.runs_of("t1", "ship"),
        1,
        "ship waited for the last verdict"
    );
    let shown = sandbox.show("t1");
    assert_eq!(
        feedbacks(&shown, "plan"),
        [None, Some("round 1: cover the error cases".into())]
    );
    assert_eq!(
        feedbacks(&shown, "code"),
        [None, None, Some("round 2: cover the error cases".into())]
    );
    assert_eq!(phase(&shown, "review")["rounds"], 2);
    // Every round's attempts count in the task's cost and attempts.
    let t1 = sandbox
        .list()
        .into_iter()
        .find(|r| r["id"] == "t1")
        .expect("t1 listed");
    assert_eq!(t1["attempts"], 9, "{t1}");
    // A task whose reviewer is content goes straight through.
    assert_eq!(sandbox.runs_of("t2", "plan"), 1);
    let text = sandbox.cli(&["show", "t1"]);
    text.expect(0);
    assert!(
        text.stdout
            .contains("sent the task back to plan: round 1: cover the error cases"),
        "{}",
        text.stdout
    );
    assert!(text.stdout.contains("rounds    2"), "{}", text.stdout);
    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).expect("run log");
    assert!(
        log.contains("round 1: `review` sent the task back to `plan`"),
        "{log}"
    );
}

#[test]
fn past_max_rounds_a_person_decides_and_can_grant_another_round_or_approve() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(LOOP);
    sandbox.inputs(&[json!({"id": "t1", "do": {"review": "send_back:plan"}})]);
    // Two rounds, then the third send-back waits for a person: exit 3.
    sandbox.run().expect(3);
    assert_eq!(sandbox.states()["t1"], "awaiting_review");
    assert_eq!(sandbox.runs_of("t1", "plan"), 3);
    let queue = sandbox.cli(&["review"]);
    queue.expect(0);
    assert!(
        queue
            .stdout
            .contains("sent back to plan after 2 rounds: round 3: cover the error cases"),
        "{}",
        queue.stdout
    );
    // A person's feedback grants one more round, to the same target.
    sandbox
        .cli(&["reject", "t1", "--feedback", "use the retry helper"])
        .expect(0);
    sandbox.resume().expect(3);
    assert_eq!(sandbox.runs_of("t1", "plan"), 4);
    let shown = sandbox.show("t1");
    assert_eq!(
        feedbacks(&shown, "plan")
            .last()
            .cloned()
            .flatten()
            .as_deref(),
        Some("use the retry helper")
    );
    assert_eq!(phase(&shown, "review")["rounds"], 3);
    assert_eq!(
        shown["state"], "awaiting_review",
        "the reviewer still objects"
    );
    // Approving the reviewer's verdict away lets the task go on.
    sandbox.cli(&["approve", "t1"]).expect(0);
    sandbox.resume().expect(0);
    assert_eq!(sandbox.states()["t1"], "completed");
    assert_eq!(sandbox.runs_of("t1", "ship"), 1);
    assert_eq!(
        sandbox.runs_of("t1", "plan"),
        4,
        "approval ran no new round"
    );
}

#[test]
fn a_send_back_the_phase_does_not_allow_fails_the_attempt_and_says_how_to_allow_it() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(LOOP);
    sandbox.inputs(&[
        json!({"id": "t1", "do": {"code": "send_back:plan"}}),
        json!({"id": "t2", "do": {"review": "send_back:ship"}}),
    ]);
    sandbox.run().expect(1);
    let states = sandbox.states();
    assert_eq!(
        (states["t1"].as_str(), states["t2"].as_str()),
        ("failed", "failed")
    );
    let t1 = sandbox.show("t1");
    let why = str_at(&t1, "finish_reason");
    assert!(why.contains("phase code has no send_back"), "{why}");
    assert!(why.contains("send_back = { to = [\"plan\"] }"), "{why}");
    let t2 = sandbox.show("t2");
    let why = str_at(&t2, "finish_reason");
    assert!(why.contains("may send back only to plan, code"), "{why}");
}

#[test]
fn a_blocker_carries_what_was_tried_and_how_severe_to_the_queue_show_and_log() {
    let sandbox = Sandbox::new();
    sandbox.pipeline(LOOP);
    sandbox.inputs(&[json!({"id": "t1", "do": {"code": "block_detail"}})]);
    sandbox.run().expect(3);
    let queue = sandbox.cli(&["review"]);
    queue.expect(0);
    assert!(
        queue
            .stdout
            .contains("high · needs a credential · tried: read the vault; asked the ticket"),
        "{}",
        queue.stdout
    );
    let json_queue = sandbox.cli(&["review", "--json"]);
    json_queue.expect(0);
    let parsed: Value = serde_json::from_str(&json_queue.stdout).expect("review --json");
    assert_eq!(parsed[0]["escalation"]["severity"], "high", "{parsed}");
    assert_eq!(
        parsed[0]["escalation"]["attempted"],
        json!(["read the vault", "asked the ticket"])
    );
    let shown = sandbox.cli(&["show", "t1"]);
    assert!(shown.stdout.contains("severity  high"), "{}", shown.stdout);
    assert!(
        shown.stdout.contains("tried     read the vault"),
        "{}",
        shown.stdout
    );
    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).expect("run log");
    assert!(
        log.contains("⛔ blocked at `code`: “needs a credential” · severity high · tried: “read the vault”; “asked the ticket”"),
        "{log}"
    );
}

#[test]
fn validate_points_at_a_send_back_target_that_does_not_run_before() {
    let sandbox = Sandbox::new();
    let path =
        sandbox.pipeline(&LOOP.replace("to = [\"plan\", \"code\"]", "to = [\"plan\", \"ship\"]"));
    let out = cli::output(cli::baton().arg("validate").arg(&path));
    assert_ne!(out.code(), 0);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("pipeline.toml:"), "{said}");
    assert!(
        said.contains("cannot send the task back to \"ship\", which does not run before it"),
        "{said}"
    );
}
