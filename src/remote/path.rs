//! Where a state folder's control socket lives.
//!
//! Normally `STATE/baton.sock`. A Unix socket's path must fit in 108 bytes
//! (`sun_path`), so for a deep state folder the socket goes to
//! `$XDG_RUNTIME_DIR/baton-HASH.sock` instead, and `STATE/baton.sock.path`
//! names it for clients.

use std::path::{Path, PathBuf};

pub const SOCKET_NAME: &str = "baton.sock";
pub const POINTER_NAME: &str = "baton.sock.path";

/// `sun_path` holds 108 bytes with the terminating NUL.
const SUN_PATH_MAX: usize = 107;

/// The socket is bound under this name first, then renamed into place once
/// its mode is 0600; both names must fit.
pub const BIND_SUFFIX: &str = ".new";

/// Where the engine of `state_dir` serves, and the pointer to it when it is
/// not inside the folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub socket: PathBuf,
    pub pointer: Option<PathBuf>,
}

fn fits(path: &Path) -> bool {
    path.as_os_str().len() + BIND_SUFFIX.len() <= SUN_PATH_MAX
}

/// The state folder as an absolute path, so that every process names the
/// same socket whatever its working folder.
pub fn absolute(state_dir: &Path) -> PathBuf {
    std::fs::canonicalize(state_dir).unwrap_or_else(|_| {
        std::env::current_dir()
            .map(|cwd| cwd.join(state_dir))
            .unwrap_or_else(|_| state_dir.to_path_buf())
    })
}

/// Where an engine on `state_dir` should bind, given `$XDG_RUNTIME_DIR`.
pub fn choose(state_dir: &Path, runtime_dir: Option<&Path>) -> Result<Placement, String> {
    let dir = absolute(state_dir);
    let socket = dir.join(SOCKET_NAME);
    if fits(&socket) {
        return Ok(Placement {
            socket,
            pointer: None,
        });
    }
    let too_long = format!(
        "the control socket path {} is {} bytes, more than a Unix socket allows ({SUN_PATH_MAX})",
        socket.display(),
        socket.as_os_str().len()
    );
    let Some(runtime) = runtime_dir.filter(|d| d.is_absolute()) else {
        return Err(format!(
            "{too_long}, and XDG_RUNTIME_DIR is not set to put it elsewhere\n  help: use a shorter --state-dir, or set XDG_RUNTIME_DIR"
        ));
    };
    let short = runtime.join(format!(
        "baton-{:016x}.sock",
        fnv1a(dir.as_os_str().as_encoded_bytes())
    ));
    if !fits(&short) {
        return Err(format!(
            "{too_long}, and XDG_RUNTIME_DIR ({}) is too deep as well\n  help: use a shorter --state-dir",
            runtime.display()
        ));
    }
    Ok(Placement {
        socket: short,
        pointer: Some(dir.join(POINTER_NAME)),
    })
}

/// The place an engine serving `state_dir` would be found by a client: the
/// pointer's target when there is a pointer, else the folder's own socket.
pub fn locate(state_dir: &Path) -> PathBuf {
    let dir = absolute(state_dir);
    match std::fs::read_to_string(dir.join(POINTER_NAME)) {
        Ok(text) if !text.trim().is_empty() => PathBuf::from(text.trim()),
        _ => dir.join(SOCKET_NAME),
    }
}

/// A stable, well-spread hash of the folder's path, so that the same folder
/// always gets the same runtime socket name.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_folder_keeps_its_socket_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let p = choose(tmp.path(), None).unwrap();
        assert_eq!(p.socket, absolute(tmp.path()).join("baton.sock"));
        assert_eq!(p.pointer, None);
        assert_eq!(locate(tmp.path()), p.socket);
    }

    #[test]
    fn a_deep_folder_goes_to_the_runtime_dir_with_a_pointer() {
        let tmp = tempfile::tempdir().unwrap();
        let deep = tmp.path().join("x".repeat(60)).join("y".repeat(60));
        std::fs::create_dir_all(&deep).unwrap();
        let runtime = tempfile::tempdir().unwrap();
        let p = choose(&deep, Some(runtime.path())).unwrap();
        assert!(p.socket.starts_with(runtime.path()), "{p:?}");
        assert_eq!(p.pointer, Some(absolute(&deep).join(POINTER_NAME)));
        // The same folder always gets the same name.
        assert_eq!(choose(&deep, Some(runtime.path())).unwrap(), p);
        std::fs::write(
            p.pointer.as_ref().unwrap(),
            p.socket.to_string_lossy().as_bytes(),
        )
        .unwrap();
        assert_eq!(locate(&deep), p.socket);
    }

    #[test]
    fn a_deep_folder_without_a_runtime_dir_is_a_clear_error() {
        let deep = PathBuf::from("/").join("z".repeat(120));
        let err = choose(&deep, None).unwrap_err();
        assert!(err.contains("more than a Unix socket allows"), "{err}");
        assert!(err.contains("help: use a shorter --state-dir"), "{err}");
    }
}
