//! `stream.<name> = <pool> listen=[ADDR:]PORT udp`: datagrams relayed to
//! a target of a pool, as nginx's `listen ... udp` in a `stream` block
//! does (DNS, syslog, RADIUS, game servers).
//!
//! Each client address (its address and port) is a session. Its first
//! datagram picks a target: the pool's balancer (by the client's address
//! for `ip_hash`), past a target at its `max_conns` (a datagram waits in
//! no queue: with none free, it is dropped). The session's own socket,
//! connected to that target, carries the client's datagrams there and the
//! target's back, each whole and as it came, sent from the stream's
//! address (on a wildcard, the one the session's first datagram came to:
//! `destination`). A session ends once the target has answered each of the
//! client's datagrams with `responses=` of its own; when nothing has
//! passed either way for the stream's timeout (owing answers, that counts
//! as the target's failure, toward its `max_fails`); or when the target
//! refuses datagrams (an ICMP port unreachable: a failure too). The next
//! datagram from that client begins a new session, as does the one after
//! the `requests=` a session takes (the session then waiting for its
//! answers alone). One access-log line a session: `UDP <name>`.
//!
//! One thread serves a stream: it waits (`poll`) for the stream's socket
//! and every session's at once, as nginx's event loop does, and passes on
//! what each has. A session costs a socket and a table entry, no thread:
//! at most `max_connections` sessions a stream.

mod destination;

use super::origin::fail_for_stream;
use super::{Current, Shared};
use crate::access_log::{By, Record, Stage, Termination};
use crate::config::StreamListener;
use crate::poll::{poll, pollfd};
use crate::throttle::OnceAMinute;
use crate::upstream::{Held, Pick, Upstream};
use crate::upstream_tries::UpstreamTry;
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

/// The largest datagram UDP carries (over IPv4; IPv6's jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;

/// The longest the stream's thread waits before it looks whether the
/// stream is stopping.
const STEP: Duration = Duration::from_millis(250);

/// Datagrams taken from one socket before the others have their turn.
const BURST: usize = 64;

/// The access log's request line for a session of `stream.<name>`.
pub fn request_line(name: &str) -> String {
    format!("UDP {name}")
}

/// A `udp` stream being served: the thread that relays its datagrams.
pub struct UdpStream {
    local: Option<SocketAddr>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpStream {
    /// Serves `stream.<name>`'s datagrams arriving at `socket`, by the
    /// settings `current` holds when each session begins.
    pub fn start(socket: UdpSocket, name: Arc<str>, current: Arc<Current>) -> io::Result<Self> {
        socket.set_nonblocking(true)?;
        let local = socket.local_addr().ok();
        if local.is_some_and(|l| l.ip().is_unspecified()) {
            destination::tell_destinations(&socket)?;
        }
        let stopping = Arc::new(AtomicBool::new(false));
        let mut relay = Relay {
            socket,
            local,
            name,
            current,
            stopping: Arc::clone(&stopping),
            sessions: Vec::new(),
            by_client: HashMap::new(),
            next_quiet: None,
            datagram: vec![0; MAX_DATAGRAM].into_boxed_slice(),
        };
        let thread = std::thread::Builder::new()
            .name("udp".into())
            .spawn(move || relay.run())?;
        Ok(UdpStream {
            local,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local
    }
}

/// Dropped, it takes no more datagrams, and ends its sessions (each
/// logged) within a step of its wait.
impl Drop for UdpStream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A stream's thread and what it serves.
struct Relay {
    socket: UdpSocket,
    /// Its address: each session's `$server_addr` but on a wildcard,
    /// where it is the address the client's first datagram came to.
    local: Option<SocketAddr>,
    name: Arc<str>,
    current: Arc<Current>,
    stopping: Arc<AtomicBool>,
    sessions: Vec<Session>,
    /// Each session's index in `sessions`, by its client's address: those
    /// that take the client's next datagram (not those full under
    /// `requests=`, which wait for their answers alone).
    by_client: HashMap<SocketAddr, usize>,
    /// No session's quiet time ends before this; `None` without sessions.
    next_quiet: Option<Instant>,
    /// Where each datagram is read, either way.
    datagram: Box<[u8]>,
}

/// One client address's session.
struct Session {
    client: SocketAddr,
    /// The address its answers leave from, on a wildcard: the one the
    /// client's first datagram came to.
    reply_from: Option<IpAddr>,
    /// Connected to the target.
    socket: UdpSocket,
    /// The target, by its pool's index and its own there.
    pool: usize,
    target: usize,
    /// `responses=`: the target's datagrams each of the client's is owed.
    per_request: Option<u32>,
    /// `requests=`: the client's datagrams it takes.
    most_requests: Option<u32>,
    /// How long it may stay quiet both ways.
    idle: Duration,
    /// Datagrams and bytes from the client sent on to the target.
    requests: u64,
    received: u64,
    /// Datagrams from the target, and the bytes of them sent on to the
    /// client.
    answers: u64,
    answer_bytes: u64,
    began: Instant,
    /// When a datagram last passed either way.
    last: Instant,
    record: Record,
    /// The settings it began under.
    shared: Arc<Shared>,
    _in_flight: Held,
}

impl Session {
    /// Sends the client's `datagram` on (one that cannot be sent is lost,
    /// as a datagram may be).
    fn forward(&mut self, datagram: &[u8], now: Instant) {
        if self.socket.send(datagram).is_ok() {
            self.requests += 1;
            self.received += datagram.len() as u64;
            self.last = now;
        }
    }

    /// Whether the target has given every answer owed under `responses=`
    /// (without it, never).
    fn answered(&self) -> bool {
        (self.per_request).is_some_and(|n| self.answers >= u64::from(n) * self.requests)
    }

    /// Whether it has taken all the client's datagrams it may: the
    /// client's next one begins another session.
    fn full(&self) -> bool {
        (self.most_requests).is_some_and(|n| self.requests >= u64::from(n))
    }

    /// Whether answers are owed that have not come.
    fn owes(&self) -> bool {
        self.per_request.is_some() && !self.answered()
    }

    /// The status of a session its target failed: 502 when it answered
    /// nothing, else 200 for what it answered.
    fn failed_status(&self) -> u16 {
        match self.answers {
            0 => 502,
            _ => 200,
        }
    }

    fn quiet_until(&self) -> Instant {
        self.last + self.idle
    }

    fn target(&self) -> &Upstream {
        &self.shared.pools.get(self.pool).targets()[self.target]
    }

    /// Its target's failure: `what` it did.
    fn failed(&self, what: &str) {
        let client = super::canonical(self.client);
        fail_for_stream(self.target(), what, client.ip());
    }
}

/// A session's socket toward its target, the target (by index in the
/// stream's pool) and what holds its place there.
struct Begun {
    socket: UdpSocket,
    target: usize,
    in_flight: Held,
}

impl Relay {
    /// Relays datagrams both ways until the stream stops, then ends the
    /// sessions open.
    fn run(&mut self) {
        let mut polled = Vec::new();
        while !self.stopping.load(Ordering::SeqCst) {
            polled.clear();
            polled.push(pollfd(self.socket.as_raw_fd(), libc::POLLIN));
            (polled)
                .extend((self.sessions.iter()).map(|s| pollfd(s.socket.as_raw_fd(), libc::POLLIN)));
            let now = Instant::now();
            let wait =
                (self.next_quiet).map_or(STEP, |at| at.saturating_duration_since(now).min(STEP));
            if let Err(e) = poll(&mut polled, wait) {
                static FAILING: OnceAMinute = OnceAMinute::new();
                if FAILING.due() {
                    log::warn!(
                        "stream.{}: cannot wait for datagrams: {e} (said at most once a minute)",
                        self.name
                    );
                }
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            // The last first: a session that ends takes the place of the
            // last, whose turn has passed.
            for i in (0..self.sessions.len()).rev() {
                if polled[i + 1].revents != 0 {
                    self.pass_answers(i);
                }
            }
            if polled[0].revents != 0 {
                self.take_datagrams();
            }
            if self.next_quiet.is_some_and(|at| Instant::now() >= at) {
                self.end_quiet();
            }
        }
        for i in (0..self.sessions.len()).rev() {
            self.end(i, Termination::new(By::Killed, Stage::Data), 200);
        }
    }

    /// Takes the clients' datagrams waiting (up to a burst), each sent on
    /// in its session, a new one for a client without one.
    fn take_datagrams(&mut self) {
        for _ in 0..BURST {
            let (length, client, to) = match destination::receive(&self.socket, &mut self.datagram)
            {
                Ok(received) => received,
                Err(e) if is_quiet(&e) => return,
                Err(e) => {
                    static FAILING: OnceAMinute = OnceAMinute::new();
                    if FAILING.due() {
                        log::warn!(
                            "stream.{}: cannot read a datagram: {e} (said at most once a minute)",
                            self.name
                        );
                    }
                    return;
                }
            };
            let now = Instant::now();
            match self.by_client.get(&client) {
                Some(&i) => {
                    let session = &mut self.sessions[i];
                    session.forward(&self.datagram[..length], now);
                    if session.full() {
                        self.by_client.remove(&client);
                    }
                }
                None => self.begin(client, to, length, now),
            }
        }
    }

    /// A new session for `client`, its first datagram (the first `length`
    /// bytes read, sent `to` that address when the kernel told it) sent
    /// on: or, when none can begin, the datagram dropped and its refusal
    /// logged.
    fn begin(&mut self, client: SocketAddr, to: Option<IpAddr>, length: usize, now: Instant) {
        let shared = self.current.get();
        let Some(stream) = shared.config.stream_named(&self.name).filter(|s| s.udp) else {
            return;
        };
        if self.sessions.len() >= shared.config.max_connections {
            static FULL: OnceAMinute = OnceAMinute::new();
            if FULL.due() {
                log::warn!(
                    "stream.{}: max_connections sessions open: datagrams from new clients are \
                     dropped (said at most once a minute)",
                    self.name
                );
            }
            return;
        }
        let server = match (to, self.local) {
            (Some(ip), Some(local)) => super::canonical(SocketAddr::new(ip, local.port())),
            (_, local) => local.unwrap_or(client),
        };
        // An IPv4 client of a socket on `::` is written as IPv4, as a TCP
        // one is, for the access lists, `ip_hash` and the log.
        let source = super::canonical(client);
        let mut record = Record::refused(
            SystemTime::now(),
            source,
            server,
            request_line(&self.name),
            0,
            Duration::ZERO,
        );
        record.pool = Some(stream.pool_name.clone());
        let Begun {
            socket,
            target,
            in_flight,
        } = match pick(stream, source, &shared, &mut record) {
            Ok(begun) => begun,
            Err((status, termination)) => {
                record.status = status;
                record.termination = termination;
                record.request_length = Some(length as u64);
                self.ended(record, &shared, None);
                return;
            }
        };
        if let Some(stats) = shared.metrics.stream(&self.name) {
            stats.open.fetch_add(1, Ordering::Relaxed);
        }
        let mut session = Session {
            client,
            reply_from: to,
            socket,
            pool: stream.pool,
            target,
            per_request: stream.responses,
            most_requests: stream.requests,
            idle: stream.idle_timeout(shared.config_of_pool(stream.pool)),
            requests: 0,
            received: 0,
            answers: 0,
            answer_bytes: 0,
            began: now,
            last: now,
            record,
            shared: Arc::clone(&shared),
            _in_flight: in_flight,
        };
        session.forward(&self.datagram[..length], now);
        let until = session.quiet_until();
        self.next_quiet = Some(self.next_quiet.map_or(until, |at| at.min(until)));
        let answered = session.answered();
        if !session.full() {
            self.by_client.insert(client, self.sessions.len());
        }
        self.sessions.push(session);
        if answered {
            // None owed: `responses=0` (syslog), or its datagram could not
            // be sent.
            self.end(self.sessions.len() - 1, Termination::NORMAL, 200);
        }
    }

    /// Sends the target's datagrams waiting for the `i`th session (up to
    /// a burst) on to its client; ends it once they are all it owed, or
    /// when the target refuses its datagrams.
    fn pass_answers(&mut self, i: usize) {
        for _ in 0..BURST {
            let session = &mut self.sessions[i];
            match session.socket.recv(&mut self.datagram) {
                Ok(length) => {
                    if session.answers == 0 {
                        session.target().health.succeeded(session.began);
                    }
                    session.answers += 1;
                    session.last = Instant::now();
                    let answer = &self.datagram[..length];
                    if destination::send(&self.socket, answer, session.reply_from, session.client)
                        .is_ok()
                    {
                        session.answer_bytes += length as u64;
                    }
                    if session.answered() {
                        self.end(i, Termination::NORMAL, 200);
                        return;
                    }
                }
                Err(e) if is_quiet(&e) => return,
                Err(e) => {
                    // ECONNREFUSED: the target's host said no one takes
                    // datagrams at its port.
                    session.failed(&format!("datagrams refused: {e}"));
                    let status = session.failed_status();
                    self.end(i, Termination::new(By::Server, Stage::Data), status);
                    return;
                }
            }
        }
    }

    /// Ends the sessions quiet for their timeout: owing answers, the
    /// target's failure (as nginx counts one under `proxy_responses`).
    fn end_quiet(&mut self) {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        // The last first, as in `run`.
        for i in (0..self.sessions.len()).rev() {
            let session = &self.sessions[i];
            let until = session.quiet_until();
            if now < until {
                next = Some(next.map_or(until, |at| at.min(until)));
            } else if session.owes() {
                session.failed("answered no datagram in time");
                let status = session.failed_status();
                self.end(i, Termination::new(By::ServerTimeout, Stage::Data), status);
            } else {
                self.end(i, Termination::new(By::ClientTimeout, Stage::Data), 200);
            }
        }
        self.next_quiet = next;
    }

    /// Ends the `i`th session, which the last takes the place of, and logs
    /// it: the client's next datagram begins another.
    fn end(&mut self, i: usize, termination: Termination, status: u16) {
        let last = self.sessions.len() - 1;
        let session = self.sessions.swap_remove(i);
        // A session full under `requests=` is no longer its client's.
        if self.by_client.get(&session.client) == Some(&i) {
            self.by_client.remove(&session.client);
        }
        if let Some(moved) = self.sessions.get(i) {
            if let Some(at) = self
                .by_client
                .get_mut(&moved.client)
                .filter(|at| **at == last)
            {
                *at = i;
            }
        }
        let mut record = session.record;
        record.status = status;
        record.termination = termination;
        record.bytes = session.answer_bytes;
        record.request_length = Some(session.received);
        record.last_try.bytes_sent = Some(session.received);
        record.last_try.bytes_received = Some(session.answer_bytes);
        record.last_try.response = Some(session.began.elapsed());
        self.ended(record, &session.shared, Some(session.began));
    }

    /// Logs a session that ended (or never began), counted in the
    /// stream's metrics.
    fn ended(&self, mut record: Record, shared: &Shared, began: Option<Instant>) {
        record.duration = began.map_or(Duration::ZERO, |b| b.elapsed());
        let stats = shared.metrics.stream(&self.name);
        if let Some(stats) = stats.filter(|_| began.is_some()) {
            stats.open.fetch_sub(1, Ordering::Relaxed);
        }
        super::tcp::session_ended(record, stats, shared);
    }
}

/// A target for `client`'s session, its socket connected there; or the
/// status and termination its refusal is logged with.
fn pick(
    stream: &StreamListener,
    client: SocketAddr,
    shared: &Shared,
    record: &mut Record,
) -> Result<Begun, (u16, Termination)> {
    let pool = shared.config_of_pool(stream.pool);
    if !crate::access::admits(client.ip(), &pool.allow_from, &pool.deny_from) {
        shared.metrics.access_denied.fetch_add(1, Ordering::Relaxed);
        return Err((403, Termination::new(By::Proxy, Stage::Request)));
    }
    let upstreams = shared.pools.get(stream.pool);
    let mut tried = vec![false; upstreams.targets().len()];
    let mut retries_left = upstreams.retries();
    let mut failed = false;
    loop {
        let (index, slot) = match upstreams.pick(client.ip(), "", None, &tried, None, None) {
            Pick::Chosen(index, slot) => (index, slot),
            Pick::Full => return Err((503, Termination::new(By::Proxy, Stage::Queue))),
            Pick::Unavailable if !failed => {
                return Err((503, Termination::new(By::Server, Stage::Connect)))
            }
            Pick::Nothing | Pick::Unavailable => {
                return Err((502, Termination::new(By::Server, Stage::Connect)))
            }
        };
        tried[index] = true;
        let target = &upstreams.targets()[index];
        let earlier = std::mem::replace(
            &mut record.last_try,
            UpstreamTry {
                upstream: Some(target.name.clone()),
                connect: Some(Duration::ZERO),
                ..UpstreamTry::default()
            },
        );
        if earlier.upstream.is_some() {
            record.earlier_tries.push(earlier);
        }
        match connected_to(target) {
            Ok(socket) => {
                return Ok(Begun {
                    socket,
                    target: index,
                    in_flight: slot.held_by(&target.stats),
                });
            }
            Err(e) => {
                record.last_try.status = Some(502);
                fail_for_stream(target, &format!("cannot send datagrams: {e}"), client.ip());
                failed = true;
                if retries_left == 0 {
                    return Err((502, Termination::new(By::Server, Stage::Connect)));
                }
                retries_left -= 1;
            }
        }
    }
}

/// A socket of the session's own, connected to `target`: only its
/// datagrams come back through it. It never waits: the stream's thread
/// does, for every socket at once.
fn connected_to(target: &Upstream) -> io::Result<UdpSocket> {
    let Some(addr) = target.addr.tcp() else {
        // Refused by the configuration: a Unix socket takes no datagrams
        // from here.
        return Err(io::ErrorKind::Unsupported.into());
    };
    let socket = match addr {
        SocketAddr::V4(_) => UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?,
        SocketAddr::V6(_) => UdpSocket::bind((Ipv6Addr::UNSPECIFIED, 0))?,
    };
    socket.connect(addr)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A wait that ended with nothing to read.
fn is_quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
