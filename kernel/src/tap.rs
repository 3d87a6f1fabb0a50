//! The tap: cheap copies of relayed messages, handed to the recorder thread.
//!
//! The relay must never wait on the recorder. A tapped message is four
//! reference-counted `Bytes` (no copy, no JSON parsing on the relay); the
//! recorder thread parses what it needs. The queue is bounded: when it is
//! full the message is counted as dropped, never silently lost.
//!
//! Queueing an event does not wake the recorder; only the events it must act
//! on at once ring a bell: a request (the start sample of a cell is taken
//! when it arrives), the kernel going idle (the end sample), a kernel event.
//! The rest (busy, execute_input, outputs, replies) wait for the next ring or
//! the recorder's tick, carrying the time the relay saw them. A wake-up is a
//! system call on the relay's thread and a context switch for the recorder;
//! a `pass` cell relays five messages and now rings twice.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::wire::contains;

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
    /// Wakes the recorder; one pending ring is enough.
    bell: Option<SyncSender<()>>,
    queued: Arc<AtomicUsize>,
    capacity: usize,
    dropped: Arc<AtomicU64>,
}

/// The recorder's end of the queue.
pub struct TapReceiver {
    rx: Receiver<TapEvent>,
    bell: Receiver<()>,
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

    /// The next event; when none is queued, waits until one rings the bell
    /// or `timeout` passes, and then takes whatever has been queued.
    pub fn recv_timeout(&self, timeout: Duration) -> Result<TapEvent, RecvTimeoutError> {
        match self.try_recv() {
            Ok(ev) => return Ok(ev),
            Err(TryRecvError::Disconnected) => return Err(RecvTimeoutError::Disconnected),
            Err(TryRecvError::Empty) => {}
        }
        // A ring left from an event already taken only makes this return early.
        let _ = self.bell.recv_timeout(timeout);
        self.try_recv().map_err(|e| match e {
            TryRecvError::Empty => RecvTimeoutError::Timeout,
            TryRecvError::Disconnected => RecvTimeoutError::Disconnected,
        })
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
        let (bell_tx, bell) = std::sync::mpsc::sync_channel(1);
        let dropped = Arc::new(AtomicU64::new(0));
        let queued = Arc::new(AtomicUsize::new(0));
        (
            Tap {
                tx: Some(tx),
                bell: Some(bell_tx),
                queued: queued.clone(),
                capacity,
                dropped: dropped.clone(),
            },
            TapReceiver { rx, bell, queued },
            dropped,
        )
    }

    /// A tap that records nothing (`JUPYTER_LINEAGE=off`, or no usable store).
    pub fn disabled() -> Tap {
        Tap {
            tx: None,
            bell: None,
            queued: Arc::new(AtomicUsize::new(0)),
            capacity: 0,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn is_enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Hands an event to the recorder without ever blocking, and wakes it.
    pub fn send(&self, event: TapEvent) {
        self.queue(event, true);
    }

    /// Queues an event; `wake` rings the recorder's bell after it.
    fn queue(&self, event: TapEvent, wake: bool) {
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
            return;
        }
        if wake {
            if let Some(bell) = &self.bell {
                // Full: a ring is already pending, which is as good.
                let _ = bell.try_send(());
            }
        }
    }

    /// Taps the four signed frames of a relayed message.
    pub fn message(&self, channel: Channel, frames: &[Bytes]) {
        if self.tx.is_none() || frames.len() < 4 {
            return;
        }
        let wake = match channel {
            Channel::ShellRequest | Channel::ControlRequest => true,
            Channel::ShellReply => false,
            Channel::Iopub => is_idle_status(&frames[0], &frames[3]),
        };
        let event = TapEvent::Message(TappedMessage {
            channel,
            at: SystemTime::now(),
            header: frames[0].clone(),
            parent_header: frames[1].clone(),
            metadata: frames[2].clone(),
            content: frames[3].clone(),
        });
        self.queue(event, wake);
    }

    /// How many events were dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Whether an iopub message is `status: idle`, by a byte search of its
/// header and content (no parse on the relay). A false positive costs one
/// early wake-up, nothing more.
fn is_idle_status(header: &[u8], content: &[u8]) -> bool {
    content.len() < 256 && contains(content, b"\"idle\"") && contains(header, b"\"status\"")
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

    fn frames(msg_type: &str, content: &str) -> Vec<Bytes> {
        let header = format!(r#"{{"msg_id": "1", "msg_type": "{msg_type}", "session": "s"}}"#);
        vec![
            Bytes::from(header),
            Bytes::from_static(b"{}"),
            Bytes::from_static(b"{}"),
            Bytes::from(content.to_owned()),
        ]
    }

    /// Only the events the recorder must act on at once wake it; the others
    /// are taken at its next wake-up or tick, in order.
    #[test]
    fn only_requests_idle_and_kernel_events_ring() {
        let (tap, rx, _) = Tap::bounded(100);
        let short = Duration::from_millis(20);
        tap.message(
            Channel::Iopub,
            &frames("status", r#"{"execution_state": "busy"}"#),
        );
        tap.message(
            Channel::Iopub,
            &frames("stream", r#"{"name": "stdout", "text": "idle"}"#),
        );
        tap.message(
            Channel::ShellReply,
            &frames("execute_reply", r#"{"status": "ok"}"#),
        );
        assert!(rx.bell.try_recv().is_err(), "nothing rang");
        assert_eq!(rx.len(), 3);
        tap.message(
            Channel::Iopub,
            &frames("status", r#"{"execution_state": "idle"}"#),
        );
        assert!(rx.bell.try_recv().is_ok(), "idle rang");
        tap.message(
            Channel::ShellRequest,
            &frames("execute_request", r#"{"code": ""}"#),
        );
        assert!(rx.bell.try_recv().is_ok(), "a request rang");
        tap.send(event());
        assert!(rx.bell.try_recv().is_ok(), "a kernel event rang");
        let mut statuses = Vec::new();
        let mut kernel_events = 0;
        while let Ok(ev) = rx.recv_timeout(short) {
            match ev {
                TapEvent::Message(m) => {
                    statuses.push(String::from_utf8_lossy(&m.header).contains("status"))
                }
                TapEvent::Kernel(_) => kernel_events += 1,
            }
        }
        assert_eq!(statuses, [true, false, false, true, false]);
        assert_eq!(kernel_events, 1);
    }

    /// With nothing ringing, a queued event is still taken after the tick.
    #[test]
    fn quiet_events_wait_for_the_tick_not_forever() {
        let (tap, rx, _) = Tap::bounded(100);
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            tap.message(Channel::Iopub, &frames("stream", r#"{"text": "x"}"#));
            tap
        });
        let t0 = std::time::Instant::now();
        let ev = rx.recv_timeout(Duration::from_millis(300));
        assert!(ev.is_ok());
        assert!(
            t0.elapsed() >= Duration::from_millis(250),
            "{:?}",
            t0.elapsed()
        );
        drop(t.join().unwrap());
        assert!(matches!(
            rx.recv_timeout(Duration::from_millis(300)),
            Err(RecvTimeoutError::Disconnected)
        ));
    }

    #[test]
    fn disabled_tap_takes_nothing() {
        let tap = Tap::disabled();
        assert!(!tap.is_enabled());
        tap.send(event());
        assert_eq!(tap.dropped(), 0);
    }
}
