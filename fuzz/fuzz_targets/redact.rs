//! Arbitrary text through the secrets redaction: never a panic, and
//! redacting what was redacted changes nothing.
#![no_main]

use jupyter_lineage::redact::redact;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let once = redact(&text);
    let twice = redact(&once);
    assert_eq!(once, twice, "redaction is not idempotent");
});
