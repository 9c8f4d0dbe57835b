//! Operator decisions from the command line, applied to a state folder that
//! no engine holds, through the same engine code a running one uses.

use baton::engine::{Action, Actor, Command, Engine, EngineOptions, Refusal};

use super::{StateDir, state_meta};

#[derive(clap::Args)]
pub struct ApproveArgs {
    task: String,
    /// Why, for the record.
    #[arg(long)]
    note: Option<String>,
    /// The held phase to approve, when several are held.
    #[arg(long)]
    phase: Option<String>,
    #[command(flatten)]
    dir: StateDir,
}

#[derive(clap::Args)]
pub struct RejectArgs {
    task: String,
    /// Why, for the record.
    #[arg(long, alias = "note")]
    reason: Option<String>,
    /// Send the phase back with this feedback instead of failing the task.
    #[arg(long)]
    feedback: Option<String>,
    #[arg(long)]
    phase: Option<String>,
    #[command(flatten)]
    dir: StateDir,
}

#[derive(clap::Args)]
#[group(id = "how", required = true, multiple = false)]
pub struct ResolveArgs {
    task: String,
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
    dir: StateDir,
}

#[derive(clap::Args)]
pub struct RetryArgs {
    task: String,
    /// The phase to run again (default: the one waiting to retry, else the first failed one).
    #[arg(long)]
    phase: Option<String>,
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    dir: StateDir,
}

#[derive(clap::Args)]
pub struct CancelArgs {
    task: String,
    #[arg(long)]
    note: Option<String>,
    #[command(flatten)]
    dir: StateDir,
}

pub async fn approve(a: ApproveArgs) -> i32 {
    act(&a.dir, a.task, Action::Approve, a.phase, a.note).await
}

pub async fn reject(a: RejectArgs) -> i32 {
    let action = match a.feedback {
        Some(feedback) => Action::SendBack { feedback },
        None => Action::Reject,
    };
    act(&a.dir, a.task, action, a.phase, a.reason).await
}

pub async fn resolve(a: ResolveArgs) -> i32 {
    let action = if a.retry {
        Action::ResolveRetry
    } else if a.skip {
        Action::ResolveSkip
    } else {
        Action::ResolveFail
    };
    act(&a.dir, a.task, action, a.phase, a.note).await
}

pub async fn retry(a: RetryArgs) -> i32 {
    act(&a.dir, a.task, Action::Retry, a.phase, a.note).await
}

pub async fn cancel(a: CancelArgs) -> i32 {
    act(&a.dir, a.task, Action::Cancel, None, a.note).await
}

async fn act(
    dir: &StateDir,
    task: String,
    action: Action,
    phase: Option<String>,
    note: Option<String>,
) -> i32 {
    let name = action.name();
    let command = Command::Act {
        task: task.clone(),
        action,
        phase,
        note,
        by: Actor::current(),
    };
    match offline(dir, command).await {
        Err(code) => code,
        Ok(Ok(())) => {
            println!(
                "{name}: recorded for task {task}; `baton run` on this state folder carries on from here"
            );
            0
        }
        Ok(Err(refusal)) => {
            eprintln!("refused: {refusal}");
            1
        }
    }
}

/// Applies a command to a state folder that no engine holds, through an
/// engine that starts nothing: the engine's answer, or the exit status
/// when the folder could not be used (the reason said).
pub async fn offline(dir: &StateDir, command: Command) -> Result<Result<(), Refusal>, i32> {
    let state_dir = &dir.state_dir;
    let pipeline = match state_meta::load(state_dir) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(2);
        }
    };
    let opts = EngineOptions {
        dispatch: false,
        exit_when_idle: false,
        ..EngineOptions::default()
    };
    let engine = match Engine::open(pipeline, state_dir, opts) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(2);
        }
    };
    for w in engine.warnings() {
        eprintln!("warning: {w}");
    }
    let handle = engine.handle();
    let join = tokio::spawn(engine.run());
    let result = handle.send(command).await;
    let _ = handle.send(Command::Shutdown).await;
    match join.await {
        Ok(Ok(_)) => Ok(result),
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            Err(2)
        }
        Err(e) => {
            eprintln!("error: {e}");
            Err(2)
        }
    }
}
