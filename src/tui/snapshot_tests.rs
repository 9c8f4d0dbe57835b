//! Every view drawn into a `TestBackend` at 80x24 and 160x48, in the default
//! theme and with no colour, against committed snapshots (text and styles).
//! The clock and time zone are fixed so the screens do not drift.

use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::widgets::Widget;

use super::color::ColorSupport;
use super::fetch::Want;
use super::header::Header;
use super::help::Help;
use super::keymap::Keymap;
use super::line_edit::LineEdit;
use super::log_pane::{self, LogPane};
use super::prompt::{ConfirmKind, Prompt, TextKind};
use super::review_queue::ReviewQueue;
use super::screen::Screen;
use super::task_detail::TaskDetail;
use super::task_table::TaskTable;
use super::test_support::{StoredRun, big_run, now};
use super::theme::Theme;
use super::theme_file::{built_in_default, load};
use super::view_model::RunView;
use super::view_state::{Pane, Popup, ViewState};
use super::widgets::Ctx;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 48)];

fn themes() -> [(&'static str, Theme); 2] {
    let theme = built_in_default();
    [
        ("color", theme.for_terminal(ColorSupport::TrueColor)),
        ("nocolor", theme.for_terminal(ColorSupport::None)),
    ]
}

/// Draws with `draw` into a `width` x `height` buffer.
fn draw(
    view: &RunView,
    state: &ViewState,
    theme: &Theme,
    width: u16,
    height: u16,
    draw: impl Fn(&Ctx<'_>, Rect, &mut Buffer),
) -> Buffer {
    let keymap = Keymap::default();
    let log = log_pane::new_state();
    let tz = TimeZone::UTC;
    // The log pane tells the sample run's events.
    let mut feed = super::run_feed::RunFeed::default();
    for ev in super::test_support::sample_events() {
        feed.event(&ev);
    }
    let ctx = Ctx {
        view,
        state,
        theme,
        keymap: &keymap,
        now: now(),
        tz: &tz,
        log: &log,
        feed: &feed,
    };
    let mut term = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    term.draw(|f| draw(&ctx, f.area(), f.buffer_mut()))
        .expect("draw");
    term.backend().buffer().clone()
}

thread_local! {
    /// The sample run in a real store, one per test thread.
    static RUN: StoredRun = StoredRun::sample();
}

/// What a dashboard in `state` reads from `run`: the table from the top
/// for its sort and filter, the queue, the selected task whole.
fn view_of(run: &StoredRun, state: &ViewState) -> RunView {
    let mut view = RunView::new(run.overview.clone());
    let want = Want {
        table: super::rows::query(state.sort, &state.filter, 0, 1000),
        queue_offset: 0,
        queue_limit: 1000,
        selected: state.selected.clone(),
        finished_since: Some(view.throughput_since(now())),
    };
    view.set_page(run.page(want), now());
    view
}

/// The sample run as a dashboard in `state` reads it.
fn sample_for(state: &ViewState) -> RunView {
    RUN.with(|run| view_of(run, state))
}

fn selected(id: &str) -> ViewState {
    ViewState {
        selected: Some(id.into()),
        ..ViewState::default()
    }
}

/// Snapshots a view at both sizes in both colour modes.
fn snapshot_all(name: &str, state: ViewState, render: impl Fn(&Ctx<'_>, Rect, &mut Buffer) + Copy) {
    let view = sample_for(&state);
    for (w, h) in SIZES {
        for (mode, theme) in themes() {
            let buf = draw(&view, &state, &theme, w, h, render);
            insta::assert_snapshot!(format!("{name}_{w}x{h}_{mode}"), format!("{buf:?}"));
        }
    }
}

#[test]
fn screen() {
    snapshot_all("screen", selected("t-003"), |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn screen_on_the_review_tab() {
    let state = ViewState {
        focus: Pane::Review,
        ..selected("t-004")
    };
    snapshot_all("screen_review_tab", state, |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn screen_in_sixteen_colours() {
    let view = sample_for(&selected("t-003"));
    let theme = load("ansi16")
        .expect("ansi16 theme")
        .for_terminal(ColorSupport::Ansi16);
    for (w, h) in SIZES {
        let buf = draw(&view, &selected("t-003"), &theme, w, h, |ctx, area, buf| {
            Screen { ctx }.render(area, buf)
        });
        insta::assert_snapshot!(format!("screen_{w}x{h}_ansi16"), format!("{buf:?}"));
    }
    // The default theme's RGB colours brought down to the nearest sixteen.
    let theme = built_in_default().for_terminal(ColorSupport::Ansi16);
    let buf = draw(
        &view,
        &selected("t-003"),
        &theme,
        80,
        24,
        |ctx, area, buf| Screen { ctx }.render(area, buf),
    );
    insta::assert_snapshot!("screen_80x24_default_in_16", format!("{buf:?}"));
}

#[test]
fn header() {
    let mut state = selected("t-003");
    state.status = None;
    snapshot_all("header", state, |ctx, area, buf| {
        let rect = Rect { height: 3, ..area };
        Header { ctx }.render(rect, buf)
    });
}

#[test]
fn the_header_names_the_database_of_a_run_kept_in_one() {
    let mut state = selected("t-003");
    state.status = None;
    let mut view = sample_for(&state);
    view.store = Some("postgres://baton@db.internal:5432/runs?schema=notes".into());
    let (_, theme) = themes().into_iter().nth(1).expect("no-colour theme");
    let buf = draw(&view, &state, &theme, 160, 48, |ctx, area, buf| {
        Header { ctx }.render(Rect { height: 3, ..area }, buf)
    });
    let rows: Vec<String> = (0..3)
        .map(|y| (0..160).map(|x| buf[(x, y)].symbol()).collect())
        .collect();
    let text = rows.join("\n");
    assert!(
        text.contains("postgres://baton@db.internal:5432/runs?schema=notes"),
        "{text}"
    );
    assert!(!text.contains(&view.state_dir), "{text}");
}

#[test]
fn task_table() {
    snapshot_all("task_table", selected("t-004"), |ctx, area, buf| {
        TaskTable { ctx, focused: true }.render(area, buf)
    });
}

#[test]
fn task_detail_of_a_retrying_task() {
    snapshot_all(
        "task_detail_retrying",
        selected("t-003"),
        |ctx, area, buf| TaskDetail { ctx, focused: true }.render(area, buf),
    );
}

#[test]
fn task_detail_of_a_task_awaiting_review() {
    snapshot_all("task_detail_review", selected("t-004"), |ctx, area, buf| {
        TaskDetail { ctx, focused: true }.render(area, buf)
    });
}

#[test]
fn review_queue() {
    snapshot_all("review_queue", selected("t-004"), |ctx, area, buf| {
        ReviewQueue { ctx, focused: true }.render(area, buf)
    });
}

#[test]
fn log_pane() {
    snapshot_all("log_pane", ViewState::default(), |ctx, area, buf| {
        LogPane {
            ctx,
            focused: false,
        }
        .render(area, buf)
    });
}

#[test]
fn help() {
    snapshot_all("help", ViewState::default(), |ctx, area, buf| {
        Help {
            keymap: ctx.keymap,
            theme: ctx.theme,
            scroll: 0,
        }
        .render(area, buf)
    });
}

fn with_prompt(prompt: Prompt) -> ViewState {
    ViewState {
        popup: Some(Popup::Prompt(prompt)),
        ..selected("t-004")
    }
}

#[test]
fn reject_prompt() {
    let Prompt::Text {
        kind,
        task,
        phase,
        complaint,
        ..
    } = Prompt::text(TextKind::Reject, "t-004".into(), Some("draft".into()))
    else {
        unreachable!("a text prompt");
    };
    let prompt = Prompt::Text {
        kind,
        task,
        phase,
        complaint,
        edit: LineEdit::new("off topic"),
    };
    snapshot_all("prompt_reject", with_prompt(prompt), |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn budget_prompt() {
    let prompt = Prompt::Budget {
        task: Some("t-004".into()),
        run: false,
        current: "t-004 $0.0550 of $0.0500; run: no limit".into(),
        edit: LineEdit::new("$0.20 20k tok"),
        complaint: None,
    };
    snapshot_all("prompt_budget", with_prompt(prompt), |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn resolve_prompt() {
    let prompt = Prompt::Resolve {
        task: "t-005".into(),
        phase: Some("research".into()),
        reason: "needs access to the paywalled source".into(),
        choice: 1,
    };
    snapshot_all("prompt_resolve", with_prompt(prompt), |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn confirm_prompt() {
    let prompt = Prompt::Confirm(ConfirmKind::Quit {
        unfinished: 5,
        can_detach: true,
    });
    snapshot_all(
        "prompt_confirm_quit",
        with_prompt(prompt),
        |ctx, area, buf| Screen { ctx }.render(area, buf),
    );
}

#[test]
fn filter_being_typed() {
    let state = ViewState {
        filter: "dra".into(),
        filter_edit: Some((LineEdit::new("dra"), String::new())),
        ..selected("t-002")
    };
    let view = sample_for(&state);
    let buf = draw(&view, &state, &themes()[1].1, 80, 24, |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
    insta::assert_snapshot!("filter_80x24_nocolor", format!("{buf:?}"));
}

#[test]
fn bulk_prompt() {
    let prompt = Prompt::Confirm(ConfirmKind::Bulk {
        action: crate::engine::event::Action::Approve,
        tasks: vec!["t-004".into(), "t-005".into()],
        what: "matching state:awaiting_review".into(),
    });
    snapshot_all("prompt_bulk", with_prompt(prompt), |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn marked_rows_and_the_command_line() {
    let state = ViewState {
        marks: ["t-002".to_string(), "t-004".to_string()]
            .into_iter()
            .collect(),
        command_edit: Some(LineEdit::new("approve phase:draft state:aw")),
        ..selected("t-004")
    };
    snapshot_all("marks_and_command_line", state, |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn filter_language_error_while_typing() {
    let state = ViewState {
        filter: "state:awai".into(),
        filter_edit: Some((LineEdit::new("state:awai"), String::new())),
        ..selected("t-002")
    };
    let view = sample_for(&state);
    for (w, h) in SIZES {
        let buf = draw(&view, &state, &themes()[1].1, w, h, |ctx, area, buf| {
            Screen { ctx }.render(area, buf)
        });
        let text = format!("{buf:?}");
        assert!(text.contains("no state"), "{text}");
        insta::assert_snapshot!(format!("filter_error_{w}x{h}_nocolor"), text);
    }
}

#[test]
fn figures_view() {
    let report = RUN.with(|run| {
        let reader = run.reader.clone();
        super::test_support::block_on(async move {
            crate::report::stats::from_reader(reader.as_ref(), "./state/run-42", Some(1.0))
                .await
                .expect("a report")
        })
    });
    let state = ViewState {
        popup: Some(Popup::Figures {
            text: crate::report::stats_text::text(&report),
            scroll: 0,
        }),
        ..selected("t-002")
    };
    snapshot_all("figures_view", state, |ctx, area, buf| {
        Screen { ctx }.render(area, buf)
    });
}

#[test]
fn too_small() {
    let view = sample_for(&ViewState::default());
    let buf = draw(
        &view,
        &ViewState::default(),
        &themes()[0].1,
        50,
        12,
        |ctx, area, buf| Screen { ctx }.render(area, buf),
    );
    insta::assert_snapshot!("too_small_50x12", format!("{buf:?}"));
}

#[test]
fn ten_thousand_tasks_render_from_a_window() {
    let run = big_run(10_000);
    let mut ui = super::ui::Ui::new(
        RunView::new(run.overview.clone()),
        Keymap::default(),
        vec![themes()[0].1.clone()],
        crate::engine::event::Actor::engine(),
    );
    ui.area = Rect::new(0, 0, 160, 48);
    run.settle(&mut ui);
    // The operator goes to the end, as with `G`.
    ui.on_action(super::action::Action::Bottom);
    run.settle(&mut ui);
    assert_eq!(ui.state.selected.as_deref(), Some("t-09999"));
    assert!(ui.view.rows().count() < 200, "only a window is read");
    let mut term = Terminal::new(TestBackend::new(160, 48)).expect("test terminal");
    term.draw(|f| ui.draw(f, now(), &TimeZone::UTC))
        .expect("draw");
    let text: String = term
        .backend()
        .buffer()
        .content()
        .iter()
        .map(|c| c.symbol())
        .collect();
    assert!(
        text.contains("t-09999"),
        "the selected last row is scrolled into view"
    );
    assert!(text.contains("10000"), "the title counts every task");
}

/// The sample run with a budget per task and one for the run.
fn budgeted_run() -> RunView {
    use crate::engine::budget::Limits;
    let mut view = sample_for(&selected("t-002"));
    view.budget.task = Limits {
        usd: Some(0.05),
        tokens: Some(5_000),
    };
    view.budget.run = Limits {
        usd: Some(1.0),
        tokens: None,
    };
    view
}

#[test]
fn header_and_detail_show_projected_spend_beside_the_budget() {
    let view = budgeted_run();
    let (_, theme) = themes().into_iter().nth(1).expect("nocolor");
    for (w, h) in SIZES {
        let buf = draw(&view, &selected("t-002"), &theme, w, h, |ctx, area, buf| {
            Screen { ctx }.render(area, buf)
        });
        let text = format!("{buf:?}");
        assert!(text.contains("budget"), "{text}");
        insta::assert_snapshot!(format!("budget_screen_{w}x{h}_nocolor"), text);
    }
}

#[test]
fn task_detail_shows_a_streaming_reply_as_it_grows() {
    use crate::engine::live::{LiveEvent, LiveKind, Progress};
    let mut view = sample_for(&selected("t-002"));
    let text: String = (1..=15).map(|n| format!("line {n}\n")).collect();
    assert!(view.apply_live(&LiveEvent {
        task: "t-002".into(),
        phase: "draft".into(),
        attempt: 1,
        kind: LiveKind::Progress(Progress {
            text,
            output_tokens: 42,
            estimated: true,
        }),
    }));
    let (_, theme) = themes().into_iter().next().unwrap();
    let buf = draw(
        &view,
        &selected("t-002"),
        &theme,
        100,
        60,
        |ctx, area, buf| TaskDetail { ctx, focused: true }.render(area, buf),
    );
    let shown: String = buf
        .content()
        .chunks(100)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect();
    assert!(shown.contains("~42 tok so far"), "{shown}");
    assert!(shown.contains("reply so far"), "{shown}");
    assert!(shown.contains("┆ … 3 lines above"), "{shown}");
    assert!(
        shown.contains("┆ line 15") && shown.contains("┆ line 4 "),
        "{shown}"
    );
    assert!(!shown.contains("┆ line 3 "), "{shown}");
}

#[test]
fn task_detail_marks_a_phase_taken_from_the_step_cache() {
    use super::test_support::Journal;
    use crate::engine::event::EventKind;
    let phases = &run_phases();
    let mut j = Journal::new();
    j.submit("t-001", 0).push(
        Some("t-001"),
        5,
        EventKind::PhaseCached {
            phase: phases[0].clone(),
            key: "topic-7".into(),
            output: serde_json::json!({"summary": "shared"}),
            from_task: "t-000".into(),
            stored_at: super::test_support::t0(),
        },
    );
    let run = StoredRun::new(&j.events);
    let state = selected("t-001");
    let view = view_of(&run, &state);
    let (_, theme) = themes().into_iter().nth(1).expect("nocolor");
    let buf = draw(&view, &state, &theme, 100, 30, |ctx, area, buf| {
        TaskDetail { ctx, focused: true }.render(area, buf)
    });
    let shown: String = buf
        .content()
        .chunks(100)
        .map(|row| row.iter().map(|c| c.symbol()).collect::<String>() + "\n")
        .collect();
    let line = shown
        .lines()
        .find(|l| l.contains(&format!("▾ {}", phases[0])))
        .unwrap_or_else(|| panic!("{shown}"));
    assert!(line.contains("cached · from t-000 · 0 tok · $0"), "{line}");
    assert!(shown.contains("shared"), "the output shows: {shown}");
}

fn run_phases() -> Vec<String> {
    super::test_support::empty_overview().phases
}
