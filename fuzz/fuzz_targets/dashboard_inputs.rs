//! The dashboard's untrusted inputs: query strings (limit/offset/cursor), bearer tokens,
//! timestamps, live-feed tickets, client frames and notifications. Nothing may panic, and
//! whatever parses must round-trip.
#![no_main]

use call_dashboard_worker::domain::{Cursor, Timestamp};
use call_dashboard_worker::auth::{verify_jwt, Expectations};
use call_dashboard_worker::http::params::Query;
use call_dashboard_worker::live::{answer_client_frame, ClientFrameAnswer, Notification, Ticket};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(query) = Query::parse(text) {
        if let Ok(page) = query.page(50) {
            assert!((1..=500).contains(&page.limit.get()));
        }
    }
    if let Some(cursor) = Cursor::decode(text) {
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }
    let expect = Expectations {
        issuer: Some("iss"),
        audience: Some("aud"),
    };
    let _ = verify_jwt(text, b"fuzz-secret", &expect, 1_800_000_000);
    if let Some(t) = Timestamp::parse_rfc3339(text) {
        assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
    }
    let _ = Timestamp::parse_rfc2822(text);
    if let Some(ticket) = Ticket::parse(text) {
        assert_eq!(ticket.encode(), text);
    }
    if let ClientFrameAnswer::Reply(_) = answer_client_frame(Some(text), text.len()) {
        assert!(text.len() <= call_dashboard_worker::live::MAX_CLIENT_FRAME_BYTES);
    }
    let _ = Notification::parse(data);
});
