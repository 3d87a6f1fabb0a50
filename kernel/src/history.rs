//! The history commands: `log`, `show`, `diff`, `export`, `stats`, `prune`
//! and `doctor`. They read the project's database directly (no kernel
//! needed), found the way the kernel finds it ([`crate::project::from_env`])
//! or named with `--db`.
//!
//! Exit codes scripts can trust: 0 done; 1 not found (no database, unknown
//! execution or session id, no such notebook or cell); 2 bad arguments or a
//! refused prune (clap uses 2 for usage errors too), and any other failure.

mod export;
pub mod format;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use rusqlite::OptionalExtension;
use serde_json::{json, Value};

use crate::project;
use crate::store::{
    ExecutionDetail, ExecutionDiff, ExecutionSummary, HistoryFilter, PruneOptions, Store,
    StoreError,
};

use format::{Align, Style};

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error(
        "no lineage database at {} ({how}); run a notebook on a lineage kernel first, or pass --db PATH",
        path.display()
    )]
    NoDatabase { path: PathBuf, how: String },
    #[error("no execution with id {id} in {}", db.display())]
    NoSuchExecution { id: i64, db: PathBuf },
    #[error("no session with id {id} in {}", db.display())]
    NoSuchSession { id: i64, db: PathBuf },
    #[error("no executions recorded yet in {}", db.display())]
    Empty { db: PathBuf },
    #[error("no {what} matching {query:?} in {}{hint}", db.display())]
    NoMatch {
        what: &'static str,
        query: String,
        db: PathBuf,
        /// What does exist, for the message.
        hint: String,
    },
    #[error("{0}")]
    Usage(String),
    #[error(
        "refusing to prune without confirmation: stdin is not a terminal; \
         pass --yes to prune, or --dry-run to see what would go"
    )]
    NeedsConfirmation,
    #[error("{}: {source}", path.display())]
    Store {
        path: PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] std::io::Error),
}

impl HistoryError {
    /// The process exit code for this failure (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            HistoryError::NoDatabase { .. }
            | HistoryError::NoSuchExecution { .. }
            | HistoryError::NoSuchSession { .. }
            | HistoryError::Empty { .. }
            | HistoryError::NoMatch { .. } => 1,
            _ => 2,
        }
    }

    /// A store error, with "not found" ones made specific to `db`.
    fn from_store(db: &Path, e: StoreError) -> HistoryError {
        let db = db.to_path_buf();
        match e {
            StoreError::NoSuchExecution(id) => HistoryError::NoSuchExecution { id, db },
            StoreError::NoSuchSession(id) => HistoryError::NoSuchSession { id, db },
            StoreError::Missing { path } => HistoryError::NoDatabase {
                path,
                how: "given with --db".into(),
            },
            source => HistoryError::Store { path: db, source },
        }
    }
}

type Result<T> = std::result::Result<T, HistoryError>;

/// Turns a command's result into an exit code, printing the error once.
/// A closed pipe (`jupyter lineage log | head`) is not an error.
fn finish(r: Result<ExitCode>) -> anyhow::Result<ExitCode> {
    match r {
        Ok(code) => Ok(code),
        Err(HistoryError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            let code = e.exit_code();
            eprintln!("jupyter-lineage: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::from(code))
        }
    }
}

/// Writes to stdout; a closed pipe surfaces as [`HistoryError::Stdout`].
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(HistoryError::Stdout)
}

fn emit_json(v: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| HistoryError::Store {
        path: PathBuf::from("<json>"),
        source: e.into(),
    })?;
    text.push('\n');
    emit(&text)
}

// ------------------------------------------------------------------ the database

/// `--db`, shared by every history command.
#[derive(Debug, Args, Clone)]
pub struct DbArg {
    /// The lineage database (a .sqlite file, or the folder holding
    /// lineage.sqlite). Default: the one the kernel would use here — under
    /// $JUPYTER_LINEAGE_DIR, else .jupyter-lineage/ in the nearest folder
    /// holding .git, else in the current folder.
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,
}

impl DbArg {
    /// The database path, and how it was found (for messages).
    pub fn locate(&self) -> (PathBuf, String) {
        if let Some(db) = &self.db {
            let path = if db.is_dir() {
                db.join(project::DB_FILE)
            } else {
                db.clone()
            };
            return (path, "given with --db".into());
        }
        let loc = project::from_env();
        let how = match std::env::var_os("JUPYTER_LINEAGE_DIR").filter(|v| !v.is_empty()) {
            Some(dir) => format!("JUPYTER_LINEAGE_DIR={}", Path::new(&dir).display()),
            None => format!(
                "found like the kernel does: project root {}",
                loc.root.display()
            ),
        };
        (loc.db_path, how)
    }

    fn open(&self) -> Result<Store> {
        let (path, how) = self.locate();
        if !path.is_file() {
            return Err(HistoryError::NoDatabase { path, how });
        }
        Store::open_readonly(&path).map_err(|e| match e {
            StoreError::Missing { path } => HistoryError::NoDatabase { path, how },
            e => HistoryError::from_store(&path, e),
        })
    }
}

/// Resolves what the user typed for `--notebook`: the exact recorded path,
/// a path relative to the current folder, or a unique suffix (`nb.ipynb`,
/// `sub/nb.ipynb`).
fn resolve_notebook(store: &Store, arg: &str) -> Result<String> {
    let conn = store.connection();
    let db = store.path();
    let sql_err = |e: rusqlite::Error| HistoryError::from_store(db, e.into());
    let exists = |p: &str| -> Result<bool> {
        conn.prepare_cached("SELECT 1 FROM executions WHERE notebook_path = ?1 LIMIT 1")
            .and_then(|mut s| s.exists([p]))
            .map_err(sql_err)
    };
    if exists(arg)? {
        return Ok(arg.to_string());
    }
    if let Ok(cwd) = std::env::current_dir() {
        let abs = project::locate(&cwd, Some(&cwd.join(arg).into_os_string()), None)
            .notebook_path
            .map(|p| p.to_string_lossy().into_owned());
        if let Some(abs) = abs.filter(|a| a != arg) {
            if exists(&abs)? {
                return Ok(abs);
            }
        }
    }
    let known: Vec<String> = conn
        .prepare("SELECT DISTINCT notebook_path FROM executions WHERE notebook_path IS NOT NULL")
        .and_then(|mut s| {
            s.query_map([], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(sql_err)?;
    let suffix = format!("/{}", arg.trim_start_matches("./"));
    let matches: Vec<&String> = known.iter().filter(|k| k.ends_with(&suffix)).collect();
    match matches.as_slice() {
        [one] => Ok((*one).clone()),
        [] => Err(HistoryError::NoMatch {
            what: "notebook",
            query: arg.to_string(),
            db: db.to_path_buf(),
            hint: hint_list("recorded notebooks", &known),
        }),
        many => Err(HistoryError::Usage(format!(
            "--notebook {arg:?} matches several notebooks: {}; give more of the path",
            many.iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// Resolves `--cell`: an exact cell id or a unique prefix of one (the log
/// shows the first 8 characters).
fn resolve_cell(store: &Store, arg: &str) -> Result<String> {
    let conn = store.connection();
    let db = store.path();
    let sql_err = |e: rusqlite::Error| HistoryError::from_store(db, e.into());
    let exact: Option<i64> = conn
        .query_row(
            "SELECT 1 FROM executions WHERE cell_id = ?1 LIMIT 1",
            [arg],
            |r| r.get(0),
        )
        .optional()
        .map_err(sql_err)?;
    if exact.is_some() || arg.contains(['*', '?', '[']) {
        return Ok(arg.to_string());
    }
    // GLOB with a literal prefix uses the cell_id index.
    let found: Vec<String> = conn
        .prepare("SELECT DISTINCT cell_id FROM executions WHERE cell_id GLOB ?1 || '*' LIMIT 10")
        .and_then(|mut s| {
            s.query_map([arg], |r| r.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()
        })
        .map_err(sql_err)?;
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(HistoryError::NoMatch {
            what: "cell",
            query: arg.to_string(),
            db: db.to_path_buf(),
            hint: String::new(),
        }),
        many => Err(HistoryError::Usage(format!(
            "--cell {arg:?} is the start of several cell ids ({}…); give more of it",
            many.join(", ")
        ))),
    }
}

fn hint_list(what: &str, items: &[String]) -> String {
    if items.is_empty() {
        return String::new();
    }
    let shown: Vec<&str> = items.iter().take(8).map(String::as_str).collect();
    let more = if items.len() > shown.len() {
        format!(", … ({} in all)", items.len())
    } else {
        String::new()
    };
    format!("; {what}: {}{more}", shown.join(", "))
}

/// The last path component of a notebook, as the log shows it.
fn short_notebook(path: Option<&str>) -> String {
    match path {
        Some(p) => Path::new(p)
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| p.to_string()),
        None => "-".into(),
    }
}

fn short_cell(cell: Option<&str>) -> String {
    match cell {
        Some(c) => c.chars().take(8).collect(),
        None => "-".into(),
    }
}

fn opt<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map(f).unwrap_or_else(|| "-".into())
}

// ------------------------------------------------------------------ log

/// The statuses an execution can have (the schema's CHECK constraint).
const STATUSES: [&str; 7] = [
    "running",
    "ok",
    "error",
    "aborted",
    "interrupted",
    "died",
    "skipped",
];

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// How many executions to show, newest first.
    #[arg(short = 'n', long, default_value_t = 20,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub limit: u64,
    /// Show every matching execution (pages through all of them).
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Only this notebook: its recorded path, a path from here, or its file name.
    #[arg(long, value_name = "PATH")]
    pub notebook: Option<String>,
    /// Only this cell (its id, or the start of it as the log shows it).
    #[arg(long, value_name = "ID")]
    pub cell: Option<String>,
    /// Only executions that ended so.
    #[arg(long, value_parser = STATUSES)]
    pub status: Option<String>,
    /// Only executions started at or after: an ISO date or date-time, or a time ago (2h, 3d).
    #[arg(long, value_name = "WHEN", value_parser = format::parse_time)]
    pub since: Option<i64>,
    /// Only executions started before: an ISO date or date-time, or a time ago (2h, 3d).
    #[arg(long, value_name = "WHEN", value_parser = format::parse_time)]
    pub until: Option<i64>,
    /// Full-text search over code and text outputs (all words must match; `word*` is a prefix).
    #[arg(long, short = 's', value_name = "TEXT")]
    pub search: Option<String>,
    /// Continue after a previous page: its `next_cursor` (executions older than this id).
    #[arg(long, value_name = "CURSOR")]
    pub before: Option<i64>,
    /// Include silent executions (sent by frontends, not typed in cells).
    #[arg(long)]
    pub include_silent: bool,
    /// One JSON document: {"items": [...], "next_cursor": ...}.
    #[arg(long)]
    pub json: bool,
}

pub fn log(args: LogArgs) -> anyhow::Result<ExitCode> {
    finish(log_inner(args))
}

fn log_inner(args: LogArgs) -> Result<ExitCode> {
    let store = args.db.open()?;
    let db = store.path().to_path_buf();
    let mut filter = HistoryFilter {
        notebook: args
            .notebook
            .as_deref()
            .map(|n| resolve_notebook(&store, n))
            .transpose()?,
        cell_id: args
            .cell
            .as_deref()
            .map(|c| resolve_cell(&store, c))
            .transpose()?,
        status: args.status.clone(),
        since_ms: args.since,
        until_ms: args.until,
        text: args.search.clone(),
        before: args.before,
        include_silent: args.include_silent,
        ..HistoryFilter::default()
    };
    if args.search.as_deref().is_some_and(|s| {
        s.split_whitespace()
            .all(|w| w.trim_end_matches('*').is_empty())
    }) {
        return Err(HistoryError::Usage(
            "--search needs a word to look for".into(),
        ));
    }
    let want = if args.all { u64::MAX } else { args.limit };
    let mut items: Vec<ExecutionSummary> = Vec::new();
    let mut next_cursor;
    loop {
        let room = (want - items.len() as u64).min(1000) as usize;
        filter.limit = Some(room);
        let page = store
            .history(&filter)
            .map_err(|e| HistoryError::from_store(&db, e))?;
        items.extend(page.items);
        next_cursor = page.next_cursor;
        match next_cursor {
            Some(c) if (items.len() as u64) < want => filter.before = Some(c),
            _ => break,
        }
    }
    if args.json {
        emit_json(&json!({ "items": items, "next_cursor": next_cursor }))?;
        return Ok(ExitCode::SUCCESS);
    }
    if items.is_empty() {
        let filtered = args.notebook.is_some()
            || args.cell.is_some()
            || args.status.is_some()
            || args.since.is_some()
            || args.until.is_some()
            || args.search.is_some()
            || args.before.is_some();
        if filtered {
            eprintln!("No recorded execution matches.");
        } else {
            eprintln!("No executions recorded yet in {}.", db.display());
        }
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    emit(&log_table(&items, format::terminal_width(), style))?;
    if let Some(c) = next_cursor {
        if std::io::stderr().is_terminal() {
            eprintln!(
                "{}",
                style.dim(&format!(
                    "(older executions: --limit N, --all, or --before {c})"
                ))
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The `log` table: one execution a row, in the order given.
pub fn log_table(items: &[ExecutionSummary], width: Option<usize>, style: Style) -> String {
    let headers = [
        ("ID", Align::Right),
        ("WHEN", Align::Left),
        ("NOTEBOOK", Align::Left),
        ("CELL", Align::Left),
        ("#", Align::Right),
        ("STATUS", Align::Left),
        ("DURATION", Align::Right),
        ("CPU", Align::Right),
        ("PEAK MEM", Align::Right),
        ("CODE", Align::Left),
    ];
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|e| {
            vec![
                e.id.to_string(),
                format::local_time(e.started_ms),
                format::truncate(&short_notebook(e.notebook_path.as_deref()), 28),
                short_cell(e.cell_id.as_deref()),
                opt(e.execution_count, |n| n.to_string()),
                e.status.clone(),
                opt(e.wall_ms, format::duration_ms),
                opt(e.cpu_ms, format::duration_ms),
                opt(e.peak_rss, |b| format::bytes(b as u64)),
                match &e.code_preview {
                    Some(code) => format::first_line(code).to_string(),
                    None if e.status == "skipped" => "(skipped: code not recorded)".into(),
                    None => String::new(),
                },
            ]
        })
        .collect();
    let statuses: Vec<&str> = items.iter().map(|e| e.status.as_str()).collect();
    // `paint` sees cells row by row, column by column; count to know the row.
    let cell_no = std::cell::Cell::new(0usize);
    format::table(&headers, &rows, width, style, |col, text| {
        let row = cell_no.get() / headers.len();
        cell_no.set(cell_no.get() + 1);
        match col {
            0 => style.bold(text),
            1 | 3 => style.dim(text),
            5 => style.status(statuses.get(row).copied().unwrap_or(""), text),
            _ => text.to_string(),
        }
    })
}

// ------------------------------------------------------------------ show

#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The execution id (the first column of `log`).
    pub id: i64,
    #[command(flatten)]
    pub db: DbArg,
    /// The execution and its session as JSON (outputs as nbformat outputs).
    #[arg(long)]
    pub json: bool,
}

pub fn show(args: ShowArgs) -> anyhow::Result<ExitCode> {
    finish(show_inner(args))
}

fn show_inner(args: ShowArgs) -> Result<ExitCode> {
    let store = args.db.open()?;
    let db = store.path().to_path_buf();
    let e = store
        .get_execution(args.id)
        .map_err(|e| HistoryError::from_store(&db, e))?;
    let session = store
        .session(e.summary.session_id)
        .map_err(|e| HistoryError::from_store(&db, e))?;
    if args.json {
        let mut v =
            serde_json::to_value(&e).map_err(|e| HistoryError::from_store(&db, e.into()))?;
        v["session"] =
            serde_json::to_value(&session).map_err(|e| HistoryError::from_store(&db, e.into()))?;
        emit_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    emit(&render_show(&e, &session, style, format::now_ms()))?;
    Ok(ExitCode::SUCCESS)
}

fn section(style: Style, title: &str) -> String {
    format!("\n{}\n", style.bold(&format!("── {title} ──")))
}

/// An output as text: stream text, text/plain, the traceback (ANSI
/// escapes kept only on a terminal), and a size tag for everything else.
fn output_text(o: &Value, style: Style) -> String {
    let mut out = String::new();
    let text_of = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(parts) => parts.iter().filter_map(Value::as_str).collect(),
            other => other.to_string(),
        }
    };
    let ansi = |s: &str| -> String {
        if style.color {
            s.to_string()
        } else {
            format::strip_ansi(s)
        }
    };
    match o.get("output_type").and_then(Value::as_str) {
        Some("stream") => out.push_str(&ansi(&text_of(&o["text"]))),
        Some("error") => {
            let tb: Vec<String> = o["traceback"]
                .as_array()
                .map(|l| l.iter().map(text_of).collect())
                .unwrap_or_default();
            if tb.is_empty() {
                out.push_str(&format!(
                    "{}: {}",
                    text_of(&o["ename"]),
                    text_of(&o["evalue"])
                ));
            } else {
                out.push_str(&ansi(&tb.join("\n")));
            }
        }
        _ => {
            if let Some(data) = o.get("data").and_then(Value::as_object) {
                if let Some(t) = data.get("text/plain") {
                    out.push_str(&ansi(&text_of(t)));
                }
                for (mime, v) in data {
                    if mime == "text/plain" {
                        continue;
                    }
                    if !out.is_empty() && !out.ends_with('\n') {
                        out.push('\n');
                    }
                    out.push_str(&style.dim(&format!(
                        "[{mime} {}]",
                        format::bytes(format::payload_size(mime, v))
                    )));
                }
            }
        }
    }
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn render_show(
    e: &ExecutionDetail,
    session: &crate::store::SessionSummary,
    style: Style,
    now: i64,
) -> String {
    let s = &e.summary;
    let mut out = String::new();
    out.push_str(&format!(
        "{} {}  {}",
        style.bold("execution"),
        style.bold(&s.id.to_string()),
        style.status(&s.status, &s.status)
    ));
    if let Some(n) = s.execution_count {
        out.push_str(&format!("  In [{n}]"));
    }
    if s.silent {
        out.push_str("  (silent)");
    }
    out.push('\n');
    out.push_str(&format!(
        "notebook  {}\n",
        s.notebook_path.as_deref().unwrap_or("-")
    ));
    out.push_str(&format!(
        "cell      {}\n",
        s.cell_id.as_deref().unwrap_or("-")
    ));
    out.push_str(&format!(
        "started   {} ({})\n",
        format::local_time(s.started_ms),
        format::relative(s.started_ms, now)
    ));
    if let Some(prev) = s.prev_execution_id {
        out.push_str(&format!("previous  execution {prev} in this session\n"));
    }
    if let (Some(n), v) = (&s.error_name, &s.error_value) {
        out.push_str(&format!(
            "error     {}\n",
            style.red(&format!("{n}: {}", v.as_deref().unwrap_or("")))
        ));
    }

    out.push_str(&section(style, "code"));
    match &e.code {
        Some(code) => {
            out.push_str(code);
            if !code.ends_with('\n') {
                out.push('\n');
            }
        }
        None => out.push_str(&style.dim("(skipped with `# lineage: skip`: code not recorded)\n")),
    }

    out.push_str(&section(
        style,
        &format!(
            "outputs ({}){}",
            e.outputs.len(),
            if s.truncated {
                ", some cut at the size cap"
            } else {
                ""
            }
        ),
    ));
    for (i, o) in e.outputs.iter().enumerate() {
        let kind = o.output["output_type"].as_str().unwrap_or("?");
        let name = o.output["name"]
            .as_str()
            .map(|n| format!(" {n}"))
            .unwrap_or_default();
        let cut = if o.truncated.is_empty() {
            String::new()
        } else {
            format!(" (cut: {})", o.truncated.join(", "))
        };
        out.push_str(&style.dim(&format!("[{i}] {kind}{name}{cut}")));
        out.push('\n');
        out.push_str(&output_text(&o.output, style));
    }

    out.push_str(&section(style, "resources"));
    let row = |label: &str, value: String| format!("{label:<11}{value}\n");
    out.push_str(&row("wall", opt(s.wall_ms, format::duration_ms)));
    out.push_str(&row("CPU", opt(s.cpu_ms, format::duration_ms)));
    out.push_str(&row(
        "peak RSS",
        opt(s.peak_rss, |b| format::bytes(b as u64)),
    ));
    out.push_str(&row(
        "RSS",
        match (s.rss_start, e.rss_end) {
            (Some(a), Some(b)) => format!(
                "{} → {} ({})",
                format::bytes(a as u64),
                format::bytes(b as u64),
                format::bytes_delta(b - a)
            ),
            _ => opt(s.rss_delta, format::bytes_delta),
        },
    ));
    out.push_str(&row(
        "GPU",
        match (s.gpu_mem_peak, s.gpu_util_max) {
            (None, None) => "- (no NVML)".into(),
            (m, u) => format!(
                "peak memory {}, max utilisation {}",
                opt(m, |b| format::bytes(b as u64)),
                opt(u, |u| format!("{u:.0}%"))
            ),
        },
    ));
    out.push_str(&row("samples", e.samples.len().to_string()));
    if let (Some(code), sig) = (e.exit_code, e.exit_signal) {
        out.push_str(&row(
            "exit",
            format!("code {code}{}", opt(sig, |s| format!(", signal {s}"))),
        ));
    }

    out.push_str(&section(style, "session"));
    out.push_str(&row("id", format!("{} ({})", session.id, session.uuid)));
    let mut kernel = session.kernelspec.clone().unwrap_or_else(|| "-".into());
    if let Some(i) = &session.implementation {
        kernel.push_str(&format!(
            " ({i} {})",
            session.implementation_version.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&row("kernel", kernel));
    let mut started = format::local_time(session.started_ms);
    if let Some(t) = session.ended_ms {
        started.push_str(&format!(", ended {}", format::local_time(t)));
    }
    out.push_str(&row("started", started));
    if let Some(cwd) = &session.cwd {
        out.push_str(&row("cwd", cwd.clone()));
    }
    if session.user.is_some() || session.host.is_some() {
        out.push_str(&row(
            "on",
            format!(
                "{}@{}",
                session.user.as_deref().unwrap_or("?"),
                session.host.as_deref().unwrap_or("?")
            ),
        ));
    }
    if let Some(head) = &session.git_head {
        let dirty = if session.git_dirty == Some(true) {
            " (uncommitted changes)"
        } else {
            ""
        };
        out.push_str(&row("git", format!("{head}{dirty}")));
    }
    out.push_str(&row("executions", session.executions.to_string()));
    out
}

// ------------------------------------------------------------------ diff

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The earlier execution id.
    pub a: i64,
    /// The later execution id.
    pub b: i64,
    #[command(flatten)]
    pub db: DbArg,
    /// The diff as JSON (code, outputs by MIME type, resource deltas).
    #[arg(long)]
    pub json: bool,
}

pub fn diff(args: DiffArgs) -> anyhow::Result<ExitCode> {
    finish(diff_inner(args))
}

fn diff_inner(args: DiffArgs) -> Result<ExitCode> {
    let store = args.db.open()?;
    let db = store.path().to_path_buf();
    let d = store
        .diff(args.a, args.b)
        .map_err(|e| HistoryError::from_store(&db, e))?;
    if args.json {
        emit_json(&d)?;
    } else {
        emit(&render_diff(&d, Style::detect()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn describe(s: &ExecutionSummary) -> String {
    format!(
        "execution {} · {} · cell {} · {} · {}",
        s.id,
        short_notebook(s.notebook_path.as_deref()),
        short_cell(s.cell_id.as_deref()),
        format::local_time(s.started_ms),
        s.status
    )
}

fn colour_diff(unified: &str, style: Style) -> String {
    let mut out = String::new();
    for line in unified.lines() {
        out.push_str(&style.diff_line(line));
        out.push('\n');
    }
    out
}

/// The diff for a reader: code, then each output by MIME type, then how
/// the resources changed.
pub fn render_diff(d: &ExecutionDiff, style: Style) -> String {
    let mut out = String::new();
    out.push_str(&style.red(&format!("a: {}", describe(&d.a))));
    out.push('\n');
    out.push_str(&style.green(&format!("b: {}", describe(&d.b))));
    out.push('\n');

    out.push_str(&section(style, "code"));
    if d.code.changed {
        out.push_str(&colour_diff(&d.code.unified, style));
    } else {
        out.push_str(&style.dim("unchanged\n"));
    }

    out.push_str(&section(style, "outputs"));
    if d.outputs.is_empty() {
        out.push_str(&style.dim("none on either side\n"));
    }
    for o in &d.outputs {
        let kind = match (&o.output_type_a, &o.output_type_b) {
            (Some(a), Some(b)) if a == b => a.clone(),
            (Some(a), Some(b)) => format!("{a} → {b}"),
            (Some(a), None) => a.clone(),
            (None, Some(b)) => b.clone(),
            (None, None) => "?".into(),
        };
        let status = match o.status {
            "unchanged" => style.dim(o.status),
            "added" => style.green(o.status),
            "removed" => style.red(o.status),
            s => style.yellow(s),
        };
        out.push_str(&format!("[{}] {kind}: {status}\n", o.position));
        if o.status == "unchanged" {
            continue;
        }
        for m in &o.mimes {
            if m.status == "unchanged" {
                out.push_str(&format!("  {} {}\n", m.mime, style.dim("unchanged")));
                continue;
            }
            match &m.unified {
                Some(u) if !u.is_empty() => {
                    out.push_str(&format!("  {} {}:\n", m.mime, m.status));
                    out.push_str(&colour_diff(u, style));
                }
                _ => {
                    let size = |v: &Option<Value>| {
                        opt(v.as_ref(), |v| {
                            format::bytes(format::payload_size(&m.mime, v))
                        })
                    };
                    out.push_str(&format!(
                        "  {} {} ({} → {})\n",
                        m.mime,
                        m.status,
                        size(&m.a),
                        size(&m.b)
                    ));
                }
            }
        }
    }

    out.push_str(&section(style, "resources"));
    let (a, b, r) = (&d.a, &d.b, &d.resources);
    let line = |label: &str, va: String, vb: String, delta: String| {
        format!("{label:<10}{va:>10} → {vb:<10} {delta}\n")
    };
    let dur = |v: Option<f64>| opt(v, format::duration_ms);
    let mem = |v: Option<i64>| opt(v, |b| format::bytes(b.max(0) as u64));
    out.push_str(&line(
        "wall",
        dur(a.wall_ms),
        dur(b.wall_ms),
        opt(r.wall_ms, format::duration_delta_ms),
    ));
    out.push_str(&line(
        "CPU",
        dur(a.cpu_ms),
        dur(b.cpu_ms),
        opt(r.cpu_ms, format::duration_delta_ms),
    ));
    out.push_str(&line(
        "peak RSS",
        mem(a.peak_rss),
        mem(b.peak_rss),
        opt(r.peak_rss, format::bytes_delta),
    ));
    out.push_str(&line(
        "RSS Δ",
        opt(a.rss_delta, format::bytes_delta),
        opt(b.rss_delta, format::bytes_delta),
        opt(r.rss_delta, format::bytes_delta),
    ));
    if a.gpu_mem_peak.is_some() || b.gpu_mem_peak.is_some() {
        out.push_str(&line(
            "GPU mem",
            mem(a.gpu_mem_peak),
            mem(b.gpu_mem_peak),
            opt(r.gpu_mem_peak, format::bytes_delta),
        ));
    }
    if a.gpu_util_max.is_some() || b.gpu_util_max.is_some() {
        let pct = |v: Option<f64>| opt(v, |u| format!("{u:.0}%"));
        out.push_str(&line(
            "GPU util",
            pct(a.gpu_util_max),
            pct(b.gpu_util_max),
            opt(r.gpu_util_max, |u| format!("{u:+.0} pt")),
        ));
    }
    out
}

// ------------------------------------------------------------------ export

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// A Python script with `# %%` cell markers.
    Py,
    /// A notebook (nbformat 4.5) with the recorded outputs.
    Ipynb,
    /// One JSON execution a line.
    Jsonl,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long, value_enum, default_value = "py")]
    pub format: ExportFormat,
    /// The session to export (default: the one of --upto, else the latest).
    #[arg(long, value_name = "ID")]
    pub session: Option<i64>,
    /// The last execution to include (default: the session's last one).
    #[arg(long, value_name = "EXECUTION_ID")]
    pub upto: Option<i64>,
    /// Write here instead of stdout.
    #[arg(short = 'o', long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Keep silent executions (sent by frontends, not typed in cells).
    #[arg(long)]
    pub include_silent: bool,
}

pub fn export(args: ExportArgs) -> anyhow::Result<ExitCode> {
    finish(export_inner(args))
}

fn export_inner(args: ExportArgs) -> Result<ExitCode> {
    let store = args.db.open()?;
    let db = store.path().to_path_buf();
    if let Some(upto) = args.upto {
        let owner: Option<i64> = store
            .connection()
            .query_row(
                "SELECT session_id FROM executions WHERE id = ?1",
                [upto],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| HistoryError::from_store(&db, e.into()))?;
        match (owner, args.session) {
            (None, _) => return Err(HistoryError::NoSuchExecution { id: upto, db }),
            (Some(owner), Some(s)) if owner != s => {
                return Err(HistoryError::Usage(format!(
                    "execution {upto} belongs to session {owner}, not session {s}"
                )))
            }
            _ => {}
        }
    }
    let seq = store
        .export_sequence(args.session, args.upto)
        .map_err(|e| match e {
            StoreError::NoSuchSession(0) if args.session.is_none() => {
                HistoryError::Empty { db: db.clone() }
            }
            e => HistoryError::from_store(&db, e),
        })?;
    let text = match args.format {
        ExportFormat::Py => export::to_py(&seq, args.include_silent),
        ExportFormat::Ipynb => {
            let nb = export::to_ipynb(&seq, args.include_silent);
            let mut s = serde_json::to_string_pretty(&nb)
                .map_err(|e| HistoryError::from_store(&db, e.into()))?;
            s.push('\n');
            s
        }
        ExportFormat::Jsonl => export::to_jsonl(&seq, args.include_silent)
            .map_err(|e| HistoryError::from_store(&db, e.into()))?,
    };
    match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::write(path, text).map_err(|source| HistoryError::Io {
                path: path.clone(),
                source,
            })?;
        }
        _ => emit(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ stats

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long)]
    pub json: bool,
}

pub fn stats(args: StatsArgs) -> anyhow::Result<ExitCode> {
    finish(stats_inner(args))
}

fn stats_inner(args: StatsArgs) -> Result<ExitCode> {
    let store = args.db.open()?;
    let db = store.path().to_path_buf();
    let s = store
        .stats()
        .map_err(|e| HistoryError::from_store(&db, e))?;
    if args.json {
        emit_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    let now = format::now_ms();
    let row = |label: &str, value: String| format!("{:<12}{value}\n", style.bold(label));
    let mut out = String::new();
    out.push_str(&row("database", s.db_path.clone()));
    out.push_str(&row(
        "size",
        format!(
            "{}{} · schema {} · journal {}",
            format::bytes(s.db_bytes),
            if s.wal_bytes > 0 {
                format!(" + WAL {}", format::bytes(s.wal_bytes))
            } else {
                String::new()
            },
            s.schema_version,
            s.journal_mode
        ),
    ));
    out.push_str(&row("sessions", format::count(s.sessions)));
    let by_status: Vec<String> = s
        .by_status
        .iter()
        .map(|(k, v)| style.status(k, &format!("{k} {}", format::count(*v))))
        .collect();
    out.push_str(&row(
        "executions",
        if by_status.is_empty() {
            format::count(s.executions)
        } else {
            format!(
                "{} ({})",
                format::count(s.executions),
                by_status.join(" · ")
            )
        },
    ));
    out.push_str(&row("notebooks", format::count(s.notebooks)));
    out.push_str(&row(
        "outputs",
        format!(
            "{} · {} distinct payloads, {}",
            format::count(s.outputs),
            format::count(s.blobs),
            format::bytes(s.blob_bytes.max(0) as u64)
        ),
    ));
    out.push_str(&row("samples", format::count(s.samples)));
    let when = |t: Option<i64>| {
        opt(t, |t| {
            format!("{} ({})", format::local_time(t), format::relative(t, now))
        })
    };
    out.push_str(&row("oldest", when(s.oldest_ms)));
    out.push_str(&row("newest", when(s.newest_ms)));
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ prune

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true)))]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Remove executions that started longer ago than this (30d, 12h, 2w).
    #[arg(long, value_name = "DURATION", group = "what", value_parser = format::parse_duration)]
    pub older_than: Option<i64>,
    /// Then remove the oldest executions until the database is at most this big (500M, 2G).
    #[arg(long, value_name = "SIZE", group = "what", value_parser = format::parse_size)]
    pub max_size: Option<u64>,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long)]
    pub yes: bool,
    /// Show what would be removed, and remove nothing.
    #[arg(long, conflicts_with = "yes")]
    pub dry_run: bool,
    /// Print the plan (and the result) as JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn prune(args: PruneArgs) -> anyhow::Result<ExitCode> {
    finish(prune_inner(args))
}

/// What a prune would remove, counted before anything is deleted.
#[derive(Debug, serde::Serialize)]
struct PrunePlan {
    db_path: PathBuf,
    db_bytes: u64,
    cutoff_ms: Option<i64>,
    /// Executions that started before the cutoff.
    older: i64,
    oldest_ms: Option<i64>,
    max_size: Option<u64>,
    /// Executions in all.
    total: i64,
    /// Of those after the cutoff, how many the size cap would take, roughly
    /// (in proportion to the bytes over the cap; the prune itself measures).
    for_size_estimate: i64,
}

fn prune_inner(args: PruneArgs) -> Result<ExitCode> {
    // Open read-only first: the read-write open would create a missing file.
    let ro = args.db.open()?;
    let db = ro.path().to_path_buf();
    let sql = |e: rusqlite::Error| HistoryError::from_store(&db, e.into());
    let cutoff = args.older_than.map(|d| format::now_ms() - d);
    let (total, older, oldest_ms): (i64, i64, Option<i64>) = ro
        .connection()
        .query_row(
            "SELECT count(*), count(CASE WHEN started_ms < ?1 THEN 1 END), min(started_ms)
               FROM executions",
            [cutoff.unwrap_or(i64::MIN)],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .map_err(sql)?;
    let (main, wal) = ro
        .size_bytes()
        .map_err(|e| HistoryError::from_store(&db, e))?;
    let db_bytes = main + wal;
    let older = if cutoff.is_some() { older } else { 0 };
    let for_size_estimate = match args.max_size {
        Some(max) if db_bytes > max && total > 0 => {
            let left = total - older;
            let after_age = db_bytes as f64 * left as f64 / total as f64;
            if after_age > max as f64 {
                ((after_age - max as f64) / after_age * left as f64).ceil() as i64
            } else {
                0
            }
        }
        _ => 0,
    };
    drop(ro);
    let plan = PrunePlan {
        db_path: db.clone(),
        db_bytes,
        cutoff_ms: cutoff,
        older,
        oldest_ms,
        max_size: args.max_size,
        total,
        for_size_estimate,
    };
    let style = Style::detect();
    let mut text = String::new();
    text.push_str(&format!(
        "{}: {} executions, {}\n",
        db.display(),
        format::count(total),
        format::bytes(db_bytes)
    ));
    if let Some(c) = cutoff {
        text.push_str(&format!(
            "  started before {}: {} execution(s) would go\n",
            format::local_time(c),
            format::count(older)
        ));
    }
    if let Some(max) = args.max_size {
        text.push_str(&format!(
            "  to fit in {}: {}\n",
            format::bytes(max),
            if for_size_estimate > 0 {
                format!(
                    "about {} more of the oldest would go",
                    format::count(for_size_estimate)
                )
            } else {
                "nothing more to remove (payloads nothing refers to still go)".into()
            }
        ));
    }
    let doomed = older + for_size_estimate;
    if args.dry_run {
        if args.json {
            emit_json(&json!({"dry_run": true, "plan": plan}))?;
        } else {
            emit(&text)?;
            emit("Dry run: nothing removed.\n")?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if doomed > 0 && !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(HistoryError::NeedsConfirmation);
        }
        eprint!("{text}");
        eprint!(
            "{} ",
            style.bold(&format!(
                "Remove {} execution(s) for good? [y/N]",
                format::count(doomed)
            ))
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|source| HistoryError::Io {
                path: PathBuf::from("<stdin>"),
                source,
            })?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("Nothing removed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut store = Store::open(&db).map_err(|e| HistoryError::from_store(&db, e))?;
    let report = store
        .prune(&PruneOptions {
            older_than_ms: cutoff,
            max_size: args.max_size,
            no_vacuum: false,
        })
        .map_err(|e| HistoryError::from_store(&db, e))?;
    if args.json {
        emit_json(&json!({"dry_run": false, "plan": plan, "report": report}))?;
    } else {
        emit(&format!(
            "Removed {} execution(s), {} session(s), {} payload(s); {} → {}.\n",
            format::count(report.executions_removed),
            format::count(report.sessions_removed),
            format::count(report.blobs_removed),
            format::bytes(report.bytes_before),
            format::bytes(report.bytes_after)
        ))?;
    }
    Ok(ExitCode::SUCCESS)
}

// ------------------------------------------------------------------ doctor

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long)]
    pub json: bool,
}

pub fn doctor(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    finish(doctor_inner(args))
}

/// Environment variables that change what the kernel records or where.
const RECORDING_VARS: [&str; 7] = [
    "JUPYTER_LINEAGE",
    "JUPYTER_LINEAGE_DIR",
    "JUPYTER_LINEAGE_LOG",
    "JUPYTER_LINEAGE_SAMPLE_MS",
    "JUPYTER_LINEAGE_MAX_OUTPUT",
    "JPY_SESSION_NAME",
    "NO_COLOR",
];

fn doctor_inner(args: DoctorArgs) -> Result<ExitCode> {
    use std::os::unix::fs::PermissionsExt;
    let (path, how) = args.db.locate();
    let loc = project::from_env();
    let meta = std::fs::metadata(&path).ok();
    let mut database = json!({
        "path": path,
        "found_by": how,
        "project_root": loc.root,
        "exists": meta.is_some(),
        "filesystem": crate::store::fs_kind(&path),
    });
    if let Some(m) = &meta {
        database["bytes"] = json!(m.len());
        database["mode"] = json!(format!("{:04o}", m.permissions().mode() & 0o7777));
        match Store::open_readonly(&path) {
            Ok(store) => {
                let version: Option<u32> = store
                    .connection()
                    .query_row("PRAGMA user_version", [], |r| r.get(0))
                    .ok();
                database["schema_version"] = json!(version);
                database["journal_mode"] = json!(store.journal_mode().ok());
                database["executions"] = json!(store
                    .connection()
                    .query_row("SELECT count(*) FROM executions", [], |r| r
                        .get::<_, i64>(0))
                    .ok());
            }
            Err(e) => database["error"] = json!(e.to_string()),
        }
    }
    database["schema_supported"] = json!(crate::store::SCHEMA_VERSION);

    let dirs = crate::install::data_dirs();
    let (found, problems) = crate::install::find_all(&dirs);
    let kernelspecs: Vec<Value> = found
        .values()
        .filter_map(|k| {
            let wraps = k.wraps()?;
            Some(json!({
                "name": k.name,
                "display_name": k.display_name(),
                "path": k.dir,
                "wraps": wraps,
                "wrapped_installed": found.contains_key(&wraps.to_lowercase()),
                "argv": k.spec.get("argv"),
            }))
        })
        .collect();
    let nvml = match crate::sampler::nvml_status() {
        Ok(s) => json!({"available": true, "detail": s}),
        Err(why) => json!({"available": false, "detail": format!("not available: {why}")}),
    };
    let env: serde_json::Map<String, Value> = RECORDING_VARS
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), json!(v))))
        .collect();
    let recording = crate::recorder::recording_enabled_from_env();
    let mode = crate::provisioner::mode();
    let report = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "database": database,
        "kernelspecs": kernelspecs,
        "kernelspec_problems": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "jupyter_data_dirs": dirs,
        "nvml": nvml,
        "recording_enabled": recording,
        "recording_mode": mode.to_json(),
        "env": env,
    });
    if args.json {
        emit_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect();
    let mut out = String::new();
    let head = |t: &str| format!("{}\n", style.bold(t));
    let row = |label: &str, value: String| format!("  {label:<14}{value}\n");
    let ok = |s: &str| style.green(s);
    let bad = |s: &str| style.yellow(s);
    out.push_str(&format!(
        "jupyter-lineage {}\n\n",
        env!("CARGO_PKG_VERSION")
    ));
    out.push_str(&head("database"));
    out.push_str(&row("path", path.display().to_string()));
    out.push_str(&row("found by", how));
    match &meta {
        Some(m) => {
            out.push_str(&row(
                "exists",
                ok(&format!(
                    "yes, {}, mode {}",
                    format::bytes(m.len()),
                    database["mode"].as_str().unwrap_or("?")
                )),
            ));
            if let Some(e) = database["error"].as_str() {
                out.push_str(&row("error", style.red(e)));
            } else {
                out.push_str(&row(
                    "schema",
                    format!(
                        "version {} (this build knows {})",
                        database["schema_version"],
                        crate::store::SCHEMA_VERSION
                    ),
                ));
                out.push_str(&row(
                    "journal mode",
                    database["journal_mode"].as_str().unwrap_or("?").to_string(),
                ));
                out.push_str(&row("executions", database["executions"].to_string()));
            }
        }
        None => out.push_str(&row(
            "exists",
            bad("no (a lineage kernel creates it on its first run)"),
        )),
    }
    out.push_str(&row(
        "filesystem",
        match crate::store::fs_kind(&path) {
            crate::store::FsKind::Local => "local".into(),
            crate::store::FsKind::Network => {
                bad("network (NFS/SMB/FUSE): rollback journal instead of WAL")
            }
        },
    ));
    out.push('\n');
    out.push_str(&head("lineage kernelspecs"));
    if kernelspecs.is_empty() {
        out.push_str(&row(
            "",
            bad("none installed: run `jupyter lineage install`"),
        ));
    }
    for k in &kernelspecs {
        let wraps = k["wraps"].as_str().unwrap_or("?");
        let state = if k["wrapped_installed"].as_bool() == Some(true) {
            ok(&format!("wraps {wraps}"))
        } else {
            bad(&format!("wraps {wraps}, which is not installed"))
        };
        out.push_str(&row(
            k["name"].as_str().unwrap_or("?"),
            format!("{state}  {}", k["path"].as_str().unwrap_or("")),
        ));
    }
    for p in &problems {
        out.push_str(&row("problem", bad(&p.to_string())));
    }
    out.push('\n');
    out.push_str(&head("GPU"));
    let detail = report["nvml"]["detail"].as_str().unwrap_or("").to_string();
    out.push_str(&row(
        "NVML",
        if report["nvml"]["available"].as_bool() == Some(true) {
            ok(&detail)
        } else {
            bad(&detail)
        },
    ));
    out.push('\n');
    out.push_str(&head("recording"));
    out.push_str(&row(
        "enabled",
        if recording {
            ok("yes")
        } else {
            bad("no (JUPYTER_LINEAGE is off)")
        },
    ));
    out.push_str(&row("kernels", mode.line()));
    if env.is_empty() {
        out.push_str(&row("environment", style.dim("no lineage variables set")));
    }
    for (k, v) in &env {
        out.push_str(&row(k, v.as_str().unwrap_or("").to_string()));
    }
    emit(&out)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: i64, status: &str, code: Option<&str>) -> ExecutionSummary {
        ExecutionSummary {
            id,
            session_id: 1,
            msg_id: format!("m{id}"),
            cell_id: Some("0123456789abcdef".into()),
            notebook_path: Some("/home/u/proj/analysis.ipynb".into()),
            execution_count: Some(id),
            code_preview: code.map(str::to_string),
            status: status.into(),
            started_ms: 0,
            ended_ms: Some(1500),
            wall_ms: Some(1500.0),
            cpu_ms: Some(12.0),
            rss_start: Some(1_000_000),
            peak_rss: Some(52_400_000),
            rss_delta: Some(100),
            gpu_mem_peak: None,
            gpu_util_max: None,
            error_name: None,
            error_value: None,
            output_count: 0,
            truncated: false,
            silent: false,
            prev_execution_id: None,
        }
    }

    #[test]
    fn log_table_columns() {
        let items = vec![
            summary(12, "error", Some("\n1/0\nmore")),
            summary(3, "skipped", None),
        ];
        let t = log_table(&items, None, Style::PLAIN);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(lines[0].starts_with("ID  WHEN"), "{t}");
        assert!(lines[0].ends_with("PEAK MEM  CODE"), "{t}");
        assert!(lines[1].starts_with("12  "), "{t}");
        assert!(
            lines[1].contains("  analysis.ipynb  01234567  12  error  "),
            "{t}"
        );
        assert!(lines[1].contains("1.50 s"), "{t}");
        assert!(lines[1].contains("12 ms"), "{t}");
        assert!(lines[1].contains("52.4 MB"), "{t}");
        assert!(lines[1].ends_with("  1/0"), "{t}");
        assert!(lines[2].starts_with(" 3  "), "{t}");
        assert!(lines[2].ends_with("(skipped: code not recorded)"), "{t}");
        // No escape codes unless colour is on; with it, the status is coloured.
        assert!(!t.contains('\x1b'));
        let t = log_table(&items, None, Style { color: true });
        assert!(t.contains("\x1b[31merror  \x1b[0m"), "{t:?}");
    }

    #[test]
    fn outputs_as_text() {
        let style = Style::PLAIN;
        let stream = json!({"output_type": "stream", "name": "stdout", "text": "hi\n"});
        assert_eq!(output_text(&stream, style), "hi\n");
        let err = json!({"output_type": "error", "ename": "E", "evalue": "v",
                         "traceback": ["\u{1b}[31mE\u{1b}[0m: v"]});
        assert_eq!(output_text(&err, style), "E: v\n");
        let img = json!({"output_type": "display_data", "metadata": {},
                         "data": {"text/plain": "<Figure>", "image/png": "aGVsbG8="}});
        assert_eq!(output_text(&img, style), "<Figure>\n[image/png 5 B]\n");
    }

    #[test]
    fn short_names() {
        assert_eq!(short_notebook(Some("/a/b/c.ipynb")), "c.ipynb");
        assert_eq!(short_notebook(None), "-");
        assert_eq!(short_cell(Some("0123456789")), "01234567");
        assert_eq!(short_cell(None), "-");
    }

    #[test]
    fn not_found_errors_exit_1_and_usage_errors_exit_2() {
        let db = PathBuf::from("/x/lineage.sqlite");
        assert_eq!(
            HistoryError::from_store(&db, StoreError::NoSuchExecution(9)).exit_code(),
            1
        );
        assert_eq!(HistoryError::Empty { db: db.clone() }.exit_code(), 1);
        assert_eq!(HistoryError::Usage("x".into()).exit_code(), 2);
        assert_eq!(HistoryError::NeedsConfirmation.exit_code(), 2);
        let msg = HistoryError::NoDatabase {
            path: db,
            how: "given with --db".into(),
        }
        .to_string();
        assert!(msg.contains("/x/lineage.sqlite"), "{msg}");
    }
}
