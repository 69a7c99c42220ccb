//! The JWKS on the Workers runtime: the provider's endpoint fetched with `fetch` (a time limit
//! and a size bound), the set shelved in KV for other isolates, and signatures checked by the
//! runtime's WebCrypto (`crypto.subtle`), so no RSA or elliptic-curve code ships in the wasm.
//!
//! Per isolate: one [`KeyRing`] and the `CryptoKey`s imported from it (an import is parsed
//! once, then reused for every token that key signed).

use super::kv::KvStore;
use crate::auth::jwks::{Algorithm, KeyMaterial, PublicKey, MAX_JWKS_BYTES};
use crate::auth::keyring::{key_for, JwksShelf, JwksSource, KeyMiss, KeyRing, Shelved};
use crate::auth::PublicKeys;
use futures_util::future::{select, Either};
use js_sys::{self, Object, Reflect};
use sha2::{Digest, Sha256};
use std::cell::RefCell;
use std::pin::pin;
use std::rc::Rc;
use wasm_bindgen::{JsCast, JsValue};

/// The provider must answer within this, or the trip counts as failed (cached keys serve on).
const FETCH_TIMEOUT_MS: u32 = 5_000;
/// KV keeps a shelved set this long: well past its 10-minute freshness, so an isolate that
/// starts while the provider is down still gets the last good keys.
const SHELF_TTL_SECS: u64 = 7 * 24 * 3600;
/// Imported keys kept per isolate; beyond it the map starts over (keys re-import on use).
const MAX_IMPORTED: usize = 64;

thread_local! {
    static RING: Rc<RefCell<KeyRing>> = Rc::new(RefCell::new(KeyRing::default()));
    /// By the key's fingerprint: a few keys (at most [`MAX_IMPORTED`]), so a list searched in
    /// order, smaller in the module than a map.
    static IMPORTED: RefCell<Vec<([u8; 32], web_sys::CryptoKey)>> = const { RefCell::new(Vec::new()) };
}

/// The identity provider's keys for one request: the isolate's ring, the endpoint, and KV.
pub struct WorkersKeys {
    url: String,
    kv: Option<Rc<KvStore>>,
    ring: Rc<RefCell<KeyRing>>,
}

/// `WorkersKeys` when `JWT_JWKS_URL` is set, else nothing: HS256 only.
pub enum EnvKeys {
    Jwks(WorkersKeys),
    None,
}

impl EnvKeys {
    pub fn new(url: Option<&str>, kv: Option<Rc<KvStore>>) -> Self {
        match url {
            Some(url) => EnvKeys::Jwks(WorkersKeys {
                url: url.to_owned(),
                kv,
                ring: RING.with(Rc::clone),
            }),
            None => EnvKeys::None,
        }
    }
}

impl PublicKeys for EnvKeys {
    fn configured(&self) -> bool {
        matches!(self, EnvKeys::Jwks(_))
    }

    async fn key(&self, kid: &str, alg: Algorithm, now_ms: i64) -> Result<Rc<PublicKey>, KeyMiss> {
        let EnvKeys::Jwks(keys) = self else {
            return Err(KeyMiss::Unknown);
        };
        let trips_before = keys.ring.borrow().trips;
        let found = key_for(&keys.ring, keys, keys, kid, alg, now_ms).await;
        let ring = keys.ring.borrow();
        if ring.trips != trips_before {
            // One line per trip to the provider (at most one per 30 s per isolate): the
            // operator sees rotations and outages, never a token.
            super::bind::log(&format!(
                "JWKS fetch from {}: {:?}; {} keys held",
                redacted(&keys.url),
                ring.last_outcome,
                ring.key_count()
            ));
        }
        found
    }

    async fn verify(&self, key: &PublicKey, signing_input: &[u8], signature: &[u8]) -> bool {
        verify_with_webcrypto(key, signing_input, signature)
            .await
            .unwrap_or(false)
    }
}

/// The URL without its query (a provider may put a key or tenant secret there).
fn redacted(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// A JS error as text (it only reaches the log line of a failed trip).
fn js_error(e: JsValue) -> String {
    super::bind::error_text(&e)
}

/// The fetch is made with `web_sys` itself, as `worker::Fetch` makes it (`new Request(url,
/// init)`, then `fetch(request, { signal })`), without `worker::RequestInit`: its conversion
/// serializes the `cf` options (image resizing and the rest): with the live feed's requests
/// (`runtime::live::new_request`) made the same way, 5 KB less of the gzipped module.
impl JwksSource for WorkersKeys {
    async fn fetch(&self) -> Result<Vec<u8>, String> {
        let headers = web_sys::Headers::new().map_err(js_error)?;
        headers
            .set("accept", "application/json")
            .map_err(js_error)?;
        let init = web_sys::RequestInit::new();
        init.set_headers(&headers);
        init.set_method("GET");
        init.set_redirect(web_sys::RequestRedirect::Follow);
        let request = web_sys::Request::new_with_str_and_init(&self.url, &init).map_err(|e| {
            e.as_string()
                .unwrap_or_else(|| "invalid URL or options for Request".to_string())
        })?;
        let controller = web_sys::AbortController::new().map_err(js_error)?;
        let with_signal = web_sys::RequestInit::new();
        with_signal.set_signal(Some(&controller.signal()));
        let sent = pin!(super::settle::settled(&super::bind::global_fetch(
            &request,
            &with_signal
        )));
        let timeout = pin!(super::bind::Delay::new(FETCH_TIMEOUT_MS));
        let response = match select(sent, timeout).await {
            Either::Left((response, _)) => response.map_err(js_error)?,
            Either::Right(_) => {
                controller.abort();
                return Err(format!("no answer within {} s", FETCH_TIMEOUT_MS / 1000));
            }
        };
        let response: web_sys::Response = response.dyn_into().map_err(js_error)?;
        if response.status() != 200 {
            return Err(format!("HTTP {}", response.status()));
        }
        let Some(raw) = response.body() else {
            return Err("body is not streamable".to_owned());
        };
        let chunks = super::bind::Chunks::new(&raw).map_err(js_error)?;
        let mut body = Vec::new();
        loop {
            let chunk = match chunks.next().await {
                Ok(Some(chunk)) => chunk,
                Ok(None) => break,
                Err(e) => {
                    let e = js_error(e);
                    // An aborted stream simply ends (as it did under `worker`'s byte stream).
                    if e == "Error: aborted" {
                        break;
                    }
                    return Err(e);
                }
            };
            if body.len().saturating_add(chunk.len()) > MAX_JWKS_BYTES {
                return Err(format!("body larger than {MAX_JWKS_BYTES} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(body)
    }
}

impl WorkersKeys {
    fn shelf_key(&self) -> String {
        let digest = Sha256::digest(self.url.as_bytes());
        format!("auth:jwks:v1:{}", crate::hex::encode(&digest[..12]))
    }
}

/// Written by `json_writer`, read back by hand (`load`).
struct ShelfEntry {
    fetched_at_ms: i64,
    body: String,
}
crate::json_object!(ShelfEntry { "fetchedAtMs": fetched_at_ms, "body": body });

impl JwksShelf for WorkersKeys {
    async fn load(&self) -> Option<Shelved> {
        let kv = self.kv.as_ref()?;
        // KV trouble only means no shelved set: the provider is asked instead.
        let text = kv.get_text(&self.shelf_key()).await.ok()??;
        let entry = crate::json::parse(text.as_bytes()).ok()?;
        Some(Shelved {
            fetched_at_ms: entry.get("fetchedAtMs")?.as_i64()?,
            body: entry.get("body")?.as_str()?.to_owned(),
        })
    }

    async fn store(&self, shelved: &Shelved) {
        let Some(kv) = self.kv.as_ref() else { return };
        let entry = ShelfEntry {
            fetched_at_ms: shelved.fetched_at_ms,
            body: shelved.body.clone(),
        };
        let text = crate::json_writer::to_string(&entry);
        let key = self.shelf_key();
        if let Err(e) = kv.put(&key, &text, Some(SHELF_TTL_SECS)).await {
            super::bind::warn(&format!("JWKS not shelved in KV: {e}"));
        }
    }
}

fn object(entries: &[(&str, JsValue)]) -> Result<Object, JsValue> {
    let o = Object::new();
    for (k, v) in entries {
        Reflect::set(&o, &JsValue::from_str(k), v)?;
    }
    Ok(o)
}

fn sha256_named() -> Result<JsValue, JsValue> {
    Ok(object(&[("name", JsValue::from_str("SHA-256"))])?.into())
}

/// The JWK and the algorithm object WebCrypto imports `key` with (once per key per isolate).
fn import_parts(key: &PublicKey) -> Result<(Object, Object), JsValue> {
    let s = |v: &str| JsValue::from_str(v);
    Ok(match &key.material {
        KeyMaterial::Rsa { n, e } => (
            object(&[("kty", s("RSA")), ("n", s(n)), ("e", s(e))])?,
            object(&[("name", s("RSASSA-PKCS1-v1_5")), ("hash", sha256_named()?)])?,
        ),
        KeyMaterial::P256 { x, y } => (
            object(&[
                ("kty", s("EC")),
                ("crv", s("P-256")),
                ("x", s(x)),
                ("y", s(y)),
            ])?,
            object(&[("name", s("ECDSA")), ("namedCurve", s("P-256"))])?,
        ),
        KeyMaterial::Ed25519 { x } => (
            object(&[("kty", s("OKP")), ("crv", s("Ed25519")), ("x", s(x))])?,
            object(&[("name", s("Ed25519"))])?,
        ),
    })
}

/// The algorithm object WebCrypto verifies a signature by `key` with.
fn verify_algorithm(key: &PublicKey) -> Result<Object, JsValue> {
    let s = |v: &str| JsValue::from_str(v);
    match key.alg {
        Algorithm::Rs256 => object(&[("name", s("RSASSA-PKCS1-v1_5"))]),
        Algorithm::Es256 => object(&[("name", s("ECDSA")), ("hash", sha256_named()?)]),
        Algorithm::EdDsa => object(&[("name", s("Ed25519"))]),
    }
}

async fn verify_with_webcrypto(
    key: &PublicKey,
    signing_input: &[u8],
    signature: &[u8],
) -> Result<bool, JsValue> {
    let subtle = super::bind::subtle_crypto();
    let imported = IMPORTED.with(|m| {
        m.borrow()
            .iter()
            .find(|(fingerprint, _)| *fingerprint == key.fingerprint)
            .map(|(_, k)| k.clone())
    });
    let crypto_key = match imported {
        Some(k) => k,
        None => {
            let (jwk, import_alg) = import_parts(key)?;
            let usages = js_sys::Array::of1(&JsValue::from_str("verify"));
            let promise =
                subtle.import_key_with_object("jwk", &jwk, &import_alg, false, &usages)?;
            let k: web_sys::CryptoKey = super::settle::settled(&promise).await?.unchecked_into();
            IMPORTED.with(|m| {
                let mut m = m.borrow_mut();
                if m.len() >= MAX_IMPORTED {
                    m.clear();
                }
                m.retain(|(fingerprint, _)| *fingerprint != key.fingerprint);
                m.push((key.fingerprint, k.clone()));
            });
            k
        }
    };
    let promise = subtle.verify_with_object_and_u8_array_and_u8_array(
        &verify_algorithm(key)?,
        &crypto_key,
        signature,
        signing_input,
    )?;
    Ok(super::settle::settled(&promise)
        .await?
        .as_bool()
        .unwrap_or(false))
}
