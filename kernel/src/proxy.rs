//! The proxy kernel's life, in the order `run` reads: bind for clients,
//! launch the real kernel, wait until it really listens, spawn the relays,
//! supervise the kernel, and shut down with it.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jupyter_protocol::connection_info::{ConnectionInfo, Transport};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;
use zeromq::{DealerSocket, RouterSocket, Socket};

use crate::child::{Exit, RealKernel};
use crate::client_iopub::{ClientIopub, ClientIopubError, Subscription, Subscriptions};
use crate::connection_file::{self, KernelTransport, RuntimeDir};
use crate::kernel_dealer::{self, KernelDealerRecv, KernelDealerSend};
use crate::kernel_iopub::KernelIopub;
use crate::links::{self, ClientReplies, KernelEndpoints, Links};
use crate::project;
use crate::recorder::{self, RecorderConfig, RecorderHandle};
use crate::relay::{self, Shared};
use crate::service::{Service, ServiceContext};
use crate::tap::{Channel, KernelEvent, Tap, TapEvent};
use crate::tasks::{self, Barrier, Tasks};
use crate::wire::{HeaderRef, Layout, OwnMessage, Signer};

/// How long the real kernel has to start listening and answer kernel_info.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Messages that may wait for the recorder; beyond this they are counted as
/// dropped (a 20k-print cell is 20k messages, and the recorder keeps up).
const TAP_QUEUE: usize = 1 << 17;
/// jupyter_client's shutdown ladder step.
const GRACE: Duration = Duration::from_millis(2500);
/// After the kernel's exit, how long its sockets and our iopub subscribers
/// may take to finish (libzmq's `ZMQ_LINGER` as jupyter_client sets it, 1 s).
/// Only a peer that does not read, or a socket held open by a process the
/// kernel forked, makes the proxy wait this long.
const LINGER: Duration = Duration::from_secs(1);

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
    ClientIopub(#[from] ClientIopubError),
    #[error("cannot connect to the real kernel at {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the real kernel's heartbeat at {endpoint}: {source}")]
    Heartbeat {
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
    let plan = Plan::prepare(&config)?;
    // Signals first, so none is lost while starting.
    let mut signals = Signals::install()?;
    let mut clients = ClientSockets::bind(&plan.client).await?;

    let kernel = RealKernel::launch(&plan.argv, None).await?;
    tracing::info!(
        pid = kernel.pid,
        transport = ?plan.transport,
        "started the real kernel: {}",
        plan.argv.join(" ")
    );
    let refused = Arc::new(AtomicU64::new(0));
    let recording = start_recording(kernel.pid, refused.clone());
    let (tasks, barrier) = tasks::tasks();
    let (sockets, ready) = start_up(&kernel, &plan, &mut clients, &tasks).await?;

    let tap = recording.tap();
    tap.send(TapEvent::Kernel(KernelEvent::Ready {
        session: ready.session.clone(),
        kernel_info: ready.kernel_info.clone(),
    }));
    let shared = Arc::new(Shared {
        signer: plan.signer.clone(),
        tap: tap.clone(),
        service: recording.service(),
        refused,
    });
    let client_iopub = clients.iopub.clone();
    spawn_relays(&tasks, shared, clients, sockets, ready);

    let exit = supervise(&kernel, &mut signals).await;
    if exit.code == Some(0) {
        tracing::info!("the real kernel exited ({exit})");
    } else {
        tracing::warn!("the real kernel exited ({exit})");
    }
    shut_down(exit, tasks, barrier, &client_iopub, tap, recording).await;
    drop(plan);
    Ok(exit)
}

/// The files and keys a run needs before anything listens.
struct Plan {
    client: ConnectionInfo,
    signer: Signer,
    transport: KernelTransport,
    kernel: ConnectionInfo,
    /// The real kernel's argv, pointed at `kernel`'s connection file.
    argv: Vec<String>,
    /// Removed (with the kernel's connection file and IPC sockets) on drop.
    _runtime_dir: RuntimeDir,
}

impl Plan {
    fn prepare(config: &ProxyConfig) -> Result<Plan, ProxyError> {
        let client = connection_file::read(&config.connection_file)?;
        let signer = Signer::new(&client.signature_scheme, client.key.as_bytes())?;
        let runtime_dir = RuntimeDir::create()?;
        let transport = config.transport.resolve(&config.kernel_argv);
        let kernel = connection_file::for_kernel(&client, transport, &runtime_dir)?;
        let kernel_file = runtime_dir.path.join("kernel.json");
        connection_file::write(&kernel, &kernel_file)?;
        let argv = kernel_argv(&config.kernel_argv, &config.connection_file, &kernel_file);
        Ok(Plan {
            client,
            signer,
            transport,
            kernel,
            argv,
            _runtime_dir: runtime_dir,
        })
    }
}

/// The signals the proxy acts on. SIGINT is the interrupt of
/// `interrupt_mode: signal`; it goes to the real kernel.
struct Signals {
    interrupt: Signal,
    terminate: Signal,
    hangup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, ProxyError> {
        let install = |kind| signal(kind).map_err(ProxyError::Signals);
        Ok(Signals {
            interrupt: install(SignalKind::interrupt())?,
            terminate: install(SignalKind::terminate())?,
            hangup: install(SignalKind::hangup())?,
        })
    }
}

/// The proxy acting as a kernel: what clients connect to.
struct ClientSockets {
    shell: RouterSocket,
    control: RouterSocket,
    stdin: RouterSocket,
    iopub: ClientIopub,
    iopub_subscriptions: Subscriptions,
    heartbeat: Option<RouterSocket>,
}

impl ClientSockets {
    async fn bind(client: &ConnectionInfo) -> Result<ClientSockets, ProxyError> {
        let eps = connection_file::endpoints(&wildcard_as_any(client.clone()));
        let shell = bind::<RouterSocket>(&eps.shell).await?;
        let control = bind::<RouterSocket>(&eps.control).await?;
        let stdin = bind::<RouterSocket>(&eps.stdin).await?;
        let (iopub, iopub_subscriptions) = ClientIopub::bind(&eps.iopub).await?;
        let heartbeat = bind::<RouterSocket>(&eps.heartbeat).await?;
        Ok(ClientSockets {
            shell,
            control,
            stdin,
            iopub,
            iopub_subscriptions,
            heartbeat: Some(heartbeat),
        })
    }
}

/// Connects to the real kernel once it listens and waits until it answers,
/// relaying the heartbeat meanwhile (clients ping while we wait).
async fn start_up(
    kernel: &RealKernel,
    plan: &Plan,
    clients: &mut ClientSockets,
    tasks: &Tasks,
) -> Result<(KernelSockets, Ready), ProxyError> {
    let started = Instant::now();
    let mut sockets = tokio::select! {
        c = connect_to_kernel(&plan.kernel) => c?,
        exit = kernel.wait() => return Err(ProxyError::DiedAtStart(exit)),
        _ = tokio::time::sleep(START_TIMEOUT) => {
            kernel.signal(libc::SIGKILL);
            return Err(ProxyError::StartTimeout(START_TIMEOUT));
        }
    };
    if let (Some(client_hb), Some(kernel_hb)) = (clients.heartbeat.take(), sockets.heartbeat.take())
    {
        let (hb_to_client, hb_from_client) = client_hb.split();
        let (hb_to_kernel, hb_from_kernel) = kernel_hb.split();
        tasks.spawn_until_stopped(relay::heartbeat_to_kernel(hb_from_client, hb_to_kernel));
        tasks.spawn_until_stopped(relay::heartbeat_to_client(hb_from_kernel, hb_to_client));
    }
    let ready = tokio::select! {
        r = wait_ready(&plan.signer, &mut sockets, &mut clients.iopub_subscriptions) => r,
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
    Ok((sockets, ready))
}

/// One task per channel direction. The client-facing readers stop when the
/// barrier says so; the kernel-facing ones end with the kernel's sockets.
fn spawn_relays(
    tasks: &Tasks,
    shared: Arc<Shared>,
    clients: ClientSockets,
    kernel: KernelSockets,
    ready: Ready,
) {
    let (own_tx, own_rx) = mpsc::unbounded_channel::<OwnMessage>();
    if let Some(service) = &shared.service {
        service.start(own_tx, ready.session.clone());
    }
    let (shell_to_client, shell_from_client) = clients.shell.split();
    let (control_to_client, control_from_client) = clients.control.split();
    let (stdin_to_client, stdin_from_client) = clients.stdin.split();
    // Each client's link is made on its first message; its readers (kernel
    // to client) end with the kernel's sockets.
    let links = Arc::new(Links::new(
        shared.clone(),
        kernel.endpoints,
        ClientReplies {
            shell: shell_to_client,
            control: control_to_client,
            stdin: stdin_to_client,
        },
        tasks.clone(),
    ));

    tasks.spawn_until_stopped(relay::client_to_kernel(
        shared.clone(),
        links.clone(),
        "shell",
        Channel::ShellRequest,
        shell_from_client,
    ));
    tasks.spawn_until_stopped(relay::client_to_kernel(
        shared.clone(),
        links.clone(),
        "control",
        Channel::ControlRequest,
        control_from_client,
    ));
    tasks.spawn_until_stopped(relay::stdin_to_kernel(
        shared.clone(),
        links.clone(),
        stdin_from_client,
    ));
    tasks.spawn_until_stopped(async move {
        let mut sweep = tokio::time::interval(links::IDLE_CLOSE / 4);
        loop {
            sweep.tick().await;
            links.sweep();
        }
    });
    tasks.spawn(relay::iopub(
        shared,
        kernel.iopub,
        clients.iopub,
        clients.iopub_subscriptions,
        own_rx,
        ready.session,
        ready.pending_subscriptions,
    ));
}

/// Waits for the real kernel to exit, passing signals on to it. Like
/// ipykernel's ParentPollerUnix, it also stops the kernel when the process
/// that launched us (the Jupyter server) dies: we are reparented then, and
/// the kernel must not live on as an orphan nobody can reach.
async fn supervise(kernel: &RealKernel, signals: &mut Signals) -> Exit {
    let parent = std::os::unix::process::parent_id();
    let watch_parent = std::env::var_os("JPY_PARENT_PID").is_some() && parent > 1;
    let mut parent_check = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            exit = kernel.wait() => return exit,
            _ = parent_check.tick(), if watch_parent => {
                if std::os::unix::process::parent_id() != parent {
                    tracing::warn!("the process that started this kernel ({parent}) is gone: stopping");
                    kernel.signal(libc::SIGTERM);
                    return kernel.stop(GRACE).await;
                }
            }
            _ = signals.interrupt.recv() => {
                tracing::info!("SIGINT: interrupting the real kernel");
                kernel.signal(libc::SIGINT);
            }
            _ = signals.terminate.recv() => {
                tracing::info!("SIGTERM: stopping the real kernel");
                kernel.signal(libc::SIGTERM);
                return kernel.stop(GRACE).await;
            }
            _ = signals.hangup.recv() => {
                tracing::info!("SIGHUP: stopping the real kernel");
                kernel.signal(libc::SIGHUP);
                return kernel.stop(GRACE).await;
            }
        }
    }
}

/// After the kernel's exit: the relay passes on what the kernel sent last
/// (its shutdown_reply, the final iopub) and ends when the kernel's sockets
/// close; iopub writes out what it queued for clients; the recorder stores
/// the exit and commits. Each step waits for completion, none for quiet.
async fn shut_down(
    exit: Exit,
    tasks: Tasks,
    barrier: Barrier,
    client_iopub: &ClientIopub,
    tap: Tap,
    recording: Box<dyn Recording>,
) {
    if !barrier.shut_down(tasks, LINGER).await {
        tracing::debug!("the kernel's sockets stayed open after it exited (held by a child?)");
    }
    // zeromq's ROUTER only queues a reply for a writer task of its own: let
    // every task that is ready run once more, so the last replies reach the
    // socket before the runtime stops.
    tokio::task::yield_now().await;
    if !client_iopub.close(LINGER).await {
        tracing::debug!("a client did not read its last iopub messages within {LINGER:?}");
    }
    tap.send(TapEvent::Kernel(KernelEvent::Exited {
        code: exit.code,
        signal: exit.signal,
    }));
    drop(tap);
    tokio::task::spawn_blocking(move || recording.finish())
        .await
        .ok();
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

/// The proxy acting as a client: its sockets on the real kernel. Shell,
/// control and stdin get one DEALER per client later (`links`); `start_up`
/// is the proxy's own, for its kernel_info_request while the kernel starts.
struct KernelSockets {
    endpoints: KernelEndpoints,
    start_up: (KernelDealerRecv, KernelDealerSend),
    iopub: KernelIopub,
    heartbeat: Option<DealerSocket>,
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
    let identity = format!("lineage-{}", uuid::Uuid::new_v4().simple()).into_bytes();
    let start_up = kernel_dealer::connect(&eps.shell, &identity)
        .await
        .map_err(|source| ProxyError::Connect {
            endpoint: eps.shell.clone(),
            source,
        })?;
    let mut heartbeat = DealerSocket::new();
    heartbeat
        .connect(&eps.heartbeat)
        .await
        .map_err(|source| ProxyError::Heartbeat {
            endpoint: eps.heartbeat.clone(),
            source,
        })?;
    let iopub = KernelIopub::connect(&eps.iopub)
        .await
        .map_err(|source| ProxyError::Subscribe {
            endpoint: eps.iopub.clone(),
            source,
        })?;
    Ok(KernelSockets {
        endpoints: KernelEndpoints {
            shell: eps.shell.clone(),
            control: eps.control.clone(),
            stdin: eps.stdin.clone(),
        },
        start_up,
        iopub,
        heartbeat: Some(heartbeat),
    })
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
    kernel: &mut KernelSockets,
    client_subscriptions: &mut Subscriptions,
) -> Ready {
    let proxy_session = uuid::Uuid::new_v4().to_string();
    let mut reply: Option<(String, serde_json::Value)> = None;
    let mut iopub_live = false;
    let mut iopub_closed = false;
    let mut shell_closed = false;
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
                if let Err(e) = kernel.start_up.1.send(&frames).await {
                    tracing::debug!("kernel_info_request not sent: {e}");
                }
            }
            message = kernel.start_up.0.recv(), if !shell_closed => {
                let frames = match message {
                    Ok(frames) => frames,
                    Err(e) => {
                        // The kernel is going away; its exit ends the wait.
                        tracing::warn!("shell of the real kernel: {e}");
                        shell_closed = true;
                        continue;
                    }
                };
                let Ok(layout) = Layout::of(&frames) else { continue };
                let Ok(header) = HeaderRef::parse(layout.header(&frames)) else { continue };
                if header.msg_type == "kernel_info_reply" {
                    let content = serde_json::from_slice(layout.content(&frames)).unwrap_or_default();
                    reply = Some((header.session.to_string(), content));
                }
            }
            message = kernel.iopub.recv(), if !iopub_closed => {
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
