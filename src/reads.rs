//! The read side the routes depend on: [`ReadModel`].
//!
//! The D1 store implements it directly; the cache implements it by wrapping another
//! `ReadModel`, so it slots between the routes and the store without either changing. Reads
//! return a [`Payload`] — the `data` already serialized, with its ETag — because that is what a
//! cache tier keeps and what a response sends: a hit costs no serialization and no hashing.

use crate::domain::{CallId, PageRequest, SummaryRequest, UserId, Version};
use crate::error::AppResult;
use crate::json_writer::ToJson;
use std::rc::Rc;

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

/// A read's `data`, serialized once, with what the page meta needs and a strong ETag. The
/// text is shared, not owned: a memory hit hands the entry's payload to the response, and a
/// page or summary is tens of KB that a clone per hit would copy.
#[derive(Debug, Clone, PartialEq)]
pub struct Payload {
    text: SharedText,
    /// Present for pages: the number of items and where the next page starts.
    pub page: Option<PageMeta>,
    pub etag: String,
    /// Where the calls a page or summary lists sit in the data's text (`cache::patch`).
    pub listing: Listing,
}

/// Where each call a page or summary lists sits in its payload's `data_json`, and where it
/// sorts: found once per payload (on its first patch, or handed over by the patch that made
/// it), so that refreshing a view on write copies the calls around the one that changed
/// instead of scanning the whole list again for each webhook (the scan was most of a
/// webhook's time for a user with a page and a summary watched). Shared by the payload's
/// clones; `None` inside once the list was found not to be one a patch can use.
#[derive(Clone, Default)]
pub struct Listing(Rc<std::cell::OnceCell<Option<Vec<Listed>>>>);

/// One listed call: its JSON at `start..end` of the payload's text, and its sort key.
#[derive(Debug, Clone, PartialEq)]
pub struct Listed {
    pub start: usize,
    pub end: usize,
    pub started_at: i64,
    pub id: Box<str>,
}

impl Listing {
    /// The listing, found by `find` the first time it is asked for.
    pub fn get_or_find(&self, find: impl FnOnce() -> Option<Vec<Listed>>) -> Option<&[Listed]> {
        self.0.get_or_init(find).as_deref()
    }

    /// A listing already known (the patch that built the text knows where it put each call).
    pub fn known(listed: Vec<Listed>) -> Self {
        Listing(Rc::new(std::cell::OnceCell::from(Some(listed))))
    }
}

/// Derived from the text: no part of the payload's value.
impl PartialEq for Listing {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl std::fmt::Debug for Listing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let found = self.0.get().map(|l| l.as_ref().map(|l| l.len()));
        f.debug_struct("Listing").field("found", &found).finish()
    }
}

/// A payload's data as JSON text: a slice of a shared string, which is either the data alone
/// or the whole response body last sent around it ([`Payload::body`]). Cloning it shares the
/// string.
#[derive(Clone)]
pub struct DataText {
    text: Rc<String>,
    start: usize,
    end: usize,
}

impl DataText {
    fn whole(mut text: String) -> Self {
        // The memory tier weighs an entry by the data's length: spare capacity would make
        // that bound untrue of the heap.
        text.shrink_to_fit();
        let end = text.len();
        DataText {
            text: Rc::new(text),
            start: 0,
            end,
        }
    }

    /// The part of `text` from `start` on (a KV value past its header), without a copy.
    /// `None` when `start` is not a character boundary of `text`.
    pub fn after(text: String, start: usize) -> Option<Self> {
        text.get(start..)?;
        let end = text.len();
        Some(DataText {
            text: Rc::new(text),
            start,
            end,
        })
    }
}

impl std::ops::Deref for DataText {
    type Target = str;

    fn deref(&self) -> &str {
        // `start..end` is a character range of `text` by construction.
        self.text.get(self.start..self.end).unwrap_or_default()
    }
}

impl std::fmt::Debug for DataText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&**self, f)
    }
}

impl PartialEq for DataText {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

/// The opening of every read's body, up to its `data`.
const BODY_OPEN: &str = "{\"success\":true,\"data\":";
/// What follows the data in a read's body, up to its `meta`.
const BODY_META: &str = ",\"meta\":";
/// What a read's body holds besides its data, at most: the opening, `meta` (count, cursor,
/// limit, tier, version) and the closing.
pub const BODY_ENVELOPE_BYTES: usize = 256;

/// A payload's data, kept inside the response body last built around it, and that body's
/// envelope `meta` — the only part of a read's body the payload does not decide (tier,
/// version, position) — when it is one. A memory hit whose `meta` is the same sends that body
/// as it is (no envelope assembled again: a page is tens of KB, a summary up to ~120 KB, and
/// assembling them led a memory hit's profile); any other read builds its body afresh, and
/// the payload then holds the data inside that one instead. The data is held once either way:
/// an entry costs the memory tier what it weighs. Shared by the payload's clones.
#[derive(Clone)]
struct SharedText(Rc<std::cell::RefCell<Framed>>);

struct Framed {
    data: DataText,
    /// The envelope `meta` of the body `data.text` is, or `None` when it is the data alone.
    meta: Option<Box<str>>,
}

impl SharedText {
    fn new(data: DataText) -> Self {
        SharedText(Rc::new(std::cell::RefCell::new(Framed {
            data,
            meta: None,
        })))
    }
}

/// The same data, whatever body holds it.
impl PartialEq for SharedText {
    fn eq(&self, other: &Self) -> bool {
        self.0.borrow().data == other.0.borrow().data
    }
}

impl std::fmt::Debug for SharedText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0.borrow().data, f)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PageMeta {
    pub count: usize,
    pub next_cursor: Option<String>,
}

impl Payload {
    pub fn new<T: ToJson + ?Sized>(data: &T, page: Option<PageMeta>) -> AppResult<Self> {
        Ok(Self::from_json(crate::json_writer::to_string(data), page))
    }

    /// A payload around `data` already serialized (as `json_writer` writes it), with its ETag.
    pub fn from_json(data_json: String, page: Option<PageMeta>) -> Self {
        let data = DataText::whole(data_json);
        let next = page.as_ref().and_then(|p| p.next_cursor.as_deref());
        let [a, b] = content_digest(data.as_bytes(), next.map(str::as_bytes));
        let etag = format!("\"{a:016x}{b:016x}\"");
        Self::with_etag(data, page, etag)
    }

    /// A payload whose ETag is already known (read back from KV with its data).
    pub fn with_etag(data: DataText, page: Option<PageMeta>, etag: String) -> Self {
        Self {
            text: SharedText::new(data),
            page,
            etag,
            listing: Listing::default(),
        }
    }

    /// The data as JSON text (shared, not copied).
    pub fn data_json(&self) -> DataText {
        self.text.0.borrow().data.clone()
    }

    /// The length of [`Self::data_json`], in bytes.
    pub fn data_len(&self) -> usize {
        self.text.0.borrow().data.len()
    }

    /// The read's response body around this data with `meta` as its envelope's `meta`:
    /// `{"success":true,"data":…,"meta":…}`. The body last built is kept, and holds the data
    /// from then on, so the next read with the same `meta` costs no copy.
    pub fn body(&self, meta: &str) -> Rc<String> {
        let mut framed = self.text.0.borrow_mut();
        if framed.meta.as_deref() == Some(meta) {
            return framed.data.text.clone();
        }
        let data: &str = &framed.data;
        let mut body =
            String::with_capacity(BODY_OPEN.len() + data.len() + BODY_META.len() + meta.len() + 1);
        body.push_str(BODY_OPEN);
        body.push_str(data);
        body.push_str(BODY_META);
        body.push_str(meta);
        body.push('}');
        let start = BODY_OPEN.len();
        let end = start + data.len();
        let body = Rc::new(body);
        *framed = Framed {
            data: DataText {
                text: body.clone(),
                start,
                end,
            },
            meta: Some(meta.into()),
        };
        body
    }
}

/// 128 bits that change whenever `data` or `next` does: the strong ETag of a payload. Not a
/// cryptographic hash, and it need not be: an ETag only has to tell one version of a user's
/// own view from another, and SHA-256 in wasm cost about 1 ms per 100 KB, on every load and
/// every patch (a summary refreshed on write was most of a webhook's time). Two independent
/// multiply-rotate lanes over 8-byte words, each finished with a full avalanche (the
/// `fmix64` step of MurmurHash3); the length and a separator between the parts go in too.
fn content_digest(data: &[u8], next: Option<&[u8]>) -> [u64; 2] {
    const K1: u64 = 0x9e37_79b9_7f4a_7c15;
    const K2: u64 = 0xc2b2_ae3d_27d4_eb4f;
    fn fmix(mut h: u64) -> u64 {
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
    let (mut a, mut b) = (0x243f_6a88_85a3_08d3_u64, 0x1319_8a2e_0370_7344_u64);
    let mut mix = |bytes: &[u8]| {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(w);
            let w = u64::from_le_bytes(word);
            a = (a ^ w).wrapping_mul(K1).rotate_left(31);
            b = (b.rotate_left(27) ^ w).wrapping_mul(K2);
        }
        let mut tail = [0u8; 8];
        tail[..words.remainder().len()].copy_from_slice(words.remainder());
        let w = u64::from_le_bytes(tail) ^ ((bytes.len() as u64) << 56);
        a = (a ^ w).wrapping_mul(K1).rotate_left(31);
        b = (b.rotate_left(27) ^ w).wrapping_mul(K2);
    };
    mix(data);
    if let Some(next) = next {
        mix(b"\0");
        mix(next);
    }
    let len = data.len() as u64;
    [fmix(a ^ len), fmix(b ^ len.rotate_left(32) ^ a)]
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

/// The items of the JSON array `text` starts with, each as its text, and what follows the
/// array: the inverse of [`json_array`]. One pass over the bytes, tracking only strings and
/// nesting — a patch splits a held page or summary of up to 100 calls on every webhook, and
/// a general parser spent most of that webhook's time validating what this project wrote.
/// `None` when `text` does not start with a well-nested array (an empty item, an unclosed
/// string or bracket).
pub fn split_json_array(text: &str) -> Option<(Vec<&str>, &str)> {
    let bytes = text.as_bytes();
    if bytes.first() != Some(&b'[') {
        return None;
    }
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 1;
    // Strings are skipped by an inner loop that looks for the closing quote alone: the
    // earlier one loop with string and escape flags tested per byte took twice as long in a
    // webhook's profile (`npm run profile -- webhook`, 560 → 300 µs for a page and a summary).
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'"' {
            // To the string's closing quote; an escape skips the byte after it.
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            if i >= bytes.len() {
                return None;
            }
            i += 1;
            continue;
        }
        match b {
            b'{' | b'[' => depth += 1,
            b'}' if depth > 0 => depth -= 1,
            b']' if depth > 0 => depth -= 1,
            b',' if depth == 0 => {
                items.push(text[start..i].trim_matches(|c: char| c.is_ascii_whitespace()));
                start = i + 1;
            }
            b']' => {
                let last = text[start..i].trim_matches(|c: char| c.is_ascii_whitespace());
                if !(last.is_empty() && items.is_empty()) {
                    items.push(last);
                }
                if items.iter().any(|item| item.is_empty()) {
                    return None;
                }
                return Some((items, &text[i + 1..]));
            }
            b'}' => return None,
            _ => {}
        }
        i += 1;
    }
    None
}

/// An intent summary's `data` from its calls (a JSON array) and aggregates: the bytes
/// serializing `domain::IntentSummary` gives.
pub fn summary_json(calls: &str, stats: &crate::domain::IntentStats) -> AppResult<String> {
    let stats = crate::json_writer::to_string(stats);
    let mut out = String::with_capacity(calls.len() + stats.len() + 20);
    out.push_str("{\"calls\":");
    out.push_str(calls);
    out.push_str(",\"stats\":");
    out.push_str(&stats);
    out.push('}');
    Ok(out)
}

/// A ranged intent summary's `data`: [`summary_json`]'s fields and the daily series.
pub fn ranged_summary_json(
    calls: &str,
    stats: &crate::domain::IntentStats,
    daily: &[crate::domain::DayStats],
) -> AppResult<String> {
    let mut out = summary_json(calls, stats)?;
    let daily = crate::json_writer::to_string(daily);
    out.pop(); // the closing brace
    out.push_str(",\"daily\":");
    out.push_str(&daily);
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
        request: &SummaryRequest,
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
    fn every_one_byte_change_and_every_length_moves_the_etag() {
        let base: Vec<u8> = (0..203u32).map(|i| b'a' + (i % 26) as u8).collect();
        let etag = |data: &[u8], next: Option<&str>| {
            let page = next.map(|n| PageMeta {
                count: 1,
                next_cursor: Some(n.to_owned()),
            });
            Payload::from_json(String::from_utf8(data.to_vec()).expect("ascii"), page).etag
        };
        let mut seen = std::collections::HashSet::new();
        assert!(seen.insert(etag(&base, None)));
        for i in 0..base.len() {
            for flip in [1u8, 0x20] {
                let mut changed = base.clone();
                changed[i] ^= flip;
                assert!(seen.insert(etag(&changed, None)), "byte {i} ^ {flip}");
            }
        }
        // Every prefix, and the same bytes with trailing zeros, differ too.
        for n in 0..base.len() {
            assert!(seen.insert(etag(&base[..n], None)), "prefix {n}");
        }
        for zeros in 1..=9 {
            let mut padded = base.clone();
            padded.extend(std::iter::repeat_n(0u8, zeros));
            assert!(seen.insert(etag(&padded, None)), "{zeros} zeros");
        }
        // Where the data ends and the cursor begins is part of it.
        assert_ne!(etag(b"[1,2]", Some("ab")), etag(b"[1,2]a", Some("b")));
        assert_eq!(etag(b"[1,2]", Some("ab")), etag(b"[1,2]", Some("ab")));
    }

    #[test]
    fn a_json_array_splits_back_into_the_items_it_was_joined_from() {
        let awkward = [
            r#"{"id":"CA1","s":"a,b]c}","n":[1,[2,{"x":"]"}]]}"#,
            r#""\"],[\\""#,
            "[]",
            "{}",
            "-1.5e3",
            r#"{"t":"\\","u":"\u005d"}"#,
        ];
        for n in 0..=awkward.len() {
            let joined = json_array(&awkward[..n]);
            let tail = ",\"stats\":{}}";
            let text = format!("{joined}{tail}");
            let (items, rest) = split_json_array(&text).expect("splits");
            assert_eq!(items, &awkward[..n]);
            assert_eq!(rest, tail);
            // The same split the general parser gives.
            let parsed: Vec<&serde_json::value::RawValue> =
                serde_json::from_str(&joined).expect("valid JSON");
            assert_eq!(items, parsed.iter().map(|r| r.get()).collect::<Vec<_>>());
        }
        for broken in [
            "", "{}", "[", "[1,", "[1,,2]", "[,]", "[\"]", "[{]", "[}]", "[1}",
        ] {
            assert_eq!(split_json_array(broken), None, "{broken}");
        }
    }

    #[test]
    fn a_payload_holds_no_more_than_its_bytes_and_a_copy_of_it_shares_them() {
        // The memory tier weighs an entry by its length: spare capacity would make the bound
        // untrue of the heap. And a memory hit clones the entry's payload: that must not copy
        // tens of KB per request.
        let mut grown = String::with_capacity(4096);
        grown.push_str("[1,2]");
        let p = Payload::from_json(grown, None);
        let data = p.data_json();
        assert_eq!(data.text.capacity(), data.len());
        let copy = p.clone();
        assert!(Rc::ptr_eq(&data.text, &copy.data_json().text));
    }

    #[test]
    fn a_body_built_once_is_sent_again_for_the_same_meta_and_then_holds_the_data() {
        let p = Payload::from_json(r#"[{"id":"CA1"}]"#.into(), None);
        let copy = p.clone();
        let first = p.body(r#"{"source":"memory"}"#);
        assert_eq!(
            *first,
            r#"{"success":true,"data":[{"id":"CA1"}],"meta":{"source":"memory"}}"#
        );
        // The same meta, from any clone: the same string, nothing built.
        assert!(Rc::ptr_eq(&first, &copy.body(r#"{"source":"memory"}"#)));
        // The data now lives inside that body: one copy of it, not two.
        let data = p.data_json();
        assert!(Rc::ptr_eq(&data.text, &first));
        assert_eq!(&*data, r#"[{"id":"CA1"}]"#);
        // Another meta builds another body, which then holds the data instead.
        let other = copy.body(r#"{"source":"kv"}"#);
        assert_eq!(
            *other,
            r#"{"success":true,"data":[{"id":"CA1"}],"meta":{"source":"kv"}}"#
        );
        assert!(Rc::ptr_eq(&p.data_json().text, &other));
        assert_eq!(p, copy);
        assert_eq!(&*p.data_json(), r#"[{"id":"CA1"}]"#);
    }

    #[test]
    fn a_text_after_a_header_is_the_rest_of_it_or_nothing_inside_a_character() {
        let t = DataText::after("head\n[1]".into(), 5).expect("a boundary");
        assert_eq!(&*t, "[1]");
        assert!(DataText::after("é".into(), 1).is_none());
        assert!(DataText::after("ab".into(), 3).is_none());
        assert_eq!(&*DataText::after("ab".into(), 2).expect("the end"), "");
    }
}
