//! `baton clean-state`: empties a state folder that no engine holds. Without
//! `--force` it only says what it would remove.
//!
//! Exit statuses: 0 removed (or nothing to remove), 1 not removed because
//! `--force` was not given, 2 refused: the folder is in use, is not a state
//! folder, or could not be read or removed.

use std::path::Path;

use baton::report::format::thousands;
use baton::store::StoreError;
use baton::store::clean::{check_not_held, remove_contents};

/// Names only a state folder has; a folder with none of them is refused,
/// so that a mistyped `--state-dir` never empties a folder of other files.
const STATE_MARKERS: &[&str] = &["LOCK", "journal", "tasks", "pipeline.toml", "RUN_LOG.md"];

pub fn run(state_dir: &Path, force: bool) -> i32 {
    if !state_dir.exists() {
        println!(
            "no state folder at {}: nothing to remove",
            state_dir.display()
        );
        return 0;
    }
    if !state_dir.is_dir() {
        eprintln!(
            "error: {} is not a folder\n  help: pass the state folder of a run with --state-dir",
            state_dir.display()
        );
        return 2;
    }
    let entries = match contents(state_dir) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", state_dir.display());
            return 2;
        }
    };
    if entries.is_empty() {
        println!("{} is empty: nothing to remove", state_dir.display());
        return 0;
    }
    if !entries
        .iter()
        .any(|e| STATE_MARKERS.contains(&e.name.as_str()))
    {
        eprintln!(
            "error: {} does not look like a baton state folder (it has none of {}); nothing removed\n  help: pass the state folder of a run with --state-dir",
            state_dir.display(),
            STATE_MARKERS.join(", ")
        );
        return 2;
    }
    if let Err(e) = check_not_held(state_dir) {
        return refused(state_dir, e);
    }
    if !force {
        println!("would remove from {}:", state_dir.display());
        for e in &entries {
            println!("  {}", e.describe());
        }
        println!(
            "nothing removed: run `baton clean-state --force --state-dir {}` to remove them",
            state_dir.display()
        );
        return 1;
    }
    match remove_contents(state_dir) {
        Ok(removed) => {
            println!(
                "removed {} entr{} from {}; the folder is empty",
                removed.len(),
                if removed.len() == 1 { "y" } else { "ies" },
                state_dir.display()
            );
            0
        }
        Err(e) => refused(state_dir, e),
    }
}

fn refused(state_dir: &Path, e: StoreError) -> i32 {
    match e {
        StoreError::Locked { pid, .. } => {
            let who = pid.map_or("a baton process (pid unknown)".to_string(), |p| {
                format!("baton (pid {p})")
            });
            eprintln!(
                "refused: {} is in use by {who}; nothing removed\n  help: stop that run first (quit its dashboard, or Ctrl-C), then clean again",
                state_dir.display()
            );
        }
        other => eprintln!("error: {other}"),
    }
    2
}

/// One top-level entry of the folder, with what it holds.
struct Entry {
    name: String,
    is_dir: bool,
    files: u64,
    bytes: u64,
}

impl Entry {
    fn describe(&self) -> String {
        if self.is_dir {
            format!(
                "{}/  ({} file(s), {} bytes)",
                self.name,
                thousands(self.files),
                thousands(self.bytes)
            )
        } else {
            format!("{}  ({} bytes)", self.name, thousands(self.bytes))
        }
    }
}

fn contents(dir: &Path) -> std::io::Result<Vec<Entry>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        let (files, bytes) = if meta.is_dir() {
            sizes(&entry.path())?
        } else {
            (1, meta.len())
        };
        out.push(Entry {
            name: entry.file_name().to_string_lossy().into_owned(),
            is_dir: meta.is_dir(),
            files,
            bytes,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Files and bytes under a folder, not following links.
fn sizes(dir: &Path) -> std::io::Result<(u64, u64)> {
    let (mut files, mut bytes) = (0, 0);
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = std::fs::symlink_metadata(entry.path())?;
        if meta.is_dir() {
            let (f, b) = sizes(&entry.path())?;
            files += f;
            bytes += b;
        } else {
            files += 1;
            bytes += meta.len();
        }
    }
    Ok((files, bytes))
}
