//! Environment facts recorded with a session: the user, the host, the
//! project's git state and the Python packages of the kernel's environment.
//! Git and the package listing run subprocesses that may take seconds, so
//! they run on a helper thread and come back to the recorder as [`Gathered`].

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use serde_json::Value;

/// Facts gathered off the recorder thread (git, packages), sent back to it.
pub(super) enum Gathered {
    Git {
        uuid: String,
        head: Option<String>,
        dirty: Option<bool>,
    },
    Packages {
        uuid: String,
        json: Vec<u8>,
    },
}

/// Finds the git state of `root` and the packages of `python` on a helper
/// thread and sends them on `tx`, tagged with session `uuid`.
pub(super) fn gather(uuid: String, root: PathBuf, python: Option<PathBuf>, tx: Sender<Gathered>) {
    let spawned = std::thread::Builder::new()
        .name("lineage-gather".into())
        .spawn(move || {
            let (head, dirty) = git_state(&root);
            let _ = tx.send(Gathered::Git {
                uuid: uuid.clone(),
                head,
                dirty,
            });
            if let Some(py) = python {
                if let Some(json) = python_packages(&py) {
                    let _ = tx.send(Gathered::Packages { uuid, json });
                }
            }
        });
    if let Err(e) = spawned {
        tracing::debug!(error = %e, "cannot start the gather thread");
    }
}

/// The interpreter whose packages to list: only for a Python kernel; the
/// configured one, else the kernel's own argv[0] when it is a python, else
/// `python3` from PATH.
pub(super) fn python_for_packages(
    language: Option<&str>,
    configured: Option<&Path>,
    argv: &[String],
) -> Option<PathBuf> {
    if !language?.eq_ignore_ascii_case("python") {
        return None;
    }
    if let Some(p) = configured {
        return Some(p.to_path_buf());
    }
    match argv.first().map(Path::new) {
        Some(p)
            if p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("python")) =>
        {
            Some(p.to_path_buf())
        }
        _ => Some(PathBuf::from("python3")),
    }
}

pub(super) fn user_name() -> Option<String> {
    for var in ["USER", "LOGNAME"] {
        if let Ok(u) = std::env::var(var) {
            if !u.is_empty() {
                return Some(u);
            }
        }
    }
    // SAFETY: getpwuid returns a pointer into static storage or null; we
    // copy the name out immediately on this thread.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if pw.is_null() || (*pw).pw_name.is_null() {
            return None;
        }
        Some(
            std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned(),
        )
    }
}

pub(super) fn host_name() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    Some(String::from_utf8_lossy(&buf[..end]).into_owned()).filter(|s| !s.is_empty())
}

/// Runs a command with a deadline; its stdout if it exited 0.
fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Option<Vec<u8>> {
    use std::io::Read;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let mut stdout = child.stdout.take()?;
    // Read on a helper thread so a chatty child cannot fill the pipe and stall.
    let reader = std::thread::spawn(move || {
        let mut out = Vec::new();
        let _ = stdout.read_to_end(&mut out);
        out
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(s)) => break Some(s),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    let out = reader.join().ok()?;
    status.filter(|s| s.success()).map(|_| out)
}

/// HEAD and whether tracked files differ from it; (None, None) without git.
pub fn git_state(root: &Path) -> (Option<String>, Option<bool>) {
    let timeout = Duration::from_secs(3);
    let head = run_with_timeout(
        Command::new("git")
            .arg("-C")
            .arg(root)
            .args(["rev-parse", "HEAD"]),
        timeout,
    )
    .map(|o| String::from_utf8_lossy(&o).trim().to_string())
    .filter(|s| !s.is_empty());
    if head.is_none() {
        return (None, None);
    }
    let dirty = run_with_timeout(
        Command::new("git").arg("-C").arg(root).args([
            "status",
            "--porcelain",
            "--untracked-files=no",
        ]),
        timeout,
    )
    .map(|o| !o.iter().all(u8::is_ascii_whitespace));
    (head, dirty)
}

/// The installed distributions of `python`'s environment as a JSON list of
/// `{name, version}`, sorted by name. Uses importlib.metadata (works where
/// pip is absent, e.g. uv-made venvs). Runs as its own process, never in
/// the kernel.
pub fn python_packages(python: &Path) -> Option<Vec<u8>> {
    const SCRIPT: &str = "import json, importlib.metadata as m\n\
        seen = {}\n\
        for d in m.distributions():\n\
        \x20   n = d.metadata['Name']\n\
        \x20   if n and n.lower() not in seen: seen[n.lower()] = {'name': n, 'version': d.version}\n\
        print(json.dumps([seen[k] for k in sorted(seen)]))";
    let out = run_with_timeout(
        Command::new(python).args(["-I", "-c", SCRIPT]),
        Duration::from_secs(30),
    )?;
    // Store it canonical (and check it is JSON at all).
    let v: Value = serde_json::from_slice(&out).ok()?;
    serde_json::to_vec(&v).ok()
}
