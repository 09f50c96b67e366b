//! The PROXY protocol header (versions 1 and 2) that a TCP load balancer in
//! front (HAProxy `send-proxy`, AWS NLB, stunnel) puts before the client's
//! bytes, to say whom the connection is from. Specification:
//! <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use crate::throttle::OnceAMinute;
use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Instant;

/// Version 2's first 12 bytes.
pub(super) const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Version 1's longest line, CRLF included (section 2.1).
const V1_MAX: usize = 107;
/// The longest version 2 header accepted: the addresses and room for the
/// TLVs balancers add (AWS: the VPC endpoint; HAProxy: TLS details).
pub const V2_MAX: usize = 16 + 4096;

/// A complete header: its length, the client it names (`None`: the
/// sender gives none, as in its own health checks; the TCP peer stands),
/// and whether the client reached the sender over TLS (version 2's
/// `PP2_TYPE_SSL`, as HAProxy's `send-proxy-v2-ssl` sends it).
#[derive(Debug, PartialEq, Eq)]
pub struct Header {
    pub len: usize,
    pub source: Option<SocketAddr>,
    /// Where the client connected to (the balancer's own address), named
    /// beside the source.
    pub destination: Option<SocketAddr>,
    pub tls: bool,
    /// The TLVs after version 2's addresses, as they came (each fits in
    /// its header): what `$proxy_protocol_tlv_<name>` reads.
    pub tlvs: Box<[u8]>,
}

/// Why bytes cannot start a PROXY header.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ProxyHeaderError {
    #[error("no PROXY protocol header")]
    Missing,
    #[error("PROXY line too long")]
    LineTooLong,
    #[error("PROXY line is not text")]
    NotText,
    #[error("malformed PROXY line `{}`", .0.escape_debug())]
    MalformedLine(String),
    #[error("`{}` is not an address of its family", .0.escape_debug())]
    Address(String),
    #[error("`{}` is not a port", .0.escape_debug())]
    Port(String),
    #[error("PROXY protocol version {0}")]
    Version(u8),
    #[error("PROXY header too long")]
    TooLong,
    #[error("PROXY header shorter than its addresses")]
    ShortAddresses,
    #[error("PROXY command {0}")]
    Command(u8),
    #[error("PROXY address family and transport {0:#04x}")]
    Family(u8),
    #[error("truncated PROXY TLV")]
    TruncatedTlv,
    #[error("PROXY TLV longer than its header")]
    LongTlv,
}

use ProxyHeaderError as E;

/// Version 2's TLV type for TLS details, and its "client used TLS" bit.
pub(super) const PP2_TYPE_SSL: u8 = 0x20;
pub(super) const PP2_CLIENT_SSL: u8 = 0x01;

/// Why a connection under `proxy_protocol` did not start with a header.
#[derive(Debug, thiserror::Error)]
pub enum NoHeader {
    #[error(transparent)]
    Invalid(ProxyHeaderError),
    #[error("no complete PROXY header in time")]
    Late,
    #[error("closed before its PROXY header")]
    Closed,
    #[error("reading the PROXY header: {0}")]
    Io(io::Error),
}

/// Says, at most once a minute, that `peer` sent no header and why.
pub fn warn_of(peer: IpAddr, why: &NoHeader) {
    static BROKEN: OnceAMinute = OnceAMinute::new();
    if BROKEN.due() {
        log::warn!(
            "client {peer}: {why}; connection closed (proxy_protocol is on: every connection \
             must start with a PROXY header; said at most once a minute)"
        );
    }
}

/// Reads the header that starts `tcp`, due by `due`, and not a byte
/// past it: what follows (a TLS hello) stays in the socket for whoever
/// reads next. Looks at what has come first, then takes the part of it
/// that is header.
pub fn read_header(tcp: &TcpStream, due: Instant) -> Result<Header, NoHeader> {
    let mut header = Vec::new();
    let mut seen = vec![0; V2_MAX];
    loop {
        match parse(&header) {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => {}
            Err(e) => return Err(NoHeader::Invalid(e)),
        }
        let left = due.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(NoHeader::Late);
        }
        let _ = tcp.set_read_timeout(Some(left));
        let n = match tcp.peek(&mut seen) {
            Ok(0) => return Err(NoHeader::Closed),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                return Err(NoHeader::Late)
            }
            Err(e) => return Err(NoHeader::Io(e)),
        };
        let had = header.len();
        header.extend_from_slice(&seen[..n]);
        let part = header_part(&header).max(had + 1).min(header.len());
        header.truncate(part);
        (&*tcp)
            .read_exact(&mut seen[..part - had])
            .map_err(NoHeader::Io)?;
    }
}

/// How many of the bytes that start `buf` may belong to a header: all
/// of them but those past a version 1 line's end or a version 2 header's
/// length. Reading no more than that leaves what follows the header (a
/// TLS hello) in the socket.
pub fn header_part(buf: &[u8]) -> usize {
    if buf.starts_with(&V2_SIGNATURE[..buf.len().min(V2_SIGNATURE.len())]) {
        return match buf.get(14..16) {
            Some(len) => buf
                .len()
                .min(16 + usize::from(u16::from_be_bytes([len[0], len[1]]))),
            None => buf.len().min(16),
        };
    }
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => end + 2,
        None => buf.len().min(V1_MAX),
    }
}

/// Parses the header at the start of `buf`: `Ok(None)` while it is
/// incomplete; an error when these bytes cannot start one.
pub fn parse(buf: &[u8]) -> Result<Option<Header>, ProxyHeaderError> {
    let signature_seen = buf.len().min(V2_SIGNATURE.len());
    if buf[..signature_seen] == V2_SIGNATURE[..signature_seen] {
        return if signature_seen < V2_SIGNATURE.len() {
            Ok(None)
        } else {
            parse_v2(buf)
        };
    }
    let prefix_seen = buf.len().min(6);
    if buf[..prefix_seen] != b"PROXY "[..prefix_seen] {
        return Err(E::Missing);
    }
    parse_v1(buf)
}

/// `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`, or `PROXY UNKNOWN…`.
fn parse_v1(buf: &[u8]) -> Result<Option<Header>, ProxyHeaderError> {
    let Some(end) = buf.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(E::LineTooLong)
        } else {
            Ok(None)
        };
    };
    let len = end + 2;
    if len > V1_MAX {
        return Err(E::LineTooLong);
    }
    let line = std::str::from_utf8(&buf[..end]).map_err(|_| E::NotText)?;
    let words: Vec<&str> = line.split(' ').collect();
    let (source, destination) = match words.as_slice() {
        ["PROXY", "UNKNOWN", ..] => (None, None),
        ["PROXY", family @ ("TCP4" | "TCP6"), src, dst, sport, dport] => {
            let v4 = *family == "TCP4";
            let src = SocketAddr::new(address(src, v4)?, port(sport)?);
            let dst = SocketAddr::new(address(dst, v4)?, port(dport)?);
            (Some(src), Some(dst))
        }
        _ => return Err(E::MalformedLine(line.into())),
    };
    Ok(Some(Header {
        len,
        source,
        destination,
        tls: false,
        tlvs: Box::default(),
    }))
}

fn address(text: &str, v4: bool) -> Result<IpAddr, ProxyHeaderError> {
    let parsed = if v4 {
        text.parse::<Ipv4Addr>().map(IpAddr::V4).ok()
    } else {
        text.parse::<Ipv6Addr>().map(IpAddr::V6).ok()
    };
    parsed.ok_or_else(|| E::Address(text.into()))
}

/// A port as the specification writes it: 0 to 65535, no leading zero.
fn port(text: &str) -> Result<u16, ProxyHeaderError> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    canonical
        .then(|| text.parse().ok())
        .flatten()
        .ok_or_else(|| E::Port(text.into()))
}

fn parse_v2(buf: &[u8]) -> Result<Option<Header>, ProxyHeaderError> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(None);
    };
    let (version, command) = (fixed[12] >> 4, fixed[12] & 0x0f);
    if version != 2 {
        return Err(E::Version(version));
    }
    let len = 16 + usize::from(u16::from_be_bytes([fixed[14], fixed[15]]));
    if len > V2_MAX {
        return Err(E::TooLong);
    }
    let Some(header) = buf.get(..len) else {
        return Ok(None);
    };
    let rest = &header[16..];
    let (addresses, tlvs): (_, &[u8]) = match command {
        // LOCAL: the balancer's own connection (a health check).
        0 => (None, &[]),
        // Families and transports past UNIX and DGRAM "must be rejected
        // as invalid by receivers".
        1 if fixed[13] >> 4 > 3 || fixed[13] & 0x0f > 2 => {
            return Err(E::Family(fixed[13]));
        }
        1 => match fixed[13] >> 4 {
            // Over TCP or not, the address is the client's (STREAM or
            // DGRAM); UNSPEC and UNIX name no IP peer.
            1 if rest.len() >= 12 => {
                let ip =
                    |at: usize| IpAddr::from([rest[at], rest[at + 1], rest[at + 2], rest[at + 3]]);
                let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
                let source = SocketAddr::new(ip(0), port(8));
                (
                    Some((source, SocketAddr::new(ip(4), port(10)))),
                    &rest[12..],
                )
            }
            2 if rest.len() >= 36 => {
                let ip = |at: usize| {
                    let mut ip = [0u8; 16];
                    ip.copy_from_slice(&rest[at..at + 16]);
                    IpAddr::from(ip)
                };
                let port = |at: usize| u16::from_be_bytes([rest[at], rest[at + 1]]);
                let source = SocketAddr::new(ip(0), port(32));
                (
                    Some((source, SocketAddr::new(ip(16), port(34)))),
                    &rest[36..],
                )
            }
            1 | 2 => return Err(E::ShortAddresses),
            _ => (None, &[]),
        },
        other => return Err(E::Command(other)),
    };
    Ok(Some(Header {
        len,
        source: addresses.map(|(source, _)| source),
        destination: addresses.map(|(_, destination)| destination),
        tls: client_used_tls(tlvs)?,
        tlvs: tlvs.into(),
    }))
}

/// Walks the TLVs after the addresses: whether one says the client came
/// over TLS. TLVs that do not fit their header are an error.
fn client_used_tls(mut tlvs: &[u8]) -> Result<bool, ProxyHeaderError> {
    let mut tls = false;
    while !tlvs.is_empty() {
        let [kind, high, low, ref rest @ ..] = *tlvs else {
            return Err(E::TruncatedTlv);
        };
        let len = usize::from(u16::from_be_bytes([high, low]));
        let Some(value) = rest.get(..len) else {
            return Err(E::LongTlv);
        };
        if kind == PP2_TYPE_SSL {
            tls |= value
                .first()
                .is_some_and(|&client| client & PP2_CLIENT_SSL != 0);
        }
        tlvs = &rest[len..];
    }
    Ok(tls)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_header_read_off_a_socket_leaves_what_follows_it() {
        use crate::http::conn::tests::loopback_pair;
        use std::io::Write;
        let mut v2_header = v2(
            0x21,
            0x11,
            &[198, 51, 100, 7, 127, 0, 0, 1, 0x15, 0xb3, 0x01, 0xbb],
        );
        let v1_header = b"PROXY TCP4 192.0.2.9 127.0.0.1 5555 443\r\n".to_vec();
        for header in [v1_header, std::mem::take(&mut v2_header)] {
            let (mut near, far) = loopback_pair();
            let due = Instant::now() + std::time::Duration::from_secs(10);
            // In pieces, the hello that follows sent with the last one.
            let (first, rest) = header.split_at(header.len() / 2);
            near.write_all(first).unwrap();
            let rest = rest.to_vec();
            let writer = std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                near.write_all(&[&rest[..], b"\x16\x03\x01hello"].concat())
                    .unwrap();
                near
            });
            let read = read_header(&far, due).unwrap();
            assert_eq!(read.len, header.len());
            assert!(read.source.is_some());
            let _near = writer.join().unwrap();
            let mut after = [0u8; 8];
            (&far).read_exact(&mut after).unwrap();
            assert_eq!(&after, b"\x16\x03\x01hello");
        }
        // A connection that starts with a hello has no header.
        let (mut near, far) = loopback_pair();
        near.write_all(b"\x16\x03\x01hello").unwrap();
        let due = Instant::now() + std::time::Duration::from_secs(10);
        assert!(matches!(
            read_header(&far, due),
            Err(NoHeader::Invalid(ProxyHeaderError::Missing))
        ));
    }

    #[test]
    fn a_header_not_sent_by_its_due_time_is_late() {
        use crate::http::conn::tests::loopback_pair;
        let (_near, far) = loopback_pair();
        let due = Instant::now() + std::time::Duration::from_millis(100);
        assert!(matches!(read_header(&far, due), Err(NoHeader::Late)));
    }

    fn v2(command: u8, family: u8, addresses: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&(addresses.len() as u16).to_be_bytes());
        out.extend_from_slice(addresses);
        out
    }

    fn addr(s: &str) -> Option<SocketAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn version_1_lines() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\nGET / HTTP/1.1\r\n";
        let header = parse(line).unwrap().unwrap();
        assert_eq!(header.len, 45);
        assert_eq!(header.source, addr("192.0.2.1:56324"));
        assert_eq!(header.destination, addr("198.51.100.1:443"));
        let six = parse(b"PROXY TCP6 2001:db8::1 2001:db8::2 1 2\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(six.source, addr("[2001:db8::1]:1"));
        assert_eq!(six.destination, addr("[2001:db8::2]:2"));
        let unknown = b"PROXY UNKNOWN whatever follows\r\n";
        let unknown = parse(unknown).unwrap().unwrap();
        assert_eq!((unknown.source, unknown.destination), (None, None));
    }

    #[test]
    fn incomplete_headers_ask_for_more() {
        let line = b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n";
        for cut in 0..line.len() {
            assert_eq!(parse(&line[..cut]), Ok(None), "cut at {cut}");
        }
        let mut whole = v2(
            1,
            0x11,
            &[192, 0, 2, 1, 198, 51, 100, 1, 0x1f, 0x90, 1, 187],
        );
        whole.extend_from_slice(b"GET");
        for cut in 0..28 {
            assert_eq!(parse(&whole[..cut]), Ok(None), "cut at {cut}");
        }
        let header = parse(&whole).unwrap().unwrap();
        assert_eq!((header.len, header.source), (28, addr("192.0.2.1:8080")));
        assert_eq!(header.destination, addr("198.51.100.1:443"));
    }

    #[test]
    fn version_2_families_and_commands() {
        let mut six = [0u8; 36];
        six[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        six[16..32].copy_from_slice(&"2001:db8::8".parse::<Ipv6Addr>().unwrap().octets());
        six[32..34].copy_from_slice(&443u16.to_be_bytes());
        six[34..36].copy_from_slice(&8443u16.to_be_bytes());
        let header = parse(&v2(1, 0x21, &six)).unwrap().unwrap();
        assert_eq!(header.source, addr("[2001:db8::7]:443"));
        assert_eq!(header.destination, addr("[2001:db8::8]:8443"));
        // LOCAL, UNSPEC and UNIX: no client named. TLVs after the addresses.
        assert_eq!(parse(&v2(0, 0x11, &[0; 12])).unwrap().unwrap().source, None);
        assert_eq!(parse(&v2(1, 0x00, &[])).unwrap().unwrap().source, None);
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().source,
            None
        );
        let with_tlv = v2(
            1,
            0x11,
            &[10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 0, 80, 0x04, 0, 1, 0],
        );
        let header = parse(&with_tlv).unwrap().unwrap();
        assert_eq!((header.len, header.tls), (32, false));
    }

    #[test]
    fn an_ssl_tlv_says_whether_the_client_used_tls() {
        let four = [10, 0, 0, 1, 10, 0, 0, 2, 0, 80, 1, 187];
        let with = |tlvs: &[u8]| parse(&v2(1, 0x11, &[&four[..], tlvs].concat()));
        // PP2_TYPE_SSL: client bits, verify (4 bytes), then sub-TLVs.
        let ssl = [0x20, 0, 5, 0x01, 0, 0, 0, 0];
        assert!(with(&ssl).unwrap().unwrap().tls);
        let plain = [0x20, 0, 5, 0x00, 0, 0, 0, 0];
        assert!(!with(&plain).unwrap().unwrap().tls);
        let after_another = [&[0x04, 0, 2, 9, 9][..], &ssl].concat();
        assert!(with(&after_another).unwrap().unwrap().tls);
        assert!(with(&[0x20, 0, 9, 1]).is_err(), "longer than the header");
        assert!(with(&[0x20, 0]).is_err(), "truncated");
    }

    #[test]
    fn header_part_stops_at_the_header_end() {
        // read_header takes only this much off the socket.
        assert_eq!(header_part(b"PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n"), 15);
        assert_eq!(header_part(b"PROXY UNKNOWN"), 13);
        assert_eq!(header_part(&[b'P'; 200]), V1_MAX);
        let mut whole = v2(1, 0x11, &[0; 12]);
        whole.extend_from_slice(b"\x16\x03\x01hello");
        assert_eq!(header_part(&whole), 28);
        assert_eq!(header_part(&whole[..10]), 10);
        assert_eq!(header_part(&whole[..15]), 15);
        assert_eq!(header_part(&whole[..20]), 20);
    }

    #[test]
    fn headers_of_the_longest_accepted_length() {
        let line = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_MAX - 16));
        assert_eq!(line.len(), V1_MAX);
        assert_eq!(parse(line.as_bytes()).unwrap().unwrap().len, V1_MAX);
        let mut addresses = vec![192, 0, 2, 1, 198, 51, 100, 1, 0, 80, 0, 80];
        let tlv_len = V2_MAX - 16 - addresses.len() - 3;
        addresses.extend_from_slice(&[0x04, (tlv_len >> 8) as u8, tlv_len as u8]);
        addresses.resize(V2_MAX - 16, 0);
        let header = parse(&v2(1, 0x11, &addresses)).unwrap().unwrap();
        assert_eq!((header.len, header.source), (V2_MAX, addr("192.0.2.1:80")));
    }

    #[test]
    fn a_dgram_header_names_its_client() {
        let header = parse(&v2(1, 0x12, &[192, 0, 2, 1, 198, 51, 100, 1, 0, 53, 0, 53]));
        assert_eq!(header.unwrap().unwrap().source, addr("192.0.2.1:53"));
    }

    #[test]
    fn short_ipv6_addresses_are_refused() {
        assert_eq!(
            parse(&v2(1, 0x21, &[0; 12])),
            Err(ProxyHeaderError::ShortAddresses)
        );
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in [
            &b"GET / HTTP/1.1\r\n"[..],
            b"PROXY TCP4 192.0.2.1 198.51.100.1 56324\r\n",
            b"PROXY TCP4 2001:db8::1 198.51.100.1 1 2\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 056324 443\r\n",
            b"PROXY TCP4 192.0.2.1 198.51.100.1 65536 443\r\n",
            b"PROXY TCP4  192.0.2.1 198.51.100.1 1 2\r\n",
            b"PROXY UDP4 192.0.2.1 198.51.100.1 1 2\r\n",
            b"proxy TCP4 192.0.2.1 198.51.100.1 1 2\r\n",
        ] {
            assert!(parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
        assert!(parse(&[b'P'; 200]).is_err());
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(100));
        assert!(parse(long.as_bytes()).is_err(), "past 107 bytes");
        assert!(parse(&v2(2, 0x11, &[0; 12])).is_err(), "command 2");
        assert!(parse(&v2(1, 0x11, &[0; 8])).is_err(), "short addresses");
        // Families and transports the specification does not define are
        // to be refused; a LOCAL header's are ignored.
        for undefined in [0x41, 0xf1, 0x13, 0x1f] {
            assert!(
                parse(&v2(1, undefined, &[0; 12])).is_err(),
                "{undefined:#x}"
            );
            assert!(
                parse(&v2(0, undefined, &[])).is_ok(),
                "LOCAL {undefined:#x}"
            );
        }
        assert_eq!(
            parse(&v2(1, 0x31, &[0; 216])).unwrap().unwrap().source,
            None
        );
        let mut v3 = v2(1, 0x11, &[0; 12]);
        v3[12] = 0x31;
        assert!(parse(&v3).is_err(), "version 3");
        let mut huge = V2_SIGNATURE.to_vec();
        huge.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert!(parse(&huge).is_err(), "longer than accepted");
    }
}
