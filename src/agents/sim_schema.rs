//! The simulator's output under a phase's `output_schema`: its usual fields
//! and an example value built from the schema, so that a pipeline with
//! schema contracts runs on the simulator. The example covers the common
//! keywords (`type`, `properties`, `required`, `items`, `minItems`, `enum`,
//! `const`, `examples`, `default`, bounds, `minLength`, local `$ref`,
//! `allOf`, `anyOf`, `oneOf`); a schema it cannot satisfy (a `pattern`, a
//! checked `format`) leaves the usual output, and the attempt fails its
//! contract.

use std::cell::Cell;

use serde_json::{Map, Value, json};

use crate::spec::model::OutputSchema;

/// How deep the example goes, so that a recursive schema ends.
const MAX_DEPTH: usize = 16;
/// Values the example may hold in all, so that a schema whose parts refer
/// back to it many times over ends soon too.
const MAX_VALUES: usize = 10_000;

/// `base` if it fits the schema; else `base` with the example's fields laid
/// over it, if that fits; else the example, if it fits; else `base`.
pub(crate) fn fit(schema: &OutputSchema, base: Value) -> Value {
    if schema.holds(&base) {
        return base;
    }
    let example = Example {
        root: &schema.document,
        left: Cell::new(MAX_VALUES),
    }
    .of(&schema.document, 0);
    if let (Value::Object(base_fields), Value::Object(fields)) = (&base, &example) {
        let mut merged = base_fields.clone();
        merged.extend(fields.clone());
        let merged = Value::Object(merged);
        if schema.holds(&merged) {
            return merged;
        }
    }
    if schema.holds(&example) {
        return example;
    }
    base
}

struct Example<'a> {
    /// For `$ref` to `#/...`.
    root: &'a Value,
    /// Values still allowed.
    left: Cell<usize>,
}

impl Example<'_> {
    fn of(&self, schema: &Value, depth: usize) -> Value {
        let Value::Object(s) = schema else {
            return json!({});
        };
        if depth > MAX_DEPTH || self.left.get() == 0 {
            return Value::Null;
        }
        self.left.set(self.left.get() - 1);
        if let Some(v) = s.get("const") {
            return v.clone();
        }
        for key in ["enum", "examples"] {
            if let Some(v) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
                return v.clone();
            }
        }
        if let Some(v) = s.get("default") {
            return v.clone();
        }
        if let Some(target) = s
            .get("$ref")
            .and_then(Value::as_str)
            .and_then(|r| r.strip_prefix('#'))
            .and_then(|pointer| self.root.pointer(pointer))
        {
            return self.of(target, depth + 1);
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(first) = s.get(key).and_then(Value::as_array).and_then(|a| a.first()) {
                return self.of(first, depth + 1);
            }
        }
        if let Some(parts) = s.get("allOf").and_then(Value::as_array) {
            let mut fields = Map::new();
            for part in parts {
                match self.of(part, depth + 1) {
                    Value::Object(more) => fields.extend(more),
                    other => return other,
                }
            }
            return Value::Object(fields);
        }
        let kind = match s.get("type") {
            Some(Value::String(t)) => t.as_str(),
            Some(Value::Array(ts)) => ts.iter().find_map(Value::as_str).unwrap_or("object"),
            _ if s.contains_key("properties") || s.contains_key("required") => "object",
            _ if s.contains_key("items") => "array",
            _ => "object",
        };
        match kind {
            "object" => self.object(s, depth),
            "array" => {
                let n = s
                    .get("minItems")
                    .and_then(Value::as_u64)
                    .unwrap_or(1)
                    .min(8);
                let item = s.get("items").map_or(json!({}), |i| self.of(i, depth + 1));
                Value::Array(vec![item; n as usize])
            }
            "string" => {
                let n = s.get("minLength").and_then(Value::as_u64).unwrap_or(0);
                let mut text = "example".to_string();
                while (text.chars().count() as u64) < n.min(1024) {
                    text.push('x');
                }
                Value::String(text)
            }
            "integer" => number(s, true),
            "number" => number(s, false),
            "boolean" => Value::Bool(false),
            "null" => Value::Null,
            _ => json!({}),
        }
    }

    /// Every property the schema names, and each required one.
    fn object(&self, s: &Map<String, Value>, depth: usize) -> Value {
        let mut fields = Map::new();
        if let Some(Value::Object(props)) = s.get("properties") {
            for (name, sub) in props {
                fields.insert(name.clone(), self.of(sub, depth + 1));
            }
        }
        for name in s
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            fields
                .entry(name.to_string())
                .or_insert_with(|| Value::String("example".into()));
        }
        Value::Object(fields)
    }
}

/// A number within the schema's bounds: the middle of two, or next to one.
fn number(s: &Map<String, Value>, whole: bool) -> Value {
    let bound = |k: &str| s.get(k).and_then(Value::as_f64);
    let step = if whole { 1.0 } else { 0.5 };
    let lo = bound("minimum").or(bound("exclusiveMinimum").map(|x| x + step));
    let hi = bound("maximum").or(bound("exclusiveMaximum").map(|x| x - step));
    let n = match (lo, hi) {
        (Some(lo), Some(hi)) => (lo + hi) / 2.0,
        (Some(lo), None) => lo,
        (None, Some(hi)) => hi.min(0.0),
        (None, None) => 0.0,
    };
    if whole {
        let n = n.floor();
        match lo.filter(|lo| n < *lo) {
            Some(lo) => json!(lo.ceil() as i64),
            None => json!(n as i64),
        }
    } else {
        serde_json::Number::from_f64(n).map_or(json!(0), Value::Number)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(document: Value) -> OutputSchema {
        OutputSchema::compile("s.json".into(), document).unwrap()
    }

    #[test]
    fn an_output_that_fits_is_left_as_it_is() {
        let s = schema(json!({"type": "object", "required": ["summary"]}));
        let base = json!({"summary": "x", "tokens": 3});
        assert_eq!(fit(&s, base.clone()), base);
    }

    #[test]
    fn the_example_fills_what_the_schema_asks() {
        let s = schema(json!({
            "type": "object",
            "required": ["groups", "scene"],
            "properties": {
                "groups": {"type": "array", "minItems": 2, "items": {
                    "type": "object",
                    "required": ["id", "intensity"],
                    "properties": {
                        "id": {"type": "string", "minLength": 10},
                        "intensity": {"type": "number", "minimum": 0, "maximum": 1},
                        "count": {"type": "integer", "exclusiveMinimum": 3},
                        "mode": {"enum": ["warm", "cold"]},
                        "node": {"$ref": "#/$defs/node"}
                    }
                }},
                "scene": {"anyOf": [{"type": "integer", "maximum": -2}, {"type": "string"}]}
            },
            "$defs": {"node": {"type": "object", "properties": {"up": {"type": "boolean"}}}}
        }));
        let out = fit(&s, json!({"summary": "sim", "tokens": 12}));
        assert!(s.holds(&out), "{out}");
        assert_eq!(out["summary"], "sim", "the usual fields stay");
        assert_eq!(out["groups"].as_array().unwrap().len(), 2);
        assert_eq!(
            out["groups"][0],
            json!({"id": "examplexxx", "intensity": 0.5, "count": 4, "mode": "warm", "node": {"up": false}})
        );
        assert_eq!(out["scene"], -2);
    }

    #[test]
    fn a_closed_schema_gets_the_example_alone() {
        let s = schema(json!({
            "type": "object",
            "additionalProperties": false,
            "properties": {"risk": {"const": "low"}}
        }));
        assert_eq!(fit(&s, json!({"summary": "sim"})), json!({"risk": "low"}));
    }

    #[test]
    fn a_schema_the_example_cannot_meet_leaves_the_usual_output() {
        let s = schema(json!({
            "type": "object",
            "required": ["code"],
            "properties": {"code": {"type": "string", "pattern": "^[0-9]{3}$"}}
        }));
        let base = json!({"summary": "sim"});
        assert_eq!(fit(&s, base.clone()), base);
        // A schema no finite value meets: the example ends, and is refused.
        let s = schema(json!({
            "type": "object",
            "required": ["next"],
            "properties": {"next": {"$ref": "#"}}
        }));
        assert_eq!(fit(&s, json!({"a": 1})), json!({"a": 1}));
        // Nor does one that refers back to itself many times over take long.
        let props: Map<String, Value> = (0..10)
            .map(|i| (format!("p{i}"), json!({"$ref": "#"})))
            .collect();
        let s = schema(
            json!({"type": "object", "properties": props, "required": ["x"],
            "additionalProperties": false}),
        );
        assert_eq!(fit(&s, json!({"a": 1})), json!({"a": 1}));
    }
}
