use crossterm::event::{KeyCode, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};

use super::*;
use crate::engine::event::Action as Decide;
use crate::tui::commands::DETACH_UNAVAILABLE;
use crate::tui::prompt::Prompt;
use crate::tui::test_support::{StoredRun, now};
use crate::tui::theme_file::built_in_default;
use crate::tui::view_state::{LinkView, SortColumn};

thread_local! {
    /// The sample run in a real store, one per test (each runs on its own thread).
    static RUN: StoredRun = StoredRun::sample();
}

/// Reads what the dashboard asks for, as the loop does after each key.
fn settle(ui: &mut Ui) {
    RUN.with(|run| run.settle(ui));
}

fn ui() -> Ui {
    let overview = RUN.with(|run| run.overview.clone());
    let mut ui = Ui::new(
        RunView::new(overview),
        Keymap::default(),
        vec![built_in_default()],
        Actor::engine(),
    );
    ui.area = Rect::new(0, 0, 160, 48);
    settle(&mut ui);
    ui
}

fn press(ui: &mut Ui, code: KeyCode) -> Effect {
    let effect = ui.on_key(&KeyEvent::new(code, KeyModifiers::NONE));
    ui.prepare(now());
    settle(ui);
    effect
}

fn row_id(ui: &Ui, pos: usize) -> Option<&str> {
    ui.view.row_at(pos).map(|r| r.id.as_str())
}

fn chars(ui: &mut Ui, text: &str) {
    for c in text.chars() {
        press(ui, KeyCode::Char(c));
    }
}

fn select(ui: &mut Ui, id: &str) {
    ui.state.select(Some(id));
    settle(ui);
}

fn sent(effect: Effect) -> Command {
    match effect {
        Effect::Send { command, .. } => command,
        other => panic!("expected a command, got {other:?}"),
    }
}

#[test]
fn first_task_is_selected_and_arrows_move() {
    let mut ui = ui();
    assert_eq!(ui.state.selected.as_deref(), Some("t-001"));
    press(&mut ui, KeyCode::Char('j'));
    press(&mut ui, KeyCode::Down);
    assert_eq!(ui.state.selected.as_deref(), Some("t-003"));
    press(&mut ui, KeyCode::Char('k'));
    assert_eq!(ui.state.selected.as_deref(), Some("t-002"));
    press(&mut ui, KeyCode::End);
    assert_eq!(ui.state.selected.as_deref(), Some("t-009"));
    press(&mut ui, KeyCode::Home);
    assert_eq!(ui.state.selected.as_deref(), Some("t-001"));
}

#[test]
fn approve_sends_the_held_phase() {
    let mut ui = ui();
    select(&mut ui, "t-004");
    let Command::Act {
        task,
        action,
        phase,
        ..
    } = sent(press(&mut ui, KeyCode::Char('a')))
    else {
        panic!("expected an act");
    };
    assert_eq!(
        (task.as_str(), action, phase.as_deref()),
        ("t-004", Decide::Approve, Some("draft"))
    );
}

#[test]
fn approve_on_a_task_not_in_review_says_why_and_sends_nothing() {
    let mut ui = ui();
    select(&mut ui, "t-003");
    assert_eq!(press(&mut ui, KeyCode::Char('a')), Effect::None);
    let status = ui.state.status.clone().unwrap();
    assert!(status.error);
    assert!(
        status.text.contains("nothing awaiting review"),
        "{}",
        status.text
    );
}

#[test]
fn reject_asks_for_a_reason_then_sends_it() {
    let mut ui = ui();
    select(&mut ui, "t-004");
    assert_eq!(press(&mut ui, KeyCode::Char('r')), Effect::None);
    assert!(matches!(
        ui.state.popup,
        Some(Popup::Prompt(Prompt::Text { .. }))
    ));
    // Keys go to the prompt, not the keymap: 'q' is text here.
    chars(&mut ui, "q bad");
    let Command::Act { action, note, .. } = sent(press(&mut ui, KeyCode::Enter)) else {
        panic!("expected an act");
    };
    assert_eq!((action, note.as_deref()), (Decide::Reject, Some("q bad")));
    assert!(ui.state.popup.is_none());
}

#[test]
fn feedback_sends_the_phase_back() {
    let mut ui = ui();
    select(&mut ui, "t-004");
    press(&mut ui, KeyCode::Char('f'));
    chars(&mut ui, "more sources");
    let Command::Act { action, .. } = sent(press(&mut ui, KeyCode::Enter)) else {
        panic!("expected an act");
    };
    assert_eq!(
        action,
        Decide::SendBack {
            feedback: "more sources".into()
        }
    );
}

#[test]
fn resolve_offers_the_three_choices_for_a_blocked_task() {
    let mut ui = ui();
    select(&mut ui, "t-005");
    press(&mut ui, KeyCode::Char('b'));
    let Command::Act { action, phase, .. } = sent(press(&mut ui, KeyCode::Char('s'))) else {
        panic!("expected an act");
    };
    assert_eq!(
        (action, phase.as_deref()),
        (Decide::ResolveSkip, Some("research"))
    );
}

#[test]
fn cancel_asks_first_and_escape_keeps_the_task() {
    let mut ui = ui();
    select(&mut ui, "t-002");
    press(&mut ui, KeyCode::Char('c'));
    assert_eq!(press(&mut ui, KeyCode::Esc), Effect::None);
    assert!(ui.state.popup.is_none());
    press(&mut ui, KeyCode::Char('c'));
    let Command::Act { action, .. } = sent(press(&mut ui, KeyCode::Char('y'))) else {
        panic!("expected an act");
    };
    assert_eq!(action, Decide::Cancel);
}

#[test]
fn retry_and_pause_are_sent_straight_away() {
    let mut ui = ui();
    select(&mut ui, "t-003");
    assert!(matches!(
        sent(press(&mut ui, KeyCode::Char('R'))),
        Command::Act {
            action: Decide::Retry,
            ..
        }
    ));
    assert!(matches!(
        sent(press(&mut ui, KeyCode::Char('p'))),
        Command::Pause { .. }
    ));
    ui.view.paused = true;
    assert!(matches!(
        sent(press(&mut ui, KeyCode::Char('p'))),
        Command::Resume { .. }
    ));
}

#[test]
fn quit_confirms_while_work_is_unfinished() {
    let mut ui = ui();
    assert_eq!(press(&mut ui, KeyCode::Char('q')), Effect::None);
    assert!(matches!(
        ui.state.popup,
        Some(Popup::Prompt(Prompt::Confirm(_)))
    ));
    assert_eq!(press(&mut ui, KeyCode::Char('y')), Effect::Quit);
}

#[test]
fn quit_with_nothing_unfinished_is_immediate() {
    let mut ui = Ui::new(
        RunView::new(crate::tui::test_support::empty_overview()),
        Keymap::default(),
        vec![],
        Actor::engine(),
    );
    assert_eq!(
        ui.on_key(&KeyEvent::new(KeyCode::Char('q'), KeyModifiers::NONE)),
        Effect::Quit
    );
}

#[test]
fn detach_needs_an_engine_in_another_process() {
    let mut ui = ui();
    assert_eq!(press(&mut ui, KeyCode::Char('d')), Effect::None);
    assert_eq!(
        ui.state.status.as_ref().map(|s| s.text.as_str()),
        Some(DETACH_UNAVAILABLE)
    );
    ui.state.link.remote = true;
    assert_eq!(press(&mut ui, KeyCode::Char('d')), Effect::Detach);
}

#[test]
fn an_attached_dashboard_quits_without_asking_and_says_when_the_engine_is_gone() {
    let mut ui = ui();
    ui.state.link = LinkView {
        remote: true,
        lost: Some("the engine closed the connection".into()),
        read_only: true,
        stopped: false,
        quit_stops_engine: false,
    };
    assert!(ui.view.unfinished() > 0);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 48)).unwrap();
    term.draw(|f| ui.draw(f, now(), &TimeZone::UTC)).unwrap();
    let screen = term.backend().to_string();
    assert!(screen.contains("ENGINE GONE"), "{screen}");
    assert!(screen.contains("READ-ONLY"), "{screen}");
    assert_eq!(press(&mut ui, KeyCode::Char('q')), Effect::Quit);
}

#[test]
fn filter_is_typed_live_and_escape_restores_it() {
    let mut ui = ui();
    press(&mut ui, KeyCode::Char('/'));
    chars(&mut ui, "draft");
    assert_eq!(ui.state.filter, "draft");
    assert_eq!(ui.view.matching(), 2);
    press(&mut ui, KeyCode::Enter);
    assert!(ui.state.filter_edit.is_none());
    press(&mut ui, KeyCode::Char('/'));
    chars(&mut ui, "xyz");
    press(&mut ui, KeyCode::Esc);
    assert_eq!(ui.state.filter, "draft");
    // Esc outside the field clears the filter.
    press(&mut ui, KeyCode::Esc);
    assert_eq!(ui.state.filter, "");
    assert_eq!(ui.view.matching(), 9);
}

#[test]
fn sort_keys_cycle_and_reverse() {
    let mut ui = ui();
    press(&mut ui, KeyCode::Char('s'));
    assert_eq!(ui.state.sort.column, SortColumn::State);
    assert_eq!(row_id(&ui, 0), Some("t-005"));
    press(&mut ui, KeyCode::Char('S'));
    assert!(ui.state.sort.descending);
}

#[test]
fn panes_theme_and_help() {
    let mut ui = ui();
    press(&mut ui, KeyCode::Tab);
    assert_eq!(ui.state.focus, Pane::Detail);
    press(&mut ui, KeyCode::BackTab);
    assert_eq!(ui.state.focus, Pane::Tasks);
    press(&mut ui, KeyCode::Enter);
    assert_eq!(ui.state.focus, Pane::Detail);
    press(&mut ui, KeyCode::Char('?'));
    assert!(matches!(ui.state.popup, Some(Popup::Help { .. })));
    press(&mut ui, KeyCode::Esc);
    assert!(ui.state.popup.is_none());
    ui.themes.push(built_in_default());
    press(&mut ui, KeyCode::Char('t'));
    assert_eq!(ui.state.theme, 1);
}

#[test]
fn review_pane_selects_its_first_row_on_focus_and_moves_through_the_queue() {
    let mut ui = ui();
    assert_eq!(ui.state.selected.as_deref(), Some("t-001"));
    // Tasks → Detail → Review, as the operator tabs.
    press(&mut ui, KeyCode::Tab);
    press(&mut ui, KeyCode::Tab);
    assert_eq!(ui.state.focus, Pane::Review);
    assert_eq!(ui.state.selected.as_deref(), Some("t-005"));
    press(&mut ui, KeyCode::Down);
    assert_eq!(ui.state.selected.as_deref(), Some("t-004"));
    press(&mut ui, KeyCode::Down);
    assert_eq!(ui.state.selected.as_deref(), Some("t-004"), "the last row");
    press(&mut ui, KeyCode::Up);
    assert_eq!(ui.state.selected.as_deref(), Some("t-005"));
}

#[test]
fn clicking_a_row_selects_it() {
    let mut ui = ui();
    let table = ui.areas().pane(Pane::Tasks).unwrap();
    let click = MouseEvent {
        kind: MouseEventKind::Down(MouseButton::Left),
        column: table.x + 3,
        // Frame, column titles, then rows: the fourth row is t-004.
        row: table.y + 2 + 3,
        modifiers: KeyModifiers::NONE,
    };
    ui.on_terminal(&TermEvent::Mouse(click));
    assert_eq!(ui.state.selected.as_deref(), Some("t-004"));
}

#[test]
fn a_small_terminal_only_quits() {
    let mut ui = ui();
    ui.area = Rect::new(0, 0, 40, 10);
    assert_eq!(press(&mut ui, KeyCode::Char('j')), Effect::None);
    assert_eq!(ui.state.selected.as_deref(), Some("t-001"));
    assert_eq!(press(&mut ui, KeyCode::Char('q')), Effect::Quit);
}

#[test]
fn key_releases_are_ignored() {
    let mut ui = ui();
    let mut key = KeyEvent::new(KeyCode::Char('j'), KeyModifiers::NONE);
    key.kind = KeyEventKind::Release;
    ui.on_terminal(&TermEvent::Key(key));
    assert_eq!(ui.state.selected.as_deref(), Some("t-001"));
}

#[test]
fn detail_scrolls_but_not_past_its_end() {
    let mut ui = ui();
    ui.area = Rect::new(0, 0, 80, 24);
    select(&mut ui, "t-004");
    press(&mut ui, KeyCode::Tab);
    assert_eq!(ui.state.focus, Pane::Detail);
    // t-004 waits for a review at `draft`: the detail opens there.
    let anchored = ui.state.detail_scroll;
    assert!(anchored > 0, "opens at the held phase");
    press(&mut ui, KeyCode::Home);
    assert_eq!(ui.state.detail_scroll, 0);
    press(&mut ui, KeyCode::Down);
    assert_eq!(ui.state.detail_scroll, 1);
    press(&mut ui, KeyCode::End);
    let at_end = ui.state.detail_scroll;
    assert!(at_end >= anchored && at_end < 100, "{at_end}");
    press(&mut ui, KeyCode::Down);
    assert_eq!(ui.state.detail_scroll, at_end, "not past the end");
}

/// Wrapped lines count: at 80x24 the end of a long detail is reachable, and
/// what is drawn at the end is the detail's last line.
#[test]
fn the_end_of_a_wrapped_detail_is_reachable() {
    let mut ui = ui();
    ui.area = Rect::new(0, 0, 80, 24);
    select(&mut ui, "t-001");
    press(&mut ui, KeyCode::Tab);
    press(&mut ui, KeyCode::End);
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(80, 24)).unwrap();
    term.draw(|f| ui.draw(f, now(), &TimeZone::UTC)).unwrap();
    let screen = term.backend().to_string();
    // t-001's last phase, `edit`, ends with its output's closing brace,
    // on the row above the pane's bottom border.
    let rows: Vec<&str> = screen.lines().map(|l| l.trim_matches('"')).collect();
    let bottom = rows.iter().position(|r| r.starts_with('┗')).unwrap();
    let last_row = rows[bottom - 1].trim_matches('┃');
    assert_eq!(
        last_row.trim(),
        "}",
        "the last line shows at the end:\n{screen}"
    );
}

#[test]
fn a_fresh_overview_keeps_the_selection_and_the_rows() {
    let mut ui = ui();
    select(&mut ui, "t-004");
    press(&mut ui, KeyCode::Char('s'));
    let mut overview = RUN.with(|run| run.overview.clone());
    overview.paused = true;
    ui.resync(overview);
    settle(&mut ui);
    assert!(ui.view.paused);
    assert_eq!(ui.view.matching(), 9);
    assert_eq!(ui.state.selected.as_deref(), Some("t-004"));
    assert_eq!(row_id(&ui, 0), Some("t-005"));
}

#[test]
fn paused_runs_say_so_in_the_header() {
    let mut ui = ui();
    ui.view.paused = true;
    let mut term = ratatui::Terminal::new(ratatui::backend::TestBackend::new(160, 48)).unwrap();
    term.draw(|f| ui.draw(f, now(), &TimeZone::UTC)).unwrap();
    let screen = term.backend().to_string();
    assert!(screen.contains("⏸ PAUSED"), "{screen}");
    assert!(screen.contains("p resume"), "{screen}");
}

#[test]
fn a_filter_that_hides_the_selected_task_selects_the_first_row_shown() {
    let mut ui = ui();
    select(&mut ui, "t-001");
    press(&mut ui, KeyCode::Char('/'));
    chars(&mut ui, "t-004");
    press(&mut ui, KeyCode::Enter);
    assert_eq!(ui.state.selected.as_deref(), Some("t-004"));
    // Nothing matches: nothing is selected, so no key acts on a hidden task.
    press(&mut ui, KeyCode::Char('/'));
    chars(&mut ui, "zzz");
    press(&mut ui, KeyCode::Enter);
    assert_eq!(ui.state.selected, None);
    assert_eq!(press(&mut ui, KeyCode::Char('a')), Effect::None);
}

#[test]
fn shift_b_raises_the_selected_tasks_budget_and_tab_switches_to_the_run() {
    let mut ui = ui();
    select(&mut ui, "t-004");
    press(&mut ui, KeyCode::Char('B'));
    assert!(matches!(
        &ui.state.popup,
        Some(Popup::Prompt(Prompt::Budget { task: Some(t), run: false, .. })) if t == "t-004"
    ));
    chars(&mut ui, "5000");
    assert_eq!(
        press(&mut ui, KeyCode::Enter),
        Effect::None,
        "unclear input is not sent"
    );
    let Some(Popup::Prompt(Prompt::Budget { complaint, .. })) = &ui.state.popup else {
        panic!("the prompt stays open");
    };
    assert!(
        complaint
            .as_deref()
            .unwrap()
            .contains("\"5000\" is neither")
    );
    chars(&mut ui, " tok $2");
    let command = sent(press(&mut ui, KeyCode::Enter));
    assert_eq!(
        command,
        Command::RaiseBudget {
            task: Some("t-004".into()),
            usd: Some(2.0),
            tokens: Some(5000),
            by: Actor::engine(),
        }
    );
    assert!(ui.state.popup.is_none());

    press(&mut ui, KeyCode::Char('B'));
    press(&mut ui, KeyCode::Tab);
    chars(&mut ui, "$40");
    let Command::RaiseBudget { task, usd, .. } = sent(press(&mut ui, KeyCode::Enter)) else {
        panic!("expected a raise");
    };
    assert_eq!((task, usd), (None, Some(40.0)));
}

#[test]
fn the_budget_prompt_closes_on_esc_without_sending() {
    let mut ui = ui();
    press(&mut ui, KeyCode::Char('B'));
    chars(&mut ui, "$3");
    assert_eq!(press(&mut ui, KeyCode::Esc), Effect::None);
    assert!(ui.state.popup.is_none());
}

/// Opening the detail widens it (the focused pane takes more room): the
/// held phase is still where the detail starts, worked out at the new width.
#[test]
fn the_held_phase_stays_at_the_top_when_the_detail_widens() {
    let mut ui = ui();
    ui.area = Rect::new(0, 0, 160, 30);
    select(&mut ui, "t-004");
    press(&mut ui, KeyCode::Enter);
    assert_eq!(ui.state.focus, Pane::Detail);
    let rect = ui.areas().pane(Pane::Detail).unwrap();
    let tz = TimeZone::UTC;
    let (total, anchor) = TaskDetail {
        ctx: &ui.ctx(now(), &tz),
        focused: true,
    }
    .rows(rect.width - 2);
    // At the held phase, or as near as the end of the detail allows.
    let room = rect.height as usize - 2;
    let want = anchor.unwrap().min(total.saturating_sub(room));
    assert_eq!(ui.state.detail_scroll as usize, want);
    // Scrolled by hand, it stays where the operator put it.
    press(&mut ui, KeyCode::Home);
    assert_eq!(ui.state.detail_scroll, 0);
    press(&mut ui, KeyCode::Tab);
    assert_eq!(ui.state.detail_scroll, 0);
}
