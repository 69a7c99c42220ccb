//! The cache policy driven by hand: a manual clock, an in-memory KV that can fail, a runtime
//! whose background work runs when the test says, and the real store on SQLite as origin (its
//! triggers move the versions). Two `CacheState`s sharing one KV and one database are two
//! isolates. Randomised interleavings of many isolates are in `sim.rs`.

use super::testing::{FakeKv, TestRuntime, YieldOnce};
use super::*;
use crate::clock::ManualClock;
use crate::domain::{CallId, CallStatus, Limit, PagePosition, PageRequest, UserId};
use crate::reads::{Outcome, Source};
use crate::store::sqlite::SqliteDatabase;
use crate::store::{CallDeletion, Store, VersionSource};
use crate::testing::{block_on, insert_call, SeedCall};
use std::cell::{Cell, RefCell};

const T0: i64 = 1_800_000_000_000;

/// The store, optionally slowed (yields once per load), failing, and with a hook run after
/// each load.
struct Origin {
    store: Store<SqliteDatabase>,
    slow: Cell<bool>,
    /// Every D1 call fails, version reads included.
    down: Cell<bool>,
    after_load: RefCell<Option<Box<dyn Fn()>>>,
}

impl Origin {
    async fn around<T>(&self, f: impl Future<Output = AppResult<T>>) -> AppResult<T> {
        if self.down.get() {
            return Err(AppError::unavailable("D1_ERROR: injected"));
        }
        let out = f.await;
        if self.slow.get() {
            YieldOnce(false).await;
        }
        if let Some(hook) = self.after_load.borrow().as_ref() {
            hook();
        }
        out
    }
}

impl ReadModel for Origin {
    async fn call_page(
        &self,
        u: &UserId,
        p: &PageRequest,
        v: Version,
    ) -> AppResult<Served<Payload>> {
        self.around(self.store.call_page(u, p, v)).await
    }
    async fn call_detail(
        &self,
        u: &UserId,
        c: &CallId,
        v: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.around(self.store.call_detail(u, c, v)).await
    }
    async fn call_enrichment(
        &self,
        u: &UserId,
        c: &CallId,
        v: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.around(self.store.call_enrichment(u, c, v)).await
    }
    async fn call_analysis(
        &self,
        u: &UserId,
        c: &CallId,
        v: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.around(self.store.call_analysis(u, c, v)).await
    }
    async fn intent_summary(
        &self,
        u: &UserId,
        l: &crate::domain::SummaryRequest,
        v: Version,
    ) -> AppResult<Served<Payload>> {
        self.around(self.store.intent_summary(u, l, v)).await
    }
    fn usage(&self) -> crate::store::Usage {
        self.store.usage()
    }
}

impl VersionSource for Origin {
    async fn current_versions(&self, users: &[UserId]) -> AppResult<Vec<Version>> {
        if self.down.get() {
            return Err(AppError::unavailable("D1_ERROR: injected"));
        }
        self.store.current_versions(users).await
    }
    async fn version_changes(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> AppResult<crate::store::VersionChanges> {
        if self.down.get() {
            return Err(AppError::unavailable("D1_ERROR: injected"));
        }
        self.store.version_changes(after, limit).await
    }
    async fn bump_user(&self, user: &UserId) -> AppResult<Version> {
        self.store.bump_user(user).await
    }
    async fn bump_all(&self) -> AppResult<()> {
        self.store.bump_all().await
    }
}

type Cache = TieredReads<Origin, FakeKv, Rc<ManualClock>, TestRuntime>;

struct World {
    origin: Rc<Origin>,
    kv: Rc<FakeKv>,
    clock: Rc<ManualClock>,
    rt: TestRuntime,
    policy: Rc<Policy>,
}

impl World {
    fn new() -> Self {
        Self::with_policy(Policy {
            jitter: 0.0,
            ..Policy::default()
        })
    }

    fn with_policy(policy: Policy) -> Self {
        let store = Store::new(SqliteDatabase::migrated());
        for i in 0..3 {
            insert_call(
                &store,
                &SeedCall {
                    from: "+1",
                    to: "+2",
                    ..SeedCall::new(
                        &format!("CA{i}"),
                        "ada",
                        CallStatus::Completed,
                        T0 - i * 1000,
                    )
                },
            );
        }
        Self {
            origin: Rc::new(Origin {
                store,
                slow: Cell::new(false),
                down: Cell::new(false),
                after_load: RefCell::new(None),
            }),
            kv: Rc::new(FakeKv::default()),
            clock: Rc::new(ManualClock::at(T0)),
            rt: TestRuntime::default(),
            policy: Rc::new(policy),
        }
    }

    /// A new isolate: its own memory, version view and counters; shared KV, D1 and clock.
    fn isolate(&self) -> Cache {
        TieredReads::new(
            self.origin.clone(),
            self.kv.clone(),
            self.clock.clone(),
            self.rt.clone(),
            Rc::new(CacheState::new(&self.policy)),
            self.policy.clone(),
        )
    }

    /// D1 round trips that loaded data (version syncs are counted apart).
    fn loads(&self, cache: &Cache) -> u64 {
        cache.stats(None).counters.d1_queries
    }

    /// Writes a call for `user` the way a webhook does, returning the version D1 moved to.
    fn write_call_for(&self, user: &str, id: &str, started: i64) -> Version {
        insert_call(
            &self.origin.store,
            &SeedCall {
                from: "+1",
                to: "+2",
                ..SeedCall::new(id, user, CallStatus::Ringing, started)
            },
        );
        self.version_of(user)
    }

    fn write_call(&self, id: &str, started: i64) -> Version {
        self.write_call_for("ada", id, started)
    }

    fn version_of(&self, user: &str) -> Version {
        block_on(
            self.origin
                .store
                .current_versions(&[UserId::parse(user).expect("valid")]),
        )
        .expect("reads")[0]
    }
}

fn ada() -> UserId {
    UserId::parse("ada").expect("valid")
}

fn page(limit: u32) -> Load {
    Load::Page(PageRequest {
        limit: Limit::new(limit, 500).expect("valid"),
        position: PagePosition::Offset(0),
        filter: crate::domain::CallFilter::none(),
    })
}

fn read(cache: &Cache, load: Load) -> Served<Option<Payload>> {
    block_on(cache.read(&ada(), load, Version::ZERO)).expect("reads")
}

fn ids(s: &Served<Option<Payload>>) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&s.value.as_ref().expect("present").data_json()).expect("json");
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str().map(str::to_owned))
        .collect()
}

#[test]
fn a_miss_loads_from_d1_then_memory_serves_without_d1() {
    let w = World::new();
    let cache = w.isolate();
    let first = read(&cache, page(10));
    assert_eq!((first.outcome, first.source), (Outcome::Miss, Source::D1));
    assert_eq!(first.version, w.version_of("ada"));
    let q = w.origin.store.usage().queries;
    let second = read(&cache, page(10));
    assert_eq!(
        (second.outcome, second.source),
        (Outcome::HitMemory, Source::Memory)
    );
    assert_eq!(
        w.origin.store.usage().queries,
        q,
        "no D1 query on a memory hit"
    );
    assert_eq!(first.value, second.value);
}

#[test]
fn another_isolate_hits_kv_and_keeps_the_entrys_absolute_expiry() {
    let w = World::new();
    let a = w.isolate();
    read(&a, page(10));
    assert!(
        w.rt.run_background() >= 1,
        "the KV write happens after the response"
    );
    w.clock.advance(100_000);
    let b = w.isolate();
    let got = read(&b, page(10));
    assert_eq!((got.outcome, got.source), (Outcome::HitKv, Source::Kv));
    let entry = b
        .state
        .memory
        .borrow()
        .get(
            KeySpec::page(
                &ada(),
                &match page(10) {
                    Load::Page(p) => p,
                    _ => unreachable!(),
                },
            )
            .logical(),
        )
        .cloned()
        .expect("copied to memory");
    assert_eq!(entry.life.stored_at, T0, "not re-armed when copied from KV");
    assert_eq!(entry.life.expires_at, T0 + 300_000);
}

#[test]
fn pages_over_one_hundred_bypass_every_tier() {
    let w = World::new();
    let cache = w.isolate();
    for _ in 0..2 {
        let got = read(&cache, page(101));
        assert_eq!((got.outcome, got.source), (Outcome::Bypass, Source::D1));
    }
    assert_eq!(w.rt.run_background(), 0, "nothing written to KV");
    assert_eq!(read(&cache, page(100)).outcome, Outcome::Miss);
}

#[test]
fn after_a_write_here_the_same_isolate_reads_fresh_data_at_once() {
    let w = World::new();
    let cache = w.isolate();
    read(&cache, page(10));
    w.rt.run_background();
    let version = w.write_call("CAnew", T0 + 5_000);
    cache.invalidate(&ada(), Some(version));
    let got = read(&cache, page(10));
    assert_eq!(got.outcome, Outcome::Miss);
    assert_eq!(ids(&got)[0], "CAnew");
    assert_eq!(got.version, version);
}

#[test]
fn other_isolates_see_the_write_within_the_sync_bound() {
    let w = World::new();
    let (writer, reader) = (w.isolate(), w.isolate());
    read(&reader, page(10));
    w.rt.run_background();
    let version = w.write_call("CAnew", T0 + 5_000);
    writer.invalidate(&ada(), Some(version));
    w.clock.advance(w.policy.sync_ms - 1);
    assert_eq!(
        read(&reader, page(10)).outcome,
        Outcome::HitMemory,
        "within the bound: may be stale"
    );
    w.clock.advance(1);
    let got = read(&reader, page(10));
    assert_eq!(got.outcome, Outcome::Miss, "past the bound: fresh");
    assert_eq!(ids(&got)[0], "CAnew");
}

#[test]
fn a_busy_users_view_is_refreshed_in_the_background_before_the_bound() {
    let w = World::new();
    let reader = w.isolate();
    read(&reader, page(10));
    w.rt.run_background();
    let version = w.write_call("CAnew", T0 + 5_000);
    w.clock.advance(w.policy.sync_ms * 8 / 10);
    assert_eq!(read(&reader, page(10)).outcome, Outcome::HitMemory);
    w.rt.run_background(); // the background sync learns the new version
    let syncs = reader.stats(None).counters.version_syncs;
    let got = read(&reader, page(10));
    assert_eq!((got.outcome, got.version), (Outcome::Miss, version));
    assert_eq!(
        reader.stats(None).counters.version_syncs,
        syncs,
        "no foreground sync"
    );
}

#[test]
fn the_background_sync_asks_d1_once_for_every_user_due() {
    let w = World::new();
    let reader = w.isolate();
    let users: Vec<UserId> = (0..20)
        .map(|i| UserId::parse(&format!("user{i}")).expect("valid"))
        .collect();
    for u in &users {
        block_on(reader.read(u, page(10), Version::ZERO)).expect("reads");
    }
    w.rt.run_background();
    w.clock.advance(w.policy.sync_ms * 9 / 10);
    let before = reader.stats(None).counters.version_syncs;
    for u in &users {
        block_on(reader.read(u, page(10), Version::ZERO)).expect("reads");
    }
    w.rt.run_background();
    // One query names all twenty (loaded before this isolate had a feed position), and one
    // feed read moves the position on.
    assert_eq!(reader.stats(None).counters.version_syncs, before + 2);
}

#[test]
fn once_chained_one_feed_read_per_interval_vouches_for_every_user_and_lists_only_the_changed() {
    let w = World::new();
    let reader = w.isolate();
    let users: Vec<UserId> = (0..20)
        .map(|i| UserId::parse(&format!("user{i}")).expect("valid"))
        .collect();
    // The first read establishes the feed position; loads after it are chained to it.
    let opener = UserId::parse("opener").expect("valid");
    block_on(reader.read(&opener, page(10), Version::ZERO)).expect("reads");
    w.rt.run_background();
    for u in &users {
        block_on(reader.read(u, page(10), Version::ZERO)).expect("reads");
    }
    w.rt.run_background();
    let version = w.write_call("CAfeed", T0 + 9_000); // ada's
    for round in 0..5 {
        w.clock.advance(w.policy.sync_ms * 8 / 10);
        let before = reader.stats(None).counters;
        for u in &users {
            let got = block_on(reader.read(u, page(10), Version::ZERO)).expect("reads");
            assert_eq!(got.outcome, Outcome::HitMemory, "round {round}: {u}");
        }
        w.rt.run_background();
        let after = reader.stats(None).counters;
        assert_eq!(
            after.version_syncs - before.version_syncs,
            1,
            "round {round}: one feed read, no sync by name"
        );
        assert_eq!(
            after.d1_queries, before.d1_queries,
            "round {round}: no load"
        );
    }
    // A change made elsewhere arrives through the feed, not through a sync by name.
    let ada = UserId::parse("ada").expect("valid");
    let first = block_on(reader.read(&ada, page(10), Version::ZERO)).expect("reads");
    assert_eq!(first.version, version);
    let newer = w.write_call("CAfeed2", T0 + 10_000);
    w.clock.advance(w.policy.sync_ms * 8 / 10);
    let syncs = reader.stats(None).counters.version_syncs;
    assert_eq!(
        block_on(reader.read(&ada, page(10), Version::ZERO))
            .expect("reads")
            .version,
        version,
        "within the bound, the old version may still answer"
    );
    w.rt.run_background();
    let got = block_on(reader.read(&ada, page(10), Version::ZERO)).expect("reads");
    assert_eq!((got.outcome, got.version), (Outcome::Miss, newer));
    assert_eq!(
        reader.stats(None).counters.version_syncs,
        syncs + 1,
        "the feed read only"
    );
}

#[test]
fn a_load_that_began_before_a_write_never_puts_the_old_value_back() {
    let w = World::new();
    let cache = w.isolate();
    // The load reads D1, then — before it can store its result — a webhook writes and
    // invalidates. (The hook runs between the D1 read and the cache store.)
    let writer = cache.clone();
    let origin = w.origin.clone();
    *w.origin.after_load.borrow_mut() = Some(Box::new(move || {
        insert_call(
            &origin.store,
            &SeedCall {
                from: "+1",
                to: "+2",
                created_at: 1,
                updated_at: 1,
                ..SeedCall::new("CAlate", "ada", CallStatus::Ringing, 1_900_000_000_000)
            },
        );
        let version = block_on(origin.store.current_versions(&[ada()])).expect("reads")[0];
        writer.invalidate(&ada(), Some(version));
    }));
    let old = read(&cache, page(10));
    assert!(
        !ids(&old).contains(&"CAlate".to_owned()),
        "the load saw the old data"
    );
    *w.origin.after_load.borrow_mut() = None;
    w.rt.run_background();
    let next = read(&cache, page(10));
    assert_eq!(next.outcome, Outcome::Miss, "the old result was not kept");
    assert_eq!(ids(&next)[0], "CAlate");
    // Nor did it reach KV under the current version.
    let other = w.isolate();
    assert_eq!(ids(&read(&other, page(10)))[0], "CAlate");
}

#[test]
fn past_eighty_percent_of_the_ttl_an_entry_is_served_and_refreshed_in_the_background() {
    let w = World::new();
    let cache = w.isolate();
    read(&cache, page(10));
    w.rt.run_background();
    w.clock.advance(240_000); // 80 % of 300 s
    let q = w.loads(&cache);
    let got = read(&cache, page(10));
    assert_eq!(got.outcome, Outcome::HitMemory);
    assert_eq!(w.loads(&cache), q, "served before refreshing");
    w.rt.run_background();
    assert_eq!(w.loads(&cache), q + 1, "refreshed after the response");
    w.clock.advance(100_000); // past the original expiry, within the refreshed one
    assert_eq!(read(&cache, page(10)).outcome, Outcome::HitMemory);
}

#[test]
fn when_d1_fails_an_expired_entry_within_grace_is_served_stale() {
    let w = World::new();
    let cache = w.isolate();
    let fresh = read(&cache, page(10));
    w.rt.run_background();
    w.clock.advance(301_000);
    w.origin
        .store
        .db_exec("ALTER TABLE calls RENAME TO calls_gone");
    let got = read(&cache, page(10));
    assert_eq!((got.outcome, got.source), (Outcome::Stale, Source::Memory));
    assert_eq!(got.value, fresh.value);
    // A fresh isolate has only KV's copy.
    let other = w.isolate();
    assert_eq!(read(&other, page(10)).outcome, Outcome::Stale);
    // Past the grace period nothing is served.
    w.clock.advance(3_600_000);
    assert!(block_on(cache.read(&ada(), page(10), Version::ZERO)).is_err());
}

#[test]
fn when_d1_fails_and_nothing_is_cached_the_error_is_unavailable() {
    let w = World::new();
    let cache = w.isolate();
    w.origin
        .store
        .db_exec("ALTER TABLE calls RENAME TO calls_gone");
    let err = block_on(cache.read(&ada(), page(10), Version::ZERO)).expect_err("nothing to serve");
    assert_eq!(err.status(), 503);
}

#[test]
fn a_not_found_is_remembered_briefly() {
    let w = World::new();
    let cache = w.isolate();
    let missing = Load::Call(CallId::parse("CAnone").expect("valid"));
    assert_eq!(read(&cache, missing.clone()).outcome, Outcome::Miss);
    let again = read(&cache, missing.clone());
    assert_eq!(
        (again.outcome, again.value.is_none()),
        (Outcome::HitMemory, true)
    );
    w.clock.advance(30_000);
    assert_eq!(read(&cache, missing).outcome, Outcome::Miss);
}

#[test]
fn a_call_arriving_after_its_404_was_cached_is_visible_at_once() {
    let w = World::new();
    let cache = w.isolate();
    let id = CallId::parse("CAlater").expect("valid");
    assert!(read(&cache, Load::Call(id.clone())).value.is_none());
    let version = w.write_call("CAlater", T0);
    cache.invalidate(&ada(), Some(version));
    assert!(read(&cache, Load::Call(id)).value.is_some());
}

#[test]
fn with_kv_failing_every_read_still_succeeds_and_the_breaker_stops_asking() {
    let w = World::new();
    w.kv.fail.set(true);
    let cache = w.isolate();
    for i in 0..20 {
        w.clock.advance(1_000);
        let got = read(
            &cache,
            Load::Call(CallId::parse(&format!("CA{}", i % 3)).expect("valid")),
        );
        assert!(got.value.is_some());
    }
    assert!(
        w.kv.reads.get() <= 3,
        "{} KV reads: the breaker opened",
        w.kv.reads.get()
    );
    assert!(cache.stats(None).kv_breaker_open);
    // After the open window one read probes KV again.
    w.clock.advance(w.policy.breaker_open_ms);
    let before = w.kv.reads.get();
    read(&cache, page(10));
    assert!(w.kv.reads.get() > before, "probed after the window");
    assert!(cache.stats(None).counters.kv_errors >= 3);
}

#[test]
fn past_the_sync_bound_a_memory_entry_is_served_once_d1_confirms_its_version() {
    let w = World::new();
    w.kv.fail.set(true);
    let cache = w.isolate();
    read(&cache, page(10));
    assert_eq!(read(&cache, page(10)).outcome, Outcome::HitMemory);
    w.clock.advance(w.policy.sync_ms);
    let syncs = cache.stats(None).counters.version_syncs;
    assert_eq!(read(&cache, page(10)).outcome, Outcome::HitMemory);
    assert_eq!(cache.stats(None).counters.version_syncs, syncs + 1);
    assert_eq!(cache.stats(None).counters.misses, 1, "no data reload");
}

#[test]
fn concurrent_misses_on_one_key_cost_one_d1_query() {
    let w = World::new();
    w.origin.slow.set(true);
    let cache = w.isolate();
    let q = w.loads(&cache);
    let (a, b, c) = block_on(futures_util::future::join3(
        cache.read(&ada(), page(10), Version::ZERO),
        cache.read(&ada(), page(10), Version::ZERO),
        cache.read(&ada(), page(10), Version::ZERO),
    ));
    let outcomes = [a.expect("a"), b.expect("b"), c.expect("c")].map(|s| s.outcome);
    assert_eq!(
        w.loads(&cache) - q,
        1,
        "one load for three readers: {outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
    assert_eq!(cache.stats(None).counters.coalesced, 2);
}

#[test]
fn invalidations_write_nothing_to_kv() {
    let w = World::new();
    let cache = w.isolate();
    for i in 0..20 {
        cache.invalidate(&ada(), Some(Version::new(100 + i)));
    }
    w.rt.run_background();
    assert!(
        w.kv.writes.borrow().is_empty(),
        "KV never holds a version: {:?}",
        w.kv.writes.borrow()
    );
}

#[test]
fn a_write_for_one_user_leaves_other_users_entries_served() {
    let w = World::new();
    let cache = w.isolate();
    let bob = UserId::parse("bob").expect("valid");
    w.write_call_for("bob", "CAbob", T0);
    block_on(cache.read(&bob, page(10), Version::ZERO)).expect("reads");
    read(&cache, page(10));
    let version = w.write_call("CAnew", T0 + 1);
    cache.invalidate(&ada(), Some(version));
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
    let got = block_on(cache.read(&bob, page(10), Version::ZERO)).expect("reads");
    assert_eq!(got.outcome, Outcome::HitMemory);
}

#[test]
fn tiers_can_be_switched_off_without_errors() {
    let off = World::with_policy(Policy {
        enabled: false,
        ..Policy::default()
    });
    let cache = off.isolate();
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Bypass);
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Bypass);

    let kv_only = World::with_policy(Policy {
        memory_enabled: false,
        jitter: 0.0,
        ..Policy::default()
    });
    let cache = kv_only.isolate();
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
    kv_only.rt.run_background();
    assert_eq!(read(&cache, page(10)).outcome, Outcome::HitKv);

    let memory_only = World::with_policy(Policy {
        kv_enabled: false,
        jitter: 0.0,
        ..Policy::default()
    });
    let cache = memory_only.isolate();
    read(&cache, page(10));
    memory_only.rt.run_background();
    assert!(memory_only.kv.writes.borrow().is_empty());
    assert_eq!(read(&cache, page(10)).outcome, Outcome::HitMemory);
}

#[test]
fn purging_a_user_forgets_their_entries_and_stats_count_per_user() {
    let w = World::new();
    let cache = w.isolate();
    read(&cache, page(10));
    read(&cache, page(10));
    let mine = cache.stats(Some(&ada()));
    assert_eq!((mine.counters.misses, mine.counters.hits_memory), (1, 1));
    assert_eq!(mine.hit_rate, 0.5);
    assert_eq!(mine.memory.entries, 1);
    block_on(cache.purge_user(&ada())).expect("purges");
    assert_eq!(cache.stats(Some(&ada())).memory.entries, 0);
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
    block_on(cache.purge_all()).expect("purges");
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
    // Other isolates see purges within the bound: they are version moves in D1.
    let other = w.isolate();
    read(&other, page(10));
    block_on(cache.purge_all()).expect("purges");
    w.clock.advance(w.policy.sync_ms);
    assert_eq!(read(&other, page(10)).outcome, Outcome::Miss);
}

#[test]
fn a_d1_load_slower_than_the_soft_timeout_serves_the_stale_entry() {
    let w = World::new();
    let cache = w.isolate();
    let fresh = read(&cache, page(10));
    w.clock.advance(301_000);
    w.origin.slow.set(true);
    w.rt.timers_fire_at_once.set(true);
    let got = read(&cache, page(10));
    assert_eq!((got.outcome, got.value), (Outcome::Stale, fresh.value));
}

#[test]
fn a_slow_d1_without_a_stale_entry_is_waited_for() {
    let w = World::new();
    let cache = w.isolate();
    w.origin.slow.set(true);
    w.rt.timers_fire_at_once.set(true);
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
}

#[test]
fn warm_after_invalidate_reloads_the_landing_view_in_the_background() {
    let w = World::with_policy(Policy {
        warm_after_invalidate: true,
        jitter: 0.0,
        ..Policy::default()
    });
    let cache = w.isolate();
    cache.invalidate(&ada(), None);
    w.rt.run_background();
    let first_page = Load::Page(PageRequest {
        limit: Limit::new(crate::domain::DEFAULT_PAGE_LIMIT, crate::domain::MAX_LIMIT)
            .expect("valid"),
        position: PagePosition::Offset(0),
        filter: crate::domain::CallFilter::none(),
    });
    assert_eq!(read(&cache, first_page).outcome, Outcome::HitMemory);
    let summary = Load::Summary(
        Limit::new(
            crate::domain::DEFAULT_SUMMARY_LIMIT,
            crate::domain::MAX_LIMIT,
        )
        .expect("valid"),
    );
    assert_eq!(read(&cache, summary).outcome, Outcome::HitMemory);
}

// ---- Named regressions: each reproduced a way the old KV-generation design broke ----

fn call_load(id: &str) -> Load {
    Load::Call(CallId::parse(id).expect("valid"))
}

fn delete(w: &World, id: &str) -> Version {
    block_on(w.origin.store.delete_call(
        &ada(),
        &CallId::parse(id).expect("valid"),
        crate::domain::Timestamp::from_millis(T0),
    ))
    .expect("deletes")
    .expect("ada's call")
}

#[test]
fn a_deleted_call_is_never_served_stale_by_the_isolate_that_deleted_it() {
    let w = World::new();
    let cache = w.isolate();
    assert!(read(&cache, call_load("CA0")).value.is_some());
    let version = delete(&w, "CA0");
    cache.invalidate(&ada(), Some(version));
    // D1 slower than the soft timeout: the retired entry is no fail-safe.
    w.origin.slow.set(true);
    w.rt.timers_fire_at_once.set(true);
    let got = read(&cache, call_load("CA0"));
    assert_eq!((got.outcome, got.value), (Outcome::Miss, None));
    // D1 failing outright, past every bound: the remembered 404 or an error, never the call.
    w.origin.down.set(true);
    for _ in 0..3 {
        w.clock.advance(20_000);
        let got = block_on(cache.read(&ada(), call_load("CA0"), Version::ZERO));
        assert!(got.as_ref().map_or(true, |s| s.value.is_none()), "{got:?}");
    }
}

#[test]
fn a_deleted_call_is_never_served_by_another_isolate_past_the_bound_even_when_d1_is_slow() {
    let w = World::new();
    let (writer, other) = (w.isolate(), w.isolate());
    assert!(read(&other, call_load("CA0")).value.is_some());
    w.rt.run_background();
    let version = delete(&w, "CA0");
    writer.invalidate(&ada(), Some(version));
    w.clock.advance(w.policy.sync_ms);
    w.origin.slow.set(true);
    w.rt.timers_fire_at_once.set(true);
    let got = read(&other, call_load("CA0"));
    assert_eq!(got.value, None, "{:?}", got.outcome);
    assert_eq!(got.version, version);
}

#[test]
fn a_version_learned_from_d1_never_goes_back_when_writes_race_across_isolates() {
    // Two isolates take interleaved writes for one user; a third reads between them. Every
    // version it serves is at least the one before, and past the bound it has them all.
    let w = World::new();
    let (a, b, reader) = (w.isolate(), w.isolate(), w.isolate());
    let mut served = vec![read(&reader, page(10)).version];
    let mut last_write = Version::ZERO;
    for i in 0..6 {
        let writer = if i % 2 == 0 { &a } else { &b };
        last_write = w.write_call(&format!("CArace{i}"), T0 + 10_000 + i);
        writer.invalidate(&ada(), Some(last_write));
        w.clock.advance(1_200);
        served.push(read(&reader, page(10)).version);
        w.rt.run_background();
    }
    assert!(served.windows(2).all(|p| p[0] <= p[1]), "{served:?}");
    w.clock.advance(w.policy.sync_ms);
    let got = read(&reader, page(10));
    assert_eq!(got.version, last_write);
    assert_eq!(ids(&got)[0], "CArace5");
}

#[test]
fn a_full_version_view_forgets_users_by_re_syncing_them_never_by_serving_old_data() {
    let w = World::new();
    let small = TieredReads::new(
        w.origin.clone(),
        w.kv.clone(),
        w.clock.clone(),
        w.rt.clone(),
        Rc::new(CacheState::with_view_bound(&w.policy, 16)),
        w.policy.clone(),
    );
    read(&small, page(10));
    w.rt.run_background();
    // Another isolate writes; then ordinary reads of many users push Ada out of the view.
    let version = w.write_call("CAnew", T0 + 5_000);
    w.isolate().invalidate(&ada(), Some(version));
    for i in 0..64 {
        let u = UserId::parse(&format!("reader{i}")).expect("valid");
        block_on(small.read(&u, page(10), Version::ZERO)).expect("reads");
    }
    assert!(small.state.versions.borrow().len() <= 16);
    let got = read(&small, page(10));
    assert_eq!(ids(&got)[0], "CAnew", "{:?}", got.outcome);
    assert_eq!(got.version, version);
}

#[test]
fn two_writes_in_the_same_millisecond_get_distinct_versions() {
    let w = World::new();
    let first = w.write_call("CAsame1", T0);
    let second = w.write_call("CAsame2", T0);
    assert!(second > first);
}

#[test]
fn a_cancelled_leader_releases_its_in_flight_mark() {
    let w = World::new();
    let cache = w.isolate();
    w.origin.slow.set(true);
    let user = ada();
    {
        let mut leader = Box::pin(cache.read(&user, page(10), Version::ZERO));
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut polls = 0;
        while cache.state.inflight.borrow().is_empty() {
            assert!(leader.as_mut().poll(&mut cx).is_pending(), "still loading");
            polls += 1;
            assert!(polls < 10, "the leader never marked its load");
        }
        // The request is cancelled here: its future is dropped mid-load.
    }
    assert!(cache.state.inflight.borrow().is_empty(), "mark released");
    w.origin.slow.set(false);
    let got = read(&cache, page(10));
    assert_eq!(got.outcome, Outcome::Miss);
    assert_eq!(cache.stats(None).counters.coalesced, 0, "nobody waited");
}

#[test]
fn every_per_isolate_map_stays_within_its_bound_however_many_users_are_seen() {
    let w = World::new();
    let cache = TieredReads::new(
        w.origin.clone(),
        w.kv.clone(),
        w.clock.clone(),
        w.rt.clone(),
        Rc::new(CacheState::with_view_bound(&w.policy, 50)),
        w.policy.clone(),
    );
    for i in 0..400 {
        let u = UserId::parse(&format!("user{i}")).expect("valid");
        block_on(cache.read(&u, page(10), Version::ZERO)).expect("reads");
        cache.invalidate(&u, Some(Version::new(i)));
        w.clock.advance(w.policy.sync_ms * 9 / 10);
        block_on(cache.read(&u, page(10), Version::ZERO)).expect("reads");
    }
    let state = &cache.state;
    assert!(state.versions.borrow().len() <= 50);
    assert!(state.inflight.borrow().is_empty());
    assert!(state.due.borrow().users.len() <= state::MAX_DUE_FOR_SYNC);
    assert!(state.stats.borrow().per_user.len() <= 10_000);
    w.rt.run_background();
    assert!(state.due.borrow().users.is_empty());
}

#[test]
fn a_read_with_a_min_version_ahead_of_the_view_syncs_before_answering() {
    let w = World::new();
    let (writer, reader) = (w.isolate(), w.isolate());
    read(&reader, page(10));
    let version = w.write_call("CAmine", T0 + 5_000);
    writer.invalidate(&ada(), Some(version));
    // Within the bound, but the client was told of `version`.
    let got = block_on(reader.read(&ada(), page(10), version)).expect("reads");
    assert!(got.version >= version);
    assert_eq!(ids(&got)[0], "CAmine");
}

#[test]
fn a_change_elsewhere_retires_only_the_keys_of_the_call_it_was_about() {
    let w = World::new();
    let reader = w.isolate();
    let opener = UserId::parse("opener").expect("valid");
    block_on(reader.read(&opener, page(10), Version::ZERO)).expect("reads");
    w.rt.run_background(); // the feed position is known: loads from here on are chained
    let detail = |id: &str| Load::Call(CallId::parse(id).expect("valid"));
    let before = read(&reader, detail("CA1"));
    read(&reader, detail("CA2"));
    // Another isolate updates CA1; the feed tells this one which call the change was about.
    w.origin.store.db_exec(
        "UPDATE calls SET status = 'failed', updated_at = updated_at + 1 WHERE id = 'CA1'",
    );
    let version = w.version_of("ada");
    w.clock.advance(w.policy.sync_ms * 8 / 10);
    read(&reader, detail("CA2"));
    w.rt.run_background();
    let other = read(&reader, detail("CA2"));
    assert_eq!(
        (other.outcome, other.version),
        (Outcome::HitMemory, version),
        "CA2 was not touched: kept, at the new version"
    );
    let changed = read(&reader, detail("CA1"));
    assert_eq!((changed.outcome, changed.version), (Outcome::Miss, version));
    assert_ne!(changed.value, before.value);
    assert_eq!(reader.stats(None).counters.carried_forward, 1);
    // A page holds every call: any change retires it.
    assert_eq!(read(&reader, page(10)).outcome, Outcome::Miss);
}

#[test]
fn a_purge_or_a_change_the_log_cannot_name_retires_every_call_key() {
    let w = World::new();
    let reader = w.isolate();
    let opener = UserId::parse("opener").expect("valid");
    block_on(reader.read(&opener, page(10), Version::ZERO)).expect("reads");
    w.rt.run_background();
    let detail = Load::Call(CallId::parse("CA2").expect("valid"));
    read(&reader, detail.clone());
    block_on(
        w.origin
            .store
            .bump_user(&UserId::parse("ada").expect("valid")),
    )
    .expect("purges");
    w.clock.advance(w.policy.sync_ms * 8 / 10);
    read(&reader, detail.clone());
    w.rt.run_background();
    assert_eq!(read(&reader, detail).outcome, Outcome::Miss);
}

fn ranged(first_day: i64, days: i64) -> Load {
    let day = |d: i64| crate::domain::Timestamp::from_millis(d * crate::domain::MS_PER_DAY);
    Load::RangedSummary(
        Limit::new(20, 500).expect("valid"),
        crate::domain::DayRange::new(day(first_day), day(first_day + days)).expect("a range"),
    )
}

fn ttl_left(cache: &Cache, key_part: &str) -> f64 {
    let keys = block_on(cache.keys(&ada())).expect("lists");
    keys.iter()
        .find(|k| k.key.contains(key_part))
        .unwrap_or_else(|| panic!("no key with {key_part} in {keys:?}"))
        .ttl_remaining_seconds
}

#[test]
fn a_summary_of_days_that_have_ended_lives_an_hour_and_one_including_today_the_summary_ttl() {
    let w = World::new();
    let cache = w.isolate();
    let today = T0.div_euclid(crate::domain::MS_PER_DAY);
    read(&cache, ranged(today - 7, 7)); // ends at today's midnight: every day has ended
    read(&cache, ranged(today - 6, 7)); // includes today
    let past = ttl_left(
        &cache,
        &format!("to:{}", crate::domain::Timestamp::date_of_day(today)),
    );
    let current = ttl_left(
        &cache,
        &format!("to:{}", crate::domain::Timestamp::date_of_day(today + 1)),
    );
    assert_eq!(past.round(), f64::from(w.policy.ttl_past_range));
    assert_eq!(current.round(), f64::from(w.policy.ttl_summary));
}

#[test]
fn a_filtered_page_is_cached_under_its_canonical_filter_and_retired_by_the_users_version() {
    use crate::domain::CallFilter;
    let w = World::new();
    let cache = w.isolate();
    let filtered = |statuses: &[CallStatus]| {
        Load::Page(PageRequest {
            limit: Limit::new(10, 500).expect("valid"),
            position: PagePosition::Offset(0),
            filter: CallFilter::none().with_statuses(statuses.iter().copied()),
        })
    };
    let first = read(
        &cache,
        filtered(&[CallStatus::Ringing, CallStatus::Completed]),
    );
    assert_eq!(first.outcome, Outcome::Miss);
    assert_eq!(ids(&first), ["CA0", "CA1", "CA2"]);
    // The same filter written the other way round is the same key.
    let again = read(
        &cache,
        filtered(&[CallStatus::Completed, CallStatus::Ringing]),
    );
    assert_eq!(again.outcome, Outcome::HitMemory);
    // Only ringing calls: a key of its own, not the plain page's nor the other filter's.
    let ringing = read(&cache, filtered(&[CallStatus::Ringing]));
    assert_eq!(ringing.outcome, Outcome::Miss);
    assert!(ids(&ringing).is_empty());
    // A write retires every filtered page of the user, as it does the plain list.
    let v = w.write_call("CA9", T0 + 5_000);
    cache.invalidate(&ada(), Some(v));
    let after = read(&cache, filtered(&[CallStatus::Ringing]));
    assert_eq!(after.outcome, Outcome::Miss);
    assert_eq!(ids(&after), ["CA9"]);
    assert_eq!(after.version, v);
}

// ---- Write-behind: refreshed views' KV copies ----

/// A refresh on write as a webhook's batch hands it over: `load` read from D1 at the
/// version the batch left, then kept (in memory now, in KV behind).
fn refresh(w: &World, cache: &Cache, load: &Load) -> Version {
    let served = match load {
        Load::Page(p) => block_on(w.origin.store.call_page(&ada(), p, Version::ZERO)),
        Load::Summary(limit) => block_on(w.origin.store.intent_summary(
            &ada(),
            &crate::domain::SummaryRequest::all_time(*limit),
            Version::ZERO,
        )),
        _ => unreachable!("only landing views are refreshed"),
    }
    .expect("reads");
    cache.remember_refreshed(&ada(), load, served.value, served.version);
    served.version
}

fn summary(limit: u32) -> Load {
    Load::Summary(Limit::new(limit, 500).expect("valid"))
}

/// A world whose background timers move its clock on by their delay.
fn timed_world() -> World {
    let w = World::new();
    *w.rt.timers_advance.borrow_mut() = Some(w.clock.clone());
    w
}

#[test]
fn a_burst_of_refreshes_costs_one_task_and_one_kv_write_per_view_the_newest() {
    let w = timed_world();
    let cache = w.isolate();
    let mut newest = Version::ZERO;
    for i in 0..4 {
        w.write_call(&format!("CW{i}"), T0 + 10 + i);
        newest = refresh(&w, &cache, &page(10));
        w.clock.advance(100);
    }
    let summary_version = refresh(&w, &cache, &summary(5));
    assert_eq!(
        w.rt.run_background(),
        2,
        "one task per view, none per refresh"
    );
    let written = w.kv.writes.borrow().clone();
    assert_eq!(
        written,
        vec![
            page(10).spec(&ada()).kv_key(newest),
            summary(5).spec(&ada()).kv_key(summary_version)
        ]
    );
    assert_eq!(cache.stats(None).counters.kv_writes_coalesced, 3);
    let other = w.isolate();
    let there = block_on(other.read(&ada(), page(10), newest)).expect("reads");
    assert_eq!((there.outcome, there.version), (Outcome::HitKv, newest));
}

#[test]
fn a_write_behind_looking_at_memory_does_not_keep_its_view_from_eviction() {
    // A 10-entry tier, so that entries nobody reads are evicted as others come.
    let w = World::with_policy(Policy {
        jitter: 0.0,
        memory_max_entries: 10,
        ..Policy::default()
    });
    *w.rt.timers_advance.borrow_mut() = Some(w.clock.clone());
    let cache = w.isolate();
    let fill = |from: usize, to: usize| {
        for i in from..to {
            let spec = Load::Call(CallId::parse(&format!("CF{i}")).expect("valid")).spec(&ada());
            let entry = memory::Entry {
                payload: None,
                version: Version::ZERO,
                life: cache.policy.lifetime(w.clock.now().millis(), 60, 0.5),
                rows_read: 0,
            };
            cache.keep(&spec, entry, w.clock.now().millis(), false);
        }
    };
    fill(0, 30);
    refresh(&w, &cache, &page(10));
    assert_eq!(w.rt.run_background(), 1);
    assert_eq!(
        w.kv.writes.borrow().len(),
        1,
        "the write-behind wrote the view"
    );
    fill(30, 60);
    let logical = page(10).spec(&ada()).logical().to_owned();
    assert!(
        cache.state.memory.borrow().peek(&logical).is_none(),
        "unread since its refresh, the view went the way of other unread entries"
    );
}

#[test]
fn a_view_refreshed_without_a_pause_still_reaches_kv_within_the_longest_wait() {
    let w = timed_world();
    let cache = w.isolate();
    let started = w.clock.now().millis();
    refresh(&w, &cache, &page(10));
    let mut i = 0;
    // Each poll lets the task's timer run; a refresh lands before every wake-up.
    while w.rt.poll_background_once() == 0 {
        i += 1;
        assert!(i < 1_000, "the write never came");
        w.write_call(&format!("CW{i}"), T0 + 10 + i);
        refresh(&w, &cache, &page(10));
    }
    let waited = w.clock.now().millis() - started;
    assert_eq!(w.kv.writes.borrow().len(), 1);
    assert!(
        (super::read::MAX_WRITE_WAIT_MS..super::read::MAX_WRITE_WAIT_MS + 2_000).contains(&waited),
        "written after {waited} ms"
    );
}

#[test]
fn a_write_behind_task_canceled_before_it_ran_lets_the_next_refresh_start_another() {
    let w = timed_world();
    let cache = w.isolate();
    refresh(&w, &cache, &page(10));
    assert_eq!(w.rt.cancel_background(), 1);
    w.write_call("CW1", T0 + 10);
    let version = refresh(&w, &cache, &page(10));
    assert_eq!(w.rt.run_background(), 1);
    assert_eq!(
        *w.kv.writes.borrow(),
        vec![page(10).spec(&ada()).kv_key(version)]
    );
}

#[test]
fn a_write_behind_task_never_woken_again_is_replaced_once_its_longest_wait_is_long_past() {
    let w = timed_world();
    let cache = w.isolate();
    refresh(&w, &cache, &page(10));
    // Its task stays queued (its request's `waitUntil` stopped waking it): a refresh soon
    // after waits for it, one long after starts another.
    w.clock.advance(500);
    refresh(&w, &cache, &page(10));
    w.clock.advance(super::read::MAX_WRITE_WAIT_MS + 31_001);
    w.write_call("CW1", T0 + 10);
    let version = refresh(&w, &cache, &page(10));
    assert_eq!(
        w.rt.run_background(),
        2,
        "the stuck task and the one that took over"
    );
    assert_eq!(
        *w.kv.writes.borrow(),
        vec![page(10).spec(&ada()).kv_key(version)]
    );
}
