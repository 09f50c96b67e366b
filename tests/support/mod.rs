//! Shared helpers for the integration tests: tiny backends in plain
//! `std::net`, the proxy started in front of them, and a raw-socket client
//! that parses responses itself (Content-Length, chunked, until close).
//!
//! Every blocking read has a timeout ([`IO_TIMEOUT`]) and every wait has a
//! deadline, so a proxy bug makes a test fail, never hang.

#![allow(dead_code)]

pub mod acme_server;
pub mod dns_server;
pub mod mmdb;
pub mod ocsp;
pub mod pki;
pub mod srv_dns;
pub mod tls_backend;
pub mod tls_client;

use inverso::config::{Config, LastAddresses, Loader, Target};
use inverso::{Server, ServerHandle};
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Longest any single socket read or write in a test may block.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest a test waits for a condition to become true.
pub const WAIT_LIMIT: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds or `limit` passes; returns whether it held.
pub fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Where a test backend holds a response until the test opens it; bounded
/// by [`WAIT_LIMIT`], so a test that never opens it fails its assertions
/// instead of hanging.
#[derive(Clone, Default)]
pub struct Gate(Arc<AtomicBool>);

impl Gate {
    pub fn new() -> Gate {
        Gate::default()
    }

    pub fn open(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether it opened within the limit.
    pub fn wait(&self) -> bool {
        wait_until(WAIT_LIMIT, || self.0.load(Ordering::SeqCst))
    }
}

/// FNV-1a, 64 bits: enough to tell two large bodies apart in a message.
pub fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// `len` bytes of a pattern that does not repeat on any power-of-two period.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

// ---------------------------------------------------------------- parsing

/// A parsed message head (request or response).
#[derive(Clone, Debug)]
pub struct Head {
    pub start_line: String,
    /// Names as sent (case preserved), values trimmed.
    pub headers: Vec<(String, String)>,
    /// The head exactly as received, CRLF CRLF included.
    pub raw: String,
}

impl Head {
    fn parse(raw: &[u8]) -> io::Result<Head> {
        let text = String::from_utf8(raw.to_vec()).map_err(|_| bad("head is not UTF-8"))?;
        let mut lines = text.split("\r\n");
        let start_line = lines.next().unwrap_or_default().to_string();
        let mut headers = Vec::new();
        for line in lines.filter(|l| !l.is_empty()) {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| bad(&format!("bad header line {line:?}")))?;
            headers.push((name.to_string(), value.trim().to_string()));
        }
        Ok(Head {
            start_line,
            headers,
            raw: text,
        })
    }

    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_all(name).next()
    }

    pub fn get_all<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Whether the comma-separated field `name` contains `token`.
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    }

    pub fn is_chunked(&self) -> bool {
        self.get_all("transfer-encoding")
            .flat_map(|v| v.split(','))
            .last()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    }

    fn content_length(&self) -> io::Result<Option<usize>> {
        match self.get("content-length") {
            None => Ok(None),
            Some(v) => v
                .parse()
                .map(Some)
                .map_err(|_| bad(&format!("bad Content-Length {v:?}"))),
        }
    }
}

fn bad(message: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message.to_string())
}

/// Largest head either side of a test accepts.
const MAX_HEAD: usize = 256 * 1024;

/// A stream with a read buffer, for reading heads and bodies.
pub struct Reader<S = TcpStream> {
    pub stream: S,
    buf: Vec<u8>,
}

impl<S: Read> Reader<S> {
    pub fn new(stream: S) -> Reader<S> {
        Reader {
            stream,
            buf: Vec::new(),
        }
    }

    /// Reads more bytes into the buffer; 0 at end of stream.
    fn fill(&mut self) -> io::Result<usize> {
        let mut chunk = [0u8; 64 * 1024];
        let n = self.stream.read(&mut chunk)?;
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(n)
    }

    /// Bytes received but not consumed yet.
    /// Whether the stream ends with the next read, nothing buffered before
    /// it: its end, a reset, or (TLS) an end without `close_notify`. A
    /// timeout or more bytes count as not closed.
    pub fn is_closed(&mut self) -> bool {
        if !self.buffered().is_empty() {
            return false;
        }
        let mut byte = [0u8; 1];
        match self.stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => matches!(
                e.kind(),
                io::ErrorKind::UnexpectedEof
                    | io::ErrorKind::ConnectionReset
                    | io::ErrorKind::ConnectionAborted
            ),
        }
    }

    pub fn buffered(&self) -> &[u8] {
        &self.buf
    }

    /// The next head; `None` when the stream ends cleanly before its first
    /// byte.
    pub fn read_head(&mut self) -> io::Result<Option<Head>> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n\r\n") {
                let raw: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Head::parse(&raw).map(Some);
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("head too large"));
            }
            if self.fill()? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "stream ended inside a head",
                    ))
                };
            }
        }
    }

    pub fn read_line(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = find(&self.buf, b"\r\n") {
                let line: Vec<u8> = self.buf.drain(..end + 2).collect();
                return String::from_utf8(line[..end].to_vec()).map_err(|_| bad("bad line"));
            }
            if self.buf.len() > MAX_HEAD {
                return Err(bad("line too long"));
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }

    pub fn read_exact_body(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            if self.fill()? == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("body ended after {} of {n} bytes", self.buf.len()),
                ));
            }
        }
        Ok(self.buf.drain(..n).collect())
    }

    /// Decodes a chunked body (extensions ignored, trailers skipped).
    pub fn read_chunked(&mut self) -> io::Result<Vec<u8>> {
        Ok(self.read_chunked_with_trailers()?.0)
    }

    /// Decodes a chunked body (extensions ignored), and its trailer
    /// field lines as they came.
    pub fn read_chunked_with_trailers(&mut self) -> io::Result<(Vec<u8>, Vec<String>)> {
        let mut body = Vec::new();
        loop {
            let line = self.read_line()?;
            let size = line.split(';').next().unwrap_or_default().trim();
            let size = usize::from_str_radix(size, 16)
                .map_err(|_| bad(&format!("bad chunk size line {line:?}")))?;
            if size == 0 {
                // Trailer fields, then the empty line.
                let mut trailers = Vec::new();
                loop {
                    match self.read_line()? {
                        end if end.is_empty() => return Ok((body, trailers)),
                        field => trailers.push(field),
                    }
                }
            }
            body.extend_from_slice(&self.read_exact_body(size)?);
            if !self.read_line()?.is_empty() {
                return Err(bad("chunk data not followed by CRLF"));
            }
        }
    }

    pub fn read_to_end(&mut self) -> io::Result<Vec<u8>> {
        while self.fill()? != 0 {}
        Ok(std::mem::take(&mut self.buf))
    }

    /// Reads one response (a 1xx is returned on its own); `to_head` says
    /// the request was HEAD, whose response has no body. Any stream: a
    /// TLS client's as well as a TCP one's.
    pub fn read_response(&mut self, to_head: bool) -> io::Result<Response> {
        let head = self.read_head()?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::UnexpectedEof, "closed before a response")
        })?;
        let status: u16 = head
            .start_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad(&format!("bad status line {:?}", head.start_line)))?;
        let body = if to_head || status < 200 || status == 204 || status == 304 {
            Vec::new()
        } else if head.is_chunked() {
            self.read_chunked()?
        } else if let Some(n) = head.content_length()? {
            self.read_exact_body(n)?
        } else {
            self.read_to_end()?
        };
        Ok(Response { status, head, body })
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------- backends

/// One request as a backend received it.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Which accepted connection (0, 1, ...) it came on.
    pub conn: usize,
    pub head: Head,
    /// The body, decoded from whatever framing the proxy used.
    pub body: Vec<u8>,
    /// The trailer field lines after a chunked body, as they came.
    pub trailers: Vec<String>,
}

impl Seen {
    pub fn method(&self) -> &str {
        self.head.start_line.split(' ').next().unwrap_or_default()
    }

    pub fn path(&self) -> &str {
        self.head.start_line.split(' ').nth(1).unwrap_or_default()
    }

    /// The first value of the field `name`, or `absent` when there is none.
    pub fn field_or(&self, name: &str, absent: &str) -> String {
        self.head.get(name).unwrap_or(absent).to_string()
    }
}

/// What a backend does with its connection after the handler answered.
pub enum Action {
    /// Read the next request.
    KeepAlive,
    /// Close the connection.
    Close,
    /// Answer nothing more: wait until the proxy closes (or the I/O timeout).
    Hang,
}

pub type Handler = Arc<dyn Fn(&Seen, &mut TcpStream) -> Action + Send + Sync>;

/// A tiny origin server on an ephemeral loopback port.
#[derive(Clone)]
pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    /// Requests received (counted once the whole request was read).
    pub requests: Arc<AtomicUsize>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    /// Connections that ended (closed by either side).
    pub closed: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    /// Starts a backend whose `handler` writes each response itself.
    pub fn start(
        name: &str,
        handler: impl Fn(&Seen, &mut TcpStream) -> Action + Send + Sync + 'static,
    ) -> Backend {
        Backend::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), name, handler)
    }

    /// [`Backend::start`] on a listener of the test's (`[::1]:0`).
    pub fn start_on(
        listener: TcpListener,
        name: &str,
        handler: impl Fn(&Seen, &mut TcpStream) -> Action + Send + Sync + 'static,
    ) -> Backend {
        let backend = Backend::counting(name, listener.local_addr().unwrap());
        let handler: Handler = Arc::new(handler);
        let b = backend.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let id = b.connections.fetch_add(1, Ordering::SeqCst);
                let b = b.clone();
                let handler = handler.clone();
                std::thread::spawn(move || {
                    let _ = b.serve(id, stream, &handler);
                    b.closed.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        backend
    }

    /// A backend named `name` at `addr`, having counted nothing yet.
    pub fn counting(name: &str, addr: SocketAddr) -> Backend {
        Backend {
            name: name.to_string(),
            addr,
            requests: Arc::default(),
            connections: Arc::default(),
            closed: Arc::default(),
            seen: Arc::default(),
        }
    }

    /// A backend answering every request with 200, an `X-Backend: name`
    /// header and a body describing what it received:
    /// `name METHOD PATH len=N fnv=HASH`.
    pub fn echo(name: &str) -> Backend {
        Backend::echo_on(TcpListener::bind("127.0.0.1:0").unwrap(), name)
    }

    /// [`Backend::echo`] on a listener of the test's (`[::1]:0`).
    pub fn echo_on(listener: TcpListener, name: &str) -> Backend {
        let me = name.to_string();
        Backend::start_on(listener, name, move |seen, out| {
            let body = describe(&me, seen);
            respond(out, 200, &[("X-Backend", &me)], body.as_bytes());
            Action::KeepAlive
        })
    }

    fn serve(&self, id: usize, stream: TcpStream, handler: &Handler) -> io::Result<()> {
        serve(id, stream, &self.seen, &self.requests, &**handler)
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn closed(&self) -> usize {
        self.closed.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The configured target for this backend, named `127.0.0.1:PORT`.
    pub fn target(&self) -> Target {
        target(self.addr)
    }
}

/// A backend's end of a connection, TCP or Unix: what [`serve`] needs of it.
pub trait Conn: Read + Write + Sized {
    fn try_clone(&self) -> io::Result<Self>;
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()>;
}

impl Conn for TcpStream {
    fn try_clone(&self) -> io::Result<Self> {
        TcpStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        TcpStream::shutdown(self, how)
    }
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

impl Conn for UnixStream {
    fn try_clone(&self) -> io::Result<Self> {
        UnixStream::try_clone(self)
    }
    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        UnixStream::shutdown(self, how)
    }
    fn set_timeouts(&self, timeout: Duration) -> io::Result<()> {
        self.set_read_timeout(Some(timeout))?;
        self.set_write_timeout(Some(timeout))
    }
}

/// Reads requests from `stream` (connection number `id`) until it ends,
/// each counted in `requests` and kept in `seen`, and has `handler`
/// answer each.
fn serve<S: Conn>(
    id: usize,
    stream: S,
    seen: &Mutex<Vec<Seen>>,
    requests: &AtomicUsize,
    handler: &(dyn Fn(&Seen, &mut S) -> Action + Send + Sync),
) -> io::Result<()> {
    stream.set_timeouts(IO_TIMEOUT)?;
    let mut writer = stream.try_clone()?;
    let mut reader = Reader::new(stream);
    while let Some(head) = reader.read_head()? {
        let (body, trailers) = if head.is_chunked() {
            reader.read_chunked_with_trailers()?
        } else {
            let n = head.content_length()?.unwrap_or(0);
            (reader.read_exact_body(n)?, Vec::new())
        };
        let request = Seen {
            conn: id,
            head,
            body,
            trailers,
        };
        seen.lock().unwrap().push(request.clone());
        requests.fetch_add(1, Ordering::SeqCst);
        match handler(&request, &mut writer) {
            Action::KeepAlive => {}
            Action::Close => {
                let _ = writer.shutdown(Shutdown::Both);
                return Ok(());
            }
            Action::Hang => {
                let _ = reader.read_to_end();
                return Ok(());
            }
        }
    }
    Ok(())
}

/// A tiny origin server on a Unix socket, `app.sock` in a temporary
/// directory of its own (removed when the last clone is dropped; the
/// accepting thread holds none).
#[derive(Clone)]
pub struct UnixBackend {
    pub name: String,
    pub path: PathBuf,
    /// Requests received (counted once the whole request was read).
    pub requests: Arc<AtomicUsize>,
    /// Connections accepted.
    pub connections: Arc<AtomicUsize>,
    pub seen: Arc<Mutex<Vec<Seen>>>,
    _dir: Arc<tempfile::TempDir>,
}

impl UnixBackend {
    /// Starts a backend whose `handler` writes each response itself.
    pub fn start(
        name: &str,
        handler: impl Fn(&Seen, &mut UnixStream) -> Action + Send + Sync + 'static,
    ) -> UnixBackend {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("app.sock");
        let listener = UnixListener::bind(&path).unwrap();
        let backend = UnixBackend {
            name: name.to_string(),
            path,
            requests: Arc::default(),
            connections: Arc::default(),
            seen: Arc::default(),
            _dir: Arc::new(dir),
        };
        let handler = Arc::new(handler);
        let (requests, connections, seen) = (
            backend.requests.clone(),
            backend.connections.clone(),
            backend.seen.clone(),
        );
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { continue };
                let id = connections.fetch_add(1, Ordering::SeqCst);
                let (requests, seen, handler) = (requests.clone(), seen.clone(), handler.clone());
                std::thread::spawn(move || {
                    let _ = serve(id, stream, &seen, &requests, &*handler);
                });
            }
        });
        backend
    }

    /// A backend answering as [`Backend::echo`] does.
    pub fn echo(name: &str) -> UnixBackend {
        let me = name.to_string();
        UnixBackend::start(name, move |seen, out| {
            let body = describe(&me, seen);
            respond(out, 200, &[("X-Backend", &me)], body.as_bytes());
            Action::KeepAlive
        })
    }

    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// The configured target for this backend, named `unix:PATH`.
    pub fn target(&self) -> Target {
        Target::unix(&self.path)
    }
}

/// A path in `dir` where a Unix socket file is left with nobody listening
/// on it: connecting is refused (ECONNREFUSED), as to a backend that died
/// without removing its socket.
pub fn dead_unix_path(dir: &Path) -> PathBuf {
    let path = dir.join("dead.sock");
    drop(UnixListener::bind(&path).unwrap());
    path
}

/// The body [`Backend::echo`] answers with.
pub fn describe(name: &str, seen: &Seen) -> String {
    format!(
        "{name} {} {} len={} fnv={:016x}",
        seen.method(),
        seen.path(),
        seen.body.len(),
        fnv(&seen.body)
    )
}

/// Writes a response with a Content-Length body.
pub fn respond(out: &mut impl Write, status: u16, headers: &[(&str, &str)], body: &[u8]) {
    let mut bytes = format!("HTTP/1.1 {status} Whatever\r\n");
    for (name, value) in headers {
        bytes.push_str(&format!("{name}: {value}\r\n"));
    }
    bytes.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    let mut bytes = bytes.into_bytes();
    bytes.extend_from_slice(body);
    let _ = out.write_all(&bytes);
}

/// An origin whose every answer is fresh for a minute, its body
/// `PATH #N`, N counting its responses from 1: a body tells which
/// response the cache stored.
pub fn numbered_fresh_origin() -> Backend {
    let numbered = AtomicUsize::new(0);
    Backend::start("origin", move |seen, out| {
        let n = numbered.fetch_add(1, Ordering::SeqCst) + 1;
        let body = format!("{} #{n}", seen.path());
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=60")],
            body.as_bytes(),
        );
        Action::KeepAlive
    })
}

/// Writes a 304 with these fields (it has no body).
pub fn write_304(out: &mut TcpStream, fields: &[(&str, &str)]) {
    let mut bytes = String::from("HTTP/1.1 304 Not Modified\r\n");
    for (name, value) in fields {
        bytes.push_str(&format!("{name}: {value}\r\n"));
    }
    bytes.push_str("\r\n");
    let _ = out.write_all(bytes.as_bytes());
}

/// Sends a `GET path` with each set of fields on a connection of its
/// own, without waiting for the answers (requests that queue behind a
/// fill, say): see [`statuses_and_bodies`].
pub fn sent_each(proxy: &Proxy, path: &str, each: &[&[(&str, &str)]]) -> Vec<Client> {
    (each.iter())
        .map(|fields| {
            let mut client = proxy.connect();
            client.send(&request_bytes("GET", path, fields, b""));
            client
        })
        .collect()
}

/// The status and body each client is answered, in order.
pub fn statuses_and_bodies(clients: &mut [Client]) -> Vec<(u16, String)> {
    (clients.iter_mut())
        .map(|c| {
            let r = c.response();
            (r.status, r.body_str())
        })
        .collect()
}

/// Whatever `localhost` resolves to first: where a backend must listen
/// for a target named `localhost:PORT`.
/// `method path` for `test.example` with extra fields and a
/// Content-Length body (no Content-Length field when `body` is empty),
/// as sent.
pub fn request_bytes(method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: test.example\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    request
}

pub fn localhost_ip() -> IpAddr {
    use std::net::ToSocketAddrs;
    ("localhost", 0)
        .to_socket_addrs()
        .unwrap()
        .next()
        .unwrap()
        .ip()
}

pub fn target(addr: SocketAddr) -> Target {
    Target::new(addr.to_string(), addr)
}

/// A loopback address nothing listens on: connecting is refused at once.
///
/// The port stays bound (without `listen`) for the rest of the test run:
/// a port merely released could be handed to a backend of a test running
/// in parallel, whose counters would then see this test's requests.
pub fn dead_addr() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    // Never closed: see above. One descriptor per call, a few per run.
    std::mem::forget(socket);
    addr
}

/// A loopback address where connecting hangs, as with a backend host that
/// is down and drops packets: a listener with a backlog of one that never
/// accepts, its queue already full, so that Linux drops further SYNs.
/// Kept for the rest of the run, like [`dead_addr`]'s.
pub fn blackhole_addr() -> SocketAddr {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    socket.listen(0).unwrap();
    let addr = socket.local_addr().unwrap().as_socket().unwrap();
    let filler = TcpStream::connect(addr).unwrap();
    std::mem::forget((socket, filler));
    addr
}

// ---------------------------------------------------------------- the proxy

/// A running proxy with its access log in a temporary directory.
pub struct Proxy {
    handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub log_path: PathBuf,
    _dir: tempfile::TempDir,
}

/// Starts the proxy on `127.0.0.1:0` in front of `targets`; `tweak` adjusts
/// the configuration first.
pub fn start_proxy(targets: &[SocketAddr], tweak: impl FnOnce(&mut Config)) -> Proxy {
    let dir = tempfile::tempdir().unwrap();
    let log_path = dir.path().join("access.log");
    let mut config = proxy_config(targets, &log_path);
    tweak(&mut config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let handle = Server::start_on(listener, config).unwrap();
    Proxy {
        addr: handle.local_addr(),
        handle: Some(handle),
        log_path,
        _dir: dir,
    }
}

/// The configuration [`start_proxy`] starts from: `targets`, the access
/// log to `log_path` only, no snapshot, 5 s timeouts, no cache.
fn proxy_config(targets: &[SocketAddr], log_path: &std::path::Path) -> Config {
    let mut config = Config::with_targets(targets.iter().copied().map(target).collect());
    config.log_to_stdout = false;
    config.path_to_persistence = None;
    config.path_to_log = Some(log_path.to_path_buf());
    config.connection_timeout = Duration::from_secs(5);
    // These tests are about forwarding: a cache answering repeated GETs
    // itself would hide requests from the backends' counters.
    config.cache_size = 0;
    config
}

/// A `start_proxy` (or `Proxy::reload`) tweak that puts in force the
/// configuration `text` holds, as proxy.conf, but for what the harness
/// keeps its own: the access log's path, no stdout log, no snapshot, no
/// cache (a test that wants one sets `cache_size` after).
pub fn from_file(text: &str) -> impl FnOnce(&mut Config) {
    from_file_keeping(text, LastAddresses::default()).unwrap_or_else(|e| panic!("{e}\nin:\n{text}"))
}

/// [`from_file`] as a reload (SIGHUP) builds it: a name that does not
/// resolve keeps what `last` gives it (`Control::last_addresses`); the
/// loader's error if it refuses `text`.
pub fn from_file_keeping(
    text: &str,
    last: LastAddresses,
) -> Result<impl FnOnce(&mut Config), String> {
    // `port = 0`: the loader's check of a target at the proxy's own
    // address would otherwise compare with the default port.
    let text = format!("port = 0\n{text}");
    let mut loader = Loader::new();
    loader.file("proxy.conf", &text).unwrap();
    let built = (loader.keep_last_addresses(last).build()).map_err(|e| e.to_string())?;
    Ok(move |c: &mut Config| {
        let log = c.path_to_log.take();
        *c = built;
        c.path_to_log = log;
        c.log_to_stdout = false;
        c.path_to_persistence = None;
        c.connection_timeout = Duration::from_secs(5);
        c.cache_size = 0;
    })
}

/// `body` framed in chunks of `piece` bytes (each size line followed by
/// `extension`, e.g. `;ext=1`), then the last chunk.
pub fn chunked(body: &[u8], piece: usize, extension: &str) -> Vec<u8> {
    let mut framed = Vec::with_capacity(body.len() + body.len() / piece.max(1) * 12 + 5);
    for part in body.chunks(piece) {
        framed.extend_from_slice(format!("{:x}{extension}\r\n", part.len()).as_bytes());
        framed.extend_from_slice(part);
        framed.extend_from_slice(b"\r\n");
    }
    framed.extend_from_slice(b"0\r\n\r\n");
    framed
}

/// What the loader says of `text` as proxy.conf: an error is expected.
#[track_caller]
pub fn config_error(text: &str) -> String {
    let mut loader = Loader::new();
    let result = match loader.file("proxy.conf", text) {
        Ok(loader) => loader.build().map(drop),
        Err(e) => Err(e),
    };
    match result {
        Ok(()) => panic!("taken:\n{text}"),
        Err(e) => e.to_string(),
    }
}

/// Each case, `base` and its lines as proxy.conf, is refused as
/// `proxy.conf:LINE: key: what is wrong`, naming its key and saying each
/// of its words.
#[track_caller]
pub fn assert_refused(base: &str, cases: &[(String, &str, Vec<String>)]) {
    for (lines, key, words) in cases {
        let text = format!("{base}{lines}");
        let message = config_error(&text);
        assert!(
            message.starts_with("proxy.conf:") && message.contains(&format!(": {key}: ")),
            "does not name {key}: {message}\nfor:\n{text}"
        );
        for word in words {
            assert!(
                message.contains(word),
                "does not say {word:?}: {message}\nfor:\n{text}"
            );
        }
    }
}

/// [`from_file`], with the admin listener on an ephemeral port.
pub fn from_file_with_admin(text: &str) -> impl FnOnce(&mut Config) {
    let tweak = from_file(text);
    move |c: &mut Config| {
        tweak(c);
        c.admin_port = Some(0);
    }
}

impl Proxy {
    /// The configuration [`start_proxy`] would make for `targets` and
    /// `tweak`, logging where this proxy logs: one to reload with.
    pub fn config_for(&self, targets: &[SocketAddr], tweak: impl FnOnce(&mut Config)) -> Config {
        let mut config = proxy_config(targets, &self.log_path);
        tweak(&mut config);
        config
    }

    /// Reloads with [`Proxy::config_for`]`(targets, tweak)`, which must be
    /// taken.
    pub fn reload(&self, targets: &[SocketAddr], tweak: impl FnOnce(&mut Config)) {
        let next = self.config_for(targets, tweak);
        self.handle().control().reload(next).unwrap();
    }

    pub fn connect(&self) -> Client {
        Client::connect(self.addr)
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().unwrap()
    }

    pub fn take_handle(&mut self) -> ServerHandle {
        self.handle.take().unwrap()
    }

    /// Shuts the proxy down (which flushes the access log) on a helper
    /// thread, failing the test if that takes longer than [`WAIT_LIMIT`].
    pub fn shutdown(&mut self, grace: Duration) -> bool {
        let handle = self.take_handle();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(handle.shutdown(grace));
        });
        rx.recv_timeout(grace + WAIT_LIMIT)
            .expect("shutdown did not return")
    }

    /// Runs `exchange` on a new connection, closes it, and waits until the
    /// proxy is done with it, so whatever the exchange stored in the cache
    /// is there: a response is written to the client before it is stored.
    /// Only for tests that have no other connection open to this proxy.
    pub fn exchange<T>(&self, exchange: impl FnOnce(&mut Client) -> T) -> T {
        let mut client = self.connect();
        let result = exchange(&mut client);
        drop(client);
        self.assert_becomes_idle();
        result
    }

    /// `method path` with `body` on the admin listener (which must be
    /// on), from an address Host (what changes state asks for one).
    pub fn admin(&self, method: &str, path: &str, body: &str) -> Response {
        let addr = self.handle().admin_addr().expect("admin listener");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        one_request(addr, request.as_bytes())
    }

    /// What `/status` says of the target at `addr`, from its name to the
    /// end of its `last_check`.
    pub fn target_status(&self, addr: SocketAddr) -> String {
        let status = self.admin("GET", "/status", "").body_str();
        let at = (status.find(&format!("\"name\":\"{addr}\"")))
            .unwrap_or_else(|| panic!("no {addr} in {status}"));
        let object = &status[at..];
        let end = object.find("\"last_check\":").expect("last_check") + "\"last_check\":".len();
        let close = match object[end..].starts_with("null") {
            true => "null".len(),
            false => object[end..].find('}').unwrap() + 1,
        };
        object[..end + close].to_string()
    }

    /// The value of the sample `name` (with its labels, as the page
    /// writes it) on the admin listener's `/metrics`, if it is there.
    pub fn metric(&self, name: &str) -> Option<u64> {
        let page = self.admin("GET", "/metrics", "").body_str();
        let line = page
            .lines()
            .find(|l| l.rsplit_once(' ').map(|(s, _)| s) == Some(name))?;
        line.rsplit(' ').next()?.parse().ok()
    }

    /// `GET path` on `Host: host` with `fields`, through
    /// [`Proxy::exchange`]: whatever the proxy stored of it is stored.
    pub fn get_on(&self, host: &str, path: &str, fields: &[(&str, &str)]) -> Response {
        self.exchange(|client| {
            let mut request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n");
            for (name, value) in fields {
                request.push_str(&format!("{name}: {value}\r\n"));
            }
            request.push_str("\r\n");
            client.send(request.as_bytes());
            client.response()
        })
    }

    /// Asserts that the proxy comes to serve no connection at all within
    /// [`WAIT_LIMIT`].
    #[track_caller]
    pub fn assert_becomes_idle(&self) {
        let handle = self.handle();
        assert!(
            wait_until(WAIT_LIMIT, || handle.live_connections() == 0),
            "the proxy still serves {} connections",
            handle.live_connections()
        );
    }

    /// The access log's lines (complete after [`Proxy::shutdown`]).
    pub fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log_path)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

// ---------------------------------------------------------------- the client

/// A response as a client received it.
#[derive(Clone, Debug)]
pub struct Response {
    pub status: u16,
    pub head: Head,
    pub body: Vec<u8>,
}

impl Response {
    pub fn body_str(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.get(name)
    }
}

/// A raw-socket client.
pub struct Client {
    pub reader: Reader,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        Client::on(TcpStream::connect(addr).unwrap())
    }

    /// Connects from `source` (any of 127.0.0.0/8 works on loopback), as
    /// another client would.
    pub fn connect_from(source: IpAddr, addr: SocketAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        socket.bind(&SocketAddr::new(source, 0).into()).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::on(socket.into())
    }

    /// Connects with a receive buffer of about `bytes`: the kernel then
    /// takes little of what the proxy sends a client that reads nothing.
    pub fn connect_taking(bytes: usize, addr: SocketAddr) -> Client {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(bytes).unwrap();
        socket.connect(&addr.into()).unwrap();
        Client::on(socket.into())
    }

    fn on(stream: TcpStream) -> Client {
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            reader: Reader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.stream.write_all(bytes).unwrap();
    }

    /// Sends `bytes` one write per piece of `piece` bytes.
    pub fn send_split(&mut self, bytes: &[u8], piece: usize) {
        for part in bytes.chunks(piece) {
            self.reader.stream.write_all(part).unwrap();
            self.reader.stream.flush().unwrap();
        }
    }

    /// Reads one response (a 1xx is returned on its own); `to_head` says
    /// the request was HEAD, whose response has no body.
    pub fn try_response(&mut self, to_head: bool) -> io::Result<Response> {
        self.reader.read_response(to_head)
    }

    pub fn response(&mut self) -> Response {
        self.try_response(false).unwrap()
    }

    pub fn head_response(&mut self) -> Response {
        self.try_response(true).unwrap()
    }

    /// `GET path` over HTTP/1.1 on this connection.
    pub fn get(&mut self, path: &str) -> Response {
        self.send(format!("GET {path} HTTP/1.1\r\nHost: test.example\r\n\r\n").as_bytes());
        self.response()
    }

    /// `GET path` with extra request fields.
    pub fn get_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, b"")
    }

    /// `HEAD path`; the response is read without a body.
    pub fn head(&mut self, path: &str) -> Response {
        self.head_with(path, &[])
    }

    /// `HEAD path` with extra request fields.
    pub fn head_with(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = format!("HEAD {path} HTTP/1.1\r\nHost: test.example\r\n");
        for (name, value) in headers {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
        request.push_str("\r\n");
        self.send(request.as_bytes());
        self.head_response()
    }

    /// Any method but HEAD, with extra fields and a Content-Length body
    /// (no Content-Length field when `body` is empty).
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        self.send(&request_bytes(method, path, headers, body));
        self.response()
    }

    /// `POST path` with a Content-Length body.
    pub fn post(&mut self, path: &str, body: &[u8]) -> Response {
        let mut request = format!(
            "POST {path} HTTP/1.1\r\nHost: test.example\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        request.extend_from_slice(body);
        self.send(&request);
        self.response()
    }

    /// Shuts down the sending side: the proxy reads the end of the stream.
    pub fn finish_sending(&mut self) {
        self.reader.stream.shutdown(Shutdown::Write).unwrap();
    }

    /// Reads until the proxy closes the connection (or resets it, or the
    /// read timeout passes); returns every byte not consumed before.
    pub fn read_until_closed(&mut self) -> Vec<u8> {
        loop {
            match self.reader.fill() {
                Ok(0) | Err(_) => return std::mem::take(&mut self.reader.buf),
                Ok(_) => {}
            }
        }
    }

    /// Whether the proxy closed the connection: the next read ends the
    /// stream (or resets it) with no further bytes. Bounded by the read
    /// timeout; a timeout or unexpected bytes count as "not closed".
    pub fn is_closed(&mut self) -> bool {
        self.reader.is_closed()
    }

    /// Whether the proxy closed its socket outright, with no lingering
    /// close: once its end of stream was read (see [`Client::is_closed`]),
    /// a byte sent is answered with a reset, where a proxy that lingers
    /// reads and drops it. Past the end of the stream a read returns that
    /// end, reset or not: the reset is looked for as the socket's error.
    /// Bounded by [`WAIT_LIMIT`].
    pub fn was_closed_without_lingering(&mut self) -> bool {
        if self.reader.stream.write_all(b"x").is_err() {
            return true;
        }
        let stream = &self.reader.stream;
        wait_until(WAIT_LIMIT, || {
            matches!(stream.take_error(), Ok(Some(_)) | Err(_))
        })
    }
}

/// Runs `inverso check` on `text` as `proxy.conf`, logging at `log`
/// (`RUST_LOG`: `warn` to see the warnings a configuration draws) and with
/// no `INVERSO_*` variable of the test's environment: exit code, stdout,
/// stderr.
pub fn inverso_check(text: &str, log: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("proxy.conf"), text).unwrap();
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_inverso"));
    command
        .args(["check", "--config", "proxy.conf"])
        .current_dir(dir.path())
        .env("RUST_LOG", log);
    for (name, _) in std::env::vars() {
        if name.starts_with("INVERSO_") {
            command.env_remove(name);
        }
    }
    let out = command.output().unwrap();
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Sends `request` on a new connection and returns the one response.
pub fn one_request(addr: SocketAddr, request: &[u8]) -> Response {
    let mut client = Client::connect(addr);
    client.send(request);
    client.response()
}

// ---------------------------------------------------------------- websocket

/// SHA-1 (FIPS 180-4), for the WebSocket handshake only: no crate needed
/// for twenty lines, and the handshake's test vector checks it.
pub fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut message = data.to_vec();
    message.push(0x80);
    while message.len() % 64 != 56 {
        message.push(0);
    }
    message.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in message.chunks(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, x) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&x.to_be_bytes());
    }
    out
}

/// Standard base64 with padding.
pub fn base64(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for group in data.chunks(3) {
        let n = group
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, &b)| acc | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// RFC 6455 §4.2.2: the Sec-WebSocket-Accept for a Sec-WebSocket-Key.
pub fn websocket_accept(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64(&sha1(&input))
}

/// One WebSocket frame, FIN set; masked with `mask` when given (clients
/// must mask, servers must not).
pub fn websocket_frame(opcode: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut out = vec![0x80 | opcode];
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    match payload.len() {
        n if n < 126 => out.push(mask_bit | n as u8),
        n if n <= 0xFFFF => {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Sends back each WebSocket frame read from `reader` on `out`, until
/// the close frame (echoed too) or an error.
pub fn echo_websocket_frames(out: &mut impl Write, reader: &mut impl Read) {
    while let Ok((opcode, payload)) = read_websocket_frame(reader) {
        let echo = websocket_frame(opcode, &payload, None);
        if out.write_all(&echo).is_err() || opcode == 0x8 {
            break;
        }
    }
}

/// Reads one WebSocket frame: (opcode, unmasked payload).
pub fn read_websocket_frame(stream: &mut impl Read) -> io::Result<(u8, Vec<u8>)> {
    let mut two = [0u8; 2];
    stream.read_exact(&mut two)?;
    let opcode = two[0] & 0x0F;
    let masked = two[1] & 0x80 != 0;
    let len = match two[1] & 0x7F {
        126 => {
            let mut n = [0u8; 2];
            stream.read_exact(&mut n)?;
            u64::from(u16::from_be_bytes(n))
        }
        127 => {
            let mut n = [0u8; 8];
            stream.read_exact(&mut n)?;
            u64::from_be_bytes(n)
        }
        n => u64::from(n),
    };
    if len > 1 << 20 {
        return Err(bad("websocket frame too large for a test"));
    }
    let mut key = [0u8; 4];
    if masked {
        stream.read_exact(&mut key)?;
    }
    let mut payload = vec![0u8; len as usize];
    stream.read_exact(&mut payload)?;
    if masked {
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    Ok((opcode, payload))
}

impl<S: Read> Reader<S> {
    /// Reads one WebSocket frame, starting with any bytes already buffered.
    pub fn read_websocket_frame(&mut self) -> io::Result<(u8, Vec<u8>)> {
        loop {
            let mut cursor = &self.buf[..];
            if let Ok(frame) = read_websocket_frame(&mut cursor) {
                let used = self.buf.len() - cursor.len();
                self.buf.drain(..used);
                return Ok(frame);
            }
            if self.fill()? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
    }
}

/// A response's `X-Cache`, `(none)` without one.
pub fn x_cache(r: &Response) -> &str {
    r.header("x-cache").unwrap_or("(none)")
}

/// Asserts status, X-Cache and body at once, showing the head on failure.
#[track_caller]
pub fn expect(r: &Response, status: u16, cache: &str, body: &str) {
    assert_eq!(
        (r.status, x_cache(r), r.body_str().as_str()),
        (status, cache, body),
        "response head:\n{}",
        r.head.raw
    );
}

/// A backend answering `the one body` (fresh for a minute) to each
/// request, each held until `sent` has counted `clients` requests sent (or
/// `WAIT_LIMIT` passes): concurrent clients then all find a key missing.
pub fn one_body_once_all_sent(sent: &Arc<AtomicUsize>, clients: usize) -> Backend {
    let sent = sent.clone();
    Backend::start("slow", move |_, out| {
        wait_until(WAIT_LIMIT, || sent.load(Ordering::SeqCst) >= clients);
        respond(
            out,
            200,
            &[("Cache-Control", "max-age=60")],
            b"the one body",
        );
        Action::KeepAlive
    })
}

/// A backend that, on `/work`, answers nothing and waits (bounded) for the
/// proxy to close the connection, counting in `saw_close` the closes it
/// saw; other paths it answers at once.
pub fn working_backend(saw_close: &Arc<AtomicUsize>) -> Backend {
    let saw_close = saw_close.clone();
    Backend::start("a", move |seen, out| {
        if seen.path() != "/work" {
            respond(out, 200, &[], seen.path().as_bytes());
            return Action::KeepAlive;
        }
        out.set_read_timeout(Some(WAIT_LIMIT)).unwrap();
        if matches!(out.read(&mut [0; 64]), Ok(0)) {
            saw_close.fetch_add(1, Ordering::SeqCst);
        }
        Action::Close
    })
}

/// A part of a multipart body: its fields (names lower-cased), its bytes.
pub type Part = (Vec<(String, String)>, Vec<u8>);

/// The parts of a `multipart/byteranges` response, each with its fields
/// and its bytes, read strictly as RFC 9110 §14.6 and RFC 2046 §5.1.1 lay
/// them out: the body opens with the first delimiter, each part's bytes
/// end at CRLF and the next delimiter, and the closing one ends the body.
pub fn multipart(r: &Response) -> Vec<Part> {
    let content_type = r.header("content-type").unwrap_or_default();
    let boundary = content_type
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("not multipart: {}", r.head.raw));
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let find = |from: usize, what: &[u8]| {
        r.body[from..]
            .windows(what.len())
            .position(|w| w == what)
            .map(|at| from + at)
    };
    let opening = &delimiter[2..];
    assert!(r.body.starts_with(opening), "{}", r.body_str());
    let mut at = opening.len();
    let mut parts = Vec::new();
    loop {
        assert_eq!(&r.body[at..at + 2], b"\r\n", "{}", r.body_str());
        let fields_end = find(at + 2, b"\r\n\r\n").expect("the part's fields end");
        let fields = String::from_utf8_lossy(&r.body[at + 2..fields_end])
            .split("\r\n")
            .map(|line| {
                let (name, value) = line.split_once(": ").expect("a field");
                (name.to_ascii_lowercase(), value.to_string())
            })
            .collect();
        let bytes_start = fields_end + 4;
        let bytes_end = find(bytes_start, &delimiter).expect("a delimiter after the part");
        parts.push((fields, r.body[bytes_start..bytes_end].to_vec()));
        at = bytes_end + delimiter.len();
        if &r.body[at..] == b"--\r\n" {
            return parts;
        }
    }
}

/// Whether this machine has IPv6 on loopback: the tests of IPv6 listeners
/// skip (saying so) where it has not, a container without IPv6.
pub fn has_ipv6_loopback() -> bool {
    let bound = TcpListener::bind("[::1]:0").is_ok();
    if !bound {
        eprintln!("no IPv6 loopback here: skipped");
    }
    bound
}

/// A gzip stream decoded whole.
pub fn gunzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("a gzip stream");
    out
}
