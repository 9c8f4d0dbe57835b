//! Requests from watchers (snapshots, where to follow from) and operator
//! commands, each answered after its events are durable.

use super::super::event::{Action, Command, Decision, EventKind, TaskId};
use super::super::handle::{BudgetSnapshot, FollowStart, Refusal, Request, RunSnapshot};
use super::super::task::Task;
use super::Engine;
use crate::store::StoreError;

impl Engine {
    pub(super) async fn on_request(&mut self, request: Request) -> Result<(), StoreError> {
        match request {
            Request::Snapshot(reply) => {
                // Read on a blocking thread so the engine goes on meanwhile;
                // one read transaction makes the tasks and their seq agree.
                self.send_outbox().await?;
                self.store.flush().await?;
                let mut head = self.snapshot_head();
                let reader = self.reader.clone();
                let runtime = tokio::runtime::Handle::current();
                tokio::task::spawn_blocking(move || match runtime.block_on(reader.all_tasks()) {
                    Ok((tasks, seq)) => {
                        head.tasks = tasks;
                        head.seq = seq;
                        let _ = reply.send(head);
                    }
                    Err(e) => tracing::error!("cannot read the run for a snapshot: {e}"),
                });
            }
            Request::Overview(reply) => {
                self.send_outbox().await?;
                self.store.flush().await?;
                let _ = reply.send(self.snapshot_head().overview());
            }
            Request::Command(command, reply) => {
                let result = self.on_command(command).await?;
                self.send_outbox().await?;
                self.store.flush().await?;
                let _ = reply.send(result);
            }
        }
        Ok(())
    }

    /// Every task as committed, after what this engine has queued.
    pub async fn snapshot(&mut self) -> Result<RunSnapshot, StoreError> {
        self.send_outbox().await?;
        self.store.flush().await?;
        let (tasks, seq) = self.store.all_tasks().await?;
        let mut snapshot = self.snapshot_head();
        snapshot.tasks = tasks;
        snapshot.seq = seq;
        Ok(snapshot)
    }

    /// Where a follower starts: the tasks this engine holds that are under
    /// way, and the totals, after what it has queued is committed.
    pub async fn follow_start(&mut self) -> Result<FollowStart, StoreError> {
        self.send_outbox().await?;
        self.store.flush().await?;
        let (totals, seq) = self.store.totals_at().await?;
        let mut overview = self.snapshot_head().overview();
        if self.store.is_shared() {
            // Others' events up to `seq` are in the totals already.
            overview.seq = seq;
        }
        let mut tasks: Vec<Task> = self
            .tasks
            .values()
            .filter(|t| !t.state.is_final())
            .cloned()
            .collect();
        tasks.sort_by_key(|t| self.checkpoint.ord(&t.id).unwrap_or(i64::MAX));
        Ok(FollowStart {
            overview,
            tasks,
            totals,
        })
    }

    /// A snapshot without its tasks.
    pub(super) fn snapshot_head(&self) -> RunSnapshot {
        RunSnapshot {
            pipeline: self.pipeline.name.clone(),
            phases: self.phase_ids.clone(),
            state_dir: self.state_dir.display().to_string(),
            store: (!self.opts.store.is_folder())
                .then(|| self.opts.store.describe(&self.state_dir)),
            started_at: self.started_at,
            paused: self.run.paused,
            tasks: Vec::new(),
            seq: if self.store.is_shared() {
                self.store.published_seq()
            } else {
                self.checkpoint.seq()
            },
            budget: BudgetSnapshot {
                task: self.pipeline.defaults.task_budget,
                run: self.pipeline.run_budget,
                run_raise: self.run.raise,
            },
            live: Vec::new(),
        }
    }

    /// Carries out an operator's command; `Err` only when the store fails.
    pub(super) async fn on_command(
        &mut self,
        command: Command,
    ) -> Result<Result<(), Refusal>, StoreError> {
        if let Err(refusal) = super::super::bounds::check(&command) {
            return Ok(Err(refusal));
        }
        Ok(match command {
            Command::Act {
                task,
                action,
                phase,
                note,
                by,
            } => {
                match self.hold(&task).await {
                    Ok(true) => {}
                    Ok(false) => return Ok(Err(Refusal(format!("no task {task} in this run")))),
                    Err(StoreError::HeldElsewhere { reason }) => return Ok(Err(Refusal(reason))),
                    Err(e) => return Err(e),
                }
                self.act(task, action, phase, note, by)
            }
            Command::RaiseBudget {
                task,
                usd,
                tokens,
                by,
            } => {
                if let Some(id) = &task {
                    match self.hold(id).await {
                        Ok(true) => {}
                        Ok(false) => return Ok(Err(Refusal(format!("no task {id} in this run")))),
                        Err(StoreError::HeldElsewhere { reason }) => {
                            return Ok(Err(Refusal(reason)));
                        }
                        Err(e) => return Err(e),
                    }
                }
                self.raise_budget(task, usd, tokens, by)
            }
            Command::Pause { by } => {
                if !self.run.paused {
                    self.emit_run_event(EventKind::RunPaused { by });
                }
                Ok(())
            }
            Command::Resume { by } => {
                if self.run.paused {
                    self.emit_run_event(EventKind::RunResumed { by });
                    self.advance_slotted();
                }
                Ok(())
            }
            Command::Shutdown => {
                self.stopping = true;
                Ok(())
            }
        })
    }

    /// A person's decision on a task the engine holds.
    pub(super) fn act(
        &mut self,
        task: TaskId,
        action: Action,
        phase: Option<String>,
        note: Option<String>,
        by: crate::engine::event::Actor,
    ) -> Result<(), Refusal> {
        if action == Action::Approve
            && let Some(refusal) = self.budget_refuses_approval(&task, phase.as_deref())
        {
            return Err(refusal);
        }
        let cancel = action == Action::Cancel;
        let decision = Decision {
            action,
            phase,
            by,
            at: self.opts.clock.now(),
            note,
        };
        self.emit(&task, EventKind::DecisionRecorded { decision })
            .map_err(|e| Refusal(e.to_string()))?;
        if cancel {
            self.abort_task(&task);
        }
        self.cache_after_decision(&task);
        self.advance(&task);
        Ok(())
    }

    /// Stops the attempts of a cancelled or finished task; dropping their
    /// futures kills any child processes.
    pub(super) fn abort_task(&mut self, id: &TaskId) {
        self.abort_items(id);
        for idx in 0..self.phase_ids.len() {
            if let Some(r) = self.running.take(id, idx) {
                r.handle.abort();
                self.fleet_budget.unreserve.add(r.reserved);
                let slot = &mut self.agents[r.agent];
                slot.inflight -= 1;
                slot.limiter.finished(r.ticket, None);
            }
        }
        self.cache_forget(id);
        self.fleet_budget.forget(id);
        for a in 0..self.agents.len() {
            self.agents[a].waiting.retain(|(t, _)| t != id);
            self.start_waiting(a);
        }
    }
}
