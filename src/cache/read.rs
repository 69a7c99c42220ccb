//! The read path: memory, then KV, then D1, serving only entries stored under exactly the
//! version this isolate knows for the user (see the module docs for why that is enough).

use super::codec;
use super::keys::KeySpec;
use super::memory::Entry;
use super::policy::Freshness;
use super::state::InflightGuard;
use super::{KvTier, Load, Origin, Runtime, TieredReads};
use crate::clock::Clock;
use crate::domain::{UserId, Version};
use crate::error::{AppError, AppResult};
use crate::reads::{Outcome, Payload, Served, Source};
use futures_util::future::{select, Either};
use std::rc::Rc;

/// The longest a refreshed view waits for a pause in its refreshes before it is written to
/// KV anyway (well inside the 30 s a request's `waitUntil` may outlive its response).
pub(super) const MAX_WRITE_WAIT_MS: i64 = 10_000;

/// How far past any wait it could have a write-behind task is taken for lost.
const LOST_TASK_MS: i64 = 30_000;

/// A write-behind task's hold on its view's waiting write: dropped unfinished (canceled), it
/// lets the view's next refresh start another task.
struct WriteBehindTask<
    R: Origin + 'static,
    K: KvTier + 'static,
    C: Clock + Clone + 'static,
    T: Runtime,
> {
    reads: TieredReads<R, K, C, T>,
    logical: String,
    done: bool,
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime>
    WriteBehindTask<R, K, C, T>
{
    /// At `now`: the waiting write, taken, when it is due (no refresh for `delay_ms`, or
    /// waited long enough); `Err(ms)` to wait that much longer; `None` when nothing waits
    /// for this task any more.
    fn due(&mut self, now: i64, delay_ms: u32) -> Option<Result<super::state::WaitingWrite, u32>> {
        let mut waiting = self.reads.state.waiting_writes.borrow_mut();
        let w = waiting.get(&self.logical)?;
        let since = w.task_since?;
        let quiet_at = w.refreshed_at.saturating_add(i64::from(delay_ms));
        let deadline = since.saturating_add(MAX_WRITE_WAIT_MS);
        if now < quiet_at && now < deadline {
            let wait = quiet_at
                .min(deadline)
                .saturating_sub(now)
                .clamp(1, i64::from(u32::MAX));
            return Some(Err(u32::try_from(wait).unwrap_or(u32::MAX)));
        }
        self.done = true;
        waiting.remove(&self.logical).map(Ok)
    }
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime> Drop
    for WriteBehindTask<R, K, C, T>
{
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(mut waiting) = self.reads.state.waiting_writes.try_borrow_mut() {
            if let Some(w) = waiting.get_mut(&self.logical) {
                w.task_since = None;
            }
        }
    }
}

/// A value from some tier, with its lifetime, before it becomes a response.
struct Found {
    entry: Entry,
    source: Source,
}

/// A load from D1: the value, the version it reflects, and the rows it read.
struct Loaded {
    value: Option<Payload>,
    version: Version,
    rows: u64,
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime>
    TieredReads<R, K, C, T>
{
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
            version: found.entry.version,
        }
    }

    /// Loads from D1; the version comes from the same batch as the data. A load is also a
    /// sync: the view takes its version as of when it started.
    async fn load_origin(&self, user: &UserId, load: &Load) -> AppResult<Loaded> {
        let started = self.now();
        let covered = self.feed_covered();
        let before = self.origin.usage();
        let z = Version::ZERO;
        let (value, version) = match load {
            Load::Page(p) => {
                let s = self.origin.call_page(user, p, z).await?;
                (Some(s.value), s.version)
            }
            Load::Summary(_) | Load::RangedSummary(..) => {
                let req = load.summary_request()?;
                let s = self.origin.intent_summary(user, &req, z).await?;
                (Some(s.value), s.version)
            }
            Load::Call(c) => {
                let s = self.origin.call_detail(user, c, z).await?;
                (s.value, s.version)
            }
            Load::Analysis(c) => {
                let s = self.origin.call_analysis(user, c, z).await?;
                (s.value, s.version)
            }
            Load::Enhanced(c) => {
                let s = self.origin.call_enrichment(user, c, z).await?;
                (s.value, s.version)
            }
        };
        let after = self.origin.usage();
        let (queries, rows) = (
            after.queries.saturating_sub(before.queries),
            after.rows_read.saturating_sub(before.rows_read),
        );
        self.state.record(Some(user), |c| {
            c.d1_queries += queries;
            c.d1_rows_read += rows;
        });
        self.synced(user, version, started, covered);
        Ok(Loaded {
            value,
            version,
            rows,
        })
    }

    fn random_unit(&self) -> f64 {
        let mut bytes = [0u8; 8];
        match getrandom::fill(&mut bytes) {
            Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
            Err(_) => 0.5,
        }
    }

    /// Keeps a freshly loaded value under the version it was read at — unless this isolate
    /// already knows a newer one, which retires it before it is stored.
    fn remember(&self, spec: &KeySpec, loaded: &Loaded, now: i64) {
        let life = self.policy.lifetime(
            now,
            self.ttl(spec, loaded.value.is_none(), now),
            self.random_unit(),
        );
        let entry = Entry {
            payload: loaded.value.clone().map(Rc::new),
            version: loaded.version,
            life,
            rows_read: loaded.rows,
        };
        self.keep(spec, entry, now, true);
    }

    pub(super) fn keep(&self, spec: &KeySpec, entry: Entry, now: i64, to_kv: bool) {
        self.keep_with_kv_delay(spec, entry, now, to_kv.then_some(0));
    }

    /// [`Self::keep`], writing KV `kv_delay_ms` later (`None`: not at all; a delay: see
    /// [`Self::write_behind`]).
    fn keep_with_kv_delay(&self, spec: &KeySpec, entry: Entry, now: i64, kv_delay_ms: Option<u32>) {
        if entry.version < self.view_version(&spec.user) {
            return;
        }
        if self.policy.memory_enabled {
            self.state
                .memory
                .borrow_mut()
                .insert(spec.logical().to_owned(), entry.clone());
        }
        let Some(delay) = kv_delay_ms else { return };
        if !(self.policy.kv_enabled && self.kv_usable(now)) {
            return;
        }
        if delay > 0 {
            self.write_behind(spec, entry, now, delay);
            return;
        }
        let this = self.clone();
        let spec = spec.clone();
        self.rt.spawn(Box::pin(async move {
            this.put_entry(&spec, &entry, now).await;
        }));
    }

    async fn put_entry(&self, spec: &KeySpec, entry: &Entry, at: i64) {
        let ttl = self.policy.kv_ttl_secs(&entry.life, at);
        let (head, data) = codec::encode_parts(entry);
        let put = self
            .kv
            .put(
                &spec.kv_key(entry.version),
                &head,
                data.as_deref().unwrap_or_default(),
                ttl,
            )
            .await;
        self.kv_result(Some(&spec.user), put, at);
    }

    /// Writes a refreshed view to KV once no newer refresh of it has come for `delay_ms` —
    /// a burst of webhooks for one user costs one write per view — and at the latest
    /// [`MAX_WRITE_WAIT_MS`] after the first refresh waiting, so a view refreshed without a
    /// pause still reaches KV now and then. One task per view waits for the whole burst: a
    /// newer refresh only replaces the entry waiting (the task and timer each refresh started
    /// were a tenth of a watched user's webhook). The write is left out when memory holds
    /// the view at a newer version by then (that one's own write covers it).
    fn write_behind(&self, spec: &KeySpec, entry: Entry, now: i64, delay_ms: u32) {
        {
            let mut waiting = self.state.waiting_writes.borrow_mut();
            // The common case, a view already waiting: its key and spec stay as they are.
            if let Some(w) = waiting.get_mut(spec.logical()) {
                w.entry = entry;
                w.refreshed_at = now;
                self.state
                    .record(Some(&spec.user), |c| c.kv_writes_coalesced += 1);
                // A task still waiting past any wait it could have was never woken again
                // (its request's `waitUntil` cut short): another takes over.
                let lost = w.task_since.is_none_or(|since| {
                    now.saturating_sub(since)
                        > MAX_WRITE_WAIT_MS + i64::from(delay_ms) + LOST_TASK_MS
                });
                if !lost {
                    return;
                }
                w.task_since = Some(now);
            } else {
                if waiting.len() >= super::state::MAX_WAITING_WRITES {
                    return;
                }
                waiting.insert(
                    spec.logical().to_owned(),
                    super::state::WaitingWrite {
                        spec: spec.clone(),
                        entry,
                        refreshed_at: now,
                        task_since: Some(now),
                    },
                );
            }
        }
        // Made before the task, so that a task dropped before its first poll lets go too.
        let mut task = WriteBehindTask {
            reads: self.clone(),
            logical: spec.logical().to_owned(),
            done: false,
        };
        let this = self.clone();
        self.rt.spawn(Box::pin(async move {
            let mut wait = delay_ms;
            loop {
                this.rt.sleep(wait).await;
                let now = this.now();
                let Some(due) = task.due(now, delay_ms) else {
                    return; // written or taken over meanwhile
                };
                match due {
                    Err(later) => wait = later,
                    Ok(waiting) => {
                        // A look on the side: `peek`, so that it does not count as a read
                        // that keeps the view from eviction.
                        let superseded = this
                            .state
                            .memory
                            .borrow()
                            .peek(waiting.spec.logical())
                            .is_some_and(|held| held.version > waiting.entry.version);
                        if superseded {
                            this.state
                                .record(Some(&waiting.spec.user), |c| c.kv_writes_coalesced += 1);
                        } else {
                            this.put_entry(&waiting.spec, &waiting.entry, waiting.refreshed_at)
                                .await;
                        }
                        return;
                    }
                }
            }
        }));
    }

    /// Keeps a value a write's own batch read back at `version` (refresh on write): the same
    /// as a load's result, so the same fencing applies.
    pub(super) fn remember_refreshed(
        &self,
        user: &UserId,
        load: &Load,
        payload: Payload,
        version: Version,
    ) {
        let rows = payload.page.as_ref().map_or(1, |p| p.count as u64 + 1);
        self.state.record(Some(user), |c| c.refreshed_on_write += 1);
        let (spec, now) = (load.spec(user), self.now());
        let life = self
            .policy
            .lifetime(now, self.ttl(&spec, false, now), self.random_unit());
        let entry = Entry {
            payload: Some(Rc::new(payload)),
            version,
            life,
            rows_read: rows,
        };
        let delay = self.policy.refresh_kv_delay_ms;
        self.keep_with_kv_delay(&spec, entry, now, Some(delay));
    }

    /// Loads `load` from D1 and keeps it (warming).
    pub(super) async fn load_and_remember(&self, spec: &KeySpec, load: &Load) -> AppResult<()> {
        let loaded = self.load_origin(&spec.user, load).await?;
        self.remember(spec, &loaded, self.now());
        Ok(())
    }

    pub(super) fn refresh_in_background(&self, spec: &KeySpec, load: &Load, version: Version) {
        let Some(guard) = InflightGuard::lead(&self.state, &spec.versioned(version)) else {
            return; // someone is already loading it
        };
        let this = self.clone();
        let (spec, load) = (spec.clone(), load.clone());
        self.rt.spawn(Box::pin(async move {
            let _guard = guard;
            if let Ok(loaded) = this.load_origin(&spec.user, &load).await {
                this.state
                    .record(Some(&spec.user), |c| c.background_loads += 1);
                let now = this.now();
                this.remember(&spec, &loaded, now);
            }
        }));
    }

    /// Another request of this isolate is loading the key: wait for its result in memory.
    async fn follow(&self, spec: &KeySpec, versioned: &str, version: Version) -> Option<Found> {
        let polls = self.policy.follower_wait_ms / self.policy.follower_poll_ms.max(1);
        for _ in 0..polls {
            self.rt.sleep(self.policy.follower_poll_ms).await;
            let now = self.now();
            let found = self.state.memory.borrow().get(spec.logical()).cloned();
            if let Some(entry) = found {
                if entry.version >= version
                    && entry.version == self.view_version(&spec.user)
                    && entry.life.at(now) == Freshness::Fresh
                {
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
    ) -> AppResult<Option<Loaded>> {
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

    pub async fn read(
        &self,
        user: &UserId,
        load: Load,
        at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        if !self.policy.enabled || load.bypasses_cache() {
            self.state.record(Some(user), |c| c.bypassed += 1);
            let loaded = self.load_origin(user, &load).await?;
            return Ok(Served::from_d1(loaded.value, loaded.version));
        }
        let spec = load.spec(user);
        let now = self.now();
        if let Some(view) = load.as_landing() {
            self.state.watched.borrow_mut().saw(user, view, now);
        }
        let Some(known) = self.known_version(user, at_least, now).await else {
            // Nothing known and D1 unreachable: only D1 itself may answer.
            let loaded = self.load_origin(user, &load).await?;
            self.state.record(Some(user), |c| c.misses += 1);
            self.remember(&spec, &loaded, self.now());
            return Ok(Served {
                value: loaded.value,
                source: Source::D1,
                outcome: Outcome::Miss,
                version: loaded.version,
            });
        };
        let mut fallback: Option<Found> = None;
        let mut retired = false;

        if self.policy.memory_enabled {
            let (held, was_retired) = self.memory_entry(&spec, known.version);
            retired = was_retired;
            if let Some(entry) = held {
                let found = Found {
                    entry,
                    source: Source::Memory,
                };
                match (known.vouched, found.entry.life.at(now)) {
                    (true, Freshness::Fresh) => {
                        return Ok(self.served(user, &found, Outcome::HitMemory))
                    }
                    (true, Freshness::Refresh) => {
                        self.refresh_in_background(&spec, &load, known.version);
                        return Ok(self.served(user, &found, Outcome::HitMemory));
                    }
                    (_, Freshness::Dead) => {}
                    _ => fallback = Some(found),
                }
            }
        }

        let versioned = spec.versioned(known.version);
        if self.policy.kv_enabled && self.kv_usable(now) {
            let read = self.kv.get(&spec.kv_key(known.version)).await;
            let entry = self
                .kv_result(Some(user), read, now)
                .flatten()
                .and_then(codec::decode)
                .and_then(|e| self.at_version(&spec, e, known.version));
            if let Some(entry) = entry {
                let freshness = entry.life.at(now);
                let found = Found {
                    entry,
                    source: Source::Kv,
                };
                match (known.vouched, freshness) {
                    (true, Freshness::Fresh | Freshness::Refresh) => {
                        if freshness == Freshness::Refresh {
                            self.refresh_in_background(&spec, &load, known.version);
                        }
                        // Same absolute lifetime as in KV: memory never extends it.
                        self.keep(&spec, found.entry.clone(), now, false);
                        return Ok(self.served(user, &found, Outcome::HitKv));
                    }
                    (_, Freshness::Dead) => {}
                    _ if fallback.is_none() => fallback = Some(found),
                    _ => {}
                }
            }
        }

        if self.policy.memory_enabled && self.state.inflight.borrow().contains(&versioned) {
            if let Some(found) = self.follow(&spec, &versioned, known.version).await {
                self.state.record(Some(user), |c| c.coalesced += 1);
                return Ok(self.served(user, &found, Outcome::HitMemory));
            }
        }

        let guard = InflightGuard::lead(&self.state, &versioned);
        let result = self.load_bounded(user, &load, fallback.is_some()).await;
        drop(guard);
        match (result, fallback) {
            (Ok(Some(loaded)), _) => {
                let call_scoped = spec.call.is_some();
                self.state.record(Some(user), |c| {
                    c.misses += 1;
                    c.misses_call_scoped += u64::from(call_scoped);
                    c.misses_retired += u64::from(retired);
                });
                self.remember(&spec, &loaded, self.now());
                Ok(Served {
                    value: loaded.value,
                    source: Source::D1,
                    outcome: Outcome::Miss,
                    version: loaded.version,
                })
            }
            // Only an entry at the newest version this isolate knows, expired by time or not
            // vouched for by D1, is a fail-safe; a retired one never is.
            (Ok(None) | Err(_), Some(stale))
                if stale.entry.version == self.view_version(user)
                    && stale.entry.version >= at_least =>
            {
                Ok(self.served(user, &stale, Outcome::Stale))
            }
            (Err(e), _) => Err(e),
            (Ok(None), _) => Err(AppError::unavailable("D1 soft timeout without fallback")),
        }
    }

    /// Memory's entry for `spec` if it is at `version` (or carried to it, see
    /// [`Self::at_version`]); any other older entry is retired and dropped (then `true`).
    fn memory_entry(&self, spec: &KeySpec, version: Version) -> (Option<Entry>, bool) {
        let Some(cached) = self.state.memory.borrow().get(spec.logical()).cloned() else {
            return (None, false);
        };
        let from = cached.version;
        match self.at_version(spec, cached, version) {
            Some(entry) => {
                if from != version {
                    self.state
                        .memory
                        .borrow_mut()
                        .insert(spec.logical().to_owned(), entry.clone());
                }
                (Some(entry), false)
            }
            None => {
                self.state.memory.borrow_mut().remove(spec.logical());
                (None, from < version)
            }
        }
    }

    /// `entry` (from memory or KV) as an entry at `version`: as it is when it was loaded at
    /// `version`; carried to `version` when it is for one call, was loaded at an older
    /// version, and the view's call log shows that no change since was about that call;
    /// `None` otherwise (retired, or newer than this isolate knows).
    fn at_version(&self, spec: &KeySpec, mut entry: Entry, version: Version) -> Option<Entry> {
        if entry.version == version {
            return Some(entry);
        }
        let carried = spec.call.as_ref().is_some_and(|call| {
            entry.version < version
                && self.state.versions.borrow().call_untouched(
                    &spec.user,
                    call,
                    entry.version,
                    version,
                )
        });
        if !carried {
            return None;
        }
        entry.version = version;
        self.state
            .record(Some(&spec.user), |c| c.carried_forward += 1);
        Some(entry)
    }
}
