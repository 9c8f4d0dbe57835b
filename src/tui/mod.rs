//! The terminal dashboard: watch a run and steer it.

pub mod action;
pub mod color;
pub mod commands;
pub mod config_file;
pub mod format;
pub mod header;
pub mod help;
pub mod json_view;
pub mod key;
pub mod keymap;
pub mod layout;
pub mod line_edit;
pub mod log_pane;
pub mod prompt;
pub mod review_queue;
pub mod rows;
pub mod screen;
pub mod status_bar;
pub mod task_detail;
pub mod task_table;
pub mod theme;
pub mod theme_file;
pub mod ui;
pub mod view_model;
pub mod view_state;
pub mod widgets;

#[cfg(test)]
pub(crate) mod test_support;

#[cfg(test)]
mod snapshot_tests;
