//! Shared test helpers: pipelines built in code, agents whose replies a test
//! scripts, and a running engine a test can steer and watch.
#![allow(dead_code)]

pub mod pg_cluster;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use baton::agents::{Agent, AgentRequest, BoxFuture, CallContext, CallResult, Reply};
use baton::engine::cost::Usage;
use baton::engine::{
    Action, Actor, Command, Engine, EngineHandle, EngineOptions, RunSnapshot, RunSummary, Task,
};
use baton::spec::Pipeline;
use baton::spec::input::InputTask;
use baton::spec::model::*;
use serde_json::{Value, json};

pub fn phase(id: &str) -> PhaseSpec {
    PhaseSpec {
        id: id.into(),
        agent: "scripted".into(),
        role: None,
        after: Vec::new(),
        when: Vec::new(),
        when_condition: None,
        on_failure: OnFailure::Stop,
        review: ReviewMode::Never,
        required_output: Vec::new(),
        output_schema: None,
        timeout: Duration::from_secs(30),
        retry: RetryPolicy {
            max_attempts: 3,
            backoff: Backoff::Exponential,
            initial_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            jitter: 0.0,
        },
        disabled: None,
        fan_out: None,
        cache: None,
        send_back: None,
    }
}

/// A pipeline over phases; a phase with no `after` follows the one before.
pub fn pipeline(mut phases: Vec<PhaseSpec>, explicit_after: &[(&str, &[&str])]) -> Pipeline {
    let ids: Vec<String> = phases.iter().map(|p| p.id.clone()).collect();
    for (i, p) in phases.iter_mut().enumerate() {
        if let Some((_, deps)) = explicit_after.iter().find(|(id, _)| *id == p.id) {
            p.after = deps
                .iter()
                .map(|d| ids.iter().position(|x| x == d).expect("known phase"))
                .collect();
        } else if i > 0 {
            p.after = vec![i - 1];
        }
    }
    let mut agents = BTreeMap::new();
    agents.insert("scripted".to_string(), sim_agent("scripted", 10, "sim"));
    Pipeline {
        name: "test".into(),
        source: "test.toml".into(),
        base_dir: std::env::temp_dir(),
        defaults: Defaults::default(),
        agents,
        phases,
        pricing: None,
        mask: Vec::new(),
        secret_env: Vec::new(),
        run_budget: BudgetLimits::default(),
        roles: BTreeMap::new(),
        output_uses: Vec::new(),
    }
}

/// A simulator that answers at once, never fails, and reports `output_tokens`
/// output tokens and `output_tokens / 4 + 50` input tokens on `model`.
pub fn sim_agent(name: &str, output_tokens: u64, model: &str) -> AgentSpec {
    AgentSpec {
        name: name.into(),
        max_parallel: None,
        rpm: None,
        tpm: None,
        routes: Vec::new(),
        kind: AgentKind::Sim(SimSpec {
            latency: Range {
                lo: Duration::ZERO,
                hi: Duration::ZERO,
            },
            tokens: Range {
                lo: output_tokens,
                hi: output_tokens,
            },
            fail_rate: 0.0,
            fatal_rate: 0.0,
            block_rate: 0.0,
            review_rate: 0.0,
            send_back_rate: 0.0,
            model: model.into(),
            seed: 1,
            output_fields: Vec::new(),
        }),
    }
}

type Script = dyn Fn(&AgentRequest) -> CallResult + Send + Sync;

/// An agent whose every reply comes from a closure; counts calls and the
/// most calls in flight at once.
pub struct Scripted {
    script: Arc<Script>,
    pub delay: Duration,
    pub calls: Arc<AtomicUsize>,
    in_flight: Arc<AtomicUsize>,
    pub max_in_flight: Arc<AtomicUsize>,
    pub requests: Arc<std::sync::Mutex<Vec<AgentRequest>>>,
}

impl Scripted {
    pub fn new(f: impl Fn(&AgentRequest) -> CallResult + Send + Sync + 'static) -> Scripted {
        Scripted {
            script: Arc::new(f),
            delay: Duration::ZERO,
            calls: Arc::default(),
            in_flight: Arc::default(),
            max_in_flight: Arc::default(),
            requests: Arc::default(),
        }
    }

    pub fn with_delay(mut self, d: Duration) -> Scripted {
        self.delay = d;
        self
    }

    pub fn requests_for(&self, phase: &str) -> Vec<AgentRequest> {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|r| r.phase == phase)
            .cloned()
            .collect()
    }
}

impl Agent for Scripted {
    fn model(&self) -> Option<&str> {
        Some("claude-sonnet-4-5")
    }

    fn call(&self, request: Arc<AgentRequest>, _ctx: CallContext) -> BoxFuture<CallResult> {
        let script = self.script.clone();
        let delay = self.delay;
        let calls = self.calls.clone();
        let in_flight = self.in_flight.clone();
        let max = self.max_in_flight.clone();
        self.requests.lock().unwrap().push((*request).clone());
        Box::pin(async move {
            calls.fetch_add(1, Ordering::SeqCst);
            let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            max.fetch_max(now, Ordering::SeqCst);
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = script(&request);
            in_flight.fetch_sub(1, Ordering::SeqCst);
            result
        })
    }
}

pub fn ok(output: Value) -> CallResult {
    CallResult {
        reply: Ok(Reply::Output { output }),
        usage: Some(Usage {
            model: None,
            input_tokens: 100,
            output_tokens: 50,
            ..Usage::default()
        }),
        trace: vec!["working".into()],
        http: None,
        retry_after: None,
    }
}

pub fn reply(reply: Reply) -> CallResult {
    CallResult {
        reply: Ok(reply),
        usage: None,
        trace: Vec::new(),
        http: None,
        retry_after: None,
    }
}

pub fn input(id: &str, v: Value) -> InputTask {
    InputTask {
        id: Some(id.into()),
        input: v,
        origin: "test".into(),
    }
}

pub fn tasks(ids: &[&str]) -> Vec<InputTask> {
    ids.iter().map(|id| input(id, json!({"n": id}))).collect()
}

pub fn opts(exit_when_idle: bool) -> EngineOptions {
    EngineOptions {
        dispatch: true,
        exit_when_idle,
        rate_window: Duration::from_secs(60),
        ..EngineOptions::default()
    }
}

/// Runs to idle and returns the summary and every task as the state folder holds it.
pub async fn run_to_idle(
    p: Pipeline,
    dir: &Path,
    agent: Arc<dyn Agent>,
    inputs: Vec<InputTask>,
) -> (RunSummary, Vec<Task>) {
    let mut engine = Engine::open(p.clone(), dir, opts(true)).expect("open");
    engine.replace_agent("scripted", agent);
    engine.submit(inputs).await.expect("submit");
    let summary = engine.run().await.expect("run");
    (summary, load(p, dir).await)
}

/// Every task in a state folder, in submission order, as its store has it.
pub async fn load(_p: Pipeline, dir: &Path) -> Vec<Task> {
    use baton::store::{ListQuery, RunReader, SqliteReader};
    let reader = SqliteReader::open(dir).expect("open the store");
    let rows = reader.list(&ListQuery::default()).await.expect("list");
    let mut tasks = Vec::with_capacity(rows.len());
    for row in rows {
        tasks.push(reader.task(&row.id).await.expect("read").expect("task"));
    }
    tasks
}

/// An engine running in the background, steered through its handle.
pub struct Live {
    pub handle: EngineHandle,
    pub join: tokio::task::JoinHandle<RunSummary>,
}

impl Live {
    pub fn start(p: Pipeline, dir: &Path, agent: Arc<dyn Agent>, inputs: Vec<InputTask>) -> Live {
        let mut engine = Engine::open(p, dir, opts(false)).expect("open");
        engine.replace_agent("scripted", agent);
        let handle = engine.handle();
        let join = tokio::spawn(async move {
            engine.submit(inputs).await.expect("submit");
            engine.run().await.expect("run")
        });
        Live { handle, join }
    }

    /// Polls snapshots until `cond` holds; fails the test after 20 seconds.
    pub async fn wait_for(&self, what: &str, cond: impl Fn(&RunSnapshot) -> bool) -> RunSnapshot {
        for _ in 0..2000 {
            let snap = self.handle.snapshot().await.expect("engine alive");
            if cond(&snap) {
                return snap;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    pub async fn act(&self, task: &str, action: Action, note: Option<&str>) -> Result<(), String> {
        self.handle
            .send(Command::Act {
                task: task.into(),
                action,
                phase: None,
                note: note.map(str::to_string),
                by: Actor {
                    user: "tester".into(),
                    ssh_client: Some("10.0.0.9".into()),
                },
            })
            .await
            .map_err(|r| r.0)
    }

    pub async fn stop(self) -> RunSummary {
        self.handle.send(Command::Shutdown).await.expect("shutdown");
        self.join.await.expect("engine task")
    }
}

pub fn task<'a>(snap: &'a RunSnapshot, id: &str) -> &'a Task {
    snap.tasks
        .iter()
        .find(|t| t.id == id)
        .expect("task present")
}
