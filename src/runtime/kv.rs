//! The cache's runtime adapters on Workers: KV as the second tier, and `ctx.waitUntil` plus
//! `setTimeout` as the [`Runtime`].

use crate::cache::{KvTier, LocalFuture, Runtime};
use crate::error::{AppError, AppResult};
use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;
use worker::kv::KvStore;

pub struct WorkersKv(pub std::rc::Rc<KvStore>);

fn kv_err(e: worker::kv::KvError) -> AppError {
    AppError::unavailable(format!("KV: {e}"))
}

impl KvTier for WorkersKv {
    /// Read as bytes, not text: `text()` makes a JavaScript string that wasm-bindgen then
    /// copies into wasm memory one character at a time, which for a 32 KB page was the largest
    /// cost of a KV hit; the bytes cross in one copy and are checked as UTF-8 here.
    async fn get(&self, key: &str) -> AppResult<Option<String>> {
        match self.0.get(key).bytes().await.map_err(kv_err)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| AppError::unavailable("KV: a value that is not UTF-8")),
        }
    }

    async fn put(&self, key: &str, value: &str, ttl_secs: u64) -> AppResult<()> {
        self.0
            .put(key, value)
            .map_err(kv_err)?
            .expiration_ttl(ttl_secs)
            .execute()
            .await
            .map_err(kv_err)
    }
}

/// Background work goes to `ctx.waitUntil` during a request; in the scheduled handler it is
/// collected and awaited before the handler returns.
#[derive(Clone)]
pub enum WorkersRuntime {
    Request(Rc<worker::Context>),
    Collect(Rc<RefCell<Vec<LocalFuture>>>),
}

impl WorkersRuntime {
    /// Awaits everything collected so far (and whatever that spawns).
    pub async fn drain(&self) {
        if let WorkersRuntime::Collect(queue) = self {
            loop {
                let batch: Vec<LocalFuture> = queue.borrow_mut().drain(..).collect();
                if batch.is_empty() {
                    return;
                }
                futures_util::future::join_all(batch).await;
            }
        }
    }
}

impl Runtime for WorkersRuntime {
    fn spawn(&self, fut: LocalFuture) {
        match self {
            WorkersRuntime::Request(ctx) => ctx.wait_until(fut),
            WorkersRuntime::Collect(queue) => queue.borrow_mut().push(fut),
        }
    }

    fn sleep(&self, ms: u32) -> LocalFuture {
        Box::pin(worker::Delay::from(Duration::from_millis(u64::from(ms))))
    }
}
