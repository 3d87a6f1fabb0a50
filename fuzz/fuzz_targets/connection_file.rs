//! Arbitrary connection-file text: parsed or refused, never a panic; what
//! parses yields endpoints and a signer (or a refused scheme), and survives
//! a write/read round trip.
#![no_main]

use jupyter_lineage::connection_file;
use jupyter_lineage::wire::Signer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(info) = connection_file::parse(data) else {
        return;
    };
    let eps = connection_file::endpoints(&info);
    let _ = (eps.shell.len(), eps.heartbeat.len());
    let _ = Signer::new(&info.signature_scheme, info.key.as_bytes());
    // What the proxy writes for the real kernel must read back the same.
    let text = serde_json::to_vec(&info).expect("connection info serialises");
    let again = connection_file::parse(&text).expect("own output parses");
    assert_eq!(again, info);
});
