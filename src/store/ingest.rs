//! Applying a verified webhook delivery: one D1 batch that claims the delivery, writes its
//! events (the aggregate triggers move with them) and reads back the outcome.

use super::{sql, Database, RowSet, SqlValue, Statement, Store};
use crate::domain::{CallId, Delivery, Event, UserId};
use crate::error::{AppError, AppResult, Context};
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// What applying a delivery did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ingested {
    /// False when this delivery had been applied before: nothing changed.
    pub fresh: bool,
    /// Whose data it touched, when that could be resolved.
    pub user: Option<UserId>,
    pub call: Option<CallId>,
    /// `applied`; `unattributed` (kept, no owner yet); `ignored` (no event we apply, kept);
    /// `conflict` (an explicit user contradicts the call's owner, kept, not applied);
    /// `deleted` (the call was deleted: nothing kept). See `sql::CLAIM_DELIVERY`.
    pub outcome: String,
    /// The owner's version after this batch (see `migrations/0008`), when there is an owner.
    pub version: Option<crate::domain::Version>,
}

impl Ingested {
    /// Whether this attempt changed anyone's data, so that their cached reads are stale.
    pub fn changed_data(&self) -> bool {
        self.fresh && self.outcome == "applied"
    }
}

#[derive(Deserialize)]
struct ResultRow {
    fresh: Option<i64>,
    user_id: Option<String>,
    call_id: Option<String>,
    outcome: String,
    version: Option<i64>,
}

fn text(s: &str) -> SqlValue {
    SqlValue::Text(s.to_owned())
}

fn opt_text(s: Option<&str>) -> SqlValue {
    s.map_or(SqlValue::Null, text)
}

fn opt_int(n: Option<i64>) -> SqlValue {
    n.map_or(SqlValue::Null, SqlValue::Integer)
}

/// A delivery's stored key: a digest of the provider's own key, so the primary key never
/// quotes a call id (deleting a call must forget every byte that names it).
pub(crate) fn delivery_digest(d: &Delivery) -> String {
    digest("k1", &[d.provider.as_str(), &d.key])
}

/// How a deletion mark names a call: a digest that recognises the id's late webhooks without
/// keeping the id.
pub(crate) fn call_digest(call_id: &str) -> String {
    digest("c1", &[call_id])
}

fn digest(tag: &str, parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    format!("{tag}:{}", hex::encode(&h.finalize()[..16]))
}

impl<D: Database> Store<D> {
    /// Applies `delivery` once: `claim` must be unique per attempt (a random nonce).
    pub async fn ingest(&self, delivery: &Delivery, claim: &str) -> AppResult<Ingested> {
        let key = delivery_digest(delivery);
        let guard = || vec![text(delivery.provider.as_str()), text(&key), text(claim)];
        let owner = delivery.owner();
        let call_id = delivery.call_id();
        let call_key = call_id.map(call_digest);
        let needs_owner = delivery
            .events
            .iter()
            .any(|e| !matches!(e, Event::Recording(_)));
        // What to keep when the delivery cannot be applied now: the raw body of an unknown
        // type, or the normalized delivery itself, so it can be re-applied later.
        let kept = match &delivery.payload {
            Some(raw) => raw.clone(),
            None => serde_json::to_string(delivery)
                .map_err(|e| AppError::internal(format!("serializing a delivery: {e}")))?,
        };
        let mut claim_params = guard();
        claim_params.extend([
            text(&delivery.event_type),
            opt_text(owner.user.as_deref()),
            opt_text(owner.number.as_deref()),
            opt_text(call_id),
            SqlValue::Integer(i64::from(!delivery.events.is_empty())),
            SqlValue::Integer(i64::from(needs_owner)),
            SqlValue::Text(kept),
            SqlValue::Integer(delivery.received_at),
            opt_int(delivery.reported_start()),
            text(&delivery.key),
            opt_text(call_key.as_deref()),
        ]);
        let mut statements = vec![Statement::new(sql::CLAIM_DELIVERY, claim_params)];
        for event in &delivery.events {
            let mut p = guard();
            let sql = match event {
                Event::Call(c) => {
                    let mut lift = guard();
                    lift.extend([text(&c.call_id), text(&call_digest(&c.call_id))]);
                    statements.push(Statement::new(sql::LIFT_DELETION, lift));
                    p.extend([
                        text(&c.call_id),
                        text(c.provider.as_str()),
                        text(c.direction.as_str()),
                        text(&c.from),
                        text(&c.to),
                        text(c.status.as_str()),
                        SqlValue::Integer(i64::from(c.status.rank())),
                        SqlValue::Integer(i64::from(c.status.is_answered())),
                        opt_int(c.started_at),
                        opt_int(c.ended_at),
                        opt_int(c.duration_seconds),
                        SqlValue::Integer(delivery.received_at),
                        SqlValue::Integer(c.at),
                    ]);
                    sql::UPSERT_CALL
                }
                Event::Recording(r) => {
                    p.extend([
                        text(&r.call_id),
                        text(&r.recording_id),
                        opt_text(r.url.as_deref()),
                        opt_int(r.duration_seconds),
                        text(&r.status),
                        SqlValue::Integer(r.at),
                    ]);
                    sql::UPSERT_RECORDING
                }
                Event::Analysis(a) => {
                    let completed = matches!(a.status, crate::domain::AnalysisStatus::Completed);
                    p.extend([
                        text(&a.call_id),
                        text(a.status.as_str()),
                        opt_text(a.intent.as_deref()),
                        a.confidence.into(),
                        opt_text(a.summary.as_deref()),
                        if completed {
                            SqlValue::Integer(a.at)
                        } else {
                            SqlValue::Null
                        },
                        SqlValue::Integer(a.at),
                    ]);
                    sql::UPSERT_ANALYSIS
                }
                Event::Enrichment(e) => {
                    p.extend([
                        text(&e.call_id),
                        text(&e.phone_number),
                        opt_text(e.caller_name.as_deref()),
                        opt_text(e.caller_type.as_deref()),
                        opt_text(e.line_type.as_deref()),
                        opt_text(e.carrier.as_deref()),
                        e.spam_score.into(),
                        SqlValue::Integer(e.at),
                    ]);
                    sql::UPSERT_ENRICHMENT
                }
            };
            statements.push(Statement::new(sql, p));
        }
        statements.push(Statement::new(sql::DELIVERY_RESULT, guard()));
        let results = self
            .batch(statements)
            .await
            .context("applying a webhook delivery")?;
        let row: ResultRow = results
            .last()
            .ok_or_else(|| AppError::internal("ingest batch returned no results"))?
            .decode::<ResultRow>()?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::internal("delivery row missing after its claim"))?;
        Ok(Ingested {
            fresh: row.fresh.unwrap_or(0) != 0,
            user: row.user_id.as_deref().and_then(UserId::parse),
            call: row.call_id.as_deref().and_then(CallId::parse),
            outcome: row.outcome,
            version: row
                .version
                .and_then(|v| u64::try_from(v).ok())
                .map(crate::domain::Version::new),
        })
    }
}
