//! A socket held by two ([`SharedStream`]).

use super::Socket;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::ops::Deref;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::sync::Arc;
use std::time::Duration;

/// A socket held by two: a client's by the thread that serves it and by the
/// server's registry, which shuts it down at shutdown; a backend's (a
/// [`Stream`](super::Stream)) by the thread using it and by its client's
/// `ConnWatch`, which shuts it down at a forced close. Sharing the handle
/// spares a `dup` and a `close` per connection.
pub struct SharedStream<S = TcpStream>(pub Arc<S>);

impl<S> Read for SharedStream<S>
where
    for<'a> &'a S: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self.0).read(buf)
    }
}

impl<S> Write for SharedStream<S>
where
    for<'a> &'a S: Write,
{
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self.0).write(buf)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        (&*self.0).write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<S: AsRawFd> AsRawFd for SharedStream<S> {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl<S: AsFd> AsFd for SharedStream<S> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl<S> Deref for SharedStream<S> {
    type Target = S;

    fn deref(&self) -> &S {
        &self.0
    }
}

/// A shared socket is used as the socket itself.
impl<S: Socket> Socket for SharedStream<S> {
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_now(buf)
    }

    fn ack_now(&self) {
        self.0.ack_now();
    }

    fn cut_short(&self) -> bool {
        self.0.cut_short()
    }

    fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.0.shutdown(how)
    }

    fn set_read_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_read_timeout(timeout)
    }

    fn set_write_timeout(&self, timeout: Option<Duration>) -> io::Result<()> {
        self.0.set_write_timeout(timeout)
    }

    fn write_timeout(&self) -> io::Result<Option<Duration>> {
        self.0.write_timeout()
    }
}
