//! What a dashboard asks of its calls beyond paging: a filter on the list (statuses, direction,
//! intent, a start-time range) and a whole-day range on the intent summary.
//!
//! Each has one canonical form, whatever order or spelling the query used: statuses in the
//! order a call moves through them, without repeats, and instants as milliseconds. The cache
//! keys a filtered page by a digest of that form ([`CallFilter::tag`]), and a filtered page's
//! cursor carries the same digest, so a cursor is only ever used with the filter it came from.

use super::{CallStatus, Direction, Timestamp};
use sha2::{Digest, Sha256};

/// The longest range either route accepts, in days.
pub const MAX_RANGE_DAYS: i64 = 366;
/// The longest `intent` a filter names (the pipelines' intents are short labels).
pub const MAX_INTENT_LEN: usize = 100;

/// Which of a user's calls a page lists. Every part is optional; they combine with AND.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct CallFilter {
    statuses: Vec<CallStatus>,
    pub direction: Option<Direction>,
    /// Calls whose completed analysis has this intent (`unknown`: one without an intent).
    pub intent: Option<String>,
    /// `startedAt >= from`.
    pub from: Option<Timestamp>,
    /// `startedAt < to`.
    pub to: Option<Timestamp>,
}

impl CallFilter {
    /// No filter at all: the plain list.
    pub fn none() -> Self {
        Self::default()
    }

    /// `statuses` in canonical order, each once.
    pub fn with_statuses(mut self, statuses: impl IntoIterator<Item = CallStatus>) -> Self {
        let mut all: Vec<CallStatus> = statuses.into_iter().collect();
        crate::sort::sort_by_key(&mut all, |s| *s as u8);
        all.dedup();
        self.statuses = all;
        self
    }

    pub fn with_direction(mut self, direction: Option<Direction>) -> Self {
        self.direction = direction;
        self
    }

    pub fn with_intent(mut self, intent: Option<String>) -> Self {
        self.intent = intent;
        self
    }

    pub fn with_range(mut self, from: Option<Timestamp>, to: Option<Timestamp>) -> Self {
        self.from = from;
        self.to = to;
        self
    }

    /// The statuses a call may have to be listed, in canonical order; empty means any.
    pub fn statuses(&self) -> &[CallStatus] {
        &self.statuses
    }

    pub fn is_empty(&self) -> bool {
        self.statuses.is_empty()
            && self.direction.is_none()
            && self.intent.is_none()
            && self.from.is_none()
            && self.to.is_none()
    }

    /// 24 hex digits naming the canonical filter: the filtered page's cache key and the tag
    /// its cursors carry. `None` for no filter (the plain list's keys and cursors are as they
    /// always were). The parts are length-prefixed, so no intent can spell another filter.
    pub fn tag(&self) -> Option<String> {
        if self.is_empty() {
            return None;
        }
        let mut h = Sha256::new();
        for s in &self.statuses {
            h.update([b's', *s as u8]);
        }
        if let Some(d) = self.direction {
            h.update([b'd', d as u8]);
        }
        if let Some(i) = &self.intent {
            h.update(b"i");
            h.update((i.len() as u64).to_le_bytes());
            h.update(i.as_bytes());
        }
        for (part, t) in [(b'f', self.from), (b't', self.to)] {
            if let Some(t) = t {
                h.update([part]);
                h.update(t.millis().to_le_bytes());
            }
        }
        Some(crate::hex::encode(&h.finalize()[..12]))
    }

    /// `meta.filters`: the canonical filter, given parts only.
    pub fn echo(&self) -> FilterEcho {
        FilterEcho {
            status: (!self.statuses.is_empty())
                .then(|| self.statuses.iter().map(|s| s.as_str()).collect()),
            direction: self.direction.map(Direction::as_str),
            intent: self.intent.clone(),
            from: self.from,
            to: self.to,
        }
    }
}

/// The canonical filter as `meta.filters` writes it.
/// Members that are `None` are left out.
#[derive(Debug, Clone, PartialEq)]
pub struct FilterEcho {
    pub status: Option<Vec<&'static str>>,
    pub direction: Option<&'static str>,
    pub intent: Option<String>,
    pub from: Option<Timestamp>,
    pub to: Option<Timestamp>,
}

crate::json_object!(FilterEcho {
    "status"?: status,
    "direction"?: direction,
    "intent"?: intent,
    "from"?: from,
    "to"?: to,
});

/// Whole UTC days, `first` up to but not including `end` (days since 1970-01-01): the range of
/// a ranged summary, which per-day aggregates answer without reading the calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DayRange {
    first: i64,
    end: i64,
}

impl DayRange {
    /// From the first instant of one day to the first instant of a later one, at most
    /// [`MAX_RANGE_DAYS`] apart.
    pub fn new(from: Timestamp, to: Timestamp) -> Option<Self> {
        let ok = from.is_midnight()
            && to.is_midnight()
            && from < to
            && to.day() - from.day() <= MAX_RANGE_DAYS;
        ok.then(|| Self {
            first: from.day(),
            end: to.day(),
        })
    }

    pub fn first_day(self) -> i64 {
        self.first
    }

    /// The day after the last one.
    pub fn end_day(self) -> i64 {
        self.end
    }

    pub fn days(self) -> impl Iterator<Item = i64> {
        self.first..self.end
    }

    pub fn from(self) -> Timestamp {
        Timestamp::from_millis(self.first * super::time::MS_PER_DAY)
    }

    pub fn to(self) -> Timestamp {
        Timestamp::from_millis(self.end * super::time::MS_PER_DAY)
    }
}

/// An intent summary request: how many analyzed calls to list, and optionally whole days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SummaryRequest {
    pub limit: super::Limit,
    pub range: Option<DayRange>,
}

impl SummaryRequest {
    pub fn all_time(limit: super::Limit) -> Self {
        Self { limit, range: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).expect("valid")
    }

    #[test]
    fn the_same_filter_written_two_ways_has_one_tag() {
        let a = CallFilter::none().with_statuses([
            CallStatus::Failed,
            CallStatus::Busy,
            CallStatus::Failed,
        ]);
        let b = CallFilter::none().with_statuses([CallStatus::Busy, CallStatus::Failed]);
        assert_eq!(a, b);
        assert_eq!(a.tag(), b.tag());
        assert_eq!(a.statuses(), &[CallStatus::Busy, CallStatus::Failed]);
        assert_eq!(CallFilter::none().tag(), None);
    }

    #[test]
    fn every_part_of_a_filter_moves_its_tag() {
        let base = CallFilter::none();
        let tags: Vec<Option<String>> = [
            base.clone().with_statuses([CallStatus::Busy]),
            base.clone().with_statuses([CallStatus::Failed]),
            base.clone().with_direction(Some(Direction::Inbound)),
            base.clone().with_direction(Some(Direction::Outbound)),
            base.clone().with_intent(Some("billing".into())),
            base.clone().with_intent(Some("billingx".into())),
            base.clone()
                .with_range(Some(at("2026-11-20T00:00:00Z")), None),
            base.clone()
                .with_range(None, Some(at("2026-11-20T00:00:00Z"))),
        ]
        .iter()
        .map(CallFilter::tag)
        .collect();
        let unique: std::collections::HashSet<_> = tags.iter().collect();
        assert_eq!(unique.len(), tags.len(), "{tags:?}");
        assert!(tags
            .iter()
            .all(|t| t.as_ref().is_some_and(|t| t.len() == 24)));
    }

    #[test]
    fn a_day_range_is_whole_days_in_order_and_at_most_a_leap_year() {
        let r =
            DayRange::new(at("2026-11-20T00:00:00Z"), at("2026-11-27T00:00:00Z")).expect("a week");
        assert_eq!(r.days().count(), 7);
        assert_eq!(r.from(), at("2026-11-20T00:00:00Z"));
        assert_eq!(r.to(), at("2026-11-27T00:00:00Z"));
        assert!(DayRange::new(at("2026-11-20T00:00:01Z"), at("2026-11-27T00:00:00Z")).is_none());
        assert!(DayRange::new(at("2026-11-27T00:00:00Z"), at("2026-11-20T00:00:00Z")).is_none());
        assert!(DayRange::new(at("2026-11-20T00:00:00Z"), at("2026-11-20T00:00:00Z")).is_none());
        assert!(DayRange::new(at("2024-01-01T00:00:00Z"), at("2025-01-01T00:00:00Z")).is_some());
        assert!(DayRange::new(at("2024-01-01T00:00:00Z"), at("2025-01-02T00:00:00Z")).is_none());
    }
}
