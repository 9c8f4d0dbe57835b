//! What can go wrong with the state folder, worded for the person who has to
//! fix it.

use std::io;
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Another process (or another `Store` in this one) holds the folder's lock.
    #[error(
        "state folder {} is in use by baton ({}); stop it or use another --state-dir",
        dir.display(),
        describe_pid(*pid)
    )]
    Locked { dir: PathBuf, pid: Option<u32> },

    #[error(
        "{}: {source} (check that the path exists, is writable by this user and its disk has free space)",
        path.display()
    )]
    Io { path: PathBuf, source: io::Error },

    /// The store was closed, or its writer thread is gone.
    #[error("the state store is closed; no more events can be written")]
    Closed,

    /// A write or sync of the journal failed. The store stops writing: after
    /// a failed `fdatasync` the kernel may have dropped the dirty pages, so a
    /// retry could report success for data that never reached the disk.
    #[error(
        "journal {} could not be written ({reason}); events after seq {durable} are not durable. \
         Fix the disk (space, permissions, hardware), then restart baton: it recovers from the journal",
        path.display()
    )]
    JournalFailed {
        path: PathBuf,
        reason: String,
        durable: u64,
    },

    /// The journal only takes events in increasing `seq` order.
    #[error(
        "event seq {seq} was appended after seq {after}; events must be appended in increasing seq order"
    )]
    OutOfOrder { seq: u64, after: u64 },
}

fn describe_pid(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

impl StoreError {
    pub(crate) fn io(path: impl AsRef<Path>, source: io::Error) -> StoreError {
        StoreError::Io {
            path: path.as_ref().to_path_buf(),
            source,
        }
    }
}

/// `result.at(path)?` turns an `io::Error` into a `StoreError` naming the path.
pub(crate) trait IoContext<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, StoreError>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: impl AsRef<Path>) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::io(path, e))
    }
}
