//! `baton list` and `baton show`: read a state folder without taking it, so
//! they work while an engine runs.

use std::path::Path;

use baton::engine::recovery::{Folded, fold};
use baton::engine::{Task, TaskState};
use baton::report::{list as list_report, show as show_report};
use baton::store::Store;

use super::state_meta;

fn read(state_dir: &Path) -> Result<Folded, String> {
    let pipeline = state_meta::load(state_dir)?;
    let phases: Vec<String> = pipeline.phases.iter().map(|p| p.id.clone()).collect();
    let recovered = Store::load_readonly(state_dir).map_err(|e| e.to_string())?;
    let folded = fold(recovered, &phases);
    for w in &folded.warnings {
        eprintln!("warning: {w}");
    }
    Ok(folded)
}

fn ordered(folded: &Folded) -> impl Iterator<Item = &Task> {
    folded.order.iter().filter_map(|id| folded.tasks.get(id))
}

pub fn list(state_dir: &Path, state: Option<&str>, json: bool) -> i32 {
    let filter = match state.map(|s| (s, TaskState::parse(s))) {
        Some((_, Some(st))) => Some(st),
        Some((s, None)) => {
            let all: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "error: unknown state \"{s}\"\n  help: use one of {}",
                all.join(", ")
            );
            return 2;
        }
        None => None,
    };
    let folded = match read(state_dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let tasks = ordered(&folded).filter(|t| filter.is_none_or(|s| t.state == s));
    if json {
        let rows: Vec<_> = tasks.map(list_report::row).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        print!("{}", list_report::text(tasks));
    }
    0
}

pub fn show(state_dir: &Path, id: &str, json: bool) -> i32 {
    let folded = match read(state_dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Some(task) = folded.tasks.get(id) else {
        let known: Vec<&str> = folded.order.iter().take(10).map(String::as_str).collect();
        eprintln!(
            "error: no task \"{id}\" in {}\n  help: tasks there include: {}",
            state_dir.display(),
            known.join(", ")
        );
        return 1;
    };
    if json {
        println!("{}", serde_json::to_string_pretty(task).unwrap_or_default());
    } else {
        print!("{}", show_report::text(task));
    }
    0
}
