//! Pipeline files generated whole: every key with values that fit, at and
//! past their ranges, or of the wrong type (`generated`), and files that
//! should load (`well_formed`).

use proptest::prelude::*;

use crate::fuzz_support::{
    condition_text, duration_text, float_text, integer_text, range_text, toml_string,
};

/// A value for `key`: mostly of the right kind, at and past its range;
/// now and then of another kind.
fn value_for(key: &'static str) -> BoxedStrategy<String> {
    let dur = || duration_text().prop_map(|d| toml_string(&d));
    let right: BoxedStrategy<String> = match key {
        "timeout" | "initial_delay" | "max_delay" => dur().boxed(),
        "concurrency" | "max_parallel" | "rpm" | "tpm" | "max_attempts" | "budget_tokens"
        | "tokens" | "max_output_bytes" | "max_tokens" | "seed" => prop_oneof![
            4 => integer_text(),
            1 => range_text().prop_map(|r| toml_string(&r)),
        ]
        .boxed(),
        "budget_usd" | "usd" | "jitter" | "fail_rate" | "fatal_rate" | "block_rate"
        | "review_rate" | "temperature" => prop_oneof![float_text(), integer_text()].boxed(),
        "latency" => range_text().prop_map(|r| toml_string(&r)).boxed(),
        "backoff" => prop::sample::select(vec!["\"exponential\"", "\"fixed\"", "\"linear\""])
            .prop_map(str::to_string)
            .boxed(),
        "on_failure" => {
            prop::sample::select(vec!["\"stop\"", "\"continue\"", "\"review\"", "\"x\""])
                .prop_map(str::to_string)
                .boxed()
        }
        "review" => prop::sample::select(vec!["\"never\"", "\"always\"", "\"maybe\""])
            .prop_map(str::to_string)
            .boxed(),
        "when" => prop_oneof![
            3 => condition_text().prop_map(|c| toml_string(&c)),
            1 => Just("[\"payer\", \"pages\"]".to_string()),
        ]
        .boxed(),
        "provider" => prop::sample::select(vec!["\"openai\"", "\"anthropic\"", "\"bard\""])
            .prop_map(str::to_string)
            .boxed(),
        "prompt" | "system" => prop::sample::select(vec![
            "\"hi {{input.note}}\"",
            "\"{{outputs.one.text}}\"",
            "\"{{outputs.nowhere.x}}\"",
            "\"{{input\"",
            "\"\"",
        ])
        .prop_map(str::to_string)
        .boxed(),
        "command" => prop::sample::select(vec!["[\"cat\"]", "[]", "[\"\"]", "[1]"])
            .prop_map(str::to_string)
            .boxed(),
        "stream" => prop::sample::select(vec!["true", "false", "1"])
            .prop_map(str::to_string)
            .boxed(),
        "base_url" => {
            prop::sample::select(vec!["\"http://127.0.0.1:1/v1\"", "\"ftp://x\"", "\"\""])
                .prop_map(str::to_string)
                .boxed()
        }
        "output" => prop::sample::select(vec!["\"json\"", "\"text\"", "\"xml\""])
            .prop_map(str::to_string)
            .boxed(),
        "required_output" | "fields" | "after" => prop::collection::vec("[a-z]{1,5}", 0..4)
            .prop_map(|v| {
                format!(
                    "[{}]",
                    v.iter()
                        .map(|s| toml_string(s))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            })
            .boxed(),
        _ => "[a-z]{0,8}".prop_map(|s| toml_string(&s)).boxed(),
    };
    let wrong = prop_oneof![
        integer_text(),
        float_text(),
        Just("true".to_string()),
        Just("[1, \"a\"]".to_string()),
        Just("{ a = 1 }".to_string()),
        Just("1979-05-27T07:32:00Z".to_string()),
    ];
    prop_oneof![8 => right, 1 => wrong].boxed()
}

/// `key = value` lines for a subset of `keys`.
fn table_body(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::sample::subsequence(keys, 0..=keys.len()).prop_flat_map(|chosen| {
        chosen
            .into_iter()
            .map(|k| value_for(k).prop_map(move |v| format!("{k} = {v}\n")))
            .collect::<Vec<_>>()
            .prop_map(|lines| lines.concat())
    })
}

const DEFAULTS: &[&str] = &[
    "timeout",
    "concurrency",
    "budget_usd",
    "budget_tokens",
    "extra",
];
const RETRY: &[&str] = &[
    "max_attempts",
    "backoff",
    "initial_delay",
    "max_delay",
    "jitter",
];
const AGENT: &[&str] = &[
    "latency",
    "tokens",
    "fail_rate",
    "fatal_rate",
    "block_rate",
    "review_rate",
    "seed",
    "fields",
    "max_parallel",
    "rpm",
    "tpm",
    "command",
    "max_output_bytes",
    "provider",
    "prompt",
    "system",
    "max_tokens",
    "temperature",
    "timeout",
    "output",
    "stream",
    "base_url",
    "model",
];
const PHASE: &[&str] = &[
    "when",
    "on_failure",
    "review",
    "required_output",
    "timeout",
    "after",
];

fn retry_table() -> impl Strategy<Value = String> {
    table_body(RETRY)
        .prop_map(|body| format!("retry = {{ {} }}\n", body.trim_end().replace('\n', ", ")))
}

fn agent(name: &'static str) -> impl Strategy<Value = String> {
    let kind = prop::sample::select(vec![
        "\"sim\"",
        "\"sim\"",
        "\"command\"",
        "\"http\"",
        "\"bash\"",
    ]);
    let route = (prop::option::of(condition_text()), "[a-z-]{0,8}").prop_map(|(when, model)| {
        let when = when
            .map(|w| format!("when = {}\n", toml_string(&w)))
            .unwrap_or_default();
        format!("{when}model = {}\n", toml_string(&model))
    });
    (kind, table_body(AGENT), prop::collection::vec(route, 0..3)).prop_map(
        move |(kind, body, routes)| {
            let mut out = format!("[agents.{name}]\nkind = {kind}\n{body}");
            for r in routes {
                out.push_str(&format!("[[agents.{name}.route]]\n{r}"));
            }
            out
        },
    )
}

fn phase(i: usize) -> impl Strategy<Value = String> {
    let agent = prop::sample::select(vec!["a", "b", "c", "nobody"]);
    (agent, table_body(PHASE), prop::option::of(retry_table())).prop_map(
        move |(agent, body, retry)| {
            let retry = retry.unwrap_or_default();
            format!("[[phases]]\nid = \"p{i}\"\nagent = \"{agent}\"\n{body}{retry}")
        },
    )
}

/// A whole pipeline file, well formed TOML with values of every sort.
pub fn generated() -> impl Strategy<Value = String> {
    let defaults = (table_body(DEFAULTS), prop::option::of(retry_table()))
        .prop_map(|(b, r)| format!("[defaults]\n{b}{}", r.unwrap_or_default()));
    let run_budget = (value_for("usd"), value_for("tokens"))
        .prop_map(|(u, t)| format!("[run_budget]\nusd = {u}\ntokens = {t}\n"));
    let agents = (
        agent("a"),
        prop::option::of(agent("b")),
        prop::option::of(agent("c")),
    );
    let phases = (1usize..5).prop_flat_map(|n| (0..n).map(phase).collect::<Vec<_>>());
    (
        prop::option::of(defaults),
        prop::option::of(run_budget),
        agents,
        phases,
    )
        .prop_map(|(defaults, run_budget, (a, b, c), phases)| {
            let mut out = String::from("name = \"fuzz\"\n");
            for part in [defaults, run_budget, Some(a), b, c].into_iter().flatten() {
                out.push_str(&part);
            }
            out.push_str(&phases.concat());
            out
        })
}

/// A pipeline that should load: every value within its range (often at
/// an end of it), names that resolve, delays in order, rates that add up
/// to at most 1. Mutated, it gives files that are wrong in one place.
pub fn well_formed() -> impl Strategy<Value = String> {
    fn pick(v: &'static [&'static str]) -> prop::sample::Select<&'static str> {
        prop::sample::select(v.to_vec())
    }
    let durations: &'static [&'static str] = &["0ms", "1ms", "250ms", "2s", "5m", "1h", "720h"];
    let delays = (pick(durations), pick(durations)).prop_map(|(a, b)| {
        let ms = |d: &str| baton::spec::parse_duration(d).unwrap();
        if ms(a) <= ms(b) { (a, b) } else { (b, a) }
    });
    let retry = (pick(&["1", "3", "10_000"]), pick(&["\"fixed\"", "\"exponential\""]), delays.clone(), pick(&["0", "0.2", "1"]))
        .prop_map(|(n, b, (i, m), j)| {
            format!("retry = {{ max_attempts = {n}, backoff = {b}, initial_delay = \"{i}\", max_delay = \"{m}\", jitter = {j} }}\n")
        });
    let defaults = (
        pick(&["\"1ms\"", "\"30s\"", "\"720h\""]),
        pick(&["1", "8", "100_000"]),
        prop::option::of(pick(&["0.5", "1_000_000_000"])),
        prop::option::of(pick(&["1", "1_000_000_000_000_000"])),
        retry.clone(),
    )
        .prop_map(|(t, c, usd, tok, r)| {
            let usd = usd
                .map(|u| format!("budget_usd = {u}\n"))
                .unwrap_or_default();
            let tok = tok
                .map(|t| format!("budget_tokens = {t}\n"))
                .unwrap_or_default();
            format!("[defaults]\ntimeout = {t}\nconcurrency = {c}\n{usd}{tok}{r}")
        });
    let condition = pick(&[
        "input.risk == 'high'",
        "input.pages > 20 and not input.draft",
        "(input.payer == \"Aetna\" or input.payer == \"Cigna\") and input.urgent",
        "input.a.b != null",
        "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((input.x))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))",
    ]);
    let agent = |name: &'static str| {
        (
            delays.clone(),
            pick(&["0", "7", "1_000_000_000_000"]),
            pick(&["0", "0.1", "0.25"]),
            pick(&["1", "64", "100_000"]),
            pick(&["1", "60", "1_000_000"]),
            pick(&["1", "90_000", "1_000_000_000_000"]),
            prop::option::of(condition.clone()),
        )
            .prop_map(move |((lo, hi), tokens, rate, par, rpm, tpm, when)| {
                let route = when
                    .map(|w| format!("[[agents.{name}.route]]\nwhen = {}\nmodel = \"m\"\n", toml_string(w)))
                    .unwrap_or_default();
                format!(
                    "[agents.{name}]\nkind = \"sim\"\nlatency = \"{lo}..{hi}\"\ntokens = \"0..{tokens}\"\nfail_rate = {rate}\nreview_rate = {rate}\nblock_rate = {rate}\nfatal_rate = {rate}\nmax_parallel = {par}\nrpm = {rpm}\ntpm = {tpm}\nseed = 9223372036854775807\n{route}"
                )
            })
    };
    let (phase_condition, phase_retry) = (condition.clone(), retry.clone());
    let phase = move |i: usize| {
        (
            pick(&["a", "b"]),
            prop::option::of(phase_condition.clone()),
            prop::option::of(pick(&["\"1ms\"", "\"720h\""])),
            prop::option::of(phase_retry.clone()),
        )
            .prop_map(move |(agent, when, timeout, retry)| {
                let when = when
                    .map(|w| format!("when = {}\n", toml_string(w)))
                    .unwrap_or_default();
                let timeout = timeout
                    .map(|t| format!("timeout = {t}\n"))
                    .unwrap_or_default();
                format!(
                    "[[phases]]\nid = \"p{i}\"\nagent = \"{agent}\"\n{when}{timeout}{}",
                    retry.unwrap_or_default()
                )
            })
    };
    let phases = (1usize..5).prop_flat_map(move |n| (0..n).map(&phase).collect::<Vec<_>>());
    (prop::option::of(defaults), agent("a"), agent("b"), phases).prop_map(|(d, a, b, phases)| {
        format!(
            "name = \"fuzz\"\n{}{a}{b}{}",
            d.unwrap_or_default(),
            phases.concat()
        )
    })
}
