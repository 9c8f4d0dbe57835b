//! The database's tables, created and migrated by numbered steps. The
//! schema's version is SQLite's `user_version`; each step moves it up by one
//! inside a transaction, so a crash mid-migration leaves the previous version.

use rusqlite::{Connection, Transaction};

/// One step: SQL, then what SQL cannot do (filling a new table from the
/// events' JSON through the same fold the writer uses), in one transaction.
struct Migration {
    sql: &'static str,
    then: Option<fn(&Transaction<'_>) -> rusqlite::Result<()>>,
}

const fn sql(sql: &'static str) -> Migration {
    Migration { sql, then: None }
}

/// Migrations in order; `MIGRATIONS[i]` takes version `i` to `i + 1`.
const MIGRATIONS: &[Migration] = &[
    // 1: events, task rows, holds, totals, meta.
    sql(r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Every event, in order; the truth the rest is derived from.
    CREATE TABLE events (
        seq  INTEGER PRIMARY KEY,
        task INTEGER,              -- tasks.ord; NULL for run-level events
        at   TEXT NOT NULL,        -- RFC 3339, UTC
        kind TEXT NOT NULL,        -- the event's name, e.g. attempt_finished
        body TEXT NOT NULL         -- the event as JSON
    );
    CREATE INDEX events_by_task ON events(task, seq) WHERE task IS NOT NULL;
    CREATE INDEX events_of_run ON events(seq) WHERE task IS NULL;
    -- One row per task, updated in the same transaction as its events.
    CREATE TABLE tasks (
        ord           INTEGER PRIMARY KEY,  -- submission order, from 1
        id            TEXT NOT NULL UNIQUE,
        state         TEXT NOT NULL,
        phase         TEXT,
        phases_done   INTEGER NOT NULL,
        phases_total  INTEGER NOT NULL,
        attempts      INTEGER NOT NULL,
        tokens        INTEGER NOT NULL,
        cost_usd      REAL NOT NULL,
        cost_unknown  INTEGER NOT NULL,
        holds         INTEGER NOT NULL,
        waiting_since TEXT,                 -- the oldest open hold
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        finished_at   TEXT,
        finish_reason TEXT,
        seq           INTEGER NOT NULL,     -- the last event applied
        base          TEXT,                 -- converted folders: the task as of base_seq
        base_seq      INTEGER
    );
    CREATE INDEX tasks_by_state ON tasks(state, ord);
    CREATE INDEX tasks_by_phase ON tasks(phase, ord);
    CREATE INDEX tasks_by_update ON tasks(updated_at);
    CREATE INDEX tasks_by_tokens ON tasks(tokens);
    CREATE INDEX tasks_by_cost ON tasks(cost_usd);
    -- Open reviews and blockers: the review queue.
    CREATE TABLE holds (
        task   INTEGER NOT NULL,            -- tasks.ord
        pos    INTEGER NOT NULL,            -- among the task's holds, oldest first
        kind   TEXT NOT NULL,               -- review | blocked
        phase  TEXT NOT NULL,
        since  TEXT NOT NULL,
        reason TEXT NOT NULL,
        review TEXT,                        -- why, as JSON, for reviews
        PRIMARY KEY (task, pos)
    ) WITHOUT ROWID;
    CREATE INDEX holds_by_age ON holds(since, task, pos);
    -- Running totals: counts per state, tokens, dollars, per-phase figures.
    CREATE TABLE totals (
        key   TEXT PRIMARY KEY,
        value
    ) WITHOUT ROWID;
    "#),
    // 2: sort keys for the dashboard's columns: how much a task's state asks
    // of a person, and where its current phase stands in the pipeline.
    sql(r#"
    ALTER TABLE tasks ADD COLUMN attention INTEGER NOT NULL DEFAULT 9;
    ALTER TABLE tasks ADD COLUMN phase_pos INTEGER NOT NULL DEFAULT 4294967295; -- none: last
    UPDATE tasks SET attention = CASE state
        WHEN 'blocked' THEN 0 WHEN 'awaiting_review' THEN 1 WHEN 'failed' THEN 2
        WHEN 'retrying' THEN 3 WHEN 'running' THEN 4 WHEN 'pending' THEN 5
        WHEN 'completed' THEN 6 WHEN 'cancelled' THEN 7 ELSE 9 END;
    UPDATE tasks SET phase_pos = coalesce((
        SELECT CAST(p.key AS INTEGER)
        FROM meta m, json_each(m.value, '$.phases') p
        WHERE m.key = 'run' AND p.value = tasks.phase), 4294967295);
    CREATE INDEX tasks_by_attention ON tasks(attention, ord);
    CREATE INDEX tasks_by_phase_pos ON tasks(phase_pos, ord);
    CREATE INDEX tasks_by_finish ON tasks(finished_at) WHERE finished_at IS NOT NULL;
    "#),
    // 3: every three letters of every id, for finding ids that contain a
    // text without reading every row (the dashboard's filter). Written
    // once per task, with its row; holds no copy of the ids.
    sql(r#"
    CREATE VIRTUAL TABLE task_ids USING fts5(
        id, tokenize = 'trigram case_sensitive 0', content = ''
    );
    INSERT INTO task_ids(rowid, id) SELECT ord, id FROM tasks;
    "#),
    // 4: the dashboard's progress and attempts columns, by index too.
    sql(r#"
    CREATE INDEX tasks_by_progress ON tasks(phases_done, ord);
    CREATE INDEX tasks_by_attempts ON tasks(attempts, ord);
    "#),
    // 5: the agent and model of a task's latest attempt, for the filter
    // language's agent: and model: (filled in from the events of older runs).
    sql(r#"
    ALTER TABLE tasks ADD COLUMN agent TEXT;
    ALTER TABLE tasks ADD COLUMN model TEXT;
    UPDATE tasks SET
        agent = (SELECT json_extract(e.body, '$.agent') FROM events e
                 WHERE e.task = tasks.ord AND e.kind = 'phase_started' ORDER BY e.seq DESC LIMIT 1),
        model = (SELECT json_extract(e.body, '$.model') FROM events e
                 WHERE e.task = tasks.ord AND e.kind = 'phase_started' ORDER BY e.seq DESC LIMIT 1);
    "#),
    // 6: figures per phase, agent and model, kept by the writer from the
    // attempts' events (`baton stats`), and how often each phase was
    // skipped or failed for good. Filled from the events already there.
    Migration {
        sql: r#"
    CREATE TABLE attempt_stats (
        phase              TEXT NOT NULL,
        agent              TEXT NOT NULL,     -- '' when not known
        model              TEXT NOT NULL,     -- as started, else as its usage says; '' when neither
        attempts           INTEGER NOT NULL,  -- attempts that ended, however they ended
        succeeded          INTEGER NOT NULL,  -- with the phase's output (or a review asked)
        blocked            INTEGER NOT NULL,
        failed_retryable   INTEGER NOT NULL,  -- failures by class (ErrorClass)
        failed_fatal       INTEGER NOT NULL,
        failed_timeout     INTEGER NOT NULL,
        failed_crashed     INTEGER NOT NULL,
        failed_contract    INTEGER NOT NULL,
        failed_protocol    INTEGER NOT NULL,
        failed_spawn       INTEGER NOT NULL,
        interrupted        INTEGER NOT NULL,  -- lost to a restart
        cancelled          INTEGER NOT NULL,  -- cut short by a cancellation
        input_tokens       INTEGER NOT NULL,
        output_tokens      INTEGER NOT NULL,
        cache_read_tokens  INTEGER NOT NULL,
        cache_write_tokens INTEGER NOT NULL,
        cost_nano          INTEGER NOT NULL,  -- known dollars, in nano-dollars
        cost_sq            REAL NOT NULL,     -- sum of each priced attempt's dollars squared
        cost_unknown       INTEGER NOT NULL,  -- attempts with usage and no price
        duration_ms        TEXT NOT NULL,     -- histogram: JSON [[bucket, count], ...]
        PRIMARY KEY (phase, agent, model)
    ) WITHOUT ROWID;
    CREATE TABLE phase_ends (
        phase   TEXT PRIMARY KEY,
        skipped INTEGER NOT NULL,             -- by its condition, or a person's decision
        failed  INTEGER NOT NULL              -- for good: retries spent, fatal, or a person's decision
    ) WITHOUT ROWID;
    "#,
        then: Some(super::stats::fill),
    },
    // 7: what an agent tried, and how severe it says the problem is, for
    // the holds it opened (JSON; NULL when it said neither).
    sql(r#"
    ALTER TABLE holds ADD COLUMN escalation TEXT;
    "#),
    // 8: the shared step cache (`cache_key` on a phase, `baton cache`): one
    // output per phase, phase definition and rendered key.
    sql(r#"
    CREATE TABLE step_cache (
        phase        TEXT NOT NULL,
        definition   TEXT NOT NULL,     -- hash of the phase's definition
        key          TEXT NOT NULL,     -- the cache_key as rendered for a task
        output       TEXT NOT NULL,     -- JSON
        size         INTEGER NOT NULL,  -- bytes of output
        task         TEXT NOT NULL,     -- the task whose attempt made it
        created_at   TEXT NOT NULL,     -- RFC 3339, UTC; a TTL counts from here
        uses         INTEGER NOT NULL,  -- tasks that reused it
        last_used_at TEXT,
        PRIMARY KEY (phase, definition, key)
    );
    "#),
    // 9: sorting by elapsed time through indexes (`store::elapsed`): a
    // finished task's time, finished minus created in nanoseconds (filled
    // in from the stored times, which have nine fraction digits), and the
    // unfinished tasks by age (with took_ns, always NULL there, so that a
    // scan of it reads nothing else).
    sql(r#"
    ALTER TABLE tasks ADD COLUMN took_ns INTEGER;
    UPDATE tasks SET took_ns =
        (CAST(strftime('%s', finished_at) AS INTEGER) - CAST(strftime('%s', created_at) AS INTEGER))
            * 1000000000
        + CAST(substr(finished_at, 21, 9) AS INTEGER) - CAST(substr(created_at, 21, 9) AS INTEGER)
    WHERE finished_at IS NOT NULL;
    CREATE INDEX tasks_by_took ON tasks(took_ns, ord) WHERE took_ns IS NOT NULL;
    CREATE INDEX tasks_unfinished_by_age ON tasks(created_at, ord DESC, took_ns) WHERE took_ns IS NULL;
    "#),
];

/// The version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The first version with `took_ns` and the indexes of the elapsed sort.
pub const ELAPSED_VERSION: i64 = 9;

/// The first version with `attempt_stats` and `phase_ends`.
pub const STATS_VERSION: i64 = 6;

pub fn version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Brings the database to `VERSION`. A database newer than this build is
/// refused by the caller, never touched.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let mut at = version(conn)?;
    while at < VERSION {
        let tx: Transaction = conn.transaction()?;
        let step = &MIGRATIONS[at as usize];
        tx.execute_batch(step.sql)?;
        if let Some(then) = step.then {
            then(&tx)?;
        }
        tx.pragma_update(None, "user_version", at + 1)?;
        tx.commit()?;
        at += 1;
    }
    Ok(())
}

/// The writer's page cache, in KiB (as a negative `cache_size`).
const WRITER_CACHE_KIB: i64 = -32 * 1024;

/// Settings every connection gets: WAL, so readers never block the writer;
/// `synchronous = FULL`, so a commit is on disk when it returns; a busy
/// timeout for readers that meet a checkpoint.
pub fn configure(conn: &Connection, writer: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    if writer {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        // Room for the inner pages of every index of a run of millions, so
        // that updating a task's row does not read them from the disk.
        conn.pragma_update(None, "cache_size", WRITER_CACHE_KIB)?;
    }
    conn.pragma_update(None, "foreign_keys", false)?;
    regexp(conn)
}

/// `regexp(PATTERN, TEXT)`, for the filter language's `/regex/` (SQLite has
/// the operator but no function behind it). A pattern is compiled once per
/// statement; one that does not compile matches nothing.
fn regexp(conn: &Connection) -> rusqlite::Result<()> {
    use rusqlite::functions::FunctionFlags;
    conn.create_scalar_function(
        "regexp",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let re: std::sync::Arc<Option<regex::Regex>> = ctx.get_or_create_aux(0, |v| {
                Ok::<_, rusqlite::Error>(
                    v.as_str()
                        .ok()
                        .and_then(|p| regex::RegexBuilder::new(p).size_limit(1 << 20).build().ok()),
                )
            })?;
            let text = ctx.get_raw(1).as_str().unwrap_or("");
            Ok(re.as_ref().as_ref().is_some_and(|r| r.is_match(text)))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database written by version 1 gets the sort keys of version 2
    /// filled in from its rows and its pipeline.
    #[test]
    fn version_two_fills_the_sort_keys_of_existing_rows() {
        let mut conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(MIGRATIONS[0].sql).unwrap();
        conn.pragma_update(None, "user_version", 1).unwrap();
        conn.execute_batch(
            r#"INSERT INTO meta VALUES ('run', '{"pipeline":"p","phases":["draft","review"]}');
            INSERT INTO tasks(ord, id, state, phase, phases_done, phases_total, attempts, tokens,
              cost_usd, cost_unknown, holds, created_at, updated_at, seq)
            VALUES (1, 'a', 'awaiting_review', 'review', 1, 2, 1, 0, 0, 0, 1, 't', 't', 1),
                   (2, 'b', 'pending', NULL, 0, 2, 0, 0, 0, 0, 0, 't', 't', 2);"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        assert_eq!(version(&conn).unwrap(), VERSION);
        let keys: Vec<(i64, i64)> = conn
            .prepare("SELECT attention, phase_pos FROM tasks ORDER BY ord")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(keys, [(1, 1), (5, i64::from(u32::MAX))]);
    }

    /// A database written by version 8 gets each finished task's time, to
    /// the nanosecond, from its stored times; unfinished tasks have none.
    #[test]
    fn version_nine_fills_the_finished_tasks_times() {
        let mut conn = Connection::open_in_memory().unwrap();
        for (at, step) in MIGRATIONS[..8].iter().enumerate() {
            conn.execute_batch(step.sql).unwrap();
            if let Some(then) = step.then {
                let tx = conn.transaction().unwrap();
                then(&tx).unwrap();
                tx.commit().unwrap();
            }
            conn.pragma_update(None, "user_version", at as i64 + 1)
                .unwrap();
        }
        conn.execute_batch(
            r#"INSERT INTO tasks(ord, id, state, phase, phases_done, phases_total, attempts, tokens,
              cost_usd, cost_unknown, holds, created_at, updated_at, finished_at, seq)
            VALUES (1, 'a', 'completed', NULL, 2, 2, 2, 0, 0, 0, 0,
                    '2026-01-01T23:59:59.999999999Z', 't', '2026-01-02T00:00:01.000000001Z', 1),
                   (2, 'b', 'pending', NULL, 0, 2, 0, 0, 0, 0, 0,
                    '2026-01-01T00:00:00.000000000Z', 't', NULL, 2);"#,
        )
        .unwrap();
        migrate(&mut conn).unwrap();
        let took: Vec<Option<i64>> = conn
            .prepare("SELECT took_ns FROM tasks ORDER BY ord")
            .unwrap()
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(took, [Some(1_000_000_002), None]);
    }
}
