//! A buffered byte stream that lets the caller look at what has arrived,
//! take part of it, and ask for more: what head parsing, body framing and
//! pipelining all need, and what `std::io::BufReader` cannot do (it only
//! refills when empty).
//!
//! # Layout
//! - `buffer`: the bytes read and not yet taken, and taking them
//!   ([`BufConn`]'s bookkeeping).
//! - `fill`: reading more into the buffer: at once, midway through a
//!   message, or within a patience.
//! - `spare`: buffers given back by idle connections, for busy ones.
//! - `taken`: bytes taken out with their storage ([`Taken`]).
//! - `source`: what a [`BufConn`] reads from ([`Source`]), and a read
//!   inside a message that acknowledges what came before it waits.
//! - `watch`: waits for a backend that watch the client for its close
//!   ([`WatchingClose`], [`wait_unless_left`]), sending it its bytes
//!   meanwhile ([`Pending`]).
//! - `leaving`: whether a peer has left, told without waiting
//!   ([`Leaving`]).
//! - `write`: writing buffers whole, or unless the peer answers first.
//! - `sys`: the system calls under the reads and waits: `poll`, reads
//!   that never wait, a look that takes nothing.
//! - `socket`: what a client's and a backend's socket offer alike
//!   ([`Socket`]).
//! - `shared`: a socket held by two ([`SharedStream`]).
//! - `client`: a client's connection ([`ClientStream`]).
//! - `backend`: a backend's connection ([`Stream`]).
//! - `errors`: what an I/O error says of its cause.
//! - here: [`BufConn`] itself.
//! - `tests`: a loopback pair for the tests of this module and others.

mod backend;
mod buffer;
mod client;
mod errors;
mod fill;
mod leaving;
mod shared;
mod socket;
mod source;
mod spare;
mod sys;
mod taken;
mod watch;
mod write;

pub use backend::{Kind, Stream};
pub use client::ClientStream;
pub use errors::{is_local_shortage, is_timeout};
pub use leaving::{peer_gone, Leaving};
pub use shared::SharedStream;
pub use socket::Socket;
pub use source::Source;
pub use sys::{peek, tcp_info, TcpInfo};
pub use taken::Taken;
pub use watch::{wait_unless_left, Lag, Pending, WatchingClose};
pub use write::{write_all_unless_answered, write_all_vectored, write_all_vectored_counting, Sent};

pub(super) use spare::{give_buffer, take_buffer};
pub(super) use sys::{read_retrying, readable_within, recv_now};
pub(super) use write::send_all_unless_answered;

pub struct BufConn<S> {
    stream: S,
    /// Fully initialised storage (zeroed once, when allocated); the live
    /// bytes are `buf[start..end]`.
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Size the buffer is given when it is (re)allocated.
    capacity: usize,
    /// Whether a read that cannot wait ([`fill_now`](Self::fill_now)) with
    /// no buffer (after `release_if_empty`) also goes to the small stack
    /// buffer (see `fill_released`), as every read that may wait does.
    probe: bool,
    /// Bytes taken since the connection began: a request's length is
    /// what was taken while it was read.
    taken: u64,
}

#[cfg(test)]
pub(crate) mod tests;
