//! Command-line interface: `jupyter-lineage <command>`, also reachable as
//! `jupyter lineage <command>` (Jupyter runs `jupyter-<name>` from PATH).
//!
//! One file per command. The report commands (`log`, `show`, `diff`,
//! `export`, `stats`, `prune`) read the project's database directly (no
//! kernel needed), found the way the kernel finds it or named with `--db`
//! ([`db`]); `doctor` checks the whole installation.
//!
//! Exit codes scripts can trust, decided once in [`run`]: 0 done; 1 not
//! found (no database, unknown execution or session id, no such notebook or
//! cell); 2 bad arguments, a refused prune (clap uses 2 for usage errors
//! too), and any other failure. `kernel` exits as the real kernel did.
//!
//! Sizes are printed in binary units (KiB, MiB, GiB: powers of 1024), the
//! units the JupyterLab panel uses.

mod db;
mod diff;
mod doctor;
mod export;
pub mod format;
mod install;
mod kernel;
mod list;
mod log;
mod prune;
mod show;
mod stats;
mod uninstall;
mod view;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::store::StoreError;

pub use log::log_table;

#[derive(Debug, Parser)]
#[command(
    name = "jupyter-lineage",
    version,
    about = "Every cell you ever ran, with what it printed and what it cost.",
    after_help = "Sizes are in binary units: 1 KiB = 1024 bytes, 1 MiB = 1024 KiB, 1 GiB = 1024 MiB."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a kernel: what a lineage kernelspec's argv calls.
    Kernel(kernel::KernelArgs),
    /// Install lineage kernelspecs that wrap installed kernels.
    Install(install::InstallArgs),
    /// Remove a lineage kernelspec.
    Uninstall(uninstall::UninstallArgs),
    /// List kernelspecs: which are lineage ones and what they wrap.
    List(list::ListArgs),
    /// Recorded executions, newest first.
    Log(log::LogArgs),
    /// One execution in full: code, outputs, resources, session.
    Show(show::ShowArgs),
    /// Compare two executions: code, outputs paired by kind and content, resources.
    Diff(diff::DiffArgs),
    /// The code a session ran, in order, as a script, notebook or JSON lines.
    Export(export::ExportArgs),
    /// What the database holds.
    Stats(stats::StatsArgs),
    /// Remove old executions and unreferenced payloads, then compact.
    Prune(prune::PruneArgs),
    /// Where the database is, what is installed, the configuration, whether NVML works.
    Doctor(doctor::DoctorArgs),
    /// Record every kernel under its own name (lineage-provisioner).
    Enable(crate::provisioner::ScopeArgs),
    /// Undo `enable`.
    Disable(crate::provisioner::ScopeArgs),
    /// Point notebooks saved on a `*-lineage` kernel at the kernel it wraps.
    Unwrap(crate::unwrap::UnwrapArgs),
}

/// Runs a command with the configuration read from the environment, prints
/// a failure once and turns it into the exit code.
pub fn run(cli: Cli) -> ExitCode {
    let config = Config::from_env();
    let result = match cli.command {
        Command::Kernel(args) => kernel::run(args),
        Command::Install(args) => install::run(args),
        Command::Uninstall(args) => uninstall::run(args),
        Command::List(args) => list::run(args),
        Command::Log(args) => log::run(args, &config),
        Command::Show(args) => show::run(args, &config),
        Command::Diff(args) => diff::run(args, &config),
        Command::Export(args) => export::run(args, &config),
        Command::Stats(args) => stats::run(args, &config),
        Command::Prune(args) => prune::run(args, &config),
        Command::Doctor(args) => doctor::run(args, &config),
        Command::Enable(args) => crate::provisioner::enable_cmd(args).map_err(CliError::from),
        Command::Disable(args) => crate::provisioner::disable_cmd(args).map_err(CliError::from),
        Command::Unwrap(args) => crate::unwrap::unwrap_cmd(args).map_err(CliError::from),
    };
    match result {
        Ok(code) => code,
        // A closed pipe (`jupyter lineage log | head`) is not an error.
        Err(CliError::Stdout(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            let code = e.exit_code();
            eprintln!("jupyter-lineage: {:#}", anyhow::Error::from(e));
            ExitCode::from(code)
        }
    }
}

/// Why a command failed; [`CliError::exit_code`] says how the process exits.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
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
    /// `kernel`, `install`, `uninstall`, `list`: their own errors, with context.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl CliError {
    /// The process exit code for this failure (see the module docs).
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::NoDatabase { .. }
            | CliError::NoSuchExecution { .. }
            | CliError::NoSuchSession { .. }
            | CliError::Empty { .. }
            | CliError::NoMatch { .. } => 1,
            _ => 2,
        }
    }

    /// A store error, with "not found" ones made specific to `db`.
    fn from_store(db: &Path, e: StoreError) -> CliError {
        let db = db.to_path_buf();
        match e {
            StoreError::NoSuchExecution(id) => CliError::NoSuchExecution { id, db },
            StoreError::NoSuchSession(id) => CliError::NoSuchSession { id, db },
            StoreError::Missing { path } => CliError::NoDatabase {
                path,
                how: "given with --db".into(),
            },
            source => CliError::Store { path: db, source },
        }
    }
}

type Result<T> = std::result::Result<T, CliError>;

/// Writes to stdout; a closed pipe surfaces as [`CliError::Stdout`].
fn emit(text: &str) -> Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| out.flush())
        .map_err(CliError::Stdout)
}

fn emit_json(v: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(v).map_err(|e| CliError::Store {
        path: PathBuf::from("<json>"),
        source: e.into(),
    })?;
    text.push('\n');
    emit(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_errors_exit_1_and_usage_errors_exit_2() {
        let db = PathBuf::from("/x/lineage.sqlite");
        assert_eq!(
            CliError::from_store(&db, StoreError::NoSuchExecution(9)).exit_code(),
            1
        );
        assert_eq!(CliError::Empty { db: db.clone() }.exit_code(), 1);
        assert_eq!(CliError::Usage("x".into()).exit_code(), 2);
        assert_eq!(CliError::NeedsConfirmation.exit_code(), 2);
        assert_eq!(CliError::Other(anyhow::anyhow!("x")).exit_code(), 2);
        let msg = CliError::NoDatabase {
            path: db,
            how: "given with --db".into(),
        }
        .to_string();
        assert!(msg.contains("/x/lineage.sqlite"), "{msg}");
    }

    #[test]
    fn help_says_sizes_are_binary() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("1 MiB = 1024 KiB"), "{help}");
    }
}
