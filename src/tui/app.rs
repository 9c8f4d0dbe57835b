//! The loop: one `tokio::select!` over the terminal's input, the engine's
//! events, answers from spawned tasks, and a timer. It redraws only when
//! something changed, at most `max_fps` times a second; an idle dashboard
//! redraws once a second for the clock. Nothing here waits on the engine or
//! the disk: commands and reads run on spawned tasks that report back.
//!
//! What is on screen is read from the run's store ([`fetch`]): the table's
//! window, the totals, a page of the review queue and the selected task.
//! Engine events only say that the run changed; a fresh page is read when
//! the screen asks for something new at once, and after changes at most
//! every [`REFRESH_EVERY`]. A lagging event stream costs nothing but a read.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use crossterm::event::EventStream;
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use crate::engine::event::{Actor, Command};
use crate::engine::handle::{EngineHandle, Link, Refusal, RunOverview};
use crate::store::{RunReader, StoreError};

use super::color::ColorSupport;
use super::fetch::{self, Page, Want};
use super::keymap::Keymap;
use super::pacer::Pacer;
use super::terminal::TerminalGuard;
use super::ui::{Effect, Ui};
use super::view_model::{Applied, RunView};
use super::{Exit, TuiOptions, theme_file};

/// How often the cost at the finish is projected again.
const PROJECT_EVERY: Duration = Duration::from_secs(15);

/// Most tasks one command line acts on.
const MAX_BULK: u64 = 100_000;

/// Events read back for the log pane when the dashboard opens.
const RECENT_EVENTS: u64 = 500;

/// Most often the page is read again because the run changed.
pub const REFRESH_EVERY: Duration = Duration::from_millis(100);

/// Answers from spawned tasks.
enum Reply {
    Sent {
        label: String,
        result: Result<(), Refusal>,
    },
    Page(Box<Result<Page, StoreError>>),
    Overview(Option<RunOverview>),
    /// The tasks a command line's filter keeps.
    Matched(super::bulk::CommandLine, Result<Vec<String>, StoreError>),
    /// The run's figures, for the figures view.
    Figures(Result<Box<crate::report::stats::StatsReport>, StoreError>),
    /// What the run is projected to have cost at its finish: p50, p95.
    Projection(Option<(f64, f64)>),
    /// What a run of commands came to.
    SentAll {
        label: String,
        done: usize,
        refused: Vec<String>,
    },
}

/// Where the dashboard's run comes from: the store to read, and the engine
/// to command (none when looking at a stopped run).
struct Source {
    handle: Option<EngineHandle>,
    reader: Arc<dyn RunReader>,
    replies: mpsc::UnboundedSender<Reply>,
    /// A read is on its way.
    reading: bool,
    /// The run changed since the last read started.
    stale: bool,
    /// What the last read asked for, and when it started.
    asked: Option<Want>,
    last_read: Option<Instant>,
}

impl Source {
    fn new(
        handle: Option<EngineHandle>,
        reader: Arc<dyn RunReader>,
        replies: mpsc::UnboundedSender<Reply>,
    ) -> Source {
        Source {
            handle,
            reader,
            replies,
            reading: false,
            stale: true,
            asked: None,
            last_read: None,
        }
    }

    fn send(&self, command: Command, label: String) {
        let Some(handle) = self.handle.clone() else {
            let _ = self.replies.send(Reply::Sent {
                label,
                result: Err(Refusal(READ_ONLY_STOPPED.into())),
            });
            return;
        };
        let replies = self.replies.clone();
        tokio::spawn(async move {
            let result = handle.send(command).await;
            let _ = replies.send(Reply::Sent { label, result });
        });
    }

    /// Sends each command in order, one after another, and reports once.
    fn send_all(&self, all: Vec<(Command, String)>) {
        let Some(handle) = self.handle.clone() else {
            let _ = self.replies.send(Reply::Sent {
                label: "bulk".into(),
                result: Err(Refusal(READ_ONLY_STOPPED.into())),
            });
            return;
        };
        let replies = self.replies.clone();
        tokio::spawn(async move {
            let label = all
                .first()
                .map(|(_, l)| l.split(' ').next().unwrap_or("").to_string())
                .unwrap_or_default();
            let (mut done, mut refused) = (0, Vec::new());
            for (command, what) in all {
                match handle.send(command).await {
                    Ok(()) => done += 1,
                    Err(r) => refused.push(format!("{what}: {r}")),
                }
            }
            let _ = replies.send(Reply::SentAll {
                label,
                done,
                refused,
            });
        });
    }

    /// Reads the run's figures (on a blocking thread: they read the tasks
    /// in flight).
    fn figures(&self, state_dir: String, budget_usd: Option<f64>) {
        self.read_report(state_dir, budget_usd, |report| {
            Reply::Figures(report.map(Box::new))
        });
    }

    /// Projects the cost at the finish, for the header beside the budget.
    fn projection(&self, state_dir: String, budget_usd: Option<f64>) {
        self.read_report(state_dir, budget_usd, |report| {
            Reply::Projection(
                report
                    .ok()
                    .map(|r| (r.spend.p50_total_usd, r.spend.p95_total_usd)),
            )
        });
    }

    /// Reads the run's stats report on a blocking thread (it reads the
    /// tasks in flight) and replies with what `reply` makes of it.
    fn read_report(
        &self,
        state_dir: String,
        budget_usd: Option<f64>,
        reply: impl FnOnce(Result<crate::report::stats::StatsReport, StoreError>) -> Reply
        + Send
        + 'static,
    ) {
        let (reader, replies) = (self.reader.clone(), self.replies.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            let report = runtime.block_on(crate::report::stats::from_reader(
                reader.as_ref(),
                &state_dir,
                budget_usd,
            ));
            let _ = replies.send(reply(report));
        });
    }

    /// Carries out what a key (or a key that waited for its task) asks of
    /// the engine or the store; `Some` when the dashboard is to end.
    fn carry_out(&self, effect: Effect, view: &RunView) -> Option<Exit> {
        match effect {
            Effect::None => {}
            Effect::Quit => return Some(Exit::Quit),
            Effect::Detach => return Some(Exit::Detach),
            Effect::Send { command, label } => self.send(command, label),
            Effect::SendAll(all) => self.send_all(all),
            Effect::Match(cmd) => self.find(cmd),
            Effect::Figures => self.figures(view.state_dir.clone(), view.budget.run_limits().usd),
        }
        None
    }

    /// Asks the store which tasks a command line's filter keeps.
    fn find(&self, cmd: super::bulk::CommandLine) {
        let (reader, replies) = (self.reader.clone(), self.replies.clone());
        tokio::spawn(async move {
            let query = crate::store::ListQuery {
                filter: Some(cmd.filter.clone()),
                limit: Some(MAX_BULK),
                ..Default::default()
            };
            let found = reader
                .list(&query)
                .await
                .map(|rows| rows.into_iter().map(|r| r.id).collect());
            let _ = replies.send(Reply::Matched(cmd, found));
        });
    }

    fn request_overview(&self) {
        let Some(handle) = self.handle.clone() else {
            return;
        };
        let replies = self.replies.clone();
        tokio::spawn(async move {
            let _ = replies.send(Reply::Overview(handle.overview().await));
        });
    }

    /// When the next read is due: now if the screen wants something new,
    /// soon after a change, never while one is on its way.
    fn read_due(&self, want: &Want, now: Instant) -> Option<Instant> {
        if self.reading {
            return None;
        }
        if self.asked.as_ref() != Some(want) {
            return Some(now);
        }
        if !self.stale {
            return None;
        }
        Some(self.last_read.map_or(now, |at| at + REFRESH_EVERY))
    }

    fn read(&mut self, want: Want, now: Instant) {
        self.reading = true;
        self.stale = false;
        self.asked = Some(want.clone());
        self.last_read = Some(now);
        let (reader, replies) = (self.reader.clone(), self.replies.clone());
        tokio::spawn(async move {
            let _ = replies.send(Reply::Page(Box::new(
                fetch::fetch_off_thread(reader, want).await,
            )));
        });
    }
}

/// What commands get when the dashboard looks at a run no engine serves.
pub const READ_ONLY_STOPPED: &str = "no engine is running on this folder: this is a look at the stored run (start it with `baton run` to act)";

/// The connection to an engine in another process changed: say so, and
/// after a reconnect (or a restarted stream) read the run afresh.
fn on_link(ui: &mut Ui, source: &mut Source, link: Link) {
    match link {
        Link::Lost { reason } => {
            if ui.view.finished() {
                // Every task is final: the engine ended because the run did.
                let status = ui.view.exit_status();
                ui.state.info(format!(
                    "the run finished: {} (exit {status}); the engine has ended. q quits",
                    crate::engine::exit_status::meaning(status)
                ));
            } else {
                ui.state.error(format!(
                    "the engine went away ({reason}); reconnecting… (q quits)"
                ));
            }
            ui.state.link.lost = Some(reason);
        }
        Link::Connected { pid, .. } => {
            if ui.state.link.lost.take().is_some() {
                ui.state
                    .info(format!("reconnected to the engine (pid {pid})"));
            }
            source.request_overview();
            source.stale = true;
        }
    }
}

/// Keys from `keys_file`, else from the config folder's `keys.toml` when
/// there is one; with a line for every problem in it.
fn load_keymap(opts: &TuiOptions) -> (Keymap, Vec<String>) {
    let path = opts.keys_file.clone().or_else(|| {
        theme_file::config_dir()
            .map(|d| d.join("keys.toml"))
            .filter(|p| p.is_file())
    });
    match path {
        Some(p) => {
            let (map, warnings) = Keymap::load(&p);
            let warnings = warnings
                .iter()
                .map(|w| format!("{w} (that line is left out; the rest is used)"))
                .collect();
            (map, warnings)
        }
        None => (Keymap::default(), Vec::new()),
    }
}

/// Runs the dashboard until the operator quits. The engine keeps running;
/// shutting it down is the caller's call.
pub async fn run(handle: EngineHandle, opts: TuiOptions) -> anyhow::Result<Exit> {
    // Subscribe before the overview so that no event falls between them.
    let events = handle.subscribe();
    let live = handle.subscribe_live();
    let overview = handle.overview().await.context("the engine has stopped")?;
    let reader = match handle.reader() {
        Some(r) => r,
        // An engine elsewhere on this machine: its folder is readable here.
        None => Arc::new(
            crate::store::SqliteReader::open(std::path::Path::new(&overview.state_dir))
                .context("cannot read the run's store")?,
        ),
    };
    let link = handle.link();
    let streams = Streams {
        events: Some(events),
        live: Some(live),
        link,
    };
    run_on(Some(handle), reader, overview, streams, opts).await
}

/// Opens the dashboard on a stored run no engine serves: everything can be
/// looked at, nothing done. The header says so.
pub async fn run_stored(
    reader: Arc<dyn RunReader>,
    overview: RunOverview,
    mut opts: TuiOptions,
) -> anyhow::Result<Exit> {
    opts.read_only = true;
    opts.quit_stops_engine = false;
    let streams = Streams {
        events: None,
        live: None,
        link: None,
    };
    run_on(None, reader, overview, streams, opts).await
}

struct Streams {
    events: Option<tokio::sync::broadcast::Receiver<Arc<crate::engine::Event>>>,
    live: Option<tokio::sync::broadcast::Receiver<Arc<crate::engine::live::LiveEvent>>>,
    link: Option<tokio::sync::watch::Receiver<Link>>,
}

async fn run_on(
    handle: Option<EngineHandle>,
    reader: Arc<dyn RunReader>,
    overview: RunOverview,
    streams: Streams,
    opts: TuiOptions,
) -> anyhow::Result<Exit> {
    let Streams {
        mut events,
        mut live,
        mut link,
    } = streams;
    let support = ColorSupport::detect(opts.no_color);
    let (themes, theme_warnings) = theme_file::themes(opts.theme.as_deref(), support);
    let (keymap, key_warnings) = load_keymap(&opts);
    let stopped = handle.is_none();
    let config = theme_file::config_dir().map(|d| d.join("dashboard.toml"));
    let (configured, config_warnings) = match &config {
        Some(path) => super::attention::from_config(path),
        None => (None, Vec::new()),
    };
    let mut attention =
        super::attention::Attention::new(opts.notify.or(configured).unwrap_or_default());
    let mut ui = Ui::new(RunView::new(overview), keymap, themes, Actor::current());
    let warnings: Vec<String> = theme_warnings
        .iter()
        .map(|w| format!("{w} (using the default theme)"))
        .chain(key_warnings)
        .chain(config_warnings.iter().map(|w| w.to_string()))
        .collect();
    for w in &warnings {
        tracing::warn!("{w}");
    }
    if let Some(first) = warnings.first() {
        ui.state.error(first.clone());
    }
    ui.state.link.remote = link.is_some();
    ui.state.link.read_only = opts.read_only;
    ui.state.link.stopped = stopped;
    ui.state.link.quit_stops_engine = opts.quit_stops_engine;

    let mut guard = TerminalGuard::new().context("cannot set up the terminal")?;
    if let Ok(size) = guard.terminal.size() {
        ui.area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
    }
    // The log pane starts with the run's recent past.
    if let Ok(last) = reader.last_seq().await
        && let Ok(recent) = reader
            .events_after(last.saturating_sub(RECENT_EVENTS), RECENT_EVENTS)
            .await
    {
        for ev in &recent {
            ui.feed.event(ev);
        }
    }
    // The first screen is read before any key is: a key pressed while the
    // dashboard starts acts on what it then shows.
    for _ in 0..4 {
        let want = ui.want();
        match fetch::fetch_off_thread(reader.clone(), want.clone()).await {
            Ok(page) => {
                ui.view.set_page(page, Timestamp::now());
                ui.prepare(Timestamp::now());
            }
            Err(e) => {
                ui.state.error(format!("cannot read the run: {e}"));
                break;
            }
        }
        if ui.want() == want {
            break;
        }
    }
    attention.already_waiting(ui.view.review_len());
    let (replies, mut replies_rx) = mpsc::unbounded_channel();
    let mut source = Source::new(handle, reader, replies);
    source.asked = Some(ui.want());
    source.stale = false;
    source.last_read = Some(Instant::now());
    let tz = TimeZone::system();
    let mut pacer = Pacer::new(opts.max_fps);
    let mut input = EventStream::new();
    let mut next_projection = Instant::now();

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
        if ui.feed.take_warnings() && ui.log_shown() {
            pacer.mark();
        }
        // What the status line said, whole, in the log pane: errors, and
        // what it could not show whole.
        let room = ui.area.width.saturating_sub(2) as usize;
        for told in std::mem::take(&mut ui.state.told)
            .into_iter()
            .filter(|t| t.error || t.text.chars().count() > room)
        {
            ui.feed.push(crate::tui::run_feed::FeedLine {
                at: Timestamp::now(),
                tone: if told.error {
                    crate::tui::run_feed::Tone::Warn
                } else {
                    crate::tui::run_feed::Tone::Info
                },
                text: told.text,
            });
        }
        // Read what the screen now asks for (ui.draw has settled selection
        // and scrolling), or what changed.
        let want = ui.want();
        // With a dollar budget, what the run will have cost at its finish,
        // beside it in the header, every little while.
        if ui.view.budget.run_limits().usd.is_some()
            && !ui.view.finished()
            && next_projection <= Instant::now()
        {
            next_projection = Instant::now() + PROJECT_EVERY;
            source.projection(ui.view.state_dir.clone(), ui.view.budget.run_limits().usd);
        }
        // A task started waiting for a person: tell the terminal.
        if let Some(bytes) = attention.due(Instant::now()) {
            use std::io::Write;
            let mut out = std::io::stdout();
            let _ = out.write_all(&bytes).and_then(|_| out.flush());
        }
        let mut wake = pacer.wake_at(Instant::now());
        if let Some(at) = attention.next_at() {
            wake = wake.min(at);
        }
        match source.read_due(&want, Instant::now()) {
            Some(at) if at <= Instant::now() => source.read(want, Instant::now()),
            Some(at) => wake = wake.min(at),
            None => {}
        }
        tokio::select! {
            ev = input.next() => match ev {
                Some(Ok(ev)) => {
                    pacer.mark();
                    let effect = ui.on_terminal(&ev);
                    if let Some(exit) = source.carry_out(effect, &ui.view) {
                        return Ok(exit);
                    }
                    // Selection and scrolling settle before the next read.
                    ui.prepare(Timestamp::now());
                }
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                // The terminal is gone (hung-up SSH session): nobody to show anything to.
                None => return Ok(Exit::Quit),
            },
            msg = async { events.as_mut().expect("guarded").recv().await }, if events.is_some() => match msg {
                Ok(ev) => {
                    attention.on_event(&ev);
                    if ui.feed.event(&ev) && ui.log_shown() {
                        pacer.mark();
                    }
                    if ui.view.apply(&ev) == Applied::Changed {
                        source.stale = true;
                        if ev.task.is_none() {
                            // Pause, resume, budget: shown at once.
                            pacer.mark();
                        }
                    }
                }
                Err(RecvError::Lagged(missed)) => {
                    ui.feed.push(crate::tui::run_feed::FeedLine {
                        at: Timestamp::now(),
                        tone: crate::tui::run_feed::Tone::Info,
                        text: format!("… {missed} events went by too fast to show; RUN_LOG.md has them all"),
                    });
                    // The store has every event: the next read covers them.
                    tracing::debug!("dashboard skipped {missed} events; reading the run again");
                    source.stale = true;
                    source.request_overview();
                }
                Err(RecvError::Closed) => {
                    events = None;
                    if ui.view.finished() {
                        let status = ui.view.exit_status();
                        ui.state.info(format!(
                            "the run finished: {} (exit {status}); q quits",
                            crate::engine::exit_status::meaning(status)
                        ));
                    } else {
                        ui.state.error("the engine has stopped; q quits");
                    }
                    source.stale = true;
                    pacer.mark();
                }
            },
            msg = async { live.as_mut().expect("guarded").recv().await }, if live.is_some() => match msg {
                Ok(ev) => {
                    // Only the task on screen needs drawing again.
                    if ui.view.apply_live(&ev) && ui.state.selected.as_deref() == Some(ev.task.as_str()) {
                        pacer.mark();
                    }
                }
                // Lossy by design: the next update carries the whole reply so far.
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => live = None,
            },
            Some(reply) = replies_rx.recv() => {
                pacer.mark();
                match reply {
                    Reply::Sent { label, result: Ok(()) } => ui.state.info(format!("{label}: done")),
                    Reply::Sent { label, result: Err(refusal) } => {
                        ui.state.error(format!("{label} refused: {refusal}"));
                    }
                    Reply::Page(page) => match *page {
                    Ok(page) => {
                        source.reading = false;
                        ui.view.set_page(page, Timestamp::now());
                        ui.prepare(Timestamp::now());
                        let effect = ui.on_task_read();
                        if let Some(exit) = source.carry_out(effect, &ui.view) {
                            return Ok(exit);
                        }
                        if ui.want() != ui.view.page().want {
                            // Another read is needed for the screen as it
                            // now is (the selected task, say): draw once it
                            // is in rather than half a screen now.
                            pacer.unmark();
                        }
                    }
                    Err(e) => {
                        source.reading = false;
                        ui.state.error(format!("cannot read the run: {e}"));
                    }
                    },
                    Reply::Overview(Some(overview)) => {
                        ui.resync(overview);
                        source.stale = true;
                    }
                    Reply::Overview(None) => {}
                    Reply::Matched(cmd, Ok(tasks)) => ui.confirm_matched(cmd, tasks),
                    Reply::Figures(Ok(report)) => {
                        ui.state.status = None;
                        ui.state.popup = Some(super::view_state::Popup::Figures {
                            text: crate::report::stats_text::text(&report),
                            scroll: 0,
                        });
                    }
                    Reply::Figures(Err(e)) => ui.state.error(format!("cannot read the run's figures: {e}")),
                    Reply::Projection(p) => ui.view.projection = p,
                    Reply::Matched(_, Err(e)) => ui.state.error(format!("cannot read the run: {e}")),
                    Reply::SentAll { label, done, refused } => {
                        if refused.is_empty() {
                            ui.state.info(format!("{label}: {done} done"));
                        } else {
                            for why in &refused {
                                tracing::warn!("refused: {why}");
                            }
                            ui.state.error(format!(
                                "{label}: {done} done, {} refused (each in the log pane): {}",
                                refused.len(),
                                refused[0]
                            ));
                        }
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
                on_link(&mut ui, &mut source, now);
            },
            _ = sleep_until(wake) => pacer.woke(Instant::now()),
        }
    }
}

#[cfg(test)]
#[path = "app_tests.rs"]
mod tests;
