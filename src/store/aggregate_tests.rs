//! The aggregates against a model: random histories of calls, status changes, analyses,
//! re-analyses, deletions and moved start times go through the real ingest and deletion
//! paths, and after every step each aggregate — all time, per day, per day and intent — must
//! equal a recount from the raw rows.

use super::sqlite::SqliteDatabase;
use super::*;
use crate::cache::sim::Rng;
use crate::domain::{
    AnalysisReport, AnalysisStatus, CallReport, CallStatus, Delivery, Direction, Event, Owner,
    Provider,
};
use crate::testing::block_on;
use std::collections::BTreeMap;

const T0: i64 = 1_800_000_000_000;
const DAY: i64 = crate::domain::MS_PER_DAY;
const USERS: [&str; 2] = ["ada", "bob"];
const INTENTS: [&str; 3] = ["billing", "sales", "support"];

struct History {
    store: Store<SqliteDatabase>,
    rng: Rng,
    step: u64,
    /// Every call id ever used, with its owner.
    calls: Vec<(String, &'static str)>,
}

impl History {
    fn new(seed: u64) -> Self {
        Self {
            store: Store::new(SqliteDatabase::migrated()),
            rng: Rng::new(seed),
            step: 0,
            calls: Vec::new(),
        }
    }

    fn apply(&mut self, event_type: &str, call: &str, event: Event) {
        self.step += 1;
        let delivery = Delivery {
            provider: Provider::Api,
            key: format!("step-{}", self.step),
            event_type: event_type.into(),
            call_id: Some(CallId::parse(call).expect("valid")),
            events: vec![event],
            received_at: T0 + self.step as i64,
            payload: None,
        };
        block_on(
            self.store
                .ingest(&delivery, &format!("claim-{}", self.step)),
        )
        .unwrap_or_else(|e| panic!("step {}: {e}", self.step));
    }

    /// A start within four days around T0, so calls share days and cross midnights.
    fn some_start(&mut self) -> i64 {
        T0 - 2 * DAY + self.rng.below(4 * DAY as u64) as i64
    }

    fn step_once(&mut self) -> String {
        let known = !self.calls.is_empty();
        let action = self.rng.below(10);
        // Events are numbered in time: a later step is a newer event.
        let at = T0 + 10 * DAY + self.step as i64 * 1000;
        if action < 3 || !known {
            let user = *self.rng.pick(&USERS);
            let id = format!("CA{}", self.calls.len());
            let start = self.rng.chance(0.7).then(|| self.some_start());
            let status = *self.rng.pick(&[
                CallStatus::Ringing,
                CallStatus::InProgress,
                CallStatus::Completed,
                CallStatus::NoAnswer,
            ]);
            self.calls.push((id.clone(), user));
            self.apply(
                "call.upserted",
                &id,
                call_event(&id, user, status, start, at),
            );
            return format!("new call {id} of {user}, {status:?}, start {start:?}");
        }
        let (id, user) = self.rng.pick(&self.calls).clone();
        match action {
            3 | 4 => {
                let status = *self
                    .rng
                    .pick(&[CallStatus::InProgress, CallStatus::Completed]);
                self.apply(
                    "call.upserted",
                    &id,
                    call_event(&id, user, status, None, at),
                );
                format!("{id} now {status:?}")
            }
            5 => {
                let start = self.some_start();
                self.apply(
                    "call.upserted",
                    &id,
                    call_event(&id, user, CallStatus::Completed, Some(start), at),
                );
                format!("{id} reported to start at {start}")
            }
            6 | 7 => {
                let intent = self
                    .rng
                    .chance(0.9)
                    .then(|| (*self.rng.pick(&INTENTS)).to_owned());
                let confidence = self.rng.below(101) as f64 / 100.0;
                let status = if self.rng.chance(0.8) {
                    AnalysisStatus::Completed
                } else {
                    AnalysisStatus::Failed
                };
                // Sometimes for an id no call has yet: the analysis waits for its call.
                let target = if self.rng.chance(0.1) {
                    format!("CA{}", self.calls.len())
                } else {
                    id
                };
                let report = AnalysisReport {
                    call_id: CallId::parse(&target).expect("valid"),
                    owner: Owner {
                        user: Some(UserId::parse(user).expect("valid")),
                        number: None,
                    },
                    status,
                    intent: intent.clone(),
                    confidence: Some(confidence),
                    summary: None,
                    at,
                };
                let kind = match status {
                    AnalysisStatus::Completed => "call.analysis.completed",
                    _ => "call.analysis.failed",
                };
                self.apply(kind, &target, Event::Analysis(report));
                format!("{target} analysed {status:?} {intent:?} {confidence}")
            }
            _ => {
                let deleted = block_on(self.store.delete_call(
                    &UserId::parse(user).expect("valid"),
                    &CallId::parse(&id).expect("valid"),
                    Timestamp::from_millis(at),
                ))
                .expect("deletes");
                format!("{id} deleted: {deleted:?}")
            }
        }
    }

    fn rows(&self, sql: &str) -> Vec<serde_json::Value> {
        self.store.db_rows(sql)
    }
}

fn call_event(id: &str, user: &str, status: CallStatus, started_at: Option<i64>, at: i64) -> Event {
    Event::Call(CallReport {
        call_id: CallId::parse(id).expect("valid"),
        owner: Owner {
            user: Some(UserId::parse(user).expect("valid")),
            number: None,
        },
        provider: Provider::Api,
        direction: Direction::Inbound,
        from: "+15550001111".into(),
        to: "+14155550199".into(),
        status,
        started_at,
        ended_at: None,
        duration_seconds: None,
        at,
    })
}

/// `(total, answered, completed, confidence in millionths)` per key, from rows of
/// `[key…, total, answered, completed, micros]`.
type Counts = BTreeMap<String, (i64, i64, i64, i64)>;

fn counts(rows: Vec<serde_json::Value>, keys: &[&str]) -> Counts {
    rows.into_iter()
        .map(|r| {
            let key = keys
                .iter()
                .map(|k| r[*k].to_string())
                .collect::<Vec<_>>()
                .join("/");
            let n = |k: &str| r[k].as_i64().unwrap_or(0);
            (key, (n("t"), n("a"), n("c"), n("m")))
        })
        .collect()
}

fn check(h: &History, trace: &[String]) {
    let fail = |what: &str, got: &dyn std::fmt::Debug, want: &dyn std::fmt::Debug| {
        panic!(
            "{what} differ from a recount after:\n{}\n got {got:?}\nwant {want:?}",
            trace.join("\n")
        )
    };
    // Per day: a call counts on the UTC day it started, its analysis there when it is
    // completed and the call's owner's.
    let day = "(c.started_at - ((c.started_at % 86400000) + 86400000) % 86400000) / 86400000";
    let joined = "FROM calls c LEFT JOIN analyses a ON a.call_id = c.id AND a.user_id = c.user_id \
         AND a.status = 'completed'";
    let want = counts(
        h.rows(&format!(
            "SELECT c.user_id AS u, {day} AS d, COUNT(*) AS t, SUM(c.answered) AS a, \
             COUNT(a.call_id) AS c, \
             SUM(CASE WHEN a.call_id IS NULL THEN 0 \
                 ELSE CAST(round(COALESCE(a.confidence, 0) * 1000000) AS INTEGER) END) AS m \
             {joined} GROUP BY 1, 2"
        )),
        &["u", "d"],
    );
    let got = counts(
        h.rows(
            "SELECT user_id AS u, day AS d, total_calls AS t, answered_calls AS a, \
             completed_analyses AS c, confidence_micros AS m FROM user_days",
        ),
        &["u", "d"],
    );
    if got != want {
        fail("per-day aggregates", &got, &want);
    }
    let want = counts(
        h.rows(&format!(
            "SELECT c.user_id AS u, {day} AS d, COALESCE(a.intent, 'unknown') AS i, \
             COUNT(*) AS t FROM calls c JOIN analyses a ON a.call_id = c.id \
             AND a.user_id = c.user_id AND a.status = 'completed' GROUP BY 1, 2, 3"
        )),
        &["u", "d", "i"],
    );
    let got = counts(
        // Each day's `intents` object, keyed by the hex of each intent, as rows.
        h.rows(
            "SELECT d.user_id AS u, d.day AS d, CAST(unhex(j.key) AS TEXT) AS i, j.value AS t \
             FROM user_days d, json_each(d.intents) j",
        ),
        &["u", "d", "i"],
    );
    if got != want {
        fail("per-day intents", &got, &want);
    }
    // All time: every call, and every completed analysis of the user, with a call or not.
    let want = counts(
        h.rows(
            "SELECT u.user_id AS u, \
               (SELECT COUNT(*) FROM calls WHERE user_id = u.user_id) AS t, \
               (SELECT COALESCE(SUM(answered), 0) FROM calls WHERE user_id = u.user_id) AS a, \
               (SELECT COUNT(*) FROM analyses WHERE user_id = u.user_id \
                  AND status = 'completed') AS c, \
               (SELECT CAST(round(COALESCE(SUM(confidence), 0) * 1000) AS INTEGER) \
                  FROM analyses WHERE user_id = u.user_id AND status = 'completed') AS m \
             FROM (SELECT user_id FROM calls UNION SELECT user_id FROM analyses) u",
        ),
        &["u"],
    );
    // The all-time confidence sum is a REAL: compared in thousandths, after rounding.
    let got = counts(
        h.rows(
            "SELECT user_id AS u, total_calls AS t, answered_calls AS a, \
             completed_analyses AS c, CAST(round(confidence_sum * 1000) AS INTEGER) AS m \
             FROM user_stats WHERE total_calls > 0 OR completed_analyses > 0",
        ),
        &["u"],
    );
    let want: Counts = want
        .into_iter()
        .filter(|(_, (t, _, c, _))| *t > 0 || *c > 0)
        .collect();
    if got != want {
        fail("all-time aggregates", &got, &want);
    }
    let want = counts(
        h.rows(
            "SELECT user_id AS u, COALESCE(intent, 'unknown') AS i, COUNT(*) AS t \
             FROM analyses WHERE status = 'completed' GROUP BY 1, 2",
        ),
        &["u", "i"],
    );
    let got = counts(
        h.rows("SELECT user_id AS u, intent AS i, calls AS t FROM user_intents WHERE calls > 0"),
        &["u", "i"],
    );
    if got != want {
        fail("all-time intents", &got, &want);
    }
}

#[test]
fn every_aggregate_equals_a_recount_from_the_raw_rows_after_every_step_of_random_histories() {
    for seed in 0..12 {
        let mut h = History::new(seed);
        let mut trace = vec![format!("seed {seed}")];
        for _ in 0..120 {
            let line = h.step_once();
            trace.push(line);
            check(&h, &trace);
        }
    }
}

#[test]
fn a_ranged_summary_adds_up_its_days_and_matches_the_all_time_one_over_every_day() {
    let mut h = History::new(99);
    for _ in 0..300 {
        h.step_once();
    }
    let limit = crate::domain::Limit::new(500, 500).expect("valid");
    let range = crate::domain::DayRange::new(
        Timestamp::from_millis((T0 / DAY - 3) * DAY),
        // Starts are reported within two days of T0, or inferred from event times, ten days on.
        Timestamp::from_millis((T0 / DAY + 13) * DAY),
    )
    .expect("a range");
    for user in USERS {
        let u = UserId::parse(user).expect("valid");
        let (ranged, _) = block_on(h.store.load_ranged_summary(&u, limit, range)).expect("loads");
        let v: serde_json::Value = serde_json::from_str(&ranged.data_json()).expect("JSON");
        let daily = v["daily"].as_array().expect("a daily series");
        assert_eq!(daily.len(), 16, "every day of the range, zeros included");
        let sum = |k: &str| {
            daily
                .iter()
                .map(|d| d[k].as_i64().unwrap_or(0))
                .sum::<i64>()
        };
        assert_eq!(v["stats"]["totalCalls"].as_i64(), Some(sum("totalCalls")));
        assert_eq!(
            v["stats"]["answeredCalls"].as_i64(),
            Some(sum("answeredCalls"))
        );
        // Every call started in the range: its counts are the all-time ones for calls.
        let (all, _) = block_on(h.store.load_intent_summary(&u, limit)).expect("loads");
        assert_eq!(
            v["stats"]["totalCalls"].as_i64(),
            Some(all.stats.total_calls)
        );
        assert_eq!(
            v["stats"]["answeredCalls"].as_i64(),
            Some(all.stats.answered_calls)
        );
        // The listed calls are the analyzed ones of the range, newest first.
        let listed = v["calls"].as_array().expect("calls").len() as i64;
        let analyzed = h.rows(&format!(
            "SELECT COUNT(*) AS n FROM calls WHERE user_id = '{user}' AND analyzed = 1"
        ))[0]["n"]
            .as_i64();
        assert_eq!(Some(listed), analyzed);
        let dates: Vec<&str> = daily.iter().filter_map(|d| d["date"].as_str()).collect();
        let mut sorted = dates.clone();
        sorted.sort_unstable();
        assert_eq!(dates, sorted, "oldest first");
    }
}

#[test]
fn any_intent_a_pipeline_sends_comes_back_as_it_was_in_the_daily_distribution() {
    let h = History::new(1);
    let odd = ["a.\"b", "$.x[0]", "ünï cödé", "unknown", "' OR 1=1 --"];
    for (n, intent) in odd.iter().enumerate() {
        let at = T0 + n as i64;
        h.store.db_exec(&format!(
            "INSERT INTO analyses (call_id, user_id, status, intent, confidence, updated_at) \
             VALUES ('CA{n}', 'ada', 'completed', '{}', 0.5, {at}); \
             INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
             status_rank, answered, started_at, created_at, updated_at) VALUES ('CA{n}', 'ada', \
             'api', 'inbound', '+1', '+2', 'completed', 3, 1, {at}, {at}, {at})",
            intent.replace('\'', "''")
        ));
    }
    let range = crate::domain::DayRange::new(
        Timestamp::from_millis((T0 / DAY) * DAY),
        Timestamp::from_millis((T0 / DAY + 1) * DAY),
    )
    .expect("a day");
    let limit = crate::domain::Limit::new(10, 500).expect("valid");
    let u = UserId::parse("ada").expect("valid");
    let (summary, _) = block_on(h.store.load_ranged_summary(&u, limit, range)).expect("loads");
    let v: serde_json::Value = serde_json::from_str(&summary.data_json()).expect("JSON");
    let mut want: Vec<&str> = odd.to_vec();
    want.sort_unstable();
    let got: Vec<&str> = v["daily"][0]["intentDistribution"]
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(got, want);
    assert_eq!(v["stats"]["intentDistribution"]["a.\"b"], 1);
}
