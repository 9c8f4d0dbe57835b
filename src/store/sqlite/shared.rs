//! State shared by the store handle and its writer thread: the durable seq,
//! the writer's failure (if any) and the counters.

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::store::error::StoreError;
use crate::store::model::StoreStats;

#[derive(Debug)]
struct Failure {
    path: PathBuf,
    reason: String,
    durable: u64,
    /// A database server's (PostgreSQL), not a file's.
    server: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// Highest seq known to be committed.
    pub durable_seq: AtomicU64,
    failure: OnceLock<Failure>,
    pub events_written: AtomicU64,
    pub batches: AtomicU64,
    pub rows_written: AtomicU64,
    /// Tests hold this to keep the writer from taking its next batch, so
    /// that group commit can be checked without relying on timing.
    #[cfg(test)]
    pub writer_gate: std::sync::Mutex<()>,
}

impl Shared {
    pub(crate) fn new(durable_seq: u64) -> Shared {
        Shared {
            durable_seq: AtomicU64::new(durable_seq),
            failure: OnceLock::new(),
            events_written: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            rows_written: AtomicU64::new(0),
            #[cfg(test)]
            writer_gate: std::sync::Mutex::new(()),
        }
    }

    pub(crate) fn durable(&self) -> u64 {
        self.durable_seq.load(Ordering::Acquire)
    }

    /// Records the writer's first failure; later ones add nothing.
    pub(crate) fn fail(&self, path: PathBuf, reason: String) {
        let _ = self.failure.set(Failure {
            path,
            reason,
            durable: self.durable(),
            server: false,
        });
    }

    /// Records a database server's refusal (`at` names it, without password).
    pub(crate) fn fail_database(&self, at: String, reason: String) {
        let _ = self.failure.set(Failure {
            path: PathBuf::from(at),
            reason,
            durable: self.durable(),
            server: true,
        });
    }

    /// `Err` once the writer has failed.
    pub(crate) fn check(&self) -> Result<(), StoreError> {
        match self.failure.get() {
            None => Ok(()),
            Some(f) if f.server => Err(StoreError::RunWriteFailed {
                at: f.path.display().to_string(),
                reason: f.reason.clone(),
                durable: f.durable,
            }),
            Some(f) => Err(StoreError::WriteFailed {
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
            rows_written: get(&self.rows_written),
        }
    }
}
