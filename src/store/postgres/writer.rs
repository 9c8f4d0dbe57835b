//! The one writer of an engine: a task on the backend's runtime that owns a
//! connection and commits in groups, as the embedded store's writer does.
//!
//! It waits for the next message, takes whatever else is already queued,
//! and writes all of it in one transaction: the events, the task rows they
//! changed, the holds, the totals and the figures per phase, agent and
//! model. Only once PostgreSQL has committed are the events broadcast and
//! `flush` callers released.
//!
//! The totals and figures are read inside the transaction, under a lock
//! every writer of the run takes, and the group's changes are added to
//! them: several engines can share a run without writing over each
//! other's counts.
//!
//! Several engines may write one run (see [`super::fleet`]). Under the
//! commit lock the writer numbers the group's events after the last event
//! committed by anyone, and new tasks after the last task, so that the run
//! has one order; the engine's own numbers stay its own (`durable_seq`).
//! It writes only the tasks whose lease this engine still holds: events of
//! a task another engine took meanwhile are dropped, and the engine is told
//! it lost the task. Events committed by the other engines are read back in
//! order and published with this engine's own, so every follower sees the
//! whole run.
//!
//! When the connection is lost the writer keeps the group, reconnects with
//! backoff and commits it then; a commit whose answer was lost is
//! recognised by the engine's commit count. Nothing queued is dropped:
//! appends wait once the queue is full.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::Client;

use super::fail::{PgFail, PgResult};
use super::fleet::Held;
use super::target::PgTarget;
use super::{cache, read, runtime, stats};
use crate::engine::event::Event;
use crate::engine::state::HoldKind;
use crate::store::cache::{CacheFilter, CacheWrite};
use crate::store::error::StoreError;
use crate::store::model::{Batch, Reserved, RowChange, RunMeta, TaskNo, Totals};
use crate::store::sqlite::read::ts;
use crate::store::sqlite::shared::Shared;
use crate::store::sqlite::writer::{coalesce, event_name};
use crate::store::stats_fold::StatsFold;

/// Batches the queue holds before `append` waits: the backpressure point.
pub(crate) const QUEUE_BATCHES: usize = 1024;
/// At most this many events share one commit.
const MAX_EVENTS_PER_COMMIT: usize = 16_384;
/// The longest wait between attempts to reconnect.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often an idle writer looks for events the other engines committed.
const TAIL_EVERY: Duration = Duration::from_millis(250);
/// Events read back at most at once when publishing others' events.
const TAIL_BATCH: u64 = 8192;

pub(crate) enum Msg {
    Batch(Batch),
    Meta(RunMeta),
    Cache(Vec<CacheWrite>),
    CacheClear(CacheFilter, oneshot::Sender<Result<u64, StoreError>>),
    Flush(oneshot::Sender<Result<u64, StoreError>>),
    /// Tasks the engine claimed: the attempts under way in them, for the
    /// figures (only their start names their agent and model).
    Claimed(Vec<(TaskNo, crate::engine::task::Task)>),
}

impl Msg {
    fn events(&self) -> usize {
        match self {
            Msg::Batch(b) => b.events.len() + b.rows.len(),
            Msg::Cache(w) => w.len(),
            _ => 0,
        }
    }
}

/// What the writer shares with the store's handle besides `Shared`.
#[derive(Debug)]
pub(crate) struct Link {
    /// Whether the writer's connection answers; false while it reconnects.
    pub online: AtomicBool,
    /// The run's last event published to subscribers, by the run's numbers.
    pub published: AtomicU64,
}

pub(crate) struct Writer {
    pub client: Client,
    pub target: PgTarget,
    pub shared: Arc<Shared>,
    pub link: Arc<Link>,
    pub broadcast: broadcast::Sender<Arc<Event>>,
    pub fold: StatsFold,
    /// The advisory lock every writer of this run takes for each commit.
    pub commit_lock: i64,
    /// This engine's number in the run's `engines`.
    pub me: i64,
    /// The tasks whose leases this engine holds.
    pub held: Arc<Held>,
    /// This engine's commits so far, as `engines.commits` counts them.
    pub commits: i64,
    /// How long a lease lasts.
    pub lease: Duration,
}

/// What one commit writes.
struct Group {
    events: Vec<(Option<TaskNo>, Event)>,
    rows: Vec<RowChange>,
    released: Vec<TaskNo>,
    unreserved: Reserved,
    metas: Vec<RunMeta>,
    cache: Vec<CacheWrite>,
}

/// What a commit did.
struct Committed {
    fold: StatsFold,
    /// The run's last seq before this group's events, and the group's
    /// events as numbered in the run; `None` when a lost answer left them
    /// to be read back.
    own: Option<(u64, Vec<Event>)>,
    /// Tasks another engine holds now: their events were dropped.
    lost: Vec<TaskNo>,
}

impl Group {
    fn is_empty(&self) -> bool {
        self.events.is_empty()
            && self.rows.is_empty()
            && self.released.is_empty()
            && self.unreserved.is_zero()
            && self.metas.is_empty()
            && self.cache.is_empty()
    }
}

impl Writer {
    /// Runs until every sender is gone, committing what was queued first;
    /// meanwhile publishes what the other engines commit.
    pub(crate) async fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        loop {
            let first = tokio::select! {
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = tokio::time::sleep(TAIL_EVERY) => {
                    if self.shared.check().is_ok()
                        && let Err(e) = self.publish_others(None).await
                    {
                        tracing::debug!("reading the fleet's events from {}: {e}", self.target);
                    }
                    continue;
                }
            };
            let mut n = first.events();
            let mut msgs = vec![first];
            while n < MAX_EVENTS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(m) => {
                        n += m.events();
                        msgs.push(m);
                    }
                    Err(_) => break,
                }
            }
            self.process(msgs).await;
        }
        // Lets the others take this engine's tasks at once, rather than when
        // its leases run out.
        // Others' events up to now, for followers, before this engine ends.
        if self.shared.check().is_ok()
            && let Err(e) = self.publish_others(None).await
        {
            tracing::debug!("reading the fleet's events from {}: {e}", self.target);
        }
        if let Err(e) = super::fleet::stop(&mut self.client, self.me, self.commit_lock).await {
            tracing::debug!("letting go of the run at {}: {e}", self.target);
        }
    }

    /// Publishes events after the last published, up to `until` (all when
    /// `None`), in the run's order.
    async fn publish_others(&mut self, until: Option<u64>) -> PgResult<()> {
        loop {
            let from = self.link.published.load(Ordering::Acquire);
            if until.is_some_and(|u| from >= u) {
                return Ok(());
            }
            let mut events = read::events_after(&self.client, from, TAIL_BATCH).await?;
            if let Some(u) = until {
                events.retain(|e| e.seq <= u);
            }
            let Some(last) = events.last().map(|e| e.seq) else {
                return Ok(());
            };
            for e in events {
                let _ = self.broadcast.send(Arc::new(e));
            }
            self.link.published.store(last, Ordering::Release);
        }
    }

    async fn process(&mut self, msgs: Vec<Msg>) {
        let mut group = Group {
            events: Vec::new(),
            rows: Vec::new(),
            released: Vec::new(),
            unreserved: Reserved::default(),
            metas: Vec::new(),
            cache: Vec::new(),
        };
        let mut clears = Vec::new();
        let mut waiters = Vec::new();
        for m in msgs {
            match m {
                Msg::Batch(mut b) => {
                    group.events.append(&mut b.events);
                    group.rows.append(&mut b.rows);
                    group.released.append(&mut b.released);
                    group.unreserved.add(b.unreserved);
                }
                Msg::Meta(meta) => group.metas.push(meta),
                Msg::Cache(mut w) => group.cache.append(&mut w),
                Msg::CacheClear(filter, tx) => clears.push((filter, tx)),
                Msg::Flush(tx) => waiters.push(tx),
                Msg::Claimed(tasks) => {
                    for (ord, task) in &tasks {
                        self.fold.hold_open(*ord, task);
                    }
                }
            }
        }
        if !group.is_empty() && self.shared.check().is_ok() {
            group.rows = coalesce(std::mem::take(&mut group.rows));
            match self.commit_surely(&group).await {
                Ok(done) => {
                    self.fold = done.fold;
                    if let Some((_, last)) = group.events.last() {
                        self.shared.durable_seq.store(last.seq, Ordering::Release);
                    }
                    Shared::add(&self.shared.batches, 1);
                    Shared::add(&self.shared.events_written, group.events.len() as u64);
                    Shared::add(&self.shared.rows_written, group.rows.len() as u64);
                    if !done.lost.is_empty() {
                        tracing::warn!(
                            "{} task(s) were taken over by another engine while this one could not renew its leases; their latest events here were dropped",
                            done.lost.len()
                        );
                        self.held.lose(&done.lost);
                    }
                    let published = match done.own {
                        Some((base, own)) => {
                            self.publish_others(Some(base)).await.map(|()| (base, own))
                        }
                        None => self.publish_others(None).await.map(|()| (0, Vec::new())),
                    };
                    match published {
                        Ok((_, own)) => {
                            if let Some(last) = own.last().map(|e| e.seq) {
                                for e in own {
                                    let _ = self.broadcast.send(Arc::new(e));
                                }
                                self.link.published.store(last, Ordering::Release);
                            }
                        }
                        // Followers read what they missed by seq.
                        Err(e) => tracing::debug!("publishing from {}: {e}", self.target),
                    }
                }
                Err(e) => self.fail(e, group.events.first().map(|(_, e)| e.seq)),
            }
        }
        for (filter, tx) in clears {
            let done = match self.shared.check() {
                Err(e) => Err(e),
                Ok(()) => loop {
                    match cache::clear(&self.client, &filter).await {
                        Ok(n) => break Ok(n),
                        Err(e) if e.is_connection() && self.shared.check().is_ok() => {
                            self.reconnect().await
                        }
                        Err(e) => break Err(self.error(&e)),
                    }
                },
            };
            let _ = tx.send(done);
        }
        for w in waiters {
            let _ = w.send(self.shared.check().map(|()| self.shared.durable()));
        }
    }

    /// Commits `group`, reconnecting and trying again for as long as the
    /// connection is what fails.
    async fn commit_surely(&mut self, group: &Group) -> PgResult<Committed> {
        loop {
            let mut fold = self.fold.clone();
            let me = Fleet {
                commit_lock: self.commit_lock,
                me: self.me,
                held: &self.held,
                lease: self.lease,
            };
            match commit(&mut self.client, group, &mut fold, me).await {
                Ok((own, lost, commits)) => {
                    self.commits = commits;
                    return Ok(Committed {
                        fold,
                        own: Some(own),
                        lost,
                    });
                }
                // Another transaction won a lock first: the commit was
                // rolled back whole; it is simply made again.
                Err(e) if e.is_transient() => {
                    tracing::debug!("committing to {} again: {e}", self.target);
                }
                Err(e) if e.is_connection() => {
                    tracing::warn!(
                        "the store at {} stopped answering ({e}); reconnecting, and nothing new starts meanwhile",
                        self.target
                    );
                    self.reconnect().await;
                    if self.shared.check().is_err() {
                        return Err(e);
                    }
                    // The answer to COMMIT may be what was lost.
                    let commits = commits_of(&self.client, self.me).await?;
                    if commits > self.commits {
                        self.commits = commits;
                        let mut fold = self.fold.clone();
                        for (ord, e) in &group.events {
                            fold.apply_event(*ord, &e.kind);
                        }
                        return Ok(Committed {
                            fold,
                            own: None,
                            lost: Vec::new(),
                        });
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Connects again, waiting longer after each failure, up to
    /// `MAX_BACKOFF`; returns once a connection answers.
    async fn reconnect(&mut self) {
        self.link.online.store(false, Ordering::Release);
        let mut wait = Duration::from_millis(100);
        loop {
            tokio::time::sleep(wait).await;
            match runtime::connect(&self.target).await {
                Ok(client) => {
                    self.client = client;
                    self.link.online.store(true, Ordering::Release);
                    tracing::warn!("the store at {} answers again", self.target);
                    return;
                }
                Err(e) => {
                    tracing::debug!("reconnecting to {}: {e}", self.target);
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    fn error(&self, e: &PgFail) -> StoreError {
        StoreError::Postgres {
            at: self.target.to_string(),
            reason: e.to_string(),
        }
    }

    /// Stops all further writes: the engine has applied events that are not
    /// committed, so it must not go on as if they were.
    fn fail(&mut self, e: PgFail, first: Option<u64>) {
        tracing::error!(
            "the store at {}: {e}; nothing from seq {} on was written, and the store takes no more events",
            self.target,
            first.unwrap_or(0)
        );
        self.shared
            .fail_database(self.target.to_string(), e.to_string());
    }
}

/// How many commits `engines` counts for this engine.
async fn commits_of(client: &Client, me: i64) -> PgResult<i64> {
    let row = client
        .query_one("SELECT commits FROM engines WHERE id = $1", &[&me])
        .await?;
    Ok(row.get(0))
}

/// Who commits: the run's commit lock, this engine and its leases.
struct Fleet<'a> {
    commit_lock: i64,
    me: i64,
    held: &'a Held,
    lease: Duration,
}

/// Commits `group`: gives the run's last seq before it with its events as
/// numbered in the run, the tasks it lost, and the engine's commit count.
async fn commit(
    client: &mut Client,
    group: &Group,
    fold: &mut StatsFold,
    fleet: Fleet<'_>,
) -> PgResult<((u64, Vec<Event>), Vec<TaskNo>, i64)> {
    let tx = client.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&fleet.commit_lock])
        .await?;
    // Fencing: tasks whose lease is not this engine's generation any more.
    let known: Vec<TaskNo> = group
        .rows
        .iter()
        .filter(|r| r.old.is_some())
        .map(|r| r.new.ord)
        .collect();
    let mut lost: Vec<TaskNo> = Vec::new();
    if !known.is_empty() {
        for r in tx
            .query(
                "SELECT ord, owner, lease_gen FROM tasks WHERE ord = ANY($1) FOR UPDATE",
                &[&known],
            )
            .await?
        {
            let ord: TaskNo = r.get(0);
            let owner: Option<i64> = r.get(1);
            let generation: i64 = r.get(2);
            if owner != Some(fleet.me) || fleet.held.generation(ord) != Some(generation) {
                lost.push(ord);
            }
        }
    }
    let lost_set: HashSet<TaskNo> = lost.iter().copied().collect();
    // The run's numbers: new tasks after the last task, events after the
    // last event, whoever committed them.
    let (last_ord, last_seq): (i64, i64) = {
        let r = tx
            .query_one(
                "SELECT (SELECT coalesce(max(ord), 0) FROM tasks),                         (SELECT coalesce(max(seq), 0) FROM events)",
                &[],
            )
            .await?;
        (r.get(0), r.get(1))
    };
    let mut ords: HashMap<TaskNo, TaskNo> = HashMap::new();
    let mut next_ord = last_ord;
    for r in group.rows.iter().filter(|r| r.old.is_none()) {
        next_ord += 1;
        ords.insert(r.new.ord, next_ord);
    }
    let run_ord = |o: TaskNo| ords.get(&o).copied().unwrap_or(o);
    let base = last_seq.max(0) as u64;
    let mut events: Vec<(Option<TaskNo>, Event)> = Vec::with_capacity(group.events.len());
    let mut last_of: HashMap<TaskNo, u64> = HashMap::new();
    for (ord, e) in &group.events {
        if ord.is_some_and(|o| lost_set.contains(&o)) {
            continue;
        }
        let ord = ord.map(run_ord);
        let mut e = e.clone();
        e.seq = base + events.len() as u64 + 1;
        if let Some(o) = ord {
            last_of.insert(o, e.seq);
        }
        events.push((ord, e));
    }
    let rows: Vec<RowChange> = group
        .rows
        .iter()
        .filter(|r| !lost_set.contains(&r.new.ord))
        .map(|r| {
            let mut r = r.clone();
            r.new.ord = run_ord(r.new.ord);
            // The row's last event, by the run's numbers; 0 keeps the one
            // stored (GREATEST in the upsert).
            r.new.seq = last_of.get(&r.new.ord).copied().unwrap_or(0);
            r
        })
        .collect();
    // The counts as every writer of the run left them.
    let mut totals = read::totals(&tx).await?;
    fold.reset_stats(stats::read(&tx).await?);
    cache::write(&tx, &group.cache).await?;
    write_events(&tx, &events, &mut totals, fold).await?;
    write_rows(&tx, &rows, &mut totals).await?;
    // New tasks are this engine's until it puts them down (the engine does
    // so with the batch that submits them).
    let new: Vec<TaskNo> = ords.values().copied().collect();
    if !new.is_empty() {
        tx.execute(
            "UPDATE tasks SET owner = $2, lease_gen = 1, \
               lease_until = now() + make_interval(secs => $3) WHERE ord = ANY($1)",
            &[&new, &fleet.me, &fleet.lease.as_secs_f64()],
        )
        .await?;
    }
    let released: Vec<TaskNo> = group
        .released
        .iter()
        .filter(|o| !lost_set.contains(o))
        .map(|o| run_ord(*o))
        .collect();
    if !released.is_empty() {
        tx.execute(
            "UPDATE tasks SET owner = NULL, lease_until = NULL WHERE ord = ANY($1) AND owner = $2",
            &[&released, &fleet.me],
        )
        .await?;
    }
    for meta in &group.metas {
        let text = serde_json::to_string(meta)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('run', $1) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            &[&text],
        )
        .await?;
    }
    write_totals(&tx, &totals).await?;
    stats::write(&tx, fold).await?;
    let commits: i64 = tx
        .query_one(
            "UPDATE engines SET commits = commits + 1, \
               reserved_usd = GREATEST(reserved_usd - $2, 0), \
               reserved_tokens = GREATEST(reserved_tokens - $3, 0) \
             WHERE id = $1 RETURNING commits",
            &[
                &fleet.me,
                &group.unreserved.usd,
                &(group.unreserved.tokens.min(i64::MAX as u64) as i64),
            ],
        )
        .await?
        .get(0);
    tx.commit().await?;
    for ord in new {
        fleet.held.hold(ord, 1);
    }
    fleet.held.let_go(&released);
    let own = events.into_iter().map(|(_, e)| e).collect();
    Ok(((base, own), lost, commits))
}

async fn write_events(
    tx: &tokio_postgres::Transaction<'_>,
    events: &[(Option<TaskNo>, Event)],
    totals: &mut Totals,
    fold: &mut StatsFold,
) -> PgResult<()> {
    if events.is_empty() {
        return Ok(());
    }
    let mut seqs = Vec::with_capacity(events.len());
    let mut tasks = Vec::with_capacity(events.len());
    let mut ats = Vec::with_capacity(events.len());
    let mut kinds = Vec::with_capacity(events.len());
    let mut bodies = Vec::with_capacity(events.len());
    for (ord, e) in events {
        let body = serde_json::to_string(&e.kind)?;
        kinds.push(event_name(&body).to_string());
        bodies.push(body);
        seqs.push(e.seq.min(i64::MAX as u64) as i64);
        tasks.push(*ord);
        ats.push(ts(e.at));
        totals.apply_event(e);
        fold.apply_event(*ord, &e.kind);
    }
    tx.execute(
        "INSERT INTO events(seq, task, at, kind, body) \
         SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[])",
        &[&seqs, &tasks, &ats, &kinds, &bodies],
    )
    .await?;
    Ok(())
}

async fn write_rows(
    tx: &tokio_postgres::Transaction<'_>,
    rows: &[RowChange],
    totals: &mut Totals,
) -> PgResult<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let n = rows.len();
    let mut ord = Vec::with_capacity(n);
    let mut id = Vec::with_capacity(n);
    let mut state = Vec::with_capacity(n);
    let mut phase = Vec::with_capacity(n);
    let mut done = Vec::with_capacity(n);
    let mut total = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut tokens = Vec::with_capacity(n);
    let mut cost = Vec::with_capacity(n);
    let mut unknown = Vec::with_capacity(n);
    let mut holds = Vec::with_capacity(n);
    let mut waiting = Vec::with_capacity(n);
    let mut created = Vec::with_capacity(n);
    let mut updated = Vec::with_capacity(n);
    let mut finished = Vec::with_capacity(n);
    let mut reason = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut attention = Vec::with_capacity(n);
    let mut pos = Vec::with_capacity(n);
    let mut agent = Vec::with_capacity(n);
    let mut model = Vec::with_capacity(n);
    let mut took: Vec<Option<i64>> = Vec::with_capacity(n);
    // Holds: the tasks whose holds are replaced, and the new ones.
    let mut cleared: Vec<i64> = Vec::new();
    let mut h_task = Vec::new();
    let mut h_pos = Vec::new();
    let mut h_kind = Vec::new();
    let mut h_phase = Vec::new();
    let mut h_since = Vec::new();
    let mut h_reason = Vec::new();
    let mut h_review: Vec<Option<String>> = Vec::new();
    let mut h_escalation: Vec<Option<String>> = Vec::new();
    for change in rows {
        let r = &change.new;
        ord.push(r.ord);
        id.push(r.id.as_str());
        state.push(r.state.as_str());
        phase.push(r.phase.as_deref());
        done.push(i64::from(r.phases_done));
        total.push(i64::from(r.phases_total));
        attempts.push(i64::from(r.attempts));
        tokens.push(r.tokens.min(i64::MAX as u64) as i64);
        cost.push(r.cost_usd);
        unknown.push(i64::from(r.cost_unknown));
        holds.push(r.holds.len() as i64);
        waiting.push(r.holds.first().map(|h| ts(h.since)));
        created.push(ts(r.created_at));
        updated.push(ts(r.updated_at));
        finished.push(r.finished_at.map(ts));
        reason.push(r.finish_reason.as_deref());
        seq.push(r.seq.min(i64::MAX as u64) as i64);
        attention.push(i64::from(r.state.attention()));
        pos.push(i64::from(r.phase_pos.unwrap_or(u32::MAX)));
        agent.push(r.agent.as_deref());
        model.push(r.model.as_deref());
        took.push(crate::store::elapsed::took_ns(r));
        let had = change.old.as_ref().is_none_or(|o| !o.holds.is_empty());
        if had {
            cleared.push(r.ord);
        }
        for (i, h) in r.holds.iter().enumerate() {
            h_task.push(r.ord);
            h_pos.push(i as i64);
            h_kind.push(match h.kind {
                HoldKind::Review => "review",
                HoldKind::Blocked => "blocked",
            });
            h_phase.push(h.phase.as_str());
            h_since.push(ts(h.since));
            h_reason.push(h.reason.as_str());
            h_review.push(h.review.as_ref().map(serde_json::to_string).transpose()?);
            h_escalation.push(
                (!h.escalation.is_empty())
                    .then(|| serde_json::to_string(&h.escalation))
                    .transpose()?,
            );
        }
        totals.apply_row(change);
    }
    tx.execute(
        "INSERT INTO tasks(ord, id, state, phase, phases_done, phases_total, attempts, tokens, \
           cost_usd, cost_unknown, holds, waiting_since, created_at, updated_at, finished_at, \
           finish_reason, seq, attention, phase_pos, agent, model, took_ns) \
         SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
           $6::bigint[], $7::bigint[], $8::bigint[], $9::float8[], $10::bigint[], $11::bigint[], \
           $12::text[], $13::text[], $14::text[], $15::text[], $16::text[], $17::bigint[], \
           $18::bigint[], $19::bigint[], $20::text[], $21::text[], $22::bigint[]) \
         ON CONFLICT(ord) DO UPDATE SET state = excluded.state, phase = excluded.phase, \
           phases_done = excluded.phases_done, attempts = excluded.attempts, \
           tokens = excluded.tokens, cost_usd = excluded.cost_usd, \
           cost_unknown = excluded.cost_unknown, holds = excluded.holds, \
           waiting_since = excluded.waiting_since, updated_at = excluded.updated_at, \
           finished_at = excluded.finished_at, finish_reason = excluded.finish_reason, \
           seq = GREATEST(tasks.seq, excluded.seq), attention = excluded.attention, \
           phase_pos = excluded.phase_pos, agent = excluded.agent, model = excluded.model, \
           took_ns = excluded.took_ns",
        &[
            &ord, &id, &state, &phase, &done, &total, &attempts, &tokens, &cost, &unknown, &holds,
            &waiting, &created, &updated, &finished, &reason, &seq, &attention, &pos, &agent,
            &model, &took,
        ],
    )
    .await?;
    if !cleared.is_empty() {
        tx.execute("DELETE FROM holds WHERE task = ANY($1)", &[&cleared])
            .await?;
    }
    if !h_task.is_empty() {
        tx.execute(
            "INSERT INTO holds(task, pos, kind, phase, since, reason, review, escalation) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], \
               $6::text[], $7::text[], $8::text[])",
            &[
                &h_task,
                &h_pos,
                &h_kind,
                &h_phase,
                &h_since,
                &h_reason,
                &h_review,
                &h_escalation,
            ],
        )
        .await?;
    }
    Ok(())
}

async fn write_totals(tx: &tokio_postgres::Transaction<'_>, t: &Totals) -> PgResult<()> {
    let mut keys: Vec<String> = Vec::new();
    let mut values: Vec<String> = Vec::new();
    let mut put = |k: String, v: String| {
        keys.push(k);
        values.push(v);
    };
    put("tasks".into(), t.tasks.to_string());
    for (state, n) in crate::engine::TaskState::ALL.iter().zip(t.states) {
        put(format!("state.{}", state.as_str()), n.to_string());
    }
    put("attempts".into(), t.attempts.to_string());
    put("tokens".into(), t.tokens.to_string());
    put("cost_nano".into(), t.cost_nano.to_string());
    put("cost_unknown".into(), t.cost_unknown.to_string());
    put("holds".into(), t.holds.to_string());
    if let Some(f) = t.first_submitted_at {
        put("first_submitted_at".into(), ts(f));
    }
    if let Some(l) = t.last_change_at {
        put("last_change_at".into(), ts(l));
    }
    for (i, p) in t.phases.iter().enumerate() {
        put(format!("phase.{i}.figures"), serde_json::to_string(p)?);
    }
    tx.execute(
        "INSERT INTO totals(key, value) SELECT * FROM unnest($1::text[], $2::text[]) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        &[&keys, &values],
    )
    .await?;
    Ok(())
}
