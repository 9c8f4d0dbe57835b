//! The dev-squad example run end to end through the binary: work given out
//! by role and capacity (the first agent of a role with room takes it),
//! a reviewer sending the junior's work back, and tickets the squad cannot
//! finish handed to a person with what was tried and how severe it is.
//! The agents are also run on their own with input they cannot use.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use baton::agents::Reply;
use baton::agents::command::parse_reply;
use cli::{Out, Sandbox, baton, output, str_at};
use jiff::Timestamp;
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> PathBuf {
    root().join("pipelines/dev_squad.toml")
}

/// `baton run pipelines/dev_squad.toml --headless`, from the sandbox's
/// folder, with the example's tickets or (to carry on) without.
fn run(sandbox: &Sandbox, with_tickets: bool) -> Out {
    let mut cmd = baton();
    cmd.current_dir(sandbox.root())
        .arg("run")
        .arg(pipeline())
        .arg("--headless")
        .arg("--state-dir")
        .arg(sandbox.state());
    if with_tickets {
        cmd.arg("--input")
            .arg(root().join("examples/dev_squad/tickets.jsonl"));
    }
    output(&mut cmd)
}

const TICKETS: [&str; 8] = [
    "SQ-101", "SQ-102", "SQ-103", "SQ-104", "SQ-105", "SQ-106", "SQ-107", "SQ-108",
];

/// One attempt as `show --json` records it.
#[derive(Debug, Clone)]
struct Attempt {
    task: String,
    agent: String,
    role: Option<String>,
    feedback: Option<String>,
    result: String,
    started: Timestamp,
    finished: Timestamp,
}

fn time(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("no time in {v}"))
        .parse()
        .expect("an RFC 3339 time")
}

fn phase<'a>(shown: &'a Value, id: &str) -> &'a Value {
    shown["phases"]
        .as_array()
        .expect("phases")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("no phase {id} in {shown}"))
}

fn attempts(shown: &Value, id: &str) -> Vec<Attempt> {
    phase(shown, id)["attempts"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|a| Attempt {
            task: str_at(shown, "id"),
            agent: str_at(a, "agent"),
            role: a["role"].as_str().map(str::to_string),
            feedback: a["feedback"].as_str().map(str::to_string),
            result: str_at(&a["outcome"], "result"),
            started: time(&a["started_at"]),
            finished: time(&a["finished_at"]),
        })
        .collect()
}

/// The most attempts of `of` in flight at once.
fn most_at_once(of: &[&Attempt]) -> usize {
    of.iter()
        .map(|a| {
            of.iter()
                .filter(|b| b.started <= a.started && a.started < b.finished)
                .count()
        })
        .max()
        .unwrap_or(0)
}

#[test]
fn the_pipeline_validates() {
    let out = output(baton().arg("validate").arg(pipeline()));
    out.expect(0);
    assert!(out.stdout.contains("5 phase(s), 5 agent(s)"), "{out}");
}

#[test]
fn the_squad_shares_work_by_capacity_and_escalates_what_it_cannot_finish() {
    let sandbox = Sandbox::new();
    // Two blockers and a review wait for a person: exit status 3.
    run(&sandbox, true).expect(3);
    let states = sandbox.states();
    let want = [
        ("SQ-101", "completed"),
        ("SQ-102", "completed"),
        ("SQ-103", "completed"),
        ("SQ-104", "blocked"),
        ("SQ-105", "blocked"),
        ("SQ-106", "awaiting_review"),
        ("SQ-107", "completed"),
        ("SQ-108", "completed"),
    ];
    for (id, state) in want {
        assert_eq!(states[id], state, "{id}: {states:?}");
    }
    let shown: BTreeMap<&str, Value> = TICKETS.iter().map(|t| (*t, sandbox.show(t))).collect();

    // Analysis: every ticket starts at once; the product manager takes the
    // first two (max_parallel = 2) and the tech lead, next in the role,
    // the rest.
    for (id, t) in &shown {
        let analyze = attempts(t, "analyze");
        assert_eq!(analyze.len(), 1, "{id}");
        let want = if ["SQ-101", "SQ-102"].contains(id) {
            "pm"
        } else {
            "tech_lead"
        };
        assert_eq!(analyze[0].agent, want, "{id}");
        assert_eq!(analyze[0].role.as_deref(), Some("analyst"), "{id}");
    }
    assert_eq!(
        phase(&shown["SQ-102"], "analyze")["output"]["answers"][0]["answer"],
        "refunds use the currency of the original payment (product notes, pricing)"
    );

    // Implementation: the senior developer while it has room (one at a
    // time), else the junior (two at a time).
    let implement: Vec<Attempt> = shown
        .values()
        .flat_map(|t| attempts(t, "implement"))
        .collect();
    assert!(
        implement
            .iter()
            .all(|a| a.role.as_deref() == Some("developer")),
        "{implement:?}"
    );
    let senior: Vec<&Attempt> = implement
        .iter()
        .filter(|a| a.agent == "senior_dev")
        .collect();
    let junior: Vec<&Attempt> = implement
        .iter()
        .filter(|a| a.agent == "junior_dev")
        .collect();
    assert_eq!(
        senior.len() + junior.len(),
        implement.len(),
        "{implement:?}"
    );
    let first = implement.iter().min_by_key(|a| a.started).expect("work");
    assert_eq!(
        first.agent, "senior_dev",
        "the preferred agent takes the first"
    );
    assert!(!senior.is_empty() && !junior.is_empty(), "{implement:?}");
    assert_eq!(most_at_once(&senior), 1, "{senior:?}");
    assert!(most_at_once(&junior) <= 2, "{junior:?}");
    // The junior gets work only while the senior is busy.
    for j in &junior {
        assert!(
            senior
                .iter()
                .any(|s| s.started <= j.started && j.started <= s.finished),
            "{} went to the junior while the senior was free: {implement:?}",
            j.task
        );
    }

    // Review: the junior's first draft lacks the edge-case tests and goes
    // back once; the senior's passes as it is.
    for id in ["SQ-101", "SQ-102", "SQ-103", "SQ-106", "SQ-107", "SQ-108"] {
        let t = &shown[id];
        let work = attempts(t, "implement");
        let rounds = phase(t, "review")["rounds"].as_u64().unwrap_or(0);
        if work[0].agent == "junior_dev" {
            assert_eq!(rounds, 1, "{id}");
            assert_eq!(work.len(), 2, "{id}");
            let asked = work[1].feedback.as_deref().expect("feedback");
            assert!(
                asked.starts_with("Review: add tests for the edge cases:"),
                "{id}: {asked}"
            );
        } else {
            assert_eq!(rounds, 0, "{id}");
            assert_eq!(work.len(), 1, "{id}");
        }
        let tests = phase(t, "implement")["output"]["tests"].to_string();
        assert!(
            tests.contains("test_a_slow_network") || tests.contains("test_an_empty_request_body")
        );
    }

    // The blockers and the review carry what was tried and how severe.
    assert_eq!(attempts(&shown["SQ-104"], "analyze")[0].result, "blocked");
    assert_eq!(attempts(&shown["SQ-105"], "implement")[0].result, "blocked");
    let queue = sandbox.cli(&["review", "--json"]);
    queue.expect(0);
    let queue: Value = serde_json::from_str(&queue.stdout).expect("review --json");
    let by_task: BTreeMap<&str, &Value> = queue
        .as_array()
        .expect("a list")
        .iter()
        .map(|w| (w["task"].as_str().unwrap(), w))
        .collect();
    assert_eq!(
        by_task.keys().copied().collect::<Vec<_>>(),
        ["SQ-104", "SQ-105", "SQ-106"]
    );

    let w = by_task["SQ-104"];
    assert_eq!(
        (w["kind"].as_str(), w["phase"].as_str()),
        (Some("blocked"), Some("analyze"))
    );
    assert!(
        str_at(w, "reason").starts_with("needs a product decision: Should a guest cart"),
        "{w}"
    );
    assert_eq!(w["escalation"]["severity"], "medium");
    assert_eq!(
        w["escalation"]["attempted"],
        json!([
            "searched the product notes for guest, cart, merged",
            "read the closed frontend tickets",
            "asked the product owner in the ticket (no answer yet)"
        ])
    );

    let w = by_task["SQ-105"];
    assert_eq!(
        (w["kind"].as_str(), w["phase"].as_str()),
        (Some("blocked"), Some("implement"))
    );
    assert_eq!(
        str_at(w, "reason"),
        "cannot start without the payments API v2 spec"
    );
    assert_eq!(w["escalation"]["severity"], "high");
    let tried = w["escalation"]["attempted"].as_array().expect("attempted");
    assert_eq!(tried.len(), 3, "{w}");
    assert!(
        tried[1]
            .as_str()
            .unwrap()
            .starts_with("read the payments API v1 spec (docs/payments-api-v1.yaml)"),
        "{w}"
    );

    let w = by_task["SQ-106"];
    assert_eq!(
        (w["kind"].as_str(), w["phase"].as_str()),
        (Some("review"), Some("test"))
    );
    assert_eq!(w["escalation"]["severity"], "low");
    assert_eq!(
        w["escalation"]["attempted"][0],
        "ran the acceptance checks on Chrome and Firefox"
    );

    // The text queue puts the severity first and what was tried after.
    let text = sandbox.cli(&["review"]);
    text.expect(0);
    assert!(
        text.stdout.contains(
            "high · cannot start without the payments API v2 spec · tried: looked for the payments API v2 spec"
        ),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout
            .contains("medium · needs a product decision: Should a guest cart"),
        "{}",
        text.stdout
    );
    assert!(
        text.stdout.contains("low · agent asks: cannot check"),
        "{}",
        text.stdout
    );
    let detail = sandbox.cli(&["show", "SQ-105"]);
    detail.expect(0);
    assert!(
        detail.stdout.contains("severity  high"),
        "{}",
        detail.stdout
    );

    // A person settles two of them; the run carries on.
    sandbox
        .cli(&[
            "approve",
            "SQ-106",
            "--note",
            "checked on an iPhone by hand",
        ])
        .expect(0);
    sandbox
        .cli(&[
            "resolve",
            "SQ-105",
            "--fail",
            "--note",
            "payments v2 is next quarter",
        ])
        .expect(0);
    // SQ-104 still waits for its product decision: exit status 3.
    run(&sandbox, false).expect(3);
    let states = sandbox.states();
    assert_eq!(states["SQ-106"], "completed");
    assert_eq!(states["SQ-105"], "failed");
    assert_eq!(states["SQ-104"], "blocked", "nobody decided for it");
}

fn agent(script: &str, env: &[(&str, &str)], stdin: &str) -> Reply {
    let mut cmd = Command::new("python3");
    cmd.arg(root().join("examples/dev_squad/agents").join(script))
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("python3 runs");
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

#[test]
fn agents_answer_input_they_cannot_use_with_a_reply_not_a_crash() {
    let scripts = [
        ("analyst.py", "analyze"),
        ("tech_lead.py", "plan"),
        ("tech_lead.py", "review"),
        ("developer.py", "implement"),
        ("qa.py", "test"),
    ];
    let env = [("WORK_SECONDS", "not a number"), ("LEVEL", "senior")];
    let bad_inputs = [
        json!({}),
        json!({"title": "", "acceptance": []}),
        json!({"title": "x", "acceptance": [1, 2]}),
        json!({"title": "x", "acceptance": ["y"], "points": -4, "area": 7, "needs": "z"}),
        json!("a string"),
    ];
    for (script, phase) in scripts {
        assert!(
            matches!(agent(script, &env, "{not json"), Reply::Error { .. }),
            "{script}"
        );
        for input in &bad_inputs {
            let request = json!({"task": {"id": "T", "input": input}, "phase": phase,
                                 "attempt": 1, "outputs": {"plan": 3, "implement": []},
                                 "feedback": null});
            let reply = agent(script, &env, &request.to_string());
            assert!(
                !matches!(reply, Reply::Error { .. }),
                "{script} on {input}: {reply:?}"
            );
        }
    }
}
