//! `send_back = { to = ["plan"], max_rounds = 3 }` on a reviewer phase: its
//! agent may reply `{"send_back": {"to": "plan", "feedback": "…"}}`, and the
//! named phase runs again with the feedback, everything after it following.
//! Each target must run before the reviewer, or the loop could not reach it.

use std::collections::HashMap;
use std::ops::Range;

use toml::Spanned;

use super::error::Diag;
use super::model::SendBackSpec;
use super::raw::Table;
use super::suggest::did_you_mean;

const KEYS: &[&str] = &["to", "max_rounds"];
/// Rounds a reviewer gets when `max_rounds` is not written.
pub const DEFAULT_MAX_ROUNDS: u32 = 3;
/// Most rounds a reviewer may be given: past this, a person should decide.
pub const MAX_ROUNDS: u64 = 100;

/// `send_back` as read, before its targets are resolved.
pub(crate) struct Draft<'a> {
    pub to: Vec<Spanned<&'a str>>,
    pub max_rounds: u32,
}

pub(crate) fn read<'a>(d: &mut Diag<'_>, t: &Table<'a, '_>) -> Option<Draft<'a>> {
    let s = t.table(d, "send_back", t.part("send_back"))?;
    s.check_keys(d, KEYS, |_| None);
    let help = "write send_back = { to = [\"PHASE\"], max_rounds = 3 }, naming phases that run before this one";
    let to = match s.get("to") {
        None => {
            s.missing(d, "to", help);
            return None;
        }
        Some(v) => {
            let to = s.strings(d, "to")?;
            if to.is_empty() {
                d.error(v.span(), format!("`to` {} names no phase", s.place), help);
                return None;
            }
            to
        }
    };
    let max_rounds = s
        .count(d, "max_rounds", 1, MAX_ROUNDS)
        .map_or(DEFAULT_MAX_ROUNDS, |n| n.into_inner() as u32);
    Some(Draft { to, max_rounds })
}

/// Checks each target names a phase that runs before phase `me` (follows
/// `after` edges back from it) and resolves the draft.
pub(crate) fn resolve(
    d: &mut Diag<'_>,
    me: usize,
    ids: &[Option<&str>],
    draft: &Draft<'_>,
    after: &[Vec<usize>],
    first_by_id: &HashMap<&str, usize>,
) -> SendBackSpec {
    let before = upstream(me, after);
    let own = ids[me].unwrap_or("?");
    let known: Vec<&str> = ids.iter().flatten().copied().collect();
    let mut to = Vec::new();
    for name in &draft.to {
        let wanted = *name.get_ref();
        let at: Range<usize> = name.span();
        match first_by_id.get(wanted) {
            Some(&i) if before.contains(&i) => {
                if !to.iter().any(|t| t == wanted) {
                    to.push(wanted.to_string());
                }
            }
            Some(&i) if i == me => d.error(
                at,
                format!("phase \"{own}\" cannot send the task back to itself"),
                "name a phase that runs before it; a phase that should try again uses retry, or review = \"always\" for a person's feedback",
            ),
            Some(_) => d.error(
                at,
                format!("phase \"{own}\" cannot send the task back to \"{wanted}\", which does not run before it"),
                format!("send_back names phases this one waits for, directly or through others; add \"{wanted}\" to its `after` chain, or name one of: {}", names(&before, ids)),
            ),
            None => d.error(
                at,
                format!("unknown phase \"{wanted}\" in `send_back.to`"),
                format!(
                    "phases defined here are: {}{}",
                    known.join(", "),
                    did_you_mean(wanted, known.iter().copied())
                ),
            ),
        }
    }
    SendBackSpec {
        to,
        max_rounds: draft.max_rounds,
    }
}

/// Every phase `me` waits for, directly or through others.
fn upstream(me: usize, after: &[Vec<usize>]) -> Vec<usize> {
    let mut seen = vec![false; after.len()];
    let mut stack = after[me].clone();
    while let Some(i) = stack.pop() {
        if i < seen.len() && !seen[i] && i != me {
            seen[i] = true;
            stack.extend(after[i].iter().copied());
        }
    }
    (0..after.len()).filter(|&i| seen[i]).collect()
}

fn names(which: &[usize], ids: &[Option<&str>]) -> String {
    let list: Vec<&str> = which.iter().filter_map(|&i| ids[i]).collect();
    if list.is_empty() {
        "(none: this phase waits for no other)".into()
    } else {
        list.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    fn parse(toml: &str) -> Result<crate::spec::Pipeline, String> {
        crate::spec::parse(toml, Path::new("p.toml")).map_err(|e| e.to_string())
    }

    const HEAD: &str = "name = \"p\"\n[agents.a]\nkind = \"sim\"\n";

    #[test]
    fn a_reviewer_may_send_back_to_a_phase_before_it() {
        let p = parse(&format!(
            "{HEAD}[[phases]]\nid = \"plan\"\nagent = \"a\"\n[[phases]]\nid = \"review\"\nagent = \"a\"\nsend_back = {{ to = [\"plan\"], max_rounds = 2 }}\n"
        ))
        .unwrap();
        let s = p.phases[1].send_back.as_ref().unwrap();
        assert_eq!(
            (s.to.as_slice(), s.max_rounds),
            (&["plan".to_string()][..], 2)
        );
        let p = parse(&format!(
            "{HEAD}[[phases]]\nid = \"plan\"\nagent = \"a\"\n[[phases]]\nid = \"code\"\nagent = \"a\"\n[[phases]]\nid = \"review\"\nagent = \"a\"\nsend_back = {{ to = [\"plan\", \"code\"] }}\n"
        ))
        .unwrap();
        assert_eq!(p.phases[2].send_back.as_ref().unwrap().max_rounds, 3);
        assert!(p.phases[0].send_back.is_none());
    }

    #[test]
    fn targets_that_do_not_run_before_are_refused_where_written() {
        let e = parse(&format!(
            "{HEAD}[[phases]]\nid = \"plan\"\nagent = \"a\"\nsend_back = {{ to = [\"review\"] }}\n[[phases]]\nid = \"review\"\nagent = \"a\"\n"
        ))
        .unwrap_err();
        assert!(e.contains("p.toml:7:21"), "{e}");
        assert!(e.contains("does not run before it"), "{e}");
        let e = parse(&format!(
            "{HEAD}[[phases]]\nid = \"plan\"\nagent = \"a\"\nsend_back = {{ to = [\"plan\"] }}\n"
        ))
        .unwrap_err();
        assert!(e.contains("to itself"), "{e}");
        let e = parse(&format!(
            "{HEAD}[[phases]]\nid = \"plan\"\nagent = \"a\"\n[[phases]]\nid = \"review\"\nagent = \"a\"\nsend_back = {{ to = [\"plna\"] }}\n"
        ))
        .unwrap_err();
        assert!(e.contains("unknown phase \"plna\""), "{e}");
        assert!(e.contains("did you mean \"plan\""), "{e}");
    }

    #[test]
    fn malformed_tables_say_how_to_write_them() {
        for (bad, says) in [
            ("send_back = \"plan\"", "must be a table"),
            ("send_back = { max_rounds = 2 }", "`to`"),
            ("send_back = { to = [] }", "names no phase"),
            (
                "send_back = { to = [\"plan\"], max_rounds = 0 }",
                "at least 1",
            ),
            (
                "send_back = { to = [\"plan\"], max_rounds = 1000 }",
                "at most 100",
            ),
            ("send_back = { to = [\"plan\"], rounds = 2 }", "rounds"),
        ] {
            let e = parse(&format!(
                "{HEAD}[[phases]]\nid = \"plan\"\nagent = \"a\"\n[[phases]]\nid = \"review\"\nagent = \"a\"\n{bad}\n"
            ))
            .unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(e.contains("p.toml:10:"), "{bad}: {e}");
        }
    }
}
