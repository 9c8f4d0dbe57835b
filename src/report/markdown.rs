//! Small pieces of markdown text: inline code that survives backticks,
//! free text on one capped line, and UTC clock times.

use jiff::Timestamp;
use jiff::civil::Date;
use serde_json::Value;

/// Line breaks and runs of white space become one space.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// At most `max` characters, with `…` when cut.
pub fn cap(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_string(),
        Some((end, _)) => format!("{}…", &text[..end]),
    }
}

/// The start of a value's compact JSON: enough to cap and mask without
/// rendering a huge output whole.
pub fn json_head(v: &Value) -> String {
    const HEAD_BYTES: usize = 8 * 1024;
    let text = v.to_string();
    if text.len() <= HEAD_BYTES {
        return text;
    }
    let mut end = HEAD_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// Markdown inline code that survives backticks in the text.
pub fn code(text: &str) -> String {
    let longest = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    if longest > 0 {
        format!("{fence} {text} {fence}")
    } else {
        format!("{fence}{text}{fence}")
    }
}

fn utc(at: Timestamp) -> jiff::civil::DateTime {
    at.to_zoned(jiff::tz::TimeZone::UTC).datetime()
}

pub fn day_of(at: Timestamp) -> Date {
    utc(at).date()
}

/// `HH:MM:SS.mmm` in UTC.
pub fn clock(at: Timestamp) -> String {
    let t = utc(at);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `YYYY-MM-DD HH:MM:SS UTC`.
pub fn date_time(at: Timestamp) -> String {
    let t = utc(at);
    format!(
        "{} {:02}:{:02}:{:02} UTC",
        t.date(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_spans_survive_backticks_and_text_is_capped() {
        assert_eq!(code("plain"), "`plain`");
        assert_eq!(code("a `b` c"), "`` a `b` c ``");
        assert_eq!(code("``x"), "``` ``x ```");
        assert_eq!(cap("héllo", 3), "hél…");
        assert_eq!(cap("abc", 3), "abc");
        assert_eq!(one_line(" a\n\tb  c "), "a b c");
    }

    #[test]
    fn long_json_is_cut_at_a_character_boundary() {
        let v = serde_json::json!({"t": "é".repeat(10_000)});
        let head = json_head(&v);
        assert!(head.len() <= 8 * 1024 && head.starts_with("{\"t\":\"é"));
    }

    #[test]
    fn clock_times_are_utc() {
        let t = Timestamp::from_millisecond(90_061_005).unwrap();
        assert_eq!(clock(t), "01:01:01.005");
        assert_eq!(date_time(t), "1970-01-02 01:01:01 UTC");
        assert_eq!(day_of(t).to_string(), "1970-01-02");
    }
}
