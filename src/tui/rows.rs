//! The task table's rows as a store query: the dashboard's sort column and
//! direction and its filter, over the window around the scroll position.

use jiff::{SignedDuration, Timestamp};

use crate::engine::task::Task;
use crate::store::{ListQuery, Sort as StoreSort, TaskRow};

use super::view_state::{Sort, SortColumn};

/// The store's sort for a column.
pub fn store_sort(column: SortColumn) -> StoreSort {
    match column {
        SortColumn::Submitted => StoreSort::Submitted,
        SortColumn::State => StoreSort::State,
        SortColumn::Id => StoreSort::Id,
        SortColumn::Phase => StoreSort::Phase,
        SortColumn::Progress => StoreSort::Progress,
        SortColumn::Attempts => StoreSort::Attempts,
        SortColumn::Tokens => StoreSort::Tokens,
        SortColumn::Cost => StoreSort::Cost,
        SortColumn::Elapsed => StoreSort::Elapsed,
    }
}

/// Whether the store's sort runs largest first on its own.
fn naturally_descending(sort: StoreSort) -> bool {
    matches!(
        sort,
        StoreSort::Updated
            | StoreSort::Tokens
            | StoreSort::Cost
            | StoreSort::Attempts
            | StoreSort::Elapsed
    )
}

/// The rows `offset..offset + limit` of the table as sorted and filtered.
/// Ties run the way the column runs (see [`StoreSort`]).
/// The filter is the filter language (see [`crate::filter`]); text it
/// cannot parse (being typed, say) is searched as plain text meanwhile.
pub fn query(sort: Sort, filter: &str, offset: usize, limit: usize) -> ListQuery {
    let by = store_sort(sort.column);
    let text = filter.trim();
    let (parsed, plain) = match crate::filter::Filter::parse(text) {
        Ok(f) if !f.is_empty() => (Some(f), None),
        Ok(_) => (None, None),
        Err(_) => (None, Some(text.to_string())),
    };
    ListQuery {
        sort: by,
        reverse: sort.descending != naturally_descending(by),
        text: plain,
        filter: parsed,
        offset: offset as u64,
        limit: Some(limit as u64),
        ..ListQuery::default()
    }
}

/// How long a task has run: to its finish, or to now.
pub fn elapsed(task: &Task, now: Timestamp) -> SignedDuration {
    task.finished_at
        .unwrap_or(now)
        .duration_since(task.created_at)
}

/// How long a task row's task has run: to its finish, or to now.
pub fn row_elapsed(row: &TaskRow, now: Timestamp) -> SignedDuration {
    row.finished_at
        .unwrap_or(now)
        .duration_since(row.created_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_column_runs_its_way_with_the_filter_trimmed() {
        let q = query(Sort::default(), "  t-1 ", 40, 60);
        assert_eq!((q.sort, q.reverse), (StoreSort::Submitted, false));
        assert_eq!(
            q.filter.as_ref().map(|f| f.terms.len()),
            Some(1),
            "a bare word is a term of the filter language"
        );
        // Half typed: searched as text until it parses.
        assert_eq!(
            query(Sort::default(), "state:", 0, 1).text.as_deref(),
            Some("state:")
        );
        assert_eq!((q.offset, q.limit), (40, Some(60)));
        let tokens = Sort {
            column: SortColumn::Tokens,
            descending: true,
        };
        assert!(
            !query(tokens, "", 0, 1).reverse,
            "largest first is the store's way"
        );
        assert!(query(tokens.reversed(), "", 0, 1).reverse);
        assert!(query(Sort::default().reversed(), "", 0, 1).reverse);
        assert_eq!(query(Sort::default(), " ", 0, 1).text, None);
        assert_eq!(query(Sort::default(), " ", 0, 1).filter, None);
    }
}
