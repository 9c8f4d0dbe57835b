//! Tasks waiting for a person, the longest waiting first: what, where, why,
//! and for how long.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

use crate::engine::state::HoldKind;

use super::format::{cost_short, duration, first_line, fit_words};
use super::task_table::{body, scroll_to};
use super::theme::state_symbol;
use super::widgets::{Ctx, pane_block};

pub struct ReviewQueue<'a> {
    pub ctx: &'a Ctx<'a>,
    pub focused: bool,
}

impl Widget for ReviewQueue<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let ctx = self.ctx;
        let t = ctx.theme;
        let inner = body(area);
        let height = inner.height as usize;
        let len = ctx.view.review_len();
        let selected = ctx
            .state
            .selected
            .as_deref()
            .and_then(|id| ctx.view.review_position(id));
        let offset = scroll_to(ctx.state.review_offset, selected, height, len);
        let visible: Vec<_> = (offset..(offset + height).min(len))
            .filter_map(|pos| ctx.view.review_at(pos).map(|e| (pos, e)))
            .collect();
        let id_width = visible
            .iter()
            .map(|(_, e)| e.task.chars().count())
            .max()
            .unwrap_or(4)
            .clamp(4, 24);
        // What the Why column has left: the others, and a space between each.
        let why_width = (inner.width as usize).saturating_sub(id_width + 9 + 12 + 7 + 9 + 5);
        let rows = visible.into_iter().map(|(n, e)| {
            let (state, what) = match e.kind {
                HoldKind::Review => ("awaiting_review", "review"),
                HoldKind::Blocked => ("blocked", "blocked"),
            };
            let kind = Span::styled(
                format!("{} {what}", state_symbol(state)),
                t.task_state(e.kind.state()),
            );
            let waited = duration(ctx.now.duration_since(e.since));
            let row = Row::new([
                Cell::from(e.task.to_string()),
                Cell::from(kind),
                Cell::from(e.phase.to_string()),
                Cell::from(Line::raw(waited).right_aligned()),
                Cell::from(
                    Line::raw(
                        ctx.view
                            .queue_spent(e.task)
                            .map(|(_, cost)| cost_short(cost))
                            .unwrap_or_default(),
                    )
                    .right_aligned(),
                ),
                // Cut with a mark: the detail shows the reason whole.
                Cell::from(fit_words(&why(&e), why_width, "…")),
            ]);
            if Some(n) == selected {
                let scope = if self.focused {
                    "ui.selection"
                } else {
                    "ui.selection.inactive"
                };
                row.style(t.style(scope))
            } else {
                row
            }
        });
        let widths = [
            Constraint::Length(id_width as u16),
            Constraint::Length(9),
            Constraint::Length(12),
            Constraint::Length(7),
            Constraint::Length(9),
            Constraint::Fill(1),
        ];
        let header = Row::new(["Task", "Waiting", "Phase", "Waited", "Spent", "Why"])
            .style(t.text("ui.table.header"));
        let title = format!(" Review queue · {len} waiting ");
        Table::new(rows, widths)
            .header(header)
            .block(pane_block(title, self.focused, t))
            .style(t.text("ui.text"))
            .render(area, buf);
        if len == 0 {
            Line::styled("nothing waiting for you", t.text("ui.text.dim")).render(inner, buf);
        }
    }
}

/// The Why cell: the agent's severity first, so it stands out in a cut
/// column, then the reason's first line and what the agent tried.
fn why(e: &super::view_model::ReviewEntry<'_>) -> String {
    e.escalation.around(
        first_line(e.reason),
        |s| s.as_str().to_uppercase(),
        str::to_string,
    )
}
