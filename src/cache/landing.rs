//! Refresh on write, for keys someone is looking at.
//!
//! When this isolate serves a user's first page or summary, it notes that view as *watched*
//! for [`WATCH_WINDOW_MS`]. A webhook then asks the store for what the watched views need,
//! read in the delivery's own D1 batch after its writes — so at exactly the version the
//! batch returns: the one call it changed (and the owner's aggregates), to patch the views
//! held here at the version before (`patch.rs`), and the watched views not held here read
//! whole, only for an owner among the watched users (the SQL matches no row for anyone
//! else, so a user nobody is looking at costs nothing extra). When the delivery does not
//! name its owner (a Twilio callback routed by number), only the changed call is read.
//! The worker keeps the results in memory and KV under that version: the next read here is
//! a memory hit, and other isolates moving to the new version find it in KV instead of
//! loading from D1.
//!
//! Bounds: [`MAX_WATCHED_USERS`] users per isolate (the least recently read is forgotten
//! first), and at most [`MAX_VIEWS_PER_WRITE`] views read back by one webhook.

use crate::domain::{LandingView, UserId};
use crate::indexed::IndexedMap;
use crate::store::RefreshAsk;

/// How long after a read a view counts as watched.
pub const WATCH_WINDOW_MS: i64 = 60_000;
/// Users whose views one isolate watches at most.
pub const MAX_WATCHED_USERS: usize = 1024;
/// Views one webhook reads back at most (each page is `limit + 1` rows, each summary a few
/// rows plus its calls).
pub const MAX_VIEWS_PER_WRITE: usize = 4;

/// The sort key of views newest first (one function for both sorts: one copy in the module).
fn newest_first(view: &(LandingView, i64)) -> std::cmp::Reverse<i64> {
    std::cmp::Reverse(view.1)
}

#[derive(Debug, Default)]
pub struct Watched {
    /// Per user: each view and when it was last read (epoch ms).
    by_user: IndexedMap<UserId, Vec<(LandingView, i64)>>,
}

impl Watched {
    pub fn len(&self) -> usize {
        self.by_user.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_user.is_empty()
    }

    /// `user` read `view` at `now`.
    pub fn saw(&mut self, user: &UserId, view: LandingView, now: i64) {
        // The common case on every landing read: a view already watched, updated in place.
        if let Some(seen) = self
            .by_user
            .get_mut(user)
            .and_then(|views| views.iter_mut().find(|(v, _)| *v == view))
        {
            seen.1 = now;
            return;
        }
        if !self.by_user.contains_key(user) && self.by_user.len() >= MAX_WATCHED_USERS {
            self.by_user
                .retain(|_, views| views.iter().any(|(_, at)| now - at < WATCH_WINDOW_MS));
            if self.by_user.len() >= MAX_WATCHED_USERS {
                let oldest = self
                    .by_user
                    .iter()
                    .min_by_key(|(_, views)| views.iter().map(|(_, at)| *at).max())
                    .map(|(u, _)| u.clone());
                if let Some(oldest) = oldest {
                    self.by_user.remove(&oldest);
                }
            }
        }
        let views = self.by_user.get_or_insert_with(user, Vec::new);
        match views.iter_mut().find(|(v, _)| *v == view) {
            Some(seen) => seen.1 = now,
            None => {
                views.push((view, now));
                // A user switching limits keeps only the newest few.
                if views.len() > MAX_VIEWS_PER_WRITE {
                    crate::sort::sort_by_key(views, newest_first);
                    views.truncate(MAX_VIEWS_PER_WRITE);
                }
            }
        }
    }

    /// What a webhook should read back. With `owner` known in advance (an explicit user in the
    /// delivery), only that user, and nothing when they are not watched; otherwise every
    /// watched user (the store resolves the owner). Views are the most recently read ones.
    pub fn ask(&self, owner: Option<&UserId>, now: i64) -> RefreshAsk {
        let live = |views: &Vec<(LandingView, i64)>| -> Vec<(LandingView, i64)> {
            views
                .iter()
                .filter(|(_, at)| now - at < WATCH_WINDOW_MS)
                .copied()
                .collect()
        };
        let mut users = Vec::new();
        let mut views: Vec<(LandingView, i64)> = Vec::new();
        let mut take = |user: &UserId, seen: Vec<(LandingView, i64)>| {
            if seen.is_empty() {
                return;
            }
            users.push(user.clone());
            for (view, at) in seen {
                match views.iter_mut().find(|(v, _)| *v == view) {
                    Some(v) => v.1 = v.1.max(at),
                    None => views.push((view, at)),
                }
            }
        };
        match owner {
            Some(user) => {
                if let Some(v) = self.by_user.get(user) {
                    take(user, live(v));
                }
            }
            None => {
                for (user, v) in self.by_user.iter() {
                    take(user, live(v));
                }
            }
        }
        crate::sort::sort_by_key(&mut views, newest_first);
        views.truncate(MAX_VIEWS_PER_WRITE);
        RefreshAsk {
            users,
            views: views.into_iter().map(|(v, _)| v).collect(),
            ..RefreshAsk::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Limit;

    fn u(s: &str) -> UserId {
        UserId::parse(s).expect("id")
    }

    fn page(n: u32) -> LandingView {
        LandingView::FirstPage(Limit::new(n, 500).expect("limit"))
    }

    #[test]
    fn a_view_is_watched_for_the_window_after_its_last_read() {
        let mut w = Watched::default();
        w.saw(&u("ada"), page(50), 1_000);
        let ask = w.ask(None, 1_000 + WATCH_WINDOW_MS - 1);
        assert_eq!((ask.users, ask.views), (vec![u("ada")], vec![page(50)]));
        assert!(w.ask(None, 1_000 + WATCH_WINDOW_MS).is_empty());
    }

    #[test]
    fn an_explicit_owner_nobody_watches_asks_for_nothing() {
        let mut w = Watched::default();
        w.saw(&u("ada"), page(50), 0);
        assert!(w.ask(Some(&u("bob")), 1).is_empty());
        assert_eq!(w.ask(Some(&u("ada")), 1).users, vec![u("ada")]);
    }

    #[test]
    fn users_and_views_stay_within_their_bounds() {
        let mut w = Watched::default();
        for i in 0..(MAX_WATCHED_USERS + 10) {
            w.saw(&u(&format!("user{i}")), page(50), i as i64);
        }
        assert_eq!(w.len(), MAX_WATCHED_USERS);
        assert!(
            w.ask(Some(&u("user0")), 1_000).is_empty(),
            "the least recent went first"
        );
        for n in 1..=10 {
            w.saw(&u("ada"), page(n), 2_000 + i64::from(n));
        }
        let ask = w.ask(Some(&u("ada")), 3_000);
        assert_eq!(ask.views, vec![page(10), page(9), page(8), page(7)]);
        assert!(w.ask(None, 3_000).views.len() <= MAX_VIEWS_PER_WRITE);
    }
}
