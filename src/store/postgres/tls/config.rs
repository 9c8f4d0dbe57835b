//! The rustls client configuration that [`TlsSettings`] ask for, from the
//! files they name. Every error names the file and the key it came from,
//! and says what to do.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::{ClientConfig, RootCertStore};

use super::settings::{Roots, TlsSettings, TlsVersion};
use super::verify::{AnyCertificate, ChainOnly};

/// The protocol PostgreSQL names in ALPN; PostgreSQL 17 insists on it for
/// `sslnegotiation=direct`, and older servers ignore it.
const ALPN_POSTGRESQL: &[u8] = b"postgresql";

/// What to do when the CA certificate cannot be had, as libpq words it.
const ROOT_HELP: &str = "\n  help: name the file of the CA certificate that signed the \
     server's certificate with sslrootcert=PATH, use this machine's trusted roots with \
     sslrootcert=system, or use sslmode=require to encrypt without checking the server";

/// The client configuration for `settings`, its files read now.
pub fn client_config(settings: &TlsSettings) -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = [
        (TlsVersion::Tls12, &rustls::version::TLS12),
        (TlsVersion::Tls13, &rustls::version::TLS13),
    ]
    .into_iter()
    .filter(|(v, _)| (settings.min_version..=settings.max_version).contains(v))
    .map(|(_, version)| version)
    .collect();
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("TLS cannot be set up: {e}"))?;

    let verifier: Arc<dyn rustls::client::danger::ServerCertVerifier> = match &settings.roots {
        None => Arc::new(AnyCertificate::new(provider.clone())),
        Some(roots) => {
            let full = WebPkiServerVerifier::builder_with_provider(
                Arc::new(root_store(roots)?),
                provider.clone(),
            )
            .with_crls(revocation_lists(settings)?)
            .build()
            .map_err(|e| format!("the server's certificate cannot be checked: {e}"))?;
            if settings.checks_name() {
                full
            } else {
                Arc::new(ChainOnly::new(full))
            }
        }
    };
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier);

    let mut config = match (&settings.cert, &settings.key) {
        (None, _) => builder.with_no_client_auth(),
        (Some(cert), None) => {
            return Err(format!(
                "sslcert {} has no key: name its file with sslkey=PATH",
                cert.display()
            ));
        }
        (Some(cert), Some(key)) => {
            let chain = certificates(cert, "sslcert")?;
            let private = private_key(key)?;
            builder.with_client_auth_cert(chain, private).map_err(|e| {
                format!(
                    "sslkey {} does not go with sslcert {}: {e}",
                    key.display(),
                    cert.display()
                )
            })?
        }
    };
    config.alpn_protocols = vec![ALPN_POSTGRESQL.to_vec()];
    config.enable_sni = settings.sni;
    Ok(config)
}

/// The CA certificates the server's chain must end in.
fn root_store(roots: &Roots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        Roots::File(path) => {
            let certs = certificates(path, "sslrootcert").map_err(|e| format!("{e}{ROOT_HELP}"))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {} holds no CA certificate that can be used{ROOT_HELP}",
                    path.display()
                ));
            }
        }
        Roots::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let why: Vec<String> = found.errors.iter().map(|e| e.to_string()).collect();
                return Err(format!(
                    "sslrootcert=system: this machine has no trusted root certificates{}; \
                     install them (Debian: apt-get install ca-certificates), point \
                     SSL_CERT_FILE at a bundle, or name the CA's file with sslrootcert=PATH",
                    if why.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", why.join("; "))
                    }
                ));
            }
        }
    }
    Ok(store)
}

/// The revocation lists of `sslcrl` and of every file in `sslcrldir`.
fn revocation_lists(
    settings: &TlsSettings,
) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let mut lists = Vec::new();
    if let Some(file) = &settings.crl {
        lists.extend(crls_in(file, "sslcrl")?);
    }
    if let Some(dir) = &settings.crl_dir {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("cannot read sslcrldir {}: {e}", dir.display()))?;
        let mut files: Vec<_> = entries
            .flatten()
            .map(|entry| entry.path())
            .filter(|path| path.is_file())
            .collect();
        files.sort();
        for file in files {
            lists.extend(crls_in(&file, "sslcrldir")?);
        }
    }
    Ok(lists)
}

fn crls_in(path: &Path, key: &str) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = read(path, key)?;
    let lists = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {} is not PEM: {e}", path.display()))?;
    if lists.is_empty() {
        return Err(format!(
            "{key} {} holds no revocation list (-----BEGIN X509 CRL-----)",
            path.display()
        ));
    }
    Ok(lists)
}

/// The PEM certificates in `path`, named by `key` in errors.
fn certificates(path: &Path, key: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let bytes = read(path, key)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{key} {} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{key} {} holds no certificate (-----BEGIN CERTIFICATE-----)",
            path.display()
        ));
    }
    Ok(certs)
}

/// The client's private key, refused when others may read it (as libpq
/// does) or when it is encrypted.
fn private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let shown = path.display();
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "sslkey {shown} does not exist: the client certificate needs its private key there, \
             or named with sslkey=PATH"
        ),
        _ => format!("cannot read sslkey {shown}: {e}"),
    })?;
    // libpq's rule: u=rw (0600) or less when the file is the user's, up to
    // u=rw,g=r (0640) when it is root's.
    let mode = meta.mode();
    let loose = if meta.uid() == 0 {
        mode & 0o137 != 0
    } else {
        meta.uid() == crate::engine::account::euid() && mode & 0o077 != 0
    };
    if loose {
        return Err(format!(
            "sslkey {shown} has group or world access (mode {:04o}); it must be u=rw (0600) or \
             less when owned by the current user, u=rw,g=r (0640) or less when owned by root: \
             chmod 600 {shown}",
            mode & 0o7777
        ));
    }
    let bytes = read(path, "sslkey")?;
    let text = String::from_utf8_lossy(&bytes);
    if text.contains("ENCRYPTED PRIVATE KEY") || text.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(format!(
            "sslkey {shown} is encrypted, which baton cannot read (sslpassword is not used): \
             keep a decrypted copy at 0600 (`openssl pkey -in {shown} -out KEY`) and name it \
             with sslkey"
        ));
    }
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| {
        format!("sslkey {shown} holds no private key in PEM (-----BEGIN PRIVATE KEY-----): {e}")
    })
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!("{key} {} does not exist", path.display()),
        _ => format!("cannot read {key} {}: {e}", path.display()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::tls::TlsMode;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    /// A self-signed certificate and its key, as PEM.
    fn self_signed(name: &str) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    }

    fn write(dir: &Path, name: &str, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path
    }

    fn settings(roots: Option<Roots>) -> TlsSettings {
        TlsSettings {
            mode: TlsMode::VerifyFull,
            roots,
            ..TlsSettings::default()
        }
    }

    #[test]
    fn good_files_make_a_config_that_names_postgresql_in_alpn() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = self_signed("ca.example");
        let (cert, key) = self_signed("client");
        let mut s = settings(Some(Roots::File(write(dir.path(), "ca.crt", &ca, 0o644))));
        s.cert = Some(write(dir.path(), "me.crt", &cert, 0o644));
        s.key = Some(write(dir.path(), "me.key", &key, 0o600));
        s.sni = false;
        let config = client_config(&s).unwrap();
        assert_eq!(config.alpn_protocols, vec![b"postgresql".to_vec()]);
        assert!(!config.enable_sni);
        assert!(config.client_auth_cert_resolver.has_certs());
        // Without roots nothing is read, and no client certificate is sent.
        let config = client_config(&TlsSettings::default()).unwrap();
        assert!(config.enable_sni);
        assert!(!config.client_auth_cert_resolver.has_certs());
    }

    #[test]
    fn a_root_file_that_is_missing_or_holds_no_certificate_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.crt");
        let e = client_config(&settings(Some(Roots::File(missing.clone())))).unwrap_err();
        assert!(
            e.contains(&format!("sslrootcert {} does not exist", missing.display())),
            "{e}"
        );
        assert!(
            e.contains("help: name the file of the CA certificate"),
            "{e}"
        );

        let junk = write(dir.path(), "junk.crt", "not a certificate\n", 0o644);
        let e = client_config(&settings(Some(Roots::File(junk.clone())))).unwrap_err();
        assert!(
            e.contains(&format!(
                "sslrootcert {} holds no certificate",
                junk.display()
            )),
            "{e}"
        );

        let unreadable = dir.path().join("a-folder");
        std::fs::create_dir(&unreadable).unwrap();
        let e = client_config(&settings(Some(Roots::File(unreadable.clone())))).unwrap_err();
        assert!(
            e.contains(&format!("cannot read sslrootcert {}", unreadable.display())),
            "{e}"
        );
    }

    #[test]
    fn a_client_key_must_be_there_private_plain_and_its_certificates() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed("client");
        let (_, other_key) = self_signed("other");
        let cert = write(dir.path(), "me.crt", &cert, 0o644);
        let with_key = |key: Option<PathBuf>| {
            let s = TlsSettings {
                cert: Some(cert.clone()),
                key,
                ..TlsSettings::default()
            };
            client_config(&s).map(|_| ()).unwrap_err()
        };

        let e = with_key(None);
        assert!(
            e.contains("has no key: name its file with sslkey=PATH"),
            "{e}"
        );
        let missing = dir.path().join("none.key");
        let e = with_key(Some(missing.clone()));
        assert!(
            e.contains(&format!("sslkey {} does not exist", missing.display())),
            "{e}"
        );

        let loose = write(dir.path(), "loose.key", &key, 0o644);
        let e = with_key(Some(loose.clone()));
        assert!(
            e.contains(&format!(
                "sslkey {} has group or world access",
                loose.display()
            )),
            "{e}"
        );
        assert!(e.contains("(mode 0644)"), "{e}");

        let encrypted = write(
            dir.path(),
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n",
            0o600,
        );
        let e = with_key(Some(encrypted));
        assert!(e.contains("is encrypted, which baton cannot read"), "{e}");

        let wrong = write(dir.path(), "wrong.key", &other_key, 0o600);
        let e = with_key(Some(wrong.clone()));
        assert!(
            e.contains(&format!(
                "sslkey {} does not go with sslcert",
                wrong.display()
            )),
            "{e}"
        );

        let junk = write(dir.path(), "junk.key", "nothing\n", 0o600);
        let e = with_key(Some(junk));
        assert!(e.contains("holds no private key"), "{e}");
    }

    #[test]
    fn revocation_lists_are_read_from_the_file_and_the_folder() {
        let dir = tempfile::tempdir().unwrap();
        let (ca, _) = self_signed("ca.example");
        let mut s = settings(Some(Roots::File(write(dir.path(), "ca.crt", &ca, 0o644))));
        let junk = write(dir.path(), "root.crl", "no list here\n", 0o644);
        s.crl = Some(junk.clone());
        let e = client_config(&s).unwrap_err();
        assert!(
            e.contains(&format!(
                "sslcrl {} holds no revocation list",
                junk.display()
            )),
            "{e}"
        );

        s.crl = None;
        let missing = dir.path().join("crls");
        s.crl_dir = Some(missing.clone());
        let e = client_config(&s).unwrap_err();
        assert!(
            e.contains(&format!("cannot read sslcrldir {}", missing.display())),
            "{e}"
        );
        std::fs::create_dir(&missing).unwrap();
        client_config(&s).unwrap();
    }
}
