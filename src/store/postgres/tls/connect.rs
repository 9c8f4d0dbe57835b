//! Making a connection under an address's `sslmode`, as libpq would:
//! `allow` tries in the clear first and over TLS when the server refuses;
//! `prefer` tries TLS first and goes without when the server does not
//! offer it or its certificate fails a check; the other modes try once.
//! A server's unix socket never speaks TLS, so a socket is used in the
//! clear whatever the mode, as libpq does.
//!
//! A refused handshake is worded by [`refusal`]: what failed, under which
//! mode, and what to change.

use std::future::Future;
use std::pin::Pin;

use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::tls::NoTls;
use tokio_postgres::{Client, Config};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::config::client_config;
use super::settings::{Roots, TlsMode, TlsSettings};

/// A connection's task, which must run for its client to be answered.
pub type Driver = Pin<Box<dyn Future<Output = Result<(), tokio_postgres::Error>> + Send>>;

/// What tokio-postgres says when the server answers `N` to the request
/// for TLS.
const NO_TLS_OFFERED: &str = "server does not support TLS";

/// Makes connections under one address's TLS settings, its certificate
/// files read once, when it is made.
#[derive(Clone)]
pub struct Connector {
    mode: TlsMode,
    /// `None` under `sslmode=disable`, which reads no file.
    tls: Option<MakeRustlsConnect>,
}

impl Connector {
    /// Reads the files `settings` name; an error says which file and why.
    pub fn new(settings: &TlsSettings) -> Result<Connector, String> {
        let tls = match settings.mode {
            TlsMode::Disable => None,
            _ => Some(MakeRustlsConnect::new(client_config(settings)?)),
        };
        Ok(Connector {
            mode: settings.mode,
            tls,
        })
    }

    /// One connection to the first host of `config` that takes it, with
    /// libpq's fallbacks for `allow` and `prefer`.
    pub async fn connect(
        &self,
        config: &Config,
    ) -> Result<(Client, Driver), tokio_postgres::Error> {
        let mode = if only_sockets(config) {
            TlsMode::Disable
        } else {
            self.mode
        };
        match mode {
            TlsMode::Disable => self.attempt(config, SslMode::Disable).await,
            TlsMode::Allow => match self.attempt(config, SslMode::Disable).await {
                // The server refused a connection in the clear: try TLS.
                Err(e) if e.as_db_error().is_some() => {
                    tracing::debug!("refused in the clear ({e}); trying TLS (sslmode=allow)");
                    self.attempt(config, SslMode::Prefer).await
                }
                done => done,
            },
            TlsMode::Prefer => match self.attempt(config, SslMode::Prefer).await {
                Err(e) if rustls_error(&e).is_some() => {
                    tracing::debug!("TLS failed ({e}); going without (sslmode=prefer)");
                    self.attempt(config, SslMode::Disable).await
                }
                done => done,
            },
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => {
                self.attempt(config, SslMode::Require).await
            }
        }
    }

    async fn attempt(
        &self,
        config: &Config,
        mode: SslMode,
    ) -> Result<(Client, Driver), tokio_postgres::Error> {
        let mut config = config.clone();
        config.ssl_mode(mode);
        match (&self.tls, mode) {
            (Some(tls), SslMode::Prefer | SslMode::Require) => {
                with_names(&mut config);
                let (client, connection) = config.connect(tls.clone()).await?;
                Ok((client, Box::pin(connection)))
            }
            _ => {
                let (client, connection) = config.connect(NoTls).await?;
                Ok((client, Box::pin(connection)))
            }
        }
    }
}

/// Whether every host is a unix socket, where the server speaks no TLS.
fn only_sockets(config: &Config) -> bool {
    let hosts = config.get_hosts();
    config.get_hostaddrs().is_empty()
        && !hosts.is_empty()
        && hosts.iter().all(|h| !matches!(h, Host::Tcp(_)))
}

/// TLS needs a name for the server: an address given only by `hostaddr`
/// is named by its IP address, which the certificate must then hold under
/// verify-full.
fn with_names(config: &mut Config) {
    if config.get_hosts().is_empty() {
        let addrs: Vec<String> = config
            .get_hostaddrs()
            .iter()
            .map(|a| a.to_string())
            .collect();
        for addr in addrs {
            config.host(&addr);
        }
    }
}

/// The rustls error a failed connection carries, from the handshake or
/// from an alert the server sent just after it.
fn rustls_error(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let source = std::error::Error::source(e)?;
    source
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .or_else(|| source.downcast_ref::<rustls::Error>())
}

/// What went wrong with TLS in `e`, worded for the operator, or `None`
/// when `e` is not about TLS. `host` names the server as messages do.
pub fn refusal(e: &tokio_postgres::Error, settings: &TlsSettings, host: &str) -> Option<String> {
    let mode = settings.mode;
    if let Some(tls) = rustls_error(e) {
        return Some(explain(tls, settings, host));
    }
    let cause = std::error::Error::source(e).map(|c| c.to_string());
    if cause.as_deref() == Some(NO_TLS_OFFERED) {
        return Some(format!(
            "the server at {host} does not offer TLS, and sslmode={mode} needs it\n  help: turn \
             TLS on in the server's postgresql.conf (ssl = on, with ssl_cert_file and \
             ssl_key_file), or connect with sslmode=prefer to go without it"
        ));
    }
    None
}

/// A name as rustls lists a certificate's (`DnsName("db")`,
/// `IpAddress(10.0.0.5)`), as the operator would write it.
fn presented_name(listed: &str) -> &str {
    let inner = listed
        .strip_prefix("DnsName(")
        .or_else(|| listed.strip_prefix("IpAddress("))
        .and_then(|rest| rest.strip_suffix(')'));
    match inner {
        Some(name) => name.trim_matches('"'),
        None => listed,
    }
}

/// A rustls error of a handshake under `settings`, said with what to do.
fn explain(e: &rustls::Error, settings: &TlsSettings, host: &str) -> String {
    use rustls::CertificateError as C;
    let mode = settings.mode;
    let roots = match &settings.roots {
        Some(roots) => roots.to_string(),
        None => "no sslrootcert".to_string(),
    };
    // Under require, prefer and allow a root file is checked only because
    // it exists: say so, since the mode alone promises no check.
    let why_checked = if settings.checks_chain() && !mode.verifies() {
        format!(", which sslmode={mode} checks since the file exists, as libpq does")
    } else {
        String::new()
    };
    match e {
        rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => {
            let names: Vec<&str> = presented.iter().map(|n| presented_name(n)).collect();
            let names = match names.is_empty() {
                true => String::new(),
                false => format!(" (it names {})", names.join(", ")),
            };
            format!(
                "the server's certificate is not for host `{}`{names}; sslmode={mode} checks \
                 that it is\n  help: connect by a name the certificate holds, or use \
                 sslmode=verify-ca to check only that {roots} vouches for it",
                expected.to_str()
            )
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => format!(
            "the certificate of the server at {host} is not for the host name connected to; \
             sslmode={mode} checks that it is\n  help: connect by a name the certificate holds, \
             or use sslmode=verify-ca to check only that {roots} vouches for it"
        ),
        rustls::Error::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            let help = match &settings.roots {
                Some(Roots::System) => "the server's certificate must come from a CA this \
                     machine trusts, or name the CA's file with sslrootcert=PATH"
                    .to_string(),
                _ => "sslrootcert must hold the certificate of the CA that signed the server's \
                     certificate (with sslmode=require and no sslrootcert, TLS encrypts without \
                     checking whom it speaks to)"
                    .to_string(),
            };
            format!(
                "the certificate of the server at {host} failed verification under \
                 sslmode={mode}: it is not signed by a CA in {roots}{why_checked} ({e})\n  \
                 help: {help}"
            )
        }
        rustls::Error::InvalidCertificate(
            C::Expired | C::ExpiredContext { .. } | C::NotValidYet | C::NotValidYetContext { .. },
        ) => format!(
            "the certificate of the server at {host} failed verification under sslmode={mode}: \
             {e}\n  help: the server needs a certificate valid now (or this machine's clock is \
             wrong)"
        ),
        rustls::Error::InvalidCertificate(
            C::Revoked
            | C::UnknownRevocationStatus
            | C::ExpiredRevocationList
            | C::ExpiredRevocationListContext { .. },
        ) => format!(
            "the certificate of the server at {host} failed verification under sslmode={mode}: \
             {e}\n  help: sslcrl and sslcrldir must hold a current revocation list from each \
             CA of the server's chain, and the server a certificate not revoked"
        ),
        rustls::Error::InvalidCertificate(_) => format!(
            "the certificate of the server at {host} failed verification under sslmode={mode} \
             against {roots}{why_checked}: {e}"
        ),
        rustls::Error::AlertReceived(alert) => {
            use rustls::AlertDescription as A;
            let about_ours = matches!(
                alert,
                A::CertificateRequired
                    | A::BadCertificate
                    | A::UnsupportedCertificate
                    | A::CertificateRevoked
                    | A::CertificateExpired
                    | A::CertificateUnknown
                    | A::UnknownCA
                    | A::AccessDenied
            );
            let help = match (&settings.cert, about_ours) {
                (_, false) => "check the server's log for why".to_string(),
                (Some(cert), true) => format!(
                    "the server did not accept this client's certificate, sslcert {}: it must \
                     be signed by a CA in the server's ssl_ca_file",
                    cert.display()
                ),
                (None, true) => "the server wants a client certificate: give one with \
                     sslcert=PATH and sslkey=PATH (or ~/.postgresql/postgresql.crt and .key)"
                    .to_string(),
            };
            format!(
                "the server at {host} ended the TLS handshake (sslmode={mode}): {e}\n  help: \
                 {help}"
            )
        }
        other => format!("TLS with the server at {host} failed (sslmode={mode}): {other}"),
    }
}
