//! `doctor`: is everything in place? Where the database is and what state
//! it is in, the lineage kernelspecs and what they wrap, whether NVML works,
//! and the whole configuration, defaults included.

use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde_json::{json, Value};

use crate::config::{self, Config};
use crate::install;
use crate::store::{self, FsKind, Store};

use super::db::DbArg;
use super::format::Style;
use super::view::db_size;
use super::{emit, emit_json, Result};

#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub db: DbArg,
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: DoctorArgs, config: &Config) -> Result<ExitCode> {
    let report = gather(&args.db, config);
    if args.json {
        emit_json(&report)?;
    } else {
        emit(&render(&report, Style::detect(config)))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Everything doctor knows, as the JSON it prints with `--json`.
fn gather(db: &DbArg, config: &Config) -> Value {
    let (path, how) = db.locate(config);
    let dirs = install::data_dirs();
    let (found, problems) = install::find_all(&dirs);
    let kernelspecs: Vec<Value> = found
        .values()
        .filter_map(|k| {
            let wraps = k.wraps()?;
            Some(json!({
                "name": k.name,
                "display_name": k.display_name(),
                "path": k.dir,
                "wraps": wraps,
                "wrapped_installed": found.contains_key(&wraps.to_lowercase()),
                "argv": k.spec.get("argv"),
            }))
        })
        .collect();
    let nvml = match crate::sampler::nvml_status() {
        Ok(s) => json!({"available": true, "detail": s}),
        Err(why) => json!({"available": false, "detail": format!("not available: {why}")}),
    };
    let env: serde_json::Map<String, Value> = config
        .set
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "database": database(&path, how, config),
        "kernelspecs": kernelspecs,
        "kernelspec_problems": problems.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "jupyter_data_dirs": dirs,
        "nvml": nvml,
        "recording_enabled": config.recording,
        "recording_mode": recording_mode(),
        "config": config.settings(),
        "config_problems": config.problems,
        "env": env,
    })
}

/// Which kernels are recorded (lineage kernelspecs only, or every kernel
/// through the provisioner) and where that was set, with a one-line summary.
fn recording_mode() -> Value {
    let mode = crate::provisioner::mode();
    let mut json = mode.to_json();
    json["summary"] = json!(mode.line());
    json
}

/// The database file: where, how found, and what `stats` would say of it.
fn database(path: &Path, how: String, config: &Config) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).ok();
    let mut database = json!({
        "path": path,
        "found_by": how,
        "project_root": config.location().root,
        "exists": meta.is_some(),
        "filesystem": store::fs_kind(path),
        "schema_supported": store::SCHEMA_VERSION,
    });
    let Some(m) = &meta else {
        return database;
    };
    database["bytes"] = json!(m.len());
    database["mode"] = json!(format!("{:04o}", m.permissions().mode() & 0o7777));
    match Store::open_readonly(path) {
        Ok(store) => {
            // Measured as `stats` measures it, so the two agree.
            if let Ok((main, wal)) = store.size_bytes() {
                database["bytes"] = json!(main);
                database["wal_bytes"] = json!(wal);
            }
            database["schema_version"] = json!(store.schema_version().ok());
            database["journal_mode"] = json!(store.journal_mode().ok());
            database["executions"] = json!(store.execution_count().ok());
        }
        Err(e) => database["error"] = json!(e.to_string()),
    }
    database
}

fn render(report: &Value, style: Style) -> String {
    let mut out = format!("jupyter-lineage {}\n\n", env!("CARGO_PKG_VERSION"));
    out.push_str(&render_database(&report["database"], style));
    out.push('\n');
    out.push_str(&render_kernelspecs(report, style));
    out.push_str(&row(
        "kernels",
        report["recording_mode"]["summary"]
            .as_str()
            .unwrap_or("?")
            .to_string(),
    ));
    out.push('\n');
    out.push_str(&head(style, "GPU"));
    let detail = report["nvml"]["detail"].as_str().unwrap_or("").to_string();
    out.push_str(&row(
        "NVML",
        if report["nvml"]["available"].as_bool() == Some(true) {
            style.green(&detail)
        } else {
            style.yellow(&detail)
        },
    ));
    out.push('\n');
    out.push_str(&render_config(report, style));
    out
}

fn head(style: Style, title: &str) -> String {
    format!("{}\n", style.bold(title))
}

/// `label` in a column of 14, and at least two spaces before the value
/// however long the label (a kernelspec's name can be longer).
fn row(label: &str, value: String) -> String {
    format!("  {label:<12}  {value}\n")
}

fn render_database(d: &Value, style: Style) -> String {
    let mut out = head(style, "database");
    out.push_str(&row("path", d["path"].as_str().unwrap_or("?").to_string()));
    out.push_str(&row(
        "found by",
        d["found_by"].as_str().unwrap_or("?").to_string(),
    ));
    if d["exists"].as_bool() == Some(true) {
        out.push_str(&row(
            "exists",
            style.green(&format!(
                "yes, {}, mode {}",
                db_size(
                    d["bytes"].as_u64().unwrap_or(0),
                    d["wal_bytes"].as_u64().unwrap_or(0)
                ),
                d["mode"].as_str().unwrap_or("?")
            )),
        ));
        if let Some(e) = d["error"].as_str() {
            out.push_str(&row("error", style.red(e)));
        } else {
            out.push_str(&row(
                "schema",
                format!(
                    "version {} (this build knows {})",
                    d["schema_version"],
                    store::SCHEMA_VERSION
                ),
            ));
            out.push_str(&row(
                "journal mode",
                d["journal_mode"].as_str().unwrap_or("?").to_string(),
            ));
            out.push_str(&row("executions", d["executions"].to_string()));
        }
    } else {
        out.push_str(&row(
            "exists",
            style.yellow("no (a lineage kernel creates it on its first run)"),
        ));
    }
    let network = d["filesystem"] == json!(FsKind::Network);
    out.push_str(&row(
        "filesystem",
        if network {
            style.yellow("network (NFS/SMB/FUSE): rollback journal instead of WAL")
        } else {
            "local".into()
        },
    ));
    out
}

fn render_kernelspecs(report: &Value, style: Style) -> String {
    let mut out = head(style, "lineage kernelspecs");
    let specs = report["kernelspecs"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    if specs.is_empty() {
        out.push_str(&row(
            "",
            style.yellow("none installed: run `jupyter lineage install`"),
        ));
    }
    for k in &specs {
        let wraps = k["wraps"].as_str().unwrap_or("?");
        let state = if k["wrapped_installed"].as_bool() == Some(true) {
            style.green(&format!("wraps {wraps}"))
        } else {
            style.yellow(&format!("wraps {wraps}, which is not installed"))
        };
        out.push_str(&row(
            k["name"].as_str().unwrap_or("?"),
            format!("{state}  {}", k["path"].as_str().unwrap_or("")),
        ));
    }
    for p in report["kernelspec_problems"]
        .as_array()
        .into_iter()
        .flatten()
    {
        out.push_str(&row("problem", style.yellow(p.as_str().unwrap_or(""))));
    }
    out
}

/// Every setting, set or not: what is in effect and whether it is the
/// default. A setting that turns something off is shown as a warning.
fn render_config(report: &Value, style: Style) -> String {
    let mut out = head(style, "configuration");
    let settings = report["config"].as_array().cloned().unwrap_or_default();
    let width = config::VARS.iter().map(|v| v.len()).max().unwrap_or(0) + 2;
    for s in &settings {
        let var = s["var"].as_str().unwrap_or("");
        let value = s["value"].as_str().unwrap_or("");
        let shown = match var {
            config::RECORDING_VAR | config::REDACT_VAR if value == "off" => style.yellow(value),
            config::RECORDING_VAR | config::REDACT_VAR => style.green(value),
            _ => value.to_string(),
        };
        let source = match s["raw"].as_str() {
            None => style.dim(" (default)"),
            Some(raw) if raw == value => String::new(),
            Some(raw) => style.dim(&format!(" (set to {raw:?})")),
        };
        out.push_str(&format!("  {var:<width$}{shown}{source}\n"));
    }
    for p in report["config_problems"].as_array().into_iter().flatten() {
        out.push_str(&row("problem", style.yellow(p.as_str().unwrap_or(""))));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_configuration_is_printed_with_redaction_off_said() {
        let config = Config::from_lookup(|k| {
            (k == config::REDACT_VAR).then(|| std::ffi::OsString::from("off"))
        });
        let report = json!({
            "config": config.settings(),
            "config_problems": config.problems,
        });
        let text = render_config(&report, Style::PLAIN);
        for var in config::VARS {
            assert!(text.contains(var), "{var} missing:\n{text}");
        }
        let line = text
            .lines()
            .find(|l| l.contains(config::REDACT_VAR))
            .unwrap();
        assert!(line.trim_end().ends_with("off"), "{line}");
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with("JUPYTER_LINEAGE "))
            .unwrap();
        assert!(line.ends_with("on (default)"), "{line}");
    }

    #[test]
    fn long_kernelspec_names_keep_a_space_before_what_they_wrap() {
        let report = json!({"kernelspecs": [{
            "name": "python3-lineage", "wraps": "python3", "wrapped_installed": true,
            "path": "/k/python3-lineage",
        }]});
        let text = render_kernelspecs(&report, Style::PLAIN);
        assert!(text.contains("python3-lineage  wraps python3"), "{text}");
    }
}
