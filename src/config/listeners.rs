//! Whether an address reaches one of this proxy's own listeners: a
//! target there would loop, a second listener there could not be bound.

use super::Target;
use std::net::{IpAddr, SocketAddr};

/// The target that is the listener at `listen` (this proxy's own), if
/// any: a request forwarded there comes back, again and again, until every
/// connection slot is taken.
pub fn target_at(listen: SocketAddr, targets: &[Target]) -> Option<&Target> {
    // A Unix socket is never the TCP listener.
    (targets.iter()).find(|t| t.addr.tcp().is_some_and(|addr| is_listener(listen, addr)))
}

/// Whether listeners on `a` and `b` at one port take the same
/// connections (the second could not be bound): one address, or a
/// wildcard of the other's family (`::` takes IPv4 too, see `bind`).
pub(super) fn listeners_overlap(a: IpAddr, b: IpAddr) -> bool {
    let (a, b) = (a.to_canonical(), b.to_canonical());
    let covers = |w: IpAddr, x: IpAddr| w.is_unspecified() && (w.is_ipv6() || x.is_ipv4());
    a == b || covers(a, b) || covers(b, a)
}

/// Whether connecting to `addr` reaches the listener at `listen`.
pub fn is_listener(listen: SocketAddr, addr: SocketAddr) -> bool {
    let bind = listen.ip().to_canonical();
    let local = bind.is_loopback() || bind.is_unspecified();
    let ip = addr.ip().to_canonical();
    // An IPv4 listener is never reached over IPv6, nor one on an IPv6
    // address over IPv4; `::` takes both (see `bind`).
    let reached =
        bind.is_ipv4() == ip.is_ipv4() || bind == IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);
    addr.port() == listen.port()
        && reached
        && (ip == bind
            || (bind.is_unspecified() && ip.is_loopback())
            // Connecting to 0.0.0.0 or :: reaches this host.
            || (ip.is_unspecified() && local))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::build;

    #[test]
    fn the_admin_listener_cannot_share_the_proxy_port() {
        let e = build("targets = 127.0.0.1:1\nport = 9000\nadmin_port = 9000\n").unwrap_err();
        assert_eq!(e.place, "proxy.conf:3");
        // Distinct addresses on one port are fine.
        let c = build("targets = 127.0.0.1:1\nbind = 127.0.0.2\nport = 9000\nadmin_port = 9000\n")
            .unwrap();
        assert_eq!(c.admin_port, Some(9000));
        // A wildcard takes its family's addresses (`::` both families).
        for (bind, admin, overlap) in [
            ("0.0.0.0", "127.0.0.1", true),
            ("::", "127.0.0.1", true),
            ("0.0.0.0", "::", true),
            ("::1", "::", true),
            ("::ffff:127.0.0.1", "127.0.0.1", true),
            ("0.0.0.0", "::1", false),
            ("::1", "0.0.0.0", false),
            ("::1", "127.0.0.1", false),
        ] {
            let text = format!(
                "targets = 127.0.0.1:1\nbind = {bind}\nport = 9000\n\
                 admin_bind = {admin}\nadmin_port = 9000\n"
            );
            assert_eq!(build(&text).is_err(), overlap, "{bind} and {admin}");
        }
    }

    #[test]
    fn a_unix_target_is_never_the_proxy_itself() {
        // Whatever its path says, it is not the TCP listener.
        let c = build("port = 9000\ntargets = unix:127.0.0.1:9000, unix:/run/9000.sock\n").unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(target_at(c.listen_addr(), &c.targets), None);
    }
}
