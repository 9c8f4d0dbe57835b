//! The engine's side of the control socket: accepts connections from the
//! engine's own user, sends each the run and its events, and passes their
//! commands to the engine. A misbehaving client gets an error line or a
//! closed connection; the engine never waits on a client.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio::task::JoinHandle;

use super::lines::{Line, read_line};
use super::live_cache::LiveCache;
use super::log_feed;
use super::path::{BIND_SUFFIX, Placement, choose};
use super::peer::{Peer, admit, owner_uid};
use super::protocol::{ClientMsg, MAX_LINE, ServerMsg, VERSION, encode};
use crate::engine::handle::{EngineHandle, Refusal, RunSnapshot};
use crate::engine::live::LiveEvent;

/// Commands one connection may have waiting on the engine at once; past
/// that, its further lines wait to be read.
const COMMANDS_IN_FLIGHT: usize = 16;

/// What read-only connections are told for every command.
pub const READ_ONLY_REFUSAL: &str =
    "read-only: this connection may watch but not act (attach without --read-only to act)";

/// A serving control socket. Dropping it stops accepting and removes the
/// socket file (and its pointer); connections end with the engine.
pub struct Server {
    placement: Placement,
    accept: JoinHandle<()>,
    following: JoinHandle<()>,
    holders: watch::Receiver<usize>,
}

impl Server {
    /// Binds the socket for `state_dir`, whose `LOCK` this process holds.
    pub async fn start(state_dir: &Path, handle: EngineHandle) -> Result<Server, String> {
        let runtime = std::env::var_os("XDG_RUNTIME_DIR").map(PathBuf::from);
        let placement = choose(state_dir, runtime.as_deref())?;
        let listener = bind(&placement).await?;
        if let Some(pointer) = &placement.pointer {
            std::fs::write(pointer, placement.socket.to_string_lossy().as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", pointer.display()))?;
        } else {
            // A pointer left by an engine that ran with another XDG_RUNTIME_DIR.
            let _ = std::fs::remove_file(absolute_pointer(state_dir));
        }
        let (holders_tx, holders) = watch::channel(0usize);
        let (live, following) = LiveCache::follow(&handle);
        let accept = tokio::spawn(accept_loop(listener, handle, live, Arc::new(holders_tx)));
        tracing::debug!("control socket at {}", placement.socket.display());
        Ok(Server {
            placement,
            accept,
            following,
            holders,
        })
    }

    pub fn path(&self) -> &Path {
        &self.placement.socket
    }

    /// How many connected clients asked to keep a `--wait` engine up.
    pub fn holders(&self) -> watch::Receiver<usize> {
        self.holders.clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
        self.following.abort();
        let _ = std::fs::remove_file(&self.placement.socket);
        if let Some(pointer) = &self.placement.pointer {
            let _ = std::fs::remove_file(pointer);
        }
    }
}

fn absolute_pointer(state_dir: &Path) -> PathBuf {
    super::path::absolute(state_dir).join(super::path::POINTER_NAME)
}

/// Binds under a temporary name, restricts it to the owner, then renames it
/// into place, so the socket is never reachable with a looser mode. A socket
/// file already there is stale: the caller holds the folder's lock, so no
/// live engine can be serving it (unless it answers, which is refused).
async fn bind(placement: &Placement) -> Result<UnixListener, String> {
    let path = &placement.socket;
    if path.exists() {
        if UnixStream::connect(path).await.is_ok() {
            return Err(format!(
                "another process already answers on {}\n  help: stop it, or remove the file if it is not a baton engine",
                path.display()
            ));
        }
        std::fs::remove_file(path)
            .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))?;
        tracing::info!("replaced a stale control socket at {}", path.display());
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(BIND_SUFFIX);
    let tmp = PathBuf::from(tmp);
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).map_err(|e| format!("cannot serve on {}: {e}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            format!("cannot set up {}: {e}", path.display())
        })?;
    Ok(listener)
}

async fn accept_loop(
    listener: UnixListener,
    handle: EngineHandle,
    live: Arc<LiveCache>,
    holders: Arc<watch::Sender<usize>>,
) {
    let owner = owner_uid();
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let (handle, live, holders) = (handle.clone(), live.clone(), holders.clone());
                tokio::spawn(async move { serve(stream, handle, live, owner, holders).await });
            }
            Err(e) => {
                // Out of descriptors, usually; back off rather than spin.
                tracing::warn!("control socket: cannot accept a connection: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
}

/// Counts a holding client for as long as its connection lives.
struct Hold(Arc<watch::Sender<usize>>);

impl Hold {
    fn new(holders: Arc<watch::Sender<usize>>) -> Hold {
        holders.send_modify(|n| *n += 1);
        Hold(holders)
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

async fn send(writer: &mut OwnedWriteHalf, msg: &ServerMsg) -> std::io::Result<()> {
    writer.write_all(&encode(msg)).await
}

/// What the client said, as far as the reader could tell.
enum Incoming {
    Msg(ClientMsg),
    /// Not a message: the reply to give, with the id it carried if any.
    Bad(Option<u64>, String),
    /// The connection is over: a last word for the client, if any.
    End(Option<String>),
}

/// Reads lines on its own task so that a line half-read is never lost to
/// the connection's `select!`.
async fn read_incoming(reader: tokio::net::unix::OwnedReadHalf, out: mpsc::Sender<Incoming>) {
    let mut reader = BufReader::new(reader);
    loop {
        let item = match read_line(&mut reader, MAX_LINE).await {
            Ok(Line::Full(bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Full(bytes)) => parse(&bytes),
            Ok(Line::End) => Incoming::End(None),
            Ok(Line::Partial(_)) => Incoming::End(Some(
                "the connection ended in the middle of a line; it was ignored".into(),
            )),
            Ok(Line::TooLong) => Incoming::End(Some(format!(
                "a line longer than {MAX_LINE} bytes; closing the connection"
            ))),
            Err(e) => Incoming::End(Some(format!("cannot read: {e}"))),
        };
        let end = matches!(item, Incoming::End(_));
        if out.send(item).await.is_err() || end {
            return;
        }
    }
}

fn parse(bytes: &[u8]) -> Incoming {
    match serde_json::from_slice::<ClientMsg>(bytes) {
        Ok(msg) => Incoming::Msg(msg),
        Err(e) => {
            let value = serde_json::from_slice::<serde_json::Value>(bytes).ok();
            let id = value
                .as_ref()
                .and_then(|v| v.get("id"))
                .and_then(|v| v.as_u64());
            let what = match value
                .as_ref()
                .and_then(|v| v.get("type"))
                .and_then(|t| t.as_str())
            {
                Some(t) => format!("cannot take this {t:?} message: {e}"),
                None if value.is_some() => {
                    format!("not a message: {e}; every message is an object with a \"type\"")
                }
                None => format!("not JSON: {e}"),
            };
            Incoming::Bad(
                id,
                format!("{what} (messages are hello, command and snapshot; see the README)"),
            )
        }
    }
}

/// One connection, from hello to close.
async fn serve(
    stream: UnixStream,
    handle: EngineHandle,
    live: Arc<LiveCache>,
    owner: u32,
    holders: Arc<watch::Sender<usize>>,
) {
    let peer = match Peer::of(&stream) {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!("control socket: cannot tell who connected ({e}); closing");
            return;
        }
    };
    let (reader, mut writer) = stream.into_split();
    if let Err(why) = admit(peer, owner) {
        tracing::warn!("control socket: {why}");
        let _ = send(
            &mut writer,
            &ServerMsg::Error {
                id: None,
                message: why,
            },
        )
        .await;
        return;
    }
    if let Err(e) = converse(reader, &mut writer, handle, live, holders).await {
        tracing::debug!(
            "control socket: connection from pid {:?} ended: {e}",
            peer.pid
        );
    }
    let _ = writer.shutdown().await;
}

async fn converse(
    reader: tokio::net::unix::OwnedReadHalf,
    writer: &mut OwnedWriteHalf,
    handle: EngineHandle,
    live_cache: Arc<LiveCache>,
    holders: Arc<watch::Sender<usize>>,
) -> std::io::Result<()> {
    // Every snapshot carries what running attempts have shown so far.
    let with_live = |mut snapshot: RunSnapshot| {
        snapshot.live = live_cache.current();
        Box::new(snapshot)
    };
    // Subscribe before the snapshot so that no event falls between them.
    let mut events = handle.subscribe();
    let Some(snapshot) = handle.snapshot().await else {
        return Ok(());
    };
    send(
        writer,
        &ServerMsg::Hello {
            version: VERSION,
            pipeline: snapshot.pipeline.clone(),
            state_dir: snapshot.state_dir.clone(),
            pid: std::process::id(),
        },
    )
    .await?;
    let mut covered = snapshot.seq;
    send(
        writer,
        &ServerMsg::Snapshot {
            id: None,
            snapshot: with_live(snapshot),
        },
    )
    .await?;

    let (lines_tx, mut lines) = mpsc::channel(16);
    let reading = tokio::spawn(read_incoming(reader, lines_tx));
    let _stop_reading = AbortOnDrop(reading);
    let (replies_tx, mut replies) = mpsc::unbounded_channel::<ServerMsg>();
    let in_flight = Arc::new(Semaphore::new(COMMANDS_IN_FLIGHT));
    let mut greeted = false;
    let mut read_only = false;
    let mut logs: Option<tokio::sync::broadcast::Receiver<log_feed::LogLine>> = None;
    let mut live: Option<tokio::sync::broadcast::Receiver<Arc<LiveEvent>>> = None;
    let mut _hold: Option<Hold> = None;

    loop {
        tokio::select! {
            // In this order: the engine broadcasts a command's events before
            // it answers, so a reply and its events are both ready at once,
            // and the events must reach the client first.
            biased;
            incoming = lines.recv() => {
                let Some(incoming) = incoming else { return Ok(()) };
                let msg = match incoming {
                    Incoming::Msg(msg) => msg,
                    Incoming::Bad(id, message) => {
                        send(writer, &ServerMsg::Error { id, message }).await?;
                        continue;
                    }
                    Incoming::End(last) => {
                        if let Some(message) = last {
                            send(writer, &ServerMsg::Error { id: None, message }).await?;
                        }
                        return Ok(());
                    }
                };
                match msg {
                    ClientMsg::Hello { version, read_only: ro, logs: want_logs, live: want_live, hold } => {
                        if greeted {
                            send(writer, &ServerMsg::Error { id: None, message: "hello was already said".into() }).await?;
                            continue;
                        }
                        if version != VERSION {
                            let message = format!(
                                "protocol version {version} is not supported: this engine speaks version {VERSION}; closing"
                            );
                            send(writer, &ServerMsg::Error { id: None, message }).await?;
                            return Ok(());
                        }
                        greeted = true;
                        read_only = ro;
                        if want_logs {
                            logs = Some(log_feed::subscribe());
                        }
                        if want_live {
                            live = Some(handle.subscribe_live());
                        }
                        if hold {
                            _hold = Some(Hold::new(holders.clone()));
                        }
                    }
                    ClientMsg::Command { id, .. } | ClientMsg::Snapshot { id } if !greeted => {
                        let message = format!(
                            "say hello first: {{\"type\":\"hello\",\"version\":{VERSION}}}"
                        );
                        send(writer, &ServerMsg::Error { id: Some(id), message }).await?;
                    }
                    ClientMsg::Command { id, .. } if read_only => {
                        send(writer, &ServerMsg::Reply { id, ok: false, refusal: Some(READ_ONLY_REFUSAL.into()) }).await?;
                    }
                    ClientMsg::Command { id, command } => {
                        let permit = in_flight.clone().acquire_owned().await.expect("never closed");
                        let (handle, replies) = (handle.clone(), replies_tx.clone());
                        tokio::spawn(async move {
                            let result = handle.send(command).await;
                            let _ = replies.send(reply(id, result));
                            drop(permit);
                        });
                    }
                    ClientMsg::Snapshot { id } => {
                        let Some(snapshot) = handle.snapshot().await else { return Ok(()) };
                        covered = covered.max(snapshot.seq);
                        send(writer, &ServerMsg::Snapshot { id: Some(id), snapshot: with_live(snapshot) }).await?;
                    }
                }
            }
            event = events.recv() => match event {
                Ok(event) => {
                    if event.seq > covered {
                        covered = event.seq;
                        send(writer, &ServerMsg::Event { event: Box::new((*event).clone()) }).await?;
                    }
                }
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the stream: start it over from the whole run.
                    let Some(snapshot) = handle.snapshot().await else { return Ok(()) };
                    covered = snapshot.seq;
                    send(writer, &ServerMsg::Snapshot { id: None, snapshot: with_live(snapshot) }).await?;
                }
                Err(RecvError::Closed) => return Ok(()),
            },
            Some(msg) = replies.recv() => send(writer, &msg).await?,
            // Lossy: a client too slow for them skips to newer ones.
            update = async { live.as_mut().expect("guarded").recv().await }, if live.is_some() => {
                if let Ok(update) = update {
                    send(writer, &ServerMsg::Live { live: Box::new((*update).clone()) }).await?;
                }
            }
            line = async { logs.as_mut().expect("guarded").recv().await }, if logs.is_some() => {
                if let Ok(line) = line {
                    send(writer, &ServerMsg::Log { level: line.level, target: line.target, message: line.message }).await?;
                }
            }
        }
    }
}

fn reply(id: u64, result: Result<(), Refusal>) -> ServerMsg {
    match result {
        Ok(()) => ServerMsg::Reply {
            id,
            ok: true,
            refusal: None,
        },
        Err(Refusal(why)) => ServerMsg::Reply {
            id,
            ok: false,
            refusal: Some(why),
        },
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
