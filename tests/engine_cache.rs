//! The shared step cache, end to end through a real state folder: hits
//! across tasks and runs, a changed phase, a TTL on a stepped clock, one
//! attempt per key under concurrency, failures not cached.

mod support;

use std::sync::Arc;
use std::time::Duration;

use baton::agents::Reply;
use baton::engine::clock::SteppedClock;
use baton::engine::{Engine, EngineOptions, PhaseState, Task, TaskState};
use baton::spec::Pipeline;
use baton::spec::input::InputTask;
use baton::spec::model::{CacheSpec, OnFailure, ReviewMode, Template};
use baton::store::cache::CacheFilter;
use baton::store::{RunReader, SqliteReader};
use jiff::SignedDuration;
use serde_json::json;
use support::*;

/// `fetch` keyed on `input.q`, then `use`, which is not cached.
fn cached_pipeline(ttl: Option<Duration>) -> Pipeline {
    let mut fetch = phase("fetch");
    fetch.cache = Some(CacheSpec {
        key: Template::parse("{{input.q}}").unwrap(),
        text: "{{input.q}}".into(),
        ttl,
    });
    pipeline(vec![fetch, phase("use")], &[])
}

fn with_q(ids: &[&str], q: &str) -> Vec<InputTask> {
    ids.iter()
        .map(|id| input(id, json!({"q": q, "id": id})))
        .collect()
}

/// Answers `fetch` with who asked, so that a reused output shows its maker.
fn fetcher() -> Scripted {
    Scripted::new(|r| ok(json!({"rows": [r.task.input["q"].clone()], "by": r.task.id})))
}

fn calls_for(agent: &Scripted, phase: &str) -> usize {
    agent.requests_for(phase).len()
}

fn find<'a>(tasks: &'a [Task], id: &str) -> &'a Task {
    tasks.iter().find(|t| t.id == id).unwrap()
}

async fn run_with_clock(
    p: Pipeline,
    dir: &std::path::Path,
    agent: Arc<Scripted>,
    inputs: Vec<InputTask>,
    clock: Arc<SteppedClock>,
) -> Vec<Task> {
    let opts = EngineOptions {
        clock,
        ..opts(true)
    };
    let mut engine = Engine::open(p.clone(), dir, opts).expect("open");
    engine.replace_agent("scripted", agent);
    engine.submit(inputs).await.expect("submit");
    engine.run().await.expect("run");
    load(p, dir).await
}

#[tokio::test]
async fn one_call_serves_every_task_with_the_key_at_no_cost() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(fetcher());
    let mut inputs = with_q(&["t1", "t2", "t3", "t4", "t5"], "cats");
    inputs.extend(with_q(&["d1", "d2"], "dogs"));
    let (summary, tasks) =
        run_to_idle(cached_pipeline(None), dir.path(), agent.clone(), inputs).await;
    assert_eq!(summary.count(TaskState::Completed), 7);
    assert_eq!(calls_for(&agent, "fetch"), 2, "one call per key");
    assert_eq!(calls_for(&agent, "use"), 7, "the phase after is not cached");
    let maker = find(&tasks, "t1");
    assert!(maker.phases[0].cached.is_none());
    assert_eq!(maker.phases[0].attempts.len(), 1);
    for id in ["t2", "t3", "t4", "t5"] {
        let t = find(&tasks, id);
        let fetch = &t.phases[0];
        assert_eq!(fetch.state, PhaseState::Completed);
        assert!(fetch.attempts.is_empty(), "{id}: no attempt");
        let hit = fetch.cached.as_ref().expect("marked cached");
        assert_eq!((hit.key.as_str(), hit.from_task.as_str()), ("cats", "t1"));
        assert_eq!(fetch.output, Some(json!({"rows": ["cats"], "by": "t1"})));
        // Only `use` spent anything: 150 tokens.
        assert_eq!(t.tokens(), 150, "{id}");
    }
    // The later phase saw the reused output.
    let uses = agent.requests_for("use");
    let t3 = uses.iter().find(|r| r.task.id == "t3").unwrap();
    assert_eq!(t3.outputs["fetch"]["by"], json!("t1"));
    // Totals and figures count two fetch calls, not seven.
    let reader = SqliteReader::open(dir.path()).unwrap();
    assert_eq!(reader.totals().await.unwrap().tokens, 150 * (2 + 7));
    let entries = reader.cache_list(&CacheFilter::default()).await.unwrap();
    let mut uses: Vec<(String, u64)> = entries
        .iter()
        .map(|e| (e.key.key.clone(), e.uses))
        .collect();
    uses.sort();
    assert_eq!(uses, [("cats".to_string(), 4), ("dogs".to_string(), 1)]);
}

#[tokio::test]
async fn a_later_run_on_the_folder_reuses_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(fetcher());
    run_to_idle(
        cached_pipeline(None),
        dir.path(),
        first.clone(),
        with_q(&["t1"], "cats"),
    )
    .await;
    assert_eq!(calls_for(&first, "fetch"), 1);
    let second = Arc::new(fetcher());
    let (summary, tasks) = run_to_idle(
        cached_pipeline(None),
        dir.path(),
        second.clone(),
        with_q(&["t2", "t3"], "cats"),
    )
    .await;
    assert_eq!(summary.count(TaskState::Completed), 3);
    assert_eq!(calls_for(&second, "fetch"), 0, "stored by the first run");
    assert_eq!(
        find(&tasks, "t3").phases[0]
            .cached
            .as_ref()
            .unwrap()
            .from_task,
        "t1"
    );
}

#[tokio::test]
async fn a_changed_phase_definition_misses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let first = Arc::new(fetcher());
    run_to_idle(
        cached_pipeline(None),
        dir.path(),
        first.clone(),
        with_q(&["t1"], "cats"),
    )
    .await;
    // The same phase with an output contract is another definition.
    let mut changed = cached_pipeline(None);
    changed.phases[0].required_output = vec!["rows".into()];
    let second = Arc::new(fetcher());
    let (_, tasks) = run_to_idle(
        changed.clone(),
        dir.path(),
        second.clone(),
        with_q(&["t2"], "cats"),
    )
    .await;
    assert_eq!(calls_for(&second, "fetch"), 1);
    assert!(find(&tasks, "t2").phases[0].cached.is_none());
    // And so is another model for the agent.
    let mut remodelled = changed;
    remodelled.agents.insert(
        "scripted".into(),
        sim_agent("scripted", 10, "another-model"),
    );
    let third = Arc::new(fetcher());
    run_to_idle(
        remodelled,
        dir.path(),
        third.clone(),
        with_q(&["t3"], "cats"),
    )
    .await;
    assert_eq!(calls_for(&third, "fetch"), 1);
}

#[tokio::test]
async fn an_entry_past_its_ttl_is_not_reused() {
    let dir = tempfile::tempdir().unwrap();
    let p = cached_pipeline(Some(Duration::from_secs(3600)));
    let clock = Arc::new(SteppedClock::new());
    let agent = Arc::new(fetcher());
    run_with_clock(
        p.clone(),
        dir.path(),
        agent.clone(),
        with_q(&["t1"], "cats"),
        clock.clone(),
    )
    .await;
    // Half an hour on: still fresh.
    clock.step(SignedDuration::from_mins(30));
    let tasks = run_with_clock(
        p.clone(),
        dir.path(),
        agent.clone(),
        with_q(&["t2"], "cats"),
        clock.clone(),
    )
    .await;
    assert_eq!(calls_for(&agent, "fetch"), 1);
    assert!(find(&tasks, "t2").phases[0].cached.is_some());
    // Two hours on: stale, so the phase runs and stores a fresh entry.
    clock.step(SignedDuration::from_mins(90));
    let tasks = run_with_clock(
        p.clone(),
        dir.path(),
        agent.clone(),
        with_q(&["t3", "t4"], "cats"),
        clock.clone(),
    )
    .await;
    assert_eq!(calls_for(&agent, "fetch"), 2);
    assert!(find(&tasks, "t3").phases[0].cached.is_none());
    assert_eq!(
        find(&tasks, "t4").phases[0]
            .cached
            .as_ref()
            .unwrap()
            .from_task,
        "t3"
    );
}

#[tokio::test]
async fn many_tasks_asking_at_once_wait_for_the_one_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = cached_pipeline(None);
    p.defaults.concurrency = 16;
    let agent = Arc::new(fetcher().with_delay(Duration::from_millis(200)));
    let ids: Vec<String> = (0..40).map(|i| format!("t{i:02}")).collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    let (summary, tasks) = run_to_idle(p, dir.path(), agent.clone(), with_q(&ids, "cats")).await;
    assert_eq!(summary.count(TaskState::Completed), 40);
    assert_eq!(calls_for(&agent, "fetch"), 1, "exactly one attempt");
    let made: Vec<&str> = tasks
        .iter()
        .filter(|t| t.phases[0].cached.is_none())
        .map(|t| t.id.as_str())
        .collect();
    assert_eq!(made, ["t00"]);
}

#[tokio::test]
async fn a_failed_attempt_is_not_cached_and_a_waiter_runs_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = cached_pipeline(None);
    p.phases[0].on_failure = OnFailure::Continue;
    let agent = Arc::new(
        Scripted::new(|r| {
            if r.task.id == "t1" {
                reply(Reply::Error {
                    message: "source down".into(),
                    retryable: false,
                })
            } else {
                ok(json!({"by": r.task.id}))
            }
        })
        .with_delay(Duration::from_millis(100)),
    );
    let (_, tasks) = run_to_idle(
        p,
        dir.path(),
        agent.clone(),
        with_q(&["t1", "t2", "t3", "t4"], "cats"),
    )
    .await;
    assert_eq!(
        calls_for(&agent, "fetch"),
        2,
        "t1 failed, t2 ran for the rest"
    );
    assert_eq!(find(&tasks, "t1").phases[0].state, PhaseState::Failed);
    assert!(find(&tasks, "t2").phases[0].cached.is_none());
    for id in ["t3", "t4"] {
        let hit = find(&tasks, id).phases[0].cached.clone().unwrap();
        assert_eq!(hit.from_task, "t2", "{id}");
    }
    let reader = SqliteReader::open(dir.path()).unwrap();
    let entries = reader.cache_list(&CacheFilter::default()).await.unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].task, "t2");
}

#[tokio::test]
async fn a_task_that_cannot_make_the_key_fails_the_phase_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let agent = Arc::new(fetcher());
    let (_, tasks) = run_to_idle(
        cached_pipeline(None),
        dir.path(),
        agent.clone(),
        vec![input("t1", json!({"other": 1}))],
    )
    .await;
    let t = find(&tasks, "t1");
    assert_eq!(t.state, TaskState::Failed);
    let error = t.phases[0].error.as_deref().unwrap();
    assert!(
        error.contains("the key uses input.q, which task t1 does not have"),
        "{error}"
    );
    assert_eq!(calls_for(&agent, "fetch"), 0);
}

#[tokio::test]
async fn an_output_that_needs_approval_is_cached_once_approved() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = cached_pipeline(None);
    p.phases[0].review = ReviewMode::Always;
    let agent = Arc::new(fetcher());
    let live = Live::start(
        p,
        dir.path(),
        agent.clone(),
        with_q(&["t1", "t2", "t3"], "cats"),
    );
    live.wait_for("t1's review", |s| {
        task(s, "t1").state == TaskState::AwaitingReview
    })
    .await;
    // The others wait for t1's output rather than run their own.
    assert_eq!(calls_for(&agent, "fetch"), 1);
    live.act("t1", baton::engine::Action::Approve, None)
        .await
        .unwrap();
    let snap = live
        .wait_for("all done", |s| {
            s.tasks.iter().all(|t| t.state == TaskState::Completed)
        })
        .await;
    assert_eq!(calls_for(&agent, "fetch"), 1);
    for id in ["t2", "t3"] {
        let t = task(&snap, id);
        assert!(t.phases[0].cached.is_some(), "{id}");
        assert!(
            t.holds.is_empty() && !t.phases[0].approved,
            "{id}: no second approval"
        );
    }
    live.stop().await;
}

#[tokio::test]
async fn a_cached_phase_takes_no_agent_slot_and_no_rate_limit_token() {
    let dir = tempfile::tempdir().unwrap();
    let mut fetch = phase("fetch");
    fetch.cache = cached_pipeline(None).phases[0].cache.clone();
    let p = pipeline(vec![fetch], &[]);
    run_to_idle(
        p.clone(),
        dir.path(),
        Arc::new(fetcher()),
        with_q(&["t0"], "cats"),
    )
    .await;
    // Now one call at a time and one a minute, and that one never ends.
    let mut tight = p;
    let agent = tight.agents.get_mut("scripted").unwrap();
    agent.max_parallel = Some(1);
    agent.rpm = Some(1);
    let slow = Arc::new(fetcher().with_delay(Duration::from_secs(3600)));
    let mut inputs = with_q(&["busy"], "birds");
    inputs.extend(with_q(&["c1", "c2", "c3"], "cats"));
    let live = Live::start(tight, dir.path(), slow.clone(), inputs);
    let snap = live
        .wait_for("the cached tasks to finish beside the busy one", |s| {
            ["c1", "c2", "c3"]
                .iter()
                .all(|id| task(s, id).state == TaskState::Completed)
        })
        .await;
    assert_eq!(task(&snap, "busy").state, TaskState::Running);
    assert_eq!(slow.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    live.stop().await;
}

#[tokio::test]
async fn a_spent_run_budget_still_lets_cached_outputs_through() {
    let dir = tempfile::tempdir().unwrap();
    let mut fetch = phase("fetch");
    fetch.cache = cached_pipeline(None).phases[0].cache.clone();
    let p = pipeline(vec![fetch], &[]);
    run_to_idle(
        p.clone(),
        dir.path(),
        Arc::new(fetcher()),
        with_q(&["t0"], "cats"),
    )
    .await;
    // The first run spent 150 tokens: past this budget, no attempt starts.
    let mut capped = p;
    capped.run_budget.tokens = Some(100);
    let agent = Arc::new(fetcher());
    let (_, tasks) = run_to_idle(
        capped,
        dir.path(),
        agent.clone(),
        vec![
            input("c1", json!({"q": "cats"})),
            input("b1", json!({"q": "birds"})),
        ],
    )
    .await;
    assert_eq!(find(&tasks, "c1").state, TaskState::Completed);
    assert_eq!(
        find(&tasks, "b1").state,
        TaskState::AwaitingReview,
        "held for the budget"
    );
    assert_eq!(calls_for(&agent, "fetch"), 0);
    let reader = SqliteReader::open(dir.path()).unwrap();
    assert_eq!(
        reader.totals().await.unwrap().tokens,
        150,
        "the reuse cost nothing"
    );
}
