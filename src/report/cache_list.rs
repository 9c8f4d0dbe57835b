//! `baton cache list`: the step cache's entries as a table.

use std::fmt::Write;

use jiff::Timestamp;

use super::format::{between, duration, thousands};
use crate::store::cache::CacheInfo;

/// Keys longer than this are cut, with `…`; `--json` gives them whole.
const KEY_CHARS: usize = 40;

/// One row per entry (key, phase, age, uses, size, the task that made it)
/// and a total line; `now` gives the ages.
pub fn text(entries: &[CacheInfo], now: Timestamp, location: &str) -> String {
    if entries.is_empty() {
        return format!("no step cache entries in {location}\n");
    }
    let rows: Vec<[String; 6]> = entries
        .iter()
        .map(|e| {
            [
                cut(&e.key.key),
                e.key.phase.clone(),
                duration(between(e.created_at, now)),
                thousands(e.uses),
                size(e.size),
                e.task.clone(),
            ]
        })
        .collect();
    let head = ["KEY", "PHASE", "AGE", "USES", "SIZE", "FROM TASK"];
    let mut widths = head.map(|h| h.chars().count());
    for r in &rows {
        for (w, cell) in widths.iter_mut().zip(r) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let line = |out: &mut String, cells: [&str; 6]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Numbers line up on the right.
            let _ = match i {
                3 | 4 => write!(l, "{cell:>w$}  "),
                _ => write!(l, "{cell:<w$}  "),
            };
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut out, head);
    for r in &rows {
        line(&mut out, [&r[0], &r[1], &r[2], &r[3], &r[4], &r[5]]);
    }
    let uses: u64 = entries.iter().map(|e| e.uses).fold(0, u64::saturating_add);
    let bytes: u64 = entries.iter().map(|e| e.size).fold(0, u64::saturating_add);
    let _ = writeln!(
        out,
        "{} entr{} · {} reuse{} · {}",
        thousands(entries.len() as u64),
        if entries.len() == 1 { "y" } else { "ies" },
        thousands(uses),
        if uses == 1 { "" } else { "s" },
        size(bytes)
    );
    out
}

fn cut(key: &str) -> String {
    match key.char_indices().nth(KEY_CHARS) {
        Some((at, _)) => format!("{}…", &key[..at]),
        None => key.to_string(),
    }
}

/// Bytes as "512 B", "1.5 KB", "2.0 MB".
fn size(n: u64) -> String {
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KB", n as f64 / 1024.0),
        _ => format!("{:.1} MB", n as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::cache::CacheKey;

    fn entry(key: &str, uses: u64, size: u64, age_s: i64) -> CacheInfo {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        CacheInfo {
            key: CacheKey {
                phase: "fetch".into(),
                definition: "d".into(),
                key: key.into(),
            },
            task: "t1".into(),
            created_at: now - jiff::SignedDuration::from_secs(age_s),
            uses,
            last_used_at: None,
            size,
        }
    }

    #[test]
    fn a_row_per_entry_and_a_total() {
        let now: Timestamp = "2026-01-01T12:00:00Z".parse().unwrap();
        let long = "q".repeat(50);
        let shown = text(
            &[entry("cats", 4, 2048, 125), entry(&long, 1, 10, 5)],
            now,
            "state",
        );
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(
            lines[0],
            "KEY                                        PHASE  AGE    USES    SIZE  FROM TASK"
        );
        assert_eq!(
            lines[1],
            "cats                                       fetch  2m05s     4  2.0 KB  t1"
        );
        assert!(
            lines[2].starts_with(&format!("{}… ", "q".repeat(40))),
            "{shown}"
        );
        assert_eq!(lines[3], "2 entries · 5 reuses · 2.0 KB");
        assert_eq!(text(&[], now, "state"), "no step cache entries in state\n");
    }
}
