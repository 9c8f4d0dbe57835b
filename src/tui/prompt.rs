//! Popups that ask before acting: a line of text (a reason to reject,
//! feedback to send back), new budget limits, the three ways to settle a
//! blocker, and yes/no.
//! Keys go straight to an open prompt; the keymap does not see them.

use crossterm::event::{KeyCode, KeyEvent};
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::style::Modifier;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Widget, Wrap};

use crate::engine::event::{Action as Decide, TaskId};

use super::budget_input;
use super::format::fit;
use super::line_edit::{Edit, LineEdit};
use super::theme::Theme;
use super::widgets::centered;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextKind {
    Reject,
    Feedback,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfirmKind {
    Cancel {
        task: TaskId,
        /// An attempt of it runs now (and is stopped), or it only waits.
        running: bool,
    },
    /// One decision for many tasks: marked rows, or a command line's matches.
    Bulk {
        action: Decide,
        tasks: Vec<TaskId>,
        /// How they were picked, for the question.
        what: String,
    },
    /// Quitting, which stops the engine, with this many tasks unfinished.
    Quit {
        unfinished: usize,
        /// The engine runs in a process of its own: `d` leaves it running.
        can_detach: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Prompt {
    Text {
        kind: TextKind,
        task: TaskId,
        phase: Option<String>,
        edit: LineEdit,
        /// Why the last Enter was not taken.
        complaint: Option<&'static str>,
    },
    Resolve {
        task: TaskId,
        phase: Option<String>,
        reason: String,
        choice: usize,
    },
    Confirm(ConfirmKind),
    /// New limits for a task's budget, or the run's.
    Budget {
        /// The selected task; `None` when none is, and only the run's can be raised.
        task: Option<TaskId>,
        /// Raising the run's budget rather than the task's.
        run: bool,
        /// The limits in force, for the operator to go by.
        current: String,
        edit: LineEdit,
        complaint: Option<String>,
    },
}

/// What a key did to the prompt.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Stay,
    Close,
    Act {
        task: TaskId,
        action: Decide,
        phase: Option<String>,
        note: Option<String>,
    },
    /// Raise a budget: the task's, or the run's when `task` is `None`.
    Raise {
        task: Option<TaskId>,
        usd: Option<f64>,
        tokens: Option<u64>,
    },
    Quit,
    /// Leave the engine running and close the dashboard.
    Detach,
    /// One decision for each of these tasks.
    ActAll {
        action: Decide,
        tasks: Vec<TaskId>,
    },
}

/// The blocker choices, with the key that picks each.
const RESOLVE: [(char, &str, &str); 3] = [
    ('r', "retry", "run the blocked phase again"),
    ('s', "skip", "skip the phase and go on"),
    ('f', "fail", "fail the task"),
];

impl Prompt {
    pub fn text(kind: TextKind, task: TaskId, phase: Option<String>) -> Prompt {
        Prompt::Text {
            kind,
            task,
            phase,
            edit: LineEdit::default(),
            complaint: None,
        }
    }

    pub fn handle(&mut self, key: &KeyEvent) -> Outcome {
        match self {
            Prompt::Text {
                kind,
                task,
                phase,
                edit,
                complaint,
            } => match edit.handle(key) {
                Edit::Cancel => Outcome::Close,
                Edit::Submit => {
                    let text = edit.text().trim().to_string();
                    match kind {
                        TextKind::Reject => Outcome::Act {
                            task: task.clone(),
                            action: Decide::Reject,
                            phase: phase.clone(),
                            note: (!text.is_empty()).then_some(text),
                        },
                        TextKind::Feedback if text.is_empty() => {
                            *complaint = Some("feedback is what the phase re-runs with; type some");
                            Outcome::Stay
                        }
                        TextKind::Feedback => Outcome::Act {
                            task: task.clone(),
                            action: Decide::SendBack { feedback: text },
                            phase: phase.clone(),
                            note: None,
                        },
                    }
                }
                Edit::Changed | Edit::Same => {
                    *complaint = None;
                    Outcome::Stay
                }
            },
            Prompt::Resolve {
                task,
                phase,
                choice,
                ..
            } => {
                let pick = match key.code {
                    KeyCode::Esc => return Outcome::Close,
                    KeyCode::Up | KeyCode::Char('k') => {
                        *choice = choice.saturating_sub(1);
                        return Outcome::Stay;
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        *choice = (*choice + 1).min(RESOLVE.len() - 1);
                        return Outcome::Stay;
                    }
                    KeyCode::Enter => *choice,
                    KeyCode::Char(c) => match RESOLVE.iter().position(|(k, _, _)| *k == c) {
                        Some(i) => i,
                        None => return Outcome::Stay,
                    },
                    _ => return Outcome::Stay,
                };
                let action = [
                    Decide::ResolveRetry,
                    Decide::ResolveSkip,
                    Decide::ResolveFail,
                ][pick]
                    .clone();
                Outcome::Act {
                    task: task.clone(),
                    action,
                    phase: phase.clone(),
                    note: None,
                }
            }
            Prompt::Budget {
                task,
                run,
                edit,
                complaint,
                ..
            } => {
                if key.code == KeyCode::Tab && task.is_some() {
                    *run = !*run;
                    return Outcome::Stay;
                }
                match edit.handle(key) {
                    Edit::Cancel => Outcome::Close,
                    Edit::Submit => match budget_input::parse(edit.text()) {
                        Ok(limits) => Outcome::Raise {
                            task: if *run { None } else { task.clone() },
                            usd: limits.usd,
                            tokens: limits.tokens,
                        },
                        Err(why) => {
                            *complaint = Some(why);
                            Outcome::Stay
                        }
                    },
                    Edit::Changed | Edit::Same => {
                        *complaint = None;
                        Outcome::Stay
                    }
                }
            }
            Prompt::Confirm(kind) => match key.code {
                KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => match kind {
                    ConfirmKind::Cancel { task, .. } => Outcome::Act {
                        task: task.clone(),
                        action: Decide::Cancel,
                        phase: None,
                        note: None,
                    },
                    ConfirmKind::Quit { .. } => Outcome::Quit,
                    ConfirmKind::Bulk { action, tasks, .. } => Outcome::ActAll {
                        action: action.clone(),
                        tasks: tasks.clone(),
                    },
                },
                KeyCode::Char('d') | KeyCode::Char('D')
                    if matches!(
                        kind,
                        ConfirmKind::Quit {
                            can_detach: true,
                            ..
                        }
                    ) =>
                {
                    Outcome::Detach
                }
                KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => Outcome::Close,
                _ => Outcome::Stay,
            },
        }
    }
}

/// Draws a prompt over the middle of the screen.
pub struct PromptView<'a> {
    pub prompt: &'a Prompt,
    pub theme: &'a Theme,
}

impl PromptView<'_> {
    fn title(&self) -> String {
        let on = |task: &str, phase: &Option<String>| match phase {
            Some(p) => format!("{task} ({p})"),
            None => task.to_string(),
        };
        match self.prompt {
            Prompt::Text {
                kind: TextKind::Reject,
                task,
                phase,
                ..
            } => format!(" Reject {} ", on(task, phase)),
            Prompt::Text {
                kind: TextKind::Feedback,
                task,
                phase,
                ..
            } => format!(" Send back {} ", on(task, phase)),
            Prompt::Resolve { task, phase, .. } => {
                format!(" Resolve blocker: {} ", on(task, phase))
            }
            Prompt::Budget {
                task: Some(task),
                run: false,
                ..
            } => format!(" Raise the budget of {task} "),
            Prompt::Budget { .. } => " Raise the run's budget ".into(),
            Prompt::Confirm(ConfirmKind::Cancel { .. }) => " Cancel task ".into(),
            Prompt::Confirm(ConfirmKind::Quit { .. }) => " Quit ".into(),
            Prompt::Confirm(ConfirmKind::Bulk { .. }) => " Many tasks ".into(),
        }
    }

    fn lines(&self, inner_width: usize) -> Vec<Line<'static>> {
        let t = self.theme;
        let key = |k: &str| Span::styled(k.to_string(), t.style("ui.key"));
        let dim = t.style("ui.text.dim");
        let field = |edit: &LineEdit| {
            let (shown, cursor) = edit.visible(inner_width.saturating_sub(3));
            let mut field = vec![Span::raw("> ")];
            let before: String = shown.chars().take(cursor).collect();
            let at: String = shown.chars().nth(cursor).map_or(" ".into(), String::from);
            let after: String = shown.chars().skip(cursor + 1).collect();
            let input = t.style("ui.input");
            field.push(Span::styled(before, input));
            field.push(Span::styled(at, input.add_modifier(Modifier::REVERSED)));
            field.push(Span::styled(after, input));
            Line::from(field)
        };
        match self.prompt {
            Prompt::Budget {
                task,
                current,
                edit,
                complaint,
                ..
            } => {
                let mut lines = vec![
                    // Whole, over as many lines as it takes.
                    Line::raw(format!("Now: {current}")),
                    Line::raw("New limits, e.g. $1.50, 20k tok, or both:"),
                    field(edit),
                ];
                if let Some(c) = complaint {
                    lines.push(Line::styled(c.clone(), t.style("ui.status.error")));
                }
                let mut keys = vec![
                    key("enter"),
                    Span::styled(": raise   ", dim),
                    key("esc"),
                    Span::styled(": cancel", dim),
                ];
                if task.is_some() {
                    keys.push(Span::styled("   ", dim));
                    keys.push(key("tab"));
                    keys.push(Span::styled(": task / run", dim));
                }
                lines.push(Line::from(keys));
                lines.push(Line::styled(
                    "A task held for its budget goes on once approved.",
                    dim,
                ));
                lines
            }
            Prompt::Text {
                kind,
                edit,
                complaint,
                ..
            } => {
                let label = match kind {
                    TextKind::Reject => "Reason for rejecting (optional); the task fails:",
                    TextKind::Feedback => "Feedback; the phase runs again with it:",
                };
                let mut lines = vec![Line::raw(label), field(edit)];
                if let Some(c) = complaint {
                    lines.push(Line::styled(*c, t.style("ui.status.error")));
                }
                let verb = if *kind == TextKind::Reject {
                    ": reject   "
                } else {
                    ": send back   "
                };
                lines.push(Line::from(vec![
                    key("enter"),
                    Span::styled(verb, dim),
                    key("esc"),
                    Span::styled(": cancel", dim),
                ]));
                lines
            }
            Prompt::Resolve { reason, choice, .. } => {
                let mut lines = vec![Line::raw(fit(reason, inner_width)), Line::raw("")];
                for (i, (k, name, what)) in RESOLVE.iter().enumerate() {
                    let mark = if i == *choice { "▶ " } else { "  " };
                    let style = if i == *choice {
                        t.style("ui.selection")
                    } else {
                        t.style("ui.text")
                    };
                    lines.push(Line::from(vec![
                        Span::styled(mark, style),
                        key(&k.to_string()),
                        Span::styled(format!(" {name:<7}{what}"), style),
                    ]));
                }
                lines.push(Line::raw(""));
                lines.push(Line::from(vec![
                    key("↑↓"),
                    Span::styled(" choose   ", dim),
                    key("enter"),
                    Span::styled(" do it   ", dim),
                    key("esc"),
                    Span::styled(" cancel", dim),
                ]));
                lines
            }
            Prompt::Confirm(kind) => {
                let mut lines = Vec::new();
                let mut keys = vec![key("y"), Span::styled(" yes   ", dim)];
                match kind {
                    ConfirmKind::Cancel { task, running } => {
                        lines.push(Line::raw(format!("Cancel {task}?")));
                        lines.push(Line::styled(
                            if *running {
                                "Its running attempt is stopped; the task runs no more."
                            } else {
                                "It will not run again (a person can retry it later)."
                            },
                            dim,
                        ));
                    }
                    ConfirmKind::Bulk {
                        action,
                        tasks,
                        what,
                    } => {
                        lines.push(Line::raw(format!(
                            "{} {} task{} ({what})?",
                            action.name(),
                            tasks.len(),
                            if tasks.len() == 1 { "" } else { "s" }
                        )));
                        let shown: Vec<&str> = tasks.iter().take(8).map(String::as_str).collect();
                        let more = tasks.len().saturating_sub(shown.len());
                        lines.push(Line::styled(
                            format!(
                                "{}{}",
                                shown.join(", "),
                                if more > 0 {
                                    format!(" and {more} more")
                                } else {
                                    String::new()
                                }
                            ),
                            dim,
                        ));
                        lines.push(Line::styled(
                            "Each is decided on its own; a task that cannot take it is refused and said so.",
                            dim,
                        ));
                    }
                    ConfirmKind::Quit {
                        unfinished,
                        can_detach,
                    } => {
                        lines.push(Line::raw(format!(
                            "{unfinished} task{} unfinished. Quit the dashboard?",
                            if *unfinished == 1 { " is" } else { "s are" }
                        )));
                        lines.push(Line::styled(
                            "Quitting stops the engine: the work waits until `baton run` goes on \
                             (running attempts run again).",
                            dim,
                        ));
                        keys = vec![key("y"), Span::styled(" quit and stop it   ", dim)];
                        if *can_detach {
                            keys.push(key("d"));
                            keys.push(Span::styled(" detach: leave it running   ", dim));
                        }
                    }
                }
                keys.push(key("n"));
                keys.push(Span::styled(" no", dim));
                lines.push(Line::raw(""));
                lines.push(Line::from(keys));
                wrap_lines(lines, inner_width)
            }
        }
    }
}

/// Lines longer than `width` split at spaces, so that nothing is cut.
fn wrap_lines(lines: Vec<Line<'static>>, width: usize) -> Vec<Line<'static>> {
    let width = width.max(10);
    let mut out = Vec::new();
    for line in lines {
        let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
        if text.chars().count() <= width || line.spans.len() > 1 {
            out.push(line);
            continue;
        }
        let style = line.spans.first().map(|s| s.style).unwrap_or_default();
        let mut current = String::new();
        for word in text.split(' ') {
            if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
                out.push(Line::styled(std::mem::take(&mut current), style));
            }
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
        if !current.is_empty() {
            out.push(Line::styled(current, style));
        }
    }
    out
}

impl Widget for PromptView<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        let width = area.width.saturating_sub(4).min(64);
        let inner = width.saturating_sub(2) as usize;
        let lines = wrap_lines(self.lines(inner), inner);
        let rect = centered(area, width, lines.len() as u16 + 2);
        Clear.render(rect, buf);
        let block = Block::bordered()
            .border_style(self.theme.style("ui.popup.border"))
            .title(Span::styled(
                self.title(),
                self.theme.style("ui.title.focus"),
            ))
            .style(self.theme.style("ui.popup"));
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .block(block)
            .render(rect, buf);
    }
}

#[cfg(test)]
#[path = "prompt_tests.rs"]
mod tests;
