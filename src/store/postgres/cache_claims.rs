//! The step cache's claims (`cache_claims`): the single flight of a key
//! across a fleet. An engine that found no entry at a key claims it before
//! running the key's attempt; an engine that finds it claimed waits for the
//! entry instead of running its own.
//!
//! A claim holds while its engine is live (not stopped, its lease not run
//! out) and still holds the lease of the claim's task, or while that task
//! waits for a person's review at the claim's phase (its output waits for
//! approval, or the budget stopped it before it ran). Any other claim is
//! free to take: its engine died or stopped, or its attempt came to
//! nothing. The engine that holds a claim may always take it again (for
//! another of its tasks), unless a person's review holds it. Storing an
//! entry ends its key's claim in the same commit (see `cache::write`).
//! Every time is the database's.

use tokio_postgres::GenericClient;
use tokio_postgres::types::ToSql;

use super::fail::PgResult;
use crate::store::cache::CacheKey;

/// What a claim is found by besides its phase: the definition and the key,
/// hashed (a key may be long). `$2` and `$3` are arrays of definitions and
/// keys.
const HASH: &str = "md5(u.definition || chr(10) || u.key)";

/// Claims each key for this engine (`me`) and its task, unless a claim
/// that holds is there; says, in the order asked, which keys it got.
pub async fn claim(
    c: &impl GenericClient,
    me: i64,
    claims: &[(CacheKey, String)],
) -> PgResult<Vec<bool>> {
    if claims.is_empty() {
        return Ok(Vec::new());
    }
    let phases: Vec<&str> = claims.iter().map(|(k, _)| k.phase.as_str()).collect();
    let definitions: Vec<&str> = claims.iter().map(|(k, _)| k.definition.as_str()).collect();
    let names: Vec<&str> = claims.iter().map(|(k, _)| k.key.as_str()).collect();
    let tasks: Vec<&str> = claims.iter().map(|(_, t)| t.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 5] = [&phases, &definitions, &names, &tasks, &me];
    let rows = c
        .query(
            &format!(
                "INSERT INTO cache_claims AS c (phase, key_hash, definition, key, engine, task) \
                 SELECT DISTINCT ON (u.phase, {HASH}) u.phase, {HASH}, u.definition, u.key, $5, u.task \
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
                   AS u(phase, definition, key, task) \
                 ON CONFLICT (phase, key_hash) DO UPDATE SET definition = excluded.definition, \
                   key = excluded.key, engine = excluded.engine, task = excluded.task, \
                   claimed_at = now() \
                 WHERE NOT EXISTS ( \
                     SELECT 1 FROM tasks t JOIN holds h ON h.task = t.ord \
                     WHERE t.id = c.task AND h.phase = c.phase AND h.kind = 'review') \
                   AND (c.engine = excluded.engine OR NOT EXISTS ( \
                     SELECT 1 FROM engines e JOIN tasks t ON t.owner = e.id \
                     WHERE e.id = c.engine AND e.stopped_at IS NULL AND e.lease_until >= now() \
                       AND t.id = c.task AND t.lease_until >= now())) \
                 RETURNING c.phase, c.definition, c.key"
            ),
            &params,
        )
        .await?;
    let mut got = std::collections::HashSet::with_capacity(rows.len());
    for r in rows {
        got.insert(CacheKey {
            phase: r.try_get(0)?,
            definition: r.try_get(1)?,
            key: r.try_get(2)?,
        });
    }
    Ok(claims.iter().map(|(k, _)| got.contains(k)).collect())
}

/// Lets go of this engine's claims on `keys`.
pub async fn release(c: &impl GenericClient, me: i64, keys: &[CacheKey]) -> PgResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let phases: Vec<&str> = keys.iter().map(|k| k.phase.as_str()).collect();
    let definitions: Vec<&str> = keys.iter().map(|k| k.definition.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 4] = [&phases, &definitions, &names, &me];
    c.execute(
        &format!(
            "DELETE FROM cache_claims c \
             USING unnest($1::text[], $2::text[], $3::text[]) AS u(phase, definition, key) \
             WHERE c.phase = u.phase AND c.key_hash = {HASH} AND c.engine = $4"
        ),
        &params,
    )
    .await?;
    Ok(())
}

/// Ends the claims on `keys`, whoever holds them: their entries are stored
/// in the same transaction.
pub async fn end(c: &impl GenericClient, keys: &[&CacheKey]) -> PgResult<()> {
    if keys.is_empty() {
        return Ok(());
    }
    let phases: Vec<&str> = keys.iter().map(|k| k.phase.as_str()).collect();
    let definitions: Vec<&str> = keys.iter().map(|k| k.definition.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 3] = [&phases, &definitions, &names];
    c.execute(
        &format!(
            "DELETE FROM cache_claims c \
             USING unnest($1::text[], $2::text[], $3::text[]) AS u(phase, definition, key) \
             WHERE c.phase = u.phase AND c.key_hash = {HASH}"
        ),
        &params,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_db;

    fn key(key: &str) -> CacheKey {
        CacheKey {
            phase: "fetch".into(),
            definition: "d1".into(),
            key: key.into(),
        }
    }

    /// An engine whose lease runs out in `secs` (in the past when negative).
    async fn engine(db: &test_db::TestDb, secs: f64) -> i64 {
        db.client
            .query_one(
                "INSERT INTO engines(host, pid, lease_until) \
                 VALUES ('h', 1, now() + make_interval(secs => $1)) RETURNING id",
                &[&secs],
            )
            .await
            .unwrap()
            .get(0)
    }

    /// Task `ord` (id `t{ord}`), leased by `owner` for an hour.
    async fn task(db: &test_db::TestDb, ord: i64, owner: Option<i64>) {
        db.client
            .execute(
                "INSERT INTO tasks(ord, id, state, phases_done, phases_total, attempts, tokens, \
                   cost_usd, cost_unknown, holds, created_at, updated_at, seq, attention, \
                   phase_pos, owner, lease_until) \
                 VALUES ($1, 't' || $1::bigint, 'running', 0, 2, 0, 0, 0, 0, 0, 'x', 'x', 0, 0, 0, $2, \
                   now() + interval '1 hour')",
                &[&ord, &owner],
            )
            .await
            .unwrap();
    }

    async fn hold(db: &test_db::TestDb, ord: i64, kind: &str, phase: &str) {
        db.client
            .execute(
                "INSERT INTO holds(task, pos, kind, phase, since, reason) \
                 VALUES ($1, 0, $2, $3, 'x', 'why')",
                &[&ord, &kind, &phase],
            )
            .await
            .unwrap();
    }

    /// The keys claimed, in order.
    async fn left(db: &test_db::TestDb) -> Vec<String> {
        db.client
            .query("SELECT key FROM cache_claims ORDER BY key", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }

    async fn ask(db: &test_db::TestDb, me: i64, k: &str, task: &str) -> bool {
        claim(&db.client, me, &[(key(k), task.into())])
            .await
            .unwrap()[0]
    }

    #[tokio::test]
    async fn a_claim_holds_while_its_engine_runs_the_attempt_or_a_person_reviews_it() {
        let Some(db) = test_db::connect("cache_claims").await else {
            return;
        };
        let (a, b) = (engine(&db, 60.0).await, engine(&db, 60.0).await);
        for (ord, owner) in [(1, a), (2, a), (3, b), (4, a), (5, a), (6, a)] {
            task(&db, ord, Some(owner)).await;
        }
        // Several keys at once, each answered in the order asked; a key
        // asked twice is claimed once.
        let asked = [
            (key("k1"), "t1".to_string()),
            (key("k2"), "t2".to_string()),
            (key("k1"), "t1".to_string()),
        ];
        let got = claim(&db.client, a, &asked).await.unwrap();
        assert_eq!(got, [true, true, true]);
        assert!(!ask(&db, b, "k1", "t3").await, "a runs it");
        assert!(
            ask(&db, a, "k1", "t2").await,
            "a may hand it to another task"
        );
        // The claim's task went to another engine (a lost it): free.
        db.client
            .execute("UPDATE tasks SET owner = $1 WHERE ord = 2", &[&b])
            .await
            .unwrap();
        assert!(ask(&db, b, "k1", "t3").await);
        // An engine whose lease ran out holds nothing.
        let dead = engine(&db, -1.0).await;
        task(&db, 7, Some(dead)).await;
        assert!(ask(&db, dead, "k3", "t7").await, "a free key is anyone's");
        assert!(
            ask(&db, a, "k3", "t1").await,
            "the dead engine's claim is taken"
        );
        // A review at the claim's phase holds it, whoever asks; a blocker,
        // or a review at another phase, does not.
        assert!(ask(&db, a, "k4", "t4").await);
        assert!(ask(&db, a, "k5", "t5").await);
        assert!(ask(&db, a, "k6", "t6").await);
        db.client
            .execute(
                "UPDATE tasks SET owner = NULL, lease_until = NULL WHERE ord IN (4, 5, 6)",
                &[],
            )
            .await
            .unwrap();
        hold(&db, 4, "review", "fetch").await;
        hold(&db, 5, "blocked", "fetch").await;
        hold(&db, 6, "review", "other").await;
        assert!(!ask(&db, b, "k4", "t3").await);
        assert!(!ask(&db, a, "k4", "t1").await, "even against its engine");
        assert!(ask(&db, b, "k5", "t3").await);
        assert!(ask(&db, b, "k6", "t3").await);
        // A release lets go of the engine's own claims only; an entry
        // stored ends any.
        release(&db.client, a, &[key("k2"), key("k5")])
            .await
            .unwrap();
        assert_eq!(left(&db).await, ["k1", "k3", "k4", "k5", "k6"]);
        end(&db.client, &[&key("k4"), &key("k1")]).await.unwrap();
        assert_eq!(left(&db).await, ["k3", "k5", "k6"]);
        assert!(
            ask(&db, b, "k4", "t3").await,
            "its entry ended the review's claim"
        );
        db.drop().await;
    }
}
