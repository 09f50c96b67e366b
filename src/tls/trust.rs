//! What a peer's certificate is checked against: trusted authorities
//! (a PEM file, or the system's) and revocation lists, for backends'
//! certificates and for clients' alike.

use super::CertificateError;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer};
use std::path::{Path, PathBuf};

/// A file of trusted certificates (or of revocation lists) larger than
/// this is not one: the whole Mozilla set a system trusts is about
/// 220 KiB of PEM.
const MAX_TRUST_FILE: u64 = 16 << 20;

#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    #[error("{}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: larger than 16 MiB: not a file of certificates", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: no PEM {what} in it (`-----BEGIN {label}-----`)", path.display())]
    Empty {
        path: PathBuf,
        what: &'static str,
        label: &'static str,
    },
    #[error("{}: {what}", path.display())]
    Malformed { path: PathBuf, what: String },
    #[error(
        "the system's trusted certificates could not be read ({0}): name a file of them with \
         backend_tls_ca, or install them (Debian: ca-certificates)"
    )]
    NoSystemStore(String),
    #[error(transparent)]
    Certificate(#[from] CertificateError),
}

impl TrustError {
    /// The file it is about, if one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TrustError::Unreadable { path, .. }
            | TrustError::TooLarge { path }
            | TrustError::Empty { path, .. }
            | TrustError::Malformed { path, .. } => Some(path),
            TrustError::NoSystemStore(_) | TrustError::Certificate(_) => None,
        }
    }
}

/// Every certificate of the PEM file at `path`; at least one.
pub fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    read_all(path, "certificate", "CERTIFICATE")
}

/// Every certificate revocation list of the PEM file at `path` (`openssl
/// ca -gencrl` writes one); at least one. Whether each is well formed and
/// signed is the verifier's to say, as it is made.
pub fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TrustError> {
    read_all(path, "revocation list", "X509 CRL")
}

/// Every PEM item of one kind (`label`) in the file at `path`; at least one.
fn read_all<T: PemObject>(
    path: &Path,
    what: &'static str,
    label: &'static str,
) -> Result<Vec<T>, TrustError> {
    let text = match crate::cache::persist::read_regular(path, MAX_TRUST_FILE) {
        Ok(Some(text)) => text,
        Ok(None) => {
            return Err(TrustError::TooLarge {
                path: path.to_path_buf(),
            })
        }
        Err(error) => {
            return Err(TrustError::Unreadable {
                path: path.to_path_buf(),
                error,
            })
        }
    };
    let items = T::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(path, e))?;
    if items.is_empty() {
        return Err(TrustError::Empty {
            path: path.to_path_buf(),
            what,
            label,
        });
    }
    Ok(items)
}

/// Adds `certificates`, read from `path`, as trusted authorities.
pub fn add_all(
    roots: &mut RootCertStore,
    path: &Path,
    certificates: Vec<CertificateDer<'static>>,
) -> Result<(), TrustError> {
    for certificate in certificates {
        roots
            .add(certificate)
            .map_err(|e| malformed(path, format!("a certificate that cannot be trusted: {e}")))?;
    }
    Ok(())
}

/// Adds the system's trusted authorities (`SSL_CERT_FILE` or
/// `SSL_CERT_DIR` when set, else the distribution's bundle).
pub fn add_system_roots(roots: &mut RootCertStore) -> Result<(), TrustError> {
    let found = rustls_native_certs::load_native_certs();
    let (added, _) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = match found.errors.first() {
            Some(e) => e.to_string(),
            None => "none found".to_string(),
        };
        return Err(TrustError::NoSystemStore(why));
    }
    Ok(())
}

fn malformed(path: &Path, e: impl std::fmt::Display) -> TrustError {
    TrustError::Malformed {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}
