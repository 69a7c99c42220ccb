//! [`Parking`] on Workers KV. Parked entries have no expiry: a delivery leaves KV only once D1
//! has taken it. (KV listings are eventually consistent, so a just-parked key may appear in
//! the replay's listing a little later; the cron picks it up on a following run.)

use super::kv::{KvError, KvStore};
use crate::error::{AppError, AppResult};
use crate::webhooks::parking::Parking;

pub struct KvParking(pub std::rc::Rc<KvStore>);

fn kv_err(e: KvError) -> AppError {
    AppError::unavailable(format!("KV: {e}"))
}

impl Parking for KvParking {
    async fn put(&self, key: &str, value: &str) -> AppResult<()> {
        self.0.put(key, value, None).await.map_err(kv_err)
    }

    async fn list(&self, prefix: &str, limit: usize) -> AppResult<Vec<String>> {
        self.0
            .list_names(prefix, limit as u64)
            .await
            .map_err(kv_err)
    }

    async fn load(&self, key: &str) -> AppResult<Option<String>> {
        self.0.get_text(key).await.map_err(kv_err)
    }

    async fn remove(&self, key: &str) -> AppResult<()> {
        self.0.delete(key).await.map_err(kv_err)
    }
}
