//! Parsing one task snapshot file of the old layout.

use crate::engine::task::Task;

/// Reads one snapshot file's bytes as the task named `id`.
pub(crate) fn parse(bytes: &[u8], id: &str) -> Result<Task, String> {
    let task: Task = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if task.id != id {
        return Err(format!("it holds task {:?}, not {id:?}", task.id));
    }
    Ok(task)
}
