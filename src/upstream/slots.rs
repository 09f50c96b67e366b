//! `max_conns`: the most requests a target serves at once, and the wait
//! of the others for a free slot (HAProxy's server `maxconn` and its
//! queue). Every request at a target is counted here, limited or not.

use crate::metrics::TargetStats;
use parking_lot::{Condvar, Mutex};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Tickets of waiting requests, in the order they began to wait.
static TICKETS: AtomicU64 = AtomicU64::new(0);
/// [`Queue::first`] while nobody waits (no ticket ever gets this far).
const NOBODY: u64 = u64::MAX;

/// The requests waiting for a slot at one limited target, by ticket.
///
/// Only the first in line may take a slot that frees ([`in_turn`]), so a
/// freed slot wakes only it, and a first that leaves the line (served
/// elsewhere, timed out, its client gone) wakes the next: woken all at
/// once, every waiter at every target looked at its client and the
/// targets again for each slot, to find it was not its turn.
#[derive(Debug)]
pub struct Queue {
    line: Mutex<BTreeMap<u64, Arc<Wake>>>,
    /// The first ticket in `line`, or [`NOBODY`]: written under its
    /// lock, read without it by every request that looks at the target
    /// (nearly always to find nobody waiting).
    first: AtomicU64,
    /// The target's `max_conns` in the settings in force (0: none), one
    /// value for the requests of every generation: a reload that raises
    /// it lets in those waiting since before it too, and the requests
    /// that came after them are not held behind them.
    limit: AtomicUsize,
}

impl Default for Queue {
    fn default() -> Queue {
        Queue {
            line: Mutex::default(),
            first: AtomicU64::new(NOBODY),
            limit: AtomicUsize::new(0),
        }
    }
}

impl Queue {
    /// Puts `limit` in force; a change wakes every request waiting, to
    /// look again.
    pub fn set_limit(&self, limit: usize) {
        if self.limit.swap(limit, Ordering::Relaxed) != limit {
            self.wake_all();
        }
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    fn join(&self, ticket: u64, wake: &Arc<Wake>) {
        let mut line = self.line.lock();
        line.insert(ticket, wake.clone());
        self.set_first(&line);
    }

    fn leave(&self, ticket: u64) {
        let mut line = self.line.lock();
        let was_first = line.first_key_value().is_some_and(|(&t, _)| t == ticket);
        line.remove(&ticket);
        self.set_first(&line);
        if was_first {
            // The slot it was woken for, if any, is the next one's now.
            wake_first(&line);
        }
    }

    /// A slot freed (its count already taken back).
    fn slot_freed(&self) {
        // Under the lock: a request that joins the line after this look
        // at it joined under the same lock, so it sees the slot when it
        // checks for room; one that joined before is in the line, and is
        // woken if first.
        wake_first(&self.line.lock());
    }

    /// Wakes every request in the line, to choose again: the target was
    /// drained or put into maintenance (or back), which changes where
    /// each may go, not just who is next.
    pub fn wake_all(&self) {
        for wake in self.line.lock().values() {
            wake.wake();
        }
    }

    fn set_first(&self, line: &BTreeMap<u64, Arc<Wake>>) {
        let first = line.first_key_value().map_or(NOBODY, |(&t, _)| t);
        self.first.store(first, Ordering::Release);
    }
}

fn wake_first(line: &BTreeMap<u64, Arc<Wake>>) {
    if let Some((_, wake)) = line.first_key_value() {
        wake.wake();
    }
}

/// Where a waiting request sleeps. `woken` stays set until the request
/// looks: one woken before it sleeps (while it checks its client, or
/// picks) does not sleep through it.
#[derive(Debug, Default)]
struct Wake {
    woken: Mutex<bool>,
    cv: Condvar,
}

impl Wake {
    fn wake(&self) {
        *self.woken.lock() = true;
        self.cv.notify_one();
    }
}

/// A request in the queue, with a ticket at each target it waits for (in
/// [`TargetStats::waiting`]) until dropped. A target's slots go to its
/// waiting requests in turn, before any request that just came, as
/// HAProxy serves its queue: else clients that keep their connections busy
/// would take every slot that frees and the waiting run out of time.
pub struct Waiting {
    ticket: u64,
    wake: Arc<Wake>,
    targets: Vec<Arc<TargetStats>>,
}

impl Waiting {
    pub fn at(targets: Vec<Arc<TargetStats>>) -> Waiting {
        let ticket = TICKETS.fetch_add(1, Ordering::Relaxed);
        let wake = Arc::new(Wake::default());
        for stats in &targets {
            stats.waiting.join(ticket, &wake);
        }
        Waiting {
            ticket,
            wake,
            targets,
        }
    }

    /// Moves the request to the lines of `targets`, keeping its ticket
    /// (its place by age in each): it leaves those of targets it may no
    /// longer go to (drained or put into maintenance while it waited),
    /// where it would otherwise stay first in line and keep the slots
    /// that free there from requests that may take them (a drained
    /// target's sticky clients).
    pub fn move_to(&mut self, targets: Vec<Arc<TargetStats>>) {
        for old in &self.targets {
            if !targets.iter().any(|t| Arc::ptr_eq(t, old)) {
                old.waiting.leave(self.ticket);
            }
        }
        for new in &targets {
            if !self.targets.iter().any(|t| Arc::ptr_eq(t, new)) {
                new.waiting.join(self.ticket, &self.wake);
            }
        }
        self.targets = targets;
    }

    /// Waits until it is woken (a slot freed where it is first in line, or
    /// it became first) or `until` passes, unless `has_room` says a slot is
    /// free for it already; `false` when `until` passed without either.
    ///
    /// No wake is lost: it joined its lines before `has_room` looks, and a
    /// slot freed after that look wakes the first in line (see
    /// [`InFlight`]'s drop), which sets `woken` even if it is not asleep yet.
    pub fn wait(&self, until: Instant, has_room: impl Fn() -> bool) -> bool {
        if has_room() {
            return true;
        }
        let mut woken = self.wake.woken.lock();
        while !*woken {
            if self.wake.cv.wait_until(&mut woken, until).timed_out() {
                break;
            }
        }
        std::mem::take(&mut *woken)
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        for stats in &self.targets {
            stats.waiting.leave(self.ticket);
        }
    }
}

/// Whether a request may take a slot at a target now, as far as the
/// queue goes: it has no limit, nobody waits there, or it is the first in
/// line.
pub fn in_turn(stats: &TargetStats, waiting: Option<&Waiting>) -> bool {
    if stats.waiting.limit() == 0 {
        return true;
    }
    match stats.waiting.first.load(Ordering::Acquire) {
        NOBODY => true,
        first => waiting.is_some_and(|w| w.ticket == first),
    }
}

/// A request at a backend; dropping it ends it, and frees its slot.
#[derive(Debug)]
pub struct InFlight<'a> {
    stats: &'a TargetStats,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        end(self.stats);
    }
}

impl InFlight<'_> {
    /// The same request, held by a guard that owns `stats`, its target's
    /// counters (those it was counted at): for a request that outlives the
    /// settings it was picked under on another thread (a UDP session).
    pub fn held_by(self, stats: &Arc<TargetStats>) -> Held {
        debug_assert!(
            std::ptr::eq(self.stats, &**stats),
            "an in-flight request moved to another target's counters"
        );
        std::mem::forget(self);
        Held {
            stats: Arc::clone(stats),
        }
    }
}

/// An [`InFlight`] that owns its target's counters.
#[derive(Debug)]
pub struct Held {
    stats: Arc<TargetStats>,
}

impl Drop for Held {
    fn drop(&mut self) {
        end(&self.stats);
    }
}

/// A request at the target of `stats` ends, its slot freed.
fn end(stats: &TargetStats) {
    stats.in_flight.fetch_sub(1, Ordering::Relaxed);
    // The limit now, not the one it began under: one a reload set since
    // is waited for by requests that this one's end lets in.
    if stats.waiting.limit() > 0 {
        stats.waiting.slot_freed();
    }
}

/// Counts a request at a target and holds it as in flight until the guard
/// drops; `None` when the target's limit of requests is there already.
pub fn begin(stats: &TargetStats) -> Option<InFlight<'_>> {
    let limit = stats.waiting.limit();
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
    Some(InFlight { stats })
}

/// A request counted among its pool's waiting for a slot until it drops.
#[derive(Debug)]
pub struct QueueSeat<'a> {
    queued: &'a AtomicUsize,
}

impl Drop for QueueSeat<'_> {
    fn drop(&mut self) {
        self.queued.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Counts a request among the `queued`; `None` when `limit` of them are
/// there already (`max_queue`; `None`: no limit).
pub fn join_queue(queued: &AtomicUsize, limit: Option<usize>) -> Option<QueueSeat<'_>> {
    let room = |n: usize| limit.is_none_or(|limit| n < limit);
    (queued.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        room(n).then_some(n + 1)
    }))
    .ok()?;
    Some(QueueSeat { queued })
}

/// Whether the target's limit of requests are there already.
pub fn is_full(stats: &TargetStats) -> bool {
    let limit = stats.waiting.limit();
    limit > 0 && stats.in_flight.load(Ordering::Relaxed) >= limit
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_queue_seat_is_given_below_the_limit_and_given_back_when_dropped() {
        let queued = AtomicUsize::new(0);
        let first = join_queue(&queued, Some(2)).unwrap();
        let second = join_queue(&queued, Some(2)).unwrap();
        assert!(join_queue(&queued, Some(2)).is_none());
        assert_eq!(
            queued.load(Ordering::Relaxed),
            2,
            "a refusal counts nothing"
        );
        drop(first);
        assert_eq!(queued.load(Ordering::Relaxed), 1);
        let third = join_queue(&queued, Some(2)).unwrap();
        assert!(join_queue(&queued, Some(0)).is_none());
        let unlimited: Vec<_> = (0..5).map(|_| join_queue(&queued, None).unwrap()).collect();
        assert_eq!(queued.load(Ordering::Relaxed), 7);
        drop((second, third, unlimited));
        assert_eq!(queued.load(Ordering::Relaxed), 0);
    }

    /// A target's counters with `max_conns = limit`.
    fn limited(limit: usize) -> Arc<TargetStats> {
        let t = Arc::new(TargetStats::default());
        t.waiting.set_limit(limit);
        t
    }

    #[test]
    fn in_flight_ends_with_its_guard() {
        let t = TargetStats::default();
        let guard = begin(&t).unwrap();
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 1);
        drop(guard);
        assert_eq!(t.in_flight.load(Ordering::Relaxed), 0);
        assert_eq!(t.requests.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_limit_is_never_passed_and_a_freed_slot_wakes_a_waiter() {
        let t = limited(2);
        let first = begin(&t).unwrap();
        let _second = begin(&t).unwrap();
        assert!(begin(&t).is_none());
        assert!(is_full(&t));
        assert_eq!(t.requests.load(Ordering::Relaxed), 2);
        let waiting = Waiting::at(vec![t.clone()]);
        let third = std::thread::scope(|s| {
            let waiter = s.spawn(|| {
                let until = Instant::now() + Duration::from_secs(30);
                let woken = waiting.wait(until, || !is_full(&t));
                let slot = begin(&t);
                drop(waiting);
                (woken, slot)
            });
            // Asleep by then, most likely: the free slot must wake it, not
            // its own look (either way it must get the slot).
            std::thread::sleep(Duration::from_millis(50));
            drop(first);
            let (woken, slot) = waiter.join().unwrap();
            assert!(woken);
            slot.expect("the freed slot")
        });
        // Full again, and nothing frees: the wait ends at its deadline.
        assert!(is_full(&t));
        let late = Waiting::at(vec![t.clone()]);
        assert!(!late.wait(Instant::now(), || !is_full(&t)));
        drop(third);
    }

    /// Whether `w` was woken since it last looked.
    fn woken(w: &Waiting) -> bool {
        w.wait(Instant::now(), || false)
    }

    #[test]
    fn a_freed_slot_wakes_the_first_in_line_only_and_a_first_that_leaves_wakes_the_next() {
        let t = limited(1);
        let busy = begin(&t).unwrap();
        let first = Waiting::at(vec![t.clone()]);
        let second = Waiting::at(vec![t.clone()]);
        let third = Waiting::at(vec![t.clone()]);
        assert!(in_turn(&t, Some(&first)));
        assert!(!in_turn(&t, Some(&second)) && !in_turn(&t, None));
        drop(busy);
        assert!(woken(&first));
        assert!(!woken(&second) && !woken(&third));
        // Served: it leaves the line, and the next is woken to look (no
        // slot for it yet); one behind it leaving wakes nobody.
        let busy = begin(&t).unwrap();
        drop(first);
        assert!(in_turn(&t, Some(&second)));
        assert!(woken(&second));
        drop(third);
        assert!(!woken(&second));
        drop(busy);
        assert!(woken(&second));
        drop(second);
        assert!(in_turn(&t, None));
    }

    #[test]
    fn a_new_limit_holds_for_the_requests_begun_or_waiting_under_the_old_one() {
        let t = limited(1);
        let busy = begin(&t).unwrap();
        let waiting = Waiting::at(vec![t.clone()]);
        assert!(is_full(&t));
        // Raised (a reload): woken to look again, a slot is there for it.
        t.waiting.set_limit(3);
        assert!(woken(&waiting));
        assert!(!is_full(&t) && in_turn(&t, Some(&waiting)));
        let second = begin(&t).unwrap();
        drop(waiting);
        // The same limit again wakes nobody.
        let next = Waiting::at(vec![t.clone()]);
        t.waiting.set_limit(3);
        assert!(!woken(&next));
        drop((busy, second, next));
        // Put on a target whose requests began without one: their end
        // wakes those waiting under it.
        let t = limited(0);
        let unlimited = begin(&t).unwrap();
        t.waiting.set_limit(1);
        let waiting = Waiting::at(vec![t.clone()]);
        assert!(is_full(&t));
        drop(unlimited);
        assert!(woken(&waiting));
    }

    #[test]
    fn a_request_moved_leaves_the_lines_it_no_longer_waits_in_and_keeps_its_place_in_the_rest() {
        let (a, b) = (limited(1), limited(1));
        let mut moved = Waiting::at(vec![a.clone(), b.clone()]);
        let later = Waiting::at(vec![a.clone(), b.clone()]);
        moved.move_to(vec![b.clone()]);
        // Out of a's line: the later request is first there now, and a
        // slot freeing at a wakes it.
        assert!(in_turn(&a, Some(&later)));
        // Still ahead at b.
        assert!(in_turn(&b, Some(&moved)) && !in_turn(&b, Some(&later)));
        // Back in a's line with the ticket it had: ahead again.
        moved.move_to(vec![a.clone(), b.clone()]);
        assert!(in_turn(&a, Some(&moved)) && !in_turn(&a, Some(&later)));
        drop(moved);
        assert!(in_turn(&a, Some(&later)) && in_turn(&b, Some(&later)));
    }

    #[test]
    fn a_change_of_state_wakes_every_request_in_the_line() {
        let t = limited(1);
        let line: Vec<Waiting> = (0..3).map(|_| Waiting::at(vec![t.clone()])).collect();
        t.waiting.wake_all();
        assert!(line.iter().all(woken));
        // Still in line, in the same order.
        assert!(in_turn(&t, Some(&line[0])) && !in_turn(&t, Some(&line[1])));
    }

    #[test]
    fn a_line_of_sleeping_requests_takes_the_slot_in_turn_without_a_wake_lost() {
        let t = limited(1);
        let busy = begin(&t).unwrap();
        let order = Mutex::new(Vec::new());
        // Each has its place before any sleeps: tickets in this order.
        let line: Vec<Waiting> = (0..8).map(|_| Waiting::at(vec![t.clone()])).collect();
        std::thread::scope(|s| {
            let (t, order) = (&t, &order);
            let waiters: Vec<_> = line
                .into_iter()
                .enumerate()
                .map(|(i, place)| {
                    s.spawn(move || {
                        // A lost wake would sleep to the deadline and fail.
                        let until = Instant::now() + Duration::from_secs(30);
                        let has_room = || !is_full(t) && in_turn(t, Some(&place));
                        let slot = loop {
                            if let Some(slot) = has_room().then(|| begin(t)).flatten() {
                                break slot;
                            }
                            if !place.wait(until, has_room) {
                                return false;
                            }
                        };
                        order.lock().push(i);
                        drop(place);
                        drop(slot);
                        true
                    })
                })
                .collect();
            drop(busy);
            for waiter in waiters {
                assert!(waiter.join().unwrap(), "a waiter was never woken");
            }
        });
        assert_eq!(*order.lock(), (0..8).collect::<Vec<_>>());
        assert!(in_turn(&t, None));
    }
}
