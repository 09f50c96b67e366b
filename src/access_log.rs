//! The access log: one line per request, written by one thread so request
//! threads never wait on stdout. Records travel over a bounded channel;
//! when it is full, senders wait (a line is never dropped), which only
//! happens if stdout itself cannot keep up.

use crate::http::date::format_clf;
use crossbeam_channel::{bounded, Receiver, Sender};
use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

/// Records in flight between request threads and the writer.
const CHANNEL_CAPACITY: usize = 16 * 1024;
/// While requests keep coming, the writer wakes this often to write what
/// queued up (a few hundred lines at a time under load).
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

/// What is logged about one request.
#[derive(Clone, Debug)]
pub struct Record {
    /// When the request head arrived.
    pub time: SystemTime,
    pub client: IpAddr,
    /// `GET /path HTTP/1.1`, or what could be read of a malformed one.
    pub request_line: String,
    pub status: u16,
    /// Body bytes sent to the client.
    pub bytes: u64,
    pub referer: Option<String>,
    pub user_agent: Option<String>,
    /// The target that answered, if any.
    pub upstream: Option<Arc<str>>,
    /// HIT, MISS, ... when the cache had a say.
    pub cache: Option<&'static str>,
    pub duration: Duration,
}

impl Record {
    /// The line as written (without newline): the combined log format, then
    /// `upstream=`, `cache=` and `duration_ms=`. Quoted fields escape `"`,
    /// `\` and non-printable bytes as `\xHH`, so a client cannot forge lines.
    pub fn format(&self) -> String {
        let mut line = String::with_capacity(160);
        let _ = write!(line, "{} - - [{}] \"", self.client, format_clf(self.time));
        escape_into(&mut line, &self.request_line);
        let _ = write!(line, "\" {} {} \"", self.status, self.bytes);
        escape_into(&mut line, self.referer.as_deref().unwrap_or("-"));
        line.push_str("\" \"");
        escape_into(&mut line, self.user_agent.as_deref().unwrap_or("-"));
        let _ = write!(
            line,
            "\" upstream={} cache={} duration_ms={:.3}",
            self.upstream.as_deref().unwrap_or("-"),
            self.cache.unwrap_or("-"),
            self.duration.as_secs_f64() * 1000.0
        );
        line
    }
}

fn escape_into(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                let _ = write!(out, "\\x{:02X}", c as u32);
            }
            c if c.is_control() || !c.is_ascii() => {
                let mut buf = [0u8; 4];
                for b in c.encode_utf8(&mut buf).bytes() {
                    let _ = write!(out, "\\x{b:02X}");
                }
            }
            c => out.push(c),
        }
    }
}

enum Message {
    Record(Box<Record>),
    /// Write what is queued, then stop.
    Close,
}

/// Where log lines go.
#[derive(Clone, Debug, Default)]
pub struct Outputs {
    pub stdout: bool,
    pub file: Option<PathBuf>,
}

/// A cheap handle request threads use to log.
#[derive(Clone)]
pub struct LogSender {
    tx: Sender<Message>,
}

impl LogSender {
    /// Queues a record; waits if the writer is behind, never drops.
    pub fn log(&self, record: Record) {
        // The writer only goes away at shutdown, after request threads.
        let _ = self.tx.send(Message::Record(Box::new(record)));
    }
}

/// The writer thread.
pub struct AccessLog {
    tx: Sender<Message>,
    thread: Option<JoinHandle<()>>,
}

impl AccessLog {
    /// Opens the log file (append) and starts the writer.
    pub fn start(outputs: Outputs) -> io::Result<AccessLog> {
        let file = match &outputs.file {
            Some(path) => Some(open_log_file(path)?),
            None => None,
        };
        let (tx, rx) = bounded(CHANNEL_CAPACITY);
        let thread = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || write_loop(rx, outputs.stdout, file))?;
        Ok(AccessLog {
            tx,
            thread: Some(thread),
        })
    }

    pub fn sender(&self) -> LogSender {
        LogSender {
            tx: self.tx.clone(),
        }
    }

    /// Writes every record queued so far, flushes, and stops the writer.
    pub fn finish(mut self) {
        self.close();
    }

    fn close(&mut self) {
        let _ = self.tx.send(Message::Close);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.close();
    }
}

fn open_log_file(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot open {}: {e}", path.display())))
}

/// The writer thread's outputs.
struct Sinks {
    stdout: Option<BufWriter<io::StdoutLock<'static>>>,
    file: Option<BufWriter<File>>,
    warned: bool,
}

impl Sinks {
    fn write(&mut self, record: &Record) {
        let mut line = record.format();
        line.push('\n');
        let results = [
            self.stdout.as_mut().map(|w| w.write_all(line.as_bytes())),
            self.file.as_mut().map(|w| w.write_all(line.as_bytes())),
        ];
        self.report(results);
    }

    fn flush(&mut self) {
        let results = [
            self.stdout.as_mut().map(|w| w.flush()),
            self.file.as_mut().map(|w| w.flush()),
        ];
        self.report(results);
    }

    /// Says once that the log cannot be written (a full disk, a closed
    /// pipe); request threads go on regardless.
    fn report(&mut self, results: [Option<io::Result<()>>; 2]) {
        for e in results.into_iter().flatten().filter_map(Result::err) {
            if !self.warned {
                log::warn!("access log: cannot write: {e}");
                self.warned = true;
            }
        }
    }
}

fn write_loop(rx: Receiver<Message>, to_stdout: bool, file: Option<File>) {
    let mut sinks = Sinks {
        stdout: to_stdout.then(|| BufWriter::with_capacity(64 * 1024, io::stdout().lock())),
        file: file.map(|f| BufWriter::with_capacity(64 * 1024, f)),
        warned: false,
    };
    // Park in `recv` only when traffic stops. While it flows, sleep between
    // batches instead: a sender wakes the writer (a futex call and a
    // context switch) only if it is parked, so under load the request
    // threads never pay for waking it.
    'idle: while let Ok(Message::Record(record)) = rx.recv() {
        sinks.write(&record);
        loop {
            let mut batch = 0;
            for message in rx.try_iter() {
                let Message::Record(record) = message else {
                    break 'idle;
                };
                sinks.write(&record);
                batch += 1;
            }
            sinks.flush();
            if batch == 0 {
                continue 'idle;
            }
            std::thread::sleep(BATCH_INTERVAL);
        }
    }
    sinks.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn record() -> Record {
        Record {
            time: UNIX_EPOCH + Duration::from_secs(784_111_777),
            client: "127.0.0.1".parse().unwrap(),
            request_line: "GET /a\"b HTTP/1.1".into(),
            status: 200,
            bytes: 512,
            referer: None,
            user_agent: Some("curl/8\n".into()),
            upstream: Some("127.0.0.1:9001".into()),
            cache: Some("MISS"),
            duration: Duration::from_micros(1500),
        }
    }

    #[test]
    fn formats_a_combined_line_with_extras() {
        assert_eq!(
            record().format(),
            "127.0.0.1 - - [06/Nov/1994:08:49:37 +0000] \"GET /a\\x22b HTTP/1.1\" 200 512 \"-\" \"curl/8\\x0A\" upstream=127.0.0.1:9001 cache=MISS duration_ms=1.500"
        );
    }

    #[test]
    fn every_record_reaches_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("access.log");
        let log = AccessLog::start(Outputs {
            stdout: false,
            file: Some(path.clone()),
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
        log.finish();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 20_000);
    }
}
