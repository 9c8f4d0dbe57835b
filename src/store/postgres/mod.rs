//! The fleet's backend: a run kept in PostgreSQL (`--store postgres://…`),
//! for runs that outgrow one machine or must survive losing one.
//!
//! The tables are those of the embedded store (see [`schema`]); the store
//! works the same way: the engine appends batches, one writer task commits
//! them in groups and publishes them once committed, readers query. Every
//! connection lives on the backend's own runtime ([`runtime`]).

mod cache;
mod cache_claims;
pub mod fail;
pub mod fleet;
pub mod kept;
mod read;
pub mod runtime;
pub mod schema;
mod stats;
pub mod target;
#[cfg(test)]
mod test_db;
mod text;
pub mod tls;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use deadpool_postgres::Pool;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_postgres::Client;

pub use target::PgTarget;

use super::cache::{CacheEntry, CacheFilter, CacheInfo, CacheKey, CacheWrite};
use super::error::StoreError;
use super::model::{Batch, ListQuery, Recovered, RunMeta, StoreStats, TaskNo, TaskRow, Totals};
use super::sqlite::shared::Shared;
use super::stats::RunStats;
use super::stats_fold::StatsFold;
use super::{BROADCAST_CAPACITY, RunReader, RunStore, StoreFuture};
use crate::engine::event::Event;
use crate::engine::task::{Hold, Task};
use fail::{PgFail, PgResult};
use fleet::{Claim, Held};
use writer::{Link, Msg, QUEUE_BATCHES, Writer};

/// The run's own number for the advisory lock every commit takes.
fn commit_lock(schema: &str) -> i64 {
    run_lock(schema, 2)
}

/// The run's own number for one of its advisory locks (`which`: 2 for
/// commits, 3 for the pipeline).
fn run_lock(schema: &str, which: u8) -> i64 {
    // FNV-1a over the schema's name.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes().chain([0, which]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

fn failed(target: &PgTarget, e: PgFail) -> StoreError {
    StoreError::Postgres {
        at: target.to_string(),
        reason: e.to_string(),
    }
}

/// The first connection of a store or reader: a server that does not
/// answer is named by host and port.
async fn first_connection(target: &PgTarget) -> Result<Client, StoreError> {
    runtime::connect(target).await.map_err(|e| match &e {
        PgFail::Db(db) if db.as_db_error().is_none() => StoreError::Unreachable {
            at: target.to_string(),
            host: target.host_port(),
            reason: e.to_string(),
        },
        _ => failed(target, e),
    })
}

/// Read access to a run in PostgreSQL, beside any engines that write it.
pub struct PgReader {
    target: PgTarget,
    pool: Pool,
    phases: Arc<Vec<String>>,
    /// An engine's reads wait out a lost connection (as its writer does)
    /// rather than fail the engine; a command's fail at once.
    patient: bool,
}

/// The longest an engine's read waits for a lost server before failing.
const PATIENCE: std::time::Duration = std::time::Duration::from_secs(120);

impl PgReader {
    /// Connects, and checks that the schema holds a run this build reads.
    pub fn open(target: &PgTarget) -> Result<PgReader, StoreError> {
        let t = target.clone();
        let phases = runtime::block_on(async move {
            let client = match first_connection(&t).await {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let found = schema::version(&client, &t.schema).await?;
            if found == 0 {
                return Ok(Err(StoreError::Postgres {
                    at: t.to_string(),
                    reason: format!(
                        "schema {} holds no baton run\n  help: start one with `baton run PIPELINE --store {t}`",
                        t.schema
                    ),
                }));
            }
            if found > schema::VERSION {
                return Ok(Err(newer(&t, found)));
            }
            Ok(Ok(read::meta(&client).await?.map(|m| m.phases).unwrap_or_default()))
        })
        .map_err(|e| failed(target, e))??;
        Ok(PgReader {
            target: target.clone(),
            pool: runtime::pool(target).map_err(|e| failed(target, e))?,
            phases: Arc::new(phases),
            patient: false,
        })
    }

    /// Runs `f` with a pooled connection on the backend's runtime.
    /// For a patient reader, a query the connection failed is asked again,
    /// waiting longer each time, until the server answers (up to
    /// `PATIENCE`).
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Object, Arc<Vec<String>>) -> Fut + Clone + Send + 'static,
        Fut: Future<Output = PgResult<T>> + Send,
        T: Send + 'static,
    {
        let (pool, phases, patient) = (self.pool.clone(), self.phases.clone(), self.patient);
        runtime::run(async move {
            let started = std::time::Instant::now();
            let mut wait = std::time::Duration::from_millis(100);
            loop {
                let attempt = f.clone();
                let done = match runtime::pooled(&pool).await {
                    Ok(conn) => attempt(conn, phases.clone()).await,
                    Err(e) => Err(e),
                };
                match done {
                    Err(e) if patient && e.is_connection() && started.elapsed() < PATIENCE => {
                        tokio::time::sleep(wait).await;
                        wait = (wait * 2).min(std::time::Duration::from_secs(5));
                    }
                    done => return done,
                }
            }
        })
        .await
        .map_err(|e| failed(&self.target, e))
    }
}

impl PgReader {
    /// The run's engines, newest first; stopped ones too when `all`.
    pub async fn engines(&self, all: bool) -> Result<Vec<fleet::EngineInfo>, StoreError> {
        self.with(move |c, _| async move { fleet::engines(&c, all).await })
            .await
    }
}

fn newer(target: &PgTarget, found: i64) -> StoreError {
    StoreError::Postgres {
        at: target.to_string(),
        reason: format!(
            "the run's tables have schema version {found}, newer than this baton understands ({}); use the baton that wrote them, or a newer one",
            schema::VERSION
        ),
    }
}

impl RunReader for PgReader {
    fn holder<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<String>> {
        let id = id.to_string();
        Box::pin(self.with(move |c, _| async move { fleet::holder(&c, &id).await }))
    }
    fn meta(&self) -> StoreFuture<'_, Option<RunMeta>> {
        Box::pin(self.with(|c, _| async move { read::meta(&**c).await }))
    }
    fn totals(&self) -> StoreFuture<'_, Totals> {
        Box::pin(self.with(|c, _| async move { read::totals(&**c).await }))
    }
    fn run_stats(&self) -> StoreFuture<'_, RunStats> {
        Box::pin(self.with(|c, _| async move { stats::read(&**c).await }))
    }
    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Vec<TaskRow>> {
        let q = q.clone();
        Box::pin(self.with(move |c, _| async move { read::list(&**c, &q).await }))
    }
    fn count<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, u64> {
        let q = q.clone();
        Box::pin(self.with(move |c, _| async move { read::count(&**c, &q).await }))
    }
    fn row<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskRow>> {
        let id = id.to_string();
        Box::pin(self.with(move |c, _| async move { read::row_by_id(&**c, &id).await }))
    }
    fn task<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Task>> {
        let id = id.to_string();
        Box::pin(self.with(move |c, phases| async move {
            Ok(read::task(&**c, &id, &phases).await?.map(|(_, t)| t))
        }))
    }
    fn task_before<'a>(&'a self, id: &'a str, seq: u64) -> StoreFuture<'a, Option<Task>> {
        let id = id.to_string();
        Box::pin(
            self.with(
                move |c, phases| async move { read::task_before(&**c, &id, seq, &phases).await },
            ),
        )
    }
    fn waiting(&self, offset: u64, limit: Option<u64>) -> StoreFuture<'_, Vec<(String, Hold)>> {
        Box::pin(self.with(move |c, _| async move { read::waiting(&**c, offset, limit).await }))
    }
    fn events_after(&self, seq: u64, limit: u64) -> StoreFuture<'_, Vec<Event>> {
        Box::pin(self.with(move |c, _| async move { read::events_after(&**c, seq, limit).await }))
    }
    fn run_events(&self) -> StoreFuture<'_, Vec<Event>> {
        Box::pin(self.with(|c, _| async move { read::run_events(&**c).await }))
    }
    fn last_seq(&self) -> StoreFuture<'_, u64> {
        Box::pin(self.with(|c, _| async move { read::last_seq(&**c).await }))
    }
    fn totals_at(&self) -> StoreFuture<'_, (Totals, u64)> {
        Box::pin(self.with(|mut c, _| async move {
            // One snapshot: totals and seq from the same commits.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await?;
            let totals = read::totals(&*tx).await?;
            let seq = read::last_seq(&*tx).await?;
            tx.commit().await?;
            Ok((totals, seq))
        }))
    }
    fn all_tasks(&self) -> StoreFuture<'_, (Vec<Task>, u64)> {
        Box::pin(self.with(|c, phases| async move { read::all_tasks(&**c, &phases).await }))
    }
    fn location(&self) -> String {
        self.target.to_string()
    }
    fn cache_get<'a>(&'a self, keys: &'a [CacheKey]) -> StoreFuture<'a, Vec<Option<CacheEntry>>> {
        let keys = keys.to_vec();
        Box::pin(self.with(move |c, _| async move { cache::get(&**c, &keys).await }))
    }
    fn cache_list<'a>(&'a self, filter: &'a CacheFilter) -> StoreFuture<'a, Vec<CacheInfo>> {
        let filter = filter.clone();
        Box::pin(self.with(move |c, _| async move { cache::list(&**c, &filter).await }))
    }
}

/// A run in PostgreSQL, opened by its engine: holds the run (an advisory
/// lock on the writer's connection) until closed or dropped.
pub struct PgStore {
    target: PgTarget,
    shared: Arc<Shared>,
    link: Arc<Link>,
    /// `None` once closing: the writer stops when every sender is gone.
    tx: Option<mpsc::Sender<Msg>>,
    broadcast: broadcast::Sender<Arc<Event>>,
    last_queued: Mutex<u64>,
    writer: Option<tokio::task::JoinHandle<()>>,
    /// Told when the writer has stopped, for `Drop`, which cannot await.
    stopped: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    reader: Arc<PgReader>,
    /// This engine's number in the run's `engines`.
    me: i64,
    held: Arc<Held>,
    lease: Duration,
    /// The run's commit lock, which reservations of its budget take too.
    commit_lock: i64,
    /// Renews this engine's leases until the store closes.
    heartbeat: tokio::task::JoinHandle<()>,
}

impl PgStore {
    /// Connects, creates or migrates the run's tables, joins the run's
    /// engines, and reads back what the engine needs to carry on. Tasks come
    /// to the engine only by claiming them (`pending_after`, `load`), so
    /// nothing is handed over here: the others' work stays theirs.
    pub fn open(
        target: &PgTarget,
        meta: &RunMeta,
    ) -> Result<(PgStore, Recovered, Option<RunMeta>), StoreError> {
        let t = target.clone();
        let given_phases = meta.phases.clone();
        let lease = fleet::lease();
        let opened = runtime::block_on(async move { Ok(open(t, lease).await) })
            .map_err(|e| failed(target, e))??;
        let (client, recovered, stored, fold, me) = opened;
        let shared = Arc::new(Shared::new(recovered.last_seq));
        let link = Arc::new(Link {
            online: AtomicBool::new(true),
            published: AtomicU64::new(recovered.last_seq),
        });
        let held = Arc::new(Held::default());
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let (stopped_tx, stopped) = std::sync::mpsc::sync_channel(1);
        let writer = Writer {
            client,
            target: target.clone(),
            shared: shared.clone(),
            link: link.clone(),
            broadcast: broadcast.clone(),
            fold,
            commit_lock: commit_lock(&target.schema),
            me,
            held: held.clone(),
            commits: 0,
            lease,
        };
        let writer = runtime::spawn(async move {
            writer.run(rx).await;
            let _ = stopped_tx.send(());
        });
        let phases = stored
            .as_ref()
            .map(|m| m.phases.clone())
            .unwrap_or(given_phases);
        let reader = PgReader {
            target: target.clone(),
            pool: runtime::pool(target).map_err(|e| failed(target, e))?,
            phases: Arc::new(phases),
            patient: true,
        };
        let heartbeat = runtime::spawn(beat(
            reader.pool.clone(),
            me,
            lease,
            commit_lock(&target.schema),
            held.clone(),
        ));
        let store = PgStore {
            target: target.clone(),
            shared,
            link,
            tx: Some(tx),
            broadcast,
            last_queued: Mutex::new(recovered.last_seq),
            writer: Some(writer),
            stopped: Mutex::new(Some(stopped)),
            reader: Arc::new(reader),
            me,
            held,
            lease,
            commit_lock: commit_lock(&target.schema),
            heartbeat,
        };
        Ok((store, recovered, stored))
    }

    /// Runs `f` on the backend's runtime with a pooled connection, this
    /// engine's number, its leases and the lease's length.
    async fn claim<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Object, Arc<Vec<String>>, i64, Arc<Held>, Duration) -> Fut
            + Clone
            + Send
            + 'static,
        Fut: Future<Output = PgResult<T>> + Send,
        T: Send + 'static,
    {
        let (me, held, lease) = (self.me, self.held.clone(), self.lease);
        self.reader
            .with(move |c, phases| f(c, phases, me, held, lease))
            .await
    }

    /// Hands the writer the attempts under way in tasks just claimed,
    /// before anything the engine appends about them.
    async fn tell_claimed(&self, tasks: Vec<(TaskNo, Task)>) -> Result<(), StoreError> {
        self.sender()?
            .send(Msg::Claimed(tasks))
            .await
            .map_err(|_| StoreError::Closed)
    }

    fn sender(&self) -> Result<&mpsc::Sender<Msg>, StoreError> {
        self.shared.check()?;
        self.tx.as_ref().ok_or(StoreError::Closed)
    }
}

type Opened = (Client, Recovered, Option<RunMeta>, StatsFold, i64);

async fn open(target: PgTarget, lease: Duration) -> Result<Opened, StoreError> {
    let mut client = first_connection(&target).await?;
    let at = |e: PgFail| failed(&target, e);
    let found = schema::version(&client, &target.schema)
        .await
        .map_err(|e| at(e.into()))?;
    if found > schema::VERSION {
        return Err(newer(&target, found));
    }
    schema::migrate(&mut client, &target.schema)
        .await
        .map_err(|e| at(e.into()))?;
    let me = fleet::register(&client, lease).await.map_err(at)?;
    let stored = read::meta(&client).await.map_err(at)?;
    let recovered = Recovered {
        tasks: Vec::new(),
        run_events: read::run_events(&client).await.map_err(at)?,
        last_seq: read::last_seq(&client).await.map_err(at)?,
        last_ord: read::last_ord(&client).await.map_err(at)?,
        totals: read::totals(&client).await.map_err(at)?,
        warnings: Vec::new(),
    };
    let fold = StatsFold::new(stats::read(&client).await.map_err(at)?, &[]);
    Ok((client, recovered, stored, fold, me))
}

/// Renews the engine's leases every third of a lease, on a connection of
/// the pool; a missed beat is tried again at the next.
async fn beat(pool: Pool, me: i64, lease: Duration, commit_lock: i64, held: Arc<Held>) {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let done = async {
            let mut c = runtime::pooled(&pool).await?;
            fleet::heartbeat(&mut c, me, lease, commit_lock, &held.ords()).await
        }
        .await;
        if let Err(e) = done {
            tracing::warn!("renewing this engine's leases: {e}");
        }
    }
}

impl PgStore {
    fn stop(&mut self) {
        self.heartbeat.abort();
        drop(self.tx.take());
        let stopped = self
            .stopped
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stopped) = stopped {
            let _ = stopped.recv();
        }
        self.writer.take();
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.stop();
    }
}

impl RunReader for PgStore {
    fn holder<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<String>> {
        self.reader.holder(id)
    }
    fn meta(&self) -> StoreFuture<'_, Option<RunMeta>> {
        self.reader.meta()
    }
    fn totals(&self) -> StoreFuture<'_, Totals> {
        self.reader.totals()
    }
    fn run_stats(&self) -> StoreFuture<'_, RunStats> {
        self.reader.run_stats()
    }
    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Vec<TaskRow>> {
        self.reader.list(q)
    }
    fn count<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, u64> {
        self.reader.count(q)
    }
    fn row<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskRow>> {
        self.reader.row(id)
    }
    fn task<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Task>> {
        self.reader.task(id)
    }
    fn task_before<'a>(&'a self, id: &'a str, seq: u64) -> StoreFuture<'a, Option<Task>> {
        self.reader.task_before(id, seq)
    }
    fn waiting(&self, offset: u64, limit: Option<u64>) -> StoreFuture<'_, Vec<(String, Hold)>> {
        self.reader.waiting(offset, limit)
    }
    fn events_after(&self, seq: u64, limit: u64) -> StoreFuture<'_, Vec<Event>> {
        self.reader.events_after(seq, limit)
    }
    fn run_events(&self) -> StoreFuture<'_, Vec<Event>> {
        self.reader.run_events()
    }
    fn last_seq(&self) -> StoreFuture<'_, u64> {
        self.reader.last_seq()
    }
    fn totals_at(&self) -> StoreFuture<'_, (Totals, u64)> {
        self.reader.totals_at()
    }
    fn all_tasks(&self) -> StoreFuture<'_, (Vec<Task>, u64)> {
        self.reader.all_tasks()
    }
    fn location(&self) -> String {
        self.target.to_string()
    }
    fn cache_get<'a>(&'a self, keys: &'a [CacheKey]) -> StoreFuture<'a, Vec<Option<CacheEntry>>> {
        self.reader.cache_get(keys)
    }
    fn cache_list<'a>(&'a self, filter: &'a CacheFilter) -> StoreFuture<'a, Vec<CacheInfo>> {
        self.reader.cache_list(filter)
    }
}

impl RunStore for PgStore {
    fn append(&self, batch: Batch) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let tx = self.sender()?;
            let permit = tx.reserve().await.map_err(|_| StoreError::Closed)?;
            let mut last = self
                .last_queued
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            batch.follow(&mut last)?;
            permit.send(Msg::Batch(batch));
            Ok(())
        })
    }

    fn flush(&self) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
            let (reply, rx) = oneshot::channel();
            tx.send(Msg::Flush(reply))
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn set_meta(&self, meta: RunMeta) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let tx = self.sender()?;
            tx.send(Msg::Meta(meta))
                .await
                .map_err(|_| StoreError::Closed)
        })
    }

    fn durable_seq(&self) -> u64 {
        self.shared.durable()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.broadcast.subscribe()
    }

    fn broadcaster(&self) -> broadcast::Sender<Arc<Event>> {
        self.broadcast.clone()
    }

    fn load<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<(TaskNo, Task)>> {
        let id = id.to_string();
        Box::pin(async move {
            let claimed = self
                .claim(move |c, phases, me, held, lease| async move {
                    match fleet::claim_task(&c, me, lease, &id).await? {
                        Claim::Taken(ord, generation) => {
                            held.hold(ord, generation);
                            let found = read::fold_ords(&**c, &[ord], &phases)
                                .await?
                                .into_iter()
                                .next();
                            Ok(Ok(found))
                        }
                        Claim::Missing => Ok(Ok(None)),
                        Claim::HeldBy(who) => Ok(Err(who)),
                    }
                })
                .await?;
            let found = claimed.map_err(|reason| StoreError::HeldElsewhere { reason })?;
            if let Some((ord, task)) = &found {
                self.tell_claimed(vec![(*ord, task.clone())]).await?;
            }
            Ok(found)
        })
    }

    fn pending_after(&self, _ord: TaskNo, limit: u64) -> StoreFuture<'_, Vec<(TaskNo, Task)>> {
        Box::pin(async move {
            let found = self
                .claim(move |c, phases, me, held, lease| async move {
                    let claimed = fleet::claim_work(&c, me, lease, limit).await?;
                    if claimed.is_empty() {
                        return Ok(Vec::new());
                    }
                    let ords: Vec<TaskNo> = claimed.iter().map(|(o, _)| *o).collect();
                    for (ord, generation) in claimed {
                        held.hold(ord, generation);
                    }
                    read::fold_ords(&**c, &ords, &phases).await
                })
                .await?;
            let under_way: Vec<(TaskNo, Task)> = found
                .iter()
                .filter(|(_, t)| t.phases.iter().any(|p| p.running_attempt().is_some()))
                .cloned()
                .collect();
            if !under_way.is_empty() {
                self.tell_claimed(under_way).await?;
            }
            Ok(found)
        })
    }

    fn existing<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<String>> {
        let ids = ids.to_vec();
        Box::pin(
            self.reader
                .with(move |c, _| async move { read::existing(&**c, &ids).await }),
        )
    }

    fn cache_write(&self, writes: Vec<CacheWrite>) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if writes.is_empty() {
                return Ok(());
            }
            let tx = self.sender()?;
            tx.send(Msg::Cache(writes))
                .await
                .map_err(|_| StoreError::Closed)
        })
    }

    fn cache_clear(&self, filter: CacheFilter) -> StoreFuture<'_, u64> {
        Box::pin(async move {
            let tx = self.sender()?;
            let (reply, rx) = oneshot::channel();
            tx.send(Msg::CacheClear(filter, reply))
                .await
                .map_err(|_| StoreError::Closed)?;
            rx.await.map_err(|_| StoreError::Closed)?
        })
    }

    fn cache_claim<'a>(&'a self, claims: &'a [(CacheKey, String)]) -> StoreFuture<'a, Vec<bool>> {
        let claims = claims.to_vec();
        Box::pin(self.claim(move |c, _, me, _, _| async move {
            cache_claims::claim(&**c, me, &claims).await
        }))
    }

    fn cache_release(&self, keys: Vec<CacheKey>) -> StoreFuture<'_, ()> {
        Box::pin(self.claim(move |c, _, me, _, _| async move {
            cache_claims::release(&**c, me, &keys).await
        }))
    }

    fn reader(&self) -> Result<Arc<dyn RunReader>, StoreError> {
        Ok(self.reader.clone())
    }

    fn stats(&self) -> StoreStats {
        self.shared.stats()
    }

    fn online(&self) -> bool {
        self.link.online.load(Ordering::Acquire)
    }

    fn published_seq(&self) -> u64 {
        self.link.published.load(Ordering::Acquire)
    }

    fn is_shared(&self) -> bool {
        true
    }

    fn take_lost(&self) -> Vec<TaskNo> {
        self.held.take_lost()
    }

    fn acquire_slots<'a>(&'a self, resource: &'a str, cap: u32, want: u32) -> StoreFuture<'a, u32> {
        let resource = resource.to_string();
        Box::pin(self.claim(move |c, _, me, _, lease| async move {
            fleet::acquire_slots(&c, me, lease, &resource, cap, want).await
        }))
    }

    fn release_slots<'a>(&'a self, resource: &'a str, count: u32) -> StoreFuture<'a, ()> {
        let resource = resource.to_string();
        let lock = self.commit_lock;
        Box::pin(self.claim(move |mut c, _, me, _, _| async move {
            fleet::release_slots(&mut c, me, &resource, count, lock).await
        }))
    }

    fn grant_requests<'a>(
        &'a self,
        agent: &'a str,
        rpm: Option<u32>,
        window: Duration,
        want: u32,
        used_tokens: u64,
    ) -> StoreFuture<'a, crate::store::RateGrant> {
        let agent = agent.to_string();
        Box::pin(self.reader.with(move |c, _| async move {
            fleet::grant_requests(&c, &agent, rpm, window, want, used_tokens).await
        }))
    }

    fn reserve_budget<'a>(
        &'a self,
        limits: crate::spec::model::BudgetLimits,
        wants: Vec<(String, crate::store::Reserved)>,
    ) -> StoreFuture<'a, (Vec<crate::store::Reserved>, Option<String>)> {
        let lock = self.commit_lock;
        Box::pin(self.claim(move |mut c, _, me, _, _| async move {
            fleet::reserve_budget(&mut c, me, lock, limits, wants).await
        }))
    }

    fn busy_engines(&self) -> StoreFuture<'_, u32> {
        Box::pin(self.claim(move |c, _, me, _, _| async move { fleet::busy_engines(&c, me).await }))
    }

    fn work_left(&self) -> StoreFuture<'_, bool> {
        Box::pin(
            self.reader
                .with(|c, _| async move { fleet::work_left(&c).await }),
        )
    }

    fn close(mut self: Box<Self>) -> StoreFuture<'static, StoreStats> {
        Box::pin(async move {
            drop(self.tx.take());
            if let Some(writer) = self.writer.take() {
                let _ = writer.await;
            }
            self.heartbeat.abort();
            self.stopped
                .get_mut()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let shared = self.shared.clone();
            drop(self);
            shared.check()?;
            Ok(shared.stats())
        })
    }
}
