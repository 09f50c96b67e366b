//! Admission of an accepted connection: a slot in the registry, counted
//! against `max_connections` and `max_connections_per_client`, or a short
//! refusal (503) that holds no worker and is logged.

use super::{Connections, Inner};
use crate::access_log::Record;
use crate::config::Config;
use crate::http::conn::ClientStream;
use crate::http::proxy_protocol;
use crate::proxy::{self, own_response, ConnWatch, Shared};
use crate::ratelimit;
use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::io::Read;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// How long a connection over the limit is given to take its 503.
const REJECT_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// A connection's place in the registry; leaving it (on drop, however the
/// connection ended) frees the slot counted against `max_connections` and
/// `max_connections_per_client`.
pub(super) struct Slot {
    inner: Arc<Inner>,
    pub(super) id: u64,
    /// The client as `max_connections_per_client` counts it
    /// ([`ratelimit::counted_as`]).
    client: IpAddr,
    pub(super) watch: Arc<ConnWatch>,
}

impl Slot {
    /// Counts the connection against `client` instead (the one its PROXY
    /// header named; at accept only the balancer was known), unless that
    /// client already holds `limit` connections (0: no limit).
    pub(super) fn claim(&mut self, client: IpAddr, limit: usize) -> bool {
        let client = ratelimit::counted_as(client);
        if client == self.client {
            return true;
        }
        let mut connections = self.inner.connections.lock();
        if limit != 0 && connections.per_client.get(&client) >= Some(&limit) {
            return false;
        }
        *connections.per_client.entry(client).or_default() += 1;
        release(&mut connections.per_client, self.client);
        self.client = client;
        true
    }
}

/// Takes one connection off `client`'s count.
fn release(per_client: &mut HashMap<IpAddr, usize>, client: IpAddr) {
    if let Entry::Occupied(mut held) = per_client.entry(client) {
        *held.get_mut() -= 1;
        if *held.get() == 0 {
            held.remove();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        {
            let mut connections = self.inner.connections.lock();
            connections.live.remove(&self.id);
            release(&mut connections.per_client, self.client);
        }
        self.inner
            .metrics
            .connections
            .fetch_sub(1, Ordering::Relaxed);
        self.inner.drained.notify_all();
    }
}

/// Takes a slot for a new connection, or refuses it over
/// `max_connections` or over `max_connections_per_client` for `client`
/// (see [`Refusing::new`] for the `None`).
pub(super) fn register(
    inner: &Arc<Inner>,
    stream: &Arc<ClientStream>,
    client: IpAddr,
    proxy_protocol: bool,
    config: &Config,
) -> Result<Slot, Option<Refusing>> {
    let client = ratelimit::counted_as(client);
    let mut connections = inner.connections.lock();
    // Behind a PROXY protocol balancer the peer is the balancer: the
    // client is known, and checked, once its header is read.
    let per_client = if proxy_protocol {
        0
    } else {
        config.max_connections_per_client
    };
    let full = connections.live.len() >= config.max_connections
        || (per_client != 0 && connections.per_client.get(&client) >= Some(&per_client));
    if full {
        return Err(Refusing::counted(inner, &mut connections));
    }
    let held = connections.per_client.entry(client).or_default();
    *held += 1;
    let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
    let watch = Arc::new(ConnWatch::new(
        stream.clone(),
        inner.inherited.timeout,
        inner.current.generation(),
    ));
    inner.metrics.connections.fetch_add(1, Ordering::Relaxed);
    inner.metrics.handled.fetch_add(1, Ordering::Relaxed);
    connections.live.insert(id, watch.clone());
    Ok(Slot {
        inner: inner.clone(),
        id,
        client,
        watch,
    })
}

/// Answers 503 to `stream` from `peer`, which reached `server`, and logs
/// it. One to `tls_port` is closed unanswered: an answer over TLS would
/// take the handshake the limit is there to spare; and so is one to a
/// `stream.<name>` (`stream_name`), which speaks no HTTP.
#[inline(never)]
pub(super) fn refuse(
    stream: Arc<ClientStream>,
    (peer, server): (SocketAddr, SocketAddr),
    shared: &Shared,
    refusing: Refusing,
    stream_name: Option<&str>,
) {
    let (time, started) = (SystemTime::now(), Instant::now());
    let refused = match (&*stream, stream_name) {
        (ClientStream::Tcp(tcp), None) => reject(tcp, 503, None, shared),
        (ClientStream::Tcp(tcp), Some(name)) => {
            let _ = tcp.shutdown(Shutdown::Both);
            Refused::of_stream(name)
        }
        (ClientStream::Tls(tls), _) => {
            let _ = tls.tcp().shutdown(Shutdown::Both);
            Refused::default()
        }
    };
    log_rejected(refused, 503, (peer, server), time, started, shared);
    drop(refusing);
}

/// Logs what [`reject`] answered to `peer`, which reached `server`.
pub(super) fn log_rejected(
    refused: Refused,
    status: u16,
    (peer, server): (SocketAddr, SocketAddr),
    time: SystemTime,
    started: Instant,
    shared: &Shared,
) {
    let client = refused.client.unwrap_or(peer);
    let mut record = Record::refused(
        time,
        proxy::canonical(client),
        server,
        refused.request_line,
        refused.bytes,
        started.elapsed(),
    );
    record.status = status;
    record.head_bytes = refused.head_bytes;
    shared.log_refusal(record);
}

/// A connection being refused, counted until its 503 is logged: a
/// shutdown waits for that line rather than close the log under it.
pub(super) struct Refusing {
    inner: Arc<Inner>,
}

impl Refusing {
    /// `None` once a shutdown has begun (checked under the lock its wait
    /// takes): it may have found nothing left to wait for, and closed the
    /// log; the connection is then dropped unanswered.
    pub(super) fn new(inner: &Arc<Inner>) -> Option<Refusing> {
        Refusing::counted(inner, &mut inner.connections.lock())
    }

    /// [`Refusing::new`] with the registry's lock held already.
    fn counted(inner: &Arc<Inner>, connections: &mut Connections) -> Option<Refusing> {
        if inner.shutting_down.load(Ordering::SeqCst) {
            return None;
        }
        connections.refusing += 1;
        Some(Refusing {
            inner: inner.clone(),
        })
    }
}

impl Drop for Refusing {
    fn drop(&mut self) {
        self.inner.connections.lock().refusing -= 1;
        self.inner.drained.notify_all();
    }
}

/// Answers a connection we will not serve, without letting the client hold
/// the worker: non-blocking, one short write, close.
///
/// Never inlined: its buffer would otherwise sit in the base frame of
/// every worker (which now accepts), a page each idle connection keeps.
///
/// Returns, for the access log, what could be read of the request line,
/// the client a PROXY header named (`proxy_protocol`), and the body bytes
/// sent: a refusal is the overload signal an operator most needs to see
/// (nginx logs its `limit_conn` 503s too).
#[inline(never)]
pub(super) fn reject(
    mut stream: &TcpStream,
    status: u16,
    text: Option<&str>,
    shared: &Shared,
) -> Refused {
    let _ = stream.set_nonblocking(true);
    // Read what the client already sent, so closing does not reset the
    // connection before it sees our answer.
    let mut sink = [0u8; 4096];
    let read = stream.read(&mut sink).unwrap_or(0);
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_write_timeout(Some(REJECT_WRITE_TIMEOUT));
    let mut received = &sink[..read];
    let mut client = None;
    if shared.config.proxy_protocol {
        if let Ok(Some(header)) = proxy_protocol::parse(received) {
            received = &received[header.len..];
            client = header.source;
        }
    }
    let head_request = proxy::starts_a_head_request(received);
    let text = text.map(proxy::OwnText::plain);
    let response = own_response(status, true, b"", text, &shared.config);
    let sent = response.send(&mut stream, head_request);
    let _ = stream.shutdown(Shutdown::Write);
    Refused {
        request_line: proxy::first_line(received),
        client,
        head_bytes: sent.map_or(0, |_| response.head().len() as u64),
        bytes: sent.unwrap_or(0),
    }
}

/// What [`reject`] tells the access log.
#[derive(Default)]
pub(super) struct Refused {
    request_line: String,
    client: Option<SocketAddr>,
    head_bytes: u64,
    bytes: u64,
}

impl Refused {
    /// A connection to `stream.<name>` closed unanswered.
    pub(super) fn of_stream(name: &str) -> Refused {
        Refused {
            request_line: crate::proxy::tcp::request_line(name),
            ..Refused::default()
        }
    }
}
