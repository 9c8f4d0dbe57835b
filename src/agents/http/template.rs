//! Prompt templates: text with `{{…}}` places filled from the request.
//!
//! - `{{input}}`: the task input as JSON; `{{input.a.b}}`: a field of it
//! - `{{outputs.PHASE}}`: an earlier phase's output; `{{outputs.PHASE.f}}`: a field of it
//! - `{{feedback}}`: a reviewer's feedback, or nothing
//! - `{{item}}`, `{{item.f}}`, `{{item_index}}`: in a `for_each` phase, the
//!   item this call is for, a field of it, and its place in the list from 0
//!
//! Strings are put in as they are; other values as compact JSON. Parsing
//! happens when the pipeline loads, so that a bad place is reported with
//! its position in the file.

use serde_json::Value;

use crate::agents::AgentRequest;

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    /// An empty path is the whole input.
    Input(Vec<String>),
    Output {
        phase: String,
        path: Vec<String>,
    },
    Feedback,
    /// An empty path is the whole item.
    Item(Vec<String>),
    ItemIndex,
}

/// A parsed template.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    parts: Vec<Part>,
    /// Phase ids named by `outputs.*`, each with the byte offset of its
    /// `{{` in the template text.
    phase_refs: Vec<(usize, String)>,
}

/// A problem in a template, at a byte offset in its text.
#[derive(Debug, Clone, PartialEq)]
pub struct TemplateError {
    pub offset: usize,
    pub message: String,
    pub help: String,
}

const FORMS: &str = "places are {{input}}, {{input.FIELD}}, {{outputs.PHASE}}, {{outputs.PHASE.FIELD}}, {{feedback}}, and in a for_each phase {{item}}, {{item.FIELD}} and {{item_index}}";

fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_alphanumeric() || c == '_' || c == '-')
}

impl Template {
    pub fn parse(text: &str) -> Result<Template, TemplateError> {
        let mut parts = Vec::new();
        let mut phase_refs = Vec::new();
        let mut rest = text;
        let mut at = 0;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_string()));
            }
            let start = at + open;
            let after = &rest[open + 2..];
            let Some(close) = after.find("}}") else {
                return Err(TemplateError {
                    offset: start,
                    message: "`{{` is not closed by `}}`".into(),
                    help: format!("close the place with `}}}}`; {FORMS}"),
                });
            };
            let inner = &after[..close];
            if inner.contains("{{") {
                return Err(TemplateError {
                    offset: start,
                    message: "`{{` is not closed by `}}` before the next `{{`".into(),
                    help: format!("close the place with `}}}}`; {FORMS}"),
                });
            }
            let expr = inner.trim();
            let segments: Vec<&str> = expr.split('.').collect();
            let bad = |why: String| TemplateError {
                offset: start,
                message: why,
                help: FORMS.to_string(),
            };
            let path = |from: usize| -> Result<Vec<String>, TemplateError> {
                segments[from..]
                    .iter()
                    .map(|s| {
                        if is_name(s) {
                            Ok(s.to_string())
                        } else {
                            Err(bad(format!(
                                "`{{{{{expr}}}}}` has an empty or odd field name \"{s}\""
                            )))
                        }
                    })
                    .collect()
            };
            let part = match segments[0] {
                "input" => Part::Input(path(1)?),
                "feedback" if segments.len() == 1 => Part::Feedback,
                "item" => Part::Item(path(1)?),
                "item_index" if segments.len() == 1 => Part::ItemIndex,
                "outputs" if segments.len() >= 2 => {
                    let p = path(1)?;
                    phase_refs.push((start, p[0].clone()));
                    Part::Output {
                        phase: p[0].clone(),
                        path: p[1..].to_vec(),
                    }
                }
                "outputs" => {
                    return Err(bad(
                        "`{{outputs}}` needs a phase: `{{outputs.PHASE}}`".to_string()
                    ));
                }
                _ => return Err(bad(format!("unknown place `{{{{{expr}}}}}`"))),
            };
            parts.push(part);
            let consumed = open + 2 + close + 2;
            rest = &rest[consumed..];
            at += consumed;
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_string()));
        }
        Ok(Template { parts, phase_refs })
    }

    /// Phase ids named by `{{outputs.PHASE…}}`, with the offset of each place.
    pub fn phase_refs(&self) -> &[(usize, String)] {
        &self.phase_refs
    }

    /// Whether the template has a `{{feedback}}` place.
    pub fn uses_feedback(&self) -> bool {
        self.parts.contains(&Part::Feedback)
    }

    /// The text for one request. A place whose value the request lacks is
    /// an error naming it.
    pub fn render(&self, request: &AgentRequest) -> Result<String, String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Feedback => out.push_str(request.feedback.as_deref().unwrap_or("")),
                Part::Item(path) => {
                    let item = request
                        .item
                        .as_ref()
                        .ok_or_else(|| no_item(request, "item"))?;
                    let v = lookup(item, path).ok_or_else(|| {
                        format!(
                            "the prompt uses item.{}, which item {} does not have",
                            path.join("."),
                            request.item_index.unwrap_or_default()
                        )
                    })?;
                    put(&mut out, v);
                }
                Part::ItemIndex => {
                    let i = request
                        .item_index
                        .ok_or_else(|| no_item(request, "item_index"))?;
                    out.push_str(&i.to_string());
                }
                Part::Input(path) => {
                    let v = lookup(&request.task.input, path).ok_or_else(|| {
                        format!(
                            "the prompt uses input.{}, which task {} does not have",
                            path.join("."),
                            request.task.id
                        )
                    })?;
                    put(&mut out, v);
                }
                Part::Output { phase, path } => {
                    let output = request.outputs.get(phase).ok_or_else(|| {
                        format!(
                            "the prompt uses outputs.{phase}, but phase {phase} has no output yet"
                        )
                    })?;
                    let v = lookup(output, path).ok_or_else(|| {
                        format!(
                            "the prompt uses outputs.{phase}.{}, which that output does not have",
                            path.join(".")
                        )
                    })?;
                    put(&mut out, v);
                }
            }
        }
        Ok(out)
    }
}

/// A place for an item in a phase that does not run per item.
fn no_item(request: &AgentRequest, place: &str) -> String {
    format!(
        "the prompt uses {place}, but phase {} does not run per item; give it for_each = \"...\"",
        request.phase
    )
}

fn lookup<'v>(v: &'v Value, path: &[String]) -> Option<&'v Value> {
    path.iter().try_fold(v, |v, key| match v {
        Value::Object(m) => m.get(key),
        Value::Array(a) => key.parse::<usize>().ok().and_then(|i| a.get(i)),
        _ => None,
    })
}

fn put(out: &mut String, v: &Value) {
    match v {
        Value::String(s) => out.push_str(s),
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Map, json};

    use super::*;
    use crate::agents::TaskRef;

    fn request() -> AgentRequest {
        let mut outputs = Map::new();
        outputs.insert("plan".into(), json!({"steps": ["a", "b"], "title": "T"}));
        AgentRequest {
            task: TaskRef {
                id: "t1".into(),
                input: json!({"note": "chest pain", "patient": {"age": 54}}),
            },
            phase: "code".into(),
            attempt: 1,
            outputs,
            feedback: Some("shorter".into()),
            model: None,
            item: None,
            item_index: None,
            send_back: None,
        }
    }

    #[test]
    fn fills_every_kind_of_place() {
        let t = Template::parse(
            "Note: {{input.note}} ({{ input.patient.age }})\n{{input}}\n{{outputs.plan.title}} {{outputs.plan.steps.1}} {{outputs.plan}}\n{{feedback}}",
        )
        .unwrap();
        assert_eq!(
            t.render(&request()).unwrap(),
            "Note: chest pain (54)\n{\"note\":\"chest pain\",\"patient\":{\"age\":54}}\nT b {\"steps\":[\"a\",\"b\"],\"title\":\"T\"}\nshorter"
        );
        assert_eq!(t.phase_refs().len(), 3);
        assert_eq!(t.phase_refs()[0].1, "plan");
    }

    #[test]
    fn an_item_and_its_index_fill_their_places() {
        let t = Template::parse("Scene {{item_index}}: {{item.title}} {{item}}").unwrap();
        let mut r = request();
        let err = t.render(&r).unwrap_err();
        assert!(err.contains("does not run per item"), "{err}");
        r.item = Some(json!({"title": "Dawn"}));
        r.item_index = Some(3);
        assert_eq!(t.render(&r).unwrap(), "Scene 3: Dawn {\"title\":\"Dawn\"}");
    }

    #[test]
    fn plain_text_and_single_braces_are_kept() {
        let t = Template::parse("reply as {\"a\": 1} }} done").unwrap();
        assert_eq!(t.render(&request()).unwrap(), "reply as {\"a\": 1} }} done");
    }

    #[test]
    fn bad_places_are_found_at_their_offset() {
        let e = Template::parse("abc {{input.note").unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.message.contains("not closed"));
        let e = Template::parse("x {{inputs.note}}").unwrap_err();
        assert_eq!(
            (e.offset, e.message.as_str()),
            (2, "unknown place `{{inputs.note}}`")
        );
        let e = Template::parse("{{outputs}}").unwrap_err();
        assert!(e.message.contains("needs a phase"));
        let e = Template::parse("{{input..x}}").unwrap_err();
        assert!(e.message.contains("odd field name"));
        let e = Template::parse("{{feedback.x}}").unwrap_err();
        assert!(e.message.contains("unknown place"));
    }

    #[test]
    fn missing_values_are_errors_that_name_them() {
        let t = Template::parse("{{input.nope}}").unwrap();
        assert!(t.render(&request()).unwrap_err().contains("input.nope"));
        let t = Template::parse("{{outputs.review}}").unwrap();
        assert!(
            t.render(&request())
                .unwrap_err()
                .contains("phase review has no output")
        );
        let mut r = request();
        r.feedback = None;
        let t = Template::parse("[{{feedback}}]").unwrap();
        assert_eq!(t.render(&r).unwrap(), "[]");
    }
}
