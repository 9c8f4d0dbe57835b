//! The fleet's backend: a run kept in PostgreSQL, for engines on several
//! machines and operators anywhere (`--store postgres://…`).

#[allow(dead_code)]
pub(crate) mod cache;
pub mod fail;
#[allow(dead_code)]
pub(crate) mod read;
pub mod schema;
#[allow(dead_code)]
pub(crate) mod stats;
pub mod target;
#[cfg(test)]
mod test_db;
#[allow(dead_code)]
pub(crate) mod text;

pub use target::PgTarget;
