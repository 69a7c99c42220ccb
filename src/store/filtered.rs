//! The dashboard's questions beyond the plain list: filtered pages and ranged summaries.
//!
//! A filtered page is one statement (`sql::FILTERED_PAGE*`), with its version in the same
//! batch: one index range scan, newest first, that matches what its index cannot decide as it
//! reads and stops after [`FILTER_SCAN_ROWS`] rows past the offset (a page that came back
//! short then asks, in a second query, where the scan stopped, for its next cursor). A ranged summary reads the per-day aggregates of
//! `migrations/0010` (one row per day, its intents in it) and the newest analyzed calls
//! of the range: its cost grows with days, never with the calls it counts.

use super::{
    call_jsons, round4, sql, Columns, Database, FromRow, RowSet, SqlValue, Statement, Store,
};
use crate::domain::{
    CallFilter, CallId, Cursor, DayRange, DayStats, IntentCounts, IntentStats, PagePosition,
    PageRequest, SummaryRequest, Timestamp, UserId, Version,
};
use crate::error::{AppError, AppResult, Context};
use crate::reads::{json_array, ranged_summary_json, PageMeta, Payload};

/// The most rows a filtered page scans beyond its offset. A filter its index decides (one
/// status, an intent, a range) reads `limit + 1` rows; one matched row by row (several
/// statuses, a direction) reads about `(limit + 1) / share of calls matching`, and stops
/// here: the page then holds the matches found, and `nextCursor` continues after the last
/// call scanned (finding that call reads the scan's rows once more).
pub const FILTER_SCAN_ROWS: u32 = 2_000;

struct ScannedRow {
    s: i64,
    i: String,
}

impl FromRow for ScannedRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(ScannedRow {
            s: row.int("s")?,
            i: row.text("i")?,
        })
    }
}

/// A filtered page's statement, and, when it matches rows its index does not decide, the
/// statement that says where its scan stopped.
pub(super) struct FilteredStatements {
    pub page: Statement,
    pub stop: Option<Statement>,
}

struct DayRow {
    day: i64,
    total_calls: i64,
    answered_calls: i64,
    completed_analyses: i64,
    confidence_micros: i64,
    /// `{"<hex of the intent>": count, …}` (`migrations/0010`).
    intents: String,
}

impl FromRow for DayRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(DayRow {
            day: row.int("day")?,
            total_calls: row.int("total_calls")?,
            answered_calls: row.int("answered_calls")?,
            completed_analyses: row.int("completed_analyses")?,
            confidence_micros: row.int("confidence_micros")?,
            intents: row.text("intents")?,
        })
    }
}

impl<D: Database> Store<D> {
    /// A page of the user's calls that `page.filter` selects, and the version it reflects.
    pub(super) async fn load_filtered_page(
        &self,
        user: &UserId,
        page: &PageRequest,
    ) -> AppResult<(Payload, Version)> {
        let FilteredStatements { page: st, stop } = filtered_page_statement(user, page)?;
        // With the version in the same batch: a page that matched nothing carries no row to
        // hold it, and running a scan of thousands of rows again to learn it would double
        // the cost of exactly the pages that cost most.
        let (rows, version) = self
            .with_version(user, st, "loading a filtered page")
            .await?;
        let places: Vec<ScannedRow> = rows.decode()?;
        let mut calls = call_jsons(&rows)?;
        let limit = page.limit.get() as usize;
        let next_at = if calls.len() > limit {
            calls.truncate(limit);
            places.get(limit - 1).map(|p| (p.s, p.i.clone()))
        } else {
            match stop {
                Some(stop) => {
                    let rows = self.query(stop).await.context("ending a filtered scan")?;
                    rows.decode::<ScannedRow>()?
                        .into_iter()
                        .next()
                        .map(|p| (p.s, p.i))
                }
                None => None,
            }
        };
        let next_cursor = next_at
            .map(|(s, i)| cursor_at(s, &i, &page.filter))
            .transpose()?;
        let meta = PageMeta {
            count: calls.len(),
            next_cursor,
        };
        Ok((Payload::from_json(json_array(&calls), Some(meta)), version))
    }

    /// The intent summary over whole days: per-day aggregates, the newest analyzed calls
    /// started in the range, and the version, in one batch.
    pub(super) async fn load_ranged_summary(
        &self,
        user: &UserId,
        limit: crate::domain::Limit,
        range: DayRange,
    ) -> AppResult<(Payload, Version)> {
        let days: Vec<SqlValue> = vec![
            user.as_str().into(),
            range.first_day().into(),
            range.end_day().into(),
        ];
        let calls = vec![
            user.as_str().into(),
            range.from().millis().into(),
            range.to().millis().into(),
            i64::from(limit.get()).into(),
        ];
        let results = self
            .batch(vec![
                Statement::new(sql::DAY_STATS, days),
                Statement::new(sql::RANGED_ANALYZED_CALLS_JSON, calls),
                super::version_statement(user),
            ])
            .await
            .context("loading a ranged intent summary")?;
        let [stats, calls, version] = <[D::Rows; 3]>::try_from(results)
            .map_err(|_| AppError::internal("ranged summary batch: wrong result count"))?;
        let (stats, daily) = day_series(range, stats.decode()?)?;
        let calls = super::call_list(&calls)?;
        let json = ranged_summary_json(&calls.json, &stats, &daily)?;
        Ok((
            Payload::from_json(json, None),
            super::decode_version(&version)?,
        ))
    }

    /// The summary a request asks for: all time, or whole days.
    pub(super) async fn load_any_summary(
        &self,
        user: &UserId,
        req: &SummaryRequest,
    ) -> AppResult<(Payload, Version)> {
        match req.range {
            None => self.load_summary_json(user, req.limit).await,
            Some(range) => self.load_ranged_summary(user, req.limit, range).await,
        }
    }
}

/// The statements for a filtered page: the index that decides most of the filter, and the
/// rest matched as the scan reads.
pub(super) fn filtered_page_statement(
    user: &UserId,
    page: &PageRequest,
) -> AppResult<FilteredStatements> {
    let f = &page.filter;
    let (sql, stop_sql, way_in, residual_statuses) = match (&f.intent, f.statuses()) {
        (Some(intent), statuses) => (
            sql::FILTERED_PAGE_BY_INTENT,
            sql::FILTERED_SCAN_STOP_BY_INTENT,
            SqlValue::Text(intent.clone()),
            statuses,
        ),
        (None, [one]) => (
            sql::FILTERED_PAGE_BY_STATUS,
            sql::FILTERED_SCAN_STOP_BY_STATUS,
            one.as_str().into(),
            &[][..],
        ),
        (None, statuses) => (
            sql::FILTERED_PAGE,
            sql::FILTERED_SCAN_STOP,
            SqlValue::Null,
            statuses,
        ),
    };
    let statuses = if residual_statuses.is_empty() {
        SqlValue::Null
    } else {
        let mut list = String::from(",");
        for s in residual_statuses {
            list.push_str(s.as_str());
            list.push(',');
        }
        SqlValue::Text(list)
    };
    let residual = statuses != SqlValue::Null || f.direction.is_some();
    // With no cursor the bound is past every call: no start reaches `i64::MAX`, so the row
    // value comparison is decided by the start alone.
    let (after_ms, after_id, offset) = match &page.position {
        PagePosition::Offset(o) => (i64::MAX, "", *o),
        PagePosition::After(c) => (c.started_at.millis(), c.id.as_str(), 0),
    };
    let scan = i64::from(offset)
        .checked_add(i64::from(FILTER_SCAN_ROWS))
        .ok_or_else(|| AppError::internal("a scan bound past i64"))?;
    let params: Vec<SqlValue> = vec![
        user.as_str().into(),
        f.from.map_or(i64::MIN, Timestamp::millis).into(),
        f.to.map_or(i64::MAX, Timestamp::millis).into(),
        after_ms.into(),
        after_id.into(),
        statuses,
        f.direction
            .map_or(SqlValue::Null, |d| SqlValue::from(d.as_str())),
        way_in,
        scan.into(),
        i64::from(offset).into(),
        (i64::from(page.limit.get()) + 1).into(),
    ];
    let stop = residual.then(|| Statement::new(stop_sql, params[..9].to_vec()));
    Ok(FilteredStatements {
        page: Statement::new(sql, params),
        stop,
    })
}

fn cursor_at(started_at: i64, id: &str, filter: &CallFilter) -> AppResult<String> {
    let id =
        CallId::parse(id).ok_or_else(|| AppError::internal("a stored call id is malformed"))?;
    let cursor = Cursor {
        started_at: Timestamp::from_millis(started_at),
        id,
    };
    Ok(cursor.encode_for(filter.tag().as_deref()))
}

/// A day's intent distribution from its `intents` column: hex keys back to the intents.
fn day_intents(json: &str) -> AppResult<IntentCounts> {
    let bad = || AppError::internal("a day's intents are malformed");
    let by_hex = crate::json::parse(json.as_bytes()).map_err(|_| bad())?;
    let mut by_intent = IntentCounts::new();
    for (key, n) in by_hex.as_object().ok_or_else(bad)? {
        let intent = crate::hex::decode(key)
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(bad)?;
        by_intent.set(intent, n.as_i64().ok_or_else(bad)?);
    }
    Ok(by_intent)
}

/// The range's totals and one entry per day, oldest first, zeros included.
fn day_series(range: DayRange, mut days: Vec<DayRow>) -> AppResult<(IntentStats, Vec<DayStats>)> {
    // The rows in day order, walked beside the range's days (a day given twice keeps its last
    // row; the table's key makes that moot).
    crate::sort::sort_by_key(&mut days, |d| d.day);
    let mut rows = days.into_iter().peekable();
    let avg = |micros: i64, n: i64| {
        if n > 0 {
            round4(micros as f64 / 1_000_000.0 / n as f64)
        } else {
            0.0
        }
    };
    let (mut total, mut answered, mut completed, mut micros) = (0i64, 0i64, 0i64, 0i64);
    let mut all_intents = IntentCounts::new();
    let mut daily = Vec::with_capacity(range.days().count());
    for day in range.days() {
        let date = Timestamp::date_of_day(day);
        let mut row = None;
        while let Some(d) = rows.next_if(|d| d.day <= day) {
            if d.day == day {
                row = Some(d);
            }
        }
        let Some(d) = row else {
            daily.push(DayStats::empty(date));
            continue;
        };
        let intents = day_intents(&d.intents)?;
        for (intent, n) in intents.iter() {
            all_intents.add(intent, n);
        }
        total = total.saturating_add(d.total_calls);
        answered = answered.saturating_add(d.answered_calls);
        completed = completed.saturating_add(d.completed_analyses);
        micros = micros.saturating_add(d.confidence_micros);
        daily.push(DayStats {
            date,
            total_calls: d.total_calls,
            answered_calls: d.answered_calls,
            completed_analyses: d.completed_analyses,
            avg_confidence: avg(d.confidence_micros, d.completed_analyses),
            intent_distribution: intents,
        });
    }
    let stats = IntentStats {
        total_calls: total,
        answered_calls: answered,
        avg_confidence: avg(micros, completed),
        intent_distribution: all_intents,
    };
    Ok((stats, daily))
}

#[cfg(test)]
mod day_series_tests {
    use super::*;

    fn row(day: i64, calls: i64, intents: &str) -> DayRow {
        DayRow {
            day,
            total_calls: calls,
            answered_calls: calls,
            completed_analyses: 1,
            confidence_micros: 500_000,
            intents: intents.to_owned(),
        }
    }

    #[test]
    fn a_day_series_is_the_same_whatever_order_its_rows_come_in() {
        let day = crate::domain::MS_PER_DAY;
        let range = DayRange::new(
            Timestamp::from_millis(10 * day),
            Timestamp::from_millis(15 * day),
        )
        .expect("a five-day range");
        // "billing" and "sales", hex-encoded as the table keeps them; day 9 is outside.
        let rows = || {
            vec![
                row(13, 2, r#"{"62696c6c696e67":2}"#),
                row(9, 5, r#"{"73616c6573":5}"#),
                row(10, 3, r#"{"73616c6573":1,"62696c6c696e67":2}"#),
            ]
        };
        let (stats, daily) = day_series(range, rows()).expect("a series");
        let mut reversed = rows();
        reversed.reverse();
        assert_eq!(
            day_series(range, reversed).expect("a series"),
            (stats.clone(), daily.clone())
        );
        let totals: Vec<i64> = daily.iter().map(|d| d.total_calls).collect();
        assert_eq!(totals, [3, 0, 0, 2, 0]);
        assert_eq!(stats.total_calls, 5);
        let intents: Vec<(String, i64)> = stats.intent_distribution.into_iter().collect();
        assert_eq!(
            intents,
            [("billing".to_owned(), 4), ("sales".to_owned(), 1)]
        );
    }
}
