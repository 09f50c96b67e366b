//! The PROXY protocol header inverso sends first on a connection to a
//! target written with `send_proxy` or `send_proxy_v2`, as HAProxy's
//! `send-proxy` and `send-proxy-v2` do: the backend learns the client's
//! address from the connection itself, whatever the request says.
//! Specification: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use super::proxy_protocol::{PP2_CLIENT_SSL, PP2_TYPE_SSL, V2_SIGNATURE};
use super::tls::Agreed;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Which version of the header a target is sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyVersion {
    /// A line of text (`send_proxy`).
    V1,
    /// Binary, and says whether the client came over TLS (`send_proxy_v2`).
    V2,
}

impl ProxyVersion {
    /// The option of `targets` that asks for it.
    pub fn option(self) -> &'static str {
        match self {
            ProxyVersion::V1 => "send_proxy",
            ProxyVersion::V2 => "send_proxy_v2",
        }
    }
}

/// The client connection a header speaks for: where it came from, where
/// it arrived (both as this proxy has them, after a PROXY header of its
/// own: the client and the balancer's front), and its TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientEnds {
    pub source: SocketAddr,
    pub destination: SocketAddr,
    /// None: the client came over plain TCP.
    pub tls: Option<ClientTls>,
}

/// A client's TLS, as far as this proxy knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientTls {
    /// What this proxy's handshake with it agreed; none when a balancer
    /// in front made the handshake (and said so in its PROXY header).
    pub agreed: Option<Agreed>,
    /// The host name its hello asked for (SNI).
    pub server_name: Option<Arc<str>>,
}

/// Version 2's command for a connection of the sender's own (a health
/// check), which names no client, and for one made for a client.
const LOCAL: u8 = 0x20;
const PROXY: u8 = 0x21;
/// Version 2's families, each over a stream (TCP).
const TCP4: u8 = 0x11;
const TCP6: u8 = 0x21;
/// Version 2's TLVs for the protocol agreed in ALPN and the host name
/// asked for in SNI, and the SSL TLV's sub-TLVs for the TLS version and
/// the cipher suite.
const PP2_TYPE_ALPN: u8 = 0x01;
const PP2_TYPE_AUTHORITY: u8 = 0x02;
const PP2_SUBTYPE_SSL_VERSION: u8 = 0x21;
const PP2_SUBTYPE_SSL_CIPHER: u8 = 0x23;

/// The header for a connection made for `client`, or, with none, for
/// one of the proxy's own (a health probe): version 1's `UNKNOWN`,
/// version 2's `LOCAL`, which a receiver takes as the connection's own
/// addresses.
pub fn header(version: ProxyVersion, client: Option<&ClientEnds>) -> Vec<u8> {
    match version {
        ProxyVersion::V1 => v1(client),
        ProxyVersion::V2 => v2(client),
    }
}

/// Both addresses in one family: IPv4 when both are, else IPv6 (an IPv4
/// one as `::ffff:a.b.c.d`), as HAProxy writes a pair of mixed families.
fn one_family(client: &ClientEnds) -> (bool, [IpAddr; 2]) {
    let (source, destination) = (client.source.ip(), client.destination.ip());
    match (source, destination) {
        (IpAddr::V4(_), IpAddr::V4(_)) => (true, [source, destination]),
        _ => (false, [source, destination].map(as_v6)),
    }
}

fn as_v6(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V6(v4.to_ipv6_mapped()),
        v6 => v6,
    }
}

/// `PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n`.
fn v1(client: Option<&ClientEnds>) -> Vec<u8> {
    let Some(client) = client else {
        return b"PROXY UNKNOWN\r\n".to_vec();
    };
    let (v4, [source, destination]) = one_family(client);
    format!(
        "PROXY {} {source} {destination} {} {}\r\n",
        if v4 { "TCP4" } else { "TCP6" },
        client.source.port(),
        client.destination.port()
    )
    .into_bytes()
}

fn v2(client: Option<&ClientEnds>) -> Vec<u8> {
    let mut out = V2_SIGNATURE.to_vec();
    let Some(client) = client else {
        // LOCAL, UNSPEC, nothing after.
        out.extend_from_slice(&[LOCAL, 0x00, 0, 0]);
        return out;
    };
    let (v4, addresses) = one_family(client);
    out.extend_from_slice(&[PROXY, if v4 { TCP4 } else { TCP6 }, 0, 0]);
    for ip in addresses {
        match ip {
            IpAddr::V4(ip) => out.extend_from_slice(&ip.octets()),
            IpAddr::V6(ip) => out.extend_from_slice(&ip.octets()),
        }
    }
    out.extend_from_slice(&client.source.port().to_be_bytes());
    out.extend_from_slice(&client.destination.port().to_be_bytes());
    if let Some(tls) = &client.tls {
        let agreed = tls.agreed.as_ref();
        if let Some(alpn) = agreed.and_then(|a| a.alpn) {
            push_tlv(&mut out, PP2_TYPE_ALPN, alpn.as_bytes());
        }
        if let Some(name) = &tls.server_name {
            push_tlv(&mut out, PP2_TYPE_AUTHORITY, name.as_bytes());
        }
        // The client's bits, then `verify`: zero, as HAProxy sends it
        // for a client that showed no certificate.
        let mut ssl = vec![PP2_CLIENT_SSL, 0, 0, 0, 0];
        if let Some(agreed) = agreed {
            push_tlv(
                &mut ssl,
                PP2_SUBTYPE_SSL_VERSION,
                agreed.protocol.as_bytes(),
            );
            push_tlv(&mut ssl, PP2_SUBTYPE_SSL_CIPHER, agreed.cipher.as_bytes());
        }
        push_tlv(&mut out, PP2_TYPE_SSL, &ssl);
    }
    let len = (out.len() - 16) as u16;
    out[14..16].copy_from_slice(&len.to_be_bytes());
    out
}

fn push_tlv(out: &mut Vec<u8>, kind: u8, value: &[u8]) {
    out.push(kind);
    out.extend_from_slice(&(value.len() as u16).to_be_bytes());
    out.extend_from_slice(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::proxy_protocol::{parse, Header};
    use crate::http::proxy_tlv::{self, TlvName};

    fn ends(source: &str, destination: &str, tls: Option<ClientTls>) -> ClientEnds {
        ClientEnds {
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
            tls,
        }
    }

    /// A handshake this proxy made, with SNI and ALPN.
    fn handshake() -> ClientTls {
        ClientTls {
            agreed: Some(Agreed {
                protocol: "TLSv1.3",
                cipher: "TLS13_AES_128_GCM_SHA256",
                resumed: false,
                alpn: Some("http/1.1"),
                group: Some("X25519"),
            }),
            server_name: Some("shop.example".into()),
        }
    }

    /// What a receiver (this proxy's own `proxy_protocol`) reads of it.
    fn read_back(header: &[u8]) -> Header {
        parse(header).unwrap().unwrap()
    }

    #[test]
    fn version_1_names_the_client_in_one_family() {
        let four = ends("192.0.2.1:56324", "198.51.100.1:443", None);
        let line = header(ProxyVersion::V1, Some(&four));
        assert_eq!(line, b"PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n");
        let read = read_back(&line);
        assert_eq!((read.len, read.source), (line.len(), Some(four.source)));
        assert_eq!(read.destination, Some(four.destination));

        let six = ends("[2001:db8::7]:1", "[::1]:8080", None);
        let line = header(ProxyVersion::V1, Some(&six));
        assert_eq!(line, b"PROXY TCP6 2001:db8::7 ::1 1 8080\r\n");
        assert_eq!(read_back(&line).source, Some(six.source));

        let mixed = ends("192.0.2.1:5", "[::1]:8080", None);
        let line = header(ProxyVersion::V1, Some(&mixed));
        assert_eq!(line, b"PROXY TCP6 ::ffff:192.0.2.1 ::1 5 8080\r\n");
        assert!(read_back(&line).source.is_some());

        let own = header(ProxyVersion::V1, None);
        assert_eq!(own, b"PROXY UNKNOWN\r\n");
        assert_eq!(read_back(&own).source, None);
    }

    #[test]
    fn version_2_names_the_client_and_its_tls() {
        for (source, destination) in [
            ("192.0.2.1:56324", "198.51.100.1:443"),
            ("[2001:db8::7]:1", "[::1]:8080"),
        ] {
            for tls in [None, Some(ClientTls::default()), Some(handshake())] {
                let client = ends(source, destination, tls.clone());
                let bytes = header(ProxyVersion::V2, Some(&client));
                let read = read_back(&bytes);
                assert_eq!(read.len, bytes.len(), "{bytes:?}");
                assert_eq!(read.source, Some(client.source));
                assert_eq!(read.destination, Some(client.destination));
                assert_eq!(read.tls, tls.is_some(), "{bytes:?}");
            }
        }
        // What the handshake agreed, in TLVs that `$proxy_protocol_tlv_`
        // reads back.
        let bytes = header(
            ProxyVersion::V2,
            Some(&ends("10.0.0.1:1", "10.0.0.2:2", Some(handshake()))),
        );
        let tlvs = read_back(&bytes).tlvs;
        let tlv = |name| {
            let value = proxy_tlv::value(&tlvs, TlvName::parse(name).unwrap());
            value.map(|v| String::from_utf8(v.into_owned()).unwrap())
        };
        assert_eq!(tlv("alpn").as_deref(), Some("http/1.1"));
        assert_eq!(tlv("authority").as_deref(), Some("shop.example"));
        assert_eq!(tlv("ssl_version").as_deref(), Some("TLSv1.3"));
        assert_eq!(
            tlv("ssl_cipher").as_deref(),
            Some("TLS13_AES_128_GCM_SHA256")
        );
        assert_eq!(tlv("ssl_verify").as_deref(), Some("0"));
        // A client a balancer in front said came over TLS: the SSL TLV
        // alone, its client bit set.
        let bytes = header(
            ProxyVersion::V2,
            Some(&ends(
                "10.0.0.1:1",
                "10.0.0.2:2",
                Some(ClientTls::default()),
            )),
        );
        assert_eq!(bytes[16 + 12..], [0x20, 0, 5, 0x01, 0, 0, 0, 0]);
        let mixed = header(ProxyVersion::V2, Some(&ends("10.0.0.1:1", "[::1]:2", None)));
        assert_eq!(mixed[13], 0x21, "TCP over IPv6");
        assert_eq!(
            read_back(&mixed).source,
            Some("[::ffff:10.0.0.1]:1".parse().unwrap())
        );
    }

    #[test]
    fn version_2_for_the_proxys_own_connection_is_local() {
        let bytes = header(ProxyVersion::V2, None);
        assert_eq!(bytes.len(), 16);
        assert_eq!(bytes[12..], [0x20, 0x00, 0, 0]);
        let read = read_back(&bytes);
        assert_eq!(
            (read.source, read.destination, read.tls),
            (None, None, false)
        );
    }
}
