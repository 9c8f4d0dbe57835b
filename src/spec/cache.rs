//! `cache_key` and `cache_ttl` on a phase: the shared step cache.
//!
//! The key is a template over what prompts can read (`input.*`,
//! `outputs.PHASE.*`). A phase it names must run before this one (be among
//! the phases it waits for, directly or not), or the key could not be made
//! when the phase starts. `{{feedback}}` belongs to one task and is refused.

use std::ops::Range;
use std::time::Duration;

use super::duration::{DURATION_FORMS, parse};
use super::error::Diag;
use super::http_agent::content_start;
use super::limits::{MAX_DURATION, show_max_duration};
use super::model::{CacheSpec, Template};
use super::raw::Table;
use super::suggest::did_you_mean;

/// A `{{outputs.PHASE}}` place in a phase's `cache_key`, checked once the
/// phases and their order are known.
#[derive(Debug, Clone)]
pub(crate) struct KeyRef {
    pub(crate) at: Range<usize>,
    pub(crate) phase: String,
}

/// The phase's cache, if it has one, and the phases its key names.
/// `None` when absent or when a problem was recorded.
pub(crate) fn read_cache(d: &mut Diag<'_>, t: &Table<'_, '_>) -> (Option<CacheSpec>, Vec<KeyRef>) {
    let ttl = read_ttl(d, t);
    let Some(v) = t.get("cache_key") else {
        if let Some(ttl) = t.get("cache_ttl") {
            d.error(
                ttl.span(),
                format!("`cache_ttl` {} has no `cache_key`", t.place),
                "add cache_key = \"{{input.FIELD}}\" naming what makes two tasks' outputs the same, or remove cache_ttl",
            );
        }
        return (None, Vec::new());
    };
    let Some(s) = t.string(d, "cache_key") else {
        return (None, Vec::new());
    };
    let text: &str = s.get_ref();
    let origin = content_start(d.text(), v.span(), text);
    let at = |offset: usize| origin.map_or(v.span().start, |o| o + offset);
    let key = match Template::parse(text) {
        Ok(key) => key,
        Err(e) => {
            let at = at(e.offset);
            d.error(
                at..at + 2,
                format!("{} in `cache_key` {}", e.message, t.place),
                e.help,
            );
            return (None, Vec::new());
        }
    };
    if text.trim().is_empty() || !text.contains("{{") {
        d.error(
            v.span(),
            format!("`cache_key` {} names no field", t.place),
            "a key without a place is the same for every task, so all would share one output; write e.g. cache_key = \"{{input.query_id}}\"",
        );
        return (None, Vec::new());
    }
    if key.uses_feedback() {
        let offset = text.find("{{").map_or(0, |first| {
            text.match_indices("{{")
                .map(|(i, _)| i)
                .find(|&i| text[i + 2..].trim_start().starts_with("feedback"))
                .unwrap_or(first)
        });
        let at = at(offset);
        d.error(
            at..at + 2,
            format!("`{{{{feedback}}}}` in `cache_key` {}", t.place),
            "feedback belongs to one task's review, not to what tasks share; key on input.* or outputs.PHASE.* fields",
        );
        return (None, Vec::new());
    }
    let refs = key
        .phase_refs()
        .iter()
        .map(|(offset, phase)| {
            let at = at(*offset);
            KeyRef {
                at: at..at + 2,
                phase: phase.clone(),
            }
        })
        .collect();
    let spec = CacheSpec {
        key,
        text: text.to_string(),
        ttl,
    };
    (Some(spec), refs)
}

/// `cache_ttl`: a duration as elsewhere, or whole days (`"7d"`), longer
/// than zero.
fn read_ttl(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<Duration> {
    let v = t.get("cache_ttl")?;
    let s = t.string(d, "cache_ttl")?;
    match parse_ttl(s.get_ref()) {
        Ok(ttl) if ttl.is_zero() => {
            d.error(
                v.span(),
                format!("`cache_ttl` {} must be longer than 0s", t.place),
                "every entry would be stale at once; give a duration such as \"7d\", or leave cache_ttl out to keep entries until `baton cache clear`",
            );
            None
        }
        Ok(ttl) => Some(ttl),
        Err(why) => {
            d.error(
                v.span(),
                format!("bad duration for `cache_ttl` {}: {why}", t.place),
                format!("{DURATION_FORMS}, or whole days such as \"7d\""),
            );
            None
        }
    }
}

/// A duration, or a whole number of days (`"7d"`), up to 30 days.
pub(crate) fn parse_ttl(s: &str) -> Result<Duration, String> {
    let trimmed = s.trim();
    match trimmed.strip_suffix('d') {
        Some(days) if !days.is_empty() && days.chars().all(|c| c.is_ascii_digit()) => days
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(86_400))
            .map(Duration::from_secs)
            .filter(|d| *d <= MAX_DURATION)
            .ok_or_else(|| format!("\"{trimmed}\" is longer than {}", show_max_duration())),
        _ => parse(s),
    }
}

/// Reports each phase a cache key names that is unknown, or that does not
/// run before the phase (so its output is not there when the key is made).
/// `after[i]` are the phases phase `i` waits for.
pub(crate) fn check_key_refs(
    d: &mut Diag<'_>,
    refs: &[Vec<KeyRef>],
    ids: &[&str],
    after: &[Vec<usize>],
) {
    for (i, phase_refs) in refs.iter().enumerate() {
        if phase_refs.is_empty() {
            continue;
        }
        let before = ancestors(after, i);
        for r in phase_refs {
            let own = ids[i];
            match ids.iter().position(|id| *id == r.phase) {
                None => d.error(
                    r.at.clone(),
                    format!(
                        "unknown phase \"{}\" in `cache_key` in phase \"{own}\"",
                        r.phase
                    ),
                    format!(
                        "phases here are: {}{}",
                        ids.join(", "),
                        did_you_mean(&r.phase, ids.iter().copied())
                    ),
                ),
                Some(j) if !before[j] => d.error(
                    r.at.clone(),
                    format!(
                        "`cache_key` in phase \"{own}\" uses outputs.{}, but phase \"{}\" does not run before \"{own}\"",
                        r.phase, r.phase
                    ),
                    format!(
                        "the key is made when \"{own}\" starts; add \"{}\" to its after list, or key on a phase that runs before it",
                        r.phase
                    ),
                ),
                Some(_) => {}
            }
        }
    }
}

/// Which phases `i` waits for, directly or through others.
fn ancestors(after: &[Vec<usize>], i: usize) -> Vec<bool> {
    let mut seen = vec![false; after.len()];
    let mut stack: Vec<usize> = after[i].clone();
    while let Some(j) = stack.pop() {
        if j < seen.len() && !seen[j] && j != i {
            seen[j] = true;
            stack.extend(after[j].iter().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::parse_ttl;
    use crate::spec::parse;

    const HEAD: &str = "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"fetch\"\nagent = \"a\"\n[[phases]]\nid = \"draft\"\nagent = \"a\"\n";

    fn with(extra: &str) -> Result<crate::spec::Pipeline, String> {
        parse(&format!("{HEAD}{extra}"), Path::new("p.toml")).map_err(|e| e.to_string())
    }

    #[test]
    fn a_key_and_a_ttl_are_read() {
        let p =
            with("cache_key = \"{{input.q}}/{{outputs.fetch.id}}\"\ncache_ttl = \"7d\"\n").unwrap();
        let c = p.phases[1].cache.as_ref().unwrap();
        assert_eq!(c.text, "{{input.q}}/{{outputs.fetch.id}}");
        assert_eq!(c.ttl, Some(Duration::from_secs(7 * 86_400)));
        assert!(p.phases[0].cache.is_none());
        let p = with("cache_key = \"{{input.q}}\"\n").unwrap();
        assert_eq!(p.phases[1].cache.as_ref().unwrap().ttl, None);
    }

    #[test]
    fn ttl_takes_days_and_the_usual_units_up_to_thirty_days() {
        assert_eq!(parse_ttl("1d"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_ttl("90m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_ttl("30d"), Ok(Duration::from_secs(30 * 86_400)));
        assert!(parse_ttl("31d").unwrap_err().contains("longer than 720h"));
        assert!(parse_ttl("99999999999999999999d").is_err());
        assert!(parse_ttl("d").is_err());
        assert!(parse_ttl("1.5d").is_err());
    }

    #[test]
    fn a_key_naming_an_unknown_or_later_phase_is_refused_at_its_place() {
        let e = with("cache_key = \"{{outputs.fetsh.id}}\"\n").unwrap_err();
        assert!(
            e.contains(
                "p.toml:10:14: error: unknown phase \"fetsh\" in `cache_key` in phase \"draft\""
            ),
            "{e}"
        );
        assert!(e.contains("did you mean \"fetch\"?"), "{e}");
        // `fetch` runs after `draft` here: its output is not there yet.
        let text = "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"draft\"\nagent = \"a\"\ncache_key = \"x {{outputs.fetch}}\"\n[[phases]]\nid = \"fetch\"\nagent = \"a\"\n";
        let e = parse(text, Path::new("p.toml")).unwrap_err().to_string();
        assert!(
            e.contains("p.toml:7:16: error: `cache_key` in phase \"draft\" uses outputs.fetch, but phase \"fetch\" does not run before \"draft\""),
            "{e}"
        );
        assert!(e.contains("add \"fetch\" to its after list"), "{e}");
        // Its own output cannot be part of its key either.
        let e = with("cache_key = \"{{outputs.draft}}\"\n").unwrap_err();
        assert!(
            e.contains("phase \"draft\" does not run before \"draft\""),
            "{e}"
        );
    }

    #[test]
    fn bad_keys_and_ttls_say_where_and_how_to_fix() {
        let e = with("cache_key = \"{{input.q\"\n").unwrap_err();
        assert!(
            e.contains(
                "p.toml:10:14: error: `{{` is not closed by `}}` in `cache_key` in phase \"draft\""
            ),
            "{e}"
        );
        let e = with("cache_key = \"same\"\n").unwrap_err();
        assert!(
            e.contains("p.toml:10:13: error: `cache_key` in phase \"draft\" names no field"),
            "{e}"
        );
        let e = with("cache_key = \"{{input.q}} {{feedback}}\"\n").unwrap_err();
        assert!(
            e.contains("p.toml:10:26: error: `{{feedback}}` in `cache_key`"),
            "{e}"
        );
        let e = with("cache_key = 5\n").unwrap_err();
        assert!(
            e.contains("`cache_key` in phase \"draft\" must be a string"),
            "{e}"
        );
        let e = with("cache_ttl = \"7d\"\n").unwrap_err();
        assert!(
            e.contains("p.toml:10:13: error: `cache_ttl` in phase \"draft\" has no `cache_key`"),
            "{e}"
        );
        let e = with("cache_key = \"{{input.q}}\"\ncache_ttl = \"1w\"\n").unwrap_err();
        assert!(
            e.contains("p.toml:11:13: error: bad duration for `cache_ttl` in phase \"draft\""),
            "{e}"
        );
        assert!(e.contains("whole days such as \"7d\""), "{e}");
        let e = with("cache_key = \"{{input.q}}\"\ncache_ttl = \"0d\"\n").unwrap_err();
        assert!(
            e.contains("`cache_ttl` in phase \"draft\" must be longer than 0s"),
            "{e}"
        );
    }
}
