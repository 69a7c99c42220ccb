//! Versions and invalidation: what this isolate knows of each user's version, how it learns
//! more from D1 (the one authority), and how writes and purges move it.
//!
//! A view entry is *synced* when D1 told it within the last `sync_ms`; a read never trusts an
//! older one. Syncs record when they *started*: the answer reflects every write acknowledged
//! before that instant, which is what the staleness bound is about.
//!
//! Two ways to sync, both D1 reads:
//! - **By name**: the versions of the users asked for (one query for all of them). Used for a
//!   user this isolate knows nothing reliable about.
//! - **The version feed** (`migrations/0009`): every change of any user's version has a
//!   position in one counter, in commit order. An entry of the view records the position its
//!   knowledge is complete through. One query — "which users changed after position P?" —
//!   then re-vouches *every* entry complete through P: those listed get their current
//!   version, the rest are unchanged. It reads one row per changed user, so a busy isolate
//!   keeps its whole view synced with one small query per `0.8 × CACHE_SYNC_MS`, and a read
//!   asks D1 for a version by name only for users it has not seen. An entry becomes complete
//!   through P by a sync by name that *started after* the feed read that reached P had
//!   returned (so it ran after it in D1's serial order), or by a feed read from P.

use super::state::{InflightGuard, MAX_DUE_FOR_SYNC};
use crate::store::VersionChanges;

/// Changes one feed read lists at most; past it the next read continues from there.
pub const FEED_LIMIT: u32 = 500;
use super::{KvTier, Origin, Runtime, TieredReads};
use crate::clock::Clock;
use crate::domain::{UserId, Version};
use crate::error::AppResult;

/// The version a read must answer with, and whether D1 vouched for it within the bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Known {
    pub version: Version,
    /// False when the view was too old (or below `X-Min-Version`) and D1 could not be asked:
    /// entries at `version` may then only be served as a fail-safe `STALE`.
    pub vouched: bool,
}

impl<R: Origin + 'static, K: KvTier + 'static, C: Clock + Clone + 'static, T: Runtime>
    TieredReads<R, K, C, T>
{
    /// The version `user`'s reads must have now: the view's, if it is recent and at least
    /// `at_least`; else D1's, asked before answering. `None` when D1 cannot be asked and the
    /// view holds nothing for the user (it may have forgotten a write made here): then no
    /// cached entry may be served, not even as a fail-safe.
    pub(super) async fn known_version(
        &self,
        user: &UserId,
        at_least: Version,
        now: i64,
    ) -> Option<Known> {
        self.keep_feed_moving(now);
        let seen = self.state.versions.borrow().head(user);
        let age = seen.map(|s| now.saturating_sub(s.synced_at));
        let recent = age.is_some_and(|a| a < self.policy.sync_ms);
        if let (Some(seen), true) = (seen, recent) {
            if seen.version >= at_least {
                let chained = {
                    let feed = self.state.feed.get();
                    feed.epoch.is_some() && seen.through >= feed.through
                };
                // A chained entry is re-vouched by the feed; others are synced by name.
                if !chained && age.is_some_and(|a| a as f64 >= self.policy.sync_ms as f64 * 0.8) {
                    self.sync_in_background(user);
                }
                return Some(Known {
                    version: seen.version,
                    vouched: true,
                });
            }
        }
        // The version comes from the sync's own answer, not from the view afterwards: a full
        // view may already have forgotten the user again.
        let synced = self.sync_coalesced(user, at_least, now).await;
        let viewed = self.state.versions.borrow().head(user).map(|s| s.version);
        match (synced, viewed) {
            (Some(version), viewed) => Some(Known {
                version: version.max(viewed.unwrap_or(Version::ZERO)),
                vouched: true,
            }),
            (None, Some(version)) => Some(Known {
                version,
                vouched: false,
            }),
            (None, None) => None,
        }
    }

    /// Syncs `user` before a read that started at `now` — or, when another request of this
    /// isolate is already syncing that user, waits for its answer instead of asking D1 again.
    /// Its sync started before the wait ended, so if it is recent relative to `now` it is as
    /// good as our own.
    async fn sync_coalesced(&self, user: &UserId, at_least: Version, now: i64) -> Option<Version> {
        let key = format!("sync:{user}");
        if let Some(_leader) = InflightGuard::lead(&self.state, &key) {
            return self.sync_one(user, now).await;
        }
        let polls = self.policy.follower_wait_ms / self.policy.follower_poll_ms.max(1);
        for _ in 0..polls {
            self.rt.sleep(self.policy.follower_poll_ms).await;
            let seen = self.state.versions.borrow().head(user);
            if let Some(s) = seen.filter(|s| {
                now.saturating_sub(s.synced_at) < self.policy.sync_ms && s.version >= at_least
            }) {
                return Some(s.version);
            }
            if !self.state.inflight.borrow().contains(&key) {
                break;
            }
        }
        let started = self.now();
        self.sync_one(user, started).await
    }

    async fn sync_one(&self, user: &UserId, started: i64) -> Option<Version> {
        let versions = self
            .sync_now(std::slice::from_ref(user), started)
            .await
            .ok()?;
        versions.first().copied()
    }

    /// Reads `users`' versions from D1 in one query and records them as synced at `started`.
    async fn sync_now(&self, users: &[UserId], started: i64) -> AppResult<Vec<Version>> {
        let covered = self.feed_covered();
        let before = self.origin.usage();
        let result = self.origin.current_versions(users).await;
        let after = self.origin.usage();
        self.state.record(None, |c| {
            c.version_syncs += after.queries.saturating_sub(before.queries);
            c.version_rows_read += after.rows_read.saturating_sub(before.rows_read);
        });
        let versions = result?;
        let mut view = self.state.versions.borrow_mut();
        for (user, version) in users.iter().zip(&versions) {
            view.synced(user, *version, started, covered);
        }
        Ok(versions)
    }

    /// The feed position a D1 read starting now is complete through: the one the last
    /// *finished* feed read reached (this read runs after it in D1's order), 0 before any.
    pub(super) fn feed_covered(&self) -> u64 {
        let feed = self.state.feed.get();
        if feed.epoch.is_some() {
            feed.through
        } else {
            0
        }
    }

    /// Schedules a feed read when the last one started `0.8 × sync_ms` ago or more (and
    /// none is running): while this isolate serves reads, its view stays vouched for.
    fn keep_feed_moving(&self, now: i64) {
        let mut feed = self.state.feed.get();
        let due = now.saturating_sub(feed.started_at) as f64 >= self.policy.sync_ms as f64 * 0.8;
        if feed.scheduled || !due {
            return;
        }
        feed.scheduled = true;
        self.state.feed.set(feed);
        let this = self.clone();
        self.rt.spawn(Box::pin(async move {
            this.read_feed().await;
        }));
    }

    /// One feed read: the users changed since this isolate's position, applied to the view.
    async fn read_feed(&self) {
        let started = self.now();
        let prev = self.state.feed.get();
        self.state.feed.set(super::state::Feed {
            started_at: started,
            ..prev
        });
        let after = prev.epoch.map(|_| prev.through);
        let before = self.origin.usage();
        let result = self.origin.version_changes(after, FEED_LIMIT).await;
        let used = self.origin.usage();
        self.state.record(None, |c| {
            c.version_syncs += used.queries.saturating_sub(before.queries);
            c.version_rows_read += used.rows_read.saturating_sub(before.rows_read);
        });
        let mut feed = self.state.feed.get();
        feed.scheduled = false;
        if let Ok(changes) = result {
            self.apply_feed(prev, after, &changes, started);
            feed.through = changes.through;
            feed.epoch = Some(changes.epoch);
            if !changes.complete {
                // More to read: the next read may start at once.
                feed.started_at = i64::MIN;
            }
        }
        self.state.feed.set(feed);
    }

    fn apply_feed(
        &self,
        prev: super::state::Feed,
        after: Option<u64>,
        changes: &VersionChanges,
        started: i64,
    ) {
        let mut view = self.state.versions.borrow_mut();
        match (after, prev.epoch) {
            // A purge of everything moved every version: nothing known still holds.
            (_, Some(epoch)) if epoch != changes.epoch => view.forget_all(),
            // The log lost changes this isolate never saw: vouch for nothing from here.
            (Some(_), _) if changes.gap => {}
            (Some(from), _) => {
                let vouched_at = if changes.complete { started } else { i64::MIN };
                for (user, call, version) in &changes.changes {
                    match view.get(user) {
                        // Complete up to this change (every later one is listed, in order).
                        Some(seen) if seen.through >= from => {
                            view.logged(user, call.clone(), *version)
                        }
                        // Known only from before the chain: the version is exact from here
                        // on, and so is the log.
                        _ => view.synced(user, *version, vouched_at, changes.through),
                    }
                }
                view.vouch_unchanged(from, changes.through, started, changes.complete);
            }
            // The first read only says where the feed stands.
            (None, _) => {}
        }
    }

    /// Queues `user` for the next background sync and makes sure one is scheduled: every
    /// user queued meanwhile rides along in the same query.
    fn sync_in_background(&self, user: &UserId) {
        let schedule = {
            let mut due = self.state.due.borrow_mut();
            if due.users.len() < MAX_DUE_FOR_SYNC && !due.users.contains(user) {
                due.users.push(user.clone());
            }
            !std::mem::replace(&mut due.scheduled, true)
        };
        if !schedule {
            return;
        }
        let this = self.clone();
        self.rt.spawn(Box::pin(async move {
            let users = {
                let mut due = this.state.due.borrow_mut();
                due.scheduled = false;
                std::mem::take(&mut due.users)
            };
            let started = this.now();
            // A failed background sync changes nothing: the next read syncs in the foreground.
            let _ = this.sync_now(&users, started).await;
        }));
    }

    /// D1 said `version` for `user` in a load that started at `started`.
    pub(super) fn synced(&self, user: &UserId, version: Version, started: i64, covered: u64) {
        self.state
            .versions
            .borrow_mut()
            .synced(user, version, started, covered);
    }

    /// The version this isolate knows for `user` (zero if none).
    pub(super) fn view_version(&self, user: &UserId) -> Version {
        self.state
            .versions
            .borrow()
            .head(user)
            .map_or(Version::ZERO, |s| s.version)
    }

    /// A write made here moved `user` to `version`: reads here see it at once.
    pub(super) fn learn(&self, user: &UserId, version: Version) {
        self.state.versions.borrow_mut().learn(user, version);
    }

    /// A write made here moved `user` from `before` to `after`, about `call`.
    pub(super) fn learn_change(
        &self,
        user: &UserId,
        call: Option<&crate::domain::CallId>,
        before: Option<Version>,
        after: Version,
    ) {
        self.state
            .versions
            .borrow_mut()
            .learn_change(user, call.cloned(), before, after);
    }

    /// Drops what memory holds for `user` (its entries are retired anyway; this frees room).
    pub(super) fn forget_user_entries(&self, user: &UserId) {
        let mut memory = self.state.memory.borrow_mut();
        for prefix in ["recordings", "intent", "enhanced"] {
            memory.remove_prefix(&format!("{}:{prefix}:user:{user}:", super::keys::FORMAT));
        }
    }
}
