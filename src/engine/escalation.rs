//! What an agent adds when it hands a task to a person: what it tried and
//! how severe the problem is. Carried by `blocked` and `review` replies and
//! kept with the hold, so the queue, the detail and the run log can show it.

use serde::{Deserialize, Serialize};

/// Most entries of `attempted` kept; an agent listing more is cut, not refused.
pub const MAX_ATTEMPTED: usize = 20;
/// Most characters of one `attempted` entry kept.
pub const MAX_ATTEMPTED_CHARS: usize = 500;

/// How bad an escalation is, as the agent judges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Medium,
        Severity::High,
        Severity::Critical,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Severity> {
        Severity::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the agent tried before asking, and how severe it says the problem is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Escalation {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attempted: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
}

impl Escalation {
    pub fn is_empty(&self) -> bool {
        self.attempted.is_empty() && self.severity.is_none()
    }

    /// Reads the `attempted` and `severity` keys of a reply's `blocked` or
    /// `review` object. `attempted` is a string or a list of strings.
    pub fn from_reply(obj: &serde_json::Value) -> Result<Escalation, String> {
        use serde_json::Value;
        let attempted = match obj.get("attempted") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err("has \"attempted\" with an entry that is not a string".to_string()),
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(
                    "has \"attempted\" that is neither a string nor a list of strings".into(),
                );
            }
        };
        let severity = match obj.get("severity") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(Severity::parse(s).ok_or_else(|| {
                format!("has \"severity\" \"{s}\"; use one of low, medium, high, critical")
            })?),
            Some(_) => {
                return Err(
                    "has \"severity\" that is not a string (low, medium, high or critical)".into(),
                );
            }
        };
        let mut e = Escalation {
            attempted,
            severity,
        };
        e.bound();
        Ok(e)
    }

    /// Keeps at most `MAX_ATTEMPTED` entries of `MAX_ATTEMPTED_CHARS` each.
    pub fn bound(&mut self) {
        let extra = self.attempted.len().saturating_sub(MAX_ATTEMPTED);
        self.attempted.truncate(MAX_ATTEMPTED);
        for entry in &mut self.attempted {
            if let Some((cut, _)) = entry.char_indices().nth(MAX_ATTEMPTED_CHARS) {
                entry.truncate(cut);
                entry.push('…');
            }
        }
        if extra > 0 {
            self.attempted.push(format!("… and {extra} more"));
        }
    }

    /// `reason` between the severity and what was tried: "high · REASON ·
    /// tried: a; b", leaving out what is absent. Each view writes the
    /// severity and the tried entries its own way (`severity`, `entry`).
    pub fn around(
        &self,
        reason: &str,
        severity: impl Fn(Severity) -> String,
        entry: impl Fn(&str) -> String,
    ) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.severity {
            parts.push(severity(s));
        }
        parts.push(reason.to_string());
        if !self.attempted.is_empty() {
            let tried: Vec<String> = self.attempted.iter().map(|a| entry(a)).collect();
            parts.push(format!("tried: {}", tried.join("; ")));
        }
        parts.join(" · ")
    }

    /// `text (high · tried: a; b)`, or `text` alone when the agent said neither.
    pub fn after(&self, text: String) -> String {
        if self.is_empty() {
            text
        } else {
            format!("{text} ({})", self.describe())
        }
    }

    /// "high · tried: a; b", leaving out what is absent; empty when nothing is.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = self.severity {
            parts.push(s.as_str().to_string());
        }
        if !self.attempted.is_empty() {
            parts.push(format!("tried: {}", self.attempted.join("; ")));
        }
        parts.join(" · ")
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_a_string_or_a_list_and_a_severity() {
        let one = Escalation::from_reply(
            &json!({"reason": "r", "attempted": "grep", "severity": "high"}),
        )
        .unwrap();
        assert_eq!(one.attempted, ["grep"]);
        assert_eq!(one.severity, Some(Severity::High));
        assert_eq!(one.describe(), "high · tried: grep");
        let list = Escalation::from_reply(&json!({"attempted": ["a", "b"]})).unwrap();
        assert_eq!(list.describe(), "tried: a; b");
        assert!(
            Escalation::from_reply(&json!({"reason": "r"}))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn refuses_what_it_cannot_read_and_says_what_would_do() {
        let bad = Escalation::from_reply(&json!({"severity": "urgent"})).unwrap_err();
        assert!(bad.contains("low, medium, high, critical"), "{bad}");
        assert!(Escalation::from_reply(&json!({"attempted": 3})).is_err());
        assert!(Escalation::from_reply(&json!({"attempted": ["a", 1]})).is_err());
        assert!(Escalation::from_reply(&json!({"severity": 2})).is_err());
    }

    #[test]
    fn long_lists_and_entries_are_cut() {
        let many: Vec<String> = (0..30).map(|i| format!("step {i}")).collect();
        let e = Escalation::from_reply(&json!({"attempted": many, "severity": "low"})).unwrap();
        assert_eq!(e.attempted.len(), MAX_ATTEMPTED + 1);
        assert_eq!(e.attempted.last().unwrap(), "… and 10 more");
        let long = "x".repeat(2000);
        let e = Escalation::from_reply(&json!({"attempted": long})).unwrap();
        assert_eq!(e.attempted[0].chars().count(), MAX_ATTEMPTED_CHARS + 1);
    }
}
