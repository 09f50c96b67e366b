//! The access log: one line per request, written by one thread so request
//! threads never wait on stdout. Records travel over a bounded channel;
//! when it is full, senders wait (a line is never dropped), which only
//! happens if stdout itself cannot keep up.
//!
//! Control messages travel on the same channel, so they take effect in
//! order with the records: a reopen (SIGUSR1, for logrotate) writes every
//! record queued before it to the old file, then opens the path afresh.
//!
//! With `log_syslog`, each line also goes to syslog, one datagram each
//! (see `syslog`), from the same thread.

mod syslog;
mod template;
mod termination;

pub use syslog::{parse_tag, Facility, Syslog, SyslogTarget, MAX_DATAGRAM};
pub use template::{RequestFields, Template};
pub use termination::{By, Stage, Termination};

use crate::config::LogFormat;
use crate::digits::{push_ip, Decimal, Thousandths};
use crate::http::conn::{write_all_vectored, write_all_vectored_counting};
use crate::http::date::{format_rfc3339, LogClock};
use crate::json;
use crate::throttle::Throttle;
use crate::tls::client_cert::ClientCertificate;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};
use syslog::SyslogSink;

/// Records in flight between request threads and the writer.
const CHANNEL_CAPACITY: usize = 16 * 1024;
/// The longest a reopen or the final flush waits on a stalled writer.
const STALL_WAIT: Duration = Duration::from_secs(5);
/// While requests keep coming, the writer wakes this often to write what
/// queued up (a few hundred lines at a time under load).
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

/// What is logged about one request.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the request head arrived.
    pub time: SystemTime,
    pub client: IpAddr,
    /// The client's port: none when `client` is not the connection's other
    /// end but the address a proxy in front named.
    pub client_port: Option<u16>,
    /// The address and port the client connected to (`port` or
    /// `tls_port`), when known.
    pub server: Option<SocketAddr>,
    /// The user name the request's `Authorization: Basic` field claims,
    /// whether or not its password is right (nginx's `$remote_user`);
    /// none without one, or for a request refused before its head parsed.
    pub remote_user: Option<String>,
    /// `GET /path HTTP/1.1`, or what could be read of a malformed one.
    pub request_line: String,
    /// The path and query a `rewrite.<name>` rule made of the request's,
    /// which `$uri` and `$args` write (`request_line` stays the client's).
    pub made_target: Option<String>,
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// The target that answered, if any.
    pub upstream: Option<Arc<str>>,
    /// HIT, MISS, ... when the cache had a say.
    pub cache: Option<&'static str>,
    pub duration: Duration,
    /// The connection's serial number (from 1, in the order connections
    /// were taken), and how many requests it has carried, this one
    /// included (`$connection`, `$connection_requests`); none for one
    /// refused as it came.
    pub connection: Option<(u64, u64)>,
    /// The length of the response head sent: `$bytes_sent` is it and
    /// `bytes`.
    pub head_bytes: u64,
    /// The bytes read of the request, its line, fields and body with
    /// their framing (`$request_length`); none for one never read.
    pub request_length: Option<u64>,
    /// The status of the last backend's answer, or the one the proxy gave
    /// for its failure (`$upstream_status`).
    pub upstream_status: Option<u16>,
    /// How long the backend that answered took to send its response head
    /// once it had the request (none when no backend answered).
    pub upstream_wait: Option<Duration>,
    /// How long the last connection opened to a backend for the request
    /// took (zero for a pooled one; `$upstream_connect_time`).
    pub upstream_connect: Option<Duration>,
    /// How long the backend's part of the last exchange took, from the
    /// target's pick to the response's end (`$upstream_response_time`).
    pub upstream_response: Option<Duration>,
    /// Why and where the exchange ended, as HAProxy's termination state
    /// (`$termination`: `--`, `SC`, `sH`, `CD`, ...).
    pub termination: Termination,
    /// The pool the request was routed to (`default` for `targets`): none
    /// for one that went to no pool (a redirect route's, one refused
    /// before it was routed). A cache hit has its route's pool.
    pub pool: Option<Arc<str>>,
    /// Whether the combined and JSON lines carry `pool`: the configuration
    /// defines pools (`pool.<name>`), so that the lines of those that do
    /// not stay as they were. A template writes `$pool` either way.
    pub show_pool: bool,
    /// The request's ID, when `request_id_header` is set.
    pub request_id: Option<String>,
    /// The request head received and the response head sent, when
    /// `log_headers` is on.
    pub heads: Option<Box<Heads>>,
    /// The request fields a `log_format` template names.
    pub fields: Option<RequestFields>,
    /// The request's scheme, as `X-Forwarded-Proto` tells the backend.
    pub scheme: &'static str,
    /// Over TLS to `tls_port`: the protocol version and cipher suite
    /// agreed (`TLSv1.3`, `TLS13_AES_128_GCM_SHA256`).
    pub tls: Option<(&'static str, &'static str)>,
    /// There, the host name the client's hello asked for (SNI).
    pub server_name: Option<Arc<str>>,
    /// The certificate the client showed there (`tls_verify_client`).
    pub client_certificate: Option<Arc<ClientCertificate>>,
}

/// Header fields of one exchange, as `(name, value)` in wire order.
#[derive(Clone, Debug, Default)]
pub struct Heads {
    pub request: Vec<(String, String)>,
    pub response: Vec<(String, String)>,
}

impl Heads {
    /// The fields of a head as written on the wire (status or request
    /// line first, which is skipped; CRLF line ends).
    pub fn fields_of(head: &[u8]) -> Vec<(String, String)> {
        String::from_utf8_lossy(head)
            .split("\r\n")
            .skip(1)
            .filter_map(|line| line.split_once(':'))
            .map(|(name, value)| (name.to_string(), value.trim().to_string()))
            .collect()
    }
}

impl Record {
    /// A connection answered 503 before any request was read from it
    /// (over a connection limit), from `client` to `server`: what had
    /// arrived of its request line, and the body bytes sent.
    pub fn refused(
        time: SystemTime,
        client: SocketAddr,
        server: SocketAddr,
        request_line: String,
        bytes: u64,
        duration: Duration,
    ) -> Record {
        Record {
            time,
            client: client.ip(),
            client_port: Some(client.port()),
            server: Some(server),
            remote_user: None,
            request_line,
            made_target: None,
            status: 503,
            bytes,
            referer: None,
            user_agent: None,
            upstream: None,
            cache: None,
            duration,
            connection: None,
            head_bytes: 0,
            request_length: None,
            upstream_status: None,
            upstream_wait: None,
            upstream_connect: None,
            upstream_response: None,
            // Over a connection limit: the proxy's refusal, before a
            // request was read, as HAProxy's `PR`.
            termination: Termination::new(By::Proxy, Stage::Request),
            pool: None,
            show_pool: false,
            request_id: None,
            heads: None,
            fields: None,
            scheme: "http",
            tls: None,
            server_name: None,
            client_certificate: None,
        }
    }

    /// Appends the line in the given format to `line`, without newline;
    /// `clock` keeps the timestamps of the last second it wrote.
    fn write_as(&self, format: &LogFormat, line: &mut String, clock: &mut LogClock) {
        match format {
            LogFormat::Combined => self.write_combined(line, clock),
            LogFormat::Json => self.write_json(line),
            LogFormat::Template(template) => template.write(self, line, clock),
        }
    }

    /// One JSON object with the fields of the combined line:
    /// `time` (RFC 3339, UTC), `client`, `remote_user`, `request`,
    /// `status`, `bytes`, `referer`, `user_agent`, `upstream`, `cache`
    /// (null when absent), `duration_ms`, `upstream_ms` (null when
    /// absent), `termination` (`$termination`), with pools defined
    /// `pool` (null for a request that went to no pool), with
    /// `request_id_header` `request_id`, and with
    /// `log_headers` `request_headers` and `response_headers` as arrays of
    /// `[name, value]` pairs.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(256);
        self.write_json(&mut out);
        out
    }

    /// [`to_json`](Self::to_json) into `out`.
    fn write_json(&self, out: &mut String) {
        out.push('{');
        json::push_key(out, "time");
        json::push_str(out, &format_rfc3339(self.time));
        out.push(',');
        json::push_key(out, "client");
        out.push('"');
        push_ip(out, self.client);
        out.push('"');
        out.push(',');
        json::push_key(out, "remote_user");
        json::push_opt_str(out, self.remote_user.as_deref());
        out.push(',');
        json::push_key(out, "request");
        json::push_str(out, &self.request_line);
        out.push_str(",\"status\":");
        out.push_str(Decimal::new(u64::from(self.status)).as_str());
        out.push_str(",\"bytes\":");
        out.push_str(Decimal::new(self.bytes).as_str());
        out.push(',');
        json::push_key(out, "referer");
        json::push_opt_str(out, self.referer.as_deref());
        out.push(',');
        json::push_key(out, "user_agent");
        json::push_opt_str(out, self.user_agent.as_deref());
        out.push(',');
        json::push_key(out, "upstream");
        json::push_opt_str(out, self.upstream.as_deref());
        out.push(',');
        json::push_key(out, "cache");
        json::push_opt_str(out, self.cache);
        out.push_str(",\"duration_ms\":");
        out.push_str(Thousandths::millis(self.duration).as_str());
        out.push_str(",\"upstream_ms\":");
        match self.upstream_wait {
            Some(wait) => out.push_str(Thousandths::millis(wait).as_str()),
            None => out.push_str("null"),
        }
        out.push_str(",\"termination\":\"");
        out.push_str(self.termination.as_str());
        out.push('"');
        if self.show_pool {
            out.push(',');
            json::push_key(out, "pool");
            json::push_opt_str(out, self.pool.as_deref());
        }
        if let Some(id) = &self.request_id {
            out.push(',');
            json::push_key(out, "request_id");
            json::push_str(out, id);
        }
        if let Some(heads) = &self.heads {
            for (key, fields) in [
                ("request_headers", &heads.request),
                ("response_headers", &heads.response),
            ] {
                out.push(',');
                json::push_key(out, key);
                out.push('[');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push('[');
                    json::push_str(out, name);
                    out.push(',');
                    json::push_str(out, value);
                    out.push(']');
                }
                out.push(']');
            }
        }
        out.push('}');
    }

    /// The line as written (without newline): the combined log format (its
    /// user the one `Authorization: Basic` claims), then
    /// `upstream=`, `cache=`, `duration_ms=`, `upstream_ms=`, with pools
    /// defined `pool=` and with `request_id_header` `request_id=`. Quoted fields escape `"`,
    /// `\` and non-printable bytes as `\xHH`, so a client cannot forge lines.
    pub fn format(&self) -> String {
        let mut line = String::with_capacity(160);
        self.write_combined(&mut line, &mut LogClock::new());
        line
    }

    /// [`format`](Self::format) into `line`. Written piece by piece rather
    /// than with `write!`: the writer formats a line per request, and the
    /// formatting machinery made a third of a cache hit's instructions.
    fn write_combined(&self, line: &mut String, clock: &mut LogClock) {
        push_ip(line, self.client);
        line.push_str(" - ");
        push_user(line, self.remote_user.as_deref());
        line.push_str(" [");
        line.push_str(clock.clf(self.time));
        line.push_str("] \"");
        escape_into(line, &self.request_line);
        line.push_str("\" ");
        line.push_str(Decimal::new(u64::from(self.status)).as_str());
        line.push(' ');
        line.push_str(Decimal::new(self.bytes).as_str());
        line.push_str(" \"");
        escape_into(line, self.referer.as_deref().unwrap_or("-"));
        line.push_str("\" \"");
        escape_into(line, self.user_agent.as_deref().unwrap_or("-"));
        line.push_str("\" upstream=");
        line.push_str(self.upstream.as_deref().unwrap_or("-"));
        line.push_str(" cache=");
        line.push_str(self.cache.unwrap_or("-"));
        line.push_str(" duration_ms=");
        line.push_str(Thousandths::millis(self.duration).as_str());
        line.push_str(" upstream_ms=");
        match self.upstream_wait {
            Some(wait) => line.push_str(Thousandths::millis(wait).as_str()),
            None => line.push('-'),
        }
        if self.show_pool {
            // Unquoted: a pool's name is letters, digits, `-` and `_`
            // (see `config::pools`); escaped all the same.
            line.push_str(" pool=");
            escape_into(line, self.pool.as_deref().unwrap_or("-"));
        }
        if let Some(id) = &self.request_id {
            // Unquoted: an ID is printable ASCII without spaces or quotes
            // (see `request_id::is_well_formed`); escaped all the same.
            line.push_str(" request_id=");
            escape_into(line, id);
        }
        if let Some(heads) = &self.heads {
            // Each head as one quoted field, its lines joined by CRLF
            // (escaped as \x0D\x0A like any control byte).
            for (key, fields) in [
                (" request_headers=\"", &heads.request),
                (" response_headers=\"", &heads.response),
            ] {
                line.push_str(key);
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        escape_into(line, "\r\n");
                    }
                    escape_into(line, name);
                    line.push_str(": ");
                    escape_into(line, value);
                }
                line.push('"');
            }
        }
    }
}

/// Whether `b` goes into a quoted field as it is.
fn is_plain(b: u8) -> bool {
    (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\'
}

/// Whether `b` goes into an unquoted field as it is: as into a quoted
/// one, but for the space that would end the field.
fn is_plain_unquoted(b: u8) -> bool {
    b != b' ' && is_plain(b)
}

/// `s` as a quoted field holds it: every byte that is not [`is_plain`]
/// as `\xHH`.
fn escape_into(out: &mut String, s: &str) {
    escape_with(out, s, is_plain);
}

/// `s` with every byte that is not `plain` written as `\xHH` (each byte
/// of a character outside ASCII).
fn escape_with(out: &mut String, s: &str, plain: impl Fn(u8) -> bool) {
    if s.bytes().all(&plain) {
        out.push_str(s);
        return;
    }
    for c in s.chars() {
        if c.is_ascii() && plain(c as u8) {
            out.push(c);
            continue;
        }
        let mut buf = [0u8; 4];
        for b in c.encode_utf8(&mut buf).bytes() {
            let _ = write!(out, "\\x{b:02X}");
        }
    }
}

/// The user of the combined line, an unquoted field the client writes:
/// escaped as a quoted field is and its spaces too, so that it stays one
/// field; `-` for none and for an empty name (nginx writes an empty one
/// as it is, which leaves a combined parser an empty field to trip on).
fn push_user(out: &mut String, user: Option<&str>) {
    match user {
        Some(user) if !user.is_empty() => escape_with(out, user, is_plain_unquoted),
        _ => out.push('-'),
    }
}

enum Message {
    Record(Box<Record>),
    /// Flush, then open the file again (or another one), and say how it
    /// went; open the syslog socket again (or another one).
    Reopen {
        file: Option<PathBuf>,
        format: LogFormat,
        syslog: Option<Syslog>,
        done: Sender<io::Result<()>>,
        /// Taken by whichever comes first: the writer, which then does
        /// the reopen, or the caller giving up on it, and then it is not
        /// done (a reload refused must not switch the log later after all).
        claimed: Arc<AtomicBool>,
    },
    /// Write what is queued, then stop.
    Close,
}

/// Where log lines go, and how they look.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub stdout: bool,
    pub file: Option<PathBuf>,
    pub format: LogFormat,
    /// Where a copy of each line goes as a syslog message, if anywhere.
    pub syslog: Option<Syslog>,
}

/// A cheap handle request threads use to log.
#[derive(Clone)]
pub struct LogSender {
    tx: Sender<Message>,
    lost: Arc<AtomicU64>,
}

impl LogSender {
    /// Lines a sink could not take (a full disk, a closed stdout), per
    /// sink, since the start.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Whether the queue is full: the writer cannot keep up (a stdout
    /// nobody reads), and request threads wait for it.
    pub fn is_stalled(&self) -> bool {
        self.tx.is_full()
    }

    /// Queues a record; waits if the writer is behind, never drops.
    pub fn log(&self, record: Record) {
        // The writer only goes away at shutdown, after request threads.
        let _ = self.tx.send(Message::Record(Box::new(record)));
    }

    /// Writes out every record queued so far, then reopens the log file at
    /// `file` (the same path after logrotate moved it away, or a new one
    /// after a reload) and switches to `format`; sends to `syslog` from
    /// then on, its socket opened afresh (a restarted daemon's). On
    /// failure the old file stays in use. Returns once the writer has done it.
    ///
    /// Waits at most `STALL_WAIT` (5 s) for the writer: behind a queue that
    /// whatever reads stdout stopped emptying, it would wait for good, and
    /// it is the signal thread that waits (a SIGTERM after would go
    /// unheard).
    pub fn reopen(
        &self,
        file: Option<PathBuf>,
        format: LogFormat,
        syslog: Option<Syslog>,
    ) -> io::Result<()> {
        let stalled = || io::Error::other("the access log is stalled (its reader stopped reading)");
        let (done, result) = bounded(1);
        let claimed = Arc::new(AtomicBool::new(false));
        let message = Message::Reopen {
            file,
            format,
            syslog,
            done,
            claimed: claimed.clone(),
        };
        self.tx
            .send_timeout(message, STALL_WAIT)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(_) => stalled(),
                SendTimeoutError::Disconnected(_) => io::Error::other("the access log is closed"),
            })?;
        match result.recv_timeout(STALL_WAIT) {
            Ok(reopened) => reopened,
            // Given up on: the writer will leave it undone...
            Err(_) if !claimed.swap(true, Ordering::SeqCst) => Err(stalled()),
            // ...unless it has just begun it: then it says how it went.
            Err(_) => result
                .recv()
                .map_err(|_| io::Error::other("the access log is closed"))?,
        }
    }
}

/// The writer thread.
pub struct AccessLog {
    tx: Sender<Message>,
    lost: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// Closed when the writer is done.
    finished: Receiver<()>,
}

impl AccessLog {
    /// Opens the log file (append) and starts the writer.
    pub fn start(outputs: Outputs) -> io::Result<AccessLog> {
        let file = match &outputs.file {
            Some(path) => Some(open_log_file(path)?),
            None => None,
        };
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let lost = Arc::new(AtomicU64::new(0));
        let counted = lost.clone();
        let (done, finished) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                write_loop(rx, outputs, file, counted);
                drop(done);
            })?;
        Ok(AccessLog {
            tx,
            lost,
            thread: Some(thread),
            finished,
        })
    }

    pub fn sender(&self) -> LogSender {
        LogSender {
            tx: self.tx.clone(),
            lost: self.lost.clone(),
        }
    }

    /// Writes every record queued so far, flushes, and stops the writer.
    /// Behind a stalled reader (a full queue, or stdout not taking what is
    /// written) it gives up after `STALL_WAIT` (5 s), so that a shutdown ends.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let queued = self.tx.send_timeout(Message::Close, STALL_WAIT).is_ok();
        if queued
            && matches!(
                self.finished.recv_timeout(STALL_WAIT),
                Err(RecvTimeoutError::Disconnected)
            )
        {
            let _ = thread.join();
        } else {
            log::error!(
                "access log: the reader stopped reading; exiting without the lines still queued"
            );
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.close();
    }
}

/// Opens the log file for appending. The open itself never blocks: on a
/// FIFO nobody reads it would hang start-up, or a SIGHUP's reload and with
/// it every later signal; that is an error instead ("no reader"). Writes
/// block as usual once it is open.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let context = |e: io::Error| {
        let why = match e.raw_os_error() {
            Some(libc::ENXIO) => "a FIFO with no reader".to_string(),
            _ => e.to_string(),
        };
        io::Error::new(e.kind(), format!("cannot open {}: {why}", path.display()))
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(context)?;
    // SAFETY: fcntl on a descriptor we own, changing only its status flags.
    let cleared = unsafe {
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
    };
    if !cleared {
        return Err(context(io::Error::last_os_error()));
    }
    Ok(file)
}

/// The writer thread's outputs.
struct Sinks {
    stdout: Option<Sink<io::StdoutLock<'static>>>,
    file: Option<Sink<File>>,
    syslog: Option<SyslogSink>,
    format: LogFormat,
    lost: Arc<AtomicU64>,
    /// The line being written, its memory kept from one to the next.
    line: String,
    clock: LogClock,
}

impl Sinks {
    /// Does what `message` asks; `false` for the last one (Close).
    fn take(&mut self, message: Message) -> bool {
        match message {
            Message::Record(record) => self.write(&record),
            Message::Reopen {
                file,
                format,
                syslog,
                done,
                claimed,
            } => {
                if !claimed.swap(true, Ordering::SeqCst) {
                    let _ = done.send(self.reopen(file, format, syslog));
                }
            }
            Message::Close => return false,
        }
        true
    }

    fn write(&mut self, record: &Record) {
        let line = &mut self.line;
        line.clear();
        record.write_as(&self.format, line, &mut self.clock);
        if let Some(sink) = &mut self.syslog {
            sink.send(line, record.status, &self.lost);
        }
        line.push('\n');
        if let Some(sink) = &mut self.stdout {
            sink.write(line.as_bytes(), &self.lost);
        }
        if let Some(sink) = &mut self.file {
            sink.write(line.as_bytes(), &self.lost);
        }
    }

    fn flush(&mut self) {
        if let Some(sink) = &mut self.stdout {
            sink.flush(&self.lost);
        }
        if let Some(sink) = &mut self.file {
            sink.flush(&self.lost);
        }
    }

    fn reopen(
        &mut self,
        path: Option<PathBuf>,
        format: LogFormat,
        syslog: Option<Syslog>,
    ) -> io::Result<()> {
        self.flush();
        // A fresh file deserves a fresh warning if it fails too.
        self.file = match &path {
            Some(path) => Some(Sink::for_file(path, open_log_file(path)?)),
            None => None,
        };
        self.format = format;
        match (&mut self.syslog, syslog) {
            (Some(sink), Some(settings)) if *sink.settings() == settings => sink.reconnect(),
            (_, settings) => self.syslog = settings.map(SyslogSink::new),
        }
        Ok(())
    }
}

/// One output, buffered. Request threads go on whatever happens here;
/// lines it could not take are counted (see [`LogSender::lost`]) and said
/// (see [`Failures`]).
struct Sink<W: Write> {
    name: &'static str,
    inner: W,
    /// Whole lines not written yet.
    buf: Vec<u8>,
    /// A failed write stopped in the middle of a line: what comes next
    /// starts on a line of its own rather than finish that fragment.
    cut: bool,
    failures: Failures,
}

/// How much a sink gathers before writing.
const SINK_BUFFER: usize = 64 * 1024;

impl Sink<File> {
    /// The file sink; a file that ends in the middle of a line (one cut by
    /// a full disk, reopened after room was made) gets that line ended
    /// before the next one.
    fn for_file(path: &Path, file: File) -> Self {
        let cut = ends_mid_line(path, &file);
        let mut sink = Sink::new("file", file);
        sink.cut = cut;
        sink
    }
}

/// Whether `written`, a regular file opened at `path`, ends with anything
/// but a newline. It is read through `path` (it was opened to append
/// only), without waiting (were `path` a FIFO by now) and only if `path`
/// still names that file.
fn ends_mid_line(path: &Path, written: &File) -> bool {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let Ok(meta) = written.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() == 0 {
        return false;
    }
    let Ok(reader) = crate::cache::persist::open_regular(path) else {
        return false;
    };
    let same = reader
        .metadata()
        .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    let mut last = [0u8; 1];
    same && reader
        .read_at(&mut last, meta.len() - 1)
        .is_ok_and(|n| n == 1)
        && last[0] != b'\n'
}

impl<W: Write> Sink<W> {
    fn new(name: &'static str, inner: W) -> Self {
        Sink {
            name,
            inner,
            buf: Vec::with_capacity(SINK_BUFFER),
            cut: false,
            failures: Failures::default(),
        }
    }

    fn write(&mut self, line: &[u8], lost: &AtomicU64) {
        if !self.buf.is_empty() && self.buf.len() + line.len() > SINK_BUFFER {
            self.flush(lost);
        }
        self.buf.extend_from_slice(line);
    }

    /// Writes what is gathered. Only a write that worked shows the sink
    /// works again. One that failed counts the lines it did not get out
    /// as lost (a line cut in the middle among them) and lets them go,
    /// rather than write them late, out of order, once the sink recovers.
    fn flush(&mut self, lost: &AtomicU64) {
        // Nothing to write: no sign that the sink works again.
        if self.buf.is_empty() {
            return;
        }
        let (written, result) = match self.end_cut_line() {
            Ok(()) => write_all_vectored_counting(&mut self.inner, &mut [IoSlice::new(&self.buf)]),
            Err(e) => (0, Err(e)),
        };
        let result = result.and_then(|()| self.inner.flush());
        if written > 0 {
            self.cut = self.buf[written - 1] != b'\n';
        }
        match result {
            Ok(()) => self.failures.recovered(self.name),
            Err(e) => {
                let unwritten = &self.buf[written..];
                let lines = unwritten.iter().filter(|&&b| b == b'\n').count() as u64;
                self.lose(lines, &e, lost);
            }
        }
        self.buf.clear();
    }

    /// Ends the line a failed write cut, so that what follows starts on a
    /// line of its own; while that fails too, the cut stays to be ended.
    fn end_cut_line(&mut self) -> io::Result<()> {
        if self.cut {
            write_all_vectored(&mut self.inner, &mut [IoSlice::new(b"\n")])?;
            self.cut = false;
        }
        Ok(())
    }

    fn lose(&mut self, lines: u64, e: &io::Error, lost: &AtomicU64) {
        lost.fetch_add(lines, Ordering::Relaxed);
        self.failures.failed(self.name, e, lines);
    }
}

/// One sink's write failures: said when they start, again at most once a
/// minute while they last, with the lines lost, and once more when writing
/// works again.
#[derive(Default)]
struct Failures {
    lost: u64,
    throttle: Throttle,
}

impl Failures {
    fn failed(&mut self, sink: &str, e: &io::Error, lines: u64) {
        self.lost += lines;
        if (self.throttle)
            .failed_because(Instant::now(), &e.to_string())
            .is_some()
        {
            log::warn!(
                "access log ({sink}): cannot write: {e}; {} lines lost so far",
                self.lost
            );
        }
    }

    fn recovered(&mut self, sink: &str) {
        if self.throttle.recovered() {
            log::warn!(
                "access log ({sink}): writing again; {} lines were lost",
                self.lost
            );
            self.lost = 0;
        }
    }
}

fn write_loop(rx: Receiver<Message>, outputs: Outputs, file: Option<File>, lost: Arc<AtomicU64>) {
    let mut sinks = Sinks {
        stdout: outputs
            .stdout
            .then(|| Sink::new("stdout", io::stdout().lock())),
        file: outputs
            .file
            .as_deref()
            .zip(file)
            .map(|(path, f)| Sink::for_file(path, f)),
        syslog: outputs.syslog.map(SyslogSink::new),
        format: outputs.format,
        lost,
        line: String::with_capacity(256),
        clock: LogClock::new(),
    };
    // Park in `recv` only when traffic stops. While it flows, sleep between
    // batches instead: a sender wakes the writer (a futex call and a
    // context switch) only if it is parked, so under load the request
    // threads never pay for waking it.
    'idle: while let Ok(message) = rx.recv() {
        let reopen = matches!(message, Message::Reopen { .. });
        if !sinks.take(message) {
            break 'idle;
        }
        if reopen {
            continue 'idle;
        }
        loop {
            let mut batch = 0;
            for message in rx.try_iter() {
                if !sinks.take(message) {
                    break 'idle;
                }
                batch += 1;
            }
            sinks.flush();
            if batch == 0 {
                continue 'idle;
            }
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
    sinks.flush();
    // Said at exit whatever the warnings' throttle let through: the
    // counter goes with the process.
    let lost = sinks.lost.load(Ordering::Relaxed);
    if lost > 0 {
        log::warn!(
            "access log: {lost} lines lost while this process ran (counted for each output \
             that lost them)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(784_111_777),
            client: "127.0.0.1".parse().unwrap(),
            client_port: Some(40_000),
            server: Some(([127, 0, 0, 1], 8080).into()),
            remote_user: None,
            request_line: "GET /a\"b HTTP/1.1".into(),
            made_target: None,
            status: 200,
            bytes: 512,
            referer: None,
            user_agent: Some("curl/8\n".into()),
            upstream: Some("127.0.0.1:9001".into()),
            cache: Some("MISS"),
            duration: Duration::from_micros(1500),
            connection: Some((7, 2)),
            head_bytes: 180,
            request_length: Some(96),
            upstream_status: Some(200),
            upstream_wait: Some(Duration::from_micros(1250)),
            upstream_connect: Some(Duration::from_micros(310)),
            upstream_response: Some(Duration::from_micros(2_100)),
            termination: Default::default(),
            pool: Some("api".into()),
            show_pool: false,
            request_id: None,
            heads: None,
            fields: None,
            scheme: "http",
            tls: None,
            server_name: None,
            client_certificate: None,
        }
    }

    /// A disk that takes `room` bytes, then fails `failures` writes, then has room
    /// again for everything.
    struct Disk {
        room: usize,
        failures: usize,
        got: Vec<u8>,
    }

    const NEVER_RECOVERS: usize = usize::MAX;

    fn disk(room: usize, failures: usize) -> Disk {
        Disk {
            room,
            failures,
            got: Vec::new(),
        }
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                if self.failures > 0 {
                    self.failures -= 1;
                    return Err(io::Error::other("no space left"));
                }
                self.room = usize::MAX;
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_written_before_a_failure_are_not_counted_lost() {
        let lost = AtomicU64::new(0);
        // Room for the first line and half the second.
        let mut sink = Sink::new("file", disk(10, NEVER_RECOVERS));
        for line in [&b"line one\n"[..], b"line two\n", b"line three\n"] {
            sink.write(line, &lost);
        }
        sink.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 2, "the cut one and the last");
    }

    #[test]
    fn a_line_cut_by_a_failure_is_not_run_into_the_next() {
        let lost = AtomicU64::new(0);
        let mut sink = Sink::new("file", disk(10, 1));
        sink.write(b"line one\nline two\n", &lost);
        sink.flush(&lost);
        sink.write(b"line three\n", &lost);
        sink.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        let got = String::from_utf8(sink.inner.got.clone()).unwrap();
        assert_eq!(got, "line one\nl\nline three\n");
    }

    #[test]
    fn a_cut_line_is_ended_once_the_disk_has_room_again_however_late() {
        let lost = AtomicU64::new(0);
        // Full for the cut and for the next flush too.
        let mut sink = Sink::new("file", disk(10, 2));
        for line in [
            &b"line one\nline two\n"[..],
            b"line three\n",
            b"line four\n",
        ] {
            sink.write(line, &lost);
            sink.flush(&lost);
        }
        let got = String::from_utf8(sink.inner.got.clone()).unwrap();
        assert_eq!(got, "line one\nl\nline four\n");
        assert_eq!(lost.load(Ordering::Relaxed), 2, "line two and line three");
    }

    #[test]
    fn a_file_opened_on_a_cut_line_ends_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let lost = AtomicU64::new(0);
        for (before, after) in [
            ("whole\ncut fragm", "whole\ncut fragm\nnext\n"),
            ("whole\n", "whole\nnext\n"),
            ("", "next\n"),
        ] {
            let path = dir.path().join("access.log");
            std::fs::write(&path, before).unwrap();
            let mut sink = Sink::for_file(&path, open_log_file(&path).unwrap());
            sink.write(b"next\n", &lost);
            sink.flush(&lost);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
        }
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_flush_with_nothing_to_write_is_no_sign_of_recovery() {
        let lost = AtomicU64::new(0);
        let mut sink = Sink::new("file", disk(0, NEVER_RECOVERS));
        sink.write(b"a line\n", &lost);
        sink.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        // Nothing pending: the flush proves nothing, the failure goes on.
        sink.flush(&lost);
        assert!(sink.failures.throttle.recovered(), "taken for a recovery");
    }

    #[test]
    fn formats_json_and_heads() {
        let mut r = record();
        r.heads = Some(Box::new(Heads {
            request: vec![("Host".into(), "a\"b".into())],
            response: Heads::fields_of(b"HTTP/1.1 200 OK\r\nX-Cache: MISS\r\n\r\n"),
        }));
        assert_eq!(
            r.to_json(),
            r#"{"time":"1994-11-06T08:49:37.000Z","client":"127.0.0.1","remote_user":null,"request":"GET /a\"b HTTP/1.1","status":200,"bytes":512,"referer":null,"user_agent":"curl/8\n","upstream":"127.0.0.1:9001","cache":"MISS","duration_ms":1.500,"upstream_ms":1.250,"termination":"--","request_headers":[["Host","a\"b"]],"response_headers":[["X-Cache","MISS"]]}"#
        );
        assert!(r
            .format()
            .ends_with(r#" request_headers="Host: a\x22b" response_headers="X-Cache: MISS""#));
    }

    #[test]
    fn a_request_id_follows_the_durations_in_both_formats() {
        let mut r = record();
        assert!(!r.to_json().contains("request_id"));
        assert!(!r.format().contains("request_id"));
        r.request_id = Some("4f1c-x".into());
        assert!(r.to_json().ends_with(
            r#""duration_ms":1.500,"upstream_ms":1.250,"termination":"--","request_id":"4f1c-x"}"#
        ));
        assert!(r
            .format()
            .ends_with(" duration_ms=1.500 upstream_ms=1.250 request_id=4f1c-x"));
    }

    #[test]
    fn the_pool_follows_the_durations_only_with_pools_defined() {
        // Without pools the lines are as they were, pool or not.
        let mut r = record();
        assert!(!r.format().contains("pool"), "{}", r.format());
        assert!(!r.to_json().contains("pool"), "{}", r.to_json());
        // With pools: after upstream_ms, before request_id.
        r.show_pool = true;
        assert!(r
            .format()
            .ends_with(" cache=MISS duration_ms=1.500 upstream_ms=1.250 pool=api"));
        assert!(r.to_json().ends_with(
            r#""duration_ms":1.500,"upstream_ms":1.250,"termination":"--","pool":"api"}"#
        ));
        r.request_id = Some("4f1c-x".into());
        assert!(r
            .format()
            .ends_with(" upstream_ms=1.250 pool=api request_id=4f1c-x"));
        assert!(r.to_json().ends_with(
            r#""upstream_ms":1.250,"termination":"--","pool":"api","request_id":"4f1c-x"}"#
        ));
        // A request that went to no pool (a redirect route's, one refused
        // before it was routed).
        r.pool = None;
        assert!(r.format().ends_with(" pool=- request_id=4f1c-x"));
        assert!(r
            .to_json()
            .ends_with(r#""pool":null,"request_id":"4f1c-x"}"#));
        let template = Template::parse("$status $pool").unwrap();
        for (pool, show_pool, written) in [
            (Some("api"), false, "200 api"),
            (Some("default"), true, "200 default"),
            (None, true, "200 -"),
        ] {
            r.pool = pool.map(Arc::from);
            r.show_pool = show_pool;
            let mut line = String::new();
            r.write_as(
                &LogFormat::Template(Arc::new(template.clone())),
                &mut line,
                &mut LogClock::new(),
            );
            assert_eq!(line, written);
        }
    }

    /// `r`'s line as `template` writes it.
    fn templated(r: &Record, template: &str) -> String {
        let template = Template::parse(template).unwrap();
        let mut line = String::new();
        r.write_as(
            &LogFormat::Template(Arc::new(template)),
            &mut line,
            &mut LogClock::new(),
        );
        line
    }

    #[test]
    fn the_claimed_user_is_the_third_field_of_the_combined_line() {
        let mut r = record();
        // None: the `-` the line always had, `null` in JSON.
        assert!(r.format().starts_with("127.0.0.1 - - [06/Nov/1994:"));
        assert!(r
            .to_json()
            .contains(r#""client":"127.0.0.1","remote_user":null,"request":"#));
        assert_eq!(templated(&r, "[$remote_user]"), "[-]");
        r.remote_user = Some("ann".into());
        assert!(r
            .format()
            .starts_with("127.0.0.1 - ann [06/Nov/1994:08:49:37 +0000] \"GET "));
        assert!(r
            .to_json()
            .contains(r#""client":"127.0.0.1","remote_user":"ann","request":"#));
        assert_eq!(templated(&r, "[$remote_user]"), "[ann]");
        // Empty: `-` rather than an empty field; JSON has it as it is.
        r.remote_user = Some(String::new());
        assert!(r.format().starts_with("127.0.0.1 - - [06/Nov/1994:"));
        assert!(r.to_json().contains(r#""remote_user":"","#));
        assert_eq!(templated(&r, "[$remote_user]"), "[-]");
    }

    #[test]
    fn a_hostile_user_stays_one_field_and_forges_nothing() {
        let mut r = record();
        r.remote_user = Some("a b\"c\\d\r\n".into());
        let line = r.format();
        assert!(
            line.starts_with(
                r#"127.0.0.1 - a\x20b\x22c\x5Cd\x0D\x0A [06/Nov/1994:08:49:37 +0000] "GET "#
            ),
            "{line}"
        );
        // As a combined parser splits it: the user is the third field.
        assert_eq!(line.split(' ').nth(3), Some("[06/Nov/1994:08:49:37"));
        assert!(!line.contains(['\r', '\n']));
        assert!(
            r.to_json()
                .contains(r#""remote_user":"a b\"c\\d\r\n","request":"#),
            "{}",
            r.to_json()
        );
        assert_eq!(
            templated(&r, "$remote_addr - $remote_user [x]"),
            r"127.0.0.1 - a\x20b\x22c\x5Cd\x0D\x0A [x]"
        );
        // Outside ASCII, and what was not UTF-8 (U+FFFD), byte by byte.
        r.remote_user = Some("é\u{fffd}\t-".into());
        assert!(r
            .format()
            .starts_with(r"127.0.0.1 - \xC3\xA9\xEF\xBF\xBD\x09- ["));
        assert!(r.to_json().contains("\"remote_user\":\"é\u{fffd}\\t-\""));
    }

    #[test]
    fn no_backend_answer_is_a_dash_or_null() {
        let mut r = record();
        r.upstream_wait = None;
        assert!(r.format().ends_with(" duration_ms=1.500 upstream_ms=-"));
        assert!(r
            .to_json()
            .ends_with(r#""duration_ms":1.500,"upstream_ms":null,"termination":"--"}"#));
    }

    #[test]
    fn reopen_moves_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(path.clone()),
            format: LogFormat::Combined,
            syslog: None,
        })
        .unwrap();
        let sender = log.sender();
        sender.log(record());
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sender
            .reopen(Some(path.clone()), LogFormat::Json, None)
            .unwrap();
        sender.log(record());
        log.finish();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap().lines().count(),
            1
        );
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.starts_with("{\"time\""), "{now}");
        assert!(sender.reopen(None, LogFormat::Json, None).is_err());
    }

    #[test]
    fn a_reader_that_stops_reading_stalls_the_queue_and_loses_nothing() {
        // The log goes to a pipe whose reader does not read (a stuck log
        // shipper): once the pipe and the queue are full, senders wait and
        // the log says it is stalled; when the reader drains, every line
        // comes through.
        use std::io::Read;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(fifo.clone()),
            ..Outputs::default()
        })
        .unwrap();
        let sender = log.sender();
        assert!(!sender.is_stalled());
        let total = CHANNEL_CAPACITY + 4096;
        let writer = {
            let sender = sender.clone();
            std::thread::spawn(move || (0..total).for_each(|_| sender.log(record())))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sender.is_stalled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(sender.is_stalled(), "the queue never filled");
        // Drain on a thread until the writer is done, then count lines.
        let drained = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            all
        });
        writer.join().unwrap();
        log.finish();
        let all = drained.join().unwrap();
        assert_eq!(all.iter().filter(|&&b| b == b'\n').count(), total);
        assert_eq!(sender.lost(), 0);
    }

    #[test]
    fn quoted_fields_escape_only_what_they_must() {
        let mut out = String::new();
        escape_into(&mut out, "Mozilla/5.0 (X11; Linux) ~!");
        assert_eq!(out, "Mozilla/5.0 (X11; Linux) ~!");
        out.clear();
        escape_into(&mut out, "a\"b\\c\x7f\té");
        assert_eq!(out, "a\\x22b\\x5Cc\\x7F\\x09\\xC3\\xA9");
    }

    #[test]
    fn formats_a_combined_line_with_extras() {
        assert_eq!(
            record().format(),
            "127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\x22b HTTP/1.1\" 200 512 \"-\" \"curl/8\\x0A\" upstream=127.0.0.1:9001 cache=MISS duration_ms=1.500 upstream_ms=1.250"
        );
    }

    #[test]
    fn every_record_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(path.clone()),
            ..Outputs::default()
        })
        .unwrap();
        let senders: Vec<_> = (0..4).map(|_| log.sender()).collect();
        let threads: Vec<_> = senders
            .into_iter()
            .map(|s| {
                std::thread::spawn(move || {
                    for _ in 0..5000 {
                        s.log(record());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        log.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 20_000);
    }
}
