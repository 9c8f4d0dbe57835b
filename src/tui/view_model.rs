//! The run as the dashboard sees it: the run's overview (pipeline, pause,
//! budgets) kept current by run-level events, and the last [`Page`] read
//! from the store: totals, the table's window, a page of the review queue
//! and the selected task. Nothing here grows with the run: a million tasks
//! cost what the screen shows.
//!
//! Engine events only say that something changed (the loop then reads a
//! fresh page); selection, sort and the like live in `ViewState`.

use std::collections::{HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

use crate::engine::budget::{Estimate, Spend};
use crate::engine::cost::CostTotal;
use crate::engine::event::{Event, EventKind, TaskId};
use crate::engine::handle::{BudgetSnapshot, RunOverview};
use crate::engine::live::{LiveEvent, LiveKind};
use crate::engine::state::{HoldKind, TaskState};
use crate::engine::task::{Hold, Task};
use crate::store::{TaskRow, Totals};

use super::fetch::Page;

/// How far back throughput looks.
const THROUGHPUT_WINDOW: SignedDuration = SignedDuration::from_secs(300);

/// Live progress kept for at most this many attempts (the ones in flight).
const MAX_LIVE_ATTEMPTS: usize = 256;

/// One line of the review queue: a hold waiting for a person.
#[derive(Debug, Clone, Copy)]
pub struct ReviewEntry<'a> {
    /// Position in the whole queue.
    pub index: usize,
    pub task: &'a str,
    pub kind: HoldKind,
    pub phase: &'a str,
    pub reason: &'a str,
    /// What the agent tried and how severe it says the problem is.
    pub escalation: &'a crate::engine::escalation::Escalation,
    pub since: Timestamp,
}

/// What a decision needs to know of a task: from the task read whole, or
/// from its row when the detail has not been read yet.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub id: TaskId,
    pub state: TaskState,
    pub holds: Vec<Hold>,
}

/// Live trace lines kept per running attempt.
const MAX_LIVE_TRACE: usize = 200;

/// What a running attempt has shown so far, from the live channel; gone
/// when the attempt's `AttemptFinished` event arrives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveAttempt {
    pub attempt: u32,
    /// The reply so far.
    pub text: String,
    pub output_tokens: u64,
    /// `output_tokens` is an estimate until the service counts.
    pub estimated: bool,
    /// The latest trace lines (a command's stderr).
    pub trace: VecDeque<String>,
}

/// What folding one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Already covered by what the view shows.
    Stale,
    /// The run changed: what the view shows should be read again.
    Changed,
}

/// The run: its overview and the last page read from the store.
#[derive(Debug, Clone)]
pub struct RunView {
    pub pipeline: String,
    /// Phase ids in pipeline order.
    pub phases: Vec<String>,
    pub state_dir: String,
    /// The database the run is kept in (its address without a password),
    /// when it is not in the state folder.
    pub store: Option<String>,
    pub started_at: Timestamp,
    pub paused: bool,
    /// Budgets as configured, and the run's raises.
    pub budget: BudgetSnapshot,
    /// What the run is projected to have cost at its finish (p50, p95),
    /// when a dollar budget is set (see `report::stats`).
    pub projection: Option<(f64, f64)>,
    /// The last event seen.
    seq: u64,
    /// Bumped on every change, so derived caches know when to rebuild.
    version: u64,
    page: Page,
    /// (when, tasks final by then), oldest first, for throughput.
    finished: VecDeque<(Timestamp, u64)>,
    /// (when, dollars spent by then in nano-dollars), oldest first, over
    /// the same window, for the spend sparkline.
    spent: VecDeque<(Timestamp, i64)>,
    /// Running attempts' progress, by task and phase id.
    live: HashMap<(TaskId, String), LiveAttempt>,
}

impl RunView {
    pub fn new(overview: RunOverview) -> RunView {
        let mut view = RunView {
            pipeline: overview.pipeline,
            phases: overview.phases,
            state_dir: overview.state_dir,
            store: overview.store,
            started_at: overview.started_at,
            paused: overview.paused,
            budget: overview.budget,
            projection: None,
            seq: overview.seq,
            version: 0,
            page: Page::default(),
            finished: VecDeque::new(),
            spent: VecDeque::new(),
            live: HashMap::new(),
        };
        for ev in &overview.live {
            view.apply_live(ev);
        }
        view
    }

    /// Takes a fresh overview (after a reconnect, or a lag): run-level state
    /// and live progress; the page stays until the next is read.
    pub fn set_overview(&mut self, overview: RunOverview) {
        let page = std::mem::take(&mut self.page);
        let finished = std::mem::take(&mut self.finished);
        let spent = std::mem::take(&mut self.spent);
        let live = std::mem::take(&mut self.live);
        *self = RunView::new(overview);
        self.page = page;
        self.finished = finished;
        self.spent = spent;
        // What running attempts showed is sent once: an overview taken
        // before the last update must not blank it. Ended attempts go with
        // their events, or when a read shows them over.
        for (key, shown) in live {
            self.live.entry(key).or_insert(shown);
        }
        self.version += 1;
    }

    /// Takes a page read from the store.
    pub fn set_page(&mut self, page: Page, now: Timestamp) {
        let done: u64 = TaskState::ALL
            .iter()
            .filter(|s| s.is_final())
            .map(|s| page.totals.count(*s))
            .sum();
        while self
            .finished
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > THROUGHPUT_WINDOW)
        {
            self.finished.pop_front();
        }
        if self.finished.is_empty()
            && let Some(recent) = page.finished_recently
        {
            // Start from the run's recent past: what finished in the window.
            let from = self.throughput_since(now);
            self.finished.push_back((from, done.saturating_sub(recent)));
        }
        if self.finished.back().is_none_or(|&(_, n)| n != done) || self.finished.len() < 2 {
            self.finished.push_back((now, done));
        }
        while self
            .spent
            .front()
            .is_some_and(|&(at, _)| now.duration_since(at) > THROUGHPUT_WINDOW)
        {
            self.spent.pop_front();
        }
        let cost = page.totals.cost_nano;
        if self.spent.back().is_none_or(|&(_, c)| c != cost) {
            self.spent.push_back((now, cost));
        }
        if let Some(task) = &page.selected {
            self.live
                .retain(|(t, phase), l| t != &task.id || !attempt_is_over(task, phase, l.attempt));
        }
        self.page = page;
        self.version += 1;
    }

    /// Whether throughput has a starting point yet (else the next read
    /// should count recent finishes).
    pub fn has_throughput(&self) -> bool {
        !self.finished.is_empty()
    }

    /// When throughput's window starts.
    pub fn throughput_since(&self, now: Timestamp) -> Timestamp {
        (now - THROUGHPUT_WINDOW).max(self.started_at).min(now)
    }

    pub fn page(&self) -> &Page {
        &self.page
    }

    /// Folds one event in: run-level ones change the overview; any newer
    /// event means the page is out of date.
    pub fn apply(&mut self, ev: &Event) -> Applied {
        if ev.seq <= self.seq {
            return Applied::Stale;
        }
        self.seq = ev.seq;
        self.version += 1;
        match (&ev.kind, &ev.task) {
            (EventKind::RunPaused { .. }, None) => self.paused = true,
            (EventKind::RunResumed { .. }, None) => self.paused = false,
            (
                EventKind::BudgetRaised {
                    usd,
                    tokens,
                    accept_unknown,
                    ..
                },
                None,
            ) => self.budget.run_raise.raise(*usd, *tokens, *accept_unknown),
            (EventKind::AttemptFinished { phase, .. }, Some(task)) => {
                // The journaled event is the truth: the attempt's live progress goes.
                self.live.remove(&(task.clone(), phase.clone()));
            }
            _ => {}
        }
        Applied::Changed
    }

    /// Folds a live update in; `false` when it cannot be shown (an attempt
    /// the selected task has finished already).
    pub fn apply_live(&mut self, ev: &LiveEvent) -> bool {
        // The selected task, read whole, says which attempts are over: their
        // updates are late. An attempt the read does not show yet is early
        // (the store lags the stream) and kept: its stream may say nothing
        // more for a long while.
        if let Some(task) = self.page.selected.as_ref().filter(|t| t.id == ev.task)
            && attempt_is_over(task, &ev.phase, ev.attempt)
        {
            return false;
        }
        let key = (ev.task.clone(), ev.phase.clone());
        if !self.live.contains_key(&key) && self.live.len() >= MAX_LIVE_ATTEMPTS {
            // Attempts whose end was missed (a lag): make room.
            if let Some(old) = self.live.keys().next().cloned() {
                self.live.remove(&old);
            }
        }
        let entry = self.live.entry(key).or_default();
        if entry.attempt != ev.attempt {
            *entry = LiveAttempt {
                attempt: ev.attempt,
                ..LiveAttempt::default()
            };
        }
        match &ev.kind {
            LiveKind::Progress(p) => {
                entry.text.clone_from(&p.text);
                entry.output_tokens = p.output_tokens;
                entry.estimated = p.estimated;
            }
            LiveKind::Trace { line } => {
                if entry.trace.len() == MAX_LIVE_TRACE {
                    entry.trace.pop_front();
                }
                entry.trace.push_back(line.clone());
            }
        }
        true
    }

    /// What the running attempt of a task's phase has shown so far.
    pub fn live(&self, task: &str, phase: &str) -> Option<&LiveAttempt> {
        self.live.get(&(task.to_string(), phase.to_string()))
    }

    /// The last event seen.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn totals(&self) -> &Totals {
        &self.page.totals
    }

    /// Tasks in the run.
    pub fn len(&self) -> usize {
        self.page.totals.tasks as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Tasks that pass the table's filter.
    pub fn matching(&self) -> usize {
        self.page.matching as usize
    }

    /// The table row at `pos` (in the sorted, filtered table), if read.
    pub fn row_at(&self, pos: usize) -> Option<&TaskRow> {
        let from = self.page.want.table.offset as usize;
        pos.checked_sub(from).and_then(|i| self.page.rows.get(i))
    }

    /// Where a task stands in the table, if it is among the rows read.
    pub fn row_of(&self, id: &str) -> Option<usize> {
        let from = self.page.want.table.offset as usize;
        self.page
            .rows
            .iter()
            .position(|r| r.id == id)
            .map(|i| from + i)
    }

    /// The rows read, with their positions in the table.
    pub fn rows(&self) -> impl Iterator<Item = (usize, &TaskRow)> + '_ {
        let from = self.page.want.table.offset as usize;
        self.page
            .rows
            .iter()
            .enumerate()
            .map(move |(i, r)| (from + i, r))
    }

    /// The selected task whole (input, attempts, outputs), once read.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.page.selected.as_ref().filter(|t| t.id == id)
    }

    /// What a decision on `id` needs, from whatever has been read of it.
    pub fn target(&self, id: &str) -> Option<Target> {
        if let Some(t) = self.task(id) {
            return Some(Target {
                id: t.id.clone(),
                state: t.state,
                holds: t.holds.clone(),
            });
        }
        if let Some(r) = self.page.rows.iter().find(|r| r.id == id) {
            return Some(Target {
                id: r.id.clone(),
                state: r.state,
                holds: r.holds.clone(),
            });
        }
        // A queue line gives one hold; its task waits for a person.
        let holds: Vec<Hold> = self
            .page
            .queue
            .iter()
            .filter(|(t, _)| t == id)
            .map(|(_, h)| h.clone())
            .collect();
        let first = holds.first()?;
        Some(Target {
            id: id.to_string(),
            state: first.kind.state(),
            holds,
        })
    }

    pub fn whole_task(&self, id: &str) -> Option<Task> {
        self.task(id).cloned()
    }

    pub fn count(&self, state: TaskState) -> usize {
        self.page.totals.count(state) as usize
    }

    /// Every task is final (and there is at least one): nothing more will
    /// happen unless a person retries one or tasks are added.
    pub fn finished(&self) -> bool {
        !self.is_empty() && self.unfinished() == 0
    }

    /// The run's exit status as it stands (see `engine::exit_status`).
    pub fn exit_status(&self) -> i32 {
        crate::engine::exit_status::of(|s| self.page.totals.count(s))
    }

    /// When the run's last task changed, for a finished run's clock.
    pub fn last_change(&self) -> Option<Timestamp> {
        self.page.totals.last_change_at
    }

    /// Tasks not yet completed, failed or cancelled.
    pub fn unfinished(&self) -> usize {
        TaskState::ALL
            .iter()
            .filter(|s| !s.is_final())
            .map(|s| self.count(*s))
            .sum()
    }

    pub fn tokens(&self) -> u64 {
        self.page.totals.tokens
    }

    pub fn cost(&self) -> CostTotal {
        self.page.totals.cost()
    }

    /// What every task has spent.
    pub fn spend(&self) -> Spend {
        Spend {
            cost: self.cost(),
            tokens: self.tokens(),
        }
    }

    /// What `open` attempts in flight are expected to spend: the run's mean
    /// per finished attempt so far.
    pub fn estimate(&self, open: u64) -> Estimate {
        let t = &self.page.totals;
        let finished: u64 = t.phases.iter().map(|p| p.attempts).sum();
        let unpriced: u64 = t.phases.iter().map(|p| p.cost_unknown).sum();
        let priced = finished.saturating_sub(unpriced);
        let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        Estimate {
            usd: mean(t.cost_nano as f64 / 1e9, priced) * open as f64,
            tokens: (mean(t.tokens as f64, finished) * open as f64).round() as u64,
            unestimated: 0,
        }
    }

    /// The estimate for every attempt in flight (one per running task).
    pub fn in_flight(&self) -> Estimate {
        self.estimate(self.page.totals.count(TaskState::Running))
    }

    /// The estimate for one task's attempts in flight (the selected task's).
    pub fn task_in_flight(&self, id: &str) -> Estimate {
        self.task(id).map_or_else(Estimate::default, |t| {
            let open = t
                .phases
                .iter()
                .flat_map(|p| &p.attempts)
                .filter(|a| a.is_open())
                .count();
            self.estimate(open as u64)
        })
    }

    /// Tasks finished per minute over the last few minutes this dashboard
    /// has watched; for a finished run, over the whole run.
    pub fn throughput(&self, now: Timestamp) -> f64 {
        if self.finished() {
            // Over: the run's own rate, from its first task to its last change.
            let t = &self.page.totals;
            if let (Some(first), Some(last)) = (t.first_submitted_at, t.last_change_at) {
                let secs = last.duration_since(first).as_secs_f64();
                return if secs < 1.0 {
                    0.0
                } else {
                    t.tasks as f64 * 60.0 / secs
                };
            }
        }
        let (Some(&(from, first)), Some(&(_, last))) =
            (self.finished.front(), self.finished.back())
        else {
            return 0.0;
        };
        let span = now
            .duration_since(from)
            .clamp(SignedDuration::ZERO, THROUGHPUT_WINDOW);
        if span.as_secs_f64() < 1.0 {
            return 0.0;
        }
        last.saturating_sub(first) as f64 * 60.0 / span.as_secs_f64()
    }

    /// In a fleet: the engine that holds task `id` now, as last read.
    pub fn holder(&self, id: &str) -> Option<&str> {
        (self.page.want.selected.as_deref() == Some(id))
            .then_some(self.page.holder.as_deref())
            .flatten()
    }

    /// Since when the run's longest-waiting hold has waited.
    pub fn oldest_wait(&self) -> Option<Timestamp> {
        self.page.oldest_wait
    }

    /// What a task in the review queue's page has spent.
    pub fn queue_spent(&self, id: &str) -> Option<(u64, CostTotal)> {
        self.page.queue_spent.get(id).copied()
    }

    /// Tasks finished and nano-dollars spent in each of `n` equal slices of
    /// the last few minutes, oldest first: the header's sparklines.
    pub fn recent(&self, now: Timestamp, n: usize) -> (Vec<u64>, Vec<u64>) {
        let from = now - THROUGHPUT_WINDOW;
        let slice = THROUGHPUT_WINDOW.as_secs_f64() / n.max(1) as f64;
        let at = |t: Timestamp| -> Option<usize> {
            let s = t.duration_since(from).as_secs_f64();
            (s >= 0.0).then(|| ((s / slice) as usize).min(n - 1))
        };
        let mut done = vec![0u64; n];
        for w in self.finished.iter().collect::<Vec<_>>().windows(2) {
            if let Some(i) = at(w[1].0) {
                done[i] += w[1].1.saturating_sub(w[0].1);
            }
        }
        let mut dollars = vec![0u64; n];
        for w in self.spent.iter().collect::<Vec<_>>().windows(2) {
            if let Some(i) = at(w[1].0) {
                dollars[i] += (w[1].1 - w[0].1).max(0) as u64;
            }
        }
        (done, dollars)
    }

    /// Open holds: the review queue's length.
    pub fn review_len(&self) -> usize {
        self.page.totals.holds as usize
    }

    /// Where a task's first hold stands in the review queue, if among those read.
    pub fn review_position(&self, id: &str) -> Option<usize> {
        let from = self.page.want.queue_offset as usize;
        self.page
            .queue
            .iter()
            .position(|(t, _)| t == id)
            .map(|i| from + i)
    }

    /// The page of the review queue read, the longest waiting first.
    pub fn review_queue(&self) -> impl Iterator<Item = ReviewEntry<'_>> + '_ {
        let from = self.page.want.queue_offset as usize;
        self.page
            .queue
            .iter()
            .enumerate()
            .map(move |(i, (task, hold))| review_entry(from + i, task, hold))
    }

    /// The review queue's line at `pos`, if read.
    pub fn review_at(&self, pos: usize) -> Option<ReviewEntry<'_>> {
        let from = self.page.want.queue_offset as usize;
        let i = pos.checked_sub(from)?;
        let (task, hold) = self.page.queue.get(i)?;
        Some(review_entry(pos, task, hold))
    }
}

fn review_entry<'a>(index: usize, task: &'a str, hold: &'a Hold) -> ReviewEntry<'a> {
    ReviewEntry {
        index,
        task,
        kind: hold.kind,
        phase: &hold.phase,
        reason: &hold.reason,
        escalation: &hold.escalation,
        since: hold.since,
    }
}

/// Whether the read of `task` shows `attempt` of `phase` finished, or a later
/// attempt begun. An attempt it does not show yet is not over.
fn attempt_is_over(task: &Task, phase: &str, attempt: u32) -> bool {
    task.phases.iter().find(|p| p.id == phase).is_some_and(|p| {
        p.attempts
            .iter()
            .any(|a| a.number > attempt || (a.number == attempt && !a.is_open()))
    })
}

#[cfg(test)]
#[path = "view_model_tests.rs"]
mod tests;
