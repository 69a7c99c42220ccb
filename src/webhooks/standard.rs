//! Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`; the `svix-*`
//! names too): our analysis and enrichment pipelines, or any sender without native support.
//!
//! The signature is base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")) where the key is the
//! base64 after `whsec_`. The header holds space-separated `v1,<sig>` entries; one match with
//! any configured secret suffices. The timestamp must be within ±5 minutes of `now`.

use super::json::{self, Fields};
use super::ParseError;
use crate::domain::{AnalysisReport, CallReport, Delivery, EnrichmentReport, Event, Owner};
use crate::domain::{AnalysisStatus, CallId, CallStatus, Direction, Provider, Timestamp, UserId};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StandardSignatureError {
    /// `webhook-id`, `webhook-timestamp` or `webhook-signature` is absent (401).
    MissingHeader(&'static str),
    /// The timestamp is not an integer number of seconds (403).
    MalformedTimestamp,
    /// The timestamp is more than 5 minutes from now, either way (403).
    TimestampOutOfTolerance,
    /// No configured secret is a valid `whsec_` key (503, a configuration error).
    NoUsableSecret,
    /// No `v1` entry matches any configured secret (403).
    NoMatchingSignature,
}

/// The three signature headers, under their `webhook-*` or `svix-*` names.
#[derive(Debug, Clone, Copy, Default)]
pub struct SignatureHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl<'a> SignatureHeaders<'a> {
    /// Reads the headers through `get` (a lower-case name → value).
    pub fn from_lookup(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let either =
            |name: &str| get(&format!("webhook-{name}")).or_else(|| get(&format!("svix-{name}")));
        Self {
            id: either("id"),
            timestamp: either("timestamp"),
            signature: either("signature"),
        }
    }
}

/// Decodes a `whsec_…` secret (the prefix is optional) into its key bytes.
pub fn secret_key(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix("whsec_").unwrap_or(secret);
    crate::base64::decode_standard(b64).filter(|k| !k.is_empty())
}

pub fn verify(
    headers: &SignatureHeaders<'_>,
    body: &[u8],
    secrets: &[&str],
    now: Timestamp,
) -> Result<(), StandardSignatureError> {
    use StandardSignatureError as E;
    let id = headers
        .id
        .filter(|v| !v.is_empty())
        .ok_or(E::MissingHeader("webhook-id"))?;
    let ts = headers
        .timestamp
        .filter(|v| !v.is_empty())
        .ok_or(E::MissingHeader("webhook-timestamp"))?;
    let signatures = headers
        .signature
        .filter(|v| !v.trim().is_empty())
        .ok_or(E::MissingHeader("webhook-signature"))?;
    let seconds: i64 = ts.trim().parse().map_err(|_| E::MalformedTimestamp)?;
    // Checked all the way: any header value, however extreme, is out of tolerance rather
    // than an overflow (a panic in checked builds, a silent pass in release).
    let ms = seconds
        .checked_mul(1000)
        .ok_or(E::TimestampOutOfTolerance)?;
    if !super::within_tolerance(now, ms) {
        return Err(E::TimestampOutOfTolerance);
    }
    let keys: Vec<Vec<u8>> = secrets.iter().filter_map(|s| secret_key(s)).collect();
    if keys.is_empty() {
        return Err(E::NoUsableSecret);
    }
    let candidates: Vec<Vec<u8>> = signatures
        .split_ascii_whitespace()
        .filter_map(|entry| entry.strip_prefix("v1,"))
        .filter_map(crate::base64::decode_standard)
        .collect();
    for key in &keys {
        for candidate in &candidates {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).map_err(|_| E::NoUsableSecret)?;
            mac.update(id.as_bytes());
            mac.update(b".");
            mac.update(ts.as_bytes());
            mac.update(b".");
            mac.update(body);
            if mac.verify_slice(candidate).is_ok() {
                return Ok(());
            }
        }
    }
    Err(E::NoMatchingSignature)
}

fn opt_str(data: &Fields, name: &'static str) -> Result<Option<String>, ParseError> {
    json::opt_string(data, name, "must be a string or null")
}

fn opt_number(data: &Fields, name: &'static str) -> Result<Option<f64>, ParseError> {
    json::optional(data, name, Value::as_f64, "must be a number or null")
}

fn opt_instant(data: &Fields, name: &'static str) -> Result<Option<i64>, ParseError> {
    match opt_str(data, name)? {
        None => Ok(None),
        Some(s) => Timestamp::parse_rfc3339(&s)
            .map(|t| Some(t.millis()))
            .ok_or_else(|| ParseError::field(name, "must be an RFC 3339 instant")),
    }
}

fn user(data: &Fields) -> Result<UserId, ParseError> {
    UserId::parse(json::non_empty_str(data, "userId")?)
        .ok_or_else(|| ParseError::field("userId", "is not a user id"))
}

fn call_id(data: &Fields, name: &'static str) -> Result<CallId, ParseError> {
    CallId::parse(json::non_empty_str(data, name)?)
        .ok_or_else(|| ParseError::field(name, "is not a call id"))
}

/// The call an event names, whatever its type: `data.callId`, else `data.id`, when it is a
/// well-formed call id. Recorded with the delivery so deleting the call forgets its body.
fn named_call(root: &Fields) -> Option<CallId> {
    let data = root.get("data")?.as_object()?;
    ["callId", "id"]
        .iter()
        .filter_map(|k| data.get(*k).and_then(Value::as_str))
        .find_map(CallId::parse)
}

/// The event types this service applies; others are recorded and acknowledged.
pub const KNOWN_TYPES: [&str; 4] = [
    "call.upserted",
    "call.analysis.completed",
    "call.analysis.failed",
    "call.enrichment.completed",
];

/// Reads one event type's `data` (its owner already read) into the event it reports, at `at`.
type EventParser = fn(&Fields, Owner, i64) -> Result<Event, ParseError>;

/// The parser for each of [`KNOWN_TYPES`].
fn event_parser(event_type: &str) -> Option<EventParser> {
    match event_type {
        "call.upserted" => Some(call_upserted),
        "call.analysis.completed" => Some(analysis_completed),
        "call.analysis.failed" => Some(analysis_failed),
        "call.enrichment.completed" => Some(enrichment_completed),
        _ => None,
    }
}

/// A verified event body as a delivery, keyed by `webhook-id`.
pub fn parse(webhook_id: &str, body: &[u8], now: Timestamp) -> Result<Delivery, ParseError> {
    let root = json::object(body)?;
    let event_type = json::required_str(&root, "type")?;
    let at = match json::opt_string(&root, "timestamp", "must be a string")? {
        None => now.millis(),
        Some(s) => Timestamp::parse_rfc3339(&s)
            .ok_or_else(|| ParseError::field("timestamp", "must be an RFC 3339 instant"))?
            .millis(),
    };
    let mut delivery = Delivery {
        provider: Provider::Api,
        key: webhook_id.to_owned(),
        event_type: event_type.chars().take(100).collect(),
        call_id: named_call(&root),
        events: Vec::new(),
        received_at: now.millis(),
        payload: None,
    };
    let Some(parse_event) = event_parser(event_type) else {
        delivery.payload = Some(String::from_utf8_lossy(body).into_owned());
        return Ok(delivery);
    };
    let data = json::required_object(&root, "data")?;
    let owner = Owner {
        user: Some(user(data)?),
        number: None,
    };
    delivery.events.push(parse_event(data, owner, at)?);
    Ok(delivery)
}

/// `call.upserted`: the call as the sender has it; absent fields take their defaults.
fn call_upserted(data: &Fields, owner: Owner, at: i64) -> Result<Event, ParseError> {
    let status = match opt_str(data, "status")? {
        None => CallStatus::Queued,
        Some(s) => CallStatus::parse(&s)
            .ok_or_else(|| ParseError::field("status", "is not a call status"))?,
    };
    let direction = match opt_str(data, "direction")? {
        None => Direction::Inbound,
        Some(s) => Direction::parse(&s)
            .ok_or_else(|| ParseError::field("direction", "must be inbound or outbound"))?,
    };
    let provider = match opt_str(data, "provider")? {
        None => Provider::Api,
        Some(s) => Provider::parse(&s)
            .ok_or_else(|| ParseError::field("provider", "must be twilio, retell or api"))?,
    };
    let duration = opt_number(data, "durationSeconds")?;
    if duration.is_some_and(|d| d < 0.0 || d.fract() != 0.0) {
        return Err(ParseError::field(
            "durationSeconds",
            "must be a whole number ≥ 0",
        ));
    }
    Ok(Event::Call(CallReport {
        call_id: call_id(data, "id")?,
        owner,
        provider,
        direction,
        from: opt_str(data, "from")?.unwrap_or_default(),
        to: opt_str(data, "to")?.unwrap_or_default(),
        status,
        // Only an explicit `startedAt` reports the start; `at` is when the event
        // happened, which for a late update is long after the call began.
        started_at: opt_instant(data, "startedAt")?,
        ended_at: opt_instant(data, "endedAt")?,
        duration_seconds: duration.map(|d| d as i64),
        at,
    }))
}

/// `call.analysis.completed`: the intent, with a confidence between 0 and 1.
fn analysis_completed(data: &Fields, owner: Owner, at: i64) -> Result<Event, ParseError> {
    let confidence = opt_number(data, "confidence")?
        .ok_or_else(|| ParseError::field("confidence", "is required"))?;
    if !(0.0..=1.0).contains(&confidence) {
        return Err(ParseError::field("confidence", "must be between 0 and 1"));
    }
    Ok(Event::Analysis(AnalysisReport {
        call_id: call_id(data, "callId")?,
        owner,
        status: AnalysisStatus::Completed,
        intent: Some(json::non_empty_str(data, "intent")?.to_owned()),
        confidence: Some(confidence),
        summary: opt_str(data, "summary")?,
        at,
    }))
}

/// `call.analysis.failed`: no intent; the sender's error, if any, is the summary.
fn analysis_failed(data: &Fields, owner: Owner, at: i64) -> Result<Event, ParseError> {
    Ok(Event::Analysis(AnalysisReport {
        call_id: call_id(data, "callId")?,
        owner,
        status: AnalysisStatus::Failed,
        intent: None,
        confidence: None,
        summary: opt_str(data, "error")?,
        at,
    }))
}

/// `call.enrichment.completed`: what is known about the caller's number.
fn enrichment_completed(data: &Fields, owner: Owner, at: i64) -> Result<Event, ParseError> {
    Ok(Event::Enrichment(EnrichmentReport {
        call_id: call_id(data, "callId")?,
        owner,
        phone_number: json::non_empty_str(data, "phoneNumber")?.to_owned(),
        caller_name: opt_str(data, "callerName")?,
        caller_type: opt_str(data, "callerType")?,
        line_type: opt_str(data, "lineType")?,
        carrier: opt_str(data, "carrier")?,
        spam_score: opt_number(data, "spamScore")?,
        at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::TOLERANCE_MS;
    use serde_json::json;

    struct Vector {
        secret: String,
        body: String,
        id: String,
        ts: String,
        sig: String,
    }

    fn vector() -> Vector {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/webhook-signatures.json"
        ))
        .expect("the signature vectors are in tests/fixtures");
        let all: Value = serde_json::from_str(&raw).expect("JSON");
        let v = &all["standard_webhooks"];
        let s = |k: &str| v[k].as_str().expect("string").to_owned();
        Vector {
            secret: s("secret"),
            body: s("raw_body"),
            id: s("webhook-id"),
            ts: s("webhook-timestamp"),
            sig: s("webhook-signature"),
        }
    }

    fn at(seconds: &str) -> Timestamp {
        Timestamp::from_millis(seconds.parse::<i64>().expect("seconds") * 1000)
    }

    fn headers<'a>(v: &'a Vector) -> SignatureHeaders<'a> {
        SignatureHeaders {
            id: Some(&v.id),
            timestamp: Some(&v.ts),
            signature: Some(&v.sig),
        }
    }

    #[test]
    fn the_standard_webhooks_vector_verifies() {
        let v = vector();
        assert_eq!(
            verify(&headers(&v), v.body.as_bytes(), &[&v.secret], at(&v.ts)),
            Ok(())
        );
    }

    #[test]
    fn svix_header_names_are_read_too() {
        let v = vector();
        let h = SignatureHeaders::from_lookup(|name| match name {
            "svix-id" => Some(v.id.as_str()),
            "svix-timestamp" => Some(v.ts.as_str()),
            "svix-signature" => Some(v.sig.as_str()),
            _ => None,
        });
        assert_eq!(
            verify(&h, v.body.as_bytes(), &[&v.secret], at(&v.ts)),
            Ok(())
        );
    }

    #[test]
    fn a_secondary_secret_and_one_of_several_signatures_suffice() {
        let v = vector();
        let list = format!("v1,AAAA {} v2,zzz", v.sig);
        let h = SignatureHeaders {
            signature: Some(&list),
            ..headers(&v)
        };
        let other = "whsec_b3RoZXItc2VjcmV0";
        assert_eq!(
            verify(&h, v.body.as_bytes(), &[other, &v.secret], at(&v.ts)),
            Ok(())
        );
    }

    #[test]
    fn each_missing_header_is_named() {
        let v = vector();
        let body = v.body.as_bytes();
        let now = at(&v.ts);
        for (h, name) in [
            (
                SignatureHeaders {
                    id: None,
                    ..headers(&v)
                },
                "webhook-id",
            ),
            (
                SignatureHeaders {
                    timestamp: None,
                    ..headers(&v)
                },
                "webhook-timestamp",
            ),
            (
                SignatureHeaders {
                    signature: Some(" "),
                    ..headers(&v)
                },
                "webhook-signature",
            ),
        ] {
            assert_eq!(
                verify(&h, body, &[&v.secret], now),
                Err(StandardSignatureError::MissingHeader(name))
            );
        }
    }

    #[test]
    fn a_timestamp_that_is_not_seconds_is_malformed() {
        let v = vector();
        let h = SignatureHeaders {
            timestamp: Some("2024-03-05"),
            ..headers(&v)
        };
        assert_eq!(
            verify(&h, v.body.as_bytes(), &[&v.secret], at(&v.ts)),
            Err(StandardSignatureError::MalformedTimestamp)
        );
    }

    #[test]
    fn extreme_header_timestamps_are_out_of_tolerance_never_an_overflow() {
        let v = vector();
        for (ts, now) in [
            ("-9223370236854775", 1_800_000_000_000),
            ("9223372036854775", 1_800_000_000_000),
            ("9223372036854775807", 0),
            ("-9223372036854775808", 0),
            ("0", i64::MIN),
            ("9223372036854", i64::MIN),
        ] {
            let h = SignatureHeaders {
                id: Some(&v.id),
                timestamp: Some(ts),
                signature: Some(&v.sig),
            };
            assert_eq!(
                verify(
                    &h,
                    v.body.as_bytes(),
                    &[&v.secret],
                    Timestamp::from_millis(now)
                ),
                Err(StandardSignatureError::TimestampOutOfTolerance),
                "{ts} at {now}"
            );
        }
    }

    #[test]
    fn timestamps_beyond_five_minutes_either_way_are_refused() {
        let v = vector();
        let body = v.body.as_bytes();
        let t = at(&v.ts).millis();
        for now in [t + TOLERANCE_MS + 1000, t - TOLERANCE_MS - 1000] {
            assert_eq!(
                verify(
                    &headers(&v),
                    body,
                    &[&v.secret],
                    Timestamp::from_millis(now)
                ),
                Err(StandardSignatureError::TimestampOutOfTolerance)
            );
        }
        assert_eq!(
            verify(
                &headers(&v),
                body,
                &[&v.secret],
                Timestamp::from_millis(t + TOLERANCE_MS)
            ),
            Ok(())
        );
    }

    #[test]
    fn no_usable_secret_is_a_configuration_error() {
        let v = vector();
        assert_eq!(
            verify(&headers(&v), v.body.as_bytes(), &["whsec_!!!"], at(&v.ts)),
            Err(StandardSignatureError::NoUsableSecret)
        );
    }

    #[test]
    fn a_changed_body_id_or_secret_matches_no_signature() {
        let v = vector();
        let now = at(&v.ts);
        let tampered = v.body.replace("0.91", "0.99");
        assert_eq!(
            verify(&headers(&v), tampered.as_bytes(), &[&v.secret], now),
            Err(StandardSignatureError::NoMatchingSignature)
        );
        let h = SignatureHeaders {
            id: Some("msg_other"),
            ..headers(&v)
        };
        assert_eq!(
            verify(&h, v.body.as_bytes(), &[&v.secret], now),
            Err(StandardSignatureError::NoMatchingSignature)
        );
        assert_eq!(
            verify(&headers(&v), v.body.as_bytes(), &["whsec_b3RoZXI="], now),
            Err(StandardSignatureError::NoMatchingSignature)
        );
    }

    fn parse_json(v: Value) -> Result<Delivery, ParseError> {
        parse(
            "msg_1",
            v.to_string().as_bytes(),
            Timestamp::from_millis(1_000),
        )
    }

    #[test]
    fn an_analysis_event_becomes_a_completed_analysis_for_its_user() {
        let d = parse_json(json!({"type": "call.analysis.completed", "timestamp": "2026-11-21T10:00:00Z",
            "data": {"userId": "ada", "callId": "CA1", "intent": "billing", "confidence": 0.9, "summary": "s"}}))
        .expect("parses");
        assert_eq!(d.key, "msg_1");
        let Event::Analysis(a) = &d.events[0] else {
            panic!("analysis")
        };
        assert_eq!(
            (
                a.owner.user.as_ref().map(UserId::as_str),
                a.intent.as_deref()
            ),
            (Some("ada"), Some("billing"))
        );
        assert_eq!(
            a.at,
            Timestamp::parse_rfc3339("2026-11-21T10:00:00Z")
                .map(Timestamp::millis)
                .unwrap_or_default()
        );
    }

    #[test]
    fn a_call_upsert_fills_defaults_for_absent_fields() {
        let d =
            parse_json(json!({"type": "call.upserted", "data": {"userId": "ada", "id": "CA9"}}))
                .expect("parses");
        let Event::Call(c) = &d.events[0] else {
            panic!("call")
        };
        assert_eq!(
            (c.status, c.direction, c.provider),
            (CallStatus::Queued, Direction::Inbound, Provider::Api)
        );
        // No `startedAt`: the start is not reported (a new call starts at the event time).
        assert_eq!((c.started_at, c.at), (None, 1_000));
    }

    #[test]
    fn every_known_type_and_only_those_has_a_parser() {
        for t in KNOWN_TYPES {
            assert!(event_parser(t).is_some(), "{t}");
        }
        assert!(event_parser("call.intent_analyzed").is_none());
    }

    #[test]
    fn unknown_types_keep_their_payload_and_carry_no_events() {
        let d = parse_json(json!({"type": "call.intent_analyzed", "data": {}})).expect("parses");
        assert!(d.events.is_empty());
        assert!(d
            .payload
            .as_deref()
            .is_some_and(|p| p.contains("intent_analyzed")));
    }

    #[test]
    fn bad_event_bodies_name_the_field() {
        let cases = [
            (json!({"data": {}}), "type"),
            (json!({"type": "call.upserted"}), "data"),
            (
                json!({"type": "call.upserted", "data": {"id": "CA1"}}),
                "userId",
            ),
            (
                json!({"type": "call.upserted", "data": {"userId": "a:b", "id": "CA1"}}),
                "userId",
            ),
            (
                json!({"type": "call.upserted", "data": {"userId": "ada"}}),
                "id",
            ),
            (
                json!({"type": "call.upserted", "data": {"userId": "ada", "id": "CA1", "status": "x"}}),
                "status",
            ),
            (
                json!({"type": "call.analysis.completed", "data": {"userId": "ada", "callId": "CA1", "intent": "x", "confidence": 1.5}}),
                "confidence",
            ),
            (
                json!({"type": "call.analysis.completed", "data": {"userId": "ada", "callId": "CA1", "confidence": 0.5}}),
                "intent",
            ),
            (
                json!({"type": "call.enrichment.completed", "data": {"userId": "ada", "callId": "CA1"}}),
                "phoneNumber",
            ),
            (
                json!({"type": "call.upserted", "timestamp": "nope", "data": {}}),
                "timestamp",
            ),
        ];
        for (body, field) in cases {
            match parse_json(body.clone()) {
                Err(ParseError::Field { field: f, .. }) => assert_eq!(f, field, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
        assert!(matches!(
            parse("m", b"{not json", Timestamp::from_millis(0)),
            Err(ParseError::Malformed(_))
        ));
        assert!(matches!(
            parse("m", b"[1]", Timestamp::from_millis(0)),
            Err(ParseError::Malformed(_))
        ));
    }
}
