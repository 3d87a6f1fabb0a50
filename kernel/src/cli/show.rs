//! `show`: one execution in full: code, outputs, resources, session.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;
use crate::store::{ExecutionDetail, SessionSummary};

use super::db::DbArg;
use super::format::{self, Style};
use super::view::{opt, output_text, section};
use super::{emit, emit_json, CliError, Result};

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

pub fn run(args: ShowArgs, config: &Config) -> Result<ExitCode> {
    let store = args.db.open(config)?;
    let db = store.path().to_path_buf();
    let e = store
        .get_execution(args.id)
        .map_err(|e| CliError::from_store(&db, e))?;
    let session = store
        .session(e.summary.session_id)
        .map_err(|e| CliError::from_store(&db, e))?;
    if args.json {
        let mut v = serde_json::to_value(&e).map_err(|e| CliError::from_store(&db, e.into()))?;
        v["session"] =
            serde_json::to_value(&session).map_err(|e| CliError::from_store(&db, e.into()))?;
        emit_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect(config);
    emit(&render_show(&e, &session, style, format::now_ms()))?;
    Ok(ExitCode::SUCCESS)
}

fn render_show(e: &ExecutionDetail, session: &SessionSummary, style: Style, now: i64) -> String {
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
