//! `stats`: what the database holds.

use std::process::ExitCode;

use clap::Args;

use crate::config::Config;

use super::db::DbArg;
use super::format::{self, Style};
use super::view::{db_size, opt};
use super::{emit, emit_json, CliError, Result};

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: StatsArgs, config: &Config) -> Result<ExitCode> {
    let store = args.db.open(config)?;
    let db = store.path().to_path_buf();
    let s = store.stats().map_err(|e| CliError::from_store(&db, e))?;
    if args.json {
        emit_json(&s)?;
        return Ok(ExitCode::SUCCESS);
    }
    let style = Style::detect(config);
    let now = format::now_ms();
    let row = |label: &str, value: String| format!("{:<12}{value}\n", style.bold(label));
    let mut out = String::new();
    out.push_str(&row("database", s.db_path.clone()));
    out.push_str(&row(
        "size",
        format!(
            "{} · schema {} · journal {}",
            db_size(s.db_bytes, s.wal_bytes),
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
