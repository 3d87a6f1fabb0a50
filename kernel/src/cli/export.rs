//! `export`: a session's executions, in the order they ran, as a Python
//! script, a notebook or JSON lines, so that a recorded output can be
//! reproduced by running the same code in the same order.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use serde_json::{json, Value};

use crate::config::Config;
use crate::store::{ExecutionDetail, ExportSequence, StoreError};

use super::db::DbArg;
use super::format::local_time;
use super::{emit, CliError, Result};

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
    /// `--format py`: run the cells that raised or were interrupted too
    /// (inside try, so the script goes on); by default they are comments.
    #[arg(long)]
    pub include_failed: bool,
}

pub fn run(args: ExportArgs, config: &Config) -> Result<ExitCode> {
    let store = args.db.open(config)?;
    let db = store.path().to_path_buf();
    if let Some(upto) = args.upto {
        let owner = store
            .session_of(upto)
            .map_err(|e| CliError::from_store(&db, e))?;
        match (owner, args.session) {
            (None, _) => return Err(CliError::NoSuchExecution { id: upto, db }),
            (Some(owner), Some(s)) if owner != s => {
                return Err(CliError::Usage(format!(
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
                CliError::Empty { db: db.clone() }
            }
            e => CliError::from_store(&db, e),
        })?;
    let text = match args.format {
        ExportFormat::Py => to_py(&seq, args.include_silent, args.include_failed),
        ExportFormat::Ipynb => {
            let nb = to_ipynb(&seq, args.include_silent);
            let mut s = serde_json::to_string_pretty(&nb)
                .map_err(|e| CliError::from_store(&db, e.into()))?;
            s.push('\n');
            s
        }
        ExportFormat::Jsonl => {
            to_jsonl(&seq, args.include_silent).map_err(|e| CliError::from_store(&db, e.into()))?
        }
    };
    match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            std::fs::write(path, text).map_err(|source| CliError::Io {
                path: path.clone(),
                source,
            })?;
        }
        _ => emit(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The executions to write: silent ones (frontend plumbing such as variable
/// inspectors) only when asked for.
fn selected(seq: &ExportSequence, include_silent: bool) -> impl Iterator<Item = &ExecutionDetail> {
    seq.executions
        .iter()
        .filter(move |e| include_silent || !e.summary.silent)
}

fn silent_left_out(seq: &ExportSequence, include_silent: bool) -> usize {
    if include_silent {
        0
    } else {
        seq.executions.iter().filter(|e| e.summary.silent).count()
    }
}

/// Where the sequence stops: the last execution's id.
fn last_id(seq: &ExportSequence) -> Option<i64> {
    seq.executions.last().map(|e| e.summary.id)
}

/// A line starting an IPython magic or shell escape (`%time`, `%%bash`,
/// `!pip …`), which plain Python cannot run.
fn is_magic(line: &str) -> bool {
    line.starts_with('%') || line.starts_with('!')
}

/// The executions as a Python script with `# %%` cell markers (the
/// percent format Jupytext, VS Code and Spyder read). IPython magics and
/// shell escapes at the start of a line are commented out; a cell magic
/// comments out its whole cell. Executions that raised or were interrupted
/// are comments (re-running an interrupted `time.sleep(60)` would wait the
/// full minute); with `include_failed` they run inside `try`/`exec`, so
/// what they did before raising still happens and the script goes on.
pub fn to_py(seq: &ExportSequence, include_silent: bool, include_failed: bool) -> String {
    let s = &seq.session;
    let mut out = String::new();
    out.push_str(
        "# Exported by jupyter-lineage: the code this kernel session executed, in order.\n",
    );
    out.push_str(&format!(
        "# Session {} ({}), kernel {}, started {}.\n",
        s.id,
        s.uuid,
        s.kernelspec.as_deref().unwrap_or("unknown"),
        local_time(s.started_ms)
    ));
    if let Some(nb) = &s.notebook_path {
        out.push_str(&format!("# Notebook: {nb}\n"));
    }
    if let Some(id) = last_id(seq) {
        out.push_str(&format!("# Up to execution {id}.\n"));
    }
    let n_failed = selected(seq, include_silent)
        .filter(|e| failed(e) && e.code.is_some())
        .count();
    if n_failed > 0 && include_failed {
        out.push_str(&format!(
            "# {n_failed} execution(s) that raised or were interrupted run inside try, \
             so the script goes on.\n"
        ));
    } else if n_failed > 0 {
        out.push_str(&format!(
            "# {n_failed} execution(s) that raised or were interrupted are kept as comments; \
             --include-failed runs them.\n"
        ));
    }
    let silent = silent_left_out(seq, include_silent);
    if silent > 0 {
        out.push_str(&format!(
            "# {silent} silent execution(s) (sent by the frontend, not typed in a cell) left out; \
             --include-silent keeps them.\n"
        ));
    }
    for e in selected(seq, include_silent) {
        let sum = &e.summary;
        out.push_str(&format!(
            "\n# %% [execution {}, cell {}]\n",
            sum.id,
            sum.cell_id.as_deref().unwrap_or("-")
        ));
        let Some(code) = &e.code else {
            out.push_str(&format!(
                "# lineage: execution {} was skipped (`# lineage: skip`): its code was not recorded.\n",
                sum.id
            ));
            continue;
        };
        match sum.status.as_str() {
            "aborted" => {
                out.push_str(
                    "# lineage: aborted by the kernel before it ran; kept as a comment.\n",
                );
                out.push_str(&comment_out(code));
                continue;
            }
            "running" | "died" => {
                out.push_str(&format!(
                    "# lineage: status {:?} in the record: it may not have finished.\n",
                    sum.status
                ));
            }
            _ => {}
        }
        let runnable = python_only(code);
        if failed(e) {
            let what = match (&sum.error_name, &sum.error_value) {
                (Some(n), Some(v)) => format!("{n}: {v}"),
                (Some(n), None) => n.clone(),
                _ => sum.status.clone(),
            };
            if !include_failed {
                let how = if sum.status == "interrupted" {
                    "was interrupted".to_string()
                } else {
                    format!("raised {}", first_line_of(&what))
                };
                out.push_str(&format!(
                    "# lineage: {how} in the recorded run; kept as a comment \
                     (--include-failed runs it).\n"
                ));
                out.push_str(&comment_out(code));
                continue;
            }
            out.push_str(&format!(
                "# lineage: raised {} in the recorded run; run so that what it did first still happens.\n",
                first_line_of(&what)
            ));
            out.push_str("try:\n");
            out.push_str(&format!(
                "    exec(compile({}, \"<execution {}>\", \"exec\"))\n",
                py_string(&runnable),
                sum.id
            ));
            out.push_str("except BaseException as _lineage_error:  # noqa: BLE001\n");
            out.push_str(&format!(
                "    __import__(\"sys\").stderr.write(f\"execution {} raised {{_lineage_error!r}}\\n\")\n",
                sum.id
            ));
        } else {
            out.push_str(&runnable);
            if !runnable.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// An execution that raised or was interrupted.
fn failed(e: &ExecutionDetail) -> bool {
    matches!(e.summary.status.as_str(), "error" | "interrupted")
}

fn first_line_of(s: &str) -> &str {
    s.lines().next().unwrap_or("")
}

fn comment_out(code: &str) -> String {
    code.lines().map(|l| format!("# {l}\n")).collect()
}

/// Code with IPython-only lines commented out.
fn python_only(code: &str) -> String {
    if code.trim_start().starts_with("%%") {
        return format!(
            "# lineage: an IPython cell magic; plain Python cannot run it.\n{}",
            comment_out(code)
        );
    }
    let mut out = String::with_capacity(code.len());
    for line in code.split_inclusive('\n') {
        if is_magic(line) {
            out.push_str("# ");
        }
        out.push_str(line);
    }
    out
}

/// A Python string literal holding `s` exactly (JSON string escapes are
/// valid Python escapes, and JSON escapes every control character).
fn py_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| "''".into())
}

/// The executions as an nbformat 4.5 notebook: one code cell per execution
/// (a cell re-run appears once per run), with the recorded outputs and
/// execution counts; a skipped execution becomes a markdown note.
pub fn to_ipynb(seq: &ExportSequence, include_silent: bool) -> Value {
    let s = &seq.session;
    let cells: Vec<Value> = selected(seq, include_silent)
        .map(|e| {
            let sum = &e.summary;
            let lineage = json!({
                "execution_id": sum.id,
                "cell_id": sum.cell_id,
                "status": sum.status,
                "started_ms": sum.started_ms,
                "wall_ms": sum.wall_ms,
            });
            // Cell ids must be unique in a notebook and a re-run cell appears
            // more than once, so the execution id names the cell.
            let id = format!("lineage-{}", sum.id);
            match &e.code {
                Some(code) => json!({
                    "id": id,
                    "cell_type": "code",
                    "metadata": {"jupyter_lineage": lineage},
                    "execution_count": sum.execution_count,
                    "source": code,
                    "outputs": e.outputs.iter().map(|o| o.output.clone()).collect::<Vec<_>>(),
                }),
                None => json!({
                    "id": id,
                    "cell_type": "markdown",
                    "metadata": {"jupyter_lineage": lineage},
                    "source": format!(
                        "*Execution {} was skipped (`# lineage: skip`): its code was not recorded.*",
                        sum.id
                    ),
                }),
            }
        })
        .collect();
    let mut metadata = serde_json::Map::new();
    if let Some(k) = &s.kernelspec {
        metadata.insert(
            "kernelspec".into(),
            json!({"name": k, "display_name": k, "language": s.language}),
        );
    }
    let language_info = match (&s.language_info, &s.language) {
        (Some(li), _) if li.get("name").is_some() => Some(li.clone()),
        (_, Some(lang)) => Some(json!({"name": lang})),
        _ => None,
    };
    if let Some(li) = language_info {
        metadata.insert("language_info".into(), li);
    }
    metadata.insert(
        "jupyter_lineage".into(),
        json!({
            "session_id": s.id,
            "session_uuid": s.uuid,
            "notebook_path": s.notebook_path,
            "up_to_execution": last_id(seq),
            "silent_left_out": silent_left_out(seq, include_silent),
        }),
    );
    json!({
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": metadata,
        "cells": cells,
    })
}

/// One execution per line, in full (code, outputs, resources), as JSON.
pub fn to_jsonl(
    seq: &ExportSequence,
    include_silent: bool,
) -> std::result::Result<String, serde_json::Error> {
    let mut out = String::new();
    for e in selected(seq, include_silent) {
        out.push_str(&serde_json::to_string(e)?);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn magics_are_commented_out() {
        assert_eq!(
            python_only("%matplotlib inline\nx = 1\n!pip list\n  y = '%d' % x"),
            "# %matplotlib inline\nx = 1\n# !pip list\n  y = '%d' % x"
        );
        assert!(python_only("%%bash\necho hi\n").contains("# %%bash\n# echo hi\n"));
    }

    #[test]
    fn python_string_literals_round_trip() {
        assert_eq!(py_string("a\n\"b\"\t\\"), r#""a\n\"b\"\t\\""#);
        assert_eq!(py_string("é"), "\"é\"");
    }
}
