//! `baton run --in-process` and `baton demo --in-process`: the engine and
//! the dashboard in one process. The control socket is served all the same,
//! so `baton attach` and `baton approve` reach the run from elsewhere.
//! Quitting stops the run cleanly; `d` cannot detach here and says why (the
//! engine ends with this process), see `baton::Dashboard`.

use std::path::Path;

use baton::run_log_writer::Session;
use baton::spec::{self, input::InputTask};
use baton::tui::{Dashboard, TuiOptions};

use super::state_meta;
use super::switches::Switches;

/// `BATON_IN_PROCESS=1`: `run` and `demo` open their dashboard with the
/// engine inside, as with `--in-process`.
pub fn by_default() -> bool {
    std::env::var_os("BATON_IN_PROCESS").is_some_and(|v| v == "1")
}

/// What to run, and where.
pub struct InProcess<'a> {
    /// `None`: going on with the folder's kept pipeline.
    pub pipeline_file: Option<&'a Path>,
    pub pipeline: spec::Pipeline,
    pub switches: &'a Switches,
    pub inputs: Vec<InputTask>,
    pub state_dir: &'a Path,
}

/// Runs the dashboard on an engine in this process; the run's exit status.
pub async fn run(plan: InProcess<'_>, opts: TuiOptions) -> i32 {
    let InProcess {
        pipeline_file,
        pipeline,
        switches,
        inputs,
        state_dir,
    } = plan;
    let (mut engine, start) =
        match super::run::open_engine(pipeline_file, pipeline, switches, state_dir, false).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
    let kept = state_meta::copy_path(state_dir);
    let run_log = super::run_log::start(
        &engine,
        start,
        Session::Run,
        Some(pipeline_file.unwrap_or(&kept)),
    );
    if let Err(e) = engine.submit(inputs).await {
        super::run_log::finish(run_log).await;
        eprintln!("error: {e}");
        return 2;
    }
    let server = match baton::remote::Server::start(state_dir, engine.handle()).await {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!(
                "warning: no control socket ({e}); `baton attach` and decisions from elsewhere are not available"
            );
            None
        }
    };
    let ended = Dashboard::new().options(opts).run(engine).await;
    drop(server);
    super::run_log::finish(run_log).await;
    baton::agents::command::kill_leftovers();
    match ended {
        Ok(summary) => summary.exit_code(),
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
