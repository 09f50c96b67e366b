//! The access log to syslog (`log_syslog`), as nginx's `access_log
//! syslog:server=...` and HAProxy's `log` send it: each line one datagram
//! in the BSD format of RFC 3164, `<PRI>Mmm dd hh:mm:ss hostname tag: line`,
//! over UDP or to a local datagram socket (`/dev/log`).
//!
//! RFC 3164 rather than RFC 5424: it is what nginx sends and HAProxy sends
//! by default, and what rsyslog, syslog-ng and journald read without being
//! told the format. Sent by the logger thread alone, on a non-blocking
//! socket: a syslog daemon that is down or slow loses its own copy of the
//! lines, never stdout's or the file's, and never holds up the logger.

use crate::config::lookup;
use crate::digits::Decimal;
use crate::throttle::Throttle;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The port of a target written without one, as nginx's and HAProxy's.
const DEFAULT_PORT: u16 = 514;

/// The longest datagram sent, its header included: a longer line is cut
/// to fit. rsyslog's default `maxMessageSize`, which it would cut at
/// anyway (syslog-ng takes 64 KiB; HAProxy cuts at its `len`, 1024 by
/// default).
pub const MAX_DATAGRAM: usize = 8192;

/// The longest tag, as nginx's `tag=` (RFC 3164 §4.1.3 says 32 too).
const MAX_TAG: usize = 32;

/// A socket that failed is opened again at most this often, so that a
/// syslog daemon that stays down costs a `connect` a second, not one a
/// line.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// `sun_path`'s size on Linux, its NUL included.
const MAX_UNIX_PATH: usize = 108;

/// Where the lines go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SyslogTarget {
    /// `written` as the configuration has it (a name stays a name),
    /// `addr` what it resolved to when loaded.
    Udp { written: String, addr: SocketAddr },
    /// A local datagram socket, as journald's and rsyslog's `/dev/log`.
    Unix(PathBuf),
}

impl SyslogTarget {
    /// `udp://host:port`, `host:port`, `[::1]:port` (the port 514 when
    /// left out), or `unix:PATH`. A name is resolved here, once, as
    /// targets' are: the first address the resolver gives, as nginx.
    pub fn parse(v: &str) -> Result<SyslogTarget, String> {
        let v = v.trim();
        if let Some(path) = v.strip_prefix("unix:") {
            if path.is_empty() {
                return Err("`unix:` needs the socket's path (`unix:/dev/log`)".into());
            }
            if path.len() >= MAX_UNIX_PATH {
                return Err(format!(
                    "the socket's path is longer than the {} bytes a Unix socket's may be",
                    MAX_UNIX_PATH - 1
                ));
            }
            return Ok(SyslogTarget::Unix(PathBuf::from(path)));
        }
        let rest = match v.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("udp") => rest,
            Some((scheme, _)) => {
                return Err(format!(
                    "`{scheme}://` is not supported: `udp://host:port` or `unix:PATH`"
                ))
            }
            None => v,
        };
        let (host, port) = host_and_port(rest).ok_or_else(|| {
            format!("`{v}` is not host:port, [IPv6]:port, udp://host:port or unix:PATH")
        })?;
        let addr = match host.parse::<IpAddr>() {
            Ok(ip) => SocketAddr::new(ip, port),
            Err(_) => *lookup(host, port)
                .map_err(|e| format!("`{host}` does not resolve: {e}"))?
                .first()
                .ok_or_else(|| format!("`{host}` does not resolve"))?,
        };
        Ok(SyslogTarget::Udp {
            written: v.to_string(),
            addr,
        })
    }
}

/// `host:port`, `host`, `[v6]:port`, `[v6]` or a bare IPv6 address; the
/// port 514 when left out. `None` for what is none of these.
fn host_and_port(v: &str) -> Option<(&str, u16)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|&p| p > 0);
    if let Some(inner) = v.strip_prefix('[') {
        let (host, after) = inner.split_once(']')?;
        host.parse::<Ipv6Addr>().ok()?;
        return match after {
            "" => Some((host, DEFAULT_PORT)),
            _ => Some((host, port(after.strip_prefix(':')?)?)),
        };
    }
    if v.parse::<Ipv6Addr>().is_ok() {
        return Some((v, DEFAULT_PORT));
    }
    let (host, p) = match v.split_once(':') {
        Some((host, p)) => (host, port(p)?),
        None => (v, DEFAULT_PORT),
    };
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '_';
    (!host.is_empty() && host.chars().all(plain)).then_some((host, p))
}

/// RFC 3164's facilities, by nginx's names, in their order (their codes).
const FACILITIES: [&str; 24] = [
    "kern", "user", "mail", "daemon", "auth", "intern", "lpr", "news", "uucp", "clock", "authpriv",
    "ftp", "ntp", "audit", "alert", "cron", "local0", "local1", "local2", "local3", "local4",
    "local5", "local6", "local7",
];

/// A syslog facility: its code, 0 (`kern`) to 23 (`local7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Facility(u8);

impl Default for Facility {
    /// `local7`, as nginx's.
    fn default() -> Self {
        Facility(23)
    }
}

impl Facility {
    pub fn parse(v: &str) -> Result<Facility, String> {
        let v = v.trim();
        match FACILITIES.iter().position(|&f| f.eq_ignore_ascii_case(v)) {
            Some(code) => Ok(Facility(code as u8)),
            None => {
                let hint = crate::config::nearest(&v.to_ascii_lowercase(), FACILITIES)
                    .map(|f| format!(" (did you mean `{f}`?)"))
                    .unwrap_or_default();
                Err(format!(
                    "unknown facility `{v}`{hint}: kern, user, mail, daemon, auth, intern, lpr, \
                     news, uucp, clock, authpriv, ftp, ntp, audit, alert, cron or local0 to local7"
                ))
            }
        }
    }

    pub fn name(self) -> &'static str {
        FACILITIES[usize::from(self.0)]
    }
}

/// A tag as nginx takes its `tag=`: 1 to 32 letters, digits or `_`, so
/// that it stays one word a syslog daemon can file lines by.
pub fn parse_tag(v: &str) -> Result<Arc<str>, String> {
    let v = v.trim();
    if v.is_empty() || v.len() > MAX_TAG {
        return Err(format!("a tag is 1 to {MAX_TAG} characters"));
    }
    if let Some(c) = v.chars().find(|&c| !c.is_ascii_alphanumeric() && c != '_') {
        return Err(format!(
            "`{}` may not be in a tag: letters, digits and `_` only",
            c.escape_debug()
        ));
    }
    Ok(v.into())
}

/// The settings of `log_syslog` and its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Syslog {
    pub target: SyslogTarget,
    pub facility: Facility,
    pub tag: Arc<str>,
}

impl Syslog {
    /// The settings `config` has, none with `log_syslog` empty.
    pub fn of(config: &crate::Config) -> Option<Syslog> {
        Some(Syslog {
            target: config.log_syslog.clone()?,
            facility: config.log_syslog_facility,
            tag: config.log_syslog_tag.clone(),
        })
    }

    /// How `check` describes it.
    pub fn describe(&self) -> String {
        let to = match &self.target {
            SyslogTarget::Udp { addr, .. } => format!("udp {addr}"),
            SyslogTarget::Unix(path) => format!("unix {}", path.display()),
        };
        format!(
            "access log to syslog: {to}, RFC 3164, facility {}, severity info (err for 5xx), \
             tag {}",
            self.facility.name(),
            self.tag
        )
    }
}

/// RFC 3164's severities the log uses.
const SEVERITY_ERR: u8 = 3;
const SEVERITY_INFO: u8 = 6;

enum Socket {
    Udp(UdpSocket),
    Unix(UnixDatagram),
}

impl Socket {
    /// A socket connected to `target`, which never blocks a send: a full
    /// buffer (a slow daemon) is an error, the line lost, the log going on.
    fn open(target: &SyslogTarget) -> io::Result<Socket> {
        match target {
            SyslogTarget::Udp { addr, .. } => {
                let any: SocketAddr = match addr {
                    SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
                    SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
                };
                let socket = UdpSocket::bind(any)?;
                // Connected, so that the kernel says when nothing
                // listens there (ICMP port unreachable: ECONNREFUSED).
                socket.connect(addr)?;
                socket.set_nonblocking(true)?;
                Ok(Socket::Udp(socket))
            }
            SyslogTarget::Unix(path) => {
                let socket = UnixDatagram::unbound()?;
                socket.connect(path)?;
                socket.set_nonblocking(true)?;
                Ok(Socket::Unix(socket))
            }
        }
    }

    fn send(&self, datagram: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Udp(s) => s.send(datagram),
            Socket::Unix(s) => s.send(datagram),
        }
    }
}

/// Whether a failed send leaves the socket as good as it was: the
/// receiver is slow (a full buffer), or, over UDP, said once that nothing
/// listened (the next datagram may find it back). Anything else on a
/// local socket means its peer went away (the daemon restarted): it is
/// opened again.
fn keeps_socket(socket: &Socket, e: &io::Error) -> bool {
    matches!(socket, Socket::Udp(_))
        || e.kind() == io::ErrorKind::WouldBlock
        || e.kind() == io::ErrorKind::Interrupted
        || e.raw_os_error() == Some(libc::ENOBUFS)
}

/// The logger's syslog output.
pub(super) struct SyslogSink {
    settings: Syslog,
    /// Said in each datagram over UDP; none to a local socket, whose
    /// readers (journald, rsyslog's imuxsock) expect none and would take
    /// it for the tag, as glibc's `syslog()` sends none there.
    hostname: Option<String>,
    socket: Option<Socket>,
    /// When a socket was last opened, or tried to be.
    opened_at: Option<Instant>,
    datagram: Vec<u8>,
    clock: LocalClock,
    failures: Throttle,
    /// Lines not sent since the failures were last said to be over.
    unsent: u64,
}

impl SyslogSink {
    pub(super) fn new(settings: Syslog) -> SyslogSink {
        let hostname = match settings.target {
            SyslogTarget::Udp { .. } => Some(hostname()),
            SyslogTarget::Unix(_) => None,
        };
        let mut sink = SyslogSink {
            settings,
            hostname,
            socket: None,
            opened_at: None,
            datagram: Vec::with_capacity(512),
            clock: LocalClock::default(),
            failures: Throttle::new(),
            unsent: 0,
        };
        // At once, so that a target that cannot be reached is said at
        // start-up or reload, not at the first request.
        let _ = sink.open(Instant::now());
        sink
    }

    pub(super) fn settings(&self) -> &Syslog {
        &self.settings
    }

    /// Opens the socket again at the next line (SIGUSR1: the daemon was
    /// restarted).
    pub(super) fn reconnect(&mut self) {
        self.socket = None;
        self.opened_at = None;
    }

    /// Sends `line` (without newline) for a request answered with
    /// `status`; what fails is counted in `lost` and said, throttled.
    pub(super) fn send(&mut self, line: &str, status: u16, lost: &AtomicU64) {
        self.send_at(line, status, Instant::now(), SystemTime::now(), lost);
    }

    fn send_at(
        &mut self,
        line: &str,
        status: u16,
        now: Instant,
        time: SystemTime,
        lost: &AtomicU64,
    ) {
        let severity = if status >= 500 {
            SEVERITY_ERR
        } else {
            SEVERITY_INFO
        };
        self.build(line, severity, time);
        // A local socket whose peer went away is opened again and the line
        // sent once more, so that a daemon's restart costs no line.
        for _attempt in 0..2 {
            if self.socket.is_none() && !self.open(now) {
                self.lose(lost);
                return;
            }
            let Some(socket) = &self.socket else {
                return;
            };
            match socket.send(&self.datagram) {
                Ok(_) => return,
                Err(e) => {
                    let keep = keeps_socket(socket, &e);
                    self.failed(&e, now);
                    if keep {
                        self.lose(lost);
                        return;
                    }
                    self.socket = None;
                }
            }
        }
        self.lose(lost);
    }

    /// Opens the socket, unless one was tried less than a second before
    /// `now`; whether there is one.
    fn open(&mut self, now: Instant) -> bool {
        if self
            .opened_at
            .is_some_and(|at| now.duration_since(at) < RECONNECT_EVERY)
        {
            return false;
        }
        self.opened_at = Some(now);
        match Socket::open(&self.settings.target) {
            Ok(socket) => {
                self.socket = Some(socket);
                if self.failures.recovered() {
                    log::warn!(
                        "access log ({}): connected again; {} lines were lost",
                        self.name(),
                        self.unsent
                    );
                    self.unsent = 0;
                }
                true
            }
            Err(e) => {
                self.failed(&e, now);
                false
            }
        }
    }

    fn lose(&mut self, lost: &AtomicU64) {
        self.unsent += 1;
        lost.fetch_add(1, Ordering::Relaxed);
    }

    /// Said at most once a minute for each cause (a success over UDP
    /// proves nothing, so that none ends them but a socket opened again).
    fn failed(&mut self, e: &io::Error, now: Instant) {
        if self.failures.failed_because(now, &e.to_string()).is_some() {
            log::warn!(
                "access log ({}): cannot send: {e}; {} lines lost so far",
                self.name(),
                self.unsent
            );
        }
    }

    fn name(&self) -> String {
        match &self.settings.target {
            SyslogTarget::Udp { addr, .. } => format!("syslog udp {addr}"),
            SyslogTarget::Unix(path) => format!("syslog unix:{}", path.display()),
        }
    }

    /// The datagram for `line`, cut to [`MAX_DATAGRAM`] bytes (at a
    /// character's boundary).
    fn build(&mut self, line: &str, severity: u8, time: SystemTime) {
        let d = &mut self.datagram;
        d.clear();
        let pri = u16::from(self.settings.facility.0) * 8 + u16::from(severity);
        d.push(b'<');
        d.extend_from_slice(Decimal::new(u64::from(pri)).as_bytes());
        d.push(b'>');
        d.extend_from_slice(self.clock.stamp(time).as_bytes());
        d.push(b' ');
        if let Some(host) = &self.hostname {
            d.extend_from_slice(host.as_bytes());
            d.push(b' ');
        }
        d.extend_from_slice(self.settings.tag.as_bytes());
        d.extend_from_slice(b": ");
        d.extend_from_slice(fit_to_datagram(line, d.len()).as_bytes());
    }
}

/// What a datagram whose header takes `header` bytes holds of `line`: all
/// of it, or as much as fits in [`MAX_DATAGRAM`], cut at a character's
/// boundary.
pub fn fit_to_datagram(line: &str, header: usize) -> &str {
    let room = MAX_DATAGRAM.saturating_sub(header);
    let mut end = line.len().min(room);
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

/// This machine's name, as RFC 3164's HOSTNAME: one word.
fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name: String = String::from_utf8_lossy(&buf[..len])
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .collect();
    if ok && !name.is_empty() {
        name
    } else {
        "localhost".to_string()
    }
}

/// RFC 3164's TIMESTAMP, `Mmm dd hh:mm:ss` in local time (as nginx and
/// glibc write it: the day padded with a space), made once a second.
#[derive(Default)]
struct LocalClock {
    second: Option<i64>,
    stamp: String,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

impl LocalClock {
    fn stamp(&mut self, time: SystemTime) -> &str {
        let second = match time.duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(_) => 0,
        };
        if self.second != Some(second) {
            self.second = Some(second);
            self.stamp = local_stamp(second);
        }
        &self.stamp
    }
}

fn local_stamp(second: i64) -> String {
    let t: libc::time_t = second as libc::time_t;
    // SAFETY: `tm` is plain data that localtime_r fills in; both pointers
    // are valid for the call.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&t, &mut tm).is_null() {
            return "Jan  1 00:00:00".to_string();
        }
        tm
    };
    let month = MONTHS[usize::try_from(tm.tm_mon).unwrap_or(0).min(11)];
    format!(
        "{month} {:>2} {:02}:{:02}:{:02}",
        tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(v: &str) -> SocketAddr {
        match SyslogTarget::parse(v).unwrap() {
            SyslogTarget::Udp { addr, .. } => addr,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn targets_as_nginx_writes_them() {
        assert_eq!(udp("127.0.0.1:5514"), "127.0.0.1:5514".parse().unwrap());
        assert_eq!(
            udp("udp://127.0.0.1:5514"),
            "127.0.0.1:5514".parse().unwrap()
        );
        assert_eq!(udp("UDP://127.0.0.1"), "127.0.0.1:514".parse().unwrap());
        assert_eq!(udp("[::1]:5514"), "[::1]:5514".parse().unwrap());
        assert_eq!(udp("[::1]"), "[::1]:514".parse().unwrap());
        assert_eq!(udp("::1"), "[::1]:514".parse().unwrap());
        assert!(udp("localhost:5514").ip().is_loopback());
        assert_eq!(
            SyslogTarget::parse("unix:/dev/log").unwrap(),
            SyslogTarget::Unix("/dev/log".into())
        );
        for (bad, says) in [
            ("tcp://127.0.0.1:514", "not supported"),
            ("unix:", "needs the socket's path"),
            ("127.0.0.1:0", "is not host:port"),
            ("127.0.0.1:70000", "is not host:port"),
            ("127.0.0.1:", "is not host:port"),
            ("[::1", "is not host:port"),
            ("[nope]:514", "is not host:port"),
            ("a b:514", "is not host:port"),
            ("syslog.invalid:514", "does not resolve"),
        ] {
            let e = SyslogTarget::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let long = format!("unix:/{}", "a".repeat(120));
        assert!(SyslogTarget::parse(&long).unwrap_err().contains("longer"));
    }

    #[test]
    fn facilities_and_tags_as_nginx_takes_them() {
        assert_eq!(Facility::parse("kern").unwrap().0, 0);
        assert_eq!(Facility::parse("local7").unwrap(), Facility::default());
        assert_eq!(Facility::parse("LOCAL0").unwrap().0, 16);
        assert_eq!(Facility::parse("cron").unwrap().0, 15);
        let e = Facility::parse("locl7").unwrap_err();
        assert!(e.contains("did you mean `local7`"), "{e}");
        assert_eq!(&*parse_tag("my_proxy2").unwrap(), "my_proxy2");
        assert!(parse_tag("").is_err());
        assert!(parse_tag(&"a".repeat(33)).is_err());
        assert!(parse_tag(&"a".repeat(32)).is_ok());
        for bad in ["a-b", "a:b", "a b", "é"] {
            assert!(parse_tag(bad).unwrap_err().contains("may not be"), "{bad}");
        }
    }

    fn sink_to(target: SyslogTarget) -> SyslogSink {
        SyslogSink::new(Syslog {
            target,
            facility: Facility::default(),
            tag: "inverso".into(),
        })
    }

    /// A daemon's socket at `path`, its reads bounded.
    fn listening(path: &std::path::Path) -> UnixDatagram {
        let receiver = UnixDatagram::bind(path).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        receiver
    }

    /// The daemon restarts: its socket goes, and another takes the path.
    fn restarted(receiver: UnixDatagram, path: &std::path::Path) -> UnixDatagram {
        drop(receiver);
        std::fs::remove_file(path).unwrap();
        listening(path)
    }

    /// The next datagram the daemon gets, as text.
    fn received(receiver: &UnixDatagram) -> String {
        let mut buf = [0u8; 1024];
        let n = receiver.recv(&mut buf).unwrap();
        String::from_utf8(buf[..n].to_vec()).unwrap()
    }

    #[test]
    fn a_datagram_is_rfc_3164_with_the_line_cut_to_fit() {
        let receiver = UdpSocket::bind("127.0.0.1:0").unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let addr = receiver.local_addr().unwrap();
        let mut sink = sink_to(SyslogTarget::Udp {
            written: addr.to_string(),
            addr,
        });
        let lost = AtomicU64::new(0);
        let time = UNIX_EPOCH + Duration::from_secs(784_111_777);
        sink.send_at("a line", 200, Instant::now(), time, &lost);
        sink.send_at("an error", 502, Instant::now(), time, &lost);
        let long = format!("{}é", "x".repeat(MAX_DATAGRAM));
        sink.send_at(&long, 200, Instant::now(), time, &lost);
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        for _ in 0..3 {
            let n = receiver.recv(&mut buf).unwrap();
            got.push(String::from_utf8(buf[..n].to_vec()).unwrap());
        }
        let header = format!("{} {} inverso: ", local_stamp(784_111_777), hostname());
        assert_eq!(got[0], format!("<190>{header}a line"));
        assert_eq!(got[1], format!("<187>{header}an error"));
        assert_eq!(got[2].len(), MAX_DATAGRAM);
        assert!(got[2].starts_with(&format!("<190>{header}xxx")));
        assert_eq!(lost.load(Ordering::Relaxed), 0);
        // The day padded with a space, as nginx and glibc write it.
        let stamp = local_stamp(784_111_777);
        assert_eq!(stamp.len(), "Nov  6 08:49:37".len(), "{stamp}");
        assert!(MONTHS.contains(&&stamp[..3]), "{stamp}");
    }

    #[test]
    fn a_local_socket_gets_no_hostname_and_is_opened_again_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let lost = AtomicU64::new(0);
        let time = SystemTime::now();
        // Nothing there yet: tried at the start, then not again within
        // the second, each line lost.
        let mut sink = sink_to(SyslogTarget::Unix(path.clone()));
        assert!(sink.socket.is_none());
        let t0 = sink.opened_at.unwrap();
        let receiver = listening(&path);
        sink.send_at("early", 200, t0, time, &lost);
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        // A second on, it connects.
        let later = t0 + RECONNECT_EVERY;
        sink.send_at("first", 200, later, time, &lost);
        assert_eq!(
            received(&receiver),
            format!("<190>{} inverso: first", local_stamp(unix(time)))
        );
        // The daemon restarts: the socket's peer is gone, another is at
        // the path. The next line finds the new one, none lost.
        let receiver = restarted(receiver, &path);
        sink.send_at("after", 200, later + RECONNECT_EVERY, time, &lost);
        assert!(received(&receiver).ends_with(" inverso: after"));
        assert_eq!(lost.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_daemon_gone_for_good_costs_a_connect_a_second_not_one_a_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let mut sink = sink_to(SyslogTarget::Unix(path.clone()));
        drop(receiver);
        std::fs::remove_file(&path).unwrap();
        let lost = AtomicU64::new(0);
        let t0 = sink.opened_at.unwrap() + RECONNECT_EVERY;
        let time = SystemTime::now();
        // The send fails, the socket is opened again at once and fails.
        sink.send_at("one", 200, t0, time, &lost);
        let tried = sink.opened_at;
        assert_eq!(tried, Some(t0));
        for i in 1..100 {
            sink.send_at("more", 200, t0 + Duration::from_millis(i), time, &lost);
        }
        assert_eq!(sink.opened_at, tried, "tried again within the second");
        assert_eq!(lost.load(Ordering::Relaxed), 100);
        assert_eq!(sink.unsent, 100);
    }

    #[test]
    fn a_daemon_that_never_reads_loses_lines_without_holding_up_the_logger() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let _receiver = UnixDatagram::bind(&path).unwrap();
        let mut sink = sink_to(SyslogTarget::Unix(path));
        let lost = AtomicU64::new(0);
        assert!(nonblocking(&sink));
        // Far more than a datagram socket queues (10 by default): were a
        // send to wait for room, this would never return.
        for _ in 0..1000 {
            sink.send("a line", 200, &lost);
        }
        let full = lost.load(Ordering::Relaxed);
        assert!(full > 0, "the queue never filled");
        // The socket SIGUSR1 opens again does not wait either.
        sink.reconnect();
        sink.send("a line", 200, &lost);
        assert!(nonblocking(&sink));
        for _ in 0..1000 {
            sink.send("a line", 200, &lost);
        }
        assert!(lost.load(Ordering::Relaxed) >= full + 990);
    }

    fn nonblocking(sink: &SyslogSink) -> bool {
        use std::os::fd::AsRawFd;
        let fd = match sink.socket.as_ref().expect("a socket") {
            Socket::Udp(s) => s.as_raw_fd(),
            Socket::Unix(s) => s.as_raw_fd(),
        };
        // SAFETY: F_GETFL only reads the flags of a descriptor `sink` keeps open.
        unsafe { libc::fcntl(fd, libc::F_GETFL) & libc::O_NONBLOCK != 0 }
    }

    #[test]
    fn a_path_that_is_no_datagram_socket_loses_lines_without_waiting() {
        let dir = tempfile::tempdir().unwrap();
        let stream = dir.path().join("stream.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&stream).unwrap();
        let fifo = dir.path().join("fifo");
        let c_fifo = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c_fifo` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_fifo.as_ptr(), 0o600) }, 0);
        for path in [dir.path().to_path_buf(), stream, fifo] {
            let mut sink = sink_to(SyslogTarget::Unix(path.clone()));
            assert!(sink.socket.is_none(), "{}", path.display());
            let lost = AtomicU64::new(0);
            sink.send("a line", 200, &lost);
            assert_eq!(lost.load(Ordering::Relaxed), 1, "{}", path.display());
        }
    }

    #[test]
    fn a_host_name_may_hold_dashes_and_underscores() {
        // Taken as a name and looked up, not refused as malformed.
        for name in ["log-host.invalid:514", "log_host.invalid:514"] {
            let e = SyslogTarget::parse(name).unwrap_err();
            assert!(e.contains("does not resolve"), "{name}: {e}");
        }
    }

    #[test]
    fn the_settings_come_from_the_configuration_as_check_says_them() {
        let mut config = crate::Config::with_targets(Vec::new());
        assert_eq!(Syslog::of(&config), None);
        config.log_syslog = Some(SyslogTarget::parse("127.0.0.1:5514").unwrap());
        config.log_syslog_facility = Facility::parse("local0").unwrap();
        config.log_syslog_tag = parse_tag("edge_1").unwrap();
        let syslog = Syslog::of(&config).unwrap();
        assert_eq!(
            syslog,
            Syslog {
                target: config.log_syslog.clone().unwrap(),
                facility: Facility(16),
                tag: "edge_1".into(),
            }
        );
        assert_eq!(
            syslog.describe(),
            "access log to syslog: udp 127.0.0.1:5514, RFC 3164, facility local0, \
             severity info (err for 5xx), tag edge_1"
        );
        let local = Syslog {
            target: SyslogTarget::Unix("/dev/log".into()),
            facility: Facility::parse("kern").unwrap(),
            ..syslog
        };
        assert!(
            local
                .describe()
                .starts_with("access log to syslog: unix /dev/log, RFC 3164, facility kern,"),
            "{}",
            local.describe()
        );
    }

    #[test]
    fn a_failed_send_keeps_a_local_socket_only_when_its_peer_is_still_there() {
        let local = Socket::Unix(UnixDatagram::unbound().unwrap());
        for (errno, keeps) in [
            (libc::EAGAIN, true),
            (libc::EINTR, true),
            (libc::ENOBUFS, true),
            (libc::ECONNREFUSED, false),
            (libc::ENOTCONN, false),
        ] {
            let e = io::Error::from_raw_os_error(errno);
            assert_eq!(keeps_socket(&local, &e), keeps, "{e}");
        }
        // Over UDP a refusal says only that nothing listened just then.
        let udp = Socket::Udp(UdpSocket::bind("127.0.0.1:0").unwrap());
        let refused = io::Error::from_raw_os_error(libc::ECONNREFUSED);
        assert!(keeps_socket(&udp, &refused));
    }

    #[test]
    fn a_reconnect_finds_a_restarted_daemon_within_the_second() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let receiver = UnixDatagram::bind(&path).unwrap();
        let mut sink = sink_to(SyslogTarget::Unix(path.clone()));
        let t0 = sink.opened_at.unwrap();
        let receiver = restarted(receiver, &path);
        // As SIGUSR1 asks: the socket is opened again at the next line,
        // though one was opened less than a second before.
        sink.reconnect();
        let lost = AtomicU64::new(0);
        sink.send_at("after", 200, t0, SystemTime::now(), &lost);
        assert!(received(&receiver).ends_with(" inverso: after"));
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_line_is_cut_before_a_character_that_would_not_fit_whole() {
        // Two bytes of `é` after the x's.
        let line = format!("{}é", "x".repeat(MAX_DATAGRAM - 11));
        assert_eq!(fit_to_datagram(&line, 9), line);
        assert_eq!(fit_to_datagram(&line, 10), &line[..MAX_DATAGRAM - 11]);
        assert_eq!(fit_to_datagram("abc", MAX_DATAGRAM + 1), "");
    }

    // The kernel's name is what gethostname(2) reads.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_hostname_is_the_machine_s() {
        let kernel = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        assert_eq!(hostname(), kernel.trim_end());
    }

    fn unix(time: SystemTime) -> i64 {
        time.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
    }
}
