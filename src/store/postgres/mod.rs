//! The fleet's backend: a run kept in PostgreSQL, for engines on several
//! machines and operators anywhere (`--store postgres://…`).

pub mod fail;
pub mod schema;
pub mod target;

pub use target::PgTarget;
