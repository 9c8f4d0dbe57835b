//! TLS to PostgreSQL under libpq's `sslmode`, against a real server that
//! serves it with certificates made here (a CA, a server certificate for
//! `localhost` and 127.0.0.1, a client certificate, and a CA that signed
//! none of them): a run over `verify-full` completes and the server logs
//! every one of its connections as encrypted; a certificate for another
//! host, a CA that did not sign the server's, a server without TLS and a
//! missing `sslrootcert` are each refused with what is wrong and what to
//! do (exit 2); `require`, `prefer`, `allow` and `disable` choose as libpq
//! does; a client certificate is sent when the server asks. Skipped
//! without PostgreSQL (unless `BATON_REQUIRE_PG=1`).

#[path = "support/cli.rs"]
mod cli;
#[path = "support/pg_cluster.rs"]
mod pg_cluster;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use baton::store::postgres::{PgTarget, runtime};
use cli::{Out, Sandbox, output};
use pg_cluster::{Cluster, ServerTls, cluster, tls_cluster};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use serde_json::json;

/// One phase on a simulated agent that always succeeds.
const PIPELINE: &str = r#"
name = "pg-tls"

[agents.sim]
kind = "sim"
latency = "0ms..0ms"
tokens = "100..100"
fail_rate = 0.0
review_rate = 0.0
block_rate = 0.0

[[phases]]
id = "a"
agent = "sim"
"#;

const TASKS: usize = 6;

/// A name no certificate here holds; connections to it go to 127.0.0.1
/// through `hostaddr`.
const OTHER_HOST: &str = "db.elsewhere.example";

/// The certificates of these tests, as PEM text.
struct Pki {
    /// The CA that signed the server's and the client's certificates.
    ca: String,
    /// A CA that signed neither.
    other_ca: String,
    server_cert: String,
    server_key: String,
    /// For the role `baton_test`.
    client_cert: String,
    client_key: String,
}

fn pki() -> &'static Pki {
    static PKI: OnceLock<Pki> = OnceLock::new();
    PKI.get_or_init(|| {
        let (ca, ca_key, ca_params) = make_ca("baton test CA");
        let (other_ca, _, _) = make_ca("some other CA");
        let issuer = Issuer::new(ca_params, ca_key);

        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        let server_cert = params.signed_by(&server_key, &issuer).unwrap();

        let client_key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, pg_cluster::USER);
        let client_cert = params.signed_by(&client_key, &issuer).unwrap();

        Pki {
            ca,
            other_ca,
            server_cert: server_cert.pem(),
            server_key: server_key.serialize_pem(),
            client_cert: client_cert.pem(),
            client_key: client_key.serialize_pem(),
        }
    })
}

/// A self-signed CA: its certificate's PEM, its key and its parameters.
fn make_ca(name: &str) -> (String, KeyPair, CertificateParams) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key, params)
}

/// The cluster serving TLS with the server certificate, asking clients
/// for one of the CA's; shared by the tests of this file.
fn tls() -> Option<&'static Cluster> {
    static TLS: OnceLock<Option<Cluster>> = OnceLock::new();
    TLS.get_or_init(|| {
        let pki = pki();
        tls_cluster(&ServerTls {
            cert: pki.server_cert.clone(),
            key: pki.server_key.clone(),
            client_ca: Some(pki.ca.clone()),
        })
    })
    .as_ref()
}

/// A sandbox with the pipeline, the tasks, an empty home folder and the
/// certificates: `ca.crt`, `other_ca.crt`, `client.crt`, `client.key`
/// (u=rw).
fn sandbox() -> Sandbox {
    let sb = Sandbox::new();
    sb.write("pipeline.toml", PIPELINE);
    let tasks: Vec<_> = (1..=TASKS)
        .map(|i| json!({"id": format!("t{i}"), "n": i}))
        .collect();
    sb.inputs(&tasks);
    std::fs::create_dir(sb.path("home")).unwrap();
    let pki = pki();
    sb.write("ca.crt", &pki.ca);
    sb.write("other_ca.crt", &pki.other_ca);
    sb.write("client.crt", &pki.client_cert);
    let key = sb.write("client.key", &pki.client_key);
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600)).unwrap();
    sb
}

/// The sandbox's home folder, for `~/.postgresql/`.
fn home(sb: &Sandbox) -> PathBuf {
    sb.path("home")
}

/// `baton run pipeline.toml --headless --input tasks.jsonl --store STORE`,
/// with the sandbox's home folder and no `PG…` variable of the caller's.
fn run(sb: &Sandbox, store: &str) -> Out {
    let mut cmd = cli::baton();
    for var in [
        "BATON_STORE",
        "PGSSLMODE",
        "PGSSLROOTCERT",
        "PGSSLCERT",
        "PGSSLKEY",
        "PGSERVICE",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("HOME", home(sb))
        .arg("run")
        .arg(sb.path("pipeline.toml"))
        .args(["--headless", "--input"])
        .arg(sb.path("tasks.jsonl"))
        .arg("--state-dir")
        .arg(sb.path("state"))
        .arg("--store")
        .arg(store);
    output(&mut cmd)
}

/// What the server says of a connection baton makes to `address` (read
/// with `HOME` as the only variable): whether it is encrypted, and the
/// common name of the client's certificate. `Err`: why baton could not
/// connect.
fn session(address: &str, home: &Path) -> Result<(bool, Option<String>), String> {
    let home = home.to_string_lossy().into_owned();
    let target = PgTarget::parse_with(address, &|name| (name == "HOME").then(|| home.clone()))?;
    runtime::block_on(async move {
        let client = runtime::connect(&target).await?;
        let row = client
            .query_one(
                "SELECT ssl, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await?;
        let subject: Option<String> = row.get(1);
        let name = subject.map(|dn| dn.rsplit("CN=").next().unwrap_or("").to_string());
        Ok((row.get(0), name))
    })
    .map_err(|e| e.to_string())
}

/// `url` with `?` or `&` and `query` added.
fn with(url: &str, query: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{query}")
}

/// The log lines of the connections baton (its `application_name`) made
/// to database `db`.
fn batons_connections(c: &Cluster, db: &str) -> Vec<String> {
    c.server_log()
        .lines()
        .filter(|l| l.contains("connection authorized"))
        .filter(|l| l.contains(&format!("database={db} ")) && l.contains("application_name=baton"))
        .map(str::to_string)
        .collect()
}

/// The database a URL names.
fn db_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap().split('?').next().unwrap()
}

#[track_caller]
fn assert_refused(out: &Out, says: &[&str]) {
    out.expect(2);
    for text in says {
        assert!(out.stderr.contains(text), "stderr lacks `{text}`\n{out}");
    }
    assert!(!out.stderr.contains("panicked"), "{out}");
}

#[test]
fn a_run_over_verify_full_completes_and_every_connection_is_encrypted() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let db = c.fresh_db();
    let store = with(
        &db,
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            sb.path("ca.crt").display()
        ),
    );
    let out = run(&sb, &store);
    out.expect(0);
    let done = out.rest_lines();
    assert_eq!(done.len(), TASKS, "{out}");
    assert!(done.iter().all(|(_, state)| state == "completed"), "{out}");

    // A reader's pool connects through the same place.
    let mut list = cli::baton();
    list.env("HOME", home(&sb))
        .args(["list", "--json", "--store", &store, "--state-dir"])
        .arg(sb.path("other"));
    let listed = output(&mut list);
    listed.expect(0);
    assert!(listed.stdout.contains("\"t6\""), "{listed}");

    let lines = batons_connections(c, db_of(&db));
    assert!(
        lines.len() >= 2,
        "the server logged baton's connections:\n{}",
        c.server_log()
    );
    for line in &lines {
        assert!(line.contains("SSL enabled"), "in the clear: {line}");
    }
    // And the server says so of a connection made the same way.
    assert_eq!(session(&store, &home(&sb)), Ok((true, None)));
}

#[test]
fn verify_full_refuses_a_certificate_for_another_host_and_verify_ca_takes_it() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let store = format!(
        "postgres://{}@{OTHER_HOST}:{}/{}?hostaddr=127.0.0.1&sslrootcert={}",
        pg_cluster::USER,
        c.port(),
        db_of(&c.fresh_db()),
        sb.path("ca.crt").display()
    );
    let out = run(&sb, &with(&store, "sslmode=verify-full"));
    assert_refused(
        &out,
        &[
            &format!("not for host `{OTHER_HOST}`"),
            "localhost",
            "sslmode=verify-full checks that it is",
            "sslmode=verify-ca",
        ],
    );
    // The chain is good: verify-ca connects, encrypted.
    assert_eq!(
        session(&with(&store, "sslmode=verify-ca"), &home(&sb)),
        Ok((true, None))
    );
}

#[test]
fn verify_ca_refuses_a_server_signed_by_another_ca() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let other = sb.path("other_ca.crt");
    let store = with(
        &c.fresh_db(),
        &format!("sslmode=verify-ca&sslrootcert={}", other.display()),
    );
    let out = run(&sb, &store);
    assert_refused(
        &out,
        &[
            "failed verification under sslmode=verify-ca",
            &format!("not signed by a CA in sslrootcert {}", other.display()),
            "sslrootcert must hold the certificate of the CA that signed the server's",
        ],
    );
}

#[test]
fn require_without_a_root_encrypts_without_checking() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let db = c.fresh_db();
    let store = with(&db, "sslmode=require");
    run(&sb, &store).expect(0);
    let lines = batons_connections(c, db_of(&db));
    assert!(
        !lines.is_empty(),
        "no connection logged:\n{}",
        c.server_log()
    );
    for line in &lines {
        assert!(line.contains("SSL enabled"), "in the clear: {line}");
    }
    assert_eq!(session(&store, &home(&sb)), Ok((true, None)));
}

#[test]
fn require_is_refused_by_a_server_without_tls() {
    let Some(plain) = cluster() else { return };
    let sb = sandbox();
    let out = run(&sb, &with(&plain.fresh_db(), "sslmode=require"));
    assert_refused(
        &out,
        &[
            &format!(
                "the server at 127.0.0.1:{} does not offer TLS",
                plain.port()
            ),
            "sslmode=require needs it",
            "ssl = on",
        ],
    );
    // verify-full too, before any file matters.
    let e = session(
        &with(&plain.fresh_db(), "sslmode=verify-full&sslrootcert=system"),
        &home(&sb),
    )
    .unwrap_err();
    assert!(e.contains("does not offer TLS"), "{e}");
}

#[test]
fn a_missing_sslrootcert_is_named() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let missing = sb.path("nowhere/ca.crt");
    let out = run(
        &sb,
        &with(
            &c.fresh_db(),
            &format!("sslmode=verify-full&sslrootcert={}", missing.display()),
        ),
    );
    assert_refused(
        &out,
        &[
            &format!("sslrootcert {} does not exist", missing.display()),
            "sslrootcert=system",
            "sslmode=require",
        ],
    );
    // With none given, verify-* names where it looked.
    let e = session(&with(&c.fresh_db(), "sslmode=verify-ca"), &home(&sb)).unwrap_err();
    let default = home(&sb).join(".postgresql/root.crt");
    assert!(
        e.contains(&format!("sslrootcert {} does not exist", default.display())),
        "{e}"
    );
}

#[test]
fn prefer_allow_and_disable_choose_as_libpq_does() {
    let (Some(c), Some(plain)) = (tls(), cluster()) else {
        return;
    };
    let sb = sandbox();
    let db = c.fresh_db();
    let home = home(&sb);
    // prefer (the default) takes TLS when offered, goes without otherwise.
    assert_eq!(session(&db, &home), Ok((true, None)));
    assert_eq!(
        session(&with(&db, "sslmode=prefer"), &home),
        Ok((true, None))
    );
    assert_eq!(session(&plain.fresh_db(), &home), Ok((false, None)));
    // allow tries in the clear first, which this server takes.
    assert_eq!(
        session(&with(&db, "sslmode=allow"), &home),
        Ok((false, None))
    );
    assert_eq!(
        session(&with(&db, "sslmode=disable"), &home),
        Ok((false, None))
    );
    // The server's unix socket speaks no TLS: libpq uses it in the clear
    // whatever the mode.
    let socket = with(
        &c.socket_url(db_of(&db)),
        &format!(
            "sslmode=verify-full&sslrootcert={}",
            sb.path("ca.crt").display()
        ),
    );
    assert_eq!(session(&socket, &home), Ok((false, None)));
}

#[test]
fn the_default_root_file_is_checked_even_under_require() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let db = c.fresh_db();
    let home = home(&sb);
    let dir = home.join(".postgresql");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("root.crt"), &pki().other_ca).unwrap();
    let e = session(&with(&db, "sslmode=require"), &home).unwrap_err();
    assert!(
        e.contains(&format!("sslrootcert {}", dir.join("root.crt").display())),
        "{e}"
    );
    assert!(
        e.contains("sslmode=require checks since the file exists"),
        "{e}"
    );
    // prefer goes without TLS rather than fail, as libpq does.
    assert_eq!(session(&db, &home), Ok((false, None)));

    std::fs::write(dir.join("root.crt"), &pki().ca).unwrap();
    let url = format!(
        "postgres://{}@localhost:{}/{}?sslmode=verify-full",
        pg_cluster::USER,
        c.port(),
        db_of(&db)
    );
    assert_eq!(session(&url, &home), Ok((true, None)));
}

#[test]
fn a_client_certificate_is_sent_when_the_server_asks() {
    let Some(c) = tls() else { return };
    let sb = sandbox();
    let db = with(&c.fresh_db(), "sslmode=require");
    let home = home(&sb);
    let subject = Some(pg_cluster::USER.to_string());
    assert_eq!(session(&db, &home), Ok((true, None)));
    let given = with(
        &db,
        &format!(
            "sslcert={}&sslkey={}",
            sb.path("client.crt").display(),
            sb.path("client.key").display()
        ),
    );
    assert_eq!(session(&given, &home), Ok((true, subject.clone())));
    // sslcertmode=disable keeps it back.
    assert_eq!(
        session(&with(&given, "sslcertmode=disable"), &home),
        Ok((true, None))
    );

    // The defaults under ~/.postgresql/.
    let dir = home.join(".postgresql");
    std::fs::create_dir(&dir).unwrap();
    std::fs::copy(sb.path("client.crt"), dir.join("postgresql.crt")).unwrap();
    std::fs::copy(sb.path("client.key"), dir.join("postgresql.key")).unwrap();
    assert_eq!(session(&db, &home), Ok((true, subject)));

    // A key others may read is refused, as libpq does.
    let key = dir.join("postgresql.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = session(&db, &home).unwrap_err();
    assert!(
        e.contains(&format!(
            "sslkey {} has group or world access",
            key.display()
        )),
        "{e}"
    );
    assert!(e.contains("chmod 600"), "{e}");
}
