//! TCP keepalive probes on a stream's sockets (`so_keepalive`, nginx's
//! `listen ... so_keepalive=` and `proxy_socket_keepalive`, HAProxy's
//! `option tcpka`): a peer that vanished without a word (a host switched
//! off, a NAT or firewall that forgot the connection) is found out by the
//! kernel within minutes, where a connection left idle for hours would
//! otherwise hold its thread until `tunnel_timeout`; and the probes keep
//! such middleboxes from forgetting a quiet connection at all.

use socket2::{SockRef, TcpKeepalive};
use std::os::fd::AsFd;
use std::time::Duration;

/// The most Linux takes for the idle time and the interval, in seconds.
const MAX_SECONDS: u64 = 32_767;
/// The most probes Linux sends before it gives up on the peer.
const MAX_PROBES: u32 = 127;

/// `so_keepalive` or `so_keepalive=IDLE:INTERVAL:COUNT`: each part left
/// empty is the system's (on Linux 2 hours, 75 s and 9, from
/// `net.ipv4.tcp_keepalive_*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Keepalive {
    /// How long a connection is quiet before the first probe.
    pub idle: Option<Duration>,
    /// The time between probes unanswered.
    pub interval: Option<Duration>,
    /// How many unanswered probes end the connection.
    pub probes: Option<u32>,
}

impl Keepalive {
    /// `so_keepalive=`'s value, as nginx writes it: `30m::10`,
    /// `60s:10s:5`, `::3`.
    pub fn parse(value: &str) -> Result<Keepalive, String> {
        let parts: Vec<&str> = value.split(':').collect();
        let [idle, interval, probes] = parts[..] else {
            return Err(format!(
                "so_keepalive={}: expected IDLE:INTERVAL:COUNT, each part empty for the \
                 system's (`so_keepalive=30m::10`)",
                value.escape_debug()
            ));
        };
        let probes = match probes {
            "" => None,
            n => match n.parse::<u32>() {
                Ok(n) if (1..=MAX_PROBES).contains(&n) => Some(n),
                _ => {
                    return Err(format!(
                        "so_keepalive: `{}` is not a count of probes from 1 to {MAX_PROBES}",
                        n.escape_debug()
                    ))
                }
            },
        };
        Ok(Keepalive {
            idle: seconds(idle)?,
            interval: seconds(interval)?,
            probes,
        })
    }

    /// Turns the probes on for `socket`, as set.
    pub fn apply(&self, socket: &impl AsFd) -> std::io::Result<()> {
        let mut keepalive = TcpKeepalive::new();
        if let Some(idle) = self.idle {
            keepalive = keepalive.with_time(idle);
        }
        if let Some(interval) = self.interval {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(probes) = self.probes {
            keepalive = keepalive.with_retries(probes);
        }
        SockRef::from(socket).set_tcp_keepalive(&keepalive)
    }
}

/// A part that is a duration of whole seconds within Linux's bounds, or
/// empty.
fn seconds(part: &str) -> Result<Option<Duration>, String> {
    if part.is_empty() {
        return Ok(None);
    }
    let duration = crate::config::parse_duration(part)?;
    let whole = duration.subsec_nanos() == 0;
    match duration.as_secs() {
        1..=MAX_SECONDS if whole => Ok(Some(duration)),
        _ => Err(format!(
            "so_keepalive: `{}` is not whole seconds from 1 s to {MAX_SECONDS} s (9h 6m)",
            part.escape_debug()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn each_part_is_the_system_s_when_left_empty() {
        let minutes = |m: u64| Some(Duration::from_secs(60 * m));
        for (value, idle, interval, probes) in [
            ("::", None, None, None),
            ("30m::10", minutes(30), None, Some(10)),
            (":10s:", None, Some(Duration::from_secs(10)), None),
            ("60:1m:127", minutes(1), minutes(1), Some(127)),
        ] {
            let expected = Keepalive {
                idle,
                interval,
                probes,
            };
            assert_eq!(Keepalive::parse(value), Ok(expected), "{value}");
        }
    }

    #[test]
    fn values_linux_would_refuse_are_refused() {
        for (value, says) in [
            ("", "expected IDLE:INTERVAL:COUNT"),
            ("30m", "expected IDLE:INTERVAL:COUNT"),
            ("1:2:3:4", "expected IDLE:INTERVAL:COUNT"),
            ("0s::", "is not whole seconds"),
            ("1500ms::", "is not whole seconds"),
            ("32768s::", "is not whole seconds"),
            ("::0", "is not a count of probes"),
            ("::128", "is not a count of probes"),
            ("::x", "is not a count of probes"),
            ("soon::", "is not a duration"),
        ] {
            let e = Keepalive::parse(value).unwrap_err();
            assert!(e.contains(says), "{value}: {e}");
        }
        assert!(Keepalive::parse("32767s::").is_ok());
    }

    #[test]
    fn the_probes_are_set_on_the_socket_as_written() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let socket = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let keepalive = Keepalive::parse("45s:7s:4").unwrap();
        keepalive.apply(&socket).unwrap();
        let set = SockRef::from(&socket);
        assert!(set.keepalive().unwrap());
        assert_eq!(set.keepalive_time().unwrap(), Duration::from_secs(45));
        assert_eq!(set.keepalive_interval().unwrap(), Duration::from_secs(7));
        assert_eq!(set.keepalive_retries().unwrap(), 4);
        // Parts left empty leave the system's.
        let other = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let system = SockRef::from(&other).keepalive_time().unwrap();
        Keepalive::parse("::2").unwrap().apply(&other).unwrap();
        let set = SockRef::from(&other);
        assert!(set.keepalive().unwrap());
        assert_eq!(set.keepalive_time().unwrap(), system);
        assert_eq!(set.keepalive_retries().unwrap(), 2);
    }
}
