//! Command-line parsing and the commands themselves. Exit statuses are
//! stable: 0 success, 1 a task failed or a decision was refused (or
//! `clean-state` without `--force`), 2 bad usage or files (or the folder is
//! in use), 3 tasks wait for a person (`run`), 4 tasks left unfinished (the
//! dashboard was quit mid-run), 130/143 stopped by a signal.

mod allocator;
mod attach;
mod background;
mod budget;
mod cache;
mod clean;
mod decide;
mod demo;
mod fail;
mod fleet;
mod in_process;
mod inspect;
mod out;
mod pipeline_diff;
mod place;
mod run;
mod run_log;
mod run_pipeline;
mod source;
mod state_meta;
mod stats;
mod switches;
mod validate;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "baton",
    version,
    about = "Runs multi-agent pipelines and lets an operator steer them"
)]
struct Cli {
    /// Where the run is kept: the state folder's database (the default), or
    /// PostgreSQL (`postgres://USER@HOST:PORT/DATABASE[?schema=NAME]`), shared
    /// by engines and operators on any machine.
    #[arg(
        long,
        global = true,
        env = "BATON_STORE",
        hide_env_values = true,
        value_name = "ADDRESS"
    )]
    store: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(clap::Args, Clone)]
pub struct StateDir {
    /// The state folder.
    #[arg(long, global = true, default_value = "state", value_name = "DIR")]
    pub state_dir: PathBuf,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run a pipeline over tasks: new ones from --input, and any already in the state folder.
    Run(run::RunArgs),
    /// Run the bundled demo pipeline on simulated agents (no keys needed).
    Demo(demo::DemoArgs),
    /// Check a pipeline file and show its phases in waves.
    Validate {
        /// The pipeline file.
        file: PathBuf,
        /// Check the plan with these switches, as `run` would take them.
        #[command(flatten)]
        switches: run::Switches,
    },
    /// Open the dashboard on the engine running on a state folder; quitting leaves it running.
    Attach(attach::AttachArgs),
    /// List tasks in the state folder.
    List {
        /// Only tasks in this state (pending, running, retrying, awaiting_review, blocked, completed, failed, cancelled).
        #[arg(long = "state", value_name = "STATE")]
        state: Option<String>,
        /// Only tasks whose current phase is this one.
        #[arg(long, value_name = "PHASE")]
        phase: Option<String>,
        /// At most this many tasks.
        #[arg(long, value_name = "N")]
        limit: Option<u64>,
        /// Only tasks after this one in the order (the last id of the previous page).
        #[arg(long, value_name = "ID")]
        after: Option<String>,
        /// Order: submitted (default), updated (newest first), tokens, cost (most first), id.
        #[arg(long, value_name = "ORDER", default_value = "submitted")]
        sort: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// Show one task: phases, attempts, errors, tokens, cost, durations and outputs.
    Show {
        task: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// Totals of the state folder: tasks per state, who waits, tokens, dollars, run time.
    Summary {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// Figures per phase, agent and model (attempts, failures, durations, tokens, dollars) and the projected cost to finish.
    Stats {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// The reviews and blockers waiting for a person, oldest first.
    Review {
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// Remove everything in the state folder; refused while an engine runs on it.
    CleanState {
        /// Remove for real; without it, only say what would be removed.
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        dir: StateDir,
    },
    /// Approve the task's open review and let it go on.
    Approve(decide::ApproveArgs),
    /// Reject the task's open review: the task fails, or with --feedback the phase runs again.
    Reject(decide::RejectArgs),
    /// Settle a blocked task: run the phase again, skip it, or fail the task.
    Resolve(decide::ResolveArgs),
    /// Run a phase again: a failed task's failed phase, or a retry now instead of after its wait.
    Retry(decide::RetryArgs),
    /// Cancel a task.
    Cancel(decide::CancelArgs),
    /// Raise a task's budget, or the run's without TASK: in the running engine, or in the state folder.
    Budget(budget::BudgetArgs),
    /// The shared step cache of phases with a cache_key: list its entries, or clear them.
    #[command(subcommand)]
    Cache(cache::CacheCmd),
    /// The engines serving a run kept in PostgreSQL: host, pid, tasks held, last heartbeat.
    Fleet {
        /// Also engines that stopped, or were lost long ago.
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: StateDir,
    },
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    if let Err(e) = place::set(cli.store.as_deref()) {
        eprintln!("{}", baton::store::postgres::target::redact(&e));
        return 2;
    }
    let draws_a_dashboard = match &cli.command {
        Cmd::Attach(_) => true,
        Cmd::Run(args) => args.draws_a_dashboard(),
        Cmd::Demo(args) => args.draws_a_dashboard(),
        _ => false,
    };
    if draws_a_dashboard {
        allocator::one_arena_for_the_dashboard();
    }
    // `baton list | head`: the commands that only print what they read end
    // quietly when their reader goes away.
    if matches!(
        cli.command,
        Cmd::List { .. }
            | Cmd::Show { .. }
            | Cmd::Summary { .. }
            | Cmd::Review { .. }
            | Cmd::Validate { .. }
            | Cmd::Cache(cache::CacheCmd::List { .. })
            | Cmd::Fleet { .. }
    ) {
        out::die_quietly_on_a_closed_pipe();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return 2;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Cmd::Run(args) => run::run(args).await,
            Cmd::Demo(args) => demo::run(args).await,
            Cmd::Validate { file, switches } => validate::run(&file, &switches),
            Cmd::Attach(args) => attach::run(args).await,
            Cmd::List {
                state,
                phase,
                limit,
                after,
                sort,
                json,
                dir,
            } => {
                let args = inspect::ListArgs {
                    state,
                    phase,
                    limit,
                    after,
                    sort,
                    json,
                };
                inspect::list(&dir.state_dir, args).await
            }
            Cmd::Show { task, json, dir } => inspect::show(&dir.state_dir, &task, json).await,
            Cmd::Summary { json, dir } => inspect::summary(&dir.state_dir, json).await,
            Cmd::Stats { json, dir } => stats::stats(&dir.state_dir, json).await,
            Cmd::Review { json, dir } => inspect::review(&dir.state_dir, json).await,
            Cmd::CleanState { force, dir } => clean::run(&dir.state_dir, force),
            Cmd::Approve(args) => decide::approve(args).await,
            Cmd::Reject(args) => decide::reject(args).await,
            Cmd::Resolve(args) => decide::resolve(args).await,
            Cmd::Retry(args) => decide::retry(args).await,
            Cmd::Cancel(args) => decide::cancel(args).await,
            Cmd::Budget(args) => budget::raise(args).await,
            Cmd::Cache(cmd) => cache::run(cmd).await,
            Cmd::Fleet { all, json, .. } => fleet::run(all, json).await,
        }
    })
}
