//! The recorder: turns tapped messages into executions and writes them to
//! the project's database, entirely off the relay's path.
//!
//! Two threads. The *recorder* thread drains the tap queue promptly, parses
//! only what it needs, assembles outputs as the notebook shows them and
//! drives the sampler. The *writer* thread owns the SQLite connection and
//! batches finished records into immediate transactions. When the database
//! is locked, slow, unwritable or gone, records wait in a bounded in-memory
//! queue and the writer retries with backoff; records beyond the bound are
//! counted as dropped and logged, never silently lost. Neither thread can
//! block the relay: the tap only ever `try_send`s.

mod assembly;
mod dispatch;
mod environment;
mod writer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use assembly::is_skipped;
pub use environment::{git_state, python_packages};

use crate::project::ProjectLocation;
use crate::store::{ExecutionSummary, WriteOp};
use crate::tap::TapReceiver;
use dispatch::Recorder;
use writer::BatchWriter;

/// Default sampling period (`JUPYTER_LINEAGE_SAMPLE_MS`).
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Default per-output payload cap (`JUPYTER_LINEAGE_MAX_OUTPUT`, bytes).
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
/// Records waiting for the database, at most (count and bytes).
pub const MAX_PENDING_RECORDS: u64 = 10_000;
pub const MAX_PENDING_BYTES: u64 = 256 << 20;
/// How long `shutdown` waits for pending writes.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);

#[derive(Debug, Clone)]
pub struct RecorderConfig {
    pub location: ProjectLocation,
    /// The wrapped kernelspec's name.
    pub kernelspec: Option<String>,
    /// The real kernel's command line.
    pub argv: Vec<String>,
    pub kernel_pid: u32,
    pub sample_interval: Duration,
    pub max_output_bytes: usize,
    /// The interpreter of a Python kernel, for the package listing.
    pub python: Option<PathBuf>,
    /// Redact credentials in code and text outputs before they are written
    /// (`JUPYTER_LINEAGE_REDACT`, on by default; see `redact`).
    pub redact: bool,
}

impl RecorderConfig {
    /// A config with the defaults, overridden by `JUPYTER_LINEAGE_SAMPLE_MS`
    /// and `JUPYTER_LINEAGE_MAX_OUTPUT` when set and valid.
    pub fn new(location: ProjectLocation, argv: Vec<String>, kernel_pid: u32) -> RecorderConfig {
        let env_num = |name: &str| -> Option<u64> {
            let v = std::env::var(name).ok()?;
            match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    tracing::warn!("{name}={v:?} is not a positive integer: using the default");
                    None
                }
            }
        };
        RecorderConfig {
            location,
            kernelspec: None,
            argv,
            kernel_pid,
            sample_interval: env_num("JUPYTER_LINEAGE_SAMPLE_MS")
                .map(Duration::from_millis)
                .unwrap_or(DEFAULT_SAMPLE_INTERVAL),
            max_output_bytes: env_num("JUPYTER_LINEAGE_MAX_OUTPUT")
                .map(|n| n as usize)
                .unwrap_or(DEFAULT_MAX_OUTPUT),
            python: None,
            redact: crate::redact::enabled_from_env(),
        }
    }
}

/// False when `JUPYTER_LINEAGE` is `off` (or `0`, `false`, `no`, `disabled`).
pub fn recording_enabled_from_env() -> bool {
    enabled_value(std::env::var("JUPYTER_LINEAGE").ok().as_deref())
}

fn enabled_value(v: Option<&str>) -> bool {
    !matches!(
        v.map(|s| s.trim().to_ascii_lowercase()).as_deref(),
        Some("off" | "0" | "false" | "no" | "disabled")
    )
}

/// Shared counters: what the service and `doctor` report as recording health.
#[derive(Debug)]
pub struct Health {
    pub db_path: PathBuf,
    /// Messages the tap dropped because the queue to the recorder was full.
    pub tap_dropped: Arc<AtomicU64>,
    /// Records waiting for the database.
    pub pending: AtomicU64,
    pub pending_bytes: AtomicU64,
    /// Records given up (queue bound reached, or unwritable at shutdown).
    pub dropped_records: AtomicU64,
    /// Executions written.
    pub written: AtomicU64,
    /// True while the database is open and the last write succeeded.
    pub recording: AtomicBool,
    pub last_error: Mutex<Option<String>>,
}

/// A copy of [`Health`] for JSON.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct HealthSnapshot {
    pub db_path: String,
    pub recording: bool,
    pub pending: u64,
    pub pending_bytes: u64,
    pub tap_dropped: u64,
    pub dropped_records: u64,
    pub written: u64,
    pub last_error: Option<String>,
}

impl Health {
    fn new(db_path: PathBuf, tap_dropped: Arc<AtomicU64>) -> Health {
        Health {
            db_path,
            tap_dropped,
            pending: AtomicU64::new(0),
            pending_bytes: AtomicU64::new(0),
            dropped_records: AtomicU64::new(0),
            written: AtomicU64::new(0),
            recording: AtomicBool::new(false),
            last_error: Mutex::new(None),
        }
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        HealthSnapshot {
            db_path: self.db_path.display().to_string(),
            recording: self.recording.load(Ordering::Relaxed),
            pending: self.pending.load(Ordering::Relaxed),
            pending_bytes: self.pending_bytes.load(Ordering::Relaxed),
            tap_dropped: self.tap_dropped.load(Ordering::Relaxed),
            dropped_records: self.dropped_records.load(Ordering::Relaxed),
            written: self.written.load(Ordering::Relaxed),
            last_error: self.last_error.lock().map(|g| g.clone()).unwrap_or(None),
        }
    }

    pub(crate) fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }
}

pub struct RecorderHandle {
    pub health: Arc<Health>,
    /// Every stored execution, as its history row (the service's
    /// `recorded` event), built once by the store as it writes it.
    pub recorded: tokio::sync::broadcast::Sender<ExecutionSummary>,
    stop: Arc<AtomicBool>,
    kernel_pid: Arc<AtomicU32>,
    done: Option<Receiver<()>>,
    threads: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RecorderHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecorderHandle")
            .field("health", &self.health)
            .finish_non_exhaustive()
    }
}

impl RecorderHandle {
    /// The real kernel has a new pid (a restart inside this proxy).
    pub fn set_kernel_pid(&self, pid: u32) {
        self.kernel_pid.store(pid, Ordering::Relaxed);
    }

    /// Stops recording: what is in the queue is assembled, running cells are
    /// stored as they stand, and pending writes get up to 3 s to land.
    /// Whatever is still unwritten then is counted as dropped and logged.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let Some(done) = self.done.take() else { return };
        match done.recv_timeout(SHUTDOWN_WAIT + Duration::from_millis(500)) {
            Ok(()) | Err(RecvTimeoutError::Disconnected) => {
                for t in self.threads.drain(..) {
                    let _ = t.join();
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                tracing::warn!(
                    pending = self.health.pending.load(Ordering::Relaxed),
                    "recorder did not finish in time: unwritten records are lost"
                );
            }
        }
    }
}

/// Starts the recorder and writer threads. Never fails: if a thread cannot
/// start, recording is off (logged) and the queue is simply dropped, which
/// the tap treats as "recorder gone".
pub fn spawn(config: RecorderConfig, rx: TapReceiver, dropped: Arc<AtomicU64>) -> RecorderHandle {
    let health = Arc::new(Health::new(config.location.db_path.clone(), dropped));
    let (recorded, _) = tokio::sync::broadcast::channel(1024);
    let stop = Arc::new(AtomicBool::new(false));
    let kernel_pid = Arc::new(AtomicU32::new(config.kernel_pid));
    let (wtx, wrx) = std::sync::mpsc::channel::<WriteOp>();
    let (done_tx, done_rx) = std::sync::mpsc::channel::<()>();
    let deadline = Arc::new(Mutex::new(None::<Instant>));
    let mut threads = Vec::new();

    let writer = BatchWriter::new(
        config.location.db_path.clone(),
        health.clone(),
        recorded.clone(),
        deadline.clone(),
    );
    match std::thread::Builder::new()
        .name("lineage-writer".into())
        .spawn(move || {
            writer.run(wrx);
            let _ = done_tx.send(());
        }) {
        Ok(t) => threads.push(t),
        Err(e) => {
            tracing::warn!(error = %e, "recording is off: cannot start the writer thread");
            health.set_error(Some(format!("cannot start the writer thread: {e}")));
        }
    }

    let rec_health = health.clone();
    let rec_stop = stop.clone();
    let rec_pid = kernel_pid.clone();
    match std::thread::Builder::new()
        .name("lineage-recorder".into())
        .spawn(move || {
            let mut r = Recorder::new(config, wtx, rec_health, rec_pid);
            r.run(&rx, &rec_stop, &deadline);
        }) {
        Ok(t) => threads.push(t),
        Err(e) => {
            tracing::warn!(error = %e, "recording is off: cannot start the recorder thread");
            health.set_error(Some(format!("cannot start the recorder thread: {e}")));
        }
    }

    RecorderHandle {
        health,
        recorded,
        stop,
        kernel_pid,
        done: Some(done_rx),
        threads,
    }
}

#[cfg(test)]
mod tests;
