//! The top three lines: which run, how long, how many tasks in each state,
//! what it has used, and whether anyone is needed.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use crate::engine::budget;
use crate::engine::state::TaskState;

use super::format::{clock, duration, fit, tokens};
use super::theme::state_symbol;
use super::widgets::Ctx;

pub struct Header<'a> {
    pub ctx: &'a Ctx<'a>,
}

/// Short names for narrow terminals; every state keeps a word, not just a colour.
fn short(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => "pend",
        TaskState::Running => "run",
        TaskState::Retrying => "retry",
        TaskState::AwaitingReview => "review",
        TaskState::Blocked => "block",
        TaskState::Completed => "done",
        TaskState::Failed => "fail",
        TaskState::Cancelled => "canc",
    }
}

/// Active states first, as the eye wants them.
const ORDER: [TaskState; 8] = [
    TaskState::Running,
    TaskState::Retrying,
    TaskState::AwaitingReview,
    TaskState::Blocked,
    TaskState::Completed,
    TaskState::Failed,
    TaskState::Pending,
    TaskState::Cancelled,
];

impl Header<'_> {
    fn title(&self) -> Line<'static> {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        // A finished run's clock stops at its last change.
        let finished = ctx.view.finished();
        let end = match ctx.view.last_change() {
            Some(last) if finished => last,
            _ => ctx.now,
        };
        let run_time = clock(end.duration_since(ctx.view.started_at));
        let mut spans = vec![
            Span::styled(" baton ▸ ", t.style("ui.text.dim")),
            Span::styled(ctx.view.pipeline.clone(), t.style("ui.header.name")),
            Span::styled(format!("   run {run_time}"), t.text("ui.text")),
        ];
        if finished {
            let status = ctx.view.exit_status();
            spans.push(Span::raw("   "));
            spans.push(Span::styled(" ✓ FINISHED ", t.style("ui.paused")));
            let engine = if ctx.state.link.lost.is_some() {
                "; the engine has ended"
            } else {
                ""
            };
            spans.push(Span::styled(
                format!(
                    " {} (exit {status}){engine}",
                    crate::engine::exit_status::meaning(status)
                ),
                t.text("ui.text.dim"),
            ));
        } else if let Some(why) = &ctx.state.link.lost {
            spans.push(Span::raw("   "));
            spans.push(Span::styled(" ⚠ ENGINE GONE ", t.style("ui.badge")));
            spans.push(Span::styled(
                format!(" {why}; reconnecting…"),
                t.text("ui.text.dim"),
            ));
        }
        if ctx.state.link.stopped {
            spans.push(Span::raw("   "));
            spans.push(Span::styled(" STOPPED · READ-ONLY ", t.style("ui.paused")));
            spans.push(Span::styled(
                " no engine runs: the stored state",
                t.text("ui.text.dim"),
            ));
        } else if ctx.state.link.read_only {
            spans.push(Span::raw("   "));
            spans.push(Span::styled(" READ-ONLY ", t.style("ui.paused")));
        }
        if ctx.view.paused {
            spans.push(Span::raw("   "));
            spans.push(Span::styled(" ⏸ PAUSED ", t.style("ui.paused")));
        }
        let queue = ctx.view.review_len();
        if queue > 0 {
            spans.push(Span::raw("   "));
            spans.push(Span::styled(
                format!(" {queue} need you "),
                t.style("ui.badge"),
            ));
            if let Some(since) = ctx.view.oldest_wait() {
                spans.push(Span::styled(
                    format!(" oldest {}", duration(ctx.now.duration_since(since))),
                    t.text("ui.text.dim"),
                ));
            }
        }
        Line::from(spans)
    }

    fn counts(&self, width: usize) -> Line<'static> {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let full: Vec<String> = ORDER
            .iter()
            .map(|s| {
                format!(
                    "{} {} {}",
                    state_symbol(s.as_str()),
                    ctx.view.count(*s),
                    s.as_str()
                )
            })
            .collect();
        let long = full.iter().map(|s| s.chars().count() + 2).sum::<usize>() < width;
        let mut spans = vec![Span::raw(" ")];
        for (i, s) in ORDER.iter().enumerate() {
            let text = if long {
                full[i].clone()
            } else {
                format!(
                    "{}{} {}",
                    state_symbol(s.as_str()),
                    ctx.view.count(*s),
                    short(*s)
                )
            };
            let style = if ctx.view.count(*s) == 0 {
                t.text("ui.text.dim")
            } else {
                t.task_state(*s)
            };
            spans.push(Span::styled(text, style));
            spans.push(Span::raw(if long { "  " } else { " " }));
        }
        Line::from(spans)
    }

    fn usage(&self, width: usize) -> Line<'static> {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let cost = ctx.view.cost();
        let cost_style = if cost.is_known() {
            t.text("ui.text")
        } else {
            t.text("cost.unknown")
        };
        let cost = cost.to_string();
        let limits = ctx.view.budget.run_limits();
        let spend = ctx.view.spend();
        let flying = ctx.view.in_flight();
        let mut budget_full = budget_full(limits, spend, flying);
        // What the run will have cost at its finish, beside the budget.
        if let (Some(_), Some((p50, p95))) = (limits.usd, ctx.view.projection) {
            budget_full.push_str(&format!(" · at the finish ${p50:.2}–${p95:.2}"));
        }
        let budget_short = budget_short(limits, spend, flying);
        let rate = ctx.view.throughput(ctx.now);
        let toks = tokens(ctx.view.tokens());
        // Labels in full when they fit, else the short forms.
        // The last five minutes, a character a slice: tasks finished, dollars spent.
        let (done, spent) = ctx.view.recent(ctx.now, 10);
        // Where the run is: its database when it is kept in one, else the
        // state folder.
        let (place_label, place) = match &ctx.view.store {
            Some(address) => ("store", address),
            None => ("state", &ctx.view.state_dir),
        };
        let full = [
            format!(" tokens {toks}   cost "),
            format!(
                "   {rate:.1} tasks/min {} $ {}   {place_label} ",
                sparkline(&done),
                sparkline(&spent)
            ),
        ];
        let short = [format!(" {toks} tok  "), format!("  {rate:.1}/min  ")];
        let len = |p: &[String; 2], b: &str| {
            p[0].chars().count() + p[1].chars().count() + cost.chars().count() + b.chars().count()
        };
        // The full labels only when the place still shows (up to 40
        // characters of it).
        let place_room = place.chars().count().clamp(12, 40);
        let (parts, budget) = if len(&full, &budget_full) + place_room <= width {
            (full, budget_full)
        } else {
            (short, budget_short)
        };
        let room = width.saturating_sub(len(&parts, &budget));
        let dim = t.text("ui.text.dim");
        let reached = budget::reached(
            limits,
            spend,
            flying,
            ctx.view.budget.run_raise.accept_unknown,
        )
        .is_some();
        let budget_style = if reached {
            t.text("error")
        } else {
            t.text("ui.text")
        };
        let [used, rate] = parts;
        Line::from(vec![
            Span::styled(used, dim),
            Span::styled(cost, cost_style),
            Span::styled(budget, budget_style),
            Span::styled(rate, dim),
            Span::styled(fit(place, room), t.text("ui.text")),
        ])
    }
}

/// The run's budget: projected spend (spent plus the estimate for attempts
/// in flight) beside each limit, e.g. `   budget $1.2000 projected of
/// $20.0000 · 3.1k projected of 1.0M tok`.
fn budget_full(limits: budget::Limits, spend: budget::Spend, flying: budget::Estimate) -> String {
    let mut parts = Vec::new();
    if let Some(limit) = limits.usd {
        let unknown = if spend.cost.unknown > 0 {
            " + unknown"
        } else {
            ""
        };
        parts.push(format!(
            "${:.4}{unknown} projected of ${limit:.4}",
            spend.cost.usd + flying.usd
        ));
    }
    if let Some(limit) = limits.tokens {
        parts.push(format!(
            "{} projected of {} tok",
            tokens(spend.tokens + flying.tokens),
            tokens(limit)
        ));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("   budget {}", parts.join(" · "))
    }
}

/// The run's budget in few columns: projected spend over each limit, e.g.
/// `  budget $1.20/$20.00 3.1k/1.0M tok`.
fn budget_short(limits: budget::Limits, spend: budget::Spend, flying: budget::Estimate) -> String {
    if limits.is_none() {
        return String::new();
    }
    let mut out = "  budget".to_string();
    if let Some(limit) = limits.usd {
        let unknown = if spend.cost.unknown > 0 { "+?" } else { "" };
        out.push_str(&format!(
            " ${:.2}{unknown}/${limit:.2}",
            spend.cost.usd + flying.usd
        ));
    }
    if let Some(limit) = limits.tokens {
        out.push_str(&format!(
            " {}/{} tok",
            tokens(spend.tokens + flying.tokens),
            tokens(limit)
        ));
    }
    out
}

impl Widget for Header<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let width = area.width as usize;
        let lines = vec![self.title(), self.counts(width), self.usage(width)];
        Paragraph::new(lines)
            .style(self.ctx.theme.style("ui.header"))
            .render(area, buf);
    }
}

/// Eight heights of block, one per value, scaled to the largest.
fn sparkline(values: &[u64]) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let max = values.iter().copied().max().unwrap_or(0);
    values
        .iter()
        .map(|&v| {
            if max == 0 {
                ' '
            } else if v == 0 {
                '▁'
            } else {
                BARS[((v * 7).div_ceil(max)) as usize]
            }
        })
        .collect()
}

#[cfg(test)]
mod sparkline_tests {
    #[test]
    fn bars_scale_to_the_largest() {
        assert_eq!(super::sparkline(&[0, 1, 2, 4, 8]), "▁▂▃▅█");
        assert_eq!(super::sparkline(&[0, 0]), "  ");
    }
}
