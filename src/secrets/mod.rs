//! Secrets never reach the store, a log or a screen.
//!
//! The secrets of a run are the values of every http agent's key variable
//! (`api_key_env`, or the provider's default) and of every variable named
//! in the pipeline's `secret_env`, read from the environment when the
//! engine starts. Text is masked before the engine records it (task inputs,
//! agent outputs and traces, error messages, reasons, operator notes: see
//! `event`) and before live updates go out, so the database never holds a
//! secret and neither does anything made from it (the run log, `show`,
//! `list`, the dashboard).
//!
//! What counts as the secret appearing: any run of at least
//! [`MIN_PIECE`] characters of it, in any ASCII letter case, so a key cut
//! short at either end, or upper-cased, is masked too; a secret shorter
//! than that is masked only whole (in any case). Each stretch of text
//! covered by such runs becomes [`HIDDEN`]. Values shorter than
//! [`SHORTEST`] characters are not used (they would mask ordinary words)
//! and the run is warned.

mod event;

use std::borrow::Cow;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde_json::Value;

use crate::spec::Pipeline;
use crate::spec::model::AgentKind;

/// The shortest piece of a secret that is masked on its own.
pub const MIN_PIECE: usize = 8;

/// A value shorter than this is no secret worth the name; it is not used.
pub const SHORTEST: usize = 4;

/// What masked text shows in place of a secret.
pub const HIDDEN: &str = "[secret]";

/// The secrets of one run, ready to mask text.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// Every piece of every secret; `None` when there is nothing to mask.
    pieces: Option<AhoCorasick>,
}

impl Secrets {
    /// Masks these values. Empty and too short values are left out.
    pub fn new<I, S>(values: I) -> Secrets
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut patterns: Vec<String> = Vec::new();
        for value in values {
            let chars: Vec<char> = value.as_ref().trim().chars().collect();
            if chars.len() < SHORTEST {
                continue;
            }
            if chars.len() <= MIN_PIECE {
                patterns.push(chars.iter().collect());
            } else {
                patterns.extend(chars.windows(MIN_PIECE).map(|w| w.iter().collect()));
            }
        }
        patterns.sort();
        patterns.dedup();
        if patterns.is_empty() {
            return Secrets::default();
        }
        let pieces = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&patterns)
            .ok();
        Secrets { pieces }
    }

    /// The secrets of `pipeline` as the environment holds them now, and a
    /// warning for each variable that holds too little to mask.
    pub fn of(pipeline: &Pipeline) -> (Secrets, Vec<String>) {
        let mut names: Vec<&str> = pipeline
            .agents
            .values()
            .filter_map(|a| match &a.kind {
                AgentKind::Http(h) => h.api_key_env.as_deref(),
                _ => None,
            })
            .collect();
        names.extend(pipeline.secret_env.iter().map(String::as_str));
        names.sort();
        names.dedup();
        let mut values = Vec::new();
        let mut warnings = Vec::new();
        for name in names {
            // A key that is not set stops http agents on their own; a
            // `secret_env` variable that is not set has nothing to hide.
            let Ok(value) = std::env::var(name) else {
                continue;
            };
            let len = value.trim().chars().count();
            if len > 0 && len < SHORTEST {
                warnings.push(format!(
                    "${name} holds only {len} character(s): too short to mask without hiding ordinary text, so it is not masked"
                ));
            }
            values.push(value);
        }
        (Secrets::new(values), warnings)
    }

    /// Whether there is anything to mask.
    pub fn is_empty(&self) -> bool {
        self.pieces.is_none()
    }

    /// `text` with every stretch covered by pieces of a secret replaced.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let Some(pieces) = &self.pieces else {
            return Cow::Borrowed(text);
        };
        // Overlapping matches: a cut secret is covered by the union of the
        // pieces it holds, however they overlap.
        let mut spans: Vec<(usize, usize)> = pieces
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect();
        if spans.is_empty() {
            return Cow::Borrowed(text);
        }
        spans.sort_unstable();
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        let mut i = 0;
        while i < spans.len() {
            let (start, mut end) = spans[i];
            i += 1;
            while i < spans.len() && spans[i].0 <= end {
                end = end.max(spans[i].1);
                i += 1;
            }
            out.push_str(&text[last..start]);
            out.push_str(HIDDEN);
            last = end;
        }
        out.push_str(&text[last..]);
        Cow::Owned(out)
    }

    /// Masks a string in place.
    pub fn mask_string(&self, s: &mut String) {
        if let Cow::Owned(masked) = self.mask(s) {
            *s = masked;
        }
    }

    /// Masks every string in a JSON value, object keys included.
    pub fn mask_value(&self, v: &mut Value) {
        if self.is_empty() {
            return;
        }
        // An explicit stack: a reply nested deeper than any recursion
        // would go is walked all the same.
        let mut stack = vec![v];
        while let Some(v) = stack.pop() {
            match v {
                Value::String(s) => self.mask_string(s),
                Value::Array(items) => stack.extend(items.iter_mut()),
                Value::Object(map) => {
                    if map.keys().any(|k| matches!(self.mask(k), Cow::Owned(_))) {
                        let old = std::mem::take(map);
                        for (k, val) in old {
                            map.insert(self.mask(&k).into_owned(), val);
                        }
                    }
                    stack.extend(map.values_mut());
                }
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const KEY: &str = "sk-live-7f3a9c2e5b1d4086";

    #[test]
    fn the_whole_secret_in_any_case_and_cut_at_either_end() {
        let s = Secrets::new([KEY]);
        for text in [
            KEY.to_string(),
            KEY.to_uppercase(),
            KEY[1..].to_string(),
            KEY[..KEY.len() - 1].to_string(),
            KEY[5..13].to_string(),
            "SK-Live-7F3A9c2e5b1d4086".to_string(),
        ] {
            assert_eq!(s.mask(&format!("key={text}.")), "key=[secret].", "{text}");
        }
        // Seven characters of it are no secret.
        assert_eq!(
            s.mask(&format!("x {} y", &KEY[3..10])),
            format!("x {} y", &KEY[3..10])
        );
        // Twice, side by side, and apart.
        assert_eq!(
            s.mask(&format!("{KEY}{KEY} and {KEY}")),
            "[secret] and [secret]"
        );
    }

    #[test]
    fn short_secrets_are_masked_whole_and_tiny_ones_not_at_all() {
        let s = Secrets::new(["hunter2", "ab", "  "]);
        assert_eq!(s.mask("pw HUNTER2 or hunter"), "pw [secret] or hunter");
        assert_eq!(s.mask("abc"), "abc");
        assert!(Secrets::new(["", "x"]).is_empty());
        assert!(matches!(
            Secrets::new([KEY]).mask("clean"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn text_around_and_between_stays_whole_unicode_included() {
        let s = Secrets::new([KEY]);
        assert_eq!(
            s.mask(&format!("ü→{}←é", KEY.to_uppercase())),
            "ü→[secret]←é"
        );
    }

    #[test]
    fn json_values_keys_included_and_deeply_nested() {
        let s = Secrets::new([KEY]);
        let mut v =
            json!({"note": format!("use {KEY}"), KEY: [1, {"k": KEY[2..].to_string()}], "n": 5});
        s.mask_value(&mut v);
        assert_eq!(
            v,
            json!({"note": "use [secret]", "[secret]": [1, {"k": "[secret]"}], "n": 5})
        );
        let mut deep = json!(KEY);
        for _ in 0..1000 {
            deep = json!([deep]);
        }
        s.mask_value(&mut deep);
        let mut inner = &deep;
        while let Value::Array(a) = inner {
            inner = &a[0];
        }
        assert_eq!(inner, "[secret]");
    }
}
