//! The scheduler across tasks: agents' rate limits (rpm, tpm), routing an
//! attempt's model by rules on the task input, and roles that pick the first
//! agent with room. Rate limits run on a short window so that the test sees
//! many windows; the limiter and the recorded start times share one clock.

mod support;

use std::path::Path;
use std::time::Duration;

use baton::engine::{Engine, EngineOptions, Task, TaskState};
use baton::spec::Pipeline;
use baton::spec::input::InputTask;
use baton::spec::model::{Condition, Range, Route};
use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use support::*;

const WINDOW: Duration = Duration::from_millis(100);

async fn run(p: Pipeline, dir: &Path, inputs: Vec<InputTask>) -> Vec<Task> {
    let o = EngineOptions {
        rate_window: WINDOW,
        ..opts(true)
    };
    let mut engine = Engine::open(p.clone(), dir, o).expect("open");
    engine.submit(inputs).await.expect("submit");
    let summary = engine.run().await.expect("run");
    assert_eq!(
        summary.count(TaskState::Completed),
        summary.counts.values().sum::<usize>()
    );
    load(p, dir).await
}

fn many(n: usize) -> Vec<InputTask> {
    (0..n)
        .map(|i| input(&format!("t{i:04}"), json!({"n": i})))
        .collect()
}

/// Every attempt's start time and the tokens it used, in start order.
fn starts(tasks: &[Task]) -> Vec<(Timestamp, u64)> {
    let mut all: Vec<(Timestamp, u64)> = tasks
        .iter()
        .flat_map(|t| &t.phases)
        .flat_map(|p| &p.attempts)
        .map(|a| (a.started_at, a.usage.as_ref().map_or(0, |u| u.tokens())))
        .collect();
    all.sort();
    all
}

/// The most starts, and the most tokens, within any window `(t - W, t]`.
fn busiest_window(starts: &[(Timestamp, u64)]) -> (usize, u64) {
    let w = SignedDuration::try_from(WINDOW).unwrap();
    let (mut most, mut most_tokens) = (0, 0);
    let mut lo = 0;
    let mut tokens = 0u64;
    for hi in 0..starts.len() {
        tokens += starts[hi].1;
        while starts[lo].0 <= starts[hi].0 - w {
            tokens -= starts[lo].1;
            lo += 1;
        }
        most = most.max(hi - lo + 1);
        most_tokens = most_tokens.max(tokens);
    }
    (most, most_tokens)
}

#[tokio::test]
async fn rpm_holds_across_a_thousand_tasks_without_failing_any() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(vec![phase("only")], &[]);
    p.defaults.concurrency = 64;
    let mut agent = sim_agent("scripted", 10, "sim");
    agent.rpm = Some(40);
    p.agents.insert("scripted".into(), agent);
    let tasks = run(p, dir.path(), many(1000)).await;
    assert!(
        tasks.iter().all(|t| t.attempts() == 1),
        "no attempt failed or repeated"
    );
    let starts = starts(&tasks);
    assert_eq!(starts.len(), 1000);
    let (most, _) = busiest_window(&starts);
    assert_eq!(
        most, 40,
        "never more than rpm starts in a window, and the limit is used"
    );
    let span = starts[999].0.duration_since(starts[0].0);
    let windows = span.as_secs_f64() / WINDOW.as_secs_f64();
    assert!(
        windows >= 24.0,
        "1000 starts at 40 a window need 24 windows, took {windows}"
    );
}

#[tokio::test]
async fn tpm_counts_the_tokens_calls_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(vec![phase("only")], &[]);
    p.defaults.concurrency = 32;
    // 100 output + 75 input tokens a call: four calls fill a window.
    let mut agent = sim_agent("scripted", 100, "sim");
    agent.tpm = Some(4 * 175);
    p.agents.insert("scripted".into(), agent);
    let tasks = run(p, dir.path(), many(120)).await;
    let starts = starts(&tasks);
    let (most, most_tokens) = busiest_window(&starts);
    assert_eq!(most_tokens, 4 * 175);
    assert_eq!(most, 4);
}

#[tokio::test]
async fn rpm_counts_every_phase_the_agent_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(vec![phase("a"), phase("b")], &[("b", &[])]);
    p.defaults.concurrency = 16;
    let mut agent = sim_agent("scripted", 10, "sim");
    agent.rpm = Some(7);
    p.agents.insert("scripted".into(), agent);
    let tasks = run(p, dir.path(), many(60)).await;
    let (most, _) = busiest_window(&starts(&tasks));
    assert_eq!(most, 7);
}

#[tokio::test]
async fn routes_pick_the_model_by_the_task_input_and_price_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = pipeline(vec![phase("code")], &[]);
    let mut agent = sim_agent("scripted", 100, "claude-sonnet-4-5");
    agent.routes = vec![
        Route {
            when: Some(Condition::parse("input.risk == 'high'").unwrap()),
            when_text: Some("input.risk == 'high'".into()),
            model: "claude-opus-4".into(),
        },
        Route {
            when: None,
            when_text: None,
            model: "claude-haiku-4-5".into(),
        },
    ];
    p.agents.insert("scripted".into(), agent);
    let inputs = vec![
        input("risky", json!({"risk": "high"})),
        input("calm", json!({"risk": "low"})),
    ];
    let tasks = run(p, dir.path(), inputs).await;
    let attempt =
        |id: &str| tasks.iter().find(|t| t.id == id).unwrap().phases[0].attempts[0].clone();
    let risky = attempt("risky");
    assert_eq!(risky.model.as_deref(), Some("claude-opus-4"));
    let route = risky.route.clone().unwrap();
    assert_eq!(
        (route.index, route.when.as_deref()),
        (0, Some("input.risk == 'high'"))
    );
    assert_eq!(
        risky.usage.as_ref().unwrap().model.as_deref(),
        Some("claude-opus-4")
    );
    // claude-opus-4: 75 in at $15/M, 100 out at $75/M.
    assert!((risky.cost_usd.unwrap() - (75.0 * 15.0 + 100.0 * 75.0) / 1e6).abs() < 1e-12);
    let calm = attempt("calm");
    assert_eq!(calm.model.as_deref(), Some("claude-haiku-4-5"));
    assert_eq!(
        calm.route.as_ref().map(|r| (r.index, r.when.clone())),
        Some((1, None))
    );
    assert!((calm.cost_usd.unwrap() - (75.0 * 1.0 + 100.0 * 5.0) / 1e6).abs() < 1e-12);
}

/// A pipeline of one phase served by the role `reviewer` = [senior, generalist].
fn reviewers(senior_parallel: usize) -> Pipeline {
    let mut review = phase("review");
    review.agent = String::new();
    review.role = Some("reviewer".into());
    let mut p = pipeline(vec![review], &[]);
    p.agents.remove("scripted");
    for (name, parallel) in [("senior", Some(senior_parallel)), ("generalist", None)] {
        let mut a = sim_agent(name, 10, "sim");
        a.max_parallel = parallel;
        if let baton::spec::model::AgentKind::Sim(s) = &mut a.kind {
            s.latency = Range {
                lo: Duration::from_millis(30),
                hi: Duration::from_millis(30),
            };
        }
        p.agents.insert(name.into(), a);
    }
    p.roles.insert(
        "reviewer".into(),
        vec!["senior".into(), "generalist".into()],
    );
    p
}

fn agents_used(tasks: &[Task]) -> Vec<(String, String)> {
    let mut used: Vec<(String, String)> = tasks
        .iter()
        .map(|t| {
            let a = &t.phases[0].attempts[0];
            assert_eq!(a.role.as_deref(), Some("reviewer"));
            (t.id.clone(), a.agent.clone())
        })
        .collect();
    used.sort();
    used
}

#[tokio::test]
async fn a_role_prefers_its_first_agent_and_falls_back_when_it_is_full() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = reviewers(1);
    p.defaults.concurrency = 4;
    // All four start in one pass: the senior takes the first, then is full.
    let tasks = run(p, dir.path(), support::tasks(&["t1", "t2", "t3", "t4"])).await;
    let used = agents_used(&tasks);
    assert_eq!(used[0].1, "senior");
    assert!(used[1..].iter().all(|(_, a)| a == "generalist"), "{used:?}");
}

#[tokio::test]
async fn a_role_keeps_to_its_first_agent_while_it_has_room() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = reviewers(1);
    p.defaults.concurrency = 1;
    let tasks = run(p, dir.path(), support::tasks(&["t1", "t2", "t3"])).await;
    assert!(agents_used(&tasks).iter().all(|(_, a)| a == "senior"));
}

#[tokio::test]
async fn a_role_falls_back_when_its_first_agent_is_rate_limited() {
    let dir = tempfile::tempdir().unwrap();
    let mut p = reviewers(8);
    p.defaults.concurrency = 8;
    p.agents.get_mut("senior").unwrap().rpm = Some(2);
    let tasks = run(p, dir.path(), many(6)).await;
    let used = agents_used(&tasks);
    let senior = used.iter().filter(|(_, a)| a == "senior").count();
    assert_eq!(senior, 2, "{used:?}");
}

/// A retry waits its delay on the monotonic clock: a wall clock stepped back
/// an hour while it waits does not strand it.
#[tokio::test]
async fn a_retry_runs_after_its_delay_though_the_clock_was_stepped_back() {
    use baton::engine::EventKind;
    use baton::engine::clock::SteppedClock;
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let mut a = phase("a");
    a.retry.max_attempts = 2;
    a.retry.initial_delay = Duration::from_millis(300);
    a.retry.max_delay = Duration::from_millis(300);
    let p = pipeline(vec![a], &[]);
    let agent = Arc::new(Scripted::new(|r| {
        if r.attempt == 1 {
            reply(baton::agents::Reply::Error {
                message: "overloaded".into(),
                retryable: true,
            })
        } else {
            ok(json!({"done": true}))
        }
    }));
    let clock = Arc::new(SteppedClock::new());
    let o = EngineOptions {
        clock: clock.clone(),
        ..opts(true)
    };
    let mut engine = Engine::open(p.clone(), dir.path(), o).expect("open");
    engine.replace_agent("scripted", agent);
    let mut events = engine.handle().subscribe();
    engine.submit(tasks(&["t1"])).await.expect("submit");
    let stepper = tokio::spawn(async move {
        while let Ok(ev) = events.recv().await {
            if matches!(ev.kind, EventKind::RetryScheduled { .. }) {
                clock.step(SignedDuration::from_hours(-1));
                return true;
            }
        }
        false
    });
    let summary = tokio::time::timeout(Duration::from_secs(20), engine.run())
        .await
        .expect("the retry is not stranded")
        .expect("run");
    assert!(stepper.await.unwrap(), "a retry was scheduled");
    assert_eq!(summary.count(TaskState::Completed), 1);
    let t1 = &load(p, dir.path()).await[0];
    assert_eq!(t1.phases[0].attempts.len(), 2);
}
