//! The control socket's messages: JSON, one object per line, tagged by
//! `type`. Version 2.
//!
//! The server speaks first: `hello` (with `store`, where the run is kept),
//! then an `overview` of the run: its pipeline, phases, pause, budgets,
//! what running attempts show, and `seq`, up to which everything is
//! committed. No message carries the run's tasks: a client reads rows,
//! totals and the review queue from the store, and follows the `event`s
//! after the overview's `seq`. The client answers with its own `hello` and
//! may then send commands and overview requests, each with an `id` that the
//! answer carries back. Commands from one connection take effect in the
//! order sent, and their replies come back in that order, each after the
//! command's events; an overview asked for comes after the events up to
//! its `seq`.
//!
//! A client too slow for the event stream is sent an `overview` without an
//! `id`: it missed events, and re-reads what it shows from the store.

use serde::{Deserialize, Serialize};

use crate::engine::event::{Command, Event};
use crate::engine::handle::RunOverview;
use crate::engine::live::LiveEvent;

/// The protocol version this build speaks. 3: events of reviewer loops
/// (`loop_round`), the step cache (`phase_cached`) and fan-out (`item_*`),
/// which a version 2 client could not read.
pub const VERSION: u32 = 3;

/// The longest line the server accepts from a client, newline included.
pub const MAX_LINE: usize = 1024 * 1024;

/// The longest line a client accepts from the server: an overview carries
/// what running attempts have shown (bounded per attempt), so it may be
/// longer than a client's line, though never by the size of the run.
pub const MAX_SERVER_LINE: usize = 16 * MAX_LINE;

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
        /// Where the run is kept (the state folder's database), for
        /// clients that read rows, totals and the review queue. (Absent
        /// from older engines' hellos, which a client refuses by version.)
        #[serde(default)]
        store: String,
    },
    /// The run without its tasks; events after `overview.seq` follow. Sent
    /// after the hello, when asked (with the request's `id`), and unasked
    /// when the client fell behind the event stream.
    Overview {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        overview: Box<RunOverview>,
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
    /// Asks for an overview of the run now.
    Overview {
        id: u64,
    },
}

/// The message types a client may send, for error messages.
pub const CLIENT_TYPES: &str = "hello, command and overview";

/// What a client that asks for a whole snapshot (version 1) is told.
pub fn snapshot_is_gone(store: &str) -> String {
    format!(
        "the \"snapshot\" request is gone since protocol version 2: no message carries the whole run; \
         read rows, totals and the review queue from the store ({store}), \
         or ask for {{\"type\":\"overview\",\"id\":N}}"
    )
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

/// An `event` message, encoded from a shared event without copying it.
pub fn encode_event(event: &Event) -> Vec<u8> {
    #[derive(Serialize)]
    #[serde(tag = "type", rename = "event")]
    struct EventMsg<'a> {
        event: &'a Event,
    }
    encode(&EventMsg { event })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Action, Actor};

    #[test]
    fn messages_are_tagged_by_type() {
        let hello = ClientMsg::Hello {
            version: VERSION,
            read_only: false,
            logs: false,
            live: false,
            hold: false,
        };
        let text = String::from_utf8(encode(&hello)).unwrap();
        assert_eq!(
            text,
            "{\"type\":\"hello\",\"version\":3,\"read_only\":false,\"logs\":false,\"live\":false,\"hold\":false}\n"
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
        let bare: ClientMsg = serde_json::from_str(r#"{"type":"hello","version":2}"#).unwrap();
        assert!(matches!(
            bare,
            ClientMsg::Hello {
                read_only: false,
                ..
            }
        ));
        let ask: ClientMsg = serde_json::from_str(r#"{"type":"overview","id":4}"#).unwrap();
        assert_eq!(ask, ClientMsg::Overview { id: 4 });
    }

    #[test]
    fn the_old_snapshot_request_is_not_a_message() {
        assert!(serde_json::from_str::<ClientMsg>(r#"{"type":"snapshot","id":2}"#).is_err());
        let said = snapshot_is_gone("/s/baton.db");
        assert!(
            said.contains("/s/baton.db") && said.contains("overview"),
            "{said}"
        );
    }

    #[test]
    fn an_overview_carries_no_tasks() {
        let msg = ServerMsg::Overview {
            id: None,
            overview: Box::new(RunOverview {
                pipeline: "p".into(),
                phases: vec!["draft".into()],
                seq: 12,
                ..RunOverview::default()
            }),
        };
        let value: serde_json::Value = serde_json::from_slice(&encode(&msg)).unwrap();
        assert_eq!(value["type"], "overview");
        assert!(value.get("id").is_none(), "{value}");
        assert_eq!(value["overview"]["seq"], 12);
        assert!(value["overview"].get("tasks").is_none(), "{value}");
        let back: ServerMsg = serde_json::from_value(value).unwrap();
        assert!(
            matches!(back, ServerMsg::Overview { id: None, ref overview } if overview.seq == 12),
            "{back:?}"
        );
    }

    #[test]
    fn a_shared_event_encodes_as_an_event_message() {
        let event = Event {
            seq: 9,
            at: jiff::Timestamp::UNIX_EPOCH,
            task: None,
            kind: crate::engine::event::EventKind::RunPaused {
                by: Actor::engine(),
            },
        };
        let owned = encode(&ServerMsg::Event {
            event: Box::new(event.clone()),
        });
        assert_eq!(encode_event(&event), owned);
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
