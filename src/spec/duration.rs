//! Durations as pipeline files write them: `"250ms"`, `"30s"`, `"5m"`, `"1h"`.

use std::time::Duration;

use super::limits::{MAX_DURATION, show_max_duration};

/// The accepted forms and range, for help lines.
pub(crate) const DURATION_FORMS: &str = "write a whole number followed by ms, s, m or h, from 0s to 720h (30 days), e.g. \"250ms\", \"30s\", \"5m\", \"1h\"";

/// Parses a whole number followed by a unit: `ms`, `s`, `m` or `h`, up to
/// `MAX_DURATION` (30 days), the longest a pipeline file may hold.
///
/// The error names what is wrong and the forms that are accepted.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse(s).map_err(|why| format!("{why}; {DURATION_FORMS}"))
}

/// Like [`parse_duration`], but the error only says what is wrong, for
/// messages that give the accepted forms on a help line of their own.
pub(crate) fn parse(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let digits = s.len() - s.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let (number, unit) = s.split_at(digits);
    if number.is_empty() {
        return Err(match s {
            "" => "empty duration".to_string(),
            _ => format!("\"{s}\" does not start with a whole number"),
        });
    }
    let too_long = || format!("\"{s}\" is longer than {}", show_max_duration());
    let n: u64 = number.parse().map_err(|_| too_long())?;
    let millis_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "" => return Err(format!("\"{s}\" has no unit")),
        _ => return Err(format!("\"{unit}\" in \"{s}\" is not a unit")),
    };
    n.checked_mul(millis_per_unit)
        .map(Duration::from_millis)
        .filter(|d| *d <= MAX_DURATION)
        .ok_or_else(too_long)
}

/// A duration the way a file would write it, for messages: the largest unit
/// that divides it.
pub(crate) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".to_string(),
        _ if ms.is_multiple_of(3_600_000) => format!("{}h", ms / 3_600_000),
        _ if ms.is_multiple_of(60_000) => format!("{}m", ms / 60_000),
        _ if ms.is_multiple_of(1_000) => format!("{}s", ms / 1_000),
        _ => format!("{ms}ms"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_each_unit() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("0ms"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_other_forms_and_says_which_are_accepted() {
        for bad in [
            "", "s", "10", "1.5s", "-1s", "5 min", "5min", "1d", "ms10", "1s2",
        ] {
            let err = parse_duration(bad).unwrap_err();
            assert!(err.contains("ms, s, m or h"), "{bad}: {err}");
        }
        assert!(parse_duration("10").unwrap_err().contains("no unit"));
        assert!(parse_duration("5min").unwrap_err().contains("not a unit"));
    }

    #[test]
    fn overflow_is_an_error_not_a_panic() {
        assert!(parse_duration("99999999999999999999s").is_err());
        assert!(parse_duration("18446744073709551615h").is_err());
    }

    #[test]
    fn durations_run_up_to_thirty_days() {
        assert_eq!(parse("720h"), Ok(MAX_DURATION));
        assert_eq!(parse("43200m"), Ok(MAX_DURATION));
        for long in [
            "721h",
            "2592000001ms",
            "100000000h",
            "9223372036854775807ms",
            "18446744073709551615ms",
        ] {
            let err = parse(long).unwrap_err();
            assert!(
                err.contains("is longer than 720h (30 days)"),
                "{long}: {err}"
            );
        }
        assert!(DURATION_FORMS.contains(&show_max_duration()));
    }

    #[test]
    fn shows_in_the_largest_whole_unit() {
        assert_eq!(show(Duration::from_millis(1500)), "1500ms");
        assert_eq!(show(Duration::from_secs(90)), "90s");
        assert_eq!(show(Duration::from_secs(120)), "2m");
        assert_eq!(show(Duration::from_secs(7200)), "2h");
        assert_eq!(show(Duration::ZERO), "0s");
    }
}
