//! `prune`: remove old executions and unreferenced payloads, then compact.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use crate::config::Config;
use crate::store::{AgeProfile, PruneOptions, Store};

use super::db::DbArg;
use super::format::{self, Style};
use super::{emit, emit_json, CliError, Result};

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("what").required(true).multiple(true)))]
pub struct PruneArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Remove executions that started longer ago than this (30d, 12h, 2w).
    #[arg(long, value_name = "DURATION", group = "what", value_parser = format::parse_duration)]
    pub older_than: Option<i64>,
    /// Then remove the oldest executions until the database is at most this big: 500M, 2G (binary: 500M is 500 MiB; 500MB is decimal).
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

pub fn run(args: PruneArgs, config: &Config) -> Result<ExitCode> {
    // Open read-only first: the read-write open would create a missing file.
    let ro = args.db.open(config)?;
    let db = ro.path().to_path_buf();
    let cutoff = args.older_than.map(|d| format::now_ms() - d);
    let AgeProfile {
        total,
        older,
        oldest_ms,
    } = ro
        .age_profile(cutoff)
        .map_err(|e| CliError::from_store(&db, e))?;
    let (main, wal) = ro.size_bytes().map_err(|e| CliError::from_store(&db, e))?;
    let db_bytes = main + wal;
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
    let style = Style::detect(config);
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
            return Err(CliError::NeedsConfirmation);
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
            .map_err(|source| CliError::Io {
                path: PathBuf::from("<stdin>"),
                source,
            })?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            eprintln!("Nothing removed.");
            return Ok(ExitCode::SUCCESS);
        }
    }
    let mut store = Store::open(&db).map_err(|e| CliError::from_store(&db, e))?;
    let report = store
        .prune(&PruneOptions {
            older_than_ms: cutoff,
            max_size: args.max_size,
            no_vacuum: false,
        })
        .map_err(|e| CliError::from_store(&db, e))?;
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
