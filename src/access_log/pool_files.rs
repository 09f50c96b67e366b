//! Each pool's own file (`pool.<name>.path_to_log`): the lines of the
//! requests routed to that pool, besides the main log's (stdout,
//! `path_to_log`, syslog), which keeps every line. They are the main
//! log's lines, or lines of the pool's own format
//! (`pool.<name>.log_format`), made by the writer thread as the main
//! ones are: a record's line is made twice only when two formats are in
//! use.

use super::sink::{open_log_file, Sink};
use super::Record;
use crate::config::{log_key, same_file, Config, LogFormat};
use crate::http::date::LogClock;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A pool's own log file, as configured.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PoolFile {
    pub pool: Arc<str>,
    pub path: PathBuf,
    /// The format of its lines when not the main log's; `None`: the main
    /// log's line is written as it is.
    pub format: Option<LogFormat>,
}

impl PoolFile {
    /// The files `config`'s pools set, in the file's order: at most one a
    /// pool, so at most `MAX_POOLS`.
    pub fn all_of(config: &Config) -> Vec<PoolFile> {
        (config.pools.iter())
            .filter_map(|p| {
                Some(PoolFile {
                    pool: p.name.clone(),
                    path: p.path_to_log.clone()?,
                    format: (p.log_format.clone()).filter(|f| *f != config.log_format),
                })
            })
            .collect()
    }

    /// The key that names the file, for messages.
    pub fn key(&self) -> String {
        log_key(Some(&self.pool))
    }

    /// Opens the file as `path_to_log`'s is opened; an error names the key.
    pub fn open(&self) -> io::Result<File> {
        open_log_file(&self.path)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.key())))
    }
}

/// The pools' files, open: each file once, however many pools share it,
/// so that their lines go out in one write a batch, as the main file's do.
#[derive(Default)]
pub(super) struct PoolSinks {
    /// Each file, and the format of its lines (one a file: the
    /// configuration refuses a file shared in two formats).
    sinks: Vec<(Sink<File>, Option<LogFormat>)>,
    /// Each pool with a file of its own, and that file's place in `sinks`.
    by_pool: HashMap<Arc<str>, usize>,
    /// A line in a pool's own format, its memory kept from one to the next.
    line: String,
}

impl PoolSinks {
    /// Opens every file, or none: one that cannot be opened fails them
    /// all, so that a reload refused keeps the files in use as they were.
    pub(super) fn open(files: &[PoolFile]) -> io::Result<PoolSinks> {
        let mut open = PoolSinks::default();
        let mut paths: Vec<&Path> = Vec::new();
        for file in files {
            let at = match paths.iter().position(|p| same_file(p, &file.path)) {
                Some(at) => at,
                None => {
                    let sink = Sink::for_file(&file.path, file.open()?).named(file.key());
                    open.sinks.push((sink, file.format.clone()));
                    paths.push(&file.path);
                    paths.len() - 1
                }
            };
            open.by_pool.insert(file.pool.clone(), at);
        }
        Ok(open)
    }

    /// Adds `record`'s line to the file of its pool, if it has one: `main`,
    /// the main log's line, or one made in the file's own format.
    pub(super) fn write(
        &mut self,
        record: &Record,
        main: &str,
        clock: &mut LogClock,
        lost: &AtomicU64,
    ) {
        let at = (record.pool.as_deref()).and_then(|p| self.by_pool.get(p));
        let Some((sink, format)) = at.and_then(|&at| self.sinks.get_mut(at)) else {
            return;
        };
        let line = match format {
            Some(format) => {
                self.line.clear();
                record.write_as(format, &mut self.line, clock);
                self.line.push('\n');
                &self.line
            }
            None => main,
        };
        sink.write(line.as_bytes(), lost);
    }

    pub(super) fn flush(&mut self, lost: &AtomicU64) {
        for (sink, _) in &mut self.sinks {
            sink.flush(lost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::tests::record;
    use std::sync::atomic::Ordering;

    fn file(pool: &str, path: &Path) -> PoolFile {
        PoolFile {
            pool: pool.into(),
            path: path.to_path_buf(),
            format: None,
        }
    }

    /// Writes, for each of `pools`, a record routed there whose main line
    /// is the pool's name.
    fn write_each(sinks: &mut PoolSinks, pools: &[Option<&str>]) {
        let (lost, mut clock) = (AtomicU64::new(0), LogClock::new());
        for pool in pools {
            let r = Record {
                pool: pool.map(Arc::from),
                ..record()
            };
            let main = format!("{}\n", pool.unwrap_or("-"));
            sinks.write(&r, &main, &mut clock, &lost);
        }
        sinks.flush(&lost);
        assert_eq!(lost.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn two_pools_sharing_a_file_open_it_once_and_others_go_nowhere() {
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shop.log");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let spelled_otherwise = dir.path().join("sub/../shop.log");
        let own = dir.path().join("api.log");
        let files = [
            file("web", &shared),
            file("api", &own),
            file("img", &spelled_otherwise),
        ];
        let mut sinks = PoolSinks::open(&files).unwrap();
        assert_eq!(sinks.sinks.len(), 2);
        let pools = [Some("web"), Some("api"), Some("img"), Some("other"), None];
        write_each(&mut sinks, &pools);
        assert_eq!(std::fs::read_to_string(&shared).unwrap(), "web\nimg\n");
        assert_eq!(std::fs::read_to_string(&own).unwrap(), "api\n");
    }

    #[test]
    fn a_file_with_a_format_of_its_own_gets_lines_made_in_it() {
        let dir = tempfile::tempdir().unwrap();
        let (json, plain) = (dir.path().join("api.log"), dir.path().join("web.log"));
        let files = [
            PoolFile {
                format: Some(LogFormat::Json),
                ..file("api", &json)
            },
            file("web", &plain),
        ];
        let mut sinks = PoolSinks::open(&files).unwrap();
        write_each(&mut sinks, &[Some("api"), Some("web"), Some("api")]);
        let lines = std::fs::read_to_string(&json).unwrap();
        let lines: Vec<&str> = lines.lines().collect();
        assert_eq!(lines.len(), 2, "{lines:?}");
        for line in lines {
            let value = crate::json_value::parse(line.as_bytes()).unwrap();
            assert!(
                matches!(value, crate::json_value::Value::Object(_)),
                "{line}"
            );
        }
        assert_eq!(std::fs::read_to_string(&plain).unwrap(), "web\n");
    }

    #[test]
    fn one_file_that_cannot_be_opened_fails_them_all_naming_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let files = [
            file("web", &dir.path().join("web.log")),
            file("api", &dir.path().join("missing/api.log")),
        ];
        let e = PoolSinks::open(&files).err().unwrap().to_string();
        assert!(e.starts_with("pool.api.path_to_log: cannot open "), "{e}");
    }
}
