//! A real PostgreSQL server for tests, started by the tests themselves: a
//! cluster in a temporary folder, listening on 127.0.0.1 at a free port and
//! on a unix socket in that folder, with one role, `baton_test`, trusted
//! without a password. As root, the server runs as the `postgres` account.
//!
//! [`cluster`] is the one cluster of the test process, shared: each test
//! takes its own database ([`Cluster::fresh_db`]) so that tests run in
//! parallel. A test that stops or restarts the server takes a cluster of
//! its own ([`private_cluster`]), stopped when dropped.
//!
//! A test of TLS takes a cluster that serves it ([`tls_cluster`]), with the
//! certificate and key it is given, and logs each connection, so that the
//! log says which ones were encrypted.
//!
//! Without PostgreSQL's server programs, all return `None` and say why once,
//! so the tests that need them skip; with `BATON_REQUIRE_PG=1` (as in CI)
//! they panic instead, so that skipping never hides a failure.
//!
//! No server outlives the test process, however it ends: a watchdog shell
//! started with each cluster reads a pipe whose only writer is the test
//! process. When the process ends (returns, panics, is killed), the kernel
//! closes the pipe; the watchdog then stops the server at once (SIGQUIT,
//! PostgreSQL's immediate shutdown) and removes the folder.
//!
//! This file depends on std, tempfile, tokio and tokio-postgres only: the
//! library's unit tests include it by path as well as `tests/support`.
#![allow(dead_code)]

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, Once, OnceLock};
use std::time::{Duration, Instant};

/// The role tests connect as.
pub const USER: &str = "baton_test";

/// How long a server may take to accept connections.
const READY_WITHIN: Duration = Duration::from_secs(30);

/// A PostgreSQL server in a temporary folder (`data/`, `sock/`,
/// `server.log`).
pub struct Cluster {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
    /// The account the server runs as when the tests run as root.
    run_as: Option<String>,
    /// The cluster of [`cluster`], which no test may stop.
    shared: bool,
    /// What the server is started with beyond the common settings (TLS).
    extra_args: Vec<String>,
    server: Mutex<Option<Child>>,
    watchdog: Mutex<Option<Child>>,
}

/// The test process's shared cluster, started on first use; `None` when
/// PostgreSQL is not installed (a panic under `BATON_REQUIRE_PG=1`).
pub fn cluster() -> Option<&'static Cluster> {
    static SHARED: OnceLock<Option<Cluster>> = OnceLock::new();
    SHARED
        .get_or_init(|| available().map(|bin| Cluster::start_new(bin, true, None)))
        .as_ref()
}

/// A cluster of the caller's own, for tests that stop or restart the
/// server; stopped and removed when dropped. `None` as for [`cluster`].
pub fn private_cluster() -> Option<Cluster> {
    available().map(|bin| Cluster::start_new(bin, false, None))
}

/// What a [`tls_cluster`] serves TLS with, as PEM text.
pub struct ServerTls {
    /// The server's certificate, with any intermediates after it.
    pub cert: String,
    /// Its private key.
    pub key: String,
    /// The CA certificates a client's certificate is checked against
    /// (`ssl_ca_file`); with them the server asks every client for one,
    /// and shows its subject in `pg_stat_ssl.client_dn`.
    pub client_ca: Option<String>,
}

/// A cluster of the caller's own with `ssl = on` (connections without TLS
/// are still taken) and `log_connections = on`, whose log lines say
/// whether each connection is encrypted. `None` as for [`cluster`].
pub fn tls_cluster(tls: &ServerTls) -> Option<Cluster> {
    available().map(|bin| Cluster::start_new(bin, false, Some(tls)))
}

/// Where the server programs are, or `None` after saying once why not.
fn available() -> Option<PathBuf> {
    match find_bin() {
        Ok(bin) => Some(bin),
        Err(why) => {
            if std::env::var("BATON_REQUIRE_PG").as_deref() == Ok("1") {
                panic!("BATON_REQUIRE_PG=1 but PostgreSQL cannot be used: {why}");
            }
            static SAID: Once = Once::new();
            // Past libtest's capture of `eprintln!`, so that it shows.
            SAID.call_once(|| {
                let _ = writeln!(std::io::stderr(), "skipping the PostgreSQL tests: {why}");
            });
            None
        }
    }
}

/// The folder with `initdb`, `postgres` and `pg_ctl`: `pg_config --bindir`,
/// else the highest `/usr/lib/postgresql/*/bin`, else where `initdb` is on
/// the PATH.
pub fn find_bin() -> Result<PathBuf, String> {
    let complete = |dir: &Path| {
        ["initdb", "postgres", "pg_ctl"]
            .iter()
            .all(|p| dir.join(p).is_file())
    };
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if complete(&dir) {
            return Ok(dir);
        }
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|n| n.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .filter(|(_, bin)| complete(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path) {
        if let Ok(initdb) = dir.join("initdb").canonicalize()
            && let Some(bin) = initdb.parent()
            && complete(bin)
        {
            return Ok(bin.to_path_buf());
        }
    }
    Err(
        "no PostgreSQL server programs (initdb, postgres, pg_ctl) under `pg_config --bindir`, \
         /usr/lib/postgresql/*/bin or the PATH; install PostgreSQL (Debian: apt-get install \
         postgresql) to run these tests"
            .into(),
    )
}

/// Stops the server at once and removes the folder when its standard input
/// reaches its end, which is when the test process ends. `$1` is the folder.
const WATCHDOG: &str = r#"
trap '' INT TERM HUP QUIT PIPE
dir=$1
cat >/dev/null
pids=
for f in "$dir/server.pid" "$dir/data/postmaster.pid"; do
  [ -f "$f" ] || continue
  pid=$(head -n 1 "$f")
  case $pid in ''|*[!0-9]*) continue ;; esac
  # A pid left in a file may belong to another process by now.
  if [ -r "/proc/$pid/comm" ] && [ "$(cat "/proc/$pid/comm")" != postgres ]; then continue; fi
  kill -QUIT "$pid" 2>/dev/null && pids="$pids $pid"
done
# Running, and not a zombie that its new parent has yet to reap.
running() {
  kill -0 "$1" 2>/dev/null || return 1
  [ -r "/proc/$1/stat" ] || return 0
  read -r _ _ state _ <"/proc/$1/stat"
  [ "$state" != Z ]
}
n=0
for pid in $pids; do
  while running "$pid" && [ $n -lt 100 ]; do sleep 0.1; n=$((n + 1)); done
  kill -KILL "$pid" 2>/dev/null
done
rm -rf "$dir"
"#;

impl Cluster {
    fn start_new(bin: PathBuf, shared: bool, tls: Option<&ServerTls>) -> Cluster {
        let run_as = is_root().then(|| "postgres".to_string());
        let dir = make_dir(run_as.as_deref());
        let extra_args = tls.map_or_else(Vec::new, |tls| tls_args(&dir, run_as.as_deref(), tls));
        let watchdog = Command::new("sh")
            .arg("-c")
            .arg(WATCHDOG)
            .arg("pg-watchdog")
            .arg(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the watchdog shell: {e}"));
        let mut cluster = Cluster {
            bin,
            dir,
            port: 0,
            run_as,
            shared,
            extra_args,
            server: Mutex::new(None),
            watchdog: Mutex::new(Some(watchdog)),
        };
        cluster.initdb();
        let mut last = String::new();
        for _ in 0..5 {
            cluster.port = free_port();
            match cluster.spawn_and_wait() {
                Ok(()) => return cluster,
                Err(Failure::PortTaken(log)) => last = log,
                Err(Failure::Other(why)) => panic!("{why}"),
            }
        }
        panic!("no free port for PostgreSQL after 5 tries; its log:\n{last}");
    }

    /// `postgres://baton_test@127.0.0.1:PORT/db`.
    pub fn url(&self, db: &str) -> String {
        format!("postgres://{USER}@127.0.0.1:{}/{db}", self.port)
    }

    /// The same database over the unix socket in [`Cluster::socket_dir`].
    pub fn socket_url(&self, db: &str) -> String {
        let dir: String = self
            .socket_dir()
            .to_string_lossy()
            .bytes()
            .map(|b| match b {
                b'/' => "%2F".to_string(),
                b => (b as char).to_string(),
            })
            .collect();
        format!("postgres://{USER}@{dir}:{}/{db}", self.port)
    }

    /// The folder of the server's unix socket.
    pub fn socket_dir(&self) -> PathBuf {
        self.dir.join("sock")
    }

    /// The server's TCP port on 127.0.0.1 (also the socket's number).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's temporary folder, removed when it stops for good.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's process id while it runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.lock().unwrap().as_ref().map(Child::id)
    }

    /// What the server has logged so far.
    pub fn server_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Creates a database of a name no other test has and returns its URL.
    /// Works inside and outside a tokio runtime.
    pub fn fresh_db(&self) -> String {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "t{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = self.url("postgres");
        let sql = format!("CREATE DATABASE \"{name}\"");
        block_on(async move {
            let (client, conn) = tokio_postgres::connect(&admin, tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.batch_execute(&sql).await
        })
        .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {}", error_text(&e)));
        self.url(&name)
    }

    /// Stops the server (`pg_ctl stop -m fast`) and starts it again on the
    /// same port and data.
    pub fn restart(&self) {
        self.stop();
        self.start();
    }

    /// Stops the server as `pg_ctl stop -m fast` does: connections are
    /// closed, what was committed is kept. Only for a [`private_cluster`].
    pub fn stop(&self) {
        self.refuse_if_shared("stop");
        let mut server = self.server.lock().unwrap();
        let Some(mut child) = server.take() else {
            return;
        };
        let out = self
            .command("pg_ctl")
            .arg("stop")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "60"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run pg_ctl: {e}"));
        if !out.status.success() {
            panic!(
                "pg_ctl stop failed: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let _ = child.wait();
        let _ = std::fs::remove_file(self.dir.join("server.pid"));
    }

    /// Starts a stopped server again, on the same port and data, and waits
    /// until it accepts connections. Only for a [`private_cluster`].
    pub fn start(&self) {
        self.refuse_if_shared("start");
        if self.server.lock().unwrap().is_some() {
            return;
        }
        // The port was ours a moment ago; another process may take it in
        // between, which fails the start with the server's log.
        if let Err(Failure::PortTaken(log) | Failure::Other(log)) = self.spawn_and_wait() {
            panic!(
                "PostgreSQL did not start again on port {}:\n{log}",
                self.port
            );
        }
    }

    fn refuse_if_shared(&self, what: &str) {
        if self.shared {
            panic!(
                "cannot {what} the shared cluster: other tests use it; take a private_cluster()"
            );
        }
    }

    /// A server program, run as the server's account when we are root.
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut cmd = match &self.run_as {
            None => Command::new(path),
            Some(user) => {
                let mut cmd = Command::new("setpriv");
                cmd.args(["--reuid", user, "--regid", user, "--init-groups", "--"])
                    .arg(path);
                cmd
            }
        };
        cmd.current_dir(&self.dir).stdin(Stdio::null());
        cmd
    }

    fn initdb(&self) {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args([
                "-A",
                "trust",
                "-U",
                USER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        if !out.status.success() {
            panic!(
                "initdb failed ({}):\n{}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    /// Starts the server and waits until it accepts connections.
    fn spawn_and_wait(&self) -> Result<(), Failure> {
        let log_path = self.dir.join("server.log");
        let log = File::options()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log_path.display()));
        let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let mut child = self
            .command("postgres")
            .arg("-D")
            .arg(self.dir.join("data"))
            .arg("-k")
            .arg(self.socket_dir())
            .args(["-c", "listen_addresses=127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-F", "-c", "max_connections=300", "-c", "fsync=off"])
            .args(["-c", "shared_buffers=64MB"])
            .args(&self.extra_args)
            .stdout(log.try_clone().expect("the log's handle"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        // For the watchdog, before the server has written its own pid file.
        let _ = std::fs::write(self.dir.join("server.pid"), format!("{}\n", child.id()));
        let this_start = || {
            let log = self.server_log();
            log.get(log_start as usize..).unwrap_or(&log).to_string()
        };

        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = child.try_wait().ok().flatten() {
                let _ = std::fs::remove_file(self.dir.join("server.pid"));
                let log = this_start();
                return Err(if port_taken(&log) {
                    Failure::PortTaken(log)
                } else {
                    Failure::Other(exited(status, &log))
                });
            }
            if self.accepts_connections() {
                *self.server.lock().unwrap() = Some(child);
                return Ok(());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Failure::Other(format!(
                    "PostgreSQL did not accept connections on port {} within {}s; its log:\n{}",
                    self.port,
                    READY_WITHIN.as_secs(),
                    this_start()
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn accepts_connections(&self) -> bool {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user(USER)
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(2));
        block_on(async move {
            let (client, conn) = config.connect(tokio_postgres::NoTls).await?;
            tokio::spawn(conn);
            client.simple_query("SELECT 1").await.map(|_| ())
        })
        .is_ok()
    }
}

impl Drop for Cluster {
    /// Stops the server at once (SIGQUIT) and lets the watchdog remove the
    /// folder.
    fn drop(&mut self) {
        if let Some(mut child) = self
            .server
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            // The shell's own `kill`: /bin/kill is not on every machine.
            let _ = Command::new("sh")
                .args(["-c", "kill -QUIT \"$1\"", "sh", &child.id().to_string()])
                .status();
            let _ = child.wait();
            let _ = std::fs::remove_file(self.dir.join("server.pid"));
        }
        if let Some(mut watchdog) = self
            .watchdog
            .get_mut()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            drop(watchdog.stdin.take());
            let _ = watchdog.wait();
        }
    }
}

enum Failure {
    /// Another process took the port: try another.
    PortTaken(String),
    Other(String),
}

fn port_taken(log: &str) -> bool {
    log.contains("Address already in use") || log.contains("could not create any TCP/IP sockets")
}

fn exited(status: ExitStatus, log: &str) -> String {
    format!("PostgreSQL exited ({status}) before accepting connections; its log:\n{log}")
}

/// A port nobody listens on now (the server may still lose it to another
/// process before it binds, which `start_new` retries).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port on 127.0.0.1: {e}"))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A fresh folder with `sock/`, owned by `owner` when given. Under /tmp for
/// root, whose temp dir the server's account may not reach, and when the
/// temp dir's path is too long for a socket's.
fn make_dir(owner: Option<&str>) -> PathBuf {
    let temp = std::env::temp_dir();
    let base = if owner.is_some() || temp.as_os_str().len() > 60 {
        PathBuf::from("/tmp")
    } else {
        temp
    };
    let dir = tempfile::Builder::new()
        .prefix("baton-pg-")
        .tempdir_in(&base)
        .unwrap_or_else(|e| panic!("cannot make a folder in {}: {e}", base.display()))
        .keep();
    std::fs::create_dir(dir.join("sock")).expect("the socket folder");
    if let Some(user) = owner {
        for path in [dir.clone(), dir.join("sock")] {
            give(&path, user);
        }
    }
    dir
}

/// Makes `path` `user`'s (and their group's).
fn give(path: &Path, user: &str) {
    let id = |flag: &str| -> u32 {
        let out = Command::new("id")
            .args([flag, user])
            .output()
            .unwrap_or_else(|e| panic!("cannot run id: {e}"));
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("no account `{user}` to run PostgreSQL as (not root)"))
    };
    std::os::unix::fs::chown(path, Some(id("-u")), Some(id("-g")))
        .unwrap_or_else(|e| panic!("cannot give {} to {user}: {e}", path.display()));
}

/// Writes the server's certificate files into `dir` (u=rw and the
/// server's, which PostgreSQL insists on for the key) and returns the
/// settings that serve TLS with them.
fn tls_args(dir: &Path, owner: Option<&str>, tls: &ServerTls) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    let mut files = vec![("ssl_cert_file", "server.crt", &tls.cert)];
    files.push(("ssl_key_file", "server.key", &tls.key));
    if let Some(ca) = &tls.client_ca {
        files.push(("ssl_ca_file", "client_ca.crt", ca));
    }
    let mut args = vec!["-c".to_string(), "ssl=on".to_string()];
    args.extend(["-c".to_string(), "log_connections=on".to_string()]);
    for (setting, name, text) in files {
        let path = dir.join(name);
        std::fs::write(&path, text)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("cannot chmod {}: {e}", path.display()));
        if let Some(user) = owner {
            give(&path, user);
        }
        args.extend(["-c".to_string(), format!("{setting}={}", path.display())]);
    }
    args
}

/// Runs `fut` on a runtime of its own in a thread of its own, so that it
/// works inside a tokio runtime as well as outside.
fn block_on<F>(fut: F) -> F::Output
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a tokio runtime")
                    .block_on(fut)
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn error_text(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}
