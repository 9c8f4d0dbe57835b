//! Small formatters shared by every text report.

use std::time::Duration;

use jiff::Timestamp;

use crate::engine::TaskState;

/// 12345 -> "12,345".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A short human duration: "850ms", "12.3s", "4m05s", "2h03m".
pub fn duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", ms as f64 / 1000.0)
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", ms / 60_000, (ms / 1000) % 60)
    } else {
        format!("{}h{:02}m", ms / 3_600_000, (ms / 60_000) % 60)
    }
}

/// Time between two instants of the wall clock, never negative.
pub fn between(from: Timestamp, to: Timestamp) -> Duration {
    if to <= from {
        Duration::ZERO
    } else {
        to.duration_since(from).unsigned_abs()
    }
}

/// A symbol for each state, so that state reads without colour too.
pub fn symbol(state: TaskState) -> &'static str {
    match state {
        TaskState::Pending => "·",
        TaskState::Running => "▶",
        TaskState::Retrying => "↻",
        TaskState::AwaitingReview => "⏸",
        TaskState::Blocked => "⛔",
        TaskState::Completed => "✓",
        TaskState::Failed => "✗",
        TaskState::Cancelled => "⊘",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
        assert_eq!(duration(Duration::from_millis(850)), "850ms");
        assert_eq!(duration(Duration::from_millis(12_340)), "12.3s");
        assert_eq!(duration(Duration::from_secs(245)), "4m05s");
        assert_eq!(duration(Duration::from_secs(7380)), "2h03m");
    }
}
