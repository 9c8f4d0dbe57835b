//! A schema of its own for each test, in the cluster the tests start
//! (`tests/support/pg_cluster.rs`); without PostgreSQL installed the tests
//! that need one say so and pass, unless `BATON_REQUIRE_PG=1`.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::{Client, NoTls};

use super::schema::{MIGRATIONS, ident};

/// A connection whose `search_path` is a fresh schema with the run's tables.
pub(crate) struct TestDb {
    pub client: Client,
    schema: String,
}

/// The database these tests share, once the cluster runs.
fn database() -> Option<String> {
    static DB: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    DB.get_or_init(|| crate::store::suite::pg_cluster::cluster().map(|c| c.fresh_db()))
        .clone()
}

/// A fresh schema, or `None` (said on stderr) when PostgreSQL is missing.
pub(crate) async fn connect(test: &str) -> Option<TestDb> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Some(url) = database() else {
        eprintln!("{test}: skipped, PostgreSQL is not installed");
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("the test cluster answers");
    tokio::spawn(conn);
    let schema = format!(
        "test_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let s = ident(&schema);
    client
        .batch_execute(&format!(
            "DROP SCHEMA IF EXISTS {s} CASCADE; CREATE SCHEMA {s}; SET search_path TO {s}; {}",
            MIGRATIONS.concat()
        ))
        .await
        .expect("the schema is made");
    Some(TestDb { client, schema })
}

impl TestDb {
    /// Removes the schema; a failed test leaves its own behind to look at.
    pub(crate) async fn drop(self) {
        self.client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", ident(&self.schema)))
            .await
            .expect("the schema is dropped");
    }
}

/// The address of a fresh schema with no run in it, or `None` (said on
/// stderr) when PostgreSQL is missing.
pub(crate) fn target(test: &str) -> Option<super::PgTarget> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Some(url) = database() else {
        eprintln!("{test}: skipped, PostgreSQL is not installed");
        return None;
    };
    let schema = format!(
        "target_{test}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    Some(
        super::PgTarget::parse(&format!("{url}?schema={schema}"))
            .expect("the test cluster's address"),
    )
}
