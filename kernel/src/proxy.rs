//! The proxy kernel's life: bind for clients, launch the real kernel, wait
//! until it really listens, relay, and go down with it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jupyter_protocol::connection_info::{ConnectionInfo, Transport};
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use zeromq::util::PeerIdentity;
use zeromq::{
    DealerSocket, RouterSocket, Socket, SocketOptions, SocketRecv, SocketSend, ZmqMessage,
};

use crate::child::{Exit, RealKernel};
use crate::connection_file::{self, KernelTransport, RuntimeDir};
use crate::project;
use crate::publisher::{Publisher, PublisherError, Subscription, Subscriptions};
use crate::recorder::{self, RecorderConfig, RecorderHandle};
use crate::relay::{self, Shared};
use crate::service::{Service, ServiceContext};
use crate::subscriber::KernelSub;
use crate::tap::{Channel, KernelEvent, Tap, TapEvent};
use crate::wire::{HeaderRef, Layout, OwnMessage, Signer};

/// How long the real kernel has to start listening and answer kernel_info.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages that may wait for the recorder; beyond this they are counted as
/// dropped (a 20k-print cell is 20k messages, and the recorder keeps up).
const TAP_QUEUE: usize = 1 << 17;
/// jupyter_client's shutdown ladder step.
const GRACE: Duration = Duration::from_millis(2500);

#[derive(Debug, Clone)]
pub struct ProxyConfig {
    pub connection_file: PathBuf,
    /// The real kernel's argv, `{connection_file}` still in it.
    pub kernel_argv: Vec<String>,
    /// Name of the wrapped kernelspec, for the record.
    pub kernelspec: Option<String>,
    pub transport: KernelTransport,
}

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error(transparent)]
    ConnectionFile(#[from] connection_file::ConnectionFileError),
    #[error(transparent)]
    Wire(#[from] crate::wire::WireError),
    #[error(transparent)]
    Child(#[from] crate::child::ChildError),
    #[error("cannot bind {endpoint} for clients: {source}")]
    Bind {
        endpoint: String,
        source: zeromq::ZmqError,
    },
    #[error(transparent)]
    Publisher(#[from] PublisherError),
    #[error("cannot connect to the real kernel at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: zeromq::ZmqError,
    },
    #[error("cannot subscribe to the real kernel's iopub at {endpoint}: {source}")]
    Subscribe {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("the real kernel exited ({0}) before it was ready")]
    DiedAtStart(Exit),
    #[error("the real kernel did not answer within {0:?}")]
    StartTimeout(Duration),
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
}

/// What `run` hands to whoever records: the relay's tap, plus a way to stop
/// the recorder and wait for its last writes.
pub trait Recording: Send {
    fn tap(&self) -> Tap;
    fn service(&self) -> Option<Arc<Service>> {
        None
    }
    /// Flushes what is pending; called once, after the kernel is gone.
    fn finish(self: Box<Self>);
}

/// Recording into the project's lineage database, and the comm service that
/// answers questions about it. With recording off (`JUPYTER_LINEAGE=off`)
/// the service still answers, and says recording is off.
pub struct Lineage {
    tap: Tap,
    recorder: Option<RecorderHandle>,
    service: Arc<Service>,
}

impl Lineage {
    /// Starts the recorder for the real kernel `kernel_pid`, unless disabled.
    pub fn start(
        config: &ProxyConfig,
        argv: &[String],
        kernel_pid: u32,
        refused: Arc<AtomicU64>,
    ) -> Lineage {
        let location = project::from_env();
        let notebook_path = location
            .notebook_path
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned());
        let db_path = location.db_path.clone();
        let (tap, recorder) = if recorder::recording_enabled_from_env() {
            let mut rc = RecorderConfig::new(location, argv.to_vec(), kernel_pid);
            rc.kernelspec = config.kernelspec.clone();
            rc.python = argv
                .first()
                .filter(|a| {
                    Path::new(a)
                        .file_name()
                        .is_some_and(|n| n.to_string_lossy().starts_with("python"))
                })
                .map(PathBuf::from);
            let (tap, rx, dropped) = Tap::bounded(TAP_QUEUE);
            let handle = recorder::spawn(rc, rx, dropped);
            (tap, Some(handle))
        } else {
            tracing::info!("recording is off (JUPYTER_LINEAGE=off)");
            (Tap::disabled(), None)
        };
        let service = Service::new(
            ServiceContext {
                db_path,
                notebook_path,
                health: recorder.as_ref().map(|r| r.health.clone()),
                refused: Some(refused),
            },
            recorder.as_ref().map(|r| r.recorded.subscribe()),
        );
        Lineage {
            tap,
            recorder,
            service: Arc::new(service),
        }
    }
}

impl Recording for Lineage {
    fn tap(&self) -> Tap {
        self.tap.clone()
    }
    fn service(&self) -> Option<Arc<Service>> {
        Some(self.service.clone())
    }
    fn finish(self: Box<Self>) {
        let Lineage { tap, recorder, .. } = *self;
        drop(tap);
        if let Some(recorder) = recorder {
            recorder.shutdown();
        }
    }
}

/// Runs the proxy until the real kernel is gone. Returns the kernel's exit.
///
/// `start_recording` is called once the real kernel's pid is known, with the
/// counter of refused client messages (for the health report).
pub async fn run(
    config: ProxyConfig,
    start_recording: impl FnOnce(u32, Arc<AtomicU64>) -> Box<dyn Recording>,
) -> Result<Exit, ProxyError> {
    let client = connection_file::read(&config.connection_file)?;
    let signer = Signer::new(&client.signature_scheme, client.key.as_bytes())?;
    let runtime_dir = RuntimeDir::create()?;
    let transport = config.transport.resolve(&config.kernel_argv);
    let kernel_info = connection_file::for_kernel(&client, transport, &runtime_dir)?;
    let kernel_file = runtime_dir.path.join("kernel.json");
    connection_file::write(&kernel_info, &kernel_file)?;
    let argv = kernel_argv(&config.kernel_argv, &config.connection_file, &kernel_file);

    // Signals first, so none is lost while starting. SIGINT is the
    // interrupt of `interrupt_mode: signal`; it goes to the real kernel.
    let mut sigint = signal(SignalKind::interrupt()).map_err(ProxyError::Signals)?;
    let mut sigterm = signal(SignalKind::terminate()).map_err(ProxyError::Signals)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(ProxyError::Signals)?;

    let client_eps = connection_file::endpoints(&wildcard_as_any(client.clone()));
    let client_shell = bind::<RouterSocket>(&client_eps.shell).await?;
    let client_control = bind::<RouterSocket>(&client_eps.control).await?;
    let client_stdin = bind::<RouterSocket>(&client_eps.stdin).await?;
    let (client_iopub, mut iopub_subscriptions) = Publisher::bind(&client_eps.iopub).await?;
    let client_hb = bind::<RouterSocket>(&client_eps.heartbeat).await?;

    let kernel = RealKernel::launch(&argv, None).await?;
    tracing::info!(
        pid = kernel.pid,
        transport = ?transport,
        "started the real kernel: {}",
        argv.join(" ")
    );
    let refused = Arc::new(AtomicU64::new(0));
    let recording = start_recording(kernel.pid, refused.clone());

    let started = Instant::now();
    let connected = tokio::select! {
        c = connect_to_kernel(&kernel_info) => c?,
        exit = kernel.wait() => return Err(ProxyError::DiedAtStart(exit)),
        _ = tokio::time::sleep(START_TIMEOUT) => {
            kernel.signal(libc::SIGKILL);
            return Err(ProxyError::StartTimeout(START_TIMEOUT));
        }
    };
    let KernelSockets {
        mut shell,
        control,
        stdin,
        mut iopub,
        heartbeat,
    } = connected;

    // The heartbeat relays from the start: clients ping while we wait.
    let (hb_to_client, hb_from_client) = client_hb.split();
    let (hb_to_kernel, hb_from_kernel) = heartbeat.split();
    tokio::spawn(relay::heartbeat_to_kernel(hb_from_client, hb_to_kernel));
    tokio::spawn(relay::heartbeat_to_client(hb_from_kernel, hb_to_client));

    let ready = tokio::select! {
        r = wait_ready(&signer, &mut shell, &mut iopub, &mut iopub_subscriptions) => r,
        exit = kernel.wait() => return Err(ProxyError::DiedAtStart(exit)),
        _ = tokio::time::sleep(START_TIMEOUT) => {
            kernel.signal(libc::SIGKILL);
            return Err(ProxyError::StartTimeout(START_TIMEOUT));
        }
    };
    tracing::info!(
        "the real kernel is ready after {:?} (session {})",
        started.elapsed(),
        ready.session
    );
    let tap = recording.tap();
    tap.send(TapEvent::Kernel(KernelEvent::Ready {
        session: ready.session.clone(),
        kernel_info: ready.kernel_info,
    }));

    let shared = Arc::new(Shared {
        signer: signer.clone(),
        tap: tap.clone(),
        service: recording.service(),
        last_activity: AtomicU64::new(0),
        epoch: Instant::now(),
        refused,
    });
    let (own_tx, own_rx) = mpsc::unbounded_channel::<OwnMessage>();
    if let Some(service) = &shared.service {
        service.start(own_tx.clone(), ready.session.clone());
    }
    drop(own_tx);

    let (shell_to_client, shell_from_client) = client_shell.split();
    let (shell_to_kernel, shell_from_kernel) = shell.split();
    let (control_to_client, control_from_client) = client_control.split();
    let (control_to_kernel, control_from_kernel) = control.split();
    let (stdin_to_client, stdin_from_client) = client_stdin.split();
    let (stdin_to_kernel, stdin_from_kernel) = stdin.split();

    tokio::spawn(relay::client_to_kernel(
        shared.clone(),
        "shell",
        Channel::ShellRequest,
        shell_from_client,
        shell_to_kernel,
    ));
    tokio::spawn(relay::kernel_to_client(
        shared.clone(),
        "shell",
        Some(Channel::ShellReply),
        shell_from_kernel,
        shell_to_client,
    ));
    tokio::spawn(relay::client_to_kernel(
        shared.clone(),
        "control",
        Channel::ControlRequest,
        control_from_client,
        control_to_kernel,
    ));
    tokio::spawn(relay::kernel_to_client(
        shared.clone(),
        "control",
        None,
        control_from_kernel,
        control_to_client,
    ));
    tokio::spawn(relay::stdin_to_kernel(
        shared.clone(),
        stdin_from_client,
        stdin_to_kernel,
    ));
    tokio::spawn(relay::kernel_to_client(
        shared.clone(),
        "stdin",
        None,
        stdin_from_kernel,
        stdin_to_client,
    ));
    tokio::spawn(relay::iopub(
        shared.clone(),
        iopub,
        client_iopub.clone(),
        iopub_subscriptions,
        own_rx,
        ready.session.clone(),
        ready.pending_subscriptions,
    ));

    // Like ipykernel's ParentPollerUnix: when the process that launched us
    // (the Jupyter server) dies, we are reparented, and the kernel must not
    // live on as an orphan nobody can reach.
    let parent = std::os::unix::process::parent_id();
    let watch_parent = std::env::var_os("JPY_PARENT_PID").is_some() && parent > 1;
    let mut parent_check = tokio::time::interval(Duration::from_secs(1));
    let exit = loop {
        tokio::select! {
            exit = kernel.wait() => break exit,
            _ = parent_check.tick(), if watch_parent => {
                if std::os::unix::process::parent_id() != parent {
                    tracing::warn!("the process that started this kernel ({parent}) is gone: stopping");
                    kernel.signal(libc::SIGTERM);
                    break kernel.stop(GRACE).await;
                }
            }
            _ = sigint.recv() => {
                tracing::info!("SIGINT: interrupting the real kernel");
                kernel.signal(libc::SIGINT);
            }
            _ = sigterm.recv() => {
                tracing::info!("SIGTERM: stopping the real kernel");
                kernel.signal(libc::SIGTERM);
                break kernel.stop(GRACE).await;
            }
            _ = sighup.recv() => {
                tracing::info!("SIGHUP: stopping the real kernel");
                kernel.signal(libc::SIGHUP);
                break kernel.stop(GRACE).await;
            }
        }
    };
    if exit.code == Some(0) {
        tracing::info!("the real kernel exited ({exit})");
    } else {
        tracing::warn!("the real kernel exited ({exit})");
    }
    // Let the relay pass on what the kernel sent last (its shutdown_reply,
    // the final iopub): wait until it has been quiet a moment.
    let drain_start = Instant::now();
    while shared.idle_for() < Duration::from_millis(50)
        && drain_start.elapsed() < Duration::from_secs(1)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Publishing only queues: give the last of it a moment to reach clients.
    let drain_left = Duration::from_secs(1).saturating_sub(drain_start.elapsed());
    client_iopub
        .drained(drain_left.max(Duration::from_millis(100)))
        .await;
    tap.send(TapEvent::Kernel(KernelEvent::Exited {
        code: exit.code,
        signal: exit.signal,
    }));
    drop(tap);
    drop(shared);
    tokio::task::spawn_blocking(move || recording.finish())
        .await
        .ok();
    drop(runtime_dir);
    Ok(exit)
}

/// The real kernel's argv, pointed at its own connection file. Jupyter
/// substitutes `{connection_file}` throughout a kernelspec's argv, the
/// wrapped part included, so the client's path stands where the kernel's must
/// go; a literal placeholder (the proxy started by hand) is replaced too.
fn kernel_argv(argv: &[String], client_file: &Path, kernel_file: &Path) -> Vec<String> {
    let client = client_file.to_string_lossy();
    let kernel = kernel_file.to_string_lossy();
    argv.iter()
        .map(|a| {
            let a = a.replace("{connection_file}", &kernel);
            if client.is_empty() {
                a
            } else {
                a.replace(client.as_ref(), &kernel)
            }
        })
        .collect()
}

/// Connection files may name `*` or `0.0.0.0`; bind those as any-address.
fn wildcard_as_any(mut info: ConnectionInfo) -> ConnectionInfo {
    if info.transport == Transport::TCP && (info.ip == "*" || info.ip.is_empty()) {
        info.ip = "0.0.0.0".into();
    }
    info
}

async fn bind<S: Socket>(endpoint: &str) -> Result<S, ProxyError> {
    let mut socket = S::new();
    socket
        .bind(endpoint)
        .await
        .map_err(|source| ProxyError::Bind {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(socket)
}

struct KernelSockets {
    shell: DealerSocket,
    control: DealerSocket,
    stdin: DealerSocket,
    iopub: KernelSub,
    heartbeat: DealerSocket,
}

/// Waits until the real kernel listens, then connects the proxy's client-side
/// sockets. zeromq's own connect retries with a backoff that doubles up to
/// seconds; polling for the endpoint ourselves keeps kernel start fast.
async fn connect_to_kernel(info: &ConnectionInfo) -> Result<KernelSockets, ProxyError> {
    let eps = connection_file::endpoints(info);
    for ep in [
        &eps.shell,
        &eps.iopub,
        &eps.stdin,
        &eps.control,
        &eps.heartbeat,
    ] {
        wait_listening(ep).await;
    }
    // ipykernel sends input_request to the identities of the shell request,
    // so the shell and stdin DEALERs must share one routing id.
    let identity =
        PeerIdentity::try_from(format!("lineage-{}", uuid::Uuid::new_v4().simple()).into_bytes())
            .expect("a short identity is valid");
    let with_identity = || {
        let mut options = SocketOptions::default();
        options.peer_identity(identity.clone());
        options
    };
    let shell = connect(DealerSocket::with_options(with_identity()), &eps.shell).await?;
    let stdin = connect(DealerSocket::with_options(with_identity()), &eps.stdin).await?;
    let control = connect(DealerSocket::new(), &eps.control).await?;
    let heartbeat = connect(DealerSocket::new(), &eps.heartbeat).await?;
    let iopub = KernelSub::connect(&eps.iopub)
        .await
        .map_err(|source| ProxyError::Subscribe {
            endpoint: eps.iopub.clone(),
            source,
        })?;
    Ok(KernelSockets {
        shell,
        control,
        stdin,
        iopub,
        heartbeat,
    })
}

async fn connect<S: Socket>(mut socket: S, endpoint: &str) -> Result<S, ProxyError> {
    socket
        .connect(endpoint)
        .await
        .map_err(|source| ProxyError::Connect {
            endpoint: endpoint.to_string(),
            source,
        })?;
    Ok(socket)
}

/// Polls until something listens at `endpoint` (an IPC socket file exists, or
/// a TCP port accepts).
async fn wait_listening(endpoint: &str) {
    // A short fixed period: this wait is on the kernel's start-up path.
    let delay = Duration::from_millis(5);
    loop {
        let up = if let Some(path) = endpoint.strip_prefix("ipc://") {
            Path::new(path).exists()
        } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
            tokio::net::TcpStream::connect(addr).await.is_ok()
        } else {
            true
        };
        if up {
            return;
        }
        tokio::time::sleep(delay).await;
    }
}

struct Ready {
    session: String,
    kernel_info: serde_json::Value,
    /// Client subscriptions seen while waiting; each gets its welcome.
    pending_subscriptions: Vec<Subscription>,
}

/// Sends the proxy's own kernel_info_request until the real kernel answers
/// on shell *and* something arrives on iopub: only then is the proxy's iopub
/// subscription live, so no output of a client's first request is lost (the
/// same dance as jupyter_client's `wait_for_ready`).
async fn wait_ready(
    signer: &Signer,
    shell: &mut DealerSocket,
    iopub: &mut KernelSub,
    client_subscriptions: &mut Subscriptions,
) -> Ready {
    let proxy_session = uuid::Uuid::new_v4().to_string();
    let mut reply: Option<(String, serde_json::Value)> = None;
    let mut iopub_live = false;
    let mut iopub_closed = false;
    let mut pending_subscriptions = Vec::new();
    let mut resend = tokio::time::interval(Duration::from_millis(250));
    loop {
        if let (Some((session, kernel_info)), true) = (&reply, iopub_live) {
            return Ready {
                session: session.clone(),
                kernel_info: kernel_info.clone(),
                pending_subscriptions,
            };
        }
        tokio::select! {
            _ = resend.tick() => {
                let request = OwnMessage::new("kernel_info_request", &proxy_session, serde_json::json!({}));
                let frames = request.to_frames(signer, &[]);
                if let Ok(message) = ZmqMessage::try_from(frames) {
                    if let Err(e) = shell.send(message).await {
                        tracing::debug!("kernel_info_request not sent yet: {e}");
                    }
                }
            }
            message = shell.recv() => {
                let Ok(message) = message else { continue };
                let frames = relay::frames_of(message);
                let Ok(layout) = Layout::of(&frames) else { continue };
                let Ok(header) = HeaderRef::parse(layout.header(&frames)) else { continue };
                if header.msg_type == "kernel_info_reply" {
                    let content = serde_json::from_slice(layout.content(&frames)).unwrap_or_default();
                    reply = Some((header.session.to_string(), content));
                }
            }
            message = iopub.recv(), if !iopub_closed => {
                match message {
                    Ok(_) => iopub_live = true,
                    Err(e) => {
                        // The kernel is going away; its exit ends the wait.
                        tracing::warn!("iopub of the real kernel: {e}");
                        iopub_closed = true;
                    }
                }
            }
            Some(subscription) = client_subscriptions.recv() => {
                pending_subscriptions.push(subscription);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_argv_points_at_the_private_file() {
        let argv: Vec<String> = ["python", "-m", "ipykernel_launcher", "-f", "/run/c.json"]
            .map(String::from)
            .into();
        let out = kernel_argv(&argv, Path::new("/run/c.json"), Path::new("/p/k.json"));
        assert_eq!(out[4], "/p/k.json");
        let argv: Vec<String> = ["k", "--connection={connection_file}"]
            .map(String::from)
            .into();
        let out = kernel_argv(&argv, Path::new("/run/c.json"), Path::new("/p/k.json"));
        assert_eq!(out[1], "--connection=/p/k.json");
    }
}
