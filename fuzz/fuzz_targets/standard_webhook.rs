//! Standard Webhooks: header parsing, verification and the event parser on arbitrary input.
#![no_main]

use call_dashboard_worker::domain::Timestamp;
use call_dashboard_worker::webhooks::standard::{self, SignatureHeaders};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: id \n timestamp \n signature \n body
    let mut parts = data.splitn(4, |b| *b == b'\n');
    let id = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let ts = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let sig = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let body = parts.next().unwrap_or_default();
    let headers = SignatureHeaders {
        id,
        timestamp: ts,
        signature: sig,
    };
    let now = Timestamp::from_millis(1_800_000_000_000);
    let _ = standard::verify(&headers, body, &["whsec_ZnV6ei1rZXk=", "not-base64!"], now);
    if let Ok(d) = standard::parse(id.unwrap_or("msg"), body, now) {
        assert!(d.events.len() <= 1);
        assert!(d.events.is_empty() || d.payload.is_none());
    }
});
