//! The app driven as a value: real routing, auth and SQL (in-process SQLite), no runtime.

use super::*;
use crate::cache::state::CacheState;
use crate::cache::testing::{FakeKv, TestRuntime};
use crate::cache::{CacheControl, TieredReads};
use crate::clock::ManualClock;
use crate::config::AllowedOrigins;
use crate::store::sqlite::SqliteDatabase;
use crate::store::Store;
use crate::testing::block_on;
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

struct TestServices;

impl Services for TestServices {
    type Reads = Reads;
    type Writes = Store<SqliteDatabase>;
    type Parking = MemoryParking;
    type Clock = Rc<ManualClock>;
    type Live = crate::live::RecordingLive;
    type Keys = crate::auth::NoPublicKeys;
}

impl World {
    fn new() -> Self {
        let store = Store::new(SqliteDatabase::migrated());
        for (user, n) in [("ada", 3), ("bob", 2)] {
            for i in 0..n {
                store.db_exec(&format!(
                    "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, \
                     status, status_rank, answered, started_at, created_at, updated_at) VALUES \
                     ('CA{user}{i}', '{user}', 'twilio', 'inbound', '+14155550100', '+14155550199', \
                     'completed', 3, 1, {t}, {t}, {t})",
                    t = NOW_MS - 1000 * i
                ));
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
    crate::auth::sign_hs256(
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

#[test]
fn health_answers_without_auth_and_reveals_no_config() {
    let w = World::new();
    let res = w.send(get("/api/health", None));
    assert_eq!(res.status, 200);
    let b = body(&res);
    assert_eq!(b["ok"], true);
    assert_eq!(b["data"]["version"], VERSION);
    assert!(!String::from_utf8_lossy(&res.body).contains(SECRET));
}

#[test]
fn a_read_without_a_token_is_401_with_a_bearer_challenge() {
    let w = World::new();
    let res = w.send(get("/api/webhook-calls", None));
    assert_eq!(res.status, 401);
    assert!(res.header("www-authenticate").is_some());
    assert_eq!(body(&res)["error"]["code"], "unauthorized");
}

#[test]
fn an_expired_token_is_401() {
    let w = World::new();
    let t = token("ada");
    w.clock.advance(3_600_000);
    assert_eq!(w.send(get("/api/webhook-calls", Some(&t))).status, 401);
}

#[test]
fn the_list_is_the_callers_own_calls_in_the_envelope_with_cache_headers() {
    let w = World::new();
    let res = w.send(get("/api/webhook-calls?limit=2", Some(&token("ada"))));
    assert_eq!(res.status, 200);
    let b = body(&res);
    assert_eq!(b["success"], true);
    let ids: Vec<&str> = b["data"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["id"].as_str())
        .collect();
    assert_eq!(ids, ["CAada0", "CAada1"]);
    assert_eq!(b["meta"]["count"], 2);
    assert_eq!(b["meta"]["limit"], 2);
    assert_eq!(b["meta"]["offset"], 0);
    assert!(b["meta"]["nextCursor"].is_string());
    assert_eq!(b["meta"]["source"], "d1");
    assert_eq!(b["meta"]["cacheHit"], false);
    assert_eq!(res.header("x-cache"), Some("MISS"));
    assert_eq!(res.header("cache-control"), Some("private, no-cache"));
    assert!(res.header("etag").is_some());
    let next = b["meta"]["nextCursor"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let res = w.send(get(
        &format!("/api/webhook-calls?limit=2&cursor={next}"),
        Some(&token("ada")),
    ));
    let b = body(&res);
    assert_eq!(b["data"][0]["id"], "CAada2");
    assert_eq!(b["meta"]["cursor"], next.as_str());
    assert_eq!(b["meta"]["nextCursor"], Value::Null);
}

#[test]
fn a_call_embeds_its_analysis_and_enrichment() {
    let w = World::new();
    let b = body(&w.send(get("/api/webhook-calls/CAada0", Some(&token("ada")))));
    assert_eq!(b["data"]["analysis"]["intent"], "billing");
    assert_eq!(b["data"]["enrichment"]["callerName"], "Ada L.");
    assert_eq!(b["data"]["recording"], Value::Null);
    assert_eq!(b["data"]["startedAt"], "2027-01-15T08:00:00Z");
}

#[test]
fn user_b_never_sees_user_a_calls_by_any_route() {
    let w = World::new();
    let bob = token("bob");
    for path in [
        "/api/webhook-calls/CAada0",
        "/api/webhook-calls/CAada0/enhanced",
        "/api/intent-analysis/CAada0",
    ] {
        let res = w.send(get(path, Some(&bob)));
        assert_eq!(res.status, 404, "{path}");
        assert_eq!(body(&res)["error"]["code"], "not_found");
    }
    let list = body(&w.send(get("/api/webhook-calls?limit=500", Some(&bob))));
    assert!(list["data"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|c| c["id"].as_str().is_some_and(|id| id.starts_with("CAbob"))));
    let summary = body(&w.send(get("/api/intent-analysis", Some(&bob))));
    assert_eq!(summary["data"]["stats"]["totalCalls"], 2);
    assert_eq!(summary["data"]["calls"], json!([]));
}

#[test]
fn the_intent_summary_has_stats_over_all_calls() {
    let w = World::new();
    let b = body(&w.send(get("/api/intent-analysis?limit=1", Some(&token("ada")))));
    assert_eq!(b["data"]["stats"]["totalCalls"], 3);
    assert_eq!(b["data"]["stats"]["answeredCalls"], 3);
    assert_eq!(b["data"]["stats"]["avgConfidence"], 0.9);
    assert_eq!(
        b["data"]["stats"]["intentDistribution"],
        json!({"billing": 1})
    );
    assert_eq!(b["data"]["calls"][0]["id"], "CAada0");
    assert_eq!(b["meta"]["limit"], 1);
}

#[test]
fn a_matching_if_none_match_gets_304_without_a_body() {
    let w = World::new();
    let t = token("ada");
    let first = w.send(get("/api/webhook-calls", Some(&t)));
    let etag = first.header("etag").unwrap_or_default().to_owned();
    let mut again = get("/api/webhook-calls", Some(&t));
    again.headers.push(("if-none-match".into(), etag.clone()));
    let res = w.send(again);
    assert_eq!(res.status, 304);
    assert!(res.body.is_empty());
    assert_eq!(res.header("etag"), Some(etag.as_str()));
}

#[test]
fn bad_parameters_are_400_naming_the_field() {
    let w = World::new();
    let t = token("ada");
    for (q, field) in [
        ("limit=0", "limit"),
        ("offset=-3", "offset"),
        ("cursor=%%%", "cursor"),
    ] {
        let b = body(&w.send(get(&format!("/api/webhook-calls?{q}"), Some(&t))));
        assert_eq!(b["error"]["code"], "invalid_parameter", "{q}");
        assert!(
            b["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains(field)),
            "{q}"
        );
    }
    let b = body(&w.send(get("/api/intent-analysis?limit=501", Some(&t))));
    assert_eq!(b["error"]["code"], "invalid_parameter");
}

#[test]
fn call_ids_with_separators_unicode_or_path_tricks_are_not_found() {
    let w = World::new();
    let t = token("ada");
    for id in ["..%2FCAada0", "CA%3Aada0", "%C3%A9", "CAada0%00", "%ZZ"] {
        let res = w.send(get(&format!("/api/webhook-calls/{id}"), Some(&t)));
        assert_eq!(res.status, 404, "{id}");
    }
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let w = World::new();
    assert_eq!(w.send(get("/nope", None)).status, 404);
    let mut post = get("/api/webhook-calls", Some(&token("ada")));
    post.method = Method::Post;
    let res = w.send(post);
    assert_eq!(res.status, 405);
    assert!(res.header("allow").is_some_and(|a| a.contains("GET")));
}

#[test]
fn an_allowed_origin_gets_cors_headers_and_a_preflight_204() {
    let w = World::new();
    let mut req = get("/api/webhook-calls", Some(&token("ada")));
    req.headers
        .push(("origin".into(), "https://dash.example".into()));
    let res = w.send(req.clone());
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    req.method = Method::Options;
    req.headers.push((
        "access-control-request-headers".into(),
        "authorization".into(),
    ));
    let pre = w.send(req);
    assert_eq!(pre.status, 204);
    assert!(pre
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("GET")));
    let mut evil = get("/api/webhook-calls", Some(&token("ada")));
    evil.headers
        .push(("origin".into(), "https://evil.example".into()));
    assert_eq!(w.send(evil).header("access-control-allow-origin"), None);
}

#[test]
fn without_a_jwt_secret_reads_are_503_not_configured() {
    let mut w = World::new();
    w.config.jwt_secret = None;
    let res = w.send(get("/api/webhook-calls", Some(&token("ada"))));
    assert_eq!(res.status, 503);
    assert_eq!(body(&res)["error"]["code"], "not_configured");
}

fn put_number(number: &str, bearer: &str, json_body: &str) -> Request {
    let mut r = get(&format!("/api/admin/phone-numbers/{number}"), Some(bearer));
    r.method = Method::Put;
    r.headers
        .push(("content-type".into(), "application/json".into()));
    r.body = json_body.as_bytes().to_vec();
    r
}

#[test]
fn the_admin_routes_a_number_then_reroutes_then_deletes_it() {
    let w = World::new();
    let res = w.send(put_number("%2B14155550199", ADMIN, r#"{"userId":"ada"}"#));
    assert_eq!(res.status, 201);
    assert_eq!(body(&res)["data"]["phoneNumber"], "+14155550199");
    assert_eq!(
        w.send(put_number("+14155550199", ADMIN, r#"{"userId":"bob"}"#))
            .status,
        200
    );
    let mut del = get("/api/admin/phone-numbers/+14155550199", Some(ADMIN));
    del.method = Method::Delete;
    assert_eq!(w.send(del.clone()).status, 204);
    assert_eq!(w.send(del).status, 404);
}

#[test]
fn admin_routes_refuse_user_tokens_bad_numbers_and_bad_bodies() {
    let w = World::new();
    assert_eq!(
        w.send(put_number(
            "+14155550199",
            &token("ada"),
            r#"{"userId":"ada"}"#
        ))
        .status,
        403
    );
    assert_eq!(
        w.send(put_number("+14155550199", "wrong", r#"{"userId":"ada"}"#))
            .status,
        401
    );
    let bad_number = body(&w.send(put_number("4155550199", ADMIN, r#"{"userId":"ada"}"#)));
    assert_eq!(bad_number["error"]["code"], "invalid_parameter");
    assert_eq!(
        w.send(put_number("+14155550199", ADMIN, "{not json"))
            .status,
        400
    );
    let bad_user = body(&w.send(put_number("+14155550199", ADMIN, r#"{"userId":"a:b"}"#)));
    assert!(bad_user["error"]["message"]
        .as_str()
        .is_some_and(|m| m.contains("userId")));
    let mut wrong_type = put_number("+14155550199", ADMIN, r#"{"userId":"ada"}"#);
    wrong_type.headers.retain(|(k, _)| k != "content-type");
    wrong_type
        .headers
        .push(("content-type".into(), "text/plain".into()));
    assert_eq!(w.send(wrong_type).status, 415);
}

#[test]
fn head_requests_get_headers_without_a_body() {
    let w = World::new();
    let mut req = get("/api/webhook-calls", Some(&token("ada")));
    req.method = Method::Head;
    let res = w.send(req);
    assert_eq!(res.status, 200);
    assert!(res.body.is_empty());
    assert!(res.header("etag").is_some());
}

// ---- Webhooks through the app (signatures made here, independently of the verifiers). ----

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

fn event_post(id: &str, body: &str, secret_b64: &str, ts: i64) -> Request {
    use base64::Engine;
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .expect("b64");
    let ts = ts.to_string();
    let sig = hmac_b64::<hmac::Hmac<sha2::Sha256>>(
        &key,
        &[id.as_bytes(), b".", ts.as_bytes(), b".", body.as_bytes()],
    );
    Request {
        method: Method::Post,
        url: "http://127.0.0.1:8787/webhooks/events".into(),
        path: "/webhooks/events".into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), id.into()),
            ("webhook-timestamp".into(), ts),
            ("webhook-signature".into(), format!("v1,{sig}")),
        ],
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn a_signed_twilio_callback_is_answered_with_twiml_and_lands_for_the_number_owner() {
    let w = with_webhook_secrets(World::new());
    let res = w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    assert_eq!(res.status, 200);
    assert!(res
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/xml")));
    assert!(String::from_utf8_lossy(&res.body).contains("<Response/>"));
    let b = body(&w.send(get("/api/webhook-calls/CAtw1", Some(&token("ada")))));
    assert_eq!(b["data"]["status"], "completed");
}

#[test]
fn twilio_callbacks_without_or_with_a_wrong_signature_are_401_and_403() {
    let w = with_webhook_secrets(World::new());
    let mut unsigned = twilio_post("/webhooks/twilio/voice-status", TWILIO_DONE, "twilio-token");
    unsigned.headers.retain(|(k, _)| k != "x-twilio-signature");
    assert_eq!(w.send(unsigned).status, 401);
    let wrong = twilio_post("/webhooks/twilio/voice-status", TWILIO_DONE, "other-token");
    let res = w.send(wrong);
    assert_eq!(res.status, 403);
    assert_eq!(body(&res)["error"]["code"], "invalid_signature");
}

#[test]
fn a_wrong_content_type_is_415_and_a_garbled_form_400() {
    let w = with_webhook_secrets(World::new());
    let mut json = twilio_post("/webhooks/twilio/voice-status", TWILIO_DONE, "twilio-token");
    json.headers.retain(|(k, _)| k != "content-type");
    json.headers
        .push(("content-type".into(), "application/json".into()));
    assert_eq!(w.send(json).status, 415);
    let garbled = twilio_post(
        "/webhooks/twilio/voice-status",
        "CallSid=%ZZ",
        "twilio-token",
    );
    assert_eq!(w.send(garbled).status, 400);
}

#[test]
fn without_a_twilio_token_the_route_is_503_and_accepts_nothing() {
    let w = World::new();
    let res = w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    assert_eq!(
        (res.status, body(&res)["error"]["code"].clone()),
        (503, json!("not_configured"))
    );
}

#[test]
fn a_standard_webhook_event_is_applied_once_however_often_it_is_delivered() {
    let w = with_webhook_secrets(World::new());
    let body_json = r#"{"type":"call.analysis.completed","timestamp":"2027-01-15T08:00:00Z","data":{"userId":"ada","callId":"CAada1","intent":"sales","confidence":0.7}}"#;
    let req = event_post(
        "msg_1",
        body_json,
        "c2VjcmV0LWtleS1ieXRlcw==",
        NOW_MS / 1000,
    );
    let first = w.send(req.clone());
    let second = w.send(req);
    assert_eq!((first.status, second.status), (200, 200));
    assert_eq!(first.body, second.body, "the same 2xx");
    let summary = body(&w.send(get("/api/intent-analysis", Some(&token("ada")))));
    assert_eq!(
        summary["data"]["stats"]["intentDistribution"],
        json!({"billing": 1, "sales": 1})
    );
}

#[test]
fn a_replayed_event_outside_five_minutes_is_refused() {
    let w = with_webhook_secrets(World::new());
    let old = event_post(
        "msg_2",
        r#"{"type":"x","data":{}}"#,
        "c2VjcmV0LWtleS1ieXRlcw==",
        NOW_MS / 1000 - 301,
    );
    assert_eq!(w.send(old).status, 403);
}

#[test]
fn when_d1_fails_the_verified_delivery_is_parked_and_still_acknowledged() {
    let w = with_webhook_secrets(World::new());
    w.store.db_exec("DROP TABLE webhook_deliveries");
    let handled = w.handle(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    assert_eq!(handled.response.status, 200);
    assert!(handled
        .note
        .is_some_and(|n| n.starts_with("parked twilio delivery")));
    assert_eq!(w.parking.entries.borrow().len(), 1);
}

#[test]
fn when_d1_and_parking_both_fail_the_provider_is_told_to_retry() {
    let w = with_webhook_secrets(World::new());
    w.store.db_exec("DROP TABLE webhook_deliveries");
    w.parking.fail.set(true);
    let res = w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    assert_eq!(res.status, 503);
    assert!(res.header("retry-after").is_some());
}

#[test]
fn a_signed_retell_event_lands_through_the_registered_number() {
    let w = with_webhook_secrets(World::new());
    let now = NOW_MS;
    let body_json = format!(
        r#"{{"event":"call_ended","call":{{"call_id":"call_9","direction":"inbound","from_number":"+15550001111","to_number":"+14155550199","start_timestamp":{},"end_timestamp":{}}}}}"#,
        now - 60_000,
        now - 1_000
    );
    let v = now.to_string();
    let mut mac =
        <hmac::Hmac<sha2::Sha256> as hmac::digest::KeyInit>::new_from_slice(b"retell-key")
            .expect("key");
    hmac::Mac::update(&mut mac, body_json.as_bytes());
    hmac::Mac::update(&mut mac, v.as_bytes());
    let digest = hex::encode(hmac::Mac::finalize(mac).into_bytes());
    let req = Request {
        method: Method::Post,
        url: "http://127.0.0.1:8787/webhooks/retell".into(),
        path: "/webhooks/retell".into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("x-retell-signature".into(), format!("v={v},d={digest}")),
        ],
        body: body_json.into_bytes(),
    };
    assert_eq!(w.send(req).status, 200);
    let b = body(&w.send(get("/api/webhook-calls/call_9", Some(&token("ada")))));
    assert_eq!(
        (
            b["data"]["provider"].clone(),
            b["data"]["durationSeconds"].clone()
        ),
        (json!("retell"), json!(59))
    );
}

// ---- The cache through the app. ----

fn post_json(path: &str, bearer: &str, json_body: &str) -> Request {
    let mut r = get(path, Some(bearer));
    r.method = Method::Post;
    r.headers
        .push(("content-type".into(), "application/json".into()));
    r.body = json_body.as_bytes().to_vec();
    r
}

#[test]
fn the_second_read_is_a_memory_hit_with_the_same_etag() {
    let w = World::new();
    let t = token("ada");
    let first = w.send(get("/api/webhook-calls?limit=2", Some(&t)));
    let second = w.send(get("/api/webhook-calls?limit=2", Some(&t)));
    assert_eq!(first.header("x-cache"), Some("MISS"));
    assert_eq!(second.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(body(&second)["meta"]["source"], "memory");
    assert_eq!(body(&second)["meta"]["cacheHit"], true);
    assert_eq!(first.header("etag"), second.header("etag"));
    assert_eq!(body(&first)["data"], body(&second)["data"]);
}

#[test]
fn a_webhook_makes_the_next_read_in_this_isolate_fresh() {
    let w = with_webhook_secrets(World::new());
    let t = token("ada");
    let before = body(&w.send(get("/api/intent-analysis", Some(&t))));
    assert_eq!(
        w.send(get("/api/intent-analysis", Some(&t)))
            .header("x-cache"),
        Some("HIT-MEMORY")
    );
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let after = w.send(get("/api/intent-analysis", Some(&t)));
    // Read just before, so refreshed by the webhook's own batch: a hit, with the change.
    assert_eq!(after.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(
        body(&after)["data"]["stats"]["totalCalls"].as_i64(),
        before["data"]["stats"]["totalCalls"]
            .as_i64()
            .map(|n| n + 1)
    );
}

#[test]
fn cache_stats_are_per_user_with_a_jwt_and_isolate_wide_with_the_admin_token() {
    let w = World::new();
    w.send(get("/api/webhook-calls", Some(&token("ada"))));
    w.send(get("/api/webhook-calls", Some(&token("bob"))));
    let mine = body(&w.send(get("/api/cache/stats", Some(&token("ada")))));
    assert_eq!(mine["meta"]["scope"], "user");
    assert_eq!(mine["data"]["counters"]["misses"], 1);
    let all = body(&w.send(get("/api/cache/stats", Some(ADMIN))));
    assert_eq!(all["meta"]["scope"], "isolate");
    assert_eq!(all["data"]["counters"]["misses"], 2);
    assert_eq!(w.send(get("/api/cache/stats", None)).status, 401);
}

#[test]
fn purge_retires_a_users_entries_and_needs_the_admin_token() {
    let w = World::new();
    let t = token("ada");
    w.send(get("/api/webhook-calls", Some(&t)));
    assert_eq!(
        w.send(post_json("/api/cache/purge", &t, r#"{"userId":"ada"}"#))
            .status,
        403
    );
    let res = w.send(post_json("/api/cache/purge", ADMIN, r#"{"userId":"ada"}"#));
    assert_eq!(
        (res.status, body(&res)["data"]["purged"].clone()),
        (200, json!("user"))
    );
    assert_eq!(
        w.send(get("/api/webhook-calls", Some(&t)))
            .header("x-cache"),
        Some("MISS")
    );
    assert_eq!(
        w.send(post_json("/api/cache/purge", ADMIN, r#"{"all":true}"#))
            .status,
        200
    );
    assert_eq!(
        w.send(post_json("/api/cache/purge", ADMIN, "{}")).status,
        400
    );
    assert_eq!(
        w.send(post_json("/api/cache/purge", ADMIN, r#"{"userId":"a:b"}"#))
            .status,
        400
    );
}

#[test]
fn warming_loads_the_landing_view_so_the_first_read_hits() {
    let w = World::new();
    let res = w.send(post_json(
        "/api/cache/warm",
        ADMIN,
        r#"{"userIds":["ada"]}"#,
    ));
    assert_eq!(body(&res)["data"]["warmed"], json!(["ada"]));
    let t = token("ada");
    assert_eq!(
        w.send(get("/api/webhook-calls", Some(&t)))
            .header("x-cache"),
        Some("HIT-MEMORY")
    );
    assert_eq!(
        w.send(get("/api/intent-analysis", Some(&t)))
            .header("x-cache"),
        Some("HIT-MEMORY")
    );
    let bad = w.send(post_json(
        "/api/cache/warm",
        ADMIN,
        r#"{"userIds":["a/b"]}"#,
    ));
    assert_eq!(bad.status, 400);
}

#[test]
fn large_pages_bypass_the_cache() {
    let w = World::new();
    let t = token("ada");
    for _ in 0..2 {
        let res = w.send(get("/api/webhook-calls?limit=101", Some(&t)));
        assert_eq!(res.header("x-cache"), Some("BYPASS"));
        assert_eq!(body(&res)["meta"]["source"], "d1");
    }
    w.rt.run_background();
}

#[test]
fn cache_keys_lists_a_users_memory_entries_with_age_ttl_and_kv_presence() {
    let w = World::new();
    let t = token("ada");
    w.send(get("/api/webhook-calls?limit=2", Some(&t)));
    w.send(get("/api/webhook-calls/CAada0", Some(&t)));
    w.send(get("/api/webhook-calls?limit=2", Some(&token("bob"))));
    w.rt.run_background(); // the KV writes
    w.clock.advance(10_000);
    let res = w.send(get("/api/cache/keys?userId=ada", Some(ADMIN)));
    assert_eq!(res.status, 200);
    let b = body(&res);
    let keys = b["data"]["keys"].as_array().cloned().unwrap_or_default();
    assert_eq!(keys.len(), 2, "only ada's: {keys:?}");
    for k in &keys {
        assert!(k["key"].as_str().is_some_and(|s| s.contains(":user:ada:")));
        assert_eq!(k["tier"], "memory");
        assert_eq!(k["state"], "fresh");
        assert_eq!(k["ageSeconds"], 10.0);
        assert_eq!(k["inKv"], true);
        assert!(k["ttlRemainingSeconds"]
            .as_f64()
            .is_some_and(|s| (250.0..=320.0).contains(&s)));
    }
    // After a write the entries are reported as retired.
    w.reads.invalidate(
        &UserId::parse("ada").expect("valid"),
        Some(crate::domain::Version::new(u64::from(u32::MAX))),
    );
    let b = body(&w.send(get("/api/cache/keys?userId=ada", Some(ADMIN))));
    let states: Vec<String> = b["data"]["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|k| k["state"].as_str().map(str::to_owned))
        .collect();
    assert!(states.contains(&"retired".to_owned()), "{states:?}");
    assert_eq!(
        w.send(get("/api/cache/keys?userId=ada", Some(&t))).status,
        403
    );
    assert_eq!(w.send(get("/api/cache/keys", Some(ADMIN))).status, 400);
    assert_eq!(
        w.send(get("/api/cache/keys?userId=a:b", Some(ADMIN)))
            .status,
        400
    );
}

// ---- The live feed through the app. ----

#[test]
fn a_committed_webhook_tells_the_owners_feed_once_with_the_call_and_its_new_version() {
    let w = with_webhook_secrets(World::new());
    let req = twilio_post("/webhooks/twilio/voice-status", TWILIO_DONE, "twilio-token");
    assert_eq!(w.send(req.clone()).status, 200);
    assert_eq!(w.send(req).status, 200, "a retry");
    let sent = w.live.sent.borrow();
    assert_eq!(
        sent.len(),
        1,
        "a retry changes nothing, so tells nothing: {sent:?}"
    );
    let (user, n) = &sent[0];
    assert_eq!(user.as_str(), "ada");
    assert_eq!(n.kind, crate::live::ChangeKind::Changed);
    assert_eq!(n.call_ids, vec!["CAtw1".to_owned()]);
    let page = body(&w.send(get("/api/webhook-calls", Some(&token("ada")))));
    assert_eq!(page["meta"]["version"], json!(n.version));
}

#[test]
fn a_deletion_tells_the_owners_feed_and_a_refused_one_tells_nobody() {
    let w = World::new();
    let mut del = get("/api/webhook-calls/CAada1", Some(&token("bob")));
    del.method = Method::Delete;
    assert_eq!(w.send(del.clone()).status, 404);
    assert!(w.live.sent.borrow().is_empty());
    del.headers = vec![("authorization".into(), format!("Bearer {}", token("ada")))];
    assert_eq!(w.send(del).status, 204);
    let sent = w.live.sent.borrow();
    assert_eq!(sent.len(), 1);
    assert_eq!(
        (
            sent[0].0.as_str(),
            sent[0].1.kind,
            sent[0].1.call_ids.clone()
        ),
        (
            "ada",
            crate::live::ChangeKind::Deleted,
            vec!["CAada1".to_owned()]
        )
    );
}

#[test]
fn a_live_ticket_needs_a_dashboard_token_and_the_upgrade_needs_a_well_formed_ticket() {
    let w = World::new();
    let issued = w.send(post_json("/api/live/tickets", &token("ada"), ""));
    assert_eq!(issued.status, 201);
    let t = body(&issued)["data"]["ticket"]
        .as_str()
        .expect("a ticket")
        .to_owned();
    assert_eq!(
        w.send(post_json("/api/live/tickets", ADMIN, "")).status,
        401
    );
    let upgrade = |query: &str, websocket: bool| {
        let mut r = get(&format!("/api/live{query}"), None);
        if websocket {
            r.headers.push(("upgrade".into(), "websocket".into()));
        }
        w.handle(r)
    };
    let plain = upgrade(&format!("?ticket={t}"), false);
    assert_eq!(
        (plain.response.status, plain.upgrade.is_none()),
        (426, true)
    );
    assert_eq!(body(&plain.response)["error"]["code"], "upgrade_required");
    for bad in ["", "?ticket=", "?ticket=ada", "?ticket=00.11"] {
        assert_eq!(upgrade(bad, true).response.status, 401, "{bad}");
    }
    let admitted = upgrade(&format!("?ticket={t}"), true);
    assert_eq!(
        admitted.upgrade.map(|t| t.encode()),
        Some(t),
        "handed to the entry"
    );
}

#[test]
fn without_a_live_feed_the_live_routes_are_503_not_configured() {
    struct NoLive;
    impl Services for NoLive {
        type Reads = Reads;
        type Writes = Store<SqliteDatabase>;
        type Parking = MemoryParking;
        type Clock = Rc<ManualClock>;
        type Live = crate::live::NoLiveFeed;
        type Keys = crate::auth::NoPublicKeys;
    }
    let w = World::new();
    let app: App<'_, NoLive> = App {
        config: &w.config,
        reads: &w.reads,
        writes: &w.store,
        parking: &w.parking,
        clock: &w.clock,
        live: &crate::live::NoLiveFeed,
        keys: &crate::auth::NoPublicKeys,
    };
    let ticket = block_on(app.handle(&post_json("/api/live/tickets", &token("ada"), "")));
    let mut up = get("/api/live?ticket=ab.0123456789abcdef0123456789abcdef", None);
    up.headers.push(("upgrade".into(), "websocket".into()));
    let upgrade = block_on(app.handle(&up));
    for res in [ticket.response, upgrade.response] {
        assert_eq!(
            (res.status, body(&res)["error"]["code"].clone()),
            (503, json!("not_configured"))
        );
    }
}

// ---- Refresh on write. ----

#[test]
fn after_a_webhook_the_landing_view_someone_is_looking_at_is_a_memory_hit_with_the_change() {
    let w = with_webhook_secrets(World::new());
    let t = token("ada");
    assert_eq!(
        w.send(get("/api/webhook-calls", Some(&t)))
            .header("x-cache"),
        Some("MISS")
    );
    w.send(get("/api/intent-analysis?limit=20", Some(&t)));
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let queries = w.store.usage().queries;
    let page = w.send(get("/api/webhook-calls", Some(&t)));
    assert_eq!(page.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(
        body(&page)["data"][0]["id"],
        "CAtw1",
        "with the webhook's call"
    );
    let summary = w.send(get("/api/intent-analysis?limit=20", Some(&t)));
    assert_eq!(summary.header("x-cache"), Some("HIT-MEMORY"));
    assert_eq!(body(&summary)["data"]["stats"]["totalCalls"], 4);
    assert_eq!(
        w.store.usage().queries,
        queries,
        "no D1 round trip for either"
    );
    let stats = body(&w.send(get("/api/cache/stats", Some(ADMIN))));
    assert_eq!(stats["data"]["counters"]["refreshedOnWrite"], 2);
}

#[test]
fn a_webhook_for_a_user_nobody_is_looking_at_refreshes_nothing() {
    let w = with_webhook_secrets(World::new());
    w.send(get("/api/webhook-calls", Some(&token("bob"))));
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let stats = body(&w.send(get("/api/cache/stats", Some(ADMIN))));
    assert_eq!(stats["data"]["counters"]["refreshedOnWrite"], 0);
    let page = w.send(get("/api/webhook-calls", Some(&token("ada"))));
    assert_eq!(page.header("x-cache"), Some("MISS"));
}

#[test]
fn with_refresh_on_write_off_a_webhook_only_retires() {
    let mut w = with_webhook_secrets(World::new());
    w.config.cache.refresh_on_write = false;
    let policy = Rc::new(w.config.cache.clone());
    w.reads = TieredReads::new(
        w.store.clone(),
        Rc::new(FakeKv::default()),
        w.clock.clone(),
        w.rt.clone(),
        Rc::new(CacheState::new(&policy)),
        policy,
    );
    let t = token("ada");
    w.send(get("/api/webhook-calls", Some(&t)));
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    assert_eq!(
        w.send(get("/api/webhook-calls", Some(&t)))
            .header("x-cache"),
        Some("MISS")
    );
}

#[test]
fn after_a_webhook_about_one_call_the_details_of_the_users_other_calls_are_still_hits() {
    let w = with_webhook_secrets(World::new());
    let t = token("ada");
    assert_eq!(
        w.send(get("/api/webhook-calls/CAada0", Some(&t)))
            .header("x-cache"),
        Some("MISS")
    );
    w.send(twilio_post(
        "/webhooks/twilio/voice-status",
        TWILIO_DONE,
        "twilio-token",
    ));
    let again = w.send(get("/api/webhook-calls/CAada0", Some(&t)));
    assert_eq!(
        again.header("x-cache"),
        Some("HIT-MEMORY"),
        "CAtw1's webhook did not touch it"
    );
    let page = body(&w.send(get("/api/webhook-calls", Some(&t))));
    assert_eq!(
        body(&again)["meta"]["version"],
        page["meta"]["version"],
        "at the new version"
    );
}
