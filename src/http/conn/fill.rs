//! Reading more into a [`BufConn`]'s buffer: a read that may wait, one
//! that cannot, one inside a message, one within a patience.

use super::source::read_acking_or;
use super::spare::take_buffer;
use super::sys::{read_retrying, readable_within};
use super::{BufConn, SharedStream, Socket, Source, Stream};
use std::io::{self, Read};
use std::time::{Duration, Instant};

/// Bytes read by one `read` call into an empty, released buffer. Small on
/// purpose: it lives on the stack of a thread that may sit idle for minutes.
/// A backend's response is read in two calls when it is larger, and that is
/// still the better deal: reading straight into a full buffer saved a `recv`
/// per response (within the noise of A/B runs) but made every request
/// waiting on a backend hold its 65 KiB buffer while it waits (peak RSS at
/// 256 connections: 15 → 27-35 MiB).
const PROBE_BYTES: usize = 1024;

impl<S: Read> BufConn<S> {
    /// Reads more bytes after the buffered ones. Returns how many arrived;
    /// 0 means end of stream. The buffer grows (by `capacity` at a time)
    /// only when it is full of unconsumed bytes, so callers bound growth by
    /// checking `buffered().len()` against their own limits first.
    pub fn fill(&mut self) -> io::Result<usize> {
        self.fill_by(read_retrying)
    }

    /// `fill` with `read` doing the reading.
    fn fill_by(
        &mut self,
        mut read: impl FnMut(&mut S, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        if self.buf.is_empty() {
            return self.fill_released(read);
        }
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                self.buf.resize(self.buf.len() + self.capacity, 0);
            }
        }
        let n = read(&mut self.stream, &mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// The first read after `release_if_empty` goes to a small stack buffer,
    /// so an idle connection blocked in `read` costs no heap.
    fn fill_released(
        &mut self,
        mut read: impl FnMut(&mut S, &mut [u8]) -> io::Result<usize>,
    ) -> io::Result<usize> {
        let mut probe = [0u8; PROBE_BYTES];
        let n = read(&mut self.stream, &mut probe)?;
        if n > 0 {
            self.buf = take_buffer(self.capacity.max(n));
            self.buf[..n].copy_from_slice(&probe[..n]);
            self.start = 0;
            self.end = n;
        }
        Ok(n)
    }
}

impl<S: Read + Socket> BufConn<S> {
    /// `fill` without waiting: `WouldBlock` when nothing has arrived.
    pub fn fill_now(&mut self) -> io::Result<usize> {
        let released = self.buf.is_empty();
        if released && !self.probe {
            self.buf = take_buffer(self.capacity);
        }
        let filled = self.fill_by(|stream, buf| stream.read_now(buf));
        if released {
            self.release_if_empty();
        }
        filled
    }
}

impl<S: Source> BufConn<S> {
    /// `fill` for the rest of a message whose start has arrived (a body):
    /// see [`Source::read_midway`].
    pub fn fill_midway(&mut self) -> io::Result<usize> {
        self.fill_by(S::read_midway)
    }
}

impl BufConn<SharedStream<Stream>> {
    /// `fill` that waits at most `patience` for the first byte: `None` when
    /// nothing came in that time (over TLS, records that carry no data do
    /// not count, nor make it wait longer). As in `read_acking`, the
    /// acknowledgement held back goes first, so that a sender waiting on it
    /// is not what the patience runs out on.
    pub fn fill_within(&mut self, patience: Duration) -> io::Result<Option<usize>> {
        let deadline = Instant::now() + patience;
        let mut waited_out = false;
        let n = self.fill_by(|stream, buf| {
            read_acking_or(&**stream, buf, |fd| {
                let left = deadline.saturating_duration_since(Instant::now());
                waited_out = !readable_within(fd, left)?;
                Ok(!waited_out)
            })
        })?;
        Ok((!waited_out).then_some(n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::conn::tests::loopback_pair;
    use std::io::Write;
    use std::os::fd::AsRawFd;

    /// A reader that hands out one byte per call, as a slow peer would.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() || buf.is_empty() {
                return Ok(0);
            }
            buf[0] = self.0[0];
            self.0 = &self.0[1..];
            Ok(1)
        }
    }

    #[test]
    fn accumulates_until_taken() {
        let mut c = BufConn::new(Trickle(b"abcdef"), 4);
        while c.fill().unwrap() > 0 {}
        assert_eq!(c.buffered(), b"abcdef");
        assert_eq!(c.take(2), b"ab");
        assert_eq!(c.buffered(), b"cdef");
    }

    #[test]
    fn release_then_fill_again() {
        let mut c = BufConn::new(&b"hello world, again"[..], 8);
        // The probe takes all that fits in it, more than `capacity`.
        assert_eq!(c.fill().unwrap(), 18);
        c.consume(18);
        c.release_if_empty();
        assert!(c.buf.is_empty());
        assert_eq!(c.fill().unwrap(), 0);
        assert!(c.buf.is_empty(), "nothing read, nothing allocated");
    }

    #[test]
    fn without_a_probe_a_read_that_cannot_wait_takes_what_came_in_one_read() {
        let (mut far, near) = loopback_pair();
        let message = vec![b'x'; 3 * PROBE_BYTES];
        for (probe, first_read) in [(true, PROBE_BYTES), (false, message.len())] {
            let mut c = BufConn::new(near.try_clone().unwrap(), 4 * PROBE_BYTES);
            if !probe {
                c = c.without_probe();
            }
            // Nothing there: no buffer kept.
            assert_eq!(c.fill_now().unwrap_err().kind(), io::ErrorKind::WouldBlock);
            assert!(c.buf.is_empty(), "probe: {probe}");
            far.write_all(&message).unwrap();
            assert!(readable_within(near.as_raw_fd(), Duration::from_secs(10)).unwrap());
            let mut got = c.fill_now().unwrap();
            assert_eq!(got, first_read, "probe: {probe}");
            while got < message.len() {
                got += c.fill().unwrap();
            }
            c.consume(got);
            c.release_if_empty();
        }
    }

    #[test]
    fn fill_now_never_waits() {
        let (mut near, far) = loopback_pair();
        let mut c = BufConn::new(far, 8);
        let nothing = c.fill_now().unwrap_err();
        assert_eq!(nothing.kind(), io::ErrorKind::WouldBlock);
        assert!(c.buf.is_empty(), "nothing read, nothing allocated");
        near.write_all(b"hello").unwrap();
        assert_eq!(c.fill_now().unwrap(), 5);
        assert_eq!(c.buffered(), b"hello");
        drop(near);
        let mut ended = false;
        for _ in 0..500 {
            match c.fill_now() {
                Ok(0) => {
                    ended = true;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                other => panic!("{other:?}"),
            }
        }
        assert!(ended, "the end of the stream reads as 0");
    }

    #[test]
    fn compacts_instead_of_growing_when_possible() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut c = BufConn::new(&data[..], 16);
        let mut seen = Vec::new();
        loop {
            if c.fill().unwrap() == 0 {
                break;
            }
            let n = c.buffered().len();
            seen.extend_from_slice(c.take(n));
        }
        assert_eq!(seen, data);
        assert!(c.buf.len() <= data.len());
    }
}
