//! Which clients may use the proxy (`allow_from`, `deny_from`), after
//! nginx's `allow` and `deny`.
//!
//! nginx reads its rules in order and the first that matches decides; two
//! keys have no order between them, so this is fixed instead: `deny_from`
//! is read first, then `allow_from`, then everyone else is allowed if
//! `allow_from` is empty and refused if not. In nginx's words that is
//! `deny` for each `deny_from` block, `allow` for each `allow_from` block,
//! then `deny all` when there was one. So a block can be carved out of an
//! allowed one (`allow_from = 10.0.0.0/8`, `deny_from = 10.0.0.5`), and
//! not the other way round.
//!
//! The address checked is the client's as the access log shows it (after
//! `proxy_protocol` and `real_ip_from`), as nginx's access module sees
//! `$remote_addr` after its realip module.

use crate::cidr_set::CidrList;
use std::net::IpAddr;

/// Whether `client` may send requests. Two binary searches, no
/// allocation: it runs per request, and a list may be a country's blocks.
pub fn admits(client: IpAddr, allow: &CidrList, deny: &CidrList) -> bool {
    !deny.holds(client) && (allow.is_empty() || allow.holds(client))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::realip::Cidr;

    fn blocks(list: &[&str]) -> CidrList {
        let list: Vec<Cidr> = list.iter().map(|b| Cidr::parse(b).unwrap()).collect();
        list.into()
    }

    fn admitted(client: &str, allow: &[&str], deny: &[&str]) -> bool {
        admits(client.parse().unwrap(), &blocks(allow), &blocks(deny))
    }

    #[test]
    fn empty_lists_admit_everyone() {
        assert!(admitted("192.0.2.1", &[], &[]));
        assert!(admitted("2001:db8::1", &[], &[]));
    }

    #[test]
    fn a_non_empty_allow_list_admits_only_its_blocks() {
        let allow = ["10.0.0.0/8", "2001:db8::/32"];
        assert!(admitted("10.9.8.7", &allow, &[]));
        assert!(admitted("2001:db8::5", &allow, &[]));
        assert!(!admitted("192.0.2.1", &allow, &[]));
        assert!(!admitted("::1", &allow, &[]));
        // An IPv4 client on a dual-stack socket arrives IPv4-mapped.
        assert!(admitted("::ffff:10.1.2.3", &allow, &[]));
    }

    #[test]
    fn deny_wins_over_allow() {
        let allow = ["10.0.0.0/8"];
        assert!(!admitted("10.0.0.5", &allow, &["10.0.0.5"]));
        assert!(admitted("10.0.0.6", &allow, &["10.0.0.5"]));
        // Denied everywhere, whatever is allowed.
        assert!(!admitted("10.0.0.6", &allow, &["0.0.0.0/0"]));
        assert!(!admitted("192.0.2.1", &[], &["192.0.2.0/24"]));
        assert!(admitted("192.0.3.1", &[], &["192.0.2.0/24"]));
    }
}
