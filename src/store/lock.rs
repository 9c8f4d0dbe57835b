//! One process per state folder: an exclusive `flock` on `LOCK`, held for the
//! life of the `Store`. The file records the holder's pid so that the next
//! process can say who is in the way.
//!
//! `flock` belongs to the open file description, so the kernel drops it when
//! the holder exits, even after kill -9: a stale `LOCK` file never blocks a
//! restart. A second open in the same process conflicts too.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::os::unix::fs::OpenOptionsExt;

use super::error::{IoContext, StoreError};
use super::legacy::layout::Layout;

/// Whether an engine holds the state folder `dir` now (a look, not a
/// hold: a shared lock taken and dropped at once when nobody holds it).
pub fn held(dir: &std::path::Path) -> bool {
    let path = Layout::new(dir).lock();
    let Ok(file) = File::open(&path) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

/// The held lock; dropping it releases the folder.
#[derive(Debug)]
pub(crate) struct StateLock {
    _file: File,
}

impl StateLock {
    pub(crate) fn acquire(layout: &Layout) -> Result<StateLock, StoreError> {
        let path = layout.lock();
        // No truncation on open: the file may belong to the holder, whose pid
        // we are about to read.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(super::private::FILE_MODE)
            .open(&path)
            .at(&path)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    dir: layout.dir().to_path_buf(),
                    pid: read_pid(&mut file),
                });
            }
            Err(TryLockError::Error(e)) => return Err(StoreError::io(&path, e)),
        }
        file.set_len(0).at(&path)?;
        file.rewind().at(&path)?;
        // The pid is for people and error messages only; the lock itself is
        // the flock, so it is not synced.
        writeln!(file, "{}", std::process::id()).at(&path)?;
        Ok(StateLock { _file: file })
    }
}

/// The holder's pid, if it has written one yet.
pub(crate) fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_names_the_holder() {
        let tmp = tempfile::tempdir().unwrap();
        let layout = Layout::new(tmp.path());
        let held = StateLock::acquire(&layout).unwrap();
        match StateLock::acquire(&layout) {
            Err(StoreError::Locked { dir, pid }) => {
                assert_eq!(dir, tmp.path());
                assert_eq!(pid, Some(std::process::id()));
            }
            other => panic!("expected Locked, got {other:?}"),
        }
        drop(held);
        let again = StateLock::acquire(&layout).unwrap();
        let text = std::fs::read_to_string(layout.lock()).unwrap();
        assert_eq!(text.trim(), std::process::id().to_string());
        drop(again);
    }

    #[test]
    fn locked_message_says_what_to_do() {
        let e = StoreError::Locked {
            dir: "/srv/state".into(),
            pid: Some(4242),
        };
        assert_eq!(
            e.to_string(),
            "state folder /srv/state is in use by baton (pid 4242); stop it or use another --state-dir"
        );
    }
}
