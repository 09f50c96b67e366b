//! `stream.<name>`: a TCP connection relayed to a target of a pool as
//! bytes, HAProxy's `mode tcp` and nginx's `stream { proxy_pass }`. The
//! target is the pool's balancer's pick (by the client's address for
//! `ip_hash`), within its `max_conns` (waiting in its queue), past the
//! targets that cannot be connected (each a failure toward its
//! `max_fails`, the next tried within `retries`); then both directions
//! are copied by this thread (`polled`; a TLS session's bytes, the
//! client's or the target's, as the session reads and writes them),
//! until both sides have closed, either fails, or both stay silent for
//! the stream's `timeout=` (else the pool's `tunnel_timeout`).
//!
//! A stream with `stream.<name>.<host>` keys first reads the client's
//! TLS hello (`tls::client_hello`), within `client_header_timeout`, and
//! takes the pool of the host it asks for; the bytes read go to the
//! target first, as they came (TLS passed through). A stream with `tls`
//! ends TLS instead: the handshake is made here in that time (`tls_port`'s
//! certificates, the client's checked as there), the host it named
//! chooses the pool, and the session's bytes are relayed.
//!
//! One access-log line per connection as it ends: the request line `TCP
//! <name>`, the status nginx's stream module gives a session (200, 403
//! for one the access lists refuse, 502 when no target could be
//! connected, 503 when none had room or took connections), the bytes
//! sent to the client (and `$request_length` those received from it),
//! the target and HAProxy's termination state.

mod polled;

use polled::Side;

use super::origin::fail_for_stream;
use super::tunnel::Relayed;
use super::{ConnWatch, Current, Inherited, Shared};
use crate::access_log::{By, Record, Stage, Termination};
use crate::config::StreamListener;
use crate::http::conn::{
    is_local_shortage, is_timeout, ClientStream, Kind, Leaving as _, Socket as _, Stream,
};
use crate::http::proxy_protocol;
use crate::http::send_proxy::{ClientEnds, ClientTls};
use crate::http::tls::HandshakeError;
use crate::metrics::StreamStats;
use crate::pace::Pacing;
use crate::tcp_keepalive::Keepalive;
use crate::throttle::OnceAMinute;
use crate::tls::client_cert::ClientCertificate;
use crate::tls::client_hello::{self, Hello};
use crate::upstream::{InFlight, InLine, Pick, Upstreams};
use crate::upstream_tries::UpstreamTry;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// The access log's request line for a connection to `stream.<name>`.
pub fn request_line(name: &str) -> String {
    format!("TCP {name}")
}

/// Serves the connection `watch` holds, to the listener of the stream
/// `name`, from `peer` (or the client its PROXY header, `proxied`,
/// named), accepted at `accepted`, the `connection`th of the server.
pub fn serve(
    watch: &Arc<ConnWatch>,
    (peer, connection, accepted): (SocketAddr, u64, Instant),
    proxied: Option<proxy_protocol::Header>,
    current: &Current,
    inherited: Inherited,
    name: &str,
) {
    let shared = current.get();
    // A reload keeps every running stream (see `Config::keep_streams_of`),
    // and a shutdown that closed the connection first wants no more of it.
    let Some(stream) = shared.config.stream_named(name) else {
        return;
    };
    if !watch.begin_request() {
        return;
    }
    let client = proxied
        .as_ref()
        .and_then(|h| h.source)
        .map_or(peer, super::canonical);
    let mut ends = ClientEnds {
        source: client,
        destination: (proxied.as_ref())
            .and_then(|h| h.destination)
            .unwrap_or(inherited.addr),
        tls: (proxied.as_ref())
            .is_some_and(|h| h.tls)
            .then(ClientTls::default),
    };
    let mut record = Record::refused(
        SystemTime::now(),
        client,
        ends.destination,
        request_line(name),
        0,
        Duration::ZERO,
    );
    record.connection = Some((connection, 1));
    record.proxied_to = proxied.as_ref().and_then(|h| h.destination);
    record.proxy_tlvs = (proxied.as_ref())
        .filter(|h| !h.tlvs.is_empty())
        .map(|h| Arc::from(&*h.tlvs));
    record.pool = Some(stream.pool_name.clone());
    let due =
        accepted + (shared.config.client_header_timeout).min(shared.config.connection_timeout);
    let stats = shared.metrics.stream(name);
    if let Some(stats) = stats {
        stats.open.fetch_add(1, Ordering::Relaxed);
    }
    let opening = (stream, due, inherited.read_timeout);
    record.status = relay(watch, opening, &mut ends, &shared, &mut record);
    record.duration = accepted.elapsed();
    if let Some(stats) = stats {
        stats.open.fetch_sub(1, Ordering::Relaxed);
    }
    session_ended(record, stats, &shared);
}

/// A stream's connection (or a `udp` one's session) that ended, or never
/// began: counted in its stream's `stats` by status and bytes, and logged.
pub(super) fn session_ended(mut record: Record, stats: Option<&StreamStats>, shared: &Shared) {
    if let Some(stats) = stats {
        stats.ended.count(record.status);
        let received = record.request_length.unwrap_or(0);
        stats.received.fetch_add(received, Ordering::Relaxed);
        stats.sent.fetch_add(record.bytes, Ordering::Relaxed);
    }
    if !shared.config.log_skips(false, record.status) {
        record.show_pool = !shared.config.pools.is_empty();
        shared.log.log(record);
    }
}

/// Relays the connection to a target of `stream`'s pool (the one the
/// host its TLS hello asks for chose, when the stream reads hellos or
/// ends TLS; the hello read, or the handshake made, by `hello_due`, then
/// reads waiting `read_timeout`), noting in `record` what it did, and in
/// `ends` the TLS agreed; its status.
fn relay(
    watch: &ConnWatch,
    (stream, hello_due, read_timeout): (&StreamListener, Instant, Duration),
    ends: &mut ClientEnds,
    shared: &Shared,
    record: &mut Record,
) -> u16 {
    let client = watch.client();
    let closed = |record: &mut Record, termination, status| {
        let _ = client.shutdown(Shutdown::Both);
        record.termination = termination;
        status
    };
    if let Some(keepalive) = &stream.keepalive {
        probe_quiet(keepalive, client.tcp(), ends.source);
    }
    let admitted = |pool: &crate::config::Config| {
        let admits = crate::access::admits(ends.source.ip(), &pool.allow_from, &pool.deny_from);
        if !admits {
            shared.metrics.access_denied.fetch_add(1, Ordering::Relaxed);
        }
        admits
    };
    let denied = Termination::new(By::Proxy, Stage::Request);
    // A client refused whatever host it names is refused before its
    // handshake, as nginx's `deny` comes before its `ssl` phase.
    if !stream.chooses_by_hello() && !admitted(shared.config_of_pool(stream.pool)) {
        return closed(record, denied, 403);
    }
    let mut early = Vec::new();
    let (host, protocols) = if let Some(tls) = client.tls() {
        let limits = (
            hello_due.saturating_duration_since(Instant::now()),
            read_timeout,
        );
        let auth = shared.config.tls_client_auth.as_deref();
        if let Err(failure) = tls.accept(limits, auth, &shared.metrics) {
            failure.say_of(ends.source);
            let by = match failure {
                HandshakeError::Late(_) => By::ClientTimeout,
                _ => By::Client,
            };
            // As a hello that never came: the session never began.
            return closed(record, Termination::new(by, Stage::Request), 400);
        }
        let agreed = tls.agreed();
        record.tls = Some(agreed);
        record.client_certificate = ClientCertificate::of(&tls.client_certificates()).map(Arc::new);
        ends.tls = Some(ClientTls {
            agreed: Some(agreed),
            server_name: tls.server_name(),
        });
        (
            tls.server_name(),
            Vec::from_iter(agreed.alpn.map(str::to_string)),
        )
    } else if stream.reads_hello() {
        match read_hello(client.tcp(), hello_due) {
            Ok((read, hello)) => {
                early = read;
                match hello {
                    Hello::Asked(asked) => (asked.host.map(Arc::from), asked.protocols),
                    _ => (None, Vec::new()),
                }
            }
            // nginx's stream answers a preread that fails 400.
            Err(termination) => return closed(record, termination, 400),
        }
    } else {
        (None, Vec::new())
    };
    if stream.reads_hello() && !protocols.is_empty() {
        record.offered_protocols = Some(protocols.join(",").into());
    }
    let protocols: Vec<&str> = protocols.iter().map(String::as_str).collect();
    let (pool_index, pool_name) = stream.pool_for(host.as_deref(), &protocols);
    record.pool = Some(pool_name.clone());
    record.server_name = host;
    let pool = shared.config_of_pool(pool_index);
    if stream.chooses_by_hello() && !admitted(pool) {
        return closed(record, denied, 403);
    }
    let upstreams = shared.pools.get(pool_index);
    let idle = stream.idle_timeout(pool);
    let connected = match connect(watch, upstreams, ends, shared, record) {
        Ok(connected) => connected,
        Err((status, termination)) => return closed(record, termination, status),
    };
    // The hello read goes first, as it came.
    let up: &Stream = &connected.stream;
    if let (Some(keepalive), Kind::Tcp(_) | Kind::Tls(_)) = (&stream.keepalive, up.kind()) {
        probe_quiet(keepalive, up, ends.source);
    }
    if !early.is_empty() {
        let sent = (up.set_write_timeout(Some(idle))).and_then(|()| (&*up).write_all(&early));
        if sent.is_err() {
            return closed(record, Termination::new(By::Server, Stage::Data), 502);
        }
    }
    let open = &shared.metrics.connections;
    let crowded = || crate::sched::crowded(open.load(Ordering::Relaxed));
    let Relayed {
        to_client,
        to_backend,
        ended,
    } = match &**client {
        ClientStream::Tcp(tcp) => relay_to(tcp, up, idle, &crowded, stream.pacing()),
        ClientStream::Tls(tls) => relay_to(&**tls, up, idle, &crowded, stream.pacing()),
    };
    let to_backend = to_backend + early.len() as u64;
    let last = &mut record.last_try;
    last.response = Some(connected.picked.elapsed());
    last.bytes_sent = Some(to_backend);
    last.bytes_received = Some(to_client);
    record.bytes = to_client;
    record.request_length = Some(to_backend);
    record.termination = match ended {
        // A forced shutdown cuts sessions as it does any exchange.
        _ if watch.cut() => Termination::new(By::Killed, Stage::Data),
        Some(ended) => ended,
        None => Termination::NORMAL,
    };
    drop(connected);
    200
}

/// Relays `client`'s connection to `up` (see [`polled`]): over TLS to a
/// target the bytes relayed are the session's.
fn relay_to(
    client: &impl Side,
    up: &Stream,
    idle: Duration,
    crowded: &dyn Fn() -> bool,
    pacing: [Pacing; 2],
) -> Relayed {
    match up.kind() {
        Kind::Tls(sealed) => polled::relay(client, &**sealed, idle, crowded, pacing),
        // TCP or Unix: FastCGI is no stream's target (the configuration
        // refuses it).
        _ => polled::relay(client, up, idle, crowded, pacing),
    }
}

/// Sets `so_keepalive`'s probes on `socket`, of the connection of
/// `client`: a failure (which no socket of TCP should meet) is said, and
/// the connection served without them.
fn probe_quiet(keepalive: &Keepalive, socket: &impl AsFd, client: SocketAddr) {
    if let Err(e) = keepalive.apply(socket) {
        log::debug!("client {client}: cannot set so_keepalive: {e}");
    }
}

/// Reads the start of a connection until it tells its TLS hello (see
/// [`client_hello::read`]), by `due`: the bytes read, which go to the
/// target first, and what they said; or how the client failed to say
/// it (closed, or `client_header_timeout` passed).
fn read_hello(mut tcp: &TcpStream, due: Instant) -> Result<(Vec<u8>, Hello), Termination> {
    let mut read = Vec::with_capacity(2048);
    let mut chunk = [0u8; 4096];
    loop {
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() || tcp.set_read_timeout(Some(left)).is_err() {
            return Err(Termination::new(By::ClientTimeout, Stage::Request));
        }
        match tcp.read(&mut chunk) {
            Ok(0) => return Err(Termination::new(By::Client, Stage::Request)),
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if is_timeout(&e) => {
                return Err(Termination::new(By::ClientTimeout, Stage::Request))
            }
            Err(_) => return Err(Termination::new(By::Client, Stage::Request)),
        }
        match client_hello::read(&read) {
            Hello::Incomplete if read.len() < client_hello::MAX_HELLO_BYTES => {}
            // Larger than any hello read: sent on to the stream's pool.
            Hello::Incomplete => return Ok((read, Hello::Unnamed)),
            hello => return Ok((read, hello)),
        }
    }
}

/// A target's connection, counted in its in-flight number (against its
/// `max_conns`) until dropped.
struct Connected<'s> {
    stream: Arc<Stream>,
    picked: Instant,
    _slot: InFlight<'s>,
}

/// The first target of the pool that can be connected, the others tried
/// before it in `record`; or the status and termination the client's
/// connection is closed with.
fn connect<'s>(
    watch: &ConnWatch,
    upstreams: &'s Upstreams,
    ends: &ClientEnds,
    shared: &Shared,
    record: &mut Record,
) -> Result<Connected<'s>, (u16, Termination)> {
    let mut tried = vec![false; upstreams.targets().len()];
    let mut retries_left = upstreams.retries();
    let mut queued: Option<InLine<'s>> = None;
    // How the last target tried failed, told when none is left.
    let mut failed = None;
    loop {
        let waiting = queued.as_ref().map(InLine::place);
        let (index, slot) = match upstreams.pick(ends.source.ip(), "", None, &tried, None, waiting)
        {
            Pick::Chosen(index, slot) => (index, slot),
            Pick::Full => {
                let joined = &shared.metrics.queued;
                let Some((woken, line)) = upstreams.wait_in_line(&mut queued, &tried, None, joined)
                else {
                    return Err((503, Termination::new(By::Proxy, Stage::Queue)));
                };
                let now = Instant::now();
                record.upstream_queue = Some(now.saturating_duration_since(line.since));
                // Its place goes to the next: nobody is left to relay for
                // (HAProxy's `CQ`; logged 499, as an HTTP client's leaving).
                if watch.client().peer_gone() {
                    return Err((499, Termination::new(By::Client, Stage::Queue)));
                }
                let over = now >= line.until || shared.shutting_down.load(Ordering::Relaxed);
                if !woken && over {
                    return Err((503, Termination::new(By::ServerTimeout, Stage::Queue)));
                }
                continue;
            }
            Pick::Unavailable if failed.is_none() => {
                return Err((503, Termination::new(By::Server, Stage::Connect)));
            }
            Pick::Nothing | Pick::Unavailable => {
                let by = failed.unwrap_or(By::Server);
                return Err((502, Termination::new(by, Stage::Connect)));
            }
        };
        queued = None;
        tried[index] = true;
        let target = &upstreams.targets()[index];
        let picked = Instant::now();
        let dialed = upstreams.dial(target, Some(ends), |s| watch.watch_backend(s));
        let earlier = std::mem::replace(
            &mut record.last_try,
            UpstreamTry {
                upstream: Some(target.name.clone()),
                connect: Some(picked.elapsed()),
                ..UpstreamTry::default()
            },
        );
        if earlier.upstream.is_some() {
            record.earlier_tries.push(earlier);
        }
        let e = match dialed {
            Ok(stream) => {
                target.health.succeeded(picked);
                return Ok(Connected {
                    stream,
                    picked,
                    _slot: slot,
                });
            }
            Err(e) => e,
        };
        if watch.cut() {
            record.last_try.status = Some(502);
            return Err((502, Termination::new(By::Killed, Stage::Connect)));
        }
        if is_local_shortage(&e) {
            static SHORT: OnceAMinute = OnceAMinute::new();
            if SHORT.due() {
                log::error!(
                    "cannot open a connection to a backend: {e}; closing a stream's \
                     connection (this process's limits: see `max_connections`; said at most \
                     once a minute)"
                );
            }
            return Err((503, Termination::new(By::Resource, Stage::Connect)));
        }
        // As the HTTP side logs a failed try: 504 for a timeout, else 502.
        let (status, by) = match is_timeout(&e) {
            true => (504, By::ServerTimeout),
            false => (502, By::Server),
        };
        record.last_try.status = Some(status);
        fail_for_stream(target, &format!("cannot connect: {e}"), ends.source.ip());
        failed = Some(by);
        if retries_left == 0 {
            return Err((502, Termination::new(by, Stage::Connect)));
        }
        retries_left -= 1;
    }
}
