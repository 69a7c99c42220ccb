//! Durable parking for verified deliveries that D1 could not take. The webhook route parks the
//! delivery (KV in production) and still answers the provider 2xx; the scheduled handler
//! replays parked deliveries through the same idempotent ingest, so a delivery applied twice —
//! say D1 committed but the reply was lost — still has one effect.

use super::Delivery;
use crate::domain::{CallId, UserId};
use crate::error::AppResult;
use crate::store::{Database, Store};
use sha2::{Digest, Sha256};

/// Where parked deliveries live. Keys are opaque strings under one prefix.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait Parking {
    async fn park(&self, key: &str, delivery_json: &str) -> AppResult<()>;
    /// Up to `limit` parked keys, oldest first where the backend can tell.
    async fn parked(&self, limit: usize) -> AppResult<Vec<String>>;
    async fn load(&self, key: &str) -> AppResult<Option<String>>;
    async fn remove(&self, key: &str) -> AppResult<()>;
}

pub const PREFIX: &str = "parked:v1:";

/// A parked delivery's key: the time it arrived (so listings come out oldest first) and a
/// digest of its identity, which keeps keys short whatever the provider's ids look like.
pub fn parking_key(d: &Delivery) -> String {
    let digest = Sha256::digest(format!("{}\0{}", d.provider.as_str(), d.key).as_bytes());
    format!(
        "{PREFIX}{:013}:{}:{}",
        d.received_at.max(0),
        d.provider.as_str(),
        hex::encode(&digest[..12])
    )
}

pub async fn park<P: Parking>(parking: &P, d: &Delivery) -> AppResult<String> {
    let json = serde_json::to_string(d)
        .map_err(|e| crate::error::AppError::internal(format!("serializing a delivery: {e}")))?;
    let key = parking_key(d);
    parking.park(&key, &json).await?;
    Ok(key)
}

/// What one replay pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplayReport {
    pub replayed: usize,
    pub failed: usize,
    /// Parked entries that could not be read back as a delivery (kept, for a human to look at).
    pub unreadable: usize,
    /// Whose data the replayed deliveries changed: the cache keys to retire.
    pub touched: Vec<(UserId, Option<CallId>)>,
}

/// Applies up to `limit` parked deliveries; each one leaves parking only once D1 took it.
pub async fn replay<P: Parking, D: Database>(
    parking: &P,
    store: &Store<D>,
    limit: usize,
    mut nonce: impl FnMut() -> AppResult<String>,
) -> AppResult<ReplayReport> {
    let mut report = ReplayReport::default();
    for key in parking.parked(limit).await? {
        let Some(json) = parking.load(&key).await? else {
            continue; // removed by a concurrent replay
        };
        let Ok(delivery) = serde_json::from_str::<Delivery>(&json) else {
            report.unreadable += 1;
            continue;
        };
        match store.ingest(&delivery, &nonce()?).await {
            Ok(ingested) => {
                parking.remove(&key).await?;
                report.replayed += 1;
                if let (true, Some(user)) = (ingested.fresh, ingested.user) {
                    report.touched.push((user, ingested.call));
                }
            }
            Err(_) => {
                report.failed += 1;
                // D1 is still failing: stop early and leave the rest for the next run.
                break;
            }
        }
    }
    Ok(report)
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
    async fn park(&self, key: &str, json: &str) -> AppResult<()> {
        if self.fail.get() {
            return Err(crate::error::AppError::unavailable("KV: injected failure"));
        }
        self.entries.borrow_mut().insert(key.into(), json.into());
        Ok(())
    }
    async fn parked(&self, limit: usize) -> AppResult<Vec<String>> {
        Ok(self.entries.borrow().keys().take(limit).cloned().collect())
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
        let report = block_on(replay(&parking, &store, 10, counter())).expect("replays");
        assert_eq!(
            (report.replayed, report.failed, report.unreadable),
            (1, 0, 0)
        );
        assert_eq!(
            report.touched,
            vec![(UserId::parse("ada").expect("valid"), CallId::parse("CA1"))]
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
        block_on(replay(&parking, &store, 10, counter())).expect("replays");
        let user = UserId::parse("ada").expect("valid");
        let summary = block_on(
            store.load_intent_summary(&user, crate::domain::Limit::new(5, 500).expect("ok")),
        )
        .expect("loads")
        .0;
        assert_eq!(summary.stats.total_calls, 1);
    }

    #[test]
    fn an_unreadable_entry_is_kept_and_counted() {
        let parking = MemoryParking::default();
        let store = Store::new(SqliteDatabase::migrated());
        parking
            .entries
            .borrow_mut()
            .insert(format!("{PREFIX}0:x"), "{not a delivery".into());
        let report = block_on(replay(&parking, &store, 10, counter())).expect("replays");
        assert_eq!(report.unreadable, 1);
        assert_eq!(parking.entries.borrow().len(), 1);
    }
}
