//! One connection to the control socket, from the server's hello to the
//! close: the overview, the events after it, the client's requests (in
//! order, through its `CommandQueue`), and what it asked to follow.
//!
//! What a connection holds is bounded whatever the client does: the lines
//! read ahead, the requests queued and their answers are all in bounded
//! channels, and a client that stops reading holds up only its own writer,
//! which holds one message at a time. Events come from the engine's shared
//! broadcast ring, which does not grow for a reader that falls behind: the
//! reader is told it lagged, and the client gets a fresh overview. A client
//! that has not taken one message for `stall` is dropped.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use super::command_queue::{CommandQueue, Job, overview};
use super::event_stream::{EventStream, Next};
use super::identity::stamp;
use super::lines::{Line, read_line};
use super::live_cache::LiveCache;
use super::log_feed;
use super::peer::Peer;
use super::protocol::{
    CLIENT_TYPES, ClientMsg, MAX_LINE, ServerMsg, VERSION, encode, snapshot_is_gone,
};
use crate::engine::handle::EngineHandle;
use crate::engine::live::LiveEvent;

/// How long one message may wait for a client to take it before the client
/// is dropped.
pub const WRITE_STALL: Duration = Duration::from_secs(30);

/// Lines read ahead of the connection (each at most `MAX_LINE`).
const LINES_AHEAD: usize = 4;

/// What read-only connections are told for every command.
pub const READ_ONLY_REFUSAL: &str =
    "read-only: this connection may watch but not act (attach without --read-only to act)";

/// What every connection of a server shares.
pub struct Context {
    pub handle: EngineHandle,
    pub live: Arc<LiveCache>,
    /// How many connected clients keep a `--wait` engine up.
    pub holders: Arc<watch::Sender<usize>>,
    /// Where the run is kept, for the hello.
    pub store: String,
    /// See `WRITE_STALL`.
    pub stall: Duration,
}

/// Why a conversation ended early.
#[derive(Debug, thiserror::Error)]
pub enum Ended {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("the client took nothing for {0:?} while a message waited")]
    Stalled(Duration),
}

/// The writing half, which gives up on a client that stops reading.
pub struct Out {
    writer: OwnedWriteHalf,
    stall: Duration,
}

impl Out {
    pub fn new(writer: OwnedWriteHalf, stall: Duration) -> Out {
        Out { writer, stall }
    }

    pub async fn send(&mut self, msg: &ServerMsg) -> Result<(), Ended> {
        self.write(&encode(msg)).await
    }

    pub async fn write(&mut self, line: &[u8]) -> Result<(), Ended> {
        match tokio::time::timeout(self.stall, self.writer.write_all(line)).await {
            Ok(done) => Ok(done?),
            Err(_) => Err(Ended::Stalled(self.stall)),
        }
    }

    /// Closes the writing side, without waiting on a client that does not read.
    pub async fn shutdown(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(1), self.writer.shutdown()).await;
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
async fn read_incoming(reader: OwnedReadHalf, out: mpsc::Sender<Incoming>, store: String) {
    let mut reader = BufReader::new(reader);
    loop {
        let item = match read_line(&mut reader, MAX_LINE).await {
            Ok(Line::Full(bytes)) if bytes.iter().all(u8::is_ascii_whitespace) => continue,
            Ok(Line::Full(bytes)) => parse(&bytes, &store),
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

fn parse(bytes: &[u8], store: &str) -> Incoming {
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
                Some("snapshot") => return Incoming::Bad(id, snapshot_is_gone(store)),
                Some(t) => format!("cannot take this {t:?} message: {e}"),
                None if value.is_some() => {
                    format!("not a message: {e}; every message is an object with a \"type\"")
                }
                None => format!("not JSON: {e}"),
            };
            Incoming::Bad(
                id,
                format!("{what} (messages are {CLIENT_TYPES}; see the README)"),
            )
        }
    }
}

/// One connection, from the server's hello to the close. Commands are
/// recorded as `peer`'s, whatever name they carry.
pub async fn converse(
    reader: OwnedReadHalf,
    out: &mut Out,
    ctx: &Context,
    peer: Peer,
) -> Result<(), Ended> {
    let handle = &ctx.handle;
    // Subscribe before the overview so that no event falls between them;
    // live updates too, kept if the client's hello asks for them (an update
    // the overview holds may then come once more: each reply carries the
    // whole text so far, and a missed one could leave a held stream blank).
    let events = handle.subscribe();
    let mut early_live = Some(handle.subscribe_live());
    let Some(first) = overview(handle, &ctx.live).await else {
        return Ok(());
    };
    out.send(&ServerMsg::Hello {
        version: VERSION,
        pipeline: first.pipeline.clone(),
        state_dir: first.state_dir.clone(),
        pid: std::process::id(),
        store: ctx.store.clone(),
    })
    .await?;
    let mut stream = EventStream::new(events, first.seq);
    out.send(&ServerMsg::Overview {
        id: None,
        overview: Box::new(first),
    })
    .await?;

    let (lines_tx, mut lines) = mpsc::channel(LINES_AHEAD);
    let reading = tokio::spawn(read_incoming(reader, lines_tx, ctx.store.clone()));
    let _stop_reading = AbortOnDrop(reading);
    let (queue, mut answers) = CommandQueue::start(handle.clone(), ctx.live.clone());
    // Dropped once the client has said all it will: what it queued is
    // carried out and answered, then the connection ends.
    let mut queue = Some(queue);
    let mut greeted = false;
    let mut read_only = false;
    let mut logs: Option<broadcast::Receiver<log_feed::LogLine>> = None;
    let mut live: Option<broadcast::Receiver<Arc<LiveEvent>>> = None;
    let mut _hold: Option<Hold> = None;

    loop {
        // The client's lines are read only while its requests have room.
        let room = queue.as_ref().is_some_and(CommandQueue::has_room);
        let full = queue.as_ref().is_some_and(|q| !q.has_room());
        tokio::select! {
            // Answers before events, so that a busy stream never holds them
            // up; each answer goes out after the events queued ahead of it.
            biased;
            incoming = lines.recv(), if room => {
                let msg = match incoming {
                    Some(Incoming::Msg(msg)) => msg,
                    Some(Incoming::Bad(id, message)) => {
                        out.send(&ServerMsg::Error { id, message }).await?;
                        continue;
                    }
                    Some(Incoming::End(last)) => {
                        if let Some(message) = last {
                            out.send(&ServerMsg::Error { id: None, message }).await?;
                        }
                        queue = None;
                        continue;
                    }
                    None => {
                        queue = None;
                        continue;
                    }
                };
                let Some(queue) = queue.as_ref() else { continue };
                match msg {
                    ClientMsg::Hello { version, read_only: ro, logs: want_logs, live: want_live, hold } => {
                        if greeted {
                            out.send(&ServerMsg::Error { id: None, message: "hello was already said".into() }).await?;
                            continue;
                        }
                        if version != VERSION {
                            let message = format!(
                                "protocol version {version} is not supported: this engine speaks version {VERSION}; closing"
                            );
                            out.send(&ServerMsg::Error { id: None, message }).await?;
                            return Ok(());
                        }
                        greeted = true;
                        read_only = ro;
                        if want_logs {
                            logs = Some(log_feed::subscribe());
                        }
                        live = early_live.take().filter(|_| want_live);
                        if hold {
                            _hold = Some(Hold::new(ctx.holders.clone()));
                        }
                    }
                    ClientMsg::Command { id, .. } | ClientMsg::Overview { id } if !greeted => {
                        let message = format!(
                            "say hello first: {{\"type\":\"hello\",\"version\":{VERSION}}}"
                        );
                        out.send(&ServerMsg::Error { id: Some(id), message }).await?;
                    }
                    ClientMsg::Command { id, .. } if read_only => {
                        out.send(&ServerMsg::Reply { id, ok: false, refusal: Some(READ_ONLY_REFUSAL.into()) }).await?;
                    }
                    ClientMsg::Command { id, command } => {
                        let command = match stamp(command, peer) {
                            Ok(c) => c,
                            Err(why) => {
                                out.send(&ServerMsg::Reply { id, ok: false, refusal: Some(why) }).await?;
                                continue;
                            }
                        };
                        if let Err(refused) = queue.push(Job::Command(id, command)) {
                            out.send(&refused).await?;
                        }
                    }
                    ClientMsg::Overview { id } => {
                        if let Err(refused) = queue.push(Job::Overview(id)) {
                            out.send(&refused).await?;
                        }
                    }
                }
            }
            () = async { queue.as_ref().expect("guarded").room().await }, if full => {}
            answer = answers.recv() => {
                // Every answer is out and the client will ask nothing more.
                let Some(answer) = answer else { return Ok(()) };
                stream.answer(out, ctx, &answer).await?;
            }
            next = stream.next() => match next {
                Next::Event(event) => stream.send(out, &event).await?,
                Next::Lagged => {
                    if !stream.lagged(out, ctx).await? {
                        return Ok(());
                    }
                }
                Next::Closed => return Ok(()),
            },
            // Lossy: a client too slow for them skips to newer ones.
            update = async { live.as_mut().expect("guarded").recv().await }, if live.is_some() => {
                if let Ok(update) = update {
                    out.send(&ServerMsg::Live { live: Box::new((*update).clone()) }).await?;
                }
            }
            line = async { logs.as_mut().expect("guarded").recv().await }, if logs.is_some() => {
                if let Ok(line) = line {
                    out.send(&ServerMsg::Log { level: line.level, target: line.target, message: line.message }).await?;
                }
            }
        }
    }
}

struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Event, EventKind};
    use crate::engine::handle::{Refusal, Request, RunOverview};
    use std::io::{BufRead, BufReader as StdBufReader};
    use tokio::net::UnixStream;

    /// An engine that answers overviews at `seq` 5 and takes every command.
    fn fake_engine() -> EngineHandle {
        let (requests, mut rx) = mpsc::channel(8);
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                match req {
                    Request::Overview(tx) => {
                        let _ = tx.send(RunOverview {
                            pipeline: "fake".into(),
                            seq: 5,
                            ..RunOverview::default()
                        });
                    }
                    Request::Command(_, tx) => {
                        let _ = tx.send(Ok::<(), Refusal>(()));
                    }
                    Request::Snapshot(_) => {}
                }
            }
        });
        EngineHandle {
            requests,
            events: broadcast::channel(64).0,
            link: None,
            live: broadcast::channel(4).0,
            reader: None,
        }
    }

    fn context(handle: EngineHandle, stall: Duration) -> Arc<Context> {
        Arc::new(Context {
            handle,
            live: Arc::default(),
            holders: Arc::new(watch::channel(0).0),
            store: "/run/baton.db".into(),
            stall,
        })
    }

    /// Serves one end of a socket pair; the other end is the client's.
    fn serve_pair(
        ctx: Arc<Context>,
    ) -> (
        std::os::unix::net::UnixStream,
        JoinHandle<Result<(), Ended>>,
    ) {
        let (server, client) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let server = UnixStream::from_std(server).unwrap();
        let conversation = tokio::spawn(async move {
            let (reader, writer) = server.into_split();
            let mut out = Out::new(writer, ctx.stall);
            let peer = Peer {
                uid: crate::engine::account::euid(),
                pid: None,
            };
            converse(reader, &mut out, &ctx, peer).await
        });
        (client, conversation)
    }

    fn next(reader: &mut impl BufRead) -> serde_json::Value {
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_server_speaks_first_and_never_sends_tasks() {
        let handle = fake_engine();
        let (client, conversation) = serve_pair(context(handle, WRITE_STALL));
        let said = tokio::task::spawn_blocking(move || {
            let mut reader = StdBufReader::new(client);
            (next(&mut reader), next(&mut reader))
        })
        .await
        .unwrap();
        assert_eq!(said.0["type"], "hello");
        assert_eq!(said.0["version"], VERSION);
        assert_eq!(said.0["store"], "/run/baton.db");
        assert_eq!(said.1["type"], "overview");
        assert!(said.1.get("id").is_none());
        assert_eq!(said.1["overview"]["seq"], 5);
        assert!(said.1["overview"].get("tasks").is_none(), "{}", said.1);
        conversation.abort();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_client_that_stops_reading_is_dropped_after_the_stall() {
        let handle = fake_engine();
        let events = handle.events.clone();
        let stall = Duration::from_millis(300);
        let (client, conversation) = serve_pair(context(handle, stall));
        let client = tokio::task::spawn_blocking(move || {
            let mut reader = StdBufReader::new(client);
            next(&mut reader);
            next(&mut reader);
            reader
        })
        .await
        .unwrap();
        // Events far past what the socket buffers, and the client reads none.
        let big = serde_json::Value::String("x".repeat(16 * 1024));
        let feeding = tokio::spawn(async move {
            for seq in 6..1000 {
                let _ = events.send(Arc::new(Event {
                    seq,
                    at: jiff::Timestamp::UNIX_EPOCH,
                    task: Some(format!("t{seq}")),
                    kind: EventKind::TaskSubmitted { input: big.clone() },
                }));
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        });
        let ended = tokio::time::timeout(Duration::from_secs(20), conversation)
            .await
            .expect("the stalled client is dropped")
            .unwrap();
        assert!(
            matches!(ended, Err(Ended::Stalled(d)) if d == stall),
            "{ended:?}"
        );
        feeding.abort();
        drop(client);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn commands_sent_before_the_client_stops_writing_are_all_answered() {
        let (client, conversation) = serve_pair(context(fake_engine(), WRITE_STALL));
        let said = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            let mut writer = client.try_clone().unwrap();
            let mut lines = format!("{{\"type\":\"hello\",\"version\":{VERSION}}}\n");
            for id in 1..=3 {
                lines.push_str(&format!(
                    "{{\"type\":\"command\",\"id\":{id},\"command\":{{\"command\":\"pause\",\"by\":{{\"user\":\"ann\"}}}}}}\n"
                ));
            }
            writer.write_all(lines.as_bytes()).unwrap();
            client.shutdown(std::net::Shutdown::Write).unwrap();
            let mut all = Vec::new();
            for line in StdBufReader::new(client).lines() {
                all.push(serde_json::from_str::<serde_json::Value>(&line.unwrap()).unwrap());
            }
            all
        })
        .await
        .unwrap();
        let replies: Vec<_> = said
            .iter()
            .filter(|m| m["type"] == "reply")
            .map(|m| (m["id"].as_u64().unwrap(), m["ok"].as_bool().unwrap()))
            .collect();
        assert_eq!(replies, [(1, true), (2, true), (3, true)], "{said:?}");
        let ended = tokio::time::timeout(Duration::from_secs(5), conversation)
            .await
            .expect("the conversation ends once all is answered")
            .unwrap();
        assert!(ended.is_ok(), "{ended:?}");
    }

    #[test]
    fn the_old_snapshot_request_gets_a_clear_error_with_its_id() {
        match parse(br#"{"type":"snapshot","id":3}"#, "/s/baton.db") {
            Incoming::Bad(Some(3), message) => {
                assert!(message.contains("gone"), "{message}");
                assert!(message.contains("/s/baton.db"), "{message}");
                assert!(message.contains("\"overview\""), "{message}");
            }
            _ => panic!("expected an error for id 3"),
        }
        match parse(br#"{"type":"dance","id":9}"#, "/s/baton.db") {
            Incoming::Bad(Some(9), message) => {
                assert!(message.contains("hello, command and overview"), "{message}")
            }
            _ => panic!("expected an error for id 9"),
        }
        assert!(matches!(
            parse(br#"{"type":"overview","id":1}"#, ""),
            Incoming::Msg(ClientMsg::Overview { id: 1 })
        ));
    }
}
