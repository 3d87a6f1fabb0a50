//! Kernelspecs: find installed ones the way `jupyter kernelspec list` does,
//! and write lineage kernelspecs that wrap them.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

/// The key under a kernelspec's `metadata` that marks a lineage kernelspec.
pub const METADATA_KEY: &str = "jupyter_lineage";
/// Suffix of a wrapping kernelspec's name.
pub const NAME_SUFFIX: &str = "-lineage";

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("no kernelspec named {name:?}; searched: {}", join(searched))]
    NotFound {
        name: String,
        searched: Vec<PathBuf>,
    },
    #[error("kernelspec {path} is not valid: {why}")]
    Malformed { path: PathBuf, why: String },
    #[error(
        "{name:?} is already a lineage kernelspec (it wraps {wraps:?}); wrap {wraps:?} instead"
    )]
    AlreadyLineage { name: String, wraps: String },
    #[error("{path} is not a lineage kernelspec; refusing to remove it")]
    NotLineage { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot find this program's own path: {0}")]
    OwnPath(std::io::Error),
    #[error("cannot find sys.prefix: {0}")]
    SysPrefix(String),
}

fn join(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Where to install, as `jupyter kernelspec install` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    User,
    SysPrefix,
    Prefix(PathBuf),
}

/// An installed kernelspec.
#[derive(Debug, Clone)]
pub struct Kernelspec {
    pub name: String,
    pub dir: PathBuf,
    pub spec: Value,
}

impl Kernelspec {
    pub fn display_name(&self) -> &str {
        self.spec["display_name"].as_str().unwrap_or(&self.name)
    }

    /// The kernelspec this one wraps, when it is a lineage kernelspec.
    pub fn wraps(&self) -> Option<&str> {
        self.spec["metadata"][METADATA_KEY]["wraps"].as_str()
    }
}

/// The user's Jupyter data dir (jupyter_core's `jupyter_data_dir`).
pub fn user_data_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("JUPYTER_DATA_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("jupyter");
    }
    home_dir().join(".local/share/jupyter")
}

fn home_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/"))
}

fn which(program: &str) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(PathBuf::from(program));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// `sys.prefix` of the Python environment in use: an active virtualenv or
/// conda env, else the environment of the `python3` on PATH.
pub fn sys_prefix() -> Result<PathBuf, InstallError> {
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            return Ok(PathBuf::from(prefix));
        }
    }
    let python = which("python3")
        .or_else(|| which("python"))
        .ok_or_else(|| InstallError::SysPrefix("no python3 on PATH".into()))?;
    let out = Command::new(&python)
        .args(["-c", "import sys; print(sys.prefix)"])
        .output()
        .map_err(|e| InstallError::SysPrefix(format!("{}: {e}", python.display())))?;
    if !out.status.success() {
        return Err(InstallError::SysPrefix(format!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr)
        )));
    }
    Ok(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()))
}

/// Jupyter's data directories in priority order, as `jupyter --paths` lists
/// them: `JUPYTER_PATH`, the user dir, the environment, the system. When a
/// `jupyter` command is on PATH its own answer comes first.
pub fn data_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(jupyter) = which("jupyter") {
        if let Ok(out) = Command::new(jupyter).args(["--paths", "--json"]).output() {
            if let Ok(paths) = serde_json::from_slice::<Value>(&out.stdout) {
                if let Some(data) = paths["data"].as_array() {
                    dirs.extend(data.iter().filter_map(|d| d.as_str()).map(PathBuf::from));
                }
            }
        }
    }
    if let Some(path) = std::env::var_os("JUPYTER_PATH") {
        dirs.extend(std::env::split_paths(&path).filter(|p| !p.as_os_str().is_empty()));
    }
    dirs.push(user_data_dir());
    for var in ["VIRTUAL_ENV", "CONDA_PREFIX"] {
        if let Some(prefix) = std::env::var_os(var).filter(|v| !v.is_empty()) {
            dirs.push(PathBuf::from(prefix).join("share/jupyter"));
        }
    }
    for program in ["jupyter", "python3"] {
        if let Some(bin) = which(program).map(|p| fs::canonicalize(&p).unwrap_or(p)) {
            if let Some(prefix) = bin.parent().and_then(Path::parent) {
                dirs.push(prefix.join("share/jupyter"));
            }
        }
    }
    dirs.push(PathBuf::from("/usr/local/share/jupyter"));
    dirs.push(PathBuf::from("/usr/share/jupyter"));
    let mut seen = std::collections::HashSet::new();
    dirs.retain(|d| seen.insert(d.clone()));
    dirs
}

fn kernels_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("kernels")
}

/// Reads one kernelspec directory.
pub fn read_spec(dir: &Path) -> Result<Kernelspec, InstallError> {
    let path = dir.join("kernel.json");
    let text = fs::read(&path).map_err(|e| InstallError::Malformed {
        path: path.clone(),
        why: e.to_string(),
    })?;
    let spec: Value = serde_json::from_slice(&text).map_err(|e| InstallError::Malformed {
        path: path.clone(),
        why: format!("not JSON: {e}"),
    })?;
    let argv_ok = spec["argv"]
        .as_array()
        .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_string));
    if !argv_ok {
        return Err(InstallError::Malformed {
            path,
            why: "\"argv\" must be a non-empty list of strings".into(),
        });
    }
    if !spec["display_name"].is_string() {
        return Err(InstallError::Malformed {
            path,
            why: "\"display_name\" must be a string".into(),
        });
    }
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    Ok(Kernelspec {
        name,
        dir: dir.to_owned(),
        spec,
    })
}

/// Every kernelspec in `dirs`, first one found per name wins (as Jupyter).
/// Malformed ones are reported, not fatal.
pub fn find_all(dirs: &[PathBuf]) -> (BTreeMap<String, Kernelspec>, Vec<InstallError>) {
    let mut found = BTreeMap::new();
    let mut problems = Vec::new();
    for data_dir in dirs {
        let Ok(entries) = fs::read_dir(kernels_dir(data_dir)) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        entries.sort();
        for dir in entries {
            if !dir.join("kernel.json").is_file() {
                continue;
            }
            let name = dir
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if found.contains_key(&name) {
                continue;
            }
            match read_spec(&dir) {
                Ok(spec) => {
                    found.insert(name, spec);
                }
                Err(e) => problems.push(e),
            }
        }
    }
    (found, problems)
}

/// Finds kernelspec `name` in `dirs`.
pub fn find(name: &str, dirs: &[PathBuf]) -> Result<Kernelspec, InstallError> {
    let name = name.to_lowercase();
    for data_dir in dirs {
        let dir = kernels_dir(data_dir).join(&name);
        if dir.join("kernel.json").is_file() {
            return read_spec(&dir);
        }
    }
    Err(InstallError::NotFound {
        name,
        searched: dirs.iter().map(|d| kernels_dir(d)).collect(),
    })
}

/// Resolves a bare `python`/`python3` in a kernelspec's argv to the
/// interpreter of the environment the kernelspec belongs to. jupyter_client
/// swaps in its own `sys.executable` at launch; a wrapped argv is launched by
/// the proxy, which cannot, so it is fixed at install time.
pub fn resolve_python(argv0: &str, spec_dir: &Path) -> String {
    let is_python = argv0 == "python"
        || argv0 == "python3"
        || (argv0.starts_with("python3.") && !argv0.contains('/'));
    if !is_python {
        return argv0.to_string();
    }
    // <prefix>/share/jupyter/kernels/<name> → <prefix>/bin/<argv0>
    if let Some(prefix) = spec_dir.ancestors().nth(4) {
        for candidate in [argv0, "python3", "python"] {
            let bin = prefix.join("bin").join(candidate);
            if is_executable(&bin) {
                return bin.to_string_lossy().into_owned();
            }
        }
    }
    which(argv0)
        .or_else(|| which("python3"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|| argv0.to_string())
}

/// Options of one wrapping.
#[derive(Debug, Clone)]
pub struct WrapOptions {
    pub name: Option<String>,
    pub display_name: Option<String>,
    /// The command that starts the proxy; by default this program's own path.
    pub launcher: Vec<String>,
}

/// The kernelspec that wraps `wrapped`.
pub fn wrapping_spec(wrapped: &Kernelspec, options: &WrapOptions) -> Value {
    let mut argv: Vec<String> = wrapped.spec["argv"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if let Some(first) = argv.first_mut() {
        *first = resolve_python(first, &wrapped.dir);
    }
    let mut full = options.launcher.clone();
    full.extend([
        "kernel".to_string(),
        "-f".to_string(),
        "{connection_file}".to_string(),
        "--kernelspec".to_string(),
        wrapped.name.clone(),
        "--".to_string(),
    ]);
    full.extend(argv.iter().cloned());

    let display_name = options
        .display_name
        .clone()
        .unwrap_or_else(|| format!("{} · lineage", wrapped.display_name()));
    let mut metadata = wrapped.spec["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    // The proxy speaks plain ZMTP to clients: promising CurveZMQ would make
    // jupyter_client (transport_encryption="auto") provision keys the proxy
    // cannot use, and the kernel would never answer.
    metadata.remove("supported_encryption");
    metadata.insert(
        METADATA_KEY.to_string(),
        json!({
            "wraps": wrapped.name,
            "wrapped_argv": argv,
            "wrapped_dir": wrapped.dir,
            "version": env!("CARGO_PKG_VERSION"),
        }),
    );
    let mut spec = json!({
        "argv": full,
        "display_name": display_name,
        "language": wrapped.spec["language"].as_str().unwrap_or(""),
        "interrupt_mode": wrapped.spec["interrupt_mode"].as_str().unwrap_or("signal"),
        "metadata": metadata,
    });
    if let Some(env) = wrapped.spec.get("env").filter(|e| e.is_object()) {
        spec["env"] = env.clone();
    }
    spec
}

/// The kernels folder a destination means.
pub fn destination_dir(dest: &Destination) -> Result<PathBuf, InstallError> {
    Ok(match dest {
        Destination::User => kernels_dir(&user_data_dir()),
        Destination::SysPrefix => kernels_dir(&sys_prefix()?.join("share/jupyter")),
        Destination::Prefix(prefix) => kernels_dir(&prefix.join("share/jupyter")),
    })
}

/// Writes the lineage kernelspec for `wrapped` under `kernels`, carrying
/// over its logos and other resources. Returns the new kernelspec's folder.
pub fn install(
    wrapped: &Kernelspec,
    options: &WrapOptions,
    kernels: &Path,
) -> Result<PathBuf, InstallError> {
    if let Some(wraps) = wrapped.wraps() {
        return Err(InstallError::AlreadyLineage {
            name: wrapped.name.clone(),
            wraps: wraps.to_string(),
        });
    }
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| format!("{}{NAME_SUFFIX}", wrapped.name))
        .to_lowercase();
    let dir = kernels.join(&name);
    let io = |path: &Path| {
        let path = path.to_owned();
        move |source| InstallError::Io { path, source }
    };
    fs::create_dir_all(&dir).map_err(io(&dir))?;
    if let Ok(entries) = fs::read_dir(&wrapped.dir) {
        for entry in entries.flatten() {
            let from = entry.path();
            if from.file_name().is_some_and(|n| n == "kernel.json") || !from.is_file() {
                continue;
            }
            let to = dir.join(entry.file_name());
            fs::copy(&from, &to).map_err(io(&to))?;
        }
    }
    let spec = wrapping_spec(wrapped, options);
    let path = dir.join("kernel.json");
    let text = serde_json::to_string_pretty(&spec).expect("JSON serialises");
    fs::write(&path, text + "\n").map_err(io(&path))?;
    Ok(dir)
}

/// Removes lineage kernelspec `name` from `kernels`; refuses anything else.
pub fn uninstall(name: &str, kernels: &Path) -> Result<PathBuf, InstallError> {
    let dir = kernels.join(name.to_lowercase());
    if !dir.join("kernel.json").is_file() {
        return Err(InstallError::NotFound {
            name: name.to_string(),
            searched: vec![kernels.to_owned()],
        });
    }
    let spec = read_spec(&dir)?;
    if spec.wraps().is_none() {
        return Err(InstallError::NotLineage { path: dir });
    }
    fs::remove_dir_all(&dir).map_err(|source| InstallError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}

/// The command that starts this very program.
pub fn own_launcher() -> Result<Vec<String>, InstallError> {
    let exe = std::env::current_exe().map_err(InstallError::OwnPath)?;
    Ok(vec![exe.to_string_lossy().into_owned()])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_dir(root: &Path, name: &str, spec: &Value) -> PathBuf {
        let dir = root.join("share/jupyter/kernels").join(name);
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("kernel.json"), spec.to_string()).unwrap();
        fs::write(dir.join("logo-64x64.png"), b"png").unwrap();
        dir
    }

    fn options() -> WrapOptions {
        WrapOptions {
            name: None,
            display_name: None,
            launcher: vec!["/opt/jupyter-lineage".into()],
        }
    }

    #[test]
    fn wraps_python3_with_logos_env_and_metadata() {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir_all(tmp.path().join("bin")).unwrap();
        let python = tmp.path().join("bin/python");
        fs::write(&python, "#!/bin/sh\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&python, fs::Permissions::from_mode(0o755)).unwrap();
        spec_dir(
            tmp.path(),
            "python3",
            &json!({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                    "display_name": "Python 3 (ipykernel)", "language": "python",
                    "env": {"A": "1"},
                    "metadata": {"debugger": true, "supported_encryption": ["curve"]}}),
        );
        let dirs = vec![tmp.path().join("share/jupyter")];
        let wrapped = find("python3", &dirs).unwrap();
        let out = tmp.path().join("out/kernels");
        let dir = install(&wrapped, &options(), &out).unwrap();
        assert_eq!(dir, out.join("python3-lineage"));
        let spec = read_spec(&dir).unwrap();
        assert_eq!(spec.display_name(), "Python 3 (ipykernel) · lineage");
        assert_eq!(spec.wraps(), Some("python3"));
        assert_eq!(spec.spec["language"], "python");
        assert_eq!(spec.spec["interrupt_mode"], "signal");
        assert_eq!(spec.spec["env"]["A"], "1");
        assert_eq!(spec.spec["metadata"]["debugger"], true);
        assert!(spec.spec["metadata"].get("supported_encryption").is_none());
        let argv: Vec<&str> = spec.spec["argv"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        assert_eq!(
            &argv[..7],
            &[
                "/opt/jupyter-lineage",
                "kernel",
                "-f",
                "{connection_file}",
                "--kernelspec",
                "python3",
                "--"
            ]
        );
        assert_eq!(argv[7], python.to_str().unwrap());
        assert!(dir.join("logo-64x64.png").is_file());

        // Wrapping a wrapper is refused; uninstall removes only lineage specs.
        assert!(matches!(
            install(&spec, &options(), &out),
            Err(InstallError::AlreadyLineage { .. })
        ));
        assert!(matches!(
            uninstall("python3", &tmp.path().join("share/jupyter/kernels")),
            Err(InstallError::NotLineage { .. })
        ));
        uninstall("python3-lineage", &out).unwrap();
        assert!(!dir.exists());
    }

    #[test]
    fn missing_and_malformed_specs_name_the_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let dirs = vec![tmp.path().join("a"), tmp.path().join("b")];
        let err = find("ir", &dirs).unwrap_err().to_string();
        assert!(err.contains("\"ir\""), "{err}");
        assert!(err.contains(&tmp.path().join("a/kernels").display().to_string()));
        assert!(err.contains(&tmp.path().join("b/kernels").display().to_string()));

        let dir = tmp.path().join("a/kernels/bad");
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("kernel.json"), "{not json").unwrap();
        let err = find("bad", &dirs).unwrap_err().to_string();
        assert!(
            err.contains("kernel.json") && err.contains("not JSON"),
            "{err}"
        );
        fs::write(
            dir.join("kernel.json"),
            r#"{"argv": [], "display_name": "x"}"#,
        )
        .unwrap();
        let err = find("bad", &dirs).unwrap_err().to_string();
        assert!(err.contains("argv"), "{err}");
        let (found, problems) = find_all(&dirs);
        assert!(found.is_empty());
        assert_eq!(problems.len(), 1);
    }

    #[test]
    fn first_data_dir_wins() {
        let tmp = tempfile::tempdir().unwrap();
        let a = tmp.path().join("a");
        let b = tmp.path().join("b");
        spec_dir(&a, "x", &json!({"argv": ["x"], "display_name": "first"}));
        spec_dir(&b, "x", &json!({"argv": ["x"], "display_name": "second"}));
        let dirs = vec![a.join("share/jupyter"), b.join("share/jupyter")];
        assert_eq!(find("x", &dirs).unwrap().display_name(), "first");
        assert_eq!(find_all(&dirs).0["x"].display_name(), "first");
    }
}
