//! Retell AI (`x-retell-signature: v=<ms>,d=<hex>`).
//!
//! The digest is `hex(HMAC-SHA256(API key, body + "<ms>"))`; `<ms>` must be within ±5 minutes of
//! `now`. `call_started`, `call_ended` and `call_analyzed` update the call; `call_ended` adds the
//! recording, `call_analyzed` the analysis (intent and confidence from
//! `call_analysis.custom_analysis_data`). Calls are attributed through the registered number:
//! `to_number` for inbound calls, `from_number` for outbound.

use super::json::{self, Fields};
use super::ParseError;
use crate::domain::{AnalysisReport, CallReport, Delivery, Event, Owner, RecordingReport};
use crate::domain::{AnalysisStatus, CallId, CallStatus, Direction, Provider, Timestamp, E164};
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetellSignatureError {
    /// No `x-retell-signature` header (401).
    MissingSignature,
    /// The header is not `v=<ms>,d=<64 hex>` (403).
    MalformedSignature,
    /// `v` is more than 5 minutes from now (403).
    TimestampOutOfTolerance,
    /// The digest does not match (403).
    Mismatch,
}

pub fn verify(
    body: &[u8],
    signature: Option<&str>,
    api_key: &str,
    now: Timestamp,
) -> Result<(), RetellSignatureError> {
    use RetellSignatureError as E;
    let header = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(E::MissingSignature)?;
    let (mut v, mut d) = (None, None);
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("v", x)) => v = Some(x),
            Some(("d", x)) => d = Some(x),
            _ => return Err(E::MalformedSignature),
        }
    }
    let (Some(v), Some(d)) = (v, d) else {
        return Err(E::MalformedSignature);
    };
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return Err(E::MalformedSignature);
    }
    let ms: i64 = v.parse().map_err(|_| E::MalformedSignature)?;
    let digest = crate::hex::decode(d)
        .filter(|x| x.len() == 32)
        .ok_or(E::MalformedSignature)?;
    if !super::within_tolerance(now, ms) {
        return Err(E::TimestampOutOfTolerance);
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(api_key.as_bytes()).map_err(|_| E::Mismatch)?;
    mac.update(body);
    mac.update(v.as_bytes());
    mac.verify_slice(&digest).map_err(|_| E::Mismatch)
}

fn opt_str(call: &Fields, name: &'static str) -> Result<Option<String>, ParseError> {
    json::opt_string(call, name, "must be a string")
}

fn opt_ms(call: &Fields, name: &'static str) -> Result<Option<i64>, ParseError> {
    json::optional(call, name, Value::as_i64, "must be epoch milliseconds")
}

/// Maps Retell's end-of-call reason onto our statuses; anything unknown ended normally.
fn ended_status(reason: Option<&str>) -> CallStatus {
    match reason.unwrap_or_default() {
        "dial_busy" => CallStatus::Busy,
        "dial_no_answer" => CallStatus::NoAnswer,
        r if r.starts_with("dial_failed") || r.starts_with("error") => CallStatus::Failed,
        _ => CallStatus::Completed,
    }
}

/// Reads one event's `call` object into the events it reports.
type EventsParser = fn(&Fields, &CallId, Timestamp) -> Result<Vec<Event>, ParseError>;

/// The parser for each event this service applies; others are recorded and acknowledged.
fn events_parser(event: &str) -> Option<EventsParser> {
    match event {
        "call_started" => Some(call_started),
        "call_ended" => Some(call_ended),
        "call_analyzed" => Some(call_analyzed),
        _ => None,
    }
}

pub fn parse(body: &[u8], now: Timestamp) -> Result<Delivery, ParseError> {
    let root = json::object(body)?;
    let event = json::required_str(&root, "event")?;
    let call = json::required_object(&root, "call")?;
    let call_id = call
        .get("call_id")
        .and_then(Value::as_str)
        .and_then(CallId::parse)
        .ok_or_else(|| ParseError::field("call_id", "is required and must be a call id"))?;
    let event_type: String = event.chars().take(64).collect();
    let mut delivery = Delivery {
        provider: Provider::Retell,
        key: format!("{call_id}:{event_type}"),
        event_type,
        call_id: Some(call_id.clone()),
        events: Vec::new(),
        received_at: now.millis(),
        payload: None,
    };
    match events_parser(event) {
        Some(parse_events) => delivery.events = parse_events(call, &call_id, now)?,
        None => delivery.payload = Some(String::from_utf8_lossy(body).into_owned()),
    }
    Ok(delivery)
}

/// `call_started`: the call, in progress.
fn call_started(call: &Fields, call_id: &CallId, now: Timestamp) -> Result<Vec<Event>, ParseError> {
    Ok(vec![Event::Call(call_report(call, call_id, false, now)?)])
}

/// `call_ended`: the call as it ended, and its recording when it has one.
fn call_ended(call: &Fields, call_id: &CallId, now: Timestamp) -> Result<Vec<Event>, ParseError> {
    ended_events(call, call_report(call, call_id, true, now)?)
}

/// `call_analyzed`: what `call_ended` reports, and the analysis.
fn call_analyzed(
    call: &Fields,
    call_id: &CallId,
    now: Timestamp,
) -> Result<Vec<Event>, ParseError> {
    let report = call_report(call, call_id, true, now)?;
    let owner = report.owner.clone();
    let mut events = ended_events(call, report)?;
    events.push(Event::Analysis(analysis(call, call_id, owner, now)?));
    Ok(events)
}

/// The call as an event reports it: in progress until it has `ended`, then with the status
/// its disconnection reason gives.
fn call_report(
    call: &Fields,
    call_id: &CallId,
    ended: bool,
    now: Timestamp,
) -> Result<CallReport, ParseError> {
    let direction = match opt_str(call, "direction")?.as_deref() {
        None | Some("inbound") => Direction::Inbound,
        Some("outbound") => Direction::Outbound,
        Some(_) => {
            return Err(ParseError::field(
                "direction",
                "must be inbound or outbound",
            ))
        }
    };
    let from = opt_str(call, "from_number")?.unwrap_or_default();
    let to = opt_str(call, "to_number")?.unwrap_or_default();
    let ours = match direction {
        Direction::Inbound => &to,
        Direction::Outbound => &from,
    };
    let owner = Owner {
        user: None,
        number: E164::parse(ours).map(|n| n.to_string()),
    };
    let start = opt_ms(call, "start_timestamp")?;
    let end = opt_ms(call, "end_timestamp")?;
    let status = if ended {
        ended_status(opt_str(call, "disconnection_reason")?.as_deref())
    } else {
        CallStatus::InProgress
    };
    let at = if ended { end } else { start }.unwrap_or(now.millis());
    let duration = match (start, end) {
        (Some(s), Some(e)) if ended && e >= s => e
            .checked_sub(s)
            .and_then(|d| d.checked_add(500))
            .map(|d| d / 1000),
        _ => None,
    };
    Ok(CallReport {
        call_id: call_id.clone(),
        owner,
        provider: Provider::Retell,
        direction,
        from,
        to,
        status,
        started_at: start,
        ended_at: if ended { end.or(Some(at)) } else { None },
        duration_seconds: duration,
        at,
    })
}

/// An ended call's events: the call, then its recording when `recording_url` is given.
fn ended_events(call: &Fields, report: CallReport) -> Result<Vec<Event>, ParseError> {
    let recording = opt_str(call, "recording_url")?.map(|url| RecordingReport {
        call_id: report.call_id.clone(),
        recording_id: format!("rec_{}", report.call_id),
        url: Some(url),
        duration_seconds: report.duration_seconds,
        status: "completed".to_owned(),
        at: report.at,
    });
    let mut events = vec![Event::Call(report)];
    events.extend(recording.map(Event::Recording));
    Ok(events)
}

/// The analysis `call_analyzed` carries in `call_analysis`: the intent and its confidence
/// from `custom_analysis_data`, the summary from `call_summary`.
fn analysis(
    call: &Fields,
    call_id: &CallId,
    owner: Owner,
    now: Timestamp,
) -> Result<AnalysisReport, ParseError> {
    let analysis = call
        .get("call_analysis")
        .and_then(Value::as_object)
        .ok_or_else(|| ParseError::field("call_analysis", "is required for call_analyzed"))?;
    let custom = analysis
        .get("custom_analysis_data")
        .and_then(Value::as_object);
    let intent = custom
        .and_then(|c| c.get("intent"))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .unwrap_or("unknown");
    let confidence = custom
        .and_then(|c| c.get("intent_confidence").or_else(|| c.get("confidence")))
        .and_then(Value::as_f64);
    if confidence.is_some_and(|c| !(0.0..=1.0).contains(&c)) {
        return Err(ParseError::field(
            "intent_confidence",
            "must be between 0 and 1",
        ));
    }
    Ok(AnalysisReport {
        call_id: call_id.clone(),
        owner,
        status: AnalysisStatus::Completed,
        intent: Some(intent.to_owned()),
        confidence,
        summary: analysis
            .get("call_summary")
            .and_then(Value::as_str)
            .map(str::to_owned),
        at: now.millis(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhooks::TOLERANCE_MS;

    fn vector() -> (String, String, String) {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/webhook-signatures.json"
        ))
        .expect("the signature vectors are in tests/fixtures");
        let all: Value = serde_json::from_str(&raw).expect("JSON");
        let v = &all["retell"];
        let s = |k: &str| v[k].as_str().expect("string").to_owned();
        (s("api_key"), s("raw_body"), s("x-retell-signature"))
    }

    const SIGNED_AT: i64 = 1_709_662_940_000;

    #[test]
    fn the_retell_vector_verifies() {
        let (key, body, sig) = vector();
        assert_eq!(
            verify(
                body.as_bytes(),
                Some(&sig),
                &key,
                Timestamp::from_millis(SIGNED_AT + 1000)
            ),
            Ok(())
        );
    }

    #[test]
    fn a_missing_header_is_its_own_error() {
        assert_eq!(
            verify(b"{}", None, "k", Timestamp::from_millis(0)),
            Err(RetellSignatureError::MissingSignature)
        );
    }

    #[test]
    fn headers_not_shaped_v_comma_d_are_malformed() {
        for bad in [
            "d=00",
            "v=1",
            "v=abc,d=00",
            "v=1,d=zz",
            "v=1,d=00",
            "v=1,d=00,x=1",
            "garbage",
        ] {
            assert_eq!(
                verify(b"{}", Some(bad), "k", Timestamp::from_millis(1)),
                Err(RetellSignatureError::MalformedSignature),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_signature_older_or_newer_than_five_minutes_is_refused() {
        let (key, body, sig) = vector();
        for now in [SIGNED_AT + TOLERANCE_MS + 1, SIGNED_AT - TOLERANCE_MS - 1] {
            assert_eq!(
                verify(
                    body.as_bytes(),
                    Some(&sig),
                    &key,
                    Timestamp::from_millis(now)
                ),
                Err(RetellSignatureError::TimestampOutOfTolerance)
            );
        }
    }

    #[test]
    fn extreme_signed_times_are_out_of_tolerance_never_an_overflow() {
        let (key, body, _) = vector();
        for (v, now) in [
            ("9223372036854775807", -1),
            ("0", i64::MIN),
            ("9223372036854775807", i64::MIN),
            ("1", i64::MAX),
        ] {
            let sig = format!("v={v},d={}", "0".repeat(64));
            assert_eq!(
                verify(
                    body.as_bytes(),
                    Some(&sig),
                    &key,
                    Timestamp::from_millis(now)
                ),
                Err(RetellSignatureError::TimestampOutOfTolerance),
                "v={v} now={now}"
            );
        }
    }

    #[test]
    fn a_duration_from_extreme_timestamps_is_dropped_not_overflowed() {
        let body = serde_json::json!({"event": "call_ended", "call": {"call_id": "call_x",
            "start_timestamp": i64::MIN, "end_timestamp": i64::MAX}});
        let d = parse(body.to_string().as_bytes(), Timestamp::from_millis(0)).expect("parses");
        let Event::Call(c) = &d.events[0] else {
            panic!("a call")
        };
        assert_eq!(c.duration_seconds, None);
    }

    #[test]
    fn a_changed_body_or_key_is_a_mismatch() {
        let (key, body, sig) = vector();
        let now = Timestamp::from_millis(SIGNED_AT);
        assert_eq!(
            verify(
                body.replace("0.91", "0.1").as_bytes(),
                Some(&sig),
                &key,
                now
            ),
            Err(RetellSignatureError::Mismatch)
        );
        assert_eq!(
            verify(body.as_bytes(), Some(&sig), "other", now),
            Err(RetellSignatureError::Mismatch)
        );
    }

    #[test]
    fn call_analyzed_updates_the_call_and_adds_the_analysis() {
        let (_, body, _) = vector();
        let d = parse(body.as_bytes(), Timestamp::from_millis(SIGNED_AT)).expect("parses");
        assert_eq!(d.key, "call_0001:call_analyzed");
        let Event::Call(c) = &d.events[0] else {
            panic!("call")
        };
        assert_eq!(c.status, CallStatus::Completed);
        assert_eq!(c.owner.number.as_deref(), Some("+14155550199"));
        assert_eq!(c.duration_seconds, Some(42));
        let Event::Analysis(a) = &d.events[1] else {
            panic!("analysis")
        };
        assert_eq!(a.intent.as_deref(), Some("reschedule"));
        assert_eq!(a.confidence, Some(0.91));
        assert_eq!(a.summary.as_deref(), Some("Caller asked to reschedule."));
    }

    #[test]
    fn call_ended_with_a_recording_and_a_busy_line() {
        let body = br#"{"event":"call_ended","call":{"call_id":"call_2","direction":"outbound","from_number":"+14155550100","to_number":"+14155550111","start_timestamp":1000,"end_timestamp":4000,"disconnection_reason":"dial_busy","recording_url":"https://r.example/2.wav"}}"#;
        let d = parse(body, Timestamp::from_millis(5000)).expect("parses");
        let Event::Call(c) = &d.events[0] else {
            panic!("call")
        };
        assert_eq!(
            (c.status, c.owner.number.as_deref()),
            (CallStatus::Busy, Some("+14155550100"))
        );
        assert!(
            matches!(&d.events[1], Event::Recording(r) if r.url.as_deref() == Some("https://r.example/2.wav"))
        );
    }

    #[test]
    fn other_events_are_kept_with_their_payload() {
        let d = parse(
            br#"{"event":"transcript_updated","call":{"call_id":"c1"}}"#,
            Timestamp::from_millis(0),
        )
        .expect("parses");
        assert!(d.events.is_empty());
        assert!(d.payload.is_some());
    }

    #[test]
    fn bodies_without_event_call_or_call_id_name_the_field() {
        for (body, name) in [
            (&br#"{"call":{"call_id":"c"}}"#[..], "event"),
            (br#"{"event":"call_started"}"#, "call"),
            (br#"{"event":"call_started","call":{}}"#, "call_id"),
            (
                br#"{"event":"call_started","call":{"call_id":"c","start_timestamp":"x"}}"#,
                "start_timestamp",
            ),
            (
                br#"{"event":"call_analyzed","call":{"call_id":"c"}}"#,
                "call_analysis",
            ),
        ] {
            match parse(body, Timestamp::from_millis(0)) {
                Err(ParseError::Field { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: {other:?}"),
            }
        }
    }
}
