//! The dashboard's untrusted inputs: query strings (limit/offset/cursor, the list's filters
//! and the summary's range), bearer tokens,
//! timestamps, live-feed tickets, client frames and notifications. Nothing may panic, and
//! whatever parses must round-trip.
#![no_main]

use call_dashboard_worker::domain::{Cursor, PagePosition, Timestamp, MAX_RANGE_DAYS, MS_PER_DAY};
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
            let f = &page.filter;
            // A filter that parses is canonical (each status once, in order) and its range
            // holds together.
            assert!(f.statuses().windows(2).all(|w| (w[0] as u8) < (w[1] as u8)));
            if let (Some(from), Some(to)) = (f.from, f.to) {
                assert!(from < to && to.millis() - from.millis() <= MAX_RANGE_DAYS * MS_PER_DAY);
            }
            // Its cursors are accepted back with it, and only with it.
            if let PagePosition::After(c) = &page.position {
                let tagged = c.encode_for(f.tag().as_deref());
                assert_eq!(
                    Cursor::decode_tagged(&tagged),
                    Some((c.clone(), f.tag()))
                );
            }
        }
        if let Ok(summary) = query.summary(100) {
            if let Some(range) = summary.range {
                let days = range.days().count() as i64;
                assert!((1..=MAX_RANGE_DAYS).contains(&days));
                assert!(range.from().millis() % MS_PER_DAY == 0);
            }
        }
    }
    if let Some(cursor) = Cursor::decode(text) {
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
    }
    if let Some((cursor, tag)) = Cursor::decode_tagged(text) {
        assert_eq!(
            Cursor::decode_tagged(&cursor.encode_for(tag.as_deref())),
            Some((cursor, tag))
        );
    }
    if let Some(day) = Timestamp::parse_date(text) {
        assert!(day.is_midnight());
        assert_eq!(Timestamp::date_of_day(day.day()), text);
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
