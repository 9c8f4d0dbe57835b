//! `baton list` and `baton show`: the run as the engine that holds the
//! state folder sees it, or the folder as it is when no engine does; the
//! folder is read without being taken either way (see `source`).

use std::path::Path;

use baton::engine::TaskState;
use baton::report::{list as list_report, show as show_report};

use super::source;

pub async fn list(state_dir: &Path, state: Option<&str>, json: bool) -> i32 {
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
    let tasks = match source::tasks(state_dir).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let tasks = tasks.iter().filter(|t| filter.is_none_or(|s| t.state == s));
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

pub async fn show(state_dir: &Path, id: &str, json: bool) -> i32 {
    let tasks = match source::tasks(state_dir).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let Some(task) = tasks.iter().find(|t| t.id == id) else {
        let known: Vec<&str> = tasks.iter().take(10).map(|t| t.id.as_str()).collect();
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
