//! Inbound webhooks, one module per sender. Each has a verifier — a pure function of the raw
//! bytes, the headers, the secrets and `now`, comparing in constant time, with one error
//! variant per failure mode — and a parser that turns a verified body into a [`Delivery`]: the
//! provider's idempotency key plus normalized [`Event`]s the store applies.
//!
//! | route | sender | verifier | dedupe key |
//! | --- | --- | --- | --- |
//! | `/webhooks/twilio/voice-status` | Twilio | [`twilio::verify`] | `CallSid` + `SequenceNumber` (else `CallStatus`) |
//! | `/webhooks/twilio/recording-status` | Twilio | [`twilio::verify`] | `RecordingSid` + `RecordingStatus` |
//! | `/webhooks/events` | Standard Webhooks | [`standard::verify`] | `webhook-id` |
//! | `/webhooks/retell` | Retell | [`retell::verify`] | `call_id` + `event` |

pub mod form;
mod json;
pub mod parking;
pub mod retell;
pub mod standard;
pub mod twilio;

// The normalized delivery is the domain's vocabulary; senders produce it.
pub use crate::domain::{
    AnalysisReport, CallReport, Delivery, EnrichmentReport, Event, Owner, RecordingReport,
};

/// A fresh random claim for one attempt at applying a delivery (see `store::ingest`).
pub fn claim_nonce() -> crate::error::AppResult<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|e| crate::error::AppError::internal(format!("no randomness: {e}")))?;
    Ok(crate::hex::encode(bytes))
}

/// How far a signed timestamp may be from `now`, either way (Standard Webhooks, Retell).
pub const TOLERANCE_MS: i64 = 5 * 60 * 1000;

/// Whether a signed instant (epoch ms) is within [`TOLERANCE_MS`] of `now`, for any pair of
/// values: the distance is computed without overflow (`abs_diff` is exact over all of `i64`).
pub fn within_tolerance(now: crate::domain::Timestamp, signed_ms: i64) -> bool {
    now.millis().abs_diff(signed_ms) <= TOLERANCE_MS.unsigned_abs()
}

/// Why a verified body could not become a delivery: a 400 naming what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The body is not well-formed (JSON, form encoding).
    Malformed(String),
    /// A required field is missing or has the wrong shape.
    Field { field: &'static str, reason: String },
}

impl ParseError {
    pub fn field(field: &'static str, reason: impl Into<String>) -> Self {
        ParseError::Field {
            field,
            reason: reason.into(),
        }
    }
}

impl From<ParseError> for crate::error::AppError {
    fn from(e: ParseError) -> Self {
        match e {
            ParseError::Malformed(m) => crate::error::AppError::InvalidJson(m),
            ParseError::Field { field, reason } => {
                crate::error::AppError::invalid_parameter(field, reason)
            }
        }
    }
}
