//! Durability: the journal, snapshots, the state-folder lock, recovery and
//! quarantine. The store keeps what it is given; it decides no policy.
//!
//! The engine applies events to its tasks itself and hands them to
//! [`Store::append`]; a writer thread makes them durable in groups and only
//! then publishes them to subscribers. Now and then the engine passes the
//! tasks that changed to [`Store::checkpoint`]; once their snapshots are on
//! disk, the journal segments they cover are deleted. At start,
//! [`Store::open`] hands back the snapshots plus every journal event left,
//! and the engine folds the events newer than each task's snapshot.

pub mod clean;
mod error;
mod fsync;
mod journal;
mod layout;
mod lock;
mod quarantine;
mod recover;
mod shared;
mod snapshot;
mod writer;

#[cfg(test)]
mod tests;

use std::fs;
use std::future::Future;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;

use tokio::sync::{broadcast, mpsc, oneshot};

pub use error::StoreError;
pub use shared::StoreStats;

use crate::engine::event::Event;
use crate::engine::task::Task;
use error::IoContext;
use layout::Layout;
use lock::StateLock;
use recover::{Mode, Recovery, recover};
use shared::Shared;
use snapshot::{Job, SnapshotThread};
use writer::{Msg, QUEUE_BATCHES, Writer};

/// Room in the broadcast channel; a subscriber further behind than this
/// gets `RecvError::Lagged`.
pub const BROADCAST_CAPACITY: usize = 16_384;

/// What was on disk at start.
#[derive(Debug, Clone, Default)]
pub struct Recovered {
    /// Newest snapshot of each task, by id.
    pub snapshots: Vec<Task>,
    /// Journal events in seq order, all segments. Some may be older than a
    /// task's snapshot (its `seq`); those are already in the snapshot.
    pub events: Vec<Event>,
    /// The highest seq used so far; the next event should be numbered above
    /// it. The max over snapshots and events, and also over what the journal's
    /// segment names record, so that seqs of events a checkpoint pruned (such
    /// as run-level events no snapshot holds) are never handed out again.
    pub last_seq: u64,
    /// Damage found and what was done about it, for the operator. Also logged.
    pub warnings: Vec<String>,
}

/// The open state folder. Holds its lock until closed or dropped.
///
/// Dropping a `Store` writes out what was appended and finishes pending
/// checkpoints, blocking the dropping thread meanwhile; prefer
/// [`Store::close`] in async code.
pub struct Store {
    layout: Layout,
    shared: Arc<Shared>,
    /// `None` once closing: the writer stops when every sender is gone.
    tx: Option<mpsc::Sender<Msg>>,
    broadcast: broadcast::Sender<Arc<Event>>,
    /// Seq of the last event queued; appends must go above it.
    last_queued: Mutex<u64>,
    snapshots: Option<SnapshotThread>,
    writer: Option<JoinHandle<()>>,
    lock: Option<StateLock>,
}

impl Store {
    /// Takes the folder's lock, recovers what is on disk (repairing damage,
    /// with the originals kept in `quarantine/`) and starts the writer.
    pub fn open(dir: &Path) -> Result<(Store, Recovered), StoreError> {
        let existed = dir.is_dir();
        fs::create_dir_all(dir).at(dir)?;
        if !existed {
            // Best effort: the parent may not be readable, and the folder is
            // recreated on the next start if a crash loses it while empty.
            if let Err(e) = fsync::sync_dir(fsync::parent(dir)) {
                tracing::debug!("{e}");
            }
        }
        let layout = Layout::new(dir);
        let lock = StateLock::acquire(&layout)?;
        for sub in [layout.journal(), layout.tasks(), layout.quarantine()] {
            fs::create_dir_all(&sub).at(&sub)?;
        }
        fsync::sync_dir(dir)?;

        let Recovery {
            recovered,
            segments,
        } = recover(&layout, Mode::Repair)?;
        let shared = Arc::new(Shared::new(recovered.last_seq));
        let (broadcast, _) = broadcast::channel(BROADCAST_CAPACITY);
        let writer = Writer::open(
            &layout,
            shared.clone(),
            broadcast.clone(),
            &segments,
            recovered.last_seq,
        )?;
        let (tx, rx) = mpsc::channel(QUEUE_BATCHES);
        let writer = writer.spawn(rx).at(layout.journal())?;
        let mut store = Store {
            layout: layout.clone(),
            shared: shared.clone(),
            tx: Some(tx.clone()),
            broadcast,
            last_queued: Mutex::new(recovered.last_seq),
            snapshots: None,
            writer: Some(writer),
            lock: Some(lock),
        };
        // On error `store` drops here, which stops the writer.
        store.snapshots = Some(snapshot::spawn(layout, shared, tx)?);
        Ok((store, recovered))
    }

    /// Reads the folder without taking its lock and without changing
    /// anything, so it works while another process owns it. Damage is
    /// skipped and reported in `warnings`.
    pub fn load_readonly(dir: &Path) -> Result<Recovered, StoreError> {
        fs::metadata(dir).at(dir)?;
        recover(&Layout::new(dir), Mode::ReadOnly).map(|r| r.recovered)
    }

    pub fn dir(&self) -> &Path {
        self.layout.dir()
    }

    /// Queues a batch for the writer and returns; it is not durable yet (see
    /// [`Store::flush`] and [`Store::subscribe`]). Waits only while the queue
    /// is full. Seqs must increase, within the batch and across calls.
    pub async fn append(&self, events: Vec<Event>) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        self.shared.check()?;
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let permit = tx.reserve().await.map_err(|_| StoreError::Closed)?;
        // Checked and sent under one lock, so concurrent appends reach the
        // queue in the order their seqs were checked.
        let mut last = self
            .last_queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mut prev = *last;
        for e in &events {
            if e.seq <= prev {
                return Err(StoreError::OutOfOrder {
                    seq: e.seq,
                    after: prev,
                });
            }
            prev = e.seq;
        }
        *last = prev;
        permit.send(Msg::Events(events));
        Ok(())
    }

    /// Events once they are durable, in seq order.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        self.broadcast.subscribe()
    }

    /// The channel behind [`Store::subscribe`], for handing out receivers.
    pub fn broadcaster(&self) -> broadcast::Sender<Arc<Event>> {
        self.broadcast.clone()
    }

    /// Resolves once everything appended before the call is durable, with
    /// the durable seq.
    pub async fn flush(&self) -> Result<u64, StoreError> {
        let tx = self.tx.as_ref().ok_or(StoreError::Closed)?;
        let (reply, rx) = oneshot::channel();
        tx.send(Msg::Flush(reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// The highest seq on disk.
    pub fn durable_seq(&self) -> u64 {
        self.shared.durable()
    }

    /// Snapshots `tasks`, which must reflect every event with seq <=
    /// `upto_seq` (some may still be queued), then deletes the journal
    /// segments holding only such events. Returns at once; the work happens
    /// on the snapshot and writer threads. A failed checkpoint is logged and
    /// leaves the journal as it was.
    pub fn checkpoint(&self, tasks: Vec<Arc<Task>>, upto_seq: u64) {
        // The writer ends its segment before the first event past
        // `upto_seq`, wherever that event sits in the queue: the same as a
        // rotate message queued behind the events <= `upto_seq`, without
        // ever waiting for room in the queue.
        self.shared
            .rotate_at
            .fetch_max(upto_seq, std::sync::atomic::Ordering::AcqRel);
        let job = Job {
            tasks,
            upto: upto_seq,
        };
        if self
            .snapshots
            .as_ref()
            .is_none_or(|s| s.jobs.send(job).is_err())
        {
            tracing::warn!("checkpoint up to seq {upto_seq} dropped: the snapshot thread is gone");
        }
    }

    /// Makes everything appended durable, finishes pending checkpoints,
    /// stops the threads and releases the lock.
    /// Flushes, finishes checkpoints, stops the threads and releases the
    /// lock; returns what the store did since it opened.
    pub async fn close(mut self) -> Result<StoreStats, StoreError> {
        let threads = self.take_threads();
        let lock = self.lock.take();
        let shared = self.shared.clone();
        tokio::task::spawn_blocking(move || {
            threads.stop();
            drop(lock);
        })
        .await
        .map_err(|_| StoreError::Closed)?;
        shared.check()?;
        Ok(shared.stats())
    }

    pub fn stats(&self) -> StoreStats {
        self.shared.stats()
    }

    fn take_threads(&mut self) -> Threads {
        Threads {
            snapshots: self.snapshots.take(),
            tx: self.tx.take(),
            writer: self.writer.take(),
        }
    }

    #[cfg(test)]
    pub(crate) fn shared(&self) -> &Shared {
        &self.shared
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // The lock (a field) is released only after this, once nothing
        // writes any more.
        self.take_threads().stop();
    }
}

/// The store's threads, taken out of it to be stopped.
struct Threads {
    snapshots: Option<SnapshotThread>,
    tx: Option<mpsc::Sender<Msg>>,
    writer: Option<JoinHandle<()>>,
}

impl Threads {
    /// Blocks until pending checkpoints and queued events are written.
    fn stop(self) {
        // Snapshots first: their prunes go through the writer.
        if let Some(s) = self.snapshots {
            drop(s.jobs);
            let _ = s.thread.join();
        }
        // With the last sender gone the writer commits what is queued and ends.
        drop(self.tx);
        if let Some(w) = self.writer {
            let _ = w.join();
        }
    }
}

/// What the engine needs from durable storage. [`Store`] is the real one;
/// the trait lets engine tests substitute their own.
pub trait StateStore: Send + Sync {
    fn append(&self, events: Vec<Event>) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn flush(&self) -> impl Future<Output = Result<u64, StoreError>> + Send;
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>>;
    fn broadcaster(&self) -> broadcast::Sender<Arc<Event>>;
    fn durable_seq(&self) -> u64;
    fn checkpoint(&self, tasks: Vec<Arc<Task>>, upto_seq: u64);
    fn stats(&self) -> StoreStats;
    fn dir(&self) -> &Path;
}

impl StateStore for Store {
    fn append(&self, events: Vec<Event>) -> impl Future<Output = Result<(), StoreError>> + Send {
        Store::append(self, events)
    }
    fn flush(&self) -> impl Future<Output = Result<u64, StoreError>> + Send {
        Store::flush(self)
    }
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>> {
        Store::subscribe(self)
    }
    fn broadcaster(&self) -> broadcast::Sender<Arc<Event>> {
        Store::broadcaster(self)
    }
    fn durable_seq(&self) -> u64 {
        Store::durable_seq(self)
    }
    fn checkpoint(&self, tasks: Vec<Arc<Task>>, upto_seq: u64) {
        Store::checkpoint(self, tasks, upto_seq)
    }
    fn stats(&self) -> StoreStats {
        Store::stats(self)
    }
    fn dir(&self) -> &Path {
        Store::dir(self)
    }
}
