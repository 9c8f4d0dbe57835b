//! A theme: styles by dotted scope. A scope not set falls back to a broader
//! one (`ui.text.focus` -> `ui.text` -> `ui`), then to the terminal's own.
//! Loading from TOML lives in `theme_file`.

use std::collections::HashMap;

use ratatui::style::{Modifier, Style};

use super::color::ColorSupport;
use crate::engine::state::{PhaseState, TaskState};

/// Scopes that paint an area. With no colours they stay plain; other scopes
/// that had a background (selection, badges) are shown reversed instead, so
/// that they still stand out.
const FILL_SCOPES: &[&str] = &["ui.background", "ui.popup", "ui.status", "ui.header"];

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Theme {
    pub name: String,
    styles: HashMap<String, Style>,
}

impl Theme {
    pub fn new(name: impl Into<String>, styles: HashMap<String, Style>) -> Theme {
        Theme {
            name: name.into(),
            styles,
        }
    }

    /// The style set for exactly this scope.
    pub fn get(&self, scope: &str) -> Option<Style> {
        self.styles.get(scope).copied()
    }

    /// The style for a scope or the nearest broader one that is set.
    pub fn style(&self, scope: &str) -> Style {
        let mut scope = scope;
        loop {
            if let Some(style) = self.styles.get(scope) {
                return *style;
            }
            match scope.rfind('.') {
                Some(dot) => scope = &scope[..dot],
                None => return Style::default(),
            }
        }
    }

    /// `ui.text` patched with the scope: a state colour keeps the text's
    /// background, for instance.
    pub fn text(&self, scope: &str) -> Style {
        self.style("ui.text").patch(self.style(scope))
    }

    pub fn task_state(&self, state: TaskState) -> Style {
        self.text(&format!("state.{}", state.as_str()))
    }

    pub fn phase_state(&self, state: PhaseState) -> Style {
        self.text(&format!("state.{}", state.as_str()))
    }

    /// The same theme as this terminal can show it.
    pub fn for_terminal(&self, support: ColorSupport) -> Theme {
        let styles = self
            .styles
            .iter()
            .map(|(scope, style)| {
                let mut s = *style;
                if support == ColorSupport::None
                    && s.bg.is_some()
                    && !FILL_SCOPES.contains(&scope.as_str())
                {
                    s = s.add_modifier(Modifier::REVERSED);
                }
                s.fg = s.fg.and_then(|c| support.downgrade(c));
                s.bg = s.bg.and_then(|c| support.downgrade(c));
                s.underline_color = s.underline_color.and_then(|c| support.downgrade(c));
                (scope.clone(), s)
            })
            .collect();
        Theme {
            name: self.name.clone(),
            styles,
        }
    }
}

/// How a task or phase state is shown: a symbol and its name, so that state
/// never depends on colour alone. The symbols are one cell wide everywhere;
/// emoji such as ⛔ are two cells in some terminals and one in others, which
/// breaks table columns inside tmux.
pub fn state_symbol(state: &str) -> &'static str {
    match state {
        "completed" => "✓",
        "failed" => "✗",
        "awaiting_review" => "⏸",
        "blocked" => "■",
        "retrying" => "↻",
        "running" => "▶",
        "pending" => "·",
        "cancelled" => "⊘",
        "skipped" => "»",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use ratatui::style::Color;

    use super::*;

    fn theme(pairs: &[(&str, Style)]) -> Theme {
        Theme::new(
            "t",
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        )
    }

    #[test]
    fn scopes_fall_back_to_broader_ones() {
        let red = Style::new().fg(Color::Red);
        let blue = Style::new().fg(Color::Blue);
        let t = theme(&[("ui", red), ("ui.text", blue)]);
        assert_eq!(t.style("ui.text.focus"), blue);
        assert_eq!(t.style("ui.text"), blue);
        assert_eq!(t.style("ui.border"), red);
        assert_eq!(t.style("ui"), red);
        assert_eq!(t.style("state.running"), Style::default());
    }

    #[test]
    fn no_colour_keeps_emphasis_by_reversing() {
        let sel = Style::new().fg(Color::Black).bg(Color::Rgb(200, 200, 0));
        let bg = Style::new().bg(Color::Rgb(20, 20, 20));
        let t = theme(&[("ui.selection", sel), ("ui.background", bg)]);
        let plain = t.for_terminal(ColorSupport::None);
        assert_eq!(
            plain.style("ui.selection"),
            Style::new().add_modifier(Modifier::REVERSED)
        );
        assert_eq!(plain.style("ui.background"), Style::new());
        let few = t.for_terminal(ColorSupport::Ansi16);
        assert_eq!(few.style("ui.selection").bg, Some(Color::Yellow));
    }

    #[test]
    fn every_state_has_a_symbol() {
        for s in TaskState::ALL {
            assert_ne!(state_symbol(s.as_str()), "?", "{s}");
        }
    }
}
