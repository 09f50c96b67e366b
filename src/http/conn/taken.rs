//! Bytes taken out of a connection with the storage they are in.

use super::spare::give_buffer;
use super::BufConn;

/// Bytes taken out of a [`BufConn`] with their storage; the storage goes
/// back to the spare buffers when dropped.
pub struct Taken {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    capacity: usize,
}

impl std::ops::Deref for Taken {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }
}

impl Taken {
    /// Only the first `n` of the bytes.
    pub fn first(mut self, n: usize) -> Self {
        self.end = self.end.min(self.start + n);
        self
    }
}

impl From<Vec<u8>> for Taken {
    /// Bytes of no connection, not kept for reuse once dropped.
    fn from(buf: Vec<u8>) -> Self {
        Taken {
            end: buf.len(),
            buf,
            start: 0,
            capacity: 0,
        }
    }
}

impl Drop for Taken {
    fn drop(&mut self) {
        if !self.buf.is_empty() && self.buf.len() == self.capacity {
            give_buffer(std::mem::take(&mut self.buf));
        }
    }
}

impl<S> BufConn<S> {
    /// Takes every buffered byte out with the storage it is in, without
    /// copying: the connection is left with none, as after
    /// [`release_if_empty`](Self::release_if_empty).
    pub fn take_all(&mut self) -> Taken {
        let taken = Taken {
            buf: std::mem::take(&mut self.buf),
            start: self.start,
            end: self.end,
            capacity: self.capacity,
        };
        self.taken += (self.end - self.start) as u64;
        self.start = 0;
        self.end = 0;
        taken
    }
}
