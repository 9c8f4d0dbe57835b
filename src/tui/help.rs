//! The key table, drawn from the keymap in use, so it lists what the keys
//! really do (including a user's own bindings).

use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Widget;

use super::keymap::Keymap;
use super::log_pane::LOG_KEYS;
use super::theme::Theme;
use super::widgets::scrolled_popup;

pub struct Help<'a> {
    pub keymap: &'a Keymap,
    pub theme: &'a Theme,
    pub scroll: u16,
}

/// Width of the key column.
const KEY_COL: usize = 16;

impl Help<'_> {
    pub fn lines(&self) -> Vec<Line<'static>> {
        let t = self.theme;
        let row = |keys: String, what: &str| {
            Line::from(vec![
                Span::styled(format!("  {keys:<KEY_COL$}"), t.style("ui.key")),
                Span::raw(what.to_string()),
            ])
        };
        let section = |title: &str| Line::styled(title.to_string(), t.text("ui.table.header"));
        let mut lines = vec![section("Keys")];
        for (action, keys) in self.keymap.bindings() {
            let names: Vec<String> = keys.iter().map(|k| k.to_string()).collect();
            let names = if names.is_empty() {
                "(unbound)".to_string()
            } else {
                names.join(", ")
            };
            lines.push(row(names, action.describe()));
        }
        lines.push(Line::raw(""));
        lines.push(section("In the log pane"));
        for (keys, what) in LOG_KEYS {
            lines.push(row(keys.to_string(), what));
        }
        lines.push(Line::raw(""));
        lines.push(section("In text fields"));
        lines.push(row("enter / esc".into(), "done / cancel"));
        lines.push(row(
            "ctrl-u, ctrl-w".into(),
            "clear the line, delete a word",
        ));
        lines.push(Line::raw(""));
        lines.push(section("Mouse"));
        lines.push(row(
            "click".into(),
            "select a task (shift-drag still selects text)",
        ));
        lines.push(Line::raw(""));
        lines.push(section("Filter (/, :, --where)"));
        for (k, what) in [
            (
                "state:failed",
                "state, phase, agent, model, id (id:DEV-1* a prefix)",
            ),
            ("cost>0.10", "also tokens, attempts, waited>5m; > >= < <= ="),
            ("/re/", "ids, hold and end reasons matching the expression"),
            ("!term", "not; terms joined by spaces must all hold"),
        ] {
            lines.push(row(k.into(), what));
        }
        lines.push(Line::raw(""));
        lines.push(section("Attention"));
        lines.push(row(
            "--notify".into(),
            "bell (default), osc9, osc777 or off when a task waits for you",
        ));
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            "  Bindings can be changed in keys.toml in $XDG_CONFIG_HOME/baton (else",
            t.text("ui.text.dim"),
        ));
        lines.push(Line::styled(
            "  ~/.config/baton), or --keys FILE: e.g. approve = \"y\"; a bad line is",
            t.text("ui.text.dim"),
        ));
        lines.push(Line::styled(
            "  reported and left out.",
            t.text("ui.text.dim"),
        ));
        lines
    }
}

impl Widget for Help<'_> {
    fn render(self, area: Rect, buf: &mut Buffer) {
        scrolled_popup(
            self.lines(),
            " Help · esc closes · ↑↓ scroll ",
            76,
            self.scroll,
            self.theme,
            area,
            buf,
        );
    }
}
