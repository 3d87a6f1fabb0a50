//! A kernel-facing DEALER of our own (ZMTP 3.0, the codec is `zmtp`): the
//! proxy acting as a client on the real kernel's shell, control and stdin.
//!
//! Why not the zeromq crate's `DealerSocket`: its `send` only queues, and a
//! task of its own writes the queue out, so every request costs a second
//! task wake-up on the relay thread; and its `recv` never ends when the
//! kernel goes away (it waits for a peer to come back), so the proxy could
//! only guess when the kernel's last reply had been relayed. Here `send`
//! writes the frames on the caller's task, and `recv` ends with
//! `UnexpectedEof` once the kernel has closed its socket and everything it
//! sent before has been read: the relay's natural end at shutdown.
//!
//! One connection, no reconnection: the proxy exits with its kernel, and a
//! restart is a fresh proxy.

use std::io;

use bytes::Bytes;
use tokio::io::{AsyncWriteExt, BufWriter};

use crate::zmtp::{self, MessageReader, Role, Writer};

/// Coalesces a message's frames into one write; a frame at least this big
/// is written straight from its `Bytes`.
const WRITE_BUFFER: usize = 16 * 1024;

/// Connects a DEALER to the kernel's ROUTER at `endpoint`, announcing
/// `identity` as its routing id (what the kernel's ROUTER puts in front of
/// every message from it; empty lets the kernel pick one).
pub async fn connect(
    endpoint: &str,
    identity: &[u8],
) -> io::Result<(KernelDealerRecv, KernelDealerSend)> {
    let (mut read, mut write) = zmtp::connect(endpoint).await?;
    let role = Role {
        as_server: false,
        socket_type: "DEALER",
        identity,
        peer_types: "ROUTER",
    };
    zmtp::handshake(&mut read, &mut write, &role).await?;
    Ok((
        KernelDealerRecv {
            reader: MessageReader::new(read),
        },
        KernelDealerSend {
            writer: BufWriter::with_capacity(WRITE_BUFFER, write),
        },
    ))
}

/// The receiving half: replies (shell, control) and requests (stdin) from
/// the kernel.
pub struct KernelDealerRecv {
    reader: MessageReader,
}

impl KernelDealerRecv {
    /// The next message. Cancel safe. `UnexpectedEof` once the kernel has
    /// closed the connection and every message before it was returned.
    pub async fn recv(&mut self) -> io::Result<Vec<Bytes>> {
        self.reader.recv().await
    }
}

/// The sending half.
pub struct KernelDealerSend {
    writer: BufWriter<Writer>,
}

impl KernelDealerSend {
    /// Writes one message and flushes it. Not cancel safe (a message could
    /// go out in part): await it to the end.
    pub async fn send(&mut self, frames: &[Bytes]) -> io::Result<()> {
        zmtp::write_message(&mut self.writer, frames).await?;
        self.writer.flush().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zeromq::{RouterSocket, Socket, SocketRecv, SocketSend, ZmqMessage};

    const WAIT: Duration = Duration::from_secs(10);

    #[tokio::test]
    async fn talks_to_a_router_under_its_own_identity() {
        let mut router = RouterSocket::new();
        let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let (mut rx, mut tx) = connect(&ep, b"client-a").await.unwrap();
        let big = Bytes::from(vec![3u8; 300_000]);
        tx.send(&[Bytes::from_static(b"hello"), big.clone()])
            .await
            .unwrap();
        let got = tokio::time::timeout(WAIT, router.recv())
            .await
            .unwrap()
            .unwrap();
        let got: Vec<Bytes> = got.into_vec();
        assert_eq!(got[0], Bytes::from_static(b"client-a"));
        assert_eq!(got[1], Bytes::from_static(b"hello"));
        assert_eq!(got[2], big);

        let reply = ZmqMessage::try_from(vec![
            Bytes::from_static(b"client-a"),
            Bytes::from_static(b"reply"),
        ])
        .unwrap();
        router.send(reply).await.unwrap();
        let got = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, vec![Bytes::from_static(b"reply")]);
    }

    #[tokio::test]
    async fn recv_ends_when_the_kernel_closes() {
        let mut router = RouterSocket::new();
        let ep = router.bind("tcp://127.0.0.1:0").await.unwrap().to_string();
        let (mut rx, mut tx) = connect(&ep, b"").await.unwrap();
        tx.send(&[Bytes::from_static(b"ping")]).await.unwrap();
        let got = router.recv().await.unwrap().into_vec();
        let reply =
            ZmqMessage::try_from(vec![got[0].clone(), Bytes::from_static(b"last")]).unwrap();
        router.send(reply).await.unwrap();
        // Give the router's writer the moment it needs, then close it.
        let last = tokio::time::timeout(WAIT, rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(last, vec![Bytes::from_static(b"last")]);
        drop(router);
        let end = tokio::time::timeout(WAIT, rx.recv()).await.unwrap();
        assert_eq!(end.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }
}
