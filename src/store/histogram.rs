//! Counts of values in log-scale buckets: constant room however many values
//! are added, percentiles within 1/16 of the true value, and merged by
//! adding counts (so a phase's figures are the sum of its agents').
//!
//! Values below 16 have a bucket each; above, every power of two is cut
//! into 8 buckets, each 1/8 to 1/15 of its lower bound wide. A percentile
//! is the middle of the bucket holding the value of that rank, so it is
//! off by at most half a bucket: under 6.25%.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Values below this are counted exactly.
const EXACT: u64 = 16;
/// Buckets per power of two above `EXACT`.
const PER_OCTAVE: u64 = 8;
/// log2 of `PER_OCTAVE`.
const OCTAVE_BITS: u32 = 3;
/// log2 of `EXACT`: the first octave cut into buckets.
const FIRST_OCTAVE: u32 = 4;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Histogram {
    /// Count per bucket, up to the highest bucket used.
    counts: Vec<u64>,
    n: u64,
}

impl Histogram {
    /// The bucket `v` falls in.
    fn bucket(v: u64) -> usize {
        if v < EXACT {
            return v as usize;
        }
        let log = 63 - v.leading_zeros();
        let frac = (v >> (log - OCTAVE_BITS)) & (PER_OCTAVE - 1);
        (EXACT + u64::from(log - FIRST_OCTAVE) * PER_OCTAVE + frac) as usize
    }

    /// The smallest and largest value of bucket `b`.
    fn bounds(b: usize) -> (u64, u64) {
        let b = b as u64;
        if b < EXACT {
            return (b, b);
        }
        let log = ((b - EXACT) / PER_OCTAVE) as u32 + FIRST_OCTAVE;
        let frac = (b - EXACT) % PER_OCTAVE;
        let width = 1u64 << (log - OCTAVE_BITS);
        let lo = (PER_OCTAVE + frac) << (log - OCTAVE_BITS);
        (lo, lo.saturating_add(width - 1))
    }

    pub fn add(&mut self, v: u64) {
        self.add_n(Self::bucket(v), 1);
    }

    fn add_n(&mut self, b: usize, n: u64) {
        if self.counts.len() <= b {
            self.counts.resize(b + 1, 0);
        }
        self.counts[b] += n;
        self.n += n;
    }

    /// Adds every value of `other`.
    pub fn merge(&mut self, other: &Histogram) {
        for (b, &n) in other.counts.iter().enumerate() {
            if n > 0 {
                self.add_n(b, n);
            }
        }
    }

    /// How many values were added.
    pub fn count(&self) -> u64 {
        self.n
    }

    /// The value of rank ⌈p·n⌉ (nearest rank; at least the first), as the
    /// middle of its bucket; `None` when empty. `p` is a fraction: 0.95.
    pub fn percentile(&self, p: f64) -> Option<u64> {
        if self.n == 0 {
            return None;
        }
        let rank = nearest_rank(self.n, p);
        let mut seen = 0;
        for (b, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let (lo, hi) = Self::bounds(b);
                return Some(lo + (hi - lo) / 2);
            }
        }
        None
    }

    /// The buckets in use, as (bucket, count): the stored form.
    fn pairs(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, n)| **n > 0)
            .map(|(b, n)| (b, *n))
    }
}

/// The 1-based rank of percentile `p` among `n` values: ⌈p·n⌉, at least 1
/// and at most `n`. What `percentile` reads, and what a recount should use.
pub fn nearest_rank(n: u64, p: f64) -> u64 {
    ((p.clamp(0.0, 1.0) * n as f64).ceil() as u64).clamp(1, n.max(1))
}

/// Stored as `[[bucket, count], ...]`, the used buckets only.
impl Serialize for Histogram {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.pairs())
    }
}

impl<'de> Deserialize<'de> for Histogram {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Histogram, D::Error> {
        /// No bucket of a u64 lies past this one.
        const LAST: usize = Histogram::bucket_of_max();
        let pairs: Vec<(usize, u64)> = Vec::deserialize(d)?;
        let mut h = Histogram::default();
        for (b, n) in pairs {
            if b > LAST {
                return Err(serde::de::Error::custom(format!(
                    "histogram bucket {b} is past the last ({LAST})"
                )));
            }
            h.add_n(b, n);
        }
        Ok(h)
    }
}

impl Histogram {
    const fn bucket_of_max() -> usize {
        (EXACT + (63 - FIRST_OCTAVE as u64) * PER_OCTAVE + PER_OCTAVE - 1) as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The exact value of rank ⌈p·n⌉ of `values`.
    fn exact(values: &[u64], p: f64) -> u64 {
        let mut v = values.to_vec();
        v.sort_unstable();
        v[nearest_rank(v.len() as u64, p) as usize - 1]
    }

    fn of(values: &[u64]) -> Histogram {
        let mut h = Histogram::default();
        for &v in values {
            h.add(v);
        }
        h
    }

    fn assert_within(got: u64, want: u64, what: &str) {
        let err = (got as f64 - want as f64).abs() / (want.max(1) as f64);
        assert!(err <= 0.0625, "{what}: {got} vs exact {want} ({err:.4})");
    }

    #[test]
    fn small_values_are_exact() {
        let values: Vec<u64> = (0..16).collect();
        let h = of(&values);
        for p in [0.0, 0.1, 0.5, 0.95, 1.0] {
            assert_eq!(h.percentile(p), Some(exact(&values, p)), "p{p}");
        }
    }

    #[test]
    fn every_value_lands_in_a_bucket_that_holds_it() {
        let mut v = 1u64;
        while v < u64::MAX / 3 {
            for x in [v, v + 1, v * 3 / 2, v * 2 - 1] {
                let (lo, hi) = Histogram::bounds(Histogram::bucket(x));
                assert!(lo <= x && x <= hi, "{x} not in [{lo}, {hi}]");
                assert!(
                    (hi - lo) as f64 <= lo as f64 / 8.0,
                    "bucket of {x} too wide"
                );
            }
            v = v * 3 + 1;
        }
        let last = Histogram::bucket(u64::MAX);
        assert_eq!(last, Histogram::bucket_of_max());
        assert_eq!(Histogram::bounds(last).1, u64::MAX);
    }

    #[test]
    fn percentiles_are_within_a_sixteenth_of_the_exact_ones() {
        // A skewed spread, as attempt durations are: many short, a long tail.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut values = Vec::new();
        for _ in 0..5000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let u = (seed >> 11) as f64 / (1u64 << 53) as f64;
            values.push((20.0 * (1.0 / (1.0 - u)).powf(1.5)) as u64 + 3);
        }
        let h = of(&values);
        assert_eq!(h.count(), 5000);
        for p in [0.01, 0.25, 0.5, 0.9, 0.95, 0.99, 1.0] {
            assert_within(
                h.percentile(p).unwrap(),
                exact(&values, p),
                &format!("p{p}"),
            );
        }
    }

    #[test]
    fn one_value_is_every_percentile() {
        let h = of(&[1234]);
        for p in [0.0, 0.5, 0.95, 1.0] {
            assert_within(h.percentile(p).unwrap(), 1234, "one value");
        }
        assert_eq!(Histogram::default().percentile(0.5), None);
    }

    #[test]
    fn merged_histograms_count_what_both_held() {
        let (a, b) = (
            (1..500).collect::<Vec<u64>>(),
            (400..3000).collect::<Vec<u64>>(),
        );
        let mut h = of(&a);
        h.merge(&of(&b));
        let all: Vec<u64> = a.iter().chain(&b).copied().collect();
        assert_eq!(h, of(&all));
        assert_within(h.percentile(0.95).unwrap(), exact(&all, 0.95), "p95");
    }

    #[test]
    fn the_stored_form_reads_back_and_refuses_buckets_past_the_last() {
        let h = of(&[0, 5, 17, 900, 900, 1 << 40]);
        let text = serde_json::to_string(&h).unwrap();
        assert_eq!(serde_json::from_str::<Histogram>(&text).unwrap(), h);
        assert_eq!(serde_json::to_string(&Histogram::default()).unwrap(), "[]");
        let err = serde_json::from_str::<Histogram>("[[100000, 1]]").unwrap_err();
        assert!(err.to_string().contains("past the last"), "{err}");
    }
}
