//! The client's side of the control socket: connect, exchange hellos, take
//! the overview the engine sends first (small: the run without its tasks),
//! then send commands and read what the engine sends.

use std::path::{Path, PathBuf};

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use super::lines::{Line, read_line};
use super::path::locate;
use super::protocol::{ClientMsg, MAX_SERVER_LINE, ServerMsg, VERSION, encode};
use crate::engine::event::Command;
use crate::engine::handle::{Refusal, RunOverview};

/// How a client introduces itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClientOptions {
    pub read_only: bool,
    pub logs: bool,
    /// Live updates on running attempts, for a dashboard's task detail.
    pub live: bool,
    pub hold: bool,
}

/// Why connecting did not work.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// No socket, or a socket nobody answers (left by an engine that was killed).
    #[error("no engine answers on {0}")]
    NoEngine(PathBuf),
    /// The state folder is another user's: whatever runs on it is theirs.
    #[error("{0}")]
    NotYours(String),
    /// The engine answered but would not talk to us.
    #[error("the engine at {path} refused the connection: {message}")]
    Refused { path: PathBuf, message: String },
    #[error("cannot talk to the engine at {path}: {message}")]
    Broken { path: PathBuf, message: String },
}

/// An open conversation with an engine.
pub struct Connection {
    pub pid: u32,
    pub pipeline: String,
    /// Where the engine keeps the run (its database).
    pub store: String,
    /// The run without its tasks as of the connection; events after its
    /// `seq` follow.
    pub overview: RunOverview,
    incoming: mpsc::Receiver<Result<ServerMsg, String>>,
    writer: OwnedWriteHalf,
    next_id: u64,
}

/// Connects to the engine serving `state_dir`, if one does.
pub async fn connect_dir(
    state_dir: &Path,
    opts: ClientOptions,
) -> Result<Connection, ConnectError> {
    crate::store::private::check_dir_owner(state_dir)
        .map_err(|e| ConnectError::NotYours(e.to_string()))?;
    connect(&locate(state_dir), opts).await
}

pub async fn connect(path: &Path, opts: ClientOptions) -> Result<Connection, ConnectError> {
    let broken = |message: String| ConnectError::Broken {
        path: path.to_path_buf(),
        message,
    };
    let stream = match UnixStream::connect(path).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Err(ConnectError::NoEngine(path.to_path_buf()));
        }
        Err(e) => return Err(broken(e.to_string())),
    };
    let (reader, writer) = stream.into_split();
    let (tx, incoming) = mpsc::channel(1024);
    tokio::spawn(read_server(reader, tx));
    let mut conn = Connection {
        pid: 0,
        pipeline: String::new(),
        store: String::new(),
        overview: RunOverview::default(),
        incoming,
        writer,
        next_id: 1,
    };
    match conn.next().await {
        Some(Ok(ServerMsg::Hello {
            version,
            pid,
            pipeline,
            store,
            ..
        })) if version == VERSION => {
            conn.pid = pid;
            conn.pipeline = pipeline;
            conn.store = store;
        }
        Some(Ok(ServerMsg::Hello { version, .. })) => {
            return Err(broken(format!(
                "it speaks protocol version {version}, this baton speaks {VERSION}; use the same baton for both"
            )));
        }
        Some(Ok(ServerMsg::Error { message, .. })) => {
            return Err(ConnectError::Refused {
                path: path.to_path_buf(),
                message,
            });
        }
        // Closed before a word: the engine is on its way out.
        None => return Err(ConnectError::NoEngine(path.to_path_buf())),
        Some(Ok(other)) => return Err(broken(format!("expected a hello, got {other:?}"))),
        Some(Err(e)) => return Err(broken(e)),
    }
    let hello = ClientMsg::Hello {
        version: VERSION,
        read_only: opts.read_only,
        logs: opts.logs,
        live: opts.live,
        hold: opts.hold,
    };
    conn.send(&hello).await.map_err(|e| broken(e.to_string()))?;
    match conn.next().await {
        Some(Ok(ServerMsg::Overview { overview, .. })) => conn.overview = *overview,
        None => return Err(ConnectError::NoEngine(path.to_path_buf())),
        Some(Ok(other)) => return Err(broken(format!("expected an overview, got {other:?}"))),
        Some(Err(e)) => return Err(broken(e)),
    }
    Ok(conn)
}

/// Reads the server's lines on its own task, so that reading is never cut
/// short mid-line by a `select!`.
async fn read_server(
    reader: tokio::net::unix::OwnedReadHalf,
    out: mpsc::Sender<Result<ServerMsg, String>>,
) {
    let mut reader = BufReader::new(reader);
    loop {
        let item = match read_line(&mut reader, MAX_SERVER_LINE).await {
            Ok(Line::Full(bytes)) => serde_json::from_slice(&bytes)
                .map_err(|e| format!("the engine sent something unreadable: {e}")),
            Ok(Line::End) | Ok(Line::Partial(_)) => return,
            Ok(Line::TooLong) => Err("the engine sent a line too long to take".into()),
            Err(e) => Err(format!("cannot read from the engine: {e}")),
        };
        let stop = item.is_err();
        if out.send(item).await.is_err() || stop {
            return;
        }
    }
}

impl Connection {
    /// The next message; `None` once the engine has closed the connection.
    pub async fn next(&mut self) -> Option<Result<ServerMsg, String>> {
        self.incoming.recv().await
    }

    pub async fn send(&mut self, msg: &ClientMsg) -> std::io::Result<()> {
        self.writer.write_all(&encode(msg)).await
    }

    /// A fresh id for a command or overview request.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// Sends a command and waits for its answer, passing over events.
    pub async fn command(&mut self, command: Command) -> Result<(), Refusal> {
        let id = self.next_id();
        self.send(&ClientMsg::Command { id, command })
            .await
            .map_err(|e| Refusal(format!("cannot reach the engine: {e}")))?;
        loop {
            match self.next().await {
                Some(Ok(ServerMsg::Reply {
                    id: got,
                    ok,
                    refusal,
                })) if got == id => {
                    return if ok {
                        Ok(())
                    } else {
                        Err(Refusal(refusal.unwrap_or_else(|| "refused".into())))
                    };
                }
                Some(Ok(ServerMsg::Error {
                    id: Some(got),
                    message,
                })) if got == id => {
                    return Err(Refusal(message));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Refusal(e)),
                None => {
                    return Err(Refusal(
                        "the engine went away before it answered; check with `baton show TASK`"
                            .into(),
                    ));
                }
            }
        }
    }
}
