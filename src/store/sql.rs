//! Every SQL statement the worker runs. Each read is an index range scan or a primary-key
//! lookup; `tests::every_read_is_an_index_range_scan` holds them to that with
//! `EXPLAIN QUERY PLAN` against the real migrations.

/// The columns of a Call with its recording, analysis and enrichment. The three are copies
/// kept in the call row by the triggers of `migrations/0005` (analyses and enrichments only
/// when they belong to the call's user), so a page reads one row per call.
macro_rules! call_select {
    () => {
        "SELECT c.id, c.provider, c.direction, c.from_number, c.to_number, c.status, c.answered, \
         c.started_at, c.ended_at, c.duration_seconds, c.created_at, c.updated_at, \
         c.rec_id, c.rec_url, c.rec_duration, c.rec_status, \
         c.an_status, c.an_intent, c.an_confidence, c.an_summary, c.an_completed_at, \
         c.en_phone, c.en_caller_name, c.en_caller_type, c.en_line_type, c.en_carrier, \
         c.en_spam_score, c.en_updated_at \
         FROM calls c "
    };
}

/// ?1 user, ?2 limit, ?3 offset.
pub const CALL_PAGE_BY_OFFSET: &str = concat!(
    call_select!(),
    "WHERE c.user_id = ?1 ORDER BY c.started_at DESC, c.id DESC LIMIT ?2 OFFSET ?3"
);

/// ?1 user, ?2 cursor startedAt, ?3 cursor id, ?4 limit. The row-value comparison continues
/// the `started_at desc, id desc` order strictly after the cursor, inside the index.
pub const CALL_PAGE_AFTER_CURSOR: &str = concat!(
    call_select!(),
    "WHERE c.user_id = ?1 AND (c.started_at, c.id) < (?2, ?3) \
     ORDER BY c.started_at DESC, c.id DESC LIMIT ?4"
);

/// ?1 call, ?2 user.
pub const CALL_DETAIL: &str = concat!(call_select!(), "WHERE c.id = ?1 AND c.user_id = ?2");

/// ?1 user, ?2 limit. `c.analyzed = 1` must stay literal: it selects the partial index.
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

/// The read statements, by name, for the query-plan test.
#[cfg(test)]
pub const READS: &[(&str, &str)] = &[
    ("call page by offset", CALL_PAGE_BY_OFFSET),
    ("call page after cursor", CALL_PAGE_AFTER_CURSOR),
    ("call detail", CALL_DETAIL),
    ("analyzed calls", ANALYZED_CALLS),
    ("user stats", USER_STATS),
    ("user intents", USER_INTENTS),
    ("analysis", ANALYSIS),
    ("enrichment", ENRICHMENT),
];

// ---- Webhook ingest: one D1 batch per delivery. ----
//
// Every write statement starts with ?1 provider, ?2 delivery key, ?3 claim, and runs only if
// the delivery row holds that claim (`CLAIMED`), i.e. only on the first attempt.

macro_rules! claimed {
    () => {
        "EXISTS (SELECT 1 FROM webhook_deliveries \
         WHERE provider = ?1 AND delivery_key = ?2 AND claim = ?3)"
    };
}

/// ?4 event type, ?5 user, ?6 routed number, ?7 call id, ?8 has events (0/1),
/// ?9 needs an owner (0/1), ?10 payload kept if it cannot be applied, ?11 received at.
pub const CLAIM_DELIVERY: &str = "INSERT INTO webhook_deliveries \
     (provider, delivery_key, event_type, user_id, call_id, outcome, payload, received_at, claim) \
     SELECT ?1, ?2, ?4, o.user_id, ?7, \
       CASE WHEN ?8 = 0 THEN 'ignored' \
            WHEN o.user_id IS NULL AND ?9 = 1 THEN 'unattributed' ELSE 'applied' END, \
       CASE WHEN ?8 = 0 OR (o.user_id IS NULL AND ?9 = 1) THEN ?10 END, \
       ?11, ?3 \
     FROM (SELECT COALESCE(?5, (SELECT user_id FROM phone_numbers WHERE e164 = ?6), \
                           (SELECT user_id FROM calls WHERE id = ?7)) AS user_id) o \
     WHERE true \
     ON CONFLICT (provider, delivery_key) DO NOTHING";

/// ?4 call id, ?5 user, ?6 routed number, ?7 provider, ?8 direction, ?9 from, ?10 to,
/// ?11 status, ?12 status rank, ?13 answered, ?14 started at, ?15 ended at, ?16 duration,
/// ?17 received at, ?18 event time. Status only moves up in rank; the first end time wins;
/// a call never changes owner.
pub const UPSERT_CALL: &str = concat!(
    "INSERT INTO calls (id, user_id, provider, direction, from_number, to_number, status, \
       status_rank, answered, started_at, ended_at, duration_seconds, created_at, updated_at) \
     SELECT ?4, o.user_id, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18 \
     FROM (SELECT COALESCE(?5, (SELECT user_id FROM phone_numbers WHERE e164 = ?6)) AS user_id) o \
     WHERE o.user_id IS NOT NULL \
       AND NOT EXISTS (SELECT 1 FROM deleted_calls WHERE call_id = ?4 AND deleted_at >= ?14) AND ",
    claimed!(),
    " ON CONFLICT (id) DO UPDATE SET \
       status = CASE WHEN excluded.status_rank > calls.status_rank \
                     THEN excluded.status ELSE calls.status END, \
       status_rank = MAX(calls.status_rank, excluded.status_rank), \
       answered = MAX(calls.answered, excluded.answered), \
       ended_at = COALESCE(calls.ended_at, excluded.ended_at), \
       duration_seconds = COALESCE(excluded.duration_seconds, calls.duration_seconds), \
       from_number = CASE WHEN calls.from_number = '' THEN excluded.from_number \
                          ELSE calls.from_number END, \
       to_number = CASE WHEN calls.to_number = '' THEN excluded.to_number \
                        ELSE calls.to_number END, \
       updated_at = MAX(calls.updated_at, excluded.updated_at) \
     WHERE calls.user_id = excluded.user_id"
);

/// ?4 call id, ?5 recording id, ?6 url, ?7 duration, ?8 status, ?9 event time. A finished
/// recording is never replaced by an in-progress report.
pub const UPSERT_RECORDING: &str = concat!(
    "INSERT INTO recordings (call_id, id, url, duration_seconds, status, updated_at) \
     SELECT ?4, ?5, ?6, ?7, ?8, ?9 \
     WHERE NOT EXISTS (SELECT 1 FROM deleted_calls WHERE call_id = ?4) AND ",
    claimed!(),
    " ON CONFLICT (call_id) DO UPDATE SET id = excluded.id, \
       url = COALESCE(excluded.url, recordings.url), \
       duration_seconds = COALESCE(excluded.duration_seconds, recordings.duration_seconds), \
       status = excluded.status, updated_at = excluded.updated_at \
     WHERE (excluded.status <> 'in-progress') >= (recordings.status <> 'in-progress')"
);

/// ?4 call id, ?5 user, ?6 routed number, ?7 status, ?8 intent, ?9 confidence, ?10 summary,
/// ?11 completed at, ?12 event time. Newer events win; a completed analysis never goes back
/// to pending; an analysis never changes owner.
pub const UPSERT_ANALYSIS: &str = concat!(
    "INSERT INTO analyses (call_id, user_id, status, intent, confidence, summary, \
       completed_at, updated_at) \
     SELECT ?4, o.user_id, ?7, ?8, ?9, ?10, ?11, ?12 \
     FROM (SELECT COALESCE(?5, (SELECT user_id FROM phone_numbers WHERE e164 = ?6), \
                           (SELECT user_id FROM calls WHERE id = ?4)) AS user_id) o \
     WHERE o.user_id IS NOT NULL \
       AND NOT EXISTS (SELECT 1 FROM deleted_calls WHERE call_id = ?4) AND ",
    claimed!(),
    " ON CONFLICT (call_id) DO UPDATE SET status = excluded.status, intent = excluded.intent, \
       confidence = excluded.confidence, summary = excluded.summary, \
       completed_at = excluded.completed_at, updated_at = excluded.updated_at \
     WHERE analyses.user_id = excluded.user_id \
       AND excluded.updated_at >= analyses.updated_at \
       AND NOT (analyses.status = 'completed' AND excluded.status = 'pending')"
);

/// ?4 call id, ?5 user, ?6 routed number, ?7 phone, ?8 caller name, ?9 caller type,
/// ?10 line type, ?11 carrier, ?12 spam score, ?13 event time. Newer events win.
pub const UPSERT_ENRICHMENT: &str = concat!(
    "INSERT INTO enrichments (call_id, user_id, phone_number, caller_name, caller_type, \
       line_type, carrier, spam_score, updated_at) \
     SELECT ?4, o.user_id, ?7, ?8, ?9, ?10, ?11, ?12, ?13 \
     FROM (SELECT COALESCE(?5, (SELECT user_id FROM phone_numbers WHERE e164 = ?6), \
                           (SELECT user_id FROM calls WHERE id = ?4)) AS user_id) o \
     WHERE o.user_id IS NOT NULL \
       AND NOT EXISTS (SELECT 1 FROM deleted_calls WHERE call_id = ?4) AND ",
    claimed!(),
    " ON CONFLICT (call_id) DO UPDATE SET phone_number = excluded.phone_number, \
       caller_name = excluded.caller_name, caller_type = excluded.caller_type, \
       line_type = excluded.line_type, carrier = excluded.carrier, \
       spam_score = excluded.spam_score, updated_at = excluded.updated_at \
     WHERE enrichments.user_id = excluded.user_id \
       AND excluded.updated_at >= enrichments.updated_at"
);

/// ?4 call id, ?5 started at: a call that started after its id was deleted is a new call, and
/// lifts the deletion mark (runs before the call's upsert).
pub const LIFT_DELETION: &str = concat!(
    "DELETE FROM deleted_calls WHERE call_id = ?4 AND deleted_at < ?5 AND ",
    claimed!()
);

// ---- Deleting a call (privacy requests): one batch, ?1 call, ?2 user, ?3 now. ----

/// Marks the call deleted, if it is the user's.
pub const MARK_DELETED: &str = "INSERT INTO deleted_calls (call_id, user_id, deleted_at) \
     SELECT id, user_id, ?3 FROM calls WHERE id = ?1 AND user_id = ?2 \
     ON CONFLICT (call_id) DO UPDATE SET deleted_at = excluded.deleted_at";
pub const DELETE_RECORDING: &str = "DELETE FROM recordings WHERE call_id = ?1 \
     AND EXISTS (SELECT 1 FROM calls WHERE id = ?1 AND user_id = ?2)";
pub const DELETE_ANALYSIS: &str = "DELETE FROM analyses WHERE call_id = ?1 AND user_id = ?2";
pub const DELETE_ENRICHMENT: &str = "DELETE FROM enrichments WHERE call_id = ?1 AND user_id = ?2";
/// Kept delivery payloads may quote the call: they go too (the delivery rows stay, so retries
/// are still recognised).
pub const FORGET_PAYLOADS: &str = "UPDATE webhook_deliveries SET payload = NULL \
     WHERE call_id = ?1 AND (user_id = ?2 OR user_id IS NULL) AND payload IS NOT NULL";
/// Last: its `changes` says whether the call was the user's.
pub const DELETE_CALL: &str = "DELETE FROM calls WHERE id = ?1 AND user_id = ?2";

/// ?1 provider, ?2 delivery key, ?3 claim: whether this attempt applied the delivery, and
/// whose it turned out to be.
pub const DELIVERY_RESULT: &str = "SELECT claim = ?3 AS fresh, user_id, call_id, outcome \
     FROM webhook_deliveries WHERE provider = ?1 AND delivery_key = ?2";
