//! The KV value format: a format tag, a one-line header and the payload's data verbatim, so
//! a KV hit copies the data without re-parsing it.
//!
//! ```text
//! v3\n<stored> <refresh> <expires> <staleUntil> <version> <rows> <etag> <count> <next>\n<data JSON>
//! ```
//!
//! Fields are separated by one space. `etag` is the payload's ETag (always quoted), or `-` for
//! a remembered not-found (no data follows); `count` and `next` are a page's item count and
//! next cursor, or `-` for none (neither can be `-` itself: a count is digits, a cursor
//! unpadded base64 of at least a few bytes). Read by hand: a KV hit parses this line on every
//! request, and a derived JSON header cost a decoder of its own in the module.

use super::memory::Entry;
use super::policy::Lifetime;
use crate::domain::Version;
use crate::reads::{DataText, PageMeta, Payload};
use std::fmt::Write;
use std::rc::Rc;

/// The value's own format tag (the keys carry theirs, `keys::FORMAT`): a value written in
/// another format reads as nothing, so the entry is loaded again.
const VALUE_FORMAT: &str = "v3";
/// An absent ETag, count or cursor.
const NONE: &str = "-";

/// An entry's KV value as two parts, stored as their concatenation: the format tag and the
/// header, then the payload's data as it is held (so a write copies the data once, into the
/// runtime's value, instead of first into one string with the header).
pub fn encode_parts(entry: &Entry) -> (String, Option<DataText>) {
    let l = entry.life;
    let mut head = String::with_capacity(160);
    // Writing to a `String` cannot fail.
    let _ = write!(
        head,
        "{VALUE_FORMAT}\n{} {} {} {} {} {} ",
        l.stored_at,
        l.refresh_at,
        l.expires_at,
        l.stale_until,
        entry.version.get(),
        entry.rows_read
    );
    let data = match &entry.payload {
        Some(p) => {
            head.push_str(&p.etag);
            match &p.page {
                Some(m) => {
                    let _ = write!(head, " {} ", m.count);
                    head.push_str(m.next_cursor.as_deref().unwrap_or(NONE));
                }
                None => {
                    let _ = write!(head, " {NONE} {NONE}");
                }
            }
            Some(p.data_json())
        }
        None => {
            let _ = write!(head, "{NONE} {NONE} {NONE}");
            None
        }
    };
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
    let rest = raw.strip_prefix(VALUE_FORMAT)?.strip_prefix('\n')?;
    let (header, _) = rest.split_once('\n')?;
    let mut fields = header.split(' ');
    let mut int = || fields.next()?.parse::<i64>().ok();
    let life = Lifetime {
        stored_at: int()?,
        refresh_at: int()?,
        expires_at: int()?,
        stale_until: int()?,
    };
    let version = Version::new(u64::try_from(int()?).ok()?);
    let rows_read = u64::try_from(int()?).ok()?;
    let etag = fields.next()?;
    let count = fields.next()?;
    let next = fields.next()?;
    if fields.next().is_some() {
        return None;
    }
    let data_at = VALUE_FORMAT.len() + 1 + header.len() + 1;
    let payload = match etag {
        NONE => None,
        etag => {
            let page = match (count, next) {
                (NONE, NONE) => None,
                (NONE, _) => return None,
                (count, next) => Some(PageMeta {
                    count: count.parse().ok()?,
                    next_cursor: (next != NONE).then(|| next.to_owned()),
                }),
            };
            let etag = etag.to_owned();
            Some(Rc::new(Payload::with_etag(
                DataText::after(raw, data_at)?,
                page,
                etag,
            )))
        }
    };
    Some(Entry {
        payload,
        version,
        life,
        rows_read,
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
    fn the_header_is_one_line_of_the_documented_fields() {
        let page = Payload::from_json(
            "[1]".into(),
            Some(PageMeta {
                count: 1,
                next_cursor: None,
            }),
        );
        let etag = page.etag.clone();
        assert_eq!(
            encode(&sample(Some(page))),
            format!("v3\n10 20 30 40 3 7 {etag} 1 -\n[1]")
        );
        assert_eq!(encode(&sample(None)), "v3\n10 20 30 40 3 7 - - -\n");
        let summary = Payload::from_json("{}".into(), None);
        let back = decode(encode(&sample(Some(summary.clone())))).expect("decodes");
        assert_eq!(back.payload.as_deref(), Some(&summary));
        assert_eq!(back.payload.and_then(|p| p.page.clone()), None);
    }

    #[test]
    fn other_formats_and_damaged_headers_are_ignored() {
        assert!(decode("v0\n{}\n[]".into()).is_none());
        assert!(decode("garbage".into()).is_none());
        assert!(decode("v2\nnot json\n[]".into()).is_none());
        // The JSON header this format replaced.
        let v2 = r#"v2
{"life":[10,20,30,40],"version":3,"rows":7,"absent":false,"etag":"\"e\"","count":null,"next":null}
[]"#;
        assert!(decode(v2.into()).is_none());
        for damaged in [
            "v3\n10 20 30 40 3 7 \"e\" - -",
            "v3\n10 20 30 40 3 7 \"e\" - - extra\n[]",
            "v3\n10 20 30 40 3 \"e\" - -\n[]",
            "v3\n10 20 30 40 -3 7 \"e\" - -\n[]",
            "v3\n10 20 30 40 3 7 \"e\" - abc\n[]",
            "v3\n10 20 30 40 3 7 \"e\" x -\n[]",
            "v3\n10 20 30 40 3 7 \"e\"  - -\n[]",
        ] {
            assert!(decode(damaged.into()).is_none(), "{damaged:?}");
        }
    }
}
