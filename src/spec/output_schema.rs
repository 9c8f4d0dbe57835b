//! `output_schema` on a phase: a JSON Schema the phase's output must
//! satisfy, from a file beside the pipeline or an inline table. It is read
//! and compiled once, when the pipeline loads, so that a broken schema is a
//! load error at the key, and attempts only check against it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;
use toml::de::DeValue;

use super::error::Diag;
use super::paths::resolve;
use super::raw::{Table, Value as TomlValue, wide_integer_value};

/// Rules listed in one violation message; the rest are counted.
const MAX_SHOWN: usize = 10;
/// Characters of one rule's text (which quotes the offending value).
const MAX_RULE: usize = 200;
/// Characters of one JSON pointer.
const MAX_POINTER: usize = 120;

/// A compiled JSON Schema for a phase's output. Cloning shares it.
#[derive(Clone)]
pub struct OutputSchema {
    /// How messages name it: the path as written, or "the inline schema".
    pub label: String,
    /// The schema file, resolved against the pipeline's folder; `None` inline.
    pub file: Option<PathBuf>,
    /// The schema file's text as read, kept with a run so that the run goes
    /// on with the same contract whatever happens to the file.
    pub text: Option<Arc<str>>,
    /// The schema itself.
    pub document: Arc<Value>,
    validator: Arc<jsonschema::Validator>,
}

impl fmt::Debug for OutputSchema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OutputSchema")
            .field("label", &self.label)
            .field("document", &self.document)
            .finish_non_exhaustive()
    }
}

impl OutputSchema {
    /// Compiles `document`, or says why it is not a JSON Schema.
    pub fn compile(label: String, document: Value) -> Result<OutputSchema, String> {
        let validator = jsonschema::validator_for(&document).map_err(|e| {
            if let jsonschema::error::ValidationErrorKind::Referencing(
                jsonschema::ReferencingError::Unretrievable { uri, .. },
            ) = e.kind()
            {
                return format!(
                    "`$ref` to {uri} leads outside the schema, which is not followed; copy what it refers to under \"$defs\" and refer to it as \"#/$defs/NAME\""
                );
            }
            let at = e.instance_path().as_str();
            match at {
                "" => e.to_string(),
                _ => format!("{e} (at {at} in the schema)"),
            }
        })?;
        Ok(OutputSchema {
            label,
            file: None,
            text: None,
            document: Arc::new(document),
            validator: Arc::new(validator),
        })
    }

    /// Whether `output` satisfies the schema.
    pub fn holds(&self, output: &Value) -> bool {
        self.validator.is_valid(output)
    }

    /// How `output` breaks the schema, one `POINTER: RULE` per line, the
    /// first few of them, each cut short; `None` when it satisfies it.
    pub fn violations(&self, output: &Value) -> Option<Vec<String>> {
        if self.validator.is_valid(output) {
            return None;
        }
        let mut shown = Vec::new();
        let mut more = 0usize;
        for e in self.validator.iter_errors(output) {
            if shown.len() == MAX_SHOWN {
                more += 1;
                continue;
            }
            let pointer = match e.instance_path().as_str() {
                "" => "(the output)".to_string(),
                p => cut(p, MAX_POINTER),
            };
            shown.push(format!("{pointer}: {}", cut(&e.to_string(), MAX_RULE)));
        }
        if more > 0 {
            shown.push(format!("and {more} more"));
        }
        Some(shown)
    }

    /// The message of an attempt whose output breaks the schema.
    pub fn message(&self, output: &Value) -> Option<String> {
        let broken = self.violations(output)?;
        Some(format!(
            "output breaks its schema ({}): {}",
            self.label,
            broken.join("; ")
        ))
    }
}

/// At most `max` characters of `s`, with `…` when cut.
fn cut(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_string(),
        Some((at, _)) => format!("{}…", &s[..at]),
    }
}

/// Where schema files are read from: the disk, relative to the pipeline's
/// folder, unless a run kept a copy of the file (then the copy wins, so a
/// run goes on with the contract it started with).
pub struct SchemaFiles<'a> {
    pub(crate) base_dir: &'a Path,
    pub(crate) kept: &'a BTreeMap<PathBuf, String>,
}

impl SchemaFiles<'_> {
    fn read(&self, written: &str) -> (PathBuf, std::io::Result<String>) {
        let path = resolve(self.base_dir, written);
        if let Some(text) = self.kept.get(&path) {
            return (path, Ok(text.clone()));
        }
        let text = std::fs::read(&path).and_then(|bytes| {
            String::from_utf8(bytes)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        });
        (path, text)
    }
}

const HOW: &str = "write output_schema = \"schemas/NAME.json\" (a JSON Schema file, relative to this pipeline file) or an inline table such as output_schema = { type = \"object\", required = [\"id\"] }";

/// Reads `output_schema` of a phase table, if present: the file it names or
/// the inline table, parsed and compiled. Each problem is reported at the
/// key's value.
pub(crate) fn read_output_schema(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    files: &SchemaFiles<'_>,
) -> Option<OutputSchema> {
    let v = t.get("output_schema")?;
    let span = v.span();
    let (label, file, text, document) = match v.get_ref() {
        DeValue::String(written) if written.trim().is_empty() => {
            d.error(span, format!("`output_schema` {} is empty", t.place), HOW);
            return None;
        }
        DeValue::String(written) => {
            let (path, read) = files.read(written);
            let text = match read {
                Ok(text) => text,
                Err(e) => {
                    d.error(
                        span,
                        format!(
                            "cannot read the output schema {} {}: {e}",
                            path.display(),
                            t.place
                        ),
                        format!(
                            "check the path: it is relative to the pipeline file's folder ({}); or write the schema inline as a table",
                            files.base_dir.display()
                        ),
                    );
                    return None;
                }
            };
            let document: Value = match serde_json::from_str(&text) {
                Ok(doc) => doc,
                Err(e) => {
                    d.error(
                        span,
                        format!(
                            "the output schema {}:{}:{} {} is not JSON: {}",
                            path.display(),
                            e.line(),
                            e.column(),
                            t.place,
                            without_position(&e)
                        ),
                        "fix the JSON at that line and column of the schema file (a JSON Schema is a JSON object, e.g. {\"type\": \"object\"})",
                    );
                    return None;
                }
            };
            (written.to_string(), Some(path), Some(text), document)
        }
        DeValue::Table(_) => match to_json(v) {
            Ok(doc) => ("the inline schema".to_string(), None, None, doc),
            Err((at, why)) => {
                d.error(
                    at,
                    format!("`output_schema` {} holds {why}", t.place),
                    "JSON has no dates or non-finite numbers: write them as strings, or use numbers within the 64-bit range",
                );
                return None;
            }
        },
        other => {
            d.error(
                span,
                format!(
                    "`output_schema` {} must be a path to a JSON Schema file or a table, not {}",
                    t.place,
                    super::raw::a_type(other)
                ),
                HOW,
            );
            return None;
        }
    };
    match OutputSchema::compile(label.clone(), document) {
        Ok(mut schema) => {
            schema.file = file;
            schema.text = text.map(Arc::from);
            Some(schema)
        }
        Err(why) => {
            d.error(
                span,
                format!(
                    "`output_schema` {} is not a valid JSON Schema ({label}): {why}",
                    t.place
                ),
                "fix the schema; see https://json-schema.org/understanding-json-schema for its keywords",
            );
            None
        }
    }
}

/// serde_json's message without its own " at line L column C", which the
/// message gives as `file:L:C` instead.
fn without_position(e: &serde_json::Error) -> String {
    let full = e.to_string();
    let tail = format!(" at line {} column {}", e.line(), e.column());
    full.strip_suffix(&tail).unwrap_or(&full).to_string()
}

/// A TOML value as JSON, or where and why it cannot be.
fn to_json(v: &TomlValue<'_>) -> Result<Value, (std::ops::Range<usize>, String)> {
    Ok(match v.get_ref() {
        DeValue::String(s) => Value::String(s.to_string()),
        DeValue::Boolean(b) => Value::Bool(*b),
        DeValue::Integer(_) => match wide_integer_value(v.get_ref()) {
            Some(n) if i64::try_from(n).is_ok() => Value::from(n as i64),
            Some(n) if u64::try_from(n).is_ok() => Value::from(n as u64),
            _ => return Err((v.span(), "an integer past the 64-bit range".into())),
        },
        DeValue::Float(f) => {
            let n = f.as_str().replace('_', "").parse::<f64>().ok();
            match n.and_then(serde_json::Number::from_f64) {
                Some(n) => Value::Number(n),
                None => return Err((v.span(), format!("the number {}", f.as_str()))),
            }
        }
        DeValue::Datetime(_) => return Err((v.span(), "a date-time".into())),
        DeValue::Array(items) => Value::Array(items.iter().map(to_json).collect::<Result<_, _>>()?),
        DeValue::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| Ok((k.get_ref().to_string(), to_json(v)?)))
                .collect::<Result<_, _>>()?,
        ),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use serde_json::json;

    use crate::spec::model::Pipeline;
    use crate::spec::{parse, parse_kept};

    /// Five lines: the phase's own keys start on line 6.
    const HEAD: &str =
        "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"light\"\nagent = \"a\"\n";

    const LIGHTING: &str = r#"{
  "type": "object",
  "required": ["groups"],
  "properties": {
    "groups": {
      "type": "array",
      "items": {
        "type": "object",
        "required": ["id", "intensity"],
        "properties": {
          "id": {"type": "string"},
          "intensity": {"type": "number", "minimum": 0, "maximum": 1}
        }
      }
    }
  }
}"#;

    /// Parses HEAD plus `rest` as `dir/p.toml`; errors name paths in `dir`
    /// relative to it.
    fn load_in(dir: &Path, rest: &str) -> Result<Pipeline, String> {
        parse(&format!("{HEAD}{rest}"), &dir.join("p.toml"))
            .map_err(|e| e.to_string().replace(&format!("{}/", dir.display()), ""))
    }

    fn with_file(name: &str, text: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        dir
    }

    #[test]
    fn a_schema_file_is_read_relative_to_the_pipeline_and_checks_outputs() {
        let dir = with_file("schemas/lighting.json", LIGHTING);
        let p = load_in(dir.path(), "output_schema = \"schemas/lighting.json\"\n").unwrap();
        let schema = p.phases[0].output_schema.as_ref().unwrap();
        assert_eq!(schema.label, "schemas/lighting.json");
        assert_eq!(
            schema.file.as_deref(),
            Some(dir.path().join("schemas/lighting.json").as_path())
        );
        assert!(schema.holds(&json!({"groups": [{"id": "g1", "intensity": 0.5}]})));
        let bad = json!({"groups": [
            {"id": "a", "intensity": 0.2},
            {"id": "b", "intensity": 0.3},
            {"id": "c", "intensity": 1.4},
            {"intensity": 0.1}
        ]});
        assert_eq!(
            schema.violations(&bad).unwrap(),
            [
                "/groups/2/intensity: 1.4 is greater than the maximum of 1",
                "/groups/3: \"id\" is a required property",
            ]
        );
        assert_eq!(
            schema.violations(&json!({})).unwrap(),
            ["(the output): \"groups\" is a required property"]
        );
        assert_eq!(
            p.schema_files(),
            BTreeMap::from([(
                dir.path().join("schemas/lighting.json"),
                LIGHTING.to_string()
            )])
        );
    }

    #[test]
    fn violations_are_bounded_in_number_and_length() {
        let dir = with_file(
            "s.json",
            r#"{"type": "object", "additionalProperties": {"type": "integer"}}"#,
        );
        let p = load_in(dir.path(), "output_schema = \"s.json\"\n").unwrap();
        let schema = p.phases[0].output_schema.as_ref().unwrap();
        let mut output = serde_json::Map::new();
        for i in 0..25 {
            output.insert(format!("k{i:02}"), json!("x".repeat(10_000)));
        }
        let shown = schema
            .violations(&serde_json::Value::Object(output.clone()))
            .unwrap();
        assert_eq!(shown.len(), 11, "{shown:?}");
        assert_eq!(shown[10], "and 15 more");
        assert!(shown[0].starts_with("/k00: \"xxx"), "{}", shown[0]);
        assert!(
            shown[0].ends_with('…') && shown[0].chars().count() < 220,
            "{}",
            shown[0]
        );
        let message = schema.message(&serde_json::Value::Object(output)).unwrap();
        assert!(
            message.starts_with("output breaks its schema (s.json): /k00: "),
            "{message}"
        );
        assert!(message.len() < 3_000, "{}", message.len());
    }

    #[test]
    fn a_missing_file_is_an_error_at_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_in(dir.path(), "output_schema = \"schemas/none.json\"\n").unwrap_err();
        assert!(
            err.starts_with("p.toml:7:17: error: cannot read the output schema schemas/none.json in phase \"light\": No such file or directory"),
            "{err}"
        );
        assert!(
            err.contains("help: check the path: it is relative to the pipeline file's folder"),
            "{err}"
        );
    }

    #[test]
    fn a_file_that_is_not_json_names_both_places() {
        let dir = with_file("s.json", "{\n  \"type\": \"object\",\n  oops\n}\n");
        let err = load_in(dir.path(), "output_schema = \"s.json\"\n").unwrap_err();
        assert!(
            err.starts_with("p.toml:7:17: error: the output schema s.json:3:3 in phase \"light\" is not JSON: key must be a string"),
            "{err}"
        );
        assert!(
            err.contains("help: fix the JSON at that line and column"),
            "{err}"
        );
    }

    #[test]
    fn a_document_that_is_not_a_json_schema_is_an_error_at_the_key() {
        let dir = with_file("s.json", r#"{"type": "objekt"}"#);
        let err = load_in(dir.path(), "output_schema = \"s.json\"\n").unwrap_err();
        assert!(
            err.starts_with(
                "p.toml:7:17: error: `output_schema` in phase \"light\" is not a valid JSON Schema (s.json): "
            ),
            "{err}"
        );
        assert!(err.contains("objekt"), "{err}");
        assert!(err.contains("help: fix the schema"), "{err}");
        // A reference to another file is not followed: the schema must stand alone.
        for reference in ["other.json", "https://example.com/lighting.json"] {
            let dir = with_file("s.json", &format!(r#"{{"$ref": "{reference}"}}"#));
            let err = load_in(dir.path(), "output_schema = \"s.json\"\n").unwrap_err();
            assert!(
                err.contains("is not a valid JSON Schema (s.json): `$ref` to "),
                "{err}"
            );
            assert!(err.contains("leads outside the schema, which is not followed; copy what it refers to under \"$defs\""), "{err}");
        }
    }

    #[test]
    fn values_of_the_wrong_type_are_errors_at_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_in(dir.path(), "output_schema = 3\n").unwrap_err();
        assert!(
            err.starts_with(
                "p.toml:7:17: error: `output_schema` in phase \"light\" must be a path to a JSON Schema file or a table, not an integer\n  help: write output_schema = \"schemas/NAME.json\""
            ),
            "{err}"
        );
        let err = load_in(dir.path(), "output_schema = \"  \"\n").unwrap_err();
        assert!(
            err.starts_with("p.toml:7:17: error: `output_schema` in phase \"light\" is empty"),
            "{err}"
        );
    }

    #[test]
    fn an_inline_table_is_a_schema_too() {
        let dir = tempfile::tempdir().unwrap();
        let p = load_in(
            dir.path(),
            "output_schema = { type = \"object\", required = [\"id\"], properties = { n = { maximum = 1.5, minimum = -2 } } }\n",
        )
        .unwrap();
        let schema = p.phases[0].output_schema.as_ref().unwrap();
        assert_eq!(schema.label, "the inline schema");
        assert!(schema.file.is_none() && p.schema_files().is_empty());
        assert!(schema.holds(&json!({"id": 1, "n": 1.5})));
        assert_eq!(
            schema.violations(&json!({"id": 1, "n": 2})).unwrap(),
            ["/n: 2 is greater than the maximum of 1.5"]
        );
        // As a sub-table of the phase.
        let p = load_in(dir.path(), "[phases.output_schema]\ntype = \"object\"\n").unwrap();
        assert!(!p.phases[0].output_schema.as_ref().unwrap().holds(&json!(1)));
        // What JSON cannot hold is named where it is.
        let err = load_in(dir.path(), "output_schema = { const = 1979-05-27 }\n").unwrap_err();
        assert!(
            err.starts_with(
                "p.toml:7:27: error: `output_schema` in phase \"light\" holds a date-time"
            ),
            "{err}"
        );
        let err = load_in(dir.path(), "output_schema = { maximum = nan }\n").unwrap_err();
        assert!(err.contains("holds the number nan"), "{err}");
        let err = load_in(dir.path(), "output_schema = { type = 5 }\n").unwrap_err();
        assert!(
            err.contains("is not a valid JSON Schema (the inline schema)"),
            "{err}"
        );
    }

    #[test]
    fn kept_copies_win_over_the_disk() {
        let dir = with_file("s.json", r#"{"required": ["a"]}"#);
        let path: PathBuf = dir.path().join("s.json");
        let kept = BTreeMap::from([(path.clone(), r#"{"required": ["b"]}"#.to_string())]);
        std::fs::remove_file(&path).unwrap();
        let text = format!("{HEAD}output_schema = \"s.json\"\n");
        let p = parse_kept(&text, &dir.path().join("p.toml"), &kept).unwrap();
        let schema = p.phases[0].output_schema.as_ref().unwrap();
        assert!(schema.holds(&json!({"b": 1})) && !schema.holds(&json!({"a": 1})));
        assert!(parse(&text, &dir.path().join("p.toml")).is_err());
    }
}
