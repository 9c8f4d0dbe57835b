//! The engine process's log lines, for attached dashboards' log panes: a
//! `tracing` layer that copies each event into a broadcast channel that the
//! socket server reads. Nobody listening costs one failed send.

use std::fmt::Write as _;
use std::sync::OnceLock;

use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing_subscriber::layer::Context;

/// One log line as sent to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: String,
    pub target: String,
    pub message: String,
}

fn feed() -> &'static broadcast::Sender<LogLine> {
    static FEED: OnceLock<broadcast::Sender<LogLine>> = OnceLock::new();
    FEED.get_or_init(|| broadcast::channel(512).0)
}

/// Log lines from now on.
pub fn subscribe() -> broadcast::Receiver<LogLine> {
    feed().subscribe()
}

/// The layer to add to the engine process's subscriber.
pub struct LogFeedLayer;

struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(
                self.0,
                "{}{value:?}",
                if self.0.is_empty() { "" } else { " " }
            );
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(
                self.0,
                "{}{value}",
                if self.0.is_empty() { "" } else { " " }
            );
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for LogFeedLayer {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if feed().receiver_count() == 0 {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let meta = event.metadata();
        let _ = feed().send(LogLine {
            level: meta.level().to_string(),
            target: meta.target().to_string(),
            message: message.0.trim().to_string(),
        });
    }
}
