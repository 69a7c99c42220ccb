//! The D1 repository: SQL lives here and only here.
//!
//! [`Store`] builds [`Statement`]s and decodes rows; it talks to the database through the
//! small [`Database`] trait. A call comes back as one JSON array of its values
//! (`sql::call_values!`), which `rows` writes as the API's call, and a list of calls as one
//! JSON array of those (`sql::call_json_array!`),
//! with the user's version in the same statement: a page crosses from D1 as one string, which
//! the response and the cache use as they are. (Filtered pages still read a text per call:
//! they need each row's place to say where a scan stopped.) (The
//! column-by-column reads into domain values remain, for the tests, which hold the two to the
//! same bytes.) On Workers that is D1 (`runtime/d1.rs`); in host tests it is a
//! real SQLite with the same migrations (`sqlite.rs`), so the queries, the aggregate triggers
//! and the query plans are all tested off the runtime.
//!
//! Per-user aggregates (`user_stats`, `user_intents`) and the `calls.analyzed` flag are kept by
//! triggers declared in `migrations/`: they change in the same statement, hence the same batch
//! and transaction, as the row that moved them, whoever writes it. The intent summary reads
//! them instead of the user's calls. Filtered pages and ranged summaries (`filtered.rs`) work the
//! same way: per-day aggregates kept by the triggers of `migrations/0010`, and one index range
//! scan per filtered page, bounded when its filter is matched row by row.

#[cfg(test)]
mod aggregate_tests;
mod filtered;
#[cfg(test)]
mod filtered_tests;
mod ingest;
#[cfg(test)]
mod ingest_tests;
#[cfg(test)]
mod listener_tests;
mod listeners;
mod rows;
pub mod sql;
#[cfg(test)]
pub mod sqlite;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod version_tests;

use crate::domain::{
    CallId, Cursor, IntentCounts, IntentStats, Limit, PagePosition, PageRequest, SummaryRequest,
    Timestamp, UserId, Version, E164,
};
#[cfg(test)]
use crate::domain::{CallPage, IntentSummary};
use crate::error::{AppError, AppResult, Context};
use crate::reads::{summary_json, PageMeta, Payload, ReadModel, Served};
pub use filtered::FILTER_SCAN_ROWS;
#[cfg(test)]
pub(crate) use ingest::delivery_digest;
pub use ingest::{ChangedCall, Ingested, RefreshAsk, Refreshed};
pub use listeners::Listening;
#[cfg(test)]
use rows::CallRow;
use rows::{AnalysisRow, EnrichmentRow, IntentRow, ListRow, RowVersion, StatsRow};
use std::cell::Cell;

/// A value bound to a statement parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_owned())
    }
}

impl From<i64> for SqlValue {
    fn from(n: i64) -> Self {
        SqlValue::Integer(n)
    }
}

impl From<Option<f64>> for SqlValue {
    fn from(n: Option<f64>) -> Self {
        n.map_or(SqlValue::Null, SqlValue::Real)
    }
}

/// SQL text with its positional parameters (`?1`, `?2`, …).
#[derive(Debug, Clone, PartialEq)]
pub struct Statement {
    pub sql: &'static str,
    pub params: Vec<SqlValue>,
}

impl Statement {
    pub fn new(sql: &'static str, params: Vec<SqlValue>) -> Self {
        Self { sql, params }
    }
}

/// What the database reports about one statement's cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueryMeta {
    pub rows_read: u64,
    pub rows_written: u64,
    pub changes: u64,
}

/// One row as the database returned it, read column by column.
pub trait Row {
    /// The value of `column`: `None` when the row has no such column.
    fn value(&self, column: &str) -> Option<SqlValue>;
}

/// A row type, read from a row by its column names. Written out per type: a derived decoder
/// per row type, through serde and `serde-wasm-bindgen`, was 17 KB of the module (2.4 KB
/// gzipped).
pub trait FromRow: Sized {
    fn from_row(row: &Columns<'_>) -> AppResult<Self>;
}

/// A row's columns, each read as the type its row type declares. A column that is absent or
/// holds another type is an error naming it; for an optional one, absent is `None`.
pub struct Columns<'a>(&'a dyn Row);

impl<'a> Columns<'a> {
    pub fn new(row: &'a dyn Row) -> Self {
        Columns(row)
    }

    fn wrong(column: &str, kind: &str) -> AppError {
        AppError::internal(format!("decoding a row: `{column}` is not {kind}"))
    }

    pub fn opt_int(&self, column: &str) -> AppResult<Option<i64>> {
        match self.0.value(column) {
            None | Some(SqlValue::Null) => Ok(None),
            Some(SqlValue::Integer(n)) => Ok(Some(n)),
            Some(_) => Err(Self::wrong(column, "an integer")),
        }
    }

    pub fn int(&self, column: &str) -> AppResult<i64> {
        self.opt_int(column)?
            .ok_or_else(|| Self::wrong(column, "an integer"))
    }

    /// An integer that is not negative.
    pub fn count(&self, column: &str) -> AppResult<u64> {
        u64::try_from(self.int(column)?).map_err(|_| Self::wrong(column, "a count"))
    }

    /// A number: a REAL, or an INTEGER (SQLite stores a whole REAL as one, and D1 hands both
    /// to JavaScript as a number).
    pub fn opt_real(&self, column: &str) -> AppResult<Option<f64>> {
        match self.0.value(column) {
            None | Some(SqlValue::Null) => Ok(None),
            Some(SqlValue::Real(f)) => Ok(Some(f)),
            Some(SqlValue::Integer(n)) => Ok(Some(n as f64)),
            Some(_) => Err(Self::wrong(column, "a number")),
        }
    }

    pub fn real(&self, column: &str) -> AppResult<f64> {
        self.opt_real(column)?
            .ok_or_else(|| Self::wrong(column, "a number"))
    }

    pub fn opt_text(&self, column: &str) -> AppResult<Option<String>> {
        match self.0.value(column) {
            None | Some(SqlValue::Null) => Ok(None),
            Some(SqlValue::Text(s)) => Ok(Some(s)),
            Some(_) => Err(Self::wrong(column, "text")),
        }
    }

    pub fn text(&self, column: &str) -> AppResult<String> {
        self.opt_text(column)?
            .ok_or_else(|| Self::wrong(column, "text"))
    }
}

/// The rows of one statement, decoded on demand into a row type.
pub trait RowSet {
    fn decode<T: FromRow>(&self) -> AppResult<Vec<T>>;
    /// Every row's text `column` (a call's JSON, which D1 built): the one column of a read's
    /// many bytes, so an adapter may move it faster than [`Self::decode`] would.
    fn texts(&self, column: &str) -> AppResult<Vec<String>>;
    fn meta(&self) -> QueryMeta;
}

/// The least the store needs from a SQL database.
#[allow(async_fn_in_trait)] // single-threaded wasm: the futures never cross threads
pub trait Database {
    type Rows: RowSet;
    async fn query(&self, statement: Statement) -> AppResult<Self::Rows>;
    /// Runs the statements in one round trip and one transaction.
    async fn batch(&self, statements: Vec<Statement>) -> AppResult<Vec<Self::Rows>>;
}

/// D1 work done by this store, for the request's log line and the benchmark.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub queries: u64,
    pub rows_read: u64,
    pub rows_written: u64,
}

pub struct Store<D> {
    db: D,
    usage: Cell<Usage>,
}

/// The admin side of phone-number routing.
#[allow(async_fn_in_trait)]
pub trait PhoneDirectory {
    /// Routes `number` to `user`; `true` when the number was not routed before.
    async fn put_route(&self, number: &E164, user: &UserId, now: Timestamp) -> AppResult<bool>;
    /// Removes the route; `false` when there was none.
    async fn delete_route(&self, number: &E164) -> AppResult<bool>;
}

impl<D: Database> Store<D> {
    pub fn new(db: D) -> Self {
        Self {
            db,
            usage: Cell::new(Usage::default()),
        }
    }

    /// Runs raw SQL against the test database (fixtures).
    #[cfg(test)]
    pub fn db_exec(&self, sql: &str)
    where
        D: AsRef<sqlite::SqliteDatabase>,
    {
        self.db.as_ref().exec(sql);
    }

    /// The rows of raw SQL against the test database (assertions).
    #[cfg(test)]
    pub fn db_rows(&self, sql: &str) -> Vec<serde_json::Value>
    where
        D: AsRef<sqlite::SqliteDatabase>,
    {
        self.db.as_ref().rows(sql)
    }

    pub fn usage(&self) -> Usage {
        self.usage.get()
    }

    fn record(&self, statements: u64, meta: QueryMeta) {
        let mut u = self.usage.get();
        u.queries += statements;
        u.rows_read += meta.rows_read;
        u.rows_written += meta.rows_written;
        self.usage.set(u);
    }

    async fn query(&self, st: Statement) -> AppResult<D::Rows> {
        let rows = self.db.query(st).await?;
        self.record(1, rows.meta());
        Ok(rows)
    }

    /// A batch is one round trip, and counts as one query.
    async fn batch(&self, sts: Vec<Statement>) -> AppResult<Vec<D::Rows>> {
        let results = self.db.batch(sts).await?;
        let mut total = QueryMeta::default();
        for r in &results {
            let m = r.meta();
            total.rows_read += m.rows_read;
            total.rows_written += m.rows_written;
        }
        self.record(1, total);
        Ok(results)
    }

    /// Runs `st` and reads `user`'s version in the same batch (one round trip, one
    /// transaction), so the version describes exactly the rows returned.
    async fn with_version(
        &self,
        user: &UserId,
        st: Statement,
        what: &'static str,
    ) -> AppResult<(D::Rows, Version)> {
        let results = self
            .batch(vec![st, version_statement(user)])
            .await
            .context(what)?;
        let [rows, version] = <[D::Rows; 2]>::try_from(results)
            .map_err(|_| AppError::internal("versioned read: wrong result count"))?;
        Ok((rows, decode_version(&version)?))
    }

    /// Runs `st`, whose rows carry `user`'s version as the same statement saw it (`v`): one
    /// query, no batch. With no row there is no version to read, so `st` runs again in a
    /// batch with the version (a 404, an empty page: the rare case).
    async fn versioned_json(
        &self,
        user: &UserId,
        st: Statement,
        what: &'static str,
    ) -> AppResult<(Vec<String>, Version)> {
        let again = st.clone();
        let rows = self.query(st).await.context(what)?;
        let texts = call_jsons(&rows)?;
        if texts.is_empty() {
            let (rows, version) = self.with_version(user, again, what).await?;
            return Ok((call_jsons(&rows)?, version));
        }
        // Every row carries the same version: the first row's is read, not all of them.
        let first = rows
            .decode::<RowVersion>()?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::internal("a versioned read lost its rows"))?;
        let version = u64::try_from(first.v)
            .map(Version::new)
            .map_err(|_| AppError::internal("a negative version"))?;
        Ok((texts, version))
    }

    /// Whether D1 answers at all: one trivial query.
    pub async fn ping(&self) -> AppResult<()> {
        self.query(Statement::new(sql::PING, vec![]))
            .await
            .context("pinging D1")?;
        Ok(())
    }

    /// The intent summary's batch: the user's stats, intent counts, newest `limit` analyzed
    /// calls (by `calls_sql`) and version, in one round trip. The version comes back decoded.
    async fn summary_batch(
        &self,
        user: &UserId,
        limit: Limit,
        calls_sql: &'static str,
    ) -> AppResult<([D::Rows; 3], Version)> {
        let uid: SqlValue = user.as_str().into();
        let results = self
            .batch(vec![
                Statement::new(sql::USER_STATS, vec![uid.clone()]),
                Statement::new(sql::USER_INTENTS, vec![uid.clone()]),
                Statement::new(calls_sql, vec![uid, i64::from(limit.get()).into()]),
                version_statement(user),
            ])
            .await
            .context("loading the intent summary")?;
        let [stats, intents, calls, version] = <[D::Rows; 4]>::try_from(results)
            .map_err(|_| AppError::internal("intent summary batch: wrong result count"))?;
        Ok(([stats, intents, calls], decode_version(&version)?))
    }

    /// A page of the user's calls, newest first, as D1 writes them (one JSON array for the
    /// whole page, `sql::call_json_array!`), and the version it reflects, in one query. Reads
    /// `limit + 1` calls to learn whether a next page exists.
    pub async fn load_page_json(
        &self,
        user: &UserId,
        page: &PageRequest,
    ) -> AppResult<(Payload, Version)> {
        if !page.filter.is_empty() {
            return self.load_filtered_page(user, page).await;
        }
        let st = page_statement(
            user,
            page,
            sql::PAGE_JSON_BY_OFFSET,
            sql::PAGE_JSON_AFTER_CURSOR,
        );
        let rows = self.query(st).await.context("loading a call page")?;
        let list = call_list(&rows)?;
        let version = list
            .version
            .ok_or_else(|| AppError::internal("a page read without its version"))?;
        Ok((page_from_list(list, page.limit)?, version))
    }

    /// One call as D1 writes it, and the version it reflects.
    pub async fn load_call_json(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<(Option<Payload>, Version)> {
        let st = Statement::new(
            sql::CALL_JSON_DETAIL,
            vec![call.as_str().into(), user.as_str().into()],
        );
        let (calls, version) = self.versioned_json(user, st, "loading a call").await?;
        let payload = calls
            .into_iter()
            .next()
            .map(|j| Payload::from_json(j, None));
        Ok((payload, version))
    }

    /// The intent summary, its calls as D1 writes them, and the version it reflects.
    pub async fn load_summary_json(
        &self,
        user: &UserId,
        limit: Limit,
    ) -> AppResult<(Payload, Version)> {
        let ([stats, intents, calls], version) = self
            .summary_batch(user, limit, sql::ANALYZED_CALLS_JSON)
            .await?;
        Ok((summary_from_json(&stats, &intents, &calls)?, version))
    }

    /// A page of the user's calls as domain values (the tests' reference for
    /// [`Self::load_page_json`]).
    #[cfg(test)]
    pub async fn load_call_page(
        &self,
        user: &UserId,
        page: &PageRequest,
    ) -> AppResult<(CallPage, Version)> {
        let st = page_statement(
            user,
            page,
            sql::CALL_PAGE_BY_OFFSET,
            sql::CALL_PAGE_AFTER_CURSOR,
        );
        let (rows, version) = self.with_version(user, st, "loading a call page").await?;
        Ok((page_from_rows(rows.decode()?, page.limit)?, version))
    }

    #[cfg(test)]
    pub async fn load_call(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<(Option<crate::domain::Call>, Version)> {
        let st = Statement::new(
            sql::CALL_DETAIL,
            vec![call.as_str().into(), user.as_str().into()],
        );
        let (rows, version) = self.with_version(user, st, "loading a call").await?;
        let rows: Vec<CallRow> = rows.decode()?;
        let call = rows
            .into_iter()
            .next()
            .map(CallRow::into_call)
            .transpose()?;
        Ok((call, version))
    }

    #[cfg(test)]
    pub async fn load_intent_summary(
        &self,
        user: &UserId,
        limit: Limit,
    ) -> AppResult<(IntentSummary, Version)> {
        let ([stats, intents, calls], version) =
            self.summary_batch(user, limit, sql::ANALYZED_CALLS).await?;
        Ok((summary_from_rows(&stats, &intents, &calls)?, version))
    }

    pub async fn load_analysis(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<(Option<crate::domain::Analysis>, Version)> {
        let st = Statement::new(
            sql::ANALYSIS,
            vec![call.as_str().into(), user.as_str().into()],
        );
        let (rows, version) = self.with_version(user, st, "loading an analysis").await?;
        let rows: Vec<AnalysisRow> = rows.decode()?;
        let analysis = rows
            .into_iter()
            .next()
            .map(AnalysisRow::into_analysis)
            .transpose()?;
        Ok((analysis, version))
    }

    pub async fn load_enrichment(
        &self,
        user: &UserId,
        call: &CallId,
    ) -> AppResult<(Option<crate::domain::Enrichment>, Version)> {
        let st = Statement::new(
            sql::ENRICHMENT,
            vec![call.as_str().into(), user.as_str().into()],
        );
        let (rows, version) = self.with_version(user, st, "loading an enrichment").await?;
        let rows: Vec<EnrichmentRow> = rows.decode()?;
        Ok((
            rows.into_iter().next().map(EnrichmentRow::into_enrichment),
            version,
        ))
    }
}

/// A page from its `limit + 1` rows: the extra row only says that a next page exists.
/// A page's statement: `by_offset` (?1 user, ?2 limit, ?3 offset) or `after_cursor` (?1 user,
/// ?2 cursor startedAt, ?3 cursor id, ?4 limit), reading `limit + 1` rows.
fn page_statement(
    user: &UserId,
    page: &PageRequest,
    by_offset: &'static str,
    after_cursor: &'static str,
) -> Statement {
    let fetch = i64::from(page.limit.get()) + 1;
    match &page.position {
        PagePosition::Offset(offset) => Statement::new(
            by_offset,
            vec![
                user.as_str().into(),
                fetch.into(),
                i64::from(*offset).into(),
            ],
        ),
        PagePosition::After(cursor) => Statement::new(
            after_cursor,
            vec![
                user.as_str().into(),
                cursor.started_at.millis().into(),
                cursor.id.as_str().into(),
                fetch.into(),
            ],
        ),
    }
}

/// A page from the JSON of its `limit + 1` calls: the extra one only says that a next page
/// exists; the last one kept is where it starts.
/// Each row's call (`j`, its values) as the API writes it.
fn call_jsons<R: RowSet>(rows: &R) -> AppResult<Vec<String>> {
    rows.texts("j")?
        .iter()
        .map(|j| rows::call_from_values(j))
        .collect()
}

/// A call list (`sql::call_json_array!`) as the API writes it.
struct CallList {
    json: String,
    count: usize,
    /// The version the statement saw, for a page's statement (`versioned_page_json!`).
    version: Option<Version>,
}

/// The one row of a call list's statement (`sql::call_json_array!`): one text crossing for
/// the whole list, where a row per call cost several crossings each.
fn call_list<R: RowSet>(rows: &R) -> AppResult<CallList> {
    let lost = || AppError::internal("a call list's statement answered no row");
    let json = rows.texts("j")?.into_iter().next().ok_or_else(lost)?;
    let row = rows
        .decode::<ListRow>()?
        .into_iter()
        .next()
        .ok_or_else(lost)?;
    let version = row
        .v
        .map(|v| u64::try_from(v).map(Version::new))
        .transpose()
        .map_err(|_| AppError::internal("a negative version"))?;
    Ok(CallList {
        json: rows::calls_from_values(&json)?,
        count: usize::try_from(row.n).map_err(|_| AppError::internal("a call list's count"))?,
        version,
    })
}

/// A page from its list of up to `limit + 1` calls (the statement's `LIMIT`): the extra one
/// only says that a next page exists. A list of no more than `limit` calls is the page's data
/// as it is; a longer one is cut before its last call, found from the end of the text instead
/// of by walking all of it (a page of 100 calls is some 70 KB), and the cursor is read off the
/// last call kept.
fn page_from_list(list: CallList, limit: Limit) -> AppResult<Payload> {
    let max = limit.get() as usize;
    if list.count <= max {
        let meta = PageMeta {
            count: list.count,
            next_cursor: None,
        };
        return Ok(Payload::from_json(list.json, Some(meta)));
    }
    let misshapen = || AppError::internal("a call list of an unexpected shape");
    let text = &list.json;
    let cut = text.rfind(BETWEEN_CALLS).ok_or_else(misshapen)?;
    let last_kept = text[..cut].rfind(BETWEEN_CALLS).map_or(1, |at| at + 1);
    if list.count != max + 1 || !text.starts_with("[{") || !text.ends_with("}]") {
        return Err(misshapen());
    }
    let cursor = Cursor::of_listed_call(&text[last_kept..cut])
        .ok_or_else(|| AppError::internal("a listed call without its id or start"))?;
    let mut data = String::with_capacity(cut + 1);
    data.push_str(&text[..cut]);
    data.push(']');
    let meta = PageMeta {
        count: max,
        next_cursor: Some(cursor.encode()),
    };
    Ok(Payload::from_json(data, Some(meta)))
}

/// Two calls of a list meet here: a call's JSON starts `{"id":` (`rows::CALL_LAYOUT`), and this
/// text occurs nowhere else in a list — inside a string its quote would be escaped, and inside
/// a call a comma is followed by a key, never by `{`.
const BETWEEN_CALLS: &str = ",{\"id\":";

/// A summary from the results of `USER_STATS`, `USER_INTENTS` and `ANALYZED_CALLS_JSON`.
fn summary_from_json<R: RowSet>(stats: &R, intents: &R, calls: &R) -> AppResult<Payload> {
    let calls = call_list(calls)?;
    let stats = stats_from_rows(stats, intents)?;
    Ok(Payload::from_json(summary_json(&calls.json, &stats)?, None))
}

#[cfg(test)]
fn page_from_rows(rows: Vec<CallRow>, limit: Limit) -> AppResult<CallPage> {
    let mut calls = rows
        .into_iter()
        .map(CallRow::into_call)
        .collect::<AppResult<Vec<_>>>()?;
    let next = if calls.len() > limit.get() as usize {
        calls.truncate(limit.get() as usize);
        calls.last().map(|c| Cursor {
            started_at: c.started_at,
            id: c.id.clone(),
        })
    } else {
        None
    };
    Ok(CallPage { calls, next })
}

/// A summary from the results of `USER_STATS`, `USER_INTENTS` and `ANALYZED_CALLS`.
#[cfg(test)]
fn summary_from_rows<R: RowSet>(stats: &R, intents: &R, calls: &R) -> AppResult<IntentSummary> {
    let calls: Vec<CallRow> = calls.decode()?;
    Ok(IntentSummary {
        calls: calls
            .into_iter()
            .map(CallRow::into_call)
            .collect::<AppResult<_>>()?,
        stats: stats_from_rows(stats, intents)?,
    })
}

/// A summary's aggregates from the results of `USER_STATS` and `USER_INTENTS`.
fn stats_from_rows<R: RowSet>(stats: &R, intents: &R) -> AppResult<IntentStats> {
    let stats: Option<StatsRow> = stats.decode()?.into_iter().next();
    let intents: Vec<IntentRow> = intents.decode()?;
    let stats = stats.unwrap_or_default();
    let avg_confidence = if stats.completed_analyses > 0 {
        round4(stats.confidence_sum / stats.completed_analyses as f64)
    } else {
        0.0
    };
    Ok(IntentStats {
        total_calls: stats.total_calls,
        answered_calls: stats.answered_calls,
        avg_confidence,
        intent_distribution: {
            let mut counts = IntentCounts::new();
            for i in intents {
                counts.set(i.intent, i.calls);
            }
            counts
        },
    })
}

/// What a page of calls is sent and cached as, from domain values (the tests' reference).
#[cfg(test)]
pub(crate) fn page_payload(page: &CallPage) -> AppResult<Payload> {
    let meta = PageMeta {
        count: page.calls.len(),
        next_cursor: page.next.as_ref().map(Cursor::encode),
    };
    Payload::new(&page.calls, Some(meta))
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

fn version_statement(user: &UserId) -> Statement {
    Statement::new(sql::VERSION_OF, vec![user.as_str().into()])
}

struct VersionOnly {
    version: i64,
}

impl FromRow for VersionOnly {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(VersionOnly {
            version: row.int("version")?,
        })
    }
}

fn decode_version<R: RowSet>(rows: &R) -> AppResult<Version> {
    let row: Option<VersionOnly> = rows.decode()?.into_iter().next();
    row.and_then(|r| u64::try_from(r.version).ok())
        .map(Version::new)
        .ok_or_else(|| AppError::internal("a version row is missing or negative"))
}

fn optional_payload<T: crate::json_writer::ToJson>(
    (v, version): (Option<T>, Version),
) -> AppResult<Served<Option<Payload>>> {
    Ok(Served::from_d1(
        v.map(|v| Payload::new(&v, None)).transpose()?,
        version,
    ))
}

/// D1 is the newest there is: `at_least` is always met.
impl<D: Database> ReadModel for Store<D> {
    async fn call_page(
        &self,
        user: &UserId,
        page: &PageRequest,
        _at_least: Version,
    ) -> AppResult<Served<Payload>> {
        let (payload, version) = self.load_page_json(user, page).await?;
        Ok(Served::from_d1(payload, version))
    }

    async fn call_detail(
        &self,
        user: &UserId,
        call: &CallId,
        _at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        let (payload, version) = self.load_call_json(user, call).await?;
        Ok(Served::from_d1(payload, version))
    }

    async fn call_enrichment(
        &self,
        user: &UserId,
        call: &CallId,
        _at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        optional_payload(self.load_enrichment(user, call).await?)
    }

    async fn call_analysis(
        &self,
        user: &UserId,
        call: &CallId,
        _at_least: Version,
    ) -> AppResult<Served<Option<Payload>>> {
        optional_payload(self.load_analysis(user, call).await?)
    }

    async fn intent_summary(
        &self,
        user: &UserId,
        request: &SummaryRequest,
        _at_least: Version,
    ) -> AppResult<Served<Payload>> {
        let (payload, version) = self.load_any_summary(user, request).await?;
        Ok(Served::from_d1(payload, version))
    }

    fn usage(&self) -> Usage {
        Store::usage(self)
    }
}

/// Deleting a call at its owner's request.
#[allow(async_fn_in_trait)]
pub trait CallDeletion {
    /// Deletes `call` with its recording reference, analysis and enrichment, in one batch,
    /// and returns the user's version after it; `None` when it is absent or not `user`'s.
    async fn delete_call(
        &self,
        user: &UserId,
        call: &CallId,
        now: Timestamp,
    ) -> AppResult<Option<Version>>;
}

impl<D: Database> CallDeletion for Store<D> {
    async fn delete_call(
        &self,
        user: &UserId,
        call: &CallId,
        now: Timestamp,
    ) -> AppResult<Option<Version>> {
        let call_and_user = || vec![call.as_str().into(), user.as_str().into()];
        let mut mark = call_and_user();
        mark.extend([
            now.millis().into(),
            ingest::call_digest(call.as_str()).as_str().into(),
        ]);
        let mut statements = vec![Statement::new(sql::MARK_DELETED, mark)];
        statements.extend(
            [
                sql::DELETE_RECORDING,
                sql::DELETE_ANALYSIS,
                sql::DELETE_ENRICHMENT,
                sql::FORGET_DELIVERIES,
                sql::DELETE_CALL,
            ]
            .into_iter()
            .map(|s| Statement::new(s, call_and_user())),
        );
        statements.push(version_statement(user));
        statements.push(Statement::new(sql::FORGET_CHANGES, call_and_user()));
        let results = self.batch(statements).await.context("deleting a call")?;
        let [.., deleted, version, _forgotten] = results.as_slice() else {
            return Err(AppError::internal("deletion batch: wrong result count"));
        };
        if deleted.meta().changes == 0 {
            return Ok(None);
        }
        decode_version(version).map(Some)
    }
}

/// The version authority: each user's version, moved forward by the triggers of
/// `migrations/0008` in the same statement as every change to that user's data. The cache
/// learns versions here, never from KV.
#[allow(async_fn_in_trait)]
pub trait VersionSource {
    /// The current version of each of `users`, in their order, in one query however many
    /// users are asked for.
    async fn current_versions(&self, users: &[UserId]) -> AppResult<Vec<Version>>;
    /// The version feed (`migrations/0009`): the users whose version changed after feed
    /// position `after` (at most `limit`, oldest change first) with their current versions,
    /// and where the feed stands — in one batch, so the two agree. `None` asks only where it
    /// stands.
    async fn version_changes(&self, after: Option<u64>, limit: u32) -> AppResult<VersionChanges>;
    /// Moves `user`'s version forward with no data change (an operator purge).
    async fn bump_user(&self, user: &UserId) -> AppResult<Version>;
    /// Moves every user's version forward at once (an operator purge of everything).
    async fn bump_all(&self) -> AppResult<()>;
}

struct VersionRow {
    user_id: String,
    version: i64,
}

impl FromRow for VersionRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(VersionRow {
            user_id: row.text("user_id")?,
            version: row.int("version")?,
        })
    }
}

/// What the version feed said.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionChanges {
    /// The changes after the position asked for, in commit order: the user, the call it was
    /// about (`None`: any of the user's data), and the user's version after it.
    pub changes: Vec<(UserId, Option<CallId>, Version)>,
    /// The feed position this answer is complete through: the head when `complete`, else the
    /// last change listed.
    pub through: u64,
    /// False when `limit` cut the list short: changes after `through` were not listed.
    pub complete: bool,
    /// True when the log no longer holds every change after the position asked for (it keeps
    /// the last 100,000): nothing may be vouched for from that position.
    pub gap: bool,
    /// The purge epoch; when it moves, every user's version moved.
    pub epoch: u64,
}

struct ChangeRow {
    seq: i64,
    user_id: String,
    call_id: Option<String>,
    version: i64,
}

impl FromRow for ChangeRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(ChangeRow {
            seq: row.int("seq")?,
            user_id: row.text("user_id")?,
            call_id: row.opt_text("call_id")?,
            version: row.int("version")?,
        })
    }
}

struct FeedHead {
    seq: i64,
    oldest: Option<i64>,
    epoch: i64,
}

impl FromRow for FeedHead {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(FeedHead {
            seq: row.int("seq")?,
            oldest: row.opt_int("oldest")?,
            epoch: row.int("epoch")?,
        })
    }
}

impl<D: Database> VersionSource for Store<D> {
    async fn current_versions(&self, users: &[UserId]) -> AppResult<Vec<Version>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let ids =
            crate::json_writer::to_string(&users.iter().map(UserId::as_str).collect::<Vec<_>>());
        let st = Statement::new(sql::USER_VERSIONS, vec![ids.as_str().into()]);
        let rows: Vec<VersionRow> = self
            .query(st)
            .await
            .context("reading user versions")?
            .decode()?;
        users
            .iter()
            .map(|u| {
                rows.iter()
                    .find(|r| r.user_id == u.as_str())
                    .and_then(|r| u64::try_from(r.version).ok())
                    .map(Version::new)
                    .ok_or_else(|| AppError::internal("a user's version is missing or negative"))
            })
            .collect()
    }

    async fn version_changes(&self, after: Option<u64>, limit: u32) -> AppResult<VersionChanges> {
        let head_st = Statement::new(sql::VERSION_FEED_HEAD, vec![]);
        let (rows, head) = match after {
            None => (
                Vec::new(),
                self.query(head_st)
                    .await
                    .context("reading the version feed")?,
            ),
            Some(after) => {
                let after = i64::try_from(after)
                    .map_err(|_| AppError::internal("a feed position past i64"))?;
                let changes = Statement::new(
                    sql::VERSION_CHANGES,
                    vec![after.into(), i64::from(limit).into()],
                );
                let results = self
                    .batch(vec![changes, head_st])
                    .await
                    .context("reading the version feed")?;
                let [changes, head] = <[D::Rows; 2]>::try_from(results)
                    .map_err(|_| AppError::internal("version feed: wrong result count"))?;
                (changes.decode::<ChangeRow>()?, head)
            }
        };
        let head: FeedHead = head
            .decode()?
            .into_iter()
            .next()
            .ok_or_else(|| AppError::internal("the version feed head is missing"))?;
        let non_negative =
            |n: i64| u64::try_from(n).map_err(|_| AppError::internal("a negative feed value"));
        let complete = rows.len() < limit as usize;
        let through = match (complete, rows.last()) {
            (false, Some(last)) => non_negative(last.seq)?,
            _ => non_negative(head.seq)?,
        };
        // Changes are numbered without holes; a first one past `after + 1` means the log
        // dropped some the caller has not seen.
        let gap = match (after, rows.first(), head.oldest) {
            (Some(after), Some(first), _) => non_negative(first.seq)? > after.saturating_add(1),
            (Some(after), None, Some(_)) => non_negative(head.seq)? > after,
            _ => false,
        };
        let changes = rows
            .iter()
            .map(|r| {
                let user = UserId::parse(&r.user_id)
                    .ok_or_else(|| AppError::internal("a stored user id is malformed"))?;
                // A call id that no longer parses names no key we could hold: any of the user's.
                let call = r.call_id.as_deref().and_then(CallId::parse);
                Ok((user, call, Version::new(non_negative(r.version)?)))
            })
            .collect::<AppResult<Vec<_>>>()?;
        Ok(VersionChanges {
            changes,
            through,
            complete,
            gap,
            epoch: non_negative(head.epoch)?,
        })
    }

    async fn bump_user(&self, user: &UserId) -> AppResult<Version> {
        let st = Statement::new(sql::BUMP_USER_VERSION, vec![user.as_str().into()]);
        let rows = self.query(st).await.context("bumping a user's version")?;
        decode_version(&rows)
    }

    async fn bump_all(&self) -> AppResult<()> {
        self.query(Statement::new(sql::BUMP_EPOCH, vec![]))
            .await
            .context("bumping the purge epoch")?;
        Ok(())
    }
}

/// Who has been active: the users the cache warms.
#[allow(async_fn_in_trait)]
pub trait ActivityLog {
    async fn recently_active_users(&self, since: Timestamp, limit: u32) -> AppResult<Vec<UserId>>;
}

struct UserRow {
    user_id: String,
}

impl FromRow for UserRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(UserRow {
            user_id: row.text("user_id")?,
        })
    }
}

impl<D: Database> ActivityLog for Store<D> {
    async fn recently_active_users(&self, since: Timestamp, limit: u32) -> AppResult<Vec<UserId>> {
        let st = Statement::new(
            sql::RECENT_USERS,
            vec![since.millis().into(), i64::from(limit).into()],
        );
        let rows: Vec<UserRow> = self
            .query(st)
            .await
            .context("listing recently active users")?
            .decode()?;
        Ok(rows
            .into_iter()
            .filter_map(|r| UserId::parse(&r.user_id))
            .collect())
    }
}

struct CreatedRow {
    created: i64,
}

impl FromRow for CreatedRow {
    fn from_row(row: &Columns<'_>) -> AppResult<Self> {
        Ok(CreatedRow {
            created: row.int("created")?,
        })
    }
}

impl<D: Database> PhoneDirectory for Store<D> {
    async fn put_route(&self, number: &E164, user: &UserId, now: Timestamp) -> AppResult<bool> {
        let st = Statement::new(
            sql::PUT_PHONE_ROUTE,
            vec![
                number.as_str().into(),
                user.as_str().into(),
                now.millis().into(),
            ],
        );
        let rows: Vec<CreatedRow> = self.query(st).await.context("routing a number")?.decode()?;
        Ok(rows.first().is_some_and(|r| r.created != 0))
    }

    async fn delete_route(&self, number: &E164) -> AppResult<bool> {
        let st = Statement::new(sql::DELETE_PHONE_ROUTE, vec![number.as_str().into()]);
        let rows = self.query(st).await.context("unrouting a number")?;
        Ok(rows.meta().changes > 0)
    }
}
