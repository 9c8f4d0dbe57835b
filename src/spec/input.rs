//! Task inputs: a JSON Lines file (one object per line) or a folder of
//! `*.json` files (one object per file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One task to run, as read from the inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct InputTask {
    /// From the object's `id` field, else (in a folder) the file's stem,
    /// else `None` and the engine makes one up.
    pub id: Option<String>,
    /// The whole object, `id` included.
    pub input: Value,
    /// Where it came from: `file:line` for JSON Lines, the file's path for a
    /// folder.
    pub origin: String,
}

impl InputTask {
    /// A task made in code: its id and its input object (which carries the
    /// id too, as a task read from a file does).
    ///
    /// ```
    /// let t = baton::InputTask::new("T-1", serde_json::json!({"title": "fix the login"}));
    /// assert_eq!(t.input["id"], "T-1");
    /// ```
    pub fn new(id: impl Into<String>, input: Value) -> InputTask {
        let id = id.into();
        let mut input = input;
        if let Value::Object(obj) = &mut input {
            obj.entry("id").or_insert_with(|| Value::String(id.clone()));
        }
        InputTask {
            origin: format!("task {id} made in code"),
            id: Some(id),
            input,
        }
    }
}

/// What is wrong with the inputs, where, and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.render())]
pub struct InputError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: usize,
    pub col: usize,
    pub message: String,
    pub help: String,
}

impl InputError {
    fn at(file: &Path, line: usize, col: usize, message: String, help: &str) -> InputError {
        InputError {
            file: file.to_path_buf(),
            line,
            col,
            message,
            help: help.to_string(),
        }
    }

    fn render(&self) -> String {
        let file = self.file.display();
        match self.line {
            0 => format!("{file}: error: {}\n  help: {}", self.message, self.help),
            _ => format!(
                "{file}:{}:{}: error: {}\n  help: {}",
                self.line, self.col, self.message, self.help
            ),
        }
    }
}

const ID_RULE: &str =
    "task ids use letters, digits, '.', '_' and '-', 1 to 128 of them, not starting with '.'";
const OBJECT_HELP: &str = "each task is one JSON object, e.g. {\"id\": \"t1\", \"text\": \"...\"}";

/// Checks a task id: `[A-Za-z0-9._-]`, 1 to 128 characters, not starting
/// with `.` (ids name files, so `.` and `..` and hidden names are out).
pub fn check_task_id(id: &str) -> Result<(), String> {
    if id.is_empty() {
        return Err("a task id cannot be empty".into());
    }
    let len = id.chars().count();
    if len > 128 {
        return Err(format!("task id is {len} characters long, more than 128"));
    }
    if id.starts_with('.') {
        return Err(format!("task id \"{id}\" starts with '.'"));
    }
    match id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        Some(c) => Err(format!("task id \"{id}\" contains {c:?}")),
        None => Ok(()),
    }
}

/// Reads the tasks in a JSON Lines file, or in the `*.json` files of a
/// folder (in file-name order; other files are ignored, as are hidden ones).
pub fn load_inputs(path: &Path) -> Result<Vec<InputTask>, InputError> {
    let tasks = if path.is_dir() {
        load_dir(path)?
    } else {
        let text = read(path)?;
        parse_lines(&text, path)?
    };
    check_unique(&tasks)?;
    Ok(tasks.into_iter().map(|t| t.task).collect())
}

/// A task and where it was read, for problems that involve two tasks.
struct Located {
    task: InputTask,
    file: PathBuf,
    /// 0 for a task that is a whole file.
    line: usize,
}

fn read(path: &Path) -> Result<String, InputError> {
    std::fs::read_to_string(path).map_err(|e| {
        InputError::at(
            path,
            0,
            0,
            format!("cannot read the inputs: {e}"),
            "give a JSON Lines file or a folder of .json files",
        )
    })
}

/// The tasks of JSON Lines `text`; blank lines are skipped.
fn parse_lines(text: &str, file: &Path) -> Result<Vec<Located>, InputError> {
    let mut tasks = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(line).map_err(|e| {
            InputError::at(
                file,
                line_no,
                e.column().max(1),
                format!("not valid JSON: {}", json_reason(&e)),
                "each line must hold one JSON object, e.g. {\"id\": \"t1\", \"text\": \"...\"}",
            )
        })?;
        let origin = format!("{}:{line_no}", file.display());
        let here = |message: String, help: &str| InputError::at(file, line_no, 1, message, help);
        if !value.is_object() {
            return Err(here(
                format!("the line holds {}, not a JSON object", kind(&value)),
                OBJECT_HELP,
            ));
        }
        let id = id_field(&value).map_err(|m| here(m, ID_RULE))?;
        tasks.push(Located {
            task: InputTask {
                id,
                input: value,
                origin,
            },
            file: file.to_path_buf(),
            line: line_no,
        });
    }
    Ok(tasks)
}

fn load_dir(dir: &Path) -> Result<Vec<Located>, InputError> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        InputError::at(
            dir,
            0,
            0,
            format!("cannot list the inputs folder: {e}"),
            "check that the folder exists and is readable",
        )
    })?;
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| {
            InputError::at(
                dir,
                0,
                0,
                format!("cannot list the inputs folder: {e}"),
                "check that the folder is readable",
            )
        })?;
        let path = entry.path();
        let name = entry.file_name();
        let name = name.to_string_lossy();
        // Editors and tools leave hidden files about; they are not tasks.
        if name.ends_with(".json") && !name.starts_with('.') && path.is_file() {
            files.push(path);
        }
    }
    files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    files.iter().map(|f| load_one(f)).collect()
}

/// One task from one `.json` file; the id defaults to the file's stem.
fn load_one(file: &Path) -> Result<Located, InputError> {
    let text = read(file)?;
    let value: Value = serde_json::from_str(&text).map_err(|e| {
        InputError::at(
            file,
            e.line().max(1),
            e.column().max(1),
            format!("not valid JSON: {}", json_reason(&e)),
            OBJECT_HELP,
        )
    })?;
    // Point at where the value starts, past any leading blank space.
    let start = text.len() - text.trim_start().len();
    let (line, col) = super::line_col(&text, start);
    if !value.is_object() {
        return Err(InputError::at(
            file,
            line,
            col,
            format!("the file holds {}, not a JSON object", kind(&value)),
            OBJECT_HELP,
        ));
    }
    let id = match id_field(&value).map_err(|m| InputError::at(file, line, col, m, ID_RULE))? {
        Some(id) => id,
        None => {
            let stem = file
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            check_task_id(&stem).map_err(|why| {
                InputError::at(
                    file,
                    0,
                    0,
                    format!("the file name does not make a task id: {why}"),
                    "rename the file, or give the object an \"id\" field",
                )
            })?;
            stem
        }
    };
    Ok(Located {
        task: InputTask {
            id: Some(id),
            input: value,
            origin: file.display().to_string(),
        },
        file: file.to_path_buf(),
        line: 0,
    })
}

/// The task id an object gives: a string, or an integer written as one.
/// A missing or null `id` gives `None`.
fn id_field(object: &Value) -> Result<Option<String>, String> {
    let id = match object.get("id") {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
        Some(other) => {
            return Err(format!(
                "\"id\" must be a string or a whole number, not {}",
                kind(other)
            ));
        }
    };
    check_task_id(&id)?;
    Ok(Some(id))
}

/// No two tasks of one input may share an id; names both places.
fn check_unique(tasks: &[Located]) -> Result<(), InputError> {
    let mut first: HashMap<&str, &Located> = HashMap::new();
    for here in tasks {
        let Some(id) = here.task.id.as_deref() else {
            continue;
        };
        if let Some(earlier) = first.insert(id, here) {
            return Err(InputError::at(
                &here.file,
                here.line,
                usize::from(here.line > 0),
                format!(
                    "duplicate task id \"{id}\", first used at {}",
                    earlier.task.origin
                ),
                "give each task its own id, or leave \"id\" out to have one made up",
            ));
        }
    }
    Ok(())
}

/// serde_json's message without its "at line L column C" tail, which the
/// error repeats in its own position.
fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    #[test]
    fn task_ids() {
        for good in ["a", "T-1", "note_2024.01", "x..y", &"a".repeat(128)] {
            assert_eq!(check_task_id(good), Ok(()), "{good}");
        }
        for bad in ["", ".hidden", "..", "a/b", "a b", "é", &"a".repeat(129)] {
            assert!(check_task_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn jsonl_tasks_keep_the_whole_object() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(
            dir.path(),
            "in.jsonl",
            "{\"id\": \"a\", \"x\": 1}\n\n   \n{\"id\": 7}\r\n{\"x\": 2}\n{\"id\": null}\n",
        );
        let tasks = load_inputs(&path).unwrap();
        let ids: Vec<Option<&str>> = tasks.iter().map(|t| t.id.as_deref()).collect();
        assert_eq!(ids, [Some("a"), Some("7"), None, None]);
        assert_eq!(tasks[0].input, serde_json::json!({"id": "a", "x": 1}));
        assert_eq!(tasks[1].origin, format!("{}:4", path.display()));
        assert_eq!(tasks[2].origin, format!("{}:5", path.display()));
    }

    #[test]
    fn empty_file_has_no_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "in.jsonl", "\n\n");
        assert!(load_inputs(&path).unwrap().is_empty());
    }

    #[test]
    fn bad_json_line_names_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "in.jsonl", "{\"id\": \"a\"}\n{\"id\": oops}\n");
        let err = load_inputs(&path).unwrap_err();
        assert_eq!((err.line, err.col), (2, 8));
        let shown = err.to_string();
        assert!(
            shown.starts_with(&format!("{}:2:8: error: not valid JSON: ", path.display())),
            "{shown}"
        );
        assert!(!shown.contains("at line"), "{shown}");
        assert!(shown.contains("\n  help: "), "{shown}");
    }

    #[test]
    fn non_object_line_points_at_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "in.jsonl", "{}\n  [1, 2]\n");
        let err = load_inputs(&path).unwrap_err();
        assert_eq!((err.line, err.col), (2, 1));
        assert!(err.message.contains("an array, not a JSON object"), "{err}");
    }

    #[test]
    fn bad_and_duplicate_ids_in_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = write(dir.path(), "in.jsonl", "{\"id\": \"a b\"}\n");
        let err = load_inputs(&path).unwrap_err();
        assert_eq!(err.line, 1);
        assert!(err.help.contains("letters, digits"), "{err}");

        let path = write(dir.path(), "f.jsonl", "{\"id\": 1.5}\n");
        assert!(
            load_inputs(&path)
                .unwrap_err()
                .message
                .contains("string or a whole number")
        );

        let path = write(
            dir.path(),
            "dup.jsonl",
            "{\"id\": \"a\"}\n{\"id\": \"b\"}\n{\"id\": \"a\"}\n",
        );
        let err = load_inputs(&path).unwrap_err();
        assert_eq!((err.line, err.col), (3, 1));
        let shown = err.to_string();
        assert!(
            shown.contains(&format!(
                "dup.jsonl:3:1: error: duplicate task id \"a\", first used at {}:1",
                path.display()
            )),
            "{shown}"
        );
    }

    #[test]
    fn folder_of_json_files() {
        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), "b.json", "{\"text\": \"second\"}");
        write(
            dir.path(),
            "a.json",
            "{\n  \"id\": \"first\",\n  \"text\": \"one\"\n}\n",
        );
        write(dir.path(), "notes.txt", "not a task");
        write(dir.path(), ".c.json", "garbage");
        std::fs::create_dir(dir.path().join("sub.json")).unwrap();
        let tasks = load_inputs(dir.path()).unwrap();
        let ids: Vec<Option<&str>> = tasks.iter().map(|t| t.id.as_deref()).collect();
        assert_eq!(ids, [Some("first"), Some("b")]);
        assert_eq!(tasks[1].input, serde_json::json!({"text": "second"}));
        assert_eq!(
            tasks[0].origin,
            dir.path().join("a.json").display().to_string()
        );
    }

    #[test]
    fn folder_problems() {
        let dir = tempfile::tempdir().unwrap();
        let bad = write(dir.path(), "x.json", "{\n  \"a\": ,\n}");
        let err = load_inputs(dir.path()).unwrap_err();
        assert_eq!((err.file.clone(), err.line, err.col), (bad.clone(), 2, 8));
        std::fs::remove_file(&bad).unwrap();

        write(dir.path(), "y.json", "\n  42");
        let err = load_inputs(dir.path()).unwrap_err();
        assert_eq!((err.line, err.col), (2, 3));
        assert!(err.message.contains("a number, not a JSON object"));
        std::fs::remove_file(dir.path().join("y.json")).unwrap();

        write(dir.path(), "a b.json", "{}");
        let err = load_inputs(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("a b.json: error: the file name does not make a task id"),
            "{err}"
        );
        std::fs::remove_file(dir.path().join("a b.json")).unwrap();

        write(dir.path(), "one.json", "{}");
        let second = write(dir.path(), "two.json", "{\"id\": \"one\"}");
        let err = load_inputs(dir.path()).unwrap_err();
        assert_eq!(err.file, second);
        assert!(
            err.message.contains(&format!(
                "first used at {}",
                dir.path().join("one.json").display()
            )),
            "{err}"
        );
    }

    #[test]
    fn missing_input_is_an_error() {
        let err = load_inputs(Path::new("/no/such/inputs.jsonl")).unwrap_err();
        assert_eq!(err.line, 0);
        assert!(
            err.to_string()
                .starts_with("/no/such/inputs.jsonl: error: cannot read the inputs")
        );
    }
}
