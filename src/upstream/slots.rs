//! `max_conns`: the most requests a target serves at once, and the wait
//! of the others for a free slot (HAProxy's server `maxconn` and its
//! queue). Every request at a target is counted here, limited or not.

use crate::metrics::TargetStats;
use parking_lot::{Condvar, Mutex};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Requests waiting for a slot at a limited target sleep here; a slot that
/// frees wakes them all (few wait but under overload), as each waits for
/// its own targets: woken one at a time, the one woken could be waiting
/// for another target, and the one that could use the slot sleep on.
static QUEUE: Mutex<()> = parking_lot::const_mutex(());
static FREED: Condvar = Condvar::new();
/// Tickets of waiting requests, in the order they began to wait.
static TICKETS: AtomicU64 = AtomicU64::new(0);

/// A request in the queue, with a ticket at each target it waits for (in
/// [`TargetStats::waiting`]) until dropped. A target's slots go to its
/// waiting requests in turn, before any request that just came, as
/// HAProxy serves its queue: else clients that keep their connections busy
/// would take every slot that frees and the waiting run out of time.
pub struct Waiting {
    ticket: u64,
    targets: Vec<Arc<TargetStats>>,
}

impl Waiting {
    pub fn at(targets: Vec<Arc<TargetStats>>) -> Waiting {
        let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
        for stats in &targets {
            stats.waiting.lock().insert(ticket);
        }
        Waiting { ticket, targets }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        for stats in &self.targets {
            stats.waiting.lock().remove(&self.ticket);
        }
        // The next in line may be free to go now.
        let _queue = QUEUE.lock();
        FREED.notify_all();
    }
}

/// Whether a request may take a slot at a target with `limit` now, as far
/// as the queue goes: nobody waits there, or it is the first in line.
pub fn in_turn(stats: &TargetStats, limit: usize, waiting: Option<&Waiting>) -> bool {
    if limit == 0 {
        return true;
    }
    match stats.waiting.lock().first() {
        None => true,
        Some(&first) => waiting.is_some_and(|w| w.ticket == first),
    }
}

/// A request at a backend; dropping it ends it, and frees its slot.
#[derive(Debug)]
pub struct InFlight<'a> {
    stats: &'a TargetStats,
    limited: bool,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        if self.limited {
            // Under the lock: a waiter checks for room and sleeps under
            // it, so it is either past its check (and sees this slot) or
            // asleep (and woken).
            let _queue = QUEUE.lock();
            FREED.notify_all();
        }
    }
}

/// Counts a request at a target and holds it as in flight until the guard
/// drops; `None` when `limit` requests (0: no limit) are there already.
pub fn begin(stats: &TargetStats, limit: usize) -> Option<InFlight<'_>> {
    if limit == 0 {
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
    } else {
        stats
            .in_flight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < limit).then_some(n + 1)
            })
            .ok()?;
    }
    stats.requests.fetch_add(1, Ordering::Relaxed);
    Some(InFlight {
        stats,
        limited: limit > 0,
    })
}

/// Whether `limit` (0: none) requests are at the target already.
pub fn is_full(stats: &TargetStats, limit: usize) -> bool {
    limit > 0 && stats.in_flight.load(Ordering::Relaxed) >= limit
}

/// Waits until a slot frees or `until` passes, unless `has_room` says one
/// is free already; returns whether it is still before `until`.
pub fn wait(until: Instant, has_room: impl Fn() -> bool) -> bool {
    let mut queue = QUEUE.lock();
    if has_room() {
        return true;
    }
    !FREED.wait_until(&mut queue, until).timed_out()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn in_flight_ends_with_its_guard() {
        let t = TargetStats::default();
        let guard = begin(&t, 0).unwrap();
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 1);
        drop(guard);
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(t.requests.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_limit_is_never_passed_and_a_freed_slot_wakes_a_waiter() {
        let t = TargetStats::default();
        let first = begin(&t, 2).unwrap();
        let _second = begin(&t, 2).unwrap();
        assert!(begin(&t, 2).is_none());
        assert!(is_full(&t, 2));
        assert_eq!(t.requests.load(Ordering::Relaxed), 2);
        std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let until = Instant::now() + Duration::from_secs(30);
                // Other tests free slots too, and every freed slot wakes
                // every waiter: as its callers do, look again after a wake.
                let woken = loop {
                    if !wait(until, || !is_full(&t, 2)) {
                        break false;
                    }
                    if !is_full(&t, 2) {
                        break true;
                    }
                };
                (woken, begin(&t, 2).is_some())
            });
            // Asleep by then, most likely: the free slot must wake it, not
            // its own look (either way it must get the slot).
            std::thread::sleep(Duration::from_millis(50));
            drop(first);
            assert_eq!(waiter.join().unwrap(), (true, true));
        });
        // Full again, and nothing frees: the wait ends at its deadline.
        let _third = begin(&t, 2).unwrap();
        let past = Instant::now();
        assert!(!wait(past, || !is_full(&t, 2)));
    }
}
