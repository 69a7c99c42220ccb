//! The webhook write path against real SQLite: idempotency, forward-only status, late joins,
//! attribution and aggregates.

use super::sqlite::SqliteDatabase;
use super::*;
use crate::domain::{AnalysisStatus, CallStatus};
use crate::testing::block_on;
use crate::webhooks::{form, standard, twilio, Delivery};

const NOW: i64 = 1_800_000_000_000;

fn store_with_routes() -> Store<SqliteDatabase> {
    let s = Store::new(SqliteDatabase::migrated());
    s.db_exec(
        "INSERT INTO phone_numbers (e164, user_id, created_at, updated_at) VALUES \
         ('+14155550199', 'ada', 0, 0), ('+14155550299', 'bob', 0, 0)",
    );
    s
}

fn voice(body: &str) -> Delivery {
    let params = form::parse(body.as_bytes()).expect("valid form");
    twilio::voice_status(&params, Timestamp::from_millis(NOW)).expect("parses")
}

fn event(id: &str, body: serde_json::Value) -> Delivery {
    standard::parse(id, body.to_string().as_bytes(), Timestamp::from_millis(NOW)).expect("parses")
}

fn apply(s: &Store<SqliteDatabase>, d: &Delivery) -> Ingested {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let claim = format!(
        "claim-{}",
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    block_on(s.ingest(d, &claim)).expect("ingests")
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("valid")
}

fn cid(s: &str) -> CallId {
    CallId::parse(s).expect("valid")
}

fn call(s: &Store<SqliteDatabase>, user: &str, id: &str) -> Option<crate::domain::Call> {
    block_on(s.load_call(&uid(user), &cid(id)))
        .expect("loads")
        .0
}

const RINGING: &str = "CallSid=CA1&CallStatus=ringing&Direction=inbound&From=%2B15550001111&To=%2B14155550199&Timestamp=Tue%2C+05+Mar+2024+18%3A21%3A00+%2B0000&SequenceNumber=1";
const COMPLETED: &str = "CallSid=CA1&CallStatus=completed&Direction=inbound&From=%2B15550001111&To=%2B14155550199&CallDuration=42&Timestamp=Tue%2C+05+Mar+2024+18%3A22%3A13+%2B0000&SequenceNumber=3";

#[test]
fn a_call_for_a_routed_number_lands_with_its_owner() {
    let s = store_with_routes();
    let got = apply(&s, &voice(COMPLETED));
    assert_eq!((got.fresh, got.outcome.as_str()), (true, "applied"));
    assert_eq!(got.user, Some(uid("ada")));
    let c = call(&s, "ada", "CA1").expect("stored");
    assert_eq!(c.status, CallStatus::Completed);
    assert!(c.answered);
    assert_eq!(c.duration_seconds, Some(42));
    assert!(call(&s, "bob", "CA1").is_none());
}

#[test]
fn the_same_delivery_applied_twice_changes_nothing_the_second_time() {
    let s = store_with_routes();
    let d = voice(COMPLETED);
    assert!(apply(&s, &d).fresh);
    let before = call(&s, "ada", "CA1");
    let again = apply(&s, &d);
    assert!(!again.fresh);
    assert_eq!(again.user, Some(uid("ada")));
    assert_eq!(call(&s, "ada", "CA1"), before);
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert_eq!(summary.stats.total_calls, 1, "counted once");
}

#[test]
fn a_late_ringing_never_overwrites_completed() {
    let s = store_with_routes();
    apply(&s, &voice(COMPLETED));
    apply(&s, &voice(RINGING));
    let c = call(&s, "ada", "CA1").expect("stored");
    assert_eq!(c.status, CallStatus::Completed);
    assert_eq!(c.duration_seconds, Some(42));
    assert!(c.ended_at.is_some());
}

#[test]
fn in_order_events_move_the_status_forward() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert_eq!(
        call(&s, "ada", "CA1").map(|c| c.status),
        Some(CallStatus::Ringing)
    );
    apply(&s, &voice(COMPLETED));
    let c = call(&s, "ada", "CA1").expect("stored");
    assert_eq!(c.status, CallStatus::Completed);
    // Ringing reports no start (it was inferred from the callback's time); the terminal
    // callback reports one (its end less `CallDuration`), which replaces the guess.
    assert_eq!(
        c.started_at.millis(),
        1_709_662_933_000 - 42_000,
        "the reported start replaces the inferred one"
    );
}

#[test]
fn a_call_to_an_unrouted_number_is_kept_unattributed() {
    let s = store_with_routes();
    let d = voice(&COMPLETED.replace("%2B14155550199", "%2B19995550000"));
    let got = apply(&s, &d);
    assert_eq!(
        (got.fresh, got.outcome.as_str(), got.user.clone()),
        (true, "unattributed", None)
    );
    let rows: Vec<serde_json::Value> = block_on(s.db.query(Statement::new(
        "SELECT payload FROM webhook_deliveries WHERE outcome = 'unattributed'",
        vec![],
    )))
    .expect("query")
    .json();
    let kept = serde_json::from_str(rows[0]["payload"].as_str().unwrap_or_default())
        .ok()
        .and_then(|v| Delivery::from_json(&v))
        .expect("the kept payload is the delivery");
    assert_eq!(kept, d);
}

#[test]
fn an_analysis_and_an_enrichment_before_their_call_are_joined_when_it_lands() {
    let s = store_with_routes();
    apply(
        &s,
        &event(
            "msg_a",
            serde_json::json!({"type": "call.analysis.completed",
        "timestamp": "2026-11-21T10:00:00Z",
        "data": {"userId": "ada", "callId": "CA1", "intent": "billing", "confidence": 0.8}}),
        ),
    );
    apply(
        &s,
        &event(
            "msg_e",
            serde_json::json!({"type": "call.enrichment.completed",
        "data": {"userId": "ada", "callId": "CA1", "phoneNumber": "+15550001111", "callerName": "Grace"}}),
        ),
    );
    assert!(call(&s, "ada", "CA1").is_none());
    apply(&s, &voice(COMPLETED));
    let c = call(&s, "ada", "CA1").expect("stored");
    assert_eq!(
        c.analysis.map(|a| a.status),
        Some(AnalysisStatus::Completed)
    );
    assert_eq!(
        c.enrichment.and_then(|e| e.caller_name).as_deref(),
        Some("Grace")
    );
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert_eq!(summary.calls.len(), 1);
    assert_eq!(summary.stats.intent_distribution.get("billing"), Some(&1));
}

#[test]
fn a_recording_before_its_call_is_joined_when_the_call_lands() {
    let s = store_with_routes();
    let params = form::parse(b"CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed&RecordingUrl=https%3A%2F%2Fr.example%2F1&RecordingDuration=41").expect("valid");
    let got = apply(
        &s,
        &twilio::recording_status(&params, Timestamp::from_millis(NOW)).expect("parses"),
    );
    assert_eq!(
        (got.fresh, got.outcome.as_str(), got.user),
        (true, "applied", None)
    );
    apply(&s, &voice(COMPLETED));
    let rec = call(&s, "ada", "CA1")
        .and_then(|c| c.recording)
        .expect("joined");
    assert_eq!((rec.id.as_str(), rec.duration_seconds), ("RE1", Some(41)));
}

#[test]
fn an_older_analysis_event_never_overwrites_a_newer_one() {
    let s = store_with_routes();
    apply(&s, &voice(COMPLETED));
    let analysis = |id: &str, ts: &str, intent: &str| {
        event(
            id,
            serde_json::json!({"type": "call.analysis.completed", "timestamp": ts,
            "data": {"userId": "ada", "callId": "CA1", "intent": intent, "confidence": 0.9}}),
        )
    };
    apply(&s, &analysis("msg_new", "2026-11-21T10:05:00Z", "sales"));
    apply(&s, &analysis("msg_old", "2026-11-21T10:00:00Z", "billing"));
    let a = call(&s, "ada", "CA1")
        .and_then(|c| c.analysis)
        .expect("analysis");
    assert_eq!(a.intent.as_deref(), Some("sales"));
}

#[test]
fn another_user_cannot_take_over_a_call_by_upserting_its_id() {
    let s = store_with_routes();
    apply(&s, &voice(COMPLETED));
    apply(
        &s,
        &event(
            "msg_x",
            serde_json::json!({"type": "call.upserted",
        "data": {"userId": "mallory", "id": "CA1", "status": "failed", "from": "+1999"}}),
        ),
    );
    let c = call(&s, "ada", "CA1").expect("still ada's");
    assert_eq!(c.status, CallStatus::Completed);
    assert!(call(&s, "mallory", "CA1").is_none());
}

#[test]
fn an_unknown_event_type_is_recorded_and_ignored() {
    let s = store_with_routes();
    let got = apply(
        &s,
        &event(
            "msg_u",
            serde_json::json!({"type": "call.intent_analyzed", "data": {}}),
        ),
    );
    assert_eq!((got.fresh, got.outcome.as_str()), (true, "ignored"));
    assert!(
        !apply(
            &s,
            &event(
                "msg_u",
                serde_json::json!({"type": "call.intent_analyzed", "data": {}})
            )
        )
        .fresh
    );
}

#[test]
fn an_api_upserted_call_can_be_completed_by_a_later_event() {
    let s = store_with_routes();
    apply(
        &s,
        &event(
            "m1",
            serde_json::json!({"type": "call.upserted",
        "data": {"userId": "ada", "id": "CA7", "status": "in-progress", "startedAt": "2026-11-21T10:00:00Z"}}),
        ),
    );
    apply(
        &s,
        &event(
            "m2",
            serde_json::json!({"type": "call.upserted",
        "data": {"userId": "ada", "id": "CA7", "status": "completed", "durationSeconds": 30, "endedAt": "2026-11-21T10:00:30Z", "from": "+15550001111"}}),
        ),
    );
    let c = call(&s, "ada", "CA7").expect("stored");
    assert_eq!(
        (c.status, c.duration_seconds, c.from.as_str()),
        (CallStatus::Completed, Some(30), "+15550001111")
    );
    assert!(c.answered);
}

#[test]
fn every_ingest_statement_is_accepted_by_sqlite_with_its_parameter_count() {
    // A mismatch between the SQL's ?N and the bound values would only show at run time.
    let db = SqliteDatabase::migrated();
    for (sql, params) in [
        (sql::CLAIM_DELIVERY, 15),
        (sql::UPSERT_CALL, 16),
        (sql::UPSERT_RECORDING, 9),
        (sql::UPSERT_ANALYSIS, 10),
        (sql::UPSERT_ENRICHMENT, 11),
        (sql::DELIVERY_RESULT, 3),
        (sql::CLAIM_AND_CALL, 28),
        (sql::CLAIM_AND_RECORDING, 21),
        (sql::CLAIM_AND_ANALYSIS, 22),
        (sql::CLAIM_AND_ENRICHMENT, 23),
        (sql::MARK_DELETED, 4),
        (sql::DELETE_RECORDING, 2),
        (sql::DELETE_ANALYSIS, 2),
        (sql::DELETE_ENRICHMENT, 2),
        (sql::FORGET_DELIVERIES, 2),
        (sql::DELETE_CALL, 2),
    ] {
        let st = db.conn.prepare(sql).expect("prepares");
        assert_eq!(st.parameter_count(), params, "{sql}");
    }
}

/// A store over SQLite that counts the statements of each batch it runs.
struct CountingStatements {
    db: SqliteDatabase,
    batches: std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
}

fn counting_store() -> (
    Store<CountingStatements>,
    std::rc::Rc<std::cell::RefCell<Vec<usize>>>,
) {
    let batches = std::rc::Rc::default();
    let db = CountingStatements {
        db: SqliteDatabase::migrated(),
        batches: std::rc::Rc::clone(&batches),
    };
    (Store::new(db), batches)
}

impl Database for CountingStatements {
    type Rows = <SqliteDatabase as Database>::Rows;
    async fn query(&self, statement: Statement) -> AppResult<Self::Rows> {
        self.db.query(statement).await
    }
    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<Self::Rows>> {
        self.batches.borrow_mut().push(statements.len());
        self.db.batch(statements).await
    }
}

#[test]
fn a_delivery_of_one_event_is_one_statement_that_returns_its_outcome_and_versions() {
    let (s, batches) = counting_store();
    let deliver = |id: &str, at: &str, status: &str, claim: &str| {
        let body = serde_json::json!({"type": "call.upserted", "timestamp": at,
            "data": {"userId": "ada", "id": "CA9", "status": status}});
        block_on(s.ingest(&event(id, body), claim)).expect("ingests")
    };
    let first = deliver(
        "msg_one_1",
        "2026-11-21T10:00:00Z",
        "ringing",
        "claim-one-1",
    );
    let second = deliver(
        "msg_one_2",
        "2026-11-21T10:00:05Z",
        "completed",
        "claim-one-2",
    );
    let retry = deliver(
        "msg_one_2",
        "2026-11-21T10:00:05Z",
        "completed",
        "claim-one-3",
    );
    assert_eq!(*batches.borrow(), [1, 1, 1]);
    assert_eq!((first.fresh, first.outcome.as_str()), (true, "applied"));
    assert_eq!(
        (first.user.clone(), first.call.clone()),
        (Some(uid("ada")), Some(cid("CA9")))
    );
    // Each applied delivery moved its owner's version by one, and knows where it started.
    let v = |v: Option<crate::domain::Version>| v.expect("a version").get();
    assert_eq!(v(first.version) - v(first.version_before), 1);
    assert_eq!(v(second.version_before), v(first.version));
    assert_eq!(v(second.version) - v(second.version_before), 1);
    // A retry is told what the first attempt did, and claims no version of its own.
    assert_eq!((retry.fresh, retry.outcome.as_str()), (false, "applied"));
    assert_eq!(
        (retry.version_before, retry.version),
        (None, second.version)
    );
}

#[test]
fn a_delivery_with_no_event_to_apply_reads_its_outcome_after_its_claim() {
    let (s, batches) = counting_store();
    let got = block_on(s.ingest(
        &event(
            "msg_unknown",
            serde_json::json!({"type": "call.transcribed", "data": {"id": "CA9"}}),
        ),
        "claim-unknown",
    ))
    .expect("ingests");
    assert_eq!(*batches.borrow(), [2]);
    assert_eq!((got.fresh, got.outcome.as_str()), (true, "ignored"));
    assert_eq!(got.version_before, None);
}

// ---- Deleting calls ----

fn delete(s: &Store<SqliteDatabase>, user: &str, id: &str, at: i64) -> bool {
    use super::CallDeletion;
    block_on(s.delete_call(&uid(user), &cid(id), Timestamp::from_millis(at)))
        .expect("deletes")
        .is_some()
}

#[test]
fn the_owner_deletes_a_call_with_everything_attached_and_aggregates_stay_exact() {
    let s = store_with_routes();
    apply(&s, &voice(COMPLETED));
    apply(
        &s,
        &event(
            "msg_a",
            serde_json::json!({"type": "call.analysis.completed",
        "data": {"userId": "ada", "callId": "CA1", "intent": "billing", "confidence": 0.8}}),
        ),
    );
    apply(
        &s,
        &event(
            "msg_e",
            serde_json::json!({"type": "call.enrichment.completed",
        "data": {"userId": "ada", "callId": "CA1", "phoneNumber": "+15550001111"}}),
        ),
    );
    assert!(!delete(&s, "bob", "CA1", NOW), "not bob's");
    assert!(call(&s, "ada", "CA1").is_some());
    assert!(delete(&s, "ada", "CA1", NOW));
    assert!(call(&s, "ada", "CA1").is_none());
    assert!(!delete(&s, "ada", "CA1", NOW), "already gone");
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert_eq!(summary.stats.total_calls, 0);
    assert_eq!(summary.stats.answered_calls, 0);
    assert!(summary.stats.intent_distribution.is_empty());
    assert_eq!(summary.stats.avg_confidence, 0.0);
    for table in ["recordings", "analyses", "enrichments"] {
        let rows: Vec<serde_json::Value> = block_on(s.db.query(Statement::new(
            Box::leak(
                format!("SELECT COUNT(*) AS n FROM {table} WHERE call_id = 'CA1'").into_boxed_str(),
            ),
            vec![],
        )))
        .expect("counts")
        .json();
        assert_eq!(rows[0]["n"], 0, "{table}");
    }
}

#[test]
fn late_webhooks_for_a_deleted_call_do_not_resurrect_it() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(delete(&s, "ada", "CA1", NOW));
    // A late status callback (it happened before the deletion), a retry, an analysis.
    assert!(apply(&s, &voice(COMPLETED)).fresh);
    apply(
        &s,
        &event(
            "msg_late",
            serde_json::json!({"type": "call.analysis.completed",
        "data": {"userId": "ada", "callId": "CA1", "intent": "billing", "confidence": 0.8}}),
        ),
    );
    let params =
        form::parse(b"CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed").expect("valid");
    apply(
        &s,
        &twilio::recording_status(&params, Timestamp::from_millis(NOW)).expect("parses"),
    );
    assert!(call(&s, "ada", "CA1").is_none());
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert_eq!(summary.stats.total_calls, 0);
    assert!(summary.stats.intent_distribution.is_empty());
}

#[test]
fn a_genuinely_new_call_with_a_deleted_id_is_kept() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(delete(&s, "ada", "CA1", NOW));
    apply(
        &s,
        &event(
            "msg_new",
            serde_json::json!({"type": "call.upserted", "timestamp": "2027-01-15T09:00:00Z",
        "data": {"userId": "ada", "id": "CA1", "status": "ringing", "startedAt": "2027-01-15T09:00:00Z"}}),
        ),
    );
    let c = call(&s, "ada", "CA1").expect("a new call");
    assert_eq!(
        c.started_at,
        Timestamp::parse_rfc3339("2027-01-15T09:00:00Z").expect("valid")
    );
    apply(
        &s,
        &event(
            "msg_new_a",
            serde_json::json!({"type": "call.analysis.completed",
        "data": {"userId": "ada", "callId": "CA1", "intent": "sales", "confidence": 0.8}}),
        ),
    );
    assert!(
        call(&s, "ada", "CA1").and_then(|c| c.analysis).is_some(),
        "the mark is lifted"
    );
}

/// A status report for `id` a minute after `NOW`, with no start: it never lifts a mark.
fn status_without_start(id: &str) -> Delivery {
    standard::parse(
        "msg_no_start",
        serde_json::json!({"type": "call.upserted",
            "data": {"userId": "ada", "id": id, "status": "completed"}})
        .to_string()
        .as_bytes(),
        Timestamp::from_millis(NOW + 60_000),
    )
    .expect("parses")
}

/// The deletion marks stored.
fn marks(s: &Store<SqliteDatabase>) -> Vec<serde_json::Value> {
    s.db_rows("SELECT call_id FROM deleted_calls")
}

/// Delivery rows still holding a deletion mark's digest for the lift trigger.
fn digests_left(s: &Store<SqliteDatabase>) -> Vec<serde_json::Value> {
    s.db_rows("SELECT delivery_key FROM webhook_deliveries WHERE lift_mark IS NOT NULL")
}

fn new_call_report(key: &str, id: &str) -> Delivery {
    event(
        key,
        serde_json::json!({"type": "call.upserted", "timestamp": "2027-01-15T09:00:00Z",
            "data": {"userId": "ada", "id": id, "status": "ringing",
                     "startedAt": "2027-01-15T09:00:00Z"}}),
    )
}

#[test]
fn lifting_a_deletion_mark_leaves_no_digest_of_the_call_in_the_delivery_log() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(delete(&s, "ada", "CA1", NOW));
    assert_eq!(
        apply(&s, &new_call_report("msg_new", "CA1")).outcome,
        "applied"
    );
    assert!(marks(&s).is_empty());
    assert!(
        digests_left(&s).is_empty(),
        "the trigger blanks the mark's digest as soon as it has lifted the mark"
    );
}

#[test]
fn a_mark_from_before_marks_were_digests_is_lifted_by_a_genuinely_new_call() {
    let s = store_with_routes();
    // `migrations/0006` marks held the raw id; the claim and the lift recognise both forms.
    s.db_exec("INSERT INTO deleted_calls (call_id, user_id, deleted_at) VALUES ('CA9', 'ada', 0)");
    assert_eq!(
        apply(&s, &new_call_report("msg_new", "CA9")).outcome,
        "applied"
    );
    assert!(marks(&s).is_empty());
    assert!(call(&s, "ada", "CA9").is_some());
}

#[test]
fn an_applied_call_report_lifts_no_other_calls_mark_and_a_refused_one_lifts_none() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(delete(&s, "ada", "CA1", NOW));
    assert_eq!(
        apply(&s, &new_call_report("msg_other", "CA2")).outcome,
        "applied"
    );
    assert_eq!(marks(&s).len(), 1);
    let late = status_without_start("CA1");
    assert_eq!(apply(&s, &late).outcome, "deleted");
    assert_eq!(marks(&s).len(), 1);
    assert!(digests_left(&s).is_empty());
}

// ---- A call keeps its owner ----

fn retell(body: serde_json::Value, received_at: i64) -> Delivery {
    crate::webhooks::retell::parse(
        body.to_string().as_bytes(),
        Timestamp::from_millis(received_at),
    )
    .expect("parses")
}

fn route(s: &Store<SqliteDatabase>, number: &str, user: &str) {
    block_on(s.put_route(
        &E164::parse(number).expect("valid"),
        &uid(user),
        Timestamp::from_millis(NOW),
    ))
    .expect("routes");
}

fn retell_call(event: &str, id: &str) -> serde_json::Value {
    serde_json::json!({"event": event, "call": {
        "call_id": id, "direction": "inbound",
        "from_number": "+15550001111", "to_number": "+14155550199",
        "start_timestamp": 1_709_662_860_000_i64, "end_timestamp": 1_709_662_902_000_i64,
        "disconnection_reason": "user_hangup",
        "call_analysis": {"call_summary": "asked about a bill",
            "custom_analysis_data": {"intent": "billing", "intent_confidence": 0.9}}}})
}

#[test]
fn a_late_analysis_goes_to_the_calls_owner_after_its_number_is_re_routed() {
    let s = store_with_routes();
    apply(&s, &retell(retell_call("call_ended", "call_ada1"), NOW));
    route(&s, "+14155550199", "bob");
    let got = apply(&s, &retell(retell_call("call_analyzed", "call_ada1"), NOW));
    assert_eq!(
        (got.outcome.as_str(), got.user),
        ("applied", Some(uid("ada")))
    );
    let analysis = call(&s, "ada", "call_ada1").and_then(|c| c.analysis);
    assert_eq!(
        analysis.map(|a| a.intent),
        Some(Some("billing".to_owned())),
        "Ada's call has its analysis"
    );
    assert!(call(&s, "bob", "call_ada1").is_none());
    let bob = block_on(s.load_intent_summary(&uid("bob"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert!(bob.calls.is_empty() && bob.stats.intent_distribution.is_empty());
}

#[test]
fn a_completed_callback_after_its_number_is_unrouted_still_completes_the_call() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(block_on(s.delete_route(&E164::parse("+14155550199").expect("valid"))).expect("ok"));
    let got = apply(&s, &voice(COMPLETED));
    assert_eq!(
        (got.outcome.as_str(), got.user),
        ("applied", Some(uid("ada")))
    );
    assert_eq!(
        call(&s, "ada", "CA1").map(|c| c.status),
        Some(CallStatus::Completed)
    );
}

#[test]
fn routes_still_decide_the_owner_of_a_call_seen_for_the_first_time() {
    let s = store_with_routes();
    route(&s, "+14155550199", "bob");
    let got = apply(&s, &voice(COMPLETED));
    assert_eq!(got.user, Some(uid("bob")));
    assert!(call(&s, "bob", "CA1").is_some() && call(&s, "ada", "CA1").is_none());
}

#[test]
fn an_explicit_user_that_contradicts_the_owner_is_a_conflict_applied_to_no_one() {
    let s = store_with_routes();
    apply(&s, &voice(COMPLETED));
    for (id, body) in [
        (
            "msg_bob_a",
            serde_json::json!({"type": "call.analysis.completed",
                "data": {"userId": "bob", "callId": "CA1", "intent": "sales", "confidence": 0.7}}),
        ),
        (
            "msg_bob_c",
            serde_json::json!({"type": "call.upserted",
                "data": {"userId": "bob", "id": "CA1", "status": "failed"}}),
        ),
        (
            "msg_bob_e",
            serde_json::json!({"type": "call.enrichment.completed",
                "data": {"userId": "bob", "callId": "CA1", "phoneNumber": "+15550001111"}}),
        ),
    ] {
        let got = apply(&s, &event(id, body));
        assert_eq!(
            (
                got.fresh,
                got.outcome.as_str(),
                got.user.clone(),
                got.changed_data()
            ),
            (true, "conflict", None, false),
            "{id}"
        );
    }
    let ada = call(&s, "ada", "CA1").expect("still Ada's");
    assert_eq!(ada.status, CallStatus::Completed);
    assert!(ada.analysis.is_none() && ada.enrichment.is_none());
    assert!(call(&s, "bob", "CA1").is_none());
    let kept: Vec<serde_json::Value> = block_on(s.db.query(Statement::new(
        "SELECT payload FROM webhook_deliveries WHERE outcome = 'conflict' AND call_id = 'CA1'",
        vec![],
    )))
    .expect("query")
    .json();
    assert_eq!(kept.len(), 3, "each conflict is recorded with its body");
    assert!(kept.iter().all(|r| r["payload"].as_str().is_some()));
}

#[test]
fn an_analysis_stored_before_its_call_sets_the_owner_a_contradicting_one_conflicts_with() {
    let s = store_with_routes();
    let analysis = |id: &str, user: &str| {
        event(
            id,
            serde_json::json!({"type": "call.analysis.completed",
                "data": {"userId": user, "callId": "CAearly", "intent": "sales", "confidence": 0.5}}),
        )
    };
    assert_eq!(apply(&s, &analysis("msg_1", "ada")).outcome, "applied");
    assert_eq!(apply(&s, &analysis("msg_2", "bob")).outcome, "conflict");
}

// ---- Deletion forgets everything ----

/// Every text stored in any table, for finding what still names a call.
fn every_stored_text(s: &Store<SqliteDatabase>) -> Vec<(String, String)> {
    let conn = &s.db.conn;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .expect("prepares")
        .query_map([], |r| r.get(0))
        .expect("lists")
        .collect::<Result<_, _>>()
        .expect("names");
    let mut out = Vec::new();
    for table in tables {
        let mut st = conn
            .prepare(&format!("SELECT * FROM \"{table}\""))
            .expect("prepares");
        let columns = st.column_count();
        let mut rows = st.query([]).expect("reads");
        while let Some(row) = rows.next().expect("row") {
            for i in 0..columns {
                if let Ok(rusqlite::types::ValueRef::Text(t)) = row.get_ref(i) {
                    out.push((table.clone(), String::from_utf8_lossy(t).into_owned()));
                }
            }
        }
    }
    out
}

#[test]
fn deleting_a_call_leaves_no_stored_byte_that_names_it() {
    let s = store_with_routes();
    let id = "call_privacy77";
    apply(&s, &retell(retell_call("call_started", id), NOW));
    apply(&s, &retell(retell_call("call_analyzed", id), NOW));
    // Deliveries without an event we apply keep their body, which quotes the call.
    apply(
        &s,
        &retell(
            serde_json::json!({"event": "transcript_updated",
                "call": {"call_id": id, "transcript": "Agent: hello"}}),
            NOW,
        ),
    );
    apply(
        &s,
        &event(
            "msg_unknown_type",
            serde_json::json!({"type": "call.sentiment.scored",
                "data": {"userId": "ada", "callId": id, "score": 0.2}}),
        ),
    );
    apply(
        &s,
        &event(
            "msg_conflict",
            serde_json::json!({"type": "call.analysis.completed",
                "data": {"userId": "bob", "callId": id, "intent": "x", "confidence": 0.1}}),
        ),
    );
    let before = every_stored_text(&s);
    assert!(
        before
            .iter()
            .any(|(t, v)| t == "webhook_deliveries" && v.contains("transcript")),
        "the transcript update was kept"
    );
    assert!(delete(&s, "ada", id, NOW + 1_000));
    // A late delivery after the deletion stores nothing that names the call either.
    apply(
        &s,
        &retell(
            serde_json::json!({"event": "transcript_updated",
                "call": {"call_id": id, "transcript": "Agent: bye"}}),
            NOW + 2_000,
        ),
    );
    let naming: Vec<_> = every_stored_text(&s)
        .into_iter()
        .filter(|(_, v)| v.contains(id))
        .collect();
    assert!(naming.is_empty(), "still stored: {naming:?}");
}

#[test]
fn a_retry_of_a_delivery_for_a_deleted_call_is_still_recognised() {
    let s = store_with_routes();
    apply(&s, &voice(COMPLETED));
    assert!(delete(&s, "ada", "CA1", NOW));
    let retry = apply(&s, &voice(COMPLETED));
    assert!(
        !retry.fresh,
        "the delivery row outlives the deletion, keyed by a digest"
    );
}

#[test]
fn deleting_someone_elses_call_forgets_nothing_of_it() {
    let s = store_with_routes();
    apply(
        &s,
        &retell(
            serde_json::json!({"event": "transcript_updated",
                "call": {"call_id": "CA1", "transcript": "Agent: hello"}}),
            NOW,
        ),
    );
    apply(&s, &voice(COMPLETED));
    assert!(!delete(&s, "bob", "CA1", NOW));
    assert!(every_stored_text(&s)
        .iter()
        .any(|(t, v)| t == "webhook_deliveries" && v.contains("Agent: hello")));
}

// ---- Only a reported later start resurrects a deleted call ----

#[test]
fn a_call_upsert_without_started_at_does_not_lift_a_deletion() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(delete(&s, "ada", "CA1", NOW));
    let late = status_without_start("CA1");
    assert_eq!(apply(&s, &late).outcome, "deleted");
    assert!(call(&s, "ada", "CA1").is_none());
}

#[test]
fn a_twilio_callback_without_a_timestamp_does_not_lift_a_deletion() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    assert!(delete(&s, "ada", "CA1", NOW));
    let params = form::parse(
        b"CallSid=CA1&CallStatus=in-progress&Direction=inbound&From=%2B15550001111&To=%2B14155550199",
    )
    .expect("valid");
    let late = twilio::voice_status(&params, Timestamp::from_millis(NOW + 60_000)).expect("parses");
    assert_eq!(apply(&s, &late).outcome, "deleted");
    assert!(call(&s, "ada", "CA1").is_none());
}

#[test]
fn a_retell_event_without_a_start_timestamp_does_not_lift_a_deletion() {
    let s = store_with_routes();
    apply(
        &s,
        &retell(retell_call("call_started", "call_r1"), NOW - 1_000),
    );
    assert!(delete(&s, "ada", "call_r1", NOW));
    let late = retell(
        serde_json::json!({"event": "call_ended", "call": {"call_id": "call_r1",
            "direction": "inbound", "to_number": "+14155550199"}}),
        NOW + 60_000,
    );
    assert_eq!(apply(&s, &late).outcome, "deleted");
    assert!(call(&s, "ada", "call_r1").is_none());
}

fn limit(n: u32) -> crate::domain::Limit {
    crate::domain::Limit::new(n, 500).expect("limit")
}

fn refreshing(s: &Store<SqliteDatabase>, d: &Delivery, claim: &str, users: &[&str]) -> Ingested {
    let ask = RefreshAsk {
        users: users.iter().map(|u| uid(u)).collect(),
        views: vec![
            crate::domain::LandingView::FirstPage(limit(2)),
            crate::domain::LandingView::Summary(limit(5)),
        ],
        changed_call: true,
        aggregates: true,
    };
    block_on(s.ingest_refreshing(d, claim, &ask)).expect("ingests")
}

#[test]
fn a_watched_owners_landing_views_come_back_from_the_writes_own_batch_at_its_version() {
    let s = store_with_routes();
    apply(&s, &voice(RINGING));
    let got = refreshing(&s, &voice(COMPLETED), "refresh-1", &["bob", "ada"]);
    assert_eq!(got.refresh.views.len(), 2);
    let version = got.version.expect("an owner");
    let (page, at) = block_on(s.load_call_page(
        &uid("ada"),
        &crate::domain::PageRequest {
            limit: limit(2),
            position: crate::domain::PagePosition::Offset(0),
            filter: crate::domain::CallFilter::none(),
        },
    ))
    .expect("loads");
    assert_eq!(at, version, "nothing moved since");
    assert_eq!(
        got.refresh.views[0],
        (
            crate::domain::LandingView::FirstPage(limit(2)),
            page_payload(&page).expect("payload")
        ),
        "the same bytes a load gives"
    );
    let (summary, _) = block_on(s.load_intent_summary(&uid("ada"), limit(5))).expect("loads");
    assert_eq!(
        got.refresh.views[1].1,
        crate::reads::Payload::new(&summary, None).expect("payload")
    );
    let changed = got.refresh.changed.expect("the changed call comes back");
    assert_eq!(
        changed.json,
        page.calls.first().map(crate::json_writer::to_string),
        "as the page lists it"
    );
    assert_eq!(changed.stats.as_ref(), Some(&summary.stats));
}

#[test]
fn the_changed_call_comes_back_for_an_owner_nobody_watches_and_never_for_a_retry() {
    let s = store_with_routes();
    let got = refreshing(&s, &voice(RINGING), "c1", &[]);
    let changed = got.refresh.changed.expect("read whoever the owner is");
    let place = changed
        .json
        .as_deref()
        .and_then(crate::domain::Cursor::of_listed_call)
        .expect("the call's JSON");
    assert_eq!(place.id.as_str(), "CA1");
    assert!(!changed.analyzed);
    assert!(refreshing(&s, &voice(RINGING), "c2", &[])
        .refresh
        .changed
        .is_none());
}

#[test]
fn nothing_comes_back_for_an_unwatched_owner_a_retry_or_an_unapplied_delivery() {
    let s = store_with_routes();
    assert!(
        refreshing(&s, &voice(RINGING), "r1", &["bob"])
            .refresh
            .views
            .is_empty(),
        "not watched"
    );
    assert!(
        refreshing(&s, &voice(RINGING), "r2", &["ada"])
            .refresh
            .views
            .is_empty(),
        "a retry"
    );
    let unrouted = voice(
        &RINGING
            .replace("To=%2B14155550199", "To=%2B14155550999")
            .replace("CA1", "CA9"),
    );
    let got = refreshing(&s, &unrouted, "r3", &["ada"]);
    assert_eq!(
        (got.outcome.as_str(), got.refresh.views.len()),
        ("unattributed", 0)
    );
}

#[test]
fn the_claim_reports_the_version_before_only_for_an_attempt_that_applied_it() {
    let s = store_with_routes();
    let first = apply(&s, &voice(RINGING));
    let (before, after) = (
        first.version_before.expect("an applied claim reports it"),
        first.version.expect("and the version after"),
    );
    assert!(after > before, "{before:?} → {after:?}");
    let completed = voice(COMPLETED);
    let second = apply(&s, &completed);
    assert_eq!(
        second.version_before,
        Some(after),
        "the next delivery starts where the first ended"
    );
    let retry = apply(&s, &completed);
    assert_eq!((retry.fresh, retry.version_before), (false, None));
    let unrouted = apply(
        &s,
        &voice(
            &RINGING
                .replace("CA1", "CA9")
                .replace("%2B14155550199", "%2B19995550000"),
        ),
    );
    assert_eq!(
        (unrouted.outcome.as_str(), unrouted.version_before),
        ("unattributed", None)
    );
}

/// The bench's plain JavaScript worker can run this store's own batch for a `call.upserted`
/// delivery (`bench/reference/js/worker.mjs`, `PROJECT_INGEST_SQL`: one statement, the claim
/// and the call's write returning the outcome), from a copy of its SQL: the copy must be the
/// SQL the store runs. `BLESS=1 cargo test` rewrites it.
#[test]
fn the_reference_workers_copy_of_the_ingest_statements_is_the_stores() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/bench/reference/js/project-ingest-sql.json"
    );
    let mut want = serde_json::to_string_pretty(&serde_json::json!({
        "claim_and_call": sql::CLAIM_AND_CALL,
    }))
    .expect("serializes");
    want.push('\n');
    if std::env::var_os("BLESS").is_some() {
        std::fs::write(path, &want).expect("writes the copy");
    }
    let held = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        held == want,
        "{path} is not the store's SQL: run `BLESS=1 cargo test` to rewrite it"
    );
}
