//! Query-string parsing into domain types. Each bad value becomes a 400 naming its field.

use crate::domain::{Cursor, Limit, PagePosition, PageRequest};
use crate::error::{AppError, AppResult};

/// The largest `offset` accepted; deeper pages are cheaper through `cursor`.
pub const MAX_OFFSET: u32 = 100_000;
pub use crate::domain::MAX_LIMIT;

/// The query string's pairs, each name at most once.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: &str) -> AppResult<Self> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (k, v) in form_urlencoded::parse(raw.as_bytes()) {
            if let Some(field) = ["limit", "offset", "cursor"].into_iter().find(|f| *f == k) {
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

    /// `limit` plus either `offset` or `cursor` (never both).
    pub fn page(&self, default_limit: u32) -> AppResult<PageRequest> {
        let limit = self.limit(default_limit)?;
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
            (None, Some(raw)) => PagePosition::After(Cursor::decode(raw).ok_or_else(|| {
                AppError::invalid_parameter("cursor", "is not a cursor this API issued")
            })?),
            (None, None) => PagePosition::Offset(0),
        };
        Ok(PageRequest { limit, position })
    }
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
