//! `log`: recorded executions, newest first, as a table or JSON pages.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::config::Config;
use crate::store::{ExecutionSummary, HistoryFilter};

use super::db::{resolve_cell, resolve_notebook, DbArg};
use super::format::{self, Align, Style};
use super::view::{opt, short_cell, short_notebook};
use super::{emit, emit_json, CliError, Result};

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
    /// Full-text search over code and text outputs: every word must match the start of a word (`rang` finds `range`).
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

pub fn run(args: LogArgs, config: &Config) -> Result<ExitCode> {
    let store = args.db.open(config)?;
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
        return Err(CliError::Usage("--search needs a word to look for".into()));
    }
    let want = if args.all { u64::MAX } else { args.limit };
    let mut items: Vec<ExecutionSummary> = Vec::new();
    let mut next_cursor;
    let mut search_terms;
    loop {
        let room = (want - items.len() as u64).min(1000) as usize;
        filter.limit = Some(room);
        let page = store
            .history(&filter)
            .map_err(|e| CliError::from_store(&db, e))?;
        items.extend(page.items);
        search_terms = page.search_terms;
        next_cursor = page.next_cursor;
        match next_cursor {
            Some(c) if (items.len() as u64) < want => filter.before = Some(c),
            _ => break,
        }
    }
    if args.json {
        let mut doc = json!({ "items": items, "next_cursor": next_cursor });
        if !search_terms.is_empty() {
            doc["search_terms"] = json!(search_terms);
        }
        emit_json(&doc)?;
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
    let style = Style::detect(config);
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
        assert!(lines[1].contains("50.0 MiB"), "{t}");
        assert!(lines[1].ends_with("  1/0"), "{t}");
        assert!(lines[2].starts_with(" 3  "), "{t}");
        assert!(lines[2].ends_with("(skipped: code not recorded)"), "{t}");
        // No escape codes unless colour is on; with it, the status is coloured.
        assert!(!t.contains('\x1b'));
        let t = log_table(&items, None, Style { color: true });
        assert!(t.contains("\x1b[31merror  \x1b[0m"), "{t:?}");
    }
}
