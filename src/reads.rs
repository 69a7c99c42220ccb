//! The read side the routes depend on: [`ReadModel`].
//!
//! The D1 store implements it directly; the cache implements it by wrapping another
//! `ReadModel`, so it slots between the routes and the store without either changing. Reads
//! return a [`Payload`] — the `data` already serialized, with its ETag — because that is what a
//! cache tier keeps and what a response sends: a hit costs no serialization and no hashing.

use crate::domain::{CallId, Limit, PageRequest, UserId, Version};
use crate::error::AppResult;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Which tier produced a read, and how: the `X-Cache` header and `meta.source` / `meta.cacheHit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    HitMemory,
    HitKv,
    Miss,
    Stale,
    Bypass,
}

/// The tier that served the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Memory,
    Kv,
    D1,
}

impl Outcome {
    pub fn header(self) -> &'static str {
        match self {
            Outcome::HitMemory => "HIT-MEMORY",
            Outcome::HitKv => "HIT-KV",
            Outcome::Miss => "MISS",
            Outcome::Stale => "STALE",
            Outcome::Bypass => "BYPASS",
        }
    }

    pub fn is_hit(self) -> bool {
        matches!(self, Outcome::HitMemory | Outcome::HitKv | Outcome::Stale)
    }
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Memory => "memory",
            Source::Kv => "kv",
            Source::D1 => "d1",
        }
    }
}

/// A read's `data`, serialized once, with what the page meta needs and a strong ETag.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    pub data_json: String,
    /// Present for pages: the number of items and where the next page starts.
    pub page: Option<PageMeta>,
    pub etag: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageMeta {
    pub count: usize,
    pub next_cursor: Option<String>,
}

impl Payload {
    pub fn new<T: Serialize + ?Sized>(data: &T, page: Option<PageMeta>) -> AppResult<Self> {
        let data_json = serde_json::to_string(data)
            .map_err(|e| crate::error::AppError::internal(format!("serializing data: {e}")))?;
        Ok(Self::from_json(data_json, page))
    }

    /// A payload around `data` already serialized (as `serde_json` writes it), with its ETag.
    /// Spare capacity is given back: the memory tier weighs an entry by its length, so that
    /// is all it may hold.
    pub fn from_json(mut data_json: String, page: Option<PageMeta>) -> Self {
        data_json.shrink_to_fit();
        let mut hasher = Sha256::new();
        hasher.update(data_json.as_bytes());
        if let Some(next) = page.as_ref().and_then(|p| p.next_cursor.as_deref()) {
            hasher.update(b"\0");
            hasher.update(next.as_bytes());
        }
        let digest = hasher.finalize();
        let mut etag = String::with_capacity(34);
        etag.push('"');
        for b in &digest[..16] {
            etag.push_str(&format!("{b:02x}"));
        }
        etag.push('"');
        Self {
            data_json,
            page,
            etag,
        }
    }
}

/// `items`, each one JSON text, as one JSON array.
pub fn json_array<S: AsRef<str>>(items: &[S]) -> String {
    let mut out =
        String::with_capacity(2 + items.iter().map(|i| i.as_ref().len() + 1).sum::<usize>());
    out.push('[');
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push_str(item.as_ref());
    }
    out.push(']');
    out
}

/// An intent summary's `data` from its calls (a JSON array) and aggregates: the bytes
/// serializing `domain::IntentSummary` gives.
pub fn summary_json(calls: &str, stats: &crate::domain::IntentStats) -> AppResult<String> {
    let stats = serde_json::to_string(stats)
        .map_err(|e| crate::error::AppError::internal(format!("serializing stats: {e}")))?;
    let mut out = String::with_capacity(calls.len() + stats.len() + 20);
    out.push_str("{\"calls\":");
    out.push_str(calls);
    out.push_str(",\"stats\":");
    out.push_str(&stats);
    out.push('}');
    Ok(out)
}

/// A value, the tier it came from, and the user's version it reflects (`meta.version`).
#[derive(Debug, Clone, PartialEq)]
pub struct Served<T> {
    pub value: T,
    pub source: Source,
    pub outcome: Outcome,
    pub version: Version,
}

impl<T> Served<T> {
    /// Straight from D1, with no cache in the way.
    pub fn from_d1(value: T, version: Version) -> Self {
        Self {
            value,
            source: Source::D1,
            outcome: Outcome::Bypass,
            version,
        }
    }
}

/// The dashboard's reads, each scoped to one user. `None` means absent *or another user's*:
/// callers cannot tell the two apart, and must not. Every read reflects at least version
/// `at_least` of the user's data (`X-Min-Version`; [`Version::ZERO`] asks for nothing).
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait ReadModel {
    async fn call_page(
        &self,
        user: &UserId,
        page: &PageRequest,
        at_least: Version,
    ) -> AppResult<Served<Payload>>;
    async fn call_detail(
        &self,
        user: &UserId,
        call: &CallId,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>>;
    async fn call_enrichment(
        &self,
        user: &UserId,
        call: &CallId,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>>;
    async fn call_analysis(
        &self,
        user: &UserId,
        call: &CallId,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>>;
    async fn intent_summary(
        &self,
        user: &UserId,
        limit: Limit,
        at_least: Version,
    ) -> AppResult<Served<Payload>>;

    /// D1 work done so far through this read model (for logs and cache statistics).
    fn usage(&self) -> crate::store::Usage {
        crate::store::Usage::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_etag_depends_on_data_and_next_cursor_only() {
        let a = Payload::new(&[1, 2], None).expect("serializes");
        let b = Payload::new(&[1, 2], None).expect("serializes");
        let c = Payload::new(&[1, 3], None).expect("serializes");
        let paged = Payload::new(
            &[1, 2],
            Some(PageMeta {
                count: 2,
                next_cursor: Some("x".into()),
            }),
        )
        .expect("serializes");
        assert_eq!(a.etag, b.etag);
        assert_ne!(a.etag, c.etag);
        assert_ne!(a.etag, paged.etag);
        assert!(a.etag.starts_with('"') && a.etag.ends_with('"') && a.etag.len() == 34);
    }

    #[test]
    fn a_payload_holds_no_more_than_its_bytes_so_the_memory_bound_is_true() {
        let mut grown = String::with_capacity(4096);
        grown.push_str("[1,2]");
        let p = Payload::from_json(grown, None);
        assert_eq!(p.data_json.capacity(), p.data_json.len());
        let big: Vec<u32> = (0..1000).collect();
        let p = Payload::new(&big, None).expect("serializes");
        assert_eq!(p.data_json.capacity(), p.data_json.len());
    }
}
