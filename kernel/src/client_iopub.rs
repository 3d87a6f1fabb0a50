//! The client-facing iopub socket: an XPUB that speaks ZMTP 3.0 (NULL
//! mechanism, the codec is `zmtp`) itself, on plain tokio sockets.
//!
//! zeromq 0.7's `XPubSocket::send` writes to each subscriber in turn and
//! awaits each one: a client that subscribes and never reads stalls iopub for
//! every client once its TCP buffers fill. libzmq's PUB instead queues per
//! subscriber and drops for one whose queue is full (`ZMQ_SNDHWM`, 1000
//! messages); this does the same. `send` never blocks and never awaits: it
//! pushes a refcounted copy of the message into each matching subscriber's
//! bounded queue, and one task per connection writes its queue out.
//!
//! Subscriptions take effect when the owner accepts them (`accept`), like
//! libzmq's `ZMQ_XPUB_MANUAL`: the proxy queues the subscriber's
//! `iopub_welcome` in the same step, so the welcome is the first message a
//! new subscriber gets, as JEP 65 and the conformance suite expect.
//!
//! Subscribers may speak ZMTP 3.0 (`\x01topic` messages) or 3.1
//! (SUBSCRIBE/CANCEL/PING commands); see `zmtp` for the specifications.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};

use crate::zmtp::{self, Role, ZmtpError, FLAG_COMMAND};

/// Messages queued per subscriber before its messages are dropped: libzmq's
/// default `ZMQ_SNDHWM`.
pub const DEFAULT_HWM: usize = 1000;
/// Subscribers only send subscriptions and heartbeats, all tiny; anything
/// bigger is a confused or hostile peer.
const MAX_INCOMING_FRAME: u64 = 1 << 20;
/// Topics one subscriber may hold (Jupyter clients hold one, `""`).
const MAX_TOPICS: usize = 10_000;
/// libzmq's `ZMQ_HANDSHAKE_IVL` default.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Coalesces small frames into few writes; a frame at least this big is
/// written straight from its `Bytes`, never copied.
const WRITE_BUFFER: usize = 64 * 1024;
/// Messages taken off a queue per flush.
const BATCH: usize = 256;
/// Frames queued for the writer besides messages (PONGs).
const CONTROL_QUEUE: usize = 4;

/// Identifies one subscriber connection for the life of the publisher.
pub type SubscriberId = u64;

/// A subscriber asked for `topic` (a prefix of the first frame); it takes
/// effect when `ClientIopub::accept`ed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub subscriber: SubscriberId,
    pub topic: Bytes,
}

/// Subscribe requests, in the order they arrived, for as long as the
/// publisher lives. Each waits for `ClientIopub::accept`.
pub type Subscriptions = mpsc::UnboundedReceiver<Subscription>;

/// One subscriber as `ClientIopub::subscribers` reports it.
#[derive(Debug, Clone)]
pub struct SubscriberStats {
    pub id: SubscriberId,
    /// The peer's address (`ip:port`, or the socket path for IPC).
    pub peer: String,
    /// Accepted topics.
    pub topics: Vec<Bytes>,
    /// Messages not delivered because its queue was full.
    pub dropped: u64,
    /// Messages queued or being written.
    pub pending: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientIopubError {
    #[error("unsupported endpoint {0:?}: expected tcp://HOST:PORT or ipc://PATH")]
    Endpoint(String),
    #[error("cannot bind {endpoint}: {source}")]
    Bind { endpoint: String, source: io::Error },
}

/// Why a subscriber's connection was closed.
#[derive(Debug, thiserror::Error)]
enum SubscriberError {
    #[error(transparent)]
    Zmtp(#[from] ZmtpError),
    #[error("more than {MAX_TOPICS} subscriptions")]
    TooManyTopics,
}

impl From<io::Error> for SubscriberError {
    fn from(e: io::Error) -> SubscriberError {
        SubscriberError::Zmtp(ZmtpError::Io(e))
    }
}

type Message = Arc<Vec<Bytes>>;

struct Subscriber {
    peer: String,
    /// Accepted topics. A multiset, like libzmq's subscription trie:
    /// subscribing twice needs two unsubscribes.
    topics: Vec<Bytes>,
    /// Requested, not accepted yet.
    requested: Vec<Bytes>,
    queue: mpsc::Sender<Message>,
    dropped: u64,
    pending: Arc<AtomicUsize>,
}

impl Subscriber {
    fn matches(&self, first_frame: &[u8]) -> bool {
        self.topics.iter().any(|t| first_frame.starts_with(t))
    }

    /// Queues without waiting; counts (and once, logs) a message the
    /// subscriber has no room for.
    fn push(&mut self, message: &Message, total_dropped: &AtomicU64) -> bool {
        self.pending.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(message.clone()) {
            Ok(()) => true,
            Err(e) => {
                self.pending.fetch_sub(1, Ordering::Relaxed);
                if let mpsc::error::TrySendError::Full(_) = e {
                    self.dropped += 1;
                    total_dropped.fetch_add(1, Ordering::Relaxed);
                    if self.dropped == 1 {
                        tracing::warn!(
                            "iopub: subscriber {} does not keep up; dropping its messages \
                             while {} are queued for it",
                            self.peer,
                            self.queue.max_capacity()
                        );
                    }
                }
                false
            }
        }
    }
}

struct Inner {
    subscribers: Mutex<HashMap<SubscriberId, Subscriber>>,
    next_id: AtomicU64,
    events: mpsc::UnboundedSender<Subscription>,
    hwm: usize,
    dropped: AtomicU64,
    cancel: CancellationToken,
    /// Set by `close`: no subscriber joins after it.
    closing: AtomicBool,
    /// Each connection task holds a clone until it ends; `close` drops this
    /// one and waits on `closed`.
    connections: Mutex<Option<mpsc::Sender<()>>>,
    closed: tokio::sync::Mutex<mpsc::Receiver<()>>,
}

impl Inner {
    /// A token a connection holds while it lives; None once closing.
    fn connection_guard(&self) -> Option<mpsc::Sender<()>> {
        self.connection_guard_source().clone()
    }

    fn connection_guard_source(&self) -> MutexGuard<'_, Option<mpsc::Sender<()>>> {
        self.connections
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Short critical sections only, never across an await; a panic while
    /// holding it (there is no code that can) must not take iopub down.
    fn subscribers(&self) -> MutexGuard<'_, HashMap<SubscriberId, Subscriber>> {
        self.subscribers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The client-facing iopub XPUB. Clones share the socket; it closes (every
/// connection and the listener) when the last clone is dropped.
#[derive(Clone)]
pub struct ClientIopub {
    inner: Arc<Inner>,
    endpoint: String,
    _close: Arc<DropGuard>,
}

impl std::fmt::Debug for ClientIopub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientIopub")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener, PathBuf),
}

impl ClientIopub {
    /// Binds `tcp://HOST:PORT` (`*` for any address, port 0 for any port) or
    /// `ipc://PATH` with the default high-water mark.
    pub async fn bind(endpoint: &str) -> Result<(ClientIopub, Subscriptions), ClientIopubError> {
        ClientIopub::bind_with_hwm(endpoint, DEFAULT_HWM).await
    }

    /// Like `bind`, with `hwm` messages queued per subscriber at most.
    pub async fn bind_with_hwm(
        endpoint: &str,
        hwm: usize,
    ) -> Result<(ClientIopub, Subscriptions), ClientIopubError> {
        let bind_error = |source| ClientIopubError::Bind {
            endpoint: endpoint.to_string(),
            source,
        };
        let (listener, resolved) = if let Some(addr) = endpoint.strip_prefix("tcp://") {
            let addr = match addr.rsplit_once(':') {
                Some(("*", port)) => format!("0.0.0.0:{port}"),
                Some(_) => addr.to_string(),
                None => return Err(ClientIopubError::Endpoint(endpoint.to_string())),
            };
            let listener = TcpListener::bind(&addr).await.map_err(bind_error)?;
            let local = listener.local_addr().map_err(bind_error)?;
            (Listener::Tcp(listener), format!("tcp://{local}"))
        } else if let Some(path) = endpoint.strip_prefix("ipc://") {
            if path.is_empty() {
                return Err(ClientIopubError::Endpoint(endpoint.to_string()));
            }
            let path = PathBuf::from(path);
            // libzmq unlinks whatever is there first: a stale socket file of
            // a crashed kernel must not keep a restarted one from binding.
            let _ = std::fs::remove_file(&path);
            let listener = UnixListener::bind(&path).map_err(bind_error)?;
            (Listener::Unix(listener, path), endpoint.to_string())
        } else {
            return Err(ClientIopubError::Endpoint(endpoint.to_string()));
        };
        let (events, subscriptions) = mpsc::unbounded_channel();
        let cancel = CancellationToken::new();
        let (connections, closed) = mpsc::channel(1);
        let inner = Arc::new(Inner {
            subscribers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            events,
            hwm: hwm.max(1),
            dropped: AtomicU64::new(0),
            cancel: cancel.clone(),
            closing: AtomicBool::new(false),
            connections: Mutex::new(Some(connections)),
            closed: tokio::sync::Mutex::new(closed),
        });
        tokio::spawn(accept_loop(inner.clone(), listener));
        let publisher = ClientIopub {
            inner,
            endpoint: resolved,
            _close: Arc::new(cancel.drop_guard()),
        };
        Ok((publisher, subscriptions))
    }

    /// The bound endpoint, with the port the system chose for port 0.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Queues `frames` for every subscriber with a topic that prefixes the
    /// first frame. Never blocks: a subscriber whose queue is full misses
    /// this message (and it is counted). Returns how many subscribers got it.
    pub fn send(&self, frames: Vec<Bytes>) -> usize {
        let Some(first) = frames.first() else {
            return 0;
        };
        let mut subscribers = self.inner.subscribers();
        if !subscribers.values().any(|s| s.matches(first)) {
            return 0;
        }
        let message: Message = Arc::new(frames);
        let first = &message[0];
        subscribers
            .values_mut()
            .filter(|s| s.matches(first))
            .map(|s| s.push(&message, &self.inner.dropped))
            .filter(|queued| *queued)
            .count()
    }

    /// Makes a requested subscription take effect, with `first` (when not
    /// empty) queued for that subscriber alone ahead of everything published
    /// from now on matching it: the `iopub_welcome`. False when the
    /// subscriber is gone or cancelled the request meanwhile.
    pub fn accept(&self, subscription: &Subscription, first: Vec<Bytes>) -> bool {
        let mut subscribers = self.inner.subscribers();
        let Some(s) = subscribers.get_mut(&subscription.subscriber) else {
            return false;
        };
        let Some(at) = s.requested.iter().position(|t| *t == subscription.topic) else {
            return false;
        };
        let topic = s.requested.swap_remove(at);
        s.topics.push(topic);
        if !first.is_empty() {
            s.push(&Arc::new(first), &self.inner.dropped);
        }
        true
    }

    /// Queues `frames` for one subscriber, whatever its topics. False when
    /// it is gone or its queue is full.
    pub fn send_to(&self, subscriber: SubscriberId, frames: Vec<Bytes>) -> bool {
        if frames.is_empty() {
            return false;
        }
        let message: Message = Arc::new(frames);
        match self.inner.subscribers().get_mut(&subscriber) {
            Some(s) => s.push(&message, &self.inner.dropped),
            None => false,
        }
    }

    /// Messages dropped for full queues, all subscribers together, since bind.
    pub fn dropped(&self) -> u64 {
        self.inner.dropped.load(Ordering::Relaxed)
    }

    /// The connected subscribers (those past the handshake).
    pub fn subscribers(&self) -> Vec<SubscriberStats> {
        let mut out: Vec<SubscriberStats> = self
            .inner
            .subscribers()
            .iter()
            .map(|(id, s)| SubscriberStats {
                id: *id,
                peer: s.peer.clone(),
                topics: s.topics.clone(),
                dropped: s.dropped,
                pending: s.pending.load(Ordering::Relaxed),
            })
            .collect();
        out.sort_by_key(|s| s.id);
        out
    }

    /// Closes the socket the way libzmq's `ZMQ_LINGER` does: no new
    /// subscribers, and each connection closes once what was published to
    /// it has been written, or when `linger` has passed (a subscriber that
    /// does not read never drains). True when everything was written.
    ///
    /// Every connection holds a sender of one channel; closing drops the
    /// publisher's own and every subscriber's queue, and the channel ends
    /// when the last connection has (mini-redis's completion barrier).
    pub async fn close(&self, linger: Duration) -> bool {
        {
            let mut subscribers = self.inner.subscribers();
            self.inner.closing.store(true, Ordering::Relaxed);
            subscribers.clear();
        }
        self.inner.connection_guard_source().take();
        let mut closed = self.inner.closed.lock().await;
        let all = tokio::time::timeout(linger, closed.recv()).await.is_ok();
        self.inner.cancel.cancel();
        all
    }
}

async fn accept_loop(inner: Arc<Inner>, listener: Listener) {
    let mut ipc_peers = 0u64;
    loop {
        match &listener {
            Listener::Tcp(tcp) => {
                let accepted = tokio::select! {
                    _ = inner.cancel.cancelled() => return,
                    a = tcp.accept() => a,
                };
                match accepted {
                    Ok((stream, addr)) => {
                        // libzmq sets TCP_NODELAY too: iopub is latency-bound.
                        if let Err(e) = stream.set_nodelay(true) {
                            tracing::debug!("iopub: TCP_NODELAY on {addr}: {e}");
                        }
                        let Some(guard) = inner.connection_guard() else {
                            continue;
                        };
                        let (read, write) = stream.into_split();
                        tokio::spawn(serve(inner.clone(), read, write, addr.to_string(), guard));
                    }
                    Err(e) => accept_failed(e).await,
                }
            }
            Listener::Unix(unix, path) => {
                let accepted = tokio::select! {
                    _ = inner.cancel.cancelled() => {
                        let _ = std::fs::remove_file(path);
                        return;
                    }
                    a = unix.accept() => a,
                };
                match accepted {
                    Ok((stream, _)) => {
                        ipc_peers += 1;
                        let peer = format!("{}#{ipc_peers}", path.display());
                        let Some(guard) = inner.connection_guard() else {
                            continue;
                        };
                        let (read, write) = stream.into_split();
                        tokio::spawn(serve(inner.clone(), read, write, peer, guard));
                    }
                    Err(e) => accept_failed(e).await,
                }
            }
        }
    }
}

/// Out of file descriptors and the like: wait a moment rather than spin.
async fn accept_failed(e: io::Error) {
    tracing::warn!("iopub: accepting a connection failed: {e}");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// One subscriber's connection: handshake, then read subscriptions and write
/// its queue at the same time, until either side ends or the publisher
/// closes. Reading and writing run as two futures of one task, so a
/// subscriber costs one task hop per batch of messages, and the writer stops
/// the moment the peer hangs up.
async fn serve<R, W>(inner: Arc<Inner>, read: R, write: W, peer: String, _open: mpsc::Sender<()>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = BufReader::with_capacity(4096, read);
    let mut writer = BufWriter::with_capacity(WRITE_BUFFER, write);
    let handshake = tokio::select! {
        _ = inner.cancel.cancelled() => return,
        h = tokio::time::timeout(
            HANDSHAKE_TIMEOUT,
            zmtp::handshake(&mut reader, &mut writer, &Role {
                as_server: true,
                socket_type: "XPUB",
                identity: b"",
                peer_types: "SUB XSUB",
            }),
        ) => h,
    };
    match handshake {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            tracing::warn!("iopub: closing connection from {peer}: {e}");
            return;
        }
        Err(_) => {
            let e = ZmtpError::HandshakeTimeout(HANDSHAKE_TIMEOUT);
            tracing::warn!("iopub: closing connection from {peer}: {e}");
            return;
        }
    }

    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let (queue, messages) = mpsc::channel(inner.hwm);
    let pending = Arc::new(AtomicUsize::new(0));
    let joined = {
        let mut subscribers = inner.subscribers();
        // Under the lock `close` takes: no subscriber slips in after it.
        let open = !inner.closing.load(Ordering::Relaxed);
        if open {
            subscribers.insert(
                id,
                Subscriber {
                    peer: peer.clone(),
                    topics: Vec::new(),
                    requested: Vec::new(),
                    queue,
                    dropped: 0,
                    pending: pending.clone(),
                },
            );
        }
        open
    };
    if !joined {
        return;
    }
    tracing::debug!("iopub: subscriber {id} connected from {peer}");

    let (control, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let result = tokio::select! {
        r = read_subscriptions(&inner, id, &mut reader, control) => r,
        r = write_messages(&mut writer, messages, control_rx, &pending) => r,
        _ = inner.cancel.cancelled() => Ok(()),
    };
    let gone = inner.subscribers().remove(&id);
    let dropped = gone.map_or(0, |s| s.dropped);
    match result {
        Ok(()) => tracing::debug!("iopub: subscriber {peer} disconnected"),
        Err(SubscriberError::Zmtp(ZmtpError::Io(e))) => {
            tracing::debug!("iopub: subscriber {peer} disconnected: {e}")
        }
        Err(e) => tracing::warn!("iopub: closing connection from {peer}: {e}"),
    }
    if dropped > 0 {
        tracing::warn!("iopub: subscriber {peer} missed {dropped} messages");
    }
}

/// Reads what a subscriber sends: (un)subscriptions as one-frame messages
/// (`\x01topic` / `\x00topic`, ZMTP 3.0) or as SUBSCRIBE/CANCEL commands
/// (3.1), and PINGs (3.1 heartbeats). Anything else is ignored, as libzmq's
/// PUB does.
async fn read_subscriptions<R: AsyncRead + Unpin>(
    inner: &Inner,
    id: SubscriberId,
    reader: &mut R,
    control: mpsc::Sender<Vec<u8>>,
) -> Result<(), SubscriberError> {
    // Inside a multipart message: its frames are not subscriptions.
    let mut continued = false;
    loop {
        let Some(frame) = zmtp::read_frame(reader, MAX_INCOMING_FRAME).await? else {
            return Ok(());
        };
        if let Some((name, body)) = frame.command() {
            match name {
                b"SUBSCRIBE" => subscribe(inner, id, Bytes::copy_from_slice(body))?,
                b"CANCEL" => unsubscribe(inner, id, body),
                b"PING" => {
                    // TTL (2 bytes), then up to 16 bytes of context to echo.
                    let context = body.get(2..).unwrap_or_default();
                    let context = &context[..context.len().min(16)];
                    let mut pong = Vec::with_capacity(5 + context.len());
                    pong.push(4);
                    pong.extend_from_slice(b"PONG");
                    pong.extend_from_slice(context);
                    // A PONG that finds no room is one the peer can miss:
                    // its next PING asks again.
                    let _ = control.try_send(pong);
                }
                b"ERROR" => {
                    let reason = body.get(1..).unwrap_or_default();
                    return Err(ZmtpError::PeerReported(
                        String::from_utf8_lossy(reason).into_owned(),
                    )
                    .into());
                }
                _ => {}
            }
            continue;
        }
        let single = !continued && !frame.more();
        continued = frame.more();
        if !single {
            continue;
        }
        match frame.body.split_first() {
            Some((1, topic)) => subscribe(inner, id, Bytes::copy_from_slice(topic))?,
            Some((0, topic)) => unsubscribe(inner, id, topic),
            _ => {}
        }
    }
}

/// Records the request and tells the owner, who `accept`s it.
fn subscribe(inner: &Inner, id: SubscriberId, topic: Bytes) -> Result<(), SubscriberError> {
    if let Some(s) = inner.subscribers().get_mut(&id) {
        if s.topics.len() + s.requested.len() >= MAX_TOPICS {
            return Err(SubscriberError::TooManyTopics);
        }
        s.requested.push(topic.clone());
    }
    // Nobody listening (the proxy is going down) is no reason to fail.
    let _ = inner.events.send(Subscription {
        subscriber: id,
        topic,
    });
    Ok(())
}

/// Takes effect at once; cancels a request not accepted yet, if that is
/// all there is to cancel.
fn unsubscribe(inner: &Inner, id: SubscriberId, topic: &[u8]) {
    if let Some(s) = inner.subscribers().get_mut(&id) {
        if let Some(at) = s.topics.iter().position(|t| t.as_ref() == topic) {
            s.topics.swap_remove(at);
        } else if let Some(at) = s.requested.iter().position(|t| t.as_ref() == topic) {
            s.requested.swap_remove(at);
        }
    }
}

/// Writes queued messages, as many as are waiting, then flushes once.
async fn write_messages<W: AsyncWrite + Unpin>(
    writer: &mut BufWriter<W>,
    mut messages: mpsc::Receiver<Message>,
    mut control: mpsc::Receiver<Vec<u8>>,
    pending: &AtomicUsize,
) -> Result<(), SubscriberError> {
    let mut batch = Vec::with_capacity(BATCH);
    loop {
        tokio::select! {
            n = messages.recv_many(&mut batch, BATCH) => {
                if n == 0 {
                    // The publisher forgot this subscriber.
                    return Ok(());
                }
                for message in batch.drain(..) {
                    zmtp::write_message(writer, &message).await?;
                }
                writer.flush().await?;
                pending.fetch_sub(n, Ordering::Relaxed);
            }
            Some(body) = control.recv() => {
                let (header, len) = zmtp::frame_header(FLAG_COMMAND, body.len());
                writer.write_all(&header[..len]).await?;
                writer.write_all(&body).await?;
                writer.flush().await?;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::{frame_header, greeting, properties, ready_command, Frame};
    use crate::zmtp::{FLAG_LONG, FLAG_MORE};
    use std::time::Instant;
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpStream;
    use zeromq::{Socket, SocketRecv, SubSocket, ZmqMessage};

    const WAIT: Duration = Duration::from_secs(10);

    async fn bind() -> (ClientIopub, Subscriptions) {
        ClientIopub::bind("tcp://127.0.0.1:0").await.unwrap()
    }

    async fn subscriber(publisher: &ClientIopub, topic: &str) -> SubSocket {
        let mut sub = SubSocket::new();
        sub.connect(publisher.endpoint()).await.unwrap();
        sub.subscribe(topic).await.unwrap();
        sub
    }

    async fn requested(events: &mut Subscriptions) -> Subscription {
        tokio::time::timeout(WAIT, events.recv())
            .await
            .expect("a subscription in time")
            .expect("the publisher lives")
    }

    /// The next subscription, accepted without a welcome.
    async fn next_subscription(
        publisher: &ClientIopub,
        events: &mut Subscriptions,
    ) -> Subscription {
        let subscription = requested(events).await;
        assert!(publisher.accept(&subscription, Vec::new()));
        subscription
    }

    async fn recv(sub: &mut SubSocket) -> Vec<Bytes> {
        let message: ZmqMessage = tokio::time::timeout(WAIT, sub.recv())
            .await
            .expect("a message in time")
            .unwrap();
        Vec::from(message.into_vecdeque())
    }

    fn frames(parts: &[&[u8]]) -> Vec<Bytes> {
        parts.iter().map(|p| Bytes::copy_from_slice(p)).collect()
    }

    /// A raw ZMTP peer: greeting (version `minor`), READY as `socket_type`.
    async fn raw_peer(endpoint: &str, minor: u8, socket_type: &str) -> TcpStream {
        let mut stream = TcpStream::connect(endpoint.strip_prefix("tcp://").unwrap())
            .await
            .unwrap();
        let mut g = greeting(false);
        g[11] = minor;
        stream.write_all(&g).await.unwrap();
        stream
            .write_all(&ready_command(socket_type, b""))
            .await
            .unwrap();
        let mut theirs = [0u8; 64];
        stream.read_exact(&mut theirs).await.unwrap();
        assert_eq!(
            (theirs[0], theirs[9], theirs[10], theirs[11]),
            (0xff, 0x7f, 3, 0)
        );
        assert_eq!(&theirs[12..16], b"NULL");
        let ready = read_frame(&mut stream).await.unwrap().unwrap();
        let (name, body) = ready.command().unwrap();
        assert_eq!(name, b"READY");
        assert_eq!(
            properties(body).unwrap(),
            vec![(&b"Socket-Type"[..], &b"XPUB"[..])]
        );
        stream
    }

    async fn read_frame(stream: &mut TcpStream) -> Result<Option<Frame>, ZmtpError> {
        zmtp::read_frame(stream, MAX_INCOMING_FRAME).await
    }

    async fn write_frame(stream: &mut TcpStream, flags: u8, body: &[u8]) {
        let (header, n) = frame_header(flags, body.len());
        stream.write_all(&header[..n]).await.unwrap();
        stream.write_all(body).await.unwrap();
    }

    /// Reads until the peer closes; true when it closed (not a timeout).
    async fn closed_by_peer(stream: &mut TcpStream) -> bool {
        let mut sink = [0u8; 4096];
        tokio::time::timeout(WAIT, async {
            loop {
                match stream.read(&mut sink).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await
        .is_ok()
    }

    #[tokio::test]
    async fn delivers_multipart_messages_with_a_large_frame() {
        let (publisher, mut events) = bind().await;
        let mut sub = subscriber(&publisher, "").await;
        let event = next_subscription(&publisher, &mut events).await;
        assert_eq!(event.topic, Bytes::new());
        assert_eq!(publisher.subscribers()[0].id, event.subscriber);

        let big = Bytes::from(vec![7u8; 10 << 20]);
        let short = frames(&[b"kernel.1.stream", b"<IDS|MSG>", b"sig", b"{}"]);
        let mut long = frames(&[b"kernel.1.display_data", b"x".repeat(300).as_slice()]);
        long.push(big.clone());
        assert_eq!(publisher.send(short.clone()), 1);
        assert_eq!(publisher.send(long.clone()), 1);
        assert_eq!(publisher.send(frames(&[b""])), 1);
        assert_eq!(recv(&mut sub).await, short);
        let got = recv(&mut sub).await;
        assert_eq!(got.len(), 3);
        assert_eq!(got[2].len(), big.len());
        assert_eq!(got, long);
        assert_eq!(recv(&mut sub).await, frames(&[b""]));
        assert_eq!(publisher.dropped(), 0);
    }

    /// Closing writes out what was published, then ends each connection,
    /// and nobody subscribes after it.
    #[tokio::test]
    async fn close_delivers_what_was_published_then_disconnects() {
        let (publisher, mut events) = bind().await;
        let mut peer = raw_peer(publisher.endpoint(), 0, "SUB").await;
        write_frame(&mut peer, 0, b"\x01").await;
        next_subscription(&publisher, &mut events).await;
        for i in 0..100u8 {
            assert_eq!(publisher.send(frames(&[b"t", &[i]])), 1);
        }
        assert!(publisher.close(WAIT).await);
        for i in 0..100u8 {
            let topic = read_frame(&mut peer).await.unwrap().unwrap();
            assert!(topic.more() && topic.body == b"t");
            let body = read_frame(&mut peer).await.unwrap().unwrap();
            assert_eq!(body.body, [i]);
        }
        assert!(closed_by_peer(&mut peer).await);
        assert_eq!(publisher.send(frames(&[b"t", b"late"])), 0);
    }

    /// A subscriber that never reads holds `close` up for the linger time
    /// only.
    #[tokio::test]
    async fn close_gives_up_on_a_subscriber_that_never_reads() {
        let (publisher, mut events) = bind().await;
        let _silent = subscriber(&publisher, "").await;
        next_subscription(&publisher, &mut events).await;
        let payload = Bytes::from(vec![b'x'; 1 << 20]);
        for _ in 0..64 {
            publisher.send(vec![Bytes::from_static(b"t"), payload.clone()]);
        }
        let started = Instant::now();
        assert!(!publisher.close(Duration::from_millis(200)).await);
        assert!(started.elapsed() < WAIT);
    }

    #[tokio::test]
    async fn filters_on_topic_prefixes_and_unsubscribes() {
        let (publisher, mut events) = bind().await;
        let mut sub = subscriber(&publisher, "kernel.a").await;
        assert_eq!(
            next_subscription(&publisher, &mut events).await.topic,
            "kernel.a"
        );
        assert_eq!(publisher.send(frames(&[b"kernel.b.status", b"1"])), 0);
        assert_eq!(publisher.send(frames(&[b"kernel", b"2"])), 0);
        assert_eq!(publisher.send(frames(&[b"kernel.a.status", b"3"])), 1);
        assert_eq!(recv(&mut sub).await, frames(&[b"kernel.a.status", b"3"]));

        sub.unsubscribe("kernel.a").await.unwrap();
        let deadline = Instant::now() + WAIT;
        while !publisher.subscribers()[0].topics.is_empty() {
            assert!(Instant::now() < deadline, "the unsubscribe never arrived");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(publisher.send(frames(&[b"kernel.a.status", b"4"])), 0);
    }

    #[tokio::test]
    async fn send_to_reaches_one_subscriber_only() {
        let (publisher, mut events) = bind().await;
        let mut first = subscriber(&publisher, "").await;
        let a = next_subscription(&publisher, &mut events).await.subscriber;
        let mut second = subscriber(&publisher, "").await;
        let b = next_subscription(&publisher, &mut events).await.subscriber;
        assert_ne!(a, b);
        assert!(publisher.send_to(b, frames(&[b"welcome", b"b"])));
        assert!(!publisher.send_to(9999, frames(&[b"welcome", b"nobody"])));
        publisher.send(frames(&[b"all", b"1"]));
        assert_eq!(recv(&mut first).await, frames(&[b"all", b"1"]));
        assert_eq!(recv(&mut second).await, frames(&[b"welcome", b"b"]));
        assert_eq!(recv(&mut second).await, frames(&[b"all", b"1"]));
    }

    #[tokio::test]
    async fn subscriptions_take_effect_when_accepted_welcome_first() {
        let (publisher, mut events) = bind().await;
        let mut sub = subscriber(&publisher, "").await;
        let event = requested(&mut events).await;
        assert_eq!(publisher.send(frames(&[b"t", b"before"])), 0);
        let welcome = frames(&[b"", b"welcome"]);
        assert!(publisher.accept(&event, welcome.clone()));
        assert!(!publisher.accept(&event, welcome.clone()), "accepted twice");
        assert_eq!(publisher.send(frames(&[b"t", b"after"])), 1);
        assert_eq!(recv(&mut sub).await, welcome);
        assert_eq!(recv(&mut sub).await, frames(&[b"t", b"after"]));

        // Cancelled before it was accepted: nothing to accept. Both frames
        // go in one write, so the reader sees them in one go.
        let mut peer = raw_peer(publisher.endpoint(), 0, "SUB").await;
        peer.write_all(b"\x00\x02\x01x\x00\x02\x00x").await.unwrap();
        let event = requested(&mut events).await;
        assert_eq!(event.topic, "x");
        assert!(!publisher.accept(&event, Vec::new()));
        let stats = publisher.subscribers();
        assert!(stats
            .iter()
            .any(|s| s.id == event.subscriber && s.topics.is_empty()));
    }

    /// One subscriber never reads: the other still gets every message, the
    /// silent one's are dropped and counted, and `send` never waits.
    #[tokio::test]
    async fn a_subscriber_that_never_reads_does_not_stall_the_others() {
        const N: usize = 20_000;
        let (publisher, mut events) = bind().await;
        let _silent = subscriber(&publisher, "").await;
        let silent = next_subscription(&publisher, &mut events).await.subscriber;
        let mut reader = subscriber(&publisher, "").await;
        let reading = next_subscription(&publisher, &mut events).await.subscriber;

        let received = Arc::new(AtomicUsize::new(0));
        let in_order = Arc::new(AtomicBool::new(true));
        let reader_task = tokio::spawn({
            let received = received.clone();
            let in_order = in_order.clone();
            async move {
                for i in 0..N {
                    let got = recv(&mut reader).await;
                    if got[1] != (i as u64).to_be_bytes().as_slice() {
                        in_order.store(false, Ordering::Relaxed);
                    }
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }
        });

        let payload = Bytes::from(vec![b'x'; 4096]);
        let mut slowest_send = Duration::ZERO;
        for i in 0..N {
            let started = Instant::now();
            publisher.send(vec![
                Bytes::from_static(b"kernel.1.stream"),
                Bytes::copy_from_slice(&(i as u64).to_be_bytes()),
                payload.clone(),
            ]);
            slowest_send = slowest_send.max(started.elapsed());
            // Produce at the pace of a kernel the healthy client keeps up
            // with: never more than half its queue ahead of it.
            if i % 100 == 99 {
                let deadline = Instant::now() + WAIT;
                while received.load(Ordering::Relaxed) + DEFAULT_HWM / 2 < i {
                    assert!(Instant::now() < deadline, "the reading subscriber stalled");
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
        tokio::time::timeout(WAIT, reader_task)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(received.load(Ordering::Relaxed), N);
        assert!(in_order.load(Ordering::Relaxed));
        assert!(
            slowest_send < Duration::from_millis(100),
            "{slowest_send:?}"
        );

        let stats = publisher.subscribers();
        let by_id = |id| stats.iter().find(|s| s.id == id).unwrap();
        assert_eq!(by_id(reading).dropped, 0);
        // 80 MB went out; the silent one's queue and socket buffers hold a
        // few MB of it at most.
        let dropped = by_id(silent).dropped;
        assert!(dropped > N as u64 / 2, "dropped only {dropped}");
        assert_eq!(publisher.dropped(), dropped);
        assert!(by_id(silent).pending <= DEFAULT_HWM + BATCH);
    }

    #[tokio::test]
    async fn garbage_is_disconnected_and_others_are_served() {
        let (publisher, mut events) = bind().await;
        let addr = publisher
            .endpoint()
            .strip_prefix("tcp://")
            .unwrap()
            .to_string();

        // Not ZMTP at all.
        let mut http = TcpStream::connect(&addr).await.unwrap();
        http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        http.write_all(&[0u8; 64]).await.unwrap();
        assert!(closed_by_peer(&mut http).await);

        // ZMTP, but a socket type that cannot subscribe.
        let mut dealer = raw_peer(publisher.endpoint(), 0, "DEALER").await;
        assert!(closed_by_peer(&mut dealer).await);

        // A SUB that then sends a 2 GB frame, and one sending bad flags.
        let mut huge = raw_peer(publisher.endpoint(), 0, "SUB").await;
        huge.write_all(&[FLAG_LONG, 0, 0, 0, 0, 0x80, 0, 0, 0])
            .await
            .unwrap();
        assert!(closed_by_peer(&mut huge).await);
        let mut flags = raw_peer(publisher.endpoint(), 0, "SUB").await;
        flags.write_all(&[0xf0, 1, 1]).await.unwrap();
        assert!(closed_by_peer(&mut flags).await);

        // A CURVE greeting.
        let mut curve = TcpStream::connect(&addr).await.unwrap();
        let mut g = greeting(false);
        g[12..32].fill(0);
        g[12..17].copy_from_slice(b"CURVE");
        curve.write_all(&g).await.unwrap();
        assert!(closed_by_peer(&mut curve).await);

        // A half-closed connection mid-greeting.
        let mut short = TcpStream::connect(&addr).await.unwrap();
        short.write_all(&[0xff, 0, 0]).await.unwrap();
        short.shutdown().await.unwrap();
        assert!(closed_by_peer(&mut short).await);

        let deadline = Instant::now() + WAIT;
        while !publisher.subscribers().is_empty() {
            assert!(Instant::now() < deadline, "{:?}", publisher.subscribers());
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let mut sub = subscriber(&publisher, "").await;
        next_subscription(&publisher, &mut events).await;
        publisher.send(frames(&[b"t", b"still here"]));
        assert_eq!(recv(&mut sub).await, frames(&[b"t", b"still here"]));
    }

    #[tokio::test]
    async fn zmtp_3_1_commands_subscribe_cancel_and_ping() {
        let (publisher, mut events) = bind().await;
        let mut peer = raw_peer(publisher.endpoint(), 1, "XSUB").await;
        write_frame(&mut peer, FLAG_COMMAND, b"\x09SUBSCRIBEkern").await;
        let event = next_subscription(&publisher, &mut events).await;
        assert_eq!(event.topic, "kern");
        write_frame(&mut peer, FLAG_COMMAND, b"\x04PING\x00\x0actx").await;
        write_frame(&mut peer, FLAG_COMMAND, b"\x07UNKNOWN").await;
        let pong = tokio::time::timeout(WAIT, read_frame(&mut peer))
            .await
            .unwrap();
        assert_eq!(
            pong.unwrap().unwrap().command(),
            Some((&b"PONG"[..], &b"ctx"[..]))
        );

        assert_eq!(publisher.send(frames(&[b"kernel", b"1"])), 1);
        let first = read_frame(&mut peer).await.unwrap().unwrap();
        assert!(first.more() && first.body == b"kernel");
        let second = read_frame(&mut peer).await.unwrap().unwrap();
        assert!(!second.more() && second.body == b"1");

        write_frame(&mut peer, FLAG_COMMAND, b"\x06CANCELkern").await;
        // A multipart message is not a subscription, even if it looks like one.
        write_frame(&mut peer, FLAG_MORE, b"\x01x").await;
        write_frame(&mut peer, 0, b"\x01y").await;
        write_frame(&mut peer, 0, b"\x01z").await;
        assert_eq!(next_subscription(&publisher, &mut events).await.topic, "z");
        assert_eq!(publisher.subscribers()[0].topics, vec![Bytes::from("z")]);
        drop(peer);
        let deadline = Instant::now() + WAIT;
        while !publisher.subscribers().is_empty() {
            assert!(
                Instant::now() < deadline,
                "the subscriber was never removed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn ipc_endpoints() {
        let dir = tempfile::tempdir().unwrap();
        let endpoint = format!("ipc://{}/kernel-1", dir.path().display());
        let (publisher, mut events) = ClientIopub::bind(&endpoint).await.unwrap();
        let mut sub = SubSocket::new();
        sub.connect(&endpoint).await.unwrap();
        sub.subscribe("").await.unwrap();
        let event = requested(&mut events).await;
        assert!(publisher.accept(&event, frames(&[b"w"])));
        publisher.send(frames(&[b"t", b"over ipc"]));
        assert_eq!(recv(&mut sub).await, frames(&[b"w"]));
        assert_eq!(recv(&mut sub).await, frames(&[b"t", b"over ipc"]));
        drop(publisher);
        let deadline = Instant::now() + WAIT;
        while dir.path().join("kernel-1").exists() {
            assert!(Instant::now() < deadline, "the socket file was left behind");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn endpoints_that_cannot_be_bound() {
        for bad in ["udp://1.2.3.4:5", "tcp://nohost", "ipc://"] {
            assert!(matches!(
                ClientIopub::bind(bad).await,
                Err(ClientIopubError::Endpoint(_))
            ));
        }
        let (publisher, _) = bind().await;
        assert!(matches!(
            ClientIopub::bind(publisher.endpoint()).await,
            Err(ClientIopubError::Bind { .. })
        ));
        let (any, _) = ClientIopub::bind("tcp://*:0").await.unwrap();
        assert!(any.endpoint().starts_with("tcp://0.0.0.0:"));
    }
}
