//! The patch against the store: random histories of new, late, moved, analyzed and
//! re-analyzed calls on short lists, and after every delivery each patch that is made must
//! be byte for byte what a fresh read at the delivery's version gives.

use super::*;
use crate::cache::sim::Rng;
use crate::domain::{
    AnalysisReport, AnalysisStatus, CallReport, CallStatus, Delivery, Direction, EnrichmentReport,
    Event, Owner, PagePosition, PageRequest, Provider, UserId, Version,
};
use crate::reads::Payload;
use crate::store::sqlite::SqliteDatabase;
use crate::store::{RefreshAsk, Store};
use crate::testing::block_on;

const T0: i64 = 1_800_000_000_000;

fn ada() -> UserId {
    UserId::parse("ada").expect("id")
}

fn limit(n: u32) -> Limit {
    Limit::new(n, 500).expect("limit")
}

fn cid(s: &str) -> crate::domain::CallId {
    crate::domain::CallId::parse(s).expect("call id")
}

fn owner() -> Owner {
    Owner {
        user: Some(ada()),
        number: None,
    }
}

fn delivery(n: usize, call: &str, event: Event, at: i64) -> Delivery {
    Delivery {
        provider: Provider::Api,
        key: format!("patch-{n}"),
        event_type: "call.upserted".into(),
        call_id: Some(cid(call)),
        events: vec![event],
        received_at: at,
        payload: None,
    }
}

fn call_event(call: &str, started_at: Option<i64>, at: i64) -> Event {
    Event::Call(CallReport {
        call_id: cid(call),
        owner: owner(),
        provider: Provider::Api,
        direction: Direction::Inbound,
        from: "+15550001111".into(),
        to: "+14155550199".into(),
        status: CallStatus::Completed,
        started_at,
        ended_at: None,
        duration_seconds: None,
        at,
    })
}

/// A delivery of a random kind: a new call (often late), a call moved to another start, an
/// analysis completed or failed (in and out of the summary), or an enrichment.
fn random_delivery(rng: &mut Rng, n: usize, calls: &mut Vec<String>) -> Delivery {
    let at = T0 + n as i64 * 1_000;
    // Few distinct starts, so that ties are broken by id.
    let start = |rng: &mut Rng| T0 - (rng.below(12) as i64) * 60_000;
    if calls.is_empty() || rng.chance(0.35) {
        let id = format!("CA{n:03}");
        calls.push(id.clone());
        let started = start(rng);
        return delivery(n, &id, call_event(&id, Some(started), at), at);
    }
    let id = calls[rng.below(calls.len() as u64) as usize].clone();
    let event = match rng.below(4) {
        0 => call_event(&id, Some(start(rng)), at),
        1 | 2 => Event::Analysis(AnalysisReport {
            call_id: cid(&id),
            owner: owner(),
            status: if rng.chance(0.7) {
                AnalysisStatus::Completed
            } else {
                AnalysisStatus::Failed
            },
            intent: Some((*rng.pick(&["billing", "sales"])).to_owned()),
            confidence: Some(rng.below(100) as f64 / 100.0),
            summary: None,
            at,
        }),
        _ => Event::Enrichment(EnrichmentReport {
            call_id: cid(&id),
            owner: owner(),
            phone_number: "+15550001111".into(),
            caller_name: Some(format!("caller {n}")),
            caller_type: None,
            line_type: None,
            carrier: None,
            spam_score: None,
            at,
        }),
    };
    delivery(n, &id, event, at)
}

fn first_page(s: &Store<SqliteDatabase>, n: u32) -> (Payload, Version) {
    let request = PageRequest {
        limit: limit(n),
        position: PagePosition::Offset(0),
        filter: crate::domain::CallFilter::none(),
    };
    block_on(s.load_page_json(&ada(), &request)).expect("loads")
}

fn summary_of(s: &Store<SqliteDatabase>, n: u32) -> (Payload, Version) {
    block_on(s.load_summary_json(&ada(), limit(n))).expect("loads")
}

#[derive(Debug, Default)]
struct Tally {
    patched: usize,
    declined: usize,
}

#[test]
fn every_patch_equals_a_fresh_read_at_the_deliverys_version() {
    let (mut pages, mut summaries) = (Tally::default(), Tally::default());
    for seed in 0..60 {
        let mut rng = Rng::new(seed);
        let s = Store::new(SqliteDatabase::migrated());
        let (page_limit, summary_limit) = (1 + rng.below(4) as u32, 1 + rng.below(3) as u32);
        let mut calls = Vec::new();
        // The views as a run of patches left them (a patch of a patch, as an isolate that
        // holds a watched view sees it), or as loaded after a patch declined.
        let (mut held_page, mut held_summary) = (None, None);
        for n in 0..40 {
            let d = random_delivery(&mut rng, n, &mut calls);
            let (old_page, before) = first_page(&s, page_limit);
            let (old_summary, _) = summary_of(&s, summary_limit);
            let held = held_page.take().unwrap_or_else(|| old_page.clone());
            let held_sum = held_summary.take().unwrap_or_else(|| old_summary.clone());
            assert_eq!(held, old_page, "held page, seed {seed} step {n}");
            assert_eq!(held_sum, old_summary, "held summary, seed {seed} step {n}");
            let ask = RefreshAsk {
                changed_call: true,
                aggregates: true,
                ..RefreshAsk::default()
            };
            let got =
                block_on(s.ingest_refreshing(&d, &format!("claim-{n}"), &ask)).expect("ingests");
            assert_eq!(got.version_before, Some(before), "seed {seed} step {n}");
            let changed = got.refresh.changed.expect("the changed call comes back");
            let call = got.call.expect("a call");
            let (new_page, after) = first_page(&s, page_limit);
            assert_eq!(got.version, Some(after));
            let (new_summary, _) = summary_of(&s, summary_limit);
            match page(&old_page, limit(page_limit), &call, &changed) {
                Some(p) => {
                    assert_eq!(p, new_page, "page, seed {seed} step {n}: {d:?}");
                    pages.patched += 1;
                }
                None => pages.declined += 1,
            }
            match summary(&old_summary, limit(summary_limit), &call, &changed) {
                Some(p) => {
                    assert_eq!(p, new_summary, "summary, seed {seed} step {n}: {d:?}");
                    summaries.patched += 1;
                }
                None => summaries.declined += 1,
            }
            // The held views, patched with where the patch before put each call.
            let chained = page(&held, limit(page_limit), &call, &changed);
            if let Some(p) = &chained {
                assert_eq!(*p, new_page, "chained page, seed {seed} step {n}: {d:?}");
                assert_eq!(
                    listing_of(p, 0),
                    listing_of(&new_page, 0),
                    "seed {seed} step {n}"
                );
            }
            held_page = chained;
            let chained = summary(&held_sum, limit(summary_limit), &call, &changed);
            if let Some(p) = &chained {
                assert_eq!(
                    *p, new_summary,
                    "chained summary, seed {seed} step {n}: {d:?}"
                );
                let at = SUMMARY_CALLS.len();
                assert_eq!(
                    listing_of(p, at),
                    listing_of(&new_summary, at),
                    "seed {seed} step {n}"
                );
            }
            held_summary = chained;
        }
    }
    // Patching is the common outcome. A summary declines when a failed re-analysis takes a
    // call out of a full list; a page only when a listed call moves or leaves, which no
    // delivery does today (a call's start is kept once stored; deletion is not a delivery),
    // so the unit tests below hold those cases.
    for (what, t) in [("pages", &pages), ("summaries", &summaries)] {
        assert!(t.patched > 4 * t.declined, "{what}: {t:?}");
    }
    assert!(summaries.declined > 0, "{summaries:?}");
}

/// Where `payload` lists its calls: as a patch handed it over, or found in its text for a
/// payload just loaded.
fn listing_of(payload: &Payload, at: usize) -> Option<Vec<Listed>> {
    super::listed(payload, at, at == 0).map(|l| l.to_vec())
}

fn item(started_at: i64, id: &str) -> Item<'_> {
    Item {
        started_at,
        id: Cow::Borrowed(id),
        json: id,
    }
}

fn ids(spliced: Option<(Vec<Item<'_>>, bool)>) -> Option<(Vec<String>, bool)> {
    spliced.map(|(items, more)| (items.iter().map(|i| i.id.to_string()).collect(), more))
}

fn listed() -> Vec<Item<'static>> {
    vec![item(30, "C"), item(20, "B"), item(10, "A")]
}

#[test]
fn a_listed_call_moving_later_than_the_end_of_a_full_list_is_not_patched() {
    // Its third place may belong to a call beyond the list, which the list does not hold.
    assert_eq!(
        ids(splice(listed(), 3, true, "C", Some(item(5, "C")))),
        None
    );
    // Updated in place, or moved earlier, the last call keeps its place.
    assert_eq!(
        ids(splice(listed(), 3, true, "A", Some(item(10, "A")))),
        Some((vec!["C".into(), "B".into(), "A".into()], true))
    );
    assert_eq!(
        ids(splice(listed(), 3, true, "A", Some(item(15, "A")))),
        Some((vec!["C".into(), "B".into(), "A".into()], true))
    );
    assert_eq!(
        ids(splice(listed(), 3, true, "A", Some(item(9, "A")))),
        None
    );
    // Without calls beyond the list, it simply moves to the end.
    assert_eq!(
        ids(splice(listed(), 3, false, "C", Some(item(5, "C")))),
        Some((vec!["B".into(), "A".into(), "C".into()], false))
    );
}

#[test]
fn a_call_leaving_a_full_list_is_not_patched_and_one_beyond_it_changes_nothing() {
    assert_eq!(ids(splice(listed(), 3, true, "B", None)), None);
    assert_eq!(
        ids(splice(listed(), 3, false, "B", None)),
        Some((vec!["C".into(), "A".into()], false))
    );
    assert_eq!(
        ids(splice(listed(), 3, true, "Z", Some(item(1, "Z")))),
        Some((vec!["C".into(), "B".into(), "A".into()], true)),
        "a call sorting after a full list stays beyond it"
    );
}

#[test]
fn a_new_call_inside_a_full_list_pushes_the_last_one_out_and_ties_sort_by_id() {
    assert_eq!(
        ids(splice(listed(), 3, false, "D", Some(item(20, "D")))),
        Some((vec!["C".into(), "D".into(), "B".into()], true)),
        "a full list without more gains more"
    );
    assert_eq!(
        ids(splice(listed(), 3, true, "AA", Some(item(20, "AA")))),
        Some((vec!["C".into(), "B".into(), "AA".into()], true))
    );
}
