//! The loop: one `tokio::select!` over the terminal's input, the engine's
//! events, answers from the engine, and a timer. It redraws only when
//! something changed, at most `max_fps` times a second; an idle dashboard
//! redraws once a second for the clock. Nothing here waits on the engine:
//! commands and snapshots are fetched by spawned tasks that report back.

use std::sync::Arc;

use anyhow::Context;
use crossterm::event::EventStream;
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::engine::event::{Actor, Command, Event};
use crate::engine::handle::{EngineHandle, Link, Refusal, RunSnapshot};

use super::color::ColorSupport;
use super::keymap::Keymap;
use super::pacer::Pacer;
use super::terminal::TerminalGuard;
use super::ui::{Effect, Ui};
use super::view_model::{Applied, RunView};
use super::{Exit, TuiOptions, theme_file};

/// Answers from spawned tasks.
enum Reply {
    Sent {
        label: String,
        result: Result<(), Refusal>,
    },
    Snapshot(Option<Box<RunSnapshot>>),
}

/// A resync in progress: events that arrive meanwhile wait for the snapshot.
struct Resync {
    buffered: Vec<Arc<Event>>,
    /// Events were lost again while waiting; take another snapshot after.
    again: bool,
}

struct Engine {
    handle: EngineHandle,
    replies: mpsc::UnboundedSender<Reply>,
    resync: Option<Resync>,
}

impl Engine {
    fn send(&self, command: Command, label: String) {
        let (handle, replies) = (self.handle.clone(), self.replies.clone());
        tokio::spawn(async move {
            let result = handle.send(command).await;
            let _ = replies.send(Reply::Sent { label, result });
        });
    }

    fn request_snapshot(&mut self) {
        match &mut self.resync {
            Some(r) => {
                r.again = true;
                r.buffered.clear();
            }
            None => {
                self.resync = Some(Resync {
                    buffered: Vec::new(),
                    again: false,
                });
                let (handle, replies) = (self.handle.clone(), self.replies.clone());
                tokio::spawn(async move {
                    let _ = replies.send(Reply::Snapshot(handle.snapshot().await.map(Box::new)));
                });
            }
        }
    }

    /// Folds an engine event in, or holds it while a snapshot is on its way.
    fn on_event(&mut self, ui: &mut Ui, ev: Arc<Event>) -> bool {
        if let Some(r) = &mut self.resync {
            r.buffered.push(ev);
            return false;
        }
        match ui.view.apply(&ev) {
            Applied::Changed => true,
            Applied::Stale => false,
            Applied::OutOfSync(why) => {
                tracing::warn!(
                    "dashboard out of step with the engine ({why}); taking a fresh snapshot"
                );
                self.request_snapshot();
                false
            }
        }
    }

    fn on_snapshot(&mut self, ui: &mut Ui, snapshot: RunSnapshot) {
        let Some(r) = self.resync.take() else { return };
        ui.resync(snapshot);
        for ev in r.buffered {
            self.on_event(ui, ev);
        }
        if r.again {
            self.request_snapshot();
        }
    }
}

/// The connection to an engine in another process changed: say so, and
/// after a reconnect (or a restarted stream) take the run afresh.
fn on_link(ui: &mut Ui, engine: &mut Engine, link: Link) {
    match link {
        Link::Lost { reason } => {
            ui.state.error(format!(
                "the engine went away ({reason}); reconnecting… (q quits)"
            ));
            ui.state.link.lost = Some(reason);
        }
        Link::Connected { pid, .. } => {
            if ui.state.link.lost.take().is_some() {
                ui.state
                    .info(format!("reconnected to the engine (pid {pid})"));
            }
            engine.request_snapshot();
        }
    }
}

/// Keys from `keys_file`, else from the config folder's `keys.toml` when there is one.
fn load_keymap(opts: &TuiOptions) -> (Keymap, Option<String>) {
    let path = opts.keys_file.clone().or_else(|| {
        theme_file::config_dir()
            .map(|d| d.join("keys.toml"))
            .filter(|p| p.is_file())
    });
    match path {
        Some(p) => {
            let (map, warning) = Keymap::load(&p);
            (
                map,
                warning.map(|w| format!("{w} (using the default keys)")),
            )
        }
        None => (Keymap::default(), None),
    }
}

/// Runs the dashboard until the operator quits. The engine keeps running;
/// shutting it down is the caller's call.
pub async fn run(handle: EngineHandle, opts: TuiOptions) -> anyhow::Result<Exit> {
    // Subscribe before the snapshot so that no event falls between them.
    let mut events = handle.subscribe();
    let mut live = handle.subscribe_live();
    let snapshot = handle.snapshot().await.context("the engine has stopped")?;
    let support = ColorSupport::detect(opts.no_color);
    let (themes, theme_warnings) = theme_file::themes(opts.theme.as_deref(), support);
    let (keymap, key_warning) = load_keymap(&opts);
    let mut ui = Ui::new(
        RunView::from_snapshot(snapshot),
        keymap,
        themes,
        Actor::current(),
    );
    let warnings: Vec<String> = theme_warnings
        .iter()
        .map(|w| format!("{w} (using the default theme)"))
        .chain(key_warning)
        .collect();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Some(first) = warnings.first() {
        ui.state.error(first.clone());
    }
    let mut link = handle.link();
    ui.state.link.remote = link.is_some();
    ui.state.link.read_only = opts.read_only;
    ui.state.link.quit_stops_engine = opts.quit_stops_engine;

    let mut guard = TerminalGuard::new().context("cannot set up the terminal")?;
    let (replies, mut replies_rx) = mpsc::unbounded_channel();
    let mut engine = Engine {
        handle,
        replies,
        resync: None,
    };
    let tz = TimeZone::system();
    let mut pacer = Pacer::new(opts.max_fps);
    let mut input = EventStream::new();
    let mut engine_open = true;

    loop {
        if guard.reclaim_after_panic()? {
            ui.state
                .error("a panic elsewhere in baton; its message is on the terminal after you quit");
            pacer.mark();
        }
        if pacer.should_draw(Instant::now()) {
            let now = Timestamp::now();
            guard.terminal.draw(|f| ui.draw(f, now, &tz))?;
            pacer.drew(Instant::now());
        }
        let wake = pacer.wake_at(Instant::now());
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    pacer.mark();
                    match ui.on_terminal(&ev) {
                        Effect::None => {}
                        Effect::Quit => return Ok(Exit::Quit),
                        Effect::Detach => return Ok(Exit::Detach),
                        Effect::Send { command, label } => engine.send(command, label),
                    }
                }
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                // The terminal is gone (hung-up SSH session): nobody to show anything to.
                None => return Ok(Exit::Quit),
            },
            msg = events.recv(), if engine_open => match msg {
                Ok(ev) => {
                    if engine.on_event(&mut ui, ev) {
                        pacer.mark();
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    tracing::debug!("dashboard missed {missed} events; resyncing");
                    engine.request_snapshot();
                }
                Err(RecvError::Closed) => {
                    engine_open = false;
                    ui.state.error("the engine has stopped; q quits");
                    pacer.mark();
                }
            },
            msg = live.recv(), if engine_open => match msg {
                Ok(ev) => {
                    // Only the task on screen needs drawing again.
                    if ui.view.apply_live(&ev) && ui.state.selected.as_deref() == Some(ev.task.as_str()) {
                        pacer.mark();
                    }
                }
                // Lossy by design: the next update carries the whole reply so far.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => {}
            },
            Some(reply) = replies_rx.recv() => {
                pacer.mark();
                match reply {
                    Reply::Sent { label, result: Ok(()) } => ui.state.info(format!("{label}: done")),
                    Reply::Sent { label, result: Err(refusal) } => {
                        ui.state.error(format!("{label} refused: {refusal}"));
                    }
                    Reply::Snapshot(Some(s)) => engine.on_snapshot(&mut ui, *s),
                    Reply::Snapshot(None) => {
                        engine.resync = None;
                        ui.state.error("the engine has stopped; q quits");
                    }
                }
            },
            changed = async { link.as_mut().expect("guarded").changed().await }, if link.is_some() => {
                pacer.mark();
                if changed.is_err() {
                    link = None;
                    continue;
                }
                let now = link.as_mut().expect("guarded").borrow_and_update().clone();
                on_link(&mut ui, &mut engine, now);
            },
            _ = sleep_until(wake) => pacer.woke(Instant::now()),
        }
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
