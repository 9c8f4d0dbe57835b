//! Clicks and the wheel: a click focuses a pane and picks the row under it,
//! the wheel moves through the pane under the pointer.

use crossterm::event::{MouseButton, MouseEvent, MouseEventKind};
use ratatui::layout::Position;

use super::task_table::body;
use super::ui::Ui;
use super::view_state::Pane;

impl Ui {
    pub(super) fn on_mouse(&mut self, m: &MouseEvent) {
        let at = Position::new(m.column, m.row);
        let areas = self.areas();
        let Some((pane, rect)) = areas.panes.iter().find(|(_, r)| r.contains(at)).copied() else {
            return;
        };
        match m.kind {
            MouseEventKind::Down(MouseButton::Left) => {
                self.state.focus = pane;
                let inner = body(rect);
                if !inner.contains(at) {
                    return;
                }
                let line = (at.y - inner.y) as usize;
                match pane {
                    Pane::Tasks => {
                        let id = self
                            .view
                            .row_at(self.state.table_offset + line)
                            .map(|r| r.id.clone());
                        if id.is_some() {
                            self.state.select(id.as_deref());
                        }
                    }
                    Pane::Review => {
                        let n = self.state.review_offset + line;
                        let id = self.view.review_at(n).map(|e| e.task.to_string());
                        if id.is_some() {
                            self.state.select(id.as_deref());
                        }
                    }
                    _ => {}
                }
            }
            MouseEventKind::ScrollUp => self.scroll(pane, -3),
            MouseEventKind::ScrollDown => self.scroll(pane, 3),
            _ => {}
        }
    }
}
