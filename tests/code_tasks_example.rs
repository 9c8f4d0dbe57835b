//! The code-tasks example run end to end through the binary: plans sent
//! back by the plan reviewer, code sent back by the code reviewer and by a
//! quality gate that runs py_compile and unittest, a plan rejected past its
//! rounds and a test that keeps failing waiting for a person; then the
//! person's decisions carry the run to its end. The agents are also run on
//! their own with input they cannot use.

#[path = "support/cli.rs"]
mod cli;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use baton::agents::Reply;
use baton::agents::command::parse_reply;
use cli::{Out, Sandbox, baton, output, str_at};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> PathBuf {
    root().join("pipelines/code_tasks.toml")
}

/// `baton run pipelines/code_tasks.toml --headless`, from the sandbox's
/// folder, with the example's tasks or (to carry on) without.
fn run(sandbox: &Sandbox, with_tasks: bool) -> Out {
    let mut cmd = baton();
    cmd.current_dir(sandbox.root())
        .arg("run")
        .arg(pipeline())
        .arg("--headless")
        .arg("--state-dir")
        .arg(sandbox.state());
    if with_tasks {
        cmd.arg("--input")
            .arg(root().join("examples/code_tasks/tasks.jsonl"));
    }
    output(&mut cmd)
}

fn phase<'a>(shown: &'a Value, id: &str) -> &'a Value {
    shown["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no phase {id} in {shown}"))
}

fn attempts<'a>(shown: &'a Value, id: &str) -> &'a Vec<Value> {
    phase(shown, id)["attempts"]
        .as_array()
        .unwrap_or_else(|| panic!("no attempts of {id}"))
}

/// The feedback each attempt of phase `id` ran with, in order.
fn feedbacks(shown: &Value, id: &str) -> Vec<Option<String>> {
    attempts(shown, id)
        .iter()
        .map(|a| a["feedback"].as_str().map(str::to_string))
        .collect()
}

/// What each attempt of phase `id` came to: `succeeded`, `sent_back`, …
fn results(shown: &Value, id: &str) -> Vec<String> {
    attempts(shown, id)
        .iter()
        .map(|a| str_at(&a["outcome"], "result"))
        .collect()
}

fn rounds(shown: &Value, id: &str) -> u64 {
    phase(shown, id)["rounds"].as_u64().unwrap_or(0)
}

#[test]
fn the_pipeline_validates() {
    let out = output(baton().arg("validate").arg(pipeline()));
    out.expect(0);
    assert!(out.stdout.contains("5 phase(s), 5 agent(s)"), "{out}");
    assert!(out.stdout.contains("wave 5: quality_gate"), "{out}");
}

#[test]
fn code_tasks_run_end_to_end_with_their_review_loops_and_real_checks() {
    let sandbox = Sandbox::new();
    // Two tasks wait for a person: exit status 3.
    let out = run(&sandbox, true);
    out.expect(3);
    // Every task's line is one line, however long its reason.
    let printed: Vec<(String, String)> = out
        .rest_lines()
        .into_iter()
        .filter(|(id, _)| id.starts_with("RAE-"))
        .collect();
    assert_eq!(printed.len(), 7, "{out}");

    let states = sandbox.states();
    let want = [
        ("RAE-001", "completed"),
        ("RAE-002", "completed"),
        ("RAE-003", "completed"),
        ("RAE-004", "awaiting_review"),
        ("RAE-005", "completed"),
        ("RAE-006", "awaiting_review"),
        ("RAE-007", "completed"),
    ];
    for (id, state) in want {
        assert_eq!(states[id], state, "{id}: {states:?}");
    }

    // RAE-001, high risk: the first plan had no error handling and no
    // rollback; one round, and the planner added both.
    let t = sandbox.show("RAE-001");
    assert_eq!(rounds(&t, "plan_review"), 1);
    assert_eq!(results(&t, "plan_review"), ["sent_back", "succeeded"]);
    let fb = feedbacks(&t, "plan");
    assert_eq!(fb.len(), 2);
    assert_eq!(fb[0], None);
    let asked = fb[1].as_deref().expect("the second plan had feedback");
    assert!(
        asked.contains("missing error handling") && asked.contains("no rollback step"),
        "{asked}"
    );
    assert!(asked.contains("clamp_score(0.5, 1.0, 0.0)"), "{asked}");
    let kinds: Vec<&str> = phase(&t, "plan")["output"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["implement", "error_handling", "test", "rollback"]);
    assert_eq!(
        phase(&t, "plan_review")["output"]["verdict"],
        "approved",
        "{t}"
    );

    // RAE-002: the first draft had no docstring; the code reviewer sent it
    // back once and the second draft has one.
    let t = sandbox.show("RAE-002");
    assert_eq!(rounds(&t, "code_review"), 1);
    assert_eq!(rounds(&t, "plan_review"), 0);
    let fb = feedbacks(&t, "implement");
    assert_eq!(fb[0], None);
    assert!(
        fb[1]
            .as_deref()
            .is_some_and(|f| f.contains("add a docstring")),
        "{fb:?}"
    );
    let code = str_at(&phase(&t, "implement")["output"], "code");
    assert!(code.contains("    \"\"\"Split text"), "{code}");

    // RAE-003: no docstring and no error handling, both asked for at once.
    let t = sandbox.show("RAE-003");
    assert_eq!(rounds(&t, "code_review"), 1);
    let asked = feedbacks(&t, "implement")[1].clone().expect("feedback");
    assert!(
        asked.contains("docstring") && asked.contains("must raise ValueError"),
        "{asked}"
    );
    let code = str_at(&phase(&t, "implement")["output"], "code");
    assert!(code.contains("raise ValueError"), "{code}");

    // RAE-004: high risk and one-way; the planner cannot give it a way back,
    // so the fourth rejection waits for a person.
    let t = sandbox.show("RAE-004");
    assert_eq!(rounds(&t, "plan_review"), 3);
    assert_eq!(results(&t, "plan_review"), ["sent_back"; 4]);
    let fb = feedbacks(&t, "plan");
    assert_eq!(fb.len(), 4, "{fb:?}");
    assert!(fb[1..].iter().all(Option::is_some), "{fb:?}");
    assert!(
        fb[3].as_deref().unwrap().contains("cannot be undone"),
        "{fb:?}"
    );
    assert_eq!(phase(&t, "implement")["state"], "pending");
    let hold = &t["holds"][0];
    assert_eq!(hold["phase"], "plan_review");
    assert_eq!(hold["review"]["kind"], "rounds_spent");
    assert_eq!(hold["review"]["rounds"], 3);

    // RAE-005: the first draft had a real bug the reviewer could not see;
    // the quality gate's tests failed, the output went back to the
    // implementer, and the fix passes.
    let t = sandbox.show("RAE-005");
    assert_eq!(rounds(&t, "quality_gate"), 1);
    assert_eq!(results(&t, "quality_gate"), ["sent_back", "succeeded"]);
    let asked = feedbacks(&t, "implement")[1].clone().expect("feedback");
    assert!(
        asked.contains("python3 -m unittest -v test_solution")
            && asked.contains("test_case_")
            && (asked.contains("FAIL:") || asked.contains("ERROR:")),
        "{asked}"
    );
    let gate = &phase(&t, "quality_gate")["output"];
    assert_eq!(gate["passed"], true, "{gate}");
    assert_eq!(gate["tests"], 4);
    let checks = gate["checks"].as_array().expect("checks");
    assert_eq!(checks.len(), 2);
    assert!(checks.iter().all(|c| c["passed"] == true), "{gate}");
    assert!(
        str_at(&checks[1], "output").contains("Ran 4 tests"),
        "{gate}"
    );

    // RAE-006: one of the ticket's cases is wrong; two rounds change
    // nothing and the gate fails with the test output.
    let t = sandbox.show("RAE-006");
    assert_eq!(rounds(&t, "quality_gate"), 2);
    assert_eq!(
        results(&t, "quality_gate"),
        ["sent_back", "sent_back", "failed"]
    );
    assert_eq!(phase(&t, "quality_gate")["state"], "failed");
    let last = attempts(&t, "quality_gate").last().unwrap();
    let message = str_at(&last["outcome"], "message");
    assert!(
        message.contains("AssertionError: 'hello-world' != 'hello--world'"),
        "{message}"
    );
    assert!(message.contains("FAILED (failures=1)"), "{message}");
    assert!(
        !message.contains("quality-gate-"),
        "temporary paths: {message}"
    );
    let notes = &phase(&t, "implement")["output"]["notes"];
    assert!(
        notes.to_string().contains("the failing case disagrees"),
        "{notes}"
    );

    // RAE-007: straight through.
    let t = sandbox.show("RAE-007");
    for p in [
        "plan",
        "plan_review",
        "implement",
        "code_review",
        "quality_gate",
    ] {
        assert_eq!(results(&t, p), ["succeeded"], "{p}");
    }

    // Every round's attempts count.
    let listed = sandbox.list();
    let attempts_of = |id: &str| {
        listed
            .iter()
            .find(|r| r["id"] == id)
            .map(|r| r["attempts"].as_u64().unwrap())
            .unwrap()
    };
    assert_eq!(attempts_of("RAE-007"), 5);
    assert_eq!(attempts_of("RAE-004"), 8);
    assert_eq!(attempts_of("RAE-006"), 11);

    // The queue says why each waits, one row each.
    let queue = sandbox.cli(&["review"]);
    queue.expect(0);
    let rows: Vec<&str> = queue
        .stdout
        .lines()
        .filter(|l| l.starts_with("RAE-"))
        .collect();
    assert_eq!(rows.len(), 2, "{}", queue.stdout);
    assert!(
        rows[0].contains("sent back to plan after 3 rounds: Plan rejected:"),
        "{}",
        queue.stdout
    );
    assert!(
        rows[1].starts_with("RAE-006") && rows[1].contains("AssertionError"),
        "{}",
        queue.stdout
    );
    let queued = sandbox.cli(&["review", "--json"]);
    queued.expect(0);
    let queued: Value = serde_json::from_str(&queued.stdout).expect("review --json");
    let kinds: Vec<(&str, &str)> = queued
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["task"].as_str().unwrap(), w["phase"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [("RAE-004", "plan_review"), ("RAE-006", "quality_gate")]
    );

    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).expect("run log");
    assert!(
        log.contains("round 1: `plan_review` sent the task back to `plan`"),
        "{log}"
    );
    assert!(
        log.contains("`quality_gate` sent the task back to `implement`"),
        "{log}"
    );

    // A person accepts the one-way plan and the failing case; the run
    // carries on to its end.
    sandbox
        .cli(&["approve", "RAE-004", "--note", "one-way rebuild accepted"])
        .expect(0);
    sandbox
        .cli(&[
            "approve",
            "RAE-006",
            "--note",
            "case 3 of the ticket is wrong",
        ])
        .expect(0);
    run(&sandbox, false).expect(0);
    let states = sandbox.states();
    assert!(states.values().all(|s| s == "completed"), "{states:?}");
    let t = sandbox.show("RAE-004");
    assert_eq!(results(&t, "quality_gate"), ["succeeded"]);
    assert_eq!(feedbacks(&t, "plan").len(), 4, "approval ran no new round");
}

/// Runs one agent script with `stdin` as its request, from an unrelated
/// folder, and parses its reply as baton would.
fn agent(script: &str, stdin: &str) -> Reply {
    agent_in(script, stdin, &std::env::temp_dir())
}

/// The same with `tmp` as the agent's TMPDIR.
fn agent_in(script: &str, stdin: &str, tmp: &Path) -> Reply {
    let mut child = Command::new("python3")
        .arg(root().join("examples/code_tasks/agents").join(script))
        .current_dir(std::env::temp_dir())
        .env("TMPDIR", tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut pipe = child.stdin.take().unwrap();
    pipe.write_all(stdin.as_bytes()).unwrap();
    drop(pipe);
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{script}: {:?}\n{stderr}", out.status);
    parse_reply(&out.stdout, None)
        .unwrap_or_else(|e| panic!("{script}: {e}\nstderr:\n{stderr}"))
        .reply
}

fn request(phase: &str, input: Value, outputs: Value) -> String {
    json!({"task": {"id": "T-1", "input": input}, "phase": phase, "attempt": 1,
           "outputs": outputs, "feedback": null})
    .to_string()
}

#[test]
fn agents_answer_input_they_cannot_use_with_a_reply_not_a_crash() {
    let scripts = [
        ("planner.py", "plan"),
        ("plan_reviewer.py", "plan_review"),
        ("implementer.py", "implement"),
        ("code_reviewer.py", "code_review"),
        ("quality_gate.py", "quality_gate"),
    ];
    let bad_inputs = [
        json!({}),
        json!({"function": "no such thing!", "cases": "none"}),
        json!({"function": "mystery", "cases": [{"args": [1], "expect": 1}]}),
        json!({"function": "slugify", "cases": [{"args": [1], "raises": "SystemExit"}]}),
        json!(["not", "an", "object"]),
    ];
    for (script, phase) in scripts {
        // Not JSON at all: an error reply, not a traceback.
        let Reply::Error { retryable, .. } = agent(script, "this is not json") else {
            panic!("{script} answered garbage with something else than an error")
        };
        assert!(!retryable);
        for input in &bad_inputs {
            let outputs = json!({"plan": {"steps": "x"}, "implement": {"code": "def ("}});
            // Any reply will do but a crash turned into an error.
            let reply = agent(script, &request(phase, input.clone(), outputs));
            if let Reply::Error { message, .. } = &reply {
                assert!(
                    message.starts_with("quality gate: "),
                    "{script} on {input}: {message}"
                );
            }
        }
    }
    // A function the implementer does not know blocks, saying what it tried.
    let reply = agent(
        "implementer.py",
        &request(
            "implement",
            json!({"function": "mystery", "cases": [{"args": [1], "expect": 1}]}),
            json!({}),
        ),
    );
    let Reply::Blocked { reason, escalation } = reply else {
        panic!("{reply:?}")
    };
    assert!(reason.contains("mystery"), "{reason}");
    assert_eq!(escalation.attempted.len(), 1);
    // Code that does not parse goes back with the parser's complaint.
    let reply = agent(
        "code_reviewer.py",
        &json!({"task": {"id": "T-1", "input": {"function": "f", "cases": []}},
                "phase": "code_review", "attempt": 1,
                "outputs": {"implement": {"code": "def f(:\n"}}, "feedback": null,
                "send_back": {"to": ["implement"], "rounds": 0, "max_rounds": 3}})
        .to_string(),
    );
    let Reply::SendBack { to, feedback, .. } = reply else {
        panic!("{reply:?}")
    };
    assert_eq!(to, "implement");
    assert!(feedback.contains("does not parse"), "{feedback}");
}

/// Code that does not compile is reported by py_compile, and the gate's
/// temporary folder is gone afterwards.
#[test]
fn the_quality_gate_reports_code_that_does_not_compile() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let reply = agent_in(
        "quality_gate.py",
        &json!({"task": {"id": "T-1", "input": {"function": "f", "cases": [{"args": [1], "expect": 1}]}},
                "phase": "quality_gate", "attempt": 1,
                "outputs": {"implement": {"code": "def f(x):\n  return x +\n"}}, "feedback": null})
        .to_string(),
        tmp.path(),
    );
    let Reply::Error { message, retryable } = reply else {
        panic!("{reply:?}")
    };
    assert!(!retryable);
    assert!(
        message.contains("`python3 -m py_compile solution.py` failed"),
        "{message}"
    );
    assert!(message.contains("SyntaxError"), "{message}");
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}
