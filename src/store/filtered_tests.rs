//! Filtered pages against real SQLite: the calls each filter lists, through offset and cursor
//! paging, the one index each combination scans, and the bounded scan of a sparse filter.

use super::filtered::{filtered_page_statement, FILTER_SCAN_ROWS};
use super::sqlite::SqliteDatabase;
use super::*;
use crate::cache::sim::Rng;
use crate::domain::{CallFilter, CallStatus, Direction};
use crate::testing::block_on;

const T0: i64 = 1_800_000_000_000;
const STATUSES: [CallStatus; 4] = [
    CallStatus::Completed,
    CallStatus::Failed,
    CallStatus::Busy,
    CallStatus::InProgress,
];

/// One seeded call, as the model sees it.
#[derive(Debug, Clone)]
struct Seeded {
    id: String,
    started_at: i64,
    status: CallStatus,
    direction: Direction,
    /// The intent of its completed analysis (`unknown` when it has none), if it has one.
    intent: Option<String>,
}

impl Seeded {
    fn matches(&self, f: &CallFilter) -> bool {
        (f.statuses().is_empty() || f.statuses().contains(&self.status))
            && f.direction.is_none_or(|d| d == self.direction)
            && f.intent
                .as_ref()
                .is_none_or(|i| self.intent.as_ref() == Some(i))
            && f.from.is_none_or(|t| self.started_at >= t.millis())
            && f.to.is_none_or(|t| self.started_at < t.millis())
    }
}

fn insert(
    s: &Store<SqliteDatabase>,
    user: &str,
    c: &Seeded,
    analysis: Option<(&str, Option<&str>)>,
) {
    s.db_exec(&format!(
        "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
         status_rank, answered, started_at, created_at, updated_at) VALUES ('{}', '{user}', \
         'api', '{}', '+1', '+2', '{}', {}, 0, {}, 0, 0)",
        c.id,
        c.direction.as_str(),
        c.status.as_str(),
        c.status.rank(),
        c.started_at
    ));
    if let Some((status, intent)) = analysis {
        let intent = intent.map_or("NULL".to_owned(), |i| format!("'{i}'"));
        s.db_exec(&format!(
            "INSERT INTO analyses (call_id, user_id, status, intent, confidence, updated_at) \
             VALUES ('{}', '{user}', '{status}', {intent}, 0.5, 0)",
            c.id
        ));
    }
}

/// Ada's calls (and a few of Bob's, which no filter of Ada's may list).
fn seeded(n: usize, seed: u64) -> (Store<SqliteDatabase>, Vec<Seeded>) {
    let s = Store::new(SqliteDatabase::migrated());
    let mut rng = Rng::new(seed);
    let mut ada = Vec::new();
    for i in 0..n {
        let mut c = Seeded {
            id: format!("CA{i:04}"),
            // Some share a start, so ties are broken by id.
            started_at: T0 + (rng.below(40) as i64) * 3_600_000,
            status: *rng.pick(&STATUSES),
            direction: *rng.pick(&[Direction::Inbound, Direction::Outbound]),
            intent: None,
        };
        let analysis = match rng.below(4) {
            0 => None,
            1 => Some(("failed", Some("billing"))),
            2 => Some(("completed", None)),
            _ => Some(("completed", Some(*rng.pick(&["billing", "sales"])))),
        };
        if let Some(("completed", intent)) = analysis {
            c.intent = Some(intent.unwrap_or("unknown").to_owned());
        }
        let user = if i % 10 == 9 { "bob" } else { "ada" };
        insert(&s, user, &c, analysis);
        if user == "ada" {
            ada.push(c);
        }
    }
    ada.sort_by(|a, b| (b.started_at, &b.id).cmp(&(a.started_at, &a.id)));
    (s, ada)
}

fn ada() -> UserId {
    UserId::parse("ada").expect("valid")
}

fn at(hours: i64) -> Timestamp {
    Timestamp::from_millis(T0 + hours * 3_600_000)
}

/// A spread of filters: every part alone, and combinations of them.
fn filters() -> Vec<CallFilter> {
    let none = CallFilter::none();
    let failed = none.clone().with_statuses([CallStatus::Failed]);
    let two = none
        .clone()
        .with_statuses([CallStatus::Failed, CallStatus::Busy]);
    let inbound = none.clone().with_direction(Some(Direction::Inbound));
    let billing = none.clone().with_intent(Some("billing".into()));
    let unknown = none.clone().with_intent(Some("unknown".into()));
    let ranged = |f: &CallFilter, from: Option<i64>, to: Option<i64>| {
        f.clone().with_range(from.map(at), to.map(at))
    };
    vec![
        failed.clone(),
        two.clone(),
        inbound.clone(),
        billing.clone(),
        unknown,
        ranged(&none, Some(10), Some(30)),
        ranged(&none, Some(10), None),
        ranged(&none, None, Some(10)),
        ranged(&failed, Some(5), Some(35)),
        two.clone().with_direction(Some(Direction::Outbound)),
        billing.clone().with_direction(Some(Direction::Inbound)),
        ranged(
            &billing
                .clone()
                .with_statuses([CallStatus::Completed, CallStatus::InProgress]),
            Some(0),
            Some(20),
        ),
        // Nothing matches.
        ranged(&inbound, Some(100), Some(120)),
    ]
}

fn page_of(
    s: &Store<SqliteDatabase>,
    filter: &CallFilter,
    limit: u32,
    position: PagePosition,
) -> (Vec<String>, Option<String>) {
    let page = PageRequest {
        limit: Limit::new(limit, 500).expect("valid"),
        position,
        filter: filter.clone(),
    };
    let (payload, _) = block_on(s.load_page_json(&ada(), &page)).expect("loads");
    let calls: Vec<serde_json::Value> = serde_json::from_str(&payload.data_json()).expect("JSON");
    let ids = calls
        .iter()
        .map(|c| c["id"].as_str().expect("an id").to_owned())
        .collect();
    (ids, payload.page.and_then(|p| p.next_cursor))
}

#[test]
fn every_filter_lists_exactly_its_calls_newest_first_through_cursor_and_offset_paging() {
    let (s, ada_calls) = seeded(160, 7);
    for filter in filters() {
        let want: Vec<String> = ada_calls
            .iter()
            .filter(|c| c.matches(&filter))
            .map(|c| c.id.clone())
            .collect();
        // By cursor, 7 at a time.
        let (mut got, mut next) = page_of(&s, &filter, 7, PagePosition::Offset(0));
        while let Some(cursor) = next {
            let (c, _) = Cursor::decode_tagged(&cursor).expect("a cursor this API issued");
            let (ids, more) = page_of(&s, &filter, 7, PagePosition::After(c));
            assert!(
                !ids.is_empty() || more.is_none(),
                "{filter:?}: an empty page went on"
            );
            got.extend(ids);
            next = more;
        }
        assert_eq!(got, want, "{filter:?} by cursor");
        // By offset, 5 at a time.
        let mut got = Vec::new();
        for offset in (0..=want.len()).step_by(5) {
            let (ids, _) = page_of(&s, &filter, 5, PagePosition::Offset(offset as u32));
            got.extend(ids);
        }
        assert_eq!(got, want, "{filter:?} by offset");
    }
}

#[test]
fn a_filtered_pages_cursor_carries_its_filter() {
    let (s, _) = seeded(60, 3);
    let failed = CallFilter::none().with_statuses([CallStatus::Failed]);
    let (_, next) = page_of(&s, &failed, 2, PagePosition::Offset(0));
    let (_, tag) = Cursor::decode_tagged(&next.expect("more pages")).expect("a cursor");
    assert_eq!(tag, failed.tag());
}

#[test]
fn a_sparse_filter_stops_its_scan_and_the_cursor_continues_after_the_last_call_scanned() {
    let s = Store::new(SqliteDatabase::migrated());
    let total = FILTER_SCAN_ROWS as usize + 300;
    // Only the five oldest calls are outbound: the first scan finds none of them.
    for i in 0..total {
        let c = Seeded {
            id: format!("CA{i:05}"),
            started_at: T0 + i as i64 * 1000,
            status: CallStatus::Completed,
            direction: if i < 5 {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            intent: None,
        };
        insert(&s, "ada", &c, None);
    }
    let outbound = CallFilter::none().with_direction(Some(Direction::Outbound));
    let (ids, next) = page_of(&s, &outbound, 10, PagePosition::Offset(0));
    assert!(ids.is_empty(), "{ids:?}");
    let next = next.expect("the scan stopped short, so a cursor continues it");
    let (cursor, _) = Cursor::decode_tagged(&next).expect("a cursor");
    // It points at the last call scanned: the FILTER_SCAN_ROWS-th newest.
    assert_eq!(
        cursor.id.as_str(),
        format!("CA{:05}", total - FILTER_SCAN_ROWS as usize)
    );
    let (ids, next) = page_of(&s, &outbound, 10, PagePosition::After(cursor));
    assert_eq!(ids, ["CA00004", "CA00003", "CA00002", "CA00001", "CA00000"]);
    assert_eq!(next, None);
}

/// The index each combination must search, by what decides it.
fn meant_index(f: &CallFilter) -> &'static str {
    match (&f.intent, f.statuses()) {
        (Some(_), _) => "calls_by_user_intent_newest",
        (None, [_]) => "calls_by_user_status_newest",
        _ => "calls_by_user_newest",
    }
}

#[test]
fn every_filter_combination_is_one_range_scan_of_the_index_meant_for_it_with_no_sort() {
    let db = SqliteDatabase::migrated();
    let status_sets: [&[CallStatus]; 3] = [
        &[],
        &[CallStatus::Failed],
        &[CallStatus::Failed, CallStatus::Busy],
    ];
    let mut combinations = 0;
    for statuses in status_sets {
        for direction in [None, Some(Direction::Inbound)] {
            for intent in [None, Some("billing".to_owned())] {
                for (from, to) in [
                    (None, None),
                    (Some(1), None),
                    (None, Some(2)),
                    (Some(1), Some(2)),
                ] {
                    let filter = CallFilter::none()
                        .with_direction(direction)
                        .with_intent(intent.clone())
                        .with_range(from.map(at), to.map(at))
                        .with_statuses(statuses.iter().copied());
                    if filter.is_empty() {
                        continue; // the plain list has its own statements
                    }
                    for position in [
                        PagePosition::Offset(0),
                        PagePosition::After(Cursor {
                            started_at: at(3),
                            id: CallId::parse("CA1").expect("valid"),
                        }),
                    ] {
                        let page = PageRequest {
                            limit: Limit::new(50, 500).expect("valid"),
                            position,
                            filter: filter.clone(),
                        };
                        let sts = filtered_page_statement(&ada(), &page).expect("statements");
                        assert_eq!(
                            sts.stop.is_some(),
                            filter.direction.is_some()
                                || filter.statuses().len() > 1
                                || (filter.intent.is_some() && !filter.statuses().is_empty()),
                            "{filter:?}: only a filter matched row by row needs to learn where its scan stopped"
                        );
                        for sql in std::iter::once(sts.page.sql).chain(sts.stop.map(|s| s.sql)) {
                            let plan = db.query_plan(sql);
                            let index = meant_index(&filter);
                            // The version's subqueries search their own one-row tables.
                            let searches: Vec<&String> =
                                plan.iter().filter(|s| s.starts_with("SEARCH c ")).collect();
                            assert!(
                                searches.len() == 1 && searches[0].contains(index),
                                "{filter:?}: expected one search of {index}\nplan: {plan:#?}"
                            );
                            let coroutines: Vec<&str> = plan
                                .iter()
                                .filter_map(|s| s.strip_prefix("CO-ROUTINE "))
                                .collect();
                            for step in &plan {
                                let table_scan = step
                                    .strip_prefix("SCAN ")
                                    .is_some_and(|name| !coroutines.contains(&name));
                                assert!(
                                    !step.contains("TEMP B-TREE") && !table_scan,
                                    "{filter:?}: {plan:#?}"
                                );
                            }
                        }
                        combinations += 1;
                    }
                }
            }
        }
    }
    assert_eq!(combinations, (3 * 2 * 2 * 4 - 1) * 2);
}
