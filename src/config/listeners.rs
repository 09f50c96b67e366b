//! Whether an address reaches one of this proxy's own listeners: a
//! target there would loop, a second listener there could not be bound.

use super::Target;
use std::net::{IpAddr, SocketAddr};

/// More than a host has addresses to serve on, in any configuration seen.
const MAX_LISTEN: usize = 16;

/// `listen`: the addresses plain HTTP is served on besides `bind:port`,
/// each `PORT` (on `bind`), `ADDR:PORT` or `[V6]:PORT`.
pub(super) fn parse_listen(v: &str, bind: IpAddr) -> Result<Vec<SocketAddr>, String> {
    let mut addrs = Vec::new();
    for at in v.split(',').map(str::trim).filter(|at| !at.is_empty()) {
        let addr = super::streams::listen_at(at, bind)?;
        if addrs.len() == MAX_LISTEN {
            return Err(format!("more than {MAX_LISTEN} addresses"));
        }
        if addr.port() != 0 && addrs.contains(&addr) {
            return Err(format!("{addr} is listed twice"));
        }
        addrs.push(addr);
    }
    Ok(addrs)
}

/// Whether a listener at `a` could not be bound beside one at `b` (one
/// address, or a wildcard of the other's family, at one port; port 0
/// takes a free port each, never another's).
pub(super) fn clashes(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() != 0 && a.port() == b.port() && listeners_overlap(a.ip(), b.ip())
}

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
    fn listen_takes_ports_on_bind_and_addresses_of_either_family() {
        let c = build(
            "targets = 127.0.0.1:1\nbind = 10.0.0.1\nport = 80\n\
             listen = 8080, 192.168.1.5:80 , [::1]:81\n",
        )
        .unwrap();
        let expected: Vec<SocketAddr> = ["10.0.0.1:8080", "192.168.1.5:80", "[::1]:81"]
            .map(|a| a.parse().unwrap())
            .into();
        assert_eq!(c.listen, expected);
        assert_eq!(c.http_addrs()[1..], expected);
        assert!(build("targets = 127.0.0.1:1\n").unwrap().listen.is_empty());
        // Port 0 takes a free port each time: never the same twice.
        let c = build("targets = 127.0.0.1:1\nlisten = 127.0.0.1:0, 127.0.0.1:0\n").unwrap();
        assert_eq!(c.listen.len(), 2);

        let all = (1..=MAX_LISTEN + 1).map(|p| format!("{}", 9000 + p));
        let too_many = all.collect::<Vec<_>>().join(", ");
        for (value, says) in [
            ("host:80", "host:80: expected a port"),
            ("70000", "70000: expected a port"),
            ("8081, 8081", "0.0.0.0:8081 is listed twice"),
            (too_many.as_str(), "more than 16 addresses"),
        ] {
            let e = build(&format!("targets = 127.0.0.1:1\nlisten = {value}\n")).unwrap_err();
            assert_eq!(e.place, "proxy.conf:2", "{value}");
            assert!(
                e.message.starts_with("listen: ") && e.message.contains(says),
                "{e}"
            );
        }
    }

    #[test]
    fn a_listen_address_may_not_take_another_listeners_connections() {
        let base = "targets = 127.0.0.1:1\nport = 9000\n";
        for (more, says) in [
            (
                "listen = 9000",
                "0.0.0.0:9000 takes the connections of 0.0.0.0:9000 (`port`)",
            ),
            ("listen = [::]:9000", "(`port`)"),
            (
                "admin_port = 9001\nlisten = 127.0.0.1:9001",
                "(`admin_port`)",
            ),
            (
                "listen = 127.0.0.1:9002, 0.0.0.0:9002",
                "of 127.0.0.1:9002 (`listen`)",
            ),
        ] {
            let e = build(&format!("{base}{more}\n")).unwrap_err();
            assert!(
                e.message.starts_with("listen: ") && e.message.contains(says),
                "{e}"
            );
        }
        // Another address at one port, or another port, is fine.
        let c = build(&format!(
            "{base}bind = 127.0.0.1\nlisten = 127.0.0.2:9000, 9001\n"
        ));
        assert_eq!(c.unwrap().listen.len(), 2);
        // A stream may not take one of them either.
        let stream = "pool.db = 127.0.0.1:5432\nstream.pg = db listen=9003\nlisten = 9003\n";
        let e = build(&format!("{base}{stream}")).unwrap_err();
        assert!(e.message.contains("`listen`"), "{e}");
    }

    #[test]
    fn a_target_at_a_listen_address_would_loop() {
        let e =
            build("port = 9000\nlisten = 127.0.0.1:9005\ntargets = 127.0.0.1:9005\n").unwrap_err();
        assert!(
            e.message
                .contains("127.0.0.1:9005 is this proxy's own address (127.0.0.1:9005)"),
            "{e}"
        );
        // A pool's too.
        let text = "port = 9000\nlisten = 9006\ntargets = 127.0.0.1:1\npool.p = 127.0.0.1:9006\n";
        assert!(build(text).unwrap_err().message.contains("own address"));
    }

    #[test]
    fn a_unix_target_is_never_the_proxy_itself() {
        // Whatever its path says, it is not the TCP listener.
        let c = build("port = 9000\ntargets = unix:127.0.0.1:9000, unix:/run/9000.sock\n").unwrap();
        assert_eq!(c.targets.len(), 2);
        assert_eq!(target_at(c.listen_addr(), &c.targets), None);
    }
}
