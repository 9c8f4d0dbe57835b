//! What the operator sees of reviewer loops and escalations: the review
//! queue's Why column leads with the agent's severity and says what it
//! tried; the detail shows each round's verdict and the feedback a phase
//! ran with. Drawn through a real store into a `TestBackend`.

use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::widgets::Widget;

use super::keymap::Keymap;
use super::log_pane;
use super::review_queue::ReviewQueue;
use super::task_detail::TaskDetail;
use super::test_support::{Journal, StoredRun, now};
use super::theme::Theme;
use super::theme_file::built_in_default;
use super::view_state::ViewState;
use super::widgets::Ctx;
use crate::engine::escalation::{Escalation, Severity};
use crate::engine::event::{AttemptOutcome, EventKind};
use crate::store::ListQuery;

fn run() -> StoredRun {
    let sonnet = "claude-sonnet-4-5";
    let mut j = Journal::new();
    j.submit("t-blocked", 0).submit("t-looped", 1);
    let escalation = Escalation {
        attempted: vec!["tried the mirror".into(), "asked the archive".into()],
        severity: Some(Severity::High),
    };
    j.start("t-blocked", 10, "research", 1, sonnet)
        .finish(
            "t-blocked",
            20,
            "research",
            1,
            AttemptOutcome::Blocked {
                reason: "needs access to the paywalled source".into(),
                escalation: escalation.clone(),
            },
            500,
            Some(0.001),
        )
        .push(
            Some("t-blocked"),
            21,
            EventKind::TaskBlocked {
                phase: "research".into(),
                reason: "needs access to the paywalled source".into(),
                escalation,
            },
        );
    j.start("t-looped", 10, "research", 1, sonnet)
        .finish(
            "t-looped",
            20,
            "research",
            1,
            AttemptOutcome::Succeeded,
            900,
            Some(0.01),
        )
        .start("t-looped", 21, "draft", 1, sonnet)
        .finish(
            "t-looped",
            40,
            "draft",
            1,
            AttemptOutcome::SentBack {
                to: "research".into(),
                feedback: "cite the primary source".into(),
            },
            700,
            Some(0.01),
        )
        .push(
            Some("t-looped"),
            41,
            EventKind::LoopRound {
                phase: "draft".into(),
                to: "research".into(),
                feedback: "cite the primary source".into(),
                round: 1,
                reset: vec!["research".into(), "draft".into()],
                granted: false,
            },
        );
    let j = j.push(
        Some("t-looped"),
        42,
        EventKind::PhaseStarted {
            phase: "research".into(),
            attempt: 2,
            agent: "research-agent".into(),
            model: Some(sonnet.into()),
            feedback: Some("cite the primary source".into()),
            route: None,
            role: None,
        },
    );
    StoredRun::new(&j.events)
}

/// The lines a widget draws at 120x30 in the default theme without colour.
fn screen(run: &StoredRun, selected: &str, draw: impl Fn(&Ctx<'_>, &mut ratatui::Frame)) -> String {
    let state = ViewState {
        selected: Some(selected.into()),
        ..ViewState::default()
    };
    let mut view = super::view_model::RunView::new(run.overview.clone());
    let want = super::fetch::Want {
        table: ListQuery {
            limit: Some(100),
            ..Default::default()
        },
        queue_limit: 100,
        selected: state.selected.clone(),
        ..Default::default()
    };
    view.set_page(run.page(want), now());
    let theme: Theme = built_in_default().for_terminal(super::color::ColorSupport::None);
    let keymap = Keymap::default();
    let log = log_pane::new_state();
    let feed = super::run_feed::RunFeed::default();
    let tz = TimeZone::UTC;
    let ctx = Ctx {
        view: &view,
        state: &state,
        theme: &theme,
        keymap: &keymap,
        now: now(),
        tz: &tz,
        log: &log,
        feed: &feed,
    };
    let mut term = Terminal::new(TestBackend::new(120, 30)).expect("test terminal");
    term.draw(|f| draw(&ctx, f)).expect("draw");
    let buf = term.backend().buffer().clone();
    (0..buf.area.height)
        .map(|y| {
            (0..buf.area.width)
                .map(|x| buf[(x, y)].symbol().to_string())
                .collect::<String>()
                .trim_end()
                .to_string()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_queue_leads_with_the_severity_and_says_what_was_tried() {
    let run = run();
    let shown = screen(&run, "t-blocked", |ctx, f| {
        ReviewQueue { ctx, focused: true }.render(f.area(), f.buffer_mut())
    });
    assert!(
        shown.contains("HIGH · needs access to the paywalled source · tried: tried the…"),
        "{shown}"
    );
}

#[test]
fn the_detail_shows_the_escalation_and_each_rounds_verdict_and_feedback() {
    let run = run();
    let blocked = screen(&run, "t-blocked", |ctx, f| {
        TaskDetail { ctx, focused: true }.render(f.area(), f.buffer_mut())
    });
    assert!(
        blocked.contains("high · needs access to the paywalled source · tried: tried the"),
        "{blocked}"
    );
    let looped = screen(&run, "t-looped", |ctx, f| {
        TaskDetail { ctx, focused: true }.render(f.area(), f.buffer_mut())
    });
    assert!(
        looped.contains("sent back to research: cite the primary source"),
        "{looped}"
    );
    assert!(
        looped.contains("with feedback: cite the primary source"),
        "{looped}"
    );
}
