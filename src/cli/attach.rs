//! `baton attach`: the dashboard on an engine that runs elsewhere on this
//! machine (`baton run --headless --wait`, or one left by detaching).
//! Quitting closes the dashboard and leaves the engine running. On a folder
//! no engine serves, the dashboard opens read-only on the stored run.

use std::io::IsTerminal;

use baton::remote::client::ClientOptions;
use baton::remote::{ConnectError, remote_handle};

use super::run::{Mode, ViewArgs, init_logging_for};

#[derive(clap::Args)]
pub struct AttachArgs {
    /// Watch only: every action is refused.
    #[arg(long)]
    read_only: bool,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    dir: super::StateDir,
}

pub async fn run(args: AttachArgs) -> i32 {
    let state_dir = &args.dir.state_dir;
    if !std::io::stdout().is_terminal() {
        eprintln!(
            "error: attach opens a dashboard and needs a terminal\n  help: `baton list {0}` and `baton show TASK {0}` ask the engine without one",
            super::place::flags(state_dir)
        );
        return 2;
    }
    let opts = baton::tui::TuiOptions {
        quit_stops_engine: false,
        read_only: args.read_only,
        ..args.view.options()
    };
    let client = ClientOptions {
        read_only: args.read_only,
        logs: true,
        live: true,
        hold: false,
    };
    let (handle, pid) = match remote_handle::attach(state_dir.clone(), client).await {
        Ok(attached) => attached,
        Err(ConnectError::NoEngine(_)) => return look_at_stored(state_dir, opts).await,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    init_logging_for(&Mode::Dashboard(opts.clone()));
    match baton::tui::run(handle, opts).await {
        Ok(_) => {
            eprintln!("left the dashboard; the engine (pid {pid}) keeps running");
            0
        }
        Err(e) => {
            eprintln!("error: the dashboard failed: {e:#}");
            2
        }
    }
}

/// The dashboard on a run no engine serves: the stored state, read-only.
async fn look_at_stored(state_dir: &std::path::Path, opts: baton::tui::TuiOptions) -> i32 {
    let reader = match super::source::reader(state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!(
                "error: no engine is running on {}, and its stored run cannot be read: {e}\n  help: start one with `baton run PIPELINE --headless --wait {}`",
                super::place::describe(state_dir),
                super::place::flags(state_dir)
            );
            return 2;
        }
    };
    let overview = match stored_overview(state_dir, reader.as_ref()).await {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    init_logging_for(&Mode::Dashboard(opts.clone()));
    match baton::tui::app::run_stored(reader, overview, opts).await {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("error: the dashboard failed: {e:#}");
            2
        }
    }
}

/// What an engine would say of the run, from the store and the pipeline
/// copy the run left: name, phases, pause, budgets and raises.
async fn stored_overview(
    state_dir: &std::path::Path,
    reader: &dyn baton::store::RunReader,
) -> Result<baton::engine::handle::RunOverview, String> {
    let meta = reader
        .meta()
        .await
        .map_err(|e| e.to_string())?
        .unwrap_or_default();
    let run_events = reader.run_events().await.map_err(|e| e.to_string())?;
    let run = baton::engine::run_state::RunState::of(&run_events);
    let totals = reader.totals().await.map_err(|e| e.to_string())?;
    let seq = reader.last_seq().await.map_err(|e| e.to_string())?;
    let mut budget = baton::engine::handle::BudgetSnapshot {
        run_raise: run.raise,
        ..Default::default()
    };
    if let Ok(pipeline) = super::state_meta::load(state_dir) {
        budget.task = pipeline.defaults.task_budget;
        budget.run = pipeline.run_budget;
    }
    Ok(baton::engine::handle::RunOverview {
        pipeline: meta.pipeline,
        phases: meta.phases,
        state_dir: state_dir.display().to_string(),
        store: super::inspect::store_address(state_dir),
        started_at: totals
            .first_submitted_at
            .unwrap_or_else(jiff::Timestamp::now),
        paused: run.paused,
        seq,
        budget,
        live: Vec::new(),
    })
}
