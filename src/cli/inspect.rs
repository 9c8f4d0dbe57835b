//! `baton list`, `show`, `summary` and `review`: read a state folder without
//! taking it, so they work while an engine runs and after it has stopped.

use std::path::Path;

use baton::engine::recovery::{Folded, fold};
use baton::engine::{Task, TaskState};
use baton::report::{
    list as list_report, review_queue, show as show_report, summary as summary_report,
};
use baton::store::Store;
use serde::Serialize;

use super::state_meta;

fn read(state_dir: &Path) -> Result<Folded, String> {
    read_named(state_dir).map(|(_, folded)| folded)
}

/// The folder's tasks and the name of the pipeline they ran with.
fn read_named(state_dir: &Path) -> Result<(String, Folded), String> {
    let pipeline = state_meta::load(state_dir)?;
    let phases: Vec<String> = pipeline.phases.iter().map(|p| p.id.clone()).collect();
    let recovered = Store::load_readonly(state_dir).map_err(|e| e.to_string())?;
    let folded = fold(recovered, &phases);
    for w in &folded.warnings {
        eprintln!("warning: {w}");
    }
    Ok((pipeline.name, folded))
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

/// `baton summary --json`: the pipeline, the folder, then the totals.
#[derive(Serialize)]
struct SummaryJson<'a> {
    pipeline: &'a str,
    state_dir: String,
    #[serde(flatten)]
    summary: summary_report::Summary,
}

pub fn summary(state_dir: &Path, json: bool) -> i32 {
    let (pipeline, folded) = match read_named(state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let summary = summary_report::summarize(ordered(&folded));
    if json {
        let out = SummaryJson {
            pipeline: &pipeline,
            state_dir: state_dir.display().to_string(),
            summary,
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("pipeline   {pipeline}  ({})", state_dir.display());
        print!("{}", summary_report::text(&summary));
    }
    0
}

pub fn review(state_dir: &Path, json: bool) -> i32 {
    let folded = match read(state_dir) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let queue = review_queue::queue(ordered(&folded), jiff::Timestamp::now());
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&queue).unwrap_or_default()
        );
    } else {
        print!("{}", review_queue::text(&queue));
        if !queue.is_empty() {
            println!(
                "settle them with `baton approve|reject|resolve TASK --state-dir {}`",
                state_dir.display()
            );
        }
    }
    0
}
