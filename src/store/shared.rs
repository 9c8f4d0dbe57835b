//! State shared by the `Store` handle and its threads: the durable seq, the
//! rotation boundary, the journal's failure (if any) and the counters.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use super::error::StoreError;

/// Counters since the store was opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreStats {
    pub events_written: u64,
    /// Journal `fdatasync` calls; each one makes a whole batch durable.
    pub batches: u64,
    /// Bytes written to journal segments.
    pub bytes_written: u64,
    /// Task snapshot files written.
    pub snapshots_written: u64,
    /// Journal segments deleted after a checkpoint covered them.
    pub segments_deleted: u64,
}

/// Why the journal stopped taking writes.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub path: PathBuf,
    pub reason: String,
    pub durable: u64,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// Highest seq known to be on disk.
    pub durable_seq: AtomicU64,
    /// Highest `upto_seq` a checkpoint asked for. The writer starts a new
    /// segment before the first event past it, so the checkpoint's segments
    /// end exactly there and can be deleted once its snapshots are written.
    pub rotate_at: AtomicU64,
    failure: OnceLock<Failure>,
    pub events_written: AtomicU64,
    pub batches: AtomicU64,
    pub bytes_written: AtomicU64,
    pub snapshots_written: AtomicU64,
    pub segments_deleted: AtomicU64,
    /// Tests hold this to keep the writer from taking its next batch, so
    /// that group commit can be checked without relying on timing.
    #[cfg(test)]
    pub writer_gate: std::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn new(durable_seq: u64) -> Shared {
        Shared {
            durable_seq: AtomicU64::new(durable_seq),
            rotate_at: AtomicU64::new(0),
            failure: OnceLock::new(),
            events_written: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            bytes_written: AtomicU64::new(0),
            snapshots_written: AtomicU64::new(0),
            segments_deleted: AtomicU64::new(0),
            #[cfg(test)]
            writer_gate: std::sync::Mutex::new(()),
        }
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Records the journal's first failure; later ones add nothing.
    pub(crate) fn fail(&self, failure: Failure) {
        let _ = self.failure.set(failure);
    }

    /// `Err` once the journal has failed.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.failure.get() {
            None => Ok(()),
            Some(f) => Err(StoreError::JournalFailed {
                path: f.path.clone(),
                reason: f.reason.clone(),
                durable: f.durable,
            }),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn stats(&self) -> StoreStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        StoreStats {
            events_written: get(&self.events_written),
            batches: get(&self.batches),
            bytes_written: get(&self.bytes_written),
            snapshots_written: get(&self.snapshots_written),
            segments_deleted: get(&self.segments_deleted),
        }
    }
}
