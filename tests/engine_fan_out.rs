//! Fan-out over items, end to end through a real state folder: chains,
//! fan-in order, item failures under `stop` and `continue`, retries of one
//! item, the bound on items in flight, and an operator's retry.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use baton::agents::{CallResult, Reply};
use baton::engine::task::ItemState;
use baton::engine::{Action, PhaseState, TaskState};
use baton::spec::Pipeline;
use serde_json::{Value, json};
use support::*;

/// A pipeline from TOML whose phases all run on the `scripted` agent.
fn parsed(phases: &str) -> Pipeline {
    let text = format!(
        "name = \"fan\"\n[defaults]\nretry = {{ max_attempts = 2, initial_delay = \"1ms\", max_delay = \"1ms\" }}\n[agents.scripted]\nkind = \"sim\"\n{phases}"
    );
    baton::spec::parse(&text, Path::new("fan.toml")).expect("valid pipeline")
}

const CHAIN: &str = "[[phases]]\nid = \"parse\"\nagent = \"scripted\"\n\
[[phases]]\nid = \"enrich\"\nagent = \"scripted\"\nfor_each = \"outputs.parse.scenes\"\nmax_items_in_flight = 3\n\
[[phases]]\nid = \"light\"\nagent = \"scripted\"\nfor_each = \"outputs.parse.scenes\"\n\
[[phases]]\nid = \"metrics\"\nagent = \"scripted\"\n";

fn scenes(n: usize) -> Value {
    json!({"scenes": (0..n).map(|i| json!({"n": i})).collect::<Vec<_>>()})
}

fn fatal(msg: &str) -> CallResult {
    reply(Reply::Error {
        message: msg.into(),
        retryable: false,
    })
}

#[tokio::test]
async fn items_go_through_the_chain_and_the_fan_in_gets_them_in_item_order() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(
        Scripted::new(|r| match r.phase.as_str() {
            "parse" => ok(scenes(12)),
            "enrich" | "light" => {
                let n = r.item.as_ref().unwrap()["n"].as_u64().unwrap();
                assert_eq!(r.item_index, Some(n as u32));
                // The list itself is left out of the request.
                assert!(r.outputs["parse"].get("scenes").is_none());
                if r.phase == "light" {
                    assert_eq!(r.outputs["enrich"], json!({"enriched": n}));
                }
                ok(json!({ format!("{}ed", r.phase).replace("lighted", "lit"): n }))
            }
            _ => ok(json!({"count": r.outputs["light"].as_array().unwrap().len()})),
        })
        .with_delay(Duration::from_millis(2)),
    );
    let p = parsed(CHAIN);
    let (summary, tasks) = run_to_idle(p, dir.path(), agent.clone(), tasks(&["t1"])).await;
    assert_eq!(summary.count(TaskState::Completed), 1);
    let t = &tasks[0];
    let light = t.phase("light").unwrap();
    assert_eq!(light.state, PhaseState::Completed);
    let expect: Vec<Value> = (0..12).map(|n| json!({"lit": n})).collect();
    assert_eq!(light.output, Some(Value::Array(expect)));
    assert_eq!(
        agent.requests_for("metrics")[0].outputs["light"]
            .as_array()
            .unwrap()
            .len(),
        12
    );
    assert_eq!(agent.requests_for("enrich").len(), 12);
    assert_eq!(agent.requests_for("light").len(), 12);
    assert!(
        agent.max_in_flight.load(Ordering::SeqCst) <= 3,
        "max_items_in_flight bounds the chain"
    );
    assert_eq!(t.attempts(), 1 + 12 + 12 + 1);
}

#[tokio::test]
async fn with_continue_a_failed_item_is_skipped_and_its_slot_is_null() {
    let dir = tempfile::tempdir().unwrap();
    let phases = CHAIN.replace(
        "max_items_in_flight = 3\n",
        "max_items_in_flight = 3\non_item_failure = \"continue\"\n",
    );
    let agent = Arc::new(Scripted::new(|r| match (r.phase.as_str(), r.item_index) {
        ("parse", _) => ok(scenes(5)),
        ("enrich", Some(2)) => fatal("scene 2 is unreadable"),
        ("enrich" | "light", Some(i)) => ok(json!({"i": i})),
        _ => ok(json!({"merged": r.outputs["light"].clone()})),
    }));
    let (summary, tasks) =
        run_to_idle(parsed(&phases), dir.path(), agent.clone(), tasks(&["t1"])).await;
    assert_eq!(summary.count(TaskState::Completed), 1);
    let t = &tasks[0];
    let enrich = t.phase("enrich").unwrap().items.as_deref().unwrap();
    assert_eq!((enrich.done, enrich.failed), (4, 1));
    assert_eq!(enrich.items[2].state, ItemState::Failed);
    assert!(
        enrich.items[2]
            .error
            .as_deref()
            .unwrap()
            .contains("scene 2 is unreadable")
    );
    assert!(
        agent
            .requests_for("light")
            .iter()
            .all(|r| r.item_index != Some(2)),
        "a failed item does not go on in its chain"
    );
    assert_eq!(
        agent.requests_for("metrics")[0].outputs["light"],
        json!([{"i": 0}, {"i": 1}, null, {"i": 3}, {"i": 4}])
    );
}

#[tokio::test]
async fn an_item_failed_early_in_a_long_chain_holds_back_no_item_after_it() {
    // Three item phases: the item that fails in the first never reaches the
    // second, whose cursor stays at it; the third must still run the rest.
    let dir = tempfile::tempdir().unwrap();
    let phases = CHAIN
        .replace(
            "max_items_in_flight = 3\n",
            "max_items_in_flight = 3\non_item_failure = \"continue\"\n",
        )
        .replace(
            "[[phases]]\nid = \"metrics\"",
            "on_item_failure = \"continue\"\n[[phases]]\nid = \"preview\"\nagent = \"scripted\"\nfor_each = \"outputs.parse.scenes\"\non_item_failure = \"continue\"\n[[phases]]\nid = \"metrics\"",
        );
    let agent = Arc::new(Scripted::new(|r| match (r.phase.as_str(), r.item_index) {
        ("parse", _) => ok(scenes(6)),
        ("enrich", Some(1)) => fatal("scene 1 is unreadable"),
        (_, Some(i)) => ok(json!({"i": i})),
        _ => ok(json!({"merged": r.outputs["preview"].clone()})),
    }));
    let (summary, tasks) =
        run_to_idle(parsed(&phases), dir.path(), agent.clone(), tasks(&["t1"])).await;
    assert_eq!(
        summary.count(TaskState::Completed),
        1,
        "{:?}",
        tasks[0].phases
    );
    assert_eq!(agent.requests_for("preview").len(), 5);
    assert_eq!(
        agent.requests_for("metrics")[0].outputs["preview"],
        json!([{"i": 0}, null, {"i": 2}, {"i": 3}, {"i": 4}, {"i": 5}])
    );
}

#[tokio::test]
async fn with_stop_one_item_failing_for_good_fails_the_task_after_its_retries() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(Scripted::new(|r| match (r.phase.as_str(), r.item_index) {
        ("parse", _) => ok(scenes(40)),
        ("enrich", Some(1)) => reply(Reply::Error {
            message: "busy".into(),
            retryable: true,
        }),
        _ => ok(json!({})),
    }));
    let (summary, tasks) =
        run_to_idle(parsed(CHAIN), dir.path(), agent.clone(), tasks(&["t1"])).await;
    assert_eq!(summary.count(TaskState::Failed), 1);
    let t = &tasks[0];
    let reason = t.finish_reason.as_deref().unwrap();
    assert!(
        reason.contains("phase enrich failed: item 1 failed: retryable: busy"),
        "{reason}"
    );
    let tries = agent
        .requests_for("enrich")
        .iter()
        .filter(|r| r.item_index == Some(1))
        .count();
    assert_eq!(tries, 2, "max_attempts = 2 for the item");
    assert!(
        agent.requests_for("enrich").len() < 40,
        "no new item starts once the task fails"
    );
    assert!(agent.requests_for("metrics").is_empty());
    let enrich = t.phase("enrich").unwrap().items.as_deref().unwrap();
    assert_eq!(enrich.running, 0, "items cut short are pending again");
    assert!(enrich.items.iter().all(|i| i.state != ItemState::Running));
}

#[tokio::test]
async fn a_list_that_is_missing_or_too_long_fails_the_task_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let p =
        parsed("[[phases]]\nid = \"each\"\nagent = \"scripted\"\nfor_each = \"input.scenes\"\n");
    let agent = Arc::new(Scripted::new(|_| ok(json!({}))));
    let long = json!({"scenes": vec![0; 10_001]});
    let inputs = vec![
        input("none", json!({})),
        input("long", long),
        input("empty", json!({"scenes": []})),
    ];
    let (_, tasks) = run_to_idle(p, dir.path(), agent.clone(), inputs).await;
    let by = |id: &str| tasks.iter().find(|t| t.id == id).unwrap();
    assert_eq!(by("none").state, TaskState::Failed);
    assert!(
        by("none")
            .finish_reason
            .as_deref()
            .unwrap()
            .contains("phase each failed: for_each = \"input.scenes\": no such field")
    );
    let long = by("long").finish_reason.clone().unwrap();
    assert!(
        long.contains("has 10001 items; a task may fan out over at most 10000"),
        "{long}"
    );
    assert_eq!(by("empty").state, TaskState::Completed);
    assert_eq!(by("empty").phases[0].output, Some(json!([])));
    assert!(agent.requests_for("each").is_empty());
}

#[tokio::test]
async fn an_operator_retry_runs_only_the_failed_items_again() {
    let dir = tempfile::tempdir().unwrap();
    // One item at a time, so that item 4 has not started when item 3 fails.
    let p = parsed(
        "[[phases]]\nid = \"each\"\nagent = \"scripted\"\nfor_each = \"input.scenes\"\nmax_items_in_flight = 1\n",
    );
    let fail_once = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = fail_once.clone();
    let agent = Arc::new(Scripted::new(move |r| {
        if r.item_index == Some(3) && flag.swap(false, Ordering::SeqCst) {
            fatal("not yet")
        } else {
            ok(json!({"i": r.item_index}))
        }
    }));
    let live = Live::start(
        p,
        dir.path(),
        agent.clone(),
        vec![input("t1", json!({"scenes": [0, 1, 2, 3, 4]}))],
    );
    live.wait_for("the task fails", |s| {
        task(s, "t1").state == TaskState::Failed
    })
    .await;
    live.act("t1", Action::Retry, None).await.unwrap();
    let snap = live
        .wait_for("the task completes", |s| {
            task(s, "t1").state == TaskState::Completed
        })
        .await;
    let each = task(&snap, "t1").phases[0].clone();
    assert_eq!(
        each.output,
        Some(json!([{"i": 0}, {"i": 1}, {"i": 2}, {"i": 3}, {"i": 4}]))
    );
    let calls: Vec<Option<u32>> = agent
        .requests_for("each")
        .iter()
        .map(|r| r.item_index)
        .collect();
    assert_eq!(
        calls,
        [Some(0), Some(1), Some(2), Some(3), Some(3), Some(4)],
        "finished items do not run again"
    );
    live.stop().await;
}

#[tokio::test]
async fn an_item_that_blocks_or_asks_for_review_fails_without_holding_the_task() {
    let dir = tempfile::tempdir().unwrap();
    let p = parsed(
        "[[phases]]\nid = \"each\"\nagent = \"scripted\"\nfor_each = \"input.scenes\"\non_item_failure = \"continue\"\n",
    );
    let agent = Arc::new(Scripted::new(|r| match r.item_index {
        Some(1) => reply(Reply::Blocked {
            reason: "needs a credential".into(),
            escalation: Default::default(),
        }),
        Some(2) => reply(Reply::Review {
            reason: "unsure".into(),
            output: json!({"i": 2}),
            escalation: Default::default(),
        }),
        _ => ok(json!({"i": r.item_index})),
    }));
    let inputs = vec![input("t1", json!({"scenes": [0, 1, 2, 3]}))];
    let (summary, tasks) = run_to_idle(p, dir.path(), agent.clone(), inputs).await;
    assert_eq!(summary.count(TaskState::Completed), 1);
    let t = &tasks[0];
    assert!(t.holds.is_empty() && t.decisions.is_empty());
    let items = t.phases[0].items.as_deref().unwrap();
    assert_eq!(
        items.items[1].error.as_deref(),
        Some("blocked: needs a credential")
    );
    assert_eq!(
        items.items[2].error.as_deref(),
        Some("asked for a review: unsure")
    );
    assert_eq!(
        t.phases[0].output,
        Some(json!([{"i": 0}, null, null, {"i": 3}]))
    );
    assert_eq!(agent.requests_for("each").len(), 4, "neither is retried");
}

#[tokio::test]
async fn a_budget_reached_mid_fan_out_holds_the_task_until_raised_and_approved() {
    use baton::engine::{Actor, Command, Engine};
    let dir = tempfile::tempdir().unwrap();
    // The simulator's own replies: 175 tokens an attempt; the budget is
    // reached after the third item.
    let text = "name = \"fan\"\n[defaults]\nbudget_tokens = 525\n\
        [agents.sim]\nkind = \"sim\"\nlatency = \"0ms\"\ntokens = \"100\"\n\
        [[phases]]\nid = \"each\"\nagent = \"sim\"\nfor_each = \"input.scenes\"\nmax_items_in_flight = 1\n";
    let p = baton::spec::parse(text, Path::new("fan.toml")).unwrap();
    let mut engine = Engine::open(p, dir.path(), opts(false)).expect("open");
    let handle = engine.handle();
    let join = tokio::spawn(async move {
        engine
            .submit(vec![input("t1", json!({"scenes": [0, 1, 2, 3, 4, 5]}))])
            .await
            .expect("submit");
        engine.run().await.expect("run")
    });
    let live = Live { handle, join };
    let snap = live
        .wait_for("the budget hold", |s| {
            task(s, "t1").state == TaskState::AwaitingReview
        })
        .await;
    let t = task(&snap, "t1");
    assert_eq!(t.holds[0].phase, "each");
    assert!(t.holds[0].is_budget(), "{:?}", t.holds[0]);
    assert_eq!(t.phases[0].items.as_deref().unwrap().done, 3);
    assert_eq!(t.tokens(), 525);
    live.handle
        .send(Command::RaiseBudget {
            task: Some("t1".into()),
            usd: None,
            tokens: Some(10_000),
            by: Actor::engine(),
        })
        .await
        .expect("raise");
    live.act("t1", Action::Approve, None).await.unwrap();
    let snap = live
        .wait_for("completion", |s| {
            task(s, "t1").state == TaskState::Completed
        })
        .await;
    let each = &task(&snap, "t1").phases[0];
    assert_eq!(each.output.as_ref().unwrap().as_array().unwrap().len(), 6);
    assert_eq!(each.items.as_deref().unwrap().attempts, 6);
    live.stop().await;
}
