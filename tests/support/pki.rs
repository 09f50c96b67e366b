//! Test certificates, made here with rcgen: a certificate authority, the
//! leaf certificates it signs (servers' and clients'), and the PEM files
//! the proxy's configuration names. Both ends of the proxy use them: the
//! clients of `tls_port` and the TLS backends. For clients' certificates
//! (`tls_verify_client`) there are intermediate authorities, certificates
//! valid for a given period, and revocation lists.

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The crypto provider every test's rustls uses: the crate's own.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A test certificate authority.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub der: CertificateDer<'static>,
    pub pem: String,
}

/// A leaf certificate the CA signed, and its private key.
#[derive(Clone)]
pub struct Leaf {
    /// Its serial number: unique in the test run, for revocation lists.
    pub serial: u64,
    pub der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

/// Serial numbers of the leaves made in this run, each its own.
static SERIAL: AtomicU64 = AtomicU64::new(1000);

/// A `SystemTime` as rcgen's certificates and lists take times (to the
/// second): a macro, as the type is the `time` crate's.
macro_rules! rcgen_time {
    ($t:expr) => {{
        let secs = $t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs)
    }};
}

impl Ca {
    pub fn new() -> Ca {
        Ca::named("inverso test CA")
    }

    /// A root authority called `name` (its subject's common name).
    pub fn named(name: &str) -> Ca {
        let params = Ca::params(name);
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// An intermediate authority called `name` that this one signed.
    pub fn intermediate(&self, name: &str) -> Ca {
        let mut params = Ca::params(name);
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Ca {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    fn params(name: &str) -> CertificateParams {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        params
    }

    /// A server certificate for `names` (DNS names, wildcards allowed, or
    /// IP addresses, which become IP address names), with a key of its own.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.signed(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A server certificate for `names` valid from `not_before` to
    /// `not_after` (to the second).
    pub fn leaf_valid(
        &self,
        names: &[&str],
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Leaf {
        self.signed_with(names, ExtendedKeyUsagePurpose::ServerAuth, |params| {
            params.not_before = rcgen_time!(not_before);
            params.not_after = rcgen_time!(not_after);
        })
    }

    /// A client certificate (for mutual TLS) named `name`.
    pub fn client_leaf(&self, name: &str) -> Leaf {
        self.signed(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    /// A client certificate named `name`, valid from `not_before` to
    /// `not_after` (to the second, as X.509 writes times).
    pub fn client_leaf_valid(
        &self,
        name: &str,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Leaf {
        self.signed_with(&[name], ExtendedKeyUsagePurpose::ClientAuth, |params| {
            params.not_before = rcgen_time!(not_before);
            params.not_after = rcgen_time!(not_after);
        })
    }

    fn signed(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        self.signed_with(names, usage, |_| {})
    }

    fn signed_with(
        &self,
        names: &[&str],
        usage: ExtendedKeyUsagePurpose,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, names[0].as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        params.extended_key_usages.push(usage);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        adjust(&mut params);
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            serial,
            der: cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// A revocation list of this authority's (PEM, as `openssl ca
    /// -gencrl` writes it) revoking `revoked`, issued two days ago, its
    /// next update at `next_update` (in the past: out of date).
    pub fn crl(&self, revoked: &[&Leaf], next_update: SystemTime) -> String {
        let now = SystemTime::now();
        let params = rcgen::CertificateRevocationListParams {
            this_update: rcgen_time!(now - Duration::from_secs(2 * 86_400)),
            next_update: rcgen_time!(next_update),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|leaf| rcgen::RevokedCertParams {
                    serial_number: rcgen::SerialNumber::from(leaf.serial),
                    revocation_time: rcgen_time!(now - Duration::from_secs(60)),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        params.signed_by(&self.issuer).unwrap().pem().unwrap()
    }

    /// Writes the CA's certificate alone to `dir/name` (what
    /// `backend_tls_ca` names); returns its path.
    pub fn write(&self, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, &self.pem).unwrap();
        path
    }
}

impl Leaf {
    /// Writes `dir/name`: the certificate, then the CA's (the chain as a
    /// server sends it), then the private key; returns its path.
    pub fn write(&self, ca: &Ca, dir: &Path, name: &str) -> PathBuf {
        let path = dir.join(name);
        let text = format!("{}{}{}", self.cert_pem, ca.pem, self.key_pem);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Writes the chain and the key apart, as certbot's `fullchain.pem`
    /// and `privkey.pem`; returns the `tls_certificates` entry naming them.
    pub fn write_apart(&self, ca: &Ca, dir: &Path, name: &str) -> String {
        let chain = dir.join(format!("{name}.crt"));
        let key = dir.join(format!("{name}.key"));
        std::fs::write(&chain, format!("{}{}", self.cert_pem, ca.pem)).unwrap();
        std::fs::write(&key, &self.key_pem).unwrap();
        format!("{} key={}", chain.display(), key.display())
    }

    /// The chain (this certificate, then `ca`'s) as a server or a client
    /// presents it.
    pub fn chain(&self, ca: &Ca) -> Vec<CertificateDer<'static>> {
        vec![self.der.clone(), ca.der.clone()]
    }

    /// The private key, as rustls takes it.
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::from_pem_slice(self.key_pem.as_bytes()).unwrap()
    }
}

/// A CA, a `localhost` certificate of it, and where its files are.
pub struct Pki {
    pub ca: Ca,
    pub localhost: Leaf,
    /// The `tls_certificates` value that serves `localhost`.
    pub entry: String,
    pub dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let ca = Ca::new();
        let dir = tempfile::tempdir().unwrap();
        let localhost = ca.leaf(&["localhost"]);
        let entry = localhost.write_apart(&ca, dir.path(), "localhost");
        Pki {
            ca,
            localhost,
            entry,
            dir,
        }
    }
}
