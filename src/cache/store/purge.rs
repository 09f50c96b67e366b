//! Purges: of URLs, of every entry of a group (a prefix, a tag, a
//! pattern) by a walk in slices of the lock, hard or soft, and clears.

use super::{unix_ms, Cache, Entry, Group, Target, SWEEP_SLICE};
use crate::cache::lru::{Pick, Sweep};
use crate::cache::policy;
use parking_lot::MutexGuard;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// URIs invalidated while fills are in flight that are remembered one by
/// one; past this, an invalidation counts as a clear for those fills.
pub(super) const MAX_TRACKED_INVALIDATIONS: usize = 4096;

/// Groups purged while fills are in flight that are remembered one by
/// one (each insert of a fill compares its entry with every one); past
/// this, a group's purge counts as a clear for those fills.
pub(super) const MAX_TRACKED_GROUPS: usize = 64;

/// The longest a slice of a purge's walk holds the lock, whatever it
/// finds: a `Purge-Regex` pattern may take milliseconds on each long key
/// (linear in the key, but by a factor that grows with the pattern), and
/// 1024 keys of 8 KiB held the lock for seconds.
const SWEEP_HOLD: Duration = Duration::from_millis(2);

/// What a purge names, as its counters are labelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Named {
    Url,
    Prefix,
    Tag,
    Pattern,
}

impl Named {
    pub const ALL: [Named; 4] = [Named::Url, Named::Prefix, Named::Tag, Named::Pattern];

    pub fn label(self) -> &'static str {
        match self {
            Named::Url => "url",
            Named::Prefix => "prefix",
            Named::Tag => "tag",
            Named::Pattern => "pattern",
        }
    }
}

/// What a purge does to the entries it names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purge {
    /// Drops them.
    Hard,
    /// Marks them stale as of this time (Fastly's soft purge, Varnish's
    /// `softpurge`): each is replaced in place by its [`Entry::outdated`]
    /// copy, which keeps its stale windows, so that the next request
    /// revalidates it (a 304 when nothing changed) and it still stands in
    /// while the origin fails. One already stale is left as it is.
    Soft(SystemTime),
}

impl Purge {
    /// What becomes of `entry`, one the purge names.
    fn pick(self, entry: &Arc<Entry>) -> Pick<Arc<Entry>> {
        match self {
            Purge::Hard => Pick::Remove,
            // `outdated` would leave it as it is: the same `Arc` stays.
            Purge::Soft(now) if entry.record.expires_at <= unix_ms(now) => Pick::Keep,
            // The copy shares the body and any compressed copy, and takes
            // the slot at the weight it had: a compressed copy made just
            // before, whose `reweigh` then finds the copy and does nothing,
            // goes uncounted until the entry is next replaced.
            Purge::Soft(now) => Pick::Replace(Arc::new(entry.outdated(now))),
        }
    }
}

impl Cache {
    /// Purges every variant stored for each of `primaries`, under one
    /// lock (see [`Purge`]); returns how many entries it named. A response
    /// to one of them still on its way is not stored (it may predate the
    /// purge; see [`Fill`]).
    ///
    /// [`Fill`]: super::Fill
    pub fn invalidate_all(&self, primaries: &[String], purge: Purge) -> usize {
        let target = || Target::Primaries(primaries.to_vec());
        self.purge_both(target, purge, || {
            self.invalidate_in_memory(primaries, purge)
        })
    }

    /// [`Cache::invalidate_all`] of what memory holds.
    fn invalidate_in_memory(&self, primaries: &[String], purge: Purge) -> usize {
        let mut state = self.state.lock();
        state.epoch += 1;
        let epoch = state.epoch;
        let (mut named, mut out) = (0, Vec::new());
        for primary in primaries {
            if !state.fills.is_empty() {
                // Past a bound (one long fill, a stream, holding the list
                // open while every URI written to adds to it), counted as
                // a clear: the fills in flight store nothing, which is
                // always safe.
                if state.invalidated.len() >= MAX_TRACKED_INVALIDATIONS {
                    state.invalidated.clear();
                    state.cleared = epoch;
                } else {
                    state.invalidated.insert(primary.clone(), epoch);
                }
            }
            // The variants stay indexed while their entries do.
            let variants = match purge {
                Purge::Hard => state.vary.remove(primary.as_str()).map(|v| v.keys),
                Purge::Soft(_) => (state.vary.get(primary.as_str())).map(|v| v.keys.clone()),
            };
            for key in variants.iter().flatten().chain([primary]) {
                let Some(held) = state.lru.peek(key.as_str()) else {
                    continue;
                };
                named += 1;
                match purge.pick(held) {
                    Pick::Keep => {}
                    Pick::Remove => out.extend(state.lru.remove(key.as_str())),
                    Pick::Replace(outdated) => out.extend(
                        (state.lru.peek_mut(key.as_str())).map(|e| std::mem::replace(e, outdated)),
                    ),
                }
            }
        }
        drop(state);
        if !out.is_empty() {
            self.changed();
        }
        // Entries freed outside the lock.
        drop(out);
        named
    }

    /// Purges every entry whose primary key starts with one of `prefixes`
    /// (every Vary variant of each); returns how many it named. The walk
    /// holds the lock a slice at a time, and a response to such a key
    /// still on its way is not stored (see `invalidate_group`).
    pub fn invalidate_prefixes(&self, prefixes: &[String], purge: Purge) -> usize {
        self.invalidate_group(&Group::Prefixes(prefixes.to_vec()), purge)
    }

    /// Purges every entry tagged with one of `tags` (`Surrogate-Key`),
    /// whatever its key; returns how many it named. As
    /// [`Cache::invalidate_prefixes`] otherwise: a response with one of
    /// the tags still on its way is not stored.
    pub fn invalidate_tags(&self, tags: &policy::Tags, purge: Purge) -> usize {
        self.invalidate_group(&Group::Tags(tags.clone()), purge)
    }

    /// Purges every entry of `pattern`'s host whose path and query it
    /// matches (every Vary variant of each, both schemes); returns how many
    /// it named. As [`Cache::invalidate_prefixes`] otherwise: a response
    /// to such a key still on its way is not stored.
    pub fn invalidate_pattern(&self, pattern: &policy::KeyPattern, purge: Purge) -> usize {
        self.invalidate_group(&Group::Pattern(pattern.clone()), purge)
    }

    /// Purges every entry of `group`; returns how many it named. A
    /// response of the group still on its way is not stored, as for
    /// [`Cache::invalidate_all`]: a soft purge too, whose outdated entry
    /// then stays, to be revalidated by a request that comes after it.
    ///
    /// The walk over every entry takes the lock for [`SWEEP_SLICE`] slots
    /// at a time, so that requests for the cache wait for one slice, not
    /// for the whole walk. Entries stored meanwhile come from requests
    /// that began after the invalidation (those begun before are not
    /// stored): newer than it, they are kept, dropped or outdated as the
    /// walk meets them or not, which is safe either way. But for a refresh
    /// of an entry stored before it ([`Cache::replace_filled`]), which is
    /// not stored while a walk of a group the entry is in is under way:
    /// found before the walk got to it, that entry's pre-purge body could
    /// come back, fresh, in a slot the walk has passed. A soft purge's
    /// outdated copy takes the slot of what it replaces, so the walk does
    /// not meet it again.
    fn invalidate_group(&self, group: &Group, purge: Purge) -> usize {
        self.purge_both(
            || Target::Group(group.clone()),
            purge,
            || self.invalidate_group_by(group, purge, SWEEP_SLICE, || {}).0,
        )
    }

    /// [`Cache::invalidate_group`] by `slice` slots per hold of the lock,
    /// calling `between` (tests: what other requests do) with the lock
    /// released after each slice but the last; also says the longest
    /// hold.
    pub(super) fn invalidate_group_by(
        &self,
        group: &Group,
        purge: Purge,
        slice: usize,
        mut between: impl FnMut(),
    ) -> (usize, Duration) {
        {
            let mut guard = self.state.lock();
            let state = &mut *guard;
            state.epoch += 1;
            let epoch = state.epoch;
            if !state.fills.is_empty() {
                // A group purged again (a deploy script's retry) moves its
                // epoch on rather than taking another place.
                let tracked = &mut state.invalidated_groups;
                match tracked.iter().position(|(g, _)| g == group) {
                    Some(again) => tracked[again].1 = epoch,
                    None if tracked.len() >= MAX_TRACKED_GROUPS => {
                        tracked.clear();
                        state.cleared = epoch;
                    }
                    None => tracked.push((group.clone(), epoch)),
                }
            }
            state.sweeping.push(group.clone());
        }
        let mut at = Sweep::default();
        let (mut named, mut longest_hold) = (0, Duration::ZERO);
        loop {
            let mut state = self.state.lock();
            let held = Instant::now();
            // A read of the clock per slot: some 2% of a slot's work.
            let enough = || held.elapsed() >= SWEEP_HOLD;
            let pick = |key: &String, e: &Arc<Entry>| {
                if !group.holds(key, e) {
                    return Pick::Keep;
                }
                named += 1;
                purge.pick(e)
            };
            let out = (state.lru).sweep(&mut at, slice, pick, enough);
            for (key, _) in &out.removed {
                state.forget_variant(key);
            }
            if out.done {
                if let Some(i) = state.sweeping.iter().position(|g| g == group) {
                    state.sweeping.swap_remove(i);
                }
            }
            longest_hold = longest_hold.max(held.elapsed());
            // Handed to a request waiting for it, if any: released plainly,
            // the lock would be taken again at once by the next slice
            // before the waiter woke, and the waiter could wait out many.
            MutexGuard::unlock_fair(state);
            if !out.removed.is_empty() || !out.replaced.is_empty() {
                self.changed();
            }
            let done = out.done;
            drop(out); // entries freed outside the lock
            if done {
                return (named, longest_hold);
            }
            between();
        }
    }

    /// Drops every variant stored for a primary key; returns how many.
    pub fn invalidate(&self, primary: &str) -> usize {
        self.invalidate_all(&[primary.to_string()], Purge::Hard)
    }

    /// Drops everything; returns how many entries there were.
    pub fn clear(&self) -> usize {
        self.purge_both(|| Target::All, Purge::Hard, || self.clear_memory())
    }

    fn clear_memory(&self) -> usize {
        let mut state = self.state.lock();
        state.epoch += 1;
        if !state.fills.is_empty() {
            state.cleared = state.epoch;
        }
        let n = state.lru.len();
        // Freed outside the lock: dropping hundreds of thousands of
        // entries takes a good part of a second, which every request
        // for the cache would wait out.
        let emptied = state.lru.emptied();
        let gone = std::mem::replace(&mut state.lru, emptied);
        let vary = std::mem::take(&mut state.vary);
        drop(state);
        drop((gone, vary));
        self.changed();
        n
    }
}
