//! Budgets end to end through a real state folder: per task and per run, in
//! dollars and tokens, stopping work at the limit; raising a budget; and a
//! raise surviving a restart. Agents are simulators with known token counts
//! (100 out + 75 in = 175 per attempt) priced by a table of round figures.

mod support;

use std::path::Path;

use baton::engine::event::{BudgetScope, ReviewReason};
use baton::engine::{Actor, Command, Engine, PhaseState, Task, TaskState};
use baton::spec::Pipeline;
use baton::spec::input::InputTask;
use baton::spec::model::BudgetLimits;
use support::*;

/// Tokens one attempt of the test simulator reports.
const PER_ATTEMPT: u64 = 175;

/// A pipeline of `n` phases on a simulator whose attempts cost exactly $1
/// (100 output tokens at $10,000 per million, input free).
fn priced(dir: &Path, n: usize) -> Pipeline {
    let prices = dir.join("pricing.toml");
    std::fs::write(
        &prices,
        "[models.round]\ninput_per_mtok = 0.0\noutput_per_mtok = 10000.0\n",
    )
    .unwrap();
    let phases = (1..=n).map(|i| phase(&format!("p{i}"))).collect();
    let mut p = pipeline(phases, &[]);
    p.agents
        .insert("scripted".into(), sim_agent("scripted", 100, "round"));
    p.pricing = Some(prices);
    p
}

fn usd(limit: f64) -> BudgetLimits {
    BudgetLimits {
        usd: Some(limit),
        tokens: None,
    }
}

fn tokens(limit: u64) -> BudgetLimits {
    BudgetLimits {
        usd: None,
        tokens: Some(limit),
    }
}

/// Runs the pipeline's own agents until nothing more can happen.
async fn run(p: Pipeline, dir: &Path, inputs: Vec<InputTask>) -> Vec<Task> {
    let mut engine = Engine::open(p.clone(), dir, opts(true)).expect("open");
    engine.submit(inputs).await.expect("submit");
    engine.run().await.expect("run");
    load(p, dir).await
}

fn start(p: Pipeline, dir: &Path, inputs: Vec<InputTask>) -> Live {
    let mut engine = Engine::open(p, dir, opts(false)).expect("open");
    let handle = engine.handle();
    let join = tokio::spawn(async move {
        engine.submit(inputs).await.expect("submit");
        engine.run().await.expect("run")
    });
    Live { handle, join }
}

fn state_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    (dir, state)
}

fn budget_hold(t: &Task) -> Option<(BudgetScope, &str, &str)> {
    t.holds.first().and_then(|h| match &h.review {
        Some(ReviewReason::Budget { scope, detail }) => {
            Some((*scope, h.phase.as_str(), detail.as_str()))
        }
        _ => None,
    })
}

fn completed(t: &Task) -> usize {
    t.phases
        .iter()
        .filter(|p| p.state == PhaseState::Completed)
        .count()
}

async fn raise(live: &Live, task: Option<&str>, usd: Option<f64>, tokens: Option<u64>) {
    live.handle
        .send(Command::RaiseBudget {
            task: task.map(str::to_string),
            usd,
            tokens,
            by: Actor {
                user: "tester".into(),
                ssh_client: None,
            },
        })
        .await
        .expect("raise accepted");
}

#[tokio::test]
async fn a_task_token_budget_stops_work_exactly_at_the_limit() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 5);
    p.defaults.task_budget = tokens(2 * PER_ATTEMPT);
    let tasks = run(p, &state, support::tasks(&["t1", "t2"])).await;
    for t in &tasks {
        assert_eq!(t.state, TaskState::AwaitingReview, "{}", t.id);
        assert_eq!(t.attempts(), 2);
        assert_eq!(completed(t), 2);
        assert_eq!(t.tokens(), 2 * PER_ATTEMPT);
        let (scope, phase, detail) = budget_hold(t).expect("held by its budget");
        assert_eq!((scope, phase), (BudgetScope::Task, "p3"));
        assert_eq!(detail, "350 tokens reached: 350 used");
        assert_eq!(t.phases[2].state, PhaseState::Pending, "never started");
    }
}

#[tokio::test]
async fn a_task_dollar_budget_lets_the_attempt_that_crosses_it_finish() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 5);
    // Exactly three attempts' worth, then two and a half.
    p.defaults.task_budget = usd(3.0);
    let tasks = run(p.clone(), &state, support::tasks(&["t1"])).await;
    assert_eq!(tasks[0].attempts(), 3);
    assert_eq!(tasks[0].cost().usd, 3.0);
    let (dir2, state2) = state_dir();
    let mut p = priced(dir2.path(), 5);
    p.defaults.task_budget = usd(2.5);
    let tasks = run(p, &state2, support::tasks(&["t1"])).await;
    assert_eq!(tasks[0].attempts(), 3, "the third starts at $2 and counts");
    let (scope, _, detail) = budget_hold(&tasks[0]).unwrap();
    assert_eq!(scope, BudgetScope::Task);
    assert_eq!(detail, "$2.5000 reached: $3.0000 spent");
    drop(dir);
}

#[tokio::test]
async fn a_run_budget_holds_every_task_that_wants_to_start() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 3);
    p.defaults.concurrency = 1;
    p.run_budget = tokens(5 * PER_ATTEMPT);
    let tasks = run(p, &state, support::tasks(&["t1", "t2", "t3", "t4"])).await;
    let attempts: usize = tasks.iter().map(Task::attempts).sum();
    assert_eq!(attempts, 5);
    let t1 = tasks.iter().find(|t| t.id == "t1").unwrap();
    assert_eq!(t1.state, TaskState::Completed);
    for t in tasks.iter().filter(|t| t.id != "t1") {
        assert_eq!(t.state, TaskState::AwaitingReview, "{}", t.id);
        let (scope, _, _) = budget_hold(t).unwrap();
        assert_eq!(scope, BudgetScope::Run);
    }
    let t3 = tasks.iter().find(|t| t.id == "t3").unwrap();
    assert_eq!(t3.attempts(), 0, "held before its first attempt");
    assert_eq!(budget_hold(t3).unwrap().1, "p1");
}

#[tokio::test]
async fn a_run_dollar_budget_stops_at_the_limit() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 2);
    p.defaults.concurrency = 1;
    p.run_budget = usd(3.0);
    let tasks = run(p, &state, support::tasks(&["t1", "t2", "t3"])).await;
    let spent: f64 = tasks.iter().map(|t| t.cost().usd).sum();
    assert_eq!(spent, 3.0);
    let held = tasks
        .iter()
        .filter(|t| budget_hold(t).is_some_and(|h| h.0 == BudgetScope::Run))
        .count();
    assert_eq!(held, 2);
}

#[tokio::test]
async fn unknown_costs_do_not_pass_a_dollar_budget_until_a_raise_accepts_them() {
    let (dir, state) = state_dir();
    let mut p = pipeline(vec![phase("a"), phase("b"), phase("c")], &[]);
    p.agents
        .insert("scripted".into(), sim_agent("scripted", 100, "house-model"));
    p.defaults.task_budget = usd(100.0);
    let live = start(p.clone(), &state, support::tasks(&["t1"]));
    let snap = live
        .wait_for("a hold", |s| {
            task(s, "t1").state == TaskState::AwaitingReview
        })
        .await;
    let t = task(&snap, "t1");
    assert_eq!(t.attempts(), 1);
    let (_, phase, detail) = budget_hold(t).unwrap();
    assert_eq!(phase, "b");
    assert!(detail.contains("1 attempt(s) of unknown cost"), "{detail}");
    let refused = live
        .act("t1", baton::engine::Action::Approve, None)
        .await
        .unwrap_err();
    assert!(refused.contains("budget is still reached"), "{refused}");
    // The same figure again: the operator accepts the unpriced attempt.
    raise(&live, Some("t1"), Some(100.0), None).await;
    live.act("t1", baton::engine::Action::Approve, None)
        .await
        .unwrap();
    let snap = live
        .wait_for("the next hold", |s| {
            let t = task(s, "t1");
            t.state == TaskState::AwaitingReview && t.attempts() == 2
        })
        .await;
    assert_eq!(budget_hold(task(&snap, "t1")).unwrap().1, "c");
    live.stop().await;
    drop(dir);
}

#[tokio::test]
async fn raising_a_task_budget_resumes_it_and_a_restart_keeps_the_raise() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 5);
    p.defaults.task_budget = tokens(2 * PER_ATTEMPT);
    let live = start(p.clone(), &state, support::tasks(&["t1"]));
    live.wait_for("the hold", |s| {
        task(s, "t1").state == TaskState::AwaitingReview
    })
    .await;
    let lower = live
        .handle
        .send(Command::RaiseBudget {
            task: Some("t1".into()),
            usd: None,
            tokens: Some(100),
            by: Actor::engine(),
        })
        .await
        .unwrap_err();
    assert!(lower.0.contains("budgets only go up"), "{lower}");
    raise(&live, Some("t1"), None, Some(4 * PER_ATTEMPT)).await;
    live.act("t1", baton::engine::Action::Approve, None)
        .await
        .unwrap();
    let snap = live
        .wait_for("two more phases", |s| {
            let t = task(s, "t1");
            t.state == TaskState::AwaitingReview && t.attempts() == 4
        })
        .await;
    let t = task(&snap, "t1");
    assert_eq!(completed(t), 4);
    assert_eq!(t.budget.tokens, Some(4 * PER_ATTEMPT));
    live.stop().await;

    // A new engine on the same folder keeps the raise: the budget is still
    // reached, at the raised figure.
    let live = start(p.clone(), &state, Vec::new());
    let snap = live.wait_for("the reload", |_| true).await;
    let t = task(&snap, "t1");
    assert_eq!(t.budget.tokens, Some(4 * PER_ATTEMPT));
    let (_, phase, detail) = budget_hold(t).unwrap();
    assert_eq!(phase, "p5");
    assert_eq!(detail, "700 tokens reached: 700 used");
    raise(&live, Some("t1"), None, Some(5 * PER_ATTEMPT)).await;
    live.act("t1", baton::engine::Action::Approve, None)
        .await
        .unwrap();
    live.wait_for("completion", |s| {
        task(s, "t1").state == TaskState::Completed
    })
    .await;
    live.stop().await;
}

#[tokio::test]
async fn a_run_raise_is_journaled_and_kept_across_a_restart() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 1);
    p.defaults.concurrency = 1;
    p.run_budget = usd(2.0);
    let live = start(p.clone(), &state, support::tasks(&["t1", "t2", "t3"]));
    live.wait_for("the third held", |s| {
        task(s, "t3").state == TaskState::AwaitingReview
    })
    .await;
    raise(&live, None, Some(3.0), None).await;
    live.stop().await;

    let live = start(p.clone(), &state, Vec::new());
    let snap = live.wait_for("the reload", |_| true).await;
    assert_eq!(snap.budget.run_limits().usd, Some(3.0));
    live.act("t3", baton::engine::Action::Approve, None)
        .await
        .expect("room for one more attempt");
    let snap = live
        .wait_for("t3 done", |s| task(s, "t3").state == TaskState::Completed)
        .await;
    let spent: f64 = snap.tasks.iter().map(|t| t.cost().usd).sum();
    assert_eq!(spent, 3.0);
    live.stop().await;
    // The store says who raised it.
    let raises = raises_in_store(&state);
    assert_eq!(raises.len(), 1, "{raises:?}");
    assert!(raises[0].1.contains("\"user\":\"tester\""), "{raises:?}");
}

/// The run's `budget_raised` events in the store: seq and body.
fn raises_in_store(state: &Path) -> Vec<(i64, String)> {
    let db = rusqlite::Connection::open(state.join("baton.db")).unwrap();
    let mut stmt = db
        .prepare("SELECT seq, body FROM events WHERE kind = 'budget_raised' AND task IS NULL ORDER BY seq")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[tokio::test]
async fn a_run_raise_is_recorded_once_and_holds_however_long_the_run() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 1);
    p.run_budget = usd(10_000.0);
    let live = start(p.clone(), &state, Vec::new());
    raise(&live, None, Some(20_000.0), None).await;
    live.stop().await;
    let first = raises_in_store(&state);
    assert_eq!(first.len(), 1);

    // Much work after it: the raise is neither copied forward nor lost.
    let n = 2000;
    let inputs = (0..n)
        .map(|i| input(&format!("t{i:04}"), serde_json::json!({})))
        .collect();
    let live = start(p.clone(), &state, inputs);
    live.wait_for("every task done", |s| {
        s.tasks.iter().all(|t| t.state == TaskState::Completed)
    })
    .await;
    live.stop().await;
    assert_eq!(raises_in_store(&state), first, "recorded once, never again");

    let live = start(p, &state, Vec::new());
    let snap = live.wait_for("the reload", |_| true).await;
    assert_eq!(snap.budget.run_limits().usd, Some(20_000.0));
    live.stop().await;
}

#[tokio::test]
async fn tasks_let_go_after_a_raise_still_keep_to_the_concurrency() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    let (_dir, state) = state_dir();
    let mut p = pipeline(vec![phase("only")], &[]);
    p.defaults.concurrency = 2;
    // The scripted agent reports 150 tokens a call: two calls fill it.
    p.run_budget = tokens(300);
    let agent = Arc::new(
        Scripted::new(|_| ok(serde_json::json!({})))
            .with_delay(std::time::Duration::from_millis(30)),
    );
    let ids = ["t1", "t2", "t3", "t4", "t5", "t6"];
    let live = Live::start(p, &state, agent.clone(), support::tasks(&ids));
    live.wait_for("four held", |s| {
        s.tasks
            .iter()
            .filter(|t| t.state == TaskState::AwaitingReview)
            .count()
            == 4
    })
    .await;
    raise(&live, None, None, Some(100_000)).await;
    for id in &ids[2..] {
        live.act(id, baton::engine::Action::Approve, None)
            .await
            .unwrap();
    }
    live.wait_for("all done", |s| {
        s.tasks.iter().all(|t| t.state == TaskState::Completed)
    })
    .await;
    assert_eq!(agent.calls.load(Ordering::SeqCst), 6);
    assert!(agent.max_in_flight.load(Ordering::SeqCst) <= 2);
    live.stop().await;
}

#[tokio::test]
async fn a_task_held_by_its_budget_can_be_cancelled_or_rejected() {
    let (dir, state) = state_dir();
    let mut p = priced(dir.path(), 3);
    p.defaults.task_budget = tokens(PER_ATTEMPT);
    let live = start(p, &state, support::tasks(&["t1", "t2"]));
    live.wait_for("both held", |s| {
        s.tasks.iter().all(|t| t.state == TaskState::AwaitingReview)
    })
    .await;
    live.act("t1", baton::engine::Action::Cancel, None)
        .await
        .unwrap();
    live.act("t2", baton::engine::Action::Reject, Some("too dear"))
        .await
        .unwrap();
    let snap = live.wait_for("settled", |_| true).await;
    assert_eq!(task(&snap, "t1").state, TaskState::Cancelled);
    let t2 = task(&snap, "t2");
    assert_eq!(t2.state, TaskState::Failed);
    assert_eq!(
        t2.finish_reason.as_deref(),
        Some("rejected at p2: too dear")
    );
    assert!(snap.tasks.iter().all(|t| t.attempts() == 1));
    live.stop().await;
}
