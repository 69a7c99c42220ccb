//! Twilio status callbacks (`X-Twilio-Signature`).
//!
//! The signature is base64(HMAC-SHA1(auth token, URL + every POST parameter's name and value,
//! sorted by name)). The URL is the one Twilio called: `PUBLIC_BASE_URL` + path + query when
//! set, else the request URL — both exactly as the runtime received them, never re-parsed;
//! both the with-port and without-port forms of the default port are accepted, as Twilio's
//! own SDKs do, and a `'` the runtime re-encoded in the query as `%27` is tried as `'`. Repeated names are signed once per value, values in
//! order; the SDKs differ on whether identical repeated values count once, so both forms are
//! accepted.

use super::form;
use super::ParseError;
use crate::domain::{CallId, CallStatus, Direction, Provider, Timestamp, E164};
use crate::domain::{CallReport, Delivery, Event, Owner, RecordingReport};
use hmac::{Hmac, Mac};
use sha1::Sha1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TwilioSignatureError {
    /// No `X-Twilio-Signature` header (401).
    MissingSignature,
    /// The header is not base64 of a SHA-1 MAC (403).
    MalformedSignature,
    /// No configured auth token signs this request (403).
    Mismatch,
}

/// Verifies `signature` for a request to `url` carrying `params` (the decoded form body).
pub fn verify(
    url: &str,
    params: &[(String, String)],
    signature: Option<&str>,
    auth_tokens: &[&str],
) -> Result<(), TwilioSignatureError> {
    let signature = signature
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(TwilioSignatureError::MissingSignature)?;
    let expected = crate::base64::decode_standard(signature)
        .filter(|d| d.len() == 20)
        .ok_or(TwilioSignatureError::MalformedSignature)?;
    let param_forms = signed_params(params);
    for candidate_url in url_variants(url) {
        for token in auth_tokens {
            for params in &param_forms {
                let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes())
                    .map_err(|_| TwilioSignatureError::Mismatch)?;
                mac.update(candidate_url.as_bytes());
                mac.update(params.as_bytes());
                if mac.verify_slice(&expected).is_ok() {
                    return Ok(());
                }
            }
        }
    }
    Err(TwilioSignatureError::Mismatch)
}

/// The parameter part of the string to sign: all values, and (if it differs) distinct values.
fn signed_params(params: &[(String, String)]) -> Vec<String> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    crate::sort::sort_by(&mut sorted, |a, b| {
        a.0.cmp(&b.0).then_with(|| a.1.cmp(&b.1))
    });
    let all: String = sorted.iter().map(|(k, v)| format!("{k}{v}")).collect();
    let mut distinct = sorted.clone();
    distinct.dedup();
    let mut forms = vec![all];
    if distinct.len() != sorted.len() {
        forms.push(distinct.iter().map(|(k, v)| format!("{k}{v}")).collect());
    }
    forms
}

/// The URL as given, plus the same URL with the default port added or removed — and, for each,
/// with the query's `%27` turned back into `'`: the Workers runtime hands the worker a URL in
/// which `'` in the query is already re-encoded (the WHATWG rule for http(s) queries), while
/// Twilio signs the URL as it sent it. Only that one rewrite is undone; everything else is
/// verified exactly as received.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = port_variants(url);
    let unescaped: Vec<String> = out
        .iter()
        .filter_map(|u| {
            let (before, query) = u.split_once('?')?;
            query
                .contains("%27")
                .then(|| format!("{before}?{}", query.replace("%27", "'")))
        })
        .collect();
    out.extend(unescaped);
    out
}

fn port_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let (scheme, default_port) = if url.starts_with("https://") {
        ("https://", ":443")
    } else if url.starts_with("http://") {
        ("http://", ":80")
    } else {
        return out;
    };
    let rest = &url[scheme.len()..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, host) = match authority.rfind('@') {
        Some(i) => authority.split_at(i + 1),
        None => ("", authority),
    };
    if let Some(bare) = host.strip_suffix(default_port) {
        out.push(format!("{scheme}{userinfo}{bare}{tail}"));
    } else if !host.contains(':') || host.ends_with(']') {
        out.push(format!("{scheme}{userinfo}{host}{default_port}{tail}"));
    }
    out
}

fn required<'a>(p: &'a [(String, String)], name: &'static str) -> Result<&'a str, ParseError> {
    form::get(p, name)
        .filter(|v| !v.is_empty())
        .ok_or_else(|| ParseError::field(name, "is required"))
}

fn call_id(p: &[(String, String)]) -> Result<CallId, ParseError> {
    let raw = required(p, "CallSid")?;
    CallId::parse(raw).ok_or_else(|| ParseError::field("CallSid", "is not a call id"))
}

fn optional_int(p: &[(String, String)], name: &'static str) -> Result<Option<i64>, ParseError> {
    match form::get(p, name).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse::<i64>()
            .map(Some)
            .map_err(|_| ParseError::field(name, "must be an integer")),
    }
}

/// A voice status callback (`CallStatus` = queued … completed) as a delivery.
pub fn voice_status(p: &[(String, String)], now: Timestamp) -> Result<Delivery, ParseError> {
    let call_id = call_id(p)?;
    let status_raw = required(p, "CallStatus")?;
    let status = CallStatus::parse(status_raw)
        .ok_or_else(|| ParseError::field("CallStatus", "is not a Twilio call status"))?;
    let direction = Direction::parse(form::get(p, "Direction").unwrap_or("inbound"))
        .ok_or_else(|| ParseError::field("Direction", "is not inbound or outbound-*"))?;
    let from = form::get(p, "From").unwrap_or_default().to_owned();
    let to = form::get(p, "To").unwrap_or_default().to_owned();
    // Inbound calls belong to whoever owns the number called; outbound to the caller's number.
    let our_number = match direction {
        Direction::Inbound => &to,
        Direction::Outbound => &from,
    };
    let reported_at = match form::get(p, "Timestamp") {
        Some(ts) => Some(
            Timestamp::parse_rfc2822(ts)
                .ok_or_else(|| ParseError::field("Timestamp", "is not an RFC 2822 date"))?
                .millis(),
        ),
        None => None,
    };
    let at = reported_at.unwrap_or(now.millis());
    let duration = optional_int(p, "CallDuration")?;
    if duration.is_some_and(|d| d < 0) {
        return Err(ParseError::field("CallDuration", "must be ≥ 0"));
    }
    let terminal = status.rank() == CallStatus::Completed.rank();
    // Only two callbacks report when the call started: a terminal one (its Timestamp is the
    // end, the call started `CallDuration` earlier) and the first, `queued`/`initiated`. The
    // Timestamp of `ringing` or `in-progress` is later than the start, and without a Timestamp
    // nothing is reported at all.
    let started_at = match (reported_at, terminal, duration) {
        (Some(end), true, Some(d)) => Some(
            d.checked_mul(1000)
                .and_then(|ms| end.checked_sub(ms))
                .ok_or_else(|| ParseError::field("CallDuration", "is out of range"))?,
        ),
        (Some(t), false, _) if status == CallStatus::Queued => Some(t),
        _ => None,
    };
    let key = match optional_int(p, "SequenceNumber")? {
        Some(seq) => format!("{call_id}:seq:{seq}"),
        None => format!("{call_id}:{status_raw}"),
    };
    Ok(Delivery {
        provider: Provider::Twilio,
        key,
        event_type: status_raw.to_owned(),
        call_id: Some(call_id.clone()),
        events: vec![Event::Call(CallReport {
            call_id,
            owner: Owner {
                user: None,
                number: E164::parse(our_number).map(|n| n.to_string()),
            },
            provider: Provider::Twilio,
            direction,
            from,
            to,
            status,
            started_at,
            ended_at: terminal.then_some(at),
            duration_seconds: duration,
            at,
        })],
        received_at: now.millis(),
        payload: None,
    })
}

/// A recording status callback as a delivery. Recordings are attributed through their call.
pub fn recording_status(p: &[(String, String)], now: Timestamp) -> Result<Delivery, ParseError> {
    let call_id = call_id(p)?;
    let recording_id = required(p, "RecordingSid")?;
    if CallId::parse(recording_id).is_none() {
        return Err(ParseError::field("RecordingSid", "is not a recording id"));
    }
    let status = required(p, "RecordingStatus")?;
    if !matches!(status, "in-progress" | "completed" | "absent" | "failed") {
        return Err(ParseError::field(
            "RecordingStatus",
            "is not in-progress, completed, absent or failed",
        ));
    }
    Ok(Delivery {
        provider: Provider::Twilio,
        key: format!("{recording_id}:{status}"),
        event_type: format!("recording.{status}"),
        call_id: Some(call_id.clone()),
        events: vec![Event::Recording(RecordingReport {
            call_id,
            recording_id: recording_id.to_owned(),
            url: form::get(p, "RecordingUrl")
                .filter(|u| !u.is_empty())
                .map(str::to_owned),
            duration_seconds: optional_int(p, "RecordingDuration")?,
            status: status.to_owned(),
            at: now.millis(),
        })],
        received_at: now.millis(),
        payload: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ::base64::engine::general_purpose::STANDARD;
    use ::base64::Engine;
    use serde_json::Value;

    fn vectors() -> Value {
        let raw = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/webhook-signatures.json"
        ))
        .expect("the signature vectors are in tests/fixtures");
        serde_json::from_str(&raw).expect("vectors are JSON")
    }

    fn s(v: &Value) -> &str {
        v.as_str().expect("a string")
    }

    #[test]
    fn the_twilio_docs_example_verifies() {
        let v = &vectors()["twilio_docs_example"];
        let params: Vec<(String, String)> = v["params"]
            .as_object()
            .expect("params object")
            .iter()
            .map(|(k, v)| (k.clone(), s(v).to_owned()))
            .collect();
        assert_eq!(
            verify(
                s(&v["url"]),
                &params,
                Some(s(&v["signature"])),
                &[s(&v["auth_token"])]
            ),
            Ok(())
        );
    }

    #[test]
    fn the_status_and_recording_callback_vectors_verify() {
        let all = vectors();
        for name in ["twilio_status_callback", "twilio_recording_callback"] {
            let v = &all[name];
            let params = form::parse(s(&v["raw_body"]).as_bytes()).expect("valid form");
            let sig = s(&v["X-Twilio-Signature"]);
            assert_eq!(
                verify(s(&v["url"]), &params, Some(sig), &[s(&v["auth_token"])]),
                Ok(()),
                "{name}"
            );
        }
    }

    #[test]
    fn the_secondary_token_and_port_variants_verify() {
        let v = &vectors()["twilio_status_callback"];
        let params = form::parse(s(&v["raw_body"]).as_bytes()).expect("valid form");
        let sig = Some(s(&v["X-Twilio-Signature"]));
        let token = s(&v["auth_token"]);
        assert_eq!(
            verify(s(&v["url"]), &params, sig, &["old-token", token]),
            Ok(())
        );
        let with_port = s(&v["url"]).replace("example.com/", "example.com:443/");
        assert_eq!(verify(&with_port, &params, sig, &[token]), Ok(()));
    }

    #[test]
    fn a_missing_signature_is_its_own_error() {
        assert_eq!(
            verify("https://x.example/", &[], None, &["t"]),
            Err(TwilioSignatureError::MissingSignature)
        );
        assert_eq!(
            verify("https://x.example/", &[], Some("  "), &["t"]),
            Err(TwilioSignatureError::MissingSignature)
        );
    }

    #[test]
    fn a_signature_that_is_not_a_sha1_mac_is_malformed() {
        for bad in ["%%%", "c2hvcnQ="] {
            assert_eq!(
                verify("https://x.example/", &[], Some(bad), &["t"]),
                Err(TwilioSignatureError::MalformedSignature)
            );
        }
    }

    #[test]
    fn a_changed_parameter_url_or_token_is_a_mismatch() {
        let v = &vectors()["twilio_status_callback"];
        let mut params = form::parse(s(&v["raw_body"]).as_bytes()).expect("valid form");
        let sig = Some(s(&v["X-Twilio-Signature"]));
        let token = s(&v["auth_token"]);
        let url = s(&v["url"]);
        assert_eq!(
            verify(url, &params, sig, &["wrong"]),
            Err(TwilioSignatureError::Mismatch)
        );
        assert_eq!(
            verify(&url.replace("acme", "evil"), &params, sig, &[token]),
            Err(TwilioSignatureError::Mismatch)
        );
        params.push(("Extra".into(), "1".into()));
        assert_eq!(
            verify(url, &params, sig, &[token]),
            Err(TwilioSignatureError::Mismatch)
        );
        assert_eq!(
            verify(url, &[], sig, &[]),
            Err(TwilioSignatureError::Mismatch)
        );
    }

    #[test]
    fn repeated_parameter_names_are_signed_once_per_value() {
        let token = "tok";
        let url = "https://x.example/hook";
        let params = vec![
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "z".to_owned()),
            ("a".to_owned(), "y".to_owned()),
        ];
        let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("any key");
        mac.update(b"https://x.example/hookayazb2");
        let sig = STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(verify(url, &params, Some(&sig), &[token]), Ok(()));
    }

    #[test]
    fn port_variants_cover_both_directions() {
        assert_eq!(
            url_variants("https://a.example/x?y=1"),
            ["https://a.example/x?y=1", "https://a.example:443/x?y=1"]
        );
        assert_eq!(
            url_variants("http://a.example:80/x"),
            ["http://a.example:80/x", "http://a.example/x"]
        );
        assert_eq!(
            url_variants("http://a.example:8787/x"),
            ["http://a.example:8787/x"]
        );
    }

    #[test]
    fn a_completed_voice_callback_becomes_a_call_owned_by_the_called_number() {
        let v = &vectors()["twilio_status_callback"];
        let params = form::parse(s(&v["raw_body"]).as_bytes()).expect("valid form");
        let d = voice_status(&params, Timestamp::from_millis(0)).expect("parses");
        assert_eq!(d.key, "CA00000000000000000000000000000001:seq:3");
        let Event::Call(call) = &d.events[0] else {
            panic!("a call event")
        };
        assert_eq!(call.status, CallStatus::Completed);
        assert_eq!(call.owner.number.as_deref(), Some("+14155550199"));
        assert_eq!(call.ended_at, Some(1_709_662_933_000));
        assert_eq!(call.started_at, Some(1_709_662_933_000 - 42_000));
        assert_eq!(call.duration_seconds, Some(42));
    }

    #[test]
    fn an_outbound_call_belongs_to_the_calling_number_and_dedupes_by_status() {
        let params = form::parse(
            b"CallSid=CA1&CallStatus=ringing&Direction=outbound-api&From=%2B15550001111&To=%2B15550002222",
        )
        .expect("valid");
        let d = voice_status(&params, Timestamp::from_millis(7)).expect("parses");
        assert_eq!(d.key, "CA1:ringing");
        let Event::Call(call) = &d.events[0] else {
            panic!("a call event")
        };
        assert_eq!(call.owner.number.as_deref(), Some("+15550001111"));
        // No Timestamp: the receive time is the event time, but no start is reported.
        assert_eq!((call.at, call.started_at, call.ended_at), (7, None, None));
    }

    #[test]
    fn a_quote_the_runtime_re_encoded_in_the_query_still_verifies() {
        let token = "12345";
        let signed = "https://dash.example.com/hook?who=o'brien";
        let params = vec![("CallSid".to_owned(), "CA1".to_owned())];
        let mut mac = Hmac::<Sha1>::new_from_slice(token.as_bytes()).expect("key");
        mac.update(signed.as_bytes());
        mac.update(b"CallSidCA1");
        let sig = STANDARD.encode(mac.finalize().into_bytes());
        let as_received = "https://dash.example.com/hook?who=o%27brien";
        assert_eq!(verify(as_received, &params, Some(&sig), &[token]), Ok(()));
        assert_eq!(verify(signed, &params, Some(&sig), &[token]), Ok(()));
        // Nothing else is rewritten: another character's escape is a mismatch.
        let other = "https://dash.example.com/hook?who=o%27brien%7C";
        assert_eq!(
            verify(other, &params, Some(&sig), &[token]),
            Err(TwilioSignatureError::Mismatch)
        );
    }

    #[test]
    fn a_call_duration_that_would_overflow_the_start_is_refused_by_name() {
        let params = form::parse(
            b"CallSid=CA1&CallStatus=completed&CallDuration=9223372036854775807&Timestamp=Tue%2C+05+Mar+2024+18%3A22%3A13+%2B0000",
        )
        .expect("valid");
        let err = voice_status(&params, Timestamp::from_millis(7)).expect_err("refused");
        assert!(
            matches!(
                err,
                ParseError::Field {
                    field: "CallDuration",
                    ..
                }
            ),
            "{err:?}"
        );
        let negative =
            form::parse(b"CallSid=CA1&CallStatus=completed&CallDuration=-5").expect("valid");
        assert!(voice_status(&negative, Timestamp::from_millis(7)).is_err());
    }

    #[test]
    fn voice_callbacks_missing_or_garbling_fields_name_them() {
        let cases: [(&[u8], &str); 5] = [
            (b"CallStatus=completed", "CallSid"),
            (b"CallSid=CA1", "CallStatus"),
            (b"CallSid=CA1&CallStatus=exploded", "CallStatus"),
            (
                b"CallSid=CA1&CallStatus=completed&CallDuration=abc",
                "CallDuration",
            ),
            (
                b"CallSid=CA1&CallStatus=completed&Timestamp=yesterday",
                "Timestamp",
            ),
        ];
        for (body, field) in cases {
            let params = form::parse(body).expect("valid form");
            match voice_status(&params, Timestamp::from_millis(0)) {
                Err(ParseError::Field { field: f, .. }) => assert_eq!(f, field),
                other => panic!("{field}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_recording_callback_becomes_a_recording_keyed_by_sid_and_status() {
        let v = &vectors()["twilio_recording_callback"];
        let params = form::parse(s(&v["raw_body"]).as_bytes()).expect("valid form");
        let d = recording_status(&params, Timestamp::from_millis(5)).expect("parses");
        assert_eq!(d.key, "RE00000000000000000000000000000001:completed");
        let Event::Recording(r) = &d.events[0] else {
            panic!("a recording event")
        };
        assert_eq!(r.duration_seconds, Some(41));
        assert!(r
            .url
            .as_deref()
            .is_some_and(|u| u.starts_with("https://api.twilio.com/")));
    }
}
