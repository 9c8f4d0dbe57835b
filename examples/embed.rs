//! baton inside a Rust program: two agents written as Rust functions, a
//! pipeline built in code, and the operator's dashboard in this process.
//! The triage agent asks a person to look when it is not confident; approve
//! with `a` (or send back with `f`) and the task goes on. `q` stops the run.
//!
//! ```sh
//! cargo run --example embed                 # state in a fresh temporary folder
//! cargo run --example embed -- ./my-state   # or where you say
//! ```
//!
//! While it runs, `baton attach --state-dir DIR` joins from another terminal
//! (the example serves the control socket).

use std::path::PathBuf;

use baton::{
    Agents, Answer, ControlSocket, Dashboard, Engine, EngineOptions, InputTask, PhaseBuilder,
    Pipeline, Reply, agent_fn,
};
use serde_json::json;

/// Support tickets: the ones with vague text make triage unsure.
const TICKETS: &[(&str, &str)] = &[
    ("SUP-1", "Password reset email never arrives"),
    ("SUP-2", "It is broken"),
    ("SUP-3", "Invoice shows the wrong VAT rate for Germany"),
    ("SUP-4", "Export to CSV drops the last row"),
    ("SUP-5", "help"),
    ("SUP-6", "Dark mode resets after every login"),
];

/// How sure triage is of a ticket: vague, short text is unsure.
fn confidence(text: &str) -> f64 {
    let words = text.split_whitespace().count() as f64;
    (words / 6.0).min(1.0)
}

fn agents() -> Agents {
    let triage = agent_fn(|req| async move {
        let text = req.task.input["text"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let confidence = confidence(&text);
        let area = if text.to_lowercase().contains("invoice") {
            "billing"
        } else {
            "product"
        };
        let output = json!({"area": area, "confidence": confidence});
        let reply = if confidence < 0.6 && req.feedback.is_none() {
            Reply::review(
                format!("low confidence ({confidence:.2}): is this {area}?"),
                output,
            )
        } else {
            Reply::output(output)
        };
        // Zero-latency agents still report what a model would have spent.
        Answer::from(reply).with_usage("claude-haiku-4-5", 120, 40)
    });
    let writer = agent_fn(|req| async move {
        let area = req.outputs["triage"]["area"]
            .as_str()
            .unwrap_or("product")
            .to_string();
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        Reply::output(json!({
            "reply": format!("Thanks for reporting {}: our {area} team is on it.", req.task.id)
        }))
    })
    .model("house-writer-1");
    Agents::new().with("triage", triage).with("writer", writer)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state_dir = match std::env::args().nth(1) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::temp_dir().join(format!("baton-embed-{}", std::process::id())),
    };
    let pipeline = Pipeline::builder("support-desk")
        .rust_agent("triage")
        .rust_agent("writer")
        .concurrency(4)
        .phase(PhaseBuilder::new("triage", "triage").required_output(["area"]))
        .phase(PhaseBuilder::new("respond", "writer"))
        .build()?;
    let mut engine =
        Engine::open_with_agents(pipeline, &state_dir, EngineOptions::default(), agents())?;
    let tasks = TICKETS
        .iter()
        .map(|(id, text)| InputTask::new(*id, json!({ "text": text })))
        .collect();
    engine.submit(tasks).await?;
    // Served while the dashboard runs: `baton attach` and `baton approve` reach it.
    let socket = ControlSocket::start(&state_dir, engine.handle()).await?;
    let summary = Dashboard::new().run(engine).await?;
    drop(socket);
    eprintln!(
        "state in {}: `baton list --state-dir {0}` shows the tasks",
        state_dir.display()
    );
    std::process::exit(summary.exit_code());
}
