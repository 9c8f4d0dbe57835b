//! `baton run`: load, recover, submit, and run until nothing more can happen
//! without a person.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::engine::{Command, Engine, EngineError, EngineOptions, RunSummary};
use baton::report::progress::Progress;
use baton::spec::{self, input::InputTask};
use tokio::sync::broadcast::error::RecvError;

use super::state_meta;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file.
    pipeline: PathBuf,
    /// Tasks to add: a JSON Lines file (one task per line) or a folder of .json files.
    #[arg(long, value_name = "FILE|DIR")]
    input: Option<PathBuf>,
    /// Print progress lines instead of opening the dashboard.
    #[arg(long)]
    headless: bool,
    /// A budget for this run, over the pipeline's: task.usd=0.50, task.tokens=N, run.usd=20 or run.tokens=N (repeatable).
    #[arg(long = "budget", value_name = "SCOPE.UNIT=VALUE", value_parser = super::budget::parse_setting)]
    budgets: Vec<super::budget::BudgetSetting>,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    dir: super::StateDir,
}

/// How the dashboard looks and answers keys.
#[derive(clap::Args, Clone)]
pub struct ViewArgs {
    /// Dashboard theme: default, light, high-contrast, ansi16, or a path to a theme file.
    #[arg(long, value_name = "NAME|PATH")]
    theme: Option<String>,
    /// Key bindings file (default: keys.toml in the config folder).
    #[arg(long, value_name = "FILE")]
    keys: Option<PathBuf>,
    /// Most frames the dashboard draws per second.
    #[arg(long, default_value_t = 10, value_name = "N")]
    fps: u32,
}

impl ViewArgs {
    fn options(&self) -> baton::tui::TuiOptions {
        baton::tui::TuiOptions {
            theme: self.theme.clone(),
            keys_file: self.keys.clone(),
            max_fps: self.fps.max(1),
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
        }
    }
}

/// Where a run shows itself.
pub enum Mode {
    Headless,
    Dashboard(baton::tui::TuiOptions),
}

impl Mode {
    /// The dashboard when asked for and stdout is a terminal; headless otherwise.
    pub fn choose(headless: bool, view: &ViewArgs) -> Mode {
        if headless {
            return Mode::Headless;
        }
        if !std::io::stdout().is_terminal() {
            eprintln!("stdout is not a terminal: running headless");
            return Mode::Headless;
        }
        Mode::Dashboard(view.options())
    }
}

pub async fn run(args: RunArgs) -> i32 {
    let mode = Mode::choose(args.headless, &args.view);
    init_logging_for(&mode);
    let mut pipeline = match spec::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    super::budget::apply(&mut pipeline, &args.budgets);
    let inputs = match &args.input {
        Some(path) => match spec::input::load_inputs(path) {
            Ok(inputs) => inputs,
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        },
        None => Vec::new(),
    };
    run_engine(&args.pipeline, pipeline, inputs, &args.dir.state_dir, mode).await
}

/// Logs go to the dashboard's log pane while it owns the screen, else to stderr.
pub fn init_logging_for(mode: &Mode) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    match mode {
        Mode::Headless => super::init_logging(),
        Mode::Dashboard(_) => {
            let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(baton::tui::tracing_layer())
                .try_init();
        }
    }
}

/// Opens the engine on a state folder, adds the inputs, and runs it with
/// the dashboard or headless.
pub async fn run_engine(
    pipeline_file: &Path,
    pipeline: spec::Pipeline,
    inputs: Vec<InputTask>,
    state_dir: &Path,
    mode: Mode,
) -> i32 {
    // The dashboard stays up after the work is done, until the operator quits.
    let opts = EngineOptions {
        exit_when_idle: matches!(mode, Mode::Headless),
        ..EngineOptions::default()
    };
    let mut engine = match Engine::open(pipeline, state_dir, opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Err(e) = state_meta::save(state_dir, pipeline_file) {
        eprintln!("error: {e}");
        return 2;
    }
    for w in engine.warnings() {
        eprintln!("warning: {w}");
    }
    match engine.submit(inputs) {
        Ok(s) => {
            if !s.already_present.is_empty() {
                eprintln!(
                    "{} task(s) already in {} were left as they are: {}",
                    s.already_present.len(),
                    state_dir.display(),
                    s.already_present.join(", ")
                );
            }
            let resumed = engine.tasks().count() - s.added.len();
            eprintln!(
                "{}: {} new task(s), {} already in {}",
                engine.pipeline().name,
                s.added.len(),
                resumed,
                state_dir.display()
            );
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    }
    if let Mode::Dashboard(opts) = mode {
        return run_dashboard(engine, opts, state_dir).await;
    }
    let handle = engine.handle();
    let mut events = handle.subscribe();
    let mut progress = Progress::new(engine.snapshot());
    let mut engine_task = tokio::spawn(engine.run());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.tick().await;
    let mut stopped_by: Option<i32> = None;
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let summary = loop {
        tokio::select! {
            ev = events.recv() => match ev {
                Ok(ev) => {
                    if let Some(line) = progress.apply(&ev) {
                        println!("{line}");
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    if let Some(snap) = handle.snapshot().await {
                        progress = Progress::new(snap);
                    }
                }
                Err(RecvError::Closed) => {}
            },
            _ = tick.tick() => progress.print_line(&mut std::io::stderr()),
            _ = tokio::signal::ctrl_c(), if stopped_by.is_none() => {
                eprintln!("interrupted: finishing the journal; running attempts will run again next time");
                stopped_by = Some(130);
                let _ = handle.send(Command::Shutdown).await;
            }
            _ = async { sigterm.as_mut().expect("guarded").recv().await }, if sigterm.is_some() && stopped_by.is_none() => {
                eprintln!("terminated: finishing the journal; running attempts will run again next time");
                stopped_by = Some(143);
                let _ = handle.send(Command::Shutdown).await;
            }
            done = &mut engine_task => {
                // Everything is durable and broadcast by now: drain it.
                while let Ok(ev) = events.try_recv() {
                    if let Some(line) = progress.apply(&ev) {
                        println!("{line}");
                    }
                }
                break done;
            }
        }
    };
    let summary = match settled(summary) {
        Ok(s) => s,
        Err(code) => return code,
    };
    progress.print_line(&mut std::io::stderr());
    let waiting = progress.count(baton::engine::TaskState::AwaitingReview)
        + progress.count(baton::engine::TaskState::Blocked);
    if waiting > 0 && stopped_by.is_none() {
        eprintln!(
            "{waiting} task(s) wait for a person: see `baton list --state awaiting_review --state-dir {0}`, then `baton approve|reject|resolve TASK --state-dir {0}` and run again",
            state_dir.display()
        );
    }
    stopped_by.unwrap_or_else(|| summary.exit_code())
}

async fn run_dashboard(engine: Engine, opts: baton::tui::TuiOptions, state_dir: &Path) -> i32 {
    let handle = engine.handle();
    let engine_task = tokio::spawn(engine.run());
    let shown = baton::tui::run(handle.clone(), opts).await;
    // Quitting (or a failed terminal) stops the engine cleanly: the journal
    // is finished and running attempts run again next time.
    let _ = handle.send(Command::Shutdown).await;
    let summary = match settled(engine_task.await) {
        Ok(s) => s,
        Err(code) => return code,
    };
    if let Err(e) = shown {
        eprintln!("error: the dashboard failed: {e:#}");
        return 2;
    }
    let counts: Vec<String> = summary
        .counts
        .iter()
        .map(|(state, n)| format!("{n} {state}"))
        .collect();
    eprintln!(
        "stopped: {}; `baton run` on {} carries on from here",
        counts.join(", "),
        state_dir.display()
    );
    summary.exit_code()
}

/// The engine task's end: its summary, or exit status 2 with the reason said.
fn settled(
    joined: Result<Result<RunSummary, EngineError>, tokio::task::JoinError>,
) -> Result<RunSummary, i32> {
    match joined {
        Ok(Ok(s)) => Ok(s),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            Err(2)
        }
        Err(e) => {
            eprintln!("error: the engine stopped unexpectedly: {e}");
            Err(2)
        }
    }
}
