//! Acting on many tasks at once: rows marked with space, or every task a
//! `:` command line's filter keeps (`:approve phase:qa state:awaiting_review`).
//! Either way one confirmation shows how many, then one command per task.

use crate::engine::event::Action as Decide;
use crate::filter::{Field, Filter, Number};

/// Makes the decision an action name stands for.
type MakeDecision = fn() -> Decide;

/// The actions a command line or marks can take, by the names typed.
pub const ACTIONS: [(&str, MakeDecision); 7] = [
    ("approve", || Decide::Approve),
    ("reject", || Decide::Reject),
    ("retry", || Decide::Retry),
    ("cancel", || Decide::Cancel),
    ("resolve-retry", || Decide::ResolveRetry),
    ("resolve-skip", || Decide::ResolveSkip),
    ("resolve-fail", || Decide::ResolveFail),
];

/// A command line taken apart: the action, and the filter that picks tasks.
#[derive(Debug, Clone, PartialEq)]
pub struct CommandLine {
    pub action: Decide,
    pub filter: Filter,
    pub filter_text: String,
}

/// Parses `ACTION FILTER`; the error says what is wrong and where.
pub fn parse(line: &str) -> Result<CommandLine, String> {
    let line = line.trim_start_matches(':').trim();
    let (verb, rest) = line.split_once(' ').unwrap_or((line, ""));
    let Some((_, make)) = ACTIONS.iter().find(|(name, _)| *name == verb) else {
        let names: Vec<&str> = ACTIONS.iter().map(|(n, _)| *n).collect();
        return Err(format!(
            "{verb:?} is not an action; use one of {} (tab completes)",
            names.join(", ")
        ));
    };
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(format!(
            "{verb} what? give a filter, e.g. :{verb} phase:qa state:awaiting_review"
        ));
    }
    let filter = Filter::parse(rest).map_err(|e| e.to_string())?;
    Ok(CommandLine {
        action: make(),
        filter,
        filter_text: rest.to_string(),
    })
}

/// Completes the last word of `line` (Tab): the action first, then the
/// filter's field names, states and the pipeline's phases. The longest
/// completion all candidates share; `None` when nothing fits.
pub fn complete(line: &str, phases: &[String]) -> Option<String> {
    let (head, word) = match line.rfind(' ') {
        Some(i) => (&line[..=i], &line[i + 1..]),
        None => ("", line),
    };
    let candidates: Vec<String> = if head.is_empty() {
        ACTIONS.iter().map(|(n, _)| n.to_string()).collect()
    } else if let Some(value) = word.strip_prefix("state:") {
        let _ = value;
        crate::engine::TaskState::ALL
            .iter()
            .map(|s| format!("state:{}", s.as_str()))
            .collect()
    } else if word.starts_with("phase:") {
        phases.iter().map(|p| format!("phase:{p}")).collect()
    } else {
        Field::ALL
            .iter()
            .map(|(_, n)| format!("{n}:"))
            .chain(Number::ALL.iter().map(|(_, n)| format!("{n}>")))
            .collect()
    };
    let fits: Vec<&String> = candidates.iter().filter(|c| c.starts_with(word)).collect();
    let first = fits.first()?;
    let mut common = first.as_str();
    for c in &fits[1..] {
        let n = common
            .char_indices()
            .zip(c.chars())
            .take_while(|((_, a), b)| a == b)
            .count();
        common = &common[..common
            .char_indices()
            .nth(n)
            .map_or(common.len(), |(i, _)| i)];
    }
    if common.len() <= word.len() {
        return None;
    }
    let space = if fits.len() == 1 && head.is_empty() {
        " "
    } else {
        ""
    };
    Some(format!("{head}{common}{space}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_line_is_an_action_and_a_filter() {
        let c = parse(":approve phase:qa state:awaiting_review").unwrap();
        assert_eq!(c.action, Decide::Approve);
        assert_eq!(c.filter.terms.len(), 2);
        assert_eq!(c.filter_text, "phase:qa state:awaiting_review");
        assert!(parse("approve").unwrap_err().contains("give a filter"));
        assert!(parse("bless all").unwrap_err().contains("not an action"));
        assert!(
            parse("cancel state:nope")
                .unwrap_err()
                .contains("at character 7")
        );
    }

    #[test]
    fn tab_completes_actions_fields_states_and_phases() {
        let phases = vec!["plan".to_string(), "qa".to_string()];
        assert_eq!(complete("appr", &phases).as_deref(), Some("approve "));
        assert_eq!(complete("resolve", &phases).as_deref(), Some("resolve-"));
        assert_eq!(
            complete("approve ph", &phases).as_deref(),
            Some("approve phase:")
        );
        assert_eq!(
            complete("approve phase:q", &phases).as_deref(),
            Some("approve phase:qa")
        );
        assert_eq!(
            complete("cancel state:aw", &phases).as_deref(),
            Some("cancel state:awaiting_review")
        );
        assert_eq!(complete("cancel zz", &phases), None);
    }
}
