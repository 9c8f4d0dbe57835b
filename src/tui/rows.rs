//! The task table's rows: which tasks pass the filter, in what order. Built
//! only when the run, the sort or the filter changes, never per frame.

use std::cmp::Ordering;

use jiff::Timestamp;

use crate::engine::state::TaskState;
use crate::engine::task::Task;

use super::view_model::{RunView, TaskEntry};
use super::view_state::{Sort, SortColumn};

#[derive(Debug, Clone, Default)]
pub struct Rows {
    /// Task positions (submission order) in display order.
    pub order: Vec<usize>,
    /// What it was built from: run version, sort, filter.
    built: Option<(u64, Sort, String)>,
}

/// Needing a person first, then trouble, then work under way, then done.
fn attention(state: TaskState) -> u8 {
    match state {
        TaskState::Blocked => 0,
        TaskState::AwaitingReview => 1,
        TaskState::Failed => 2,
        TaskState::Retrying => 3,
        TaskState::Running => 4,
        TaskState::Pending => 5,
        TaskState::Completed => 6,
        TaskState::Cancelled => 7,
    }
}

/// How long a task has run: to its finish, or to now.
pub fn elapsed(task: &Task, now: Timestamp) -> jiff::SignedDuration {
    task.finished_at
        .unwrap_or(now)
        .duration_since(task.created_at)
}

/// Whether a task's id, state or current phase contains the (lower-case) needle.
pub fn matches(task: &Task, needle: &str) -> bool {
    needle.is_empty()
        || contains(&task.id, needle)
        || task.state.as_str().contains(needle)
        || task.current_phase().is_some_and(|p| contains(p, needle))
}

/// `hay` contains the lower-case `needle`, ignoring ASCII case, without
/// allocating (this runs for every task whenever the filter or run changes).
fn contains(hay: &str, needle: &str) -> bool {
    let (h, n) = (hay.as_bytes(), needle.as_bytes());
    n.is_empty() || h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

fn compare(
    view: &RunView,
    column: SortColumn,
    a: &TaskEntry,
    b: &TaskEntry,
    now: Timestamp,
) -> Ordering {
    let (ta, tb) = (&a.task, &b.task);
    let phase = |t: &Task| t.current_phase().and_then(|p| t.phase_index(p));
    match column {
        SortColumn::Submitted => Ordering::Equal,
        SortColumn::State => attention(ta.state).cmp(&attention(tb.state)),
        SortColumn::Id => ta.id.cmp(&tb.id),
        // Tasks that have not started sort after every phase.
        SortColumn::Phase => phase(ta)
            .unwrap_or(view.phases.len())
            .cmp(&phase(tb).unwrap_or(view.phases.len())),
        SortColumn::Progress => ta.phases_settled().cmp(&tb.phases_settled()),
        SortColumn::Attempts => ta.attempts().cmp(&tb.attempts()),
        SortColumn::Tokens => a.tokens.cmp(&b.tokens),
        SortColumn::Cost => a
            .cost
            .usd
            .total_cmp(&b.cost.usd)
            .then(a.cost.unknown.cmp(&b.cost.unknown)),
        SortColumn::Elapsed => elapsed(ta, now).cmp(&elapsed(tb, now)),
    }
}

impl Rows {
    /// Rebuilds when the run, sort or filter changed since the last build.
    pub fn refresh(&mut self, view: &RunView, sort: Sort, filter: &str, now: Timestamp) -> bool {
        let key = (view.version(), sort, filter.to_string());
        if self.built.as_ref() == Some(&key) {
            return false;
        }
        let needle = filter.trim().to_lowercase();
        let entries = view.entries();
        self.order.clear();
        self.order
            .extend((0..entries.len()).filter(|&i| matches(&entries[i].task, &needle)));
        if sort.column != SortColumn::Submitted || sort.descending {
            // Ties keep submission order, whichever way the column runs.
            self.order.sort_by(|&i, &j| {
                let by = compare(view, sort.column, &entries[i], &entries[j], now);
                let by = if sort.descending { by.reverse() } else { by };
                by.then(i.cmp(&j))
            });
            if sort.column == SortColumn::Submitted {
                self.order.reverse();
            }
        }
        self.built = Some(key);
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// The display row of a task, if it passes the filter.
    pub fn row_of(&self, view: &RunView, id: Option<&str>) -> Option<usize> {
        let idx = view.position(id?)?;
        self.order.iter().position(|&i| i == idx)
    }

    /// The task id shown at a display row.
    pub fn id_at<'v>(&self, view: &'v RunView, row: usize) -> Option<&'v str> {
        let idx = *self.order.get(row)?;
        view.entry(idx).map(|e| e.task.id.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tui::test_support::{now, sample_run};

    fn ids(view: &RunView, sort: Sort, filter: &str) -> Vec<String> {
        let mut rows = Rows::default();
        rows.refresh(view, sort, filter, now());
        rows.order
            .iter()
            .map(|&i| view.entries()[i].task.id.clone())
            .collect()
    }

    fn sort(column: SortColumn, descending: bool) -> Sort {
        Sort { column, descending }
    }

    #[test]
    fn filter_matches_id_state_or_phase_in_any_case() {
        let view = sample_run();
        assert_eq!(
            ids(&view, Sort::default(), "T-00"),
            ids(&view, Sort::default(), "")
        );
        assert_eq!(ids(&view, Sort::default(), "t-004"), ["t-004"]);
        assert_eq!(ids(&view, Sort::default(), "fail"), ["t-006"]);
        assert_eq!(ids(&view, Sort::default(), "review"), ["t-004"]);
        assert_eq!(ids(&view, Sort::default(), "draft"), ["t-002", "t-004"]);
        assert!(ids(&view, Sort::default(), "zzz").is_empty());
    }

    #[test]
    fn sort_by_state_puts_people_first() {
        let view = sample_run();
        let by_state = ids(&view, sort(SortColumn::State, false), "");
        assert_eq!(&by_state[..4], ["t-005", "t-004", "t-006", "t-003"]);
        assert_eq!(by_state.last().map(String::as_str), Some("t-009"));
    }

    #[test]
    fn sort_by_numbers_largest_first_with_ties_in_submission_order() {
        let view = sample_run();
        let by_tokens = ids(&view, sort(SortColumn::Tokens, true), "");
        assert_eq!(&by_tokens[..2], ["t-001", "t-007"]);
        // t-008 and t-009 both used nothing; submission order breaks the tie.
        assert_eq!(&by_tokens[7..], ["t-008", "t-009"]);
        let reversed = ids(&view, Sort::default().reversed(), "");
        assert_eq!(reversed.first().map(String::as_str), Some("t-009"));
    }

    #[test]
    fn rebuilds_only_when_something_changed() {
        let view = sample_run();
        let mut rows = Rows::default();
        assert!(rows.refresh(&view, Sort::default(), "", now()));
        assert!(!rows.refresh(&view, Sort::default(), "", now()));
        assert!(rows.refresh(&view, Sort::default(), "t-1", now()));
        assert_eq!(rows.row_of(&view, Some("t-004")), None);
    }
}
