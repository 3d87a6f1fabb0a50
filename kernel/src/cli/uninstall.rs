//! `uninstall`: remove lineage kernelspecs (never others).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::install;

use super::install::Where;
use super::Result;

#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// Lineage kernelspec names to remove.
    #[arg(required = true)]
    pub names: Vec<String>,
    #[command(flatten)]
    pub r#where: Where,
}

pub fn run(args: UninstallArgs) -> Result<ExitCode> {
    Ok(uninstall_inner(args)?)
}

fn uninstall_inner(args: UninstallArgs) -> anyhow::Result<ExitCode> {
    for name in &args.names {
        let kernels = if args.r#where.explicit() {
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
