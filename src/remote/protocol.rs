//! The control socket's messages: JSON, one object per line, tagged by
//! `type`. The server speaks first (`hello`, then a `snapshot`); the client
//! answers with its own `hello` and may then send commands and snapshot
//! requests, each with an `id` that the answer carries back.

use serde::{Deserialize, Serialize};

use crate::engine::event::{Command, Event};
use crate::engine::handle::RunSnapshot;
use crate::engine::live::LiveEvent;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// The longest line either side accepts, newline included.
pub const MAX_LINE: usize = 1024 * 1024;

/// From the engine to a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// First on every connection.
    Hello {
        version: u32,
        pipeline: String,
        state_dir: String,
        /// The engine's process id.
        pid: u32,
    },
    /// The whole run; events after `snapshot.seq` follow. Sent after the
    /// hello, when asked (with the request's `id`), and unasked when the
    /// client fell behind the event stream.
    Snapshot {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        snapshot: Box<RunSnapshot>,
    },
    /// One durable event, in journal order.
    Event { event: Box<Event> },
    /// How a running attempt is getting on (the reply as it streams in,
    /// trace lines); never journaled, sent to clients that asked for it.
    Live { live: Box<LiveEvent> },
    /// The engine's answer to command `id`: done, or refused with the reason.
    Reply {
        id: u64,
        ok: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        refusal: Option<String>,
    },
    /// The client sent something this server cannot take.
    Error {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        message: String,
    },
    /// A line of the engine's log, for clients that asked for them.
    Log {
        level: String,
        target: String,
        message: String,
    },
}

/// From a client to the engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Hello {
        version: u32,
        /// Every command on this connection is refused.
        #[serde(default)]
        read_only: bool,
        /// Send the engine's log lines too.
        #[serde(default)]
        logs: bool,
        /// Send live updates on running attempts too.
        #[serde(default)]
        live: bool,
        /// Keep a `--wait` engine up while this client is connected, even
        /// once every task is final (the dashboard that started it).
        #[serde(default)]
        hold: bool,
    },
    Command {
        id: u64,
        command: Command,
    },
    Snapshot {
        id: u64,
    },
}

/// One line of JSON, newline included.
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    // Our own types always serialize; a failure would be a bug worth an
    // error line rather than a panic in the engine process.
    let mut line = serde_json::to_vec(msg).unwrap_or_else(|e| {
        serde_json::to_vec(&ServerMsg::Error {
            id: None,
            message: format!("cannot encode a message: {e}"),
        })
        .unwrap_or_default()
    });
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Action, Actor};

    #[test]
    fn messages_are_tagged_by_type() {
        let hello = ClientMsg::Hello {
            version: 1,
            read_only: false,
            logs: false,
            live: false,
            hold: false,
        };
        let text = String::from_utf8(encode(&hello)).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"hello\",\"version\":1,\"read_only\":false,\"logs\":false,\"live\":false,\"hold\":false}\n"
        );
        let cmd: ClientMsg = serde_json::from_str(
            r#"{"type":"command","id":7,"command":{"command":"act","task":"t1","action":{"action":"approve"},"by":{"user":"ann"}}}"#,
        )
        .unwrap();
        assert_eq!(
            cmd,
            ClientMsg::Command {
                id: 7,
                command: Command::Act {
                    task: "t1".into(),
                    action: Action::Approve,
                    phase: None,
                    note: None,
                    by: Actor {
                        user: "ann".into(),
                        ssh_client: None
                    },
                },
            }
        );
        // A bare hello is enough.
        let bare: ClientMsg = serde_json::from_str(r#"{"type":"hello","version":1}"#).unwrap();
        assert!(matches!(
            bare,
            ClientMsg::Hello {
                read_only: false,
                ..
            }
        ));
    }

    #[test]
    fn replies_round_trip() {
        let reply = ServerMsg::Reply {
            id: 3,
            ok: false,
            refusal: Some("already decided".into()),
        };
        let back: ServerMsg = serde_json::from_slice(&encode(&reply)).unwrap();
        assert!(
            matches!(back, ServerMsg::Reply { id: 3, ok: false, refusal: Some(ref r) } if r == "already decided"),
            "{back:?}"
        );
    }
}
