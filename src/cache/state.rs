//! What one isolate remembers between requests: the memory tier, its view of users' versions,
//! the KV breaker, loads in flight and counters. Every map here is bounded. On Workers there is one per
//! isolate (a thread-local); tests make as many as they need, one per simulated isolate.

use super::bounded::Bounded;
use super::keys::KeySpec;
use super::memory::{Entry, MemoryTier};
use super::policy::{Breaker, Policy};
use crate::domain::{CallId, UserId, Version};
use crate::indexed::IndexedMap;
use std::cell::{Cell, RefCell};
use std::rc::Rc;

/// Counters, for `GET /api/cache/stats`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub hits_memory: u64,
    pub hits_kv: u64,
    pub misses: u64,
    /// Of the misses: for one call's key (detail, analysis, enrichment), and those where
    /// memory held the key at an older version that a change had retired.
    pub misses_call_scoped: u64,
    pub misses_retired: u64,
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
    /// Reads of users' versions from D1 (round trips), apart from data loads, and the rows
    /// they read.
    pub version_syncs: u64,
    pub version_rows_read: u64,
    /// Entries a webhook's own batch read back for a watched user (refresh on write).
    pub refreshed_on_write: u64,
    /// Of those, views held here patched with the one call the webhook changed.
    pub patched_on_write: u64,
    /// KV writes of refreshed views left out because a newer refresh of the same view came
    /// within `CACHE_REFRESH_KV_DELAY_MS` (or memory held a newer version by then).
    pub kv_writes_coalesced: u64,
    /// Rows those read-backs cost, in the webhooks' own batches.
    pub refresh_rows_read: u64,
    /// Entries for a call kept at a newer version of its user because no change since was
    /// about that call.
    pub carried_forward: u64,
}

crate::json_object!(Counters {
    "hitsMemory": hits_memory,
    "hitsKv": hits_kv,
    "misses": misses,
    "missesCallScoped": misses_call_scoped,
    "missesRetired": misses_retired,
    "staleServed": stale_served,
    "bypassed": bypassed,
    "coalesced": coalesced,
    "d1Queries": d1_queries,
    "d1RowsRead": d1_rows_read,
    "d1RowsAvoided": d1_rows_avoided,
    "kvErrors": kv_errors,
    "invalidations": invalidations,
    "backgroundLoads": background_loads,
    "versionSyncs": version_syncs,
    "versionRowsRead": version_rows_read,
    "refreshedOnWrite": refreshed_on_write,
    "patchedOnWrite": patched_on_write,
    "kvWritesCoalesced": kv_writes_coalesced,
    "refreshRowsRead": refresh_rows_read,
    "carriedForward": carried_forward,
});

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
    pub per_user: IndexedMap<UserId, Counters>,
}

impl Stats {
    pub fn record(&mut self, user: Option<&UserId>, f: impl Fn(&mut Counters)) {
        self.total.add(&f);
        if let Some(user) = user {
            if self.per_user.len() >= MAX_TRACKED_USERS && !self.per_user.contains_key(user) {
                self.per_user.clear();
            }
            self.per_user
                .get_or_insert_with(user, Counters::default)
                .add(&f);
        }
    }
}

/// What this isolate knows of one user's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub version: Version,
    /// When D1 last told us (the start of that read: the answer reflects every write
    /// acknowledged before it), epoch ms; `i64::MIN` when only learned otherwise.
    pub synced_at: i64,
    /// The version feed position (`migrations/0009`) this knowledge is complete through:
    /// `version` includes every change of the user's up to it. 0 when unknown. A feed read
    /// from exactly here re-vouches the user without asking for them by name.
    pub through: u64,
    /// Which call each recent change was about, so an entry for a call no change touched
    /// stays valid at the newer version.
    pub log: CallLog,
}

/// [`Seen`] without its call log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub version: Version,
    pub synced_at: i64,
    pub through: u64,
}

/// Spans of changes logged per user at most; older ones raise the floor.
pub const MAX_LOGGED_CHANGES: usize = 16;

/// What a span of a user's changes was about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum About {
    Call(CallId),
    /// Any of the user's data (an operator purge, a change the log could not name).
    Any,
    /// Not known yet: learned without the call (a sync by name, a write seen out of order);
    /// the version feed fills it in when it lists those changes.
    Unknown,
}

/// The user's changes between `floor` and the view's version, as contiguous spans
/// `(lo, hi]` of versions, each with what it was about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallLog {
    pub floor: Version,
    pub spans: Vec<(Version, Version, About)>,
}

impl CallLog {
    fn starting_at(version: Version) -> Self {
        Self {
            floor: version,
            spans: Vec::new(),
        }
    }

    fn top(&self) -> Version {
        self.spans.last().map_or(self.floor, |s| s.1)
    }

    /// Appends `(top, to]`, about `about`.
    fn extend(&mut self, to: Version, about: About) {
        let top = self.top();
        if to > top {
            self.spans.push((top, to, about));
            if self.spans.len() > MAX_LOGGED_CHANGES {
                let (_, hi, _) = self.spans.remove(0);
                self.floor = hi;
            }
        }
    }

    /// Says what `(lo, hi]` was about, where the log only had it as unknown.
    fn fill(&mut self, lo: Version, hi: Version, about: About) {
        let Some(at) = self
            .spans
            .iter()
            .position(|(l, h, a)| *a == About::Unknown && *l <= lo && hi <= *h && lo < hi)
        else {
            return;
        };
        let (l, h, _) = self.spans.remove(at);
        let mut parts = Vec::with_capacity(3);
        if l < lo {
            parts.push((l, lo, About::Unknown));
        }
        parts.push((lo, hi, about));
        if hi < h {
            parts.push((hi, h, About::Unknown));
        }
        for (i, part) in parts.into_iter().enumerate() {
            self.spans.insert(at + i, part);
        }
        while self.spans.len() > MAX_LOGGED_CHANGES {
            let (_, hi, _) = self.spans.remove(0);
            self.floor = hi;
        }
    }

    /// Whether nothing after version `at` was about `call` — so what `call`'s keys held at
    /// `at` they still hold. False when `at` is below what the log covers, or when something
    /// since is about any data or not known.
    pub fn untouched(&self, call: &CallId, at: Version) -> bool {
        at >= self.floor
            && self
                .spans
                .iter()
                .filter(|(_, hi, _)| *hi > at)
                .all(|(_, _, about)| matches!(about, About::Call(c) if c != call))
    }
}

/// This isolate's view of users' versions, bounded. Versions only move up: a view never goes
/// back to a version it has moved past. Forgetting a user is safe — the next read of that
/// user finds no recent sync and asks D1 before answering.
pub struct VersionView {
    seen: Bounded<UserId, Seen>,
}

impl VersionView {
    pub fn new(max_users: usize) -> Self {
        Self {
            seen: Bounded::with_len(max_users),
        }
    }

    pub fn get(&self, user: &UserId) -> Option<Seen> {
        self.seen.get(user).cloned()
    }

    /// What every read asks of the view, without copying the call log.
    pub fn head(&self, user: &UserId) -> Option<Head> {
        self.seen.get(user).map(|s| Head {
            version: s.version,
            synced_at: s.synced_at,
            through: s.through,
        })
    }

    /// Whether `user`'s keys for `call` held at version `at` still hold at `version`, the
    /// view's current one (see [`CallLog::untouched`]).
    pub fn call_untouched(
        &self,
        user: &UserId,
        call: &CallId,
        at: Version,
        version: Version,
    ) -> bool {
        self.seen
            .get(user)
            .is_some_and(|s| s.version == version && s.log.untouched(call, at))
    }

    /// D1 said `version` in a read that started at `started_at`, complete through feed
    /// position `through` (versions are cumulative, so the larger version is complete through
    /// the larger position of the two). Such a read does not say which calls changed: a
    /// newer version starts the call log afresh.
    pub fn synced(&mut self, user: &UserId, version: Version, started_at: i64, through: u64) {
        let next = match self.get(user) {
            Some(s) => Seen {
                version: s.version.max(version),
                synced_at: s.synced_at.max(started_at),
                through: s.through.max(through),
                log: {
                    let mut log = s.log;
                    log.extend(version, About::Unknown);
                    log
                },
            },
            None => Seen {
                version,
                synced_at: started_at,
                through,
                log: CallLog::starting_at(version),
            },
        };
        self.seen.insert(user.clone(), next);
    }

    /// The feed listed a change of `user`'s, about `call` (`None`: any of the user's data),
    /// to `version`; the user's knowledge is complete up to just before it (`chained`), so
    /// the log stays complete — and a change the view already knew of fills in its span.
    pub fn logged(&mut self, user: &UserId, call: Option<CallId>, version: Version) {
        let Some(before) = version.get().checked_sub(1).map(Version::new) else {
            return; // version 0: the row was created, nothing written yet
        };
        let about = call.map_or(About::Any, About::Call);
        if let Some(s) = self.seen.peek_mut(user) {
            if version > s.version {
                s.log.extend(before, About::Unknown);
                s.log.extend(version, about);
                s.version = version;
            } else {
                s.log.fill(before, version, about);
            }
        }
    }

    /// A write made here moved `user` from `before` to `after`, about `call`. Writes may be
    /// heard out of order: a gap below `before` is logged as unknown (the feed fills it in),
    /// and a write heard after a later one fills in its own span.
    pub fn learn_change(
        &mut self,
        user: &UserId,
        call: Option<CallId>,
        before: Option<Version>,
        after: Version,
    ) {
        let about = call.map_or(About::Any, About::Call);
        let Some(before) = before.filter(|b| *b < after) else {
            self.learn(user, after);
            return;
        };
        match self.seen.peek_mut(user) {
            Some(s) if s.version <= before => {
                s.log.extend(before, About::Unknown);
                s.log.extend(after, about);
                s.version = after;
            }
            Some(s) if s.version >= after => s.log.fill(before, after, about),
            _ => self.learn(user, after),
        }
    }

    /// A feed read that started at `started_at` found no change of these users' after the
    /// position they were complete through (`from`): they are now complete through `through`,
    /// and, when the read listed every change (`complete`), vouched for as of `started_at`.
    pub fn vouch_unchanged(&mut self, from: u64, through: u64, started_at: i64, complete: bool) {
        let chained: Vec<UserId> = self
            .seen
            .iter()
            .filter(|(_, s)| s.through >= from)
            .map(|(u, _)| u.clone())
            .collect();
        for user in chained {
            if let Some(s) = self.seen.peek_mut(&user) {
                s.through = s.through.max(through);
                if complete {
                    s.synced_at = s.synced_at.max(started_at);
                }
            }
        }
    }

    /// A newer version learned without a sync (a write here, an entry another isolate
    /// stored): raises the version, leaves the sync time alone; what the changes since were
    /// about is not known (until the feed says).
    pub fn learn(&mut self, user: &UserId, version: Version) {
        let next = match self.get(user) {
            Some(s) if version <= s.version => return,
            Some(s) => Seen {
                version,
                synced_at: s.synced_at,
                through: s.through,
                log: {
                    let mut log = s.log;
                    log.extend(version, About::Unknown);
                    log
                },
            },
            None => Seen {
                version,
                synced_at: i64::MIN,
                through: 0,
                log: CallLog::starting_at(version),
            },
        };
        self.seen.insert(user.clone(), next);
    }

    pub fn forget_all(&mut self) {
        self.seen.clear();
    }

    pub fn len(&self) -> usize {
        self.seen.len()
    }

    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }
}

/// Keys being loaded from D1 right now by some request of this isolate, bounded: past the
/// bound a load simply goes unmarked (its followers load too), which costs D1 reads, never
/// correctness.
pub struct Inflight {
    /// A set, as a map to nothing: an [`IndexedMap`] keyed by `String` shares its table code
    /// with the crate's others.
    keys: IndexedMap<String, ()>,
    max: usize,
}

impl Inflight {
    pub fn new(max: usize) -> Self {
        Self {
            keys: IndexedMap::new(),
            max,
        }
    }

    /// Marks `key`; false when it is already marked or the set is full.
    pub fn insert(&mut self, key: &str) -> bool {
        if self.keys.len() >= self.max || self.keys.contains_key(key) {
            return false;
        }
        self.keys.insert(key.to_owned(), ()).is_none()
    }

    pub fn contains(&self, key: &str) -> bool {
        self.keys.contains_key(key)
    }

    pub fn remove(&mut self, key: &str) {
        self.keys.remove(key);
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Clears an in-flight mark when the load that set it ends — however it ends, including a
/// request cancelled mid-load (its future is dropped, and this with it).
pub struct InflightGuard {
    state: Rc<CacheState>,
    key: String,
}

impl InflightGuard {
    /// Marks `key` in flight; `None` when someone else holds it (or the set is full).
    pub fn lead(state: &Rc<CacheState>, key: &str) -> Option<Self> {
        state.inflight.borrow_mut().insert(key).then(|| Self {
            state: state.clone(),
            key: key.to_owned(),
        })
    }
}

impl Drop for InflightGuard {
    fn drop(&mut self) {
        self.state.inflight.borrow_mut().remove(&self.key);
    }
}

/// Where this isolate stands in the version feed (`migrations/0009`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Feed {
    /// The position every chained view entry is complete through; meaningful once `epoch`
    /// is known.
    pub through: u64,
    /// The purge epoch at the last feed read; `None` before the first.
    pub epoch: Option<u64>,
    /// When the last feed read started (epoch ms), and whether one is scheduled or running.
    pub started_at: i64,
    pub scheduled: bool,
}

/// Users whose view is due for a background sync (busy users, before their view gets old),
/// bounded; synced together, one query for all.
#[derive(Default)]
pub struct DueForSync {
    pub users: Vec<UserId>,
    /// A background sync is scheduled or running.
    pub scheduled: bool,
}

/// Bounds of the per-isolate maps.
pub const MAX_VIEWED_USERS: usize = 10_000;
pub const MAX_INFLIGHT: usize = 1_024;
pub const MAX_DUE_FOR_SYNC: usize = 500;

pub struct CacheState {
    pub memory: RefCell<MemoryTier>,
    pub versions: RefCell<VersionView>,
    pub breaker: Cell<Breaker>,
    pub inflight: RefCell<Inflight>,
    pub due: RefCell<DueForSync>,
    pub stats: RefCell<Stats>,
    /// Landing views read recently here (refresh on write).
    pub watched: RefCell<super::landing::Watched>,
    pub feed: Cell<Feed>,
    /// Refreshed views waiting for their KV write, by logical key (`read::write_behind`).
    pub waiting_writes: RefCell<IndexedMap<String, WaitingWrite>>,
}

/// Views waiting for their KV write at most: refreshed views are watched ones
/// (`landing::MAX_WATCHED_USERS` users, 4 views each), and each waits seconds at most.
/// Past it, a refreshed view is kept in memory only.
pub const MAX_WAITING_WRITES: usize = 4096;

/// A refreshed view's newest entry, waiting for its KV write, and the task waiting to write
/// it.
pub struct WaitingWrite {
    pub spec: KeySpec,
    pub entry: Entry,
    /// When this entry was refreshed: it is written once no newer refresh of the view has
    /// come for the delay after it.
    pub refreshed_at: i64,
    /// When the task now waiting for this view started; `None` when none is (it was
    /// canceled: the next refresh starts another).
    pub task_since: Option<i64>,
}

impl CacheState {
    pub fn new(policy: &Policy) -> Self {
        Self::with_view_bound(policy, MAX_VIEWED_USERS)
    }

    /// As `new`, with the version view bounded to `max_users` (tests use small bounds).
    pub fn with_view_bound(policy: &Policy, max_users: usize) -> Self {
        Self {
            memory: RefCell::new(MemoryTier::new(
                policy.memory_max_bytes,
                policy.memory_max_entries,
            )),
            versions: RefCell::new(VersionView::new(max_users)),
            breaker: Cell::new(Breaker::default()),
            inflight: RefCell::new(Inflight::new(MAX_INFLIGHT)),
            due: RefCell::new(DueForSync::default()),
            stats: RefCell::new(Stats::default()),
            watched: RefCell::new(super::landing::Watched::default()),
            feed: Cell::new(Feed {
                started_at: i64::MIN,
                ..Feed::default()
            }),
            waiting_writes: RefCell::new(IndexedMap::new()),
        }
    }

    pub fn record(&self, user: Option<&UserId>, f: impl Fn(&mut Counters)) {
        self.stats.borrow_mut().record(user, f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    #[test]
    fn a_view_never_moves_back_whatever_order_it_hears_in() {
        let mut v = VersionView::new(10);
        v.synced(&u("ada"), Version::new(7), 1_000, 0);
        v.synced(&u("ada"), Version::new(5), 2_000, 0);
        assert_eq!(
            v.get(&u("ada")),
            Some(Seen {
                version: Version::new(7),
                synced_at: 2_000,
                through: 0,
                log: CallLog::starting_at(Version::new(7)),
            })
        );
        v.learn(&u("ada"), Version::new(9));
        v.synced(&u("ada"), Version::new(8), 1_500, 0);
        assert_eq!(
            v.get(&u("ada")),
            Some(Seen {
                version: Version::new(9),
                synced_at: 2_000,
                through: 0,
                log: CallLog {
                    floor: Version::new(7),
                    spans: vec![(Version::new(7), Version::new(9), About::Unknown)],
                },
            })
        );
    }

    fn call(s: &str) -> CallId {
        CallId::parse(s).expect("id")
    }

    #[test]
    fn a_call_log_carries_only_calls_no_change_was_about_and_fills_in_what_it_learned_late() {
        let mut v = VersionView::new(10);
        let v_ = Version::new;
        v.synced(&u("ada"), v_(10), 0, 1);
        v.learn_change(&u("ada"), Some(call("A")), Some(v_(11)), v_(12)); // heard before 10→11
        let log = v.get(&u("ada")).expect("seen").log;
        assert!(!log.untouched(&call("B"), v_(10)), "10→11 is not known yet");
        assert!(log.untouched(&call("B"), v_(11)));
        assert!(!log.untouched(&call("A"), v_(11)));
        v.learn_change(&u("ada"), Some(call("B")), Some(v_(10)), v_(11)); // heard late
        let log = v.get(&u("ada")).expect("seen").log;
        assert!(log.untouched(&call("C"), v_(10)));
        assert!(!log.untouched(&call("B"), v_(10)));
        v.logged(&u("ada"), None, v_(13)); // a purge
        assert!(!v
            .get(&u("ada"))
            .expect("seen")
            .log
            .untouched(&call("C"), v_(10)));
        assert!(
            !v.get(&u("ada"))
                .expect("seen")
                .log
                .untouched(&call("C"), v_(9)),
            "below the floor"
        );
        v.learn(&u("ada"), v_(15));
        v.logged(&u("ada"), Some(call("A")), v_(14));
        v.logged(&u("ada"), Some(call("A")), v_(15));
        let log = v.get(&u("ada")).expect("seen").log;
        assert!(
            log.untouched(&call("C"), v_(13)),
            "the feed filled 13→15 in"
        );
        assert_eq!(v.get(&u("ada")).map(|s| s.version), Some(v_(15)));
    }

    #[test]
    fn a_call_log_is_bounded_and_raises_its_floor() {
        let mut v = VersionView::new(10);
        v.synced(&u("ada"), Version::new(0), 0, 1);
        for n in 1..=40u64 {
            v.logged(&u("ada"), Some(call(&format!("C{n}"))), Version::new(n));
        }
        let log = v.get(&u("ada")).expect("seen").log;
        assert_eq!(log.spans.len(), MAX_LOGGED_CHANGES);
        assert!(!log.untouched(&call("Z"), Version::new(1)));
        assert!(log.untouched(&call("Z"), Version::new(30)));
    }

    #[test]
    fn a_learned_version_does_not_count_as_a_sync() {
        let mut v = VersionView::new(10);
        v.learn(&u("bob"), Version::new(3));
        assert_eq!(v.get(&u("bob")).map(|s| s.synced_at), Some(i64::MIN));
    }

    #[test]
    fn the_view_is_bounded_and_forgets_rather_than_grows() {
        let mut v = VersionView::new(100);
        for i in 0..10_000 {
            v.synced(&u(&format!("user{i}")), Version::new(1), i, 0);
        }
        assert!(v.len() <= 100, "{} users held", v.len());
    }

    #[test]
    fn an_inflight_mark_is_released_when_its_guard_is_dropped() {
        let state = Rc::new(CacheState::new(&Policy::default()));
        {
            let guard = InflightGuard::lead(&state, "k");
            assert!(guard.is_some());
            assert!(InflightGuard::lead(&state, "k").is_none(), "one leader");
        }
        assert!(!state.inflight.borrow().contains("k"), "released on drop");
    }

    #[test]
    fn the_inflight_set_is_bounded() {
        let mut set = Inflight::new(2);
        assert!(set.insert("a") && set.insert("b"));
        assert!(!set.insert("c"), "full: the load goes unmarked");
        assert_eq!(set.len(), 2);
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
