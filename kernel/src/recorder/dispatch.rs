//! The recorder thread: takes tapped events off the queue, keeps the
//! session, feeds the [`Assembly`] and the sampler, and hands finished
//! records to the writer (redacted on the way).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde_json::Value;

use super::assembly::{ms, str_of, Assembly, Exec, Exit, Fed};
use super::environment::{self, host_name, user_name, Gathered};
use super::{Health, RecorderConfig, MAX_PENDING_BYTES, MAX_PENDING_RECORDS, SHUTDOWN_WAIT};
use crate::sampler::Monitor;
use crate::store::{SessionEnd, SessionRecord, WriteOp};
use crate::tap::{KernelEvent, TapEvent, TapReceiver, TappedMessage};

struct SessionState {
    uuid: String,
    language: Option<String>,
    /// Display ids shown by executions already handed to the writer.
    stored_display_ids: HashSet<String>,
}

/// The recorder thread's state: the session, the executions in flight, the
/// sampler and the sending end of the writer's queue.
pub(super) struct Recorder {
    cfg: RecorderConfig,
    wtx: Option<Sender<WriteOp>>,
    health: Arc<Health>,
    kernel_pid: Arc<AtomicU32>,
    monitor_pid: u32,
    monitor: Monitor,
    session: Option<SessionState>,
    /// Set after the kernel exited: the next Ready opens a new session.
    exited: bool,
    /// The executions in flight.
    assembly: Assembly,
    gathered_tx: Sender<Gathered>,
    gathered_rx: Receiver<Gathered>,
    notebook_path: Option<String>,
    /// Events were handled since the allocator last gave memory back.
    untrimmed: bool,
    last_trim: Instant,
}

impl Recorder {
    pub(super) fn new(
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
            assembly: Assembly::new(cfg.max_output_bytes),
            cfg,
            wtx: Some(wtx),
            health,
            kernel_pid,
            monitor_pid: pid,
            monitor,
            session: None,
            exited: false,
            gathered_tx,
            gathered_rx,
            notebook_path,
            untrimmed: false,
            last_trim: Instant::now(),
        }
    }

    pub(super) fn run(
        &mut self,
        rx: &TapReceiver,
        stop: &AtomicBool,
        deadline: &Mutex<Option<Instant>>,
    ) {
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
            // An execution whose reply or idle has come is finished as soon
            // as the other is taken: the reply does not ring (see `tap`), so
            // look again shortly rather than at the next tick. This costs
            // the recorder a few wake-ups per cell, never the relay.
            let wait = if self.assembly.is_empty() {
                Duration::from_millis(250)
            } else if self.assembly.completing() {
                Duration::from_millis(2)
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
            self.finish_completed();
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

    /// Git state and the package list, found off this thread.
    fn gather(&self, uuid: String) {
        let python = environment::python_for_packages(
            self.session.as_ref().and_then(|s| s.language.as_deref()),
            self.cfg.python.as_deref(),
            &self.cfg.argv,
        );
        environment::gather(
            uuid,
            self.cfg.location.root.clone(),
            python,
            self.gathered_tx.clone(),
        );
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
        match self.assembly.message(&m, &mut self.monitor) {
            Fed::Nothing => {}
            Fed::Request => {
                self.ensure_session();
            }
            Fed::Display(update) => {
                if let Some(s) = &self.session {
                    if s.stored_display_ids.contains(&update.display_id) {
                        let op = WriteOp::UpdateDisplay {
                            session_uuid: s.uuid.clone(),
                            display_id: update.display_id,
                            data: update.data,
                            metadata: update.metadata,
                        };
                        self.send(op);
                    }
                }
            }
        }
    }

    /// Stores executions whose reply and idle both arrived (or one of them
    /// and the grace period passed), in request order.
    fn finish_completed(&mut self) {
        let done = self
            .assembly
            .take_completed(Instant::now(), false, &mut self.monitor);
        for e in done {
            self.store(e);
        }
    }

    /// Stores every execution still open (see [`Assembly::take_all`]).
    fn finish_all(&mut self, exit: Option<Exit>) {
        for e in self.assembly.take_all(exit, &mut self.monitor) {
            self.store(e);
        }
    }

    fn store(&mut self, e: Exec) {
        let uuid = self.ensure_session();
        if let Some(s) = &mut self.session {
            for d in e.display_ids() {
                if s.stored_display_ids.len() < 100_000 {
                    s.stored_display_ids.insert(d.to_string());
                }
            }
        }
        let record = e.into_record(uuid, self.notebook_path.clone());
        self.send(WriteOp::Execution(Box::new(record)));
    }
}
