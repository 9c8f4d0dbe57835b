//! TLS to PostgreSQL, as libpq users expect it: `sslmode` from `disable`
//! to `verify-full`, the CA in `sslrootcert` (or `~/.postgresql/root.crt`,
//! or the machine's roots with `sslrootcert=system`), a client certificate
//! in `sslcert` and `sslkey` (or `~/.postgresql/postgresql.crt` and
//! `.key`), revocation lists in `sslcrl` and `sslcrldir`.
//!
//! [`TlsSettings`] are what the address says ([`settings`]); a
//! [`Connector`] reads their files and makes connections under them
//! ([`connect`]), through rustls ([`config`], with the checks rustls has no
//! verifier for in [`verify`]).

pub mod config;
pub mod connect;
pub mod settings;
pub mod verify;

pub use connect::{Connector, Driver, refusal};
pub use settings::{Roots, TLS_KEYS, TlsMode, TlsSettings, TlsVersion};
