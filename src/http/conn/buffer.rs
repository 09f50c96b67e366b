//! A [`BufConn`]'s bookkeeping: the bytes read and not yet taken, taking
//! them, and giving the storage back when none are left.

use super::spare::give_buffer;
use super::BufConn;

impl<S> BufConn<S> {
    pub fn new(stream: S, capacity: usize) -> Self {
        BufConn {
            stream,
            buf: Vec::new(),
            start: 0,
            end: 0,
            capacity,
            probe: true,
            taken: 0,
        }
    }

    /// A read that cannot wait takes the buffer for what has come, rather
    /// than probing, and gives it back if nothing has: for a connection
    /// whose answer is often found there after a yield (a backend's),
    /// where a probe would split a response larger than it into two
    /// reads. A read that may wait still probes, so that a request
    /// waiting for its answer (a long poll) holds no buffer.
    pub fn without_probe(mut self) -> Self {
        self.probe = false;
        self
    }

    pub fn get_ref(&self) -> &S {
        &self.stream
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.stream
    }

    /// The bytes received and not yet taken.
    pub fn buffered(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Marks `n` buffered bytes as used and returns them.
    pub fn take(&mut self, n: usize) -> &[u8] {
        let from = self.start;
        self.start += n;
        assert!(self.start <= self.end, "took more than was buffered");
        self.taken += n as u64;
        &self.buf[from..self.start]
    }

    /// Every byte taken since the connection began.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// Every buffered byte, taken as what comes after the messages read
    /// (a new protocol's first bytes, after an upgrade): not counted in
    /// [`BufConn::taken`].
    pub fn take_past_messages(&mut self) -> Vec<u8> {
        let rest = self.buffered().to_vec();
        self.start = self.end;
        rest
    }

    pub fn consume(&mut self, n: usize) {
        self.take(n);
    }

    /// Takes `n` buffered bytes as one piece with the `joined` taken
    /// before the last `skipped` (framing between them, say): they are
    /// moved back over those, and all `joined + n` returned. The bytes
    /// must all have been taken since the last read, which moves them.
    pub fn take_joined(&mut self, joined: usize, skipped: usize, n: usize) -> &[u8] {
        assert!(
            joined + skipped <= self.start && n <= self.end - self.start,
            "joined more than was taken or buffered"
        );
        let to = self.start - skipped;
        self.buf.copy_within(self.start..self.start + n, to);
        self.start += n;
        self.taken += n as u64;
        &self.buf[to - joined..to + n]
    }

    /// Frees the buffer when nothing is pending, so a connection that sits
    /// idle between requests holds no heap memory.
    pub fn release_if_empty(&mut self) {
        if self.start == self.end && !self.buf.is_empty() {
            let buf = std::mem::take(&mut self.buf);
            // Only a buffer of the usual size is worth keeping for reuse:
            // one grown for a large head would sit in the spare list for
            // good, as nothing asks for its size.
            if buf.len() == self.capacity {
                give_buffer(buf);
            }
            self.start = 0;
            self.end = 0;
        }
    }
}

impl<S> BufConn<S> {
    /// Makes room for `n` bytes from the first buffered one on, so that a
    /// body gathered whole is read in large pieces into storage of its
    /// size, not grown a buffer at a time. Storage grown past the usual
    /// size is freed, not kept for reuse, once the connection releases it.
    pub fn reserve(&mut self, n: usize) {
        if self.buf.len() - self.start >= n {
            return;
        }
        self.buf.copy_within(self.start..self.end, 0);
        self.end -= self.start;
        self.start = 0;
        self.buf.resize(n.max(self.capacity), 0);
    }
}

impl BufConn<&'static [u8]> {
    /// A connection whose bytes are `bytes` and nothing more: reading past
    /// them meets the end of the stream. Its storage never grows, nor is it
    /// kept for reuse.
    pub fn holding(bytes: Vec<u8>) -> Self {
        BufConn {
            stream: &[],
            start: 0,
            end: bytes.len(),
            buf: bytes,
            capacity: 0,
            probe: true,
            taken: 0,
        }
    }
}

impl<S> Drop for BufConn<S> {
    fn drop(&mut self) {
        if !self.buf.is_empty() && self.buf.len() == self.capacity {
            give_buffer(std::mem::take(&mut self.buf));
        }
    }
}

impl<S> BufConn<S> {
    /// Runs `f` on this connection's bytes read through `through(stream)`, a
    /// view of the stream that reads, or waits, its own way (see
    /// [`WatchingClose`](super::WatchingClose)). The buffer is moved there and
    /// back, not copied.
    pub fn read_through<'s, T, R>(
        &'s mut self,
        through: impl FnOnce(&'s S) -> T,
        f: impl FnOnce(&mut BufConn<T>) -> R,
    ) -> R {
        let mut view = BufConn {
            stream: through(&self.stream),
            buf: std::mem::take(&mut self.buf),
            start: self.start,
            end: self.end,
            capacity: self.capacity,
            probe: self.probe,
            taken: self.taken,
        };
        let result = f(&mut view);
        self.buf = std::mem::take(&mut view.buf);
        self.start = view.start;
        self.end = view.end;
        self.taken = view.taken;
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taken_bytes_are_joined_over_those_skipped_between() {
        let mut c = BufConn::new(&b"ab--cd-ef+"[..], 16);
        c.fill().unwrap();
        c.consume(2);
        c.consume(2);
        assert_eq!(c.take_joined(2, 2, 2), b"abcd");
        c.consume(1);
        assert_eq!(c.take_joined(4, 3, 2), b"abcdef");
        assert_eq!(c.take_joined(6, 3, 0), b"abcdef");
        assert_eq!(c.buffered(), b"+");
    }
}
