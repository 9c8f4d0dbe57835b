//! The `attempt_stats` and `phase_ends` tables: read whole (they have a
//! row per phase, agent and model, and one per phase), written by the
//! writer for what changed in each commit, one statement per table.

use std::sync::LazyLock;

use tokio_postgres::types::ToSql;
use tokio_postgres::{GenericClient, Row, Transaction};

use super::fail::PgResult;
use super::read::Args;
use super::text::{int, uint};
use crate::engine::event::ErrorClass;
use crate::store::histogram::Histogram;
use crate::store::stats::{AttemptFigures, FailureCounts, PhaseEnds, RunStats};
use crate::store::stats_fold::StatsFold;

/// The columns of `attempt_stats`, in the order read and written; the
/// failures have one column per class, `failed_<class>`.
static COLUMNS: LazyLock<Vec<String>> = LazyLock::new(|| {
    let mut columns: Vec<String> = [
        "phase",
        "agent",
        "model",
        "attempts",
        "succeeded",
        "blocked",
    ]
    .map(String::from)
    .into();
    columns.extend(
        ErrorClass::ALL
            .iter()
            .map(|c| format!("failed_{}", c.as_str())),
    );
    columns.extend(
        [
            "interrupted",
            "cancelled",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "cost_nano",
            "cost_sq",
            "cost_unknown",
            "duration_ms",
        ]
        .map(String::from),
    );
    columns
});

/// Columns before the failures, and after them.
const BEFORE_FAILED: usize = 6;
const AFTER_FAILED: usize = 10;

/// One column of the rows written, as an array for `unnest`.
enum Column {
    Text(Vec<String>),
    Int(Vec<i64>),
    Real(Vec<f64>),
}

impl Column {
    fn cast(&self) -> &'static str {
        match self {
            Column::Text(_) => "text[]",
            Column::Int(_) => "bigint[]",
            Column::Real(_) => "float8[]",
        }
    }

    /// Adds the column as a parameter; its placeholder, cast.
    fn push_to(self, args: &mut Args) -> String {
        let cast = self.cast();
        let mark = match self {
            Column::Text(v) => args.push(v),
            Column::Int(v) => args.push(v),
            Column::Real(v) => args.push(v),
        };
        format!("{mark}::{cast}")
    }
}

/// `attempt_stats`' columns of the given rows, in `COLUMNS` order.
fn columns(rows: &[&AttemptFigures]) -> PgResult<Vec<Column>> {
    let text = |f: fn(&AttemptFigures) -> &str| {
        Column::Text(rows.iter().map(|r| f(r).to_string()).collect())
    };
    let count =
        |f: &dyn Fn(&AttemptFigures) -> u64| Column::Int(rows.iter().map(|r| int(f(r))).collect());
    let mut out = vec![
        text(|f| &f.phase),
        text(|f| &f.agent),
        text(|f| &f.model),
        count(&|f| f.attempts),
        count(&|f| f.succeeded),
        count(&|f| f.blocked),
    ];
    for class in ErrorClass::ALL {
        out.push(count(&|f| f.failed.get(class)));
    }
    out.extend([
        count(&|f| f.interrupted),
        count(&|f| f.cancelled),
        count(&|f| f.input_tokens),
        count(&|f| f.output_tokens),
        count(&|f| f.cache_read_tokens),
        count(&|f| f.cache_write_tokens),
        Column::Int(rows.iter().map(|r| r.cost_nano).collect()),
        Column::Real(rows.iter().map(|r| r.cost_sq).collect()),
        count(&|f| f.cost_unknown),
        Column::Text(
            rows.iter()
                .map(|r| serde_json::to_string(&r.duration_ms))
                .collect::<Result<_, _>>()?,
        ),
    ]);
    Ok(out)
}

fn figures(r: &Row) -> PgResult<AttemptFigures> {
    let count = |i: usize| -> PgResult<u64> { Ok(uint(r.try_get(i)?)) };
    let mut failed = FailureCounts::default();
    for (k, class) in ErrorClass::ALL.iter().enumerate() {
        failed.set(*class, count(BEFORE_FAILED + k)?);
    }
    let at = BEFORE_FAILED + ErrorClass::ALL.len();
    let histogram: &str = r.try_get(at + AFTER_FAILED - 1)?;
    Ok(AttemptFigures {
        phase: r.try_get(0)?,
        agent: r.try_get(1)?,
        model: r.try_get(2)?,
        attempts: count(3)?,
        succeeded: count(4)?,
        blocked: count(5)?,
        failed,
        interrupted: count(at)?,
        cancelled: count(at + 1)?,
        input_tokens: count(at + 2)?,
        output_tokens: count(at + 3)?,
        cache_read_tokens: count(at + 4)?,
        cache_write_tokens: count(at + 5)?,
        cost_nano: r.try_get(at + 6)?,
        cost_sq: r.try_get(at + 7)?,
        cost_unknown: count(at + 8)?,
        duration_ms: serde_json::from_str::<Histogram>(histogram)?,
    })
}

/// Both tables, whole, in byte order of their keys as in the embedded store.
pub async fn read(c: &impl GenericClient) -> PgResult<RunStats> {
    let attempts = c
        .query(
            &format!(
                "SELECT {} FROM attempt_stats \
                 ORDER BY phase COLLATE \"C\", agent COLLATE \"C\", model COLLATE \"C\"",
                COLUMNS.join(", ")
            ),
            &[],
        )
        .await?
        .iter()
        .map(figures)
        .collect::<PgResult<Vec<_>>>()?;
    let ends = c
        .query(
            "SELECT phase, skipped, failed FROM phase_ends ORDER BY phase COLLATE \"C\"",
            &[],
        )
        .await?
        .iter()
        .map(|r| {
            Ok(PhaseEnds {
                phase: r.try_get(0)?,
                skipped: uint(r.try_get(1)?),
                failed: uint(r.try_get(2)?),
            })
        })
        .collect::<PgResult<Vec<_>>>()?;
    Ok(RunStats { attempts, ends })
}

/// Writes the rows the fold changed since it last wrote: one upsert of
/// arrays per table.
pub(crate) async fn write(tx: &Transaction<'_>, fold: &mut StatsFold) -> PgResult<()> {
    let (rows, ends) = fold.take_changes();
    let stats = fold.stats();
    let rows: Vec<&AttemptFigures> = rows.iter().filter_map(|&i| stats.attempts.get(i)).collect();
    if !rows.is_empty() {
        let mut args = Args::default();
        let marks: Vec<String> = columns(&rows)?
            .into_iter()
            .map(|c| c.push_to(&mut args))
            .collect();
        let sets: Vec<String> = COLUMNS[3..]
            .iter()
            .map(|c| format!("{c} = excluded.{c}"))
            .collect();
        let sql = format!(
            "INSERT INTO attempt_stats({}) SELECT * FROM unnest({}) \
             ON CONFLICT (phase, agent, model) DO UPDATE SET {}",
            COLUMNS.join(", "),
            marks.join(", "),
            sets.join(", ")
        );
        tx.execute(&sql, &args.refs()).await?;
    }
    let ends: Vec<&PhaseEnds> = ends.iter().filter_map(|&i| stats.ends.get(i)).collect();
    if !ends.is_empty() {
        let phases: Vec<&str> = ends.iter().map(|e| e.phase.as_str()).collect();
        let skipped: Vec<i64> = ends.iter().map(|e| int(e.skipped)).collect();
        let failed: Vec<i64> = ends.iter().map(|e| int(e.failed)).collect();
        let params: [&(dyn ToSql + Sync); 3] = [&phases, &skipped, &failed];
        tx.execute(
            "INSERT INTO phase_ends(phase, skipped, failed) \
             SELECT * FROM unnest($1::text[], $2::bigint[], $3::bigint[]) \
             ON CONFLICT (phase) DO UPDATE SET skipped = excluded.skipped, \
               failed = excluded.failed",
            &params,
        )
        .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::cost::Usage;
    use crate::engine::event::{AttemptOutcome, EventKind};
    use crate::store::postgres::test_db;

    fn started(phase: &str, agent: &str, model: Option<&str>) -> EventKind {
        EventKind::PhaseStarted {
            phase: phase.into(),
            attempt: 1,
            agent: agent.into(),
            model: model.map(str::to_string),
            feedback: None,
            route: None,
            role: None,
        }
    }

    fn finished(phase: &str, outcome: AttemptOutcome, cost: Option<f64>, ms: u64) -> EventKind {
        EventKind::AttemptFinished {
            phase: phase.into(),
            attempt: 1,
            duration_ms: ms,
            outcome,
            usage: Some(Usage {
                input_tokens: 100,
                output_tokens: 20,
                cache_read_tokens: 5,
                ..Usage::default()
            }),
            cost_usd: cost,
            output: None,
            trace: Vec::new(),
            http: None,
            retry_after_ms: None,
        }
    }

    /// The fold's figures in the order `read` gives them.
    fn sorted(stats: &RunStats) -> RunStats {
        let mut s = stats.clone();
        s.attempts
            .sort_by(|a, b| (&a.phase, &a.agent, &a.model).cmp(&(&b.phase, &b.agent, &b.model)));
        s.ends.sort_by(|a, b| a.phase.cmp(&b.phase));
        s
    }

    async fn commit(db: &mut test_db::TestDb, fold: &mut StatsFold) {
        let tx = db.client.transaction().await.unwrap();
        write(&tx, fold).await.unwrap();
        tx.commit().await.unwrap();
    }

    #[tokio::test]
    async fn what_is_written_reads_back() {
        let Some(mut db) = test_db::connect("stats").await else {
            return;
        };
        assert_eq!(read(&db.client).await.unwrap(), RunStats::default());
        let mut fold = StatsFold::default();
        commit(&mut db, &mut fold).await;
        fold.apply_event(Some(1), &started("draft", "coder", Some("m-b")));
        fold.apply_event(
            Some(1),
            &finished("draft", AttemptOutcome::Succeeded, Some(0.125), 900),
        );
        fold.apply_event(Some(2), &started("draft", "coder", None));
        let timeout = AttemptOutcome::Failed {
            class: ErrorClass::Timeout,
            message: "slow".into(),
        };
        fold.apply_event(Some(2), &finished("draft", timeout, None, 60_000));
        fold.apply_event(Some(3), &started("Draft", "writer", Some("m-a")));
        fold.apply_event(
            Some(3),
            &finished("Draft", AttemptOutcome::Succeeded, Some(1e-9), 5),
        );
        let skipped = EventKind::PhaseSkipped {
            phase: "review".into(),
            reason: "off".into(),
        };
        fold.apply_event(Some(1), &skipped);
        commit(&mut db, &mut fold).await;
        let got = read(&db.client).await.unwrap();
        assert_eq!(got, sorted(fold.stats()));
        assert_eq!(got.attempts.len(), 3);
        assert_eq!(got.attempts[0].phase, "Draft", "byte order");
        assert_eq!(got.ends.len(), 1);

        // Rows already there are replaced; the others stay.
        fold.apply_event(Some(4), &started("draft", "coder", Some("m-b")));
        fold.apply_event(
            Some(4),
            &finished("draft", AttemptOutcome::Succeeded, Some(0.5), 1_000),
        );
        let failed = EventKind::PhaseFailed {
            phase: "review".into(),
            error: "no".into(),
        };
        fold.apply_event(Some(4), &failed);
        fold.apply_event(Some(4), &skipped);
        commit(&mut db, &mut fold).await;
        let got = read(&db.client).await.unwrap();
        assert_eq!(got, sorted(fold.stats()));
        let b = got.attempts.iter().find(|f| f.model == "m-b").unwrap();
        assert_eq!((b.attempts, b.succeeded, b.cost_nano), (2, 2, 625_000_000));
        assert_eq!((got.ends[0].skipped, got.ends[0].failed), (2, 1));
        db.drop().await;
    }
}
