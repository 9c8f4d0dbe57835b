//! The journal writer: one thread that owns the current segment and commits
//! events in groups.
//!
//! It blocks for the next message, drains whatever else is already queued,
//! writes all those events with one `write` and makes them durable with one
//! `fdatasync`. Only then are they broadcast and `flush` callers released.
//! Under load the queue fills while a sync runs, so one sync covers many
//! events; when idle a lone event is synced at once.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};

use tokio::sync::{broadcast, mpsc, oneshot};

use super::error::{IoContext, StoreError};
use super::fsync::sync_dir;
use super::journal::encode_line;
use super::layout::Layout;
use super::shared::{Failure, Shared};
use crate::engine::event::Event;

/// Batches the queue holds before `append` waits: the backpressure point.
pub(crate) const QUEUE_BATCHES: usize = 1024;
/// At most this many events share one sync, so a huge backlog still reaches
/// subscribers and `flush` callers in steps rather than all at the end.
const MAX_EVENTS_PER_SYNC: usize = 16_384;

pub(crate) enum Msg {
    Events(Vec<Event>),
    /// Answered once everything queued before it is durable.
    Flush(oneshot::Sender<Result<u64, StoreError>>),
    /// A checkpoint's snapshots are on disk: delete the closed segments
    /// holding only events up to `upto`.
    Prune {
        upto: u64,
    },
}

impl Msg {
    fn events(&self) -> usize {
        match self {
            Msg::Events(e) => e.len(),
            _ => 0,
        }
    }
}

/// The segment being appended to.
struct Segment {
    /// Its first seq, as in its file name. Every event in it has a seq at
    /// least this, and every event in earlier segments is below it.
    name: u64,
    path: PathBuf,
    file: File,
    /// Seq of the last event written to it (buffered or synced).
    last: Option<u64>,
}

pub(crate) struct Writer {
    layout: Layout,
    shared: Arc<Shared>,
    broadcast: broadcast::Sender<Arc<Event>>,
    current: Segment,
    /// Names of the older segments, ascending.
    closed: Vec<u64>,
    buf: Vec<u8>,
    /// Seq of the last event in `buf`.
    buf_last: Option<u64>,
}

impl Writer {
    /// Opens the segment that new events go to: `last_seq + 1`. A new file
    /// per run means no process ever appends after bytes an earlier process
    /// wrote; recovery has already trimmed those, but starting clean costs
    /// one small file and keeps the reasoning simple. If that segment exists
    /// it holds no events (all recovered seqs are <= `last_seq`), typically
    /// left empty by an earlier run, and is reused.
    pub(crate) fn open(
        layout: &Layout,
        shared: Arc<Shared>,
        broadcast: broadcast::Sender<Arc<Event>>,
        segments: &[u64],
        last_seq: u64,
    ) -> Result<Writer, StoreError> {
        let name = last_seq.saturating_add(1);
        let closed: Vec<u64> = segments.iter().copied().filter(|&s| s != name).collect();
        let current = open_segment(layout, name)?;
        Ok(Writer {
            layout: layout.clone(),
            shared,
            broadcast,
            current,
            closed,
            buf: Vec::with_capacity(1 << 16),
            buf_last: None,
        })
    }

    pub(crate) fn spawn(self, rx: mpsc::Receiver<Msg>) -> io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("baton-journal".into())
            .spawn(move || self.run(rx))
    }

    /// Runs until every sender is gone, committing what was queued first.
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            #[cfg(test)]
            drop(
                self.shared
                    .writer_gate
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let mut events = first.events();
            let mut msgs = vec![first];
            while events < MAX_EVENTS_PER_SYNC {
                match rx.try_recv() {
                    Ok(m) => {
                        events += m.events();
                        msgs.push(m);
                    }
                    Err(_) => break,
                }
            }
            self.process(msgs);
        }
    }

    fn process(&mut self, msgs: Vec<Msg>) {
        let mut events = Vec::new();
        let mut waiters = Vec::new();
        for m in msgs {
            match m {
                Msg::Events(mut batch) => events.append(&mut batch),
                Msg::Flush(tx) => waiters.push(tx),
                Msg::Prune { upto } => {
                    // Pruning may rotate, which needs everything before it durable.
                    self.commit(std::mem::take(&mut events), std::mem::take(&mut waiters));
                    self.prune(upto);
                }
            }
        }
        self.commit(events, waiters);
    }

    /// Writes and syncs `events`, then publishes them and answers `waiters`.
    fn commit(
        &mut self,
        events: Vec<Event>,
        waiters: Vec<oneshot::Sender<Result<u64, StoreError>>>,
    ) {
        if !events.is_empty() && self.shared.check().is_ok() {
            let written = self.write(&events);
            // Publish whatever reached the disk, even if a later part failed.
            let durable = self.shared.durable();
            let mut published = 0u64;
            for e in events.into_iter().take_while(|e| e.seq <= durable) {
                published += 1;
                // No receivers is fine: nobody is watching.
                let _ = self.broadcast.send(Arc::new(e));
            }
            Shared::add(&self.shared.events_written, published);
            if let Err(e) = written {
                self.fail(e);
            }
        }
        for w in waiters {
            let _ = w.send(self.shared.check().map(|()| self.shared.durable()));
        }
    }

    fn write(&mut self, events: &[Event]) -> Result<(), StoreError> {
        for e in events {
            let boundary = self.shared.rotate_at.load(Ordering::Acquire);
            // A checkpoint covers everything up to `boundary`: end the segment
            // there, if everything in it so far is covered.
            if self.current.last.is_some_and(|last| last <= boundary) && e.seq > boundary {
                self.sync_buf()?;
                self.rotate(boundary.saturating_add(1))?;
            }
            encode_line(e, &mut self.buf).map_err(|err| StoreError::JournalFailed {
                path: self.current.path.clone(),
                reason: format!("event seq {} cannot be serialised: {err}", e.seq),
                durable: self.shared.durable(),
            })?;
            self.buf_last = Some(e.seq);
            self.current.last = Some(e.seq);
        }
        self.sync_buf()
    }

    /// One `write` and one `fdatasync` for everything buffered.
    fn sync_buf(&mut self) -> Result<(), StoreError> {
        let Some(last) = self.buf_last else {
            return Ok(());
        };
        let path = &self.current.path;
        self.current.file.write_all(&self.buf).at(path)?;
        self.current.file.sync_data().at(path)?;
        Shared::add(&self.shared.batches, 1);
        Shared::add(&self.shared.bytes_written, self.buf.len() as u64);
        self.shared.durable_seq.store(last, Ordering::Release);
        self.buf.clear();
        self.buf_last = None;
        Ok(())
    }

    /// Starts segment `name`. The current one must be synced already, so a
    /// crash can only ever leave a torn write in the newest segment.
    fn rotate(&mut self, name: u64) -> Result<(), StoreError> {
        debug_assert!(self.buf_last.is_none());
        let next = open_segment(&self.layout, name)?;
        let old = std::mem::replace(&mut self.current, next);
        self.closed.push(old.name);
        tracing::debug!(segment = name, "journal segment started");
        Ok(())
    }

    /// Deletes closed segments whose events are all <= `upto`. A closed
    /// segment's events are all below the next segment's name, so the names
    /// alone decide; the current segment is never deleted.
    fn prune(&mut self, upto: u64) {
        if self.shared.check().is_err() {
            return;
        }
        if self.current.last.is_some_and(|last| last <= upto) {
            // Everything in the current segment is covered too: close it so
            // it can go now rather than at the next checkpoint. The new
            // segment's name also records `upto`, so seqs are not reused
            // after a restart even when every event is pruned.
            if let Err(e) = self.rotate(upto.saturating_add(1)) {
                tracing::warn!("could not start a new journal segment: {e}");
            }
        }
        let mut keep = Vec::with_capacity(self.closed.len());
        let mut deleted = 0;
        for (i, &name) in self.closed.iter().enumerate() {
            let next = self.closed.get(i + 1).copied().unwrap_or(self.current.name);
            if next - 1 > upto {
                keep.push(name);
                continue;
            }
            let path = self.layout.segment(name);
            match fs::remove_file(&path) {
                Ok(()) => deleted += 1,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(
                        "could not delete journal segment {}: {e}; it is retried at the next checkpoint",
                        path.display()
                    );
                    keep.push(name);
                }
            }
        }
        self.closed = keep;
        if deleted > 0 {
            if let Err(e) = sync_dir(&self.layout.journal()) {
                tracing::warn!("{e}");
            }
            Shared::add(&self.shared.segments_deleted, deleted);
            tracing::debug!(upto, deleted, "journal segments pruned");
        }
    }

    /// Stops all further writes. After a failed `fdatasync` the kernel may
    /// have dropped the dirty pages and cleared the error, so retrying could
    /// claim durability for data that is gone.
    fn fail(&mut self, e: StoreError) {
        tracing::error!("{e}; the journal takes no more events");
        let (path, reason) = match e {
            StoreError::Io { path, source } => (path, source.to_string()),
            StoreError::JournalFailed { path, reason, .. } => (path, reason),
            other => (self.current.path.clone(), other.to_string()),
        };
        self.shared.fail(Failure {
            path,
            reason,
            durable: self.shared.durable(),
        });
    }
}

/// Opens (creating if needed) segment `name` for appending, and makes its
/// directory entry durable before any event is acknowledged from it.
fn open_segment(layout: &Layout, name: u64) -> Result<Segment, StoreError> {
    let path = layout.segment(name);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .at(&path)?;
    sync_dir(&layout.journal())?;
    Ok(Segment {
        name,
        path,
        file,
        last: None,
    })
}
