//! Counters of the cache's work, for metrics and tests.

use super::{Named, Purge};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale: AtomicU64,
    pub revalidated: AtomicU64,
    pub bypass: AtomicU64,
    pub evictions: AtomicU64,
    /// Bytes of responses being stored that wait for their slow clients
    /// to take them, all connections together (kept under the cache's
    /// capacity by the relay).
    pub read_ahead: AtomicU64,
    /// Snapshot files written, the time spent writing them, and failures.
    pub snapshot_writes: AtomicU64,
    pub snapshot_micros: AtomicU64,
    pub snapshot_failures: AtomicU64,
    /// Purges taken on the admin listener, and the entries they named
    /// (removed, or marked stale), by what they name (indexed by
    /// [`Named`]) and whether they were soft (index 1).
    pub purges: [[AtomicU64; 2]; Named::ALL.len()],
    pub purged_entries: [[AtomicU64; 2]; Named::ALL.len()],
}

impl Stats {
    /// Counts one purge of `kind` that named `entries`.
    pub fn count_purge(&self, kind: Named, purge: Purge, entries: usize) {
        let soft = usize::from(purge != Purge::Hard);
        self.purges[kind as usize][soft].fetch_add(1, Ordering::Relaxed);
        self.purged_entries[kind as usize][soft].fetch_add(entries as u64, Ordering::Relaxed);
    }
}
