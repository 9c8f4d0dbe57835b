//! `baton run`: load, recover, submit, and run until nothing more can happen
//! without a person.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::engine::{Command, Engine, EngineError, EngineOptions, RunSummary, TaskState};
use baton::report::progress::Progress;
use baton::run_log_writer::Session;
use baton::spec::{self, input::InputTask};
use tokio::sync::broadcast::error::RecvError;

use super::state_meta;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The pipeline file. Without it, the run in --state-dir goes on with
    /// the pipeline kept in the folder (its `pipeline.toml`); a run in
    /// PostgreSQL, with the one kept with the run.
    pipeline: Option<PathBuf>,
    /// Tasks to add: a JSON Lines file (one task per line) or a folder of .json files.
    #[arg(long, value_name = "FILE|DIR")]
    input: Option<PathBuf>,
    /// Print progress lines instead of opening the dashboard.
    #[arg(long)]
    headless: bool,
    /// Run the engine inside the dashboard's process instead of in one of
    /// its own: no detaching (`d` says so), quitting stops the run; the
    /// control socket is served all the same.
    #[arg(long, conflicts_with = "headless")]
    in_process: bool,
    /// Keep running while tasks wait for a person, until every task is final
    /// or SIGTERM/SIGINT, serving `baton attach` and CLI decisions meanwhile.
    /// On a run in PostgreSQL (a fleet's engine): until SIGTERM/SIGINT.
    #[arg(long)]
    wait: bool,
    /// With --wait: end once no dashboard holds the run and nothing is left
    /// to run without a person, after this many seconds (a demo's engine).
    #[arg(long, hide = true, value_name = "SECONDS", requires = "wait")]
    linger: Option<u64>,
    /// Remove this folder when the engine ends after lingering (a demo's
    /// temporary folder).
    #[arg(long, hide = true, value_name = "DIR", requires = "linger")]
    remove_after: Option<PathBuf>,
    /// A budget for this run, over the pipeline's: task.usd=0.50, task.tokens=N, run.usd=20 or run.tokens=N (repeatable).
    #[arg(long = "budget", value_name = "SCOPE.UNIT=VALUE", value_parser = super::budget::parse_setting)]
    budgets: Vec<super::budget::BudgetSetting>,
    #[command(flatten)]
    switches: Switches,
    #[command(flatten)]
    view: ViewArgs,
    #[command(flatten)]
    dir: super::StateDir,
}

pub use super::switches::Switches;

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
    /// How a task that starts waiting for a person is announced: bell,
    /// osc9, osc777 (desktop notifications) or off (default: the config
    /// folder's dashboard.toml `notify`, else bell).
    #[arg(long, value_name = "HOW", value_parser = parse_notify)]
    notify: Option<baton::tui::attention::Notify>,
}

fn parse_notify(s: &str) -> Result<baton::tui::attention::Notify, String> {
    baton::tui::attention::Notify::parse(s).ok_or_else(|| {
        format!(
            "{s:?}: use one of {}",
            baton::tui::attention::Notify::NAMES.join(", ")
        )
    })
}

impl ViewArgs {
    pub fn options(&self) -> baton::tui::TuiOptions {
        baton::tui::TuiOptions {
            theme: self.theme.clone(),
            keys_file: self.keys.clone(),
            max_fps: self.fps.max(1),
            notify: self.notify,
            no_color: std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty()),
            ..baton::tui::TuiOptions::default()
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

impl RunArgs {
    /// What `Mode::choose` will pick, without saying anything.
    pub fn draws_a_dashboard(&self) -> bool {
        !self.headless && std::io::stdout().is_terminal()
    }
}

pub async fn run(args: RunArgs) -> i32 {
    let mode = Mode::choose(args.headless, &args.view);
    init_logging_for(&mode);
    let loaded = match &args.pipeline {
        Some(path) => spec::load(path).map_err(|e| e.to_string()),
        None => state_meta::kept(&args.dir.state_dir)
            .and_then(|(kept, at)| {
                let p = kept.parse(&at)?;
                eprintln!(
                    "{}: going on with the pipeline kept {at} (first run from {})",
                    p.name,
                    kept.source.display()
                );
                Ok(p)
            })
            .map_err(|e| {
                format!("error: {e}\n  help: give the pipeline file: `baton run PIPELINE --state-dir DIR`")
            }),
    };
    let mut pipeline = match loaded {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    super::budget::apply(&mut pipeline, &args.budgets);
    let switches = match args.switches.for_run(&args.dir.state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if let Err(mut e) = pipeline.switch_off(&switches.disable, &switches.only) {
        if let Some(path) = &args.pipeline {
            e.file = path.clone();
        }
        eprintln!("{e}");
        return 2;
    }
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
    if let Mode::Dashboard(opts) = mode {
        if args.in_process || super::in_process::by_default() {
            let plan = super::in_process::InProcess {
                pipeline_file: args.pipeline.as_deref(),
                pipeline,
                switches: &switches,
                inputs,
                state_dir: &args.dir.state_dir,
            };
            return super::in_process::run(plan, opts).await;
        }
        let plan = super::background::Plan {
            pipeline_file: args.pipeline.as_deref(),
            input: args.input.as_deref(),
            state_dir: &args.dir.state_dir,
            budgets: &args.budgets,
            switches: &switches,
            linger: None,
        };
        return super::background::run(plan, opts).await.code();
    }
    let linger = args.linger.map(|secs| Linger {
        after: Duration::from_secs(secs),
        remove: args.remove_after.clone(),
    });
    run_headless(
        args.pipeline.as_deref(),
        pipeline,
        &switches,
        inputs,
        &args.dir.state_dir,
        args.wait,
        linger,
    )
    .await
}

/// Opens the engine on the state folder for a start of `run` or `demo`:
/// takes in the agents' orphaned processes (to be killed with their
/// attempts), keeps the pipeline's copy (a run given its file; one going on
/// without it already has it) and the switches with the run, says what
/// recovery warned of, and gives the run as it is before this start adds to
/// it, for the log and the progress lines to follow from. On failure the
/// reason was said; the exit status is returned.
pub async fn open_engine(
    pipeline_file: Option<&Path>,
    pipeline: spec::Pipeline,
    switches: &Switches,
    state_dir: &Path,
    exit_when_idle: bool,
) -> Result<(Engine, baton::engine::FollowStart), i32> {
    baton::agents::command::own_all_children();
    let opts = EngineOptions {
        exit_when_idle,
        store: super::place::get().clone(),
        ..EngineOptions::default()
    };
    let fail = |e: &dyn std::fmt::Display| {
        eprintln!("error: {e}");
        2
    };
    // What the folder keeps: the file given; going on without one, the
    // run's pipeline (a run in PostgreSQL may have begun elsewhere), or
    // the folder's copy, kept as it is.
    let kept = match pipeline_file {
        Some(file) => {
            Some(state_meta::Kept::of_file(file, pipeline.schema_files()).map_err(|e| fail(&e))?)
        }
        None if !opts.store.is_folder() => {
            Some(state_meta::kept(state_dir).map_err(|e| fail(&e))?.0)
        }
        None => None,
    };
    // On a run in PostgreSQL, one pipeline for every engine of the fleet.
    let joining = match &kept {
        Some(k) => super::run_pipeline::join(state_dir, &pipeline.name, k, switches)
            .map_err(|e| fail(&e))?,
        None => None,
    };
    let mut engine = Engine::open(pipeline, state_dir, opts).map_err(|e| fail(&e))?;
    if let Some(joining) = joining {
        joining.keep().map_err(|e| fail(&e))?;
    }
    if let Some(k) = &kept {
        state_meta::save(state_dir, k).map_err(|e| fail(&e))?;
    }
    switches.keep(state_dir).map_err(|e| fail(&e))?;
    for w in engine.warnings() {
        eprintln!("warning: {w}");
    }
    let start = engine.follow_start().await.map_err(|e| fail(&e))?;
    Ok((engine, start))
}

/// How a `--wait` engine nobody watches ends: once no dashboard holds the
/// run and nothing is left to run without a person, after `after`; then
/// `remove` (a demo's temporary folder) goes.
#[derive(Debug, Clone)]
pub struct Linger {
    pub after: Duration,
    pub remove: Option<PathBuf>,
}

/// Logs go to the dashboard's log pane while it owns the screen, else to
/// stderr; a headless engine also hands them to attached dashboards.
pub fn init_logging_for(mode: &Mode) {
    use tracing_subscriber::Layer;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    match mode {
        Mode::Headless => {
            let filter =
                tracing_subscriber::EnvFilter::try_from_env("BATON_LOG").unwrap_or_else(|_| {
                    // The reader pool's own words on a lost connection
                    // repeat what the store's writer says of it.
                    tracing_subscriber::EnvFilter::new(
                        "warn,baton::store::recover=error,deadpool=error",
                    )
                });
            let _ = tracing_subscriber::registry()
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_filter(filter),
                )
                .with(
                    baton::remote::log_feed::LogFeedLayer
                        .with_filter(tracing_subscriber::filter::LevelFilter::INFO),
                )
                .try_init();
        }
        Mode::Dashboard(_) => {
            let filter = tracing_subscriber::EnvFilter::try_from_env("BATON_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(baton::tui::tracing_layer())
                .with(baton::tui::run_feed::WarningLayer)
                .try_init();
        }
    }
}

/// Opens the engine on a state folder, adds the inputs, serves the control
/// socket, and runs, printing progress lines. Without `wait` it ends once
/// nothing more can happen without a person; with it, once every task is
/// final and no dashboard that asked to hold it is attached.
pub async fn run_headless(
    pipeline_file: Option<&Path>,
    pipeline: spec::Pipeline,
    switches: &Switches,
    inputs: Vec<InputTask>,
    state_dir: &Path,
    wait: bool,
    linger: Option<Linger>,
) -> i32 {
    let (mut engine, start) =
        match open_engine(pipeline_file, pipeline, switches, state_dir, !wait).await {
            Ok(opened) => opened,
            Err(code) => return code,
        };
    let resumed = start.totals.tasks;
    let handle = engine.handle();
    let mut events = handle.subscribe();
    let kept = state_meta::copy_path(state_dir);
    let run_log = super::run_log::start(
        &engine,
        start.clone(),
        Session::Run,
        Some(pipeline_file.unwrap_or(&kept)),
    );
    let mut progress = Progress::follow(start);
    match engine.submit(inputs).await {
        Ok(s) => {
            if !s.already_present.is_empty() {
                eprintln!(
                    "{} task(s) already in {} were left as they are: {}",
                    s.already_present.len(),
                    super::place::describe(state_dir),
                    s.already_present.join(", ")
                );
            }
            eprintln!(
                "{}: {} new task(s), {} already in {}",
                engine.pipeline().name,
                s.added,
                resumed,
                super::place::describe(state_dir)
            );
        }
        Err(e) => {
            super::run_log::finish(run_log).await;
            eprintln!("error: {e}");
            return 2;
        }
    }
    // The submitted tasks are durable and broadcast: count them in before
    // anything asks how many are unfinished.
    catch_up(&handle, &mut events, &mut progress).await;
    // Taken before the socket is served: a client may SIGTERM the engine as
    // soon as it answers, and must find it ready to stop cleanly.
    let mut sigterm =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let server = match baton::remote::Server::start(state_dir, handle.clone()).await {
        Ok(s) => Some(s),
        Err(e) if wait => {
            eprintln!("error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!(
                "warning: no control socket ({e}); `baton attach` and decisions while this run goes on are not available"
            );
            None
        }
    };
    let mut holders = server.as_ref().map(|s| s.holders());
    let mut stop_asked = false;
    let mut engine_task = tokio::spawn(engine.run());
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    tick.tick().await;
    let mut stopped_by: Option<i32> = None;
    let mut idle_since: Option<tokio::time::Instant> = None;
    let mut lingered = false;
    let summary = loop {
        // With --wait, the end is when every task is final and nobody holds
        // the run; an engine of a fleet (a run in PostgreSQL) serves until
        // it is stopped, since work may come from others at any time.
        let held = holders.as_ref().is_some_and(|h| *h.borrow() > 0);
        let fleet = !super::place::get().is_folder();
        if wait && !fleet && !stop_asked && !held && progress.unfinished() == 0 {
            stop_asked = true;
            let _ = handle.send(Command::Shutdown).await;
        }
        // A lingering engine also ends when nobody watches and only people
        // could move it on.
        let runnable = [TaskState::Pending, TaskState::Running, TaskState::Retrying]
            .iter()
            .map(|s| progress.count(*s))
            .sum::<usize>();
        match &linger {
            Some(l) if !held && runnable == 0 && !stop_asked => {
                let since = *idle_since.get_or_insert_with(tokio::time::Instant::now);
                if since.elapsed() >= l.after {
                    eprintln!(
                        "no dashboard is attached and nothing is left to run: ending after {}s",
                        l.after.as_secs()
                    );
                    stop_asked = true;
                    lingered = true;
                    let _ = handle.send(Command::Shutdown).await;
                }
            }
            _ => idle_since = None,
        }
        tokio::select! {
            changed = async { holders.as_mut().expect("guarded").changed().await }, if holders.is_some() => {
                if changed.is_err() {
                    holders = None;
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => fold_progress(&handle, &mut progress, &ev).await,
                Err(RecvError::Lagged(_)) => catch_up(&handle, &mut events, &mut progress).await,
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
                    fold_progress(&handle, &mut progress, &ev).await;
                }
                break done;
            }
        }
    };
    super::run_log::finish(run_log).await;
    drop(server);
    baton::agents::command::kill_leftovers();
    if lingered && let Some(dir) = linger.as_ref().and_then(|l| l.remove.as_ref()) {
        match std::fs::remove_dir_all(dir) {
            Ok(()) => eprintln!("removed {}", dir.display()),
            Err(e) => eprintln!("warning: cannot remove {}: {e}", dir.display()),
        }
        return 0;
    }
    let summary = match settled(summary) {
        Ok(s) => s,
        Err(code) => return code,
    };
    progress.print_line(&mut std::io::stderr());
    let waiting = progress.count(baton::engine::TaskState::AwaitingReview)
        + progress.count(baton::engine::TaskState::Blocked);
    if waiting > 0 && stopped_by.is_none() && !wait {
        eprintln!(
            "{waiting} task(s) wait for a person: see `baton list --state awaiting_review {0}`, then `baton approve|reject|resolve TASK {0}` and run again",
            super::place::flags(state_dir)
        );
    }
    stopped_by.unwrap_or_else(|| summary.exit_code())
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

/// Folds every event durable so far into `progress`: what the receiver
/// holds, and what it skipped, read from the store by sequence number.
/// Folds an event into the progress lines, reading the task it is about
/// from the store first when the lines do not hold it; prints a line for a
/// task that came to rest.
async fn fold_progress(
    handle: &baton::engine::EngineHandle,
    progress: &mut Progress,
    ev: &baton::engine::Event,
) {
    if let Some(id) = progress.needs(ev)
        && let Some(reader) = handle.reader()
        && let Ok(Some(task)) = reader.task_before(id, ev.seq).await
    {
        progress.provide(task);
    }
    if let Some(line) = progress.apply(ev) {
        // A reader that went away stops the lines, not the run.
        super::out::line(line);
    }
}

async fn catch_up(
    handle: &baton::engine::EngineHandle,
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<baton::engine::Event>>,
    progress: &mut Progress,
) {
    loop {
        match events.try_recv() {
            Ok(ev) => fold_progress(handle, progress, &ev).await,
            Err(tokio::sync::broadcast::error::TryRecvError::Lagged(_)) => {
                while let Some(missed) = handle.events_after(progress.seq(), 4096).await {
                    if missed.is_empty() {
                        break;
                    }
                    for ev in &missed {
                        fold_progress(handle, progress, ev).await;
                    }
                }
            }
            Err(_) => return,
        }
    }
}
