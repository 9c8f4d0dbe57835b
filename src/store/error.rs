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

    /// A commit to the state database failed. The store stops writing: the
    /// engine has already applied events that are not on disk.
    #[error(
        "state database {} could not be written ({reason}); events after seq {durable} are not durable. \
         Fix the disk (space, permissions, hardware), then run baton again: it carries on from the last commit",
        path.display()
    )]
    WriteFailed {
        path: PathBuf,
        reason: String,
        durable: u64,
    },

    /// The database could not be opened or read.
    #[error("state database {}: {source}\n  help: {help}", path.display())]
    Database {
        path: PathBuf,
        source: rusqlite::Error,
        help: &'static str,
    },

    /// The database was made by a newer baton.
    #[error(
        "state database {} has schema version {found}, newer than this baton understands ({supported}); \
         use the baton that wrote it, or a newer one",
        path.display()
    )]
    NewerSchema {
        path: PathBuf,
        found: i64,
        supported: i64,
    },

    /// The database was made by an older baton and lacks what a question
    /// needs; opening the folder for writing upgrades it.
    #[error(
        "state database {} has schema version {found}; {what} needs version {needed}\n  help: it is upgraded when the folder is next opened by `baton run` (or by this command when no engine holds the folder)",
        path.display()
    )]
    OlderSchema {
        path: PathBuf,
        found: i64,
        needed: i64,
        what: &'static str,
    },

    /// The folder has the layout of an older baton and no database yet.
    #[error(
        "{} was written by an older baton (journal/ and tasks/) and is not converted yet\n  help: any command that takes the folder converts it once, keeping the old files: e.g. `baton run PIPELINE --state-dir {}`",
        dir.display(), dir.display()
    )]
    NeedsConversion { dir: PathBuf },

    /// The folder holds no run yet.
    #[error("{} holds no baton run (no baton.db)\n  help: start one with `baton run PIPELINE --state-dir {}`", dir.display(), dir.display())]
    NoRun { dir: PathBuf },

    /// The folder, or something in it, belongs to another user.
    #[error(
        "the state folder {} is not yours: {} belongs to {owner}, and baton runs as {me}; \
         working in it would leave files of two owners\n  help: run baton as its owner, or take the folder over with `chown -R {} {}`, or use another --state-dir",
        dir.display(),
        path.display(),
        chown_user(me),
        dir.display()
    )]
    NotYours {
        dir: PathBuf,
        path: PathBuf,
        /// "name (uid N)".
        owner: String,
        me: String,
    },

    /// Another engine holds a run kept in PostgreSQL.
    #[error(
        "the run at {at} is in use by baton on {holder}; stop that engine, or keep this run apart with `?schema=NAME` in --store"
    )]
    RunHeld {
        at: String,
        /// "host, pid N".
        holder: String,
        pid: Option<u32>,
    },

    /// The PostgreSQL server did not answer when the store opened.
    #[error(
        "cannot reach the run's database at {host} ({at}): {reason}\n  help: check that PostgreSQL runs there and takes connections from this machine (`pg_isready -h HOST -p PORT`), and the address in --store or BATON_STORE"
    )]
    Unreachable {
        at: String,
        host: String,
        reason: String,
    },

    /// Another engine of the fleet holds the task a decision concerns.
    #[error("{reason}")]
    HeldElsewhere { reason: String },

    /// A commit to the run's PostgreSQL database was refused. The engine
    /// stops writing: it has applied events that are not committed.
    #[error(
        "the run's database at {at} refused a commit ({reason}); this engine's events after its seq {durable} are not committed, and it stops\n  help: start the engine again once the cause is fixed: it carries on from the last commit (at-least-once: attempts under way run again)"
    )]
    RunWriteFailed {
        at: String,
        reason: String,
        durable: u64,
    },

    /// A query on the run's PostgreSQL database failed.
    #[error("the run's database at {at}: {reason}")]
    Postgres { at: String, reason: String },

    /// The journal only takes events in increasing `seq` order.
    #[error(
        "event seq {seq} was appended after seq {after}; events must be appended in increasing seq order"
    )]
    OutOfOrder { seq: u64, after: u64 },
}

/// The user as `chown` takes it: "ann (uid 1000)" gives "ann", "uid 7" gives "7".
fn chown_user(described: &str) -> &str {
    described
        .strip_prefix("uid ")
        .unwrap_or_else(|| described.split(" (uid ").next().unwrap_or(described))
}

fn describe_pid(pid: Option<u32>) -> String {
    match pid {
        Some(pid) => format!("pid {pid}"),
        None => "pid unknown".to_string(),
    }
}

impl StoreError {
    /// The process that holds the run, when another one does.
    pub fn holder_pid(&self) -> Option<u32> {
        match self {
            StoreError::Locked { pid, .. } | StoreError::RunHeld { pid, .. } => *pid,
            _ => None,
        }
    }

    pub(crate) fn db(path: impl AsRef<Path>, source: rusqlite::Error) -> StoreError {
        let help = match source.sqlite_error_code() {
            Some(rusqlite::ErrorCode::DiskFull) => "free space on its disk, then run baton again",
            Some(rusqlite::ErrorCode::NotADatabase)
            | Some(rusqlite::ErrorCode::DatabaseCorrupt) => {
                "the file is damaged: restore it from a backup, or move the folder aside and start over \
                 (`sqlite3 baton.db .recover` may save what is left)"
            }
            Some(rusqlite::ErrorCode::ReadOnly) | Some(rusqlite::ErrorCode::CannotOpen) => {
                "check that the folder and baton.db are writable by this user"
            }
            _ => "check the folder's permissions and free space",
        };
        StoreError::Database {
            path: path.as_ref().to_path_buf(),
            source,
            help,
        }
    }

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
