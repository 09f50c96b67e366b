//! Files served from a directory (`route./static/ = files /srv/www`):
//! nginx's `location /static/ { alias /srv/www/; }`, with its `index
//! index.html`, `etag`, `if_modified_since` and byte ranges.
//!
//! The path under the route's prefix names a file under the directory.
//! What could reach outside it is never opened: each segment is decoded
//! and one that starts with `.` (`.`, `..`, `.git`, `.env`) or decodes to
//! a `/` or a NUL names nothing, and the file found, symbolic links
//! followed, must be under the directory's own real path. Only regular
//! files are served, opened so that a FIFO or a device swapped in cannot
//! block the thread.
//!
//! # Layout
//! - `find`: what a request's path names under the directory
//!   ([`Found`]): a file ([`Served`]) or its precompressed copy, a
//!   directory's index or listing, or nothing.
//! - `open`: a name under the directory opened without leaving it: the
//!   path a request names, links checked, and what a failed open means.
//! - `reply`: the answer to a GET or HEAD for a file found ([`reply()`]):
//!   its validators, preconditions and ranges.
//! - `beneath`: opening under the directory without following links out
//!   of it (`openat2`).
//! - `listing`: a directory's listing, as `autoindex` writes it.
//! - `mime`: a file's type and coding from its name.
//! - `tests`: the directory's settings, and what requests find in it.
//! - here: [`Files`], the directory a `files` route serves, and its
//!   settings.

use crate::pace::Pacing;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

mod beneath;
mod find;
pub mod listing;
pub mod mime;
mod open;
mod reply;
#[cfg(test)]
mod tests;

pub use find::{Found, Served, Unopened};
pub use reply::{reply, Reply};

use beneath::Beneath;
use listing::Format;
use open::relative_path;

/// The file a directory's own path (`/static/`) is answered with.
pub const INDEX: &str = "index.html";

/// Longest `max_age=` a route may give: a year, as RFC 9111 §5.3 says of
/// `Expires` ("SHOULD NOT ... more than one year in the future").
pub const MAX_MAX_AGE: Duration = Duration::from_secs(365 * 24 * 3600);

/// The directory a `files` route serves.
#[derive(Debug)]
pub struct Files {
    /// As configured, made absolute: what a request's path is put under.
    dir: PathBuf,
    /// It opened, for the files with no link on their way.
    beneath: Beneath,
    /// `fallback=/<file>`: what answers for a name it does not have.
    fallback_file: Option<PathBuf>,
    /// `max_age=`: what `Cache-Control: max-age` tells clients and caches.
    max_age: Option<Duration>,
    /// `immutable`: with `max_age`, the files never change under their
    /// names (hashed assets): browsers do not revalidate them on reload.
    immutable: bool,
    /// `precompressed`: a file's `.br` or `.gz` beside it is sent in its
    /// place to the clients that take that coding.
    precompressed: bool,
    /// `autoindex`: a directory without an index is answered with its
    /// listing, written so.
    autoindex: Option<Format>,
    /// `limit_rate=` and `limit_rate_after=`: the route's own, in place
    /// of its settings' (see [`crate::pace`]).
    rate: Option<u64>,
    rate_after: Option<u64>,
}

/// Why a `files` route's directory cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}: {1}")]
    Unreadable(String, io::Error),
    #[error("{0}: not a directory")]
    NotADirectory(String),
}

impl Files {
    /// The directory at `path` (from the working directory, when
    /// relative), checked at load: it must be one, that the proxy may
    /// look into.
    pub fn open(path: &str) -> Result<Files, FilesError> {
        let unreadable = |e| FilesError::Unreadable(path.to_string(), e);
        let dir = std::path::absolute(path).map_err(unreadable)?;
        let root = dir.canonicalize().map_err(unreadable)?;
        if !root.metadata().map_err(unreadable)?.is_dir() {
            return Err(FilesError::NotADirectory(path.to_string()));
        }
        // Search permission, which opening what is in it takes (reading
        // the directory is needed for `autoindex` alone).
        root.join(".").metadata().map_err(unreadable)?;
        Ok(Files {
            dir,
            beneath: Beneath::default(),
            fallback_file: None,
            max_age: None,
            immutable: false,
            precompressed: false,
            autoindex: None,
            rate: None,
            rate_after: None,
        })
    }

    /// The same directory, its files' `.br` and `.gz` copies sent in
    /// their place to the clients that take them.
    pub fn with_precompressed(self) -> Files {
        Files {
            precompressed: true,
            ..self
        }
    }

    pub fn precompressed(&self) -> bool {
        self.precompressed
    }

    /// The same directory, a directory without an index in it answered
    /// with its listing, as `format` writes it (`autoindex`): refused
    /// when the proxy may not read the directory itself.
    pub fn with_autoindex(self, format: Format) -> Result<Files, String> {
        if let Err(e) = std::fs::read_dir(&self.dir) {
            return Err(format!(
                "autoindex: {} cannot be listed: {e}",
                self.dir.display()
            ));
        }
        Ok(Files {
            autoindex: Some(format),
            ..self
        })
    }

    pub fn autoindex(&self) -> Option<Format> {
        self.autoindex
    }

    /// The same directory, its answers sent at `rate` after `after`
    /// bytes, where given, in place of the settings' `limit_rate` and
    /// `limit_rate_after`.
    pub fn with_pacing(self, rate: Option<u64>, after: Option<u64>) -> Files {
        Files {
            rate,
            rate_after: after,
            ..self
        }
    }

    /// How its answers are paced, given `settings`' pacing.
    pub fn pacing(&self, settings: Pacing) -> Pacing {
        Pacing {
            rate: self.rate.unwrap_or(settings.rate),
            after: self.rate_after.unwrap_or(settings.after),
        }
    }

    /// The same directory, answered with `Cache-Control: max-age`.
    pub fn with_max_age(self, max_age: Duration) -> Files {
        Files {
            max_age: Some(max_age),
            ..self
        }
    }

    /// Its path as configured, made absolute.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn max_age(&self) -> Option<Duration> {
        self.max_age
    }

    /// The same directory, its `max_age` said `immutable` (RFC 8246).
    pub fn with_immutable(self) -> Result<Files, String> {
        match self.max_age {
            Some(_) => Ok(Files {
                immutable: true,
                ..self
            }),
            None => Err("immutable says the files stay fresh for their max_age=: give one".into()),
        }
    }

    pub fn immutable(&self) -> bool {
        self.immutable
    }

    /// The `Cache-Control` its answers carry, if any.
    pub fn cache_control(&self) -> Option<String> {
        let seconds = self.max_age?.as_secs();
        Some(match self.immutable {
            true => format!("max-age={seconds}, immutable"),
            false => format!("max-age={seconds}"),
        })
    }

    /// The same directory, answering what it does not have with its
    /// file `file` (written as a path from its root: `/index.html`), as
    /// nginx's `try_files $uri $uri/ /index.html` does for a single-page
    /// application; checked to be a file there now.
    pub fn with_fallback_file(self, file: &str) -> Result<Files, String> {
        let written_plain = file.starts_with('/') && !file.contains('%');
        let path = relative_path(file).filter(|p| written_plain && p.file_name().is_some());
        let Some(path) = path else {
            return Err(format!(
                "fallback={file}: a file is named by its path in the directory, starting \
                 with `/`, with no `%` escape and no name starting with `.` \
                 (`fallback=/index.html`)"
            ));
        };
        match self.open_file(&path) {
            Ok(_) => Ok(Files {
                fallback_file: Some(path),
                ..self
            }),
            Err(_) => Err(format!(
                "fallback={file}: no such file in {}",
                self.dir.display()
            )),
        }
    }

    /// With `fallback=/<file>`: that file, as a path under the directory.
    pub fn fallback_file(&self) -> Option<&Path> {
        self.fallback_file.as_deref()
    }
}
