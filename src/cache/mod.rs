//! The three-tier read-through cache: per-isolate memory → Workers KV → D1.
//!
//! [`TieredReads`] wraps any [`ReadModel`] (the D1 store) and is one itself, so the routes and
//! the store are unchanged by it. The read path is in `read.rs`, versions and invalidation in
//! `versions.rs`, warming, listing and statistics in `control.rs`.
//!
//! # Policy
//!
//! | kind | key (see `keys.rs`) | TTL (var, default) | retired by |
//! | --- | --- | --- | --- |
//! | call page | `recordings:user:{u}:page:{p}:limit:{n}` | `CACHE_TTL_RECORDINGS`, 300 s | any change to the user's data |
//! | filtered call page | `…:limit:{n}:filter:{digest of the canonical filter}` | `CACHE_TTL_RECORDINGS`, 300 s | any change to the user's data |
//! | call detail | `recordings:user:{u}:call:{c}` | `CACHE_TTL_RECORDINGS`, 300 s | any change to the user's data |
//! | analysis | `intent:user:{u}:analysis:{c}` | `CACHE_TTL_INTENT`, 600 s | any change to the user's data |
//! | summary | `intent:user:{u}:summary:limit:{n}` | `CACHE_TTL_SUMMARY`, 120 s | any change to the user's data |
//! | ranged summary | `…:summary:limit:{n}:from:{day}:to:{day}` | `CACHE_TTL_SUMMARY`, 120 s; 3600 s once every day of it has ended (only a write changes it, and writes retire it by version) | any change to the user's data |
//! | enrichment | `enhanced:user:{u}:call:{c}` | `CACHE_TTL_ENHANCED`, 1800 s | any change to the user's data |
//! | a 404 of any kind | same key | 30 s | as its kind |
//!
//! - TTLs get ±10 % jitter. Past 80 % of its TTL an entry is served and refreshed in the
//!   background (`ctx.waitUntil`). An entry *expired by time* is kept for a grace period
//!   (1 h) and served — `X-Cache: STALE` — only when D1 fails or takes longer than the soft
//!   timeout (1.5 s); otherwise a failing D1 is a 503 with `Retry-After`. An entry *retired by
//!   a newer version* is never served, not even as STALE.
//! - An entry copied from KV into memory keeps its absolute expiry.
//! - Pages with `limit` over 100 bypass the cache.
//! - **Refresh on write** (`landing.rs`, `patch.rs`, `CACHE_REFRESH_ON_WRITE`, on by
//!   default): a first page or summary read here within the last 60 s is watched. A webhook
//!   for its user patches the view this isolate holds at the version just before the
//!   webhook's batch, with the one call the batch changed (read back in that batch, after the
//!   writes: a few rows); a watched view not held here is read back whole in the same batch.
//!   Either way it is kept under the version the batch returns — so it is fenced exactly like
//!   a load — in memory at once, and in KV once no newer refresh of the view has come for
//!   `CACHE_REFRESH_KV_DELAY_MS` (1 s), or at the latest 10 s after the first refresh
//!   waiting (one task per view waits out a burst; `read::write_behind`). At most 1 024
//!   watched users and 4 views per webhook.
//! - Memory holds at most `CACHE_MEMORY_MAX_ENTRIES` (10 000) entries and
//!   `CACHE_MEMORY_MAX_BYTES` (48 MiB, an entry weighed with the response body its data is
//!   held in) per isolate; the version view at most 10 000 users,
//!   in-flight marks 1 024 keys, the background-sync queue 500 users, per-user counters
//!   10 000 users.
//!
//! # Versions, and the staleness bound
//!
//! D1 is the one version authority (`migrations/0008`): each user has a version that the
//! statement changing their data moves forward, in the same batch. A load reads the data and
//! the version in one batch, and the entry is stored under that version (in KV, inside its
//! key), so an entry can never claim to be newer than its data: a load that began before a
//! write stores its result under the old version, which the write has retired. KV holds data
//! entries only; it is never asked for the current version (it is last-writer-wins and
//! eventually consistent, so no protocol over it keeps a counter monotonic).
//!
//! Each isolate keeps a view of users' versions. A read first makes sure the view of its user
//! is younger than `CACHE_SYNC_MS` (5 s) — else it reads the version from D1 before answering
//! (one small query) — and that it is at least the client's `X-Min-Version`; then it serves
//! only an entry stored under exactly that version. While the isolate serves reads, it reads
//! the *version feed* (`migrations/0009`, `versions.rs`) every 80 % of `CACHE_SYNC_MS`: one
//! query listing the users changed since its last position, which re-vouches every view
//! entry at once — so a read asks D1 for a version by name only for a user this isolate has
//! not seen since it started (or forgot). Users outside the feed's chain are refreshed in the
//! background by name once 80 % old, all such users in one query.
//!
//! The feed names the call each change was about, and the view keeps the last 16 per user:
//! an entry for one call (detail, analysis, enrichment) loaded at an older version is kept —
//! carried to the newer version — when no change since was about that call (nor about "any"
//! of the user's data, as a purge is). Pages and summaries hold every call, so any change
//! retires them. A call's KV key holds no version (the entry does), so the same rule carries
//! an entry another isolate wrote: KV being last-writer-wins, an older copy may overwrite a
//! newer one, and is then carried only if no change since its own version was about the call
//! (else it is reloaded). KV takes one write per second per key; a refused write is a KV
//! error and nothing else.

//! - In the isolate that took the webhook or deletion, the write's batch returns the new
//!   version and the view takes it at once: the next read misses and reads D1.
//! - **In every other isolate, a read that starts more than `CACHE_SYNC_MS` after a write was
//!   acknowledged reflects it**, whatever KV does. A version a view holds never goes back, so
//!   an isolate never serves a version older than one it served before.
//! - When D1 cannot be reached for the version, nothing newer can be learned: an entry at the
//!   last version this isolate knows may be served as `STALE` (never as a hit) within its
//!   grace period; a retired one never.
//!
//! # Stampedes
//!
//! Workers cancels a request that awaits a promise created by another request, so no future
//! is shared. The first request to miss a key marks it in flight (a guard clears the mark when
//! its load ends, even if the request is cancelled); others arriving meanwhile poll this
//! isolate's memory every 5 ms for up to 250 ms and take the leader's result from there,
//! loading themselves only if it never comes.

pub mod bounded;
pub mod codec;
mod control;
pub mod keys;
pub mod landing;
pub mod memory;
mod patch;
pub mod policy;
mod read;
#[cfg(test)]
pub mod sim;
pub mod state;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
mod versions;

use crate::clock::Clock;
use crate::domain::{CallId, Limit, PageRequest, UserId, Version};
use crate::error::{AppError, AppResult};
use crate::reads::{Payload, ReadModel, Served};
use crate::store::VersionSource;
use keys::{KeySpec, Kind};
use policy::Policy;
use state::{CacheState, Counters};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Pages with a larger `limit` are served straight from D1.
pub const MAX_CACHED_LIMIT: u32 = 100;

pub type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// The second tier: the least the cache needs from Workers KV.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait KvTier {
    async fn get(&self, key: &str) -> AppResult<Option<String>>;
    /// Stores `head` then `data` as one value (a cache entry's header and its data, so the
    /// data need not be copied into one string with the header first).
    async fn put(&self, key: &str, head: &str, data: &str, ttl_secs: u64) -> AppResult<()>;
}

/// Work after the response (`ctx.waitUntil`) and timers.
pub trait Runtime: Clone + 'static {
    fn spawn(&self, fut: LocalFuture);
    fn sleep(&self, ms: u32) -> LocalFuture;
}

/// What the cache needs from its origin: the reads, and the version authority.
pub trait Origin: ReadModel + VersionSource {}
impl<T: ReadModel + VersionSource> Origin for T {}

/// What a key holds, and how to load it from the origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Page(PageRequest),
    Summary(Limit),
    /// The summary over whole days, with its daily series.
    RangedSummary(Limit, crate::domain::DayRange),
    Call(CallId),
    Analysis(CallId),
    Enhanced(CallId),
}

impl Load {
    pub fn landing(view: crate::domain::LandingView) -> Self {
        match view {
            crate::domain::LandingView::FirstPage(limit) => Load::Page(PageRequest::unfiltered(
                limit,
                crate::domain::PagePosition::Offset(0),
            )),
            crate::domain::LandingView::Summary(limit) => Load::Summary(limit),
        }
    }

    /// The landing view this load is, if it is one.
    fn as_landing(&self) -> Option<crate::domain::LandingView> {
        match self {
            Load::Page(PageRequest {
                limit,
                position: crate::domain::PagePosition::Offset(0),
                filter,
            }) if limit.get() <= MAX_CACHED_LIMIT && filter.is_empty() => {
                Some(crate::domain::LandingView::FirstPage(*limit))
            }
            Load::Summary(limit) => Some(crate::domain::LandingView::Summary(*limit)),
            _ => None,
        }
    }

    fn spec(&self, user: &UserId) -> KeySpec {
        match self {
            Load::Page(p) => KeySpec::page(user, p),
            Load::Summary(l) => KeySpec::summary(user, *l),
            Load::RangedSummary(l, r) => KeySpec::ranged_summary(user, *l, *r),
            Load::Call(c) => KeySpec::call(user, c),
            Load::Analysis(c) => KeySpec::analysis(user, c),
            Load::Enhanced(c) => KeySpec::enhanced(user, c),
        }
    }

    /// The summary request a summary load makes of the origin.
    fn summary_request(&self) -> AppResult<crate::domain::SummaryRequest> {
        match self {
            Load::Summary(limit) => Ok(crate::domain::SummaryRequest::all_time(*limit)),
            Load::RangedSummary(limit, range) => Ok(crate::domain::SummaryRequest {
                limit: *limit,
                range: Some(*range),
            }),
            _ => Err(AppError::internal("not a summary load")),
        }
    }

    fn bypasses_cache(&self) -> bool {
        matches!(self, Load::Page(p) if p.limit.get() > MAX_CACHED_LIMIT)
    }
}

/// Operator-facing cache controls (`/api/cache/*`) and the write side's invalidation.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait CacheControl {
    /// Loads `user`'s first page and summary into every tier.
    async fn warm(&self, user: &UserId) -> AppResult<()>;
    /// A write in this isolate changed `user`'s data; D1 answered with `version`.
    fn invalidate(&self, user: &UserId, version: Option<Version>);
    /// As [`Self::invalidate`], for a write whose batch found the user at `before` and whose
    /// every change was about `call`: keys of the user's other calls stay valid here.
    fn invalidate_call(
        &self,
        user: &UserId,
        call: Option<&CallId>,
        before: Option<Version>,
        after: Option<Version>,
    );
    /// The landing views a webhook's batch should read back (refresh on write); `owner` when
    /// the delivery names its user.
    fn refresh_ask(&self, owner: Option<&UserId>) -> crate::store::RefreshAsk;
    /// Keeps what a write's batch read back at `version` (after [`Self::invalidate_call`]):
    /// the views it read in full, and the views this isolate held at `before` patched with
    /// the changed `call` (`patch.rs`). Returns how many entries it kept.
    fn keep_refreshed(
        &self,
        user: &UserId,
        version: Version,
        before: Option<Version>,
        call: Option<&CallId>,
        refreshed: crate::store::Refreshed,
    ) -> usize;
    /// Retires everything cached for `user`, in every isolate within the bound.
    async fn purge_user(&self, user: &UserId) -> AppResult<()>;
    /// Retires everything cached, in every isolate within the bound.
    async fn purge_all(&self) -> AppResult<()>;
    fn stats(&self, user: Option<&UserId>) -> CacheStats;
    /// `user`'s keys in this isolate's memory (at most [`MAX_LISTED_KEYS`]), and whether KV
    /// holds each under the same version.
    async fn keys(&self, user: &UserId) -> AppResult<Vec<KeyInfo>>;
}

/// Keys listed by one `GET /api/cache/keys` at most (each costs a KV read).
pub const MAX_LISTED_KEYS: usize = 100;

#[derive(Debug, Clone, PartialEq)]
pub struct KeyInfo {
    pub key: String,
    pub tier: &'static str,
    /// `fresh`, `refresh` (served, reloading), `stale` (only if D1 fails) or `retired` (the
    /// user's version moved past it: never served again).
    pub state: &'static str,
    pub age_seconds: f64,
    /// Until expiry; negative once expired.
    pub ttl_remaining_seconds: f64,
    pub not_found: bool,
    pub in_kv: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CacheStats {
    pub scope: &'static str,
    pub counters: Counters,
    pub hit_rate: f64,
    pub memory: MemoryStats,
    pub kv_breaker_open: bool,
    pub enabled: TierSwitches,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MemoryStats {
    pub entries: usize,
    pub bytes: u64,
    pub max_entries: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierSwitches {
    pub cache: bool,
    pub memory: bool,
    pub kv: bool,
}

crate::json_object!(KeyInfo {
    "key": key,
    "tier": tier,
    "state": state,
    "ageSeconds": age_seconds,
    "ttlRemainingSeconds": ttl_remaining_seconds,
    "notFound": not_found,
    "inKv": in_kv,
});

crate::json_object!(CacheStats {
    "scope": scope,
    "counters": counters,
    "hitRate": hit_rate,
    "memory": memory,
    "kvBreakerOpen": kv_breaker_open,
    "enabled": enabled,
});

crate::json_object!(MemoryStats {
    "entries": entries,
    "bytes": bytes,
    "maxEntries": max_entries,
    "maxBytes": max_bytes,
});

crate::json_object!(TierSwitches {
    "cache": cache,
    "memory": memory,
    "kv": kv,
});

pub struct TieredReads<R, K, C, T> {
    origin: Rc<R>,
    kv: Rc<K>,
    clock: C,
    rt: T,
    state: Rc<CacheState>,
    policy: Rc<Policy>,
}

impl<R, K, C: Clone, T: Clone> Clone for TieredReads<R, K, C, T> {
    fn clone(&self) -> Self {
        Self {
            origin: self.origin.clone(),
            kv: self.kv.clone(),
            clock: self.clock.clone(),
            rt: self.rt.clone(),
            state: self.state.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime>
    TieredReads<R, K, C, T>
{
    pub fn new(
        origin: Rc<R>,
        kv: Rc<K>,
        clock: C,
        rt: T,
        state: Rc<CacheState>,
        policy: Rc<Policy>,
    ) -> Self {
        Self {
            origin,
            kv,
            clock,
            rt,
            state,
            policy,
        }
    }

    pub fn origin(&self) -> &R {
        &self.origin
    }

    fn now(&self) -> i64 {
        self.clock.now().millis()
    }

    fn ttl(&self, spec: &KeySpec, absent: bool, now: i64) -> u32 {
        if absent {
            return self.policy.ttl_not_found;
        }
        if spec.range_end().is_some_and(|end| end.millis() <= now) {
            return self.policy.ttl_past_range;
        }
        match spec.kind {
            Kind::Page | Kind::Call => self.policy.ttl_recordings,
            Kind::Summary => self.policy.ttl_summary,
            Kind::Analysis => self.policy.ttl_intent,
            Kind::Enhanced => self.policy.ttl_enhanced,
        }
    }

    fn kv_usable(&self, now: i64) -> bool {
        self.state.breaker.get().allows(now)
    }

    fn kv_result<V>(&self, user: Option<&UserId>, r: AppResult<V>, now: i64) -> Option<V> {
        let mut breaker = self.state.breaker.get();
        let out = match r {
            Ok(v) => {
                breaker.success();
                Some(v)
            }
            Err(_) => {
                breaker.failure(now, &self.policy);
                self.state.record(user, |c| c.kv_errors += 1);
                None
            }
        };
        self.state.breaker.set(breaker);
        out
    }
}

fn page_value(served: Served<Option<Payload>>) -> AppResult<Served<Payload>> {
    let Served {
        value,
        source,
        outcome,
        version,
    } = served;
    let value = value.ok_or_else(|| AppError::internal("a page or summary came back absent"))?;
    Ok(Served {
        value,
        source,
        outcome,
        version,
    })
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime> ReadModel
    for TieredReads<R, K, C, T>
{
    async fn call_page(
        &self,
        user: &UserId,
        page: &PageRequest,
        at_least: Version,
    ) -> AppResult<Served<Payload>> {
        page_value(self.read(user, Load::Page(page.clone()), at_least).await?)
    }

    async fn call_detail(
        &self,
        user: &UserId,
        call: &CallId,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.read(user, Load::Call(call.clone()), at_least).await
    }

    async fn call_enrichment(
        &self,
        user: &UserId,
        call: &CallId,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.read(user, Load::Enhanced(call.clone()), at_least)
            .await
    }

    async fn call_analysis(
        &self,
        user: &UserId,
        call: &CallId,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.read(user, Load::Analysis(call.clone()), at_least)
            .await
    }

    async fn intent_summary(
        &self,
        user: &UserId,
        request: &crate::domain::SummaryRequest,
        at_least: Version,
    ) -> AppResult<Served<Payload>> {
        let load = match request.range {
            None => Load::Summary(request.limit),
            Some(range) => Load::RangedSummary(request.limit, range),
        };
        page_value(self.read(user, load, at_least).await?)
    }

    fn usage(&self) -> crate::store::Usage {
        self.origin.usage()
    }
}
