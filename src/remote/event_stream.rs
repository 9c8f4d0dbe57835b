//! A connection's view of the engine's event broadcast: which events it
//! has passed on, what to do when it falls behind, and how an answer is
//! placed in the stream.
//!
//! The engine broadcasts a command's events before it answers, and an
//! overview's `seq` is committed, and its events broadcast, before the
//! overview is answered. So before an answer goes out, the events queued
//! ahead of it go out first (for an overview, those up to its `seq`): the
//! client sees a command's events before its reply, and the events after an
//! overview's `seq` after the overview. Answers never wait for the stream to
//! go quiet.

use std::sync::Arc;

use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::command_queue::overview;
use super::conversation::{Context, Ended, Out};
use super::protocol::{ServerMsg, encode_event};
use crate::engine::event::Event;

pub struct EventStream {
    events: broadcast::Receiver<Arc<Event>>,
    /// Events up to here were sent, or covered by an overview sent.
    covered: u64,
    /// An event taken from the broadcast that goes out next.
    held: Option<Arc<Event>>,
}

/// What the broadcast gave.
pub enum Next {
    Event(Arc<Event>),
    /// This connection fell behind and missed events.
    Lagged,
    /// The engine is gone.
    Closed,
}

impl EventStream {
    /// `events` subscribed before the overview at `covered` was taken.
    pub fn new(events: broadcast::Receiver<Arc<Event>>, covered: u64) -> EventStream {
        EventStream {
            events,
            covered,
            held: None,
        }
    }

    /// The next event; cancel-safe.
    pub async fn next(&mut self) -> Next {
        if let Some(event) = self.held.take() {
            return Next::Event(event);
        }
        match self.events.recv().await {
            Ok(event) => Next::Event(event),
            Err(RecvError::Lagged(_)) => Next::Lagged,
            Err(RecvError::Closed) => Next::Closed,
        }
    }

    /// Sends `event` unless an overview already covered it.
    pub async fn send(&mut self, out: &mut Out, event: &Event) -> Result<(), Ended> {
        if event.seq > self.covered {
            self.covered = event.seq;
            out.write(&encode_event(event)).await?;
        }
        Ok(())
    }

    /// Too slow for the stream: the client goes on from an overview of now
    /// (no `id`), and re-reads what it shows from the store. `false` when
    /// the engine is stopping.
    pub async fn lagged(&mut self, out: &mut Out, ctx: &Context) -> Result<bool, Ended> {
        let Some(now) = overview(&ctx.handle, &ctx.live).await else {
            return Ok(false);
        };
        self.covered = self.covered.max(now.seq);
        self.held = None;
        out.send(&ServerMsg::Overview {
            id: None,
            overview: Box::new(now),
        })
        .await?;
        Ok(true)
    }

    /// Sends `answer` after the events queued ahead of it.
    pub async fn answer(
        &mut self,
        out: &mut Out,
        ctx: &Context,
        answer: &ServerMsg,
    ) -> Result<(), Ended> {
        let upto = match answer {
            ServerMsg::Overview { overview, .. } => overview.seq,
            _ => u64::MAX,
        };
        // Only what is queued now: events keep coming meanwhile.
        let queued = self.events.len() + usize::from(self.held.is_some());
        for _ in 0..queued {
            let event = match self.held.take() {
                Some(event) => event,
                None => match self.events.try_recv() {
                    Ok(event) => event,
                    Err(TryRecvError::Lagged(_)) => {
                        // The overview sent covers what the answer follows.
                        self.lagged(out, ctx).await?;
                        break;
                    }
                    Err(TryRecvError::Empty | TryRecvError::Closed) => break,
                },
            };
            if event.seq > upto {
                self.held = Some(event);
                break;
            }
            self.send(out, &event).await?;
        }
        out.send(answer).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Actor, EventKind};
    use crate::engine::handle::{EngineHandle, RunOverview};
    use std::io::{BufRead, BufReader};
    use std::time::Duration;
    use tokio::sync::{mpsc, watch};

    fn event(seq: u64) -> Arc<Event> {
        Arc::new(Event {
            seq,
            at: jiff::Timestamp::UNIX_EPOCH,
            task: None,
            kind: EventKind::RunPaused {
                by: Actor::engine(),
            },
        })
    }

    /// A context whose engine is never asked anything here.
    fn context() -> Context {
        Context {
            handle: EngineHandle {
                requests: mpsc::channel(1).0,
                events: broadcast::channel(1).0,
                link: None,
                live: broadcast::channel(1).0,
                reader: None,
            },
            live: Arc::default(),
            holders: Arc::new(watch::channel(0).0),
            store: String::new(),
            stall: Duration::from_secs(5),
        }
    }

    /// What was written: events by seq, answers by their type.
    fn written(client: std::os::unix::net::UnixStream) -> Vec<String> {
        BufReader::new(client)
            .lines()
            .map(|l| {
                let m: serde_json::Value = serde_json::from_str(&l.unwrap()).unwrap();
                match m["type"].as_str().unwrap() {
                    "event" => m["event"]["seq"].to_string(),
                    other => format!("{other}@{}", m["overview"]["seq"]),
                }
            })
            .collect()
    }

    #[tokio::test]
    async fn an_answer_follows_the_events_queued_ahead_of_it_and_an_overview_its_seq() {
        let (server, client) = std::os::unix::net::UnixStream::pair().unwrap();
        server.set_nonblocking(true).unwrap();
        let (_, writer) = tokio::net::UnixStream::from_std(server)
            .unwrap()
            .into_split();
        let mut out = Out::new(writer, Duration::from_secs(5));
        let ctx = context();
        let (tx, rx) = broadcast::channel(64);
        let mut stream = EventStream::new(rx, 5);
        for seq in 3..=10 {
            tx.send(event(seq)).unwrap();
        }
        // Events the first overview covered are not sent again.
        let reply = ServerMsg::Reply {
            id: 1,
            ok: true,
            refusal: None,
        };
        stream.answer(&mut out, &ctx, &reply).await.unwrap();
        for seq in 11..=20 {
            tx.send(event(seq)).unwrap();
        }
        let overview = ServerMsg::Overview {
            id: Some(2),
            overview: Box::new(RunOverview {
                seq: 14,
                ..RunOverview::default()
            }),
        };
        stream.answer(&mut out, &ctx, &overview).await.unwrap();
        // The rest of the stream goes on after it, the held event first.
        for _ in 15..=20 {
            match stream.next().await {
                Next::Event(e) => stream.send(&mut out, &e).await.unwrap(),
                _ => panic!("expected an event"),
            }
        }
        drop(out);
        let said = tokio::task::spawn_blocking(move || written(client))
            .await
            .unwrap();
        let want: Vec<String> = (6..=10)
            .map(|s| s.to_string())
            .chain(["reply@null".to_string()])
            .chain((11..=14).map(|s| s.to_string()))
            .chain(["overview@14".to_string()])
            .chain((15..=20).map(|s| s.to_string()))
            .collect();
        assert_eq!(said, want);
    }
}
