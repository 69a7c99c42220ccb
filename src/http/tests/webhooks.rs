//! Webhooks through the app: signed deliveries land once, bad ones are refused, D1 failures park.

use super::*;

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
    let digest = crate::hex::encode(hmac::Mac::finalize(mac).into_bytes());
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
