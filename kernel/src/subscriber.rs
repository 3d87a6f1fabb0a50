//! The proxy's subscription to the real kernel's iopub: a ZMTP 3.0 SUB of
//! our own, as `publisher` is the client-facing XPUB.
//!
//! The zeromq crate's SUB reads into one growing buffer and hands out frames
//! that share it. After a 10 MB display that buffer stays 10 MB for as long
//! as any piece of it, or the reader's headroom, is alive, and whether it is
//! depends on timing. The proxy's memory after a burst was a coin toss. Here
//! small frames are copied out of a fixed 64 KiB buffer, and a large frame
//! is read straight into an allocation of exactly its size, which is freed
//! (and, above glibc's mmap threshold, unmapped) once the relay, the
//! subscribers and the recorder are done with it.
//!
//! [`KernelSub::recv`] is cancel safe: every byte read is kept in the struct
//! until its message is complete, so it can sit in a `select!`.

use std::io;
use std::path::Path;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::publisher::{frame_header, handshake, PeerError, FLAG_COMMAND, FLAG_LONG, FLAG_MORE};

/// Frames up to this size are copied out of the read buffer; larger ones
/// get an allocation of their own.
const SMALL: usize = 64 * 1024;
/// The read buffer: one small frame and its 9-byte header always fit.
const BUFFER: usize = SMALL + 16;

type Reader = Box<dyn AsyncRead + Send + Unpin>;
type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// A subscription to everything a kernel publishes.
pub struct KernelSub {
    read: Reader,
    /// Kept open: closing our side would end the subscription.
    _write: Writer,
    buf: Box<[u8]>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Frames of the message being read.
    frames: Vec<Bytes>,
    /// A large frame being filled: flags, body, bytes filled.
    large: Option<(u8, Vec<u8>, usize)>,
}

impl std::fmt::Debug for KernelSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KernelSub").finish_non_exhaustive()
    }
}

impl KernelSub {
    /// Connects to a PUB or XPUB at `tcp://HOST:PORT` or `ipc://PATH` and
    /// subscribes to every topic.
    pub async fn connect(endpoint: &str) -> io::Result<KernelSub> {
        let (read, write): (Reader, Writer) = if let Some(path) = endpoint.strip_prefix("ipc://") {
            let (r, w) = tokio::net::UnixStream::connect(Path::new(path))
                .await?
                .into_split();
            (Box::new(r), Box::new(w))
        } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            stream.set_nodelay(true)?;
            let (r, w) = stream.into_split();
            (Box::new(r), Box::new(w))
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "unsupported endpoint {endpoint:?}: expected tcp://HOST:PORT or ipc://PATH"
                ),
            ));
        };
        KernelSub::over(read, write).await
    }

    /// Handshake and subscription over an open connection.
    async fn over(mut read: Reader, mut write: Writer) -> io::Result<KernelSub> {
        handshake(&mut read, &mut write, false, "SUB", "PUB XPUB")
            .await
            .map_err(|e| match e {
                PeerError::Io(e) => e,
                other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
            })?;
        // Subscribe to everything: a one-frame message `\x01` + topic "",
        // as ZMTP 3.0 spells it (libzmq accepts it from 3.1 peers too).
        let (header, n) = frame_header(0, 1);
        write.write_all(&header[..n]).await?;
        write.write_all(&[1]).await?;
        write.flush().await?;
        Ok(KernelSub {
            read,
            _write: write,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            frames: Vec::new(),
            large: None,
        })
    }

    /// The next message, as its frames. An error ends the subscription
    /// (the kernel closed its socket, or spoke something that is not ZMTP).
    pub async fn recv(&mut self) -> io::Result<Vec<Bytes>> {
        loop {
            // A large frame being filled stays in `self.large` across each
            // await, so a cancelled `recv` loses nothing.
            if let Some((_, body, filled)) = &mut self.large {
                if *filled < body.len() {
                    // What the buffer holds first, then straight into the body.
                    if self.start < self.end {
                        let n = (self.end - self.start).min(body.len() - *filled);
                        body[*filled..*filled + n]
                            .copy_from_slice(&self.buf[self.start..self.start + n]);
                        self.start += n;
                        *filled += n;
                    } else {
                        let n = self.read.read(&mut body[*filled..]).await?;
                        if n == 0 {
                            return Err(io::ErrorKind::UnexpectedEof.into());
                        }
                        *filled += n;
                    }
                    continue;
                }
            }
            if let Some((flags, body, _)) = self.large.take() {
                if let Some(message) = self.complete(flags, Bytes::from(body)) {
                    return Ok(message);
                }
                continue;
            }
            match self.parse_header()? {
                Some((flags, size, header_len))
                    if size <= SMALL && self.end - self.start >= header_len + size =>
                {
                    let at = self.start + header_len;
                    let body = Bytes::copy_from_slice(&self.buf[at..at + size]);
                    self.start = at + size;
                    if let Some(message) = self.complete(flags, body) {
                        return Ok(message);
                    }
                    continue;
                }
                Some((flags, size, header_len)) if size > SMALL => {
                    self.start += header_len;
                    self.large = Some((flags, vec![0; size], 0));
                    continue;
                }
                // No header yet, or a small frame not all here.
                _ => {}
            }
            self.fill().await?;
        }
    }

    /// Flags, body size and header length of the next frame, if its header
    /// has arrived.
    fn parse_header(&self) -> io::Result<Option<(u8, usize, usize)>> {
        let avail = &self.buf[self.start..self.end];
        let Some(&flags) = avail.first() else {
            return Ok(None);
        };
        if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("frame flags {flags:#04x} are not ZMTP"),
            ));
        }
        if flags & FLAG_LONG != 0 {
            let Some(len) = avail.get(1..9) else {
                return Ok(None);
            };
            let size = u64::from_be_bytes(len.try_into().expect("8 bytes"));
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| isize::try_from(s).is_ok())
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidData, "frame length out of range")
                })?;
            Ok(Some((flags, size, 9)))
        } else {
            Ok(avail.get(1).map(|&len| (flags, usize::from(len), 2)))
        }
    }

    /// Reads more into the buffer, moving what is unparsed to its front.
    async fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let n = self.read.read(&mut self.buf[self.end..]).await?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.end += n;
        Ok(())
    }

    /// Adds a frame; the whole message when it was the last one. Commands
    /// (a 3.1 peer's PING, say) are not messages and are skipped: kernels do
    /// not turn ZMTP heartbeats on.
    fn complete(&mut self, flags: u8, body: Bytes) -> Option<Vec<Bytes>> {
        if flags & FLAG_COMMAND != 0 {
            return None;
        }
        self.frames.push(body);
        if flags & FLAG_MORE != 0 {
            return None;
        }
        Some(std::mem::take(&mut self.frames))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publisher::{greeting, ready_command};
    use std::time::Duration;
    use zeromq::{PubSocket, Socket, SocketSend, ZmqMessage};

    async fn bound_pub() -> (PubSocket, String) {
        let mut publisher = PubSocket::new();
        let ep = publisher.bind("tcp://127.0.0.1:0").await.unwrap();
        (publisher, ep.to_string())
    }

    /// Publishes until the subscription is live (a PUB drops messages for
    /// peers whose subscription has not arrived), then returns.
    async fn until_live(publisher: &mut PubSocket, sub: &mut KernelSub) {
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
        let mut sub = KernelSub::connect(&ep).await.unwrap();
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
                Bytes::from(vec![1u8; SMALL]),
                Bytes::from(vec![2u8; SMALL + 1]),
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
        let client = tokio::spawn(KernelSub::over(Box::new(nr), Box::new(nw)));
        pw.write_all(&greeting(true)).await.unwrap();
        pw.write_all(&ready_command("PUB")).await.unwrap();
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
        assert!(KernelSub::connect("inproc://x").await.is_err());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
            let mut sink = vec![0u8; 128];
            let _ = s.read(&mut sink).await;
        });
        assert!(KernelSub::connect(&format!("tcp://{addr}")).await.is_err());
        server.abort();
    }
}
