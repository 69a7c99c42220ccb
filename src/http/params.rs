//! Query-string parsing into domain types. Each bad value becomes a 400 naming its field.

use crate::domain::{
    CallFilter, CallStatus, Cursor, DayRange, Direction, Limit, PagePosition, PageRequest,
    SummaryRequest, Timestamp, MAX_INTENT_LEN, MAX_RANGE_DAYS, MS_PER_DAY,
};
use crate::error::{AppError, AppResult};

/// The largest `offset` accepted; deeper pages are cheaper through `cursor`.
pub const MAX_OFFSET: u32 = 100_000;
pub use crate::domain::MAX_LIMIT;

/// The parameters the read routes know; each may be given at most once.
const SINGLE: [&str; 8] = [
    "limit",
    "offset",
    "cursor",
    "status",
    "direction",
    "intent",
    "from",
    "to",
];

/// The query string's pairs, each known name at most once.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if let Some(field) = SINGLE.into_iter().find(|f| *f == k) {
                if pairs.iter().any(|(seen, _)| seen == field) {
                    return Err(AppError::invalid_parameter(
                        field,
                        "is given more than once",
                    ));
                }
            }
            pairs.push((k.into_owned(), v.into_owned()));
        }
        Ok(Self(pairs))
    }

    /// How many times `name` is given.
    pub fn count(&self, name: &str) -> usize {
        self.0.iter().filter(|(k, _)| k == name).count()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn limit(&self, default: u32) -> AppResult<Limit> {
        let n = match self.get("limit") {
            None => default,
            Some(raw) => parse_u32(raw).ok_or_else(limit_error)?,
        };
        Limit::new(n, MAX_LIMIT).ok_or_else(limit_error)
    }

    /// `limit`, the list's filters, and either `offset` or `cursor` (never both). A cursor
    /// must come with the filter it was issued under.
    pub fn page(&self, default_limit: u32) -> AppResult<PageRequest> {
        let limit = self.limit(default_limit)?;
        let filter = self.call_filter()?;
        let position = match (self.get("offset"), self.get("cursor")) {
            (Some(_), Some(_)) => {
                return Err(AppError::invalid_parameter(
                    "cursor",
                    "cannot be combined with `offset`",
                ))
            }
            (Some(raw), None) => PagePosition::Offset(
                parse_u32(raw)
                    .filter(|n| *n <= MAX_OFFSET)
                    .ok_or_else(|| {
                        AppError::invalid_parameter(
                            "offset",
                            format!("must be an integer between 0 and {MAX_OFFSET}; use `cursor` to page deeper"),
                        )
                    })?,
            ),
            (None, Some(raw)) => {
                let (cursor, tag) = Cursor::decode_tagged(raw).ok_or_else(|| {
                    AppError::invalid_parameter("cursor", "is not a cursor this API issued")
                })?;
                if tag != filter.tag() {
                    return Err(AppError::invalid_parameter(
                        "cursor",
                        "was issued for other filters: send it with the filters of the page it came from",
                    ));
                }
                PagePosition::After(cursor)
            }
            (None, None) => PagePosition::Offset(0),
        };
        Ok(PageRequest {
            limit,
            position,
            filter,
        })
    }

    /// `status`, `direction`, `intent`, `from` and `to` on the list.
    pub fn call_filter(&self) -> AppResult<CallFilter> {
        let mut filter = CallFilter::none();
        if let Some(raw) = self.get("status") {
            let statuses = raw
                .split(',')
                .map(|s| CallStatus::parse(s).filter(|p| p.as_str() == s))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| {
                    AppError::invalid_parameter(
                        "status",
                        "must be a comma-separated list of call statuses (queued, ringing, in-progress, completed, busy, no-answer, canceled, failed)",
                    )
                })?;
            filter = filter.with_statuses(statuses);
        }
        if let Some(raw) = self.get("direction") {
            filter.direction = Some(
                Direction::parse(raw)
                    .filter(|d| d.as_str() == raw)
                    .ok_or_else(|| {
                        AppError::invalid_parameter("direction", "must be `inbound` or `outbound`")
                    })?,
            );
        }
        if let Some(raw) = self.get("intent") {
            let ok = !raw.is_empty()
                && raw.len() <= MAX_INTENT_LEN
                && !raw.chars().any(char::is_control);
            if !ok {
                return Err(AppError::invalid_parameter(
                    "intent",
                    format!("must be an intent of 1 to {MAX_INTENT_LEN} bytes"),
                ));
            }
            filter.intent = Some(raw.to_owned());
        }
        filter.from = self.instant("from")?;
        filter.to = self.instant("to")?;
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            check_range(from, to)?;
        }
        Ok(filter)
    }

    /// `limit`, and whole UTC days `from` (inclusive) `to` (exclusive) or all time.
    pub fn summary(&self, default_limit: u32) -> AppResult<SummaryRequest> {
        let limit = self.limit(default_limit)?;
        let range = match (self.instant("from")?, self.instant("to")?) {
            (None, None) => None,
            (Some(_), None) => {
                return Err(AppError::invalid_parameter(
                    "to",
                    "is required with `from`: a summary covers whole days from `from` up to `to`",
                ))
            }
            (None, Some(_)) => {
                return Err(AppError::invalid_parameter(
                    "from",
                    "is required with `to`: a summary covers whole days from `from` up to `to`",
                ))
            }
            (Some(from), Some(to)) => {
                for (field, t) in [("from", from), ("to", to)] {
                    if !t.is_midnight() {
                        return Err(AppError::invalid_parameter(
                            field,
                            "must be a UTC midnight (`2026-11-20` or `2026-11-20T00:00:00Z`): a summary counts whole days",
                        ));
                    }
                }
                check_range(from, to)?;
                Some(DayRange::new(from, to).ok_or_else(|| {
                    AppError::invalid_parameter("to", "must be a later UTC midnight than `from`")
                })?)
            }
        };
        Ok(SummaryRequest { limit, range })
    }

    /// An RFC 3339 instant, or a full date meaning its first instant (UTC).
    fn instant(&self, field: &'static str) -> AppResult<Option<Timestamp>> {
        self.get(field)
            .map(|raw| {
                Timestamp::parse_date(raw)
                    .or_else(|| Timestamp::parse_rfc3339(raw))
                    .ok_or_else(|| {
                        AppError::invalid_parameter(
                            field,
                            "must be an RFC 3339 instant (`2026-11-20T10:00:00Z`) or date (`2026-11-20`)",
                        )
                    })
            })
            .transpose()
    }
}

/// `from` before `to`, at most [`MAX_RANGE_DAYS`] apart.
fn check_range(from: Timestamp, to: Timestamp) -> AppResult<()> {
    if from >= to {
        return Err(AppError::invalid_parameter(
            "to",
            "must be later than `from`",
        ));
    }
    let span = to.millis().checked_sub(from.millis());
    if span.is_none_or(|ms| ms > MAX_RANGE_DAYS * MS_PER_DAY) {
        return Err(AppError::invalid_parameter(
            "to",
            format!("must be at most {MAX_RANGE_DAYS} days after `from`"),
        ));
    }
    Ok(())
}

fn limit_error() -> AppError {
    AppError::invalid_parameter(
        "limit",
        format!("must be an integer between 1 and {MAX_LIMIT}"),
    )
}

/// Plain decimal digits only: no sign, no spaces, no exponent.
fn parse_u32(raw: &str) -> Option<u32> {
    if raw.is_empty() || raw.len() > 10 || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallId, Timestamp};

    fn field_of(e: AppError) -> &'static str {
        match e {
            AppError::InvalidParameter { field, .. } => field,
            other => panic!("expected invalid_parameter, got {other:?}"),
        }
    }

    #[test]
    fn defaults_apply_when_nothing_is_given() {
        let p = Query::parse("").and_then(|q| q.page(50)).expect("valid");
        assert_eq!(p.limit.get(), 50);
        assert_eq!(p.position, PagePosition::Offset(0));
    }

    #[test]
    fn bad_limits_name_the_limit_field() {
        for raw in [
            "limit=0",
            "limit=501",
            "limit=-1",
            "limit=abc",
            "limit=1.5",
            "limit=",
            "limit=+5",
            "limit=99999999999",
        ] {
            let e = Query::parse(raw).and_then(|q| q.page(50)).expect_err(raw);
            assert_eq!(field_of(e), "limit", "{raw}");
        }
    }

    #[test]
    fn bad_offsets_name_the_offset_field() {
        for raw in ["offset=-1", "offset=x", "offset=100001", "offset="] {
            let e = Query::parse(raw).and_then(|q| q.page(50)).expect_err(raw);
            assert_eq!(field_of(e), "offset", "{raw}");
        }
    }

    #[test]
    fn bad_or_combined_cursors_name_the_cursor_field() {
        for raw in ["cursor=garbage!", "cursor=", "offset=0&cursor=abc"] {
            let e = Query::parse(raw).and_then(|q| q.page(50)).expect_err(raw);
            assert_eq!(field_of(e), "cursor", "{raw}");
        }
    }

    fn filter_of(raw: &str) -> AppResult<CallFilter> {
        Query::parse(raw).and_then(|q| q.page(50)).map(|p| p.filter)
    }

    #[test]
    fn filters_parse_to_one_canonical_form_however_they_are_written() {
        let a = filter_of("status=failed,busy,failed&direction=inbound&from=2026-11-20&to=2026-11-21T00:00:00%2B00:00")
            .expect("valid");
        let b = filter_of("to=2026-11-21T00:00:00Z&status=busy,failed&from=2026-11-20T00:00:00Z&direction=inbound")
            .expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.statuses(), &[CallStatus::Busy, CallStatus::Failed]);
        assert_eq!(filter_of("").expect("valid"), CallFilter::none());
        assert_eq!(
            filter_of("intent=billing")
                .expect("valid")
                .intent
                .as_deref(),
            Some("billing")
        );
    }

    #[test]
    fn bad_filters_name_their_parameter() {
        for (raw, field) in [
            ("status=done", "status"),
            ("status=completed,", "status"),
            ("status=", "status"),
            ("status=Completed", "status"),
            ("status=initiated", "status"),
            ("direction=sideways", "direction"),
            ("direction=outbound-api", "direction"),
            ("intent=", "intent"),
            ("from=yesterday", "from"),
            ("from=2026-02-30", "from"),
            ("to=2026-11-20T25:00:00Z", "to"),
            ("from=2026-11-21&to=2026-11-20", "to"),
            ("from=2026-11-20&to=2026-11-20", "to"),
            ("from=2025-01-01&to=2026-01-03", "to"),
            ("status=busy&status=failed", "status"),
            ("from=2026-11-20&from=2026-11-21", "from"),
        ] {
            let e = Query::parse(raw).and_then(|q| q.page(50)).expect_err(raw);
            assert_eq!(field_of(e), field, "{raw}");
        }
        let long = format!("intent={}", "x".repeat(MAX_INTENT_LEN + 1));
        assert_eq!(field_of(filter_of(&long).expect_err("long")), "intent");
    }

    #[test]
    fn a_cursor_is_accepted_only_with_the_filter_it_came_from() {
        let c = Cursor {
            started_at: Timestamp::from_millis(5),
            id: CallId::parse("CA1").expect("valid"),
        };
        let failed = filter_of("status=failed").expect("valid");
        let tagged = c.encode_for(failed.tag().as_deref());
        let ok = Query::parse(&format!("status=failed&cursor={tagged}"))
            .and_then(|q| q.page(50))
            .expect("same filter");
        assert_eq!(ok.position, PagePosition::After(c.clone()));
        for other in [
            format!("status=busy&cursor={tagged}"),
            format!("cursor={tagged}"),
            format!("status=failed&cursor={}", c.encode()),
        ] {
            let e = Query::parse(&other)
                .and_then(|q| q.page(50))
                .expect_err(&other);
            assert_eq!(field_of(e), "cursor", "{other}");
        }
    }

    #[test]
    fn a_summary_range_is_whole_days_given_together() {
        let q = |raw: &str| Query::parse(raw).and_then(|q| q.summary(100));
        let r = q("from=2026-11-20&to=2026-11-27").expect("valid");
        assert_eq!(r.range.map(|r| r.days().count()), Some(7));
        assert_eq!(q("").expect("valid").range, None);
        for (raw, field) in [
            ("from=2026-11-20", "to"),
            ("to=2026-11-20", "from"),
            ("from=2026-11-20T10:00:00Z&to=2026-11-27", "from"),
            ("from=2026-11-20&to=2026-11-27T00:00:01Z", "to"),
            ("from=2026-11-27&to=2026-11-20", "to"),
            ("from=2024-01-01&to=2025-01-02", "to"),
        ] {
            assert_eq!(field_of(q(raw).expect_err(raw)), field, "{raw}");
        }
    }

    #[test]
    fn a_repeated_parameter_is_refused() {
        let e = Query::parse("limit=1&limit=2").err().expect("refused");
        assert_eq!(field_of(e), "limit");
    }

    #[test]
    fn an_issued_cursor_is_accepted_and_unknown_parameters_ignored() {
        let c = Cursor {
            started_at: Timestamp::from_millis(5),
            id: CallId::parse("CA1").expect("valid"),
        };
        let raw = format!("limit=10&cursor={}&_=123", c.encode());
        let p = Query::parse(&raw).and_then(|q| q.page(50)).expect("valid");
        assert_eq!(p.position, PagePosition::After(c));
        assert_eq!(p.limit.get(), 10);
    }
}
