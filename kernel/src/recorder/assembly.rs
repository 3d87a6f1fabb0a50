//! Assembly: the executions in flight, built from the messages the relay
//! tapped, as the notebook shows them.
//!
//! Pure bookkeeping: no threads, no SQLite, no clock of its own (callers
//! pass the instant for the grace period) and no /proc (resource readings
//! come through a [`Meter`]). The recorder thread feeds it; its unit tests
//! feed it built messages.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::Value;

use crate::sampler::{Monitor, RunId};
use crate::store::{ExecutionRecord, MimeData, OutputRecord, OutputType, Resources, Status};
use crate::tap::{Channel, TappedMessage};

/// Bytes of outputs one in-flight execution may hold; later outputs are
/// dropped and the execution flagged truncated.
const MAX_EXECUTION_BYTES: usize = 256 << 20;
/// How long after the first of execute_reply / idle we wait for the other
/// (they travel on different channels and can be tapped in either order).
pub(super) const COMPLETION_GRACE: Duration = Duration::from_millis(1000);
/// First line marking a cell as not to be recorded.
const SKIP_MARKER: &str = "# lineage: skip";

/// How an execution's resource use is measured: a reading when it starts,
/// another when it ends. The sampler's [`Monitor`] in the kernel; a counter
/// in tests.
pub(crate) trait Meter {
    fn begin(&mut self) -> RunId;
    fn end(&mut self, run: RunId) -> Resources;
}

impl Meter for Monitor {
    fn begin(&mut self) -> RunId {
        Monitor::begin(self)
    }

    fn end(&mut self, run: RunId) -> Resources {
        Monitor::end(self, run)
    }
}

/// How the kernel process ended: exit code, signal.
pub(crate) type Exit = (Option<i32>, Option<i32>);

pub(super) fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

pub(super) fn parse(bytes: &[u8]) -> Value {
    serde_json::from_slice(bytes).unwrap_or(Value::Null)
}

pub(super) fn str_of(v: &Value, key: &str) -> Option<String> {
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
pub(crate) struct Exec {
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
    resources: Option<Resources>,
    execution_count: Option<i64>,
    outputs: Vec<OutputRecord>,
    bytes: usize,
    clear_pending: bool,
    dropped_outputs: bool,
    status: Option<Status>,
    error: Option<(Option<String>, Option<String>, Option<Value>)>,
    /// The exit of the kernel, for an execution it died in.
    exit: Option<Exit>,
    interrupt_requested: bool,
    reply_seen: bool,
    idle_seen: bool,
    /// When the first of reply / idle arrived (monotonic, for the grace period).
    completing_since: Option<Instant>,
}

impl Exec {
    fn new(msg_id: String, content: &Value, metadata: &Value, at: SystemTime) -> Exec {
        let code = str_of(content, "code").unwrap_or_default();
        Exec {
            msg_id,
            // JupyterLab sends `cellId`; accept `cell_id` from other clients.
            cell_id: str_of(metadata, "cellId").or_else(|| str_of(metadata, "cell_id")),
            skipped: is_skipped(&code),
            code,
            silent: content
                .get("silent")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            store_history: content
                .get("store_history")
                .and_then(Value::as_bool)
                .unwrap_or(true),
            requested_at: at,
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
            exit: None,
            interrupt_requested: false,
            reply_seen: false,
            idle_seen: false,
            completing_since: None,
        }
    }

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

    fn reply(&mut self, content: &Value, at: SystemTime) {
        self.reply_seen = true;
        self.ended_at = Some(at);
        self.completing_since.get_or_insert_with(Instant::now);
        if let Some(n) = content.get("execution_count").and_then(Value::as_i64) {
            self.execution_count = Some(n);
        }
        let ename = str_of(content, "ename");
        self.status = Some(match content.get("status").and_then(Value::as_str) {
            Some("ok") => Status::Ok,
            Some("aborted") => Status::Aborted,
            Some("error") => {
                if ename.as_deref() == Some("KeyboardInterrupt") || self.interrupt_requested {
                    Status::Interrupted
                } else {
                    Status::Error
                }
            }
            _ => Status::Error,
        });
        if content.get("status").and_then(Value::as_str) == Some("error") {
            self.error = Some((
                ename,
                str_of(content, "evalue"),
                content.get("traceback").cloned(),
            ));
        }
    }

    /// Display ids this execution shows (for updates after it is stored).
    pub(super) fn display_ids(&self) -> impl Iterator<Item = &str> {
        let shown = (!self.skipped).then_some(&self.outputs);
        shown
            .into_iter()
            .flatten()
            .filter_map(|o| o.display_id.as_deref())
    }

    /// The record to store, in session `session_uuid`.
    pub(super) fn into_record(
        self,
        session_uuid: String,
        notebook_path: Option<String>,
    ) -> ExecutionRecord {
        let e = self;
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
        let (exit_code, exit_signal) = match (status, e.exit) {
            (Status::Died, Some((c, s))) => (c, s),
            _ => (None, None),
        };
        let skipped = e.skipped;
        ExecutionRecord {
            session_uuid,
            msg_id: e.msg_id,
            cell_id: e.cell_id,
            notebook_path,
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
        }
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

/// An `update_display_data`: every output showing `display_id` changes,
/// including those of executions already stored.
#[derive(Debug)]
pub(super) struct DisplayUpdate {
    pub display_id: String,
    pub data: Vec<MimeData>,
    pub metadata: Option<Value>,
}

/// What one message meant to the caller.
#[derive(Debug)]
pub(super) enum Fed {
    Nothing,
    /// An execute_request opened an execution.
    Request,
    Display(DisplayUpdate),
}

/// The executions in flight, in request order.
#[derive(Debug)]
pub(crate) struct Assembly {
    execs: HashMap<String, Exec>,
    /// Request order, for "the running one" and for finishing in order.
    order: Vec<String>,
    /// Per-output payload cap, bytes.
    max_output_bytes: usize,
}

impl Assembly {
    pub(crate) fn new(max_output_bytes: usize) -> Assembly {
        Assembly {
            execs: HashMap::new(),
            order: Vec::new(),
            max_output_bytes,
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.execs.is_empty()
    }

    /// Whether some execution has its reply or its idle but not both yet.
    pub(crate) fn completing(&self) -> bool {
        self.execs
            .values()
            .any(|e| e.completing_since.is_some() && !(e.reply_seen && e.idle_seen))
    }

    /// Feeds one tapped message.
    pub(super) fn message(&mut self, m: &TappedMessage, meter: &mut impl Meter) -> Fed {
        let header = parse(&m.header);
        let Some(msg_type) = header.get("msg_type").and_then(Value::as_str) else {
            return Fed::Nothing;
        };
        match m.channel {
            Channel::ShellRequest if msg_type == "execute_request" => {
                let Some(msg_id) = str_of(&header, "msg_id") else {
                    return Fed::Nothing;
                };
                let exec = Exec::new(
                    msg_id.clone(),
                    &parse(&m.content),
                    &parse(&m.metadata),
                    m.at,
                );
                if self.execs.insert(msg_id.clone(), exec).is_none() {
                    self.order.push(msg_id);
                }
                Fed::Request
            }
            Channel::ControlRequest if msg_type == "interrupt_request" => {
                // Marks the cell running now (started, not finished).
                let running = self
                    .order
                    .iter()
                    .filter_map(|id| self.execs.get(id))
                    .find(|e| e.started_at.is_some() && e.status.is_none())
                    .map(|e| e.msg_id.clone());
                if let Some(e) = running.and_then(|id| self.execs.get_mut(&id)) {
                    e.interrupt_requested = true;
                }
                Fed::Nothing
            }
            Channel::ShellReply if msg_type == "execute_reply" => {
                let parent = parse(&m.parent_header);
                if let Some(id) = str_of(&parent, "msg_id") {
                    if self.execs.contains_key(&id) {
                        self.start(&id, m.at, meter);
                        self.stop_run(&id, meter);
                        if let Some(e) = self.execs.get_mut(&id) {
                            e.reply(&parse(&m.content), m.at);
                        }
                    }
                }
                Fed::Nothing
            }
            Channel::Iopub => self.iopub(msg_type, m, meter),
            _ => Fed::Nothing,
        }
    }

    /// The execution started: the opening reading, unless already taken.
    fn start(&mut self, msg_id: &str, at: SystemTime, meter: &mut impl Meter) {
        let Some(e) = self.execs.get_mut(msg_id) else {
            return;
        };
        if e.started_at.is_none() {
            e.started_at = Some(at);
            e.run = Some(meter.begin());
        }
    }

    /// Ends resource measurement (at reply or idle, whichever comes first).
    fn stop_run(&mut self, msg_id: &str, meter: &mut impl Meter) {
        if let Some(e) = self.execs.get_mut(msg_id) {
            if let Some(run) = e.run.take() {
                e.resources = Some(meter.end(run));
            }
        }
    }

    fn iopub(&mut self, msg_type: &str, m: &TappedMessage, meter: &mut impl Meter) -> Fed {
        let parent = parse(&m.parent_header);
        let parent_id = str_of(&parent, "msg_id").unwrap_or_default();
        let known = self.execs.contains_key(&parent_id);
        if !known && msg_type != "update_display_data" {
            return Fed::Nothing;
        }
        let cap = self.max_output_bytes;
        match msg_type {
            "status" => {
                let content = parse(&m.content);
                match content.get("execution_state").and_then(Value::as_str) {
                    Some("busy") => self.start(&parent_id, m.at, meter),
                    Some("idle") => {
                        self.stop_run(&parent_id, meter);
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
                self.start(&parent_id, m.at, meter);
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
                    self.start(&parent_id, m.at, meter);
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
                    return Fed::Nothing;
                };
                let data = mime_bundle(&content, cap);
                let metadata = nonempty_metadata(&content);
                // Like the notebook: every output showing this display_id
                // changes, whichever execution made it.
                for e in self.execs.values_mut() {
                    e.update_display(display_id, &data, &metadata);
                }
                return Fed::Display(DisplayUpdate {
                    display_id: display_id.to_string(),
                    data,
                    metadata,
                });
            }
            _ => {}
        }
        Fed::Nothing
    }

    /// Takes the executions whose reply and idle both arrived (or one of
    /// them and the grace period passed before `now`), in request order;
    /// with `force`, every one.
    pub(super) fn take_completed(
        &mut self,
        now: Instant,
        force: bool,
        meter: &mut impl Meter,
    ) -> Vec<Exec> {
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
        let mut out = Vec::with_capacity(done.len());
        for id in done {
            if let Some(mut e) = self.execs.remove(&id) {
                if let Some(run) = e.run.take() {
                    e.resources = Some(meter.end(run));
                }
                out.push(e);
            }
        }
        let execs = &self.execs;
        self.order.retain(|id| execs.contains_key(id));
        out
    }

    /// Takes every execution still open: started ones as `died` (with the
    /// kernel's `exit`) or as they stand at shutdown; never-started ones as
    /// `aborted`. When the kernel died (`exit` given), the first request
    /// still open is the one it was running, even if it died before its
    /// `busy` left the socket (`os._exit` or a segfault in the first
    /// statement): `died` too. Ones already complete keep their real status.
    pub(super) fn take_all(&mut self, exit: Option<Exit>, meter: &mut impl Meter) -> Vec<Exec> {
        let mut out = Vec::with_capacity(self.order.len());
        let mut running_found = false;
        for id in std::mem::take(&mut self.order) {
            let Some(mut e) = self.execs.remove(&id) else {
                continue;
            };
            if let Some(run) = e.run.take() {
                e.resources = Some(meter.end(run));
            }
            if e.status.is_none() {
                let running = exit.is_some() && !running_found;
                running_found = true;
                e.status = Some(if e.started_at.is_none() && !running {
                    Status::Aborted
                } else {
                    Status::Died
                });
                e.ended_at.get_or_insert_with(SystemTime::now);
            }
            e.exit = exit;
            out.push(e);
        }
        self.execs.clear();
        out
    }
}

#[cfg(test)]
mod tests {
    //! Assembly alone: built messages in, records out; no threads, no
    //! database, and a meter that counts instead of reading /proc.
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    /// Numbers runs and reports how many readings each took.
    #[derive(Default)]
    struct CountingMeter {
        begun: u64,
        ended: Vec<u64>,
    }

    impl Meter for CountingMeter {
        fn begin(&mut self) -> RunId {
            self.begun += 1;
            RunId(self.begun)
        }

        fn end(&mut self, run: RunId) -> Resources {
            self.ended.push(run.0);
            Resources {
                cpu_ms: Some(run.0 as f64),
                ..Default::default()
            }
        }
    }

    fn msg(
        channel: Channel,
        msg_type: &str,
        id: &str,
        parent: &str,
        content: Value,
    ) -> TappedMessage {
        let b = |v: Value| Bytes::from(serde_json::to_vec(&v).unwrap());
        TappedMessage {
            channel,
            at: SystemTime::now(),
            header: b(json!({"msg_id": id, "msg_type": msg_type})),
            parent_header: b(json!({"msg_id": parent})),
            metadata: b(json!({"cellId": format!("cell-{parent}")})),
            content: b(content),
        }
    }

    fn request(a: &mut Assembly, m: &mut CountingMeter, id: &str, code: &str) {
        let fed = a.message(
            &msg(
                Channel::ShellRequest,
                "execute_request",
                id,
                "",
                json!({"code": code}),
            ),
            m,
        );
        assert!(matches!(fed, Fed::Request));
    }

    fn iopub(
        a: &mut Assembly,
        m: &mut CountingMeter,
        parent: &str,
        msg_type: &str,
        content: Value,
    ) {
        a.message(&msg(Channel::Iopub, msg_type, "x", parent, content), m);
    }

    fn reply(a: &mut Assembly, m: &mut CountingMeter, parent: &str, content: Value) {
        a.message(
            &msg(Channel::ShellReply, "execute_reply", "r", parent, content),
            m,
        );
    }

    fn run_ok(a: &mut Assembly, m: &mut CountingMeter, id: &str, n: i64, out: &str) {
        iopub(a, m, id, "status", json!({"execution_state": "busy"}));
        iopub(a, m, id, "execute_input", json!({"execution_count": n}));
        iopub(a, m, id, "stream", json!({"name": "stdout", "text": out}));
        reply(a, m, id, json!({"status": "ok", "execution_count": n}));
        iopub(a, m, id, "status", json!({"execution_state": "idle"}));
    }

    #[test]
    fn a_complete_execution_becomes_one_record_with_its_outputs_and_reading() {
        let (mut a, mut m) = (Assembly::new(1 << 20), CountingMeter::default());
        request(&mut a, &mut m, "a", "print(1); print(2)");
        run_ok(&mut a, &mut m, "a", 1, "1\n");
        iopub(
            &mut a,
            &mut m,
            "a",
            "stream",
            json!({"name": "stdout", "text": "late\n"}),
        );
        let done = a.take_completed(Instant::now(), false, &mut m);
        assert_eq!(done.len(), 1);
        assert!(a.is_empty());
        let r = done
            .into_iter()
            .next()
            .unwrap()
            .into_record("s".into(), None);
        assert_eq!(r.status, Status::Ok);
        assert_eq!(r.execution_count, Some(1));
        assert_eq!(r.cell_id.as_deref(), Some("cell-"));
        // Consecutive prints of one stream are one output, as in the notebook.
        assert_eq!(r.outputs.len(), 1);
        assert_eq!(r.outputs[0].data[0].bytes, b"1\nlate\n");
        assert_eq!((m.begun, m.ended.len()), (1, 1));
        assert_eq!(r.resources.cpu_ms, Some(1.0));
    }

    #[test]
    fn waits_for_both_reply_and_idle_then_for_the_grace_period() {
        let (mut a, mut m) = (Assembly::new(1 << 20), CountingMeter::default());
        request(&mut a, &mut m, "a", "1");
        iopub(
            &mut a,
            &mut m,
            "a",
            "status",
            json!({"execution_state": "busy"}),
        );
        iopub(
            &mut a,
            &mut m,
            "a",
            "status",
            json!({"execution_state": "idle"}),
        );
        assert!(a.take_completed(Instant::now(), false, &mut m).is_empty());
        let later = Instant::now() + COMPLETION_GRACE;
        assert_eq!(a.take_completed(later, false, &mut m).len(), 1);
    }

    #[test]
    fn kernel_exit_stores_the_running_one_as_died_and_the_queued_as_aborted() {
        let (mut a, mut m) = (Assembly::new(1 << 20), CountingMeter::default());
        request(&mut a, &mut m, "a", "import time; time.sleep(10)");
        request(&mut a, &mut m, "b", "2");
        iopub(
            &mut a,
            &mut m,
            "a",
            "status",
            json!({"execution_state": "busy"}),
        );
        let out: Vec<_> = a
            .take_all(Some((None, Some(9))), &mut m)
            .into_iter()
            .map(|e| e.into_record("s".into(), None))
            .collect();
        assert_eq!(out[0].status, Status::Died);
        assert_eq!((out[0].exit_code, out[0].exit_signal), (None, Some(9)));
        assert_eq!(out[1].status, Status::Aborted);
        assert_eq!(out[1].exit_signal, None);
    }

    #[test]
    fn a_kernel_dead_before_its_busy_left_still_died_in_the_first_request() {
        let (mut a, mut m) = (Assembly::new(1 << 20), CountingMeter::default());
        request(&mut a, &mut m, "a", "import os; os._exit(3)");
        request(&mut a, &mut m, "b", "2");
        let out: Vec<_> = a
            .take_all(Some((Some(3), None)), &mut m)
            .into_iter()
            .map(|e| e.into_record("s".into(), None))
            .collect();
        assert_eq!(out[0].status, Status::Died);
        assert_eq!((out[0].exit_code, out[0].exit_signal), (Some(3), None));
        assert_eq!(out[1].status, Status::Aborted);
        // Stopping the proxy is no death: nothing started, nothing died.
        request(&mut a, &mut m, "c", "3");
        let out = a.take_all(None, &mut m);
        assert_eq!(out[0].status, Some(Status::Aborted));
    }

    #[test]
    fn update_display_reaches_open_executions_and_is_handed_on() {
        let (mut a, mut m) = (Assembly::new(1 << 20), CountingMeter::default());
        request(&mut a, &mut m, "a", "h = display('x', display_id=True)");
        iopub(
            &mut a,
            &mut m,
            "a",
            "display_data",
            json!({"data": {"text/plain": "'x'"}, "transient": {"display_id": "d1"}}),
        );
        let fed = a.message(
            &msg(
                Channel::Iopub,
                "update_display_data",
                "u",
                "other",
                json!({"data": {"text/plain": "'y'"}, "transient": {"display_id": "d1"}}),
            ),
            &mut m,
        );
        let Fed::Display(update) = fed else {
            panic!("an update to hand on: {fed:?}")
        };
        assert_eq!(update.display_id, "d1");
        reply(&mut a, &mut m, "a", json!({"status": "ok"}));
        iopub(
            &mut a,
            &mut m,
            "a",
            "status",
            json!({"execution_state": "idle"}),
        );
        let e = a.take_completed(Instant::now(), false, &mut m).remove(0);
        assert_eq!(e.display_ids().collect::<Vec<_>>(), ["d1"]);
        let r = e.into_record("s".into(), None);
        assert_eq!(r.outputs[0].data[0].bytes, b"'y'");
    }
}
