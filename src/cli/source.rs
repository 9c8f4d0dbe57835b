//! Where a command finds its run: the engine that holds the state folder,
//! over its control socket, or, when no engine does, the folder itself.
//! This is the one place that chooses; every command that reads tasks or
//! makes a decision goes through it, so that both ways give the same output.

use std::path::Path;
use std::time::{Duration, Instant};

use baton::engine::{Command, Engine, EngineError, EngineOptions};
use baton::remote::{ClientOptions, ConnectError, Connection, connect_dir};
use baton::run_log_writer::Session;
use std::sync::Arc;

use baton::store::{RunMeta, RunReader, SqliteReader, SqliteStore, StoreError};

use super::state_meta;

/// How long a command waits for an engine that holds the folder's lock but
/// does not answer yet (it is starting, and binds its socket right after).
const STARTING_ENGINE_GRACE: Duration = Duration::from_secs(3);

/// The run a command works on.
pub enum Source {
    /// An engine holds the folder and answers on its socket.
    Live(Box<Connection>),
    /// No engine holds the folder: read and write it directly.
    Folder,
}

impl Source {
    pub async fn open(state_dir: &Path) -> Result<Source, String> {
        match connect_dir(state_dir, ClientOptions::default()).await {
            Ok(conn) => Ok(Source::Live(Box::new(conn))),
            Err(ConnectError::NoEngine(_)) => Ok(Source::Folder),
            Err(e) => Err(e.to_string()),
        }
    }
}

/// Whether no engine serves the run now, so that tasks recorded as under
/// way were interrupted (they go on with the next `baton run`): no engine
/// holds the state folder, or, for a run in PostgreSQL, no engine of the
/// fleet is live. When that cannot be told (the database does not answer),
/// `false`: nothing is called interrupted that may be running.
pub async fn no_engine_serves(state_dir: &Path) -> bool {
    match super::place::get() {
        baton::store::Place::Folder => !baton::store::engine_holds(state_dir),
        baton::store::Place::Postgres(target) => {
            let target = (**target).clone();
            let opened = tokio::task::spawn_blocking(move || {
                baton::store::postgres::PgReader::open(&target)
            })
            .await;
            match opened {
                Ok(Ok(reader)) => reader
                    .engines(false)
                    .await
                    .is_ok_and(|live| live.is_empty()),
                _ => false,
            }
        }
    }
}

/// The run for reading: the folder's database, read without taking the
/// folder, so it works the same beside a running engine (whose commits it
/// sees whole) and on a stopped folder; or the run in PostgreSQL when
/// `--store` names one. A folder of the old layout is converted first,
/// once, when no engine holds it.
pub fn reader(state_dir: &Path) -> Result<Arc<dyn RunReader>, String> {
    let place = super::place::get();
    if !place.is_folder() {
        return place.reader(state_dir).map_err(|e| e.to_string());
    }
    if !state_dir.is_dir() {
        // Says where runs come from, as every command does.
        state_meta::load(state_dir)?;
    }
    match SqliteReader::open(state_dir) {
        Ok(r) => Ok(Arc::new(r)),
        Err(StoreError::NeedsConversion { .. }) => {
            let pipeline = state_meta::load(state_dir)?;
            let meta = RunMeta {
                pipeline: pipeline.name.clone(),
                phases: pipeline.phases.iter().map(|p| p.id.clone()).collect(),
            };
            let (store, recovered, _) =
                SqliteStore::open(state_dir, &meta).map_err(|e| e.to_string())?;
            for w in &recovered.warnings {
                eprintln!("warning: {w}");
            }
            drop(store);
            Ok(Arc::new(
                SqliteReader::open(state_dir).map_err(|e| e.to_string())?,
            ))
        }
        Err(e) => Err(e.to_string()),
    }
}

/// The run for reading, its database upgraded first when an older baton
/// wrote it and no engine holds it (an engine that does has upgraded it
/// already, unless it is an older baton itself). A run in PostgreSQL is
/// upgraded by the engine that opens it.
pub async fn current_reader(state_dir: &Path) -> Result<Arc<dyn RunReader>, String> {
    if !super::place::get().is_folder() {
        return reader(state_dir);
    }
    if !state_dir.is_dir() {
        state_meta::load(state_dir)?;
    }
    let folder = match SqliteReader::open(state_dir) {
        Ok(r) => r,
        Err(StoreError::NeedsConversion { .. }) => return reader(state_dir),
        Err(e) => return Err(e.to_string()),
    };
    if folder.is_current() || baton::store::engine_holds(state_dir) {
        return Ok(Arc::new(folder));
    }
    let meta = match folder.meta().await.map_err(|e| e.to_string())? {
        Some(m) => m,
        None => {
            let pipeline = state_meta::load(state_dir)?;
            RunMeta {
                pipeline: pipeline.name.clone(),
                phases: pipeline.phases.iter().map(|p| p.id.clone()).collect(),
            }
        }
    };
    drop(folder);
    let (store, _, _) = SqliteStore::open(state_dir, &meta).map_err(|e| e.to_string())?;
    drop(store);
    Ok(Arc::new(
        SqliteReader::open(state_dir).map_err(|e| e.to_string())?,
    ))
}

/// Where a command was carried out.
pub enum Applied {
    /// By the running engine with this pid.
    Live(u32),
    /// In the folder; the next `baton run` carries on from it.
    Folder,
}

/// Tells, on standard error, who goes on from a command carried out: the
/// engine that took it, or the next `baton run` on the folder or the run.
pub fn say_who_carries_on(applied: &Applied, state_dir: &Path) {
    match applied {
        Applied::Live(pid) => eprintln!("the running engine (pid {pid}) carries on from here"),
        Applied::Folder if super::place::get().is_folder() => {
            eprintln!("`baton run` on this state folder carries on from here")
        }
        Applied::Folder => eprintln!(
            "`baton run` on the run at {} carries on from here",
            super::place::describe(state_dir)
        ),
    }
}

/// Why a command was not carried out.
pub enum NotApplied {
    /// The engine said no; the text is for the operator (exit status 1).
    Refused(String),
    /// It could not be tried: bad folder, folder in use, I/O (exit status 2).
    Failed(String),
}

/// Hands `command` to the running engine, or applies it to the folder with
/// the same engine code when no engine runs. The run log records it either
/// way: a running engine's log follows its events; in the folder, a section
/// headed `log_as` (the command line, e.g. `baton approve t1`) is appended,
/// and only when something changed.
pub async fn apply(
    state_dir: &Path,
    command: Command,
    log_as: &str,
) -> Result<Applied, NotApplied> {
    let started = Instant::now();
    loop {
        match Source::open(state_dir).await.map_err(NotApplied::Failed)? {
            Source::Live(mut conn) => {
                return conn
                    .command(command)
                    .await
                    .map(|()| Applied::Live(conn.pid))
                    .map_err(|r| NotApplied::Refused(r.0));
            }
            Source::Folder => match apply_offline(state_dir, command.clone(), log_as).await {
                // Locked but silent: an engine is starting; ask it once it answers.
                Err(Offline::Locked(_)) if started.elapsed() < STARTING_ENGINE_GRACE => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(Offline::Locked(e)) => return Err(NotApplied::Failed(e)),
                Err(Offline::Not(n)) => return Err(n),
                Ok(()) => return Ok(Applied::Folder),
            },
        }
    }
}

enum Offline {
    Locked(String),
    Not(NotApplied),
}

async fn apply_offline(state_dir: &Path, command: Command, log_as: &str) -> Result<(), Offline> {
    let pipeline = state_meta::load(state_dir).map_err(|e| Offline::Not(NotApplied::Failed(e)))?;
    let opts = EngineOptions {
        dispatch: false,
        exit_when_idle: false,
        store: super::place::get().clone(),
        ..EngineOptions::default()
    };
    let engine = match Engine::open(pipeline, state_dir, opts) {
        Ok(e) => e,
        Err(e @ EngineError::Store(StoreError::Locked { .. } | StoreError::RunHeld { .. })) => {
            return Err(Offline::Locked(e.to_string()));
        }
        Err(e) => return Err(Offline::Not(NotApplied::Failed(e.to_string()))),
    };
    let mut engine = engine;
    for w in engine.warnings() {
        eprintln!("warning: {w}");
    }
    let start = engine
        .follow_start()
        .await
        .map_err(|e| Offline::Not(NotApplied::Failed(e.to_string())))?;
    let run_log = super::run_log::start(&engine, start, Session::Command(log_as.to_string()), None);
    let handle = engine.handle();
    let join = tokio::spawn(engine.run());
    let result = handle.send(command).await;
    let _ = handle.send(Command::Shutdown).await;
    let joined = join.await;
    super::run_log::finish(run_log).await;
    match joined {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => return Err(Offline::Not(NotApplied::Failed(e.to_string()))),
        Err(e) => return Err(Offline::Not(NotApplied::Failed(e.to_string()))),
    }
    result.map_err(|r| Offline::Not(NotApplied::Refused(r.0)))
}
