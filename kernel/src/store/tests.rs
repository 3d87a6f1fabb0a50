use super::*;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

pub(crate) fn temp_store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("lineage.sqlite")).unwrap();
    (dir, store)
}

fn session(uuid: &str) -> WriteOp {
    WriteOp::Session(Box::new(SessionRecord {
        uuid: uuid.into(),
        kernel_session: Some("ks".into()),
        language: Some("python".into()),
        started_ms: 1_000,
        ..Default::default()
    }))
}

fn exec(uuid: &str, n: i64, code: &str, outputs: Vec<OutputRecord>) -> WriteOp {
    WriteOp::Execution(Box::new(ExecutionRecord {
        session_uuid: uuid.into(),
        msg_id: format!("m{n}"),
        cell_id: Some(format!("c{}", n % 3)),
        notebook_path: Some("/p/nb.ipynb".into()),
        execution_count: Some(n),
        code: Some(code.into()),
        silent: false,
        store_history: true,
        started_ms: 10_000 + n * 1000,
        ended_ms: Some(10_500 + n * 1000),
        status: Status::Ok,
        error_name: None,
        error_value: None,
        traceback: None,
        wall_ms: Some(500.0 + n as f64),
        resources: Resources {
            cpu_ms: Some(100.0),
            rss_start: Some(1000),
            rss_end: Some(1500 + n as u64),
            peak_rss: Some(2000),
            samples: vec![
                Sample {
                    t_ms: 0,
                    rss: Some(1000),
                    cpu_ms: Some(0.0),
                    ..Default::default()
                },
                Sample {
                    t_ms: 100,
                    rss: Some(2000),
                    cpu_ms: Some(100.0),
                    ..Default::default()
                },
            ],
            ..Default::default()
        },
        exit_code: None,
        exit_signal: None,
        outputs,
        truncated: false,
    }))
}

fn stream(name: &str, text: &str) -> OutputRecord {
    OutputRecord {
        output_type: OutputType::Stream,
        name: Some(name.into()),
        display_id: None,
        execution_count: None,
        metadata: None,
        data: vec![MimeData::from_text(
            "text/plain",
            text.as_bytes().to_vec(),
            false,
            1 << 20,
        )],
        error: None,
    }
}

fn display(bundle: serde_json::Value, display_id: Option<&str>) -> OutputRecord {
    OutputRecord {
        output_type: OutputType::DisplayData,
        name: None,
        display_id: display_id.map(str::to_string),
        execution_count: None,
        metadata: Some(json!({"image/png": {"width": 10}})),
        data: bundle
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| MimeData::from_value(k, v, 1 << 24))
            .collect(),
        error: None,
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn migrates_an_empty_file_and_is_private() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lineage.sqlite");
    // An empty file (as `touch` leaves it) with a loose mode.
    std::fs::write(&path, b"").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut store = Store::open(&path).unwrap();
    assert_eq!(store.user_version().unwrap(), SCHEMA_VERSION);
    assert_eq!(store.journal_mode().unwrap(), "wal");
    assert_eq!(store.fs_kind(), FsKind::Local);
    store.write_batch(&[session("s")]).unwrap();
    store.fix_permissions();
    assert_eq!(mode(&path), 0o600);
    let wal = dir.path().join("lineage.sqlite-wal");
    assert!(wal.exists());
    assert_eq!(mode(&wal), 0o600);
    drop(store);
    // Reopening is a no-op migration.
    let store = Store::open(&path).unwrap();
    assert_eq!(store.sessions(10).unwrap().len(), 1);
    // A newer schema is refused, not clobbered.
    store
        .conn()
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    drop(store);
    assert!(matches!(Store::open(&path), Err(StoreError::TooNew { .. })));
    assert!(matches!(
        Store::open_readonly(&dir.path().join("nope.sqlite")),
        Err(StoreError::Missing { .. })
    ));
}

#[test]
fn outputs_round_trip_exactly() {
    let (_d, mut store) = temp_store();
    let png = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";
    let bundle = json!({
        "text/plain": "<Figure>",
        "image/png": png,
        "application/json": {"a": [1, 2, {"b": null}], "c": "d"},
        "application/vnd.custom+json": [1, "x"],
    });
    let error = OutputRecord {
        output_type: OutputType::Error,
        name: None,
        display_id: None,
        execution_count: None,
        metadata: None,
        data: vec![],
        error: Some(json!({"ename": "ValueError", "evalue": "bad", "traceback": ["l1", "l2"]})),
    };
    let mut result = display(json!({"text/plain": "42"}), None);
    result.output_type = OutputType::ExecuteResult;
    result.execution_count = Some(1);
    result.metadata = None;
    let out = store
        .write_batch(&[
            session("s"),
            exec(
                "s",
                1,
                "print('hi')",
                vec![
                    stream("stdout", "héllo\n"),
                    display(bundle.clone(), Some("d1")),
                    result,
                    error,
                ],
            ),
        ])
        .unwrap();
    let WriteOutcome::Execution { id, .. } = out[1] else {
        panic!()
    };
    let e = store.get_execution(id).unwrap();
    assert_eq!(e.code.as_deref(), Some("print('hi')"));
    assert_eq!(e.samples.len(), 2);
    assert_eq!(e.summary.rss_delta, Some(501));
    let outs: Vec<_> = e.outputs.iter().map(|o| o.output.clone()).collect();
    assert_eq!(
        outs[0],
        json!({"output_type": "stream", "name": "stdout", "text": "héllo\n"})
    );
    assert_eq!(outs[1]["data"], bundle);
    assert_eq!(outs[1]["metadata"], json!({"image/png": {"width": 10}}));
    assert_eq!(e.outputs[1].display_id.as_deref(), Some("d1"));
    assert_eq!(
        outs[2],
        json!({"output_type": "execute_result", "execution_count": 1,
               "data": {"text/plain": "42"}, "metadata": {}})
    );
    assert_eq!(
        outs[3],
        json!({"output_type": "error", "ename": "ValueError", "evalue": "bad",
               "traceback": ["l1", "l2"]})
    );
}

#[test]
fn truncation_is_flagged() {
    let (_d, mut store) = temp_store();
    let big = "é".repeat(1000); // 2000 bytes
    let d = MimeData::from_value("text/plain", &json!(big), 1001);
    assert!(d.truncated);
    assert_eq!(d.size, 2000);
    assert_eq!(d.bytes.len(), 1000); // stepped back to a char boundary
    let mut o = stream("stdout", "");
    o.data = vec![d];
    let out = store
        .write_batch(&[session("s"), exec("s", 1, "x", vec![o])])
        .unwrap();
    let WriteOutcome::Execution { id, .. } = out[1] else {
        panic!()
    };
    let e = store.get_execution(id).unwrap();
    assert!(e.summary.truncated);
    assert_eq!(e.outputs[0].truncated, vec!["text/plain".to_string()]);
    assert_eq!(e.outputs[0].output["text"].as_str().unwrap().len(), 1000);
}

#[test]
fn identical_payloads_are_stored_once() {
    let (d, mut store) = temp_store();
    // 1 MB of incompressible-looking base64, as a PNG would be.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let png: String = (0..(1 << 20))
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            alphabet[(x % 64) as usize] as char
        })
        .collect();
    store
        .write_batch(&[
            session("s"),
            exec(
                "s",
                0,
                "plot()",
                vec![display(json!({"image/png": png}), None)],
            ),
        ])
        .unwrap();
    // After a TRUNCATE checkpoint everything is in the main file.
    let size = |_: &Store| {
        std::fs::metadata(d.path().join("lineage.sqlite"))
            .unwrap()
            .len()
    };
    store
        .conn()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let before = size(&store);
    for n in 1..=100 {
        store
            .write_batch(&[exec(
                "s",
                n,
                "plot()",
                vec![display(json!({"image/png": png}), None)],
            )])
            .unwrap();
    }
    store
        .conn()
        .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let after = size(&store);
    let stats = store.stats().unwrap();
    assert_eq!(stats.blobs, 1);
    assert_eq!(stats.executions, 101);
    assert!(
        after - before < 1 << 20,
        "grew {} bytes for 100 re-runs",
        after - before
    );
}

#[test]
fn two_connections_write_concurrently() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lineage.sqlite");
    let threads: Vec<_> = (0..2)
        .map(|t| {
            let path = path.clone();
            std::thread::spawn(move || {
                let mut store = Store::open(&path).unwrap();
                let uuid = format!("s{t}");
                store.write_batch(&[session(&uuid)]).unwrap();
                let mut n = 0;
                while n < 300 {
                    let batch: Vec<WriteOp> = (n..n + 1 + n % 7)
                        .map(|i| exec(&uuid, i, &format!("x = {i}"), vec![stream("stdout", "y")]))
                        .collect();
                    n += batch.len() as i64;
                    store.write_batch(&batch).unwrap();
                }
                n
            })
        })
        .collect();
    let total: i64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let store = Store::open(&path).unwrap();
    let stats = store.stats().unwrap();
    assert_eq!(stats.executions, total);
    assert_eq!(stats.sessions, 2);
    // prev_execution_id chains stay within a session.
    let broken: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM executions e JOIN executions p ON p.id = e.prev_execution_id
              WHERE p.session_id != e.session_id",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(broken, 0);
}

#[test]
fn history_pages_filters_and_searches() {
    let (_d, mut store) = temp_store();
    let mut ops = vec![session("s")];
    for n in 0..25 {
        let code = if n == 7 {
            "import pandas as pd\ndf = pd.read_csv('sales.csv')".to_string()
        } else {
            format!("x = {n}")
        };
        let out = if n == 12 {
            vec![stream("stdout", "the quick brown fox\n")]
        } else {
            vec![]
        };
        ops.push(exec("s", n, &code, out));
    }
    store.write_batch(&ops).unwrap();

    let mut f = HistoryFilter {
        limit: Some(10),
        ..Default::default()
    };
    let mut seen = Vec::new();
    loop {
        let page = store.history(&f).unwrap();
        seen.extend(page.items.iter().map(|e| e.execution_count.unwrap()));
        match page.next_cursor {
            Some(c) => f.before = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, (0..25).rev().collect::<Vec<_>>());

    let by_cell = store
        .history(&HistoryFilter {
            cell_id: Some("c1".into()),
            ..Default::default()
        })
        .unwrap();
    assert!(by_cell
        .items
        .iter()
        .all(|e| e.cell_id.as_deref() == Some("c1")));
    assert_eq!(by_cell.items.len(), 8);

    let search = |q: &str| -> Vec<i64> {
        store
            .history(&HistoryFilter {
                text: Some(q.into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .iter()
            .map(|e| e.execution_count.unwrap())
            .collect()
    };
    assert_eq!(search("read_csv"), vec![7]);
    assert_eq!(search("pand*"), vec![7]);
    assert_eq!(search("quick fox"), vec![12]);
    assert_eq!(search("quick cat"), Vec::<i64>::new());
    // As people type: the start of any word matches, in any case.
    assert_eq!(search("rea"), vec![7]);
    assert_eq!(search("PANDA"), vec![7]);
    assert_eq!(search("qui bro"), vec![12]);
    assert_eq!(search("uick"), Vec::<i64>::new());
    let page = store
        .history(&HistoryFilter {
            text: Some("qui* bro".into()),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(page.search_terms, vec!["qui", "bro"]);
    // FTS syntax in user input is harmless.
    assert_eq!(search("\"unbalanced ( AND"), Vec::<i64>::new());

    let window = store
        .history(&HistoryFilter {
            since_ms: Some(10_000 + 5 * 1000),
            until_ms: Some(10_000 + 8 * 1000),
            notebook: Some("/p/nb.ipynb".into()),
            status: Some("ok".into()),
            ..Default::default()
        })
        .unwrap();
    let counts: Vec<i64> = window
        .items
        .iter()
        .map(|e| e.execution_count.unwrap())
        .collect();
    assert_eq!(counts, vec![7, 6, 5]);

    let cells = store.cell_summaries(Some("/p/nb.ipynb")).unwrap();
    assert_eq!(cells.len(), 3);
    assert_eq!(cells[0].cell_id, "c0"); // n = 24 ran last
    assert_eq!(cells[0].runs, 9);
    assert_eq!(cells[0].max_wall_ms, Some(524.0));
    assert_eq!(cells[0].min_wall_ms, Some(500.0));

    let sessions = store.sessions(10).unwrap();
    assert_eq!(sessions[0].executions, 25);
    let seq = store.export_sequence(None, None).unwrap();
    assert_eq!(seq.executions.len(), 25);
    let seq = store
        .export_sequence(None, Some(seq.executions[3].summary.id))
        .unwrap();
    assert_eq!(seq.executions.len(), 4);
}

#[test]
fn diff_code_outputs_and_resources() {
    let (_d, mut store) = temp_store();
    let out = store
        .write_batch(&[
            session("s"),
            exec(
                "s",
                1,
                "a = 1\nb = 2\nprint(a + b)\n",
                vec![
                    stream("stdout", "3\n"),
                    display(
                        json!({"image/png": "AAAA", "text/plain": "<Figure 1>"}),
                        None,
                    ),
                ],
            ),
            exec(
                "s",
                2,
                "a = 1\nb = 3\nprint(a + b)\n",
                vec![
                    stream("stdout", "4\n"),
                    display(
                        json!({"image/png": "BBBB", "text/plain": "<Figure 1>"}),
                        None,
                    ),
                    stream("stderr", "warning\n"),
                ],
            ),
        ])
        .unwrap();
    let ids: Vec<i64> = out
        .iter()
        .filter_map(|o| match o {
            WriteOutcome::Execution { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    let d = store.diff(ids[0], ids[1]).unwrap();
    assert!(d.code.changed);
    assert_eq!((d.code.added_lines, d.code.removed_lines), (1, 1));
    assert!(d.code.unified.contains("-b = 2") && d.code.unified.contains("+b = 3"));
    assert_eq!(d.outputs.len(), 3);
    assert_eq!(d.outputs[0].status, "changed");
    assert!(d.outputs[0].mimes[0]
        .unified
        .as_ref()
        .unwrap()
        .contains("+4"));
    let png = d.outputs[1]
        .mimes
        .iter()
        .find(|m| m.mime == "image/png")
        .unwrap();
    assert_eq!(png.status, "changed");
    assert_eq!(
        (png.a.clone(), png.b.clone()),
        (Some(json!("AAAA")), Some(json!("BBBB")))
    );
    let txt = d.outputs[1]
        .mimes
        .iter()
        .find(|m| m.mime == "text/plain")
        .unwrap();
    assert_eq!(txt.status, "unchanged");
    assert_eq!(d.outputs[2].status, "added");
    assert_eq!(d.resources.wall_ms, Some(1.0));
    assert_eq!(d.resources.rss_delta, Some(1));
    let same = store.diff(ids[0], ids[0]).unwrap();
    assert!(!same.code.changed);
    assert!(same.outputs.iter().all(|o| o.status == "unchanged"));
    assert!(matches!(
        store.diff(ids[0], 999),
        Err(StoreError::NoSuchExecution(999))
    ));
}

fn result_output(text: &str) -> OutputRecord {
    OutputRecord {
        output_type: OutputType::ExecuteResult,
        execution_count: Some(1),
        ..display(json!({ "text/plain": text }), None)
    }
}

fn error_output(name: &str, value: &str) -> OutputRecord {
    OutputRecord {
        output_type: OutputType::Error,
        name: None,
        display_id: None,
        execution_count: None,
        metadata: None,
        data: vec![],
        error: Some(json!({
            "ename": name,
            "evalue": value,
            "traceback": [
                "\u{1b}[0;31m---------\u{1b}[0m",
                format!("\u{1b}[0;31m{name}\u{1b}[0m: {value}"),
            ],
        })),
    }
}

fn ids_of(out: &[WriteOutcome]) -> Vec<i64> {
    out.iter()
        .filter_map(|o| match o {
            WriteOutcome::Execution { id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

#[test]
fn diff_pairs_outputs_by_kind_and_content_not_position() {
    let (_d, mut store) = temp_store();
    let out = store
        .write_batch(&[
            session("s"),
            exec("s", 1, "x", vec![result_output("2")]),
            exec(
                "s",
                2,
                "print('hi')\nx",
                vec![stream("stdout", "hi\n"), result_output("2")],
            ),
        ])
        .unwrap();
    let ids = ids_of(&out);
    let d = store.diff(ids[0], ids[1]).unwrap();
    let seen: Vec<(&str, Option<usize>, Option<usize>)> = d
        .outputs
        .iter()
        .map(|o| (o.status, o.position_a, o.position_b))
        .collect();
    assert_eq!(
        seen,
        vec![("added", None, Some(0)), ("unchanged", Some(0), Some(1))]
    );
    assert_eq!(d.outputs[0].output_type_b.as_deref(), Some("stream"));
    assert_eq!(
        d.outputs[1].output_type_a.as_deref(),
        Some("execute_result")
    );
}

#[test]
fn diff_of_errors_has_no_escapes_and_no_newline_notes() {
    let (_d, mut store) = temp_store();
    let out = store
        .write_batch(&[
            session("s"),
            exec(
                "s",
                1,
                "1/0",
                vec![error_output("ZeroDivisionError", "division by zero")],
            ),
            exec(
                "s",
                2,
                "1/x",
                vec![error_output("NameError", "name 'x' is not defined")],
            ),
        ])
        .unwrap();
    let ids = ids_of(&out);
    let d = store.diff(ids[0], ids[1]).unwrap();
    assert_eq!(d.outputs.len(), 1);
    assert_eq!(d.outputs[0].status, "changed");
    let text = d.outputs[0].mimes[0].unified.clone().unwrap();
    assert!(
        text.contains("-ZeroDivisionError: division by zero"),
        "{text}"
    );
    assert!(
        text.contains("+NameError: name 'x' is not defined"),
        "{text}"
    );
    assert!(!text.contains('\u{1b}'), "{text:?}");
    assert!(!text.contains("No newline"), "{text}");
    assert!(!d.code.unified.contains("No newline"), "{}", d.code.unified);
    // The same error twice, coloured the same: unchanged.
    let same = store.diff(ids[0], ids[0]).unwrap();
    assert_eq!(same.outputs[0].status, "unchanged");
}

#[test]
fn update_display_rewrites_stored_outputs_of_the_session() {
    let (_d, mut store) = temp_store();
    let out = store
        .write_batch(&[
            session("s"),
            exec(
                "s",
                1,
                "h = display(1, display_id=True)",
                vec![display(json!({"text/plain": "1"}), Some("d"))],
            ),
            WriteOp::UpdateDisplay {
                session_uuid: "s".into(),
                display_id: "d".into(),
                data: vec![MimeData::from_value("text/plain", &json!("2"), 100)],
                metadata: None,
            },
        ])
        .unwrap();
    let WriteOutcome::Execution { id, .. } = out[1] else {
        panic!()
    };
    let e = store.get_execution(id).unwrap();
    assert_eq!(e.outputs[0].output["data"], json!({"text/plain": "2"}));
}

#[test]
fn prune_removes_old_runs_and_orphan_blobs() {
    let (d, mut store) = temp_store();
    let mut ops = vec![session("s")];
    for n in 0..20 {
        let payload = format!("{n}").repeat(50_000);
        ops.push(exec(
            "s",
            n,
            "f()",
            vec![display(json!({"image/png": payload}), None)],
        ));
    }
    // One payload shared by an old and a new execution must survive.
    ops.push(exec(
        "s",
        30,
        "g()",
        vec![display(json!({"image/png": "1".repeat(50_000)}), None)],
    ));
    store.write_batch(&ops).unwrap();
    assert_eq!(store.stats().unwrap().blobs, 20);

    let report = store
        .prune(&PruneOptions {
            older_than_ms: Some(10_000 + 10 * 1000),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(report.executions_removed, 10);
    assert_eq!(report.blobs_removed, 9); // "1…" is still used by n = 30
    let stats = store.stats().unwrap();
    assert_eq!(stats.executions, 11);
    assert_eq!(stats.blobs, 11);
    assert!(report.bytes_after < report.bytes_before);
    assert!(
        store
            .history(&HistoryFilter {
                text: Some("f".into()),
                ..Default::default()
            })
            .unwrap()
            .items
            .len()
            == 10
    );
    let orphans: i64 = store
        .conn()
        .query_row(
            "SELECT count(*) FROM output_data d LEFT JOIN blobs b USING (sha256) WHERE b.sha256 IS NULL",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);

    let report = store
        .prune(&PruneOptions {
            max_size: Some(300_000),
            ..Default::default()
        })
        .unwrap();
    assert!(report.executions_removed > 0);
    assert!(report.bytes_after <= 300_000 + 100_000, "{report:?}");
    assert_eq!(mode(&d.path().join("lineage.sqlite")), 0o600);
}

#[test]
fn fts_query_quotes_words_and_matches_word_starts() {
    assert_eq!(query::fts_query("a b*").unwrap(), "\"a\"* \"b\"*");
    assert_eq!(
        query::fts_query("say \"hi\"").unwrap(),
        "\"say\"* \"\"\"hi\"\"\"*"
    );
    assert_eq!(query::fts_query("  * "), None);
}

/// Issue 4's query budget on 100,000 executions across 50 notebooks.
/// `cargo test --release -p jupyter-lineage --lib store::tests::bench -- --ignored --nocapture`
#[test]
#[ignore]
fn bench_queries_on_100k_executions() {
    let (_d, mut store) = temp_store();
    store.write_batch(&[session("s")]).unwrap();
    let t = std::time::Instant::now();
    for chunk in 0..100 {
        let ops: Vec<WriteOp> = (0..1000)
            .map(|i| {
                let n = chunk * 1000 + i;
                let WriteOp::Execution(mut e) = exec(
                    "s",
                    n,
                    &format!("df_{n} = load({n})\nprint(df_{n}.describe())"),
                    vec![stream("stdout", &format!("count {n}\nmean {}\n", n % 97))],
                ) else {
                    unreachable!()
                };
                e.notebook_path = Some(format!("/p/nb{}.ipynb", n % 50));
                e.cell_id = Some(format!("cell{}", n % 500));
                WriteOp::Execution(e)
            })
            .collect();
        store.write_batch(&ops).unwrap();
    }
    eprintln!("insert 100k: {:?}", t.elapsed());
    let time = |label: &str, f: &mut dyn FnMut()| {
        f();
        let t = std::time::Instant::now();
        for _ in 0..10 {
            f();
        }
        eprintln!("{label}: {:.2} ms", t.elapsed().as_secs_f64() * 100.0);
    };
    time("history first page, one notebook", &mut || {
        let p = store
            .history(&HistoryFilter {
                notebook: Some("/p/nb7.ipynb".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p.items.len(), 50);
    });
    time("full-text search", &mut || {
        let p = store
            .history(&HistoryFilter {
                text: Some("df_77777".into()),
                ..Default::default()
            })
            .unwrap();
        assert_eq!(p.items.len(), 1);
    });
    time("full-text search, common word, one notebook", &mut || {
        store
            .history(&HistoryFilter {
                text: Some("describe".into()),
                notebook: Some("/p/nb7.ipynb".into()),
                ..Default::default()
            })
            .unwrap();
    });
    time("cell summaries, one notebook", &mut || {
        store.cell_summaries(Some("/p/nb7.ipynb")).unwrap();
    });
    time("stats", &mut || {
        store.stats().unwrap();
    });
    let big = |c: char| {
        "line of output\n"
            .repeat(1 << 16)
            .replace('o', &c.to_string())
    };
    let out = store
        .write_batch(&[
            exec("s", 1, "a", vec![stream("stdout", &big('o'))]),
            exec("s", 2, "b", vec![stream("stdout", &big('0'))]),
        ])
        .unwrap();
    let (WriteOutcome::Execution { id: a, .. }, WriteOutcome::Execution { id: b, .. }) =
        (&out[0], &out[1])
    else {
        unreachable!()
    };
    time("diff of two executions with 1 MB outputs", &mut || {
        store.diff(*a, *b).unwrap();
    });
}
