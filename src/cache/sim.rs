//! Deterministic simulation of the cache while isolates race.
//!
//! One seed drives every choice: which isolate does what, in which order tasks are polled,
//! how long D1 and KV take, when they fail, how far each isolate's KV reads lag behind writes,
//! when time moves. The world has several isolates (each its own [`CacheState`]), one KV that
//! is last-writer-wins with per-isolate read lag and injected errors, and the real store on
//! SQLite with the real migrations (so versions move by the real triggers) behind injected
//! latency and failures. Operations are webhooks of every kind (and provider retries),
//! deletions, every read route (some with `X-Min-Version`), cancelled reads and writes,
//! isolate restarts, warming and purges.
//!
//! After every step the invariants are checked:
//! - **data at its version**: every answer equals what D1 held at the version it claims;
//! - **read-your-writes**: an isolate that acknowledged a write answers at least its version;
//! - **the bound**: a read that starts more than `sync_ms` after a write was acknowledged (in
//!   any isolate) reflects it — every answer not marked `STALE`;
//! - **monotonic**: no isolate serves a user a version older than one it served before, and no
//!   answer is older than the `X-Min-Version` it was asked for;
//! - **deletion**: a deleted call is never served past the bound, nor by the isolate that
//!   deleted it;
//! - **bounded**: every per-isolate map within its bound;
//! - **exactly once**: every accepted webhook is applied once, retries change nothing.
//!
//! `cargo test` runs a few hundred seeds; `npm run sim` runs random seeds for `SIM_SECONDS`
//! and prints a one-line verdict, or the failing seed and its trace (`SIM_SEED=<n> npm run
//! sim` replays one seed and prints its whole trace).

use super::state::{CacheState, MAX_DUE_FOR_SYNC, MAX_INFLIGHT};
use super::{CacheControl, KvTier, Load, LocalFuture, Runtime, TieredReads};
use crate::clock::{Clock, ManualClock};
use crate::domain::{
    AnalysisReport, AnalysisStatus, CallId, CallReport, CallStatus, Delivery, Direction,
    EnrichmentReport, Event, Limit, Owner, PagePosition, PageRequest, Provider, UserId, Version,
};
use crate::error::{AppError, AppResult};
use crate::reads::{Outcome, Payload, ReadModel, Served};
use crate::store::sqlite::SqliteDatabase;
use crate::store::{CallDeletion, Store, VersionSource};
use crate::testing::block_on;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

const T0: i64 = 1_800_000_000_000;
const USERS: [&str; 3] = ["ada", "bob", "cy"];
const ISOLATES: usize = 3;
/// Call ids a user's detail reads ask for (the snapshot covers exactly these).
const TRACKED_CALLS: usize = 2;
/// Bound of the simulated isolates' version views: small, so that forgetting happens.
const VIEW_BOUND: usize = 2;

/// splitmix64: small, fast, and the same sequence on every machine.
#[derive(Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// How hostile the world is.
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub d1_fail: f64,
    /// Chance that a D1 call takes longer than the cache's soft timeout.
    pub d1_slow: f64,
    pub kv_fail: f64,
    /// Each isolate's KV reads lag writes by up to this much (fixed per isolate per seed).
    pub kv_lag_max_ms: i64,
}

impl Faults {
    pub fn for_seed(rng: &mut Rng) -> Self {
        Self {
            d1_fail: [0.0, 0.02, 0.1][rng.below(3) as usize],
            d1_slow: [0.0, 0.02, 0.05][rng.below(3) as usize],
            kv_fail: [0.0, 0.05, 0.3][rng.below(3) as usize],
            kv_lag_max_ms: [0, 1_000, 60_000][rng.below(3) as usize],
        }
    }
}

/// A timer on the virtual clock.
struct Sleep {
    clock: Rc<ManualClock>,
    until: i64,
}

impl Future for Sleep {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if self.clock.now().millis() >= self.until {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

fn sleep(clock: &Rc<ManualClock>, ms: i64) -> Sleep {
    Sleep {
        clock: clock.clone(),
        until: clock.now().millis() + ms,
    }
}

/// One isolate's runtime: background work queued for the executor, timers on the clock.
#[derive(Clone)]
struct SimRuntime {
    clock: Rc<ManualClock>,
    spawned: Rc<RefCell<Vec<LocalFuture>>>,
}

impl Runtime for SimRuntime {
    fn spawn(&self, fut: LocalFuture) {
        self.spawned.borrow_mut().push(fut);
    }
    fn sleep(&self, ms: u32) -> LocalFuture {
        Box::pin(sleep(&self.clock, i64::from(ms)))
    }
}

/// Shared parts of the world the fakes draw on.
struct Env {
    clock: Rc<ManualClock>,
    rng: RefCell<Rng>,
    /// A cell, so a scenario can turn faults on and off mid-run.
    faults: Cell<Faults>,
    soft_timeout_ms: i64,
}

impl Env {
    /// The latency and fate of one D1 call.
    fn d1_call(&self) -> (i64, bool) {
        let faults = self.faults.get();
        let mut rng = self.rng.borrow_mut();
        let slow = rng.chance(faults.d1_slow);
        let ms = if slow {
            self.soft_timeout_ms + 1 + rng.below(2_000) as i64
        } else {
            1 + rng.below(60) as i64
        };
        (ms, rng.chance(faults.d1_fail))
    }
}

/// Every KV write: key → (written at, value), oldest first; shared by every isolate.
type KvLog = Rc<RefCell<HashMap<String, Vec<(i64, String)>>>>;

/// KV as one isolate sees it: last-writer-wins, reads lagging writes by this isolate's lag.
struct SimKv {
    env: Rc<Env>,
    lag_ms: i64,
    data: KvLog,
}

impl KvTier for SimKv {
    async fn get(&self, key: &str) -> AppResult<Option<String>> {
        let (ms, fail) = {
            let mut rng = self.env.rng.borrow_mut();
            (
                1 + rng.below(10) as i64,
                rng.chance(self.env.faults.get().kv_fail),
            )
        };
        sleep(&self.env.clock, ms).await;
        if fail {
            return Err(AppError::unavailable("KV: injected"));
        }
        let visible_until = self.env.clock.now().millis() - self.lag_ms;
        Ok(self.data.borrow().get(key).and_then(|writes| {
            writes
                .iter()
                .rev()
                .find(|(at, _)| *at <= visible_until)
                .map(|(_, v)| v.clone())
        }))
    }

    async fn put(&self, key: &str, head: &str, data: &str, ttl_secs: u64) -> AppResult<()> {
        let value = [head, data].concat();
        assert!(ttl_secs >= 60, "KV refuses TTLs under 60 s");
        let (ms, fail) = {
            let mut rng = self.env.rng.borrow_mut();
            (
                1 + rng.below(10) as i64,
                rng.chance(self.env.faults.get().kv_fail),
            )
        };
        sleep(&self.env.clock, ms).await;
        if fail {
            return Err(AppError::unavailable("KV: injected"));
        }
        let now = self.env.clock.now().millis();
        self.data
            .borrow_mut()
            .entry(key.to_owned())
            .or_default()
            .push((now, value));
        Ok(())
    }
}

/// D1 for the cache: the real store behind injected latency and failures. The SQL runs at
/// the end of the latency, atomically, as a D1 batch does.
struct SimOrigin {
    env: Rc<Env>,
    store: Rc<Store<SqliteDatabase>>,
}

impl SimOrigin {
    async fn gate(&self) -> AppResult<()> {
        let (ms, fail) = self.env.d1_call();
        sleep(&self.env.clock, ms).await;
        if fail {
            Err(AppError::unavailable("D1_ERROR: injected"))
        } else {
            Ok(())
        }
    }
}

impl ReadModel for SimOrigin {
    async fn call_page(
        &self,
        u: &UserId,
        p: &PageRequest,
        v: Version,
    ) -> AppResult<Served<Payload>> {
        self.gate().await?;
        self.store.call_page(u, p, v).await
    }
    async fn call_detail(
        &self,
        u: &UserId,
        c: &CallId,
        v: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.gate().await?;
        self.store.call_detail(u, c, v).await
    }
    async fn call_enrichment(
        &self,
        u: &UserId,
        c: &CallId,
        v: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.gate().await?;
        self.store.call_enrichment(u, c, v).await
    }
    async fn call_analysis(
        &self,
        u: &UserId,
        c: &CallId,
        v: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        self.gate().await?;
        self.store.call_analysis(u, c, v).await
    }
    async fn intent_summary(
        &self,
        u: &UserId,
        l: &crate::domain::SummaryRequest,
        v: Version,
    ) -> AppResult<Served<Payload>> {
        self.gate().await?;
        self.store.intent_summary(u, l, v).await
    }
    fn usage(&self) -> crate::store::Usage {
        self.store.usage()
    }
}

impl VersionSource for SimOrigin {
    async fn current_versions(&self, users: &[UserId]) -> AppResult<Vec<Version>> {
        self.gate().await?;
        self.store.current_versions(users).await
    }
    async fn version_changes(
        &self,
        after: Option<u64>,
        limit: u32,
    ) -> AppResult<crate::store::VersionChanges> {
        self.gate().await?;
        self.store.version_changes(after, limit).await
    }
    async fn bump_user(&self, user: &UserId) -> AppResult<Version> {
        self.gate().await?;
        self.store.bump_user(user).await
    }
    async fn bump_all(&self) -> AppResult<()> {
        self.gate().await?;
        self.store.bump_all().await
    }
}

type SimCache = TieredReads<SimOrigin, SimKv, Rc<ManualClock>, SimRuntime>;

struct Isolate {
    cache: SimCache,
    rt: SimRuntime,
    incarnation: u32,
    /// The newest version this incarnation served each user, and the step that answer
    /// completed at: a read that starts after it must not answer older. (Reads in flight
    /// together may complete in either order, as concurrent requests do.)
    served: HashMap<String, (Version, usize)>,
}

/// What D1 held for a user at one version: every read the simulation makes, answered.
#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    answers: BTreeMap<String, Option<String>>,
}

/// A write the provider got its 2xx for.
#[derive(Debug, Clone)]
struct Ack {
    user: String,
    version: Version,
    at: i64,
    isolate: usize,
    incarnation: u32,
    deleted: Option<String>,
}

#[derive(Default)]
struct Model {
    snapshots: HashMap<(String, Version), Rc<Snapshot>>,
    acks: Vec<Ack>,
    /// Every call id created per user, in order.
    calls: HashMap<String, Vec<String>>,
    /// Stored keys (digests) of the deliveries whose batch committed, and all sent.
    committed: HashSet<String>,
    sent: Vec<Delivery>,
    /// The newest version any client has seen per user (what a live feed would tell it).
    client_seen: HashMap<String, Version>,
    next_call: u32,
    /// Landing views webhooks read back in their own batch (refresh on write).
    refreshed: usize,
}

enum Done {
    Read {
        isolate: usize,
        incarnation: u32,
        user: String,
        what: String,
        started: i64,
        started_step: usize,
        at_least: Version,
        result: AppResult<Served<Option<Payload>>>,
    },
    Write {
        label: String,
        result: AppResult<()>,
    },
    Background,
}

struct Task {
    isolate: Option<usize>,
    label: String,
    fut: Pin<Box<dyn Future<Output = Done>>>,
    cancellable: bool,
}

/// A failed invariant, with everything needed to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub step: usize,
    pub message: String,
    pub trace: Vec<String>,
}

/// What a run did, for the verdict line.
#[derive(Debug, Default, Clone, Copy)]
pub struct RunStats {
    pub steps: usize,
    pub reads: usize,
    pub writes: usize,
    pub stale: usize,
    pub failed_reads: usize,
    /// Entries webhooks refreshed on write.
    pub refreshed: usize,
    /// Of those, views patched with the webhook's one call (`patch.rs`), in the isolates'
    /// current incarnations.
    pub patched: usize,
    /// Entries for a call kept at a newer version (no change since was about that call).
    pub carried: usize,
}

pub struct World {
    seed: u64,
    env: Rc<Env>,
    store: Rc<Store<SqliteDatabase>>,
    kv_data: KvLog,
    policy: Rc<super::policy::Policy>,
    isolates: Vec<Isolate>,
    lags: Vec<i64>,
    model: Rc<RefCell<Model>>,
    tasks: Vec<Task>,
    trace: Vec<String>,
    step: usize,
    stats: RunStats,
    claim: Rc<Cell<u64>>,
}

const DAY: i64 = crate::domain::MS_PER_DAY;

fn uid(s: &str) -> UserId {
    UserId::parse(s).unwrap_or_else(|| panic!("{s} is a user id"))
}

fn cid(s: &str) -> CallId {
    CallId::parse(s).unwrap_or_else(|| panic!("{s} is a call id"))
}

/// The reads the simulation makes for a user, by name.
fn loads_for(calls: &[String]) -> Vec<(String, Load)> {
    let mut out = vec![
        (
            "page".to_owned(),
            Load::Page(PageRequest {
                // Short lists, so that changes cross their ends often.
                limit: Limit::new(4, 500).unwrap_or_else(|| unreachable!()),
                position: PagePosition::Offset(0),
                filter: crate::domain::CallFilter::none(),
            }),
        ),
        (
            "summary".to_owned(),
            Load::Summary(Limit::new(3, 500).unwrap_or_else(|| unreachable!())),
        ),
        (
            "completed page".to_owned(),
            Load::Page(PageRequest {
                limit: Limit::new(3, 500).unwrap_or_else(|| unreachable!()),
                position: PagePosition::Offset(0),
                filter: crate::domain::CallFilter::none().with_statuses([CallStatus::Completed]),
            }),
        ),
        (
            // The days around the run's start: calls land on both sides of a midnight.
            "summary of days".to_owned(),
            Load::RangedSummary(
                Limit::new(3, 500).unwrap_or_else(|| unreachable!()),
                crate::domain::DayRange::new(
                    crate::domain::Timestamp::from_millis((T0 / DAY - 1) * DAY),
                    crate::domain::Timestamp::from_millis((T0 / DAY + 2) * DAY),
                )
                .unwrap_or_else(|| unreachable!()),
            ),
        ),
    ];
    for id in calls.iter().take(TRACKED_CALLS) {
        out.push((format!("call {id}"), Load::Call(cid(id))));
        out.push((format!("analysis {id}"), Load::Analysis(cid(id))));
        out.push((format!("enhanced {id}"), Load::Enhanced(cid(id))));
    }
    out
}

fn answer_of(store: &Store<SqliteDatabase>, user: &UserId, load: &Load) -> Option<String> {
    let z = Version::ZERO;
    let served = match load {
        Load::Page(p) => block_on(store.call_page(user, p, z)).map(|s| Some(s.value)),
        Load::Summary(_) | Load::RangedSummary(..) => load
            .summary_request()
            .and_then(|req| block_on(store.intent_summary(user, &req, z)))
            .map(|s| Some(s.value)),
        Load::Call(c) => block_on(store.call_detail(user, c, z)).map(|s| s.value),
        Load::Analysis(c) => block_on(store.call_analysis(user, c, z)).map(|s| s.value),
        Load::Enhanced(c) => block_on(store.call_enrichment(user, c, z)).map(|s| s.value),
    };
    served
        .unwrap_or_else(|e| panic!("snapshot read: {e}"))
        .map(|p| p.data_json().to_string())
}

/// Records what D1 holds for `user` now, at its current version. Runs synchronously right
/// after a commit, before any other task can write.
fn record_snapshot(store: &Store<SqliteDatabase>, model: &RefCell<Model>, user: &str) -> Version {
    let u = uid(user);
    let version = block_on(store.current_versions(std::slice::from_ref(&u)))
        .unwrap_or_else(|e| panic!("version read: {e}"))[0];
    let calls = model.borrow().calls.get(user).cloned().unwrap_or_default();
    let answers = loads_for(&calls)
        .into_iter()
        .map(|(name, load)| (name, answer_of(store, &u, &load)))
        .collect();
    model
        .borrow_mut()
        .snapshots
        .insert((user.to_owned(), version), Rc::new(Snapshot { answers }));
    version
}

impl World {
    pub fn new(seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let faults = Faults::for_seed(&mut rng);
        let policy = Rc::new(super::policy::Policy {
            jitter: 0.0,
            ..super::policy::Policy::default()
        });
        let clock = Rc::new(ManualClock::at(T0));
        let lags = (0..ISOLATES)
            .map(|_| rng.below(faults.kv_lag_max_ms as u64 + 1) as i64)
            .collect();
        let env = Rc::new(Env {
            clock,
            rng: RefCell::new(rng),
            faults: Cell::new(faults),
            soft_timeout_ms: i64::from(policy.soft_timeout_ms),
        });
        let mut world = Self {
            seed,
            env,
            store: Rc::new(Store::new(SqliteDatabase::migrated())),
            kv_data: Rc::default(),
            policy,
            isolates: Vec::new(),
            lags,
            model: Rc::default(),
            tasks: Vec::new(),
            trace: Vec::new(),
            step: 0,
            stats: RunStats::default(),
            claim: Rc::default(),
        };
        world.note(format!(
            "seed {seed}: {faults:?}, KV lag per isolate {:?} ms, sync {} ms",
            world.lags, world.policy.sync_ms
        ));
        for i in 0..ISOLATES {
            let iso = world.new_isolate(i, 0);
            world.isolates.push(iso);
        }
        for user in USERS {
            record_snapshot(&world.store, &world.model, user);
        }
        world
    }

    fn new_isolate(&self, index: usize, incarnation: u32) -> Isolate {
        let rt = SimRuntime {
            clock: self.env.clock.clone(),
            spawned: Rc::default(),
        };
        let kv = SimKv {
            env: self.env.clone(),
            lag_ms: self.lags[index],
            data: self.kv_data.clone(),
        };
        let origin = SimOrigin {
            env: self.env.clone(),
            store: self.store.clone(),
        };
        let cache = TieredReads::new(
            Rc::new(origin),
            Rc::new(kv),
            self.env.clock.clone(),
            rt.clone(),
            Rc::new(CacheState::with_view_bound(&self.policy, VIEW_BOUND)),
            self.policy.clone(),
        );
        Isolate {
            cache,
            rt,
            incarnation,
            served: HashMap::new(),
        }
    }

    fn now(&self) -> i64 {
        self.env.clock.now().millis()
    }

    fn note(&mut self, line: String) {
        let t = self.now() - T0;
        self.trace
            .push(format!("[{:>5}] t+{t:>7}ms {line}", self.step));
    }

    fn rng(&self) -> std::cell::RefMut<'_, Rng> {
        self.env.rng.borrow_mut()
    }

    fn fail(&self, message: String) -> Failure {
        Failure {
            seed: self.seed,
            step: self.step,
            message,
            trace: self.trace.clone(),
        }
    }

    // ---- Operations ----

    /// Starts a read of `what` for `user` in `isolate`.
    pub fn start_read(&mut self, isolate: usize, user: &str, what: &str, min: bool) {
        let calls = self
            .model
            .borrow()
            .calls
            .get(user)
            .cloned()
            .unwrap_or_default();
        let Some((name, load)) = loads_for(&calls).into_iter().find(|(n, _)| n == what) else {
            return;
        };
        let at_least = if min {
            self.model
                .borrow()
                .client_seen
                .get(user)
                .copied()
                .unwrap_or(Version::ZERO)
        } else {
            Version::ZERO
        };
        let iso = &self.isolates[isolate];
        let (cache, incarnation, u) = (iso.cache.clone(), iso.incarnation, uid(user));
        let (started, started_step) = (self.now(), self.step);
        let user_name = user.to_owned();
        self.note(format!(
            "isolate {isolate} reads {user} {name} (min {})",
            at_least.get()
        ));
        self.tasks.push(Task {
            isolate: Some(isolate),
            label: format!("read {user} {name} @{isolate}"),
            cancellable: true,
            fut: Box::pin(async move {
                let result = cache.read(&u, load, at_least).await;
                Done::Read {
                    isolate,
                    incarnation,
                    user: user_name,
                    what: name,
                    started,
                    started_step,
                    at_least,
                    result,
                }
            }),
        });
    }

    fn next_claim(&self) -> String {
        self.claim.set(self.claim.get() + 1);
        format!("sim-claim-{}", self.claim.get())
    }

    /// A webhook for `user` taken by `isolate`: the delivery travels to D1, commits (the
    /// snapshot is taken in the same instant), the answer travels back, the isolate learns
    /// the version and the provider gets its 2xx.
    pub fn start_webhook(&mut self, isolate: usize, delivery: Delivery, user: &str) {
        let label = format!(
            "webhook {} {} for {user} @{isolate}",
            delivery.event_type,
            delivery.call_id().map_or("-", CallId::as_str)
        );
        self.note(label.clone());
        self.model.borrow_mut().sent.push(delivery.clone());
        let iso = &self.isolates[isolate];
        let (cache, incarnation) = (iso.cache.clone(), iso.incarnation);
        let (store, model, env) = (self.store.clone(), self.model.clone(), self.env.clone());
        let claim = self.next_claim();
        let user = user.to_owned();
        let task_label = label.clone();
        self.tasks.push(Task {
            isolate: Some(isolate),
            label,
            cancellable: true,
            fut: Box::pin(async move {
                let result = async {
                    let (ms, fail) = env.d1_call();
                    sleep(&env.clock, ms).await;
                    if fail {
                        return Err(AppError::unavailable("D1_ERROR: injected"));
                    }
                    // Refresh on write, as the webhook routes do: the batch reads back the
                    // owner's watched landing views at its own version.
                    let named = delivery.owner().user;
                    let ask = cache.refresh_ask(named.as_ref());
                    let mut ingested = store.ingest_refreshing(&delivery, &claim, &ask).await?;
                    if ingested.fresh {
                        model
                            .borrow_mut()
                            .committed
                            .insert(crate::store::delivery_digest(&delivery));
                    }
                    let version = record_snapshot(&store, &model, &user);
                    // A delivery that reports a start after its call's deletion is a new call
                    // with the same id (the store lifts the deletion mark): from its commit on,
                    // serving that call is right again.
                    if let Some(call) = delivery.call_id() {
                        let back = !store
                            .db_rows(&format!("SELECT 1 AS x FROM calls WHERE id = '{call}'"))
                            .is_empty();
                        if back {
                            for ack in model.borrow_mut().acks.iter_mut() {
                                if ack.deleted.as_deref() == Some(call.as_str()) {
                                    ack.deleted = None;
                                }
                            }
                        }
                    }
                    // A retry whose first attempt committed changes nothing.
                    if !ingested.fresh && ingested.version.is_some_and(|v| v != version) {
                        return Err(AppError::internal("a retried delivery moved the version"));
                    }
                    let (back, _) = env.d1_call();
                    sleep(&env.clock, back).await;
                    if ingested.changed_data() {
                        cache.invalidate_call(
                            &uid(&user),
                            ingested.call.as_ref(),
                            ingested.version_before,
                            ingested.version,
                        );
                        if let Some(v) = ingested.version {
                            let kept = cache.keep_refreshed(
                                &uid(&user),
                                v,
                                ingested.version_before,
                                ingested.call.as_ref(),
                                std::mem::take(&mut ingested.refresh),
                            );
                            model.borrow_mut().refreshed += kept;
                        }
                    }
                    if let Some(v) = ingested.version.filter(|_| ingested.changed_data()) {
                        model.borrow_mut().acks.push(Ack {
                            user: user.clone(),
                            version: v,
                            at: env.clock.now().millis(),
                            isolate,
                            incarnation,
                            deleted: None,
                        });
                    }
                    Ok(())
                }
                .await;
                Done::Write {
                    label: task_label,
                    result,
                }
            }),
        });
    }

    /// The owner deletes one of `user`'s calls through `isolate`.
    pub fn start_delete(&mut self, isolate: usize, user: &str, call: &str) {
        let label = format!("delete {user} {call} @{isolate}");
        self.note(label.clone());
        let iso = &self.isolates[isolate];
        let (cache, incarnation) = (iso.cache.clone(), iso.incarnation);
        let (store, model, env) = (self.store.clone(), self.model.clone(), self.env.clone());
        let (user, call) = (user.to_owned(), call.to_owned());
        let task_label = label.clone();
        self.tasks.push(Task {
            isolate: Some(isolate),
            label,
            cancellable: true,
            fut: Box::pin(async move {
                let result = async {
                    let (ms, fail) = env.d1_call();
                    sleep(&env.clock, ms).await;
                    if fail {
                        return Err(AppError::unavailable("D1_ERROR: injected"));
                    }
                    let deleted = store
                        .delete_call(&uid(&user), &cid(&call), env.clock.now())
                        .await?;
                    record_snapshot(&store, &model, &user);
                    let (back, _) = env.d1_call();
                    sleep(&env.clock, back).await;
                    if let Some(version) = deleted {
                        cache.invalidate(&uid(&user), Some(version));
                        model.borrow_mut().acks.push(Ack {
                            user: user.clone(),
                            version,
                            at: env.clock.now().millis(),
                            isolate,
                            incarnation,
                            deleted: Some(call.clone()),
                        });
                    }
                    Ok(())
                }
                .await;
                Done::Write {
                    label: task_label,
                    result,
                }
            }),
        });
    }

    /// An operator purge (one user or all) through `isolate`.
    pub fn start_purge(&mut self, isolate: usize, user: Option<&str>) {
        let label = format!("purge {} @{isolate}", user.unwrap_or("all"));
        self.note(label.clone());
        let cache = self.isolates[isolate].cache.clone();
        let (store, model) = (self.store.clone(), self.model.clone());
        let user = user.map(str::to_owned);
        let task_label = label.clone();
        self.tasks.push(Task {
            isolate: Some(isolate),
            label,
            cancellable: false,
            fut: Box::pin(async move {
                let result = match &user {
                    Some(u) => cache.purge_user(&uid(u)).await,
                    None => cache.purge_all().await,
                };
                // A purge moves versions without changing data: the data at the new version
                // is what it was.
                for u in USERS {
                    record_snapshot(&store, &model, u);
                }
                Done::Write {
                    label: task_label,
                    result,
                }
            }),
        });
    }

    pub fn start_warm(&mut self, isolate: usize, user: &str) {
        self.note(format!("warm {user} @{isolate}"));
        let cache = self.isolates[isolate].cache.clone();
        let u = uid(user);
        self.tasks.push(Task {
            isolate: Some(isolate),
            label: format!("warm {user}"),
            cancellable: true,
            fut: Box::pin(async move {
                let _ = cache.warm(&u).await;
                Done::Background
            }),
        });
    }

    /// The isolate goes away with everything running in it; a fresh one takes its place.
    pub fn restart(&mut self, isolate: usize) {
        let incarnation = self.isolates[isolate].incarnation + 1;
        self.note(format!(
            "isolate {isolate} restarts (incarnation {incarnation})"
        ));
        self.tasks.retain(|t| t.isolate != Some(isolate));
        self.isolates[isolate] = self.new_isolate(isolate, incarnation);
    }

    /// Drops a running task mid-flight: a cancelled request.
    pub fn cancel_one(&mut self) {
        let cancellable: Vec<usize> = (0..self.tasks.len())
            .filter(|&i| self.tasks[i].cancellable)
            .collect();
        if cancellable.is_empty() {
            return;
        }
        let i = *self.rng().pick(&cancellable);
        let task = self.tasks.remove(i);
        self.note(format!("cancel {}", task.label));
    }

    /// Changes how hostile the world is from now on, for every isolate.
    pub fn set_faults(&mut self, faults: Faults) {
        self.note(format!("faults now {faults:?}"));
        self.env.faults.set(faults);
    }

    pub fn faults(&self) -> Faults {
        self.env.faults.get()
    }

    pub fn advance(&mut self, ms: i64) {
        self.env.clock.advance(ms);
    }

    // ---- Generators ----

    pub fn new_call_delivery(&mut self, user: &str) -> Delivery {
        let n = {
            let mut m = self.model.borrow_mut();
            m.next_call += 1;
            m.next_call
        };
        let id = format!("CAsim{n}");
        self.model
            .borrow_mut()
            .calls
            .entry(user.to_owned())
            .or_default()
            .insert(0, id.clone());
        let now = self.now();
        let (status, started) = {
            let mut rng = self.rng();
            let status = *rng.pick(&[
                CallStatus::Ringing,
                CallStatus::InProgress,
                CallStatus::Completed,
            ]);
            // Most calls are the newest; some arrive late, so they land inside the lists.
            let back = if rng.chance(0.3) {
                rng.below(600_000) as i64
            } else {
                0
            };
            (status, now - back)
        };
        Delivery {
            provider: Provider::Api,
            key: format!("sim-new-{id}"),
            event_type: "call.upserted".into(),
            call_id: Some(cid(&id)),
            events: vec![Event::Call(CallReport {
                call_id: cid(&id),
                owner: Owner {
                    user: Some(uid(user)),
                    number: None,
                },
                provider: Provider::Api,
                direction: Direction::Inbound,
                from: "+15550001111".into(),
                to: "+14155550199".into(),
                status,
                started_at: Some(started),
                ended_at: None,
                duration_seconds: None,
                at: now,
            })],
            received_at: now,
            payload: None,
        }
    }

    pub fn update_delivery(&mut self, user: &str, call: &str) -> Delivery {
        let now = self.now();
        let (kind, intent, confidence, moved) = {
            let mut rng = self.rng();
            let kind = rng.below(3);
            let intent = (*rng.pick(&["billing", "sales", "support"])).to_owned();
            // A later event sometimes reports when the call really started: it moves in the
            // lists, possibly past their end.
            let moved = rng.chance(0.3).then(|| now - rng.below(900_000) as i64);
            (kind, intent, rng.below(100) as f64 / 100.0, moved)
        };
        let n = self.claim.get();
        let (event_type, event) = match kind {
            0 => (
                "call.upserted",
                Event::Call(CallReport {
                    call_id: cid(call),
                    owner: Owner {
                        user: Some(uid(user)),
                        number: None,
                    },
                    provider: Provider::Api,
                    direction: Direction::Inbound,
                    from: "+15550001111".into(),
                    to: "+14155550199".into(),
                    status: CallStatus::Completed,
                    started_at: moved,
                    ended_at: Some(now),
                    duration_seconds: Some(30),
                    at: now,
                }),
            ),
            1 => (
                "call.analysis.completed",
                Event::Analysis(AnalysisReport {
                    call_id: cid(call),
                    owner: Owner {
                        user: Some(uid(user)),
                        number: None,
                    },
                    status: AnalysisStatus::Completed,
                    intent: Some(intent),
                    confidence: Some(confidence),
                    summary: None,
                    at: now,
                }),
            ),
            _ => (
                "call.enrichment.completed",
                Event::Enrichment(EnrichmentReport {
                    call_id: cid(call),
                    owner: Owner {
                        user: Some(uid(user)),
                        number: None,
                    },
                    phone_number: "+15550001111".into(),
                    caller_name: Some(format!("caller {n}")),
                    caller_type: None,
                    line_type: None,
                    carrier: None,
                    spam_score: None,
                    at: now,
                }),
            ),
        };
        Delivery {
            provider: Provider::Api,
            key: format!("sim-upd-{call}-{n}-{now}"),
            event_type: event_type.into(),
            call_id: Some(cid(call)),
            events: vec![event],
            received_at: now,
            payload: None,
        }
    }

    /// One random step: start something, cancel or restart something, or let time pass;
    /// then poll every task once, in random order, and check the invariants.
    pub fn random_step(&mut self) -> Result<(), Failure> {
        let isolate = self.rng().below(ISOLATES as u64) as usize;
        let user = *self.rng().pick(&USERS);
        let roll = self.rng().below(100);
        let calls = self
            .model
            .borrow()
            .calls
            .get(user)
            .cloned()
            .unwrap_or_default();
        match roll {
            0..=39 => {
                let loads = loads_for(&calls);
                let what = self.rng().pick(&loads).0.clone();
                let min = self.rng().chance(0.3);
                self.start_read(isolate, user, &what, min);
            }
            40..=49 => {
                let d = self.new_call_delivery(user);
                self.start_webhook(isolate, d, user);
            }
            50..=57 if !calls.is_empty() => {
                let tracked = &calls[..calls.len().min(TRACKED_CALLS)];
                let call = self.rng().pick(tracked).clone();
                let d = self.update_delivery(user, &call);
                self.start_webhook(isolate, d, user);
            }
            58..=60 => {
                // A provider retries a delivery it sent before.
                let sent = self.model.borrow().sent.clone();
                if !sent.is_empty() {
                    let d = self.rng().pick(&sent).clone();
                    let owner = d
                        .owner()
                        .user
                        .map_or_else(|| USERS[0].to_owned(), |u| u.to_string());
                    self.start_webhook(isolate, d, &owner);
                }
            }
            61..=62 if !calls.is_empty() => {
                let tracked = &calls[..calls.len().min(TRACKED_CALLS)];
                let call = self.rng().pick(tracked).clone();
                self.start_delete(isolate, user, &call);
            }
            63..=64 => self.cancel_one(),
            65 => self.restart(isolate),
            66 => self.start_warm(isolate, user),
            67 => {
                let all = self.rng().chance(0.3);
                self.start_purge(isolate, (!all).then_some(user));
            }
            _ => {
                let (long, short, pick) = {
                    let mut rng = self.rng();
                    (rng.below(8_000), rng.below(400), rng.below(10))
                };
                let ms = 1 + if pick == 0 { long } else { short } as i64;
                self.advance(ms);
            }
        }
        self.poll_all()
    }

    /// Polls every task once in random order; completed tasks are checked.
    pub fn poll_all(&mut self) -> Result<(), Failure> {
        self.step += 1;
        self.stats.steps += 1;
        for i in 0..self.isolates.len() {
            let spawned: Vec<LocalFuture> =
                self.isolates[i].rt.spawned.borrow_mut().drain(..).collect();
            for fut in spawned {
                self.tasks.push(Task {
                    isolate: Some(i),
                    label: "background".into(),
                    cancellable: false,
                    fut: Box::pin(async move {
                        fut.await;
                        Done::Background
                    }),
                });
            }
        }
        let mut order: Vec<usize> = (0..self.tasks.len()).collect();
        for i in (1..order.len()).rev() {
            let j = self.rng().below(i as u64 + 1) as usize;
            order.swap(i, j);
        }
        let mut finished = Vec::new();
        let mut cx = Context::from_waker(Waker::noop());
        for i in order {
            if let Poll::Ready(done) = self.tasks[i].fut.as_mut().poll(&mut cx) {
                finished.push((i, done));
            }
        }
        finished.sort_by_key(|(i, _)| std::cmp::Reverse(*i));
        let mut dones = Vec::new();
        for (i, done) in finished {
            self.tasks.remove(i);
            dones.push(done);
        }
        for done in dones {
            self.check_done(done)?;
        }
        self.check_bounds()
    }

    /// Lets time pass until nothing is running (or a long while has passed).
    pub fn settle(&mut self) -> Result<(), Failure> {
        for _ in 0..10_000 {
            let background: usize = self
                .isolates
                .iter()
                .map(|i| i.rt.spawned.borrow().len())
                .sum();
            if self.tasks.is_empty() && background == 0 {
                return Ok(());
            }
            self.advance(50);
            self.poll_all()?;
        }
        Err(self.fail(format!(
            "tasks never finished: {:?}",
            self.tasks.iter().map(|t| &t.label).collect::<Vec<_>>()
        )))
    }

    // ---- Invariants ----

    fn check_done(&mut self, done: Done) -> Result<(), Failure> {
        match done {
            Done::Background => Ok(()),
            Done::Write { label, result } => {
                self.stats.writes += 1;
                match result {
                    Ok(()) => {
                        self.note(format!("  done: {label}"));
                        Ok(())
                    }
                    Err(AppError::Internal { detail }) => {
                        Err(self.fail(format!("{label}: {detail}")))
                    }
                    Err(e) => {
                        self.note(format!("  failed: {label}: {e}"));
                        Ok(())
                    }
                }
            }
            Done::Read {
                isolate,
                incarnation,
                user,
                what,
                started,
                started_step,
                at_least,
                result,
            } => {
                self.stats.reads += 1;
                if self.isolates[isolate].incarnation != incarnation {
                    return Ok(()); // answered by an isolate that is gone
                }
                let served = match result {
                    Ok(s) => s,
                    Err(e) => {
                        self.stats.failed_reads += 1;
                        self.note(format!("  isolate {isolate} {user} {what}: error {e}"));
                        return Ok(());
                    }
                };
                self.note(format!(
                    "  isolate {isolate} {user} {what}: {} v{}",
                    served.outcome.header(),
                    served.version.get()
                ));
                self.check_read(
                    isolate,
                    &user,
                    &what,
                    (started, started_step),
                    at_least,
                    &served,
                )
            }
        }
    }

    fn check_read(
        &mut self,
        isolate: usize,
        user: &str,
        what: &str,
        (started, started_step): (i64, usize),
        at_least: Version,
        served: &Served<Option<Payload>>,
    ) -> Result<(), Failure> {
        let v = served.version;
        let stale = served.outcome == Outcome::Stale;
        if stale {
            self.stats.stale += 1;
        }
        let model = self.model.borrow();
        // Data at its version.
        let Some(snapshot) = model.snapshots.get(&(user.to_owned(), v)).cloned() else {
            drop(model);
            return Err(self.fail(format!(
                "{user} {what} claims version {} that no committed write produced",
                v.get()
            )));
        };
        let got = served.value.as_ref().map(|p| p.data_json().to_string());
        if let Some(expected) = snapshot.answers.get(what) {
            if *expected != got {
                drop(model);
                return Err(self.fail(format!(
                    "{user} {what} at version {}: served {got:?}, but D1 held {expected:?}",
                    v.get()
                )));
            }
        }
        // Monotonic, and never older than asked.
        if v < at_least {
            drop(model);
            return Err(self.fail(format!(
                "{user} {what}: version {} is older than X-Min-Version {}",
                v.get(),
                at_least.get()
            )));
        }
        let iso = &self.isolates[isolate];
        if let Some((before, at_step)) = iso
            .served
            .get(user)
            .copied()
            .filter(|(b, at_step)| v < *b && started_step > *at_step)
        {
            drop(model);
            return Err(self.fail(format!(
                "isolate {isolate} served {user} version {} in a read started at step \
                 {started_step}, after serving {} at step {at_step}",
                v.get(),
                before.get()
            )));
        }
        for ack in model.acks.iter().filter(|a| a.user == user) {
            let own =
                ack.isolate == isolate && ack.incarnation == iso.incarnation && ack.at <= started;
            let past_bound = ack.at + self.policy.sync_ms <= started;
            if (own || (past_bound && !stale)) && v < ack.version {
                let why = if own { "read-your-writes" } else { "the bound" };
                let msg = format!(
                    "{why}: isolate {isolate} read {user} {what} at t+{}ms with version {} \
                     (outcome {}), but a write acknowledged at t+{}ms in isolate {} had {}",
                    started - T0,
                    v.get(),
                    served.outcome.header(),
                    ack.at - T0,
                    ack.isolate,
                    ack.version.get()
                );
                drop(model);
                return Err(self.fail(msg));
            }
            if let Some(call) = &ack.deleted {
                let quoted = format!("\"{call}\"");
                let names_it = got.as_deref().is_some_and(|j| j.contains(&quoted));
                if names_it && (own || (past_bound && !stale)) {
                    let msg = format!(
                        "isolate {isolate} served deleted call {call} in {user} {what} \
                         (deleted at t+{}ms)",
                        ack.at - T0
                    );
                    drop(model);
                    return Err(self.fail(msg));
                }
            }
        }
        drop(model);
        let step = self.step;
        let served_before = self.isolates[isolate]
            .served
            .entry(user.to_owned())
            .or_default();
        if v >= served_before.0 {
            *served_before = (v, step);
        }
        let mut model = self.model.borrow_mut();
        let seen = model.client_seen.entry(user.to_owned()).or_default();
        *seen = (*seen).max(v);
        Ok(())
    }

    fn check_bounds(&self) -> Result<(), Failure> {
        for (i, iso) in self.isolates.iter().enumerate() {
            let state = &iso.cache.state;
            let sizes = (
                state.versions.borrow().len(),
                state.inflight.borrow().len(),
                state.due.borrow().users.len(),
                state.stats.borrow().per_user.len(),
            );
            if sizes.0 > VIEW_BOUND
                || sizes.1 > MAX_INFLIGHT
                || sizes.2 > MAX_DUE_FOR_SYNC
                || sizes.3 > 10_000
            {
                return Err(self.fail(format!(
                    "isolate {i} over a bound: view {}, in flight {}, due {}, counters {}",
                    sizes.0, sizes.1, sizes.2, sizes.3
                )));
            }
            // A mark with no task left to clear it would make every later reader wait.
            let running = self.tasks.iter().any(|t| t.isolate == Some(i))
                || !iso.rt.spawned.borrow().is_empty();
            if !running && sizes.1 > 0 {
                return Err(self.fail(format!(
                    "isolate {i} holds {} in-flight marks with nothing running",
                    sizes.1
                )));
            }
        }
        Ok(())
    }

    /// At the end: every delivery whose batch committed is recorded exactly once, and the
    /// calls in D1 are the ones created minus the ones deleted.
    pub fn check_exactly_once(&self) -> Result<(), Failure> {
        let model = self.model.borrow();
        for key in &model.committed {
            let rows = self.store.db_rows(&format!(
                "SELECT COUNT(*) AS n FROM webhook_deliveries WHERE delivery_key = '{key}'"
            ));
            if rows.first().and_then(|r| r["n"].as_i64()) != Some(1) {
                return Err(self.fail(format!("delivery {key} is not recorded exactly once")));
            }
        }
        let rows = self
            .store
            .db_rows("SELECT COUNT(*) AS n, COUNT(DISTINCT id) AS d FROM calls");
        let (n, d) = (rows[0]["n"].as_i64(), rows[0]["d"].as_i64());
        if n != d {
            return Err(self.fail(format!("duplicate calls: {n:?} rows, {d:?} ids")));
        }
        Ok(())
    }

    /// The cache counters of `isolate`'s current incarnation.
    pub fn isolate_counters(&self, isolate: usize) -> super::state::Counters {
        self.isolates[isolate].cache.stats(None).counters
    }

    pub fn stats(&self) -> RunStats {
        RunStats {
            refreshed: self.model.borrow().refreshed,
            // Of the isolates' current incarnations (a restart starts its counters over).
            carried: self
                .isolates
                .iter()
                .map(|i| i.cache.stats(None).counters.carried_forward as usize)
                .sum(),
            patched: self
                .isolates
                .iter()
                .map(|i| i.cache.stats(None).counters.patched_on_write as usize)
                .sum(),
            ..self.stats
        }
    }

    pub fn trace(&self) -> &[String] {
        &self.trace
    }
}

/// Runs `seed` for `steps` random steps, then lets everything finish and checks the end state.
pub fn run_seed(seed: u64, steps: usize) -> Result<RunStats, Failure> {
    let mut world = World::new(seed);
    for _ in 0..steps {
        world.random_step()?;
    }
    world.settle()?;
    world.check_exactly_once()?;
    Ok(world.stats())
}

#[cfg(test)]
mod tests;
