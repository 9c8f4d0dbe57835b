//! baton inside a Rust program with no terminal: a pipeline built in code,
//! two Rust agents, and the engine's events printed as JSON lines while it
//! runs. Tasks the checker is unsure of wait for a person; the run ends when
//! nothing more can happen without one, with the exit status `baton run`
//! would give (3: a task waits for a person).
//!
//! ```sh
//! cargo run --example embed_headless | jq -c '{task, event}'
//! ```

use std::path::PathBuf;

use baton::{Agents, Engine, EngineOptions, InputTask, PhaseBuilder, Pipeline, Reply, agent_fn};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state_dir = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("baton-embed-headless-{}", std::process::id())),
    };
    let pipeline = Pipeline::builder("invoice-check")
        .rust_agent("extract")
        .rust_agent("check")
        .phase(PhaseBuilder::new("extract", "extract").required_output(["total"]))
        .phase(PhaseBuilder::new("check", "check"))
        .build()?;
    let agents = Agents::new()
        .with(
            "extract",
            agent_fn(|req| async move {
                let lines: Vec<f64> = req.task.input["lines"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|v| v.as_f64()).collect())
                    .unwrap_or_default();
                Reply::output(json!({"total": lines.iter().sum::<f64>(), "lines": lines.len()}))
            }),
        )
        .with(
            "check",
            agent_fn(|req| async move {
                let total = req.outputs["extract"]["total"].as_f64().unwrap_or(0.0);
                let stated = req.task.input["stated_total"].as_f64().unwrap_or(0.0);
                if (total - stated).abs() < 0.005 {
                    Reply::output(json!({"matches": true}))
                } else {
                    Reply::review(
                        format!("lines add up to {total:.2}, the invoice says {stated:.2}"),
                        json!({"matches": false}),
                    )
                }
            }),
        );
    let mut engine =
        Engine::open_with_agents(pipeline, &state_dir, EngineOptions::default(), agents)?;
    let mut events = engine.handle().subscribe();
    engine
        .submit(vec![
            InputTask::new(
                "INV-1",
                json!({"lines": [10.0, 20.5], "stated_total": 30.5}),
            ),
            InputTask::new("INV-2", json!({"lines": [99.99], "stated_total": 100.0})),
            InputTask::new(
                "INV-3",
                json!({"lines": [1.0, 2.0, 3.0], "stated_total": 6.0}),
            ),
        ])
        .await?;
    let run = tokio::spawn(engine.run());
    // Every event as it becomes durable, until the engine ends and the stream closes.
    loop {
        match events.recv().await {
            Ok(event) => println!("{}", serde_json::to_string(&*event)?),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                eprintln!("{n} events went by too fast to print; they are in the state folder");
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
        }
    }
    let summary = run.await??;
    eprintln!("state in {}", state_dir.display());
    std::process::exit(summary.exit_code());
}
