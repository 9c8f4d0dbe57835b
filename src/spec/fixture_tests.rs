//! Every file in `tests/fixtures/invalid_pipelines` must fail to load with
//! the error its first line announces (`# expect: <text>`), and every file
//! in `tests/fixtures/valid_pipelines` must load. Adding a file adds a case.

use std::path::{Path, PathBuf};

fn fixtures(folder: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(folder);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
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
    let first = text.lines().next().unwrap_or_default();
    first
        .strip_prefix("# expect: ")
        .unwrap_or_else(|| panic!("{} must start with `# expect: <text>`", path.display()))
        .to_string()
}

#[test]
fn invalid_pipelines_fail_with_the_expected_error() {
    let files = fixtures("invalid_pipelines");
    assert!(files.len() >= 15, "only {} invalid fixtures", files.len());
    let mut failures = Vec::new();
    for path in &files {
        let want = expectation(path);
        match super::load(path) {
            Ok(_) => failures.push(format!("{}: loaded, but expected {want:?}", path.display())),
            Err(e) => {
                let shown = e.to_string();
                if !shown.contains(&want) {
                    failures.push(format!("{}: expected {want:?} in\n{shown}", path.display()));
                }
                if e.problems.iter().any(|p| p.help.is_none()) {
                    failures.push(format!(
                        "{}: a problem has no help:\n{shown}",
                        path.display()
                    ));
                }
            }
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn valid_pipelines_load() {
    let files = fixtures("valid_pipelines");
    assert!(!files.is_empty());
    let failures: Vec<String> = files
        .iter()
        .filter_map(|path| super::load(path).err().map(|e| e.to_string()))
        .collect();
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}
