//! Keeps `state/RUN_LOG.md` as the run goes: a task of its own follows the
//! engine's event stream, folds each event into markdown with
//! [`report::run_log`](crate::report::run_log), and appends it to the file
//! at least once a second, off the async workers. The engine never waits
//! for it: a writer that falls behind re-reads the run's state and says so
//! in the log.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::engine::{Actor, EngineHandle, FollowStart};
use crate::report::mask::Masker;
use crate::report::run_log::{FILE_NAME, Opening, RunLog, TITLE};

/// How often buffered lines reach the file.
pub const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// Buffered text that is written at once rather than at the next tick.
const FLUSH_BYTES: usize = 64 * 1024;
/// Events read from the store at a time when catching up.
const CATCH_UP_BATCH: u64 = 4096;

/// What a section of the log is for.
#[derive(Debug, Clone)]
pub enum Session {
    /// `baton run` or `baton demo`: "Run started", or "Run resumed" when the
    /// folder has a log already; a summary closes it.
    Run,
    /// A command that changes a stopped folder, e.g. `baton approve t1`.
    Command(String),
}

/// The running writer; [`RunLogWriter::finish`] closes its section.
pub struct RunLogWriter {
    stop: oneshot::Sender<()>,
    task: JoinHandle<io::Result<()>>,
    path: PathBuf,
}

/// Where the run log of a state folder is.
pub fn path_in(state_dir: &Path) -> PathBuf {
    state_dir.join(FILE_NAME)
}

impl RunLogWriter {
    /// Opens the log for appending, writes this session's header, and
    /// follows `handle`'s events from `start` on. Call it before the
    /// engine runs, so that no event is missed.
    pub fn start(
        handle: &EngineHandle,
        start: FollowStart,
        masker: Masker,
        session: Session,
        pipeline_file: Option<&Path>,
        by: &Actor,
    ) -> io::Result<RunLogWriter> {
        let path = path_in(Path::new(&start.overview.state_dir));
        let mut file = crate::store::private::append_file(&path)?;
        let is_new = file.metadata()?.len() == 0;
        let (opening, summary) = match session {
            Session::Run if is_new => (Opening::Started, true),
            Session::Run => (Opening::Resumed, true),
            Session::Command(cmd) => (Opening::Command(cmd), false),
        };
        let last = start.overview.seq;
        let mut log = RunLog::follow(start, masker);
        let mut head = if is_new {
            TITLE.to_string()
        } else {
            String::new()
        };
        let file_name = pipeline_file.map(|p| p.display().to_string());
        head.push_str(&log.header(&opening, file_name.as_deref(), by, Timestamp::now()));
        // A run's header is written at once; a command's only with the
        // first thing it changes, so that a refused decision leaves no trace.
        let pending_header = if summary {
            file.write_all(head.as_bytes())?;
            None
        } else {
            Some(head)
        };
        let events = handle.subscribe();
        let (stop, stopped) = oneshot::channel();
        let follower = Follower {
            handle: handle.clone(),
            events,
            log,
            file: Some(file),
            buf: String::new(),
            pending_header,
            summary,
            path: path.clone(),
            last,
        };
        let task = tokio::spawn(follower.run(stopped));
        Ok(RunLogWriter { stop, task, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes what the engine emitted up to now and, for a run, the summary;
    /// then syncs the file. Call it once the engine has stopped.
    pub async fn finish(self) -> io::Result<()> {
        let _ = self.stop.send(());
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(io::Error::other(format!("the run log writer stopped: {e}"))),
        }
    }
}

struct Follower {
    handle: EngineHandle,
    events: tokio::sync::broadcast::Receiver<std::sync::Arc<crate::engine::Event>>,
    log: RunLog,
    file: Option<File>,
    buf: String,
    /// A command's header, until its first line.
    pending_header: Option<String>,
    summary: bool,
    path: PathBuf,
    /// The last event folded.
    last: u64,
}

impl Follower {
    async fn run(mut self, mut stopped: oneshot::Receiver<()>) -> io::Result<()> {
        let mut tick = tokio::time::interval(FLUSH_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut warned = false;
        loop {
            tokio::select! {
                ev = self.events.recv() => match ev {
                    Ok(ev) => {
                        self.apply(&ev).await;
                        if self.buf.len() >= FLUSH_BYTES {
                            self.flush_or_warn(&mut warned).await;
                        }
                    }
                    Err(RecvError::Lagged(skipped)) => {
                        if !self.catch_up().await {
                            let now = Timestamp::now();
                            self.push(&format!(
                                "- the log fell behind and left out {skipped} event(s) at {now}\n"
                            ));
                        }
                    }
                    // Every sender is gone: nothing more will come.
                    Err(RecvError::Closed) => break,
                },
                _ = tick.tick() => self.flush_or_warn(&mut warned).await,
                _ = &mut stopped => break,
            }
        }
        // The engine has stopped and broadcast all it made durable.
        loop {
            match self.events.try_recv() {
                Ok(ev) => self.apply(&ev).await,
                Err(TryRecvError::Lagged(skipped)) => {
                    if !self.catch_up().await {
                        let now = Timestamp::now();
                        self.push(&format!(
                            "- the log fell behind and left out {skipped} event(s) at {now}\n"
                        ));
                    }
                }
                Err(_) => break,
            }
        }
        if self.summary {
            let summary = self.log.summary(Timestamp::now());
            self.buf.push_str(&summary);
        }
        self.flush().await?;
        match self.file.take() {
            Some(file) => tokio::task::spawn_blocking(move || file.sync_data())
                .await
                .map_err(io::Error::other)?,
            None => Ok(()),
        }
    }

    /// Folds an event not folded yet, reading the task it is about from
    /// the store first when the log does not hold it.
    async fn apply(&mut self, ev: &crate::engine::Event) {
        if ev.seq <= self.last {
            return;
        }
        self.last = ev.seq;
        if let Some(id) = self.log.needs(ev)
            && let Some(reader) = self.handle.reader()
        {
            match reader.task_before(id, ev.seq).await {
                Ok(Some(task)) => self.log.provide(task),
                Ok(None) => {}
                Err(e) => tracing::warn!("the run log cannot read task {id}: {e}"),
            }
        }
        let text = self.log.apply(ev);
        self.push(&text);
    }

    /// Reads what the broadcast skipped from the store, by sequence number,
    /// so that the log has no holes; `false` when there is no store to read.
    async fn catch_up(&mut self) -> bool {
        loop {
            let Some(events) = self.handle.events_after(self.last, CATCH_UP_BATCH).await else {
                return false;
            };
            if events.is_empty() {
                return true;
            }
            for ev in &events {
                self.apply(ev).await;
            }
            if self.buf.len() >= FLUSH_BYTES {
                let mut warned = true;
                self.flush_or_warn(&mut warned).await;
            }
        }
    }

    fn push(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(header) = self.pending_header.take() {
            self.buf.push_str(&header);
        }
        self.buf.push_str(text);
    }

    /// Appends the buffer; a failure is logged once and the text dropped,
    /// so that a full disk never grows memory or stops the run.
    async fn flush_or_warn(&mut self, warned: &mut bool) {
        if let Err(e) = self.flush().await {
            if !*warned {
                tracing::warn!("cannot write the run log {}: {e}", self.path.display());
                *warned = true;
            }
            self.buf.clear();
        }
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let Some(mut file) = self.file.take() else {
            return Err(io::Error::other("the run log is not open"));
        };
        let text = std::mem::take(&mut self.buf);
        let (file, result) = tokio::task::spawn_blocking(move || {
            let result = file.write_all(text.as_bytes());
            (file, result)
        })
        .await
        .map_err(io::Error::other)?;
        self.file = Some(file);
        result
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::engine::{Engine, EngineOptions};
    use crate::spec::input::InputTask;

    const PIPELINE: &str = "name = \"w\"\nmask = ['MRN-\\d{6}']\n[agents.a]\nkind = \"sim\"\nlatency = \"1ms\"\nreview_rate = 0.0\n[[phases]]\nid = \"one\"\nagent = \"a\"\n";

    async fn run_once(dir: &Path, inputs: Vec<InputTask>) -> String {
        let pipeline = crate::spec::parse(PIPELINE, &dir.join("p.toml")).unwrap();
        let masker = Masker::new(&pipeline.mask).unwrap();
        let mut engine =
            Engine::open(pipeline, &dir.join("state"), EngineOptions::default()).unwrap();
        let start = engine.follow_start().await.unwrap();
        let writer = RunLogWriter::start(
            &engine.handle(),
            start,
            masker,
            Session::Run,
            Some(Path::new("p.toml")),
            &Actor::engine(),
        )
        .unwrap();
        engine.submit(inputs).await.unwrap();
        engine.run().await.unwrap();
        writer.finish().await.unwrap();
        std::fs::read_to_string(dir.join("state").join(FILE_NAME)).unwrap()
    }

    #[tokio::test]
    async fn a_run_is_logged_and_a_second_run_appends() {
        let dir = tempfile::tempdir().unwrap();
        let task = |id: &str, note: &str| InputTask {
            id: Some(id.into()),
            input: json!({"note": note}),
            origin: "test".into(),
        };
        let first = run_once(dir.path(), vec![task("t1", "MRN-123456, a@b.io")]).await;
        assert!(
            first.starts_with("# baton run log\n\n## Run started · "),
            "{first}"
        );
        assert!(first.contains("- started by: baton\n"), "{first}");
        assert!(
            first.contains("**t1** submitted · input `{\"note\":\"[masked], [email]\"}`"),
            "{first}"
        );
        assert!(
            first.contains("**t1** ✓ `one` #1 succeeded · agent a · model"),
            "{first}"
        );
        assert!(first.contains("**t1** ✓ **task completed**"), "{first}");
        assert!(first.contains("| completed | 1 |"), "{first}");
        assert!(
            !first.contains("MRN-123456") && !first.contains("a@b.io"),
            "{first}"
        );

        let second = run_once(dir.path(), vec![task("t2", "x")]).await;
        assert!(second.starts_with(&first), "the second run must append");
        let added = &second[first.len()..];
        assert!(added.starts_with("\n## Run resumed · "), "{added}");
        assert!(
            added.contains("- tasks in the folder: 1: 1 completed\n"),
            "{added}"
        );
        assert!(added.contains("| completed | 2 |"), "{added}");
        assert_eq!(second.matches("# baton run log").count(), 1);
    }

    /// More pending tasks than the log keeps: those it does not hold are
    /// read from the store when they start, and every line is still told.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tasks_past_what_the_log_keeps_are_read_back_and_told_whole() {
        let dir = tempfile::tempdir().unwrap();
        let n = crate::report::task_fold::FRESH_KEPT + 200;
        let inputs = (0..n)
            .map(|i| InputTask {
                id: Some(format!("t{i:05}")),
                input: json!({"n": i}),
                origin: "test".into(),
            })
            .collect();
        let log = run_once(dir.path(), inputs).await;
        let last = format!("t{:05}", n - 1);
        assert!(
            log.contains(&format!("**{last}** ▶ started after")),
            "the last task's start is told with its wait in the queue"
        );
        assert!(log.contains(&format!("**{last}** ✓ **task completed**")));
        assert_eq!(log.matches("✓ **task completed**").count(), n);
        assert!(
            log.contains(&format!("| completed | {n} |")),
            "the summary counts all"
        );
    }
}
