//! `baton stats` as text: a table of phases with their agents and models
//! under each, then the projection to finish and the budget. Fits 80
//! columns: a name too long for its column gets a line of its own.

use std::fmt::Write;
use std::time::Duration;

use super::format::duration;
use super::stats::{Figures, StatsReport};

/// Width of the name column.
const NAME: usize = 20;

/// The name for the name column; one too long is written on a line of
/// its own first and the column left empty.
fn name_column(out: &mut String, name: &str) -> String {
    if name.chars().count() <= NAME {
        return name.to_string();
    }
    let _ = writeln!(out, "{name}");
    String::new()
}

/// 1234 -> "1.2k", 5_600_000 -> "5.6M".
fn compact(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.1}G", n as f64 / 1e9),
    }
}

fn usd(v: f64) -> String {
    format!("${v:.4}")
}

fn opt_usd(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), usd)
}

fn ms(v: Option<u64>) -> String {
    v.map_or_else(|| "-".to_string(), |m| duration(Duration::from_millis(m)))
}

/// Dollars, with "+?" when some attempts' cost is unknown, "?" when all are.
fn dollars(f: &Figures) -> String {
    let known = usd(f.cost_usd);
    match (f.cost_unknown, f.usd_per_attempt) {
        (0, _) => known,
        (_, None) => "?".to_string(),
        _ => format!("{known}+?"),
    }
}

/// Dollars per completion, "?" when no attempt's cost is known.
fn per_completed(f: &Figures) -> String {
    match (f.usd_per_attempt, f.usd_per_completed) {
        (None, _) if f.cost_unknown > 0 => "?".to_string(),
        (_, v) => opt_usd(v),
    }
}

fn row(out: &mut String, name: &str, f: &Figures) {
    let name = name_column(out, name);
    let _ = writeln!(
        out,
        "{name:<NAME$} {:>6} {:>6} {:>5} {:>6} {:>6} {:>6} {:>9} {:>8}",
        f.attempts,
        f.succeeded,
        f.failed_total,
        ms(f.duration_ms.p50),
        ms(f.duration_ms.p95),
        compact(f.tokens.total),
        dollars(f),
        per_completed(f),
    );
}

/// "failed: 3 retryable, 1 fatal · 2 interrupted", or nothing.
fn breakdown(f: &Figures) -> Option<String> {
    let failed: Vec<String> = f
        .failed
        .iter()
        .filter(|(_, n)| *n > 0)
        .map(|(c, n)| format!("{n} {}", c.as_str()))
        .collect();
    let mut parts = Vec::new();
    if !failed.is_empty() {
        parts.push(format!("failed: {}", failed.join(", ")));
    }
    for (n, what) in [
        (f.blocked, "blocked"),
        (f.interrupted, "interrupted"),
        (f.cancelled, "cancelled"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {what}"));
        }
    }
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// " (42% of the budget)".
fn share(total: f64, budget: f64) -> String {
    if budget > 0.0 {
        format!(" ({:.0}%)", total / budget * 100.0)
    } else {
        String::new()
    }
}

pub fn text(r: &StatsReport) -> String {
    let mut out = String::new();
    let t = &r.tasks;
    let place = r.store.as_deref().unwrap_or(&r.state_dir);
    let _ = writeln!(out, "pipeline   {}  ({place})", r.pipeline);
    let _ = writeln!(
        out,
        "tasks      {}: {} completed, {} failed, {} cancelled, {} not done",
        t.total, t.completed, t.failed, t.cancelled, t.not_done
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "{:<NAME$} {:>6} {:>6} {:>5} {:>6} {:>6} {:>6} {:>9} {:>8}",
        "PHASE / AGENT·MODEL", "TRIES", "OK", "FAIL", "P50", "P95", "TOKENS", "DOLLARS", "$/DONE"
    );
    for p in &r.phases {
        row(&mut out, &p.phase, &p.figures);
        let alone = p.by_agent.len() == 1;
        for a in &p.by_agent {
            let agent = if a.agent.is_empty() { "?" } else { &a.agent };
            let model = if a.model.is_empty() { "?" } else { &a.model };
            let name = format!("  {agent} · {model}");
            // One agent and model: the phase's figures are theirs.
            if alone {
                let _ = writeln!(out, "{name}");
            } else {
                row(&mut out, &name, &a.figures);
            }
            if let Some(b) = breakdown(&a.figures) {
                let _ = writeln!(out, "    {b}");
            }
        }
    }
    if r.phases.iter().any(|p| p.figures.cost_unknown > 0) {
        let _ = writeln!(
            out,
            "+? some attempts have no price: their dollars are unknown, the sums lower bounds"
        );
    }
    let pr = &r.projection;
    let _ = writeln!(out);
    let _ = writeln!(out, "TO FINISH ({} tasks not done)", pr.tasks_not_done);
    let _ = writeln!(
        out,
        "{:<NAME$} {:>6} {:>9} {:>10} {:>11} {:>11}",
        "PHASE", "LEFT", "ATTEMPTS", "$/ATTEMPT", "P50", "P95"
    );
    for p in &pr.phases {
        let name = name_column(&mut out, &p.phase);
        let attempts = p
            .attempts_expected
            .map_or_else(|| "-".to_string(), |a| format!("{a:.1}"));
        let _ = writeln!(
            out,
            "{name:<NAME$} {:>6} {:>9} {:>10} {:>11} {:>11}",
            p.tasks_left,
            attempts,
            opt_usd(p.usd_per_attempt),
            opt_usd(p.p50_usd),
            opt_usd(p.p95_usd),
        );
        if let Some(why) = &p.no_basis {
            let _ = writeln!(out, "    no estimate: {why}");
        }
    }
    let _ = writeln!(
        out,
        "{:<NAME$} {:>6} {:>9} {:>10} {:>11} {:>11}",
        "all",
        "",
        "",
        "",
        usd(pr.p50_usd),
        usd(pr.p95_usd)
    );
    if !pr.complete {
        let _ = writeln!(
            out,
            "    at least: the phases with no estimate are left out"
        );
    }
    let s = &r.spend;
    let _ = write!(out, "spent          {}", usd(s.spent_usd));
    if s.cost_unknown > 0 {
        let _ = write!(out, " and {} attempt(s) of unknown cost", s.cost_unknown);
    }
    let _ = writeln!(out);
    let _ = match s.budget_usd {
        Some(b) => writeln!(out, "run budget     {}", usd(b)),
        None => writeln!(out, "run budget     none"),
    };
    let (p50, p95) = (s.p50_total_usd, s.p95_total_usd);
    let _ = match s.budget_usd {
        Some(b) => writeln!(
            out,
            "at the finish  p50 {}{}, p95 {}{}",
            usd(p50),
            share(p50, b),
            usd(p95),
            share(p95, b)
        ),
        None => writeln!(out, "at the finish  p50 {}, p95 {}", usd(p50), usd(p95)),
    };
    let _ = writeln!(
        out,
        "(each attempt left costs like a finished one of its phase; p95 adds the spread)"
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_names_get_a_line_and_counts_are_short() {
        let mut out = String::new();
        assert_eq!(name_column(&mut out, "short"), "short");
        assert_eq!(out, "");
        assert_eq!(name_column(&mut out, "  sim · claude-sonnet-4-5"), "");
        assert_eq!(out, "  sim · claude-sonnet-4-5\n");
        assert_eq!(compact(999), "999");
        assert_eq!(compact(12_345), "12.3k");
        assert_eq!(compact(5_600_000), "5.6M");
    }
}
