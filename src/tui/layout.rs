//! Where things go. Wide terminals show every pane at once; an 80x24 shows
//! one pane at a time under a tab bar; anything smaller than the minimum says
//! so instead of drawing a mess.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::Line;
use ratatui::widgets::{Paragraph, Widget, Wrap};

use super::theme::Theme;
use super::view_state::Pane;

pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 16;
/// From this size up, panes sit side by side.
pub const WIDE_WIDTH: u16 = 120;
pub const WIDE_HEIGHT: u16 = 32;

pub const HEADER_HEIGHT: u16 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    TooSmall,
    Tabs,
    Wide,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Areas {
    pub mode: Mode,
    pub header: Rect,
    /// The tab bar, in tab mode.
    pub tabs: Option<Rect>,
    /// The panes on screen: all four when wide, the focused one in tabs.
    pub panes: Vec<(Pane, Rect)>,
    pub status: Rect,
}

impl Areas {
    pub fn compute(area: Rect, focus: Pane) -> Areas {
        let mode = if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            Mode::TooSmall
        } else if area.width >= WIDE_WIDTH && area.height >= WIDE_HEIGHT {
            Mode::Wide
        } else {
            Mode::Tabs
        };
        if mode == Mode::TooSmall {
            return Areas {
                mode,
                header: Rect::default(),
                tabs: None,
                panes: Vec::new(),
                status: Rect::default(),
            };
        }
        let tab_rows = u16::from(mode == Mode::Tabs);
        let [header, tabs, body, status] = Layout::vertical([
            Constraint::Length(HEADER_HEIGHT),
            Constraint::Length(tab_rows),
            Constraint::Fill(1),
            Constraint::Length(1),
        ])
        .areas(area);
        let panes = match mode {
            Mode::Wide => {
                let [left, right] =
                    Layout::horizontal([Constraint::Percentage(60), Constraint::Percentage(40)])
                        .areas(body);
                let split = [Constraint::Percentage(65), Constraint::Percentage(35)];
                let [tasks, review] = Layout::vertical(split).areas(left);
                let [detail, log] = Layout::vertical(split).areas(right);
                vec![
                    (Pane::Tasks, tasks),
                    (Pane::Detail, detail),
                    (Pane::Review, review),
                    (Pane::Log, log),
                ]
            }
            _ => vec![(focus, body)],
        };
        Areas {
            mode,
            header,
            tabs: (mode == Mode::Tabs).then_some(tabs),
            panes,
            status,
        }
    }

    pub fn pane(&self, pane: Pane) -> Option<Rect> {
        self.panes.iter().find(|(p, _)| *p == pane).map(|(_, r)| *r)
    }
}

/// Shown instead of the dashboard when the terminal is below the minimum.
pub struct TooSmall<'a> {
    pub theme: &'a Theme,
}

pub fn too_small_message(width: u16, height: u16) -> String {
    format!("terminal too small: need at least {MIN_WIDTH}x{MIN_HEIGHT}, have {width}x{height}")
}

impl Widget for TooSmall<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let text = too_small_message(area.width, area.height);
        let lines = vec![
            Line::styled(text, self.theme.text("ui.warning")),
            Line::raw("q quits"),
        ];
        // Wrapped lines of a narrow terminal: about a third of the height down.
        let top = area.height.saturating_sub(4) / 3;
        let rect = Rect {
            y: area.y + top,
            height: area.height - top,
            ..area
        };
        Paragraph::new(lines)
            .centered()
            .wrap(Wrap { trim: true })
            .render(rect, buf);
    }
}

#[cfg(test)]
mod tests {
    use ratatui::Terminal;
    use ratatui::backend::TestBackend;

    use super::*;

    #[test]
    fn modes_by_size() {
        let at = |w, h| Areas::compute(Rect::new(0, 0, w, h), Pane::Review);
        assert_eq!(at(59, 24).mode, Mode::TooSmall);
        assert_eq!(at(80, 15).mode, Mode::TooSmall);
        assert_eq!(at(60, 16).mode, Mode::Tabs);
        assert_eq!(at(80, 24).mode, Mode::Tabs);
        assert_eq!(at(200, 31).mode, Mode::Tabs);
        assert_eq!(at(120, 32).mode, Mode::Wide);
    }

    #[test]
    fn tabs_show_only_the_focused_pane_and_wide_shows_all() {
        let tabs = Areas::compute(Rect::new(0, 0, 80, 24), Pane::Review);
        assert_eq!(tabs.panes.len(), 1);
        assert_eq!(tabs.pane(Pane::Review), Some(Rect::new(0, 4, 80, 19)));
        assert_eq!(tabs.tabs, Some(Rect::new(0, 3, 80, 1)));
        let wide = Areas::compute(Rect::new(0, 0, 160, 48), Pane::Tasks);
        assert_eq!(wide.panes.len(), 4);
        assert_eq!(wide.status, Rect::new(0, 47, 160, 1));
        assert!(wide.tabs.is_none());
    }

    #[test]
    fn a_small_terminal_says_what_it_needs() {
        let mut term = Terminal::new(TestBackend::new(40, 10)).unwrap();
        let theme = Theme::default();
        term.draw(|f| f.render_widget(TooSmall { theme: &theme }, f.area()))
            .unwrap();
        let screen = term.backend().to_string();
        assert!(screen.contains("terminal too small: need at"), "{screen}");
        assert!(screen.contains("60x16,"), "{screen}");
        assert!(screen.contains("have 40x10"), "{screen}");
    }
}
