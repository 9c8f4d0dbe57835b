//! `baton validate FILE`.

use std::path::Path;

use baton::spec::{self, Pipeline};

pub fn run(file: &Path, switches: &super::run::Switches) -> i32 {
    let loaded = spec::load(file).and_then(|mut p| {
        p.switch_off(&switches.disable, &switches.only)
            .map_err(|e| spec::SpecError {
                file: file.to_path_buf(),
                problems: e.problems,
            })?;
        Ok(p)
    });
    match loaded {
        Ok(p) => {
            println!(
                "ok: {} — pipeline \"{}\", {} phase(s), {} agent(s)",
                file.display(),
                p.name,
                p.phases.len(),
                p.agents.len()
            );
            for (i, wave) in waves(&p).iter().enumerate() {
                println!("  wave {}: {}", i + 1, wave.join(", "));
            }
            for phase in &p.phases {
                let Some(f) = &phase.fan_out else { continue };
                let chain = f
                    .chain_prev
                    .map(|prev| format!(", after {} in its chain", p.phases[prev].id))
                    .unwrap_or_default();
                let bound = f
                    .max_items_in_flight
                    .map(|n| format!("; at most {n} items in flight"))
                    .unwrap_or_default();
                let on_failure = match f.on_item_failure {
                    spec::fan_out::ItemFailure::Stop => "stop",
                    spec::fan_out::ItemFailure::Continue => "continue",
                };
                println!(
                    "  for each: {} over {}{chain} (on item failure: {on_failure}{bound})",
                    phase.id, f.text
                );
            }
            for (id, why) in p.disabled_phases() {
                println!("  off: {id} ({why})");
            }
            for phase in &p.phases {
                if let Some(c) = &phase.cache {
                    let kept = c.ttl.map_or("until cleared".to_string(), show_ttl);
                    println!("  cached: {} by {}, kept {kept}", phase.id, c.text);
                }
                if let Some(schema) = &phase.output_schema {
                    println!("  schema: {} ({})", phase.id, schema.label);
                }
            }
            for (whose, limits) in [
                ("each task", p.defaults.task_budget),
                ("the run", p.run_budget),
            ] {
                if !limits.is_none() {
                    println!("  budget of {whose}: {}", show_limits(limits));
                }
            }
            0
        }
        Err(e) => {
            eprintln!("{e}");
            2
        }
    }
}

fn show_limits(l: spec::model::BudgetLimits) -> String {
    let mut parts = Vec::new();
    if let Some(u) = l.usd {
        parts.push(format!("${u:.2}"));
    }
    if let Some(t) = l.tokens {
        parts.push(format!("{t} tokens"));
    }
    parts.join(" and ")
}

/// A `cache_ttl` as a file would write it: whole days when it is.
fn show_ttl(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    let unit = [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1_000, "s"),
    ]
    .into_iter()
    .find(|(n, _)| ms.is_multiple_of(*n));
    match unit {
        Some((n, u)) => format!("{}{u}", ms / n),
        None => format!("{ms}ms"),
    }
}

/// Phases grouped by how deep their dependencies go: each wave can run
/// once the waves before it are done.
pub fn waves(p: &Pipeline) -> Vec<Vec<String>> {
    let mut depth = vec![0usize; p.phases.len()];
    // Validation rules out cycles, so n rounds of relaxation settle every depth.
    for _ in 0..p.phases.len() {
        for (i, phase) in p.phases.iter().enumerate() {
            depth[i] = phase.after.iter().map(|&d| depth[d] + 1).max().unwrap_or(0);
        }
    }
    let mut waves = vec![Vec::new(); depth.iter().max().map_or(0, |d| d + 1)];
    for (i, phase) in p.phases.iter().enumerate() {
        waves[depth[i]].push(phase.id.clone());
    }
    waves
}
