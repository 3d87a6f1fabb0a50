//! The ZMTP 3.0 codec (NULL mechanism) our own sockets speak: the greeting
//! and READY handshake, frame headers, and a cancel-safe message reader.
//!
//! Used by the client-facing iopub publisher (`client_iopub`), the
//! kernel-facing iopub subscriber (`kernel_iopub`) and the kernel-facing
//! DEALERs (`kernel_dealer`). Wire format: <https://rfc.zeromq.org/spec/23/>;
//! the 3.1 commands (SUBSCRIBE, CANCEL, PING) are in
//! <https://rfc.zeromq.org/spec/37/>. We advertise 3.0 so that libzmq peers
//! send subscriptions as `\x01topic` messages, which every implementation
//! (the zeromq crate included) speaks.

use std::io;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub(crate) const FLAG_MORE: u8 = 0x01;
pub(crate) const FLAG_LONG: u8 = 0x02;
pub(crate) const FLAG_COMMAND: u8 = 0x04;

/// A connection's read half, whatever the transport.
pub(crate) type Reader = Box<dyn AsyncRead + Send + Unpin>;
/// A connection's write half, whatever the transport.
pub(crate) type Writer = Box<dyn AsyncWrite + Send + Unpin>;

/// Why a ZMTP connection was closed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ZmtpError {
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("not a ZMTP 3 greeting")]
    Signature,
    #[error("ZMTP {0}.{1} is not supported (3.0 or later)")]
    Version(u8, u8),
    #[error("security mechanism {0:?} is not supported (NULL only)")]
    Mechanism(String),
    #[error("frame flags {0:#04x} are not ZMTP")]
    Flags(u8),
    #[error("frame of {0} bytes is over the {1} byte limit")]
    TooLarge(u64, u64),
    #[error("expected READY, got {0}")]
    NotReady(String),
    #[error("malformed READY properties")]
    Properties,
    #[error("socket type {0:?} is not a peer of this socket ({1})")]
    SocketType(String, &'static str),
    #[error("the peer reports an error: {0}")]
    PeerReported(String),
    #[error("handshake not done within {0:?}")]
    HandshakeTimeout(Duration),
}

impl From<ZmtpError> for io::Error {
    fn from(e: ZmtpError) -> io::Error {
        match e {
            ZmtpError::Io(e) => e,
            other => io::Error::new(io::ErrorKind::InvalidData, other.to_string()),
        }
    }
}

/// Our side of a handshake.
pub(crate) struct Role<'a> {
    /// The side that accepted the connection.
    pub as_server: bool,
    pub socket_type: &'static str,
    /// Our routing id (`Identity` property); empty for none.
    pub identity: &'a [u8],
    /// Socket types we accept as a peer, space separated.
    pub peer_types: &'static str,
}

/// Connects to `tcp://HOST:PORT` or `ipc://PATH`.
pub(crate) async fn connect(endpoint: &str) -> io::Result<(Reader, Writer)> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        let (r, w) = tokio::net::UnixStream::connect(Path::new(path))
            .await?
            .into_split();
        Ok((Box::new(r), Box::new(w)))
    } else if let Some(addr) = endpoint.strip_prefix("tcp://") {
        let stream = tokio::net::TcpStream::connect(addr).await?;
        // libzmq sets it too: every channel here is latency-bound.
        stream.set_nodelay(true)?;
        let (r, w) = stream.into_split();
        Ok((Box::new(r), Box::new(w)))
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("unsupported endpoint {endpoint:?}: expected tcp://HOST:PORT or ipc://PATH"),
        ))
    }
}

/// A ZMTP 3.0 greeting with the NULL mechanism.
pub(crate) fn greeting(as_server: bool) -> [u8; 64] {
    let mut g = [0u8; 64];
    g[0] = 0xff;
    g[9] = 0x7f;
    g[10] = 3;
    g[11] = 0;
    g[12..16].copy_from_slice(b"NULL");
    g[32] = u8::from(as_server);
    g
}

/// A READY command announcing `socket_type` (and `identity`, when not
/// empty), framed.
pub(crate) fn ready_command(socket_type: &str, identity: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(48 + identity.len());
    body.push(5);
    body.extend_from_slice(b"READY");
    push_property(&mut body, b"Socket-Type", socket_type.as_bytes());
    if !identity.is_empty() {
        push_property(&mut body, b"Identity", identity);
    }
    let mut frame = Vec::with_capacity(body.len() + 9);
    let (header, n) = frame_header(FLAG_COMMAND, body.len());
    frame.extend_from_slice(&header[..n]);
    frame.extend_from_slice(&body);
    frame
}

fn push_property(body: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    body.push(name.len() as u8);
    body.extend_from_slice(name);
    body.extend_from_slice(&(value.len() as u32).to_be_bytes());
    body.extend_from_slice(value);
}

/// Greeting and READY with the NULL mechanism. Our greeting goes out whole
/// at once; libzmq's partial-greeting dance copes.
pub(crate) async fn handshake<R, W>(
    reader: &mut R,
    writer: &mut W,
    role: &Role<'_>,
) -> Result<(), ZmtpError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    writer.write_all(&greeting(role.as_server)).await?;
    writer.flush().await?;
    let mut peer = [0u8; 64];
    reader.read_exact(&mut peer[..10]).await?;
    // ZMTP 1.0/2.0 peers differ from here on: byte 9's low bit is their tell.
    if peer[0] != 0xff || peer[9] & 1 == 0 {
        return Err(ZmtpError::Signature);
    }
    reader.read_exact(&mut peer[10..]).await?;
    if peer[10] < 3 {
        return Err(ZmtpError::Version(peer[10], peer[11]));
    }
    let mechanism = &peer[12..32];
    let end = mechanism.iter().position(|&b| b == 0).unwrap_or(20);
    if &mechanism[..end] != b"NULL" {
        return Err(ZmtpError::Mechanism(
            String::from_utf8_lossy(&mechanism[..end]).into_owned(),
        ));
    }
    writer
        .write_all(&ready_command(role.socket_type, role.identity))
        .await?;
    writer.flush().await?;

    // A READY is small; anything big is not one.
    let Some(frame) = read_frame(reader, 1 << 16).await? else {
        return Err(ZmtpError::Io(io::ErrorKind::UnexpectedEof.into()));
    };
    let Some((name, body)) = frame.command() else {
        return Err(ZmtpError::NotReady("a message".into()));
    };
    match name {
        b"READY" => {}
        b"ERROR" => {
            let reason = body.get(1..).unwrap_or_default();
            return Err(ZmtpError::PeerReported(
                String::from_utf8_lossy(reason).into_owned(),
            ));
        }
        other => {
            return Err(ZmtpError::NotReady(
                String::from_utf8_lossy(other).into_owned(),
            ))
        }
    }
    let peer_type = properties(body)?
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"Socket-Type"))
        .map(|(_, value)| String::from_utf8_lossy(value).into_owned())
        .unwrap_or_default();
    if !role.peer_types.split(' ').any(|t| t == peer_type) {
        return Err(ZmtpError::SocketType(peer_type, role.peer_types));
    }
    Ok(())
}

/// A READY property: name, value.
pub(crate) type Property<'a> = (&'a [u8], &'a [u8]);

/// The properties of a READY body.
pub(crate) fn properties(mut body: &[u8]) -> Result<Vec<Property<'_>>, ZmtpError> {
    let mut out = Vec::new();
    while let Some((&name_len, rest)) = body.split_first() {
        let name_len = usize::from(name_len);
        if rest.len() < name_len + 4 {
            return Err(ZmtpError::Properties);
        }
        let (name, rest) = rest.split_at(name_len);
        let (len, rest) = rest.split_at(4);
        let value_len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if rest.len() < value_len {
            return Err(ZmtpError::Properties);
        }
        let (value, rest) = rest.split_at(value_len);
        out.push((name, value));
        body = rest;
    }
    Ok(out)
}

/// One frame, read whole (for commands and small control traffic).
pub(crate) struct Frame {
    pub flags: u8,
    pub body: Vec<u8>,
}

impl Frame {
    pub fn more(&self) -> bool {
        self.flags & FLAG_MORE != 0
    }

    /// A command's name and the rest of its body.
    pub fn command(&self) -> Option<(&[u8], &[u8])> {
        if self.flags & FLAG_COMMAND == 0 {
            return None;
        }
        let (&len, rest) = self.body.split_first()?;
        let len = usize::from(len);
        (rest.len() >= len).then(|| rest.split_at(len))
    }
}

/// The next frame of at most `max` bytes, or None at a clean end of stream.
/// Not cancel safe: for handshakes and a subscriber's subscriptions.
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    max: u64,
) -> Result<Option<Frame>, ZmtpError> {
    let flags = match reader.read_u8().await {
        Ok(flags) => flags,
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    if flags & !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND) != 0 {
        return Err(ZmtpError::Flags(flags));
    }
    let size = if flags & FLAG_LONG != 0 {
        reader.read_u64().await?
    } else {
        u64::from(reader.read_u8().await?)
    };
    if size > max {
        return Err(ZmtpError::TooLarge(size, max));
    }
    let mut body = vec![0; size as usize];
    reader.read_exact(&mut body).await?;
    Ok(Some(Frame { flags, body }))
}

/// A frame's flags and size, ready to write: 2 bytes, or 9 for a long frame.
pub(crate) fn frame_header(flags: u8, len: usize) -> ([u8; 9], usize) {
    let mut header = [0u8; 9];
    if len > 255 {
        header[0] = flags | FLAG_LONG;
        header[1..9].copy_from_slice(&(len as u64).to_be_bytes());
        (header, 9)
    } else {
        header[0] = flags;
        header[1] = len as u8;
        (header, 2)
    }
}

/// Writes one message, header then payload straight from each frame's
/// `Bytes`. Behind a `BufWriter`, small frames coalesce into one write and a
/// payload at least as big as its buffer bypasses it, never copied.
pub(crate) async fn write_message<W: AsyncWrite + Unpin>(
    writer: &mut W,
    frames: &[Bytes],
) -> io::Result<()> {
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        let flags = if i < last { FLAG_MORE } else { 0 };
        let (header, len) = frame_header(flags, frame.len());
        writer.write_all(&header[..len]).await?;
        writer.write_all(frame).await?;
    }
    Ok(())
}

/// Frames up to this size are copied out of the read buffer; larger ones
/// get an allocation of their own.
const SMALL: usize = 64 * 1024;
/// The read buffer: one small frame and its 9-byte header always fit.
const BUFFER: usize = SMALL + 16;

/// Reads whole messages off a connection.
///
/// Small frames are copied out of a fixed 64 KiB buffer, and a large frame
/// is read straight into an allocation of exactly its size, which is freed
/// (and, above glibc's mmap threshold, unmapped) once everyone is done with
/// it: no read buffer keeps the last large output alive (the zeromq crate's
/// does, see `kernel_iopub`).
///
/// [`MessageReader::recv`] is cancel safe: every byte read is kept in the
/// struct until its message is complete, so it can sit in a `select!`.
pub(crate) struct MessageReader {
    read: Reader,
    buf: Box<[u8]>,
    /// Unparsed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
    /// Frames of the message being read.
    frames: Vec<Bytes>,
    /// A large frame being filled: flags, body, bytes filled.
    large: Option<(u8, Vec<u8>, usize)>,
}

impl MessageReader {
    pub fn new(read: Reader) -> MessageReader {
        MessageReader {
            read,
            buf: vec![0; BUFFER].into_boxed_slice(),
            start: 0,
            end: 0,
            frames: Vec::new(),
            large: None,
        }
    }

    /// The next message, as its frames. An error ends the connection
    /// (`UnexpectedEof` when the peer closed it, `InvalidData` for something
    /// that is not ZMTP).
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
            return Err(ZmtpError::Flags(flags).into());
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

    #[test]
    fn ready_carries_the_identity_when_there_is_one() {
        let plain = ready_command("SUB", b"");
        let (name, body) = Frame {
            flags: plain[0],
            body: plain[2..].to_vec(),
        }
        .command()
        .map(|(n, b)| (n.to_vec(), b.to_vec()))
        .unwrap();
        assert_eq!(name, b"READY");
        assert_eq!(
            properties(&body).unwrap(),
            vec![(&b"Socket-Type"[..], &b"SUB"[..])]
        );
        let with_id = ready_command("DEALER", b"client-7");
        let frame = Frame {
            flags: with_id[0],
            body: with_id[2..].to_vec(),
        };
        let (_, body) = frame.command().unwrap();
        assert_eq!(
            properties(body).unwrap(),
            vec![
                (&b"Socket-Type"[..], &b"DEALER"[..]),
                (&b"Identity"[..], &b"client-7"[..])
            ]
        );
    }

    #[test]
    fn frame_headers_short_and_long() {
        assert_eq!(frame_header(FLAG_MORE, 5), ([1, 5, 0, 0, 0, 0, 0, 0, 0], 2));
        let (h, n) = frame_header(0, 256);
        assert_eq!(n, 9);
        assert_eq!(h[0], FLAG_LONG);
        assert_eq!(u64::from_be_bytes(h[1..9].try_into().unwrap()), 256);
    }

    #[test]
    fn malformed_properties_are_refused() {
        assert!(properties(&[11, b'S']).is_err());
        assert!(properties(&[1, b'a', 0, 0, 0, 9, b'x']).is_err());
        assert!(properties(&[]).unwrap().is_empty());
    }
}
