//! What a verified webhook means for our data, independent of who sent it: each sender's parser
//! (`webhooks/`) produces a [`Delivery`] and the store applies it. A delivery is serializable so
//! one that cannot be written right now can be parked and replayed.

use crate::domain::{AnalysisStatus, CallStatus, Direction, Provider};
use serde::{Deserialize, Serialize};

/// One verified webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub provider: Provider,
    /// What makes this delivery unique for its provider; a retry carries the same key.
    pub key: String,
    /// The provider's event name (`completed`, `call.analysis.completed`, `call_ended`, …).
    pub event_type: String,
    /// The call the delivery names, whether or not it carries an event we apply (an unknown
    /// event type, a transcript update): its stored body is forgotten when that call is deleted.
    #[serde(default)]
    pub call_id: Option<String>,
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Owner {
    pub user: Option<String>,
    pub number: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Call(CallReport),
    Recording(RecordingReport),
    Analysis(AnalysisReport),
    Enrichment(EnrichmentReport),
}

/// A call's state as one event reports it. Absent fields leave what is stored untouched.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallReport {
    pub call_id: String,
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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingReport {
    pub call_id: String,
    pub recording_id: String,
    pub url: Option<String>,
    pub duration_seconds: Option<i64>,
    pub status: String,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnalysisReport {
    pub call_id: String,
    pub owner: Owner,
    pub status: AnalysisStatus,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub summary: Option<String>,
    pub at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrichmentReport {
    pub call_id: String,
    pub owner: Owner,
    pub phone_number: String,
    pub caller_name: Option<String>,
    pub caller_type: Option<String>,
    pub line_type: Option<String>,
    pub carrier: Option<String>,
    pub spam_score: Option<f64>,
    pub at: i64,
}

impl Event {
    pub fn call_id(&self) -> &str {
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
    pub fn call_id(&self) -> Option<&str> {
        self.call_id
            .as_deref()
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
