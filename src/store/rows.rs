//! Row shapes as D1 returns them, and their one-way conversion into domain types. A row that
//! does not parse (an unknown status, a bad id) is a data bug: it becomes an internal error
//! naming the column, never a silently wrong response.

use crate::domain::{Analysis, AnalysisStatus, Enrichment, Timestamp};
#[cfg(test)]
use crate::domain::{Call, CallId, CallStatus, Direction, Provider, Recording};
use crate::error::{AppError, AppResult};
use serde::Deserialize;

fn bad(column: &str, value: &str) -> AppError {
    AppError::internal(format!("unexpected {column} in D1 row: {value:?}"))
}

/// A row's version column (`v`), as a versioned read's statement saw it. Only this field is
/// decoded: serde reads the fields a type names, so the row's JSON text is left alone.
#[derive(Deserialize)]
pub(super) struct RowVersion {
    pub v: i64,
}

/// A call column by column: the tests' reference for what D1's JSON must equal.
#[cfg(test)]
#[derive(Deserialize)]
pub(super) struct CallRow {
    id: String,
    provider: String,
    direction: String,
    from_number: String,
    to_number: String,
    status: String,
    answered: i64,
    started_at: i64,
    ended_at: Option<i64>,
    duration_seconds: Option<i64>,
    created_at: i64,
    updated_at: i64,
    rec_id: Option<String>,
    rec_url: Option<String>,
    rec_duration: Option<i64>,
    rec_status: Option<String>,
    an_status: Option<String>,
    an_intent: Option<String>,
    an_confidence: Option<f64>,
    an_summary: Option<String>,
    an_completed_at: Option<i64>,
    en_phone: Option<String>,
    en_caller_name: Option<String>,
    en_caller_type: Option<String>,
    en_line_type: Option<String>,
    en_carrier: Option<String>,
    en_spam_score: Option<f64>,
    en_updated_at: Option<i64>,
}

#[cfg(test)]
impl CallRow {
    pub(super) fn into_call(self) -> AppResult<Call> {
        let analysis = match self.an_status {
            Some(status) => Some(
                AnalysisRow {
                    status,
                    intent: self.an_intent,
                    confidence: self.an_confidence,
                    summary: self.an_summary,
                    completed_at: self.an_completed_at,
                }
                .into_analysis()?,
            ),
            None => None,
        };
        let recording = self.rec_id.map(|id| Recording {
            id,
            url: self.rec_url,
            duration_seconds: self.rec_duration,
            status: self.rec_status.unwrap_or_else(|| "completed".to_owned()),
        });
        let enrichment = match (self.en_phone, self.en_updated_at) {
            (Some(phone_number), Some(updated_at)) => Some(
                EnrichmentRow {
                    phone_number,
                    caller_name: self.en_caller_name,
                    caller_type: self.en_caller_type,
                    line_type: self.en_line_type,
                    carrier: self.en_carrier,
                    spam_score: self.en_spam_score,
                    updated_at,
                }
                .into_enrichment(),
            ),
            _ => None,
        };
        Ok(Call {
            id: CallId::parse(&self.id).ok_or_else(|| bad("calls.id", &self.id))?,
            provider: Provider::parse(&self.provider)
                .ok_or_else(|| bad("calls.provider", &self.provider))?,
            direction: Direction::parse(&self.direction)
                .ok_or_else(|| bad("calls.direction", &self.direction))?,
            from: self.from_number,
            to: self.to_number,
            status: CallStatus::parse(&self.status)
                .ok_or_else(|| bad("calls.status", &self.status))?,
            answered: self.answered != 0,
            started_at: Timestamp::from_millis(self.started_at),
            ended_at: self.ended_at.map(Timestamp::from_millis),
            duration_seconds: self.duration_seconds,
            recording,
            analysis,
            enrichment,
            created_at: Timestamp::from_millis(self.created_at),
            updated_at: Timestamp::from_millis(self.updated_at),
        })
    }
}

#[derive(Deserialize)]
pub(super) struct AnalysisRow {
    status: String,
    intent: Option<String>,
    confidence: Option<f64>,
    summary: Option<String>,
    completed_at: Option<i64>,
}

impl AnalysisRow {
    pub(super) fn into_analysis(self) -> AppResult<Analysis> {
        Ok(Analysis {
            status: AnalysisStatus::parse(&self.status)
                .ok_or_else(|| bad("analyses.status", &self.status))?,
            intent: self.intent,
            confidence: self.confidence,
            summary: self.summary,
            completed_at: self.completed_at.map(Timestamp::from_millis),
        })
    }
}

#[derive(Deserialize)]
pub(super) struct EnrichmentRow {
    phone_number: String,
    caller_name: Option<String>,
    caller_type: Option<String>,
    line_type: Option<String>,
    carrier: Option<String>,
    spam_score: Option<f64>,
    updated_at: i64,
}

impl EnrichmentRow {
    pub(super) fn into_enrichment(self) -> Enrichment {
        Enrichment {
            phone_number: self.phone_number,
            caller_name: self.caller_name,
            caller_type: self.caller_type,
            line_type: self.line_type,
            carrier: self.carrier,
            spam_score: self.spam_score,
            updated_at: Timestamp::from_millis(self.updated_at),
        }
    }
}

#[derive(Deserialize, Default)]
pub(super) struct StatsRow {
    pub total_calls: i64,
    pub answered_calls: i64,
    pub completed_analyses: i64,
    pub confidence_sum: f64,
}

#[derive(Deserialize)]
pub(super) struct IntentRow {
    pub intent: String,
    pub calls: i64,
}
