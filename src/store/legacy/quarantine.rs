//! Corrupt files are never deleted: they are moved or copied to
//! `quarantine/<original-name>.<UTC timestamp>` so a person can look at them.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::fsync::{parent, sync_dir, write_new_synced};
use super::layout::Layout;
use crate::store::error::{IoContext, StoreError};

/// Saves `bytes` as a quarantined copy of the file called `original_name`.
pub(crate) fn save(
    layout: &Layout,
    original_name: &str,
    bytes: &[u8],
) -> Result<PathBuf, StoreError> {
    let dir = ensure_dir(layout)?;
    for path in candidates(&dir, original_name) {
        match write_new_synced(&path, bytes) {
            Ok(()) => {
                sync_dir(&dir)?;
                return Ok(path);
            }
            Err(StoreError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {
            }
            Err(e) => return Err(e),
        }
    }
    Err(no_free_name(&dir, original_name))
}

/// Moves the file at `path` into quarantine.
pub(crate) fn move_in(layout: &Layout, path: &Path) -> Result<PathBuf, StoreError> {
    let dir = ensure_dir(layout)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "unnamed".to_string());
    // The lock makes this process the only one writing here, so checking for
    // a free name and then renaming cannot race.
    let Some(target) = candidates(&dir, &name)
        .find(|p| matches!(p.symlink_metadata(), Err(e) if e.kind() == io::ErrorKind::NotFound))
    else {
        return Err(no_free_name(&dir, &name));
    };
    fs::rename(path, &target).at(path)?;
    sync_dir(&dir)?;
    sync_dir(parent(path))?;
    Ok(target)
}

fn ensure_dir(layout: &Layout) -> Result<PathBuf, StoreError> {
    let dir = layout.quarantine();
    fs::create_dir_all(&dir).at(&dir)?;
    Ok(dir)
}

/// `<name>.<timestamp>`, then `<name>.<timestamp>.1`, ... for the rare case of
/// two files quarantined within the same microsecond.
fn candidates<'a>(dir: &'a Path, name: &'a str) -> impl Iterator<Item = PathBuf> + 'a {
    let stamp = Timestamp::now().strftime("%Y%m%dT%H%M%S.%6fZ").to_string();
    (0..1000u32).map(move |n| match n {
        0 => dir.join(format!("{name}.{stamp}")),
        n => dir.join(format!("{name}.{stamp}.{n}")),
    })
}

fn no_free_name(dir: &Path, name: &str) -> StoreError {
    StoreError::io(
        dir.join(name),
        io::Error::new(
            io::ErrorKind::AlreadyExists,
            "no free name in quarantine; clear out old files there",
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_original_and_never_collide() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let a = save(&layout, "x.log", b"one").unwrap();
        let b = save(&layout, "x.log", b"two").unwrap();
        assert_ne!(a, b);
        for p in [&a, &b] {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert!(name.starts_with("x.log.20"), "{name}");
        }
        assert_eq!(fs::read(&a).unwrap(), b"one");
        assert_eq!(fs::read(&b).unwrap(), b"two");

        let f = tmp.path().join("y.json");
        fs::write(&f, b"bad").unwrap();
        let moved = move_in(&layout, &f).unwrap();
        assert!(!f.exists());
        assert_eq!(fs::read(&moved).unwrap(), b"bad");
        assert_eq!(moved.parent().unwrap(), layout.quarantine());
    }
}
