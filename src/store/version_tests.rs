//! The version authority (`migrations/0008`) against real SQLite: every change to a user's data
//! moves that user's version forward in the same batch, and nothing else moves it.

use super::sqlite::SqliteDatabase;
use super::*;
use crate::testing::block_on;
use crate::webhooks::{form, standard, twilio};

const NOW: i64 = 1_800_000_000_000;

fn store() -> Store<SqliteDatabase> {
    let s = Store::new(SqliteDatabase::migrated());
    s.db_exec(
        "INSERT INTO phone_numbers (e164, user_id, created_at, updated_at) VALUES \
         ('+14155550199', 'ada', 0, 0), ('+14155550299', 'bob', 0, 0)",
    );
    s
}

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("valid")
}

fn version(s: &Store<SqliteDatabase>, user: &str) -> Version {
    block_on(s.current_versions(&[uid(user)])).expect("reads")[0]
}

fn apply(s: &Store<SqliteDatabase>, d: &crate::domain::Delivery) -> Ingested {
    static NONCE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let claim = format!(
        "v-claim-{}",
        NONCE.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    block_on(s.ingest(d, &claim)).expect("ingests")
}

fn voice(body: &str) -> crate::domain::Delivery {
    let params = form::parse(body.as_bytes()).expect("valid form");
    twilio::voice_status(&params, Timestamp::from_millis(NOW)).expect("parses")
}

fn event(id: &str, body: serde_json::Value) -> crate::domain::Delivery {
    standard::parse(id, body.to_string().as_bytes(), Timestamp::from_millis(NOW)).expect("parses")
}

const RINGING: &str = "CallSid=CA1&CallStatus=ringing&Direction=inbound&From=%2B15550001111&To=%2B14155550199&Timestamp=Tue%2C+05+Mar+2024+18%3A21%3A00+%2B0000&SequenceNumber=1";
const COMPLETED: &str = "CallSid=CA1&CallStatus=completed&Direction=inbound&From=%2B15550001111&To=%2B14155550199&CallDuration=42&Timestamp=Tue%2C+05+Mar+2024+18%3A22%3A13+%2B0000&SequenceNumber=3";

#[test]
fn every_kind_of_write_moves_the_owners_version_forward_and_a_retry_does_not() {
    let s = store();
    assert_eq!(version(&s, "ada"), Version::ZERO, "never written");
    let recording = {
        let p = form::parse(
            b"CallSid=CA1&RecordingSid=RE1&RecordingStatus=completed&RecordingUrl=https%3A%2F%2Fx",
        )
        .expect("valid");
        twilio::recording_status(&p, Timestamp::from_millis(NOW)).expect("parses")
    };
    let steps = [
        voice(RINGING),
        voice(COMPLETED),
        recording,
        event(
            "msg_a",
            serde_json::json!({"type": "call.analysis.completed",
                "data": {"userId": "ada", "callId": "CA1", "intent": "billing", "confidence": 0.8}}),
        ),
        event(
            "msg_e",
            serde_json::json!({"type": "call.enrichment.completed",
                "data": {"userId": "ada", "callId": "CA1", "phoneNumber": "+15550001111"}}),
        ),
    ];
    let mut last = Version::ZERO;
    for (i, d) in steps.iter().enumerate() {
        let got = apply(&s, d);
        let now = version(&s, "ada");
        assert!(
            now > last,
            "step {i} moved the version: {last:?} -> {now:?}"
        );
        assert_eq!(
            got.version,
            Some(now),
            "step {i} returned the stored version"
        );
        let retry = apply(&s, d);
        assert!(!retry.fresh);
        assert_eq!(
            version(&s, "ada"),
            now,
            "a retry of step {i} changed nothing"
        );
        last = now;
    }
    let deleted = block_on(s.delete_call(
        &uid("ada"),
        &CallId::parse("CA1").expect("valid"),
        Timestamp::from_millis(NOW),
    ))
    .expect("deletes");
    assert_eq!(deleted, Some(version(&s, "ada")), "and returns it");
    assert!(version(&s, "ada") > last, "a deletion moves it too");
}

#[test]
fn another_users_writes_and_refused_deliveries_leave_a_version_alone() {
    let s = store();
    apply(&s, &voice(RINGING));
    let ada = version(&s, "ada");
    apply(
        &s,
        &voice(&RINGING.replace("CA1", "CA2").replace("0199", "0299")),
    );
    assert!(version(&s, "bob") > Version::ZERO);
    // A conflict, an unknown type and a deletion attempt by someone else change nothing.
    apply(
        &s,
        &event(
            "msg_conflict",
            serde_json::json!({"type": "call.upserted",
                "data": {"userId": "bob", "id": "CA1", "status": "failed"}}),
        ),
    );
    apply(
        &s,
        &event(
            "msg_unknown",
            serde_json::json!({"type": "call.mood", "data": {"callId": "CA1"}}),
        ),
    );
    assert!(block_on(s.delete_call(
        &uid("bob"),
        &CallId::parse("CA1").expect("valid"),
        Timestamp::from_millis(NOW)
    ))
    .expect("runs")
    .is_none());
    assert_eq!(version(&s, "ada"), ada);
}

#[test]
fn a_purge_moves_one_user_or_everyone_forward_and_nothing_back() {
    let s = store();
    apply(&s, &voice(RINGING));
    let (ada, bob) = (version(&s, "ada"), version(&s, "bob"));
    let bumped = block_on(s.bump_user(&uid("ada"))).expect("bumps");
    assert!(bumped > ada && bumped == version(&s, "ada"));
    assert_eq!(version(&s, "bob"), bob);
    block_on(s.bump_all()).expect("bumps");
    assert!(version(&s, "ada") > bumped);
    assert!(version(&s, "bob") > bob, "even users never written");
}

#[test]
fn versions_of_many_users_are_read_in_one_query_in_the_order_asked() {
    let s = store();
    apply(&s, &voice(RINGING));
    let before = s.usage().queries;
    let got = block_on(s.current_versions(&[uid("nobody"), uid("ada"), uid("bob")])).expect("ok");
    assert_eq!(s.usage().queries - before, 1);
    assert_eq!(got[0], Version::ZERO);
    assert!(got[1] > Version::ZERO);
    assert_eq!(got[2], Version::ZERO);
    assert!(block_on(s.current_versions(&[])).expect("ok").is_empty());
}

fn changes(s: &Store<SqliteDatabase>, after: Option<u64>, limit: u32) -> VersionChanges {
    block_on(s.version_changes(after, limit)).expect("reads the feed")
}

#[test]
fn the_version_feed_lists_every_change_after_a_position_with_its_call_and_version() {
    let s = store();
    let start = changes(&s, None, 100);
    assert!(start.changes.is_empty() && start.complete && !start.gap);
    apply(&s, &voice(RINGING));
    let bob = voice(
        &RINGING
            .replace("CA1", "CA2")
            .replace("14155550199", "14155550299"),
    );
    apply(&s, &bob);
    let after_both = changes(&s, Some(start.through), 100);
    assert!(after_both.complete && !after_both.gap);
    let last = |user: &str| {
        after_both
            .changes
            .iter()
            .rev()
            .find(|(u, _, _)| u.as_str() == user)
            .cloned()
    };
    assert_eq!(
        last("ada"),
        Some((uid("ada"), CallId::parse("CA1"), version(&s, "ada")))
    );
    assert_eq!(
        last("bob"),
        Some((uid("bob"), CallId::parse("CA2"), version(&s, "bob")))
    );
    assert!(
        after_both
            .changes
            .iter()
            .all(|(u, c, _)| c.as_ref().map(CallId::as_str)
                == Some(if u.as_str() == "ada" { "CA1" } else { "CA2" })),
        "every change names its call: {:?}",
        after_both.changes
    );
    apply(&s, &voice(COMPLETED));
    let later = changes(&s, Some(after_both.through), 100);
    assert!(
        later.changes.iter().all(|(u, _, _)| u.as_str() == "ada"),
        "bob did not move"
    );
    assert_eq!(later.changes.last().map(|c| c.2), Some(version(&s, "ada")));
    assert!(changes(&s, Some(later.through), 100).changes.is_empty());
    block_on(s.bump_user(&uid("bob"))).expect("purges");
    let purge = changes(&s, Some(later.through), 100);
    assert_eq!(
        purge.changes,
        vec![(uid("bob"), None, version(&s, "bob"))],
        "a purge names no call"
    );
}

#[test]
fn a_cut_short_feed_is_complete_only_through_its_last_change() {
    let s = store();
    let start = changes(&s, None, 10).through;
    apply(&s, &voice(RINGING));
    let all = changes(&s, Some(start), 100);
    assert!(all.changes.len() >= 2, "{:?}", all.changes);
    let first = changes(&s, Some(start), 1);
    assert_eq!((first.changes.len(), first.complete), (1, false));
    assert_eq!(first.through, start + 1);
    let rest = changes(&s, Some(first.through), 100);
    assert_eq!(rest.changes, all.changes[1..].to_vec());
}

#[test]
fn a_feed_position_the_log_no_longer_covers_is_a_gap() {
    let s = store();
    apply(&s, &voice(RINGING));
    let head = changes(&s, None, 10).through;
    s.db_exec(&format!("DELETE FROM change_log WHERE seq <= {}", head - 1));
    assert!(changes(&s, Some(0), 10).gap);
    assert!(!changes(&s, Some(head - 1), 10).gap);
}

#[test]
fn a_purge_of_everything_moves_the_feeds_epoch() {
    let s = store();
    let before = changes(&s, None, 10);
    block_on(s.bump_all()).expect("bumps");
    let after = changes(&s, Some(before.through), 10);
    assert_eq!(after.epoch, before.epoch + 1);
}

#[test]
fn a_new_call_nothing_arrived_before_steps_its_owners_version_once() {
    // `migrations/0013`: the copy of what arrived first runs only when something did, so a
    // plain new call is one change in the feed, not an insert and an empty copy.
    let s = store();
    apply(&s, &voice(RINGING)); // ada's first write also makes her version row
    let start = changes(&s, None, 100);
    let got = apply(&s, &voice(&RINGING.replace("CA1", "CA2")));
    assert_eq!(got.outcome, "applied");
    let feed = changes(&s, Some(start.through), 100);
    assert_eq!(
        feed.changes,
        vec![(uid("ada"), CallId::parse("CA2"), version(&s, "ada"))],
        "one change for one new call"
    );
    assert_eq!(
        got.version_before.map(|v| v.get() + 1),
        got.version.map(|v| v.get())
    );
}

#[test]
fn a_new_call_something_arrived_before_still_copies_it_in_and_moves_again() {
    let s = store();
    apply(
        &s,
        &event(
            "msg_early",
            serde_json::json!({"type": "call.analysis.completed",
                "data": {"userId": "ada", "callId": "CA1", "intent": "billing", "confidence": 0.8}}),
        ),
    );
    let before = changes(&s, None, 100);
    let got = apply(&s, &voice(RINGING));
    let feed = changes(&s, Some(before.through), 100);
    assert!(
        feed.changes.len() >= 2,
        "the insert and the copy of the early analysis: {:?}",
        feed.changes
    );
    assert_eq!(feed.changes.last().map(|c| c.2), got.version);
    let (call, _) =
        block_on(s.load_call(&uid("ada"), &CallId::parse("CA1").expect("valid"))).expect("reads");
    let analysis = call.expect("the call is ada's").analysis;
    assert_eq!(
        analysis.and_then(|a| a.intent).as_deref(),
        Some("billing"),
        "the early analysis is copied into the call's row"
    );
}
