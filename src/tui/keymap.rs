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
    (Action::Mark, &["space"]),
    (Action::CommandLine, &[":"]),
    (Action::Figures, &["$"]),
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

    /// The defaults with a file's bindings laid over them, and every
    /// problem found, each at its line: a bad entry is left out and the good
    /// ones are kept. A file that cannot be read or parsed at all leaves the
    /// defaults.
    pub fn load(path: &Path) -> (Keymap, Vec<FileWarning>) {
        match config_file::read(path) {
            Ok(text) => Keymap::from_text(path, &text),
            Err(w) => (Keymap::default(), vec![w]),
        }
    }

    pub fn from_text(path: &Path, text: &str) -> (Keymap, Vec<FileWarning>) {
        let src = Source { path, text };
        let table = match src.parse() {
            Ok(t) => t,
            Err(w) => return (Keymap::default(), vec![w]),
        };
        let mut warnings = Vec::new();
        // What the file sets, in its order, each entry with its place.
        let mut set: Vec<(Action, Vec<KeyBinding>, Range<usize>)> = Vec::new();
        for (name, value) in table.iter() {
            let Some(action) = Action::parse(name.get_ref()) else {
                let known: Vec<_> = Action::ALL.iter().map(|a| a.name()).collect();
                warnings.push(src.warning(
                    name.span(),
                    format!(
                        "unknown action {:?}; known actions: {}",
                        name.get_ref(),
                        known.join(", ")
                    ),
                ));
                continue;
            };
            let names = match config_file::strings(&src, value) {
                Ok(n) => n,
                Err(w) => {
                    warnings.push(w);
                    continue;
                }
            };
            let mut keys = Vec::new();
            let mut bad = false;
            for (k, span) in names {
                match KeyBinding::parse(k) {
                    Ok(key) => keys.push(key),
                    Err(e) => {
                        bad = true;
                        warnings.push(src.warning(span, e));
                    }
                }
            }
            // A line with nothing usable is left out: the action keeps its
            // default keys (an empty list on purpose unbinds it).
            if bad && keys.is_empty() {
                continue;
            }
            set.push((action, keys, name.span()));
        }
        // The file's keys first, each to the first entry that claims it;
        // then the defaults of what the file leaves alone, minus the keys
        // the file took.
        let mut lookup: HashMap<KeyBinding, Action> = HashMap::new();
        let mut bindings: Vec<(Action, Vec<KeyBinding>)> = Keymap::default().bindings;
        for (action, keys, span) in &set {
            let mut kept = Vec::new();
            for key in keys {
                match lookup.get(key) {
                    Some(other) if other != action => warnings.push(src.warning(
                        span.clone(),
                        format!(
                            "key {key} is bound to both {} and {}; {} keeps it",
                            other.name(),
                            action.name(),
                            other.name()
                        ),
                    )),
                    _ => {
                        lookup.insert(*key, *action);
                        kept.push(*key);
                    }
                }
            }
            if let Some(slot) = bindings.iter_mut().find(|(a, _)| a == action) {
                slot.1 = kept;
            }
        }
        let from_file: Vec<Action> = set.iter().map(|(a, _, _)| *a).collect();
        for (action, keys) in bindings.iter_mut() {
            if from_file.contains(action) {
                continue;
            }
            keys.retain(|k| !lookup.contains_key(k));
            for k in keys.iter() {
                lookup.insert(*k, *action);
            }
        }
        (Keymap { bindings, lookup }, warnings)
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
        let (map, warnings) =
            Keymap::from_text(&path, "approve = \"y\"\nquit = [\"x\", \"ctrl-q\"]\n");
        assert!(warnings.is_empty(), "{warnings:?}");
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
            let (_, warnings) = Keymap::from_text(&path, text);
            let all: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
            assert!(all.iter().any(|w| w.contains(want)), "{text:?}: {all:?}");
        }
    }

    /// Every bad line is reported and the good bindings are kept.
    #[test]
    fn every_bad_line_is_reported_and_the_good_ones_kept() {
        let path = PathBuf::from("keys.toml");
        let text = "approve = \"y\"\nfly = \"x\"\nreject = \"hyper-r\"\nfeedback = \"F\"\ncancel = \"y\"\n";
        let (map, warnings) = Keymap::from_text(&path, text);
        let lines: Vec<String> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(lines[0].contains("keys.toml:2:"), "{lines:?}");
        assert!(lines[1].contains("keys.toml:3:"), "{lines:?}");
        assert!(lines[2].contains("keys.toml:5:") && lines[2].contains("approve keeps it"));
        assert_eq!(
            map.action(&press(KeyCode::Char('y'))),
            Some(Action::Approve)
        );
        assert_eq!(
            map.action(&press(KeyCode::Char('F'))),
            Some(Action::Feedback)
        );
        // A default key the file gave to another action moves with it.
        assert_eq!(map.action(&press(KeyCode::Char('f'))), None);
        assert_eq!(
            map.action(&press(KeyCode::Char('r'))),
            Some(Action::Reject),
            "reject's bad line is left out: its default stays"
        );
    }

    #[test]
    fn a_bad_or_missing_file_falls_back_to_defaults_with_a_warning() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.toml");
        std::fs::write(&path, "approve = [\n").unwrap();
        let (map, warnings) = Keymap::load(&path);
        assert!(
            warnings[0].to_string().contains("keys.toml:"),
            "{warnings:?}"
        );
        assert_eq!(map.action(&press(KeyCode::Char('r'))), Some(Action::Reject));
        let (_, missing) = Keymap::load(&dir.path().join("nope.toml"));
        assert!(missing[0].to_string().contains("cannot read"));
    }
}
