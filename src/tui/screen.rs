//! The whole screen, drawn from a `Ctx`: header, panes (side by side or as
//! tabs), status line, and any popup on top.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::Line;
use ratatui::widgets::{Block, Tabs, Widget};

use super::header::Header;
use super::help::Help;
use super::layout::{Areas, Mode, TooSmall};
use super::log_pane::LogPane;
use super::prompt::PromptView;
use super::review_queue::ReviewQueue;
use super::status_bar::StatusBar;
use super::task_detail::TaskDetail;
use super::task_table::TaskTable;
use super::view_state::{Pane, Popup};
use super::widgets::Ctx;

pub struct Screen<'a> {
    pub ctx: &'a Ctx<'a>,
}

impl Screen<'_> {
    fn tabs(&self, area: Rect, buf: &mut Buffer) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let titles = Pane::ALL.iter().map(|p| match p {
            Pane::Review if ctx.view.review_len() > 0 => {
                Line::raw(format!("Review ({})", ctx.view.review_len()))
            }
            p => Line::raw(p.title()),
        });
        let selected = Pane::ALL.iter().position(|p| *p == ctx.state.focus);
        Tabs::new(titles)
            .select(selected)
            .style(t.text("ui.tab"))
            .highlight_style(t.style("ui.tab.active"))
            .divider("│")
            .render(area, buf);
    }
}

/// Draws one pane into its area.
pub fn pane(ctx: &Ctx<'_>, pane: Pane, area: Rect, buf: &mut Buffer) {
    let focused = ctx.state.focus == pane;
    match pane {
        Pane::Tasks => TaskTable { ctx, focused }.render(area, buf),
        Pane::Detail => TaskDetail { ctx, focused }.render(area, buf),
        Pane::Review => ReviewQueue { ctx, focused }.render(area, buf),
        Pane::Log => LogPane { ctx, focused }.render(area, buf),
    }
}

impl Widget for Screen<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let ctx = self.ctx;
        Block::new()
            .style(ctx.theme.style("ui.background"))
            .render(area, buf);
        let areas = Areas::compute(area, ctx.state.focus);
        if areas.mode == Mode::TooSmall {
            TooSmall { theme: ctx.theme }.render(area, buf);
            return;
        }
        Header { ctx }.render(areas.header, buf);
        if let Some(tabs) = areas.tabs {
            self.tabs(tabs, buf);
        }
        for (p, rect) in &areas.panes {
            pane(ctx, *p, *rect, buf);
        }
        StatusBar { ctx }.render(areas.status, buf);
        match &ctx.state.popup {
            Some(Popup::Help { scroll }) => Help {
                keymap: ctx.keymap,
                theme: ctx.theme,
                scroll: *scroll,
            }
            .render(area, buf),
            Some(Popup::Figures { text, scroll }) => super::figures_view::FiguresView {
                text,
                theme: ctx.theme,
                scroll: *scroll,
            }
            .render(area, buf),
            Some(Popup::Prompt(prompt)) => PromptView {
                prompt,
                theme: ctx.theme,
            }
            .render(area, buf),
            None => {}
        }
    }
}
