//! The writer thread's loop: each message taken in turn by its outputs,
//! written in batches while requests keep coming.

use super::channel::{Message, Outputs};
use super::pool_files::PoolSinks;
use super::sink::{open_log_file, Sink};
use super::syslog::SyslogSink;
use super::{PoolFile, Record, Syslog};
use crate::config::LogFormat;
use crate::http::date::LogClock;
use crossbeam_channel::Receiver;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// While requests keep coming, the writer wakes this often to write what
/// queued up (a few hundred lines at a time under load).
const BATCH_INTERVAL: Duration = Duration::from_millis(5);

/// The writer thread's outputs.
struct Sinks {
    stdout: Option<Sink<io::StdoutLock<'static>>>,
    file: Option<Sink<File>>,
    /// A copy of each line routed to a pool with a file of its own, or
    /// one in its own format.
    pools: PoolSinks,
    syslog: Option<SyslogSink>,
    format: LogFormat,
    lost: Arc<AtomicU64>,
    /// The line being written, its memory kept from one to the next.
    line: String,
    clock: LogClock,
}

impl Sinks {
    /// Does what `message` asks; `false` for the last one (Close).
    fn take(&mut self, message: Message) -> bool {
        match message {
            Message::Record(record) => self.write(&record),
            Message::Reopen {
                file,
                format,
                syslog,
                pool_files,
                done,
                claimed,
            } => {
                if !claimed.swap(true, Ordering::SeqCst) {
                    let _ = done.send(self.reopen(file, format, syslog, &pool_files));
                }
            }
            Message::Close => return false,
        }
        true
    }

    fn write(&mut self, record: &Record) {
        let line = &mut self.line;
        line.clear();
        record.write_as(&self.format, line, &mut self.clock);
        if let Some(sink) = &mut self.syslog {
            sink.send(line, record.status, &self.lost);
        }
        line.push('\n');
        if let Some(sink) = &mut self.stdout {
            sink.write(line.as_bytes(), &self.lost);
        }
        if let Some(sink) = &mut self.file {
            sink.write(line.as_bytes(), &self.lost);
        }
        (self.pools).write(record, line, &mut self.clock, &self.lost);
    }

    fn flush(&mut self) {
        if let Some(sink) = &mut self.stdout {
            sink.flush(&self.lost);
        }
        if let Some(sink) = &mut self.file {
            sink.flush(&self.lost);
        }
        self.pools.flush(&self.lost);
    }

    fn reopen(
        &mut self,
        path: Option<PathBuf>,
        format: LogFormat,
        syslog: Option<Syslog>,
        pool_files: &[PoolFile],
    ) -> io::Result<()> {
        self.flush();
        // A fresh file deserves a fresh warning if it fails too. Every
        // file is opened before any is switched to: all or none.
        let file = match &path {
            Some(path) => Some(Sink::for_file(path, open_log_file(path)?)),
            None => None,
        };
        self.pools = PoolSinks::open(pool_files)?;
        self.file = file;
        self.format = format;
        match (&mut self.syslog, syslog) {
            (Some(sink), Some(settings)) if *sink.settings() == settings => sink.reconnect(),
            (_, settings) => self.syslog = settings.map(SyslogSink::new),
        }
        Ok(())
    }
}

pub(super) fn write_loop(
    rx: Receiver<Message>,
    outputs: Outputs,
    file: Option<File>,
    pools: PoolSinks,
    lost: Arc<AtomicU64>,
) {
    let mut sinks = Sinks {
        stdout: outputs
            .stdout
            .then(|| Sink::new("stdout", io::stdout().lock())),
        file: outputs
            .file
            .as_deref()
            .zip(file)
            .map(|(path, f)| Sink::for_file(path, f)),
        pools,
        syslog: outputs.syslog.map(SyslogSink::new),
        format: outputs.format,
        lost,
        line: String::with_capacity(256),
        clock: LogClock::new(),
    };
    // Park in `recv` only when traffic stops. While it flows, sleep between
    // batches instead: a sender wakes the writer (a futex call and a
    // context switch) only if it is parked, so under load the request
    // threads never pay for waking it.
    'idle: while let Ok(message) = rx.recv() {
        let reopen = matches!(message, Message::Reopen { .. });
        if !sinks.take(message) {
            break 'idle;
        }
        if reopen {
            continue 'idle;
        }
        loop {
            let mut batch = 0;
            for message in rx.try_iter() {
                if !sinks.take(message) {
                    break 'idle;
                }
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
    // Said at exit whatever the warnings' throttle let through: the
    // counter goes with the process.
    let lost = sinks.lost.load(Ordering::Relaxed);
    if lost > 0 {
        log::warn!(
            "access log: {lost} lines lost while this process ran (counted for each output \
             that lost them)"
        );
    }
}
