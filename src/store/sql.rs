//! Every SQL statement the worker runs. Each read is an index range scan or a primary-key
//! lookup; `tests::every_read_is_an_index_range_scan` holds them to that with
//! `EXPLAIN QUERY PLAN` against the real migrations.

/// The columns of a Call with its recording, analysis and enrichment. Analyses and enrichments
/// join on the user as well as the call, so a misattributed row can never surface in another
/// user's call.
macro_rules! call_select {
    () => {
        "SELECT c.id, c.provider, c.direction, c.from_number, c.to_number, c.status, c.answered, \
         c.started_at, c.ended_at, c.duration_seconds, c.created_at, c.updated_at, \
         r.id AS rec_id, r.url AS rec_url, r.duration_seconds AS rec_duration, r.status AS rec_status, \
         a.status AS an_status, a.intent AS an_intent, a.confidence AS an_confidence, \
         a.summary AS an_summary, a.completed_at AS an_completed_at, \
         e.phone_number AS en_phone, e.caller_name AS en_caller_name, e.caller_type AS en_caller_type, \
         e.line_type AS en_line_type, e.carrier AS en_carrier, e.spam_score AS en_spam_score, \
         e.updated_at AS en_updated_at \
         FROM calls c \
         LEFT JOIN recordings r ON r.call_id = c.id \
         LEFT JOIN analyses a ON a.call_id = c.id AND a.user_id = c.user_id \
         LEFT JOIN enrichments e ON e.call_id = c.id AND e.user_id = c.user_id "
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
