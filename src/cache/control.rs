//! Warming, invalidation and purges, the key listing and statistics: `/api/cache/*` and the
//! write side's hooks.

use super::keys::{self, KeySpec};
use super::memory::Entry;
use super::patch;
use super::policy::Freshness;
use super::{
    CacheControl, CacheStats, KeyInfo, KvTier, Load, MemoryStats, Origin, Runtime, TierSwitches,
    TieredReads, MAX_CACHED_LIMIT, MAX_LISTED_KEYS,
};
use crate::clock::Clock;
use crate::domain::{CallId, LandingView, Limit, PagePosition, PageRequest, UserId, Version};
use crate::error::{AppError, AppResult};
use crate::store::{RefreshAsk, Refreshed};

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime>
    TieredReads<R, K, C, T>
{
    /// Loads `load` unless memory already holds it fresh at the current version; counted as
    /// background work, not as a read.
    async fn warm_one(&self, user: &UserId, load: Load) -> AppResult<()> {
        let spec = load.spec(user);
        let now = self.now();
        let known = self.known_version(user, Version::ZERO, now).await;
        let cached = self.state.memory.borrow().get(spec.logical()).cloned();
        if let (Some(known), Some(e)) = (known, cached) {
            if known.vouched && e.version == known.version && e.life.at(now) == Freshness::Fresh {
                return Ok(());
            }
        }
        self.load_and_remember(&spec, &load).await?;
        self.state.record(Some(user), |c| c.background_loads += 1);
        Ok(())
    }

    /// Warms `user`'s first page and summary (the dashboard's landing view) into every tier.
    pub async fn warm_user(&self, user: &UserId) -> AppResult<()> {
        let first_page = PageRequest {
            limit: Limit::new(crate::domain::DEFAULT_PAGE_LIMIT, MAX_CACHED_LIMIT)
                .ok_or_else(|| AppError::internal("default page limit out of range"))?,
            position: PagePosition::Offset(0),
            filter: crate::domain::CallFilter::none(),
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

    fn user_prefixes(user: &UserId) -> [String; 3] {
        ["recordings", "intent", "enhanced"].map(|p| format!("{}:{p}:user:{user}:", keys::FORMAT))
    }
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime> CacheControl
    for TieredReads<R, K, C, T>
{
    async fn warm(&self, user: &UserId) -> AppResult<()> {
        self.warm_user(user).await
    }

    fn invalidate(&self, user: &UserId, version: Option<Version>) {
        self.invalidate_call(user, None, None, version);
    }

    fn invalidate_call(
        &self,
        user: &UserId,
        call: Option<&crate::domain::CallId>,
        before: Option<Version>,
        after: Option<Version>,
    ) {
        if let Some(after) = after {
            match call {
                Some(_) => self.learn_change(user, call, before, after),
                None => self.learn(user, after),
            }
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

    fn refresh_ask(&self, owner: Option<&UserId>) -> RefreshAsk {
        if !(self.policy.enabled && self.policy.refresh_on_write) {
            return RefreshAsk::default();
        }
        let watched = self.state.watched.borrow().ask(owner, self.now());
        if watched.users.is_empty() || watched.views.is_empty() {
            return RefreshAsk::default();
        }
        let Some(user) = owner else {
            // The owner is known only after the batch: the delivery's call and the owner's
            // aggregates are read whoever it is (a few rows), and views held here patched.
            let aggregates = watched
                .views
                .iter()
                .any(|v| matches!(v, LandingView::Summary(_)));
            return RefreshAsk {
                changed_call: true,
                aggregates,
                ..RefreshAsk::default()
            };
        };
        // A view held here at the version this isolate knows is patched; the rest are read.
        let version = self.view_version(user);
        let (patch, full): (Vec<LandingView>, Vec<LandingView>) =
            watched.views.iter().partition(|view| {
                self.state
                    .memory
                    .borrow()
                    .get(Load::landing(**view).spec(user).logical())
                    .is_some_and(|e| e.version == version && e.payload.is_some())
            });
        RefreshAsk {
            users: if full.is_empty() {
                Vec::new()
            } else {
                watched.users
            },
            views: full,
            changed_call: !patch.is_empty(),
            aggregates: patch.iter().any(|v| matches!(v, LandingView::Summary(_))),
        }
    }

    fn keep_refreshed(
        &self,
        user: &UserId,
        version: Version,
        before: Option<Version>,
        call: Option<&CallId>,
        refreshed: Refreshed,
    ) -> usize {
        self.state
            .record(Some(user), |c| c.refresh_rows_read += refreshed.rows_read);
        let read: Vec<LandingView> = refreshed.views.iter().map(|(v, _)| *v).collect();
        let mut kept = read.len();
        for (view, payload) in refreshed.views {
            self.remember_refreshed(user, &Load::landing(view), payload, version);
        }
        let (Some(changed), Some(before), Some(call)) = (refreshed.changed, before, call) else {
            return kept;
        };
        let watched = self.state.watched.borrow().ask(Some(user), self.now());
        for view in watched.views.into_iter().filter(|v| !read.contains(v)) {
            let load = Load::landing(view);
            let held = self
                .state
                .memory
                .borrow()
                .get(load.spec(user).logical())
                .filter(|e| e.version == before)
                .and_then(|e| e.payload.clone());
            let Some(old) = held else { continue };
            let patched = match view {
                LandingView::FirstPage(limit) => patch::page(&old, limit, call, &changed),
                LandingView::Summary(limit) => patch::summary(&old, limit, call, &changed),
            };
            if let Some(payload) = patched {
                self.state.record(Some(user), |c| c.patched_on_write += 1);
                self.remember_refreshed(user, &load, payload, version);
                kept += 1;
            }
        }
        kept
    }

    async fn purge_user(&self, user: &UserId) -> AppResult<()> {
        let version = self.origin.bump_user(user).await?;
        self.learn(user, version);
        self.forget_user_entries(user);
        self.state.record(Some(user), |c| c.invalidations += 1);
        Ok(())
    }

    async fn purge_all(&self) -> AppResult<()> {
        self.origin.bump_all().await?;
        // Every user's version moved: forgetting them all makes the next read of each ask D1.
        self.state.versions.borrow_mut().forget_all();
        self.state.memory.borrow_mut().clear();
        self.state.record(None, |c| c.invalidations += 1);
        Ok(())
    }

    async fn keys(&self, user: &UserId) -> AppResult<Vec<KeyInfo>> {
        let now = self.now();
        let entries: Vec<(String, Entry)> = {
            let memory = self.state.memory.borrow();
            let mut found: Vec<(String, Entry)> = Self::user_prefixes(user)
                .iter()
                .flat_map(|p| {
                    memory
                        .entries_with_prefix(p)
                        .map(|(k, e)| (k.clone(), e.clone()))
                        .collect::<Vec<_>>()
                })
                .collect();
            crate::sort::sort_by(&mut found, |a, b| a.0.cmp(&b.0));
            found.truncate(MAX_LISTED_KEYS);
            found
        };
        let current = self.view_version(user);
        let mut out = Vec::with_capacity(entries.len());
        for (key, entry) in entries {
            let retired = entry.version < current;
            let in_kv = match KeySpec::from_logical(&key, user) {
                Some(spec) if self.policy.kv_enabled && self.kv_usable(now) => self
                    .kv_result(
                        Some(user),
                        self.kv.get(&spec.kv_key(entry.version)).await,
                        now,
                    )
                    .flatten()
                    .is_some(),
                _ => false,
            };
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
        let (entries, bytes) = match user {
            Some(u) => Self::user_prefixes(u).iter().fold((0, 0), |acc, prefix| {
                memory
                    .entries_with_prefix(prefix)
                    .fold(acc, |(n, b), (k, e)| {
                        (n + 1, b + k.len() as u64 + e.bytes())
                    })
            }),
            None => (memory.len(), memory.bytes()),
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
