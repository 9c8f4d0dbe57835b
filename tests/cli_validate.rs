//! `baton validate` and input checking, through the binary: the same
//! fixture folders the library is tested against, the bundled pipelines,
//! and files that are missing or broken.

#[path = "support/cli.rs"]
mod cli;

use std::path::{Path, PathBuf};

use cli::{Sandbox, baton, output};

fn fixtures(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    toml_files(&dir)
}

fn toml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
}

/// The text after `# expect: ` on the first line.
fn expectation(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .next()
        .and_then(|l| l.strip_prefix("# expect: "))
        .unwrap_or_else(|| panic!("{} must start with `# expect: <text>`", path.display()))
        .to_string()
}

fn validate(path: &Path) -> cli::Out {
    output(baton().arg("validate").arg(path))
}

#[test]
fn every_invalid_fixture_exits_2_with_its_expected_error() {
    let files = fixtures("invalid_pipelines");
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for path in &files {
        let want = expectation(path);
        let out = validate(path);
        if out.status.code() != Some(2) {
            failures.push(format!("{}: expected exit 2\n{out}", path.display()));
        } else if !out.stderr.contains(&want) {
            failures.push(format!(
                "{}: expected {want:?} on stderr\n{out}",
                path.display()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn every_valid_fixture_and_bundled_pipeline_exits_0() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = fixtures("valid_pipelines");
    files.extend(toml_files(&root.join("pipelines")));
    assert!(files.len() >= 2);
    for path in &files {
        let out = validate(path);
        out.expect(0);
        assert!(out.stdout.starts_with("ok: "), "{}\n{out}", path.display());
        assert!(out.stdout.contains("wave 1: "), "{}\n{out}", path.display());
    }
}

#[test]
fn validate_shows_phases_in_waves() {
    let sandbox = Sandbox::new();
    let file = sandbox.pipeline(
        r#"
[[phases]]
id = "first"
agent = "a"

[[phases]]
id = "left"
agent = "a"
after = ["first"]

[[phases]]
id = "right"
agent = "a"
after = ["first"]

[[phases]]
id = "last"
agent = "a"
after = ["left", "right"]
"#,
    );
    let out = validate(&file);
    out.expect(0);
    assert!(out.stdout.contains("4 phase(s), 1 agent(s)"), "{out}");
    assert!(out.stdout.contains("wave 1: first\n"), "{out}");
    assert!(out.stdout.contains("wave 2: left, right\n"), "{out}");
    assert!(out.stdout.contains("wave 3: last\n"), "{out}");
}

#[test]
fn deeply_nested_conditions_are_refused_at_the_place_not_by_a_stack_overflow() {
    let sandbox = Sandbox::new();
    let nots = format!("{}input.a", "not ".repeat(100_000));
    let parens = format!("{}input.a{}", "(".repeat(10_000), ")".repeat(10_000));
    let file = sandbox.pipeline(&format!(
        "[agents.r]\nkind = \"sim\"\n[[agents.r.route]]\nwhen = \"{nots}\"\nmodel = \"m\"\n[[phases]]\nid = \"one\"\nagent = \"r\"\nwhen = \"{parens}\"\n"
    ));
    let out = validate(&file);
    out.expect(2);
    let shown = file.display();
    for want in [
        format!(
            "{shown}:6:265: error: bad condition in `when` in route #1 of agent \"r\": the condition nests deeper than 64 levels"
        ),
        format!(
            "{shown}:11:73: error: bad condition in `when` in phase \"one\": the condition nests deeper than 64 levels"
        ),
    ] {
        assert!(out.stderr.contains(&want), "missing {want:?}\n{out}");
    }
    sandbox.inputs(&[serde_json::json!({"id": "t1", "a": true})]);
    sandbox.run().expect(2);

    // Long but flat: fine, however many terms.
    let flat = vec!["input.a"; 50_000].join(" and ");
    let file = sandbox.pipeline(&format!(
        "[[phases]]\nid = \"one\"\nagent = \"a\"\nwhen = \"{flat} or ((((not input.b))))\"\n"
    ));
    validate(&file).expect(0);
}

#[test]
fn a_pipeline_file_that_is_not_utf8_names_line_column_and_byte() {
    let sandbox = Sandbox::new();
    let path = sandbox.path("latin1.toml");
    std::fs::write(&path, b"name = \"p\"\n# caf\xe9 au lait\n[agents.a]\n").unwrap();
    let out = validate(&path);
    out.expect(2);
    assert!(
        out.stderr.contains(&format!(
            "{}:2:6: error: the pipeline file is not UTF-8: byte 0xE9 at offset 16 is not valid UTF-8",
            path.display()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("help: save the file as UTF-8"), "{out}");
}

#[test]
fn a_missing_pipeline_file_is_named_and_exits_2() {
    let sandbox = Sandbox::new();
    let missing = sandbox.path("nowhere.toml");
    let out = validate(&missing);
    out.expect(2);
    assert!(
        out.stderr.contains(&format!(
            "{}: error: cannot read the pipeline file",
            missing.display()
        )),
        "{out}"
    );
    assert!(out.stderr.contains("help: "), "{out}");
}

#[test]
fn usage_errors_exit_2() {
    output(baton().arg("validate")).expect(2);
    output(baton().arg("frobnicate")).expect(2);
    output(baton().args(["list", "--bogus"])).expect(2);
}

#[test]
fn a_broken_input_line_is_reported_at_file_line_col_and_nothing_runs() {
    let sandbox = Sandbox::new();
    sandbox.pipeline("[[phases]]\nid = \"one\"\nagent = \"a\"\n");
    sandbox.write(
        "tasks.jsonl",
        "{\"id\": \"t1\"}\n\n{\"id\": \"t2\", \"x\": [1, 2,]}\n{\"id\": \"t3\"}\n",
    );
    let out = sandbox.run();
    out.expect(2);
    let input = sandbox.path("tasks.jsonl");
    assert!(
        out.stderr.contains(&format!("{}:3:", input.display())),
        "{out}"
    );
    let (_, after) = out
        .stderr
        .split_once(&format!("{}:3:", input.display()))
        .unwrap();
    let col: String = after.chars().take_while(char::is_ascii_digit).collect();
    assert!(!col.is_empty(), "no column after the line\n{out}");
    assert!(out.stderr.contains("error: not valid JSON"), "{out}");
    assert!(out.stdout.is_empty(), "{out}");
    assert!(!sandbox.state().exists(), "a state folder was made");
}

#[test]
fn inputs_that_are_not_objects_or_repeat_an_id_exit_2() {
    let sandbox = Sandbox::new();
    sandbox.pipeline("[[phases]]\nid = \"one\"\nagent = \"a\"\n");
    sandbox.write("tasks.jsonl", "{\"id\": \"t1\"}\n[1, 2]\n");
    let out = sandbox.run();
    out.expect(2);
    assert!(
        out.stderr
            .contains(&format!("{}:2:", sandbox.path("tasks.jsonl").display())),
        "{out}"
    );

    sandbox.write("tasks.jsonl", "{\"id\": \"t1\"}\n{\"id\": \"t1\"}\n");
    let out = sandbox.run();
    out.expect(2);
    assert!(out.stderr.contains("t1"), "{out}");
}

#[test]
fn a_missing_input_file_exits_2() {
    let sandbox = Sandbox::new();
    sandbox.pipeline("[[phases]]\nid = \"one\"\nagent = \"a\"\n");
    let out = sandbox.run();
    out.expect(2);
    assert!(
        out.stderr.contains(&format!(
            "{}: error: cannot read the inputs",
            sandbox.path("tasks.jsonl").display()
        )),
        "{out}"
    );
}
