//! Dropping the entries past their time, in slices of the lock.

use super::{unix_ms, Cache, Entry, SWEEP_SLICE};
use parking_lot::MutexGuard;
use std::sync::Arc;
use std::time::SystemTime;

impl Cache {
    /// Drops entries past [`Record::keep_until`] at `now`; returns how many.
    ///
    /// [`Record::keep_until`]: crate::cache::persist::Record::keep_until
    pub fn expire_due(&self, now: SystemTime) -> usize {
        self.drop_due(self.due(now))
    }

    /// The entries past [`Record::keep_until`] at `now`. Their times are
    /// read outside the lock: reading every entry's times and head there
    /// held it for some 200 ms every `unit_time` with half a million
    /// entries, and every request for the cache waited.
    ///
    /// [`Record::keep_until`]: crate::cache::persist::Record::keep_until
    pub(super) fn due(&self, now: SystemTime) -> Vec<Arc<Entry>> {
        let now_ms = unix_ms(now);
        let mut entries = self.every_entry(SWEEP_SLICE, || {});
        entries.retain(|(_, e)| e.record.keep_until() <= now_ms);
        entries.into_iter().map(|(_, e)| e).collect()
    }

    /// Drops the entries of `due` the cache still holds (not one stored
    /// under the same key since); returns how many.
    pub(super) fn drop_due(&self, due: Vec<Arc<Entry>>) -> usize {
        let mut n = 0;
        // In slices of the lock, as a purge's walk: a tick that finds a
        // great many due (stored together, with one lifetime) would
        // otherwise hold every request for the cache for all of them.
        for slice in due.chunks(SWEEP_SLICE) {
            let mut state = self.state.lock();
            for entry in slice {
                let key = entry.key();
                let held = state.lru.peek(key);
                if held.is_some_and(|held| Arc::ptr_eq(held, entry)) {
                    // `due` holds it still: nothing is freed under the lock.
                    n += usize::from(state.lru.remove(key).is_some());
                    state.forget_variant(key);
                }
            }
            MutexGuard::unlock_fair(state);
        }
        drop(due);
        if n > 0 {
            self.changed();
        }
        n
    }
}
