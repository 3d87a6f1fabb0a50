//! The proxy's subscription to the real kernel's iopub: a ZMTP 3.0 SUB of
//! our own (the codec is `zmtp`), as `client_iopub` is the client-facing
//! XPUB.
//!
//! The zeromq crate's SUB reads into one growing buffer and hands out frames
//! that share it. After a 10 MB display that buffer stays 10 MB for as long
//! as any piece of it, or the reader's headroom, is alive, and whether it is
//! depends on timing. The proxy's memory after a burst was a coin toss. Our
//! reader (`zmtp::MessageReader`) copies small frames out of a fixed buffer
//! and reads a large frame into an allocation of exactly its size, freed
//! once the relay, the subscribers and the recorder are done with it.
//!
//! [`KernelIopub::recv`] is cancel safe, so it can sit in a `select!`.

use std::io;

use bytes::Bytes;
use tokio::io::AsyncWriteExt;

use crate::zmtp::{self, MessageReader, Reader, Role, Writer};

/// A subscription to everything a kernel publishes.
pub struct KernelIopub {
    reader: MessageReader,
    /// Kept open: closing our side would end the subscription.
    _write: Writer,
}

impl std::fmt::Debug for KernelIopub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelIopub").finish_non_exhaustive()
    }
}

impl KernelIopub {
    /// Connects to a PUB or XPUB at `tcp://HOST:PORT` or `ipc://PATH` and
    /// subscribes to every topic.
    pub async fn connect(endpoint: &str) -> io::Result<KernelIopub> {
        let (read, write) = zmtp::connect(endpoint).await?;
        KernelIopub::over(read, write).await
    }

    /// Handshake and subscription over an open connection.
    async fn over(mut read: Reader, mut write: Writer) -> io::Result<KernelIopub> {
        let role = Role {
            as_server: false,
            socket_type: "SUB",
            identity: b"",
            peer_types: "PUB XPUB",
        };
        zmtp::handshake(&mut read, &mut write, &role).await?;
        // Subscribe to everything: a one-frame message `\x01` + topic "",
        // as ZMTP 3.0 spells it (libzmq accepts it from 3.1 peers too).
        let (header, n) = zmtp::frame_header(0, 1);
        write.write_all(&header[..n]).await?;
        write.write_all(&[1]).await?;
        write.flush().await?;
        Ok(KernelIopub {
            reader: MessageReader::new(read),
            _write: write,
        })
    }

    /// The next message, as its frames. An error ends the subscription
    /// (the kernel closed its socket, or spoke something that is not ZMTP).
    pub async fn recv(&mut self) -> io::Result<Vec<Bytes>> {
        self.reader.recv().await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::zmtp::{greeting, ready_command, FLAG_LONG, FLAG_MORE};
    use std::time::Duration;
    use tokio::io::AsyncReadExt;
    use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

    async fn bound_pub() -> (PubSocket, String) {
        let mut publisher = PubSocket::new();
        let ep = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
        (publisher, ep.to_string())
    }

    /// Publishes until the subscription is live (a PUB drops messages for
    /// peers whose subscription has not arrived), then returns.
    async fn until_live(publisher: &mut PubSocket, sub: &mut KernelIopub) {
        loop {
            publisher
                .send(ZmqMessage::from(Bytes::from_static(b"hello")))
                .await
                .unwrap();
            if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_millis(50), sub.recv()).await {
                assert_eq!(m, vec![Bytes::from_static(b"hello")]);
                return;
            }
        }
    }

    fn multipart(parts: Vec<Bytes>) -> ZmqMessage {
        ZmqMessage::try_from(parts).unwrap()
    }

    #[tokio::test]
    async fn receives_multipart_messages_small_and_large_in_order() {
        let (mut publisher, ep) = bound_pub().await;
        let mut sub = KernelIopub::connect(&ep).await.unwrap();
        until_live(&mut publisher, &mut sub).await;
        let big = Bytes::from((0..3_000_000u32).map(|i| i as u8).collect::<Vec<_>>());
        let sent = vec![
            vec![
                Bytes::from_static(b"topic"),
                Bytes::from_static(b"<IDS|MSG>"),
            ],
            vec![
                Bytes::from_static(b"a"),
                big.clone(),
                Bytes::from_static(b"z"),
            ],
            vec![Bytes::from(vec![7u8; 300]), Bytes::new()],
            vec![
                Bytes::from(vec![1u8; 64 * 1024]),
                Bytes::from(vec![2u8; 64 * 1024 + 1]),
            ],
        ];
        for parts in &sent {
            publisher.send(multipart(parts.clone())).await.unwrap();
        }
        for parts in &sent {
            assert_eq!(&sub.recv().await.unwrap(), parts);
        }
    }

    /// Dropping `recv` halfway through a message (as `select!` does when
    /// another branch wins) loses nothing.
    #[tokio::test]
    async fn recv_is_cancel_safe() {
        let (near, far) = tokio::net::UnixStream::pair().unwrap();
        let (pr, mut pw) = far.into_split();
        let (nr, nw) = near.into_split();
        // The peer's side of the handshake, from a raw stream.
        let client = tokio::spawn(KernelIopub::over(Box::new(nr), Box::new(nw)));
        pw.write_all(&greeting(true)).await.unwrap();
        pw.write_all(&ready_command("PUB", b"")).await.unwrap();
        let mut pr = pr;
        // Our greeting, READY (a 25-byte body) and the subscription.
        let mut theirs = [0u8; 64 + 2 + 25 + 3];
        pr.read_exact(&mut theirs).await.unwrap();
        assert_eq!(theirs[32], 0, "the client side");
        assert_eq!(&theirs[64 + 2..64 + 8], b"\x05READY");
        assert_eq!(
            &theirs[64 + 2 + 25..],
            &[0, 1, 1],
            "subscribes to everything"
        );
        let mut sub = client.await.unwrap().unwrap();

        // One message of three frames, the middle one large, written in
        // pieces with a cancelled recv between each.
        let large = vec![9u8; 200_000];
        let mut wire = vec![FLAG_MORE, 1, b'a', FLAG_MORE | FLAG_LONG];
        wire.extend_from_slice(&(large.len() as u64).to_be_bytes());
        wire.extend_from_slice(&large);
        wire.extend_from_slice(&[0, 1, b'z']);
        let mut early = None;
        let mut cancelled = 0;
        for piece in wire.chunks(7_001) {
            pw.write_all(piece).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(1), sub.recv()).await {
                Ok(m) => early = Some(m.unwrap()),
                Err(_) => cancelled += 1,
            }
        }
        assert!(cancelled > 10, "{cancelled}");
        let got = match early {
            Some(m) => m,
            None => match tokio::time::timeout(Duration::from_secs(5), sub.recv()).await {
                Ok(r) => r.unwrap(),
                Err(_) => panic!("message lost"),
            },
        };
        assert_eq!(got.len(), 3);
        assert_eq!(&got[0][..], b"a");
        assert_eq!(&got[1][..], &large[..]);
        assert_eq!(&got[2][..], b"z");
    }

    #[tokio::test]
    async fn garbage_and_a_closed_peer_are_errors() {
        assert!(KernelIopub::connect("inproc://x").await.is_err());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut sink = vec![0u8; 128];
            let _ = s.read(&mut sink).await;
        });
        assert!(KernelIopub::connect(&format!("tcp://{addr}"))
            .await
            .is_err());
        server.abort();
    }
}
