//! How often each URL was asked for while not stored (`cache_min_uses`,
//! nginx's `proxy_cache_min_uses`): a response is stored only once its
//! key has been asked for that many times, so that URLs asked for once
//! (a crawler's walk, a search's every query) do not push out of the
//! cache the pages that are asked for all the time.

use super::lru::Lru;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

/// Keys counted at once; past this the one asked for longest ago is
/// forgotten (a popular key, asked for again and again, stays). Each
/// costs some 80 bytes (its hash, the count, the list and map slots):
/// a few MiB at most.
const MAX_COUNTED: u64 = 65_536;

/// A count whose key was not asked for in this long starts over, as
/// nginx forgets a key after its zone's `inactive` (10 minutes by
/// default): uses spread over hours do not make a URL popular.
pub const FORGOTTEN_AFTER: Duration = Duration::from_secs(600);

/// The counts, by a keyed hash of the key (the keys themselves are not
/// kept: their bytes would cost more than the count).
pub struct Uses {
    counts: Mutex<Lru<u64, (u32, Instant)>>,
    hasher: RandomState,
}

/// The count a request at `now` makes of a key counted `count` (its
/// requests, and when the last came): one more, or one afresh once it
/// was forgotten.
fn next_count(count: Option<(u32, Instant)>, now: Instant) -> u32 {
    let recent = count
        .filter(|&(_, at)| now.saturating_duration_since(at) < FORGOTTEN_AFTER)
        .map_or(0, |(n, _)| n);
    recent.saturating_add(1)
}

impl Default for Uses {
    fn default() -> Self {
        Uses {
            counts: Mutex::new(Lru::new(MAX_COUNTED)),
            hasher: RandomState::new(),
        }
    }
}

impl Uses {
    /// Counts one more request for `key` at `now`; returns how many there
    /// were, this one included, since the count last started. A key
    /// stored keeps its count until [`FORGOTTEN_AFTER`] from its last
    /// miss (hits are not counted): once its entry is gone (evicted,
    /// purged) within it, a URL still asked for is stored again at its
    /// next miss.
    pub fn count(&self, key: &str, now: Instant) -> u32 {
        let hash = self.hasher.hash_one(key);
        let mut counts = self.counts.lock();
        // Counted in place (and promoted): a key met again costs no
        // allocation.
        if let Some(count) = counts.get_mut(&hash) {
            let n = next_count(Some(*count), now);
            *count = (n, now);
            return n;
        }
        // Each key weighs one.
        let forgotten = counts.insert(hash, (1, now), 1);
        drop(counts);
        drop(forgotten);
        1
    }

    /// What [`Uses::count`] would return for `key` at `now`, without
    /// counting: whether a miss about to go to the origin may be stored
    /// (see `cached::serve`).
    pub fn would_count(&self, key: &str, now: Instant) -> u32 {
        let hash = self.hasher.hash_one(key);
        next_count(self.counts.lock().peek(&hash).copied(), now)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.counts.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_key_is_counted_apart_and_starts_over_when_forgotten_or_idle() {
        let uses = Uses::default();
        let t0 = Instant::now();
        assert_eq!(uses.count("a", t0), 1);
        assert_eq!(uses.count("a", t0), 2);
        assert_eq!(uses.count("b", t0), 1);
        assert_eq!(uses.count("a", t0 + Duration::from_secs(599)), 3);
        // Idle for the window since its last use: from the start.
        let later = t0 + Duration::from_secs(599) + FORGOTTEN_AFTER;
        assert_eq!(uses.count("a", later), 1);
        assert_eq!(uses.count("a", later), 2);
        assert_eq!(uses.len(), 2);
    }

    #[test]
    fn would_count_says_the_next_count_without_counting() {
        let uses = Uses::default();
        let t0 = Instant::now();
        assert_eq!(uses.would_count("a", t0), 1);
        assert_eq!(uses.would_count("a", t0), 1);
        assert_eq!(uses.count("a", t0), 1);
        assert_eq!(uses.would_count("a", t0), 2);
        assert_eq!(uses.count("a", t0), 2);
        assert_eq!(uses.would_count("a", t0 + FORGOTTEN_AFTER), 1);
        assert_eq!(uses.len(), 1);
    }

    #[test]
    fn past_the_bound_the_key_asked_for_longest_ago_goes_and_a_popular_one_stays() {
        let uses = Uses::default();
        let now = Instant::now();
        assert_eq!(uses.count("popular", now), 1);
        for i in 0..MAX_COUNTED + 10 {
            uses.count(&format!("once-{i}"), now);
            if i % 1000 == 0 {
                uses.count("popular", now);
            }
        }
        assert_eq!(uses.len() as u64, MAX_COUNTED);
        assert!(uses.count("popular", now) > 60);
        // The first of the one-off keys was forgotten.
        assert_eq!(uses.count("once-0", now), 1);
    }
}
