//! Storing an entry: the Vary index kept with the LRU, and an entry
//! weighed again once its compressed copy is made.

use super::{primary_of, Cache, Entry, Group, State};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Cache {
    /// Stores an entry (replacing any with the same key), evicting the
    /// least recently used as needed. Returns false if it was too large.
    pub fn insert(&self, entry: Entry) -> bool {
        self.insert_shared(Arc::new(entry))
    }

    /// `insert` for an entry the caller keeps using.
    pub fn insert_shared(&self, entry: Arc<Entry>) -> bool {
        self.insert_checked(entry, None, None)
    }

    pub(super) fn insert_checked(
        &self,
        entry: Arc<Entry>,
        since: Option<u64>,
        replacing: Option<&Arc<Entry>>,
    ) -> bool {
        let key = entry.key().to_string();
        // Storable again: its misses wait on each other again.
        self.passes.forget(&key);
        self.conditions_kept.forget(primary_of(&key));
        let too_large = entry.record.body.len() as u64 > self.max_object_size
            || entry.weight() > self.capacity();
        let primary = primary_of(&key).to_string();
        // Read only for a variant key, which the response's Vary made: a
        // response whose Vary the settings ignore has the primary key.
        // Read from the key itself: lookups rebuild the key from these
        // names, and the stored head may have lost its Vary (a backend's
        // `Connection: Vary` makes it hop-by-hop, which `sanitize` drops).
        let names: Vec<String> = entry.vary_names().map(str::to_string).collect();
        let weight = entry.weight();
        let disk_id = entry.disk_id();
        let generation = self.disk_generation();
        let mut state = self.state.lock();
        // A fill that an invalidation or a newer entry overtook says
        // nothing of what the key holds now: that stays, stored or not.
        if let Some(since) = since {
            let invalidated = state.invalidated.get(&primary).copied().unwrap_or(0);
            // A refresh keeps the body of `old`, which is as old as the
            // fill: a group `old` was in (a tag the 304 no longer names)
            // drops it too.
            let in_group = |group: &Group| {
                group.holds(&key, &entry) || replacing.is_some_and(|old| group.holds(&key, old))
            };
            let in_purged_group = (state.invalidated_groups.iter())
                .filter(|(group, _)| in_group(group))
                .map(|&(_, epoch)| epoch)
                .max()
                .unwrap_or(0);
            if state.cleared.max(invalidated).max(in_purged_group) > since {
                return false;
            }
        }
        if let Some(old) = replacing {
            let held = state.lru.peek(key.as_str());
            if !held.is_some_and(|held| Arc::ptr_eq(held, old)) {
                return false;
            }
            // `old` may predate a group's purge whose walk has not
            // reached it yet; its refresh could land where the walk has
            // been (see `invalidate_group`).
            if (state.sweeping.iter()).any(|group| group.holds(&key, old)) {
                return false;
            }
        }
        // Before anything else is touched: an entry that cannot be stored
        // leaves no trace in the Vary index. What was stored under its key
        // is older than it, and goes (as a replacing insert would drop it).
        if too_large {
            let old = state.lru.remove(key.as_str());
            if old.is_some() {
                state.forget_variant(&key);
            }
            drop(state);
            if old.is_some() {
                self.changed();
            }
            if let Some(disk) = &self.disk {
                disk.forget(&key, None);
            }
            return false;
        }
        // The newest response for a URI decides whether it varies (RFC
        // 9111 §4.1): when that changes, what was stored the other way is
        // unreachable, and is dropped rather than left where a PURGE would
        // not find it and a later change back would serve it again.
        let mut superseded = Vec::new();
        if key != primary {
            if !state.vary.contains_key(&primary) {
                superseded.extend(state.lru.remove(primary.as_str()));
            }
            let State { vary, lru, .. } = &mut *state;
            let v = vary.entry(primary).or_default();
            // Varying on other fields now: the variants keyed the old way
            // would never be looked up again.
            if v.names != names {
                let keys = std::mem::take(&mut v.keys);
                superseded.extend(keys.iter().filter_map(|k| lru.remove(k.as_str())));
                v.names = names;
            }
            if !v.keys.contains(&key) {
                v.keys.insert(key.clone());
            }
        } else if let Some(old) = state.vary.remove(&primary) {
            superseded.extend(old.keys.iter().filter_map(|k| state.lru.remove(k.as_str())));
        }
        let removed = state.lru.insert(key.clone(), entry, weight);
        let mut stored = true;
        let mut evicted = Vec::new();
        for (k, e) in removed {
            if k == key {
                // Our own key comes back when it replaced an older entry
                // (first) or when it did not fit (last).
                stored = state.lru.contains_key(&key);
                continue;
            }
            state.forget_variant(&k);
            evicted.push(e);
        }
        drop(state);
        drop(superseded); // entries freed outside the lock
        let n = evicted.len() as u64;
        self.stats.evictions.fetch_add(n, Ordering::Relaxed);
        self.to_disk(evicted, generation);
        if let Some(disk) = self.disk.as_ref().filter(|_| stored) {
            // What the disk holds for the key is older than this, unless
            // this was read from it.
            disk.forget(&key, disk_id);
        }
        self.changed();
        stored
    }

    /// Counts what `entry` holds now (a compressed copy made since it was
    /// stored: [`Entry::compressed`]) against the capacity, evicting the
    /// least recently used as needed, itself too if it no longer fits.
    /// Nothing if it is no longer what its key holds.
    pub fn reweigh(&self, entry: &Arc<Entry>) {
        let key = entry.key();
        let generation = self.disk_generation();
        let mut state = self.state.lock();
        if !(state.lru.peek(key)).is_some_and(|held| Arc::ptr_eq(held, entry)) {
            return;
        }
        // In place: moved to another slot, it could slip behind a purge's
        // walk under way and outlive the purge.
        let removed = state.lru.set_weight(key, entry.weight());
        for (k, _) in &removed {
            state.forget_variant(k);
        }
        drop(state);
        let evicted = removed.len() as u64;
        // Freed outside the lock, or handed to the disk.
        self.to_disk(removed.into_iter().map(|(_, e)| e), generation);
        if evicted > 0 {
            self.stats.evictions.fetch_add(evicted, Ordering::Relaxed);
            self.changed();
        }
    }
}
