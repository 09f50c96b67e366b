//! TLS termination: the certificates of `tls_certificates`, read at load
//! and at every reload, and the rustls settings every connection to
//! `tls_port` is accepted with. The bytes of a connection are
//! [`crate::http::tls`]'s.
//!
//! Each entry is a PEM file with a certificate chain (the server's own
//! certificate first, then the intermediates), and its private key in the
//! same file, in the one `key=` names, or beside it (`site.pem.key`,
//! `site.crt.key`, `site.key` for a `site.crt`: see [`private_key`]):
//! HAProxy's `crt`, nginx's `ssl_certificate` and certbot's
//! `fullchain.pem` plus `privkey.pem` alike; or a directory of such
//! files, HAProxy's `crt <dir>/` (see [`directory`]). A
//! client is given the first certificate valid for the name it asks for
//! (SNI), or the first one of all when none is, or when it names none, as
//! nginx's default server does.
//!
//! A certificate is stapled with its authority's OCSP response when
//! there is one (`ocsp=`, or the chain's file name with `.ocsp` after it,
//! HAProxy's way): see [`ocsp`].
//!
//! Clients may be asked for certificates of their own (`tls_verify_client`,
//! checked against `tls_client_ca` and `tls_client_crl`: mutual TLS).
//!
//! TLS to backends, the other way round, is [`backends`]'s. Why a
//! handshake failed, either way, is said by [`words`].

pub mod alpn;
pub mod backends;
pub mod client_cert;
pub mod client_hello;
pub mod directory;
pub mod ocsp;
pub mod private_key;
pub mod suites;
pub mod trust;
pub mod words;
pub mod x509;

use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{
    ClientHello, ResolvesServerCert, ServerConfig, ServerSessionMemoryCache, WebPkiClientVerifier,
};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, SupportedProtocolVersion};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, ServerName};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use trust::TrustError;

/// Warns of each of `certificates`, `what` `path` holds, that has
/// expired or expires within [`EXPIRY_WARNING`]: its peers refuse it then.
fn warn_of_expiring(path: &Path, what: &str, certificates: &[CertificateDer<'_>]) {
    let now = SystemTime::now();
    for until in certificates.iter().filter_map(|c| x509::not_after(c)) {
        let date = crate::http::date::format_rfc3339(until);
        match until.duration_since(now) {
            Err(_) => log::warn!(
                "{}: {what} expired at {date}: it is refused",
                path.display()
            ),
            Ok(left) if left < EXPIRY_WARNING => log::warn!(
                "{}: {what} expires at {date}, in {} days: renew it, and reload",
                path.display(),
                left.as_secs() / 86_400
            ),
            Ok(_) => {}
        }
    }
}

/// [`warn_of_expiring`] for the certificate of `key`, from `path`.
fn warn_of_expiring_key(path: &Path, key: &CertifiedKey) {
    if let Ok(own) = key.end_entity_cert() {
        warn_of_expiring(path, "the certificate", std::slice::from_ref(own));
    }
}

/// How long before a certificate served expires its load warns of it: a
/// renewal (certbot's, every 60 days of 90) has failed by then.
const EXPIRY_WARNING: Duration = Duration::from_secs(14 * 86_400);

/// A certificate file larger than this is not one: a chain of a few
/// certificates is a few KiB.
const MAX_PEM_FILE: u64 = 1 << 20;

/// TLS 1.2 sessions remembered by ID for resumption, which spares a
/// returning client the key exchange and its signature (about 200 bytes
/// each: nginx's `ssl_session_cache shared:SSL:10m` holds about 40,000).
/// TLS 1.3 resumes from tickets that carry the session themselves (see
/// [`server_config`]).
const SESSION_CACHE: usize = 20_000;

/// One `tls_certificates` entry as written: the chain's file, the key's
/// when `key=` names it, and the OCSP response's when it is named; or one
/// file of a directory written there, and that directory as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertificateFiles {
    pub chain: PathBuf,
    pub key: Option<PathBuf>,
    pub ocsp: Option<PathBuf>,
    pub directory: Option<PathBuf>,
}

impl CertificateFiles {
    /// The OCSP response's file: the one named, or the chain's name with
    /// `.ocsp` after it (`site.pem.ocsp`), as HAProxy looks for it; and
    /// whether it was named.
    fn ocsp_file(&self) -> (PathBuf, bool) {
        match &self.ocsp {
            Some(path) => (path.clone(), true),
            None => {
                let mut path = self.chain.clone().into_os_string();
                path.push(".ocsp");
                (PathBuf::from(path), false)
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    #[error("{}: {error}", path.display())]
    Unreadable {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: larger than 1 MiB: not a certificate file", path.display())]
    TooLarge { path: PathBuf },
    #[error("{}: larger than {} KiB: not an OCSP response", path.display(), ocsp::MAX_RESPONSE / 1024)]
    OcspTooLarge { path: PathBuf },
    #[error("{}: no PEM certificate in it (`-----BEGIN CERTIFICATE-----`)", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "{}: no PEM private key in it (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
         `EC PRIVATE KEY`), nor a {} beside it; name the key's file with `key=`",
        path.display(),
        private_key::names(beside)
    )]
    NoKey { path: PathBuf, beside: Vec<PathBuf> },
    #[error(
        "{}: no PEM private key in it, nor a {} beside it: a file of a directory holds its \
         key after its chain (`cat fullchain.pem privkey.pem > {}`), or has it in a file \
         of that name",
        path.display(),
        private_key::names(beside),
        path.display()
    )]
    NoKeyInDirectory { path: PathBuf, beside: Vec<PathBuf> },
    #[error(
        "{}: no PEM private key in it (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or \
         `EC PRIVATE KEY`), for the certificate {}",
        path.display(),
        chain.display()
    )]
    NotAKey { path: PathBuf, chain: PathBuf },
    #[error("{}: no certificate file in the directory (`*.pem` or `*.crt`)", path.display())]
    EmptyDirectory { path: PathBuf },
    #[error(
        "{}: more than {} certificate files in the directory",
        path.display(),
        directory::MAX_FILES
    )]
    TooManyFiles { path: PathBuf },
    #[error(
        "{}: the private key is encrypted, and would need its password at every start: \
         write it out decrypted (`openssl pkey -in <key> -out <new key>`), readable by inverso's user alone",
        path.display()
    )]
    EncryptedKey { path: PathBuf },
    #[error("{}: {what}", path.display())]
    Malformed { path: PathBuf, what: String },
    #[error("{}: the private key is not one this proxy can sign with: {error}", path.display())]
    UnusableKey { path: PathBuf, error: rustls::Error },
    #[error("{}: the private key does not belong to the certificate {}", key.display(), chain.display())]
    KeyMismatch { chain: PathBuf, key: PathBuf },
    #[error("{}: {error} (for the certificate {})", path.display(), chain.display())]
    Ocsp {
        path: PathBuf,
        chain: PathBuf,
        error: ocsp::OcspError,
    },
}

/// The certificates served, in the order written, each with what it was
/// read from (for `inverso check` and the log).
pub struct Certificates {
    entries: Vec<Entry>,
}

/// One certificate served.
struct Entry {
    files: CertificateFiles,
    key: Arc<CertifiedKey>,
    stapled: Option<Stapled>,
}

/// A certificate with its OCSP response, given to clients until the
/// response's `nextUpdate`; the certificate alone after it.
struct Stapled {
    key: Arc<CertifiedKey>,
    from: PathBuf,
    good: ocsp::Good,
    /// Whether its going out of date was said.
    said_expired: AtomicBool,
}

/// Never the keys.
impl fmt::Debug for Certificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.entries.iter().map(|entry| &entry.files.chain))
            .finish()
    }
}

/// An OCSP response stapled: its file, and what it says.
pub struct StapledFrom<'a> {
    pub chain: &'a Path,
    pub from: &'a Path,
    pub good: ocsp::Good,
}

impl Certificates {
    /// Reads every entry's files, checking each key against its
    /// certificate and each OCSP response against its certificate, and
    /// warns of a certificate that has expired or expires within
    /// [`EXPIRY_WARNING`]: clients refuse it then.
    pub fn load(files: &[CertificateFiles]) -> Result<Certificates, CertificateError> {
        let provider = provider();
        let now = SystemTime::now();
        let entries = (files.iter())
            .map(|files| {
                let key = Arc::new(load_one(files, &provider)?);
                let stapled = staple(files, &key, now)?;
                Ok(Entry {
                    files: files.clone(),
                    key,
                    stapled,
                })
            })
            .collect::<Result<_, CertificateError>>()?;
        let certificates = Certificates { entries };
        for entry in &certificates.entries {
            warn_of_expiring_key(&entry.files.chain, &entry.key);
        }
        Ok(certificates)
    }

    pub fn files(&self) -> impl Iterator<Item = &CertificateFiles> {
        self.entries.iter().map(|entry| &entry.files)
    }

    /// Each certificate's file, and when it stops being valid (`None`
    /// for a certificate that cannot say).
    pub fn valid_until(&self) -> impl Iterator<Item = (&Path, Option<SystemTime>)> {
        (self.entries.iter()).map(|entry| {
            let der = entry.key.end_entity_cert().ok();
            (
                entry.files.chain.as_path(),
                der.and_then(|der| x509::not_after(der)),
            )
        })
    }

    /// The OCSP responses stapled, each with its certificate's file.
    pub fn stapled(&self) -> impl Iterator<Item = StapledFrom<'_>> {
        (self.entries.iter()).filter_map(|entry| {
            let stapled = entry.stapled.as_ref()?;
            Some(StapledFrom {
                chain: &entry.files.chain,
                from: &stapled.from,
                good: stapled.good,
            })
        })
    }

    /// The files of the certificates that name no host (no DNS name in
    /// their subject alternative names: an address's alone, or a name in
    /// the subject's CN, which clients no longer read), which no client
    /// that names a host is given by name.
    pub fn naming_no_host(&self) -> impl Iterator<Item = &Path> {
        (self.entries.iter())
            .filter(|entry| {
                let leaf = entry.key.end_entity_cert().ok();
                let cert = leaf.and_then(|der| webpki::EndEntityCert::try_from(der).ok());
                cert.is_none_or(|cert| cert.valid_dns_names().next().is_none())
            })
            .map(|entry| entry.files.chain.as_path())
    }

    /// The certificate for a client that asked for `name`: the first
    /// valid for it (wildcards as browsers match them), else the first,
    /// or, `strict`, none.
    fn for_name(&self, name: Option<&str>, strict: bool) -> Option<&Entry> {
        let first = self.entries.first();
        let otherwise = first.filter(|_| !strict);
        let Some(name) = name else {
            return otherwise;
        };
        if self.entries.len() == 1 && !strict {
            return first;
        }
        let Ok(name) = ServerName::try_from(name) else {
            return otherwise;
        };
        self.entries
            .iter()
            .find(|entry| valid_for(&entry.key, &name))
            .or(otherwise)
    }
}

impl Entry {
    /// What a client is given at `now`: the certificate with its OCSP
    /// response while that is in date, the certificate alone after
    /// (a response out of date is refused by the clients that read it,
    /// where none at all has them ask the authority themselves).
    fn served(&self, now: SystemTime) -> &Arc<CertifiedKey> {
        let Some(stapled) = &self.stapled else {
            return &self.key;
        };
        match stapled.good.next_update {
            Some(next) if next <= now => {
                if !stapled.said_expired.swap(true, Ordering::Relaxed) {
                    log::warn!(
                        "{}: the OCSP response is out of date since {} (its nextUpdate), \
                         and is no longer stapled: fetch a new one, and reload",
                        stapled.from.display(),
                        crate::http::date::format_rfc3339(next)
                    );
                }
                &self.key
            }
            _ => &stapled.key,
        }
    }
}

/// The OCSP response to staple with `key`, read from its file (see
/// [`CertificateFiles::ocsp_file`]). A file named with `ocsp=` that
/// cannot be read, or is no response about this certificate, is an error
/// (a mistake in the configuration); a response not good now (out of
/// date, revoked, refused) is warned of and not stapled, as is anything
/// wrong with a file found by its name alone.
fn staple(
    files: &CertificateFiles,
    key: &CertifiedKey,
    now: SystemTime,
) -> Result<Option<Stapled>, CertificateError> {
    let (path, named) = files.ocsp_file();
    let unusable = |error: ocsp::OcspError| CertificateError::Ocsp {
        path: path.clone(),
        chain: files.chain.clone(),
        error,
    };
    let bytes = match crate::cache::persist::read_regular(&path, ocsp::MAX_RESPONSE) {
        Ok(Some(bytes)) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !named => return Ok(None),
        Err(error) if named => return Err(CertificateError::Unreadable { path, error }),
        Ok(None) if named => return Err(CertificateError::OcspTooLarge { path }),
        Ok(None) | Err(_) => {
            log::warn!(
                "{}: unreadable or larger than {} KiB: no OCSP response stapled",
                path.display(),
                ocsp::MAX_RESPONSE / 1024
            );
            return Ok(None);
        }
    };
    let leaf = key
        .end_entity_cert()
        .map_err(|e| malformed(&files.chain, e))?;
    let issuer = key.cert.get(1).map(|der| der.as_ref());
    match ocsp::check(&bytes, leaf, issuer, now) {
        Ok(good) => {
            let mut stapled = key.clone();
            stapled.ocsp = Some(bytes);
            Ok(Some(Stapled {
                key: Arc::new(stapled),
                from: path,
                good,
                said_expired: AtomicBool::new(false),
            }))
        }
        Err(error) if named && error.is_a_mistake() => Err(unusable(error)),
        Err(error) => {
            log::warn!("{}: not stapled", unusable(error));
            Ok(None)
        }
    }
}

pub(crate) fn valid_for(key: &CertifiedKey, name: &ServerName<'_>) -> bool {
    let Ok(der) = key.end_entity_cert() else {
        return false;
    };
    webpki::EndEntityCert::try_from(der)
        .is_ok_and(|cert| cert.verify_is_valid_for_subject_name(name).is_ok())
}

/// Picks the certificate a client is given; `strict` (`tls_strict_sni`)
/// gives none, refusing the handshake, to a client that named no host a
/// certificate is valid for.
///
/// The certificates the ACME client got go first for the names they are
/// valid for, and the first of them is the first of all when
/// `tls_certificates` has none;
/// a `tls-alpn-01` validation (its hello offers `acme-tls/1`) is given
/// the certificate that proves the name it asks for, or none.
#[derive(Debug)]
struct ByName {
    certificates: Arc<Certificates>,
    strict: bool,
    acme: Arc<crate::acme::AcmeSlot>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name();
        let validating =
            (hello.alpn()).is_some_and(|mut offered| offered.any(|p| p == crate::acme::ACME_TLS));
        if validating {
            return name.and_then(|name| self.acme.proving(name));
        }
        let issued = self.acme.certificates();
        if let Some(name) = name.and_then(|n| ServerName::try_from(n).ok()) {
            if let Some(key) = issued.iter().find(|key| valid_for(key, &name)) {
                return Some(key.clone());
            }
        }
        let found = (self.certificates.for_name(name, self.strict))
            .map(|entry| entry.served(SystemTime::now()).clone())
            .or_else(|| issued.into_iter().next().filter(|_| !self.strict));
        if found.is_none() {
            log::debug!(
                "TLS handshake refused (tls_strict_sni): no certificate for {}",
                name.unwrap_or("a client naming no host")
            );
        }
        found
    }
}

/// `tls_verify_client`: whether a client on `tls_port` is asked for a
/// certificate of its own (nginx's `ssl_verify_client`, HAProxy's
/// `verify`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum VerifyClient {
    #[default]
    Off,
    /// Asked; one that sends none is served without, one that sends one
    /// not valid is refused at the handshake.
    Optional,
    /// Required: one that sends none, or one not valid, is refused at
    /// the handshake.
    On,
}

impl VerifyClient {
    pub fn parse(v: &str) -> Result<VerifyClient, String> {
        match v.to_ascii_lowercase().as_str() {
            "off" | "false" | "none" => Ok(VerifyClient::Off),
            "optional" => Ok(VerifyClient::Optional),
            "on" | "true" | "required" => Ok(VerifyClient::On),
            _ => Err(format!("`{v}`: expected off, optional or on")),
        }
    }
}

/// `tls_protocols` and `backend_tls_protocols`: the TLS versions
/// `tls_port` speaks, or backends are offered (nginx's `ssl_protocols`
/// and `proxy_ssl_protocols`): 1.2 and 1.3, or one of them alone.
/// Nothing older: rustls has none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsVersions {
    tls12: bool,
    tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

impl TlsVersions {
    /// Comma (or space) separated, in nginx's spelling and any case:
    /// `TLSv1.2, TLSv1.3`, `TLSv1.3`.
    pub fn parse(v: &str) -> Result<TlsVersions, String> {
        let mut versions = TlsVersions {
            tls12: false,
            tls13: false,
        };
        for word in v.split([',', ' ', '\t']).filter(|w| !w.is_empty()) {
            match word.to_ascii_lowercase().as_str() {
                "tlsv1.2" => versions.tls12 = true,
                "tlsv1.3" => versions.tls13 = true,
                "sslv2" | "sslv3" | "tlsv1" | "tlsv1.0" | "tlsv1.1" => {
                    return Err(format!(
                        "{word} is not offered: it is broken or deprecated (RFC 7568, RFC \
                         8996); TLSv1.2 and TLSv1.3 are"
                    ))
                }
                _ => return Err(format!("`{word}`: expected TLSv1.2 or TLSv1.3")),
            }
        }
        match versions.tls12 || versions.tls13 {
            true => Ok(versions),
            false => Err("names no version: TLSv1.2, TLSv1.3 or both".into()),
        }
    }

    pub(crate) fn rustls(self) -> Vec<&'static SupportedProtocolVersion> {
        let versions = [
            (self.tls13, &rustls::version::TLS13),
            (self.tls12, &rustls::version::TLS12),
        ];
        (versions.into_iter())
            .filter_map(|(on, version)| on.then_some(version))
            .collect()
    }
}

/// How clients' certificates are checked: against the authorities of
/// `tls_client_ca`, and the revocation lists of `tls_client_crl`.
pub struct ClientAuth {
    verifier: Arc<dyn ClientCertVerifier>,
    /// What the checks were made of: sessions resume only under the same
    /// (see [`sessions_carry_over`]).
    made_of: ClientAuthInputs,
}

type ClientAuthInputs = (
    VerifyClient,
    Vec<CertificateDer<'static>>,
    Vec<CertificateRevocationListDer<'static>>,
);

/// Never the verifier's insides.
impl fmt::Debug for ClientAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAuth")
            .field("verify", &self.made_of.0)
            .finish_non_exhaustive()
    }
}

impl ClientAuth {
    /// Reads the authorities of `ca` and the revocation lists of `crl`.
    /// With a list, the certificate a client sends must be in no list of
    /// its issuer's, and that issuer must have a list in the file (a
    /// client's certificate whose status is unknown is refused); the
    /// intermediates above it are not looked up. A list past its next update
    /// is refused, as OpenSSL refuses one: a revocation since would not be
    /// in it.
    pub fn load(verify: VerifyClient, ca: &Path, crl: Option<&Path>) -> Result<Self, TrustError> {
        let authorities = trust::read_certificates(ca)?;
        warn_of_expiring(ca, "an authority", &authorities);
        let mut roots = RootCertStore::empty();
        trust::add_all(&mut roots, ca, authorities.clone())?;
        let crls = match crl {
            Some(path) => trust::read_crls(path)?,
            None => Vec::new(),
        };
        let mut builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), Arc::new(provider()))
                .with_crls(crls.clone())
                .only_check_end_entity_revocation()
                .enforce_revocation_expiration();
        if verify == VerifyClient::Optional {
            builder = builder.allow_unauthenticated();
        }
        let verifier = builder.build().map_err(|e| TrustError::Malformed {
            path: crl.unwrap_or(ca).to_path_buf(),
            what: e.to_string(),
        })?;
        Ok(ClientAuth {
            verifier,
            made_of: (verify, authorities, crls),
        })
    }

    /// Checks again, now, the certificates a client showed when its
    /// session began: rustls does not on a resumed session, which may
    /// have begun hours ago (a TLS 1.2 session ID is kept until 20,000
    /// newer ones push it out), with a certificate that has expired since.
    pub fn check_again(&self, shown: &[CertificateDer<'_>]) -> Result<(), rustls::Error> {
        let Some((own, intermediates)) = shown.split_first() else {
            return Ok(());
        };
        let now = rustls_pki_types::UnixTime::now();
        self.verifier.verify_client_cert(own, intermediates, now)?;
        Ok(())
    }
}

/// The rustls settings of `tls_port`: `versions` (TLS 1.2 and 1.3) with rustls's
/// cipher suites (AES-GCM and ChaCha20-Poly1305, forward secret alone),
/// HTTP/1.1 and 1.0 named in ALPN (a client that offers `h2` too then
/// speaks HTTP/1.1; one that offers only `h2` is refused at the
/// handshake, as nginx without `http2` refuses it; `curl --http1.0`
/// offers `http/1.0` alone), and sessions resumed.
///
/// Tickets carry the session, encrypted with a key made with the
/// configuration (kept by a reload that keeps the certificates, see
/// [`sessions_carry_over`]) and replaced every 6 hours, as OpenSSL's do for nginx and HAProxy: a
/// ticket that named a session kept here had rustls look for it in a
/// list of every session kept, under one lock, and that search took a
/// third of the CPU of new connections once 20,000 were kept.
///
/// With `client_auth`, clients are asked for certificates of their own.
pub fn server_config(
    certificates: Arc<Certificates>,
    client_auth: Option<&ClientAuth>,
    versions: TlsVersions,
    choice: &suites::TlsChoice,
    strict_sni: bool,
    tickets: bool,
    acme: Arc<crate::acme::AcmeSlot>,
) -> Arc<ServerConfig> {
    // Every version keeps a suite of its own (see `TlsChoice::provider`).
    let builder = ServerConfig::builder_with_provider(Arc::new(choice.provider()))
        .with_protocol_versions(&versions.rustls())
        .expect("rustls's ring provider supports TLS 1.2 and 1.3");
    let builder = match client_auth {
        Some(auth) => builder.with_client_cert_verifier(auth.verifier.clone()),
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(ByName {
        certificates,
        strict: strict_sni,
        acme,
    }));
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    config.ignore_client_order = choice.prefer_own_order;
    config.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE);
    match rustls::crypto::ring::Ticketer::new() {
        Ok(ticketer) if tickets => config.ticketer = ticketer,
        Ok(_) => {}
        Err(e) => log::warn!("TLS tickets: {e}; TLS 1.3 sessions resume from memory"),
    }
    Arc::new(config)
}

/// Whether sessions made under one configuration (`was`: its
/// certificates, and how it checks clients' own) may resume under
/// another (`next`), so that a reload that changes nothing else loses
/// none. One that changes a certificate starts afresh, as nginx's session
/// context, which holds its certificates' digest, does: every client then
/// sees the new certificate at its next connection. So does one that
/// changes how clients' certificates are checked: a resumed session is
/// not checked again, and a client whose certificate was just revoked, or
/// whose authority is no longer trusted, would otherwise come back in on
/// it.
pub fn sessions_carry_over(
    was: (&Certificates, Option<&ClientAuth>),
    next: (&Certificates, Option<&ClientAuth>),
) -> bool {
    let (served, serving) = (&was.0.entries, &next.0.entries);
    let same_certificates = served.len() == serving.len()
        && (served.iter().zip(serving)).all(|(a, b)| a.key.cert.first() == b.key.cert.first());
    same_certificates && was.1.map(|a| &a.made_of) == next.1.map(|a| &a.made_of)
}

/// `next`, resuming the sessions of `was`: its store of sessions, and
/// its ticket key while both give tickets (`tls_session_tickets` turned
/// off, or on, takes effect).
pub fn with_sessions_of(next: &ServerConfig, was: &ServerConfig) -> Arc<ServerConfig> {
    let mut config = next.clone();
    config.session_storage = was.session_storage.clone();
    if next.ticketer.enabled() && was.ticketer.enabled() {
        config.ticketer = was.ticketer.clone();
    }
    Arc::new(config)
}

fn provider() -> CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The chain and key of one PEM file (the ACME client's), checked as a
/// `tls_certificates` entry is.
pub(crate) fn load_certified(path: &Path) -> Result<CertifiedKey, CertificateError> {
    let files = CertificateFiles {
        chain: path.to_path_buf(),
        key: None,
        ocsp: None,
        directory: None,
    };
    load_one(&files, &provider())
}

fn load_one(
    files: &CertificateFiles,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let chain_text = read_pem(&files.chain)?;
    let chain = CertificateDer::pem_slice_iter(&chain_text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| malformed(&files.chain, e))?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate {
            path: files.chain.clone(),
        });
    }
    let (key, key_path) = private_key::read(files, &chain_text)?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|error| CertificateError::UnusableKey {
            path: key_path.clone(),
            error,
        })?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertificateError::KeyMismatch {
            chain: files.chain.clone(),
            key: key_path,
        }),
        Err(e) => Err(malformed(&files.chain, e)),
    }
}

fn read_pem(path: &Path) -> Result<Vec<u8>, CertificateError> {
    match crate::cache::persist::read_regular(path, MAX_PEM_FILE) {
        Ok(Some(text)) => Ok(text),
        Ok(None) => Err(CertificateError::TooLarge {
            path: path.to_path_buf(),
        }),
        Err(error) => Err(CertificateError::Unreadable {
            path: path.to_path_buf(),
            error,
        }),
    }
}

/// The file at `path`, unless it is larger than `limit` (`None`): a file
/// named as certificates may be anything, and is not read whole first.
/// A regular file only: a FIFO would hang `check`, or a reload and with
/// it the signal thread.
fn contains(text: &[u8], part: &[u8]) -> bool {
    text.windows(part.len()).any(|w| w == part)
}

fn malformed(path: &Path, e: impl fmt::Display) -> CertificateError {
    CertificateError::Malformed {
        path: path.to_path_buf(),
        what: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `localhost` and its key, as PEM.
    fn made() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    fn load(dir: &Path, chain: &str, key: Option<&str>) -> Result<Certificates, CertificateError> {
        let chain_path = dir.join("chain.pem");
        std::fs::write(&chain_path, chain).unwrap();
        let key = key.map(|text| {
            let path = dir.join("key.pem");
            std::fs::write(&path, text).unwrap();
            path
        });
        Certificates::load(&[CertificateFiles {
            chain: chain_path,
            key,
            ocsp: None,
            directory: None,
        }])
    }

    #[test]
    fn a_stapled_response_is_served_until_its_next_update_and_the_certificate_alone_after() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = made();
        let mut loaded = load(dir.path(), &cert, Some(&key)).unwrap();
        let entry = loaded.entries.pop().unwrap();
        assert!(entry.stapled.is_none(), "no chain.pem.ocsp beside it");
        let until = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000);
        let mut with = (*entry.key).clone();
        with.ocsp = Some(b"a response".to_vec());
        let stapled = Arc::new(with);
        let entry = Entry {
            stapled: Some(Stapled {
                key: stapled.clone(),
                from: dir.path().join("chain.pem.ocsp"),
                good: ocsp::Good {
                    this_update: until - Duration::from_secs(86_400),
                    next_update: Some(until),
                },
                said_expired: AtomicBool::new(false),
            }),
            ..entry
        };
        let second = Duration::from_secs(1);
        assert!(Arc::ptr_eq(entry.served(until - second), &stapled));
        assert!(Arc::ptr_eq(entry.served(until), &entry.key));
        assert!(entry
            .stapled
            .as_ref()
            .unwrap()
            .said_expired
            .load(Ordering::Relaxed));
        assert!(Arc::ptr_eq(entry.served(until + second), &entry.key));
    }

    #[test]
    fn a_reload_keeps_the_ticket_key_while_both_give_tickets_and_turns_them_off_or_on() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = made();
        let served = Arc::new(load(dir.path(), &cert, Some(&key)).unwrap());
        let config = |tickets: bool| {
            let choice = suites::TlsChoice::default();
            server_config(
                served.clone(),
                None,
                TlsVersions::default(),
                &choice,
                false,
                tickets,
                Default::default(),
            )
        };
        let (on, off) = (config(true), config(false));
        assert!(on.ticketer.enabled() && !off.ticketer.enabled());
        let kept = with_sessions_of(&config(true), &on);
        assert!(Arc::ptr_eq(&kept.ticketer, &on.ticketer));
        assert!(Arc::ptr_eq(&kept.session_storage, &on.session_storage));
        assert!(!with_sessions_of(&off, &on).ticketer.enabled());
        let back_on = config(true);
        let turned_on = with_sessions_of(&back_on, &off);
        assert!(turned_on.ticketer.enabled());
        assert!(Arc::ptr_eq(&turned_on.ticketer, &back_on.ticketer));
    }

    #[test]
    fn a_chain_with_its_key_in_one_file_or_two_is_taken_and_a_wrong_one_said_why() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = made();
        assert!(load(dir.path(), &(cert.clone() + &key), None).is_ok());
        assert!(load(dir.path(), &cert, Some(&key)).is_ok());
        // Another certificate's key.
        let (_, other_key) = made();
        let e = load(dir.path(), &cert, Some(&other_key)).err().unwrap();
        assert!(matches!(e, CertificateError::KeyMismatch { .. }), "{e}");
        // No key at all, and an encrypted one, each said apart.
        let e = load(dir.path(), &cert, None).err().unwrap();
        assert!(matches!(e, CertificateError::NoKey { .. }), "{e}");
        let encrypted =
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIB\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let e = load(dir.path(), &cert, Some(encrypted)).err().unwrap();
        assert!(matches!(e, CertificateError::EncryptedKey { .. }), "{e}");
        assert!(e.to_string().contains("openssl pkey"), "{e}");
        // No certificate.
        let e = load(dir.path(), &key, None).err().unwrap();
        assert!(matches!(e, CertificateError::NoCertificate { .. }), "{e}");
    }
}
