//! Every SQL statement the worker runs. Each read is an index range scan or a primary-key
//! lookup; `tests::every_read_is_an_index_range_scan` holds them to that with
//! `EXPLAIN QUERY PLAN` against the real migrations. A webhook's writes are the exception to
//! "the SQL is here": their statements insert into views, and the SQL they run is those views'
//! triggers (`migrations/0014`), so a batch does not send it with every delivery.

/// The columns of a Call with its recording, analysis and enrichment. The three are copies
/// kept in the call row by the triggers of `migrations/0005` (analyses and enrichments only
/// when they belong to the call's user), so a page reads one row per call.
#[cfg(test)]
macro_rules! call_columns {
    () => {
        "c.id, c.provider, c.direction, c.from_number, c.to_number, c.status, c.answered, \
         c.started_at, c.ended_at, c.duration_seconds, c.created_at, c.updated_at, \
         c.rec_id, c.rec_url, c.rec_duration, c.rec_status, \
         c.an_status, c.an_intent, c.an_confidence, c.an_summary, c.an_completed_at, \
         c.en_phone, c.en_caller_name, c.en_caller_type, c.en_line_type, c.en_carrier, \
         c.en_spam_score, c.en_updated_at"
    };
}

#[cfg(test)]
macro_rules! call_select {
    () => {
        concat!("SELECT ", call_columns!(), " FROM calls c ")
    };
}

/// A user's version as clients see it (`migrations/0008`): the purge epoch above 2^40, the
/// user's own count below. `$user` is the SQL expression naming the user.
macro_rules! version_of {
    ($user:literal) => {
        concat!(
            "((SELECT epoch FROM cache_epoch WHERE id = 1) * 1099511627776 + \
             COALESCE((SELECT version FROM user_versions WHERE user_id = ",
            $user,
            "), 0))"
        )
    };
}

/// A call's values as SQLite lists them: one JSON array of the 28 columns a call is written
/// from, in a fixed order, that the store writes as the API's call (`rows::call_from_values`:
/// the keys, the nested recording, analysis and enrichment, the timestamps as RFC 3339), so a
/// page crosses from D1 as one string instead of 28 fields per call. A list of values and not
/// the call's JSON itself (`json_object`) because that was the D1 page's largest cost in
/// Miniflare: SQLite writing every key of every call, then the text, twice its size and every
/// key's quotes escaped, written and parsed again as D1's own JSON answer (about 150 µs of a
/// 50-call page, `npm run profile`). Numbers with a fraction are written with 15 significant
/// digits (SQLite's `%!.15g`, as `json_object` writes them); `answered` is 1 or 0 (or NULL),
/// a recording's missing status is `completed`. Timestamps are epoch milliseconds:
/// `strftime` was more than half of this statement's time.
macro_rules! call_values {
    () => {
        "json_array(c.id, c.provider, c.direction, c.from_number, c.to_number, c.status, \
         c.answered <> 0, c.started_at, c.ended_at, c.duration_seconds, \
         c.rec_id, c.rec_url, c.rec_duration, COALESCE(c.rec_status, 'completed'), \
         c.an_status, c.an_intent, c.an_confidence, c.an_summary, c.an_completed_at, \
         c.en_phone, c.en_caller_name, c.en_caller_type, c.en_line_type, c.en_carrier, \
         c.en_spam_score, c.en_updated_at, c.created_at, c.updated_at)"
    };
}

/// A list of calls as one row: `j`, the JSON array of the calls `$list` selects and orders
/// (newest first, `LIMIT`ed), each call's values (`call_values!`); `n`, how many it holds;
/// then `$extra` (more output columns, or nothing). The whole list crosses from D1 as one
/// string instead of a row per call, and an aggregate always answers one row, so an empty
/// list still carries `$extra` (a page's version).
///
/// The array keeps the subquery's order: a subquery with `LIMIT` under an aggregate is never
/// flattened, and SQLite runs it as a co-routine whose rows `group_concat` appends as they
/// come (`store::tests` walks pages with tied start times, and the query-plan test holds the
/// plan to that shape). An `ORDER BY` inside `group_concat` would say the same again at a
/// price: its sorter reads the page back, and D1 bills those reads as rows read (a page of
/// 50 read 104 rows with it).
macro_rules! call_json_array {
    ($list:expr, $extra:expr) => {
        concat!(
            "SELECT '[' || COALESCE(group_concat(p.j, ','), '') || ']' AS j, COUNT(*) AS n",
            $extra,
            " FROM (SELECT ",
            call_values!(),
            " AS j FROM calls c ",
            $list,
            ") p"
        )
    };
}

/// A page as one row (`call_json_array!`) whose `v` is the version of the user `?1` as the
/// same statement saw it: the data and its version in one read, no batch, also for an empty
/// page. (An uncorrelated subquery: evaluated once per statement.)
macro_rules! versioned_page_json {
    ($list:expr) => {
        call_json_array!($list, concat!(", ", version_of!("?1"), " AS v"))
    };
}

/// One row per call, its values (`call_values!`) in `j` and, in `v`, the version of the user `$user` names as
/// the same statement saw it: the data and its version in one read, no batch. (An
/// uncorrelated subquery: evaluated once per statement.) No row, no version: the store then
/// reads both again in one batch.
macro_rules! versioned_call_json_select {
    ($user:literal) => {
        concat!(
            "SELECT ",
            call_values!(),
            " AS j, ",
            version_of!($user),
            " AS v FROM calls c "
        )
    };
}

/// ?1 user, ?2 limit, ?3 offset: a page as one JSON array, with its count and the version.
pub const PAGE_JSON_BY_OFFSET: &str = versioned_page_json!(
    "WHERE c.user_id = ?1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2 OFFSET ?3"
);

/// ?1 user, ?2 cursor startedAt, ?3 cursor id, ?4 limit.
pub const PAGE_JSON_AFTER_CURSOR: &str = versioned_page_json!(
    "WHERE c.user_id = ?1 AND (c.started_at, c.id) < (?2, ?3) \
     ORDER BY c.started_at DESC, c.id DESC LIMIT ?4"
);

// ---- Filtered pages (`migrations/0010`). ----
//
// One statement per way in: the user's newest-first index, the same per status, and the
// same per intent over analyzed calls. The range (`from`, `to`) and the cursor bound the scan
// inside whichever index; what the index does not decide (several statuses, a direction) is
// matched row by row as the scan goes (D1 counts the rows scanned, not only those returned),
// and the scan stops after `?9` rows: a filter that few calls match cannot read a user's whole
// history for one page. (A window function numbering the rows would say where the scan
// stopped in the same statement, but D1 then counts every row three times.)
//
// ?1 user, ?2 from (ms), ?3 to (ms), ?4 cursor startedAt, ?5 cursor id (no cursor: past
// every call), ?6 statuses as `,a,b,` (NULL: any), ?7 direction (NULL: any), ?8 the index's
// value (a status, an intent; unused by the first), ?9 rows to scan at most, ?10 matches to
// skip, ?11 matches wanted (limit + 1).

/// The rows a filtered page's scan may read, newest first, in the index `$index`.
macro_rules! filtered_scan {
    ($index:literal, $way_in:literal) => {
        concat!(
            "FROM calls c INDEXED BY ",
            $index,
            " WHERE c.user_id = ?1",
            $way_in,
            " AND c.started_at >= ?2 AND c.started_at < ?3 AND (c.started_at, c.id) < (?4, ?5) \
             ORDER BY c.started_at DESC, c.id DESC"
        )
    };
}

macro_rules! filtered_page {
    ($index:literal, $way_in:literal) => {
        concat!(
            "SELECT ",
            call_values!(),
            " AS j, c.started_at AS s, c.id AS i FROM (SELECT c.* ",
            filtered_scan!($index, $way_in),
            " LIMIT ?9) c \
             WHERE (?6 IS NULL OR instr(?6, ',' || c.status || ',') > 0) \
               AND (?7 IS NULL OR c.direction = ?7) \
             LIMIT ?11 OFFSET ?10"
        )
    };
}

/// Where a filtered page's scan stopped, when it matched row by row and its page came back
/// short: the `?9`-th row of its scan, or none when the scan reached the end of the range.
/// ?1–?5, ?8, ?9 as the page's.
macro_rules! filtered_scan_stop {
    ($index:literal, $way_in:literal) => {
        concat!(
            "SELECT c.started_at AS s, c.id AS i ",
            filtered_scan!($index, $way_in),
            " LIMIT 1 OFFSET ?9 - 1"
        )
    };
}

/// A filtered page through the user's newest-first index.
pub const FILTERED_PAGE: &str = filtered_page!("calls_by_user_newest", "");
pub const FILTERED_SCAN_STOP: &str = filtered_scan_stop!("calls_by_user_newest", "");

/// A filtered page of one status: ?8 the status.
pub const FILTERED_PAGE_BY_STATUS: &str =
    filtered_page!("calls_by_user_status_newest", " AND c.status = ?8");
pub const FILTERED_SCAN_STOP_BY_STATUS: &str =
    filtered_scan_stop!("calls_by_user_status_newest", " AND c.status = ?8");

/// A filtered page of one intent: ?8 the intent. `c.analyzed = 1` must stay literal: it
/// selects the partial index.
pub const FILTERED_PAGE_BY_INTENT: &str = filtered_page!(
    "calls_by_user_intent_newest",
    " AND c.analyzed = 1 AND COALESCE(c.an_intent, 'unknown') = ?8"
);
pub const FILTERED_SCAN_STOP_BY_INTENT: &str = filtered_scan_stop!(
    "calls_by_user_intent_newest",
    " AND c.analyzed = 1 AND COALESCE(c.an_intent, 'unknown') = ?8"
);

// ---- Ranged summaries (`migrations/0010`): ?1 user, ?2 first day, ?3 day after the last. ----

/// The per-day aggregates of the range: one row per day with calls, its intent distribution
/// in it (a JSON object keyed by each intent's hex).
pub const DAY_STATS: &str = "SELECT day, total_calls, answered_calls, completed_analyses, \
     confidence_micros, intents FROM user_days WHERE user_id = ?1 AND day >= ?2 AND day < ?3";

/// ?1 user, ?2 from (ms), ?3 to (ms), ?4 limit: the newest analyzed calls started in the
/// range. `c.analyzed = 1` must stay literal: it selects the partial index.
pub const RANGED_ANALYZED_CALLS_JSON: &str = call_json_array!(
    "WHERE c.user_id = ?1 AND c.analyzed = 1 AND c.started_at >= ?2 AND c.started_at < ?3 \
     ORDER BY c.started_at DESC, c.id DESC LIMIT ?4",
    ""
);

/// ?1 call, ?2 user.
pub const CALL_JSON_DETAIL: &str = concat!(
    versioned_call_json_select!("?2"),
    "WHERE c.id = ?1 AND c.user_id = ?2"
);

/// ?1 user, ?2 limit. `c.analyzed = 1` must stay literal: it selects the partial index.
pub const ANALYZED_CALLS_JSON: &str = call_json_array!(
    "WHERE c.user_id = ?1 AND c.analyzed = 1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2",
    ""
);

// The same reads as domain values, column by column: what the tests compare the JSON with.

/// ?1 user, ?2 limit, ?3 offset.
#[cfg(test)]
pub const CALL_PAGE_BY_OFFSET: &str = concat!(
    call_select!(),
    "WHERE c.user_id = ?1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2 OFFSET ?3"
);

/// ?1 user, ?2 cursor startedAt, ?3 cursor id, ?4 limit. The row-value comparison continues
/// the `started_at desc, id desc` order strictly after the cursor, inside the index.
#[cfg(test)]
pub const CALL_PAGE_AFTER_CURSOR: &str = concat!(
    call_select!(),
    "WHERE c.user_id = ?1 AND (c.started_at, c.id) < (?2, ?3) \
     ORDER BY c.started_at DESC, c.id DESC LIMIT ?4"
);

/// ?1 call, ?2 user.
#[cfg(test)]
pub const CALL_DETAIL: &str = concat!(call_select!(), "WHERE c.id = ?1 AND c.user_id = ?2");

/// ?1 user, ?2 limit. `c.analyzed = 1` must stay literal: it selects the partial index.
#[cfg(test)]
pub const ANALYZED_CALLS: &str = concat!(
    call_select!(),
    "WHERE c.user_id = ?1 AND c.analyzed = 1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2"
);

/// ?1 user.
pub const USER_STATS: &str = "SELECT total_calls, answered_calls, completed_analyses, \
     confidence_sum FROM user_stats WHERE user_id = ?1";

/// ?1 user.
pub const USER_INTENTS: &str =
    "SELECT intent, calls FROM user_intents WHERE user_id = ?1 AND calls > 0";

/// ?1 call, ?2 user.
pub const ANALYSIS: &str = "SELECT status, intent, confidence, summary, completed_at \
     FROM analyses WHERE call_id = ?1 AND user_id = ?2";

/// ?1 call, ?2 user.
pub const ENRICHMENT: &str = "SELECT phone_number, caller_name, caller_type, line_type, carrier, \
     spam_score, updated_at FROM enrichments WHERE call_id = ?1 AND user_id = ?2";

/// ?1 number, ?2 user, ?3 now. Reports whether the row is new.
pub const PUT_PHONE_ROUTE: &str = "INSERT INTO phone_numbers (e164, user_id, created_at, updated_at) \
     VALUES (?1, ?2, ?3, ?3) \
     ON CONFLICT (e164) DO UPDATE SET user_id = excluded.user_id, updated_at = excluded.updated_at, \
       revision = revision + 1 \
     RETURNING revision = 1 AS created";

/// ?1 number.
pub const DELETE_PHONE_ROUTE: &str = "DELETE FROM phone_numbers WHERE e164 = ?1";

/// ?1 since (epoch ms), ?2 limit: users with webhook traffic since then, most recent first.
pub const RECENT_USERS: &str = "SELECT user_id FROM webhook_deliveries \
     WHERE received_at >= ?1 AND user_id IS NOT NULL \
     GROUP BY user_id ORDER BY MAX(received_at) DESC LIMIT ?2";

/// ?1 user: the version a load reads in the same batch as its data, so the two agree.
pub const VERSION_OF: &str = concat!("SELECT ", version_of!("?1"), " AS version");

/// ?1 a JSON array of user ids: each with its current version, in one query.
pub const USER_VERSIONS: &str = concat!(
    "SELECT u.value AS user_id, ",
    version_of!("u.value"),
    " AS version FROM json_each(?1) u"
);

/// The version feed (`migrations/0009`): ?1 a feed position, ?2 a row limit. The changes
/// after it, in commit order: the user, the call (NULL: any of the user's data) and the
/// user's version after the change.
pub const VERSION_CHANGES: &str = "SELECT l.seq, l.user_id, l.call_id, \
     (SELECT epoch FROM cache_epoch WHERE id = 1) * 1099511627776 + l.version AS version \
     FROM change_log l WHERE l.seq > ?1 ORDER BY l.seq LIMIT ?2";

/// Where the feed is now, the oldest change it still holds, and the purge epoch (a purge of
/// everything moves every version without a change of its own).
pub const VERSION_FEED_HEAD: &str = "SELECT (SELECT seq FROM version_clock WHERE id = 1) AS seq, \
     (SELECT MIN(seq) FROM change_log) AS oldest, \
     (SELECT epoch FROM cache_epoch WHERE id = 1) AS epoch";

/// ?1 user: retires everything cached for the user (operator purge). Returns the new version.
pub const BUMP_USER_VERSION: &str = concat!(
    "INSERT INTO user_versions (user_id, version) VALUES (?1, 1) \
     ON CONFLICT (user_id) DO UPDATE SET version = version + 1 \
     RETURNING ",
    version_of!("?1"),
    " AS version"
);

/// Retires everything cached for every user (operator purge), with one write.
pub const BUMP_EPOCH: &str = "UPDATE cache_epoch SET epoch = epoch + 1 WHERE id = 1";

/// Whether D1 answers at all (telling an outage from a delivery that always fails).
pub const PING: &str = "SELECT 1 AS ok";

/// The read statements, by name, for the query-plan test.
#[cfg(test)]
pub const READS: &[(&str, &str)] = &[
    ("page as JSON by offset", PAGE_JSON_BY_OFFSET),
    ("page as JSON after cursor", PAGE_JSON_AFTER_CURSOR),
    ("call as JSON", CALL_JSON_DETAIL),
    ("filtered page", FILTERED_PAGE),
    ("filtered page of one status", FILTERED_PAGE_BY_STATUS),
    ("filtered page of one intent", FILTERED_PAGE_BY_INTENT),
    ("where a filtered scan stopped", FILTERED_SCAN_STOP),
    (
        "where a filtered scan of one status stopped",
        FILTERED_SCAN_STOP_BY_STATUS,
    ),
    (
        "where a filtered scan of one intent stopped",
        FILTERED_SCAN_STOP_BY_INTENT,
    ),
    ("per-day stats", DAY_STATS),
    ("ranged analyzed calls as JSON", RANGED_ANALYZED_CALLS_JSON),
    ("analyzed calls as JSON", ANALYZED_CALLS_JSON),
    ("call page by offset", CALL_PAGE_BY_OFFSET),
    ("call page after cursor", CALL_PAGE_AFTER_CURSOR),
    ("call detail", CALL_DETAIL),
    ("analyzed calls", ANALYZED_CALLS),
    ("user stats", USER_STATS),
    ("user intents", USER_INTENTS),
    ("analysis", ANALYSIS),
    ("enrichment", ENRICHMENT),
    ("user versions", USER_VERSIONS),
    ("version of a user", VERSION_OF),
    ("version changes", VERSION_CHANGES),
    ("refresh: first page", REFRESH_FIRST_PAGE),
    ("refresh: user stats", REFRESH_USER_STATS),
    ("refresh: user intents", REFRESH_USER_INTENTS),
    ("refresh: analyzed calls", REFRESH_ANALYZED_CALLS),
    ("refresh: the delivery's call", REFRESH_CHANGED_CALL),
    ("refresh: the owner's stats", REFRESH_OWNER_STATS),
    ("refresh: the owner's intents", REFRESH_OWNER_INTENTS),
];

// ---- Webhook ingest: one D1 batch per delivery. ----
//
// Every statement starts with ?1 provider, ?2 delivery key digest, ?3 claim. The claim row
// decides once, for the whole batch, whose data the delivery is and whether it applies; every
// write after it runs only if that row holds this attempt's claim with outcome `applied`,
// i.e. only on the first attempt, and takes its owner from that row. The SQL of the claim and
// of each event's write is a trigger of `migrations/0014` on a view that holds no rows: a
// statement here inserts its parameters into the view, so a batch sends D1 a line of text per
// statement instead of the statement (about 4 KB less per delivery).

/// ?4 event type, ?5 explicit user, ?6 routed number, ?7 call id, ?8 has events (0/1),
/// ?9 needs an owner (0/1), ?10 payload kept if it cannot be applied, ?11 received at,
/// ?12 the call's reported start (or NULL), ?13 the provider's own key, ?14 call id digest,
/// ?15 reports a call (0/1).
///
/// Owner: a call that exists (else an analysis or enrichment already stored for the id) keeps
/// its owner, whatever the routes say now; only a call seen for the first time takes the
/// explicit user, else its number's route. Outcome, first match wins:
/// - `deleted`: the call was deleted and this delivery does not report a start after that;
///   nothing that names the call is stored (no provider key, call id or payload);
/// - `ignored`: no event we apply (an unknown type), payload kept;
/// - `conflict`: an explicit user contradicts the existing owner, payload kept, never applied;
/// - `unattributed`: no owner can be found yet, payload kept;
/// - `applied`.
///
/// An applied call report for an id with a deletion mark (so its start is after the deletion)
/// is a new call: the claim names the mark in `lift_mark`, and the trigger of
/// `migrations/0012` lifts it before the call's upsert, in this same statement.
///
/// The decision is `delivery_claims_insert`, the trigger of `migrations/0014` this insert into
/// its view runs: the batch sends the parameters, not the SQL. For an applied delivery the
/// trigger keeps in the row, as `version_before`, the owner's version as the batch found it,
/// before any of its events (lifting a mark moves no version), so the cache learns that every
/// change between it and the batch's result was this delivery's; `DELIVERY_RESULT` reads it.
pub const CLAIM_DELIVERY: &str = "INSERT INTO delivery_claims \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)";

/// ?4 call id, ?5 provider, ?6 direction, ?7 from, ?8 to, ?9 status, ?10 status rank,
/// ?11 answered, ?12 started at (or NULL: then the event time), ?13 ended at, ?14 duration,
/// ?15 received at, ?16 event time. Status only moves up in rank; the first end time wins;
/// a call never changes owner. A start the event reports replaces the stored one unless an
/// older event reports it (a late `startedAt` moves the call, and its day's aggregates, by
/// the triggers of `migrations/0010`); a start only inferred from the event time never does.
/// The write is `call_reports_insert` (`migrations/0014`).
pub const UPSERT_CALL: &str = "INSERT INTO call_reports \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)";

/// ?4 call id, ?5 recording id, ?6 url, ?7 duration, ?8 status, ?9 event time. A finished
/// recording is never replaced by an in-progress report. Recordings need no owner: they are
/// attributed through their call.
/// The write is `recording_reports_insert` (`migrations/0014`).
pub const UPSERT_RECORDING: &str =
    "INSERT INTO recording_reports VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

/// ?4 call id, ?5 status, ?6 intent, ?7 confidence, ?8 summary, ?9 completed at, ?10 event
/// time. Newer events win; a completed analysis never goes back to pending; an analysis never
/// changes owner.
/// The write is `analysis_reports_insert` (`migrations/0014`).
pub const UPSERT_ANALYSIS: &str =
    "INSERT INTO analysis_reports VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// ?4 call id, ?5 phone, ?6 caller name, ?7 caller type, ?8 line type, ?9 carrier,
/// ?10 spam score, ?11 event time. Newer events win.
/// The write is `enrichment_reports_insert` (`migrations/0014`).
pub const UPSERT_ENRICHMENT: &str =
    "INSERT INTO enrichment_reports VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

// ---- Deleting a call (privacy requests): one batch, ?1 call, ?2 user, ?3 now. ----

/// ?4 call id digest. Marks the call deleted, if it is the user's. The mark holds a digest,
/// not the id: it must recognise the id's late webhooks without naming the call.
pub const MARK_DELETED: &str = "INSERT INTO deleted_calls (call_id, user_id, deleted_at) \
     SELECT ?4, user_id, ?3 FROM calls WHERE id = ?1 AND user_id = ?2 \
     ON CONFLICT (call_id) DO UPDATE SET deleted_at = excluded.deleted_at";
pub const DELETE_RECORDING: &str = "DELETE FROM recordings WHERE call_id = ?1 \
     AND EXISTS (SELECT 1 FROM calls WHERE id = ?1 AND user_id = ?2)";
pub const DELETE_ANALYSIS: &str = "DELETE FROM analyses WHERE call_id = ?1 AND user_id = ?2";
pub const DELETE_ENRICHMENT: &str = "DELETE FROM enrichments WHERE call_id = ?1 AND user_id = ?2";
/// Every stored delivery that names the call forgets it: its body, the call id and the
/// provider's key (which may quote the id). The row stays, keyed by a digest, so a retry is
/// still recognised; rows from before digests (migration 0007) get a random key instead.
pub const FORGET_DELIVERIES: &str = "UPDATE webhook_deliveries \
     SET call_id = NULL, payload = NULL, provider_ref = NULL, \
       delivery_key = CASE WHEN delivery_key LIKE 'k1:%' THEN delivery_key \
                           ELSE 'forgotten:' || lower(hex(randomblob(16))) END \
     WHERE call_id = ?1 AND EXISTS (SELECT 1 FROM calls WHERE id = ?1 AND user_id = ?2)";
/// Its `changes` says whether the call was the user's; `VERSION_OF` follows it in the batch.
pub const DELETE_CALL: &str = "DELETE FROM calls WHERE id = ?1 AND user_id = ?2";
/// Last in the deletion batch: the version feed's changes about the call (its own deletion's
/// included) keep their place but name no call — "any of the user's data" to a cache, which
/// retires more, never less.
pub const FORGET_CHANGES: &str =
    "UPDATE change_log SET call_id = NULL WHERE call_id = ?1 AND user_id = ?2";

/// ?1 provider, ?2 delivery key digest, ?3 claim: whether this attempt claimed the delivery,
/// what it did, whose it turned out to be, the owner's version before its events (kept by
/// the claim, NULL unless applied) and after them, and whether that user may have the live
/// feed open (read after the batch's writes: see `migrations/0011`), as one JSON array in
/// that order, `o` (`delivery_outcomes`, `migrations/0014`). One array and not seven columns
/// because a statement's `RETURNING` carries it too, where each column would be a subquery.
macro_rules! delivery_outcome {
    () => {
        "(SELECT json_array(claim = ?3, user_id, call_id, outcome, version_before, version, \
         listening) FROM delivery_outcomes WHERE provider = ?1 AND delivery_key = ?2) AS o"
    };
}

/// The outcome read after the writes, when no single event's statement returns it
/// (`delivery_outcome!`).
pub const DELIVERY_RESULT: &str = concat!("SELECT ", delivery_outcome!());

// A delivery of one event, the usual case, is one statement: the claim (?1 to ?15 as
// `CLAIM_DELIVERY`), then the event's own parameters (?16 on, in the order its `UPSERT_*`
// takes them from ?4), returning the outcome. `RETURNING` on a view is evaluated after its
// INSTEAD OF trigger and everything that fired under it, so the version it reads is the one
// the delivery's events left (`migrations/0014`).

pub const CLAIM_AND_CALL: &str = concat!(
    "INSERT INTO call_deliveries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, \
     ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28) RETURNING ",
    delivery_outcome!()
);
pub const CLAIM_AND_RECORDING: &str = concat!(
    "INSERT INTO recording_deliveries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
     ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21) RETURNING ",
    delivery_outcome!()
);
pub const CLAIM_AND_ANALYSIS: &str = concat!(
    "INSERT INTO analysis_deliveries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
     ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22) RETURNING ",
    delivery_outcome!()
);
pub const CLAIM_AND_ENRICHMENT: &str = concat!(
    "INSERT INTO enrichment_deliveries VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, \
     ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23) RETURNING ",
    delivery_outcome!()
);

/// A feed object is about to accept a socket for ?1 (`migrations/0011`): marks the user as
/// listening and moves the generation, which it returns.
pub const LISTEN: &str = "INSERT INTO live_listeners (user_id, listening, generation) \
     VALUES (?1, 1, 1) ON CONFLICT (user_id) DO UPDATE SET listening = 1, \
     generation = generation + 1 RETURNING generation";

/// The version of ?1, read in `LISTEN`'s batch after it: what the socket's `hello` carries.
pub const VERSION_OF_USER: &str = concat!("SELECT ", version_of!("?1"), " AS version");

/// A feed object found no socket: ?1 is no longer listening, unless a socket was opened
/// after generation ?2 (the last one that object opened a socket at).
pub const STOP_LISTENING: &str =
    "UPDATE live_listeners SET listening = 0 WHERE user_id = ?1 AND generation = ?2";

/// The user a delivery attempt has just applied its events to, when that user is one the
/// cache is watching: ?1 provider, ?2 delivery key, ?3 this attempt's claim, ?4 a JSON array
/// of watched users. NULL otherwise (a retry, an unapplied outcome, a user nobody watches),
/// and then the refresh reads below match no row.
macro_rules! claimed_watched_owner {
    () => {
        "(SELECT d.user_id FROM webhook_deliveries d WHERE d.provider = ?1 \
         AND d.delivery_key = ?2 AND d.claim = ?3 AND d.outcome = 'applied' \
         AND d.user_id IN (SELECT value FROM json_each(?4)))"
    };
}

/// Refresh on write, in the delivery's own batch after its writes (so at the version the
/// batch returns): the owner's first page. ?1–?4 as `claimed_watched_owner`, ?5 limit + 1.
pub const REFRESH_FIRST_PAGE: &str = call_json_array!(
    concat!(
        "WHERE c.user_id = ",
        claimed_watched_owner!(),
        " ORDER BY c.started_at DESC, c.id DESC LIMIT ?5"
    ),
    ""
);

/// Refresh on write: the owner's aggregates. ?1–?4 as `claimed_watched_owner`.
pub const REFRESH_USER_STATS: &str = concat!(
    "SELECT total_calls, answered_calls, completed_analyses, confidence_sum FROM user_stats \
     WHERE user_id = ",
    claimed_watched_owner!()
);

/// Refresh on write: the owner's intent counts. ?1–?4 as `claimed_watched_owner`.
pub const REFRESH_USER_INTENTS: &str = concat!(
    "SELECT intent, calls FROM user_intents WHERE calls > 0 AND user_id = ",
    claimed_watched_owner!()
);

/// Refresh on write: the owner's newest analyzed calls. ?1–?4 as `claimed_watched_owner`,
/// ?5 limit.
pub const REFRESH_ANALYZED_CALLS: &str = call_json_array!(
    concat!(
        "WHERE c.user_id = ",
        claimed_watched_owner!(),
        " AND c.analyzed = 1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?5"
    ),
    ""
);

/// The user a delivery attempt has just applied its events to (NULL for a retry or an
/// unapplied outcome): ?1 provider, ?2 delivery key, ?3 this attempt's claim.
macro_rules! claimed_owner {
    () => {
        "(SELECT d.user_id FROM webhook_deliveries d WHERE d.provider = ?1 \
         AND d.delivery_key = ?2 AND d.claim = ?3 AND d.outcome = 'applied')"
    };
}

/// Refresh on write by patch (`cache::patch`), in the delivery's own batch after its writes:
/// the call the delivery was about, as a page lists it, with whether the summary lists it.
/// One row (none when the attempt applied nothing or the call is not its owner's); no list
/// of watched users, so it costs the same whoever is watched. ?1–?3 as `claimed_owner`.
pub const REFRESH_CHANGED_CALL: &str = concat!(
    "SELECT ",
    call_values!(),
    " AS j, c.analyzed FROM calls c WHERE c.id = \
     (SELECT d.call_id FROM webhook_deliveries d WHERE d.provider = ?1 \
      AND d.delivery_key = ?2 AND d.claim = ?3 AND d.outcome = 'applied') \
     AND c.user_id = ",
    claimed_owner!()
);

/// Refresh on write by patch: the owner's aggregates. ?1–?3 as `claimed_owner`.
pub const REFRESH_OWNER_STATS: &str = concat!(
    "SELECT total_calls, answered_calls, completed_analyses, confidence_sum FROM user_stats \
     WHERE user_id = ",
    claimed_owner!()
);

/// Refresh on write by patch: the owner's intent counts. ?1–?3 as `claimed_owner`.
pub const REFRESH_OWNER_INTENTS: &str = concat!(
    "SELECT intent, calls FROM user_intents WHERE calls > 0 AND user_id = ",
    claimed_owner!()
);
