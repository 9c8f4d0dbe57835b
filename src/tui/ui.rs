//! The dashboard between frames: the run, what the operator looks at, and
//! what keys and clicks do to it. No terminal and no engine here, so all of
//! it can be tested with plain key events; `app` does the I/O.

use crossterm::event::{Event as TermEvent, KeyEvent, KeyEventKind};
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::Frame;
use ratatui::layout::Rect;
use tui_logger::TuiWidgetState;

use crate::engine::event::{Actor, Command};
use crate::engine::handle::RunSnapshot;

use super::action::Action;
use super::keymap::Keymap;
use super::layout::{Areas, Mode};
use super::line_edit::Edit;
use super::log_pane;
use super::prompt::Outcome;
use super::rows::Rows;
use super::screen::Screen;
use super::task_detail::TaskDetail;
use super::task_table::{body, scroll_to};
use super::theme::Theme;
use super::view_model::RunView;
use super::view_state::{Pane, Popup, ViewState};
use super::widgets::Ctx;

/// What the loop should do after a key or click.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    None,
    /// Send to the engine; `label` names it in the status line.
    Send {
        command: Command,
        label: String,
    },
    Quit,
    /// Leave the engine running in the background.
    Detach,
}

pub struct Ui {
    pub view: RunView,
    pub state: ViewState,
    pub rows: Rows,
    pub keymap: Keymap,
    /// Never empty: the built-in default is always there.
    pub themes: Vec<Theme>,
    pub log: TuiWidgetState,
    /// Who the decisions are recorded as.
    pub actor: Actor,
    /// The terminal's size at the last frame, for paging and clicks.
    pub area: Rect,
}

impl Ui {
    pub fn new(view: RunView, keymap: Keymap, themes: Vec<Theme>, actor: Actor) -> Ui {
        let themes = if themes.is_empty() {
            vec![super::theme_file::built_in_default()]
        } else {
            themes
        };
        Ui {
            view,
            state: ViewState::default(),
            rows: Rows::default(),
            keymap,
            themes,
            log: log_pane::new_state(),
            actor,
            area: Rect::new(0, 0, 80, 24),
        }
    }

    pub fn theme(&self) -> &Theme {
        &self.themes[self.state.theme % self.themes.len()]
    }

    /// Replaces the run with a fresh snapshot; selection and filter stay.
    pub fn resync(&mut self, snapshot: RunSnapshot) {
        self.view = RunView::from_snapshot(snapshot);
        // The new view counts versions afresh; the old rows must not pass for current.
        self.rows = Rows::default();
    }

    pub(super) fn areas(&self) -> Areas {
        Areas::compute(self.area, self.state.focus)
    }

    /// Rows of a pane's list that fit on screen (0 when it is not shown).
    fn page(&self, pane: Pane) -> usize {
        self.areas()
            .pane(pane)
            .map_or(0, |r| body(r).height as usize)
    }

    /// Brings rows and scroll positions up to date before a frame.
    pub fn prepare(&mut self, now: Timestamp) {
        self.rows
            .refresh(&self.view, self.state.sort, &self.state.filter, now);
        let mut row = self.rows.row_of(&self.view, self.state.selected.as_deref());
        // What the table shows selected is what the keys act on: when the
        // filter hides the selected task, the first row shown takes its place.
        if row.is_none() && (self.state.selected.is_none() || self.state.focus == Pane::Tasks) {
            let first = self.rows.id_at(&self.view, 0).map(str::to_string);
            self.state.select(first.as_deref());
            row = self.rows.row_of(&self.view, self.state.selected.as_deref());
        }
        self.state.table_offset = scroll_to(
            self.state.table_offset,
            row,
            self.page(Pane::Tasks),
            self.rows.len(),
        );
        if self.state.detail_scroll > 0 {
            // Keep the end of the detail on screen: no scrolling into nothing.
            let tz = TimeZone::UTC;
            let len = TaskDetail {
                ctx: &self.ctx(now, &tz),
                focused: false,
            }
            .lines()
            .len();
            let room = self
                .areas()
                .pane(Pane::Detail)
                .map_or(1, |r| r.height.saturating_sub(2) as usize);
            let max = len.saturating_sub(room).min(u16::MAX as usize) as u16;
            self.state.detail_scroll = self.state.detail_scroll.min(max);
        }
        let ctx_pos = self.review_position();
        self.state.review_offset = scroll_to(
            self.state.review_offset,
            ctx_pos,
            self.page(Pane::Review),
            self.view.review_len(),
        );
    }

    fn review_position(&self) -> Option<usize> {
        self.view.review_position(self.state.selected.as_deref()?)
    }

    fn ctx<'a>(&'a self, now: Timestamp, tz: &'a TimeZone) -> Ctx<'a> {
        Ctx {
            view: &self.view,
            state: &self.state,
            rows: &self.rows,
            theme: self.theme(),
            keymap: &self.keymap,
            now,
            tz,
            log: &self.log,
        }
    }

    pub fn draw(&mut self, frame: &mut Frame<'_>, now: Timestamp, tz: &TimeZone) {
        self.area = frame.area();
        self.prepare(now);
        frame.render_widget(
            Screen {
                ctx: &self.ctx(now, tz),
            },
            frame.area(),
        );
    }

    pub fn on_terminal(&mut self, ev: &TermEvent) -> Effect {
        match ev {
            // Only presses: terminals that report releases would act twice.
            TermEvent::Key(key) if key.kind != KeyEventKind::Release => self.on_key(key),
            TermEvent::Mouse(m) => {
                self.on_mouse(m);
                Effect::None
            }
            TermEvent::Resize(w, h) => {
                self.area = Rect::new(0, 0, *w, *h);
                Effect::None
            }
            _ => Effect::None,
        }
    }

    pub fn on_key(&mut self, key: &KeyEvent) -> Effect {
        if let Some(Popup::Prompt(prompt)) = &mut self.state.popup {
            return match prompt.handle(key) {
                Outcome::Stay => Effect::None,
                Outcome::Close => {
                    self.state.popup = None;
                    Effect::None
                }
                Outcome::Quit => Effect::Quit,
                Outcome::Raise { task, usd, tokens } => {
                    self.state.popup = None;
                    self.raise_budget(task, usd, tokens)
                }
                Outcome::Act {
                    task,
                    action,
                    phase,
                    note,
                } => {
                    self.state.popup = None;
                    self.act(task, action, phase, note)
                }
            };
        }
        if let Some((edit, before)) = &mut self.state.filter_edit {
            match edit.handle(key) {
                Edit::Changed => self.state.filter = edit.text().to_string(),
                Edit::Same => {}
                Edit::Submit => self.state.filter_edit = None,
                Edit::Cancel => {
                    self.state.filter = std::mem::take(before);
                    self.state.filter_edit = None;
                }
            }
            return Effect::None;
        }
        let action = self.keymap.action(key);
        if let Some(Popup::Help { scroll }) = &mut self.state.popup {
            match action {
                Some(Action::Up) => *scroll = scroll.saturating_sub(1),
                Some(Action::Down) => *scroll = scroll.saturating_add(1),
                Some(Action::PageUp) => *scroll = scroll.saturating_sub(10),
                Some(Action::PageDown) => *scroll = scroll.saturating_add(10),
                Some(Action::Quit) => return self.on_action(Action::Quit),
                _ => self.state.popup = None,
            }
            return Effect::None;
        }
        if self.areas().mode == Mode::TooSmall {
            // No room to ask for confirmation; the screen says q quits.
            return match action {
                Some(Action::Quit) => Effect::Quit,
                _ => Effect::None,
            };
        }
        if self.state.focus == Pane::Log
            && let Some(ev) = action
                .and_then(log_pane::action)
                .or_else(|| action.is_none().then(|| log_pane::raw_key(key)).flatten())
        {
            self.log.transition(ev);
            return Effect::None;
        }
        match action {
            Some(a) => {
                self.state.status = None;
                self.on_action(a)
            }
            None => Effect::None,
        }
    }

    /// Moves a pane's selection (or scrolls the detail) by `by` rows.
    pub fn scroll(&mut self, pane: Pane, by: isize) {
        let step = |from: usize, len: usize| {
            (from as isize + by).clamp(0, len.saturating_sub(1) as isize) as usize
        };
        match pane {
            Pane::Tasks if !self.rows.is_empty() => {
                let at = self.rows.row_of(&self.view, self.state.selected.as_deref());
                let to = at.map_or(0, |r| step(r, self.rows.len()));
                let id = self.rows.id_at(&self.view, to).map(str::to_string);
                self.state.select(id.as_deref());
            }
            Pane::Review if self.view.review_len() > 0 => {
                let to = self
                    .review_position()
                    .map_or(0, |r| step(r, self.view.review_len()));
                let id = self.view.review_queue().nth(to).map(|e| e.task.id.clone());
                self.state.select(id.as_deref());
            }
            Pane::Detail => {
                self.state.detail_scroll =
                    (self.state.detail_scroll as isize + by).clamp(0, u16::MAX as isize) as u16;
            }
            _ => {}
        }
    }

    pub fn page_size(&self) -> isize {
        self.page(self.state.focus).max(1) as isize
    }
}

#[cfg(test)]
#[path = "ui_tests.rs"]
mod tests;
