//! Choosing a backend. A balancer only picks an index; it never touches
//! sockets, so each algorithm is a few lines and testable alone.
//!
//! What a balancer may look at is passed in a [`Context`]: the client's
//! address (for `ip_hash`), the request's URI (for `uri_hash`), the value
//! `hash_on` names (for `hash`) and a view of the targets ([`Peers`]):
//! their weights, requests in flight, and whether each may be chosen at
//! all (down targets and targets already tried for this request may not).
//! When no target may be chosen a balancer says `None`; what to do then
//! (try the least recently failed one) is the caller's policy.

use crate::config::Balance;
use parking_lot::{Mutex, RwLock};
use std::cell::Cell;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A target's whole share of its weight, in thousandths (see
/// [`Peers::share`]).
pub const FULL_SHARE: u32 = 1000;

/// The targets as a balancer sees them.
pub trait Peers {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn weight(&self, i: usize) -> u32;
    /// The part of its weight target `i` gets now, in thousandths: less
    /// than [`FULL_SHARE`] while it ramps up under `slow_start`.
    fn share(&self, _i: usize) -> u32 {
        FULL_SHARE
    }
    /// Requests being served by target `i` right now.
    fn in_flight(&self, i: usize) -> usize;
    /// How long target `i` has taken to answer lately, in nanoseconds
    /// (see [`super::latency`]); `None` before its first answer.
    fn latency(&self, _i: usize) -> Option<u64> {
        None
    }
    /// Whether target `i` may be chosen for this request.
    fn usable(&self, i: usize) -> bool;
}

/// Everything a pick may depend on.
pub struct Context<'a> {
    pub client: IpAddr,
    /// The request-target's path and query as the client sent them; for
    /// an absolute-form target (`http://host/path?q`) its path and query
    /// alone, so that one resource is one key however it is asked for
    /// (`*` for an `OPTIONS` about the whole server, either way).
    pub uri: &'a str,
    /// The value `hash_on` names, as the client sent it, for `hash`;
    /// `None` when the request has none (or an empty one), or under
    /// another algorithm, which never looks for it.
    pub key: Option<&'a [u8]>,
    pub peers: &'a dyn Peers,
}

pub trait Balancer: Send + Sync {
    /// The index of the target for the next request, or `None` when no
    /// target is usable.
    fn pick(&self, cx: &Context<'_>) -> Option<usize>;
}

/// The balancer `balance` names, for targets with these names and
/// weights; its hashing under `hash_balance_factor` (see [`Ring::bound`]).
pub fn new(
    balance: Balance,
    names: &[&str],
    weights: &[u32],
    hash_balance_factor: Option<u32>,
) -> Box<dyn Balancer> {
    let n = names.len();
    let ring = || LiveRing::new(names, weights, hash_balance_factor);
    match balance {
        Balance::RoundRobin => Box::new(RoundRobin::default()),
        Balance::WeightedRoundRobin => Box::new(SmoothWeighted::new(n)),
        Balance::LeastConn => Box::new(LeastConn::new(n)),
        Balance::LeastTime => Box::new(LeastConn::by_time(n)),
        Balance::IpHash => Box::new(IpHash(ring())),
        Balance::UriHash => Box::new(UriHash(ring())),
        Balance::Hash => Box::new(KeyHash {
            ring: ring(),
            keyless: SmoothWeighted::new(n),
        }),
        Balance::RandomTwo => Box::new(RandomTwo),
    }
}

/// Each target in turn: one atomic increment per request, no lock. When
/// the target in turn cannot be used, the pick goes to one of the usable
/// ones, chosen by the same counter, so their shares stay even (walking on
/// to the next target would double the share of the one after a dead one).
#[derive(Default)]
pub struct RoundRobin {
    next: AtomicUsize,
}

impl Balancer for RoundRobin {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        let n = cx.peers.len();
        if n == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        let mut i = turn % n;
        if !cx.peers.usable(i) {
            i = nth_usable(cx.peers, turn / n, None)?;
        }
        // A target ramping up (slow_start) takes its turn, or the turn of
        // one out it stands in for, with the probability of its share,
        // and passes it on otherwise: taken whole, the turns of a target
        // out beside it gave it a share it was not ramped to.
        let share = cx.peers.share(i);
        if share >= FULL_SHARE || random_below(FULL_SHARE as usize) < share as usize {
            return Some(i);
        }
        nth_usable(cx.peers, turn / n, Some(i)).or(Some(i))
    }
}

/// The `(k mod usable)`-th usable target but `except`, `None` when none is.
fn nth_usable(peers: &dyn Peers, k: usize, except: Option<usize>) -> Option<usize> {
    let mut usable = usable(peers);
    usable.retain(|&i| Some(i) != except);
    (!usable.is_empty()).then(|| usable[k % usable.len()])
}

/// The targets usable for this pick, each asked once. Whether a target is
/// usable, and its load, change while a pick looks (other threads' requests
/// take and free slots): a pick that counted them on one pass and chose on
/// another could find nothing where it had counted a target, and send the
/// request to wait for a slot while a target could take it.
fn usable(peers: &dyn Peers) -> Vec<usize> {
    (0..peers.len()).filter(|&i| peers.usable(i)).collect()
}

/// nginx's smooth weighted round robin: every pick, each usable target's
/// current weight grows by its weight; the largest is chosen and loses the
/// total. Weights 3 and 1 give `a a b a`, and every window of 4 picks
/// holds exactly three `a` and one `b` (no bursts of the heavy target).
pub struct SmoothWeighted {
    /// Current weights. The lock is held for a pass over the targets.
    current: Mutex<Vec<i64>>,
}

impl SmoothWeighted {
    pub fn new(targets: usize) -> Self {
        SmoothWeighted {
            current: Mutex::new(vec![0; targets]),
        }
    }
}

impl Balancer for SmoothWeighted {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        let mut current = self.current.lock();
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for i in 0..current.len() {
            if !cx.peers.usable(i) {
                continue;
            }
            let weight = weight_of(cx.peers, i) as i64;
            current[i] += weight;
            total += weight;
            if best.is_none_or(|b| current[i] > current[b]) {
                best = Some(i);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }
}

/// Fewest requests in flight relative to weight (`in_flight / weight`,
/// compared by cross-multiplying); ties go in turn among the tied, in
/// proportion to their weights, so weights count also while load is too
/// light to tell the targets apart.
///
/// The turn is the tied target furthest behind in a virtual time each
/// turn moves its target on in, by the more the lighter it is (stride
/// scheduling); a target that sat out (busy, or out) while others took
/// turns rejoins level with the last pick, first in line but with no
/// arrears to make up in a burst, and one ramping up under `slow_start`
/// takes its share from its place, not from turns it took at full
/// weight. A counter shared by every tied set,
/// or nginx's smooth weights moved for the tied alone, fell into
/// patterns: requests coming in pairs (the first finding three alike
/// targets idle, the second two) gave them 1:2:3 or 1:2:1.
pub struct LeastConn {
    turns: Mutex<Turns>,
    /// `least_time`: each request in flight counts for how long the
    /// target has taken to answer lately (see [`time_load`]).
    by_time: bool,
}

struct Turns {
    /// Where each target stands in the turn order, in virtual time: a
    /// turn moves a target on by [`TURN`] over its weight now, so that a
    /// weight that changes (`slow_start`) changes its pace from then on,
    /// not its place for the turns already taken.
    at: Vec<u128>,
    /// Where the last pick's target stood.
    last: u128,
}

/// A turn's length at weight 1: a multiple of every weight up to 16 and
/// of the thousandths of [`FULL_SHARE`], so that theirs are exact
/// (weights 3 and 1 take turns 3:1 in every run of 4), and a hundred
/// thousand times more than any weight, so that others' are close.
const TURN: u128 = 720_720 * 1000 * (1 << 40);

impl LeastConn {
    pub fn new(targets: usize) -> Self {
        LeastConn {
            turns: Mutex::new(Turns {
                at: vec![0; targets],
                last: 0,
            }),
            by_time: false,
        }
    }

    /// `least_time`: the target whose requests in flight, and the one
    /// to come, would take the least time by its recent answers.
    pub fn by_time(targets: usize) -> Self {
        LeastConn {
            by_time: true,
            ..LeastConn::new(targets)
        }
    }
}

/// A target's load under `least_time`: its requests in flight and the
/// one to come, each counted as long as it has taken to answer lately
/// (Finagle's "peak EWMA" cost). One not measured yet is tried first
/// while it has nothing in flight, and last while it has: requests
/// arriving together do not all go to a target of unknown speed.
fn time_load(in_flight: usize, latency: Option<u64>) -> u64 {
    let requests = in_flight as u64 + 1;
    match latency {
        Some(ns) => ns.max(1).saturating_mul(requests),
        None if in_flight == 0 => 0,
        None => (u64::MAX >> 8).saturating_add(requests),
    }
}

impl Balancer for LeastConn {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        let peers = cx.peers;
        // Each load read once (see `usable`): the tied found on a second
        // look might differ from those counted on the first.
        let loads: Vec<(usize, (u64, u64))> = (0..peers.len())
            .filter(|&i| peers.usable(i))
            .map(|i| {
                let load = match self.by_time {
                    true => time_load(peers.in_flight(i), peers.latency(i)),
                    false => peers.in_flight(i) as u64,
                };
                (i, (load, weight_of(peers, i)))
            })
            .collect();
        // a/b < c/d without division: a*d < c*b (in u128: a weight is up
        // to u32::MAX thousandfold).
        let below = |(a, b): (u64, u64), (c, d): (u64, u64)| {
            u128::from(a) * u128::from(d) < u128::from(c) * u128::from(b)
        };
        let best =
            (loads.iter().map(|&(_, l)| l)).reduce(|b, l| if below(l, b) { l } else { b })?;
        let mut tied = (loads.iter()).filter(|&&(_, l)| !below(best, l) && !below(l, best));
        let first = tied.next()?;
        if tied.clone().next().is_none() {
            return Some(first.0);
        }
        let mut turns = self.turns.lock();
        let turns = &mut *turns;
        if turns.at.len() < peers.len() {
            turns.at.resize(peers.len(), 0);
        }
        let mut chosen: Option<(usize, u128, u64)> = None;
        for &(i, (_, weight)) in std::iter::once(first).chain(tied) {
            // Level with the last pick, if it sat out meanwhile.
            let at = turns.at[i].max(turns.last);
            turns.at[i] = at;
            if chosen.is_none_or(|(_, place, _)| at < place) {
                chosen = Some((i, at, weight));
            }
        }
        let (i, at, weight) = chosen?;
        turns.last = at;
        turns.at[i] = at.saturating_add(TURN / u128::from(weight.max(1)));
        Some(i)
    }
}

/// Virtual nodes on the hash ring per unit of weight. More points spread
/// keys more evenly; 160 is what ketama uses.
pub const POINTS_PER_WEIGHT: u32 = 160;
/// The most points on the ring (2^20, 16 MiB): large weights on many
/// targets get fewer points per unit of weight, or per target in
/// proportion to weight, rather than gigabytes.
const MAX_RING_POINTS: u64 = 1 << 20;

/// The ring of consistent hashing, for `ip_hash`, `uri_hash` and `hash`:
/// each target owns points on it (hashes of its name and a counter), and a
/// key goes to the owner of the first point at or after its own hash. The
/// hash is fixed (FNV-1a with a mixing step, not std's randomly keyed
/// SipHash), so a key maps to the same target across restarts, and adding
/// a target moves only the keys that land on its new points: about 1/N of
/// them.
pub struct Ring {
    /// (point, target index), sorted by point.
    points: Vec<(u64, usize)>,
    targets: usize,
    /// `hash_balance_factor`, in percent (HAProxy's, "consistent hashing
    /// with bounded loads"): a target with more requests in flight than
    /// this share of the average, by its weight, is passed over for the
    /// next on the ring, so one very busy key does not load its target
    /// alone; `None`: keys go to their owner however busy.
    bound: Option<u32>,
}

impl Ring {
    pub fn new(names: &[&str], weights: &[u32]) -> Self {
        let weight = |i: usize| u64::from(weights.get(i).copied().unwrap_or(1).max(1));
        let total: u64 = (0..names.len()).map(weight).sum::<u64>().max(1);
        // Points per target in proportion to its weight, the ring within
        // MAX_RING_POINTS however many targets and however heavy (at least
        // one point each).
        let scale = (u64::from(POINTS_PER_WEIGHT) * total).min(MAX_RING_POINTS);
        let mut points = Vec::new();
        for (i, name) in names.iter().enumerate() {
            let count = (scale * weight(i) / total).max(1);
            for p in 0..count {
                let key = format!("{name}#{p}");
                points.push((stable_hash(key.as_bytes()), i));
            }
        }
        // Ties between points (vanishingly rare) are broken by index so
        // the ring does not depend on the order of insertion.
        points.sort_unstable();
        Ring {
            points,
            targets: names.len(),
            bound: None,
        }
    }

    /// The target for `hash` among `peers`: the owner of its point, or the
    /// next usable one on the ring; under [`Ring::bound`], the first of
    /// those below its bound (its owner, while it is), or with none below
    /// (which the bound leaves room against), the owner all the same.
    fn pick(&self, hash: u64, peers: &dyn Peers) -> Option<usize> {
        let usable = |i| peers.usable(i);
        let Some(factor) = self.bound else {
            return self.owner(hash, usable);
        };
        let below = below_bound(peers, factor);
        (self.owner(hash, |i| usable(i) && below(i))).or_else(|| self.owner(hash, usable))
    }

    /// The target owning `hash`, walking on past unusable targets. Each
    /// target is asked once, not at each of its points: with none usable
    /// the walk would otherwise visit the whole ring for every request.
    fn owner(&self, hash: u64, usable: impl Fn(usize) -> bool) -> Option<usize> {
        if self.points.is_empty() {
            return None;
        }
        let start = self.points.partition_point(|&(point, _)| point < hash);
        // Nearly always the point's own target serves: one question, no
        // table of every target's state.
        let home = self.points[start % self.points.len()].1;
        if usable(home) {
            return Some(home);
        }
        let usable: Vec<bool> = (0..self.targets).map(|i| i != home && usable(i)).collect();
        if !usable.contains(&true) {
            return None;
        }
        (0..self.points.len())
            .map(|k| self.points[(start + k) % self.points.len()].1)
            .find(|&i| usable.get(i).copied().unwrap_or(false))
    }
}

/// A hashing balancer's [`Ring`], laid out by the weights in force: a
/// weight given while the proxy runs (the admin listener's `weight=`, an
/// agent's share) lays it out anew at the next pick, as HAProxy's
/// consistent hashing takes `set server weight`. The target reweighed
/// gains or loses the keys of the points it gains or loses, about that
/// share; no other key moves.
pub struct LiveRing {
    names: Box<[Box<str>]>,
    bound: Option<u32>,
    /// The weights it was laid out by, and the ring.
    laid_out: RwLock<(Box<[u32]>, Ring)>,
}

impl LiveRing {
    fn new(names: &[&str], weights: &[u32], bound: Option<u32>) -> LiveRing {
        LiveRing {
            names: names.iter().map(|&n| n.into()).collect(),
            bound,
            laid_out: RwLock::new(Self::lay_out(names, weights, bound)),
        }
    }

    fn lay_out(names: &[&str], weights: &[u32], bound: Option<u32>) -> (Box<[u32]>, Ring) {
        let ring = Ring {
            bound,
            ..Ring::new(names, weights)
        };
        (weights.into(), ring)
    }

    /// The pick on the ring laid out before while `peers`' weights are
    /// those it was laid out by (a read lock, held for the pick, and a
    /// look at each weight), else on a new one.
    fn pick(&self, hash: u64, peers: &dyn Peers) -> Option<usize> {
        {
            let (weights, ring) = &*self.laid_out.read();
            let same = weights.len() == peers.len()
                && (weights.iter().enumerate()).all(|(i, &w)| peers.weight(i) == w);
            if same {
                return ring.pick(hash, peers);
            }
        }
        let weights: Vec<u32> = (0..peers.len()).map(|i| peers.weight(i)).collect();
        let names: Vec<&str> = self.names.iter().map(|n| &**n).collect();
        let fresh = Self::lay_out(&names, &weights, self.bound);
        let picked = fresh.1.pick(hash, peers);
        *self.laid_out.write() = fresh;
        picked
    }
}

/// Consistent hashing of the client address: a client stays on one target
/// while it can serve.
pub struct IpHash(LiveRing);

impl Balancer for IpHash {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        let hash = match cx.client {
            IpAddr::V4(ip) => stable_hash(&ip.octets()),
            IpAddr::V6(ip) => stable_hash(&ip.octets()),
        };
        self.0.pick(hash, cx.peers)
    }
}

/// Consistent hashing of the request's URI, path and query, as nginx's
/// `hash $request_uri consistent` and HAProxy's `balance uri whole` with
/// `hash-type consistent`: a URL stays on one target while it can serve,
/// so caching backends each hold their share of the URLs, not all of them.
/// The URI is hashed as sent, not normalised (`/a%2Fb` is not `/a/b`):
/// what the backends cache it under is theirs to decide.
pub struct UriHash(LiveRing);

impl Balancer for UriHash {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        let hash = stable_hash(cx.uri.as_bytes());
        self.0.pick(hash, cx.peers)
    }
}

/// Consistent hashing of the value `hash_on` names (a header field, a
/// cookie, a query parameter), as nginx's `hash $http_x_tenant consistent`
/// and HAProxy's `balance hdr(X-Tenant)` with `hash-type consistent`: a
/// tenant or a user stays on one target while it can serve. A request
/// without the value goes round robin in proportion to weights, as
/// HAProxy applies `roundrobin` to one without the header: hashed as one
/// empty value, they would all pile onto a single target.
pub struct KeyHash {
    ring: LiveRing,
    keyless: SmoothWeighted,
}

impl Balancer for KeyHash {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        match cx.key {
            Some(key) => self.ring.pick(stable_hash(key), cx.peers),
            // Not ramped under slow_start either: the algorithm does not
            // ramp, whichever way a request is sent.
            None => self.keyless.pick(&Context {
                peers: &Whole(cx.peers),
                ..*cx
            }),
        }
    }
}

/// `peers` with every share whole: for picks that do not ramp a target
/// up under `slow_start`.
struct Whole<'a>(&'a dyn Peers);

impl Peers for Whole<'_> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn weight(&self, i: usize) -> u32 {
        self.0.weight(i)
    }
    fn in_flight(&self, i: usize) -> usize {
        self.0.in_flight(i)
    }
    fn latency(&self, i: usize) -> Option<u64> {
        self.0.latency(i)
    }
    fn usable(&self, i: usize) -> bool {
        self.0.usable(i)
    }
}

/// FNV-1a over `bytes`, then a finaliser (from SplitMix64) so that similar
/// inputs (`a#1`, `a#2`) land far apart on the ring.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// The power of two random choices: two distinct usable targets drawn at
/// random in proportion to their weights, the one with fewer requests in
/// flight (relative to weight) wins, the first drawn on a tie. Nearly as
/// good as least_conn, with no shared counter to contend on; weights
/// count even while every target is idle.
pub struct RandomTwo;

impl Balancer for RandomTwo {
    fn pick(&self, cx: &Context<'_>) -> Option<usize> {
        let peers = cx.peers;
        let weight = |i: usize| weight_of(peers, i);
        // Asked once (see `usable`): a draw within the total weight of
        // one look could fall past the end of another.
        let usable = usable(peers);
        let draw = |except: Option<usize>| {
            let candidates = || {
                (usable.iter().copied())
                    .filter(|&i| Some(i) != except)
                    .map(|i| (i, weight(i)))
            };
            let total: u64 = candidates().map(|(_, w)| w).sum();
            (total > 0).then(|| by_weight(candidates(), random_below(total as usize) as u64))?
        };
        let a = draw(None)?;
        // A second, distinct draw from the others.
        let Some(b) = draw(Some(a)) else {
            return Some(a);
        };
        let load = |i: usize| peers.in_flight(i) as u64;
        if load(b) * weight(a) < load(a) * weight(b) {
            Some(b)
        } else {
            Some(a)
        }
    }
}

/// The target whose share of `0..sum of weights` holds `turn`: each one
/// of `targets` (index, weight) owns as many consecutive numbers as its
/// weight.
fn by_weight(targets: impl Iterator<Item = (usize, u64)>, mut turn: u64) -> Option<usize> {
    for (i, w) in targets {
        if turn < w {
            return Some(i);
        }
        turn -= w;
    }
    None
}

/// Whether a target is below its bound under `hash_balance_factor`
/// (`factor` percent), as HAProxy reckons it: the requests in flight on
/// the usable targets, the one being placed counted, times the factor,
/// shared by weight; a target holding its share or more is passed over.
/// The shares add up to more than the load, so some target is below.
fn below_bound(peers: &dyn Peers, factor: u32) -> impl Fn(usize) -> bool + '_ {
    let usable = || (0..peers.len()).filter(|&i| peers.usable(i));
    let load: u64 = usable().map(|i| peers.in_flight(i) as u64).sum::<u64>() + 1;
    let weights: u64 = usable().map(|i| u64::from(peers.weight(i).max(1))).sum();
    let slots = (load * u64::from(factor)).div_ceil(100);
    move |i| {
        let weight = u64::from(peers.weight(i).max(1));
        (peers.in_flight(i) as u64) * weights.max(1) < slots * weight
    }
}

/// Target `i`'s weight (at least 1) times its share now, in thousandths:
/// the same scale for every target, so their proportions are the
/// weights' while none ramps up.
fn weight_of(peers: &dyn Peers, i: usize) -> u64 {
    u64::from(peers.weight(i).max(1)) * u64::from(peers.share(i).clamp(1, FULL_SHARE))
}

thread_local! {
    /// xorshift64* state, seeded per thread from std's random hasher keys.
    static RNG: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_usize(0);
    h.finish() | 1
}

/// A number in `0..n` (`n > 0`), from a per-thread xorshift64*.
fn random_below(n: usize) -> usize {
    RNG.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    /// Targets for tests: (weight, in flight, usable).
    struct Fake(Vec<(u32, usize, bool)>);

    impl Fake {
        fn even(n: usize) -> Self {
            Fake(vec![(1, 0, true); n])
        }
    }

    impl Peers for Fake {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn weight(&self, i: usize) -> u32 {
            self.0[i].0
        }
        fn in_flight(&self, i: usize) -> usize {
            self.0[i].1
        }
        fn usable(&self, i: usize) -> bool {
            self.0[i].2
        }
    }

    /// Targets of weight 1, idle and usable, each with its share.
    struct Ramping(Vec<u32>);

    impl Peers for Ramping {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn weight(&self, _: usize) -> u32 {
            1
        }
        fn share(&self, i: usize) -> u32 {
            self.0[i]
        }
        fn in_flight(&self, _: usize) -> usize {
            0
        }
        fn usable(&self, _: usize) -> bool {
            true
        }
    }

    /// Targets of weight 1, idle, each with its share and whether it is
    /// usable.
    struct Back(Vec<(u32, bool)>);

    impl Peers for Back {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn weight(&self, _: usize) -> u32 {
            1
        }
        fn share(&self, i: usize) -> u32 {
            self.0[i].0
        }
        fn in_flight(&self, _: usize) -> usize {
            0
        }
        fn usable(&self, i: usize) -> bool {
            self.0[i].1
        }
    }

    #[test]
    fn a_target_ramping_up_gets_its_share_from_every_dynamic_algorithm() {
        // The second of three at a tenth of its share: a thirtieth-odd of
        // the requests (1/(2 + 0.1) of a third's weight), far from a third.
        let peers = Ramping(vec![FULL_SHARE, FULL_SHARE / 10, FULL_SHARE]);
        let cx = Context {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uri: "/",
            key: None,
            peers: &peers,
        };
        for balance in [
            Balance::RoundRobin,
            Balance::WeightedRoundRobin,
            Balance::LeastConn,
            Balance::RandomTwo,
        ] {
            let b = new(balance, &["a", "b", "c"], &[1, 1, 1], None);
            let mut counts = [0usize; 3];
            for _ in 0..6_000 {
                counts[b.pick(&cx).unwrap()] += 1;
            }
            // About 140 of 6000 to the second; the others share the rest.
            assert!((40..400).contains(&counts[1]), "{balance:?}: {counts:?}");
            assert!(
                counts[0].abs_diff(counts[2]) < 600,
                "{balance:?}: {counts:?}"
            );
        }
        // A whole share again: even.
        let peers = Ramping(vec![FULL_SHARE; 3]);
        let cx = Context {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uri: "/",
            key: None,
            peers: &peers,
        };
        let b = new(Balance::LeastConn, &["a", "b", "c"], &[1, 1, 1], None);
        let turns: Vec<usize> = (0..6).map(|_| b.pick(&cx).unwrap()).collect();
        assert_eq!(
            turns,
            [0, 1, 2, 0, 1, 2],
            "ties in turn, as without slow_start"
        );
    }

    fn picks(b: &dyn Balancer, peers: &Fake, n: usize) -> Vec<usize> {
        let cx = Context {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uri: "/",
            key: None,
            peers,
        };
        (0..n).map(|_| b.pick(&cx).unwrap()).collect()
    }

    /// Targets whose state changes as a pick looks at them, as requests
    /// on other threads begin and end meanwhile: target `i` shows
    /// `first[i]` (in flight, usable) the first time it is asked about,
    /// `then[i]` ever after.
    struct Changing {
        first: Vec<(usize, bool)>,
        then: Vec<(usize, bool)>,
        asked: Vec<std::cell::Cell<(bool, bool)>>,
    }

    impl Changing {
        fn new(first: Vec<(usize, bool)>, then: Vec<(usize, bool)>) -> Self {
            let asked = vec![Default::default(); first.len()];
            Changing { first, then, asked }
        }

        fn state(&self, i: usize, load: bool) -> (usize, bool) {
            let (mut load_asked, mut usable_asked) = self.asked[i].get();
            let seen = if load {
                &mut load_asked
            } else {
                &mut usable_asked
            };
            let state = if *seen { self.then[i] } else { self.first[i] };
            *seen = true;
            self.asked[i].set((load_asked, usable_asked));
            state
        }
    }

    impl Peers for Changing {
        fn len(&self) -> usize {
            self.first.len()
        }
        fn weight(&self, _: usize) -> u32 {
            1
        }
        fn in_flight(&self, i: usize) -> usize {
            self.state(i, true).0
        }
        fn usable(&self, i: usize) -> bool {
            self.state(i, false).1
        }
    }

    fn pick_from(b: &dyn Balancer, peers: &dyn Peers) -> Option<usize> {
        b.pick(&Context {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uri: "/",
            key: None,
            peers,
        })
    }

    /// A pick that comes back empty sends the request to wait for a slot
    /// (and counts it as queued) although a target could take it.
    #[test]
    fn a_target_that_stays_usable_is_picked_whatever_changes_during_the_pick() {
        // least_conn: 0 and 1 idle, then 1 takes a request; 0 is idle
        // throughout. The second pick's turn among the tied is the second.
        let lc = LeastConn::new(3);
        let still = Changing::new(vec![(0, true); 2], vec![(0, true); 2]);
        assert!(pick_from(&lc, &still).is_some());
        let busier = Changing::new(vec![(0, true); 2], vec![(0, true), (1, true)]);
        assert!(pick_from(&lc, &busier).is_some(), "least_conn");

        // round_robin: the target in turn (0) is out; 2 goes out during
        // the pick, 1 stays. The fourth pick wants the second usable one.
        let rr = RoundRobin::default();
        let out = |t| (0, t);
        for _ in 0..3 {
            pick_from(&rr, &Fake::even(3));
        }
        let leaving = Changing::new(
            vec![out(false), out(true), out(true)],
            vec![out(false), out(true), out(false)],
        );
        assert!(pick_from(&rr, &leaving).is_some(), "round_robin");

        // random_two: 1 goes out during the pick, 0 stays; each draw
        // falls on 1's share half the time.
        for _ in 0..64 {
            let leaving = Changing::new(vec![out(true); 2], vec![out(true), out(false)]);
            assert!(pick_from(&RandomTwo, &leaving).is_some(), "random_two");
        }
    }

    #[test]
    fn round_robin_cycles_and_skips_unusable() {
        let rr = RoundRobin::default();
        assert_eq!(picks(&rr, &Fake::even(3), 7), [0, 1, 2, 0, 1, 2, 0]);
        let mut peers = Fake::even(3);
        peers.0[1].2 = false;
        let got = picks(&rr, &peers, 60);
        assert!(!got.contains(&1), "{got:?}");
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 30, "{got:?}");
        let none = Fake(vec![(1, 0, false); 3]);
        let cx = Context {
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            uri: "/",
            key: None,
            peers: &none,
        };
        assert_eq!(rr.pick(&cx), None);
    }

    #[test]
    fn round_robin_shares_the_turns_of_adjacent_unusable_targets_evenly() {
        // Two out side by side: their turns are dealt out over the two
        // left, not all handed to one of them.
        let rr = RoundRobin::default();
        let mut peers = Fake::even(4);
        peers.0[1].2 = false;
        peers.0[2].2 = false;
        let got = picks(&rr, &peers, 40);
        let zeros = got.iter().filter(|&&i| i == 0).count();
        assert_eq!((zeros, 40 - zeros), (20, 20), "{got:?}");
        assert!(got.iter().all(|&i| i == 0 || i == 3), "{got:?}");
    }

    #[test]
    fn round_robin_gives_a_target_at_the_least_share_about_a_thousandth_of_its_turns() {
        // 100000 turns at 1/1000: about 100 taken (sd 10); twice that is
        // another share.
        let peers = Ramping(vec![FULL_SHARE, 1, FULL_SHARE]);
        let rr = RoundRobin::default();
        let mut taken = 0;
        for _ in 0..300_000 {
            if pick_from(&rr, &peers) == Some(1) {
                taken += 1;
            }
        }
        assert!((50..150).contains(&taken), "{taken}");
    }

    #[test]
    fn round_robin_ramps_a_target_up_on_the_turns_of_one_out_too() {
        // The second at its least share, the third out: the third's turns
        // go to the first two, the second's part of them by its share.
        let peers = Back(vec![(FULL_SHARE, true), (1, true), (FULL_SHARE, false)]);
        let rr = RoundRobin::default();
        let mut taken = 0;
        for _ in 0..30_000 {
            if pick_from(&rr, &peers) == Some(1) {
                taken += 1;
            }
        }
        // About 15 (a thousandth of 10000 turns and of 5000); half the
        // third's turns would be 5000.
        assert!(taken < 100, "{taken}");
    }

    #[test]
    fn round_robin_deals_the_turns_a_ramping_target_passes_over_the_others_evenly() {
        let peers = Back(vec![
            (FULL_SHARE, true),
            (1, true),
            (FULL_SHARE, true),
            (FULL_SHARE, false),
        ]);
        let rr = RoundRobin::default();
        let mut counts = [0usize; 4];
        for _ in 0..4_000 {
            counts[pick_from(&rr, &peers).unwrap()] += 1;
        }
        // About 2000 each: the second's 1000 turns split, not all to the
        // first (2500 to 1500).
        assert!(counts[0].abs_diff(counts[2]) < 100, "{counts:?}");
    }

    #[test]
    fn smooth_weighted_is_exact_in_every_window_and_interleaved() {
        let wrr = SmoothWeighted::new(2);
        let peers = Fake(vec![(3, 0, true), (1, 0, true)]);
        let got = picks(&wrr, &peers, 40);
        assert_eq!(&got[..4], [0, 0, 1, 0]);
        for window in got.windows(4) {
            assert_eq!(window.iter().filter(|&&i| i == 0).count(), 3, "{got:?}");
        }

        // 5, 1, 1 as in nginx's comment: a a b a c a a, repeated.
        let wrr = SmoothWeighted::new(3);
        let peers = Fake(vec![(5, 0, true), (1, 0, true), (1, 0, true)]);
        let got = picks(&wrr, &peers, 70);
        assert_eq!(&got[..7], [0, 0, 1, 0, 2, 0, 0]);
        for window in got.chunks(7) {
            assert_eq!(window, &got[..7]);
        }
    }

    #[test]
    fn smooth_weighted_skips_unusable_targets() {
        let wrr = SmoothWeighted::new(3);
        let peers = Fake(vec![(3, 0, true), (2, 0, false), (1, 0, true)]);
        let got = picks(&wrr, &peers, 40);
        assert!(!got.contains(&1));
        for window in got.windows(4) {
            assert_eq!(window.iter().filter(|&&i| i == 0).count(), 3, "{got:?}");
        }
    }

    /// Targets of weight 1, each with its requests in flight and how
    /// long it has taken to answer lately.
    struct Timed(Vec<(usize, Option<u64>)>);

    impl Peers for Timed {
        fn len(&self) -> usize {
            self.0.len()
        }
        fn weight(&self, _: usize) -> u32 {
            1
        }
        fn in_flight(&self, i: usize) -> usize {
            self.0[i].0
        }
        fn latency(&self, i: usize) -> Option<u64> {
            self.0[i].1
        }
        fn usable(&self, _: usize) -> bool {
            true
        }
    }

    #[test]
    fn least_time_counts_each_request_in_flight_by_how_long_its_target_takes() {
        let lt = LeastConn::by_time(2);
        let pick = |peers: Timed| {
            lt.pick(&Context {
                client: IpAddr::V4(Ipv4Addr::LOCALHOST),
                uri: "/",
                key: None,
                peers: &peers,
            })
        };
        const MS: u64 = 1_000_000;
        // Idle, the faster; least_conn would take turns.
        assert_eq!(
            pick(Timed(vec![(0, Some(30 * MS)), (0, Some(10 * MS))])),
            Some(1)
        );
        // 3 in flight at 10 ms (40 with the next) against 1 at 30 (60).
        assert_eq!(
            pick(Timed(vec![(1, Some(30 * MS)), (3, Some(10 * MS))])),
            Some(1)
        );
        // 6 in flight at 10 ms (70) against 1 at 30 (60).
        assert_eq!(
            pick(Timed(vec![(1, Some(30 * MS)), (6, Some(10 * MS))])),
            Some(0)
        );
        // One not measured yet is tried at once while idle, and passed
        // over while its first requests are out.
        assert_eq!(pick(Timed(vec![(0, Some(MS)), (0, None)])), Some(1));
        assert_eq!(pick(Timed(vec![(50, Some(MS)), (1, None)])), Some(0));
        // With none measured, least_conn's turns.
        let turns: Vec<_> = (0..4)
            .map(|_| pick(Timed(vec![(0, None), (0, None)])))
            .collect();
        assert_eq!(turns, [Some(0), Some(1), Some(0), Some(1)]);
    }

    #[test]
    fn least_conn_prefers_idle_targets_and_respects_weights() {
        let lc = LeastConn::new(3);
        let peers = Fake(vec![(1, 4, true), (1, 1, true), (1, 2, true)]);
        assert_eq!(picks(&lc, &peers, 5), [1; 5]);

        // 4 in flight on weight 4 is lighter than 2 on weight 1.
        let peers = Fake(vec![(1, 2, true), (4, 4, true)]);
        assert_eq!(picks(&lc, &peers, 3), [1; 3]);

        // Unusable targets are never chosen, however idle.
        let peers = Fake(vec![(1, 0, false), (1, 9, true)]);
        assert_eq!(picks(&lc, &peers, 3), [1; 3]);
    }

    #[test]
    fn least_conn_breaks_ties_round_robin() {
        let lc = LeastConn::new(3);
        let mut got = picks(&lc, &Fake::even(3), 9);
        got.sort_unstable();
        assert_eq!(got, [0, 0, 0, 1, 1, 1, 2, 2, 2]);
        // Ties among the least loaded only.
        let peers = Fake(vec![(1, 1, true), (1, 0, true), (1, 0, true)]);
        let got = picks(&lc, &peers, 10);
        assert!(!got.contains(&0));
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 5, "{got:?}");
        // Idle targets share by weight: 3:1:1 in every run of 5 (another
        // balancer: these are the weights of another configuration).
        let lc = LeastConn::new(3);
        let peers = Fake(vec![(3, 0, true), (1, 0, true), (1, 0, true)]);
        let got = picks(&lc, &peers, 50);
        for window in got.chunks(5) {
            let mut w = window.to_vec();
            w.sort_unstable();
            assert_eq!(w, [0, 0, 0, 1, 2], "{got:?}");
        }
    }

    #[test]
    fn least_conn_asked_about_more_targets_than_it_was_built_for_takes_them_in_turn() {
        let lc = LeastConn::new(1);
        assert_eq!(picks(&lc, &Fake::even(3), 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn least_conn_ties_share_evenly_when_requests_come_in_pairs() {
        // Three alike targets; requests come two at a time (a page and
        // its asset): the first finds every target idle, the second the
        // first one's target busy. Neither load nor weight tells the
        // targets apart over time: each gets a third of the 600.
        let lc = LeastConn::new(3);
        let mut counts = [0usize; 3];
        for _ in 0..300 {
            let mut peers = Fake::even(3);
            let first = picks(&lc, &peers, 1)[0];
            peers.0[first].1 = 1;
            let second = picks(&lc, &peers, 1)[0];
            counts[first] += 1;
            counts[second] += 1;
        }
        assert_eq!(counts, [200; 3]);
    }

    #[test]
    fn least_conn_a_target_ramping_up_after_an_outage_gets_its_share() {
        // Three alike targets, all idle; the second is out a while, then
        // back under slow_start: at a tenth of its share it gets about
        // 1/21 of the requests (0.1 / 2.1), not none.
        let b = new(Balance::LeastConn, &["a", "b", "c"], &[1, 1, 1], None);
        let count = |peers: &Back, n: usize| {
            let cx = Context {
                client: IpAddr::V4(Ipv4Addr::LOCALHOST),
                uri: "/",
                key: None,
                peers,
            };
            let mut counts = [0usize; 3];
            for _ in 0..n {
                counts[b.pick(&cx).unwrap()] += 1;
            }
            counts
        };
        count(&Back(vec![(FULL_SHARE, true); 3]), 3000);
        let out = Back(vec![
            (FULL_SHARE, true),
            (FULL_SHARE, false),
            (FULL_SHARE, true),
        ]);
        assert_eq!(count(&out, 300)[1], 0);
        let tenth = Back(vec![
            (FULL_SHARE, true),
            (FULL_SHARE / 10, true),
            (FULL_SHARE, true),
        ]);
        let ramping = count(&tenth, 2100);
        assert!((80..120).contains(&ramping[1]), "{ramping:?}");
    }

    #[test]
    fn least_conn_a_target_that_sat_out_rejoins_without_arrears() {
        // 1 busy for 30 picks, which go to 0 and 2; then all idle: 1 is
        // not owed 15 turns in a row. It goes first, then in turn.
        let lc = LeastConn::new(3);
        let mut peers = Fake::even(3);
        peers.0[1].1 = 1;
        let got = picks(&lc, &peers, 30);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 15, "{got:?}");
        peers.0[1].1 = 0;
        let got = picks(&lc, &peers, 31);
        assert_eq!(got[..4], [1, 0, 1, 2], "{got:?}");
        for i in 0..3 {
            let n = got.iter().filter(|&&t| t == i).count();
            assert!((10..=11).contains(&n), "{got:?}");
        }
    }

    #[test]
    fn least_conn_idle_targets_take_turns_exactly_at_any_weight_up_to_16() {
        // The lighter listed first: where its turn and the heavier one's
        // fall due together, a turn a hair short of exact would let the
        // heavier in again ahead of it, and a run of w + 1 picks would
        // hold none of the lighter.
        for w in 2..=16u32 {
            let lc = LeastConn::new(2);
            let peers = Fake(vec![(1, 0, true), (w, 0, true)]);
            let run = w as usize + 1;
            let got = picks(&lc, &peers, 10 * run);
            for window in got.windows(run) {
                let light = window.iter().filter(|&&i| i == 0).count();
                assert_eq!(light, 1, "weight {w}: {got:?}");
            }
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("10.0.0.{i}:80")).collect()
    }

    fn ring(names: &[String]) -> Ring {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        Ring::new(&names, &vec![1; names.len()])
    }

    /// The ring owner of many client addresses, by target name.
    fn owners(hash: &Ring, names: &[String]) -> Vec<String> {
        (0..20_000u32)
            .map(|k| {
                let ip = Ipv4Addr::from(0x0a00_0000 + k * 7919);
                let i = hash.owner(stable_hash(&ip.octets()), |_| true).unwrap();
                names[i].clone()
            })
            .collect()
    }

    #[test]
    fn under_a_balance_factor_a_key_leaves_its_owner_only_while_that_is_past_its_bound() {
        let names = names(3);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let uri = "/hot";
        let pick = |factor: Option<u32>, peers: &Fake| {
            let b = new(Balance::UriHash, &names, &[1, 1, 1], factor);
            let cx = Context {
                client: Ipv4Addr::LOCALHOST.into(),
                uri,
                key: None,
                peers,
            };
            b.pick(&cx).unwrap()
        };
        let idle = Fake::even(3);
        let home = pick(None, &idle);
        let next = pick(None, &Fake((0..3).map(|i| (1, 0, i != home)).collect()));
        assert_eq!(pick(Some(150), &idle), home);
        // Its owner at 4 in flight, the others at 1: 7 placed, 10.5 slots
        // at 150%, 3.5 each; the owner is past it, the next one is not.
        let busy = |home_load: usize| {
            Fake(
                (0..3)
                    .map(|i| (1, if i == home { home_load } else { 1 }, true))
                    .collect(),
            )
        };
        assert_eq!(pick(Some(150), &busy(4)), next);
        assert_eq!(pick(None, &busy(4)), home);
        // At 3 (6 placed, 9 slots, 3 each) it is at its bound too; at 2, below.
        assert_eq!(pick(Some(150), &busy(3)), next);
        assert_eq!(pick(Some(150), &busy(2)), home);
        // A larger factor lets it take more: 7 placed, 21 slots, 7 each.
        assert_eq!(pick(Some(300), &busy(4)), home);
        // By weight: at three times the weight, three times the share.
        let heavy = new(Balance::UriHash, &names, &[3, 1, 1], Some(100));
        let loads = |load: usize| Fake(vec![(3, load, true), (1, 0, true), (1, 0, true)]);
        let pick_heavy = |uri: &str, peers: &Fake| {
            let cx = Context {
                client: Ipv4Addr::LOCALHOST.into(),
                uri,
                key: None,
                peers,
            };
            heavy.pick(&cx).unwrap()
        };
        // Bounded: 3/5 of the URIs are the heavy one's, and a search that
        // found none would otherwise run on for ever.
        let on_0 = (0..1_000)
            .map(|k| format!("/k{k}"))
            .find(|u| pick_heavy(u, &loads(0)) == 0);
        let on_0 = on_0.expect("a URI of the heavy target's");
        // 2 placed, 2 slots: 3/5 of them, 1.2, is the heavy one's: 1 is
        // below; 3 placed, 3 slots, 1.8: 2 is not.
        assert_eq!(pick_heavy(&on_0, &loads(1)), 0);
        assert_ne!(pick_heavy(&on_0, &loads(2)), 0);
        // Every target past its bound cannot be: some is always below.
        let all_busy = Fake(vec![(1, 5, true); 3]);
        assert_eq!(pick(Some(100), &all_busy), home);
    }

    #[test]
    fn ip_hash_is_stable_and_spreads_keys() {
        let names = names(4);
        let first = owners(&ring(&names), &names);
        // Built again (as after a restart): the same owners.
        assert_eq!(first, owners(&ring(&names), &names));
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for owner in &first {
            *counts.entry(owner).or_default() += 1;
        }
        // Each of 4 targets owns roughly a quarter (5000) of the keys.
        for (name, count) in &counts {
            assert!((3500..6500).contains(count), "{name}: {count} {counts:?}");
        }
        // The order targets are listed in does not matter.
        let mut reversed = names.clone();
        reversed.reverse();
        assert_eq!(first, owners(&ring(&reversed), &reversed));
    }

    #[test]
    fn threads_draw_apart() {
        // Seeded alike, every worker thread would make the same random
        // choices in step with the others.
        let draws = || (0..4).map(|_| random_below(1 << 30)).collect::<Vec<_>>();
        let one = std::thread::spawn(draws).join().unwrap();
        let another = std::thread::spawn(draws).join().unwrap();
        assert_ne!(one, another);
    }

    #[test]
    fn the_random_draws_do_not_fall_into_a_short_cycle() {
        // A draw over the whole range stands for the generator's state:
        // one repeated is a cycle entered, every choice after it a replay
        // of earlier ones. xorshift64* repeats none this side of 2^64
        // draws; a step lost (an `|=` for an `^=`) cycles within a few
        // hundred thousand.
        let mut seen = std::collections::HashSet::new();
        for _ in 0..1_000_000 {
            assert!(seen.insert(random_below(usize::MAX)), "{}", seen.len());
        }
    }

    #[test]
    fn the_hash_is_the_same_from_one_version_to_the_next() {
        // Pinned: a change would move every client, URL and tenant to
        // another target at the upgrade, each cache cold.
        assert_eq!(stable_hash(b""), 0xf52a_15e9_a9b5_e89b);
        assert_eq!(stable_hash(b"tenant-1"), 0x82b9_4b9e_8abe_94cd);
        assert_eq!(stable_hash(b"10.0.0.1:80#0"), 0xfe0c_fe8a_2ef1_1643);
    }

    #[test]
    fn a_key_hashing_onto_a_point_goes_to_that_point_s_target() {
        // The first point at or after the key's hash: a point's own hash
        // is its own, not the next one's.
        let names = names(3);
        let hash = ring(&names);
        for (i, name) in names.iter().enumerate() {
            for p in 0..20 {
                let point = stable_hash(format!("{name}#{p}").as_bytes());
                assert_eq!(hash.owner(point, |_| true), Some(i), "{name}#{p}");
            }
        }
    }

    #[test]
    fn ip_hash_adding_a_target_moves_about_one_nth_of_keys() {
        let four = names(4);
        let five = names(5);
        let before = owners(&ring(&four), &four);
        let after = owners(&ring(&five), &five);
        let moved: Vec<_> = before.iter().zip(&after).filter(|(b, a)| b != a).collect();
        // Every key that moved went to the new target...
        assert!(moved.iter().all(|(_, a)| **a == five[4]));
        // ...and they are about 1/5 of all keys (4000 of 20000).
        assert!((2800..5200).contains(&moved.len()), "{}", moved.len());
    }

    #[test]
    fn a_weight_given_at_run_time_lays_the_ring_out_anew_moving_keys_to_that_target_alone() {
        let names = names(4);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let hash = UriHash(LiveRing::new(&names, &[1; 4], None));
        let owners = |peers: &Fake| -> Vec<usize> {
            (0..8_000)
                .map(|k| {
                    let uri = format!("/item/{k}");
                    let cx = Context {
                        client: IpAddr::V4(Ipv4Addr::LOCALHOST),
                        uri: &uri,
                        key: None,
                        peers,
                    };
                    hash.pick(&cx).unwrap()
                })
                .collect()
        };
        let mut peers = Fake::even(4);
        let before = owners(&peers);
        assert_eq!(
            owners(&peers),
            before,
            "the same ring while the weights are"
        );
        // Target 2 given weight 4 of 7: about 4/7 of the keys, up from 1/4.
        peers.0[2].0 = 4;
        let after = owners(&peers);
        let moved: Vec<(usize, usize)> = (before.iter().zip(&after))
            .filter(|(a, b)| a != b)
            .map(|(&a, &b)| (a, b))
            .collect();
        assert!(
            moved.iter().all(|&(_, to)| to == 2),
            "keys move to it alone"
        );
        let share = after.iter().filter(|&&t| t == 2).count();
        assert!((4_000..5_200).contains(&share), "{share}");
        // Back to 1: the ring it had, every key where it was.
        peers.0[2].0 = 1;
        assert_eq!(owners(&peers), before);
    }

    #[test]
    fn ip_hash_keeps_a_client_and_walks_past_unusable_targets() {
        let names = names(3);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let hash = IpHash(LiveRing::new(&names, &[1; 3], None));
        let mut peers = Fake::even(3);
        let cx = Context {
            client: "192.0.2.7".parse().unwrap(),
            uri: "/",
            key: None,
            peers: &peers,
        };
        let home = hash.pick(&cx).unwrap();
        assert!((0..50).all(|_| hash.pick(&cx) == Some(home)));
        peers.0[home].2 = false;
        let cx = Context {
            client: "192.0.2.7".parse().unwrap(),
            uri: "/",
            key: None,
            peers: &peers,
        };
        let other = hash.pick(&cx).unwrap();
        assert_ne!(other, home);
        assert!((0..50).all(|_| hash.pick(&cx) == Some(other)));
    }

    /// URIs as a site's are: paths of a few shapes, some with a query.
    fn uris(n: usize) -> Vec<String> {
        (0..n)
            .map(|k| match k % 3 {
                0 => format!("/static/img/{k}.png"),
                1 => format!("/products/{k}?page={}", k % 7),
                _ => format!("/search?q=item{k}&sort=price"),
            })
            .collect()
    }

    /// The target `b` picks for each of `uris`, asked by `client`.
    fn by_uri(b: &dyn Balancer, peers: &dyn Peers, client: IpAddr, uris: &[String]) -> Vec<usize> {
        (uris.iter())
            .map(|uri| {
                let cx = Context {
                    client,
                    uri,
                    key: None,
                    peers,
                };
                b.pick(&cx).expect("a usable target")
            })
            .collect()
    }

    fn uri_hash(names: &[String], weights: &[u32]) -> Box<dyn Balancer> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        new(Balance::UriHash, &names, weights, None)
    }

    #[test]
    fn uri_hash_sends_a_uri_to_one_target_whoever_asks() {
        let names = names(3);
        let uris = uris(3_000);
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let b = uri_hash(&names, &[1; 3]);
        let first = by_uri(&*b, &Fake::even(3), local, &uris);
        assert_eq!(first, by_uri(&*b, &Fake::even(3), local, &uris));
        // Another client, and a balancer built again (a restart): the same.
        let other = "2001:db8::7".parse().unwrap();
        let again = uri_hash(&names, &[1; 3]);
        assert_eq!(first, by_uri(&*again, &Fake::even(3), other, &uris));
        // The query counts: these differ in it alone, and do not all
        // share one target.
        let pages: Vec<String> = (0..60).map(|p| format!("/list?page={p}")).collect();
        let owners = by_uri(&*b, &Fake::even(3), local, &pages);
        assert!(owners.iter().any(|&o| o != owners[0]), "{owners:?}");
        // No ramp under slow_start: a URL stays where its cache is.
        let ramping = Ramping(vec![FULL_SHARE, FULL_SHARE / 10, FULL_SHARE]);
        assert_eq!(first, by_uri(&*b, &ramping, local, &uris));
    }

    #[test]
    fn uri_hash_spreads_uris_in_proportion_to_weights() {
        let names = names(3);
        let weights = [3, 1, 2];
        let b = uri_hash(&names, &weights);
        let peers = Fake(weights.iter().map(|&w| (w, 0, true)).collect());
        let owners = by_uri(&*b, &peers, IpAddr::V4(Ipv4Addr::LOCALHOST), &uris(30_000));
        let mut counts = [0usize; 3];
        for &o in &owners {
            counts[o] += 1;
        }
        // 15000, 5000 and 10000 expected: each within a fifth of its
        // share, far from an even 10000 each for the first two.
        for (i, &w) in weights.iter().enumerate() {
            let expected = 30_000 * w as usize / 6;
            let bound = expected / 5;
            assert!(
                counts[i].abs_diff(expected) < bound,
                "target {i}: {} of {expected}, {counts:?}",
                counts[i]
            );
        }
    }

    #[test]
    fn uri_hash_moves_only_the_uris_of_a_target_that_goes_down() {
        let names = names(4);
        let uris = uris(8_000);
        let local = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let b = uri_hash(&names, &[1; 4]);
        let before = by_uri(&*b, &Fake::even(4), local, &uris);
        let mut peers = Fake::even(4);
        peers.0[2].2 = false;
        let after = by_uri(&*b, &peers, local, &uris);
        let mut took_over = [0usize; 4];
        for (k, (&was, &now)) in before.iter().zip(&after).enumerate() {
            if was == 2 {
                assert_ne!(now, 2, "{}", uris[k]);
                took_over[now] += 1;
            } else {
                assert_eq!(now, was, "{} moved off a target still up", uris[k]);
            }
        }
        // Its URIs went on to the next points of the ring: spread over
        // the others, not piled on one.
        assert_eq!(took_over[2], 0);
        assert!(
            took_over.iter().filter(|&&n| n > 0).count() >= 2,
            "{took_over:?}"
        );
        assert_eq!(
            took_over.iter().sum::<usize>(),
            before.iter().filter(|&&o| o == 2).count()
        );
        // Back up, it has its own again.
        assert_eq!(before, by_uri(&*b, &Fake::even(4), local, &uris));
    }

    /// Tenant names, as a header or cookie would carry them.
    fn tenants(n: usize) -> Vec<String> {
        (0..n).map(|k| format!("tenant-{k}")).collect()
    }

    fn key_hash(names: &[String], weights: &[u32]) -> Box<dyn Balancer> {
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        new(Balance::Hash, &names, weights, None)
    }

    /// The target `b` picks for each of `keys`, asked by `client` for `uri`.
    fn by_key(
        b: &dyn Balancer,
        peers: &dyn Peers,
        (client, uri): (IpAddr, &str),
        keys: &[String],
    ) -> Vec<usize> {
        (keys.iter())
            .map(|key| {
                let key = Some(key.as_bytes());
                let cx = Context {
                    client,
                    uri,
                    key,
                    peers,
                };
                b.pick(&cx).expect("a usable target")
            })
            .collect()
    }

    const LOCAL: (IpAddr, &str) = (IpAddr::V4(Ipv4Addr::LOCALHOST), "/");

    #[test]
    fn hash_sends_a_value_to_one_target_whoever_asks_for_whatever() {
        let names = names(3);
        let keys = tenants(3_000);
        let b = key_hash(&names, &[1; 3]);
        let first = by_key(&*b, &Fake::even(3), LOCAL, &keys);
        for _ in 0..3 {
            assert_eq!(first, by_key(&*b, &Fake::even(3), LOCAL, &keys));
        }
        // Another client for another URL, and a balancer built again (a
        // restart): the same targets.
        let other = ("2001:db8::7".parse().unwrap(), "/reports?year=2024");
        let again = key_hash(&names, &[1; 3]);
        assert_eq!(first, by_key(&*again, &Fake::even(3), other, &keys));
        assert!(
            (0..3).all(|t| first.contains(&t)),
            "every target has tenants"
        );
        // No ramp under slow_start: a tenant stays where its data is warm.
        let ramping = Ramping(vec![FULL_SHARE, FULL_SHARE / 10, FULL_SHARE]);
        assert_eq!(first, by_key(&*b, &ramping, LOCAL, &keys));
    }

    #[test]
    fn hash_spreads_values_in_proportion_to_weights() {
        let names = names(3);
        let weights = [3, 1, 2];
        let b = key_hash(&names, &weights);
        let peers = Fake(weights.iter().map(|&w| (w, 0, true)).collect());
        let owners = by_key(&*b, &peers, LOCAL, &tenants(30_000));
        let mut counts = [0usize; 3];
        for &o in &owners {
            counts[o] += 1;
        }
        // 15000, 5000 and 10000 expected: each within a fifth of its
        // share, far from an even 10000 each for the first two.
        for (i, &w) in weights.iter().enumerate() {
            let expected = 30_000 * w as usize / 6;
            assert!(
                counts[i].abs_diff(expected) < expected / 5,
                "target {i}: {} of {expected}, {counts:?}",
                counts[i]
            );
        }
    }

    #[test]
    fn hash_without_a_value_goes_round_robin_by_weight_over_the_usable() {
        let b = key_hash(&names(2), &[1, 1]);
        assert_eq!(picks(&*b, &Fake::even(2), 8), [0, 1, 0, 1, 0, 1, 0, 1]);
        // Weights count, spread out as weighted_round_robin's.
        let b = key_hash(&names(3), &[5, 1, 1]);
        let peers = Fake(vec![(5, 0, true), (1, 0, true), (1, 0, true)]);
        let got = picks(&*b, &peers, 14);
        assert_eq!(&got[..7], [0, 0, 1, 0, 2, 0, 0], "{got:?}");
        assert_eq!(&got[..7], &got[7..], "{got:?}");
        // A target out is passed over; none usable, no pick.
        let b = key_hash(&names(3), &[1; 3]);
        let mut peers = Fake::even(3);
        peers.0[1].2 = false;
        assert_eq!(picks(&*b, &peers, 6), [0, 2, 0, 2, 0, 2]);
        let none = Fake(vec![(1, 0, false); 3]);
        let cx = Context {
            client: LOCAL.0,
            uri: "/",
            key: None,
            peers: &none,
        };
        assert_eq!(b.pick(&cx), None);
        // Nor ramped: a target back in rotation has its turns at once.
        let ramping = Ramping(vec![FULL_SHARE, FULL_SHARE / 10, FULL_SHARE]);
        let cx = Context {
            peers: &ramping,
            ..cx
        };
        let b = key_hash(&names(3), &[1; 3]);
        let turns: Vec<usize> = (0..6).map(|_| b.pick(&cx).unwrap()).collect();
        assert_eq!(turns, [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn hash_moves_only_the_values_of_a_target_that_goes_down() {
        let names = names(4);
        let keys = tenants(8_000);
        let b = key_hash(&names, &[1; 4]);
        let before = by_key(&*b, &Fake::even(4), LOCAL, &keys);
        let mut peers = Fake::even(4);
        peers.0[1].2 = false;
        let after = by_key(&*b, &peers, LOCAL, &keys);
        let mut took_over = [0usize; 4];
        for (k, (&was, &now)) in before.iter().zip(&after).enumerate() {
            if was == 1 {
                assert_ne!(now, 1, "{}", keys[k]);
                took_over[now] += 1;
            } else {
                assert_eq!(now, was, "{} moved off a target still up", keys[k]);
            }
        }
        // Spread over the others, not piled on one.
        assert!(
            took_over.iter().filter(|&&n| n > 0).count() >= 2,
            "{took_over:?}"
        );
        assert_eq!(
            took_over.iter().sum::<usize>(),
            before.iter().filter(|&&o| o == 1).count()
        );
        assert!(took_over.iter().sum::<usize>() > 1_000, "{took_over:?}");
        // Back up, it has its own again.
        assert_eq!(before, by_key(&*b, &Fake::even(4), LOCAL, &keys));
    }

    #[test]
    fn random_two_avoids_the_busier_target() {
        let r2 = RandomTwo;
        // With two targets both are always drawn: the idle one wins.
        let peers = Fake(vec![(1, 5, true), (1, 0, true)]);
        assert_eq!(picks(&r2, &peers, 50), [1; 50]);
        // With three, the busiest is never the lighter of two draws.
        let peers = Fake(vec![(1, 9, true), (1, 0, true), (1, 0, true)]);
        assert!(!picks(&r2, &peers, 200).contains(&0));
        // Unusable targets are never drawn.
        let peers = Fake(vec![(1, 0, false), (1, 3, true), (1, 0, false)]);
        assert_eq!(picks(&r2, &peers, 20), [1; 20]);
        // Idle targets share the load, by weight.
        let got = picks(&r2, &Fake::even(3), 300);
        for i in 0..3 {
            assert!(got.iter().filter(|&&g| g == i).count() > 30, "{got:?}");
        }
        let peers = Fake(vec![(3, 0, true), (1, 0, true), (1, 0, true)]);
        let got = picks(&r2, &peers, 5000);
        let heavy = got.iter().filter(|&&g| g == 0).count();
        // 3/5 of 5000 expected; far from an even third (1667).
        assert!((2700..3300).contains(&heavy), "{heavy} of 5000");
    }

    #[test]
    fn random_two_takes_the_lighter_of_two_by_one_request() {
        // Two targets: both always drawn, in either order.
        for loads in [[1, 0], [0, 1], [1, 2], [2, 1]] {
            let peers = Fake(loads.iter().map(|&l| (1, l, true)).collect());
            let lighter = usize::from(loads[1] < loads[0]);
            assert_eq!(picks(&RandomTwo, &peers, 20), [lighter; 20], "{loads:?}");
        }
    }

    #[test]
    fn by_weight_gives_each_target_as_many_numbers_as_its_weight() {
        let targets = || [(0, 3), (1, 1), (2, 2)].into_iter();
        let owners: Vec<Option<usize>> = (0..7).map(|t| by_weight(targets(), t)).collect();
        let [a, b, c] = [Some(0), Some(1), Some(2)];
        assert_eq!(owners, [a, a, a, b, c, c, None]);
    }

    #[test]
    fn ip_hash_ring_stays_bounded_with_huge_weights() {
        // Past 2^20 in total weight too: 200 targets at weight 10000.
        for n in [100, 200] {
            let names = names(n);
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            let hash = Ring::new(&names, &vec![10_000; n]);
            assert!(hash.points.len() as u64 <= MAX_RING_POINTS, "{n} targets");
        }
        // Still in proportion: one target with twice the weight.
        let names = names(100);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let mut weights = [5_000; 100];
        weights[0] = 10_000;
        let hash = Ring::new(&names, &weights);
        let points = |i| hash.points.iter().filter(|&&(_, t)| t == i).count() as i64;
        assert!(
            (points(0) - 2 * points(1)).abs() <= 2,
            "{} {}",
            points(0),
            points(1)
        );
    }

    #[test]
    fn ip_hash_asks_each_target_once_and_gives_up_when_none_is_usable() {
        let names = names(3);
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let hash = Ring::new(&names, &[10_000; 3]);
        let asked = std::cell::Cell::new(0);
        let owner = hash.owner(42, |_| {
            asked.set(asked.get() + 1);
            false
        });
        assert_eq!((owner, asked.get()), (None, 3));
        assert_eq!(hash.owner(42, |i| i == 2), Some(2));
    }
}
