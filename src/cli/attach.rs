//! `baton attach`: the dashboard on an engine that runs elsewhere on this
//! machine (`baton run --headless --wait`, or one left by detaching).
//! Quitting closes the dashboard and leaves the engine running.

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
            "error: attach opens a dashboard and needs a terminal\n  help: `baton list --state-dir {0}` and `baton show TASK --state-dir {0}` ask the engine without one",
            state_dir.display()
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
        Err(ConnectError::NoEngine(path)) => {
            eprintln!(
                "error: no engine is running on {} (nothing answers on {})\n  help: start one with `baton run PIPELINE --headless --wait --state-dir {}`",
                state_dir.display(),
                path.display(),
                state_dir.display()
            );
            return 2;
        }
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
