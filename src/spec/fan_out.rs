//! Fan-out: `for_each = "outputs.PHASE.FIELD"` (or `"input.FIELD"`) runs a
//! phase once per item of that list. Phases that follow one another with
//! the same `for_each` form a chain each item goes through on its own; a
//! later phase without `for_each` gets the items' outputs as a list.
//!
//! Read with the phase's other keys; linked once `after` is resolved, since
//! the phase named must run before this one.

use std::collections::HashMap;
use std::ops::Range;

use serde_json::Value;

use super::error::Diag;
use super::model::{OnFailure, PhaseSpec, ReviewMode};
use super::raw::Table;
use super::suggest::did_you_mean;

/// The most items one task's fan-out may have; a longer list fails the task.
pub const MAX_ITEMS: usize = 10_000;

/// How a phase runs once per item.
#[derive(Debug, Clone, PartialEq)]
pub struct FanOut {
    /// The list, as written: `outputs.scenes.items`.
    pub text: String,
    pub source: ItemSource,
    pub on_item_failure: ItemFailure,
    /// Items of the chain in flight at once for one task; set on the
    /// chain's first phase. `None`: the run's `concurrency`.
    pub max_items_in_flight: Option<usize>,
    /// The phase before this one in its chain: item i here starts once
    /// item i there is done. `None` for the chain's first phase.
    pub chain_prev: Option<usize>,
    /// The chain's first phase (this one, for the first).
    pub chain_head: usize,
}

/// Where a fan-out's list is.
#[derive(Debug, Clone, PartialEq)]
pub enum ItemSource {
    /// A field path of the task's input.
    Input(Vec<String>),
    /// A field path of an earlier phase's output.
    Output { phase: String, path: Vec<String> },
}

/// What one item failing for good (after its retries) does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemFailure {
    /// The task fails, and no new item starts.
    Stop,
    /// The item is listed as failed and skipped; the others go on.
    Continue,
}

impl ItemSource {
    /// What the items are called: the list's field name, as in
    /// `outputs.parse.scenes` (`scenes`); `None` for a phase's whole output.
    pub fn name(&self) -> Option<&str> {
        let path = match self {
            ItemSource::Input(path) => path,
            ItemSource::Output { path, .. } => path,
        };
        path.last().map(String::as_str)
    }

    /// The list for a task, or why there is none.
    pub fn items<'v>(
        &self,
        input: &'v Value,
        output_of: impl Fn(&str) -> Option<&'v Value>,
        text: &str,
    ) -> Result<&'v [Value], String> {
        let (root, path) = match self {
            ItemSource::Input(path) => (Some(input), path),
            ItemSource::Output { phase, path } => (output_of(phase), path),
        };
        let Some(root) = root else {
            return Err(format!("for_each = \"{text}\": that phase has no output"));
        };
        let found = path.iter().try_fold(root, |v, f| v.get(f.as_str()));
        match found {
            Some(Value::Array(items)) if items.len() > MAX_ITEMS => Err(format!(
                "for_each = \"{text}\" has {} items; a task may fan out over at most {MAX_ITEMS}: split the task's list over several tasks",
                items.len()
            )),
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(format!(
                "for_each = \"{text}\" is {}, not a list",
                kind_of(other)
            )),
            None => Err(format!("for_each = \"{text}\": no such field")),
        }
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The fan-out keys of one phase as read, before linking.
#[derive(Debug, Clone, Default)]
pub(crate) struct FanOutDraft {
    for_each: Option<(String, Range<usize>)>,
    on_item_failure: Option<(ItemFailure, Range<usize>)>,
    max_items_in_flight: Option<(usize, Range<usize>)>,
}

const NEEDS_FOR_EACH: &str = "add for_each = \"outputs.PHASE.FIELD\" (or \"input.FIELD\") to run the phase once per item, or remove this key";

/// Reads `for_each`, `on_item_failure` and `max_items_in_flight`.
pub(crate) fn read(d: &mut Diag<'_>, t: &Table<'_, '_>) -> FanOutDraft {
    let mut draft = FanOutDraft::default();
    if let Some(s) = t.string(d, "for_each") {
        draft.for_each = Some((s.get_ref().to_string(), s.span()));
    }
    if let Some(f) = t.choice(d, "on_item_failure", &["stop", "continue"]) {
        let mode = match *f.get_ref() {
            "continue" => ItemFailure::Continue,
            _ => ItemFailure::Stop,
        };
        draft.on_item_failure = Some((mode, f.span()));
    }
    if let Some(n) = t.count(d, "max_items_in_flight", 1, MAX_ITEMS as u64) {
        draft.max_items_in_flight = Some((*n.get_ref() as usize, n.span()));
    }
    if draft.for_each.is_none() && t.get("for_each").is_none() {
        for (key, span) in [
            (
                "on_item_failure",
                draft.on_item_failure.as_ref().map(|o| &o.1),
            ),
            (
                "max_items_in_flight",
                draft.max_items_in_flight.as_ref().map(|m| &m.1),
            ),
        ] {
            if let Some(span) = span {
                d.error(
                    span.clone(),
                    format!("`{key}` {} applies only to a phase with for_each", t.place),
                    NEEDS_FOR_EACH,
                );
            }
        }
    }
    draft
}

/// Parses `for_each` text into its source, or says what is wrong.
fn parse_source(text: &str) -> Result<ItemSource, String> {
    let parts: Vec<&str> = text.split('.').map(str::trim).collect();
    let named = |p: &[&str]| p.iter().all(|s| !s.is_empty());
    match parts.as_slice() {
        ["input", rest @ ..] if !rest.is_empty() && named(rest) => Ok(ItemSource::Input(
            rest.iter().map(|s| s.to_string()).collect(),
        )),
        ["outputs", phase, rest @ ..] if !rest.is_empty() && named(rest) && !phase.is_empty() => {
            Ok(ItemSource::Output {
                phase: phase.to_string(),
                path: rest.iter().map(|s| s.to_string()).collect(),
            })
        }
        _ => Err(format!(
            "for_each = \"{text}\" is not a list's place; write for_each = \"outputs.PHASE.FIELD\" or \"input.FIELD\""
        )),
    }
}

/// Links each phase's fan-out: the source phase must run before it, and a
/// phase with the same `for_each` in its `after` continues that chain.
pub(crate) fn link(
    d: &mut Diag<'_>,
    specs: &mut [PhaseSpec],
    drafts: Vec<FanOutDraft>,
    first_by_id: &HashMap<&str, usize>,
) {
    let ids: Vec<String> = specs.iter().map(|s| s.id.clone()).collect();
    let afters: Vec<Vec<usize>> = specs.iter().map(|s| s.after.clone()).collect();
    let mut linked: Vec<Option<FanOut>> = vec![None; specs.len()];
    for (i, draft) in drafts.iter().enumerate() {
        let Some((text, span)) = &draft.for_each else {
            continue;
        };
        let place = format!("in phase \"{}\"", ids[i]);
        let source = match parse_source(text) {
            Ok(s) => s,
            Err(message) => {
                d.error(
                    span.clone(),
                    format!("bad for_each {place}: {message}"),
                    "for_each names a list: a field of the task's input or of an earlier phase's output",
                );
                continue;
            }
        };
        if let ItemSource::Output { phase, .. } = &source {
            let Some(&from) = first_by_id.get(phase.as_str()) else {
                let names: Vec<&str> = ids.iter().map(String::as_str).collect();
                d.error(
                    span.clone(),
                    format!("unknown phase \"{phase}\" in for_each {place}"),
                    format!(
                        "phases defined here are: {}{}",
                        names.join(", "),
                        did_you_mean(phase, names.iter().copied())
                    ),
                );
                continue;
            };
            if !runs_before(&afters, from, i) {
                d.error(
                    span.clone(),
                    format!(
                        "phase \"{}\" fans out over outputs.{phase}, but \"{phase}\" does not run before it",
                        ids[i]
                    ),
                    format!(
                        "add \"{phase}\" to the `after` list of \"{}\", or fan out over a phase that runs earlier",
                        ids[i]
                    ),
                );
                continue;
            }
            if drafts[from].for_each.is_some() {
                d.error(
                    span.clone(),
                    format!(
                        "phase \"{}\" fans out over outputs.{phase}, but \"{phase}\" runs once per item, so its output is a list of outputs",
                        ids[i]
                    ),
                    "fan out over a field of a phase that runs once per task, or give both phases the same for_each to make a chain",
                );
                continue;
            }
        }
        let same = |j: &usize| drafts[*j].for_each.as_ref().map(|f| &f.0) == Some(text);
        let prevs: Vec<usize> = afters[i].iter().copied().filter(same).collect();
        if prevs.len() > 1 {
            d.error(
                span.clone(),
                format!(
                    "phase \"{}\" runs after {} phases with the same for_each; a chain goes through one phase at a time",
                    ids[i],
                    prevs.len()
                ),
                "keep one of them in its `after` list, or give the phases different lists",
            );
            continue;
        }
        let chain_prev = prevs.first().copied();
        if let (Some(prev), Some((_, at))) = (chain_prev, &draft.max_items_in_flight) {
            d.error(
                at.clone(),
                format!(
                    "`max_items_in_flight` {place} is set on the first phase of its chain, not on a later one"
                ),
                format!(
                    "move it to phase \"{}\": it bounds the items of the whole chain",
                    ids[head_of(&linked, prev)]
                ),
            );
        }
        let spec = &specs[i];
        if spec.review == ReviewMode::Always || spec.on_failure != OnFailure::Stop {
            d.error(
                span.clone(),
                format!(
                    "phase \"{}\" runs once per item, so `review` and `on_failure` do not apply to it",
                    ids[i]
                ),
                "use on_item_failure = \"stop\" or \"continue\" to say what a failed item does, and review the phase after the fan-in",
            );
        }
        if spec.send_back.is_some() || spec.cache.is_some() {
            d.error(
                span.clone(),
                format!(
                    "phase \"{}\" runs once per item, so it can neither send the task back (`send_back`) nor share its output (`cache_key`)",
                    ids[i]
                ),
                "put send_back on the phase after the fan-in, which sees every item's output; cache the phase that makes the list, or the fan-in",
            );
        }
        linked[i] = Some(FanOut {
            text: text.clone(),
            source,
            on_item_failure: draft
                .on_item_failure
                .as_ref()
                .map_or(ItemFailure::Stop, |o| o.0),
            max_items_in_flight: draft.max_items_in_flight.as_ref().map(|m| m.0),
            chain_prev,
            chain_head: chain_prev.map_or(i, |p| head_of(&linked, p)),
        });
    }
    for (spec, fan_out) in specs.iter_mut().zip(linked) {
        spec.fan_out = fan_out;
    }
}

/// The first phase of the chain `i` is in (phases are linked in file
/// order, and a chain's phases come before the phases that follow them).
fn head_of(linked: &[Option<FanOut>], i: usize) -> usize {
    linked[i].as_ref().map_or(i, |f| f.chain_head)
}

/// Whether phase `from` must be done before phase `to` starts.
fn runs_before(afters: &[Vec<usize>], from: usize, to: usize) -> bool {
    let mut seen = vec![false; afters.len()];
    let mut stack = afters[to].clone();
    while let Some(p) = stack.pop() {
        if p == from {
            return true;
        }
        if !std::mem::replace(&mut seen[p], true) {
            stack.extend(&afters[p]);
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use serde_json::json;

    use super::*;
    use crate::spec::parse;

    const HEAD: &str =
        "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"parse\"\nagent = \"a\"\n";

    fn with(rest: &str) -> Result<crate::spec::Pipeline, String> {
        parse(&format!("{HEAD}{rest}"), Path::new("p.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn consecutive_phases_with_the_same_list_form_a_chain() {
        let p = with(
            "[[phases]]\nid = \"light\"\nagent = \"a\"\nfor_each = \"outputs.parse.scenes\"\nmax_items_in_flight = 4\non_item_failure = \"continue\"\n[[phases]]\nid = \"show\"\nagent = \"a\"\nfor_each = \"outputs.parse.scenes\"\n[[phases]]\nid = \"metrics\"\nagent = \"a\"\n",
        )
        .unwrap();
        let light = p.phases[1].fan_out.as_ref().unwrap();
        assert_eq!(light.chain_prev, None);
        assert_eq!(light.chain_head, 1);
        assert_eq!(light.max_items_in_flight, Some(4));
        assert_eq!(light.on_item_failure, ItemFailure::Continue);
        assert_eq!(
            light.source,
            ItemSource::Output {
                phase: "parse".into(),
                path: vec!["scenes".into()]
            }
        );
        let show = p.phases[2].fan_out.as_ref().unwrap();
        assert_eq!((show.chain_prev, show.chain_head), (Some(1), 1));
        assert_eq!(show.on_item_failure, ItemFailure::Stop);
        assert!(p.phases[3].fan_out.is_none());
    }

    #[test]
    fn the_list_must_come_from_a_phase_that_runs_before() {
        let err = with(
            "[[phases]]\nid = \"x\"\nagent = \"a\"\nafter = []\nfor_each = \"outputs.parse.scenes\"\n",
        )
        .unwrap_err();
        assert!(
            err.contains("p.toml:11:12: error: phase \"x\" fans out over outputs.parse, but \"parse\" does not run before it"),
            "{err}"
        );
        let err = with("[[phases]]\nid = \"x\"\nagent = \"a\"\nfor_each = \"outputs.prase.s\"\n")
            .unwrap_err();
        assert!(
            err.contains("error: unknown phase \"prase\" in for_each in phase \"x\"")
                && err.contains("did you mean \"parse\"?"),
            "{err}"
        );
        let err =
            with("[[phases]]\nid = \"x\"\nagent = \"a\"\nfor_each = \"scenes\"\n").unwrap_err();
        assert!(
            err.contains("p.toml:10:12: error: bad for_each in phase \"x\""),
            "{err}"
        );
    }

    #[test]
    fn item_keys_are_checked_where_they_are_written() {
        let err = with("on_item_failure = \"skip\"\nmax_items_in_flight = 0\n").unwrap_err();
        assert!(
            err.contains("p.toml:7:19: error: unknown on_item_failure \"skip\""),
            "{err}"
        );
        assert!(
            err.contains(
                "p.toml:8:23: error: `max_items_in_flight` in phase \"parse\" must be at least 1"
            ),
            "{err}"
        );
        let err = with("max_items_in_flight = 3\n").unwrap_err();
        assert!(
            err.contains("p.toml:7:23: error: `max_items_in_flight` in phase \"parse\" applies only to a phase with for_each"),
            "{err}"
        );
        let err = with(
            "[[phases]]\nid = \"x\"\nagent = \"a\"\nfor_each = \"input.s\"\nreview = \"always\"\n[[phases]]\nid = \"y\"\nagent = \"a\"\nfor_each = \"input.s\"\nmax_items_in_flight = 2\n",
        )
        .unwrap_err();
        assert!(
            err.contains("`review` and `on_failure` do not apply to it"),
            "{err}"
        );
        assert!(
            err.contains("p.toml:16:23: error: `max_items_in_flight` in phase \"y\" is set on the first phase of its chain")
                && err.contains("move it to phase \"x\""),
            "{err}"
        );
    }

    #[test]
    fn the_list_is_found_or_the_reason_given() {
        let source = parse_source("input.doc.scenes").unwrap();
        let input = json!({"doc": {"scenes": [1, 2]}, "n": 3});
        let none = |_: &str| None;
        assert_eq!(source.items(&input, none, "t").unwrap().len(), 2);
        let n = parse_source("input.n").unwrap();
        assert!(
            n.items(&input, none, "input.n")
                .unwrap_err()
                .contains("is a number, not a list")
        );
        let long = json!({"s": vec![0; MAX_ITEMS + 1]});
        let err = parse_source("input.s")
            .unwrap()
            .items(&long, none, "input.s")
            .unwrap_err();
        assert!(err.contains("has 10001 items; a task may fan out over at most 10000"));
        let out = json!({"scenes": ["a"]});
        let from = parse_source("outputs.parse.scenes").unwrap();
        assert_eq!(
            from.items(&input, |p| (p == "parse").then_some(&out), "x")
                .unwrap(),
            &[json!("a")]
        );
    }
}
