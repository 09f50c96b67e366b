//! What a snapshot takes of the cache (every entry, most recent first),
//! and what a snapshot's records give back.

use super::{Cache, Entry, SWEEP_SLICE};
use crate::cache::lru::Sweep;
use crate::cache::persist::Record;
use crate::cache::policy::{self, Settings};
use parking_lot::MutexGuard;
use std::collections::HashSet;
use std::ops::ControlFlow;
use std::sync::Arc;

impl Cache {
    /// Every entry, most recently used first: pointer copies under the
    /// lock, so a snapshot can be written without holding it.
    pub fn entries(&self) -> Vec<Arc<Entry>> {
        self.entries_by(SWEEP_SLICE, || {})
    }

    /// [`Cache::entries`] by `slice` slots per hold of the lock, calling
    /// `between` (tests) with the lock released after each slice but the
    /// last.
    pub(super) fn entries_by(&self, slice: usize, between: impl FnMut()) -> Vec<Arc<Entry>> {
        let mut entries = self.every_entry(slice, between);
        entries.sort_unstable_by_key(|&(used, _)| std::cmp::Reverse(used));
        // A key removed and stored again during the walk may be met
        // twice, in the slot it left and the one it took: the later
        // stays.
        let mut keys = HashSet::with_capacity(entries.len());
        let once = entries.iter().filter(|(_, e)| keys.insert(e.key()));
        once.map(|(_, e)| e.clone()).collect()
    }

    /// Every entry with its place in the recency order (the larger, the
    /// more recent), in no order, met by slot in slices of the lock as a
    /// purge's. One hold for the whole walk kept every request for the
    /// cache waiting 7-11 ms with 100,000 entries, every `unit_time`.
    pub(super) fn every_entry(
        &self,
        slice: usize,
        mut between: impl FnMut(),
    ) -> Vec<(u64, Arc<Entry>)> {
        let mut at = Sweep::default();
        let mut entries = Vec::with_capacity(self.len());
        loop {
            let state = self.state.lock();
            let done = state.lru.walk(&mut at, slice, |_, entry, _, used| {
                entries.push((used, entry.clone()));
                ControlFlow::Continue(())
            });
            MutexGuard::unlock_fair(state);
            if done {
                return entries;
            }
            between();
        }
    }

    /// Loads snapshot records (most recent first, as `entries` gives them)
    /// at `now` (Unix milliseconds), each under the settings
    /// `settings_of` gives its key (`None`: not loaded). Returns how many
    /// were stored.
    pub fn load<'s>(
        &self,
        records: Vec<Record>,
        now: u64,
        settings_of: impl Fn(&str) -> Option<&'s Settings>,
    ) -> usize {
        let mut stored = 0;
        // Insert the oldest first so the newest end up most recent.
        for mut record in records.into_iter().rev() {
            // Born in the future: written while the clock was ahead (and
            // since set back). Counted from now instead, so the entry is
            // fresh for its own lifetime, not that plus the clock's error.
            if let Some(ahead) = record.stored_at.checked_sub(now).filter(|&a| a > 0) {
                record.stored_at = now;
                record.expires_at -= ahead.min(record.expires_at);
                record.stale_until -= ahead.min(record.stale_until);
            }
            let Ok(key) = std::str::from_utf8(&record.key) else {
                continue;
            };
            let key = policy::respell_key(key);
            let Some(settings) = settings_of(&key) else {
                continue;
            };
            record.key = key.into_bytes();
            if let Some(entry) = Entry::from_record(record, settings) {
                stored += usize::from(self.insert(entry));
            }
        }
        stored
    }
}
