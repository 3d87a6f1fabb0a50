//! The `jupyter.lineage` comm, answered by the proxy itself.
//!
//! Clients (the JupyterLab panel, scripts) open a comm with this target on
//! the kernel connection they already have; the proxy claims it and never
//! forwards it, so the real kernel does not know it exists. The protocol is
//! documented in `docs/protocol.md`. Queries run on a blocking thread against
//! the project's database; replies go out on iopub wrapped in busy/idle with
//! the request as parent (JupyterLab's comm futures resolve on that idle).

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{broadcast, mpsc};

use crate::recorder::Health;
use crate::store::{ExecutionSummary, HistoryFilter, Store, StoreError};
use crate::wire::{contains, OwnMessage};

pub const TARGET: &str = "jupyter.lineage";
pub const PROTOCOL_VERSION: u32 = 1;

/// Replies larger than this go out in parts.
const PART_BYTES: usize = 256 * 1024;
/// jupyter_server drops iopub traffic above 1 MB/s averaged over 3 s
/// (`iopub_data_rate_limit`, `rate_limit_window`): stay well under it.
const BYTES_PER_SECOND: usize = 700 * 1024;
/// What may go out at once before pacing starts.
const BURST_BYTES: usize = 1024 * 1024;

/// A claimed request: the four signed frames of a verified client message.
struct Request {
    header: Value,
    content: Value,
}

/// What the service knows of its kernel.
pub struct ServiceContext {
    pub db_path: PathBuf,
    pub notebook_path: Option<String>,
    pub health: Option<Arc<Health>>,
    /// Messages the relay refused (bad signature or framing).
    pub refused: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// A read-only connection and the (dev, inode) of the file it opened.
type OpenReader = (Store, Option<(u64, u64)>);

pub struct Service {
    context: ServiceContext,
    comm_ids: Mutex<HashSet<String>>,
    tx: mpsc::UnboundedSender<Request>,
    rx: Mutex<Option<mpsc::UnboundedReceiver<Request>>>,
    recorded: Mutex<Option<broadcast::Receiver<ExecutionSummary>>>,
    /// The read-only connection, with the (dev, inode) of the file it opened.
    store: Arc<Mutex<Option<OpenReader>>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no execution with id {0}")]
    NotFound(i64),
    #[error(transparent)]
    Json(#[from] serde_json::Error),
    #[error("protocol_version {0} is not supported (this kernel speaks {PROTOCOL_VERSION})")]
    UnsupportedVersion(u64),
    #[error("the lineage database is not available: {0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

impl ServiceError {
    fn code(&self) -> &'static str {
        match self {
            ServiceError::BadRequest(_) => "bad_request",
            ServiceError::NotFound(_) => "not_found",
            ServiceError::UnsupportedVersion(_) => "unsupported_version",
            ServiceError::Unavailable(_) => "unavailable",
            ServiceError::Internal(_) | ServiceError::Json(_) => "internal",
        }
    }
}

impl From<StoreError> for ServiceError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Missing { .. } => ServiceError::Unavailable(e.to_string()),
            StoreError::NoSuchExecution(id) => ServiceError::NotFound(id),
            StoreError::Json(e) => ServiceError::Internal(e.to_string()),
            other => ServiceError::Internal(other.to_string()),
        }
    }
}

fn bad(why: impl Into<String>) -> ServiceError {
    ServiceError::BadRequest(why.into())
}

#[derive(Deserialize)]
struct CommContent<'a> {
    #[serde(borrow, default)]
    comm_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow, default)]
    target_name: Option<std::borrow::Cow<'a, str>>,
}

impl Service {
    pub fn new(
        context: ServiceContext,
        recorded: Option<broadcast::Receiver<ExecutionSummary>>,
    ) -> Service {
        let (tx, rx) = mpsc::unbounded_channel();
        Service {
            context,
            comm_ids: Mutex::new(HashSet::new()),
            tx,
            rx: Mutex::new(Some(rx)),
            recorded: Mutex::new(recorded),
            store: Arc::new(Mutex::new(None)),
        }
    }

    /// Whether a verified shell message is for the service: a `comm_open`
    /// for our target, or a `comm_msg`/`comm_close` on one of our comms.
    pub fn claims(&self, msg_type: &str, content: &[u8]) -> bool {
        match msg_type {
            "comm_open" => {
                contains(content, TARGET.as_bytes())
                    && serde_json::from_slice::<CommContent>(content)
                        .is_ok_and(|c| c.target_name.as_deref() == Some(TARGET))
            }
            "comm_msg" | "comm_close" => {
                let ids = self.comm_ids.lock().expect("comm ids lock");
                if ids.is_empty() || !ids.iter().any(|id| contains(content, id.as_bytes())) {
                    return false;
                }
                serde_json::from_slice::<CommContent>(content)
                    .ok()
                    .and_then(|c| c.comm_id)
                    .is_some_and(|id| ids.contains(id.as_ref()))
            }
            _ => false,
        }
    }

    /// Queues a claimed request (its four signed frames).
    pub fn submit(&self, signed: &[Bytes]) {
        let (Ok(header), Ok(content)) = (
            serde_json::from_slice::<Value>(&signed[0]),
            serde_json::from_slice::<Value>(&signed[3]),
        ) else {
            tracing::warn!("lineage comm: unparsable request dropped");
            return;
        };
        // Register the comm at once, so its next message is claimed even if
        // it arrives before the service task has run.
        if header["msg_type"] == "comm_open" {
            if let Some(id) = content["comm_id"].as_str() {
                self.comm_ids
                    .lock()
                    .expect("comm ids lock")
                    .insert(id.to_string());
            }
        }
        let _ = self.tx.send(Request { header, content });
    }

    /// Starts answering, publishing on iopub through `iopub` in the real
    /// kernel's `session` (JupyterLab resets its kernel session whenever
    /// `header.session` changes).
    pub fn start(self: &Arc<Self>, iopub: mpsc::UnboundedSender<OwnMessage>, session: String) {
        let Some(mut requests) = self.rx.lock().expect("service lock").take() else {
            return;
        };
        let recorded = self.recorded.lock().expect("service lock").take();
        let service = self.clone();
        let publisher = CommPublisher {
            iopub: iopub.clone(),
            session: session.clone(),
        };
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                service.handle(&publisher, request).await;
            }
        });
        if let Some(mut recorded) = recorded {
            let service = self.clone();
            let publisher = CommPublisher { iopub, session };
            tokio::spawn(async move {
                loop {
                    match recorded.recv().await {
                        Ok(event) => service.push_recorded(&publisher, event).await,
                        Err(broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!("lineage comm: {n} recorded events skipped");
                        }
                        Err(broadcast::error::RecvError::Closed) => return,
                    }
                }
            });
        }
    }

    async fn handle(&self, publisher: &CommPublisher, request: Request) {
        let parent = request.header.clone();
        let msg_type = request.header["msg_type"].as_str().unwrap_or_default();
        let Some(comm_id) = request.content["comm_id"].as_str().map(str::to_string) else {
            tracing::warn!("lineage comm: {msg_type} without comm_id dropped");
            return;
        };
        publisher.status(&parent, "busy");
        match msg_type {
            "comm_open" => {
                let hello = self.hello();
                publisher.comm_msg(&parent, &comm_id, hello).await;
            }
            "comm_close" => {
                self.comm_ids
                    .lock()
                    .expect("comm ids lock")
                    .remove(&comm_id);
            }
            _ => {
                let data = &request.content["data"];
                let reply = self.answer(data).await;
                publisher.comm_msg(&parent, &comm_id, reply).await;
            }
        }
        publisher.status(&parent, "idle");
    }

    fn hello(&self) -> Value {
        json!({
            "event": "hello",
            "protocol_version": PROTOCOL_VERSION,
            "lineage_version": env!("CARGO_PKG_VERSION"),
            "notebook_path": self.context.notebook_path,
            "recording": self.context.health.as_ref().is_some_and(|h| h.snapshot().recording),
        })
    }

    /// Answers one request; errors become error replies.
    async fn answer(&self, data: &Value) -> Value {
        let id = data.get("id").cloned().unwrap_or(Value::Null);
        let name = data["request"].as_str().unwrap_or_default().to_string();
        let result = self.dispatch(data).await;
        match result {
            Ok(result) => json!({
                "reply": name,
                "id": id,
                "protocol_version": PROTOCOL_VERSION,
                "ok": true,
                "result": result,
            }),
            Err(e) => {
                tracing::debug!("lineage comm: {name}: {e}");
                json!({
                    "reply": name,
                    "id": id,
                    "protocol_version": PROTOCOL_VERSION,
                    "ok": false,
                    "error": {"code": e.code(), "message": e.to_string()},
                })
            }
        }
    }

    async fn dispatch(&self, data: &Value) -> Result<Value, ServiceError> {
        let notebook = self.context.notebook_path.clone();
        match ServiceRequest::parse(data, notebook.as_deref())? {
            ServiceRequest::Hello => Ok(self.hello()),
            ServiceRequest::Health => Ok(self.health()),
            ServiceRequest::History(filter) => {
                self.query(move |s| Ok(serde_json::to_value(s.history(&filter)?)?))
                    .await
            }
            ServiceRequest::Execution(id) => {
                self.query(move |s| Ok(serde_json::to_value(s.get_execution(id)?)?))
                    .await
            }
            ServiceRequest::Diff(a, b) => {
                self.query(move |s| Ok(serde_json::to_value(s.diff(a, b)?)?))
                    .await
            }
            ServiceRequest::Cells(notebook) => {
                self.query(move |s| {
                    Ok(serde_json::to_value(
                        s.cell_summaries(notebook.as_deref())?,
                    )?)
                })
                .await
            }
            ServiceRequest::Sessions(limit) => {
                self.query(move |s| Ok(serde_json::to_value(s.sessions(limit)?)?))
                    .await
            }
        }
    }

    fn health(&self) -> Value {
        let refused = self
            .context
            .refused
            .as_ref()
            .map(|r| r.load(std::sync::atomic::Ordering::Relaxed))
            .unwrap_or(0);
        match &self.context.health {
            Some(h) => {
                let mut v = serde_json::to_value(h.snapshot()).unwrap_or_default();
                v["refused_messages"] = json!(refused);
                v
            }
            None => json!({
                "recording": false,
                "db_path": self.context.db_path,
                "last_error": "recording is off (JUPYTER_LINEAGE=off)",
                "refused_messages": refused,
            }),
        }
    }

    /// Runs a store query on a blocking thread, opening the database
    /// read-only on first use (and again after a failure).
    async fn query<F>(&self, f: F) -> Result<Value, ServiceError>
    where
        F: FnOnce(&Store) -> Result<Value, ServiceError> + Send + 'static,
    {
        let store = self.store.clone();
        let path = self.context.db_path.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = store.lock().expect("store lock");
            // A database deleted and recreated under us: reading the old
            // file beside the new one's WAL would return garbage, so reopen.
            let identity = file_identity(&path);
            if guard
                .as_ref()
                .is_some_and(|(_, opened)| *opened != identity)
            {
                *guard = None;
            }
            if guard.is_none() {
                *guard = Some((Store::open_readonly(&path)?, identity));
            }
            let result = f(&guard.as_ref().expect("opened above").0);
            if matches!(result, Err(ServiceError::Internal(_))) {
                // Reopen next time: the file may have been replaced.
                *guard = None;
            }
            result
        })
        .await
        .map_err(|e| ServiceError::Internal(e.to_string()))?
    }

    /// Pushes a `recorded` event to every open comm: the history row the
    /// store built as it wrote the execution, the same shape as the items
    /// of a `history` reply.
    async fn push_recorded(&self, publisher: &CommPublisher, row: ExecutionSummary) {
        let ids: Vec<String> = self
            .comm_ids
            .lock()
            .expect("comm ids lock")
            .iter()
            .cloned()
            .collect();
        if ids.is_empty() {
            return;
        }
        let data = json!({
            "event": "recorded",
            "protocol_version": PROTOCOL_VERSION,
            "execution": row,
        });
        for comm_id in ids {
            publisher
                .comm_msg(&Value::Object(Default::default()), &comm_id, data.clone())
                .await;
        }
    }
}

fn file_identity(path: &std::path::Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| (m.dev(), m.ino()))
}

/// A request of the comm protocol, checked and typed. Parsing is pure (no
/// I/O, no store), so it can be fuzzed; nothing in a request names a file.
#[derive(Debug, Clone)]
pub enum ServiceRequest {
    Hello,
    Health,
    History(HistoryFilter),
    Execution(i64),
    Diff(i64, i64),
    /// Cell summaries of one notebook, or of the project (None).
    Cells(Option<String>),
    Sessions(usize),
}

impl ServiceRequest {
    /// Parses the `data` of a comm message. `notebook` is this kernel's
    /// notebook, what `"scope": "notebook"` (the default) means.
    pub fn parse(data: &Value, notebook: Option<&str>) -> Result<ServiceRequest, ServiceError> {
        if !data.is_object() {
            return Err(bad("a request is a JSON object"));
        }
        match data.get("protocol_version").map(|v| v.as_u64()) {
            None => {}
            Some(Some(v)) if v == u64::from(PROTOCOL_VERSION) => {}
            Some(Some(v)) => return Err(ServiceError::UnsupportedVersion(v)),
            Some(None) => return Err(bad("protocol_version must be an integer")),
        }
        let request = data["request"]
            .as_str()
            .ok_or_else(|| bad("\"request\" must name a request"))?;
        Ok(match request {
            "hello" => ServiceRequest::Hello,
            "health" => ServiceRequest::Health,
            "history" => ServiceRequest::History(history_filter(data, notebook)?),
            "execution" => ServiceRequest::Execution(int_field(data, "execution_id")?),
            "diff" => ServiceRequest::Diff(int_field(data, "a")?, int_field(data, "b")?),
            "cells" => ServiceRequest::Cells(notebook_scope(data, notebook)?),
            "sessions" => ServiceRequest::Sessions(
                opt_int(data, "limit")?.unwrap_or(20).clamp(1, 1000) as usize,
            ),
            other => return Err(bad(format!("unknown request {other:?}"))),
        })
    }
}

/// The notebook a request is about: this kernel's notebook unless the
/// request asks for the whole project (`"scope": "project"`). Never a path
/// to open: the service reads only this project's database.
fn notebook_scope(data: &Value, notebook: Option<&str>) -> Result<Option<String>, ServiceError> {
    match data
        .get("scope")
        .and_then(Value::as_str)
        .unwrap_or("notebook")
    {
        "notebook" => Ok(notebook.map(str::to_string)),
        "project" => Ok(None),
        other => Err(bad(format!(
            "scope must be \"notebook\" or \"project\", not {other:?}"
        ))),
    }
}

fn history_filter(data: &Value, notebook: Option<&str>) -> Result<HistoryFilter, ServiceError> {
    let text = |key: &str| -> Result<Option<String>, ServiceError> {
        match data.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(bad(format!("{key} must be a string"))),
        }
    };
    let limit = opt_int(data, "limit")?;
    if limit.is_some_and(|l| !(1..=1000).contains(&l)) {
        return Err(bad("limit must be between 1 and 1000"));
    }
    Ok(HistoryFilter {
        notebook: notebook_scope(data, notebook)?,
        cell_id: text("cell_id")?,
        status: text("status")?,
        since_ms: opt_int(data, "since_ms")?,
        until_ms: opt_int(data, "until_ms")?,
        text: text("search")?,
        limit: limit.map(|l| l as usize),
        before: opt_int(data, "before")?,
        include_silent: data["include_silent"].as_bool().unwrap_or(false),
        ..Default::default()
    })
}

fn int_field(data: &Value, key: &str) -> Result<i64, ServiceError> {
    opt_int(data, key)?.ok_or_else(|| bad(format!("{key} is required")))
}

fn opt_int(data: &Value, key: &str) -> Result<Option<i64>, ServiceError> {
    match data.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_i64()
            .map(Some)
            .ok_or_else(|| bad(format!("{key} must be an integer"))),
    }
}

/// Puts the service's messages on iopub, paced under jupyter_server's rate
/// limit.
struct CommPublisher {
    iopub: mpsc::UnboundedSender<OwnMessage>,
    session: String,
}

impl CommPublisher {
    fn status(&self, parent: &Value, state: &str) {
        let msg = OwnMessage::new("status", &self.session, parent.clone())
            .with_content(json!({ "execution_state": state }));
        let _ = self.iopub.send(msg);
    }

    /// Sends `data` on comm `comm_id`; a large reply goes out in parts of
    /// its JSON text (`{"part": k, "parts": n, "id", "reply", "text"}`).
    async fn comm_msg(&self, parent: &Value, comm_id: &str, data: Value) {
        let text = data.to_string();
        if text.len() <= PART_BYTES {
            self.send(parent, comm_id, data);
            return;
        }
        let parts = split_utf8(&text, PART_BYTES);
        let n = parts.len();
        let mut sent = 0usize;
        let start = tokio::time::Instant::now();
        for (k, part) in parts.into_iter().enumerate() {
            // Token bucket: BURST_BYTES at once, then BYTES_PER_SECOND.
            let allowed =
                BURST_BYTES + (start.elapsed().as_secs_f64() * BYTES_PER_SECOND as f64) as usize;
            if sent + part.len() > allowed {
                let wait = (sent + part.len() - allowed) as f64 / BYTES_PER_SECOND as f64;
                tokio::time::sleep(Duration::from_secs_f64(wait)).await;
            }
            sent += part.len();
            self.send(
                parent,
                comm_id,
                json!({
                    "reply": data.get("reply"),
                    "event": data.get("event"),
                    "id": data.get("id"),
                    "protocol_version": PROTOCOL_VERSION,
                    "part": k,
                    "parts": n,
                    "text": part,
                }),
            );
        }
    }

    fn send(&self, parent: &Value, comm_id: &str, data: Value) {
        let msg = OwnMessage::new("comm_msg", &self.session, parent.clone())
            .with_content(json!({ "comm_id": comm_id, "data": data }));
        let _ = self.iopub.send(msg);
    }
}

/// Splits `text` into pieces of at most `max` bytes on char boundaries.
fn split_utf8(text: &str, max: usize) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        parts.push(head);
        rest = tail;
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service() -> Service {
        Service::new(
            ServiceContext {
                db_path: PathBuf::from("/nonexistent/lineage.sqlite"),
                notebook_path: Some("/p/nb.ipynb".into()),
                health: None,
                refused: None,
            },
            None,
        )
    }

    #[test]
    fn claims_only_its_own_target_and_comms() {
        let s = service();
        assert!(s.claims(
            "comm_open",
            br#"{"comm_id": "c1", "target_name": "jupyter.lineage", "data": {}}"#
        ));
        assert!(!s.claims(
            "comm_open",
            br#"{"comm_id": "c2", "target_name": "jupyter.widget", "data": {"x": "jupyter.lineage"}}"#
        ));
        assert!(!s.claims("comm_msg", br#"{"comm_id": "c1", "data": {}}"#));
        let header =
            Bytes::from_static(br#"{"msg_id": "m", "msg_type": "comm_open", "session": "s"}"#);
        let content = Bytes::from_static(
            br#"{"comm_id": "c1", "target_name": "jupyter.lineage", "data": {}}"#,
        );
        s.submit(&[
            header,
            Bytes::from_static(b"{}"),
            Bytes::from_static(b"{}"),
            content,
        ]);
        assert!(s.claims("comm_msg", br#"{"comm_id": "c1", "data": {}}"#));
        assert!(!s.claims("comm_msg", br#"{"comm_id": "c11", "data": {"c1": 1}}"#));
        assert!(!s.claims("execute_request", br#"{"code": "c1"}"#));
    }

    #[tokio::test]
    async fn malformed_requests_get_clear_errors() {
        let s = service();
        for (data, code) in [
            (json!("history"), "bad_request"),
            (json!({}), "bad_request"),
            (json!({"request": "nope"}), "bad_request"),
            (
                json!({"request": "history", "protocol_version": 99}),
                "unsupported_version",
            ),
            (json!({"request": "execution"}), "bad_request"),
            (
                json!({"request": "execution", "execution_id": "x"}),
                "bad_request",
            ),
            (json!({"request": "history", "limit": 0}), "bad_request"),
            (
                json!({"request": "history", "scope": "/etc"}),
                "bad_request",
            ),
            (json!({"request": "history"}), "unavailable"),
        ] {
            let reply = s.answer(&data).await;
            assert_eq!(reply["ok"], false, "{data}");
            assert_eq!(reply["error"]["code"], code, "{data}: {reply}");
        }
        let reply = s.answer(&json!({"request": "hello", "id": 7})).await;
        assert_eq!(reply["ok"], true);
        assert_eq!(reply["id"], 7);
        assert_eq!(reply["result"]["protocol_version"], PROTOCOL_VERSION);
    }

    #[test]
    fn splits_on_char_boundaries() {
        let text = "aé".repeat(1000);
        let parts = split_utf8(&text, 7);
        assert!(parts.iter().all(|p| p.len() <= 7));
        assert_eq!(parts.concat(), text);
    }
}
