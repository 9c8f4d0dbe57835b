//! The one writer: a thread that owns the database's write connection and
//! commits in groups.
//!
//! It blocks for the next message, drains whatever else is already queued,
//! and writes all of it in one transaction: the events, the task rows they
//! changed (the newest of each), the holds, the totals and the figures
//! per phase, agent and model. With
//! `synchronous = FULL` the commit is on disk when it returns; only then are
//! the events broadcast and `flush` callers released. Under load the queue
//! fills while a commit runs, so one commit covers many events.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::{self, JoinHandle};

use rusqlite::{Connection, Transaction, params};
use tokio::sync::{broadcast, mpsc, oneshot};

use super::read::{json_err, ts};
use super::shared::Shared;
use crate::engine::event::Event;
use crate::engine::state::HoldKind;
use crate::store::cache::{CacheFilter, CacheWrite};
use crate::store::error::StoreError;
use crate::store::model::{Batch, RowChange, RunMeta, TaskNo, Totals};
use crate::store::stats_fold::StatsFold;

/// Batches the queue holds before `append` waits: the backpressure point.
pub(crate) const QUEUE_BATCHES: usize = 1024;
/// At most this many events share one commit, so a huge backlog still
/// reaches subscribers and `flush` callers in steps.
const MAX_EVENTS_PER_COMMIT: usize = 16_384;

pub(crate) enum Msg {
    Batch(Batch),
    Meta(RunMeta),
    /// Step cache changes, committed with the events around them.
    Cache(Vec<CacheWrite>),
    /// Removes step cache entries; answered with how many once durable.
    CacheClear(CacheFilter, oneshot::Sender<Result<u64, StoreError>>),
    /// Answered once everything queued before it is durable.
    Flush(oneshot::Sender<Result<u64, StoreError>>),
}

impl Msg {
    fn events(&self) -> usize {
        match self {
            Msg::Batch(b) => b.events.len() + b.rows.len(),
            Msg::Cache(w) => w.len(),
            _ => 0,
        }
    }
}

pub(crate) struct Writer {
    conn: Connection,
    path: PathBuf,
    shared: Arc<Shared>,
    broadcast: broadcast::Sender<Arc<Event>>,
    totals: Totals,
    /// Changed in place: after a failed commit the writer takes no more
    /// events, so it is never written ahead of what was committed.
    stats: StatsFold,
}

impl Writer {
    pub(crate) fn new(
        conn: Connection,
        path: PathBuf,
        shared: Arc<Shared>,
        broadcast: broadcast::Sender<Arc<Event>>,
        totals: Totals,
        stats: StatsFold,
    ) -> Writer {
        Writer {
            conn,
            path,
            shared,
            broadcast,
            totals,
            stats,
        }
    }

    pub(crate) fn spawn(self, rx: mpsc::Receiver<Msg>) -> std::io::Result<JoinHandle<()>> {
        thread::Builder::new()
            .name("baton-store".into())
            .spawn(move || self.run(rx))
    }

    /// Runs until every sender is gone, committing what was queued first.
    fn run(mut self, mut rx: mpsc::Receiver<Msg>) {
        while let Some(first) = rx.blocking_recv() {
            #[cfg(test)]
            drop(
                self.shared
                    .writer_gate
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            );
            let mut n = first.events();
            let mut msgs = vec![first];
            while n < MAX_EVENTS_PER_COMMIT {
                match rx.try_recv() {
                    Ok(m) => {
                        n += m.events();
                        msgs.push(m);
                    }
                    Err(_) => break,
                }
            }
            self.process(msgs);
        }
        // A clean stop: fold the WAL back into the database file.
        if self.shared.check().is_ok()
            && let Err(e) = self.conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
        {
            tracing::debug!("WAL checkpoint at close: {e}");
        }
    }

    fn process(&mut self, msgs: Vec<Msg>) {
        let mut events: Vec<(Option<TaskNo>, Event)> = Vec::new();
        let mut rows: Vec<RowChange> = Vec::new();
        let mut metas = Vec::new();
        let mut cache: Vec<CacheWrite> = Vec::new();
        let mut clears = Vec::new();
        let mut waiters = Vec::new();
        for m in msgs {
            match m {
                Msg::Batch(mut b) => {
                    events.append(&mut b.events);
                    rows.append(&mut b.rows);
                }
                Msg::Meta(meta) => metas.push(meta),
                Msg::Cache(mut w) => cache.append(&mut w),
                Msg::CacheClear(filter, tx) => clears.push((filter, tx)),
                Msg::Flush(tx) => waiters.push(tx),
            }
        }
        if (!events.is_empty() || !rows.is_empty() || !metas.is_empty() || !cache.is_empty())
            && self.shared.check().is_ok()
        {
            let mut totals = self.totals.clone();
            let rows = coalesce(rows);
            let stats = &mut self.stats;
            let parts = Parts {
                events: &events,
                rows: &rows,
                metas: &metas,
                cache: &cache,
            };
            match commit(&mut self.conn, parts, &mut totals, stats) {
                Ok(()) => {
                    self.totals = totals;
                    if let Some((_, last)) = events.last() {
                        self.shared.durable_seq.store(last.seq, Ordering::Release);
                    }
                    Shared::add(&self.shared.batches, 1);
                    Shared::add(&self.shared.events_written, events.len() as u64);
                    Shared::add(&self.shared.rows_written, rows.len() as u64);
                    for (_, e) in events {
                        // No receivers is fine: nobody is watching.
                        let _ = self.broadcast.send(Arc::new(e));
                    }
                }
                Err(e) => self.fail(e, events.first().map(|(_, e)| e.seq)),
            }
        }
        for (filter, tx) in clears {
            let done = self.shared.check().and_then(|()| {
                super::cache::clear(&self.conn, &filter).map_err(|e| StoreError::db(&self.path, e))
            });
            let _ = tx.send(done);
        }
        for w in waiters {
            let _ = w.send(self.shared.check().map(|()| self.shared.durable()));
        }
    }

    /// Stops all further writes: the engine has applied events that are not
    /// on disk, so it must not go on as if they were.
    fn fail(&mut self, e: rusqlite::Error, first: Option<u64>) {
        let reason = match &e {
            rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::DiskFull => {
                "the disk is full".to_string()
            }
            other => other.to_string(),
        };
        tracing::error!(
            "state database {}: {reason}; nothing from seq {} on was written, and the store takes no more events",
            self.path.display(),
            first.unwrap_or(0)
        );
        self.shared.fail(self.path.clone(), reason);
    }
}

/// One change per task: its row before the first change and after the last.
pub(crate) fn coalesce(rows: Vec<RowChange>) -> Vec<RowChange> {
    let mut at: HashMap<TaskNo, usize> = HashMap::with_capacity(rows.len());
    let mut out: Vec<RowChange> = Vec::with_capacity(rows.len());
    for change in rows {
        match at.get(&change.new.ord) {
            Some(&i) => out[i].new = change.new,
            None => {
                at.insert(change.new.ord, out.len());
                out.push(change);
            }
        }
    }
    out
}

/// What one commit writes.
struct Parts<'a> {
    events: &'a [(Option<TaskNo>, Event)],
    rows: &'a [RowChange],
    metas: &'a [RunMeta],
    cache: &'a [CacheWrite],
}

fn commit(
    conn: &mut Connection,
    parts: Parts<'_>,
    totals: &mut Totals,
    stats: &mut StatsFold,
) -> rusqlite::Result<()> {
    let Parts {
        events,
        rows,
        metas,
        cache,
    } = parts;
    let tx = conn.transaction()?;
    super::cache::write(&tx, cache)?;
    write_events(&tx, events, totals, stats)?;
    write_rows(&tx, rows, totals)?;
    for meta in metas {
        let text = serde_json::to_string(meta).map_err(json_err)?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('run', ?1) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [text],
        )?;
    }
    write_totals(&tx, totals)?;
    super::stats::write(&tx, stats)?;
    tx.commit()
}

pub(crate) fn write_events(
    tx: &Transaction<'_>,
    events: &[(Option<TaskNo>, Event)],
    totals: &mut Totals,
    stats: &mut StatsFold,
) -> rusqlite::Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO events(seq, task, at, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (ord, e) in events {
        let body = serde_json::to_string(&e.kind).map_err(json_err)?;
        let kind = event_name(&body);
        stmt.execute(params![e.seq as i64, ord, ts(e.at), kind, body])?;
        totals.apply_event(e);
        stats.apply_event(*ord, &e.kind);
    }
    Ok(())
}

/// `{"event":"phase_started",...}` → `phase_started`: serde writes the tag first.
pub(crate) fn event_name(body: &str) -> &str {
    body.strip_prefix("{\"event\":\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

pub(crate) fn write_rows(
    tx: &Transaction<'_>,
    rows: &[RowChange],
    totals: &mut Totals,
) -> rusqlite::Result<()> {
    let mut upsert = tx.prepare_cached(
        "INSERT INTO tasks(ord, id, state, phase, phases_done, phases_total, attempts, tokens, \
           cost_usd, cost_unknown, holds, waiting_since, created_at, updated_at, finished_at, \
           finish_reason, seq, attention, phase_pos, agent, model, took_ns) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
           ?18, ?19, ?20, ?21, ?22) \
         ON CONFLICT(ord) DO UPDATE SET state = excluded.state, phase = excluded.phase, \
           phases_done = excluded.phases_done, attempts = excluded.attempts, \
           tokens = excluded.tokens, cost_usd = excluded.cost_usd, \
           cost_unknown = excluded.cost_unknown, holds = excluded.holds, \
           waiting_since = excluded.waiting_since, updated_at = excluded.updated_at, \
           finished_at = excluded.finished_at, finish_reason = excluded.finish_reason, \
           seq = excluded.seq, attention = excluded.attention, phase_pos = excluded.phase_pos, \
           agent = excluded.agent, model = excluded.model",
    )?;
    // Apart from the upsert, so that only a task that finishes (or is
    // reopened) touches the elapsed sort's two partial indexes, not every
    // change of every row.
    let mut set_took =
        tx.prepare_cached("UPDATE tasks SET took_ns = ?1 WHERE ord = ?2 AND took_ns IS NOT ?1")?;
    let mut clear = tx.prepare_cached("DELETE FROM holds WHERE task = ?1")?;
    let mut new_id = tx.prepare_cached("INSERT INTO task_ids(rowid, id) VALUES (?1, ?2)")?;
    let mut hold = tx.prepare_cached(
        "INSERT INTO holds(task, pos, kind, phase, since, reason, review, escalation) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for change in rows {
        let r = &change.new;
        upsert.execute(params![
            r.ord,
            r.id,
            r.state.as_str(),
            r.phase,
            r.phases_done,
            r.phases_total,
            r.attempts,
            r.tokens.min(i64::MAX as u64) as i64,
            r.cost_usd,
            r.cost_unknown,
            r.holds.len() as i64,
            r.holds.first().map(|h| ts(h.since)),
            ts(r.created_at),
            ts(r.updated_at),
            r.finished_at.map(ts),
            r.finish_reason,
            r.seq.min(i64::MAX as u64) as i64,
            r.state.attention(),
            r.phase_pos.unwrap_or(u32::MAX),
            r.agent,
            r.model,
            crate::store::elapsed::took_ns(r),
        ])?;
        if change.old.is_none() {
            new_id.execute(params![r.ord, r.id])?;
        }
        if change
            .old
            .as_ref()
            .is_none_or(|o| o.finished_at != r.finished_at)
        {
            set_took.execute(params![crate::store::elapsed::took_ns(r), r.ord])?;
        }
        let had = change.old.as_ref().is_none_or(|o| !o.holds.is_empty());
        if had || !r.holds.is_empty() {
            if had {
                clear.execute([r.ord])?;
            }
            for (pos, h) in r.holds.iter().enumerate() {
                let kind = match h.kind {
                    HoldKind::Review => "review",
                    HoldKind::Blocked => "blocked",
                };
                let review = h
                    .review
                    .as_ref()
                    .map(serde_json::to_string)
                    .transpose()
                    .map_err(json_err)?;
                let escalation = (!h.escalation.is_empty())
                    .then(|| serde_json::to_string(&h.escalation))
                    .transpose()
                    .map_err(json_err)?;
                hold.execute(params![
                    r.ord,
                    pos as i64,
                    kind,
                    h.phase,
                    ts(h.since),
                    h.reason,
                    review,
                    escalation
                ])?;
            }
        }
        totals.apply_row(change);
    }
    Ok(())
}

pub(crate) fn write_totals(tx: &Transaction<'_>, t: &Totals) -> rusqlite::Result<()> {
    let mut put = tx.prepare_cached(
        "INSERT INTO totals(key, value) VALUES (?1, ?2) \
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    )?;
    let as_i64 = |n: u64| n.min(i64::MAX as u64) as i64;
    put.execute(params!["tasks", as_i64(t.tasks)])?;
    for (state, n) in crate::engine::TaskState::ALL.iter().zip(t.states) {
        put.execute(params![format!("state.{}", state.as_str()), as_i64(n)])?;
    }
    put.execute(params!["attempts", as_i64(t.attempts)])?;
    put.execute(params!["tokens", as_i64(t.tokens)])?;
    put.execute(params!["cost_nano", t.cost_nano])?;
    put.execute(params!["cost_unknown", as_i64(t.cost_unknown)])?;
    put.execute(params!["holds", as_i64(t.holds)])?;
    if let Some(f) = t.first_submitted_at {
        put.execute(params!["first_submitted_at", ts(f)])?;
    }
    if let Some(l) = t.last_change_at {
        put.execute(params!["last_change_at", ts(l)])?;
    }
    for (i, p) in t.phases.iter().enumerate() {
        let json = serde_json::to_string(p).map_err(json_err)?;
        put.execute(params![format!("phase.{i}.figures"), json])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_come_from_the_tag() {
        assert_eq!(
            event_name(r#"{"event":"phase_started","phase":"a"}"#),
            "phase_started"
        );
        assert_eq!(event_name("{}"), "");
    }
}
