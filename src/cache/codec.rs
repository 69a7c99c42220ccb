//! The KV value format: a format tag, a small JSON header and the payload's data verbatim,
//! so a KV hit copies the data without re-parsing it.
//!
//! ```text
//! v2\n{"life":[stored,refresh,expires,staleUntil],"version":n,"rows":n,
//!      "absent":false,"etag":"…","count":n|null,"next":"…"|null}\n<data JSON>
//! ```

use super::keys::FORMAT;
use super::memory::Entry;
use super::policy::Lifetime;
use crate::domain::Version;
use crate::reads::{DataText, PageMeta, Payload};
use serde::{Deserialize, Serialize};
use std::rc::Rc;

#[derive(Serialize, Deserialize)]
struct Header {
    life: [i64; 4],
    version: u64,
    rows: u64,
    absent: bool,
    etag: String,
    count: Option<usize>,
    next: Option<String>,
}

/// An entry's KV value as two parts, stored as their concatenation: the format tag and the
/// header, then the payload's data as it is held (so a write copies the data once, into the
/// runtime's value, instead of first into one string with the header).
pub fn encode_parts(entry: &Entry) -> (String, Option<DataText>) {
    let (etag, count, next, data) = match &entry.payload {
        Some(p) => (
            p.etag.clone(),
            p.page.as_ref().map(|m| m.count),
            p.page.as_ref().and_then(|m| m.next_cursor.clone()),
            Some(p.data_json()),
        ),
        None => (String::new(), None, None, None),
    };
    let l = entry.life;
    let header = Header {
        life: [l.stored_at, l.refresh_at, l.expires_at, l.stale_until],
        version: entry.version.get(),
        rows: entry.rows_read,
        absent: entry.payload.is_none(),
        etag,
        count,
        next,
    };
    let header = serde_json::to_string(&header).unwrap_or_default();
    let mut head = String::with_capacity(FORMAT.len() + header.len() + 2);
    head.push_str(FORMAT);
    head.push('\n');
    head.push_str(&header);
    head.push('\n');
    (head, data)
}

/// An entry's KV value in one string.
#[cfg(test)]
pub fn encode(entry: &Entry) -> String {
    let (head, data) = encode_parts(entry);
    head + data.as_deref().unwrap_or_default()
}

/// `None` for anything not written by this format version. The payload's data stays in
/// `raw`, past the header: a KV hit copies nothing more.
pub fn decode(raw: String) -> Option<Entry> {
    let rest = raw.strip_prefix(FORMAT)?.strip_prefix('\n')?;
    let (header, _) = rest.split_once('\n')?;
    let h: Header = serde_json::from_str(header).ok()?;
    let data_at = FORMAT.len() + 1 + header.len() + 1;
    let payload = match h.absent {
        true => None,
        false => Some(Rc::new(Payload::with_etag(
            DataText::after(raw, data_at)?,
            h.count.map(|count| PageMeta {
                count,
                next_cursor: h.next,
            }),
            h.etag,
        ))),
    };
    Some(Entry {
        payload,
        version: Version::new(h.version),
        life: Lifetime {
            stored_at: h.life[0],
            refresh_at: h.life[1],
            expires_at: h.life[2],
            stale_until: h.life[3],
        },
        rows_read: h.rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(payload: Option<Payload>) -> Entry {
        Entry {
            payload: payload.map(Rc::new),
            version: Version::new(3),
            life: Lifetime {
                stored_at: 10,
                refresh_at: 20,
                expires_at: 30,
                stale_until: 40,
            },
            rows_read: 7,
        }
    }

    #[test]
    fn entries_round_trip_with_their_absolute_lifetime() {
        let p = Payload::new(
            &serde_json::json!([{"id": "CA1", "note": "line\nbreak"}]),
            Some(PageMeta {
                count: 1,
                next_cursor: Some("abc".into()),
            }),
        )
        .expect("serializes");
        let e = sample(Some(p.clone()));
        let back = decode(encode(&e)).expect("decodes");
        assert_eq!(back.payload.as_deref(), Some(&p));
        assert_eq!(back.life, e.life);
        assert_eq!(back.version, e.version);
        assert_eq!(back.rows_read, 7);
    }

    #[test]
    fn a_remembered_not_found_round_trips() {
        let back = decode(encode(&sample(None))).expect("decodes");
        assert!(back.payload.is_none());
    }

    #[test]
    fn other_formats_are_ignored() {
        assert!(decode("v0\n{}\n[]".into()).is_none());
        assert!(decode("garbage".into()).is_none());
        assert!(decode("v2\nnot json\n[]".into()).is_none());
    }
}
