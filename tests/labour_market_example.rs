//! The labour-market example end to end: `pipelines/labour_market.toml` and
//! its Python agents run by the real binary in a temporary folder. The
//! prefetch runs once per region across tasks and runs, the analysts run
//! together, and the merge gives the same report, byte for byte, whatever
//! order the analysts finished in: sections in a fixed order, duplicates
//! dropped, contact details masked.

#[path = "support/cli.rs"]
mod cli;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cli::{Out, baton, output};
use serde_json::{Value, json};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn pipeline() -> PathBuf {
    root().join("pipelines/labour_market.toml")
}

/// A temporary folder with a state folder, the prefetch counter and the
/// analysts' meeting place.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    fn new() -> Folder {
        let dir = tempfile::Builder::new()
            .prefix("baton-labour-")
            .tempdir()
            .expect("temp dir");
        Folder { dir }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn state(&self) -> PathBuf {
        self.path("state")
    }

    /// `baton run pipelines/labour_market.toml --headless --input INPUT`,
    /// from this folder, with the agents' switches in the environment.
    fn run(&self, input: &Path, delays: &str) -> Out {
        output(
            baton()
                .current_dir(self.dir.path())
                .arg("run")
                .arg(pipeline())
                .arg("--headless")
                .arg("--input")
                .arg(input)
                .arg("--state-dir")
                .arg(self.state())
                .env("LABOUR_PREFETCH_LOG", self.path("prefetch.log"))
                .env("LABOUR_RENDEZVOUS_DIR", self.path("rendezvous"))
                .env("LABOUR_ANALYST_DELAY_MS", delays),
        )
    }

    /// Writes tasks as JSON Lines and returns the file.
    fn tasks(&self, name: &str, tasks: &[Value]) -> PathBuf {
        let path = self.path(name);
        let text: String = tasks.iter().map(|t| format!("{t}\n")).collect();
        std::fs::write(&path, text).expect("write tasks");
        path
    }

    /// `(region, task)` of every load the prefetch agent made.
    fn prefetches(&self) -> Vec<(String, String)> {
        std::fs::read_to_string(self.path("prefetch.log"))
            .unwrap_or_default()
            .lines()
            .map(|l| {
                let (region, task) = l.split_once(' ').expect("REGION TASK");
                (region.to_string(), task.to_string())
            })
            .collect()
    }

    fn cli(&self, args: &[&str]) -> Out {
        output(
            baton()
                .current_dir(self.dir.path())
                .args(args)
                .arg("--state-dir")
                .arg(self.state()),
        )
    }

    fn show(&self, id: &str) -> Value {
        let out = self.cli(&["show", id, "--json"]);
        out.expect(0);
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("not JSON: {e}\n{out}"))
    }

    fn states(&self) -> BTreeMap<String, String> {
        let out = self.cli(&["list", "--json"]);
        out.expect(0);
        let rows: Vec<Value> = serde_json::from_str(&out.stdout).expect("list --json");
        rows.iter()
            .map(|r| {
                (
                    r["id"].as_str().unwrap().to_string(),
                    r["state"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    }
}

fn queries() -> PathBuf {
    root().join("examples/labour_market/queries.jsonl")
}

fn phase<'a>(shown: &'a Value, id: &str) -> &'a Value {
    shown["phases"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["id"] == id))
        .unwrap_or_else(|| panic!("no phase {id} in {shown}"))
}

fn attempts(phase: &Value) -> usize {
    phase["attempts"].as_array().map_or(0, Vec::len)
}

/// The merged report of each task, as the merge phase output it.
fn merged(folder: &Folder, ids: &[&str]) -> BTreeMap<String, Value> {
    ids.iter()
        .map(|id| {
            let shown = folder.show(id);
            let merge = phase(&shown, "merge");
            assert_eq!(merge["state"], "completed", "{id}: {merge}");
            (id.to_string(), merge["output"].clone())
        })
        .collect()
}

const IDS: [&str; 6] = ["lm-001", "lm-002", "lm-003", "lm-004", "lm-005", "lm-006"];

const LM_001_REPORT: &str = "\
# Labour market: nurse in Harbour district (2026-Q3)

## Summary
- Demand: 8 openings for nurse in 2 postings
- Wages: median wage £33,000, 4.1% on last year
- Skills: most asked for: patient care

## Demand
- Harbour General Hospital: 6 openings (H-101); contact: Recruiting desk, [masked], [masked]
- Quayside Care Home: 2 openings (H-102); contact: Ward manager on [masked]
- Night-shift nursing posts stay open longest in the district.

## Wages
- Survey: median £33,000, middle half £30,500 to £35,800
- Harbour General Hospital offers £34,200, above the median (H-101)
- Quayside Care Home offers £31,800, below the median (H-102)

## Skills
- patient care: asked for in 2 of 2 postings
- dementia care: asked for in 1 of 2 postings
- medication administration: asked for in 1 of 2 postings
- night shifts: asked for in 1 of 2 postings

## Sources
- harbour-vacancies-2026q3: H-101, H-102
";

#[test]
fn validate_accepts_the_pipeline_and_puts_the_analysts_in_one_wave() {
    let out = output(baton().arg("validate").arg(pipeline()));
    out.expect(0);
    assert!(
        out.stdout.contains("wave 2: skills, wages, demand"),
        "{out}"
    );
    assert!(out.stdout.contains("wave 3: merge"), "{out}");
    assert!(
        out.stdout
            .contains("cached: prefetch by {{input.region}}, kept 7d"),
        "{out}"
    );
    assert!(
        out.stdout
            .contains("schema: merge (../examples/labour_market/schemas/report.json)"),
        "{out}"
    );
}

#[test]
fn the_example_prefetches_once_per_region_runs_analysts_together_and_merges() {
    let folder = Folder::new();
    let out = folder.run(&queries(), "");
    out.expect(0);
    let states = folder.states();
    assert_eq!(states.len(), IDS.len(), "{states:?}");
    assert!(states.values().all(|s| s == "completed"), "{states:?}");

    // One load per distinct region, by the first task that asked for it.
    let loads = folder.prefetches();
    let mut regions: Vec<&str> = loads.iter().map(|(r, _)| r.as_str()).collect();
    regions.sort();
    assert_eq!(regions, ["harbour", "riverside", "uplands"], "{loads:?}");
    let loader: BTreeMap<String, String> = loads.into_iter().collect();

    for id in IDS {
        let shown = folder.show(id);
        let region = shown["input"]["region"].as_str().unwrap().to_string();
        let prefetch = phase(&shown, "prefetch");
        assert_eq!(prefetch["state"], "completed", "{id}: {prefetch}");
        if loader[&region] == id {
            assert!(prefetch["cached"].is_null(), "{id}: {prefetch}");
            assert_eq!(attempts(prefetch), 1, "{id}: {prefetch}");
        } else {
            assert_eq!(prefetch["cached"]["key"], region.as_str(), "{id}");
            assert_eq!(
                prefetch["cached"]["from_task"],
                loader[&region].as_str(),
                "{id}"
            );
            assert_eq!(attempts(prefetch), 0, "{id}: {prefetch}");
        }
        assert_eq!(prefetch["output"]["region"], region.as_str());
        // Each analyst met the other two (it fails otherwise) at its first
        // attempt: the three ran at the same time.
        for analyst in ["demand", "wages", "skills"] {
            let p = phase(&shown, analyst);
            assert_eq!(p["state"], "completed", "{id} {analyst}: {p}");
            assert_eq!(attempts(p), 1, "{id} {analyst}: {p}");
            assert_eq!(p["output"]["section"], analyst);
        }
    }

    // The merge of the harbour nurses: fixed section order, duplicates
    // (a posting listed twice, a note given to two analysts) dropped, the
    // contact details of the source data masked.
    let shown = folder.show("lm-001");
    let source = phase(&shown, "prefetch")["output"].to_string();
    assert!(source.contains("jobs@harbourgeneral.example"), "{source}");
    assert!(source.contains("+44 20 7946 0018"), "{source}");
    let merge = &phase(&shown, "merge")["output"];
    let order: Vec<&str> = merge["sections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(order, ["summary", "demand", "wages", "skills"]);
    assert_eq!(merge["duplicates_removed"], 3, "{merge}");
    assert_eq!(merge["masked"], 3, "{merge}");
    let report = merge["report"].as_str().unwrap();
    assert_eq!(report, LM_001_REPORT);
    assert_eq!(report.matches("(H-102); contact").count(), 1);
    assert_eq!(report.matches("Night-shift nursing").count(), 1);
    for every in merged(&folder, &IDS).values() {
        let text = every.to_string();
        assert!(!text.contains('@'), "{text}");
        for phone in ["7946 0018", "496 0732", "7946 0991", "960 441", "960 118"] {
            assert!(!text.contains(phone), "{phone} in {text}");
        }
        assert!(text.contains("[masked]"), "{text}");
    }

    // A later run with new tasks for regions already loaded loads nothing.
    let more = folder.tasks(
        "more.jsonl",
        &[
            json!({"id": "lm-101", "region": "harbour", "occupation": "nurse"}),
            json!({"id": "lm-102", "region": "uplands", "occupation": "nurse"}),
        ],
    );
    folder.run(&more, "").expect(0);
    assert_eq!(folder.prefetches().len(), 3, "{:?}", folder.prefetches());
    for (id, region) in [("lm-101", "harbour"), ("lm-102", "uplands")] {
        let shown = folder.show(id);
        let prefetch = phase(&shown, "prefetch");
        assert_eq!(prefetch["cached"]["key"], region, "{id}: {prefetch}");
        assert_eq!(prefetch["cached"]["from_task"], loader[region].as_str());
    }
    // The same query in a later run gives the same report.
    assert_eq!(
        folder.show("lm-101")["phases"][4]["output"]["report"],
        LM_001_REPORT
    );
}

#[test]
fn two_runs_of_the_same_queries_give_byte_identical_reports() {
    // The analysts finish in one order in the first run and in the
    // opposite order in the second.
    let first = Folder::new();
    first
        .run(&queries(), "demand=0,wages=150,skills=300")
        .expect(0);
    let second = Folder::new();
    second
        .run(&queries(), "demand=300,wages=150,skills=0")
        .expect(0);
    let a = merged(&first, &IDS);
    let b = merged(&second, &IDS);
    for id in IDS {
        assert_eq!(
            serde_json::to_vec(&a[id]).unwrap(),
            serde_json::to_vec(&b[id]).unwrap(),
            "{id}"
        );
        let report = a[id]["report"].as_str().unwrap();
        let headings: Vec<&str> = report.lines().filter(|l| l.starts_with("## ")).collect();
        assert_eq!(
            headings,
            [
                "## Summary",
                "## Demand",
                "## Wages",
                "## Skills",
                "## Sources"
            ],
            "{id}"
        );
    }
}

#[test]
fn bad_queries_fail_their_task_with_the_reason() {
    let folder = Folder::new();
    let tasks = folder.tasks(
        "bad.jsonl",
        &[
            json!({"id": "atlantis", "region": "atlantis", "occupation": "nurse"}),
            json!({"id": "escape", "region": "../etc", "occupation": "nurse"}),
            json!({"id": "no-region", "occupation": "nurse"}),
            json!({"id": "odd-types", "region": 7, "occupation": ["nurse"]}),
            json!({"id": "fine", "region": "riverside", "occupation": "nurse"}),
        ],
    );
    let out = folder.run(&tasks, "");
    out.expect(1);
    assert!(!out.stderr.contains("panicked"), "{out}");
    let states = folder.states();
    assert_eq!(states["fine"], "completed", "{states:?}");
    for (id, says) in [
        (
            "atlantis",
            "unknown region 'atlantis'; known regions: harbour, riverside, uplands",
        ),
        ("escape", "unknown region '../etc'"),
        (
            "no-region",
            "the key uses input.region, which task no-region does not have",
        ),
        ("odd-types", "the task needs a non-empty string `region`"),
    ] {
        assert_eq!(states[id], "failed", "{states:?}");
        let prefetch = folder.show(id)["phases"][0].to_string();
        assert!(prefetch.contains(says), "{id}: {prefetch}");
    }
    // Only the known region was loaded.
    assert_eq!(
        folder.prefetches(),
        [("riverside".to_string(), "fine".to_string())]
    );
}

/// Runs one of the example's agents directly with `request` on stdin, from an
/// unrelated folder, and returns its stdout.
fn agent(script: &str, request: &str) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("python3")
        .arg(root().join("examples/labour_market/agents").join(script))
        .current_dir(std::env::temp_dir())
        .env_remove("LABOUR_PREFETCH_LOG")
        .env_remove("LABOUR_RENDEZVOUS_DIR")
        .env_remove("LABOUR_ANALYST_DELAY_MS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python3 runs");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(request.as_bytes()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{script}: {out:?}");
    String::from_utf8(out.stdout).expect("UTF-8 reply")
}

#[test]
fn the_merge_gives_the_same_bytes_whatever_order_the_reports_arrive_in() {
    let task = json!({"id": "q", "input": {"region": "uplands", "occupation": "electrician"}});
    let ask = |phase: &str, outputs: &str| {
        format!(
            r#"{{"task": {task}, "phase": "{phase}", "attempt": 1, "outputs": {{{outputs}}}, "feedback": null}}"#
        )
    };
    let reply: Value = serde_json::from_str(&agent("prefetch.py", &ask("prefetch", ""))).unwrap();
    let prefetch = format!(r#""prefetch": {}"#, reply["output"]);
    let mut reports = Vec::new();
    for analyst in ["demand", "wages", "skills"] {
        let reply: Value =
            serde_json::from_str(&agent(&format!("{analyst}.py"), &ask(analyst, &prefetch)))
                .unwrap();
        reports.push(format!(r#""{analyst}": {}"#, reply["output"]));
    }
    let orders: [[usize; 3]; 3] = [[0, 1, 2], [2, 1, 0], [1, 2, 0]];
    let merged: Vec<String> = orders
        .iter()
        .map(|order| {
            let mut parts: Vec<&str> = order.iter().map(|&i| reports[i].as_str()).collect();
            parts.insert(order[0], &prefetch);
            agent("merge.py", &ask("merge", &parts.join(", ")))
        })
        .collect();
    assert_eq!(merged[0], merged[1]);
    assert_eq!(merged[0], merged[2]);
    let reply: Value = serde_json::from_str(&merged[0]).unwrap();
    let report = reply["output"]["report"].as_str().unwrap();
    assert!(report.starts_with("# Labour market: electrician in Uplands valleys (2026-Q3)\n"));
    // The posting listed twice is reported once; so is the note two
    // analysts were given.
    assert_eq!(report.matches("(U-202); contact").count(), 1, "{report}");
    assert_eq!(
        report.matches("Renewable energy projects").count(),
        1,
        "{report}"
    );
    assert!(
        !report.contains('@') && !report.contains("960 118"),
        "{report}"
    );
    assert_eq!(reply["output"]["duplicates_removed"], 3);
}
