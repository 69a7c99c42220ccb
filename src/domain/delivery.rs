//! What a verified webhook means for our data, independent of who sent it: each sender's parser
//! (`webhooks/`) produces a [`Delivery`] and the store applies it. A delivery is serializable so
//! one that cannot be written right now can be parked and replayed.

use crate::domain::{AnalysisStatus, CallId, CallStatus, Direction, Provider, UserId};
use crate::json;
use crate::json_writer::ToJson;
use serde_json::{Map, Value};

/// One verified webhook delivery. Written as JSON by [`ToJson`], read back by hand
/// ([`Delivery::from_json`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    pub provider: Provider,
    /// What makes this delivery unique for its provider; a retry carries the same key.
    pub key: String,
    /// The provider's event name (`completed`, `call.analysis.completed`, `call_ended`, …).
    pub event_type: String,
    /// The call the delivery names, whether or not it carries an event we apply (an unknown
    /// event type, a transcript update): its stored body is forgotten when that call is deleted.
    pub call_id: Option<CallId>,
    pub events: Vec<Event>,
    /// Epoch ms when we received it.
    pub received_at: i64,
    /// The raw body, kept only when the delivery cannot be applied as it stands (an unknown
    /// event type), so nothing verified is dropped.
    pub payload: Option<String>,
}

/// Who an event says the call belongs to. Resolved in SQL, in the same batch as the write: a
/// call that already exists keeps its owner whatever these say (an explicit user that
/// contradicts it is a conflict, never applied); only a call seen for the first time takes the
/// explicit user, else the user its phone number is routed to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Owner {
    pub user: Option<UserId>,
    pub number: Option<String>,
}

/// Written as one object with its `kind` beside the report's fields (`{"kind":"call",…}`).
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Call(CallReport),
    Recording(RecordingReport),
    Analysis(AnalysisReport),
    Enrichment(EnrichmentReport),
}

/// A call's state as one event reports it. Absent fields leave what is stored untouched.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    pub call_id: CallId,
    pub owner: Owner,
    pub provider: Provider,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub status: CallStatus,
    /// When the call started, if the event reports it. Absent, a new call starts at `at`, and
    /// the event can never count as a call that started after a deletion of the same id.
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub duration_seconds: Option<i64>,
    /// When the event happened (epoch ms).
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecordingReport {
    pub call_id: CallId,
    pub recording_id: String,
    pub url: Option<String>,
    pub duration_seconds: Option<i64>,
    pub status: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AnalysisReport {
    pub call_id: CallId,
    pub owner: Owner,
    pub status: AnalysisStatus,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub summary: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EnrichmentReport {
    pub call_id: CallId,
    pub owner: Owner,
    pub phone_number: String,
    pub caller_name: Option<String>,
    pub caller_type: Option<String>,
    pub line_type: Option<String>,
    pub carrier: Option<String>,
    pub spam_score: Option<f64>,
    pub at: i64,
}

crate::json_object!(Delivery {
    "provider": provider,
    "key": key,
    "event_type": event_type,
    "call_id": call_id,
    "events": events,
    "received_at": received_at,
    "payload": payload,
});
crate::json_object!(Owner { "user": user, "number": number });
crate::json_object!(CallReport {
    "call_id": call_id,
    "owner": owner,
    "provider": provider,
    "direction": direction,
    "from": from,
    "to": to,
    "status": status,
    "started_at": started_at,
    "ended_at": ended_at,
    "duration_seconds": duration_seconds,
    "at": at,
});
crate::json_object!(RecordingReport {
    "call_id": call_id,
    "recording_id": recording_id,
    "url": url,
    "duration_seconds": duration_seconds,
    "status": status,
    "at": at,
});
crate::json_object!(AnalysisReport {
    "call_id": call_id,
    "owner": owner,
    "status": status,
    "intent": intent,
    "confidence": confidence,
    "summary": summary,
    "at": at,
});
crate::json_object!(EnrichmentReport {
    "call_id": call_id,
    "owner": owner,
    "phone_number": phone_number,
    "caller_name": caller_name,
    "caller_type": caller_type,
    "line_type": line_type,
    "carrier": carrier,
    "spam_score": spam_score,
    "at": at,
});

impl ToJson for Event {
    /// The report's object with `"kind"` first: the report is written in place, then the
    /// member goes in after its opening brace (every report has members, so a comma follows).
    fn write_json(&self, out: &mut String) {
        let start = out.len();
        let kind = match self {
            Event::Call(r) => {
                r.write_json(out);
                "{\"kind\":\"call\","
            }
            Event::Recording(r) => {
                r.write_json(out);
                "{\"kind\":\"recording\","
            }
            Event::Analysis(r) => {
                r.write_json(out);
                "{\"kind\":\"analysis\","
            }
            Event::Enrichment(r) => {
                r.write_json(out);
                "{\"kind\":\"enrichment\","
            }
        };
        out.replace_range(start..start + 1, kind);
    }
}

impl Event {
    pub fn call_id(&self) -> &CallId {
        match self {
            Event::Call(c) => &c.call_id,
            Event::Recording(r) => &r.call_id,
            Event::Analysis(a) => &a.call_id,
            Event::Enrichment(e) => &e.call_id,
        }
    }
}

impl Delivery {
    /// The call the delivery is about, if any.
    pub fn call_id(&self) -> Option<&CallId> {
        self.call_id
            .as_ref()
            .or_else(|| self.events.first().map(Event::call_id))
    }

    /// When the call started, as reported by the delivery's call event (if it reports it).
    pub fn reported_start(&self) -> Option<i64> {
        self.events.iter().find_map(|e| match e {
            Event::Call(c) => c.started_at,
            _ => None,
        })
    }

    /// The owner hints of the delivery's first event that has some.
    pub fn owner(&self) -> Owner {
        self.events
            .iter()
            .find_map(|e| match e {
                Event::Call(c) => Some(c.owner.clone()),
                Event::Analysis(a) => Some(a.owner.clone()),
                Event::Enrichment(en) => Some(en.owner.clone()),
                Event::Recording(_) => None,
            })
            .unwrap_or_default()
    }
}

/// Reading a delivery back from the JSON its [`Serialize`] wrote (a parked one): every field
/// as serde's derive read it — absent or `null` options are `None`, unknown fields are left
/// alone, ids and names are checked as their parsers check them — with one JSON reader
/// (`serde_json::Value`, which the webhooks' parsers use anyway) instead of a derived decoder
/// per type: those were 33 KB of the module (8 KB gzipped) for the one place that reads
/// deliveries.
/// A duplicate field reads as its last value, as in every JSON body this worker reads.
impl Delivery {
    /// The delivery `value` holds, or `None` when it is not one.
    pub fn from_json(value: &Value) -> Option<Self> {
        let o = value.as_object()?;
        Some(Delivery {
            provider: Provider::parse(text(o, "provider")?)?,
            key: text(o, "key")?.to_owned(),
            event_type: text(o, "event_type")?.to_owned(),
            call_id: json::optional(o, "call_id", |v| CallId::parse(v.as_str()?))?,
            events: o
                .get("events")?
                .as_array()?
                .iter()
                .map(Event::from_json)
                .collect::<Option<_>>()?,
            received_at: o.get("received_at")?.as_i64()?,
            payload: json::optional(o, "payload", json::string)?,
        })
    }
}

impl Event {
    /// The event `value` holds (its `kind` says which), or `None`.
    pub fn from_json(value: &Value) -> Option<Self> {
        let o = value.as_object()?;
        let call_id = CallId::parse(text(o, "call_id")?)?;
        let at = o.get("at")?.as_i64()?;
        let int = |name| json::optional(o, name, Value::as_i64);
        let string = |name| json::optional(o, name, json::string);
        let number = |name| json::optional(o, name, Value::as_f64);
        Some(match text(o, "kind")? {
            "call" => Event::Call(CallReport {
                call_id,
                owner: Owner::from_json(o.get("owner")?)?,
                provider: Provider::parse(text(o, "provider")?)?,
                direction: exact(text(o, "direction")?, Direction::parse, Direction::as_str)?,
                from: text(o, "from")?.to_owned(),
                to: text(o, "to")?.to_owned(),
                status: exact(text(o, "status")?, CallStatus::parse, CallStatus::as_str)?,
                started_at: int("started_at")?,
                ended_at: int("ended_at")?,
                duration_seconds: int("duration_seconds")?,
                at,
            }),
            "recording" => Event::Recording(RecordingReport {
                call_id,
                recording_id: text(o, "recording_id")?.to_owned(),
                url: string("url")?,
                duration_seconds: int("duration_seconds")?,
                status: text(o, "status")?.to_owned(),
                at,
            }),
            "analysis" => Event::Analysis(AnalysisReport {
                call_id,
                owner: Owner::from_json(o.get("owner")?)?,
                status: AnalysisStatus::parse(text(o, "status")?)?,
                intent: string("intent")?,
                confidence: number("confidence")?,
                summary: string("summary")?,
                at,
            }),
            "enrichment" => Event::Enrichment(EnrichmentReport {
                call_id,
                owner: Owner::from_json(o.get("owner")?)?,
                phone_number: text(o, "phone_number")?.to_owned(),
                caller_name: string("caller_name")?,
                caller_type: string("caller_type")?,
                line_type: string("line_type")?,
                carrier: string("carrier")?,
                spam_score: number("spam_score")?,
                at,
            }),
            _ => return None,
        })
    }
}

impl Owner {
    fn from_json(value: &Value) -> Option<Self> {
        let o = value.as_object()?;
        Some(Owner {
            user: json::optional(o, "user", |v| UserId::parse(v.as_str()?))?,
            number: json::optional(o, "number", json::string)?,
        })
    }
}

/// The string field `name`.
fn text<'a>(o: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    o.get(name)?.as_str()
}

/// A name its type writes as exactly `text` (the parsers also take providers' aliases, which
/// a serialized delivery never holds).
fn exact<T: Copy>(
    text: &str,
    parse: fn(&str) -> Option<T>,
    name: fn(T) -> &'static str,
) -> Option<T> {
    parse(text).filter(|t| name(*t) == text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<Delivery> {
        Delivery::from_json(&serde_json::from_str(text).ok()?)
    }

    /// A delivery of every event kind as parked before ids were typed (ids as plain strings),
    /// byte for byte.
    const PARKED_BEFORE_TYPED_IDS: &str = concat!(
        r#"{"provider":"api","key":"msg_1","event_type":"call.upserted","call_id":"CA1","#,
        r#""events":[{"kind":"call","call_id":"CA1","owner":{"user":"auth0|ada","number":null},"#,
        r#""provider":"twilio","direction":"inbound","from":"+15550001111","to":"+14155550199","#,
        r#""status":"no-answer","started_at":1000,"ended_at":null,"duration_seconds":null,"#,
        r#""at":2000},{"kind":"recording","call_id":"CA1","recording_id":"rec_CA1","url":null,"#,
        r#""duration_seconds":4,"status":"completed","at":2000},{"kind":"analysis","#,
        r#""call_id":"call_0001","owner":{"user":null,"number":"+14155550199"},"#,
        r#""status":"completed","intent":"billing","confidence":0.9,"summary":null,"at":3},"#,
        r#"{"kind":"enrichment","call_id":"CA1.x-y","owner":{"user":"ada@example.com","#,
        r#""number":null},"phone_number":"+15550001111","caller_name":null,"#,
        r#""caller_type":null,"line_type":null,"carrier":"c","spam_score":0.5,"at":4}],"#,
        r#""received_at":5,"payload":null}"#
    );

    #[test]
    fn a_delivery_parked_with_string_ids_reads_back_typed_and_serializes_the_same() {
        let d = read(PARKED_BEFORE_TYPED_IDS).expect("reads back");
        assert_eq!(d.call_id().map(CallId::as_str), Some("CA1"));
        assert_eq!(
            d.events
                .iter()
                .map(|e| e.call_id().as_str())
                .collect::<Vec<_>>(),
            ["CA1", "CA1", "call_0001", "CA1.x-y"]
        );
        assert_eq!(
            d.owner().user.as_ref().map(UserId::as_str),
            Some("auth0|ada")
        );
        assert_eq!(crate::json_writer::to_string(&d), PARKED_BEFORE_TYPED_IDS);
    }

    #[test]
    fn a_delivery_parked_before_it_named_its_call_still_reads_back() {
        let old = PARKED_BEFORE_TYPED_IDS.replace(r#""call_id":"CA1","events""#, r#""events""#);
        let d = read(&old).expect("reads back");
        assert_eq!(d.call_id, None);
        assert_eq!(d.call_id().map(CallId::as_str), Some("CA1"));
    }

    #[test]
    fn an_event_reads_as_the_internally_tagged_derive_read_it() {
        let call = |kind_at_end: bool| {
            let fields = r#""call_id":"CA1","owner":{"user":null,"number":"+1"},"provider":"twilio","direction":"inbound","from":"+1","to":"+2","status":"completed","at":7,"extra":[1,{"a":null}]"#;
            if kind_at_end {
                format!(r#"{{{fields},"kind":"call"}}"#)
            } else {
                format!(r#"{{"kind":"call",{fields}}}"#)
            }
        };
        let event = |text: &str| {
            serde_json::from_str::<Value>(text)
                .ok()
                .and_then(|v| Event::from_json(&v))
        };
        // The tag anywhere in the object; unknown fields and absent options as the derive.
        let first = event(&call(false)).expect("tag first");
        let last = event(&call(true)).expect("tag last");
        assert_eq!(first, last);
        let Event::Call(c) = &first else {
            panic!("a call event: {first:?}")
        };
        assert_eq!((c.at, c.started_at), (7, None));
        for bad in [
            r#"{"call_id":"CA1","at":1}"#.to_owned(),
            r#"{"kind":"sms","call_id":"CA1","at":1}"#.to_owned(),
            r#"{"kind":0,"call_id":"CA1","at":1}"#.to_owned(),
            call(false).replace(r#""at":7"#, r#""at":"7""#),
            call(false).replace(r#""status":"completed""#, r#""status":"answered""#),
            call(false).replace(r#""call_id":"CA1""#, r#""call_id":"CA 1""#),
            call(false).replace(r#""number":"+1""#, r#""number":1"#),
            r#""call""#.to_owned(),
        ] {
            assert!(event(&bad).is_none(), "{bad}");
        }
    }
}
