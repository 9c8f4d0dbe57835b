//! The top-level `mask` key: regular expressions whose matches the run log
//! hides. Each one is compiled here so that a bad one is reported at its
//! place in the file, not when the first line is logged.

use super::error::Diag;
use super::raw::Table;

/// `mask = ["MRN-\\d{6}", ...]`; the patterns as written, each known to compile.
pub(crate) fn read_mask(d: &mut Diag<'_>, root: &Table<'_, '_>) -> Vec<String> {
    let Some(items) = root.strings(d, "mask") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let pattern = *item.get_ref();
        if pattern.is_empty() {
            d.error(
                item.span(),
                "an empty pattern in `mask` would match everywhere",
                "remove it, or write the text to hide, e.g. \"MRN-\\\\d{6}\"",
            );
            continue;
        }
        match regex::Regex::new(pattern) {
            Ok(re) if re.is_match("") => d.error(
                item.span(),
                format!("the `mask` pattern \"{pattern}\" matches empty text"),
                "make the pattern require at least one character, e.g. use + instead of *",
            ),
            Ok(_) => out.push(pattern.to_string()),
            Err(e) => d.error(
                item.span(),
                format!(
                    "invalid regular expression in `mask`: {}",
                    regex_problem(&e)
                ),
                "write a regular expression in the syntax of the Rust regex crate; in TOML, write \\\\d for \\d, or use a literal string: 'MRN-\\d{6}'",
            ),
        }
    }
    out
}

/// `secret_env = ["NAME", ...]`: the names, each checked to be one; the
/// values are read from the environment when a run starts.
pub(crate) fn read_secret_env(d: &mut Diag<'_>, root: &Table<'_, '_>) -> Vec<String> {
    let Some(items) = root.strings(d, "secret_env") else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let name = *item.get_ref();
        let ok = !name.is_empty()
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !name.starts_with(|c: char| c.is_ascii_digit());
        if ok {
            out.push(name.to_string());
        } else {
            // Never echo it: it may be the secret itself, pasted by mistake.
            d.error(
                item.span(),
                "`secret_env` must hold names of environment variables",
                "give the variable's NAME, not its value, e.g. secret_env = [\"TEAM_TOKEN\"]",
            );
        }
    }
    out
}

/// The regex crate's message, on one line: its last line says what is wrong.
fn regex_problem(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(text)
            .trim()
            .trim_start_matches("error: ")
            .to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::spec::parse;

    const REST: &str = "\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"one\"\nagent = \"a\"\n";

    #[test]
    fn patterns_load_as_written() {
        let text = format!("name = \"p\"\nmask = ['MRN-\\d{{6}}', \"acct [0-9]+\"]{REST}");
        let p = parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(p.mask, ["MRN-\\d{6}", "acct [0-9]+"]);
        let p = parse(&format!("name = \"p\"{REST}"), Path::new("p.toml")).unwrap();
        assert!(p.mask.is_empty());
    }

    #[test]
    fn secret_env_names_load_and_values_are_never_echoed() {
        let text = format!("name = \"p\"\nsecret_env = [\"TEAM_TOKEN\", \"DB_PASS\"]{REST}");
        let p = parse(&text, Path::new("p.toml")).unwrap();
        assert_eq!(p.secret_env, ["TEAM_TOKEN", "DB_PASS"]);
        let p = parse(&format!("name = \"p\"{REST}"), Path::new("p.toml")).unwrap();
        assert!(p.secret_env.is_empty());
        let text = format!("name = \"p\"\nsecret_env = [\"sk-live-1234 5678\"]{REST}");
        let shown = parse(&text, Path::new("p.toml")).unwrap_err().to_string();
        assert!(
            shown.contains(
                "p.toml:2:15: error: `secret_env` must hold names of environment variables"
            ),
            "{shown}"
        );
        assert!(!shown.contains("1234 5678"), "{shown}");
    }

    #[test]
    fn bad_patterns_are_reported_where_they_are() {
        let text = format!("name = \"p\"\nmask = [\"ok\", \"(unclosed\", 'a*', \"\"]{REST}");
        let err = parse(&text, Path::new("p.toml")).unwrap_err();
        let shown = err.to_string();
        assert!(
            shown.contains(
                "p.toml:2:15: error: invalid regular expression in `mask`: unclosed group"
            ),
            "{shown}"
        );
        assert!(
            shown.contains("p.toml:2:28: error: the `mask` pattern \"a*\" matches empty text"),
            "{shown}"
        );
        assert!(
            shown.contains("p.toml:2:34: error: an empty pattern"),
            "{shown}"
        );
        assert_eq!(err.problems.len(), 3, "{shown}");
        let text = format!("name = \"p\"\nmask = [5]{REST}");
        let shown = parse(&text, Path::new("p.toml")).unwrap_err().to_string();
        assert!(
            shown.contains("p.toml:2:9: error: `mask` at the top level must hold only strings"),
            "{shown}"
        );
    }
}
