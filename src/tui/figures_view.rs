//! The figures view (`$`): per phase, agent and model, attempts, failures
//! by class, p50/p95 duration, tokens, dollars, dollars per completed task,
//! and the projected cost to finish beside the run's budget — the same
//! report `baton stats` prints, read from the store when asked.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget};

use super::theme::Theme;
use super::widgets::centered;

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
            .unwrap_or(40)
            .min(area.width.saturating_sub(2));
        let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
        let rect = centered(area, width, height);
        Clear.render(rect, buf);
        let block = Block::bordered()
            .border_style(self.theme.style("ui.popup.border"))
            .title(Span::styled(
                " Figures · esc closes · ↑↓ scroll · baton stats prints the same ",
                self.theme.style("ui.title.focus"),
            ))
            .style(self.theme.style("ui.popup"));
        Paragraph::new(lines)
            .block(block)
            .scroll((self.scroll, 0))
            .render(rect, buf);
    }
}
