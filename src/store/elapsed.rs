//! Sorting tasks by elapsed time through indexes. A finished task's elapsed
//! time is fixed, `took_ns` (finished minus created), kept in its row and
//! indexed; an unfinished one's grows with the clock, so among unfinished
//! tasks the order is their age, `created_at`, indexed too. Each store reads
//! the two in order, each from its own index, and `merge` interleaves them:
//! a page costs its rows, not every row of the run.

use jiff::Timestamp;

use super::model::TaskRow;

/// Where a row stands in the elapsed order at one instant: its elapsed time
/// in nanoseconds, ties broken by submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Place {
    pub elapsed_ns: i128,
    pub ord: i64,
}

impl Place {
    /// The place of a task created at `created`, finished `took_ns` later
    /// (`None`: not finished), at `now`.
    pub fn new(created: Timestamp, took_ns: Option<i64>, ord: i64, now: Timestamp) -> Place {
        let elapsed_ns = match took_ns {
            Some(took) => i128::from(took),
            None => now.as_nanosecond() - created.as_nanosecond(),
        };
        Place { elapsed_ns, ord }
    }

    /// The place of a finished task that took `took_ns`.
    pub fn finished(took_ns: i64, ord: i64) -> Place {
        Place {
            elapsed_ns: i128::from(took_ns),
            ord,
        }
    }
}

/// A finished task's elapsed time as its row keeps it: finished minus
/// created, in nanoseconds (saturating); `None` while it is unfinished.
pub(crate) fn took_ns(row: &TaskRow) -> Option<i64> {
    let finished = row.finished_at?;
    let ns = finished.as_nanosecond() - row.created_at.as_nanosecond();
    Some(ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// The two index scans a sort by elapsed time merges.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Arm {
    Unfinished = 0,
    Finished = 1,
}

impl Arm {
    pub const BOTH: [Arm; 2] = [Arm::Unfinished, Arm::Finished];

    /// The condition that keeps this arm's rows (the partial indexes').
    pub fn condition(self) -> &'static str {
        match self {
            Arm::Unfinished => "took_ns IS NULL",
            Arm::Finished => "took_ns IS NOT NULL",
        }
    }

    /// The columns `place` reads, from this arm's index alone: the age of
    /// an unfinished task, the time of a finished one, and the ord.
    pub fn key_columns(self) -> &'static str {
        match self {
            Arm::Unfinished => "created_at, CAST(NULL AS BIGINT), ord",
            Arm::Finished => "CAST(NULL AS TEXT), took_ns, ord",
        }
    }

    /// The arm's order for the sort's direction: the longest elapsed time
    /// first is the oldest unfinished task first, and the longest finished.
    pub fn order(self, desc: bool) -> &'static str {
        match (self, desc) {
            (Arm::Unfinished, true) => " ORDER BY created_at ASC, ord DESC",
            (Arm::Unfinished, false) => " ORDER BY created_at DESC, ord ASC",
            (Arm::Finished, true) => " ORDER BY took_ns DESC, ord DESC",
            (Arm::Finished, false) => " ORDER BY took_ns ASC, ord ASC",
        }
    }

    /// The condition that keeps this arm's rows after `anchor` in the sort's
    /// direction; `param` binds a value and returns its placeholder.
    pub fn after(
        self,
        anchor: Place,
        desc: bool,
        now: Timestamp,
        param: &mut dyn FnMut(Param) -> String,
    ) -> String {
        let ord = param(Param::Int(anchor.ord));
        match self {
            Arm::Unfinished => {
                // elapsed < k  <=>  created > now - k, and equal likewise.
                let created = now.as_nanosecond() - anchor.elapsed_ns;
                let Ok(created) = Timestamp::from_nanosecond(created) else {
                    // Out of any timestamp's range: every row on one side.
                    let before_all = created < Timestamp::MIN.as_nanosecond();
                    return if before_all == desc { "1=1" } else { "1=0" }.into();
                };
                let at = param(Param::Text(super::sqlite::read::ts(created)));
                let (cmp, ord_cmp) = if desc { (">", "<") } else { ("<", ">") };
                format!("(created_at {cmp} {at} OR (created_at = {at} AND ord {ord_cmp} {ord}))")
            }
            Arm::Finished => {
                let took = anchor
                    .elapsed_ns
                    .clamp(i128::from(i64::MIN), i128::from(i64::MAX))
                    as i64;
                let took = param(Param::Int(took));
                let cmp = if desc { "<" } else { ">" };
                format!("(took_ns {cmp} {took} OR (took_ns = {took} AND ord {cmp} {ord}))")
            }
        }
    }
}

/// The two arms' queries as one statement, so that both read the same
/// moment of the run (a task that finishes between two reads would be in
/// both, or in neither).
pub(crate) fn union(unfinished: &str, finished: &str) -> String {
    format!(
        "SELECT * FROM ({unfinished}) AS unfinished UNION ALL SELECT * FROM ({finished}) AS finished"
    )
}

/// The rows of `union`'s statement, each with its arm and place, as the two
/// lists `merge` takes, each in the sort's order.
pub(crate) fn split<T>(rows: Vec<(Arm, Place, T)>, desc: bool) -> [Vec<(Place, T)>; 2] {
    let mut arms = [Vec::new(), Vec::new()];
    for (arm, place, row) in rows {
        arms[arm as usize].push((place, row));
    }
    for list in &mut arms {
        // In order already as read; a stable sort of sorted runs is one pass.
        list.sort_by(|a, b| if desc { b.0.cmp(&a.0) } else { a.0.cmp(&b.0) });
    }
    arms
}

/// A value an arm's condition binds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    Int(i64),
    Text(String),
}

/// Interleaves two lists, each in the sort's order, into one: skips `skip`
/// of them and keeps at most `take`.
pub(crate) fn merge<T>(
    a: Vec<(Place, T)>,
    b: Vec<(Place, T)>,
    desc: bool,
    skip: usize,
    take: Option<usize>,
) -> Vec<(Place, T)> {
    let mut a = a.into_iter().peekable();
    let mut b = b.into_iter().peekable();
    let mut out = Vec::new();
    let mut skipped = 0;
    loop {
        if take.is_some_and(|t| out.len() >= t) {
            return out;
        }
        let from_a = match (a.peek(), b.peek()) {
            (None, None) => return out,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some((pa, _)), Some((pb, _))) => (pa > pb) == desc,
        };
        let next = if from_a { a.next() } else { b.next() };
        let next = next.expect("peeked");
        if skipped < skip {
            skipped += 1;
        } else {
            out.push(next);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(elapsed_ns: i128, ord: i64) -> (Place, i64) {
        (Place { elapsed_ns, ord }, ord)
    }

    fn ords(v: Vec<(Place, i64)>) -> Vec<i64> {
        v.into_iter().map(|(_, o)| o).collect()
    }

    #[test]
    fn merge_interleaves_both_ways_with_ties_by_ord() {
        // Longest first; equal times by ord, the later first.
        let a = vec![p(90, 1), p(50, 4), p(50, 2), p(10, 3)];
        let b = vec![p(70, 6), p(50, 5), p(5, 7)];
        assert_eq!(
            ords(merge(a.clone(), b.clone(), true, 0, None)),
            [1, 6, 5, 4, 2, 3, 7]
        );
        assert_eq!(
            ords(merge(a.clone(), b.clone(), true, 2, Some(3))),
            [5, 4, 2]
        );
        assert_eq!(ords(merge(a, b, true, 9, Some(3))), Vec::<i64>::new());
        let mut a = vec![p(90, 1), p(50, 4), p(50, 2), p(10, 3)];
        let mut b = vec![p(70, 6), p(50, 5), p(5, 7)];
        a.reverse();
        b.reverse();
        assert_eq!(ords(merge(a, b, false, 0, None)), [7, 3, 2, 4, 5, 6, 1]);
    }

    #[test]
    fn an_unfinished_task_ages_with_the_clock_and_a_finished_one_does_not() {
        let created: Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        assert_eq!(Place::new(created, None, 3, now).elapsed_ns, 10_000_000_000);
        assert_eq!(Place::new(created, Some(4), 3, now).elapsed_ns, 4);
    }

    #[test]
    fn the_condition_after_an_anchor_names_the_age_it_stands_for() {
        let now: Timestamp = "2026-01-01T00:00:10Z".parse().unwrap();
        let anchor = Place {
            elapsed_ns: 4_000_000_000,
            ord: 7,
        };
        let mut bound = Vec::new();
        let mut param = |v: Param| {
            bound.push(v);
            format!("?{}", bound.len())
        };
        let sql = Arm::Unfinished.after(anchor, true, now, &mut param);
        assert_eq!(sql, "(created_at > ?2 OR (created_at = ?2 AND ord < ?1))");
        let sql = Arm::Finished.after(anchor, false, now, &mut param);
        assert_eq!(sql, "(took_ns > ?4 OR (took_ns = ?4 AND ord > ?3))");
        // An age beyond any timestamp: every unfinished row is younger.
        let far = Place {
            elapsed_ns: 10i128.pow(22),
            ord: 1,
        };
        assert_eq!(Arm::Unfinished.after(far, true, now, &mut param), "1=1");
        assert_eq!(Arm::Unfinished.after(far, false, now, &mut param), "1=0");
        assert_eq!(
            bound[..4],
            [
                Param::Int(7),
                Param::Text("2026-01-01T00:00:06.000000000Z".into()),
                Param::Int(7),
                Param::Int(4_000_000_000),
            ]
        );
    }
}
