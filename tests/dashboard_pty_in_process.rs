//! Every dashboard test of `dashboard_pty.rs` again, with the engine inside
//! the dashboard's process (`baton run --in-process`, here through
//! `BATON_IN_PROCESS=1`), where they apply: the same keys, screens and state.

include!("dashboard_pty.rs");
