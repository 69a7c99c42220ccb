//! The identity provider's keys as one isolate holds them: a [`KeySet`] fetched from
//! `JWT_JWKS_URL`, shared through KV, and refreshed on two rules.
//!
//! - **Freshness.** A set is fresh for [`FRESH_FOR_MS`] (10 min) from when it was fetched from
//!   the provider. A stale set is replaced from KV when another isolate has fetched a fresher
//!   one, else from the provider; until a replacement arrives the stale set keeps serving, so
//!   while the provider is down or answers garbage, known keys keep working.
//! - **Unknown kids.** A token naming a kid the set lacks (a rotation) sends this isolate to
//!   the provider at most once every [`REFETCH_EVERY_MS`] (30 s), so a flood of forged kids
//!   costs the provider one request per isolate per 30 s.
//!
//! Only one fetch runs at a time per isolate: requests arriving meanwhile wait for it rather
//! than start their own (or fail because the throttle is closed), and a cancelled fetch wakes
//! them. The ring is plain state behind a `RefCell`, driven through the small traits below, so
//! host tests run every path with a fake provider, shelf and clock.

use super::jwks::{parse_jwks, Algorithm, JwksError, KeySet, Lookup, PublicKey};
use std::cell::RefCell;
use std::future::poll_fn;
use std::rc::Rc;
use std::task::{Poll, Waker};

/// How long a set fetched from the provider counts as current.
pub const FRESH_FOR_MS: i64 = 10 * 60 * 1000;
/// The least time between two trips to the provider made for unknown kids or a stale set.
pub const REFETCH_EVERY_MS: i64 = 30 * 1000;

/// The identity provider's JWKS endpoint.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait JwksSource {
    /// The body of a successful response (the caller bounds and parses it), or why not.
    async fn fetch(&self) -> Result<Vec<u8>, String>;
}

/// Where isolates share the last set fetched (KV), with when it was fetched.
#[allow(async_fn_in_trait)]
pub trait JwksShelf {
    async fn load(&self) -> Option<Shelved>;
    async fn store(&self, shelved: &Shelved);
}

/// A fetched JWKS body as shelved: the provider's bytes and when they were fetched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shelved {
    pub fetched_at_ms: i64,
    pub body: String,
}

/// What a key lookup could not find.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyMiss {
    /// No key with that kid, even after the refetch the throttle allowed (or the provider
    /// could not be reached and nothing cached has it).
    Unknown,
    /// The kid is known, for another algorithm.
    WrongAlgorithm,
}

/// What happened on the last trip to the provider, for logs and stats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    Fetched { keys: usize, skipped: usize },
    Failed(String),
    Refused(JwksError),
}

#[derive(Default)]
pub struct KeyRing {
    set: Option<Rc<KeySet>>,
    fetched_at_ms: i64,
    /// When this isolate last went to the provider (attempts count, successful or not).
    last_trip_ms: Option<i64>,
    /// When this isolate last looked at the shelf for a stale set: a set that stays stale (the
    /// provider down) must not cost every request a KV read.
    last_shelf_ms: Option<i64>,
    fetching: bool,
    waiting: Vec<Waker>,
    /// Trips to the provider and their outcomes, newest last (bounded), for tests and logs.
    pub trips: u64,
    pub last_outcome: Option<FetchOutcome>,
}

impl KeyRing {
    fn fresh(&self, now_ms: i64) -> bool {
        self.set.is_some() && now_ms.saturating_sub(self.fetched_at_ms) < FRESH_FOR_MS
    }

    fn may_go_to_provider(&self, now_ms: i64) -> bool {
        self.last_trip_ms
            .is_none_or(|t| now_ms.saturating_sub(t) >= REFETCH_EVERY_MS)
    }

    fn may_look_at_shelf(&self, now_ms: i64) -> bool {
        !self.fetching
            && (self.set.is_none()
                || self
                    .last_shelf_ms
                    .is_none_or(|t| now_ms.saturating_sub(t) >= REFETCH_EVERY_MS))
    }

    fn lookup(&self, kid: &str, alg: Algorithm) -> Lookup {
        self.set
            .as_ref()
            .map_or(Lookup::Unknown, |set| set.find(kid, alg))
    }

    /// Installs a shelved set when it was fetched later than what the ring holds.
    fn install_shelved(&mut self, set: KeySet, fetched_at_ms: i64) {
        if self.set.is_none() || fetched_at_ms > self.fetched_at_ms {
            self.install(set, fetched_at_ms);
        }
    }

    /// Installs a set just fetched from the provider: the newest there is, whatever the clock
    /// says (the runtime's clock stands still between I/O, and the shelved set may carry the
    /// same millisecond).
    fn install(&mut self, set: KeySet, fetched_at_ms: i64) {
        self.set = Some(Rc::new(set));
        self.fetched_at_ms = self.fetched_at_ms.max(fetched_at_ms);
    }

    /// True when the ring currently holds exactly this key and is fresh.
    pub fn holds_fresh(&self, fingerprint: &[u8; 32], now_ms: i64) -> bool {
        self.fresh(now_ms) && self.set.as_ref().is_some_and(|s| s.holds(fingerprint))
    }

    pub fn key_count(&self) -> usize {
        self.set.as_ref().map_or(0, |s| s.len())
    }
}

/// Clears `fetching` and wakes the waiters when the fetching request ends — by finishing or
/// by being dropped mid-await (a cancelled request must not leave the others waiting).
struct FetchGuard<'a>(&'a RefCell<KeyRing>);

impl Drop for FetchGuard<'_> {
    fn drop(&mut self) {
        let waiting = {
            let mut ring = self.0.borrow_mut();
            ring.fetching = false;
            std::mem::take(&mut ring.waiting)
        };
        for w in waiting {
            w.wake();
        }
    }
}

async fn until_fetch_ends(ring: &RefCell<KeyRing>) {
    poll_fn(|cx| {
        let mut r = ring.borrow_mut();
        if r.fetching {
            r.waiting.push(cx.waker().clone());
            Poll::Pending
        } else {
            Poll::Ready(())
        }
    })
    .await;
}

/// The key named `kid` for `alg`, refreshing the ring as the module's rules allow.
pub async fn key_for<S: JwksSource, H: JwksShelf>(
    ring: &RefCell<KeyRing>,
    source: &S,
    shelf: &H,
    kid: &str,
    alg: Algorithm,
    now_ms: i64,
) -> Result<Rc<PublicKey>, KeyMiss> {
    if ring.borrow().fresh(now_ms) {
        match ring.borrow().lookup(kid, alg) {
            Lookup::Found(key) => return Ok(key),
            Lookup::WrongAlgorithm => return Err(KeyMiss::WrongAlgorithm),
            Lookup::Unknown => {}
        }
    } else if ring.borrow().may_look_at_shelf(now_ms) {
        // Stale or empty: another isolate may have fetched a fresher set.
        ring.borrow_mut().last_shelf_ms = Some(now_ms);
        if let Some(shelved) = shelf.load().await {
            if let Ok(set) = parse_jwks(shelved.body.as_bytes()) {
                ring.borrow_mut()
                    .install_shelved(set, shelved.fetched_at_ms);
            }
        }
        if ring.borrow().fresh(now_ms) {
            if let Lookup::Found(key) = ring.borrow().lookup(kid, alg) {
                return Ok(key);
            }
        }
    }
    refresh_from_provider(ring, source, shelf, now_ms).await;
    match ring.borrow().lookup(kid, alg) {
        Lookup::Found(key) => Ok(key),
        Lookup::WrongAlgorithm => Err(KeyMiss::WrongAlgorithm),
        Lookup::Unknown => Err(KeyMiss::Unknown),
    }
}

/// One trip to the provider if none is running and the throttle allows; otherwise waits for
/// the running one (or returns at once when the throttle is closed).
async fn refresh_from_provider<S: JwksSource, H: JwksShelf>(
    ring: &RefCell<KeyRing>,
    source: &S,
    shelf: &H,
    now_ms: i64,
) {
    if ring.borrow().fetching {
        until_fetch_ends(ring).await;
        return;
    }
    if !ring.borrow().may_go_to_provider(now_ms) {
        return;
    }
    {
        let mut r = ring.borrow_mut();
        r.fetching = true;
        r.last_trip_ms = Some(now_ms);
        r.trips = r.trips.saturating_add(1);
    }
    let _guard = FetchGuard(ring);
    let outcome = match source.fetch().await {
        Err(why) => FetchOutcome::Failed(why),
        Ok(body) => match parse_jwks(&body) {
            Err(e) => FetchOutcome::Refused(e),
            Ok(set) => {
                let outcome = FetchOutcome::Fetched {
                    keys: set.len(),
                    skipped: set.skipped,
                };
                ring.borrow_mut().install(set, now_ms);
                // Bodies that parsed are valid UTF-8 JSON.
                if let Ok(body) = String::from_utf8(body) {
                    shelf
                        .store(&Shelved {
                            fetched_at_ms: now_ms,
                            body,
                        })
                        .await;
                }
                outcome
            }
        },
    };
    ring.borrow_mut().last_outcome = Some(outcome);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::block_on;
    use futures_util::future::join;
    use futures_util::FutureExt;
    use serde_json::json;
    use std::cell::Cell;

    const FIXTURE: &str = include_str!("../../tests/fixtures/jwks/keys.json");
    const T0: i64 = 1_800_000_000_000;

    fn key(i: usize) -> serde_json::Value {
        let fx: serde_json::Value = serde_json::from_str(FIXTURE).expect("json");
        fx["jwks"]["keys"][i].clone()
    }

    fn jwks(keys: &[serde_json::Value]) -> String {
        json!({ "keys": keys }).to_string()
    }

    /// A provider whose answer the test sets, counting requests; optionally never answering.
    struct Provider {
        body: RefCell<Result<String, String>>,
        hits: Cell<u32>,
        hang: Cell<bool>,
    }

    impl Provider {
        fn serving(body: String) -> Self {
            Self {
                body: RefCell::new(Ok(body)),
                hits: Cell::new(0),
                hang: Cell::new(false),
            }
        }
        fn serve(&self, body: String) {
            *self.body.borrow_mut() = Ok(body);
        }
        fn down(&self) {
            *self.body.borrow_mut() = Err("connection refused".into());
        }
    }

    impl JwksSource for Provider {
        async fn fetch(&self) -> Result<Vec<u8>, String> {
            self.hits.set(self.hits.get() + 1);
            if self.hang.get() {
                std::future::pending::<()>().await;
            }
            // One turn of the executor, so concurrent lookups really overlap the fetch.
            let mut yielded = false;
            poll_fn(|cx| {
                if yielded {
                    Poll::Ready(())
                } else {
                    yielded = true;
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            })
            .await;
            self.body.borrow().clone().map(String::into_bytes)
        }
    }

    #[derive(Default)]
    struct Shelf {
        held: RefCell<Option<Shelved>>,
        loads: Cell<u32>,
    }

    impl JwksShelf for Shelf {
        async fn load(&self) -> Option<Shelved> {
            self.loads.set(self.loads.get() + 1);
            self.held.borrow().clone()
        }
        async fn store(&self, s: &Shelved) {
            *self.held.borrow_mut() = Some(s.clone());
        }
    }

    fn lookup(
        ring: &RefCell<KeyRing>,
        p: &Provider,
        s: &Shelf,
        kid: &str,
        alg: Algorithm,
        now: i64,
    ) -> Result<String, KeyMiss> {
        block_on(key_for(ring, p, s, kid, alg, now)).map(|k| k.kid.clone())
    }

    #[test]
    fn the_first_token_fetches_the_set_and_later_ones_are_served_from_memory() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(0), key(3)])),
            Shelf::default(),
        );
        for i in 0..5 {
            let got = lookup(&ring, &p, &s, "ed25519", Algorithm::EdDsa, T0 + i * 1000);
            assert_eq!(got.as_deref(), Ok("ed25519"));
        }
        assert_eq!(p.hits.get(), 1);
        assert!(
            s.held.borrow().is_some(),
            "the fetched set is shelved for other isolates"
        );
    }

    #[test]
    fn a_new_isolate_takes_a_fresh_set_from_the_shelf_without_asking_the_provider() {
        let p = Provider::serving(jwks(&[key(3)]));
        let s = Shelf::default();
        *s.held.borrow_mut() = Some(Shelved {
            fetched_at_ms: T0,
            body: jwks(&[key(2)]),
        });
        let ring = RefCell::default();
        let got = lookup(&ring, &p, &s, "p256", Algorithm::Es256, T0 + 60_000);
        assert_eq!(got.as_deref(), Ok("p256"));
        assert_eq!(p.hits.get(), 0);
    }

    #[test]
    fn a_rotated_key_is_found_by_one_refetch_and_unknown_kids_refetch_at_most_every_30_s() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(0)])),
            Shelf::default(),
        );
        assert!(lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, T0).is_ok());
        // The provider rotates: a token with the new kid arrives 40 s later.
        p.serve(jwks(&[key(0), key(3)]));
        let now = T0 + 40_000;
        assert_eq!(
            lookup(&ring, &p, &s, "ed25519", Algorithm::EdDsa, now).as_deref(),
            Ok("ed25519")
        );
        assert_eq!(p.hits.get(), 2);
        // A flood of forged kids within the next 30 s: no trip to the provider.
        for i in 0..100 {
            let kid = format!("forged-{i}");
            assert_eq!(
                lookup(&ring, &p, &s, &kid, Algorithm::Rs256, now + 100 * i),
                Err(KeyMiss::Unknown)
            );
        }
        assert_eq!(p.hits.get(), 2);
        // After 30 s one more trip is allowed, and only one.
        for i in 0..10 {
            let _ = lookup(&ring, &p, &s, "forged", Algorithm::Rs256, now + 30_000 + i);
        }
        assert_eq!(p.hits.get(), 3);
    }

    #[test]
    fn a_refetch_replaces_a_shelved_set_fetched_in_the_same_millisecond() {
        // Found end to end: the runtime's clock stands still between I/O, so an isolate that
        // took another's set from the shelf and then refetched for a rotated kid saw equal
        // timestamps, kept the old set, and refused the new key.
        let p = Provider::serving(jwks(&[key(0), key(3)]));
        let s = Shelf::default();
        *s.held.borrow_mut() = Some(Shelved {
            fetched_at_ms: T0,
            body: jwks(&[key(0)]),
        });
        let ring = RefCell::default();
        assert!(lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, T0).is_ok());
        assert_eq!(
            lookup(&ring, &p, &s, "ed25519", Algorithm::EdDsa, T0).as_deref(),
            Ok("ed25519")
        );
        assert_eq!(p.hits.get(), 1);
    }

    #[test]
    fn a_set_that_stays_stale_costs_one_shelf_read_per_30_s_not_one_per_request() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(0)])),
            Shelf::default(),
        );
        assert!(lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, T0).is_ok());
        p.down();
        let before = s.loads.get();
        let stale = T0 + FRESH_FOR_MS;
        for i in 0..100 {
            assert!(lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, stale + i).is_ok());
        }
        assert_eq!(s.loads.get(), before + 1);
        assert!(lookup(
            &ring,
            &p,
            &s,
            "rsa-2048",
            Algorithm::Rs256,
            stale + REFETCH_EVERY_MS
        )
        .is_ok());
        assert_eq!(s.loads.get(), before + 2);
    }

    #[test]
    fn while_the_provider_is_down_or_answers_garbage_cached_keys_keep_working() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(0), key(2)])),
            Shelf::default(),
        );
        assert!(lookup(&ring, &p, &s, "p256", Algorithm::Es256, T0).is_ok());
        for (i, trouble) in ["down", "garbage", "empty set"].into_iter().enumerate() {
            match trouble {
                "down" => p.down(),
                "garbage" => p.serve("<html>502 Bad Gateway</html>".into()),
                _ => p.serve(jwks(&[])),
            }
            // Long past freshness, and past the throttle each time.
            let now = T0 + FRESH_FOR_MS + (i as i64 + 1) * REFETCH_EVERY_MS;
            assert!(
                lookup(&ring, &p, &s, "p256", Algorithm::Es256, now).is_ok(),
                "{trouble}"
            );
            assert_eq!(
                lookup(&ring, &p, &s, "unknown", Algorithm::Es256, now),
                Err(KeyMiss::Unknown),
                "{trouble}"
            );
        }
        assert!(matches!(
            ring.borrow().last_outcome,
            Some(FetchOutcome::Refused(JwksError::NoUsableKey))
        ));
        // The shelf still holds the last good set, for isolates that start meanwhile.
        let shelved = s.held.borrow().clone().expect("shelved");
        assert_eq!(shelved.fetched_at_ms, T0);
    }

    #[test]
    fn a_stale_set_is_refreshed_once_per_30_s_while_it_keeps_serving() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(0)])),
            Shelf::default(),
        );
        assert!(lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, T0).is_ok());
        p.down();
        let stale = T0 + FRESH_FOR_MS + 1;
        for i in 0..50 {
            assert!(lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, stale + i).is_ok());
        }
        assert_eq!(p.hits.get(), 2, "one refresh attempt, then the throttle");
        p.serve(jwks(&[key(3)])); // the RSA key was retired meanwhile
        let later = stale + REFETCH_EVERY_MS;
        assert_eq!(
            lookup(&ring, &p, &s, "rsa-2048", Algorithm::Rs256, later),
            Err(KeyMiss::Unknown),
            "a key the provider dropped stops working at the next refresh"
        );
    }

    #[test]
    fn algorithm_confusion_never_sends_anyone_to_the_provider() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(2)])),
            Shelf::default(),
        );
        assert!(lookup(&ring, &p, &s, "p256", Algorithm::Es256, T0).is_ok());
        for i in 0..10 {
            assert_eq!(
                lookup(&ring, &p, &s, "p256", Algorithm::Rs256, T0 + 40_000 + i),
                Err(KeyMiss::WrongAlgorithm)
            );
        }
        assert_eq!(p.hits.get(), 1);
    }

    #[test]
    fn requests_arriving_during_a_fetch_wait_for_it_instead_of_failing_or_fetching_again() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(3)])),
            Shelf::default(),
        );
        let (a, b) = block_on(join(
            key_for(&ring, &p, &s, "ed25519", Algorithm::EdDsa, T0),
            key_for(&ring, &p, &s, "ed25519", Algorithm::EdDsa, T0),
        ));
        assert!(a.is_ok() && b.is_ok());
        assert_eq!(p.hits.get(), 1);
    }

    #[test]
    fn a_fetch_cancelled_mid_flight_leaves_no_one_waiting_and_the_throttle_applies() {
        let (ring, p, s) = (
            RefCell::default(),
            Provider::serving(jwks(&[key(3)])),
            Shelf::default(),
        );
        p.hang.set(true);
        let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
        {
            let mut stuck = key_for(&ring, &p, &s, "ed25519", Algorithm::EdDsa, T0).boxed_local();
            assert!(stuck.as_mut().poll(&mut cx).is_pending());
            assert!(ring.borrow().fetching);
        } // the request is cancelled here
        assert!(!ring.borrow().fetching);
        p.hang.set(false);
        assert_eq!(
            lookup(&ring, &p, &s, "ed25519", Algorithm::EdDsa, T0 + 1),
            Err(KeyMiss::Unknown),
            "within the throttle"
        );
        assert!(lookup(
            &ring,
            &p,
            &s,
            "ed25519",
            Algorithm::EdDsa,
            T0 + REFETCH_EVERY_MS
        )
        .is_ok());
    }
}
