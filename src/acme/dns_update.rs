//! DNS UPDATE (RFC 2136) signed with TSIG (RFC 8945): how a `dns-01`
//! challenge's TXT record is put into, and taken out of, a zone whose
//! primary server takes signed updates (BIND, Knot, PowerDNS), as
//! certbot's `dns-rfc2136` plugin and lego's `rfc2136` provider do.
//!
//! One message an update, over TCP (RFC 1035 §4.2.2: each message after
//! its length), so that no answer is truncated.

use crate::dns::{encode_name, random_id};
use std::io::{Read as _, Write as _};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant, SystemTime};

/// How long the server may take to connect, or to answer an update.
const TIMEOUT: Duration = Duration::from_secs(10);

/// How far the server's clock may be from ours (RFC 8945 §10: 300 s).
const FUDGE: u16 = 300;

/// The TTL of a challenge's record: short, as it lives a minute.
const TTL: u32 = 60;

const TYPE_SOA: u16 = 6;
const TYPE_TXT: u16 = 16;
const TYPE_TSIG: u16 = 250;
const CLASS_IN: u16 = 1;
const CLASS_NONE: u16 = 254;
const CLASS_ANY: u16 = 255;
const OPCODE_UPDATE: u16 = 5;

/// A TSIG key, as `nsupdate -y` takes it: `[algorithm:]name:secret`.
#[derive(Clone, PartialEq, Eq)]
pub struct TsigKey {
    /// Lower case, without the final dot.
    pub name: String,
    pub algorithm: Algorithm,
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TsigKey({} {:?})", self.name, self.algorithm)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    HmacSha256,
    HmacSha512,
}

impl Algorithm {
    fn name(self) -> &'static str {
        match self {
            Algorithm::HmacSha256 => "hmac-sha256",
            Algorithm::HmacSha512 => "hmac-sha512",
        }
    }

    fn hmac(self) -> ring::hmac::Algorithm {
        match self {
            Algorithm::HmacSha256 => ring::hmac::HMAC_SHA256,
            Algorithm::HmacSha512 => ring::hmac::HMAC_SHA512,
        }
    }
}

impl TsigKey {
    /// `[hmac-sha256:|hmac-sha512:]name:secret`, the secret in base64 as
    /// `tsig-keygen` writes it; HMAC-SHA256 unless named.
    pub fn parse(v: &str) -> Result<TsigKey, String> {
        use base64::Engine as _;
        let v = v.trim();
        let parts: Vec<&str> = v.split(':').collect();
        let (algorithm, name, secret) = match parts[..] {
            [name, secret] => (Algorithm::HmacSha256, name, secret),
            [algorithm, name, secret] => {
                let algorithm = match algorithm.to_ascii_lowercase().as_str() {
                    "hmac-sha256" => Algorithm::HmacSha256,
                    "hmac-sha512" => Algorithm::HmacSha512,
                    other => {
                        return Err(format!(
                            "`{other}`: hmac-sha256 or hmac-sha512 (the older MD5 and SHA-1 are not taken)"
                        ))
                    }
                };
                (algorithm, name, secret)
            }
            _ => return Err("not `[algorithm:]name:secret`, as nsupdate -y takes it".into()),
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        encode_name(&name).map_err(|e| format!("the key's name: {e}"))?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .ok()
            .filter(|s| !s.is_empty())
            .ok_or("the secret is not base64 (as tsig-keygen writes it)")?;
        Ok(TsigKey {
            name,
            algorithm,
            secret,
        })
    }
}

/// The primary server of some zones, and the key it takes updates
/// signed with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DnsUpdate {
    /// `host:port`, looked up at each update.
    pub server: String,
    /// The zones updated: lower case, without the final dot.
    pub zones: Vec<String>,
    pub key: TsigKey,
}

/// Whether `name` is `zone` or under it.
pub fn in_zone(name: &str, zone: &str) -> bool {
    name == zone
        || name
            .strip_suffix(zone)
            .is_some_and(|head| head.ends_with('.'))
}

impl DnsUpdate {
    /// The zone `name` is in: the longest of [`DnsUpdate::zones`] it is
    /// under, as a zone delegated from another is its own.
    pub fn zone_of(&self, name: &str) -> Option<&str> {
        let under = self.zones.iter().filter(|zone| in_zone(name, zone));
        under.max_by_key(|zone| zone.len()).map(String::as_str)
    }

    /// Adds the TXT record `value` at `name`, beside any there.
    pub fn add_txt(&self, name: &str, value: &str) -> Result<(), String> {
        self.send(name, value, CLASS_IN, TTL)
            .map_err(|e| format!("adding the TXT record at {name}: {e}"))
    }

    /// Deletes the TXT record `value` at `name`, leaving any other.
    pub fn delete_txt(&self, name: &str, value: &str) -> Result<(), String> {
        self.send(name, value, CLASS_NONE, 0)
            .map_err(|e| format!("deleting the TXT record at {name}: {e}"))
    }

    fn send(&self, name: &str, value: &str, class: u16, ttl: u32) -> Result<(), String> {
        let id = random_id();
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let zone = self.zone_of(name).ok_or("in none of acme_dns_zone")?;
        let message = update_message(id, zone, name, value, class, ttl)?;
        let signed = sign(message, id, &self.key, now)?;
        let answer = self.exchange(&signed, TIMEOUT)?;
        read_answer(&answer, id)
    }

    /// Sends `message` and reads the answer, all `within`: a server
    /// that sends its answer a byte at a time is not waited for longer
    /// than one that sends nothing (a timeout on each read alone would
    /// let it hold the client for days).
    fn exchange(&self, message: &[u8], within: Duration) -> Result<Vec<u8>, String> {
        let server = &self.server;
        let addr = (server.to_socket_addrs().ok())
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| format!("{server}: no address"))?;
        let deadline = Instant::now() + within;
        let io = |e: std::io::Error| format!("{server}: {e}");
        let mut stream = TcpStream::connect_timeout(&addr, within).map_err(io)?;
        let late = || format!("{server}: no answer within {within:?}");
        let left = || {
            Some(deadline.saturating_duration_since(Instant::now()))
                .filter(|d| !d.is_zero())
                .ok_or_else(late)
        };
        stream.set_write_timeout(Some(left()?)).map_err(io)?;
        let length = u16::try_from(message.len()).map_err(|_| "the update is too long")?;
        let mut framed = length.to_be_bytes().to_vec();
        framed.extend_from_slice(message);
        stream.write_all(&framed).map_err(io)?;
        let mut read_exact = |out: &mut [u8]| {
            let mut at = 0;
            while at < out.len() {
                stream.set_read_timeout(Some(left()?)).map_err(io)?;
                match stream.read(&mut out[at..]) {
                    Ok(0) => return Err(format!("{server}: closed before its answer")),
                    Ok(n) => at += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        return Err(late())
                    }
                    Err(e) => return Err(io(e)),
                }
            }
            Ok(())
        };
        let mut length = [0u8; 2];
        read_exact(&mut length)?;
        let mut answer = vec![0u8; usize::from(u16::from_be_bytes(length))];
        read_exact(&mut answer)?;
        Ok(answer)
    }
}

/// An UPDATE of `zone` (RFC 2136 §2) with one record, the TXT `value`
/// at `name`: added with class IN, deleted with class NONE (§2.5.4).
fn update_message(
    id: u16,
    zone: &str,
    name: &str,
    value: &str,
    class: u16,
    ttl: u32,
) -> Result<Vec<u8>, String> {
    let text = value.as_bytes();
    let length = u8::try_from(text.len()).map_err(|_| "a TXT string over 255 bytes")?;
    let mut m = Vec::with_capacity(128);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&(OPCODE_UPDATE << 11).to_be_bytes());
    // One zone, no prerequisites, one update, no additional records yet.
    for count in [1u16, 0, 1, 0] {
        m.extend_from_slice(&count.to_be_bytes());
    }
    m.extend_from_slice(&encode_name(zone)?);
    m.extend_from_slice(&TYPE_SOA.to_be_bytes());
    m.extend_from_slice(&CLASS_IN.to_be_bytes());
    m.extend_from_slice(&encode_name(name)?);
    m.extend_from_slice(&TYPE_TXT.to_be_bytes());
    m.extend_from_slice(&class.to_be_bytes());
    m.extend_from_slice(&ttl.to_be_bytes());
    m.extend_from_slice(&(u16::from(length) + 1).to_be_bytes());
    m.push(length);
    m.extend_from_slice(text);
    Ok(m)
}

/// `message` with its TSIG record (RFC 8945 §4.2) added: the MAC over
/// the message and the TSIG variables (§4.3.3), signed at `now`.
fn sign(mut message: Vec<u8>, id: u16, key: &TsigKey, now: u64) -> Result<Vec<u8>, String> {
    let key_name = encode_name(&key.name)?;
    let algorithm = encode_name(key.algorithm.name())?;
    let time = &now.to_be_bytes()[2..];
    let mut variables = key_name.clone();
    variables.extend_from_slice(&CLASS_ANY.to_be_bytes());
    variables.extend_from_slice(&0u32.to_be_bytes());
    variables.extend_from_slice(&algorithm);
    variables.extend_from_slice(time);
    variables.extend_from_slice(&FUDGE.to_be_bytes());
    // No error, no other data.
    variables.extend_from_slice(&[0, 0, 0, 0]);
    let signer = ring::hmac::Key::new(key.algorithm.hmac(), &key.secret);
    let mut context = ring::hmac::Context::with_key(&signer);
    context.update(&message);
    context.update(&variables);
    let mac = context.sign();
    let mac = mac.as_ref();

    let mut rdata = algorithm;
    rdata.extend_from_slice(time);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&id.to_be_bytes());
    rdata.extend_from_slice(&[0, 0, 0, 0]);
    message.extend_from_slice(&key_name);
    message.extend_from_slice(&TYPE_TSIG.to_be_bytes());
    message.extend_from_slice(&CLASS_ANY.to_be_bytes());
    message.extend_from_slice(&0u32.to_be_bytes());
    message.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    message.extend_from_slice(&rdata);
    // ARCOUNT: the TSIG record.
    message[10..12].copy_from_slice(&1u16.to_be_bytes());
    Ok(message)
}

/// The server's verdict on the update `id`: its RCODE, said by name.
#[doc(hidden)]
pub fn read_answer(answer: &[u8], id: u16) -> Result<(), String> {
    let [a, b, flags_high, flags_low, ..] = *answer else {
        return Err("an answer shorter than a DNS header".into());
    };
    if u16::from_be_bytes([a, b]) != id {
        return Err("an answer to another message".into());
    }
    if flags_high & 0x80 == 0 {
        return Err("a request, not an answer".into());
    }
    match flags_low & 0x0f {
        0 => Ok(()),
        rcode => Err(format!("the server answered {}", rcode_name(rcode))),
    }
}

fn rcode_name(rcode: u8) -> String {
    let name = match rcode {
        1 => "FORMERR (it could not read the update)",
        2 => "SERVFAIL",
        4 => "NOTIMP (it takes no updates)",
        5 => "REFUSED (updates are not allowed with this key, or to this zone)",
        9 => "NOTAUTH (the key is not one it knows, the secret is wrong, or the clocks differ by more than 5 minutes)",
        10 => "NOTZONE (the name is not in acme_dns_zone)",
        _ => return format!("RCODE {rcode}"),
    };
    name.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_read_as_nsupdate_takes_it() {
        let key = TsigKey::parse("hmac-sha512:Acme-Key.:c2VjcmV0").unwrap();
        assert_eq!(key.name, "acme-key");
        assert_eq!(key.algorithm, Algorithm::HmacSha512);
        assert_eq!(key.secret, b"secret");
        let plain = TsigKey::parse("acme:c2VjcmV0").unwrap();
        assert_eq!(plain.algorithm, Algorithm::HmacSha256);
        for (bad, says) in [
            ("hmac-md5:acme:c2VjcmV0", "not taken"),
            ("acme", "nsupdate"),
            ("acme:not base64!", "not base64"),
            ("acme:", "not base64"),
            ("a..b:c2VjcmV0", "label"),
        ] {
            let e = TsigKey::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        assert!(
            !format!("{key:?}").contains("c2Vj"),
            "the secret is not shown"
        );
    }

    #[test]
    fn names_are_lower_case_labels_ending_in_the_root() {
        assert_eq!(
            encode_name("_acme-challenge.Shop.test.").unwrap(),
            b"\x0f_acme-challenge\x04shop\x04test\x00"
        );
        assert_eq!(encode_name("").unwrap(), b"\x00");
        assert!(encode_name(&"a".repeat(64)).is_err());
        assert!(encode_name(&["abc"; 70].join(".")).is_err());
    }

    /// The MAC covers the message and the TSIG variables as RFC 8945
    /// §4.3.3 lists them: computed here apart, from the fields.
    #[test]
    fn the_mac_covers_the_message_and_the_tsig_variables() {
        let key = TsigKey::parse("hmac-sha256:k:c2VjcmV0").unwrap();
        let message = update_message(
            7,
            "shop.test",
            "_acme-challenge.shop.test",
            "v",
            CLASS_IN,
            60,
        )
        .unwrap();
        let signed = sign(message.clone(), 7, &key, 0x0102_0304_0506).unwrap();
        assert_eq!(&signed[..10], &message[..10]);
        assert_eq!(&signed[10..12], &[0, 1], "one additional record");
        assert_eq!(&signed[12..message.len()], &message[12..]);
        let tsig = &signed[message.len()..];
        // k. TSIG ANY 0, then the RDATA.
        assert_eq!(&tsig[..3], b"\x01k\x00");
        assert_eq!(&tsig[3..11], &[0, 250, 0, 255, 0, 0, 0, 0]);
        let rdata = &tsig[13..];
        let algorithm = b"\x0bhmac-sha256\x00";
        assert_eq!(&rdata[..algorithm.len()], algorithm);
        let rest = &rdata[algorithm.len()..];
        assert_eq!(&rest[..6], &[1, 2, 3, 4, 5, 6], "time signed");
        assert_eq!(&rest[6..8], &300u16.to_be_bytes(), "fudge");
        assert_eq!(&rest[8..10], &32u16.to_be_bytes(), "MAC size");
        let mac = &rest[10..42];
        assert_eq!(&rest[42..], &[0, 7, 0, 0, 0, 0], "original ID, no error");
        let mut covered = message.clone();
        covered.extend_from_slice(b"\x01k\x00\x00\xff\x00\x00\x00\x00");
        covered.extend_from_slice(algorithm);
        covered.extend_from_slice(&[1, 2, 3, 4, 5, 6, 1, 44, 0, 0, 0, 0]);
        let check = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"secret");
        assert!(ring::hmac::verify(&check, &covered, mac).is_ok());
    }

    #[test]
    fn a_name_is_updated_in_the_longest_zone_it_is_under() {
        let update = DnsUpdate {
            server: "127.0.0.1:53".into(),
            zones: vec![
                "shop.test".into(),
                "eu.shop.test".into(),
                "blog.test".into(),
            ],
            key: TsigKey::parse("k:c2VjcmV0").unwrap(),
        };
        for (name, zone) in [
            ("_acme-challenge.shop.test", Some("shop.test")),
            ("_acme-challenge.api.eu.shop.test", Some("eu.shop.test")),
            ("_acme-challenge.blog.test", Some("blog.test")),
            ("_acme-challenge.xblog.test", None),
            ("_acme-challenge.neu.shop.test", Some("shop.test")),
        ] {
            assert_eq!(update.zone_of(name), zone, "{name}");
        }
        assert!(in_zone("shop.test", "shop.test"));
        assert!(!in_zone("xshop.test", "shop.test"));
    }

    /// A server that answers a byte at a time, each within the time a
    /// read may take, is given no longer than one that does not answer.
    #[test]
    fn an_answer_trickling_in_is_cut_at_the_exchanges_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let update = DnsUpdate {
            server: listener.local_addr().unwrap().to_string(),
            zones: vec!["shop.test".into()],
            key: TsigKey::parse("k:c2VjcmV0").unwrap(),
        };
        let server = std::thread::spawn(move || {
            let (mut socket, _) = listener.accept().unwrap();
            // A length of 60 bytes, then a byte every 50 ms: 3 s in all.
            let _ = socket.write_all(&[0, 60]);
            for _ in 0..60 {
                std::thread::sleep(Duration::from_millis(50));
                if socket.write_all(&[0]).is_err() {
                    break;
                }
            }
        });
        // Each byte comes well within a read's time: only a deadline for
        // the whole exchange says this (with one for each read alone, the
        // 60 bytes are read, and refused as no DNS answer).
        let e = update
            .exchange(b"update", Duration::from_millis(400))
            .unwrap_err();
        assert!(e.contains("no answer within"), "{e}");
        server.join().unwrap();
    }

    #[test]
    fn an_answer_says_the_servers_verdict() {
        assert!(read_answer(&[0, 7, 0xa8, 0x00], 7).is_ok());
        let refused = read_answer(&[0, 7, 0xa8, 0x09, 0, 0], 7).unwrap_err();
        assert!(refused.contains("NOTAUTH"), "{refused}");
        assert!(read_answer(&[0, 8, 0xa8, 0x00], 7).is_err(), "another ID");
        assert!(
            read_answer(&[0, 7, 0x28, 0x00], 7).is_err(),
            "not an answer"
        );
        assert!(read_answer(&[0, 7], 7).is_err());
    }
}
