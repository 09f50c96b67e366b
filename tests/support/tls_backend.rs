//! An origin server that speaks TLS (rustls) on an ephemeral loopback
//! port: the plain [`Backend`]'s HTTP handling (the same `serve` loop,
//! the same counters and [`Seen`] requests) over a rustls session, and a
//! record of each handshake: the name the client asked for (SNI), whether
//! it presented a certificate, and the protocol version agreed.

use super::pki::{provider, Ca, Leaf};
use super::{describe, respond, serve, Action, Backend, Conn, Seen, IO_TIMEOUT};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{
    HandshakeKind, ProtocolVersion, RootCertStore, ServerConfig, ServerConnection, StreamOwned,
    SupportedProtocolVersion,
};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a [`TlsBackend`] meets its clients.
pub struct TlsSetup {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    client_ca: Option<CertificateDer<'static>>,
    versions: &'static [&'static SupportedProtocolVersion],
    stall: bool,
    ip: IpAddr,
    receive_buffer: Option<usize>,
    groups: Option<&'static [&'static dyn rustls::crypto::SupportedKxGroup]>,
}

impl TlsSetup {
    /// Serves `leaf` (with `ca`'s certificate after it, as a chain), TLS
    /// 1.2 and 1.3, on 127.0.0.1, asking no client certificate.
    pub fn serving(leaf: &Leaf, ca: &Ca) -> TlsSetup {
        TlsSetup {
            chain: leaf.chain(ca),
            key: leaf.key(),
            client_ca: None,
            versions: rustls::ALL_VERSIONS,
            stall: false,
            ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            receive_buffer: None,
            groups: None,
        }
    }

    /// Agrees on a key exchange group of `groups` alone.
    pub fn groups(
        mut self,
        groups: &'static [&'static dyn rustls::crypto::SupportedKxGroup],
    ) -> TlsSetup {
        self.groups = Some(groups);
        self
    }

    /// Requires a client certificate that `ca` signed: a client without
    /// one, or with another's, fails the handshake.
    pub fn client_certificate_from(mut self, ca: &Ca) -> TlsSetup {
        self.client_ca = Some(ca.der.clone());
        self
    }

    /// Speaks only `versions`.
    pub fn versions(mut self, versions: &'static [&'static SupportedProtocolVersion]) -> TlsSetup {
        self.versions = versions;
        self
    }

    /// Accepts connections and never answers their hello: each is held
    /// (its bytes read and dropped) until the client closes it or the I/O
    /// timeout passes.
    pub fn stalling(mut self) -> TlsSetup {
        self.stall = true;
        self
    }

    /// Listens on `ip` rather than 127.0.0.1 (where `localhost` resolves,
    /// for a target named so).
    pub fn on(mut self, ip: IpAddr) -> TlsSetup {
        self.ip = ip;
        self
    }

    /// Accepts connections with a receive buffer of (about) `bytes`, so
    /// that a client's writes soon wait for room when it is not read.
    pub fn receive_buffer(mut self, bytes: usize) -> TlsSetup {
        self.receive_buffer = Some(bytes);
        self
    }

    fn config(self) -> Arc<ServerConfig> {
        let mut own = (*provider()).clone();
        if let Some(groups) = self.groups {
            own.kx_groups = groups.to_vec();
        }
        let builder = ServerConfig::builder_with_provider(Arc::new(own))
            .with_protocol_versions(self.versions)
            .unwrap();
        let builder = match self.client_ca {
            None => builder.with_no_client_auth(),
            Some(ca) => {
                let mut roots = RootCertStore::empty();
                roots.add(ca).unwrap();
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                        .build()
                        .unwrap();
                builder.with_client_cert_verifier(verifier)
            }
        };
        Arc::new(builder.with_single_cert(self.chain, self.key).unwrap())
    }
}

/// One handshake a [`TlsBackend`] completed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The server name the client asked for (SNI); `None` when it sent
    /// none (as a client must when it connects by IP address).
    pub sni: Option<String>,
    /// Whether the client presented a certificate (verified, when one
    /// was required).
    pub client_cert: bool,
    pub version: Option<ProtocolVersion>,
    /// Whether the client resumed a session of an earlier connection.
    pub resumed: bool,
    pub suite: Option<rustls::CipherSuite>,
}

/// A TLS origin server: a [`Backend`] (its counters, `seen`, `addr`,
/// `target()`) whose connections are served over rustls.
#[derive(Clone)]
pub struct TlsBackend {
    backend: Backend,
    /// Handshakes completed, in the order they completed.
    pub handshakes: Arc<Mutex<Vec<Handshake>>>,
    /// Handshakes that failed (a certificate refused either way, a
    /// client that spoke no TLS, one that left halfway).
    pub failed_handshakes: Arc<AtomicUsize>,
    /// Sessions the client ended with `close_notify` (counted as each
    /// connection's thread ends, with `closed`).
    pub close_notifies: Arc<AtomicUsize>,
}

impl Deref for TlsBackend {
    type Target = Backend;

    fn deref(&self) -> &Backend {
        &self.backend
    }
}

impl TlsBackend {
    /// Starts a TLS backend met as `setup` says, whose `handler` writes
    /// each response itself. [`Action::Close`] ends the session with a
    /// `close_notify` before the TCP end, as servers do.
    pub fn start(
        name: &str,
        setup: TlsSetup,
        handler: impl Fn(&Seen, &mut TlsStream) -> Action + Send + Sync + 'static,
    ) -> TlsBackend {
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let requests: Arc<AtomicUsize> = Arc::default();
        let (log, count) = (seen.clone(), requests.clone());
        let raw = TlsBackend::start_raw(name, setup, move |id, stream| {
            let _ = serve(id, stream, &log, &count, &handler);
        });
        // The request loop's counters in place of the raw backend's own.
        TlsBackend {
            backend: Backend {
                seen,
                requests,
                ..raw.backend
            },
            ..raw
        }
    }

    /// Starts a TLS backend that hands each session, its handshake done
    /// (and recorded), to `session` with its connection's number: for
    /// backends that do what the request loop cannot (answer before a
    /// body is read). Its `requests` and `seen` stay empty.
    pub fn start_raw(
        name: &str,
        setup: TlsSetup,
        session: impl Fn(usize, TlsStream) + Send + Sync + 'static,
    ) -> TlsBackend {
        let listener = TcpListener::bind(SocketAddr::new(setup.ip, 0)).unwrap();
        if let Some(bytes) = setup.receive_buffer {
            // Accepted connections inherit it.
            socket2::SockRef::from(&listener)
                .set_recv_buffer_size(bytes)
                .unwrap();
        }
        let stall = setup.stall;
        let backend = TlsBackend {
            backend: Backend::counting(name, listener.local_addr().unwrap()),
            handshakes: Arc::default(),
            failed_handshakes: Arc::default(),
            close_notifies: Arc::default(),
        };
        let config = setup.config();
        let session = Arc::new(session);
        let b = backend.clone();
        std::thread::spawn(move || {
            for tcp in listener.incoming() {
                let Ok(tcp) = tcp else { continue };
                let id = b.connections.fetch_add(1, Ordering::SeqCst);
                let (b, config, session) = (b.clone(), config.clone(), session.clone());
                std::thread::spawn(move || {
                    if stall {
                        hold(tcp);
                    } else if let Ok(stream) = b.accept(tcp, config) {
                        let kept = stream.clone();
                        session(id, stream);
                        if kept.peer_said_close_notify() {
                            b.close_notifies.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    b.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        backend
    }

    /// A TLS backend answering as [`Backend::echo`] does: 200, `X-Backend:
    /// name`, and a body describing the request.
    pub fn echo(name: &str, setup: TlsSetup) -> TlsBackend {
        let me = name.to_string();
        TlsBackend::start(name, setup, move |seen, out| {
            let body = describe(&me, seen);
            respond(out, 200, &[("X-Backend", &me)], body.as_bytes());
            Action::KeepAlive
        })
    }

    /// The handshake, recorded (or counted as failed).
    fn accept(&self, mut tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        tcp.set_read_timeout(Some(IO_TIMEOUT))?;
        tcp.set_write_timeout(Some(IO_TIMEOUT))?;
        let mut conn = ServerConnection::new(config).map_err(io::Error::other)?;
        while conn.is_handshaking() {
            if let Err(e) = conn.complete_io(&mut tcp) {
                self.failed_handshakes.fetch_add(1, Ordering::SeqCst);
                return Err(e);
            }
        }
        self.handshakes.lock().unwrap().push(Handshake {
            sni: conn.server_name().map(str::to_string),
            client_cert: conn.peer_certificates().is_some_and(|c| !c.is_empty()),
            version: conn.protocol_version(),
            resumed: conn.handshake_kind() == Some(HandshakeKind::Resumed),
            suite: conn.negotiated_cipher_suite().map(|s| s.suite()),
        });
        Ok(TlsStream(Arc::new(Mutex::new(StreamOwned::new(conn, tcp)))))
    }

    pub fn handshakes(&self) -> Vec<Handshake> {
        self.handshakes.lock().unwrap().clone()
    }

    pub fn failed_handshakes(&self) -> usize {
        self.failed_handshakes.load(Ordering::SeqCst)
    }

    pub fn close_notifies(&self) -> usize {
        self.close_notifies.load(Ordering::SeqCst)
    }
}

/// Holds a connection without a word: reads (and drops) what comes until
/// the peer closes or the read timeout passes.
fn hold(mut tcp: TcpStream) {
    let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
    let mut chunk = [0u8; 4096];
    // Bounded: each read waits at most the timeout, and a peer sends a
    // hello of a few hundred bytes, not megabytes.
    for _ in 0..10_000 {
        match tcp.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}

/// A backend's end of a TLS session, shared between the request loop's
/// reader and the handler's writer (one thread uses both, in turn).
#[derive(Clone)]
pub struct TlsStream(Arc<Mutex<StreamOwned<ServerConnection, TcpStream>>>);

impl Read for TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.lock().unwrap().read(buf)
    }
}

impl Write for TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.lock().unwrap().flush()
    }
}

impl TlsStream {
    /// Whether the client's `close_notify` has been read.
    pub fn peer_said_close_notify(&self) -> bool {
        let mut stream = self.0.lock().unwrap();
        (stream.conn.process_new_packets()).is_ok_and(|state| state.peer_has_closed())
    }

    /// Sends a TLS 1.3 key update: a record that carries no data, as the
    /// session tickets sent after a handshake are, at a time of the
    /// test's choosing.
    pub fn send_key_update(&self) -> io::Result<()> {
        let mut stream = self.0.lock().unwrap();
        stream
            .conn
            .refresh_traffic_keys()
            .map_err(io::Error::other)?;
        stream.flush()
    }
}

impl Conn for TlsStream {
    fn try_clone(&self) -> io::Result<Self> {
        Ok(self.clone())
    }

    /// Ends the session: `close_notify`, then the TCP end.
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let mut stream = self.0.lock().unwrap();
        stream.conn.send_close_notify();
        stream.flush()?;
        stream.sock.shutdown(how)
    }

    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        let stream = self.0.lock().unwrap();
        stream.sock.set_read_timeout(Some(timeout))?;
        stream.sock.set_write_timeout(Some(timeout))
    }
}
