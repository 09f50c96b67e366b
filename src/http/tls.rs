//! A connection over TLS, read and written like the socket itself:
//! rustls's server session over a client's blocking TCP socket
//! (`tls_port`), or its client session over a backend's (a target with
//! `tls`).
//!
//! Reads and writes may come from two threads at once (a WebSocket
//! tunnel pumps each direction on its own), so no lock is held while the
//! socket blocks: a read waits for ciphertext holding only the incoming
//! buffer, then takes the session to decrypt it; a write takes the
//! session to encrypt into the outgoing buffer, then sends that without
//! it. Lock order, wherever more than one is taken: incoming, outgoing,
//! session.

use parking_lot::Mutex;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection, Connection, ServerConfig, ServerConnection};
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Ciphertext read at a time: one full TLS record and its header.
const INCOMING: usize = 16 * 1024 + 256;

/// The least time the rest of a record gets once its first bytes came
/// (see `read_plain`).
const RECORD_GRACE: Duration = Duration::from_secs(1);

/// Plaintext the session may hold before more ciphertext is fed to it:
/// rustls refuses to read more past 16 KiB of it.
const PLAINTEXT_HELD: usize = 16 * 1024;

/// The most [`TlsStream::say_closing`] waits for the session another
/// thread holds to make or read records.
const CLOSING_PATIENCE: Duration = Duration::from_millis(50);

pub struct TlsStream {
    tcp: TcpStream,
    session: Mutex<Connection>,
    incoming: Mutex<Incoming>,
    outgoing: Mutex<Vec<u8>>,
    /// Records taken out of `outgoing` are being sent (see
    /// `write_all_unless_answered`): nothing else may go until they have,
    /// or it would land inside one.
    sending: AtomicBool,
    /// The connection ended without the peer's `close_notify` (see
    /// [`TlsStream::cut_short`]).
    cut: AtomicBool,
    /// [`TlsStream::handshake`] holds (or is about to take) the session,
    /// for as long as the peer takes: [`TlsStream::say_closing`] does not
    /// wait for it.
    handshaking: AtomicBool,
}

/// Ciphertext read from the socket and not yet given to the session.
#[derive(Default)]
struct Incoming {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

/// Why a TLS handshake did not complete.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("no handshake within {0:?}")]
    Late(Duration),
    #[error("closed during the handshake")]
    Closed,
    /// What came first is an HTTP request, not a TLS hello: the client
    /// was sent `http://` to the HTTPS port.
    #[error("plain HTTP sent to the TLS port")]
    PlainHttp,
    #[error(transparent)]
    Tls(rustls::Error),
    #[error(transparent)]
    Io(io::Error),
}

impl HandshakeError {
    /// Says why the handshake with the client at `peer` failed, in the
    /// debug log: a client's failure is no fault of the proxy's.
    pub fn say_of(&self, peer: std::net::SocketAddr) {
        match self {
            HandshakeError::Tls(e) => {
                log::debug!("client {peer}: {}", crate::tls::words::handshake_failure(e))
            }
            other => log::debug!("client {peer}: TLS handshake: {other}"),
        }
    }
}

/// What a client's TLS handshake agreed, for the log and the `$ssl_*`
/// variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Agreed {
    /// The protocol version: `TLSv1.3`, `TLSv1.2`.
    pub protocol: &'static str,
    /// The cipher suite: `TLS13_AES_128_GCM_SHA256`.
    pub cipher: &'static str,
    /// Whether the handshake resumed an earlier session (by a ticket or
    /// an ID) rather than making a new one: `$ssl_session_reused`.
    pub resumed: bool,
    /// The protocol agreed in ALPN (`http/1.1`, `http/1.0`, or one a
    /// TLS stream offers): none when the client offered none
    /// (`$ssl_alpn_protocol`).
    pub alpn: Option<&'static str>,
    /// The key exchange group, as OpenSSL names it (`X25519`,
    /// `prime256v1`, `X25519MLKEM768`): none for a TLS 1.2 session
    /// resumed without one (`$ssl_curve`).
    pub group: Option<&'static str>,
}

/// A key exchange group's name as OpenSSL (and so nginx) writes it:
/// the IANA name, but for P-256's.
fn openssl_group_name(group: rustls::NamedGroup) -> Option<&'static str> {
    match group {
        rustls::NamedGroup::secp256r1 => Some("prime256v1"),
        other => other.as_str(),
    }
}

impl TlsStream {
    /// A client's connection, to be accepted with [`TlsStream::handshake`].
    pub fn accepting(tcp: TcpStream, config: Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        Ok(Self::over(tcp, ServerConnection::new(config)?.into()))
    }

    /// A connection to a backend known as `name`, which `tcp` is (or is
    /// about to be) connected to; the hello goes at
    /// [`TlsStream::handshake`].
    pub fn connecting(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Self, rustls::Error> {
        Ok(Self::over(tcp, ClientConnection::new(config, name)?.into()))
    }

    fn over(tcp: TcpStream, session: Connection) -> TlsStream {
        TlsStream {
            tcp,
            session: Mutex::new(session),
            incoming: Mutex::default(),
            outgoing: Mutex::default(),
            sending: AtomicBool::new(false),
            cut: AtomicBool::new(false),
            handshaking: AtomicBool::new(false),
        }
    }

    /// Whether the connection ended (a read gave `Ok(0)`) without the
    /// peer saying `close_notify` first: a message framed by the end of
    /// the connection may then have been cut short by anyone on the way
    /// (RFC 9112 §9.8), and is not complete.
    pub fn cut_short(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// Completes the handshake within `limit` in all (a peer sending its
    /// part a byte at a time takes no longer), then gives the socket back
    /// `read_timeout` for its reads.
    pub fn handshake(&self, limit: Duration, read_timeout: Duration) -> Result<(), HandshakeError> {
        let deadline = Instant::now() + limit;
        self.handshaking.store(true, Ordering::SeqCst);
        let mut session = self.session.lock();
        let result = (|| {
            let _ = self.tcp.set_read_timeout(Some(limit));
            if let Connection::Server(_) = *session {
                self.refuse_plain_http(limit)?;
            }
            while session.is_handshaking() {
                while session.wants_write() {
                    session
                        .write_tls(&mut &self.tcp)
                        .map_err(HandshakeError::Io)?;
                }
                if !session.is_handshaking() {
                    break;
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(HandshakeError::Late(limit));
                }
                let _ = self.tcp.set_read_timeout(Some(left));
                match session.read_tls(&mut &self.tcp) {
                    Ok(0) => return Err(HandshakeError::Closed),
                    Ok(_) => {}
                    Err(e) if super::conn::is_timeout(&e) => {
                        return Err(HandshakeError::Late(limit))
                    }
                    Err(e) => return Err(HandshakeError::Io(e)),
                }
                if let Err(e) = session.process_new_packets() {
                    // The alert that says why goes out before the close.
                    let _ = session.write_tls(&mut &self.tcp);
                    return Err(HandshakeError::Tls(e));
                }
            }
            // TLS 1.3's session tickets, sent after the handshake.
            while session.wants_write() {
                session
                    .write_tls(&mut &self.tcp)
                    .map_err(HandshakeError::Io)?;
            }
            Ok(())
        })();
        let _ = self.tcp.set_read_timeout(Some(read_timeout));
        drop(session);
        self.handshaking.store(false, Ordering::SeqCst);
        result
    }

    /// [`TlsStream::handshake`] with a client, counted in `metrics`; a
    /// resumed session's certificate is checked again as of now under
    /// `client_auth` (see [`crate::tls::ClientAuth::check_again`]).
    pub fn accept(
        &self,
        (limit, read_timeout): (Duration, Duration),
        client_auth: Option<&crate::tls::ClientAuth>,
        metrics: &crate::metrics::Metrics,
    ) -> Result<(), HandshakeError> {
        let checked = self.handshake(limit, read_timeout).and_then(|()| {
            match client_auth.filter(|_| self.resumed()) {
                Some(auth) => {
                    (auth.check_again(&self.client_certificates())).map_err(HandshakeError::Tls)
                }
                None => Ok(()),
            }
        });
        let counter = match checked {
            Ok(()) => &metrics.tls_handshakes,
            Err(_) => &metrics.tls_handshake_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        if checked.is_ok() && self.resumed() {
            metrics.tls_resumed.fetch_add(1, Ordering::Relaxed);
        }
        checked
    }

    /// Waits for the client's first byte, and tells a request sent in
    /// plain HTTP from a TLS hello.
    fn refuse_plain_http(&self, limit: Duration) -> Result<(), HandshakeError> {
        let mut first = [0u8; 1];
        match self.tcp.peek(&mut first) {
            Ok(0) => Err(HandshakeError::Closed),
            // Every TLS connection starts with a handshake record (22);
            // every HTTP request with a method's letters.
            Ok(_) if first[0].is_ascii_uppercase() => Err(HandshakeError::PlainHttp),
            Ok(_) => Ok(()),
            Err(e) if super::conn::is_timeout(&e) => Err(HandshakeError::Late(limit)),
            Err(e) => Err(HandshakeError::Io(e)),
        }
    }

    /// The protocol version, cipher suite and ALPN protocol agreed, and
    /// whether the session was resumed, for the log.
    pub fn agreed(&self) -> Agreed {
        let session = self.session.lock();
        let version = match session.protocol_version() {
            Some(rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            _ => "-",
        };
        let suite = session
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .unwrap_or("-");
        // Only those this proxy offers can be agreed.
        let alpn = session.alpn_protocol().and_then(crate::tls::alpn::agreed);
        let group = session.negotiated_key_exchange_group();
        Agreed {
            protocol: version,
            cipher: suite,
            resumed: session.handshake_kind() == Some(rustls::HandshakeKind::Resumed),
            alpn,
            group: group.and_then(|g| openssl_group_name(g.name())),
        }
    }

    /// The host name the client asked for in its hello (SNI), in lower
    /// case (nginx's `$ssl_server_name` is as the client wrote it).
    pub fn server_name(&self) -> Option<Arc<str>> {
        match &*self.session.lock() {
            Connection::Server(server) => {
                (server.server_name()).map(|name| Arc::from(name.to_ascii_lowercase()))
            }
            Connection::Client(_) => None,
        }
    }

    /// Whether the handshake resumed an earlier session.
    pub fn resumed(&self) -> bool {
        let session = self.session.lock();
        session.handshake_kind() == Some(rustls::HandshakeKind::Resumed)
    }

    /// The certificates a client showed at the handshake, its own first
    /// (`tls_verify_client`, which checked them); empty for none.
    pub fn client_certificates(&self) -> Vec<rustls_pki_types::CertificateDer<'static>> {
        let session = self.session.lock();
        match &*session {
            Connection::Server(server) => (server.peer_certificates())
                .map(|sent| sent.iter().map(|c| c.clone().into_owned()).collect())
                .unwrap_or_default(),
            Connection::Client(_) => Vec::new(),
        }
    }

    /// Reads plaintext: what the session holds, else what the next
    /// ciphertext gives. `wait`: block for it; otherwise `WouldBlock`
    /// when none has come. `Ok(0)` at the end of the stream, a
    /// `close_notify` or not (HTTP frames its own messages).
    ///
    /// A wait is bounded as a plain socket's read is, by the socket's
    /// receive timeout, however the record it waits for is cut up: one
    /// byte of it sent just within each timeout would otherwise hold the
    /// read for as many timeouts as the record has bytes. The rest of a
    /// record whose start came is given at least a second more, so that
    /// a request begun just before the idle timeout is not cut off where
    /// plain HTTP would read its first byte and go on with the head's own
    /// time.
    fn read_plain(&self, buf: &mut [u8], wait: bool) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let mut incoming = self.incoming.lock();
        // When the wait began, and when its first bytes came.
        let mut waited: Option<(Instant, Option<Instant>)> = None;
        loop {
            let (read, reply) = self.decrypt(&mut incoming, buf);
            if reply {
                self.send_queued();
            }
            match read {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(self.ended_cut()),
                Err(e) => return Err(e),
            }
            let fd = self.tcp.as_raw_fd();
            let n = match (wait, waited) {
                (false, _) => super::conn::recv_now(fd, incoming.space())?,
                // The first wait is the socket's own, timeout and all.
                (true, None) => {
                    waited = Some((Instant::now(), None));
                    super::conn::read_retrying(&mut &self.tcp, incoming.space())?
                }
                (true, Some((since, came))) => {
                    let came = came.unwrap_or_else(Instant::now);
                    waited = Some((since, Some(came)));
                    match super::conn::recv_now(fd, incoming.space()) {
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            self.wait_rest_of_record(since, came)?;
                            super::conn::read_retrying(&mut &self.tcp, incoming.space())?
                        }
                        read => read?,
                    }
                }
            };
            // Had a `close_notify` come, the session would have said the
            // end (`Ok(0)` above) before the socket is read again.
            if n == 0 {
                return Ok(self.ended_cut());
            }
            incoming.end += n;
        }
    }

    /// Notes an end without `close_notify`; what a read at the end gives.
    fn ended_cut(&self) -> usize {
        self.cut.store(true, Ordering::Relaxed);
        0
    }

    /// Waits for more of a record whose start `came` in a wait begun
    /// `since`: until the receive timeout from `since`, or a second after
    /// `came` if that is later (within the timeout's own length).
    /// `TimedOut` when nothing comes by then.
    fn wait_rest_of_record(&self, since: Instant, came: Instant) -> io::Result<()> {
        let Some(limit) = self.tcp.read_timeout()? else {
            return Ok(());
        };
        let due = (since + limit).max(came + limit.min(RECORD_GRACE));
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() || !super::conn::readable_within(self.tcp.as_raw_fd(), left)? {
            return Err(io::ErrorKind::TimedOut.into());
        }
        Ok(())
    }

    /// Gives the session the ciphertext read, as much as it takes, and
    /// reads plaintext from it. Also says whether the session has
    /// something to send (an alert; rustls sends its reply to a key
    /// update with the next record written).
    fn decrypt(&self, incoming: &mut Incoming, buf: &mut [u8]) -> (io::Result<usize>, bool) {
        let mut session = self.session.lock();
        if let Err(e) = feed(incoming, &mut session) {
            return (Err(e), true);
        }
        let read = session.reader().read(buf);
        (read, session.wants_write())
    }

    /// Sends what the session has queued on its own (an alert) unless a
    /// write is under way on another thread (a tunnel's other
    /// direction), whose end sends it. Not waiting for that write keeps
    /// this direction moving while the client reads nothing; a failure
    /// to send shows at the next read or write.
    fn send_queued(&self) {
        let Some(mut out) = self.outgoing.try_lock() else {
            return;
        };
        if self.sending.load(Ordering::Relaxed) {
            return;
        }
        {
            let mut session = self.session.lock();
            while session.wants_write() {
                if session.write_tls(&mut *out).is_err() {
                    break;
                }
            }
        }
        // What a socket that does not wait (a stream's relay) leaves is
        // kept, after records [`TlsStream::write_now`] kept: every write
        // sends those first, and a record cut short would break the
        // session.
        let mut sent = 0;
        while sent < out.len() {
            match (&self.tcp).write(&out[sent..]) {
                Ok(0) => break,
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => sent = out.len(),
            }
        }
        out.drain(..sent);
    }

    /// Whether the client closed the connection (a `close_notify`, or the
    /// TCP connection's end) with nothing left to read, as far as a look
    /// without waiting tells: what has arrived is given to the session,
    /// its plaintext kept for the reads to come. Not knowing, because a
    /// read is under way on another thread, is no.
    pub fn peer_gone(&self) -> bool {
        let Some(mut incoming) = self.incoming.try_lock() else {
            return false;
        };
        // Records that carry no data (an alert, a key update) may stand
        // before the end: read on, a few times, to the end or to nothing.
        for _ in 0..4 {
            let (ended, came) = match super::conn::recv_now(self.tcp.as_raw_fd(), incoming.space())
            {
                Ok(0) => (true, false),
                Ok(n) => {
                    incoming.end += n;
                    (false, true)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => (false, false),
                Err(_) => return true,
            };
            let mut session = self.session.lock();
            if feed(&mut incoming, &mut session).is_err() {
                return true;
            }
            let Ok(state) = session.process_new_packets() else {
                return true;
            };
            if state.plaintext_bytes_to_read() > 0 || incoming.start < incoming.end {
                return false;
            }
            if ended || state.peer_has_closed() {
                return true;
            }
            if !came {
                // Nothing came this time: nothing more to look at.
                return false;
            }
        }
        false
    }

    /// Encrypts `bufs` (as much as the session takes, which it says) and
    /// sends the records, with whatever else the session had queued.
    fn write_plain(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut out = self.outgoing.lock();
        let taken = {
            let mut session = self.session.lock();
            let taken = if bufs.iter().all(|b| b.is_empty()) {
                0
            } else {
                session.writer().write_vectored(bufs)?
            };
            while session.wants_write() {
                session.write_tls(&mut *out)?;
            }
            taken
        };
        // Kept for the next write (one holds at most the records of the
        // 64 KiB rustls takes at a time); given back once the connection
        // idles (`release_if_empty`).
        let sent = (&self.tcp).write_all(&out);
        out.clear();
        sent.map(|()| taken)
    }

    /// [`super::conn::write_all_unless_answered`] over TLS: `bufs` are
    /// encrypted a batch at a time, and the records sent while the peer
    /// is watched. The records are taken out of `outgoing` for that, as
    /// what `answered` reads takes the locks before it.
    ///
    /// The bytes it says went are those of `bufs` whose records all did.
    pub fn write_all_unless_answered(
        &self,
        mut bufs: &mut [IoSlice<'_>],
        mut answered: impl FnMut() -> bool,
    ) -> io::Result<super::conn::Sent> {
        IoSlice::advance_slices(&mut bufs, 0);
        let mut plain = 0;
        while !bufs.is_empty() {
            let (records, taken) = {
                let mut out = self.outgoing.lock();
                let mut session = self.session.lock();
                let taken = session.writer().write_vectored(bufs)?;
                if taken == 0 {
                    return Err(io::ErrorKind::WriteZero.into());
                }
                IoSlice::advance_slices(&mut bufs, taken);
                while session.wants_write() {
                    session.write_tls(&mut *out)?;
                }
                // Set under the lock the others look at it under.
                self.sending.store(true, Ordering::Relaxed);
                (std::mem::take(&mut *out), taken as u64)
            };
            let sent = super::conn::send_all_unless_answered(
                &self.tcp,
                &mut [IoSlice::new(&records)],
                &mut answered,
            );
            // The buffer goes back for the next batch.
            let mut out = self.outgoing.lock();
            self.sending.store(false, Ordering::Relaxed);
            if out.is_empty() {
                *out = records;
                out.clear();
            }
            drop(out);
            if !sent?.whole {
                return Ok(super::conn::Sent {
                    whole: false,
                    bytes: plain,
                });
            }
            plain += taken;
        }
        Ok(super::conn::Sent {
            whole: true,
            bytes: plain,
        })
    }

    /// Gives the incoming buffer back while it holds nothing (see
    /// [`super::conn::ClientStream::release_if_empty`]).
    pub fn release_if_empty(&self) {
        if let Some(mut incoming) = self.incoming.try_lock() {
            if incoming.start == incoming.end && !incoming.buf.is_empty() {
                super::conn::give_buffer(std::mem::take(&mut incoming.buf));
                incoming.start = 0;
                incoming.end = 0;
            }
        }
        if let Some(mut out) = self.outgoing.try_lock() {
            // Records not sent yet are kept (see `write_now`).
            if out.is_empty() {
                *out = Vec::new();
            }
        }
    }

    /// The bytes of storage the connection holds for records read and to
    /// be sent (rustls's own apart): none once given back while it idles.
    pub fn held_buffers(&self) -> usize {
        self.incoming.lock().buf.len() + self.outgoing.lock().capacity()
    }

    /// Whether the peer sends again within `patience`, or something waits
    /// to be read already. For the long wait of an idle connection whose
    /// buffers and stack below the wait were given back (see
    /// `Client::read_head`): it takes no buffer, and runs no deeper than
    /// its caller, where a read would wait under the session's.
    pub fn wait_idle(&self, patience: Duration) -> io::Result<bool> {
        Ok(self.has_waiting() || super::conn::readable_within(self.tcp.as_raw_fd(), patience)?)
    }

    /// Whether plaintext or ciphertext is waiting to be read, without
    /// reading or waiting (a pipelined request, the next one on a kept
    /// connection). Not knowing, because another thread holds the
    /// session, is no.
    pub fn has_waiting(&self) -> bool {
        if let Some(incoming) = self.incoming.try_lock() {
            if incoming.start < incoming.end {
                return true;
            }
        }
        let held = (self.session.try_lock())
            .and_then(|mut s| s.process_new_packets().ok())
            .is_some_and(|state| state.plaintext_bytes_to_read() > 0);
        held || matches!(super::conn::peek(&self.tcp), Ok(n) if n > 0)
    }

    /// Ends the connection in `how`'s direction; a write side closed
    /// says so with a `close_notify` first (see [`TlsStream::say_closing`]).
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        if how != Shutdown::Read {
            self.say_closing();
        }
        self.tcp.shutdown(how)
    }

    /// Sends `close_notify`, which tells the client the connection ends
    /// here and not by a cut (RFC 8446 §6.1), if the socket takes it at
    /// once: never waits on the socket (shutdown's registry thread calls
    /// this, holding the registry), for the session only while another
    /// thread makes or reads records, and says nothing when a write or the
    /// handshake is under way on another thread (a forced close).
    pub fn say_closing(&self) {
        let Some(mut out) = self.outgoing.try_lock() else {
            return;
        };
        if self.sending.load(Ordering::Relaxed) {
            return;
        }
        // Past the handshake, the session is held only while records are
        // made or read (a tunnel's other direction deciphering what came),
        // never across a wait on the socket: waited for, briefly, or the
        // peer would take an orderly end for a cut.
        if self.handshaking.load(Ordering::SeqCst) {
            return;
        }
        let Some(mut session) = self.session.try_lock_for(CLOSING_PATIENCE) else {
            return;
        };
        // A handshake that failed, or never began, says nothing in TLS: a
        // client that spoke none, or was refused, gets no record of it.
        if session.is_handshaking() {
            return;
        }
        session.send_close_notify();
        while session.wants_write() {
            if session.write_tls(&mut *out).is_err() {
                break;
            }
        }
        drop(session);
        if !out.is_empty() {
            let _ = socket2::SockRef::from(&self.tcp)
                .send_with_flags(&out, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
            out.clear();
        }
    }
}

/// A connection closed without a word (an idle one to a backend that the
/// pool lets go, one whose exchange failed) still says `close_notify`,
/// if it has not: the peer then knows the end was meant, and logs no
/// truncation. Not before the handshake ended: to a client refused
/// before it, or one that spoke plain HTTP, nothing is said in TLS.
impl Drop for TlsStream {
    fn drop(&mut self) {
        if !self.session.get_mut().is_handshaking() {
            self.say_closing();
        }
    }
}

/// Gives the session the ciphertext read, as much as it takes: all of it
/// unless the plaintext it holds reaches what rustls allows (the rest
/// waits in `incoming`), or the peer said `close_notify` (the rest is
/// dropped).
fn feed(incoming: &mut Incoming, session: &mut Connection) -> io::Result<()> {
    let invalid = |e| io::Error::new(io::ErrorKind::InvalidData, e);
    while incoming.start < incoming.end {
        let held = session.process_new_packets().map_err(invalid)?;
        if held.plaintext_bytes_to_read() >= PLAINTEXT_HELD {
            break;
        }
        match session.read_tls(&mut &incoming.buf[incoming.start..incoming.end])? {
            0 => incoming.start = incoming.end,
            n => incoming.start += n,
        }
    }
    session.process_new_packets().map_err(invalid)?;
    Ok(())
}

impl Incoming {
    /// Room after the bytes held, made by moving them to the front (or
    /// by the buffer's first allocation).
    fn space(&mut self) -> &mut [u8] {
        if self.buf.is_empty() {
            self.buf = super::conn::take_buffer(INCOMING);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }
}

impl Read for &TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_plain(buf, true)
    }
}

impl Write for &TlsStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_plain(&[IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        self.write_plain(bufs)
    }

    /// Sends the records [`TlsStream::write_now`] kept.
    fn flush(&mut self) -> io::Result<()> {
        let mut out = self.outgoing.lock();
        let sent = (&self.tcp).write_all(&out);
        out.clear();
        sent
    }
}

impl TlsStream {
    /// Encrypts `bufs` (a batch of them, as rustls takes) and sends what
    /// the socket takes now, without waiting; returns the plaintext bytes
    /// taken, 0 while records of an earlier call still wait. The records
    /// the socket did not take stay in `outgoing`, where every other
    /// write sends them first.
    pub fn write_now(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let mut out = self.outgoing.lock();
        let send_now = |out: &mut Vec<u8>| -> io::Result<()> {
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            match socket2::SockRef::from(&self.tcp).send_with_flags(out, flags) {
                Ok(n) => {
                    out.drain(..n);
                    Ok(())
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
                Err(e) => Err(e),
            }
        };
        if !out.is_empty() {
            send_now(&mut out)?;
            if !out.is_empty() {
                return Ok(0);
            }
        }
        let taken = {
            let mut session = self.session.lock();
            let taken = session.writer().write_vectored(bufs)?;
            while session.wants_write() {
                session.write_tls(&mut *out)?;
            }
            taken
        };
        send_now(&mut out)?;
        Ok(taken)
    }

    /// Whether records [`TlsStream::write_now`] kept wait to be sent.
    pub fn has_unsent(&self) -> bool {
        self.outgoing.try_lock().is_some_and(|out| !out.is_empty())
    }

    /// A read that does not wait: `WouldBlock` when no plaintext can be
    /// had without waiting.
    pub fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_plain(buf, false)
    }
}

impl AsFd for TlsStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.tcp.as_fd()
    }
}

impl AsRawFd for TlsStream {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }
}
