//! Arbitrary multipart messages through the wire decoder: framing, signature
//! check and header parse must refuse garbage, never panic.
//!
//! Input: one flags byte, then frames separated by 0x1f (ASCII unit
//! separator). Flags: bit 0 = hmac-sha512 (else sha256), bit 1 = empty key
//! (unsigned), bit 2 = re-sign the frames first (so the fuzzer also reaches
//! the paths behind a valid signature).
#![no_main]

use bytes::Bytes;
use jupyter_lineage::wire::{HeaderRef, Layout, Signer, WireError};
use libfuzzer_sys::fuzz_target;

const KEY: &[u8] = b"a0436f6c-1916-498b-8eb9-e81ab9368e84";

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let scheme = if flags & 1 == 1 {
        "hmac-sha512"
    } else {
        "hmac-sha256"
    };
    let key: &[u8] = if flags & 2 == 2 { b"" } else { KEY };
    let signer = Signer::new(scheme, key).expect("known scheme");
    let mut frames: Vec<Bytes> = rest
        .split(|&b| b == 0x1f)
        .map(Bytes::copy_from_slice)
        .collect();

    let layout = match Layout::of(&frames) {
        Ok(layout) => layout,
        Err(WireError::NoDelimiter { .. } | WireError::TooFewFrames { .. }) => return,
        Err(e) => panic!("framing gave an unexpected error: {e}"),
    };
    if flags & 4 == 4 {
        let s = layout.signed(&frames);
        let sig = signer.sign([&s[0], &s[1], &s[2], &s[3]]);
        frames[layout.delimiter + 1] = Bytes::from(sig);
        assert_eq!(
            layout.verify(&signer, &frames),
            Ok(()),
            "own signature refused"
        );
    }
    let verified = layout.verify(&signer, &frames);
    if matches!(signer, Signer::None) {
        assert!(verified.is_ok(), "an empty key accepts everything");
    }
    // What the relay reads of a message, verified or not.
    let _ = layout.identities(&frames).len();
    let _ = layout.content(&frames).len();
    if let Ok(header) = HeaderRef::parse(layout.header(&frames)) {
        let _ = (
            header.msg_id.len(),
            header.msg_type.len(),
            header.session.len(),
        );
    }
});
