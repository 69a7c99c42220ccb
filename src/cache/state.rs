//! What one isolate remembers between requests: the memory tier, its view of the invalidation
//! generations, the KV breaker, loads in flight and counters. On Workers there is one per
//! isolate (a thread-local); tests make as many as they need, one per simulated isolate.

use super::memory::MemoryTier;
use super::policy::{Breaker, Policy};
use crate::domain::UserId;
use serde::Serialize;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};

/// Counters, for `GET /api/cache/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Counters {
    pub hits_memory: u64,
    pub hits_kv: u64,
    pub misses: u64,
    pub stale_served: u64,
    pub bypassed: u64,
    pub coalesced: u64,
    pub d1_queries: u64,
    pub d1_rows_read: u64,
    pub d1_rows_avoided: u64,
    pub kv_errors: u64,
    pub invalidations: u64,
    /// Loads made off the request path: background refreshes and warming.
    pub background_loads: u64,
}

impl Counters {
    fn add(&mut self, f: impl Fn(&mut Counters)) {
        f(self);
    }
}

/// Per-user counters are kept for this many users at most (then reset), so stats cannot grow
/// without bound in a long-lived isolate.
const MAX_TRACKED_USERS: usize = 10_000;

#[derive(Debug, Default)]
pub struct Stats {
    pub total: Counters,
    pub per_user: HashMap<UserId, Counters>,
}

impl Stats {
    pub fn record(&mut self, user: Option<&UserId>, f: impl Fn(&mut Counters)) {
        self.total.add(&f);
        if let Some(user) = user {
            if self.per_user.len() >= MAX_TRACKED_USERS && !self.per_user.contains_key(user) {
                self.per_user.clear();
            }
            self.per_user.entry(user.clone()).or_default().add(&f);
        }
    }
}

/// This isolate's view of one generation counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenSeen {
    pub value: u64,
    /// When it was last read from KV (or set here by an invalidation), epoch ms.
    pub synced_at: i64,
}

/// Generations are only compared for equality, and only ever move up: a view never goes back
/// to a value it has moved past, so a lagging KV read cannot revive retired entries.
#[derive(Debug, Default)]
pub struct GenView {
    seen: HashMap<String, GenSeen>,
}

const MAX_GEN_KEYS: usize = 50_000;

impl GenView {
    pub fn get(&self, key: &str) -> Option<GenSeen> {
        self.seen.get(key).copied()
    }

    /// Merges a value read from KV (absent = 0).
    pub fn observe(&mut self, key: &str, value: u64, now: i64) {
        if self.seen.len() >= MAX_GEN_KEYS && !self.seen.contains_key(key) {
            self.seen.clear();
        }
        let e = self.seen.entry(key.to_owned()).or_insert(GenSeen {
            value,
            synced_at: now,
        });
        e.value = e.value.max(value);
        e.synced_at = now;
    }

    /// Moves a generation past everything seen so far; returns the new value.
    pub fn bump(&mut self, key: &str, now: i64) -> u64 {
        let current = self.seen.get(key).map_or(0, |g| g.value);
        let next = (now.max(0) as u64).max(current + 1);
        self.seen.insert(
            key.to_owned(),
            GenSeen {
                value: next,
                synced_at: now,
            },
        );
        next
    }
}

/// A generation write to KV, rate-limited to one per key per second.
#[derive(Debug, Clone, Copy, Default)]
pub struct GenWrite {
    pub last_write_at: i64,
    pub pending: bool,
}

pub struct CacheState {
    pub memory: RefCell<MemoryTier>,
    pub gens: RefCell<GenView>,
    pub breaker: Cell<Breaker>,
    /// Versioned keys being loaded from D1 right now by some request of this isolate.
    pub inflight: RefCell<HashSet<String>>,
    pub stats: RefCell<Stats>,
    pub gen_writes: RefCell<HashMap<String, GenWrite>>,
}

impl CacheState {
    pub fn new(policy: &Policy) -> Self {
        Self {
            memory: RefCell::new(MemoryTier::new(
                policy.memory_max_bytes,
                policy.memory_max_entries,
            )),
            gens: RefCell::new(GenView::default()),
            breaker: Cell::new(Breaker::default()),
            inflight: RefCell::new(HashSet::new()),
            stats: RefCell::new(Stats::default()),
            gen_writes: RefCell::new(HashMap::new()),
        }
    }

    pub fn record(&self, user: Option<&UserId>, f: impl Fn(&mut Counters)) {
        self.stats.borrow_mut().record(user, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generation_never_moves_back_when_kv_lags() {
        let mut v = GenView::default();
        let bumped = v.bump("gen:u", 1_000);
        v.observe("gen:u", 5, 2_000);
        assert_eq!(v.get("gen:u").map(|g| g.value), Some(bumped));
        v.observe("gen:u", bumped + 7, 3_000);
        assert_eq!(v.get("gen:u").map(|g| g.value), Some(bumped + 7));
    }

    #[test]
    fn bumps_are_strictly_increasing_even_within_one_millisecond() {
        let mut v = GenView::default();
        let a = v.bump("g", 10);
        let b = v.bump("g", 10);
        assert!(b > a);
    }

    #[test]
    fn per_user_counters_add_to_the_total() {
        let mut s = Stats::default();
        let ada = UserId::parse("ada").expect("valid");
        s.record(Some(&ada), |c| c.hits_memory += 1);
        s.record(None, |c| c.misses += 1);
        assert_eq!(s.total.hits_memory, 1);
        assert_eq!(s.total.misses, 1);
        assert_eq!(s.per_user[&ada].hits_memory, 1);
        assert_eq!(s.per_user[&ada].misses, 0);
    }
}
