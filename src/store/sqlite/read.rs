//! Queries on one connection. The writer's transactions and every reader
//! use these, so what a reader sees is what the engine committed.

use jiff::Timestamp;
use jiff::fmt::temporal::DateTimePrinter;
use rusqlite::{Connection, OptionalExtension, Row, params, params_from_iter};

use super::schema;
use crate::engine::TaskState;
use crate::engine::event::{Event, EventKind};
use crate::engine::state::HoldKind;
use crate::engine::task::{Hold, Task};
use crate::store::elapsed::{self, Arm};
use crate::store::model::{ListQuery, PhaseTotals, RunMeta, Sort, TaskNo, TaskRow, Totals};

const PRINTER: DateTimePrinter = DateTimePrinter::new().precision(Some(9));

/// A timestamp as stored: RFC 3339 with nine fraction digits, so that text
/// order is time order.
pub fn ts(t: Timestamp) -> String {
    PRINTER.timestamp_to_string(&t)
}

pub fn parse_ts(s: &str) -> rusqlite::Result<Timestamp> {
    s.parse().map_err(|e: jiff::Error| bad_text(e.to_string()))
}

fn bad_text(why: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, why.into())
}

pub fn json_err(e: serde_json::Error) -> rusqlite::Error {
    bad_text(e.to_string())
}

pub fn meta(conn: &Connection) -> rusqlite::Result<Option<RunMeta>> {
    let text: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'run'", [], |r| r.get(0))
        .optional()?;
    text.map(|t| serde_json::from_str(&t).map_err(json_err))
        .transpose()
}

/// The highest seq committed: the last event's, or for a converted folder
/// with no event since, the seq its conversion recorded (every task row's
/// seq is one of those; reading them all would cost the size of the run).
pub fn last_seq(conn: &Connection) -> rusqlite::Result<u64> {
    let from_events: Option<i64> =
        conn.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    let recorded: Option<String> = conn
        .query_row("SELECT value FROM meta WHERE key = 'last_seq'", [], |r| {
            r.get(0)
        })
        .optional()?;
    let recorded = recorded.and_then(|s| s.parse::<i64>().ok());
    Ok([from_events, recorded]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(0)
        .max(0) as u64)
}

pub fn last_ord(conn: &Connection) -> rusqlite::Result<TaskNo> {
    let n: Option<i64> = conn.query_row("SELECT max(ord) FROM tasks", [], |r| r.get(0))?;
    Ok(n.unwrap_or(0))
}

pub fn totals(conn: &Connection) -> rusqlite::Result<Totals> {
    let mut t = Totals::default();
    let mut stmt = conn.prepare_cached("SELECT key, value FROM totals")?;
    let mut rows = stmt.query([])?;
    while let Some(r) = rows.next()? {
        let key: String = r.get(0)?;
        let value = r.get_ref(1)?;
        let int = || value.as_i64().unwrap_or(0);
        let uint = || int().max(0) as u64;
        match key.as_str() {
            "tasks" => t.tasks = uint(),
            "attempts" => t.attempts = uint(),
            "tokens" => t.tokens = uint(),
            "cost_nano" => t.cost_nano = int(),
            "cost_unknown" => t.cost_unknown = uint(),
            "holds" => t.holds = uint(),
            "first_submitted_at" => {
                t.first_submitted_at = value.as_str().ok().and_then(|s| s.parse().ok())
            }
            "last_change_at" => t.last_change_at = value.as_str().ok().and_then(|s| s.parse().ok()),
            k => {
                if let Some(state) = k.strip_prefix("state.").and_then(TaskState::parse) {
                    let i = TaskState::ALL.iter().position(|s| *s == state).unwrap_or(0);
                    t.states[i] = uint();
                } else if let Some(rest) = k.strip_prefix("phase.")
                    && let Some((order, json)) = rest.split_once('.')
                    && let Ok(order) = order.parse::<usize>()
                    && json == "figures"
                {
                    let p: PhaseTotals = value
                        .as_str()
                        .ok()
                        .and_then(|s| serde_json::from_str(s).ok())
                        .unwrap_or_default();
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

fn row(r: &Row<'_>) -> rusqlite::Result<(TaskRow, i64)> {
    let state: String = r.get(2)?;
    let state = TaskState::parse(&state)
        .ok_or_else(|| bad_text(format!("unknown task state {state:?}")))?;
    let opt_ts = |i: usize| -> rusqlite::Result<Option<Timestamp>> {
        r.get::<_, Option<String>>(i)?
            .map(|s| parse_ts(&s))
            .transpose()
    };
    Ok((
        TaskRow {
            ord: r.get(0)?,
            id: r.get(1)?,
            state,
            phase: r.get(3)?,
            phase_pos: r.get(16)?,
            agent: r.get(17)?,
            model: r.get(18)?,
            phases_done: r.get(4)?,
            phases_total: r.get(5)?,
            attempts: r.get(6)?,
            tokens: r.get::<_, i64>(7)?.max(0) as u64,
            cost_usd: r.get(8)?,
            cost_unknown: r.get(9)?,
            created_at: parse_ts(&r.get::<_, String>(11)?)?,
            updated_at: parse_ts(&r.get::<_, String>(12)?)?,
            finished_at: opt_ts(13)?,
            finish_reason: r.get(14)?,
            holds: Vec::new(),
            seq: r.get::<_, i64>(15)?.max(0) as u64,
        },
        r.get(10)?,
    ))
}

/// Fills in the holds of rows that have any.
fn with_holds(conn: &Connection, rows: Vec<(TaskRow, i64)>) -> rusqlite::Result<Vec<TaskRow>> {
    rows.into_iter()
        .map(|(mut row, holds)| {
            if holds > 0 {
                row.holds = holds_of(conn, row.ord)?;
            }
            Ok(row)
        })
        .collect()
}

pub fn holds_of(conn: &Connection, ord: TaskNo) -> rusqlite::Result<Vec<Hold>> {
    let mut stmt = conn.prepare_cached(
        "SELECT kind, phase, since, reason, review, escalation FROM holds WHERE task = ?1 ORDER BY pos",
    )?;
    let rows = stmt.query_map([ord], hold)?;
    rows.collect()
}

fn hold(r: &Row<'_>) -> rusqlite::Result<Hold> {
    let kind: String = r.get(0)?;
    let kind = match kind.as_str() {
        "review" => HoldKind::Review,
        "blocked" => HoldKind::Blocked,
        other => return Err(bad_text(format!("unknown hold kind {other:?}"))),
    };
    let review: Option<String> = r.get(4)?;
    let escalation: Option<String> = r.get(5)?;
    Ok(Hold {
        kind,
        phase: r.get(1)?,
        since: parse_ts(&r.get::<_, String>(2)?)?,
        reason: r.get(3)?,
        review: review
            .map(|s| serde_json::from_str(&s).map_err(json_err))
            .transpose()?,
        escalation: escalation
            .map(|s| serde_json::from_str(&s).map_err(json_err))
            .transpose()?
            .unwrap_or_default(),
    })
}

/// The column or expression a sort orders by, and whether its natural
/// direction is descending. Every sort is an index scan; elapsed, which
/// depends on the time now, merges two (`list_elapsed`), and is this
/// expression only for counts and databases older than its indexes.
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
            "(julianday(coalesce(finished_at, 'now')) - julianday(created_at))",
            true,
        ),
    }
}

/// Tasks whose id, state or current phase contains `text`, ignoring ASCII
/// case, through indexes: the ids' trigram index (texts of three letters or
/// more; shorter ones read every id), and the states and phases whose names
/// contain it, by name.
fn text_clause(
    conn: &Connection,
    text: &str,
    args: &mut Vec<rusqlite::types::Value>,
) -> rusqlite::Result<String> {
    use rusqlite::types::Value;
    let needle = text.to_ascii_lowercase();
    let mut terms = Vec::new();
    if text.chars().count() >= 3 {
        // A phrase of the text's trigrams: the ids that contain it.
        args.push(Value::Text(format!("\"{}\"", text.replace('"', "\"\""))));
        terms.push(format!(
            "ord IN (SELECT rowid FROM task_ids WHERE task_ids MATCH ?{})",
            args.len()
        ));
    } else {
        let mut pattern = String::with_capacity(text.len() + 2);
        pattern.push('%');
        for c in text.chars() {
            if matches!(c, '%' | '_' | '\\') {
                pattern.push('\\');
            }
            pattern.push(c);
        }
        pattern.push('%');
        args.push(Value::Text(pattern));
        terms.push(format!("id LIKE ?{} ESCAPE '\\'", args.len()));
    }
    let states: Vec<String> = TaskState::ALL
        .iter()
        .filter(|s| s.as_str().contains(&needle))
        .map(|s| format!("'{}'", s.as_str()))
        .collect();
    if !states.is_empty() {
        terms.push(format!("state IN ({})", states.join(", ")));
    }
    let phases: Vec<String> = meta(conn)?
        .map(|m| m.phases)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p.to_ascii_lowercase().contains(&needle))
        .collect();
    if !phases.is_empty() {
        let mut marks = Vec::new();
        for p in phases {
            args.push(Value::Text(p));
            marks.push(format!("?{}", args.len()));
        }
        terms.push(format!("phase IN ({})", marks.join(", ")));
    }
    Ok(format!("({})", terms.join(" OR ")))
}

/// The filter language's terms as one WHERE condition: every term holds.
fn filter_clause(
    conn: &Connection,
    filter: &crate::filter::Filter,
    args: &mut Vec<rusqlite::types::Value>,
) -> rusqlite::Result<String> {
    use crate::filter::{Field, Number, Op, Test};
    use rusqlite::types::Value;
    let mut parts = Vec::new();
    for term in &filter.terms {
        let mut arg = |v: Value| {
            args.push(v);
            format!("?{}", args.len())
        };
        let clause = match &term.test {
            Test::Is { field, value } => {
                let column = match field {
                    Field::State => "state",
                    Field::Phase => "phase",
                    Field::Agent => "agent",
                    Field::Model => "model",
                    Field::Id => "id",
                };
                format!("{column} IS {}", arg(Value::Text(value.clone())))
            }
            Test::IdPrefix(prefix) => {
                // GLOB keeps the id index; its own wildcards are bracketed.
                let mut pattern = String::new();
                for c in prefix.chars() {
                    match c {
                        '*' | '?' | '[' => {
                            pattern.push('[');
                            pattern.push(c);
                            pattern.push(']');
                        }
                        c => pattern.push(c),
                    }
                }
                pattern.push('*');
                format!("id GLOB {}", arg(Value::Text(pattern)))
            }
            Test::Compare { number, op, value } => match number {
                Number::Cost => format!("cost_usd {} {}", op.sql(), arg(Value::Real(*value))),
                Number::Tokens => format!("tokens {} {}", op.sql(), arg(Value::Real(*value))),
                Number::Attempts => format!("attempts {} {}", op.sql(), arg(Value::Real(*value))),
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
                        arg(Value::Text(ts(at)))
                    )
                }
            },
            Test::Regex(pattern) => {
                let p = arg(Value::Text(pattern.clone()));
                format!(
                    "(regexp({p}, id) OR regexp({p}, coalesce(finish_reason, '')) \
                     OR EXISTS (SELECT 1 FROM holds h WHERE h.task = tasks.ord AND regexp({p}, h.reason)))"
                )
            }
            Test::Text(text) => text_clause(conn, text, args)?,
        };
        parts.push(if term.negated {
            format!("NOT coalesce({clause}, 0)")
        } else {
            clause
        });
    }
    Ok(format!("({})", parts.join(" AND ")))
}

/// The conditions of a list query's state, phase, text, filter and finish
/// time, with their parameters in `args`.
fn filter_clauses(
    conn: &Connection,
    q: &ListQuery,
    args: &mut Vec<rusqlite::types::Value>,
) -> rusqlite::Result<Vec<String>> {
    use rusqlite::types::Value;
    let mut clauses = Vec::new();
    if let Some(state) = q.state {
        args.push(Value::Text(state.as_str().into()));
        clauses.push(format!("state = ?{}", args.len()));
    }
    if let Some(phase) = &q.phase {
        args.push(Value::Text(phase.clone()));
        clauses.push(format!("phase = ?{}", args.len()));
    }
    if let Some(text) = q.text.as_deref().filter(|t| !t.is_empty()) {
        clauses.push(text_clause(conn, text, args)?);
    }
    if let Some(filter) = q.filter.as_ref().filter(|f| !f.is_empty()) {
        clauses.push(filter_clause(conn, filter, args)?);
    }
    if let Some(since) = q.finished_since {
        args.push(Value::Text(ts(since)));
        clauses.push(format!("finished_at >= ?{}", args.len()));
    }
    Ok(clauses)
}

/// The WHERE clause and ORDER BY of a list query, with its parameters.
fn list_sql(
    conn: &Connection,
    q: &ListQuery,
) -> rusqlite::Result<(String, String, Vec<rusqlite::types::Value>)> {
    use rusqlite::types::Value;
    let mut args: Vec<Value> = Vec::new();
    let mut clauses = filter_clauses(conn, q, &mut args)?;
    let (key, natural_desc) = sort_key(q.sort);
    let desc = natural_desc != q.reverse;
    if let Some(after) = &q.after {
        // Rows after `after` in the sort order; ties broken by ord.
        let anchor: Option<(Value, i64)> = conn
            .query_row(
                &format!("SELECT {key}, ord FROM tasks WHERE id = ?1"),
                [after],
                |r| Ok((r.get::<_, Value>(0)?, r.get(1)?)),
            )
            .optional()?;
        match anchor {
            Some((value, ord)) if key == "ord" => {
                let _ = value;
                args.push(Value::Integer(ord));
                let cmp = if desc { "<" } else { ">" };
                clauses.push(format!("ord {cmp} ?{}", args.len()));
            }
            Some((value, ord)) => {
                args.push(value);
                let v = args.len();
                args.push(Value::Integer(ord));
                let o = args.len();
                let cmp = if desc { "<" } else { ">" };
                clauses.push(format!(
                    "({key} {cmp} ?{v} OR ({key} IS ?{v} AND ord {cmp} ?{o}))"
                ));
            }
            None => clauses.push("0".into()),
        }
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

pub fn list(conn: &Connection, q: &ListQuery) -> rusqlite::Result<Vec<TaskRow>> {
    if q.sort == Sort::Elapsed && schema::version(conn)? >= schema::ELAPSED_VERSION {
        return list_elapsed(conn, q);
    }
    let (filter, order, args) = list_sql(conn, q)?;
    let limit = q.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
    let sql = format!(
        "SELECT {ROW_COLUMNS} FROM tasks{filter}{order} LIMIT {limit} OFFSET {}",
        q.offset.min(i64::MAX as u64)
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows: Vec<(TaskRow, i64)> = stmt
        .query_map(params_from_iter(args.iter()), row)?
        .collect::<rusqlite::Result<_>>()?;
    with_holds(conn, rows)
}

/// A list query sorted by elapsed time: the unfinished tasks' age index and
/// the finished tasks' time index read in order and merged (see
/// `store::elapsed`); an offset is skipped by the indexes' keys alone.
fn list_elapsed(conn: &Connection, q: &ListQuery) -> rusqlite::Result<Vec<TaskRow>> {
    let now = Timestamp::now();
    let desc = !q.reverse;
    let mut anchor = None;
    if let Some(after) = &q.after {
        let found = conn
            .query_row(
                "SELECT created_at, took_ns, ord FROM tasks WHERE id = ?1",
                [after],
                |r| place(r, 0, now),
            )
            .optional()?;
        match found {
            Some((_, p)) => anchor = Some(p),
            None => return Ok(Vec::new()),
        }
    }
    if q.offset > 0 {
        match skip_elapsed(conn, q, anchor, now)? {
            Some(p) => anchor = Some(p),
            None => return Ok(Vec::new()),
        }
    }
    let limit = q.limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
    let columns = format!("{ROW_COLUMNS}, created_at, took_ns, ord");
    let rows = both_arms(conn, q, anchor, now, &columns, limit, |r| {
        let (arm, p) = place(r, 19, now)?;
        Ok((arm, p, row(r)?))
    })?;
    let [a, b] = elapsed::split(rows, desc);
    let take = q.limit.map(|l| l.min(usize::MAX as u64) as usize);
    let rows = elapsed::merge(a, b, desc, 0, take)
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    with_holds(conn, rows)
}

/// A row's arm and place in the elapsed order, from its created_at, took_ns
/// and ord at `first` and the two columns after it.
fn place(r: &Row<'_>, first: usize, now: Timestamp) -> rusqlite::Result<(Arm, elapsed::Place)> {
    let ord = r.get(first + 2)?;
    if let Some(took) = r.get(first + 1)? {
        return Ok((Arm::Finished, elapsed::Place::finished(took, ord)));
    }
    let created = parse_ts(&r.get::<_, String>(first)?)?;
    Ok((
        Arm::Unfinished,
        elapsed::Place::new(created, None, ord, now),
    ))
}

/// Where the elapsed order stands `q.offset` rows after `anchor` (`None`:
/// it has fewer rows): the place of the last row skipped. Both arms' keys
/// are stepped through in order, as a merge would, and none is kept.
fn skip_elapsed(
    conn: &Connection,
    q: &ListQuery,
    anchor: Option<elapsed::Place>,
    now: Timestamp,
) -> rusqlite::Result<Option<elapsed::Place>> {
    let desc = !q.reverse;
    let limit = q.offset.min(i64::MAX as u64) as i64;
    let statement = |arm: Arm| -> rusqlite::Result<_> {
        let mut args = Vec::new();
        let sql = arm_sql(
            conn,
            q,
            arm,
            anchor,
            now,
            arm.key_columns(),
            limit,
            &mut args,
        )?;
        Ok((conn.prepare(&sql)?, args))
    };
    let (mut a, a_args) = statement(Arm::Unfinished)?;
    let (mut b, b_args) = statement(Arm::Finished)?;
    let mut a = a.query(params_from_iter(a_args.iter()))?;
    let mut b = b.query(params_from_iter(b_args.iter()))?;
    let next = |rows: &mut rusqlite::Rows<'_>| -> rusqlite::Result<Option<elapsed::Place>> {
        rows.next()?.map(|r| Ok(place(r, 0, now)?.1)).transpose()
    };
    let (mut head_a, mut head_b) = (next(&mut a)?, next(&mut b)?);
    let mut last = None;
    let mut left = q.offset;
    while left > 0 {
        let (from_a, rest) = match (head_a, head_b) {
            (None, None) => return Ok(None),
            (Some(_), None) => (true, true),
            (None, Some(_)) => (false, true),
            (Some(pa), Some(pb)) => ((pa > pb) == desc, false),
        };
        let (rows, head) = if from_a {
            (&mut a, &mut head_a)
        } else {
            (&mut b, &mut head_b)
        };
        if rest {
            // One arm is done: the rest are the other's next rows, stepped
            // over unread but for the last.
            for _ in 1..left - 1 {
                if rows.next()?.is_none() {
                    return Ok(None);
                }
            }
            return if left == 1 { Ok(*head) } else { next(rows) };
        }
        last = *head;
        *head = next(rows)?;
        left -= 1;
    }
    Ok(last)
}

/// One arm of a sort by elapsed time: `columns` of the rows `q` keeps in
/// it, after `anchor`, in the arm's order, at most `limit` (-1: all); its
/// parameters go to `args`.
#[allow(clippy::too_many_arguments)]
fn arm_sql(
    conn: &Connection,
    q: &ListQuery,
    arm: Arm,
    anchor: Option<elapsed::Place>,
    now: Timestamp,
    columns: &str,
    limit: i64,
    args: &mut Vec<rusqlite::types::Value>,
) -> rusqlite::Result<String> {
    use rusqlite::types::Value;
    let desc = !q.reverse;
    let mut clauses = filter_clauses(conn, q, args)?;
    clauses.push(arm.condition().into());
    if let Some(anchor) = anchor {
        let mut param = |p: elapsed::Param| {
            args.push(match p {
                elapsed::Param::Int(i) => Value::Integer(i),
                elapsed::Param::Text(t) => Value::Text(t),
            });
            format!("?{}", args.len())
        };
        clauses.push(arm.after(anchor, desc, now, &mut param));
    }
    Ok(format!(
        "SELECT {columns} FROM tasks WHERE {}{} LIMIT {limit}",
        clauses.join(" AND "),
        arm.order(desc)
    ))
}

/// Both arms of a sort by elapsed time, in one statement: `columns` of the
/// rows `q` keeps in each, after `anchor`, in the arm's order, at most
/// `limit` of each (-1: all).
fn both_arms<T>(
    conn: &Connection,
    q: &ListQuery,
    anchor: Option<elapsed::Place>,
    now: Timestamp,
    columns: &str,
    limit: i64,
    read: impl Fn(&Row<'_>) -> rusqlite::Result<T>,
) -> rusqlite::Result<Vec<T>> {
    let mut args = Vec::new();
    let mut arms = Vec::new();
    for arm in Arm::BOTH {
        arms.push(arm_sql(
            conn, q, arm, anchor, now, columns, limit, &mut args,
        )?);
    }
    let sql = elapsed::union(&arms[0], &arms[1]);
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params_from_iter(args.iter()), read)?;
    rows.collect()
}

pub fn count(conn: &Connection, q: &ListQuery) -> rusqlite::Result<u64> {
    let (filter, _, args) = list_sql(conn, q)?;
    let n: i64 = conn.query_row(
        &format!("SELECT count(*) FROM tasks{filter}"),
        params_from_iter(args.iter()),
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

pub fn row_by_id(conn: &Connection, id: &str) -> rusqlite::Result<Option<TaskRow>> {
    let found = conn
        .query_row(
            &format!("SELECT {ROW_COLUMNS} FROM tasks WHERE id = ?1"),
            [id],
            row,
        )
        .optional()?;
    Ok(with_holds(conn, found.into_iter().collect())?.pop())
}

/// Every open hold, oldest first, with its task's id.
pub fn waiting(
    conn: &Connection,
    offset: u64,
    limit: Option<u64>,
) -> rusqlite::Result<Vec<(String, Hold)>> {
    let limit = limit.map_or(-1, |l| l.min(i64::MAX as u64) as i64);
    let mut stmt = conn.prepare_cached(
        "SELECT h.kind, h.phase, h.since, h.reason, h.review, h.escalation, t.id FROM holds h \
         JOIN tasks t ON t.ord = h.task \
         ORDER BY h.since, t.id, h.phase LIMIT ?1 OFFSET ?2",
    )?;
    let rows = stmt.query_map(params![limit, offset.min(i64::MAX as u64) as i64], |r| {
        Ok((r.get::<_, String>(6)?, hold(r)?))
    })?;
    rows.collect()
}

/// Reads one stored event.
fn event(r: &Row<'_>) -> rusqlite::Result<Event> {
    let body: String = r.get(3)?;
    let kind: EventKind = serde_json::from_str(&body).map_err(json_err)?;
    Ok(Event {
        seq: r.get::<_, i64>(0)?.max(0) as u64,
        at: parse_ts(&r.get::<_, String>(1)?)?,
        task: r.get(2)?,
        kind,
    })
}

/// Events after `seq`, in order, at most `limit`.
pub fn events_after(conn: &Connection, seq: u64, limit: u64) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn.prepare_cached(
        "SELECT e.seq, e.at, t.id, e.body FROM events e LEFT JOIN tasks t ON t.ord = e.task \
         WHERE e.seq > ?1 ORDER BY e.seq LIMIT ?2",
    )?;
    let rows = stmt.query_map(
        params![
            seq.min(i64::MAX as u64) as i64,
            limit.min(i64::MAX as u64) as i64
        ],
        event,
    )?;
    rows.collect()
}

pub fn run_events(conn: &Connection) -> rusqlite::Result<Vec<Event>> {
    let mut stmt = conn
        .prepare_cached("SELECT seq, at, NULL, body FROM events WHERE task IS NULL ORDER BY seq")?;
    let rows = stmt.query_map([], event)?;
    rows.collect()
}

/// A task rebuilt from its row's base (converted folders) or its first
/// event, then every later event of it.
pub fn fold(conn: &Connection, ord: TaskNo, phases: &[String]) -> rusqlite::Result<Option<Task>> {
    fold_before(conn, ord, phases, u64::MAX)
}

/// A task folded from its events before seq `before`; `None` when it did
/// not exist then, or when a converted folder's base is already past it.
pub fn fold_before(
    conn: &Connection,
    ord: TaskNo,
    phases: &[String],
    before: u64,
) -> rusqlite::Result<Option<Task>> {
    let head: Option<(String, Option<String>, Option<i64>)> = conn
        .query_row(
            "SELECT id, base, base_seq FROM tasks WHERE ord = ?1",
            [ord],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .optional()?;
    let Some((id, base, base_seq)) = head else {
        return Ok(None);
    };
    let before = before.min(i64::MAX as u64) as i64;
    if base.is_some() && base_seq.unwrap_or(0) >= before {
        return Ok(None);
    }
    let mut task: Option<Task> = base
        .map(|b| serde_json::from_str(&b).map_err(json_err))
        .transpose()?;
    let mut stmt = conn.prepare_cached(
        "SELECT seq, at, NULL, body FROM events WHERE task = ?1 AND seq > ?2 AND seq < ?3 \
         ORDER BY seq",
    )?;
    let events = stmt.query_map(params![ord, base_seq.unwrap_or(0), before], event)?;
    for ev in events {
        let mut ev = ev?;
        ev.task = Some(id.clone());
        match &mut task {
            Some(t) => {
                if let Err(e) = t.apply(&ev) {
                    tracing::warn!(task = %id, "stored event {} does not apply: {e}", ev.seq);
                }
            }
            None => task = Task::from_submitted(&ev, phases),
        }
    }
    Ok(task)
}

pub fn ord_of(conn: &Connection, id: &str) -> rusqlite::Result<Option<TaskNo>> {
    conn.query_row("SELECT ord FROM tasks WHERE id = ?1", [id], |r| r.get(0))
        .optional()
}

pub fn task(
    conn: &Connection,
    id: &str,
    phases: &[String],
) -> rusqlite::Result<Option<(TaskNo, Task)>> {
    match ord_of(conn, id)? {
        Some(ord) => Ok(fold(conn, ord, phases)?.map(|t| (ord, t))),
        None => Ok(None),
    }
}

pub fn task_before(
    conn: &Connection,
    id: &str,
    seq: u64,
    phases: &[String],
) -> rusqlite::Result<Option<Task>> {
    match ord_of(conn, id)? {
        Some(ord) => fold_before(conn, ord, phases, seq),
        None => Ok(None),
    }
}

/// Tasks neither final nor pending: what the engine holds in memory.
pub fn unfinished(conn: &Connection, phases: &[String]) -> rusqlite::Result<Vec<(TaskNo, Task)>> {
    let mut stmt = conn.prepare(
        "SELECT ord FROM tasks WHERE state IN ('running', 'retrying', 'awaiting_review', 'blocked') ORDER BY ord",
    )?;
    let ords: Vec<TaskNo> = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    fold_all(conn, ords, phases)
}

/// Pending tasks after `ord`, in submission order.
pub fn pending_after(
    conn: &Connection,
    ord: TaskNo,
    limit: u64,
    phases: &[String],
) -> rusqlite::Result<Vec<(TaskNo, Task)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT ord FROM tasks WHERE state = 'pending' AND ord > ?1 ORDER BY ord LIMIT ?2",
    )?;
    let ords: Vec<TaskNo> = stmt
        .query_map(params![ord, limit.min(i64::MAX as u64) as i64], |r| {
            r.get(0)
        })?
        .collect::<rusqlite::Result<_>>()?;
    fold_all(conn, ords, phases)
}

/// Which of `ids` the store has.
pub fn existing(conn: &Connection, ids: &[String]) -> rusqlite::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached("SELECT 1 FROM tasks WHERE id = ?1")?;
    let mut out = Vec::new();
    for id in ids {
        if stmt.exists([id])? {
            out.push(id.clone());
        }
    }
    Ok(out)
}

fn fold_all(
    conn: &Connection,
    ords: Vec<TaskNo>,
    phases: &[String],
) -> rusqlite::Result<Vec<(TaskNo, Task)>> {
    let mut out = Vec::with_capacity(ords.len());
    for ord in ords {
        if let Some(t) = fold(conn, ord, phases)? {
            out.push((ord, t));
        }
    }
    Ok(out)
}

/// Every task, folded in one pass over the events inside one read
/// transaction, with the seq they reflect: for views that still take the
/// whole run at once.
pub fn all_tasks(conn: &Connection, phases: &[String]) -> rusqlite::Result<(Vec<Task>, u64)> {
    let tx = conn.unchecked_transaction()?;
    let seq = last_seq(&tx)?;
    let mut tasks: Vec<Option<Task>> = Vec::new();
    let mut index: std::collections::HashMap<TaskNo, (usize, String, u64)> =
        std::collections::HashMap::new();
    {
        let mut stmt = tx.prepare("SELECT ord, id, base, base_seq FROM tasks ORDER BY ord")?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ord: TaskNo = r.get(0)?;
            let id: String = r.get(1)?;
            let base: Option<String> = r.get(2)?;
            let base_seq: Option<i64> = r.get(3)?;
            let task = base
                .map(|b| serde_json::from_str::<Task>(&b).map_err(json_err))
                .transpose()?;
            index.insert(ord, (tasks.len(), id, base_seq.unwrap_or(0).max(0) as u64));
            tasks.push(task);
        }
    }
    {
        let mut stmt = tx.prepare(
            "SELECT seq, at, NULL, body, task FROM events WHERE task IS NOT NULL ORDER BY seq",
        )?;
        let mut rows = stmt.query([])?;
        while let Some(r) = rows.next()? {
            let ord: TaskNo = r.get(4)?;
            let Some((i, id, base_seq)) = index.get(&ord) else {
                continue;
            };
            let mut ev = event(r)?;
            if ev.seq <= *base_seq {
                continue;
            }
            ev.task = Some(id.clone());
            match &mut tasks[*i] {
                Some(t) => {
                    let _ = t.apply(&ev);
                }
                slot @ None => *slot = Task::from_submitted(&ev, phases),
            }
        }
    }
    tx.finish()?;
    Ok((tasks.into_iter().flatten().collect(), seq))
}
