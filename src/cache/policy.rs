//! The cache's timing policy as pure functions of an entry's timestamps and `now`.

/// Settings for one isolate's cache, from vars (see `Policy::from_config`).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub enabled: bool,
    pub memory_enabled: bool,
    pub kv_enabled: bool,
    /// Seconds an entry is fresh, per kind.
    pub ttl_recordings: u32,
    pub ttl_intent: u32,
    pub ttl_enhanced: u32,
    pub ttl_summary: u32,
    /// Seconds a summary over days that have all ended is fresh. Its days only change by a
    /// write — a late call, a re-analysis, a deletion — and every write retires it by version
    /// anyway; the TTL only bounds how long an entry nobody asks for again holds memory and
    /// KV, and dashboards comparing past periods ask for the same ones again and again.
    pub ttl_past_range: u32,
    /// Seconds a 404 is remembered.
    pub ttl_not_found: u32,
    /// Past this fraction of its TTL an entry is served and refreshed in the background.
    pub refresh_ratio: f64,
    /// Seconds past expiry an entry may still be served when D1 fails (fail-safe).
    pub grace: u32,
    /// ± this fraction of the TTL is added at random, so entries loaded together do not
    /// expire together.
    pub jitter: f64,
    /// How long this isolate trusts its view of a user's version before asking D1 again: the
    /// staleness bound across isolates, in ms (`CACHE_SYNC_MS`).
    pub sync_ms: i64,
    pub memory_max_bytes: u64,
    pub memory_max_entries: u64,
    /// Consecutive KV failures that open the breaker, and how long it stays open (ms).
    pub breaker_failures: u32,
    pub breaker_open_ms: i64,
    /// How long a follower waits for another request's load of the same key (ms) before
    /// loading itself, and how often it looks.
    pub follower_wait_ms: u32,
    pub follower_poll_ms: u32,
    /// A D1 load slower than this serves a stale entry instead, when there is one (ms).
    pub soft_timeout_ms: u32,
    /// Warm a user's first page and summary right after a webhook invalidates them.
    pub warm_after_invalidate: bool,
    /// Refresh on write: a webhook's own batch reads back the landing views of its owner when
    /// this isolate saw them read within the watch window (`CACHE_REFRESH_ON_WRITE`).
    pub refresh_on_write: bool,
    /// How long a refreshed view's KV copy waits for a pause in its refreshes (ms,
    /// `CACHE_REFRESH_KV_DELAY_MS`): a newer refresh of the same view within it is written
    /// instead, so a burst of webhooks for one user costs one KV write per view (at the
    /// latest 10 s after the first refresh waiting, `read::MAX_WRITE_WAIT_MS`).
    pub refresh_kv_delay_ms: u32,
    /// Log one structured line per request.
    pub debug: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            enabled: true,
            memory_enabled: true,
            kv_enabled: true,
            ttl_recordings: 300,
            ttl_intent: 600,
            ttl_enhanced: 1800,
            ttl_summary: 120,
            ttl_past_range: 3600,
            ttl_not_found: 30,
            refresh_ratio: 0.8,
            grace: 3600,
            jitter: 0.1,
            sync_ms: 5_000,
            // Under half a 128 MB isolate: the module, the heap's other users and a response
            // in flight fit in the rest. An entry's data is held once, inside the body its
            // last hit sent (`reads::Payload::body`); when a hit's body was a second copy,
            // 32 MiB of entries and 16 MiB of those copies held 96 % of the bench's mixed
            // reads (1,000 users, Zipf) in the same 48 MiB that now holds all of them.
            memory_max_bytes: 48 * 1024 * 1024,
            memory_max_entries: 10_000,
            breaker_failures: 3,
            breaker_open_ms: 30_000,
            follower_wait_ms: 250,
            follower_poll_ms: 5,
            soft_timeout_ms: 1_500,
            warm_after_invalidate: false,
            refresh_on_write: true,
            refresh_kv_delay_ms: 1_000,
            debug: false,
        }
    }
}

/// Where an entry stands at a given instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it, and refresh it in the background.
    Refresh,
    /// Expired: serve only if D1 fails or is too slow.
    Stale,
    /// Past its grace period: useless.
    Dead,
}

/// An entry's life, in absolute epoch ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetime {
    pub stored_at: i64,
    pub refresh_at: i64,
    pub expires_at: i64,
    pub stale_until: i64,
}

impl Policy {
    /// The lifetime of an entry loaded at `now` with a TTL of `ttl_secs`; `unit` in [0, 1)
    /// picks the jitter.
    pub fn lifetime(&self, now: i64, ttl_secs: u32, unit: f64) -> Lifetime {
        let ttl_ms = f64::from(ttl_secs) * 1000.0;
        let jittered = ttl_ms * (1.0 + self.jitter * (2.0 * unit - 1.0));
        let ttl = jittered.max(1000.0) as i64;
        Lifetime {
            stored_at: now,
            refresh_at: now + (ttl as f64 * self.refresh_ratio) as i64,
            expires_at: now + ttl,
            stale_until: now + ttl + i64::from(self.grace) * 1000,
        }
    }

    /// The KV `expirationTtl` for an entry: it must outlive the grace period, and KV refuses
    /// anything under 60 s.
    pub fn kv_ttl_secs(&self, life: &Lifetime, now: i64) -> u64 {
        (((life.stale_until - now) + 999) / 1000).max(60) as u64
    }
}

impl Lifetime {
    pub fn at(&self, now: i64) -> Freshness {
        if now < self.refresh_at {
            Freshness::Fresh
        } else if now < self.expires_at {
            Freshness::Refresh
        } else if now < self.stale_until {
            Freshness::Stale
        } else {
            Freshness::Dead
        }
    }
}

/// A per-isolate circuit breaker on KV: after `failures` consecutive errors, KV is skipped for
/// `open_ms`; then one call is let through to probe it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    consecutive_failures: u32,
    open_until: i64,
}

impl Breaker {
    pub fn allows(&self, now: i64) -> bool {
        now >= self.open_until
    }

    pub fn is_open(&self, now: i64) -> bool {
        !self.allows(now)
    }

    pub fn success(&mut self) {
        self.consecutive_failures = 0;
    }

    pub fn failure(&mut self, now: i64, policy: &Policy) {
        self.consecutive_failures += 1;
        if self.consecutive_failures >= policy.breaker_failures {
            self.open_until = now + policy.breaker_open_ms;
            self.consecutive_failures = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_fresh_then_refreshing_then_stale_then_dead() {
        let p = Policy {
            jitter: 0.0,
            grace: 60,
            ..Policy::default()
        };
        let life = p.lifetime(0, 100, 0.5);
        assert_eq!(life.at(0), Freshness::Fresh);
        assert_eq!(life.at(79_999), Freshness::Fresh);
        assert_eq!(life.at(80_000), Freshness::Refresh);
        assert_eq!(life.at(99_999), Freshness::Refresh);
        assert_eq!(life.at(100_000), Freshness::Stale);
        assert_eq!(life.at(159_999), Freshness::Stale);
        assert_eq!(life.at(160_000), Freshness::Dead);
    }

    #[test]
    fn jitter_spreads_expiry_within_ten_percent() {
        let p = Policy::default();
        let low = p.lifetime(0, 300, 0.0).expires_at;
        let high = p.lifetime(0, 300, 0.999_999).expires_at;
        let mid = p.lifetime(0, 300, 0.5).expires_at;
        assert_eq!(low, 270_000);
        assert!((329_999..=330_000).contains(&high));
        assert_eq!(mid, 300_000);
    }

    #[test]
    fn kv_entries_outlive_their_grace_and_never_ask_for_less_than_sixty_seconds() {
        let p = Policy {
            jitter: 0.0,
            grace: 0,
            ..Policy::default()
        };
        let short = p.lifetime(0, 30, 0.5);
        assert_eq!(p.kv_ttl_secs(&short, 0), 60);
        let long = Policy::default().lifetime(0, 300, 0.5);
        assert_eq!(Policy::default().kv_ttl_secs(&long, 0), 300 + 3600);
    }

    #[test]
    fn the_breaker_opens_after_consecutive_failures_and_closes_after_its_window() {
        let p = Policy::default();
        let mut b = Breaker::default();
        b.failure(0, &p);
        b.failure(1, &p);
        assert!(b.allows(2));
        b.failure(2, &p);
        assert!(b.is_open(3));
        assert!(b.is_open(30_001));
        assert!(b.allows(30_002));
    }

    #[test]
    fn a_success_resets_the_failure_count() {
        let p = Policy::default();
        let mut b = Breaker::default();
        b.failure(0, &p);
        b.failure(0, &p);
        b.success();
        b.failure(0, &p);
        assert!(b.allows(1));
    }
}
