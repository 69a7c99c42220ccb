//! The KV binding ([`KvStore`], also the parking place and the JWKS shelf), and the cache's
//! runtime adapters on Workers: KV as the second tier, and `ctx.waitUntil` plus `setTimeout`
//! as the [`Runtime`].

use crate::cache::{KvTier, LocalFuture, Runtime};
use crate::error::{AppError, AppResult};
use js_sys::{Array, ArrayBuffer, Function, Object, Promise, Reflect, Uint8Array};
use std::cell::RefCell;
use std::rc::Rc;
use wasm_bindgen::prelude::wasm_bindgen;
use wasm_bindgen::{JsCast, JsValue};

/// A KV namespace binding, its methods called directly with the arguments `worker::kv` passes
/// them. `worker::kv` builds each call's options with serde (and a put's value through
/// `serde_wasm_bindgen`, and lists' keys back through it): 5 KB of the gzipped module for the
/// five calls made here.
pub struct KvStore {
    this: Object,
    get: Function,
    put: Function,
    list: Function,
    delete: Function,
}

/// A failed KV call, worded as `worker::kv::KvError` words it (for the log line only).
pub struct KvError(JsValue);

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "js error: {:?}", self.0)
    }
}

impl From<JsValue> for KvError {
    fn from(value: JsValue) -> Self {
        KvError(value)
    }
}

fn field(of: &JsValue, name: &str) -> Result<JsValue, KvError> {
    Ok(Reflect::get(of, &JsValue::from_str(name))?)
}

/// A plain object of `fields` (the options argument of a KV call).
fn options(fields: &[(&str, JsValue)]) -> Result<Object, KvError> {
    let o = Object::new();
    for (k, v) in fields {
        Reflect::set(&o, &JsValue::from_str(k), v)?;
    }
    Ok(o)
}

impl KvStore {
    /// The namespace bound as `binding` (`env.kv(binding)`): `None` when there is none.
    pub fn from_env(env: &super::bind::Env, binding: &str) -> Option<Self> {
        let this: JsValue = env.binding(binding)?;
        let method = |name| field(&this, name).map(JsValue::unchecked_into::<Function>);
        Some(KvStore {
            get: method("get").ok()?,
            put: method("put").ok()?,
            list: method("list").ok()?,
            delete: method("delete").ok()?,
            this: this.unchecked_into(),
        })
    }

    async fn call(&self, promise: Result<JsValue, JsValue>) -> Result<JsValue, KvError> {
        Ok(super::settle::settled(&promise?.unchecked_into::<Promise>()).await?)
    }

    async fn get_as(&self, key: &str, opts: &Object) -> Result<JsValue, KvError> {
        self.call(self.get.call2(&self.this, &JsValue::from_str(key), opts))
            .await
    }

    /// The value as bytes (`get(key, { type: "arrayBuffer" })`).
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Vec<u8>>, KvError> {
        // Every KV hit asks this: its options object is made once per isolate (the binding
        // only reads it).
        thread_local! {
            static AS_BYTES: Result<Object, JsValue> =
                options(&[("type", JsValue::from_str("arrayBuffer"))]).map_err(|e| e.0);
        }
        let opts = AS_BYTES.with(|o| o.clone()).map_err(KvError)?;
        let v = self.get_as(key, &opts).await?;
        Ok(v.dyn_ref::<ArrayBuffer>()
            .map(|b| Uint8Array::new(b).to_vec()))
    }

    /// The value as text (`get(key, { type: "text" })`).
    pub async fn get_text(&self, key: &str) -> Result<Option<String>, KvError> {
        let opts = options(&[("type", JsValue::from_str("text"))])?;
        Ok(self.get_as(key, &opts).await?.as_string())
    }

    /// `put(key, value, { expirationTtl })`, or `put(key, value, {})` without a TTL.
    pub async fn put(&self, key: &str, value: &str, ttl_secs: Option<u64>) -> Result<(), KvError> {
        self.put_value(key, &JsValue::from_str(value), ttl_secs)
            .await
    }

    /// `put` of the concatenation of two texts, as bytes: one copy out of wasm memory, where
    /// one string made of them took a copy in wasm, then a decode into a JavaScript string
    /// that the binding encoded again (a refreshed view is tens of KB, and those KV writes
    /// were a tenth of the mixed workload's time in the isolate).
    pub async fn put_two(
        &self,
        key: &str,
        head: &str,
        rest: &str,
        ttl_secs: Option<u64>,
    ) -> Result<(), KvError> {
        let value = concat_bytes(head.as_bytes(), rest.as_bytes());
        self.put_value(key, &value, ttl_secs).await
    }

    async fn put_value(
        &self,
        key: &str,
        value: &JsValue,
        ttl_secs: Option<u64>,
    ) -> Result<(), KvError> {
        let opts = match ttl_secs {
            Some(ttl) => options(&[("expirationTtl", JsValue::from_f64(ttl as f64))])?,
            None => Object::new(),
        };
        self.call(
            self.put
                .call3(&self.this, &JsValue::from_str(key), value, &opts),
        )
        .await
        .map(drop)
    }

    /// The names of up to `limit` keys under `prefix` (`list({ limit, prefix })`).
    pub async fn list_names(&self, prefix: &str, limit: u64) -> Result<Vec<String>, KvError> {
        let opts = options(&[
            ("limit", JsValue::from_f64(limit as f64)),
            ("prefix", JsValue::from_str(prefix)),
        ])?;
        let listed = self.call(self.list.call1(&self.this, &opts)).await?;
        let keys: Array = field(&listed, "keys")?.dyn_into()?;
        keys.iter()
            .map(|k| {
                field(&k, "name")?
                    .as_string()
                    .ok_or_else(|| KvError(JsValue::from_str("a listed key without a name")))
            })
            .collect()
    }

    /// `delete(key)`.
    pub async fn delete(&self, key: &str) -> Result<(), KvError> {
        self.call(self.delete.call1(&self.this, &JsValue::from_str(key)))
            .await
            .map(drop)
    }
}

#[wasm_bindgen(inline_js = r#"
export function concat_bytes(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}"#)]
extern "C" {
    /// A new array holding `a` then `b` (both views of wasm memory, valid during the call).
    fn concat_bytes(a: &[u8], b: &[u8]) -> Uint8Array;
}

pub struct WorkersKv(pub std::rc::Rc<KvStore>);

fn kv_err(e: KvError) -> AppError {
    AppError::unavailable(format!("KV: {e}"))
}

impl KvTier for WorkersKv {
    /// Read as bytes, not text: `text()` makes a JavaScript string that wasm-bindgen then
    /// copies into wasm memory one character at a time, which for a 32 KB page was the largest
    /// cost of a KV hit; the bytes cross in one copy and are checked as UTF-8 here.
    async fn get(&self, key: &str) -> AppResult<Option<String>> {
        match self.0.get_bytes(key).await.map_err(kv_err)? {
            None => Ok(None),
            Some(bytes) => String::from_utf8(bytes)
                .map(Some)
                .map_err(|_| AppError::unavailable("KV: a value that is not UTF-8")),
        }
    }

    async fn put(&self, key: &str, head: &str, data: &str, ttl_secs: u64) -> AppResult<()> {
        self.0
            .put_two(key, head, data, Some(ttl_secs))
            .await
            .map_err(kv_err)
    }
}

/// Background work goes to `ctx.waitUntil` during a request; in the scheduled handler it is
/// collected and awaited before the handler returns.
#[derive(Clone)]
pub enum WorkersRuntime {
    Request(Rc<super::bind::ExecutionContext>),
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
            WorkersRuntime::Request(ctx) => ctx.wait_until_done(fut),
            WorkersRuntime::Collect(queue) => queue.borrow_mut().push(fut),
        }
    }

    fn sleep(&self, ms: u32) -> LocalFuture {
        Box::pin(super::bind::Delay::new(ms))
    }
}
