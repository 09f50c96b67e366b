//! `rate_limit`: requests per client address (or per API key: see
//! [`Who`]) over time, as nginx's `limit_req` and HAProxy's
//! `http_req_rate` stick tables. Each address has a token bucket: it holds
//! up to `burst + 1` requests, refills at the rate, and a request that
//! finds it empty is refused (429). With `rate_limit_delay` (nginx's
//! `limit_req` without `nodelay`, or with `delay=`), the requests of a
//! burst past the first few wait their turn at the rate instead of
//! passing at once.
//!
//! The buckets live in a bounded table, as nginx's zone: an address whose
//! bucket has refilled holds nothing worth keeping and is forgotten, and
//! when addresses that are all still limited fill the table, the one seen
//! longest ago makes room.

use crate::cache::policy::decode_percent;
use crate::http::forward::is_hop_by_hop;
use crate::http::headers::{cookie_pairs, read_alike};
use crate::http::RequestHead;
use crate::upstream::hash_on::HashOn;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Shards of the table: requests from different addresses rarely wait on
/// one lock.
const SHARDS: usize = 16;
/// Addresses kept at once (about 64 bytes each with the map's overhead).
const MAX_CLIENTS: usize = 100_000;

/// Requests per unit of time, as written: `10/s`, `600/m`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// `N/s`, `N/m` or `N/h`, N from 1 to 1,000,000.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let wrong =
            || format!("`{text}` is not a rate: write requests per unit, as `10/s` or `600/m`");
        let (count, unit) = text.split_once('/').ok_or_else(wrong)?;
        let count: u32 = count
            .trim()
            .parse()
            .ok()
            .filter(|n| (1..=1_000_000).contains(n))
            .ok_or_else(wrong)?;
        let per = match unit.trim() {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(wrong()),
        };
        Ok(Rate { count, per })
    }

    fn per_second(self) -> f64 {
        f64::from(self.count) / self.per.as_secs_f64()
    }

    /// A second's worth of requests, at least one: the burst allowed when
    /// none is set.
    pub fn one_second(self) -> u32 {
        self.per_second().ceil().max(1.0) as u32
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let unit = match self.per.as_secs() {
            1 => "s",
            60 => "m",
            _ => "h",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// A limit as configured: `rate_limit`, `rate_limit_burst` and
/// `rate_limit_delay`, or a route's own.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limit {
    pub rate: Rate,
    /// Requests past the rate a client may make at once.
    pub burst: u32,
    /// Of those, how many pass at once, the others waiting their turn at
    /// the rate (nginx's `delay=`; 0: nginx's `limit_req` without
    /// `nodelay`); `None`: all of them (nginx's `nodelay`).
    pub delay: Option<u32>,
}

/// Whose bucket a request takes a token from.
#[derive(Clone, Copy, Debug)]
pub enum Who<'a> {
    /// The client's address.
    Address(IpAddr),
    /// What `rate_limit_key` names in the request: an API key, a user's
    /// cookie.
    Value(&'a [u8]),
}

/// The address the per-client limits (`rate_limit`,
/// `max_connections_per_client`) count `client` by: an IPv4 client's own,
/// an IPv6 client's /64. A /64 is what one home or host is given, as one
/// IPv4 address is a home's behind its NAT; counted by the whole address,
/// a client would make itself a new bucket and a new connection count
/// with each of the 2^64 addresses it may use. An IPv6 address that
/// stands for an IPv4 one ([`ipv4_within`]) counts as that.
pub fn counted_as(client: IpAddr) -> IpAddr {
    match client.to_canonical() {
        IpAddr::V6(ip) => match ipv4_within(ip) {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(ip) & !(u128::MAX >> 64))),
        },
        ip => ip,
    }
}

/// The IPv4 client an IPv6 address is made from, where its /64 is not
/// that client's: NAT64's well-known prefix (`64:ff9b::/96`, RFC 6052),
/// whose one /64 is every IPv4 client of a proxy behind it; 6to4
/// (`2002::/16`, RFC 3056), whose IPv4 host has a /48 of 65,536 /64s;
/// Teredo (`2001::/32`, RFC 4380), whose /64 is its relay server's,
/// shared by all its clients, the client's own public address being the
/// last 32 bits, inverted.
fn ipv4_within(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let low = (u128::from(ip) & u128::from(u32::MAX)) as u32;
    match ip.segments() {
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Some(Ipv4Addr::from(low)),
        [0x2002, high, next, ..] => Some(Ipv4Addr::from(u32::from(high) << 16 | u32::from(next))),
        [0x2001, 0, ..] => Some(Ipv4Addr::from(!low)),
        _ => None,
    }
}

/// The most values of `rate_limit_key` one request may carry; one with
/// more is refused as over the limit (no client sends its key nine times).
pub const MAX_KEYS: usize = 8;

/// What a request is counted by (see [`key_in`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Keys {
    /// Its client's address: it carries no value of the key.
    Address,
    /// Each value it carries, each counted: a backend may read any of
    /// them (the first, the last, all joined), so no value it sends goes
    /// uncounted.
    Values(Vec<Vec<u8>>),
    /// More than [`MAX_KEYS`] values.
    TooMany,
}

/// What `rate_limit_key` names in `head`, as a backend will read it:
/// a query parameter's name and value decoded as forms are (`+`,
/// `%XX`), a cookie's value without its quotes and decoded, a field
/// under any name a backend reads as its own when `underscores` lets
/// `X_Api_Key` through for `X-Api-Key` (else that one is dropped before
/// any backend sees it), but not one dropped on the way as hop-by-hop
/// (one `Connection` names, unless the proxy always keeps that field).
/// Empty values are none.
pub fn key_in(on: &HashOn, head: &RequestHead, underscores: bool) -> Keys {
    let mut found: Vec<Vec<u8>> = Vec::new();
    match on {
        HashOn::Header(name) => {
            let named = |n: &str| match underscores {
                true => read_alike(n.as_bytes(), name.as_bytes()),
                false => n.eq_ignore_ascii_case(name),
            };
            // Field by field, as they are dropped on the way to a backend.
            let sent_on = |n: &str| !is_hop_by_hop(&head.headers, &n.to_ascii_lowercase());
            let fields = head.headers.iter().filter(|(n, _)| named(n) && sent_on(n));
            found.extend(fields.map(|(_, value)| value.trim_ascii().to_vec()));
        }
        HashOn::Cookie(name) => {
            let pairs = head.headers.get_all("cookie").flat_map(cookie_pairs);
            for pair in pairs {
                let eq = pair.iter().position(|&b| b == b'=').unwrap_or(pair.len());
                if pair[..eq].trim_ascii() == name.as_bytes() {
                    let value = pair.get(eq + 1..).unwrap_or_default().trim_ascii();
                    let unquoted = value
                        .strip_prefix(b"\"")
                        .and_then(|v| v.strip_suffix(b"\""))
                        .unwrap_or(value);
                    found.push(form_decoded(unquoted));
                }
            }
        }
        HashOn::Query(name) => {
            let query = head.target.split_once('?').map_or("", |(_, q)| q);
            // `;` as well as `&`: some backends split there too, and a
            // value cut at it is only coarser.
            for param in query.split(['&', ';']) {
                let (n, value) = param.split_once('=').unwrap_or((param, ""));
                let n = form_decoded(n.as_bytes());
                if n == name.as_bytes() || as_php_reads(&n) == name.as_bytes() {
                    found.push(form_decoded(value.as_bytes()));
                }
            }
        }
    }
    found.retain(|v| !v.is_empty());
    found.sort_unstable();
    found.dedup();
    match found.len() {
        0 => Keys::Address,
        n if n > MAX_KEYS => Keys::TooMany,
        _ => Keys::Values(found),
    }
}

/// A parameter's name as PHP reads it into `$_GET`: up to a NUL, leading spaces
/// dropped, then `.` and spaces, and a `[` that opens no array, made `_`
/// (`api.key` is `api_key`); an array's (`key[0]`) is its name before
/// the `[`.
fn as_php_reads(name: &[u8]) -> Vec<u8> {
    // Read as a C string: up to a NUL (`api_key%00x` is `api_key`).
    let name = name.split(|&b| b == 0).next().unwrap_or_default();
    let name = &name[name.iter().take_while(|&&b| b == b' ').count()..];
    let bracket = name.iter().position(|&b| b == b'[');
    let array = bracket.filter(|&at| name[at..].contains(&b']'));
    let (base, rest) = match (array, bracket) {
        (Some(at), _) => (&name[..at], &b""[..]),
        (None, Some(at)) => (&name[..at], &name[at..]),
        (None, None) => (name, &b""[..]),
    };
    let mut read: Vec<u8> = base
        .iter()
        .map(|&b| if b == b'.' || b == b' ' { b'_' } else { b })
        .collect();
    if let Some((_, after)) = rest.split_first() {
        read.push(b'_');
        read.extend_from_slice(after);
    }
    read
}

/// A query's name or value as forms encode it: `+` a space, `%XX` a byte.
fn form_decoded(bytes: &[u8]) -> Vec<u8> {
    let spaced: Vec<u8> = bytes
        .iter()
        .map(|&b| if b == b'+' { b' ' } else { b })
        .collect();
    decode_percent(&spaced)
}

/// A bucket's key in the table: a value is kept as its keyed hash, eight
/// bytes however long it is, and unguessable, so that no client can make
/// its value share another's bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Key {
    Address(IpAddr),
    Value(u64),
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    seen: Instant,
}

/// The buckets of every client address.
pub struct Limiter {
    /// Tokens added per second.
    rate: f64,
    /// Tokens a bucket holds when full: the burst, plus the request itself.
    capacity: f64,
    /// A request that leaves fewer tokens than this waits until the
    /// bucket is back at it: 0 unless `rate_limit_delay` is set.
    wait_below: f64,
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<Key, Bucket>>>,
}

impl Limiter {
    pub fn new(limit: Limit) -> Limiter {
        let undelayed = limit.delay.unwrap_or(limit.burst).min(limit.burst);
        Limiter {
            rate: limit.rate.per_second(),
            capacity: f64::from(limit.burst) + 1.0,
            wait_below: f64::from(limit.burst - undelayed),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Whether `who` may make a request at `now`, and how long it is to
    /// wait first (zero but under `rate_limit_delay`); if not, how long
    /// until it may.
    pub fn admit(&self, who: Who<'_>, now: Instant) -> Result<Duration, Duration> {
        self.with_bucket(who, now, |bucket| {
            if bucket.tokens >= 1.0 {
                bucket.tokens -= 1.0;
                let short = (self.wait_below - bucket.tokens).max(0.0);
                Ok(Duration::from_secs_f64(short / self.rate))
            } else {
                Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
            }
        })
    }

    /// Runs `take` on `who`'s bucket, refilled to `now` (a full one for
    /// a client not in the table, room made for it when the table is
    /// full), under its shard's lock.
    fn with_bucket<T>(&self, who: Who<'_>, now: Instant, take: impl FnOnce(&mut Bucket) -> T) -> T {
        let client = self.key_of(who);
        let shard = (self.hasher.hash_one(client) % SHARDS as u64) as usize;
        let mut buckets = self.shards[shard].lock();
        if !buckets.contains_key(&client) && buckets.len() >= MAX_CLIENTS / SHARDS {
            self.make_room(&mut buckets, now);
        }
        let full = Bucket {
            tokens: self.capacity,
            seen: now,
        };
        let bucket = buckets.entry(client).or_insert(full);
        bucket.tokens = self.refilled(bucket, now);
        bucket.seen = now;
        take(bucket)
    }

    /// Whether `who`'s bucket holds a token at `now`, none taken; if not,
    /// how long until it will (see `error_limit`, which takes them as
    /// errors come, not as requests do).
    pub fn has_token(&self, who: Who<'_>, now: Instant) -> Result<(), Duration> {
        let client = self.key_of(who);
        let shard = (self.hasher.hash_one(client) % SHARDS as u64) as usize;
        let buckets = self.shards[shard].lock();
        let Some(bucket) = buckets.get(&client) else {
            return Ok(());
        };
        let tokens = self.refilled(bucket, now);
        match tokens >= 1.0 {
            true => Ok(()),
            false => Err(Duration::from_secs_f64((1.0 - tokens) / self.rate)),
        }
    }

    /// Takes a token from `who`'s bucket, one it holds or not: an empty
    /// bucket goes into debt, down to a full bucket's worth below empty,
    /// so that a client that goes on while refused stays refused, and one
    /// that stops is back within twice the time a bucket takes to fill.
    pub fn spend(&self, who: Who<'_>, now: Instant) {
        self.with_bucket(who, now, |bucket| {
            bucket.tokens = (bucket.tokens - 1.0).max(-self.capacity);
        });
    }

    /// The addresses whose buckets hold no token at `now`, each with how
    /// long until one will (an IPv6 client's /64 as its first address),
    /// the longest waits first, at most `most` of them; and whether there
    /// were more.
    pub fn empty_at(&self, now: Instant, most: usize) -> (Vec<(IpAddr, Duration)>, bool) {
        let mut empty: Vec<(IpAddr, Duration)> = Vec::new();
        for shard in &self.shards {
            for (key, bucket) in shard.lock().iter() {
                let tokens = self.refilled(bucket, now);
                if let (Key::Address(ip), true) = (key, tokens < 1.0) {
                    empty.push((*ip, Duration::from_secs_f64((1.0 - tokens) / self.rate)));
                }
            }
        }
        empty.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let more = empty.len() > most;
        empty.truncate(most);
        (empty, more)
    }

    /// Forgets `client`'s bucket (it starts full again); whether there
    /// was one.
    pub fn forget(&self, client: IpAddr) -> bool {
        let key = self.key_of(Who::Address(client));
        let shard = (self.hasher.hash_one(key) % SHARDS as u64) as usize;
        self.shards[shard].lock().remove(&key).is_some()
    }

    /// The bucket `who` takes its token from.
    fn key_of(&self, who: Who<'_>) -> Key {
        match who {
            Who::Address(ip) => Key::Address(counted_as(ip)),
            Who::Value(value) => Key::Value(self.hasher.hash_one(value)),
        }
    }

    /// Gives back the token `who` took: the request was refused by
    /// another bucket it is counted in, and as nginx counts a request
    /// refused by one `limit_req` in no zone, it costs nothing here either.
    fn give_back(&self, who: Who<'_>) {
        let client = self.key_of(who);
        let shard = (self.hasher.hash_one(client) % SHARDS as u64) as usize;
        // Forgotten meanwhile: it would start full anyway.
        if let Some(bucket) = self.shards[shard].lock().get_mut(&client) {
            bucket.tokens = (bucket.tokens + 1.0).min(self.capacity);
        }
    }

    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.seen).as_secs_f64();
        (bucket.tokens + elapsed * self.rate).min(self.capacity)
    }

    /// Forgets the addresses whose buckets have refilled (they would start
    /// full anyway); if that frees too little, the eighth seen longest ago,
    /// so that a flood of new addresses pays for a sweep once every many
    /// requests, not at each.
    fn make_room(&self, buckets: &mut HashMap<Key, Bucket>, now: Instant) {
        let most = MAX_CLIENTS / SHARDS;
        buckets.retain(|_, bucket| self.refilled(bucket, now) < self.capacity);
        if buckets.len() > most - most / 8 {
            let mut by_age: Vec<(Instant, Key)> =
                buckets.iter().map(|(ip, b)| (b.seen, *ip)).collect();
            let eighth = most / 8;
            by_age.select_nth_unstable(eighth);
            for (_, ip) in &by_age[..eighth] {
                buckets.remove(ip);
            }
        }
    }

    /// Addresses in the table (for tests).
    #[cfg(test)]
    fn clients(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}

/// The buckets of one generation of the settings: each pool's, and each
/// route's with a `rate_limit=` of its own.
#[derive(Default)]
pub struct Limiters {
    /// For each pool, `targets`' first; a pool without a limit of its own
    /// shares the top level's.
    pub pools: Vec<Option<Arc<Limiter>>>,
    /// For each route, in the order of `Routes::get`.
    pub routes: Vec<Option<Arc<Limiter>>>,
    /// With `error_limit`: every client address's errors.
    pub errors: Option<Arc<crate::error_limit::ErrorLimit>>,
}

impl Limiters {
    /// The pool's at `index` (0: `targets`').
    pub fn of_pool(&self, index: usize) -> Option<&Arc<Limiter>> {
        self.pools.get(index)?.as_ref()
    }

    /// The route's at `index`, with a `rate_limit=` of its own.
    pub fn of_route(&self, index: usize) -> Option<&Arc<Limiter>> {
        self.routes.get(index)?.as_ref()
    }
}

/// Whether a request counted by `keys` (from `client`) may be made at
/// `now` under every one of `limits` (a route's own, then its pool's;
/// `None`: no limit there), as nginx applies every `limit_req` in force:
/// it passes only if each has a token for it, for each of its values; if
/// not, it takes none from any bucket, and it is told how long until all
/// may. Passed, it waits the longest any bucket asks of it (under
/// `rate_limit_delay`).
pub fn admit_under_all<const N: usize>(
    limits: [Option<&Limiter>; N],
    keys: &Keys,
    client: IpAddr,
    now: Instant,
) -> Result<Duration, Duration> {
    let values: &[Vec<u8>] = match keys {
        Keys::Address => &[],
        Keys::Values(values) if values.len() <= MAX_KEYS => values,
        _ if limits.iter().any(Option::is_some) => return Err(Duration::from_secs(1)),
        _ => return Ok(Duration::ZERO),
    };
    // Its address, or each of its values (at most `MAX_KEYS`).
    let whos = || {
        let address = matches!(keys, Keys::Address).then_some(Who::Address(client));
        address
            .into_iter()
            .chain(values.iter().map(|v| Who::Value(v)))
    };
    let mut longest: Option<Duration> = None;
    // Each bucket that took a token, of each of the request's values (bit
    // `limit * MAX_KEYS + value`): one value's refusal gives back the
    // others' too, in the same limit as in another (a key sent beside a
    // spent one is not spent by it).
    let mut took: u128 = 0;
    const { assert!(N * MAX_KEYS <= 128, "a bit per bucket") };
    let buckets = || {
        (limits.iter().enumerate())
            .filter_map(|(l, limiter)| limiter.map(|limiter| (l, limiter)))
            .flat_map(move |(l, limiter)| {
                (whos().enumerate()).map(move |(v, who)| (l * MAX_KEYS + v, limiter, who))
            })
    };
    let mut delay = Duration::ZERO;
    for (bit, limiter, who) in buckets() {
        match limiter.admit(who, now) {
            Ok(wait) => {
                took |= 1 << bit;
                delay = delay.max(wait);
            }
            Err(wait) => longest = Some(longest.map_or(wait, |w| w.max(wait))),
        }
    }
    let Some(wait) = longest else {
        return Ok(delay);
    };
    for (bit, limiter, who) in buckets() {
        if took & (1 << bit) != 0 {
            limiter.give_back(who);
        }
    }
    Err(wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Who<'static> {
        Who::Address(IpAddr::from(n.to_be_bytes()))
    }

    fn limiter(rate: &str, burst: u32, delay: Option<u32>) -> Limiter {
        let rate = Rate::parse(rate).unwrap();
        Limiter::new(Limit { rate, burst, delay })
    }

    #[test]
    fn under_a_delay_the_burst_past_its_first_requests_waits_its_turn_at_the_rate() {
        let now = Instant::now();
        let ms = Duration::from_millis;
        let waits = |limiter: &Limiter, count: usize| -> Vec<Result<Duration, Duration>> {
            (0..count).map(|_| limiter.admit(ip(1), now)).collect()
        };
        // nginx's `limit_req burst=4` without `nodelay`: one at once, the
        // next four a tenth of a second apart, the sixth refused.
        let queued = waits(&limiter("10/s", 4, Some(0)), 6);
        let expected = [0, 100, 200, 300, 400].map(|n| Ok(ms(n)));
        assert_eq!(queued[..5], expected);
        assert!(queued[5].is_err());
        // `delay=2`: three at once (the request and two past the rate).
        let delayed = waits(&limiter("10/s", 4, Some(2)), 6);
        assert_eq!(delayed[..5], [0, 0, 0, 100, 200].map(|n| Ok(ms(n))));
        assert!(delayed[5].is_err());
        // No delay, or one as large as the burst or larger: all at once.
        for delay in [None, Some(4), Some(9)] {
            let at_once = waits(&limiter("10/s", 4, delay), 6);
            assert_eq!(at_once[..5], [Ok(Duration::ZERO); 5], "{delay:?}");
            assert!(at_once[5].is_err(), "{delay:?}");
        }
        // Time refills the queue as it drains it: a request a tenth of a
        // second later waits as the one before did.
        let paced = limiter("10/s", 4, Some(0));
        assert_eq!(waits(&paced, 2), [Ok(ms(0)), Ok(ms(100))]);
        assert_eq!(paced.admit(ip(1), now + ms(100)), Ok(ms(100)));
    }

    #[test]
    fn a_request_waits_the_longest_of_its_limits_and_a_refusal_gives_every_token_back() {
        let now = Instant::now();
        let route = limiter("10/s", 1, Some(0));
        let pool = limiter("2/s", 3, Some(1));
        let client = IpAddr::from([192, 0, 2, 1]);
        let admit = || admit_under_all([Some(&route), Some(&pool)], &Keys::Address, client, now);
        assert_eq!(admit(), Ok(Duration::ZERO));
        // The route's queue says 100 ms, the pool's nothing yet.
        assert_eq!(admit(), Ok(Duration::from_millis(100)));
        // The route's bucket is spent: refused, the pool's token given back.
        assert!(admit().is_err());
        let next = pool.admit(Who::Address(client), now);
        assert_eq!(next, Ok(Duration::from_millis(500)));
    }

    #[test]
    fn a_query_name_is_read_as_php_reads_it_too() {
        for (sent, read) in [
            ("api_key", "api_key"),
            ("api.key", "api_key"),
            ("api key", "api_key"),
            ("  api.key", "api_key"),
            ("api[key", "api_key"),
            ("api_key[0]", "api_key"),
            ("api_key[]", "api_key"),
            ("a.b[c.d", "a_b_c.d"),
            ("api_key\0x", "api_key"),
            ("api.key\0", "api_key"),
        ] {
            assert_eq!(as_php_reads(sent.as_bytes()), read.as_bytes(), "{sent}");
        }
    }

    #[test]
    fn an_ipv6_client_counts_as_its_64_and_a_mapped_ipv4_one_as_itself() {
        let counted = |ip: &str| counted_as(ip.parse().unwrap()).to_string();
        assert_eq!(counted("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::");
        assert_eq!(counted("::ffff:192.0.2.7"), "192.0.2.7");
        assert_eq!(counted("192.0.2.7"), "192.0.2.7");
    }

    #[test]
    fn an_ipv6_address_that_stands_for_an_ipv4_one_counts_as_that() {
        let counted = |ip: &str| counted_as(ip.parse().unwrap()).to_string();
        // IPv4 clients through NAT64 (RFC 6052's well-known prefix): each
        // its own, not every IPv4 client as one /64.
        assert_eq!(counted("64:ff9b::c000:207"), "192.0.2.7");
        assert_eq!(counted("64:ff9b::c000:208"), "192.0.2.8");
        // 6to4 (RFC 3056): one IPv4 host's 65,536 /64s are one client.
        assert_eq!(counted("2002:c000:207:1::1"), "192.0.2.7");
        assert_eq!(counted("2002:c000:207:ffff::1"), "192.0.2.7");
        // Teredo (RFC 4380): the client's public address, inverted, last;
        // not its server's, which every client of that server shares.
        assert_eq!(counted("2001:0:4136:e378:8000:63bf:3fff:fdf8"), "192.0.2.7");
        assert_eq!(counted("2001:0:4136:e378:8000:63bf:3fff:fdf7"), "192.0.2.8");
    }

    #[test]
    fn rates_are_counts_per_second_minute_or_hour() {
        assert_eq!(
            Rate::parse("10/s"),
            Ok(Rate {
                count: 10,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(Rate::parse(" 600 / m").unwrap().to_string(), "600/m");
        for text in ["10/s", "600/m", "5/h"] {
            assert_eq!(Rate::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(Rate::parse("600/m").unwrap().one_second(), 10);
        assert_eq!(Rate::parse("5/h").unwrap().one_second(), 1);
        for bad in ["10", "10/d", "0/s", "-1/s", "x/s", "2000000/s", "/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_then_the_rate_and_each_address_on_its_own() {
        let limiter = limiter("10/s", 2, None);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit(ip(1), t0), Ok(Duration::ZERO));
        }
        let wait = limiter.admit(ip(1), t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Another address has its own bucket.
        assert_eq!(limiter.admit(ip(2), t0), Ok(Duration::ZERO));
        // A tenth of a second brings one more request back, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.admit(ip(1), t1), Ok(Duration::ZERO));
        assert!(limiter.admit(ip(1), t1).is_err());
        // Half a token back: half a tenth of a second to wait.
        let wait = limiter
            .admit(ip(1), t1 + Duration::from_millis(50))
            .unwrap_err();
        assert!((wait.as_secs_f64() - 0.05).abs() < 1e-6, "{wait:?}");
        // Refusals take nothing: the bucket keeps refilling under them.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(limiter.admit(ip(1), t2), Ok(Duration::ZERO));
        }
        assert!(limiter.admit(ip(1), t2).is_err());
    }

    #[test]
    fn each_value_has_a_bucket_apart_from_every_address() {
        let limiter = limiter("1/h", 0, None);
        let t0 = Instant::now();
        assert_eq!(limiter.admit(Who::Value(b"alice"), t0), Ok(Duration::ZERO));
        assert!(limiter.admit(Who::Value(b"alice"), t0).is_err());
        assert_eq!(limiter.admit(Who::Value(b"bob"), t0), Ok(Duration::ZERO));
        assert_eq!(limiter.admit(ip(1), t0), Ok(Duration::ZERO));
        assert!(limiter.admit(ip(1), t0).is_err());
        assert_eq!(limiter.clients(), 3);
    }

    /// What `rate_limit_key = setting` counts a request for `target`
    /// with `fields` (lines of a head) by, with `underscores_in_headers`
    /// off: `[]` for its address.
    fn keys(setting: &str, target: &str, fields: &str) -> Vec<String> {
        keys_with(setting, target, fields, false)
    }

    fn keys_with(setting: &str, target: &str, fields: &str, underscores: bool) -> Vec<String> {
        use crate::http::head::{parse_request, RequestLimits};
        let text = format!("GET {target} HTTP/1.1\r\nHost: h\r\n{fields}\r\n");
        let head = parse_request(text.as_bytes(), &RequestLimits::default()).unwrap();
        let on = HashOn::parse(setting).unwrap();
        match key_in(&on, &head, underscores) {
            Keys::Address => Vec::new(),
            Keys::Values(values) if values.is_empty() => vec!["no values".into()],
            Keys::Values(values) => (values.into_iter())
                .map(|v| String::from_utf8(v).unwrap())
                .collect(),
            Keys::TooMany => vec!["too many".into()],
        }
    }

    #[test]
    fn a_key_is_read_as_a_backend_reads_it_and_every_value_counts() {
        let alice = ["alice"];
        // A query parameter, decoded as forms are, its name too.
        for target in [
            "/?key=alice",
            "/?key=%61lice",
            "/?k%65y=al%69ce",
            "/?x=1;key=alice",
        ] {
            assert_eq!(keys("query:key", target, ""), alice, "{target}");
        }
        assert_eq!(keys("query:key", "/?key=a+b", ""), ["a b"]);
        // Under the name PHP reads it by as well as its own.
        assert_eq!(keys("query:api_key", "/?api.key=alice", ""), alice);
        // Every value sent counts, once each: a backend may read any.
        assert_eq!(keys("query:key", "/?key=j1&key=alice", ""), ["alice", "j1"]);
        assert_eq!(keys("query:key", "/?key=alice&k%65y=alice", ""), alice);
        // Empty, or absent: by address.
        for target in ["/?key=", "/?keys=alice", "/"] {
            assert!(keys("query:key", target, "").is_empty(), "{target}");
        }
        let many: Vec<String> = (0..=MAX_KEYS).map(|i| format!("key={i}")).collect();
        let most = format!("/?{}", many[..MAX_KEYS].join("&"));
        assert_eq!(keys("query:key", &most, "").len(), MAX_KEYS);
        let many = format!("/?{}", many.join("&"));
        assert_eq!(keys("query:key", &many, ""), ["too many"]);
        // A cookie, without its quotes or spaces, decoded.
        for cookies in [
            "session=alice",
            "session=\"alice\"",
            "a=1; session = alice ",
            "session=%61lice",
        ] {
            let field = format!("Cookie: {cookies}\r\n");
            assert_eq!(keys("cookie:session", "/", &field), alice, "{cookies}");
        }
        let twice = "Cookie: session=j1\r\nCookie: session=alice\r\n";
        assert_eq!(keys("cookie:session", "/", twice), ["alice", "j1"]);
        // A field, in any case; under its underscore spelling only where
        // that reaches a backend; not one `Connection` names, which none
        // sees.
        assert_eq!(
            keys("header:X-Api-Key", "/", "x-api-key:  alice \r\n"),
            alice
        );
        assert!(keys("header:X-Api-Key", "/", "X_Api_Key: alice\r\n").is_empty());
        let underscored = keys_with("header:X-Api-Key", "/", "X_Api_Key: alice\r\n", true);
        assert_eq!(underscored, alice);
        let dropped = "Connection: x-api-key\r\nX-Api-Key: alice\r\n";
        assert!(keys("header:X-Api-Key", "/", dropped).is_empty());
        // A field a backend gets whatever `Connection` says still counts.
        let kept = "Connection: authorization\r\nAuthorization: Bearer alice\r\n";
        assert_eq!(keys("header:Authorization", "/", kept), ["Bearer alice"]);
    }

    #[test]
    fn a_request_with_several_values_takes_a_token_from_each() {
        let limiter = limiter("1/h", 0, None);
        let (t0, client) = (Instant::now(), IpAddr::from([10, 0, 0, 1]));
        let only = [Some(&limiter)];
        let both = Keys::Values(vec![b"alice".to_vec(), b"j1".to_vec()]);
        assert_eq!(admit_under_all(only, &both, client, t0), Ok(Duration::ZERO));
        let alice = Keys::Values(vec![b"alice".to_vec()]);
        assert!(admit_under_all(only, &alice, client, t0).is_err());
        assert!(admit_under_all(only, &Keys::TooMany, client, t0).is_err());
        assert_eq!(
            admit_under_all(only, &Keys::Address, client, t0),
            Ok(Duration::ZERO)
        );
    }

    #[test]
    fn a_request_passes_every_limit_it_is_under_or_costs_none_of_them() {
        let route = limiter("1/h", 1, None);
        let pool = limiter("1/h", 2, None);
        let (t0, client) = (Instant::now(), IpAddr::from([10, 0, 0, 1]));
        let both = [Some(&route), Some(&pool)];
        for _ in 0..2 {
            assert_eq!(
                admit_under_all(both, &Keys::Address, client, t0),
                Ok(Duration::ZERO)
            );
        }
        // The route's bucket is spent: refused, and the pool's token is
        // given back.
        let wait = admit_under_all(both, &Keys::Address, client, t0).unwrap_err();
        assert!(wait > Duration::from_secs(3000), "{wait:?}");
        assert_eq!(pool.admit(Who::Address(client), t0), Ok(Duration::ZERO));
        // The pool's is spent now: the route's token is given back too.
        let route = limiter("1/h", 0, None);
        let keys = Keys::Values(vec![b"alice".to_vec(), b"j1".to_vec()]);
        assert!(admit_under_all([Some(&route), Some(&pool)], &keys, client, t0).is_ok());
        assert!(admit_under_all([Some(&route), Some(&pool)], &Keys::Address, client, t0).is_err());
        assert_eq!(route.admit(Who::Address(client), t0), Ok(Duration::ZERO));
        assert!(route.admit(Who::Value(b"alice"), t0).is_err());
    }

    #[test]
    fn a_refusal_gives_back_only_the_tokens_taken_of_each_value_in_each_limit() {
        let route = limiter("1/h", 0, None);
        let pool = limiter("1/h", 0, None);
        let (t0, client) = (Instant::now(), IpAddr::from([10, 0, 0, 1]));
        assert_eq!(pool.admit(Who::Value(b"alice"), t0), Ok(Duration::ZERO));
        // The route takes a token of each value, the pool one of `j1`
        // alone: `alice` is spent there.
        let keys = Keys::Values(vec![b"alice".to_vec(), b"j1".to_vec()]);
        assert!(admit_under_all([Some(&route), Some(&pool)], &keys, client, t0).is_err());
        // What was taken comes back, and nothing that was not: `alice`
        // stays spent in the pool.
        assert!(pool.admit(Who::Value(b"alice"), t0).is_err());
        assert_eq!(pool.admit(Who::Value(b"j1"), t0), Ok(Duration::ZERO));
        assert_eq!(route.admit(Who::Value(b"alice"), t0), Ok(Duration::ZERO));
        assert_eq!(route.admit(Who::Value(b"j1"), t0), Ok(Duration::ZERO));
    }

    #[test]
    fn too_many_values_are_refused_under_a_limit_and_pass_without_one() {
        let limiter = limiter("10/s", 20, None);
        let (t0, client) = (Instant::now(), IpAddr::from([10, 0, 0, 1]));
        let nine: Vec<Vec<u8>> = (0..=MAX_KEYS).map(|i| vec![b'a' + i as u8]).collect();
        let nine = Keys::Values(nine);
        let refused = admit_under_all([Some(&limiter)], &nine, client, t0);
        assert_eq!(refused, Err(Duration::from_secs(1)));
        assert_eq!(limiter.clients(), 0, "no bucket touched");
        for keys in [Keys::TooMany, nine] {
            assert_eq!(
                admit_under_all([None], &keys, client, t0),
                Ok(Duration::ZERO)
            );
        }
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_addresses_first() {
        let limiter = limiter("1/h", 0, None);
        let t0 = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 5_000) {
            let _ = limiter.admit(ip(n), t0);
        }
        assert!(limiter.clients() <= MAX_CLIENTS);
        // Room is made an eighth at a time, not by forgetting everyone.
        assert!(limiter.clients() > MAX_CLIENTS / 2, "{}", limiter.clients());
        // An hour later every bucket has refilled: all are forgotten as
        // room is needed, and a limited address is still limited.
        let t1 = t0 + Duration::from_secs(3600);
        assert_eq!(limiter.admit(ip(u32::MAX), t1), Ok(Duration::ZERO));
        assert!(limiter.admit(ip(u32::MAX), t1).is_err());
    }

    /// Takes `who`'s token at `t0`, then fills the shard its bucket is in
    /// up to `limited` spent buckets and `refilled` full ones more, seen
    /// a millisecond apart after it; returns that shard.
    fn fill_shard_of(
        limiter: &Limiter,
        who: Who<'_>,
        limited: usize,
        refilled: usize,
        t0: Instant,
    ) -> usize {
        assert_eq!(limiter.admit(who, t0), Ok(Duration::ZERO));
        let key = limiter.key_of(who);
        let shard = (limiter.shards.iter())
            .position(|s| s.lock().contains_key(&key))
            .unwrap();
        let mut buckets = limiter.shards[shard].lock();
        for n in 0..limited + refilled {
            let tokens = if n < limited { 0.0 } else { limiter.capacity };
            let seen = t0 + Duration::from_millis(n as u64 + 1);
            buckets.insert(Key::Value(n as u64), Bucket { tokens, seen });
        }
        shard
    }

    #[test]
    fn a_full_shard_forgets_refilled_buckets_then_the_eighth_seen_longest_ago() {
        let (most, eighth) = (MAX_CLIENTS / SHARDS, MAX_CLIENTS / SHARDS / 8);
        let t0 = Instant::now();
        // Spent and refilled buckets in a shard, and how many a new
        // address finds there beside its own.
        for (limited, refilled, kept) in [
            // Not full yet: no room is made.
            (most - 1, 0, most - 1),
            // Forgetting the refilled makes room enough.
            (most - eighth, eighth, most - eighth),
            // Not quite: the eighth seen longest ago go too.
            (most - eighth + 1, eighth - 1, most - 2 * eighth + 1),
            (most - 250, 250, most - 250 - eighth),
        ] {
            let limiter = limiter("1/h", 0, None);
            let shard = fill_shard_of(&limiter, ip(0), limited, refilled, t0);
            limiter.shards[shard].lock().remove(&limiter.key_of(ip(0)));
            let later = t0 + Duration::from_secs(10);
            assert_eq!(limiter.admit(ip(0), later), Ok(Duration::ZERO));
            let buckets = limiter.shards[shard].lock();
            let case = format!("{limited} spent, {refilled} refilled");
            assert_eq!(buckets.len(), kept + 1, "{case}");
            let gone = (0..limited as u64).filter(|&n| !buckets.contains_key(&Key::Value(n)));
            assert!(gone.eq(0..(limited - kept) as u64), "{case}: the oldest go");
        }
    }

    #[test]
    fn a_bucket_in_debt_is_waited_out_token_by_token() {
        // Capacity 2, refilled at 1/s: four spends leave it 2 in debt,
        // and more leave it there (a full bucket's worth at most).
        let limiter = limiter("1/s", 1, None);
        let t0 = Instant::now();
        assert_eq!(limiter.has_token(ip(1), t0), Ok(()));
        for _ in 0..6 {
            limiter.spend(ip(1), t0);
        }
        // Three seconds to be back at one token, none taken by asking.
        assert_eq!(limiter.has_token(ip(1), t0), Err(Duration::from_secs(3)));
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(limiter.has_token(ip(1), t1), Err(Duration::from_secs(2)));
        assert_eq!(
            limiter.has_token(ip(1), t0 + Duration::from_secs(3)),
            Ok(())
        );
        assert_eq!(limiter.has_token(ip(2), t0), Ok(()), "each its own");
    }

    #[test]
    fn spent_buckets_stay_bounded_too() {
        let limiter = limiter("1/h", 0, None);
        let t0 = Instant::now();
        for n in 0..(MAX_CLIENTS as u32 + 5_000) {
            limiter.spend(ip(n), t0);
        }
        assert!(limiter.clients() <= MAX_CLIENTS);
        assert!(limiter.clients() > MAX_CLIENTS / 2, "{}", limiter.clients());
    }

    #[test]
    fn spending_makes_room_only_for_a_new_address_in_a_full_shard() {
        let most = MAX_CLIENTS / SHARDS;
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(10);
        // Not full yet: nothing is forgotten.
        let growing = limiter("1/h", 2, None);
        let shard = fill_shard_of(&growing, ip(0), most - 2, 0, t0);
        growing.shards[shard].lock().remove(&growing.key_of(ip(0)));
        growing.spend(ip(0), later);
        assert_eq!(growing.shards[shard].lock().len(), most - 1);
        // Full, with the address in debt the one seen longest ago: it
        // stays in debt, not forgotten to make room for itself.
        let full = limiter("1/h", 2, None);
        let shard = fill_shard_of(&full, ip(0), most - 1, 0, t0);
        for _ in 0..6 {
            full.spend(ip(0), t0);
        }
        full.spend(ip(0), later);
        assert!(full.has_token(ip(0), later).is_err());
        assert_eq!(full.shards[shard].lock().len(), most);
    }

    #[test]
    fn a_spent_address_in_a_full_shard_stays_limited() {
        let limiter = limiter("1/h", 0, None);
        let t0 = Instant::now();
        // The oldest bucket of a full shard: room is made for new
        // addresses only, not by forgetting one that asks again.
        let shard = fill_shard_of(&limiter, ip(0), MAX_CLIENTS / SHARDS - 1, 0, t0);
        let later = t0 + Duration::from_secs(10);
        assert!(limiter.admit(ip(0), later).is_err());
        assert_eq!(limiter.shards[shard].lock().len(), MAX_CLIENTS / SHARDS);
    }
}
