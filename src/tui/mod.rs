//! The terminal dashboard: watch a run and steer it.

pub mod action;
pub mod color;
pub mod config_file;
pub mod format;
pub mod key;
pub mod keymap;
pub mod line_edit;
pub mod prompt;
pub mod rows;
pub mod theme;
pub mod theme_file;
pub mod view_model;
pub mod view_state;
pub mod widgets;

#[cfg(test)]
pub(crate) mod test_support;
