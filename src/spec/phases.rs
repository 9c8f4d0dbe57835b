//! `[[phases]]`: each phase's own keys, then the links between phases:
//! unique ids, known agents, `after` names resolved to indices, no cycles.

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;
use toml::de::DeValue;

use super::cache::{KeyRef, check_key_refs, read_cache};
use super::condition::Condition;
use super::defaults::read_retry;
use super::error::Diag;
use super::graph;
use super::model::{AgentSpec, Defaults, OnFailure, PhaseSpec, ReviewMode, WrittenCondition};
use super::output_schema::{SchemaFiles, read_output_schema};
use super::raw::Table;
use super::suggest::did_you_mean;

const PHASE_KEYS: &[&str] = &[
    "id",
    "agent",
    "role",
    "after",
    "when",
    "on_failure",
    "review",
    "required_output",
    "output_schema",
    "timeout",
    "retry",
    "enabled",
    "for_each",
    "on_item_failure",
    "max_items_in_flight",
    "cache_key",
    "cache_ttl",
    "send_back",
];

/// A phase as read, before `after` is resolved.
struct Draft<'a> {
    /// The `[[phases]]` header: where problems about the whole phase point.
    span: Range<usize>,
    /// As written, even if malformed, so that `after` lists naming it do
    /// not add problems of their own.
    id: Option<Spanned<&'a str>>,
    /// `None` when absent: the phase then runs after the one before it.
    after: Option<Vec<Spanned<&'a str>>>,
    fan_out: super::fan_out::FanOutDraft,
    /// Phases its `cache_key` names, checked once `after` is resolved.
    key_refs: Vec<KeyRef>,
    send_back: Option<super::send_back::Draft<'a>>,
    spec: PhaseSpec,
}

/// The phases in file order, `after` holding indices.
///
/// Parts that could not be read are left at stand-in values; a problem
/// has been recorded for each, so the result is only used when `d` is empty.
pub(crate) fn read_phases(
    d: &mut Diag<'_>,
    root: &Table<'_, '_>,
    defaults: &Defaults,
    agents: &BTreeMap<String, Option<AgentSpec>>,
    roles: &BTreeMap<String, Vec<String>>,
    schemas: &SchemaFiles<'_>,
) -> Vec<PhaseSpec> {
    const ADD_A_PHASE: &str = "add a [[phases]] table with an id and an agent";
    let Some(value) = root.get("phases") else {
        root.missing(d, "phases", ADD_A_PHASE);
        return Vec::new();
    };
    let DeValue::Array(items) = value.get_ref() else {
        d.error(
            value.span(),
            "`phases` must be an array of tables",
            "write each phase as a [[phases]] table with an id and an agent",
        );
        return Vec::new();
    };
    if items.is_empty() {
        d.error(value.span(), "the pipeline has no phases", ADD_A_PHASE);
        return Vec::new();
    }
    let drafts: Vec<Draft<'_>> = items
        .iter()
        .enumerate()
        .map(|(i, item)| read_phase(d, i, item, defaults, agents, roles, schemas))
        .collect();
    let first_by_id = check_unique_ids(d, &drafts);
    let edges = resolve_after(d, &drafts, &first_by_id);
    check_cycles(d, &drafts, &edges);
    let after: Vec<Vec<usize>> = edges
        .iter()
        .map(|e| e.iter().map(|(to, _)| *to).collect())
        .collect();
    let ids: Vec<Option<&str>> = drafts
        .iter()
        .map(|p| p.id.as_ref().map(|id| *id.get_ref()))
        .collect();
    let loops: Vec<_> = drafts
        .iter()
        .enumerate()
        .map(|(i, draft)| {
            draft
                .send_back
                .as_ref()
                .map(|s| super::send_back::resolve(d, i, &ids, s, &after, &first_by_id))
        })
        .collect();
    let names: Vec<&str> = drafts
        .iter()
        .map(|p| p.id.as_ref().map_or("", |id| *id.get_ref()))
        .collect();
    let key_refs: Vec<Vec<KeyRef>> = drafts.iter().map(|p| p.key_refs.clone()).collect();
    check_key_refs(d, &key_refs, &names, &after);
    let mut fan_outs = Vec::with_capacity(drafts.len());
    let mut specs: Vec<PhaseSpec> = drafts
        .into_iter()
        .zip(after)
        .zip(loops)
        .map(|((draft, after), send_back)| {
            let mut spec = draft.spec;
            spec.after = after;
            spec.send_back = send_back;
            fan_outs.push(draft.fan_out);
            spec
        })
        .collect();
    super::fan_out::link(d, &mut specs, fan_outs, &first_by_id);
    specs
}

fn read_phase<'a>(
    d: &mut Diag<'_>,
    i: usize,
    item: &'a Spanned<DeValue<'_>>,
    defaults: &Defaults,
    agents: &BTreeMap<String, Option<AgentSpec>>,
    roles: &BTreeMap<String, Vec<String>>,
    schemas: &SchemaFiles<'_>,
) -> Draft<'a> {
    let mut spec = PhaseSpec {
        id: String::new(),
        agent: String::new(),
        role: None,
        after: Vec::new(),
        when: Vec::new(),
        when_condition: None,
        on_failure: OnFailure::Stop,
        review: ReviewMode::Never,
        required_output: Vec::new(),
        output_schema: None,
        timeout: defaults.timeout,
        retry: defaults.retry.clone(),
        disabled: None,
        fan_out: None,
        cache: None,
        send_back: None,
    };
    let DeValue::Table(inner) = item.get_ref() else {
        d.error(
            item.span(),
            format!("phase #{} must be a table", i + 1),
            "write each phase as a [[phases]] table with an id and an agent",
        );
        return Draft {
            span: item.span(),
            id: None,
            after: None,
            fan_out: Default::default(),
            key_refs: Vec::new(),
            send_back: None,
            spec,
        };
    };
    let numbered = Table::new(inner, item.span(), format!("in phase #{}", i + 1));
    let id = numbered.required_string(
        d,
        "id",
        "add id = \"...\" to name the phase (letters, digits, _ and -)",
    );
    let place = match &id {
        Some(id) if check_phase_id(d, id) => format!("in phase \"{}\"", id.get_ref()),
        _ => numbered.place.clone(),
    };
    let t = Table::new(inner, item.span(), place);
    t.check_keys(d, PHASE_KEYS, |_| None);
    if let Some(id) = &id {
        spec.id = id.get_ref().to_string();
    }
    let agent = t.string(d, "agent");
    let role = t.string(d, "role");
    match (&agent, &role, t.get("agent").is_some() || t.get("role").is_some()) {
        (Some(_), Some(role), _) => d.error(
            role.span(),
            format!("{} names both `agent` and `role`", t.place.trim_start_matches("in ")),
            "keep one: agent = \"...\" runs one agent; role = \"...\" picks among the agents of a [roles] entry",
        ),
        (None, None, false) => t.missing(
            d,
            "agent",
            "add agent = \"...\" naming one of the [agents] tables, or role = \"...\" naming one of [roles]",
        ),
        _ => {}
    }
    if let Some(agent) = &agent {
        check_agent_known(d, agent, agents);
        spec.agent = agent.get_ref().to_string();
    }
    if let (Some(role), None) = (&role, &agent) {
        check_role_known(d, role, roles);
        spec.role = Some(role.get_ref().to_string());
    }
    let after = t
        .get("after")
        .map(|_| t.strings(d, "after").unwrap_or_default());
    let list = |d: &mut Diag<'_>, key| {
        t.strings(d, key)
            .unwrap_or_default()
            .iter()
            .map(|s| s.get_ref().to_string())
            .collect::<Vec<_>>()
    };
    match t.get("when").map(|v| v.get_ref()) {
        Some(DeValue::String(_)) => spec.when_condition = read_condition(d, &t, "when"),
        _ => spec.when = list(d, "when"),
    }
    spec.required_output = list(d, "required_output");
    spec.output_schema = read_output_schema(d, &t, schemas);
    if let Some(f) = t.choice(d, "on_failure", &["stop", "continue", "review"]) {
        spec.on_failure = match *f.get_ref() {
            "continue" => OnFailure::Continue,
            "review" => OnFailure::Review,
            _ => OnFailure::Stop,
        };
    }
    if let Some(r) = t.choice(d, "review", &["never", "always"]) {
        spec.review = match *r.get_ref() {
            "always" => ReviewMode::Always,
            _ => ReviewMode::Never,
        };
    }
    if let Some(timeout) = t.timeout(d, "timeout") {
        spec.timeout = timeout.into_inner();
    }
    if let Some(retry) = t.table(d, "retry", t.part("retry")) {
        spec.retry = read_retry(d, &retry, &defaults.retry);
    }
    if let Some(v) = t.get("enabled") {
        match v.get_ref() {
            DeValue::Boolean(true) => {}
            DeValue::Boolean(false) => spec.disabled = Some(super::switch::IN_FILE.into()),
            _ => d.error(
                v.span(),
                format!("`enabled` {} must be true or false", t.place),
                "write enabled = false to switch the phase off (each task records it as skipped), or leave the key out",
            ),
        }
    }
    let fan_out = super::fan_out::read(d, &t);
    let (cache, key_refs) = read_cache(d, &t);
    spec.cache = cache;
    let send_back = super::send_back::read(d, &t);
    Draft {
        span: item.span(),
        id,
        after,
        fan_out,
        key_refs,
        send_back,
        spec,
    }
}

/// A condition in a string, with a problem reported at the character where
/// it goes wrong.
pub(crate) fn read_condition(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    key: &str,
) -> Option<WrittenCondition> {
    let w = t.string(d, key)?;
    match Condition::parse(w.get_ref()) {
        Ok(condition) => Some(WrittenCondition {
            condition,
            text: w.get_ref().to_string(),
        }),
        Err(e) => {
            // Past the opening quote; exact for strings without escapes.
            let at = w.span().start + 1 + e.offset;
            d.error(
                at..at + 1,
                format!("bad condition in `{key}` {}: {}", t.place, e.message),
                "write conditions like when = \"input.risk == 'high'\"; combine them with and, or, not and parentheses",
            );
            None
        }
    }
}

/// Ids are `[A-Za-z0-9_-]+`: they appear in file names, logs and commands.
/// Reports a bad one and says whether it is good.
fn check_phase_id(d: &mut Diag<'_>, id: &Spanned<&str>) -> bool {
    let text = *id.get_ref();
    let ok = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    if !text.is_empty() && text.chars().all(ok) {
        return true;
    }
    let fixed: String = text.chars().map(|c| if ok(c) { c } else { '_' }).collect();
    let (message, help) = match text {
        "" => (
            "phase id is empty".to_string(),
            "name the phase with letters, digits, _ and -".to_string(),
        ),
        _ => (
            format!("phase id \"{text}\" has characters other than letters, digits, _ and -"),
            format!("use only letters, digits, _ and -, e.g. id = \"{fixed}\""),
        ),
    };
    d.error(id.span(), message, help);
    false
}

fn check_agent_known(
    d: &mut Diag<'_>,
    agent: &Spanned<&str>,
    agents: &BTreeMap<String, Option<AgentSpec>>,
) {
    let name = *agent.get_ref();
    if agents.contains_key(name) {
        return;
    }
    let help = if agents.is_empty() {
        format!("no agents are defined; add an [agents.{name}] table with a kind")
    } else {
        let names: Vec<&str> = agents.keys().map(String::as_str).collect();
        format!(
            "agents defined here are: {}{}",
            names.join(", "),
            did_you_mean(name, names.iter().copied())
        )
    };
    d.error(agent.span(), format!("unknown agent \"{name}\""), help);
}

fn check_role_known(d: &mut Diag<'_>, role: &Spanned<&str>, roles: &BTreeMap<String, Vec<String>>) {
    let name = *role.get_ref();
    if roles.contains_key(name) {
        return;
    }
    let help = if roles.is_empty() {
        format!("no roles are defined; add [roles] with {name} = [\"agent\", ...]")
    } else {
        let names: Vec<&str> = roles.keys().map(String::as_str).collect();
        format!(
            "roles defined in [roles] are: {}{}",
            names.join(", "),
            did_you_mean(name, names.iter().copied())
        )
    };
    d.error(role.span(), format!("unknown role \"{name}\""), help);
}

/// Reports each id used before, pointing at the later one; gives each id's
/// first index.
fn check_unique_ids<'a>(d: &mut Diag<'_>, drafts: &[Draft<'a>]) -> HashMap<&'a str, usize> {
    let mut first: HashMap<&str, usize> = HashMap::new();
    for (i, draft) in drafts.iter().enumerate() {
        let Some(id) = &draft.id else { continue };
        match first.get(id.get_ref()) {
            None => {
                first.insert(id.get_ref(), i);
            }
            Some(&earlier) => {
                let line = drafts[earlier]
                    .id
                    .as_ref()
                    .map_or(0, |e| d.line_of(e.span().start));
                d.error(
                    id.span(),
                    format!("duplicate phase id \"{}\"", id.get_ref()),
                    format!(
                        "the first phase \"{}\" is on line {line}; give each phase its own id",
                        id.get_ref()
                    ),
                );
            }
        }
    }
    first
}

/// For each phase, the phases it waits for, with the span of the `after`
/// entry that says so (`None` for the implicit "the phase before").
type Edges = Vec<Vec<(usize, Option<Range<usize>>)>>;

fn resolve_after(
    d: &mut Diag<'_>,
    drafts: &[Draft<'_>],
    first_by_id: &HashMap<&str, usize>,
) -> Edges {
    // Each id once, in file order, for help lines.
    let ids: Vec<&str> = drafts
        .iter()
        .enumerate()
        .filter_map(|(i, p)| p.id.as_ref().map(|id| (i, *id.get_ref())))
        .filter(|(i, id)| first_by_id.get(id) == Some(i))
        .map(|(_, id)| id)
        .collect();
    let mut edges = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.iter().enumerate() {
        let Some(after) = &draft.after else {
            edges.push(match i {
                0 => Vec::new(),
                _ => vec![(i - 1, None)],
            });
            continue;
        };
        let own = draft.id.as_ref().map(|id| *id.get_ref());
        let mut mine: Vec<(usize, Option<Range<usize>>)> = Vec::new();
        for name in after {
            let wanted = *name.get_ref();
            if Some(wanted) == own {
                d.error(
                    name.span(),
                    format!("phase \"{wanted}\" depends on itself"),
                    format!("remove \"{wanted}\" from its own after list"),
                );
                continue;
            }
            match first_by_id.get(wanted) {
                Some(&to) if !mine.iter().any(|(t, _)| *t == to) => {
                    mine.push((to, Some(name.span())))
                }
                Some(_) => {}
                None => d.error(
                    name.span(),
                    format!("unknown phase \"{wanted}\" in `after`"),
                    format!(
                        "phases defined here are: {}{}",
                        ids.join(", "),
                        did_you_mean(wanted, ids.iter().copied())
                    ),
                ),
            }
        }
        edges.push(mine);
    }
    edges
}

fn check_cycles(d: &mut Diag<'_>, drafts: &[Draft<'_>], edges: &Edges) {
    let plain: Vec<Vec<usize>> = edges
        .iter()
        .map(|e| e.iter().map(|(to, _)| *to).collect())
        .collect();
    let name = |i: usize| {
        drafts[i]
            .id
            .as_ref()
            .map_or_else(|| format!("#{}", i + 1), |id| id.get_ref().to_string())
    };
    // The `after` entry for the step from `from` to `to`, if written.
    let written = |from: usize, to: usize| {
        edges[from]
            .iter()
            .find(|(t, _)| *t == to)
            .and_then(|(_, span)| span.clone())
    };
    for mut cycle in graph::cycles(&plain) {
        let n = cycle.len();
        let step = |k: usize, cycle: &[usize]| (cycle[k], cycle[(k + 1) % n]);
        // Start the path at a step that is written down, to point at it.
        let start = (0..n)
            .find(|&k| {
                let (from, to) = step(k, &cycle);
                written(from, to).is_some()
            })
            .unwrap_or(0);
        cycle.rotate_left(start);
        let (from, to) = step(0, &cycle);
        let at = written(from, to).unwrap_or_else(|| drafts[from].span.clone());
        let implicit = (0..n).any(|k| {
            let (from, to) = step(k, &cycle);
            written(from, to).is_none()
        });
        let path: Vec<String> = cycle
            .iter()
            .chain(cycle.first())
            .map(|&i| name(i))
            .collect();
        let note = if implicit {
            " (a phase without `after` runs after the phase before it)"
        } else {
            ""
        };
        let (from, to) = (name(from), name(to));
        d.error(
            at,
            format!(
                "phases wait on each other in a cycle: {}",
                path.join(" -> ")
            ),
            format!(
                "\"{from} -> {to}\" means {from} runs after {to}{note}; remove one of these dependencies"
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crate::spec::model::{Pipeline, RetryPolicy};
    use crate::spec::parse;

    const AGENTS: &str =
        "name = \"p\"\n[agents.fast]\nkind = \"sim\"\n[agents.documenter]\nkind = \"sim\"\n";

    /// Parses `phases` (lines after AGENTS, which are 5 lines long).
    fn with_phases(phases: &str) -> Result<Pipeline, String> {
        parse(&format!("{AGENTS}{phases}"), Path::new("p.toml")).map_err(|e| e.to_string())
    }

    fn afters(p: &Pipeline) -> Vec<Vec<usize>> {
        p.phases.iter().map(|ph| ph.after.clone()).collect()
    }

    #[test]
    fn when_is_a_list_of_fields_or_a_condition() {
        let p = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\nwhen = \"input.risk == 'high'\"\n",
        )
        .unwrap();
        let w = p.phases[0].when_condition.as_ref().unwrap();
        assert_eq!(w.text, "input.risk == 'high'");
        assert!(w.condition.eval(&serde_json::json!({"risk": "high"})));
        assert!(p.phases[0].when.is_empty());
        let err =
            with_phases("[[phases]]\nid = \"a\"\nagent = \"fast\"\nwhen = \"input.risk == \"\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains(
                "error: bad condition in `when` in phase \"a\": the condition ends too soon"
            ),
            "{err}"
        );
    }

    #[test]
    fn after_defaults_to_the_phase_before() {
        let p = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\n[[phases]]\nid = \"b\"\nagent = \"fast\"\n[[phases]]\nid = \"c\"\nagent = \"fast\"\n",
        )
        .unwrap();
        assert_eq!(afters(&p), [vec![], vec![0], vec![1]]);
    }

    #[test]
    fn explicit_after_gives_indices_and_empty_means_none() {
        let p = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\n[[phases]]\nid = \"b\"\nagent = \"fast\"\nafter = []\n[[phases]]\nid = \"c\"\nagent = \"fast\"\nafter = [\"b\", \"a\", \"b\"]\n[[phases]]\nid = \"d\"\nagent = \"fast\"\n",
        )
        .unwrap();
        assert_eq!(afters(&p), [vec![], vec![], vec![1, 0], vec![2]]);
        assert_eq!(p.phase_index("c"), Some(2));
    }

    #[test]
    fn a_later_phase_may_come_first() {
        let p = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\nafter = [\"b\"]\n[[phases]]\nid = \"b\"\nagent = \"fast\"\nafter = []\n",
        )
        .unwrap();
        assert_eq!(afters(&p), [vec![1], vec![]]);
    }

    #[test]
    fn phase_settings_and_their_defaults() {
        let p = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\n[[phases]]\nid = \"b\"\nagent = \"documenter\"\nwhen = [\"payer\"]\non_failure = \"review\"\nreview = \"always\"\nrequired_output = [\"plan\"]\ntimeout = \"30s\"\nretry = { max_attempts = 5 }\n",
        )
        .unwrap();
        let a = &p.phases[0];
        assert_eq!(a.on_failure, crate::spec::model::OnFailure::Stop);
        assert_eq!(a.review, crate::spec::model::ReviewMode::Never);
        assert_eq!(a.timeout, Duration::from_secs(120));
        assert_eq!(a.retry, RetryPolicy::default());
        assert!(a.when.is_empty() && a.required_output.is_empty());
        let b = &p.phases[1];
        assert_eq!(b.agent, "documenter");
        assert_eq!(b.when, ["payer"]);
        assert_eq!(b.on_failure, crate::spec::model::OnFailure::Review);
        assert_eq!(b.review, crate::spec::model::ReviewMode::Always);
        assert_eq!(b.required_output, ["plan"]);
        assert_eq!(b.timeout, Duration::from_secs(30));
        assert_eq!(
            b.retry,
            RetryPolicy {
                max_attempts: 5,
                ..RetryPolicy::default()
            }
        );
    }

    #[test]
    fn phase_retry_overrides_the_pipeline_defaults_field_by_field() {
        let text = "name = \"p\"\n[defaults]\ntimeout = \"10s\"\nretry = { max_attempts = 2, backoff = \"fixed\" }\n[agents.fast]\nkind = \"sim\"\n[[phases]]\nid = \"a\"\nagent = \"fast\"\nretry = { initial_delay = \"5s\" }\n";
        let p = parse(text, Path::new("p.toml")).unwrap();
        let r = &p.phases[0].retry;
        assert_eq!(r.max_attempts, 2);
        assert_eq!(r.backoff, crate::spec::model::Backoff::Fixed);
        assert_eq!(r.initial_delay, Duration::from_secs(5));
        assert_eq!(p.phases[0].timeout, Duration::from_secs(10));
    }

    #[test]
    fn unknown_agent_points_at_the_value_and_suggests() {
        let err = with_phases("[[phases]]\nid = \"a\"\nagent = \"fsat\"\n").unwrap_err();
        assert_eq!(
            err,
            "p.toml:8:9: error: unknown agent \"fsat\"\n  help: agents defined here are: documenter, fast; did you mean \"fast\"?"
        );
    }

    #[test]
    fn unknown_and_self_dependencies() {
        let err = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\n[[phases]]\nid = \"b\"\nagent = \"fast\"\nafter = [\"b\", \"x\", \"aa\"]\n",
        )
        .unwrap_err();
        assert!(
            err.contains("p.toml:12:10: error: phase \"b\" depends on itself"),
            "{err}"
        );
        assert!(err.contains("p.toml:12:15: error: unknown phase \"x\" in `after`\n  help: phases defined here are: a, b"), "{err}");
        assert!(err.contains("p.toml:12:20: error: unknown phase \"aa\" in `after`\n  help: phases defined here are: a, b; did you mean \"a\"?"), "{err}");
    }

    #[test]
    fn duplicate_ids_point_at_the_second_and_name_the_first_line() {
        let err = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\n[[phases]]\nid = \"a\"\nagent = \"fast\"\n",
        )
        .unwrap_err();
        assert_eq!(
            err,
            "p.toml:10:6: error: duplicate phase id \"a\"\n  help: the first phase \"a\" is on line 7; give each phase its own id"
        );
    }

    #[test]
    fn cycles_name_their_path() {
        let err = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\nafter = [\"c\"]\n[[phases]]\nid = \"b\"\nagent = \"fast\"\nafter = [\"a\"]\n[[phases]]\nid = \"c\"\nagent = \"fast\"\nafter = [\"b\"]\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with("p.toml:9:10: error: phases wait on each other in a cycle: a -> c -> b -> a\n  help: \"a -> c\" means a runs after c; remove one of these dependencies"),
            "{err}"
        );
        assert_eq!(err.matches("error:").count(), 1, "{err}");
    }

    #[test]
    fn cycles_through_an_implicit_after_point_at_the_written_one() {
        let err = with_phases(
            "[[phases]]\nid = \"a\"\nagent = \"fast\"\nafter = [\"b\"]\n[[phases]]\nid = \"b\"\nagent = \"fast\"\n",
        )
        .unwrap_err();
        assert!(
            err.starts_with(
                "p.toml:9:10: error: phases wait on each other in a cycle: a -> b -> a"
            ),
            "{err}"
        );
        assert!(
            err.contains("a phase without `after` runs after the phase before it"),
            "{err}"
        );
    }

    #[test]
    fn bad_ids_and_missing_keys() {
        let err = with_phases(
            "[[phases]]\nid = \"doc umentation\"\nagent = \"fast\"\n[[phases]]\nagent = \"fast\"\n[[phases]]\nid = \"c\"\nagnet = \"fast\"\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:7:6: error: phase id \"doc umentation\" has characters other than letters, digits, _ and -\n  help: use only letters, digits, _ and -, e.g. id = \"doc_umentation\"",
            "p.toml:9:1: error: missing key `id` in phase #2",
            "p.toml:11:1: error: missing key `agent` in phase \"c\"",
            "p.toml:13:1: error: unknown key `agnet` in phase \"c\"",
            "did you mean \"agent\"?",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
    }

    #[test]
    fn no_phases() {
        let err = parse("name = \"p\"\nphases = []\n", Path::new("p.toml"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("p.toml:2:10: error: the pipeline has no phases"),
            "{err}"
        );
        let err = with_phases("").unwrap_err();
        assert!(
            err.starts_with("p.toml:1:1: error: missing key `phases` at the top level"),
            "{err}"
        );
    }
}
