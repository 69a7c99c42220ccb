//! Page requests: a bounded `limit`, and either an `offset` or an opaque keyset cursor.

use super::{CallFilter, CallId, Timestamp};

/// `limit` when a call page request gives none (also the landing view the cache warms).
pub const DEFAULT_PAGE_LIMIT: u32 = 50;
/// `limit` when an intent summary request gives none.
pub const DEFAULT_SUMMARY_LIMIT: u32 = 100;
/// The largest `limit` either route accepts.
pub const MAX_LIMIT: u32 = 500;

/// A view a dashboard opens on: its first page of calls, or its intent summary, at a limit.
/// The cache keeps these hot on write for users who are looking (`cache::landing`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LandingView {
    FirstPage(Limit),
    Summary(Limit),
}

/// A page size within the route's bounds (1 to `max`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Limit(u32);

impl Limit {
    pub fn new(n: u32, max: u32) -> Option<Self> {
        (1..=max).contains(&n).then_some(Self(n))
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Where a page of calls starts: the position in `startedAt desc, id desc` order of the last
/// call already seen. Opaque to clients: `base64url("v1:<startedAt ms>:<id>")`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Cursor {
    pub started_at: Timestamp,
    pub id: CallId,
}

impl Cursor {
    const PREFIX: &'static str = "v1:";
    /// A filtered page's cursor: `f1:<filter tag>:<startedAt ms>:<id>`.
    const TAGGED_PREFIX: &'static str = "f1:";
    /// Longer strings cannot be a cursor this service issued.
    const MAX_ENCODED_LEN: usize = 256;

    pub fn encode(&self) -> String {
        let plain = format!(
            "{}{}:{}",
            Self::PREFIX,
            self.started_at.millis(),
            self.id.as_str()
        );
        crate::base64::encode_url_no_pad(plain.as_bytes())
    }

    /// Where a listed call sits, read from its JSON as the API writes it (`id`, `startedAt`).
    ///
    /// A call's JSON starts with its `id` and has `startedAt` before any nested object, so
    /// both are read from the first bytes, without scanning the rest of the text (a patch
    /// reads this for every listed call); anything else goes through the full parse.
    pub fn of_listed_call(json: &str) -> Option<Self> {
        Self::of_canonical_prefix(json).or_else(|| Self::of_parsed_call(json))
    }

    /// The fast path of [`Self::of_listed_call`]. Sound on any valid JSON: a call id holds no
    /// `"` or `\`, so the id is the text up to the next quote, and `"startedAt":"` cannot
    /// occur inside a string (a quote there is always escaped) nor as a value (a value is not
    /// followed by `:`), so its first occurrence is a `startedAt` key — and the only one is the
    /// call's own, since no nested object has one.
    fn of_canonical_prefix(json: &str) -> Option<Self> {
        let rest = json.strip_prefix(r#"{"id":""#)?;
        let (id, rest) = rest.split_once('"')?;
        let (_, after) = rest.split_once(r#""startedAt":""#)?;
        let (started_at, _) = after.split_once('"')?;
        if started_at.contains('\\') {
            return None;
        }
        Some(Self {
            started_at: Timestamp::parse_rfc3339(started_at)?,
            id: CallId::parse(id)?,
        })
    }

    fn of_parsed_call(json: &str) -> Option<Self> {
        let call = crate::json::parse(json.as_bytes()).ok()?;
        Some(Self {
            started_at: Timestamp::parse_rfc3339(call.get("startedAt")?.as_str()?)?,
            id: CallId::parse(call.get("id")?.as_str()?)?,
        })
    }

    /// The cursor of a page listed under the filter tagged `tag` ([`CallFilter::tag`]): the
    /// plain form without one.
    pub fn encode_for(&self, tag: Option<&str>) -> String {
        match tag {
            None => self.encode(),
            Some(tag) => crate::base64::encode_url_no_pad(
                format!(
                    "{}{tag}:{}:{}",
                    Self::TAGGED_PREFIX,
                    self.started_at.millis(),
                    self.id.as_str()
                )
                .as_bytes(),
            ),
        }
    }

    /// A cursor this service issued, with the tag of the filter it was issued under (`None`:
    /// the plain list).
    pub fn decode_tagged(s: &str) -> Option<(Self, Option<String>)> {
        if s.is_empty() || s.len() > Self::MAX_ENCODED_LEN {
            return None;
        }
        let bytes = crate::base64::decode_url_no_pad(s)?;
        let plain = std::str::from_utf8(&bytes).ok()?;
        if let Some(rest) = plain.strip_prefix(Self::TAGGED_PREFIX) {
            let (tag, rest) = rest.split_once(':')?;
            let hex_tag = tag.len() == 24 && tag.bytes().all(|b| b.is_ascii_hexdigit());
            if !hex_tag {
                return None;
            }
            return Some((Self::of_plain(rest)?, Some(tag.to_owned())));
        }
        Some((Self::of_plain(plain.strip_prefix(Self::PREFIX)?)?, None))
    }

    /// A plain list's cursor (see [`Self::decode_tagged`] for any cursor).
    pub fn decode(s: &str) -> Option<Self> {
        match Self::decode_tagged(s)? {
            (cursor, None) => Some(cursor),
            (_, Some(_)) => None,
        }
    }

    /// `<startedAt ms>:<id>`.
    fn of_plain(rest: &str) -> Option<Self> {
        let (ms, id) = rest.split_once(':')?;
        if ms.is_empty() || !ms.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
            return None;
        }
        Some(Self {
            started_at: Timestamp::from_millis(ms.parse().ok()?),
            id: CallId::parse(id)?,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PagePosition {
    Offset(u32),
    After(Cursor),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PageRequest {
    pub limit: Limit,
    pub position: PagePosition,
    pub filter: CallFilter,
}

impl PageRequest {
    /// A page of the plain list.
    pub fn unfiltered(limit: Limit, position: PagePosition) -> Self {
        Self {
            limit,
            position,
            filter: CallFilter::none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use ::base64::Engine;

    fn cursor(ms: i64, id: &str) -> Cursor {
        Cursor {
            started_at: Timestamp::from_millis(ms),
            id: CallId::parse(id).expect("valid id"),
        }
    }

    #[test]
    fn a_listed_calls_place_reads_the_same_from_its_first_bytes_as_from_the_whole_text() {
        let at = "2026-11-21T10:00:00.250Z";
        let want = Some(cursor(
            Timestamp::parse_rfc3339(at).expect("valid").millis(),
            "CA_1",
        ));
        // Strings before `startedAt` that hold the pattern, escaped as any JSON writer must.
        // (In the API's field order, which `json!` would sort away.)
        let q = |v: &str| serde_json::to_string(v).expect("serializes");
        let tricky = format!(
            r#"{{"id":"CA_1","provider":"api","from":{},"to":{},"startedAt":"{at}","recording":{{"id":"RE1","startedAt":"1999-01-01T00:00:00Z"}}}}"#,
            q(r#"","startedAt":"1999-01-01T00:00:00Z"#),
            q(r#"\"startedAt":""#),
        );
        assert!(tricky.contains(r#"\"startedAt\":\"1999"#), "{tricky}");
        assert_eq!(Cursor::of_canonical_prefix(&tricky), want);
        assert_eq!(Cursor::of_parsed_call(&tricky), want);
        // Not the API's order: only the full parse reads it, and still gets it right.
        let reordered = format!(r#"{{"startedAt":"{at}","id":"CA_1"}}"#);
        assert_eq!(Cursor::of_canonical_prefix(&reordered), None);
        assert_eq!(Cursor::of_listed_call(&reordered), want);
        // An id no call can have is refused by both.
        let bad = format!(r#"{{"id":"CA 1","startedAt":"{at}"}}"#);
        assert_eq!(Cursor::of_listed_call(&bad), None);
    }

    #[test]
    fn a_cursor_survives_encoding_and_is_url_safe() {
        let c = cursor(1_709_662_933_000, "CA_01-x.y");
        let enc = c.encode();
        assert!(enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(Cursor::decode(&enc), Some(c));
    }

    #[test]
    fn a_filtered_pages_cursor_carries_its_filter_and_no_plain_decode_takes_it() {
        let c = cursor(1_709_662_933_000, "CA_1");
        let tag = "0123456789abcdef01234567";
        let enc = c.encode_for(Some(tag));
        assert_eq!(
            Cursor::decode_tagged(&enc),
            Some((c.clone(), Some(tag.to_owned())))
        );
        assert_eq!(Cursor::decode(&enc), None);
        assert_eq!(c.encode_for(None), c.encode());
        assert_eq!(Cursor::decode_tagged(&c.encode()), Some((c, None)));
        for bad in [
            "f1:abc:1:CA1",
            "f1:0123456789abcdef0123456g:1:CA1",
            "f1:1:CA1",
        ] {
            assert_eq!(
                Cursor::decode_tagged(&URL_SAFE_NO_PAD.encode(bad)),
                None,
                "{bad}"
            );
        }
    }

    #[test]
    fn tampered_or_foreign_cursors_are_rejected() {
        let forged = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for bad in [
            String::new(),
            "not base64!".to_owned(),
            forged("v2:1:CA1"),
            forged("v1:abc:CA1"),
            forged("v1:1:"),
            forged("v1:1:CA/1"),
            forged("v1::CA1"),
            "A".repeat(300),
        ] {
            assert_eq!(Cursor::decode(&bad), None, "{bad:?}");
        }
    }

    #[test]
    fn limits_outside_their_bounds_do_not_exist() {
        assert!(Limit::new(0, 500).is_none());
        assert!(Limit::new(501, 500).is_none());
        assert_eq!(Limit::new(500, 500).map(Limit::get), Some(500));
        assert_eq!(Limit::new(1, 500).map(Limit::get), Some(1));
    }
}
