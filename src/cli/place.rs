//! Where this command's run is kept (`--store`, or `BATON_STORE`): read once
//! at start, for every command.

use std::path::Path;
use std::sync::OnceLock;

use baton::store::Place;

static PLACE: OnceLock<Place> = OnceLock::new();
static ADDRESS: OnceLock<String> = OnceLock::new();

/// Reads the address; an unreadable one is bad usage (exit status 2).
pub fn set(address: Option<&str>) -> Result<(), String> {
    let place = Place::parse(address)
        .map_err(|e| format!("error: --store: {e}\n  help: give postgres://USER@HOST:PORT/DATABASE (a password comes from PGPASSWORD or ~/.pgpass, not the address), or leave --store out to keep the run in the state folder"))?;
    if !place.is_folder()
        && let Some(a) = address
    {
        let _ = ADDRESS.set(a.to_string());
    }
    let _ = PLACE.set(place);
    Ok(())
}

/// The place set at start; the state folder when none was.
pub fn get() -> &'static Place {
    PLACE.get_or_init(Place::default)
}

/// The address as given, for an engine this command starts in the
/// background; `None` for the state folder.
pub fn address() -> Option<&'static str> {
    ADDRESS.get().map(String::as_str)
}

/// Where this command's run is, for messages: the state folder, or the
/// database's address without its password.
pub fn describe(state_dir: &Path) -> String {
    get().describe(state_dir)
}

/// The options of a suggested command that reach this run again:
/// `--state-dir DIR`, then `--store ADDRESS` (without its password) when
/// the run is in PostgreSQL.
pub fn flags(state_dir: &Path) -> String {
    let place = get();
    let dir = format!("--state-dir {}", state_dir.display());
    if place.is_folder() {
        dir
    } else {
        format!("{dir} --store {}", place.describe(state_dir))
    }
}
