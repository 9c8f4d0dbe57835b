//! `[agents.NAME]` tables. Each is read as one table with a `kind` and
//! checked against the keys of that kind, so that a key of another kind
//! (`latency` on a command agent) is reported where it is written.
//!
//! Defaults: command agents get the pipeline folder as `cwd` and a 16 MiB
//! output limit; sim agents answer at once (`latency = "0ms"`), report no
//! tokens, never fail, and call their model "sim".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::de::DeValue;

use super::error::Diag;
use super::http_agent::{HTTP_KEYS, PhaseRef, read_http};
use super::limits::{MAX_OUTPUT_BYTES, MAX_PARALLEL, MAX_RPM, MAX_SIM_TOKENS, MAX_TPM, show_count};
use super::model::{AgentKind, AgentSpec, CommandSpec, Range, Route, SimSpec};
use super::paths::resolve;
use super::phases::read_condition;
use super::range::{RangeError, parse_duration_range, parse_u64_range};
use super::raw::{Table, integer_value};
use super::suggest::did_you_mean;

const KINDS: &[&str] = &["command", "sim", "http", "rust"];
/// A `rust` agent is a function of the program that embeds baton: the file
/// only names it and sets its limits.
const RUST_KEYS: &[&str] = &[
    "kind",
    "model",
    "version",
    "max_parallel",
    "rpm",
    "tpm",
    "route",
];
const COMMAND_KEYS: &[&str] = &[
    "kind",
    "command",
    "cwd",
    "env",
    "max_output_bytes",
    "model",
    "max_parallel",
    "rpm",
    "tpm",
    "route",
];
const SIM_KEYS: &[&str] = &[
    "kind",
    "latency",
    "tokens",
    "fail_rate",
    "fatal_rate",
    "block_rate",
    "review_rate",
    "send_back_rate",
    "model",
    "seed",
    "fields",
    "max_parallel",
    "rpm",
    "tpm",
    "route",
];
const ROUTE_KEYS: &[&str] = &["when", "model"];
const RATES: [&str; 5] = [
    "fail_rate",
    "fatal_rate",
    "block_rate",
    "review_rate",
    "send_back_rate",
];
const DEFAULT_MAX_OUTPUT_BYTES: usize = 16 * 1024 * 1024;

/// The kind, other than `except`, that has key `k`, as a hint for a key
/// written on the wrong kind of agent.
fn kind_with_key(k: &str, except: &str) -> Option<String> {
    [
        ("command", COMMAND_KEYS),
        ("sim", SIM_KEYS),
        ("http", HTTP_KEYS),
        ("rust", RUST_KEYS),
    ]
    .into_iter()
    .find(|(kind, keys)| *kind != except && keys.contains(&k))
    .map(|(kind, _)| format!("`{k}` is a key of {kind} agents"))
}

/// Every agent by name; `None` for an agent with problems (already
/// recorded), so that phases naming it are not reported as well. Places in
/// http agents' templates that name phases are added to `refs`.
pub(crate) fn read_agents(
    d: &mut Diag<'_>,
    root: &Table<'_, '_>,
    base_dir: &Path,
    refs: &mut Vec<PhaseRef>,
) -> BTreeMap<String, Option<AgentSpec>> {
    let mut out = BTreeMap::new();
    let Some(agents) = root.table(d, "agents", "at the top level".into()) else {
        return out;
    };
    for (key, value) in agents.inner.iter() {
        let name: &str = key.get_ref();
        let spec = match value.get_ref() {
            DeValue::Table(t) => {
                let t = Table::new(t, value.span(), format!("in agent \"{name}\""));
                read_agent(d, name, &t, base_dir, refs)
            }
            _ => {
                d.error(
                    value.span(),
                    format!("agent \"{name}\" must be a table"),
                    format!(
                        "write it as a table: [agents.{name}] with kind = \"command\", \"sim\" or \"http\""
                    ),
                );
                None
            }
        };
        out.insert(name.to_string(), spec);
    }
    out
}

fn read_agent(
    d: &mut Diag<'_>,
    name: &str,
    t: &Table<'_, '_>,
    base_dir: &Path,
    refs: &mut Vec<PhaseRef>,
) -> Option<AgentSpec> {
    let kind = t.required_string(
        d,
        "kind",
        "add kind = \"command\" (runs a program), kind = \"http\" (an LLM API), kind = \"sim\" (a simulated agent) or kind = \"rust\" (a function registered by a Rust program)",
    );
    let max_parallel = t
        .count(d, "max_parallel", 1, MAX_PARALLEL)
        .map(|n| usize::try_from(n.into_inner()).unwrap_or(usize::MAX));
    let rpm = t
        .count(d, "rpm", 1, MAX_RPM)
        .map(|n| u32::try_from(n.into_inner()).unwrap_or(u32::MAX));
    let tpm = t.count(d, "tpm", 1, MAX_TPM).map(|n| n.into_inner());
    let routes = read_routes(d, name, t);
    let kind = match kind.as_ref().map(|k| *k.get_ref()) {
        Some("command") => {
            t.check_keys(d, COMMAND_KEYS, |k| kind_with_key(k, "command"));
            read_command(d, t, base_dir).map(AgentKind::Command)
        }
        Some("sim") => {
            t.check_keys(d, SIM_KEYS, |k| kind_with_key(k, "sim"));
            read_sim(d, t).map(AgentKind::Sim)
        }
        Some("http") => {
            t.check_keys(d, HTTP_KEYS, |k| kind_with_key(k, "http"));
            read_http(d, name, t, refs).map(AgentKind::Http)
        }
        Some("rust") => {
            t.check_keys(d, RUST_KEYS, |k| kind_with_key(k, "rust"));
            Some(AgentKind::Rust {
                model: t.string(d, "model").map(|m| m.get_ref().to_string()),
                version: t.string(d, "version").map(|v| v.get_ref().to_string()),
            })
        }
        other => {
            if let (Some(k), Some(written)) = (kind.as_ref(), other) {
                d.error(
                    k.span(),
                    format!("unknown kind \"{written}\" {}", t.place),
                    format!(
                        "kind is one of: {}{}",
                        KINDS.join(", "),
                        did_you_mean(written, KINDS.iter().copied())
                    ),
                );
            }
            // Without a kind, only keys that no kind knows are surely wrong.
            let mut all: Vec<&str> = COMMAND_KEYS.to_vec();
            all.extend(SIM_KEYS.iter().filter(|k| !COMMAND_KEYS.contains(k)));
            all.extend(
                HTTP_KEYS
                    .iter()
                    .filter(|k| !all.contains(k))
                    .collect::<Vec<_>>(),
            );
            t.check_keys(d, &all, |_| None);
            None
        }
    }?;
    Some(AgentSpec {
        name: name.to_string(),
        max_parallel,
        rpm,
        tpm,
        routes: routes?,
        kind,
    })
}

const ROUTE_HELP: &str = "write each rule as [[agents.NAME.route]] with model = \"...\" and, but for the last, when = \"input.FIELD == 'value'\"";

/// `[[agents.NAME.route]]`: rules tried in order; `None` when one is bad.
fn read_routes(d: &mut Diag<'_>, name: &str, t: &Table<'_, '_>) -> Option<Vec<Route>> {
    let Some(v) = t.get("route") else {
        return Some(Vec::new());
    };
    let DeValue::Array(items) = v.get_ref() else {
        d.error(
            v.span(),
            format!("`route` {} must be an array of tables", t.place),
            ROUTE_HELP,
        );
        return None;
    };
    let mut out = Vec::new();
    let mut ok = true;
    let mut default_at: Option<usize> = None;
    for (i, item) in items.iter().enumerate() {
        let DeValue::Table(inner) = item.get_ref() else {
            d.error(
                item.span(),
                format!("route #{} of agent \"{name}\" must be a table", i + 1),
                ROUTE_HELP,
            );
            ok = false;
            continue;
        };
        let r = Table::new(
            inner,
            item.span(),
            format!("in route #{} of agent \"{name}\"", i + 1),
        );
        r.check_keys(d, ROUTE_KEYS, |_| None);
        let model = r.required_string(d, "model", "add model = \"...\": the model this rule picks");
        if let Some(m) = model.as_ref().filter(|m| m.get_ref().trim().is_empty()) {
            d.error(
                m.span(),
                format!("`model` {} is empty", r.place),
                "name the model this rule picks, e.g. model = \"claude-haiku-4-5\"",
            );
            ok = false;
        }
        if let Some(earlier) = default_at {
            d.error(
                item.span(),
                format!(
                    "route #{} of agent \"{name}\" never applies: route #{} has no `when` and takes every task",
                    i + 1,
                    earlier + 1
                ),
                "put the rule without `when` last, or give it a condition",
            );
            ok = false;
        }
        let when = match r.get("when") {
            None => {
                default_at.get_or_insert(i);
                None
            }
            Some(_) => match read_condition(d, &r, "when") {
                Some(w) => Some((w.condition, w.text)),
                None => {
                    ok = false;
                    None
                }
            },
        };
        if let Some(model) = model {
            let (when, when_text) = match when {
                Some((c, text)) => (Some(c), Some(text)),
                None => (None, None),
            };
            out.push(Route {
                when,
                when_text,
                model: model.get_ref().to_string(),
            });
        } else {
            ok = false;
        }
    }
    ok.then_some(out)
}

fn read_command(d: &mut Diag<'_>, t: &Table<'_, '_>, base_dir: &Path) -> Option<CommandSpec> {
    if t.get("command").is_none() {
        t.missing(
            d,
            "command",
            "give the program and its arguments, e.g. command = [\"python3\", \"agents/documenter.py\"]",
        );
    }
    let command = t.strings(d, "command");
    let program = match command.as_deref() {
        Some([first, ..]) if !first.get_ref().is_empty() => Some(*first.get_ref()),
        Some([first, ..]) => {
            d.error(
                first.span(),
                format!("the program in `command` {} is empty", t.place),
                "name a program, e.g. command = [\"python3\", \"agents/documenter.py\"]",
            );
            None
        }
        Some([]) => {
            let at = t.get("command").map_or(t.span.clone(), |v| v.span());
            d.error(
                at,
                format!("`command` {} is empty", t.place),
                "give the program and its arguments, e.g. command = [\"python3\", \"agents/documenter.py\"]",
            );
            None
        }
        None => None,
    };
    let cwd = t.string(d, "cwd").map_or_else(
        || base_dir.to_path_buf(),
        |c| resolve(base_dir, c.get_ref()),
    );
    let env = read_env(d, t);
    let max_output_bytes = t
        .count(d, "max_output_bytes", 1, MAX_OUTPUT_BYTES)
        .map_or(DEFAULT_MAX_OUTPUT_BYTES, |n| {
            usize::try_from(n.into_inner()).unwrap_or(usize::MAX)
        });
    let model = t.string(d, "model").map(|m| m.get_ref().to_string());
    let command = command?;
    let program = program?;
    Some(CommandSpec {
        // A program with a '/' is a path in the pipeline's folder; a bare
        // name is looked up in PATH when the agent starts.
        program: if program.contains('/') {
            resolve(base_dir, program)
        } else {
            PathBuf::from(program)
        },
        args: command[1..]
            .iter()
            .map(|a| a.get_ref().to_string())
            .collect(),
        cwd,
        env: env?,
        max_output_bytes,
        model,
    })
}

/// `env = { KEY = "value" }`; values must be strings.
fn read_env(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<BTreeMap<String, String>> {
    let Some(env) = t.table(d, "env", t.part("env")) else {
        // Absent is fine; a wrong type has been reported.
        return t.get("env").is_none().then(BTreeMap::new);
    };
    let mut out = BTreeMap::new();
    let mut ok = true;
    for (key, value) in env.inner.iter() {
        match value.get_ref() {
            DeValue::String(s) => {
                out.insert(key.get_ref().to_string(), s.to_string());
            }
            _ => {
                ok = false;
                d.error(
                    value.span(),
                    format!(
                        "env value of `{}` {} must be a string",
                        key.get_ref(),
                        t.place
                    ),
                    format!("put it in quotes, e.g. {} = \"1\"", key.get_ref()),
                );
            }
        }
    }
    ok.then_some(out)
}

fn read_sim(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<SimSpec> {
    let latency = read_latency(d, t);
    let tokens = read_tokens(d, t);
    let mut rates = [0.0f64; RATES.len()];
    let mut rates_ok = true;
    for (rate, key) in rates.iter_mut().zip(RATES) {
        match (t.get(key), t.fraction(d, key)) {
            (_, Some(r)) => *rate = r.into_inner(),
            (Some(_), None) => rates_ok = false,
            (None, None) => {}
        }
    }
    let sum: f64 = rates.iter().sum();
    // A little slack so that 0.1 + 0.2 + 0.3 + 0.4 is not "over 1".
    if rates_ok && sum > 1.0 + 1e-9 {
        d.error(
            t.span.clone(),
            format!(
                "the rates {} add up to {}, more than 1",
                t.place,
                (sum * 1e6).round() / 1e6
            ),
            "fail_rate, fatal_rate, block_rate, review_rate and send_back_rate are shares of the same calls; lower them so they add up to at most 1",
        );
        rates_ok = false;
    }
    let model = t.string(d, "model").map_or("sim", |m| *m.get_ref());
    let seed = t
        .count(d, "seed", 0, i64::MAX as u64)
        .map_or(0, |s| s.into_inner());
    let fields = match t.get("fields") {
        None => Some(Vec::new()),
        Some(_) => t
            .strings(d, "fields")
            .map(|f| f.iter().map(|s| s.get_ref().to_string()).collect()),
    };
    if !rates_ok {
        return None;
    }
    let [
        fail_rate,
        fatal_rate,
        block_rate,
        review_rate,
        send_back_rate,
    ] = rates;
    Some(SimSpec {
        latency: latency?,
        tokens: tokens?,
        fail_rate,
        fatal_rate,
        block_rate,
        review_rate,
        send_back_rate,
        model: model.to_string(),
        seed,
        output_fields: fields?,
    })
}

const LATENCY_HELP: &str = "write a duration or a range of them, each from 0s to 720h (30 days), e.g. latency = \"50ms..400ms\" or latency = \"0ms\"";
const TOKENS_HELP: &str = "write a whole number or a range, each from 0 to 1_000_000_000_000, e.g. tokens = \"200..2000\" or tokens = 500";

fn read_latency(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<Range<Duration>> {
    let Some(v) = t.get("latency") else {
        return Some(Range {
            lo: Duration::ZERO,
            hi: Duration::ZERO,
        });
    };
    let DeValue::String(s) = v.get_ref() else {
        d.error(
            v.span(),
            format!("`latency` {} must be a string", t.place),
            LATENCY_HELP,
        );
        return None;
    };
    range_or_report(
        d,
        t,
        "latency",
        v.span(),
        parse_duration_range(s),
        LATENCY_HELP,
    )
}

fn read_tokens(d: &mut Diag<'_>, t: &Table<'_, '_>) -> Option<Range<u64>> {
    let Some(v) = t.get("tokens") else {
        return Some(Range { lo: 0, hi: 0 });
    };
    let parsed = match v.get_ref() {
        DeValue::String(s) => parse_u64_range(s, MAX_SIM_TOKENS),
        DeValue::Integer(_) => match integer_value(v.get_ref()).map(u64::try_from) {
            Some(Ok(n)) if n <= MAX_SIM_TOKENS => Ok(Range { lo: n, hi: n }),
            Some(Ok(_)) | None => Err(RangeError::Bound(format!(
                "a token count must be at most {}",
                show_count(MAX_SIM_TOKENS)
            ))),
            Some(Err(_)) => Err(RangeError::Bound(
                "a token count must be a whole number, 0 or more".into(),
            )),
        },
        _ => Err(RangeError::Bound(
            "it must be a whole number or a range in quotes".into(),
        )),
    };
    range_or_report(d, t, "tokens", v.span(), parsed, TOKENS_HELP)
}

fn range_or_report<T>(
    d: &mut Diag<'_>,
    t: &Table<'_, '_>,
    key: &str,
    span: std::ops::Range<usize>,
    parsed: Result<Range<T>, RangeError>,
    help: &str,
) -> Option<Range<T>> {
    match parsed {
        Ok(r) => Some(r),
        Err(RangeError::Bound(why)) => {
            d.error(span, format!("bad `{key}` {}: {why}", t.place), help);
            None
        }
        Err(RangeError::Backwards { written, fixed }) => {
            d.error(
                span,
                format!("`{key}` range \"{written}\" {} runs backwards", t.place),
                format!("put the smaller value first: \"{fixed}\""),
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use toml::de::DeTable;

    use super::*;

    fn agents(text: &str) -> Result<BTreeMap<String, AgentSpec>, String> {
        let root = DeTable::parse(text).unwrap();
        let mut d = Diag::new(text);
        let t = Table::new(root.get_ref(), 0..0, "at the top level".into());
        let out = read_agents(&mut d, &t, Path::new("/pipes"), &mut Vec::new());
        match d.into_error(Path::new("p.toml")) {
            Some(e) => Err(e.to_string()),
            None => Ok(out
                .into_iter()
                .map(|(k, v)| (k, v.expect("no problems, so every agent is read")))
                .collect()),
        }
    }

    fn command(spec: &AgentSpec) -> &CommandSpec {
        match &spec.kind {
            AgentKind::Command(c) => c,
            _ => panic!("not a command agent"),
        }
    }

    fn sim(spec: &AgentSpec) -> &SimSpec {
        match &spec.kind {
            AgentKind::Sim(s) => s,
            _ => panic!("not a sim agent"),
        }
    }

    #[test]
    fn command_agent_paths_and_defaults() {
        let a = agents(
            "[agents.doc]\nkind = \"command\"\ncommand = [\"agents/doc.py\", \"--x\", \"./y\"]\n[agents.py]\nkind = \"command\"\ncommand = [\"python3\", \"a.py\"]\ncwd = \"work\"\nenv = { K = \"v\" }\nmax_output_bytes = 10\nmodel = \"gpt-4o\"\nmax_parallel = 2\n",
        )
        .unwrap();
        let doc = command(&a["doc"]);
        assert_eq!(doc.program, PathBuf::from("/pipes/agents/doc.py"));
        assert_eq!(doc.args, ["--x", "./y"]);
        assert_eq!(doc.cwd, PathBuf::from("/pipes"));
        assert!(doc.env.is_empty());
        assert_eq!(doc.max_output_bytes, 16 * 1024 * 1024);
        assert_eq!(doc.model, None);
        assert_eq!(a["doc"].max_parallel, None);
        let py = command(&a["py"]);
        assert_eq!(py.program, PathBuf::from("python3"));
        assert_eq!(py.cwd, PathBuf::from("/pipes/work"));
        assert_eq!(py.env["K"], "v");
        assert_eq!(py.max_output_bytes, 10);
        assert_eq!(py.model.as_deref(), Some("gpt-4o"));
        assert_eq!(a["py"].max_parallel, Some(2));
        assert_eq!(a["py"].name, "py");
    }

    #[test]
    fn sim_agent_values_and_defaults() {
        let a = agents(
            "[agents.fast]\nkind = \"sim\"\nlatency = \"50ms..400ms\"\ntokens = \"200..2000\"\nfail_rate = 0.05\nreview_rate = 0.1\nmodel = \"claude-sonnet-4-5\"\nseed = 42\nfields = [\"plan\"]\n[agents.plain]\nkind = \"sim\"\ntokens = 7\n",
        )
        .unwrap();
        let fast = sim(&a["fast"]);
        assert_eq!(fast.latency.lo, Duration::from_millis(50));
        assert_eq!(fast.latency.hi, Duration::from_millis(400));
        assert_eq!(fast.tokens, Range { lo: 200, hi: 2000 });
        assert_eq!(fast.fail_rate, 0.05);
        assert_eq!(fast.review_rate, 0.1);
        assert_eq!(fast.fatal_rate, 0.0);
        assert_eq!(fast.model, "claude-sonnet-4-5");
        assert_eq!(fast.seed, 42);
        assert_eq!(fast.output_fields, ["plan"]);
        let plain = sim(&a["plain"]);
        assert_eq!(plain.latency.hi, Duration::ZERO);
        assert_eq!(plain.tokens, Range { lo: 7, hi: 7 });
        assert_eq!(plain.model, "sim");
        assert_eq!(plain.seed, 0);
        assert!(plain.output_fields.is_empty());
    }

    #[test]
    fn keys_of_the_other_kind_are_named_as_such() {
        let err = agents("[agents.a]\nkind = \"command\"\ncommand = [\"x\"]\nlatency = \"1s\"\n")
            .unwrap_err();
        assert!(
            err.contains("p.toml:4:1: error: unknown key `latency` in agent \"a\"\n  help: `latency` is a key of sim agents; allowed keys here are: kind, command"),
            "{err}"
        );
    }

    #[test]
    fn missing_and_unknown_kind() {
        let err =
            agents("[agents.a]\ncommand = [\"x\"]\n[agents.b]\nkind = \"shell\"\n").unwrap_err();
        assert!(
            err.contains("p.toml:1:1: error: missing key `kind` in agent \"a\""),
            "{err}"
        );
        assert!(
            err.contains("p.toml:4:8: error: unknown kind \"shell\" in agent \"b\""),
            "{err}"
        );
        assert!(err.contains("kind is one of: command, sim, http"), "{err}");
        let err = agents("[agents.a]\nkind = \"shel\"\nbogus = 1\n").unwrap_err();
        assert!(
            err.contains("p.toml:2:8: error: unknown kind \"shel\""),
            "{err}"
        );
        assert!(
            err.ends_with("allowed keys here are: kind, command, cwd, env, max_output_bytes, model, max_parallel, rpm, tpm, route, latency, tokens, fail_rate, fatal_rate, block_rate, review_rate, send_back_rate, seed, fields, provider, base_url, api_key_env, system, prompt, max_tokens, temperature, timeout, output, stream"),
            "{err}"
        );
    }

    #[test]
    fn command_problems() {
        let err = agents(
            "[agents.a]\nkind = \"command\"\ncommand = []\n[agents.b]\nkind = \"command\"\n[agents.c]\nkind = \"command\"\ncommand = [\"\"]\nenv = { A = 1 }\nmax_output_bytes = 0\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:3:11: error: `command` in agent \"a\" is empty",
            "p.toml:4:1: error: missing key `command` in agent \"b\"",
            "p.toml:8:12: error: the program in `command` in agent \"c\" is empty",
            "p.toml:9:13: error: env value of `A` in agent \"c\" must be a string",
            "p.toml:10:20: error: `max_output_bytes` in agent \"c\" must be at least 1",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
    }

    #[test]
    fn sim_problems() {
        let err = agents(
            "[agents.a]\nkind = \"sim\"\nlatency = \"400ms..50ms\"\ntokens = \"x..9\"\nfail_rate = -0.1\nmax_parallel = 0\n[agents.b]\nkind = \"sim\"\nfail_rate = 0.6\nblock_rate = 0.5\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:3:11: error: `latency` range \"400ms..50ms\" in agent \"a\" runs backwards\n  help: put the smaller value first: \"50ms..400ms\"",
            "p.toml:4:10: error: bad `tokens`",
            "p.toml:5:13: error: `fail_rate` in agent \"a\" must be from 0 to 1",
            "p.toml:6:16: error: `max_parallel` in agent \"a\" must be at least 1, not 0",
            "p.toml:7:1: error: the rates in agent \"b\" add up to 1.1, more than 1",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
    }

    fn http(spec: &AgentSpec) -> &crate::spec::model::HttpSpec {
        match &spec.kind {
            AgentKind::Http(h) => h,
            _ => panic!("not an http agent"),
        }
    }

    #[test]
    fn http_agent_values_and_defaults() {
        use crate::spec::model::{OutputFormat, Provider};
        let a = agents(
            "[agents.gpt]\nkind = \"http\"\nprovider = \"openai\"\nmodel = \"gpt-4.1\"\nprompt = \"hi {{input.x}}\"\n[agents.local]\nkind = \"http\"\nprovider = \"openai\"\nmodel = \"llama3\"\nbase_url = \"http://127.0.0.1:11434/v1/\"\nprompt = \"hi\"\noutput = \"json\"\nstream = false\ntemperature = 1\ntimeout = \"5s\"\nmax_tokens = 100\nsystem = \"be brief\"\n[agents.claude]\nkind = \"http\"\nprovider = \"anthropic\"\nmodel = \"claude-haiku-4-5\"\napi_key_env = \"TEAM_KEY\"\nprompt = \"hi\"\n",
        )
        .unwrap();
        let gpt = http(&a["gpt"]);
        assert_eq!(gpt.provider, Provider::OpenAi);
        assert_eq!(gpt.base_url, "https://api.openai.com/v1");
        assert_eq!(gpt.api_key_env.as_deref(), Some("OPENAI_API_KEY"));
        assert_eq!(gpt.output, OutputFormat::Text);
        assert!(gpt.stream);
        assert_eq!(
            (gpt.max_tokens, gpt.temperature, gpt.timeout),
            (None, None, None)
        );
        let local = http(&a["local"]);
        assert_eq!(local.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(
            local.api_key_env, None,
            "no key goes to a server of one's own unless named"
        );
        assert_eq!(local.output, OutputFormat::Json);
        assert!(!local.stream);
        assert_eq!(local.temperature, Some(1.0));
        assert_eq!(local.timeout, Some(Duration::from_secs(5)));
        assert_eq!(local.max_tokens, Some(100));
        assert!(local.system.is_some());
        let claude = http(&a["claude"]);
        assert_eq!(claude.base_url, "https://api.anthropic.com");
        assert_eq!(claude.api_key_env.as_deref(), Some("TEAM_KEY"));
    }

    #[test]
    fn http_problems() {
        let err = agents(
            "[agents.a]\nkind = \"http\"\nmodel = \"\"\nprompt = \"{{inputs.x}}\"\nbase_url = \"ftp://x\"\ntemperature = 3\nlatency = \"1s\"\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:1:1: error: missing key `provider` in agent \"a\"",
            "p.toml:3:9: error: `model` in agent \"a\" is empty",
            "p.toml:4:11: error: unknown place `{{inputs.x}}` in `prompt` in agent \"a\"",
            "p.toml:5:12: error: `base_url` in agent \"a\" must be an http:// or https:// address",
            "p.toml:6:15: error: `temperature` in agent \"a\" must be a number from 0 to 2",
            "p.toml:7:1: error: unknown key `latency` in agent \"a\"\n  help: `latency` is a key of sim agents",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
    }

    #[test]
    fn rate_limits_and_routes() {
        let a = agents(
            "[agents.coder]\nkind = \"sim\"\nrpm = 60\ntpm = 90000\n[[agents.coder.route]]\nwhen = \"input.risk == 'high'\"\nmodel = \"claude-opus-4\"\n[[agents.coder.route]]\nmodel = \"claude-haiku-4-5\"\n",
        )
        .unwrap();
        let c = &a["coder"];
        assert_eq!(c.rpm, Some(60));
        assert_eq!(c.tpm, Some(90_000));
        assert_eq!(c.routes.len(), 2);
        assert_eq!(
            c.routes[0].when_text.as_deref(),
            Some("input.risk == 'high'")
        );
        assert!(
            c.routes[0]
                .when
                .as_ref()
                .unwrap()
                .eval(&serde_json::json!({"risk": "high"}))
        );
        assert!(c.routes[1].when.is_none());
        assert_eq!(c.routes[1].model, "claude-haiku-4-5");
    }

    #[test]
    fn http_agents_take_rate_limits_and_routes_too() {
        let a = agents(
            "[agents.llm]\nkind = \"http\"\nprovider = \"openai\"\nmodel = \"gpt-4o-mini\"\nprompt = \"{{input}}\"\nrpm = 500\ntpm = 200000\n[[agents.llm.route]]\nwhen = \"input.hard\"\nmodel = \"gpt-4.1\"\n",
        )
        .unwrap();
        let c = &a["llm"];
        assert!(matches!(c.kind, AgentKind::Http(_)));
        assert_eq!((c.rpm, c.tpm), (Some(500), Some(200_000)));
        assert_eq!(c.routes.len(), 1);
        assert_eq!(c.routes[0].model, "gpt-4.1");
    }

    #[test]
    fn rate_limit_and_route_problems() {
        let err = agents(
            "[agents.a]\nkind = \"sim\"\nrpm = 0\ntpm = -5\n[[agents.a.route]]\nmodel = \"x\"\n[[agents.a.route]]\nwhen = \"input.risk = 'high'\"\nmodel = \"y\"\n[[agents.a.route]]\nwhen = \"input.a\"\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:3:7: error: `rpm` in agent \"a\" must be at least 1, not 0",
            "p.toml:4:7: error: `tpm` in agent \"a\" must be at least 1, not -5",
            "p.toml:7:1: error: route #2 of agent \"a\" never applies: route #1 has no `when`",
            "p.toml:8:20: error: bad condition in `when` in route #2 of agent \"a\": `=` is not a comparison; write `==`",
            "p.toml:10:1: error: missing key `model` in route #3 of agent \"a\"",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
    }

    #[test]
    fn numbers_past_their_ranges_are_refused_where_written() {
        let err = agents(
            "[agents.a]\nkind = \"sim\"\nlatency = \"0ms..18446744073709551615ms\"\ntokens = \"0..18446744073709551615\"\nmax_parallel = 1_000_000_000_000\nrpm = 4294967296\ntpm = 9223372036854775807\n[agents.b]\nkind = \"sim\"\ntokens = 1_000_000_000_001\nlatency = \"721h\"\n[agents.c]\nkind = \"command\"\ncommand = [\"x\"]\nmax_output_bytes = 1_073_741_825\n",
        )
        .unwrap_err();
        for want in [
            "p.toml:3:11: error: bad `latency` in agent \"a\": \"18446744073709551615ms\" is longer than 720h (30 days)",
            "p.toml:4:10: error: bad `tokens` in agent \"a\": \"18446744073709551615\" is more than 1_000_000_000_000",
            "p.toml:5:16: error: `max_parallel` in agent \"a\" must be at most 100_000, not 1_000_000_000_000",
            "p.toml:6:7: error: `rpm` in agent \"a\" must be at most 1_000_000, not 4294967296",
            "p.toml:7:7: error: `tpm` in agent \"a\" must be at most 1_000_000_000_000, not 9223372036854775807",
            "p.toml:10:10: error: bad `tokens` in agent \"b\": a token count must be at most 1_000_000_000_000",
            "p.toml:11:11: error: bad `latency` in agent \"b\": \"721h\" is longer than 720h (30 days)",
            "p.toml:15:20: error: `max_output_bytes` in agent \"c\" must be at most 1_073_741_824, not 1_073_741_825",
        ] {
            assert!(err.contains(want), "missing {want:?} in\n{err}");
        }
        let a = agents(
            "[agents.a]\nkind = \"sim\"\nlatency = \"0ms..720h\"\ntokens = \"0..1_000_000_000_000\"\nmax_parallel = 100_000\nrpm = 1_000_000\ntpm = 1_000_000_000_000\nseed = 9223372036854775807\n",
        )
        .unwrap();
        assert_eq!(sim(&a["a"]).tokens.hi, 1_000_000_000_000);
    }

    #[test]
    fn rates_that_add_to_exactly_one_are_fine() {
        assert!(
            agents("[agents.a]\nkind = \"sim\"\nfail_rate = 0.1\nfatal_rate = 0.2\nblock_rate = 0.3\nreview_rate = 0.4\n")
                .is_ok()
        );
    }
}
