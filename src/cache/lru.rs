//! A least-recently-used map whose capacity is counted in bytes.
//!
//! Every entry carries a caller-chosen `weight` (for a cached response: the size of
//! its head and body); the map keeps the sum of weights at or below the capacity by
//! evicting the least recently used entries.
//!
//! The recency list is a doubly-linked list without `unsafe`: nodes live in a `Vec`
//! (an arena), links are indices into it, two sentinel slots mark both ends so that
//! linking and unlinking never special-case an empty list, and freed slots go on a
//! free list to be reused, so a cache at steady state does not allocate per insert.
//! A `HashMap` from key to slot index makes lookups O(1).
//!
//! This module knows recency and sizes only: nothing about HTTP, files or locking.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::ops::ControlFlow;

type Index = usize;

/// Link value of a slot that is not in the list (a sentinel's outer side or a free slot).
const NIL: Index = usize::MAX;
/// `nodes[HEAD].next` is the most recently used entry.
const HEAD: Index = 0;
/// `nodes[TAIL].prev` is the least recently used entry.
const TAIL: Index = 1;

struct Entry<K, V> {
    key: K,
    value: V,
    weight: u64,
    /// [`Lru::uses`] when the entry was last inserted or used: the list's
    /// order in a number, for a walk by slot to restore.
    used: u64,
}

struct Node<K, V> {
    prev: Index,
    next: Index,
    /// `None` for the two sentinels and for slots on the free list.
    entry: Option<Entry<K, V>>,
}

/// An LRU map with a capacity in bytes.
///
/// Invariant (checked by `debug_check` on every change, fully by tests):
/// - the map and the list hold the same keys: every `map[k]` is a linked slot whose
///   entry has key `k`, and the list holds exactly `map.len()` entries;
/// - free slots are unlinked and empty, and every slot is either a sentinel, linked
///   or free;
/// - `bytes` is the sum of the weights of the stored entries, and `bytes <= capacity`.
pub struct Lru<K, V> {
    nodes: Vec<Node<K, V>>,
    free: Vec<Index>,
    map: HashMap<K, Index>,
    bytes: u64,
    capacity: u64,
    /// Inserts and uses so far.
    uses: u64,
}

impl<K: Hash + Eq + Clone, V> Lru<K, V> {
    /// An empty map that holds at most `capacity_bytes` of summed weights.
    pub fn new(capacity_bytes: u64) -> Self {
        let sentinel = |prev, next| Node {
            prev,
            next,
            entry: None,
        };
        Lru {
            nodes: vec![sentinel(NIL, TAIL), sentinel(HEAD, NIL)],
            free: Vec::new(),
            map: HashMap::new(),
            bytes: 0,
            capacity: capacity_bytes,
            uses: 0,
        }
    }

    /// An empty map of the same capacity, whose uses count on from this
    /// one's: a walk by slot that meets entries of both still orders them
    /// by their last use.
    pub fn emptied(&self) -> Self {
        Lru {
            uses: self.uses,
            ..Lru::new(self.capacity)
        }
    }

    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Sum of the weights of the stored entries.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether `key` is stored; does not change recency.
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// The value for `key`, which becomes the most recently used entry.
    pub fn get<Q>(&mut self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = *self.map.get(key)?;
        self.promote(idx);
        self.nodes[idx].entry.as_ref().map(|e| &e.value)
    }

    /// Like [`Lru::get`], mutably. The weight cannot change through this reference;
    /// re-insert to change it.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = *self.map.get(key)?;
        self.promote(idx);
        self.nodes[idx].entry.as_mut().map(|e| &mut e.value)
    }

    /// The value for `key` without touching its recency.
    pub fn peek<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = *self.map.get(key)?;
        self.nodes[idx].entry.as_ref().map(|e| &e.value)
    }

    /// Like [`Lru::peek`], mutably: a value put in place this way keeps
    /// the entry's recency and the weight it was inserted with.
    pub fn peek_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = *self.map.get(key)?;
        self.nodes[idx].entry.as_mut().map(|e| &mut e.value)
    }

    /// The weight `key` was inserted with, without touching its recency.
    pub fn peek_weight<Q>(&self, key: &Q) -> Option<u64>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = *self.map.get(key)?;
        self.nodes[idx].entry.as_ref().map(|e| e.weight)
    }

    /// Stores `value` under `key` as the most recently used entry and returns every
    /// entry that left the map, so the caller can count evictions and drop large
    /// values outside its lock. In order:
    /// - the previous entry for `key`, if any (it is replaced even when the new one
    ///   cannot be stored: a cache must never keep serving the superseded value);
    /// - the new entry itself if its weight alone exceeds the capacity (or the
    ///   capacity is 0), in which case nothing else is evicted;
    /// - otherwise the least recently used entries evicted to make room, oldest first.
    pub fn insert(&mut self, key: K, value: V, weight: u64) -> Vec<(K, V)> {
        let mut removed = Vec::new();
        if let Some(idx) = self.map.get(&key).copied() {
            let old = self.remove_index(idx);
            removed.push((old.key, old.value));
        }
        if self.capacity == 0 || weight > self.capacity {
            removed.push((key, value));
            return removed;
        }
        // Terminates: once the list is empty, `bytes` is 0 and `weight <= capacity`.
        while !self.fits(weight) {
            match self.pop_oldest() {
                Some(evicted) => removed.push(evicted),
                None => break,
            }
        }
        let idx = self.alloc(Entry {
            key: key.clone(),
            value,
            weight,
            used: 0,
        });
        self.link_first(idx);
        self.map.insert(key, idx);
        self.bytes += weight;
        self.debug_check();
        debug_assert!(self.bytes <= self.capacity);
        removed
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let idx = *self.map.get(key)?;
        Some(self.remove_index(idx).value)
    }

    /// Changes the weight `key` counts for in place (it keeps its slot, so
    /// a [`Lru::sweep`] under way still offers it once, and its recency),
    /// then evicts the least recently used until the map fits again;
    /// returns what left, `key`'s own entry too if it alone no longer fits.
    pub fn set_weight<Q>(&mut self, key: &Q, weight: u64) -> Vec<(K, V)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let mut removed = Vec::new();
        let Some(&idx) = self.map.get(key) else {
            return removed;
        };
        if weight > self.capacity {
            let entry = self.remove_index(idx);
            removed.push((entry.key, entry.value));
            return removed;
        }
        if let Some(entry) = self.nodes[idx].entry.as_mut() {
            self.bytes = self.bytes - entry.weight + weight;
            entry.weight = weight;
        }
        // Terminates: the weight fits the capacity alone.
        while self.bytes > self.capacity {
            match self.pop_oldest() {
                Some(evicted) => removed.push(evicted),
                None => break,
            }
        }
        self.debug_check();
        removed
    }

    /// Removes and returns the least recently used entry.
    pub fn pop_oldest(&mut self) -> Option<(K, V)> {
        let idx = self.nodes[TAIL].prev;
        if idx == HEAD {
            return None;
        }
        let entry = self.remove_index(idx);
        Some((entry.key, entry.value))
    }

    /// Removes every entry. The arena keeps its allocation for reuse.
    pub fn clear(&mut self) {
        self.nodes.truncate(2);
        self.nodes[HEAD].next = TAIL;
        self.nodes[TAIL].prev = HEAD;
        self.free.clear();
        self.map.clear();
        self.bytes = 0;
        self.debug_check();
    }

    /// Keeps only the entries for which `keep` returns true and returns how many were
    /// removed. Recency of the kept entries is unchanged. O(n).
    pub fn retain(&mut self, mut keep: impl FnMut(&K, &V) -> bool) -> usize {
        let mut removed = 0;
        let mut idx = self.nodes[TAIL].prev;
        while idx != HEAD {
            // Read the link first: removing `idx` resets it.
            let prev = self.nodes[idx].prev;
            let drop = match &self.nodes[idx].entry {
                Some(e) => !keep(&e.key, &e.value),
                None => false,
            };
            if drop {
                self.remove_index(idx);
                removed += 1;
            }
            idx = prev;
        }
        removed
    }

    /// Does to each of the entries in the next `budget` slots from where
    /// `at` stands what `pick` says (keep it, remove it, or put another
    /// value in its place), or to those up to the one after which `enough`
    /// says so, moves `at` past those slots, and returns what left the map
    /// (see [`Slice`]) with whether the walk is over. A
    /// caller that holds a lock around the map can so go over every entry
    /// in slices of bounded work, releasing it in between, where
    /// [`Lru::retain`] holds it for the whole walk.
    ///
    /// The walk goes by slot, not by recency: an entry keeps its slot from
    /// its insertion to its removal (a promotion only relinks it, and a
    /// replacement takes its slot), so one stored for the whole walk is
    /// offered exactly once, however the map changes between two calls.
    /// One inserted meanwhile may be offered or not, as the slot it took
    /// is behind `at` or ahead of it. A replacement keeps the entry's
    /// recency and the weight it was inserted with, as [`Lru::peek_mut`].
    pub fn sweep(
        &mut self,
        at: &mut Sweep,
        budget: usize,
        mut pick: impl FnMut(&K, &V) -> Pick<V>,
        mut enough: impl FnMut() -> bool,
    ) -> Slice<K, V> {
        let (start, mut end) = self.slots(at, budget);
        let mut slice = Slice {
            removed: Vec::new(),
            replaced: Vec::new(),
            done: false,
        };
        for idx in start..end {
            if idx > start && enough() {
                end = idx;
                break;
            }
            let Some(entry) = &mut self.nodes[idx].entry else {
                continue;
            };
            match pick(&entry.key, &entry.value) {
                Pick::Keep => {}
                Pick::Replace(value) => {
                    slice
                        .replaced
                        .push(std::mem::replace(&mut entry.value, value));
                }
                Pick::Remove => {
                    let entry = self.remove_index(idx);
                    slice.removed.push((entry.key, entry.value));
                }
            }
        }
        at.next = end.max(start);
        slice.done = at.next >= self.nodes.len();
        slice
    }

    /// [`Lru::sweep`] for a reader: offers each entry of the next `budget`
    /// slots from where `at` stands, with the weight it was inserted with
    /// and its place in the recency order (a number that grows with every
    /// insert and use: the larger, the more recently used), to `visit`,
    /// changing nothing (recency neither), until `visit` breaks. Returns
    /// whether the walk is over: every slot seen, or a break, after which
    /// `at` is left where it broke. The same slots as a sweep, so an entry
    /// stored for the whole walk is offered once.
    pub fn walk(
        &self,
        at: &mut Sweep,
        budget: usize,
        mut visit: impl FnMut(&K, &V, u64, u64) -> ControlFlow<()>,
    ) -> bool {
        let (start, end) = self.slots(at, budget);
        for idx in start..end {
            let Some(entry) = &self.nodes[idx].entry else {
                continue;
            };
            if visit(&entry.key, &entry.value, entry.weight, entry.used).is_break() {
                at.next = idx + 1;
                return true;
            }
        }
        at.next = end.max(start);
        at.next >= self.nodes.len()
    }

    /// The slots a walk from `at` looks at next, at most `budget` of them.
    fn slots(&self, at: &Sweep, budget: usize) -> (Index, Index) {
        let start = at.next.max(TAIL + 1);
        (start, self.nodes.len().min(start.saturating_add(budget)))
    }

    /// Changes the capacity and returns the entries evicted to fit it, oldest first.
    pub fn set_capacity(&mut self, capacity_bytes: u64) -> Vec<(K, V)> {
        self.capacity = capacity_bytes;
        let mut evicted = Vec::new();
        while self.bytes > self.capacity {
            match self.pop_oldest() {
                Some(e) => evicted.push(e),
                None => break,
            }
        }
        self.debug_check();
        debug_assert!(self.bytes <= self.capacity);
        evicted
    }

    /// Entries from the most to the least recently used. Reverse it (it is
    /// double-ended) or use [`Lru::iter_oldest_first`] for the other direction.
    pub fn iter(&self) -> Iter<'_, K, V> {
        Iter {
            nodes: &self.nodes,
            front: HEAD,
            back: TAIL,
            remaining: self.map.len(),
        }
    }

    /// Entries from the least to the most recently used.
    pub fn iter_oldest_first(&self) -> std::iter::Rev<Iter<'_, K, V>> {
        self.iter().rev()
    }

    /// Whether `bytes + weight` stays within the capacity, without overflowing.
    fn fits(&self, weight: u64) -> bool {
        self.bytes
            .checked_add(weight)
            .is_some_and(|total| total <= self.capacity)
    }

    fn alloc(&mut self, entry: Entry<K, V>) -> Index {
        let node = Node {
            prev: NIL,
            next: NIL,
            entry: Some(entry),
        };
        match self.free.pop() {
            Some(idx) => {
                self.nodes[idx] = node;
                idx
            }
            None => {
                self.nodes.push(node);
                self.nodes.len() - 1
            }
        }
    }

    /// Unlinks slot `idx`, frees it and drops its key from the map.
    fn remove_index(&mut self, idx: Index) -> Entry<K, V> {
        self.unlink(idx);
        let entry = self.nodes[idx]
            .entry
            .take()
            .expect("invariant: a linked slot holds an entry");
        self.free.push(idx);
        self.map.remove(&entry.key);
        self.bytes -= entry.weight;
        self.debug_check();
        entry
    }

    fn promote(&mut self, idx: Index) {
        if self.nodes[HEAD].next != idx {
            self.unlink(idx);
            self.link_first(idx);
        }
    }

    /// Links slot `idx` as the most recently used.
    fn link_first(&mut self, idx: Index) {
        let next = self.nodes[HEAD].next;
        self.nodes[idx].prev = HEAD;
        self.nodes[idx].next = next;
        self.nodes[HEAD].next = idx;
        self.nodes[next].prev = idx;
        self.uses += 1;
        if let Some(entry) = self.nodes[idx].entry.as_mut() {
            entry.used = self.uses;
        }
    }

    fn unlink(&mut self, idx: Index) {
        let (prev, next) = (self.nodes[idx].prev, self.nodes[idx].next);
        // A NIL link here means a sentinel or a freed slot: a bug in this module,
        // and continuing would corrupt the list silently.
        assert!(
            idx != HEAD && idx != TAIL && prev != NIL && next != NIL,
            "unlinking a slot that is not in the list"
        );
        self.nodes[prev].next = next;
        self.nodes[next].prev = prev;
        self.nodes[idx].prev = NIL;
        self.nodes[idx].next = NIL;
    }

    /// The O(1) part of the invariant, cheap enough for every change in debug builds.
    /// `bytes <= capacity` is checked only where an operation completes, since
    /// `set_capacity` passes through states above the new capacity.
    fn debug_check(&self) {
        debug_assert_eq!(self.nodes.len() - 2 - self.free.len(), self.map.len());
    }

    /// Walks the whole structure and panics on any violation of the invariant.
    #[cfg(test)]
    pub(crate) fn assert_invariant(&self) {
        use std::collections::HashSet;
        let mut seen = HashSet::new();
        let (mut prev, mut idx, mut sum) = (HEAD, self.nodes[HEAD].next, 0u64);
        let mut newer_use = u64::MAX;
        while idx != TAIL {
            assert_eq!(self.nodes[idx].prev, prev, "back link of slot {idx}");
            let entry = self.nodes[idx].entry.as_ref().expect("linked slot is full");
            assert_eq!(self.map.get(&entry.key), Some(&idx), "map points at slot");
            assert!(entry.used < newer_use, "uses fall along the list");
            newer_use = entry.used;
            assert!(seen.insert(idx), "cycle at slot {idx}");
            sum += entry.weight;
            prev = idx;
            idx = self.nodes[idx].next;
        }
        assert_eq!(self.nodes[TAIL].prev, prev);
        assert_eq!(seen.len(), self.map.len(), "list and map lengths");
        assert_eq!(sum, self.bytes, "bytes is the sum of weights");
        assert!(self.bytes <= self.capacity);
        for &f in &self.free {
            let node = &self.nodes[f];
            assert!(f > TAIL && node.entry.is_none() && node.prev == NIL && node.next == NIL);
            assert!(!seen.contains(&f));
        }
        assert_eq!(seen.len() + self.free.len() + 2, self.nodes.len());
    }
}

impl<K: Hash + Eq + Clone + fmt::Debug, V: fmt::Debug> fmt::Debug for Lru<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// Where a walk of [`Lru::sweep`] stands: the next slot to look at.
#[derive(Debug, Default)]
pub struct Sweep {
    next: Index,
}

/// What [`Lru::sweep`] does to an entry it is offered.
#[derive(Debug)]
pub enum Pick<V> {
    Keep,
    Remove,
    /// Puts this value in the entry's place, under its key.
    Replace(V),
}

/// What one call of [`Lru::sweep`] took out of the map, for the caller to
/// drop where it likes (outside its lock).
#[derive(Debug)]
pub struct Slice<K, V> {
    /// The entries removed.
    pub removed: Vec<(K, V)>,
    /// The values that replacements took the place of.
    pub replaced: Vec<V>,
    /// Whether the walk is over.
    pub done: bool,
}

/// Iterator over an [`Lru`], most recently used first; double-ended.
pub struct Iter<'a, K, V> {
    nodes: &'a [Node<K, V>],
    /// Last slot yielded from the front (starts at the HEAD sentinel).
    front: Index,
    /// Last slot yielded from the back (starts at the TAIL sentinel).
    back: Index,
    /// Counting down keeps the two ends from crossing.
    remaining: usize,
}

impl<'a, K, V> Iter<'a, K, V> {
    fn yield_slot(&mut self, idx: Index) -> Option<(&'a K, &'a V)> {
        self.remaining -= 1;
        let nodes: &'a [Node<K, V>] = self.nodes;
        nodes[idx].entry.as_ref().map(|e| (&e.key, &e.value))
    }
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.front = self.nodes[self.front].next;
        self.yield_slot(self.front)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<K, V> DoubleEndedIterator for Iter<'_, K, V> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        self.back = self.nodes[self.back].prev;
        self.yield_slot(self.back)
    }
}

impl<K, V> ExactSizeIterator for Iter<'_, K, V> {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Keys from most to least recent, checked against the reverse walk and the invariant.
    fn keys(lru: &Lru<&'static str, u32>) -> Vec<&'static str> {
        lru.assert_invariant();
        let forward: Vec<_> = lru.iter().map(|(k, _)| *k).collect();
        let mut backward: Vec<_> = lru.iter_oldest_first().map(|(k, _)| *k).collect();
        backward.reverse();
        assert_eq!(forward, backward, "both walks agree");
        assert_eq!(forward.len(), lru.len());
        forward
    }

    #[test]
    fn new_map_is_empty() {
        let lru: Lru<&str, u32> = Lru::new(100);
        assert!(lru.is_empty());
        assert_eq!((lru.len(), lru.bytes(), lru.capacity()), (0, 0, 100));
        assert_eq!(keys(&lru), Vec::<&str>::new());
    }

    #[test]
    fn mixed_operations_keep_recency_order_both_ways() {
        let mut lru = Lru::new(100);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            assert!(lru.insert(k, i as u32, 10).is_empty());
        }
        assert_eq!(keys(&lru), ["d", "c", "b", "a"]);
        assert!(!lru.is_empty());
        assert_eq!(lru.get(&"b"), Some(&1));
        assert_eq!(keys(&lru), ["b", "d", "c", "a"]);
        assert_eq!(lru.peek(&"a"), Some(&0));
        assert_eq!(keys(&lru), ["b", "d", "c", "a"], "peek does not promote");
        *lru.get_mut(&"a").unwrap() = 7;
        assert_eq!(keys(&lru), ["a", "b", "d", "c"]);
        assert_eq!(lru.remove(&"d"), Some(3));
        assert_eq!(lru.remove(&"d"), None);
        assert_eq!(keys(&lru), ["a", "b", "c"]);
        assert_eq!(lru.pop_oldest(), Some(("c", 2)));
        assert_eq!(keys(&lru), ["a", "b"]);
        assert_eq!(lru.get(&"a"), Some(&7), "already most recent");
        assert_eq!(keys(&lru), ["a", "b"]);
        assert_eq!(lru.bytes(), 20);
        lru.clear();
        assert_eq!((keys(&lru).len(), lru.bytes()), (0, 0));
        assert_eq!(lru.pop_oldest(), None);
        lru.insert("z", 1, 5);
        assert_eq!(keys(&lru), ["z"]);
    }

    #[test]
    fn iterator_ends_meet_in_the_middle() {
        let mut lru = Lru::new(100);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            lru.insert(k, i as u32, 1);
        }
        let mut it = lru.iter();
        assert_eq!(it.len(), 3);
        assert_eq!(it.next().map(|(k, _)| *k), Some("c"));
        assert_eq!(it.next_back().map(|(k, _)| *k), Some("a"));
        assert_eq!(it.next().map(|(k, _)| *k), Some("b"));
        assert_eq!(it.next_back(), None);
        assert_eq!(it.next(), None);
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let mut lru = Lru::new(30);
        lru.insert("a", 0, 10);
        lru.insert("b", 1, 10);
        lru.insert("c", 2, 10);
        lru.get(&"a");
        // Needs 15 bytes: "b" (oldest) then "c" must go, "a" was just used.
        let evicted = lru.insert("d", 3, 15);
        assert_eq!(evicted, [("b", 1), ("c", 2)]);
        assert_eq!(keys(&lru), ["d", "a"]);
        assert_eq!(lru.bytes(), 25);
    }

    #[test]
    fn replacing_a_key_returns_the_old_value_and_updates_bytes() {
        let mut lru = Lru::new(30);
        lru.insert("a", 0, 10);
        lru.insert("b", 1, 10);
        assert_eq!(lru.insert("a", 9, 20), [("a", 0)]);
        assert_eq!(keys(&lru), ["a", "b"]);
        assert_eq!(lru.bytes(), 30);
        assert_eq!(lru.peek_weight(&"a"), Some(20));
        // Growing "a" again must evict "b" but never the entry being replaced.
        assert_eq!(lru.insert("a", 8, 25), [("a", 9), ("b", 1)]);
        assert_eq!(keys(&lru), ["a"]);
        assert_eq!(lru.bytes(), 25);
    }

    #[test]
    fn oversized_entry_is_returned_and_not_stored() {
        let mut lru = Lru::new(10);
        lru.insert("a", 0, 5);
        assert_eq!(lru.insert("big", 1, 11), [("big", 1)]);
        assert_eq!(keys(&lru), ["a"], "nothing else was evicted for it");
        // Replacing with an oversized value drops the old one too.
        assert_eq!(lru.insert("a", 2, 11), [("a", 0), ("a", 2)]);
        assert!(lru.is_empty());
        // Exactly the capacity fits.
        assert!(lru.insert("full", 3, 10).is_empty());
        assert_eq!(keys(&lru), ["full"]);
    }

    #[test]
    fn capacity_zero_stores_nothing() {
        let mut lru = Lru::new(0);
        assert_eq!(lru.insert("a", 0, 0), [("a", 0)]);
        assert_eq!(lru.insert("b", 1, 1), [("b", 1)]);
        assert!(lru.is_empty());
        lru.assert_invariant();
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let mut lru = Lru::new(u64::MAX);
        lru.insert("a", 0, u64::MAX - 1);
        assert_eq!(lru.insert("b", 1, 2), [("a", 0)]);
        assert_eq!(keys(&lru), ["b"]);
    }

    #[test]
    fn free_slots_are_reused() {
        let mut lru = Lru::new(100);
        for (i, k) in ["a", "b", "c"].into_iter().enumerate() {
            lru.insert(k, i as u32, 1);
        }
        let slots = lru.nodes.len();
        lru.remove(&"b");
        lru.pop_oldest();
        assert_eq!(lru.free.len(), 2);
        lru.insert("d", 3, 1);
        lru.insert("e", 4, 1);
        assert_eq!(lru.nodes.len(), slots, "no new slots while free ones exist");
        assert!(lru.free.is_empty());
        assert_eq!(keys(&lru), ["e", "d", "c"]);
        lru.insert("f", 5, 1);
        assert_eq!(lru.nodes.len(), slots + 1);
    }

    #[test]
    fn retain_removes_matching_entries_and_keeps_order() {
        let mut lru = Lru::new(100);
        for (i, k) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            lru.insert(k, i as u32, 2);
        }
        let mut visited = Vec::new();
        let removed = lru.retain(|k, v| {
            visited.push(*k);
            v % 2 == 0
        });
        assert_eq!(visited, ["a", "b", "c", "d", "e"], "oldest first");
        assert_eq!(removed, 2);
        assert_eq!(keys(&lru), ["e", "c", "a"]);
        assert_eq!(lru.bytes(), 6);
        assert_eq!(lru.retain(|_, _| false), 3);
        assert!(keys(&lru).is_empty());
    }

    #[test]
    fn a_walk_in_slices_sees_every_entry_once_with_its_weight_and_changes_nothing() {
        let mut lru = Lru::new(100);
        for (i, k) in ["a", "b", "c", "d", "e"].into_iter().enumerate() {
            lru.insert(k, i as u32, i as u64 + 1);
        }
        lru.get(&"a");
        let before = keys(&lru);
        let (mut at, mut seen, mut slices) = (Sweep::default(), Vec::new(), 0);
        while !lru.walk(&mut at, 2, |k, v, weight, _| {
            seen.push((*k, *v, weight));
            ControlFlow::Continue(())
        }) {
            slices += 1;
            assert!(slices < 10, "the walk never ends");
        }
        seen.sort();
        let want = [
            ("a", 0, 1),
            ("b", 1, 2),
            ("c", 2, 3),
            ("d", 3, 4),
            ("e", 4, 5),
        ];
        assert_eq!(seen, want);
        assert_eq!(slices, 2, "5 slots, 2 at a time");
        assert_eq!(keys(&lru), before, "recency untouched");

        // A break ends the walk where it broke.
        let (mut at, mut seen) = (Sweep::default(), 0);
        let done = lru.walk(&mut at, 100, |_, _, _, _| {
            seen += 1;
            if seen == 2 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert!(done);
        assert_eq!(seen, 2);
        // Walked on from there, it goes on past the entry it broke at.
        let mut rest = 0;
        lru.walk(&mut at, 100, |_, _, _, _| {
            rest += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(rest, 3, "each entry once");
        // A slice of one slot from the start is an entry's, not the list's
        // own ends'.
        let mut first = 0;
        lru.walk(&mut Sweep::default(), 1, |_, _, _, _| {
            first += 1;
            ControlFlow::Continue(())
        });
        assert_eq!(first, 1);
    }

    #[test]
    fn a_walk_by_slot_gives_what_puts_its_entries_back_in_recency_order() {
        let mut lru = Lru::new(100);
        for k in ["a", "b", "c", "d", "e"] {
            lru.insert(k, 0, 1);
        }
        lru.get(&"b");
        lru.remove(&"c");
        lru.insert("c", 0, 1);
        lru.get(&"a");
        lru.peek(&"e");
        let mut seen = Vec::new();
        lru.walk(&mut Sweep::default(), 100, |k, _, _, used| {
            seen.push((used, *k));
            ControlFlow::Continue(())
        });
        seen.sort_by(|a, b| b.cmp(a));
        let by_use: Vec<_> = seen.into_iter().map(|(_, k)| k).collect();
        assert_eq!(by_use, keys(&lru));
        assert_eq!(by_use, ["a", "c", "b", "e", "d"]);
    }

    #[test]
    fn a_weight_set_in_place_keeps_the_slot_and_evicts_the_oldest_to_fit() {
        let mut lru = Lru::new(10);
        lru.insert("a", 1, 3);
        lru.insert("b", 2, 3);
        lru.insert("c", 3, 3);
        let slot = lru.map[&"c"];
        assert_eq!(lru.set_weight(&"c", 5), vec![("a", 1)]);
        assert_eq!(lru.map[&"c"], slot, "same slot");
        assert_eq!((lru.bytes(), lru.peek_weight(&"c")), (8, Some(5)));
        assert_eq!(keys(&lru), ["c", "b"], "recency as it was");
        assert_eq!(lru.set_weight(&"c", 11), vec![("c", 3)], "too heavy alone");
        assert_eq!(lru.bytes(), 3);
        assert!(lru.set_weight(&"z", 1).is_empty());
        lru.assert_invariant();
    }

    #[test]
    fn a_weight_set_to_exactly_the_capacity_keeps_the_entry_alone() {
        let mut lru = Lru::new(10);
        lru.insert("a", 1, 3);
        lru.insert("b", 2, 3);
        assert_eq!(lru.set_weight(&"b", 10), vec![("a", 1)]);
        assert_eq!(keys(&lru), ["b"]);
        assert_eq!(lru.bytes(), 10);
        // Full to the byte is not over: nothing more goes.
        assert!(lru.set_weight(&"b", 10).is_empty());
        assert_eq!(keys(&lru), ["b"]);
    }

    #[test]
    fn set_capacity_evicts_oldest_until_it_fits() {
        let mut lru = Lru::new(100);
        for (i, k) in ["a", "b", "c", "d"].into_iter().enumerate() {
            lru.insert(k, i as u32, 10);
        }
        lru.get(&"a");
        assert_eq!(lru.set_capacity(25), [("b", 1), ("c", 2)]);
        assert_eq!(keys(&lru), ["a", "d"]);
        assert!(lru.set_capacity(1000).is_empty());
        assert_eq!(lru.set_capacity(0).len(), 2);
        assert!(keys(&lru).is_empty());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u32, u64),
        Get(u8),
        GetMut(u8),
        Peek(u8),
        Remove(u8),
        PopOldest,
        RetainEven,
        SetCapacity(u64),
        Clear,
    }

    fn op() -> impl Strategy<Value = Op> {
        let key = 0u8..12;
        prop_oneof![
            6 => (key.clone(), any::<u32>(), 0u64..40).prop_map(|(k, v, w)| Op::Insert(k, v, w)),
            3 => key.clone().prop_map(Op::Get),
            1 => key.clone().prop_map(Op::GetMut),
            1 => key.clone().prop_map(Op::Peek),
            2 => key.prop_map(Op::Remove),
            1 => Just(Op::PopOldest),
            1 => Just(Op::RetainEven),
            1 => (0u64..150).prop_map(Op::SetCapacity),
            1 => Just(Op::Clear),
        ]
    }

    #[derive(Clone, Debug)]
    enum Change {
        Insert,
        Promote(u32),
        Remove(u32),
        PopOldest,
    }

    fn change() -> impl Strategy<Value = Change> {
        prop_oneof![
            Just(Change::Insert),
            any::<u32>().prop_map(Change::Promote),
            any::<u32>().prop_map(Change::Remove),
            Just(Change::PopOldest),
        ]
    }

    proptest! {
        /// However the map changes between two slices of a sweep, every
        /// entry it held throughout is offered once, and goes if picked to
        /// go, or has its value replaced in its place (same recency, same
        /// weight) if picked so.
        #[test]
        fn a_sweep_in_slices_offers_every_entry_held_throughout_once(
            n in 0u32..60,
            budget in 1usize..8,
            between in prop::collection::vec(prop::collection::vec(change(), 0..4), 0..40),
        ) {
            const REPLACED: u32 = 1_000_000;
            let mut lru: Lru<u32, u32> = Lru::new(u64::MAX);
            for k in 0..n {
                lru.insert(k, k, 1);
            }
            let mut next = n;
            let mut changed = std::collections::HashSet::new();
            let mut offered = std::collections::HashMap::<u32, usize>::new();
            let mut swept = Vec::new();
            let mut at = Sweep::default();
            let mut between = between.into_iter();
            loop {
                let order: Vec<u32> = lru.iter().map(|(k, _)| *k).collect();
                // Some slices end early, after a few entries.
                let mut left = budget.min(7);
                let slice = lru.sweep(
                    &mut at,
                    budget,
                    |k, v| {
                        *offered.entry(*k).or_default() += 1;
                        match k % 3 {
                            0 => Pick::Remove,
                            1 => Pick::Replace(v + REPLACED),
                            _ => Pick::Keep,
                        }
                    },
                    || {
                        left = left.saturating_sub(1);
                        budget % 2 == 1 && left == 0
                    },
                );
                swept.extend(slice.removed.into_iter().map(|(k, _)| k));
                for v in slice.replaced {
                    prop_assert!(v % 3 == 1 && v < REPLACED, "replaced {}", v);
                }
                lru.assert_invariant();
                let kept: Vec<u32> = order.into_iter().filter(|k| lru.contains_key(k)).collect();
                let now: Vec<u32> = lru.iter().map(|(k, _)| *k).collect();
                prop_assert_eq!(now, kept, "recency changed");
                if slice.done {
                    break;
                }
                for change in between.next().unwrap_or_default() {
                    let any_key = |i: u32| i % next.max(1);
                    match change {
                        Change::Insert => {
                            lru.insert(next, next, 1);
                            next += 1;
                        }
                        Change::Promote(i) => {
                            lru.get(&any_key(i));
                        }
                        Change::Remove(i) => {
                            if lru.remove(&any_key(i)).is_some() {
                                changed.insert(any_key(i));
                            }
                        }
                        Change::PopOldest => {
                            if let Some((k, _)) = lru.pop_oldest() {
                                changed.insert(k);
                            }
                        }
                    }
                }
            }
            for k in (0..n).filter(|k| !changed.contains(k)) {
                prop_assert_eq!(offered.get(&k), Some(&1), "entry {}", k);
                let expected = match k % 3 {
                    0 => None,
                    1 => Some(k + REPLACED),
                    _ => Some(k),
                };
                prop_assert_eq!(lru.peek(&k).copied(), expected, "entry {}", k);
                if expected.is_some() {
                    prop_assert_eq!(lru.peek_weight(&k), Some(1), "entry {}", k);
                }
            }
            for k in swept {
                prop_assert!(k % 3 == 0 && !lru.contains_key(&k), "entry {}", k);
            }
        }
    }

    /// The obviously correct model: (key, value, weight), most recent first.
    struct Model {
        entries: Vec<(u8, u32, u64)>,
        capacity: u64,
    }

    impl Model {
        fn bytes(&self) -> u64 {
            self.entries.iter().map(|e| e.2).sum()
        }

        fn take(&mut self, k: u8) -> Option<(u8, u32, u64)> {
            let pos = self.entries.iter().position(|e| e.0 == k)?;
            Some(self.entries.remove(pos))
        }

        fn touch(&mut self, k: u8) -> Option<u32> {
            let e = self.take(k)?;
            self.entries.insert(0, e);
            Some(e.1)
        }

        fn shrink(&mut self) -> Vec<(u8, u32)> {
            let mut out = Vec::new();
            while self.bytes() > self.capacity {
                if let Some((k, v, _)) = self.entries.pop() {
                    out.push((k, v));
                }
            }
            out
        }

        fn insert(&mut self, k: u8, v: u32, w: u64) -> Vec<(u8, u32)> {
            let mut out: Vec<_> = self.take(k).map(|e| (e.0, e.1)).into_iter().collect();
            if self.capacity == 0 || w > self.capacity {
                out.push((k, v));
                return out;
            }
            while self.bytes() + w > self.capacity {
                if let Some((k, v, _)) = self.entries.pop() {
                    out.push((k, v));
                }
            }
            self.entries.insert(0, (k, v, w));
            out
        }
    }

    proptest! {
        #[test]
        fn behaves_like_the_model(capacity in 0u64..150, ops in prop::collection::vec(op(), 1..120)) {
            let mut lru = Lru::new(capacity);
            let mut model = Model { entries: Vec::new(), capacity };
            for op in ops {
                match op {
                    Op::Insert(k, v, w) => prop_assert_eq!(lru.insert(k, v, w), model.insert(k, v, w)),
                    Op::Get(k) => prop_assert_eq!(lru.get(&k).copied(), model.touch(k)),
                    Op::GetMut(k) => {
                        if let Some(v) = lru.get_mut(&k) {
                            *v = v.wrapping_add(1);
                        }
                        if model.touch(k).is_some() {
                            model.entries[0].1 = model.entries[0].1.wrapping_add(1);
                        }
                    }
                    Op::Peek(k) => {
                        let expected = model.entries.iter().find(|e| e.0 == k).map(|e| e.1);
                        prop_assert_eq!(lru.peek(&k).copied(), expected);
                    }
                    Op::Remove(k) => prop_assert_eq!(lru.remove(&k), model.take(k).map(|e| e.1)),
                    Op::PopOldest => {
                        let expected = model.entries.pop().map(|e| (e.0, e.1));
                        prop_assert_eq!(lru.pop_oldest(), expected);
                    }
                    Op::RetainEven => {
                        let before = model.entries.len();
                        model.entries.retain(|e| e.1 % 2 == 0);
                        prop_assert_eq!(lru.retain(|_, v| v % 2 == 0), before - model.entries.len());
                    }
                    Op::SetCapacity(c) => {
                        model.capacity = c;
                        prop_assert_eq!(lru.set_capacity(c), model.shrink());
                    }
                    Op::Clear => {
                        lru.clear();
                        model.entries.clear();
                    }
                }
                lru.assert_invariant();
                let got: Vec<_> = lru.iter().map(|(k, v)| (*k, *v)).collect();
                let want: Vec<_> = model.entries.iter().map(|e| (e.0, e.1)).collect();
                prop_assert_eq!(&got, &want);
                let mut back: Vec<_> = lru.iter_oldest_first().map(|(k, v)| (*k, *v)).collect();
                back.reverse();
                prop_assert_eq!(&back, &want);
                prop_assert_eq!(lru.bytes(), model.bytes());
                prop_assert_eq!(lru.len(), model.entries.len());
            }
        }
    }
}
