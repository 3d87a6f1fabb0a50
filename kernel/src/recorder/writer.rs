//! The writer thread: owns the SQLite connection and commits the records
//! the recorder hands it, in batches, one immediate transaction each.
//!
//! A small state machine ([`Step`]): collect records, decide, write (after
//! opening or reopening the database), and when closing either finish or
//! give up what cannot be written. When the database is locked, slow,
//! unwritable or gone, records wait and the writer retries with backoff;
//! state changes (writing, paused, off) are logged once each.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::Health;
use crate::project;
use crate::store::{ExecutionSummary, Store, StoreError, WriteOp, WriteOutcome};

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

/// The writer thread's state.
pub(super) struct BatchWriter {
    db_path: PathBuf,
    health: Arc<Health>,
    /// Every stored execution, as its history row, for the comm service.
    recorded: tokio::sync::broadcast::Sender<ExecutionSummary>,
    /// Set at shutdown: give up on unwritable records after this instant.
    deadline: Arc<Mutex<Option<Instant>>>,
    store: Option<OpenStore>,
    state: WriteState,
    /// Records not yet committed, oldest first.
    pending: VecDeque<WriteOp>,
    /// When the oldest pending record arrived (for the flush interval).
    oldest: Option<Instant>,
    /// The recorder dropped its end: write what is left, then stop.
    closing: bool,
    /// No write or open before this (backoff).
    retry_at: Instant,
    /// Records arrived while none were waiting: the writer was idle, so it
    /// commits them at once, and a finished cell is durable within
    /// milliseconds of the kernel's idle (a client's
    /// `shutdown_kernel(now=True)` SIGKILLs us with no grace). Records that
    /// arrive while others wait (a burst, a locked database) are batched.
    idle_arrival: bool,
    backoff: Duration,
}

/// What the writer does next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Wait for more records, or for the next flush.
    Collect,
    /// Closing, and the database cannot be written yet: wait a moment.
    Retry,
    /// Commit a batch now.
    Write,
    /// Closing, and everything is written.
    Done,
    /// Closing, and what is left cannot be written in time.
    GiveUp,
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

fn describe_store_error(e: &StoreError) -> String {
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

impl BatchWriter {
    pub(super) fn new(
        db_path: PathBuf,
        health: Arc<Health>,
        recorded: tokio::sync::broadcast::Sender<ExecutionSummary>,
        deadline: Arc<Mutex<Option<Instant>>>,
    ) -> BatchWriter {
        BatchWriter {
            db_path,
            health,
            recorded,
            deadline,
            store: None,
            state: WriteState::Starting,
            pending: VecDeque::new(),
            oldest: None,
            closing: false,
            retry_at: Instant::now(),
            backoff: Duration::from_millis(100),
            idle_arrival: false,
        }
    }

    pub(super) fn run(mut self, rx: Receiver<WriteOp>) {
        self.open_at_start();
        loop {
            if !self.closing {
                self.collect(&rx);
            }
            let step = match self.next_step(Instant::now()) {
                Step::Write => self.write(),
                other => other,
            };
            match step {
                Step::Collect | Step::Write => {}
                Step::Retry => std::thread::sleep(
                    self.retry_at
                        .saturating_duration_since(Instant::now())
                        .min(Duration::from_millis(50)),
                ),
                Step::Done => return,
                Step::GiveUp => {
                    self.give_up();
                    return;
                }
            }
        }
    }

    fn open_at_start(&mut self) {
        match self.open() {
            Ok(s) => {
                self.store = Some(s);
                self.set_state(WriteState::Writing);
            }
            Err(e) => {
                self.set_state(WriteState::Off(describe_store_error(&e)));
                self.retry_at = Instant::now() + REOPEN_PERIOD;
            }
        }
    }

    /// Waits for records: without a bound while none wait, otherwise at
    /// most until the next flush is due.
    fn collect(&mut self, rx: &Receiver<WriteOp>) {
        let now = Instant::now();
        let wait = if self.pending.is_empty() {
            Duration::from_secs(3600)
        } else {
            let due = self
                .oldest
                .map_or(now, |t| t + FLUSH_INTERVAL)
                .max(self.retry_at);
            due.saturating_duration_since(now)
        };
        match rx.recv_timeout(wait) {
            Ok(op) => {
                self.idle_arrival = self.pending.is_empty();
                self.oldest.get_or_insert_with(Instant::now);
                self.pending.push_back(op);
                while let Ok(op) = rx.try_recv() {
                    self.pending.push_back(op);
                }
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => self.closing = true,
        }
    }

    /// Decides between waiting, writing and stopping.
    fn next_step(&mut self, now: Instant) -> Step {
        if self.pending.is_empty() {
            self.oldest = None;
            return if self.closing {
                Step::Done
            } else {
                Step::Collect
            };
        }
        if self.closing && self.store.is_none() && matches!(self.state, WriteState::Off(_)) {
            // One last try to open, now, then give up (in `write`).
            self.retry_at = now;
        }
        let due = self.closing
            || std::mem::take(&mut self.idle_arrival)
            || self.pending.len() >= FLUSH_RECORDS
            || self
                .oldest
                .is_some_and(|t| now.duration_since(t) >= FLUSH_INTERVAL);
        if due && now >= self.retry_at {
            Step::Write
        } else if !self.closing {
            Step::Collect
        } else if self.past_deadline(now) {
            Step::GiveUp
        } else {
            Step::Retry
        }
    }

    /// (Re)opens the database when needed, then commits one batch.
    fn write(&mut self) -> Step {
        if let Err(step) = self.ensure_open() {
            return step;
        }
        // Taken out while writing (so `self` stays free for the
        // bookkeeping) and put back unless the handle is broken.
        let Some(mut open) = self.store.take() else {
            return Step::Collect;
        };
        let mut keep = true;
        // One transaction for up to MAX_BATCH_OPS / MAX_BATCH_BYTES.
        let mut n = 0;
        let mut bytes = 0;
        for op in self.pending.iter() {
            if n >= MAX_BATCH_OPS || (n > 0 && bytes + op.approx_bytes() > MAX_BATCH_BYTES) {
                break;
            }
            bytes += op.approx_bytes();
            n += 1;
        }
        let batch: Vec<WriteOp> = self.pending.iter().take(n).cloned().collect();
        match open.store.write_batch(&batch) {
            Ok(outcomes) => {
                open.store.fix_permissions();
                self.pending.drain(..n);
                self.committed(&batch, outcomes);
                self.set_state(WriteState::Writing);
                self.backoff = Duration::from_millis(100);
                self.retry_at = Instant::now();
                self.oldest = if self.pending.is_empty() {
                    None
                } else {
                    Some(Instant::now() - FLUSH_INTERVAL)
                };
            }
            Err(e) if transient(&e) => {
                self.set_state(WriteState::Paused(describe_store_error(&e)));
                // A read-only or broken handle: reopen on the next try.
                keep = e.is_busy();
                self.retry_at = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
                if self.closing && self.past_deadline(Instant::now()) {
                    return Step::GiveUp;
                }
            }
            Err(e) => {
                // A record SQLite refuses for good: write the batch one
                // by one and drop only the bad ones.
                tracing::warn!(error = %e, "lineage write failed: retrying records one by one");
                for op in self.pending.drain(..n).collect::<Vec<_>>() {
                    let one = [op];
                    match open.store.write_batch(&one) {
                        Ok(out) => self.committed(&one, out),
                        Err(e) => {
                            let why = describe_store_error(&e);
                            tracing::warn!(error = %e, "lineage record dropped: {why}");
                            self.health.set_error(Some(why));
                            self.release(&one[0]);
                            self.health.dropped_records.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        if keep {
            self.store = Some(open);
        }
        Step::Collect
    }

    /// Makes sure a usable connection is open: never opened, or the file
    /// was deleted or replaced. The step to take instead when it cannot be.
    fn ensure_open(&mut self) -> Result<(), Step> {
        let replaced = self
            .store
            .as_ref()
            .is_some_and(|s| s.identity.is_some() && file_identity(&self.db_path) != s.identity);
        if replaced {
            tracing::warn!(
                "{} was removed or replaced: reopening",
                self.db_path.display()
            );
            self.store = None;
        }
        if self.store.is_some() {
            return Ok(());
        }
        match self.open() {
            Ok(s) => {
                self.store = Some(s);
                Ok(())
            }
            Err(e) => {
                let why = describe_store_error(&e);
                let new = if matches!(self.state, WriteState::Off(_) | WriteState::Starting) {
                    WriteState::Off(why)
                } else {
                    WriteState::Paused(why)
                };
                self.set_state(new);
                self.retry_at = Instant::now()
                    + if self.closing {
                        Duration::from_millis(200)
                    } else {
                        REOPEN_PERIOD
                    };
                // A database that could never be opened (a read-only
                // project) will not open in the last seconds either: do
                // not hold the kernel's shutdown for it.
                let never_opened = matches!(self.state, WriteState::Off(_));
                if self.closing && (never_opened || self.past_deadline(Instant::now())) {
                    Err(Step::GiveUp)
                } else {
                    Err(Step::Collect)
                }
            }
        }
    }

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

    /// Logs a change of state once, and keeps the health counters in step.
    fn set_state(&mut self, new: WriteState) {
        if self.state == new {
            return;
        }
        let path = self.db_path.display();
        let waiting = self.pending.len();
        match &new {
            WriteState::Writing => {
                self.health.recording.store(true, Ordering::Relaxed);
                self.health.set_error(None);
                match self.state {
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
        self.state = new;
    }

    /// Whether to stop retrying while closing: 3 s after `shutdown`, or
    /// 10 s after the tap was simply dropped.
    fn past_deadline(&self, now: Instant) -> bool {
        match self.deadline.lock() {
            Ok(mut d) => now >= *d.get_or_insert(now + Duration::from_secs(10)),
            Err(_) => true,
        }
    }

    fn give_up(&mut self) {
        let n = self.pending.len();
        for op in std::mem::take(&mut self.pending) {
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

    /// Releases what a batch held and tells the service about each stored
    /// execution, with the row the store built while writing it.
    fn committed(&self, batch: &[WriteOp], outcomes: Vec<WriteOutcome>) {
        for (op, out) in batch.iter().zip(outcomes) {
            self.release(op);
            if let WriteOutcome::Execution { row, .. } = out {
                self.health.written.fetch_add(1, Ordering::Relaxed);
                let _ = self.recorded.send(*row);
            }
        }
    }
}
