//! `kernel`: run as a proxy kernel, what a lineage kernelspec's argv calls.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use crate::connection_file::KernelTransport;
use crate::proxy::{self, Lineage, ProxyConfig, Recording};

use super::Result;

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

pub fn run(args: KernelArgs) -> Result<ExitCode> {
    crate::logging::init(crate::config::DEFAULT_LOG_LEVEL);
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
    let exit = runtime
        .block_on(proxy::run(config.clone(), |pid, refused| {
            Box::new(Lineage::start(&config, &argv, pid, refused)) as Box<dyn Recording>
        }))
        .map_err(anyhow::Error::from)?;
    // Dropping the runtime would wait for nothing we need; relay tasks end
    // with their sockets.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(ExitCode::from(exit.as_exit_code()))
}
