//! Where the PostgreSQL backend's connections live: a runtime of its own,
//! so that the store works the same from the engine's runtime, a test's
//! single-threaded one, or code that is not async at all (opening a store
//! happens in `Engine::open`, which is not). Every connection's driver task
//! and every query runs here; callers only await the answer.
//!
//! Every connection, the engine's and every command's, is made here through
//! one [`Connector`], under the address's `sslmode` (see [`super::tls`]).

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use futures_util::future::BoxFuture;
use tokio_postgres::Client;

use super::fail::{PgFail, PgResult};
use super::schema::ident;
use super::target::PgTarget;
use super::tls::{Connector, Driver, refusal};

/// Connections a reader's pool keeps at most: the CLI asks one question at
/// a time; a dashboard a few at once.
const POOL_SIZE: usize = 4;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("baton-pg")
            .enable_all()
            .build()
            .expect("the PostgreSQL store's runtime starts")
    })
}

/// Runs `work` on the backend's runtime and waits for it from any async
/// context.
pub async fn run<T, F>(work: F) -> PgResult<T>
where
    F: Future<Output = PgResult<T>> + Send + 'static,
    T: Send + 'static,
{
    match runtime().spawn(work).await {
        Ok(done) => done,
        Err(e) => Err(PgFail::Bad(format!("a store query stopped: {e}"))),
    }
}

/// Runs `work` on the backend's runtime and blocks this thread until it is
/// done: for code that is not async (opening the store).
pub fn block_on<T, F>(work: F) -> PgResult<T>
where
    F: Future<Output = PgResult<T>> + Send + 'static,
    T: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(work.await);
    });
    rx.recv()
        .unwrap_or_else(|_| Err(PgFail::Bad("a store query stopped".into())))
}

/// Spawns a task on the backend's runtime.
pub fn spawn<F>(work: F) -> tokio::task::JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    runtime().spawn(work)
}

/// The connection settings with the run's schema first on the search
/// path, so that every query names its tables unqualified.
fn config(target: &PgTarget) -> tokio_postgres::Config {
    let mut config = target.config.clone();
    let mut options = config.get_options().unwrap_or("").to_string();
    if !options.is_empty() {
        options.push(' ');
    }
    options.push_str(&format!("-c search_path={}", ident(&target.schema)));
    config.options(options);
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config
}

/// One connection, its driver running on the backend's runtime. Must be
/// called on that runtime (inside `run` or `block_on`). The certificate
/// files are read anew for each; a TLS failure is worded with what to do
/// (a `PgFail::Bad`: trying again would not help).
pub async fn connect(target: &PgTarget) -> PgResult<Client> {
    let tls = Connector::new(&target.tls).map_err(PgFail::Bad)?;
    let (client, driver) = tls.connect(&config(target)).await.map_err(|e| {
        match refusal(&e, &target.tls, &target.host_port()) {
            Some(why) => PgFail::Bad(why),
            None => PgFail::Db(e),
        }
    })?;
    drive(driver);
    Ok(client)
}

/// Runs a connection's task until the connection ends.
fn drive(driver: Driver) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if let Err(e) = driver.await {
            tracing::debug!("a PostgreSQL connection ended: {e}");
        }
    })
}

/// The pool's connections, made by the same [`Connector`] as [`connect`]'s.
struct PoolConnect(Connector);

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'_, Result<(Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>> {
        let config = config.clone();
        Box::pin(async move {
            let (client, driver) = self.0.connect(&config).await?;
            Ok((client, drive(driver)))
        })
    }
}

/// A small pool of connections for reading; the certificate files are read
/// once, now.
pub fn pool(target: &PgTarget) -> PgResult<Pool> {
    let tls = Connector::new(&target.tls).map_err(PgFail::Bad)?;
    let manager = Manager::from_connect(
        config(target),
        PoolConnect(tls),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(POOL_SIZE)
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| PgFail::Bad(format!("a connection pool could not be made: {e}")))
}

/// A connection from `pool`, with the pool's error as a `PgFail`.
pub async fn pooled(pool: &Pool) -> PgResult<deadpool_postgres::Object> {
    pool.get().await.map_err(|e| match e {
        deadpool_postgres::PoolError::Backend(e) => PgFail::Db(e),
        other => PgFail::Bad(format!("no connection to the store: {other}")),
    })
}
