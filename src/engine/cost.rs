//! Tokens and dollars: usage as agents report it, prices per model, and sums
//! that keep unknown costs apart from zero.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// What one call used, as the agent reported it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// Dollars as the agent counted them; wins over the price table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
}

impl Usage {
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }
}

/// Prices of one model, in dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelPrice {
    pub input_per_mtok: f64,
    pub output_per_mtok: f64,
}

/// Per-model prices: built in, then overridden by a `pricing.toml`.
#[derive(Debug, Clone, Default)]
pub struct PriceTable {
    models: BTreeMap<String, ModelPrice>,
}

/// Prices published by the providers, dollars per million tokens.
const BUILT_IN: &[(&str, f64, f64)] = &[
    ("claude-opus-4-5", 5.0, 25.0),
    ("claude-opus-4-1", 15.0, 75.0),
    ("claude-opus-4", 15.0, 75.0),
    ("claude-sonnet-4-5", 3.0, 15.0),
    ("claude-sonnet-4", 3.0, 15.0),
    ("claude-3-7-sonnet", 3.0, 15.0),
    ("claude-haiku-4-5", 1.0, 5.0),
    ("claude-3-5-haiku", 0.8, 4.0),
    ("gpt-5", 1.25, 10.0),
    ("gpt-5-mini", 0.25, 2.0),
    ("gpt-5-nano", 0.05, 0.4),
    ("gpt-4.1", 2.0, 8.0),
    ("gpt-4.1-mini", 0.4, 1.6),
    ("gpt-4.1-nano", 0.1, 0.4),
    ("gpt-4o", 2.5, 10.0),
    ("gpt-4o-mini", 0.15, 0.6),
    ("o3", 2.0, 8.0),
    ("o4-mini", 1.1, 4.4),
];

#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    #[error("cannot read price file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "{path}:{line}:{col}: {message}\n  a price file looks like:\n  [models.\"my-model\"]\n  input_per_mtok = 3.0\n  output_per_mtok = 15.0"
    )]
    Parse {
        path: String,
        line: usize,
        col: usize,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PriceFile {
    #[serde(default)]
    models: BTreeMap<String, ModelPrice>,
}

impl PriceTable {
    pub fn built_in() -> PriceTable {
        let models = BUILT_IN
            .iter()
            .map(|(name, input, output)| {
                (
                    name.to_string(),
                    ModelPrice {
                        input_per_mtok: *input,
                        output_per_mtok: *output,
                    },
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
        let file: PriceFile = toml::from_str(&text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| crate::spec::line_col(&text, s.start))
                .unwrap_or((1, 1));
            PricingError::Parse {
                path: path.display().to_string(),
                line,
                col,
                message: e.message().to_string(),
            }
        })?;
        let mut table = PriceTable::built_in();
        table.models.extend(file.models);
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
        let price = self.price(usage.model.as_deref()?)?;
        Some(
            usage.input_tokens as f64 * price.input_per_mtok / 1e6
                + usage.output_tokens as f64 * price.output_per_mtok / 1e6,
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

impl CostTotal {
    pub fn add(&mut self, cost: Option<f64>) {
        match cost {
            Some(c) => self.usd += c,
            None => self.unknown += 1,
        }
    }

    pub fn merge(&mut self, other: CostTotal) {
        self.usd += other.usd;
        self.unknown += other.unknown;
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
        assert_eq!(t.price("claude-sonnet-4-5").unwrap().output_per_mtok, 2.0);
        assert_eq!(t.cost(&usage(Some("local"), 5, 5, None)), Some(0.0));
    }

    #[test]
    fn bad_price_file_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pricing.toml");
        std::fs::write(&path, "[models.x]\ninput_per_mtok = 1.0\noutput = 2.0\n").unwrap();
        let err = PriceTable::with_file(&path).unwrap_err().to_string();
        assert!(err.contains("pricing.toml:3:1"), "{err}");
    }
}
