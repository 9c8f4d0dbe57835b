//! Key names as people write them ("ctrl-c", "tab", "R", "pagedown") and as
//! crossterm reports them, normalised so the two compare equal.

use std::fmt;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyBinding {
    pub code: KeyCode,
    pub modifiers: KeyModifiers,
}

/// Named keys, first name is the one shown.
const NAMED: &[(&str, KeyCode)] = &[
    ("tab", KeyCode::Tab),
    ("shift-tab", KeyCode::BackTab),
    ("backtab", KeyCode::BackTab),
    ("enter", KeyCode::Enter),
    ("return", KeyCode::Enter),
    ("esc", KeyCode::Esc),
    ("escape", KeyCode::Esc),
    ("up", KeyCode::Up),
    ("down", KeyCode::Down),
    ("left", KeyCode::Left),
    ("right", KeyCode::Right),
    ("pgup", KeyCode::PageUp),
    ("pageup", KeyCode::PageUp),
    ("pgdn", KeyCode::PageDown),
    ("pagedown", KeyCode::PageDown),
    ("home", KeyCode::Home),
    ("end", KeyCode::End),
    ("space", KeyCode::Char(' ')),
    ("backspace", KeyCode::Backspace),
    ("del", KeyCode::Delete),
    ("delete", KeyCode::Delete),
    ("insert", KeyCode::Insert),
];

impl KeyBinding {
    pub const fn new(code: KeyCode, modifiers: KeyModifiers) -> KeyBinding {
        KeyBinding { code, modifiers }
    }

    /// The binding a key press matches. Shift is part of the character
    /// ('R' not shift-r) and of back-tab, so it is dropped there; terminals
    /// disagree on whether they report it.
    pub fn from_event(ev: &KeyEvent) -> KeyBinding {
        let mut modifiers =
            ev.modifiers & (KeyModifiers::CONTROL | KeyModifiers::ALT | KeyModifiers::SHIFT);
        if matches!(ev.code, KeyCode::Char(_) | KeyCode::BackTab) {
            modifiers.remove(KeyModifiers::SHIFT);
        }
        KeyBinding::new(ev.code, modifiers).with_control_lowercase()
    }

    /// Ctrl-C and ctrl-c are one key; terminals send either.
    fn with_control_lowercase(mut self) -> KeyBinding {
        if let (KeyCode::Char(c), true) =
            (self.code, self.modifiers.contains(KeyModifiers::CONTROL))
        {
            self.code = KeyCode::Char(c.to_ascii_lowercase());
        }
        self
    }

    /// Parses "a", "R", "ctrl-c", "alt-x", "shift-r", "tab", "f5", "?".
    pub fn parse(text: &str) -> Result<KeyBinding, String> {
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("empty key name".into());
        }
        let mut modifiers = KeyModifiers::NONE;
        let mut shift = false;
        // A lone character is always the key itself, even "-".
        while rest.chars().count() > 1 {
            let lower = rest.to_ascii_lowercase();
            if let Some(r) = lower.strip_prefix("ctrl-") {
                modifiers |= KeyModifiers::CONTROL;
                rest = &rest[rest.len() - r.len()..];
            } else if let Some(r) = lower.strip_prefix("alt-") {
                modifiers |= KeyModifiers::ALT;
                rest = &rest[rest.len() - r.len()..];
            } else if lower.starts_with("shift-") && lower != "shift-tab" {
                shift = true;
                rest = &rest["shift-".len()..];
            } else {
                break;
            }
        }
        let code = key_code(rest).ok_or_else(|| format!("unknown key {text:?}"))?;
        let code = match (shift, code) {
            (false, c) => c,
            (true, KeyCode::Char(c)) => KeyCode::Char(c.to_ascii_uppercase()),
            (true, KeyCode::Tab) => KeyCode::BackTab,
            (true, _) => return Err(format!("shift only goes with a letter or tab: {text:?}")),
        };
        Ok(KeyBinding { code, modifiers }.with_control_lowercase())
    }
}

fn key_code(name: &str) -> Option<KeyCode> {
    let mut chars = name.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        return Some(KeyCode::Char(c));
    }
    let lower = name.to_ascii_lowercase();
    if let Some((_, code)) = NAMED.iter().find(|(n, _)| *n == lower) {
        return Some(*code);
    }
    let n: u8 = lower.strip_prefix('f')?.parse().ok()?;
    (1..=12).contains(&n).then_some(KeyCode::F(n))
}

impl fmt::Display for KeyBinding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.contains(KeyModifiers::CONTROL) {
            f.write_str("ctrl-")?;
        }
        if self.modifiers.contains(KeyModifiers::ALT) {
            f.write_str("alt-")?;
        }
        if self.modifiers.contains(KeyModifiers::SHIFT) {
            f.write_str("shift-")?;
        }
        match self.code {
            KeyCode::Char(' ') => f.write_str("space"),
            KeyCode::Char(c) => write!(f, "{c}"),
            KeyCode::F(n) => write!(f, "f{n}"),
            code => match NAMED.iter().find(|(_, c)| *c == code) {
                Some((name, _)) => f.write_str(name),
                None => write!(f, "{code:?}"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyBinding {
        KeyBinding::new(code, modifiers)
    }

    #[test]
    fn parses_names_people_write() {
        let none = KeyModifiers::NONE;
        assert_eq!(KeyBinding::parse("a"), Ok(key(KeyCode::Char('a'), none)));
        assert_eq!(KeyBinding::parse("R"), Ok(key(KeyCode::Char('R'), none)));
        assert_eq!(
            KeyBinding::parse("shift-r"),
            Ok(key(KeyCode::Char('R'), none))
        );
        assert_eq!(KeyBinding::parse("-"), Ok(key(KeyCode::Char('-'), none)));
        assert_eq!(
            KeyBinding::parse("Ctrl-C"),
            Ok(key(KeyCode::Char('c'), KeyModifiers::CONTROL))
        );
        assert_eq!(
            KeyBinding::parse("ctrl-alt-x"),
            Ok(key(
                KeyCode::Char('x'),
                KeyModifiers::CONTROL | KeyModifiers::ALT
            ))
        );
        assert_eq!(KeyBinding::parse("tab"), Ok(key(KeyCode::Tab, none)));
        assert_eq!(
            KeyBinding::parse("shift-tab"),
            Ok(key(KeyCode::BackTab, none))
        );
        assert_eq!(KeyBinding::parse("enter"), Ok(key(KeyCode::Enter, none)));
        assert_eq!(KeyBinding::parse("esc"), Ok(key(KeyCode::Esc, none)));
        assert_eq!(KeyBinding::parse("up"), Ok(key(KeyCode::Up, none)));
        assert_eq!(
            KeyBinding::parse("PageDown"),
            Ok(key(KeyCode::PageDown, none))
        );
        assert_eq!(KeyBinding::parse("f5"), Ok(key(KeyCode::F(5), none)));
        assert!(KeyBinding::parse("hyper-q").is_err());
        assert!(KeyBinding::parse("f13").is_err());
        assert!(KeyBinding::parse("").is_err());
        assert!(KeyBinding::parse("shift-up").is_err());
    }

    #[test]
    fn events_match_regardless_of_reported_shift() {
        let ev = KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT);
        assert_eq!(KeyBinding::from_event(&ev), KeyBinding::parse("R").unwrap());
        let ev = KeyEvent::new(KeyCode::BackTab, KeyModifiers::SHIFT);
        assert_eq!(
            KeyBinding::from_event(&ev),
            KeyBinding::parse("shift-tab").unwrap()
        );
    }

    #[test]
    fn display_round_trips() {
        for name in [
            "a",
            "ctrl-c",
            "tab",
            "shift-tab",
            "enter",
            "esc",
            "up",
            "pgdn",
            "space",
            "f2",
        ] {
            let k = KeyBinding::parse(name).unwrap();
            assert_eq!(k.to_string(), name);
            assert_eq!(KeyBinding::parse(&k.to_string()), Ok(k));
        }
    }
}
