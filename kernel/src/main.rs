use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    jupyter_lineage::cli::run(jupyter_lineage::cli::Cli::parse())
}
