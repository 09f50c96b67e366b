//! Responses fetched to be stored ([`Fill`]): one that an invalidation
//! or a clear overtook is not stored.

use super::{Cache, Entry};
use std::sync::Arc;

impl Cache {
    /// Begins fetching a response to store: an invalidation of its key (a
    /// PURGE, a successful POST) or a clear that happens before it is
    /// stored makes [`Cache::insert_filled`] drop it, as it may predate
    /// the change.
    pub fn begin_fill(self: &Arc<Self>) -> Fill {
        Fill {
            cache: self.clone(),
            since: self.fill_begun(),
        }
    }

    /// A fill counted as begun; its epoch, for [`Cache::fill_ended`].
    pub(super) fn fill_begun(&self) -> u64 {
        let mut state = self.state.lock();
        let since = state.epoch;
        *state.fills.entry(since).or_default() += 1;
        since
    }

    /// `insert_shared` for the response of `fill`: not stored if its key
    /// was invalidated since the fill began.
    pub fn insert_filled(&self, entry: Arc<Entry>, fill: &Fill) -> bool {
        self.insert_checked(entry, Some(fill.since), None)
    }

    /// `insert_filled` of `old` refreshed or outdated by its origin's
    /// answer: not stored either if `old` is no longer what the cache holds
    /// under its key (what replaced it, while the answer was on its way,
    /// is newer than what that answer says of `old`).
    pub fn replace_filled(&self, old: &Arc<Entry>, entry: Arc<Entry>, fill: &Fill) -> bool {
        self.insert_checked(entry, Some(fill.since), Some(old))
    }
}

/// A response being fetched to be stored; see [`Cache::begin_fill`].
pub struct Fill {
    cache: Arc<Cache>,
    since: u64,
}

impl Drop for Fill {
    fn drop(&mut self) {
        self.cache.fill_ended(self.since);
    }
}

impl Cache {
    /// A fill begun in epoch `since` is over.
    pub(super) fn fill_ended(&self, since: u64) {
        let mut state = self.state.lock();
        if let Some(count) = state.fills.get_mut(&since) {
            *count -= 1;
            if *count == 0 {
                state.fills.remove(&since);
            }
        }
        // Invalidations no fill in flight began before are of no use.
        let oldest = state.fills.keys().next().copied();
        match oldest {
            None => {
                state.invalidated.clear();
                state.invalidated_groups.clear();
                state.cleared = 0;
            }
            Some(oldest) => {
                if !state.invalidated.is_empty() {
                    state.invalidated.retain(|_, epoch| *epoch > oldest);
                }
                state
                    .invalidated_groups
                    .retain(|(_, epoch)| *epoch > oldest);
            }
        }
    }
}
