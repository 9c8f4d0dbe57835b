//! `baton demo`: the bundled demo pipeline on simulated agents, in a fresh
//! state folder, with nothing to configure.

use std::path::PathBuf;

use baton::spec::{self, input::InputTask};
use serde_json::Value;

const PIPELINE: &str = include_str!("../../pipelines/demo.toml");
const TICKETS: &str = include_str!("../../examples/demo/tickets.jsonl");

#[derive(clap::Args)]
pub struct DemoArgs {
    /// How many tasks to run.
    #[arg(long, default_value_t = 24)]
    tasks: usize,
    /// Print progress lines instead of opening the dashboard.
    #[arg(long)]
    headless: bool,
    /// Run the engine inside the dashboard's process instead of in one of
    /// its own: no detaching (`d` says so), quitting stops the run; the
    /// control socket is served all the same.
    #[arg(long, conflicts_with = "headless")]
    in_process: bool,
    /// Where to keep the demo's files and state (default: a new folder under the system temp dir).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// A budget for the demo: task.usd=0.50, task.tokens=N, run.usd=20 or run.tokens=N (repeatable).
    #[arg(long = "budget", value_name = "SCOPE.UNIT=VALUE", value_parser = super::budget::parse_setting)]
    budgets: Vec<super::budget::BudgetSetting>,
    #[command(flatten)]
    switches: super::run::Switches,
    #[command(flatten)]
    view: super::run::ViewArgs,
}

impl DemoArgs {
    /// Whether this demo opens the dashboard (else it runs headless).
    pub fn draws_a_dashboard(&self) -> bool {
        !self.headless && std::io::IsTerminal::is_terminal(&std::io::stdout())
    }
}

/// The demo's tasks: the bundled tickets, repeated with new ids when more are asked for.
pub fn demo_tasks(count: usize) -> Vec<InputTask> {
    let tickets: Vec<Value> = TICKETS
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    (0..count)
        .map(|i| {
            let mut t = tickets[i % tickets.len()].clone();
            let round = i / tickets.len();
            let base = t["id"].as_str().unwrap_or("DEV").to_string();
            let id = if round == 0 {
                base
            } else {
                format!("{base}-{round}")
            };
            t["id"] = Value::String(id.clone());
            InputTask {
                id: Some(id),
                input: t,
                origin: format!("demo ticket {}", i + 1),
            }
        })
        .collect()
}

/// How long a demo's engine waits, with no dashboard attached and nothing
/// left to run, before it ends: ten minutes, or `BATON_DEMO_LINGER` seconds.
fn linger_secs() -> u64 {
    std::env::var("BATON_DEMO_LINGER")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600)
}

pub async fn run(args: DemoArgs) -> i32 {
    let mode = super::run::Mode::choose(args.headless, &args.view);
    super::run::init_logging_for(&mode);
    let temporary = args.dir.is_none();
    let dir = args.dir.unwrap_or_else(|| {
        let stamp = jiff::Timestamp::now().as_second();
        std::env::temp_dir().join(format!("baton-demo-{stamp}-{}", std::process::id()))
    });
    let pipeline_file = dir.join("demo.toml");
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|_| std::fs::write(&pipeline_file, PIPELINE))
    {
        eprintln!("error: cannot prepare the demo in {}: {e}", dir.display());
        return 2;
    }
    let mut pipeline = match spec::load(&pipeline_file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return 2;
        }
    };
    super::budget::apply(&mut pipeline, &args.budgets);
    if let Err(e) = pipeline.switch_off(&args.switches.disable, &args.switches.only) {
        eprintln!("{e}");
        return 2;
    }
    let state_dir = dir.join("state");
    eprintln!("demo files and state in {}", dir.display());
    let look_around = || {
        eprintln!(
            "look around: baton list {0}   baton show TASK {0}   baton summary {0}",
            super::place::flags(&state_dir)
        )
    };
    let opts = match mode {
        super::run::Mode::Headless => {
            let code = super::run::run_headless(
                Some(&pipeline_file),
                pipeline,
                &args.switches,
                demo_tasks(args.tasks),
                &state_dir,
                false,
                None,
            )
            .await;
            look_around();
            return code;
        }
        super::run::Mode::Dashboard(opts) => opts,
    };
    if args.in_process || super::in_process::by_default() {
        let plan = super::in_process::InProcess {
            pipeline_file: Some(&pipeline_file),
            pipeline,
            switches: &args.switches,
            inputs: demo_tasks(args.tasks),
            state_dir: &state_dir,
        };
        let code = super::in_process::run(plan, opts).await;
        if temporary {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => eprintln!(
                    "removed the demo folder {} (`baton demo --dir DIR` keeps the state and its run log)",
                    dir.display()
                ),
                Err(e) => eprintln!(
                    "warning: cannot remove the demo folder {}: {e}",
                    dir.display()
                ),
            }
        } else {
            look_around();
        }
        return code;
    }
    // The engine runs in its own process (see `background`): it reads the
    // tickets from a file like any run.
    let tickets = dir.join("tickets.jsonl");
    let lines: String = demo_tasks(args.tasks)
        .iter()
        .map(|t| format!("{}\n", t.input))
        .collect();
    if let Err(e) = std::fs::write(&tickets, lines) {
        eprintln!("error: cannot write {}: {e}", tickets.display());
        return 2;
    }
    let plan = super::background::Plan {
        pipeline_file: Some(&pipeline_file),
        input: Some(&tickets),
        state_dir: &state_dir,
        budgets: &args.budgets,
        switches: &args.switches,
        // Nobody watching and nothing to run (a closed terminal, say): the
        // demo ends after a while, and a temporary folder goes with it.
        linger: Some((linger_secs(), temporary.then_some(dir.as_path()))),
    };
    let ended = super::background::run(plan, opts).await;
    match ended {
        super::background::Ended::Stopped(_) if temporary => match std::fs::remove_dir_all(&dir) {
            Ok(()) => eprintln!(
                "removed the demo folder {} (`baton demo --dir DIR` keeps the state and its run log)",
                dir.display()
            ),
            Err(e) => eprintln!(
                "warning: cannot remove the demo folder {}: {e}",
                dir.display()
            ),
        },
        super::background::Ended::Detached => {
            eprintln!(
                "the demo's files stay in {} while it runs; with no dashboard attached and nothing left to run it ends after {} s{}",
                dir.display(),
                linger_secs(),
                if temporary { " and removes them" } else { "" }
            );
        }
        _ => look_around(),
    }
    ended.code()
}
