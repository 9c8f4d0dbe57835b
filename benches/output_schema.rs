//! The cost of `output_schema`: loading a pipeline whose phase names a
//! schema file (read and compiled once per load), checking an output that
//! fits it, and writing the message for one that breaks it in many places.
//! Each output has GROUPS lighting groups (120 unless given).
//!
//! cargo bench --bench output_schema [-- GROUPS]

use std::time::{Duration, Instant};

use baton::engine::contract;
use serde_json::{Value, json};

const SCHEMA: &str = r#"{
  "type": "object",
  "required": ["groups"],
  "properties": {
    "groups": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["id", "intensity"],
        "properties": {
          "id": {"type": "string"},
          "intensity": {"type": "number", "minimum": 0, "maximum": 1}
        }
      }
    }
  }
}"#;

/// Runs `f` for about a second; gives calls per second.
fn rate(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < Duration::from_secs(1) {
        f();
        n += 1;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn output(groups: usize, intensity: f64) -> Value {
    let groups: Vec<Value> = (0..groups)
        .map(|i| json!({"id": format!("g{i}"), "intensity": intensity}))
        .collect();
    json!({ "groups": groups })
}

fn main() {
    let groups: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(120);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("schemas")).expect("folder");
    std::fs::write(dir.path().join("schemas/lighting.json"), SCHEMA).expect("schema");
    let file = dir.path().join("p.toml");
    std::fs::write(
        &file,
        "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"lighting\"\nagent = \"a\"\noutput_schema = \"schemas/lighting.json\"\n",
    )
    .expect("pipeline");

    let loads = rate(|| {
        baton::spec::load(&file).expect("loads");
    });
    let pipeline = baton::spec::load(&file).expect("loads");
    let phase = &pipeline.phases[0];
    let good = output(groups, 0.5);
    let bad = output(groups, 1.4);
    assert!(contract::broken(phase, &good).is_none());
    let message = contract::broken(phase, &bad).expect("breaks");
    let checks = rate(|| assert!(contract::broken(phase, &good).is_none()));
    let failures = rate(|| assert!(contract::broken(phase, &bad).is_some()));
    println!("pipeline loads (schema read and compiled): {loads:>10.0}/s");
    println!("outputs of {groups} groups that fit:        {checks:>10.0}/s");
    println!("outputs of {groups} groups that break it:   {failures:>10.0}/s");
    println!(
        "message for {groups} broken groups: {} characters",
        message.len()
    );
}
