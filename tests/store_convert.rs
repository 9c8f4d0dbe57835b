//! A state folder written by the journal-and-snapshot store (the fixture in
//! `tests/fixtures/legacy_state`, made by that code with reviews, blockers,
//! budget holds, raises and a journal a kill left behind) converts on first
//! open, once, losing nothing: `list`, `summary` and `show` say what they said
//! before, the old files are kept, and a run carries on from it.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

use cli::{baton, output};
use serde_json::Value;

const FIXTURE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/legacy_state");
const EXPECTED: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/legacy_expected"
);

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn legacy_copy() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    copy_dir(Path::new(FIXTURE), &state);
    (dir, state)
}

fn json_of(state: &Path, args: &[&str]) -> Value {
    let out = output(baton().args(args).arg("--state-dir").arg(state));
    out.expect(0);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}\n{out}"))
}

/// The expected JSON, its fractions rounded as [`rounded`] does.
fn expected(name: &str) -> Value {
    rounded(
        serde_json::from_str(&std::fs::read_to_string(Path::new(EXPECTED).join(name)).unwrap())
            .unwrap(),
    )
}

/// `v` with every fraction rounded to 12 significant digits. The old store
/// wrote costs such as 0.049675000000000004; serde_json's exact float
/// parsing (`float_roundtrip`, which the JSON Schema validator turns on)
/// reads them back as written, where the expected files hold the nearby
/// value the older, faster parsing gave.
fn rounded(v: Value) -> Value {
    match v {
        Value::Number(n) if n.is_f64() => {
            let x = n.as_f64().unwrap_or_default();
            let fixed: f64 = format!("{x:.11e}").parse().unwrap_or(x);
            serde_json::Number::from_f64(fixed).map_or(Value::Number(n), Value::Number)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(rounded).collect()),
        Value::Object(fields) => {
            Value::Object(fields.into_iter().map(|(k, v)| (k, rounded(v))).collect())
        }
        other => other,
    }
}

#[test]
fn an_old_folder_converts_once_and_reads_as_it_did() {
    let (_dir, state) = legacy_copy();
    let out = output(baton().args(["list", "--json", "--state-dir"]).arg(&state));
    out.expect(0);
    assert!(
        out.stderr
            .contains("converted 74 task(s) from the journal-and-snapshot layout"),
        "{out}"
    );
    assert!(state.join("baton.db").is_file());
    assert!(!state.join("journal").exists() && !state.join("tasks").exists());
    let kept: Vec<PathBuf> = std::fs::read_dir(&state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("legacy-")
        })
        .collect();
    assert_eq!(kept.len(), 1, "the old files are kept: {kept:?}");
    assert!(kept[0].join("journal").is_dir() && kept[0].join("tasks").is_dir());
    assert_eq!(
        std::fs::read_dir(kept[0].join("tasks")).unwrap().count(),
        std::fs::read_dir(Path::new(FIXTURE).join("tasks"))
            .unwrap()
            .count()
    );

    // What the old store said, the new one says.
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rounded(list), expected("list.json"));
    let mut summary = json_of(&state, &["summary", "--json"]);
    let mut want = expected("summary.json");
    summary.as_object_mut().unwrap().remove("state_dir");
    want.as_object_mut().unwrap().remove("state_dir");
    // Newer than the old store's summary: nothing was under way.
    assert_eq!(
        summary.as_object_mut().unwrap().remove("interrupted"),
        Some(Value::from(0))
    );
    let (got_usd, want_usd) = (summary["cost_usd"].as_f64(), want["cost_usd"].as_f64());
    assert!((got_usd.unwrap() - want_usd.unwrap()).abs() < 1e-6);
    summary["cost_usd"] = Value::Null;
    want["cost_usd"] = Value::Null;
    assert_eq!(summary, want);
    for task in expected("tasks.json").as_array().unwrap() {
        let id = task["id"].as_str().unwrap();
        assert_eq!(
            &rounded(json_of(&state, &["show", id, "--json"])),
            task,
            "task {id}"
        );
    }

    // Once only: the next command finds the database and says nothing of it.
    let again = output(baton().args(["list", "--state-dir"]).arg(&state));
    again.expect(0);
    assert!(!again.stderr.contains("converted"), "{again}");
}

#[test]
fn a_run_carries_on_from_a_converted_folder() {
    let (_dir, state) = legacy_copy();
    // A decision on the stopped folder converts it and is recorded.
    let out = output(
        baton()
            .args(["resolve", "DEV-103", "--skip", "--state-dir"])
            .arg(&state),
    );
    out.expect(0);
    assert!(out.stderr.contains("converted"), "{out}");
    let pipeline = state.join("pipeline.toml");
    let out = output(
        baton()
            .args(["run", "--headless", "--state-dir"])
            .arg(&state)
            .arg(&pipeline),
    );
    // Budget holds remain (the run budget stays reached): status 3, not a crash.
    assert!(matches!(out.code(), 0 | 1 | 3), "{out}");
    let t = json_of(&state, &["show", "DEV-103", "--json"]);
    assert_ne!(t["state"], "blocked", "{t}");
    let decisions = t["decisions"].as_array().unwrap();
    assert_eq!(
        decisions.last().unwrap()["action"]["action"],
        "resolve_skip"
    );
    // The raise recorded before the conversion still holds.
    let budget = output(baton().args(["summary", "--state-dir"]).arg(&state));
    budget.expect(0);
}
