//! A DNS server on loopback that answers SRV queries from a table the
//! test sets: UDP and TCP on one port, as a real server listens. Written
//! apart from the proxy's DNS code, from RFC 1035 and RFC 2782, so that
//! the two are held to the RFCs rather than to each other.
//!
//! A name in the table with records is answered with them, and the A
//! records of their hosts the test gave in the additional section (as
//! Consul does); a name in the table without records is answered with
//! none (NOERROR); any other name NXDOMAIN. Every record has the TTL
//! [`SrvDns::ttl`] sets, else [`DEFAULT_TTL`]. With [`SrvDns::truncate`]
//! set, a UDP reply comes with TC and nothing else, so that the client
//! asks again over TCP.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// One SRV record: priority, weight, port, target host.
pub type Record = (u16, u16, u16, String);

/// The records' TTL, in seconds, unless the test sets another.
pub const DEFAULT_TTL: u32 = 30;

#[derive(Default)]
struct Table {
    records: HashMap<String, Vec<Record>>,
    hosts: HashMap<String, Ipv4Addr>,
    ttl: Option<u32>,
}

#[derive(Default)]
struct State {
    table: Mutex<Table>,
    truncate: AtomicBool,
    udp_queries: AtomicUsize,
    tcp_queries: AtomicUsize,
}

#[derive(Clone)]
pub struct SrvDns {
    pub addr: SocketAddr,
    state: Arc<State>,
}

impl SrvDns {
    pub fn start() -> SrvDns {
        // One port for both: TCP's first, then UDP's on it (taken for UDP
        // by another now and then: another port).
        let (tcp, udp) = (0..50)
            .find_map(|_| {
                let tcp = TcpListener::bind("127.0.0.1:0").ok()?;
                let udp = UdpSocket::bind(tcp.local_addr().ok()?).ok()?;
                Some((tcp, udp))
            })
            .expect("a port free for both UDP and TCP");
        let dns = SrvDns {
            addr: udp.local_addr().unwrap(),
            state: Arc::default(),
        };
        let state = dns.state.clone();
        std::thread::spawn(move || serve_udp(&udp, &state));
        let state = dns.state.clone();
        std::thread::spawn(move || {
            for stream in tcp.incoming() {
                let Ok(stream) = stream else { continue };
                let state = state.clone();
                std::thread::spawn(move || serve_tcp(stream, &state));
            }
        });
        dns
    }

    /// The SRV records of `name` from now on (none: NOERROR, empty).
    pub fn set(&self, name: &str, records: &[(u16, u16, u16, &str)]) {
        let records = (records.iter())
            .map(|&(p, w, port, host)| (p, w, port, host.to_string()))
            .collect();
        let mut table = self.state.table.lock().unwrap();
        table.records.insert(name.to_ascii_lowercase(), records);
    }

    /// Gives `host`'s address with the records that name it.
    pub fn host(&self, host: &str, ip: Ipv4Addr) {
        let mut table = self.state.table.lock().unwrap();
        table.hosts.insert(host.to_ascii_lowercase(), ip);
    }

    /// The TTL of every record from now on.
    pub fn ttl(&self, seconds: u32) {
        self.state.table.lock().unwrap().ttl = Some(seconds);
    }

    pub fn truncate(&self, on: bool) {
        self.state.truncate.store(on, Ordering::SeqCst);
    }

    pub fn udp_queries(&self) -> usize {
        self.state.udp_queries.load(Ordering::SeqCst)
    }

    pub fn tcp_queries(&self) -> usize {
        self.state.tcp_queries.load(Ordering::SeqCst)
    }
}

fn serve_udp(socket: &UdpSocket, state: &State) {
    let mut buf = [0u8; 512];
    loop {
        let Ok((n, from)) = socket.recv_from(&mut buf) else {
            continue;
        };
        state.udp_queries.fetch_add(1, Ordering::SeqCst);
        let truncate = state.truncate.load(Ordering::SeqCst);
        if let Some(reply) = reply(&buf[..n], state, truncate) {
            let _ = socket.send_to(&reply, from);
        }
    }
}

fn serve_tcp(mut stream: TcpStream, state: &State) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut length = [0u8; 2];
    while stream.read_exact(&mut length).is_ok() {
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        state.tcp_queries.fetch_add(1, Ordering::SeqCst);
        let Some(reply) = reply(&query, state, false) else {
            return;
        };
        let mut framed = (reply.len() as u16).to_be_bytes().to_vec();
        framed.extend_from_slice(&reply);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// `name` in wire form, uncompressed.
fn encode(name: &str) -> Vec<u8> {
    let mut wire = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        wire.push(label.len() as u8);
        wire.extend_from_slice(label.as_bytes());
    }
    wire.push(0);
    wire
}

/// The question of `query`: its name (lower case), its type, and where
/// it ends. Queries are never compressed.
fn question(query: &[u8]) -> Option<(String, u16, usize)> {
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let len = usize::from(*query.get(at)?);
        if len == 0 {
            break;
        }
        let label = query.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    let end = at + 5;
    let kind = u16::from_be_bytes([*query.get(at + 1)?, *query.get(at + 2)?]);
    query.get(at + 3..end)?;
    Some((labels.join("."), kind, end))
}

fn reply(query: &[u8], state: &State, truncate: bool) -> Option<Vec<u8>> {
    let (name, kind, end) = question(query)?;
    let table = state.table.lock().unwrap();
    let records = table.records.get(&name);
    // QR, RD as asked, RA; NXDOMAIN for a name not in the table.
    let mut flags: u16 = 0x8080 | (u16::from_be_bytes([query[2], query[3]]) & 0x0100);
    let mut answers: Vec<u8> = Vec::new();
    let mut additional: Vec<u8> = Vec::new();
    let (mut an, mut ar) = (0u16, 0u16);
    let ttl = table.ttl.unwrap_or(DEFAULT_TTL).to_be_bytes();
    match records {
        None => flags |= 3,
        Some(_) if truncate => flags |= 0x0200,
        Some(records) if kind == 33 => {
            for (priority, weight, port, host) in records {
                let target = encode(host);
                answers.extend_from_slice(&[0xc0, 12, 0, 33, 0, 1]);
                answers.extend_from_slice(&ttl);
                answers.extend_from_slice(&(6 + target.len() as u16).to_be_bytes());
                for field in [priority, weight, port] {
                    answers.extend_from_slice(&field.to_be_bytes());
                }
                answers.extend_from_slice(&target);
                an += 1;
                if let Some(ip) = table.hosts.get(&host.to_ascii_lowercase()) {
                    additional.extend_from_slice(&target);
                    additional.extend_from_slice(&[0, 1, 0, 1]);
                    additional.extend_from_slice(&ttl);
                    additional.extend_from_slice(&[0, 4]);
                    additional.extend_from_slice(&ip.octets());
                    ar += 1;
                }
            }
        }
        Some(_) => {}
    }
    let mut m = query[..2].to_vec();
    m.extend_from_slice(&flags.to_be_bytes());
    for count in [1, an, 0, ar] {
        m.extend_from_slice(&count.to_be_bytes());
    }
    m.extend_from_slice(&query[12..end]);
    m.extend_from_slice(&answers);
    m.extend_from_slice(&additional);
    Some(m)
}
