//! Tokens and dollars: usage as agents report it, prices per model, and sums
//! that keep unknown costs apart from zero.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The most tokens of each kind one call may report. No model reads or
/// writes this many in one call; a count beyond it is a misbehaving agent,
/// and the attempt fails with a protocol error rather than a wrapped sum.
pub const MAX_CALL_TOKENS: u64 = 1_000_000_000_000;

/// The most dollars one call may report as its cost.
pub const MAX_CALL_USD: f64 = 1_000_000.0;

/// The highest price a price file may give, in dollars per token. With
/// token counts bounded by [`MAX_CALL_TOKENS`], every cost stays finite.
pub const MAX_PRICE_PER_TOKEN: f64 = 1.0;

/// What one call used, as the agent reported it.
///
/// The four token counts do not overlap: `input_tokens` are the prompt
/// tokens read at the full price, `cache_read_tokens` those served from the
/// provider's prompt cache, `cache_write_tokens` those written to it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_read_tokens: u64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cache_write_tokens: u64,
    /// Dollars as the agent counted them; wins over the price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// All four counts; saturates rather than wraps, whatever was stored.
    pub fn tokens(&self) -> u64 {
        self.input_tokens
            .saturating_add(self.output_tokens)
            .saturating_add(self.cache_read_tokens)
            .saturating_add(self.cache_write_tokens)
    }

    /// Why these figures cannot come from a real call, if they cannot: a
    /// count beyond [`MAX_CALL_TOKENS`], or a cost that is negative, not a
    /// number, infinite or beyond [`MAX_CALL_USD`].
    pub fn check(&self) -> Result<(), String> {
        for (name, n) in [
            ("input_tokens", self.input_tokens),
            ("output_tokens", self.output_tokens),
            ("cache_read_tokens", self.cache_read_tokens),
            ("cache_write_tokens", self.cache_write_tokens),
        ] {
            if n > MAX_CALL_TOKENS {
                return Err(format!(
                    "usage has \"{name}\" = {n}, more than the {MAX_CALL_TOKENS} tokens one call can use"
                ));
            }
        }
        check_call_cost(self.cost_usd)
    }
}

/// A cost one call may have reported: `None`, or dollars from 0 to
/// [`MAX_CALL_USD`].
pub fn check_call_cost(cost_usd: Option<f64>) -> Result<(), String> {
    match cost_usd {
        Some(c) if !(0.0..=MAX_CALL_USD).contains(&c) => {
            // Short either way: 1e308, not 309 digits.
            let shown = if c.abs() < 1e15 {
                c.to_string()
            } else {
                format!("{c:e}")
            };
            Err(format!(
                "usage has \"cost_usd\" = {shown}, not a number of dollars from 0 to {MAX_CALL_USD}"
            ))
        }
        _ => Ok(()),
    }
}

/// Prices of one model in dollars per token, named as in LiteLLM's
/// `model_prices_and_context_window.json`. Cache prices fall back to the
/// input price when a model has none.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    pub input_cost_per_token: f64,
    pub output_cost_per_token: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_read_input_token_cost: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_creation_input_token_cost: Option<f64>,
}

impl ModelPrice {
    /// A price from dollars per million tokens: input, output, cache read,
    /// cache write.
    pub fn per_mtok(
        input: f64,
        output: f64,
        cache_read: Option<f64>,
        cache_write: Option<f64>,
    ) -> ModelPrice {
        ModelPrice {
            input_cost_per_token: input / 1e6,
            output_cost_per_token: output / 1e6,
            cache_read_input_token_cost: cache_read.map(|c| c / 1e6),
            cache_creation_input_token_cost: cache_write.map(|c| c / 1e6),
        }
    }
}

/// Per-model prices: built in, then overridden by a `pricing.toml`.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

/// Dollars per million tokens: input, output, cache read, cache write.
///
/// From the providers' price pages (anthropic.com/pricing,
/// openai.com/api/pricing), as also collected in LiteLLM's
/// `model_prices_and_context_window.json`; checked 2026-11-21. Anthropic's
/// cache write is the 5-minute rate (1.25 × input); OpenAI has no cache
/// write charge. A `pricing.toml` overrides any of these.
const BUILT_IN: &[(&str, f64, f64, f64, f64)] = &[
    ("claude-opus-4-6", 5.0, 25.0, 0.5, 6.25),
    ("claude-opus-4-5", 5.0, 25.0, 0.5, 6.25),
    ("claude-opus-4-1", 15.0, 75.0, 1.5, 18.75),
    ("claude-opus-4", 15.0, 75.0, 1.5, 18.75),
    ("claude-sonnet-4-5", 3.0, 15.0, 0.3, 3.75),
    ("claude-sonnet-4", 3.0, 15.0, 0.3, 3.75),
    ("claude-3-7-sonnet", 3.0, 15.0, 0.3, 3.75),
    ("claude-haiku-4-5", 1.0, 5.0, 0.1, 1.25),
    ("claude-3-5-haiku", 0.8, 4.0, 0.08, 1.0),
    ("gpt-5.1", 1.25, 10.0, 0.125, 0.0),
    ("gpt-5", 1.25, 10.0, 0.125, 0.0),
    ("gpt-5-mini", 0.25, 2.0, 0.025, 0.0),
    ("gpt-5-nano", 0.05, 0.4, 0.005, 0.0),
    ("gpt-4.1", 2.0, 8.0, 0.5, 0.0),
    ("gpt-4.1-mini", 0.4, 1.6, 0.1, 0.0),
    ("gpt-4.1-nano", 0.1, 0.4, 0.025, 0.0),
    ("gpt-4o", 2.5, 10.0, 1.25, 0.0),
    ("gpt-4o-mini", 0.15, 0.6, 0.075, 0.0),
    ("o3", 2.0, 8.0, 0.5, 0.0),
    ("o4-mini", 1.1, 4.4, 0.275, 0.0),
];

const PRICE_FILE_FORM: &str = "a price file looks like:\n  [models.\"my-model\"]\n  input_cost_per_token = 3e-6\n  output_cost_per_token = 1.5e-5\n  cache_read_input_token_cost = 3e-7       # optional\n  cache_creation_input_token_cost = 3.75e-6 # optional";

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("cannot read price file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}:{line}:{col}: {message}\n  {PRICE_FILE_FORM}")]
    Parse {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

/// One model in a price file: the per-token names, or the older
/// per-million names (`input_per_mtok`, `output_per_mtok`), not both.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPrice {
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
    cache_read_input_token_cost: Option<f64>,
    cache_creation_input_token_cost: Option<f64>,
    input_per_mtok: Option<f64>,
    output_per_mtok: Option<f64>,
}

impl RawPrice {
    fn into_price(self) -> Result<ModelPrice, String> {
        let old = self.input_per_mtok.is_some() || self.output_per_mtok.is_some();
        let new = self.input_cost_per_token.is_some() || self.output_cost_per_token.is_some();
        let (input, output) = match (old, new) {
            (true, true) => {
                return Err("mixes per-token prices with the older per-million names (input_per_mtok, output_per_mtok); use one form".into());
            }
            (true, false) => (
                self.input_per_mtok.map(|p| p / 1e6),
                self.output_per_mtok.map(|p| p / 1e6),
            ),
            _ => (self.input_cost_per_token, self.output_cost_per_token),
        };
        let name = |per_token: &str, per_mtok: &str| {
            if old {
                per_mtok.to_string()
            } else {
                per_token.to_string()
            }
        };
        let input = input.ok_or_else(|| {
            format!(
                "missing `{}`",
                name("input_cost_per_token", "input_per_mtok")
            )
        })?;
        let output = output.ok_or_else(|| {
            format!(
                "missing `{}`",
                name("output_cost_per_token", "output_per_mtok")
            )
        })?;
        let price = ModelPrice {
            input_cost_per_token: input,
            output_cost_per_token: output,
            cache_read_input_token_cost: self.cache_read_input_token_cost,
            cache_creation_input_token_cost: self.cache_creation_input_token_cost,
        };
        let all = [
            Some(price.input_cost_per_token),
            Some(price.output_cost_per_token),
            price.cache_read_input_token_cost,
            price.cache_creation_input_token_cost,
        ];
        if all
            .iter()
            .flatten()
            .any(|p| !(0.0..=MAX_PRICE_PER_TOKEN).contains(p))
        {
            return Err(
                "has a price out of range: prices run from 0 to 1 dollar per token (1_000_000 per million tokens)"
                    .into(),
            );
        }
        Ok(price)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, toml::Spanned<RawPrice>>,
}

impl PriceTable {
    pub fn built_in() -> PriceTable {
        let models = BUILT_IN
            .iter()
            .map(|&(name, input, output, read, write)| {
                (
                    name.to_string(),
                    ModelPrice::per_mtok(input, output, Some(read), Some(write)),
                )
            })
            .collect();
        PriceTable { models }
    }

    /// The built-in table with the file's models laid over it.
    pub fn with_file(path: &Path) -> Result<PriceTable, PricingError> {
        let text = std::fs::read_to_string(path).map_err(|source| PricingError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let at = |offset: Option<usize>, message: String| {
            let (line, col) = offset
                .map(|o| crate::spec::line_col(&text, o))
                .unwrap_or((1, 1));
            PricingError::Parse {
                path: path.display().to_string(),
                line,
                col,
                message,
            }
        };
        let file: PriceFile = toml::from_str(&text)
            .map_err(|e| at(e.span().map(|s| s.start), e.message().to_string()))?;
        let mut table = PriceTable::built_in();
        for (model, raw) in file.models {
            let start = raw.span().start;
            let price = raw
                .into_inner()
                .into_price()
                .map_err(|why| at(Some(start), format!("model \"{model}\" {why}")))?;
            table.models.insert(model, price);
        }
        Ok(table)
    }

    pub fn insert(&mut self, model: &str, price: ModelPrice) {
        self.models.insert(model.to_string(), price);
    }

    /// The price of a model: an exact name, else the longest known name it
    /// starts with (so dated names like `claude-sonnet-4-5-20250929` match).
    pub fn price(&self, model: &str) -> Option<ModelPrice> {
        if let Some(p) = self.models.get(model) {
            return Some(*p);
        }
        self.models
            .iter()
            .filter(|(name, _)| {
                model.starts_with(name.as_str()) && model[name.len()..].starts_with(['-', '@'])
            })
            .max_by_key(|(name, _)| name.len())
            .map(|(_, p)| *p)
    }

    /// Dollars for a call: the agent's own figure, else tokens times price,
    /// else `None` (unknown, never zero).
    pub fn cost(&self, usage: &Usage) -> Option<f64> {
        if let Some(c) = usage.cost_usd {
            return Some(c);
        }
        let p = self.price(usage.model.as_deref()?)?;
        let read = p
            .cache_read_input_token_cost
            .unwrap_or(p.input_cost_per_token);
        let write = p
            .cache_creation_input_token_cost
            .unwrap_or(p.input_cost_per_token);
        Some(
            usage.input_tokens as f64 * p.input_cost_per_token
                + usage.output_tokens as f64 * p.output_cost_per_token
                + usage.cache_read_tokens as f64 * read
                + usage.cache_write_tokens as f64 * write,
        )
    }
}

/// A sum of costs that remembers how many were unknown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct CostTotal {
    pub usd: f64,
    /// Attempts whose cost is unknown; when non-zero the sum is a lower bound.
    pub unknown: u32,
}

/// `sum + cost` in dollars, never negative, NaN or infinite: a cost that
/// is not a number adds nothing, and the sum stops at `f64::MAX`. Costs are
/// checked where replies are read; this keeps figures stored before that
/// check (or summed over very many calls) from showing `$inf`.
pub fn add_usd(sum: f64, cost: f64) -> f64 {
    if cost.is_nan() {
        return sum;
    }
    (sum + cost.max(0.0)).clamp(0.0, f64::MAX)
}

impl CostTotal {
    pub fn add(&mut self, cost: Option<f64>) {
        match cost {
            Some(c) => self.usd = add_usd(self.usd, c),
            None => self.unknown = self.unknown.saturating_add(1),
        }
    }

    pub fn merge(&mut self, other: CostTotal) {
        self.usd = add_usd(self.usd, other.usd);
        self.unknown = self.unknown.saturating_add(other.unknown);
    }

    pub fn is_known(&self) -> bool {
        self.unknown == 0
    }
}

impl std::fmt::Display for CostTotal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.unknown, self.usd) {
            (0, usd) => write!(f, "${usd:.4}"),
            (n, 0.0) => write!(f, "unknown ({n} unpriced)"),
            (n, usd) => write!(f, "${usd:.4} + unknown ({n} unpriced)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(model: Option<&str>, input: u64, output: u64, cost: Option<f64>) -> Usage {
        Usage {
            model: model.map(str::to_string),
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
            ..Usage::default()
        }
    }

    #[test]
    fn cost_from_table_per_million_tokens() {
        let t = PriceTable::built_in();
        let c = t
            .cost(&usage(Some("claude-sonnet-4-5"), 1_000_000, 100_000, None))
            .unwrap();
        assert!((c - 4.5).abs() < 1e-9, "{c}");
    }

    #[test]
    fn reply_cost_wins_over_table() {
        let t = PriceTable::built_in();
        assert_eq!(
            t.cost(&usage(Some("claude-sonnet-4-5"), 10, 10, Some(0.5))),
            Some(0.5)
        );
        assert_eq!(
            t.cost(&usage(Some("nobody-knows"), 10, 10, Some(0.0))),
            Some(0.0)
        );
    }

    #[test]
    fn unknown_model_is_unknown_not_zero() {
        let t = PriceTable::built_in();
        assert_eq!(t.cost(&usage(Some("house-model-7"), 10, 10, None)), None);
        assert_eq!(t.cost(&usage(None, 10, 10, None)), None);
        let mut total = CostTotal::default();
        total.add(Some(1.0));
        total.add(None);
        assert_eq!(total.to_string(), "$1.0000 + unknown (1 unpriced)");
        let mut none = CostTotal::default();
        none.add(None);
        assert_eq!(none.to_string(), "unknown (1 unpriced)");
    }

    #[test]
    fn dated_model_names_match_their_family_but_prefixes_alone_do_not() {
        let t = PriceTable::built_in();
        assert_eq!(
            t.price("claude-sonnet-4-5-20250929"),
            t.price("claude-sonnet-4-5")
        );
        assert_eq!(t.price("gpt-4o-mini-2024-07-18"), t.price("gpt-4o-mini"));
        assert!(t.price("gpt-4ox").is_none());
    }

    #[test]
    fn price_file_overrides_and_adds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricing.toml");
        std::fs::write(
            &path,
            "[models.\"claude-sonnet-4-5\"]\ninput_per_mtok = 1.0\noutput_per_mtok = 2.0\n[models.local]\ninput_per_mtok = 0.0\noutput_per_mtok = 0.0\n",
        )
        .unwrap();
        let t = PriceTable::with_file(&path).unwrap();
        assert_eq!(
            t.price("claude-sonnet-4-5").unwrap().output_cost_per_token,
            2e-6
        );
        assert_eq!(t.cost(&usage(Some("local"), 5, 5, None)), Some(0.0));
    }

    #[test]
    fn per_token_price_file_with_cache_prices() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricing.toml");
        std::fs::write(
            &path,
            "[models.house]\ninput_cost_per_token = 1e-6\noutput_cost_per_token = 2e-6\ncache_read_input_token_cost = 1e-7\ncache_creation_input_token_cost = 5e-6\n",
        )
        .unwrap();
        let t = PriceTable::with_file(&path).unwrap();
        let u = Usage {
            model: Some("house".into()),
            input_tokens: 1000,
            output_tokens: 100,
            cache_read_tokens: 10_000,
            cache_write_tokens: 200,
            cost_usd: None,
        };
        let c = t.cost(&u).unwrap();
        assert!((c - (1e-3 + 2e-4 + 1e-3 + 1e-3)).abs() < 1e-12, "{c}");
    }

    #[test]
    fn cache_tokens_use_the_built_in_cache_prices() {
        let t = PriceTable::built_in();
        let u = Usage {
            model: Some("claude-sonnet-4-5-20250929".into()),
            input_tokens: 1_000_000,
            output_tokens: 0,
            cache_read_tokens: 1_000_000,
            cache_write_tokens: 1_000_000,
            cost_usd: None,
        };
        assert!((t.cost(&u).unwrap() - (3.0 + 0.3 + 3.75)).abs() < 1e-9);
        assert_eq!(u.tokens(), 3_000_000);
    }

    #[test]
    fn price_file_mixing_forms_or_missing_a_price_is_an_error_at_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricing.toml");
        std::fs::write(
            &path,
            "[models.a]\ninput_cost_per_token = 1e-6\noutput_cost_per_token = 1e-6\n[models.b]\ninput_per_mtok = 1.0\noutput_cost_per_token = 2e-6\n",
        )
        .unwrap();
        let err = PriceTable::with_file(&path).unwrap_err().to_string();
        assert!(err.contains("pricing.toml:4:1: model \"b\" mixes"), "{err}");
        std::fs::write(&path, "[models.c]\ninput_cost_per_token = 1e-6\n").unwrap();
        let err = PriceTable::with_file(&path).unwrap_err().to_string();
        assert!(
            err.contains("model \"c\" missing `output_cost_per_token`"),
            "{err}"
        );
    }

    #[test]
    fn prices_out_of_range_are_an_error_at_the_model() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricing.toml");
        for bad in ["1e308", "-1e-6", "nan", "inf", "1.5"] {
            std::fs::write(
                &path,
                format!("[models.a]\ninput_cost_per_token = {bad}\noutput_cost_per_token = 1e-6\n"),
            )
            .unwrap();
            let err = PriceTable::with_file(&path).unwrap_err().to_string();
            assert!(
                err.contains("pricing.toml:1:1: model \"a\" has a price out of range: prices run from 0 to 1 dollar per token"),
                "{bad}: {err}"
            );
        }
        std::fs::write(
            &path,
            "[models.a]\ninput_per_mtok = 1_000_000\noutput_per_mtok = 0\n",
        )
        .unwrap();
        assert!(PriceTable::with_file(&path).is_ok());
    }

    #[test]
    fn cost_sums_never_reach_infinity() {
        let mut total = CostTotal::default();
        total.add(Some(1e308));
        total.add(Some(1e308));
        total.add(Some(f64::INFINITY));
        total.add(Some(f64::NAN));
        total.add(Some(-5.0));
        assert!(total.usd.is_finite(), "{total}");
        assert!(!total.to_string().contains("inf"), "{total}");
        let mut other = CostTotal {
            usd: f64::MAX,
            unknown: u32::MAX,
        };
        other.merge(total);
        assert!(other.usd.is_finite());
        assert_eq!(other.unknown, u32::MAX);
        assert_eq!(add_usd(1.5, 2.0), 3.5);
    }

    #[test]
    fn impossible_usage_is_named() {
        let mut u = usage(None, u64::MAX, 1, None);
        assert_eq!(u.tokens(), u64::MAX, "saturates, never wraps");
        let err = u.check().unwrap_err();
        assert!(
            err.contains("\"input_tokens\" = 18446744073709551615"),
            "{err}"
        );
        u.input_tokens = MAX_CALL_TOKENS;
        assert!(u.check().is_ok());
        u.cache_write_tokens = MAX_CALL_TOKENS + 1;
        assert!(u.check().unwrap_err().contains("cache_write_tokens"));
        u.cache_write_tokens = 0;
        for bad in [-0.01, f64::NAN, f64::INFINITY, 1e308, MAX_CALL_USD * 1.0001] {
            u.cost_usd = Some(bad);
            assert!(u.check().unwrap_err().contains("cost_usd"), "{bad}");
        }
        u.cost_usd = Some(MAX_CALL_USD);
        assert!(u.check().is_ok());
    }

    #[test]
    fn bad_price_file_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricing.toml");
        std::fs::write(
            &path,
            "[models.x]\ninput_cost_per_token = 1.0\noutput = 2.0\n",
        )
        .unwrap();
        let err = PriceTable::with_file(&path).unwrap_err().to_string();
        assert!(err.contains("pricing.toml:3:1"), "{err}");
    }
}
