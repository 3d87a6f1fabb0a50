//! `diff`: two executions compared: code, outputs, resources.

use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::config::Config;
use crate::store::{ExecutionDiff, ExecutionSummary};

use super::db::DbArg;
use super::format::{self, Style};
use super::view::{opt, section, short_cell, short_notebook};
use super::{emit, emit_json, CliError, Result};

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

pub fn run(args: DiffArgs, config: &Config) -> Result<ExitCode> {
    let store = args.db.open(config)?;
    let db = store.path().to_path_buf();
    let d = store
        .diff(args.a, args.b)
        .map_err(|e| CliError::from_store(&db, e))?;
    if args.json {
        emit_json(&d)?;
    } else {
        emit(&render_diff(&d, Style::detect(config)))?;
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

/// The diff for a reader: code, then the outputs paired by kind and content
/// (each compared by MIME type), then how the resources changed.
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
        let at = match (o.position_a, o.position_b) {
            (Some(a), Some(b)) if a == b => format!("[{b}]"),
            (Some(a), Some(b)) => format!("[{a} → {b}]"),
            (Some(a), None) => format!("[{a} in a]"),
            (None, Some(b)) => format!("[{b}]"),
            (None, None) => format!("[{}]", o.position),
        };
        out.push_str(&format!("{at} {kind}: {status}\n"));
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
