//! What a shared step cache entry is found by: the phase, a hash of its
//! definition, and its `cache_key` rendered for a task.
//!
//! The definition covers what shapes the output: the agent (or the role's
//! agents, in order) with its kind's settings (model and routes, prompt
//! and system text or program, arguments and environment), the output
//! contract (`required_output`) and the key's own text. Settings that only
//! pace or bound calls (timeouts, retries, rate limits) are left out, so
//! changing them keeps the cache. A change to the rest misses it.

use std::fmt::Write;

use super::attempt;
use super::task::Task;
use crate::spec::Pipeline;
use crate::spec::model::{AgentKind, AgentSpec, CacheSpec};

/// A hash of phase `idx`'s definition, as 32 hex digits; the same in every
/// build and on every machine.
pub fn definition(pipeline: &Pipeline, idx: usize) -> String {
    let text = definition_text(pipeline, idx);
    // Two FNV-1a passes from different offsets: stable across Rust
    // versions, as `DefaultHasher` is not promised to be.
    let fnv = |mut h: u64| {
        for b in text.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    format!(
        "{:016x}{:016x}",
        fnv(0xcbf2_9ce4_8422_2325),
        fnv(0x6c62_272e_07bb_0142)
    )
}

/// The text the definition hash is made from.
fn definition_text(pipeline: &Pipeline, idx: usize) -> String {
    let spec = &pipeline.phases[idx];
    let mut out = String::new();
    let _ = writeln!(out, "phase {}", spec.id);
    if let Some(c) = &spec.cache {
        let _ = writeln!(out, "cache_key {:?}", c.text);
    }
    let _ = writeln!(out, "required_output {:?}", spec.required_output);
    if let Some(schema) = &spec.output_schema {
        let _ = writeln!(out, "output_schema {}", schema.document);
    }
    let agents: Vec<&str> = match &spec.role {
        Some(role) => pipeline
            .roles
            .get(role)
            .map(|a| a.iter().map(String::as_str).collect())
            .unwrap_or_default(),
        None => vec![spec.agent.as_str()],
    };
    if let Some(role) = &spec.role {
        let _ = writeln!(out, "role {role:?}");
    }
    for name in agents {
        match pipeline.agents.get(name) {
            Some(agent) => agent_text(&mut out, agent),
            None => {
                let _ = writeln!(out, "agent {name:?} unknown");
            }
        }
    }
    out
}

fn agent_text(out: &mut String, agent: &AgentSpec) {
    let _ = writeln!(out, "agent {:?}", agent.name);
    for r in &agent.routes {
        let _ = writeln!(out, "route {:?} -> {:?}", r.when_text, r.model);
    }
    let _ = match &agent.kind {
        AgentKind::Command(c) => writeln!(
            out,
            "command {:?} {:?} env {:?} model {:?}",
            c.program, c.args, c.env, c.model
        ),
        AgentKind::Http(h) => writeln!(
            out,
            "http {} {:?} at {:?} system {:?} prompt {:?} max_tokens {:?} temperature {:?} output {:?}",
            h.provider.as_str(),
            h.model,
            h.base_url,
            h.system,
            h.prompt,
            h.max_tokens,
            h.temperature,
            h.output
        ),
        AgentKind::Sim(s) => writeln!(out, "sim {s:?}"),
        // A function of the embedding program: its code is out of sight,
        // so its name, model and the version its program gives it are the
        // definition (without a version, the text is as it always was).
        AgentKind::Rust { model, version } => match version {
            None => writeln!(out, "rust model {model:?}"),
            Some(v) => writeln!(out, "rust model {model:?} version {v:?}"),
        },
    };
}

/// Phase `idx`'s key for `task`: its template filled from the task's input
/// and the outputs of its completed phases. An error names the field the
/// task lacks.
pub fn render(
    spec: &CacheSpec,
    task: &Task,
    pipeline: &Pipeline,
    idx: usize,
) -> Result<String, String> {
    let request = attempt::request(task, pipeline, idx, None);
    spec.key.render(&request).map_err(|e| {
        format!(
            "cannot make the cache key {:?}: {}; give every task that field, or key on one it has",
            spec.text,
            e.replace("the prompt uses", "the key uses")
        )
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::spec::parse;

    const FILE: &str = r#"name = "p"
[agents.a]
kind = "command"
command = ["./fetch.sh", "--fast"]
model = "m1"
[[phases]]
id = "fetch"
agent = "a"
cache_key = "{{input.q}}"
timeout = "10s"
"#;

    fn hash(text: &str) -> String {
        definition(&parse(text, Path::new("/p/p.toml")).unwrap(), 0)
    }

    #[test]
    fn the_definition_hash_is_stable_and_follows_what_shapes_the_output() {
        let base = hash(FILE);
        assert_eq!(base.len(), 32);
        assert_eq!(base, hash(FILE), "the same file, the same hash");
        // Pacing is not part of it.
        assert_eq!(base, hash(&FILE.replace("\"10s\"", "\"20s\"")));
        // The program, its model, the contract and the key are.
        for changed in [
            FILE.replace("--fast", "--slow"),
            FILE.replace("\"m1\"", "\"m2\""),
            FILE.replace("timeout", "required_output = [\"rows\"]\ntimeout"),
            FILE.replace("{{input.q}}", "{{input.q}}-v2"),
        ] {
            assert_ne!(base, hash(&changed), "{changed}");
        }
    }

    #[test]
    fn a_rust_agent_s_version_is_part_of_the_definition() {
        let rust = FILE.replace(
            "kind = \"command\"\ncommand = [\"./fetch.sh\", \"--fast\"]",
            "kind = \"rust\"",
        );
        let p = parse(&rust, Path::new("/p/p.toml")).unwrap();
        // Without a version, the definition reads as it always has, so the
        // entries stored before versions existed are still found.
        assert!(definition_text(&p, 0).contains("rust model Some(\"m1\")\n"));
        let unversioned = hash(&rust);
        let v1 = hash(&rust.replace("model = \"m1\"", "model = \"m1\"\nversion = \"1\""));
        let v2 = hash(&rust.replace("model = \"m1\"", "model = \"m1\"\nversion = \"2\""));
        assert_ne!(unversioned, v1);
        assert_ne!(v1, v2);
    }

    #[test]
    fn a_key_is_rendered_from_the_task_or_names_what_it_lacks() {
        let p = parse(FILE, Path::new("/p/p.toml")).unwrap();
        let spec = p.phases[0].cache.as_ref().unwrap();
        let at = jiff::Timestamp::UNIX_EPOCH;
        let task = Task::new("t1".into(), json!({"q": "cats"}), &["fetch".into()], at, 1);
        assert_eq!(render(spec, &task, &p, 0).unwrap(), "cats");
        let task = Task::new("t2".into(), json!({}), &["fetch".into()], at, 1);
        let e = render(spec, &task, &p, 0).unwrap_err();
        assert!(
            e.contains("cannot make the cache key \"{{input.q}}\": the key uses input.q, which task t2 does not have"),
            "{e}"
        );
    }
}
