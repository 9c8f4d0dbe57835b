//! What an address says about TLS, read as libpq reads it: `sslmode`, the
//! certificate files and their defaults under `~/.postgresql/`, SNI, the
//! protocol versions. Reading them touches no file but to see whether a
//! default one exists; the files are read when a connection is made
//! ([`super::config`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// libpq's `sslmode`: whether to speak TLS, and what to check of the
/// server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// In the clear.
    Disable,
    /// In the clear; over TLS if the server refuses a connection without.
    Allow,
    /// Over TLS when the server offers it, else in the clear (the default).
    Prefer,
    /// Over TLS or not at all; the certificate is checked only against a
    /// root certificate file that exists.
    Require,
    /// Over TLS, the server's certificate chained to `sslrootcert`.
    VerifyCa,
    /// As `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl TlsMode {
    /// The word libpq spells the mode with.
    pub fn as_str(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Allow => "allow",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        }
    }

    fn parse(text: &str) -> Result<TlsMode, String> {
        Ok(match text {
            "disable" => TlsMode::Disable,
            "allow" => TlsMode::Allow,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode `{}` is not one of disable, allow, prefer, require, verify-ca, verify-full",
                    other.escape_debug()
                ));
            }
        })
    }

    /// Whether the mode insists on a checked certificate.
    pub fn verifies(self) -> bool {
        matches!(self, TlsMode::VerifyCa | TlsMode::VerifyFull)
    }

    /// Whether the connection fails rather than go without TLS.
    pub fn insists(self) -> bool {
        matches!(
            self,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull
        )
    }
}

impl std::fmt::Display for TlsMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the server's certificate must chain to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Roots {
    /// The CA certificates in a PEM file (`sslrootcert=PATH`, or
    /// `~/.postgresql/root.crt`).
    File(PathBuf),
    /// The machine's trusted roots (`sslrootcert=system`).
    System,
}

impl std::fmt::Display for Roots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Roots::File(path) => write!(f, "sslrootcert {}", path.display()),
            Roots::System => f.write_str("sslrootcert=system (this machine's trusted roots)"),
        }
    }
}

/// A TLS protocol version rustls speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum TlsVersion {
    Tls12,
    Tls13,
}

/// How to speak TLS to the server: the mode and every file it needs, each
/// path one to read (a default file is here only when it exists).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    /// What the server's certificate is checked against; `None`: it is not
    /// checked (libpq's `require`, `prefer` and `allow` without a root
    /// certificate file).
    pub roots: Option<Roots>,
    /// The client's certificate chain (`sslcert`), sent when the server
    /// asks for one.
    pub cert: Option<PathBuf>,
    /// The client certificate's private key (`sslkey`).
    pub key: Option<PathBuf>,
    /// Revocation lists for the server's chain: a PEM file (`sslcrl`)…
    pub crl: Option<PathBuf>,
    /// …and a folder of them (`sslcrldir`).
    pub crl_dir: Option<PathBuf>,
    /// Whether the host name goes in the handshake (`sslsni`).
    pub sni: bool,
    /// The lowest and highest protocol versions allowed.
    pub min_version: TlsVersion,
    pub max_version: TlsVersion,
}

/// The keys this module reads (and takes out of the address).
pub const TLS_KEYS: &[&str] = &[
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslcrldir",
    "sslpassword",
    "sslsni",
    "sslcompression",
    "sslcertmode",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
];

/// libpq's folder of default certificate files, under the home folder.
const DEFAULT_DIR: &str = ".postgresql";

impl Default for TlsSettings {
    /// libpq's defaults with no file at hand: `prefer`, nothing checked.
    fn default() -> TlsSettings {
        TlsSettings {
            mode: TlsMode::Prefer,
            roots: None,
            cert: None,
            key: None,
            crl: None,
            crl_dir: None,
            sni: true,
            min_version: TlsVersion::Tls12,
            max_version: TlsVersion::Tls13,
        }
    }
}

impl TlsSettings {
    /// Takes the TLS keys out of `params` (the address's, the service's and
    /// the environment's, already merged) and fills the files it leaves out
    /// from `home`'s `.postgresql/` folder, as libpq does.
    pub fn take_from(
        params: &mut BTreeMap<String, String>,
        home: Option<&Path>,
    ) -> Result<TlsSettings, String> {
        let mut take = |key: &str| params.remove(key);
        let given_mode = take("sslmode").map(|m| TlsMode::parse(&m)).transpose()?;
        let given_root = take("sslrootcert");
        let given_cert = take("sslcert");
        let given_key = take("sslkey");
        let given_crl = take("sslcrl");
        let crl_dir = take("sslcrldir").map(PathBuf::from);
        let sni = match take("sslsni").as_deref() {
            None | Some("1") => true,
            Some("0") => false,
            Some(other) => {
                return Err(format!("sslsni `{}` is not 0 or 1", other.escape_debug()));
            }
        };
        let client_cert = match take("sslcertmode").as_deref() {
            None | Some("allow") => true,
            Some("disable") => false,
            Some("require") => {
                return Err(
                    "sslcertmode=require is not supported: baton cannot tell whether the \
                     server asked for the client certificate; use sslcertmode=allow (the \
                     default), and have the server insist on one (`hostssl … cert` in \
                     pg_hba.conf)"
                        .into(),
                );
            }
            Some(other) => {
                return Err(format!(
                    "sslcertmode `{}` is not one of disable, allow, require",
                    other.escape_debug()
                ));
            }
        };
        let min_version = match take("ssl_min_protocol_version") {
            None => TlsVersion::Tls12,
            Some(v) => version("ssl_min_protocol_version", &v)?.unwrap_or(TlsVersion::Tls12),
        };
        let max_version = match take("ssl_max_protocol_version") {
            None => TlsVersion::Tls13,
            Some(v) => match version("ssl_max_protocol_version", &v)? {
                Some(v) => v,
                None => {
                    return Err(format!(
                        "ssl_max_protocol_version `{}`: baton speaks TLS 1.2 and 1.3 only \
                         (TLSv1.2, TLSv1.3)",
                        v.escape_debug()
                    ));
                }
            },
        };
        if min_version > max_version {
            return Err(
                "ssl_min_protocol_version is above ssl_max_protocol_version: no protocol \
                 version is left to speak"
                    .into(),
            );
        }
        // libpq keeps these for OpenSSL; rustls reads no encrypted key and
        // compresses nothing, so they change nothing here.
        take("sslpassword");
        take("sslcompression");

        let direct = params.get("sslnegotiation").map(String::as_str) == Some("direct");

        let system = given_root.as_deref() == Some("system");
        let mode = match given_mode {
            // libpq: the system's roots are worth nothing without the name
            // check, so they make verify-full the default and refuse less.
            None if system => TlsMode::VerifyFull,
            None => TlsMode::Prefer,
            Some(mode) if system && mode != TlsMode::VerifyFull => {
                return Err(format!(
                    "sslmode={mode} may not be used with sslrootcert=system: the machine's \
                     roots vouch for names, so use sslmode=verify-full"
                ));
            }
            Some(mode) => mode,
        };
        if direct && !mode.insists() {
            return Err(format!(
                "sslmode={mode} may not be used with sslnegotiation=direct, which starts with \
                 TLS: use sslmode=require, verify-ca or verify-full"
            ));
        }
        if mode == TlsMode::Disable {
            return Ok(TlsSettings {
                mode,
                ..TlsSettings::default()
            });
        }

        let home_dir = home.map(|h| h.join(DEFAULT_DIR));
        // A given file must be there when read; a default one counts only
        // when it exists.
        let default_file = |name: &str| {
            home_dir
                .as_ref()
                .map(|dir| dir.join(name))
                .filter(|p| p.is_file())
        };
        let roots = match given_root {
            Some(_) if system => Some(Roots::System),
            Some(path) => Some(Roots::File(PathBuf::from(path))),
            None => match default_file("root.crt") {
                Some(path) => Some(Roots::File(path)),
                // verify-* reads the default file even when it is missing,
                // which then says where it was looked for.
                None if mode.verifies() => match &home_dir {
                    Some(dir) => Some(Roots::File(dir.join("root.crt"))),
                    None => {
                        return Err(format!(
                            "sslmode={mode} needs the CA certificate that signed the server's: \
                             name its file with sslrootcert=PATH (no home folder to look for \
                             ~/{DEFAULT_DIR}/root.crt in), or use sslrootcert=system"
                        ));
                    }
                },
                None => None,
            },
        };
        let crl = match given_crl {
            Some(path) => Some(PathBuf::from(path)),
            None if matches!(roots, Some(Roots::File(_))) => default_file("root.crl"),
            None => None,
        };
        let (cert, key) = if client_cert {
            let cert = given_cert
                .map(PathBuf::from)
                .or_else(|| default_file("postgresql.crt"));
            let key = given_key.map(PathBuf::from).or_else(|| {
                cert.as_ref()?;
                home_dir.as_ref().map(|dir| dir.join("postgresql.key"))
            });
            (cert, key)
        } else {
            (None, None)
        };
        Ok(TlsSettings {
            mode,
            roots,
            cert,
            key,
            crl,
            crl_dir,
            sni,
            min_version,
            max_version,
        })
    }

    /// The mode tokio-postgres is given: it knows only disable, prefer and
    /// require; the checks of the certificate are the connector's.
    pub fn driver_mode(&self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode;
        match self.mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Allow | TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => SslMode::Require,
        }
    }

    /// Whether the server's certificate is checked against `roots` (also
    /// under `require`, `prefer` and `allow` when a root file exists, as
    /// libpq does).
    pub fn checks_chain(&self) -> bool {
        self.roots.is_some()
    }

    /// Whether the certificate must also name the host.
    pub fn checks_name(&self) -> bool {
        self.mode == TlsMode::VerifyFull
    }
}

/// A protocol version as libpq spells it; `None` for TLS 1.0 and 1.1,
/// which rustls does not speak.
fn version(key: &str, text: &str) -> Result<Option<TlsVersion>, String> {
    match text.to_ascii_lowercase().as_str() {
        "tlsv1" | "tlsv1.1" => Ok(None),
        "tlsv1.2" => Ok(Some(TlsVersion::Tls12)),
        "tlsv1.3" => Ok(Some(TlsVersion::Tls13)),
        _ => Err(format!(
            "{key} `{}` is not one of TLSv1, TLSv1.1, TLSv1.2, TLSv1.3",
            text.escape_debug()
        )),
    }
}
