//! Several engines on one run: each registers in `engines`, claims work by
//! taking tasks' leases, renews them with its heartbeat, and lets them go
//! when it puts a task down. Every time is the database's (`now()`), so
//! the clocks of the engines' machines do not matter.
//!
//! A lease is held until `lease_until`; an engine renews its leases every
//! third of the lease. An engine that dies, or is cut off from the database
//! for longer than a lease, loses its tasks to the others, which run their
//! open attempts again (at least once). Each claim raises the task's
//! `lease_gen`: the writer commits a task's events only while the
//! generation it claimed is still the task's, so an engine that lost a task
//! can never write over its new holder's work.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio_postgres::Client;

use super::fail::PgResult;
use crate::engine::event::EventKind;
use crate::store::model::TaskNo;
use crate::store::{RateGrant, Reserved};

/// How long a lease lasts unless `BATON_LEASE_SECS` says otherwise.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(10);

/// The lease length, from `BATON_LEASE_SECS` (1 to 3600 seconds).
pub fn lease() -> Duration {
    std::env::var("BATON_LEASE_SECS")
        .ok()
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| (1.0..=3600.0).contains(s))
        .map_or(DEFAULT_LEASE, Duration::from_secs_f64)
}

/// The tasks this engine holds, by their lease generation, and those it
/// learnt it lost.
#[derive(Debug, Default)]
pub(crate) struct Held {
    gens: Mutex<HashMap<TaskNo, i64>>,
    lost: Mutex<Vec<TaskNo>>,
}

impl Held {
    pub fn hold(&self, ord: TaskNo, generation: i64) {
        lock(&self.gens).insert(ord, generation);
    }
    pub fn generation(&self, ord: TaskNo) -> Option<i64> {
        lock(&self.gens).get(&ord).copied()
    }
    pub fn let_go(&self, ords: &[TaskNo]) {
        let mut gens = lock(&self.gens);
        for ord in ords {
            gens.remove(ord);
        }
    }
    pub fn lose(&self, ords: &[TaskNo]) {
        self.let_go(ords);
        lock(&self.lost).extend_from_slice(ords);
    }
    /// The tasks held now.
    pub fn ords(&self) -> Vec<TaskNo> {
        lock(&self.gens).keys().copied().collect()
    }

    pub fn take_lost(&self) -> Vec<TaskNo> {
        std::mem::take(&mut *lock(&self.lost))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// This machine's name, for `baton fleet` and messages.
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// Registers this engine; its number in the run.
pub async fn register(c: &Client, lease: Duration) -> PgResult<i64> {
    let row = c
        .query_one(
            "INSERT INTO engines(host, pid, lease_until) \
             VALUES ($1, $2, now() + make_interval(secs => $3)) RETURNING id",
            &[&host_name(), &i64::from(std::process::id()), &secs(lease)],
        )
        .await?;
    Ok(row.get(0))
}

/// Renews this engine's heartbeat and the leases of the tasks it knows it
/// holds (`held`: a claim whose answer was lost is left to run out, and
/// the task to another engine), under the run's commit lock: a commit
/// locks the rows of the tasks it writes, and the renewal must not take
/// them in another order meanwhile.
pub async fn heartbeat(
    c: &mut Client,
    me: i64,
    lease: Duration,
    commit_lock: i64,
    held: &[TaskNo],
) -> PgResult<()> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&commit_lock])
        .await?;
    tx.execute(
        "UPDATE engines SET heartbeat_at = now(), lease_until = now() + make_interval(secs => $2) \
         WHERE id = $1",
        &[&me, &secs(lease)],
    )
    .await?;
    tx.execute(
        "UPDATE tasks SET lease_until = now() + make_interval(secs => $2) \
         WHERE owner = $1 AND ord = ANY($3)",
        &[&me, &secs(lease), &held],
    )
    .await?;
    tx.execute(
        "UPDATE slots SET lease_until = now() + make_interval(secs => $2) WHERE owner = $1",
        &[&me, &secs(lease)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Leases up to `want` places of `resource` (of `cap` in all) nobody holds;
/// gives how many it got.
pub async fn acquire_slots(
    c: &Client,
    me: i64,
    lease: Duration,
    resource: &str,
    cap: u32,
    want: u32,
) -> PgResult<u32> {
    if want == 0 {
        return Ok(0);
    }
    c.execute(
        "INSERT INTO slots(resource, n) SELECT $1, g FROM generate_series(1, $2::bigint) g \
         ON CONFLICT DO NOTHING",
        &[&resource, &i64::from(cap)],
    )
    .await?;
    let got = c
        .execute(
            "WITH free AS (
                 SELECT resource, n FROM slots
                 WHERE resource = $2 AND n <= $3 AND (owner IS NULL OR lease_until < now())
                 ORDER BY n LIMIT $4 FOR UPDATE SKIP LOCKED)
             UPDATE slots s SET owner = $1, lease_until = now() + make_interval(secs => $5)
             FROM free WHERE s.resource = free.resource AND s.n = free.n",
            &[
                &me,
                &resource,
                &i64::from(cap),
                &i64::from(want),
                &secs(lease),
            ],
        )
        .await?;
    Ok(got as u32)
}

/// Gives back `count` places of `resource` this engine holds (under the
/// commit lock, as the heartbeat renews them).
pub async fn release_slots(
    c: &mut Client,
    me: i64,
    resource: &str,
    count: u32,
    commit_lock: i64,
) -> PgResult<()> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&commit_lock])
        .await?;
    tx.execute(
        "UPDATE slots SET owner = NULL, lease_until = NULL WHERE (resource, n) IN ( \
           SELECT resource, n FROM slots WHERE resource = $2 AND owner = $1 \
           ORDER BY n DESC LIMIT $3)",
        &[&me, &resource, &i64::from(count)],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Grants up to `want` of the agent's `rpm` in the current `window`; never
/// more than `rpm` in one window across the fleet.
pub async fn grant_requests(
    c: &Client,
    agent: &str,
    rpm: Option<u32>,
    window: Duration,
    want: u32,
    used_tokens: u64,
) -> PgResult<RateGrant> {
    let w = window.as_secs_f64().max(0.001);
    let row = c
        .query_one(
            "WITH t AS (SELECT extract(epoch FROM now())::float8 AS s),
                  w AS (SELECT floor(t.s / $2::float8)::bigint AS no,
                               $2::float8 - (t.s - floor(t.s / $2::float8) * $2::float8) AS left_s
                        FROM t),
                  ins AS (INSERT INTO rate_windows(agent, window_no) SELECT $1, no FROM w
                          ON CONFLICT DO NOTHING)
             SELECT no, left_s FROM w",
            &[&agent, &w],
        )
        .await?;
    let no: i64 = row.get(0);
    let left: f64 = row.get(1);
    let rpm = rpm.map_or(i64::MAX, i64::from);
    // Both sides of SET see the row as it was: `last_grant` is this grant.
    let row = c
        .query_one(
            "UPDATE rate_windows SET last_grant = LEAST($3, GREATEST($4 - requests, 0)),
                 requests = requests + LEAST($3, GREATEST($4 - requests, 0)),
                 tokens = tokens + $5
             WHERE agent = $1 AND window_no = $2 RETURNING last_grant, tokens",
            &[
                &agent,
                &no,
                &i64::from(want),
                &rpm,
                &(used_tokens.min(i64::MAX as u64) as i64),
            ],
        )
        .await?;
    let granted: i64 = row.get(0);
    let tokens: i64 = row.get(1);
    Ok(RateGrant {
        granted: granted.clamp(0, i64::from(u32::MAX)) as u32,
        left: Duration::from_secs_f64(left.clamp(0.0, w)),
        tokens: tokens.max(0) as u64,
    })
}

/// Engines serving the run now, counting this one: what fair shares of the
/// fleet's limits are cut by.
pub async fn busy_engines(c: &Client, me: i64) -> PgResult<u32> {
    let row = c
        .query_one(
            "SELECT count(*) FROM engines e \
             WHERE e.id = $1 OR (e.stopped_at IS NULL AND e.lease_until >= now())",
            &[&me],
        )
        .await?;
    Ok(row.get::<_, i64>(0).max(1) as u32)
}

/// Takes up to `limit` tasks that nobody holds: pending ones, and ones
/// under way whose holder let them go or stopped renewing. Their new
/// generations are returned, in submission order.
pub async fn claim_work(
    c: &Client,
    me: i64,
    lease: Duration,
    limit: u64,
) -> PgResult<Vec<(TaskNo, i64)>> {
    let rows = c
        .query(
            "WITH free AS (
                 SELECT ord FROM tasks
                 WHERE state IN ('pending', 'running', 'retrying')
                   AND (owner IS NULL OR lease_until < now())
                 ORDER BY ord LIMIT $3 FOR UPDATE SKIP LOCKED)
             UPDATE tasks t SET owner = $1, lease_gen = t.lease_gen + 1,
                 lease_until = now() + make_interval(secs => $2)
             FROM free WHERE t.ord = free.ord
             RETURNING t.ord, t.lease_gen",
            &[&me, &secs(lease), &(limit.min(i64::MAX as u64) as i64)],
        )
        .await?;
    let mut out: Vec<(TaskNo, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    out.sort_unstable();
    Ok(out)
}

/// Whether a task could be claimed for a person's decision.
pub enum Claim {
    /// Now this engine's, with this generation.
    Taken(TaskNo, i64),
    /// The run has no such task.
    Missing,
    /// Another live engine holds it.
    HeldBy(String),
}

/// Takes one task for a person's decision, unless another live engine
/// holds it; then says which, and the last decision recorded on it.
pub async fn claim_task(c: &Client, me: i64, lease: Duration, id: &str) -> PgResult<Claim> {
    let row = c
        .query_opt(
            "UPDATE tasks SET owner = $1, lease_gen = lease_gen + 1,
                 lease_until = now() + make_interval(secs => $2)
             WHERE id = $3 AND (owner IS NULL OR owner = $1 OR lease_until < now())
             RETURNING ord, lease_gen",
            &[&me, &secs(lease), &id],
        )
        .await?;
    if let Some(r) = row {
        return Ok(Claim::Taken(r.get(0), r.get(1)));
    }
    let holder = c
        .query_opt(
            "SELECT t.ord, e.id, e.host, e.pid FROM tasks t LEFT JOIN engines e ON e.id = t.owner \
             WHERE t.id = $1",
            &[&id],
        )
        .await?;
    let Some(h) = holder else {
        return Ok(Claim::Missing);
    };
    let ord: TaskNo = h.get(0);
    let engine = match (h.get::<_, Option<i64>>(1), h.get::<_, Option<String>>(2)) {
        (Some(n), Some(host)) => format!("engine {n} on {host}, pid {}", h.get::<_, i64>(3)),
        _ => "another engine".into(),
    };
    let decided = c
        .query_opt(
            "SELECT body FROM events WHERE task = $1 AND kind = 'decision_recorded' \
             ORDER BY seq DESC LIMIT 1",
            &[&ord],
        )
        .await?
        .and_then(|r| {
            let body: String = r.get(0);
            match serde_json::from_str(&body).ok()? {
                EventKind::DecisionRecorded { decision } => Some(format!(
                    "; its last decision: {} by {} at {}",
                    decision.action.name(),
                    decision.by.user,
                    decision.at.strftime("%H:%M:%S UTC")
                )),
                _ => None,
            }
        })
        .unwrap_or_default();
    Ok(Claim::HeldBy(format!(
        "task {id} is held by {engine}, which carries out decisions on it first{decided}"
    )))
}

/// A clean stop: lets go of every task and marks the engine stopped
/// (under the commit lock, as every write of many task rows).
pub async fn stop(c: &mut Client, me: i64, commit_lock: i64) -> PgResult<()> {
    let tx = c.transaction().await?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&commit_lock])
        .await?;
    tx.execute(
        "UPDATE tasks SET owner = NULL, lease_until = NULL WHERE owner = $1",
        &[&me],
    )
    .await?;
    tx.execute(
        "UPDATE slots SET owner = NULL, lease_until = NULL WHERE owner = $1",
        &[&me],
    )
    .await?;
    tx.execute(
        "UPDATE engines SET stopped_at = now(), lease_until = now(), reserved_usd = 0, \
         reserved_tokens = 0 WHERE id = $1",
        &[&me],
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// Whether tasks are pending or under way anywhere in the run (held by any
/// engine, or by none).
pub async fn work_left(c: &Client) -> PgResult<bool> {
    let row = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM tasks WHERE state IN ('pending', 'running', 'retrying'))",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// One engine of the fleet, as `baton fleet` lists it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EngineInfo {
    pub id: i64,
    pub host: String,
    pub pid: i64,
    pub started_at: String,
    pub heartbeat_at: String,
    /// Seconds since its last heartbeat, by the database's clock.
    pub heartbeat_age_secs: f64,
    /// Whether its lease still holds (it heartbeats, and did not stop).
    pub live: bool,
    pub stopped_at: Option<String>,
    /// Tasks whose lease it holds now.
    pub tasks_held: i64,
    /// Of those, tasks with an attempt under way or a retry waiting.
    pub tasks_running: i64,
}

/// The engines of the run, newest first; stopped ones only when `all`.
pub async fn engines(c: &Client, all: bool) -> PgResult<Vec<EngineInfo>> {
    let rows = c
        .query(
            "SELECT e.id, e.host, e.pid,
                    to_char(e.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    to_char(e.heartbeat_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    extract(epoch FROM now() - e.heartbeat_at)::float8,
                    e.stopped_at IS NULL AND e.lease_until >= now(),
                    to_char(e.stopped_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),
                    (SELECT count(*) FROM tasks t WHERE t.owner = e.id AND t.lease_until >= now()),
                    (SELECT count(*) FROM tasks t WHERE t.owner = e.id AND t.lease_until >= now()
                        AND t.state IN ('running', 'retrying'))
             FROM engines e
             WHERE $1 OR (e.stopped_at IS NULL AND e.lease_until >= now() - interval '1 hour')
             ORDER BY e.id DESC",
            &[&all],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| EngineInfo {
            id: r.get(0),
            host: r.get(1),
            pid: r.get(2),
            started_at: r.get(3),
            heartbeat_at: r.get(4),
            heartbeat_age_secs: r.get(5),
            live: r.get(6),
            stopped_at: r.get(7),
            tasks_held: r.get(8),
            tasks_running: r.get(9),
        })
        .collect())
}

/// Reserves what attempts about to start are expected to spend of the
/// run's budget (see `RunStore::reserve_budget`). Holds the commit lock
/// meanwhile, so that the spend and every engine's reservations are read
/// as one commit left them and no other engine reserves at the same time.
pub async fn reserve_budget(
    c: &mut Client,
    me: i64,
    commit_lock: i64,
    limits: crate::spec::model::BudgetLimits,
    wants: Vec<(String, Reserved)>,
) -> PgResult<(Vec<Reserved>, Option<String>)> {
    c.execute("SELECT pg_advisory_lock($1)", &[&commit_lock])
        .await?;
    let done = reserve_locked(c, me, limits, wants).await;
    let unlocked = c
        .execute("SELECT pg_advisory_unlock($1)", &[&commit_lock])
        .await;
    let done = done?;
    unlocked?;
    Ok(done)
}

async fn reserve_locked(
    c: &mut Client,
    me: i64,
    limits: crate::spec::model::BudgetLimits,
    wants: Vec<(String, Reserved)>,
) -> PgResult<(Vec<Reserved>, Option<String>)> {
    let tx = c.transaction().await?;
    let totals = super::read::totals(&tx).await?;
    let row = tx
        .query_one(
            "SELECT coalesce(sum(reserved_usd), 0)::float8, coalesce(sum(reserved_tokens), 0)::bigint \
             FROM engines WHERE id = $1 OR (stopped_at IS NULL AND lease_until >= now())",
            &[&me],
        )
        .await?;
    let mut reserved = Reserved {
        usd: row.get(0),
        tokens: row.get::<_, i64>(1).max(0) as u64,
    };
    // The fleet's average per attempt of each agent, from the figures.
    let mut average: HashMap<String, Reserved> = HashMap::new();
    for r in tx
        .query(
            "SELECT agent, sum(attempts - interrupted - cancelled)::bigint, \
                    sum(input_tokens + output_tokens + cache_read_tokens + cache_write_tokens)::bigint, \
                    sum(cost_nano)::bigint \
             FROM attempt_stats GROUP BY agent",
            &[],
        )
        .await?
    {
        let n: i64 = r.get(1);
        if n > 0 {
            let tokens: i64 = r.get(2);
            let nano: i64 = r.get(3);
            average.insert(
                r.get(0),
                Reserved {
                    usd: nano as f64 / 1e9 / n as f64,
                    tokens: (tokens / n).max(0) as u64,
                },
            );
        }
    }
    let spent_usd = totals.cost().usd;
    let mut given = Vec::new();
    let mut refused = None;
    for (agent, own) in wants {
        let usd_over = limits.usd.is_some_and(|l| spent_usd + reserved.usd >= l);
        let tokens_over = limits
            .tokens
            .is_some_and(|l| totals.tokens.saturating_add(reserved.tokens) >= l);
        if usd_over || tokens_over {
            refused = Some(if tokens_over {
                format!(
                    "{} tokens reached across the fleet: {} used + {} reserved by attempts under way",
                    limits.tokens.unwrap_or(0),
                    totals.tokens,
                    reserved.tokens
                )
            } else {
                format!(
                    "${:.4} reached across the fleet: ${:.4} spent + ${:.4} reserved by attempts under way",
                    limits.usd.unwrap_or(0.0),
                    spent_usd,
                    reserved.usd
                )
            });
            break;
        }
        let r = average.get(&agent).copied().unwrap_or(own);
        reserved.add(r);
        given.push(r);
    }
    let total = given.iter().fold(Reserved::default(), |mut t, r| {
        t.add(*r);
        t
    });
    if !total.is_zero() {
        tx.execute(
            "UPDATE engines SET reserved_usd = reserved_usd + $2, \
             reserved_tokens = reserved_tokens + $3 WHERE id = $1",
            &[&me, &total.usd, &(total.tokens.min(i64::MAX as u64) as i64)],
        )
        .await?;
    }
    tx.commit().await?;
    Ok((given, refused))
}

/// The live engine holding task `id`, for people: `engine 2 on HOST, pid N`.
pub async fn holder(c: &Client, id: &str) -> PgResult<Option<String>> {
    let row = c
        .query_opt(
            "SELECT e.id, e.host, e.pid FROM tasks t JOIN engines e ON e.id = t.owner \
             WHERE t.id = $1 AND t.lease_until >= now()",
            &[&id],
        )
        .await?;
    Ok(row.map(|r| {
        format!(
            "engine {} on {}, pid {}",
            r.get::<_, i64>(0),
            r.get::<_, String>(1),
            r.get::<_, i64>(2)
        )
    }))
}
