//! The figures view (`$`): per phase, agent and model, attempts, failures
//! by class, p50/p95 duration, tokens, dollars, dollars per completed task,
//! and the projected cost to finish beside the run's budget — the same
//! report `baton stats` prints, read from the store when asked.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::Widget;

use super::theme::Theme;
use super::widgets::scrolled_popup;

pub struct FiguresView<'a> {
    pub text: &'a str,
    pub theme: &'a Theme,
    pub scroll: u16,
}

impl Widget for FiguresView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let lines: Vec<Line<'static>> = self
            .text
            .lines()
            .map(|l| Line::raw(l.to_string()))
            .collect();
        let width = lines
            .iter()
            .map(|l| l.width() as u16 + 4)
            .max()
            .unwrap_or(40);
        scrolled_popup(
            lines,
            " Figures · esc closes · ↑↓ scroll · baton stats prints the same ",
            width,
            self.scroll,
            self.theme,
            area,
            buf,
        );
    }
}
