//! Small helpers that make file system changes durable. A rename or a new
//! file is only durable once its directory has been synced too.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::Path;

use crate::store::error::{IoContext, StoreError};

/// Makes the directory's entries (new, renamed and removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir).and_then(|d| d.sync_all()).at(dir)
}

/// Creates `path` (which must not exist), writes `bytes` and syncs the file.
/// The caller syncs the directory.
pub(crate) fn write_new_synced(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .at(path)?;
    f.write_all(bytes).at(path)?;
    f.sync_all().at(path)
}

/// Replaces `path` with `bytes` so that a crash leaves either the old or the
/// new content: write `tmp`, sync it, rename it over `path`, sync the directory.
pub(crate) fn replace_atomically(path: &Path, tmp: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let mut f = File::create(tmp).at(tmp)?;
    f.write_all(bytes).at(tmp)?;
    f.sync_all().at(tmp)?;
    drop(f);
    fs::rename(tmp, path).at(path)?;
    sync_dir(parent(path))
}

/// The directory holding `path` ("." for a bare name).
pub(crate) fn parent(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}
