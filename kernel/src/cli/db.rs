//! `--db`: which database a report command reads, found the way the kernel
//! finds it, and what the user may type for a notebook or a cell.

use std::path::{Path, PathBuf};

use clap::Args;

use crate::config::{Config, DIR_VAR};
use crate::project;
use crate::store::{Store, StoreError};

use super::view::hint_list;
use super::{CliError, Result};

/// `--db`, shared by every history command.
#[derive(Debug, Args, Clone)]
pub struct DbArg {
    /// The lineage database (a .sqlite file, or the folder holding
    /// lineage.sqlite). Default: the one the kernel would use here — under
    /// $JUPYTER_LINEAGE_DIR, else .jupyter-lineage/ in the nearest folder
    /// holding .git, else in the current folder.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

impl DbArg {
    /// The database path, and how it was found (for messages).
    pub fn locate(&self, config: &Config) -> (PathBuf, String) {
        if let Some(db) = &self.db {
            let path = if db.is_dir() {
                db.join(project::DB_FILE)
            } else {
                db.clone()
            };
            return (path, "given with --db".into());
        }
        let loc = config.location();
        let how = match &config.lineage_dir {
            Some(dir) => format!("{DIR_VAR}={}", Path::new(dir).display()),
            None => format!(
                "found like the kernel does: project root {}",
                loc.root.display()
            ),
        };
        (loc.db_path, how)
    }

    /// Opens the database read-only; a missing one is [`CliError::NoDatabase`].
    pub fn open(&self, config: &Config) -> Result<Store> {
        let (path, how) = self.locate(config);
        if !path.is_file() {
            return Err(CliError::NoDatabase { path, how });
        }
        Store::open_readonly(&path).map_err(|e| match e {
            StoreError::Missing { path } => CliError::NoDatabase { path, how },
            e => CliError::from_store(&path, e),
        })
    }
}

/// Resolves what the user typed for `--notebook`: the exact recorded path,
/// a path relative to the current folder, or a unique suffix (`nb.ipynb`,
/// `sub/nb.ipynb`).
pub fn resolve_notebook(store: &Store, arg: &str) -> Result<String> {
    let db = store.path();
    let sql = |e: StoreError| CliError::from_store(db, e);
    if store.has_notebook(arg).map_err(sql)? {
        return Ok(arg.to_string());
    }
    if let Ok(cwd) = std::env::current_dir() {
        let abs = project::locate(&cwd, Some(&cwd.join(arg).into_os_string()), None)
            .notebook_path
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(abs) = abs.filter(|a| a != arg) {
            if store.has_notebook(&abs).map_err(sql)? {
                return Ok(abs);
            }
        }
    }
    let known = store.notebooks().map_err(sql)?;
    let suffix = format!("/{}", arg.trim_start_matches("./"));
    let matches: Vec<&String> = known.iter().filter(|k| k.ends_with(&suffix)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(CliError::NoMatch {
            what: "notebook",
            query: arg.to_string(),
            db: db.to_path_buf(),
            hint: hint_list("recorded notebooks", &known),
        }),
        many => Err(CliError::Usage(format!(
            "--notebook {arg:?} matches several notebooks: {}; give more of the path",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Resolves `--cell`: an exact cell id or a unique prefix of one (the log
/// shows the first 8 characters). A pattern with GLOB characters is taken
/// as typed.
pub fn resolve_cell(store: &Store, arg: &str) -> Result<String> {
    let db = store.path();
    let sql = |e: StoreError| CliError::from_store(db, e);
    if store.has_cell(arg).map_err(sql)? || arg.contains(['*', '?', '[']) {
        return Ok(arg.to_string());
    }
    let found = store.cells_starting_with(arg, 10).map_err(sql)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(CliError::NoMatch {
            what: "cell",
            query: arg.to_string(),
            db: db.to_path_buf(),
            hint: String::new(),
        }),
        many => Err(CliError::Usage(format!(
            "--cell {arg:?} is the start of several cell ids ({}…); give more of it",
            many.join(", ")
        ))),
    }
}
