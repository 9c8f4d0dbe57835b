//! Queries on one connection, whose `search_path` is the run's schema. The
//! writer's transactions and every reader use these, so what a reader sees
//! is what the engine committed.
//!
//! Where the embedded store asks one row at a time, these ask for all of a
//! call's rows in one statement (the holds of a page of rows, the events of
//! the tasks to fold): each statement is a round trip to the server.

use std::collections::{BTreeMap, HashMap, HashSet};

use futures_util::{TryStreamExt, pin_mut};
use jiff::Timestamp;
use tokio_postgres::GenericClient;
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

use super::fail::{PgFail, PgResult};
use super::text::{int, parse_ts, small, ts, uint};
use crate::engine::TaskState;
use crate::engine::event::{Event, EventKind};
use crate::engine::state::HoldKind;
use crate::engine::task::{Hold, Task};
use crate::store::elapsed::{self, Arm};
use crate::store::model::{ListQuery, PhaseTotals, RunMeta, Sort, TaskNo, TaskRow, Totals};

/// The parameters of a statement built as text, numbered as pushed.
#[derive(Default)]
pub(crate) struct Args(Vec<Box<dyn ToSql + Sync + Send>>);

impl Args {
    /// Adds a parameter; its placeholder (`$n`). The Rust type picks the
    /// PostgreSQL one: `i64` for BIGINT, `f64` for DOUBLE PRECISION.
    pub(crate) fn push(&mut self, value: impl ToSql + Sync + Send + 'static) -> String {
        self.0.push(Box::new(value));
        format!("${}", self.0.len())
    }

    pub(crate) fn refs(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.0
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub async fn meta(c: &impl GenericClient) -> PgResult<Option<RunMeta>> {
    let row = c
        .query_opt("SELECT value FROM meta WHERE key = 'run'", &[])
        .await?;
    match row {
        Some(r) => Ok(Some(serde_json::from_str(r.try_get::<_, &str>(0)?)?)),
        None => Ok(None),
    }
}

/// The highest seq committed: the last event's, or a seq the run recorded
/// in its meta, whichever is higher.
pub async fn last_seq(c: &impl GenericClient) -> PgResult<u64> {
    let r = c
        .query_one(
            "SELECT (SELECT max(seq) FROM events), \
             (SELECT value FROM meta WHERE key = 'last_seq')",
            &[],
        )
        .await?;
    Ok(highest(r.try_get(0)?, r.try_get(1)?))
}

/// The higher of the events' last seq and the one recorded in the meta.
fn highest(from_events: Option<i64>, recorded: Option<&str>) -> u64 {
    let recorded = recorded.and_then(|s| s.parse::<i64>().ok());
    uint(
        [from_events, recorded]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(0),
    )
}

pub async fn last_ord(c: &impl GenericClient) -> PgResult<TaskNo> {
    let n: Option<i64> = c
        .query_one("SELECT max(ord) FROM tasks", &[])
        .await?
        .try_get(0)?;
    Ok(n.unwrap_or(0))
}

/// The running totals, from their keys; every value is text.
pub async fn totals(c: &impl GenericClient) -> PgResult<Totals> {
    let mut t = Totals::default();
    for r in c.query("SELECT key, value FROM totals", &[]).await? {
        let key: &str = r.try_get(0)?;
        let value: &str = r.try_get(1)?;
        let int = || value.parse::<i64>().unwrap_or(0);
        let uint = || uint(int());
        match key {
            "tasks" => t.tasks = uint(),
            "attempts" => t.attempts = uint(),
            "tokens" => t.tokens = uint(),
            "cost_nano" => t.cost_nano = int(),
            "cost_unknown" => t.cost_unknown = uint(),
            "holds" => t.holds = uint(),
            "first_submitted_at" => t.first_submitted_at = value.parse().ok(),
            "last_change_at" => t.last_change_at = value.parse().ok(),
            k => {
                if let Some(state) = k.strip_prefix("state.").and_then(TaskState::parse) {
                    let i = TaskState::ALL.iter().position(|s| *s == state).unwrap_or(0);
                    t.states[i] = uint();
                } else if let Some(rest) = k.strip_prefix("phase.")
                    && let Some((order, json)) = rest.split_once('.')
                    && let Ok(order) = order.parse::<usize>()
                    && json == "figures"
                {
                    let p: PhaseTotals = serde_json::from_str(value).unwrap_or_default();
                    if t.phases.len() <= order {
                        t.phases.resize(order + 1, PhaseTotals::default());
                    }
                    t.phases[order] = p;
                }
            }
        }
    }
    t.phases.retain(|p| !p.phase.is_empty());
    Ok(t)
}

/// The columns `row` reads, in its order.
const ROW_COLUMNS: &str = "ord, id, state, phase, phases_done, phases_total, attempts, tokens, \
     cost_usd, cost_unknown, holds, created_at, updated_at, finished_at, finish_reason, seq, \
     nullif(phase_pos, 4294967295), agent, model";

/// A task row, and how many holds it has.
fn row(r: &Row) -> PgResult<(TaskRow, i64)> {
    let state: &str = r.try_get(2)?;
    let state = TaskState::parse(state)
        .ok_or_else(|| PgFail::Bad(format!("unknown task state {state:?}")))?;
    let opt_ts = |i: usize| -> PgResult<Option<Timestamp>> {
        r.try_get::<_, Option<&str>>(i)?.map(parse_ts).transpose()
    };
    let count = |i: usize, what: &str| -> PgResult<u32> { small(r.try_get(i)?, what) };
    Ok((
        TaskRow {
            ord: r.try_get(0)?,
            id: r.try_get(1)?,
            state,
            phase: r.try_get(3)?,
            phase_pos: r
                .try_get::<_, Option<i64>>(16)?
                .map(|p| small(p, "phase position"))
                .transpose()?,
            agent: r.try_get(17)?,
            model: r.try_get(18)?,
            phases_done: count(4, "phases done")?,
            phases_total: count(5, "phases total")?,
            attempts: count(6, "attempts")?,
            tokens: uint(r.try_get(7)?),
            cost_usd: r.try_get(8)?,
            cost_unknown: count(9, "unknown costs")?,
            created_at: parse_ts(r.try_get(11)?)?,
            updated_at: parse_ts(r.try_get(12)?)?,
            finished_at: opt_ts(13)?,
            finish_reason: r.try_get(14)?,
            holds: Vec::new(),
            seq: uint(r.try_get(15)?),
        },
        r.try_get(10)?,
    ))
}

/// Fills in the holds of rows that have any, in one query.
async fn with_holds(c: &impl GenericClient, rows: Vec<(TaskRow, i64)>) -> PgResult<Vec<TaskRow>> {
    let ords: Vec<TaskNo> = rows
        .iter()
        .filter(|(_, holds)| *holds > 0)
        .map(|(r, _)| r.ord)
        .collect();
    let mut holds: HashMap<TaskNo, Vec<Hold>> = HashMap::new();
    if !ords.is_empty() {
        let found = c
            .query(
                "SELECT kind, phase, since, reason, review, escalation, task FROM holds \
                 WHERE task = ANY($1) ORDER BY task, pos",
                &[&ords],
            )
            .await?;
        for r in found {
            holds.entry(r.try_get(6)?).or_default().push(hold(&r)?);
        }
    }
    Ok(rows
        .into_iter()
        .map(|(mut row, _)| {
            row.holds = holds.remove(&row.ord).unwrap_or_default();
            row
        })
        .collect())
}

#[cfg(test)]
pub async fn holds_of(c: &impl GenericClient, ord: TaskNo) -> PgResult<Vec<Hold>> {
    c.query(
        "SELECT kind, phase, since, reason, review, escalation FROM holds WHERE task = $1 \
         ORDER BY pos",
        &[&ord],
    )
    .await?
    .iter()
    .map(hold)
    .collect()
}

/// A hold from its first six columns.
fn hold(r: &Row) -> PgResult<Hold> {
    let kind = match r.try_get::<_, &str>(0)? {
        "review" => HoldKind::Review,
        "blocked" => HoldKind::Blocked,
        other => return Err(PgFail::Bad(format!("unknown hold kind {other:?}"))),
    };
    let review: Option<&str> = r.try_get(4)?;
    let escalation: Option<&str> = r.try_get(5)?;
    Ok(Hold {
        kind,
        phase: r.try_get(1)?,
        since: parse_ts(r.try_get(2)?)?,
        reason: r.try_get(3)?,
        review: review.map(serde_json::from_str).transpose()?,
        escalation: escalation
            .map(serde_json::from_str)
            .transpose()?
            .unwrap_or_default(),
    })
}

/// The column or expression a sort orders by, and whether its natural
/// direction is descending. Every sort is an index scan; elapsed, which
/// depends on the time now, merges two (`list_elapsed`), and is this
/// expression only for counts and tables older than its indexes.
fn sort_key(sort: Sort) -> (&'static str, bool) {
    match sort {
        Sort::Submitted => ("ord", false),
        Sort::Updated => ("updated_at", true),
        Sort::Tokens => ("tokens", true),
        Sort::Cost => ("cost_usd", true),
        Sort::Id => ("id", false),
        Sort::State => ("attention", false),
        // Tasks with no current phase sort after every phase.
        Sort::Phase => ("phase_pos", false),
        Sort::Progress => ("phases_done", false),
        Sort::Attempts => ("attempts", true),
        Sort::Elapsed => (
            "(coalesce(finished_at::timestamptz, now()) - created_at::timestamptz)",
            true,
        ),
    }
}

/// `text` as a LIKE pattern that finds it anywhere, its wildcards escaped
/// (backslash is LIKE's escape by default).
fn like_escaped(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern
}

/// Tasks whose id, state or current phase contains `text`, ignoring case:
/// the ids by LIKE (which reads every id), the states and phases whose
/// names contain it by name.
async fn text_clause(c: &impl GenericClient, text: &str, args: &mut Args) -> PgResult<String> {
    let needle = text.to_ascii_lowercase();
    let mut terms = vec![format!(
        "lower(id) LIKE lower({})",
        args.push(format!("%{}%", like_escaped(text)))
    )];
    let states: Vec<String> = TaskState::ALL
        .iter()
        .filter(|s| s.as_str().contains(&needle))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    if !states.is_empty() {
        terms.push(format!("state IN ({})", states.join(", ")));
    }
    let phases: Vec<String> = meta(c)
        .await?
        .map(|m| m.phases)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_ascii_lowercase().contains(&needle))
        .collect();
    if !phases.is_empty() {
        terms.push(format!("phase = ANY({})", args.push(phases)));
    }
    Ok(format!("({})", terms.join(" OR ")))
}

/// A pattern of the filter language (Rust's `regex` syntax) in PostgreSQL's:
/// word boundaries `\b` and `\B` are `\y` and `\Y` there (`\b` is a
/// backspace), and the end of the text `\z` is `\Z`. Inside brackets
/// nothing changes.
fn pg_pattern(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars().peekable();
    // How deep in brackets (Rust's classes nest).
    let mut depth = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('b') if depth == 0 => out.push_str("\\y"),
                Some('B') if depth == 0 => out.push_str("\\Y"),
                Some('z') if depth == 0 => out.push_str("\\Z"),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '[' if depth > 0 && chars.peek() == Some(&':') => {
                // A named class, `[:alpha:]`, through its `:]`.
                out.push('[');
                let mut prev = '[';
                for n in chars.by_ref() {
                    out.push(n);
                    if prev == ':' && n == ']' {
                        break;
                    }
                    prev = n;
                }
            }
            '[' => {
                depth += 1;
                out.push('[');
                if chars.peek() == Some(&'^') {
                    out.extend(chars.next());
                }
                // A `]` first in the class is itself.
                if chars.peek() == Some(&']') {
                    out.extend(chars.next());
                }
            }
            ']' if depth > 0 => {
                depth -= 1;
                out.push(']');
            }
            c => out.push(c),
        }
    }
    out
}

/// Whether the filter language's `regex` takes `pattern`, with the size
/// limit the embedded store's `regexp` has.
fn compiles(pattern: &str) -> bool {
    regex::RegexBuilder::new(pattern)
        .size_limit(1 << 20)
        .build()
        .is_ok()
}

/// The filter language's terms as one WHERE condition: every term holds.
/// A `/regex/` in `refused` (one PostgreSQL does not take), or one that
/// does not compile, matches nothing.
async fn filter_clause(
    c: &impl GenericClient,
    filter: &crate::filter::Filter,
    refused: &HashSet<String>,
    args: &mut Args,
) -> PgResult<String> {
    use crate::filter::{Field, Number, Op, Test};
    let mut parts = Vec::new();
    for term in &filter.terms {
        let clause = match &term.test {
            Test::Is { field, value } => {
                let column = match field {
                    Field::State => "state",
                    Field::Phase => "phase",
                    Field::Agent => "agent",
                    Field::Model => "model",
                    Field::Id => "id",
                };
                format!("{column} IS NOT DISTINCT FROM {}", args.push(value.clone()))
            }
            // A prefix LIKE keeps the id index (text_pattern_ops).
            Test::IdPrefix(prefix) => {
                format!(
                    "id LIKE {}",
                    args.push(format!("{}%", like_escaped(prefix)))
                )
            }
            Test::Compare { number, op, value } => match number {
                Number::Cost => format!("cost_usd {} {}::float8", op.sql(), args.push(*value)),
                Number::Tokens => format!("tokens {} {}::float8", op.sql(), args.push(*value)),
                Number::Attempts => {
                    format!("attempts {} {}::float8", op.sql(), args.push(*value))
                }
                Number::Waited => {
                    // Waited longer than X: waiting since before now - X.
                    let secs = value.clamp(0.0, 1e10);
                    let at = Timestamp::now()
                        .checked_sub(jiff::SignedDuration::from_secs_f64(secs))
                        .unwrap_or(Timestamp::MIN);
                    let flipped = match op {
                        Op::Gt => "<",
                        Op::Ge => "<=",
                        Op::Lt => ">",
                        Op::Le => ">=",
                        Op::Eq => "=",
                    };
                    format!(
                        "(waiting_since IS NOT NULL AND waiting_since {flipped} {})",
                        args.push(ts(at))
                    )
                }
            },
            Test::Regex(pattern) => {
                if refused.contains(pattern) || !compiles(pattern) {
                    "false".to_string()
                } else {
                    let p = args.push(pg_pattern(pattern));
                    format!(
                        "(id ~ {p} OR coalesce(finish_reason, '') ~ {p} \
                         OR EXISTS (SELECT 1 FROM holds h WHERE h.task = tasks.ord AND h.reason ~ {p}))"
                    )
                }
            }
            Test::Text(text) => text_clause(c, text, args).await?,
        };
        parts.push(if term.negated {
            format!("NOT coalesce({clause}, false)")
        } else {
            clause
        });
    }
    Ok(format!("({})", parts.join(" AND ")))
}

/// The conditions of a list query's state, phase, text, filter and finish
/// time, with their parameters in `args`.
async fn filter_clauses(
    c: &impl GenericClient,
    q: &ListQuery,
    refused: &HashSet<String>,
    args: &mut Args,
) -> PgResult<Vec<String>> {
    let mut clauses = Vec::new();
    if let Some(state) = q.state {
        clauses.push(format!("state = {}", args.push(state.as_str())));
    }
    if let Some(phase) = &q.phase {
        clauses.push(format!("phase = {}", args.push(phase.clone())));
    }
    if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
        clauses.push(text_clause(c, text, args).await?);
    }
    if let Some(filter) = q.filter.as_ref().filter(|f| !f.is_empty()) {
        clauses.push(filter_clause(c, filter, refused, args).await?);
    }
    if let Some(since) = q.finished_since {
        clauses.push(format!("finished_at >= {}", args.push(ts(since))));
    }
    Ok(clauses)
}

/// The WHERE clause and ORDER BY of a list query, with its parameters.
async fn list_sql(
    c: &impl GenericClient,
    q: &ListQuery,
    refused: &HashSet<String>,
) -> PgResult<(String, String, Args)> {
    let mut args = Args::default();
    let mut clauses = filter_clauses(c, q, refused, &mut args).await?;
    let (key, natural_desc) = sort_key(q.sort);
    let desc = natural_desc != q.reverse;
    if let Some(after) = &q.after {
        // Rows after `after` in the sort order; ties broken by ord. No
        // such task: nothing (the comparison with no row is NULL). No sort
        // key is ever NULL, so rows compare whole.
        let cmp = if desc { "<" } else { ">" };
        let id = args.push(after.clone());
        clauses.push(if key == "ord" {
            format!("ord {cmp} (SELECT ord FROM tasks WHERE id = {id})")
        } else {
            format!("({key}, ord) {cmp} (SELECT {key}, ord FROM tasks WHERE id = {id})")
        });
    }
    let filter = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let dir = if desc { "DESC" } else { "ASC" };
    let order = if key == "ord" {
        format!(" ORDER BY ord {dir}")
    } else {
        // Ties run the way the key runs, so that one index scan, forwards
        // or backwards, gives the order.
        format!(" ORDER BY {key} {dir}, ord {dir}")
    };
    Ok((filter, order, args))
}

/// Whether a query failed on a regular expression PostgreSQL does not take.
fn regex_refused(e: &tokio_postgres::Error) -> bool {
    e.code() == Some(&SqlState::INVALID_REGULAR_EXPRESSION)
}

/// After a query failed on a regular expression: adds the filter's
/// patterns PostgreSQL refuses to `refused`, asking it about each alone.
/// Says whether it found one more (and the query is worth running again).
async fn find_refused(
    c: &impl GenericClient,
    q: &ListQuery,
    refused: &mut HashSet<String>,
) -> PgResult<bool> {
    use crate::filter::Test;
    let mut more = false;
    let terms = q.filter.iter().flat_map(|f| &f.terms);
    for term in terms {
        let Test::Regex(pattern) = &term.test else {
            continue;
        };
        if refused.contains(pattern) || !compiles(pattern) {
            continue;
        }
        match c.query_one("SELECT '' ~ $1", &[&pg_pattern(pattern)]).await {
            Ok(_) => {}
            Err(e) if regex_refused(&e) => {
                refused.insert(pattern.clone());
                more = true;
            }
            // Not the pattern (inside a transaction, the first failure
            // already ended it): the first failure is the one to report.
            Err(_) => return Ok(false),
        }
    }
    Ok(more)
}

/// Task rows matching `q`, in its order, from its offset, up to its limit.
pub async fn list(c: &impl GenericClient, q: &ListQuery) -> PgResult<Vec<TaskRow>> {
    let mut refused = HashSet::new();
    // Tables older than the elapsed sort's indexes (a reader of an older
    // run) sort by the expression.
    let mut indexed_elapsed = q.sort == Sort::Elapsed;
    loop {
        if indexed_elapsed {
            match list_elapsed(c, q, &refused).await {
                Ok(rows) => return with_holds(c, rows).await,
                Err(PgFail::Db(e))
                    if regex_refused(&e) && find_refused(c, q, &mut refused).await? => {}
                Err(PgFail::Db(e)) if e.code() == Some(&SqlState::UNDEFINED_COLUMN) => {
                    indexed_elapsed = false;
                }
                Err(e) => return Err(e),
            }
            continue;
        }
        let (filter, order, args) = list_sql(c, q, &refused).await?;
        let limit = q
            .limit
            .map_or(String::new(), |l| format!(" LIMIT {}", int(l)));
        let sql = format!(
            "SELECT {ROW_COLUMNS} FROM tasks{filter}{order}{limit} OFFSET {}",
            int(q.offset)
        );
        match c.query(&sql, &args.refs()).await {
            Ok(found) => {
                let rows = found.iter().map(row).collect::<PgResult<Vec<_>>>()?;
                return with_holds(c, rows).await;
            }
            Err(e) if regex_refused(&e) && find_refused(c, q, &mut refused).await? => {}
            Err(e) => return Err(e.into()),
        }
    }
}

/// A list query sorted by elapsed time: the unfinished tasks' age index and
/// the finished tasks' time index read in order and merged (see
/// `store::elapsed`); an offset is skipped by the indexes' keys alone.
async fn list_elapsed(
    c: &impl GenericClient,
    q: &ListQuery,
    refused: &HashSet<String>,
) -> PgResult<Vec<(TaskRow, i64)>> {
    let now = Timestamp::now();
    let desc = !q.reverse;
    let mut anchor = None;
    if let Some(after) = &q.after {
        let found = c
            .query_opt(
                "SELECT created_at, took_ns, ord FROM tasks WHERE id = $1",
                &[after],
            )
            .await?;
        match found {
            Some(r) => anchor = Some(place(&r, 0, now)?.1),
            None => return Ok(Vec::new()),
        }
    }
    if q.offset > 0 {
        let found = both_arms(
            c,
            q,
            refused,
            anchor,
            now,
            Arm::key_columns,
            Some(int(q.offset)),
        )
        .await?;
        let keys = found
            .iter()
            .map(|r| {
                let (arm, p) = place(r, 0, now)?;
                Ok((arm, p, ()))
            })
            .collect::<PgResult<Vec<_>>>()?;
        let [a, b] = elapsed::split(keys, desc);
        match elapsed::merge(a, b, desc, q.offset as usize - 1, Some(1)).first() {
            Some((p, ())) => anchor = Some(*p),
            None => return Ok(Vec::new()),
        }
    }
    let columns = |_| format!("{ROW_COLUMNS}, created_at, took_ns, ord");
    let found = both_arms(c, q, refused, anchor, now, columns, q.limit.map(int)).await?;
    let rows = found
        .iter()
        .map(|r| {
            let (arm, p) = place(r, 19, now)?;
            Ok((arm, p, row(r)?))
        })
        .collect::<PgResult<Vec<_>>>()?;
    let [a, b] = elapsed::split(rows, desc);
    let take = q.limit.map(|l| l.min(usize::MAX as u64) as usize);
    Ok(elapsed::merge(a, b, desc, 0, take)
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

/// A row's arm and place in the elapsed order, from its created_at, took_ns
/// and ord at `first` and the two columns after it.
fn place(r: &Row, first: usize, now: Timestamp) -> PgResult<(Arm, elapsed::Place)> {
    let ord = r.try_get(first + 2)?;
    if let Some(took) = r.try_get(first + 1)? {
        return Ok((Arm::Finished, elapsed::Place::finished(took, ord)));
    }
    let created = parse_ts(r.try_get(first)?)?;
    Ok((
        Arm::Unfinished,
        elapsed::Place::new(created, None, ord, now),
    ))
}

/// Both arms of a sort by elapsed time, in one statement: `columns` of the
/// rows `q` keeps in each, after `anchor`, in the arm's order, at most
/// `limit` of each.
async fn both_arms<C: Into<String>>(
    c: &impl GenericClient,
    q: &ListQuery,
    refused: &HashSet<String>,
    anchor: Option<elapsed::Place>,
    now: Timestamp,
    columns: impl Fn(Arm) -> C,
    limit: Option<i64>,
) -> PgResult<Vec<Row>> {
    let desc = !q.reverse;
    let mut args = Args::default();
    let mut arms = Vec::new();
    for arm in Arm::BOTH {
        let mut clauses = filter_clauses(c, q, refused, &mut args).await?;
        clauses.push(arm.condition().into());
        if let Some(anchor) = anchor {
            let mut param = |p: elapsed::Param| match p {
                elapsed::Param::Int(i) => args.push(i),
                elapsed::Param::Text(t) => args.push(t),
            };
            clauses.push(arm.after(anchor, desc, now, &mut param));
        }
        let limit = limit.map_or(String::new(), |l| format!(" LIMIT {l}"));
        arms.push(format!(
            "SELECT {} FROM tasks WHERE {}{}{limit}",
            columns(arm).into(),
            clauses.join(" AND "),
            arm.order(desc)
        ));
    }
    let sql = elapsed::union(&arms[0], &arms[1]);
    Ok(c.query(&sql, &args.refs()).await?)
}

/// How many rows `q` matches, ignoring its offset and limit.
pub async fn count(c: &impl GenericClient, q: &ListQuery) -> PgResult<u64> {
    let mut refused = HashSet::new();
    loop {
        let (filter, _, args) = list_sql(c, q, &refused).await?;
        let sql = format!("SELECT count(*) FROM tasks{filter}");
        match c.query_one(&sql, &args.refs()).await {
            Ok(r) => return Ok(uint(r.try_get(0)?)),
            Err(e) if regex_refused(&e) && find_refused(c, q, &mut refused).await? => {}
            Err(e) => return Err(e.into()),
        }
    }
}

pub async fn row_by_id(c: &impl GenericClient, id: &str) -> PgResult<Option<TaskRow>> {
    let found = c
        .query_opt(
            &format!("SELECT {ROW_COLUMNS} FROM tasks WHERE id = $1"),
            &[&id],
        )
        .await?;
    let rows = found.iter().map(row).collect::<PgResult<Vec<_>>>()?;
    Ok(with_holds(c, rows).await?.pop())
}

/// Every open hold, oldest first, with its task's id. Ties by id and phase
/// in byte order, as in the embedded store.
pub async fn waiting(
    c: &impl GenericClient,
    offset: u64,
    limit: Option<u64>,
) -> PgResult<Vec<(String, Hold)>> {
    // LIMIT NULL is no limit.
    let limit: Option<i64> = limit.map(int);
    c.query(
        "SELECT h.kind, h.phase, h.since, h.reason, h.review, h.escalation, t.id FROM holds h \
         JOIN tasks t ON t.ord = h.task \
         ORDER BY h.since, t.id COLLATE \"C\", h.phase COLLATE \"C\" LIMIT $1 OFFSET $2",
        &[&limit, &int(offset)],
    )
    .await?
    .iter()
    .map(|r| Ok((r.try_get(6)?, hold(r)?)))
    .collect()
}

/// An event from its stored columns.
fn event(seq: i64, at: &str, task: Option<String>, body: &str) -> PgResult<Event> {
    let kind: EventKind = serde_json::from_str(body)?;
    Ok(Event {
        seq: uint(seq),
        at: parse_ts(at)?,
        task,
        kind,
    })
}

/// Events after `seq`, in order, at most `limit`.
pub async fn events_after(c: &impl GenericClient, seq: u64, limit: u64) -> PgResult<Vec<Event>> {
    c.query(
        "SELECT e.seq, e.at, t.id, e.body FROM events e LEFT JOIN tasks t ON t.ord = e.task \
         WHERE e.seq > $1 ORDER BY e.seq LIMIT $2",
        &[&int(seq), &int(limit)],
    )
    .await?
    .iter()
    .map(|r| event(r.try_get(0)?, r.try_get(1)?, r.try_get(2)?, r.try_get(3)?))
    .collect()
}

/// The run-level events (pause, resume, run budget raises), in order.
pub async fn run_events(c: &impl GenericClient) -> PgResult<Vec<Event>> {
    c.query(
        "SELECT seq, at, body FROM events WHERE task IS NULL ORDER BY seq",
        &[],
    )
    .await?
    .iter()
    .map(|r| event(r.try_get(0)?, r.try_get(1)?, None, r.try_get(2)?))
    .collect()
}

/// Tasks folded from their events: `rows` are (ord, id, seq, at, body),
/// each task's together and in seq order. A task starts at its submission;
/// one with no submission among its events is left out.
fn fold_rows(rows: &[Row], phases: &[String]) -> PgResult<Vec<(TaskNo, Task)>> {
    let mut out = Vec::new();
    let mut current: Option<(TaskNo, Option<Task>)> = None;
    for r in rows {
        let ord: TaskNo = r.try_get(0)?;
        let id: String = r.try_get(1)?;
        if current.as_ref().is_none_or(|(o, _)| *o != ord) {
            if let Some((o, Some(t))) = current.take() {
                out.push((o, t));
            }
            current = Some((ord, None));
        }
        let ev = event(r.try_get(2)?, r.try_get(3)?, Some(id), r.try_get(4)?)?;
        if let Some((_, task)) = &mut current {
            match task {
                Some(t) => {
                    if let Err(e) = t.apply(&ev) {
                        tracing::warn!(task = %t.id, "stored event {} does not apply: {e}", ev.seq);
                    }
                }
                None => *task = Task::from_submitted(&ev, phases),
            }
        }
    }
    if let Some((o, Some(t))) = current {
        out.push((o, t));
    }
    Ok(out)
}

/// The tasks `condition` (on `t`, the tasks) picks, folded from their
/// events (those `events` keeps, a condition on `e`, or all), in submission
/// order: one statement, so one snapshot.
///
/// Each task's events are read through the `(task, seq)` index, task by
/// task: `OFFSET 0` keeps the planner from turning the lateral read into a
/// join over the whole events table, which it chose while a growing run's
/// statistics were behind (9 ms a claim instead of under 1 ms).
async fn fold_where(
    c: &impl GenericClient,
    condition: &str,
    events: Option<&str>,
    params: &[&(dyn ToSql + Sync)],
    phases: &[String],
) -> PgResult<Vec<(TaskNo, Task)>> {
    let events = events.map(|e| format!(" AND {e}")).unwrap_or_default();
    let rows = c
        .query(
            &format!(
                "SELECT t.ord, t.id, e.seq, e.at, e.body FROM tasks t \
                 CROSS JOIN LATERAL (SELECT e.seq, e.at, e.body FROM events e \
                     WHERE e.task = t.ord{events} ORDER BY e.seq OFFSET 0) e \
                 WHERE {condition} ORDER BY t.ord, e.seq"
            ),
            params,
        )
        .await?;
    fold_rows(&rows, phases)
}

/// A task rebuilt from its first event, then every later event of it.
#[cfg(test)]
pub async fn fold(
    c: &impl GenericClient,
    ord: TaskNo,
    phases: &[String],
) -> PgResult<Option<Task>> {
    fold_before(c, ord, phases, u64::MAX).await
}

/// A task folded from its events before seq `before`; `None` when it did
/// not exist then.
#[cfg(test)]
pub async fn fold_before(
    c: &impl GenericClient,
    ord: TaskNo,
    phases: &[String],
    before: u64,
) -> PgResult<Option<Task>> {
    let found = fold_where(
        c,
        "t.ord = $1",
        Some("e.seq < $2"),
        &[&ord, &int(before)],
        phases,
    )
    .await?;
    Ok(found.into_iter().next().map(|(_, t)| t))
}

#[cfg(test)]
pub async fn ord_of(c: &impl GenericClient, id: &str) -> PgResult<Option<TaskNo>> {
    let row = c
        .query_opt("SELECT ord FROM tasks WHERE id = $1", &[&id])
        .await?;
    Ok(row.map(|r| r.try_get(0)).transpose()?)
}

pub async fn task(
    c: &impl GenericClient,
    id: &str,
    phases: &[String],
) -> PgResult<Option<(TaskNo, Task)>> {
    let found = fold_where(c, "t.id = $1", None, &[&id], phases).await?;
    Ok(found.into_iter().next())
}

pub async fn task_before(
    c: &impl GenericClient,
    id: &str,
    seq: u64,
    phases: &[String],
) -> PgResult<Option<Task>> {
    let found = fold_where(
        c,
        "t.id = $1",
        Some("e.seq < $2"),
        &[&id, &int(seq)],
        phases,
    )
    .await?;
    Ok(found.into_iter().next().map(|(_, t)| t))
}

/// The tasks with these ords, folded, in submission order.
pub async fn fold_ords(
    c: &impl GenericClient,
    ords: &[TaskNo],
    phases: &[String],
) -> PgResult<Vec<(TaskNo, Task)>> {
    fold_where(c, "t.ord = ANY($1)", None, &[&ords], phases).await
}

/// Tasks neither final nor pending: what the engine holds in memory.
#[cfg(test)]
pub async fn unfinished(
    c: &impl GenericClient,
    phases: &[String],
) -> PgResult<Vec<(TaskNo, Task)>> {
    fold_where(
        c,
        "t.state IN ('running', 'retrying', 'awaiting_review', 'blocked')",
        None,
        &[],
        phases,
    )
    .await
}

/// Pending tasks after `ord`, in submission order.
#[cfg(test)]
pub async fn pending_after(
    c: &impl GenericClient,
    ord: TaskNo,
    limit: u64,
    phases: &[String],
) -> PgResult<Vec<(TaskNo, Task)>> {
    fold_where(
        c,
        "t.ord IN (SELECT ord FROM tasks WHERE state = 'pending' AND ord > $1 \
         ORDER BY ord LIMIT $2)",
        None,
        &[&ord, &int(limit)],
        phases,
    )
    .await
}

/// Which of `ids` the store has, in the order given.
pub async fn existing(c: &impl GenericClient, ids: &[String]) -> PgResult<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let found: HashSet<String> = c
        .query("SELECT id FROM tasks WHERE id = ANY($1)", &[&ids])
        .await?
        .iter()
        .map(|r| r.try_get(0))
        .collect::<Result<_, _>>()?;
    Ok(ids
        .iter()
        .filter(|id| found.contains(*id))
        .cloned()
        .collect())
}

/// Every task, folded in one pass over the events of one statement (so
/// one snapshot), with the seq they reflect: for views that still take the
/// whole run at once.
pub async fn all_tasks(c: &impl GenericClient, phases: &[String]) -> PgResult<(Vec<Task>, u64)> {
    // One row at least, for the seq, even with no event.
    let rows = c
        .query_raw(
            "SELECT x.top, x.recorded, e.task, t.id, e.seq, e.at, e.body \
             FROM (SELECT (SELECT max(seq) FROM events) AS top, \
                          (SELECT value FROM meta WHERE key = 'last_seq') AS recorded) x \
             LEFT JOIN (events e JOIN tasks t ON t.ord = e.task) ON true \
             ORDER BY e.seq",
            std::iter::empty::<&(dyn ToSql + Sync)>(),
        )
        .await?;
    pin_mut!(rows);
    let mut seq = 0;
    let mut tasks: BTreeMap<TaskNo, Option<Task>> = BTreeMap::new();
    while let Some(r) = rows.try_next().await? {
        seq = highest(r.try_get(0)?, r.try_get(1)?);
        let Some(ord) = r.try_get::<_, Option<TaskNo>>(2)? else {
            continue;
        };
        let ev = event(r.try_get(4)?, r.try_get(5)?, r.try_get(3)?, r.try_get(6)?)?;
        match tasks.entry(ord).or_default() {
            Some(t) => {
                let _ = t.apply(&ev);
            }
            slot @ None => *slot = Task::from_submitted(&ev, phases),
        }
    }
    Ok((tasks.into_values().flatten().collect(), seq))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::event::{Actor, ReviewReason};
    use crate::filter::Filter;
    use crate::store::postgres::test_db;
    use crate::store::sqlite::read as lite;

    /// A timestamp `minutes` before the tests started, as stored.
    fn ago(minutes: i64) -> String {
        static NOW: std::sync::LazyLock<Timestamp> = std::sync::LazyLock::new(Timestamp::now);
        ts(*NOW - jiff::SignedDuration::from_mins(minutes))
    }

    /// A timestamp in the spring of 2024, `minutes` in.
    fn at(minutes: i64) -> String {
        let base: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        ts(base + jiff::SignedDuration::from_mins(minutes))
    }

    /// A text as an SQL literal (both databases read `''` as a quote and a
    /// backslash as itself).
    fn lit(s: &str) -> String {
        format!("'{}'", s.replace('\'', "''"))
    }

    fn opt(s: Option<&str>) -> String {
        s.map_or("NULL".into(), lit)
    }

    fn body(kind: &EventKind) -> String {
        lit(&serde_json::to_string(kind).unwrap())
    }

    fn started(phase: &str, agent: &str) -> EventKind {
        EventKind::PhaseStarted {
            phase: phase.into(),
            attempt: 1,
            agent: agent.into(),
            model: None,
            feedback: None,
            route: None,
            role: None,
        }
    }

    /// The same run in SQL both databases take: nine tasks in every state,
    /// with ties, holds, odd ids, events and run-level events.
    fn fixture() -> String {
        struct T {
            id: &'static str,
            state: &'static str,
            phase: Option<&'static str>,
            done: i64,
            attempts: i64,
            tokens: i64,
            cost: f64,
            waiting: Option<String>,
            finished: Option<i64>,
            reason: Option<&'static str>,
            agent: Option<&'static str>,
            model: Option<&'static str>,
        }
        let t = |id, state, phase| T {
            id,
            state,
            phase,
            done: 0,
            attempts: 0,
            tokens: 0,
            cost: 0.0,
            waiting: None,
            finished: None,
            reason: None,
            agent: None,
            model: None,
        };
        let tasks = [
            T {
                done: 2,
                attempts: 2,
                tokens: 500,
                cost: 0.1,
                finished: Some(300),
                reason: Some("all good"),
                agent: Some("coder"),
                ..t("DEV-1", "completed", None)
            },
            T {
                done: 1,
                attempts: 1,
                tokens: 1500,
                cost: 0.5,
                waiting: Some(ago(10)),
                agent: Some("writer"),
                model: Some("m-large"),
                ..t("DEV-2", "awaiting_review", Some("review"))
            },
            T {
                attempts: 3,
                tokens: 1500,
                cost: 0.5,
                finished: Some(100),
                reason: Some("timeout after 3 tries"),
                agent: Some("coder"),
                model: Some("m-small"),
                ..t("dev-3", "failed", None)
            },
            T {
                attempts: 1,
                agent: Some("coder"),
                ..t("OPS_1", "running", Some("draft"))
            },
            t("OPS%2", "pending", None),
            T {
                tokens: 20,
                ..t("x\\y_z", "pending", None)
            },
            T {
                attempts: 1,
                tokens: 90,
                cost: 0.25,
                waiting: Some(ago(120)),
                agent: Some("coder"),
                ..t("blocked-7", "blocked", Some("draft"))
            },
            T {
                done: 1,
                attempts: 1,
                tokens: 90,
                cost: 0.25,
                finished: Some(900),
                reason: Some("cancelled by operator"),
                ..t("Review-8", "cancelled", None)
            },
            T {
                attempts: 2,
                tokens: 7,
                agent: Some("writer"),
                ..t("t10", "retrying", Some("draft"))
            },
        ];
        let mut sql = String::from(
            r#"INSERT INTO meta VALUES ('run', '{"pipeline":"p","phases":["draft","review"]}');"#,
        );
        let mut seq = 0;
        for (i, x) in tasks.iter().enumerate() {
            let ord = i as i64 + 1;
            let state = TaskState::parse(x.state).unwrap();
            let pos = match x.phase {
                Some("draft") => 0,
                Some("review") => 1,
                _ => 4294967295i64,
            };
            let holds = match x.id {
                "DEV-2" => 1,
                "blocked-7" => 2,
                _ => 0,
            };
            seq += 1;
            let submitted = seq;
            let input = serde_json::json!({ "n": ord });
            sql += &format!(
                "INSERT INTO events VALUES ({seq}, {ord}, {}, 'task_submitted', {});",
                lit(&at(ord * 7)),
                body(&EventKind::TaskSubmitted { input })
            );
            if x.attempts > 0 {
                seq += 1;
                sql += &format!(
                    "INSERT INTO events VALUES ({seq}, {ord}, {}, 'phase_started', {});",
                    lit(&at(ord * 7 + 1)),
                    body(&started("draft", x.agent.unwrap_or("coder")))
                );
            }
            if ord == 4 {
                seq += 1;
                sql += &format!(
                    "INSERT INTO events VALUES ({seq}, NULL, {}, 'run_paused', {});",
                    lit(&at(40)),
                    body(&EventKind::RunPaused {
                        by: Actor::engine()
                    })
                );
            }
            sql += &format!(
                "INSERT INTO tasks(ord, id, state, phase, phases_done, phases_total, attempts, \
                 tokens, cost_usd, cost_unknown, holds, waiting_since, created_at, updated_at, \
                 finished_at, finish_reason, seq, attention, phase_pos, agent, model, took_ns) \
                 VALUES ({ord}, {}, {}, {}, {}, 2, {}, {}, {}, 0, {holds}, {}, {}, {}, {}, {}, {}, \
                 {}, {pos}, {}, {}, {});",
                lit(x.id),
                lit(x.state),
                opt(x.phase),
                x.done,
                x.attempts,
                x.tokens,
                x.cost,
                opt(x.waiting.as_deref()),
                lit(&at(ord * 7)),
                lit(&at(1000 - ord * 13)),
                opt(x.finished.map(|m| at(ord * 7 + m)).as_deref()),
                opt(x.reason),
                if x.attempts > 0 {
                    submitted + 1
                } else {
                    submitted
                },
                state.attention(),
                opt(x.agent),
                opt(x.model),
                x.finished
                    .map_or("NULL".into(), |m| (m * 60_000_000_000).to_string()),
            );
        }
        let review = serde_json::to_string(&ReviewReason::Always).unwrap();
        sql += &format!(
            "INSERT INTO holds VALUES (2, 0, 'review', 'review', {}, 'please check the draft', {}, NULL);",
            lit(&ago(10)),
            lit(&review)
        );
        sql += &format!(
            "INSERT INTO holds VALUES (7, 0, 'blocked', 'draft', {}, 'needs credentials', NULL, NULL);",
            lit(&ago(120))
        );
        sql += &format!(
            "INSERT INTO holds VALUES (7, 1, 'review', 'draft', {}, 'a second look', NULL, NULL);",
            lit(&ago(10))
        );
        sql
    }

    /// The fixture in the embedded store.
    fn sqlite() -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open_in_memory().unwrap();
        crate::store::sqlite::schema::configure(&conn, false).unwrap();
        crate::store::sqlite::schema::migrate(&mut conn).unwrap();
        conn.execute_batch(&fixture()).unwrap();
        conn.execute_batch("INSERT INTO task_ids(rowid, id) SELECT ord, id FROM tasks")
            .unwrap();
        conn
    }

    /// The fixture in a fresh schema on the test server.
    async fn postgres(test: &str) -> Option<test_db::TestDb> {
        let db = test_db::connect(test).await?;
        db.client.batch_execute(&fixture()).await.unwrap();
        Some(db)
    }

    fn ids(rows: &[TaskRow]) -> Vec<String> {
        rows.iter().map(|r| r.id.clone()).collect()
    }

    /// Every page of `q` by `after`, `page` rows at a time.
    async fn pages(c: &impl GenericClient, q: &ListQuery, page: u64) -> Vec<String> {
        let mut q = ListQuery {
            limit: Some(page),
            ..q.clone()
        };
        let mut out = Vec::new();
        loop {
            let rows = list(c, &q).await.unwrap();
            out.extend(ids(&rows));
            match rows.last() {
                Some(last) if rows.len() as u64 == page => q.after = Some(last.id.clone()),
                _ => return out,
            }
        }
    }

    #[tokio::test]
    async fn list_and_count_answer_as_the_embedded_store_does() {
        let Some(db) = postgres("list").await else {
            return;
        };
        let c = &db.client;
        let lite = sqlite();
        for sort in Sort::ALL {
            for reverse in [false, true] {
                let q = ListQuery {
                    sort,
                    reverse,
                    ..ListQuery::default()
                };
                let want = lite::list(&lite, &q).unwrap();
                let got = list(c, &q).await.unwrap();
                assert_eq!(got, want, "{sort:?} reverse {reverse}");
                assert_eq!(got.len(), 9);
                for page in [1, 2, 4] {
                    assert_eq!(pages(c, &q, page).await, ids(&want), "{sort:?} by {page}");
                }
                let window = ListQuery {
                    offset: 2,
                    limit: Some(3),
                    ..q.clone()
                };
                assert_eq!(ids(&list(c, &window).await.unwrap()), ids(&want[2..5]));
                let after_last = ListQuery {
                    after: Some(want[8].id.clone()),
                    ..q.clone()
                };
                assert!(list(c, &after_last).await.unwrap().is_empty());
            }
        }
        let missing = ListQuery {
            after: Some("nobody".into()),
            ..ListQuery::default()
        };
        assert!(list(c, &missing).await.unwrap().is_empty());
        assert_eq!(count(c, &missing).await.unwrap(), 0);

        let mut queries = vec![
            ListQuery {
                state: Some(TaskState::Pending),
                ..ListQuery::default()
            },
            ListQuery {
                phase: Some("draft".into()),
                sort: Sort::Tokens,
                ..ListQuery::default()
            },
            ListQuery {
                finished_since: Some(at(200).parse().unwrap()),
                ..ListQuery::default()
            },
        ];
        for text in [
            "review", "REV", "ops", "Dev", "%", "_", "x\\y", "_z", "dr", "t1", "zzz",
        ] {
            queries.push(ListQuery {
                text: Some(text.into()),
                ..ListQuery::default()
            });
        }
        for filter in [
            "state:running",
            "!state:running",
            "phase:draft",
            "!phase:draft",
            "agent:writer",
            "model:m-large",
            "!model:m-large",
            "id:DEV-2",
            "id:DEV*",
            "id:OPS%*",
            "id:OPS_*",
            "id:x\\y_*",
            "!id:dev*",
            "cost>0.2",
            "cost<=0.25",
            "tokens>=1500",
            "tokens=90",
            "attempts<2",
            "attempts>1.5",
            "waited>5m",
            "waited>1h",
            "waited<1h",
            "!waited>1h",
            "/dev/",
            "/^DEV-\\d$/",
            "/(?i)^dev/",
            "/\\bcheck\\b/",
            "/\\bcheck\\B/",
            "/credentials\\z/",
            "/[^a-z]7$/",
            "!/timeout/",
            "/operator$/ tokens=90",
            "review",
            "!review",
            "dr state:blocked",
        ] {
            queries.push(ListQuery {
                filter: Some(Filter::parse(filter).unwrap()),
                ..ListQuery::default()
            });
        }
        let picks = |f: &str| ListQuery {
            filter: Some(Filter::parse(f).unwrap()),
            ..ListQuery::default()
        };
        for (filter, want) in [
            ("/\\bcheck\\b/", &["DEV-2"][..]),
            ("/\\bche\\b/", &[]),
            ("id:x\\y_*", &["x\\y_z"]),
            ("id:OPS_*", &["OPS_1"]),
            ("waited>1h", &["blocked-7"]),
            ("tokens>=1500", &["DEV-2", "dev-3"]),
            ("agent:writer !state:retrying", &["DEV-2"]),
        ] {
            assert_eq!(
                ids(&list(c, &picks(filter)).await.unwrap()),
                want,
                "{filter}"
            );
        }
        for q in &queries {
            let want = lite::list(&lite, q).unwrap();
            assert_eq!(list(c, q).await.unwrap(), want, "{q:?}");
            assert_eq!(count(c, q).await.unwrap(), want.len() as u64, "{q:?}");
        }
        db.drop().await;
    }

    #[tokio::test]
    async fn a_pattern_postgresql_refuses_matches_nothing() {
        let Some(db) = postgres("refused").await else {
            return;
        };
        let c = &db.client;
        let q = |f: &str| ListQuery {
            filter: Some(Filter::parse(f).unwrap()),
            ..ListQuery::default()
        };
        // The `regex` crate takes these; PostgreSQL does not.
        for pattern in ["/\\p{L}ev/", "/(?P<x>dev)/", "/dev(?i)x/"] {
            assert!(list(c, &q(pattern)).await.unwrap().is_empty(), "{pattern}");
            assert_eq!(count(c, &q(pattern)).await.unwrap(), 0);
            let negated = format!("!{pattern}");
            assert_eq!(count(c, &q(&negated)).await.unwrap(), 9);
            let both = format!("{pattern} /dev/");
            assert_eq!(count(c, &q(&both)).await.unwrap(), 0);
            let other = format!("!{pattern} /^dev/");
            assert_eq!(ids(&list(c, &q(&other)).await.unwrap()), ["dev-3"]);
        }
        db.drop().await;
    }

    #[tokio::test]
    async fn rows_holds_and_events_answer_as_the_embedded_store_does() {
        let Some(db) = postgres("rows").await else {
            return;
        };
        let c = &db.client;
        let lite = sqlite();
        for id in ["DEV-1", "DEV-2", "blocked-7", "x\\y_z", "nobody"] {
            assert_eq!(
                row_by_id(c, id).await.unwrap(),
                lite::row_by_id(&lite, id).unwrap()
            );
        }
        let blocked = row_by_id(c, "blocked-7").await.unwrap().unwrap();
        assert_eq!(blocked.holds.len(), 2);
        assert_eq!(blocked.phase_pos, Some(0));
        assert_eq!(holds_of(c, 7).await.unwrap(), blocked.holds);
        assert_eq!(holds_of(c, 1).await.unwrap(), []);
        assert_eq!(
            row_by_id(c, "OPS%2").await.unwrap().unwrap().phase_pos,
            None
        );

        let all = waiting(c, 0, None).await.unwrap();
        assert_eq!(all, lite::waiting(&lite, 0, None).unwrap());
        let order: Vec<&str> = all.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["blocked-7", "DEV-2", "blocked-7"]);
        assert_eq!(waiting(c, 1, Some(1)).await.unwrap(), all[1..2]);
        assert_eq!(waiting(c, 0, Some(0)).await.unwrap(), []);

        let events = events_after(c, 0, 100).await.unwrap();
        assert_eq!(events, lite::events_after(&lite, 0, 100).unwrap());
        assert_eq!(events.len(), 17);
        assert_eq!(events_after(c, 3, 4).await.unwrap(), events[3..7]);
        assert_eq!(events_after(c, 17, 4).await.unwrap(), []);
        let paused = run_events(c).await.unwrap();
        assert_eq!(paused, lite::run_events(&lite).unwrap());
        assert_eq!(paused.len(), 1);
        assert_eq!(paused[0].task, None);

        assert_eq!(last_seq(c).await.unwrap(), 17);
        assert_eq!(last_ord(c).await.unwrap(), 9);
        c.batch_execute("INSERT INTO meta VALUES ('last_seq', '40')")
            .await
            .unwrap();
        assert_eq!(last_seq(c).await.unwrap(), 40);
        assert_eq!(
            meta(c).await.unwrap().unwrap().phases,
            ["draft".to_string(), "review".to_string()]
        );
        db.drop().await;
    }

    #[tokio::test]
    async fn tasks_fold_as_the_embedded_store_folds_them() {
        let Some(db) = postgres("fold").await else {
            return;
        };
        let c = &db.client;
        let lite = sqlite();
        let phases = ["draft".to_string(), "review".to_string()];
        for ord in 1..=10 {
            let want = lite::fold(&lite, ord, &phases).unwrap();
            assert_eq!(fold(c, ord, &phases).await.unwrap(), want, "{ord}");
        }
        // OPS_1: submitted (seq 7), started (8).
        let ops = fold(c, 4, &phases).await.unwrap().unwrap();
        assert_eq!((ops.state, ops.seq), (TaskState::Running, 8));
        let before = fold_before(c, 4, &phases, 8).await.unwrap().unwrap();
        assert_eq!((before.state, before.seq), (TaskState::Pending, 7));
        assert_eq!(fold_before(c, 4, &phases, 7).await.unwrap(), None);
        assert_eq!(
            task_before(c, "OPS_1", 8, &phases).await.unwrap(),
            Some(before)
        );
        assert_eq!(
            task(c, "OPS_1", &phases).await.unwrap(),
            lite::task(&lite, "OPS_1", &phases).unwrap()
        );
        assert_eq!(task(c, "nobody", &phases).await.unwrap(), None);
        assert_eq!(ord_of(c, "OPS_1").await.unwrap(), Some(4));
        assert_eq!(ord_of(c, "nobody").await.unwrap(), None);

        let busy = unfinished(c, &phases).await.unwrap();
        assert_eq!(busy, lite::unfinished(&lite, &phases).unwrap());
        let ords: Vec<TaskNo> = busy.iter().map(|(o, _)| *o).collect();
        assert_eq!(ords, [2, 4, 7, 9]);
        for (after, limit) in [(0, 10), (0, 1), (5, 10), (6, 10)] {
            assert_eq!(
                pending_after(c, after, limit, &phases).await.unwrap(),
                lite::pending_after(&lite, after, limit, &phases).unwrap()
            );
        }
        let ask = ["t10", "nobody", "DEV-1", "t10"].map(String::from);
        assert_eq!(
            existing(c, &ask).await.unwrap(),
            lite::existing(&lite, &ask).unwrap()
        );
        assert_eq!(existing(c, &[]).await.unwrap(), Vec::<String>::new());
        let (tasks, seq) = all_tasks(c, &phases).await.unwrap();
        assert_eq!(
            (tasks.clone(), seq),
            lite::all_tasks(&lite, &phases).unwrap()
        );
        assert_eq!(tasks.len(), 9);
        db.drop().await;
    }

    #[tokio::test]
    async fn an_empty_run_reads_as_empty() {
        let Some(db) = test_db::connect("empty").await else {
            return;
        };
        let c = &db.client;
        assert_eq!(meta(c).await.unwrap(), None);
        assert_eq!(last_seq(c).await.unwrap(), 0);
        assert_eq!(last_ord(c).await.unwrap(), 0);
        assert_eq!(totals(c).await.unwrap(), Totals::default());
        assert_eq!(all_tasks(c, &[]).await.unwrap(), (Vec::new(), 0));
        let q = ListQuery {
            text: Some("abc".into()),
            ..ListQuery::default()
        };
        assert_eq!(list(c, &q).await.unwrap(), []);
        db.drop().await;
    }

    #[tokio::test]
    async fn totals_read_back_from_their_keys() {
        let Some(db) = test_db::connect("totals").await else {
            return;
        };
        let c = &db.client;
        let figures = PhaseTotals {
            phase: "draft".into(),
            attempts: 3,
            succeeded: 2,
            failed: 1,
            tokens: 40,
            cost_usd: 0.5,
            cost_unknown: 1,
            duration_ms: 900,
        };
        let stmt = "INSERT INTO totals VALUES ($1, $2)";
        for (k, v) in [
            ("tasks", "4".to_string()),
            ("state.running", "3".into()),
            ("state.blocked", "1".into()),
            ("attempts", "5".into()),
            ("tokens", "1200".into()),
            ("cost_nano", "-7".into()),
            ("cost_unknown", "2".into()),
            ("holds", "1".into()),
            ("first_submitted_at", at(0)),
            ("last_change_at", at(5)),
            ("phase.0.figures", serde_json::to_string(&figures).unwrap()),
        ] {
            c.execute(stmt, &[&k, &v]).await.unwrap();
        }
        let t = totals(c).await.unwrap();
        assert_eq!(
            (
                t.tasks,
                t.attempts,
                t.tokens,
                t.cost_nano,
                t.cost_unknown,
                t.holds
            ),
            (4, 5, 1200, -7, 2, 1)
        );
        assert_eq!(t.count(TaskState::Running), 3);
        assert_eq!(t.count(TaskState::Blocked), 1);
        assert_eq!(t.first_submitted_at, Some(at(0).parse().unwrap()));
        assert_eq!(t.last_change_at, Some(at(5).parse().unwrap()));
        assert_eq!(t.phases, [figures]);
        db.drop().await;
    }

    /// The store hands these out as boxed futures that cross threads.
    #[allow(dead_code)]
    fn futures_are_send(c: &tokio_postgres::Client, tx: &tokio_postgres::Transaction<'_>) {
        fn send<T: Send>(_: T) {}
        let q = ListQuery::default();
        send(list(c, &q));
        send(count(tx, &q));
        send(row_by_id(c, "a"));
        send(waiting(c, 0, None));
        send(events_after(c, 0, 1));
        send(task(tx, "a", &[]));
        send(unfinished(c, &[]));
        send(all_tasks(c, &[]));
        send(totals(c));
        send(crate::store::postgres::stats::read(c));
        send(crate::store::postgres::cache::get(c, &[]));
        send(crate::store::postgres::cache::clear(
            tx,
            &Default::default(),
        ));
    }

    #[test]
    fn patterns_take_postgresql_words_for_boundaries() {
        assert_eq!(pg_pattern(r"\bcat\b"), r"\ycat\y");
        assert_eq!(pg_pattern(r"\Bx\z"), r"\Yx\Z");
        assert_eq!(pg_pattern(r"\\b"), r"\\b");
        assert_eq!(pg_pattern(r"[\b]\b"), r"[\b]\y");
        assert_eq!(pg_pattern(r"[]\b]\b"), r"[]\b]\y");
        assert_eq!(pg_pattern(r"[^]x][[:alpha:]\b]\b"), r"[^]x][[:alpha:]\b]\y");
        assert_eq!(pg_pattern(r"[a[b]\b]\b"), r"[a[b]\b]\y");
    }
}
