//! `limit_rate`: a response sent to its client no faster than a rate,
//! after a first part sent at full speed (`limit_rate_after`), as nginx's
//! `limit_rate` and `limit_rate_after` do. A thread per connection waits
//! by sleeping: the writer holds back what is ahead of the rate, and
//! writes the rest a slice at a time.

use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

/// Most one write may carry, in parts of the rate: a tenth of a second's
/// worth, so that the bytes leave evenly rather than in bursts of a
/// second's.
const SLICES_PER_SECOND: u64 = 10;

/// Least one write carries once it is due: below this, the sleeps would
/// cost more than the bytes.
const MIN_SLICE: u64 = 1024;

/// How a response is paced: its rate in bytes a second (0: not at all),
/// and the bytes sent before the rate applies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Pacing {
    pub rate: u64,
    pub after: u64,
}

impl Pacing {
    pub const OFF: Pacing = Pacing { rate: 0, after: 0 };

    pub fn is_off(self) -> bool {
        self.rate == 0
    }
}

/// `out`, written no faster than `pacing` says, counted from the first
/// write through it.
pub struct Paced<W> {
    out: W,
    pacing: Pacing,
    sent: u64,
    began: Option<Instant>,
}

impl<W: Write> Paced<W> {
    pub fn new(out: W, pacing: Pacing) -> Paced<W> {
        Paced {
            out,
            pacing,
            sent: 0,
            began: None,
        }
    }

    /// How many of `want` bytes may go now, after sleeping until some
    /// may: all of them when the pacing is off.
    fn allowance(&mut self, want: usize) -> usize {
        let Pacing { rate, after } = self.pacing;
        if rate == 0 || want == 0 {
            return want;
        }
        let began = *self.began.get_or_insert_with(Instant::now);
        let slice = (rate / SLICES_PER_SECOND).max(MIN_SLICE);
        loop {
            let elapsed = began.elapsed();
            let earned = (u128::from(rate) * elapsed.as_nanos() / 1_000_000_000)
                .saturating_add(u128::from(after));
            let sent = u128::from(self.sent);
            if earned > sent {
                // The first part whole, then a slice at a time.
                let most = slice.max(after.saturating_sub(self.sent));
                let free = (earned - sent).min(u128::from(most));
                return usize::try_from(free).unwrap_or(usize::MAX).min(want);
            }
            // Until the next slice is earned.
            let behind = sent - earned + u128::from(slice.min(rate));
            let nanos = behind * 1_000_000_000 / u128::from(rate);
            std::thread::sleep(Duration::from_nanos(
                u64::try_from(nanos).unwrap_or(u64::MAX),
            ));
        }
    }
}

impl<W: Write> Write for Paced<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.allowance(buf.len());
        let written = self.out.write(&buf[..n])?;
        self.sent += written as u64;
        Ok(written)
    }

    fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        if self.pacing.is_off() {
            return self.out.write_vectored(bufs);
        }
        let want: usize = bufs.iter().map(|b| b.len()).sum();
        let mut left = self.allowance(want);
        if left == want {
            let written = self.out.write_vectored(bufs)?;
            self.sent += written as u64;
            return Ok(written);
        }
        // What is allowed: the first slices whole, the last one cut.
        let mut allowed = Vec::with_capacity(bufs.len());
        for buf in bufs {
            if left == 0 {
                break;
            }
            let n = buf.len().min(left);
            allowed.push(IoSlice::new(&buf[..n]));
            left -= n;
        }
        let written = self.out.write_vectored(&allowed)?;
        self.sent += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes that remember the size of each.
    #[derive(Default)]
    struct Sizes(Vec<usize>);

    impl Write for Sizes {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.push(buf.len());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn off_writes_everything_at_once() {
        let mut out = Paced::new(Sizes::default(), Pacing::OFF);
        out.write_all(&[0; 100_000]).unwrap();
        assert_eq!(out.out.0, [100_000]);
    }

    #[test]
    fn the_first_part_goes_whole_then_slices_of_the_rate() {
        // 10 MB a second: slices of 1 MB, the first 30 KB at once.
        let pacing = Pacing {
            rate: 10_000_000,
            after: 30_000,
        };
        let mut out = Paced::new(Sizes::default(), pacing);
        out.write_all(&[0; 2_500_000]).unwrap();
        let sizes = &out.out.0;
        assert_eq!(sizes.iter().sum::<usize>(), 2_500_000);
        assert!(sizes[0] >= 30_000, "{sizes:?}");
        assert!(sizes.iter().all(|&n| n <= 1_030_000), "{sizes:?}");
        assert!(sizes.len() >= 3, "{sizes:?}");
    }

    #[test]
    fn a_vectored_write_is_cut_where_the_allowance_ends() {
        let pacing = Pacing {
            rate: 10_000,
            after: 1_500,
        };
        let mut out = Paced::new(Vec::new(), pacing);
        let (head, body) = (vec![b'h'; 1_000], vec![b'b'; 1_000]);
        let n = out
            .write_vectored(&[IoSlice::new(&head), IoSlice::new(&body)])
            .unwrap();
        // The first 1,500 bytes: at once, and no more.
        assert_eq!(n, 1_500);
        assert_eq!(&out.out[..1_000], &head[..]);
        assert!(out.out[1_000..].iter().all(|&b| b == b'b'));
    }
}
