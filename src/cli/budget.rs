//! Budgets from the command line: `--budget SCOPE.UNIT=VALUE` on `run` and
//! `demo` to set limits for this run, and `baton budget [TASK]` to raise a
//! budget: handed to the engine running on the state folder, or applied to
//! the folder when none does (see `source`), with the same output.

use baton::engine::{Actor, Command};
use baton::spec::Pipeline;
use baton::spec::model::BudgetLimits;

use super::StateDir;
use super::source::{self, NotApplied};

const FORM: &str = "write SCOPE.UNIT=VALUE, where SCOPE is task or run and UNIT is usd or tokens, e.g. task.usd=0.50 or run.tokens=2000000";

/// One `--budget` setting.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSetting {
    pub run: bool,
    pub limits: BudgetLimits,
}

/// Parses `task.usd=0.50`, `run.tokens=200000` and the like.
pub fn parse_setting(s: &str) -> Result<BudgetSetting, String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("no `=` in \"{s}\": {FORM}"))?;
    let (scope, unit) = key
        .trim()
        .split_once('.')
        .ok_or_else(|| format!("\"{key}\" names no scope: {FORM}"))?;
    let run = match scope {
        "task" => false,
        "run" => true,
        other => return Err(format!("unknown scope \"{other}\": {FORM}")),
    };
    let value = value.trim();
    let limits = match unit {
        "usd" => BudgetLimits {
            usd: Some(parse_usd(value)?),
            tokens: None,
        },
        "tokens" => BudgetLimits {
            usd: None,
            tokens: Some(parse_tokens(value)?),
        },
        other => return Err(format!("unknown unit \"{other}\": {FORM}")),
    };
    Ok(BudgetSetting { run, limits })
}

/// Dollars above zero; a leading `$` is allowed.
pub fn parse_usd(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim_start_matches('$')
        .replace('_', "")
        .parse()
        .map_err(|_| format!("\"{s}\" is not an amount of dollars: write e.g. 0.50"))?;
    if !n.is_finite() || n <= 0.0 {
        return Err(format!(
            "\"{s}\" is not a budget: give dollars above 0, e.g. 0.50"
        ));
    }
    Ok(n)
}

/// A whole number of tokens above zero; `_` separators are allowed.
pub fn parse_tokens(s: &str) -> Result<u64, String> {
    match s.replace('_', "").parse::<u64>() {
        Ok(0) => Err("0 tokens is not a budget: give 1 or more".to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!(
            "\"{s}\" is not a whole number of tokens: write e.g. 200000"
        )),
    }
}

impl BudgetSetting {
    /// The setting as `--budget` takes it (one per unit), to hand on to
    /// another process.
    pub fn to_args(self) -> Vec<String> {
        let scope = if self.run { "run" } else { "task" };
        let usd = self.limits.usd.map(|usd| format!("{scope}.usd={usd}"));
        let tokens = self
            .limits
            .tokens
            .map(|tokens| format!("{scope}.tokens={tokens}"));
        usd.into_iter().chain(tokens).collect()
    }
}

/// Lays the settings over the pipeline's limits, later ones winning.
pub fn apply(pipeline: &mut Pipeline, settings: &[BudgetSetting]) {
    for s in settings {
        let limits = if s.run {
            &mut pipeline.run_budget
        } else {
            &mut pipeline.defaults.task_budget
        };
        *limits = limits.overridden_by(s.limits);
    }
}

#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("limit").required(true).multiple(true).args(["usd", "tokens"])))]
pub struct BudgetArgs {
    /// The task whose budget to raise; the run's when absent.
    task: Option<String>,
    /// The new dollar limit.
    #[arg(long, value_parser = parse_usd, value_name = "DOLLARS")]
    usd: Option<f64>,
    /// The new token limit.
    #[arg(long, value_parser = parse_tokens, value_name = "N")]
    tokens: Option<u64>,
    /// Print the outcome as one JSON object: task, usd, tokens, recorded,
    /// refusal.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StateDir,
}

/// `baton budget [TASK] --usd X --tokens N`.
pub async fn raise(a: BudgetArgs) -> i32 {
    super::fail::json_errors(a.json);
    let whose = match &a.task {
        Some(t) => format!("task {t}"),
        None => "the run".to_string(),
    };
    let command = Command::RaiseBudget {
        task: a.task.clone(),
        usd: a.usd,
        tokens: a.tokens,
        by: Actor::current(),
    };
    let log_as = match &a.task {
        Some(t) => format!("baton budget {t}"),
        None => "baton budget".to_string(),
    };
    let result = source::apply(&a.dir.state_dir, command, &log_as).await;
    if a.json {
        let (recorded, refusal) = match &result {
            Ok(_) => (true, None),
            Err(NotApplied::Refused(why)) => (false, Some(why.as_str())),
            Err(NotApplied::Failed(e)) => return super::fail::error(e),
        };
        super::out::line(serde_json::json!({
            "task": a.task,
            "usd": a.usd,
            "tokens": a.tokens,
            "recorded": recorded,
            "refusal": refusal,
        }));
    }
    match result {
        Err(NotApplied::Failed(e)) => super::fail::error(&e),
        Ok(applied) => {
            let mut parts = Vec::new();
            if let Some(u) = a.usd {
                parts.push(format!("${u:.4}"));
            }
            if let Some(t) = a.tokens {
                parts.push(format!("{t} tokens"));
            }
            let approve = match &a.task {
                Some(t) => format!("`baton approve {t}`"),
                None => "`baton approve TASK`".to_string(),
            };
            if !a.json {
                println!(
                    "budget of {whose} raised to {}; a task held for its budget goes on once approved ({approve})",
                    parts.join(" and ")
                );
            }
            source::say_who_carries_on(&applied, &a.dir.state_dir);
            0
        }
        Err(NotApplied::Refused(refusal)) => {
            eprintln!("refused: {refusal}");
            1
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_parse_and_say_what_is_wrong() {
        assert_eq!(
            parse_setting("task.usd=0.50").unwrap(),
            BudgetSetting {
                run: false,
                limits: BudgetLimits {
                    usd: Some(0.5),
                    tokens: None
                }
            }
        );
        let run = parse_setting("run.tokens=2_000_000").unwrap();
        assert!(run.run);
        assert_eq!(run.limits.tokens, Some(2_000_000));
        assert!(parse_setting("run.usd=$20").unwrap().run);
        for (bad, says) in [
            ("task.usd", "no `=`"),
            ("usd=5", "names no scope"),
            ("job.usd=5", "unknown scope \"job\""),
            ("task.eur=5", "unknown unit \"eur\""),
            ("task.usd=cheap", "not an amount of dollars"),
            ("task.usd=0", "not a budget"),
            ("run.tokens=1.5", "not a whole number of tokens"),
            ("run.tokens=0", "0 tokens is not a budget"),
        ] {
            let err = parse_setting(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_setting_is_handed_on_as_it_reads() {
        for arg in [
            "task.usd=0.5",
            "run.usd=20",
            "task.tokens=5000",
            "run.tokens=2000000",
        ] {
            assert_eq!(parse_setting(arg).unwrap().to_args(), [arg]);
        }
        assert_eq!(
            parse_setting(&parse_setting("task.usd=$0.125").unwrap().to_args()[0]).unwrap(),
            parse_setting("task.usd=0.125").unwrap()
        );
    }
}
