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
use crate::engine::handle::RunOverview;

use super::action::Action;
use super::fetch::Want;
use super::keymap::Keymap;
use super::layout::{Areas, Mode};
use super::line_edit::{Edit, LineEdit};
use super::log_pane;
use super::prompt::Outcome;
use super::rows;
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
    /// Send each, in order.
    SendAll(Vec<(Command, String)>),
    /// Read the run's figures for the figures view.
    Figures,
    /// Ask the store which tasks the command line's filter keeps, then
    /// confirm the action over them.
    Match(super::bulk::CommandLine),
}

pub struct Ui {
    pub view: RunView,
    pub state: ViewState,
    pub keymap: Keymap,
    /// Never empty: the built-in default is always there.
    pub themes: Vec<Theme>,
    pub log: TuiWidgetState,
    /// The run's events and warnings, for the log pane.
    pub feed: super::run_feed::RunFeed,
    /// Who the decisions are recorded as.
    pub actor: Actor,
    /// The terminal's size at the last frame, for paging and clicks.
    pub area: Rect,
    /// The table's sort and filter at the last frame: a new one starts at the top.
    order: (super::view_state::Sort, String),
    /// The clock at the last frame.
    clock: Timestamp,
}

/// Rows read either side of the screen even when a pane is hidden or tiny.
const MIN_WINDOW: usize = 20;

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
            keymap,
            themes,
            log: log_pane::new_state(),
            feed: Default::default(),
            actor,
            area: Rect::new(0, 0, 80, 24),
            order: Default::default(),
            clock: Timestamp::UNIX_EPOCH,
        }
    }

    pub fn theme(&self) -> &Theme {
        &self.themes[self.state.theme % self.themes.len()]
    }

    /// Takes a fresh overview of the run; selection and filter stay.
    pub fn resync(&mut self, overview: RunOverview) {
        self.view.set_overview(overview);
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

    /// What to read from the store for the screen as it is: the table's
    /// rows a screenful either side of the scroll position (so that moving
    /// a page never waits), a page of the queue likewise, the selected task.
    pub fn want(&self) -> Want {
        let rows = self.page(Pane::Tasks).max(MIN_WINDOW);
        let queue = self.page(Pane::Review).max(MIN_WINDOW);
        Want {
            table: rows::query(
                self.state.sort,
                &self.state.filter,
                self.state.table_offset.saturating_sub(rows),
                3 * rows,
            ),
            queue_offset: self.state.review_offset.saturating_sub(queue) as u64,
            queue_limit: 3 * queue as u64,
            selected: self.state.selected.clone(),
            finished_since: (!self.view.has_throughput())
                .then(|| self.view.throughput_since(self.clock)),
        }
    }

    /// Carries out a key that waited for the selected task to be read.
    pub fn on_task_read(&mut self) -> Effect {
        match (self.state.waiting_for_task, self.state.selected.as_deref()) {
            (Some(action), Some(id)) if self.view.task(id).is_some() => {
                self.state.waiting_for_task = None;
                self.on_action(action)
            }
            _ => Effect::None,
        }
    }

    /// Whether the page read is for the table's current sort and filter.
    fn page_is_current(&self) -> bool {
        let (have, want) = (&self.view.page().want.table, self.want().table);
        (&have.sort, have.reverse, &have.text, &have.filter)
            == (&want.sort, want.reverse, &want.text, &want.filter)
    }

    /// Brings selection and scroll positions up to date before a frame.
    pub fn prepare(&mut self, now: Timestamp) {
        self.clock = now;
        let order = (self.state.sort, self.state.filter.trim().to_string());
        if self.order != order {
            // A new order: back to the top of it.
            self.order = order;
            self.state.table_cursor = 0;
            self.state.table_offset = 0;
        }
        let len = self.view.matching();
        let current = self.page_is_current();
        let mut row = self
            .state
            .selected
            .as_deref()
            .filter(|_| current)
            .and_then(|id| self.view.row_of(id));
        // What the table shows selected is what the keys act on: when the
        // selected task has left its row (another sort, a filter, the run
        // moved on), the task now at the cursor's row takes its place.
        if current
            && row.is_none()
            && (self.state.selected.is_none() || self.state.focus == Pane::Tasks)
        {
            let at = self.state.table_cursor.min(len.saturating_sub(1));
            if let Some(r) = self.view.row_at(at) {
                let id = r.id.clone();
                self.state.select(Some(&id));
                row = Some(at);
            } else if len == 0 {
                // Nothing passes the filter: nothing selected, so no key
                // acts on a task the table does not show.
                self.state.select(None);
            }
        }
        if let Some(r) = row {
            self.state.table_cursor = r;
        }
        let cursor = row.or((self.state.focus == Pane::Tasks).then_some(self.state.table_cursor));
        self.state.table_offset =
            scroll_to(self.state.table_offset, cursor, self.page(Pane::Tasks), len);
        if self.state.focus == Pane::Review
            && self.review_position().is_none()
            && let Some(e) = self.view.review_at(
                self.state
                    .review_cursor
                    .min(self.view.review_len().saturating_sub(1)),
            )
        {
            let id = e.task.to_string();
            self.state.select(Some(&id));
        }
        if let Some(r) = self.review_position() {
            self.state.review_cursor = r;
        }
        self.settle_detail(now);
        let pos = self
            .review_position()
            .or((self.state.focus == Pane::Review).then_some(self.state.review_cursor));
        self.state.review_offset = scroll_to(
            self.state.review_offset,
            pos,
            self.page(Pane::Review),
            self.view.review_len(),
        );
    }

    /// Keeps the detail's scroll within what it shows, counted in wrapped
    /// rows; a newly selected task that waits for a person opens at the
    /// phase it waits at (its output and the reason), not at its top.
    fn settle_detail(&mut self, now: Timestamp) {
        // Following the held phase until the operator scrolls: worked out
        // again at every frame, as the pane's width changes with the focus
        // and the layout, and the hold with the run.
        let follow = self.state.detail_anchor
            && self
                .state
                .selected
                .as_deref()
                .and_then(|id| self.view.task(id))
                .is_some_and(|t| !t.holds.is_empty());
        if self.state.detail_scroll == 0 && !follow {
            return;
        }
        let Some(rect) = self.areas().pane(Pane::Detail) else {
            return;
        };
        let tz = TimeZone::UTC;
        let (width, room) = (
            rect.width.saturating_sub(2),
            rect.height.saturating_sub(2) as usize,
        );
        let (total, anchor) = TaskDetail {
            ctx: &self.ctx(now, &tz),
            focused: false,
        }
        .rows(width);
        if follow && let Some(row) = anchor {
            self.state.detail_scroll = row.min(u16::MAX as usize) as u16;
        }
        let max = total.saturating_sub(room).min(u16::MAX as usize) as u16;
        self.state.detail_scroll = self.state.detail_scroll.min(max);
    }

    fn review_position(&self) -> Option<usize> {
        self.view.review_position(self.state.selected.as_deref()?)
    }

    fn ctx<'a>(&'a self, now: Timestamp, tz: &'a TimeZone) -> Ctx<'a> {
        Ctx {
            view: &self.view,
            state: &self.state,
            theme: self.theme(),
            keymap: &self.keymap,
            now,
            tz,
            log: &self.log,
            feed: &self.feed,
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
                Outcome::Detach => {
                    self.state.popup = None;
                    Effect::Detach
                }
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
                Outcome::ActAll { action, tasks } => {
                    self.state.popup = None;
                    self.state.marks.clear();
                    self.act_all(action, tasks)
                }
            };
        }
        if let Some(edit) = &mut self.state.command_edit {
            if key.code == crossterm::event::KeyCode::Tab {
                if let Some(done) = super::bulk::complete(edit.text(), &self.view.phases) {
                    *edit = LineEdit::new(&done);
                }
                return Effect::None;
            }
            match edit.handle(key) {
                Edit::Changed | Edit::Same => {}
                Edit::Cancel => self.state.command_edit = None,
                Edit::Submit => {
                    let line = edit.text().to_string();
                    match super::bulk::parse(&line) {
                        Ok(cmd) => {
                            self.state.command_edit = None;
                            self.state
                                .info(format!("finding the tasks {:?} keeps…", cmd.filter_text));
                            return Effect::Match(cmd);
                        }
                        // The line stays, to be fixed.
                        Err(why) => self.state.error(why),
                    }
                }
            }
            return Effect::None;
        }
        if let Some((edit, before)) = &mut self.state.filter_edit {
            // The log pane's filter while it has the focus, else the table's.
            let target = if self.state.focus == Pane::Log {
                &mut self.state.log_filter
            } else {
                &mut self.state.filter
            };
            match edit.handle(key) {
                Edit::Changed => *target = edit.text().to_string(),
                Edit::Same => {}
                Edit::Submit => self.state.filter_edit = None,
                Edit::Cancel => {
                    *target = std::mem::take(before);
                    self.state.filter_edit = None;
                }
            }
            return Effect::None;
        }
        let action = self.keymap.action(key);
        // The help and the figures view scroll; any other key closes them.
        if let Some(Popup::Figures { scroll, .. } | Popup::Help { scroll }) = &mut self.state.popup
        {
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
            && let Some(effect) = self.on_log_key(key, action)
        {
            return effect;
        }
        match action {
            Some(a) => {
                self.state.status = None;
                self.state.waiting_for_task = None;
                self.on_action(a)
            }
            None => Effect::None,
        }
    }

    /// One command per task, the same decision for each.
    pub fn act_all(&mut self, action: crate::engine::event::Action, tasks: Vec<String>) -> Effect {
        let n = tasks.len();
        self.state.info(format!(
            "{} {n} task{}…",
            action.name(),
            if n == 1 { "" } else { "s" }
        ));
        Effect::SendAll(
            tasks
                .into_iter()
                .map(|task| {
                    let label = format!("{} {task}", action.name());
                    let command = Command::Act {
                        task,
                        action: action.clone(),
                        phase: None,
                        note: None,
                        by: self.actor.clone(),
                    };
                    (command, label)
                })
                .collect(),
        )
    }

    /// The store said which tasks a command line's filter keeps: confirm.
    pub fn confirm_matched(&mut self, cmd: super::bulk::CommandLine, tasks: Vec<String>) {
        if tasks.is_empty() {
            self.state
                .error(format!("no task matches {:?}", cmd.filter_text));
            return;
        }
        self.state.status = None;
        self.state.popup = Some(super::view_state::Popup::Prompt(
            super::prompt::Prompt::Confirm(super::prompt::ConfirmKind::Bulk {
                action: cmd.action,
                tasks,
                what: format!("matching {}", cmd.filter_text),
            }),
        ));
    }

    /// Whether the log pane is on screen.
    pub fn log_shown(&self) -> bool {
        self.areas().pane(Pane::Log).is_some()
    }

    /// Keys the log pane takes for itself; `None` passes the key on.
    fn on_log_key(&mut self, key: &KeyEvent, action: Option<Action>) -> Option<Effect> {
        if key.code == crossterm::event::KeyCode::Char('L') {
            self.state.log_own = !self.state.log_own;
            self.state.log_scroll = 0;
            return Some(Effect::None);
        }
        if self.state.log_own {
            // baton's own log: tui-logger's keys.
            let ev = action
                .and_then(log_pane::action)
                .or_else(|| action.is_none().then(|| log_pane::raw_key(key)).flatten())?;
            self.log.transition(ev);
            return Some(Effect::None);
        }
        let page = self.page(Pane::Log).max(1);
        let scroll = &mut self.state.log_scroll;
        match action? {
            Action::Up => *scroll = scroll.saturating_add(1),
            Action::Down => *scroll = scroll.saturating_sub(1),
            Action::PageUp => *scroll = scroll.saturating_add(page),
            Action::PageDown => *scroll = scroll.saturating_sub(page),
            Action::Top => *scroll = usize::MAX / 2,
            Action::Bottom => *scroll = 0,
            Action::Back if *scroll > 0 => *scroll = 0,
            Action::Back if !self.state.log_filter.is_empty() => self.state.log_filter.clear(),
            Action::Filter => {
                let current = self.state.log_filter.clone();
                self.state.filter_edit = Some((LineEdit::new(&current), current));
            }
            _ => return None,
        }
        Some(Effect::None)
    }

    /// Moves a pane's selection (or scrolls the detail) by `by` rows.
    pub fn scroll(&mut self, pane: Pane, by: isize) {
        let step = |from: usize, len: usize| {
            (from as isize + by).clamp(0, len.saturating_sub(1) as isize) as usize
        };
        match pane {
            Pane::Tasks if self.view.matching() > 0 => {
                let at = self
                    .state
                    .selected
                    .as_deref()
                    .and_then(|id| self.view.row_of(id))
                    .unwrap_or(self.state.table_cursor);
                let to = step(at, self.view.matching());
                self.state.table_cursor = to;
                // A row not read yet is selected when its page arrives.
                let id = self.view.row_at(to).map(|r| r.id.clone());
                self.state.select(id.as_deref());
                self.state.table_offset = scroll_to(
                    self.state.table_offset,
                    Some(to),
                    self.page(Pane::Tasks),
                    self.view.matching(),
                );
            }
            Pane::Review if self.view.review_len() > 0 => {
                let at = self.review_position().unwrap_or(self.state.review_cursor);
                let to = step(at, self.view.review_len());
                self.state.review_cursor = to;
                let id = self.view.review_at(to).map(|e| e.task.to_string());
                self.state.select(id.as_deref());
                self.state.review_offset = scroll_to(
                    self.state.review_offset,
                    Some(to),
                    self.page(Pane::Review),
                    self.view.review_len(),
                );
            }
            Pane::Detail => {
                // The operator scrolls: no opening at the held phase now.
                self.state.detail_anchor = false;
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
