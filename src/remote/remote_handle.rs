//! An `EngineHandle` on an engine in another process, so that the same
//! dashboard runs on either. A bridge task owns the connection: it turns the
//! handle's requests into socket messages and the engine's events back into
//! the handle's broadcast. When the engine goes away it says so through the
//! handle's `link` and reconnects with backoff; the reader then resyncs from
//! a fresh snapshot.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::client::{ClientOptions, ConnectError, Connection, connect_dir};
use super::protocol::{ClientMsg, ServerMsg};
use crate::engine::handle::{EngineHandle, Link, Refusal, Request, RunSnapshot};
use crate::engine::live::{LIVE_CAPACITY, LiveEvent};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Connects to the engine serving `state_dir` and returns a handle on it
/// that outlives the engine's restarts.
pub async fn attach(
    state_dir: PathBuf,
    opts: ClientOptions,
) -> Result<(EngineHandle, u32), ConnectError> {
    let conn = connect_dir(&state_dir, opts).await?;
    let pid = conn.pid;
    let (requests, requests_rx) = mpsc::channel(64);
    let (events, _) = broadcast::channel(4096);
    let (live, _) = broadcast::channel(LIVE_CAPACITY);
    let (link_tx, link) = watch::channel(Link::Connected { generation: 0, pid });
    let bridge = Bridge {
        state_dir,
        opts,
        events: events.clone(),
        live: live.clone(),
        link: link_tx,
        generation: 0,
        fresh: None,
        commands: HashMap::new(),
        snapshots: HashMap::new(),
        waiting: Vec::new(),
    };
    tokio::spawn(bridge.run(conn, requests_rx));
    Ok((
        EngineHandle {
            requests,
            events,
            live,
            link: Some(link),
            reader: None,
        },
        pid,
    ))
}

struct Bridge {
    state_dir: PathBuf,
    opts: ClientOptions,
    events: broadcast::Sender<Arc<crate::engine::Event>>,
    live: broadcast::Sender<Arc<LiveEvent>>,
    link: watch::Sender<Link>,
    generation: u64,
    /// The last snapshot received, while no event has come after it: a
    /// snapshot request is answered from it without a round trip.
    fresh: Option<RunSnapshot>,
    commands: HashMap<u64, oneshot::Sender<Result<(), Refusal>>>,
    snapshots: HashMap<u64, oneshot::Sender<RunSnapshot>>,
    /// Snapshot requests made while disconnected, answered on reconnecting.
    waiting: Vec<oneshot::Sender<RunSnapshot>>,
}

impl Bridge {
    async fn run(mut self, first: Connection, mut requests: mpsc::Receiver<Request>) {
        let mut conn = Some(first);
        if let Some(c) = conn.as_mut() {
            // The bridge keeps the one copy; a run of many tasks is large.
            self.fresh = Some(std::mem::take(&mut c.snapshot));
        }
        let mut delay = FIRST_RETRY;
        loop {
            match conn.as_mut() {
                Some(c) => {
                    tokio::select! {
                        request = requests.recv() => match request {
                            Some(r) => {
                                if !self.on_request(c, r).await {
                                    conn = self.lost(&mut conn, "the connection broke");
                                }
                            }
                            None => return,
                        },
                        msg = c.next() => match msg {
                            Some(Ok(msg)) => self.on_message(msg),
                            Some(Err(e)) => conn = self.lost(&mut conn, &e),
                            None => conn = self.lost(&mut conn, "the engine closed the connection"),
                        },
                    }
                    if conn.is_some() {
                        delay = FIRST_RETRY;
                    }
                }
                None => {
                    tokio::select! {
                        request = requests.recv() => match request {
                            Some(Request::Command(_, reply)) => {
                                let _ = reply.send(Err(Refusal(
                                    "not connected: the engine went away; reconnecting".into(),
                                )));
                            }
                            Some(Request::Snapshot(reply)) => self.waiting.push(reply),
                            Some(Request::Overview(reply)) => self.waiting.push(overview_of(reply)),
                            None => return,
                        },
                        _ = tokio::time::sleep(delay) => {
                            delay = (delay * 2).min(LONGEST_RETRY);
                            match connect_dir(&self.state_dir, self.opts).await {
                                Ok(mut c) => {
                                    self.reconnected(&mut c);
                                    conn = Some(c);
                                }
                                Err(e) => {
                                    tracing::debug!("reconnecting to the engine: {e}");
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// Returns false when the connection can no longer be written to.
    async fn on_request(&mut self, c: &mut Connection, request: Request) -> bool {
        match request {
            Request::Command(command, reply) => {
                let id = c.next_id();
                if c.send(&ClientMsg::Command { id, command }).await.is_err() {
                    let _ = reply.send(Err(Refusal("the connection to the engine broke".into())));
                    return false;
                }
                self.commands.insert(id, reply);
            }
            Request::Overview(reply) => {
                return Box::pin(self.on_request(c, Request::Snapshot(overview_of(reply)))).await;
            }
            Request::Snapshot(reply) => {
                // Handed over rather than copied: a later request asks the
                // engine again.
                if let Some(s) = self.fresh.take() {
                    let _ = reply.send(s);
                    return true;
                }
                let id = c.next_id();
                if c.send(&ClientMsg::Snapshot { id }).await.is_err() {
                    self.waiting.push(reply);
                    return false;
                }
                self.snapshots.insert(id, reply);
            }
        }
        true
    }

    fn on_message(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Event { event } => {
                self.fresh = None;
                let _ = self.events.send(Arc::new(*event));
            }
            ServerMsg::Live { live } => {
                let _ = self.live.send(Arc::new(*live));
            }
            ServerMsg::Snapshot {
                id: Some(id),
                snapshot,
            } => {
                if let Some(reply) = self.snapshots.remove(&id) {
                    let _ = reply.send(*snapshot);
                }
            }
            ServerMsg::Snapshot { id: None, snapshot } => {
                // The engine started the stream over (we fell behind): readers resync.
                self.fresh = Some(*snapshot);
                self.bump();
            }
            ServerMsg::Reply { id, ok, refusal } => {
                if let Some(reply) = self.commands.remove(&id) {
                    let _ = reply.send(if ok {
                        Ok(())
                    } else {
                        Err(Refusal(refusal.unwrap_or_else(|| "refused".into())))
                    });
                }
            }
            ServerMsg::Error {
                id: Some(id),
                message,
            } => {
                if let Some(reply) = self.commands.remove(&id) {
                    let _ = reply.send(Err(Refusal(message)));
                } else {
                    tracing::warn!("the engine says: {message}");
                }
            }
            ServerMsg::Error { id: None, message } => tracing::warn!("the engine says: {message}"),
            ServerMsg::Log {
                level,
                target,
                message,
            } => forward_log(&level, &target, &message),
            ServerMsg::Hello { .. } => {}
        }
    }

    fn lost(&mut self, conn: &mut Option<Connection>, reason: &str) -> Option<Connection> {
        conn.take();
        self.fresh = None;
        for (_, reply) in self.commands.drain() {
            let _ = reply.send(Err(Refusal(
                "the engine went away before it answered; check with `baton show TASK`".into(),
            )));
        }
        self.waiting.extend(self.snapshots.drain().map(|(_, r)| r));
        tracing::warn!("lost the engine: {reason}; reconnecting");
        let _ = self.link.send(Link::Lost {
            reason: reason.to_string(),
        });
        None
    }

    fn reconnected(&mut self, c: &mut Connection) {
        let snapshot = std::mem::take(&mut c.snapshot);
        for reply in self.waiting.drain(..) {
            let _ = reply.send(snapshot.clone());
        }
        self.fresh = Some(snapshot);
        tracing::info!("reconnected to the engine (pid {})", c.pid);
        self.generation += 1;
        let _ = self.link.send(Link::Connected {
            generation: self.generation,
            pid: c.pid,
        });
    }

    fn bump(&mut self) {
        self.generation += 1;
        let pid = match &*self.link.borrow() {
            Link::Connected { pid, .. } => *pid,
            Link::Lost { .. } => 0,
        };
        let _ = self.link.send(Link::Connected {
            generation: self.generation,
            pid,
        });
    }
}

/// A snapshot reply that answers an overview request.
fn overview_of(
    reply: oneshot::Sender<crate::engine::handle::RunOverview>,
) -> oneshot::Sender<RunSnapshot> {
    let (tx, rx) = oneshot::channel::<RunSnapshot>();
    tokio::spawn(async move {
        if let Ok(s) = rx.await {
            let _ = reply.send(s.overview());
        }
    });
    tx
}

/// The engine's log line into this process's log (the dashboard's log pane),
/// under the `engine` target with the engine's own target in front.
fn forward_log(level: &str, target: &str, message: &str) {
    match level {
        "ERROR" => tracing::error!(target: "engine", "{target}: {message}"),
        "WARN" => tracing::warn!(target: "engine", "{target}: {message}"),
        "INFO" => tracing::info!(target: "engine", "{target}: {message}"),
        "DEBUG" => tracing::debug!(target: "engine", "{target}: {message}"),
        _ => tracing::trace!(target: "engine", "{target}: {message}"),
    }
}
