//! `limit_rate`: a response sent to its client no faster than a rate,
//! after a first part sent at full speed (`limit_rate_after`), as nginx's
//! `limit_rate` and `limit_rate_after` do. A thread per connection waits
//! by sleeping: the writer holds back what is ahead of the rate, and
//! writes the rest a slice at a time.

use crate::http::conn::ClientStream;
use crate::http::Headers;
use std::io::{self, IoSlice, Write};
use std::time::{Duration, Instant};

/// Most one write carries, in parts of the rate: a tenth of a second's
/// worth, so that the bytes leave evenly rather than in bursts of a
/// second's.
const SLICES_PER_SECOND: u64 = 10;

/// Least one write carries once it is due (or a second's worth, below
/// it): below this, the sleeps would cost more than the bytes.
const MIN_SLICE: u64 = 1024;

/// The field with which a backend sets its response's rate (nginx's
/// `X-Accel-Limit-Rate`): the proxy's to read, never sent on to a client.
pub const ACCEL_LIMIT_RATE: &str = "x-accel-limit-rate";

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

    /// The same, at the rate a backend's response `headers` set with
    /// [`ACCEL_LIMIT_RATE`], if they set one: bytes a second, digits
    /// alone, as nginx reads it (0: none); anything else is not read, nor
    /// a field `Connection` names (it is for the hop alone, and dropped).
    pub fn as_backend_says(self, headers: &Headers) -> Pacing {
        // Looked for first: nearly every answer has none.
        let Some(said) = headers.get_str(ACCEL_LIMIT_RATE) else {
            return self;
        };
        let digits = !said.is_empty() && said.bytes().all(|b| b.is_ascii_digit());
        match said.parse() {
            Ok(rate) if digits && !headers.has_token("connection", ACCEL_LIMIT_RATE) => {
                Pacing { rate, ..self }
            }
            _ => self,
        }
    }

    /// How many of `want` bytes one that has passed `sent` bytes,
    /// `elapsed` after its first, may pass now; or how long until some
    /// may (see [`Pacing::step`]). All of them when it is off.
    pub fn allowed(self, sent: u64, elapsed: Duration, want: usize) -> Result<usize, Duration> {
        if self.is_off() || want == 0 {
            return Ok(want);
        }
        match self.step(sent, elapsed, want) {
            Step::Write(n) => Ok(n),
            Step::Wait(wait) => Err(wait),
        }
    }

    /// What one write carries at most once the first part has gone, and
    /// waits for: a tenth of a second's worth, at least [`MIN_SLICE`] or
    /// a second's worth.
    fn slice(self) -> u64 {
        (self.rate / SLICES_PER_SECOND).max(MIN_SLICE.min(self.rate))
    }

    /// What a writer that has sent `sent` bytes, `elapsed` after its
    /// first write, does with `want` more (rate not 0): write some now,
    /// or wait. It is credited with the first part and one slice from the
    /// start, as nginx credits a second's worth (so a head goes at once),
    /// then with the rate; it waits until a whole slice is due (or all it
    /// wants, when that is less), so that it never writes a few bytes at
    /// a time.
    fn step(self, sent: u64, elapsed: Duration, want: usize) -> Step {
        let (rate, slice) = (u128::from(self.rate), u128::from(self.slice()));
        let by_now = rate.saturating_mul(elapsed.as_nanos()) / 1_000_000_000;
        let earned = (u128::from(self.after) + slice).saturating_add(by_now);
        let due = earned.saturating_sub(u128::from(sent));
        let want = want as u128;
        let worth_it = want.min(slice);
        if due >= worth_it {
            // The first part whole, then a slice at a time.
            let most = slice.max(u128::from(self.after.saturating_sub(sent)));
            let now = due.min(most).min(want);
            return Step::Write(usize::try_from(now).unwrap_or(usize::MAX));
        }
        let nanos = (worth_it - due) * 1_000_000_000 / rate + 1;
        Step::Wait(Duration::from_nanos(
            u64::try_from(nanos).unwrap_or(u64::MAX),
        ))
    }
}

/// What a paced writer does next.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Write(usize),
    Wait(Duration),
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

    /// How many of `want` bytes may go now, after sleeping until they
    /// may: all of them when the pacing is off.
    fn allowance(&mut self, want: usize) -> usize {
        loop {
            match self.allowed_now(want) {
                Ok(n) => return n,
                Err(wait) => std::thread::sleep(wait),
            }
        }
    }

    /// How many of `want` bytes may go now, or how long until some may.
    fn allowed_now(&mut self, want: usize) -> Result<usize, Duration> {
        if self.pacing.is_off() || want == 0 {
            return Ok(want);
        }
        let began = *self.began.get_or_insert_with(Instant::now);
        self.pacing.allowed(self.sent, began.elapsed(), want)
    }

    /// How long until the pace allows some of `want` bytes: `None` when
    /// it does now.
    pub fn due_in(&mut self, want: usize) -> Option<Duration> {
        self.allowed_now(want).err()
    }
}

impl Paced<&ClientStream> {
    /// Writes what the pace allows now and the socket takes without
    /// waiting (see [`ClientStream::write_now`]): `Ok(0)` for nothing.
    pub fn write_now(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
        let want = bufs.iter().map(|b| b.len()).sum();
        let written = match self.allowed_now(want) {
            Err(_) => return Ok(0),
            Ok(n) if n == want => self.out.write_now(bufs)?,
            Ok(n) => self.out.write_now(&first_bytes(bufs, n))?,
        };
        self.sent += written as u64;
        Ok(written)
    }

    /// The client's stream.
    pub fn get_ref(&self) -> &ClientStream {
        self.out
    }
}

/// The first `n` bytes of `bufs`.
fn first_bytes<'b>(bufs: &'b [IoSlice<'_>], mut n: usize) -> Vec<IoSlice<'b>> {
    let mut first = Vec::with_capacity(bufs.len());
    for buf in bufs {
        if n == 0 {
            break;
        }
        let take = buf.len().min(n);
        first.push(IoSlice::new(&buf[..take]));
        n -= take;
    }
    first
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
        let left = self.allowance(want);
        if left == want {
            let written = self.out.write_vectored(bufs)?;
            self.sent += written as u64;
            return Ok(written);
        }
        // What is allowed: the first slices whole, the last one cut.
        let written = self.out.write_vectored(&first_bytes(bufs, left))?;
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
    fn a_backend_sets_its_response_s_rate_with_a_number_alone() {
        let settings = Pacing {
            rate: 1_000,
            after: 50,
        };
        let said = |value: &str| {
            let mut headers = Headers::new();
            headers.push("X-Accel-Limit-Rate", value);
            settings.as_backend_says(&headers)
        };
        assert_eq!(
            said("262144"),
            Pacing {
                rate: 262_144,
                after: 50
            }
        );
        assert_eq!(said("0"), Pacing { rate: 0, after: 50 });
        for unread in ["256k", "off", "-1", "+5", "", "99999999999999999999999"] {
            assert_eq!(said(unread), settings, "{unread}");
        }
        assert_eq!(settings.as_backend_says(&Headers::new()), settings);
        // Named in `Connection`: the hop's alone.
        let mut headers = Headers::new();
        headers.push("Connection", "X-Accel-Limit-Rate");
        headers.push("X-Accel-Limit-Rate", "5");
        assert_eq!(settings.as_backend_says(&headers), settings);
    }

    #[test]
    fn off_writes_everything_at_once() {
        let mut out = Paced::new(Sizes::default(), Pacing::OFF);
        out.write_all(&[0; 100_000]).unwrap();
        assert_eq!(out.out.0, [100_000]);
    }

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_head_goes_at_once_then_a_slice_when_one_is_due() {
        // 10,000 bytes a second: slices of 1,024.
        let p = Pacing {
            rate: 10_000,
            after: 0,
        };
        assert_eq!(p.step(0, Duration::ZERO, 300), Step::Write(300));
        assert_eq!(p.step(0, Duration::ZERO, 5_000), Step::Write(1_024));
        // Nothing due: it waits for a whole slice, not a few bytes.
        let Step::Wait(wait) = p.step(1_024, Duration::ZERO, 5_000) else {
            panic!("wrote before anything was due");
        };
        assert!(wait > 102 * MS && wait < 103 * MS, "{wait:?}");
        assert!(matches!(p.step(1_024, 50 * MS, 5_000), Step::Wait(_)));
        assert!(matches!(p.step(1_024, 102 * MS, 5_000), Step::Wait(_)));
        assert_eq!(p.step(1_024, 103 * MS, 5_000), Step::Write(1_024));
        // Less than a slice wanted: that much, once it is due.
        assert!(matches!(p.step(1_024, 5 * MS, 100), Step::Wait(_)));
        assert_eq!(p.step(1_024, 11 * MS, 100), Step::Write(100));
        // Far behind (a slow client): a slice at a time all the same.
        assert_eq!(p.step(1_024, 10 * 1000 * MS, 50_000), Step::Write(1_024));
    }

    #[test]
    fn a_wait_lasts_until_a_slice_is_due_and_no_longer() {
        // 3,000 bytes a second: a slice of 1,024 takes no whole number of
        // nanoseconds, so a wait cut short would leave it not quite due.
        let p = Pacing {
            rate: 3_000,
            after: 0,
        };
        for (sent, elapsed) in [(1_024, Duration::ZERO), (1_024, 50 * MS), (2_048, 400 * MS)] {
            let Step::Wait(wait) = p.step(sent, elapsed, 5_000) else {
                panic!("{sent} {elapsed:?}: wrote before a slice was due");
            };
            assert_eq!(p.step(sent, elapsed + wait, 5_000), Step::Write(1_024));
            let sooner = elapsed + wait - Duration::from_nanos(1);
            assert!(matches!(p.step(sent, sooner, 5_000), Step::Wait(_)));
        }
    }

    #[test]
    fn the_first_part_goes_whole() {
        let p = Pacing {
            rate: 10_000,
            after: 30_000,
        };
        assert_eq!(p.step(0, Duration::ZERO, 100_000), Step::Write(30_000));
        assert_eq!(p.step(20_000, Duration::ZERO, 100_000), Step::Write(10_000));
        assert_eq!(p.step(30_000, Duration::ZERO, 100_000), Step::Write(1_024));
        assert!(matches!(p.step(31_024, Duration::ZERO, 100), Step::Wait(_)));
    }

    #[test]
    fn below_a_kilobyte_a_second_a_write_is_a_second_s_worth() {
        let p = Pacing {
            rate: 500,
            after: 0,
        };
        assert_eq!(p.step(0, Duration::ZERO, 2_000), Step::Write(500));
        let Step::Wait(wait) = p.step(500, Duration::ZERO, 2_000) else {
            panic!("wrote before anything was due");
        };
        assert!(wait > 999 * MS && wait <= 1000 * MS + MS, "{wait:?}");
    }

    #[test]
    fn huge_rates_and_parts_neither_overflow_nor_wait() {
        for (rate, after) in [
            (u64::MAX, u64::MAX),
            (u64::MAX, 0),
            (1, u64::MAX),
            (1 << 30, 0),
        ] {
            let p = Pacing { rate, after };
            let Step::Write(n) = p.step(0, Duration::from_secs(1 << 40), usize::MAX) else {
                panic!("{rate} {after}: waited");
            };
            assert!(n > 0);
        }
    }

    #[test]
    fn a_paced_writer_writes_whole_slices_not_a_few_bytes_at_a_time() {
        // 10 MiB a second: slices of 1 MiB; 3 MiB take about 0.2 s.
        let pacing = Pacing {
            rate: 10 << 20,
            after: 0,
        };
        let mut out = Paced::new(Sizes::default(), pacing);
        out.write_all(&vec![0; 3 << 20]).unwrap();
        let sizes = &out.out.0;
        assert_eq!(sizes.iter().sum::<usize>(), 3 << 20);
        assert!(sizes.iter().all(|&n| n == 1_048_576), "{sizes:?}");
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
        // The first part, whole, at once, and no more.
        assert_eq!(n, 1_500);
        assert_eq!(&out.out[..1_000], &head[..]);
        assert!(out.out[1_000..].iter().all(|&b| b == b'b'));
    }

    /// A slice of 100 bytes at 100 a second.
    const SLOW: Pacing = Pacing {
        rate: 100,
        after: 0,
    };

    #[test]
    fn what_is_written_counts_against_the_rate() {
        let mut out = Paced::new(Vec::new(), SLOW);
        assert_eq!(out.due_in(0), None);
        assert_eq!(out.due_in(100), None, "the first slice goes at once");
        assert_eq!(out.write(&[0; 500]).unwrap(), 100);
        assert_eq!(out.sent, 100);
        // Begun an hour ahead, so that no second can pass in the test.
        out.began = out.began.map(|began| began + Duration::from_secs(3600));
        assert!(out.due_in(1).is_some());

        let mut out = Paced::new(Vec::new(), SLOW);
        let whole = [IoSlice::new(&[0; 60]), IoSlice::new(&[0; 40])];
        assert_eq!(out.write_vectored(&whole).unwrap(), 100);
        assert_eq!(out.sent, 100);

        let mut out = Paced::new(Vec::new(), SLOW);
        let cut = [IoSlice::new(&[0; 60]), IoSlice::new(&[0; 60])];
        assert_eq!(out.write_vectored(&cut).unwrap(), 100);
        assert_eq!(out.sent, 100);
    }

    #[test]
    fn flush_reaches_the_stream_beneath() {
        let mut out = Paced::new(io::BufWriter::new(Vec::new()), Pacing::OFF);
        out.write_all(b"held").unwrap();
        out.flush().unwrap();
        assert_eq!(out.out.get_ref(), b"held");
    }

    #[test]
    fn write_now_sends_what_the_pace_allows_and_counts_it() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut peer = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let client = ClientStream::Tcp(listener.accept().unwrap().0);
        let (head, body) = ([b'h'; 60], [b'b'; 60]);
        let bufs = [IoSlice::new(&head), IoSlice::new(&body)];

        let mut paced = Paced::new(&client, SLOW);
        assert_eq!(paced.write_now(&bufs).unwrap(), 100, "cut to a slice");
        assert_eq!(paced.sent, 100);
        let mut off = Paced::new(&client, Pacing::OFF);
        assert_eq!(off.write_now(&bufs).unwrap(), 120);

        let mut received = [0; 220];
        io::Read::read_exact(&mut peer, &mut received).unwrap();
        let expected: Vec<u8> = [&head[..], &body[..40], &head, &body].concat();
        assert_eq!(received[..], expected[..]);
    }
}
