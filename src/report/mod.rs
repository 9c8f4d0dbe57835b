//! Text for people and JSON for scripts, from state; never changes it.

pub mod cache_list;
pub mod format;
pub mod item_progress;
pub mod list;
pub mod markdown;
pub mod mask;
pub mod progress;
pub mod projection;
pub mod review_queue;
pub mod run_log;
mod run_log_lines;
pub mod show;
pub mod stats;
pub mod stats_text;
pub mod summary;
pub mod task_fold;
pub mod tasks_left;

#[cfg(test)]
mod testing;
