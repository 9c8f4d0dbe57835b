//! `baton cache list` and `baton cache clear`: the shared step cache of a
//! state folder. Listing reads beside a running engine; clearing takes the
//! folder, so it waits until no engine holds it.

use std::path::Path;

use baton::report::cache_list;
use baton::store::StoreError;
use baton::store::cache::{CacheFilter, CacheInfo};

use super::{StateDir, source};

#[derive(clap::Subcommand)]
pub enum CacheCmd {
    /// The step cache's entries: key, phase, age, uses, size and the task that made each.
    List {
        /// Only the entries of this phase.
        #[arg(long, value_name = "PHASE")]
        phase: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// Remove step cache entries: all of them, or a phase's, or a key's; refused while an engine runs on the folder.
    Clear {
        /// Only the entries of this phase.
        #[arg(long, value_name = "PHASE")]
        phase: Option<String>,
        /// Only the entries with this key (as `cache list` shows it, rendered).
        #[arg(long, value_name = "KEY")]
        key: Option<String>,
        #[command(flatten)]
        dir: StateDir,
    },
}

pub async fn run(cmd: CacheCmd) -> i32 {
    let result = match cmd {
        CacheCmd::List { phase, json, dir } => list(&dir.state_dir, phase, json).await,
        CacheCmd::Clear { phase, key, dir } => {
            clear(&dir.state_dir, CacheFilter { phase, key }).await
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

async fn list(state_dir: &Path, phase: Option<String>, json: bool) -> Result<(), String> {
    let reader = source::current_reader(state_dir).await?;
    let filter = CacheFilter { phase, key: None };
    let entries: Vec<CacheInfo> = reader
        .cache_list(&filter)
        .await
        .map_err(|e| e.to_string())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&entries).unwrap_or_default()
        );
    } else {
        let location = super::place::describe(state_dir);
        print!(
            "{}",
            cache_list::text(&entries, jiff::Timestamp::now(), &location)
        );
    }
    Ok(())
}

async fn clear(state_dir: &Path, filter: CacheFilter) -> Result<(), String> {
    let reader = source::current_reader(state_dir).await?;
    let meta = reader
        .meta()
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "{} holds no run yet, so no cache\n  help: pass the state folder of a run with --state-dir",
                super::place::describe(state_dir)
            )
        })?;
    drop(reader);
    let place = super::place::get();
    let store = match place.open(state_dir, &meta) {
        Ok((store, _, _)) => store,
        Err(e @ (StoreError::Locked { .. } | StoreError::RunHeld { .. })) => {
            let by = e
                .holder_pid()
                .map(|p| format!(" (pid {p})"))
                .unwrap_or_default();
            return Err(format!(
                "an engine runs on {}{by}; the cache is cleared only when none does, so that no task is served an entry being removed\n  help: run `baton cache clear` again once the run stops",
                place.describe(state_dir)
            ));
        }
        Err(e) => return Err(e.to_string()),
    };
    let removed = store.cache_clear(filter.clone()).await;
    let closed = store.close().await;
    let removed = removed.map_err(|e| e.to_string())?;
    closed.map_err(|e| e.to_string())?;
    let mut which = Vec::new();
    if let Some(p) = &filter.phase {
        which.push(format!("phase {p}"));
    }
    if let Some(k) = &filter.key {
        which.push(format!("key {k:?}"));
    }
    let which = match which.is_empty() {
        true => String::new(),
        false => format!(" of {}", which.join(" and ")),
    };
    println!(
        "removed {removed} step cache entr{}{which} from {}",
        if removed == 1 { "y" } else { "ies" },
        super::place::describe(state_dir)
    );
    Ok(())
}
