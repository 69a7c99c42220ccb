//! Cache keys. The user is part of every key's type, so a key for one user's data cannot be
//! built from another's. A key has a logical part (what is cached, the memory tier's key) and,
//! for a page or a summary, the user's version it was loaded at (part of the KV key): a write
//! moves the user's version in D1, which retires every such key built under the old one
//! without touching them.
//!
//! A key for one call (detail, analysis, enrichment) is the same in KV as in memory, with the
//! version inside the value: most changes are about other calls, and an entry that no change
//! since was about can be carried to the newer version (`read.rs`), from KV as from memory.
//!
//! ```text
//! v2:recordings:user:{u}:page:{o<offset>|c<cursor digest>}:limit:{n}
//! v2:recordings:user:{u}:page:{o<offset>|c<cursor digest>}:limit:{n}:filter:{filter tag}
//! v2:intent:user:{u}:summary:limit:{n}
//! v2:intent:user:{u}:summary:limit:{n}:from:{yyyy-mm-dd}:to:{yyyy-mm-dd}
//! v2:recordings:user:{u}:call:{c}
//! v2:intent:user:{u}:analysis:{c}
//! v2:enhanced:user:{u}:call:{c}
//! ```
//! and in KV `{logical}|v{version}` for pages and summaries, `{logical}` for a call's keys.

use crate::domain::{
    CallId, DayRange, Limit, PagePosition, PageRequest, Timestamp, UserId, Version,
};
use sha2::{Digest, Sha256};

/// Bumped when the cached value format changes: old entries simply stop matching.
pub const FORMAT: &str = "v2";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Page,
    Summary,
    Call,
    Analysis,
    Enhanced,
}

/// What is cached, for whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeySpec {
    pub kind: Kind,
    pub user: UserId,
    /// The call, for per-call kinds.
    pub call: Option<CallId>,
    /// A ranged summary's end: once past, its entry may live longer (`Policy::ttl_past_range`).
    range_end: Option<Timestamp>,
    logical: String,
}

impl KeySpec {
    pub fn page(user: &UserId, page: &PageRequest) -> Self {
        let position = match &page.position {
            PagePosition::Offset(o) => format!("o{o}"),
            // Cursors can be long; a digest keeps KV keys under 512 bytes.
            PagePosition::After(c) => {
                let digest = Sha256::digest(c.encode().as_bytes());
                format!("c{}", crate::hex::encode(&digest[..12]))
            }
        };
        let mut logical = format!(
            "{FORMAT}:recordings:user:{user}:page:{position}:limit:{}",
            page.limit.get()
        );
        if let Some(tag) = page.filter.tag() {
            // The tag names the canonical filter: the same filter written two ways is one key.
            logical.push_str(":filter:");
            logical.push_str(&tag);
        }
        Self::new(Kind::Page, user, None, logical)
    }

    pub fn summary(user: &UserId, limit: Limit) -> Self {
        let logical = format!("{FORMAT}:intent:user:{user}:summary:limit:{}", limit.get());
        Self::new(Kind::Summary, user, None, logical)
    }

    pub fn ranged_summary(user: &UserId, limit: Limit, range: DayRange) -> Self {
        let logical = format!(
            "{FORMAT}:intent:user:{user}:summary:limit:{}:from:{}:to:{}",
            limit.get(),
            Timestamp::date_of_day(range.first_day()),
            Timestamp::date_of_day(range.end_day()),
        );
        let mut spec = Self::new(Kind::Summary, user, None, logical);
        spec.range_end = Some(range.to());
        spec
    }

    /// A ranged summary's end, for its lifetime.
    pub fn range_end(&self) -> Option<Timestamp> {
        self.range_end
    }

    pub fn call(user: &UserId, call: &CallId) -> Self {
        let logical = format!("{FORMAT}:recordings:user:{user}:call:{call}");
        Self::new(Kind::Call, user, Some(call), logical)
    }

    pub fn analysis(user: &UserId, call: &CallId) -> Self {
        let logical = format!("{FORMAT}:intent:user:{user}:analysis:{call}");
        Self::new(Kind::Analysis, user, Some(call), logical)
    }

    pub fn enhanced(user: &UserId, call: &CallId) -> Self {
        let logical = format!("{FORMAT}:enhanced:user:{user}:call:{call}");
        Self::new(Kind::Enhanced, user, Some(call), logical)
    }

    fn new(kind: Kind, user: &UserId, call: Option<&CallId>, logical: String) -> Self {
        Self {
            kind,
            user: user.clone(),
            call: call.cloned(),
            range_end: None,
            logical,
        }
    }

    /// Recovers the spec of one of `user`'s logical keys (for listing what memory holds).
    pub fn from_logical(logical: &str, user: &UserId) -> Option<Self> {
        let rest = logical.strip_prefix(FORMAT)?.strip_prefix(':')?;
        let (kind, rest) = rest.split_once(":user:")?;
        let rest = rest.strip_prefix(user.as_str())?.strip_prefix(':')?;
        let call = |s: &str| CallId::parse(s);
        let kind = match (kind, rest.split_once(':')) {
            ("recordings", Some(("page", _))) => Kind::Page,
            ("recordings", Some(("call", c))) => {
                return Some(Self::new(
                    Kind::Call,
                    user,
                    call(c).as_ref(),
                    logical.to_owned(),
                ))
            }
            ("intent", Some(("summary", rest))) => {
                let mut spec = Self::new(Kind::Summary, user, None, logical.to_owned());
                spec.range_end = rest
                    .split_once(":to:")
                    .and_then(|(_, to)| Timestamp::parse_date(to));
                return Some(spec);
            }
            ("intent", Some(("analysis", c))) => {
                return Some(Self::new(
                    Kind::Analysis,
                    user,
                    call(c).as_ref(),
                    logical.to_owned(),
                ))
            }
            ("enhanced", Some(("call", c))) => {
                return Some(Self::new(
                    Kind::Enhanced,
                    user,
                    call(c).as_ref(),
                    logical.to_owned(),
                ))
            }
            _ => return None,
        };
        Some(Self::new(kind, user, None, logical.to_owned()))
    }

    /// The memory tier's key.
    pub fn logical(&self) -> &str {
        &self.logical
    }

    /// The logical key under the version it was loaded at: a page's or summary's KV key, and
    /// the in-flight mark of a load of any kind.
    pub fn versioned(&self, version: Version) -> String {
        format!("{}|v{}", self.logical, version.get())
    }

    /// The KV key of an entry loaded at `version`: the versioned key for a page or summary;
    /// the logical key for a call's (the entry holds its version, and a reader decides
    /// whether it may be carried to the version it knows).
    pub fn kv_key(&self, version: Version) -> String {
        if self.call.is_some() {
            self.logical.clone()
        } else {
            self.versioned(version)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{CallFilter, CallStatus, Cursor};

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("valid")
    }

    fn c(s: &str) -> CallId {
        CallId::parse(s).expect("valid")
    }

    #[test]
    fn keys_follow_the_documented_scheme() {
        let page = PageRequest {
            limit: Limit::new(50, 500).expect("ok"),
            position: PagePosition::Offset(100),
            filter: crate::domain::CallFilter::none(),
        };
        assert_eq!(
            KeySpec::page(&u("ada"), &page).logical(),
            "v2:recordings:user:ada:page:o100:limit:50"
        );
        assert_eq!(
            KeySpec::call(&u("ada"), &c("CA1")).logical(),
            "v2:recordings:user:ada:call:CA1"
        );
        assert_eq!(
            KeySpec::enhanced(&u("ada"), &c("CA1")).logical(),
            "v2:enhanced:user:ada:call:CA1"
        );
        assert_eq!(
            KeySpec::analysis(&u("ada"), &c("CA1")).logical(),
            "v2:intent:user:ada:analysis:CA1"
        );
        assert_eq!(
            KeySpec::summary(&u("ada"), Limit::new(100, 500).expect("ok")).kv_key(Version::new(17)),
            "v2:intent:user:ada:summary:limit:100|v17"
        );
    }

    fn week() -> DayRange {
        let day = |s: &str| Timestamp::parse_date(s).expect("a date");
        DayRange::new(day("2026-11-20"), day("2026-11-27")).expect("a week")
    }

    #[test]
    fn filtered_pages_and_ranged_summaries_have_keys_of_their_own() {
        let limit = Limit::new(50, 500).expect("ok");
        let plain = PageRequest::unfiltered(limit, PagePosition::Offset(0));
        let failed = |statuses: &[CallStatus]| PageRequest {
            filter: CallFilter::none().with_statuses(statuses.iter().copied()),
            ..plain.clone()
        };
        let key = |p: &PageRequest| KeySpec::page(&u("ada"), p).logical().to_owned();
        assert_eq!(key(&plain), "v2:recordings:user:ada:page:o0:limit:50");
        assert!(key(&failed(&[CallStatus::Failed]))
            .starts_with("v2:recordings:user:ada:page:o0:limit:50:filter:"));
        assert_ne!(
            key(&failed(&[CallStatus::Failed])),
            key(&failed(&[CallStatus::Busy]))
        );
        // The same filter written two ways is one key.
        assert_eq!(
            key(&failed(&[CallStatus::Busy, CallStatus::Failed])),
            key(&failed(&[
                CallStatus::Failed,
                CallStatus::Busy,
                CallStatus::Failed
            ]))
        );
        let ranged = KeySpec::ranged_summary(&u("ada"), Limit::new(100, 500).expect("ok"), week());
        assert_eq!(
            ranged.logical(),
            "v2:intent:user:ada:summary:limit:100:from:2026-11-20:to:2026-11-27"
        );
        assert_eq!(ranged.range_end(), Timestamp::parse_date("2026-11-27"));
        assert_ne!(
            ranged.logical(),
            KeySpec::summary(&u("ada"), Limit::new(100, 500).expect("ok")).logical()
        );
    }

    #[test]
    fn a_calls_kv_key_holds_no_version_so_a_later_reader_can_carry_it() {
        let call = KeySpec::analysis(&u("ada"), &c("CA1"));
        assert_eq!(call.kv_key(Version::new(17)), call.logical());
        assert_eq!(call.kv_key(Version::new(17)), call.kv_key(Version::new(18)));
    }

    #[test]
    fn a_logical_key_gives_back_its_spec() {
        let page = PageRequest {
            limit: Limit::new(50, 500).expect("ok"),
            position: PagePosition::Offset(0),
            filter: crate::domain::CallFilter::none(),
        };
        for spec in [
            KeySpec::page(&u("ada"), &page),
            KeySpec::summary(&u("ada"), Limit::new(100, 500).expect("ok")),
            KeySpec::ranged_summary(&u("ada"), Limit::new(100, 500).expect("ok"), week()),
            KeySpec::page(
                &u("ada"),
                &PageRequest {
                    filter: CallFilter::none().with_statuses([CallStatus::Failed]),
                    ..page.clone()
                },
            ),
            KeySpec::call(&u("ada"), &c("CA1")),
            KeySpec::analysis(&u("ada"), &c("CA1")),
            KeySpec::enhanced(&u("ada"), &c("CA1")),
        ] {
            assert_eq!(
                KeySpec::from_logical(spec.logical(), &u("ada")),
                Some(spec.clone())
            );
            assert_eq!(KeySpec::from_logical(spec.logical(), &u("bob")), None);
        }
    }

    #[test]
    fn two_users_never_share_a_key_even_with_crafted_ids() {
        // Separators are outside both id alphabets, so no id can forge another user's key.
        let a = KeySpec::call(&u("ada"), &c("CA1"));
        let b = KeySpec::call(&u("ada.x"), &c("CA1"));
        assert_ne!(a.logical(), b.logical());
        assert!(UserId::parse("ada:call:CA1").is_none());
        assert!(CallId::parse("CA1|v0").is_none());
    }

    #[test]
    fn cursor_keys_stay_short_whatever_the_cursor() {
        let cursor = Cursor {
            started_at: Timestamp::from_millis(1),
            id: c(&"C".repeat(128)),
        };
        let page = PageRequest {
            limit: Limit::new(100, 500).expect("ok"),
            position: PagePosition::After(cursor),
            filter: crate::domain::CallFilter::none(),
        };
        let key = KeySpec::page(&u(&"u".repeat(128)), &page).versioned(Version::new(u64::MAX));
        assert!(key.len() <= 512, "{} bytes", key.len());
    }
}
