//! Numbered tasks submitted to an engine in chunks, as `baton run --input`
//! reads a large file: the seed the engine and the idle-client benches share.

use baton::engine::Engine;
use baton::spec::input::InputTask;
use serde_json::json;

/// Tasks `t0000000` .. `t{tasks-1}`, each `{"n": i}`, in chunks of 10,000.
pub async fn submit_numbered(engine: &mut Engine, tasks: usize) {
    let mut next = 0;
    while next < tasks {
        let end = (next + 10_000).min(tasks);
        let inputs = (next..end)
            .map(|i| InputTask {
                id: Some(format!("t{i:07}")),
                input: json!({"n": i}),
                origin: "bench".into(),
            })
            .collect();
        engine.submit(inputs).await.expect("submit");
        next = end;
    }
}
