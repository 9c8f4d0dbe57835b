//! The terminal dashboard: watch a run and steer it.

pub mod action;
pub mod color;
pub mod config_file;
pub mod key;
pub mod keymap;
pub mod theme;
pub mod theme_file;
pub mod view_model;

#[cfg(test)]
pub(crate) mod test_support;
