//! The three-tier read-through cache: per-isolate memory → Workers KV → D1.
//!
//! [`TieredReads`] wraps any [`ReadModel`] (the D1 store) and is one itself, so the routes and
//! the store are unchanged by it.
//!
//! # Policy
//!
//! | kind | key (see `keys.rs`) | TTL (var, default) | invalidated by |
//! | --- | --- | --- | --- |
//! | call page | `recordings:user:{u}:page:{p}:limit:{n}` | `CACHE_TTL_RECORDINGS`, 300 s | any webhook for the user |
//! | call detail | `recordings:user:{u}:call:{c}` | `CACHE_TTL_RECORDINGS`, 300 s | any webhook for the call |
//! | analysis | `intent:user:{u}:analysis:{c}` | `CACHE_TTL_INTENT`, 600 s | any webhook for the call |
//! | summary | `intent:user:{u}:summary:limit:{n}` | `CACHE_TTL_SUMMARY`, 120 s | any webhook for the user |
//! | enrichment | `enhanced:user:{u}:call:{c}` | `CACHE_TTL_ENHANCED`, 1800 s | any webhook for the call |
//! | a 404 of any kind | same key | 30 s | as its kind |
//!
//! - TTLs get ±10 % jitter. Past 80 % of its TTL an entry is served and refreshed in the
//!   background (`ctx.waitUntil`). An expired entry is kept for a grace period (1 h) and
//!   served — `X-Cache: STALE` — only when D1 fails or takes longer than the soft timeout
//!   (1.5 s); otherwise a failing D1 is a 503 with `Retry-After`.
//! - An entry copied from KV into memory keeps its absolute expiry.
//! - Pages with `limit` over 100 bypass the cache.
//! - Memory holds at most `CACHE_MEMORY_MAX_ENTRIES` (10 000) entries and
//!   `CACHE_MEMORY_MAX_BYTES` (16 MiB) per isolate.
//!
//! # Invalidation and staleness
//!
//! Each key is stored in KV under the invalidation *generations* it was loaded with: one for
//! everything (purge all), one per user (pages, summary), one per call (detail, analysis,
//! enrichment). A webhook bumps its user's and its call's generation — O(1) KV writes however
//! many keys the user has cached, at most one write per key per second (bursts coalesce) —
//! which retires every key built under the old values without listing or deleting them.
//!
//! - In the isolate that took the webhook, the bump is immediate: the next read misses every
//!   tier and reads D1.
//! - A load that began before the write stores its result under the generation it started
//!   with, which the bump has already retired (and memory refuses results whose generations
//!   moved during the load), so it can never put the older value back.
//! - Other isolates re-read the generations they depend on from KV at most every
//!   `sync_ms` (5 s). **Staleness bound across isolates: 5 s + KV propagation** (KV is
//!   eventually consistent, up to about 60 s at the edge; immediate in local workerd). When
//!   KV is unreachable, memory entries older than 5 s are not trusted and reads go to D1.
//! - `CACHE_KV_ENABLED=false` turns off the KV data tier; generations still travel through
//!   KV, as the backplane.
//!
//! # Stampedes
//!
//! Workers cancels a request that awaits a promise created by another request, so no future
//! is shared. The first request to miss a key marks it in flight; others arriving meanwhile
//! poll this isolate's memory every 5 ms for up to 250 ms and take the leader's result from
//! there, loading themselves only if it never comes.

pub mod codec;
pub mod keys;
pub mod memory;
pub mod policy;
pub mod state;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;
#[cfg(target_arch = "wasm32")]
pub mod workers;

use crate::clock::Clock;
use crate::domain::{CallId, Limit, PagePosition, PageRequest, UserId};
use crate::error::{AppError, AppResult};
use crate::reads::{Outcome, Payload, ReadModel, Served, Source};
use futures_util::future::{select, Either};
use keys::{Gens, KeySpec, Kind};
use memory::Entry;
use policy::{Freshness, Policy};
use serde::Serialize;
use state::{CacheState, Counters, GenWrite};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;

/// Pages with a larger `limit` are served straight from D1.
pub const MAX_CACHED_LIMIT: u32 = 100;
/// Generation counters outlive every entry's TTL + grace by far.
const GEN_TTL_SECS: u64 = 2 * 24 * 3600;
/// One KV write per key per second (KV's own limit).
const GEN_WRITE_INTERVAL_MS: i64 = 1_000;

pub type LocalFuture = Pin<Box<dyn Future<Output = ()>>>;

/// The second tier: the least the cache needs from Workers KV.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait KvTier {
    async fn get(&self, key: &str) -> AppResult<Option<String>>;
    async fn get_many(&self, keys: &[String]) -> AppResult<Vec<Option<String>>>;
    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> AppResult<()>;
}

/// Work after the response (`ctx.waitUntil`) and timers.
pub trait Runtime: Clone + 'static {
    fn spawn(&self, fut: LocalFuture);
    fn sleep(&self, ms: u32) -> LocalFuture;
}

/// What a key holds, and how to load it from the origin.
#[derive(Debug, Clone, PartialEq)]
pub enum Load {
    Page(PageRequest),
    Summary(Limit),
    Call(CallId),
    Analysis(CallId),
    Enhanced(CallId),
}

impl Load {
    fn spec(&self, user: &UserId) -> KeySpec {
        match self {
            Load::Page(p) => KeySpec::page(user, p),
            Load::Summary(l) => KeySpec::summary(user, *l),
            Load::Call(c) => KeySpec::call(user, c),
            Load::Analysis(c) => KeySpec::analysis(user, c),
            Load::Enhanced(c) => KeySpec::enhanced(user, c),
        }
    }

    fn bypasses_cache(&self) -> bool {
        matches!(self, Load::Page(p) if p.limit.get() > MAX_CACHED_LIMIT)
    }
}

/// Operator-facing cache controls (`/api/cache/*`) and the webhook side's invalidation.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait CacheControl {
    /// Loads `user`'s first page and summary into every tier.
    async fn warm(&self, user: &UserId) -> AppResult<()>;
    /// A webhook changed `user`'s data (and `call`'s, when given).
    fn invalidate(&self, user: &UserId, call: Option<&CallId>);
    fn purge_user(&self, user: &UserId);
    fn purge_all(&self);
    fn stats(&self, user: Option<&UserId>) -> CacheStats;
    /// `user`'s keys in this isolate's memory (at most [`MAX_LISTED_KEYS`]), and whether KV
    /// holds each under the same generations.
    async fn keys(&self, user: &UserId) -> AppResult<Vec<KeyInfo>>;
}

/// Keys listed by one `GET /api/cache/keys` at most (each costs a KV read).
pub const MAX_LISTED_KEYS: usize = 100;

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct KeyInfo {
    pub key: String,
    pub tier: &'static str,
    /// `fresh`, `refresh` (served, reloading), `stale` (only if D1 fails) or `retired` (an
    /// invalidation moved its generations: never served again).
    pub state: &'static str,
    pub age_seconds: f64,
    /// Until expiry; negative once expired.
    pub ttl_remaining_seconds: f64,
    pub not_found: bool,
    pub in_kv: bool,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CacheStats {
    pub scope: &'static str,
    pub counters: Counters,
    pub hit_rate: f64,
    pub memory: MemoryStats,
    pub kv_breaker_open: bool,
    pub enabled: TierSwitches,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStats {
    pub entries: usize,
    pub bytes: u64,
    pub max_entries: u64,
    pub max_bytes: u64,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct TierSwitches {
    pub cache: bool,
    pub memory: bool,
    pub kv: bool,
}

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

/// A value from some tier, with its lifetime, before it becomes a response.
struct Found {
    entry: Entry,
    source: Source,
}

impl<R, K, C, T> TieredReads<R, K, C, T>
where
    R: ReadModel + 'static,
    K: KvTier + 'static,
    C: Clock + Clone + 'static,
    T: Runtime,
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

    fn ttl(&self, kind: Kind, absent: bool) -> u32 {
        if absent {
            return self.policy.ttl_not_found;
        }
        match kind {
            Kind::Page | Kind::Call => self.policy.ttl_recordings,
            Kind::Summary => self.policy.ttl_summary,
            Kind::Analysis => self.policy.ttl_intent,
            Kind::Enhanced => self.policy.ttl_enhanced,
        }
    }

    fn gen_keys(spec: &KeySpec) -> [Option<String>; 3] {
        let all = Some(keys::gen_key_all());
        match (&spec.kind, &spec.call) {
            (Kind::Call | Kind::Analysis | Kind::Enhanced, Some(call)) => {
                [all, None, Some(keys::gen_key_call(&spec.user, call))]
            }
            _ => [all, Some(keys::gen_key_user(&spec.user)), None],
        }
    }

    /// The generations `spec` depends on as this isolate sees them now, without I/O.
    fn view_gens(&self, spec: &KeySpec) -> Gens {
        let view = self.state.gens.borrow();
        let [all, user, call] = Self::gen_keys(spec);
        let value = |k: &Option<String>| {
            k.as_deref()
                .and_then(|k| view.get(k))
                .map_or(0, |g| g.value)
        };
        Gens {
            all: value(&all),
            user: value(&user),
            call: value(&call),
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

    /// The generations `spec` depends on, re-read from KV when this isolate's view is older
    /// than `sync_ms`. Also says whether the view is now recent enough to trust memory.
    async fn current_gens(&self, spec: &KeySpec, now: i64) -> (Gens, bool) {
        let wanted: Vec<String> = Self::gen_keys(spec).into_iter().flatten().collect();
        let is_recent = |view: &state::GenView, k: &str| {
            view.get(k)
                .is_some_and(|g| now - g.synced_at < self.policy.sync_ms)
        };
        let stale_keys: Vec<String> = {
            let view = self.state.gens.borrow();
            wanted
                .iter()
                .filter(|k| !is_recent(&view, k))
                .cloned()
                .collect()
        };
        if !stale_keys.is_empty() && self.kv_usable(now) {
            let read = self.kv.get_many(&stale_keys).await;
            if let Some(values) = self.kv_result(Some(&spec.user), read, now) {
                let mut view = self.state.gens.borrow_mut();
                for (k, v) in stale_keys.iter().zip(values) {
                    let value = v.and_then(|s| s.trim().parse::<u64>().ok()).unwrap_or(0);
                    view.observe(k, value, now);
                }
            }
        }
        let synced = {
            let view = self.state.gens.borrow();
            wanted.iter().all(|k| is_recent(&view, k))
        };
        (self.view_gens(spec), synced)
    }

    fn served(&self, user: &UserId, found: &Found, outcome: Outcome) -> Served<Option<Payload>> {
        let rows = found.entry.rows_read;
        self.state.record(Some(user), |c| {
            match outcome {
                Outcome::HitMemory => c.hits_memory += 1,
                Outcome::HitKv => c.hits_kv += 1,
                Outcome::Stale => c.stale_served += 1,
                _ => {}
            }
            c.d1_rows_avoided += rows;
        });
        Served {
            value: found.entry.payload.as_deref().cloned(),
            source: found.source,
            outcome,
        }
    }

    async fn load_origin(&self, user: &UserId, load: &Load) -> AppResult<(Option<Payload>, u64)> {
        let before = self.origin.usage();
        let value = match load {
            Load::Page(p) => Some(self.origin.call_page(user, p).await?.value),
            Load::Summary(l) => Some(self.origin.intent_summary(user, *l).await?.value),
            Load::Call(c) => self.origin.call_detail(user, c).await?.value,
            Load::Analysis(c) => self.origin.call_analysis(user, c).await?.value,
            Load::Enhanced(c) => self.origin.call_enrichment(user, c).await?.value,
        };
        let after = self.origin.usage();
        let (queries, rows) = (
            after.queries - before.queries,
            after.rows_read - before.rows_read,
        );
        self.state.record(Some(user), |c| {
            c.d1_queries += queries;
            c.d1_rows_read += rows;
        });
        Ok((value, rows))
    }

    fn random_unit(&self) -> f64 {
        let mut bytes = [0u8; 8];
        match getrandom::fill(&mut bytes) {
            Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 0.5,
        }
    }

    /// Keeps a freshly loaded value — unless an invalidation moved the generations while it
    /// was loading, in which case the value may predate the write and is dropped.
    fn remember(&self, spec: &KeySpec, gens: Gens, value: Option<Payload>, rows: u64, now: i64) {
        let life = self.policy.lifetime(
            now,
            self.ttl(spec.kind, value.is_none()),
            self.random_unit(),
        );
        let entry = Entry {
            payload: value.map(Rc::new),
            gens,
            life,
            rows_read: rows,
        };
        self.keep(spec, entry, now, true);
    }

    fn keep(&self, spec: &KeySpec, entry: Entry, now: i64, to_kv: bool) {
        if self.view_gens(spec) != entry.gens {
            return;
        }
        if self.policy.memory_enabled {
            self.state
                .memory
                .borrow_mut()
                .insert(spec.logical().to_owned(), entry.clone());
        }
        if to_kv && self.policy.kv_enabled && self.kv_usable(now) {
            let this = self.clone();
            let key = spec.versioned(&entry.gens);
            let user = spec.user.clone();
            self.rt.spawn(Box::pin(async move {
                let ttl = this.policy.kv_ttl_secs(&entry.life, now);
                let put = this.kv.put(&key, &codec::encode(&entry), ttl).await;
                this.kv_result(Some(&user), put, now);
            }));
        }
    }

    fn refresh_in_background(&self, spec: &KeySpec, load: &Load, gens: Gens) {
        let versioned = spec.versioned(&gens);
        if !self.state.inflight.borrow_mut().insert(versioned.clone()) {
            return; // someone is already loading it
        }
        let this = self.clone();
        let (spec, load) = (spec.clone(), load.clone());
        self.rt.spawn(Box::pin(async move {
            if let Ok((value, rows)) = this.load_origin(&spec.user, &load).await {
                this.state
                    .record(Some(&spec.user), |c| c.background_loads += 1);
                let now = this.now();
                this.remember(&spec, gens, value, rows, now);
            }
            this.state.inflight.borrow_mut().remove(&versioned);
        }));
    }

    /// Another request of this isolate is loading the key: wait for its result in memory.
    async fn follow(&self, spec: &KeySpec, versioned: &str, gens: Gens) -> Option<Found> {
        let polls = self.policy.follower_wait_ms / self.policy.follower_poll_ms.max(1);
        for _ in 0..polls {
            self.rt.sleep(self.policy.follower_poll_ms).await;
            let now = self.now();
            let found = self.state.memory.borrow().get(spec.logical()).cloned();
            if let Some(entry) = found {
                if entry.gens == gens && entry.life.at(now) == Freshness::Fresh {
                    return Some(Found {
                        entry,
                        source: Source::Memory,
                    });
                }
            }
            if !self.state.inflight.borrow().contains(versioned) {
                return None;
            }
        }
        None
    }

    /// Loads from D1; with a stale fallback at hand, gives up after the soft timeout.
    async fn load_bounded(
        &self,
        user: &UserId,
        load: &Load,
        has_fallback: bool,
    ) -> AppResult<Option<(Option<Payload>, u64)>> {
        if !has_fallback || self.policy.soft_timeout_ms == 0 {
            return self.load_origin(user, load).await.map(Some);
        }
        let loading = Box::pin(self.load_origin(user, load));
        let timeout = self.rt.sleep(self.policy.soft_timeout_ms);
        match select(loading, timeout).await {
            Either::Left((result, _)) => result.map(Some),
            Either::Right(((), _)) => Ok(None),
        }
    }

    pub async fn read(&self, user: &UserId, load: Load) -> AppResult<Served<Option<Payload>>> {
        if !self.policy.enabled || load.bypasses_cache() {
            self.state.record(Some(user), |c| c.bypassed += 1);
            let (value, _) = self.load_origin(user, &load).await?;
            return Ok(Served::from_d1(value));
        }
        let spec = load.spec(user);
        let now = self.now();
        let (gens, synced) = self.current_gens(&spec, now).await;
        let mut fallback: Option<Found> = None;

        if self.policy.memory_enabled {
            let cached = self.state.memory.borrow().get(spec.logical()).cloned();
            if let Some(entry) = cached {
                let trusted = entry.gens == gens
                    && (synced || now - entry.life.stored_at < self.policy.sync_ms);
                let found = Found {
                    entry,
                    source: Source::Memory,
                };
                match (trusted, found.entry.life.at(now)) {
                    (true, Freshness::Fresh) => {
                        return Ok(self.served(user, &found, Outcome::HitMemory))
                    }
                    (true, Freshness::Refresh) => {
                        self.refresh_in_background(&spec, &load, gens);
                        return Ok(self.served(user, &found, Outcome::HitMemory));
                    }
                    (_, Freshness::Dead) => {}
                    _ => fallback = Some(found),
                }
            }
        }

        let versioned = spec.versioned(&gens);
        if self.policy.kv_enabled && self.kv_usable(now) {
            let read = self.kv.get(&versioned).await;
            let entry = self
                .kv_result(Some(user), read, now)
                .flatten()
                .and_then(|raw| codec::decode(&raw))
                .filter(|e| e.gens == gens);
            if let Some(entry) = entry {
                let found = Found {
                    entry,
                    source: Source::Kv,
                };
                match found.entry.life.at(now) {
                    Freshness::Fresh | Freshness::Refresh => {
                        if found.entry.life.at(now) == Freshness::Refresh {
                            self.refresh_in_background(&spec, &load, gens);
                        }
                        // Same absolute lifetime as in KV: memory never extends it.
                        self.keep(&spec, found.entry.clone(), now, false);
                        return Ok(self.served(user, &found, Outcome::HitKv));
                    }
                    Freshness::Stale if fallback.is_none() => fallback = Some(found),
                    _ => {}
                }
            }
        }

        if self.policy.memory_enabled && self.state.inflight.borrow().contains(&versioned) {
            if let Some(found) = self.follow(&spec, &versioned, gens).await {
                self.state.record(Some(user), |c| c.coalesced += 1);
                return Ok(self.served(user, &found, Outcome::HitMemory));
            }
        }

        let leader = self.state.inflight.borrow_mut().insert(versioned.clone());
        let result = self.load_bounded(user, &load, fallback.is_some()).await;
        if leader {
            self.state.inflight.borrow_mut().remove(&versioned);
        }
        match (result, fallback) {
            (Ok(Some((value, rows))), _) => {
                self.state.record(Some(user), |c| c.misses += 1);
                self.remember(&spec, gens, value.clone(), rows, self.now());
                Ok(Served {
                    value,
                    source: Source::D1,
                    outcome: Outcome::Miss,
                })
            }
            (Ok(None) | Err(_), Some(stale)) => Ok(self.served(user, &stale, Outcome::Stale)),
            (Err(e), None) => Err(e),
            (Ok(None), None) => Err(AppError::unavailable("D1 soft timeout without fallback")),
        }
    }

    fn bump(&self, key: String, now: i64) {
        self.state.gens.borrow_mut().bump(&key, now);
        self.schedule_gen_write(key, now);
    }

    /// Writes the current value of a generation to KV, at most once per second per key: a
    /// write that comes too soon is deferred, and later bumps ride along with it.
    fn schedule_gen_write(&self, key: String, now: i64) {
        let delay = {
            let mut writes = self.state.gen_writes.borrow_mut();
            let w = writes.entry(key.clone()).or_insert(GenWrite {
                last_write_at: i64::MIN / 2,
                pending: false,
            });
            if w.pending {
                return;
            }
            w.pending = true;
            (w.last_write_at + GEN_WRITE_INTERVAL_MS - now).max(0)
        };
        let this = self.clone();
        self.rt.spawn(Box::pin(async move {
            if delay > 0 {
                this.rt.sleep(delay as u32).await;
            }
            let value = this.state.gens.borrow().get(&key).map_or(0, |g| g.value);
            if let Some(w) = this.state.gen_writes.borrow_mut().get_mut(&key) {
                w.pending = false;
                w.last_write_at = this.now();
            }
            let now = this.now();
            let put = this.kv.put(&key, &value.to_string(), GEN_TTL_SECS).await;
            this.kv_result(None, put, now);
        }));
    }

    /// Loads `load` unless memory already holds it fresh; counted as background work, not as
    /// a read.
    async fn warm_one(&self, user: &UserId, load: Load) -> AppResult<()> {
        let spec = load.spec(user);
        let now = self.now();
        let (gens, _) = self.current_gens(&spec, now).await;
        let cached = self.state.memory.borrow().get(spec.logical()).cloned();
        if cached.is_some_and(|e| e.gens == gens && e.life.at(now) == Freshness::Fresh) {
            return Ok(());
        }
        let (value, rows) = self.load_origin(user, &load).await?;
        self.state.record(Some(user), |c| c.background_loads += 1);
        self.remember(&spec, gens, value, rows, self.now());
        Ok(())
    }

    /// Warms `user`'s first page and summary (the dashboard's landing view) into every tier.
    pub async fn warm_user(&self, user: &UserId) -> AppResult<()> {
        let first_page = PageRequest {
            limit: Limit::new(crate::domain::DEFAULT_PAGE_LIMIT, MAX_CACHED_LIMIT)
                .ok_or_else(|| AppError::internal("default page limit out of range"))?,
            position: PagePosition::Offset(0),
        };
        let summary = Limit::new(
            crate::domain::DEFAULT_SUMMARY_LIMIT,
            crate::domain::MAX_LIMIT,
        )
        .ok_or_else(|| AppError::internal("default summary limit out of range"))?;
        self.warm_one(user, Load::Page(first_page)).await?;
        self.warm_one(user, Load::Summary(summary)).await?;
        Ok(())
    }
}

impl<R, K, C, T> CacheControl for TieredReads<R, K, C, T>
where
    R: ReadModel + 'static,
    K: KvTier + 'static,
    C: Clock + Clone + 'static,
    T: Runtime,
{
    async fn warm(&self, user: &UserId) -> AppResult<()> {
        self.warm_user(user).await
    }

    fn invalidate(&self, user: &UserId, call: Option<&CallId>) {
        let now = self.now();
        self.bump(keys::gen_key_user(user), now);
        if let Some(call) = call {
            self.bump(keys::gen_key_call(user, call), now);
        }
        self.state.record(Some(user), |c| c.invalidations += 1);
        if self.policy.warm_after_invalidate && self.policy.enabled {
            let this = self.clone();
            let user = user.clone();
            self.rt.spawn(Box::pin(async move {
                let _ = this.warm_user(&user).await;
            }));
        }
    }

    async fn keys(&self, user: &UserId) -> AppResult<Vec<KeyInfo>> {
        let now = self.now();
        let prefixes: Vec<String> = ["recordings", "intent", "enhanced"]
            .iter()
            .map(|p| format!("{}:{p}:user:{user}:", keys::FORMAT))
            .collect();
        let entries: Vec<(String, Entry)> = {
            let memory = self.state.memory.borrow();
            let mut found: Vec<(String, Entry)> = prefixes
                .iter()
                .flat_map(|p| memory.entries_with_prefix(p))
                .map(|(k, e)| (k.clone(), e.clone()))
                .collect();
            found.sort_by(|a, b| a.0.cmp(&b.0));
            found.truncate(MAX_LISTED_KEYS);
            found
        };
        let mut out = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            let spec = keys::KeySpec::from_logical(&key, user);
            let current = spec.as_ref().map(|s| self.view_gens(s));
            let retired = current.is_some_and(|g| g != entry.gens);
            let versioned = format!(
                "{key}|g{}.{}.{}",
                entry.gens.all, entry.gens.user, entry.gens.call
            );
            let in_kv = self.policy.kv_enabled
                && self.kv_usable(now)
                && self
                    .kv_result(Some(user), self.kv.get(&versioned).await, now)
                    .flatten()
                    .is_some();
            out.push(KeyInfo {
                key,
                tier: "memory",
                state: match (retired, entry.life.at(now)) {
                    (true, _) => "retired",
                    (_, Freshness::Fresh) => "fresh",
                    (_, Freshness::Refresh) => "refresh",
                    _ => "stale",
                },
                age_seconds: (now - entry.life.stored_at) as f64 / 1000.0,
                ttl_remaining_seconds: (entry.life.expires_at - now) as f64 / 1000.0,
                not_found: entry.payload.is_none(),
                in_kv,
            });
        }
        Ok(out)
    }

    fn purge_user(&self, user: &UserId) {
        self.invalidate(user, None);
        let mut memory = self.state.memory.borrow_mut();
        for prefix in ["recordings", "intent", "enhanced"] {
            memory.remove_prefix(&format!("{}:{prefix}:user:{user}:", keys::FORMAT));
        }
    }

    fn purge_all(&self) {
        let now = self.now();
        self.bump(keys::gen_key_all(), now);
        self.state.memory.borrow_mut().clear();
        self.state.record(None, |c| c.invalidations += 1);
    }

    fn stats(&self, user: Option<&UserId>) -> CacheStats {
        let stats = self.state.stats.borrow();
        let counters = match user {
            Some(u) => stats.per_user.get(u).copied().unwrap_or_default(),
            None => stats.total,
        };
        let hits = counters.hits_memory + counters.hits_kv + counters.stale_served;
        let lookups = hits + counters.misses;
        let memory = self.state.memory.borrow();
        let (max_bytes, max_entries) = memory.bounds();
        let user_prefixes: Vec<String> = user
            .map(|u| {
                ["recordings", "intent", "enhanced"]
                    .iter()
                    .map(|p| format!("{}:{p}:user:{u}:", keys::FORMAT))
                    .collect()
            })
            .unwrap_or_default();
        let (entries, bytes) = if user.is_some() {
            user_prefixes.iter().fold((0, 0), |(n, b), prefix| {
                memory
                    .entries_with_prefix(prefix)
                    .fold((n, b), |(n, b), (k, e)| {
                        (n + 1, b + k.len() as u64 + e.bytes())
                    })
            })
        } else {
            (memory.len(), memory.bytes())
        };
        CacheStats {
            scope: if user.is_some() { "user" } else { "isolate" },
            counters,
            hit_rate: if lookups == 0 {
                0.0
            } else {
                (hits as f64 / lookups as f64 * 10_000.0).round() / 10_000.0
            },
            memory: MemoryStats {
                entries,
                bytes,
                max_entries,
                max_bytes,
            },
            kv_breaker_open: self.state.breaker.get().is_open(self.now()),
            enabled: TierSwitches {
                cache: self.policy.enabled,
                memory: self.policy.memory_enabled,
                kv: self.policy.kv_enabled,
            },
        }
    }
}

fn page_value(served: Served<Option<Payload>>) -> AppResult<Served<Payload>> {
    let Served {
        value,
        source,
        outcome,
    } = served;
    let value = value.ok_or_else(|| AppError::internal("a page or summary came back absent"))?;
    Ok(Served {
        value,
        source,
        outcome,
    })
}

impl<R, K, C, T> ReadModel for TieredReads<R, K, C, T>
where
    R: ReadModel + 'static,
    K: KvTier + 'static,
    C: Clock + Clone + 'static,
    T: Runtime,
{
    async fn call_page(&self, user: &UserId, page: &PageRequest) -> AppResult<Served<Payload>> {
        page_value(self.read(user, Load::Page(page.clone())).await?)
    }

    async fn call_detail(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<Served<Option<Payload>>> {
        self.read(user, Load::Call(call.clone())).await
    }

    async fn call_enrichment(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<Served<Option<Payload>>> {
        self.read(user, Load::Enhanced(call.clone())).await
    }

    async fn call_analysis(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<Served<Option<Payload>>> {
        self.read(user, Load::Analysis(call.clone())).await
    }

    async fn intent_summary(&self, user: &UserId, limit: Limit) -> AppResult<Served<Payload>> {
        page_value(self.read(user, Load::Summary(limit)).await?)
    }

    fn usage(&self) -> crate::store::Usage {
        self.origin.usage()
    }
}
