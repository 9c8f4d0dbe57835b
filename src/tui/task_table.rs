//! The task list. Only the rows on screen are built, so ten thousand tasks
//! cost no more to draw than thirty.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Row, Table, Widget};

use super::format::{cost_short, duration, fit, tokens};
use super::rows::row_elapsed;
use super::view_state::{Pane, SortColumn};
use super::widgets::{Ctx, pane_block, progress, state_label};

pub struct TaskTable<'a> {
    pub ctx: &'a Ctx<'a>,
    pub focused: bool,
}

/// Cells of the progress bar itself; " 2/3" follows it.
const BAR: usize = 6;

/// Columns in the order shown, with their width and the sort they stand
/// for. Narrow panes drop the later-listed `optional` ones first.
struct Column {
    title: &'static str,
    width: u16,
    sort: SortColumn,
    /// Dropped, lowest first, when the pane is too narrow. 0 always stays.
    drop_rank: u8,
}

fn columns(id_width: u16, phase_width: u16) -> [Column; 8] {
    let c = |title, width, sort, drop_rank| Column {
        title,
        width,
        sort,
        drop_rank,
    };
    [
        c("ID", id_width, SortColumn::Id, 0),
        c("State", 17, SortColumn::State, 0),
        c("Phase", phase_width, SortColumn::Phase, 0),
        c("Progress", BAR as u16 + 4, SortColumn::Progress, 4),
        c("Att", 3, SortColumn::Attempts, 1),
        c("Tokens", 7, SortColumn::Tokens, 2),
        c("Cost", 9, SortColumn::Cost, 5),
        c("Elapsed", 7, SortColumn::Elapsed, 3),
    ]
}

/// Scroll offset that keeps `selected` on screen, moving as little as possible.
pub fn scroll_to(offset: usize, selected: Option<usize>, height: usize, len: usize) -> usize {
    let max = len.saturating_sub(height);
    let offset = offset.min(max);
    match selected {
        Some(s) if s < offset => s,
        Some(s) if height > 0 && s >= offset + height => s + 1 - height,
        _ => offset,
    }
}

/// The rows area inside the frame and below the column titles.
pub fn body(area: Rect) -> Rect {
    Rect {
        x: area.x + 1,
        y: area.y + 2,
        width: area.width.saturating_sub(2),
        height: area.height.saturating_sub(3),
    }
}

impl TaskTable<'_> {
    fn title(&self) -> Line<'static> {
        let ctx = self.ctx;
        let (shown, all) = (ctx.view.matching(), ctx.view.len());
        let mut title = format!(" {} ", Pane::Tasks.title());
        if ctx.state.filter.is_empty() {
            title.push_str(&format!("{all} "));
        } else {
            title.push_str(&format!(
                "{shown} of {all} matching {:?} ",
                ctx.state.filter
            ));
        }
        let dir = if ctx.state.sort.descending {
            "▼"
        } else {
            "▲"
        };
        title.push_str(&format!("· sort {} {dir} ", ctx.state.sort.column.name()));
        if !ctx.state.marks.is_empty() {
            title.push_str(&format!(
                "· {} marked: a r R c act on them, esc clears ",
                ctx.state.marks.len()
            ));
        }
        Line::raw(title)
    }
}

impl Widget for TaskTable<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let ctx = self.ctx;
        let t = ctx.theme;
        let inner = body(area);
        let height = inner.height as usize;
        let len = ctx.view.matching();
        let selected_row = ctx
            .state
            .selected
            .as_deref()
            .and_then(|id| ctx.view.row_of(id));
        let offset = scroll_to(ctx.state.table_offset, selected_row, height, len);
        let visible: Vec<_> = (offset..(offset + height).min(len))
            .filter_map(|pos| ctx.view.row_at(pos).map(|r| (pos, r)))
            .collect();

        let id_width = visible
            .iter()
            .map(|(_, r)| r.id.chars().count() + usize::from(ctx.state.marks.contains(&r.id)))
            .max()
            .unwrap_or(2)
            .clamp(2, 24) as u16;
        let phase_width = ctx
            .view
            .phases
            .iter()
            .map(|p| p.chars().count())
            .max()
            .unwrap_or(5)
            .clamp(5, 16) as u16;
        let mut cols: Vec<Column> = columns(id_width, phase_width).into_iter().collect();
        // Drop optional columns until the rest fit (one space between columns).
        let fits =
            |cols: &[Column]| cols.iter().map(|c| c.width + 1).sum::<u16>() <= inner.width + 1;
        while !fits(&cols) {
            let Some(pos) = cols
                .iter()
                .enumerate()
                .filter(|(_, c)| c.drop_rank > 0)
                .min_by_key(|(_, c)| c.drop_rank)
                .map(|(i, _)| i)
            else {
                break;
            };
            cols.remove(pos);
        }

        let sort = ctx.state.sort;
        let header = Row::new(cols.iter().map(|c| {
            let mark = if c.sort == sort.column {
                if sort.descending { "▼" } else { "▲" }
            } else {
                ""
            };
            Cell::from(format!("{}{mark}", c.title))
        }))
        .style(t.text("ui.table.header"));

        let rows = visible.iter().map(|&(pos, task)| {
            let cells = cols.iter().map(|c| match c.sort {
                SortColumn::Id => {
                    if ctx.state.marks.contains(&task.id) {
                        Cell::from(Span::styled(
                            fit(&format!("●{}", task.id), c.width as usize),
                            t.style("ui.badge"),
                        ))
                    } else {
                        Cell::from(fit(&task.id, c.width as usize))
                    }
                }
                SortColumn::State => {
                    if crate::report::list::interrupted(task.state, ctx.state.link.stopped) {
                        // No engine runs it: it resumes on the next `baton run`.
                        Cell::from(Span::styled("↯ interrupted", t.text("state.retrying")))
                    } else {
                        Cell::from(Span::styled(
                            state_label(task.state.as_str()),
                            t.task_state(task.state),
                        ))
                    }
                }
                SortColumn::Phase => {
                    Cell::from(fit(task.phase.as_deref().unwrap_or("-"), c.width as usize))
                }
                SortColumn::Progress => {
                    let (done, total) = (task.phases_done as usize, task.phases_total as usize);
                    let mut spans = progress(done, total, BAR, t);
                    spans.push(Span::raw(format!(" {done}/{total}")));
                    Cell::from(Line::from(spans))
                }
                SortColumn::Attempts => {
                    Cell::from(Line::raw(task.attempts.to_string()).right_aligned())
                }
                SortColumn::Tokens => Cell::from(Line::raw(tokens(task.tokens)).right_aligned()),
                SortColumn::Cost => {
                    let cost = task.cost();
                    let style = if cost.is_known() {
                        t.text("ui.text")
                    } else {
                        t.text("cost.unknown")
                    };
                    Cell::from(Line::styled(cost_short(cost), style).right_aligned())
                }
                SortColumn::Elapsed => {
                    Cell::from(Line::raw(duration(row_elapsed(task, ctx.now))).right_aligned())
                }
                SortColumn::Submitted => Cell::from(""),
            });
            let mut row = Row::new(cells);
            if Some(pos) == selected_row {
                let scope = if self.focused {
                    "ui.selection"
                } else {
                    "ui.selection.inactive"
                };
                row = row.style(t.style(scope));
            }
            row
        });

        let widths: Vec<Constraint> = cols.iter().map(|c| Constraint::Length(c.width)).collect();
        Table::new(rows, widths)
            .header(header)
            .block(pane_block(self.title(), self.focused, t))
            .style(t.text("ui.text"))
            .render(area, buf);
        if len == 0 {
            let msg = if ctx.view.is_empty() {
                "no tasks yet".to_string()
            } else {
                format!(
                    "no task matches {:?}  (esc clears the filter)",
                    ctx.state.filter
                )
            };
            Line::styled(msg, t.text("ui.text.dim")).render(inner, buf);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrolling_keeps_the_selection_in_view() {
        assert_eq!(scroll_to(0, Some(3), 10, 100), 0);
        assert_eq!(scroll_to(0, Some(12), 10, 100), 3);
        assert_eq!(scroll_to(20, Some(12), 10, 100), 12);
        assert_eq!(scroll_to(95, None, 10, 100), 90);
        assert_eq!(scroll_to(5, Some(0), 10, 3), 0);
    }
}
