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
//! address. A session ends once the target has answered each of the
//! client's datagrams with `responses=` of its own; when nothing has
//! passed either way for the stream's timeout (owing answers, that counts
//! as the target's failure, toward its `max_fails`); or when the target
//! refuses datagrams (an ICMP port unreachable: a failure too). The next
//! datagram from that client begins a new session. One access-log line a
//! session: `UDP <name>`.
//!
//! One thread takes the stream's datagrams, and one more waits for each
//! session's answers: at most `max_connections` sessions a stream.

use super::origin::fail_for_stream;
use super::{Current, Shared};
use crate::access_log::{By, Record, Stage, Termination};
use crate::config::StreamListener;
use crate::throttle::OnceAMinute;
use crate::upstream::{Held, Pick, Upstream};
use crate::upstream_tries::UpstreamTry;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::{JoinHandle, Scope};
use std::time::{Duration, Instant, SystemTime};

/// The largest datagram UDP carries (over IPv4; IPv6's jumbograms aside).
const MAX_DATAGRAM: usize = 65_535;

/// How often a thread blocked on a socket looks up to see whether the
/// stream is stopping.
const STEP: Duration = Duration::from_millis(250);

/// A session's thread: little is on its stack (a datagram's buffer is on
/// the heap).
const SESSION_STACK: usize = 64 * 1024;

/// Datagram buffers kept between answers: a quiet session holds none.
const MAX_SPARE: usize = 16;

/// How long a session's thread waits for another session once its own
/// has ended: a thread started for each would cost more than the rest of
/// a short session's work (a DNS question and its answer).
const THREAD_KEPT: Duration = Duration::from_secs(10);

/// The access log's request line for a session of `stream.<name>`.
pub fn request_line(name: &str) -> String {
    format!("UDP {name}")
}

/// A `udp` stream being served: the thread taking its datagrams, which
/// serves its sessions.
pub struct UdpStream {
    socket: Arc<UdpSocket>,
    stopping: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl UdpStream {
    /// Serves `stream.<name>`'s datagrams arriving at `socket`, by the
    /// settings `current` holds when each session begins.
    pub fn start(socket: UdpSocket, name: Arc<str>, current: Arc<Current>) -> io::Result<Self> {
        socket.set_read_timeout(Some(STEP))?;
        let socket = Arc::new(socket);
        let stopping = Arc::new(AtomicBool::new(false));
        let relay = Relay {
            local: socket.local_addr().ok(),
            socket: Arc::clone(&socket),
            name,
            current,
            stopping: Arc::clone(&stopping),
            sessions: Mutex::new(HashMap::new()),
            spare: Mutex::new(Vec::new()),
        };
        let thread = std::thread::Builder::new()
            .name("udp".into())
            .spawn(move || relay.run())?;
        Ok(UdpStream {
            socket,
            stopping,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.socket.local_addr().ok()
    }
}

/// Dropped, it takes no more datagrams, and ends its sessions (each
/// logged) within a step of their wait.
impl Drop for UdpStream {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// What the stream's thread, and its sessions', share.
struct Relay {
    socket: Arc<UdpSocket>,
    /// Its address, each session's `$server_addr`.
    local: Option<SocketAddr>,
    name: Arc<str>,
    current: Arc<Current>,
    stopping: Arc<AtomicBool>,
    /// The sessions by client address; one ends by taking itself out.
    sessions: Mutex<HashMap<SocketAddr, Arc<Session>>>,
    /// Buffers for the targets' datagrams, taken while one is passed on.
    spare: Mutex<Vec<Vec<u8>>>,
}

/// One client address's session.
struct Session {
    /// Connected to the target.
    socket: UdpSocket,
    /// Datagrams and bytes from the client, sent on to the target.
    requests: AtomicU64,
    received: AtomicU64,
    /// When a datagram last passed either way, in milliseconds from
    /// `began`.
    last: AtomicU64,
    began: Instant,
}

impl Session {
    fn touch(&self) {
        let since = self.began.elapsed().as_millis();
        self.last
            .store(u64::try_from(since).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last.load(Ordering::Relaxed));
        self.began.elapsed().saturating_sub(last)
    }

    /// Sends the client's `datagram` on (one that cannot be sent is lost,
    /// as a datagram may be). Counted first: its answers may come back
    /// before the count would otherwise have been made.
    fn forward(&self, datagram: &[u8]) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if self.socket.send(datagram).is_err() {
            self.requests.fetch_sub(1, Ordering::Relaxed);
            return;
        }
        let length = datagram.len() as u64;
        self.received.fetch_add(length, Ordering::Relaxed);
        self.touch();
    }

    /// The target's datagrams owed for the client's so far, under
    /// `responses=` (`per_request`).
    fn owed(&self, per_request: Option<u32>) -> Option<u64> {
        per_request.map(|n| u64::from(n) * self.requests.load(Ordering::Relaxed))
    }
}

/// A session begun: its target (by index in the stream's pool) and what
/// holds its place there.
struct Begun {
    session: Arc<Session>,
    target: usize,
    in_flight: Held,
}

/// A session handed to a thread to serve: all it needs, owned.
struct Work {
    session: Arc<Session>,
    answers: Answers,
    record: Record,
    shared: Arc<Shared>,
    _in_flight: Held,
}

impl Relay {
    /// Takes datagrams until the stream stops; each session is served on
    /// a thread of its own (one idle after an earlier session, or a new
    /// one), which this one waits for before it returns.
    fn run(self) {
        let mut datagram = vec![0u8; MAX_DATAGRAM];
        // Of no room: a session goes to a thread that waits for one, or to
        // a new thread.
        let (handoff, idle) = crossbeam_channel::bounded::<Work>(0);
        std::thread::scope(|scope| {
            let threads = Threads {
                scope,
                handoff,
                idle,
            };
            while !self.stopping.load(Ordering::SeqCst) {
                let (length, client) = match self.socket.recv_from(&mut datagram) {
                    Ok(received) => received,
                    Err(e) if is_quiet(&e) => continue,
                    Err(e) => {
                        static FAILING: OnceAMinute = OnceAMinute::new();
                        if FAILING.due() {
                            log::warn!(
                                "stream.{}: cannot read a datagram: {e} (said at most once a \
                                 minute)",
                                self.name
                            );
                        }
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                };
                let datagram = &datagram[..length];
                // Forwarded under the lock: the session cannot end between
                // being found and the datagram going out.
                {
                    let sessions = self.sessions.lock();
                    if let Some(session) = sessions.get(&client) {
                        session.forward(datagram);
                        continue;
                    }
                }
                self.begin(&threads, client, datagram);
            }
            // The threads waiting for sessions leave once it is gone.
            drop(threads.handoff);
        });
    }

    /// A new session for `client`, its first datagram sent on: or, when
    /// none can begin, the datagram dropped and its refusal logged.
    fn begin<'scope>(
        &'scope self,
        threads: &Threads<'scope, '_>,
        client: SocketAddr,
        datagram: &[u8],
    ) {
        let shared = self.current.get();
        let Some(stream) = shared.config.stream_named(&self.name).filter(|s| s.udp) else {
            return;
        };
        if self.sessions.lock().len() >= shared.config.max_connections {
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
        let server = self.local.unwrap_or(client);
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
            session,
            target,
            in_flight,
        } = match pick(stream, source, &shared, &mut record) {
            Ok(begun) => begun,
            Err((status, termination)) => {
                record.status = status;
                record.termination = termination;
                record.request_length = Some(datagram.len() as u64);
                self.ended(record, &shared, None);
                return;
            }
        };
        let answers = Answers {
            client,
            idle: stream.idle_timeout(shared.config_of_pool(stream.pool)),
            per_request: stream.responses,
            pool: stream.pool,
            target,
        };
        session.forward(datagram);
        self.sessions.lock().insert(client, Arc::clone(&session));
        if let Some(stats) = shared.metrics.stream(&self.name) {
            stats.open.fetch_add(1, Ordering::Relaxed);
        }
        let work = Work {
            session,
            answers,
            record,
            shared,
            _in_flight: in_flight,
        };
        let work = match threads.handoff.try_send(work) {
            Ok(()) => return,
            Err(unsent) => unsent.into_inner(),
        };
        let idle = threads.idle.clone();
        let started = std::thread::Builder::new()
            .name("udp-session".into())
            .stack_size(SESSION_STACK)
            .spawn_scoped(threads.scope, move || {
                self.serve(work);
                // Kept a while for the next session, which spares it a
                // thread's start.
                while let Ok(work) = idle.recv_timeout(THREAD_KEPT) {
                    self.serve(work);
                }
            });
        if let Err(e) = started {
            self.sessions.lock().remove(&client);
            if let Some(stats) = self.current.get().metrics.stream(&self.name) {
                stats.open.fetch_sub(1, Ordering::Relaxed);
            }
            static UNSTARTED: OnceAMinute = OnceAMinute::new();
            if UNSTARTED.due() {
                log::warn!("cannot start a UDP session's thread: {e} (said at most once a minute)");
            }
        }
    }

    /// Relays the target's answers to the session of `work` back to its
    /// client until the session ends, then logs it.
    fn serve(&self, work: Work) {
        let Work {
            session,
            answers,
            mut record,
            shared,
            _in_flight,
        } = work;
        let target = &shared.pools.get(answers.pool).targets()[answers.target];
        let (answered, termination, status) = self.relay_answers(&session, &answers, target);
        record.status = status;
        record.termination = termination;
        record.bytes = answered;
        let received = session.received.load(Ordering::Relaxed);
        record.request_length = Some(received);
        record.last_try.bytes_sent = Some(received);
        record.last_try.bytes_received = Some(answered);
        record.last_try.response = Some(session.began.elapsed());
        self.ended(record, &shared, Some(session.began));
    }

    /// Sends the target's datagrams on to the client until the session
    /// ends; the bytes sent, how it ended and the status to log.
    fn relay_answers(
        &self,
        session: &Session,
        answers: &Answers,
        target: &Upstream,
    ) -> (u64, Termination, u16) {
        let (mut count, mut bytes) = (0u64, 0u64);
        let picked = session.began;
        let _ = session
            .socket
            .set_read_timeout(Some(answers.idle.min(STEP)));
        let answered = |count: u64| {
            move || (session.owed(answers.per_request)).is_some_and(|owed| count >= owed)
        };
        loop {
            if answered(count)() && self.end(answers.client, session, answered(count)) {
                return (bytes, Termination::NORMAL, 200);
            }
            match self.pass_answer(session, answers.client) {
                Ok(sent) => {
                    if count == 0 {
                        target.health.succeeded(picked);
                    }
                    count += 1;
                    session.touch();
                    bytes += sent.unwrap_or(0) as u64;
                }
                Err(e) if is_quiet(&e) => {
                    if self.stopping.load(Ordering::SeqCst) {
                        self.end(answers.client, session, || true);
                        return (bytes, Termination::new(By::Killed, Stage::Data), 200);
                    }
                    let idle = || session.quiet_for() >= answers.idle;
                    if !idle() || !self.end(answers.client, session, idle) {
                        continue;
                    }
                    // Answers owed and none came in time: the target's
                    // failure, as nginx counts one under `proxy_responses`.
                    if session
                        .owed(answers.per_request)
                        .is_some_and(|owed| count < owed)
                    {
                        let client = super::canonical(answers.client);
                        fail_for_stream(target, "answered no datagram in time", client.ip());
                        let status = if count == 0 { 502 } else { 200 };
                        return (
                            bytes,
                            Termination::new(By::ServerTimeout, Stage::Data),
                            status,
                        );
                    }
                    return (bytes, Termination::new(By::ClientTimeout, Stage::Data), 200);
                }
                Err(e) => {
                    // ECONNREFUSED: the target's host said no one takes
                    // datagrams at its port.
                    self.end(answers.client, session, || true);
                    let client = super::canonical(answers.client);
                    fail_for_stream(target, &format!("datagrams refused: {e}"), client.ip());
                    let status = if count == 0 { 502 } else { 200 };
                    return (bytes, Termination::new(By::Server, Stage::Data), status);
                }
            }
        }
    }

    /// Waits for the target's next datagram to `session` and sends it on
    /// to `client`: its length, if it went out. A buffer is held only
    /// while there is a datagram to pass.
    fn pass_answer(&self, session: &Session, client: SocketAddr) -> io::Result<Option<usize>> {
        // Waits without taking it: a datagram is read whole or cut short.
        session.socket.peek(&mut [0u8; 1])?;
        let mut datagram = (self.spare.lock().pop()).unwrap_or_else(|| vec![0; MAX_DATAGRAM]);
        let passed = (session.socket.recv(&mut datagram))
            .map(|length| (self.socket.send_to(&datagram[..length], client)).ok());
        let mut spare = self.spare.lock();
        if spare.len() < MAX_SPARE {
            spare.push(datagram);
        }
        passed
    }

    /// Takes `session` out of the table, so that the client's next
    /// datagram begins another, if it is `still` over once no datagram
    /// can be forwarded to it (one forwarded since may keep it). Whether
    /// it ended.
    fn end(&self, client: SocketAddr, session: &Session, still: impl Fn() -> bool) -> bool {
        let mut sessions = self.sessions.lock();
        if !still() {
            return false;
        }
        if sessions
            .get(&client)
            .is_some_and(|s| std::ptr::eq(&**s, session))
        {
            sessions.remove(&client);
        }
        true
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

/// The threads that serve sessions, and the way to hand a session to
/// one that waits for one.
struct Threads<'scope, 'env> {
    scope: &'scope Scope<'scope, 'env>,
    handoff: crossbeam_channel::Sender<Work>,
    idle: crossbeam_channel::Receiver<Work>,
}

/// What a session's answers are relayed by.
struct Answers {
    client: SocketAddr,
    /// How long it may stay quiet both ways.
    idle: Duration,
    /// `responses=`: the target's datagrams each of the client's is owed.
    per_request: Option<u32>,
    /// The target, by its pool's index and its own there.
    pool: usize,
    target: usize,
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
                    session: Arc::new(Session {
                        socket,
                        requests: AtomicU64::new(0),
                        received: AtomicU64::new(0),
                        last: AtomicU64::new(0),
                        began: Instant::now(),
                    }),
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
/// datagrams come back through it.
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
    Ok(socket)
}

/// A wait that ended with nothing to read.
fn is_quiet(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}
