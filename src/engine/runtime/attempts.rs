//! Attempts in flight: which phase of which task runs on which agent, and
//! how to stop it. Kept per task while the task holds a slot, so that
//! starting an attempt does not allocate.

use std::collections::HashMap;

use tokio::task::AbortHandle;

use crate::engine::event::TaskId;

/// An attempt in flight.
pub(super) struct Running {
    pub(super) phase: usize,
    /// The item, for a `for_each` phase.
    pub(super) item: Option<u32>,
    /// The agent running it, an index into the engine's agents.
    pub(super) agent: usize,
    /// Its place in the agent's rate limiter.
    pub(super) ticket: u64,
    pub(super) handle: AbortHandle,
    /// What it reserved of a fleet's run budget, given back when it ends.
    pub(super) reserved: crate::store::Reserved,
}

#[derive(Default)]
pub(super) struct Attempts {
    by_task: HashMap<TaskId, Vec<Running>>,
    count: usize,
}

impl Attempts {
    pub(super) fn add(&mut self, id: &TaskId, running: Running) {
        match self.by_task.get_mut(id) {
            Some(list) => list.push(running),
            None => {
                self.by_task.insert(id.clone(), vec![running]);
            }
        }
        self.count += 1;
    }

    /// Takes the attempt of phase `idx` of task `id` out, if one runs.
    pub(super) fn take(&mut self, id: &str, idx: usize) -> Option<Running> {
        let list = self.by_task.get_mut(id)?;
        let pos = list
            .iter()
            .position(|r| r.phase == idx && r.item.is_none())?;
        let running = list.swap_remove(pos);
        self.count -= 1;
        Some(running)
    }

    /// The attempts of task `id`.
    pub(super) fn of(&self, id: &str) -> impl Iterator<Item = &Running> {
        self.by_task.get(id).into_iter().flatten()
    }

    pub(super) fn runs(&self, id: &str, idx: usize) -> bool {
        self.of(id).any(|r| r.phase == idx && r.item.is_none())
    }

    /// Takes the attempt of item `item` of phase `idx` of task `id` out, if one runs.
    pub(super) fn take_item(&mut self, id: &str, idx: usize, item: u32) -> Option<Running> {
        let list = self.by_task.get_mut(id)?;
        let pos = list
            .iter()
            .position(|r| r.phase == idx && r.item == Some(item))?;
        let running = list.swap_remove(pos);
        self.count -= 1;
        Some(running)
    }

    /// Takes every item attempt of task `id` out.
    pub(super) fn take_items(&mut self, id: &str) -> Vec<Running> {
        let Some(list) = self.by_task.get_mut(id) else {
            return Vec::new();
        };
        let (items, rest): (Vec<Running>, Vec<Running>) =
            list.drain(..).partition(|r| r.item.is_some());
        *list = rest;
        self.count -= items.len();
        items
    }

    /// Whether the engine still keeps room for task `id`'s attempts (it
    /// holds a slot, or an attempt runs).
    pub(super) fn keeps(&self, id: &str) -> bool {
        self.by_task.contains_key(id)
    }

    /// Gives up the room kept for task `id` when nothing of it runs.
    pub(super) fn release(&mut self, id: &str) {
        if self.by_task.get(id).is_some_and(Vec::is_empty) {
            self.by_task.remove(id);
        }
    }

    /// Attempts in flight over all tasks.
    pub(super) fn count(&self) -> usize {
        self.count
    }

    /// Every phase attempt in flight (items aside), as (task, phase).
    pub(super) fn all(&self) -> Vec<(TaskId, usize)> {
        self.by_task
            .iter()
            .flat_map(|(id, list)| {
                list.iter()
                    .filter(|r| r.item.is_none())
                    .map(move |r| (id.clone(), r.phase))
            })
            .collect()
    }

    /// Tasks with an item attempt in flight.
    pub(super) fn tasks_with_items(&self) -> Vec<TaskId> {
        self.by_task
            .iter()
            .filter(|(_, list)| list.iter().any(|r| r.item.is_some()))
            .map(|(id, _)| id.clone())
            .collect()
    }
}
