//! Certificates from an ACME server (RFC 8555: Let's Encrypt, ZeroSSL,
//! a company's own step-ca), as nginx's `acme_certificate`, HAProxy's
//! `acme` section and Caddy do: `acme_domains` names the hosts of each
//! certificate, and a thread of its own orders each, proves each name by
//! HTTP-01 (the proxy answers the server's
//! `/.well-known/acme-challenge/<token>` on its plain port, see
//! [`Acme::answer`]), TLS-ALPN-01 (a handshake on `tls_port` offering
//! `acme-tls/1` is given a certificate made for the name, see
//! [`AcmeSlot::proving`]) or DNS-01 (a TXT record written by a signed
//! DNS update, see [`dns_update`]), keeps it in `acme_state_dir` with
//! the account's key, serves it on `tls_port` from the next handshake
//! (see [`AcmeSlot`]), and orders the next when a third of its lifetime
//! is left, or when the server's renewal information (RFC 9773) says.
//!
//! What is kept, under a folder per ACME server (its host and port: the
//! staging server's certificate is not taken for production's):
//! `account.key`, the account's P-256 key (PKCS#8 PEM), and a file a
//! certificate, named by its first name (`shop.example.pem`), the chain
//! and then its private key, as `tls_certificates` reads one file. Each
//! is written to a temporary file, synced and renamed, readable by the
//! proxy's user alone.

pub mod dns_update;
pub mod http;
mod jws;
// Public for the fuzz targets alone: they read what a server answers.
#[doc(hidden)]
pub mod order;
mod settings;
#[doc(hidden)]
pub mod state;

pub use settings::{
    parse_dns_server, parse_domains, parse_email, parse_mac_key, parse_zones, AcmeSettings,
    Challenge, MacKey,
};

use crossbeam_channel::{bounded, select, Receiver, Sender, TryRecvError};
use parking_lot::{Mutex, RwLock};
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use state::Stored;

/// Let's Encrypt's production server: what `acme_directory` is unless
/// set.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// The path an HTTP-01 challenge is asked at, the token after it.
pub const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// After a failed order, the next waits this long, doubled at each
/// failure up to [`MAX_RETRY`]: Let's Encrypt allows 5 failed
/// validations of a name an hour.
const FIRST_RETRY: Duration = Duration::from_secs(120);
const MAX_RETRY: Duration = Duration::from_secs(12 * 3600);

/// The longest the thread sleeps before looking at the certificate
/// again (a clock set forward, a certificate replaced by hand).
const LOOK_AGAIN: Duration = Duration::from_secs(12 * 3600);

/// How often the server's renewal information is asked when it says
/// nothing of it (`Retry-After`): RFC 9773 §4.3 suggests every 6 hours.
const RENEWAL_INFO_EVERY: Duration = Duration::from_secs(6 * 3600);

/// How long one exchange with the ACME server may take.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The protocol a `tls-alpn-01` validation offers in ALPN (RFC 8737 §6.2).
pub const ACME_TLS: &[u8] = b"acme-tls/1";

/// What `inverso check` says of the ACME client, a line a certificate:
/// its names, the server, the file it is kept in, and whether one is
/// kept there and when it is due.
pub fn summary(settings: &AcmeSettings) -> Vec<String> {
    let date = crate::http::date::format_rfc3339;
    let line = |names: &Vec<String>| {
        let kept = match Stored::read(settings, names) {
            Ok(Some(Stored {
                lacks: Some(name), ..
            })) => format!("a certificate not valid for {name}: a new one is ordered at start"),
            Ok(Some(stored)) => format!(
                "a certificate valid until {}, renewed from {}",
                date(stored.not_after),
                date(stored.due)
            ),
            Ok(None) => "no certificate yet: one is ordered at start".to_string(),
            Err(why) => format!("{why}: a new one is ordered at start"),
        };
        format!(
            "{} from {}, kept in {}: {kept}",
            names.join(", "),
            settings.directory,
            state::certificate_path(settings, names).display()
        )
    };
    settings.certificates.iter().map(line).collect()
}

/// The ACME client as one generation of the settings' TLS sees it: made
/// empty by the loader, given the running client when the settings come
/// in force (see [`Acme::serve_into`]).
#[derive(Default)]
pub struct AcmeSlot(RwLock<Option<Arc<Acme>>>);

impl std::fmt::Debug for AcmeSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AcmeSlot")
    }
}

impl AcmeSlot {
    /// The certificates in force, in the order `acme_domains` names
    /// them.
    pub fn certificates(&self) -> Vec<Arc<CertifiedKey>> {
        let acme = self.0.read();
        let certificates = acme.iter().flat_map(|acme| &acme.certificates);
        certificates.filter_map(Certificate::in_force).collect()
    }

    /// The certificate a `tls-alpn-01` validation of `name` is given
    /// (RFC 8737), while the client proves that name.
    pub fn proving(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.0.read().as_ref()?.proving.read().get(name).cloned()
    }
}

/// The running client: its settings, the tokens it is answering, and
/// each certificate.
pub struct Acme {
    settings: AcmeSettings,
    /// Token → key authorization, while the server may ask for it
    /// (`http-01`).
    challenges: RwLock<HashMap<String, String>>,
    /// Name → the certificate a validation of it is given (`tls-alpn-01`).
    proving: RwLock<HashMap<String, Arc<CertifiedKey>>>,
    /// Token → the TXT record written for it, its name and value
    /// (`dns-01`), taken out once the server has looked.
    records: Mutex<HashMap<String, (String, String)>>,
    /// One a group of `acme_domains`.
    certificates: Vec<Certificate>,
}

/// One certificate of `acme_domains`, ordered, renewed and failing
/// apart from the others: a name that can no longer be proven holds up
/// its own certificate alone.
struct Certificate {
    names: Vec<String>,
    /// The one in force, and when the next is ordered.
    current: Mutex<Option<(Arc<CertifiedKey>, SystemTime)>>,
    /// Why the last order failed, and when the next is made; `None`
    /// once one succeeds.
    failed: Mutex<Option<Failed>>,
}

impl Certificate {
    fn in_force(&self) -> Option<Arc<CertifiedKey>> {
        self.current.lock().as_ref().map(|(key, _)| key.clone())
    }

    fn put(&self, key: Arc<CertifiedKey>, due: SystemTime) {
        *self.current.lock() = Some((key, due));
    }

    /// How long until the one in force is due for renewal: at once
    /// without one.
    fn until_due(&self) -> Duration {
        let due = self.current.lock().as_ref().map(|(_, due)| *due);
        let due = due.unwrap_or(SystemTime::UNIX_EPOCH);
        due.duration_since(SystemTime::now()).unwrap_or_default()
    }
}

/// When the client next looks after a certificate.
struct Schedule {
    /// Failed orders in a row.
    failures: u32,
    /// When the next order is made after a failure.
    retry_at: Option<Instant>,
    /// When the server's renewal information is asked next.
    ask_info_at: Instant,
}

/// An order that failed.
#[derive(Clone, Debug)]
pub struct Failed {
    pub why: String,
    pub at: SystemTime,
    pub next: SystemTime,
}

/// What `/status` says of a certificate.
#[derive(Debug)]
pub struct AcmeStatus {
    pub names: Vec<String>,
    /// The one in force: until when it is valid, and from when the next
    /// is ordered.
    pub valid_until: Option<SystemTime>,
    pub renewed_from: Option<SystemTime>,
    pub failed: Option<Failed>,
}

/// Stops the client's thread when dropped (after the exchange it is
/// in, if any).
pub struct AcmeThread {
    _stop: Sender<()>,
}

impl Acme {
    /// The client of `settings`, serving the certificates kept from
    /// before; its thread orders each that is not there or is due.
    pub fn start(settings: AcmeSettings) -> std::io::Result<(Arc<Acme>, AcmeThread)> {
        let certificates = (settings.certificates.iter())
            .map(|names| Certificate {
                names: names.clone(),
                current: Mutex::new(None),
                failed: Mutex::new(None),
            })
            .collect();
        let acme = Arc::new(Acme {
            settings,
            challenges: RwLock::default(),
            proving: RwLock::default(),
            records: Mutex::default(),
            certificates,
        });
        for certificate in &acme.certificates {
            acme.serve_kept(certificate);
        }
        let (stop, stopped) = bounded(1);
        let running = acme.clone();
        std::thread::Builder::new()
            .name("acme".into())
            .spawn(move || running.run(&stopped))?;
        Ok((acme, AcmeThread { _stop: stop }))
    }

    /// Serves the certificate kept for `certificate`'s names, if any.
    fn serve_kept(&self, certificate: &Certificate) {
        match Stored::read(&self.settings, &certificate.names) {
            Ok(Some(stored)) => {
                let until = crate::http::date::format_rfc3339(stored.not_after);
                let path = stored.path.display();
                match &stored.lacks {
                    None => log::info!(
                        "acme: serving the certificate kept in {path}, valid until {until}"
                    ),
                    Some(name) => log::info!(
                        "acme: serving the certificate kept in {path} for the names it has \
                         until one for {name} too comes"
                    ),
                }
                certificate.put(stored.key, stored.due);
            }
            Ok(None) => {}
            Err(why) => log::warn!("acme: {why}; a new certificate is ordered"),
        }
    }

    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    /// Has `slot` (a generation of the settings coming in force) serve
    /// this client's certificates.
    pub fn serve_into(self: &Arc<Self>, slot: &AcmeSlot) {
        *slot.0.write() = Some(self.clone());
    }

    /// The certificates in force, each with the file it is kept in.
    pub fn in_force(&self) -> Vec<(PathBuf, Arc<CertifiedKey>)> {
        let path = |c: &Certificate| state::certificate_path(&self.settings, &c.names);
        (self.certificates.iter())
            .filter_map(|c| Some((path(c), c.in_force()?)))
            .collect()
    }

    /// The key authorization a request for `path` is answered with, when
    /// it asks for a token being proven (RFC 8555 §8.3).
    pub fn answer(&self, path: &str) -> Option<String> {
        let token = path.strip_prefix(CHALLENGE_PATH)?;
        self.challenges.read().get(token).cloned()
    }

    /// Looks after each certificate until stopped: orders it whenever
    /// none is in force or the one in force is due, waiting longer after
    /// each failure, and asks the server's renewal information (RFC
    /// 9773) about the one in force meanwhile, which may make it due
    /// sooner (a certificate about to be revoked) or later.
    fn run(&self, stopped: &Receiver<()>) {
        let start = Instant::now();
        let mut schedules: Vec<Schedule> = (self.certificates.iter())
            .map(|_| Schedule {
                failures: 0,
                retry_at: None,
                ask_info_at: start,
            })
            .collect();
        loop {
            let mut sleep = LOOK_AGAIN;
            for (certificate, schedule) in self.certificates.iter().zip(&mut schedules) {
                if !matches!(stopped.try_recv(), Err(TryRecvError::Empty)) {
                    return;
                }
                sleep = sleep.min(self.look_after(certificate, schedule));
            }
            select! {
                recv(stopped) -> _ => return,
                default(sleep) => {}
            }
        }
    }

    /// Does what is due for `certificate` now, if anything; returns how
    /// long until something is.
    fn look_after(&self, certificate: &Certificate, schedule: &mut Schedule) -> Duration {
        let now = Instant::now();
        match schedule.retry_at {
            Some(at) if at > now => return at - now,
            Some(_) => {}
            None => {
                if now >= schedule.ask_info_at {
                    schedule.ask_info_at = now + self.consult_renewal_info(certificate);
                }
                let due_in = certificate.until_due();
                if !due_in.is_zero() {
                    return due_in.min(schedule.ask_info_at.saturating_duration_since(now));
                }
            }
        }
        let names = certificate.names.join(", ");
        log::info!(
            "acme: ordering a certificate for {names} from {}",
            self.settings.directory
        );
        match self.obtain(certificate) {
            Ok(stored) => {
                (schedule.failures, schedule.retry_at) = (0, None);
                *certificate.failed.lock() = None;
                log::info!(
                    "acme: a certificate for {names} is in force, valid until {}; kept in {}",
                    crate::http::date::format_rfc3339(stored.not_after),
                    stored.path.display()
                );
                certificate.put(stored.key, stored.due);
                // Its renewal information is asked at once.
                schedule.ask_info_at = Instant::now();
                Duration::ZERO
            }
            Err(why) => {
                schedule.failures += 1;
                let again = retry_after(schedule.failures);
                log::warn!(
                    "acme: no certificate for {names}: {why}; trying again in {}s",
                    again.as_secs()
                );
                schedule.retry_at = Some(Instant::now() + again);
                let at = SystemTime::now();
                let next = at + again;
                *certificate.failed.lock() = Some(Failed { why, at, next });
                again
            }
        }
    }

    /// Asks the server when `certificate`'s one in force should be
    /// renewed, and makes it due then: a time drawn at random within the
    /// window it suggests (RFC 9773 §4.2), so that its clients do not
    /// all come at once. Returns when to ask again.
    fn consult_renewal_info(&self, certificate: &Certificate) -> Duration {
        let Some(key) = certificate.in_force() else {
            return LOOK_AGAIN;
        };
        let leaf = key.end_entity_cert().ok();
        let Some(id) = leaf.and_then(|der| crate::tls::x509::renewal_id(der)) else {
            return LOOK_AGAIN;
        };
        let window = self.session_with(|session| session.renewal_window(&id));
        match window {
            Ok(Some(window)) => {
                let due = within(&window);
                let not_after = leaf.and_then(|der| crate::tls::x509::not_after(der));
                let due = not_after.map_or(due, |end| due.min(end));
                log::debug!(
                    "acme: the server suggests renewing from {}; drawn: {}",
                    crate::http::date::format_rfc3339(window.start),
                    crate::http::date::format_rfc3339(due)
                );
                let mut current = certificate.current.lock();
                if let Some((in_force, at)) = current.as_mut() {
                    if Arc::ptr_eq(in_force, &key) {
                        *at = due;
                    }
                }
                let again = window.ask_again.unwrap_or(RENEWAL_INFO_EVERY);
                again.clamp(Duration::from_secs(3600), Duration::from_secs(86_400))
            }
            Ok(None) => LOOK_AGAIN,
            Err(why) => {
                log::warn!("acme: cannot ask the server's renewal information: {why}");
                Duration::from_secs(3600)
            }
        }
    }

    /// Each certificate's state, in the order `acme_domains` names them.
    pub fn status(&self) -> Vec<AcmeStatus> {
        let status = |certificate: &Certificate| {
            let current = certificate.current.lock().clone();
            let valid_until = (current.as_ref())
                .and_then(|(key, _)| key.end_entity_cert().ok())
                .and_then(|der| crate::tls::x509::not_after(der));
            AcmeStatus {
                names: certificate.names.clone(),
                valid_until,
                renewed_from: current.map(|(_, due)| due),
                failed: certificate.failed.lock().clone(),
            }
        };
        self.certificates.iter().map(status).collect()
    }

    /// One order, from the account to the certificate kept.
    fn obtain(&self, certificate: &Certificate) -> Result<Stored, String> {
        let settings = &self.settings;
        let in_force = certificate.in_force();
        let leaf = in_force.as_ref().and_then(|key| key.end_entity_cert().ok());
        let replaces = leaf.and_then(|der| crate::tls::x509::renewal_id(der));
        let names = &certificate.names;
        let issued = self.session_with(|session| {
            session.account(settings.email.as_deref(), settings.binding())?;
            session.order(names, self, replaces.as_deref())
        })?;
        state::Stored::write(settings, names, &issued)
    }

    /// `work` in a session with the server, by the account's key.
    fn session_with<T>(
        &self,
        work: impl FnOnce(&mut order::Session<'_>) -> Result<T, String>,
    ) -> Result<T, String> {
        let settings = &self.settings;
        let directory = http::Url::parse(&settings.directory)?;
        let keys = crate::tls::backends::BackendTlsKeys {
            ca: settings.directory_ca.clone(),
            ..Default::default()
        };
        let client = http::Client {
            tls: crate::tls::backends::client_config(&keys).map_err(|e| e.to_string())?,
            timeout: EXCHANGE_TIMEOUT,
        };
        let account = state::account_key(settings)?;
        let mut session = order::Session::open(&client, &account, &directory)?;
        work(&mut session)
    }
}

/// A time within `window`, drawn at random.
fn within(window: &order::Window) -> SystemTime {
    use ring::rand::SecureRandom as _;
    let span = window.end.duration_since(window.start).unwrap_or_default();
    let mut bytes = [0u8; 8];
    let drawn = match ring::rand::SystemRandom::new().fill(&mut bytes) {
        Ok(()) => u64::from_le_bytes(bytes) % span.as_secs().max(1),
        Err(_) => 0,
    };
    window.start + Duration::from_secs(drawn).min(span)
}

/// How long after the `failures`-th failure in a row the next order is
/// made.
fn retry_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(1 << doublings).min(MAX_RETRY)
}

impl order::Answers for Acme {
    fn kind(&self) -> &'static str {
        self.settings.challenge.name()
    }

    fn publish(&self, name: &str, token: &str, key_authorization: String) -> Result<(), String> {
        match self.settings.challenge {
            Challenge::Http01 => {
                let mut challenges = self.challenges.write();
                challenges.insert(token.to_string(), key_authorization);
            }
            Challenge::TlsAlpn01 => {
                let key = alpn_certificate(name, &key_authorization)?;
                self.proving.write().insert(name.to_string(), key);
            }
            Challenge::Dns01 => {
                let dns = self
                    .settings
                    .dns_update()
                    .ok_or("dns-01 without acme_dns_server")?;
                let value = jws::AccountKey::dns_record(&key_authorization);
                let record = (format!("_acme-challenge.{name}"), value);
                dns.add_txt(&record.0, &record.1)?;
                self.records.lock().insert(token.to_string(), record);
            }
        }
        Ok(())
    }

    /// For the zone's secondaries, which the ACME server may ask: one wait
    /// for all the records of an order.
    fn settle(&self) {
        if self.settings.challenge == Challenge::Dns01 {
            std::thread::sleep(self.settings.dns_wait);
        }
    }

    fn withdraw(&self, name: &str, token: &str) {
        self.challenges.write().remove(token);
        self.proving.write().remove(name);
        let record = self.records.lock().remove(token);
        if let (Some((at, value)), Some(dns)) = (record, self.settings.dns_update()) {
            if let Err(why) = dns.delete_txt(&at, &value) {
                log::warn!("acme: {why}: the record stays");
            }
        }
    }
}

/// The certificate a `tls-alpn-01` validation of `name` is given (RFC
/// 8737 §3): self-signed, for `name` alone, with the critical
/// acmeIdentifier extension holding the SHA-256 of the key
/// authorization.
fn alpn_certificate(name: &str, key_authorization: &str) -> Result<Arc<CertifiedKey>, String> {
    let failed = |e: rcgen::Error| format!("a tls-alpn-01 certificate: {e}");
    let digest = ring::digest::digest(&ring::digest::SHA256, key_authorization.as_bytes());
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).map_err(failed)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest.as_ref())];
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(failed)?;
    let cert = params.self_signed(&key).map_err(failed)?;
    let der = rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| format!("a tls-alpn-01 certificate: {e}"))?;
    Ok(Arc::new(CertifiedKey::new(
        vec![cert.der().clone()],
        signing,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// An ACME URL, from a configuration or a server's answer: parsed
        /// to a host and a path beginning with `/`, or refused.
        #[test]
        fn any_url_is_parsed_or_refused(v in "(https?://)?[a-z0-9.:\\[\\]/ %?#-]{0,60}") {
            if let Ok(url) = http::Url::parse(&v) {
                proptest::prop_assert!(url.path.starts_with('/'));
                proptest::prop_assert!(!url.host.is_empty());
                proptest::prop_assert!(url.port != 0);
                proptest::prop_assert_eq!(url.text, v);
            }
        }
    }

    #[test]
    fn a_token_is_answered_while_published_and_only_under_the_challenge_path() {
        use order::Answers as _;
        let acme = Acme {
            settings: AcmeSettings::example(LETS_ENCRYPT),
            challenges: RwLock::default(),
            proving: RwLock::default(),
            records: Mutex::default(),
            certificates: Vec::new(),
        };
        acme.publish("shop.test", "tok-1", "tok-1.thumb".into())
            .unwrap();
        assert_eq!(
            acme.answer("/.well-known/acme-challenge/tok-1").as_deref(),
            Some("tok-1.thumb")
        );
        assert_eq!(acme.answer("/tok-1"), None);
        assert_eq!(acme.answer("/.well-known/acme-challenge/tok-2"), None);
        assert_eq!(acme.answer("/.well-known/acme-challenge/tok-1/x"), None);
        acme.withdraw("shop.test", "tok-1");
        assert_eq!(acme.answer("/.well-known/acme-challenge/tok-1"), None);
    }
}
