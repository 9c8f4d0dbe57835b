//! Emptying a state folder, for `baton clean-state`: only while no engine
//! holds it, and under the folder's own lock so that none can start meanwhile.

use std::fs::{self, File, TryLockError};
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::error::{IoContext, StoreError};
use super::legacy::layout::Layout;
use super::lock::{StateLock, read_pid};

/// `Err(Locked)` with the holder's pid when a process holds the folder's
/// lock; `Ok` when none does (or the folder has no lock file). Changes nothing.
pub fn check_not_held(dir: &Path) -> Result<(), StoreError> {
    let layout = Layout::new(dir);
    let path = layout.lock();
    let mut file = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(StoreError::io(&path, e)),
    };
    match file.try_lock() {
        // Dropping the file releases the probe's lock at once.
        Ok(()) => Ok(()),
        Err(TryLockError::WouldBlock) => Err(StoreError::Locked {
            dir: dir.to_path_buf(),
            pid: read_pid(&mut file),
        }),
        Err(TryLockError::Error(e)) => Err(StoreError::io(&path, e)),
    }
}

/// Takes the folder's lock (refused with the holder's pid while an engine
/// runs), removes everything in it but a `README.md`, the lock file last,
/// and returns the top-level entries removed. The folder itself stays.
pub fn remove_contents(dir: &Path) -> Result<Vec<PathBuf>, StoreError> {
    let layout = Layout::new(dir);
    let lock = StateLock::acquire(&layout)?;
    let lock_path = layout.lock();
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .at(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .at(dir)?;
    entries.sort();
    // The repository's own `state/README.md` says what the folder is for.
    entries.retain(|p| *p != lock_path && p.file_name().is_none_or(|n| n != "README.md"));
    for path in &entries {
        let removed = if path.is_dir() && !path.is_symlink() {
            fs::remove_dir_all(path)
        } else {
            fs::remove_file(path)
        };
        removed.at(path)?;
    }
    fs::remove_file(&lock_path).at(&lock_path)?;
    drop(lock);
    entries.push(lock_path);
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_while_held_then_everything_goes() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        fs::create_dir_all(dir.join("journal")).unwrap();
        fs::write(dir.join("journal/00000000000000000001.log"), "x").unwrap();
        fs::write(dir.join("RUN_LOG.md"), "# log").unwrap();
        assert!(check_not_held(dir).is_ok(), "no lock file yet");
        let held = StateLock::acquire(&Layout::new(dir)).unwrap();
        for result in [check_not_held(dir), remove_contents(dir).map(|_| ())] {
            match result {
                Err(StoreError::Locked { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
                other => panic!("expected Locked, got {other:?}"),
            }
        }
        assert!(
            dir.join("RUN_LOG.md").exists(),
            "nothing removed while held"
        );
        drop(held);
        assert!(check_not_held(dir).is_ok());
        let removed = remove_contents(dir).unwrap();
        let names: Vec<String> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["RUN_LOG.md", "journal", "LOCK"]);
        assert_eq!(fs::read_dir(dir).unwrap().count(), 0);
        assert!(dir.is_dir());
    }
}
