//! A schema of its own for each test, on the server `BATON_TEST_PG` names
//! (`postgres://user@host:port/db`); tests that need one skip without it.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::{Client, NoTls};

use super::schema::{MIGRATIONS, ident};

/// A connection whose `search_path` is a fresh schema with the run's tables.
pub(crate) struct TestDb {
    pub client: Client,
    schema: String,
}

/// A fresh schema, or `None` (said on stderr) when no server is named.
pub(crate) async fn connect(test: &str) -> Option<TestDb> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let Ok(url) = std::env::var("BATON_TEST_PG") else {
        eprintln!("{test}: skipped, BATON_TEST_PG is not set");
        return None;
    };
    let (client, conn) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("BATON_TEST_PG answers");
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
            MIGRATIONS[0]
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
