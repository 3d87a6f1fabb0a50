use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = jupyter_lineage::cli::Cli::parse();
    match jupyter_lineage::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("jupyter-lineage: {e:#}");
            ExitCode::from(2)
        }
    }
}
