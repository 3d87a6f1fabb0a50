//! Times the query layer on a database made by `gen_db`, in process (what
//! the comm service pays per request; the CLI adds process start-up).
//!
//!     cargo run --release --example bench_store -- PATH NOTEBOOK NEEDLE A B [--runs 30]
//!
//! Prints one JSON object: for each query, the first call on a freshly
//! opened connection (`first_ms`, includes opening the file) and the median
//! and max of `runs` repeated calls.

use std::path::PathBuf;
use std::time::Instant;

use jupyter_lineage::store::{HistoryFilter, Store};
use serde_json::json;

fn time_ms<T>(f: impl FnOnce() -> T) -> (f64, T) {
    let t = Instant::now();
    let v = f();
    (t.elapsed().as_secs_f64() * 1000.0, v)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 5 {
        eprintln!("usage: bench_store PATH NOTEBOOK NEEDLE A B [--runs N]");
        std::process::exit(2);
    }
    let path = PathBuf::from(&args[0]);
    let notebook = args[1].clone();
    let needle = args[2].clone();
    let a: i64 = args[3].parse().expect("execution id A");
    let b: i64 = args[4].parse().expect("execution id B");
    let runs: usize = args
        .iter()
        .position(|a| a == "--runs")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);

    let page = |store: &Store| {
        store
            .history(&HistoryFilter {
                notebook: Some(notebook.clone()),
                limit: Some(50),
                ..HistoryFilter::default()
            })
            .expect("history")
            .items
            .len()
    };
    let search = |store: &Store| {
        store
            .history(&HistoryFilter {
                text: Some(needle.clone()),
                limit: Some(50),
                ..HistoryFilter::default()
            })
            .expect("search")
            .items
            .len()
    };
    let diff = |store: &Store| {
        let d = store.diff(a, b).expect("diff");
        d.outputs.len()
    };
    let latest = |store: &Store| {
        store
            .history(&HistoryFilter {
                limit: Some(20),
                ..HistoryFilter::default()
            })
            .expect("history")
            .items
            .len()
    };

    type Query<'a> = (&'a str, &'a dyn Fn(&Store) -> usize);
    let queries: [Query; 4] = [
        ("history_page_one_notebook", &page),
        ("full_text_search", &search),
        ("diff_1mb_outputs", &diff),
        ("history_page_latest", &latest),
    ];
    let mut results = serde_json::Map::new();
    for (name, q) in queries {
        let (first_ms, rows) = time_ms(|| {
            let store = Store::open_readonly(&path).expect("open");
            q(&store)
        });
        let store = Store::open_readonly(&path).expect("open");
        let mut times: Vec<f64> = (0..runs).map(|_| time_ms(|| q(&store)).0).collect();
        times.sort_by(|x, y| x.total_cmp(y));
        results.insert(
            name.to_string(),
            json!({
                "rows": rows,
                "first_ms": first_ms,
                "median_ms": times[times.len() / 2],
                "max_ms": times[times.len() - 1],
            }),
        );
    }
    println!("{}", serde_json::Value::Object(results));
}
