//! From a file to a validated `Pipeline`: read, parse the TOML, check every
//! part, and either build the pipeline or report all problems found.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use toml::de::DeTable;

use super::agents::read_agents;
use super::defaults::{read_defaults, read_run_budget};
use super::error::{Diag, SpecError};
use super::http_agent::check_phase_refs;
use super::mask::{read_mask, read_secret_env};
use super::model::{OutputUse, Pipeline};
use super::output_schema::SchemaFiles;
use super::paths::{base_dir_of, resolve};
use super::phases::read_phases;
use super::raw::Table;
use super::roles::read_roles;

const TOP_KEYS: &[&str] = &[
    "name",
    "pricing",
    "mask",
    "secret_env",
    "defaults",
    "run_budget",
    "agents",
    "roles",
    "phases",
];

/// Reads and validates the pipeline file at `path`. Relative paths in it are
/// resolved against the file's folder.
pub fn load(path: &Path) -> Result<Pipeline, SpecError> {
    let bytes = std::fs::read(path).map_err(|e| {
        SpecError::whole_file(
            path,
            format!("cannot read the pipeline file: {e}"),
            "check the path, and that the file is readable UTF-8 text",
        )
    })?;
    let text =
        String::from_utf8(bytes).map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error()))?;
    parse(&text, path)
}

/// Where a file stops being UTF-8: the line and column of the first bad
/// byte (columns counted in characters of the good text before it), and
/// its offset.
fn not_utf8(path: &Path, bytes: &[u8], e: std::str::Utf8Error) -> SpecError {
    let offset = e.valid_up_to();
    let good = std::str::from_utf8(&bytes[..offset]).unwrap_or_default();
    let (line, col) = super::line_col(good, offset);
    SpecError {
        file: path.to_path_buf(),
        problems: vec![super::error::Problem {
            line,
            col,
            message: format!(
                "the pipeline file is not UTF-8: byte 0x{:02X} at offset {offset} is not valid UTF-8",
                bytes[offset]
            ),
            help: Some(
                "save the file as UTF-8 (an editor's \"save with encoding\"); pipeline files are UTF-8 text"
                    .into(),
            ),
        }],
    }
}

/// Validates pipeline `text`; `path` names the file in messages and gives
/// the folder relative paths are resolved against. The file is not read;
/// the schema files its phases name are.
pub fn parse(text: &str, path: &Path) -> Result<Pipeline, SpecError> {
    parse_kept(text, path, &BTreeMap::new())
}

/// Like [`parse`], with the schema files a run kept (by resolved path):
/// those are taken from `kept`, not read again (see
/// [`Pipeline::schema_files`]).
pub fn parse_kept(
    text: &str,
    path: &Path,
    kept: &BTreeMap<PathBuf, String>,
) -> Result<Pipeline, SpecError> {
    let (root, syntax_errors) = DeTable::parse_recoverable(text);
    // What follows a syntax error may be misread, so stop at syntax.
    if !syntax_errors.is_empty() {
        let mut d = Diag::new(text);
        for e in &syntax_errors {
            d.error(
                e.span().unwrap_or(0..0),
                format!("invalid TOML: {}", e.message().trim_end()),
                syntax_help(e.message()),
            );
        }
        return Err(into_error(d, path));
    }
    let base_dir = base_dir_of(path).map_err(|e| {
        SpecError::whole_file(
            path,
            format!("cannot tell the folder of the pipeline file: {e}"),
            "run from an existing directory, or give the file's absolute path",
        )
    })?;

    let mut d = Diag::new(text);
    let root = Table::new(root.get_ref(), 0..0, "at the top level".into());
    root.check_keys(&mut d, TOP_KEYS, |k| {
        if matches!(
            k,
            "timeout" | "retry" | "concurrency" | "budget_usd" | "budget_tokens"
        ) {
            Some(format!("`{k}` belongs in [defaults]"))
        } else if matches!(k, "run_budget_usd" | "run_budget_tokens" | "budget") {
            Some("a run's limits go in [run_budget] as usd and tokens".to_string())
        } else {
            None
        }
    });
    let name = root.required_string(&mut d, "name", "add name = \"...\" at the top of the file");
    if let Some(n) = name.as_ref().filter(|n| n.get_ref().trim().is_empty()) {
        d.error(
            n.span(),
            "the pipeline name is empty",
            "give the pipeline a name, e.g. name = \"clinical-coding\"",
        );
    }
    let pricing = root.string(&mut d, "pricing");
    if let Some(p) = pricing.as_ref().filter(|p| p.get_ref().is_empty()) {
        d.error(
            p.span(),
            "`pricing` is empty",
            "name a price file relative to this one, e.g. pricing = \"pricing.toml\", or leave the key out",
        );
    }
    let pricing = pricing.map(|p| resolve(&base_dir, p.get_ref()));
    let mask = read_mask(&mut d, &root);
    let secret_env = read_secret_env(&mut d, &root);
    let defaults = read_defaults(&mut d, &root);
    let run_budget = read_run_budget(&mut d, &root);
    let mut phase_refs = Vec::new();
    let agents = read_agents(&mut d, &root, &base_dir, &mut phase_refs);
    let roles = read_roles(&mut d, &root, &agents);
    let schemas = SchemaFiles {
        base_dir: &base_dir,
        kept,
    };
    let phases = read_phases(&mut d, &root, &defaults, &agents, &roles, &schemas);
    // With problems in the phases, their ids may be incomplete.
    if d.is_empty() {
        let ids: Vec<&str> = phases.iter().map(|p| p.id.as_str()).collect();
        check_phase_refs(&mut d, &phase_refs, &ids);
    }

    if !d.is_empty() {
        return Err(into_error(d, path));
    }
    // With no problems recorded, every part has been read.
    let agents = agents
        .into_iter()
        .map(|(k, v)| v.map(|v| (k, v)))
        .collect::<Option<_>>();
    let (Some(name), Some(agents)) = (name, agents) else {
        return Err(SpecError::whole_file(
            path,
            "the pipeline could not be read".into(),
            "check the file against the pipeline format",
        ));
    };
    let output_uses = phase_refs
        .into_iter()
        .map(|r| {
            let (line, col) = super::line_col(text, r.at.start);
            OutputUse {
                agent: r.agent,
                phase: r.phase,
                line,
                col,
            }
        })
        .collect();
    let pipeline = Pipeline {
        name: name.get_ref().to_string(),
        source: base_dir.join(path.file_name().unwrap_or(path.as_os_str())),
        base_dir,
        defaults,
        agents,
        phases,
        pricing,
        mask,
        secret_env,
        run_budget,
        roles,
        output_uses,
    };
    pipeline.check_switched_off().map_err(|e| SpecError {
        file: path.to_path_buf(),
        problems: e.problems,
    })?;
    Ok(pipeline)
}

fn into_error(d: Diag<'_>, path: &Path) -> SpecError {
    d.into_error(path).unwrap_or_else(|| SpecError {
        file: path.to_path_buf(),
        problems: Vec::new(),
    })
}

/// How to fix a TOML syntax error, from the parser's message.
fn syntax_help(message: &str) -> &'static str {
    if message.contains("duplicate key") {
        "each key may appear only once in a table; remove or rename one of them"
    } else if message.contains("quoted") {
        "put string values in quotes, e.g. kind = \"sim\""
    } else if message.contains("unclosed") {
        "close the array, table or string that was opened"
    } else {
        "fix the TOML syntax here; see https://toml.io for the format"
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::spec::model::AgentKind;

    const SMALL: &str =
        "name = \"p\"\n[agents.a]\nkind = \"sim\"\n[[phases]]\nid = \"one\"\nagent = \"a\"\n";

    #[test]
    fn a_small_pipeline() {
        let p = parse(SMALL, Path::new("/pipes/p.toml")).unwrap();
        assert_eq!(p.name, "p");
        assert_eq!(p.source, PathBuf::from("/pipes/p.toml"));
        assert_eq!(p.base_dir, PathBuf::from("/pipes"));
        assert_eq!(p.pricing, None);
        assert_eq!(p.defaults.concurrency, 8);
        assert!(matches!(p.agents["a"].kind, AgentKind::Sim(_)));
        assert_eq!(p.phases.len(), 1);
    }

    #[test]
    fn relative_file_gets_an_absolute_base_dir() {
        let p = parse(SMALL, Path::new("sub/p.toml")).unwrap();
        assert!(p.base_dir.is_absolute());
        assert!(p.base_dir.ends_with("sub"));
        assert!(p.source.is_absolute());
    }

    #[test]
    fn pricing_is_relative_to_the_file() {
        let text = format!("pricing = \"pricing.toml\"\n{SMALL}");
        let p = parse(&text, Path::new("/pipes/p.toml")).unwrap();
        assert_eq!(p.pricing, Some(PathBuf::from("/pipes/pricing.toml")));
    }

    #[test]
    fn load_reads_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, SMALL).unwrap();
        let p = load(&path).unwrap();
        assert_eq!(p.base_dir, dir.path());
        let err = load(&dir.path().join("none.toml")).unwrap_err();
        assert_eq!(err.problems[0].line, 0);
        assert!(
            err.to_string()
                .contains("none.toml: error: cannot read the pipeline file")
        );
    }

    #[test]
    fn syntax_errors_stop_early_with_positions() {
        let err = parse("name = \"p\"\nkind = sim\n", Path::new("p.toml")).unwrap_err();
        assert_eq!(err.problems.len(), 1, "{err}");
        assert!(
            err.to_string()
                .starts_with("p.toml:2:8: error: invalid TOML: "),
            "{err}"
        );
        let err = parse("name = \"p\"\nname = \"q\"\n", Path::new("p.toml")).unwrap_err();
        assert!(
            err.to_string()
                .contains("p.toml:2:1: error: invalid TOML: duplicate key"),
            "{err}"
        );
    }

    #[test]
    fn all_problems_are_reported_in_file_order() {
        let text = "nmae = \"p\"\ntimeout = \"1s\"\n[defaults]\nconcurrency = 0\n[agents.a]\nkind = \"sim\"\nlatency = \"1s..0s\"\n[[phases]]\nid = \"one\"\nagent = \"b\"\n";
        let err = parse(text, Path::new("p.toml")).unwrap_err();
        let at: Vec<(usize, usize)> = err.problems.iter().map(|p| (p.line, p.col)).collect();
        assert_eq!(
            at,
            [(1, 1), (1, 1), (2, 1), (4, 15), (7, 11), (10, 9)],
            "{err}"
        );
        let shown = err.to_string();
        assert!(shown.contains("`timeout` belongs in [defaults]"), "{shown}");
        assert!(shown.contains("missing key `name`"), "{shown}");
        assert!(err.problems.iter().all(|p| p.help.is_some()));
    }

    #[test]
    fn a_file_that_is_not_utf8_names_line_column_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(&path, b"name = \"p\"\n# caf\xe9\n").unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!((err.problems[0].line, err.problems[0].col), (2, 6));
        assert!(
            err.to_string().contains(
                "p.toml:2:6: error: the pipeline file is not UTF-8: byte 0xE9 at offset 16"
            ),
            "{err}"
        );
        // Columns count characters: `é` before the bad byte is one column.
        std::fs::write(
            &path,
            "é\u{1F600}x".bytes().chain([0xff]).collect::<Vec<u8>>(),
        )
        .unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!((err.problems[0].line, err.problems[0].col), (1, 4));
        assert!(err.to_string().contains("byte 0xFF at offset 7"), "{err}");
        std::fs::write(&path, [0x80]).unwrap();
        let err = load(&path).unwrap_err();
        assert_eq!((err.problems[0].line, err.problems[0].col), (1, 1));
    }

    #[test]
    fn unused_agents_are_fine() {
        let text = format!("{SMALL}[agents.spare]\nkind = \"command\"\ncommand = [\"true\"]\n");
        assert!(parse(&text, Path::new("p.toml")).is_ok());
    }
}
