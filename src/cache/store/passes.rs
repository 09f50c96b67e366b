//! Keys remembered for a while: those whose misses go uncoalesced
//! (hit-for-miss), and those whose conditional misses keep their
//! conditions.

use super::Cache;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};

impl Cache {
    /// Whether `key`'s last response could not be stored, recently enough
    /// that its misses are not coalesced ([`Cache::join_flight`] is
    /// `Alone` for it): its next answer most likely will not be either.
    pub fn passes_over(&self, key: &str) -> bool {
        self.passes.holds(key)
    }

    /// A request whose client's conditions were withheld from the origin
    /// (see `proxy::cached`) had an answer that could not be stored for
    /// it: `key`'s conditional misses go with their conditions for a
    /// while, to be answered 304 by the origin (a page `private` to each
    /// signed-in user, asked for with cookies, would otherwise come whole
    /// every time, never marking the URL as [`Cache::passes_over`]).
    pub fn keep_conditions(&self, key: &str) {
        self.conditions_kept.remember(key);
    }

    /// Whether `key`'s conditional misses go with their conditions
    /// ([`Cache::keep_conditions`]).
    pub fn keeps_conditions(&self, key: &str) -> bool {
        self.conditions_kept.holds(key)
    }
}

/// How long a key whose response could not be stored goes uncoalesced
/// (Varnish's hit-for-miss lasts as long by default).
const PASS_FOR: Duration = Duration::from_secs(120);
/// Keys remembered as not stored, at most.
const MAX_PASSES: usize = 10_000;

/// Keys whose response could not be stored, by a hash of the key (a few
/// hundred KiB at most, whatever the keys' length; two keys sharing a hash
/// only lose coalescing).
#[derive(Default)]
pub(super) struct Passes {
    until: Mutex<HashMap<u64, Instant>>,
    hasher: std::collections::hash_map::RandomState,
}

impl Passes {
    fn hash(&self, key: &str) -> u64 {
        std::hash::BuildHasher::hash_one(&self.hasher, key)
    }

    pub(super) fn holds(&self, key: &str) -> bool {
        let now = Instant::now();
        let hash = self.hash(key);
        self.until
            .lock()
            .get(&hash)
            .is_some_and(|&until| now < until)
    }

    pub(super) fn remember(&self, key: &str) {
        let now = Instant::now();
        let hash = self.hash(key);
        let mut until = self.until.lock();
        if until.len() >= MAX_PASSES {
            until.retain(|_, t| now < *t);
        }
        if until.len() < MAX_PASSES {
            until.insert(hash, now + PASS_FOR);
        }
    }

    pub(super) fn forget(&self, key: &str) {
        let hash = self.hash(key);
        let mut until = self.until.lock();
        if !until.is_empty() {
            until.remove(&hash);
        }
    }
}
