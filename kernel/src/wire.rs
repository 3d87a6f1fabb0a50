//! The Jupyter wire format: framing and HMAC signatures.
//!
//! A message on the wire is `[identities…, "<IDS|MSG>", signature, header,
//! parent_header, metadata, content, buffers…]`. The signature covers the four
//! JSON frames only (messaging spec, "The Wire Protocol"), so the proxy can
//! verify a client's message and forward the very same frames to the real
//! kernel, which shares the key: nothing is re-serialised or re-signed.

use bytes::Bytes;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;
use sha2::{Sha256, Sha512};

pub const DELIMITER: &[u8] = b"<IDS|MSG>";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("no <IDS|MSG> delimiter among {frames} frames")]
    NoDelimiter { frames: usize },
    #[error("{found} frames after the delimiter, at least 5 needed")]
    TooFewFrames { found: usize },
    #[error("bad signature")]
    BadSignature,
    #[error("unsupported signature scheme {0:?} (hmac-sha256 and hmac-sha512 are)")]
    UnsupportedScheme(String),
    #[error("header is not a JSON object with msg_id and msg_type: {0}")]
    BadHeader(String),
}

/// Signs and verifies messages with the connection file's key.
#[derive(Clone)]
pub enum Signer {
    /// An empty key: messages are unsigned and the signature frame is empty.
    None,
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Signer {
    pub fn new(scheme: &str, key: &[u8]) -> Result<Signer, WireError> {
        if key.is_empty() {
            return Ok(Signer::None);
        }
        // A keyed MAC is built once; each use clones its precomputed state.
        match scheme {
            "hmac-sha256" => Ok(Signer::Sha256(
                Hmac::new_from_slice(key).expect("HMAC takes any key length"),
            )),
            "hmac-sha512" => Ok(Signer::Sha512(
                Hmac::new_from_slice(key).expect("HMAC takes any key length"),
            )),
            other => Err(WireError::UnsupportedScheme(other.to_string())),
        }
    }

    /// The hex signature of the four signed frames.
    pub fn sign(&self, parts: [&[u8]; 4]) -> String {
        match self {
            Signer::None => String::new(),
            Signer::Sha256(mac) => hex::encode(feed(mac.clone(), parts).finalize().into_bytes()),
            Signer::Sha512(mac) => hex::encode(feed(mac.clone(), parts).finalize().into_bytes()),
        }
    }

    /// Checks a hex signature in constant time. With no key, anything passes
    /// (that is what an empty key means to every Jupyter implementation).
    pub fn verify(&self, signature: &[u8], parts: [&[u8]; 4]) -> bool {
        let tag = match self {
            Signer::None => return true,
            _ => match hex::decode(signature) {
                Ok(tag) => tag,
                Err(_) => return false,
            },
        };
        match self {
            Signer::None => true,
            Signer::Sha256(mac) => feed(mac.clone(), parts).verify_slice(&tag).is_ok(),
            Signer::Sha512(mac) => feed(mac.clone(), parts).verify_slice(&tag).is_ok(),
        }
    }
}

fn feed<M: Mac>(mut mac: M, parts: [&[u8]; 4]) -> M {
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Where the parts of a framed message are, as indices into its frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Index of the `<IDS|MSG>` delimiter; frames before it are identities.
    pub delimiter: usize,
}

impl Layout {
    pub fn of(frames: &[Bytes]) -> Result<Layout, WireError> {
        let delimiter =
            frames
                .iter()
                .position(|f| f.as_ref() == DELIMITER)
                .ok_or(WireError::NoDelimiter {
                    frames: frames.len(),
                })?;
        let after = frames.len() - delimiter - 1;
        if after < 5 {
            return Err(WireError::TooFewFrames { found: after });
        }
        Ok(Layout { delimiter })
    }

    pub fn identities<'a>(&self, frames: &'a [Bytes]) -> &'a [Bytes] {
        &frames[..self.delimiter]
    }

    pub fn signature<'a>(&self, frames: &'a [Bytes]) -> &'a Bytes {
        &frames[self.delimiter + 1]
    }

    /// header, parent_header, metadata, content.
    pub fn signed<'a>(&self, frames: &'a [Bytes]) -> &'a [Bytes] {
        &frames[self.delimiter + 2..self.delimiter + 6]
    }

    pub fn header<'a>(&self, frames: &'a [Bytes]) -> &'a Bytes {
        &frames[self.delimiter + 2]
    }

    pub fn content<'a>(&self, frames: &'a [Bytes]) -> &'a Bytes {
        &frames[self.delimiter + 5]
    }

    /// Verifies the signature of a framed message.
    pub fn verify(&self, signer: &Signer, frames: &[Bytes]) -> Result<(), WireError> {
        let s = self.signed(frames);
        if signer.verify(self.signature(frames), [&s[0], &s[1], &s[2], &s[3]]) {
            Ok(())
        } else {
            Err(WireError::BadSignature)
        }
    }
}

/// The header fields the proxy routes on. Borrowed: parsing it allocates
/// nothing for the common case of plain ASCII ids.
#[derive(Debug, Deserialize)]
pub struct HeaderRef<'a> {
    #[serde(borrow)]
    pub msg_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    pub msg_type: std::borrow::Cow<'a, str>,
    #[serde(borrow, default)]
    pub session: std::borrow::Cow<'a, str>,
}

impl<'a> HeaderRef<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<HeaderRef<'a>, WireError> {
        serde_json::from_slice(bytes).map_err(|e| WireError::BadHeader(e.to_string()))
    }
}

/// A message the proxy itself makes (iopub_welcome, comm replies, status,
/// its own kernel_info_request). Forwarded messages never pass through here.
#[derive(Debug, Clone)]
pub struct OwnMessage {
    pub header: serde_json::Value,
    pub parent_header: serde_json::Value,
    pub metadata: serde_json::Value,
    pub content: serde_json::Value,
}

impl OwnMessage {
    /// A new message with a fresh msg_id, in session `session`.
    pub fn new(msg_type: &str, session: &str, parent_header: serde_json::Value) -> OwnMessage {
        OwnMessage {
            header: serde_json::json!({
                "msg_id": uuid::Uuid::new_v4().to_string(),
                "msg_type": msg_type,
                "session": session,
                "username": "jupyter-lineage",
                "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                "version": "5.4",
            }),
            parent_header,
            metadata: serde_json::json!({}),
            content: serde_json::json!({}),
        }
    }

    pub fn with_content(mut self, content: serde_json::Value) -> OwnMessage {
        self.content = content;
        self
    }

    pub fn msg_id(&self) -> &str {
        self.header["msg_id"].as_str().unwrap_or_default()
    }

    /// Frames for the wire: `identities`, delimiter, signature, the four parts.
    pub fn to_frames(&self, signer: &Signer, identities: &[Bytes]) -> Vec<Bytes> {
        let parts: [Bytes; 4] = [
            &self.header,
            &self.parent_header,
            &self.metadata,
            &self.content,
        ]
        .map(|v| Bytes::from(serde_json::to_vec(v).expect("JSON values serialise")));
        let signature = signer.sign([&parts[0], &parts[1], &parts[2], &parts[3]]);
        let mut frames = Vec::with_capacity(identities.len() + 6);
        frames.extend_from_slice(identities);
        frames.push(Bytes::from_static(DELIMITER));
        frames.push(Bytes::from(signature));
        frames.extend(parts);
        frames
    }
}

/// Whether `needle` occurs in `haystack`: the byte search the relay, the
/// tap and the comm service use to look into a frame without parsing it.
pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(signer: &Signer, ids: &[&str]) -> Vec<Bytes> {
        let msg = OwnMessage::new("kernel_info_request", "s", serde_json::json!({}));
        let ids: Vec<Bytes> = ids.iter().map(|s| Bytes::from(s.to_string())).collect();
        msg.to_frames(signer, &ids)
    }

    #[test]
    fn signs_like_jupyter_client() {
        // Reference value from Python: hmac.new(b"key", digestmod=sha256) fed
        // b"a", b"b", b"c", b"d" in turn.
        let signer = Signer::new("hmac-sha256", b"key").unwrap();
        assert_eq!(
            signer.sign([b"a", b"b", b"c", b"d"]),
            "2a31ec0ee8d878c9eece9fb0df79b3b90b2256240163aa5ee50d176d3d1121f8"
        );
        let sig = signer.sign([b"a", b"b", b"c", b"d"]);
        assert_eq!(sig.len(), 64);
        assert!(signer.verify(sig.as_bytes(), [b"a", b"b", b"c", b"d"]));
        assert!(!signer.verify(sig.as_bytes(), [b"a", b"b", b"c", b"e"]));
    }

    #[test]
    fn round_trip_with_identities() {
        let signer = Signer::new("hmac-sha256", b"secret").unwrap();
        let frames = framed(&signer, &["client-a", "client-b"]);
        let layout = Layout::of(&frames).unwrap();
        assert_eq!(layout.identities(&frames).len(), 2);
        layout.verify(&signer, &frames).unwrap();
        let header = HeaderRef::parse(layout.header(&frames)).unwrap();
        assert_eq!(header.msg_type, "kernel_info_request");
    }

    #[test]
    fn wrong_key_missing_signature_and_tampering_are_refused() {
        let good = Signer::new("hmac-sha256", b"secret").unwrap();
        let bad = Signer::new("hmac-sha256", b"other").unwrap();
        let frames = framed(&bad, &[]);
        let layout = Layout::of(&frames).unwrap();
        assert_eq!(layout.verify(&good, &frames), Err(WireError::BadSignature));

        let mut unsigned = framed(&good, &[]);
        unsigned[1] = Bytes::new();
        assert_eq!(
            Layout::of(&unsigned).unwrap().verify(&good, &unsigned),
            Err(WireError::BadSignature)
        );

        let mut tampered = framed(&good, &[]);
        tampered[5] = Bytes::from_static(b"{\"code\":\"rm -rf /\"}");
        assert_eq!(
            Layout::of(&tampered).unwrap().verify(&good, &tampered),
            Err(WireError::BadSignature)
        );

        let mut not_hex = framed(&good, &[]);
        not_hex[1] = Bytes::from_static(b"zz");
        assert!(Layout::of(&not_hex)
            .unwrap()
            .verify(&good, &not_hex)
            .is_err());
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Layout::of(&[]).is_err());
        assert!(Layout::of(&[Bytes::from_static(b"\xff\x00")]).is_err());
        let short = vec![Bytes::from_static(DELIMITER), Bytes::new(), Bytes::new()];
        assert_eq!(
            Layout::of(&short),
            Err(WireError::TooFewFrames { found: 2 })
        );
        assert!(HeaderRef::parse(b"\xff").is_err());
        assert!(HeaderRef::parse(b"[]").is_err());
    }

    #[test]
    fn empty_key_means_unsigned() {
        let signer = Signer::new("hmac-sha256", b"").unwrap();
        assert_eq!(signer.sign([b"a", b"b", b"c", b"d"]), "");
        assert!(signer.verify(b"", [b"a", b"b", b"c", b"d"]));
    }

    #[test]
    fn unknown_scheme_is_refused() {
        assert!(matches!(
            Signer::new("hmac-md5", b"k"),
            Err(WireError::UnsupportedScheme(_))
        ));
    }
}
