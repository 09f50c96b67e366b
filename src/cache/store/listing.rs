//! Listings of the entries a URL or a prefix names, for the admin
//! listener's `/cache/entries`.

use super::{Cache, Entry, Group, SWEEP_SLICE};
use crate::cache::lru::Sweep;
use parking_lot::MutexGuard;
use std::ops::ControlFlow;
use std::sync::Arc;

/// An entry as a listing of the cache shows it.
#[derive(Debug)]
pub struct Listed {
    pub entry: Arc<Entry>,
    /// What it counts for against the capacity: the weight it was stored
    /// with, which a compressed copy made since may not be in yet (see
    /// [`Cache::reweigh`]).
    pub weight: u64,
}

/// What a listing of the cache found.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<Listed>,
    /// Whether more entries were named than the listing's limit let in.
    pub truncated: bool,
}

impl Listing {
    /// Adds `entry` unless `limit` entries are listed already, in which
    /// case the listing is truncated: `Break`, as no more will be taken.
    fn take(&mut self, entry: &Arc<Entry>, weight: u64, limit: usize) -> ControlFlow<()> {
        if self.entries.len() >= limit {
            self.truncated = true;
            return ControlFlow::Break(());
        }
        let entry = entry.clone();
        self.entries.push(Listed { entry, weight });
        ControlFlow::Continue(())
    }
}

impl Cache {
    /// The entries stored for each of `primaries`, every Vary variant, as
    /// [`Cache::invalidate_all`] names them, at most `limit`. None is
    /// promoted: a listing is not a use, and must not save from eviction
    /// what no client asks for.
    pub fn list_all(&self, primaries: &[String], limit: usize) -> Listing {
        let state = self.state.lock();
        let mut listing = Listing::default();
        for primary in primaries {
            let variants = state.vary.get(primary.as_str()).map(|v| &v.keys);
            for key in variants.into_iter().flatten().chain([primary]) {
                let lru = &state.lru;
                let Some((entry, weight)) =
                    lru.peek(key.as_str()).zip(lru.peek_weight(key.as_str()))
                else {
                    continue;
                };
                if listing.take(entry, weight, limit).is_break() {
                    return listing;
                }
            }
        }
        listing
    }

    /// The entries whose primary key starts with one of `prefixes` (`""`:
    /// every entry), as [`Cache::invalidate_prefixes`] names them, at
    /// most `limit`, in no particular order. The walk holds the lock for
    /// the slices of a purge's, and promotes nothing (see
    /// [`Cache::list_all`]).
    pub fn list_prefixes(&self, prefixes: &[String], limit: usize) -> Listing {
        self.list_prefixes_by(prefixes, limit, SWEEP_SLICE, || {})
    }

    /// [`Cache::list_prefixes`] by `slice` slots per hold of the lock,
    /// calling `between` (tests) with the lock released after each slice
    /// but the last.
    pub(super) fn list_prefixes_by(
        &self,
        prefixes: &[String],
        limit: usize,
        slice: usize,
        mut between: impl FnMut(),
    ) -> Listing {
        let group = Group::Prefixes(prefixes.to_vec());
        let (mut at, mut listing) = (Sweep::default(), Listing::default());
        loop {
            let state = self.state.lock();
            let done = state.lru.walk(&mut at, slice, |key, entry, weight, _| {
                if !group.holds(key, entry) {
                    return ControlFlow::Continue(());
                }
                listing.take(entry, weight, limit)
            });
            // As a purge's slices: else the next slice could take the lock
            // again before a request waiting for it woke.
            MutexGuard::unlock_fair(state);
            if done {
                return listing;
            }
            between();
        }
    }
}
