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

use crate::cache::policy::not_modified;
use crate::gzip::accepts_coding;
use crate::http::date::{format_http_date, parse_http_date};
use crate::http::range::{self, Ranged, Span};
use crate::http::{Headers, ResponseHead};
use crate::pace::Pacing;
use crate::routes::is_ambiguous;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod beneath;
pub mod listing;
pub mod mime;

use beneath::{Beneath, Opened};
use listing::{Entry, Format, Listing, MAX_LISTED};

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

/// The compressed copies `precompressed` looks for beside a file, in the
/// order preferred (Brotli's are the smaller): the name's suffix, the
/// content coding, and the names `Accept-Encoding` may give it.
const PRECOMPRESSED: [(&str, &str, &[&str]); 2] =
    [("br", "br", &["br"]), ("gz", "gzip", &["gzip", "x-gzip"])];

/// Why a `files` route's directory cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    #[error("{0}: {1}")]
    Unreadable(String, io::Error),
    #[error("{0}: not a directory")]
    NotADirectory(String),
}

/// What a request's path names under the directory.
#[derive(Debug)]
pub enum Found {
    /// A regular file, opened.
    File(Served),
    /// A directory asked for without its trailing `/`: the client is sent
    /// to it with one, so that the page's relative links work.
    Directory,
    /// With `autoindex`, a directory without an index: what it holds.
    Listing(Listing, Format),
    /// Nothing the route serves: no such file, a name it refuses, a
    /// directory without an index.
    Missing,
    /// The proxy may not read it (`EACCES`, `EPERM`).
    Forbidden(Unopened),
    /// Opening it failed otherwise: too many open files (see
    /// [`Unopened::exhausted`]), an I/O error.
    Failed(Unopened),
}

/// A name under the directory that could not be opened, and why.
#[derive(Debug)]
pub struct Unopened {
    /// The directory's path with the name asked for under it (a link on
    /// its way not followed), for the warning that names it.
    pub path: PathBuf,
    pub error: io::Error,
}

impl Unopened {
    /// Whether what ran out is the proxy's own (descriptors, memory), not
    /// the file that failed it.
    pub fn exhausted(&self) -> bool {
        self.error.kind() == io::ErrorKind::OutOfMemory
            || matches!(
                self.error.raw_os_error(),
                Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
            )
    }
}

/// A file about to be sent.
#[derive(Debug)]
pub struct Served {
    pub file: File,
    /// Where `file` was opened: the file asked for, or its
    /// `precompressed` copy (for the log).
    pub path: PathBuf,
    pub len: u64,
    pub modified: SystemTime,
    pub content_type: &'static str,
    /// With `precompressed`: the coding of the copy sent in the file's
    /// place, if one is; else the file's own (an `.svgz`'s gzip).
    pub encoding: Option<&'static str>,
    /// With `precompressed`: the answer depends on `Accept-Encoding`.
    pub varies: bool,
}

/// What to answer a GET or HEAD for a file found.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    /// 200 with the whole file, or 206 with bytes `start..start + len`;
    /// `fields`, without `Content-Length`, are the head's.
    Body {
        status: u16,
        start: u64,
        len: u64,
        fields: Headers,
    },
    /// 206 `multipart/byteranges` with these parts of the file, in the
    /// order asked; `fields` are the head's, the file's `Content-Type`
    /// among them (each part says it; the answer, its own).
    Parts { spans: Vec<Span>, fields: Headers },
    /// 304 with these fields.
    NotModified(Headers),
    /// 412: `If-Match` or `If-Unmodified-Since` failed.
    PreconditionFailed,
    /// 416, with the file's length for `Content-Range: bytes */<len>`.
    Unsatisfiable(u64),
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

    /// What `under` (the request's path below the route's prefix, as
    /// sent: escapes and all, without the query; empty or starting with
    /// `/`) names, for a request with the fields of `request`; what is
    /// missing is the `fallback=` file, when there is one.
    pub fn find(&self, under: &str, request: &Headers) -> Found {
        let (path, file, meta) = match (self.find_named(under), &self.fallback_file) {
            (Ok(found), _) => found,
            (Err(Found::Missing), Some(fallback)) => match self.open_file(fallback) {
                Ok((file, meta)) => (fallback.clone(), file, meta),
                Err(found) => return found,
            },
            (Err(found), _) => return found,
        };
        // The type, and the copies looked for, are the name's the request
        // gives (a link `latest.js` to `v2.js` is `latest.js`), as nginx's.
        let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
        let content_type = mime::content_type(name);
        let compressed = (PRECOMPRESSED.iter())
            .filter(|(_, _, names)| self.precompressed && accepts_coding(request, names))
            .find_map(|&(suffix, coding, _)| {
                let mut copy = path.clone().into_os_string();
                copy.push(".");
                copy.push(suffix);
                let (file, meta) = self.open_file(Path::new(&copy)).ok()?;
                Some((file, PathBuf::from(copy), meta, coding))
            });
        let own_encoding = mime::content_encoding(name);
        let (file, path, meta, encoding) = match compressed {
            Some((file, copy, meta, coding)) => (file, copy, meta, Some(coding)),
            None => (file, path, meta, own_encoding),
        };
        Found::File(Served {
            file,
            path,
            len: meta.len(),
            // Whole seconds: what `Last-Modified` can say, and what a
            // client's `If-Modified-Since` is compared with.
            modified: UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64),
            content_type,
            encoding,
            varies: self.precompressed,
        })
    }

    /// The regular file `under` names (see [`Files::find`]), its path
    /// under the directory (a directory's index's, for a directory), or
    /// what else it names.
    fn find_named(&self, under: &str) -> Result<(PathBuf, File, std::fs::Metadata), Found> {
        let mut path = relative_path(under).ok_or(Found::Missing)?;
        let (file, meta) = self.open_under(&path)?;
        if meta.is_dir() {
            // `/static/docs`: relative links in its index would be read
            // from `/static/`.
            if !under.ends_with('/') {
                return Err(Found::Directory);
            }
            let directory = file;
            let directory_path = self.dir.join(&path);
            path.push(INDEX);
            return match (self.open_file(&path), self.autoindex) {
                (Err(Found::Missing), Some(format)) => {
                    Err(self.listing(&directory, &directory_path, format))
                }
                (opened, _) => opened.map(|(file, meta)| (path, file, meta)),
            };
        }
        // `/app.js/`: a file is no directory (as `ENOTDIR` says).
        if under.ends_with('/') {
            return Err(Found::Missing);
        }
        Ok((path, file, meta))
    }

    /// What `directory` (opened by [`Files::open_under`]) holds that the
    /// route serves: its files and directories, and its links to those
    /// under the directory's real path, less any name that starts with
    /// `.` or that a request could not name unrefused; read through
    /// `/proc/self/fd`, so that it is the directory checked, whatever was
    /// renamed since (no listing without `/proc`). At most
    /// [`MAX_LISTED`] names are read, listed or not: a directory of a
    /// million costs a request no more than that.
    fn listing(&self, directory: &File, directory_path: &Path, format: Format) -> Found {
        let at = format!("/proc/self/fd/{}", directory.as_raw_fd());
        let names = match std::fs::read_dir(at) {
            Ok(names) => names,
            Err(e) => return found_for(e, directory_path),
        };
        let Ok(root) = self.dir.canonicalize() else {
            return Found::Missing;
        };
        // Names that start with `.` count as read: a directory of a
        // million of them costs no more than of others.
        let mut names = names;
        let entries = (names.by_ref().take(MAX_LISTED).flatten())
            .filter(|name| !name.file_name().as_bytes().starts_with(b"."))
            .filter_map(|name| self.entry(&name, &root))
            .collect();
        Found::Listing(Listing::new(entries, names.next().is_some()), format)
    }

    /// What the listing says of `name`, under the directory whose real
    /// path is `root`: nothing for what the route would not serve by that
    /// name.
    fn entry(&self, name: &std::fs::DirEntry, root: &Path) -> Option<Entry> {
        if is_ambiguous(&format!("/{}", listing::href(name.file_name().as_bytes()))) {
            return None;
        }
        let meta = match name.file_type().ok()?.is_symlink() {
            true => {
                let real = name.path().canonicalize().ok()?;
                if !holds_under(root, &real) {
                    return None;
                }
                std::fs::metadata(real).ok()?
            }
            false => name.metadata().ok()?,
        };
        (meta.is_file() || meta.is_dir()).then(|| Entry {
            name: name.file_name().as_bytes().to_vec(),
            directory: meta.is_dir(),
            len: meta.len(),
            modified: UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64),
        })
    }

    /// [`Files::open_under`], for a regular file alone: a directory is no
    /// file by that name.
    fn open_file(&self, relative: &Path) -> Result<(File, std::fs::Metadata), Found> {
        match self.open_under(relative)? {
            (file, meta) if meta.is_file() => Ok((file, meta)),
            _ => Err(Found::Missing),
        }
    }

    /// `relative` (a path [`relative_path`] made) opened, with its
    /// metadata, when it is a regular file or a directory under the
    /// directory's real path. Opened non-blocking, so that a FIFO does not
    /// wait for a writer (nor a read for its data).
    fn open_under(&self, relative: &Path) -> Result<(File, std::fs::Metadata), Found> {
        let path = || self.dir.join(relative);
        let file = match self.beneath.open(&self.dir, relative) {
            Opened::File(file) => file,
            Opened::Failed(e) => return Err(found_for(e, &path())),
            Opened::Linked => return self.open_checked(&path(), true),
            Opened::NotHere => return self.open_checked(&path(), false),
        };
        let meta = file.metadata().map_err(|e| failed(e, &path()))?;
        match meta.is_file() || meta.is_dir() {
            true => Ok((file, meta)),
            false => Err(Found::Missing),
        }
    }

    /// [`Files::open_under`] for a path with a link on its way, or where
    /// `openat2` is not at hand. The path is first opened without reading
    /// (`O_PATH`: a device or a mount point outside is not opened for its
    /// data, nor does what its permissions say leak out), and where it
    /// really is is asked of the kernel (`/proc/self/fd`), so that a link
    /// put in the way between a check and the open cannot lead out, as it
    /// could if the path were resolved first and opened after; only then
    /// is it opened for reading, through that same descriptor.
    fn open_checked(&self, path: &Path, linked: bool) -> Result<(File, std::fs::Metadata), Found> {
        let found = |e: io::Error| match found_for(e, path) {
            // Behind a link, what the proxy may not search is not there:
            // a link out says nothing of what it points to.
            Found::Forbidden(_) if linked => Found::Missing,
            other => other,
        };
        let placed = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_PATH)
            .open(path)
            .map_err(found)?;
        let meta = placed.metadata().map_err(|e| failed(e, path))?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(Found::Missing);
        }
        let at = format!("/proc/self/fd/{}", placed.as_raw_fd());
        // Without /proc (a chroot that lacks it), the path resolved after
        // the open, and opened again: a link swapped in since could lead
        // out.
        let (real, reopen) = match std::fs::read_link(&at) {
            Ok(real) => (real, PathBuf::from(at)),
            Err(_) => {
                let real = path.canonicalize().map_err(found)?;
                (real.clone(), real)
            }
        };
        if !self.holds(&real) {
            return Err(Found::Missing);
        }
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&reopen)
            .map_err(|e| found_for(e, path))?;
        // Opened again by its path (no `/proc`): the file checked, or none.
        let opened = file.metadata().map_err(|e| failed(e, path))?;
        if (opened.dev(), opened.ino()) != (meta.dev(), meta.ino()) {
            return Err(Found::Missing);
        }
        Ok((file, meta))
    }

    /// Whether `real` (a real path) is under the directory's real path,
    /// and under no name there that starts with `.` (a link `git` to
    /// `.git` leads to what a request may not name). The directory's real
    /// path is looked up each time (only paths with a link on their way
    /// come here): it may be a link switched since (`current` to
    /// `releases/42`), and the release before is not served through a
    /// link to it.
    fn holds(&self, real: &Path) -> bool {
        (self.dir.canonicalize()).is_ok_and(|root| holds_under(&root, real))
    }
}

/// Whether `real` is under `root` (both real paths), and under no name
/// there that starts with `.`.
fn holds_under(root: &Path, real: &Path) -> bool {
    real.strip_prefix(root).is_ok_and(|rest| {
        rest.components()
            .all(|c| !c.as_os_str().as_bytes().starts_with(b"."))
    })
}

/// What an error opening the name at `path` means for the request.
fn found_for(e: io::Error, path: &Path) -> Found {
    match e.kind() {
        io::ErrorKind::PermissionDenied => Found::Forbidden(Unopened {
            path: path.to_path_buf(),
            error: e,
        }),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            Found::Missing
        }
        // A link loop, a name too long, a socket (`ENXIO`) or a device
        // without its driver: no file by that name.
        _ if matches!(
            e.raw_os_error(),
            Some(libc::ELOOP | libc::ENAMETOOLONG | libc::ENXIO | libc::ENODEV | libc::EOPNOTSUPP)
        ) =>
        {
            Found::Missing
        }
        _ => failed(e, path),
    }
}

/// Opening `path` failed for a cause a request cannot help.
fn failed(error: io::Error, path: &Path) -> Found {
    Found::Failed(Unopened {
        path: path.to_path_buf(),
        error,
    })
}

/// The path under the directory that `under` names: its segments, each
/// decoded; `None` when one is refused (see the module's documentation)
/// or holds an escape that is not one.
fn relative_path(under: &str) -> Option<PathBuf> {
    let mut path = PathBuf::new();
    for segment in under.split('/').filter(|s| !s.is_empty()) {
        let decoded = percent_decoded(segment)?;
        if decoded.starts_with(b".") || decoded.contains(&b'/') || decoded.contains(&0) {
            return None;
        }
        path.push(std::ffi::OsStr::from_bytes(&decoded));
    }
    Some(path)
}

/// `segment` with every `%XX` decoded; `None` for a `%` without two hex
/// digits after it.
fn percent_decoded(segment: &str) -> Option<Vec<u8>> {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let digit = |at: usize| (*bytes.get(at)? as char).to_digit(16);
            out.push((digit(i + 1)? * 16 + digit(i + 2)?) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Some(out)
}

/// The answer to a GET or HEAD with `request`'s fields for `served`,
/// after RFC 9110 §13.2.2's order: `If-Match`, else
/// `If-Unmodified-Since` (412); `If-None-Match`, else
/// `If-Modified-Since` (304); then, when `ranged` (a GET: RFC 9110
/// §14.2 defines ranges for GET alone, and a HEAD's `Range` is
/// ignored, as the cache does), `Range` (206, 416) under `If-Range`.
/// `fresh` is the route's `Cache-Control` and the `max_age=` it says.
pub fn reply(
    served: &Served,
    request: &Headers,
    ranged: bool,
    fresh: Option<(&str, Duration)>,
    now: SystemTime,
) -> Reply {
    let etag = entity_tag(served);
    // RFC 9110 §8.8.2.1: never later than the answer's own Date (a file
    // stamped in the future by a clock that was wrong).
    let modified = served.modified.min(now);
    if !preconditions_hold(request, &etag, modified) {
        return Reply::PreconditionFailed;
    }
    let mut fields = Headers::with_capacity(6, 160);
    fields.push("Date", format_http_date(now));
    fields.push("Last-Modified", format_http_date(modified));
    fields.push("ETag", &etag);
    // Both, as nginx's `expires` sends them: `Expires` for the HTTP/1.0
    // caches and CDNs that read only it (HTTP/1.1 ones read `max-age`
    // first, RFC 9111 §5.3), on a 304 too (RFC 9110 §15.4.5).
    if let Some((cache_control, max_age)) = fresh {
        fields.push("Expires", format_http_date(now + max_age));
        fields.push("Cache-Control", cache_control);
    }
    // A 304 names what its 200 would vary on (RFC 9110 §15.4.5).
    if served.varies {
        fields.push("Vary", "Accept-Encoding");
    }
    let validators = ResponseHead {
        headers: fields,
        ..ResponseHead::new(200)
    };
    if not_modified(request, &validators) {
        return Reply::NotModified(validators.headers);
    }
    let mut fields = validators.headers;
    fields.push("Content-Type", served.content_type);
    if let Some(coding) = served.encoding {
        fields.push("Content-Encoding", coding);
    }
    // An empty file has no part to ask for (see `range::requested`).
    if served.len > 0 {
        fields.push("Accept-Ranges", "bytes");
    }
    let whole = |fields| Reply::Body {
        status: 200,
        start: 0,
        len: served.len,
        fields,
    };
    let ranges = match ranged {
        true => range::requested(request, &fields, served.len),
        false => Ranged::Whole,
    };
    match ranges {
        Ranged::Whole => whole(fields),
        Ranged::Parts(spans) => Reply::Parts { spans, fields },
        Ranged::Part { start, end } => {
            fields.push(
                "Content-Range",
                format!("bytes {start}-{end}/{}", served.len),
            );
            Reply::Body {
                status: 206,
                start,
                len: end - start + 1,
                fields,
            }
        }
        Ranged::Unsatisfiable => Reply::Unsatisfiable(served.len),
    }
}

/// The file's strong entity-tag, as nginx makes it: its modification
/// time and its length, in hex.
fn entity_tag(served: &Served) -> String {
    let modified = (served.modified.duration_since(UNIX_EPOCH)).map_or(0, |d| d.as_secs());
    format!("\"{modified:x}-{:x}\"", served.len)
}

/// RFC 9110 §13.1.1-1.4: `If-Match` by strong comparison (`*` matches
/// any file), else `If-Unmodified-Since`, ignored when it is no date.
fn preconditions_hold(request: &Headers, etag: &str, modified: SystemTime) -> bool {
    if request.contains("if-match") {
        return (request.quoted_list("if-match")).any(|tag| tag == "*" || tag == etag);
    }
    // Two fields are a list of dates, no date: ignored (RFC 9110
    // §13.1.4), as two If-Modified-Since are.
    let mut dates = request.get_all("if-unmodified-since");
    let since = match (dates.next(), dates.next()) {
        (Some(date), None) => std::str::from_utf8(date).ok().and_then(parse_http_date),
        _ => None,
    };
    since.is_none_or(|since| modified <= since)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::os::unix::fs::symlink;

    fn site() -> (tempfile::TempDir, Files) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("site");
        fs::create_dir_all(root.join("docs")).unwrap();
        fs::create_dir_all(root.join("empty")).unwrap();
        fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
        fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
        fs::write(root.join("app.js"), "let a = 1;").unwrap();
        fs::write(root.join("a b.txt"), "spaced").unwrap();
        fs::write(root.join(".env"), "SECRET=1").unwrap();
        fs::write(dir.path().join("outside.txt"), "outside").unwrap();
        let files = Files::open(root.to_str().unwrap()).unwrap();
        (dir, files)
    }

    impl Files {
        fn find_plain(&self, under: &str) -> Found {
            self.find(under, &Headers::new())
        }
    }

    fn body_of(found: Found) -> String {
        match found {
            Found::File(served) => io::read_to_string(served.file).unwrap(),
            other => panic!("no file: {other:?}"),
        }
    }

    #[test]
    fn if_unmodified_since_sent_as_a_list_of_dates_is_ignored() {
        // RFC 9110 §13.1.4: ignored when "the field value appears to be a
        // list of dates": two field lines make one list (§5.3).
        let before = http_date(MODIFIED - 10);
        let after = http_date(MODIFIED + 10);
        let reply = answer(&[
            ("If-Unmodified-Since", &before),
            ("If-Unmodified-Since", &after),
        ]);
        assert!(
            matches!(reply, Reply::Body { status: 200, .. }),
            "{reply:?}"
        );
        let reply = answer(&[("If-Unmodified-Since", &before)]);
        assert!(matches!(reply, Reply::PreconditionFailed), "{reply:?}");
    }

    #[test]
    fn a_path_names_a_file_and_a_directory_its_index() {
        let (_dir, files) = site();
        assert_eq!(body_of(files.find_plain("/app.js")), "let a = 1;");
        assert_eq!(body_of(files.find_plain("/")), "<h1>home</h1>");
        assert!(matches!(files.find_plain(""), Found::Directory));
    }

    #[test]
    fn escapes_are_decoded_and_slashes_merged() {
        let (_dir, files) = site();
        assert_eq!(body_of(files.find_plain("/a%20b.txt")), "spaced");
        assert_eq!(body_of(files.find_plain("//docs//")), "<h1>docs</h1>");
        assert_eq!(body_of(files.find_plain("/%61pp.js")), "let a = 1;");
    }

    #[test]
    fn a_directory_without_its_slash_is_redirected_and_one_without_index_missing() {
        let (_dir, files) = site();
        assert!(matches!(files.find_plain("/docs"), Found::Directory));
        assert!(matches!(files.find_plain("/empty/"), Found::Missing));
        assert!(matches!(files.find_plain("/nothing.txt"), Found::Missing));
        assert!(matches!(files.find_plain("/app.js/"), Found::Missing));
    }

    #[test]
    fn nothing_outside_or_hidden_is_served() {
        let (dir, files) = site();
        for path in [
            "/.env",
            "/%2Eenv",
            "/../outside.txt",
            "/%2E%2E/outside.txt",
            "/docs/%2E%2E/%2E%2E/outside.txt",
            "/..%2Foutside.txt",
            "/docs%2F..%2F..%2Foutside.txt",
            "/app.js%00.png",
            "/%zz",
            "/%4",
            "/%+0",
        ] {
            assert!(matches!(files.find_plain(path), Found::Missing), "{path}");
        }
        // A link out of the directory is not followed out of it; one
        // inside it is.
        let root = dir.path().join("site");
        symlink(dir.path().join("outside.txt"), root.join("out.txt")).unwrap();
        symlink(root.join("app.js"), root.join("latest.js")).unwrap();
        symlink(dir.path(), root.join("up")).unwrap();
        fs::create_dir(root.join(".git")).unwrap();
        fs::write(root.join(".git/config"), "secret").unwrap();
        symlink(root.join(".git"), root.join("git")).unwrap();
        assert!(matches!(files.find_plain("/git/config"), Found::Missing));
        assert!(matches!(files.find_plain("/out.txt"), Found::Missing));
        assert!(matches!(
            files.find_plain("/up/outside.txt"),
            Found::Missing
        ));
        assert_eq!(body_of(files.find_plain("/latest.js")), "let a = 1;");
    }

    #[test]
    fn a_directory_that_is_a_link_is_followed_when_switched() {
        let dir = tempfile::tempdir().unwrap();
        for release in ["1", "2"] {
            fs::create_dir(dir.path().join(release)).unwrap();
            fs::write(dir.path().join(release).join("v.txt"), release).unwrap();
        }
        let current = dir.path().join("current");
        symlink(dir.path().join("1"), &current).unwrap();
        let files = Files {
            beneath: Beneath::reopening_each_time(),
            ..Files::open(current.to_str().unwrap()).unwrap()
        };
        assert_eq!(body_of(files.find_plain("/v.txt")), "1");
        let next = dir.path().join("next");
        symlink(dir.path().join("2"), &next).unwrap();
        fs::rename(&next, &current).unwrap();
        assert_eq!(body_of(files.find_plain("/v.txt")), "2");
        // The first release, now outside the directory, is not served
        // through a link left in the second.
        symlink(dir.path().join("1/v.txt"), dir.path().join("2/old.txt")).unwrap();
        assert!(matches!(files.find_plain("/old.txt"), Found::Missing));
    }

    #[test]
    fn a_fallback_file_answers_what_is_missing_and_nothing_else() {
        let (_dir, files) = site();
        let files = files.with_fallback_file("/index.html").unwrap();
        assert_eq!(files.fallback_file(), Some(Path::new("index.html")));
        for missing in ["/app/settings", "/nothing.txt", "/.env", "/empty/"] {
            assert_eq!(
                body_of(files.find_plain(missing)),
                "<h1>home</h1>",
                "{missing}"
            );
        }
        assert_eq!(body_of(files.find_plain("/app.js")), "let a = 1;");
        assert!(matches!(files.find_plain("/docs"), Found::Directory));
        let Found::File(served) = files.find_plain("/deep/link") else {
            panic!()
        };
        assert_eq!(served.content_type, "text/html; charset=utf-8");
    }

    #[test]
    fn a_fallback_file_must_be_a_file_of_the_directory() {
        let (dir, _) = site();
        let files = || Files::open(dir.path().join("site").to_str().unwrap()).unwrap();
        for bad in [
            "/index%2Ehtml",
            "/missing.html",
            "/docs",
            "/",
            "/.env",
            "/../outside.txt",
            "index.html",
        ] {
            let e = files().with_fallback_file(bad).map(|_| ()).unwrap_err();
            assert!(e.starts_with(&format!("fallback={bad}: ")), "{bad}: {e}");
        }
        assert!(files().with_fallback_file("/docs/index.html").is_ok());
    }

    #[test]
    fn a_socket_is_no_file() {
        let (dir, files) = site();
        let _socket = std::os::unix::net::UnixListener::bind(dir.path().join("site/sock")).unwrap();
        assert!(matches!(files.find_plain("/sock"), Found::Missing));
    }

    #[test]
    fn a_fifo_is_not_served_nor_waited_on() {
        let (dir, files) = site();
        let fifo = dir.path().join("site/pipe");
        let path = std::ffi::CString::new(fifo.as_os_str().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo only creates a node.
        assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o644) }, 0);
        assert!(matches!(files.find_plain("/pipe"), Found::Missing));
    }

    #[test]
    fn precompressed_copies_go_to_the_clients_that_take_them() {
        let (dir, files) = site();
        let root = dir.path().join("site");
        fs::write(root.join("app.js.gz"), "gzipped").unwrap();
        fs::write(root.join("app.js.br"), "brotli").unwrap();
        fs::write(root.join("docs/index.html.gz"), "gzipped index").unwrap();
        let asking = |coding: &str| request(&[("Accept-Encoding", coding)]);
        let plain = files.find("/app.js", &asking("gzip, br"));
        assert_eq!(body_of(plain), "let a = 1;", "off unless asked for");
        let files = files.with_precompressed();
        let found = |under, coding| match files.find(under, &asking(coding)) {
            Found::File(served) => {
                assert!(served.varies);
                if under == "/app.js" {
                    assert_eq!(served.content_type, mime::content_type(b"x.js"));
                }
                let encoding = served.encoding;
                (encoding, io::read_to_string(served.file).unwrap())
            }
            other => panic!("{other:?}"),
        };
        assert_eq!(found("/app.js", "gzip, br"), (Some("br"), "brotli".into()));
        assert_eq!(found("/app.js", "gzip"), (Some("gzip"), "gzipped".into()));
        assert_eq!(
            found("/app.js", "br;q=0, gzip"),
            (Some("gzip"), "gzipped".into())
        );
        assert_eq!(found("/app.js", "identity"), (None, "let a = 1;".into()));
        assert_eq!(
            found("/docs/", "br, gzip"),
            (Some("gzip"), "gzipped index".into())
        );
        // The copy is asked for as the file is; by its own name it is a
        // file as any other.
        assert!(matches!(
            files.find("/app.js.gz", &asking("identity")),
            Found::File(Served { encoding: None, .. })
        ));
    }

    #[test]
    fn the_type_is_the_names() {
        let (_dir, files) = site();
        let Found::File(served) = files.find_plain("/docs/") else {
            panic!()
        };
        assert_eq!(served.content_type, "text/html; charset=utf-8");
        assert_eq!(served.len, 13);
    }

    #[test]
    fn a_missing_or_plain_file_is_no_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        fs::write(&file, "x").unwrap();
        let missing = dir.path().join("missing");
        assert!(matches!(
            Files::open(file.to_str().unwrap()),
            Err(FilesError::NotADirectory(_))
        ));
        let error = Files::open(missing.to_str().unwrap()).unwrap_err();
        assert!(error.to_string().contains("missing"), "{error}");
    }

    fn served(len: u64, modified_secs: u64) -> Served {
        Served {
            file: File::open("/dev/null").unwrap(),
            path: PathBuf::from("/dev/null"),
            len,
            modified: UNIX_EPOCH + Duration::from_secs(modified_secs),
            content_type: "text/plain; charset=utf-8",
            encoding: None,
            varies: false,
        }
    }

    fn request(fields: &[(&str, &str)]) -> Headers {
        let mut headers = Headers::new();
        for (name, value) in fields {
            headers.push(name, value);
        }
        headers
    }

    const NOW: u64 = 1_700_000_000;
    const MODIFIED: u64 = NOW - 3600;

    fn answer(fields: &[(&str, &str)]) -> Reply {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        reply(
            &served(1000, MODIFIED),
            &request(fields),
            true,
            Some(("max-age=60", Duration::from_secs(60))),
            now,
        )
    }

    #[test]
    fn max_age_and_immutable_make_the_cache_control() {
        let (_dir, files) = site();
        assert_eq!(files.cache_control(), None);
        let e = files.with_immutable().map(|_| ()).unwrap_err();
        assert!(e.contains("max_age="), "{e}");
        let (_dir, files) = site();
        let files = files.with_max_age(Duration::from_secs(3600));
        assert_eq!(files.cache_control().as_deref(), Some("max-age=3600"));
        let files = files.with_immutable().unwrap();
        assert!(files.immutable());
        let immutable = files.cache_control();
        assert_eq!(immutable.as_deref(), Some("max-age=3600, immutable"));
    }

    #[test]
    fn max_age_sends_expires_beside_cache_control_on_a_304_too() {
        let expected = [
            ("expires", http_date(NOW + 60)),
            ("cache-control", "max-age=60".to_owned()),
        ];
        let Reply::Body { fields, .. } = answer(&[]) else {
            panic!("no body");
        };
        let tag = format!("\"{MODIFIED:x}-{:x}\"", 1000);
        let Reply::NotModified(not_modified) = answer(&[("If-None-Match", &tag)]) else {
            panic!("no 304");
        };
        for fields in [fields, not_modified] {
            for (name, value) in &expected {
                assert_eq!(fields.get_str(name), Some(value.as_str()), "{name}");
            }
        }
    }

    #[test]
    fn a_head_s_range_is_ignored() {
        let now = UNIX_EPOCH + Duration::from_secs(NOW);
        let range = request(&[("Range", "bytes=0-9")]);
        let reply = reply(&served(1000, MODIFIED), &range, false, None, now);
        assert!(matches!(
            reply,
            Reply::Body {
                status: 200,
                len: 1000,
                ..
            }
        ));
    }

    fn http_date(secs: u64) -> String {
        format_http_date(UNIX_EPOCH + Duration::from_secs(secs))
    }

    #[test]
    fn a_plain_get_gets_the_file_with_its_validators() {
        let Reply::Body {
            status: 200,
            start: 0,
            len: 1000,
            fields,
        } = answer(&[])
        else {
            panic!("{:?}", answer(&[]))
        };
        assert_eq!(fields.get_str("etag"), Some("\"6553e2f0-3e8\""));
        assert_eq!(
            fields.get_str("last-modified").map(String::from),
            Some(http_date(MODIFIED))
        );
        assert_eq!(fields.get_str("cache-control"), Some("max-age=60"));
        assert_eq!(fields.get_str("accept-ranges"), Some("bytes"));
        assert!(!fields.contains("content-length"));
    }

    #[test]
    fn conditionals_in_rfc_order() {
        let etag = "\"6553e2f0-3e8\"";
        let after = http_date(MODIFIED + 10);
        let before = http_date(MODIFIED - 10);
        assert!(matches!(
            answer(&[("If-None-Match", etag)]),
            Reply::NotModified(_)
        ));
        assert!(matches!(
            answer(&[("If-None-Match", &format!("W/{etag}"))]),
            Reply::NotModified(_)
        ));
        assert!(matches!(
            answer(&[("If-Modified-Since", &after)]),
            Reply::NotModified(_)
        ));
        // If-None-Match wins over If-Modified-Since.
        assert!(matches!(
            answer(&[
                ("If-None-Match", "\"other\""),
                ("If-Modified-Since", &after)
            ]),
            Reply::Body { status: 200, .. }
        ));
        assert!(matches!(
            answer(&[("If-Modified-Since", &before)]),
            Reply::Body { status: 200, .. }
        ));
        assert_eq!(
            answer(&[("If-Match", "\"other\"")]),
            Reply::PreconditionFailed
        );
        assert!(matches!(answer(&[("If-Match", etag)]), Reply::Body { .. }));
        // If-Match compares strongly.
        assert_eq!(
            answer(&[("If-Match", &format!("W/{etag}"))]),
            Reply::PreconditionFailed
        );
        assert_eq!(
            answer(&[("If-Unmodified-Since", &before)]),
            Reply::PreconditionFailed
        );
        assert!(matches!(
            answer(&[("If-Unmodified-Since", "not a date")]),
            Reply::Body { .. }
        ));
    }

    #[test]
    fn one_range_is_a_part_and_several_are_parts() {
        let Reply::Body {
            status: 206,
            start: 100,
            len: 100,
            fields,
        } = answer(&[("Range", "bytes=100-199")])
        else {
            panic!()
        };
        assert_eq!(fields.get_str("content-range"), Some("bytes 100-199/1000"));
        let Reply::Parts { spans, fields } = answer(&[("Range", "bytes=0-9,20-29")]) else {
            panic!()
        };
        let span = |start, end| Span { start, end };
        assert_eq!(spans, [span(0, 9), span(20, 29)]);
        assert!(!fields.contains("content-range"));
        assert_eq!(
            answer(&[("Range", "bytes=5000-")]),
            Reply::Unsatisfiable(1000)
        );
        // If-Range with another tag: the whole file.
        assert!(matches!(
            answer(&[("Range", "bytes=0-9"), ("If-Range", "\"old\"")]),
            Reply::Body { status: 200, .. }
        ));
        assert!(matches!(
            answer(&[("Range", "bytes=0-9"), ("If-Range", "\"6553e2f0-3e8\"")]),
            Reply::Body { status: 206, .. }
        ));
    }
}
