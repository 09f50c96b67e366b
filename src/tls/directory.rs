//! A `tls_certificates` entry that names a directory, as HAProxy's
//! `crt /etc/haproxy/certs/`: a site is added by dropping its PEM file
//! there (a certbot deploy hook writes the chain and key in one), or its
//! chain and its key beside it (`site.crt` and `site.key`, as nginx keeps
//! them), and reloading.
//!
//! Its certificate files are the names ending in `.pem` or `.crt`, so
//! that what HAProxy keeps beside a certificate (`site.pem.ocsp`,
//! `.key`, `.issuer`, `.sctl`) and an editor's or a tool's leftovers
//! (`site.pem~`, `site.pem.bak`) are not taken for one; a hidden file
//! (`.site.pem.swp`, a half-written `.site.pem.tmp` renamed into place)
//! neither. Only regular files count, symlinks followed (certbot's
//! `live/` holds links), so a subdirectory is not one; a link that leads
//! nowhere is, and its reading fails, naming it, rather than a site
//! going without its certificate unsaid.

use super::{CertificateError, CertificateFiles};
use std::ffi::OsStr;
use std::path::Path;

/// The most certificate files one directory may hold: far more sites
/// than one proxy serves, and few enough that a directory of something
/// else is refused before its files are read.
pub const MAX_FILES: usize = 1_000;

/// The entries for the certificate files of `dir` (as written), in the
/// order of their names, each read as a file written alone would be:
/// its key in the same file or beside it (see [`super::private_key`]),
/// its OCSP response as `<file>.ocsp` beside it.
pub fn listed(dir: &Path) -> Result<Vec<CertificateFiles>, CertificateError> {
    let unlistable = |error| CertificateError::Unreadable {
        path: dir.to_path_buf(),
        error,
    };
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(unlistable)? {
        let name = entry.map_err(unlistable)?.file_name();
        if is_certificate_name(&name) && !is_other_than_a_file(&dir.join(&name)) {
            names.push(name);
        }
        if names.len() > MAX_FILES {
            return Err(CertificateError::TooManyFiles {
                path: dir.to_path_buf(),
            });
        }
    }
    if names.is_empty() {
        return Err(CertificateError::EmptyDirectory {
            path: dir.to_path_buf(),
        });
    }
    names.sort_unstable();
    Ok(names
        .into_iter()
        .map(|name| CertificateFiles {
            chain: dir.join(name),
            key: None,
            ocsp: None,
            directory: Some(dir.to_path_buf()),
        })
        .collect())
}

fn is_certificate_name(name: &OsStr) -> bool {
    let name = name.as_encoded_bytes();
    !name.starts_with(b".") && (name.ends_with(b".pem") || name.ends_with(b".crt"))
}

/// A directory, a FIFO or a socket, through any links; what cannot be
/// looked at is left for the read to say why.
fn is_other_than_a_file(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|meta| !meta.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_names_end_in_pem_or_crt_and_are_not_hidden() {
        for (name, taken) in [
            ("a.test.pem", true),
            ("b.crt", true),
            ("site.pem.ocsp", false),
            ("site.key", false),
            ("site.pem.issuer", false),
            ("site.pem~", false),
            (".site.pem", false),
            ("pem", false),
            ("README", false),
        ] {
            assert_eq!(is_certificate_name(OsStr::new(name)), taken, "{name}");
        }
    }

    #[test]
    fn a_directory_of_too_many_certificate_files_is_refused_before_any_is_read() {
        let dir = tempfile::tempdir().unwrap();
        for n in 0..=MAX_FILES {
            std::fs::write(dir.path().join(format!("{n}.pem")), "").unwrap();
        }
        let e = listed(dir.path()).unwrap_err();
        assert!(matches!(e, CertificateError::TooManyFiles { .. }), "{e}");
        std::fs::remove_file(dir.path().join("0.pem")).unwrap();
        assert_eq!(listed(dir.path()).unwrap().len(), MAX_FILES);
    }
}
