use super::sqlite::SqliteDatabase;
use super::*;
use crate::domain::{AnalysisStatus, CallStatus};
use crate::testing::block_on;

fn uid(s: &str) -> UserId {
    UserId::parse(s).expect("valid user id")
}

fn cid(s: &str) -> CallId {
    CallId::parse(s).expect("valid call id")
}

fn store() -> Store<SqliteDatabase> {
    Store::new(SqliteDatabase::migrated())
}

fn insert_call(s: &Store<SqliteDatabase>, user: &str, id: &str, started_ms: i64, status: &str) {
    let answered = CallStatus::parse(status).is_some_and(CallStatus::is_answered) as i64;
    s.db.exec(&format!(
        "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
         status_rank, answered, started_at, created_at, updated_at) VALUES \
         ('{id}', '{user}', 'twilio', 'inbound', '+14155550100', '+14155550199', '{status}', 3, \
         {answered}, {started_ms}, {started_ms}, {started_ms})"
    ));
}

fn insert_analysis(
    s: &Store<SqliteDatabase>,
    user: &str,
    call: &str,
    status: &str,
    intent: &str,
    conf: f64,
) {
    s.db.exec(&format!(
        "INSERT INTO analyses (call_id, user_id, status, intent, confidence, updated_at) VALUES \
         ('{call}', '{user}', '{status}', '{intent}', {conf}, 1) \
         ON CONFLICT (call_id) DO UPDATE SET status = excluded.status, intent = excluded.intent, \
         confidence = excluded.confidence"
    ));
}

fn page(limit: u32, position: PagePosition) -> PageRequest {
    PageRequest::unfiltered(Limit::new(limit, 500).expect("valid limit"), position)
}

#[test]
fn every_read_is_an_index_range_scan() {
    let db = SqliteDatabase::migrated();
    for (name, sql) in sql::READS {
        let plan = db.query_plan(sql);
        // A co-routine is a subquery whose rows its own steps already bound (a filtered
        // page's scan, `LIMIT`ed): reading it is no table scan.
        let coroutines: Vec<&str> = plan
            .iter()
            .filter_map(|s| s.strip_prefix("CO-ROUTINE "))
            .collect();
        for step in &plan {
            // Walking `json_each` of a bound parameter (the only virtual table these statements
            // use) reads the argument list, and a `SELECT` without `FROM` one constant row:
            // neither is a table.
            let scans_a_table = step.starts_with("SCAN")
                && !step.contains("VIRTUAL TABLE")
                && step != "SCAN CONSTANT ROW"
                && !step
                    .strip_prefix("SCAN ")
                    .is_some_and(|name| coroutines.contains(&name));
            // No sort at all, not even of a page's rows: D1 counts the rows a sorter reads
            // back as rows read, so a page sorted twice is billed twice.
            assert!(
                !scans_a_table && !step.contains("TEMP B-TREE"),
                "{name}: plan step `{step}` is a full scan or a sort\nplan: {plan:#?}"
            );
        }
        assert!(
            plan.iter().any(|s| s.starts_with("SEARCH")),
            "{name}: no index search in {plan:#?}"
        );
    }
}

#[test]
fn every_call_list_is_one_array_appended_as_its_ordered_subquery_yields_rows() {
    // `sql::call_json_array!` relies on this shape for its order: the list's subquery runs
    // as a co-routine (not flattened into the aggregate, not sorted again) and the aggregate
    // reads it as it yields. The walk over tied start times checks the order itself.
    let db = SqliteDatabase::migrated();
    for (name, sql) in [
        ("page by offset", sql::PAGE_JSON_BY_OFFSET),
        ("page after cursor", sql::PAGE_JSON_AFTER_CURSOR),
        ("analyzed calls", sql::ANALYZED_CALLS_JSON),
        ("ranged analyzed calls", sql::RANGED_ANALYZED_CALLS_JSON),
        ("refresh: first page", sql::REFRESH_FIRST_PAGE),
        ("refresh: analyzed calls", sql::REFRESH_ANALYZED_CALLS),
    ] {
        let plan = db.query_plan(sql);
        let at = |step: &str| plan.iter().position(|s| s == step);
        let (Some(coroutine), Some(scan)) = (at("CO-ROUTINE p"), at("SCAN p")) else {
            panic!("{name}: the list is not read from a co-routine: {plan:#?}");
        };
        assert!(coroutine < scan, "{name}: {plan:#?}");
    }
}

#[test]
fn call_lists_and_details_read_only_the_calls_table() {
    // One plan step: no joins, so D1 reads one row per call listed.
    let db = SqliteDatabase::migrated();
    for sql in [
        sql::CALL_PAGE_BY_OFFSET,
        sql::CALL_PAGE_AFTER_CURSOR,
        sql::CALL_DETAIL,
        sql::ANALYZED_CALLS,
    ] {
        let plan = db.query_plan(sql);
        assert_eq!(plan.len(), 1, "{plan:#?}");
    }
}

#[test]
fn the_copies_in_the_call_row_follow_every_change_to_their_sources() {
    let s = store();
    insert_call(&s, "ada", "CA1", 1_000, "completed");
    insert_analysis(&s, "ada", "CA1", "completed", "billing", 0.5);
    s.db.exec(
        "INSERT INTO recordings (call_id, id, url, duration_seconds, status, updated_at) \
         VALUES ('CA1', 'RE1', 'u1', 10, 'completed', 1); \
         INSERT INTO enrichments (call_id, user_id, phone_number, caller_name, updated_at) \
         VALUES ('CA1', 'ada', '+1', 'Grace', 1);",
    );
    let load = || {
        block_on(s.load_call(&uid("ada"), &cid("CA1")))
            .expect("loads")
            .0
            .expect("exists")
    };
    let c = load();
    assert_eq!(c.recording.map(|r| r.id), Some("RE1".to_owned()));
    assert_eq!(
        c.enrichment.and_then(|e| e.caller_name).as_deref(),
        Some("Grace")
    );
    insert_analysis(&s, "ada", "CA1", "completed", "sales", 0.9);
    s.db.exec("UPDATE recordings SET url = 'u2' WHERE call_id = 'CA1'; DELETE FROM enrichments WHERE call_id = 'CA1';");
    let c = load();
    assert_eq!(c.analysis.and_then(|a| a.intent).as_deref(), Some("sales"));
    assert_eq!(c.recording.and_then(|r| r.url).as_deref(), Some("u2"));
    assert!(c.enrichment.is_none());
    s.db.exec(
        "DELETE FROM analyses WHERE call_id = 'CA1'; DELETE FROM recordings WHERE call_id = 'CA1';",
    );
    let c = load();
    assert!(c.analysis.is_none() && c.recording.is_none());
}

#[test]
fn the_summary_list_uses_the_partial_index_of_analyzed_calls() {
    let db = SqliteDatabase::migrated();
    let plan = db.query_plan(sql::ANALYZED_CALLS);
    assert!(
        plan.iter()
            .any(|s| s.contains("calls_analyzed_by_user_newest")),
        "{plan:#?}"
    );
}

#[test]
fn cursor_paging_walks_every_call_exactly_once_even_with_tied_start_times() {
    let s = store();
    // 23 calls, many sharing a start time, so the id tie-break matters.
    for i in 0..23 {
        insert_call(
            &s,
            "ada",
            &format!("CA{i:03}"),
            1_000 + (i / 4) * 10,
            "completed",
        );
    }
    insert_call(&s, "bob", "CB001", 1_050, "completed");
    let mut seen = Vec::new();
    let mut position = PagePosition::Offset(0);
    loop {
        let got = block_on(s.load_call_page(&uid("ada"), &page(5, position)))
            .expect("page loads")
            .0;
        assert!(got.calls.len() <= 5);
        seen.extend(got.calls.iter().map(|c| (c.started_at, c.id.clone())));
        match got.next {
            Some(cursor) => position = PagePosition::After(cursor),
            None => break,
        }
    }
    assert_eq!(seen.len(), 23, "every call once");
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    sorted.dedup();
    assert_eq!(seen, sorted, "newest first, ties by id desc, no repeats");
    assert!(seen.iter().all(|(_, id)| id.as_str().starts_with("CA")));
}

#[test]
fn offset_paging_skips_and_reports_the_next_cursor() {
    let s = store();
    for i in 0..7 {
        insert_call(&s, "ada", &format!("CA{i}"), 1_000 + i, "completed");
    }
    let first = block_on(s.load_call_page(&uid("ada"), &page(3, PagePosition::Offset(0))))
        .expect("loads")
        .0;
    let second = block_on(s.load_call_page(&uid("ada"), &page(3, PagePosition::Offset(3))))
        .expect("loads")
        .0;
    let last = block_on(s.load_call_page(&uid("ada"), &page(3, PagePosition::Offset(6))))
        .expect("loads")
        .0;
    let ids = |p: &CallPage| p.calls.iter().map(|c| c.id.to_string()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ["CA6", "CA5", "CA4"]);
    assert_eq!(ids(&second), ["CA3", "CA2", "CA1"]);
    assert_eq!(ids(&last), ["CA0"]);
    assert!(last.next.is_none());
    let via_cursor = block_on(s.load_call_page(
        &uid("ada"),
        &page(3, PagePosition::After(first.next.expect("more pages"))),
    ))
    .expect("loads")
    .0;
    assert_eq!(ids(&via_cursor), ids(&second));
}

#[test]
fn a_page_as_json_is_one_query_full_short_or_empty_and_lists_what_the_reference_lists() {
    let s = store();
    // Tied start times: the order must come from (started_at, id), not from the insert order.
    for i in 0..9 {
        insert_call(&s, "ada", &format!("CA{i}"), 1_000 + i / 3, "completed");
    }
    // Pages of one call too: the cut before the extra call then keeps the list's first.
    for limit in [1, 4] {
        let mut position = PagePosition::Offset(0);
        let mut seen = Vec::new();
        loop {
            let request = page(limit, position.clone());
            let before = s.usage().queries;
            let (json, version) = block_on(s.load_page_json(&uid("ada"), &request)).expect("loads");
            assert_eq!(s.usage().queries - before, 1, "one query per page");
            let (calls, reference_version) =
                block_on(s.load_call_page(&uid("ada"), &request)).expect("loads");
            assert_eq!(json, page_payload(&calls).expect("payload"));
            assert_eq!(version, reference_version);
            seen.extend(calls.calls.iter().map(|c| c.id.to_string()));
            match calls.next {
                Some(cursor) => position = PagePosition::After(cursor),
                None => break,
            }
        }
        assert_eq!(
            seen,
            ["CA8", "CA7", "CA6", "CA5", "CA4", "CA3", "CA2", "CA1", "CA0"]
        );
    }
    // Past the end, and for a user with no calls: an empty page, still one query, and still
    // the user's version (`nobody` has never been written: zero).
    let before = s.usage().queries;
    let (past, _) =
        block_on(s.load_page_json(&uid("ada"), &page(4, PagePosition::Offset(9)))).expect("loads");
    let (none, version) =
        block_on(s.load_page_json(&uid("nobody"), &page(4, PagePosition::Offset(0))))
            .expect("loads");
    assert_eq!(s.usage().queries - before, 2);
    assert_eq!(&*past.data_json(), "[]");
    assert_eq!(&*none.data_json(), "[]");
    assert_eq!(version, Version::ZERO);
}

#[test]
fn another_users_call_analysis_and_enrichment_are_absent() {
    let s = store();
    insert_call(&s, "ada", "CA1", 1_000, "completed");
    insert_analysis(&s, "ada", "CA1", "completed", "billing", 0.9);
    s.db.exec(
        "INSERT INTO enrichments (call_id, user_id, phone_number, updated_at) \
         VALUES ('CA1', 'ada', '+14155550100', 5)",
    );
    let (ada, bob, call) = (uid("ada"), uid("bob"), cid("CA1"));
    assert!(block_on(s.load_call(&ada, &call))
        .expect("loads")
        .0
        .is_some());
    assert!(block_on(s.load_call(&bob, &call))
        .expect("loads")
        .0
        .is_none());
    assert!(block_on(s.load_analysis(&bob, &call))
        .expect("loads")
        .0
        .is_none());
    assert!(block_on(s.load_enrichment(&bob, &call))
        .expect("loads")
        .0
        .is_none());
    let page = block_on(s.load_call_page(&bob, &page(50, PagePosition::Offset(0))))
        .expect("loads")
        .0;
    assert!(page.calls.is_empty());
}

#[test]
fn a_misattributed_analysis_never_joins_another_users_call() {
    let s = store();
    insert_call(&s, "ada", "CA1", 1_000, "completed");
    insert_analysis(&s, "mallory", "CA1", "completed", "fraud", 1.0);
    let call = block_on(s.load_call(&uid("ada"), &cid("CA1")))
        .expect("loads")
        .0
        .expect("exists");
    assert!(call.analysis.is_none());
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert!(summary.calls.is_empty());
}

#[test]
fn an_analysis_that_arrives_before_its_call_is_joined_when_the_call_lands() {
    let s = store();
    insert_analysis(&s, "ada", "CA9", "completed", "reschedule", 0.8);
    insert_call(&s, "ada", "CA9", 2_000, "completed");
    let call = block_on(s.load_call(&uid("ada"), &cid("CA9")))
        .expect("loads")
        .0
        .expect("exists");
    let analysis = call.analysis.expect("joined");
    assert_eq!(analysis.status, AnalysisStatus::Completed);
    assert_eq!(analysis.intent.as_deref(), Some("reschedule"));
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(10, 500).expect("ok")))
        .expect("loads")
        .0;
    assert_eq!(
        summary.calls.len(),
        1,
        "the summary's partial index sees it too"
    );
}

/// Recomputes the summary's aggregates the slow way, from every row.
fn recount(s: &Store<SqliteDatabase>, user: &str) -> (i64, i64, i64, f64, Vec<(String, i64)>) {
    let q = |sql: &str| -> Vec<serde_json::Value> {
        block_on(s.db.query(Statement::new(
            Box::leak(sql.to_owned().into_boxed_str()),
            vec![user.into()],
        )))
        .expect("recount runs")
        .json()
    };
    let calls =
        &q("SELECT COUNT(*) AS n, COALESCE(SUM(answered), 0) AS a FROM calls WHERE user_id = ?1")
            [0];
    let an = &q("SELECT COUNT(*) AS n, COALESCE(SUM(confidence), 0.0) AS s FROM analyses WHERE user_id = ?1 AND status = 'completed'")[0];
    let intents = q("SELECT intent, COUNT(*) AS n FROM analyses WHERE user_id = ?1 AND status = 'completed' GROUP BY intent ORDER BY intent")
        .into_iter()
        .map(|r| (r["intent"].as_str().unwrap_or_default().to_owned(), r["n"].as_i64().unwrap_or(-1)))
        .collect();
    (
        calls["n"].as_i64().unwrap_or(-1),
        calls["a"].as_i64().unwrap_or(-1),
        an["n"].as_i64().unwrap_or(-1),
        an["s"].as_f64().unwrap_or(-1.0),
        intents,
    )
}

#[test]
fn aggregates_stay_equal_to_a_full_recount_through_inserts_updates_and_deletes() {
    let s = store();
    let intents = ["billing", "support", "sales"];
    for i in 0..40 {
        let status = if i % 3 == 0 { "no-answer" } else { "completed" };
        insert_call(&s, "ada", &format!("CA{i}"), 10_000 + i, status);
        if i % 2 == 0 {
            insert_analysis(
                &s,
                "ada",
                &format!("CA{i}"),
                "completed",
                intents[i as usize % 3],
                0.5 + (i as f64) / 100.0,
            );
        }
    }
    insert_call(&s, "bob", "CB1", 10_000, "completed");
    // Updates in every direction: completed → failed, failed → completed with a new intent,
    // answered flips, a re-analysis with another intent, and deletions.
    insert_analysis(&s, "ada", "CA0", "failed", "billing", 0.0);
    insert_analysis(&s, "ada", "CA1", "completed", "sales", 0.7);
    insert_analysis(&s, "ada", "CA2", "completed", "support", 0.99);
    s.db.exec("UPDATE calls SET answered = 1, status = 'completed' WHERE id = 'CA3'");
    s.db.exec("DELETE FROM analyses WHERE call_id = 'CA4'");
    s.db.exec("DELETE FROM calls WHERE id IN ('CA5', 'CA6')");

    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(500, 500).expect("ok")))
        .expect("loads")
        .0;
    let (total, answered, completed, conf_sum, by_intent) = recount(&s, "ada");
    assert_eq!(summary.stats.total_calls, total);
    assert_eq!(summary.stats.answered_calls, answered);
    let expected_avg = ((conf_sum / completed as f64) * 10_000.0).round() / 10_000.0;
    assert!((summary.stats.avg_confidence - expected_avg).abs() < 1e-9);
    let got: Vec<(String, i64)> = summary.stats.intent_distribution.into_iter().collect();
    assert_eq!(got, by_intent);
    // The list holds exactly the calls whose analysis is completed and whose call exists.
    let analyzed = summary
        .calls
        .iter()
        .filter(|c| {
            c.analysis
                .as_ref()
                .is_some_and(|a| a.status == AnalysisStatus::Completed)
        })
        .count();
    assert_eq!(analyzed, summary.calls.len());
    assert_eq!(
        summary.calls.len() as i64,
        completed - 1,
        "CA6's analysis remains but its call is gone"
    );
}

#[test]
fn a_user_with_no_calls_gets_zeroed_stats() {
    let s = store();
    let summary =
        block_on(s.load_intent_summary(&uid("nobody"), Limit::new(100, 500).expect("ok")))
            .expect("loads")
            .0;
    assert_eq!(summary.stats.total_calls, 0);
    assert_eq!(summary.stats.avg_confidence, 0.0);
    assert!(summary.stats.intent_distribution.is_empty());
    assert!(summary.calls.is_empty());
}

#[test]
fn the_summary_costs_one_round_trip_and_rows_proportional_to_intents() {
    let s = store();
    for i in 0..300 {
        insert_call(&s, "ada", &format!("CA{i}"), i, "completed");
        insert_analysis(
            &s,
            "ada",
            &format!("CA{i}"),
            "completed",
            ["a", "b", "c"][i as usize % 3],
            0.5,
        );
    }
    let before = s.usage();
    let summary = block_on(s.load_intent_summary(&uid("ada"), Limit::new(5, 500).expect("ok")))
        .expect("loads")
        .0;
    let used = s.usage();
    assert_eq!(summary.stats.total_calls, 300);
    assert_eq!(summary.calls.len(), 5);
    assert_eq!(
        used.queries - before.queries,
        1,
        "three statements, one batch, one round trip"
    );
    // Rows returned: 1 stats row + 3 intents + 5 calls + the version, whatever the number
    // of calls.
    assert_eq!(used.rows_read - before.rows_read, 10);
}

#[test]
fn routing_a_number_reports_new_then_existing_and_deleting_reports_absence() {
    let s = store();
    let n = E164::parse("+14155550199").expect("valid");
    let t = Timestamp::from_millis(1_000);
    assert!(block_on(s.put_route(&n, &uid("ada"), t)).expect("puts"));
    assert!(!block_on(s.put_route(&n, &uid("bob"), Timestamp::from_millis(2_000))).expect("puts"));
    assert!(block_on(s.delete_route(&n)).expect("deletes"));
    assert!(!block_on(s.delete_route(&n)).expect("deletes"));
}

#[test]
fn a_row_with_an_unknown_status_is_an_internal_error_not_a_wrong_answer() {
    let s = store();
    insert_call(&s, "ada", "CA1", 1, "completed");
    s.db.exec("UPDATE calls SET status = 'exploded' WHERE id = 'CA1'");
    let err = block_on(s.load_call(&uid("ada"), &cid("CA1"))).expect_err("bad row");
    assert_eq!(err.status(), 500);
    assert!(err.to_string().contains("calls.status"));
}

/// Every column of a call set to one of a few awkward values each: escapes, non-ASCII, the
/// edges of the timestamp range, instants before 1970, whole and fractional numbers, NULLs.
const SET_EVERY_COLUMN: &str = "UPDATE calls SET from_number = ?2, to_number = ?3, status = ?4, \
     answered = ?5, started_at = ?6, ended_at = ?7, duration_seconds = ?8, created_at = ?9, \
     updated_at = ?10, rec_id = ?11, rec_url = ?12, rec_duration = ?13, rec_status = ?14, \
     an_status = ?15, an_intent = ?16, an_confidence = ?17, an_summary = ?18, \
     an_completed_at = ?19, en_phone = ?20, en_caller_name = ?21, en_caller_type = ?22, \
     en_line_type = ?23, en_carrier = ?24, en_spam_score = ?25, en_updated_at = ?26 WHERE id = ?1";

#[test]
fn every_call_d1_writes_as_json_is_the_bytes_serializing_the_call_gives() {
    use crate::cache::sim::Rng;
    const TEXTS: &[&str] = &[
        "",
        "plain",
        "quote \" and back\\slash /",
        "line\nbreak\ttab\rreturn\u{8}\u{c}",
        "\u{1}\u{1f}\u{7f}",
        "é ü 漢字 🎉",
        "</script>\u{2028}\u{2029}",
    ];
    const INSTANTS: &[i64] = &[
        0,
        1,
        999,
        1_000,
        -1,
        -1_000,
        -1_001,
        1_800_000_000_000,
        1_800_000_000_123,
        253_402_300_799_999,
        -62_167_219_200_000,
    ];
    const NUMBERS: &[f64] = &[0.0, 0.5, 0.87, 1.0, 0.123, 0.99, 0.05, 12.5, 100.0];
    let s = store();
    let mut rng = Rng::new(11);
    for n in 0..300 {
        let id = format!("CA{n:03}");
        insert_call(&s, "ada", &id, 1_000 + n, "completed");
        let text = |rng: &mut Rng| SqlValue::Text((*rng.pick(TEXTS)).to_owned());
        let maybe = |rng: &mut Rng, v: SqlValue| if rng.chance(0.3) { SqlValue::Null } else { v };
        let instant = |rng: &mut Rng| SqlValue::Integer(*rng.pick(INSTANTS));
        let number = |rng: &mut Rng| SqlValue::Real(*rng.pick(NUMBERS));
        // A value from `make`, or (three times in ten) NULL.
        let or_null = |rng: &mut Rng, make: &dyn Fn(&mut Rng) -> SqlValue| {
            let v = make(rng);
            maybe(rng, v)
        };
        let status = (*rng.pick(&["ringing", "in-progress", "completed", "failed"])).to_owned();
        let analysis = (*rng.pick(&["pending", "completed", "failed"])).to_owned();
        let params = vec![
            SqlValue::Text(id.clone()),
            text(&mut rng),
            text(&mut rng),
            SqlValue::Text(status),
            SqlValue::Integer(rng.below(2) as i64),
            instant(&mut rng),
            or_null(&mut rng, &instant),
            or_null(&mut rng, &|r| SqlValue::Integer(r.below(4000) as i64)),
            instant(&mut rng),
            instant(&mut rng),
            or_null(&mut rng, &text),
            or_null(&mut rng, &text),
            or_null(&mut rng, &|r| SqlValue::Integer(r.below(600) as i64)),
            or_null(&mut rng, &text),
            maybe(&mut rng, SqlValue::Text(analysis)),
            or_null(&mut rng, &text),
            or_null(&mut rng, &number),
            or_null(&mut rng, &text),
            or_null(&mut rng, &instant),
            or_null(&mut rng, &text),
            or_null(&mut rng, &text),
            or_null(&mut rng, &text),
            or_null(&mut rng, &text),
            or_null(&mut rng, &text),
            or_null(&mut rng, &number),
            or_null(&mut rng, &instant),
        ];
        block_on(s.db.batch(vec![Statement::new(SET_EVERY_COLUMN, params)])).expect("updates");
        let (json, _) = block_on(s.load_call_json(&uid("ada"), &cid(&id))).expect("loads");
        let (call, _) = block_on(s.load_call(&uid("ada"), &cid(&id))).expect("loads");
        let serde = crate::json_writer::to_string(&call.expect("the call"));
        assert_eq!(&*json.expect("the call").data_json(), serde, "call {n}");
    }
    // Whole pages too, with their cursors, and summaries.
    for (limit, position) in [(7, PagePosition::Offset(0)), (50, PagePosition::Offset(13))] {
        let request = page(limit, position);
        let (json, _) = block_on(s.load_page_json(&uid("ada"), &request)).expect("loads");
        let (calls, _) = block_on(s.load_call_page(&uid("ada"), &request)).expect("loads");
        assert_eq!(json, page_payload(&calls).expect("payload"));
    }
    let (json, _) = block_on(s.load_summary_json(&uid("ada"), Limit::new(20, 500).expect("ok")))
        .expect("loads");
    let (summary, _) =
        block_on(s.load_intent_summary(&uid("ada"), Limit::new(20, 500).expect("ok")))
            .expect("loads");
    assert_eq!(json, Payload::new(&summary, None).expect("payload"));
}

/// A row given as its columns.
struct Given(Vec<(&'static str, SqlValue)>);

impl crate::store::Row for Given {
    fn value(&self, column: &str) -> Option<SqlValue> {
        self.0
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, v)| v.clone())
    }
}

#[test]
fn a_row_column_reads_as_its_type_an_optional_one_may_be_absent_or_null_and_anything_else_names_the_column(
) {
    use crate::store::Columns;
    let row = Given(vec![
        ("n", SqlValue::Integer(-3)),
        ("whole", SqlValue::Integer(2)),
        ("f", SqlValue::Real(0.5)),
        ("t", SqlValue::Text("x".into())),
        ("null", SqlValue::Null),
    ]);
    let c = Columns::new(&row);
    assert_eq!(c.int("n").ok(), Some(-3));
    assert_eq!(c.opt_int("null").ok(), Some(None));
    assert_eq!(c.opt_int("absent").ok(), Some(None));
    assert_eq!(c.real("f").ok(), Some(0.5));
    // SQLite keeps a whole REAL as an INTEGER, and D1 hands both over as a number.
    assert_eq!(c.real("whole").ok(), Some(2.0));
    assert_eq!(c.text("t").ok().as_deref(), Some("x"));
    assert_eq!(c.opt_text("null").ok(), Some(None));
    assert_eq!(c.count("whole").ok(), Some(2));
    for (what, err) in [
        ("int of text", c.int("t").err()),
        ("int of a fraction", c.int("f").err()),
        ("required but null", c.int("null").err()),
        ("required but absent", c.text("absent").err()),
        ("text of a number", c.opt_text("n").err()),
        ("a negative count", c.count("n").err()),
        ("a number of text", c.real("t").err()),
    ] {
        let err = err.unwrap_or_else(|| panic!("{what} is refused"));
        assert!(
            format!("{err:?}").contains('`'),
            "{what}: {err:?} names the column"
        );
    }
}
