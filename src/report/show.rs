//! `baton show TASK`: everything about one task.

use std::fmt::Write;

use super::format::{between, duration, symbol, thousands};
use crate::engine::Task;
use crate::engine::event::AttemptOutcome;

/// Items of a `for_each` phase's output shown in text.
pub const OUTPUT_ITEMS_SHOWN: usize = 5;

pub fn text(task: &Task) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "task {}  {} {}",
        task.id,
        symbol(task.state),
        task.state
    );
    let end = task.finished_at.unwrap_or(task.updated_at);
    let _ = writeln!(out, "  created   {}", task.created_at);
    let _ = writeln!(
        out,
        "  elapsed   {}",
        duration(between(task.created_at, end))
    );
    let _ = writeln!(out, "  tokens    {}", thousands(task.tokens()));
    let _ = writeln!(out, "  cost      {}", task.cost());
    let raise = &task.budget;
    if !raise.is_none() {
        let mut parts = Vec::new();
        if let Some(u) = raise.usd {
            parts.push(format!("${u:.4}"));
        }
        if let Some(t) = raise.tokens {
            parts.push(format!("{} tokens", thousands(t)));
        }
        if raise.accept_unknown > 0 {
            parts.push(format!(
                "{} attempt(s) of unknown cost accepted",
                raise.accept_unknown
            ));
        }
        let _ = writeln!(out, "  budget    raised to {}", parts.join(" · "));
    }
    if let Some(reason) = &task.finish_reason {
        let _ = writeln!(out, "  reason    {reason}");
    }
    let _ = writeln!(out, "  input     {}", compact(&task.input, 200));
    for h in &task.holds {
        let _ = writeln!(
            out,
            "  waiting   {:?} at {} since {}: {}",
            h.kind, h.phase, h.since, h.reason
        );
        if let Some(s) = h.escalation.severity {
            let _ = writeln!(out, "  severity  {s}");
        }
        for tried in &h.escalation.attempted {
            let _ = writeln!(out, "  tried     {tried}");
        }
    }
    for p in &task.phases {
        let cached = if p.cached.is_some() { " (cached)" } else { "" };
        let _ = writeln!(out, "\nphase {}  {}{cached}", p.id, p.state);
        if let Some(hit) = &p.cached {
            let _ = writeln!(
                out,
                "  cached    key {:?} · from task {} · stored {}",
                hit.key, hit.from_task, hit.stored_at
            );
        }
        if let (Some(s), Some(f)) = (p.started_at, p.finished_at) {
            let _ = writeln!(out, "  duration  {}", duration(between(s, f)));
        }
        let _ = writeln!(
            out,
            "  tokens    {}   cost {}",
            thousands(p.tokens()),
            p.cost()
        );
        if let Some(r) = &p.skip_reason {
            let _ = writeln!(out, "  skipped   {r}");
        }
        if let Some(e) = &p.error {
            let _ = writeln!(out, "  error     {e}");
        }
        if let Some(items) = super::item_progress::ItemProgress::of(p) {
            let _ = writeln!(out, "  items     {}", items.line());
            for line in items.failure_lines() {
                let _ = writeln!(out, "  failed    {line}");
            }
        }
        if let Some(f) = &p.feedback {
            let _ = writeln!(out, "  feedback  {f}");
        }
        if p.approved {
            let _ = writeln!(out, "  approved  yes");
        }
        if p.rounds > 0 {
            let _ = writeln!(
                out,
                "  rounds    {} (times its agent sent the task back)",
                p.rounds
            );
        }
        if let Some(due) = p.retry_due {
            let _ = writeln!(out, "  next try  {due}");
        }
        for a in &p.attempts {
            let model = a
                .model
                .as_deref()
                .or(a.usage.as_ref().and_then(|u| u.model.as_deref()))
                .unwrap_or("-");
            let outcome = match &a.outcome {
                None => "running".to_string(),
                Some(AttemptOutcome::Succeeded) => "succeeded".to_string(),
                Some(AttemptOutcome::Failed { class, message }) => {
                    format!("failed [{}] {message}", class.as_str())
                }
                Some(AttemptOutcome::Blocked { reason, escalation }) => {
                    escalation.after(format!("blocked: {reason}"))
                }
                Some(AttemptOutcome::ReviewRequested { reason, escalation }) => {
                    escalation.after(format!("asked for review: {reason}"))
                }
                Some(AttemptOutcome::SentBack { to, feedback }) => {
                    format!("sent the task back to {to}: {feedback}")
                }
                Some(AttemptOutcome::Interrupted) => "interrupted (ran again)".to_string(),
                Some(AttemptOutcome::Cancelled) => "cancelled".to_string(),
            };
            let tokens = a
                .usage
                .as_ref()
                .map(|u| thousands(u.tokens()))
                .unwrap_or_else(|| "-".into());
            let cost = match (&a.usage, a.cost_usd) {
                (_, Some(c)) => format!("${c:.4}"),
                (Some(_), None) => "unknown".into(),
                (None, None) => "-".into(),
            };
            let took = a
                .duration_ms
                .map(|ms| duration(std::time::Duration::from_millis(ms)))
                .unwrap_or_else(|| "-".into());
            let _ = writeln!(
                out,
                "  #{} {} ({}) {}  {} tok  {}  {}",
                a.number, a.agent, model, outcome, tokens, cost, took
            );
            if let Some(f) = &a.feedback {
                let _ = writeln!(out, "     ran with feedback: {f}");
            }
            let mut chosen = Vec::new();
            if let Some(role) = &a.role {
                chosen.push(format!("role {role}"));
            }
            if let Some(route) = &a.route {
                chosen.push(format!("model by {}", route.describe()));
            }
            if !chosen.is_empty() {
                let _ = writeln!(out, "     {}", chosen.join(" · "));
            }
            if let Some(u) = a
                .usage
                .as_ref()
                .filter(|u| u.cache_read_tokens + u.cache_write_tokens > 0)
            {
                let _ = writeln!(
                    out,
                    "     tokens: {} in, {} cache read, {} cache write, {} out",
                    thousands(u.input_tokens),
                    thousands(u.cache_read_tokens),
                    thousands(u.cache_write_tokens),
                    thousands(u.output_tokens)
                );
            }
            if let Some(h) = &a.http {
                let _ = writeln!(out, "     {}", h.describe());
            }
            if let Some(ms) = a.retry_after_ms {
                let _ = writeln!(
                    out,
                    "     the service asked to wait {}",
                    duration(std::time::Duration::from_millis(ms))
                );
            }
            if let Some(d) = a.retry_delay_ms {
                let _ = writeln!(
                    out,
                    "     retry after {}",
                    duration(std::time::Duration::from_millis(d))
                );
            }
            for line in &a.trace {
                let _ = writeln!(out, "     | {line}");
            }
        }
        if let Some(o) = &p.output {
            // A `for_each` phase's output is every item's: the first few
            // are shown, `show --json` gives them all.
            let (pretty, more) = match o {
                serde_json::Value::Array(items)
                    if p.items.is_some() && items.len() > OUTPUT_ITEMS_SHOWN =>
                {
                    (
                        serde_json::to_string_pretty(&items[..OUTPUT_ITEMS_SHOWN]),
                        items.len() - OUTPUT_ITEMS_SHOWN,
                    )
                }
                _ => (serde_json::to_string_pretty(o), 0),
            };
            let pretty = pretty.unwrap_or_default();
            let _ = writeln!(out, "  output");
            for line in pretty.lines() {
                let _ = writeln!(out, "    {line}");
            }
            if more > 0 {
                let _ = writeln!(
                    out,
                    "    … and {} more (baton show {} --json gives them all)",
                    thousands(more as u64),
                    task.id
                );
            }
        }
    }
    if !task.decisions.is_empty() {
        let _ = writeln!(out, "\ndecisions");
        for d in &task.decisions {
            let phase = d
                .phase
                .as_deref()
                .map(|p| format!(" on {p}"))
                .unwrap_or_default();
            let note = d
                .note
                .as_deref()
                .map(|n| format!(": {n}"))
                .unwrap_or_default();
            // A send-back's feedback is what the phase ran again with.
            let action = match &d.action {
                crate::engine::event::Action::SendBack { feedback } => {
                    format!("send back with “{feedback}”")
                }
                other => other.name().to_string(),
            };
            let _ = writeln!(out, "  {} {action}{} by {}{}", d.at, phase, d.by, note);
        }
    }
    out
}

fn compact(v: &serde_json::Value, max: usize) -> String {
    let s = v.to_string();
    if s.chars().count() <= max {
        s
    } else {
        let cut: String = s.chars().take(max).collect();
        format!("{cut}…")
    }
}
