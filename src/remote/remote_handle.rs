//! An `EngineHandle` on an engine in another process, so that the same
//! dashboard runs on either. A bridge task owns the connection: it turns the
//! handle's requests into socket messages and the engine's events back into
//! the handle's broadcast. The run itself is read from the store: the handle
//! carries a read-only reader of the state folder's database (the engine
//! holds the writer; readers never block it). When the engine goes away it
//! says so through the handle's `link` and reconnects with backoff; when it
//! is back, or when the engine says this client fell behind the event
//! stream, the link's generation grows and readers re-read from the store.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, mpsc, oneshot, watch};

use super::client::{ClientOptions, ConnectError, Connection, connect_dir};
use super::protocol::{ClientMsg, ServerMsg};
use super::waiter::{Waiter, read_all_tasks};
use crate::engine::handle::{EngineHandle, Link, Refusal, Request, RunOverview, RunSnapshot};
use crate::engine::live::{LIVE_CAPACITY, LiveEvent};
use crate::engine::task::Task;
use crate::store::{Place, RunReader};

const FIRST_RETRY: Duration = Duration::from_millis(200);
const LONGEST_RETRY: Duration = Duration::from_secs(5);

/// Connects to the engine serving `state_dir` and returns a handle on it
/// that outlives the engine's restarts.
pub async fn attach(
    state_dir: PathBuf,
    opts: ClientOptions,
) -> Result<(EngineHandle, u32), ConnectError> {
    let conn = connect_dir(&state_dir, opts).await?;
    let reader = open_reader(&state_dir, &conn.store)?;
    let pid = conn.pid;
    let (requests, requests_rx) = mpsc::channel(64);
    let (composed_tx, composed) = mpsc::channel(4);
    let (events, _) = broadcast::channel(4096);
    let (live, _) = broadcast::channel(LIVE_CAPACITY);
    let (link_tx, link) = watch::channel(Link::Connected { generation: 0, pid });
    let bridge = Bridge {
        state_dir,
        opts,
        reader: reader.clone(),
        events: events.clone(),
        live: live.clone(),
        link: link_tx,
        generation: 0,
        fresh: None,
        last_seq: 0,
        composed: composed_tx,
        commands: HashMap::new(),
        pending: HashMap::new(),
        waiting: Vec::new(),
    };
    tokio::spawn(bridge.run(conn, requests_rx, composed));
    Ok((
        EngineHandle {
            requests,
            events,
            live,
            link: Some(link),
            reader: Some(reader),
        },
        pid,
    ))
}

/// The run the engine keeps, read beside it: the state folder's database,
/// or the PostgreSQL database its hello names (with this user's own
/// credentials: the engine never sends a password).
fn open_reader(state_dir: &Path, store: &str) -> Result<Arc<dyn RunReader>, ConnectError> {
    let place = if store.starts_with("postgres://") {
        Place::parse(Some(store)).map_err(|message| ConnectError::Broken {
            path: PathBuf::from(store),
            message,
        })?
    } else {
        Place::Folder
    };
    match place.reader(state_dir) {
        Ok(reader) => Ok(reader),
        Err(e) => Err(ConnectError::Broken {
            path: PathBuf::from(store),
            message: format!("cannot read the run the engine keeps: {e}"),
        }),
    }
}

/// Tasks read for a snapshot, to be answered with an overview.
type Composed = (Vec<Task>, u64, oneshot::Sender<RunSnapshot>);

struct Bridge {
    state_dir: PathBuf,
    opts: ClientOptions,
    reader: Arc<dyn RunReader>,
    events: broadcast::Sender<Arc<crate::engine::Event>>,
    live: broadcast::Sender<Arc<LiveEvent>>,
    link: watch::Sender<Link>,
    generation: u64,
    /// The last overview received, while no event has come after it: an
    /// overview request is answered from it without a round trip.
    fresh: Option<RunOverview>,
    /// The seq of the last event received.
    last_seq: u64,
    /// Where snapshot reads hand their tasks back to the bridge.
    composed: mpsc::Sender<Composed>,
    commands: HashMap<u64, oneshot::Sender<Result<(), Refusal>>>,
    /// Overview requests sent to the engine, by id.
    pending: HashMap<u64, Waiter>,
    /// Overview requests made while disconnected, answered on reconnecting.
    waiting: Vec<Waiter>,
}

impl Bridge {
    async fn run(
        mut self,
        mut first: Connection,
        mut requests: mpsc::Receiver<Request>,
        mut composed: mpsc::Receiver<Composed>,
    ) {
        self.last_seq = first.overview.seq;
        self.fresh = Some(std::mem::take(&mut first.overview));
        let mut conn = Some(first);
        let mut delay = FIRST_RETRY;
        loop {
            match conn.as_mut() {
                Some(c) => {
                    tokio::select! {
                        request = requests.recv() => match request {
                            Some(r) => {
                                if !self.on_request(Some(c), r).await {
                                    conn = self.lost(&mut conn, "the connection broke");
                                }
                            }
                            None => return,
                        },
                        Some((tasks, seq, reply)) = composed.recv() => {
                            if !self.ask(Some(c), Waiter::Snapshot { tasks, seq, reply }).await {
                                conn = self.lost(&mut conn, "the connection broke");
                            }
                        }
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
                            Some(r) => {
                                self.on_request(None, r).await;
                            }
                            None => return,
                        },
                        Some((tasks, seq, reply)) = composed.recv() => {
                            self.ask(None, Waiter::Snapshot { tasks, seq, reply }).await;
                        }
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
    async fn on_request(&mut self, c: Option<&mut Connection>, request: Request) -> bool {
        match request {
            Request::Command(command, reply) => {
                let Some(c) = c else {
                    let _ = reply.send(Err(Refusal(
                        "not connected: the engine went away; reconnecting".into(),
                    )));
                    return true;
                };
                let id = c.next_id();
                if c.send(&ClientMsg::Command { id, command }).await.is_err() {
                    let _ = reply.send(Err(Refusal("the connection to the engine broke".into())));
                    return false;
                }
                self.commands.insert(id, reply);
                true
            }
            Request::Overview(reply) => self.ask(c, Waiter::Overview(reply)).await,
            Request::Snapshot(reply) => {
                // The tasks come from the store, read off the bridge so that
                // events keep flowing meanwhile; the overview is asked after.
                let (reader, composed) = (self.reader.clone(), self.composed.clone());
                tokio::spawn(async move {
                    match read_all_tasks(reader).await {
                        Ok((tasks, seq)) => {
                            let _ = composed.send((tasks, seq, reply)).await;
                        }
                        Err(e) => tracing::error!("cannot read the run for a snapshot: {e}"),
                    }
                });
                true
            }
        }
    }

    /// Answers `waiter` from the fresh overview when that is new enough,
    /// else asks the engine (or waits for it to be back). Returns false when
    /// the connection can no longer be written to.
    async fn ask(&mut self, c: Option<&mut Connection>, waiter: Waiter) -> bool {
        if let Some(fresh) = self.fresh.as_ref().filter(|f| f.seq >= waiter.needs()) {
            waiter.answer(fresh);
            return true;
        }
        let Some(c) = c else {
            self.waiting.push(waiter);
            return true;
        };
        let id = c.next_id();
        if c.send(&ClientMsg::Overview { id }).await.is_err() {
            self.waiting.push(waiter);
            return false;
        }
        self.pending.insert(id, waiter);
        true
    }

    /// Keeps `overview` to answer from, unless an event newer than it came.
    fn keep_fresh(&mut self, overview: RunOverview) {
        if overview.seq >= self.last_seq {
            self.fresh = Some(overview);
        }
    }

    fn on_message(&mut self, msg: ServerMsg) {
        match msg {
            ServerMsg::Event { event } => {
                self.fresh = None;
                self.last_seq = self.last_seq.max(event.seq);
                let _ = self.events.send(Arc::new(*event));
            }
            ServerMsg::Live { live } => {
                // The kept overview predates this update: a dashboard that
                // subscribes after it came, then asks for the overview, must
                // get the engine's, which carries it (a held stream may say
                // nothing more).
                self.fresh = None;
                let _ = self.live.send(Arc::new(*live));
            }
            ServerMsg::Overview {
                id: Some(id),
                overview,
            } => {
                if let Some(waiter) = self.pending.remove(&id) {
                    waiter.answer(&overview);
                }
                self.keep_fresh(*overview);
            }
            ServerMsg::Overview { id: None, overview } => {
                // We fell behind the event stream and missed events: readers
                // re-read from the store.
                self.keep_fresh(*overview);
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
                    // An overview the engine could not give: its waiter goes
                    // without (the handle answers `None`).
                    self.pending.remove(&id);
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
        self.waiting.extend(self.pending.drain().map(|(_, w)| w));
        tracing::warn!("lost the engine: {reason}; reconnecting");
        let _ = self.link.send(Link::Lost {
            reason: reason.to_string(),
        });
        None
    }

    fn reconnected(&mut self, c: &mut Connection) {
        let overview = std::mem::take(&mut c.overview);
        for waiter in self.waiting.drain(..) {
            waiter.answer(&overview);
        }
        self.last_seq = overview.seq;
        self.fresh = Some(overview);
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
