//! Targets written `srv:NAME`: the SRV records of NAME (RFC 2782), as
//! Consul, Nomad and Kubernetes publish a service's instances, each the
//! address and port of one. The query goes to one DNS server (`resolver`,
//! else the first `nameserver` of resolv.conf), over UDP, and again over
//! TCP when the reply comes back truncated (RFC 1035 §4.2.2, RFC 7766).
//!
//! As nginx Plus's `service=` takes them: the records of the lowest
//! priority (of those that give an address) give the primary addresses,
//! those of every other priority the fallback, used as `backup` targets
//! are; each address has its
//! record's weight (see `Target::at` for what `weight=` and `backup`
//! written for the name make of them). A record's host is found among
//! the reply's additional records, else asked of the system resolver,
//! as a target written as a name is; one that does not resolve is left
//! out, with a warning, while another gives an address.
//!
//! Everything is bounded: [`TRY_TIMEOUT`] a try, [`TRIES`] tries, a
//! reply of at most [`MAX_REPLY`] bytes, [`MAX_HOST_LOOKUPS`] hosts asked
//! of the system resolver.

use super::message::{self, parse_reply, Reply, ReplyError, Srv};
use super::random_id;
use crate::config::{Found, MAX_WEIGHT};
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// How long one try may take: a datagram sent and its reply waited for,
/// or a TCP connection made, the query sent and the reply read.
pub const TRY_TIMEOUT: Duration = Duration::from_secs(2);
/// Tries over UDP before giving up, each with a new ID: a datagram or its
/// reply may be lost.
pub const TRIES: usize = 2;
/// The longest reply read: the most a TCP message's length can say, and
/// more than a datagram can carry.
pub const MAX_REPLY: usize = 65_535;
/// The most hosts of one name asked of the system resolver (those the
/// reply gave addresses for cost nothing): each lookup may block for
/// seconds, and a name uses at most 64 addresses anyway.
pub const MAX_HOST_LOOKUPS: usize = 64;
/// The port DNS servers listen on.
pub const DNS_PORT: u16 = 53;
/// Where the system's DNS servers are written, as the C library reads them.
const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The most of resolv.conf read: it is a few lines.
const MAX_RESOLV_CONF: u64 = 64 * 1024;

/// What a lookup of a target's name gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Answer {
    pub found: Vec<Found>,
    /// How long, in seconds, the answer may be kept (see
    /// [`Reply::ttl`]); `None` where the resolver does not say, as the
    /// system resolver does not.
    pub ttl: Option<u32>,
}

impl From<Vec<Found>> for Answer {
    fn from(found: Vec<Found>) -> Answer {
        Answer { found, ttl: None }
    }
}

/// Every address the SRV records of `name` give, each with its record's
/// weight and priority, the primaries first but otherwise in no
/// particular order (see `config::addresses_of`), asked of `server`, or of
/// the first `nameserver` of resolv.conf (read now) when `None`; never
/// none. With the reply's TTL: a host whose addresses it does not give
/// is looked up by the system resolver, which says no TTL, so the
/// reply's records alone count.
pub fn lookup(name: &str, server: Option<SocketAddr>) -> io::Result<Answer> {
    let server = match server {
        Some(server) => server,
        None => system_nameserver()?,
    };
    let reply = ask(name, server)?;
    let found = addresses(name, &reply, &|host, port| {
        crate::config::lookup(host, port)
    })?;
    Ok(Answer {
        found,
        ttl: reply.ttl,
    })
}

/// The first `nameserver` of resolv.conf.
fn system_nameserver() -> io::Result<SocketAddr> {
    let mut text = String::new();
    std::fs::File::open(RESOLV_CONF)
        .and_then(|f| f.take(MAX_RESOLV_CONF).read_to_string(&mut text))
        .map_err(|e| io::Error::new(e.kind(), format!("{RESOLV_CONF}: {e} (set `resolver`)")))?;
    first_nameserver(&text)
        .map_err(|m| io::Error::new(io::ErrorKind::NotFound, format!("{RESOLV_CONF}: {m}")))
}

/// The first `nameserver` line of resolv.conf's `text`, at port 53.
pub fn first_nameserver(text: &str) -> Result<SocketAddr, String> {
    for line in text.lines() {
        let line = line.split(['#', ';']).next().unwrap_or_default();
        let mut words = line.split_whitespace();
        if words.next() != Some("nameserver") {
            continue;
        }
        let Some(addr) = words.next() else {
            continue;
        };
        if addr.contains('%') {
            return Err(format!(
                "its first nameserver, `{addr}`, is an IPv6 address with a zone, which is not \
                 supported: set `resolver` to a DNS server's address"
            ));
        }
        return addr
            .parse::<IpAddr>()
            .map(|ip| SocketAddr::new(ip, DNS_PORT))
            .map_err(|_| format!("its first nameserver, `{addr}`, is not an IP address"));
    }
    Err("no nameserver: set `resolver` to a DNS server's address".into())
}

/// The reply of `server` to the SRV query for `name`: over UDP, tried
/// again on a timeout, and over TCP when it is truncated.
pub fn ask(name: &str, server: SocketAddr) -> io::Result<Reply> {
    let mut tries = 0;
    loop {
        tries += 1;
        let id = random_id();
        let query = message::query(id, name).map_err(invalid_input)?;
        match over_udp(&query, id, name, server, TRY_TIMEOUT) {
            Ok(reply) if reply.truncated => {
                let id = random_id();
                let query = message::query(id, name).map_err(invalid_input)?;
                return over_tcp(&query, id, name, server, TRY_TIMEOUT);
            }
            Ok(reply) => return Ok(reply),
            Err(e) if e.kind() == io::ErrorKind::TimedOut && tries < TRIES => continue,
            Err(e) => return Err(e),
        }
    }
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// A reply's fault as an error: none of its records is used.
fn refused(server: SocketAddr, e: ReplyError) -> io::Error {
    let (kind, message) = match e {
        ReplyError::NoSuchName => (
            io::ErrorKind::NotFound,
            format!("no SRV records ({server} knows no such name)"),
        ),
        ReplyError::Refused(_) => (io::ErrorKind::Other, format!("{server}: {e}")),
        _ => (io::ErrorKind::InvalidData, format!("{server}: {e}")),
    };
    io::Error::new(kind, message)
}

fn late(server: SocketAddr, within: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("{server}: no reply within {within:?}"),
    )
}

/// What a failed read from `server` means: nothing (`None`: interrupted,
/// read again), the try's time spent, or the error as it came.
fn read_failed(e: io::Error, server: SocketAddr, within: Duration) -> Option<io::Error> {
    match e.kind() {
        io::ErrorKind::Interrupted => None,
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Some(late(server, within)),
        _ => Some(io::Error::new(e.kind(), format!("{server}: {e}"))),
    }
}

/// What is left of `within` from `started`, or the timeout's error.
fn left(started: Instant, within: Duration, server: SocketAddr) -> io::Result<Duration> {
    Some(within.saturating_sub(started.elapsed()))
        .filter(|d| !d.is_zero())
        .ok_or_else(|| late(server, within))
}

/// One try over UDP. Datagrams that are not the reply (another ID, or
/// question: late replies to a try before, or forged) are passed over,
/// and the reply waited for until `within` is spent; a socket connected
/// to `server` takes datagrams from it alone, and hears of a server that
/// is not there (ICMP port unreachable) as an error.
fn over_udp(
    query: &[u8],
    id: u16,
    name: &str,
    server: SocketAddr,
    within: Duration,
) -> io::Result<Reply> {
    let started = Instant::now();
    let io = |e: io::Error| io::Error::new(e.kind(), format!("{server}: {e}"));
    let local = match server {
        SocketAddr::V4(_) => SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
        SocketAddr::V6(_) => SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
    };
    let socket = UdpSocket::bind(local).map_err(io)?;
    socket.connect(server).map_err(io)?;
    socket.send(query).map_err(io)?;
    let mut buffer = vec![0u8; MAX_REPLY];
    loop {
        socket
            .set_read_timeout(Some(left(started, within, server)?))
            .map_err(io)?;
        let n = match socket.recv(&mut buffer) {
            Ok(n) => n,
            Err(e) => match read_failed(e, server, within) {
                None => continue,
                Some(e) => return Err(e),
            },
        };
        match parse_reply(&buffer[..n], id, name) {
            Err(e) if e.is_anothers() => continue,
            reply => return reply.map_err(|e| refused(server, e)),
        }
    }
}

/// One try over TCP (RFC 1035 §4.2.2: each message after its length in
/// two bytes), all within `within`: a server that sends its reply a byte
/// at a time is not waited for longer than one that sends nothing. Here
/// the connection is the server's alone: a reply that is not this
/// query's is an error.
fn over_tcp(
    query: &[u8],
    id: u16,
    name: &str,
    server: SocketAddr,
    within: Duration,
) -> io::Result<Reply> {
    let started = Instant::now();
    let io = |e: io::Error| io::Error::new(e.kind(), format!("{server} over TCP: {e}"));
    let mut stream = TcpStream::connect_timeout(&server, within).map_err(io)?;
    stream
        .set_write_timeout(Some(left(started, within, server)?))
        .map_err(io)?;
    let length =
        u16::try_from(query.len()).map_err(|_| invalid_input("a query too long".into()))?;
    let mut framed = length.to_be_bytes().to_vec();
    framed.extend_from_slice(query);
    stream.write_all(&framed).map_err(io)?;
    let mut read_exact = |out: &mut [u8]| -> io::Result<()> {
        let mut at = 0;
        while at < out.len() {
            stream.set_read_timeout(Some(left(started, within, server)?))?;
            match stream.read(&mut out[at..]) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("{server} over TCP: closed before its reply"),
                    ))
                }
                Ok(n) => at += n,
                Err(e) => {
                    if let Some(e) = read_failed(e, server, within) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    };
    let mut length = [0u8; 2];
    read_exact(&mut length)?;
    // At most MAX_REPLY, as two bytes can say no more.
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(length))];
    read_exact(&mut reply)?;
    let reply = parse_reply(&reply, id, name).map_err(|e| refused(server, e))?;
    if reply.truncated {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{server}: a reply truncated over TCP too"),
        ));
    }
    Ok(reply)
}

/// The records `reply` gives that are used: each host and port once, of
/// the lowest priority it is given with, and of its largest weight
/// there; sorted by priority, then host and port, so that the order a
/// server shuffles them in does not matter and the primaries' hosts are
/// looked up first.
pub fn used_records(reply: &Reply) -> Vec<&Srv> {
    let mut used: Vec<&Srv> = reply.records.iter().collect();
    used.sort_by(|a, b| {
        let key = |r: &Srv| (r.priority, std::cmp::Reverse(r.weight));
        ((&a.target, a.port).cmp(&(&b.target, b.port))).then_with(|| key(a).cmp(&key(b)))
    });
    used.dedup_by(|a, b| (&a.target, a.port) == (&b.target, b.port));
    used.sort_by(|a, b| (a.priority, &a.target, a.port).cmp(&(b.priority, &b.target, b.port)));
    used
}

/// The weight of an SRV record's addresses: RFC 2782's 0 ("very small
/// chance of being selected") is the least a target has, 1, and past
/// [`MAX_WEIGHT`] is that, as an agent's is.
pub fn weight_of(record: &Srv) -> u32 {
    u32::from(record.weight).clamp(1, MAX_WEIGHT)
}

/// Whether `host` can be asked of the system resolver: a name of
/// letters, digits, `-` and `_` (a reply's name with any other byte is
/// written with `\DDD`, see [`Srv::target`]).
fn is_host_name(host: &str) -> bool {
    !host.is_empty()
        && host != "."
        && (host.bytes()).all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// The hosts of a name's records that gave no address, each with why.
#[derive(Debug, Default)]
struct Unresolved(Vec<(String, io::Error)>);

impl Unresolved {
    /// `a.test (no address returned), b.test (...)`.
    fn listed(&self) -> String {
        let each: Vec<String> = (self.0.iter())
            .map(|(host, e)| format!("{host} ({e})"))
            .collect();
        each.join(", ")
    }

    /// The error when no record gave an address and these did not
    /// resolve, saying which.
    fn error(mut self) -> io::Error {
        match self.0.len() {
            1 => {
                let (host, e) = self.0.remove(0);
                let message = format!("its SRV record's host {host} does not resolve: {e}");
                io::Error::new(e.kind(), message)
            }
            _ => io::Error::new(
                io::ErrorKind::NotFound,
                format!("no host of its SRV records resolves: {}", self.listed()),
            ),
        }
    }
}

/// The addresses `record` gives at its port: its host's among the
/// additional records of `reply`, else `resolve`'s (the system
/// resolver's), unless `lookups` are spent (`Ok(None)`).
fn addresses_of_record(
    record: &Srv,
    reply: &Reply,
    resolve: &dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
    lookups: &mut usize,
) -> io::Result<Option<Vec<SocketAddr>>> {
    let given: Vec<SocketAddr> = (reply.addresses.iter())
        .filter(|(owner, _)| *owner == record.target)
        .map(|&(_, ip)| SocketAddr::new(ip, record.port))
        .collect();
    if !given.is_empty() {
        return Ok(Some(given));
    }
    if !is_host_name(&record.target) {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "no host name"));
    }
    if *lookups == MAX_HOST_LOOKUPS {
        return Ok(None);
    }
    *lookups += 1;
    match resolve(&record.target, record.port)? {
        // Else it would count as a priority that gives addresses.
        none if none.is_empty() => Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no address returned",
        )),
        addrs => Ok(Some(addrs)),
    }
}

/// The addresses `reply`'s used records give (see [`used_records`]),
/// each at its record's port and with its weight (see [`weight_of`]),
/// `backup` where its priority is above the lowest of those that give
/// one: a fallback whose primaries all went is what is left to use.
///
/// A record whose host is `.` (or whose port is 0) says the service is
/// not available there, and gives none. One whose host does not resolve
/// is left out, with one warning naming every such host of the lookup,
/// so that one instance deregistered but still listed does not take
/// the others away; when no record gives an address, the lookup fails,
/// naming those hosts, as a name that does not resolve (while the proxy
/// runs, the name keeps the addresses it had).
pub fn addresses(
    name: &str,
    reply: &Reply,
    resolve: &dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>>,
) -> io::Result<Vec<Found>> {
    let used = used_records(reply);
    if used.is_empty() {
        return Err(io::Error::new(io::ErrorKind::NotFound, "no SRV records"));
    }
    let mut given: Vec<(&Srv, Vec<SocketAddr>)> = Vec::new();
    let mut unresolved = Unresolved::default();
    let mut lookups = 0;
    let mut not_looked_up = 0;
    for record in used {
        if record.target == "." || record.port == 0 {
            continue;
        }
        match addresses_of_record(record, reply, resolve, &mut lookups) {
            Ok(Some(addrs)) => given.push((record, addrs)),
            Ok(None) => not_looked_up += 1,
            Err(e) => unresolved.0.push((record.target.clone(), e)),
        }
    }
    if not_looked_up > 0 {
        log::warn!(
            "srv:{name}: {not_looked_up} hosts of SRV records not looked up: at most \
             {MAX_HOST_LOOKUPS} are asked of the system resolver for one name (a DNS server \
             that gives their addresses with the records has none looked up)"
        );
    }
    let Some(lowest) = given.iter().map(|(r, _)| r.priority).min() else {
        if !unresolved.0.is_empty() {
            return Err(unresolved.error());
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no address: its SRV records say the service is not available (a host of `.`, or \
             port 0)",
        ));
    };
    if !unresolved.0.is_empty() {
        log::warn!(
            "srv:{name}: the hosts of some of its SRV records do not resolve, and their records \
             are left out: {}",
            unresolved.listed()
        );
    }
    let found = given.into_iter().flat_map(|(record, addrs)| {
        addrs.into_iter().map(move |addr| Found {
            addr,
            weight: Some(weight_of(record)),
            backup: record.priority != lowest,
        })
    });
    Ok(found.collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    fn srv(priority: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight: 7,
            port,
            target: target.into(),
        }
    }

    fn reply(records: Vec<Srv>, addresses: &[(&str, &str)]) -> Reply {
        Reply {
            truncated: false,
            ttl: None,
            records,
            addresses: (addresses.iter())
                .map(|(owner, ip)| (owner.to_string(), ip.parse().unwrap()))
                .collect(),
        }
    }

    fn no_lookup(host: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
        panic!("{host} looked up, though the reply gave its address")
    }

    const NAME: &str = "_http._tcp.app.test";

    /// `addr` as a record of `weight` gives it, a backup or not.
    fn found(addr: &str, weight: u32, backup: bool) -> Found {
        Found {
            addr: addr.parse().unwrap(),
            weight: Some(weight),
            backup,
        }
    }

    fn weighed(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            weight,
            ..srv(priority, port, target)
        }
    }

    #[test]
    fn the_lowest_priority_gives_the_primaries_and_every_other_the_backups() {
        let r = reply(
            vec![
                srv(20, 9000, "standby.test"),
                weighed(10, 3, 8002, "b.test"),
                srv(10, 8001, "a.test"),
                srv(10, 8001, "a.test"),
                weighed(30, 1, 9001, "far.test"),
                // Listed again at a higher priority: a primary still.
                srv(40, 8001, "a.test"),
            ],
            &[
                ("a.test", "10.0.0.1"),
                ("b.test", "10.0.0.2"),
                ("standby.test", "10.0.0.9"),
                ("far.test", "10.0.0.10"),
            ],
        );
        let used: Vec<(u16, u16, &str)> = (used_records(&r).iter())
            .map(|s| (s.priority, s.port, &*s.target))
            .collect();
        assert_eq!(
            used,
            [
                (10, 8001, "a.test"),
                (10, 8002, "b.test"),
                (20, 9000, "standby.test"),
                (30, 9001, "far.test")
            ]
        );
        assert_eq!(
            addresses(NAME, &r, &no_lookup).unwrap(),
            [
                found("10.0.0.1:8001", 7, false),
                found("10.0.0.2:8002", 3, false),
                found("10.0.0.9:9000", 7, true),
                found("10.0.0.10:9001", 1, true),
            ]
        );
    }

    #[test]
    fn a_weight_of_0_is_1_and_one_past_the_most_a_target_has_is_that() {
        let r = reply(
            vec![
                weighed(1, 0, 8001, "a.test"),
                weighed(1, 1, 8002, "a.test"),
                weighed(1, u16::MAX, 8003, "a.test"),
                weighed(1, 10_000, 8004, "a.test"),
            ],
            &[("a.test", "10.0.0.1")],
        );
        let weights: Vec<Option<u32>> = (addresses(NAME, &r, &no_lookup).unwrap().iter())
            .map(|f| f.weight)
            .collect();
        assert_eq!(weights, [Some(1), Some(1), Some(MAX_WEIGHT), Some(10_000)]);
    }

    #[test]
    fn an_address_given_by_several_records_is_used_once_as_the_best_of_them() {
        // Two hosts at one address: a primary and a backup record, and
        // two records of the lowest priority with weights 2 and 5.
        let r = reply(
            vec![
                weighed(1, 2, 8001, "a.test"),
                weighed(1, 5, 8001, "a-again.test"),
                weighed(2, 9, 8001, "a-standby.test"),
                weighed(2, 4, 8002, "b.test"),
                weighed(3, 6, 8002, "b-far.test"),
            ],
            &[
                ("a.test", "10.0.0.1"),
                ("a-again.test", "10.0.0.1"),
                ("a-standby.test", "10.0.0.1"),
                ("b.test", "10.0.0.2"),
                ("b-far.test", "10.0.0.2"),
            ],
        );
        let used = crate::config::addresses_of(addresses(NAME, &r, &no_lookup).unwrap()).used;
        assert_eq!(
            used,
            [
                found("10.0.0.1:8001", 5, false),
                found("10.0.0.2:8002", 6, true)
            ],
            "the larger weight of one priority; a primary over a backup"
        );
    }

    #[test]
    fn a_host_not_among_the_additional_records_is_asked_of_the_system_resolver() {
        let r = reply(
            vec![srv(1, 8001, "a.test"), srv(1, 8002, "b.test")],
            &[("a.test", "10.0.0.1"), ("a.test", "fd00::1")],
        );
        let asked = std::cell::RefCell::new(Vec::new());
        let resolve = |host: &str, port: u16| -> io::Result<Vec<SocketAddr>> {
            asked.borrow_mut().push(host.to_string());
            Ok(vec![SocketAddr::from(([10, 0, 0, 2], port))])
        };
        let addrs: Vec<SocketAddr> = (addresses(NAME, &r, &resolve).unwrap().iter())
            .map(|f| f.addr)
            .collect();
        assert_eq!(
            addrs,
            ["10.0.0.1:8001", "[fd00::1]:8001", "10.0.0.2:8002"].map(|a| a.parse().unwrap())
        );
        assert_eq!(*asked.borrow(), ["b.test"]);
    }

    fn fail(_: &str, _: u16) -> io::Result<Vec<SocketAddr>> {
        Err(io::Error::new(
            io::ErrorKind::NotFound,
            "no address returned",
        ))
    }

    #[test]
    fn a_host_that_does_not_resolve_is_left_out_with_a_warning_naming_it() {
        let r = reply(
            vec![
                srv(1, 8001, "a.test"),
                srv(1, 8002, "gone.test"),
                srv(1, 8003, "gone-too.test"),
                srv(2, 9000, "standby.test"),
            ],
            &[("a.test", "10.0.0.1"), ("standby.test", "10.0.0.9")],
        );
        let (answer, logged) = crate::test_log::logged(|| addresses(NAME, &r, &fail));
        assert_eq!(
            answer.unwrap(),
            [
                found("10.0.0.1:8001", 7, false),
                found("10.0.0.9:9000", 7, true)
            ]
        );
        assert_eq!(
            logged,
            [format!(
                "WARN srv:{NAME}: the hosts of some of its SRV records do not resolve, and their \
                 records are left out: gone-too.test (no address returned), gone.test (no \
                 address returned)"
            )],
            "once for the lookup"
        );
        // Those of the lowest priority all gone: the next is the primary.
        let r = reply(
            vec![srv(1, 8002, "gone.test"), srv(2, 9000, "standby.test")],
            &[("standby.test", "10.0.0.9")],
        );
        assert_eq!(
            addresses(NAME, &r, &fail).unwrap(),
            [found("10.0.0.9:9000", 7, false)]
        );
        // So when the system resolver answers with no address.
        let nothing = |_: &str, _: u16| -> io::Result<Vec<SocketAddr>> { Ok(Vec::new()) };
        assert_eq!(
            addresses(NAME, &r, &nothing).unwrap(),
            [found("10.0.0.9:9000", 7, false)]
        );
    }

    #[test]
    fn when_no_host_resolves_the_lookup_fails_naming_them() {
        let one = reply(vec![srv(1, 8001, "a.test"), srv(1, 8002, ".")], &[]);
        let e = addresses(NAME, &one, &fail).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(
            e.to_string(),
            "its SRV record's host a.test does not resolve: no address returned"
        );
        let two = reply(vec![srv(1, 8001, "a.test"), srv(2, 8002, "b.test")], &[]);
        let e = addresses(NAME, &two, &fail).unwrap_err();
        assert_eq!(
            e.to_string(),
            "no host of its SRV records resolves: a.test (no address returned), b.test (no \
             address returned)"
        );
        // A host with a byte no host name has is not asked for.
        let r = reply(vec![srv(1, 80, "a\\032b.test")], &[]);
        let e = addresses(NAME, &r, &no_lookup).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("a\\032b.test does not resolve: no host name"),
            "{e}"
        );
    }

    #[test]
    fn a_host_of_a_dot_is_no_address_and_none_at_all_is_an_error() {
        let r = reply(
            vec![
                srv(1, 8001, "."),
                srv(1, 8002, "a.test"),
                srv(0, 0, "b.test"),
            ],
            &[("a.test", "10.0.0.1"), ("b.test", "10.0.0.2")],
        );
        // Priority 0's one record, port 0, gives nothing: priority 1's
        // are the primaries.
        assert_eq!(
            addresses(NAME, &r, &no_lookup).unwrap(),
            [found("10.0.0.1:8002", 7, false)]
        );
        let r = reply(vec![srv(1, 8001, "."), srv(2, 0, "b.test")], &[]);
        let e = addresses(NAME, &r, &no_lookup).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert!(e.to_string().contains("not available"), "{e}");
        let none = addresses(NAME, &reply(Vec::new(), &[]), &no_lookup).unwrap_err();
        assert_eq!(none.to_string(), "no SRV records");
    }

    #[test]
    fn resolv_conf_gives_its_first_nameserver() {
        let conf = "# generated\nsearch example.test\n; old\nnameserver 10.0.0.53 # here\n\
                    nameserver 10.0.0.54\n";
        assert_eq!(first_nameserver(conf), Ok("10.0.0.53:53".parse().unwrap()));
        assert_eq!(
            first_nameserver("nameserver ::1\n"),
            Ok("[::1]:53".parse().unwrap())
        );
        let e = first_nameserver("nameserver fe80::1%eth0\n").unwrap_err();
        assert!(e.contains("with a zone"), "{e}");
        let e = first_nameserver("search example.test\n").unwrap_err();
        assert!(e.contains("no nameserver"), "{e}");
        let e = first_nameserver("nameserver dns.example\n").unwrap_err();
        assert!(e.contains("not an IP address"), "{e}");
    }

    /// A server on loopback that answers one UDP query truncated (and
    /// first a stray datagram with another ID), and the TCP query with
    /// `records`: the client asks again over TCP, and takes that.
    #[test]
    fn a_truncated_reply_is_asked_again_over_tcp() {
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let server = udp.local_addr().unwrap();
        let Ok(tcp) = TcpListener::bind(server) else {
            // The port is another's for TCP: nothing to test with it.
            return;
        };
        let answer = |query: &[u8], flags: u16, records: &[u8], count: u16| -> Vec<u8> {
            // The question ends the query; header and question echoed.
            let mut m = query.to_vec();
            m[2..4].copy_from_slice(&(0x8180u16 | flags).to_be_bytes());
            m[6..8].copy_from_slice(&count.to_be_bytes());
            m.extend_from_slice(records);
            m
        };
        let udp_thread = std::thread::spawn(move || {
            let mut buf = [0u8; 512];
            let (n, from) = udp.recv_from(&mut buf).unwrap();
            let query = &buf[..n];
            let mut stray = answer(query, 0, b"", 0);
            stray[0] ^= 0xff;
            udp.send_to(&stray, from).unwrap();
            udp.send_to(&answer(query, 0x0200, b"", 0), from).unwrap();
        });
        let tcp_thread = std::thread::spawn(move || {
            let (mut stream, _) = tcp.accept().unwrap();
            let mut length = [0u8; 2];
            stream.read_exact(&mut length).unwrap();
            let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
            stream.read_exact(&mut query).unwrap();
            // SRV 1 1 8001 h., then A h. 10.0.0.1.
            let mut records = vec![
                0xc0, 12, 0, 33, 0, 1, 0, 0, 0, 60, 0, 9, 0, 1, 0, 1, 0x1f, 0x41,
            ];
            records.extend_from_slice(b"\x01h\x00");
            let mut reply = answer(&query, 0, &records, 1);
            reply[10..12].copy_from_slice(&1u16.to_be_bytes());
            reply.extend_from_slice(
                b"\x01h\x00\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\x0a\x00\x00\x01",
            );
            let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&reply);
            stream.write_all(&framed).unwrap();
        });
        let reply = ask(NAME, server).unwrap();
        udp_thread.join().unwrap();
        tcp_thread.join().unwrap();
        assert_eq!(
            reply.records,
            [srv(1, 8001, "h")].map(|s| Srv { weight: 1, ..s })
        );
        assert_eq!(
            addresses(NAME, &reply, &no_lookup).unwrap(),
            [found("10.0.0.1:8001", 1, false)]
        );
    }

    #[test]
    fn a_server_that_is_not_there_is_an_error_not_a_wait() {
        // A port just let go: the ICMP port unreachable ends the try.
        let gone = UdpSocket::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let e = ask("_http._tcp.app.test", gone).unwrap_err();
        assert!(e.to_string().starts_with(&gone.to_string()), "{e}");
    }
}
