//! Where a run kept in PostgreSQL is: the server, the database and the
//! schema, from `--store postgres://…` or `BATON_STORE`.

use std::str::FromStr;

/// The schema a run lives in when the address names none.
pub const DEFAULT_SCHEMA: &str = "baton";

/// A run's place in PostgreSQL: how to connect, and the schema its tables
/// are in. Its `Display` never shows a password.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub schema: String,
}

impl PgTarget {
    /// Reads `postgres://user@host:port/db?schema=NAME` (or `postgresql://`).
    pub fn parse(text: &str) -> Result<PgTarget, String> {
        let (base, schema) = split_schema(text);
        let config = tokio_postgres::Config::from_str(&base)
            .map_err(|e| format!("the store address is not a PostgreSQL URL: {e}"))?;
        Ok(PgTarget {
            config,
            schema: schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string()),
        })
    }

    /// `host:port` (or the socket folder) the first host names, for messages.
    pub fn host_port(&self) -> String {
        use tokio_postgres::config::Host;
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => format!("{h}:{port}"),
            Some(Host::Unix(p)) => format!("{} (port {port})", p.display()),
            None => format!("localhost:{port}"),
        }
    }
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.config.get_user().unwrap_or("");
        let at = if user.is_empty() { "" } else { "@" };
        let db = self.config.get_dbname().unwrap_or("");
        write!(f, "postgres://{user}{at}{}/{db}", self.host_port())?;
        if self.schema != DEFAULT_SCHEMA {
            write!(f, "?schema={}", self.schema)?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Takes `schema=NAME` out of the address's query, which tokio-postgres
/// would refuse as unknown.
fn split_schema(text: &str) -> (String, Option<String>) {
    let Some((head, query)) = text.split_once('?') else {
        return (text.to_string(), None);
    };
    let mut schema = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("schema=") {
            Some(name) => {
                schema = Some(name.to_string());
                false
            }
            None => !kv.is_empty(),
        })
        .collect();
    if rest.is_empty() {
        (head.to_string(), schema)
    } else {
        (format!("{head}?{}", rest.join("&")), schema)
    }
}
