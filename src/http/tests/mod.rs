//! The app driven as a value: real routing, auth and SQL (in-process SQLite), no runtime.
//! This module is the fixture — the `World`, its seed data and request builders — and the
//! tests live by feature in its children.

mod admin;
mod cache;
mod live;
mod reads;
mod webhooks;

use super::*;
use crate::cache::state::CacheState;
use crate::cache::testing::{FakeKv, TestRuntime};
use crate::cache::TieredReads;
use crate::clock::ManualClock;
use crate::config::AllowedOrigins;
use crate::domain::CallStatus;
use crate::store::sqlite::SqliteDatabase;
use crate::store::Store;
use crate::testing::{block_on, insert_call, sign_hs256, SeedCall};
use crate::webhooks::parking::MemoryParking;
use serde_json::{json, Value};
use std::rc::Rc;

const NOW_MS: i64 = 1_800_000_000_000;
const SECRET: &str = "jwt-test-secret";
const ADMIN: &str = "admin-test-token";

type Reads = TieredReads<Store<SqliteDatabase>, FakeKv, Rc<ManualClock>, TestRuntime>;

struct World {
    config: Config,
    store: Rc<Store<SqliteDatabase>>,
    reads: Reads,
    rt: TestRuntime,
    parking: MemoryParking,
    clock: Rc<ManualClock>,
    live: crate::live::RecordingLive,
}

/// The host services, with the live feed `L` (recorded by default; tests of a worker without
/// the `LIVE` binding use `NoLiveFeed`).
struct TestServices<L = crate::live::RecordingLive>(std::marker::PhantomData<L>);

impl<L: crate::live::LiveFeed> Services for TestServices<L> {
    type Reads = Reads;
    type Writes = Store<SqliteDatabase>;
    type Parking = MemoryParking;
    type Clock = Rc<ManualClock>;
    type Live = L;
    type Keys = crate::auth::NoPublicKeys;
}

impl World {
    fn new() -> Self {
        let store = Store::new(SqliteDatabase::migrated());
        for (user, n) in [("ada", 3), ("bob", 2)] {
            for i in 0..n {
                insert_call(
                    &store,
                    &SeedCall::new(
                        &format!("CA{user}{i}"),
                        user,
                        CallStatus::Completed,
                        NOW_MS - 1000 * i,
                    ),
                );
            }
        }
        store.db_exec(
            "INSERT INTO analyses (call_id, user_id, status, intent, confidence, updated_at) VALUES \
             ('CAada0', 'ada', 'completed', 'billing', 0.9, 1); \
             INSERT INTO enrichments (call_id, user_id, phone_number, caller_name, updated_at) VALUES \
             ('CAada0', 'ada', '+14155550100', 'Ada L.', 1)",
        );
        let config = Config {
            jwt_secret: Some(crate::config::Secret::for_tests(SECRET)),
            admin_token: Some(crate::config::Secret::for_tests(ADMIN)),
            allowed_origins: AllowedOrigins::parse("https://dash.example"),
            ..Config::default()
        };
        let store = Rc::new(store);
        let clock = Rc::new(ManualClock::at(NOW_MS));
        let rt = TestRuntime::default();
        let policy = Rc::new(config.cache.clone());
        let reads = TieredReads::new(
            store.clone(),
            Rc::new(FakeKv::default()),
            clock.clone(),
            rt.clone(),
            Rc::new(CacheState::new(&policy)),
            policy,
        );
        Self {
            config,
            store,
            reads,
            rt,
            parking: MemoryParking::default(),
            live: crate::live::RecordingLive::default(),
            clock,
        }
    }

    fn send(&self, req: Request) -> Response {
        self.handle(req).response
    }

    /// The tier (`X-Cache`) that answers `token`'s GET of `path`.
    fn tier(&self, path: &str, token: &str) -> Option<String> {
        self.send(get(path, Some(token)))
            .header("x-cache")
            .map(str::to_owned)
    }

    fn handle(&self, req: Request) -> Handled {
        let app: App<'_, TestServices> = App {
            config: &self.config,
            reads: &self.reads,
            writes: &self.store,
            parking: &self.parking,
            clock: &self.clock,
            live: &self.live,
            keys: &crate::auth::NoPublicKeys,
        };
        block_on(app.handle(&req))
    }
}

fn token(sub: &str) -> String {
    sign_hs256(
        &json!({"sub": sub, "exp": NOW_MS / 1000 + 600}),
        SECRET.as_bytes(),
    )
}

fn get(path_and_query: &str, bearer: Option<&str>) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    let mut headers = Vec::new();
    if let Some(t) = bearer {
        headers.push(("authorization".to_owned(), format!("Bearer {t}")));
    }
    Request {
        method: Method::Get,
        url: format!("http://127.0.0.1:8787{path_and_query}"),
        path: path.to_owned(),
        query: query.to_owned(),
        headers,
        body: Vec::new(),
    }
}

fn body(res: &Response) -> Value {
    serde_json::from_slice(&res.body).unwrap_or(Value::Null)
}

// Webhook signatures are computed here from the providers' documented schemes, not with the
// verifiers' code, so a verifier that agrees with itself but not with the provider fails.

fn hmac_b64<M: hmac::Mac + hmac::digest::KeyInit>(key: &[u8], parts: &[&[u8]]) -> String {
    use base64::Engine;
    let mut mac = <M as hmac::digest::KeyInit>::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn with_webhook_secrets(mut w: World) -> World {
    w.config.twilio_auth_token = Some(crate::config::Secret::for_tests("twilio-token"));
    w.config.webhook_secret = Some(crate::config::Secret::for_tests(
        "whsec_c2VjcmV0LWtleS1ieXRlcw==",
    ));
    w.config.retell_api_key = Some(crate::config::Secret::for_tests("retell-key"));
    w.store.db_exec(
        "INSERT INTO phone_numbers (e164, user_id, created_at, updated_at) VALUES ('+14155550199', 'ada', 0, 0)",
    );
    w
}

fn twilio_post(path: &str, body: &str, token: &str) -> Request {
    let url = format!("http://127.0.0.1:8787{path}");
    let mut pairs: Vec<(String, String)> = form_urlencoded::parse(body.as_bytes())
        .into_owned()
        .collect();
    pairs.sort();
    let mut signed = url.clone();
    for (k, v) in &pairs {
        signed.push_str(k);
        signed.push_str(v);
    }
    let sig = hmac_b64::<hmac::Hmac<sha1::Sha1>>(token.as_bytes(), &[signed.as_bytes()]);
    Request {
        method: Method::Post,
        url,
        path: path.to_owned(),
        query: String::new(),
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("x-twilio-signature".into(), sig),
        ],
        body: body.as_bytes().to_vec(),
    }
}

const TWILIO_DONE: &str = "CallSid=CAtw1&CallStatus=completed&Direction=inbound&From=%2B15550001111&To=%2B14155550199&CallDuration=42&SequenceNumber=3";

fn post_json(path: &str, bearer: &str, json_body: &str) -> Request {
    let mut r = get(path, Some(bearer));
    r.method = Method::Post;
    r.headers
        .push(("content-type".into(), "application/json".into()));
    r.body = json_body.as_bytes().to_vec();
    r
}
