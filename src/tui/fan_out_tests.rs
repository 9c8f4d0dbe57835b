//! The detail of a task whose `draft` phase runs once per item: the items'
//! progress line and the failed items, drawn into a `TestBackend` against a
//! committed snapshot.

use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::widgets::Widget;

use super::color::ColorSupport;
use super::fetch::Want;
use super::keymap::Keymap;
use super::log_pane;
use super::run_feed::RunFeed;
use super::task_detail::TaskDetail;
use super::test_support::{Journal, StoredRun, now};
use super::theme_file::built_in_default;
use super::view_model::RunView;
use super::view_state::ViewState;
use super::widgets::Ctx;
use crate::engine::event::{AttemptOutcome, ErrorClass, EventKind};

/// One task: `research` done, then 120 items of `draft`: 37 done, two
/// failed for good, three running.
fn fanned_out() -> StoredRun {
    let mut j = Journal::new();
    j.submit("scenes-1", 0)
        .start("scenes-1", 1, "research", 1, "claude-sonnet-4-5")
        .finish(
            "scenes-1",
            20,
            "research",
            1,
            AttemptOutcome::Succeeded,
            800,
            Some(0.01),
        );
    let id = Some("scenes-1");
    j.push(
        id,
        21,
        EventKind::ItemsListed {
            phase: "draft".into(),
            count: 120,
            error: None,
            name: Some("scenes".into()),
        },
    );
    for item in 0..42 {
        j.push(
            id,
            22,
            EventKind::ItemStarted {
                phase: "draft".into(),
                item,
                attempt: 1,
                agent: "draft-agent".into(),
                model: Some("claude-sonnet-4-5".into()),
            },
        );
    }
    for item in 0..39 {
        let outcome = match item {
            7 | 19 => AttemptOutcome::Failed {
                class: ErrorClass::Fatal,
                message: format!("scene {item} has no text"),
            },
            _ => AttemptOutcome::Succeeded,
        };
        j.push(
            id,
            30 + item as i64,
            EventKind::ItemFinished {
                phase: "draft".into(),
                item,
                attempt: 1,
                agent: "a".into(),
                duration_ms: 900,
                outcome,
                usage: None,
                cost_usd: None,
                output: Some(serde_json::json!({ "scene": item })),
            },
        );
    }
    for item in [7, 19] {
        j.push(
            id,
            80,
            EventKind::ItemFailed {
                phase: "draft".into(),
                item,
                error: format!("fatal: scene {item} has no text"),
            },
        );
    }
    StoredRun::new(&j.events)
}

#[test]
fn the_detail_shows_the_items_progress_and_the_failed_items() {
    let run = fanned_out();
    let state = ViewState {
        selected: Some("scenes-1".into()),
        ..ViewState::default()
    };
    let mut view = RunView::new(run.overview.clone());
    let want = Want {
        selected: state.selected.clone(),
        ..Want::default()
    };
    view.set_page(run.page(want), now());
    let theme = built_in_default().for_terminal(ColorSupport::None);
    let keymap = Keymap::default();
    let log = log_pane::new_state();
    let feed = RunFeed::default();
    let ctx = Ctx {
        view: &view,
        state: &state,
        theme: &theme,
        keymap: &keymap,
        now: now(),
        tz: &TimeZone::UTC,
        log: &log,
        feed: &feed,
    };
    let mut term = Terminal::new(TestBackend::new(80, 30)).expect("test terminal");
    term.draw(|f| {
        TaskDetail {
            ctx: &ctx,
            focused: true,
        }
        .render(f.area(), f.buffer_mut())
    })
    .expect("draw");
    let text: String = term
        .backend()
        .buffer()
        .content()
        .chunks(80)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect();
    assert!(
        text.contains("items 37/120 scenes · 2 failed · 3 running"),
        "{text}"
    );
    // Its attempts are its items': the timeline shows it running since its
    // list was read.
    let bar = text
        .lines()
        .find(|l| l.contains("draft    ▕"))
        .expect("a timeline row for draft");
    assert!(bar.contains("███"), "{text}");
    insta::assert_snapshot!("fan_out_task_detail_80x30", text);
}
