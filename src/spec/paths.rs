//! Paths in a pipeline file are relative to the file's folder.

use std::io;
use std::path::{Component, Path, PathBuf};

/// The absolute folder of a pipeline file, which need not exist yet.
pub(crate) fn base_dir_of(file: &Path) -> io::Result<PathBuf> {
    let parent = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Ok(tidy(&std::path::absolute(parent)?))
}

/// `rel` against `base`; an absolute `rel` stays as it is.
pub(crate) fn resolve(base: &Path, rel: &str) -> PathBuf {
    tidy(&base.join(rel))
}

/// Drops `.` components, so `cwd = "."` gives the folder itself. `..` is kept:
/// removing it could change the meaning of a path through a symlink.
fn tidy(path: &Path) -> PathBuf {
    path.components()
        .filter(|c| !matches!(c, Component::CurDir))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_dir_is_absolute() {
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(base_dir_of(Path::new("p.toml")).unwrap(), cwd);
        assert_eq!(base_dir_of(Path::new("./x/p.toml")).unwrap(), cwd.join("x"));
        assert_eq!(
            base_dir_of(Path::new("/a/b/p.toml")).unwrap(),
            PathBuf::from("/a/b")
        );
    }

    #[test]
    fn resolving_relative_and_absolute_paths() {
        let base = Path::new("/pipes");
        assert_eq!(resolve(base, "."), PathBuf::from("/pipes"));
        assert_eq!(
            resolve(base, "./agents/x.py"),
            PathBuf::from("/pipes/agents/x.py")
        );
        assert_eq!(resolve(base, "../bin/x"), PathBuf::from("/pipes/../bin/x"));
        assert_eq!(resolve(base, "/usr/bin/env"), PathBuf::from("/usr/bin/env"));
    }
}
