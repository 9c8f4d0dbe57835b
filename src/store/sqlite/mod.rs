//! The embedded backend: one SQLite database, `baton.db`, in the state
//! folder, in WAL mode so that readers (the CLI, dashboards) never block the
//! engine's writer and never see a half-written batch.

mod cache;
mod convert;
pub(crate) mod read;
pub(crate) mod schema;
pub(crate) mod shared;
mod stats;
pub(crate) mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::cache::{CacheEntry, CacheFilter, CacheInfo, CacheKey, CacheWrite};
use super::error::{IoContext, StoreError};
use super::legacy::{self, layout::Layout};
use super::lock::StateLock;
use super::model::{Batch, ListQuery, Recovered, RunMeta, StoreStats, TaskNo, TaskRow, Totals};
use super::private;
use super::stats::RunStats;
use super::stats_fold::StatsFold;
use super::{BROADCAST_CAPACITY, RunReader, RunStore, StoreFuture};
use crate::engine::event::Event;
use crate::engine::task::{Hold, Task};
use shared::Shared;
use writer::{Msg, QUEUE_BATCHES, Writer};

/// The database's file name inside the state folder.
pub const DB_FILE: &str = "baton.db";

/// Where a folder's database is.
pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

fn wal_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-wal");
    PathBuf::from(p)
}

fn shm_path(db: &Path) -> PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push("-shm");
    PathBuf::from(p)
}

/// A connection that reads only. It is opened read-write, with writes
/// refused by `query_only`, because a read-only open of a WAL database
/// fails when the last writer has closed and its `-shm` file is gone.
fn open_query_only(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    schema::configure(&conn, false)?;
    conn.pragma_update(None, "query_only", true)?;
    Ok(conn)
}

/// Read access to a folder's database, without its lock: works beside a
/// running engine, whose commits it sees whole or not at all.
pub struct SqliteReader {
    dir: PathBuf,
    path: PathBuf,
    conn: Mutex<Connection>,
    phases: Vec<String>,
    /// The schema version found at open; older ones lack newer tables.
    version: i64,
}

impl SqliteReader {
    /// Opens the folder's database read-only. A folder of the old layout
    /// that was never converted gives `StoreError::NeedsConversion`.
    pub fn open(dir: &Path) -> Result<SqliteReader, StoreError> {
        let path = db_path(dir);
        // Reading may make SQLite's -shm file: never in another's folder.
        if dir.exists() {
            private::check_owner(dir)?;
        }
        if !path.is_file() {
            if legacy::present(dir) {
                return Err(StoreError::NeedsConversion {
                    dir: dir.to_path_buf(),
                });
            }
            return Err(StoreError::NoRun {
                dir: dir.to_path_buf(),
            });
        }
        let conn = open_query_only(&path).map_err(|e| StoreError::db(&path, e))?;
        let found = schema::version(&conn).map_err(|e| StoreError::db(&path, e))?;
        if found > schema::VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found,
                supported: schema::VERSION,
            });
        }
        let phases = read::meta(&conn)
            .map_err(|e| StoreError::db(&path, e))?
            .map(|m| m.phases)
            .unwrap_or_default();
        Ok(SqliteReader {
            dir: dir.to_path_buf(),
            path,
            conn: Mutex::new(conn),
            phases,
            version: found,
        })
    }

    /// Whether the database was at this build's schema version when
    /// opened; an older one lacks newer tables until a store opens it.
    pub fn is_current(&self) -> bool {
        self.version >= schema::VERSION
    }

    fn needs_version(&self, needed: i64, what: &'static str) -> Result<(), StoreError> {
        if self.version >= needed {
            return Ok(());
        }
        Err(StoreError::OlderSchema {
            path: self.path.clone(),
            found: self.version,
            needed,
            what,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(|e| StoreError::db(&self.path, e))
    }
}

/// The reading half, shared by the reader and the store.
macro_rules! impl_reader {
    ($t:ty) => {
        impl RunReader for $t {
            fn meta(&self) -> StoreFuture<'_, Option<RunMeta>> {
                Box::pin(async move { self.with(read::meta) })
            }
            fn totals(&self) -> StoreFuture<'_, Totals> {
                Box::pin(async move { self.with(read::totals) })
            }
            fn run_stats(&self) -> StoreFuture<'_, RunStats> {
                Box::pin(async move {
                    self.needs_version(schema::STATS_VERSION, "figures per phase")?;
                    self.with(stats::read)
                })
            }
            fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Vec<TaskRow>> {
                Box::pin(async move { self.with(|c| read::list(c, q)) })
            }
            fn count<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, u64> {
                Box::pin(async move { self.with(|c| read::count(c, q)) })
            }
            fn row<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskRow>> {
                Box::pin(async move { self.with(|c| read::row_by_id(c, id)) })
            }
            fn task<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Task>> {
                Box::pin(async move {
                    self.with(|c| read::task(c, id, &self.phases))
                        .map(|t| t.map(|(_, t)| t))
                })
            }
            fn task_before<'a>(&'a self, id: &'a str, seq: u64) -> StoreFuture<'a, Option<Task>> {
                Box::pin(async move { self.with(|c| read::task_before(c, id, seq, &self.phases)) })
            }
            fn waiting(
                &self,
                offset: u64,
                limit: Option<u64>,
            ) -> StoreFuture<'_, Vec<(String, Hold)>> {
                Box::pin(async move { self.with(|c| read::waiting(c, offset, limit)) })
            }
            fn events_after(&self, seq: u64, limit: u64) -> StoreFuture<'_, Vec<Event>> {
                Box::pin(async move { self.with(|c| read::events_after(c, seq, limit)) })
            }
            fn run_events(&self) -> StoreFuture<'_, Vec<Event>> {
                Box::pin(async move { self.with(read::run_events) })
            }
            fn last_seq(&self) -> StoreFuture<'_, u64> {
                Box::pin(async move { self.with(read::last_seq) })
            }
            fn all_tasks(&self) -> StoreFuture<'_, (Vec<Task>, u64)> {
                Box::pin(async move { self.with(|c| read::all_tasks(c, &self.phases)) })
            }
            fn location(&self) -> String {
                self.dir.display().to_string()
            }
            fn cache_get<'a>(
                &'a self,
                keys: &'a [CacheKey],
            ) -> StoreFuture<'a, Vec<Option<CacheEntry>>> {
                Box::pin(async move {
                    self.needs_version(cache::CACHE_VERSION, "the step cache")?;
                    self.with(|c| cache::get(c, keys))
                })
            }
            fn cache_list<'a>(
                &'a self,
                filter: &'a CacheFilter,
            ) -> StoreFuture<'a, Vec<CacheInfo>> {
                Box::pin(async move {
                    self.needs_version(cache::CACHE_VERSION, "the step cache")?;
                    self.with(|c| cache::list(c, filter))
                })
            }
        }
    };
}

impl_reader!(SqliteReader);
impl_reader!(SqliteStore);

/// The open state folder, for its one engine. Holds the folder's lock until
/// closed or dropped.
///
/// Dropping it commits what was appended, blocking the dropping thread
/// meanwhile; prefer [`RunStore::close`] in async code.
pub struct SqliteStore {
    dir: PathBuf,
    path: PathBuf,
    shared: Arc<Shared>,
    /// `None` once closing: the writer stops when every sender is gone.
    tx: Option<mpsc::Sender<Msg>>,
    broadcast: broadcast::Sender<Arc<Event>>,
    /// Seq of the last event queued; appends must go above it.
    last_queued: Mutex<u64>,
    writer: Option<JoinHandle<()>>,
    /// The engine's own reads (pending tasks, a task it no longer holds).
    conn: Mutex<Connection>,
    phases: Vec<String>,
    _lock: StateLock,
}

impl SqliteStore {
    /// Takes the folder's lock, creates or migrates the database (converting
    /// a folder of the old layout once), and reads back what the engine
    /// needs to carry on. `meta` names the pipeline this run uses; a folder
    /// of another pipeline is the caller's to refuse (see `Recovered::meta`).
    pub fn open(
        dir: &Path,
        meta: &RunMeta,
    ) -> Result<(SqliteStore, Recovered, Option<RunMeta>), StoreError> {
        let tightened = private::secure(dir)?;
        let lock = StateLock::acquire(&Layout::new(dir))?;
        let path = db_path(dir);
        let db = |e| StoreError::db(&path, e);
        // Made 0600 before SQLite opens it: its -wal and -shm files take
        // the database's mode when SQLite makes them.
        private::append_file(&path).at(&path)?;
        let mut conn = Connection::open(&path).map_err(db)?;
        schema::configure(&conn, true).map_err(db)?;
        let found = schema::version(&conn).map_err(db)?;
        if found > schema::VERSION {
            return Err(StoreError::NewerSchema {
                path,
                found,
                supported: schema::VERSION,
            });
        }
        schema::migrate(&mut conn).map_err(db)?;
        for file in [wal_path(&path), shm_path(&path)] {
            private::restrict_path(&file)?;
        }
        let mut warnings = tightened;
        if legacy::present(dir) {
            let done = convert::convert(&mut conn, &path, dir, meta)?;
            warnings.extend(done.warnings);
            let note = format!(
                "converted {} task(s) from the journal-and-snapshot layout into {}; the old files are kept in {} (delete it once you are satisfied)",
                done.tasks,
                path.display(),
                done.kept_in.display()
            );
            tracing::info!("{note}");
            warnings.push(note);
        }
        let stored_meta = read::meta(&conn).map_err(db)?;
        let phases = stored_meta
            .as_ref()
            .map(|m| m.phases.clone())
            .unwrap_or_else(|| meta.phases.clone());
        let recovered = Recovered {
            tasks: read::unfinished(&conn, &phases).map_err(db)?,
            run_events: read::run_events(&conn).map_err(db)?,
            last_seq: read::last_seq(&conn).map_err(db)?,
            last_ord: read::last_ord(&conn).map_err(db)?,
            totals: read::totals(&conn).map_err(db)?,
            warnings,
        };
        let stats = StatsFold::new(stats::read(&conn).map_err(db)?, &recovered.tasks);
        let reader = open_query_only(&path).map_err(db)?;
        let shared = Arc::new(Shared::new(recovered.last_seq));
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let writer = Writer::new(
            conn,
            path.clone(),
            shared.clone(),
            broadcast.clone(),
            recovered.totals.clone(),
            stats,
        )
        .spawn(rx)
        .at(&path)?;
        let store = SqliteStore {
            dir: dir.to_path_buf(),
            path,
            shared,
            tx: Some(tx),
            broadcast,
            last_queued: Mutex::new(recovered.last_seq),
            writer: Some(writer),
            conn: Mutex::new(reader),
            phases,
            _lock: lock,
        };
        Ok((store, recovered, stored_meta))
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        f(&conn).map_err(|e| StoreError::db(&self.path, e))
    }

    /// The store migrated its database when it opened: every table is there.
    fn needs_version(&self, _needed: i64, _what: &'static str) -> Result<(), StoreError> {
        Ok(())
    }

    fn sender(&self) -> Result<&mpsc::Sender<Msg>, StoreError> {
        self.shared.check()?;
        self.tx.as_ref().ok_or(StoreError::Closed)
    }

    fn stop(&mut self) {
        // With the last sender gone the writer commits what is queued and ends.
        drop(self.tx.take());
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }

    /// What the writer shares; tests hold its gate to stop the writer.
    #[cfg(test)]
    pub(crate) fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The lock (a field) is released only after this, once nothing
        // writes any more.
        self.stop();
    }
}

impl RunStore for SqliteStore {
    fn append(&self, batch: Batch) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            if batch.is_empty() {
                return Ok(());
            }
            let tx = self.sender()?;
            let permit = tx.reserve().await.map_err(|_| StoreError::Closed)?;
            // Checked and sent under one lock, so concurrent appends reach
            // the queue in the order their seqs were checked.
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
        Box::pin(async move { self.with(|c| read::task(c, id, &self.phases)) })
    }

    fn pending_after(&self, ord: TaskNo, limit: u64) -> StoreFuture<'_, Vec<(TaskNo, Task)>> {
        Box::pin(async move { self.with(|c| read::pending_after(c, ord, limit, &self.phases)) })
    }

    fn existing<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<String>> {
        Box::pin(async move { self.with(|c| read::existing(c, ids)) })
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
        let mut reader = SqliteReader::open(&self.dir)?;
        // The run's phases, even before the first commit records them.
        reader.phases = self.phases.clone();
        Ok(Arc::new(reader))
    }

    fn stats(&self) -> StoreStats {
        self.shared.stats()
    }

    fn close(mut self: Box<Self>) -> StoreFuture<'static, StoreStats> {
        Box::pin(async move {
            let shared = self.shared.clone();
            tokio::task::spawn_blocking(move || {
                self.stop();
                drop(self);
            })
            .await
            .map_err(|_| StoreError::Closed)?;
            shared.check()?;
            Ok(shared.stats())
        })
    }
}
