//! CLI commands while an engine runs go through its control socket, and
//! say the same as they do on a folder no engine holds.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/remote.rs"]
mod remote;

use cli::{Out, Sandbox};
use remote::{engine, sandbox, socket_of, wait_all, wait_for_socket};
use serde_json::Value;

/// What the read-only commands print, as `(args, exit status, stdout)`.
fn readings(sandbox: &Sandbox) -> Vec<(Vec<&'static str>, i32, String)> {
    let asks: [&[&'static str]; 7] = [
        &["list"],
        &["list", "--json"],
        &["list", "--state", "blocked", "--json"],
        &["show", "t1"],
        &["show", "t1", "--json"],
        &["show", "t3", "--json"],
        &["show", "ghost"],
    ];
    asks.iter()
        .map(|args| {
            let out = sandbox.cli(args);
            (args.to_vec(), out.code(), out.stdout)
        })
        .collect()
}

fn json_of(out: &Out) -> Value {
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

#[test]
fn commands_say_the_same_to_a_live_engine_and_to_a_stopped_folder() {
    let sandbox = sandbox(4);
    let live = engine(&sandbox, true);
    let socket = socket_of(&sandbox.state());
    wait_for_socket(&socket);
    wait_all(&socket, "awaiting_review");

    // Decisions go to the engine, which acts on them at once.
    let out = sandbox.cli(&["approve", "t1", "--note", "looks right"]);
    out.expect(0);
    assert_eq!(out.stdout, "approve: recorded for task t1\n");
    assert!(out.stderr.contains("the running engine (pid"), "{out}");
    let out = sandbox.cli(&["approve", "t2", "--json"]);
    out.expect(0);
    let live_json = json_of(&out);
    assert_eq!(live_json["recorded"], true);
    remote::wait_for_state(&socket, "t1", "blocked");
    remote::wait_for_state(&socket, "t2", "blocked");
    sandbox.cli(&["approve", "t3"]).expect(0);
    // t4 stays under review; t3 gets to its blocker.
    remote::wait_for_state(&socket, "t3", "blocked");
    let live_refused = sandbox.cli(&["resolve", "t4", "--skip"]);
    live_refused.expect(1);
    let live_refused_json = sandbox.cli(&["retry", "t4", "--json"]);
    live_refused_json.expect(1);
    let live_reads = readings(&sandbox);

    live.signal(libc::SIGTERM);
    live.wait().expect(143);
    assert!(!socket.exists());

    // The same questions of the folder, with no engine.
    assert_eq!(readings(&sandbox), live_reads);
    let offline_refused = sandbox.cli(&["resolve", "t4", "--skip"]);
    offline_refused.expect(1);
    assert_eq!(offline_refused.stdout, live_refused.stdout);
    assert_eq!(
        offline_refused.stderr.lines().last(),
        live_refused.stderr.lines().last(),
        "the same refusal"
    );
    let offline_refused_json = sandbox.cli(&["retry", "t4", "--json"]);
    offline_refused_json.expect(1);
    assert_eq!(offline_refused_json.stdout, live_refused_json.stdout);
    let refusal = json_of(&offline_refused_json);
    assert_eq!(refusal["recorded"], false);
    assert!(
        refusal["refusal"]
            .as_str()
            .unwrap()
            .contains("nothing to retry")
    );

    // Decisions on the folder print the same.
    let out = sandbox.cli(&["resolve", "t1", "--skip"]);
    out.expect(0);
    assert_eq!(out.stdout, "resolve: skip: recorded for task t1\n");
    assert!(
        out.stderr
            .contains("`baton run` on this state folder carries on"),
        "{out}"
    );
    let out = sandbox.cli(&["approve", "t4", "--json"]);
    out.expect(0);
    let mut offline_json = json_of(&out);
    offline_json["task"] = "t2".into();
    assert_eq!(offline_json, live_json);

    let t1 = sandbox.show("t1");
    assert_eq!(t1["decisions"][0]["note"], "looks right");
    assert_eq!(t1["decisions"][1]["action"]["action"], "resolve_skip");
}
