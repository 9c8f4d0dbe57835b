//! The terminal dashboard: watch a run and steer it.
//!
//! `run` takes an `EngineHandle` and draws the run from its snapshot and
//! event stream; keys become `Action`s, and decisions become engine
//! `Command`s. The engine knows nothing of this module.
//!
//! Views are one file each and draw from a `widgets::Ctx` without changing
//! anything; `ui` holds the state between frames and `app` the loop.

use std::path::PathBuf;

pub mod action;
pub mod app;
pub mod attention;
pub mod budget_input;
pub mod bulk;
pub mod color;
pub mod commands;
pub mod config_file;
pub mod dashboard;
pub mod fetch;
pub mod figures_view;
pub mod format;
pub mod header;
pub mod help;
pub mod json_view;
pub mod key;
pub mod keymap;
pub mod layout;
pub mod line_edit;
pub mod log_pane;
pub mod mouse;
pub mod pacer;
pub mod prompt;
pub mod review_queue;
pub mod rows;
pub mod run_feed;
pub mod screen;
pub mod status_bar;
pub mod task_detail;
pub mod task_table;
pub mod terminal;
pub mod theme;
pub mod theme_file;
pub mod ui;
pub mod view_model;
pub mod view_state;
pub mod widgets;

pub use app::run;
pub use dashboard::{Dashboard, DashboardError};
pub use log_pane::tracing_layer;

/// How the dashboard starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TuiOptions {
    /// A theme name (looked up in the config folder, `./themes`, then
    /// built in) or a path to a theme file.
    pub theme: Option<String>,
    /// Key bindings; when absent, `keys.toml` in the config folder if any.
    pub keys_file: Option<PathBuf>,
    /// Most frames drawn per second, however busy the run.
    pub max_fps: u32,
    /// No colour at all, as if `NO_COLOR` were set.
    pub no_color: bool,
    /// Quitting stops the engine (the dashboard that started it); an
    /// attached dashboard only closes itself.
    pub quit_stops_engine: bool,
    /// Attached with `--read-only`; shown in the header.
    pub read_only: bool,
    /// How a task that starts waiting for a person is announced; `None`:
    /// the config file's `notify`, else the bell.
    pub notify: Option<attention::Notify>,
}

impl Default for TuiOptions {
    fn default() -> TuiOptions {
        TuiOptions {
            theme: None,
            keys_file: None,
            max_fps: 10,
            no_color: false,
            quit_stops_engine: true,
            read_only: false,
            notify: None,
        }
    }
}

/// How the dashboard ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The operator quit; the caller shuts the engine down.
    Quit,
    /// The operator detached, leaving the run going; `baton attach` comes back.
    Detach,
}

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod fan_out_tests;
#[cfg(test)]
mod loop_view_tests;
#[cfg(test)]
mod snapshot_tests;
