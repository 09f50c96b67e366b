//! A small MaxMind DB writer, for tests: a search tree over a few
//! networks, a data section of fields encoded as the spec says, and the
//! metadata. Shared by the reader's unit tests (`src/geoip/tests.rs`
//! includes this file) and the integration tests.

#![allow(dead_code)]

use std::net::IpAddr;

const MARKER: &[u8] = b"\xab\xcd\xefMaxMind.com";

/// Type numbers of the spec.
pub const POINTER: u8 = 1;
pub const TEXT: u8 = 2;
pub const DOUBLE: u8 = 3;
pub const MAP: u8 = 7;
pub const UINT16: u8 = 5;
pub const UINT32: u8 = 6;
pub const UINT64: u8 = 9;
pub const ARRAY: u8 = 11;
pub const BOOLEAN: u8 = 14;

/// A control byte (and extended type, and size bytes) for `kind` and
/// `size`.
pub fn control(kind: u8, size: usize) -> Vec<u8> {
    let (small, extra): (u8, Vec<u8>) = match size {
        0..=28 => (size as u8, vec![]),
        29..=284 => (29, vec![(size - 29) as u8]),
        285..=65_820 => (30, ((size - 285) as u16).to_be_bytes().to_vec()),
        _ => (31, ((size - 65_821) as u32).to_be_bytes()[1..].to_vec()),
    };
    let mut out = match kind {
        0..=7 => vec![(kind << 5) | small],
        _ => vec![small, kind - 7],
    };
    out.extend(extra);
    out
}

pub fn text(s: &str) -> Vec<u8> {
    let mut out = control(TEXT, s.len());
    out.extend_from_slice(s.as_bytes());
    out
}

/// An unsigned integer of type `kind`, in as few bytes as it takes.
pub fn uint(kind: u8, n: u64) -> Vec<u8> {
    let bytes = n.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    let mut out = control(kind, 8 - skip);
    out.extend_from_slice(&bytes[skip..]);
    out
}

/// A map of these keys and (encoded) values, in order.
pub fn map(pairs: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut out = control(MAP, pairs.len());
    for (key, value) in pairs {
        out.extend(text(key));
        out.extend_from_slice(value);
    }
    out
}

pub fn array(items: &[Vec<u8>]) -> Vec<u8> {
    let mut out = control(ARRAY, items.len());
    for item in items {
        out.extend_from_slice(item);
    }
    out
}

/// A pointer to `offset` of the data section, in the shortest form.
pub fn pointer(offset: usize) -> Vec<u8> {
    let p = 0x20;
    match offset {
        0..=2_047 => vec![p | (offset >> 8) as u8, offset as u8],
        2_048..=526_335 => {
            let v = offset - 2_048;
            vec![p | 0x08 | (v >> 16) as u8, (v >> 8) as u8, v as u8]
        }
        526_336..=134_744_063 => {
            let v = offset - 526_336;
            vec![
                p | 0x10 | (v >> 24) as u8,
                (v >> 16) as u8,
                (v >> 8) as u8,
                v as u8,
            ]
        }
        _ => {
            let mut out = vec![p | 0x18];
            out.extend((offset as u32).to_be_bytes());
            out
        }
    }
}

/// A record as a GeoLite2-Country one: `country` (with names and a
/// double, a boolean and an array to step over) and `registered_country`,
/// each when given.
pub fn country_record(country: Option<&str>, registered: Option<&str>) -> Vec<u8> {
    let place = |iso: &str| {
        map(&[
            ("geoname_id", uint(UINT32, 2_921_044)),
            (
                "is_in_european_union",
                [control(0, 1), vec![BOOLEAN - 7]].concat(),
            ),
            (
                "confidence",
                [control(DOUBLE, 8), vec![0x3f, 0xf0, 0, 0, 0, 0, 0, 0]].concat(),
            ),
            (
                "names",
                map(&[("en", text("Somewhere")), ("de", text("Irgendwo"))]),
            ),
            ("iso_code", text(iso)),
        ])
    };
    let mut pairs = vec![(
        "continent",
        map(&[("code", text("EU")), ("names", array(&[text("Europe")]))]),
    )];
    if let Some(iso) = country {
        pairs.push(("country", place(iso)));
    }
    if let Some(iso) = registered {
        pairs.push(("registered_country", place(iso)));
    }
    map(&pairs)
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Rec {
    Empty,
    Node(u32),
    Data(usize),
}

/// A database being written.
pub struct Writer {
    record_size: u16,
    ip_version: u16,
    nodes: Vec<[Rec; 2]>,
    data: Vec<u8>,
}

impl Writer {
    pub fn new(ip_version: u16, record_size: u16) -> Writer {
        Writer {
            record_size,
            ip_version,
            nodes: vec![[Rec::Empty; 2]],
            data: Vec::new(),
        }
    }

    /// Appends `field` to the data section: its offset.
    pub fn data(&mut self, field: &[u8]) -> usize {
        let at = self.data.len();
        self.data.extend_from_slice(field);
        at
    }

    /// `network` (`192.0.2.0/24`, `2001:db8::/32`) has the data at
    /// `offset`; an IPv4 one in an IPv6 tree goes under `::/96`.
    pub fn insert(&mut self, network: &str, offset: usize) {
        let (addr, prefix) = network.split_once('/').unwrap();
        let prefix: u32 = prefix.parse().unwrap();
        let (bits, prefix) = match (addr.parse::<IpAddr>().unwrap(), self.ip_version) {
            (IpAddr::V4(v4), 6) => (u128::from(u32::from(v4)), prefix + 96),
            (IpAddr::V4(v4), _) => (u128::from(u32::from(v4)) << 96, prefix),
            (IpAddr::V6(v6), _) => (u128::from(v6), prefix),
        };
        let mut node = 0usize;
        for i in 0..prefix {
            let side = ((bits >> (127 - i)) & 1) as usize;
            if i + 1 == prefix {
                self.nodes[node][side] = Rec::Data(offset);
                return;
            }
            node = match self.nodes[node][side] {
                Rec::Node(next) => next as usize,
                Rec::Empty => {
                    self.nodes.push([Rec::Empty; 2]);
                    let next = self.nodes.len() - 1;
                    self.nodes[node][side] = Rec::Node(next as u32);
                    next
                }
                Rec::Data(_) => panic!("{network} is inside a network already written"),
            };
        }
    }

    /// The file: tree, separator, data section, metadata.
    pub fn finish(&self, database_type: &str) -> Vec<u8> {
        let count = self.nodes.len() as u64;
        let value = |rec: Rec| match rec {
            Rec::Empty => count,
            Rec::Node(n) => u64::from(n),
            Rec::Data(offset) => count + 16 + offset as u64,
        };
        let mut out = Vec::new();
        for [left, right] in &self.nodes {
            let (l, r) = (value(*left), value(*right));
            match self.record_size {
                24 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                28 => {
                    out.extend_from_slice(&l.to_be_bytes()[5..]);
                    out.push((((l >> 24) as u8) << 4) | ((r >> 24) as u8 & 0x0f));
                    out.extend_from_slice(&r.to_be_bytes()[5..]);
                }
                _ => {
                    out.extend_from_slice(&(l as u32).to_be_bytes());
                    out.extend_from_slice(&(r as u32).to_be_bytes());
                }
            }
        }
        out.extend_from_slice(&[0; 16]);
        out.extend_from_slice(&self.data);
        out.extend_from_slice(MARKER);
        out.extend(self.metadata(database_type));
        out
    }

    fn metadata(&self, database_type: &str) -> Vec<u8> {
        map(&[
            ("node_count", uint(UINT32, self.nodes.len() as u64)),
            ("record_size", uint(UINT16, self.record_size.into())),
            ("ip_version", uint(UINT16, self.ip_version.into())),
            ("database_type", text(database_type)),
            ("languages", array(&[text("en"), text("de")])),
            ("binary_format_major_version", uint(UINT16, 2)),
            ("binary_format_minor_version", uint(UINT16, 0)),
            ("build_epoch", uint(UINT64, 1_700_000_000)),
            ("description", map(&[("en", text("test database"))])),
        ])
    }
}
