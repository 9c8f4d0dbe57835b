//! Inclusive ranges written `lo..hi`, or a single value for `lo == hi`.

use std::time::Duration;

use super::duration;
use super::limits::show_count;
use super::model::Range;

/// Why a range did not parse; the message says what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeError {
    /// One end is not a valid value.
    Bound(String),
    /// `lo` is greater than `hi`.
    Backwards { written: String, fixed: String },
}

/// `"50ms..400ms"` or `"0ms"`.
pub(crate) fn parse_duration_range(s: &str) -> Result<Range<Duration>, RangeError> {
    parse_with(s, duration::parse)
}

/// `"200..2000"` or `"500"`, each end at most `max`.
pub(crate) fn parse_u64_range(s: &str, max: u64) -> Result<Range<u64>, RangeError> {
    parse_with(s, |part| {
        let written = part.trim();
        let digits = written.replace('_', "");
        let whole = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        match digits.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ if whole => Err(format!("\"{written}\" is more than {}", show_count(max))),
            _ => Err(format!("\"{written}\" is not a whole number")),
        }
    })
}

fn parse_with<T: PartialOrd + Copy>(
    s: &str,
    one: impl Fn(&str) -> Result<T, String>,
) -> Result<Range<T>, RangeError> {
    let (lo_text, hi_text) = s.split_once("..").unwrap_or((s, s));
    let lo = one(lo_text).map_err(RangeError::Bound)?;
    let hi = one(hi_text).map_err(RangeError::Bound)?;
    if lo > hi {
        return Err(RangeError::Backwards {
            written: s.to_string(),
            fixed: format!("{}..{}", hi_text.trim(), lo_text.trim()),
        });
    }
    Ok(Range { lo, hi })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_ranges_and_single_values() {
        assert_eq!(
            parse_duration_range("50ms..400ms"),
            Ok(Range {
                lo: Duration::from_millis(50),
                hi: Duration::from_millis(400)
            })
        );
        assert_eq!(
            parse_duration_range("0ms"),
            Ok(Range {
                lo: Duration::ZERO,
                hi: Duration::ZERO
            })
        );
        assert_eq!(
            parse_duration_range("1s..1s").map(|r| r.lo == r.hi),
            Ok(true)
        );
    }

    #[test]
    fn backwards_ranges_say_how_to_turn_them_round() {
        assert_eq!(
            parse_duration_range("400ms..50ms"),
            Err(RangeError::Backwards {
                written: "400ms..50ms".into(),
                fixed: "50ms..400ms".into()
            })
        );
        assert!(matches!(
            parse_u64_range("2000..200", u64::MAX),
            Err(RangeError::Backwards { .. })
        ));
    }

    #[test]
    fn bad_ends_are_reported() {
        assert!(matches!(
            parse_duration_range("50ms..fast"),
            Err(RangeError::Bound(_))
        ));
        assert!(matches!(
            parse_duration_range(".."),
            Err(RangeError::Bound(_))
        ));
        assert!(matches!(
            parse_u64_range("1..x", 9),
            Err(RangeError::Bound(_))
        ));
        assert!(matches!(
            parse_u64_range("-5", 9),
            Err(RangeError::Bound(_))
        ));
        assert!(matches!(
            parse_u64_range("1...3", 9),
            Err(RangeError::Bound(_))
        ));
    }

    #[test]
    fn token_ranges() {
        assert_eq!(
            parse_u64_range("200..2000", 2000),
            Ok(Range { lo: 200, hi: 2000 })
        );
        assert_eq!(parse_u64_range("500", 500), Ok(Range { lo: 500, hi: 500 }));
        assert_eq!(
            parse_u64_range("1_000..2_000", 2000),
            Ok(Range { lo: 1000, hi: 2000 })
        );
        assert_eq!(
            parse_u64_range("0..2001", 2000),
            Err(RangeError::Bound("\"2001\" is more than 2000".into()))
        );
        assert_eq!(
            parse_u64_range("0..99999999999999999999999", 2000),
            Err(RangeError::Bound(
                "\"99999999999999999999999\" is more than 2000".into()
            ))
        );
    }
}
