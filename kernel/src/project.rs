//! Where a project's lineage lives: the notebook, the project root and the
//! SQLite file. The kernel and the CLI both call [`locate`], so they always
//! agree on which database a notebook writes to.

use std::ffi::OsString;
use std::io;
use std::path::{Component, Path, PathBuf};

/// Name of the folder holding the database, under the project root.
pub const DIR_NAME: &str = ".jupyter-lineage";
/// Name of the database file inside that folder.
pub const DB_FILE: &str = "lineage.sqlite";

/// The result of [`locate`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ProjectLocation {
    /// The notebook the kernel serves, when the server told us
    /// (`JPY_SESSION_NAME`, a full path since jupyter_server 2.0.7).
    pub notebook_path: Option<PathBuf>,
    /// Nearest ancestor holding `.git`, else the notebook's folder (or cwd).
    pub root: PathBuf,
    /// The SQLite file.
    pub db_path: PathBuf,
}

impl ProjectLocation {
    /// The folder holding the database (created by [`ensure_dir`]).
    pub fn db_dir(&self) -> &Path {
        self.db_path.parent().unwrap_or(Path::new("."))
    }
}

/// Finds the project from explicit inputs (pure apart from checking for
/// `.git` on disk), so tests need not touch the process environment.
///
/// - `session_name`: the value of `JPY_SESSION_NAME`, absolute or relative to `cwd`.
/// - `lineage_dir`: the value of `JUPYTER_LINEAGE_DIR`; it names the folder
///   holding the database, which is then `<dir>/lineage.sqlite`.
pub fn locate(
    cwd: &Path,
    session_name: Option<&OsString>,
    lineage_dir: Option<&OsString>,
) -> ProjectLocation {
    let notebook_path = session_name
        .filter(|s| !s.is_empty())
        .map(|s| normalize(&cwd.join(Path::new(s))));
    let start = match &notebook_path {
        Some(nb) => nb
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or(cwd.to_path_buf()),
        None => normalize(cwd),
    };
    let root = start
        .ancestors()
        .find(|dir| dir.join(".git").exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| start.clone());
    let db_dir = match lineage_dir.filter(|s| !s.is_empty()) {
        Some(dir) => normalize(&cwd.join(Path::new(dir))),
        None => root.join(DIR_NAME),
    };
    ProjectLocation {
        notebook_path,
        root,
        db_path: db_dir.join(DB_FILE),
    }
}

/// [`locate`] with the process's working directory and environment, for
/// callers not handed a [`crate::config::Config`].
pub fn from_env() -> ProjectLocation {
    crate::config::Config::from_env().location()
}

/// Creates the database folder 0700 with a `.gitignore` of `*`, or tightens
/// an existing one to 0700 (a umask of 022 would otherwise leave it readable).
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    match std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
    {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    let meta = std::fs::metadata(dir)?;
    if meta.permissions().mode() & 0o777 != 0o700 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let gitignore = dir.join(".gitignore");
    if !gitignore.exists() {
        std::fs::write(&gitignore, "*\n")?;
    }
    Ok(())
}

/// Removes `.` and `..` lexically (no symlink resolution: the path the user
/// gave is the path we record).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn os(s: &str) -> OsString {
        OsString::from(s)
    }

    #[test]
    fn cwd_without_git_is_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let loc = locate(tmp.path(), None, None);
        assert_eq!(loc.notebook_path, None);
        assert_eq!(loc.root, tmp.path());
        assert_eq!(
            loc.db_path,
            tmp.path().join(".jupyter-lineage/lineage.sqlite")
        );
    }

    #[test]
    fn nearest_git_ancestor_of_the_notebook_is_the_root() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("a/b")).unwrap();
        let elsewhere = tmp.path().join("elsewhere");
        std::fs::create_dir_all(&elsewhere).unwrap();
        // Absolute notebook path, cwd unrelated.
        let nb = repo.join("a/b/nb.ipynb");
        let loc = locate(&elsewhere, Some(&nb.clone().into_os_string()), None);
        assert_eq!(loc.notebook_path.as_deref(), Some(nb.as_path()));
        assert_eq!(loc.root, repo);
        assert_eq!(loc.db_path, repo.join(".jupyter-lineage/lineage.sqlite"));
        // Relative notebook path, resolved against cwd.
        let loc = locate(&repo, Some(&os("a/./b/../b/nb.ipynb")), None);
        assert_eq!(loc.notebook_path.as_deref(), Some(nb.as_path()));
        assert_eq!(loc.root, repo);
    }

    #[test]
    fn notebook_dir_is_the_root_without_git() {
        let tmp = tempfile::tempdir().unwrap();
        let nbdir = tmp.path().join("x");
        std::fs::create_dir_all(&nbdir).unwrap();
        let loc = locate(tmp.path(), Some(&os("x/nb.ipynb")), None);
        assert_eq!(loc.root, nbdir);
    }

    #[test]
    fn lineage_dir_overrides_the_db_folder() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(tmp.path().join(".git")).unwrap();
        let loc = locate(tmp.path(), None, Some(&os("/var/lineage")));
        assert_eq!(loc.root, tmp.path());
        assert_eq!(loc.db_path, Path::new("/var/lineage/lineage.sqlite"));
        let loc = locate(tmp.path(), Some(&os("")), Some(&os("")));
        assert_eq!(loc.notebook_path, None);
        assert_eq!(
            loc.db_path,
            tmp.path().join(".jupyter-lineage/lineage.sqlite")
        );
    }

    #[test]
    fn ensure_dir_is_private_and_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("p/.jupyter-lineage");
        ensure_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(
            std::fs::read_to_string(dir.join(".gitignore")).unwrap(),
            "*\n"
        );
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        ensure_dir(&dir).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
