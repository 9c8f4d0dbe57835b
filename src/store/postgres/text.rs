//! Values as the run's tables keep them: timestamps as RFC 3339 text in UTC
//! (written by the embedded store's `ts`, so both backends compare them as
//! text), counts as BIGINT.

use jiff::Timestamp;

use super::fail::{PgFail, PgResult};

pub(crate) use crate::store::sqlite::read::ts;

/// A stored timestamp.
pub(crate) fn parse_ts(s: &str) -> PgResult<Timestamp> {
    s.parse().map_err(|e: jiff::Error| {
        PgFail::Bad(format!("stored timestamp {s:?} does not parse: {e}"))
    })
}

/// A count as a BIGINT, clamped.
pub(crate) fn int(n: u64) -> i64 {
    n.min(i64::MAX as u64) as i64
}

/// A BIGINT count read back; never negative.
pub(crate) fn uint(n: i64) -> u64 {
    n.max(0) as u64
}

/// A BIGINT read into a field of 32 bits; out of range is a bad value.
pub(crate) fn small(n: i64, what: &str) -> PgResult<u32> {
    u32::try_from(n).map_err(|_| PgFail::Bad(format!("stored {what} {n} is out of range")))
}
