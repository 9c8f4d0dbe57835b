//! `baton stats`: figures per phase, agent and model, and the projected cost
//! to finish beside the run's budget, from the figures the store keeps
//! (beside a running engine, or on a stopped folder).

use std::path::Path;

use baton::engine::run_state::RunState;
use baton::report::{stats as stats_report, stats_text};

use super::{source, state_meta};

pub async fn stats(state_dir: &Path, json: bool) -> i32 {
    match report(state_dir).await {
        Ok(r) if json => {
            println!("{}", serde_json::to_string_pretty(&r).unwrap_or_default());
            0
        }
        Ok(r) => {
            print!("{}", stats_text::text(&r));
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}

async fn report(state_dir: &Path) -> Result<stats_report::StatsReport, String> {
    let reader = source::current_reader(state_dir).await?;
    let err = |e: baton::store::StoreError| e.to_string();
    let run = RunState::of(&reader.run_events().await.map_err(err)?);
    // The budget is the pipeline's, as kept in the folder, raised by
    // operators since; a folder whose pipeline no longer loads has none.
    let budget_usd = state_meta::load(state_dir)
        .ok()
        .and_then(|p| run.raise.over(p.run_budget).usd);
    let mut report = stats_report::from_reader(
        reader.as_ref(),
        &state_dir.display().to_string(),
        budget_usd,
    )
    .await
    .map_err(err)?;
    report.store = super::inspect::store_address(state_dir);
    Ok(report)
}
