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

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::Value;

use crate::project::{self, ProjectLocation};
use crate::sampler::{Monitor, RunId};
use crate::store::{
    ExecutionRecord, MimeData, OutputRecord, OutputType, SessionEnd, SessionRecord, Status, Store,
    StoreError, WriteOp, WriteOutcome,
};
use crate::tap::{Channel, KernelEvent, TapEvent, TapReceiver, TappedMessage};

/// Default sampling period (`JUPYTER_LINEAGE_SAMPLE_MS`).
pub const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);
/// Default per-output payload cap (`JUPYTER_LINEAGE_MAX_OUTPUT`, bytes).
pub const DEFAULT_MAX_OUTPUT: usize = 16 << 20;
/// Records waiting for the database, at most (count and bytes).
pub const MAX_PENDING_RECORDS: u64 = 10_000;
pub const MAX_PENDING_BYTES: u64 = 256 << 20;
/// Bytes of outputs one in-flight execution may hold; later outputs are
/// dropped and the execution flagged truncated.
const MAX_EXECUTION_BYTES: usize = 256 << 20;
/// How long after the first of execute_reply / idle we wait for the other
/// (they travel on different channels and can be tapped in either order).
const COMPLETION_GRACE: Duration = Duration::from_millis(1000);
/// The writer commits at least this often while records wait…
const FLUSH_INTERVAL: Duration = Duration::from_millis(50);
/// …or as soon as this many are waiting.
const FLUSH_RECORDS: usize = 64;
/// At most this much per transaction, to keep the write lock short.
const MAX_BATCH_BYTES: usize = 64 << 20;
const MAX_BATCH_OPS: usize = 256;
/// Busy timeout of the writer's connection; retries back off beyond it.
const WRITER_BUSY_TIMEOUT: Duration = Duration::from_millis(1000);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// Retry period when the database cannot be opened at all.
const REOPEN_PERIOD: Duration = Duration::from_secs(5);
/// How long `shutdown` waits for pending writes.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(3);
/// First line marking a cell as not to be recorded.
const SKIP_MARKER: &str = "# lineage: skip";

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

    fn set_error(&self, e: Option<String>) {
        if let Ok(mut g) = self.last_error.lock() {
            *g = e;
        }
    }
}

/// Pushed to clients (the service's `recorded` event) once an execution is stored.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recorded {
    pub execution_id: i64,
    pub session_uuid: String,
    pub msg_id: String,
    pub cell_id: Option<String>,
    pub notebook_path: Option<String>,
    pub status: Status,
    pub execution_count: Option<i64>,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub wall_ms: Option<f64>,
    pub silent: bool,
}

pub struct RecorderHandle {
    pub health: Arc<Health>,
    pub recorded: tokio::sync::broadcast::Sender<Recorded>,
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

    let writer = Writer {
        db_path: config.location.db_path.clone(),
        health: health.clone(),
        recorded: recorded.clone(),
        deadline: deadline.clone(),
    };
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

// ───────────────────────────── assembly ─────────────────────────────

fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

fn str_of(v: &Value, key: &str) -> Option<String> {
    v.get(key).and_then(Value::as_str).map(str::to_string)
}

/// True when the first line of `code` is the skip marker.
pub fn is_skipped(code: &str) -> bool {
    code.lines()
        .next()
        .map(|l| l.trim() == SKIP_MARKER)
        .unwrap_or(false)
}

/// One execution being assembled.
#[derive(Debug)]
struct Exec {
    msg_id: String,
    cell_id: Option<String>,
    code: String,
    silent: bool,
    store_history: bool,
    skipped: bool,
    requested_at: SystemTime,
    started_at: Option<SystemTime>,
    ended_at: Option<SystemTime>,
    run: Option<RunId>,
    resources: Option<crate::store::Resources>,
    execution_count: Option<i64>,
    outputs: Vec<OutputRecord>,
    bytes: usize,
    clear_pending: bool,
    dropped_outputs: bool,
    status: Option<Status>,
    error: Option<(Option<String>, Option<String>, Option<Value>)>,
    interrupt_requested: bool,
    reply_seen: bool,
    idle_seen: bool,
    /// When the first of reply / idle arrived (monotonic, for the grace period).
    completing_since: Option<Instant>,
}

impl Exec {
    fn add_output(&mut self, o: OutputRecord, cap: usize) {
        if self.clear_pending {
            self.outputs.clear();
            self.bytes = 0;
            self.clear_pending = false;
        }
        // Consecutive streams of one name become one output, as in the notebook.
        if o.output_type == OutputType::Stream {
            if let Some(last) = self.outputs.last_mut() {
                if last.output_type == OutputType::Stream && last.name == o.name {
                    if let (Some(d), Some(new)) = (last.data.first_mut(), o.data.first()) {
                        let before = d.bytes.len();
                        d.append_text(&new.bytes, cap);
                        self.bytes += d.bytes.len() - before;
                        return;
                    }
                }
            }
        }
        let size: usize = o.data.iter().map(|d| d.bytes.len()).sum();
        if self.bytes + size > MAX_EXECUTION_BYTES {
            self.dropped_outputs = true;
            return;
        }
        self.bytes += size;
        self.outputs.push(o);
    }

    fn clear_output(&mut self, wait: bool) {
        if wait {
            self.clear_pending = true;
        } else {
            self.outputs.clear();
            self.bytes = 0;
            self.clear_pending = false;
        }
    }

    /// Applies update_display_data; true if some output here had that id.
    fn update_display(
        &mut self,
        display_id: &str,
        data: &[MimeData],
        metadata: &Option<Value>,
    ) -> bool {
        let mut hit = false;
        for o in &mut self.outputs {
            if o.display_id.as_deref() == Some(display_id) {
                o.data = data.to_vec();
                o.metadata = metadata.clone();
                hit = true;
            }
        }
        hit
    }
}

fn mime_bundle(content: &Value, cap: usize) -> Vec<MimeData> {
    content
        .get("data")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(mime, v)| MimeData::from_value(mime, v, cap))
                .collect()
        })
        .unwrap_or_default()
}

fn nonempty_metadata(content: &Value) -> Option<Value> {
    content
        .get("metadata")
        .filter(|m| m.as_object().is_some_and(|o| !o.is_empty()))
        .cloned()
}

/// The output a display/result/stream/error iopub message adds, if any.
fn output_from(msg_type: &str, content: &Value, cap: usize) -> Option<OutputRecord> {
    let display_id = content
        .get("transient")
        .and_then(|t| t.get("display_id"))
        .and_then(Value::as_str)
        .map(str::to_string);
    match msg_type {
        "stream" => {
            let text = content.get("text").and_then(Value::as_str).unwrap_or("");
            Some(OutputRecord {
                output_type: OutputType::Stream,
                name: Some(str_of(content, "name").unwrap_or_else(|| "stdout".into())),
                display_id: None,
                execution_count: None,
                metadata: None,
                data: vec![MimeData::from_text(
                    "text/plain",
                    text.as_bytes().to_vec(),
                    false,
                    cap,
                )],
                error: None,
            })
        }
        "display_data" | "execute_result" => Some(OutputRecord {
            output_type: if msg_type == "display_data" {
                OutputType::DisplayData
            } else {
                OutputType::ExecuteResult
            },
            name: None,
            display_id,
            execution_count: content.get("execution_count").and_then(Value::as_i64),
            metadata: nonempty_metadata(content),
            data: mime_bundle(content, cap),
            error: None,
        }),
        "error" => Some(OutputRecord {
            output_type: OutputType::Error,
            name: None,
            display_id: None,
            execution_count: None,
            metadata: None,
            data: Vec::new(),
            error: Some(serde_json::json!({
                "ename": content.get("ename").cloned().unwrap_or(Value::String(String::new())),
                "evalue": content.get("evalue").cloned().unwrap_or(Value::String(String::new())),
                "traceback": content.get("traceback").cloned().unwrap_or(Value::Array(vec![])),
            })),
        }),
        _ => None,
    }
}

struct SessionState {
    uuid: String,
    language: Option<String>,
    /// Display ids shown by executions already handed to the writer.
    stored_display_ids: HashSet<String>,
}

/// Facts gathered off the recorder thread (git, packages), sent back to it.
enum Gathered {
    Git {
        uuid: String,
        head: Option<String>,
        dirty: Option<bool>,
    },
    Packages {
        uuid: String,
        json: Vec<u8>,
    },
}

struct Recorder {
    cfg: RecorderConfig,
    wtx: Option<Sender<WriteOp>>,
    health: Arc<Health>,
    kernel_pid: Arc<AtomicU32>,
    monitor_pid: u32,
    monitor: Monitor,
    session: Option<SessionState>,
    /// Set after the kernel exited: the next Ready opens a new session.
    exited: bool,
    execs: HashMap<String, Exec>,
    /// Request order, for "the running one" and for finishing in order.
    order: Vec<String>,
    gathered_tx: Sender<Gathered>,
    gathered_rx: Receiver<Gathered>,
    notebook_path: Option<String>,
    /// Events were handled since the allocator last gave memory back.
    untrimmed: bool,
    last_trim: Instant,
}

impl Recorder {
    fn new(
        cfg: RecorderConfig,
        wtx: Sender<WriteOp>,
        health: Arc<Health>,
        kernel_pid: Arc<AtomicU32>,
    ) -> Recorder {
        let pid = kernel_pid.load(Ordering::Relaxed);
        let monitor = Monitor::spawn(pid, cfg.sample_interval);
        let (gathered_tx, gathered_rx) = std::sync::mpsc::channel();
        let notebook_path = cfg
            .location
            .notebook_path
            .as_ref()
            .map(|p| p.display().to_string());
        Recorder {
            cfg,
            wtx: Some(wtx),
            health,
            kernel_pid,
            monitor_pid: pid,
            monitor,
            session: None,
            exited: false,
            execs: HashMap::new(),
            order: Vec::new(),
            gathered_tx,
            gathered_rx,
            notebook_path,
            untrimmed: false,
            last_trim: Instant::now(),
        }
    }

    fn run(&mut self, rx: &TapReceiver, stop: &AtomicBool, deadline: &Mutex<Option<Instant>>) {
        loop {
            if stop.load(Ordering::Relaxed) {
                if let Ok(mut d) = deadline.lock() {
                    *d = Some(Instant::now() + SHUTDOWN_WAIT);
                }
                while let Ok(ev) = rx.try_recv() {
                    self.handle(ev);
                }
                break;
            }
            let wait = if self.execs.is_empty() {
                Duration::from_millis(250)
            } else {
                Duration::from_millis(50)
            };
            match rx.recv_timeout(wait) {
                Ok(ev) => {
                    self.untrimmed = true;
                    self.handle(ev);
                    // Drain a burst before the housekeeping below.
                    for _ in 0..1024 {
                        match rx.try_recv() {
                            Ok(ev) => self.handle(ev),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    // A quiet tick with nothing left to write: the burst is
                    // over, give its memory back (at most once a second, for
                    // a long cell that prints now and then).
                    if self.untrimmed
                        && self.health.pending.load(Ordering::Relaxed) == 0
                        && self.last_trim.elapsed() >= Duration::from_secs(1)
                    {
                        crate::memory::trim();
                        self.untrimmed = false;
                        self.last_trim = Instant::now();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => break,
            }
            while let Ok(g) = self.gathered_rx.try_recv() {
                self.forward_gathered(g);
            }
            self.finish_completed(false);
        }
        self.close();
    }

    /// On shutdown: running cells are stored as they stand.
    fn close(&mut self) {
        while let Ok(g) = self.gathered_rx.try_recv() {
            self.forward_gathered(g);
        }
        self.finish_all(None);
        if let Some(s) = &self.session {
            let end = SessionEnd {
                uuid: s.uuid.clone(),
                ended_ms: ms(SystemTime::now()),
                exit_code: None,
                exit_signal: None,
            };
            if !self.exited {
                self.send(WriteOp::SessionEnded(end));
            }
        }
        // Dropping the sender lets the writer flush and stop.
        self.wtx = None;
    }

    fn forward_gathered(&mut self, g: Gathered) {
        match g {
            Gathered::Git { uuid, head, dirty } => {
                self.send(WriteOp::SessionGit { uuid, head, dirty })
            }
            Gathered::Packages { uuid, json } => self.send(WriteOp::Packages { uuid, json }),
        }
    }

    /// Hands an op to the writer, unless the pending bound is reached.
    /// Secrets are redacted here, the one door to the database.
    fn send(&mut self, mut op: WriteOp) {
        if self.cfg.redact {
            crate::redact::redact_write(&mut op);
        }
        let bytes = op.approx_bytes() as u64;
        let pending = self.health.pending.load(Ordering::Relaxed);
        let pending_bytes = self.health.pending_bytes.load(Ordering::Relaxed);
        if pending >= MAX_PENDING_RECORDS || pending_bytes + bytes > MAX_PENDING_BYTES {
            let n = self.health.dropped_records.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    dropped = n,
                    pending,
                    pending_bytes,
                    "lineage queue full (database unavailable): records dropped"
                );
            }
            return;
        }
        let Some(wtx) = &self.wtx else { return };
        self.health.pending.fetch_add(1, Ordering::Relaxed);
        self.health
            .pending_bytes
            .fetch_add(bytes, Ordering::Relaxed);
        if wtx.send(op).is_err() {
            // The writer thread is gone (it logged why).
            self.health.pending.fetch_sub(1, Ordering::Relaxed);
            self.health
                .pending_bytes
                .fetch_sub(bytes, Ordering::Relaxed);
            self.health.dropped_records.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn handle(&mut self, ev: TapEvent) {
        match ev {
            TapEvent::Message(m) => self.message(m),
            TapEvent::Kernel(KernelEvent::Ready {
                session,
                kernel_info,
            }) => self.ready(session, kernel_info),
            TapEvent::Kernel(KernelEvent::Exited { code, signal }) => self.exited(code, signal),
        }
    }

    fn ensure_session(&mut self) -> String {
        if let Some(s) = &self.session {
            return s.uuid.clone();
        }
        // Executions before Ready (or after an exit without a new Ready):
        // a session row without kernel_info.
        self.open_session(None, &Value::Null)
    }

    fn open_session(&mut self, kernel_session: Option<String>, kernel_info: &Value) -> String {
        let uuid = uuid::Uuid::new_v4().to_string();
        let li = kernel_info.get("language_info").cloned();
        let language = li.as_ref().and_then(|l| str_of(l, "name"));
        let loc = &self.cfg.location;
        let rec = SessionRecord {
            uuid: uuid.clone(),
            kernel_session,
            kernelspec: self.cfg.kernelspec.clone(),
            argv: self.cfg.argv.clone(),
            language: language.clone(),
            language_info: li,
            implementation: str_of(kernel_info, "implementation"),
            implementation_version: str_of(kernel_info, "implementation_version"),
            started_ms: ms(SystemTime::now()),
            notebook_path: self.notebook_path.clone(),
            cwd: std::env::current_dir()
                .ok()
                .map(|p| p.display().to_string()),
            project_root: Some(loc.root.display().to_string()),
            user: user_name(),
            host: host_name(),
            pid: Some(std::process::id()),
            kernel_pid: Some(self.kernel_pid.load(Ordering::Relaxed)).filter(|&p| p != 0),
            git_head: None,
            git_dirty: None,
        };
        self.send(WriteOp::Session(Box::new(rec)));
        self.session = Some(SessionState {
            uuid: uuid.clone(),
            language,
            stored_display_ids: HashSet::new(),
        });
        self.exited = false;
        self.gather(uuid.clone());
        uuid
    }

    /// Git state and the package list, on a helper thread: both run
    /// subprocesses that may take seconds.
    fn gather(&self, uuid: String) {
        let root = self.cfg.location.root.clone();
        let python = self.python_for_packages();
        let tx = self.gathered_tx.clone();
        let spawned = std::thread::Builder::new()
            .name("lineage-gather".into())
            .spawn(move || {
                let (head, dirty) = git_state(&root);
                let _ = tx.send(Gathered::Git {
                    uuid: uuid.clone(),
                    head,
                    dirty,
                });
                if let Some(py) = python {
                    if let Some(json) = python_packages(&py) {
                        let _ = tx.send(Gathered::Packages { uuid, json });
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::debug!(error = %e, "cannot start the gather thread");
        }
    }

    fn python_for_packages(&self) -> Option<PathBuf> {
        let lang = self.session.as_ref()?.language.as_deref()?;
        if !lang.eq_ignore_ascii_case("python") {
            return None;
        }
        if let Some(p) = &self.cfg.python {
            return Some(p.clone());
        }
        let argv0 = self.cfg.argv.first().map(Path::new);
        match argv0 {
            Some(p)
                if p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("python")) =>
            {
                Some(p.to_path_buf())
            }
            _ => Some(PathBuf::from("python3")),
        }
    }

    fn ready(&mut self, kernel_session: String, kernel_info: Value) {
        let pid = self.kernel_pid.load(Ordering::Relaxed);
        if pid != self.monitor_pid {
            self.monitor.set_root_pid(pid);
            self.monitor_pid = pid;
        }
        // A second Ready of the same live kernel (the proxy asked again) is
        // no new session.
        if self.session.is_some() && !self.exited {
            return;
        }
        self.open_session(Some(kernel_session), &kernel_info);
    }

    fn exited(&mut self, code: Option<i32>, signal: Option<i32>) {
        self.finish_all(Some((code, signal)));
        if let Some(s) = &self.session {
            let end = SessionEnd {
                uuid: s.uuid.clone(),
                ended_ms: ms(SystemTime::now()),
                exit_code: code,
                exit_signal: signal,
            };
            self.send(WriteOp::SessionEnded(end));
        }
        self.session = None;
        self.exited = true;
    }

    fn message(&mut self, m: TappedMessage) {
        let header = parse(&m.header);
        let Some(msg_type) = header.get("msg_type").and_then(Value::as_str) else {
            return;
        };
        match m.channel {
            Channel::ShellRequest => {
                if msg_type == "execute_request" {
                    self.execute_request(&header, &m);
                }
            }
            Channel::ControlRequest => {
                if msg_type == "interrupt_request" {
                    // Marks the cell running now (started, not finished).
                    if let Some(e) = self
                        .order
                        .iter()
                        .filter_map(|id| self.execs.get(id))
                        .find(|e| e.started_at.is_some() && e.status.is_none())
                        .map(|e| e.msg_id.clone())
                    {
                        if let Some(e) = self.execs.get_mut(&e) {
                            e.interrupt_requested = true;
                        }
                    }
                }
            }
            Channel::ShellReply => {
                if msg_type == "execute_reply" {
                    let parent = parse(&m.parent_header);
                    if let Some(id) = str_of(&parent, "msg_id") {
                        if self.execs.contains_key(&id) {
                            let content = parse(&m.content);
                            self.execute_reply(&id, &content, m.at);
                        }
                    }
                }
            }
            Channel::Iopub => self.iopub(msg_type, &m),
        }
    }

    fn execute_request(&mut self, header: &Value, m: &TappedMessage) {
        let Some(msg_id) = str_of(header, "msg_id") else {
            return;
        };
        let content = parse(&m.content);
        let metadata = parse(&m.metadata);
        let code = str_of(&content, "code").unwrap_or_default();
        // JupyterLab sends `cellId`; accept `cell_id` from other clients.
        let cell_id = str_of(&metadata, "cellId").or_else(|| str_of(&metadata, "cell_id"));
        self.ensure_session();
        let skipped = is_skipped(&code);
        let exec = Exec {
            msg_id: msg_id.clone(),
            cell_id,
            code,
            silent: content
                .get("silent")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            store_history: content
                .get("store_history")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            skipped,
            requested_at: m.at,
            started_at: None,
            ended_at: None,
            run: None,
            resources: None,
            execution_count: None,
            outputs: Vec::new(),
            bytes: 0,
            clear_pending: false,
            dropped_outputs: false,
            status: None,
            error: None,
            interrupt_requested: false,
            reply_seen: false,
            idle_seen: false,
            completing_since: None,
        };
        if self.execs.insert(msg_id.clone(), exec).is_none() {
            self.order.push(msg_id);
        }
    }

    fn start(&mut self, msg_id: &str, at: SystemTime) {
        let Some(e) = self.execs.get_mut(msg_id) else {
            return;
        };
        if e.started_at.is_none() {
            e.started_at = Some(at);
            e.run = Some(self.monitor.begin());
        }
    }

    /// Ends resource measurement (at reply or idle, whichever comes first).
    fn stop_run(&mut self, msg_id: &str) {
        if let Some(e) = self.execs.get_mut(msg_id) {
            if let Some(run) = e.run.take() {
                e.resources = Some(self.monitor.end(run));
            }
        }
    }

    fn execute_reply(&mut self, msg_id: &str, content: &Value, at: SystemTime) {
        self.start(msg_id, at);
        self.stop_run(msg_id);
        let Some(e) = self.execs.get_mut(msg_id) else {
            return;
        };
        e.reply_seen = true;
        e.ended_at = Some(at);
        e.completing_since.get_or_insert_with(Instant::now);
        if let Some(n) = content.get("execution_count").and_then(Value::as_i64) {
            e.execution_count = Some(n);
        }
        let ename = str_of(content, "ename");
        e.status = Some(match content.get("status").and_then(Value::as_str) {
            Some("ok") => Status::Ok,
            Some("aborted") => Status::Aborted,
            Some("error") => {
                if ename.as_deref() == Some("KeyboardInterrupt") || e.interrupt_requested {
                    Status::Interrupted
                } else {
                    Status::Error
                }
            }
            _ => Status::Error,
        });
        if content.get("status").and_then(Value::as_str) == Some("error") {
            e.error = Some((
                ename,
                str_of(content, "evalue"),
                content.get("traceback").cloned(),
            ));
        }
    }

    fn iopub(&mut self, msg_type: &str, m: &TappedMessage) {
        let parent = parse(&m.parent_header);
        let parent_id = str_of(&parent, "msg_id").unwrap_or_default();
        let known = self.execs.contains_key(&parent_id);
        if !known && msg_type != "update_display_data" {
            return;
        }
        let cap = self.cfg.max_output_bytes;
        match msg_type {
            "status" => {
                let content = parse(&m.content);
                match content.get("execution_state").and_then(Value::as_str) {
                    Some("busy") => self.start(&parent_id, m.at),
                    Some("idle") => {
                        self.stop_run(&parent_id);
                        if let Some(e) = self.execs.get_mut(&parent_id) {
                            e.idle_seen = true;
                            e.ended_at.get_or_insert(m.at);
                            e.completing_since.get_or_insert_with(Instant::now);
                        }
                    }
                    _ => {}
                }
            }
            "execute_input" => {
                self.start(&parent_id, m.at);
                let content = parse(&m.content);
                if let Some(e) = self.execs.get_mut(&parent_id) {
                    if let Some(n) = content.get("execution_count").and_then(Value::as_i64) {
                        e.execution_count = Some(n);
                    }
                }
            }
            "stream" | "display_data" | "execute_result" | "error" => {
                let content = parse(&m.content);
                if let Some(o) = output_from(msg_type, &content, cap) {
                    self.start(&parent_id, m.at);
                    if let Some(e) = self.execs.get_mut(&parent_id) {
                        if msg_type == "execute_result" {
                            if let Some(n) = o.execution_count {
                                e.execution_count = Some(n);
                            }
                        }
                        e.add_output(o, cap);
                    }
                }
            }
            "clear_output" => {
                let content = parse(&m.content);
                let wait = content
                    .get("wait")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                if let Some(e) = self.execs.get_mut(&parent_id) {
                    e.clear_output(wait);
                }
            }
            "update_display_data" => {
                let content = parse(&m.content);
                let Some(display_id) = content
                    .get("transient")
                    .and_then(|t| t.get("display_id"))
                    .and_then(Value::as_str)
                else {
                    return;
                };
                let data = mime_bundle(&content, cap);
                let metadata = nonempty_metadata(&content);
                // Like the notebook: every output showing this display_id
                // changes, whichever execution made it.
                for e in self.execs.values_mut() {
                    e.update_display(display_id, &data, &metadata);
                }
                if let Some(s) = &self.session {
                    if s.stored_display_ids.contains(display_id) {
                        let op = WriteOp::UpdateDisplay {
                            session_uuid: s.uuid.clone(),
                            display_id: display_id.to_string(),
                            data,
                            metadata,
                        };
                        self.send(op);
                    }
                }
            }
            _ => {}
        }
    }

    /// Stores executions whose reply and idle both arrived (or one of them
    /// and the grace period passed), in request order.
    fn finish_completed(&mut self, force: bool) {
        let now = Instant::now();
        let done: Vec<String> = self
            .order
            .iter()
            .filter(|id| {
                self.execs.get(*id).is_some_and(|e| {
                    (e.reply_seen && e.idle_seen)
                        || force
                        || e.completing_since
                            .is_some_and(|t| now.duration_since(t) >= COMPLETION_GRACE)
                })
            })
            .cloned()
            .collect();
        for id in done {
            if let Some(e) = self.execs.remove(&id) {
                self.store(e, None);
            }
        }
        let execs = &self.execs;
        self.order.retain(|id| execs.contains_key(id));
    }

    /// Stores every execution still open: started ones as `died` (with the
    /// exit) or as they stand at shutdown; never-started ones as `aborted`.
    fn finish_all(&mut self, exit: Option<(Option<i32>, Option<i32>)>) {
        // Ones already complete keep their real status.
        for id in std::mem::take(&mut self.order) {
            let Some(mut e) = self.execs.remove(&id) else {
                continue;
            };
            if let Some(run) = e.run.take() {
                e.resources = Some(self.monitor.end(run));
            }
            if e.status.is_none() {
                e.status = Some(if e.started_at.is_none() {
                    Status::Aborted
                } else {
                    Status::Died
                });
                e.ended_at.get_or_insert_with(SystemTime::now);
            }
            self.store(e, exit);
        }
        self.execs.clear();
    }

    fn store(&mut self, mut e: Exec, exit: Option<(Option<i32>, Option<i32>)>) {
        if let Some(run) = e.run.take() {
            e.resources = Some(self.monitor.end(run));
        }
        let uuid = self.ensure_session();
        let status = e.status.unwrap_or(Status::Died);
        let started = e.started_at.unwrap_or(e.requested_at);
        let wall_ms = e.ended_at.and_then(|end| {
            end.duration_since(started)
                .ok()
                .map(|d| d.as_secs_f64() * 1000.0)
        });
        let (error_name, error_value, traceback) = match (&e.error, status) {
            (Some((n, v, t)), _) => (n.clone(), v.clone(), t.clone()),
            // A reply without ename: take it from the last error output.
            (None, Status::Error | Status::Interrupted) => e
                .outputs
                .iter()
                .rev()
                .find_map(|o| o.error.as_ref())
                .map(|err| {
                    (
                        str_of(err, "ename"),
                        str_of(err, "evalue"),
                        err.get("traceback").cloned(),
                    )
                })
                .unwrap_or((None, None, None)),
            _ => (None, None, None),
        };
        let (exit_code, exit_signal) = match (status, exit) {
            (Status::Died, Some((c, s))) => (c, s),
            _ => (None, None),
        };
        let skipped = e.skipped;
        if !skipped {
            if let Some(s) = &mut self.session {
                for o in &e.outputs {
                    if let Some(d) = &o.display_id {
                        if s.stored_display_ids.len() < 100_000 {
                            s.stored_display_ids.insert(d.clone());
                        }
                    }
                }
            }
        }
        let record = ExecutionRecord {
            session_uuid: uuid,
            msg_id: e.msg_id,
            cell_id: e.cell_id,
            notebook_path: self.notebook_path.clone(),
            execution_count: e.execution_count,
            code: (!skipped).then_some(e.code),
            silent: e.silent,
            store_history: e.store_history,
            started_ms: ms(started),
            ended_ms: e.ended_at.map(ms),
            status: if skipped { Status::Skipped } else { status },
            error_name: (!skipped).then_some(error_name).flatten(),
            error_value: (!skipped).then_some(error_value).flatten(),
            traceback: (!skipped).then_some(traceback).flatten(),
            wall_ms,
            resources: e.resources.unwrap_or_default(),
            exit_code,
            exit_signal,
            outputs: if skipped { Vec::new() } else { e.outputs },
            truncated: e.dropped_outputs && !skipped,
        };
        self.send(WriteOp::Execution(Box::new(record)));
    }
}

// ───────────────────────────── environment facts ─────────────────────────────

fn user_name() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return Some(u);
            }
        }
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we
    // copy the name out immediately on this thread.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned()).filter(|s| !s.is_empty())
}

/// Runs a command with a deadline; its stdout if it exited 0.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on a helper thread so a chatty child cannot fill the pipe and stall.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?;
    status.filter(|s| s.success()).map(|_| out)
}

/// HEAD and whether tracked files differ from it; (None, None) without git.
pub fn git_state(root: &Path) -> (Option<String>, Option<bool>) {
    let timeout = Duration::from_secs(3);
    let head = run_with_timeout(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["rev-parse", "HEAD"]),
        timeout,
    )
    .map(|o| String::from_utf8_lossy(&o).trim().to_string())
    .filter(|s| !s.is_empty());
    if head.is_none() {
        return (None, None);
    }
    let dirty = run_with_timeout(
        Command::new("git").arg("-C").arg(root).args([
            "status",
            "--porcelain",
            "--untracked-files=no",
        ]),
        timeout,
    )
    .map(|o| !o.iter().all(u8::is_ascii_whitespace));
    (head, dirty)
}

/// The installed distributions of `python`'s environment as a JSON list of
/// `{name, version}`, sorted by name. Uses importlib.metadata (works where
/// pip is absent, e.g. uv-made venvs). Runs as its own process, never in
/// the kernel.
pub fn python_packages(python: &Path) -> Option<Vec<u8>> {
    const SCRIPT: &str = "import json, importlib.metadata as m\n\
        seen = {}\n\
        for d in m.distributions():\n\
        \x20   n = d.metadata['Name']\n\
        \x20   if n and n.lower() not in seen: seen[n.lower()] = {'name': n, 'version': d.version}\n\
        print(json.dumps([seen[k] for k in sorted(seen)]))";
    let out = run_with_timeout(
        Command::new(python).args(["-I", "-c", SCRIPT]),
        Duration::from_secs(30),
    )?;
    // Store it canonical (and check it is JSON at all).
    let v: Value = serde_json::from_slice(&out).ok()?;
    serde_json::to_vec(&v).ok()
}

// ───────────────────────────── writer ─────────────────────────────

struct Writer {
    db_path: PathBuf,
    health: Arc<Health>,
    recorded: tokio::sync::broadcast::Sender<Recorded>,
    /// Set at shutdown: give up on unwritable records after this instant.
    deadline: Arc<Mutex<Option<Instant>>>,
}

/// Whether the database is taking writes, for logging state changes once.
#[derive(Debug, Clone, PartialEq)]
enum WriteState {
    Starting,
    Writing,
    Paused(String),
    Off(String),
}

struct OpenStore {
    store: Store,
    /// (dev, inode) at open: a deleted or replaced file is reopened.
    identity: Option<(u64, u64)>,
}

fn file_identity(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// Errors that go away by themselves (another writer, a full disk freed,
/// permissions fixed); anything else is a bad record.
fn transient(e: &StoreError) -> bool {
    use rusqlite::ErrorCode as C;
    match e {
        StoreError::Io { .. } => true,
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => matches!(
            f.code,
            C::DatabaseBusy
                | C::DatabaseLocked
                | C::ReadOnly
                | C::CannotOpen
                | C::DiskFull
                | C::SystemIoFailure
                | C::PermissionDenied
                | C::OperationInterrupted
                | C::FileLockingProtocolFailed
                | C::NotADatabase
                | C::DatabaseCorrupt
        ),
        _ => false,
    }
}

fn describe(e: &StoreError) -> String {
    match e {
        StoreError::Sqlite(rusqlite::Error::SqliteFailure(f, msg)) => {
            let what = match f.code {
                rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked => {
                    "database is locked"
                }
                rusqlite::ErrorCode::ReadOnly => "database is read-only",
                rusqlite::ErrorCode::DiskFull => "disk is full",
                rusqlite::ErrorCode::CannotOpen => "cannot open the database",
                _ => "",
            };
            match (what, msg) {
                ("", Some(m)) => m.clone(),
                ("", None) => e.to_string(),
                (w, Some(m)) => format!("{w} ({m})"),
                (w, None) => w.to_string(),
            }
        }
        other => other.to_string(),
    }
}

impl Writer {
    fn open(&self) -> Result<OpenStore, StoreError> {
        if let Some(dir) = self.db_path.parent() {
            project::ensure_dir(dir).map_err(|source| StoreError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let store = Store::open(&self.db_path)?;
        store.set_busy_timeout(WRITER_BUSY_TIMEOUT)?;
        Ok(OpenStore {
            identity: file_identity(&self.db_path),
            store,
        })
    }

    fn set_state(&self, state: &mut WriteState, new: WriteState, waiting: usize) {
        if *state == new {
            return;
        }
        let path = self.db_path.display();
        match &new {
            WriteState::Writing => {
                self.health.recording.store(true, Ordering::Relaxed);
                self.health.set_error(None);
                match state {
                    WriteState::Starting => tracing::info!("recording to {path}"),
                    _ => tracing::info!("recording resumed ({path})"),
                }
            }
            WriteState::Paused(why) => {
                self.health.recording.store(false, Ordering::Relaxed);
                self.health.set_error(Some(why.clone()));
                tracing::warn!("recording paused: {why}; {waiting} records waiting ({path})");
            }
            WriteState::Off(why) => {
                self.health.recording.store(false, Ordering::Relaxed);
                self.health.set_error(Some(why.clone()));
                tracing::warn!("recording is off: {why} ({path}); will retry");
            }
            WriteState::Starting => {}
        }
        *state = new;
    }

    fn run(self, rx: Receiver<WriteOp>) {
        let mut store: Option<OpenStore> = None;
        let mut state = WriteState::Starting;
        let mut pending: std::collections::VecDeque<WriteOp> = Default::default();
        let mut oldest: Option<Instant> = None;
        let mut closing = false;
        let mut retry_at = Instant::now();
        let mut backoff = Duration::from_millis(100);

        match self.open() {
            Ok(s) => {
                store = Some(s);
                self.set_state(&mut state, WriteState::Writing, 0);
            }
            Err(e) => {
                self.set_state(&mut state, WriteState::Off(describe(&e)), 0);
                retry_at = Instant::now() + REOPEN_PERIOD;
            }
        }

        loop {
            // Collect: block while idle, otherwise wait at most until the next flush.
            let now = Instant::now();
            let wait = if closing {
                Duration::ZERO
            } else if pending.is_empty() {
                Duration::from_secs(3600)
            } else {
                let due = oldest.map_or(now, |t| t + FLUSH_INTERVAL).max(retry_at);
                due.saturating_duration_since(now)
            };
            if !closing {
                match rx.recv_timeout(wait) {
                    Ok(op) => {
                        oldest.get_or_insert_with(Instant::now);
                        pending.push_back(op);
                        while let Ok(op) = rx.try_recv() {
                            pending.push_back(op);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => closing = true,
                }
            }
            let now = Instant::now();
            let due = closing
                || pending.len() >= FLUSH_RECORDS
                || oldest.is_some_and(|t| now.duration_since(t) >= FLUSH_INTERVAL);
            if pending.is_empty() {
                oldest = None;
                if closing {
                    return;
                }
                continue;
            }
            if closing && store.is_none() && matches!(state, WriteState::Off(_)) {
                // One last try to open, now, then give up (below).
                retry_at = now;
            }
            if !due || now < retry_at {
                if closing {
                    if self.past_deadline(now) {
                        self.give_up(&mut pending);
                        return;
                    }
                    std::thread::sleep(
                        retry_at
                            .saturating_duration_since(now)
                            .min(Duration::from_millis(50)),
                    );
                }
                continue;
            }

            // (Re)open when needed: never opened, or the file was deleted/replaced.
            let replaced = store.as_ref().is_some_and(|s| {
                s.identity.is_some() && file_identity(&self.db_path) != s.identity
            });
            if replaced {
                tracing::warn!(
                    "{} was removed or replaced: reopening",
                    self.db_path.display()
                );
                store = None;
            }
            if store.is_none() {
                match self.open() {
                    Ok(s) => store = Some(s),
                    Err(e) => {
                        let why = describe(&e);
                        let new = if matches!(state, WriteState::Off(_) | WriteState::Starting) {
                            WriteState::Off(why)
                        } else {
                            WriteState::Paused(why)
                        };
                        self.set_state(&mut state, new, pending.len());
                        retry_at = Instant::now()
                            + if closing {
                                Duration::from_millis(200)
                            } else {
                                REOPEN_PERIOD
                            };
                        // A database that could never be opened (a read-only
                        // project) will not open in the last seconds either:
                        // do not hold the kernel's shutdown for it.
                        let never_opened = matches!(state, WriteState::Off(_));
                        if closing && (never_opened || self.past_deadline(Instant::now())) {
                            self.give_up(&mut pending);
                            return;
                        }
                        continue;
                    }
                }
            }
            let Some(open) = store.as_mut() else { continue };

            // One transaction for up to MAX_BATCH_OPS / MAX_BATCH_BYTES.
            let mut n = 0;
            let mut bytes = 0;
            for op in pending.iter() {
                if n >= MAX_BATCH_OPS || (n > 0 && bytes + op.approx_bytes() > MAX_BATCH_BYTES) {
                    break;
                }
                bytes += op.approx_bytes();
                n += 1;
            }
            let batch: Vec<WriteOp> = pending.iter().take(n).cloned().collect();
            match open.store.write_batch(&batch) {
                Ok(outcomes) => {
                    pending.drain(..n);
                    self.committed(&batch, &outcomes);
                    self.set_state(&mut state, WriteState::Writing, pending.len());
                    backoff = Duration::from_millis(100);
                    retry_at = Instant::now();
                    oldest = if pending.is_empty() {
                        None
                    } else {
                        Some(Instant::now() - FLUSH_INTERVAL)
                    };
                    open.store.fix_permissions();
                }
                Err(e) if transient(&e) => {
                    self.set_state(&mut state, WriteState::Paused(describe(&e)), pending.len());
                    if !e.is_busy() {
                        // A read-only or broken handle: reopen on the next try.
                        store = None;
                    }
                    retry_at = Instant::now() + backoff;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    if closing && self.past_deadline(Instant::now()) {
                        self.give_up(&mut pending);
                        return;
                    }
                }
                Err(e) => {
                    // A record SQLite refuses for good: write the batch one
                    // by one and drop only the bad ones.
                    tracing::warn!(error = %e, "lineage write failed: retrying records one by one");
                    for op in pending.drain(..n).collect::<Vec<_>>() {
                        let one = [op];
                        match open.store.write_batch(&one) {
                            Ok(out) => self.committed(&one, &out),
                            Err(e) => {
                                tracing::warn!(error = %e, "lineage record dropped: {}", describe(&e));
                                self.health.set_error(Some(describe(&e)));
                                self.release(&one[0]);
                                self.health.dropped_records.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Whether to stop retrying while closing: 3 s after `shutdown`, or
    /// 10 s after the tap was simply dropped.
    fn past_deadline(&self, now: Instant) -> bool {
        match self.deadline.lock() {
            Ok(mut d) => now >= *d.get_or_insert(now + Duration::from_secs(10)),
            Err(_) => true,
        }
    }

    fn give_up(&self, pending: &mut std::collections::VecDeque<WriteOp>) {
        let n = pending.len();
        for op in pending.drain(..) {
            self.release(&op);
        }
        self.health
            .dropped_records
            .fetch_add(n as u64, Ordering::Relaxed);
        tracing::warn!(
            "recording stopped with {n} records unwritten ({})",
            self.db_path.display()
        );
    }

    fn release(&self, op: &WriteOp) {
        self.health.pending.fetch_sub(1, Ordering::Relaxed);
        self.health
            .pending_bytes
            .fetch_sub(op.approx_bytes() as u64, Ordering::Relaxed);
    }

    fn committed(&self, batch: &[WriteOp], outcomes: &[WriteOutcome]) {
        for (op, out) in batch.iter().zip(outcomes) {
            self.release(op);
            if let (WriteOp::Execution(e), WriteOutcome::Execution { id }) = (op, out) {
                self.health.written.fetch_add(1, Ordering::Relaxed);
                let _ = self.recorded.send(Recorded {
                    execution_id: *id,
                    session_uuid: e.session_uuid.clone(),
                    msg_id: e.msg_id.clone(),
                    cell_id: e.cell_id.clone(),
                    notebook_path: e.notebook_path.clone(),
                    status: e.status,
                    execution_count: e.execution_count,
                    started_ms: e.started_ms,
                    ended_ms: e.ended_ms,
                    wall_ms: e.wall_ms,
                    silent: e.silent,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
