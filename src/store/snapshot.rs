//! Task snapshots: the background thread that writes them for checkpoints,
//! and the parsing of one snapshot file.
//!
//! A checkpoint's snapshots reflect every event up to its `upto` seq. Once
//! they are all durable, the writer may delete the journal segments holding
//! only such events. Checkpoints are handled strictly in the order they were
//! made, on one thread, so an older snapshot of a task never replaces a newer.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, Write};
use std::sync::Arc;
use std::sync::mpsc as std_mpsc;
use std::thread::{self, JoinHandle};

use tokio::sync::mpsc;

use super::error::{IoContext, StoreError};
use super::fsync::{sync_dir, sync_fs};
use super::layout::{Layout, valid_task_id};
use super::shared::Shared;
use super::writer::Msg;
use crate::engine::task::Task;

/// Up to this many files a checkpoint syncs one by one; above it, one
/// `syncfs` for the whole file system. A per-file `fsync` is exact and
/// touches nothing else, which suits the common small checkpoint. But the
/// engine checkpoints about once a second with every task that changed, and
/// thousands of `fsync`s a second would each force a file system journal
/// commit and compete with the event journal's `fdatasync`s; one `syncfs`
/// does the same work in a single flush. It also flushes unrelated dirty
/// data on that file system, a cost paid here on the background thread, and
/// reports writeback errors on Linux 5.8 and later.
const FSYNC_EACH_UP_TO: usize = 8;

/// One `checkpoint` call.
pub(crate) struct Job {
    pub tasks: Vec<Arc<Task>>,
    pub upto: u64,
}

pub(crate) struct SnapshotThread {
    pub jobs: std_mpsc::Sender<Job>,
    pub thread: JoinHandle<()>,
}

pub(crate) fn spawn(
    layout: Layout,
    shared: Arc<Shared>,
    writer: mpsc::Sender<Msg>,
) -> Result<SnapshotThread, StoreError> {
    let (jobs, rx) = std_mpsc::channel();
    let tasks_dir = layout.tasks();
    let mut snapshotter = Snapshotter {
        layout,
        shared,
        writer,
        written: HashMap::new(),
    };
    let thread = thread::Builder::new()
        .name("baton-snapshots".into())
        .spawn(move || snapshotter.run(rx))
        .at(tasks_dir)?;
    Ok(SnapshotThread { jobs, thread })
}

struct Snapshotter {
    layout: Layout,
    shared: Arc<Shared>,
    writer: mpsc::Sender<Msg>,
    /// Newest seq written per task by this process.
    written: HashMap<String, u64>,
}

impl Snapshotter {
    /// Runs until the `Store` drops its end, finishing every queued job.
    fn run(&mut self, rx: std_mpsc::Receiver<Job>) {
        while let Ok(first) = rx.recv() {
            // Checkpoints that queued up while the last one was written are
            // merged: each task's newest copy (by seq), the highest `upto`. Writing
            // them in one go leaves the disk exactly as writing them one
            // after another would, with less work.
            let mut upto = first.upto;
            let mut tasks: HashMap<String, Arc<Task>> = HashMap::new();
            let mut add = |job: Job, upto: &mut u64| {
                *upto = (*upto).max(job.upto);
                for t in job.tasks {
                    // Ties go to the later checkpoint; a lower seq never wins.
                    if tasks.get(&t.id).is_none_or(|have| have.seq <= t.seq) {
                        tasks.insert(t.id.clone(), t);
                    }
                }
            };
            add(first, &mut upto);
            while let Ok(job) = rx.try_recv() {
                add(job, &mut upto);
            }
            let mut tasks: Vec<Arc<Task>> = tasks.into_values().collect();
            tasks.sort_by(|a, b| a.id.cmp(&b.id));
            match self.write_all(tasks) {
                // Only with every snapshot durable may the journal shrink.
                Ok(()) => {
                    if self.writer.blocking_send(Msg::Prune { upto }).is_err() {
                        tracing::debug!("journal writer gone; segments not pruned");
                    }
                }
                Err(e) => tracing::error!(
                    "checkpoint up to seq {upto} failed: {e}; the journal keeps those events and the next checkpoint tries again"
                ),
            }
        }
    }

    fn write_all(&mut self, tasks: Vec<Arc<Task>>) -> Result<(), StoreError> {
        let mut fresh = Vec::with_capacity(tasks.len());
        for t in tasks {
            if !valid_task_id(&t.id) {
                // Not expected: ids are checked when tasks are submitted.
                return Err(StoreError::io(
                    self.layout.tasks(),
                    io::Error::new(
                        io::ErrorKind::InvalidInput,
                        format!("task id {:?} cannot be a file name", t.id),
                    ),
                ));
            }
            match self.written.get(&t.id) {
                Some(&seq) if seq > t.seq => tracing::warn!(
                    task = %t.id,
                    "snapshot at seq {} not written: one at seq {seq} already is",
                    t.seq
                ),
                _ => fresh.push(t),
            }
        }
        if fresh.is_empty() {
            return Ok(());
        }
        let each = fresh.len() <= FSYNC_EACH_UP_TO;
        for t in &fresh {
            self.write_tmp(t, each)?;
        }
        let dir = self.layout.tasks();
        if !each {
            sync_fs(&dir)?;
        }
        for t in &fresh {
            let (tmp, path) = (self.layout.snapshot_tmp(&t.id), self.layout.snapshot(&t.id));
            fs::rename(&tmp, &path).at(&path)?;
        }
        sync_dir(&dir)?;
        Shared::add(&self.shared.snapshots_written, fresh.len() as u64);
        for t in fresh {
            self.written.insert(t.id.clone(), t.seq);
        }
        Ok(())
    }

    fn write_tmp(&self, task: &Task, sync: bool) -> Result<(), StoreError> {
        let tmp = self.layout.snapshot_tmp(&task.id);
        let mut bytes = serde_json::to_vec_pretty(task)
            .map_err(|e| StoreError::io(&tmp, io::Error::new(io::ErrorKind::InvalidData, e)))?;
        bytes.push(b'\n');
        let mut f = File::create(&tmp).at(&tmp)?;
        f.write_all(&bytes).at(&tmp)?;
        if sync {
            f.sync_all().at(&tmp)?;
        }
        Ok(())
    }
}

/// Reads one snapshot file's bytes as the task named `id`.
pub(crate) fn parse(bytes: &[u8], id: &str) -> Result<Task, String> {
    let task: Task = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    if task.id != id {
        return Err(format!("it holds task {:?}, not {id:?}", task.id));
    }
    Ok(task)
}
