//! One pipeline per run across a fleet: a run in PostgreSQL keeps its
//! pipeline file's text, where it was first run from, its schema files and
//! its switches with the run. The first engine records them; one that
//! starts with another pipeline is refused while others serve the run, and
//! replaces the run's when none does (as a state folder's copy is
//! replaced). Commands read the run's pipeline from any machine.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use baton::store::Place;
use baton::store::postgres::PgTarget;
use baton::store::postgres::kept::{self, KeptPipeline, PipelineLock};

use super::pipeline_diff;
use super::state_meta::Kept;
use super::switches::Switches;

const IN_THE_RUN: &str = "in the run";

/// The pipeline and switches kept with this command's run; `None` for a run
/// in its state folder, or one in PostgreSQL that keeps none yet.
pub fn read() -> Result<Option<(Kept, Switches)>, String> {
    let Place::Postgres(target) = super::place::get() else {
        return Ok(None);
    };
    kept::read(target)
        .map_err(|e| e.to_string())?
        .map(|p| from_store(p, target))
        .transpose()
}

fn to_store(kept: &Kept, switches: &Switches) -> KeptPipeline {
    KeptPipeline {
        text: kept.text.clone(),
        path: kept.source.to_string_lossy().into_owned(),
        schemas: serde_json::to_string(&kept.schemas).unwrap_or_else(|_| "{}".into()),
        switches: serde_json::to_string(switches).unwrap_or_else(|_| "{}".into()),
    }
}

fn from_store(p: KeptPipeline, target: &PgTarget) -> Result<(Kept, Switches), String> {
    let bad = |what: &str, e: serde_json::Error| {
        format!(
            "the {what} kept with the run in {target} cannot be read: {e}\n  help: start an engine with the pipeline file, which keeps them anew when no other engine serves the run"
        )
    };
    let schemas: BTreeMap<PathBuf, String> = if p.schemas.is_empty() {
        BTreeMap::new()
    } else {
        serde_json::from_str(&p.schemas).map_err(|e| bad("schema files", e))?
    };
    let switches: Switches = if p.switches.is_empty() {
        Switches::default()
    } else {
        serde_json::from_str(&p.switches).map_err(|e| bad("switches", e))?
    };
    let kept = Kept {
        text: p.text,
        source: PathBuf::from(p.path),
        schemas,
    };
    Ok((kept, switches))
}

/// How a pipeline and its switches differ from the run's; none when the
/// engine may serve the run with them.
pub fn differences(
    here: &Kept,
    here_switches: &Switches,
    run: &Kept,
    run_switches: &Switches,
) -> Vec<String> {
    let mut lines = pipeline_diff::text(&here.text, &run.text, IN_THE_RUN);
    lines.extend(pipeline_diff::schemas(
        &here.schemas,
        &here.source,
        &run.schemas,
        &run.source,
        IN_THE_RUN,
    ));
    if (&here_switches.disable, &here_switches.only) != (&run_switches.disable, &run_switches.only)
    {
        let shown = |s: &Switches| match s.describe() {
            d if d.is_empty() => "none".to_string(),
            d => format!("`{d}`"),
        };
        lines.push(format!(
            "phases switched off: here {}, {IN_THE_RUN} {}",
            shown(here_switches),
            shown(run_switches)
        ));
    }
    lines
}

/// An engine about to open a run in PostgreSQL, holding the run's pipeline
/// lock until [`Joining::keep`].
pub struct Joining {
    lock: PipelineLock,
    /// What to record as the run's once the engine has opened it.
    record: Option<KeptPipeline>,
}

/// Before an engine opens the run at the place set: takes the run's
/// pipeline lock and compares `ours` (and `switches`) with the run's. A
/// pipeline that differs is refused while other engines serve the run; the
/// reason names the differences and what to do. `None` for a run in its
/// state folder.
pub fn join(
    state_dir: &Path,
    name: &str,
    ours: &Kept,
    switches: &Switches,
) -> Result<Option<Joining>, String> {
    let Place::Postgres(target) = super::place::get() else {
        return Ok(None);
    };
    let lock = PipelineLock::take(target).map_err(|e| e.to_string())?;
    let record = Some(to_store(ours, switches));
    let Some(stored) = lock.kept().map_err(|e| e.to_string())? else {
        return Ok(Some(Joining { lock, record }));
    };
    let (run, run_switches) = from_store(stored, target)?;
    let found = differences(ours, switches, &run, &run_switches);
    if found.is_empty() {
        return Ok(Some(Joining { lock, record: None }));
    }
    let live = lock.live_engines().map_err(|e| e.to_string())?;
    if live.is_empty() {
        eprintln!(
            "{name}: no engine serves the run in {}: this pipeline becomes the run's ({})",
            target,
            found.join("; ")
        );
        return Ok(Some(Joining { lock, record }));
    }
    let engines: Vec<String> = live
        .iter()
        .take(3)
        .map(|e| format!("pid {} on {}", e.pid, e.host))
        .chain((live.len() > 3).then(|| format!("{} more", live.len() - 3)))
        .collect();
    Err(format!(
        "this pipeline is not the run's, and {} the run in {target} with its own ({})\n{}\n  help: serve the run with its own pipeline by leaving the file out (`baton run --headless {}`); or give this pipeline a run of its own with another `?schema=NAME`; or stop the run's engines first, and this file becomes the run's pipeline",
        match live.len() {
            1 => "an engine serves".to_string(),
            n => format!("{n} engines serve"),
        },
        engines.join(", "),
        found
            .iter()
            .map(|l| format!("  {l}"))
            .collect::<Vec<_>>()
            .join("\n"),
        super::place::flags(state_dir)
    ))
}

impl Joining {
    /// Once the engine has opened the run: records the pipeline as the
    /// run's when it is new or replaces the run's, and lets go of the lock.
    pub fn keep(self) -> Result<(), String> {
        if let Some(record) = &self.record {
            self.lock.keep(record).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(text: &str) -> Kept {
        Kept {
            text: text.into(),
            source: PathBuf::from("/etc/baton/pipeline.toml"),
            schemas: BTreeMap::new(),
        }
    }

    #[test]
    fn switches_that_differ_are_named_as_typed() {
        let p = kept("name = \"x\"\n");
        let off = Switches {
            disable: vec!["lint".into()],
            ..Switches::default()
        };
        assert_eq!(
            differences(&p, &off, &p, &Switches::default()),
            ["phases switched off: here `--disable lint`, in the run none"]
        );
        let all = Switches {
            all_phases: true,
            ..Switches::default()
        };
        assert!(differences(&p, &all, &p, &Switches::default()).is_empty());
    }

    #[test]
    fn what_is_stored_comes_back_the_same() {
        let mut p = kept("name = \"x\"\n");
        p.schemas
            .insert(PathBuf::from("/etc/baton/out.json"), "{}".into());
        let s = Switches {
            only: vec!["a".into(), "b".into()],
            ..Switches::default()
        };
        let target = PgTarget::parse("postgres://baton@db/runs").unwrap();
        assert_eq!(from_store(to_store(&p, &s), &target).unwrap(), (p, s));
    }
}
