//! A tiny authoritative DNS server inside the test process, for the tests
//! of inverso's `dns-01` by dynamic update: it takes RFC 2136 UPDATE
//! messages over TCP, signed with TSIG (RFC 8945) as certbot's
//! dns-rfc2136 plugin signs them, and holds the records they add.
//!
//! It checks what an authoritative server checks, so that a wrong client
//! fails: the framing, the header and its counts, the zone, every name
//! inside the zone, the TSIG record last in the additional section, its
//! key and algorithm, its MAC over the message as it was before signing,
//! and its time. Its answers are signed back as RFC 8945 §5.3 says, so
//! that a client checking the answer's MAC has one to check; each
//! decision is kept, in order, for the test to look at.
//!
//! Compressed names are read (dnspython, and so certbot, compresses an
//! update's names), but only inside the message, pointing backwards;
//! other RDATA than TXT is kept as bytes, not read. UDP is not served.
//! No input from the network makes it panic: a message it cannot read is
//! answered FORMERR and the connection goes on.

use super::IO_TIMEOUT;
use ring::hmac;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

/// RCODEs (RFC 1035 §4.1.1, RFC 2136 §2.2).
pub const NOERROR: u8 = 0;
pub const FORMERR: u8 = 1;
pub const NOTIMP: u8 = 4;
pub const REFUSED: u8 = 5;
pub const NOTAUTH: u8 = 9;
pub const NOTZONE: u8 = 10;

/// TSIG errors (RFC 8945 §3), carried in the TSIG record, not the header.
const BADSIG: u16 = 16;
const BADKEY: u16 = 17;
const BADTIME: u16 = 18;

const OPCODE_UPDATE: u8 = 5;
const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const TYPE_TSIG: u16 = 250;
const TYPE_ANY: u16 = 255;
const CLASS_IN: u16 = 1;
const CLASS_NONE: u16 = 254;
const CLASS_ANY: u16 = 255;

/// The fudge the server's own TSIG records carry (RFC 8945 §10 suggests
/// 300 seconds).
const FUDGE: u16 = 300;

/// Largest number of messages answered on one connection.
const MAX_MESSAGES: usize = 1000;

/// A key the server accepts.
struct Key {
    /// Lower-cased, no trailing dot.
    name: String,
    /// Lower-cased, no trailing dot: `hmac-sha256` or `hmac-sha512`.
    algorithm: String,
    key: hmac::Key,
}

/// One record held: its name (lower-cased, no trailing dot), type, and
/// RDATA as received.
struct Record {
    name: String,
    rtype: u16,
    rdata: Vec<u8>,
}

#[derive(Default)]
struct State {
    /// In the order added.
    records: Vec<Record>,
    answered: Vec<(u8, String)>,
}

struct Inner {
    /// Lower-cased, no trailing dot.
    zone: String,
    keys: Vec<Key>,
    state: Mutex<State>,
    stop: AtomicBool,
    /// A clone of each connection's stream, shut down when the server is
    /// dropped so that its thread stops at once, not at its read timeout.
    connections: Mutex<Vec<TcpStream>>,
}

/// The running server; stops accepting, and ends its connections, when
/// dropped.
pub struct DnsServer {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
}

impl DnsServer {
    /// Serves `zone` (e.g. "shop.test") over TCP on 127.0.0.1:0, taking
    /// updates signed by one of `keys`: (key name, algorithm name
    /// "hmac-sha256" or "hmac-sha512", secret bytes).
    pub fn start(zone: &str, keys: &[(&str, &str, &[u8])]) -> DnsServer {
        let keys = keys
            .iter()
            .map(|&(name, algorithm, secret)| {
                let algorithm = normalize(algorithm);
                let hmac_algorithm = match algorithm.as_str() {
                    "hmac-sha256" => hmac::HMAC_SHA256,
                    "hmac-sha512" => hmac::HMAC_SHA512,
                    other => panic!("the test DNS server knows no algorithm {other:?}"),
                };
                Key {
                    name: normalize(name),
                    algorithm,
                    key: hmac::Key::new(hmac_algorithm, secret),
                }
            })
            .collect();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            zone: normalize(zone),
            keys,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
            connections: Mutex::new(Vec::new()),
        });
        let server = inner.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if server.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                if let Ok(clone) = stream.try_clone() {
                    lock(&server.connections).push(clone);
                }
                let server = server.clone();
                std::thread::spawn(move || server.connection(stream));
            }
        });
        DnsServer { addr, inner }
    }

    /// The TXT strings held at `name` (lower-cased, no trailing dot), in
    /// the order added; the character-strings of one record are joined.
    pub fn txt(&self, name: &str) -> Vec<String> {
        let name = normalize(name);
        let state = lock(&self.inner.state);
        (state.records.iter())
            .filter(|r| r.rtype == TYPE_TXT && r.name == name)
            .map(|r| txt_string(&r.rdata))
            .collect()
    }

    /// Every update message received and what was answered: (rcode, a
    /// short reason: "ok", "unsigned", "BADKEY", "BADSIG", "BADTIME",
    /// "NOTZONE name", "FORMERR ..."), in order.
    pub fn answered(&self) -> Vec<(u8, String)> {
        lock(&self.inner.state).answered.clone()
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
        for stream in lock(&self.inner.connections).drain(..) {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

/// A lock that a panicking test thread does not poison for the others.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// A name as the server compares names: lower-cased, no trailing dot.
fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// A TXT RDATA's character-strings joined; a length running past the
/// end takes what there is.
fn txt_string(rdata: &[u8]) -> String {
    let mut out = Vec::new();
    let mut rest = rdata;
    while let Some((&len, tail)) = rest.split_first() {
        let len = usize::from(len).min(tail.len());
        out.extend_from_slice(&tail[..len]);
        rest = &tail[len..];
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

// ---------------------------------------------------------------- TCP

impl Inner {
    /// Answers messages on one connection, each preceded by its 2-byte
    /// length (RFC 1035 §4.2.2), until the client closes, an I/O error or
    /// timeout, or the server stops.
    fn connection(self: Arc<Self>, mut stream: TcpStream) {
        let _ = stream.set_read_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_write_timeout(Some(IO_TIMEOUT));
        let _ = stream.set_nodelay(true);
        for _ in 0..MAX_MESSAGES {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(message) = read_message(&mut stream) else {
                return;
            };
            let answer = self.answer(&message);
            let mut framed = (answer.len() as u16).to_be_bytes().to_vec();
            framed.extend_from_slice(&answer);
            if stream.write_all(&framed).is_err() || stream.flush().is_err() {
                return;
            }
        }
    }
}

fn read_message(stream: &mut TcpStream) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len)?;
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut message)?;
    Ok(message)
}

// ---------------------------------------------------------------- parsing

/// Why a message could not be read: answered FORMERR with this text.
struct Malformed(String);

fn malformed<T>(why: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(why.into()))
}

/// A cursor over a message.
struct Wire<'a> {
    bytes: &'a [u8],
    at: usize,
    /// Whether names may be compressed: in the message, not inside the
    /// TSIG RDATA (RFC 8945 §4.2), read on its own.
    pointers: bool,
}

impl<'a> Wire<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], Malformed> {
        match self.bytes.get(self.at..self.at + n) {
            Some(taken) => {
                self.at += n;
                Ok(taken)
            }
            None => malformed(format!("truncated {what}")),
        }
    }

    fn u16(&mut self, what: &str) -> Result<u16, Malformed> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, Malformed> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u48(&mut self, what: &str) -> Result<u64, Malformed> {
        let b = self.take(6, what)?;
        Ok(b.iter().fold(0u64, |acc, &x| acc << 8 | u64::from(x)))
    }

    /// A name (RFC 1035 §3.1): its labels, as sent. Compression pointers
    /// (§4.1.4) are followed where `pointers` allows, each to a place
    /// before the one jumped from last, so that none can loop.
    fn name(&mut self, what: &str) -> Result<Name, Malformed> {
        let mut labels = Vec::new();
        let mut wire_len = 1;
        let mut at = self.at;
        let mut limit = self.at;
        let mut resume = None;
        loop {
            let Some(&len) = self.bytes.get(at) else {
                return malformed(format!("truncated {what}"));
            };
            match len & 0xC0 {
                0x00 => {}
                0xC0 if self.pointers => {
                    let Some(&low) = self.bytes.get(at + 1) else {
                        return malformed(format!("truncated {what}"));
                    };
                    let target = usize::from(len & 0x3F) << 8 | usize::from(low);
                    if target >= limit {
                        return malformed(format!("compression pointer forward in {what}"));
                    }
                    resume.get_or_insert(at + 2);
                    limit = target;
                    at = target;
                    continue;
                }
                0xC0 => return malformed(format!("compression pointer in {what}")),
                _ => return malformed(format!("unknown label type in {what}")),
            }
            at += 1;
            if len == 0 {
                self.at = resume.unwrap_or(at);
                return Ok(Name(labels));
            }
            wire_len += 1 + usize::from(len);
            if wire_len > 255 {
                return malformed(format!("{what} longer than 255 bytes"));
            }
            let Some(label) = self.bytes.get(at..at + usize::from(len)) else {
                return malformed(format!("truncated {what}"));
            };
            labels.push(label.to_vec());
            at += usize::from(len);
        }
    }
}

/// A domain name's labels, as sent.
struct Name(Vec<Vec<u8>>);

impl Name {
    /// Lower-cased, dots between labels, no trailing dot.
    fn text(&self) -> String {
        let labels: Vec<String> = (self.0.iter())
            .map(|l| String::from_utf8_lossy(l).to_ascii_lowercase())
            .collect();
        labels.join(".")
    }

    /// Canonical wire form (RFC 4034 §6.2): lower-cased labels.
    fn canonical_wire(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for label in &self.0 {
            out.push(label.len() as u8);
            out.extend(label.iter().map(u8::to_ascii_lowercase));
        }
        out.push(0);
        out
    }
}

/// A resource record as read.
struct Rr {
    name: Name,
    rtype: u16,
    class: u16,
    ttl: u32,
    rdata: Vec<u8>,
    /// Where it starts in the message.
    start: usize,
}

fn read_rr(wire: &mut Wire, section: &str) -> Result<Rr, Malformed> {
    let start = wire.at;
    let name = wire.name(&format!("{section} record name"))?;
    let rtype = wire.u16(section)?;
    let class = wire.u16(section)?;
    let ttl = wire.u32(section)?;
    let rdlength = wire.u16(section)?;
    let rdata = wire.take(usize::from(rdlength), &format!("{section} RDATA"))?;
    Ok(Rr {
        name,
        rtype,
        class,
        ttl,
        rdata: rdata.to_vec(),
        start,
    })
}

/// A TSIG record's RDATA (RFC 8945 §4.2).
struct Tsig {
    key_name: Name,
    algorithm: Name,
    time_signed: u64,
    fudge: u16,
    mac: Vec<u8>,
    original_id: u16,
    error: u16,
    other: Vec<u8>,
}

fn read_tsig(rr: &Rr) -> Result<Tsig, Malformed> {
    if rr.class != CLASS_ANY || rr.ttl != 0 {
        return malformed("TSIG not of class ANY and TTL 0");
    }
    let mut wire = Wire {
        bytes: &rr.rdata,
        at: 0,
        pointers: false,
    };
    let algorithm = wire.name("TSIG algorithm")?;
    let time_signed = wire.u48("TSIG time signed")?;
    let fudge = wire.u16("TSIG fudge")?;
    let mac_size = wire.u16("TSIG MAC size")?;
    let mac = wire.take(usize::from(mac_size), "TSIG MAC")?.to_vec();
    let original_id = wire.u16("TSIG original ID")?;
    let error = wire.u16("TSIG error")?;
    let other_len = wire.u16("TSIG other length")?;
    let other = wire
        .take(usize::from(other_len), "TSIG other data")?
        .to_vec();
    if wire.at != rr.rdata.len() {
        return malformed("bytes after the TSIG RDATA");
    }
    Ok(Tsig {
        key_name: Name(rr.name.0.clone()),
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
        error,
        other,
    })
}

/// An UPDATE message as read, before its signature is checked.
struct Update {
    id: u16,
    /// The zone section as received, echoed in the answer.
    zone_section: Vec<u8>,
    zone: Name,
    zone_type: u16,
    zone_class: u16,
    updates: Vec<Rr>,
    /// The last additional record, if it is a TSIG: the record and where
    /// it starts.
    tsig: Option<(Tsig, usize)>,
}

fn read_update(message: &[u8]) -> Result<Update, Malformed> {
    let mut wire = Wire {
        bytes: message,
        at: 0,
        pointers: true,
    };
    let id = wire.u16("header")?;
    let flags = wire.u16("header")?;
    let opcode = (flags >> 11 & 0xF) as u8;
    if opcode != OPCODE_UPDATE {
        return malformed(format!("opcode {opcode}, not UPDATE"));
    }
    if flags & 0x8000 != 0 {
        return malformed("QR set in a request");
    }
    let zocount = wire.u16("header")?;
    let prcount = wire.u16("header")?;
    let upcount = wire.u16("header")?;
    let adcount = wire.u16("header")?;
    if zocount != 1 {
        return malformed(format!("ZOCOUNT {zocount}"));
    }
    let zone_start = wire.at;
    let zone = wire.name("zone name")?;
    let zone_type = wire.u16("zone section")?;
    let zone_class = wire.u16("zone section")?;
    let zone_section = message[zone_start..wire.at].to_vec();
    for _ in 0..prcount {
        read_rr(&mut wire, "prerequisite")?;
    }
    let mut updates = Vec::new();
    for _ in 0..upcount {
        updates.push(read_rr(&mut wire, "update")?);
    }
    let mut additional = Vec::new();
    for _ in 0..adcount {
        additional.push(read_rr(&mut wire, "additional")?);
    }
    if wire.at != message.len() {
        return malformed(format!(
            "{} bytes after the records",
            message.len() - wire.at
        ));
    }
    let tsig = match additional.split_last() {
        Some((last, others)) => {
            if others.iter().any(|rr| rr.rtype == TYPE_TSIG) {
                return malformed("TSIG not the last record");
            }
            match last.rtype {
                TYPE_TSIG => Some((read_tsig(last)?, last.start)),
                _ => None,
            }
        }
        None => None,
    };
    Ok(Update {
        id,
        zone_section,
        zone,
        zone_type,
        zone_class,
        updates,
        tsig,
    })
}

// ---------------------------------------------------------------- answers

/// How an answer is signed.
enum Signing<'a> {
    /// Not at all: no TSIG record.
    None,
    /// A TSIG record with no MAC, carrying `error` (RFC 8945 §5.3.2: an
    /// error with the key or the MAC).
    Unsigned { tsig: &'a Tsig, error: u16 },
    /// Signed with `key` after the request's MAC (RFC 8945 §5.3).
    Signed {
        tsig: &'a Tsig,
        key: &'a Key,
        error: u16,
    },
}

impl Inner {
    /// The answer to one message; its decision kept in `answered`.
    fn answer(&self, message: &[u8]) -> Vec<u8> {
        let id = match message {
            [a, b, ..] => u16::from_be_bytes([*a, *b]),
            _ => 0,
        };
        let update = match read_update(message) {
            Ok(update) => update,
            Err(Malformed(why)) => {
                let rcode = if why.starts_with("opcode") {
                    NOTIMP
                } else {
                    FORMERR
                };
                let name = if rcode == NOTIMP { "NOTIMP" } else { "FORMERR" };
                self.decided(rcode, format!("{name} {why}"));
                return answer_bytes(id, rcode, &[], Signing::None);
            }
        };
        let zone = update.zone_section.as_slice();
        let Some((tsig, tsig_start)) = &update.tsig else {
            self.decided(REFUSED, "unsigned".into());
            return answer_bytes(update.id, REFUSED, zone, Signing::None);
        };
        let key = self
            .keys
            .iter()
            .find(|k| k.name == tsig.key_name.text() && k.algorithm == tsig.algorithm.text());
        let Some(key) = key else {
            self.decided(NOTAUTH, "BADKEY".into());
            let signing = Signing::Unsigned {
                tsig,
                error: BADKEY,
            };
            return answer_bytes(update.id, NOTAUTH, zone, signing);
        };
        let signed = request_signed_bytes(message, *tsig_start, tsig);
        if hmac::verify(&key.key, &signed, &tsig.mac).is_err() {
            self.decided(NOTAUTH, "BADSIG".into());
            let signing = Signing::Unsigned {
                tsig,
                error: BADSIG,
            };
            return answer_bytes(update.id, NOTAUTH, zone, signing);
        }
        if now().abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
            self.decided(NOTAUTH, "BADTIME".into());
            let signing = Signing::Signed {
                tsig,
                key,
                error: BADTIME,
            };
            return answer_bytes(update.id, NOTAUTH, zone, signing);
        }
        let (rcode, why) = self.apply(&update);
        self.decided(rcode, why);
        let signing = Signing::Signed {
            tsig,
            key,
            error: 0,
        };
        answer_bytes(update.id, rcode, zone, signing)
    }

    fn decided(&self, rcode: u8, why: String) {
        lock(&self.state).answered.push((rcode, why));
    }

    /// Checks every update record, then applies them all (RFC 2136
    /// §3.4): none when one is wrong.
    fn apply(&self, update: &Update) -> (u8, String) {
        let zone = update.zone.text();
        if update.zone_type != TYPE_SOA {
            return (FORMERR, format!("FORMERR zone type {}", update.zone_type));
        }
        if update.zone_class != CLASS_IN || zone != self.zone {
            return (NOTAUTH, format!("NOTAUTH zone {zone}"));
        }
        for rr in &update.updates {
            let name = rr.name.text();
            if !in_zone(&name, &self.zone) {
                return (NOTZONE, format!("NOTZONE {name}"));
            }
            let fine = match rr.class {
                CLASS_IN => rr.rtype != TYPE_ANY,
                CLASS_ANY => rr.ttl == 0 && rr.rdata.is_empty(),
                CLASS_NONE => rr.ttl == 0 && rr.rtype != TYPE_ANY,
                _ => false,
            };
            if !fine {
                return (
                    FORMERR,
                    format!(
                        "FORMERR update {name} type {} class {} TTL {}",
                        rr.rtype, rr.class, rr.ttl
                    ),
                );
            }
        }
        let mut state = lock(&self.state);
        for rr in &update.updates {
            let name = rr.name.text();
            let records = &mut state.records;
            let same_set = |r: &Record| r.name == name && r.rtype == rr.rtype;
            match rr.class {
                CLASS_IN => {
                    // RFC 2136 §3.4.2.2: a duplicate RR is ignored.
                    if !records.iter().any(|r| same_set(r) && r.rdata == rr.rdata) {
                        records.push(Record {
                            name,
                            rtype: rr.rtype,
                            rdata: rr.rdata.clone(),
                        });
                    }
                }
                CLASS_ANY if rr.rtype == TYPE_ANY => records.retain(|r| r.name != name),
                CLASS_ANY => records.retain(|r| !same_set(r)),
                _ => records.retain(|r| !(same_set(r) && r.rdata == rr.rdata)),
            }
        }
        (NOERROR, "ok".into())
    }
}

/// Whether `name` is `zone` or under it.
fn in_zone(name: &str, zone: &str) -> bool {
    zone.is_empty() || name == zone || name.ends_with(&format!(".{zone}"))
}

/// What the request's MAC covers (RFC 8945 §4.3.3): the message before
/// the TSIG record was added (ADCOUNT one less, the original ID), then
/// the TSIG variables.
fn request_signed_bytes(message: &[u8], tsig_start: usize, tsig: &Tsig) -> Vec<u8> {
    let mut out = message[..tsig_start].to_vec();
    out[0..2].copy_from_slice(&tsig.original_id.to_be_bytes());
    let adcount = u16::from_be_bytes([out[10], out[11]]).wrapping_sub(1);
    out[10..12].copy_from_slice(&adcount.to_be_bytes());
    out.extend_from_slice(&tsig_variables(
        tsig,
        tsig.time_signed,
        tsig.fudge,
        tsig.error,
        &tsig.other,
    ));
    out
}

/// The TSIG variables (RFC 8945 §4.3.3): key name and algorithm in
/// canonical form, class ANY, TTL 0, time signed, fudge, error, other
/// data.
fn tsig_variables(tsig: &Tsig, time_signed: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut out = tsig.key_name.canonical_wire();
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&tsig.algorithm.canonical_wire());
    out.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
    out
}

/// An answer: the request's ID, QR, opcode UPDATE and `rcode`, the zone
/// section echoed (when it was read), then the TSIG record `signing`
/// asks for.
fn answer_bytes(id: u16, rcode: u8, zone: &[u8], signing: Signing) -> Vec<u8> {
    let flags: u16 = 0x8000 | u16::from(OPCODE_UPDATE) << 11 | u16::from(rcode & 0xF);
    let mut out = id.to_be_bytes().to_vec();
    out.extend_from_slice(&flags.to_be_bytes());
    out.extend_from_slice(&u16::from(!zone.is_empty()).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    out.extend_from_slice(zone);
    let (tsig, time_signed, error, other, mac) = match signing {
        Signing::None => return out,
        Signing::Unsigned { tsig, error } => (tsig, now(), error, Vec::new(), Vec::new()),
        Signing::Signed { tsig, key, error } => {
            // RFC 8945 §5.2.3: a BADTIME answer keeps the request's time
            // and tells the server's in Other Data.
            let (time_signed, other) = match error {
                BADTIME => (tsig.time_signed, now().to_be_bytes()[2..].to_vec()),
                _ => (now(), Vec::new()),
            };
            // §4.3.1 / §5.3: the request's MAC, the answer without its
            // TSIG (ID as the original ID), the TSIG variables.
            let mut signed = (tsig.mac.len() as u16).to_be_bytes().to_vec();
            signed.extend_from_slice(&tsig.mac);
            let mut unsigned = out.clone();
            unsigned[0..2].copy_from_slice(&tsig.original_id.to_be_bytes());
            signed.extend_from_slice(&unsigned);
            signed.extend_from_slice(&tsig_variables(tsig, time_signed, FUDGE, error, &other));
            let mac = hmac::sign(&key.key, &signed).as_ref().to_vec();
            (tsig, time_signed, error, other, mac)
        }
    };
    out[10..12].copy_from_slice(&1u16.to_be_bytes());
    let mut rdata = tsig.algorithm.canonical_wire();
    rdata.extend_from_slice(&time_signed.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&mac);
    rdata.extend_from_slice(&tsig.original_id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(&other);
    out.extend_from_slice(&tsig.key_name.canonical_wire());
    out.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    out.extend_from_slice(&rdata);
    out
}
