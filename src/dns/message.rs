//! One DNS question of type SRV (RFC 1035 §4.1, RFC 2782): the query,
//! and what its reply says. The reply comes from the network: every
//! count, length and pointer in it is checked before it is used, and one
//! that does not add up makes the reply malformed, an error, never a
//! panic (the parser is pure, on `&[u8]`, and fuzzed by a proptest).

use super::encode_name;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub const TYPE_A: u16 = 1;
pub const TYPE_CNAME: u16 = 5;
pub const TYPE_AAAA: u16 = 28;
pub const TYPE_SRV: u16 = 33;
pub const CLASS_IN: u16 = 1;

/// The fixed header of every message (RFC 1035 §4.1.1).
const HEADER: usize = 12;
/// QR: the message is a reply.
const FLAG_REPLY: u16 = 0x8000;
/// TC: the reply was cut to fit a datagram; ask again over TCP.
const FLAG_TRUNCATED: u16 = 0x0200;
/// RD: the server is to find the answer itself, as a stub resolver asks.
const FLAG_RECURSION_DESIRED: u16 = 0x0100;
const OPCODE_MASK: u16 = 0x7800;
const RCODE_MASK: u16 = 0x000f;
const RCODE_NXDOMAIN: u16 = 3;

/// A TTL is a signed number of seconds in RFC 1035; RFC 2181 §8 made it
/// unsigned but no larger, so that this bit is never set.
const TTL_TOP_BIT: u32 = 1 << 31;

/// A name is at most 255 bytes in wire form (RFC 1035 §2.3.4).
const MAX_NAME: usize = 255;
/// The most CNAME records followed from the name asked to the one its
/// SRV records are at: a chain longer is a loop, or not worth it.
const MAX_CNAMES: usize = 8;

/// Why a reply is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not the reply to this query: over UDP, anyone may send a datagram,
    /// so this one is passed over and the reply still waited for.
    #[error("a reply to another query (ID {got}, not {sent})")]
    OtherId { sent: u16, got: u16 },
    #[error("a reply to another question")]
    OtherQuestion,
    #[error("a query, not a reply")]
    NotAReply,
    #[error("a malformed reply: {0}")]
    Malformed(&'static str),
    /// RCODE 3 (NXDOMAIN).
    #[error("no SRV records (no such name)")]
    NoSuchName,
    #[error("the server answered {0}")]
    Refused(&'static str),
}

impl ReplyError {
    /// Whether the reply is another's, to be passed over rather than
    /// taken as the answer (see [`ReplyError::OtherId`]).
    pub fn is_anothers(&self) -> bool {
        matches!(
            self,
            ReplyError::OtherId { .. } | ReplyError::OtherQuestion | ReplyError::NotAReply
        )
    }
}

/// One SRV record (RFC 2782): where an instance of the service is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    pub priority: u16,
    pub weight: u16,
    pub port: u16,
    /// The host, lower case, without the final dot (`.` alone: the
    /// service is decidedly not available at this name). A byte that no
    /// host name has is written `\DDD`, as zone files write it, so that
    /// such a name never passes for a host name.
    pub target: String,
}

/// What a reply to an SRV query says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reply {
    /// TC: cut short; nothing else of it was read.
    pub truncated: bool,
    /// The SRV records at the name asked (or at the name its CNAMEs lead
    /// to), in the reply's order.
    pub records: Vec<Srv>,
    /// The A and AAAA records of the additional section, by owner name
    /// (written as [`Srv::target`] is): the servers that know them (Consul,
    /// CoreDNS) give the targets' addresses with the records.
    pub addresses: Vec<(String, IpAddr)>,
    /// How long, in seconds, the answer may be kept: the smallest TTL of
    /// the records it is read from (the CNAMEs followed, the SRV records
    /// and the A and AAAA records of their hosts), each as RFC 2181 §8
    /// reads it (see [`ttl_of`]); `None` when no record counts.
    pub ttl: Option<u32>,
}

/// The query for the SRV records of `name`, with ID `id` and RD set, as
/// a stub resolver sends it. `name` is a DNS name, lower case or not.
pub fn query(id: u16, name: &str) -> Result<Vec<u8>, String> {
    let mut m = Vec::with_capacity(HEADER + name.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&FLAG_RECURSION_DESIRED.to_be_bytes());
    // One question, no answer, authority or additional records.
    for count in [1u16, 0, 0, 0] {
        m.extend_from_slice(&count.to_be_bytes());
    }
    m.extend_from_slice(&encode_name(name)?);
    m.extend_from_slice(&TYPE_SRV.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    Ok(m)
}

/// A record's TTL as RFC 2181 §8 has it read: "Implementations should
/// treat TTL values received with the most significant bit set as if the
/// entire value received was zero."
pub fn ttl_of(raw: u32) -> u32 {
    if raw & TTL_TOP_BIT == 0 {
        raw
    } else {
        0
    }
}

/// `name` as the reply's names are read: lower case, no final dot.
fn normal(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Reads `reply` to the query [`query`] made with `id` for `name`.
pub fn parse_reply(reply: &[u8], id: u16, name: &str) -> Result<Reply, ReplyError> {
    let r = Reader { message: reply };
    let header = r
        .bytes(0, HEADER)
        .ok_or(ReplyError::Malformed("shorter than a message's header"))?;
    let word = |at: usize| u16::from_be_bytes([header[at], header[at + 1]]);
    let got = word(0);
    if got != id {
        return Err(ReplyError::OtherId { sent: id, got });
    }
    let flags = word(2);
    if flags & FLAG_REPLY == 0 {
        return Err(ReplyError::NotAReply);
    }
    let [questions, answers, authority, additional] = [word(4), word(6), word(8), word(10)];
    // The question, as asked: a reply says it again (RFC 1035 §4.1.2).
    if questions != 1 || flags & OPCODE_MASK != 0 {
        return Err(ReplyError::OtherQuestion);
    }
    let (asked, at) = r.name(HEADER)?;
    let kind = r.u16(at)?;
    let class = r.u16(at + 2)?;
    if asked != normal(name) || kind != TYPE_SRV || class != CLASS_IN {
        return Err(ReplyError::OtherQuestion);
    }
    if flags & FLAG_TRUNCATED != 0 {
        return Ok(Reply {
            truncated: true,
            ..Reply::default()
        });
    }
    match flags & RCODE_MASK {
        0 => {}
        RCODE_NXDOMAIN => return Err(ReplyError::NoSuchName),
        rcode => return Err(ReplyError::Refused(rcode_name(rcode))),
    }
    let mut at = at + 4;
    let mut records = Vec::new();
    let mut cnames = Vec::new();
    let mut addresses = Vec::new();
    let sections = [(1, answers), (2, authority), (3, additional)];
    for (section, count) in sections {
        for _ in 0..count {
            let (record, next) = r.record(at)?;
            at = next;
            if record.class != CLASS_IN {
                continue;
            }
            match (section, record.kind) {
                (1, TYPE_SRV) => {
                    let srv = r.srv(record.data)?;
                    records.push((record.owner, srv, record.ttl));
                }
                (1, TYPE_CNAME) => {
                    let (to, end) = r.name(record.data.0)?;
                    if end != record.data.1 {
                        return Err(ReplyError::Malformed("a CNAME's name past its data"));
                    }
                    cnames.push((record.owner, to, record.ttl));
                }
                (3, TYPE_A | TYPE_AAAA) => {
                    let ip = r.address(&record)?;
                    addresses.push((record.owner, ip, record.ttl));
                }
                _ => {}
            }
        }
    }
    // The name the SRV records are at: the one asked, or where its CNAMEs
    // lead (a server answering for a CNAME gives the chain first).
    let mut owner = normal(name);
    let mut ttls = Vec::new();
    for _ in 0..MAX_CNAMES {
        match cnames.iter().find(|(from, _, _)| *from == owner) {
            Some((_, to, ttl)) => {
                owner = to.clone();
                ttls.push(*ttl);
            }
            None => break,
        }
    }
    let (records, records_ttls): (Vec<Srv>, Vec<u32>) = (records.into_iter())
        .filter(|(at, _, _)| *at == owner)
        .map(|(_, srv, ttl)| (srv, ttl))
        .unzip();
    ttls.extend(records_ttls);
    // Only the addresses of the records' hosts: another's, given beside,
    // says nothing of how long these hold.
    let of_a_host = |owner: &String| records.iter().any(|srv| srv.target == *owner);
    ttls.extend(
        (addresses.iter())
            .filter(|(owner, _, _)| of_a_host(owner))
            .map(|(_, _, ttl)| *ttl),
    );
    Ok(Reply {
        truncated: false,
        records,
        addresses: (addresses.into_iter())
            .map(|(owner, ip, _)| (owner, ip))
            .collect(),
        ttl: ttls.into_iter().min(),
    })
}

fn rcode_name(rcode: u16) -> &'static str {
    match rcode {
        1 => "FORMERR (it could not read the query)",
        2 => "SERVFAIL (it could not find the answer)",
        4 => "NOTIMP (it does not answer such queries)",
        5 => "REFUSED (it does not answer this client, or for this name)",
        _ => "an error (RCODE above 5)",
    }
}

/// A resource record's fixed part, its data as a range of the message.
struct Record {
    owner: String,
    kind: u16,
    class: u16,
    /// Read as [`ttl_of`] reads it.
    ttl: u32,
    data: (usize, usize),
}

/// Reads a message by offsets, each read checked against its end.
struct Reader<'a> {
    message: &'a [u8],
}

impl<'a> Reader<'a> {
    fn bytes(&self, at: usize, len: usize) -> Option<&'a [u8]> {
        self.message.get(at..at.checked_add(len)?)
    }

    fn u16(&self, at: usize) -> Result<u16, ReplyError> {
        let b = (self.bytes(at, 2)).ok_or(ReplyError::Malformed("cut short"))?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    /// The name at `at` (RFC 1035 §3.1, §4.1.4), and the offset after it
    /// where it is written (after its pointer, if it has one). A pointer
    /// must point before every byte of the name read so far, so that no
    /// pointer can lead back into a loop, and each pointer is followed
    /// further back than the last: at most one per byte before the name.
    fn name(&self, at: usize) -> Result<(String, usize), ReplyError> {
        let mut name = String::new();
        let mut pos = at;
        // Every byte read so far is at or past it.
        let mut floor = at;
        let mut after = None;
        let mut wire = 0;
        loop {
            let &len =
                (self.message.get(pos)).ok_or(ReplyError::Malformed("a name past the end"))?;
            match len & 0xc0 {
                0x00 if len == 0 => {
                    if name.is_empty() {
                        name.push('.');
                    }
                    return Ok((name, after.unwrap_or(pos + 1)));
                }
                0x00 => {
                    let label = (self.bytes(pos + 1, usize::from(len)))
                        .ok_or(ReplyError::Malformed("a label past the end"))?;
                    wire += 1 + label.len();
                    // With the root's byte, at most 255.
                    if wire + 1 > MAX_NAME {
                        return Err(ReplyError::Malformed("a name over 255 bytes"));
                    }
                    if !name.is_empty() {
                        name.push('.');
                    }
                    for &b in label {
                        let b = b.to_ascii_lowercase();
                        match b {
                            b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => name.push(char::from(b)),
                            _ => name.push_str(&format!("\\{b:03}")),
                        }
                    }
                    pos += 1 + label.len();
                }
                0xc0 => {
                    let &low = (self.message.get(pos + 1))
                        .ok_or(ReplyError::Malformed("a compression pointer past the end"))?;
                    let to = usize::from(u16::from_be_bytes([len & 0x3f, low]));
                    if to >= floor {
                        return Err(ReplyError::Malformed(
                            "a compression pointer that does not point back",
                        ));
                    }
                    after.get_or_insert(pos + 2);
                    floor = to;
                    pos = to;
                }
                _ => return Err(ReplyError::Malformed("a label of an unknown type")),
            }
        }
    }

    /// The record at `at`, and the offset after it.
    fn record(&self, at: usize) -> Result<(Record, usize), ReplyError> {
        let (owner, at) = self.name(at)?;
        let fixed = (self.bytes(at, 10)).ok_or(ReplyError::Malformed("a record cut short"))?;
        let kind = u16::from_be_bytes([fixed[0], fixed[1]]);
        let class = u16::from_be_bytes([fixed[2], fixed[3]]);
        let ttl = ttl_of(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]));
        let len = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        let start = at + 10;
        if self.bytes(start, len).is_none() {
            return Err(ReplyError::Malformed("a record's data past the end"));
        }
        let data = (start, start + len);
        Ok((
            Record {
                owner,
                kind,
                class,
                ttl,
                data,
            },
            data.1,
        ))
    }

    /// An SRV record's data (RFC 2782): priority, weight, port and the
    /// target's name, which must end where the data does.
    fn srv(&self, (start, end): (usize, usize)) -> Result<Srv, ReplyError> {
        if end - start < 7 {
            return Err(ReplyError::Malformed(
                "an SRV record shorter than its fields",
            ));
        }
        let (target, after) = self.name(start + 6)?;
        if after != end {
            return Err(ReplyError::Malformed(
                "an SRV record's target past its data",
            ));
        }
        Ok(Srv {
            priority: self.u16(start)?,
            weight: self.u16(start + 2)?,
            port: self.u16(start + 4)?,
            target,
        })
    }

    fn address(&self, record: &Record) -> Result<IpAddr, ReplyError> {
        let (start, end) = record.data;
        let data = &self.message[start..end];
        match (record.kind, data.len()) {
            (TYPE_A, 4) => Ok(IpAddr::V4(Ipv4Addr::new(
                data[0], data[1], data[2], data[3],
            ))),
            (TYPE_AAAA, 16) => {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(data);
                Ok(IpAddr::V6(Ipv6Addr::from(octets)))
            }
            _ => Err(ReplyError::Malformed(
                "an address record of the wrong length",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAME: &str = "_http._tcp.app.test";
    const ID: u16 = 0x1234;

    /// A reply as a server writes it: the header, the question again,
    /// then the records given, each already in wire form.
    struct Build {
        m: Vec<u8>,
    }

    impl Build {
        fn new(flags: u16, counts: [u16; 3]) -> Build {
            let mut m = Vec::new();
            m.extend_from_slice(&ID.to_be_bytes());
            m.extend_from_slice(&(FLAG_REPLY | FLAG_RECURSION_DESIRED | flags).to_be_bytes());
            m.extend_from_slice(&1u16.to_be_bytes());
            for count in counts {
                m.extend_from_slice(&count.to_be_bytes());
            }
            m.extend_from_slice(&encode_name(NAME).unwrap());
            m.extend_from_slice(&TYPE_SRV.to_be_bytes());
            m.extend_from_slice(&CLASS_IN.to_be_bytes());
            Build { m }
        }

        /// A record owned by the name at `owner` (wire bytes, a pointer
        /// maybe), of `kind`, with `data`, for a minute.
        fn record(self, owner: &[u8], kind: u16, data: &[u8]) -> Build {
            self.record_for(60, owner, kind, data)
        }

        /// [`Build::record`] with a TTL of `ttl`, as sent.
        fn record_for(mut self, ttl: u32, owner: &[u8], kind: u16, data: &[u8]) -> Build {
            self.m.extend_from_slice(owner);
            self.m.extend_from_slice(&kind.to_be_bytes());
            self.m.extend_from_slice(&CLASS_IN.to_be_bytes());
            self.m.extend_from_slice(&ttl.to_be_bytes());
            self.m.extend_from_slice(&(data.len() as u16).to_be_bytes());
            self.m.extend_from_slice(data);
            self
        }
    }

    /// The question's name, by a pointer to it.
    const QNAME: [u8; 2] = [0xc0, 12];

    fn srv_data(priority: u16, weight: u16, port: u16, target: &[u8]) -> Vec<u8> {
        let mut d = Vec::new();
        for field in [priority, weight, port] {
            d.extend_from_slice(&field.to_be_bytes());
        }
        d.extend_from_slice(target);
        d
    }

    #[test]
    fn a_query_asks_for_srv_records_in_class_in_with_recursion() {
        let q = query(0xbeef, "_HTTP._tcp.App.test.").unwrap();
        let mut expected = vec![0xbe, 0xef, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0];
        expected.extend_from_slice(b"\x05_http\x04_tcp\x03app\x04test\x00");
        expected.extend_from_slice(&[0, 33, 0, 1]);
        assert_eq!(q, expected);
        assert!(query(1, &"a".repeat(64)).is_err());
    }

    #[test]
    fn records_and_additional_addresses_are_read_through_compression_pointers() {
        // The first target written out, the second as `b` and a pointer
        // to the first's parent; the addresses owned by pointers to them.
        let reply = Build::new(0, [3, 0, 3]);
        let first_target_at = reply.m.len() + 2 + 10 + 6;
        let mut first = b"\x05app-a\x04node\x04test\x00".to_vec();
        let first_data = srv_data(10, 5, 8001, &first);
        let parent = (first_target_at + 6) as u16; // `node.test`
        let mut second = b"\x05app-b".to_vec();
        second.extend_from_slice(&(0xc000 | parent).to_be_bytes());
        let reply = reply.record(&QNAME, TYPE_SRV, &first_data);
        let second_target_at = reply.m.len() + 2 + 10 + 6;
        let reply = reply
            .record(&QNAME, TYPE_SRV, &srv_data(10, 1, 8002, &second))
            .record(&QNAME, TYPE_SRV, &srv_data(20, 0, 8003, b"\x00"));
        first = (0xc000 | first_target_at as u16).to_be_bytes().to_vec();
        second = (0xc000 | second_target_at as u16).to_be_bytes().to_vec();
        let reply = reply
            .record(&first, TYPE_A, &[10, 0, 0, 5])
            .record(&second, TYPE_A, &[10, 0, 0, 6])
            .record(
                &second,
                TYPE_AAAA,
                &[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 6],
            );
        let got = parse_reply(&reply.m, ID, NAME).unwrap();
        assert!(!got.truncated);
        assert_eq!(
            got.records,
            [
                Srv {
                    priority: 10,
                    weight: 5,
                    port: 8001,
                    target: "app-a.node.test".into()
                },
                Srv {
                    priority: 10,
                    weight: 1,
                    port: 8002,
                    target: "app-b.node.test".into()
                },
                Srv {
                    priority: 20,
                    weight: 0,
                    port: 8003,
                    target: ".".into()
                },
            ]
        );
        assert_eq!(
            got.addresses,
            [
                ("app-a.node.test".to_string(), "10.0.0.5".parse().unwrap()),
                ("app-b.node.test".to_string(), "10.0.0.6".parse().unwrap()),
                ("app-b.node.test".to_string(), "fd00::6".parse().unwrap()),
            ]
        );
        // The question is read in any case.
        let upper = NAME.to_ascii_uppercase();
        assert_eq!(parse_reply(&reply.m, ID, &upper).unwrap(), got);
    }

    #[test]
    fn srv_records_are_those_of_the_name_its_cname_leads_to() {
        let alias = b"\x03web\x04test\x00";
        let reply = Build::new(0, [3, 0, 0]).record(&QNAME, TYPE_CNAME, alias);
        let alias_at = (reply.m.len() - alias.len()) as u16;
        let at_alias = (0xc000 | alias_at).to_be_bytes();
        let reply = reply
            .record(&at_alias, TYPE_SRV, &srv_data(1, 1, 80, b"\x01h\x00"))
            // Another name's record, given beside: not the service's.
            .record(
                b"\x05other\x00",
                TYPE_SRV,
                &srv_data(1, 1, 81, b"\x01i\x00"),
            );
        let got = parse_reply(&reply.m, ID, NAME).unwrap();
        assert_eq!(got.records.len(), 1);
        assert_eq!((got.records[0].port, &*got.records[0].target), (80, "h"));
    }

    /// SRV records for hosts `a` and `b` with `ttls` (of the first, the
    /// second), and A records of `a` and of `other` with the next two.
    fn reply_with_ttls(ttls: [u32; 4]) -> Vec<u8> {
        Build::new(0, [2, 0, 2])
            .record_for(ttls[0], &QNAME, TYPE_SRV, &srv_data(1, 1, 80, b"\x01a\x00"))
            .record_for(ttls[1], &QNAME, TYPE_SRV, &srv_data(1, 1, 81, b"\x01b\x00"))
            .record_for(ttls[2], b"\x01a\x00", TYPE_A, &[10, 0, 0, 1])
            .record_for(ttls[3], b"\x05other\x00", TYPE_A, &[10, 0, 0, 9])
            .m
    }

    #[test]
    fn the_ttl_is_the_smallest_of_the_records_and_of_their_hosts_addresses() {
        let ttl = |ttls| parse_reply(&reply_with_ttls(ttls), ID, NAME).unwrap().ttl;
        assert_eq!(ttl([300, 30, 60, 60]), Some(30), "the second SRV record's");
        assert_eq!(ttl([300, 300, 10, 60]), Some(10), "a host's address's");
        assert_eq!(
            ttl([300, 300, 300, 5]),
            Some(300),
            "not of an address no record names"
        );
        assert_eq!(ttl([300, 0, 300, 300]), Some(0), "Consul's default");
        // A CNAME followed counts too.
        let alias = b"\x03web\x04test\x00";
        let reply = Build::new(0, [2, 0, 0]).record_for(7, &QNAME, TYPE_CNAME, alias);
        let at_alias = (0xc000 | (reply.m.len() - alias.len()) as u16).to_be_bytes();
        let reply = reply.record(&at_alias, TYPE_SRV, &srv_data(1, 1, 80, b"\x01h\x00"));
        assert_eq!(parse_reply(&reply.m, ID, NAME).unwrap().ttl, Some(7));
        // No record: nothing to say how long "none" holds.
        let none = Build::new(0, [0, 0, 0]);
        assert_eq!(parse_reply(&none.m, ID, NAME).unwrap().ttl, None);
    }

    #[test]
    fn a_ttl_with_its_top_bit_set_is_zero_as_rfc_2181_says() {
        let ttl = |ttls| parse_reply(&reply_with_ttls(ttls), ID, NAME).unwrap().ttl;
        let top = (1 << 31) - 1;
        assert_eq!(ttl([top; 4]), Some(top), "the largest TTL there is");
        assert_eq!(ttl([u32::MAX, top, top, top]), Some(0));
        assert_eq!(ttl([top + 1, top, top, top]), Some(0));
        assert_eq!(ttl_of(u32::MAX), 0);
    }

    #[test]
    fn a_name_with_bytes_no_host_name_has_is_escaped_not_taken_as_another() {
        let reply = Build::new(0, [1, 0, 0]).record(
            &QNAME,
            TYPE_SRV,
            &srv_data(1, 1, 80, b"\x03a.b\x04Test\x00"),
        );
        let got = parse_reply(&reply.m, ID, NAME).unwrap();
        assert_eq!(got.records[0].target, "a\\046b.test");
    }

    #[test]
    fn a_truncated_reply_says_so_and_nothing_else() {
        let reply = Build::new(FLAG_TRUNCATED, [1, 0, 0]).record(&QNAME, TYPE_SRV, b"\x00\x01");
        let got = parse_reply(&reply.m, ID, NAME).unwrap();
        assert!(got.truncated);
        assert!(got.records.is_empty());
    }

    #[test]
    fn rcodes_say_what_the_server_answered() {
        let nx = Build::new(RCODE_NXDOMAIN, [0, 0, 0]);
        assert_eq!(parse_reply(&nx.m, ID, NAME), Err(ReplyError::NoSuchName));
        let fail = Build::new(2, [0, 0, 0]);
        let e = parse_reply(&fail.m, ID, NAME).unwrap_err();
        assert!(e.to_string().contains("SERVFAIL"), "{e}");
        // NOERROR without records: a reply, with none.
        let none = Build::new(0, [0, 0, 0]);
        assert!(parse_reply(&none.m, ID, NAME).unwrap().records.is_empty());
    }

    #[test]
    fn a_reply_to_another_query_or_question_is_anothers() {
        let reply = Build::new(0, [0, 0, 0]);
        let e = parse_reply(&reply.m, ID + 1, NAME).unwrap_err();
        assert_eq!(
            e,
            ReplyError::OtherId {
                sent: ID + 1,
                got: ID
            }
        );
        assert!(e.is_anothers());
        let e = parse_reply(&reply.m, ID, "_http._tcp.other.test").unwrap_err();
        assert_eq!(e, ReplyError::OtherQuestion);
        // Of another type.
        let mut a = reply.m.clone();
        let at = a.len() - 3;
        a[at] = 1;
        assert_eq!(parse_reply(&a, ID, NAME), Err(ReplyError::OtherQuestion));
        // Two questions.
        let mut two = reply.m.clone();
        two[5] = 2;
        assert_eq!(parse_reply(&two, ID, NAME), Err(ReplyError::OtherQuestion));
        // Our own query, reflected.
        let q = query(ID, NAME).unwrap();
        assert_eq!(parse_reply(&q, ID, NAME), Err(ReplyError::NotAReply));
    }

    fn malformed(reply: &[u8]) -> &'static str {
        match parse_reply(reply, ID, NAME) {
            Err(ReplyError::Malformed(why)) => why,
            other => panic!("taken: {other:?}"),
        }
    }

    #[test]
    fn a_pointer_loop_or_a_forward_pointer_is_malformed() {
        // A record whose owner points at itself.
        let reply = Build::new(0, [1, 0, 0]);
        let at = reply.m.len() as u16;
        let looped = reply.record(&(0xc000 | at).to_be_bytes(), TYPE_SRV, b"");
        assert_eq!(
            malformed(&looped.m),
            "a compression pointer that does not point back"
        );
        // A label, then a pointer back to that label: round and round.
        let reply = Build::new(0, [1, 0, 0]);
        let at = reply.m.len() as u16;
        let mut owner = b"\x01a".to_vec();
        owner.extend_from_slice(&(0xc000 | at).to_be_bytes());
        let circle = reply.record(&owner, TYPE_SRV, b"");
        assert_eq!(
            malformed(&circle.m),
            "a compression pointer that does not point back"
        );
        // Forward, to a name written later.
        let reply = Build::new(0, [1, 0, 0]);
        let later = reply.m.len() as u16 + 20;
        let mut forward = reply.record(&(0xc000 | later).to_be_bytes(), TYPE_SRV, b"");
        forward.m.extend_from_slice(&[0; 30]);
        assert_eq!(
            malformed(&forward.m),
            "a compression pointer that does not point back"
        );
        // Past the end.
        let reply = Build::new(0, [1, 0, 0]).record(&[0xff, 0xff], TYPE_SRV, b"");
        assert_eq!(
            malformed(&reply.m),
            "a compression pointer that does not point back"
        );
        // A chain of pointers, each further back: followed.
        let reply = Build::new(0, [1, 0, 0]);
        let first = reply.m.len() as u16;
        let mut chained = (0xc000u16 | 12).to_be_bytes().to_vec();
        chained.extend_from_slice(&(0xc000 | first).to_be_bytes());
        let reply = reply.record(&QNAME, TYPE_A, &[1, 2, 3, 4]).record(
            &chained[2..],
            TYPE_SRV,
            &srv_data(1, 1, 80, b"\x01h\x00"),
        );
        let mut m = reply.m;
        m[7] = 2;
        assert_eq!(parse_reply(&m, ID, NAME).unwrap().records.len(), 1);
    }

    #[test]
    fn lengths_past_the_end_are_malformed() {
        let whole = Build::new(0, [1, 0, 1])
            .record(&QNAME, TYPE_SRV, &srv_data(1, 1, 80, b"\x01h\x00"))
            .record(b"\x01h\x00", TYPE_A, &[10, 0, 0, 1]);
        assert!(parse_reply(&whole.m, ID, NAME).is_ok());
        // Every cut: an error, never a panic, and never a reply read
        // from past its end.
        for cut in 0..whole.m.len() {
            assert!(
                parse_reply(&whole.m[..cut], ID, NAME).is_err(),
                "cut at {cut}"
            );
        }
        assert_eq!(malformed(&whole.m[..5]), "shorter than a message's header");
        // More records counted than there are.
        let mut more = whole.m.clone();
        more[7] = 2;
        assert!(matches!(
            parse_reply(&more, ID, NAME),
            Err(ReplyError::Malformed(_))
        ));
        // A record's length past the end.
        let long = Build::new(0, [1, 0, 0]).record(&QNAME, TYPE_SRV, &srv_data(1, 1, 80, b"\x00"));
        let mut m = long.m;
        let len_at = m.len() - 9;
        m[len_at] = 0xff;
        assert_eq!(malformed(&m), "a record's data past the end");
        // A label past the end.
        let reply =
            Build::new(0, [1, 0, 0]).record(&QNAME, TYPE_SRV, &srv_data(1, 1, 80, b"\x3fh\x00"));
        assert_eq!(malformed(&reply.m), "a label past the end");
        // A target running past its record's data into the next.
        let reply =
            Build::new(0, [1, 0, 0]).record(&QNAME, TYPE_SRV, &srv_data(1, 1, 80, b"\x01h"));
        let mut m = reply.m;
        m.push(0);
        assert_eq!(malformed(&m), "an SRV record's target past its data");
        // An A record of five bytes.
        let reply = Build::new(0, [0, 0, 1]).record(b"\x01h\x00", TYPE_A, &[1, 2, 3, 4, 5]);
        assert_eq!(malformed(&reply.m), "an address record of the wrong length");
        // An SRV record without room for its fields.
        let reply = Build::new(0, [1, 0, 0]).record(&QNAME, TYPE_SRV, &[0, 1, 0, 1]);
        assert_eq!(malformed(&reply.m), "an SRV record shorter than its fields");
        // A label of the reserved types 01 and 10.
        let reply = Build::new(0, [1, 0, 0]).record(&[0x40, 0], TYPE_SRV, b"");
        assert_eq!(malformed(&reply.m), "a label of an unknown type");
    }

    #[test]
    fn a_name_over_255_bytes_is_malformed() {
        let mut long = Vec::new();
        for _ in 0..5 {
            long.push(63);
            long.extend_from_slice(&[b'a'; 63]);
        }
        long.push(0);
        let reply = Build::new(0, [1, 0, 0]).record(&long, TYPE_SRV, b"");
        assert_eq!(malformed(&reply.m), "a name over 255 bytes");
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_are_read_without_a_panic(bytes in proptest::collection::vec(0u8..=255, 0..600)) {
            let _ = parse_reply(&bytes, ID, NAME);
        }

        /// A valid head followed by anything: the records' parser is
        /// reached rather than the header's checks.
        #[test]
        fn any_records_are_read_without_a_panic(
            counts in proptest::array::uniform3(0u16..6),
            tail in proptest::collection::vec(0u8..=255, 0..400),
        ) {
            let mut reply = Build::new(0, counts).m;
            reply.extend_from_slice(&tail);
            let _ = parse_reply(&reply, ID, NAME);
        }
    }
}
