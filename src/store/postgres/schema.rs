//! The run's tables in PostgreSQL, created and migrated by numbered steps.
//!
//! A run lives in one PostgreSQL schema (`baton` unless the store address
//! names another), so one database can hold several runs side by side. The
//! version is the row of `schema_version`; each step moves it up by one
//! inside a transaction that first takes an advisory lock, so engines that
//! start together migrate once, and a crash mid-step leaves the previous
//! version.
//!
//! Timestamps are RFC 3339 text in UTC, as in the embedded store, so that
//! both backends read and write them through the same code and compare them
//! as text.

use tokio_postgres::Client;

/// Migrations in order; `MIGRATIONS[i]` takes version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[
    // 1: everything the embedded store has at its version 8.
    r#"
    CREATE TABLE meta (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Every event, in order; the truth the rest is derived from.
    CREATE TABLE events (
        seq  BIGINT PRIMARY KEY,
        task BIGINT,               -- tasks.ord; NULL for run-level events
        at   TEXT NOT NULL,        -- RFC 3339, UTC
        kind TEXT NOT NULL,        -- the event's name, e.g. attempt_finished
        body TEXT NOT NULL         -- the event as JSON
    );
    CREATE INDEX events_by_task ON events(task, seq) WHERE task IS NOT NULL;
    CREATE INDEX events_of_run ON events(seq) WHERE task IS NULL;
    -- One row per task, updated in the same transaction as its events.
    CREATE TABLE tasks (
        ord           BIGINT PRIMARY KEY,   -- submission order, from 1
        id            TEXT NOT NULL UNIQUE,
        state         TEXT NOT NULL,
        phase         TEXT,
        phases_done   BIGINT NOT NULL,
        phases_total  BIGINT NOT NULL,
        attempts      BIGINT NOT NULL,
        tokens        BIGINT NOT NULL,
        cost_usd      DOUBLE PRECISION NOT NULL,
        cost_unknown  BIGINT NOT NULL,
        holds         BIGINT NOT NULL,
        waiting_since TEXT,                 -- the oldest open hold
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        finished_at   TEXT,
        finish_reason TEXT,
        seq           BIGINT NOT NULL,      -- the last event applied
        attention     BIGINT NOT NULL,      -- how much the state asks of a person
        phase_pos     BIGINT NOT NULL,      -- the phase's place; 4294967295 for none
        agent         TEXT,                 -- of the latest attempt
        model         TEXT
    );
    CREATE INDEX tasks_by_state ON tasks(state, ord);
    CREATE INDEX tasks_by_phase ON tasks(phase, ord);
    CREATE INDEX tasks_by_update ON tasks(updated_at, ord);
    CREATE INDEX tasks_by_tokens ON tasks(tokens, ord);
    CREATE INDEX tasks_by_cost ON tasks(cost_usd, ord);
    CREATE INDEX tasks_by_attention ON tasks(attention, ord);
    CREATE INDEX tasks_by_phase_pos ON tasks(phase_pos, ord);
    CREATE INDEX tasks_by_finish ON tasks(finished_at) WHERE finished_at IS NOT NULL;
    CREATE INDEX tasks_by_progress ON tasks(phases_done, ord);
    CREATE INDEX tasks_by_attempts ON tasks(attempts, ord);
    CREATE INDEX tasks_by_id ON tasks(id text_pattern_ops);
    -- Open reviews and blockers: the review queue.
    CREATE TABLE holds (
        task       BIGINT NOT NULL,         -- tasks.ord
        pos        BIGINT NOT NULL,         -- among the task's holds, oldest first
        kind       TEXT NOT NULL,           -- review | blocked
        phase      TEXT NOT NULL,
        since      TEXT NOT NULL,
        reason     TEXT NOT NULL,
        review     TEXT,                    -- why, as JSON, for reviews
        escalation TEXT,                    -- what was tried and how severe, as JSON
        PRIMARY KEY (task, pos)
    );
    CREATE INDEX holds_by_age ON holds(since, task, pos);
    -- Running totals: counts per state, tokens, dollars, per-phase figures.
    CREATE TABLE totals (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    -- Figures per phase, agent and model (`baton stats`).
    CREATE TABLE attempt_stats (
        phase              TEXT NOT NULL,
        agent              TEXT NOT NULL,
        model              TEXT NOT NULL,
        attempts           BIGINT NOT NULL,
        succeeded          BIGINT NOT NULL,
        blocked            BIGINT NOT NULL,
        failed_retryable   BIGINT NOT NULL,
        failed_fatal       BIGINT NOT NULL,
        failed_timeout     BIGINT NOT NULL,
        failed_crashed     BIGINT NOT NULL,
        failed_contract    BIGINT NOT NULL,
        failed_protocol    BIGINT NOT NULL,
        failed_spawn       BIGINT NOT NULL,
        interrupted        BIGINT NOT NULL,
        cancelled          BIGINT NOT NULL,
        input_tokens       BIGINT NOT NULL,
        output_tokens      BIGINT NOT NULL,
        cache_read_tokens  BIGINT NOT NULL,
        cache_write_tokens BIGINT NOT NULL,
        cost_nano          BIGINT NOT NULL,
        cost_sq            DOUBLE PRECISION NOT NULL,
        cost_unknown       BIGINT NOT NULL,
        duration_ms        TEXT NOT NULL,   -- histogram: JSON [[bucket, count], ...]
        PRIMARY KEY (phase, agent, model)
    );
    CREATE TABLE phase_ends (
        phase   TEXT PRIMARY KEY,
        skipped BIGINT NOT NULL,
        failed  BIGINT NOT NULL
    );
    -- The shared step cache (`cache_key` on a phase, `baton cache`).
    CREATE TABLE step_cache (
        phase        TEXT NOT NULL,
        definition   TEXT NOT NULL,
        key          TEXT NOT NULL,
        output       TEXT NOT NULL,
        size         BIGINT NOT NULL,
        task         TEXT NOT NULL,
        created_at   TEXT NOT NULL,
        uses         BIGINT NOT NULL,
        last_used_at TEXT,
        PRIMARY KEY (phase, definition, key)
    );
    "#,
    // 2: a fleet: the engines serving the run, and each task's lease — the
    // engine that holds it, until when (by the database's clock), and a
    // generation that every new holder raises, so that an engine that lost
    // a task can never write over its new holder's work.
    r#"
    CREATE TABLE engines (
        id           BIGSERIAL PRIMARY KEY,
        host         TEXT NOT NULL,
        pid          BIGINT NOT NULL,
        started_at   TIMESTAMPTZ NOT NULL DEFAULT now(),
        heartbeat_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        lease_until  TIMESTAMPTZ NOT NULL,   -- past this, its tasks are anyone's
        stopped_at   TIMESTAMPTZ,            -- set when it stopped cleanly
        commits      BIGINT NOT NULL DEFAULT 0  -- its writer's commits, to tell one whose answer was lost
    );
    ALTER TABLE tasks ADD COLUMN owner BIGINT;           -- engines.id, while it holds the task
    ALTER TABLE tasks ADD COLUMN lease_gen BIGINT NOT NULL DEFAULT 0;
    ALTER TABLE tasks ADD COLUMN lease_until TIMESTAMPTZ;
    -- Work an engine may take: pending, or under way with no live holder.
    CREATE INDEX tasks_to_claim ON tasks(ord) WHERE state IN ('pending', 'running', 'retrying');
    CREATE INDEX tasks_by_owner ON tasks(owner) WHERE owner IS NOT NULL;
    "#,
    // 3: limits that hold across the fleet. `slots` are places an engine
    // leases, like tasks: `run` has one row per unit of the pipeline's
    // `concurrency`, `agent:NAME` one per unit of its `max_parallel`.
    // `rate_windows` counts the requests granted to engines per agent and
    // window of the database's clock, never more than its `rpm`, and the
    // tokens its attempts used, for `tpm`.
    r#"
    CREATE TABLE slots (
        resource    TEXT NOT NULL,
        n           BIGINT NOT NULL,
        owner       BIGINT,                 -- engines.id
        lease_until TIMESTAMPTZ,
        PRIMARY KEY (resource, n)
    );
    -- What each engine has reserved of the run's budget for its attempts
    -- under way; the writer gives it back with the attempts' spend.
    ALTER TABLE engines ADD COLUMN reserved_usd DOUBLE PRECISION NOT NULL DEFAULT 0;
    ALTER TABLE engines ADD COLUMN reserved_tokens BIGINT NOT NULL DEFAULT 0;
    CREATE TABLE rate_windows (
        agent     TEXT NOT NULL,
        window_no BIGINT NOT NULL,          -- seconds since 1970 / the window's seconds
        requests  BIGINT NOT NULL DEFAULT 0,
        last_grant BIGINT NOT NULL DEFAULT 0, -- what the latest grant gave
        tokens    BIGINT NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, window_no)
    );
    "#,
    // 4: the step cache's single flight across the fleet. An engine that
    // finds no entry at a key claims it here before running the key's
    // attempt, for the task that runs it; the others wait for the entry.
    // A claim holds while its engine is live and holds that task's lease,
    // or while the task waits for a person's review at the claim's phase
    // (the output waits for approval); otherwise another engine takes it
    // over. Storing the entry ends the claim in the same commit.
    r#"
    CREATE TABLE cache_claims (
        phase      TEXT NOT NULL,
        key_hash   TEXT NOT NULL,           -- md5 of the definition, a newline and the key
        definition TEXT NOT NULL,
        key        TEXT NOT NULL,
        engine     BIGINT NOT NULL,         -- engines.id
        task       TEXT NOT NULL,           -- tasks.id: the task whose attempt fills it
        claimed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (phase, key_hash)
    );
    "#,
    // 5: sorting by elapsed time through indexes (`store::elapsed`): a
    // finished task's time, finished minus created in nanoseconds (filled
    // in from the stored times, to the nanosecond where they have nine
    // fraction digits), and the unfinished tasks by age (with took_ns,
    // always NULL there, so that a scan of it reads nothing else).
    r#"
    ALTER TABLE tasks ADD COLUMN took_ns BIGINT;
    UPDATE tasks SET took_ns = CASE
        WHEN finished_at ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$'
         AND created_at ~ '^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$'
        THEN (extract(epoch FROM left(finished_at, 19)::timestamp)
              - extract(epoch FROM left(created_at, 19)::timestamp))::bigint * 1000000000
             + substr(finished_at, 21, 9)::bigint - substr(created_at, 21, 9)::bigint
        ELSE (extract(epoch FROM finished_at::timestamptz - created_at::timestamptz)
              * 1000000000)::bigint
    END
    WHERE finished_at IS NOT NULL;
    CREATE INDEX tasks_by_took ON tasks(took_ns, ord) WHERE took_ns IS NOT NULL;
    CREATE INDEX tasks_unfinished_by_age ON tasks(created_at, ord DESC, took_ns) WHERE took_ns IS NULL;
    "#,
];

/// The version this build writes.
pub const VERSION: i64 = MIGRATIONS.len() as i64;

/// The advisory lock migrations take, the same number in every database:
/// steps of different runs in one database wait for each other, which is
/// rare and short.
const MIGRATION_LOCK: i64 = 0x6261_746f_6e00_0001;

/// Quotes an identifier for SQL (`"name"`, inner quotes doubled).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The schema's version; 0 when the schema or its version table is not there.
pub async fn version(client: &Client, schema: &str) -> Result<i64, tokio_postgres::Error> {
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = 'schema_version')",
            &[&schema],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(0);
    }
    let row = client
        .query_opt(
            &format!("SELECT version FROM {}.schema_version", ident(schema)),
            &[],
        )
        .await?;
    Ok(row.map_or(0, |r| r.get(0)))
}

/// Creates the schema when missing and brings it to `VERSION`. The caller
/// refuses a schema newer than this build before calling.
pub async fn migrate(client: &mut Client, schema: &str) -> Result<(), tokio_postgres::Error> {
    let s = ident(schema);
    loop {
        let tx = client.transaction().await?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
            .await?;
        tx.batch_execute(&format!(
            "CREATE SCHEMA IF NOT EXISTS {s}; \
             CREATE TABLE IF NOT EXISTS {s}.schema_version (version BIGINT NOT NULL); \
             SET LOCAL search_path TO {s}"
        ))
        .await?;
        let at: Option<i64> = tx
            .query_opt("SELECT version FROM schema_version", &[])
            .await?
            .map(|r| r.get(0));
        let at = match at {
            Some(v) => v,
            None => {
                tx.execute("INSERT INTO schema_version VALUES (0)", &[])
                    .await?;
                0
            }
        };
        if at >= VERSION {
            return tx.commit().await;
        }
        tx.batch_execute(MIGRATIONS[at as usize]).await?;
        tx.execute("UPDATE schema_version SET version = $1", &[&(at + 1)])
            .await?;
        tx.commit().await?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Tables written by version 4 get each finished task's time, to the
    /// nanosecond, from its stored times; unfinished tasks have none.
    #[tokio::test]
    async fn version_five_fills_the_finished_tasks_times() {
        let Some(db) = super::super::test_db::connect("took").await else {
            return;
        };
        let c = &db.client;
        c.batch_execute(
            "DROP INDEX tasks_by_took; DROP INDEX tasks_unfinished_by_age; \
             ALTER TABLE tasks DROP COLUMN took_ns;
             INSERT INTO tasks(ord, id, state, phase, phases_done, phases_total, attempts, tokens,
               cost_usd, cost_unknown, holds, created_at, updated_at, finished_at, seq,
               attention, phase_pos)
             VALUES (1, 'a', 'completed', NULL, 2, 2, 2, 0, 0, 0, 0,
                     '2026-01-01T23:59:59.999999999Z', 't', '2026-01-02T00:00:01.000000001Z', 1,
                     6, 0),
                    (2, 'b', 'pending', NULL, 0, 2, 0, 0, 0, 0, 0,
                     '2026-01-01T00:00:00.000000000Z', 't', NULL, 2, 5, 0),
                    (3, 'c', 'failed', NULL, 0, 2, 0, 0, 0, 0, 0,
                     '2026-01-01T00:00:00Z', 't', '2026-01-01T00:00:02.5Z', 3, 2, 0);",
        )
        .await
        .unwrap();
        c.batch_execute(MIGRATIONS[4]).await.unwrap();
        let took: Vec<Option<i64>> = c
            .query("SELECT took_ns FROM tasks ORDER BY ord", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        // Times printed another way are read as times, to the microsecond.
        assert_eq!(took, [Some(1_000_000_002), None, Some(2_500_000_000)]);
        db.drop().await;
    }
}
