//! The cache proper: entries in the LRU behind one lock, the Vary index,
//! expiry, and the flights that coalesce concurrent misses.
//!
//! The lock is held for O(1) work only (a hash lookup and a list splice, or
//! an insert); entries are shared as `Arc`s, so serving a hit means cloning
//! a pointer under the lock and writing the bytes after it is released.
//! What must look at every entry (a purge of a prefix or of a tag, a
//! listing of the admin listener's `/cache/entries`) takes
//! the lock for a bounded slice of them at a time.
//!
//! # Layout
//! - `entry`: one stored response ([`Entry`]): its head cleaned for
//!   storing, its times, its weight and its compressed copy.
//! - `lookup`: a request's entry, found through the Vary index.
//! - `insert`: storing an entry, and weighing it again.
//! - `fill`: responses fetched to be stored ([`Fill`]), which an
//!   invalidation since they began keeps out.
//! - `purge`: purges by URL, prefix, tag or pattern ([`Purge`]), and
//!   clears.
//! - `listing`: the entries a URL or a prefix names ([`Listing`]).
//! - `expiry`: dropping the entries past their time.
//! - `snapshot`: every entry for a snapshot, and a snapshot's records
//!   loaded.
//! - `flight`: coalescing concurrent misses ([`Flight`]).
//! - `passes`: keys whose misses are not coalesced (hit-for-miss), or
//!   keep their conditions, for a while.
//! - `stats`: counters for metrics and tests ([`Stats`]).
//! - here: the state behind the lock, the Vary index, the groups a walk
//!   purges, and [`Cache`] itself.
//! - `tests`, `model` (a model checked by proptest) and `stress`
//!   (threads at once): the tests of all of it.

mod entry;
mod expiry;
mod fill;
mod flight;
mod insert;
mod listing;
mod lookup;
mod passes;
mod purge;
mod snapshot;
mod stats;

pub use entry::{Entry, ENTRY_OVERHEAD, VARY_INDEX_OVERHEAD};
pub use fill::Fill;
pub use flight::{Flight, FlightGuard, Waiter};
pub use listing::{Listed, Listing};
pub use purge::{Named, Purge};
pub use stats::Stats;

use super::disk::{Disk, Target};
use super::lru::Lru;
use super::policy;
use super::uses::Uses;
use parking_lot::Mutex;
use passes::Passes;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

/// LRU slots a purge of a group looks at per hold of the lock. Its
/// walk over every entry is O(entries), which requests for the cache must
/// not wait out whole: with 100k entries, whose keys are no longer in the
/// CPU's caches, a slot costs a microsecond or two, so a slice holds the
/// lock for 1-2 ms, where the whole walk held it for 65-90 ms
/// (the test `prefix_purge_lock_hold`; the README, "Which entry PURGE
/// removes").
const SWEEP_SLICE: usize = 1024;

pub(crate) fn primary_of(key: &str) -> &str {
    key.split('\n').next().unwrap_or(key)
}

pub fn unix_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

struct State {
    lru: Lru<String, Arc<Entry>>,
    /// For primary keys whose response varies: the request fields it
    /// varies on, and the variant keys stored.
    vary: HashMap<String, Variants>,
    /// Counts invalidations (and clears), so that a response fetched
    /// before one is not stored after it (see [`Fill`]).
    epoch: u64,
    /// Fills in flight, by the epoch they began in.
    fills: BTreeMap<u64, usize>,
    /// While fills are in flight: the epoch each primary key was last
    /// invalidated in. Emptied as the fills that could care end.
    invalidated: HashMap<String, u64>,
    /// While fills are in flight: the groups purged by a walk (a
    /// `PURGE /products/*`, a purge by tag or pattern), with the epoch of
    /// each.
    /// Emptied as `invalidated` is.
    invalidated_groups: Vec<(Group, u64)>,
    /// The groups whose walk is under way (see
    /// [`Cache::invalidate_group`]).
    sweeping: Vec<Group>,
    /// The epoch of the last clear, while fills are in flight.
    cleared: u64,
}

/// The entries a purge that walks the cache drops (see
/// [`Cache::invalidate_group`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Group {
    /// Those whose primary key starts with one of these (`PURGE
    /// /products/*`, under both schemes).
    Prefixes(Vec<String>),
    /// Those tagged with one of these (`Surrogate-Key`), whatever their key.
    Tags(policy::Tags),
    /// Those of a host whose path and query match a regular expression
    /// (`Purge-Regex`, under both schemes).
    Pattern(policy::KeyPattern),
}

impl Group {
    /// Whether the entry stored under `key` is one of the group's. A
    /// prefix or a pattern is read from the key alone, which the walk
    /// finds in the LRU's slot, without touching the entry's own memory.
    fn holds(&self, key: &str, entry: &Entry) -> bool {
        self.holds_tagged(key, &entry.tags)
    }

    /// [`Group::holds`] for an entry of these tags (one on disk).
    pub(crate) fn holds_tagged(&self, key: &str, tags: &policy::Tags) -> bool {
        match self {
            Group::Prefixes(prefixes) => {
                let primary = primary_of(key);
                prefixes.iter().any(|p| primary.starts_with(p.as_str()))
            }
            Group::Tags(named) => tags.shares_any(named),
            Group::Pattern(pattern) => pattern.matches(primary_of(key)),
        }
    }
}

#[derive(Default)]
pub(crate) struct Variants {
    pub(crate) names: Vec<String>,
    /// A set, not a list: a client choosing the values of the fields a
    /// URL varies on makes as many variants as it likes (one per
    /// `Accept-Encoding` spelling), and each insert, eviction and expiry
    /// finds its own here under the cache lock.
    pub(crate) keys: BTreeSet<String>,
}

impl State {
    fn forget_variant(&mut self, key: &str) {
        let primary = primary_of(key);
        if primary.len() == key.len() {
            return;
        }
        if let Some(v) = self.vary.get_mut(primary) {
            v.keys.remove(key);
            if v.keys.is_empty() {
                self.vary.remove(primary);
            }
        }
    }
}

pub struct Cache {
    state: Mutex<State>,
    max_object_size: u64,
    flights: Mutex<HashMap<String, Arc<Waiter>>>,
    /// Keys whose last response could not be stored, and until when their
    /// misses go to the origin at once instead of waiting on each other
    /// (Varnish's hit-for-miss): a dynamic page or a long poll gains
    /// nothing from the wait.
    passes: Passes,
    /// Keys whose conditional misses go with their conditions.
    conditions_kept: Passes,
    /// Bumped by every change, so the timer knows when to snapshot.
    generation: AtomicU64,
    /// Set by hits: recency changed, which only the final snapshot records
    /// (rewriting the whole file because entries were read would cost far
    /// more than the order is worth).
    touched: AtomicBool,
    pub stats: Stats,
    /// Misses counted for `cache_min_uses`.
    pub uses: Uses,
    /// Where entries evicted for room go (`cache_disk_dir`).
    disk: Option<Arc<Disk>>,
}

impl Cache {
    pub fn new(capacity: u64, max_object_size: u64) -> Cache {
        Cache {
            state: Mutex::new(State {
                lru: Lru::new(capacity),
                vary: HashMap::new(),
                epoch: 0,
                fills: BTreeMap::new(),
                invalidated: HashMap::new(),
                invalidated_groups: Vec::new(),
                sweeping: Vec::new(),
                cleared: 0,
            }),
            max_object_size,
            flights: Mutex::new(HashMap::new()),
            passes: Passes::default(),
            conditions_kept: Passes::default(),
            generation: AtomicU64::new(0),
            touched: AtomicBool::new(false),
            stats: Stats::default(),
            uses: Uses::default(),
            disk: None,
        }
    }

    /// The cache with a disk tier behind it.
    pub fn with_disk(mut self, disk: Arc<Disk>) -> Cache {
        self.disk = Some(disk);
        self
    }

    pub fn disk(&self) -> Option<&Arc<Disk>> {
        self.disk.as_ref()
    }

    /// The disk tier's purge generation, read before an eviction (see
    /// [`Disk::generation`]).
    fn disk_generation(&self) -> u64 {
        self.disk.as_ref().map_or(0, |d| d.generation())
    }

    /// Hands the entries evicted for room to the disk tier, if any.
    fn to_disk(&self, evicted: impl IntoIterator<Item = Arc<Entry>>, generation: u64) {
        if let Some(disk) = &self.disk {
            for entry in evicted {
                disk.offer(entry, generation);
            }
        }
    }

    /// A purge of `target` from the disk tier, if any, and from memory
    /// (`in_memory`), in the order [`Disk::begin_purge`] tells; how many
    /// entries both named.
    fn purge_both(
        &self,
        target: impl FnOnce() -> Target,
        purge: Purge,
        in_memory: impl FnOnce() -> usize,
    ) -> usize {
        let Some(disk) = &self.disk else {
            return in_memory();
        };
        let (on_disk, begun) = disk.begin_purge(&target(), purge);
        let named = in_memory();
        disk.end_purge(begun);
        named + on_disk
    }

    /// Largest body stored; larger responses are only streamed.
    pub fn max_object_size(&self) -> u64 {
        self.max_object_size
    }

    pub fn len(&self) -> usize {
        self.state.lock().lru.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        self.state.lock().lru.bytes()
    }

    pub fn capacity(&self) -> u64 {
        self.state.lock().lru.capacity()
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod model;
#[cfg(test)]
mod stress;
#[cfg(test)]
mod tests;
