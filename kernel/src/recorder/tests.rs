//! The recorder fed with the frames the relay taps. The messages are built
//! here because these tests check assembly rules (coalescing, clear_output,
//! update_display_data, statuses); the end-to-end tests drive a real kernel.

use super::environment::{host_name, user_name};
use super::*;
use crate::store::HistoryFilter;
use crate::store::Store;
use crate::tap::Tap;
use crate::tap::{Channel, KernelEvent, TapEvent};
use bytes::Bytes;
use serde_json::json;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

struct Harness {
    _dir: tempfile::TempDir,
    tap: Tap,
    handle: Option<RecorderHandle>,
    db: PathBuf,
    session: String,
}

fn location(dir: &Path) -> ProjectLocation {
    ProjectLocation {
        notebook_path: Some(dir.join("nb.ipynb")),
        root: dir.to_path_buf(),
        db_path: dir.join(".jupyter-lineage/lineage.sqlite"),
    }
}

impl Harness {
    fn new(max_output: usize) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let loc = location(dir.path());
        Harness::with_location(dir, loc, max_output)
    }

    fn with_location(dir: tempfile::TempDir, loc: ProjectLocation, max_output: usize) -> Harness {
        let db = loc.db_path.clone();
        let mut cfg = RecorderConfig::new(loc, vec!["/bin/true".into()], std::process::id());
        cfg.max_output_bytes = max_output;
        cfg.kernelspec = Some("python3".into());
        let (tap, rx, dropped) = Tap::bounded(10_000);
        let handle = spawn(cfg, rx, dropped);
        Harness {
            _dir: dir,
            tap,
            handle: Some(handle),
            db,
            session: "kernel-session".into(),
        }
    }

    fn ready(&self) {
        self.tap.send(TapEvent::Kernel(KernelEvent::Ready {
            session: self.session.clone(),
            kernel_info: json!({
                "implementation": "ipython",
                "language_info": {"name": "no-such-language", "version": "3.11"},
            }),
        }));
    }

    fn msg(
        &self,
        channel: Channel,
        msg_type: &str,
        id: &str,
        parent: &str,
        metadata: Value,
        content: Value,
    ) {
        let header = json!({"msg_id": id, "msg_type": msg_type, "session": self.session});
        let parent = if parent.is_empty() {
            json!({})
        } else {
            json!({"msg_id": parent, "msg_type": "execute_request"})
        };
        let b = |v: &Value| Bytes::from(serde_json::to_vec(v).unwrap());
        self.tap.message(
            channel,
            &[b(&header), b(&parent), b(&metadata), b(&content)],
        );
    }

    fn request(&self, id: &str, code: &str, cell: &str) {
        self.msg(
            Channel::ShellRequest,
            "execute_request",
            id,
            "",
            json!({"cellId": cell, "deletedCells": [], "recordTiming": false}),
            json!({"code": code, "silent": false, "store_history": true}),
        );
    }

    fn iopub(&self, id: &str, msg_type: &str, content: Value) {
        self.msg(
            Channel::Iopub,
            msg_type,
            &format!("{id}-{msg_type}"),
            id,
            json!({}),
            content,
        );
    }

    fn busy(&self, id: &str, count: i64) {
        self.iopub(id, "status", json!({"execution_state": "busy"}));
        self.iopub(
            id,
            "execute_input",
            json!({"code": "", "execution_count": count}),
        );
    }

    fn reply(&self, id: &str, content: Value) {
        self.msg(
            Channel::ShellReply,
            "execute_reply",
            &format!("{id}-r"),
            id,
            json!({}),
            content,
        );
        self.iopub(id, "status", json!({"execution_state": "idle"}));
    }

    fn ok(&self, id: &str, count: i64) {
        self.reply(id, json!({"status": "ok", "execution_count": count}));
    }

    fn finish(&mut self) -> Store {
        self.handle.take().unwrap().shutdown();
        Store::open(&self.db).unwrap()
    }
}

fn all(store: &Store) -> Vec<crate::store::ExecutionDetail> {
    let page = store
        .history(&HistoryFilter {
            limit: Some(1000),
            include_silent: true,
            ..Default::default()
        })
        .unwrap();
    page.items
        .iter()
        .rev()
        .map(|e| store.get_execution(e.id).unwrap())
        .collect()
}

fn outputs(e: &crate::store::ExecutionDetail) -> Vec<Value> {
    e.outputs.iter().map(|o| o.output.clone()).collect()
}

fn stream(name: &str, text: &str) -> Value {
    json!({"name": name, "text": text})
}

fn display(text: &str, display_id: Option<&str>) -> Value {
    let mut v = json!({"data": {"text/plain": text}, "metadata": {}});
    if let Some(d) = display_id {
        v["transient"] = json!({"display_id": d});
    }
    v
}

#[test]
fn env_switch() {
    assert!(enabled_value(None));
    assert!(enabled_value(Some("on")));
    assert!(!enabled_value(Some("off")));
    assert!(!enabled_value(Some(" OFF ")));
    assert!(!enabled_value(Some("0")));
    assert!(is_skipped("# lineage: skip\nsecret = 1"));
    assert!(is_skipped("  # lineage: skip  "));
    assert!(!is_skipped("x = 1\n# lineage: skip"));
}

#[test]
fn assembles_outputs_like_the_notebook() {
    let mut h = Harness::new(1 << 20);
    let mut events = h.handle.as_ref().unwrap().recorded.subscribe();
    h.ready();

    // Streams: consecutive same-name streams coalesce.
    h.request("a", "print('a'); print('b')", "cell-a");
    h.busy("a", 1);
    h.iopub("a", "stream", stream("stdout", "a\n"));
    h.iopub("a", "stream", stream("stdout", "b\n"));
    h.iopub("a", "stream", stream("stderr", "warn\n"));
    h.iopub("a", "stream", stream("stdout", "c\n"));
    h.ok("a", 1);

    // clear_output(wait=True) clears on the next output only; wait=False at once.
    h.request("b", "progress()", "cell-b");
    h.busy("b", 2);
    h.iopub("b", "display_data", display("10%", None));
    h.iopub("b", "clear_output", json!({"wait": true}));
    h.iopub("b", "display_data", display("50%", None));
    h.iopub("b", "clear_output", json!({"wait": true}));
    h.iopub("b", "stream", stream("stdout", "done\n"));
    h.iopub(
        "b",
        "execute_result",
        json!({"data": {"text/plain": "42"}, "metadata": {}, "execution_count": 2}),
    );
    h.ok("b", 2);

    h.request("c", "x", "cell-c");
    h.busy("c", 3);
    h.iopub("c", "stream", stream("stdout", "gone"));
    h.iopub("c", "clear_output", json!({"wait": false}));
    h.ok("c", 3);

    // update_display_data: earlier (stored) executions and the current one.
    h.request("d", "h = display('v1', display_id=True)", "cell-d");
    h.busy("d", 4);
    h.iopub("d", "display_data", display("v1", Some("disp")));
    h.ok("d", 4);
    h.request("e", "h.update('v2')", "cell-e");
    h.busy("e", 5);
    h.iopub("e", "display_data", display("own", Some("disp")));
    h.iopub("e", "update_display_data", display("v2", Some("disp")));
    h.ok("e", 5);

    // Error and interrupt.
    h.request("f", "1/0", "cell-f");
    h.busy("f", 6);
    h.iopub(
        "f",
        "error",
        json!({"ename": "ZeroDivisionError", "evalue": "division by zero", "traceback": ["tb"]}),
    );
    h.reply(
        "f",
        json!({"status": "error", "execution_count": 6, "ename": "ZeroDivisionError",
               "evalue": "division by zero", "traceback": ["tb"]}),
    );
    h.request("g", "while True: pass", "cell-g");
    h.busy("g", 7);
    h.msg(
        Channel::ControlRequest,
        "interrupt_request",
        "int",
        "",
        json!({}),
        json!({}),
    );
    h.reply(
        "g",
        json!({"status": "error", "execution_count": 7, "ename": "KeyboardInterrupt",
               "evalue": "", "traceback": []}),
    );
    // Queued behind the interrupt: aborted.
    h.request("h", "y = 2", "cell-h");
    h.reply("h", json!({"status": "aborted"}));

    // Skipped cell: neither code nor outputs.
    h.request(
        "i",
        "# lineage: skip\npassword = 'hunter2'\nprint(password)",
        "cell-i",
    );
    h.busy("i", 8);
    h.iopub("i", "stream", stream("stdout", "hunter2\n"));
    h.ok("i", 8);

    let store = h.finish();
    let ex = all(&store);
    let by_cell = |c: &str| {
        ex.iter()
            .find(|e| e.summary.cell_id.as_deref() == Some(c))
            .unwrap()
    };
    assert_eq!(ex.len(), 9);

    let a = by_cell("cell-a");
    assert_eq!(a.summary.status, "ok");
    assert_eq!(a.summary.execution_count, Some(1));
    assert_eq!(
        a.summary
            .notebook_path
            .as_deref()
            .map(|p| p.ends_with("nb.ipynb")),
        Some(true)
    );
    assert_eq!(
        outputs(a),
        vec![
            json!({"output_type": "stream", "name": "stdout", "text": "a\nb\n"}),
            json!({"output_type": "stream", "name": "stderr", "text": "warn\n"}),
            json!({"output_type": "stream", "name": "stdout", "text": "c\n"}),
        ]
    );
    assert!(a.summary.wall_ms.is_some());
    assert!(a.summary.rss_start.is_some());

    let b = by_cell("cell-b");
    assert_eq!(
        outputs(b),
        vec![
            json!({"output_type": "stream", "name": "stdout", "text": "done\n"}),
            json!({"output_type": "execute_result", "execution_count": 2,
                   "data": {"text/plain": "42"}, "metadata": {}}),
        ]
    );
    assert!(outputs(by_cell("cell-c")).is_empty());

    let d = by_cell("cell-d");
    assert_eq!(outputs(d)[0]["data"], json!({"text/plain": "v2"}));
    let e = by_cell("cell-e");
    assert_eq!(outputs(e)[0]["data"], json!({"text/plain": "v2"}));

    let f = by_cell("cell-f");
    assert_eq!(f.summary.status, "error");
    assert_eq!(f.summary.error_name.as_deref(), Some("ZeroDivisionError"));
    assert_eq!(f.traceback, Some(json!(["tb"])));
    assert_eq!(outputs(f)[0]["ename"], json!("ZeroDivisionError"));
    assert_eq!(by_cell("cell-g").summary.status, "interrupted");
    assert_eq!(by_cell("cell-h").summary.status, "aborted");

    let i = by_cell("cell-i");
    assert_eq!(i.summary.status, "skipped");
    assert_eq!(i.code, None);
    assert!(i.outputs.is_empty());
    let hits = store
        .history(&HistoryFilter {
            text: Some("hunter2".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(hits.items.is_empty());

    // One session, with what Ready said; previous-execution chain.
    let sessions = store.sessions(10).unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(
        sessions[0].kernel_session.as_deref(),
        Some("kernel-session")
    );
    assert_eq!(sessions[0].implementation.as_deref(), Some("ipython"));
    assert_eq!(sessions[0].kernelspec.as_deref(), Some("python3"));
    assert!(sessions[0].ended_ms.is_some());
    assert_eq!(ex[1].summary.prev_execution_id, Some(ex[0].summary.id));

    // One `recorded` event per execution, carrying exactly the row that
    // `history` reads back for it.
    let rows = store
        .history(&HistoryFilter {
            include_silent: true,
            ..Default::default()
        })
        .unwrap()
        .items;
    let mut got = 0;
    while let Ok(r) = events.try_recv() {
        let read_back = rows.iter().find(|e| e.id == r.id).expect("a stored row");
        assert_eq!(&r, read_back);
        got += 1;
    }
    assert_eq!(got, 9);
}

#[test]
fn truncates_big_outputs() {
    let mut h = Harness::new(100);
    h.ready();
    h.request("a", "print('x' * 500)", "c");
    h.busy("a", 1);
    h.iopub("a", "stream", stream("stdout", &"x".repeat(60)));
    h.iopub("a", "stream", stream("stdout", &"y".repeat(60)));
    h.iopub(
        "a",
        "display_data",
        json!({"data": {"image/png": "A".repeat(500)}, "metadata": {}}),
    );
    h.ok("a", 1);
    let store = h.finish();
    let e = &all(&store)[0];
    assert!(e.summary.truncated);
    assert_eq!(e.outputs[0].output["text"].as_str().unwrap().len(), 100);
    assert_eq!(e.outputs[0].truncated, vec!["text/plain".to_string()]);
    assert_eq!(e.outputs[1].truncated, vec!["image/png".to_string()]);
}

#[test]
fn kernel_death_mid_cell_is_died_and_restart_is_a_new_session() {
    let mut h = Harness::new(1 << 20);
    h.ready();
    h.request("a", "import os; os._exit(3)", "c1");
    h.busy("a", 1);
    h.request("b", "queued", "c2");
    std::thread::sleep(Duration::from_millis(250)); // a sample or two
    h.tap.send(TapEvent::Kernel(KernelEvent::Exited {
        code: Some(3),
        signal: None,
    }));
    h.session = "second".into();
    h.ready();
    h.request("c", "1", "c3");
    h.busy("c", 1);
    h.ok("c", 1);
    let store = h.finish();
    let ex = all(&store);
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].summary.status, "died");
    assert_eq!(ex[0].exit_code, Some(3));
    assert!(ex[0].summary.peak_rss.is_some());
    assert!(!ex[0].samples.is_empty());
    assert_eq!(ex[1].summary.status, "aborted");
    assert_eq!(ex[2].summary.status, "ok");
    let sessions = store.sessions(10).unwrap();
    assert_eq!(sessions.len(), 2);
    let first = sessions
        .iter()
        .find(|s| s.kernel_session.as_deref() == Some("kernel-session"))
        .unwrap();
    assert_eq!(first.exit_code, Some(3));
    assert_ne!(ex[0].session_uuid, ex[2].session_uuid);
    assert_eq!(ex[2].summary.prev_execution_id, None);
}

#[test]
fn locked_database_delays_but_loses_nothing() {
    let mut h = Harness::new(1 << 20);
    h.ready();
    h.request("warm", "0", "c");
    h.busy("warm", 0);
    h.ok("warm", 0);
    let health = h.handle.as_ref().unwrap().health.clone();
    let t0 = Instant::now();
    while health.written.load(Ordering::Relaxed) < 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(health.written.load(Ordering::Relaxed), 1);

    // Another process-like connection holds an exclusive lock.
    let locker = rusqlite::Connection::open(&h.db).unwrap();
    locker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    for n in 1..=50 {
        let id = format!("m{n}");
        h.request(&id, &format!("x = {n}"), "c");
        h.busy(&id, n);
        h.ok(&id, n);
    }
    std::thread::sleep(Duration::from_millis(2500));
    let snap = health.snapshot();
    assert!(!snap.recording, "{snap:?}");
    assert_eq!(snap.written, 1);
    // 50 executions (plus the session's git facts, when they arrive).
    assert!((50..=51).contains(&snap.pending), "{snap:?}");
    assert!(
        snap.last_error.as_deref().unwrap_or("").contains("locked"),
        "{snap:?}"
    );
    locker.execute_batch("ROLLBACK").unwrap();
    drop(locker);
    let t0 = Instant::now();
    while health.written.load(Ordering::Relaxed) < 51 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap = health.snapshot();
    assert_eq!(snap.written, 51, "{snap:?}");
    assert!(snap.recording);
    assert_eq!(snap.pending, 0);
    assert_eq!(snap.dropped_records + snap.tap_dropped, 0);
    let store = h.finish();
    assert_eq!(store.stats().unwrap().executions, 51);
}

#[test]
fn unusable_location_turns_recording_off_but_keeps_draining() {
    let dir = tempfile::tempdir().unwrap();
    // A file where the database folder should be: no one (not even root)
    // can create the database under it.
    std::fs::write(dir.path().join("blocker"), b"").unwrap();
    let mut loc = location(dir.path());
    loc.db_path = dir.path().join("blocker/.jupyter-lineage/lineage.sqlite");
    let mut h = Harness::with_location(dir, loc, 1 << 20);
    h.ready();
    for n in 0..3000 {
        let id = format!("m{n}");
        h.request(&id, "x", "c");
        h.busy(&id, n);
        h.ok(&id, n);
        // ~10k cells/s: far faster than a kernel runs cells, slow enough
        // for an unoptimised test build to keep up.
        if n % 10 == 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let health = h.handle.as_ref().unwrap().health.clone();
    let t0 = Instant::now();
    while health.pending.load(Ordering::Relaxed) < 3000 && t0.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let snap = health.snapshot();
    assert!(!snap.recording);
    assert!(snap.last_error.is_some(), "{snap:?}");
    assert_eq!(
        snap.tap_dropped, 0,
        "the recorder must keep draining the tap"
    );
    // 3000 executions plus the session row (and its git facts).
    assert!(snap.pending >= 3001, "{snap:?}");
    let start = Instant::now();
    h.handle.take().unwrap().shutdown();
    assert!(start.elapsed() < Duration::from_secs(5));
    let snap = health.snapshot();
    assert!(snap.dropped_records >= 3001, "{snap:?}");
    assert_eq!(snap.pending, 0, "{snap:?}");
}

#[test]
fn deleted_database_is_recreated() {
    let mut h = Harness::new(1 << 20);
    h.ready();
    h.request("a", "1", "c");
    h.busy("a", 1);
    h.ok("a", 1);
    let health = h.handle.as_ref().unwrap().health.clone();
    let t0 = Instant::now();
    while health.written.load(Ordering::Relaxed) < 1 && t0.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let dir = h.db.parent().unwrap().to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    h.request("b", "2", "c");
    h.busy("b", 2);
    h.ok("b", 2);
    let store = h.finish();
    let ex = all(&store);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].summary.msg_id, "b");
    assert!(dir.join(".gitignore").exists());
}

#[test]
fn environment_facts() {
    if let Some(json) = python_packages(Path::new("python3")) {
        let v: Value = serde_json::from_slice(&json).unwrap();
        assert!(v.as_array().unwrap().iter().all(|p| p["name"].is_string()));
    }
    assert_eq!(python_packages(Path::new("/no/such/python")), None);
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(git_state(dir.path()), (None, None));
    let git = |args: &[&str]| {
        Command::new("git")
            .arg("-C")
            .arg(dir.path())
            .args(args)
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if git(&["init", "-q"]) {
        std::fs::write(dir.path().join("f"), "1").unwrap();
        git(&["add", "f"]);
        git(&[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qm",
            "x",
        ]);
        let (head, dirty) = git_state(dir.path());
        assert_eq!(head.map(|h| h.len()), Some(40));
        assert_eq!(dirty, Some(false));
        std::fs::write(dir.path().join("f"), "2").unwrap();
        assert_eq!(git_state(dir.path()).1, Some(true));
    }
    assert!(user_name().is_some());
    assert!(host_name().is_some());
}
