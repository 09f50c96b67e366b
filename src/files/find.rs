//! What a request's path names under the directory: a file, or the
//! precompressed copy a client takes in its place, a directory's index or
//! listing, or nothing the route serves.

use super::listing::{self, Entry, Format, Listing, MAX_LISTED};
use super::open::{found_for, holds_under, relative_path};
use super::{mime, Files, INDEX};
use crate::gzip::accepts_coding;
use crate::http::Headers;
use crate::routes::is_ambiguous;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The compressed copies `precompressed` looks for beside a file, in the
/// order preferred (Brotli's are the smaller): the name's suffix, the
/// content coding, and the names `Accept-Encoding` may give it.
const PRECOMPRESSED: [(&str, &str, &[&str]); 2] =
    [("br", "br", &["br"]), ("gz", "gzip", &["gzip", "x-gzip"])];

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
    /// With `precompressed` and `gunzip`, a file whose `.gz` copy alone
    /// is there, for a client that takes no gzip: decoded for it (nginx's
    /// `gzip_static always` with `gunzip on`). Without `gunzip`, such a
    /// file is missing for that client, as through nginx's `gzip_static on`.
    GzipAlone(Served),
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

impl Files {
    /// What `under` (the request's path below the route's prefix, as
    /// sent: escapes and all, without the query; empty or starting with
    /// `/`) names, for a request with the fields of `request`; what is
    /// missing is the `fallback=` file, when there is one. `gunzip`: a
    /// `.gz` copy alone may be decoded for a client that takes no gzip.
    pub fn find(&self, under: &str, request: &Headers, gunzip: bool) -> Found {
        let (path, file, meta) = match (self.find_named(under), &self.fallback_file) {
            (Ok(found), _) => found,
            (Err(Found::Missing), fallback) => {
                if let Some(found) = self.copy_alone(under, request, gunzip) {
                    return found;
                }
                let Some(fallback) = fallback else {
                    return Found::Missing;
                };
                match self.open_file(fallback) {
                    Ok((file, meta)) => (fallback.clone(), file, meta),
                    Err(found) => return found,
                }
            }
            (Err(found), _) => return found,
        };
        let name = path.file_name().map_or(&[][..], |n| n.as_bytes());
        let own_encoding = mime::content_encoding(name);
        let accepted = |names: &[&str]| accepts_coding(request, names);
        Found::File(match self.copy_of(&path, accepted) {
            Some((file, copy, meta, coding)) => self.served(file, copy, &meta, &path, Some(coding)),
            None => self.served(file, path.clone(), &meta, &path, own_encoding),
        })
    }

    /// With `precompressed`, what a file's copies are worth when the file
    /// itself is not there (a site built with its compressed copies
    /// alone): the copy the client takes, as nginx's `gzip_static` sends
    /// it without looking for the file; for a client that takes neither,
    /// the `.gz` copy, to be decoded ([`Found::GzipAlone`]) with `gunzip`.
    fn copy_alone(&self, under: &str, request: &Headers, gunzip: bool) -> Option<Found> {
        if !self.precompressed || under.ends_with('/') {
            return None;
        }
        let path = relative_path(under)?;
        let accepted = |names: &[&str]| accepts_coding(request, names);
        if let Some((file, copy, meta, coding)) = self.copy_of(&path, accepted) {
            return Some(Found::File(self.served(
                file,
                copy,
                &meta,
                &path,
                Some(coding),
            )));
        }
        let gzip = |names: &[&str]| gunzip && names.contains(&"gzip");
        let (file, copy, meta, coding) = self.copy_of(&path, gzip)?;
        Some(Found::GzipAlone(self.served(
            file,
            copy,
            &meta,
            &path,
            Some(coding),
        )))
    }

    /// The file a precompressed copy `copy` was found in place of, when
    /// it is there: what is made of the file itself (`sub_filter`
    /// rewrites the file, never its coded copy).
    pub fn file_of_copy(&self, copy: &Served) -> Option<Served> {
        // A copy's name is the file's and the suffix of its coding; a file
        // coded by its own name (`.svgz`) is no copy.
        let suffix = copy.path.extension()?;
        (PRECOMPRESSED.iter())
            .find(|&&(s, coding, _)| suffix == s && copy.encoding == Some(coding))?;
        let named = copy.path.with_extension("");
        let (file, meta) = self.open_file(&named).ok()?;
        let name = named.file_name().map_or(&[][..], |n| n.as_bytes());
        let encoding = mime::content_encoding(name);
        Some(self.served(file, named.clone(), &meta, &named, encoding))
    }

    /// With `precompressed`, the first copy of the file at `path` there
    /// is of a coding `accepted` (given the names `Accept-Encoding` may
    /// give it): opened, with its path and its coding.
    fn copy_of(
        &self,
        path: &Path,
        accepted: impl Fn(&[&str]) -> bool,
    ) -> Option<(File, PathBuf, std::fs::Metadata, &'static str)> {
        (PRECOMPRESSED.iter())
            .filter(|(_, _, names)| self.precompressed && accepted(names))
            .find_map(|&(suffix, coding, _)| {
                let mut copy = path.to_path_buf().into_os_string();
                copy.push(".");
                copy.push(suffix);
                let (file, meta) = self.open_file(Path::new(&copy)).ok()?;
                Some((file, PathBuf::from(copy), meta, coding))
            })
    }

    /// `file`, opened at `opened`, served for the name at `named`: the
    /// type is the name's the request gives (a link `latest.js` to
    /// `v2.js` is `latest.js`, a copy `app.js.gz` is `app.js`), as nginx's.
    fn served(
        &self,
        file: File,
        opened: PathBuf,
        meta: &std::fs::Metadata,
        named: &Path,
        encoding: Option<&'static str>,
    ) -> Served {
        let name = named.file_name().map_or(&[][..], |n| n.as_bytes());
        Served {
            file,
            path: opened,
            len: meta.len(),
            // Whole seconds: what `Last-Modified` can say, and what a
            // client's `If-Modified-Since` is compared with.
            modified: UNIX_EPOCH + Duration::from_secs(meta.mtime().max(0) as u64),
            content_type: mime::content_type(name),
            encoding,
            varies: self.precompressed,
        }
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
}
