//! The tap: cheap copies of relayed messages, handed to the recorder thread.
//!
//! The relay must never wait on the recorder. A tapped message is four
//! reference-counted `Bytes` (no copy, no JSON parsing on the relay); the
//! recorder thread parses what it needs. The queue is bounded: when it is
//! full the message is counted as dropped, never silently lost.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
///
/// The bound is a count kept beside an unbounded channel rather than a
/// `sync_channel`, which would allocate every slot up front (megabytes for a
/// queue deep enough to absorb a burst of 100k prints).
#[derive(Clone)]
pub struct Tap {
    tx: Option<Sender<TapEvent>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

/// The recorder's end of the queue.
pub struct TapReceiver {
    rx: Receiver<TapEvent>,
    queued: Arc<AtomicUsize>,
}

impl TapReceiver {
    fn took<E>(&self, r: Result<TapEvent, E>) -> Result<TapEvent, E> {
        if r.is_ok() {
            self.queued.fetch_sub(1, Ordering::Relaxed);
        }
        r
    }

    pub fn try_recv(&self) -> Result<TapEvent, TryRecvError> {
        self.took(self.rx.try_recv())
    }

    pub fn recv_timeout(&self, timeout: Duration) -> Result<TapEvent, RecvTimeoutError> {
        self.took(self.rx.recv_timeout(timeout))
    }

    /// Events waiting in the queue.
    pub fn len(&self) -> usize {
        self.queued.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Tap {
    /// A queue of at most `capacity` events and the receiving end for the recorder.
    pub fn bounded(capacity: usize) -> (Tap, TapReceiver, Arc<AtomicU64>) {
        let (tx, rx) = std::sync::mpsc::channel();
        let dropped = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Tap {
                tx: Some(tx),
                queued: queued.clone(),
                capacity,
                dropped: dropped.clone(),
            },
            TapReceiver { rx, queued },
            dropped,
        )
    }

    /// A tap that records nothing (`JUPYTER_LINEAGE=off`, or no usable store).
    pub fn disabled() -> Tap {
        Tap {
            tx: None,
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: 0,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands an event to the recorder without ever blocking.
    pub fn send(&self, event: TapEvent) {
        let Some(tx) = &self.tx else { return };
        if self.queued.load(Ordering::Relaxed) >= self.capacity {
            let n = self.dropped.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(dropped = n, "recorder queue full: messages not recorded");
            }
            return;
        }
        self.queued.fetch_add(1, Ordering::Relaxed);
        if tx.send(event).is_err() {
            // The recorder has stopped (it logged why); recording is off.
            self.queued.fetch_sub(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> TapEvent {
        TapEvent::Kernel(KernelEvent::Exited {
            code: Some(0),
            signal: None,
        })
    }

    #[test]
    fn full_queue_counts_drops_and_recovers() {
        let (tap, rx, dropped) = Tap::bounded(2);
        tap.send(event());
        tap.send(event());
        tap.send(event());
        assert_eq!(dropped.load(Ordering::Relaxed), 1);
        assert_eq!(rx.len(), 2);
        rx.try_recv().unwrap();
        tap.send(event());
        assert_eq!(rx.len(), 2);
        assert_eq!(tap.dropped(), 1);
        rx.recv_timeout(Duration::from_millis(10)).unwrap();
        rx.try_recv().unwrap();
        assert!(rx.try_recv().is_err());
        assert!(rx.is_empty());
    }

    #[test]
    fn disabled_tap_takes_nothing() {
        let tap = Tap::disabled();
        assert!(!tap.is_enabled());
        tap.send(event());
        assert_eq!(tap.dropped(), 0);
    }
}
