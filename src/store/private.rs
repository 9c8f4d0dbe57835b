//! The state folder is private: it holds task inputs, outputs and the run
//! log, so it is made 0700 and every file in it 0600, whatever the umask
//! (modes are set explicitly, not left to the umask). A folder found more
//! open is tightened, with a warning. A folder, or anything in it, owned by
//! another user is refused with the way out: writing to it would leave
//! files of two owners (root running on a user's folder would lock that
//! user out of their own run).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::error::{IoContext, StoreError};

/// The mode of the state folder and of folders in it.
pub const DIR_MODE: u32 = 0o700;
/// The mode of every file in the state folder.
pub const FILE_MODE: u32 = 0o600;

/// Makes the state folder if it is missing (0700, parents as usual), checks
/// that it and everything in it belong to this user, and tightens modes
/// that are more open. Returns a warning for each folder it tightened.
pub fn secure(dir: &Path) -> Result<Vec<String>, StoreError> {
    if !dir.exists() {
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).at(parent)?;
        }
        match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
            Ok(()) => {}
            // Made by another process meanwhile: checked below like any.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(StoreError::io(dir, e)),
        }
    }
    check_owner(dir)?;
    let mut loosened = Vec::new();
    walk(dir, &mut |path, meta| {
        let mode = meta.mode() & 0o777;
        let want = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
        if !meta.file_type().is_symlink() && mode & !want != 0 {
            fs::set_permissions(path, fs::Permissions::from_mode(want)).at(path)?;
            loosened.push((path.to_path_buf(), mode));
        }
        Ok(())
    })?;
    Ok(tightened(dir, &loosened))
}

/// Refuses a folder that is not this user's, or that holds anything that
/// is not: the folder, then everything in it (without following links).
pub fn check_owner(dir: &Path) -> Result<(), StoreError> {
    let me = euid();
    walk(dir, &mut |path, meta| {
        if meta.uid() != me {
            return Err(StoreError::NotYours {
                dir: dir.to_path_buf(),
                path: path.to_path_buf(),
                owner: user_name(meta.uid()),
                me: user_name(me),
            });
        }
        Ok(())
    })
}

/// Refuses a state folder that is not this user's, looking at the folder
/// alone (cheap enough for every command that connects to its engine).
pub fn check_dir_owner(dir: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(dir) {
        Ok(meta) if meta.uid() != euid() => Err(StoreError::NotYours {
            dir: dir.to_path_buf(),
            path: dir.to_path_buf(),
            owner: user_name(meta.uid()),
            me: user_name(euid()),
        }),
        _ => Ok(()),
    }
}

/// Creates (or opens to append) a file of the state folder, 0600.
pub fn append_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    restrict(&file)?;
    Ok(file)
}

/// Writes a whole file of the state folder through a temporary one, 0600.
pub fn write_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    use std::io::Write;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(&tmp)?;
    restrict(&file)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)
}

/// Sets 0600 on an open file: a file that existed keeps its mode on open.
pub fn restrict(file: &File) -> io::Result<()> {
    if file.metadata()?.mode() & 0o777 != FILE_MODE {
        file.set_permissions(fs::Permissions::from_mode(FILE_MODE))?;
    }
    Ok(())
}

/// Sets 0600 on a file the state folder holds, if it exists (SQLite's own
/// files, made by SQLite).
pub fn restrict_path(path: &Path) -> Result<(), StoreError> {
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() && meta.mode() & 0o777 != FILE_MODE => {
            fs::set_permissions(path, fs::Permissions::from_mode(FILE_MODE)).at(path)
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StoreError::io(path, e)),
    }
}

/// Calls `f` on the folder and everything under it, links not followed.
fn walk(
    dir: &Path,
    f: &mut dyn FnMut(&Path, &fs::Metadata) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = fs::symlink_metadata(&path).at(&path)?;
        f(&path, &meta)?;
        if meta.is_dir() {
            for entry in fs::read_dir(&path).at(&path)? {
                stack.push(entry.at(&path)?.path());
            }
        }
    }
    Ok(())
}

fn tightened(dir: &Path, loosened: &[(PathBuf, u32)]) -> Vec<String> {
    if loosened.is_empty() {
        return Vec::new();
    }
    let shown: Vec<String> = loosened
        .iter()
        .take(5)
        .map(|(p, mode)| {
            let name = p.strip_prefix(dir).unwrap_or(p);
            let name = if name.as_os_str().is_empty() {
                dir.display().to_string()
            } else {
                name.display().to_string()
            };
            format!("{name} was {mode:03o}")
        })
        .collect();
    let more = loosened.len().saturating_sub(shown.len());
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    vec![format!(
        "the state folder {} was open to other users ({}{more}); it holds task inputs, outputs and the run log, so it is now private (folders 700, files 600)",
        dir.display(),
        shown.join(", ")
    )]
}

use crate::engine::account::{euid, name_of as account_name};

/// "name (uid N)", or "uid N" for a uid with no name.
pub fn user_name(uid: u32) -> String {
    match account_name(uid) {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` with the process's umask at 0, as a careless shell might set it.
    fn with_open_umask<T>(f: impl FnOnce() -> T) -> T {
        // SAFETY: umask only swaps the process's file mode mask.
        let old = unsafe { libc::umask(0) };
        let out = f();
        // SAFETY: as above.
        unsafe { libc::umask(old) };
        out
    }

    fn mode(path: &Path) -> u32 {
        fs::symlink_metadata(path).unwrap().mode() & 0o777
    }

    #[test]
    fn a_new_folder_and_its_files_are_private_whatever_the_umask() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/state");
        let warnings = with_open_umask(|| secure(&dir)).unwrap();
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(mode(&dir), 0o700);
        let log = dir.join("engine.log");
        with_open_umask(|| append_file(&log)).unwrap();
        assert_eq!(mode(&log), 0o600);
        let copy = dir.join("pipeline.toml");
        with_open_umask(|| write_file(&copy, b"name = \"p\"")).unwrap();
        assert_eq!(mode(&copy), 0o600);
        assert_eq!(fs::read(&copy).unwrap(), b"name = \"p\"");
    }

    #[test]
    fn an_open_folder_is_tightened_with_a_warning() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        fs::create_dir(&dir).unwrap();
        fs::create_dir(dir.join("kept")).unwrap();
        fs::write(dir.join("baton.db"), "x").unwrap();
        fs::write(dir.join("kept/old.log"), "x").unwrap();
        for (p, m) in [
            (dir.clone(), 0o755),
            (dir.join("kept"), 0o775),
            (dir.join("baton.db"), 0o644),
            (dir.join("kept/old.log"), 0o666),
        ] {
            fs::set_permissions(&p, fs::Permissions::from_mode(m)).unwrap();
        }
        let warnings = secure(&dir).unwrap();
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let w = &warnings[0];
        assert!(
            w.contains("was open to other users") && w.contains("baton.db was 644"),
            "{w}"
        );
        assert!(w.contains(&format!("{} was 755", dir.display())), "{w}");
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("kept")), 0o700);
        assert_eq!(mode(&dir.join("baton.db")), 0o600);
        assert_eq!(mode(&dir.join("kept/old.log")), 0o600);
        assert!(secure(&dir).unwrap().is_empty(), "nothing left to tighten");
    }

    #[test]
    fn names_of_users() {
        assert!(user_name(0).starts_with("root (uid 0)") || user_name(0) == "uid 0");
        assert_eq!(user_name(4_000_000_000), "uid 4000000000");
    }

    #[test]
    fn a_folder_of_another_user_is_refused_with_the_way_out() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("state");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("baton.db"), "x").unwrap();
        if euid() != 0 {
            // Only root can give a file away; what is left to check here is
            // that one's own folder passes.
            eprintln!("not root: cannot make a file of another user; checked own folder only");
            check_owner(&dir).unwrap();
            return;
        }
        let nobody = 65534;
        // SAFETY: chown of a file this test made.
        let c =
            std::ffi::CString::new(dir.join("baton.db").as_os_str().as_encoded_bytes()).unwrap();
        assert_eq!(unsafe { libc::chown(c.as_ptr(), nobody, nobody) }, 0);
        let err = secure(&dir).unwrap_err().to_string();
        assert!(
            err.contains("baton.db") && err.contains("uid 65534"),
            "{err}"
        );
        assert!(
            err.contains("chown -R") && err.contains("--state-dir"),
            "{err}"
        );
    }
}
