//! Refresh on write by patch: a landing view held at the version just before a delivery,
//! and the one call that delivery changed (read back in its batch), give the view at the
//! delivery's version without reading the list again.
//!
//! Every change of a delivery is about its one call (`store::ingest` asks for the patch only
//! then), and a listed call's row holds everything a page or a summary shows of it, so the
//! new list is the old one with that call put where it now sorts — newest first, by
//! `startedAt` then `id`, as the SQL orders — or taken out, and cut to the limit. The result
//! is the same bytes a fresh read writes (the JSON of each listed call is kept as it was).
//!
//! When the list alone cannot say, there is no patch (`None`) and the view is simply not
//! refreshed: a listed call leaving the list, or moving past its end, while calls beyond it
//! exist (a page with a next cursor) or may exist (a summary listing exactly `limit` calls).

use crate::domain::{CallId, Cursor, Limit, Timestamp};
use crate::reads::{split_json_array, summary_json, Listed, Listing, PageMeta, Payload};
use crate::store::ChangedCall;
use std::borrow::Cow;

/// Where a summary's list starts in its `data` (`summary_json`'s layout: the calls first,
/// then the aggregates, which a patch replaces).
const SUMMARY_CALLS: &str = "{\"calls\":";

/// One listed call: where it sorts, and its JSON as listed.
struct Item<'a> {
    started_at: i64,
    id: Cow<'a, str>,
    json: &'a str,
}

impl Item<'_> {
    /// Whether `self` is listed before `other` (`started_at DESC, id DESC`; SQLite compares
    /// text bytewise, as `str` does).
    fn sorts_before(&self, other: &Item<'_>) -> bool {
        (self.started_at, self.id.as_ref()) > (other.started_at, other.id.as_ref())
    }
}

/// The calls listed in `text` by the array at `at`, found once per payload (`Listing`):
/// `None` when that is not a well-formed list of calls, or (`page`) when text follows it.
fn listed(payload: &Payload, at: usize, whole: bool) -> Option<&[Listed]> {
    payload.listing.get_or_find(|| {
        let data = payload.data_json();
        let text = data.get(at..)?;
        let (list, rest) = split_json_array(text)?;
        if whole && !rest.is_empty() {
            return None;
        }
        list.iter()
            .map(|json| {
                let place = Cursor::of_listed_call(json)?;
                // `json` is a slice of `text`: its offset is where it starts.
                let start = at + (json.as_ptr() as usize - text.as_ptr() as usize);
                Some(Listed {
                    start,
                    end: start + json.len(),
                    started_at: place.started_at.millis(),
                    id: place.id.as_str().into(),
                })
            })
            .collect()
    })
}

fn items<'a>(text: &'a str, listed: &'a [Listed]) -> Option<Vec<Item<'a>>> {
    listed
        .iter()
        .map(|l| {
            Some(Item {
                started_at: l.started_at,
                id: Cow::Borrowed(&l.id),
                json: text.get(l.start..l.end)?,
            })
        })
        .collect()
}

/// `items` (newest first, at most `limit`, `more` when calls beyond them exist or may) with
/// the call `id` put where `now` sorts, or taken out when `now` is `None`; with whether calls
/// beyond the result exist. `None` when the list alone cannot say.
fn splice<'a>(
    mut items: Vec<Item<'a>>,
    limit: usize,
    more: bool,
    id: &str,
    now: Option<Item<'a>>,
) -> Option<(Vec<Item<'a>>, bool)> {
    let was = items.iter().position(|i| i.id == id);
    let old = was.map(|at| items.remove(at));
    let Some(item) = now else {
        // Out of the list: its place goes to the first call beyond it, if there is one.
        return match (was, more) {
            (Some(_), true) => None,
            (Some(_), false) => Some((items, false)),
            (None, _) => Some((items, more)),
        };
    };
    let at = items.partition_point(|i| i.sorts_before(&item));
    if more && at == items.len() {
        // It sorts after every call listed. Not listed before: the list is unchanged. Listed
        // last and not moved later: it keeps its place (every call beyond the list sorts
        // after where it was). Otherwise its place may go to a call beyond the list, which
        // this cannot see.
        let keeps_last_place = was == Some(at) && old.is_some_and(|o| !o.sorts_before(&item));
        if !keeps_last_place {
            return was.is_none().then_some((items, true));
        }
    }
    items.insert(at, item);
    let more = more || items.len() > limit;
    items.truncate(limit);
    Some((items, more))
}

/// The JSON array of `items` (as `reads::json_array` writes it), with where each item will
/// sit in a text that has the array at `at`.
fn join(items: &[Item<'_>], at: usize) -> (String, Vec<Listed>) {
    let len = items.iter().map(|i| i.json.len() + 1).sum::<usize>();
    let mut out = String::with_capacity(len + 2);
    out.push('[');
    let mut listed = Vec::with_capacity(items.len());
    for (n, item) in items.iter().enumerate() {
        if n > 0 {
            out.push(',');
        }
        let start = at + out.len();
        out.push_str(item.json);
        listed.push(Listed {
            start,
            end: at + out.len(),
            started_at: item.started_at,
            id: item.id.as_ref().into(),
        });
    }
    out.push(']');
    (out, listed)
}

/// The changed call as a list holds it; `Some(None)` when it is in no list; `None` when its
/// JSON is not about `id`.
fn listed_item<'a>(changed: &'a ChangedCall, id: &CallId) -> Option<Option<Item<'a>>> {
    match changed.json.as_deref() {
        None => Some(None),
        Some(json) => {
            let place = Cursor::of_listed_call(json)?;
            (place.id == *id).then_some(Some(Item {
                started_at: place.started_at.millis(),
                id: Cow::Owned(place.id.as_str().to_owned()),
                json,
            }))
        }
    }
}

/// A first page of `limit` calls, `old` at the version before the delivery, patched with
/// the delivery's call `id` as it is now.
pub fn page(old: &Payload, limit: Limit, id: &CallId, changed: &ChangedCall) -> Option<Payload> {
    let more = old.page.as_ref()?.next_cursor.is_some();
    let listed = listed(old, 0, true)?;
    let now = listed_item(changed, id)?;
    let text = old.data_json();
    let items = items(&text, listed)?;
    let (items, more) = splice(items, limit.get() as usize, more, id.as_str(), now)?;
    let next_cursor = match (more, items.last()) {
        (false, _) => None,
        (true, Some(last)) => Some(
            Cursor {
                started_at: Timestamp::from_millis(last.started_at),
                id: CallId::parse(&last.id)?,
            }
            .encode(),
        ),
        (true, None) => return None,
    };
    let meta = PageMeta {
        count: items.len(),
        next_cursor,
    };
    let (data, listed) = join(&items, 0);
    let mut patched = Payload::from_json(data, Some(meta));
    patched.listing = Listing::known(listed);
    Some(patched)
}

/// An intent summary listing `limit` analyzed calls, `old` at the version before the
/// delivery, patched with the delivery's call `id` as it is now and the owner's aggregates.
pub fn summary(old: &Payload, limit: Limit, id: &CallId, changed: &ChangedCall) -> Option<Payload> {
    let stats = changed.stats.as_ref()?;
    let text = old.data_json();
    if !text.starts_with(SUMMARY_CALLS) {
        return None;
    }
    let listed = listed(old, SUMMARY_CALLS.len(), false)?;
    let limit = limit.get() as usize;
    // A summary does not say whether more analyzed calls exist: a full list may have more.
    let more = listed.len() >= limit;
    let now = listed_item(changed, id)?.filter(|_| changed.analyzed);
    let items = items(&text, listed)?;
    let (items, _) = splice(items, limit, more, id.as_str(), now)?;
    // `summary_json` writes the list right after `SUMMARY_CALLS`, the aggregates after it.
    let (calls, listed) = join(&items, SUMMARY_CALLS.len());
    let data = summary_json(&calls, stats).ok()?;
    let mut patched = Payload::from_json(data, None);
    patched.listing = Listing::known(listed);
    Some(patched)
}

#[cfg(test)]
mod tests;
