//! Reading a state folder back: every journal segment, then every snapshot.
//!
//! In `Repair` mode (the lock is held) damage is fixed on disk: a torn tail
//! of the newest segment is cut off, other bad lines are dropped from their
//! segment, unreadable snapshots are moved aside; every original is kept in
//! quarantine. In `ReadOnly` mode nothing on disk changes and damage is only
//! skipped, since another process may own the folder.

use std::fs::{self, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use super::Recovered;
use super::fsync::{replace_atomically, sync_dir};
use super::journal::{LineFault, Scan};
use super::layout::{Layout, TMP_SUFFIX, parse_segment_name, parse_snapshot_name};
use super::quarantine;
use super::snapshot;
use crate::engine::event::Event;
use crate::engine::task::Task;
use crate::store::error::{IoContext, StoreError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Repair,
    ReadOnly,
}

pub(crate) struct Recovery {
    pub recovered: Recovered,
}

/// Bad lines listed one by one in a warning; the rest are counted.
const LINES_NAMED: usize = 10;

pub(crate) fn recover(layout: &Layout, mode: Mode) -> Result<Recovery, StoreError> {
    let mut warnings = Vec::new();
    // The journal before the snapshots: a live owner may checkpoint while a
    // read-only reader runs. Snapshots read later are only ever newer, and
    // any segment pruned in between was covered by snapshots written before
    // the prune, so no task misses events. The other order could.
    let (events, segments) = read_journal(layout, mode, &mut warnings)?;
    let snapshots = read_snapshots(layout, mode, &mut warnings)?;
    if mode == Mode::Repair {
        make_durable(layout, &segments)?;
    }
    // A segment's name is one past every seq before it; counting it keeps
    // seqs from being reused when a checkpoint pruned every event, such as
    // run-level events no snapshot records.
    let last_seq = snapshots
        .iter()
        .map(|t| t.seq)
        .chain(events.iter().map(|e| e.seq))
        .chain(segments.iter().map(|s| s.saturating_sub(1)))
        .max()
        .unwrap_or(0);
    for w in &warnings {
        tracing::warn!("{w}");
    }
    Ok(Recovery {
        recovered: Recovered {
            snapshots,
            events,
            last_seq,
            warnings,
        },
    })
}

fn read_journal(
    layout: &Layout,
    mode: Mode,
    warnings: &mut Vec<String>,
) -> Result<(Vec<Event>, Vec<u64>), StoreError> {
    let mut segments = Vec::new();
    for (name, path) in list(&layout.journal())? {
        if let Some(first) = parse_segment_name(&name) {
            segments.push(first);
        } else if name.ends_with(TMP_SUFFIX) && mode == Mode::Repair {
            // A segment rewrite that a crash interrupted; the original is intact.
            remove(&path)?;
        }
    }
    segments.sort_unstable();

    let mut events: Vec<Event> = Vec::new();
    for (i, &first) in segments.iter().enumerate() {
        let path = layout.segment(first);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            // Pruned by the owner since the listing; snapshots cover it.
            Err(e) if e.kind() == io::ErrorKind::NotFound && mode == Mode::ReadOnly => continue,
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        let scan = Scan::new(&bytes);
        if !scan.is_clean() {
            let newest = i + 1 == segments.len();
            damaged_segment(layout, mode, &path, &bytes, &scan, newest, warnings)?;
        }
        for line in scan.lines {
            let Ok(e) = line.event else { continue };
            if let Some(prev) = events.last().map(|p| p.seq)
                && e.seq <= prev
            {
                warnings.push(format!(
                    "journal segment {} line {}: event seq {} does not follow seq {prev}; skipped",
                    path.display(),
                    line.number,
                    e.seq
                ));
                continue;
            }
            events.push(e);
        }
    }
    Ok((events, segments))
}

fn damaged_segment(
    layout: &Layout,
    mode: Mode,
    path: &Path,
    bytes: &[u8],
    scan: &Scan,
    newest: bool,
    warnings: &mut Vec<String>,
) -> Result<(), StoreError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // Only the newest segment can be torn by a crash: the writer syncs a
    // segment completely before it starts the next.
    let torn_at = scan.bad_tail_start().filter(|_| newest);
    match (mode, torn_at) {
        (Mode::Repair, Some(at)) => {
            let saved = quarantine::save(layout, &name, &bytes[at..])?;
            let f = OpenOptions::new().write(true).open(path).at(path)?;
            f.set_len(at as u64).at(path)?;
            f.sync_all().at(path)?;
            let first_bad = scan.bad().next().map_or(0, |(l, _)| l.number);
            warnings.push(format!(
                "journal segment {}: incomplete write at the end (from line {first_bad}, {} bytes), \
                 left by an interrupted run; cut back to the last complete event, the bytes are saved as {}",
                path.display(),
                bytes.len() - at,
                saved.display()
            ));
        }
        (Mode::Repair, None) => {
            let saved = quarantine::save(layout, &name, bytes)?;
            let tmp = PathBuf::from(format!("{}{TMP_SUFFIX}", path.display()));
            replace_atomically(path, &tmp, &scan.good_bytes(bytes))?;
            warnings.push(format!(
                "journal segment {}: {}; those lines were dropped and the original segment is saved as {}",
                path.display(),
                describe_bad_lines(scan),
                saved.display()
            ));
        }
        (Mode::ReadOnly, Some(_))
            if scan.bad().count() == 1
                && scan.bad().all(|(_, f)| *f == LineFault::Unterminated) =>
        {
            // Most likely the owner's write in progress, not damage.
            tracing::debug!("{}: last line incomplete; skipped", path.display());
        }
        (Mode::ReadOnly, _) => warnings.push(format!(
            "journal segment {}: {}; skipped (read-only: nothing was changed)",
            path.display(),
            describe_bad_lines(scan)
        )),
    }
    Ok(())
}

/// "line 3 (checksum mismatch), line 9 (...) and 4 more bad lines".
fn describe_bad_lines(scan: &Scan) -> String {
    let bad: Vec<_> = scan.bad().collect();
    let mut text = bad
        .iter()
        .take(LINES_NAMED)
        .map(|(l, f)| format!("line {} ({f})", l.number))
        .collect::<Vec<_>>()
        .join(", ");
    if bad.len() > LINES_NAMED {
        text.push_str(&format!(" and {} more bad lines", bad.len() - LINES_NAMED));
    }
    text
}

fn read_snapshots(
    layout: &Layout,
    mode: Mode,
    warnings: &mut Vec<String>,
) -> Result<Vec<Task>, StoreError> {
    let mut tasks = Vec::new();
    for (name, path) in list(&layout.tasks())? {
        if name.ends_with(TMP_SUFFIX) {
            // A checkpoint a crash interrupted before its rename; the
            // previous snapshot (if any) is intact.
            if mode == Mode::Repair {
                remove(&path)?;
            }
            continue;
        }
        let Some(id) = parse_snapshot_name(&name) else {
            continue;
        };
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound && mode == Mode::ReadOnly => continue,
            Err(e) => return Err(StoreError::io(&path, e)),
        };
        match snapshot::parse(&bytes, id) {
            Ok(task) => tasks.push(task),
            Err(why) => match mode {
                Mode::Repair => {
                    let moved = quarantine::move_in(layout, &path)?;
                    warnings.push(format!(
                        "task snapshot {} is unreadable ({why}); moved to {}, the other tasks load",
                        path.display(),
                        moved.display()
                    ));
                }
                Mode::ReadOnly => warnings.push(format!(
                    "task snapshot {} is unreadable ({why}); skipped",
                    path.display()
                )),
            },
        }
    }
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tasks)
}

/// After kill -9 the last run's newest writes may sit in the page cache
/// only; this run must not build on them until they are on disk. Earlier
/// segments were synced before the next one started, snapshots before their
/// rename, so the newest segment and the two directories are what is left.
fn make_durable(layout: &Layout, segments: &[u64]) -> Result<(), StoreError> {
    if let Some(&newest) = segments.last() {
        let path = layout.segment(newest);
        let f = OpenOptions::new().write(true).open(&path).at(&path)?;
        f.sync_data().at(&path)?;
    }
    sync_dir(&layout.journal())?;
    sync_dir(&layout.tasks())
}

/// `(file name, path)` of a directory's entries with UTF-8 names; a missing
/// directory is empty.
fn list(dir: &Path) -> Result<Vec<(String, PathBuf)>, StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.at(dir)?;
        if let Ok(name) = entry.file_name().into_string() {
            out.push((name, entry.path()));
        }
    }
    Ok(out)
}

fn remove(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(StoreError::io(path, e)),
        _ => Ok(()),
    }
}
