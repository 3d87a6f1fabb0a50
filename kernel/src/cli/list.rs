//! `list`: installed kernelspecs, which are lineage ones and what they wrap.

use std::process::ExitCode;

use clap::Args;

use crate::install;

use super::Result;

#[derive(Debug, Args)]
pub struct ListArgs {
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ListArgs) -> Result<ExitCode> {
    Ok(list_inner(args)?)
}

fn list_inner(args: ListArgs) -> anyhow::Result<ExitCode> {
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
