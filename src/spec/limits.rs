//! The range of every number a pipeline file may hold. Each is generous for
//! real use and small enough that all later arithmetic on it (a retry's due
//! time, a sum of tokens, a random draw in a range) stays exact and cannot
//! overflow. `validate` reports a value out of its range at the value, with
//! the range; the README's pipeline reference lists them.

use std::time::Duration;

/// Every duration: timeouts, retry delays, sim latencies. 30 days.
pub(crate) const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// `concurrency`: tasks in flight at once.
pub(crate) const MAX_CONCURRENCY: u64 = 100_000;
/// `max_parallel`: attempts of one agent in flight at once.
pub(crate) const MAX_PARALLEL: u64 = 100_000;
/// `rpm`: calls started per minute.
pub(crate) const MAX_RPM: u64 = 1_000_000;
/// `tpm`: tokens per minute.
pub(crate) const MAX_TPM: u64 = 1_000_000_000_000;
/// `max_attempts`: attempts of one phase, the first included.
pub(crate) const MAX_ATTEMPTS: u64 = 10_000;
/// `budget_tokens`, `[run_budget] tokens`.
pub(crate) const MAX_BUDGET_TOKENS: u64 = 1_000_000_000_000_000;
/// `budget_usd`, `[run_budget] usd`, in dollars.
pub(crate) const MAX_BUDGET_USD: f64 = 1_000_000_000.0;
/// `max_output_bytes` of a command agent: 1 GiB.
pub(crate) const MAX_OUTPUT_BYTES: u64 = 1024 * 1024 * 1024;
/// `max_tokens` of an http agent.
pub(crate) const MAX_HTTP_MAX_TOKENS: u64 = 10_000_000;
/// Each end of a sim agent's `tokens`: the most one call may report.
pub(crate) const MAX_SIM_TOKENS: u64 = crate::engine::cost::MAX_CALL_TOKENS;

/// A whole number as a pipeline file may write it, grouped by `_` when it
/// is long: `100_000`, `1_000_000_000_000`.
pub(crate) fn show_count(n: u64) -> String {
    let digits = n.to_string();
    if digits.len() <= 4 {
        return digits;
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('_');
        }
        out.push(c);
    }
    out
}

/// A longest duration, with its size in days when that says more.
pub(crate) fn show_max_duration() -> String {
    format!(
        "{} ({} days)",
        super::duration::show(MAX_DURATION),
        MAX_DURATION.as_secs() / 86_400
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_as_toml_allows() {
        assert_eq!(show_count(7), "7");
        assert_eq!(show_count(1000), "1000");
        assert_eq!(show_count(100_000), "100_000");
        assert_eq!(show_count(1_000_000_000_000), "1_000_000_000_000");
        assert_eq!(show_max_duration(), "720h (30 days)");
    }

    #[test]
    fn the_limits_leave_room_for_the_arithmetic_done_on_them() {
        // A retry's due time is now plus at most this; jiff's clock runs to
        // the year 9999.
        let now = jiff::Timestamp::now();
        assert!(now.checked_add(MAX_DURATION).is_ok());
        // Sums of many calls at the most each may report stay far from u64's end.
        const { assert!(MAX_SIM_TOKENS.checked_mul(1_000_000).is_some()) };
        const { assert!(MAX_BUDGET_TOKENS < u64::MAX / 1000) };
    }
}
