//! What the ACME client keeps between runs, in the folder of its server
//! (see [`AcmeSettings::folder`]): the account's key and the
//! certificate with its key, each written whole or not at all.

use super::jws::AccountKey;
use super::order::Issued;
use super::AcmeSettings;
use crate::cache::persist::write_atomically;
use base64::Engine as _;
use rustls::sign::CertifiedKey;
use rustls_pki_types::ServerName;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ACCOUNT_KEY: &str = "account.key";

/// A certificate kept, read back as `tls_certificates` reads one.
pub struct Stored {
    pub path: PathBuf,
    pub key: Arc<CertifiedKey>,
    pub not_after: SystemTime,
    /// When the next is ordered: once two thirds of its lifetime have
    /// passed (Let's Encrypt's advice: 30 days before the end of 90, 2
    /// days of 6), or at once when it lacks one of its names.
    pub due: SystemTime,
    /// One of its names of `acme_domains` it is not valid for.
    pub lacks: Option<String>,
}

impl Stored {
    /// The certificate kept from `settings`' server for `names`, when it
    /// is there and not expired (one that lacks a name is served, for the
    /// names it has, until the next comes); an error for one that cannot
    /// be read (it is ordered anew).
    pub fn read(settings: &AcmeSettings, names: &[String]) -> Result<Option<Stored>, String> {
        let path = certificate_path(settings, names);
        if !path.exists() {
            return Ok(None);
        }
        let mut stored = Stored::load(&path)?;
        if stored.not_after <= SystemTime::now() {
            log::info!("acme: {} has expired: a new one is ordered", path.display());
            return Ok(None);
        }
        stored.lacks = lacking(&stored.key, names).cloned();
        if stored.lacks.is_some() {
            stored.due = SystemTime::UNIX_EPOCH;
        }
        Ok(Some(stored))
    }

    fn load(path: &Path) -> Result<Stored, String> {
        let key = crate::tls::load_certified(path).map_err(|e| e.to_string())?;
        let validity = (key.end_entity_cert().ok()).and_then(|der| crate::tls::x509::validity(der));
        let (not_before, not_after) = validity.ok_or_else(|| {
            format!(
                "{}: the certificate has no readable validity",
                path.display()
            )
        })?;
        let lifetime = not_after
            .duration_since(not_before)
            .unwrap_or(Duration::ZERO);
        Ok(Stored {
            path: path.to_path_buf(),
            key: Arc::new(key),
            not_after,
            due: not_after - lifetime / 3,
            lacks: None,
        })
    }

    /// Keeps `issued` for `names` and reads it back, checking that the
    /// chain is one, for that key, valid for every name asked: what a CA
    /// sends is not served before it is.
    pub fn write(
        settings: &AcmeSettings,
        names: &[String],
        issued: &Issued,
    ) -> Result<Stored, String> {
        create_private_dir(&settings.folder())?;
        let path = certificate_path(settings, names);
        // Checked before anything is written over the one in force.
        let candidate = path.with_extension("pem.new");
        write_file(
            &candidate,
            format!("{}\n{}", issued.chain_pem.trim_end(), issued.key_pem),
        )?;
        let checked =
            Stored::load(&candidate).and_then(|stored| match lacking(&stored.key, names) {
                Some(name) => Err(format!("the certificate issued is not valid for {name}")),
                None => Ok(stored),
            });
        let stored = match checked {
            Ok(stored) => stored,
            Err(why) => {
                let _ = std::fs::remove_file(&candidate);
                return Err(why);
            }
        };
        std::fs::rename(&candidate, &path).map_err(|e| format!("{}: {e}", path.display()))?;
        Ok(Stored { path, ..stored })
    }
}

/// Where the certificate for `names` is kept: `<its first name>.pem` in
/// the server's folder, a wildcard's `*` written `_wildcard` (no host
/// name has a `_`).
pub fn certificate_path(settings: &AcmeSettings, names: &[String]) -> PathBuf {
    let first = names.first().map_or("certificate", String::as_str);
    let first = first.replace('*', "_wildcard");
    settings.folder().join(format!("{first}.pem"))
}

/// The account's key, read, or made and kept when there is none.
pub fn account_key(settings: &AcmeSettings) -> Result<AccountKey, String> {
    let folder = settings.folder();
    let path = folder.join(ACCOUNT_KEY);
    let pkcs8 = match std::fs::read(&path) {
        Ok(pem) => from_pem(&pem).ok_or_else(|| {
            format!(
                "{}: not a PEM private key (`-----BEGIN PRIVATE KEY-----`)",
                path.display()
            )
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            create_private_dir(&folder)?;
            let pkcs8 = AccountKey::generate()?;
            write_file(&path, to_pem("PRIVATE KEY", &pkcs8))?;
            log::info!("acme: a new account key is kept in {}", path.display());
            pkcs8
        }
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    AccountKey::from_pkcs8(&pkcs8).map_err(|e| format!("{}: {e}", path.display()))
}

/// The first of `names` that `key` is not valid for; a wildcard's is
/// any name one label under it.
fn lacking<'a>(key: &CertifiedKey, names: &'a [String]) -> Option<&'a String> {
    let valid = |domain: &&String| {
        let name = match domain.strip_prefix("*.") {
            Some(parent) => format!("wildcard-check.{parent}"),
            None => domain.to_string(),
        };
        ServerName::try_from(name).is_ok_and(|name| crate::tls::valid_for(key, &name))
    };
    names.iter().find(|domain| !valid(domain))
}

fn create_private_dir(folder: &Path) -> Result<(), String> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(folder)
        .map_err(|e| format!("{}: cannot create it: {e}", folder.display()))
}

fn write_file(path: &Path, text: String) -> Result<(), String> {
    write_atomically(path, |out| out.write_all(text.as_bytes())).map_err(|e| e.to_string())
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

pub fn from_pem(pem: &[u8]) -> Option<Vec<u8>> {
    use rustls_pki_types::pem::PemObject as _;
    match rustls_pki_types::PrivateKeyDer::from_pem_slice(pem).ok()? {
        rustls_pki_types::PrivateKeyDer::Pkcs8(der) => Some(der.secret_pkcs8_der().to_vec()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    fn settings(dir: &Path) -> AcmeSettings {
        AcmeSettings {
            certificates: vec![names()],
            state_dir: dir.to_path_buf(),
            ..AcmeSettings::example("http://127.0.0.1:14000/dir")
        }
    }

    fn names() -> Vec<String> {
        vec!["shop.test".into(), "www.shop.test".into()]
    }

    const DAY: i64 = 86_400;

    /// A chain (one self-signed certificate) for `names`, valid from
    /// `from` to `to` days from now, as a CA would send it, and its key.
    fn issued(names: &[&str], from: i64, to: i64) -> Issued {
        let key = rcgen::KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(names).unwrap();
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let at = |days: i64| {
            let secs = (now + days * DAY) as u64;
            rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs)
        };
        params.not_before = at(from);
        params.not_after = at(to);
        let cert = params.self_signed(&key).unwrap();
        Issued {
            chain_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    #[test]
    fn a_certificate_kept_is_read_back_and_due_after_two_thirds_of_its_life() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        assert!(
            Stored::read(&settings, &names()).unwrap().is_none(),
            "nothing kept yet"
        );
        let stored = Stored::write(
            &settings,
            &names(),
            &issued(&["shop.test", "www.shop.test"], -1, 89),
        )
        .unwrap();
        assert_eq!(stored.path, settings.folder().join("shop.test.pem"));
        let read = Stored::read(&settings, &names()).unwrap().expect("kept");
        assert_eq!(read.key.cert, stored.key.cert);
        let left = read.due.duration_since(SystemTime::now()).unwrap();
        // 90 days from a day ago: due 30 days before its end, in 59.
        assert!(left > Duration::from_secs(58 * DAY as u64), "{left:?}");
        assert!(left < Duration::from_secs(60 * DAY as u64), "{left:?}");
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&read.path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "the key is the user's alone: {mode:o}");
    }

    #[test]
    fn a_certificate_lacking_a_name_is_due_and_one_expired_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let refused = Stored::write(&settings, &names(), &issued(&["shop.test"], -1, 89));
        assert!(refused
            .err()
            .unwrap()
            .contains("not valid for www.shop.test"));
        assert!(!settings.folder().join("shop.test.pem").exists());
        Stored::write(
            &settings,
            &names(),
            &issued(&["shop.test", "www.shop.test"], -1, 89),
        )
        .unwrap();
        let mut more = names();
        more.push("api.shop.test".into());
        let lacking = Stored::read(&settings, &more)
            .unwrap()
            .expect("served for the names it has");
        assert_eq!(lacking.lacks.as_deref(), Some("api.shop.test"));
        assert!(lacking.due <= SystemTime::now(), "ordered at once");
        Stored::write(
            &settings,
            &names(),
            &issued(&["shop.test", "www.shop.test"], -90, -1),
        )
        .unwrap();
        assert!(
            Stored::read(&settings, &names()).unwrap().is_none(),
            "expired"
        );
    }

    #[test]
    fn a_bad_chain_keeps_the_certificate_in_force() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let good = Stored::write(
            &settings,
            &names(),
            &issued(&["shop.test", "www.shop.test"], -1, 89),
        )
        .unwrap();
        let mut other_key = issued(&["shop.test", "www.shop.test"], -1, 89);
        other_key.key_pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
        assert!(Stored::write(&settings, &names(), &other_key).is_err());
        let garbage = Issued {
            chain_pem: "<html>oops</html>".into(),
            key_pem: other_key.key_pem.clone(),
        };
        assert!(Stored::write(&settings, &names(), &garbage).is_err());
        let read = Stored::read(&settings, &names()).unwrap().unwrap();
        assert_eq!(read.key.cert, good.key.cert);
    }

    #[test]
    fn each_certificate_is_kept_in_a_file_named_by_its_first_name() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let blog = vec!["blog.test".to_string()];
        Stored::write(
            &settings,
            &names(),
            &issued(&["shop.test", "www.shop.test"], -1, 89),
        )
        .unwrap();
        let written = Stored::write(&settings, &blog, &issued(&["blog.test"], -1, 60)).unwrap();
        assert_eq!(written.path, settings.folder().join("blog.test.pem"));
        let shop = Stored::read(&settings, &names()).unwrap().unwrap();
        let read = Stored::read(&settings, &blog).unwrap().unwrap();
        assert_ne!(shop.key.cert, read.key.cert);
        assert_eq!(read.key.cert, written.key.cert);
        assert_eq!(read.lacks, None);
    }

    #[test]
    fn a_wildcard_is_covered_by_a_wildcard_certificate_alone() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let names = vec!["*.shop.test".to_string(), "shop.test".to_string()];
        let written = Stored::write(
            &settings,
            &names,
            &issued(&["*.shop.test", "shop.test"], -1, 89),
        );
        let written = written.unwrap();
        assert_eq!(written.lacks, None);
        let file = settings.folder().join("_wildcard.shop.test.pem");
        assert_eq!(written.path, file);
        let read = Stored::read(&settings, &names).unwrap().unwrap();
        assert_eq!(read.lacks, None, "not due at once");
        let no_wildcard = Stored::write(
            &settings,
            &names,
            &issued(&["www.shop.test", "shop.test"], -1, 89),
        );
        assert!(no_wildcard
            .err()
            .unwrap()
            .contains("not valid for *.shop.test"));
    }

    #[test]
    fn the_account_key_is_made_once_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let settings = settings(dir.path());
        let first = account_key(&settings).unwrap();
        let again = account_key(&settings).unwrap();
        assert_eq!(first.thumbprint(), again.thumbprint());
        let path = settings.folder().join("account.key");
        std::fs::write(&path, "not a key").unwrap();
        let refused = account_key(&settings).err().unwrap();
        assert!(refused.contains("not a PEM private key"), "{refused}");
    }
}
