//! The host name a TLS client's hello asks for (SNI, RFC 6066 §3) and the
//! protocols it offers (ALPN, RFC 7301), read from the bytes a connection
//! begins with, without taking part in the handshake: what a
//! `stream.<name>` passing TLS through chooses its pool by (nginx's
//! `ssl_preread`, HAProxy's `req.ssl_sni` and `req.ssl_alpn`).
//!
//! The bytes are untrusted: every length is checked against what is
//! there before it is used, and a hello larger than [`MAX_HELLO`] is not
//! read.

/// The largest ClientHello read (its handshake message, every record's
/// worth): browsers' run to 2 KiB with post-quantum key shares.
pub const MAX_HELLO: usize = 16 * 1024;
/// The bytes a hello of [`MAX_HELLO`] takes on the wire in up to 64
/// records (its handshake header and the records' besides): clients send
/// theirs in one or two; one cut in more, smaller records is read as far
/// as that, and taken as naming none.
pub const MAX_HELLO_BYTES: usize = MAX_HELLO + 4 + 5 * 64;

/// TLS's record type of a handshake, and its message type of a
/// ClientHello; the `server_name` extension, and its `host_name` entry.
const HANDSHAKE: u8 = 22;
const CLIENT_HELLO: u8 = 1;
const SERVER_NAME: u16 = 0;
const HOST_NAME: u8 = 0;
const ALPN: u16 = 16;
/// The most protocols of a hello's ALPN kept: clients offer two or three.
const MAX_PROTOCOLS: usize = 16;
/// A record's largest plaintext (RFC 8446 §5.1).
const MAX_RECORD: usize = 1 << 14;

/// What the bytes a connection began with say of its hello.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Hello {
    /// They begin a ClientHello (or could): more are needed to tell.
    Incomplete,
    /// A ClientHello, and what it asks for.
    Asked(Asked),
    /// A ClientHello that asks for no host and offers no protocol (an IP
    /// address was dialled by an old client), or bytes that are no TLS
    /// hello, or one malformed or too large.
    Unnamed,
}

/// What a ClientHello asks for: one of the two at least.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Asked {
    /// The host name (SNI), lower case, without a trailing dot; none
    /// when it names none, or none valid.
    pub host: Option<String>,
    /// The protocols it offers (ALPN), in its order: those of visible
    /// ASCII (the only ones a configuration names), at most
    /// [`MAX_PROTOCOLS`].
    pub protocols: Vec<String>,
}

/// Reads the hello `bytes` begin with.
pub fn read(bytes: &[u8]) -> Hello {
    // The handshake message, gathered from as many records as it spans.
    let mut message: Vec<u8> = Vec::new();
    let mut rest = bytes;
    loop {
        // What is there of a record's header is looked at at once: a
        // client that speaks another protocol is not waited for.
        match rest {
            [kind, ..] if *kind != HANDSHAKE => return Hello::Unnamed,
            [_, major, ..] if *major != 3 => return Hello::Unnamed,
            _ => {}
        }
        let Some(header) = rest.get(..5) else {
            return Hello::Incomplete;
        };
        let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
        if len == 0 || len > MAX_RECORD {
            return Hello::Unnamed;
        }
        let end = rest.len().min(5 + len);
        message.extend_from_slice(&rest[5..end]);
        if let [kind, a, b, c, ..] = message[..] {
            if kind != CLIENT_HELLO {
                return Hello::Unnamed;
            }
            let body_len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            if body_len > MAX_HELLO {
                return Hello::Unnamed;
            }
            if let Some(body) = message.get(4..4 + body_len) {
                return match asked(body) {
                    Some(asked) if asked.host.is_some() || !asked.protocols.is_empty() => {
                        Hello::Asked(asked)
                    }
                    _ => Hello::Unnamed,
                };
            }
        }
        // A record cut short leaves nothing: the next look asks for more.
        rest = &rest[end..];
    }
}

/// A cursor over untrusted bytes: each read is `None` past their end.
struct Bytes<'a>(&'a [u8]);

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (taken, rest) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = rest;
        Some(taken)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    }

    /// A vector whose length is written in one byte, or two.
    fn short(&mut self) -> Option<Bytes<'a>> {
        let len = usize::from(self.u8()?);
        self.take(len).map(Bytes)
    }

    fn long(&mut self) -> Option<Bytes<'a>> {
        let len = usize::from(self.u16()?);
        self.take(len).map(Bytes)
    }
}

/// What a ClientHello's body (RFC 8446 §4.1.2, RFC 5246 §7.4.1.2) asks
/// for: none when its structure is malformed; a `server_name` extension
/// that names no valid host names none, and an ALPN list malformed
/// offers none.
fn asked(body: &[u8]) -> Option<Asked> {
    let mut hello = Bytes(body);
    hello.take(2 + 32)?; // legacy_version, random
    hello.short()?; // legacy_session_id
    hello.long()?; // cipher_suites
    hello.short()?; // legacy_compression_methods
    let mut asked = Asked::default();
    // TLS 1.0's hello may end here, without extensions.
    if hello.0.is_empty() {
        return Some(asked);
    }
    let mut extensions = hello.long()?;
    while !extensions.0.is_empty() {
        let kind = extensions.u16()?;
        let data = extensions.long()?;
        match kind {
            SERVER_NAME if asked.host.is_none() => asked.host = server_name(data),
            ALPN if asked.protocols.is_empty() => asked.protocols = protocols(data),
            _ => {}
        }
    }
    Some(asked)
}

/// The host name of a `server_name` extension's data: its first
/// `host_name` entry's, if valid.
fn server_name(mut data: Bytes<'_>) -> Option<String> {
    let mut names = data.long()?;
    while !names.0.is_empty() {
        let kind = names.u8()?;
        let name = names.long()?;
        if kind == HOST_NAME {
            return host_name(name.0);
        }
    }
    None
}

/// The protocols of an ALPN extension's data, in its order: those of
/// visible ASCII; none when the list is malformed.
fn protocols(mut data: Bytes<'_>) -> Vec<String> {
    let Some(mut list) = data.long() else {
        return Vec::new();
    };
    let mut protocols = Vec::new();
    while !list.0.is_empty() {
        let Some(name) = list.short() else {
            return Vec::new();
        };
        let visible = !name.0.is_empty() && name.0.iter().all(u8::is_ascii_graphic);
        if visible && protocols.len() < MAX_PROTOCOLS {
            protocols.push(String::from_utf8_lossy(name.0).into_owned());
        }
    }
    protocols
}

/// A DNS host name as SNI carries it (RFC 6066 §3: ASCII, no IP address
/// literal checked here): lower-cased, its one trailing dot dropped; none
/// with an empty label (`a..b`, `.a`), which no host key is.
fn host_name(name: &[u8]) -> Option<String> {
    let name = name.strip_suffix(b".").unwrap_or(name);
    let valid = name.len() <= 253
        && name.split(|&b| b == b'.').all(|label| !label.is_empty())
        && (name.iter()).all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    valid.then(|| String::from_utf8_lossy(name).to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A ClientHello with these extensions, in records of at most
    /// `record` bytes.
    fn hello(extensions: &[(u16, Vec<u8>)], record: usize) -> Vec<u8> {
        let mut body = vec![3, 3];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[3, 1, 2, 3]); // a session id
        body.extend_from_slice(&[0, 4, 0x13, 0x01, 0x13, 0x02]);
        body.extend_from_slice(&[1, 0]);
        let mut all = Vec::new();
        for (kind, data) in extensions {
            all.extend_from_slice(&kind.to_be_bytes());
            all.extend_from_slice(&(data.len() as u16).to_be_bytes());
            all.extend_from_slice(data);
        }
        body.extend_from_slice(&(all.len() as u16).to_be_bytes());
        body.extend_from_slice(&all);
        let mut message = vec![CLIENT_HELLO, 0];
        message.extend_from_slice(&(body.len() as u16).to_be_bytes());
        message.extend_from_slice(&body);
        let mut wire = Vec::new();
        for fragment in message.chunks(record) {
            wire.extend_from_slice(&[HANDSHAKE, 3, 1]);
            wire.extend_from_slice(&(fragment.len() as u16).to_be_bytes());
            wire.extend_from_slice(fragment);
        }
        wire
    }

    fn sni(entries: &[(u8, &[u8])]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for (kind, name) in entries {
            list.push(*kind);
            list.extend_from_slice(&(name.len() as u16).to_be_bytes());
            list.extend_from_slice(name);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        (SERVER_NAME, data)
    }

    /// What a hello asking for `host` and offering `protocols` reads as.
    fn asked(host: Option<&str>, protocols: &[&str]) -> Hello {
        Hello::Asked(Asked {
            host: host.map(str::to_string),
            protocols: protocols.iter().map(|p| p.to_string()).collect(),
        })
    }

    /// An ALPN extension offering `protocols` as written.
    fn alpn(protocols: &[&[u8]]) -> (u16, Vec<u8>) {
        let mut list = Vec::new();
        for protocol in protocols {
            list.push(protocol.len() as u8);
            list.extend_from_slice(protocol);
        }
        let mut data = (list.len() as u16).to_be_bytes().to_vec();
        data.extend_from_slice(&list);
        (ALPN, data)
    }

    #[test]
    fn the_name_is_read_from_one_record_or_many_and_in_any_piece() {
        let named = asked(Some("shop.example.com"), &["h2"]);
        let alpn = (16, vec![0, 3, 2, b'h', b'2']);
        for record in [1, 7, 100, MAX_RECORD] {
            let wire = hello(&[alpn.clone(), sni(&[(0, b"Shop.Example.COM.")])], record);
            assert_eq!(read(&wire), named, "records of {record}");
            // Every shorter start asks for more, never a wrong answer.
            for end in 0..wire.len() {
                assert_eq!(read(&wire[..end]), Hello::Incomplete, "{record}: {end}");
            }
            // What follows the hello is not read.
            let mut more = wire.clone();
            more.extend_from_slice(b"\x17\x03\x03garbage");
            assert_eq!(read(&more), named);
        }
    }

    #[test]
    fn a_hello_up_to_the_largest_read_is_read_and_one_past_it_is_not() {
        let named = sni(&[(0, b"large.example")]);
        // A padding extension (RFC 7685) making the hello's body `len`.
        let of_len = |len: usize, record: usize| {
            let bare = hello(&[named.clone(), (21, vec![])], MAX_RECORD).len() - 5 - 4;
            let padding = (21, vec![0; len - bare]);
            hello(&[named.clone(), padding], record)
        };
        // As large as the read goes, in 64 records: within the bytes the
        // caller reads for it.
        let largest = of_len(MAX_HELLO, (MAX_HELLO + 4).div_ceil(64));
        assert_eq!(largest.len(), MAX_HELLO_BYTES);
        assert_eq!(read(&largest), asked(Some("large.example"), &[]));
        // In records of the largest size (the first a whole one).
        let in_full_records = of_len(MAX_HELLO, MAX_RECORD);
        let first = u16::from_be_bytes([in_full_records[3], in_full_records[4]]);
        assert_eq!(usize::from(first), MAX_RECORD);
        assert_eq!(read(&in_full_records), asked(Some("large.example"), &[]));
        // A browser's, 2 KiB with post-quantum key shares, in one record.
        assert_eq!(
            read(&of_len(2048, MAX_RECORD)),
            asked(Some("large.example"), &[])
        );
        assert_eq!(read(&of_len(MAX_HELLO + 1, MAX_RECORD)), Hello::Unnamed);
    }

    #[test]
    fn the_protocols_offered_are_read_in_their_order_with_a_name_or_without() {
        let both = hello(
            &[sni(&[(0, b"a.example")]), alpn(&[b"acme-tls/1", b"h2"])],
            7,
        );
        assert_eq!(read(&both), asked(Some("a.example"), &["acme-tls/1", "h2"]));
        let alone = hello(&[alpn(&[b"h2", b"http/1.1"])], MAX_RECORD);
        assert_eq!(read(&alone), asked(None, &["h2", "http/1.1"]));
        // Names no key can say are left out; a list cut short offers none,
        // and leaves the name as it was.
        let odd = hello(&[alpn(&[b"", b"sp ace", b"\xff", b"ok"])], MAX_RECORD);
        assert_eq!(read(&odd), asked(None, &["ok"]));
        let cut = (ALPN, vec![0, 5, 2, b'h', b'2', 9, b'x']);
        let wire = hello(&[cut, sni(&[(0, b"b.example")])], MAX_RECORD);
        assert_eq!(read(&wire), asked(Some("b.example"), &[]));
        // At most MAX_PROTOCOLS of them.
        let many: Vec<Vec<u8>> = (0..40).map(|i| format!("p{i}").into_bytes()).collect();
        let many: Vec<&[u8]> = many.iter().map(Vec::as_slice).collect();
        let Hello::Asked(read_many) = read(&hello(&[alpn(&many)], MAX_RECORD)) else {
            panic!("a hello");
        };
        assert_eq!(read_many.protocols.len(), MAX_PROTOCOLS);
        assert_eq!(read_many.protocols[15], "p15");
    }

    #[test]
    fn a_hello_without_a_valid_name_is_unnamed() {
        for extensions in [
            vec![],
            vec![alpn(&[b""])],
            vec![sni(&[(1, b"other-kind")])],
            vec![sni(&[(0, b"")])],
            vec![sni(&[(0, b".")])],
            vec![sni(&[(0, b"a..example")])],
            vec![sni(&[(0, b"a.example..")])],
            vec![sni(&[(0, b".a.example")])],
            vec![sni(&[(0, b"bad name")])],
            vec![sni(&[(0, b"caf\xc3\xa9.example")])],
            vec![sni(&[(0, "a".repeat(254).as_bytes())])],
            // A list whose length says more than there is.
            vec![(SERVER_NAME, vec![0, 9, 0, 0, 1, b'a'])],
        ] {
            assert_eq!(
                read(&hello(&extensions, MAX_RECORD)),
                Hello::Unnamed,
                "{extensions:?}"
            );
        }
        // A hello of TLS 1.0 with no extensions at all.
        let mut bare = hello(&[], MAX_RECORD);
        bare.truncate(bare.len() - 2);
        let (record, message) = (bare.len() as u16 - 5, bare.len() as u32 - 9);
        bare[3..5].copy_from_slice(&record.to_be_bytes());
        bare[6..9].copy_from_slice(&message.to_be_bytes()[1..]);
        assert_eq!(read(&bare), Hello::Unnamed);
    }

    #[test]
    fn what_is_no_tls_hello_is_told_at_once() {
        let named = hello(&[sni(&[(0, b"a.example")])], MAX_RECORD);
        for not_hello in [
            b"GET / HTTP/1.1\r\n".to_vec(),
            b"SSH-2.0-OpenSSH_9.6\r\n".to_vec(),
            // An alert record; a record of another major version; an
            // empty one; one over the largest plaintext.
            vec![21, 3, 3, 0, 2, 2, 40],
            vec![HANDSHAKE, 2, 0, 0, 1, 1],
            vec![HANDSHAKE, 3, 1, 0, 0],
            vec![HANDSHAKE, 3, 1, 0x40, 0x01],
            // A handshake that is a ServerHello, and ClientHellos whose
            // length is past the largest read: one cut short, one whose
            // length's high byte alone is too much.
            [&named[..5], &[2], &named[6..]].concat(),
            [&named[..6], &[1, 0, 0]].concat(),
            [&named[..6], &[1], &named[7..]].concat(),
        ] {
            assert_eq!(read(&not_hello), Hello::Unnamed, "{not_hello:?}");
        }
    }
}
