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
/// rendering a huge output whole. Writing stops once the head is full, so
/// the cost is the head's, whatever the value's size.
pub fn json_head(v: &Value) -> String {
    const HEAD_BYTES: usize = 8 * 1024;
    let mut head = Head {
        bytes: Vec::with_capacity(1024),
        room: HEAD_BYTES,
    };
    // An error only says the head is full.
    let _ = serde_json::to_writer(&mut head, v);
    let mut bytes = head.bytes;
    // Cut at a character boundary: the JSON is UTF-8 up to the cut.
    let end = match std::str::from_utf8(&bytes) {
        Ok(_) => bytes.len(),
        Err(e) => e.valid_up_to(),
    };
    bytes.truncate(end);
    String::from_utf8(bytes).unwrap_or_default()
}

/// A writer that takes at most `room` bytes, then fails.
struct Head {
    bytes: Vec<u8>,
    room: usize,
}

impl std::io::Write for Head {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.room == 0 {
            return Err(std::io::Error::other("the head is full"));
        }
        let n = buf.len().min(self.room);
        self.bytes.extend_from_slice(&buf[..n]);
        self.room -= n;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
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
        assert!(head.len() > 8 * 1024 - 4, "{}", head.len());
        let small = serde_json::json!({"a": [1, 2, "x"]});
        assert_eq!(json_head(&small), small.to_string());
        let big: serde_json::Map<String, Value> = (0..100_000)
            .map(|i| (format!("k{i}"), Value::from(i)))
            .collect();
        let head = json_head(&Value::Object(big));
        assert_eq!(head.len(), 8 * 1024);
        assert!(head.starts_with("{\"k0\":0,\"k1\":1,"), "{head}");
    }

    #[test]
    fn clock_times_are_utc() {
        let t = Timestamp::from_millisecond(90_061_005).unwrap();
        assert_eq!(clock(t), "01:01:01.005");
        assert_eq!(date_time(t), "1970-01-02 01:01:01 UTC");
        assert_eq!(day_of(t).to_string(), "1970-01-02");
    }
}
