//! The operator's dashboard on an engine in this process: the engine runs
//! on the same runtime while the dashboard owns the terminal, and quitting
//! stops the run cleanly (attempts in flight are recorded as interrupted and
//! run again next time). `d` cannot detach here, and says so: the engine's
//! agents may be functions of this program, which cannot go on once it
//! exits.

use super::{Exit, TuiOptions};
use crate::engine::{Command, Engine, EngineError, RunSummary};

/// Why the in-process dashboard stopped short.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    /// The terminal could not be drawn on or read from.
    #[error("the dashboard failed: {0:#}")]
    Terminal(anyhow::Error),
    /// The engine stopped with an error (its store, say).
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The engine's task panicked.
    #[error("the engine stopped unexpectedly: {0}")]
    Panicked(String),
}

/// The dashboard, driving an engine in this process.
///
/// ```no_run
/// use baton::{Dashboard, Engine, EngineOptions, Pipeline};
///
/// # async fn go() -> Result<(), Box<dyn std::error::Error>> {
/// let pipeline = Pipeline::from_file("pipelines/demo.toml")?;
/// let engine = Engine::open(pipeline, "state".as_ref(), EngineOptions::default())?;
/// let summary = Dashboard::new().run(engine).await?;
/// std::process::exit(summary.exit_code());
/// # }
/// ```
#[derive(Default)]
pub struct Dashboard {
    opts: TuiOptions,
}

impl Dashboard {
    /// The dashboard with its default options (theme, keys, notices from
    /// the config folder).
    pub fn new() -> Dashboard {
        Dashboard::default()
    }

    /// Theme, keys, frame rate and colour; `quit_stops_engine` is always
    /// on here.
    pub fn options(mut self, opts: TuiOptions) -> Dashboard {
        self.opts = opts;
        self
    }

    /// Runs `engine` and shows it until the operator quits; then stops the
    /// engine and returns how the run stands. An engine left without work
    /// keeps running until then, so decisions can still be made.
    pub async fn run(self, mut engine: Engine) -> Result<RunSummary, DashboardError> {
        engine.set_exit_when_idle(false);
        let mut opts = self.opts;
        opts.quit_stops_engine = true;
        let handle = engine.handle();
        let running = tokio::spawn(engine.run());
        let shown = super::run(handle.clone(), opts).await;
        // Quit (or a dashboard that broke): stop the engine either way, so
        // that everything it did is written before this returns.
        let _ = handle.send(Command::Shutdown).await;
        let summary = match running.await {
            Ok(Ok(summary)) => summary,
            Ok(Err(e)) => return Err(e.into()),
            Err(e) => return Err(DashboardError::Panicked(e.to_string())),
        };
        match shown {
            Ok(Exit::Quit | Exit::Detach) => Ok(summary),
            Err(e) => Err(DashboardError::Terminal(e)),
        }
    }
}
