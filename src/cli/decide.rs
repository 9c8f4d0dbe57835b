//! Operator decisions from the command line: handed to the engine that runs
//! on the state folder, or, when none does, applied to the folder through the
//! same engine code (see `source`). The output is the same either way.

use baton::engine::{Action, Actor, Command};

use super::StateDir;
use super::source::{self, NotApplied};

/// Options every decision takes.
#[derive(clap::Args)]
pub struct Output {
    /// Print the outcome as one JSON object: task, action, recorded, refusal.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: StateDir,
}

#[derive(clap::Args)]
pub struct ApproveArgs {
    /// The task; or every task `--where` keeps.
    #[arg(required_unless_present = "filter")]
    task: Option<String>,
    /// Act on every task this filter keeps (see `baton help filter` in the
    /// README: `phase:qa state:awaiting_review`, `cost>0.1`, `/regex/`…),
    /// printing each decided.
    #[arg(long = "where", value_name = "FILTER", conflicts_with = "task")]
    filter: Option<String>,
    /// Why, for the record.
    #[arg(long)]
    note: Option<String>,
    /// The held phase to approve, when several are held.
    #[arg(long)]
    phase: Option<String>,
    #[command(flatten)]
    out: Output,
}

#[derive(clap::Args)]
pub struct RejectArgs {
    /// The task; or every task `--where` keeps.
    #[arg(required_unless_present = "filter")]
    task: Option<String>,
    /// Act on every task this filter keeps (see `baton help filter` in the
    /// README: `phase:qa state:awaiting_review`, `cost>0.1`, `/regex/`…),
    /// printing each decided.
    #[arg(long = "where", value_name = "FILTER", conflicts_with = "task")]
    filter: Option<String>,
    /// Why, for the record.
    #[arg(long, alias = "note")]
    reason: Option<String>,
    /// Send the phase back with this feedback instead of failing the task.
    #[arg(long)]
    feedback: Option<String>,
    #[arg(long)]
    phase: Option<String>,
    #[command(flatten)]
    out: Output,
}

#[derive(clap::Args)]
#[group(id = "how", required = true, multiple = false)]
pub struct ResolveArgs {
    /// The task; or every task `--where` keeps.
    #[arg(required_unless_present = "filter")]
    task: Option<String>,
    /// Act on every task this filter keeps (see `baton help filter` in the
    /// README: `phase:qa state:awaiting_review`, `cost>0.1`, `/regex/`…),
    /// printing each decided.
    #[arg(long = "where", value_name = "FILTER", conflicts_with = "task")]
    filter: Option<String>,
    /// Run the blocked phase again.
    #[arg(long, group = "how")]
    retry: bool,
    /// Skip the blocked phase and go on.
    #[arg(long, group = "how")]
    skip: bool,
    /// Fail the task.
    #[arg(long, group = "how")]
    fail: bool,
    #[arg(long)]
    note: Option<String>,
    #[arg(long)]
    phase: Option<String>,
    #[command(flatten)]
    out: Output,
}

#[derive(clap::Args)]
pub struct RetryArgs {
    /// The task; or every task `--where` keeps.
    #[arg(required_unless_present = "filter")]
    task: Option<String>,
    /// Act on every task this filter keeps (see `baton help filter` in the
    /// README: `phase:qa state:awaiting_review`, `cost>0.1`, `/regex/`…),
    /// printing each decided.
    #[arg(long = "where", value_name = "FILTER", conflicts_with = "task")]
    filter: Option<String>,
    /// The phase to run again (default: the one waiting to retry, else the first failed one).
    #[arg(long)]
    phase: Option<String>,
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    out: Output,
}

#[derive(clap::Args)]
pub struct CancelArgs {
    /// The task; or every task `--where` keeps.
    #[arg(required_unless_present = "filter")]
    task: Option<String>,
    /// Act on every task this filter keeps (see `baton help filter` in the
    /// README: `phase:qa state:awaiting_review`, `cost>0.1`, `/regex/`…),
    /// printing each decided.
    #[arg(long = "where", value_name = "FILTER", conflicts_with = "task")]
    filter: Option<String>,
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    out: Output,
}

pub async fn approve(a: ApproveArgs) -> i32 {
    act_on(&a.out, a.task, a.filter, Action::Approve, a.phase, a.note).await
}

pub async fn reject(a: RejectArgs) -> i32 {
    let action = match a.feedback {
        Some(feedback) => Action::SendBack { feedback },
        None => Action::Reject,
    };
    act_on(&a.out, a.task, a.filter, action, a.phase, a.reason).await
}

pub async fn resolve(a: ResolveArgs) -> i32 {
    let action = if a.retry {
        Action::ResolveRetry
    } else if a.skip {
        Action::ResolveSkip
    } else {
        Action::ResolveFail
    };
    act_on(&a.out, a.task, a.filter, action, a.phase, a.note).await
}

pub async fn retry(a: RetryArgs) -> i32 {
    act_on(&a.out, a.task, a.filter, Action::Retry, a.phase, a.note).await
}

pub async fn cancel(a: CancelArgs) -> i32 {
    act_on(&a.out, a.task, a.filter, Action::Cancel, None, a.note).await
}

/// One task, or every task a filter keeps, one after another.
async fn act_on(
    out: &Output,
    task: Option<String>,
    filter: Option<String>,
    action: Action,
    phase: Option<String>,
    note: Option<String>,
) -> i32 {
    let Some(text) = filter else {
        return act(out, task.unwrap_or_default(), action, phase, note).await;
    };
    let filter = match baton::filter::Filter::parse(&text) {
        Ok(f) => f,
        Err(e) => {
            eprintln!(
                "error: --where {text:?}: {e}\n  {text}\n  {}^",
                " ".repeat(e.at)
            );
            return 2;
        }
    };
    let reader = match source::reader(&out.dir.state_dir) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let query = baton::store::ListQuery {
        filter: Some(filter),
        ..Default::default()
    };
    let rows = match reader.list(&query).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if rows.is_empty() {
        eprintln!("no task matches --where {text:?}");
        return 1;
    }
    let (mut recorded, mut refused) = (0, 0);
    for row in rows {
        match act(out, row.id, action.clone(), phase.clone(), note.clone()).await {
            0 => recorded += 1,
            1 => refused += 1,
            code => return code,
        }
    }
    eprintln!(
        "{}: {recorded} recorded, {refused} refused (--where {text:?})",
        action.name()
    );
    if refused > 0 { 1 } else { 0 }
}

async fn act(
    out: &Output,
    task: String,
    action: Action,
    phase: Option<String>,
    note: Option<String>,
) -> i32 {
    super::fail::json_errors(out.json);
    let name = action.name();
    let log_as = format!("baton {} {task}", verb(&action));
    let command = Command::Act {
        task: task.clone(),
        action,
        phase,
        note,
        by: Actor::current(),
    };
    let result = source::apply(&out.dir.state_dir, command, &log_as).await;
    let (recorded, refusal) = match &result {
        Ok(_) => (true, None),
        Err(NotApplied::Refused(why)) => (false, Some(why.as_str())),
        Err(NotApplied::Failed(e)) => return super::fail::error(e),
    };
    if out.json {
        let value = serde_json::json!({
            "task": task,
            "action": name,
            "recorded": recorded,
            "refusal": refusal,
        });
        super::out::line(value);
    }
    match result {
        Ok(applied) => {
            if !out.json {
                super::out::line(format!("{name}: recorded for task {task}"));
            }
            source::say_who_carries_on(&applied, &out.dir.state_dir);
            0
        }
        Err(_) => {
            eprintln!("refused: {}", refusal.unwrap_or_default());
            1
        }
    }
}

/// The command that records `action`, as the run log names it.
fn verb(action: &Action) -> &'static str {
    match action {
        Action::Approve => "approve",
        Action::Reject | Action::SendBack { .. } => "reject",
        Action::ResolveRetry | Action::ResolveSkip | Action::ResolveFail => "resolve",
        Action::Retry => "retry",
        Action::Cancel => "cancel",
    }
}
