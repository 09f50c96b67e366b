//! Which target the next request of a pool goes to: the balancer's choice
//! among those that could serve it, backups last, a sticky client's
//! target first; or a wait for a slot, or why none.

use super::balancer::{Context, Peers};
use super::slots::{self, InFlight};
use super::{Upstream, Upstreams};
use crate::metrics::TargetStats;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest one wait for a slot at a target (`max_conns`) lasts before
/// the waiter looks again (whether its client left, whether the server is
/// shutting down).
const QUEUE_STEP: Duration = Duration::from_millis(250);

/// A place in the queue for a slot (`max_conns`): since when it waits
/// (`$upstream_queue_time`), and until when it may (`queue_timeout`);
/// counted among its pool's waiting (`max_queue`) while it is held.
pub struct InLine<'s> {
    place: slots::Waiting,
    pub since: Instant,
    pub until: Instant,
    _seat: slots::QueueSeat<'s>,
}

impl InLine<'_> {
    /// Its place, which [`Upstreams::pick`] gives its turn.
    pub fn place(&self) -> &slots::Waiting {
        &self.place
    }
}

/// What [`Upstreams::choose`] found.
enum Choice {
    Target(usize),
    /// Targets that could serve are up but have no slot for the request.
    Wait,
    Nothing,
    /// No target takes new requests: each is drained or in maintenance.
    Unavailable,
}

/// What [`Upstreams::pick`] found.
pub enum Pick<'a> {
    /// This target, the request counted in its in-flight number until the
    /// guard drops.
    Chosen(usize, InFlight<'a>),
    /// Targets that could serve are all at their `max_conns`: wait for a
    /// slot (see [`Upstreams::wait_for_slot`]).
    Full,
    /// Nothing is left to try.
    Nothing,
    /// No target takes new requests (each is drained or in maintenance),
    /// and the client is stuck to none that still serves: HAProxy's 503
    /// "no server available".
    Unavailable,
}

/// The targets of a group a pick may choose from: healthy and not tried
/// yet. Indexed like the group's members.
struct Candidates<'a> {
    targets: &'a [Upstream],
    members: &'a [usize],
    tried: &'a [bool],
    now: Instant,
    waiting: Option<&'a slots::Waiting>,
    slow_start: Duration,
}

impl Peers for Candidates<'_> {
    fn len(&self) -> usize {
        self.members.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.targets[self.members[i]].weight_now()
    }
    fn share(&self, i: usize) -> u32 {
        let health = &self.targets[self.members[i]].health;
        health.share(self.now, self.slow_start)
    }
    fn in_flight(&self, i: usize) -> usize {
        self.targets[self.members[i]].in_flight()
    }
    fn latency(&self, i: usize) -> Option<u64> {
        self.targets[self.members[i]].stats.latency.at(self.now)
    }
    fn usable(&self, i: usize) -> bool {
        let index = self.members[i];
        could_serve(&self.targets[index], index, self.tried, self.now)
            && !self.targets[index].has_no_slot(self.waiting)
    }
}

/// Not tried yet for this request, and not out of rotation: neither
/// drained nor in maintenance, nor down.
fn could_serve(target: &Upstream, index: usize, tried: &[bool], now: Instant) -> bool {
    !tried.get(index).copied().unwrap_or(false) && target.in_rotation(now)
}

/// The same for a client stuck to the target: a drained one will do.
fn could_serve_stuck(target: &Upstream, index: usize, tried: &[bool], now: Instant) -> bool {
    target.health.admin_state().takes_sticky_requests() && untried_and_up(target, index, tried, now)
}

fn untried_and_up(target: &Upstream, index: usize, tried: &[bool], now: Instant) -> bool {
    !tried.get(index).copied().unwrap_or(false) && target.health.usable(now)
}

impl Upstreams {
    /// The backend for the next request of `client` for `uri` (the path
    /// and query `uri_hash` hashes, see [`Context::uri`]), with `key`
    /// (the value `hash_on` names, see [`Context::key`]), skipping targets
    /// marked in `tried` (indexed like [`Upstreams::targets`]). Backups
    /// are chosen from (by the same algorithm) only when no other target
    /// is left. A target drained or in maintenance gets no new request;
    /// one the client is stuck to still does while drained. When every
    /// target is down, the first try goes to the one that failed longest
    /// ago, preferring one only passive failures keep out: a request is
    /// better tried than refused outright; with no target even `ready`,
    /// the answer is [`Pick::Unavailable`]. A retry never
    /// goes to a target that is down: with all of them down, one try per
    /// request is enough (else each would wait out every dead target's
    /// `connect_timeout`), and the client is told how it failed. A target
    /// at its `max_conns` is passed over like one already tried; when all
    /// that could serve are, the request waits for a slot ([`Pick::Full`])
    /// rather than going to a target that is down.
    pub fn pick(
        &self,
        client: IpAddr,
        uri: &str,
        key: Option<&[u8]>,
        tried: &[bool],
        stuck_to: Option<&str>,
        waiting: Option<&slots::Waiting>,
    ) -> Pick<'_> {
        let now = Instant::now();
        // Slots at limited targets go to those waiting, in turn.
        let take = |index: usize| {
            let target = &self.targets[index];
            if !slots::in_turn(&target.stats, waiting) {
                return None;
            }
            slots::begin(&target.stats)
        };
        // A full target the client is stuck to is waited for: its
        // sessions live there.
        if let Some(index) = self.stuck(stuck_to, tried, now) {
            return match take(index) {
                Some(busy) => Pick::Chosen(index, busy),
                None => Pick::Full,
            };
        }
        // A target's last slot taken by another request between the choice
        // and the count: choose again (it now counts as full).
        for _ in 0..=self.targets.len() {
            match self.choose(client, uri, key, tried, now, waiting) {
                Choice::Target(index) => {
                    if let Some(busy) = take(index) {
                        return Pick::Chosen(index, busy);
                    }
                }
                Choice::Wait => return Pick::Full,
                Choice::Nothing => return Pick::Nothing,
                Choice::Unavailable => return Pick::Unavailable,
            }
        }
        Pick::Full
    }

    fn choose(
        &self,
        client: IpAddr,
        uri: &str,
        key: Option<&[u8]>,
        tried: &[bool],
        now: Instant,
        waiting: Option<&slots::Waiting>,
    ) -> Choice {
        for group in &self.groups {
            let candidates = Candidates {
                targets: &self.targets,
                members: &group.members,
                tried,
                now,
                waiting,
                slow_start: self.slow_start,
            };
            let cx = Context {
                client,
                uri,
                key,
                peers: &candidates,
            };
            if let Some(i) = group.balancer.pick(&cx) {
                return Choice::Target(group.members[i % group.members.len()]);
            }
            // Up but with no slot for this request: waited for. The backups
            // are for when the others are down or tried, not busy; nor is
            // a target that is down tried while one that is up is busy.
            let up = group
                .members
                .iter()
                .any(|&i| could_serve(&self.targets[i], i, tried, now));
            if up {
                return Choice::Wait;
            }
        }
        // None at all (every name of the pool gave no address yet, see
        // `unresolved_targets`): as when every target is down and the
        // last one tried could not be reached, a 502.
        if tried.contains(&true) || self.targets.is_empty() {
            return Choice::Nothing;
        }
        // The last resort is for targets that are down, not for those the
        // operator took out: a target drained or in maintenance may be
        // the very one being worked on (and one its checks say is on its
        // way out, the very one being stopped).
        let index = (0..self.targets.len())
            .filter(|&i| self.targets[i].health.takes_new_requests())
            .min_by_key(|&i| self.targets[i].health.fallback_rank());
        index.map_or(Choice::Unavailable, Choice::Target)
    }

    /// Counts a request that found no slot among those waiting for the
    /// limited targets that could serve it.
    pub fn enqueue(&self, tried: &[bool], stuck_to: Option<&str>) -> slots::Waiting {
        slots::Waiting::at(self.lines(tried, stuck_to))
    }

    /// A place among the pool's requests waiting for a slot, for as long
    /// as it is held; `None` when `max_queue` of them wait already.
    pub fn join_queue(&self) -> Option<slots::QueueSeat<'_>> {
        slots::join_queue(&self.stats().queued, self.max_queue)
    }

    /// Moves a request already waiting to the lines it would join now:
    /// out of those of targets drained or put into maintenance since
    /// (see [`slots::Waiting::move_to`]).
    pub fn requeue(&self, tried: &[bool], stuck_to: Option<&str>, place: &mut slots::Waiting) {
        place.move_to(self.lines(tried, stuck_to));
    }

    /// The limited targets whose slots the request may wait for.
    fn lines(&self, tried: &[bool], stuck_to: Option<&str>) -> Vec<Arc<TargetStats>> {
        let now = Instant::now();
        let waited_for = match self.stuck(stuck_to, tried, now) {
            Some(index) => vec![index],
            None => self.waited_for(tried, now).collect(),
        };
        (waited_for.into_iter())
            .map(|i| &self.targets[i].stats)
            .filter(|stats| stats.waiting.limit() > 0)
            .cloned()
            .collect()
    }

    /// The targets that could serve a request the balancer made wait: those
    /// of the first group with one (see [`Upstreams::choose`]). Not the
    /// backups while a primary is up, however busy: a request waiting on
    /// a free backup would find room at once, every time, and never wait.
    fn waited_for<'a>(
        &'a self,
        tried: &'a [bool],
        now: Instant,
    ) -> impl Iterator<Item = usize> + 'a {
        let could = move |i: &usize| could_serve(&self.targets[*i], *i, tried, now);
        let group = self.groups.iter().find(|g| g.members.iter().any(could));
        group
            .into_iter()
            .flat_map(move |g| g.members.iter().copied().filter(could))
    }

    /// The target the client's sticky cookie names (`stuck_to`), while it
    /// could serve the request (drained, it still serves its clients).
    fn stuck(&self, stuck_to: Option<&str>, tried: &[bool], now: Instant) -> Option<usize> {
        let id = stuck_to?;
        let index = (self.targets.iter().position(|t| t.sticky_id == id)).or_else(|| {
            (self.targets.iter()).position(|t| t.former_sticky_id.as_deref() == Some(id))
        })?;
        let target = &self.targets[index];
        // Stuck to a backup during an outage: back to the others once one
        // of them can serve again.
        let primary_back = target.backup
            && self
                .targets
                .iter()
                .enumerate()
                .any(|(i, t)| !t.backup && could_serve(t, i, tried, now));
        (could_serve_stuck(target, index, tried, now) && !primary_back).then_some(index)
    }

    /// After [`Pick::Full`]: takes a place in line in `queued` (counted
    /// in `joined` as it is taken), or moves the one held to the lines it
    /// would join now, and waits one step for a slot ([`QUEUE_STEP`], to
    /// the place's `until` at most). Whether a slot may have freed, and
    /// the place; `None` when `max_queue` wait already, and no place was
    /// taken.
    pub fn wait_in_line<'s, 'q>(
        &'s self,
        queued: &'q mut Option<InLine<'s>>,
        tried: &[bool],
        stuck_to: Option<&str>,
        joined: &AtomicU64,
    ) -> Option<(bool, &'q InLine<'s>)> {
        let line = match queued {
            // Woken after a change of state: in the lines it may still
            // take a slot from, and no other.
            Some(line) => {
                self.requeue(tried, stuck_to, &mut line.place);
                &*line
            }
            None => {
                let seat = self.join_queue()?;
                // Before it is counted: whoever sees the count knows the
                // wait had begun.
                let since = Instant::now();
                joined.fetch_add(1, Ordering::Relaxed);
                queued.insert(InLine {
                    place: self.enqueue(tried, stuck_to),
                    since,
                    until: since + self.queue_timeout(),
                    _seat: seat,
                })
            }
        };
        let step = line.until.min(Instant::now() + QUEUE_STEP);
        Some((self.wait_for_slot(tried, stuck_to, &line.place, step), line))
    }

    /// Waits, after [`Pick::Full`], until a slot may have freed or `until`
    /// passes; `false` when `until` passed first.
    pub fn wait_for_slot(
        &self,
        tried: &[bool],
        stuck_to: Option<&str>,
        waiting: &slots::Waiting,
        until: Instant,
    ) -> bool {
        let free = |i: usize| !self.targets[i].has_no_slot(Some(waiting));
        waiting.wait(until, || {
            let now = Instant::now();
            match self.stuck(stuck_to, tried, now) {
                Some(index) => free(index),
                None => self.waited_for(tried, now).any(free),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::admin_state::AdminState;
    use super::super::test_support::upstreams;
    use super::*;
    use crate::config::{Balance, Config, Target};
    use std::net::SocketAddr;

    #[test]
    fn with_no_target_ready_every_algorithm_says_unavailable_at_once() {
        for balance in [
            Balance::RoundRobin,
            Balance::WeightedRoundRobin,
            Balance::LeastConn,
            Balance::LeastTime,
            Balance::IpHash,
            Balance::UriHash,
            Balance::Hash,
            Balance::RandomTwo,
        ] {
            for (max_conns, key) in [None, Some(1)].into_iter().zip([None, Some(&b"t1"[..])]) {
                let up = upstreams(3, balance, max_conns);
                let states = [AdminState::Drain, AdminState::Maint, AdminState::Drain];
                for (t, state) in up.targets().iter().zip(states) {
                    up.set_admin_state(t, state);
                }
                let client = IpAddr::from([10, 0, 0, 1]);
                for _ in 0..10 {
                    let pick = up.pick(client, "/", key, &[false; 3], None, None);
                    assert!(matches!(pick, Pick::Unavailable), "{balance:?}");
                }
                // The one left ready gets them all.
                up.set_admin_state(&up.targets()[2], AdminState::Ready);
                for _ in 0..10 {
                    match up.pick(client, "/", key, &[false; 3], None, None) {
                        Pick::Chosen(2, busy) => drop(busy),
                        _ => panic!("{balance:?}: not the ready target"),
                    }
                }
            }
        }
    }

    #[test]
    fn hash_passes_over_tried_and_full_targets_and_hashes_on_the_backups_own_ring() {
        let targets = (1..=5)
            .map(|port: u16| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                Target {
                    max_conns: Some(1),
                    backup: port > 3,
                    ..Target::new(addr.to_string(), addr)
                }
            })
            .collect();
        let mut config = Config::with_targets(targets);
        config.balance = Balance::Hash;
        let up = Upstreams::new(&config);
        let client = IpAddr::from([10, 0, 0, 1]);
        let pick =
            |key: &[u8], tried: &[bool]| match up.pick(client, "/", Some(key), tried, None, None) {
                Pick::Chosen(i, _) => i,
                _ => panic!("nothing chosen for {key:?} past {tried:?}"),
            };
        // Tenants spread over the primaries alone, each to one.
        let keys: Vec<String> = (0..30).map(|k| format!("tenant-{k}")).collect();
        let homes: Vec<usize> = keys
            .iter()
            .map(|k| pick(k.as_bytes(), &[false; 5]))
            .collect();
        assert!(homes.iter().all(|&h| h < 3), "{homes:?}");
        assert!((0..3).all(|t| homes.contains(&t)), "{homes:?}");
        for (key, &home) in keys.iter().zip(&homes) {
            assert_eq!(pick(key.as_bytes(), &[false; 5]), home, "{key}");
            // A retry goes to another primary.
            let mut tried = [false; 5];
            tried[home] = true;
            let next = pick(key.as_bytes(), &tried);
            assert!(next != home && next < 3, "{key}: {next}");
            // Home full (max_conns=1): passed over as if tried.
            let busy = match up.pick(client, "/", Some(key.as_bytes()), &[false; 5], None, None) {
                Pick::Chosen(i, busy) => (i == home).then_some(busy),
                _ => None,
            };
            assert!(busy.is_some(), "{key}: home not chosen");
            assert_eq!(pick(key.as_bytes(), &[false; 5]), next, "{key}");
            drop(busy);
        }
        // Every primary tried: to a backup, one for each tenant, and both
        // backups have tenants.
        let all_tried = [true, true, true, false, false];
        let spare: Vec<usize> = keys
            .iter()
            .map(|k| pick(k.as_bytes(), &all_tried))
            .collect();
        assert!(spare.iter().all(|&s| s >= 3), "{spare:?}");
        assert!(spare.contains(&3) && spare.contains(&4), "{spare:?}");
        for (key, &s) in keys.iter().zip(&spare) {
            assert_eq!(pick(key.as_bytes(), &all_tried), s, "{key}");
        }
    }

    #[test]
    fn a_stuck_client_keeps_a_drained_target_and_leaves_one_in_maintenance() {
        let up = upstreams(2, Balance::RoundRobin, Some(1));
        let client = IpAddr::from([10, 0, 0, 1]);
        let first = up.targets()[0].sticky_id.clone();
        up.set_admin_state(&up.targets()[0], AdminState::Drain);
        let busy = match up.pick(client, "/", None, &[false; 2], Some(&first), None) {
            Pick::Chosen(0, busy) => busy,
            _ => panic!("a drained target serves its sticky clients"),
        };
        // Full: its sticky clients wait for it; the others go elsewhere.
        assert!(matches!(
            up.pick(client, "/", None, &[false; 2], Some(&first), None),
            Pick::Full
        ));
        assert!(matches!(
            up.pick(client, "/", None, &[false; 2], None, None),
            Pick::Chosen(1, _)
        ));
        up.set_admin_state(&up.targets()[0], AdminState::Maint);
        assert!(matches!(
            up.pick(client, "/", None, &[false; 2], Some(&first), None),
            Pick::Chosen(1, _)
        ));
        drop(busy);
    }

    #[test]
    fn a_request_that_just_came_queues_behind_those_waiting_for_a_slot() {
        let mut config = Config::with_targets(vec![Target {
            max_conns: Some(1),
            ..Target::new("127.0.0.1:1", "127.0.0.1:1".parse().unwrap())
        }]);
        config.max_fails = 0;
        let upstreams = Upstreams::new(&config);
        let client = IpAddr::from([127, 0, 0, 1]);
        let tried = [false];
        // A slot is free, but requests wait for it already: it goes to
        // the first in line, then the next.
        let first = upstreams.enqueue(&tried, None);
        let second = upstreams.enqueue(&tried, None);
        assert!(matches!(
            upstreams.pick(client, "/", None, &tried, None, None),
            Pick::Full
        ));
        assert!(matches!(
            upstreams.pick(client, "/", None, &tried, None, Some(&second)),
            Pick::Full
        ));
        match upstreams.pick(client, "/", None, &tried, None, Some(&first)) {
            Pick::Chosen(0, busy) => drop(busy),
            _ => panic!("the first in line gets the slot"),
        }
        drop(first);
        match upstreams.pick(client, "/", None, &tried, None, Some(&second)) {
            Pick::Chosen(0, busy) => drop(busy),
            _ => panic!("then the next"),
        }
        drop(second);
        assert!(matches!(
            upstreams.pick(client, "/", None, &tried, None, None),
            Pick::Chosen(0, _)
        ));
    }

    /// Primary `127.0.0.1:1`, then backups `127.0.0.1:2..=3`.
    fn with_two_backups() -> Upstreams {
        let targets = (1..=3)
            .map(|port: u16| {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                Target {
                    backup: port > 1,
                    ..Target::new(addr.to_string(), addr)
                }
            })
            .collect();
        Upstreams::new(&Config::with_targets(targets))
    }

    fn chosen(pick: Pick<'_>) -> usize {
        match pick {
            Pick::Chosen(i, _) => i,
            _ => panic!("nothing chosen"),
        }
    }

    #[test]
    fn a_client_stuck_to_a_backup_stays_on_it_while_no_primary_can_serve() {
        let up = with_two_backups();
        let client = IpAddr::from([10, 0, 0, 1]);
        up.set_admin_state(&up.targets()[0], AdminState::Maint);
        // The second backup: round robin over the backups alone would
        // give the first one every other request.
        let second = up.targets()[2].sticky_id.clone();
        for _ in 0..4 {
            let pick = up.pick(client, "/", None, &[false; 3], Some(&second), None);
            assert_eq!(chosen(pick), 2);
        }
        up.set_admin_state(&up.targets()[0], AdminState::Ready);
        let pick = up.pick(client, "/", None, &[false; 3], Some(&second), None);
        assert_eq!(chosen(pick), 0, "back to the primary");
    }

    #[test]
    fn a_cookie_naming_no_target_sticks_the_client_to_none() {
        let up = upstreams(2, Balance::RoundRobin, None);
        let client = IpAddr::from([10, 0, 0, 1]);
        // A target since removed, or a cookie made up: plain round robin.
        let got: Vec<usize> = (0..4)
            .map(|_| chosen(up.pick(client, "/", None, &[false; 2], Some("gone"), None)))
            .collect();
        assert_eq!(got, [0, 1, 0, 1]);
    }

    #[test]
    fn a_request_waits_in_the_line_of_the_target_it_may_go_to_and_no_other() {
        let up = upstreams(2, Balance::RoundRobin, Some(1));
        let client = IpAddr::from([10, 0, 0, 1]);
        // Tried at the first already; the second full.
        let tried = [true, false];
        let busy = match up.pick(client, "/", None, &tried, None, None) {
            Pick::Chosen(1, busy) => busy,
            _ => panic!("not the untried target"),
        };
        assert!(matches!(
            up.pick(client, "/", None, &tried, None, None),
            Pick::Full
        ));
        let place = up.enqueue(&tried, None);
        // Requests that just came are held behind it at the second only.
        let [first, second] = [0, 1].map(|i| slots::in_turn(&up.targets()[i].stats, None));
        assert!(first && !second, "in turn: {first} {second}");
        drop((busy, place));
    }

    #[test]
    fn a_wait_for_a_slot_ends_at_once_when_one_is_free_and_at_its_deadline_when_none_frees() {
        let up = upstreams(1, Balance::RoundRobin, Some(1));
        let client = IpAddr::from([10, 0, 0, 1]);
        let tried = [false];
        let busy = match up.pick(client, "/", None, &tried, None, None) {
            Pick::Chosen(0, busy) => busy,
            _ => panic!("the free target"),
        };
        let place = up.enqueue(&tried, None);
        assert!(!up.wait_for_slot(&tried, None, &place, Instant::now()));
        drop(busy);
        // A deadline the test never reaches: a wait that misses the free
        // slot fails the test rather than passing late.
        let far = Instant::now() + Duration::from_secs(3600);
        assert!(up.wait_for_slot(&tried, None, &place, far));
        match up.pick(client, "/", None, &tried, None, Some(&place)) {
            Pick::Chosen(0, busy) => drop(busy),
            _ => panic!("the slot that freed"),
        };
    }

    #[test]
    fn a_stuck_client_s_retry_goes_to_another_target() {
        let up = upstreams(2, Balance::RoundRobin, None);
        let client = IpAddr::from([10, 0, 0, 1]);
        let first = up.targets()[0].sticky_id.clone();
        let pick = up.pick(client, "/", None, &[false; 2], Some(&first), None);
        assert_eq!(chosen(pick), 0);
        // It failed there: the cookie does not send the retry back.
        for _ in 0..2 {
            let pick = up.pick(client, "/", None, &[true, false], Some(&first), None);
            assert_eq!(chosen(pick), 1);
        }
    }
}
