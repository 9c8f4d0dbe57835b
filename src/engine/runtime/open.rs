//! Opening an engine on a run: the store, the tasks in flight, the agents
//! and their limits, the price table.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::Arc;

use tokio::sync::{broadcast, mpsc};

use super::super::backoff::Jitter;
use super::super::budget::{Average, Spend};
use super::super::cost::{PriceTable, PricingError};
use super::super::live::LIVE_CAPACITY;
use super::super::rate_limit::RateLimiter;
use super::super::run_state::RunState;
use super::attempts::Attempts;
use super::cache_flights::CacheFlights;
use super::checkpoint::Checkpoint;
use super::fleet;
use super::retry_timers::RetryTimers;
use super::{AgentSlot, Engine, EngineError, EngineOptions};
use crate::agents::{self, Agents};
use crate::secrets::Secrets;
use crate::spec::Pipeline;
use crate::store::{RunMeta, TaskRow};

impl Engine {
    /// Takes the state folder, recovers what is in it, and gets ready to run.
    pub fn open(
        pipeline: Pipeline,
        state_dir: &Path,
        opts: EngineOptions,
    ) -> Result<Engine, EngineError> {
        Engine::open_with_agents(pipeline, state_dir, opts, Agents::new())
    }

    /// As [`Engine::open`], with Rust agents standing in for the pipeline's
    /// agents of the same names: its `kind = "rust"` agents, which nothing
    /// else can run, and any other it should not run its own way.
    ///
    /// ```
    /// use baton::{Agents, Engine, EngineOptions, InputTask, PhaseBuilder, Pipeline, Reply, TaskState, agent_fn};
    /// use serde_json::json;
    ///
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let pipeline = Pipeline::builder("tickets")
    ///     .rust_agent("planner")
    ///     .phase(PhaseBuilder::new("plan", "planner"))
    ///     .build()?;
    /// let agents = Agents::new().with(
    ///     "planner",
    ///     agent_fn(|req| async move {
    ///         Reply::output(json!({"plan": format!("steps for {}", req.task.id)}))
    ///     }),
    /// );
    /// let state = tempfile::tempdir()?;
    /// let mut engine = Engine::open_with_agents(pipeline, state.path(), EngineOptions::default(), agents)?;
    /// engine.submit(vec![InputTask::new("T-1", json!({"title": "fix the login"}))]).await?;
    /// let summary = engine.run().await?;
    /// assert_eq!(summary.count(TaskState::Completed), 1);
    /// assert_eq!(summary.exit_code(), 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    pub fn open_with_agents(
        pipeline: Pipeline,
        state_dir: &Path,
        opts: EngineOptions,
        registered: Agents,
    ) -> Result<Engine, EngineError> {
        let prices = load_prices(&pipeline)?;
        let (secrets, secret_warnings) = Secrets::of(&pipeline);
        let secrets = Arc::new(secrets);
        // Agents first: one that cannot work stops the run before the state
        // folder is touched.
        let mut agents = Vec::new();
        let mut by_name = HashMap::new();
        for (name, spec) in &pipeline.agents {
            by_name.insert(name.clone(), agents.len());
            agents.push(AgentSlot {
                name: name.clone(),
                agent: agents::build(spec),
                limit: spec.max_parallel,
                inflight: 0,
                waiting: VecDeque::new(),
                limiter: RateLimiter::new(spec.rpm, spec.tpm, opts.rate_window),
                average: Average::default(),
                routes: spec.routes.clone(),
                fleet: fleet::AgentShare::default(),
            });
        }
        for (name, agent) in registered.into_map() {
            match by_name.get(&name) {
                Some(&i) => agents[i].agent = agent,
                None => {
                    return Err(EngineError::AgentNotReady(format!(
                        "a Rust agent is registered as \"{name}\", but the pipeline has no agent of that name (its agents: {}); declare it with [agents.{name}] kind = \"rust\", or register it under one of those names",
                        pipeline
                            .agents
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    )));
                }
            }
        }
        let phase_agents: Vec<Vec<usize>> = pipeline
            .phases
            .iter()
            .map(|p| match &p.role {
                Some(role) => pipeline.roles[role].iter().map(|a| by_name[a]).collect(),
                None => vec![by_name[&p.agent]],
            })
            .collect();
        if opts.dispatch {
            for (i, slot) in agents.iter().enumerate() {
                if phase_agents.iter().any(|list| list.contains(&i)) {
                    slot.agent.ready().map_err(EngineError::AgentNotReady)?;
                }
            }
        }
        let phase_ids: Vec<String> = pipeline.phases.iter().map(|p| p.id.clone()).collect();
        let meta = RunMeta {
            pipeline: pipeline.name.clone(),
            phases: phase_ids.clone(),
        };
        let (store, recovered, stored) = opts.store.open(state_dir, &meta)?;
        if let Some(stored) = &stored
            && stored.phases != phase_ids
        {
            return Err(EngineError::PipelineMismatch {
                dir: state_dir.to_path_buf(),
                stored: stored.pipeline.clone(),
                found: stored.phases.join(", "),
                pipeline: pipeline.name.clone(),
                expected: phase_ids.join(", "),
            });
        }
        // The totals hold every finished attempt of the run.
        let run_spend = Spend {
            cost: recovered.totals.cost(),
            tokens: recovered.totals.tokens,
        };
        for (_, task) in &recovered.tasks {
            for a in task.phases.iter().flat_map(|p| &p.attempts) {
                if let Some(&i) = by_name.get(&a.agent)
                    && a.outcome.is_some()
                {
                    agents[i].average.add(a.usage.as_ref(), a.cost_usd);
                }
            }
        }
        let (results_tx, results_rx) = mpsc::unbounded_channel();
        let (requests_tx, requests_rx) = mpsc::channel(256);
        let meta_pending = stored.is_none_or(|m| m != meta).then_some(meta);
        let mut checkpoint = Checkpoint::new(recovered.last_seq, meta_pending, secrets.clone());
        let mut tasks = HashMap::with_capacity(recovered.tasks.len());
        for (ord, task) in recovered.tasks {
            checkpoint.hold(task.id.clone(), ord, TaskRow::of(&task, ord));
            tasks.insert(task.id.clone(), task);
        }
        let reader = store.reader()?;
        let started_at = opts.clock.now();
        let cache = CacheFlights::new(&pipeline);
        let mut engine = Engine {
            pipeline: Arc::new(pipeline),
            phase_ids,
            agents,
            phase_agents,
            prices: Arc::new(prices),
            store,
            state_dir: state_dir.to_path_buf(),
            opts,
            tasks,
            checkpoint,
            last_ord: recovered.last_ord,
            pending_cursor: 0,
            pending_left: true,
            queue: VecDeque::new(),
            slots: HashSet::new(),
            timers: RetryTimers::default(),
            running: Attempts::default(),
            results_tx,
            results_rx,
            live: broadcast::channel(LIVE_CAPACITY).0,
            requests_tx,
            requests_rx,
            run: RunState::of(&recovered.run_events),
            stopping: false,
            rate_wake: None,
            run_spend,
            jitter: Jitter::from_clock(),
            started_at,
            warnings: recovered
                .warnings
                .into_iter()
                .chain(secret_warnings)
                .collect(),
            reader,
            secrets,
            has_fan_out: false,
            cache,
            held_offline: false,
            fleet_every: None,
            fleet_share: fleet::RunShare::default(),
            fleet_budget: fleet::BudgetGate::default(),
        };
        engine.has_fan_out = engine.pipeline.phases.iter().any(|p| p.fan_out.is_some());
        engine.resume_recovered();
        if engine.store.is_shared() {
            engine.fleet_every = Some(fleet::interval());
            engine.fleet_share.shared = true;
            for slot in &mut engine.agents {
                slot.fleet =
                    fleet::AgentShare::shared(slot.limit, slot.limiter.rpm(), slot.limiter.tpm());
            }
        }
        Ok(engine)
    }
}

fn load_prices(pipeline: &Pipeline) -> Result<PriceTable, PricingError> {
    let path = pipeline.pricing.clone().or_else(|| {
        let beside = pipeline.base_dir.join("pricing.toml");
        beside.is_file().then_some(beside)
    });
    match path {
        Some(path) => PriceTable::with_file(&path),
        None => Ok(PriceTable::built_in()),
    }
}
