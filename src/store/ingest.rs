//! Applying a verified webhook delivery: one D1 batch that claims the delivery, writes its
//! events (the aggregate triggers move with them) and reads back the outcome.

use super::{sql, Database, RowSet, SqlValue, Statement, Store};
use super::{Columns, FromRow};
use crate::domain::{AnalysisReport, CallReport, EnrichmentReport, RecordingReport};
use crate::domain::{AnalysisStatus, CallId, Delivery, Event, IntentStats, LandingView, UserId};
use crate::error::{AppError, AppResult, Context};
use crate::reads::Payload;
use sha2::{Digest, Sha256};

/// What applying a delivery did.
#[derive(Debug, Clone, PartialEq)]
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
    /// The owner's version as this batch found it, before its events, when it applied them:
    /// every change between this and `version` was this delivery's, about `call`.
    pub version_before: Option<crate::domain::Version>,
    /// What the batch read back for the cache (refresh on write), at exactly `version`.
    pub refresh: Refreshed,
    /// Whether the owner may have the live feed open, as the batch found after its writes
    /// (`migrations/0011`): when false, no socket can miss this change, so the feed is not told.
    pub listening: bool,
}

/// Refresh on write: what to read back in the delivery's own batch, after its writes.
///
/// - `views`, read in full, for the owner when the owner is one of `users` (the cache's
///   watched users). Users outside it cost no row: the reads match nothing.
/// - With `changed_call`, the one call the delivery was about (and with `aggregates`, the
///   owner's summary aggregates): what a cache needs to patch the views it holds at the
///   version just before this delivery (`cache::patch`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshAsk {
    pub users: Vec<UserId>,
    pub views: Vec<LandingView>,
    pub changed_call: bool,
    pub aggregates: bool,
}

impl RefreshAsk {
    pub fn is_empty(&self) -> bool {
        (self.users.is_empty() || self.views.is_empty()) && !self.changed_call
    }
}

/// What a delivery's batch read back for the cache; empty unless this attempt applied it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Refreshed {
    /// The views asked for in full, for a watched owner.
    pub views: Vec<(LandingView, Payload)>,
    /// The delivery's call after its writes, when asked for.
    pub changed: Option<ChangedCall>,
    /// Rows those reads cost (D1's count), whether or not they matched.
    pub rows_read: u64,
}

/// The one call a delivery changed, as it is after the delivery.
#[derive(Debug, Clone, PartialEq)]
pub struct ChangedCall {
    /// Its JSON as a list holds it (`rows::call_from_values`); `None`: the call is not in the
    /// owner's list (deleted, or someone else's).
    pub json: Option<String>,
    /// Whether the owner's summary lists it (`calls.analyzed`).
    pub analyzed: bool,
    /// The owner's summary aggregates, when asked for.
    pub stats: Option<IntentStats>,
}

impl Ingested {
    /// Whether this attempt changed anyone's data, so that their cached reads are stale.
    pub fn changed_data(&self) -> bool {
        self.fresh && self.outcome == "applied"
    }
}

struct ChangedRow {
    j: String,
    analyzed: i64,
}

impl FromRow for ChangedRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(ChangedRow {
            j: row.text("j")?,
            analyzed: row.int("analyzed")?,
        })
    }
}

/// A delivery's outcome (`sql::delivery_outcome!`): one JSON array, returned by a one-event
/// delivery's statement or read by `sql::DELIVERY_RESULT` after the writes.
struct ResultRow {
    fresh: bool,
    user_id: Option<String>,
    call_id: Option<String>,
    outcome: String,
    /// Kept by the claim for an applied delivery (`sql::CLAIM_DELIVERY`), NULL otherwise.
    version_before: Option<i64>,
    version: Option<i64>,
    listening: bool,
}

impl FromRow for ResultRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        let missing = || AppError::internal("delivery row missing after its claim");
        let text = row.opt_text("o")?.ok_or_else(missing)?;
        let value = crate::json::parse(text.as_bytes())
            .map_err(|e| AppError::internal(format!("a delivery's outcome is not JSON: {e}")))?;
        let at = |i: usize| value.get(i).unwrap_or(&serde_json::Value::Null);
        let flag = |i: usize| at(i).as_i64().is_some_and(|n| n != 0);
        let string = |i: usize| at(i).as_str().map(str::to_owned);
        Ok(ResultRow {
            fresh: flag(0),
            user_id: string(1),
            call_id: string(2),
            outcome: string(3).ok_or_else(missing)?,
            version_before: at(4).as_i64(),
            version: at(5).as_i64(),
            listening: flag(6),
        })
    }
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
    format!("{tag}:{}", crate::hex::encode(&h.finalize()[..16]))
}

/// The parameters every statement of a delivery's batch starts with: ?1 provider, ?2 delivery
/// key digest, ?3 claim (see `sql::CLAIM_DELIVERY`).
struct Guard<'a> {
    provider: &'static str,
    key: String,
    claim: &'a str,
}

impl Guard<'_> {
    fn params(&self) -> Vec<SqlValue> {
        vec![text(self.provider), text(&self.key), text(self.claim)]
    }

    /// A statement of the batch: the guard's parameters, then the statement's own.
    fn statement(&self, sql: &'static str, own: impl IntoIterator<Item = SqlValue>) -> Statement {
        let mut params = self.params();
        params.extend(own);
        Statement::new(sql, params)
    }
}

/// Where a batch's refresh reads stand, so their rows can be found in its results.
struct RefreshAt {
    /// The first refresh read (the results up to the last are what refreshing cost).
    first: usize,
    views: Vec<(LandingView, usize)>,
    changed_call: Option<usize>,
}

impl<D: Database> Store<D> {
    /// Applies `delivery` once: `claim` must be unique per attempt (a random nonce).
    pub async fn ingest(&self, delivery: &Delivery, claim: &str) -> AppResult<Ingested> {
        self.ingest_refreshing(delivery, claim, &RefreshAsk::default())
            .await
    }

    /// [`Store::ingest`], reading back `ask`'s landing views for a watched owner in the same
    /// batch.
    pub async fn ingest_refreshing(
        &self,
        delivery: &Delivery,
        claim: &str,
        ask: &RefreshAsk,
    ) -> AppResult<Ingested> {
        let guard = Guard {
            provider: delivery.provider.as_str(),
            key: delivery_digest(delivery),
            claim,
        };
        let claim = claim_params(delivery);
        // One event, the usual delivery, is one statement: the claim, the event's write and
        // the outcome it returns. Otherwise the claim, each event, then the outcome read.
        let (mut statements, result_at) = match delivery.events.as_slice() {
            [event] => {
                let (sql, own) = event_params(event, delivery.received_at);
                let mut params = claim;
                params.extend(own);
                (vec![guard.statement(sql.with_claim, params)], 0)
            }
            events => {
                let mut statements = vec![guard.statement(sql::CLAIM_DELIVERY, claim)];
                for event in events {
                    let (sql, own) = event_params(event, delivery.received_at);
                    statements.push(guard.statement(sql.alone, own));
                }
                let at = statements.len();
                statements.push(guard.statement(sql::DELIVERY_RESULT, []));
                (statements, at)
            }
        };
        let refresh_at = push_refreshes(&mut statements, &guard, delivery, ask)?;
        let results = self
            .batch(statements)
            .await
            .context("applying a webhook delivery")?;
        let mut ingested = outcome(results.get(result_at))?;
        ingested.refresh.rows_read = results
            .get(refresh_at.first..)
            .map_or(0, |r| r.iter().map(|rows| rows.meta().rows_read).sum());
        if ingested.changed_data() {
            read_refreshes(&mut ingested, &results, &refresh_at, ask)?;
        }
        Ok(ingested)
    }
}

/// The claim's own parameters (?4 to ?15 of `sql::CLAIM_DELIVERY`): the claim decides, once
/// for the whole batch, whose data the delivery is and whether it applies.
fn claim_params(delivery: &Delivery) -> Vec<SqlValue> {
    let owner = delivery.owner();
    let call_id = delivery.call_id().map(CallId::as_str);
    let needs_owner = delivery
        .events
        .iter()
        .any(|e| !matches!(e, Event::Recording(_)));
    // Only a report of the call itself may lift its deletion mark (the claim checked that it
    // starts after the deletion); a recording, analysis or enrichment never does.
    let reports_call = delivery
        .events
        .iter()
        .any(|e| matches!(e, Event::Call(c) if Some(c.call_id.as_str()) == call_id));
    // What to keep when the delivery cannot be applied now: the raw body of an unknown
    // type, or the normalized delivery itself, so it can be re-applied later.
    let kept = match &delivery.payload {
        Some(raw) => raw.clone(),
        None => crate::json_writer::to_string(delivery),
    };
    vec![
        text(&delivery.event_type),
        opt_text(owner.user.as_ref().map(UserId::as_str)),
        opt_text(owner.number.as_deref()),
        opt_text(call_id),
        SqlValue::Integer(i64::from(!delivery.events.is_empty())),
        SqlValue::Integer(i64::from(needs_owner)),
        SqlValue::Text(kept),
        SqlValue::Integer(delivery.received_at),
        opt_int(delivery.reported_start()),
        text(&delivery.key),
        opt_text(call_id.map(call_digest).as_deref()),
        SqlValue::Integer(i64::from(reports_call)),
    ]
}

/// An event's write as a statement of its own after the claim, and as the claim's own
/// statement when it is the delivery's only event.
struct EventSql {
    alone: &'static str,
    with_claim: &'static str,
}

/// The SQL and own parameters of the write of one event (it runs only if the claim applied).
fn event_params(event: &Event, received_at: i64) -> (EventSql, Vec<SqlValue>) {
    match event {
        Event::Call(c) => (
            EventSql {
                alone: sql::UPSERT_CALL,
                with_claim: sql::CLAIM_AND_CALL,
            },
            call_params(c, received_at),
        ),
        Event::Recording(r) => (
            EventSql {
                alone: sql::UPSERT_RECORDING,
                with_claim: sql::CLAIM_AND_RECORDING,
            },
            recording_params(r),
        ),
        Event::Analysis(a) => (
            EventSql {
                alone: sql::UPSERT_ANALYSIS,
                with_claim: sql::CLAIM_AND_ANALYSIS,
            },
            analysis_params(a),
        ),
        Event::Enrichment(e) => (
            EventSql {
                alone: sql::UPSERT_ENRICHMENT,
                with_claim: sql::CLAIM_AND_ENRICHMENT,
            },
            enrichment_params(e),
        ),
    }
}

/// A call report's upsert. Its deletion mark, if the claim found one it may lift, is already
/// gone: the claim's own trigger lifted it (`migrations/0012`).
fn call_params(c: &CallReport, received_at: i64) -> Vec<SqlValue> {
    vec![
        text(c.call_id.as_str()),
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
        SqlValue::Integer(received_at),
        SqlValue::Integer(c.at),
    ]
}

fn recording_params(r: &RecordingReport) -> Vec<SqlValue> {
    vec![
        text(r.call_id.as_str()),
        text(&r.recording_id),
        opt_text(r.url.as_deref()),
        opt_int(r.duration_seconds),
        text(&r.status),
        SqlValue::Integer(r.at),
    ]
}

fn analysis_params(a: &AnalysisReport) -> Vec<SqlValue> {
    let completed_at = if matches!(a.status, AnalysisStatus::Completed) {
        SqlValue::Integer(a.at)
    } else {
        SqlValue::Null
    };
    vec![
        text(a.call_id.as_str()),
        text(a.status.as_str()),
        opt_text(a.intent.as_deref()),
        a.confidence.into(),
        opt_text(a.summary.as_deref()),
        completed_at,
        SqlValue::Integer(a.at),
    ]
}

fn enrichment_params(e: &EnrichmentReport) -> Vec<SqlValue> {
    vec![
        text(e.call_id.as_str()),
        text(&e.phone_number),
        opt_text(e.caller_name.as_deref()),
        opt_text(e.caller_type.as_deref()),
        opt_text(e.line_type.as_deref()),
        opt_text(e.carrier.as_deref()),
        e.spam_score.into(),
        SqlValue::Integer(e.at),
    ]
}

/// Appends the reads `ask` wants after the writes, and says where they stand.
fn push_refreshes(
    statements: &mut Vec<Statement>,
    guard: &Guard<'_>,
    delivery: &Delivery,
    ask: &RefreshAsk,
) -> AppResult<RefreshAt> {
    let mut at = RefreshAt {
        first: statements.len(),
        views: Vec::new(),
        changed_call: None,
    };
    if !ask.users.is_empty() && !ask.views.is_empty() {
        let watched = crate::json_writer::to_string(
            &ask.users.iter().map(UserId::as_str).collect::<Vec<_>>(),
        );
        let for_watched = |sql| guard.statement(sql, [text(&watched)]);
        let with_limit = |sql, n: i64| guard.statement(sql, [text(&watched), SqlValue::Integer(n)]);
        for view in &ask.views {
            at.views.push((*view, statements.len()));
            match view {
                LandingView::FirstPage(limit) => statements.push(with_limit(
                    sql::REFRESH_FIRST_PAGE,
                    i64::from(limit.get()) + 1,
                )),
                LandingView::Summary(limit) => statements.extend([
                    for_watched(sql::REFRESH_USER_STATS),
                    for_watched(sql::REFRESH_USER_INTENTS),
                    with_limit(sql::REFRESH_ANALYZED_CALLS, i64::from(limit.get())),
                ]),
            }
        }
    }
    // A patch holds only when every change of the batch was about the one call it reads.
    let call_id = delivery.call_id();
    let one_call = delivery.events.iter().all(|e| Some(e.call_id()) == call_id);
    if ask.changed_call && one_call {
        at.changed_call = Some(statements.len());
        statements.push(guard.statement(sql::REFRESH_CHANGED_CALL, []));
        if ask.aggregates {
            statements.extend([
                guard.statement(sql::REFRESH_OWNER_STATS, []),
                guard.statement(sql::REFRESH_OWNER_INTENTS, []),
            ]);
        }
    }
    Ok(at)
}

/// What the batch did, from the result that carries its outcome; nothing refreshed yet.
fn outcome<R: RowSet>(result: Option<&R>) -> AppResult<Ingested> {
    let row: ResultRow = result
        .ok_or_else(|| AppError::internal("ingest batch returned no outcome"))?
        .decode::<ResultRow>()?
        .into_iter()
        .next()
        .ok_or_else(|| AppError::internal("delivery row missing after its claim"))?;
    let fresh = row.fresh;
    let version = |v: Option<i64>| {
        v.and_then(|v| u64::try_from(v).ok())
            .map(crate::domain::Version::new)
    };
    Ok(Ingested {
        fresh,
        user: row.user_id.as_deref().and_then(UserId::parse),
        call: row.call_id.as_deref().and_then(CallId::parse),
        outcome: row.outcome,
        version: version(row.version),
        refresh: Refreshed::default(),
        listening: row.listening,
        // A retry finds the first attempt's row: the version it kept is not this attempt's.
        version_before: if fresh {
            version(row.version_before)
        } else {
            None
        },
    })
}

/// Reads what the refreshes found into `ingested` (which changed data): the views, for a
/// watched owner, and the changed call.
fn read_refreshes<R: RowSet>(
    ingested: &mut Ingested,
    results: &[R],
    at: &RefreshAt,
    ask: &RefreshAsk,
) -> AppResult<()> {
    let rows = |i: usize| {
        results
            .get(i)
            .ok_or_else(|| AppError::internal("refresh results missing"))
    };
    let watched = ingested
        .user
        .as_ref()
        .is_some_and(|u| ask.users.contains(u));
    if watched {
        for &(view, at) in &at.views {
            let payload = match view {
                LandingView::FirstPage(limit) => {
                    super::page_from_list(super::call_list(rows(at)?)?, limit)?
                }
                LandingView::Summary(_) => {
                    super::summary_from_json(rows(at)?, rows(at + 1)?, rows(at + 2)?)?
                }
            };
            ingested.refresh.views.push((view, payload));
        }
    }
    if let Some(at) = at.changed_call {
        let found = rows(at)?.decode::<ChangedRow>()?.into_iter().next();
        let analyzed = found.as_ref().is_some_and(|f| f.analyzed != 0);
        let json = found
            .map(|f| super::rows::call_from_values(&f.j))
            .transpose()?;
        let stats = if ask.aggregates {
            Some(super::stats_from_rows(rows(at + 1)?, rows(at + 2)?)?)
        } else {
            None
        };
        ingested.refresh.changed = Some(ChangedCall {
            json,
            analyzed,
            stats,
        });
    }
    Ok(())
}
