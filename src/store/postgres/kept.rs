//! The run's pipeline, kept in its `meta` table so that every engine of a
//! fleet serves the same one and commands on any machine know its phases:
//! the pipeline file's text, where it was first run from, the schema files
//! its phases name, and the phases switched off. The store keeps them as
//! text; what they mean is the caller's.
//!
//! An engine that starts takes [`PipelineLock`] first, compares its
//! pipeline with the run's, opens the run, and records its pipeline before
//! letting go: two engines starting together never both record theirs.

use std::sync::Arc;

use tokio_postgres::{Client, GenericClient};

use super::fail::PgResult;
use super::fleet::{self, EngineInfo};
use super::{PgTarget, failed, first_connection, newer, run_lock, runtime, schema};
use crate::store::error::StoreError;

const TEXT: &str = "pipeline_text";
const PATH: &str = "pipeline_path";
const SCHEMAS: &str = "pipeline_schemas";
const SWITCHES: &str = "switches";

/// The pipeline kept with a run, as text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptPipeline {
    /// The pipeline file's text.
    pub text: String,
    /// Where it was first run from, so relative paths mean what they meant.
    pub path: String,
    /// Its schema files: a JSON object of each file's resolved path to its text.
    pub schemas: String,
    /// The phases switched off, as JSON.
    pub switches: String,
}

/// The pipeline kept with the run at `target`; `None` when the schema holds
/// no run, or a run whose engines kept none.
pub fn read(target: &PgTarget) -> Result<Option<KeptPipeline>, StoreError> {
    let t = target.clone();
    runtime::block_on(async move {
        let client = match first_connection(&t).await {
            Ok(c) => c,
            Err(e) => return Ok(Err(e)),
        };
        let found = schema::version(&client, &t.schema).await?;
        if found == 0 {
            return Ok(Ok(None));
        }
        if found > schema::VERSION {
            return Ok(Err(newer(&t, found)));
        }
        Ok(Ok(kept(&client).await?))
    })
    .map_err(|e| failed(target, e))?
}

async fn kept(c: &impl GenericClient) -> PgResult<Option<KeptPipeline>> {
    let rows = c
        .query(
            "SELECT key, value FROM meta WHERE key = ANY($1)",
            &[&[TEXT, PATH, SCHEMAS, SWITCHES].as_slice()],
        )
        .await?;
    let mut kept = KeptPipeline::default();
    let mut has_text = false;
    for r in rows {
        let value: String = r.try_get(1)?;
        match r.try_get::<_, &str>(0)? {
            TEXT => {
                kept.text = value;
                has_text = true;
            }
            PATH => kept.path = value,
            SCHEMAS => kept.schemas = value,
            _ => kept.switches = value,
        }
    }
    Ok(has_text.then_some(kept))
}

/// Held while an engine compares its pipeline with the run's and opens the
/// run: one engine at a time. Let go when dropped.
pub struct PipelineLock {
    target: PgTarget,
    client: Arc<Client>,
}

impl PipelineLock {
    /// Connects, makes or brings the run's tables up to date, and waits for
    /// the run's pipeline lock.
    pub fn take(target: &PgTarget) -> Result<PipelineLock, StoreError> {
        let t = target.clone();
        let client = runtime::block_on(async move {
            let mut client = match first_connection(&t).await {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            let found = schema::version(&client, &t.schema).await?;
            if found > schema::VERSION {
                return Ok(Err(newer(&t, found)));
            }
            schema::migrate(&mut client, &t.schema).await?;
            client
                .execute("SELECT pg_advisory_lock($1)", &[&run_lock(&t.schema, 3)])
                .await?;
            Ok(Ok(client))
        })
        .map_err(|e| failed(target, e))??;
        Ok(PipelineLock {
            target: target.clone(),
            client: Arc::new(client),
        })
    }

    /// The pipeline kept with the run, if any.
    pub fn kept(&self) -> Result<Option<KeptPipeline>, StoreError> {
        let c = self.client.clone();
        runtime::block_on(async move { kept(&*c).await }).map_err(|e| failed(&self.target, e))
    }

    /// The engines serving the run now (their lease holds).
    pub fn live_engines(&self) -> Result<Vec<EngineInfo>, StoreError> {
        let c = self.client.clone();
        runtime::block_on(async move { fleet::engines(&c, false).await })
            .map(|all| all.into_iter().filter(|e| e.live).collect())
            .map_err(|e| failed(&self.target, e))
    }

    /// Makes `pipeline` the run's.
    pub fn keep(&self, pipeline: &KeptPipeline) -> Result<(), StoreError> {
        let c = self.client.clone();
        let p = pipeline.clone();
        runtime::block_on(async move {
            c.execute(
                "INSERT INTO meta(key, value) \
                 SELECT * FROM unnest($1::text[], $2::text[]) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &[
                    &[TEXT, PATH, SCHEMAS, SWITCHES].as_slice(),
                    &[&p.text, &p.path, &p.schemas, &p.switches].as_slice(),
                ],
            )
            .await?;
            Ok(())
        })
        .map_err(|e| failed(&self.target, e))
    }
}

impl Drop for PipelineLock {
    fn drop(&mut self) {
        let c = self.client.clone();
        let lock = run_lock(&self.target.schema, 3);
        // The lock goes with the connection in any case; this only spares
        // the next engine waiting for the server to notice.
        let _ = runtime::block_on(async move {
            c.execute("SELECT pg_advisory_unlock($1)", &[&lock]).await?;
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::test_db;

    #[test]
    fn a_run_keeps_one_pipeline_which_a_later_keep_replaces() {
        let Some(target) = test_db::target("kept") else {
            return;
        };
        assert_eq!(read(&target).unwrap(), None, "a schema with no run");
        let lock = PipelineLock::take(&target).unwrap();
        assert_eq!(lock.kept().unwrap(), None);
        let first = KeptPipeline {
            text: "name = \"a\"\n".into(),
            path: "/etc/baton/pipeline.toml".into(),
            schemas: "{}".into(),
            switches: "{}".into(),
        };
        lock.keep(&first).unwrap();
        assert_eq!(lock.kept().unwrap().as_ref(), Some(&first));
        let second = KeptPipeline {
            text: "name = \"b\"\n".into(),
            switches: "{\"disable\":[\"x\"]}".into(),
            ..first.clone()
        };
        lock.keep(&second).unwrap();
        drop(lock);
        assert_eq!(read(&target).unwrap(), Some(second));
    }
}
