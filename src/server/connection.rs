//! Serving one admitted connection: on `tls_port` its PROXY header and
//! TLS handshake first, then its requests, through `proxy::serve`.

use super::admission::{log_rejected, reject, Refused, Slot};
use super::workers::Listening;
use super::Inner;
use crate::config::Config;
use crate::http::conn::ClientStream;
use crate::http::proxy_protocol;
use crate::http::tls::{HandshakeError, TlsStream};
use crate::proxy::{self, Inherited};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Serves the connection `stream` from `peer`, accepted with what
/// `inherited` says, in `slot`.
pub(super) fn serve(
    stream: Arc<ClientStream>,
    peer: SocketAddr,
    mut slot: Slot,
    inner: &Inner,
    inherited: Inherited,
) {
    if !cfg!(target_os = "linux") {
        let tcp = stream.tcp();
        let _ = tcp.set_nodelay(true);
        let _ = tcp.set_read_timeout(Some(inherited.read_timeout));
        let _ = tcp.set_write_timeout(Some(inherited.timeout));
    }
    // What the first request head is due by counts from here: a TLS
    // handshake takes from its time, as a PROXY header does.
    let accepted = Instant::now();
    let proxied = match stream
        .tls()
        .map(|tls| begin_tls(tls, (peer, inherited.addr), accepted, &mut slot, inner))
    {
        None => None,
        Some(Ok(proxied)) => proxied,
        Some(Err(Ended)) => return,
    };
    let (watch, connection) = (slot.watch.clone(), slot.id + 1);
    let mut claim = |client, limit| slot.claim(client, limit);
    proxy::serve(
        watch,
        (peer, connection, accepted),
        proxied,
        &inner.current,
        inherited,
        &mut claim,
    );
    if let Some(tls) = stream.tls() {
        tls.say_closing();
    }
    // Leaving the registry frees the slot only once the socket is done with.
    drop(slot);
}

/// Serves the connection `stream` from `peer` to the listener of
/// `stream.<name>`: its PROXY header first under the stream's
/// `proxy_protocol` (the client it names counted in `slot` as at
/// accept), then its bytes relayed by `proxy::tcp`.
pub(super) fn serve_stream(
    stream: Arc<ClientStream>,
    peer: SocketAddr,
    mut slot: Slot,
    inner: &Inner,
    inherited: Inherited,
    name: &Arc<str>,
) {
    let accepted = Instant::now();
    let shared = inner.current.get();
    let config = &shared.config;
    let tcp = stream.tcp();
    let _ = tcp.set_nodelay(true);
    let proxied = match config.stream_named(name) {
        Some(listener) if listener.proxy_protocol => {
            let limit = config.client_header_timeout.min(config.connection_timeout);
            let header = match proxy_protocol::read_header(tcp, accepted + limit) {
                Ok(header) => header,
                Err(why) => {
                    proxy_protocol::warn_of(peer.ip().to_canonical(), &why);
                    return;
                }
            };
            let named = header.source.map(proxy::canonical);
            if let Some(client) = named {
                if !slot.claim(client.ip(), config.max_connections_per_client) {
                    let (time, started) = (SystemTime::now(), Instant::now());
                    let _ = tcp.shutdown(Shutdown::Both);
                    let refused = Refused::of_stream(name);
                    let server = header.destination.unwrap_or(inherited.addr);
                    log_rejected(refused, 503, (client, server), time, started, &shared);
                    return;
                }
            }
            Some(header)
        }
        _ => None,
    };
    drop(shared);
    let connection = (peer, slot.id + 1, accepted);
    proxy::tcp::serve(
        &slot.watch,
        connection,
        proxied,
        &inner.current,
        inherited,
        name,
    );
    // Leaving the registry frees the slot only once the socket is done with.
    drop(slot);
}

/// A connection to `tls_port` that ended before its first request.
struct Ended;

/// Reads the PROXY header a connection to `tls_port` starts with (under
/// `proxy_protocol`), then completes its handshake, both within the time
/// a request head is given from `accepted`. A failure is counted and the
/// connection ends; plain HTTP sent there is answered 400 and logged, as
/// nginx does. The client a header names is counted in `slot` before the
/// handshake: over `max_connections_per_client`, the connection is closed
/// unanswered, as at accept, sparing the handshake.
#[inline(never)]
fn begin_tls(
    tls: &TlsStream,
    (peer, server): (SocketAddr, SocketAddr),
    accepted: Instant,
    slot: &mut Slot,
    inner: &Inner,
) -> Result<Option<proxy_protocol::Header>, Ended> {
    let shared = inner.current.get();
    let config = &shared.config;
    let limit = config.client_header_timeout.min(config.connection_timeout);
    let proxied = match config.proxy_protocol {
        false => None,
        true => match proxy_protocol::read_header(tls.tcp(), accepted + limit) {
            Ok(header) => Some(header),
            Err(why) => {
                proxy_protocol::warn_of(peer.ip().to_canonical(), &why);
                return Err(Ended);
            }
        },
    };
    let named = proxied.as_ref().and_then(|header| header.source);
    if let Some(client) = named {
        if !slot.claim(
            client.ip().to_canonical(),
            config.max_connections_per_client,
        ) {
            let (time, started) = (SystemTime::now(), Instant::now());
            let _ = tls.tcp().shutdown(Shutdown::Both);
            log_rejected(
                Refused::default(),
                503,
                (client, server),
                time,
                started,
                &shared,
            );
            return Err(Ended);
        }
    }
    let limits = (
        limit.saturating_sub(accepted.elapsed()),
        inner.inherited.read_timeout,
    );
    let auth = config.tls_client_auth.as_deref();
    let Err(failure) = tls.accept(limits, auth, &inner.metrics) else {
        return Ok(proxied);
    };
    if let HandshakeError::PlainHttp = failure {
        let (time, started) = (SystemTime::now(), Instant::now());
        let text = "The plain HTTP request was sent to the HTTPS port\n";
        let refused = reject(tls.tcp(), 400, Some(text), &shared);
        // The client a PROXY header named, read before the handshake.
        let client = proxied.and_then(|header| header.source).unwrap_or(peer);
        log_rejected(refused, 400, (client, server), time, started, &shared);
    } else {
        failure.say_of(peer);
    }
    Err(Ended)
}

/// The accepted `tcp` as the connection it is: a plain one, or the start
/// of a TLS one on `tls_port` or to a stream that ends TLS (its handshake
/// is the serving thread's); `None` when the settings cannot start a TLS
/// session.
#[inline(never)]
pub(super) fn client_stream(
    tcp: TcpStream,
    listening: &Listening,
    config: &Config,
) -> Option<Arc<ClientStream>> {
    let settings = match listening {
        Listening::Http => None,
        Listening::Tls => Some(config.tls.clone()?),
        Listening::Stream(name) => (config.stream_named(name)).and_then(|s| config.stream_tls(s)),
    };
    let Some(settings) = settings else {
        return Some(Arc::new(ClientStream::Tcp(tcp)));
    };
    match TlsStream::accepting(tcp, settings) {
        Ok(session) => Some(Arc::new(ClientStream::Tls(Box::new(session)))),
        Err(e) => {
            log::warn!("cannot start a TLS session: {e}");
            None
        }
    }
}
