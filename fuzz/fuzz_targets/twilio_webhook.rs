//! Twilio: strict form decoding, signature verification and both callback parsers, on
//! arbitrary bodies, URLs and signature headers. Nothing may panic; a body the verifier
//! accepts must parse or fail with a field error.
#![no_main]

use call_dashboard_worker::domain::Timestamp;
use call_dashboard_worker::webhooks::{form, twilio};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Layout: url \n signature \n body
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let url = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let signature = std::str::from_utf8(parts.next().unwrap_or_default()).ok();
    let body = parts.next().unwrap_or_default();
    let Ok(params) = form::parse(body) else {
        return;
    };
    let _ = twilio::verify(&url, &params, signature, &["fuzz-token", "second-token"]);
    let now = Timestamp::from_millis(1_800_000_000_000);
    if let Ok(d) = twilio::voice_status(&params, now) {
        assert!(!d.key.is_empty());
        assert_eq!(d.events.len(), 1);
    }
    let _ = twilio::recording_status(&params, now);
});
