//! What the dashboard reads from the store for one frame's worth of run:
//! the totals, the table's window for its sort, filter and scroll position,
//! a page of the review queue, and the selected task whole. A few indexed
//! queries whatever the size of the run; nothing here holds the whole run.

use crate::engine::task::{Hold, Task};
use crate::store::{ListQuery, RunReader, StoreError, TaskRow, Totals};

/// What the dashboard shows, as a request to the store.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Want {
    /// The table's rows: sort, direction, text filter, window.
    pub table: ListQuery,
    pub queue_offset: u64,
    pub queue_limit: u64,
    /// The task in the detail pane.
    pub selected: Option<String>,
    /// Count the tasks finished since then, to start the throughput figure
    /// from the run's recent past rather than from zero.
    pub finished_since: Option<jiff::Timestamp>,
}

/// The store's answer to a [`Want`].
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub want: Want,
    pub totals: Totals,
    /// Rows from `want.table.offset` on.
    pub rows: Vec<TaskRow>,
    /// How many tasks pass the filter.
    pub matching: u64,
    /// Open holds from `want.queue_offset` on, with their task ids.
    pub queue: Vec<(String, Hold)>,
    /// What each task in `queue` has spent: tokens and dollars.
    pub queue_spent: std::collections::HashMap<String, (u64, crate::engine::cost::CostTotal)>,
    /// Since when the longest-waiting hold of the run has waited.
    pub oldest_wait: Option<jiff::Timestamp>,
    pub selected: Option<Task>,
    /// In a fleet: the engine that holds the selected task now.
    pub holder: Option<String>,
    /// Tasks finished since `want.finished_since`, when asked.
    pub finished_recently: Option<u64>,
    /// The highest seq committed when the page was read (read first, so
    /// the page reflects at least this much).
    pub seq: u64,
}

/// Reads a page. Each query is one read transaction of its own; a page may
/// mix commits a few milliseconds apart, and the next page settles it.
pub async fn fetch(reader: &dyn RunReader, want: Want) -> Result<Page, StoreError> {
    let seq = reader.last_seq().await?;
    let totals = reader.totals().await?;
    let rows = reader.list(&want.table).await?;
    let filtered = want.table.text.as_deref().is_some_and(|t| !t.is_empty())
        || want.table.filter.as_ref().is_some_and(|f| !f.is_empty())
        || want.table.state.is_some()
        || want.table.phase.is_some();
    let matching = if filtered {
        let all = ListQuery {
            offset: 0,
            limit: None,
            after: None,
            ..want.table.clone()
        };
        reader.count(&all).await?
    } else {
        totals.tasks
    };
    let queue = if want.queue_limit == 0 {
        Vec::new()
    } else {
        reader
            .waiting(want.queue_offset, Some(want.queue_limit))
            .await?
    };
    let mut queue_spent = std::collections::HashMap::new();
    for (id, _) in &queue {
        if !queue_spent.contains_key(id)
            && let Some(row) = reader.row(id).await?
        {
            queue_spent.insert(id.clone(), (row.tokens, row.cost()));
        }
    }
    let oldest_wait = if want.queue_offset == 0 || queue.is_empty() {
        queue.first().map(|(_, h)| h.since)
    } else {
        reader
            .waiting(0, Some(1))
            .await?
            .first()
            .map(|(_, h)| h.since)
    };
    let selected = match &want.selected {
        Some(id) => reader.task(id).await?,
        None => None,
    };
    let holder = match &want.selected {
        Some(id) => reader.holder(id).await?,
        None => None,
    };
    let finished_recently = match want.finished_since {
        Some(since) => Some(
            reader
                .count(&ListQuery {
                    finished_since: Some(since),
                    ..ListQuery::default()
                })
                .await?,
        ),
        None => None,
    };
    Ok(Page {
        want,
        totals,
        rows,
        matching,
        queue,
        queue_spent,
        oldest_wait,
        selected,
        holder,
        finished_recently,
        seq,
    })
}

/// Reads a page on a blocking thread (SQLite answers synchronously), so the
/// dashboard's loop never waits on the disk.
pub async fn fetch_off_thread(
    reader: std::sync::Arc<dyn RunReader>,
    want: Want,
) -> Result<Page, StoreError> {
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || runtime.block_on(fetch(reader.as_ref(), want)))
        .await
        .unwrap_or_else(|e| {
            Err(StoreError::Io {
                path: std::path::PathBuf::new(),
                source: std::io::Error::other(format!("the reading thread failed: {e}")),
            })
        })
}
