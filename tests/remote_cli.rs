//! CLI commands while an engine runs go through its control socket, and
//! say the same as they do on a folder no engine holds.

#[path = "support/cli.rs"]
mod cli;
#[path = "support/remote.rs"]
mod remote;

use cli::{Out, Sandbox};
use remote::{engine, sandbox, socket_of, wait_all, wait_for_socket};
use serde_json::Value;

/// What the read-only commands print, as `(args, exit status, stdout)`;
/// how long holds have waited, which grows between two asks, left out.
fn readings(sandbox: &Sandbox) -> Vec<(Vec<&'static str>, i32, String)> {
    let asks: [&[&'static str]; 11] = [
        &["list"],
        &["list", "--json"],
        &["list", "--state", "blocked", "--json"],
        &["show", "t1"],
        &["show", "t1", "--json"],
        &["show", "t3", "--json"],
        &["show", "ghost"],
        &["summary"],
        &["summary", "--json"],
        &["review"],
        &["review", "--json"],
    ];
    asks.iter()
        .map(|args| {
            let out = sandbox.cli(args);
            let stdout = match *args {
                ["review"] => without_waited_column(&out.stdout),
                ["review", "--json"] => without_waited_ms(&json_of(&out)),
                _ => out.stdout.clone(),
            };
            (args.to_vec(), out.code(), stdout)
        })
        .collect()
}

/// `baton review`'s table without its WAITED column (the fourth).
fn without_waited_column(text: &str) -> String {
    text.lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            if words.len() > 4 && !line.contains(" waiting: ") && !line.starts_with("settle") {
                [&words[..3], &words[4..]].concat().join(" ")
            } else {
                words.join(" ")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `baton review --json` without `waited_ms`.
fn without_waited_ms(queue: &Value) -> String {
    let mut queue = queue.clone();
    for hold in queue.as_array_mut().expect("review --json is an array") {
        let waited = hold
            .as_object_mut()
            .and_then(|h| h.remove("waited_ms"))
            .expect("every hold says how long it waited");
        assert!(waited.is_u64(), "{waited}");
    }
    queue.to_string()
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
    wait_all(&sandbox.state(), "awaiting_review");

    // Decisions go to the engine, which acts on them at once.
    let out = sandbox.cli(&["approve", "t1", "--note", "looks right"]);
    out.expect(0);
    assert_eq!(out.stdout, "approve: recorded for task t1\n");
    assert!(out.stderr.contains("the running engine (pid"), "{out}");
    let out = sandbox.cli(&["approve", "t2", "--json"]);
    out.expect(0);
    let live_json = json_of(&out);
    assert_eq!(live_json["recorded"], true);
    remote::wait_for_state(&sandbox.state(), "t1", "blocked");
    remote::wait_for_state(&sandbox.state(), "t2", "blocked");
    sandbox.cli(&["approve", "t3"]).expect(0);
    // t4 stays under review; t3 gets to its blocker.
    remote::wait_for_state(&sandbox.state(), "t3", "blocked");
    let live_refused = sandbox.cli(&["resolve", "t4", "--skip"]);
    live_refused.expect(1);
    let live_refused_json = sandbox.cli(&["retry", "t4", "--json"]);
    live_refused_json.expect(1);
    // Budgets are raised through the engine too.
    let live_raise = sandbox.cli(&["budget", "t3", "--usd", "2.5", "--tokens", "5000"]);
    live_raise.expect(0);
    assert!(
        live_raise.stderr.contains("the running engine (pid"),
        "{live_raise}"
    );
    let live_lower = sandbox.cli(&["budget", "t3", "--tokens", "10"]);
    live_lower.expect(1);
    let live_reads = readings(&sandbox);
    let review = &live_reads[9].2;
    assert!(review.contains("t4 review draft"), "{review}");
    assert!(
        review.contains("4 waiting: 1 review(s), 3 blocker(s)"),
        "{review}"
    );
    let summary = &live_reads[7].2;
    assert!(
        summary.contains("waiting    4 for a person (1 awaiting review, 3 blocked)"),
        "{summary}"
    );

    // Emptying the folder under a live engine is refused, naming it.
    let refused = sandbox.cli(&["clean-state", "--force"]);
    refused.expect(2);
    assert!(
        refused.stderr.contains("in use by baton (pid "),
        "{refused}"
    );
    assert!(sandbox.state().join("baton.db").exists());

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

    // And on the folder, saying the same.
    let raise = sandbox.cli(&["budget", "t4", "--usd", "2.5", "--tokens", "5000"]);
    raise.expect(0);
    assert_eq!(raise.stdout, live_raise.stdout.replace("t3", "t4"));
    assert!(
        raise
            .stderr
            .contains("`baton run` on this state folder carries on"),
        "{raise}"
    );
    let lower = sandbox.cli(&["budget", "t4", "--tokens", "10"]);
    lower.expect(1);
    assert_eq!(
        lower.stderr.lines().last(),
        live_lower.stderr.replace("t3", "t4").lines().last(),
        "the same refusal"
    );
    assert_eq!(sandbox.show("t3")["budget"], sandbox.show("t4")["budget"]);

    let t1 = sandbox.show("t1");
    assert_eq!(t1["decisions"][0]["note"], "looks right");
    assert_eq!(t1["decisions"][1]["action"]["action"], "resolve_skip");

    // The engine's run log has the decisions it was handed, once; decisions
    // on the stopped folder add a section of their own, refusals nothing.
    let log = std::fs::read_to_string(sandbox.state().join("RUN_LOG.md")).expect("a run log");
    assert_eq!(log.matches("## Run started · ").count(), 1, "{log}");
    assert_eq!(log.matches("### Summary · ").count(), 1, "{log}");
    for task in ["t1", "t2", "t3"] {
        let approved = format!("**{task}** ✔ **approved** at `draft` by ");
        assert_eq!(log.matches(&approved).count(), 1, "{task}: {log}");
        assert!(!log.contains(&format!("`baton approve {task}`")), "{log}");
    }
    let run_section = &log[..log.find("### Summary · ").unwrap()];
    assert!(run_section.contains("note “looks right”"), "{log}");
    assert_eq!(log.matches("## `baton resolve t1` · ").count(), 1, "{log}");
    assert_eq!(log.matches("## `baton approve t4` · ").count(), 1, "{log}");
    assert!(!log.contains("`baton resolve t4`"), "refused: {log}");
    assert!(!log.contains("`baton retry t4`"), "refused: {log}");
    assert!(
        run_section.contains("**t3** $ **budget raised** to $2.5000 and 5,000 tokens by "),
        "{log}"
    );
    assert_eq!(log.matches("## `baton budget t4` · ").count(), 1, "{log}");
    assert!(
        log.contains("**t4** $ **budget raised** to $2.5000 and 5,000 tokens by "),
        "{log}"
    );
}
