//! The per-isolate memory tier: a map bounded by entries *and* bytes ([`Bounded`]), evicting
//! by CLOCK (an entry read since the hand last passed is spared). No clock calls
//! inside: expiry is judged by the caller against the injected clock.

use super::bounded::Bounded;
use super::policy::Lifetime;
use crate::domain::Version;
use crate::reads::{Payload, BODY_ENVELOPE_BYTES};
use std::rc::Rc;

/// A cached read: the payload (`None` for a remembered 404), the user's version it reflects
/// (read in the same D1 batch as the data) and its lifetime.
#[derive(Debug, Clone)]
pub struct Entry {
    pub payload: Option<Rc<Payload>>,
    pub version: Version,
    pub life: Lifetime,
    /// D1 rows the load read: what each hit saves.
    pub rows_read: u64,
}

impl Entry {
    /// Approximate heap size, for the byte bound: the payload's data inside the response body
    /// a hit builds around it ([`Payload::body`]), its ETag and cursor.
    pub fn bytes(&self) -> u64 {
        let payload = self.payload.as_ref().map_or(0, |p| {
            p.data_len()
                + BODY_ENVELOPE_BYTES
                + p.etag.len()
                + p.page
                    .as_ref()
                    .and_then(|m| m.next_cursor.as_ref())
                    .map_or(0, String::len)
        });
        (payload + 128) as u64
    }
}

pub struct MemoryTier {
    cache: Bounded<String, Entry>,
    max_bytes: u64,
    max_entries: u64,
}

impl MemoryTier {
    pub fn new(max_bytes: u64, max_entries: u64) -> Self {
        let max_entries = max_entries.max(1);
        let max_bytes = max_bytes.max(1024);
        Self {
            cache: Bounded::new(
                usize::try_from(max_entries).unwrap_or(usize::MAX),
                max_bytes,
                |key, entry| key.len() as u64 + entry.bytes(),
            ),
            max_bytes,
            max_entries,
        }
    }

    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.cache.get(key)
    }

    /// [`Self::get`] without counting as a use: for looking at what memory holds on the side
    /// (a KV write checking it is still needed), which must not keep an entry from eviction.
    pub fn peek(&self, key: &str) -> Option<&Entry> {
        self.cache.peek(key)
    }

    pub fn insert(&mut self, key: String, entry: Entry) {
        self.cache.insert(key, entry);
    }

    pub fn remove(&mut self, key: &str) {
        self.cache.remove(key);
    }

    /// Drops every entry whose key starts with `prefix`.
    pub fn remove_prefix(&mut self, prefix: &str) {
        self.cache.retain(|k, _| !k.starts_with(prefix));
    }

    pub fn clear(&mut self) {
        self.cache.clear();
    }

    pub fn len(&self) -> usize {
        self.cache.len()
    }

    pub fn is_empty(&self) -> bool {
        self.cache.is_empty()
    }

    /// Weight in use: an upper bound of the bytes held.
    pub fn bytes(&self) -> u64 {
        self.cache.weight()
    }

    pub fn bounds(&self) -> (u64, u64) {
        (self.max_bytes, self.max_entries)
    }

    /// Entries whose key starts with `prefix`.
    pub fn entries_with_prefix<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        self.cache
            .iter()
            .filter(move |(k, _)| k.starts_with(prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(bytes: usize) -> Entry {
        Entry {
            payload: Some(Rc::new(Payload::from_json("x".repeat(bytes), None))),
            version: Version::ZERO,
            life: Lifetime {
                stored_at: 0,
                refresh_at: 1,
                expires_at: 2,
                stale_until: 3,
            },
            rows_read: 1,
        }
    }

    #[test]
    fn the_entry_bound_holds_even_for_tiny_entries() {
        let mut m = MemoryTier::new(1_000_000, 10);
        for i in 0..100 {
            m.insert(format!("k{i}"), entry(1));
        }
        assert!(m.len() <= 10, "{} entries", m.len());
    }

    #[test]
    fn the_byte_bound_holds_for_large_entries() {
        let mut m = MemoryTier::new(100_000, 1_000);
        for i in 0..100 {
            m.insert(format!("k{i}"), entry(10_000));
        }
        assert!(m.bytes() <= 100_000, "{} bytes", m.bytes());
        assert!(m.len() <= 10);
    }

    /// A 10-entry tier, full, then `target` inserted and 30 more after it while `look` is done
    /// on `target` before each: whether `target` is still held at the end.
    fn survives(look: impl Fn(&MemoryTier)) -> bool {
        let mut m = MemoryTier::new(1_000_000, 10);
        for i in 0..30 {
            m.insert(format!("k{i}"), entry(1));
        }
        m.insert("target".into(), entry(1));
        for i in 30..60 {
            look(&m);
            m.insert(format!("k{i}"), entry(1));
        }
        m.peek("target").is_some()
    }

    #[test]
    fn a_peek_does_not_keep_an_entry_from_eviction_where_a_get_does() {
        assert!(survives(|m| {
            m.get("target");
        }));
        assert!(!survives(|m| {
            m.peek("target");
        }));
    }

    #[test]
    fn an_entry_weighs_at_least_the_body_a_hit_builds_around_its_data() {
        let e = entry(40_000);
        let payload = e.payload.clone().expect("a payload");
        // The longest `meta` a read writes: a page's, with a cursor, at a 20-digit version.
        let meta = format!(
            r#"{{"count":500,"cacheHit":true,"limit":500,"nextCursor":"{}","source":"memory","version":"18446744073709551615"}}"#,
            "c".repeat(80)
        );
        let body = payload.body(&meta);
        assert!(
            e.bytes() >= body.len() as u64,
            "{} < {}",
            e.bytes(),
            body.len()
        );
    }

    #[test]
    fn prefix_removal_drops_only_matching_keys() {
        let mut m = MemoryTier::new(1_000_000, 100);
        m.insert("v1:recordings:user:ada:x".into(), entry(1));
        m.insert("v1:recordings:user:adam:x".into(), entry(1));
        m.remove_prefix("v1:recordings:user:ada:");
        assert!(m.get("v1:recordings:user:ada:x").is_none());
        assert!(m.get("v1:recordings:user:adam:x").is_some());
    }
}
