//! `baton fleet`: the engines serving a run kept in PostgreSQL — where each
//! runs, what it holds, when it was last heard from.

use baton::store::Place;
use baton::store::postgres::PgReader;
use baton::store::postgres::fleet::EngineInfo;

pub async fn run(all: bool, json: bool) -> i32 {
    let Place::Postgres(target) = super::place::get() else {
        eprintln!(
            "error: this run is kept in its state folder, which one engine serves at a time; `baton fleet` lists the engines of a run kept in PostgreSQL\n  help: pass --store postgres://… (or set BATON_STORE)"
        );
        return 2;
    };
    let target = (**target).clone();
    let opened = tokio::task::spawn_blocking(move || PgReader::open(&target)).await;
    let reader = match opened {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let engines = match reader.engines(all).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&engines).unwrap_or_default()
        );
    } else {
        print!("{}", table(&engines, all));
    }
    0
}

/// What an engine is doing now, in a word.
fn status(e: &EngineInfo) -> &'static str {
    if e.stopped_at.is_some() {
        "stopped"
    } else if e.live {
        "live"
    } else {
        "lost"
    }
}

fn table(engines: &[EngineInfo], all: bool) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    if engines.is_empty() {
        out.push_str(if all {
            "no engine has served this run\n"
        } else {
            "no engine serves this run now (`baton fleet --all` lists those that did)\n"
        });
        return out;
    }
    let host_w = engines
        .iter()
        .map(|e| e.host.len())
        .max()
        .unwrap_or(4)
        .max(4);
    let _ = writeln!(
        out,
        "{:<7} {:<8} {:<host_w$} {:>8} {:>6} {:>8}  {:<20} HEARD",
        "ENGINE", "STATUS", "HOST", "PID", "TASKS", "RUNNING", "STARTED"
    );
    for e in engines {
        let heard = if e.stopped_at.is_some() {
            format!("stopped {}", e.stopped_at.as_deref().unwrap_or(""))
        } else {
            format!("{:.1}s ago", e.heartbeat_age_secs.max(0.0))
        };
        let _ = writeln!(
            out,
            "{:<7} {:<8} {:<host_w$} {:>8} {:>6} {:>8}  {:<20} {heard}",
            e.id,
            status(e),
            e.host,
            e.pid,
            e.tasks_held,
            e.tasks_running,
            e.started_at
        );
    }
    let live = engines.iter().filter(|e| status(e) == "live").count();
    let lost = engines.iter().filter(|e| status(e) == "lost").count();
    let _ = write!(out, "{live} live");
    if lost > 0 {
        let _ = write!(
            out,
            ", {lost} lost (no heartbeat within its lease: the others take its tasks)"
        );
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine(id: i64, live: bool, stopped: bool) -> EngineInfo {
        EngineInfo {
            id,
            host: "build-7".into(),
            pid: 4242,
            started_at: "2026-11-30T10:00:00Z".into(),
            heartbeat_at: "2026-11-30T10:05:00Z".into(),
            heartbeat_age_secs: 2.5,
            live,
            stopped_at: stopped.then(|| "2026-11-30T10:06:00Z".into()),
            tasks_held: 12,
            tasks_running: 9,
        }
    }

    #[test]
    fn the_table_says_which_engines_are_live_lost_or_stopped() {
        let text = table(
            &[
                engine(3, true, false),
                engine(2, false, false),
                engine(1, false, true),
            ],
            true,
        );
        assert!(text.starts_with("ENGINE  STATUS"), "{text}");
        assert!(text.contains("3       live     build-7"), "{text}");
        assert!(text.contains("2.5s ago"), "{text}");
        assert!(text.contains("lost"), "{text}");
        assert!(text.contains("stopped 2026-11-30T10:06:00Z"), "{text}");
        assert!(
            text.ends_with(
                "1 live, 1 lost (no heartbeat within its lease: the others take its tasks)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn no_engine_is_said_plainly() {
        assert!(table(&[], false).contains("--all"));
    }
}
