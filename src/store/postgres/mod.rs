//! The fleet's backend: a run kept in PostgreSQL (`--store postgres://…`),
//! for runs that outgrow one machine or must survive losing one.
//!
//! The tables are those of the embedded store (see [`schema`]); the store
//! works the same way: the engine appends batches, one writer task commits
//! them in groups and publishes them once committed, readers query. Every
//! connection lives on the backend's own runtime ([`runtime`]).

mod cache;
pub mod fail;
mod read;
pub mod runtime;
pub mod schema;
mod stats;
pub mod target;
#[cfg(test)]
mod test_db;
mod text;
mod writer;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

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
use writer::{Link, Msg, QUEUE_BATCHES, Writer};

/// A number of the run's own for PostgreSQL's advisory locks: one for the
/// engine that holds the run, one taken by every commit.
fn lock_key(schema: &str, purpose: u8) -> i64 {
    // FNV-1a over the schema's name and the purpose.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in schema.bytes().chain([0, purpose]) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h as i64
}

const HOLD_LOCK: u8 = 1;
const COMMIT_LOCK: u8 = 2;

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
}

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
        })
    }

    /// Runs `f` with a pooled connection on the backend's runtime.
    async fn with<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: FnOnce(deadpool_postgres::Object, Arc<Vec<String>>) -> Fut + Send + 'static,
        Fut: Future<Output = PgResult<T>> + Send,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        let phases = self.phases.clone();
        runtime::run(async move {
            let conn = runtime::pooled(&pool).await?;
            f(conn, phases).await
        })
        .await
        .map_err(|e| failed(&self.target, e))
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
}

/// Who holds a run: this host and process.
fn holder() -> serde_json::Value {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "this host".into());
    serde_json::json!({ "host": host, "pid": std::process::id() })
}

impl PgStore {
    /// Connects, creates or migrates the run's tables, takes the run (one
    /// engine at a time), and reads back what the engine needs to carry on.
    pub fn open(
        target: &PgTarget,
        meta: &RunMeta,
    ) -> Result<(PgStore, Recovered, Option<RunMeta>), StoreError> {
        let t = target.clone();
        let given_phases = meta.phases.clone();
        let meta = meta.clone();
        let opened = runtime::block_on(async move { Ok(open(t, meta).await) })
            .map_err(|e| failed(target, e))??;
        let (client, recovered, stored, fold) = opened;
        let shared = Arc::new(Shared::new(recovered.last_seq));
        let link = Arc::new(Link {
            online: AtomicBool::new(true),
        });
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
            commit_lock: lock_key(&target.schema, COMMIT_LOCK),
            hold_lock: lock_key(&target.schema, HOLD_LOCK),
        };
        let writer = runtime::spawn(async move {
            writer.run(rx).await;
            let _ = stopped_tx.send(());
        });
        let mut reader = PgReader {
            target: target.clone(),
            pool: runtime::pool(target).map_err(|e| failed(target, e))?,
            phases: Arc::new(Vec::new()),
        };
        reader.phases = Arc::new(
            stored
                .as_ref()
                .map(|m| m.phases.clone())
                .unwrap_or(given_phases),
        );
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
        };
        Ok((store, recovered, stored))
    }

    fn sender(&self) -> Result<&mpsc::Sender<Msg>, StoreError> {
        self.shared.check()?;
        self.tx.as_ref().ok_or(StoreError::Closed)
    }
}

type Opened = (Client, Recovered, Option<RunMeta>, StatsFold);

async fn open(target: PgTarget, meta: RunMeta) -> Result<Opened, StoreError> {
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
    let key = lock_key(&target.schema, HOLD_LOCK);
    let took: bool = client
        .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
        .await
        .map_err(|e| at(e.into()))?
        .get(0);
    if !took {
        let held: Option<String> = client
            .query_opt("SELECT value FROM meta WHERE key = 'holder'", &[])
            .await
            .map_err(|e| at(e.into()))?
            .map(|r| r.get(0));
        let held: serde_json::Value = held
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default();
        let pid = held["pid"].as_u64().and_then(|p| u32::try_from(p).ok());
        return Err(StoreError::RunHeld {
            at: target.to_string(),
            holder: format!(
                "{}, pid {}",
                held["host"].as_str().unwrap_or("another host"),
                pid.map_or("unknown".to_string(), |p| p.to_string())
            ),
            pid,
        });
    }
    client
        .execute(
            "INSERT INTO meta(key, value) VALUES ('holder', $1) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            &[&holder().to_string()],
        )
        .await
        .map_err(|e| at(e.into()))?;
    let stored = read::meta(&client).await.map_err(at)?;
    let phases = stored
        .as_ref()
        .map(|m| m.phases.clone())
        .unwrap_or_else(|| meta.phases.clone());
    let recovered = Recovered {
        tasks: read::unfinished(&client, &phases).await.map_err(at)?,
        run_events: read::run_events(&client).await.map_err(at)?,
        last_seq: read::last_seq(&client).await.map_err(at)?,
        last_ord: read::last_ord(&client).await.map_err(at)?,
        totals: read::totals(&client).await.map_err(at)?,
        warnings: Vec::new(),
    };
    let fold = StatsFold::new(stats::read(&client).await.map_err(at)?, &recovered.tasks);
    Ok((client, recovered, stored, fold))
}

impl PgStore {
    fn stop(&mut self) {
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
            let mut prev = *last;
            for (_, e) in &batch.events {
                if e.seq <= prev {
                    return Err(StoreError::OutOfOrder {
                        seq: e.seq,
                        after: prev,
                    });
                }
                prev = e.seq;
            }
            *last = prev;
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
        Box::pin(
            self.reader
                .with(move |c, phases| async move { read::task(&**c, &id, &phases).await }),
        )
    }

    fn pending_after(&self, ord: TaskNo, limit: u64) -> StoreFuture<'_, Vec<(TaskNo, Task)>> {
        Box::pin(self.reader.with(move |c, phases| async move {
            read::pending_after(&**c, ord, limit, &phases).await
        }))
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

    fn reader(&self) -> Result<Arc<dyn RunReader>, StoreError> {
        Ok(self.reader.clone())
    }

    fn stats(&self) -> StoreStats {
        self.shared.stats()
    }

    fn online(&self) -> bool {
        self.link.online.load(Ordering::Acquire)
    }

    fn close(mut self: Box<Self>) -> StoreFuture<'static, StoreStats> {
        Box::pin(async move {
            drop(self.tx.take());
            if let Some(writer) = self.writer.take() {
                let _ = writer.await;
            }
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
