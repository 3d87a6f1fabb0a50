//! The relay: one task per channel direction, frames forwarded byte for byte.
//!
//! Client-facing sockets are the proxy acting as a kernel (`Client*`); kernel-
//! facing sockets are the proxy acting as a client (`Kernel*`). Messages from
//! clients are verified before anything else happens to them; messages from
//! the real kernel are trusted (it holds the same key and sits behind a
//! private 0700 runtime directory or loopback).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::mpsc;
use zeromq::{
    DealerRecvHalf, DealerSendHalf, RouterRecvHalf, RouterSendHalf, SocketRecv, SocketSend,
    ZmqMessage,
};

use crate::client_iopub::{ClientIopub, Subscription, Subscriptions};
use crate::kernel_dealer::KernelDealerRecv;
use crate::kernel_iopub::KernelIopub;
use crate::links::{Activity, Links, Route};
use crate::service::Service;
use crate::tap::{Channel, Tap};
use crate::wire::{contains, HeaderRef, Layout, OwnMessage, Signer};

/// What every relay task shares.
pub struct Shared {
    pub signer: Signer,
    pub tap: Tap,
    pub service: Option<Arc<Service>>,
    /// Messages dropped for a bad signature or bad framing, for the health report.
    pub refused: Arc<AtomicU64>,
}

/// Turns a received message into contiguous frames without copying them.
pub fn frames_of(message: ZmqMessage) -> Vec<Bytes> {
    Vec::from(message.into_vecdeque())
}

fn message_of(frames: Vec<Bytes>) -> Option<ZmqMessage> {
    ZmqMessage::try_from(VecDeque::from(frames)).ok()
}

/// Checks framing and signature of a client's message. Returns the layout of
/// a message that may be acted on; logs and counts one that may not.
fn accept(shared: &Shared, channel: &str, frames: &[Bytes]) -> Option<Layout> {
    let layout = match Layout::of(frames) {
        Ok(layout) => layout,
        Err(e) => {
            shared.refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("{channel}: dropping malformed message from a client: {e}");
            return None;
        }
    };
    if let Err(e) = layout.verify(&shared.signer, frames) {
        shared.refused.fetch_add(1, Ordering::Relaxed);
        tracing::warn!("{channel}: dropping message from a client: {e}");
        return None;
    }
    Some(layout)
}

/// Which requests the tap copies, by channel.
fn tapped(channel: Channel, msg_type: &str) -> bool {
    match channel {
        Channel::ShellRequest => msg_type == "execute_request",
        Channel::ControlRequest => msg_type == "interrupt_request",
        Channel::ShellReply | Channel::Iopub => true,
    }
}

/// Client → kernel on shell or control: verify, let the service claim its
/// own comm, tap, forward the very same frames on the client's own link.
pub async fn client_to_kernel(
    shared: Arc<Shared>,
    links: Arc<Links>,
    name: &'static str,
    channel: Channel,
    mut from_client: RouterRecvHalf,
) {
    let route = if channel == Channel::ControlRequest {
        Route::Control
    } else {
        Route::Shell
    };
    loop {
        let message = match from_client.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("{name}: client side closed: {e}");
                return;
            }
        };
        let frames = frames_of(message);
        let Some(layout) = accept(&shared, name, &frames) else {
            continue;
        };
        let header = match HeaderRef::parse(layout.header(&frames)) {
            Ok(h) => h,
            Err(e) => {
                shared.refused.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("{name}: dropping message from a client: {e}");
                continue;
            }
        };
        if let Some(service) = &shared.service {
            if service.claims(&header.msg_type, layout.content(&frames)) {
                service.submit(layout.signed(&frames));
                continue;
            }
        }
        if tapped(channel, &header.msg_type) {
            shared.tap.message(channel, layout.signed(&frames));
        }
        let request = header.msg_type.ends_with("_request");
        drop(header);
        if let Err(e) = links.forward(route, &frames, request).await {
            // The kernel is gone or restarting: the proxy exits with it, and
            // the client sees what it would see with a dead plain kernel.
            tracing::warn!("{name}: the real kernel is not reachable, request dropped: {e}");
        }
    }
}

/// Client → kernel on stdin: verify and forward (input_reply).
pub async fn stdin_to_kernel(
    shared: Arc<Shared>,
    links: Arc<Links>,
    mut from_client: RouterRecvHalf,
) {
    loop {
        let message = match from_client.recv().await {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!("stdin: client side closed: {e}");
                return;
            }
        };
        let frames = frames_of(message);
        if accept(&shared, "stdin", &frames).is_none() {
            continue;
        }
        if let Err(e) = links.forward(Route::Stdin, &frames, false).await {
            tracing::warn!("stdin: the real kernel is not reachable, reply dropped: {e}");
        }
    }
}

/// Kernel → client on shell, control or stdin, from one client's link: the
/// client's id goes back in front (`client`), or, on the shared overflow
/// link, the message carries it already. Ends when the kernel has closed its
/// socket, after relaying everything it sent before, or when the link was
/// closed.
pub async fn kernel_to_client(
    shared: Arc<Shared>,
    name: &'static str,
    tap_as: Option<Channel>,
    mut from_kernel: KernelDealerRecv,
    mut to_client: RouterSendHalf,
    client: Option<Bytes>,
    activity: Option<Arc<Activity>>,
) {
    loop {
        let received = match from_kernel.recv().await {
            Ok(frames) => frames,
            Err(e) => {
                tracing::debug!("{name}: kernel side closed: {e}");
                return;
            }
        };
        let frames = match &client {
            Some(id) => {
                let mut frames = Vec::with_capacity(received.len() + 1);
                frames.push(id.clone());
                frames.extend(received);
                frames
            }
            None => received,
        };
        if let Some(activity) = &activity {
            activity.answered();
        }
        let Ok(layout) = Layout::of(&frames) else {
            tracing::warn!("{name}: unframed message from the real kernel, dropped");
            continue;
        };
        if layout.delimiter == 0 {
            // No identity: no client to route to.
            continue;
        }
        if let Some(channel) = tap_as {
            shared.tap.message(channel, layout.signed(&frames));
        }
        if let Some(message) = message_of(frames) {
            // zeromq errors on an unknown identity where libzmq drops: the
            // client went away, which is no reason to stop relaying.
            if let Err(e) = to_client.send(message).await {
                tracing::debug!("{name}: client gone, reply dropped: {e}");
            }
        }
    }
}

/// Heartbeat: client pings go to the real kernel's heartbeat and come back,
/// so a stopped or hung kernel looks exactly as it would without the proxy.
pub async fn heartbeat_to_kernel(mut from_client: RouterRecvHalf, mut to_kernel: DealerSendHalf) {
    while let Ok(message) = from_client.recv().await {
        if let Err(e) = to_kernel.send(message).await {
            tracing::debug!("heartbeat: kernel side: {e}");
        }
    }
}

pub async fn heartbeat_to_client(mut from_kernel: DealerRecvHalf, mut to_client: RouterSendHalf) {
    while let Ok(message) = from_kernel.recv().await {
        if let Err(e) = to_client.send(message).await {
            tracing::debug!("heartbeat: client gone: {e}");
        }
    }
}

/// Whether an iopub message is the real kernel's own `iopub_welcome` to the
/// proxy (JEP 65); clients get one from the proxy instead. A byte search,
/// not a parse: this runs on every iopub message.
fn is_welcome(layout: &Layout, frames: &[Bytes]) -> bool {
    contains(layout.header(frames), b"\"iopub_welcome\"")
}

/// iopub: kernel → every subscribed client, plus the proxy's own messages
/// (welcomes, comm replies, status). Publishing only queues (see
/// `client_iopub`), so a client that does not read cannot hold this loop up.
/// Ends when the kernel has closed its iopub socket.
pub async fn iopub(
    shared: Arc<Shared>,
    mut from_kernel: KernelIopub,
    to_clients: ClientIopub,
    mut subscriptions: Subscriptions,
    mut own: mpsc::UnboundedReceiver<OwnMessage>,
    session: String,
    pending_subscriptions: Vec<Subscription>,
) {
    for subscription in &pending_subscriptions {
        welcome(&shared, &to_clients, &session, subscription);
    }
    loop {
        tokio::select! {
            biased;
            message = from_kernel.recv() => {
                let frames = match message {
                    Ok(frames) => frames,
                    Err(e) => {
                        tracing::debug!("iopub: kernel side closed: {e}");
                        return;
                    }
                };
                if let Ok(layout) = Layout::of(&frames) {
                    if is_welcome(&layout, &frames) {
                        continue;
                    }
                    shared.tap.message(Channel::Iopub, layout.signed(&frames));
                }
                to_clients.send(frames);
            }
            Some(subscription) = subscriptions.recv() => {
                welcome(&shared, &to_clients, &session, &subscription);
            }
            Some(message) = own.recv() => {
                to_clients.send(message.to_frames(&shared.signer, &[]));
            }
        }
    }
}

/// Makes a client's subscription take effect with a signed `iopub_welcome`
/// (JEP 65) as the first message it gets on it, sent to that subscriber only.
fn welcome(shared: &Shared, to_clients: &ClientIopub, session: &str, subscription: &Subscription) {
    let topic = String::from_utf8_lossy(&subscription.topic).into_owned();
    let msg = OwnMessage::new("iopub_welcome", session, serde_json::json!({}))
        .with_content(serde_json::json!({ "subscription": topic }));
    let mut frames = Vec::with_capacity(8);
    frames.push(subscription.topic.clone());
    frames.extend(msg.to_frames(&shared.signer, &[]));
    if !to_clients.accept(subscription, frames) {
        tracing::debug!("iopub: subscription withdrawn before its welcome");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn welcome_detection_reads_the_header_only() {
        let signer = Signer::new("hmac-sha256", b"k").unwrap();
        let welcome = OwnMessage::new("iopub_welcome", "s", serde_json::json!({}));
        let frames = welcome.to_frames(&signer, &[]);
        assert!(is_welcome(&Layout::of(&frames).unwrap(), &frames));
        let stream = OwnMessage::new("stream", "s", serde_json::json!({}))
            .with_content(serde_json::json!({"name": "stdout", "text": "\"iopub_welcome\""}));
        let frames = stream.to_frames(&signer, &[]);
        assert!(!is_welcome(&Layout::of(&frames).unwrap(), &frames));
    }
}
