//! The cache policy driven by hand: a manual clock, an in-memory KV that can fail, a runtime
//! whose background work runs when the test says, and the real store on SQLite as origin.
//! Two `CacheState`s sharing one KV and one database are two isolates.

use super::testing::{FakeKv, TestRuntime, YieldOnce};
use super::*;
use crate::clock::ManualClock;
use crate::domain::{CallId, Limit, PagePosition, PageRequest, UserId};
use crate::store::sqlite::SqliteDatabase;
use crate::store::Store;
use crate::testing::block_on;
use std::cell::{Cell, RefCell};

const T0: i64 = 1_800_000_000_000;

/// The store, optionally slowed (yields once per load) and with a hook run after each load.
struct Origin {
    store: Store<SqliteDatabase>,
    slow: Cell<bool>,
    after_load: RefCell<Option<Box<dyn Fn()>>>,
}

impl Origin {
    async fn around<T>(&self, f: impl Future<Output = T>) -> T {
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
    async fn call_page(&self, u: &UserId, p: &PageRequest) -> AppResult<Served<Payload>> {
        self.around(self.store.call_page(u, p)).await
    }
    async fn call_detail(&self, u: &UserId, c: &CallId) -> AppResult<Served<Option<Payload>>> {
        self.around(self.store.call_detail(u, c)).await
    }
    async fn call_enrichment(&self, u: &UserId, c: &CallId) -> AppResult<Served<Option<Payload>>> {
        self.around(self.store.call_enrichment(u, c)).await
    }
    async fn call_analysis(&self, u: &UserId, c: &CallId) -> AppResult<Served<Option<Payload>>> {
        self.around(self.store.call_analysis(u, c)).await
    }
    async fn intent_summary(&self, u: &UserId, l: Limit) -> AppResult<Served<Payload>> {
        self.around(self.store.intent_summary(u, l)).await
    }
    fn usage(&self) -> crate::store::Usage {
        self.store.usage()
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
            store.db_exec(&format!(
                "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
                 status_rank, answered, started_at, created_at, updated_at) VALUES \
                 ('CA{i}', 'ada', 'twilio', 'inbound', '+1', '+2', 'completed', 3, 1, {t}, {t}, {t})",
                t = T0 - i * 1000
            ));
        }
        Self {
            origin: Rc::new(Origin {
                store,
                slow: Cell::new(false),
                after_load: RefCell::new(None),
            }),
            kv: Rc::new(FakeKv::default()),
            clock: Rc::new(ManualClock::at(T0)),
            rt: TestRuntime::default(),
            policy: Rc::new(policy),
        }
    }

    /// A new isolate: its own memory, generations and counters; shared KV, D1 and clock.
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

    fn queries(&self) -> u64 {
        self.origin.store.usage().queries
    }

    fn add_call(&self, id: &str, started: i64) {
        self.origin.store.db_exec(&format!(
            "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
             status_rank, answered, started_at, created_at, updated_at) VALUES \
             ('{id}', 'ada', 'twilio', 'inbound', '+1', '+2', 'ringing', 1, 0, {started}, {started}, {started})"
        ));
    }
}

fn ada() -> UserId {
    UserId::parse("ada").expect("valid")
}

fn page(limit: u32) -> Load {
    Load::Page(PageRequest {
        limit: Limit::new(limit, 500).expect("valid"),
        position: PagePosition::Offset(0),
    })
}

fn read(cache: &Cache, load: Load) -> Served<Option<Payload>> {
    block_on(cache.read(&ada(), load)).expect("reads")
}

fn ids(s: &Served<Option<Payload>>) -> Vec<String> {
    let v: serde_json::Value =
        serde_json::from_str(&s.value.as_ref().expect("present").data_json).expect("json");
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
    let q = w.queries();
    let second = read(&cache, page(10));
    assert_eq!(
        (second.outcome, second.source),
        (Outcome::HitMemory, Source::Memory)
    );
    assert_eq!(w.queries(), q, "no D1 query on a memory hit");
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
fn after_an_invalidation_the_same_isolate_reads_fresh_data_at_once() {
    let w = World::new();
    let cache = w.isolate();
    read(&cache, page(10));
    w.rt.run_background();
    w.add_call("CAnew", T0 + 5_000);
    cache.invalidate(&ada(), Some(&CallId::parse("CAnew").expect("valid")));
    let got = read(&cache, page(10));
    assert_eq!(got.outcome, Outcome::Miss);
    assert_eq!(ids(&got)[0], "CAnew");
}

#[test]
fn other_isolates_see_the_write_within_the_sync_bound() {
    let w = World::new();
    let (writer, reader) = (w.isolate(), w.isolate());
    read(&reader, page(10));
    w.rt.run_background();
    w.add_call("CAnew", T0 + 5_000);
    writer.invalidate(&ada(), None);
    w.rt.run_background(); // the generation reaches KV
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
fn a_load_that_began_before_a_write_never_puts_the_old_value_back() {
    let w = World::new();
    let cache = w.isolate();
    // The load reads D1, then — before it can store its result — a webhook writes and
    // invalidates. (The hook runs between the D1 read and the cache store.)
    let writer = cache.clone();
    let origin = w.origin.clone();
    *w.origin.after_load.borrow_mut() = Some(Box::new(move || {
        origin.store.db_exec(
            "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
             status_rank, answered, started_at, created_at, updated_at) VALUES \
             ('CAlate', 'ada', 'twilio', 'inbound', '+1', '+2', 'ringing', 1, 0, 1900000000000, 1, 1)",
        );
        writer.invalidate(&ada(), None);
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
    // Nor did it reach KV under the current generations.
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
    let q = w.queries();
    let got = read(&cache, page(10));
    assert_eq!(got.outcome, Outcome::HitMemory);
    assert_eq!(w.queries(), q, "served before refreshing");
    w.rt.run_background();
    assert_eq!(w.queries(), q + 1, "refreshed after the response");
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
    assert!(block_on(cache.read(&ada(), page(10))).is_err());
}

#[test]
fn when_d1_fails_and_nothing_is_cached_the_error_is_unavailable() {
    let w = World::new();
    let cache = w.isolate();
    w.origin
        .store
        .db_exec("ALTER TABLE calls RENAME TO calls_gone");
    let err = block_on(cache.read(&ada(), page(10))).expect_err("nothing to serve");
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
    w.add_call("CAlater", T0);
    cache.invalidate(&ada(), Some(&id));
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
fn without_kv_memory_entries_are_trusted_only_within_the_sync_bound() {
    let w = World::new();
    w.kv.fail.set(true);
    let cache = w.isolate();
    read(&cache, page(10));
    assert_eq!(read(&cache, page(10)).outcome, Outcome::HitMemory);
    w.clock.advance(w.policy.sync_ms);
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
}

#[test]
fn concurrent_misses_on_one_key_cost_one_d1_query() {
    let w = World::new();
    w.origin.slow.set(true);
    let cache = w.isolate();
    let q = w.queries();
    let (a, b, c) = block_on(futures_util::future::join3(
        cache.read(&ada(), page(10)),
        cache.read(&ada(), page(10)),
        cache.read(&ada(), page(10)),
    ));
    let outcomes = [a.expect("a"), b.expect("b"), c.expect("c")].map(|s| s.outcome);
    assert_eq!(
        w.queries() - q,
        1,
        "one load for three readers: {outcomes:?}"
    );
    assert_eq!(outcomes.iter().filter(|o| **o == Outcome::Miss).count(), 1);
    assert_eq!(cache.stats(None).counters.coalesced, 2);
}

#[test]
fn a_burst_of_invalidations_writes_each_generation_key_at_most_once_per_second() {
    let w = World::new();
    let cache = w.isolate();
    for _ in 0..20 {
        cache.invalidate(&ada(), None);
    }
    w.rt.run_background();
    let writes =
        w.kv.writes
            .borrow()
            .iter()
            .filter(|k| k.starts_with("gen:"))
            .count();
    assert_eq!(writes, 1, "coalesced into one write");
    w.clock.advance(200);
    cache.invalidate(&ada(), None);
    cache.invalidate(&ada(), None);
    w.rt.run_background();
    let writes =
        w.kv.writes
            .borrow()
            .iter()
            .filter(|k| k.starts_with("gen:"))
            .count();
    assert_eq!(writes, 2, "one deferred write carries the later bumps");
    let stored: u64 = w.kv.data.borrow()["gen:v1:user:ada"]
        .parse()
        .expect("number");
    assert_eq!(
        Some(stored),
        cache
            .state
            .gens
            .borrow()
            .get("gen:v1:user:ada")
            .map(|g| g.value)
    );
}

#[test]
fn an_analysis_invalidates_its_call_but_not_other_calls() {
    let w = World::new();
    let cache = w.isolate();
    let (c0, c1) = (
        CallId::parse("CA0").expect("ok"),
        CallId::parse("CA1").expect("ok"),
    );
    read(&cache, Load::Call(c0.clone()));
    read(&cache, Load::Call(c1.clone()));
    cache.invalidate(&ada(), Some(&c0));
    assert_eq!(read(&cache, Load::Call(c0)).outcome, Outcome::Miss);
    assert_eq!(read(&cache, Load::Call(c1)).outcome, Outcome::HitMemory);
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
    cache.purge_user(&ada());
    assert_eq!(cache.stats(Some(&ada())).memory.entries, 0);
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
    cache.purge_all();
    assert_eq!(read(&cache, page(10)).outcome, Outcome::Miss);
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
