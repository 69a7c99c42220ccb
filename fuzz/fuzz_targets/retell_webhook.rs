//! Retell: signature header parsing, verification and the event parser on arbitrary input.
#![no_main]

use call_dashboard_worker::domain::Timestamp;
use call_dashboard_worker::webhooks::retell;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: signature header \n body
    let mut parts = data.splitn(2, |b| *b == b'\n');
    let sig = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let body = parts.next().unwrap_or_default();
    let now = Timestamp::from_millis(1_800_000_000_000);
    let _ = retell::verify(body, sig, "fuzz-key", now);
    if let Ok(d) = retell::parse(body, now) {
        assert!(d.events.len() <= 3);
    }
});
