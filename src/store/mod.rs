//! Durability and queries: one store per run, behind two traits so that the
//! engine and every reader work the same on any backend.
//!
//! The engine applies events to the tasks it holds and hands them, with the
//! task rows they changed, to [`RunStore::append`]; the backend commits them
//! in groups and only then publishes them to subscribers. Readers (the CLI,
//! dashboards, the run log) ask [`RunReader`] for rows, totals, the review
//! queue, one task, or the events after a sequence number: they query, they
//! never load the whole run.
//!
//! The embedded backend is SQLite ([`sqlite`]); folders of the old layout
//! (journal and snapshots, `legacy`) are converted on first open.

pub mod cache;
pub mod clean;
pub(crate) mod elapsed;
mod error;
pub mod histogram;
pub(crate) mod legacy;
mod lock;
pub mod model;
pub mod place;
pub mod postgres;
pub mod private;
pub mod sqlite;
pub mod stats;
mod stats_fold;
#[cfg(test)]
mod suite;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use tokio::sync::broadcast;

pub use error::StoreError;
pub use lock::held as engine_holds;
pub use model::{
    Batch, ListQuery, PhaseTotals, Recovered, Reserved, RowChange, RunMeta, Sort, StoreStats,
    TaskNo, TaskRow, Totals,
};
pub use place::Place;
pub use sqlite::{SqliteReader, SqliteStore};
pub use stats::{AttemptFigures, RunStats};

use crate::engine::event::Event;
use crate::engine::task::{Hold, Task};
use cache::{CacheEntry, CacheFilter, CacheInfo, CacheKey, CacheWrite};

/// Starts of an agent granted out of its `rpm` for the current window.
#[derive(Debug, Clone, Copy)]
pub struct RateGrant {
    pub granted: u32,
    /// Until the window ends.
    pub left: std::time::Duration,
    /// Tokens the agent's attempts used in the window, across the fleet.
    pub tokens: u64,
}

/// Room in the broadcast channel; a subscriber further behind than this
/// gets `RecvError::Lagged` and catches up with [`RunReader::events_after`].
pub const BROADCAST_CAPACITY: usize = 16_384;

/// What store calls return: a future, so that a backend on a database
/// server can wait for its network without blocking anyone.
pub type StoreFuture<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

/// Reading a run, live or stopped. Every answer reflects whole commits.
pub trait RunReader: Send + Sync {
    /// The pipeline the run's tasks use; `None` before the first run.
    fn meta(&self) -> StoreFuture<'_, Option<RunMeta>>;
    /// The running totals: counts per state, tokens, dollars, per phase.
    fn totals(&self) -> StoreFuture<'_, Totals>;
    /// Figures per phase, agent and model, and tasks by phases settled:
    /// kept with every commit, like the totals.
    fn run_stats(&self) -> StoreFuture<'_, RunStats>;
    /// Task rows matching `q`, in its order, from its offset, up to its limit.
    fn list<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, Vec<TaskRow>>;
    /// How many rows `q` matches, ignoring its offset and limit.
    fn count<'a>(&'a self, q: &'a ListQuery) -> StoreFuture<'a, u64>;
    /// One task's row.
    fn row<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<TaskRow>>;
    /// One task with everything: attempts, outputs, traces, decisions.
    fn task<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<Task>>;
    /// One task as it was just before event `seq`: for followers that meet
    /// an event about a task they do not hold. `None` when it did not
    /// exist then (or a converted folder cannot go back that far).
    fn task_before<'a>(&'a self, id: &'a str, seq: u64) -> StoreFuture<'a, Option<Task>>;
    /// Open reviews and blockers with their task's id, oldest first.
    fn waiting(&self, offset: u64, limit: Option<u64>) -> StoreFuture<'_, Vec<(String, Hold)>>;
    /// Events after `seq`, in order, at most `limit`.
    fn events_after(&self, seq: u64, limit: u64) -> StoreFuture<'_, Vec<Event>>;
    /// The run-level events (pause, resume, run budget raises), in order.
    fn run_events(&self) -> StoreFuture<'_, Vec<Event>>;
    /// The highest seq committed.
    fn last_seq(&self) -> StoreFuture<'_, u64>;
    /// The totals and the highest seq they reflect, read together: where a
    /// follower starts when other engines commit meanwhile.
    fn totals_at(&self) -> StoreFuture<'_, (Totals, u64)> {
        Box::pin(async move { Ok((self.totals().await?, self.last_seq().await?)) })
    }
    /// Every task whole, in submission order, with the seq they reflect:
    /// for views that still take the whole run at once.
    fn all_tasks(&self) -> StoreFuture<'_, (Vec<Task>, u64)>;
    /// Where the run is kept, for messages.
    fn location(&self) -> String;
    /// The engine of a fleet that holds the task now (`engine 2 on HOST,
    /// pid N`); `None` when none does, or the run has one engine.
    fn holder<'a>(&'a self, _id: &'a str) -> StoreFuture<'a, Option<String>> {
        Box::pin(async { Ok(None) })
    }
    /// The step cache's entry at each key (`None` where there is none), in
    /// the order asked, as committed; however old (the engine judges age).
    fn cache_get<'a>(&'a self, keys: &'a [CacheKey]) -> StoreFuture<'a, Vec<Option<CacheEntry>>>;
    /// Step cache entries matching `filter`, without their outputs, by
    /// phase and newest first.
    fn cache_list<'a>(&'a self, filter: &'a CacheFilter) -> StoreFuture<'a, Vec<CacheInfo>>;
}

/// The engine's side: the one writer of a run.
pub trait RunStore: RunReader {
    /// Queues a batch and returns; it is not durable yet (see `flush` and
    /// `subscribe`). Waits only while the queue is full. Seqs must increase.
    fn append(&self, batch: Batch) -> StoreFuture<'_, ()>;
    /// Resolves once everything appended before it is durable, with the seq.
    fn flush(&self) -> StoreFuture<'_, u64>;
    /// Records the pipeline the run uses, with the next commit.
    fn set_meta(&self, meta: RunMeta) -> StoreFuture<'_, ()>;
    /// The highest seq known to be durable.
    fn durable_seq(&self) -> u64;
    /// Events once they are durable, in seq order.
    fn subscribe(&self) -> broadcast::Receiver<Arc<Event>>;
    /// The channel behind `subscribe`, for handing out receivers.
    fn broadcaster(&self) -> broadcast::Sender<Arc<Event>>;
    /// A task the engine does not hold, folded from what is committed.
    fn load<'a>(&'a self, id: &'a str) -> StoreFuture<'a, Option<(TaskNo, Task)>>;
    /// Pending tasks after `ord`, in submission order.
    fn pending_after(&self, ord: TaskNo, limit: u64) -> StoreFuture<'_, Vec<(TaskNo, Task)>>;
    /// Which of `ids` are already in the run.
    fn existing<'a>(&'a self, ids: &'a [String]) -> StoreFuture<'a, Vec<String>>;
    /// Queues changes to the step cache; committed with the next group,
    /// after the batches appended before it.
    fn cache_write(&self, writes: Vec<CacheWrite>) -> StoreFuture<'_, ()>;
    /// Removes the step cache entries matching `filter`, durably; says how many.
    fn cache_clear(&self, filter: CacheFilter) -> StoreFuture<'_, u64>;
    /// A fleet's step cache: claims each key (with the task whose attempt
    /// would fill it) before this engine runs the key's attempt, unless
    /// another live engine's attempt holds the key, or a person's review of
    /// the output that would fill it; says, in the order asked, which keys
    /// it got. A claim ends with the entry stored at its key, or with
    /// `cache_release`, or when its engine's lease runs out. An engine on
    /// its own has every key.
    fn cache_claim<'a>(&'a self, claims: &'a [(CacheKey, String)]) -> StoreFuture<'a, Vec<bool>> {
        Box::pin(async move { Ok(vec![true; claims.len()]) })
    }
    /// Lets go of this engine's claims on `keys`: their attempts came to
    /// nothing, or their entries were found stored.
    fn cache_release(&self, _keys: Vec<CacheKey>) -> StoreFuture<'_, ()> {
        Box::pin(async { Ok(()) })
    }
    /// A reader of this run of its own, for followers that fall behind the
    /// broadcast and catch up by sequence number.
    fn reader(&self) -> Result<Arc<dyn RunReader>, StoreError>;
    /// Whether the store can commit now. A server-backed store that lost
    /// its connection says no while it reconnects; what is appended
    /// meanwhile waits in its queue.
    fn online(&self) -> bool {
        true
    }
    /// The last seq published to subscribers, by the run's numbers; the
    /// same as `durable_seq` unless engines share the run.
    fn published_seq(&self) -> u64 {
        self.durable_seq()
    }
    /// Whether other engines may serve this run too (a fleet's store): the
    /// engine then claims its work, puts tasks that wait for a person down,
    /// and looks for new work now and then.
    fn is_shared(&self) -> bool {
        false
    }
    /// Tasks another engine took over since last asked; the engine drops them.
    fn take_lost(&self) -> Vec<TaskNo> {
        Vec::new()
    }
    /// Whether tasks are pending or under way anywhere in the run.
    fn work_left(&self) -> StoreFuture<'_, bool> {
        Box::pin(async { Ok(false) })
    }
    /// A fleet's limits: leases up to `want` of the `cap` places of a
    /// limit (`run` for `concurrency`, `agent:NAME` for `max_parallel`)
    /// that no engine holds; says how many it got. An engine on its own
    /// has every place.
    fn acquire_slots<'a>(
        &'a self,
        _resource: &'a str,
        _cap: u32,
        want: u32,
    ) -> StoreFuture<'a, u32> {
        Box::pin(async move { Ok(want) })
    }
    /// Gives back `count` places of a limit.
    fn release_slots<'a>(&'a self, _resource: &'a str, _count: u32) -> StoreFuture<'a, ()> {
        Box::pin(async { Ok(()) })
    }
    /// Grants up to `want` starts of an agent out of its `rpm` (all when
    /// `None`) for the current window, counted across the fleet; adds
    /// `used_tokens` (what its attempts used since last asked) to the
    /// window's tokens, and says how many the window has, for its `tpm`.
    fn grant_requests<'a>(
        &'a self,
        _agent: &'a str,
        _rpm: Option<u32>,
        window: std::time::Duration,
        want: u32,
        _used_tokens: u64,
    ) -> StoreFuture<'a, RateGrant> {
        Box::pin(async move {
            Ok(RateGrant {
                granted: want,
                left: window,
                tokens: 0,
            })
        })
    }
    /// A fleet's run budget: reserves, in order, what each attempt about to
    /// start is expected to spend (by the fleet's average for its agent, or
    /// `wants`' own estimate), as long as the run's spend and every live
    /// engine's reservations stay under `limits` (the rule one engine keeps
    /// with its own attempts in flight). Gives the reservations made (a
    /// prefix of `wants`) and, when one was refused, why.
    fn reserve_budget<'a>(
        &'a self,
        _limits: crate::spec::model::BudgetLimits,
        wants: Vec<(String, Reserved)>,
    ) -> StoreFuture<'a, (Vec<Reserved>, Option<String>)> {
        Box::pin(async move { Ok((wants.into_iter().map(|(_, r)| r).collect(), None)) })
    }
    /// Engines serving the run now, this one included: what a fair share of a
    /// fleet's limit is cut by.
    fn busy_engines(&self) -> StoreFuture<'_, u32> {
        Box::pin(async { Ok(1) })
    }
    /// What the store did since it opened.
    fn stats(&self) -> StoreStats;
    /// Commits what was appended, stops the writer and releases the run.
    fn close(self: Box<Self>) -> StoreFuture<'static, StoreStats>;
}
