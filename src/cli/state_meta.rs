//! The pipeline a state folder was run with, kept inside it so that commands
//! given later (`baton approve`, `baton list`) know its phases. The schema
//! files its phases name (`output_schema`) are kept beside it, so that a run
//! going on without its file checks outputs against the schemas it started
//! with, even when the files have changed or gone since. A run in
//! PostgreSQL keeps its pipeline with the run as well (`run_pipeline`),
//! and that one wins: commands work from any machine, with any folder.

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

/// A pipeline as it is kept: its file's text, where it was first run
/// from, and the schema files its phases name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub text: String,
    pub source: PathBuf,
    pub schemas: BTreeMap<PathBuf, String>,
}

impl Kept {
    /// The pipeline file as it is now, with the schema files it was loaded
    /// with (`schemas`, from [`Pipeline::schema_files`]).
    pub fn of_file(
        pipeline_file: &Path,
        schemas: BTreeMap<PathBuf, String>,
    ) -> Result<Kept, String> {
        let source = std::fs::canonicalize(pipeline_file)
            .map_err(|e| format!("cannot resolve {}: {e}", pipeline_file.display()))?;
        let text = std::fs::read_to_string(&source)
            .map_err(|e| format!("cannot read {}: {e}", source.display()))?;
        Ok(Kept {
            text,
            source,
            schemas,
        })
    }

    /// The pipeline, parsed as if from where it was first run, so that
    /// relative paths mean what they meant; `at` says where it is kept.
    pub fn parse(&self, at: &str) -> Result<Pipeline, String> {
        spec::parse_kept(&self.text, &self.source, &self.schemas)
            .map_err(|e| format!("the pipeline kept {at} no longer loads:\n{e}"))
    }
}

/// Keeps a copy of the pipeline, where it came from, and its schema files
/// in the state folder.
pub fn save(state_dir: &Path, kept: &Kept) -> Result<(), String> {
    write_atomic(&state_dir.join(COPY), kept.text.as_bytes())?;
    write_atomic(
        &state_dir.join(SOURCE),
        kept.source.to_string_lossy().as_bytes(),
    )?;
    let path = state_dir.join(SCHEMAS);
    if kept.schemas.is_empty() {
        return match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(format!("cannot remove {}: {e}", path.display()))
            }
            _ => Ok(()),
        };
    }
    let json = serde_json::to_vec_pretty(&kept.schemas)
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    write_atomic(&path, &json)
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

/// The pipeline kept in a state folder.
fn in_folder(state_dir: &Path) -> Result<Kept, String> {
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
    let source = std::fs::read_to_string(state_dir.join(SOURCE))
        .map(PathBuf::from)
        .unwrap_or_else(|_| copy.clone());
    let schemas = kept_schemas(state_dir)?;
    Ok(Kept {
        text,
        source,
        schemas,
    })
}

/// The run's pipeline and where it is kept (for messages: "in
/// DIR/pipeline.toml", "with the run in postgres://…"): for a run in
/// PostgreSQL, the one kept with the run, which every engine and command
/// of the fleet shares; else, or when the run keeps none yet, the copy in
/// the state folder.
pub fn kept(state_dir: &Path) -> Result<(Kept, String), String> {
    let place = super::place::get();
    if !place.is_folder()
        && let Some((kept, _)) = super::run_pipeline::read()?
    {
        return Ok((
            kept,
            format!("with the run in {}", place.describe(state_dir)),
        ));
    }
    let kept = in_folder(state_dir).map_err(|e| {
        if place.is_folder() {
            e
        } else {
            format!(
                "the run in {} keeps no pipeline, nor does {} hold a copy\n  help: start the run with its pipeline file: `baton run PIPELINE {}`",
                place.describe(state_dir),
                state_dir.display(),
                super::place::flags(state_dir)
            )
        }
    })?;
    Ok((kept, format!("in {}", copy_path(state_dir).display())))
}

/// The run's pipeline (see [`kept`]).
pub fn load(state_dir: &Path) -> Result<Pipeline, String> {
    let (kept, at) = kept(state_dir)?;
    kept.parse(&at)
}
