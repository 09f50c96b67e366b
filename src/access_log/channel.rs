//! The writer thread's handles: [`AccessLog`] starts it and finishes it,
//! [`LogSender`] queues records and reopens the outputs, over one bounded
//! channel so that each takes effect in order with the records.

use super::pool_files::PoolSinks;
use super::sink::open_log_file;
use super::writer::write_loop;
use super::{PoolFile, Record, Syslog};
use crate::config::LogFormat;
use crossbeam_channel::{bounded, Receiver, RecvTimeoutError, SendTimeoutError, Sender};
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Records in flight between request threads and the writer.
const CHANNEL_CAPACITY: usize = 16 * 1024;
/// The longest a reopen or the final flush waits on a stalled writer.
const STALL_WAIT: Duration = Duration::from_secs(5);

pub(super) enum Message {
    Record(Box<Record>),
    /// Flush, then open the files again (or others), and say how it
    /// went; open the syslog socket again (or another one).
    Reopen {
        file: Option<PathBuf>,
        format: LogFormat,
        syslog: Option<Syslog>,
        pool_files: Vec<PoolFile>,
        done: Sender<io::Result<()>>,
        /// Taken by whichever comes first: the writer, which then does
        /// the reopen, or the caller giving up on it, and then it is not
        /// done (a reload refused must not switch the log later after all).
        claimed: Arc<AtomicBool>,
    },
    /// Write what is queued, then stop.
    Close,
}

/// Where log lines go, and how they look.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub stdout: bool,
    pub file: Option<PathBuf>,
    pub format: LogFormat,
    /// Where a copy of each line goes as a syslog message, if anywhere.
    pub syslog: Option<Syslog>,
    /// The pools' own files, each taking a copy of its requests' lines.
    pub pool_files: Vec<PoolFile>,
}

/// A cheap handle request threads use to log.
#[derive(Clone)]
pub struct LogSender {
    tx: Sender<Message>,
    lost: Arc<AtomicU64>,
}

impl LogSender {
    /// Lines a sink could not take (a full disk, a closed stdout), per
    /// sink, since the start.
    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Whether the queue is full: the writer cannot keep up (a stdout
    /// nobody reads), and request threads wait for it.
    pub fn is_stalled(&self) -> bool {
        self.tx.is_full()
    }

    /// Queues a record; waits if the writer is behind, never drops.
    pub fn log(&self, record: Record) {
        // The writer only goes away at shutdown, after request threads.
        let _ = self.tx.send(Message::Record(Box::new(record)));
    }

    /// Writes out every record queued so far, then reopens the log file at
    /// `file` and the pools' `pool_files` (the same paths after logrotate
    /// moved them away, or new ones after a reload) and switches to
    /// `format`; sends to `syslog` from then on, its socket opened afresh
    /// (a restarted daemon's). If any file cannot be opened, the old files
    /// all stay in use. Returns once the writer has done it.
    ///
    /// Waits at most `STALL_WAIT` (5 s) for the writer: behind a queue that
    /// whatever reads stdout stopped emptying, it would wait for good, and
    /// it is the signal thread that waits (a SIGTERM after would go
    /// unheard).
    pub fn reopen(
        &self,
        file: Option<PathBuf>,
        format: LogFormat,
        syslog: Option<Syslog>,
        pool_files: Vec<PoolFile>,
    ) -> io::Result<()> {
        let stalled = || io::Error::other("the access log is stalled (its reader stopped reading)");
        let (done, result) = bounded(1);
        let claimed = Arc::new(AtomicBool::new(false));
        let message = Message::Reopen {
            file,
            format,
            syslog,
            pool_files,
            done,
            claimed: claimed.clone(),
        };
        self.tx
            .send_timeout(message, STALL_WAIT)
            .map_err(|e| match e {
                SendTimeoutError::Timeout(_) => stalled(),
                SendTimeoutError::Disconnected(_) => io::Error::other("the access log is closed"),
            })?;
        match result.recv_timeout(STALL_WAIT) {
            Ok(reopened) => reopened,
            // Given up on: the writer will leave it undone...
            Err(_) if !claimed.swap(true, Ordering::SeqCst) => Err(stalled()),
            // ...unless it has just begun it: then it says how it went.
            Err(_) => result
                .recv()
                .map_err(|_| io::Error::other("the access log is closed"))?,
        }
    }
}

/// The writer thread.
pub struct AccessLog {
    tx: Sender<Message>,
    lost: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
    /// Closed when the writer is done.
    finished: Receiver<()>,
}

impl AccessLog {
    /// Opens the log files (append) and starts the writer.
    pub fn start(outputs: Outputs) -> io::Result<AccessLog> {
        let file = match &outputs.file {
            Some(path) => Some(open_log_file(path)?),
            None => None,
        };
        let pools = PoolSinks::open(&outputs.pool_files)?;
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let lost = Arc::new(AtomicU64::new(0));
        let counted = lost.clone();
        let (done, finished) = bounded::<()>(0);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || {
                write_loop(rx, outputs, file, pools, counted);
                drop(done);
            })?;
        Ok(AccessLog {
            tx,
            lost,
            thread: Some(thread),
            finished,
        })
    }

    pub fn sender(&self) -> LogSender {
        LogSender {
            tx: self.tx.clone(),
            lost: self.lost.clone(),
        }
    }

    /// Writes every record queued so far, flushes, and stops the writer.
    /// Behind a stalled reader (a full queue, or stdout not taking what is
    /// written) it gives up after `STALL_WAIT` (5 s), so that a shutdown ends.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let queued = self.tx.send_timeout(Message::Close, STALL_WAIT).is_ok();
        if queued
            && matches!(
                self.finished.recv_timeout(STALL_WAIT),
                Err(RecvTimeoutError::Disconnected)
            )
        {
            let _ = thread.join();
        } else {
            log::error!(
                "access log: the reader stopped reading; exiting without the lines still queued"
            );
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::tests::record;
    use std::fs::OpenOptions;
    use std::time::Instant;

    #[test]
    fn reopen_moves_to_a_new_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(path.clone()),
            format: LogFormat::Combined,
            syslog: None,
            pool_files: Vec::new(),
        })
        .unwrap();
        let sender = log.sender();
        sender.log(record());
        let rotated = dir.path().join("access.log.1");
        std::fs::rename(&path, &rotated).unwrap();
        sender
            .reopen(Some(path.clone()), LogFormat::Json, None, Vec::new())
            .unwrap();
        sender.log(record());
        log.finish();
        assert_eq!(
            std::fs::read_to_string(&rotated).unwrap().lines().count(),
            1
        );
        let now = std::fs::read_to_string(&path).unwrap();
        assert!(now.starts_with("{\"time\""), "{now}");
        assert!(sender
            .reopen(None, LogFormat::Json, None, Vec::new())
            .is_err());
    }

    #[test]
    fn a_reopen_to_the_same_syslog_connects_at_the_next_line_not_at_the_reopen() {
        // SIGUSR1 sent as the syslog daemon restarts (a logrotate
        // postrotate doing both): its socket may be back only after the
        // reopen. The next line finds it, rather than wait out the second
        // a connect failed at the reopen itself would hold it off for.
        use crate::access_log::{Facility, SyslogTarget};
        use std::os::unix::net::UnixDatagram;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.sock");
        let syslog = Syslog {
            target: SyslogTarget::Unix(path.clone()),
            facility: Facility::default(),
            tag: "inverso".into(),
        };
        let daemon = UnixDatagram::bind(&path).unwrap();
        let log = AccessLog::start(Outputs {
            syslog: Some(syslog.clone()),
            ..Outputs::default()
        })
        .unwrap();
        let sender = log.sender();
        drop(daemon);
        std::fs::remove_file(&path).unwrap();
        sender
            .reopen(None, LogFormat::Combined, Some(syslog), Vec::new())
            .unwrap();
        let daemon = UnixDatagram::bind(&path).unwrap();
        daemon
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        sender.log(record());
        log.finish();
        assert!(daemon.recv(&mut [0u8; 1024]).is_ok(), "the line never came");
        assert_eq!(sender.lost(), 0);
    }

    #[test]
    fn a_reader_that_stops_reading_stalls_the_queue_and_loses_nothing() {
        // The log goes to a pipe whose reader does not read (a stuck log
        // shipper): once the pipe and the queue are full, senders wait and
        // the log says it is stalled; when the reader drains, every line
        // comes through.
        use std::io::Read;
        use std::os::unix::ffi::OsStrExt;
        use std::os::unix::fs::OpenOptionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("pipe");
        let c_path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let mut reader = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(fifo.clone()),
            ..Outputs::default()
        })
        .unwrap();
        let sender = log.sender();
        assert!(!sender.is_stalled());
        let total = CHANNEL_CAPACITY + 4096;
        let writer = {
            let sender = sender.clone();
            std::thread::spawn(move || (0..total).for_each(|_| sender.log(record())))
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !sender.is_stalled() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(sender.is_stalled(), "the queue never filled");
        // Drain on a thread until the writer is done, then count lines.
        let drained = std::thread::spawn(move || {
            let mut all = Vec::new();
            let mut buf = [0u8; 65536];
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                match reader.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
            all
        });
        writer.join().unwrap();
        log.finish();
        let all = drained.join().unwrap();
        assert_eq!(all.iter().filter(|&&b| b == b'\n').count(), total);
        assert_eq!(sender.lost(), 0);
    }

    #[test]
    fn every_record_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(path.clone()),
            ..Outputs::default()
        })
        .unwrap();
        let senders: Vec<_> = (0..4).map(|_| log.sender()).collect();
        let threads: Vec<_> = senders
            .into_iter()
            .map(|s| {
                std::thread::spawn(move || {
                    for _ in 0..5000 {
                        s.log(record());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        // `finish` gives a stalled writer 5 s: on a machine busy enough
        // to starve it, writing 20,000 lines may take longer than that
        // without anything being lost. It is waited for here, bounded.
        let lines = || (std::fs::read_to_string(&path).unwrap().lines()).count();
        let deadline = Instant::now() + Duration::from_secs(120);
        while lines() < 20_000 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        log.finish();
        assert_eq!(lines(), 20_000);
    }
}
