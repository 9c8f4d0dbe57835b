//! What each running attempt has shown so far: its reply up to now and its
//! last trace lines. Live updates are sent once and never journaled, so a
//! dashboard that attaches while a reply is streaming would show nothing
//! until the next piece; the snapshots the socket sends carry this instead.
//! An attempt's entry goes when its `AttemptFinished` event comes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast::error::RecvError;
use tokio::task::JoinHandle;

use crate::engine::event::{EventKind, TaskId};
use crate::engine::handle::EngineHandle;
use crate::engine::live::{LiveEvent, LiveKind};

/// Trace lines kept per running attempt.
const TRACES_KEPT: usize = 50;

type Key = (TaskId, String, u32);

#[derive(Default)]
struct Shown {
    progress: Option<Arc<LiveEvent>>,
    traces: VecDeque<Arc<LiveEvent>>,
}

#[derive(Default)]
pub struct LiveCache {
    attempts: Mutex<HashMap<Key, Shown>>,
}

impl LiveCache {
    /// Follows `handle`'s live updates and events until the engine stops.
    pub fn follow(handle: &EngineHandle) -> (Arc<LiveCache>, JoinHandle<()>) {
        let cache = Arc::new(LiveCache::default());
        let mut live = handle.subscribe_live();
        let mut events = handle.subscribe();
        let c = cache.clone();
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    update = live.recv() => match update {
                        Ok(ev) => c.note(ev),
                        Err(RecvError::Lagged(_)) => {}
                        Err(RecvError::Closed) => return,
                    },
                    event = events.recv() => match event {
                        Ok(ev) => {
                            if let (Some(task), EventKind::AttemptFinished { phase, attempt, .. }) =
                                (&ev.task, &ev.kind)
                            {
                                c.finished(task, phase, *attempt);
                            }
                        }
                        // Which attempts ended is lost; what they showed is
                        // dropped (watchers ignore updates of finished attempts).
                        Err(RecvError::Lagged(_)) => c.clear(),
                        Err(RecvError::Closed) => return,
                    },
                }
            }
        });
        (cache, task)
    }

    pub fn note(&self, ev: Arc<LiveEvent>) {
        let key = (ev.task.clone(), ev.phase.clone(), ev.attempt);
        let mut attempts = self.attempts.lock().expect("live cache");
        let shown = attempts.entry(key).or_default();
        match ev.kind {
            LiveKind::Progress(_) => shown.progress = Some(ev),
            LiveKind::Trace { .. } => {
                if shown.traces.len() == TRACES_KEPT {
                    shown.traces.pop_front();
                }
                shown.traces.push_back(ev);
            }
        }
    }

    pub fn finished(&self, task: &str, phase: &str, attempt: u32) {
        let key = (task.to_string(), phase.to_string(), attempt);
        self.attempts.lock().expect("live cache").remove(&key);
    }

    fn clear(&self) {
        self.attempts.lock().expect("live cache").clear();
    }

    /// Everything running attempts have shown, trace lines in order and
    /// each attempt's latest reply after them.
    pub fn current(&self) -> Vec<LiveEvent> {
        let attempts = self.attempts.lock().expect("live cache");
        attempts
            .values()
            .flat_map(|s| s.traces.iter().chain(s.progress.iter()))
            .map(|ev| (**ev).clone())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::live::Progress;

    fn progress(task: &str, attempt: u32, text: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            task: task.into(),
            phase: "p".into(),
            attempt,
            kind: LiveKind::Progress(Progress {
                text: text.into(),
                output_tokens: 1,
                estimated: true,
            }),
        })
    }

    fn trace(task: &str, line: &str) -> Arc<LiveEvent> {
        Arc::new(LiveEvent {
            task: task.into(),
            phase: "p".into(),
            attempt: 1,
            kind: LiveKind::Trace { line: line.into() },
        })
    }

    fn texts(cache: &LiveCache) -> Vec<String> {
        let mut v: Vec<String> = cache
            .current()
            .into_iter()
            .map(|e| match e.kind {
                LiveKind::Progress(p) => format!("{}#{}: {}", e.task, e.attempt, p.text),
                LiveKind::Trace { line } => format!("{}: {line}", e.task),
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn keeps_the_latest_reply_and_recent_traces_of_running_attempts() {
        let cache = LiveCache::default();
        cache.note(progress("t1", 1, "Sta"));
        cache.note(progress("t1", 1, "Stable"));
        cache.note(trace("t1", "reading"));
        cache.note(progress("t2", 1, "No"));
        assert_eq!(texts(&cache), ["t1#1: Stable", "t1: reading", "t2#1: No"]);
        cache.finished("t1", "p", 1);
        assert_eq!(texts(&cache), ["t2#1: No"]);
    }

    #[test]
    fn trace_lines_are_capped() {
        let cache = LiveCache::default();
        for i in 0..TRACES_KEPT + 10 {
            cache.note(trace("t1", &format!("line {i}")));
        }
        let lines = texts(&cache);
        assert_eq!(lines.len(), TRACES_KEPT);
        assert!(!lines.contains(&"t1: line 0".to_string()));
        assert!(lines.contains(&format!("t1: line {}", TRACES_KEPT + 9)));
    }
}
