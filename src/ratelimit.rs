//! `rate_limit`: requests per client address (or per API key: see
//! [`Who`]) over time, as nginx's `limit_req` with `nodelay` and HAProxy's
//! `http_req_rate` stick tables. Each address has a token bucket: it holds
//! up to `burst + 1` requests, refills at the rate, and a request that
//! finds it empty is refused (429) rather than delayed.
//!
//! The buckets live in a bounded table, as nginx's zone: an address whose
//! bucket has refilled holds nothing worth keeping and is forgotten, and
//! when addresses that are all still limited fill the table, the one seen
//! longest ago makes room.

use crate::cache::policy::decode_percent;
use crate::http::headers::{cookie_pairs, read_alike};
use crate::http::RequestHead;
use crate::upstream::hash_on::HashOn;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::fmt;
use std::hash::BuildHasher;
use std::net::IpAddr;
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

/// Whose bucket a request takes a token from.
#[derive(Clone, Copy, Debug)]
pub enum Who<'a> {
    /// The client's address.
    Address(IpAddr),
    /// What `rate_limit_key` names in the request: an API key, a user's
    /// cookie.
    Value(&'a [u8]),
}

/// What `rate_limit_key` names in `head`, as a backend will read it:
/// a query parameter's name and value decoded (`+` and `%XX`), a
/// cookie's value without its quotes. `None` (the request is counted by
/// its address) when it is not there, empty, or there more than once:
/// which of several a backend takes varies (the first, the last, all of
/// them joined), and counting one would let the others change at will.
/// A field is found under any name a backend reads as its own
/// (`X_Api_Key` for `X-Api-Key`).
pub fn key_in(on: &HashOn, head: &RequestHead) -> Option<Vec<u8>> {
    let mut found: Vec<Vec<u8>> = Vec::new();
    match on {
        HashOn::Header(name) => {
            let named = head
                .headers
                .iter()
                .filter(|(n, _)| read_alike(n.as_bytes(), name.as_bytes()));
            found.extend(named.map(|(_, value)| value.trim_ascii().to_vec()));
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
                    found.push(unquoted.to_vec());
                }
            }
        }
        HashOn::Query(name) => {
            let query = head.target.split_once('?').map_or("", |(_, q)| q);
            // `;` as well as `&`: some backends split there too, and a
            // value cut at it is only coarser.
            for param in query.split(['&', ';']) {
                let (n, value) = param.split_once('=').unwrap_or((param, ""));
                if form_decoded(n.as_bytes()) == name.as_bytes() {
                    found.push(form_decoded(value.as_bytes()));
                }
            }
        }
    }
    match found.pop() {
        Some(only) if found.is_empty() && !only.is_empty() => Some(only),
        _ => None,
    }
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
    hasher: RandomState,
    shards: Vec<Mutex<HashMap<Key, Bucket>>>,
}

impl Limiter {
    pub fn new(rate: Rate, burst: u32) -> Limiter {
        Limiter {
            rate: rate.per_second(),
            capacity: f64::from(burst) + 1.0,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    /// Whether `who` may make a request at `now`; if not, how long until
    /// it may.
    pub fn admit(&self, who: Who<'_>, now: Instant) -> Result<(), Duration> {
        let client = match who {
            Who::Address(ip) => Key::Address(ip),
            Who::Value(value) => Key::Value(self.hasher.hash_one(value)),
        };
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
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / self.rate))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Who<'static> {
        Who::Address(IpAddr::from(n.to_be_bytes()))
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
        assert_eq!(Rate::parse("600/m").unwrap().one_second(), 10);
        assert_eq!(Rate::parse("5/h").unwrap().one_second(), 1);
        for bad in ["10", "10/d", "0/s", "-1/s", "x/s", "2000000/s", "/s"] {
            assert!(Rate::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_burst_then_the_rate_and_each_address_on_its_own() {
        let limiter = Limiter::new(Rate::parse("10/s").unwrap(), 2);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.admit(ip(1), t0), Ok(()));
        }
        let wait = limiter.admit(ip(1), t0).unwrap_err();
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-6, "{wait:?}");
        // Another address has its own bucket.
        assert_eq!(limiter.admit(ip(2), t0), Ok(()));
        // A tenth of a second brings one more request back, not two.
        let t1 = t0 + Duration::from_millis(100);
        assert_eq!(limiter.admit(ip(1), t1), Ok(()));
        assert!(limiter.admit(ip(1), t1).is_err());
        // Refusals take nothing: the bucket keeps refilling under them.
        let t2 = t1 + Duration::from_secs(10);
        for _ in 0..3 {
            assert_eq!(limiter.admit(ip(1), t2), Ok(()));
        }
        assert!(limiter.admit(ip(1), t2).is_err());
    }

    #[test]
    fn each_value_has_a_bucket_apart_from_every_address() {
        let limiter = Limiter::new(Rate::parse("1/h").unwrap(), 0);
        let t0 = Instant::now();
        assert_eq!(limiter.admit(Who::Value(b"alice"), t0), Ok(()));
        assert!(limiter.admit(Who::Value(b"alice"), t0).is_err());
        assert_eq!(limiter.admit(Who::Value(b"bob"), t0), Ok(()));
        assert_eq!(limiter.admit(ip(1), t0), Ok(()));
        assert!(limiter.admit(ip(1), t0).is_err());
        assert_eq!(limiter.clients(), 3);
    }

    /// What `rate_limit_key = setting` counts `request` (a head's text
    /// after the request line) by: `None` for its address.
    fn key(setting: &str, target: &str, fields: &str) -> Option<String> {
        use crate::http::head::{parse_request, RequestLimits};
        let text = format!("GET {target} HTTP/1.1\r\nHost: h\r\n{fields}\r\n");
        let head = parse_request(text.as_bytes(), &RequestLimits::default()).unwrap();
        let on = HashOn::parse(setting).unwrap();
        key_in(&on, &head).map(|k| String::from_utf8(k).unwrap())
    }

    #[test]
    fn a_key_is_read_as_a_backend_reads_it_and_only_when_it_is_one() {
        let alice = Some("alice".to_string());
        // A query parameter, decoded as forms are, its name too.
        for target in [
            "/?key=alice",
            "/?key=%61lice",
            "/?k%65y=al%69ce",
            "/?x=1;key=alice",
        ] {
            assert_eq!(key("query:key", target, ""), alice, "{target}");
        }
        assert_eq!(key("query:key", "/?key=a+b", ""), Some("a b".into()));
        // Twice (a backend may read either), empty, or absent: by address.
        for target in [
            "/?key=j1&key=alice",
            "/?key=alice&k%65y=x",
            "/?key=",
            "/?keys=alice",
            "/",
        ] {
            assert_eq!(key("query:key", target, ""), None, "{target}");
        }
        // A cookie, without its quotes or spaces; twice, by address.
        for cookies in [
            "session=alice",
            "session=\"alice\"",
            "a=1; session = alice ",
        ] {
            let field = format!("Cookie: {cookies}\r\n");
            assert_eq!(key("cookie:session", "/", &field), alice, "{cookies}");
        }
        let twice = "Cookie: session=j1\r\nCookie: session=alice\r\n";
        assert_eq!(key("cookie:session", "/", twice), None);
        // A field, under any name a backend reads as its own; twice, by
        // address.
        assert_eq!(
            key("header:X-Api-Key", "/", "x-api-key:  alice \r\n"),
            alice
        );
        assert_eq!(key("header:X-Api-Key", "/", "X_Api_Key: alice\r\n"), alice);
        let both = "X-Api-Key: j1\r\nX_Api_Key: alice\r\n";
        assert_eq!(key("header:X-Api-Key", "/", both), None);
    }

    #[test]
    fn the_table_stays_bounded_and_forgets_refilled_addresses_first() {
        let limiter = Limiter::new(Rate::parse("1/h").unwrap(), 0);
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
        assert_eq!(limiter.admit(ip(u32::MAX), t1), Ok(()));
        assert!(limiter.admit(ip(u32::MAX), t1).is_err());
    }
}
