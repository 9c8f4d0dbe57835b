//! The run as the dashboard sees it: a snapshot with engine events folded on
//! top, using the same `Task::apply` the engine uses. Only engine events
//! change it; selection, sort and the like live in `ViewState`.
//!
//! Every total is kept up to date as events arrive, so one event costs the
//! size of one task, never the size of the run.

use std::collections::{BTreeSet, HashMap, VecDeque};

use jiff::{SignedDuration, Timestamp};

use crate::engine::budget::{Estimate, Spend};
use crate::engine::cost::CostTotal;
use crate::engine::event::{Event, EventKind, TaskId};
use crate::engine::handle::{BudgetSnapshot, RunSnapshot};
use crate::engine::live::{LiveEvent, LiveKind};
use crate::engine::state::{HoldKind, TaskState};
use crate::engine::task::Task;

/// How far back throughput looks.
const THROUGHPUT_WINDOW: SignedDuration = SignedDuration::from_secs(300);

/// A task with the figures the dashboard shows for it, computed once per change.
#[derive(Debug, Clone)]
pub struct TaskEntry {
    /// The task without its input and phase outputs, which are in `payload`;
    /// [`RunView::whole_task`] puts them back.
    pub task: Task,
    payload: Payload,
    pub tokens: u64,
    pub cost: CostTotal,
    /// When the hold that puts it in the review queue opened.
    held_since: Option<Timestamp>,
    /// Attempts in flight; finished ones that were priced, that reported usage.
    open: u32,
    priced: u32,
    reported: u32,
}

/// A task's input and phase outputs as compact JSON text: a fraction of the
/// memory of the values, and only the task detail reads them.
#[derive(Debug, Clone, Default)]
struct Payload {
    input: Box<str>,
    /// Per phase, in the task's phase order.
    outputs: Box<[Option<Box<str>>]>,
}

fn json_text(v: &serde_json::Value) -> Box<str> {
    serde_json::to_string(v)
        .unwrap_or_default()
        .into_boxed_str()
}

fn json_value(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
}

impl Payload {
    /// Takes the input and outputs out of a task.
    fn take(task: &mut Task) -> Payload {
        Payload {
            input: json_text(&std::mem::take(&mut task.input)),
            outputs: task
                .phases
                .iter_mut()
                .map(|p| p.output.take().map(|v| json_text(&v)))
                .collect(),
        }
    }

    fn put_outputs(&self, task: &mut Task) {
        for (p, text) in task.phases.iter_mut().zip(self.outputs.iter()) {
            p.output = text.as_deref().map(json_value);
        }
    }
}

impl TaskEntry {
    fn new(mut task: Task) -> TaskEntry {
        let payload = Payload::take(&mut task);
        // A task read from JSON has room for more attempts than it holds.
        for p in &mut task.phases {
            p.attempts.shrink_to_fit();
        }
        TaskEntry::light(task, payload)
    }

    /// From a task whose payload is taken out already.
    fn light(task: Task, payload: Payload) -> TaskEntry {
        let held_since = queue_key(&task);
        let (mut open, mut priced, mut reported) = (0, 0, 0);
        for a in task.phases.iter().flat_map(|p| &p.attempts) {
            open += u32::from(a.is_open());
            priced += u32::from(a.cost_usd.is_some());
            reported += u32::from(a.usage.is_some());
        }
        TaskEntry {
            tokens: task.tokens(),
            cost: task.cost(),
            held_since,
            open,
            priced,
            reported,
            task,
            payload,
        }
    }
}

fn queue_key(task: &Task) -> Option<Timestamp> {
    if task.state.needs_human() {
        task.holds.first().map(|h| h.since)
    } else {
        None
    }
}

/// One line of the review queue: a task waiting for a person.
#[derive(Debug, Clone, Copy)]
pub struct ReviewEntry<'a> {
    /// Position of the task in submission order.
    pub index: usize,
    pub task: &'a Task,
    pub kind: HoldKind,
    pub phase: &'a str,
    pub reason: &'a str,
    pub since: Timestamp,
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
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// Already covered by the snapshot or an earlier event.
    Stale,
    Changed,
    /// The event does not fit what the view holds; take a fresh snapshot.
    OutOfSync(String),
}

/// The run, folded from a snapshot and the events after it.
#[derive(Debug, Clone)]
pub struct RunView {
    pub pipeline: String,
    /// Phase ids in pipeline order.
    pub phases: Vec<String>,
    pub state_dir: String,
    pub started_at: Timestamp,
    pub paused: bool,
    /// Budgets as configured, and the run's raises.
    pub budget: BudgetSnapshot,
    seq: u64,
    /// Bumped on every change, so derived caches know when to rebuild.
    version: u64,
    tasks: Vec<TaskEntry>,
    index: HashMap<TaskId, usize>,
    counts: [usize; TaskState::ALL.len()],
    tokens: u64,
    /// Known dollars in nanodollars, so that taking a task's old cost out and
    /// putting its new one in is exact.
    nanos: i64,
    unknown: u32,
    /// Over all tasks: attempts in flight, priced, reporting usage.
    open: u64,
    priced: u64,
    reported: u64,
    /// Review queue ordered by (hold opened, submission order).
    queue: BTreeSet<(Timestamp, usize)>,
    /// Recent finish times, oldest first, for throughput.
    finished: VecDeque<Timestamp>,
    /// Running attempts' progress, by task and phase id.
    live: HashMap<(TaskId, String), LiveAttempt>,
}

fn nanos(usd: f64) -> i64 {
    (usd * 1e9).round() as i64
}

fn state_slot(state: TaskState) -> usize {
    state as usize
}

impl RunView {
    pub fn from_snapshot(snapshot: RunSnapshot) -> RunView {
        let mut view = RunView {
            pipeline: snapshot.pipeline,
            phases: snapshot.phases,
            state_dir: snapshot.state_dir,
            started_at: snapshot.started_at,
            paused: snapshot.paused,
            budget: snapshot.budget,
            seq: snapshot.seq,
            version: 0,
            tasks: Vec::with_capacity(snapshot.tasks.len()),
            index: HashMap::with_capacity(snapshot.tasks.len()),
            counts: [0; TaskState::ALL.len()],
            tokens: 0,
            nanos: 0,
            unknown: 0,
            open: 0,
            priced: 0,
            reported: 0,
            queue: BTreeSet::new(),
            finished: VecDeque::new(),
            live: HashMap::new(),
        };
        let mut finished: Vec<Timestamp> = Vec::new();
        let live = snapshot.live;
        for task in snapshot.tasks {
            if task.state.is_final() {
                finished.extend(task.finished_at);
            }
            view.insert(task);
        }
        finished.sort();
        for at in finished {
            view.note_finished(at);
        }
        for ev in &live {
            view.apply_live(ev);
        }
        view
    }

    fn insert(&mut self, task: Task) {
        let idx = self.tasks.len();
        self.index.insert(task.id.clone(), idx);
        self.tasks.push(TaskEntry::new(task));
        self.account(idx, 1);
    }

    /// Adds (`sign = 1`) or removes (`sign = -1`) a task's share of the totals.
    fn account(&mut self, idx: usize, sign: i64) {
        let e = &self.tasks[idx];
        let slot = state_slot(e.task.state);
        if sign > 0 {
            self.counts[slot] += 1;
            self.tokens += e.tokens;
            self.nanos += nanos(e.cost.usd);
            self.unknown += e.cost.unknown;
            self.open += u64::from(e.open);
            self.priced += u64::from(e.priced);
            self.reported += u64::from(e.reported);
            if let Some(since) = e.held_since {
                self.queue.insert((since, idx));
            }
        } else {
            self.counts[slot] -= 1;
            self.tokens -= e.tokens;
            self.nanos -= nanos(e.cost.usd);
            self.unknown -= e.cost.unknown;
            self.open -= u64::from(e.open);
            self.priced -= u64::from(e.priced);
            self.reported -= u64::from(e.reported);
            if let Some(since) = e.held_since {
                self.queue.remove(&(since, idx));
            }
        }
    }

    fn note_finished(&mut self, at: Timestamp) {
        while self
            .finished
            .front()
            .is_some_and(|&old| at.duration_since(old) > THROUGHPUT_WINDOW)
        {
            self.finished.pop_front();
        }
        self.finished.push_back(at);
    }

    /// Folds one event in. Events the view already covers are ignored.
    pub fn apply(&mut self, ev: &Event) -> Applied {
        if ev.seq <= self.seq {
            return Applied::Stale;
        }
        self.seq = ev.seq;
        self.version += 1;
        match (&ev.kind, &ev.task) {
            (EventKind::RunPaused { .. }, _) => self.paused = true,
            (EventKind::RunResumed { .. }, _) => self.paused = false,
            (
                EventKind::BudgetRaised {
                    usd,
                    tokens,
                    accept_unknown,
                    ..
                },
                None,
            ) => self.budget.run_raise.raise(*usd, *tokens, *accept_unknown),
            (EventKind::TaskSubmitted { .. }, Some(id)) => {
                if self.index.contains_key(id) {
                    return Applied::OutOfSync(format!("task {id} submitted twice"));
                }
                match Task::from_submitted(ev, &self.phases) {
                    Some(task) => self.insert(task),
                    None => return Applied::OutOfSync(format!("bad submission {}", ev.seq)),
                }
            }
            (_, Some(id)) => {
                let Some(&idx) = self.index.get(id) else {
                    return Applied::OutOfSync(format!("event {} for unknown task {id}", ev.seq));
                };
                let mut task = self.tasks[idx].task.clone();
                let old = &self.tasks[idx].payload;
                // Outputs go back in for the fold, which may replace or
                // clear them; the input never changes.
                old.put_outputs(&mut task);
                if let Err(e) = task.apply(ev) {
                    return Applied::OutOfSync(e.to_string());
                }
                let payload = Payload {
                    input: old.input.clone(),
                    outputs: task
                        .phases
                        .iter_mut()
                        .map(|p| p.output.take().map(|v| json_text(&v)))
                        .collect(),
                };
                let was_final = self.tasks[idx].task.state.is_final();
                self.account(idx, -1);
                self.tasks[idx] = TaskEntry::light(task, payload);
                self.account(idx, 1);
                let entry = &self.tasks[idx].task;
                if !was_final && entry.state.is_final() {
                    self.note_finished(entry.finished_at.unwrap_or(ev.at));
                }
                if !self.live.is_empty() {
                    let task = &self.tasks[idx].task;
                    // The journaled event is the truth: progress of an
                    // attempt that has ended goes.
                    self.live.retain(|(t, phase), l| {
                        t != id || running_attempt(task, phase) == Some(l.attempt)
                    });
                }
            }
            (_, None) => return Applied::OutOfSync(format!("event {} has no task", ev.seq)),
        }
        Applied::Changed
    }

    /// Folds a live update in; `false` when it is about an attempt the view
    /// does not see running (finished already, or not yet started).
    pub fn apply_live(&mut self, ev: &LiveEvent) -> bool {
        let Some(task) = self.task(&ev.task) else {
            return false;
        };
        if running_attempt(task, &ev.phase) != Some(ev.attempt) {
            return false;
        }
        let entry = self
            .live
            .entry((ev.task.clone(), ev.phase.clone()))
            .or_default();
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

    /// The journal position the view reflects.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Tasks in submission order.
    pub fn entries(&self) -> &[TaskEntry] {
        &self.tasks
    }

    pub fn entry(&self, index: usize) -> Option<&TaskEntry> {
        self.tasks.get(index)
    }

    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// A task without its input and phase outputs; enough for tables,
    /// counts and commands.
    pub fn task(&self, id: &str) -> Option<&Task> {
        self.position(id).map(|i| &self.tasks[i].task)
    }

    /// A task with its input and phase outputs, for the task detail.
    pub fn whole_task(&self, id: &str) -> Option<Task> {
        let entry = &self.tasks[self.position(id)?];
        let mut task = entry.task.clone();
        task.input = json_value(&entry.payload.input);
        entry.payload.put_outputs(&mut task);
        Some(task)
    }

    pub fn count(&self, state: TaskState) -> usize {
        self.counts[state_slot(state)]
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
        self.tokens
    }

    pub fn cost(&self) -> CostTotal {
        CostTotal {
            usd: self.nanos as f64 / 1e9,
            unknown: self.unknown,
        }
    }

    /// What every task has spent.
    pub fn spend(&self) -> Spend {
        Spend {
            cost: self.cost(),
            tokens: self.tokens,
        }
    }

    /// What `open` attempts in flight are expected to spend: the run's mean
    /// per finished attempt so far.
    pub fn estimate(&self, open: u64) -> Estimate {
        let mean = |sum: f64, n: u64| if n == 0 { 0.0 } else { sum / n as f64 };
        Estimate {
            usd: mean(self.nanos as f64 / 1e9, self.priced) * open as f64,
            tokens: (mean(self.tokens as f64, self.reported) * open as f64).round() as u64,
            unestimated: 0,
        }
    }

    /// The estimate for every attempt in flight.
    pub fn in_flight(&self) -> Estimate {
        self.estimate(self.open)
    }

    /// The estimate for one task's attempts in flight.
    pub fn task_in_flight(&self, id: &str) -> Estimate {
        self.position(id).map_or_else(Estimate::default, |i| {
            self.estimate(u64::from(self.tasks[i].open))
        })
    }

    /// Tasks finished per minute over the last few minutes (or the whole run
    /// when it is younger than that).
    pub fn throughput(&self, now: Timestamp) -> f64 {
        let from = now - THROUGHPUT_WINDOW;
        let span = now
            .duration_since(self.started_at)
            .clamp(SignedDuration::ZERO, THROUGHPUT_WINDOW);
        if span.as_secs_f64() < 1.0 {
            return 0.0;
        }
        let recent = self
            .finished
            .iter()
            .rev()
            .skip_while(|&&t| t > now)
            .take_while(|&&t| t >= from);
        recent.count() as f64 * 60.0 / span.as_secs_f64()
    }

    pub fn review_len(&self) -> usize {
        self.queue.len()
    }

    /// Where a task stands in the review queue; `None` at once for a task
    /// that is not in it.
    pub fn review_position(&self, id: &str) -> Option<usize> {
        let idx = self.position(id)?;
        let since = self.tasks[idx].held_since?;
        Some(self.queue.range(..(since, idx)).count())
    }

    /// Tasks waiting for a person, the longest waiting first.
    pub fn review_queue(&self) -> impl Iterator<Item = ReviewEntry<'_>> + '_ {
        self.queue.iter().filter_map(|&(since, index)| {
            let task = &self.tasks[index].task;
            let hold = task.holds.first()?;
            Some(ReviewEntry {
                index,
                task,
                kind: hold.kind,
                phase: &hold.phase,
                reason: &hold.reason,
                since,
            })
        })
    }
}

fn running_attempt(task: &Task, phase: &str) -> Option<u32> {
    task.phases
        .iter()
        .find(|p| p.id == phase)?
        .running_attempt()
        .map(|a| a.number)
}

#[cfg(test)]
#[path = "view_model_tests.rs"]
mod tests;
