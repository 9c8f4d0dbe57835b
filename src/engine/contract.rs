//! A phase's output contract: the top-level keys of `required_output` and
//! the JSON Schema of `output_schema`. Both apply when both are set; an
//! output that breaks either fails the attempt with class `contract`.

use serde_json::Value;

use super::advance::missing_fields;
use crate::spec::model::PhaseSpec;

/// Why `output` breaks the phase's contract, or `None` when it keeps it.
pub fn broken(spec: &PhaseSpec, output: &Value) -> Option<String> {
    let mut why = Vec::new();
    if !spec.required_output.is_empty() {
        if !output.is_object() {
            why.push(format!(
                "output is not an object with {}",
                spec.required_output.join(", ")
            ));
        } else {
            let missing = missing_fields(output, &spec.required_output);
            if !missing.is_empty() {
                why.push(format!(
                    "output lacks required field(s): {}",
                    missing.join(", ")
                ));
            }
        }
    }
    if let Some(message) = spec.output_schema.as_ref().and_then(|s| s.message(output)) {
        why.push(message);
    }
    (!why.is_empty()).then(|| why.join("; "))
}
