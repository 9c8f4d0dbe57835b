//! Numbers and times the way the dashboard prints them: short, and never
//! passing an unknown cost off as zero.

use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

use crate::engine::cost::CostTotal;

/// "42s", "3m04s", "1h02m", "2d03h". Negative spans (clock skew) read as 0s.
pub fn duration(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        3600..86_400 => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d{:02}h", s / 86_400, s % 86_400 / 3600),
    }
}

/// Run time as a clock: "00:10:00", hours going past 24.
pub fn clock(d: SignedDuration) -> String {
    let s = d.as_secs().max(0);
    format!("{:02}:{:02}:{:02}", s / 3600, s % 3600 / 60, s % 60)
}

/// "950", "12.3k", "1.23M".
pub fn tokens(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        _ => format!("{:.2}M", n as f64 / 1e6),
    }
}

/// A cost for a narrow column: "$0.0123", "unknown", or "≥$0.0123" when
/// some of it is unknown (the known part is then a lower bound).
pub fn cost_short(c: CostTotal) -> String {
    if c.unknown == 0 {
        format!("${:.4}", c.usd)
    } else if c.usd == 0.0 {
        "unknown".to_string()
    } else {
        format!("≥${:.4}", c.usd)
    }
}

/// Wall-clock time of day in the operator's zone: "12:03:21".
pub fn time_of_day(ts: Timestamp, tz: &TimeZone) -> String {
    ts.to_zoned(tz.clone()).strftime("%H:%M:%S").to_string()
}

/// Cuts text to `width` characters, marking the cut with "…".
pub fn fit(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let mut out: String = text.chars().take(width.saturating_sub(1)).collect();
    if width > 0 {
        out.push('…');
    }
    out
}

/// `text` cut to `width` characters at a word boundary when it can be,
/// ending in `tail` when cut (so that a cut is never silent).
pub fn fit_words(text: &str, width: usize, tail: &str) -> String {
    if text.chars().count() <= width {
        return text.to_string();
    }
    let room = width.saturating_sub(tail.chars().count());
    let cut: String = text.chars().take(room).collect();
    let at_word = match cut.rfind(' ') {
        Some(i) if i > room / 2 => cut[..i].trim_end().to_string(),
        _ => cut,
    };
    format!("{at_word}{tail}")
}

/// The first line of possibly multi-line text, for one-line places.
pub fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_cut_ends_at_a_word_and_says_so() {
        let text = "approve t1 refused: the task budget is still reached: raise it first";
        let cut = fit_words(text, 40, "…");
        assert!(cut.ends_with('…') && cut.chars().count() <= 40, "{cut}");
        assert!(text.starts_with(cut.trim_end_matches('…')), "{cut}");
        assert!(
            cut.trim_end_matches('…').ends_with("budget is"),
            "at a word: {cut}"
        );
        assert_eq!(fit_words("short", 40, "…"), "short");
    }

    use super::*;

    #[test]
    fn durations() {
        let s = SignedDuration::from_secs;
        assert_eq!(duration(s(0)), "0s");
        assert_eq!(duration(s(42)), "42s");
        assert_eq!(duration(s(184)), "3m04s");
        assert_eq!(duration(s(3720)), "1h02m");
        assert_eq!(duration(s(183_600)), "2d03h");
        assert_eq!(duration(s(-5)), "0s");
        assert_eq!(clock(s(90_061)), "25:01:01");
    }

    #[test]
    fn token_counts() {
        assert_eq!(tokens(950), "950");
        assert_eq!(tokens(12_345), "12.3k");
        assert_eq!(tokens(1_234_567), "1.23M");
    }

    #[test]
    fn unknown_cost_is_never_zero() {
        let known = CostTotal {
            usd: 0.0123,
            unknown: 0,
        };
        let none = CostTotal {
            usd: 0.0,
            unknown: 2,
        };
        let some = CostTotal {
            usd: 0.5,
            unknown: 1,
        };
        assert_eq!(cost_short(known), "$0.0123");
        assert_eq!(cost_short(none), "unknown");
        assert_eq!(cost_short(some), "≥$0.5000");
    }

    #[test]
    fn fitting_text() {
        assert_eq!(fit("hello", 5), "hello");
        assert_eq!(fit("hello world", 6), "hello…");
        assert_eq!(fit("héllo", 2), "h…");
        assert_eq!(fit("x", 0), "");
    }
}
