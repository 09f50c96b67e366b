//! A UDP socket bound to a wildcard address (`0.0.0.0`, `::`) takes the
//! datagrams sent to any of the host's addresses, and its answers must
//! leave from the address each was sent to: a client (a DNS resolver)
//! drops an answer from another address as a stranger's, and the one the
//! kernel would choose is its route's, not the question's (a host with
//! two addresses; `127.0.0.53` beside `127.0.0.1`). The kernel tells each
//! datagram's destination (`IP_PKTINFO`, `IPV6_RECVPKTINFO`) and takes a
//! datagram's source the same way, as nginx has it for a wildcard
//! `listen ... udp`.

use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::ptr;

/// Room for one control message of either family's address: `u64`s, so
/// that it is aligned as a `cmsghdr` must be.
type Control = [u64; 8];

/// Asks the kernel to tell the destination of each datagram `socket`
/// receives (on `::`, an IPv4 one's as `::ffff:a.b.c.d`).
pub fn tell_destinations(socket: &UdpSocket) -> io::Result<()> {
    let (level, option) = match socket.local_addr()? {
        SocketAddr::V4(_) => (libc::IPPROTO_IP, libc::IP_PKTINFO),
        SocketAddr::V6(_) => (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO),
    };
    let on: libc::c_int = 1;
    // SAFETY: the option's value is a c_int, passed with its size; the
    // descriptor is the socket's, open for the call.
    let set = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            level,
            option,
            ptr::from_ref(&on).cast(),
            size_of_val(&on) as libc::socklen_t,
        )
    };
    match set {
        0 => Ok(()),
        _ => Err(io::Error::last_os_error()),
    }
}

/// One datagram, read without waiting into `buf`: its length, its
/// source, and the address it was sent to when the kernel told it.
pub fn receive(
    socket: &UdpSocket,
    buf: &mut [u8],
) -> io::Result<(usize, SocketAddr, Option<IpAddr>)> {
    // SAFETY: all-zero is a valid value of these plain C structures.
    let (mut source, mut msg): (libc::sockaddr_storage, libc::msghdr) = unsafe { zeroed() };
    let mut control: Control = [0; 8];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    msg.msg_name = ptr::from_mut(&mut source).cast();
    msg.msg_namelen = size_of_val(&source) as libc::socklen_t;
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control) as _;
    let length = loop {
        // SAFETY: every pointer in `msg` is to a live buffer of the length
        // given beside it; the descriptor is the socket's.
        let n = unsafe { libc::recvmsg(socket.as_raw_fd(), &mut msg, libc::MSG_DONTWAIT) };
        if let Ok(n) = usize::try_from(n) {
            break n;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    };
    // SAFETY: recvmsg wrote a source address of `msg_namelen` bytes.
    let source = unsafe { socket2::SockAddr::new(source, msg.msg_namelen) };
    let source = (source.as_socket()).ok_or_else(|| io::Error::other("not an IP source"))?;
    Ok((length, source, destination_of(&msg)))
}

/// The destination address in `msg`'s control messages, received.
fn destination_of(msg: &libc::msghdr) -> Option<IpAddr> {
    // SAFETY: `msg` was filled by recvmsg: its control buffer holds
    // `msg_controllen` bytes of whole control messages, which the macros
    // walk within; each one's data is read unaligned, as its type's size.
    unsafe {
        let mut cmsg = libc::CMSG_FIRSTHDR(msg);
        while !cmsg.is_null() {
            let data = libc::CMSG_DATA(cmsg);
            match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                    let info: libc::in_pktinfo = ptr::read_unaligned(data.cast());
                    return Some(IpAddr::V4(local_v4(&info)));
                }
                (libc::IPPROTO_IPV6, libc::IPV6_PKTINFO) => {
                    let info: libc::in6_pktinfo = ptr::read_unaligned(data.cast());
                    return unicast_v6(Ipv6Addr::from(info.ipi6_addr.s6_addr)).map(IpAddr::V6);
                }
                _ => cmsg = libc::CMSG_NXTHDR(msg, cmsg),
            }
        }
    }
    None
}

/// The local address an IPv4 datagram came to, for its answer to leave
/// from: the kernel's `ipi_spec_dst`, which is the header's destination
/// for a datagram to one of the host's addresses, and for a broadcast or
/// multicast one, which no answer may come from, the address of the
/// interface it came in by. (A subnet's broadcast address, such as
/// 127.255.255.255, is not 255.255.255.255: no test of the header's
/// address alone tells it.)
fn local_v4(info: &libc::in_pktinfo) -> Ipv4Addr {
    Ipv4Addr::from(u32::from_be(info.ipi_spec_dst.s_addr))
}

/// The address an IPv6 datagram (or an IPv4 one, mapped, on `::`) came
/// to, for its answer to leave from: none for a multicast or broadcast
/// one, which no answer may come from (the kernel then picks its route's
/// address). IPv6's pktinfo tells no interface address to go by; an
/// IPv4 subnet's broadcast on `::` is not told apart (bind the stream to
/// `0.0.0.0` for broadcasts).
fn unicast_v6(to: Ipv6Addr) -> Option<Ipv6Addr> {
    let other = match to.to_ipv4_mapped() {
        Some(v4) => v4.is_broadcast() || v4.is_multicast(),
        None => to.is_multicast(),
    };
    (!other).then_some(to)
}

/// Sends `datagram` to `to` from `socket`, without waiting, from the
/// address `from` when given (one `socket` is bound to, on a wildcard).
pub fn send(
    socket: &UdpSocket,
    datagram: &[u8],
    from: Option<IpAddr>,
    to: SocketAddr,
) -> io::Result<usize> {
    match from {
        None => socket.send_to(datagram, to),
        Some(IpAddr::V4(from)) => {
            let info = libc::in_pktinfo {
                ipi_ifindex: 0,
                ipi_spec_dst: libc::in_addr {
                    s_addr: u32::from(from).to_be(),
                },
                ipi_addr: libc::in_addr { s_addr: 0 },
            };
            send_with(
                socket,
                datagram,
                to,
                libc::IPPROTO_IP,
                libc::IP_PKTINFO,
                info,
            )
        }
        Some(IpAddr::V6(from)) => {
            let info = libc::in6_pktinfo {
                ipi6_addr: libc::in6_addr {
                    s6_addr: from.octets(),
                },
                ipi6_ifindex: 0,
            };
            send_with(
                socket,
                datagram,
                to,
                libc::IPPROTO_IPV6,
                libc::IPV6_PKTINFO,
                info,
            )
        }
    }
}

/// `sendmsg` of `datagram` to `to` with one control message, `info`, of
/// `level` and `kind`.
fn send_with<T: Copy>(
    socket: &UdpSocket,
    datagram: &[u8],
    to: SocketAddr,
    level: libc::c_int,
    kind: libc::c_int,
    info: T,
) -> io::Result<usize> {
    let to = socket2::SockAddr::from(to);
    let mut control: Control = [0; 8];
    let data_length = size_of::<T>() as libc::c_uint;
    // SAFETY: all-zero is a valid msghdr.
    let mut msg: libc::msghdr = unsafe { zeroed() };
    let mut iov = libc::iovec {
        iov_base: datagram.as_ptr().cast_mut().cast(),
        iov_len: datagram.len(),
    };
    msg.msg_name = to.as_ptr().cast_mut().cast();
    msg.msg_namelen = to.len();
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    // SAFETY: CMSG_SPACE only computes a size, which fits `control` for
    // both families' pktinfo (32 and 40 bytes of 64).
    msg.msg_controllen = unsafe { libc::CMSG_SPACE(data_length) } as _;
    debug_assert!(msg.msg_controllen <= size_of_val(&control));
    // SAFETY: the control buffer is aligned and holds `msg_controllen`
    // bytes, room for the one message written in it; sendmsg only reads
    // `msg`'s buffers, each live and of the length given beside it.
    let sent = unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = level;
        (*cmsg).cmsg_type = kind;
        (*cmsg).cmsg_len = libc::CMSG_LEN(data_length) as _;
        ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast(), info);
        libc::sendmsg(socket.as_raw_fd(), &msg, libc::MSG_DONTWAIT)
    };
    usize::try_from(sent).map_err(|_| io::Error::last_os_error())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// A socket on `wildcard` told each datagram's destination, and a
    /// client's on 127.0.0.1, which sends to 127.0.0.2 (on Linux the
    /// whole of 127/8 is the host's).
    fn answered_from(
        wildcard: &str,
        to: impl Fn(u16) -> SocketAddr,
    ) -> (SocketAddr, Option<IpAddr>) {
        let server = UdpSocket::bind(wildcard).unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = server.local_addr().unwrap().port();
        answered(&server, &client, to(port))
    }

    /// `client`'s question, sent `to` (an address of `server`'s), read
    /// by `server` told its destination, and answered from there: where
    /// the answer came from, and the destination told.
    fn answered(
        server: &UdpSocket,
        client: &UdpSocket,
        to: SocketAddr,
    ) -> (SocketAddr, Option<IpAddr>) {
        tell_destinations(server).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        client.send_to(b"question", to).unwrap();
        let mut buf = [0u8; 64];
        // Waits for it (the read timeout), then reads it with the call.
        server.peek_from(&mut buf).unwrap();
        let (n, source, destination) = receive(server, &mut buf).unwrap();
        assert_eq!(&buf[..n], b"question");
        send(server, b"answer", destination, source).unwrap();
        let (n, from) = client.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"answer");
        (from, destination)
    }

    #[test]
    fn an_answer_leaves_from_the_address_its_question_came_to() {
        let to = |port| SocketAddr::from(([127, 0, 0, 2], port));
        let (from, destination) = answered_from("0.0.0.0:0", to);
        assert_eq!(destination, Some("127.0.0.2".parse().unwrap()));
        assert_eq!(from.ip(), "127.0.0.2".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn on_the_ipv6_wildcard_an_ipv4_question_is_answered_from_its_address() {
        let Ok(probe) = UdpSocket::bind("[::]:0") else {
            eprintln!("no IPv6 here: skipped");
            return;
        };
        drop(probe);
        let to = |port| SocketAddr::from(([127, 0, 0, 3], port));
        // std binds `::` as the system says; Linux takes IPv4 there too
        // unless bindv6only is set.
        let server_takes_v4 =
            std::fs::read_to_string("/proc/sys/net/ipv6/bindv6only").is_ok_and(|v| v.trim() == "0");
        if !server_takes_v4 {
            eprintln!("bindv6only: skipped");
            return;
        }
        let (from, destination) = answered_from("[::]:0", to);
        assert_eq!(destination, Some("::ffff:127.0.0.3".parse().unwrap()));
        assert_eq!(from.ip(), "127.0.0.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn on_the_ipv6_wildcard_a_multicast_or_broadcast_destination_is_none_to_answer_from() {
        for (to, from) in [
            ("ff02::fb", None),
            ("::ffff:255.255.255.255", None),
            ("::ffff:239.255.80.1", None),
            ("::ffff:127.0.0.2", Some("::ffff:127.0.0.2")),
            ("2001:db8::5", Some("2001:db8::5")),
        ] {
            let from = from.map(|f: &str| f.parse().unwrap());
            assert_eq!(unicast_v6(to.parse().unwrap()), from, "{to}");
        }
    }

    #[test]
    fn without_being_asked_the_kernel_tells_no_destination() {
        let server = UdpSocket::bind("127.0.0.1:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.send_to(b"q", server.local_addr().unwrap()).unwrap();
        server
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        server.peek_from(&mut [0u8; 1]).unwrap();
        let mut buf = [0u8; 8];
        let (n, source, destination) = receive(&server, &mut buf).unwrap();
        assert_eq!(
            (n, source, destination),
            (1, client.local_addr().unwrap(), None)
        );
    }

    /// A question broadcast to the loopback's subnet (127.255.255.255, a
    /// broadcast address other than 255.255.255.255) is answered from the
    /// address of the interface it came in by: no datagram may leave from
    /// a broadcast address.
    #[test]
    fn a_question_broadcast_to_a_subnet_is_answered_from_its_interface_s_address() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        client.set_broadcast(true).unwrap();
        let port = server.local_addr().unwrap().port();
        let to = SocketAddr::from(([127, 255, 255, 255], port));
        let (from, destination) = answered(&server, &client, to);
        let loopback = IpAddr::from(Ipv4Addr::LOCALHOST);
        assert_eq!((from.ip(), destination), (loopback, Some(loopback)));
    }

    /// A question sent to a multicast group the socket joined on the
    /// loopback is answered from the loopback's address, not the group's.
    #[test]
    fn a_question_to_a_multicast_group_is_answered_from_its_interface_s_address() {
        let server = UdpSocket::bind("0.0.0.0:0").unwrap();
        let group = Ipv4Addr::new(239, 255, 80, 1);
        server
            .join_multicast_v4(&group, &Ipv4Addr::LOCALHOST)
            .unwrap();
        let client = UdpSocket::bind("127.0.0.1:0").unwrap();
        (socket2::SockRef::from(&client))
            .set_multicast_if_v4(&Ipv4Addr::LOCALHOST)
            .unwrap();
        let to = SocketAddr::from((group, server.local_addr().unwrap().port()));
        let (from, destination) = answered(&server, &client, to);
        let loopback = IpAddr::from(Ipv4Addr::LOCALHOST);
        assert_eq!((from.ip(), destination), (loopback, Some(loopback)));
    }
}
