//! The pipeline a state folder was run with, kept inside it so that commands
//! given later (`baton approve`, `baton list`) know its phases. The schema
//! files its phases name (`output_schema`) are kept beside it, so that a run
//! going on without its file checks outputs against the schemas it started
//! with, even when the files have changed or gone since.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton::spec::{self, Pipeline};

const COPY: &str = "pipeline.toml";
const SOURCE: &str = "pipeline.source";
/// A JSON object: each schema file's resolved path to its text.
const SCHEMAS: &str = "pipeline.schemas.json";

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

/// Keeps a copy of the pipeline file, where it came from, and the schema
/// files it was loaded with (`schemas`, from [`Pipeline::schema_files`]).
pub fn save(
    state_dir: &Path,
    pipeline_file: &Path,
    schemas: &BTreeMap<PathBuf, String>,
) -> Result<(), String> {
    let source = std::fs::canonicalize(pipeline_file)
        .map_err(|e| format!("cannot resolve {}: {e}", pipeline_file.display()))?;
    let text = std::fs::read_to_string(&source)
        .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
    write_atomic(&state_dir.join(COPY), text.as_bytes())?;
    write_atomic(&state_dir.join(SOURCE), source.to_string_lossy().as_bytes())?;
    let kept = state_dir.join(SCHEMAS);
    if schemas.is_empty() {
        return match std::fs::remove_file(&kept) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", kept.display()))
            }
            _ => Ok(()),
        };
    }
    let json = serde_json::to_vec_pretty(schemas)
        .map_err(|e| format!("cannot write {}: {e}", kept.display()))?;
    write_atomic(&kept, &json)
}

/// The schema files kept with the pipeline; none when the folder keeps none.
fn kept_schemas(state_dir: &Path) -> Result<BTreeMap<PathBuf, String>, String> {
    let path = state_dir.join(SCHEMAS);
    let bytes = match std::fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    };
    serde_json::from_slice(&bytes).map_err(|e| {
        format!(
            "the schema files kept in {} cannot be read: {e}\n  help: run again with the pipeline file (`baton run PIPELINE --state-dir DIR`), which keeps them anew",
            path.display()
        )
    })
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
    let schemas = kept_schemas(state_dir)?;
    spec::parse_kept(&text, &source, &schemas).map_err(|e| {
        format!(
            "the pipeline kept in {} no longer loads:\n{e}",
            copy.display()
        )
    })
}
