//! `baton run`: load, recover, submit, and run until nothing more can happen
//! without a person.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::Duration;

use baton::engine::{Command, Engine, EngineOptions};
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
    #[command(flatten)]
    dir: super::StateDir,
}

pub async fn run(args: RunArgs) -> i32 {
    super::init_logging();
    let pipeline = match spec::load(&args.pipeline) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
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
    if !args.headless && !std::io::stdout().is_terminal() {
        eprintln!("stdout is not a terminal: running headless");
    }
    run_headless(&args.pipeline, pipeline, inputs, &args.dir.state_dir).await
}

/// Opens the engine on a state folder, adds the inputs, and runs headless.
pub async fn run_headless(
    pipeline_file: &Path,
    pipeline: spec::Pipeline,
    inputs: Vec<InputTask>,
    state_dir: &Path,
) -> i32 {
    let mut engine = match Engine::open(pipeline, state_dir, EngineOptions::default()) {
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
    let summary = match summary {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("error: the engine stopped unexpectedly: {e}");
            return 2;
        }
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
