//! A socket to a backend: opened (over TLS for a target with `tls`),
//! connected within a timeout, and its TLS handshake made; for a
//! request's connection and a health probe's alike.

use super::BackendTls;
use crate::config::Endpoint;
use crate::fastcgi::App;
use crate::http::conn::{Kind, Stream};
use crate::http::fastcgi::FcgiStream;
use crate::http::tls::{HandshakeError, TlsStream};
use socket2::{Domain, SockAddr, SockRef, Socket, Type};
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

/// A socket for `endpoint`, not connected yet (see [`connect`]): one a
/// forced close may be shown before the connect begins. With `tls`, its
/// session too, to begin once connected (see [`handshake`]).
///
/// With `fastcgi`, a FastCGI connection instead (the loader refuses
/// `tls` beside it).
pub fn open(
    endpoint: &Endpoint,
    tls: Option<&BackendTls>,
    fastcgi: Option<&Arc<App>>,
) -> io::Result<Stream> {
    if let Some(app) = fastcgi {
        let (domain, tcp) = match endpoint {
            Endpoint::Tcp(addr) => (Domain::for_address(*addr), true),
            Endpoint::Unix(_) => (Domain::UNIX, false),
        };
        let socket = Socket::new(domain, Type::STREAM, None)?;
        return Ok(Kind::Fcgi(Box::new(FcgiStream::new(socket, tcp, app.clone()))).into());
    }
    let kind = match (endpoint, tls) {
        (Endpoint::Tcp(addr), None) => {
            Kind::Tcp(Socket::new(Domain::for_address(*addr), Type::STREAM, None)?.into())
        }
        (Endpoint::Tcp(addr), Some(tls)) => {
            let tcp = Socket::new(Domain::for_address(*addr), Type::STREAM, None)?.into();
            let session = TlsStream::connecting(tcp, tls.settings.clone(), tls.name.clone())
                .map_err(io::Error::other)?;
            Kind::Tls(Box::new(session))
        }
        // The loader refuses `tls` on a Unix socket.
        (Endpoint::Unix(_), _) => Kind::Unix(Socket::new(Domain::UNIX, Type::STREAM, None)?.into()),
    };
    Ok(kind.into())
}

/// Completes the TLS handshake of `stream`, connected, if it is a TLS
/// one, within `limit` (what the connect left of its timeout, which
/// covers the handshake as nginx's `proxy_connect_timeout` does), its
/// writes too. The caller sets the socket's timeouts for what follows.
/// A failed one is a failure to connect, which says why (the
/// certificate, most often).
pub fn handshake(stream: &Stream, limit: Duration) -> io::Result<()> {
    let Kind::Tls(tls) = stream.kind() else {
        return Ok(());
    };
    if limit.is_zero() {
        return Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake: no time left of connect_timeout",
        ));
    }
    tls.tcp().set_write_timeout(Some(limit))?;
    tls.handshake(limit, limit).map_err(|e| {
        let kind = match &e {
            HandshakeError::Late(_) => io::ErrorKind::TimedOut,
            HandshakeError::Closed => io::ErrorKind::ConnectionAborted,
            HandshakeError::Io(e) => e.kind(),
            HandshakeError::PlainHttp | HandshakeError::Tls(_) => io::ErrorKind::InvalidData,
        };
        match e {
            HandshakeError::Io(e) => e,
            HandshakeError::Tls(e) => {
                io::Error::new(kind, crate::tls::words::handshake_failure(&e))
            }
            e => io::Error::new(kind, format!("TLS handshake: {e}")),
        }
    })
}

/// Turns Nagle's algorithm off on `stream`, connected over TCP: a request
/// written in pieces (a PROXY header, then the TLS hello or the head)
/// would otherwise wait for the backend's delayed acknowledgement of the
/// first (up to 40 ms on Linux).
pub fn no_delay(stream: &Stream) -> io::Result<()> {
    match stream.kind() {
        Kind::Tcp(tcp) => tcp.set_nodelay(true),
        Kind::Tls(tls) => tls.tcp().set_nodelay(true),
        Kind::Fcgi(fcgi) => fcgi.set_nodelay(),
        Kind::Unix(_) => Ok(()),
    }
}

/// Writes `bytes` on `stream`, connected, before anything else and
/// outside any TLS (a PROXY header goes before the TLS hello), within
/// `limit`. They are a few dozen bytes on a new connection, which its
/// send buffer takes at once.
pub fn send_in_clear(stream: &Stream, bytes: &[u8], limit: Duration) -> io::Result<()> {
    let socket = SockRef::from(stream);
    socket.set_write_timeout(Some(limit.max(Duration::from_millis(1))))?;
    (&*socket).write_all(bytes)
}

/// Connects `stream`, opened by [`open`] for `endpoint`, within `timeout`.
///
/// A Unix socket is connected to at once or refused at once (`ENOENT`
/// for a missing file, `ECONNREFUSED` for one nobody listens on), unless
/// the listener's backlog is full: then a blocking connect waits for room
/// (Linux), for at most the socket's send timeout, and fails with `EAGAIN`
/// after it. That timeout is set to `timeout` here (the caller sets the
/// backend's own afterwards). A non-blocking connect, as for TCP, would
/// not do: to a full backlog it fails at once, with nothing in progress.
/// Unlike a TCP connect, this wait is not cut short by a forced close's
/// shutdown (it ends within `timeout` all the same); a shutdown that came
/// before the connect leaves the connection unable to carry anything.
pub fn connect(stream: &Stream, endpoint: &Endpoint, timeout: Duration) -> io::Result<()> {
    let socket = SockRef::from(stream);
    match endpoint {
        Endpoint::Tcp(addr) => socket.connect_timeout(&(*addr).into(), timeout),
        Endpoint::Unix(path) => {
            let addr = SockAddr::unix(path)?;
            // Zero would be no timeout at all.
            socket.set_write_timeout(Some(timeout.max(Duration::from_millis(1))))?;
            loop {
                match socket.connect(&addr) {
                    // A Unix connect interrupted by a signal is begun anew
                    // (nothing of it is left in progress, unlike TCP's).
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        return Err(io::Error::new(
                            io::ErrorKind::TimedOut,
                            "the socket's backlog stayed full",
                        ))
                    }
                    done => return done,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unix_connect_fails_as_a_tcp_one_would_and_waits_no_longer_than_told() {
        let dir = tempfile::tempdir().unwrap();
        let connect_to = |endpoint: &Endpoint| {
            let stream = open(endpoint, None, None)?;
            connect(&stream, endpoint, Duration::from_millis(50)).map(|()| stream)
        };
        let missing = Endpoint::Unix(dir.path().join("missing.sock"));
        let e = connect_to(&missing).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound, "{e}");
        let refusing = dir.path().join("refusing.sock");
        drop(std::os::unix::net::UnixListener::bind(&refusing).unwrap());
        let e = connect_to(&Endpoint::Unix(refusing)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused, "{e}");

        // A listener that never accepts, with the smallest backlog: the
        // connects that fill it succeed, the next waits its timeout out.
        let full = dir.path().join("full.sock");
        let listener = Socket::new(Domain::UNIX, Type::STREAM, None).unwrap();
        listener.bind(&SockAddr::unix(&full).unwrap()).unwrap();
        listener.listen(0).unwrap();
        let full = Endpoint::Unix(full);
        let mut held = Vec::new();
        let waited_out = (0..8).find_map(|_| match connect_to(&full) {
            Ok(stream) => {
                held.push(stream);
                None
            }
            Err(e) => Some(e),
        });
        let e = waited_out.expect("the backlog never filled");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(!held.is_empty());
    }
}
