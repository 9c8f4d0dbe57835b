//! Which key does what: a table of data, overridable from a `keys.toml` like
//!
//! ```toml
//! approve = "a"
//! quit = ["q", "ctrl-c"]
//! ```
//!
//! A bad file never stops the dashboard: it is named in a warning (with the
//! line) and the defaults are used.

use std::collections::HashMap;
use std::ops::Range;
use std::path::Path;

use crossterm::event::KeyEvent;

use super::action::Action;
use super::config_file::{self, FileWarning, Source};
use super::key::KeyBinding;

/// The default bindings. Kept free of duplicates by a test.
pub const DEFAULT_KEYS: &[(Action, &[&str])] = &[
    (Action::Approve, &["a"]),
    (Action::Reject, &["r"]),
    (Action::Feedback, &["f"]),
    (Action::Resolve, &["b"]),
    (Action::RetryPhase, &["R"]),
    (Action::Cancel, &["c"]),
    (Action::RaiseBudget, &["B"]),
    (Action::PauseResume, &["p"]),
    (Action::NextPane, &["tab"]),
    (Action::PrevPane, &["shift-tab"]),
    (Action::Up, &["up", "k"]),
    (Action::Down, &["down", "j"]),
    (Action::PageUp, &["pgup"]),
    (Action::PageDown, &["pgdn"]),
    (Action::Top, &["home", "g"]),
    (Action::Bottom, &["end", "G"]),
    (Action::Open, &["enter"]),
    (Action::Back, &["esc"]),
    (Action::Filter, &["/"]),
    (Action::Sort, &["s"]),
    (Action::SortReverse, &["S"]),
    (Action::CycleTheme, &["t"]),
    (Action::Help, &["?"]),
    (Action::Quit, &["q", "ctrl-c"]),
    (Action::Detach, &["d"]),
];

#[derive(Debug, Clone)]
pub struct Keymap {
    /// Every action with its keys, in help order.
    bindings: Vec<(Action, Vec<KeyBinding>)>,
    lookup: HashMap<KeyBinding, Action>,
}

impl Default for Keymap {
    fn default() -> Keymap {
        let bindings = DEFAULT_KEYS
            .iter()
            .map(|(action, keys)| {
                let keys = keys
                    .iter()
                    .map(|k| KeyBinding::parse(k).expect("default key names parse"))
                    .collect();
                (*action, keys)
            })
            .collect();
        Keymap::build(bindings, |_| 0..0).expect("defaults have no duplicate keys")
    }
}

impl Keymap {
    /// Builds the lookup, refusing a key bound twice. `span` locates an
    /// action's entry in the file for the complaint.
    fn build(
        bindings: Vec<(Action, Vec<KeyBinding>)>,
        span: impl Fn(Action) -> Range<usize>,
    ) -> Result<Keymap, (Range<usize>, String)> {
        let mut lookup: HashMap<KeyBinding, Action> = HashMap::new();
        for (action, keys) in &bindings {
            for key in keys {
                if let Some(other) = lookup.insert(*key, *action).filter(|o| o != action) {
                    // Blame whichever of the two the file set.
                    let at = [span(*action), span(other)]
                        .into_iter()
                        .find(|s| s.end > 0)
                        .unwrap_or(0..0);
                    return Err((
                        at,
                        format!(
                            "key {key} is bound to both {} and {}",
                            other.name(),
                            action.name()
                        ),
                    ));
                }
            }
        }
        Ok(Keymap { bindings, lookup })
    }

    /// The defaults with a file's bindings laid over them; on any problem the
    /// defaults alone, and the problem.
    pub fn load(path: &Path) -> (Keymap, Option<FileWarning>) {
        let result = config_file::read(path).and_then(|text| Keymap::from_text(path, &text));
        match result {
            Ok(map) => (map, None),
            Err(w) => (Keymap::default(), Some(w)),
        }
    }

    pub fn from_text(path: &Path, text: &str) -> Result<Keymap, FileWarning> {
        let src = Source { path, text };
        let table = src.parse()?;
        let mut bindings = Keymap::default().bindings;
        let mut spans: HashMap<Action, Range<usize>> = HashMap::new();
        for (name, value) in table.iter() {
            let Some(action) = Action::parse(name.get_ref()) else {
                let known: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
                return Err(src.warning(
                    name.span(),
                    format!(
                        "unknown action {:?}; known actions: {}",
                        name.get_ref(),
                        known.join(", ")
                    ),
                ));
            };
            let keys = config_file::strings(&src, value)?
                .into_iter()
                .map(|(k, span)| KeyBinding::parse(k).map_err(|e| src.warning(span, e)))
                .collect::<Result<Vec<_>, _>>()?;
            spans.insert(action, name.span());
            if let Some(slot) = bindings.iter_mut().find(|(a, _)| *a == action) {
                slot.1 = keys;
            }
        }
        Keymap::build(bindings, |a| spans.get(&a).cloned().unwrap_or(0..0))
            .map_err(|(span, msg)| src.warning(span, msg))
    }

    pub fn action(&self, ev: &KeyEvent) -> Option<Action> {
        self.lookup.get(&KeyBinding::from_event(ev)).copied()
    }

    pub fn keys(&self, action: Action) -> &[KeyBinding] {
        self.bindings
            .iter()
            .find(|(a, _)| *a == action)
            .map_or(&[], |(_, k)| k.as_slice())
    }

    /// The first key of an action, for hints; "" when unbound.
    pub fn hint(&self, action: Action) -> String {
        self.keys(action)
            .first()
            .map(|k| k.to_string())
            .unwrap_or_default()
    }

    /// Every action with its keys, in help order.
    pub fn bindings(&self) -> &[(Action, Vec<KeyBinding>)] {
        &self.bindings
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crossterm::event::{KeyCode, KeyModifiers};

    use super::*;

    fn press(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn defaults_have_no_duplicate_keys_and_cover_every_action() {
        let mut seen: HashMap<KeyBinding, Action> = HashMap::new();
        for (action, keys) in DEFAULT_KEYS {
            for k in *keys {
                let key = KeyBinding::parse(k).unwrap();
                if let Some(other) = seen.insert(key, *action) {
                    panic!("{k} is bound to {other:?} and {action:?}");
                }
            }
        }
        for a in Action::ALL {
            assert!(
                DEFAULT_KEYS.iter().any(|(d, _)| *d == a),
                "{a:?} has no key"
            );
        }
    }

    #[test]
    fn default_lookup() {
        let map = Keymap::default();
        assert_eq!(
            map.action(&press(KeyCode::Char('a'))),
            Some(Action::Approve)
        );
        assert_eq!(map.action(&press(KeyCode::Char('j'))), Some(Action::Down));
        assert_eq!(map.action(&press(KeyCode::Down)), Some(Action::Down));
        assert_eq!(map.action(&press(KeyCode::Tab)), Some(Action::NextPane));
        let ctrl_c = KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL);
        assert_eq!(map.action(&ctrl_c), Some(Action::Quit));
        let shift_r = KeyEvent::new(KeyCode::Char('R'), KeyModifiers::SHIFT);
        assert_eq!(map.action(&shift_r), Some(Action::RetryPhase));
        assert_eq!(map.action(&press(KeyCode::Char('z'))), None);
    }

    #[test]
    fn a_keys_file_overrides_only_what_it_names() {
        let path = PathBuf::from("keys.toml");
        let map =
            Keymap::from_text(&path, "approve = \"y\"\nquit = [\"x\", \"ctrl-q\"]\n").unwrap();
        assert_eq!(
            map.action(&press(KeyCode::Char('y'))),
            Some(Action::Approve)
        );
        assert_eq!(map.action(&press(KeyCode::Char('a'))), None);
        assert_eq!(map.action(&press(KeyCode::Char('x'))), Some(Action::Quit));
        assert_eq!(map.action(&press(KeyCode::Char('q'))), None);
        assert_eq!(map.action(&press(KeyCode::Char('r'))), Some(Action::Reject));
    }

    #[test]
    fn bad_keys_files_name_the_line() {
        let path = PathBuf::from("keys.toml");
        let cases = [
            (
                "approve = \"a\"\nfly = \"x\"\n",
                "keys.toml:2: unknown action \"fly\"",
            ),
            (
                "approve = \"a\"\n\nreject = \"hyper-r\"\n",
                "keys.toml:3: unknown key",
            ),
            ("approve = 3\n", "keys.toml:1: expected a string"),
            (
                "approve = [\n  \"a\",\n  4,\n]\n",
                "keys.toml:3: expected a string",
            ),
            ("reject = \"x\"\napprove = \"x\"\n", "is bound to both"),
            ("approve = \n", "keys.toml:1:"),
        ];
        for (text, want) in cases {
            let err = Keymap::from_text(&path, text).unwrap_err().to_string();
            assert!(err.contains(want), "{text:?}: {err}");
        }
    }

    #[test]
    fn a_bad_or_missing_file_falls_back_to_defaults_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, "approve = \"a\"\nreject = \"a\"\n").unwrap();
        let (map, warning) = Keymap::load(&path);
        let warning = warning.expect("a warning").to_string();
        assert!(warning.contains("keys.toml:"), "{warning}");
        assert_eq!(map.action(&press(KeyCode::Char('r'))), Some(Action::Reject));
        let (_, missing) = Keymap::load(&dir.path().join("nope.toml"));
        assert!(missing.unwrap().to_string().contains("cannot read"));
    }
}
