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
            for (id, why) in p.disabled_phases() {
                println!("  off: {id} ({why})");
            }
            for phase in &p.phases {
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
