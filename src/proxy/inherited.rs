//! What an accepted socket comes with from its listener ([`Inherited`]).

use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// What every accepted socket comes with from the listener.
#[derive(Clone, Copy, Debug)]
pub struct Inherited {
    /// Its send timeout: `connection_timeout` as the server started.
    pub timeout: Duration,
    /// Its receive timeout, which may be shorter (see
    /// `set_inherited_options`).
    pub read_timeout: Duration,
    /// It was accepted only once its first bytes had come (TCP_DEFER_ACCEPT).
    pub deferred: bool,
    /// The address it reached (`$server_addr`, `$server_port`): the
    /// listener's, until [`Inherited::accepted_by`] names the one a
    /// wildcard listener's connection reached.
    pub addr: SocketAddr,
}

impl Inherited {
    /// What `tcp`, just accepted, inherits: on a listener bound to a
    /// wildcard address, the address it reached (a system call on every
    /// such connection, where nginx makes it only for a request that
    /// names `$server_addr`).
    pub fn accepted_by(self, tcp: &TcpStream) -> Inherited {
        if !self.addr.ip().is_unspecified() {
            return self;
        }
        match tcp.local_addr() {
            Ok(local) => Inherited {
                addr: canonical(local),
                ..self
            },
            Err(_) => self,
        }
    }
}

/// `addr` with an IPv4 address a dual-stack socket writes as IPv6
/// (`::ffff:127.0.0.1`) written as IPv4, as the log and backends are
/// told it.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}
