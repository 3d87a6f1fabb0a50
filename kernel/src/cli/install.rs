//! `install`: write lineage kernelspecs that wrap installed kernels.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

use crate::install::{self, Destination, WrapOptions};

use super::Result;

/// Where a kernelspec goes (or is removed from), as `jupyter kernelspec
/// install` names it.
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
    pub fn destination(&self) -> Destination {
        match (&self.prefix, self.sys_prefix) {
            (Some(prefix), _) => Destination::Prefix(prefix.clone()),
            (None, true) => Destination::SysPrefix,
            _ => Destination::User,
        }
    }

    /// True when the user named a place.
    pub fn explicit(&self) -> bool {
        self.user || self.sys_prefix || self.prefix.is_some()
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

pub fn run(args: InstallArgs) -> Result<ExitCode> {
    Ok(install_inner(args)?)
}

fn install_inner(args: InstallArgs) -> anyhow::Result<ExitCode> {
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
            .collect::<std::result::Result<_, _>>()?
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
