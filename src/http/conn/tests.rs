//! Helpers for the tests of this module and of others that need a
//! connected pair of sockets.

use std::net::TcpStream;

/// Both ends of a loopback TCP connection: (the connecting end, the
/// accepted end).
pub(crate) fn loopback_pair() -> (TcpStream, TcpStream) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let near = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (near, listener.accept().unwrap().0)
}
