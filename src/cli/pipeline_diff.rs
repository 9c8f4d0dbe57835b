//! How one pipeline file differs from another, worded for a person: the
//! keys and phases that differ, then the first line of the files that does.
//! Files that differ only in comments, spacing or the order of keys within
//! a table are the same pipeline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::{Table, Value};

/// Key differences listed at most; the rest are counted.
const MOST: usize = 6;
/// Longest value or line quoted.
const WIDE: usize = 60;

/// Lines saying how the pipeline `here` differs from the one `there` (as
/// `there_is`, e.g. "in the run"); none when they are the same pipeline.
pub fn text(here: &str, there: &str, there_is: &str) -> Vec<String> {
    if here == there {
        return Vec::new();
    }
    let parsed = (
        toml::from_str::<Table>(here),
        toml::from_str::<Table>(there),
    );
    let mut lines = Vec::new();
    if let (Ok(a), Ok(b)) = &parsed {
        if a == b {
            return Vec::new();
        }
        let mut found = Vec::new();
        tables("", a, b, there_is, &mut found);
        let more = found.len().saturating_sub(MOST);
        lines.extend(found.into_iter().take(MOST));
        if more > 0 {
            lines.push(format!("… and {more} more"));
        }
    }
    lines.extend(first_line(here, there, there_is));
    lines
}

/// The first line where the files differ, with its number.
fn first_line(here: &str, there: &str, there_is: &str) -> Option<String> {
    let (mut a, mut b) = (here.lines(), there.lines());
    let mut n = 0;
    loop {
        n += 1;
        match (a.next(), b.next()) {
            (None, None) => return None,
            (Some(x), Some(y)) if x == y => {}
            (x, y) => {
                let quote = |l: Option<&str>| match l.map(str::trim_end) {
                    Some("") => "an empty line".into(),
                    Some(l) => format!("`{}`", clip(l)),
                    None => "the file ends".into(),
                };
                return Some(format!(
                    "line {n}: here {}, {there_is} {}",
                    quote(x),
                    quote(y)
                ));
            }
        }
    }
}

fn clip(s: &str) -> String {
    if s.chars().count() <= WIDE {
        s.to_string()
    } else {
        format!("{}…", s.chars().take(WIDE).collect::<String>())
    }
}

fn shown(v: &Value) -> String {
    clip(&v.to_string())
}

fn join(at: &str, key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    let key = if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    };
    if at.is_empty() {
        key
    } else {
        format!("{at}.{key}")
    }
}

fn tables(at: &str, a: &Table, b: &Table, there_is: &str, out: &mut Vec<String>) {
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        values(&join(at, k), a.get(k), b.get(k), there_is, out);
    }
}

fn values(at: &str, a: Option<&Value>, b: Option<&Value>, there_is: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Some(x), Some(y)) if x == y => {}
        (Some(Value::Table(x)), Some(Value::Table(y))) => tables(at, x, y, there_is, out),
        (Some(Value::Array(x)), Some(Value::Array(y))) => arrays(at, x, y, there_is, out),
        (Some(x), Some(y)) => out.push(format!("{at}: here {}, {there_is} {}", shown(x), shown(y))),
        (Some(Value::Table(_)), None) => out.push(format!("{at}: only here")),
        (None, Some(Value::Table(_))) => out.push(format!("{at}: only {there_is}")),
        (Some(x), None) => out.push(format!("{at}: here {}, not {there_is}", shown(x))),
        (None, Some(y)) => out.push(format!("{at}: not here, {there_is} {}", shown(y))),
        (None, None) => {}
    }
}

/// The `id` of each element, when every element is a table with one.
fn ids(items: &[Value]) -> Option<Vec<&str>> {
    items
        .iter()
        .map(|v| v.as_table()?.get("id")?.as_str())
        .collect()
}

fn arrays(at: &str, a: &[Value], b: &[Value], there_is: &str, out: &mut Vec<String>) {
    // Tables with ids (phases): matched by id, wherever they stand.
    if let (Some(ia), Some(ib)) = (ids(a), ids(b)) {
        let named = |id: &str| format!("{at}[{id:?}]");
        for (id, x) in ia.iter().zip(a) {
            let y = ib.iter().position(|j| j == id).map(|p| &b[p]);
            match y {
                Some(y) => values(&named(id), Some(x), Some(y), there_is, out),
                None => out.push(format!("{}: only here", named(id))),
            }
        }
        for id in ib.iter().filter(|id| !ia.contains(id)) {
            out.push(format!("{}: only {there_is}", named(id)));
        }
        let common = |of: &[&str], other: &[&str]| -> Vec<String> {
            of.iter()
                .filter(|id| other.contains(id))
                .map(|id| id.to_string())
                .collect()
        };
        let (oa, ob) = (common(&ia, &ib), common(&ib, &ia));
        if oa != ob {
            out.push(format!(
                "{at}: in another order (here {}; {there_is} {})",
                oa.join(", "),
                ob.join(", ")
            ));
        }
        return;
    }
    if a.len() == b.len() {
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            values(&format!("{at}[{i}]"), Some(x), Some(y), there_is, out);
        }
        return;
    }
    out.push(format!(
        "{at}: here {}, {there_is} {}",
        shown(&Value::Array(a.to_vec())),
        shown(&Value::Array(b.to_vec()))
    ));
}

/// Lines saying which schema files differ, each named relative to its
/// pipeline file's folder where it lies under it (machines may keep the
/// pipeline in different places).
pub fn schemas(
    here: &BTreeMap<PathBuf, String>,
    here_from: &Path,
    there: &BTreeMap<PathBuf, String>,
    there_from: &Path,
    there_is: &str,
) -> Vec<String> {
    fn relative(files: &BTreeMap<PathBuf, String>, from: &Path) -> BTreeMap<PathBuf, String> {
        let dir = from.parent().unwrap_or(Path::new(""));
        files
            .iter()
            .map(|(p, t)| (p.strip_prefix(dir).unwrap_or(p).to_path_buf(), t.clone()))
            .collect()
    }
    let (a, b) = (relative(here, here_from), relative(there, there_from));
    let mut names: Vec<&PathBuf> = a.keys().chain(b.keys()).collect();
    names.sort();
    names.dedup();
    names
        .into_iter()
        .filter_map(|n| {
            let shown = n.display();
            match (a.get(n), b.get(n)) {
                (Some(x), Some(y)) if x == y => None,
                (Some(x), Some(y)) => Some(format!(
                    "schema file {shown}: {}",
                    first_line(x, y, there_is).unwrap_or_default()
                )),
                (Some(_), None) => Some(format!("schema file {shown}: only here")),
                (None, Some(_)) => Some(format!("schema file {shown}: only {there_is}")),
                (None, None) => None,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUN: &str = r#"name = "tickets"

[agents.fast]
kind = "sim"
model = "b"

[[phases]]
id = "draft"
agent = "fast"

[[phases]]
id = "review"
agent = "fast"
"#;

    fn here(from: &str, to: &str) -> String {
        assert!(RUN.contains(from), "{from}");
        RUN.replacen(from, to, 1)
    }

    #[test]
    fn the_same_pipeline_has_no_differences_even_with_other_comments_and_spacing() {
        assert!(text(RUN, RUN, "in the run").is_empty());
        let commented = here(
            "model = \"b\"",
            "# the cheap one\nmodel   =   \"b\"  # for now",
        );
        assert!(text(&commented, RUN, "in the run").is_empty());
    }

    #[test]
    fn a_changed_value_is_named_by_its_key_and_its_line() {
        let lines = text(&here("model = \"b\"", "model = \"a\""), RUN, "in the run");
        assert_eq!(
            lines,
            [
                "agents.fast.model: here \"a\", in the run \"b\"",
                "line 5: here `model = \"a\"`, in the run `model = \"b\"`",
            ]
        );
    }

    #[test]
    fn phases_are_named_by_id_whether_changed_added_missing_or_moved() {
        let changed = here(
            "id = \"review\"\nagent = \"fast\"",
            "id = \"review\"\nagent = \"slow\"",
        );
        assert_eq!(
            text(&changed, RUN, "in the run")[0],
            "phases[\"review\"].agent: here \"slow\", in the run \"fast\""
        );
        let added = format!("{RUN}\n[[phases]]\nid = \"sign\"\nagent = \"fast\"\n");
        let lines = text(&added, RUN, "in the run");
        assert_eq!(lines[0], "phases[\"sign\"]: only here");
        assert_eq!(
            lines[1],
            "line 14: here an empty line, in the run the file ends"
        );
        let lines = text(RUN, &added, "in the run");
        assert_eq!(lines[0], "phases[\"sign\"]: only in the run");
        let swapped = RUN
            .replace("\"draft\"", "\"tmp\"")
            .replace("\"review\"", "\"draft\"")
            .replace("\"tmp\"", "\"review\"");
        assert_eq!(
            text(&swapped, RUN, "in the run")[0],
            "phases: in another order (here review, draft; in the run draft, review)"
        );
    }

    #[test]
    fn keys_only_on_one_side_and_many_differences_are_summed_up() {
        let lines = text(
            &here("kind = \"sim\"\n", "kind = \"sim\"\nlatency = \"1s\"\n"),
            RUN,
            "in the run",
        );
        assert_eq!(lines[0], "agents.fast.latency: here \"1s\", not in the run");
        let lines = text(
            RUN,
            &here(
                "[agents.fast]",
                "[agents.slow]\nkind = \"sim\"\n\n[agents.fast]",
            ),
            "in the run",
        );
        assert_eq!(lines[0], "agents.slow: only in the run");
        let many: String = (0..10).map(|i| format!("k{i} = {i}\n")).collect();
        let lines = text(&format!("{many}{RUN}"), RUN, "in the run");
        assert_eq!(lines.len(), MOST + 2, "{lines:?}");
        assert_eq!(lines[MOST], "… and 4 more");
        assert!(
            lines[MOST + 1].starts_with("line 1: here `k0 = 0`"),
            "{lines:?}"
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_told_by_its_first_differing_line() {
        let lines = text("name = [", RUN, "in the run");
        assert_eq!(
            lines,
            ["line 1: here `name = [`, in the run `name = \"tickets\"`"]
        );
    }

    #[test]
    fn schema_files_are_compared_relative_to_their_pipeline() {
        let files = |dir: &str, text: &str| {
            BTreeMap::from([(
                PathBuf::from(format!("{dir}/schemas/out.json")),
                text.to_string(),
            )])
        };
        let same = schemas(
            &files("/srv/a", "{}"),
            Path::new("/srv/a/p.toml"),
            &files("/home/b", "{}"),
            Path::new("/home/b/p.toml"),
            "in the run",
        );
        assert!(same.is_empty(), "{same:?}");
        let changed = schemas(
            &files("/srv/a", "{\n\"type\": \"object\"\n}"),
            Path::new("/srv/a/p.toml"),
            &files("/srv/a", "{\n\"type\": \"array\"\n}"),
            Path::new("/srv/a/p.toml"),
            "in the run",
        );
        assert_eq!(
            changed,
            [
                "schema file schemas/out.json: line 2: here `\"type\": \"object\"`, in the run `\"type\": \"array\"`"
            ]
        );
        let gone = schemas(
            &BTreeMap::new(),
            Path::new("/srv/a/p.toml"),
            &files("/srv/a", "{}"),
            Path::new("/srv/a/p.toml"),
            "in the run",
        );
        assert_eq!(gone, ["schema file schemas/out.json: only in the run"]);
    }
}
