//! Hiding personal data in text the run log copies from task inputs,
//! outputs, errors and notes: email addresses become `[email]`, phone
//! numbers `[phone]`, and matches of the pipeline's `mask` patterns
//! `[masked]`.
//!
//! Phone numbers are found in two steps: a loose pattern finds runs of
//! digits with the separators phone numbers use, then each run is checked
//! in code (the regex crate has no look-around): dates, times, versions,
//! IP addresses, decimals, grouped thousands, ids glued to letters and plain
//! digit runs are left alone.

use std::borrow::Cow;
use std::sync::LazyLock;

use regex::Regex;

static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,}")
        .expect("the email pattern compiles")
});

/// A digit run that may be a phone number: an optional `+`, digits, and
/// the separators of written phone numbers (space, `-`, `.`, parentheses).
static PHONE_CANDIDATE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\(?\d[\d \-.()]*\d\)?").expect("the phone pattern compiles"));

/// Fewest and most digits a phone number has (E.164 allows 15).
const PHONE_DIGITS: std::ops::RangeInclusive<usize> = 7..=15;

/// The masks of one pipeline.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    custom: Vec<Regex>,
}

impl Masker {
    /// Built-in masks plus `patterns` (the pipeline's `mask` key, already
    /// checked at load).
    pub fn new(patterns: &[String]) -> Result<Masker, regex::Error> {
        let custom = patterns
            .iter()
            .map(|p| Regex::new(p))
            .collect::<Result<_, _>>()?;
        Ok(Masker { custom })
    }

    /// `text` with every match hidden. The pipeline's own patterns go first,
    /// so that they win over the built-in ones where both match.
    pub fn mask<'t>(&self, text: &'t str) -> Cow<'t, str> {
        let mut out = Cow::Borrowed(text);
        for re in &self.custom {
            if let Cow::Owned(s) = re.replace_all(&out, "[masked]") {
                out = Cow::Owned(s);
            }
        }
        if let Cow::Owned(s) = EMAIL.replace_all(&out, "[email]") {
            out = Cow::Owned(s);
        }
        if let Some(s) = mask_phones(&out) {
            out = Cow::Owned(s);
        }
        out
    }
}

/// `text` with phone numbers replaced, or `None` when it has none.
fn mask_phones(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut last = 0;
    for m in PHONE_CANDIDATE.find_iter(text) {
        let Some((start, end)) = phone_at(text, m.start(), m.end()) else {
            continue;
        };
        out.push_str(&text[last..start]);
        out.push_str("[phone]");
        last = end;
    }
    if last == 0 {
        return None;
    }
    out.push_str(&text[last..]);
    Some(out)
}

/// Where the phone number in the candidate `text[start..end]` is, if it is one.
fn phone_at(text: &str, start: usize, end: usize) -> Option<(usize, usize)> {
    let mut s = &text[start..end];
    let mut start = start;
    // Trailing separators belong to the sentence, not the number; so does
    // an opening parenthesis with no closing one.
    let trimmed = s.trim_end_matches([' ', '-', '.', '(']);
    let mut end = start + trimmed.len();
    s = trimmed;
    if s.ends_with(')') && s.matches('(').count() < s.matches(')').count() {
        s = &s[..s.len() - 1];
        end -= 1;
    }
    if s.starts_with('(') && !s.contains(')') {
        s = &s[1..];
        start += 1;
    }
    if !glued_to_word(text, start, end) && is_phone(s) {
        Some((start, end))
    } else {
        None
    }
}

/// Whether the run touches letters or id punctuation on either side, as in
/// `INV-2024-555-1234`, `v1.2.3`, `x12345678` or `12:30:45`.
fn glued_to_word(text: &str, start: usize, end: usize) -> bool {
    let before = text[..start].chars().next_back();
    let after = text[end..].chars().next();
    // A leading `+` marks a number to dial even after `tel:` or `#`.
    let dial = text[start..].starts_with('+');
    let before_glues = before.is_some_and(|c| {
        c.is_alphanumeric()
            || c == '_'
            || (!dial && matches!(c, '-' | '/' | ':' | '#' | '@' | '$' | '€' | '£'))
    }) || (before == Some('.')
        && text[..start - 1]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric));
    let after_glues = after
        .is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | '/' | ':' | '@' | '%'))
        || (matches!(after, Some('.') | Some('-') | Some(','))
            && text[end + 1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_digit()));
    before_glues || after_glues
}

/// Whether a separated digit run reads as a phone number.
fn is_phone(s: &str) -> bool {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    if !PHONE_DIGITS.contains(&digits) {
        return false;
    }
    if s.starts_with('+') {
        // International: the `+` says it is a number to dial.
        return true;
    }
    let groups: Vec<&str> = s
        .split([' ', '-', '.', '(', ')'])
        .filter(|g| !g.is_empty())
        .collect();
    // A plain run of digits is an id, an amount or a count, not a phone.
    if groups.len() < 2 {
        return false;
    }
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let seps: Vec<char> = s.chars().filter(|c| matches!(c, ' ' | '-' | '.')).collect();
    let only_dots = !seps.is_empty() && seps.iter().all(|c| *c == '.');
    let has_parens = s.contains('(');
    // Dates: 2024-01-15, 15.01.2024, 2024.01.15, 01-15-2024.
    if lens.len() == 3 && !has_parens && (lens == [4, 2, 2] || lens == [2, 2, 4]) {
        return false;
    }
    // Dotted runs of short groups: IP addresses and versions.
    if only_dots && lens.iter().all(|l| *l <= 3) && lens.len() >= 3 {
        return false;
    }
    // A decimal number.
    if only_dots && lens.len() == 2 {
        return false;
    }
    // Thousands grouped with spaces or dots: 1 234 567, 12.345.678.
    if lens[0] <= 3 && lens[1..].iter().all(|l| *l == 3) && !has_parens && lens.len() >= 3 {
        return false;
    }
    // Every group of a written phone number is short; a long one is an id.
    lens.iter().all(|l| (1..=8).contains(l)) && lens.iter().filter(|l| **l >= 2).count() >= 2
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(text: &str) -> String {
        Masker::default().mask(text).into_owned()
    }

    #[test]
    fn emails() {
        assert_eq!(
            masked("write to jane.doe+tag@example.co.uk now"),
            "write to [email] now"
        );
        assert_eq!(masked("<a_b@mail-host.org>"), "<[email]>");
        assert_eq!(masked("two: x@y.io, z@w.com."), "two: [email], [email].");
        // Not addresses.
        for keep in [
            "@mention",
            "user@localhost",
            "a@b",
            "price @ 5.00",
            "foo@bar.c",
        ] {
            assert_eq!(masked(keep), keep);
        }
    }

    #[test]
    fn international_phone_numbers() {
        for (text, want) in [
            ("call +1 555 123 4567 today", "call [phone] today"),
            ("+44 20 7946 0958", "[phone]"),
            ("+33 6 12 34 56 78.", "[phone]."),
            ("+49 (0)30 1234567", "[phone]"),
            ("(+1-555-123-4567)", "([phone])"),
            ("+4915112345678", "[phone]"),
            ("tel:+31 20 123 4567", "tel:[phone]"),
            ("{\"phone\":\"+1-555-123-4567\"}", "{\"phone\":\"[phone]\"}"),
        ] {
            assert_eq!(masked(text), want, "{text}");
        }
    }

    #[test]
    fn national_phone_numbers() {
        for (text, want) in [
            ("555-123-4567", "[phone]"),
            ("(555) 123-4567", "[phone]"),
            (
                "call (555) 123-4567, ask for Ann",
                "call [phone], ask for Ann",
            ),
            ("555.123.4567", "[phone]"),
            ("1-800-555-0199", "[phone]"),
            ("020 7946 0958", "[phone]"),
            ("07700 900123", "[phone]"),
            ("06 12 34 56 78", "[phone]"),
            ("030 12345678", "[phone]"),
            ("phone: 555 123 4567.", "phone: [phone]."),
        ] {
            assert_eq!(masked(text), want, "{text}");
        }
    }

    #[test]
    fn dates_ids_and_plain_numbers_are_left_alone() {
        for keep in [
            "2024-01-15",
            "on 15.01.2024 at 10:30",
            "2026-11-21T02:29:14Z",
            "2024-01-15 10:30:00",
            "01-15-2024",
            "2024.01.15",
            "10:30:45",
            "order 1234567890",
            "id 20231115",
            "enc-001",
            "INV-2024-555-1234",
            "MRN 00123456789012",
            "ticket #555-1234-567",
            "550e8400-e29b-41d4-a716-446655440000",
            "v1.2.3",
            "version 10.4.22.1",
            "host 192.168.100.200",
            "pi is 3.14159265",
            "1 234 567 people",
            "12.345.678",
            "$1 234 567",
            "1,234,567",
            "ICD-10 I20.8 and E11.9",
            "tokens: 812 in, 164 out",
            "took 12.3s",
            "a 50% rise over 12 months",
            "room 12 floor 3",
            "amounts 100 200",
            "42",
            "{\"n\":5551234567,\"at\":\"2024-01-15\"}",
            "x+1 555 123 4567",
        ] {
            assert_eq!(masked(keep), keep, "{keep}");
        }
    }

    #[test]
    fn pipeline_patterns_win_and_mask_everything_they_match() {
        let m = Masker::new(&[r"MRN-\d{6}".to_string(), r"(?i)acct\s*\d+".to_string()]).unwrap();
        assert_eq!(
            m.mask("MRN-123456, Acct 99812, mail a@b.io, call 555-123-4567"),
            "[masked], [masked], mail [email], call [phone]"
        );
        // A pattern that covers a phone number hides it as its own.
        let m = Masker::new(&[r"555-\d{3}-\d{4}".to_string()]).unwrap();
        assert_eq!(m.mask("555-123-4567"), "[masked]");
        assert!(Masker::new(&["(".to_string()]).is_err());
    }

    #[test]
    fn clean_text_is_not_copied() {
        assert!(matches!(
            Masker::default().mask("nothing here"),
            Cow::Borrowed(_)
        ));
    }
}
