//! Where a certificate's private key is read from: the file ` key=`
//! names; else the chain's own file, when it holds one; else a file
//! beside the chain, as HAProxy (2.2 on, `ssl-load-extra-files` with
//! `key`, its default) and nginx's usual `ssl_certificate` and
//! `ssl_certificate_key` pair keep it, looked for in this order:
//!
//! 1. `<chain>.key`, the chain's whole name with `.key` after it
//!    (`site.pem.key`, `site.crt.key`): HAProxy's rule;
//! 2. for a chain named `<name>.crt`, `<name>.key` (`site.key`): nginx's
//!    pair, and HAProxy's with `ssl-load-extra-del-ext`, which strips
//!    `.crt` alone (never `.pem`) before adding `.key`.
//!
//! A key in the chain's own file wins: the files beside it are then not
//! looked at, as HAProxy does not. The first that exists is read, and
//! one that exists but cannot be read (its permissions, a directory in
//! its place) or holds no key is an error naming it, as in HAProxy,
//! rather than passed over for the next: a key put there and skipped
//! would leave the site to another file's key without a word.
//!
//! Errors name files and say what is wrong, never a key's bytes.

use super::{contains, malformed, read_pem, CertificateError, CertificateFiles};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;
use std::path::{Path, PathBuf};

/// The marker of a PKCS#8 key encrypted with a password.
const ENCRYPTED: &[u8] = b"-----BEGIN ENCRYPTED PRIVATE KEY-----";

/// The private key of `files`, whose chain's file holds `chain_text`,
/// and the file it was read from.
pub(super) fn read(
    files: &CertificateFiles,
    chain_text: &[u8],
) -> Result<(PrivateKeyDer<'static>, PathBuf), CertificateError> {
    if let Some(path) = &files.key {
        return in_key_file(path, &files.chain);
    }
    if let Some(key) = parsed(&files.chain, chain_text)? {
        return Ok((key, files.chain.clone()));
    }
    let beside = beside(&files.chain);
    for path in &beside {
        match in_key_file(path, &files.chain) {
            Err(CertificateError::Unreadable { error, .. })
                if error.kind() == std::io::ErrorKind::NotFound => {}
            found => return found,
        }
    }
    let path = files.chain.clone();
    Err(match files.directory {
        Some(_) => CertificateError::NoKeyInDirectory { path, beside },
        None => CertificateError::NoKey { path, beside },
    })
}

/// The files a key may be in beside `chain`, in the order looked for
/// (see the module's documentation).
pub(super) fn beside(chain: &Path) -> Vec<PathBuf> {
    let mut whole = chain.as_os_str().to_owned();
    whole.push(".key");
    let mut files = vec![PathBuf::from(whole)];
    if chain.extension().is_some_and(|ext| ext == "crt") {
        files.push(chain.with_extension("key"));
    }
    files
}

/// The key in `path`, a file of its own, for the certificate of `chain`.
fn in_key_file(
    path: &Path,
    chain: &Path,
) -> Result<(PrivateKeyDer<'static>, PathBuf), CertificateError> {
    match parsed(path, &read_pem(path)?)? {
        Some(key) => Ok((key, path.to_path_buf())),
        None => Err(CertificateError::NotAKey {
            path: path.to_path_buf(),
            chain: chain.to_path_buf(),
        }),
    }
}

/// The first private key in `text`, read from `path`; `None` when it
/// holds none, and an error when the one it holds cannot be used.
fn parsed(path: &Path, text: &[u8]) -> Result<Option<PrivateKeyDer<'static>>, CertificateError> {
    match PrivateKeyDer::from_pem_slice(text) {
        Ok(key) => Ok(Some(key)),
        Err(rustls_pki_types::pem::Error::NoItemsFound) if contains(text, ENCRYPTED) => {
            Err(CertificateError::EncryptedKey {
                path: path.to_path_buf(),
            })
        }
        Err(rustls_pki_types::pem::Error::NoItemsFound) => Ok(None),
        Err(e) => Err(malformed(path, e)),
    }
}

/// The names of `files`, for a message that names their directory
/// already: `` `a.crt.key` or `a.key` ``.
pub(super) fn names(files: &[PathBuf]) -> String {
    let named: Vec<String> = (files.iter())
        .map(|path| {
            let name = path.file_name().unwrap_or(path.as_os_str());
            format!("`{}`", name.to_string_lossy())
        })
        .collect();
    named.join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chain_s_key_is_looked_for_under_its_whole_name_then_a_crt_s_stem() {
        let beside_of = |chain: &str| -> Vec<PathBuf> { beside(Path::new(chain)) };
        assert_eq!(
            beside_of("/etc/certs/site.crt"),
            [
                PathBuf::from("/etc/certs/site.crt.key"),
                PathBuf::from("/etc/certs/site.key")
            ]
        );
        // `.pem` is never stripped, as HAProxy strips `.crt` alone.
        assert_eq!(beside_of("site.pem"), [PathBuf::from("site.pem.key")]);
        assert_eq!(beside_of("a.test.pem"), [PathBuf::from("a.test.pem.key")]);
        assert_eq!(
            beside_of("a.test.crt"),
            [PathBuf::from("a.test.crt.key"), PathBuf::from("a.test.key")]
        );
        assert_eq!(names(&beside_of("/x/a.crt")), "`a.crt.key` or `a.key`");
    }
}
