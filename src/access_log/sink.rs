//! One output of the log, buffered: the log file opened, a line a failed
//! write cut ended before the next, and the lines lost counted and said.

use crate::http::conn::{write_all_vectored, write_all_vectored_counting};
use crate::throttle::Throttle;
use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Opens the log file for appending. The open itself never blocks: on a
/// FIFO nobody reads it would hang start-up, or a SIGHUP's reload and with
/// it every later signal; that is an error instead ("no reader"). Writes
/// block as usual once it is open.
pub fn open_log_file(path: &Path) -> io::Result<File> {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::OpenOptionsExt;
    let context = |e: io::Error| {
        let why = match e.raw_os_error() {
            Some(libc::ENXIO) => "a FIFO with no reader".to_string(),
            _ => e.to_string(),
        };
        io::Error::new(e.kind(), format!("cannot open {}: {why}", path.display()))
    };
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(context)?;
    // SAFETY: fcntl on a descriptor we own, changing only its status flags.
    let cleared = unsafe {
        let fd = file.as_raw_fd();
        let flags = libc::fcntl(fd, libc::F_GETFL);
        flags >= 0 && libc::fcntl(fd, libc::F_SETFL, flags & !libc::O_NONBLOCK) >= 0
    };
    if !cleared {
        return Err(context(io::Error::last_os_error()));
    }
    Ok(file)
}

/// One output, buffered. Request threads go on whatever happens here;
/// lines it could not take are counted (see [`LogSender::lost`](super::LogSender::lost)) and said
/// (see [`Failures`]).
pub(super) struct Sink<W: Write> {
    /// Which output, in its warnings.
    name: Box<str>,
    inner: W,
    /// Whole lines not written yet.
    buf: Vec<u8>,
    /// A failed write stopped in the middle of a line: what comes next
    /// starts on a line of its own rather than finish that fragment.
    cut: bool,
    failures: Failures,
}

/// How much a sink gathers before writing.
const SINK_BUFFER: usize = 64 * 1024;

impl Sink<File> {
    /// The file sink; a file that ends in the middle of a line (one cut by
    /// a full disk, reopened after room was made) gets that line ended
    /// before the next one.
    pub(super) fn for_file(path: &Path, file: File) -> Self {
        let cut = ends_mid_line(path, &file);
        let mut sink = Sink::new("file", file);
        sink.cut = cut;
        sink
    }
}

/// Whether `written`, a regular file opened at `path`, ends with anything
/// but a newline. It is read through `path` (it was opened to append
/// only), without waiting (were `path` a FIFO by now) and only if `path`
/// still names that file.
fn ends_mid_line(path: &Path, written: &File) -> bool {
    use std::os::unix::fs::{FileExt, MetadataExt};
    let Ok(meta) = written.metadata() else {
        return false;
    };
    if !meta.is_file() || meta.len() == 0 {
        return false;
    }
    let Ok(reader) = crate::cache::persist::open_regular(path) else {
        return false;
    };
    let same = reader
        .metadata()
        .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino());
    let mut last = [0u8; 1];
    same && reader
        .read_at(&mut last, meta.len() - 1)
        .is_ok_and(|n| n == 1)
        && last[0] != b'\n'
}

impl<W: Write> Sink<W> {
    pub(super) fn new(name: &str, inner: W) -> Self {
        Sink {
            name: name.into(),
            inner,
            buf: Vec::with_capacity(SINK_BUFFER),
            cut: false,
            failures: Failures::default(),
        }
    }

    /// The sink, its warnings naming it `name` (a pool's file its key).
    pub(super) fn named(mut self, name: String) -> Self {
        self.name = name.into();
        self
    }

    pub(super) fn write(&mut self, line: &[u8], lost: &AtomicU64) {
        if !self.buf.is_empty() && self.buf.len() + line.len() > SINK_BUFFER {
            self.flush(lost);
        }
        self.buf.extend_from_slice(line);
    }

    /// Writes what is gathered. Only a write that worked shows the sink
    /// works again. One that failed counts the lines it did not get out
    /// as lost (a line cut in the middle among them) and lets them go,
    /// rather than write them late, out of order, once the sink recovers.
    pub(super) fn flush(&mut self, lost: &AtomicU64) {
        // Nothing to write: no sign that the sink works again.
        if self.buf.is_empty() {
            return;
        }
        let (written, result) = match self.end_cut_line() {
            Ok(()) => write_all_vectored_counting(&mut self.inner, &mut [IoSlice::new(&self.buf)]),
            Err(e) => (0, Err(e)),
        };
        let result = result.and_then(|()| self.inner.flush());
        if written > 0 {
            self.cut = self.buf[written - 1] != b'\n';
        }
        match result {
            Ok(()) => self.failures.recovered(&self.name),
            Err(e) => {
                let unwritten = &self.buf[written..];
                let lines = unwritten.iter().filter(|&&b| b == b'\n').count() as u64;
                self.lose(lines, &e, lost);
            }
        }
        self.buf.clear();
    }

    /// Ends the line a failed write cut, so that what follows starts on a
    /// line of its own; while that fails too, the cut stays to be ended.
    fn end_cut_line(&mut self) -> io::Result<()> {
        if self.cut {
            write_all_vectored(&mut self.inner, &mut [IoSlice::new(b"\n")])?;
            self.cut = false;
        }
        Ok(())
    }

    fn lose(&mut self, lines: u64, e: &io::Error, lost: &AtomicU64) {
        lost.fetch_add(lines, Ordering::Relaxed);
        self.failures.failed(&self.name, e, lines);
    }
}

/// One sink's write failures: said when they start, again at most once a
/// minute while they last, with the lines lost, and once more when writing
/// works again.
#[derive(Default)]
struct Failures {
    lost: u64,
    throttle: Throttle,
}

impl Failures {
    fn failed(&mut self, sink: &str, e: &io::Error, lines: u64) {
        self.lost += lines;
        if (self.throttle)
            .failed_because(Instant::now(), &e.to_string())
            .is_some()
        {
            log::warn!(
                "access log ({sink}): cannot write: {e}; {} lines lost so far",
                self.lost
            );
        }
    }

    fn recovered(&mut self, sink: &str) {
        if self.throttle.recovered() {
            log::warn!(
                "access log ({sink}): writing again; {} lines were lost",
                self.lost
            );
            self.lost = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A disk that takes `room` bytes, then fails `failures` writes, then has room
    /// again for everything.
    struct Disk {
        room: usize,
        failures: usize,
        got: Vec<u8>,
    }

    const NEVER_RECOVERS: usize = usize::MAX;

    fn disk(room: usize, failures: usize) -> Disk {
        Disk {
            room,
            failures,
            got: Vec::new(),
        }
    }

    impl Write for Disk {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                if self.failures > 0 {
                    self.failures -= 1;
                    return Err(io::Error::other("no space left"));
                }
                self.room = usize::MAX;
            }
            let n = buf.len().min(self.room);
            self.room -= n;
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn lines_written_before_a_failure_are_not_counted_lost() {
        let lost = AtomicU64::new(0);
        // Room for the first line and half the second.
        let mut sink = Sink::new("file", disk(10, NEVER_RECOVERS));
        for line in [&b"line one\n"[..], b"line two\n", b"line three\n"] {
            sink.write(line, &lost);
        }
        sink.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 2, "the cut one and the last");
    }

    #[test]
    fn a_line_cut_by_a_failure_is_not_run_into_the_next() {
        let lost = AtomicU64::new(0);
        let mut sink = Sink::new("file", disk(10, 1));
        sink.write(b"line one\nline two\n", &lost);
        sink.flush(&lost);
        sink.write(b"line three\n", &lost);
        sink.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        let got = String::from_utf8(sink.inner.got.clone()).unwrap();
        assert_eq!(got, "line one\nl\nline three\n");
    }

    #[test]
    fn a_cut_line_is_ended_once_the_disk_has_room_again_however_late() {
        let lost = AtomicU64::new(0);
        // Full for the cut and for the next flush too.
        let mut sink = Sink::new("file", disk(10, 2));
        for line in [
            &b"line one\nline two\n"[..],
            b"line three\n",
            b"line four\n",
        ] {
            sink.write(line, &lost);
            sink.flush(&lost);
        }
        let got = String::from_utf8(sink.inner.got.clone()).unwrap();
        assert_eq!(got, "line one\nl\nline four\n");
        assert_eq!(lost.load(Ordering::Relaxed), 2, "line two and line three");
    }

    #[test]
    fn a_file_opened_on_a_cut_line_ends_it_first() {
        let dir = tempfile::tempdir().unwrap();
        let lost = AtomicU64::new(0);
        for (before, after) in [
            ("whole\ncut fragm", "whole\ncut fragm\nnext\n"),
            ("whole\n", "whole\nnext\n"),
            ("", "next\n"),
        ] {
            let path = dir.path().join("access.log");
            std::fs::write(&path, before).unwrap();
            let mut sink = Sink::for_file(&path, open_log_file(&path).unwrap());
            sink.write(b"next\n", &lost);
            sink.flush(&lost);
            assert_eq!(std::fs::read_to_string(&path).unwrap(), after);
        }
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn lines_wait_in_the_buffer_until_a_flush_or_until_the_next_would_overflow_it() {
        let lost = AtomicU64::new(0);
        let mut sink = Sink::new("file", disk(usize::MAX, 0));
        // 1024 lines of 64 bytes fill the 64 KiB buffer exactly: none
        // written yet.
        let line = [&[b'x'; 63][..], b"\n"].concat();
        for _ in 0..1024 {
            sink.write(&line, &lost);
        }
        assert!(
            sink.inner.got.is_empty(),
            "written before the buffer was full"
        );
        // One more does not fit: what was gathered goes first, whole.
        sink.write(b"last\n", &lost);
        assert_eq!(sink.inner.got.len(), 64 * 1024);
        sink.flush(&lost);
        assert_eq!(sink.inner.got.len(), 64 * 1024 + b"last\n".len());
        assert!(sink.inner.got.ends_with(b"x\nlast\n"));
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_lines_lost_are_summed_while_writes_fail_and_start_over_once_one_works() {
        let lost = AtomicU64::new(0);
        let mut sink = Sink::new("file", disk(0, 2));
        sink.write(b"one\ntwo\n", &lost);
        sink.flush(&lost);
        sink.write(b"three\n", &lost);
        sink.flush(&lost);
        // What the warning says: all lost since the failures began.
        assert_eq!(sink.failures.lost, 3);
        sink.write(b"four\n", &lost);
        sink.flush(&lost);
        assert_eq!(sink.inner.got, b"four\n");
        // Said with the recovery, then forgotten: the next failure starts
        // its own count.
        assert_eq!(sink.failures.lost, 0);
        assert!(!sink.failures.throttle.recovered(), "recovered twice");
        assert_eq!(
            lost.load(Ordering::Relaxed),
            3,
            "the process's count goes on"
        );
    }

    #[test]
    fn a_file_no_longer_at_its_path_is_not_read_through_it() {
        // Moved away between its open and the sink's (a logrotate): the
        // file now at the path, cut or not, says nothing of this one.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        std::fs::write(&path, "whole\n").unwrap();
        let file = open_log_file(&path).unwrap();
        let moved = dir.path().join("access.log.1");
        std::fs::rename(&path, &moved).unwrap();
        std::fs::write(&path, "another cut fragm").unwrap();
        let lost = AtomicU64::new(0);
        let mut sink = Sink::for_file(&path, file);
        sink.write(b"next\n", &lost);
        sink.flush(&lost);
        assert_eq!(std::fs::read_to_string(&moved).unwrap(), "whole\nnext\n");
    }

    #[test]
    fn a_flush_with_nothing_to_write_is_no_sign_of_recovery() {
        let lost = AtomicU64::new(0);
        let mut sink = Sink::new("file", disk(0, NEVER_RECOVERS));
        sink.write(b"a line\n", &lost);
        sink.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 1);
        // Nothing pending: the flush proves nothing, the failure goes on.
        sink.flush(&lost);
        assert!(sink.failures.throttle.recovered(), "taken for a recovery");
    }
}
