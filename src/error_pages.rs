//! `error_pages`: the bodies an operator gives the proxy's own error
//! answers (nginx's `error_page 502 /502.html`, HAProxy's `errorfile`).
//!
//! The files are read when the configuration is built (start-up, `check`,
//! every reload) and held in memory: answering an error never touches the
//! file system, and a file that turns bad later cannot break a running
//! proxy, only the reload that would read it.

use crate::gzip::Coding;
use std::fmt;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Every status the proxy answers itself on an error, so every page that
/// may be used. A new error answer adds its status here, or its page is
/// never read.
pub const OWN_ERROR_STATUSES: [u16; 16] = [
    400, 401, 403, 405, 408, 413, 414, 417, 429, 431, 500, 501, 502, 503, 504, 505,
];

/// The largest page accepted: an error page is a small branded notice, and
/// each one is copied to every client that gets the error; a larger file is
/// more likely a mistake (a bundle, a log) than a page.
pub const MAX_PAGE_BYTES: u64 = 64 * 1024;

/// The `Content-Type` of every page (only `.html` files are read).
pub const PAGE_CONTENT_TYPE: &str = "text/html; charset=utf-8";

/// Why `error_pages` cannot be used. Each variant names the path at fault.
#[derive(Debug, thiserror::Error)]
pub enum ErrorPagesError {
    #[error("{}: {error}", dir.display())]
    Dir { dir: PathBuf, error: io::Error },
    #[error("{}: not a directory", dir.display())]
    NotADirectory { dir: PathBuf },
    #[error("{}: cannot read: {error}", path.display())]
    Unreadable { path: PathBuf, error: io::Error },
    #[error("{}: larger than {MAX_PAGE_BYTES} bytes, the most an error page may have", path.display())]
    TooLarge { path: PathBuf },
}

/// The pages read from an `error_pages` directory; empty when it is off.
/// Cloning shares the bytes: a generation of the settings, and each clone
/// of it, points at the same pages (and at their compressed copies).
#[derive(Clone, Default)]
pub struct ErrorPages {
    dir: Option<PathBuf>,
    /// At most one per status: [`OWN_ERROR_STATUSES`], in that order,
    /// then those read by [`ErrorPages::load_more`].
    pages: Vec<(u16, Arc<Page>)>,
}

struct Page {
    bytes: Box<[u8]>,
    /// The page compressed, in each coding, made by the first answer that
    /// sends it so (see [`ErrorPages::compressed`]).
    compressed: [OnceLock<Box<[u8]>>; Coding::ALL.len()],
}

impl ErrorPages {
    /// Reads `<dir>/<status>.html` for every status the proxy answers
    /// itself on an error; a missing file leaves that status its
    /// plain-text body. An empty `dir` is off. Relative paths are from the
    /// working directory, as `path_to_log`'s are.
    pub fn load(dir: &str) -> Result<ErrorPages, ErrorPagesError> {
        if dir.is_empty() {
            return Ok(ErrorPages::default());
        }
        let mut pages = ErrorPages {
            dir: Some(PathBuf::from(dir)),
            pages: Vec::new(),
        };
        check_directory(Path::new(dir))?;
        pages.load_more(OWN_ERROR_STATUSES)?;
        Ok(pages)
    }

    /// Reads the pages for `statuses` too, besides the proxy's own
    /// errors': those `return` routes answer (a `404.html` for
    /// `route./.git/ = return 404`), and those of backends' answers that
    /// `intercept_errors` replaces. Only pages that will be used are
    /// read: another file can do no harm.
    pub fn load_more(
        &mut self,
        statuses: impl IntoIterator<Item = u16>,
    ) -> Result<(), ErrorPagesError> {
        let Some(dir) = &self.dir else {
            return Ok(());
        };
        for status in statuses {
            if self.get(status).is_some() {
                continue;
            }
            if let Some(page) = read_page(&page_path(dir, status))? {
                self.pages.push((status, page));
            }
        }
        Ok(())
    }

    /// The page for `status`, if the directory has one.
    pub fn get(&self, status: u16) -> Option<&[u8]> {
        self.page(status).map(|page| &page.bytes[..])
    }

    /// The page for `status` compressed with `coding` by `compress`, if
    /// the directory has one. Compressed once, by the first answer that
    /// wants it, and kept until a reload reads the pages again: the page
    /// does not change in between, and a flood of 404s to a scanner
    /// compresses nothing. Nothing is compressed for a page no client
    /// that takes the coding gets.
    pub fn compressed(
        &self,
        status: u16,
        coding: Coding,
        compress: impl FnOnce(&[u8]) -> Vec<u8>,
    ) -> Option<&[u8]> {
        let page = self.page(status)?;
        let copy = page.compressed.get(coding.index())?;
        Some(copy.get_or_init(|| compress(&page.bytes).into()))
    }

    fn page(&self, status: u16) -> Option<&Page> {
        (self.pages.iter())
            .find(|(s, _)| *s == status)
            .map(|(_, page)| &**page)
    }

    /// The directory the pages came from; `None` when off.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// Each page found: its status, its file and its size in bytes.
    pub fn found(&self) -> impl Iterator<Item = (u16, PathBuf, usize)> + '_ {
        let dir = self.dir.as_deref().unwrap_or(Path::new(""));
        (self.pages.iter())
            .map(move |(status, page)| (*status, page_path(dir, *status), page.bytes.len()))
    }
}

/// Shows what was found, not the pages' bytes (`Config` is printed with
/// `{:?}` in places).
impl fmt::Debug for ErrorPages {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let statuses: Vec<u16> = self.pages.iter().map(|(s, _)| *s).collect();
        f.debug_struct("ErrorPages")
            .field("dir", &self.dir)
            .field("statuses", &statuses)
            .finish()
    }
}

fn page_path(dir: &Path, status: u16) -> PathBuf {
    dir.join(format!("{status}.html"))
}

/// A directory that is missing or is a file is a typo in the setting:
/// refused rather than every page silently falling back.
fn check_directory(dir: &Path) -> Result<(), ErrorPagesError> {
    let meta = std::fs::metadata(dir).map_err(|error| ErrorPagesError::Dir {
        dir: dir.to_path_buf(),
        error,
    })?;
    if !meta.is_dir() {
        return Err(ErrorPagesError::NotADirectory {
            dir: dir.to_path_buf(),
        });
    }
    Ok(())
}

/// The page at `path`: `None` when there is no such file; an error when
/// there is one that cannot be read whole (a directory, a FIFO, no
/// permission, a symlink to nothing) or is too large.
fn read_page(path: &Path) -> Result<Option<Arc<Page>>, ErrorPagesError> {
    let unreadable = |error| ErrorPagesError::Unreadable {
        path: path.to_path_buf(),
        error,
    };
    // Only a regular file: a FIFO would hang the reload, and with it the
    // signal thread.
    let file = match crate::cache::persist::open_regular(path) {
        Ok(file) => file,
        // A link whose file is gone (one into a release directory since
        // removed) is a page meant to be there: refused, as one that
        // cannot be read, rather than the plain text served in silence.
        Err(e)
            if e.kind() == io::ErrorKind::NotFound && std::fs::symlink_metadata(path).is_ok() =>
        {
            return Err(unreadable(e))
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(unreadable(e)),
    };
    let mut page = Vec::new();
    file.take(MAX_PAGE_BYTES + 1)
        .read_to_end(&mut page)
        .map_err(unreadable)?;
    if page.len() as u64 > MAX_PAGE_BYTES {
        return Err(ErrorPagesError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    Ok(Some(Arc::new(Page {
        bytes: page.into(),
        compressed: Default::default(),
    })))
}

/// Warns of the `NNN.html` files in `dir` for statuses the proxy never
/// answers with a page: neither an error of its own nor one `used` takes
/// (a `return` route's, or one `intercept_errors` replaces). A `404.html`
/// brought from an nginx set-up is the usual one: a backend's own 404 is
/// relayed as it came, and the operator should know the page is unused.
/// Best effort: a directory that cannot be listed says nothing.
pub fn warn_of_unused_pages(dir: &Path, used: impl Fn(u16) -> bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(status) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".html"))
            .filter(|s| s.len() == 3)
            .and_then(|s| s.parse::<u16>().ok())
        else {
            continue;
        };
        if !OWN_ERROR_STATUSES.contains(&status) && !used(status) {
            log::warn!(
                "error_pages: {} is not used: the proxy never answers {status} itself \
                 (a backend's own answers are relayed as they came, unless \
                 intercept_errors is on)",
                dir.join(&name).display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_off() {
        let pages = ErrorPages::load("").unwrap();
        assert!(pages.dir().is_none());
        assert!(pages.get(502).is_none());
    }

    #[test]
    fn reads_the_pages_present_and_leaves_the_others() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("502.html"), "<h1>down</h1>").unwrap();
        std::fs::write(dir.path().join("504.html"), "").unwrap();
        // Not a status the proxy answers itself: read only when asked.
        std::fs::write(dir.path().join("404.html"), "<h1>no</h1>").unwrap();
        let mut pages = ErrorPages::load(dir.path().to_str().unwrap()).unwrap();
        assert_eq!(pages.get(502), Some(&b"<h1>down</h1>"[..]));
        assert_eq!(pages.get(504), Some(&b""[..]));
        assert_eq!(pages.get(503), None);
        assert_eq!(pages.get(404), None);
        let found: Vec<(u16, usize)> = pages.found().map(|(s, _, n)| (s, n)).collect();
        assert_eq!(found, [(502, 13), (504, 0)]);
        pages.load_more([404, 410, 502]).unwrap();
        assert_eq!(pages.get(404), Some(&b"<h1>no</h1>"[..]));
        assert_eq!(pages.get(410), None);
        let found: Vec<u16> = pages.found().map(|(s, _, _)| s).collect();
        assert_eq!(found, [502, 504, 404]);
    }

    #[test]
    fn a_page_is_compressed_once_and_shared_by_clones() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("403.html"), "<h1>no</h1>").unwrap();
        let pages = ErrorPages::load(dir.path().to_str().unwrap()).unwrap();
        let clone = pages.clone();
        let mut made = 0;
        let mut compress = |page: &[u8]| {
            made += 1;
            page.to_ascii_uppercase()
        };
        let gzip = Coding::Gzip;
        assert_eq!(
            pages.compressed(403, gzip, &mut compress),
            Some(&b"<H1>NO</H1>"[..])
        );
        assert_eq!(
            clone.compressed(403, gzip, &mut compress),
            Some(&b"<H1>NO</H1>"[..])
        );
        assert_eq!(pages.compressed(502, gzip, &mut compress), None);
        assert_eq!(made, 1);
        let copy = clone.compressed(403, Coding::Brotli, <[u8]>::to_vec);
        assert_eq!(copy, Some(&b"<h1>no</h1>"[..]), "a copy of its own");
        assert_eq!(pages.get(403), Some(&b"<h1>no</h1>"[..]));
    }

    #[test]
    fn a_missing_directory_or_a_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("absent");
        let e = ErrorPages::load(missing.to_str().unwrap()).unwrap_err();
        assert!(matches!(e, ErrorPagesError::Dir { .. }), "{e}");
        assert!(e.to_string().contains("absent"), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let e = ErrorPages::load(file.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().ends_with("file: not a directory"), "{e}");
    }

    #[test]
    fn a_page_that_cannot_be_read_or_is_too_large_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        std::fs::create_dir(dir.path().join("503.html")).unwrap();
        let e = ErrorPages::load(path).unwrap_err();
        assert!(e.to_string().contains("503.html: cannot read"), "{e}");
        std::fs::remove_dir(dir.path().join("503.html")).unwrap();
        let limit = MAX_PAGE_BYTES as usize;
        std::fs::write(dir.path().join("429.html"), vec![b'x'; limit]).unwrap();
        assert_eq!(
            ErrorPages::load(path).unwrap().get(429).unwrap().len(),
            limit
        );
        std::fs::write(dir.path().join("429.html"), vec![b'x'; limit + 1]).unwrap();
        let e = ErrorPages::load(path).unwrap_err();
        assert!(e.to_string().contains("429.html: larger than 65536"), "{e}");
    }

    #[test]
    fn a_page_linked_to_a_file_that_is_gone_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_str().unwrap();
        let page = dir.path().join("502.html");
        std::os::unix::fs::symlink(dir.path().join("release/502.html"), &page).unwrap();
        let e = ErrorPages::load(path).unwrap_err();
        assert!(e.to_string().contains("502.html: cannot read"), "{e}");
        // The link's file back: read through the link.
        std::fs::create_dir(dir.path().join("release")).unwrap();
        std::fs::write(dir.path().join("release/502.html"), "<h1>down</h1>").unwrap();
        let pages = ErrorPages::load(path).unwrap();
        assert_eq!(pages.get(502), Some(&b"<h1>down</h1>"[..]));
    }
}
