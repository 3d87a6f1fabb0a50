//! Builds a large lineage database for benchmarks, through the store's own
//! write path (the recorder's batches), deterministically.
//!
//!     cargo run --release --example gen_db -- PATH [--executions 100000] [--notebooks 50]
//!
//! Prints one JSON line: the path, counts, and the ids of two executions of
//! the same cell whose outputs are 1 MB each and differ a little (for the
//! diff benchmark), plus a word that a few hundred executions contain (for
//! the full-text search benchmark).

use std::path::PathBuf;
use std::time::Instant;

use jupyter_lineage::store::{
    ExecutionRecord, MimeData, OutputRecord, OutputType, Resources, Sample, SessionRecord, Status,
    Store, WriteOp, WriteOutcome,
};
use serde_json::json;

/// xorshift64*: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const WORDS: &[&str] = &[
    "df", "data", "model", "train", "test", "loss", "mean", "groupby", "plot", "fit", "predict",
    "np", "pd", "array", "values", "index", "merge", "sum", "count", "result", "features",
    "labels", "epoch", "batch", "score", "accuracy", "weights", "tensor", "shape", "config",
];

/// The word the search benchmark looks for; one execution in 250 has it.
const NEEDLE: &str = "quasarflux";

fn code(rng: &mut Rng, i: u64) -> String {
    let lines = 1 + rng.below(6);
    let mut out = String::new();
    for l in 0..lines {
        let a = WORDS[rng.below(WORDS.len() as u64) as usize];
        let b = WORDS[rng.below(WORDS.len() as u64) as usize];
        let c = WORDS[rng.below(WORDS.len() as u64) as usize];
        out.push_str(&format!("{a}_{l} = {b}.{c}({})\n", rng.below(1000)));
    }
    if i.is_multiple_of(250) {
        out.push_str(&format!("{NEEDLE} = compute({i})\n"));
    }
    out.push_str(&format!(
        "print({})\n",
        WORDS[(i % WORDS.len() as u64) as usize]
    ));
    out
}

fn text(mime: &str, s: String) -> MimeData {
    MimeData::from_text(mime, s.into_bytes(), false, usize::MAX)
}

fn stream(s: String) -> OutputRecord {
    OutputRecord {
        output_type: OutputType::Stream,
        name: Some("stdout".into()),
        display_id: None,
        execution_count: None,
        metadata: None,
        data: vec![text("text/plain", s)],
        error: None,
    }
}

/// About 1 MB of text lines; `variant` changes every 500th line.
fn big_output(variant: u64) -> String {
    let mut s = String::with_capacity(1 << 20);
    let mut line = 0u64;
    while s.len() < 1_000_000 {
        let v = if line.is_multiple_of(500) { variant } else { 0 };
        s.push_str(&format!(
            "row {line:>6}: value={:.6} tag={v}\n",
            (line as f64).sin()
        ));
        line += 1;
    }
    s
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mut path: Option<PathBuf> = None;
    let mut executions: u64 = 100_000;
    let mut notebooks: u64 = 50;
    while let Some(a) = args.next() {
        match a.as_str() {
            "--executions" => executions = args.next().and_then(|v| v.parse().ok()).unwrap(),
            "--notebooks" => notebooks = args.next().and_then(|v| v.parse().ok()).unwrap(),
            p => path = Some(PathBuf::from(p)),
        }
    }
    let path = path.expect("usage: gen_db PATH [--executions N] [--notebooks N]");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).expect("create the folder");
    }
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let started = Instant::now();
    let mut store = Store::open(&path).expect("open the database");
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let now = chrono::Utc::now().timestamp_millis();
    let span_ms = 90 * 86_400_000i64;
    let step = span_ms / executions as i64;
    let t0 = now - span_ms;
    let nb_path = |n: u64| format!("/home/user/project/analysis/notebook_{n:02}.ipynb");

    let sessions: Vec<WriteOp> = (0..notebooks)
        .map(|n| {
            WriteOp::Session(Box::new(SessionRecord {
                uuid: format!("session-{n}"),
                kernelspec: Some("python3".into()),
                argv: vec!["python".into(), "-m".into(), "ipykernel_launcher".into()],
                language: Some("python".into()),
                language_info: Some(json!({"name": "python", "version": "3.11.2"})),
                started_ms: t0,
                notebook_path: Some(nb_path(n)),
                cwd: Some("/home/user/project/analysis".into()),
                ..SessionRecord::default()
            }))
        })
        .collect();
    store.write_batch(&sessions).expect("write sessions");

    // The two 1 MB executions come first in notebook 0, cell "big".
    let mut big_ids = Vec::new();
    let mut batch: Vec<WriteOp> = Vec::with_capacity(1000);
    let flush = |store: &mut Store, batch: &mut Vec<WriteOp>, ids: Option<&mut Vec<i64>>| {
        let outcomes = store.write_batch(batch).expect("write a batch");
        if let Some(ids) = ids {
            ids.extend(outcomes.iter().filter_map(|o| match o {
                WriteOutcome::Execution { id, .. } => Some(*id),
                WriteOutcome::Other => None,
            }));
        }
        batch.clear();
    };
    for i in 0..executions {
        let nb = if i < 2 { 0 } else { rng.below(notebooks) };
        let cell = if i < 2 {
            "big".to_string()
        } else {
            format!("cell-{nb:02}-{:03}", rng.below(40))
        };
        let status = match i % 97 {
            0 => Status::Error,
            1 if i % 3 == 0 => Status::Skipped,
            _ => Status::Ok,
        };
        let code_text = (status != Status::Skipped).then(|| code(&mut rng, i));
        let mut outputs = Vec::new();
        if i < 2 {
            outputs.push(stream(big_output(i)));
        } else if status == Status::Ok {
            outputs.push(stream(format!(
                "{} {}\n",
                WORDS[rng.below(WORDS.len() as u64) as usize],
                rng.below(1_000_000)
            )));
            if i % 10 == 0 {
                outputs.push(OutputRecord {
                    output_type: OutputType::ExecuteResult,
                    name: None,
                    display_id: None,
                    execution_count: Some(i as i64 % 500 + 1),
                    metadata: Some(json!({})),
                    data: vec![
                        text("text/html", format!("<table><tr><td>{i}</td></tr></table>")),
                        text("text/plain", format!("   value\n0  {i}")),
                    ],
                    error: None,
                });
            }
        } else if status == Status::Error {
            outputs.push(OutputRecord {
                output_type: OutputType::Error,
                name: None,
                display_id: None,
                execution_count: None,
                metadata: None,
                data: Vec::new(),
                error: Some(json!({"ename": "KeyError", "evalue": "'missing'",
                                   "traceback": ["KeyError: 'missing'"]})),
            });
        }
        let started_ms = t0 + i as i64 * step;
        let wall = 5.0 + rng.below(5000) as f64;
        let rss = 200_000_000 + rng.below(800_000_000);
        batch.push(WriteOp::Execution(Box::new(ExecutionRecord {
            session_uuid: format!("session-{nb}"),
            msg_id: format!("msg-{i}"),
            cell_id: Some(cell),
            notebook_path: Some(nb_path(nb)),
            execution_count: Some(i as i64 % 500 + 1),
            code: code_text,
            silent: false,
            store_history: true,
            started_ms,
            ended_ms: Some(started_ms + wall as i64),
            status,
            error_name: (status == Status::Error).then(|| "KeyError".into()),
            error_value: (status == Status::Error).then(|| "'missing'".into()),
            traceback: None,
            wall_ms: Some(wall),
            resources: Resources {
                cpu_ms: Some(wall * 0.9),
                rss_start: Some(rss),
                rss_end: Some(rss + 1_000_000),
                peak_rss: Some(rss + 5_000_000),
                gpu_mem_peak: None,
                gpu_util_max: None,
                samples: (0..3)
                    .map(|k| Sample {
                        t_ms: k * 100,
                        rss: Some(rss + k as u64 * 1000),
                        cpu_ms: Some(k as f64 * 10.0),
                        gpu_mem: None,
                        gpu_util: None,
                    })
                    .collect(),
            },
            exit_code: None,
            exit_signal: None,
            outputs,
            truncated: false,
        })));
        if i < 2 {
            flush(&mut store, &mut batch, Some(&mut big_ids));
        } else if batch.len() >= 1000 {
            flush(&mut store, &mut batch, None);
        }
    }
    if !batch.is_empty() {
        flush(&mut store, &mut batch, None);
    }
    // Housekeeping the store does not offer (its callers never need it):
    // a connection of our own on the same file.
    if let Ok(conn) = rusqlite::Connection::open(&path) {
        let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); ANALYZE;");
    }
    let (bytes, _) = store.size_bytes().expect("size");
    println!(
        "{}",
        json!({
            "path": path,
            "executions": executions,
            "notebooks": notebooks,
            "notebook": nb_path(7),
            "big": big_ids,
            "needle": NEEDLE,
            "bytes": bytes,
            "seconds": started.elapsed().as_secs_f64(),
        })
    );
}
