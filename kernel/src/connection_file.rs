//! Connection files: the client's (which the proxy serves) and the private
//! one the proxy writes for the real kernel.
//!
//! The real kernel gets the client's key and signature scheme, so frames can
//! be forwarded without re-signing (see `wire`). Its sockets live in a
//! private 0700 runtime directory (IPC), or on fresh 127.0.0.1 ports for
//! kernels that cannot do IPC.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use jupyter_protocol::connection_info::{ConnectionInfo, Transport};

#[derive(Debug, thiserror::Error)]
pub enum ConnectionFileError {
    #[error("cannot read connection file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("connection file {path} is not valid: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot create the private runtime directory {path}: {source}")]
    RuntimeDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write the kernel's connection file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no free TCP port on 127.0.0.1: {0}")]
    NoPort(std::io::Error),
}

/// Parses a connection file's text.
pub fn parse(text: &[u8]) -> Result<ConnectionInfo, serde_json::Error> {
    serde_json::from_slice(text)
}

/// Reads the connection file a client (jupyter_client, JupyterLab) wrote.
pub fn read(path: &Path) -> Result<ConnectionInfo, ConnectionFileError> {
    let text = fs::read(path).map_err(|source| ConnectionFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(&text).map_err(|source| ConnectionFileError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// How the proxy talks to the real kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum KernelTransport {
    /// IPC for kernels known to support it, else TCP.
    Auto,
    Ipc,
    Tcp,
}

impl KernelTransport {
    /// Resolves `Auto` from the real kernel's argv. Kernels built on libzmq
    /// with Jupyter's own connection code (ipykernel, xeus) accept
    /// `transport: ipc`; others (IRkernel, evcxr, …) format `ip:port` and
    /// would break, so they get TCP on loopback.
    pub fn resolve(self, argv: &[String]) -> KernelTransport {
        match self {
            KernelTransport::Auto => {
                let ipc_capable = argv.iter().any(|a| {
                    a.contains("ipykernel") || a.ends_with("xpython") || a.ends_with("xcpp")
                });
                if ipc_capable {
                    KernelTransport::Ipc
                } else {
                    KernelTransport::Tcp
                }
            }
            other => other,
        }
    }
}

/// A private directory removed when dropped.
#[derive(Debug)]
pub struct RuntimeDir {
    pub path: PathBuf,
}

impl RuntimeDir {
    /// Creates `jupyter-lineage-<random>` (0700) under `$XDG_RUNTIME_DIR`, or
    /// the system temp dir. Kept short: IPC socket paths must fit in 108 bytes.
    pub fn create() -> Result<RuntimeDir, ConnectionFileError> {
        let base = std::env::var_os("XDG_RUNTIME_DIR")
            .map(PathBuf::from)
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        let name = format!("jl-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let path = base.join(name);
        fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|source| ConnectionFileError::RuntimeDir {
                path: path.clone(),
                source,
            })?;
        // The mode passed to mkdir is filtered by the umask; make sure.
        fs::set_permissions(&path, fs::Permissions::from_mode(0o700)).map_err(|source| {
            ConnectionFileError::RuntimeDir {
                path: path.clone(),
                source,
            }
        })?;
        Ok(RuntimeDir { path })
    }
}

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// The connection info for the real kernel: the client's key and scheme, new
/// endpoints.
pub fn for_kernel(
    client: &ConnectionInfo,
    transport: KernelTransport,
    dir: &RuntimeDir,
) -> Result<ConnectionInfo, ConnectionFileError> {
    let mut info = client.clone();
    match transport {
        KernelTransport::Ipc | KernelTransport::Auto => {
            info.transport = Transport::IPC;
            info.ip = dir.path.join("k").to_string_lossy().into_owned();
            (
                info.shell_port,
                info.iopub_port,
                info.stdin_port,
                info.control_port,
                info.hb_port,
            ) = (1, 2, 3, 4, 5);
        }
        KernelTransport::Tcp => {
            info.transport = Transport::TCP;
            info.ip = "127.0.0.1".into();
            // Hold all five listeners until every port is chosen, so no two
            // are the same; the small race with other processes after we
            // release them is the same one jupyter_client accepts.
            let listeners = (0..5)
                .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ConnectionFileError::NoPort)?;
            let ports = listeners
                .iter()
                .map(|l| l.local_addr().map(|a| a.port()))
                .collect::<Result<Vec<_>, _>>()
                .map_err(ConnectionFileError::NoPort)?;
            (
                info.shell_port,
                info.iopub_port,
                info.stdin_port,
                info.control_port,
                info.hb_port,
            ) = (ports[0], ports[1], ports[2], ports[3], ports[4]);
        }
    }
    Ok(info)
}

/// Writes a connection file readable by its owner only.
pub fn write(info: &ConnectionInfo, path: &Path) -> Result<(), ConnectionFileError> {
    let err = |source| ConnectionFileError::Write {
        path: path.to_owned(),
        source,
    };
    let text = serde_json::to_vec_pretty(info).expect("connection info serialises");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(err)?;
    file.write_all(&text).map_err(err)?;
    Ok(())
}

/// The endpoint the proxy binds for a client, given the client's info and
/// one of its ports. Wildcard addresses are bound as given.
pub fn endpoints(info: &ConnectionInfo) -> Endpoints {
    Endpoints {
        shell: info.shell_url(),
        iopub: info.iopub_url(),
        stdin: info.stdin_url(),
        control: info.control_url(),
        heartbeat: info.hb_url(),
    }
}

/// The five endpoint URLs of one side.
#[derive(Debug, Clone)]
pub struct Endpoints {
    pub shell: String,
    pub iopub: String,
    pub stdin: String,
    pub control: String,
    pub heartbeat: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: &str = r#"{"shell_port": 50001, "iopub_port": 50002, "stdin_port": 50003,
        "control_port": 50004, "hb_port": 50005, "ip": "127.0.0.1", "key": "abc",
        "transport": "tcp", "signature_scheme": "hmac-sha256", "kernel_name": "python3-lineage",
        "jupyter_session": "/home/u/nb.ipynb"}"#;

    #[test]
    fn parses_a_jupyter_client_file_with_extra_fields() {
        let info = parse(CLIENT.as_bytes()).unwrap();
        assert_eq!(info.shell_port, 50001);
        assert_eq!(info.key, "abc");
        assert_eq!(endpoints(&info).iopub, "tcp://127.0.0.1:50002");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse(b"").is_err());
        assert!(parse(b"{\"shell_port\": -1}").is_err());
        assert!(parse(b"\xff\xfe").is_err());
    }

    #[test]
    fn kernel_file_is_private_ipc_with_the_same_key() {
        let client = parse(CLIENT.as_bytes()).unwrap();
        let dir = RuntimeDir::create().unwrap();
        let mode = fs::metadata(&dir.path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let info = for_kernel(&client, KernelTransport::Ipc, &dir).unwrap();
        assert_eq!(info.key, client.key);
        assert_eq!(info.signature_scheme, client.signature_scheme);
        assert!(info.shell_url().starts_with("ipc://"));
        let path = dir.path.join("kernel.json");
        write(&info, &path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read(&path).unwrap(), info);
        let gone = dir.path.clone();
        drop(dir);
        assert!(!gone.exists());
    }

    #[test]
    fn tcp_fallback_uses_distinct_loopback_ports() {
        let client = parse(CLIENT.as_bytes()).unwrap();
        let dir = RuntimeDir::create().unwrap();
        let info = for_kernel(&client, KernelTransport::Tcp, &dir).unwrap();
        let mut ports = vec![
            info.shell_port,
            info.iopub_port,
            info.stdin_port,
            info.control_port,
            info.hb_port,
        ];
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 5);
        assert_eq!(info.ip, "127.0.0.1");
    }

    #[test]
    fn auto_transport_picks_ipc_for_ipykernel_only() {
        let ipy = vec!["python".into(), "-m".into(), "ipykernel_launcher".into()];
        let r = vec![
            "R".into(),
            "--slave".into(),
            "-e".into(),
            "IRkernel::main()".into(),
        ];
        assert_eq!(KernelTransport::Auto.resolve(&ipy), KernelTransport::Ipc);
        assert_eq!(KernelTransport::Auto.resolve(&r), KernelTransport::Tcp);
        assert_eq!(KernelTransport::Tcp.resolve(&ipy), KernelTransport::Tcp);
    }
}
