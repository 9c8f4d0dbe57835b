//! The bottom line: the filter being typed, the answer to the last command,
//! or hints for the keys that matter in the focused pane.

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Widget};

use super::action::Action;
use super::view_state::Pane;
use super::widgets::{Ctx, hint};

pub struct StatusBar<'a> {
    pub ctx: &'a Ctx<'a>,
}

impl StatusBar<'_> {
    fn hints(&self, width: usize) -> Vec<Span<'static>> {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let link = &ctx.state.link;
        // A connection that cannot act shows no action keys.
        let can_act = !link.read_only && !link.stopped;
        let mut acts: Vec<(Action, &'static str)> = Vec::new();
        if ctx.state.focus == Pane::Log {
            acts.push((Action::NextPane, "next pane"));
        } else {
            if can_act {
                acts.extend([
                    (Action::Approve, "approve"),
                    (Action::Reject, "reject"),
                    (Action::Feedback, "feedback"),
                    (Action::Resolve, "resolve"),
                    (Action::RetryPhase, "retry"),
                    (Action::Cancel, "cancel"),
                    (
                        Action::PauseResume,
                        if ctx.view.paused { "resume" } else { "pause" },
                    ),
                ]);
            }
            acts.extend([(Action::Filter, "filter"), (Action::Sort, "sort")]);
        }
        if link.remote && !link.stopped {
            acts.push((Action::Detach, "detach"));
        }
        acts.extend([(Action::Help, "help"), (Action::Quit, "quit")]);
        // Help, quit (and detach) always show; the others while they fit, in order.
        let always = |a: &Action| matches!(a, Action::Help | Action::Quit | Action::Detach);
        let essential: usize = acts
            .iter()
            .filter(|(a, _)| always(a))
            .map(|(a, what)| ctx.keymap.hint(*a).chars().count() + what.chars().count() + 3)
            .sum();
        let mut room = width.saturating_sub(1 + essential);
        let mut spans = vec![Span::raw(" ")];
        for (action, what) in &acts {
            let key = ctx.keymap.hint(*action);
            let cells = key.chars().count() + what.chars().count() + 3;
            let always = always(action);
            if key.is_empty() || (!always && cells > room) {
                continue;
            }
            if !always {
                room -= cells;
            }
            spans.extend(hint(key, what, t));
            spans.push(Span::raw("  "));
        }
        spans
    }
}

/// A line being typed: its label, the text with the cursor shown, then a tail.
fn input_line(
    label: &'static str,
    edit: &super::line_edit::LineEdit,
    width: usize,
    tail: Span<'static>,
    t: &super::theme::Theme,
) -> Line<'static> {
    let (shown, cursor) = edit.visible(width);
    let before: String = shown.chars().take(cursor).collect();
    let at: String = shown.chars().nth(cursor).map_or(" ".into(), String::from);
    let after: String = shown.chars().skip(cursor + 1).collect();
    let input = t.style("ui.input");
    Line::from(vec![
        Span::styled(label, t.style("ui.key")),
        Span::styled(before, input),
        Span::styled(at, input.add_modifier(Modifier::REVERSED)),
        Span::styled(after, input),
        tail,
    ])
}

impl Widget for StatusBar<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let (ctx, t) = (self.ctx, self.ctx.theme);
        let line = if let Some(edit) = &ctx.state.command_edit {
            input_line(
                " : ",
                edit,
                (area.width as usize).saturating_sub(40),
                Span::raw("   tab completes · enter asks first · esc closes"),
                t,
            )
        } else if let Some((edit, _)) = &ctx.state.filter_edit {
            let tail = match crate::filter::Filter::parse(edit.text()) {
                // Says what is wrong as it is typed; the table meanwhile
                // searches the text as plain text.
                Err(e) => Span::styled(format!("   {e}"), t.style("ui.status.error")),
                Ok(_) => Span::raw("   enter keeps · esc clears"),
            };
            input_line(
                " filter / ",
                edit,
                (area.width as usize).saturating_sub(30),
                tail,
                t,
            )
        } else if let Some(status) = &ctx.state.status {
            let style = if status.error {
                t.style("ui.status.error")
            } else {
                t.style("ui.status.info")
            };
            // Cut at a word, saying where the whole of it is.
            let width = (area.width as usize).saturating_sub(2);
            let tail = if ctx.state.focus == super::view_state::Pane::Log {
                "…"
            } else {
                "… (whole in the log pane)"
            };
            Line::from(vec![
                Span::raw(" "),
                Span::styled(super::format::fit_words(&status.text, width, tail), style),
            ])
        } else {
            Line::from(self.hints(area.width as usize))
        };
        Paragraph::new(line)
            .style(t.style("ui.status"))
            .render(area, buf);
    }
}
