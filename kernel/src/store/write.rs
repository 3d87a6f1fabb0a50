//! The write path: records built by the recorder, written in batches, one
//! `BEGIN IMMEDIATE` transaction per batch.

use rusqlite::{params, OptionalExtension, Transaction};
use serde::Serialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::query::ExecutionSummary;
use super::{Store, StoreError};

/// How an execution ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Running,
    Ok,
    Error,
    Aborted,
    Interrupted,
    Died,
    Skipped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Ok => "ok",
            Status::Error => "error",
            Status::Aborted => "aborted",
            Status::Interrupted => "interrupted",
            Status::Died => "died",
            Status::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputType {
    Stream,
    DisplayData,
    ExecuteResult,
    Error,
}

impl OutputType {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputType::Stream => "stream",
            OutputType::DisplayData => "display_data",
            OutputType::ExecuteResult => "execute_result",
            OutputType::Error => "error",
        }
    }
}

/// One MIME value of an output, stored as received: a JSON string is kept as
/// its string's bytes (so base64 `image/png` stays base64 text), any other
/// JSON value (`application/json`, widget state…) as its JSON text.
#[derive(Debug, Clone)]
pub struct MimeData {
    pub mime: String,
    /// The stored bytes (possibly cut to the cap).
    pub bytes: Vec<u8>,
    /// The value was JSON rather than a string.
    pub is_json: bool,
    /// Length before truncation.
    pub size: usize,
    pub truncated: bool,
}

impl MimeData {
    /// From a MIME bundle value, cut to `cap` bytes (on a UTF-8 boundary).
    pub fn from_value(mime: &str, value: &Value, cap: usize) -> MimeData {
        match value {
            Value::String(s) => MimeData::from_text(mime, s.as_bytes().to_vec(), false, cap),
            other => {
                let text = serde_json::to_vec(other).unwrap_or_default();
                MimeData::from_text(mime, text, true, cap)
            }
        }
    }

    /// From text bytes (a stream's text is `text/plain`).
    pub fn from_text(mime: &str, mut bytes: Vec<u8>, is_json: bool, cap: usize) -> MimeData {
        let size = bytes.len();
        let truncated = size > cap;
        if truncated {
            let mut cut = cap;
            // Never split a UTF-8 sequence: step back over continuation bytes.
            while cut > 0 && (bytes[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            bytes.truncate(cut);
        }
        MimeData {
            mime: mime.to_string(),
            bytes,
            is_json,
            size,
            truncated,
        }
    }

    /// Appends text (a coalesced stream), keeping at most `cap` bytes.
    pub fn append_text(&mut self, text: &[u8], cap: usize) {
        self.size += text.len();
        if self.truncated {
            return;
        }
        let room = cap.saturating_sub(self.bytes.len());
        if text.len() <= room {
            self.bytes.extend_from_slice(text);
        } else {
            let mut cut = room;
            while cut > 0 && (text[cut] & 0xC0) == 0x80 {
                cut -= 1;
            }
            self.bytes.extend_from_slice(&text[..cut]);
            self.truncated = true;
        }
    }

    /// The value as Jupyter sent it (a truncated JSON value comes back as
    /// its cut text, since it no longer parses).
    pub fn to_value(&self) -> Value {
        decode_value(&self.bytes, self.is_json, self.truncated)
    }
}

pub(crate) fn decode_value(bytes: &[u8], is_json: bool, truncated: bool) -> Value {
    if is_json && !truncated {
        if let Ok(v) = serde_json::from_slice(bytes) {
            return v;
        }
    }
    Value::String(String::from_utf8_lossy(bytes).into_owned())
}

/// One output as the notebook shows it.
#[derive(Debug, Clone)]
pub struct OutputRecord {
    pub output_type: OutputType,
    /// Stream name (`stdout`, `stderr`).
    pub name: Option<String>,
    pub display_id: Option<String>,
    pub execution_count: Option<i64>,
    pub metadata: Option<Value>,
    /// MIME bundle; a stream's text is one `text/plain` entry.
    pub data: Vec<MimeData>,
    /// `{ename, evalue, traceback}` for error outputs.
    pub error: Option<Value>,
}

impl OutputRecord {
    /// Text worth indexing for full-text search.
    pub(crate) fn search_text(&self, out: &mut String) {
        for d in &self.data {
            if matches!(d.mime.as_str(), "text/plain" | "text/markdown") && !d.is_json {
                out.push_str(&String::from_utf8_lossy(&d.bytes));
                out.push('\n');
            }
        }
        if let Some(e) = &self.error {
            for key in ["ename", "evalue"] {
                if let Some(s) = e.get(key).and_then(Value::as_str) {
                    out.push_str(s);
                    out.push('\n');
                }
            }
        }
    }
}

/// One resource sample, `t_ms` after the execution started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Sample {
    pub t_ms: i64,
    pub rss: Option<u64>,
    /// CPU time of the tree since the execution started.
    pub cpu_ms: Option<f64>,
    pub gpu_mem: Option<u64>,
    pub gpu_util: Option<f64>,
}

/// Resource use of one execution, from the sampler.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Resources {
    pub cpu_ms: Option<f64>,
    pub rss_start: Option<u64>,
    pub rss_end: Option<u64>,
    pub peak_rss: Option<u64>,
    pub gpu_mem_peak: Option<u64>,
    pub gpu_util_max: Option<f64>,
    pub samples: Vec<Sample>,
}

#[derive(Debug, Clone, Default)]
pub struct SessionRecord {
    pub uuid: String,
    pub kernel_session: Option<String>,
    pub kernelspec: Option<String>,
    pub argv: Vec<String>,
    pub language: Option<String>,
    pub language_info: Option<Value>,
    pub implementation: Option<String>,
    pub implementation_version: Option<String>,
    pub started_ms: i64,
    pub notebook_path: Option<String>,
    pub cwd: Option<String>,
    pub project_root: Option<String>,
    pub user: Option<String>,
    pub host: Option<String>,
    pub pid: Option<u32>,
    pub kernel_pid: Option<u32>,
    pub git_head: Option<String>,
    pub git_dirty: Option<bool>,
}

#[derive(Debug, Clone)]
pub struct SessionEnd {
    pub uuid: String,
    pub ended_ms: i64,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
}

#[derive(Debug, Clone)]
pub struct ExecutionRecord {
    pub session_uuid: String,
    pub msg_id: String,
    pub cell_id: Option<String>,
    pub notebook_path: Option<String>,
    pub execution_count: Option<i64>,
    /// None for skipped cells.
    pub code: Option<String>,
    pub silent: bool,
    pub store_history: bool,
    pub started_ms: i64,
    pub ended_ms: Option<i64>,
    pub status: Status,
    pub error_name: Option<String>,
    pub error_value: Option<String>,
    pub traceback: Option<Value>,
    pub wall_ms: Option<f64>,
    pub resources: Resources,
    pub exit_code: Option<i32>,
    pub exit_signal: Option<i32>,
    pub outputs: Vec<OutputRecord>,
    /// Outputs were dropped beyond the per-execution memory bound (payloads
    /// cut at the per-output cap are flagged on the payload itself).
    pub truncated: bool,
}

impl ExecutionRecord {
    /// Bytes this record holds in memory (for the recorder's queue bound).
    pub fn approx_bytes(&self) -> usize {
        let outputs: usize = self
            .outputs
            .iter()
            .map(|o| 64 + o.data.iter().map(|d| d.bytes.len() + 32).sum::<usize>())
            .sum();
        256 + self.code.as_ref().map_or(0, String::len)
            + outputs
            + self.resources.samples.len() * std::mem::size_of::<Sample>()
    }
}

/// One unit of work for [`Store::write_batch`].
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert the session (or fill in a placeholder row with the same uuid).
    Session(Box<SessionRecord>),
    SessionEnded(SessionEnd),
    /// The installed packages of the session's environment (JSON bytes).
    Packages {
        uuid: String,
        json: Vec<u8>,
    },
    Execution(Box<ExecutionRecord>),
    /// Git state of the project, found after the session started.
    SessionGit {
        uuid: String,
        head: Option<String>,
        dirty: Option<bool>,
    },
    /// `update_display_data` for a display shown by an execution already
    /// stored: replaces the bundle of every stored output of that session
    /// with this display_id, as the notebook does on screen.
    UpdateDisplay {
        session_uuid: String,
        display_id: String,
        data: Vec<MimeData>,
        metadata: Option<Value>,
    },
}

impl WriteOp {
    pub fn approx_bytes(&self) -> usize {
        match self {
            WriteOp::Execution(e) => e.approx_bytes(),
            WriteOp::Packages { json, .. } => json.len() + 64,
            WriteOp::UpdateDisplay { data, .. } => {
                128 + data.iter().map(|d| d.bytes.len()).sum::<usize>()
            }
            _ => 256,
        }
    }
}

/// What a batch wrote, one entry per op.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// An execution was stored as row `id`; `row` is its history row,
    /// built from what was written (what `Store::history` reads back).
    Execution {
        id: i64,
        row: Box<ExecutionSummary>,
    },
    Other,
}

/// The first lines of a cell's code shown in a history row: at most 1000
/// characters and 10 lines.
pub(crate) fn code_preview(code: &str) -> String {
    let head = match code.char_indices().nth(1000) {
        Some((cut, _)) => &code[..cut],
        None => code,
    };
    head.split_inclusive('\n').take(10).collect()
}

/// Cap on the text indexed per execution, so one huge output cannot make
/// the index the bulk of the file.
const FTS_TEXT_CAP: usize = 1 << 20;

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Store {
    /// Writes `ops` in one immediate transaction: all or nothing. On error
    /// (e.g. [`StoreError::is_busy`]) nothing was written and the caller may
    /// retry the same batch.
    pub fn write_batch(&mut self, ops: &[WriteOp]) -> Result<Vec<WriteOutcome>, StoreError> {
        // Hash before taking the write lock, to hold it as briefly as we can.
        let hashes: Vec<Vec<String>> = ops
            .iter()
            .map(|op| match op {
                WriteOp::Execution(e) => e
                    .outputs
                    .iter()
                    .flat_map(|o| o.data.iter().map(|d| sha256_hex(&d.bytes)))
                    .collect(),
                WriteOp::Packages { json, .. } => vec![sha256_hex(json)],
                WriteOp::UpdateDisplay { data, .. } => {
                    data.iter().map(|d| sha256_hex(&d.bytes)).collect()
                }
                _ => Vec::new(),
            })
            .collect();
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let mut outcomes = Vec::with_capacity(ops.len());
        for (op, hashes) in ops.iter().zip(&hashes) {
            let outcome = match op {
                WriteOp::Session(s) => {
                    upsert_session(&tx, s)?;
                    WriteOutcome::Other
                }
                WriteOp::SessionEnded(end) => {
                    let id = session_id(&tx, &end.uuid, end.ended_ms)?;
                    tx.execute(
                        "UPDATE sessions SET ended_ms = ?2, exit_code = ?3, exit_signal = ?4 WHERE id = ?1",
                        params![id, end.ended_ms, end.exit_code, end.exit_signal],
                    )?;
                    WriteOutcome::Other
                }
                WriteOp::Packages { uuid, json } => {
                    put_blob(&tx, &hashes[0], json)?;
                    let id = session_id(&tx, uuid, now_ms())?;
                    tx.execute(
                        "UPDATE sessions SET packages_sha256 = ?2 WHERE id = ?1",
                        params![id, hashes[0]],
                    )?;
                    WriteOutcome::Other
                }
                WriteOp::SessionGit { uuid, head, dirty } => {
                    let id = session_id(&tx, uuid, now_ms())?;
                    tx.execute(
                        "UPDATE sessions SET git_head = ?2, git_dirty = ?3 WHERE id = ?1",
                        params![id, head, dirty],
                    )?;
                    WriteOutcome::Other
                }
                WriteOp::Execution(e) => {
                    let row = insert_execution(&tx, e, hashes)?;
                    WriteOutcome::Execution {
                        id: row.id,
                        row: Box::new(row),
                    }
                }
                WriteOp::UpdateDisplay {
                    session_uuid,
                    display_id,
                    data,
                    metadata,
                } => {
                    update_display(&tx, session_uuid, display_id, data, metadata, hashes)?;
                    WriteOutcome::Other
                }
            };
            outcomes.push(outcome);
        }
        tx.commit()?;
        Ok(outcomes)
    }
}

pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn put_blob(tx: &Transaction, sha: &str, bytes: &[u8]) -> Result<(), StoreError> {
    // Look first: binding a 10 MB payload only to have it ignored costs a copy.
    let exists: bool = tx
        .prepare_cached("SELECT 1 FROM blobs WHERE sha256 = ?1")?
        .exists([sha])?;
    if !exists {
        tx.prepare_cached("INSERT INTO blobs (sha256, size, data) VALUES (?1, ?2, ?3)")?
            .execute(params![sha, bytes.len() as i64, bytes])?;
    }
    Ok(())
}

fn upsert_session(tx: &Transaction, s: &SessionRecord) -> Result<i64, StoreError> {
    let argv = serde_json::to_string(&s.argv)?;
    let language_info = s
        .language_info
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    tx.execute(
        "INSERT INTO sessions (uuid, kernel_session, kernelspec, argv, language, language_info,
             implementation, implementation_version, started_ms, notebook_path, cwd, project_root,
             user, host, pid, kernel_pid, git_head, git_dirty)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)
         ON CONFLICT (uuid) DO UPDATE SET
             kernel_session = excluded.kernel_session, kernelspec = excluded.kernelspec,
             argv = excluded.argv, language = excluded.language,
             language_info = excluded.language_info, implementation = excluded.implementation,
             implementation_version = excluded.implementation_version,
             started_ms = min(started_ms, excluded.started_ms),
             notebook_path = excluded.notebook_path, cwd = excluded.cwd,
             project_root = excluded.project_root, user = excluded.user, host = excluded.host,
             pid = excluded.pid, kernel_pid = excluded.kernel_pid,
             git_head = excluded.git_head, git_dirty = excluded.git_dirty",
        params![
            s.uuid,
            s.kernel_session,
            s.kernelspec,
            argv,
            s.language,
            language_info,
            s.implementation,
            s.implementation_version,
            s.started_ms,
            s.notebook_path,
            s.cwd,
            s.project_root,
            s.user,
            s.host,
            s.pid,
            s.kernel_pid,
            s.git_head,
            s.git_dirty,
        ],
    )?;
    Ok(
        tx.query_row("SELECT id FROM sessions WHERE uuid = ?1", [&s.uuid], |r| {
            r.get(0)
        })?,
    )
}

/// The row id of session `uuid`, creating a placeholder row if the session
/// record never made it (so an execution is never lost for want of it).
fn session_id(tx: &Transaction, uuid: &str, started_ms: i64) -> Result<i64, StoreError> {
    if let Some(id) = tx
        .prepare_cached("SELECT id FROM sessions WHERE uuid = ?1")?
        .query_row([uuid], |r| r.get(0))
        .optional()?
    {
        return Ok(id);
    }
    tx.execute(
        "INSERT INTO sessions (uuid, started_ms) VALUES (?1, ?2)",
        params![uuid, started_ms],
    )?;
    Ok(tx.last_insert_rowid())
}

/// Inserts an execution with its outputs, samples and search text; returns
/// its history row.
fn insert_execution(
    tx: &Transaction,
    e: &ExecutionRecord,
    hashes: &[String],
) -> Result<ExecutionSummary, StoreError> {
    let session = session_id(tx, &e.session_uuid, e.started_ms)?;
    let prev: Option<i64> = tx
        .prepare_cached("SELECT max(id) FROM executions WHERE session_id = ?1")?
        .query_row([session], |r| r.get(0))?;
    let traceback = e
        .traceback
        .as_ref()
        .map(serde_json::to_string)
        .transpose()?;
    let r = &e.resources;
    let rss_delta = match (r.rss_start, r.rss_end) {
        (Some(a), Some(b)) => Some(b as i64 - a as i64),
        _ => None,
    };
    let truncated = e.truncated || e.outputs.iter().any(|o| o.data.iter().any(|d| d.truncated));
    tx.prepare_cached(
        "INSERT INTO executions (session_id, msg_id, cell_id, notebook_path, execution_count,
             code, silent, store_history, started_ms, ended_ms, status, error_name, error_value,
             traceback, wall_ms, cpu_ms, rss_start, rss_end, peak_rss, rss_delta, gpu_mem_peak,
             gpu_util_max, exit_code, exit_signal, prev_execution_id, output_count, truncated)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
             ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27)",
    )?
    .execute(params![
        session,
        e.msg_id,
        e.cell_id,
        e.notebook_path,
        e.execution_count,
        e.code,
        e.silent,
        e.store_history,
        e.started_ms,
        e.ended_ms,
        e.status.as_str(),
        e.error_name,
        e.error_value,
        traceback,
        e.wall_ms,
        r.cpu_ms,
        r.rss_start.map(|v| v as i64),
        r.rss_end.map(|v| v as i64),
        r.peak_rss.map(|v| v as i64),
        rss_delta,
        r.gpu_mem_peak.map(|v| v as i64),
        r.gpu_util_max,
        e.exit_code,
        e.exit_signal,
        prev,
        e.outputs.len() as i64,
        truncated,
    ])?;
    let id = tx.last_insert_rowid();

    let mut hashes = hashes.iter();
    let mut text = String::new();
    for (pos, o) in e.outputs.iter().enumerate() {
        let output_id = insert_output(tx, id, pos as i64, o)?;
        for d in &o.data {
            let sha = hashes.next().expect("one hash per MIME value");
            insert_data(tx, output_id, d, sha)?;
        }
        if text.len() < FTS_TEXT_CAP {
            o.search_text(&mut text);
        }
    }
    if text.len() > FTS_TEXT_CAP {
        let mut cut = FTS_TEXT_CAP;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }

    let mut stmt = tx.prepare_cached(
        "INSERT INTO samples (execution_id, seq, t_ms, rss, cpu_ms, gpu_mem, gpu_util)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?;
    for (seq, s) in r.samples.iter().enumerate() {
        stmt.execute(params![
            id,
            seq as i64,
            s.t_ms,
            s.rss.map(|v| v as i64),
            s.cpu_ms,
            s.gpu_mem.map(|v| v as i64),
            s.gpu_util
        ])?;
    }

    if e.code.is_some() || !text.is_empty() {
        tx.prepare_cached("INSERT INTO executions_fts (rowid, code, text) VALUES (?1, ?2, ?3)")?
            .execute(params![id, e.code.as_deref().unwrap_or(""), text])?;
    }
    Ok(ExecutionSummary {
        id,
        session_id: session,
        msg_id: e.msg_id.clone(),
        cell_id: e.cell_id.clone(),
        notebook_path: e.notebook_path.clone(),
        execution_count: e.execution_count,
        code_preview: e.code.as_deref().map(code_preview),
        status: e.status.as_str().to_string(),
        started_ms: e.started_ms,
        ended_ms: e.ended_ms,
        wall_ms: e.wall_ms,
        cpu_ms: r.cpu_ms,
        rss_start: r.rss_start.map(|v| v as i64),
        peak_rss: r.peak_rss.map(|v| v as i64),
        rss_delta,
        gpu_mem_peak: r.gpu_mem_peak.map(|v| v as i64),
        gpu_util_max: r.gpu_util_max,
        error_name: e.error_name.clone(),
        error_value: e.error_value.clone(),
        output_count: e.outputs.len() as i64,
        truncated,
        silent: e.silent,
        prev_execution_id: prev,
    })
}

fn insert_output(
    tx: &Transaction,
    execution_id: i64,
    position: i64,
    o: &OutputRecord,
) -> Result<i64, StoreError> {
    let metadata = o.metadata.as_ref().map(serde_json::to_string).transpose()?;
    let error = o.error.as_ref().map(serde_json::to_string).transpose()?;
    tx.prepare_cached(
        "INSERT INTO outputs (execution_id, position, output_type, name, display_id,
             execution_count, metadata, error)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        execution_id,
        position,
        o.output_type.as_str(),
        o.name,
        o.display_id,
        o.execution_count,
        metadata,
        error
    ])?;
    Ok(tx.last_insert_rowid())
}

fn insert_data(
    tx: &Transaction,
    output_id: i64,
    d: &MimeData,
    sha: &str,
) -> Result<(), StoreError> {
    put_blob(tx, sha, &d.bytes)?;
    tx.prepare_cached(
        "INSERT OR REPLACE INTO output_data (output_id, mime, sha256, size, truncated, is_json)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![
        output_id,
        d.mime,
        sha,
        d.size as i64,
        d.truncated,
        d.is_json
    ])?;
    Ok(())
}

fn update_display(
    tx: &Transaction,
    session_uuid: &str,
    display_id: &str,
    data: &[MimeData],
    metadata: &Option<Value>,
    hashes: &[String],
) -> Result<(), StoreError> {
    let ids: Vec<i64> = tx
        .prepare_cached(
            "SELECT o.id FROM outputs o
               JOIN executions e ON e.id = o.execution_id
               JOIN sessions s ON s.id = e.session_id
              WHERE o.display_id = ?1 AND s.uuid = ?2",
        )?
        .query_map(params![display_id, session_uuid], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let metadata = metadata.as_ref().map(serde_json::to_string).transpose()?;
    for output_id in ids {
        tx.execute("DELETE FROM output_data WHERE output_id = ?1", [output_id])?;
        tx.execute(
            "UPDATE outputs SET metadata = ?2 WHERE id = ?1",
            params![output_id, metadata],
        )?;
        for (d, sha) in data.iter().zip(hashes) {
            insert_data(tx, output_id, d, sha)?;
        }
    }
    Ok(())
}
