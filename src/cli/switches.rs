//! Phases switched off for a run (`--disable`, `--only`), kept in its state
//! folder (and with a run in PostgreSQL, see `run_pipeline`) so that going
//! on later, with or without the pipeline file, runs the same phases. New
//! switches replace the kept ones; `--all-phases` clears them.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const KEPT: &str = "switches.json";

/// Phases switched off for one run: each task records them as skipped.
#[derive(clap::Args, Clone, Default, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Switches {
    /// Switch a phase off for this run (repeatable): it never runs, and each
    /// task records it as skipped ("disabled by --disable"). Kept with the
    /// run: going on later switches it off again.
    #[arg(long, value_name = "PHASE")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disable: Vec<String>,
    /// Run only these phases; the others are recorded as skipped ("not in
    /// --only"). Kept with the run, as --disable.
    #[arg(long, value_name = "PHASE,...", value_delimiter = ',')]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub only: Vec<String>,
    /// Forget the switches a run was started with: every phase enabled in
    /// the file runs from now on.
    #[arg(long, conflicts_with_all = ["disable", "only"])]
    #[serde(skip)]
    pub all_phases: bool,
}

impl Switches {
    /// The same switches as command-line arguments, for an engine started
    /// in the background.
    pub fn to_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        for d in &self.disable {
            args.extend(["--disable".to_string(), d.clone()]);
        }
        if !self.only.is_empty() {
            args.extend(["--only".to_string(), self.only.join(",")]);
        }
        if self.all_phases {
            args.push("--all-phases".into());
        }
        args
    }

    fn is_empty(&self) -> bool {
        self.disable.is_empty() && self.only.is_empty()
    }

    /// "--disable a --only b,c", as a person would type them.
    pub fn describe(&self) -> String {
        self.to_args().join(" ")
    }

    /// The switches this start runs with: those given, else those the
    /// folder's run was started with (said on stderr), else none.
    pub fn for_run(&self, state_dir: &Path) -> Result<Switches, String> {
        if !self.is_empty() || self.all_phases {
            return Ok(self.clone());
        }
        let Some(kept) = kept(state_dir)? else {
            return Ok(Switches::default());
        };
        if !kept.is_empty() {
            eprintln!(
                "going on with the phases switched off when this run began ({}); `--all-phases` runs them all",
                kept.describe()
            );
        }
        Ok(kept)
    }

    /// Keeps these switches with the folder's run, for the next start.
    pub fn keep(&self, state_dir: &Path) -> Result<(), String> {
        let path = kept_path(state_dir);
        let text = serde_json::to_string(self).map_err(|e| e.to_string())?;
        baton::store::private::write_file(&path, text.as_bytes())
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

fn kept_path(state_dir: &Path) -> PathBuf {
    state_dir.join(KEPT)
}

/// The switches kept with the run (in PostgreSQL), else in the state
/// folder, if any.
fn kept(state_dir: &Path) -> Result<Option<Switches>, String> {
    if let Some((_, switches)) = super::run_pipeline::read()? {
        return Ok(Some(switches));
    }
    let path = kept_path(state_dir);
    match std::fs::read_to_string(&path) {
        Ok(text) => serde_json::from_str(&text).map(Some).map_err(|e| {
            format!(
                "{} does not hold switches ({e})\n  help: give --disable/--only again, or --all-phases, to replace it",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir() -> tempfile::TempDir {
        tempfile::tempdir().expect("temp dir")
    }

    #[test]
    fn kept_switches_come_back_when_none_are_given_and_new_ones_replace_them() {
        let d = dir();
        assert_eq!(
            Switches::default().for_run(d.path()),
            Ok(Switches::default())
        );
        let first = Switches {
            disable: vec!["lint".into()],
            ..Switches::default()
        };
        first.keep(d.path()).unwrap();
        assert_eq!(Switches::default().for_run(d.path()), Ok(first.clone()));
        let other = Switches {
            only: vec!["plan".into()],
            ..Switches::default()
        };
        assert_eq!(other.for_run(d.path()), Ok(other.clone()));
        let all = Switches {
            all_phases: true,
            ..Switches::default()
        };
        let cleared = all.for_run(d.path()).unwrap();
        assert!(cleared.is_empty());
    }

    #[test]
    fn an_unreadable_file_says_how_to_replace_it() {
        let d = dir();
        std::fs::write(d.path().join(KEPT), "not json").unwrap();
        let e = Switches::default().for_run(d.path()).unwrap_err();
        assert!(e.contains("--all-phases"), "{e}");
    }
}
