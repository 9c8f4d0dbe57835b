//! What a query on PostgreSQL can fail with, before it is worded for a
//! person (`StoreError::Postgres`, which names the store and never its
//! password).

/// A failed query, or a stored value this build cannot read.
#[derive(Debug)]
pub enum PgFail {
    Db(tokio_postgres::Error),
    /// A value in the database that does not parse (a state, a timestamp,
    /// an event's JSON): the text says which.
    Bad(String),
}

pub type PgResult<T> = Result<T, PgFail>;

impl From<tokio_postgres::Error> for PgFail {
    fn from(e: tokio_postgres::Error) -> PgFail {
        PgFail::Db(e)
    }
}

impl From<serde_json::Error> for PgFail {
    fn from(e: serde_json::Error) -> PgFail {
        PgFail::Bad(format!("stored JSON does not parse: {e}"))
    }
}

impl std::fmt::Display for PgFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PgFail::Db(e) => match e.as_db_error() {
                // The server's own words: "relation … does not exist" and the like.
                Some(db) => write!(f, "{}: {}", db.severity(), db.message()),
                None => match std::error::Error::source(e) {
                    Some(cause) => write!(f, "{e}: {cause}"),
                    None => write!(f, "{e}"),
                },
            },
            PgFail::Bad(why) => f.write_str(why),
        }
    }
}

impl PgFail {
    /// Whether the transaction lost to another one (a deadlock, a
    /// serialization failure) and can simply be run again.
    pub fn is_transient(&self) -> bool {
        let PgFail::Db(e) = self else {
            return false;
        };
        e.as_db_error()
            .is_some_and(|db| matches!(db.code().code(), "40P01" | "40001"))
    }

    /// Whether the connection, not the query, failed: worth retrying once
    /// the server answers again.
    pub fn is_connection(&self) -> bool {
        let PgFail::Db(e) = self else {
            return false;
        };
        if e.is_closed() {
            return true;
        }
        match e.as_db_error() {
            // Class 08 (connection exception), 57P01..03 (admin shutdown,
            // crash shutdown, cannot connect now).
            Some(db) => {
                let code = db.code().code();
                code.starts_with("08") || code.starts_with("57P")
            }
            None => std::error::Error::source(e)
                .is_some_and(|s| s.downcast_ref::<std::io::Error>().is_some()),
        }
    }
}
