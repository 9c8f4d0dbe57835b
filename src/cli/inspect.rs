//! `baton list`, `show`, `summary` and `review`: the run as the engine that
//! holds the state folder sees it, or the folder as it is when no engine
//! does; the folder is read without being taken either way (see `source`).

use std::path::Path;

use baton::engine::TaskState;
use baton::report::{
    list as list_report, review_queue, show as show_report, summary as summary_report,
};
use serde::Serialize;

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

/// `baton summary --json`: the pipeline, the folder, then the totals.
#[derive(Serialize)]
struct SummaryJson<'a> {
    pipeline: &'a str,
    state_dir: String,
    #[serde(flatten)]
    summary: summary_report::Summary,
}

pub async fn summary(state_dir: &Path, json: bool) -> i32 {
    let run = match source::run(state_dir).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let summary = summary_report::summarize(&run.tasks);
    if json {
        let out = SummaryJson {
            pipeline: &run.pipeline,
            state_dir: state_dir.display().to_string(),
            summary,
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!("pipeline   {}  ({})", run.pipeline, state_dir.display());
        print!("{}", summary_report::text(&summary));
    }
    0
}

pub async fn review(state_dir: &Path, json: bool) -> i32 {
    let tasks = match source::tasks(state_dir).await {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let queue = review_queue::queue(&tasks, jiff::Timestamp::now());
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
