//! The listening sockets: how they are bound (for a restart, or a new
//! process beside the running one), that they listen only once the server
//! can serve, and the options every accepted socket inherits.

use super::workers::WORKER_IDLE;
use crate::proxy::{self, Inherited};
use std::io;
use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::time::Duration;

/// Connections the kernel completes and queues before they are accepted:
/// nginx's default (std's `TcpListener::bind` takes 128, which a burst of
/// new connections overflows into SYN retransmissions, a second each).
/// The kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 511;

/// Options set once on the listener instead of three system calls per
/// connection: Linux copies TCP_NODELAY and the socket timeouts to every
/// socket `accept` returns. Elsewhere the connection sets them itself.
/// The receive timeout also bounds `accept` itself, after which an idle
/// worker may retire: it is at most WORKER_IDLE, or a `timeout` of minutes
/// would keep idle threads as long (a connection's reads set the timeout
/// they need before they wait, see `ReadTimeout`). With `defer`,
/// connections are accepted once their first bytes have come (see
/// [`defer_accept`]).
pub(super) fn set_inherited_options(
    listener: &TcpListener,
    timeout: Duration,
    defer: bool,
) -> Inherited {
    let read_timeout = timeout.min(WORKER_IDLE);
    let socket = socket2::SockRef::from(listener);
    let set = socket
        .set_nodelay(true)
        .and_then(|()| socket.set_read_timeout(Some(read_timeout)))
        .and_then(|()| socket.set_write_timeout(Some(timeout)));
    if let Err(e) = set {
        log::warn!("cannot set socket options on the listener: {e}");
    }
    let deferred = defer
        && defer_accept(listener)
            .inspect_err(|e| log::warn!("defer_accept: {e}; connections are accepted at once"))
            .is_ok();
    Inherited {
        timeout,
        read_timeout,
        deferred,
        // Known since it was bound: the call cannot fail on a listening
        // socket. As `$server_addr` writes it: `bind = ::ffff:127.0.0.1`
        // is 127.0.0.1, and `::ffff:0.0.0.0` a wildcard.
        addr: (listener.local_addr())
            .map(proxy::canonical)
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0))),
    }
}

/// Binds `addr` as `TcpListener::bind` does (with SO_REUSEADDR, so that a
/// restart is not refused while connections of the last run linger in
/// TIME_WAIT), and with SO_REUSEPORT when asked: a new process can then
/// listen beside a running one, and the kernel spreads new connections
/// over both until the old one is stopped. Then it listens only once it
/// can serve (see [`start_listening`]): a process that joined the group
/// while it loaded its snapshot would be handed connections it could not
/// answer for that long, while the running one could. Without it, it
/// listens at once: a second process on the port is refused here, not
/// once both have loaded their snapshots.
pub(super) fn bind(addr: SocketAddr, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = bound(addr, socket2::Type::STREAM, reuse_port)?;
    if !reuse_port {
        socket.listen(LISTEN_BACKLOG)?;
    }
    Ok(socket.into())
}

/// A `udp` stream's socket, bound as [`bind`] binds a listener.
pub(super) fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    Ok(bound(addr, socket2::Type::DGRAM, reuse_port)?.into())
}

/// A socket of `kind` bound to `addr`, IPv4 taken too on `::`, with
/// `SO_REUSEPORT` under `reuse_port`.
fn bound(addr: SocketAddr, kind: socket2::Type, reuse_port: bool) -> io::Result<socket2::Socket> {
    use socket2::{Domain, Socket};
    let socket = Socket::new(Domain::for_address(addr), kind, None)?;
    // `bind = ::` takes IPv4 too (README), whatever the system's default
    // is (Linux's net.ipv6.bindv6only, on in some distributions and on
    // the BSDs); `::ffff:127.0.0.1` can be bound only so.
    if addr.is_ipv6() {
        socket.set_only_v6(false)?;
    }
    // For datagrams SO_REUSEADDR would let a second process bind the
    // port beside this one, unrefused, and take its datagrams.
    if kind == socket2::Type::STREAM {
        socket.set_reuse_address(true)?;
    }
    if reuse_port {
        #[cfg(unix)]
        socket.set_reuse_port(true)?;
        #[cfg(not(unix))]
        return Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "reuse_port: no SO_REUSEPORT here",
        ));
    }
    socket.bind(&addr.into())?;
    Ok(socket)
}

/// Starts taking connections on a listener [`bind`] made (again, and
/// harmlessly, on one already listening: one a test bound).
pub(super) fn start_listening(listener: &TcpListener) -> io::Result<()> {
    socket2::SockRef::from(listener).listen(LISTEN_BACKLOG)
}

/// Has the kernel hold a new connection until its first bytes arrive
/// (TCP_DEFER_ACCEPT; Apache's default `AcceptFilter http data` on Linux,
/// nginx's `listen ... deferred`, HAProxy's `defer-accept`). A thread per
/// connection gains most from it: the worker that accepts finds the
/// request there, instead of sleeping again at once to wait for it. A
/// client that says nothing is passed on after a second anyway (the
/// kernel's first SYN-ACK retransmission), and the header timeout runs
/// from then.
fn defer_accept(listener: &TcpListener) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let seconds: libc::c_int = 1;
        // SAFETY: the descriptor is the listener's, open for the call; the
        // option value is a c_int we own, passed with its size.
        let done = unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_DEFER_ACCEPT,
                (&seconds as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if done == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = listener;
        Err(io::Error::new(io::ErrorKind::Unsupported, "Linux only"))
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;
    use std::net::TcpStream;
    use std::time::Instant;

    #[test]
    fn accepted_sockets_inherit_the_listener_options() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        set_inherited_options(&listener, Duration::from_secs(7), false);
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap());
        let timeout = accepted.read_timeout().unwrap().unwrap();
        assert!(timeout >= Duration::from_secs(7) && timeout < Duration::from_secs(8));
        assert!(accepted.write_timeout().unwrap().is_some());
    }

    #[test]
    fn a_connection_to_a_wildcard_listener_is_told_the_address_it_reached() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let inherited = set_inherited_options(&listener, Duration::from_secs(7), false);
        let port = listener.local_addr().unwrap().port();
        assert_eq!(inherited.addr, SocketAddr::from(([127, 0, 0, 1], port)));
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        // Bound to an address: that one, with no system call.
        let elsewhere = Inherited {
            addr: SocketAddr::from(([192, 0, 2, 1], 80)),
            ..inherited
        };
        assert_eq!(elsewhere.accepted_by(&accepted).addr, elsewhere.addr);
        // Bound to a wildcard (`bind = 0.0.0.0` or `::`): the socket's own.
        for wildcard in ["0.0.0.0", "::"] {
            let any = Inherited {
                addr: SocketAddr::new(wildcard.parse().unwrap(), port),
                ..inherited
            };
            let reached = any.accepted_by(&accepted).addr;
            assert_eq!(reached, SocketAddr::from(([127, 0, 0, 1], port)));
        }
        // Bound to an IPv4 address written as IPv6 (where the system has
        // IPv6): written as IPv4, as `$remote_addr` is.
        if let Ok(mapped) = TcpListener::bind("[::ffff:127.0.0.1]:0") {
            let inherited = set_inherited_options(&mapped, Duration::from_secs(7), false);
            let port = mapped.local_addr().unwrap().port();
            assert_eq!(inherited.addr, SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }

    #[test]
    fn a_long_connection_timeout_bounds_accept_by_the_worker_idle_time_only() {
        // The send timeout is the connection's own from the start (no
        // system call per connection to set it); the receive timeout, which
        // bounds `accept`, is cut to WORKER_IDLE.
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let long = WORKER_IDLE * 5;
        let inherited = set_inherited_options(&listener, long, false);
        assert_eq!(
            (inherited.timeout, inherited.read_timeout),
            (long, WORKER_IDLE)
        );
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        let within = |t: Duration, of: Duration| t <= of && t + Duration::from_secs(1) > of;
        assert!(within(
            accepted.read_timeout().unwrap().unwrap(),
            WORKER_IDLE
        ));
        assert!(within(accepted.write_timeout().unwrap().unwrap(), long));
    }

    #[test]
    fn without_reuse_port_a_second_process_is_refused_at_bind() {
        let first = bind(SocketAddr::from(([127, 0, 0, 1], 0)), false).unwrap();
        let addr = first.local_addr().unwrap();
        assert!(bind(addr, false).is_err(), "a second listener on {addr}");
    }

    #[test]
    fn a_socket_bound_beside_a_listening_one_takes_no_connection_until_it_listens() {
        // A new process binds the running one's port (SO_REUSEPORT) as it
        // starts, and listens only once it can serve: until then the
        // kernel hands every connection to the running one.
        let running = bind(SocketAddr::from(([127, 0, 0, 1], 0)), true).unwrap();
        start_listening(&running).unwrap();
        let addr = running.local_addr().unwrap();
        let starting = bind(addr, true).unwrap();
        running.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        for _ in 0..32 {
            let _client = std::net::TcpStream::connect(addr).unwrap();
            let accepted = loop {
                match running.accept() {
                    Ok(_) => break true,
                    Err(_) if Instant::now() < deadline => std::thread::yield_now(),
                    Err(_) => break false,
                }
            };
            assert!(
                accepted,
                "a connection went to the socket not listening yet"
            );
        }
        // Listening, it takes its share.
        start_listening(&starting).unwrap();
        starting.set_nonblocking(true).unwrap();
        let shared = (0..64).any(|_| {
            let _client = std::net::TcpStream::connect(addr).unwrap();
            starting.accept().is_ok()
        });
        assert!(shared);
    }
}
