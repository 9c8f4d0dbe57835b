//! Where a run kept in PostgreSQL is: the server, the database and the
//! schema, from `--store` or `BATON_STORE`.
//!
//! The address is read the way libpq reads one, since tokio-postgres reads
//! no environment and no files by itself: a `postgres://` (or
//! `postgresql://`) URL or `key=value` pairs; then a service's section in
//! the service files (`service=NAME` or `PGSERVICE`); then the `PG…`
//! variables; then the defaults (the OS user, a database of that name, the
//! local socket folder or `localhost`, port 5432). A password nobody gave is
//! looked up in `~/.pgpass` (or `PGPASSFILE`). On top of libpq's keys, baton
//! reads `schema=NAME`, the schema the run's tables are in (`baton` by
//! default).
//!
//! TLS is read as libpq reads it, `prefer` by default: `sslmode`, the
//! certificate files (`sslrootcert`, `sslcert`, `sslkey`, `sslcrl`,
//! `sslcrldir`) with their defaults under `~/.postgresql/`, and their
//! `PGSSL…` variables; see [`super::tls`], which makes the connections.
//!
//! A password is never shown: not by `Display` or `Debug`, and not in an
//! error, which quotes the address only through [`redact`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use tokio_postgres::config::Host;

use super::tls::{TLS_KEYS, TlsMode, TlsSettings};

/// The schema a run lives in when the address names none.
pub const DEFAULT_SCHEMA: &str = "baton";

/// What the server is told the connection is, when the address says nothing.
const DEFAULT_APPLICATION_NAME: &str = "baton";
/// How long one connection attempt may take, when the address says nothing.
const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const DEFAULT_PORT: u16 = 5432;
/// Where a local server's socket is on Debian and its kin; used when it
/// exists and the address names no host.
const DEFAULT_SOCKET_DIR: &str = "/var/run/postgresql";
/// The system's service file is here when `PGSYSCONFDIR` is not set.
const DEFAULT_SYSCONF_DIR: &str = "/etc/postgresql-common";
/// The longest identifier PostgreSQL keeps whole.
const MAX_IDENTIFIER_BYTES: usize = 63;

/// What a lookup in the environment looks like: `std::env::var` in
/// [`PgTarget::parse`], a table in tests.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A run's place in PostgreSQL: how to connect, how to speak TLS, and the
/// schema its tables are in. Its `Display` and `Debug` never show a
/// password.
#[derive(Clone)]
pub struct PgTarget {
    pub config: tokio_postgres::Config,
    pub tls: TlsSettings,
    pub schema: String,
}

/// The keys tokio-postgres reads, which are passed on to it.
const CONNECTION_KEYS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "sslnegotiation",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
];

/// The keys read here and not passed on.
const OWN_KEYS: &[&str] = &[
    "schema",
    "service",
    "gssencmode",
    "passfile",
    "fallback_application_name",
];

/// The variables that fill a key the address and the service leave out.
const ENV_KEYS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("user", "PGUSER"),
    ("password", "PGPASSWORD"),
    ("dbname", "PGDATABASE"),
    ("options", "PGOPTIONS"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("sslmode", "PGSSLMODE"),
    ("sslnegotiation", "PGSSLNEGOTIATION"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("sslcrl", "PGSSLCRL"),
    ("sslcrldir", "PGSSLCRLDIR"),
    ("sslsni", "PGSSLSNI"),
    ("sslcertmode", "PGSSLCERTMODE"),
    ("sslcompression", "PGSSLCOMPRESSION"),
    ("ssl_min_protocol_version", "PGSSLMINPROTOCOLVERSION"),
    ("ssl_max_protocol_version", "PGSSLMAXPROTOCOLVERSION"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("gssencmode", "PGGSSENCMODE"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
    ("passfile", "PGPASSFILE"),
];

impl PgTarget {
    /// Reads a store address (`postgres://user@host:port/db?schema=NAME`,
    /// `postgresql://…` or `host=… dbname=… schema=…`) and fills what it
    /// leaves out from the process's environment and the user's files, as
    /// libpq would.
    pub fn parse(text: &str) -> Result<PgTarget, String> {
        PgTarget::parse_with(text, &|name| std::env::var(name).ok())
    }

    /// [`PgTarget::parse`] with the environment read through `env`.
    pub fn parse_with(text: &str, env: EnvLookup<'_>) -> Result<PgTarget, String> {
        let env = |name: &str| env(name).filter(|v| !v.is_empty());
        let mut params = parse_address(text)?;
        let given_schema = params.remove("schema");

        // The service's section, then the environment, fill what the
        // address leaves out (libpq's order).
        if let Some(name) = params.remove("service").or_else(|| env("PGSERVICE")) {
            for (key, value) in service_params(&name, &env)? {
                params.entry(key).or_insert(value);
            }
        }
        for (key, var) in ENV_KEYS {
            if !params.contains_key(*key)
                && let Some(value) = env(var)
            {
                params.insert(key.to_string(), value);
            }
        }

        let service_schema = params.remove("schema");
        let schema = match given_schema.or(service_schema) {
            Some(name) => check_schema(&name)?,
            None => DEFAULT_SCHEMA.to_string(),
        };
        let home = env("HOME").map(PathBuf::from);
        let tls = TlsSettings::take_from(&mut params, home.as_deref())?;
        check_gssencmode(params.remove("gssencmode").as_deref())?;

        // The defaults.
        if !params.contains_key("user") {
            let user = env("USER")
                .or_else(|| {
                    use crate::engine::account::{euid, name_of};
                    name_of(euid())
                })
                .ok_or("no user to connect as: name one in the store address or set PGUSER")?;
            params.insert("user".into(), user);
        }
        if !params.contains_key("dbname") {
            let user = params["user"].clone();
            params.insert("dbname".into(), user);
        }
        if !params.contains_key("host") && !params.contains_key("hostaddr") {
            let host = if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
                DEFAULT_SOCKET_DIR
            } else {
                "localhost"
            };
            params.insert("host".into(), host.into());
        }
        params
            .entry("port".into())
            .or_insert_with(|| DEFAULT_PORT.to_string());
        let fallback_name = params.remove("fallback_application_name");
        params
            .entry("application_name".into())
            .or_insert_with(|| fallback_name.unwrap_or_else(|| DEFAULT_APPLICATION_NAME.into()));
        params
            .entry("connect_timeout".into())
            .or_insert_with(|| DEFAULT_CONNECT_TIMEOUT.as_secs().to_string());

        let passfile = params.remove("passfile");
        if !params.contains_key("password") {
            let file = passfile
                .map(PathBuf::from)
                .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pgpass")));
            if let Some(password) = file.and_then(|file| password_from_file(&file, &params)) {
                params.insert("password".into(), password);
            }
        }

        let mut config = build_config(&params, text)?;
        config.ssl_mode(tls.driver_mode());
        Ok(PgTarget {
            config,
            tls,
            schema,
        })
    }

    /// `host:port` (or the socket folder) the first host names, for messages.
    pub fn host_port(&self) -> String {
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        match self.config.get_hosts().first() {
            Some(Host::Tcp(h)) => format!("{h}:{port}"),
            Some(Host::Unix(p)) => format!("{} (port {port})", p.display()),
            None => match self.config.get_hostaddrs().first() {
                Some(addr) => format!("{addr}:{port}"),
                None => format!("localhost:{port}"),
            },
        }
    }
}

/// The store named by `--store` (`arg`), else by `BATON_STORE`, when it is
/// a PostgreSQL address: one that starts with `postgres://` or
/// `postgresql://`, or holds `key=value` pairs. `None` when neither is set or
/// the value is a path (a folder store).
pub fn from_env_or_arg(arg: Option<&str>) -> Option<Result<PgTarget, String>> {
    from_env_or_arg_with(arg, &|name| std::env::var(name).ok())
}

/// [`from_env_or_arg`] with the environment read through `env`.
pub fn from_env_or_arg_with(
    arg: Option<&str>,
    env: EnvLookup<'_>,
) -> Option<Result<PgTarget, String>> {
    let value = match arg {
        Some(arg) => arg.to_string(),
        None => env("BATON_STORE").filter(|v| !v.is_empty())?,
    };
    is_postgres_address(&value).then(|| PgTarget::parse_with(&value, env))
}

/// Whether a `--store` value names PostgreSQL rather than a folder.
pub fn is_postgres_address(text: &str) -> bool {
    let text = text.trim_start();
    text.starts_with("postgres://") || text.starts_with("postgresql://") || text.contains('=')
}

/// `text` with every password in it replaced by `****`: the one in a URL's
/// `user:password@`, and the value of any `password=` (URL query or
/// `key=value`). Errs on the side of hiding: use it on any address text
/// before it is shown or logged.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    // A URL's user information: everything from the first `:` after the
    // scheme to the last `@` is taken for a password.
    if let Some(scheme_end) = out.find("://") {
        let rest = scheme_end + 3;
        if let Some(at) = out[rest..].rfind('@').map(|i| rest + i)
            && let Some(colon) = out[rest..at].find(':').map(|i| rest + i)
        {
            out.replace_range(colon + 1..at, "****");
        }
    }
    redact_password_values(&out)
}

/// Hides the value after every `password` followed by `=` or spaces.
fn redact_password_values(text: &str) -> String {
    const WORD: &str = "password";
    let lower = text.to_ascii_lowercase();
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find(WORD).map(|i| search + i) {
        let mut i = found + WORD.len();
        let mut separated = false;
        while i < bytes.len() && (bytes[i] == b'=' || bytes[i].is_ascii_whitespace()) {
            separated = true;
            i += 1;
        }
        if !separated || i >= bytes.len() {
            search = found + WORD.len();
            continue;
        }
        let start = i;
        if bytes[i] == b'\'' {
            i += 1;
            while i < bytes.len() && bytes[i] != b'\'' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = (i + 1).min(bytes.len());
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() && bytes[i] != b'&' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            i = i.min(bytes.len());
        }
        // `i` may sit inside a character after an escape: move to its end.
        while !text.is_char_boundary(i) {
            i += 1;
        }
        out.push_str(&text[copied..start]);
        out.push_str("****");
        copied = i;
        search = i;
    }
    out.push_str(&text[copied..]);
    out
}

impl std::fmt::Display for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let user = self.config.get_user().unwrap_or("");
        let at = if user.is_empty() { "" } else { "@" };
        let db = self.config.get_dbname().unwrap_or("");
        write!(f, "postgres://{}{at}", encode(user))?;
        let ports = self.config.get_ports();
        let port_of = |i: usize| {
            ports
                .get(i)
                .or(ports.first())
                .copied()
                .unwrap_or(DEFAULT_PORT)
        };
        let hosts = self.config.get_hosts();
        if hosts.is_empty() {
            for (i, addr) in self.config.get_hostaddrs().iter().enumerate() {
                let sep = if i == 0 { "" } else { "," };
                match addr {
                    std::net::IpAddr::V6(v6) => write!(f, "{sep}[{v6}]:{}", port_of(i))?,
                    std::net::IpAddr::V4(v4) => write!(f, "{sep}{v4}:{}", port_of(i))?,
                }
            }
        }
        for (i, host) in hosts.iter().enumerate() {
            let sep = if i == 0 { "" } else { "," };
            match host {
                Host::Tcp(h) if h.contains(':') => write!(f, "{sep}[{h}]:{}", port_of(i))?,
                Host::Tcp(h) => write!(f, "{sep}{}:{}", encode(h), port_of(i))?,
                Host::Unix(p) => write!(f, "{sep}{}:{}", encode(&p.to_string_lossy()), port_of(i))?,
            }
        }
        write!(f, "/{}", encode(db))?;
        let mut query = Vec::new();
        if self.schema != DEFAULT_SCHEMA {
            query.push(format!("schema={}", self.schema));
        }
        // The default mode goes unsaid; any other is worth knowing.
        if self.tls.mode != TlsMode::Prefer {
            query.push(format!("sslmode={}", self.tls.mode));
        }
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Percent-encodes what would end a URL's part early (`/` of a socket
/// folder, `@`, `:` …), so that `Display` reads back as the same place.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn not_an_address(text: &str, why: &str) -> String {
    format!(
        "the store address `{}` is not a PostgreSQL address: {why}",
        redact(text)
    )
}

/// The keys and values the address gives, empty ones left out (libpq takes
/// an empty value for none), but for `schema`, which is checked.
fn parse_address(text: &str) -> Result<BTreeMap<String, String>, String> {
    let trimmed = text.trim();
    let pairs = match trimmed
        .strip_prefix("postgres://")
        .or_else(|| trimmed.strip_prefix("postgresql://"))
    {
        Some(rest) => parse_url(rest).map_err(|why| not_an_address(text, &why))?,
        None => parse_keywords(trimmed).map_err(|why| not_an_address(text, &why))?,
    };
    let mut params = BTreeMap::new();
    for (key, value) in pairs {
        check_key(&key).map_err(|why| not_an_address(text, &why))?;
        if value.is_empty() && key != "schema" {
            params.remove(&key);
        } else {
            params.insert(key, value);
        }
    }
    Ok(params)
}

/// A key baton reads, or why not. A key is quoted only when it looks like
/// one, so that a stray part of a password is never shown.
fn check_key(key: &str) -> Result<(), String> {
    if CONNECTION_KEYS.contains(&key) || OWN_KEYS.contains(&key) || TLS_KEYS.contains(&key) {
        return Ok(());
    }
    let word = !key.is_empty()
        && key.len() <= 40
        && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if word {
        Err(format!("baton does not know the parameter `{key}`"))
    } else {
        Err("it holds a parameter name that is not a word".into())
    }
}

/// `[user[:password]@][host[:port][,…]][/dbname][?key=value&…]`, after the
/// scheme. As in libpq, the user part ends at the first `@` before any `/`.
fn parse_url(rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = rest;
    let creds_end = rest.find(['@', '/']);
    if let Some(at) = creds_end.filter(|&i| rest.as_bytes()[i] == b'@') {
        let creds = &rest[..at];
        rest = &rest[at + 1..];
        let (user, password) = match creds.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (creds, None),
        };
        pairs.push(("user".into(), decode(user)?));
        if let Some(password) = password {
            pairs.push(("password".into(), decode(password)?));
        }
    }

    let host_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let hostspec = &rest[..host_end];
    rest = &rest[host_end..];
    if !hostspec.is_empty() {
        let mut hosts = Vec::new();
        let mut ports = Vec::new();
        for chunk in hostspec.split(',') {
            let (host, port) = match chunk.strip_prefix('[') {
                Some(inner) => {
                    let (host, after) = inner
                        .split_once(']')
                        .ok_or("an IPv6 host has no closing `]`")?;
                    let port = match after {
                        "" => None,
                        _ => Some(
                            after
                                .strip_prefix(':')
                                .ok_or("text after an IPv6 host's `]` is not `:port`")?,
                        ),
                    };
                    (host.to_string(), port)
                }
                None => match chunk.split_once(':') {
                    Some((host, port)) => (decode(host)?, Some(port)),
                    None => (decode(chunk)?, None),
                },
            };
            hosts.push(host);
            ports.push(decode(port.unwrap_or(""))?);
        }
        if hosts.iter().any(|h| !h.is_empty()) {
            pairs.push(("host".into(), hosts.join(",")));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            pairs.push(("port".into(), ports.join(",")));
        }
    }

    if let Some(path) = rest.strip_prefix('/') {
        let path_end = path.find('?').unwrap_or(path.len());
        pairs.push(("dbname".into(), decode(&path[..path_end])?));
        rest = &path[path_end..];
    }

    if let Some(query) = rest.strip_prefix('?') {
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').ok_or("a query parameter has no `=`")?;
            pairs.push((decode(key)?, decode(value)?));
        }
    }
    Ok(pairs)
}

/// Undoes `%XX` escapes.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a `%` is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-escape does not decode to UTF-8".to_string())
}

/// libpq's `key = value …`: values in single quotes may hold spaces; a
/// backslash takes the next character as it is.
fn parse_keywords(text: &str) -> Result<Vec<(String, String)>, String> {
    let chars: Vec<char> = text.chars().collect();
    let mut pairs = Vec::new();
    let mut i = 0;
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && chars[*i].is_whitespace() {
            *i += 1;
        }
    };
    loop {
        skip_space(&mut i);
        if i >= chars.len() {
            break;
        }
        let key_start = i;
        while i < chars.len() && chars[i] != '=' && !chars[i].is_whitespace() {
            i += 1;
        }
        let key: String = chars[key_start..i].iter().collect();
        skip_space(&mut i);
        if i >= chars.len() || chars[i] != '=' {
            return Err(
                "it is neither a postgres:// URL nor `key=value` pairs (a word has no `=`)".into(),
            );
        }
        i += 1;
        skip_space(&mut i);
        let mut value = String::new();
        if i < chars.len() && chars[i] == '\'' {
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("a quoted value has no closing `'`".into()),
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some('\\') => {
                        let c = chars
                            .get(i + 1)
                            .ok_or("a quoted value has no closing `'`")?;
                        value.push(*c);
                        i += 2;
                    }
                    Some(c) => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < chars.len() && !chars[i].is_whitespace() {
                if chars[i] == '\\' && i + 1 < chars.len() {
                    i += 1;
                }
                value.push(chars[i]);
                i += 1;
            }
        }
        if key.is_empty() {
            return Err("a `=` has no key before it".into());
        }
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// A schema name baton accepts: a plain identifier, which needs no quoting.
fn check_schema(name: &str) -> Result<String, String> {
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && name.bytes().next().is_some_and(|b| !b.is_ascii_digit())
        && name.len() <= MAX_IDENTIFIER_BYTES;
    if plain {
        Ok(name.to_string())
    } else {
        Err(format!(
            "schema `{}` is not a plain identifier: a schema name is 1 to \
             {MAX_IDENTIFIER_BYTES} ASCII letters, digits and `_`, not starting with a digit",
            name.escape_debug()
        ))
    }
}

/// tokio-postgres has no GSSAPI encryption, so `gssencmode` may only allow
/// going without.
fn check_gssencmode(mode: Option<&str>) -> Result<(), String> {
    match mode {
        None | Some("disable" | "allow" | "prefer") => Ok(()),
        Some("require") => Err("gssencmode=require needs GSSAPI encryption, which baton \
             does not do: use gssencmode=disable"
            .into()),
        Some(other) => Err(format!(
            "gssencmode `{}` is not one of disable, allow, prefer, require",
            other.escape_debug()
        )),
    }
}

/// Hands the keys to tokio-postgres as a `key='value'` string, so that it
/// checks the values its own way.
fn build_config(
    params: &BTreeMap<String, String>,
    text: &str,
) -> Result<tokio_postgres::Config, String> {
    let mut line = String::new();
    for (key, value) in params {
        debug_assert!(CONNECTION_KEYS.contains(&key.as_str()), "{key}");
        let value = value.replace('\\', "\\\\").replace('\'', "\\'");
        line.push_str(&format!("{key}='{value}' "));
    }
    // tokio-postgres's messages name the key, never the value.
    tokio_postgres::Config::from_str(&line).map_err(|e| {
        let why = match std::error::Error::source(&e) {
            Some(cause) => cause.to_string(),
            None => e.to_string(),
        };
        not_an_address(text, &why)
    })
}

/// The keys in service `name`'s section: from `PGSERVICEFILE` (or
/// `~/.pg_service.conf`), else from the system's `pg_service.conf`.
fn service_params(
    name: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, String> {
    let user_file = env("PGSERVICEFILE")
        .map(PathBuf::from)
        .or_else(|| env("HOME").map(|home| Path::new(&home).join(".pg_service.conf")));
    let system_file =
        Path::new(&env("PGSYSCONFDIR").unwrap_or_else(|| DEFAULT_SYSCONF_DIR.to_string()))
            .join("pg_service.conf");
    let mut looked = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        let text = match std::fs::read_to_string(&file) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                looked.push(file.display().to_string());
                continue;
            }
            Err(e) => return Err(format!("cannot read service file {}: {e}", file.display())),
        };
        if let Some(params) = service_section(&text, name, &file)? {
            return Ok(params);
        }
        looked.push(file.display().to_string());
    }
    Err(format!(
        "service `{}` is not defined in {}",
        name.escape_debug(),
        looked.join(" nor ")
    ))
}

/// Service `name`'s `key=value` lines in a service file's text, `None` when
/// it has no such section.
fn service_section(
    text: &str,
    name: &str,
    file: &Path,
) -> Result<Option<Vec<(String, String)>>, String> {
    let mut found = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[') {
            if found.is_some() {
                break;
            }
            if section.strip_suffix(']').map(str::trim) == Some(name) {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(pairs) = found.as_mut() else {
            continue;
        };
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| format!("service file {}, line {}: no `=`", file.display(), n + 1))?;
        let key = key.trim();
        if key == "service" {
            return Err(format!(
                "service file {}, line {}: a service cannot name another",
                file.display(),
                n + 1
            ));
        }
        check_key(key)
            .map_err(|why| format!("service file {}, line {}: {why}", file.display(), n + 1))?;
        let value = value.trim();
        if !value.is_empty() {
            pairs.push((key.to_string(), value.to_string()));
        }
    }
    Ok(found)
}

/// The password a libpq password file (`host:port:db:user:password`, `*`
/// for any, `\` escaping `:` and `\`) gives the first host it has one for.
/// A file that others may read is not used, as libpq does.
fn password_from_file(file: &Path, params: &BTreeMap<String, String>) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(file).ok()?;
    if !meta.is_file() {
        tracing::warn!(
            "password file {} is not a plain file; not used",
            file.display()
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        tracing::warn!(
            "password file {} has group or world access; permissions should be u=rw (0600) \
             or less; not used",
            file.display()
        );
        return None;
    }
    let text = std::fs::read_to_string(file).ok()?;
    let user = params.get("user")?;
    let db = params.get("dbname")?;
    let ports: Vec<&str> = params
        .get("port")
        .map_or(vec![], |p| p.split(',').collect());
    let hosts: Vec<String> = match params.get("host") {
        Some(hosts) => hosts.split(',').map(str::to_string).collect(),
        None => params
            .get("hostaddr")
            .map_or(vec![], |a| a.split(',').map(str::to_string).collect()),
    };
    for (i, host) in hosts.iter().enumerate() {
        let port = ports
            .get(i)
            .or(ports.first())
            .filter(|p| !p.is_empty())
            .map_or(DEFAULT_PORT.to_string(), |p| p.to_string());
        // libpq's rule: `localhost` stands for the default socket folder.
        let host = if host == DEFAULT_SOCKET_DIR || host == "/run/postgresql" {
            "localhost"
        } else {
            host.as_str()
        };
        let wanted = [host, port.as_str(), db.as_str(), user.as_str()];
        for line in text.lines() {
            let line = line.strip_suffix('\r').unwrap_or(line);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((fields, password)) = pgpass_fields(line) else {
                continue;
            };
            let matches = fields
                .iter()
                .zip(wanted)
                .all(|((field, any), want)| *any || field == want);
            if matches {
                return Some(password).filter(|p| !p.is_empty());
            }
        }
    }
    None
}

/// A password file's line: its four fields (each with whether it is a bare
/// `*`) and the password, escapes undone; `None` when it has fewer fields.
fn pgpass_fields(line: &str) -> Option<([(String, bool); 4], String)> {
    let mut fields: Vec<(String, bool)> = Vec::with_capacity(4);
    let mut current = String::new();
    let mut escaped_any = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if fields.len() < 4 => {
                escaped_any = true;
                current.extend(chars.next());
            }
            ':' if fields.len() < 4 => {
                let any = current == "*" && !escaped_any;
                fields.push((std::mem::take(&mut current), any));
                escaped_any = false;
            }
            '\\' => current.extend(chars.next()),
            c => current.push(c),
        }
    }
    let fields: [(String, bool); 4] = fields.try_into().ok()?;
    Some((fields, current))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::tls::{Roots, TlsVersion};
    use std::os::unix::fs::PermissionsExt;

    /// An environment of `pairs` only, with a user so that no default
    /// depends on the machine.
    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
        let mut table: BTreeMap<String, String> = BTreeMap::new();
        table.insert("USER".into(), "tester".into());
        for (k, v) in pairs {
            table.insert(k.to_string(), v.to_string());
        }
        move |name: &str| table.get(name).cloned()
    }

    fn parse(text: &str, pairs: &[(&str, &str)]) -> Result<PgTarget, String> {
        PgTarget::parse_with(text, &env_of(pairs))
    }

    fn password(t: &PgTarget) -> Option<String> {
        t.config
            .get_password()
            .map(|p| String::from_utf8(p.to_vec()).unwrap())
    }

    fn tcp_hosts(t: &PgTarget) -> Vec<String> {
        t.config
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(h) => h.clone(),
                Host::Unix(p) => format!("unix:{}", p.display()),
            })
            .collect()
    }

    fn write_file(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    #[test]
    fn a_url_gives_every_part_and_the_schema() {
        let t = parse("postgres://alice@db.example:5433/runs?schema=team_a", &[]).unwrap();
        assert_eq!(t.config.get_user(), Some("alice"));
        assert_eq!(tcp_hosts(&t), ["db.example"]);
        assert_eq!(t.config.get_ports(), [5433]);
        assert_eq!(t.config.get_dbname(), Some("runs"));
        assert_eq!(t.schema, "team_a");
        assert_eq!(t.config.get_application_name(), Some("baton"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(
            t.config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert_eq!(
            t.to_string(),
            "postgres://alice@db.example:5433/runs?schema=team_a"
        );
        assert_eq!(format!("{t:?}"), t.to_string());

        let t = parse("postgresql://bob@h/d", &[]).unwrap();
        assert_eq!(t.schema, DEFAULT_SCHEMA);
        assert_eq!(t.to_string(), "postgres://bob@h:5432/d");
    }

    #[test]
    fn url_query_parameters_and_escapes_are_read() {
        let t = parse(
            "postgres://us%40er:p%40ss@host/my%20db?application_name=fleet&connect_timeout=3&schema=s",
            &[],
        )
        .unwrap();
        assert_eq!(t.config.get_user(), Some("us@er"));
        assert_eq!(password(&t).as_deref(), Some("p@ss"));
        assert_eq!(t.config.get_dbname(), Some("my db"));
        assert_eq!(t.config.get_application_name(), Some("fleet"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        assert_eq!(t.schema, "s");
        assert_eq!(
            t.to_string(),
            "postgres://us%40er@host:5432/my%20db?schema=s"
        );
    }

    #[test]
    fn several_hosts_ipv6_and_socket_folders() {
        let t = parse("postgres://u@a:1,[::1]:2,c/db", &[]).unwrap();
        assert_eq!(tcp_hosts(&t), ["a", "::1", "c"]);
        assert_eq!(t.config.get_ports(), [1, 2, 5432]);
        assert_eq!(t.to_string(), "postgres://u@a:1,[::1]:2,c:5432/db");

        let t = parse("postgres://u@%2Ftmp%2Fsock:6000/db", &[]).unwrap();
        assert_eq!(tcp_hosts(&t), ["unix:/tmp/sock"]);
        assert_eq!(t.to_string(), "postgres://u@%2Ftmp%2Fsock:6000/db");
        assert_eq!(t.host_port(), "/tmp/sock (port 6000)");
        // Display reads back as the same place.
        let again = parse(&t.to_string(), &[]).unwrap();
        assert_eq!(again.config.get_hosts(), t.config.get_hosts());
        assert_eq!(again.config.get_ports(), t.config.get_ports());

        let t = parse("postgres:///db?host=/tmp/other&port=7000&user=u", &[]).unwrap();
        assert_eq!(tcp_hosts(&t), ["unix:/tmp/other"]);
        assert_eq!(t.config.get_ports(), [7000]);
    }

    #[test]
    fn key_value_strings_are_read_like_libpq() {
        let t = parse(
            "host=10.0.0.5 port = 6543 dbname=runs user=bob password='a b\\'c' schema=s1",
            &[],
        )
        .unwrap();
        assert_eq!(tcp_hosts(&t), ["10.0.0.5"]);
        assert_eq!(t.config.get_ports(), [6543]);
        assert_eq!(t.config.get_dbname(), Some("runs"));
        assert_eq!(t.config.get_user(), Some("bob"));
        assert_eq!(password(&t).as_deref(), Some("a b'c"));
        assert_eq!(t.schema, "s1");
        assert_eq!(t.to_string(), "postgres://bob@10.0.0.5:6543/runs?schema=s1");

        let t = parse("host=/tmp/s dbname=x", &[]).unwrap();
        assert_eq!(tcp_hosts(&t), ["unix:/tmp/s"]);
        assert_eq!(t.config.get_user(), Some("tester"));
    }

    #[test]
    fn a_schema_must_be_a_plain_identifier() {
        for good in ["baton", "_x", "Team_2", &"a".repeat(63)] {
            let t = parse(&format!("postgres://u@h/d?schema={good}"), &[]).unwrap();
            assert_eq!(t.schema, good);
        }
        for bad in ["", "1abc", "a-b", "a%20b", "\u{e9}t\u{e9}", &"a".repeat(64)] {
            let e = parse(&format!("postgres://u@h/d?schema={bad}"), &[]).unwrap_err();
            assert!(
                e.contains("letters, digits and `_`, not starting with a digit"),
                "{bad}: {e}"
            );
            let e = parse(&format!("host=h schema='{bad}'"), &[]).unwrap_err();
            assert!(e.contains("not a plain identifier"), "{bad}: {e}");
        }
    }

    #[test]
    fn the_environment_fills_what_the_address_leaves_out() {
        let vars = [
            ("PGHOST", "/tmp/pgsock"),
            ("PGPORT", "6000"),
            ("PGUSER", "envuser"),
            ("PGPASSWORD", "envpass"),
            ("PGDATABASE", "envdb"),
            ("PGAPPNAME", "envapp"),
            ("PGCONNECT_TIMEOUT", "4"),
            ("PGSSLMODE", "disable"),
        ];
        let t = parse("schema=s", &vars).unwrap();
        assert_eq!(tcp_hosts(&t), ["unix:/tmp/pgsock"]);
        assert_eq!(t.config.get_ports(), [6000]);
        assert_eq!(t.config.get_user(), Some("envuser"));
        assert_eq!(password(&t).as_deref(), Some("envpass"));
        assert_eq!(t.config.get_dbname(), Some("envdb"));
        assert_eq!(t.config.get_application_name(), Some("envapp"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(4))
        );
        assert_eq!(t.tls.mode, TlsMode::Disable);

        // What the address gives wins.
        let t = parse("postgres://u:pw@h:1/d?application_name=a", &vars).unwrap();
        assert_eq!(tcp_hosts(&t), ["h"]);
        assert_eq!(t.config.get_ports(), [1]);
        assert_eq!(t.config.get_user(), Some("u"));
        assert_eq!(password(&t).as_deref(), Some("pw"));
        assert_eq!(t.config.get_dbname(), Some("d"));
        assert_eq!(t.config.get_application_name(), Some("a"));

        // An empty variable counts as unset.
        let t = parse("postgres://h/d", &[("PGUSER", "")]).unwrap();
        assert_eq!(t.config.get_user(), Some("tester"));
    }

    #[test]
    fn defaults_are_libpqs_with_batons_name_and_timeout() {
        let t = parse("schema=baton", &[]).unwrap();
        assert_eq!(t.config.get_user(), Some("tester"));
        assert_eq!(t.config.get_dbname(), Some("tester"));
        assert_eq!(t.config.get_ports(), [5432]);
        let expected = if Path::new(DEFAULT_SOCKET_DIR).is_dir() {
            format!("unix:{DEFAULT_SOCKET_DIR}")
        } else {
            "localhost".to_string()
        };
        assert_eq!(tcp_hosts(&t), [expected]);
        assert_eq!(t.config.get_application_name(), Some("baton"));
        assert_eq!(
            t.config.get_connect_timeout(),
            Some(&Duration::from_secs(10))
        );
        assert_eq!(t.config.get_password(), None);

        // Without $USER, the account of the process's uid.
        let t = PgTarget::parse_with("host=h", &|_| None).unwrap();
        let me = crate::engine::account::name_of(crate::engine::account::euid()).unwrap();
        assert_eq!(t.config.get_user(), Some(me.as_str()));

        // connect_timeout=0 means no limit; fallback_application_name is a default.
        let t = parse("host=h connect_timeout=0 fallback_application_name=fb", &[]).unwrap();
        assert_eq!(t.config.get_connect_timeout(), None);
        assert_eq!(t.config.get_application_name(), Some("fb"));
    }

    #[test]
    fn sslmode_is_libpqs_with_prefer_by_default() {
        use tokio_postgres::config::SslMode;
        let t = parse("host=h", &[]).unwrap();
        assert_eq!(t.tls.mode, TlsMode::Prefer);
        assert_eq!(t.config.get_ssl_mode(), SslMode::Prefer);
        assert_eq!(t.to_string(), "postgres://tester@h:5432/tester");
        for (mode, want, driver) in [
            ("disable", TlsMode::Disable, SslMode::Disable),
            ("allow", TlsMode::Allow, SslMode::Prefer),
            ("prefer", TlsMode::Prefer, SslMode::Prefer),
            ("require", TlsMode::Require, SslMode::Require),
        ] {
            for t in [
                parse(&format!("postgres://h/d?sslmode={mode}"), &[]).unwrap(),
                parse(&format!("host=h dbname=d sslmode={mode}"), &[]).unwrap(),
                parse("host=h dbname=d", &[("PGSSLMODE", mode)]).unwrap(),
            ] {
                assert_eq!(t.tls.mode, want, "{mode}");
                assert_eq!(t.config.get_ssl_mode(), driver, "{mode}");
                // require checks nothing without a root file.
                assert_eq!(t.tls.roots, None, "{mode}");
            }
        }
        // The address wins over PGSSLMODE.
        let t = parse(
            "postgres://h/d?sslmode=disable",
            &[("PGSSLMODE", "require")],
        )
        .unwrap();
        assert_eq!(t.tls.mode, TlsMode::Disable);

        let e = parse("host=h sslmode=sometimes", &[]).unwrap_err();
        assert!(e.contains("not one of disable, allow, prefer"), "{e}");
        let e = parse("host=h gssencmode=require", &[]).unwrap_err();
        assert!(e.contains("gssencmode=disable"), "{e}");
    }

    #[test]
    fn a_mode_other_than_prefer_shows_in_the_address() {
        let t = parse(
            "postgres://u@h/d?sslmode=verify-full&sslrootcert=/ca.crt",
            &[],
        )
        .unwrap();
        assert_eq!(t.to_string(), "postgres://u@h:5432/d?sslmode=verify-full");
        let t = parse("postgres://u:pw@h/d?schema=s&sslmode=disable", &[]).unwrap();
        assert_eq!(
            t.to_string(),
            "postgres://u@h:5432/d?schema=s&sslmode=disable"
        );
        // Display reads back as the same place and mode.
        let again = parse(&t.to_string(), &[]).unwrap();
        assert_eq!(again.tls, t.tls);
        assert_eq!(again.schema, "s");
    }

    #[test]
    fn certificate_files_come_from_the_address_or_the_pgssl_variables() {
        let t = parse(
            "postgres://h/d?sslmode=verify-ca&sslrootcert=/etc/ca.crt&sslcert=/c/me.crt\
             &sslkey=/c/me.key&sslcrl=/c/revoked.crl&sslcrldir=/c/crls&sslsni=0",
            &[],
        )
        .unwrap();
        assert_eq!(t.tls.mode, TlsMode::VerifyCa);
        assert_eq!(t.tls.roots, Some(Roots::File("/etc/ca.crt".into())));
        assert_eq!(t.tls.cert, Some(PathBuf::from("/c/me.crt")));
        assert_eq!(t.tls.key, Some(PathBuf::from("/c/me.key")));
        assert_eq!(t.tls.crl, Some(PathBuf::from("/c/revoked.crl")));
        assert_eq!(t.tls.crl_dir, Some(PathBuf::from("/c/crls")));
        assert!(!t.tls.sni);
        assert!(t.tls.checks_chain() && !t.tls.checks_name());

        let vars = [
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/env/ca.crt"),
            ("PGSSLCERT", "/env/me.crt"),
            ("PGSSLKEY", "/env/me.key"),
            ("PGSSLCRL", "/env/r.crl"),
            ("PGSSLMINPROTOCOLVERSION", "TLSv1.3"),
        ];
        let t = parse("host=h", &vars).unwrap();
        assert_eq!(t.tls.mode, TlsMode::VerifyFull);
        assert_eq!(t.tls.roots, Some(Roots::File("/env/ca.crt".into())));
        assert_eq!(t.tls.cert, Some(PathBuf::from("/env/me.crt")));
        assert_eq!(t.tls.key, Some(PathBuf::from("/env/me.key")));
        assert_eq!(t.tls.crl, Some(PathBuf::from("/env/r.crl")));
        assert_eq!(t.tls.min_version, TlsVersion::Tls13);
        assert!(t.tls.checks_name());
        // What the address gives wins over the variables.
        let t = parse("host=h sslrootcert=/own/ca.crt sslmode=require", &vars).unwrap();
        assert_eq!(t.tls.roots, Some(Roots::File("/own/ca.crt".into())));
        assert_eq!(t.tls.mode, TlsMode::Require);
        // Under disable no file matters.
        let t = parse("host=h sslmode=disable", &vars).unwrap();
        assert_eq!(t.tls.roots, None);
        assert_eq!(t.tls.cert, None);
        // sslcertmode=disable sends no client certificate.
        let t = parse("host=h sslcertmode=disable", &vars).unwrap();
        assert_eq!(t.tls.cert, None);
        assert_eq!(t.tls.key, None);
    }

    #[test]
    fn a_service_gives_tls_keys_too() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "services",
            "[secure]\nhost=db.example\nsslmode=verify-full\nsslrootcert=/svc/ca.crt\n",
            0o644,
        );
        let vars = [("PGSERVICEFILE", file.to_str().unwrap())];
        let t = parse("service=secure", &vars).unwrap();
        assert_eq!(t.tls.mode, TlsMode::VerifyFull);
        assert_eq!(t.tls.roots, Some(Roots::File("/svc/ca.crt".into())));
        let t = parse("service=secure sslmode=verify-ca", &vars).unwrap();
        assert_eq!(t.tls.mode, TlsMode::VerifyCa);
    }

    #[test]
    fn files_under_dot_postgresql_are_the_defaults_when_they_exist() {
        let home = tempfile::tempdir().unwrap();
        let dir = home.path().join(".postgresql");
        let vars = [("HOME", home.path().to_str().unwrap())];

        // None there: require checks nothing, verify-* looks for root.crt.
        let t = parse("host=h sslmode=require", &vars).unwrap();
        assert_eq!(t.tls.roots, None);
        assert_eq!(t.tls.cert, None);
        let t = parse("host=h sslmode=verify-ca", &vars).unwrap();
        assert_eq!(t.tls.roots, Some(Roots::File(dir.join("root.crt"))));
        // With no home folder, verify-* must be told where the CA is.
        let e = PgTarget::parse_with("host=h user=u sslmode=verify-full", &|_| None).unwrap_err();
        assert!(e.contains("sslrootcert=PATH"), "{e}");

        std::fs::create_dir(&dir).unwrap();
        for name in ["root.crt", "root.crl", "postgresql.crt"] {
            write_file(&dir, name, "", 0o644);
        }
        // A root file there is checked under require, as libpq does.
        let t = parse("host=h sslmode=require", &vars).unwrap();
        assert_eq!(t.tls.roots, Some(Roots::File(dir.join("root.crt"))));
        assert_eq!(t.tls.crl, Some(dir.join("root.crl")));
        assert_eq!(t.tls.cert, Some(dir.join("postgresql.crt")));
        assert_eq!(t.tls.key, Some(dir.join("postgresql.key")));
        // Given files win over the defaults.
        let t = parse("host=h sslrootcert=/mine.crt sslcert=/me.crt", &vars).unwrap();
        assert_eq!(t.tls.roots, Some(Roots::File("/mine.crt".into())));
        assert_eq!(t.tls.crl, Some(dir.join("root.crl")));
        assert_eq!(t.tls.cert, Some(PathBuf::from("/me.crt")));
        assert_eq!(t.tls.key, Some(dir.join("postgresql.key")));
    }

    #[test]
    fn system_roots_mean_verify_full() {
        let t = parse("host=h sslrootcert=system", &[]).unwrap();
        assert_eq!(t.tls.mode, TlsMode::VerifyFull);
        assert_eq!(t.tls.roots, Some(Roots::System));
        assert!(t.to_string().ends_with("?sslmode=verify-full"), "{t}");
        for weak in ["disable", "prefer", "require", "verify-ca"] {
            let e = parse(&format!("host=h sslrootcert=system sslmode={weak}"), &[]).unwrap_err();
            assert!(
                e.contains(&format!("sslmode={weak} may not be used")),
                "{e}"
            );
            assert!(e.contains("verify-full"), "{e}");
        }
    }

    #[test]
    fn odd_tls_keys_are_refused_with_what_to_use() {
        for (text, says) in [
            ("host=h sslsni=yes", "sslsni `yes` is not 0 or 1"),
            ("host=h sslcertmode=require", "sslcertmode=allow"),
            (
                "host=h sslcertmode=maybe",
                "not one of disable, allow, require",
            ),
            ("host=h ssl_min_protocol_version=SSLv3", "not one of TLSv1"),
            (
                "host=h ssl_max_protocol_version=TLSv1.1",
                "TLS 1.2 and 1.3 only",
            ),
            (
                "host=h ssl_min_protocol_version=TLSv1.3 ssl_max_protocol_version=TLSv1.2",
                "no protocol version is left",
            ),
            (
                "host=h sslnegotiation=direct",
                "sslmode=prefer may not be used with sslnegotiation=direct",
            ),
        ] {
            let e = parse(text, &[]).unwrap_err();
            assert!(e.contains(says), "{text}: {e}");
        }
        // Accepted: libpq's keys for OpenSSL that change nothing here.
        let t = parse(
            "host=h sslmode=require sslnegotiation=direct sslpassword=x sslcompression=1 \
             ssl_min_protocol_version=tlsv1",
            &[],
        )
        .unwrap();
        assert_eq!(t.tls.min_version, TlsVersion::Tls12);
        assert_eq!(t.tls.max_version, TlsVersion::Tls13);
        assert!(!t.to_string().contains("sslpassword"), "{t}");
    }

    #[test]
    fn a_service_fills_what_the_address_leaves_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = write_file(
            dir.path(),
            "services",
            "# mine\n[other]\nhost=wrong\n\n[svc]\nhost = svchost\nport=7777\ndbname=svcdb\n\
             user=svcuser\nschema=svc_schema\n[after]\nport=1\n",
            0o644,
        );
        let file = file.to_str().unwrap();
        let vars = [
            ("PGSERVICEFILE", file),
            ("PGPORT", "9999"),
            ("PGUSER", "envuser"),
        ];

        let t = parse("service=svc dbname=own", &vars).unwrap();
        assert_eq!(tcp_hosts(&t), ["svchost"]);
        // The service wins over the environment, the address over both.
        assert_eq!(t.config.get_ports(), [7777]);
        assert_eq!(t.config.get_user(), Some("svcuser"));
        assert_eq!(t.config.get_dbname(), Some("own"));
        assert_eq!(t.schema, "svc_schema");

        let t = parse("postgres://u@h/d?service=svc&schema=mine", &vars).unwrap();
        assert_eq!(tcp_hosts(&t), ["h"]);
        assert_eq!(t.config.get_ports(), [7777]);
        assert_eq!(t.schema, "mine");

        // PGSERVICE names it when the address does not.
        let mut with_env = vars.to_vec();
        with_env.push(("PGSERVICE", "svc"));
        let t = parse("dbname=x", &with_env).unwrap();
        assert_eq!(tcp_hosts(&t), ["svchost"]);

        let e = parse("service=nosuch", &vars).unwrap_err();
        assert!(e.contains("service `nosuch` is not defined"), "{e}");
        assert!(e.contains(file), "{e}");
    }

    #[test]
    fn the_system_service_file_is_read_after_the_users() {
        let home = tempfile::tempdir().unwrap();
        let sys = tempfile::tempdir().unwrap();
        write_file(
            home.path(),
            ".pg_service.conf",
            "[mine]\nhost=homehost\n",
            0o600,
        );
        write_file(
            sys.path(),
            "pg_service.conf",
            "[mine]\nhost=syshost\n[shared]\nhost=syshost\nport=5555\n",
            0o644,
        );
        let vars = [
            ("HOME", home.path().to_str().unwrap()),
            ("PGSYSCONFDIR", sys.path().to_str().unwrap()),
        ];
        // The user's file has the section: the system's is not read.
        let t = parse("service=mine", &vars).unwrap();
        assert_eq!(tcp_hosts(&t), ["homehost"]);
        assert_eq!(t.config.get_ports(), [5432]);
        let t = parse("service=shared", &vars).unwrap();
        assert_eq!(tcp_hosts(&t), ["syshost"]);
        assert_eq!(t.config.get_ports(), [5555]);

        write_file(
            home.path(),
            ".pg_service.conf",
            "[bad]\nnot a pair\n",
            0o600,
        );
        let e = parse("service=bad", &vars).unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    #[test]
    fn a_password_file_gives_the_password_nobody_gave() {
        let dir = tempfile::tempdir().unwrap();
        let pgpass = write_file(
            dir.path(),
            "pgpass",
            "# comment\n\
             other:5432:*:*:not-this\n\
             db.example:5433:runs:alice:exact\n\
             db.example:*:*:alice:any-port\n\
             localhost:5432:*:sock:via-socket\n\
             we\\:ird:5432:*:*:esc\\:aped\\\\pw\n\
             *:*:*:*:fallback\n",
            0o600,
        );
        let vars = [("PGPASSFILE", pgpass.to_str().unwrap())];
        let pw = |text: &str| password(&parse(text, &vars).unwrap());
        assert_eq!(
            pw("postgres://alice@db.example:5433/runs").as_deref(),
            Some("exact")
        );
        assert_eq!(
            pw("postgres://alice@db.example:6000/x").as_deref(),
            Some("any-port")
        );
        assert_eq!(
            pw("postgres://bob@db.example/runs").as_deref(),
            Some("fallback")
        );
        assert_eq!(
            pw("host=/var/run/postgresql user=sock").as_deref(),
            Some("via-socket")
        );
        assert_eq!(pw("host=we:ird").as_deref(), Some("esc:aped\\pw"));
        // A password given is kept.
        assert_eq!(
            pw("postgres://alice:given@db.example:5433/runs").as_deref(),
            Some("given")
        );
        let t = parse(
            "postgres://alice@db.example:5433/runs",
            &[
                ("PGPASSFILE", pgpass.to_str().unwrap()),
                ("PGPASSWORD", "fromenv"),
            ],
        )
        .unwrap();
        assert_eq!(password(&t).as_deref(), Some("fromenv"));

        // `passfile=` in the address, and ~/.pgpass.
        let t = parse(&format!("host=nowhere passfile={}", pgpass.display()), &[]).unwrap();
        assert_eq!(password(&t).as_deref(), Some("fallback"));
        std::fs::copy(&pgpass, dir.path().join(".pgpass")).unwrap();
        let t = parse("host=nowhere", &[("HOME", dir.path().to_str().unwrap())]).unwrap();
        assert_eq!(password(&t).as_deref(), Some("fallback"));

        // A file others may read is not used.
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert_eq!(pw("postgres://alice@db.example:5433/runs"), None);
        std::fs::set_permissions(&pgpass, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert_eq!(pw("postgres://alice@db.example:5433/runs"), None);
        // Nor a missing one.
        let t = parse("host=h", &[("PGPASSFILE", "/nonexistent/pgpass")]).unwrap();
        assert_eq!(t.config.get_password(), None);
    }

    #[test]
    fn no_password_is_shown() {
        let dir = tempfile::tempdir().unwrap();
        let pgpass = write_file(dir.path(), "pgpass", "*:*:*:*:filepw\n", 0o600);
        for (text, vars) in [
            ("postgres://u:urlpw@h:1/d?schema=s", vec![]),
            ("host=h user=u password='kv pw' schema=s", vec![]),
            ("postgres://u@h/d?password=querypw", vec![]),
            ("host=h", vec![("PGPASSWORD", "envpw")]),
            ("host=h", vec![("PGPASSFILE", pgpass.to_str().unwrap())]),
        ] {
            let t = parse(text, &vars).unwrap();
            assert!(t.config.get_password().is_some(), "{text}");
            for shown in [t.to_string(), format!("{t:?}"), t.host_port()] {
                assert!(!shown.contains("pw"), "{text}: {shown}");
            }
        }
    }

    #[test]
    fn errors_hide_the_password() {
        for (text, secret) in [
            ("postgres://u:s3cret@h:notaport/d", "s3cret"),
            ("postgres://u:s3cret@h/d?bogus=1", "s3cret"),
            ("postgres://u@h/d?password=s3cret&port=x", "s3cret"),
            ("postgres://u:s3%ZZcret@h/d", "s3"),
            ("host=h password=s3cret port=x", "s3cret"),
            ("host=h password='s3 cret' schema=1x", "s3 cret"),
            ("host=h password='s3cret", "s3cret"),
            ("host=h password s3cret", "s3cret"),
            ("postgres://u:s3cret@h/d?sslmode=never", "s3cret"),
            (
                "postgres://u:s3cret@h/d?sslrootcert=system&sslmode=require",
                "s3cret",
            ),
        ] {
            let e = parse(text, &[]).unwrap_err();
            assert!(!e.contains(secret), "{text}: {e}");
        }
        let e = parse("postgres://u:s3cret@h:notaport/d", &[]).unwrap_err();
        assert!(e.contains("postgres://u:****@h:notaport/d"), "{e}");
        assert!(e.contains("`port`"), "{e}");
        let e = parse("host=h bogus=1", &[]).unwrap_err();
        assert!(
            e.contains("baton does not know the parameter `bogus`"),
            "{e}"
        );
    }

    #[test]
    fn redact_hides_passwords_in_any_address_text() {
        for (text, want) in [
            ("postgres://u:pw@h:5432/d", "postgres://u:****@h:5432/d"),
            ("postgresql://u:p@w/d@h/d", "postgresql://u:****@h/d"),
            ("postgres://u@h:5432/d", "postgres://u@h:5432/d"),
            ("postgres://h:5432/d", "postgres://h:5432/d"),
            (
                "postgres://u@h/d?password=pw&schema=s",
                "postgres://u@h/d?password=****&schema=s",
            ),
            ("host=h password=pw user=u", "host=h password=**** user=u"),
            (
                "host=h password = 'p w\\' x' user=u",
                "host=h password = **** user=u",
            ),
            ("PGPASSWORD=pw", "PGPASSWORD=****"),
            ("no secret here", "no secret here"),
            ("password", "password"),
        ] {
            assert_eq!(redact(text), want, "{text}");
        }
    }

    #[test]
    fn only_postgres_addresses_are_taken_from_the_argument_or_baton_store() {
        let none = env_of(&[]);
        let store = env_of(&[("BATON_STORE", "postgres://envstore@h/d")]);
        let folder = env_of(&[("BATON_STORE", "/var/lib/baton/state")]);

        let t = from_env_or_arg_with(Some("postgres://arg@h/d"), &store)
            .unwrap()
            .unwrap();
        assert_eq!(t.config.get_user(), Some("arg"));
        let t = from_env_or_arg_with(Some("host=h user=kv"), &none)
            .unwrap()
            .unwrap();
        assert_eq!(t.config.get_user(), Some("kv"));
        let t = from_env_or_arg_with(None, &store).unwrap().unwrap();
        assert_eq!(t.config.get_user(), Some("envstore"));
        // A path is the embedded store, even when BATON_STORE names PostgreSQL.
        assert!(from_env_or_arg_with(Some("state"), &store).is_none());
        assert!(from_env_or_arg_with(None, &folder).is_none());
        assert!(from_env_or_arg_with(None, &none).is_none());
        assert!(
            from_env_or_arg_with(Some("postgres://h/d?sslmode=never"), &none)
                .unwrap()
                .is_err()
        );
    }
}
