//! A list of address blocks as written (`allow_from`, `deny_from`,
//! `auth_basic_except_from`), with an index that answers "is this
//! address in one of them" by a binary search.
//!
//! Such lists can be long: a country block list runs to tens of
//! thousands of blocks, and it is asked once per request. Scanned in
//! order, 50,000 blocks cost tens of microseconds a request; nginx's
//! `geo` module and HAProxy's ACL trees answer in a handful of steps
//! whatever the length, and so does this. The blocks are kept as written
//! too, for what shows them (`inverso check`, warnings).

use crate::realip::{bits_of, Cidr};
use std::fmt;
use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;

/// Blocks as written, and the same addresses as sorted ranges that do
/// not touch (each family apart: an IPv4 client is never in an IPv6
/// block, see [`Cidr::contains`]). Cloned with each pool's settings, so
/// its parts are shared rather than copied.
#[derive(Clone, Default)]
pub struct CidrList {
    blocks: Arc<[Cidr]>,
    v4: Arc<[(u32, u32)]>,
    v6: Arc<[(u128, u128)]>,
}

impl CidrList {
    pub fn new(blocks: Vec<Cidr>) -> CidrList {
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for block in &blocks {
            match block.range() {
                (IpAddr::V4(first), IpAddr::V4(last)) => {
                    v4.push((u32::from(first), u32::from(last)))
                }
                (first, last) => v6.push((bits_of(first), bits_of(last))),
            }
        }
        CidrList {
            blocks: blocks.into(),
            v4: merged(v4).into(),
            v6: merged(v6).into(),
        }
    }

    /// Whether `ip` is in one of the blocks, as [`Cidr::contains`] says
    /// for any of them.
    pub fn holds(&self, ip: IpAddr) -> bool {
        match ip.to_canonical() {
            IpAddr::V4(v4) => meets_ranges(&self.v4, u32::from(v4), u32::from(v4)),
            IpAddr::V6(v6) => meets_ranges(&self.v6, u128::from(v6), u128::from(v6)),
        }
    }

    /// Whether some address of `block` is in one of the blocks, as
    /// [`Cidr::overlaps`] says for any of them: by a binary search too,
    /// as a long `real_ip_from` is checked against a long list at start.
    pub fn meets(&self, block: &Cidr) -> bool {
        match block.range() {
            (IpAddr::V4(first), IpAddr::V4(last)) => {
                meets_ranges(&self.v4, u32::from(first), u32::from(last))
            }
            (first, last) => meets_ranges(&self.v6, bits_of(first), bits_of(last)),
        }
    }
}

/// Sorted by first address, with ranges that overlap or follow one
/// another joined: then at most one range can hold an address, the last
/// that starts at or before it.
fn merged<T: Ord + Copy + num_step::Step>(mut ranges: Vec<(T, T)>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (first, last) in ranges {
        match out.last_mut() {
            Some(prev) if prev.1 >= first || prev.1.next() == Some(first) => {
                prev.1 = prev.1.max(last);
            }
            _ => out.push((first, last)),
        }
    }
    out
}

/// Whether a range of `ranges` (sorted, apart) shares an address with
/// `first..=last`: the last that starts at or before `last` is the only
/// one that can, as those after it start past `last`.
fn meets_ranges<T: Ord + Copy>(ranges: &[(T, T)], first: T, last: T) -> bool {
    let after = ranges.partition_point(|&(start, _)| start <= last);
    after > 0 && ranges[after - 1].1 >= first
}

mod num_step {
    /// The address after this one, if any.
    pub trait Step: Sized {
        fn next(self) -> Option<Self>;
    }

    impl Step for u32 {
        fn next(self) -> Option<u32> {
            self.checked_add(1)
        }
    }

    impl Step for u128 {
        fn next(self) -> Option<u128> {
            self.checked_add(1)
        }
    }
}

impl Deref for CidrList {
    type Target = [Cidr];

    fn deref(&self) -> &[Cidr] {
        &self.blocks
    }
}

impl From<Vec<Cidr>> for CidrList {
    fn from(blocks: Vec<Cidr>) -> CidrList {
        CidrList::new(blocks)
    }
}

impl fmt::Debug for CidrList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.blocks.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(blocks: &[&str]) -> (Vec<Cidr>, CidrList) {
        let blocks: Vec<Cidr> = blocks.iter().map(|b| Cidr::parse(b).unwrap()).collect();
        (blocks.clone(), CidrList::new(blocks))
    }

    /// What a scan of the blocks says, which the index must say too.
    fn scanned(blocks: &[Cidr], ip: IpAddr) -> bool {
        blocks.iter().any(|b| b.contains(ip))
    }

    #[test]
    fn holds_what_a_scan_of_the_blocks_holds() {
        let (blocks, set) = list(&[
            "10.0.0.0/8",
            "10.1.0.0/16",
            "192.0.2.0/25",
            "192.0.2.128/25",
            "198.51.100.7",
            "203.0.113.0/24",
            "0.0.0.0/32",
            "255.255.255.255",
            "2001:db8::/32",
            "2001:db8:1::/48",
            "::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ]);
        let probes = [
            "9.255.255.255",
            "10.0.0.0",
            "10.255.255.255",
            "11.0.0.0",
            "192.0.1.255",
            "192.0.2.0",
            "192.0.2.127",
            "192.0.2.128",
            "192.0.2.255",
            "192.0.3.0",
            "198.51.100.6",
            "198.51.100.7",
            "198.51.100.8",
            "0.0.0.0",
            "0.0.0.1",
            "255.255.255.254",
            "255.255.255.255",
            "::ffff:10.1.2.3",
            "::ffff:11.1.2.3",
            "2001:db7:ffff::1",
            "2001:db8::",
            "2001:db8:ffff:ffff::1",
            "2001:db9::",
            "::",
            "::1",
            "::2",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
        ];
        for probe in probes {
            let ip: IpAddr = probe.parse().unwrap();
            assert_eq!(set.holds(ip), scanned(&blocks, ip), "{probe}");
        }
        // Adjacent blocks are one range; overlapping ones too.
        assert_eq!(set.v4.len(), 6);
    }

    #[test]
    fn families_stay_apart() {
        let (_, v4_everything) = list(&["0.0.0.0/0"]);
        assert!(v4_everything.holds("203.0.113.9".parse().unwrap()));
        assert!(v4_everything.holds("::ffff:203.0.113.9".parse().unwrap()));
        assert!(!v4_everything.holds("2001:db8::1".parse().unwrap()));
        let (_, v6_everything) = list(&["::/0"]);
        assert!(v6_everything.holds("2001:db8::1".parse().unwrap()));
        assert!(!v6_everything.holds("203.0.113.9".parse().unwrap()));
        let (_, empty) = list(&[]);
        assert!(!empty.holds("203.0.113.9".parse().unwrap()));
        assert!(!empty.holds("::".parse().unwrap()));
    }

    #[test]
    fn a_long_list_answers_as_its_scan_does() {
        // Every other /24 of 10.0.0.0/8 from a fixed seed, with hosts in
        // and beside them: the index and a scan must agree on each.
        let mut seed = 0x2545_f491_u32;
        let mut step = || {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            seed
        };
        let written: Vec<String> = (0..2000)
            .map(|_| {
                let net = step() & 0x00ff_ff00 | 0x0a00_0000;
                let prefix = 20 + step() % 13;
                let net = net & (u32::MAX << (32 - prefix));
                format!("{}/{prefix}", std::net::Ipv4Addr::from(net))
            })
            .collect();
        let written: Vec<&str> = written.iter().map(String::as_str).collect();
        let (blocks, set) = list(&written);
        for _ in 0..20_000 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(step() & 0x00ff_ffff | 0x0a00_0000));
            assert_eq!(set.holds(ip), scanned(&blocks, ip), "{ip}");
        }
    }

    /// Blocks of every prefix length of both families, crowded near
    /// each other and the ends of the ranges so that they nest, overlap
    /// and touch; probed at and beside each block's first and last
    /// address, IPv4 ones also as IPv4-mapped IPv6 clients.
    #[test]
    fn any_mix_of_blocks_answers_as_its_scan_does() {
        use std::net::{Ipv4Addr, Ipv6Addr};
        let mut seed = 0x6c07_8965_u64;
        let mut step = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut block = || {
            let v4 = step() % 2 == 0;
            let width = if v4 { 32 } else { 128 };
            let prefix = (step() % (width + 1)) as u32;
            // Near 0, near the top, or in a small crowded middle.
            let high = match step() % 3 {
                0 => 0u128,
                1 => u128::MAX,
                _ => 0x0a00_0000 | (u128::from(step() as u32) << 96),
            };
            let bits = high ^ u128::from(step() % 1024);
            // Bits past the prefix would be refused: the network's.
            let mask = u128::MAX.checked_shl(width as u32 - prefix).unwrap_or(0);
            let network = match v4 {
                true => IpAddr::V4(Ipv4Addr::from((bits & mask) as u32)),
                false => IpAddr::V6(Ipv6Addr::from(bits & mask)),
            };
            Cidr::parse(&format!("{network}/{prefix}")).unwrap()
        };
        for round in 0..300 {
            let blocks: Vec<Cidr> = (0..round % 12).map(|_| block()).collect();
            let others: Vec<Cidr> = (0..8).map(|_| block()).collect();
            let set = CidrList::new(blocks.clone());
            let mut probes: Vec<IpAddr> = Vec::new();
            for block in &blocks {
                let (first, last) = block.range();
                for ip in [first, last] {
                    let bits = bits_of(ip);
                    for near in [bits.wrapping_sub(1), bits, bits.wrapping_add(1)] {
                        probes.push(match ip {
                            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::from(near as u32)),
                            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::from(near)),
                        });
                    }
                }
            }
            probes.extend(
                ["0.0.0.0", "255.255.255.255", "::", "::1"].map(|p| p.parse::<IpAddr>().unwrap()),
            );
            let mapped: Vec<IpAddr> = (probes.iter())
                .filter_map(|ip| match ip {
                    IpAddr::V4(v4) => Some(IpAddr::V6(v4.to_ipv6_mapped())),
                    IpAddr::V6(_) => None,
                })
                .collect();
            for ip in probes.into_iter().chain(mapped) {
                assert_eq!(
                    set.holds(ip),
                    scanned(&blocks, ip),
                    "round {round}: {ip} in {blocks:?}"
                );
            }
            for other in others.iter().chain(&blocks) {
                let overlapped = blocks.iter().any(|b| b.overlaps(other));
                assert_eq!(
                    set.meets(other),
                    overlapped,
                    "round {round}: {other} in {blocks:?}"
                );
            }
        }
    }

    #[test]
    fn adjacent_ipv6_blocks_are_one_range() {
        // Two halves of a /32, and the last address of one block right
        // before the first of the next: each pair is one range, as for
        // IPv4 above, so that a long list stays as short as its addresses.
        let (blocks, set) = list(&[
            "2001:db8::/33",
            "2001:db8:8000::/33",
            "2001:db9::/128",
            "2001:db9::1/128",
        ]);
        assert_eq!(set.v6.len(), 1);
        for probe in ["2001:db8:7fff:ffff::1", "2001:db8:8000::", "2001:db9::1"] {
            let ip: IpAddr = probe.parse().unwrap();
            assert!(set.holds(ip) && scanned(&blocks, ip), "{probe}");
        }
    }

    #[test]
    fn made_from_a_vec_indexes_its_blocks() {
        let set = CidrList::from(vec![Cidr::parse("192.0.2.0/24").unwrap()]);
        assert_eq!(set.len(), 1);
        assert!(set.holds("192.0.2.9".parse().unwrap()));
        assert!(!set.holds("192.0.3.9".parse().unwrap()));
    }

    #[test]
    fn shows_and_counts_the_blocks_as_written() {
        let (_, set) = list(&["10.0.0.0/8", "10.1.0.0/16", "::1"]);
        assert_eq!(set.len(), 3);
        assert_eq!(
            format!("{set:?}"),
            "[Cidr { network: 10.0.0.0, prefix: 8 }, \
             Cidr { network: 10.1.0.0, prefix: 16 }, Cidr { network: ::1, prefix: 128 }]"
        );
    }
}
