//! The pipeline a state folder was run with, kept inside it so that commands
//! given later (`baton approve`, `baton list`) know its phases.

use std::path::{Path, PathBuf};

use baton::spec::{self, Pipeline};

const COPY: &str = "pipeline.toml";
const SOURCE: &str = "pipeline.source";

/// Where a state folder keeps its pipeline.
pub fn copy_path(state_dir: &Path) -> PathBuf {
    state_dir.join(COPY)
}

/// Where the kept pipeline was first run from, if recorded.
pub fn source(state_dir: &Path) -> Option<PathBuf> {
    std::fs::read_to_string(state_dir.join(SOURCE))
        .ok()
        .map(PathBuf::from)
}

/// Keeps a copy of the pipeline file and where it came from.
pub fn save(state_dir: &Path, pipeline_file: &Path) -> Result<(), String> {
    let source = std::fs::canonicalize(pipeline_file)
        .map_err(|e| format!("cannot resolve {}: {e}", pipeline_file.display()))?;
    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    write_atomic(&state_dir.join(COPY), text.as_bytes())?;
    write_atomic(&state_dir.join(SOURCE), source.to_string_lossy().as_bytes())
}

fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), String> {
    baton::store::private::write_file(path, bytes)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The pipeline recorded in a state folder.
pub fn load(state_dir: &Path) -> Result<Pipeline, String> {
    let copy = state_dir.join(COPY);
    let text = std::fs::read_to_string(&copy).map_err(|_| {
        if state_dir.is_dir() {
            format!(
                "{} holds no {COPY}: it was not made by `baton run`\n  help: pass the state folder of a run with --state-dir",
                state_dir.display()
            )
        } else {
            format!(
                "no state folder at {}\n  help: start a run with `baton run PIPELINE --input FILE`, or pass --state-dir",
                state_dir.display()
            )
        }
    })?;
    // Parse as if from the original place, so relative paths mean what they meant.
    let source = std::fs::read_to_string(state_dir.join(SOURCE))
        .map(PathBuf::from)
        .unwrap_or_else(|_| copy.clone());
    spec::parse(&text, &source).map_err(|e| {
        format!(
            "the pipeline kept in {} no longer loads:\n{e}",
            copy.display()
        )
    })
}
