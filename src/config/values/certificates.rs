//! TLS certificates: `tls_certificates` and `backend_tls_certificate`.

use std::path::PathBuf;
use std::sync::Arc;

/// `tls_certificates`: the files as written, a directory's listed in its
/// place, and the TLS settings made of what they hold (none when empty).
pub(in crate::config) fn parse_certificates(
    v: &str,
) -> Result<
    (
        Vec<crate::tls::CertificateFiles>,
        Option<Arc<crate::tls::Certificates>>,
    ),
    String,
> {
    let mut files = Vec::new();
    for entry in certificate_entries(v)? {
        match entry {
            Written::File(file) => files.push(file),
            Written::Directory(dir) => {
                files.extend(crate::tls::directory::listed(&dir).map_err(|e| e.to_string())?)
            }
        }
    }
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
    let mut files = Vec::new();
    for entry in certificate_entries(v)? {
        match entry {
            Written::File(file) => files.push(file),
            Written::Directory(dir) => {
                return Err(format!(
                    "`{}` is a directory: one certificate is shown to backends, name its file",
                    dir.display()
                ))
            }
        }
    }
    if files.len() > 1 {
        return Err("one certificate is shown to backends, not a list".to_string());
    }
    if files.iter().any(|f| f.ocsp.is_some()) {
        return Err("`ocsp=`: a backend is not stapled an OCSP response".to_string());
    }
    Ok(files.pop())
}

/// One entry of the list as written: a file with its options, or a
/// directory of them.
enum Written {
    File(crate::tls::CertificateFiles),
    Directory(PathBuf),
}

/// `<chain.pem>[ key=<key.pem>][ ocsp=<response.der>], ...` or
/// `<directory>`, as written.
fn certificate_entries(v: &str) -> Result<Vec<Written>, String> {
    let mut entries = Vec::new();
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        let mut words = entry.split_whitespace();
        let chain = PathBuf::from(words.next().unwrap_or_default());
        let options: Vec<&str> = words.collect();
        if std::fs::metadata(&chain).is_ok_and(|meta| meta.is_dir()) {
            if let Some(option) = options.first() {
                return Err(format!(
                    "`{entry}`: `{option}`: {} is a directory, whose files each hold their own \
                     key or have it beside them, as <file>.key (and their OCSP response, as \
                     <file>.ocsp): name a file to give it options",
                    chain.display()
                ));
            }
            entries.push(Written::Directory(chain));
            continue;
        }
        let (key, ocsp) = file_options(entry, &options)?;
        entries.push(Written::File(crate::tls::CertificateFiles {
            chain,
            key,
            ocsp,
            directory: None,
        }));
    }
    Ok(entries)
}

/// The ` key=` and ` ocsp=` files of a file's `entry`.
fn file_options(
    entry: &str,
    options: &[&str],
) -> Result<(Option<PathBuf>, Option<PathBuf>), String> {
    let (mut key, mut ocsp) = (None, None);
    for word in options {
        let (name, path) = word.split_once('=').unwrap_or((word, ""));
        let slot = match name {
            "key" => &mut key,
            "ocsp" => &mut ocsp,
            _ => {
                return Err(format!(
                    "`{entry}`: unknown option `{word}`: an entry is a PEM file, then \
                     `key=<file>` when the private key is in another (none is needed for \
                     <file>.key beside it), and `ocsp=<file>` for its OCSP response, or a directory \
                     of PEM files"
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
    Ok((key, ocsp))
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{build_after_targets, certificate, refused_after_targets};
    use std::path::Path;

    /// `tls_certificates = <entries>` on a TLS port, after a `targets` line
    /// (so on line 3).
    fn tls(entries: &str) -> String {
        format!("tls_port = 8443\ntls_certificates = {entries}\n")
    }

    fn served_chains(entries: &str) -> Vec<String> {
        let c = build_after_targets(&tls(entries)).unwrap();
        let served = c.tls_served.expect("certificates are served");
        (served.files())
            .map(|f| f.chain.file_name().unwrap().to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn a_directory_stands_for_its_pem_and_crt_files_in_the_order_of_their_names() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        certificate(&certs, "b.test.pem", &["b.test"]);
        certificate(&certs, "a.test.crt", &["a.test"]);
        // Left alone: hidden, another suffix, what HAProxy keeps beside a
        // certificate, and a directory however named.
        certificate(&certs, ".c.test.pem", &["c.test"]);
        std::fs::write(certs.join("notes.txt"), "not a certificate").unwrap();
        std::fs::write(certs.join("b.test.pem.ocsp"), "not a response").unwrap();
        std::fs::write(certs.join("b.test.key"), "not a key").unwrap();
        std::fs::create_dir(certs.join("old.pem")).unwrap();
        // A link to a file elsewhere is read as that file (certbot's live/).
        let elsewhere = certificate(dir.path(), "elsewhere.pem", &["d.test"]);
        std::os::unix::fs::symlink(&elsewhere, certs.join("d.test.pem")).unwrap();
        let written = certs.display().to_string();
        let listed = ["a.test.crt", "b.test.pem", "d.test.pem"];
        assert_eq!(served_chains(&written), listed);
        assert_eq!(served_chains(&format!("{written}/")), listed);
        // Among files written alone, in its place.
        let alone = certificate(dir.path(), "first.pem", &["first.test"]);
        let entries = format!("{}, {written}", alone.display());
        assert_eq!(
            served_chains(&entries),
            ["first.pem", "a.test.crt", "b.test.pem", "d.test.pem"]
        );
        // Each says where it was listed from.
        let c = build_after_targets(&tls(&written)).unwrap();
        let served = c.tls_served.unwrap();
        assert!(served
            .files()
            .all(|f| f.directory.as_deref() == Some(Path::new(&written))));
    }

    #[test]
    fn a_directory_with_no_certificate_file_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("site.key"), "a key").unwrap();
        certificate(dir.path(), ".hidden.pem", &["a.test"]);
        let e = refused_after_targets(&tls(&dir.path().display().to_string()));
        let says = format!(
            "proxy.conf:3: tls_certificates: {}: no certificate file in the directory",
            dir.path().display()
        );
        assert!(e.starts_with(&says), "{e}");
    }

    #[test]
    fn options_after_a_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path(), "a.pem", &["a.test"]);
        for option in ["key=a.key", "ocsp=a.der"] {
            let entries = format!("{} {option}", dir.path().display());
            let e = refused_after_targets(&tls(&entries));
            assert!(e.contains(&format!("`{option}`")), "{e}");
            assert!(e.contains("is a directory"), "{e}");
        }
    }

    #[test]
    fn a_file_of_a_directory_that_does_not_load_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path(), "a.pem", &["a.test"]);
        let written = dir.path().display().to_string();
        // certbot's privkey.pem: a key, no certificate.
        let bad = dir.path().join("privkey.pem");
        std::fs::write(
            &bad,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .unwrap();
        let e = refused_after_targets(&tls(&written));
        let says = format!("proxy.conf:3: tls_certificates: {}: ", bad.display());
        assert!(e.starts_with(&says), "{e}");
        // A chain without its key: there is no `key=` to give it.
        std::fs::remove_file(&bad).unwrap();
        let a = std::fs::read_to_string(dir.path().join("a.pem")).unwrap();
        let chain = &a[..a.find("-----BEGIN PRIVATE KEY").unwrap()];
        let keyless = dir.path().join("b.pem");
        std::fs::write(&keyless, chain).unwrap();
        let e = refused_after_targets(&tls(&written));
        let says = format!(
            "proxy.conf:3: tls_certificates: {}: no PEM private key in it, nor a `b.pem.key` \
             beside it: a file of a directory holds its key after its chain",
            keyless.display()
        );
        assert!(e.starts_with(&says), "{e}");
    }

    /// A certificate for `names` with its key in a file of its own:
    /// `chain` holds the chain alone, `key` the key (as nginx's
    /// `ssl_certificate` and `ssl_certificate_key`); returns their paths.
    fn apart(
        dir: &Path,
        chain: &str,
        key: &str,
        names: &[&str],
    ) -> (std::path::PathBuf, std::path::PathBuf) {
        let chain = certificate(dir, chain, names);
        let both = std::fs::read_to_string(&chain).unwrap();
        let at = both.find("-----BEGIN PRIVATE KEY").unwrap();
        std::fs::write(&chain, &both[..at]).unwrap();
        let key = dir.join(key);
        std::fs::write(&key, &both[at..]).unwrap();
        (chain, key)
    }

    /// The key `certificate` wrote in `file`, alone.
    fn key_of(file: &Path) -> String {
        let both = std::fs::read_to_string(file).unwrap();
        both[both.find("-----BEGIN PRIVATE KEY").unwrap()..].to_string()
    }

    #[test]
    fn a_directory_s_certificate_without_its_key_has_it_beside_it_as_haproxy_and_nginx_keep_it() {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs");
        std::fs::create_dir(&certs).unwrap();
        // nginx's pair, and HAProxy's `site.pem.key` and `site.crt.key`.
        apart(&certs, "a.crt", "a.key", &["a.test"]);
        apart(&certs, "b.pem", "b.pem.key", &["b.test"]);
        apart(&certs, "c.crt", "c.crt.key", &["c.test"]);
        // A file with its own key keeps it: what is beside it is not read.
        let d = certificate(&certs, "d.pem", &["d.test"]);
        std::fs::write(certs.join("d.pem.key"), "not a key").unwrap();
        std::fs::write(certs.join("d.key"), "not a key").unwrap();
        let written = certs.display().to_string();
        assert_eq!(
            served_chains(&written),
            ["a.crt", "b.pem", "c.crt", "d.pem"],
            "a .key is no certificate of its own"
        );
        // HAProxy's name comes first: `c.crt.key` is read, not `c.key`.
        std::fs::write(certs.join("c.key"), key_of(&d)).unwrap();
        assert_eq!(served_chains(&written).len(), 4);
        // `.pem` is not stripped, as HAProxy strips `.crt` alone: a
        // `b.key` is not `b.pem`'s.
        std::fs::rename(certs.join("b.pem.key"), certs.join("b.key")).unwrap();
        let e = refused_after_targets(&tls(&written));
        let says = format!(
            "proxy.conf:3: tls_certificates: {}: no PEM private key in it, nor a `b.pem.key` \
             beside it: a file of a directory holds its key after its chain",
            certs.join("b.pem").display()
        );
        assert!(e.starts_with(&says), "{e}");
    }

    #[test]
    fn a_file_written_alone_has_its_key_beside_it_unless_key_names_another() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = apart(dir.path(), "site.crt", "site.key", &["site.test"]);
        let entry = chain.display().to_string();
        assert_eq!(served_chains(&entry), ["site.crt"]);
        // ` key=` is read whatever is beside the chain.
        let elsewhere = dir.path().join("elsewhere.key");
        std::fs::rename(&key, &elsewhere).unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let named = format!("{entry} key={}", elsewhere.display());
        assert_eq!(served_chains(&named), ["site.crt"]);
        // Without a key anywhere, the message names where it was looked for.
        std::fs::remove_file(&key).unwrap();
        let e = refused_after_targets(&tls(&entry));
        let says = format!(
            "proxy.conf:3: tls_certificates: {entry}: no PEM private key in it \
             (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`), nor a \
             `site.crt.key` or `site.key` beside it; name the key's file with `key=`"
        );
        assert!(e.starts_with(&says), "{e}");
    }

    #[test]
    fn a_key_beside_that_is_another_certificate_s_is_refused_naming_both_files() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = apart(dir.path(), "a.crt", "a.key", &["a.test"]);
        let other = certificate(dir.path(), "other.pem", &["a.test"]);
        let secret = key_of(&other);
        std::fs::write(&key, &secret).unwrap();
        let e = refused_after_targets(&tls(&dir.path().display().to_string()));
        let says = format!(
            "proxy.conf:3: tls_certificates: {}: the private key does not belong to the \
             certificate {}",
            key.display(),
            chain.display()
        );
        assert!(e.starts_with(&says), "{e}");
        for line in secret.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!e.contains(line), "the key is shown: {e}");
        }
    }

    #[test]
    fn a_key_beside_that_cannot_be_read_or_holds_no_key_is_refused_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let (chain, key) = apart(dir.path(), "a.pem", "a.pem.key", &["a.test"]);
        let entry = chain.display().to_string();
        let naming_it = format!("proxy.conf:3: tls_certificates: {}: ", key.display());
        // In the way of the read as a file without permission to read it
        // would be (the tests may run as root, who reads any).
        std::fs::remove_file(&key).unwrap();
        std::fs::create_dir(&key).unwrap();
        let e = refused_after_targets(&tls(&entry));
        assert!(e.starts_with(&naming_it), "{e}");
        assert!(e.contains("not a regular file"), "{e}");
        std::fs::remove_dir(&key).unwrap();
        // A certificate where the key should be.
        std::fs::copy(&chain, &key).unwrap();
        let e = refused_after_targets(&tls(&entry));
        let says = format!(
            "{naming_it}no PEM private key in it (`-----BEGIN PRIVATE KEY-----`, `RSA PRIVATE \
             KEY` or `EC PRIVATE KEY`), for the certificate {entry}"
        );
        assert!(e.starts_with(&says), "{e}");
        // A key cut short: said, and not shown.
        let secret = key_of(&certificate(dir.path(), "other.pem", &["a.test"]));
        let cut = &secret[..secret.len() - 30];
        std::fs::write(&key, cut).unwrap();
        let e = refused_after_targets(&tls(&entry));
        assert!(e.starts_with(&naming_it), "{e}");
        for line in cut.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!e.contains(line), "the key is shown: {e}");
        }
    }

    #[test]
    fn a_directory_is_no_certificate_for_backends() {
        let dir = tempfile::tempdir().unwrap();
        certificate(dir.path(), "a.pem", &["a.test"]);
        let line = format!("backend_tls_certificate = {}\n", dir.path().display());
        let e = refused_after_targets(&line);
        assert!(
            e.contains("is a directory: one certificate is shown to backends"),
            "{e}"
        );
    }
}
