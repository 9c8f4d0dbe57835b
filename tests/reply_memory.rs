//! What a large reply costs the engine: `baton run` on one task whose
//! command agent prints a reply of many small JSON keys (the costliest shape
//! per byte: each key becomes a node of a JSON tree), measured as the peak
//! resident memory the kernel reports for the process when it is reaped.
//!
//! `cargo test --test reply_memory` checks a 5 MB reply against a bound;
//! `cargo test --release --test reply_memory -- --ignored --nocapture`
//! prints the figures for 5, 15 and 100 MB replies of small keys and of one
//! long string.

#[path = "support/cli.rs"]
mod cli;

use std::path::Path;
use std::process::Stdio;

use cli::{Sandbox, baton};

/// Writes `{"output": {"k0":0,"k1":1,…}}` of about `bytes` bytes.
fn small_keys(path: &Path, bytes: usize) {
    let mut text = String::with_capacity(bytes + 64);
    text.push_str("{\"output\": {");
    let mut i = 0u64;
    while text.len() < bytes {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&format!("\"k{i}\":{}", i % 10));
        i += 1;
    }
    text.push_str("}}\n");
    std::fs::write(path, text).unwrap();
}

/// Writes `{"output": {"text": "lorem ipsum…"}}` of about `bytes` bytes.
fn one_string(path: &Path, bytes: usize) {
    let words = "lorem ipsum dolor sit amet, ".repeat(bytes / 28 + 1);
    let text = serde_json::json!({"output": {"text": words}}).to_string();
    std::fs::write(path, text + "\n").unwrap();
}

/// Runs one task whose agent prints `reply`; gives the engine's peak
/// resident memory in bytes, from `wait4`.
fn peak_of_run(sandbox: &Sandbox, reply: &Path) -> u64 {
    let pipeline = format!(
        "name = \"memory\"\n[defaults]\nretry = {{ max_attempts = 1 }}\n[agents.big]\nkind = \"command\"\ncommand = [\"cat\", {:?}]\nmax_output_bytes = 1_073_741_824\n[[phases]]\nid = \"one\"\nagent = \"big\"\n",
        reply
    );
    let file = sandbox.write("memory.toml", &pipeline);
    let inputs = sandbox.write("tasks.jsonl", "{\"id\": \"t1\"}\n");
    let state = sandbox.path("state");
    let _ = std::fs::remove_dir_all(&state);
    let child = baton()
        .arg("run")
        .arg(&file)
        .arg("--headless")
        .arg("--input")
        .arg(&inputs)
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start baton");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: an all-zero `rusage` is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, once; `status` and `usage` are ours.
    let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(reaped, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "baton run ended with status {status}"
    );
    // The child was reaped here, so `child` must not be waited for again.
    std::mem::forget(child);
    // Kilobytes on Linux.
    usage.ru_maxrss as u64 * 1024
}

/// Before the engine's followers stopped copying outputs, a 5 MB reply of
/// small keys took over 270 MB (debug build); now about 160 MB. The bound
/// leaves room between the two.
#[test]
fn a_five_megabyte_reply_of_small_keys_stays_under_forty_times_its_size() {
    let sandbox = Sandbox::new();
    let reply = sandbox.path("reply.json");
    let size = 5_000_000;
    small_keys(&reply, size);
    let peak = peak_of_run(&sandbox, &reply);
    assert!(
        peak < 40 * size as u64,
        "peak {} MB for a {} MB reply",
        peak / 1_000_000,
        size / 1_000_000
    );
}

#[test]
#[ignore = "figures for the README; run with --release --ignored --nocapture"]
fn print_peak_memory_for_large_replies() {
    let sandbox = Sandbox::new();
    let reply = sandbox.path("reply.json");
    println!("| reply | shape | peak engine memory | multiple |");
    println!("| ---: | --- | ---: | ---: |");
    for mb in [5usize, 15, 100] {
        let size = mb * 1_000_000;
        for (shape, write) in [
            ("small keys", small_keys as fn(&Path, usize)),
            ("one string", one_string),
        ] {
            write(&reply, size);
            let peak = peak_of_run(&sandbox, &reply);
            println!(
                "| {mb} MB | {shape} | {} MB | {:.1}× |",
                peak / 1_000_000,
                peak as f64 / size as f64
            );
        }
    }
}
