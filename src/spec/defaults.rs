//! `[defaults]` and the retry policies of defaults and phases.

use super::duration::show;
use super::error::Diag;
use super::limits::{MAX_ATTEMPTS, MAX_BUDGET_TOKENS, MAX_BUDGET_USD, MAX_CONCURRENCY};
use super::model::{Backoff, BudgetLimits, Defaults, RetryPolicy};
use super::raw::Table;

const DEFAULTS_KEYS: &[&str] = &[
    "timeout",
    "retry",
    "concurrency",
    "budget_usd",
    "budget_tokens",
];
const RUN_BUDGET_KEYS: &[&str] = &["usd", "tokens"];
const RETRY_KEYS: &[&str] = &[
    "max_attempts",
    "backoff",
    "initial_delay",
    "max_delay",
    "jitter",
];

/// `[defaults]`, each absent key taking the value of `Defaults::default()`.
pub(crate) fn read_defaults(d: &mut Diag<'_>, root: &Table<'_, '_>) -> Defaults {
    let mut out = Defaults::default();
    let Some(t) = root.table(d, "defaults", "in [defaults]".into()) else {
        return out;
    };
    t.check_keys(d, DEFAULTS_KEYS, |_| None);
    if let Some(timeout) = t.timeout(d, "timeout") {
        out.timeout = timeout.into_inner();
    }
    if let Some(retry) = t.table(d, "retry", t.part("retry")) {
        out.retry = read_retry(d, &retry, &out.retry);
    }
    if let Some(n) = t.count(d, "concurrency", 1, MAX_CONCURRENCY) {
        out.concurrency = usize::try_from(n.into_inner()).unwrap_or(usize::MAX);
    }
    out.task_budget = read_budget(d, &t, "budget_usd", "budget_tokens");
    out
}

/// `[run_budget]`: `usd` and `tokens` over the whole run.
pub(crate) fn read_run_budget(d: &mut Diag<'_>, root: &Table<'_, '_>) -> BudgetLimits {
    let Some(t) = root.table(d, "run_budget", "in [run_budget]".into()) else {
        return BudgetLimits::default();
    };
    t.check_keys(d, RUN_BUDGET_KEYS, |k| {
        matches!(k, "budget_usd" | "budget_tokens")
            .then(|| format!("`{k}` is a per-task limit and belongs in [defaults]"))
    });
    read_budget(d, &t, "usd", "tokens")
}

fn read_budget(d: &mut Diag<'_>, t: &Table<'_, '_>, usd: &str, tokens: &str) -> BudgetLimits {
    BudgetLimits {
        usd: t.dollars(d, usd, MAX_BUDGET_USD).map(|v| v.into_inner()),
        tokens: t
            .count(d, tokens, 1, MAX_BUDGET_TOKENS)
            .map(|v| v.into_inner()),
    }
}

/// A retry table: each key given overrides the one in `base`.
pub(crate) fn read_retry(d: &mut Diag<'_>, t: &Table<'_, '_>, base: &RetryPolicy) -> RetryPolicy {
    t.check_keys(d, RETRY_KEYS, |_| None);
    let mut out = base.clone();
    if let Some(n) = t.count(d, "max_attempts", 1, MAX_ATTEMPTS) {
        out.max_attempts = u32::try_from(n.into_inner()).unwrap_or(u32::MAX);
    }
    if let Some(b) = t.choice(d, "backoff", &["exponential", "fixed"]) {
        out.backoff = match *b.get_ref() {
            "fixed" => Backoff::Fixed,
            _ => Backoff::Exponential,
        };
    }
    let initial = t.duration(d, "initial_delay");
    let max = t.duration(d, "max_delay");
    if let Some(v) = &initial {
        out.initial_delay = *v.get_ref();
    }
    if let Some(v) = &max {
        out.max_delay = *v.get_ref();
    }
    if let Some(j) = t.fraction(d, "jitter") {
        out.jitter = j.into_inner();
    }
    if out.max_delay < out.initial_delay {
        // Point at whichever of the two this table sets; the other may be
        // inherited from the defaults.
        let at = max
            .as_ref()
            .or(initial.as_ref())
            .map_or(t.span.clone(), |v| v.span());
        d.error(
            at,
            format!(
                "max_delay ({}) is shorter than initial_delay ({}) {}",
                show(out.max_delay),
                show(out.initial_delay),
                t.place
            ),
            "raise max_delay to at least initial_delay, or lower initial_delay",
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use toml::de::DeTable;

    use super::*;
    use crate::spec::error::SpecError;

    fn defaults(text: &str) -> Result<Defaults, SpecError> {
        let root = DeTable::parse(text).unwrap();
        let mut d = Diag::new(text);
        let t = Table::new(root.get_ref(), 0..0, "at the top level".into());
        let out = read_defaults(&mut d, &t);
        match d.into_error(Path::new("p.toml")) {
            Some(e) => Err(e),
            None => Ok(out),
        }
    }

    #[test]
    fn absent_defaults_are_the_model_defaults() {
        let got = defaults("").unwrap();
        let want = Defaults::default();
        assert_eq!(got.timeout, want.timeout);
        assert_eq!(got.retry, want.retry);
        assert_eq!(got.concurrency, want.concurrency);
        assert!(got.task_budget.is_none());
    }

    #[test]
    fn task_budgets() {
        let got = defaults("[defaults]\nbudget_usd = 0.5\nbudget_tokens = 20_000\n").unwrap();
        assert_eq!(got.task_budget.usd, Some(0.5));
        assert_eq!(got.task_budget.tokens, Some(20_000));
        let got = defaults("[defaults]\nbudget_usd = 2\n").unwrap();
        assert_eq!(got.task_budget.usd, Some(2.0));
        let err = defaults("[defaults]\nbudget_usd = 0\nbudget_tokens = 0\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "p.toml:2:14: error: `budget_usd` in [defaults] must be more than 0 dollars"
            ),
            "{err}"
        );
        assert!(
            err.contains("p.toml:3:17: error: `budget_tokens` in [defaults] must be at least 1"),
            "{err}"
        );
        let err = defaults("[defaults]\nbudget_usd = \"$5\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("must be an amount in dollars, not a string"),
            "{err}"
        );
    }

    #[test]
    fn given_keys_override() {
        let got = defaults(
            "[defaults]\ntimeout = \"30s\"\nconcurrency = 2\nretry = { max_attempts = 5, backoff = \"fixed\", initial_delay = \"250ms\", max_delay = \"2s\", jitter = 0 }\n",
        )
        .unwrap();
        assert_eq!(got.timeout, Duration::from_secs(30));
        assert_eq!(got.concurrency, 2);
        assert_eq!(
            got.retry,
            RetryPolicy {
                max_attempts: 5,
                backoff: Backoff::Fixed,
                initial_delay: Duration::from_millis(250),
                max_delay: Duration::from_secs(2),
                jitter: 0.0,
            }
        );
    }

    #[test]
    fn a_partial_retry_keeps_the_rest() {
        let got = defaults("[defaults]\nretry = { max_attempts = 1 }\n").unwrap();
        assert_eq!(got.retry.max_attempts, 1);
        assert_eq!(got.retry.max_delay, RetryPolicy::default().max_delay);
    }

    #[test]
    fn each_bad_value_is_reported() {
        let err = defaults(
            "[defaults]\ntimeout = \"soon\"\nconcurrency = 0\nretry = { max_attempts = 0, backoff = \"linear\", jitter = 1.5 }\nextra = 1\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "p.toml:2:11: error: bad duration for `timeout`",
            "p.toml:3:15: error: `concurrency` in [defaults] must be at least 1, not 0",
            "p.toml:4:26: error: `max_attempts`",
            "p.toml:4:39: error: unknown backoff \"linear\"",
            "p.toml:4:58: error: `jitter`",
            "p.toml:5:1: error: unknown key `extra` in [defaults]",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
    }

    #[test]
    fn numbers_past_their_ranges_are_refused_where_written() {
        let err = defaults(
            "[defaults]\nconcurrency = 1_000_000_000_000\ntimeout = \"9223372036854775807ms\"\nbudget_usd = 1e308\nbudget_tokens = 18446744073709551615\nretry = { max_attempts = 4294967296, initial_delay = \"100000000h\", max_delay = \"721h\" }\n",
        )
        .unwrap_err()
        .to_string();
        for want in [
            "p.toml:2:15: error: `concurrency` in [defaults] must be at most 100_000, not 1_000_000_000_000\n  help: set concurrency to a whole number from 1 to 100_000",
            "p.toml:3:11: error: bad duration for `timeout` in [defaults]: \"9223372036854775807ms\" is longer than 720h (30 days)",
            "p.toml:4:14: error: `budget_usd` in [defaults] must be at most 1_000_000_000 dollars",
            "p.toml:5:17: error: `budget_tokens` in [defaults] must be at most 1_000_000_000_000_000, not 18446744073709551615",
            "p.toml:6:26: error: `max_attempts` in the retry of [defaults] must be at most 10_000, not 4294967296",
            "p.toml:6:54: error: bad duration for `initial_delay` in the retry of [defaults]: \"100000000h\" is longer than 720h (30 days)",
            "p.toml:6:80: error: bad duration for `max_delay`",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
        let got = defaults(
            "[defaults]\nconcurrency = 100_000\ntimeout = \"720h\"\nretry = { max_attempts = 10_000, initial_delay = \"720h\", max_delay = \"720h\" }\n",
        )
        .unwrap();
        assert_eq!(got.concurrency, 100_000);
        assert_eq!(got.retry.max_attempts, 10_000);
    }

    #[test]
    fn max_delay_below_initial_delay() {
        let err = defaults("[defaults]\nretry = { initial_delay = \"2m\" }\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("p.toml:2:27: error: max_delay (1m) is shorter than initial_delay (2m)"),
            "{err}"
        );
    }
}
