//! TLS to backends: the rustls client settings every connection to a
//! target with `tls` is made with (`backend_tls_verify`,
//! `backend_tls_ca`, `backend_tls_certificate`), read at load and at
//! every reload. The bytes of a connection are [`crate::http::tls`]'s.
//!
//! A backend's certificate is verified by default, against the system's
//! trusted certificates or the file `backend_tls_ca` names, for the name
//! the target is written with or its `tls_name=`: HAProxy's `verify
//! required`, where nginx's `proxy_ssl_verify` is off unless set.

use super::suites::TlsChoice;
use super::trust::{self, TrustError};
use super::{load_one, provider, CertificateFiles, TlsVersions};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::{
    ClientConfig, ConfigBuilder, DigitallySignedStruct, RootCertStore, SignatureScheme,
    WantsVerifier,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// The keys that say how backends are spoken to over TLS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BackendTlsKeys {
    /// `backend_tls_verify`: whether a backend's certificate must be
    /// valid for its name and issued by a trusted authority.
    pub verify: bool,
    /// `backend_tls_ca`: the trusted certificates; `None`: the system's.
    pub ca: Option<PathBuf>,
    /// `backend_tls_certificate`: the certificate shown to a backend that
    /// asks for one.
    pub certificate: Option<CertificateFiles>,
    /// `backend_tls_protocols`: the TLS versions offered to backends.
    pub protocols: TlsVersions,
    /// `backend_tls_ciphers` and `backend_tls_groups`: the cipher suites
    /// and key exchange groups offered to them.
    pub choice: TlsChoice,
}

impl Default for BackendTlsKeys {
    fn default() -> Self {
        BackendTlsKeys {
            verify: true,
            ca: None,
            certificate: None,
            protocols: TlsVersions::default(),
            choice: TlsChoice::default(),
        }
    }
}

/// The rustls settings for connections to backends: the versions of
/// `keys` (TLS 1.2 and 1.3 by default), `http/1.1` offered in ALPN (a backend that also speaks HTTP/2 then
/// knows not to), sessions resumed from the last 256 (rustls's memory
/// store), and the certificate checks `keys` ask for.
pub fn client_config(keys: &BackendTlsKeys) -> Result<Arc<ClientConfig>, TrustError> {
    let provider = Arc::new(keys.choice.provider());
    let builder = builder(&provider, keys.protocols);
    let builder = match keys.verify {
        true => builder.with_root_certificates(trusted(keys.ca.as_deref())?),
        false => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider.clone()))),
    };
    let mut config = match &keys.certificate {
        Some(files) => {
            let certified = load_one(files, &provider)?;
            super::warn_of_expiring_key(&files.chain, &certified);
            builder.with_client_cert_resolver(Arc::new(OneCertificate(Arc::new(certified))))
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The settings for a target with `tls` in a configuration built without
/// the loader (tests, embedders): the keys' defaults, made once. With no
/// system store to be had, no certificate is trusted, and each
/// connection fails its handshake, saying why.
pub fn default_client_config() -> Arc<ClientConfig> {
    static MADE: OnceLock<Arc<ClientConfig>> = OnceLock::new();
    MADE.get_or_init(|| {
        client_config(&BackendTlsKeys::default()).unwrap_or_else(|e| {
            log::warn!("TLS to backends: {e}");
            let config = builder(&Arc::new(provider()), TlsVersions::default())
                .with_root_certificates(RootCertStore::empty())
                .with_no_client_auth();
            Arc::new(config)
        })
    })
    .clone()
}

/// Client settings with `versions`, before their checks.
fn builder(
    provider: &Arc<CryptoProvider>,
    versions: TlsVersions,
) -> ConfigBuilder<ClientConfig, WantsVerifier> {
    ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions.rustls())
        .expect("rustls's ring provider supports TLS 1.2 and 1.3")
}

/// The name a target with `tls` is checked against, and sent in SNI:
/// `tls_name` when given, else the host it is written with. An address
/// is checked against the addresses the certificate holds, and sends no
/// SNI (RFC 6066 §3).
pub fn server_name(host: &str, tls_name: Option<&str>) -> Result<ServerName<'static>, String> {
    let name = tls_name.unwrap_or(host);
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_string())
        .map_err(|_| format!("`{name}` is not a host name or an address a certificate can name"))
}

/// The certificates trusted: those of `ca`, or the system's.
fn trusted(ca: Option<&Path>) -> Result<RootCertStore, TrustError> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            let authorities = trust::read_certificates(path)?;
            super::warn_of_expiring(path, "an authority", &authorities);
            trust::add_all(&mut roots, path, authorities)?
        }
        None => trust::add_system_roots(&mut roots)?,
    }
    Ok(roots)
}

/// `backend_tls_verify = off`: any certificate is taken, for any name,
/// but the handshake's signatures are still checked against it (so the
/// backend holds the key of the certificate it showed).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `backend_tls_certificate`: the one certificate shown to a backend
/// that asks for one, whatever authorities it names.
#[derive(Debug)]
struct OneCertificate(Arc<CertifiedKey>);

impl ResolvesClientCert for OneCertificate {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_target_is_known_by_its_host_or_its_tls_name() {
        let dns = |name: &str| ServerName::try_from(name.to_string()).unwrap();
        assert_eq!(
            server_name("app.internal", None).unwrap(),
            dns("app.internal")
        );
        assert_eq!(
            server_name("10.0.0.5", Some("api.example.com")).unwrap(),
            dns("api.example.com")
        );
        // Addresses, IPv6 in brackets as targets write it, are addresses.
        assert!(matches!(
            server_name("10.0.0.5", None).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(matches!(
            server_name("[::1]", None).unwrap(),
            ServerName::IpAddress(_)
        ));
        assert!(server_name("x", Some("not a name")).is_err());
    }

    #[test]
    fn a_file_of_trusted_certificates_must_hold_one() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let keys = |ca: &Path| BackendTlsKeys {
            ca: Some(ca.to_path_buf()),
            ..BackendTlsKeys::default()
        };
        let e = client_config(&keys(&empty)).unwrap_err();
        assert!(matches!(e, TrustError::Empty { .. }), "{e}");
        let e = client_config(&keys(&dir.path().join("missing.pem"))).unwrap_err();
        assert!(matches!(e, TrustError::Unreadable { .. }), "{e}");
        let made = rcgen::generate_simple_self_signed(vec!["ca.test".to_string()]).unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, made.cert.pem()).unwrap();
        assert!(client_config(&keys(&ca)).is_ok());
        // Not verifying needs no trusted certificate at all.
        let off = BackendTlsKeys {
            verify: false,
            ca: Some(empty),
            ..BackendTlsKeys::default()
        };
        assert!(client_config(&off).is_ok());
    }
}
