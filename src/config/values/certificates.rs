//! TLS certificates: `tls_certificates` and `backend_tls_certificate`.

use std::path::PathBuf;
use std::sync::Arc;

/// `tls_certificates`: the files as written, and the TLS settings made of
/// what they hold (none when empty).
pub(in crate::config) fn parse_certificates(
    v: &str,
) -> Result<
    (
        Vec<crate::tls::CertificateFiles>,
        Option<Arc<crate::tls::Certificates>>,
    ),
    String,
> {
    let files = certificate_entries(v)?;
    if files.is_empty() {
        return Ok((files, None));
    }
    let certificates = crate::tls::Certificates::load(&files).map_err(|e| e.to_string())?;
    Ok((files, Some(Arc::new(certificates))))
}

/// `backend_tls_certificate`: one entry as `tls_certificates` writes
/// them, read when the settings for backends are made.
pub(in crate::config) fn backend_certificate(
    v: &str,
) -> Result<Option<crate::tls::CertificateFiles>, String> {
    let mut files = certificate_entries(v)?;
    if files.len() > 1 {
        return Err("one certificate is shown to backends, not a list".to_string());
    }
    if files.iter().any(|f| f.ocsp.is_some()) {
        return Err("`ocsp=`: a backend is not stapled an OCSP response".to_string());
    }
    Ok(files.pop())
}

/// `<chain.pem>[ key=<key.pem>][ ocsp=<response.der>], ...`, as written.
fn certificate_entries(v: &str) -> Result<Vec<crate::tls::CertificateFiles>, String> {
    let mut files = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut words = entry.split_whitespace();
        let chain = words.next().unwrap_or_default();
        let (mut key, mut ocsp) = (None, None);
        for word in words {
            let (name, path) = word.split_once('=').unwrap_or((word, ""));
            let slot = match name {
                "key" => &mut key,
                "ocsp" => &mut ocsp,
                _ => {
                    return Err(format!(
                        "`{entry}`: unknown option `{word}`: an entry is a PEM file, then \
                         `key=<file>` when the private key is in another, and `ocsp=<file>` \
                         for its OCSP response"
                    ))
                }
            };
            if slot.is_some() {
                return Err(format!("`{entry}`: `{name}=` given twice"));
            }
            if path.is_empty() {
                return Err(format!("`{entry}`: `{word}` names no file"));
            }
            *slot = Some(PathBuf::from(path));
        }
        files.push(crate::tls::CertificateFiles {
            chain: PathBuf::from(chain),
            key,
            ocsp,
        });
    }
    Ok(files)
}
