//! The PostgreSQL clusters the tests start: a fresh database answers, two
//! are apart, a private cluster stops and starts again with its data, and
//! nothing is left behind when the test process ends, even when killed.

mod support;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use baton::store::postgres::PgTarget;
use support::pg_cluster::{Cluster, USER, cluster, private_cluster};
use tokio_postgres::{Client, NoTls};

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(conn);
    Ok(client)
}

async fn one(client: &Client, sql: &str) -> String {
    let rows = client.simple_query(sql).await.unwrap();
    rows.iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_string),
            _ => None,
        })
        .unwrap()
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
}

fn gone_within(dir: &Path, pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !dir.exists() && !alive(pid) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[tokio::test]
async fn a_fresh_database_answers() {
    let Some(c) = cluster() else { return };
    let url = c.fresh_db();
    assert!(url.starts_with(&format!("postgres://{USER}@127.0.0.1:{}/", c.port())));
    let client = connect(&url).await.unwrap();
    assert_eq!(one(&client, "SELECT 1").await, "1");

    // Through baton's reading of the address, and over the unix socket.
    let target = PgTarget::parse_with(&url, &|_| None).unwrap();
    let (client, conn) = target.config.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(one(&client, "SELECT current_user").await, USER);
    let db = url.rsplit('/').next().unwrap();
    let client = connect(&c.socket_url(db)).await.unwrap();
    assert_eq!(one(&client, "SELECT current_database()").await, db);
    assert!(
        c.socket_dir()
            .join(format!(".s.PGSQL.{}", c.port()))
            .exists()
    );
}

#[tokio::test]
async fn an_address_filled_from_pg_variables_reaches_the_socket() {
    let Some(c) = cluster() else { return };
    let url = c.fresh_db();
    let db = url.rsplit('/').next().unwrap().to_string();
    let socket_dir = c.socket_dir().to_string_lossy().into_owned();
    let port = c.port().to_string();
    let env = |name: &str| match name {
        "PGHOST" => Some(socket_dir.clone()),
        "PGPORT" => Some(port.clone()),
        "PGUSER" => Some(USER.to_string()),
        "PGDATABASE" => Some(db.clone()),
        "PGAPPNAME" => Some("harness".to_string()),
        _ => None,
    };
    let target = PgTarget::parse_with("schema=harness", &env).unwrap();
    assert_eq!(target.schema, "harness");
    let (client, conn) = target.config.connect(NoTls).await.unwrap();
    tokio::spawn(conn);
    assert_eq!(one(&client, "SELECT current_database()").await, db);
    assert_eq!(one(&client, "SHOW application_name").await, "harness");
    // A unix socket connection has no client address.
    assert_eq!(
        one(
            &client,
            "SELECT coalesce(inet_client_addr()::text, 'socket')"
        )
        .await,
        "socket"
    );
}

#[test]
fn fresh_databases_are_apart_and_made_outside_a_runtime_too() {
    let Some(c) = cluster() else { return };
    let (a, b) = (c.fresh_db(), c.fresh_db());
    assert_ne!(a, b);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ca = connect(&a).await.unwrap();
        let cb = connect(&b).await.unwrap();
        ca.batch_execute("CREATE TABLE only_in_a (x int)")
            .await
            .unwrap();
        let seen = one(
            &cb,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'",
        )
        .await;
        assert_eq!(seen, "0");
        assert_ne!(
            one(&ca, "SELECT current_database()").await,
            one(&cb, "SELECT current_database()").await
        );
    });
}

#[test]
fn many_tests_take_databases_at_once() {
    let Some(c) = cluster() else { return };
    let urls: Vec<String> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..16).map(|_| s.spawn(|| c.fresh_db())).collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let distinct: std::collections::BTreeSet<&String> = urls.iter().collect();
    assert_eq!(distinct.len(), urls.len());
}

#[test]
fn the_shared_cluster_cannot_be_stopped() {
    let Some(c) = cluster() else { return };
    let stop = std::panic::catch_unwind(|| c.stop());
    assert!(stop.is_err());
    let client = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(async { one(&connect(&c.fresh_db()).await.unwrap(), "SELECT 1").await });
    assert_eq!(client, "1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_private_cluster_restarts_keeps_its_data_and_leaves_nothing() {
    let Some(c) = private_cluster() else { return };
    let url = c.fresh_db();
    let client = connect(&url).await.unwrap();
    client
        .batch_execute("CREATE TABLE kept (x int); INSERT INTO kept VALUES (42)")
        .await
        .unwrap();
    let first_pid = c.server_pid().unwrap();

    c.restart();
    assert_ne!(c.server_pid(), Some(first_pid));
    assert!(!alive(first_pid));
    // The old connection is gone; a new one sees the data.
    assert!(client.simple_query("SELECT 1").await.is_err());
    let client = connect(&url).await.unwrap();
    assert_eq!(one(&client, "SELECT x FROM kept").await, "42");

    c.stop();
    assert!(connect(&url).await.is_err());
    c.start();
    let client = connect(&url).await.unwrap();
    assert_eq!(one(&client, "SELECT x FROM kept").await, "42");

    let (dir, pid) = (c.dir().to_path_buf(), c.server_pid().unwrap());
    drop(client);
    drop(c);
    assert!(gone_within(&dir, pid, Duration::from_secs(5)));
}

/// Run by `a_killed_test_process_leaves_no_server`, in a process of its
/// own: starts a cluster, says where it is, and waits to be killed.
#[test]
#[ignore = "a helper, run by a_killed_test_process_leaves_no_server"]
fn helper_starts_a_cluster_and_waits() {
    if std::env::var_os("PG_CLUSTER_HELPER").is_none() {
        return;
    }
    let c: &Cluster = cluster().expect("PostgreSQL, as the parent test found");
    let url = c.fresh_db();
    println!(
        "CLUSTER {} {} {url}",
        c.server_pid().unwrap(),
        c.dir().display()
    );
    std::thread::sleep(Duration::from_secs(120));
}

#[test]
fn a_killed_test_process_leaves_no_server() {
    if cluster().is_none() {
        return;
    }
    let mut helper = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "helper_starts_a_cluster_and_waits",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("PG_CLUSTER_HELPER", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = std::io::BufReader::new(helper.stdout.take().unwrap());
    let line = stdout
        .lines()
        .map_while(Result::ok)
        // libtest may print the test's name on the same line first.
        .find_map(|l| l.split_once("CLUSTER ").map(|(_, rest)| rest.to_string()))
        .expect("the helper's cluster");
    let mut words = line.split(' ');
    let pid: u32 = words.next().unwrap().parse().unwrap();
    let dir = PathBuf::from(words.next().unwrap());
    let url = words.next().unwrap().to_string();
    assert!(alive(pid) && dir.exists());

    helper.kill().unwrap(); // SIGKILL: no destructor, no hook runs
    helper.wait().unwrap();
    assert!(
        gone_within(&dir, pid, Duration::from_secs(10)),
        "server {pid} or {} outlived its test process",
        dir.display()
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    assert!(rt.block_on(connect(&url)).is_err());
}
