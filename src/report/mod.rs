//! Text for people and JSON for scripts, from state; never changes it.
