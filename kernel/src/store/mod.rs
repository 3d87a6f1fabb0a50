//! The project's SQLite lineage: opening (permissions, journal mode,
//! migrations), the write path the recorder batches into, and the query
//! layer shared by the comm service and the CLI.
//!
//! A [`Store`] wraps one `rusqlite::Connection`, which is `Send` but not
//! `Sync`: each thread (the recorder's writer, a CLI command, the service's
//! query thread) opens its own. Several processes may write the same file.

mod diff;
mod query;
mod schema;
mod write;

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

pub use diff::{CodeDiff, ExecutionDiff, MimeDiff, OutputDiff, ResourceDelta};
pub use query::{
    AgeProfile, CellSummary, ExecutionDetail, ExecutionSummary, ExportSequence, HistoryFilter,
    HistoryPage, OutputView, PruneOptions, PruneReport, SampleRow, SessionSummary, Stats,
};
pub use write::{
    ExecutionRecord, MimeData, OutputRecord, OutputType, Resources, Sample, SessionEnd,
    SessionRecord, Status, WriteOp, WriteOutcome,
};

/// The newest schema version this build knows.
pub const SCHEMA_VERSION: u32 = schema::MIGRATIONS.len() as u32;

/// How long a statement waits for another writer before failing `SQLITE_BUSY`.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{path}: schema version {found} is newer than this jupyter-lineage knows ({supported}); upgrade jupyter-lineage")]
    TooNew {
        path: PathBuf,
        found: u32,
        supported: u32,
    },
    #[error("{path}: no lineage database here")]
    Missing { path: PathBuf },
    #[error("no execution with id {0}")]
    NoSuchExecution(i64),
    #[error("no session with id {0}")]
    NoSuchSession(i64),
    #[error("bad JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl StoreError {
    /// True when the failure is another writer holding the lock (worth retrying).
    pub fn is_busy(&self) -> bool {
        matches!(self, StoreError::Sqlite(e) if sqlite_busy(e))
    }
}

fn sqlite_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e,
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(f.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
    )
}

/// What kind of filesystem holds the database, as far as locking goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum FsKind {
    Local,
    /// NFS, SMB/CIFS or FUSE: shared-memory WAL is unsafe there.
    Network,
}

/// An open lineage database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
    fs: FsKind,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("fs", &self.fs)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database at `path`, owner-only
    /// (0600, whatever the umask), and migrates it to [`SCHEMA_VERSION`].
    /// The parent folder must exist (see [`crate::project::ensure_dir`]).
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        create_private(path)?;
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let fs = fs_kind(path);
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
            fs,
        };
        store.configure(false)?;
        store.migrate()?;
        store.fix_permissions();
        Ok(store)
    }

    /// Opens an existing database for reading only (the CLI's `log`, `show`…).
    /// Never creates a file; fails with [`StoreError::Missing`] if absent.
    pub fn open_readonly(path: &Path) -> Result<Store, StoreError> {
        if !path.exists() {
            return Err(StoreError::Missing {
                path: path.to_path_buf(),
            });
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)?;
        let store = Store {
            conn,
            path: path.to_path_buf(),
            fs: fs_kind(path),
        };
        store.configure(true)?;
        let version = store.user_version()?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: store.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version == 0 {
            return Err(StoreError::Missing {
                path: store.path.clone(),
            });
        }
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn fs_kind(&self) -> FsKind {
        self.fs
    }

    /// The journal mode in effect (`wal`, or `delete` on network filesystems).
    pub fn journal_mode(&self) -> Result<String, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))?)
    }

    pub fn set_busy_timeout(&self, timeout: Duration) -> Result<(), StoreError> {
        self.conn.busy_timeout(timeout)?;
        Ok(())
    }

    /// The raw connection, for tests that check what the query layer
    /// does not expose; everything else asks the store by name.
    #[cfg(test)]
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The schema version of the file (`PRAGMA user_version`).
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.user_version()
    }

    fn configure(&self, readonly: bool) -> Result<(), StoreError> {
        self.conn.busy_timeout(DEFAULT_BUSY_TIMEOUT)?;
        // The kernel's proxy keeps two connections for its whole life (the
        // writer and the comm's reader): 1 MiB of page cache each, not
        // SQLite's default 2 MiB, keeps the proxy small.
        self.conn.pragma_update(None, "cache_size", -1024)?;
        if !readonly {
            let wanted = match self.fs {
                FsKind::Local => "wal",
                FsKind::Network => "delete",
            };
            // journal_mode needs a moment of exclusive access; another
            // process opening at the same instant makes it return BUSY even
            // with a busy timeout. The mode is persistent, so retry briefly.
            let mut tries = 0;
            loop {
                match self
                    .conn
                    .query_row(&format!("PRAGMA journal_mode={wanted}"), [], |r| {
                        r.get::<_, String>(0)
                    }) {
                    Ok(_) => break,
                    Err(e) if tries < 50 && sqlite_busy(&e) => {
                        tries += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            self.conn.pragma_update(None, "synchronous", "NORMAL")?;
        }
        self.conn.pragma_update(None, "temp_store", "MEMORY")?;
        Ok(())
    }

    fn user_version(&self) -> Result<u32, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))?)
    }

    /// Applies every pending migration in one immediate transaction, so two
    /// processes opening a fresh file at once cannot both migrate it.
    fn migrate(&mut self) -> Result<(), StoreError> {
        if self.user_version()? == SCHEMA_VERSION {
            return Ok(());
        }
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let version: u32 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as u32)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Makes the database and its -wal/-shm/-journal companions 0600.
    /// SQLite creates companions with the main file's mode minus the umask;
    /// we set it explicitly anyway. Best effort: a file owned by someone
    /// else cannot be changed and is left alone.
    pub fn fix_permissions(&self) {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm", "-journal"] {
            let mut p = self.path.clone().into_os_string();
            p.push(suffix);
            let p = PathBuf::from(p);
            if let Ok(meta) = std::fs::metadata(&p) {
                if meta.permissions().mode() & 0o777 != 0o600 {
                    let _ = std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600));
                }
            }
        }
    }
}

/// Creates the database file 0600 if absent (so SQLite never creates it
/// with the umask's mode), and tightens an existing one.
fn create_private(path: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let io = |source| StoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if meta.permissions().mode() & 0o777 != 0o600 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io)?;
    }
    Ok(())
}

/// statfs `f_type` magic numbers of filesystems where SQLite's WAL (shared
/// memory + POSIX locks) is unreliable (sqlite.org/wal.html, "WAL does not
/// work over a network filesystem").
const NETWORK_FS_MAGIC: &[u64] = &[
    0x6969,      // NFS_SUPER_MAGIC
    0x517B,      // SMB_SUPER_MAGIC
    0xFF53_4D42, // CIFS_MAGIC_NUMBER
    0xFE53_4D42, // SMB2_MAGIC_NUMBER
    0x6573_5546, // FUSE_SUPER_MAGIC
];

/// Whether `path` (or its folder) lives on a network filesystem.
pub fn fs_kind(path: &Path) -> FsKind {
    let probe = if path.exists() {
        path
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    match statfs_type(probe) {
        Some(t) if NETWORK_FS_MAGIC.contains(&t) => FsKind::Network,
        _ => FsKind::Local,
    }
}

fn statfs_type(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `buf` a writable statfs.
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut buf) };
    if rc != 0 {
        return None;
    }
    // f_type is i64 on glibc x86_64, u32 on some others; compare as u32
    // since every magic above fits in 32 bits.
    #[allow(clippy::unnecessary_cast)]
    Some((buf.f_type as i64 as u64) & 0xFFFF_FFFF)
}

#[cfg(test)]
pub(crate) mod tests;
