//! One task in full: its holds, then each phase with its attempts (errors,
//! retry times, trace lines) and its output as JSON. Scrolls.

use jiff::SignedDuration;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Style;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget, Wrap};

use crate::engine::budget;
use crate::engine::event::AttemptOutcome;
use crate::engine::state::{HoldKind, PhaseState};
use crate::engine::task::{AttemptRecord, PhaseRecord, Task};

use super::format::{cost_short, duration, time_of_day, tokens};
use super::json_view::json_lines;
use super::rows::elapsed;
use super::theme::state_symbol;
use super::widgets::{Ctx, pane_block, state_label};

/// Lines of a streaming reply shown at most: its end, where it grows.
const LIVE_TEXT_LINES: usize = 12;

fn attempts(n: usize) -> String {
    if n == 1 {
        "1 attempt".into()
    } else {
        format!("{n} attempts")
    }
}

pub struct TaskDetail<'a> {
    pub ctx: &'a Ctx<'a>,
    pub focused: bool,
}

impl TaskDetail<'_> {
    fn dim(&self) -> Style {
        self.ctx.theme.text("ui.text.dim")
    }

    fn summary(&self, task: &Task, out: &mut Vec<Line<'static>>) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        out.push(Line::from(vec![
            Span::styled(task.id.clone(), t.text("ui.header.name")),
            Span::raw("  "),
            Span::styled(state_label(task.state.as_str()), t.task_state(task.state)),
            Span::styled(
                format!(
                    "  submitted {} · {} · {} · {} tokens · ",
                    time_of_day(task.created_at, ctx.tz),
                    duration(elapsed(task, ctx.now)),
                    attempts(task.attempts()),
                    tokens(task.tokens()),
                ),
                self.dim(),
            ),
            self.cost(task.cost()),
        ]));
        let limits = ctx.view.budget.task_limits(task);
        if !limits.is_none() {
            let spent = budget::Spend::of_task(task);
            let flying = ctx.view.task_in_flight(&task.id);
            let style =
                if budget::reached(limits, spent, flying, task.budget.accept_unknown).is_some() {
                    t.text("error")
                } else {
                    t.text("ui.text")
                };
            out.push(Line::from(vec![
                Span::styled("budget ", self.dim()),
                Span::styled(budget::describe(limits, spent, flying), style),
            ]));
        }
        out.push(Line::from(vec![
            Span::styled("input ", self.dim()),
            Span::raw(serde_json::to_string(&task.input).unwrap_or_default()),
        ]));
        for h in &task.holds {
            let (sym, what) = match h.kind {
                HoldKind::Review => (state_symbol("awaiting_review"), "review"),
                HoldKind::Blocked => (state_symbol("blocked"), "blocked"),
            };
            let waited = duration(ctx.now.duration_since(h.since));
            out.push(Line::styled(
                format!("{sym} {what} at {} for {waited}: {}", h.phase, h.why()),
                t.task_state(h.kind.state()),
            ));
        }
        if let Some(reason) = &task.finish_reason {
            out.push(Line::styled(
                format!("finished: {reason}"),
                t.task_state(task.state),
            ));
        }
    }

    /// Where the task's time went, on one axis from its submission to its
    /// end (or now): per phase, `█` an attempt running, `░` waiting out a
    /// retry's backoff, `▒` waiting for a person, blank nothing of it.
    fn timeline(&self, task: &Task, out: &mut Vec<Line<'static>>) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let start = task.created_at;
        let end = task.finished_at.unwrap_or(ctx.now).max(start);
        let span = end.duration_since(start).as_secs_f64();
        if task
            .phases
            .iter()
            .all(|p| p.attempts.is_empty() && p.items.is_none())
            || span <= 0.0
        {
            return;
        }
        let label = task
            .phases
            .iter()
            .map(|p| p.id.chars().count())
            .max()
            .unwrap_or(5)
            .min(12);
        // Narrow enough for the detail beside the table (a third of 120
        // columns) without wrapping.
        let width = 24usize;
        let cell = |at: jiff::Timestamp| -> usize {
            let f = at.duration_since(start).as_secs_f64() / span;
            ((f * width as f64) as usize).min(width - 1)
        };
        out.push(Line::styled(
            format!(
                "timeline {} · █ running  ░ backoff  ▒ waiting for a person",
                duration(end.duration_since(start))
            ),
            self.dim(),
        ));
        for p in &task.phases {
            let mut bar = vec![' '; width];
            let mut paint = |from: jiff::Timestamp, to: jiff::Timestamp, c: char| {
                if to < from {
                    return;
                }
                for slot in &mut bar[cell(from)..=cell(to)] {
                    // Running shows over the rest; waiting over backoff.
                    let rank = |c: char| match c {
                        '█' => 3,
                        '▒' => 2,
                        '░' => 1,
                        _ => 0,
                    };
                    if rank(c) >= rank(*slot) {
                        *slot = c;
                    }
                }
            };
            for (i, a) in p.attempts.iter().enumerate() {
                let finished = a.finished_at.unwrap_or(end);
                paint(a.started_at, finished, '█');
                // Between a failed attempt and the next: backoff.
                if let Some(next) = p.attempts.get(i + 1) {
                    paint(finished, next.started_at, '░');
                } else if p.retry_due.is_some() {
                    paint(finished, end, '░');
                }
                // Asked a person: from then to the decision on this phase.
                if matches!(
                    a.outcome,
                    Some(AttemptOutcome::ReviewRequested { .. })
                        | Some(AttemptOutcome::Blocked { .. })
                ) {
                    let decided = task
                        .decisions
                        .iter()
                        .filter(|d| d.phase.as_deref() == Some(p.id.as_str()) && d.at >= finished)
                        .map(|d| d.at)
                        .min()
                        .unwrap_or(end);
                    paint(finished, decided, '▒');
                }
            }
            // A `for_each` phase's attempts are its items': running from
            // its list to its last item.
            if p.items.is_some()
                && let Some(from) = p.started_at
            {
                paint(from, p.finished_at.unwrap_or(end), '█');
            }
            // Held by a budget before the attempt started: from the hold on.
            for h in task.holds.iter().filter(|h| h.phase == p.id) {
                paint(h.since, end, '▒');
            }
            let name: String = p.id.chars().take(label).collect();
            out.push(Line::from(vec![
                Span::styled(format!("  {name:<label$} ▕"), self.dim()),
                Span::styled(bar.into_iter().collect::<String>(), t.phase_state(p.state)),
                Span::styled("▏", self.dim()),
            ]));
        }
    }

    fn cost(&self, c: crate::engine::cost::CostTotal) -> Span<'static> {
        let t = self.ctx.theme;
        let style = if c.is_known() {
            t.text("ui.text")
        } else {
            t.text("cost.unknown")
        };
        Span::styled(cost_short(c), style)
    }

    fn phase(&self, task: &str, p: &PhaseRecord, out: &mut Vec<Line<'static>>) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let last = p.attempts.last();
        let mut state = state_label(p.state.as_str());
        let mut state_style = t.phase_state(p.state);
        if p.retry_due.is_some() {
            state = format!("{} waiting to retry", state_symbol("retrying"));
        }
        // A phase a person must decide on shows as that, not as its
        // attempt's outcome (completed, pending).
        if let Some(h) = self.holds_at(&p.id).next() {
            let held = h.kind.state();
            state = state_label(held.as_str());
            state_style = t.task_state(held);
        }
        let spent: u64 = p.attempts.iter().filter_map(|a| a.duration_ms).sum();
        let running = p.running_attempt().map_or(SignedDuration::ZERO, |a| {
            ctx.now.duration_since(a.started_at)
        });
        let mut line = vec![
            Span::styled(format!("▾ {}  ", p.id), t.text("ui.table.header")),
            Span::styled(state, state_style),
        ];
        if let Some(hit) = &p.cached {
            line.push(Span::styled(
                format!("  cached · from {} · 0 tok · $0", hit.from_task),
                self.dim(),
            ));
        }
        if let Some(a) = last.filter(|_| p.cached.is_none()) {
            let model = a.model.as_deref().unwrap_or("model unknown");
            let model = match (&a.role, &a.route) {
                (Some(role), _) if a.route.is_none() => format!("{model} (role {role})"),
                (role, Some(route)) => {
                    let role = role
                        .as_ref()
                        .map(|r| format!("role {r}, "))
                        .unwrap_or_default();
                    format!("{model} ({role}{})", route.describe())
                }
                _ => model.to_string(),
            };
            line.push(Span::styled(
                format!(
                    "  {} · {model} · {} · {} · {} tok · ",
                    a.agent,
                    attempts(p.attempts.len()),
                    duration(SignedDuration::from_millis(spent as i64) + running),
                    tokens(p.tokens()),
                ),
                self.dim(),
            ));
            line.push(self.cost(p.cost()));
        }
        out.push(Line::from(line));
        // A `for_each` phase: its items' progress, as `baton show` says it.
        if let Some(items) = crate::report::item_progress::ItemProgress::of(p) {
            out.push(Line::styled(
                format!("   items {}", items.line()),
                self.dim(),
            ));
            for failure in items.failure_lines() {
                out.push(Line::styled(format!("   ✗ {failure}"), t.text("error")));
            }
        }
        // What this phase waits for, beside its output.
        for h in self.holds_at(&p.id) {
            let (sym, what) = match h.kind {
                HoldKind::Review => (state_symbol("awaiting_review"), "waiting for review"),
                HoldKind::Blocked => (state_symbol("blocked"), "blocked"),
            };
            let waited = duration(ctx.now.duration_since(h.since));
            out.push(Line::styled(
                format!("   {sym} {what} for {waited}: {}", h.why()),
                t.task_state(h.kind.state()),
            ));
        }
        if p.approved {
            out.push(Line::styled("   approved", self.dim()));
        }
        if let Some(reason) = &p.skip_reason {
            out.push(Line::styled(format!("   skipped: {reason}"), self.dim()));
        }
        if let Some(f) = &p.feedback {
            out.push(Line::styled(
                format!("   feedback for next attempt: {f}"),
                self.dim(),
            ));
        }
        for a in &p.attempts {
            self.attempt(task, p, a, out);
        }
        if let Some(output) = &p.output {
            out.push(Line::styled("   output", self.dim()));
            out.extend(json_lines(output, "     ", t));
        } else if p.state == PhaseState::Failed
            && let Some(e) = &p.error
        {
            out.push(Line::styled(format!("   error: {e}"), t.text("error")));
        }
    }

    fn attempt(
        &self,
        task: &str,
        p: &PhaseRecord,
        a: &AttemptRecord,
        out: &mut Vec<Line<'static>>,
    ) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let (sym, text, style) = match &a.outcome {
            None => (
                "▶",
                format!(
                    "running for {}",
                    duration(ctx.now.duration_since(a.started_at))
                ),
                t.text("state.running"),
            ),
            Some(AttemptOutcome::Succeeded) => ("✓", "succeeded".into(), t.text("state.completed")),
            Some(AttemptOutcome::Failed { class, message }) => (
                "✗",
                format!("failed [{}] {message}", class.as_str()),
                t.text("error"),
            ),
            Some(AttemptOutcome::Blocked { reason, escalation }) => (
                "■",
                escalation.after(format!("blocked: {reason}")),
                t.text("state.blocked"),
            ),
            Some(AttemptOutcome::ReviewRequested { reason, escalation }) => (
                "⏸",
                escalation.after(format!("asked for review: {reason}")),
                t.text("state.awaiting_review"),
            ),
            Some(AttemptOutcome::SentBack { to, feedback }) => (
                "↩",
                format!("sent back to {to}: {feedback}"),
                t.text("state.retrying"),
            ),
            Some(AttemptOutcome::Interrupted) => (
                "↯",
                "interrupted by a restart".into(),
                t.text("state.retrying"),
            ),
            Some(AttemptOutcome::Cancelled) => ("⊘", "cancelled".into(), t.text("state.cancelled")),
        };
        let mut line = vec![Span::styled(
            format!("   #{} {sym} {text}", a.number),
            style,
        )];
        if a.outcome.is_some() {
            let took = a
                .duration_ms
                .map(|ms| duration(SignedDuration::from_millis(ms as i64)));
            let used = a.usage.as_ref().map_or(0, |u| u.tokens());
            let mut cost = crate::engine::cost::CostTotal::default();
            if a.usage.is_some() || a.cost_usd.is_some() {
                cost.add(a.cost_usd);
            }
            line.push(Span::styled(
                format!(
                    "  {} · {} tok · ",
                    took.unwrap_or_else(|| "-".into()),
                    tokens(used)
                ),
                self.dim(),
            ));
            line.push(self.cost(cost));
        }
        let live = ctx
            .view
            .live(task, &p.id)
            .filter(|l| a.outcome.is_none() && l.attempt == a.number);
        if let Some(l) = live {
            let about = if l.estimated { "~" } else { "" };
            line.push(Span::styled(
                format!("  {about}{} tok so far", tokens(l.output_tokens)),
                self.dim(),
            ));
        }
        out.push(Line::from(line));
        if let Some(h) = &a.http {
            out.push(Line::styled(format!("      {}", h.describe()), self.dim()));
        }
        if let Some(ms) = a.retry_after_ms {
            out.push(Line::styled(
                format!(
                    "      the service asked to wait {} before retrying",
                    duration(SignedDuration::from_millis(ms as i64))
                ),
                self.dim(),
            ));
        }
        if let Some(f) = &a.feedback {
            out.push(Line::styled(
                format!("      with feedback: {f}"),
                self.dim(),
            ));
        }
        let is_last = p.attempts.last().is_some_and(|l| l.number == a.number);
        match (is_last, p.retry_due, a.retry_delay_ms) {
            (true, Some(due), _) => out.push(Line::styled(
                format!(
                    "      next retry {} (in {})",
                    time_of_day(due, ctx.tz),
                    duration(due.duration_since(ctx.now))
                ),
                t.text("state.retrying"),
            )),
            (_, _, Some(ms)) => out.push(Line::styled(
                format!(
                    "      retried after {}",
                    duration(SignedDuration::from_millis(ms as i64))
                ),
                self.dim(),
            )),
            _ => {}
        }
        for l in &a.trace {
            out.push(Line::styled(format!("      │ {l}"), self.dim()));
        }
        if let Some(l) = live {
            for line in &l.trace {
                out.push(Line::styled(format!("      │ {line}"), self.dim()));
            }
            if !l.text.is_empty() {
                out.push(Line::styled("      reply so far", self.dim()));
                let lines: Vec<&str> = l.text.lines().collect();
                let skip = lines.len().saturating_sub(LIVE_TEXT_LINES);
                if skip > 0 {
                    out.push(Line::styled(
                        format!("      ┆ … {skip} lines above"),
                        self.dim(),
                    ));
                }
                for text in &lines[skip..] {
                    out.push(Line::styled(
                        format!("      ┆ {text}"),
                        t.text("state.running"),
                    ));
                }
            }
        }
    }

    /// The selected task's open holds at `phase`.
    fn holds_at<'h>(
        &'h self,
        phase: &'h str,
    ) -> impl Iterator<Item = &'h crate::engine::task::Hold> {
        self.ctx
            .state
            .selected
            .as_deref()
            .and_then(|id| self.ctx.view.task(id))
            .into_iter()
            .flat_map(|t| t.holds.iter())
            .filter(move |h| h.phase == phase)
    }

    /// Every line of the detail, before scrolling.
    pub fn lines(&self) -> Vec<Line<'static>> {
        self.lines_and_anchor().0
    }

    /// Every line, and where the phase a person is waited on starts (the
    /// oldest hold's), if the task waits for one.
    fn lines_and_anchor(&self) -> (Vec<Line<'static>>, Option<usize>) {
        let ctx = self.ctx;
        let Some(task) = ctx
            .state
            .selected
            .as_deref()
            .and_then(|id| ctx.view.whole_task(id))
        else {
            return (
                vec![Line::styled("select a task to see it here", self.dim())],
                None,
            );
        };
        let task = &task;
        let held = task.holds.first().map(|h| h.phase.as_str());
        let mut out = Vec::new();
        let mut anchor = None;
        self.summary(task, &mut out);
        self.timeline(task, &mut out);
        for p in &task.phases {
            out.push(Line::raw(""));
            if held == Some(p.id.as_str()) {
                anchor = Some(out.len());
            }
            self.phase(&task.id, p, &mut out);
        }
        (out, anchor)
    }

    /// Rows the detail takes at `width` once wrapped, and the row where the
    /// held phase starts: what scrolling counts in.
    pub fn rows(&self, width: u16) -> (usize, Option<usize>) {
        let (lines, anchor) = self.lines_and_anchor();
        let wrapped = |lines: &[Line<'static>]| {
            Paragraph::new(lines.to_vec())
                .wrap(Wrap { trim: false })
                .line_count(width)
        };
        let total = wrapped(&lines);
        (total, anchor.map(|a| wrapped(&lines[..a])))
    }
}

impl Widget for TaskDetail<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let t = self.ctx.theme;
        let title = match &self.ctx.state.selected {
            Some(id) => match self.ctx.view.holder(id) {
                // In a fleet: which engine runs it.
                Some(engine) => format!(" Detail · {id} · {engine} "),
                None => format!(" Detail · {id} "),
            },
            None => " Detail ".to_string(),
        };
        Paragraph::new(self.lines())
            .block(pane_block(title, self.focused, t))
            .style(t.text("ui.text"))
            .wrap(Wrap { trim: false })
            .scroll((self.ctx.state.detail_scroll, 0))
            .render(area, buf);
    }
}
