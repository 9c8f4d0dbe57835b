//! Typed reads from the spanned TOML tree. Each read that finds a value of
//! the wrong kind records a problem at that value and yields `None`, so that
//! checking goes on and every problem in the file is reported at once.
//!
//! The tree is walked by hand rather than deserialized with serde: serde
//! stops at the first error, and its tagged enums lose spans.

use std::ops::Range;
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::duration::{self, DURATION_FORMS};
use super::error::Diag;
use super::limits::show_count;
use super::suggest::did_you_mean;

pub(crate) type Value<'i> = Spanned<DeValue<'i>>;

/// A table of the file, with where it is and how messages name it.
pub(crate) struct Table<'a, 'i> {
    pub(crate) inner: &'a DeTable<'i>,
    /// The header (`[agents.fast]`), the inline table, or the start of the
    /// file for the top level: where "missing key" problems point.
    pub(crate) span: Range<usize>,
    /// With its preposition, e.g. `in [defaults]` or `at the top level`.
    pub(crate) place: String,
}

/// The article and name of a TOML type, for "must be X, not Y".
pub(crate) fn a_type(v: &DeValue<'_>) -> &'static str {
    match v {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date-time",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// The value of a TOML integer, if it fits an `i64`.
pub(crate) fn integer_value(v: &DeValue<'_>) -> Option<i64> {
    wide_integer_value(v).and_then(|n| i64::try_from(n).ok())
}

/// The value of a TOML integer, if it fits an `i128`: wide enough to tell
/// a number just past a range from one past every integer type.
pub(crate) fn wide_integer_value(v: &DeValue<'_>) -> Option<i128> {
    match v {
        DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
        _ => None,
    }
}

impl<'a, 'i> Table<'a, 'i> {
    pub(crate) fn new(inner: &'a DeTable<'i>, span: Range<usize>, place: String) -> Self {
        Table { inner, span, place }
    }

    /// How messages name a part of this table, e.g. `in the retry of
    /// [defaults]`.
    pub(crate) fn part(&self, what: &str) -> String {
        let whose = self.place.strip_prefix("in ").unwrap_or(&self.place);
        format!("in the {what} of {whose}")
    }

    pub(crate) fn get(&self, key: &str) -> Option<&'a Value<'i>> {
        self.inner.get(key)
    }

    /// Reports every key not in `allowed`. `elsewhere` may say where a key
    /// belongs instead (e.g. "`latency` is a key of sim agents").
    pub(crate) fn check_keys(
        &self,
        d: &mut Diag<'_>,
        allowed: &[&str],
        elsewhere: impl Fn(&str) -> Option<String>,
    ) {
        for key in self.inner.keys() {
            let name: &str = key.get_ref();
            if allowed.contains(&name) {
                continue;
            }
            let why = elsewhere(name)
                .map(|w| format!("{w}; "))
                .unwrap_or_default();
            d.error(
                key.span(),
                format!("unknown key `{name}` {}", self.place),
                format!(
                    "{why}allowed keys here are: {}{}",
                    allowed.join(", "),
                    did_you_mean(name, allowed.iter().copied())
                ),
            );
        }
    }

    /// Records that `key` must be present, pointing at this table.
    pub(crate) fn missing(&self, d: &mut Diag<'_>, key: &str, help: &str) {
        d.error(
            self.span.clone(),
            format!("missing key `{key}` {}", self.place),
            help,
        );
    }

    fn wrong_type(&self, d: &mut Diag<'_>, key: &str, v: &Value<'_>, wanted: &str, example: &str) {
        d.error(
            v.span(),
            format!(
                "`{key}` {} must be {wanted}, not {}",
                self.place,
                a_type(v.get_ref())
            ),
            format!("write it like {key} = {example}"),
        );
    }

    pub(crate) fn string(&self, d: &mut Diag<'_>, key: &str) -> Option<Spanned<&'a str>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(Spanned::new(v.span(), s.as_ref())),
            _ => {
                self.wrong_type(d, key, v, "a string", "\"...\"");
                None
            }
        }
    }

    /// A string that must be present; `help` says what to add when it is not.
    pub(crate) fn required_string(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        help: &str,
    ) -> Option<Spanned<&'a str>> {
        if self.get(key).is_none() {
            self.missing(d, key, help);
        }
        self.string(d, key)
    }

    /// One of a fixed set of words.
    pub(crate) fn choice(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        choices: &[&str],
    ) -> Option<Spanned<&'a str>> {
        let s = self.string(d, key)?;
        if choices.contains(s.get_ref()) {
            return Some(s);
        }
        d.error(
            s.span(),
            format!("unknown {key} \"{}\" {}", s.get_ref(), self.place),
            format!(
                "{key} is one of: {}{}",
                choices.join(", "),
                did_you_mean(s.get_ref(), choices.iter().copied())
            ),
        );
        None
    }

    /// A whole number from `min` to `max`. Below or above is a problem at
    /// the value that names the range; so is a number too long for any
    /// integer type.
    pub(crate) fn count(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        min: u64,
        max: u64,
    ) -> Option<Spanned<u64>> {
        let v = self.get(key)?;
        if !matches!(v.get_ref(), DeValue::Integer(_)) {
            self.wrong_type(d, key, v, "a whole number", "4");
            return None;
        }
        let n = wide_integer_value(v.get_ref());
        if let Some(n) = n.filter(|n| (i128::from(min)..=i128::from(max)).contains(n)) {
            return Some(Spanned::new(v.span(), n as u64));
        }
        let written = d.text().get(v.span()).unwrap_or("it").trim().to_string();
        let message = match n {
            Some(n) if n < i128::from(min) => {
                format!(
                    "`{key}` {} must be at least {min}, not {written}",
                    self.place
                )
            }
            _ => format!(
                "`{key}` {} must be at most {}, not {written}",
                self.place,
                show_count(max)
            ),
        };
        d.error(
            v.span(),
            message,
            format!(
                "set {key} to a whole number from {} to {}",
                show_count(min),
                show_count(max)
            ),
        );
        None
    }

    /// A number from 0 to 1; integers are taken as floats.
    pub(crate) fn fraction(&self, d: &mut Diag<'_>, key: &str) -> Option<Spanned<f64>> {
        let v = self.get(key)?;
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().parse::<f64>().ok(),
            DeValue::Integer(_) => integer_value(v.get_ref()).map(|n| n as f64),
            _ => {
                self.wrong_type(d, key, v, "a number from 0 to 1", "0.05");
                return None;
            }
        };
        match x {
            Some(x) if (0.0..=1.0).contains(&x) => Some(Spanned::new(v.span(), x)),
            _ => {
                d.error(
                    v.span(),
                    format!("`{key}` {} must be from 0 to 1", self.place),
                    format!("it is a share: write e.g. {key} = 0.05 for 5%"),
                );
                None
            }
        }
    }

    /// An amount of money above zero and at most `max`; integers are taken
    /// as floats.
    pub(crate) fn dollars(&self, d: &mut Diag<'_>, key: &str, max: f64) -> Option<Spanned<f64>> {
        let v = self.get(key)?;
        let x = match v.get_ref() {
            DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
            DeValue::Integer(_) => integer_value(v.get_ref()).map(|n| n as f64),
            _ => {
                self.wrong_type(d, key, v, "an amount in dollars", "0.50");
                return None;
            }
        };
        let max_shown = show_count(max as u64);
        match x {
            Some(x) if x.is_finite() && x > 0.0 && x <= max => Some(Spanned::new(v.span(), x)),
            Some(x) if x > max => {
                d.error(
                    v.span(),
                    format!("`{key}` {} must be at most {max_shown} dollars", self.place),
                    format!("write dollars from more than 0 to {max_shown}, e.g. {key} = 0.50, or leave the key out for no limit"),
                );
                None
            }
            _ => {
                d.error(
                    v.span(),
                    format!("`{key}` {} must be more than 0 dollars", self.place),
                    format!("write dollars as a number from more than 0 to {max_shown}, e.g. {key} = 0.50, or leave the key out for no limit"),
                );
                None
            }
        }
    }

    /// An array of strings; each element of another type is a problem.
    pub(crate) fn strings(&self, d: &mut Diag<'_>, key: &str) -> Option<Vec<Spanned<&'a str>>> {
        let v = self.get(key)?;
        let DeValue::Array(items) = v.get_ref() else {
            self.wrong_type(d, key, v, "an array of strings", "[\"a\", \"b\"]");
            return None;
        };
        let mut out = Vec::with_capacity(items.len());
        let mut ok = true;
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(Spanned::new(item.span(), s.as_ref())),
                other => {
                    ok = false;
                    d.error(
                        item.span(),
                        format!(
                            "`{key}` {} must hold only strings, not {}",
                            self.place,
                            a_type(other)
                        ),
                        "put each entry in quotes, e.g. [\"a\", \"b\"]",
                    );
                }
            }
        }
        ok.then_some(out)
    }

    /// A sub-table; `place` names it in messages.
    pub(crate) fn table(
        &self,
        d: &mut Diag<'_>,
        key: &str,
        place: String,
    ) -> Option<Table<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Table::new(t, v.span(), place)),
            _ => {
                self.wrong_type(d, key, v, "a table", "{ ... }");
                None
            }
        }
    }

    pub(crate) fn duration(&self, d: &mut Diag<'_>, key: &str) -> Option<Spanned<Duration>> {
        let v = self.get(key)?;
        let DeValue::String(s) = v.get_ref() else {
            self.wrong_type(d, key, v, "a duration in quotes", "\"30s\"");
            return None;
        };
        match duration::parse(s) {
            Ok(t) => Some(Spanned::new(v.span(), t)),
            Err(why) => {
                d.error(
                    v.span(),
                    format!("bad duration for `{key}` {}: {why}", self.place),
                    DURATION_FORMS,
                );
                None
            }
        }
    }

    /// A duration longer than zero, for timeouts.
    pub(crate) fn timeout(&self, d: &mut Diag<'_>, key: &str) -> Option<Spanned<Duration>> {
        let t = self.duration(d, key)?;
        if t.get_ref().is_zero() {
            d.error(
                t.span(),
                format!("`{key}` {} must be longer than 0s", self.place),
                "every attempt would time out at once; give a duration such as \"30s\"",
            );
            return None;
        }
        Some(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on the top-level table of `text` and gives the problems.
    fn with_table(text: &str, f: impl FnOnce(&mut Diag<'_>, &Table<'_, '_>)) -> Vec<String> {
        let root = DeTable::parse(text).unwrap();
        let mut d = Diag::new(text);
        let t = Table::new(root.get_ref(), 0..0, "at the top level".into());
        f(&mut d, &t);
        d.into_error(std::path::Path::new("t.toml"))
            .map(|e| e.problems.iter().map(|p| p.to_string()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn unknown_keys_point_at_the_key_and_list_allowed_ones() {
        let found = with_table("name = \"x\"\nnmae = \"y\"\n", |d, t| {
            t.check_keys(d, &["name", "phases"], |_| None)
        });
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("2:1: error: unknown key `nmae`"),
            "{found:?}"
        );
        assert!(found[0].contains("allowed keys here are: name, phases"));
        assert!(found[0].contains("did you mean \"name\"?"));
    }

    #[test]
    fn wrong_types_point_at_the_value() {
        let found = with_table("name = 5\n", |d, t| assert!(t.string(d, "name").is_none()));
        assert!(
            found[0].starts_with(
                "1:8: error: `name` at the top level must be a string, not an integer"
            )
        );
    }

    #[test]
    fn numbers_and_fractions() {
        let found = with_table("a = 0\nb = 3\nc = 1.5\nd = 1\ne = 0x10\n", |d, t| {
            assert!(t.count(d, "a", 1, 10).is_none());
            assert_eq!(t.count(d, "b", 1, 10).map(|s| *s.get_ref()), Some(3));
            assert!(t.fraction(d, "c").is_none());
            assert_eq!(t.fraction(d, "d").map(|s| *s.get_ref()), Some(1.0));
            assert_eq!(t.count(d, "e", 0, 16).map(|s| *s.get_ref()), Some(16));
        });
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("1:5: error: `a` at the top level must be at least 1, not 0"));
        assert!(found[1].starts_with("3:5: error: `c` at the top level must be from 0 to 1"));
    }

    #[test]
    fn numbers_with_underscores_and_special_floats() {
        let found = with_table("a = 0.000_5\nb = 1_000\nc = nan\nd = inf\n", |d, t| {
            assert_eq!(t.fraction(d, "a").map(|s| *s.get_ref()), Some(0.0005));
            assert_eq!(t.count(d, "b", 0, 1000).map(|s| *s.get_ref()), Some(1000));
            assert!(t.fraction(d, "c").is_none());
            assert!(t.fraction(d, "d").is_none());
        });
        assert_eq!(found.len(), 2, "{found:?}");
    }

    #[test]
    fn counts_past_their_range_name_it_however_large() {
        let found = with_table(
            "a = 100_001\nb = 1_000_000_000_000\nc = 99999999999999999999999999999999999999999\nd = -9223372036854775808\ne = 100_000\n",
            |d, t| {
                assert!(t.count(d, "a", 1, 100_000).is_none());
                assert!(t.count(d, "b", 1, 100_000).is_none());
                assert!(t.count(d, "c", 1, 100_000).is_none());
                assert!(t.count(d, "d", 1, 100_000).is_none());
                assert_eq!(
                    t.count(d, "e", 1, 100_000).map(|s| *s.get_ref()),
                    Some(100_000)
                );
            },
        );
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found[0].starts_with("1:5: error: `a` at the top level must be at most 100_000, not 100_001\n  help: set a to a whole number from 1 to 100_000"),
            "{found:?}"
        );
        assert!(found[1].starts_with(
            "2:5: error: `b` at the top level must be at most 100_000, not 1_000_000_000_000"
        ));
        assert!(
            found[2]
                .starts_with("3:5: error: `c` at the top level must be at most 100_000, not 9999")
        );
        assert!(found[3].starts_with(
            "4:5: error: `d` at the top level must be at least 1, not -9223372036854775808"
        ));
    }

    #[test]
    fn dollars_have_a_ceiling() {
        let found = with_table(
            "a = 1e9\nb = 1_000_000_001\nc = 1e308\nd = inf\ne = -1\n",
            |d, t| {
                assert_eq!(t.dollars(d, "a", 1e9).map(|s| *s.get_ref()), Some(1e9));
                assert!(t.dollars(d, "b", 1e9).is_none());
                assert!(t.dollars(d, "c", 1e9).is_none());
                assert!(t.dollars(d, "d", 1e9).is_none());
                assert!(t.dollars(d, "e", 1e9).is_none());
            },
        );
        assert_eq!(found.len(), 4, "{found:?}");
        assert!(
            found[0].starts_with(
                "2:5: error: `b` at the top level must be at most 1_000_000_000 dollars"
            ),
            "{found:?}"
        );
        assert!(
            found[1].contains("must be at most 1_000_000_000 dollars"),
            "{found:?}"
        );
        assert!(
            found[2].contains("must be at most 1_000_000_000 dollars"),
            "{found:?}"
        );
        assert!(
            found[3].contains("must be more than 0 dollars"),
            "{found:?}"
        );
    }

    #[test]
    fn durations_past_thirty_days_are_refused_with_the_range() {
        let found = with_table(
            "a = \"100000000h\"\nb = \"9223372036854775807ms\"\nc = \"720h\"\n",
            |d, t| {
                assert!(t.duration(d, "a").is_none());
                assert!(t.timeout(d, "b").is_none());
                assert!(t.duration(d, "c").is_some());
            },
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(found[0].starts_with("1:5: error: bad duration for `a` at the top level: \"100000000h\" is longer than 720h (30 days)"), "{found:?}");
        assert!(
            found[1].starts_with("2:5: error: bad duration for `b`"),
            "{found:?}"
        );
        assert!(found[1].contains("from 0s to 720h (30 days)"), "{found:?}");
    }

    #[test]
    fn string_lists_report_each_bad_entry() {
        let found = with_table("x = [\"a\", 1, \"b\", true]\n", |d, t| {
            assert!(t.strings(d, "x").is_none())
        });
        assert_eq!(found.len(), 2);
        assert!(found[0].starts_with("1:11:"));
        assert!(found[1].starts_with("1:19:"));
    }

    #[test]
    fn durations_and_timeouts() {
        let found = with_table("a = \"5 min\"\nb = \"0s\"\nc = \"0s\"\n", |d, t| {
            assert!(t.duration(d, "a").is_none());
            assert!(t.timeout(d, "b").is_none());
            assert_eq!(
                t.duration(d, "c").map(|s| *s.get_ref()),
                Some(Duration::ZERO)
            );
        });
        assert_eq!(found.len(), 2);
        assert!(found[0].starts_with("1:5: error: bad duration for `a`"));
        assert!(found[0].contains("help: write a whole number followed by ms, s, m or h"));
        assert!(found[1].starts_with("2:5: error: `b` at the top level must be longer than 0s"));
    }

    #[test]
    fn choices_suggest_the_nearest() {
        let found = with_table("on_failure = \"contine\"\n", |d, t| {
            assert!(
                t.choice(d, "on_failure", &["stop", "continue", "review"])
                    .is_none()
            )
        });
        assert!(
            found[0].contains(
                "on_failure is one of: stop, continue, review; did you mean \"continue\"?"
            )
        );
    }
}
