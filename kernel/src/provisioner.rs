//! Record every kernel without renaming it: `jupyter lineage enable` and
//! `disable`, and the mode `doctor` reports.
//!
//! The wheel's `lineage-provisioner` (python/jupyter_lineage/provisioner.py)
//! launches any kernelspec behind the proxy. jupyter_client picks it in two
//! ways, and `enable` writes both, because each reaches clients the other
//! does not:
//!
//! - **Kernelspec overrides.** A kernelspec's own
//!   `metadata.kernel_provisioner` wins over any default, and kernelspecs are
//!   read from disk by every client, configured or not: a plain
//!   `KernelManager("python3")` in a script, nbclient, papermill, and a server
//!   that is already running (no restart needed). For each installed kernel,
//!   `enable` writes a copy of its kernelspec, under the same name, into the
//!   chosen data dir when that dir comes first on Jupyter's path; when the
//!   kernelspec lives in that very dir it is marked in place. The name stays
//!   `python3`, so notebooks stay portable.
//! - **Jupyter config.** `KernelProvisionerFactory.default_provisioner_name`
//!   in `jupyter_config.json` (read by every Jupyter application, not by
//!   scripts), so servers also record kernels installed after `enable`.
//!
//! Everything written carries a marker, so `disable` removes exactly that
//! and nothing else. `JUPYTER_DEFAULT_PROVISIONER_NAME=lineage-provisioner`
//! does the same for a whole environment without writing anything (hubs,
//! containers).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use clap::Args;
use serde_json::{json, Map, Value};

use crate::install::{self, Destination, Kernelspec, METADATA_KEY};

/// The entry-point name in pyproject.toml.
pub const PROVISIONER_NAME: &str = "lineage-provisioner";
/// jupyter_client reads the default provisioner from this variable
/// (jupyter_client/provisioning/factory.py, `default_provisioner_name_env`).
pub const ENV_VAR: &str = "JUPYTER_DEFAULT_PROVISIONER_NAME";
/// Loaded by every JupyterApp before its own config file
/// (jupyter_core/application.py, `base_config`). Jupyter's `*.d` folders
/// only merge server extensions, so the setting goes in the file itself.
const CONFIG_FILE: &str = "jupyter_config.json";
const FACTORY: &str = "KernelProvisionerFactory";
const DEFAULT_NAME: &str = "default_provisioner_name";
/// Under `metadata.jupyter_lineage` of a kernelspec `enable` wrote or marked.
const OVERRIDE_KEY: &str = "provisioner_override";

#[derive(Debug, thiserror::Error)]
pub enum ProvisionerError {
    #[error("{path} is not a JSON object; fix or remove it first")]
    BadConfig { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(transparent)]
    Install(#[from] install::InstallError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ProvisionerError {
    let path = path.to_owned();
    move |source| ProvisionerError::Io { path, source }
}

/// `--user | --sys-prefix | --prefix DIR`, as `jupyter kernelspec install`.
#[derive(Debug, Args)]
#[group(id = "scope", multiple = false)]
pub struct ScopeArgs {
    /// For this user (the default): ~/.jupyter and the user's data dir.
    #[arg(long, group = "scope")]
    pub user: bool,
    /// For the active Python environment (sys.prefix).
    #[arg(long, group = "scope")]
    pub sys_prefix: bool,
    /// Under PREFIX/etc/jupyter and PREFIX/share/jupyter.
    #[arg(long, group = "scope", value_name = "PREFIX")]
    pub prefix: Option<PathBuf>,
    /// Print what was done as JSON.
    #[arg(long)]
    pub json: bool,
}

impl ScopeArgs {
    fn destination(&self) -> Destination {
        match (&self.prefix, self.sys_prefix) {
            (Some(prefix), _) => Destination::Prefix(prefix.clone()),
            (None, true) => Destination::SysPrefix,
            _ => Destination::User,
        }
    }
}

/// The user's Jupyter config dir (jupyter_core's `jupyter_config_dir`).
fn user_config_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JUPYTER_CONFIG_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    home.unwrap_or_else(|| PathBuf::from("/")).join(".jupyter")
}

/// The config folder a destination means.
pub fn config_dir(dest: &Destination) -> Result<PathBuf, ProvisionerError> {
    Ok(match dest {
        Destination::User => user_config_dir(),
        Destination::SysPrefix => install::sys_prefix()?.join("etc/jupyter"),
        Destination::Prefix(prefix) => prefix.join("etc/jupyter"),
    })
}

/// Jupyter's config folders, highest priority first (`jupyter --paths`).
pub fn config_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Ok(out) = Command::new("jupyter").args(["--paths", "--json"]).output() {
        if let Ok(paths) = serde_json::from_slice::<Value>(&out.stdout) {
            if let Some(config) = paths["config"].as_array() {
                dirs.extend(config.iter().filter_map(Value::as_str).map(PathBuf::from));
            }
        }
    }
    if let Some(path) = std::env::var_os("JUPYTER_CONFIG_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.push(user_config_dir());
    if let Ok(prefix) = install::sys_prefix() {
        dirs.push(prefix.join("etc/jupyter"));
    }
    dirs.push(PathBuf::from("/usr/local/etc/jupyter"));
    dirs.push(PathBuf::from("/etc/jupyter"));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

fn read_object(path: &Path) -> Result<Option<Map<String, Value>>, ProvisionerError> {
    let Ok(text) = fs::read(path) else {
        return Ok(None);
    };
    match serde_json::from_slice::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(Some(map)),
        _ => Err(ProvisionerError::BadConfig {
            path: path.to_owned(),
        }),
    }
}

fn write_json(path: &Path, value: &Value) -> Result<(), ProvisionerError> {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    let text = serde_json::to_string_pretty(value).expect("JSON serialises");
    fs::write(path, text + "\n").map_err(io(path))
}

/// What one `enable` or `disable` did, for the user.
#[derive(Debug, Default)]
pub struct Report {
    pub done: Vec<String>,
    pub warnings: Vec<String>,
}

/// Whether `spec` runs through the provisioner because of `enable`.
fn override_of(spec: &Value) -> Option<&Value> {
    spec["metadata"][METADATA_KEY].get(OVERRIDE_KEY)
}

fn provisioner_of(spec: &Value) -> Option<&str> {
    spec["metadata"]["kernel_provisioner"]["provisioner_name"].as_str()
}

/// A kernelspec that already runs through the proxy by itself.
fn is_lineage(k: &Kernelspec) -> bool {
    k.wraps().is_some() || k.name.ends_with(install::NAME_SUFFIX)
}

/// `spec` with the provisioner named and the marker set.
fn with_provisioner(spec: &Value, marker: Value) -> Value {
    let mut spec = spec.clone();
    if !spec["metadata"].is_object() {
        spec["metadata"] = json!({});
    }
    spec["metadata"]["kernel_provisioner"] = json!({ "provisioner_name": PROVISIONER_NAME });
    spec["metadata"][METADATA_KEY] = json!({ OVERRIDE_KEY: marker });
    spec
}

/// Makes `lineage-provisioner` the provisioner of every installed kernel
/// (kernelspec overrides under `kernels`) and the default of every Jupyter
/// application that reads `config` (see the module doc).
pub fn enable(
    kernels: &Path,
    config: &Path,
    data_dirs: &[PathBuf],
) -> Result<Report, ProvisionerError> {
    let mut report = Report::default();
    let (found, problems) = install::find_all(data_dirs);
    report
        .warnings
        .extend(problems.iter().map(ToString::to_string));
    let rank = |kernels_dir: &Path| {
        data_dirs
            .iter()
            .position(|d| d.join("kernels") == kernels_dir)
    };
    let ours = rank(kernels);
    if ours.is_none() {
        report.warnings.push(format!(
            "{} is not on Jupyter's data path: add its parent to JUPYTER_PATH, or clients will not see the kernelspecs written there",
            kernels.display()
        ));
    }
    for k in found.values().filter(|k| !is_lineage(k)) {
        if override_of(&k.spec).is_some() {
            report.done.push(format!(
                "{}: already recorded ({})",
                k.name,
                k.dir.display()
            ));
            continue;
        }
        if let Some(other) = provisioner_of(&k.spec) {
            report.warnings.push(format!(
                "{}: left alone, it names its own provisioner {other:?}",
                k.name
            ));
            continue;
        }
        let home = k.dir.parent().unwrap_or(&k.dir);
        let path = if home == kernels {
            // It lives where we write: mark it in place.
            let added = !k.spec["metadata"].is_object();
            let spec =
                with_provisioner(&k.spec, json!({"in_place": true, "added_metadata": added}));
            let path = k.dir.join("kernel.json");
            write_json(&path, &spec)?;
            path
        } else {
            if let (Some(ours), Some(theirs)) = (ours, rank(home)) {
                if theirs < ours {
                    report.warnings.push(format!(
                        "{}: {} comes first on Jupyter's path, so a copy in {} would be hidden (inside a virtualenv or conda env Jupyter prefers the environment's kernelspecs: JUPYTER_PREFER_ENV_PATH); run enable with --sys-prefix, or set {ENV_VAR}",
                        k.name,
                        k.dir.display(),
                        kernels.display()
                    ));
                    continue;
                }
            }
            copy_spec(k, kernels)?
        };
        report
            .done
            .push(format!("{}: recorded ({})", k.name, path.display()));
    }

    let path = config.join(CONFIG_FILE);
    let mut map = read_object(&path)?.unwrap_or_default();
    let factory = map.entry(FACTORY).or_insert_with(|| json!({}));
    if !factory.is_object() {
        return Err(ProvisionerError::BadConfig { path });
    }
    match factory[DEFAULT_NAME].as_str() {
        Some(name) if name != PROVISIONER_NAME && name != "local-provisioner" => {
            report.warnings.push(format!(
                "{}: left alone, its default provisioner is {name:?}",
                path.display()
            ));
        }
        _ => {
            factory[DEFAULT_NAME] = json!(PROVISIONER_NAME);
            write_json(&path, &Value::Object(map))?;
            report.done.push(format!(
                "default provisioner of Jupyter servers: {PROVISIONER_NAME} ({})",
                path.display()
            ));
        }
    }
    Ok(report)
}

/// Writes `k`'s kernelspec, under its own name, into `kernels`: its files as
/// they are (logos, `{resource_dir}` resources), kernel.json with the
/// provisioner named.
fn copy_spec(k: &Kernelspec, kernels: &Path) -> Result<PathBuf, ProvisionerError> {
    let dir = kernels.join(&k.name);
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    if let Ok(entries) = fs::read_dir(&k.dir) {
        for entry in entries.flatten() {
            let from = entry.path();
            if from.file_name().is_some_and(|n| n == "kernel.json") || !from.is_file() {
                continue;
            }
            let to = dir.join(entry.file_name());
            fs::copy(&from, &to).map_err(io(&to))?;
        }
    }
    let spec = with_provisioner(&k.spec, json!({ "copied_from": k.dir }));
    let path = dir.join("kernel.json");
    write_json(&path, &spec)?;
    Ok(path)
}

/// Undoes `enable` for one destination: removes the copies it wrote,
/// unmarks what it marked in place, and takes the default out of the config
/// file (the file goes when nothing else is left in it).
pub fn disable(kernels: &Path, config: &Path) -> Result<Report, ProvisionerError> {
    let mut report = Report::default();
    let mut dirs: Vec<PathBuf> = fs::read_dir(kernels)
        .map(|e| e.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    dirs.sort();
    for dir in dirs {
        let Ok(k) = install::read_spec(&dir) else {
            continue;
        };
        let Some(marker) = override_of(&k.spec) else {
            continue;
        };
        if marker.get("copied_from").is_some() {
            fs::remove_dir_all(&dir).map_err(io(&dir))?;
            report
                .done
                .push(format!("{}: removed {}", k.name, dir.display()));
        } else {
            let mut spec = k.spec.clone();
            let mut emptied = false;
            if let Some(meta) = spec["metadata"].as_object_mut() {
                if provisioner_of(&k.spec) == Some(PROVISIONER_NAME) {
                    meta.remove("kernel_provisioner");
                }
                meta.remove(METADATA_KEY);
                emptied = meta.is_empty();
            }
            if emptied && marker["added_metadata"] == true {
                if let Some(o) = spec.as_object_mut() {
                    o.remove("metadata");
                }
            }
            let path = dir.join("kernel.json");
            write_json(&path, &spec)?;
            report
                .done
                .push(format!("{}: unmarked {}", k.name, path.display()));
        }
    }

    let path = config.join(CONFIG_FILE);
    if let Some(mut map) = read_object(&path)? {
        let ours = map
            .get(FACTORY)
            .and_then(|f| f[DEFAULT_NAME].as_str())
            .is_some_and(|n| n == PROVISIONER_NAME);
        if ours {
            if let Some(Value::Object(factory)) = map.get_mut(FACTORY) {
                factory.remove(DEFAULT_NAME);
                if factory.is_empty() {
                    map.remove(FACTORY);
                }
            }
            if map.is_empty() {
                fs::remove_file(&path).map_err(io(&path))?;
            } else {
                write_json(&path, &Value::Object(map))?;
            }
            report.done.push(format!(
                "default provisioner setting removed from {}",
                path.display()
            ));
        }
    }
    Ok(report)
}

/// Where "record every kernel" is switched on, as `doctor` reports it.
#[derive(Debug, Default, Clone)]
pub struct Mode {
    /// JUPYTER_DEFAULT_PROVISIONER_NAME, when set.
    pub env: Option<String>,
    /// Config files that name a default provisioner, and which.
    pub config: Vec<(PathBuf, String)>,
    /// Kernelspecs that name lineage-provisioner, and where they are.
    pub kernelspecs: Vec<(String, PathBuf)>,
}

impl Mode {
    /// The provisioner is on for every kernel a client starts.
    pub fn every_kernel(&self) -> bool {
        self.env.as_deref() == Some(PROVISIONER_NAME)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "provisioner": PROVISIONER_NAME,
            "env": self.env,
            "every_kernel": self.every_kernel(),
            "config": self.config.iter().map(|(p, n)| json!({"path": p, "default_provisioner_name": n})).collect::<Vec<_>>(),
            "kernelspecs": self.kernelspecs.iter().map(|(n, p)| json!({"name": n, "path": p})).collect::<Vec<_>>(),
        })
    }

    /// One line: the mode and where it was set.
    pub fn line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(env) = &self.env {
            parts.push(format!("{ENV_VAR}={env}"));
        }
        for (path, name) in self.config.iter().filter(|(_, n)| n == PROVISIONER_NAME) {
            parts.push(format!("servers: {} ({name})", path.display()));
        }
        if !self.kernelspecs.is_empty() {
            let names: Vec<&str> = self.kernelspecs.iter().map(|(n, _)| n.as_str()).collect();
            let mut places: Vec<String> = self
                .kernelspecs
                .iter()
                .filter_map(|(_, p)| p.parent().map(|d| d.display().to_string()))
                .collect();
            places.dedup();
            parts.push(format!(
                "kernelspecs {} ({})",
                names.join(", "),
                places.join(", ")
            ));
        }
        if self.every_kernel() {
            format!("every kernel is recorded: {}", parts.join("; "))
        } else if parts.is_empty() {
            "only `· lineage` kernels are recorded; `jupyter lineage enable` records every kernel"
                .to_string()
        } else {
            format!("recorded through {PROVISIONER_NAME}: {}", parts.join("; "))
        }
    }
}

/// Reads the mode from the environment, Jupyter's config path and the
/// installed kernelspecs.
pub fn mode() -> Mode {
    let (found, _) = install::find_all(&install::data_dirs());
    mode_from(
        std::env::var(ENV_VAR).ok().filter(|v| !v.is_empty()),
        &config_dirs(),
        found.values(),
    )
}

fn mode_from<'a>(
    env: Option<String>,
    config_dirs: &[PathBuf],
    specs: impl Iterator<Item = &'a Kernelspec>,
) -> Mode {
    let mut config = Vec::new();
    for dir in config_dirs {
        for file in [CONFIG_FILE, "jupyter_server_config.json"] {
            let path = dir.join(file);
            if let Ok(Some(map)) = read_object(&path) {
                if let Some(name) = map.get(FACTORY).and_then(|f| f[DEFAULT_NAME].as_str()) {
                    config.push((path, name.to_string()));
                }
            }
        }
    }
    let kernelspecs = specs
        .filter(|k| provisioner_of(&k.spec) == Some(PROVISIONER_NAME))
        .map(|k| (k.name.clone(), k.dir.clone()))
        .collect();
    Mode {
        env,
        config,
        kernelspecs,
    }
}

fn print_report(report: &Report, json: bool) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &json!({"done": report.done, "warnings": report.warnings})
            )?
        );
    } else {
        for line in &report.done {
            println!("{line}");
        }
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(())
}

/// `jupyter lineage enable`.
pub fn enable_cmd(args: ScopeArgs) -> anyhow::Result<ExitCode> {
    let dest = args.destination();
    let kernels = install::destination_dir(&dest)?;
    let config = config_dir(&dest)?;
    let report = enable(&kernels, &config, &install::data_dirs())?;
    print_report(&report, args.json)?;
    if !args.json {
        println!("New kernels are recorded and keep their names; restart running ones (Kernel › Change Kernel) to record them.");
    }
    Ok(ExitCode::SUCCESS)
}

/// `jupyter lineage disable`.
pub fn disable_cmd(args: ScopeArgs) -> anyhow::Result<ExitCode> {
    let dest = args.destination();
    let report = disable(&install::destination_dir(&dest)?, &config_dir(&dest)?)?;
    if report.done.is_empty() && !args.json {
        println!("nothing to undo there");
    }
    print_report(&report, args.json)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_dir(data: &Path, name: &str, spec: &Value) -> PathBuf {
        let dir = data.join("kernels").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("kernel.json"), spec.to_string()).unwrap();
        fs::write(dir.join("logo-64x64.png"), b"png").unwrap();
        dir
    }

    fn python3() -> Value {
        json!({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
               "display_name": "Python 3 (ipykernel)", "language": "python",
               "metadata": {"debugger": true}})
    }

    #[test]
    fn enable_copies_marks_and_disable_restores() {
        let tmp = tempfile::tempdir().unwrap();
        let user = tmp.path().join("user/share/jupyter");
        let env = tmp.path().join("env/share/jupyter");
        let config = tmp.path().join("etc");
        spec_dir(&env, "python3", &python3());
        spec_dir(
            &user,
            "bash",
            &json!({"argv": ["bash-kernel"], "display_name": "Bash"}),
        );
        spec_dir(
            &env,
            "remote",
            &json!({"argv": ["r"], "display_name": "R",
                    "metadata": {"kernel_provisioner": {"provisioner_name": "other"}}}),
        );
        spec_dir(
            &env,
            "python3-lineage",
            &json!({"argv": ["x"], "display_name": "L",
                    "metadata": {"jupyter_lineage": {"wraps": "python3"}}}),
        );
        let before_bash = fs::read(user.join("kernels/bash/kernel.json")).unwrap();
        let dirs = vec![user.clone(), env.clone()];
        let report = enable(&user.join("kernels"), &config, &dirs).unwrap();
        assert!(report.warnings.iter().any(|w| w.contains("remote")));

        let (found, _) = install::find_all(&dirs);
        // python3: a copy in the user dir, same name, same argv, logo kept.
        let py = &found["python3"];
        assert_eq!(py.dir, user.join("kernels/python3"));
        assert_eq!(provisioner_of(&py.spec), Some(PROVISIONER_NAME));
        assert_eq!(py.spec["argv"], python3()["argv"]);
        assert_eq!(py.display_name(), "Python 3 (ipykernel)");
        assert!(py.dir.join("logo-64x64.png").is_file());
        // bash lived in the user dir: marked in place.
        assert_eq!(provisioner_of(&found["bash"].spec), Some(PROVISIONER_NAME));
        // Lineage specs and other provisioners are left alone.
        assert_eq!(provisioner_of(&found["remote"].spec), Some("other"));
        assert!(provisioner_of(&found["python3-lineage"].spec).is_none());
        let conf: Value =
            serde_json::from_slice(&fs::read(config.join(CONFIG_FILE)).unwrap()).unwrap();
        assert_eq!(conf[FACTORY][DEFAULT_NAME], PROVISIONER_NAME);

        let m = mode_from(None, std::slice::from_ref(&config), found.values());
        assert_eq!(m.kernelspecs.len(), 2);
        assert!(m.line().contains("python3"), "{}", m.line());
        assert!(m.line().contains(CONFIG_FILE), "{}", m.line());

        // Enabling twice changes nothing.
        enable(&user.join("kernels"), &config, &dirs).unwrap();

        disable(&user.join("kernels"), &config).unwrap();
        assert!(!user.join("kernels/python3").exists());
        let bash: Value =
            serde_json::from_slice(&fs::read(user.join("kernels/bash/kernel.json")).unwrap())
                .unwrap();
        let original: Value = serde_json::from_slice(&before_bash).unwrap();
        assert_eq!(bash, original);
        assert!(!config.join(CONFIG_FILE).exists());
        assert!(env.join("kernels/python3/kernel.json").is_file());
        let (found, _) = install::find_all(&dirs);
        let m = mode_from(None, &[config], found.values());
        assert!(m.kernelspecs.is_empty() && m.config.is_empty());
        assert!(m.line().contains("jupyter lineage enable"));
    }

    #[test]
    fn config_keeps_other_settings_and_foreign_defaults() {
        let tmp = tempfile::tempdir().unwrap();
        let config = tmp.path().join("etc");
        fs::create_dir_all(&config).unwrap();
        let path = config.join(CONFIG_FILE);
        fs::write(&path, r#"{"ServerApp": {"port": 9999}}"#).unwrap();
        let kernels = tmp.path().join("share/jupyter/kernels");
        enable(&kernels, &config, &[]).unwrap();
        disable(&kernels, &config).unwrap();
        let conf: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(conf, json!({"ServerApp": {"port": 9999}}));

        fs::write(
            &path,
            r#"{"KernelProvisionerFactory": {"default_provisioner_name": "gateway"}}"#,
        )
        .unwrap();
        let report = enable(&kernels, &config, &[]).unwrap();
        assert!(report.warnings.iter().any(|w| w.contains("gateway")));
        let conf: Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        assert_eq!(conf[FACTORY][DEFAULT_NAME], "gateway");

        fs::write(&path, "[1]").unwrap();
        assert!(matches!(
            enable(&kernels, &config, &[]),
            Err(ProvisionerError::BadConfig { .. })
        ));
    }

    #[test]
    fn hidden_copy_is_a_warning_not_a_write() {
        let tmp = tempfile::tempdir().unwrap();
        let user = tmp.path().join("user/share/jupyter");
        let env = tmp.path().join("env/share/jupyter");
        spec_dir(&user, "python3", &python3());
        let report = enable(
            &env.join("kernels"),
            &tmp.path().join("etc"),
            &[user.clone(), env.clone()],
        )
        .unwrap();
        assert!(!env.join("kernels/python3").exists());
        assert!(
            report
                .warnings
                .iter()
                .any(|w| w.contains("comes first") && w.contains("--sys-prefix")),
            "{report:?}"
        );
    }

    #[test]
    fn env_var_means_every_kernel() {
        let m = mode_from(Some(PROVISIONER_NAME.into()), &[], std::iter::empty());
        assert!(m.every_kernel());
        assert!(m.line().contains(ENV_VAR));
    }
}
