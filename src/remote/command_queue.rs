//! One connection's requests to the engine, carried out one after another
//! in the order the client sent them, so that `pause` then `approve` take
//! effect in that order. The queue is bounded: when it is full the
//! connection stops reading the client's lines until there is room. Each
//! answer goes back, in the same order, through a bounded channel that the
//! connection writes out. A command that was queued is carried out even if
//! the client goes away meanwhile, as one sent on its own would be.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use super::live_cache::LiveCache;
use super::protocol::ServerMsg;
use crate::engine::event::Command;
use crate::engine::handle::{EngineHandle, Refusal, RunOverview};

/// Requests one connection may have waiting at once.
pub const QUEUED: usize = 16;

/// What a client asked the engine for.
#[derive(Debug)]
pub enum Job {
    Command(u64, Command),
    Overview(u64),
}

/// The sending side, held by the connection; dropping it lets the worker
/// finish what is queued and end, which closes the answers.
pub struct CommandQueue {
    jobs: mpsc::Sender<Job>,
}

impl CommandQueue {
    /// Starts the connection's worker; its answers come out of the receiver.
    pub fn start(
        handle: EngineHandle,
        live: Arc<LiveCache>,
    ) -> (CommandQueue, mpsc::Receiver<ServerMsg>) {
        let (jobs, rx) = mpsc::channel(QUEUED);
        let (done, answers) = mpsc::channel(QUEUED);
        tokio::spawn(work(handle, live, rx, done));
        (CommandQueue { jobs }, answers)
    }

    /// Whether a request can be queued now without waiting.
    pub fn has_room(&self) -> bool {
        self.jobs.capacity() > 0
    }

    /// Resolves once a request can be queued.
    pub async fn room(&self) {
        // The permit goes back at once; only the connection queues, so the
        // room stays until it does.
        let _ = self.jobs.reserve().await;
    }

    /// Queues a request; when there is no room (the caller checks
    /// `has_room` first), the answer to give the client instead.
    pub fn push(&self, job: Job) -> Result<(), ServerMsg> {
        match self.jobs.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(job) | TrySendError::Closed(job)) => {
                let id = match job {
                    Job::Command(id, _) | Job::Overview(id) => id,
                };
                Err(ServerMsg::Error {
                    id: Some(id),
                    message: format!(
                        "more than {QUEUED} requests are waiting on this connection; wait for their answers"
                    ),
                })
            }
        }
    }
}

async fn work(
    handle: EngineHandle,
    live: Arc<LiveCache>,
    mut jobs: mpsc::Receiver<Job>,
    done: mpsc::Sender<ServerMsg>,
) {
    while let Some(job) = jobs.recv().await {
        let answer = match job {
            Job::Command(id, command) => reply(id, handle.send(command).await),
            // Nobody left to read it.
            Job::Overview(_) if done.is_closed() => continue,
            Job::Overview(id) => match overview(&handle, &live).await {
                Some(overview) => ServerMsg::Overview {
                    id: Some(id),
                    overview: Box::new(overview),
                },
                None => ServerMsg::Error {
                    id: Some(id),
                    message: "the engine is stopping".into(),
                },
            },
        };
        // The connection may be gone; the commands queued still go through.
        let _ = done.send(answer).await;
    }
}

/// The run now, with what running attempts have shown so far.
pub async fn overview(handle: &EngineHandle, live: &LiveCache) -> Option<RunOverview> {
    let mut overview = handle.overview().await?;
    overview.live = live.current();
    Some(overview)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::Actor;
    use crate::engine::handle::Request;
    use std::time::Duration;
    use tokio::sync::broadcast;

    /// An engine that takes a while over each command, longer for the
    /// early ones, and records the order they reached it in.
    fn slow_engine() -> (EngineHandle, mpsc::UnboundedReceiver<u64>) {
        let (requests, mut rx) = mpsc::channel(8);
        let (seen_tx, seen) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Some(req) = rx.recv().await {
                match req {
                    Request::Command(Command::RaiseBudget { tokens, .. }, tx) => {
                        let n = tokens.unwrap_or(0);
                        let seen_tx = seen_tx.clone();
                        // Answered on its own: an engine that served two
                        // commands at once would finish the later one first.
                        tokio::spawn(async move {
                            tokio::time::sleep(Duration::from_millis(20 - n.min(20))).await;
                            let _ = seen_tx.send(n);
                            let _ = tx.send(Ok(()));
                        });
                    }
                    Request::Command(_, tx) => {
                        let _ = tx.send(Err(Refusal("not this one".into())));
                    }
                    Request::Overview(tx) => {
                        let _ = tx.send(RunOverview {
                            seq: 7,
                            ..RunOverview::default()
                        });
                    }
                    Request::Snapshot(_) => {}
                }
            }
        });
        let handle = EngineHandle {
            requests,
            events: broadcast::channel(4).0,
            link: None,
            live: broadcast::channel(4).0,
            reader: None,
        };
        (handle, seen)
    }

    fn raise(n: u64) -> Command {
        Command::RaiseBudget {
            task: None,
            usd: None,
            tokens: Some(n),
            by: Actor::engine(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_reach_the_engine_and_answer_in_the_order_sent() {
        let (handle, mut seen) = slow_engine();
        let (queue, mut answers) = CommandQueue::start(handle, Arc::default());
        for n in 1..=10 {
            assert!(queue.has_room());
            queue.push(Job::Command(n, raise(n))).unwrap();
        }
        queue.push(Job::Overview(11)).unwrap();
        for n in 1..=10 {
            assert_eq!(seen.recv().await, Some(n), "the engine got them in order");
            match answers.recv().await {
                Some(ServerMsg::Reply { id, ok: true, .. }) => assert_eq!(id, n),
                other => panic!("expected the reply to {n}, got {other:?}"),
            }
        }
        match answers.recv().await {
            Some(ServerMsg::Overview {
                id: Some(11),
                overview,
            }) => assert_eq!(overview.seq, 7),
            other => panic!("expected the overview, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_full_queue_says_so_and_makes_room_as_answers_are_taken() {
        let (handle, _seen) = slow_engine();
        let (queue, mut answers) = CommandQueue::start(handle, Arc::default());
        // The answers channel holds QUEUED, the worker one, the queue QUEUED more.
        let mut pushed = 0;
        loop {
            if !queue.has_room() {
                match tokio::time::timeout(Duration::from_millis(200), queue.room()).await {
                    Ok(()) => continue,
                    Err(_) => break,
                }
            }
            queue.push(Job::Command(pushed, raise(20))).unwrap();
            pushed += 1;
            assert!(pushed <= 2 * QUEUED as u64 + 1, "the queue is bounded");
        }
        assert_eq!(pushed, 2 * QUEUED as u64 + 1);
        assert!(!queue.has_room());
        let refused = queue.push(Job::Overview(999)).unwrap_err();
        assert!(
            matches!(refused, ServerMsg::Error { id: Some(999), ref message } if message.contains("waiting")),
            "{refused:?}"
        );
        assert!(matches!(
            answers.recv().await,
            Some(ServerMsg::Reply { id: 0, .. })
        ));
        tokio::time::timeout(Duration::from_secs(5), queue.room())
            .await
            .expect("room once an answer is taken");
    }
}
