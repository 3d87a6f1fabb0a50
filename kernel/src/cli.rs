//! Command-line interface: `jupyter-lineage <command>`, also reachable as
//! `jupyter lineage <command>` (Jupyter runs `jupyter-<name>` from PATH).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use crate::connection_file::KernelTransport;
use crate::history;
use crate::install::{self, Destination, WrapOptions};
use crate::proxy::{self, Lineage, ProxyConfig, Recording};

#[derive(Debug, Parser)]
#[command(
    name = "jupyter-lineage",
    version,
    about = "Every cell you ever ran, with what it printed and what it cost."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run as a kernel: what a lineage kernelspec's argv calls.
    Kernel(KernelArgs),
    /// Install lineage kernelspecs that wrap installed kernels.
    Install(InstallArgs),
    /// Remove a lineage kernelspec.
    Uninstall(UninstallArgs),
    /// List kernelspecs: which are lineage ones and what they wrap.
    List(ListArgs),
    /// Recorded executions, newest first.
    Log(history::LogArgs),
    /// One execution in full: code, outputs, resources, session.
    Show(history::ShowArgs),
    /// Compare two executions: code, outputs by MIME type, resources.
    Diff(history::DiffArgs),
    /// The code a session ran, in order, as a script, notebook or JSON lines.
    Export(history::ExportArgs),
    /// What the database holds.
    Stats(history::StatsArgs),
    /// Remove old executions and unreferenced payloads, then compact.
    Prune(history::PruneArgs),
    /// Where the database is, what is installed, whether NVML works.
    Doctor(history::DoctorArgs),
    /// Record every kernel under its own name (lineage-provisioner).
    Enable(crate::provisioner::ScopeArgs),
    /// Undo `enable`.
    Disable(crate::provisioner::ScopeArgs),
    /// Point notebooks saved on a `*-lineage` kernel at the kernel it wraps.
    Unwrap(crate::unwrap::UnwrapArgs),
}

#[derive(Debug, Args)]
pub struct KernelArgs {
    /// The connection file the client wrote.
    #[arg(short = 'f', long = "connection-file")]
    pub connection_file: PathBuf,
    /// Name of the wrapped kernelspec (for the record).
    #[arg(long)]
    pub kernelspec: Option<String>,
    /// How to talk to the real kernel.
    #[arg(long, value_enum, default_value = "auto")]
    pub transport: KernelTransport,
    /// The real kernel's command line; `{connection_file}` is replaced.
    #[arg(last = true, required = true)]
    pub argv: Vec<String>,
}

#[derive(Debug, Args)]
#[group(id = "where", multiple = false)]
pub struct Where {
    /// Install for this user only (the default).
    #[arg(long, group = "where")]
    pub user: bool,
    /// Install into the active Python environment (sys.prefix).
    #[arg(long, group = "where")]
    pub sys_prefix: bool,
    /// Install under PREFIX/share/jupyter/kernels.
    #[arg(long, group = "where", value_name = "PREFIX")]
    pub prefix: Option<PathBuf>,
}

impl Where {
    fn destination(&self) -> Destination {
        match (&self.prefix, self.sys_prefix) {
            (Some(prefix), _) => Destination::Prefix(prefix.clone()),
            (None, true) => Destination::SysPrefix,
            _ => Destination::User,
        }
    }
}

#[derive(Debug, Args)]
pub struct InstallArgs {
    /// Kernelspec to wrap (repeatable). Default: python3.
    #[arg(long = "wrap", value_name = "NAME")]
    pub wrap: Vec<String>,
    /// Wrap every installed kernelspec that is not a lineage one already.
    #[arg(long, conflicts_with = "wrap")]
    pub all: bool,
    #[command(flatten)]
    pub r#where: Where,
    /// Name of the new kernelspec (default: <wrapped>-lineage). One --wrap only.
    #[arg(long)]
    pub name: Option<String>,
    /// Display name (default: "<wrapped display name> · lineage"). One --wrap only.
    #[arg(long)]
    pub display_name: Option<String>,
    /// Print what was installed as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Lineage kernelspec names to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub r#where: Where,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Kernel(args) => kernel(args),
        Command::Install(args) => install_cmd(args),
        Command::Uninstall(args) => uninstall_cmd(args),
        Command::List(args) => list_cmd(args),
        Command::Log(args) => history::log(args),
        Command::Show(args) => history::show(args),
        Command::Diff(args) => history::diff(args),
        Command::Export(args) => history::export(args),
        Command::Stats(args) => history::stats(args),
        Command::Prune(args) => history::prune(args),
        Command::Doctor(args) => history::doctor(args),
        Command::Enable(args) => crate::provisioner::enable_cmd(args),
        Command::Disable(args) => crate::provisioner::disable_cmd(args),
        Command::Unwrap(args) => crate::unwrap::unwrap_cmd(args),
    }
}

fn kernel(args: KernelArgs) -> anyhow::Result<ExitCode> {
    crate::logging::init("info");
    crate::memory::tune();
    let argv = args.argv.clone();
    let config = ProxyConfig {
        connection_file: args.connection_file,
        kernel_argv: args.argv,
        kernelspec: args.kernelspec,
        transport: args.transport,
    };
    // One thread: every relay hop is a wakeup on the same thread, which is
    // the cheapest there is. Disk and /proc work runs on threads of its own.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let exit = runtime.block_on(proxy::run(config.clone(), |pid, refused| {
        Box::new(Lineage::start(&config, &argv, pid, refused)) as Box<dyn Recording>
    }))?;
    // Dropping the runtime would wait for nothing we need; relay tasks end
    // with their sockets.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::from(exit.as_exit_code()))
}

fn install_cmd(args: InstallArgs) -> anyhow::Result<ExitCode> {
    let dirs = install::data_dirs();
    let wrapped: Vec<install::Kernelspec> = if args.all {
        let (found, problems) = install::find_all(&dirs);
        for p in problems {
            eprintln!("warning: {p}");
        }
        found
            .into_values()
            .filter(|k| k.wraps().is_none() && !k.name.ends_with(install::NAME_SUFFIX))
            .collect()
    } else {
        let names = if args.wrap.is_empty() {
            vec!["python3".to_string()]
        } else {
            args.wrap.clone()
        };
        names
            .iter()
            .map(|n| install::find(n, &dirs))
            .collect::<Result<_, _>>()?
    };
    if wrapped.is_empty() {
        bail!("no kernelspec to wrap was found");
    }
    if wrapped.len() > 1 && (args.name.is_some() || args.display_name.is_some()) {
        bail!("--name and --display-name go with a single --wrap");
    }
    let kernels = install::destination_dir(&args.r#where.destination())?;
    let options = WrapOptions {
        name: args.name.clone(),
        display_name: args.display_name.clone(),
        launcher: install::own_launcher()?,
    };
    let mut installed = Vec::new();
    for spec in &wrapped {
        let dir = install::install(spec, &options, &kernels)?;
        if !args.json {
            println!(
                "Installed kernelspec {} wrapping {} in {}",
                dir.file_name().unwrap_or_default().to_string_lossy(),
                spec.name,
                dir.display()
            );
        }
        installed.push(serde_json::json!({
            "name": dir.file_name().map(|n| n.to_string_lossy().into_owned()),
            "wraps": spec.name,
            "path": dir,
        }));
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&installed)?);
    }
    Ok(ExitCode::SUCCESS)
}

fn uninstall_cmd(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    let explicit = args.r#where.user || args.r#where.sys_prefix || args.r#where.prefix.is_some();
    for name in &args.names {
        let kernels = if explicit {
            install::destination_dir(&args.r#where.destination())?
        } else {
            // Wherever Jupyter would find it.
            let spec = install::find(name, &install::data_dirs())?;
            spec.dir
                .parent()
                .map(PathBuf::from)
                .context("kernelspec has no parent folder")?
        };
        let dir = install::uninstall(name, &kernels)?;
        println!("Removed {}", dir.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn list_cmd(args: ListArgs) -> anyhow::Result<ExitCode> {
    let dirs = install::data_dirs();
    let (found, problems) = install::find_all(&dirs);
    if args.json {
        let specs: serde_json::Map<String, serde_json::Value> = found
            .iter()
            .map(|(name, k)| {
                (
                    name.clone(),
                    serde_json::json!({
                        "display_name": k.display_name(),
                        "path": k.dir,
                        "lineage": k.wraps().is_some(),
                        "wraps": k.wraps(),
                    }),
                )
            })
            .collect();
        let problems: Vec<String> = problems.iter().map(|p| p.to_string()).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "kernelspecs": specs,
                "problems": problems,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let width = found.keys().map(String::len).max().unwrap_or(4).max(4);
    println!("{:width$}  {:<14}  PATH", "NAME", "LINEAGE");
    for (name, k) in &found {
        let lineage = match k.wraps() {
            Some(w) => format!("wraps {w}"),
            None => "-".into(),
        };
        println!("{name:width$}  {lineage:<14}  {}", k.dir.display());
    }
    for p in problems {
        eprintln!("warning: {p}");
    }
    Ok(ExitCode::SUCCESS)
}
