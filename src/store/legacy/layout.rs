//! Where things live inside a state folder, and what their names mean.
//!
//! ```text
//! <dir>/LOCK                      pid of the process holding the lock
//! <dir>/journal/<seq:020>.log     journal segments, named by their first seq
//! <dir>/tasks/<task_id>.json      task snapshots
//! <dir>/quarantine/<name>.<time>  corrupt files, moved aside
//! ```

use std::path::{Path, PathBuf};

const SEGMENT_SUFFIX: &str = ".log";
const SNAPSHOT_SUFFIX: &str = ".json";
/// Files being written before their atomic rename.
pub(crate) const TMP_SUFFIX: &str = ".tmp";

#[derive(Debug, Clone)]
pub(crate) struct Layout {
    dir: PathBuf,
}

impl Layout {
    pub(crate) fn new(dir: &Path) -> Layout {
        Layout {
            dir: dir.to_path_buf(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn lock(&self) -> PathBuf {
        self.dir.join("LOCK")
    }

    pub(crate) fn journal(&self) -> PathBuf {
        self.dir.join("journal")
    }

    pub(crate) fn tasks(&self) -> PathBuf {
        self.dir.join("tasks")
    }

    pub(crate) fn quarantine(&self) -> PathBuf {
        self.dir.join("quarantine")
    }

    /// The segment whose first event has seq `first_seq` (or later).
    pub(crate) fn segment(&self, first_seq: u64) -> PathBuf {
        self.journal().join(segment_name(first_seq))
    }
}

pub(crate) fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}{SEGMENT_SUFFIX}")
}

/// The first seq a segment file name stands for; `None` for other files.
pub(crate) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SEGMENT_SUFFIX)?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The task id a snapshot file name stands for; `None` for other files.
pub(crate) fn parse_snapshot_name(name: &str) -> Option<&str> {
    name.strip_suffix(SNAPSHOT_SUFFIX)
        .filter(|id| valid_task_id(id))
}

/// Task ids become file names: `[A-Za-z0-9._-]`, not starting with '.'.
/// The engine validates ids on the way in; the store checks again so that a
/// bad id can never write outside `tasks/`.
pub(crate) fn valid_task_id(id: &str) -> bool {
    !id.is_empty()
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_name(42), "00000000000000000042.log");
        assert_eq!(parse_segment_name(&segment_name(42)), Some(42));
        assert_eq!(parse_segment_name(&segment_name(u64::MAX)), Some(u64::MAX));
        assert_eq!(parse_segment_name("42.log"), None);
        assert_eq!(parse_segment_name("0000000000000000004x.log"), None);
        assert_eq!(parse_segment_name("00000000000000000042.log.tmp"), None);
    }

    #[test]
    fn snapshot_names() {
        assert_eq!(parse_snapshot_name("a-1.b_c.json"), Some("a-1.b_c"));
        assert_eq!(parse_snapshot_name(".hidden.json"), None);
        assert_eq!(parse_snapshot_name("a.json.tmp"), None);
        assert_eq!(parse_snapshot_name("a b.json"), None);
        assert!(!valid_task_id("../x"));
        assert!(!valid_task_id(""));
    }
}
