//! Where a run is kept: in its state folder (SQLite, the default) or in
//! PostgreSQL. The one place that opens a store or a reader for either.

use std::path::Path;
use std::sync::Arc;

use super::error::StoreError;
use super::model::{Recovered, RunMeta};
use super::postgres::{PgReader, PgStore, PgTarget};
use super::{RunReader, RunStore, SqliteReader, SqliteStore};

/// Where a run is kept.
#[derive(Debug, Clone, Default)]
pub enum Place {
    /// `baton.db` in the state folder.
    #[default]
    Folder,
    /// A schema in a PostgreSQL database, shared by engines anywhere.
    Postgres(Box<PgTarget>),
}

/// A store, what it gave back, and the run's pipeline as stored.
pub type Opened = (Box<dyn RunStore>, Recovered, Option<RunMeta>);

impl Place {
    /// The place an address names: `postgres://…` (or `postgresql://…`, or
    /// libpq's `key=value` words) is PostgreSQL; nothing is the folder.
    pub fn parse(address: Option<&str>) -> Result<Place, String> {
        match address.map(str::trim).filter(|a| !a.is_empty()) {
            None => Ok(Place::Folder),
            Some(a) if a == "folder" || a == "sqlite" => Ok(Place::Folder),
            Some(a) => PgTarget::parse(a).map(|t| Place::Postgres(Box::new(t))),
        }
    }

    pub fn is_folder(&self) -> bool {
        matches!(self, Place::Folder)
    }

    /// Opens the run for its engine.
    pub fn open(&self, state_dir: &Path, meta: &RunMeta) -> Result<Opened, StoreError> {
        match self {
            Place::Folder => {
                let (store, recovered, stored) = SqliteStore::open(state_dir, meta)?;
                Ok((Box::new(store), recovered, stored))
            }
            Place::Postgres(target) => {
                // The folder still holds what is this engine's own: its
                // control socket, the run log, the pipeline's copy.
                let tightened = super::private::secure(state_dir)?;
                let (store, mut recovered, stored) = PgStore::open(target, meta)?;
                recovered.warnings.extend(tightened);
                Ok((Box::new(store), recovered, stored))
            }
        }
    }

    /// Opens the run for reading, beside any engine.
    pub fn reader(&self, state_dir: &Path) -> Result<Arc<dyn RunReader>, StoreError> {
        match self {
            Place::Folder => Ok(Arc::new(SqliteReader::open(state_dir)?)),
            Place::Postgres(target) => Ok(Arc::new(PgReader::open(target)?)),
        }
    }

    /// Where the run is, for messages: the folder, or the address without
    /// its password.
    pub fn describe(&self, state_dir: &Path) -> String {
        match self {
            Place::Folder => state_dir.display().to_string(),
            Place::Postgres(target) => target.to_string(),
        }
    }
}
