//! The step cache's table: entries found by phase, definition and key.
//! Each call is one statement (two for a write), however many keys it
//! takes.

use std::collections::HashMap;

use jiff::Timestamp;
use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Transaction};

use super::fail::PgResult;
use super::text::{int, parse_ts, ts, uint};
use crate::store::cache::{CacheEntry, CacheFilter, CacheInfo, CacheKey, CacheWrite};

/// The entry at each key, in the order asked.
pub async fn get(c: &impl GenericClient, keys: &[CacheKey]) -> PgResult<Vec<Option<CacheEntry>>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let phases: Vec<&str> = keys.iter().map(|k| k.phase.as_str()).collect();
    let definitions: Vec<&str> = keys.iter().map(|k| k.definition.as_str()).collect();
    let names: Vec<&str> = keys.iter().map(|k| k.key.as_str()).collect();
    let params: [&(dyn ToSql + Sync); 3] = [&phases, &definitions, &names];
    let rows = c
        .query(
            "SELECT s.phase, s.definition, s.key, s.output, s.task, s.created_at \
             FROM step_cache s \
             JOIN (SELECT DISTINCT * FROM unnest($1::text[], $2::text[], $3::text[])) \
               AS k(phase, definition, key) \
             ON s.phase = k.phase AND s.definition = k.definition AND s.key = k.key",
            &params,
        )
        .await?;
    let mut found: HashMap<CacheKey, CacheEntry> = HashMap::with_capacity(rows.len());
    for r in rows {
        let key = CacheKey {
            phase: r.try_get(0)?,
            definition: r.try_get(1)?,
            key: r.try_get(2)?,
        };
        let entry = CacheEntry {
            key: key.clone(),
            output: serde_json::from_str(r.try_get(3)?)?,
            task: r.try_get(4)?,
            created_at: parse_ts(r.try_get(5)?)?,
        };
        found.insert(key, entry);
    }
    Ok(keys.iter().map(|k| found.get(k).cloned()).collect())
}

/// Entries matching `filter`, by phase, then newest first (names in byte
/// order, as in the embedded store).
pub async fn list(c: &impl GenericClient, filter: &CacheFilter) -> PgResult<Vec<CacheInfo>> {
    c.query(
        "SELECT phase, definition, key, task, created_at, uses, last_used_at, size \
         FROM step_cache WHERE ($1::text IS NULL OR phase = $1) \
           AND ($2::text IS NULL OR key = $2) \
         ORDER BY phase COLLATE \"C\", created_at DESC, key COLLATE \"C\"",
        &[&filter.phase, &filter.key],
    )
    .await?
    .iter()
    .map(|r| {
        Ok(CacheInfo {
            key: CacheKey {
                phase: r.try_get(0)?,
                definition: r.try_get(1)?,
                key: r.try_get(2)?,
            },
            task: r.try_get(3)?,
            created_at: parse_ts(r.try_get(4)?)?,
            uses: uint(r.try_get(5)?),
            last_used_at: r.try_get::<_, Option<&str>>(6)?.map(parse_ts).transpose()?,
            size: uint(r.try_get(7)?),
        })
    })
    .collect()
}

/// Applies the engine's changes, inside the writer's transaction: the
/// entries stored (the last one of each key), then the uses counted since
/// each key was last stored. The same end as applying them one by one. An
/// entry stored ends its key's claim (`cache_claims`) in the same commit,
/// so that an engine waiting for the key finds the entry before the claim
/// is free.
pub async fn write(tx: &Transaction<'_>, writes: &[CacheWrite]) -> PgResult<()> {
    let mut puts: HashMap<&CacheKey, &CacheEntry> = HashMap::new();
    let mut used: HashMap<&CacheKey, (u64, Timestamp)> = HashMap::new();
    for w in writes {
        match w {
            CacheWrite::Put(e) => {
                puts.insert(&e.key, e);
                // A new entry's uses start over.
                used.remove(&e.key);
            }
            CacheWrite::Used { key, n, at } => {
                let u = used.entry(key).or_insert((0, *at));
                u.0 = u.0.saturating_add(*n);
                u.1 = *at;
            }
        }
    }
    if !puts.is_empty() {
        let mut phases = Vec::new();
        let mut definitions = Vec::new();
        let mut names = Vec::new();
        let mut outputs = Vec::new();
        let mut sizes = Vec::new();
        let mut tasks = Vec::new();
        let mut created = Vec::new();
        for e in puts.values() {
            let output = serde_json::to_string(&e.output)?;
            phases.push(e.key.phase.as_str());
            definitions.push(e.key.definition.as_str());
            names.push(e.key.key.as_str());
            sizes.push(output.len() as i64);
            outputs.push(output);
            tasks.push(e.task.as_str());
            created.push(ts(e.created_at));
        }
        let params: [&(dyn ToSql + Sync); 7] = [
            &phases,
            &definitions,
            &names,
            &outputs,
            &sizes,
            &tasks,
            &created,
        ];
        tx.execute(
            "INSERT INTO step_cache(phase, definition, key, output, size, task, created_at, uses) \
             SELECT p, d, k, o, s, t, c, 0 FROM unnest($1::text[], $2::text[], $3::text[], \
               $4::text[], $5::bigint[], $6::text[], $7::text[]) AS u(p, d, k, o, s, t, c) \
             ON CONFLICT (phase, definition, key) DO UPDATE SET output = excluded.output, \
               size = excluded.size, task = excluded.task, created_at = excluded.created_at, \
               uses = 0, last_used_at = NULL",
            &params,
        )
        .await?;
        let keys: Vec<&CacheKey> = puts.keys().copied().collect();
        super::cache_claims::end(tx, &keys).await?;
    }
    if !used.is_empty() {
        let mut phases = Vec::new();
        let mut definitions = Vec::new();
        let mut names = Vec::new();
        let mut counts = Vec::new();
        let mut ats = Vec::new();
        for (key, (n, at)) in &used {
            phases.push(key.phase.as_str());
            definitions.push(key.definition.as_str());
            names.push(key.key.as_str());
            counts.push(int(*n));
            ats.push(ts(*at));
        }
        let params: [&(dyn ToSql + Sync); 5] = [&phases, &definitions, &names, &counts, &ats];
        tx.execute(
            "UPDATE step_cache s SET uses = s.uses + u.n, last_used_at = u.at \
             FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[]) \
               AS u(p, d, k, n, at) \
             WHERE s.phase = u.p AND s.definition = u.d AND s.key = u.k",
            &params,
        )
        .await?;
    }
    Ok(())
}

/// Removes the entries matching `filter`; says how many.
pub async fn clear(c: &impl GenericClient, filter: &CacheFilter) -> PgResult<u64> {
    let n = c
        .execute(
            "DELETE FROM step_cache WHERE ($1::text IS NULL OR phase = $1) \
             AND ($2::text IS NULL OR key = $2)",
            &[&filter.phase, &filter.key],
        )
        .await?;
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_db;

    fn key(phase: &str, key: &str) -> CacheKey {
        CacheKey {
            phase: phase.into(),
            definition: "d1".into(),
            key: key.into(),
        }
    }

    fn at(minutes: i64) -> Timestamp {
        let base: Timestamp = "2024-05-01T10:00:00.123456789Z".parse().unwrap();
        base + jiff::SignedDuration::from_mins(minutes)
    }

    fn put(k: &CacheKey, task: &str, minutes: i64) -> CacheWrite {
        CacheWrite::Put(CacheEntry {
            key: k.clone(),
            output: serde_json::json!({ "from": task, "text": "it's \u{e9}" }),
            task: task.into(),
            created_at: at(minutes),
        })
    }

    async fn commit(db: &mut test_db::TestDb, writes: &[CacheWrite]) {
        let tx = db.client.transaction().await.unwrap();
        write(&tx, writes).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn entries_are_kept_counted_listed_and_cleared() {
        let Some(mut db) = test_db::connect("cache").await else {
            return;
        };
        let (a, b, c) = (key("draft", "k1"), key("draft", "k2"), key("Review", "k1"));
        commit(&mut db, &[]).await;
        commit(
            &mut db,
            &[
                put(&a, "t1", 0),
                CacheWrite::Used {
                    key: a.clone(),
                    n: 1,
                    at: at(1),
                },
                put(&b, "t2", 2),
                CacheWrite::Used {
                    key: b.clone(),
                    n: 4,
                    at: at(3),
                },
                // Stored again: its uses start over.
                put(&b, "t3", 4),
                CacheWrite::Used {
                    key: a.clone(),
                    n: 2,
                    at: at(5),
                },
                put(&c, "t4", 6),
                // No such entry: nothing.
                CacheWrite::Used {
                    key: key("draft", "none"),
                    n: 1,
                    at: at(7),
                },
            ],
        )
        .await;
        let found = get(
            &db.client,
            &[b.clone(), key("x", "y"), a.clone(), b.clone()],
        )
        .await
        .unwrap();
        let tasks: Vec<Option<&str>> = found
            .iter()
            .map(|e| e.as_ref().map(|e| e.task.as_str()))
            .collect();
        assert_eq!(tasks, [Some("t3"), None, Some("t1"), Some("t3")]);
        let first = found[2].as_ref().unwrap();
        assert_eq!(first.key, a);
        assert_eq!(first.created_at, at(0), "to the nanosecond");
        assert_eq!(first.output["text"], "it's \u{e9}");
        assert_eq!(get(&db.client, &[]).await.unwrap(), []);

        let all = list(&db.client, &CacheFilter::default()).await.unwrap();
        let shown: Vec<(&str, &str, &str, u64, Option<Timestamp>)> = all
            .iter()
            .map(|i| {
                (
                    i.key.phase.as_str(),
                    i.key.key.as_str(),
                    i.task.as_str(),
                    i.uses,
                    i.last_used_at,
                )
            })
            .collect();
        assert_eq!(
            shown,
            [
                ("Review", "k1", "t4", 0, None),
                ("draft", "k2", "t3", 0, None),
                ("draft", "k1", "t1", 3, Some(at(5))),
            ]
        );
        let size = serde_json::to_string(&first.output).unwrap().len() as u64;
        assert_eq!(all[2].size, size);

        commit(
            &mut db,
            &[CacheWrite::Used {
                key: b.clone(),
                n: 1,
                at: at(8),
            }],
        )
        .await;
        let of_k1 = CacheFilter {
            phase: None,
            key: Some("k1".into()),
        };
        assert_eq!(list(&db.client, &of_k1).await.unwrap().len(), 2);
        let of_draft = CacheFilter {
            phase: Some("draft".into()),
            key: None,
        };
        let draft = list(&db.client, &of_draft).await.unwrap();
        assert_eq!((draft[0].uses, draft[0].last_used_at), (1, Some(at(8))));
        let both = CacheFilter {
            phase: Some("draft".into()),
            key: Some("k1".into()),
        };
        assert_eq!(clear(&db.client, &both).await.unwrap(), 1);
        assert_eq!(clear(&db.client, &both).await.unwrap(), 0);
        assert_eq!(clear(&db.client, &CacheFilter::default()).await.unwrap(), 2);
        assert_eq!(list(&db.client, &CacheFilter::default()).await.unwrap(), []);
        db.drop().await;
    }
}
