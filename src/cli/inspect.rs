//! `baton list`, `show`, `summary` and `review`: queries on the folder's
//! database, which answer the same beside a running engine and on a
//! stopped folder; nothing loads the whole run.

use std::path::Path;

use baton::engine::TaskState;
use baton::report::{
    list as list_report, review_queue, show as show_report, summary as summary_report,
};
use baton::store::{ListQuery, Sort};
use serde::Serialize;

use super::{fail, source};

/// What `baton list` was asked for.
pub struct ListArgs {
    pub state: Option<String>,
    pub phase: Option<String>,
    pub limit: Option<u64>,
    pub after: Option<String>,
    pub sort: String,
    pub json: bool,
}

pub async fn list(state_dir: &Path, args: ListArgs) -> i32 {
    fail::json_errors(args.json);
    let state = match args.state.as_deref().map(|s| (s, TaskState::parse(s))) {
        Some((_, Some(st))) => Some(st),
        Some((s, None)) => {
            let all: Vec<&str> = TaskState::ALL.iter().map(|s| s.as_str()).collect();
            return fail::error(&format!(
                "unknown state \"{s}\"\n  help: use one of {}",
                all.join(", ")
            ));
        }
        None => None,
    };
    let Some(sort) = Sort::parse(&args.sort) else {
        let all: Vec<&str> = Sort::ALL.iter().map(|s| s.as_str()).collect();
        return fail::error(&format!(
            "unknown order \"{}\"\n  help: use one of {}",
            args.sort,
            all.join(", ")
        ));
    };
    let reader = match source::reader(state_dir) {
        Ok(r) => r,
        Err(e) => {
            return fail::error(&e);
        }
    };
    if let Some(after) = &args.after {
        match reader.row(after).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                return fail::error(&format!(
                    "--after {after}: no such task in {}\n  help: give the id of the last task of the previous page",
                    super::place::describe(state_dir)
                ));
            }
            Err(e) => {
                return fail::error(&e);
            }
        }
    }
    let query = ListQuery {
        state,
        phase: args.phase,
        sort,
        after: args.after,
        offset: 0,
        limit: args.limit,
        ..ListQuery::default()
    };
    let rows = match reader.list(&query).await {
        Ok(r) => r,
        Err(e) => {
            return fail::error(&e);
        }
    };
    if args.json {
        let rows: Vec<_> = rows.iter().map(list_report::row).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).unwrap_or_default()
        );
    } else {
        let stopped = source::no_engine_serves(state_dir).await;
        print!("{}", list_report::text(rows.iter(), stopped));
    }
    0
}

pub async fn show(state_dir: &Path, id: &str, json: bool) -> i32 {
    fail::json_errors(json);
    let reader = match source::reader(state_dir) {
        Ok(r) => r,
        Err(e) => {
            return fail::error(&e);
        }
    };
    let task = match reader.task(id).await {
        Ok(t) => t,
        Err(e) => {
            return fail::error(&e);
        }
    };
    let Some(task) = task else {
        let first = ListQuery {
            limit: Some(10),
            ..ListQuery::default()
        };
        let known: Vec<String> = reader
            .list(&first)
            .await
            .map(|rows| rows.into_iter().map(|r| r.id).collect())
            .unwrap_or_default();
        return fail::error_code(
            &format!(
                "no task \"{id}\" in {}\n  help: tasks there include: {}",
                super::place::describe(state_dir),
                known.join(", ")
            ),
            1,
        );
    };
    // In a fleet: the engine that runs it now.
    let held_by = reader.holder(id).await.ok().flatten();
    if json {
        let mut value = serde_json::to_value(&task).unwrap_or_default();
        if let (Some(h), Some(obj)) = (&held_by, value.as_object_mut()) {
            obj.insert("held_by".into(), serde_json::Value::String(h.clone()));
        }
        // `for_each` phases: how far their items have got, failures listed.
        let items: Vec<_> = task
            .phases
            .iter()
            .filter_map(baton::report::item_progress::ItemProgress::of)
            .collect();
        if let (false, Some(obj)) = (items.is_empty(), value.as_object_mut()) {
            obj.insert(
                "item_progress".into(),
                serde_json::to_value(items).unwrap_or_default(),
            );
        }
        println!(
            "{}",
            serde_json::to_string_pretty(&value).unwrap_or_default()
        );
    } else {
        let text = show_report::text(&task);
        match &held_by {
            // After the task's first line, which names it and its state.
            Some(h) => match text.split_once('\n') {
                Some((first, rest)) => print!("{first}\n  held by   {h}\n{rest}"),
                None => println!("{text}  held by   {h}"),
            },
            None => print!("{text}"),
        }
    }
    0
}

/// `baton summary --json`: the pipeline, the folder (and the database
/// when the run is in PostgreSQL), then the totals.
#[derive(Serialize)]
struct SummaryJson<'a> {
    pipeline: &'a str,
    state_dir: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    store: Option<String>,
    #[serde(flatten)]
    summary: summary_report::Summary,
    /// Tasks recorded as running or retrying while no engine serves the
    /// run: they were interrupted, and go on with the next `baton run`.
    interrupted: usize,
}

pub async fn summary(state_dir: &Path, json: bool) -> i32 {
    fail::json_errors(json);
    let reader = match source::reader(state_dir) {
        Ok(r) => r,
        Err(e) => {
            return fail::error(&e);
        }
    };
    let (meta, totals) = match (reader.meta().await, reader.totals().await) {
        (Ok(m), Ok(t)) => (m.unwrap_or_default(), t),
        (Err(e), _) | (_, Err(e)) => {
            return fail::error(&e);
        }
    };
    let summary = summary_report::from_totals(&totals);
    let stopped = source::no_engine_serves(state_dir).await;
    if json {
        let out = SummaryJson {
            pipeline: &meta.pipeline,
            state_dir: state_dir.display().to_string(),
            store: store_address(state_dir),
            interrupted: summary_report::interrupted(&summary, stopped),
            summary,
        };
        println!("{}", serde_json::to_string_pretty(&out).unwrap_or_default());
    } else {
        println!(
            "pipeline   {}  ({})",
            meta.pipeline,
            super::place::describe(state_dir)
        );
        print!("{}", summary_report::text(&summary, stopped));
    }
    0
}

pub async fn review(state_dir: &Path, json: bool) -> i32 {
    fail::json_errors(json);
    let reader = match source::reader(state_dir) {
        Ok(r) => r,
        Err(e) => {
            return fail::error(&e);
        }
    };
    let holds = match reader.waiting(0, None).await {
        Ok(h) => h,
        Err(e) => {
            return fail::error(&e);
        }
    };
    let queue = review_queue::from_holds(
        holds.iter().map(|(id, h)| (id.as_str(), h)),
        jiff::Timestamp::now(),
    );
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&queue).unwrap_or_default()
        );
    } else {
        print!("{}", review_queue::text(&queue));
        if !queue.is_empty() {
            println!(
                "settle them with `baton approve|reject|resolve TASK {}`",
                super::place::flags(state_dir)
            );
        }
    }
    0
}

/// The database's address (without its password) when the run is in
/// PostgreSQL, for the JSON reports.
pub fn store_address(state_dir: &Path) -> Option<String> {
    let place = super::place::get();
    (!place.is_folder()).then(|| place.describe(state_dir))
}
