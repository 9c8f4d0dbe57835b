//! The step cache's table: entries found by phase, definition and key.

use rusqlite::{Connection, OptionalExtension, params};

use super::read::{json_err, parse_ts, ts};
use crate::store::cache::{CacheEntry, CacheFilter, CacheInfo, CacheKey, CacheWrite};

/// The first schema version with the `step_cache` table.
pub const CACHE_VERSION: i64 = 8;

/// The entry at each key, in the order asked.
pub fn get(conn: &Connection, keys: &[CacheKey]) -> rusqlite::Result<Vec<Option<CacheEntry>>> {
    let mut stmt = conn.prepare_cached(
        "SELECT output, task, created_at FROM step_cache \
         WHERE phase = ?1 AND definition = ?2 AND key = ?3",
    )?;
    let mut out = Vec::with_capacity(keys.len());
    for k in keys {
        let found: Option<(String, String, String)> = stmt
            .query_row(params![k.phase, k.definition, k.key], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        out.push(match found {
            None => None,
            Some((output, task, created_at)) => Some(CacheEntry {
                key: k.clone(),
                output: serde_json::from_str(&output).map_err(json_err)?,
                task,
                created_at: parse_ts(&created_at)?,
            }),
        });
    }
    Ok(out)
}

/// Entries matching `filter`, by phase, then newest first.
pub fn list(conn: &Connection, filter: &CacheFilter) -> rusqlite::Result<Vec<CacheInfo>> {
    let mut stmt = conn.prepare_cached(
        "SELECT phase, definition, key, task, created_at, uses, last_used_at, size \
         FROM step_cache WHERE (?1 IS NULL OR phase = ?1) AND (?2 IS NULL OR key = ?2) \
         ORDER BY phase, created_at DESC, key",
    )?;
    let rows = stmt.query_map(params![filter.phase, filter.key], |r| {
        let created: String = r.get(4)?;
        let last: Option<String> = r.get(6)?;
        Ok(CacheInfo {
            key: CacheKey {
                phase: r.get(0)?,
                definition: r.get(1)?,
                key: r.get(2)?,
            },
            task: r.get(3)?,
            created_at: parse_ts(&created)?,
            uses: r.get::<_, i64>(5)?.max(0) as u64,
            last_used_at: last.as_deref().map(parse_ts).transpose()?,
            size: r.get::<_, i64>(7)?.max(0) as u64,
        })
    })?;
    rows.collect()
}

/// Applies the engine's changes, inside the writer's transaction.
pub fn write(conn: &Connection, writes: &[CacheWrite]) -> rusqlite::Result<()> {
    let mut put = conn.prepare_cached(
        "INSERT INTO step_cache(phase, definition, key, output, size, task, created_at, uses) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0) \
         ON CONFLICT(phase, definition, key) DO UPDATE SET output = excluded.output, \
           size = excluded.size, task = excluded.task, created_at = excluded.created_at, \
           uses = 0, last_used_at = NULL",
    )?;
    let mut used = conn.prepare_cached(
        "UPDATE step_cache SET uses = uses + ?4, last_used_at = ?5 \
         WHERE phase = ?1 AND definition = ?2 AND key = ?3",
    )?;
    for w in writes {
        match w {
            CacheWrite::Put(e) => {
                let output = serde_json::to_string(&e.output).map_err(json_err)?;
                put.execute(params![
                    e.key.phase,
                    e.key.definition,
                    e.key.key,
                    output,
                    output.len() as i64,
                    e.task,
                    ts(e.created_at),
                ])?;
            }
            CacheWrite::Used { key, n, at } => {
                used.execute(params![
                    key.phase,
                    key.definition,
                    key.key,
                    (*n).min(i64::MAX as u64) as i64,
                    ts(*at),
                ])?;
            }
        }
    }
    Ok(())
}

/// Removes the entries matching `filter`; says how many.
pub fn clear(conn: &Connection, filter: &CacheFilter) -> rusqlite::Result<u64> {
    let n = conn.execute(
        "DELETE FROM step_cache WHERE (?1 IS NULL OR phase = ?1) AND (?2 IS NULL OR key = ?2)",
        params![filter.phase, filter.key],
    )?;
    Ok(n as u64)
}
