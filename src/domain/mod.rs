//! The dashboard's vocabulary: identifiers, calls and what hangs off them.
//!
//! Values are parsed once at the boundary (HTTP, webhook, D1 row) into these types, so the rest
//! of the crate never re-checks a string. Identifier alphabets exclude `:` and `/` on purpose:
//! cache keys and URLs are built from them, and an id that cannot contain a separator cannot be
//! crafted to collide with another user's key.

pub mod delivery;
mod filter;
mod ids;
mod page;
mod time;
mod version;

pub use delivery::{
    AnalysisReport, CallReport, Delivery, EnrichmentReport, Event, Owner, RecordingReport,
};
pub use filter::{
    CallFilter, DayRange, FilterEcho, SummaryRequest, MAX_INTENT_LEN, MAX_RANGE_DAYS,
};
pub use ids::{CallId, UserId, E164};
pub use page::{
    Cursor, LandingView, Limit, PagePosition, PageRequest, DEFAULT_PAGE_LIMIT,
    DEFAULT_SUMMARY_LIMIT, MAX_LIMIT,
};
pub use time::{Timestamp, MS_PER_DAY};
pub use version::Version;

use crate::json_writer::{write_str, ToJson};
use serde::Deserialize;

/// Who reported the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Twilio,
    Retell,
    Api,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Twilio => "twilio",
            Provider::Retell => "retell",
            Provider::Api => "api",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "twilio" => Some(Provider::Twilio),
            "retell" => Some(Provider::Retell),
            "api" => Some(Provider::Api),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Inbound,
    Outbound,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Accepts Twilio's `outbound-api` / `outbound-dial` as outbound.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "inbound" => Some(Direction::Inbound),
            s if s.starts_with("outbound") => Some(Direction::Outbound),
            _ => None,
        }
    }
}

/// A call's lifecycle. The order of the variants is the order a call moves through: a status
/// only ever replaces one of a lower [`CallStatus::rank`], so a late `ringing` cannot overwrite
/// `completed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallStatus {
    Queued,
    Ringing,
    InProgress,
    Completed,
    Busy,
    NoAnswer,
    Canceled,
    Failed,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CallStatus::Queued => "queued",
            CallStatus::Ringing => "ringing",
            CallStatus::InProgress => "in-progress",
            CallStatus::Completed => "completed",
            CallStatus::Busy => "busy",
            CallStatus::NoAnswer => "no-answer",
            CallStatus::Canceled => "canceled",
            CallStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" | "initiated" => CallStatus::Queued,
            "ringing" => CallStatus::Ringing,
            "in-progress" | "answered" => CallStatus::InProgress,
            "completed" => CallStatus::Completed,
            "busy" => CallStatus::Busy,
            "no-answer" => CallStatus::NoAnswer,
            "canceled" => CallStatus::Canceled,
            "failed" => CallStatus::Failed,
            _ => return None,
        })
    }

    /// Progress order; every terminal status shares the top rank, so once a call has ended no
    /// later event moves it anywhere else.
    pub fn rank(self) -> u8 {
        match self {
            CallStatus::Queued => 0,
            CallStatus::Ringing => 1,
            CallStatus::InProgress => 2,
            CallStatus::Completed
            | CallStatus::Busy
            | CallStatus::NoAnswer
            | CallStatus::Canceled
            | CallStatus::Failed => 3,
        }
    }

    /// Whether a person (or agent) picked up: the call reached `in-progress` or `completed`.
    pub fn is_answered(self) -> bool {
        matches!(self, CallStatus::InProgress | CallStatus::Completed)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnalysisStatus {
    Pending,
    Completed,
    Failed,
}

impl AnalysisStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnalysisStatus::Pending => "pending",
            AnalysisStatus::Completed => "completed",
            AnalysisStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(AnalysisStatus::Pending),
            "completed" => Some(AnalysisStatus::Completed),
            "failed" => Some(AnalysisStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Recording {
    pub id: String,
    pub url: Option<String>,
    pub duration_seconds: Option<i64>,
    pub status: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Analysis {
    pub status: AnalysisStatus,
    pub intent: Option<String>,
    pub confidence: Option<f64>,
    pub summary: Option<String>,
    pub completed_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Enrichment {
    pub phone_number: String,
    pub caller_name: Option<String>,
    pub caller_type: Option<String>,
    pub line_type: Option<String>,
    pub carrier: Option<String>,
    pub spam_score: Option<f64>,
    pub updated_at: Timestamp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    pub id: CallId,
    pub provider: Provider,
    pub direction: Direction,
    pub from: String,
    pub to: String,
    pub status: CallStatus,
    pub answered: bool,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub duration_seconds: Option<i64>,
    pub recording: Option<Recording>,
    pub analysis: Option<Analysis>,
    pub enrichment: Option<Enrichment>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// Aggregates over all of a user's calls and completed analyses.
#[derive(Debug, Clone, PartialEq)]
pub struct IntentStats {
    pub total_calls: i64,
    pub answered_calls: i64,
    pub avg_confidence: f64,
    pub intent_distribution: IntentCounts,
}

/// Calls per intent, in the intents' byte order (the order a summary lists them in): a sorted
/// list rather than a `BTreeMap`, whose tree code weighed about 6 KB of the gzipped module for
/// these few small maps (a user has a handful of intents).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct IntentCounts(Vec<(String, i64)>);

impl IntentCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// Where `intent` is, or where it would go.
    fn position(&self, intent: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(k, _)| k.as_str().cmp(intent))
    }

    /// Sets `intent`'s count (a repeated intent keeps its last count, as a map's insert does).
    pub fn set(&mut self, intent: String, calls: i64) {
        match self.position(&intent) {
            Ok(i) => self.0[i].1 = calls,
            Err(i) => self.0.insert(i, (intent, calls)),
        }
    }

    /// Adds `calls` to `intent`'s count (saturating), starting it at zero.
    pub fn add(&mut self, intent: &str, calls: i64) {
        match self.position(intent) {
            Ok(i) => self.0[i].1 = self.0[i].1.saturating_add(calls),
            Err(i) => self.0.insert(i, (intent.to_owned(), calls)),
        }
    }

    pub fn get(&self, intent: &str) -> Option<&i64> {
        self.position(intent).ok().map(|i| &self.0[i].1)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.0.iter().map(|(k, n)| (k.as_str(), *n))
    }
}

impl IntoIterator for IntentCounts {
    type Item = (String, i64);
    type IntoIter = std::vec::IntoIter<(String, i64)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl ToJson for IntentCounts {
    fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (k, n)) in self.0.iter().enumerate() {
            crate::json_writer::write_key(out, i == 0, k);
            n.write_json(out);
        }
        out.push('}');
    }
}

/// One UTC day of a ranged summary's daily series.
#[derive(Debug, Clone, PartialEq)]
pub struct DayStats {
    /// `2026-11-20`.
    pub date: String,
    pub total_calls: i64,
    pub answered_calls: i64,
    pub completed_analyses: i64,
    pub avg_confidence: f64,
    pub intent_distribution: IntentCounts,
}

impl DayStats {
    /// A day without calls.
    pub fn empty(date: String) -> Self {
        Self {
            date,
            total_calls: 0,
            answered_calls: 0,
            completed_analyses: 0,
            avg_confidence: 0.0,
            intent_distribution: IntentCounts::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct IntentSummary {
    pub calls: Vec<Call>,
    pub stats: IntentStats,
}

/// One page of a user's calls, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct CallPage {
    pub calls: Vec<Call>,
    /// Where the next page starts, or `None` when this page reached the end.
    pub next: Option<Cursor>,
}

/// A phone number routed to a user.
#[derive(Debug, Clone, PartialEq)]
pub struct PhoneRoute {
    pub phone_number: E164,
    pub user_id: UserId,
    pub updated_at: Timestamp,
}

macro_rules! json_as_str {
    ($($t:ty),*) => {$(
        impl ToJson for $t {
            fn write_json(&self, out: &mut String) {
                write_str(out, self.as_str());
            }
        }
    )*};
}
json_as_str!(Provider, Direction, CallStatus, AnalysisStatus);

crate::json_object!(Recording {
    "id": id,
    "url": url,
    "durationSeconds": duration_seconds,
    "status": status,
});
crate::json_object!(Analysis {
    "status": status,
    "intent": intent,
    "confidence": confidence,
    "summary": summary,
    "completedAt": completed_at,
});
crate::json_object!(Enrichment {
    "phoneNumber": phone_number,
    "callerName": caller_name,
    "callerType": caller_type,
    "lineType": line_type,
    "carrier": carrier,
    "spamScore": spam_score,
    "updatedAt": updated_at,
});
crate::json_object!(Call {
    "id": id,
    "provider": provider,
    "direction": direction,
    "from": from,
    "to": to,
    "status": status,
    "answered": answered,
    "startedAt": started_at,
    "endedAt": ended_at,
    "durationSeconds": duration_seconds,
    "recording": recording,
    "analysis": analysis,
    "enrichment": enrichment,
    "createdAt": created_at,
    "updatedAt": updated_at,
});
crate::json_object!(IntentStats {
    "totalCalls": total_calls,
    "answeredCalls": answered_calls,
    "avgConfidence": avg_confidence,
    "intentDistribution": intent_distribution,
});
crate::json_object!(DayStats {
    "date": date,
    "totalCalls": total_calls,
    "answeredCalls": answered_calls,
    "completedAnalyses": completed_analyses,
    "avgConfidence": avg_confidence,
    "intentDistribution": intent_distribution,
});
crate::json_object!(IntentSummary { "calls": calls, "stats": stats });
crate::json_object!(PhoneRoute {
    "phoneNumber": phone_number,
    "userId": user_id,
    "updatedAt": updated_at,
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_counts_keep_byte_order_and_write_what_a_map_of_them_writes() {
        let mut counts = IntentCounts::new();
        let mut map = std::collections::BTreeMap::new();
        for (intent, n) in [
            ("sales", 2),
            ("Billing", 1),
            ("billing", 4),
            ("ärger", 3),
            ("sales", 7),
        ] {
            counts.set(intent.to_owned(), n);
            map.insert(intent.to_owned(), n);
        }
        counts.add("billing", 1);
        *map.entry("billing".to_owned()).or_default() += 1;
        counts.add("new", i64::MAX);
        counts.add("new", 5);
        map.insert("new".to_owned(), i64::MAX);
        assert_eq!(
            counts.clone().into_iter().collect::<Vec<_>>(),
            map.clone().into_iter().collect::<Vec<_>>()
        );
        assert_eq!(
            crate::json_writer::to_string(&counts),
            crate::json_writer::to_string(&map)
        );
        assert_eq!(counts.get("sales"), Some(&7));
        assert_eq!(counts.get("absent"), None);
        assert!(IntentCounts::new().is_empty() && !counts.is_empty());
    }

    #[test]
    fn a_terminal_status_outranks_every_live_one() {
        for live in [
            CallStatus::Queued,
            CallStatus::Ringing,
            CallStatus::InProgress,
        ] {
            assert!(CallStatus::Completed.rank() > live.rank());
            assert!(CallStatus::NoAnswer.rank() > live.rank());
        }
        assert!(CallStatus::Ringing.rank() > CallStatus::Queued.rank());
    }

    #[test]
    fn statuses_round_trip_through_their_names() {
        for s in [
            CallStatus::Queued,
            CallStatus::Ringing,
            CallStatus::InProgress,
            CallStatus::Completed,
            CallStatus::Busy,
            CallStatus::NoAnswer,
            CallStatus::Canceled,
            CallStatus::Failed,
        ] {
            assert_eq!(CallStatus::parse(s.as_str()), Some(s));
            assert_eq!(
                crate::json_writer::to_string(&s),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(CallStatus::parse("bogus"), None);
    }

    #[test]
    fn twilio_outbound_variants_are_outbound() {
        assert_eq!(Direction::parse("outbound-api"), Some(Direction::Outbound));
        assert_eq!(Direction::parse("outbound-dial"), Some(Direction::Outbound));
        assert_eq!(Direction::parse("inbound"), Some(Direction::Inbound));
        assert_eq!(Direction::parse("sideways"), None);
    }

    #[test]
    fn only_in_progress_and_completed_calls_count_as_answered() {
        assert!(CallStatus::Completed.is_answered());
        assert!(CallStatus::InProgress.is_answered());
        assert!(!CallStatus::NoAnswer.is_answered());
        assert!(!CallStatus::Ringing.is_answered());
    }
}
