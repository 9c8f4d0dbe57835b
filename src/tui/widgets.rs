//! Pieces every view uses: the render context, pane frames, state labels and
//! progress bars.

use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, BorderType, Clear, Paragraph, Widget};

use super::keymap::Keymap;
use super::theme::{Theme, state_symbol};
use super::view_model::RunView;
use super::view_state::ViewState;

/// Everything a frame is drawn from. Drawing reads it and changes nothing,
/// so the same context always draws the same screen.
pub struct Ctx<'a> {
    pub view: &'a RunView,
    pub state: &'a ViewState,
    pub theme: &'a Theme,
    pub keymap: &'a Keymap,
    /// The clock, passed in so that tests can fix it.
    pub now: Timestamp,
    pub tz: &'a TimeZone,
    pub log: &'a tui_logger::TuiWidgetState,
    pub feed: &'a super::run_feed::RunFeed,
}

/// A bordered pane; the focused one is drawn so it stands out even without colour.
pub fn pane_block<'a>(title: impl Into<Line<'a>>, focused: bool, theme: &Theme) -> Block<'a> {
    let (border, title_style, kind) = if focused {
        (
            theme.style("ui.border.focus"),
            theme.style("ui.title.focus"),
            BorderType::Thick,
        )
    } else {
        (
            theme.style("ui.border"),
            theme.style("ui.title"),
            BorderType::Plain,
        )
    };
    Block::bordered()
        .border_type(kind)
        .border_style(border)
        .title(title.into().style(title_style))
}

/// "✓ completed": a state by symbol and name.
pub fn state_label(state: &str) -> String {
    format!("{} {state}", state_symbol(state))
}

/// Lines in a bordered box over the middle of `area`, `width` wide and as
/// tall as they need (within the screen), scrolled down `scroll` rows: the
/// help and the figures view.
pub fn scrolled_popup(
    lines: Vec<Line<'static>>,
    title: &str,
    width: u16,
    scroll: u16,
    theme: &Theme,
    area: Rect,
    buf: &mut Buffer,
) {
    let height = (lines.len() as u16 + 2).min(area.height.saturating_sub(2));
    let rect = centered(area, width.min(area.width.saturating_sub(2)), height);
    Clear.render(rect, buf);
    let block = Block::bordered()
        .border_style(theme.style("ui.popup.border"))
        .title(Span::styled(
            title.to_string(),
            theme.style("ui.title.focus"),
        ))
        .style(theme.style("ui.popup"));
    Paragraph::new(lines)
        .block(block)
        .scroll((scroll, 0))
        .render(rect, buf);
}

/// A rectangle of at most `width` x `height` in the middle of `area`.
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

/// A bar of `width` cells, `done` of `total` filled: "███░░".
pub fn progress<'a>(done: usize, total: usize, width: usize, theme: &Theme) -> Vec<Span<'a>> {
    let filled = if total == 0 {
        0
    } else {
        (done * width).div_ceil(total).min(width)
    };
    vec![
        Span::styled("█".repeat(filled), theme.text("ui.progress")),
        Span::styled("░".repeat(width - filled), theme.text("ui.progress.empty")),
    ]
}

/// A key and what it does, for hint lines: "a approve".
pub fn hint<'a>(key: String, what: &'a str, theme: &Theme) -> [Span<'a>; 3] {
    [
        Span::styled(key, theme.style("ui.key")),
        Span::raw(" "),
        Span::styled(what, Style::default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_fills_in_proportion_and_shows_any_start() {
        let t = Theme::default();
        let text = |d, n| {
            progress(d, n, 6, &t)
                .iter()
                .map(|s| s.content.to_string())
                .collect::<String>()
        };
        assert_eq!(text(0, 3), "░░░░░░");
        assert_eq!(text(1, 3), "██░░░░");
        assert_eq!(text(3, 3), "██████");
        assert_eq!(text(1, 7), "█░░░░░");
        assert_eq!(text(0, 0), "░░░░░░");
    }

    #[test]
    fn centered_rect_stays_inside() {
        let area = Rect::new(0, 0, 80, 24);
        assert_eq!(centered(area, 40, 10), Rect::new(20, 7, 40, 10));
        assert_eq!(centered(area, 100, 30), area);
    }
}
