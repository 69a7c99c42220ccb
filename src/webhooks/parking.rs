//! Durable parking for verified deliveries that D1 could not take. The webhook route parks the
//! delivery (KV in production) and still answers the provider 2xx; the scheduled handler
//! replays parked deliveries through the same idempotent ingest, so a delivery applied twice —
//! say D1 committed but the reply was lost — still has one effect.
//!
//! Replay always makes progress. An entry that cannot be read back as a delivery is moved
//! aside at once; one that fails to apply while D1 is answering (a probe after the failure
//! says so) is charged an attempt and skipped, and after [`MAX_ATTEMPTS`] it is moved aside
//! too. Moved aside means kept under [`DEAD_PREFIX`] with the reason and the attempt count —
//! a verified delivery is never deleted unapplied — where `GET /api/admin/parked` shows it and
//! `POST /api/admin/parked/requeue` puts it back once the cause is fixed. When D1 itself is
//! down (the probe fails too), the pass stops without charging anyone: an outage never pushes
//! healthy deliveries aside. Dead letters are out of the listing replay reads, so however many
//! there are, later deliveries are reached.

use crate::domain::{CallId, Delivery, UserId, Version};
use crate::error::AppResult;
use crate::json_writer::ToJson;
use crate::store::{Database, Store};
use sha2::{Digest, Sha256};

/// Where parked deliveries live. Keys are opaque strings under two prefixes.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait Parking {
    async fn put(&self, key: &str, value: &str) -> AppResult<()>;
    /// Up to `limit` keys under `prefix`, oldest first where the backend can tell.
    async fn list(&self, prefix: &str, limit: usize) -> AppResult<Vec<String>>;
    async fn load(&self, key: &str) -> AppResult<Option<String>>;
    async fn remove(&self, key: &str) -> AppResult<()>;
}

/// Deliveries waiting for D1.
pub const PREFIX: &str = "parked:v1:";
/// Deliveries moved aside (unreadable, or failing while D1 answers), kept for an operator.
pub const DEAD_PREFIX: &str = "parked-dead:v1:";
/// Failed applies, while D1 answers, before an entry is moved aside.
pub const MAX_ATTEMPTS: u32 = 5;

/// A parked entry: the delivery and how often applying it failed while D1 was answering.
/// (Entries parked before attempts were counted are a bare delivery: zero attempts.)
struct Parked {
    attempts: u32,
    delivery: Delivery,
}
crate::json_object!(Parked { "attempts": attempts, "delivery": delivery });

/// A dead letter: why it was moved aside, and the entry exactly as it was parked. Written
/// by `json_writer`, read back by hand ([`DeadLetter::read`]).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub reason: String,
    pub attempts: u32,
    pub moved_at: i64,
    pub provider: Option<String>,
    /// The parked value as it was (a delivery may quote personal data: never listed).
    pub parked: String,
}
crate::json_object!(DeadLetter {
    "reason": reason,
    "attempts": attempts,
    "movedAt": moved_at,
    "provider": provider,
    "parked": parked,
});

impl DeadLetter {
    /// The dead letter `json` holds, or `None` when it is not one.
    fn read(json: &str) -> Option<Self> {
        let v = crate::json::parse(json.as_bytes()).ok()?;
        let o = v.as_object()?;
        let text = |name: &str| crate::json::string(o.get(name)?);
        Some(DeadLetter {
            reason: text("reason")?,
            attempts: u32::try_from(o.get("attempts")?.as_u64()?).ok()?,
            moved_at: o.get("movedAt")?.as_i64()?,
            provider: crate::json::optional(o, "provider", crate::json::string)?,
            parked: text("parked")?,
        })
    }
}

/// A parked delivery's key: the time it arrived (so listings come out oldest first) and a
/// digest of its identity, which keeps keys short whatever the provider's ids look like.
pub fn parking_key(d: &Delivery) -> String {
    let digest = Sha256::digest(format!("{}\0{}", d.provider.as_str(), d.key).as_bytes());
    format!(
        "{PREFIX}{:013}:{}:{}",
        d.received_at.max(0),
        d.provider.as_str(),
        crate::hex::encode(&digest[..12])
    )
}

fn encode<T: ToJson>(v: &T) -> AppResult<String> {
    Ok(crate::json_writer::to_string(v))
}

pub async fn park<P: Parking>(parking: &P, d: &Delivery) -> AppResult<String> {
    let json = encode(&Parked {
        attempts: 0,
        delivery: d.clone(),
    })?;
    let key = parking_key(d);
    parking.put(&key, &json).await?;
    Ok(key)
}

/// A parked entry, or a bare delivery parked before attempts were counted.
fn read_parked(json: &str) -> Option<Parked> {
    let value = crate::json::parse(json.as_bytes()).ok()?;
    let counted = || {
        Some(Parked {
            attempts: u32::try_from(value.get("attempts")?.as_u64()?).ok()?,
            delivery: Delivery::from_json(value.get("delivery")?)?,
        })
    };
    counted().or_else(|| {
        Some(Parked {
            attempts: 0,
            delivery: Delivery::from_json(&value)?,
        })
    })
}

/// What one replay pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: usize,
    /// Failed while D1 answered: charged an attempt, left for the next pass.
    pub failed: usize,
    /// Moved aside this pass (unreadable, or out of attempts).
    pub moved_aside: usize,
    /// True when the pass stopped because D1 was down: nothing was charged.
    pub stopped_by_outage: bool,
    /// Whose data the replayed deliveries changed, at which version: the caches to retire.
    pub touched: Vec<(UserId, Option<CallId>, Option<Version>)>,
}

/// Moves `key` aside under [`DEAD_PREFIX`], then removes it from the queue.
async fn move_aside<P: Parking>(
    parking: &P,
    key: &str,
    parked: &str,
    reason: &str,
    attempts: u32,
    now: i64,
) -> AppResult<()> {
    let letter = DeadLetter {
        reason: reason.to_owned(),
        attempts,
        moved_at: now,
        provider: key
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split(':').nth(1))
            .map(str::to_owned),
        parked: parked.to_owned(),
    };
    let dead_key = format!("{DEAD_PREFIX}{}", key.strip_prefix(PREFIX).unwrap_or(key));
    parking.put(&dead_key, &encode(&letter)?).await?;
    parking.remove(key).await
}

/// Applies up to `limit` parked deliveries; each one leaves the queue only once D1 took it or
/// it was moved aside.
pub async fn replay<P: Parking, D: Database>(
    parking: &P,
    store: &Store<D>,
    limit: usize,
    now: i64,
    mut nonce: impl FnMut() -> AppResult<String>,
) -> AppResult<ReplayReport> {
    let mut report = ReplayReport::default();
    for key in parking.list(PREFIX, limit).await? {
        let Some(json) = parking.load(&key).await? else {
            continue; // removed by a concurrent replay
        };
        let Some(mut entry) = read_parked(&json) else {
            move_aside(parking, &key, &json, "unreadable", 0, now).await?;
            report.moved_aside += 1;
            continue;
        };
        match store.ingest(&entry.delivery, &nonce()?).await {
            Ok(ingested) => {
                parking.remove(&key).await?;
                report.replayed += 1;
                if let (true, Some(user)) = (ingested.changed_data(), ingested.user) {
                    report.touched.push((user, ingested.call, ingested.version));
                }
            }
            Err(apply_error) => {
                if store.ping().await.is_err() {
                    // D1 is down: stop, charge nobody, leave everything for the next run.
                    report.stopped_by_outage = true;
                    break;
                }
                entry.attempts = entry.attempts.saturating_add(1);
                if entry.attempts >= MAX_ATTEMPTS {
                    let reason = format!(
                        "failed {} times while D1 answered: {apply_error}",
                        entry.attempts
                    );
                    move_aside(parking, &key, &json, &reason, entry.attempts, now).await?;
                    report.moved_aside += 1;
                } else {
                    parking.put(&key, &encode(&entry)?).await?;
                    report.failed += 1;
                }
            }
        }
    }
    Ok(report)
}

/// The dead letters, for an operator: key, provider, reason, attempts and when — never the
/// delivery itself.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetterInfo {
    pub key: String,
    pub provider: Option<String>,
    pub reason: String,
    pub attempts: u32,
    pub moved_at: i64,
}
crate::json_object!(DeadLetterInfo {
    "key": key,
    "provider": provider,
    "reason": reason,
    "attempts": attempts,
    "movedAt": moved_at,
});

/// Up to `limit` dead letters, and how many deliveries wait in the queue (up to `limit`).
pub async fn inspect<P: Parking>(
    parking: &P,
    limit: usize,
) -> AppResult<(usize, Vec<DeadLetterInfo>)> {
    let queued = parking.list(PREFIX, limit).await?.len();
    let mut dead = Vec::new();
    for key in parking.list(DEAD_PREFIX, limit).await? {
        let Some(json) = parking.load(&key).await? else {
            continue;
        };
        let letter = DeadLetter::read(&json);
        dead.push(match letter {
            Some(l) => DeadLetterInfo {
                key,
                provider: l.provider,
                reason: l.reason,
                attempts: l.attempts,
                moved_at: l.moved_at,
            },
            None => DeadLetterInfo {
                key,
                provider: None,
                reason: "unreadable dead letter".into(),
                attempts: 0,
                moved_at: 0,
            },
        });
    }
    Ok((queued, dead))
}

/// Puts up to `limit` dead letters back in the queue with a fresh attempt count (after the
/// cause was fixed); returns how many. Unreadable ones stay where they are.
pub async fn requeue<P: Parking>(parking: &P, limit: usize) -> AppResult<usize> {
    let mut moved = 0;
    for key in parking.list(DEAD_PREFIX, limit).await? {
        let Some(json) = parking.load(&key).await? else {
            continue;
        };
        let Some(parked) = DeadLetter::read(&json).and_then(|l| read_parked(&l.parked)) else {
            continue;
        };
        let back = format!("{PREFIX}{}", key.strip_prefix(DEAD_PREFIX).unwrap_or(&key));
        let fresh = Parked {
            attempts: 0,
            delivery: parked.delivery,
        };
        parking.put(&back, &encode(&fresh)?).await?;
        parking.remove(&key).await?;
        moved += 1;
    }
    Ok(moved)
}

/// An in-memory [`Parking`] for host tests.
#[cfg(test)]
#[derive(Default)]
pub struct MemoryParking {
    pub entries: std::cell::RefCell<std::collections::BTreeMap<String, String>>,
    pub fail: std::cell::Cell<bool>,
}

#[cfg(test)]
impl Parking for MemoryParking {
    async fn put(&self, key: &str, value: &str) -> AppResult<()> {
        if self.fail.get() {
            return Err(crate::error::AppError::unavailable("KV: injected failure"));
        }
        self.entries.borrow_mut().insert(key.into(), value.into());
        Ok(())
    }
    async fn list(&self, prefix: &str, limit: usize) -> AppResult<Vec<String>> {
        Ok(self
            .entries
            .borrow()
            .keys()
            .filter(|k| k.starts_with(prefix))
            .take(limit)
            .cloned()
            .collect())
    }
    async fn load(&self, key: &str) -> AppResult<Option<String>> {
        Ok(self.entries.borrow().get(key).cloned())
    }
    async fn remove(&self, key: &str) -> AppResult<()> {
        self.entries.borrow_mut().remove(key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallId, Timestamp, UserId};
    use crate::store::sqlite::SqliteDatabase;
    use crate::testing::block_on;
    use crate::webhooks::standard;

    fn delivery(id: &str, call: &str) -> Delivery {
        let body = serde_json::json!({"type": "call.upserted", "data": {"userId": "ada", "id": call, "status": "completed"}});
        standard::parse(
            id,
            body.to_string().as_bytes(),
            Timestamp::from_millis(1_000),
        )
        .expect("parses")
    }

    fn counter() -> impl FnMut() -> AppResult<String> {
        let mut n = 0;
        move || {
            n += 1;
            Ok(format!("nonce-{n}"))
        }
    }

    #[test]
    fn parking_keys_sort_by_arrival_and_stay_short() {
        let mut a = delivery("msg_a", "CA1");
        let mut b = delivery(&"x".repeat(400), "CA2");
        a.received_at = 2_000;
        b.received_at = 1_000;
        let (ka, kb) = (parking_key(&a), parking_key(&b));
        assert!(kb < ka);
        assert!(kb.len() < 80);
        assert_ne!(
            parking_key(&delivery("m1", "CA1")),
            parking_key(&delivery("m2", "CA1"))
        );
    }

    #[test]
    fn a_parked_delivery_is_applied_by_replay_and_leaves_parking() {
        let parking = MemoryParking::default();
        let store = Store::new(SqliteDatabase::migrated());
        block_on(park(&parking, &delivery("msg_1", "CA1"))).expect("parks");
        let report = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
        assert_eq!(
            (report.replayed, report.failed, report.moved_aside),
            (1, 0, 0)
        );
        let touched: Vec<_> = report
            .touched
            .iter()
            .map(|t| (t.0.clone(), t.1.clone()))
            .collect();
        assert_eq!(
            touched,
            vec![(UserId::parse("ada").expect("valid"), CallId::parse("CA1"))]
        );
        assert!(
            report.touched[0].2.is_some(),
            "with the version it moved to"
        );
        assert!(parking.entries.borrow().is_empty());
        let user = UserId::parse("ada").expect("valid");
        let call = CallId::parse("CA1").expect("valid");
        assert!(block_on(store.load_call(&user, &call))
            .expect("loads")
            .0
            .is_some());
    }

    #[test]
    fn replaying_a_delivery_that_already_landed_has_no_second_effect() {
        let parking = MemoryParking::default();
        let store = Store::new(SqliteDatabase::migrated());
        let d = delivery("msg_1", "CA1");
        block_on(store.ingest(&d, "first")).expect("lands");
        block_on(park(&parking, &d)).expect("parks");
        block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
        let user = UserId::parse("ada").expect("valid");
        let summary = block_on(
            store.load_intent_summary(&user, crate::domain::Limit::new(5, 500).expect("ok")),
        )
        .expect("loads")
        .0;
        assert_eq!(summary.stats.total_calls, 1);
    }

    const NOW: i64 = 1_800_000_000_000;

    fn poisoned_store() -> Store<SqliteDatabase> {
        let store = Store::new(SqliteDatabase::migrated());
        // Stands for any delivery D1 refuses every time while answering everything else.
        store.db_exec(
            "CREATE TRIGGER poison BEFORE INSERT ON calls WHEN NEW.id = 'CApoison' \
             BEGIN SELECT RAISE(ABORT, 'poison'); END",
        );
        store
    }

    fn queued(p: &MemoryParking) -> usize {
        p.entries
            .borrow()
            .keys()
            .filter(|k| k.starts_with(PREFIX))
            .count()
    }

    fn dead(p: &MemoryParking) -> usize {
        p.entries
            .borrow()
            .keys()
            .filter(|k| k.starts_with(DEAD_PREFIX))
            .count()
    }

    #[test]
    fn a_poison_entry_in_front_of_a_good_one_does_not_stop_the_good_one() {
        let parking = MemoryParking::default();
        let store = poisoned_store();
        let mut poison = delivery("msg_poison", "CApoison");
        poison.received_at = 1;
        block_on(park(&parking, &poison)).expect("parks");
        block_on(park(&parking, &delivery("msg_good", "CAgood"))).expect("parks");
        let report = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
        assert_eq!((report.failed, report.replayed), (1, 1), "{report:?}");
        assert!(!report.stopped_by_outage);
        assert_eq!(queued(&parking), 1, "only the poison waits");
        let user = UserId::parse("ada").expect("valid");
        let good = CallId::parse("CAgood").expect("valid");
        assert!(block_on(store.load_call(&user, &good))
            .expect("loads")
            .0
            .is_some());
    }

    #[test]
    fn after_max_attempts_an_entry_is_moved_aside_not_deleted() {
        let parking = MemoryParking::default();
        let store = poisoned_store();
        block_on(park(&parking, &delivery("msg_poison", "CApoison"))).expect("parks");
        for pass in 1..=MAX_ATTEMPTS {
            let r = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
            let expected_aside = usize::from(pass == MAX_ATTEMPTS);
            assert_eq!(r.moved_aside, expected_aside, "pass {pass}");
        }
        assert_eq!((queued(&parking), dead(&parking)), (0, 1));
        let (waiting, letters) = block_on(inspect(&parking, 10)).expect("inspects");
        assert_eq!(waiting, 0);
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0].attempts, MAX_ATTEMPTS);
        assert_eq!(letters[0].provider.as_deref(), Some("api"));
        assert!(letters[0].reason.contains("while D1 answered"));
        // Fixed: requeued, it applies.
        store.db_exec("DROP TRIGGER poison");
        assert_eq!(block_on(requeue(&parking, 10)).expect("requeues"), 1);
        let r = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
        assert_eq!(r.replayed, 1);
        assert_eq!((queued(&parking), dead(&parking)), (0, 0));
    }

    /// D1 in an outage: every call fails, the probe included.
    struct Down;
    struct NoRows;

    impl crate::store::RowSet for NoRows {
        fn decode<T: crate::store::FromRow>(&self) -> AppResult<Vec<T>> {
            Ok(Vec::new())
        }
        fn texts(&self, _: &str) -> AppResult<Vec<String>> {
            Ok(Vec::new())
        }
        fn meta(&self) -> crate::store::QueryMeta {
            crate::store::QueryMeta::default()
        }
    }

    impl Database for Down {
        type Rows = NoRows;
        async fn query(&self, _: crate::store::Statement) -> AppResult<NoRows> {
            Err(crate::error::AppError::unavailable("D1_ERROR: injected"))
        }
        async fn batch(&self, _: Vec<crate::store::Statement>) -> AppResult<Vec<NoRows>> {
            Err(crate::error::AppError::unavailable("D1_ERROR: injected"))
        }
    }

    #[test]
    fn a_d1_outage_charges_no_attempts_and_stops_the_pass() {
        let parking = MemoryParking::default();
        let store = Store::new(Down);
        block_on(park(&parking, &delivery("msg_1", "CA1"))).expect("parks");
        block_on(park(&parking, &delivery("msg_2", "CA2"))).expect("parks");
        for _ in 0..(MAX_ATTEMPTS + 2) {
            let r = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
            assert!(r.stopped_by_outage);
            assert_eq!((r.failed, r.moved_aside, r.replayed), (0, 0, 0));
        }
        assert_eq!((queued(&parking), dead(&parking)), (2, 0));
        for value in parking.entries.borrow().values() {
            let entry = read_parked(value).expect("readable");
            assert_eq!(entry.attempts, 0, "nobody was charged");
        }
    }

    #[test]
    fn an_unreadable_entry_is_moved_aside_and_the_next_one_replays() {
        let parking = MemoryParking::default();
        let store = Store::new(SqliteDatabase::migrated());
        parking.entries.borrow_mut().insert(
            format!("{PREFIX}0000000000000:api:x"),
            "{not a delivery".into(),
        );
        block_on(park(&parking, &delivery("msg_1", "CA1"))).expect("parks");
        let report = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
        assert_eq!((report.moved_aside, report.replayed), (1, 1));
        assert_eq!((queued(&parking), dead(&parking)), (0, 1));
    }

    #[test]
    fn more_unreadable_entries_than_one_listing_still_let_later_deliveries_replay() {
        let parking = MemoryParking::default();
        let store = Store::new(SqliteDatabase::migrated());
        for i in 0..250 {
            parking
                .entries
                .borrow_mut()
                .insert(format!("{PREFIX}{i:013}:api:junk"), "junk".into());
        }
        let mut late = delivery("msg_late", "CAlate");
        late.received_at = 9_999_999;
        block_on(park(&parking, &late)).expect("parks");
        for _ in 0..3 {
            block_on(replay(&parking, &store, 200, NOW, counter())).expect("replays");
        }
        assert_eq!(queued(&parking), 0, "the late delivery was reached");
        assert_eq!(dead(&parking), 250);
    }

    #[test]
    fn an_entry_parked_as_a_bare_delivery_still_replays() {
        let parking = MemoryParking::default();
        let store = Store::new(SqliteDatabase::migrated());
        let d = delivery("msg_old", "CAold");
        parking
            .entries
            .borrow_mut()
            .insert(parking_key(&d), crate::json_writer::to_string(&d));
        let report = block_on(replay(&parking, &store, 10, NOW, counter())).expect("replays");
        assert_eq!(report.replayed, 1);
    }

    #[test]
    fn a_dead_letter_reads_back_as_written_and_anything_else_reads_as_none() {
        let letter = DeadLetter {
            reason: "out of attempts".into(),
            attempts: 5,
            moved_at: 1_700_000_000_000,
            provider: Some("twilio".into()),
            parked: "{\"attempts\":5}".into(),
        };
        let json = encode(&letter).expect("serializes");
        assert_eq!(DeadLetter::read(&json), Some(letter.clone()));
        let anonymous = DeadLetter {
            provider: None,
            ..letter
        };
        assert_eq!(
            DeadLetter::read(&encode(&anonymous).expect("serializes")),
            Some(anonymous.clone())
        );
        let without = json.replace(r#","provider":"twilio""#, "");
        assert_eq!(DeadLetter::read(&without), Some(anonymous));
        for bad in [
            "",
            "[]",
            r#"{"reason":"x"}"#,
            &json.replace(r#""attempts":5"#, r#""attempts":-1"#),
            &json.replace(r#""provider":"twilio""#, r#""provider":1"#),
        ] {
            assert_eq!(DeadLetter::read(bad), None, "{bad}");
        }
    }
}
