//! The tap: cheap copies of relayed messages, handed to the recorder thread.
//!
//! The relay must never wait on the recorder. A tapped message is four
//! reference-counted `Bytes` (no copy, no JSON parsing on the relay); the
//! recorder thread parses what it needs. The queue is bounded: when it is
//! full the message is counted as dropped, never silently lost.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;

/// Where a tapped message was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A client's request on shell, after its signature was verified.
    ShellRequest,
    /// The real kernel's reply on shell.
    ShellReply,
    /// A message the real kernel published on iopub.
    Iopub,
    /// A client's request on control, after its signature was verified.
    ControlRequest,
}

/// One relayed message, as the four signed frames of the wire format.
#[derive(Debug, Clone)]
pub struct TappedMessage {
    pub channel: Channel,
    /// When the relay saw it (wall clock, for the record).
    pub at: SystemTime,
    pub header: Bytes,
    pub parent_header: Bytes,
    pub metadata: Bytes,
    pub content: Bytes,
}

/// Facts about the real kernel process, sent by the proxy's lifecycle code.
#[derive(Debug, Clone)]
pub enum KernelEvent {
    /// The real kernel answered the proxy's own kernel_info_request.
    Ready {
        /// `header.session` of the real kernel's reply.
        session: String,
        /// The kernel_info_reply content (language_info, implementation, …).
        kernel_info: serde_json::Value,
    },
    /// The real kernel process ended.
    Exited {
        code: Option<i32>,
        signal: Option<i32>,
    },
}

#[derive(Debug, Clone)]
pub enum TapEvent {
    Message(TappedMessage),
    Kernel(KernelEvent),
}

/// The relay's end of the queue to the recorder. Cheap to clone.
#[derive(Clone)]
pub struct Tap {
    tx: Option<SyncSender<TapEvent>>,
    dropped: Arc<AtomicU64>,
}

impl Tap {
    /// A bounded queue of `capacity` events and the receiving end for the recorder.
    pub fn bounded(capacity: usize) -> (Tap, Receiver<TapEvent>, Arc<AtomicU64>) {
        let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        (
            Tap {
                tx: Some(tx),
                dropped: dropped.clone(),
            },
            rx,
            dropped,
        )
    }

    /// A tap that records nothing (`JUPYTER_LINEAGE=off`, or no usable store).
    pub fn disabled() -> Tap {
        Tap {
            tx: None,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands an event to the recorder without ever blocking.
    pub fn send(&self, event: TapEvent) {
        let Some(tx) = &self.tx else { return };
        match tx.try_send(event) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
                if n.is_power_of_two() {
                    tracing::warn!(dropped = n, "recorder queue full: messages not recorded");
                }
            }
            // The recorder has stopped (it logged why); recording is off.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Taps the four signed frames of a relayed message.
    pub fn message(&self, channel: Channel, frames: &[Bytes]) {
        if self.tx.is_none() || frames.len() < 4 {
            return;
        }
        self.send(TapEvent::Message(TappedMessage {
            channel,
            at: SystemTime::now(),
            header: frames[0].clone(),
            parent_header: frames[1].clone(),
            metadata: frames[2].clone(),
            content: frames[3].clone(),
        }));
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}
