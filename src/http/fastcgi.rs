//! A connection to a FastCGI server ([`FcgiStream`]): HTTP written on it
//! goes as FastCGI records, and the records read from it come back as an
//! HTTP response (see [`crate::fastcgi`]).

use super::conn::{
    give_buffer, peek, recv_now, send_all_unless_answered, take_buffer, Sent, Socket,
};
use crate::fastcgi::reply::Decoder;
use crate::fastcgi::request::Encoder;
use crate::fastcgi::{App, Exchange};
use parking_lot::Mutex;
use std::io::{self, IoSlice, Read};
use std::net::Shutdown;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// What one read from the socket takes at most: a 64 KiB answer in one
/// read, with its records' headers.
const READ_BUFFER: usize = 64 * 1024 + 512;

/// A FastCGI server's connection, over TCP or a Unix socket.
pub struct FcgiStream {
    socket: socket2::Socket,
    tcp: bool,
    app: Arc<App>,
    /// Whom the next request's `REMOTE_ADDR` and the rest name; taken
    /// by that request (one sent without being told, a health probe's,
    /// names nobody).
    exchange: Mutex<Option<Exchange>>,
    writing: Mutex<Encoder>,
    reading: Mutex<Reading>,
}

struct Reading {
    decoder: Decoder,
    /// The records read, before the decoder takes them; allocated while
    /// a reply is read, given back idle.
    raw: Vec<u8>,
}

impl std::fmt::Debug for FcgiStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("FastCGI").field(&self.socket).finish()
    }
}

impl FcgiStream {
    /// A FastCGI connection over `socket`, not connected yet; `tcp`
    /// says whether it is a TCP one.
    pub fn new(socket: socket2::Socket, tcp: bool, app: Arc<App>) -> FcgiStream {
        FcgiStream {
            socket,
            tcp,
            app,
            exchange: Mutex::new(None),
            writing: Mutex::new(Encoder::default()),
            reading: Mutex::new(Reading {
                decoder: Decoder::default(),
                raw: Vec::new(),
            }),
        }
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        match self.tcp {
            true => self.socket.set_nodelay(true),
            false => Ok(()),
        }
    }

    /// Says whom the next request written comes from.
    pub fn begin(&self, exchange: Exchange) {
        *self.exchange.lock() = Some(exchange);
    }

    /// Whether response bytes are waiting: some read already, or records
    /// on the socket (which may give none: a line of `FCGI_STDERR`).
    pub fn has_waiting(&self) -> bool {
        self.reading.lock().decoder.has_output() || matches!(peek(self), Ok(n) if n > 0)
    }

    /// Whether it may carry another request: its last reply read to its
    /// end, and nothing since, not even the server's close.
    pub fn still_open(&self) -> bool {
        self.reading.lock().decoder.is_idle()
            && matches!(peek(self), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }

    /// Gives back the buffers of an idle connection (its read buffer to
    /// the spare ones, for the next busy connection).
    pub fn release_if_empty(&self) {
        let mut reading = self.reading.lock();
        if reading.decoder.is_idle() {
            reading.decoder.release();
            let raw = std::mem::take(&mut reading.raw);
            if raw.len() == READ_BUFFER {
                give_buffer(raw);
            }
        }
    }

    /// `bufs`, the next bytes of the HTTP request, as records.
    fn encode(&self, bufs: &[IoSlice<'_>]) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(bufs.iter().map(|b| b.len()).sum::<usize>() + 512);
        let mut exchange = self.exchange.lock();
        let mut writing = self.writing.lock();
        for buf in bufs {
            let begun = (writing.encode(buf, &self.app, &mut exchange, &mut out))
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
            // Before a record goes: its answer may come at once.
            if let Some(begun) = begun {
                self.reading.lock().decoder.begin(begun);
            }
        }
        Ok(out)
    }

    /// Writes `bufs` (HTTP) whole as records, unless the server answers
    /// first (see [`crate::http::conn::write_all_unless_answered`]).
    pub fn write_all_unless_answered(
        &self,
        bufs: &mut [IoSlice<'_>],
        answered: impl FnMut() -> bool,
    ) -> io::Result<Sent> {
        let records = self.encode(bufs)?;
        send_all_unless_answered(self, &mut [IoSlice::new(&records)], answered)
    }

    /// Writes `bufs` (HTTP) whole as records; how many HTTP bytes that
    /// was.
    pub fn write_vectored(&self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let records = self.encode(bufs)?;
        let mut left = &records[..];
        while !left.is_empty() {
            match self.socket.send_with_flags(left, libc::MSG_NOSIGNAL) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => left = &left[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(bufs.iter().map(|b| b.len()).sum())
    }

    /// Reads response bytes into `buf`, reading records from the socket
    /// with `recv` until some come (or the socket ends: `Ok(0)`). Once
    /// some have, what else has arrived is read too, without waiting, up
    /// to what `buf` takes: a reply that came in many records (PHP sends
    /// one per 4 KiB of output) is read in as few reads, and its body
    /// goes on in as few chunks and writes, as came in the meantime.
    fn read_with(
        &self,
        buf: &mut [u8],
        recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        // Out of the lock while the socket is read: nothing that looks
        // at the connection waits on its backend.
        let mut raw = std::mem::take(&mut self.reading.lock().raw);
        if raw.is_empty() {
            raw = take_buffer(READ_BUFFER);
        }
        let read = self.read_into(buf, &mut raw, recv);
        self.reading.lock().raw = raw;
        read
    }

    fn read_into(
        &self,
        buf: &mut [u8],
        raw: &mut [u8],
        mut recv: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        while !self.reading.lock().decoder.has_output() {
            let n = recv(raw)?;
            if n == 0 {
                return Ok(0);
            }
            self.feed(&raw[..n])?;
        }
        while self.wants_more(buf.len()) {
            match recv_now(self.socket.as_raw_fd(), raw) {
                Ok(n) if n > 0 => self.feed(&raw[..n])?,
                // Its end, an error, or nothing yet: the next read's.
                _ => break,
            }
        }
        Ok(self.reading.lock().decoder.take(buf))
    }

    /// Whether the reply goes on and less than `room` of it is read.
    fn wants_more(&self, room: usize) -> bool {
        let reading = self.reading.lock();
        reading.decoder.is_reading() && reading.decoder.waiting() < room
    }

    fn feed(&self, bytes: &[u8]) -> io::Result<()> {
        let (fed, said) = {
            let decoder = &mut self.reading.lock().decoder;
            (decoder.feed(bytes), std::mem::take(&mut decoder.said))
        };
        for said in said {
            log::warn!("FastCGI server {} said on stderr: {said}", self.peer());
        }
        fed.map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// The server's address, for the log.
    fn peer(&self) -> String {
        match self.socket.peer_addr() {
            Ok(addr) => match (addr.as_socket(), addr.as_pathname()) {
                (Some(tcp), _) => tcp.to_string(),
                (None, Some(path)) => format!("unix:{}", path.display()),
                (None, None) => "(unnamed)".into(),
            },
            Err(_) => "(gone)".into(),
        }
    }
}

impl Socket for FcgiStream {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        let fd = self.socket.as_raw_fd();
        self.read_with(buf, |raw| recv_now(fd, raw))
    }

    fn ack_now(&self) {
        if self.tcp {
            // As for any TCP backend (see `Socket for TcpStream`).
            let _ = self.socket.set_quickack(true);
        }
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.socket.shutdown(how)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.socket.set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.socket.write_timeout()
    }
}

impl Read for &FcgiStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_with(buf, |raw| (&self.socket).read(raw))
    }
}

impl AsFd for FcgiStream {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

impl AsRawFd for FcgiStream {
    fn as_raw_fd(&self) -> RawFd {
        self.socket.as_raw_fd()
    }
}
