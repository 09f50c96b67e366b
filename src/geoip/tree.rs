//! A MaxMind DB's search tree: a binary tree over an address's bits, its
//! nodes in a row at the start of the file, each two records (left for a
//! 0 bit, right for a 1) of 24, 28 or 32 bits. A record below the node
//! count is the next node; equal to it, no data; above it, where the
//! network's data is in the data section.

use super::metadata::Metadata;
use super::GeoIpError;
use std::net::IpAddr;

/// Bytes of zeros between the tree and the data section.
const SEPARATOR: usize = 16;

/// The tree of one database: its bytes, checked to hold every node.
#[derive(Debug)]
pub(super) struct Tree {
    node_count: u32,
    record_size: u16,
    ipv6: bool,
    /// Where an IPv4 address's walk begins: in an IPv6 tree, the node 96
    /// zero bits down (`::a.b.c.d`, as the spec says), found once.
    ipv4_start: u32,
    /// Bytes of the tree.
    len: usize,
}

/// What a walk down the tree found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Found {
    /// The network's data, at this offset of the data section.
    Data(usize),
    /// No network holds the address.
    None,
}

impl Tree {
    /// The tree `meta` describes at the start of `file`, and where the
    /// data section begins.
    pub(super) fn new(meta: &Metadata, file: &[u8]) -> Result<(Tree, usize), GeoIpError> {
        let len = (usize::try_from(meta.node_count).ok())
            .and_then(|n| n.checked_mul(meta.node_bytes()))
            .ok_or(GeoIpError::Truncated)?;
        let data_start = len.checked_add(SEPARATOR).ok_or(GeoIpError::Truncated)?;
        if data_start > file.len() {
            return Err(GeoIpError::Truncated);
        }
        let mut tree = Tree {
            node_count: meta.node_count,
            record_size: meta.record_size,
            ipv6: meta.ip_version == 6,
            ipv4_start: 0,
            len,
        };
        if tree.ipv6 {
            let mut node = 0;
            for _ in 0..96 {
                if node >= tree.node_count {
                    break;
                }
                node = tree.record(file, node, false)?;
            }
            tree.ipv4_start = node;
        }
        Ok((tree, data_start))
    }

    pub(super) fn node_count(&self) -> u32 {
        self.node_count
    }

    /// The left or right record of `node`.
    fn record(&self, file: &[u8], node: u32, right: bool) -> Result<u32, GeoIpError> {
        let width = usize::from(self.record_size) / 4;
        let at = (node as usize)
            .checked_mul(width)
            .ok_or(GeoIpError::Truncated)?;
        let bytes = (file.get(at..at + width))
            .filter(|_| at + width <= self.len)
            .ok_or(GeoIpError::Truncated)?;
        let be = |b: &[u8]| b.iter().fold(0u32, |n, b| (n << 8) | u32::from(*b));
        let (left, right_bytes) = bytes.split_at(width / 2);
        Ok(match (self.record_size, right, bytes) {
            // The middle byte's high nibble tops the left record, its low
            // one the right.
            (28, false, [a, b, c, middle, ..]) => {
                (u32::from(middle & 0xf0) << 20) | be(&[*a, *b, *c])
            }
            (28, true, [.., middle, d, e, f]) => {
                (u32::from(middle & 0x0f) << 24) | be(&[*d, *e, *f])
            }
            (_, false, _) => be(left),
            (_, true, _) => be(right_bytes),
        })
    }

    /// Where the data of the network holding `ip` is, after at most 128
    /// steps, the walk's own bound.
    pub(super) fn find(&self, file: &[u8], ip: IpAddr) -> Result<Found, GeoIpError> {
        let (start, bits, address) = match ip.to_canonical() {
            IpAddr::V4(v4) => (self.ipv4_start, 32, u128::from(u32::from(v4)) << 96),
            IpAddr::V6(_) if !self.ipv6 => return Ok(Found::None),
            IpAddr::V6(v6) => (0, 128, u128::from(v6)),
        };
        let mut node = start;
        for i in 0..bits {
            if node >= self.node_count {
                break;
            }
            let bit = address & (1u128 << (127 - i)) != 0;
            node = self.record(file, node, bit)?;
        }
        match node.checked_sub(self.node_count) {
            Some(0) => Ok(Found::None),
            // Every bit taken and still a node: a tree deeper than an
            // address.
            None => Err(GeoIpError::Data("a tree deeper than an address")),
            Some(past) => (past as usize)
                .checked_sub(SEPARATOR)
                .map(Found::Data)
                .ok_or(GeoIpError::Data("a record into the separator")),
        }
    }
}
