//! OCSP stapling on `tls_port`: a response of the certificate's
//! authority (made in DER by `support::ocsp`) read from `ocsp=` or from
//! the `.ocsp` file beside the certificate, checked against it, and sent
//! to clients in the handshake, TLS 1.2 and 1.3, until its nextUpdate;
//! one not good now warned of and not sent; one about another
//! certificate named by `ocsp=`, a configuration error.

mod support;

use inverso::config::Loader;
use inverso::tls::ocsp::{self, OcspError};
use rustls::ClientConfig;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use support::ocsp::{response, Status};
use support::pki::{provider, Ca, Leaf, Pki};
use support::tls_client::{TlsClient, Verifier};
use support::*;

const HOUR: Duration = Duration::from_secs(3600);

/// Made an hour ago, due again in a day.
fn good(ca: &Ca, leaf: &Leaf) -> Vec<u8> {
    let now = SystemTime::now();
    response(ca, leaf, Status::Good, now - HOUR, Some(now + 24 * HOUR))
}

#[test]
fn a_response_is_good_only_about_its_certificate_of_its_issuer_and_in_its_time() {
    let ca = Ca::new();
    let leaf = ca.leaf(&["localhost"]);
    let now = SystemTime::now();
    let check = |bytes: &[u8], issuer: Option<&Ca>| {
        ocsp::check(bytes, &leaf.der, issuer.map(|ca| &*ca.der), now)
    };
    let said = check(&good(&ca, &leaf), Some(&ca)).unwrap();
    assert_eq!(said.next_update, Some(to_second(now + 24 * HOUR)));
    assert_eq!(said.this_update, to_second(now - HOUR));

    // About another certificate of the same authority.
    let other = ca.leaf(&["localhost"]);
    let about_other = good(&ca, &other);
    assert_eq!(
        check(&about_other, Some(&ca)),
        Err(OcspError::OtherCertificate)
    );
    // Of another authority of the same name: its key tells it apart,
    // when the chain has the issuer to compare with.
    let namesake = Ca::new();
    let of_namesake = good(&namesake, &leaf);
    assert_eq!(
        check(&of_namesake, Some(&ca)),
        Err(OcspError::OtherCertificate)
    );
    assert!(check(&of_namesake, None).is_ok());

    let at = |status, this: SystemTime, next: Option<SystemTime>| {
        check(&response(&ca, &leaf, status, this, next), Some(&ca))
    };
    assert_eq!(
        at(Status::Revoked, now - HOUR, None),
        Err(OcspError::Revoked)
    );
    assert_eq!(
        at(Status::Unknown, now - HOUR, None),
        Err(OcspError::Unknown)
    );
    let expired = at(Status::Good, now - 48 * HOUR, Some(now - HOUR));
    assert_eq!(expired, Err(OcspError::Expired(to_second(now - HOUR))));
    let ahead = at(Status::Good, now + HOUR, Some(now + 2 * HOUR));
    assert_eq!(ahead, Err(OcspError::NotYetValid(to_second(now + HOUR))));
    // A minute ahead is the responder's clock, not a mistake.
    assert!(at(Status::Good, now + Duration::from_secs(60), None).is_ok());
    // Without nextUpdate: good until replaced.
    assert_eq!(
        at(Status::Good, now - HOUR, None).unwrap().next_update,
        None
    );
    // Any byte cut off makes it unreadable, never a panic.
    let whole = good(&ca, &leaf);
    for cut in 0..whole.len() {
        assert!(check(&whole[..cut], Some(&ca)).is_err(), "cut at {cut}");
    }
}

/// `t` to the whole second, as DER times are written.
fn to_second(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

// ---------------------------------------------------------------- served

/// What the proxy stapled for a client speaking `version` (empty: nothing).
fn stapled(proxy: &Proxy, ca: &Ca, version: &'static rustls::SupportedProtocolVersion) -> Vec<u8> {
    let verifier = Verifier::of(ca, None);
    let mut config = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[version])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(verifier.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let addr = proxy.handle().tls_addr().unwrap();
    let mut client = TlsClient::connect(addr, &Arc::new(config), "localhost");
    assert_eq!(client.get("/").status, 200);
    let seen = verifier.stapled.lock().unwrap().take();
    seen.expect("the certificate was checked")
}

fn conf(backend: &Backend, entry: &str) -> String {
    format!(
        "targets = {}\ntls_port = 0\ntls_certificates = {entry}\n",
        backend.addr
    )
}

fn start(text: &str) -> Proxy {
    start_proxy(&[], from_file_with_admin(text))
}

fn write(path: &Path, bytes: &[u8]) -> PathBuf {
    std::fs::write(path, bytes).unwrap();
    path.to_path_buf()
}

#[test]
fn the_response_beside_the_certificate_is_stapled_in_tls_1_2_and_1_3_and_said() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let chain = pki.localhost.write(&pki.ca, pki.dir.path(), "site.pem");
    let (made, next) = (SystemTime::now() - HOUR, SystemTime::now() + 24 * HOUR);
    let bytes = response(&pki.ca, &pki.localhost, Status::Good, made, Some(next));
    write(&pki.dir.path().join("site.pem.ocsp"), &bytes);
    let text = conf(&backend, &chain.display().to_string());
    let proxy = start(&text);
    assert_eq!(stapled(&proxy, &pki.ca, &rustls::version::TLS13), bytes);
    assert_eq!(stapled(&proxy, &pki.ca, &rustls::version::TLS12), bytes);

    let next_secs = to_second(next)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap();
    let metric = format!(
        "inverso_tls_ocsp_next_update_seconds{{file=\"{}\"}}",
        chain.display()
    );
    assert_eq!(proxy.metric(&metric), Some(next_secs.as_secs()));

    // `check` says so.
    std::fs::write(pki.dir.path().join("proxy.conf"), &text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_inverso"))
        .args(["check", "--config", "proxy.conf"])
        .current_dir(pki.dir.path())
        .env("RUST_LOG", "error")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains(&format!(
            "# tls_certificates {}: OCSP response {}.ocsp stapled, good until ",
            chain.display(),
            chain.display()
        )),
        "{stdout}"
    );
}

#[test]
fn a_response_not_good_now_or_unreadable_is_not_stapled_and_the_proxy_serves() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let chain = pki.localhost.write(&pki.ca, pki.dir.path(), "site.pem");
    let now = SystemTime::now();
    let expired = response(
        &pki.ca,
        &pki.localhost,
        Status::Good,
        now - 48 * HOUR,
        Some(now - HOUR),
    );
    let revoked = response(&pki.ca, &pki.localhost, Status::Revoked, now - HOUR, None);
    let beside = pki.dir.path().join("site.pem.ocsp");
    let named = pki.dir.path().join("named.der");
    for (bytes, entry) in [
        (
            &expired[..],
            format!("{} ocsp={}", chain.display(), named.display()),
        ),
        (
            &revoked[..],
            format!("{} ocsp={}", chain.display(), named.display()),
        ),
        // Found by its name alone, anything is only warned of.
        (b"garbage", chain.display().to_string()),
        (
            &good(&pki.ca, &pki.ca.leaf(&["localhost"]))[..],
            chain.display().to_string(),
        ),
    ] {
        write(&named, bytes);
        write(&beside, bytes);
        let proxy = start(&conf(&backend, &entry));
        assert_eq!(
            stapled(&proxy, &pki.ca, &rustls::version::TLS13),
            b"",
            "{entry}"
        );
    }
}

#[test]
fn ocsp_naming_what_is_no_response_about_the_certificate_is_a_configuration_error() {
    let pki = Pki::new();
    let dir = pki.dir.path();
    let chain = pki.localhost.write(&pki.ca, dir, "site.pem");
    let chain = chain.display();
    let other = write(
        &dir.join("other.der"),
        &good(&pki.ca, &pki.ca.leaf(&["localhost"])),
    );
    let garbage = write(&dir.join("garbage.der"), b"\x30\x03\x0a\x01");
    let missing = dir.join("missing.der");
    let load = |entry: String| {
        let mut loader = Loader::new();
        let text = format!("targets = 127.0.0.1:1\ntls_port = 8443\ntls_certificates = {entry}\n");
        loader.file("proxy.conf", &text).unwrap();
        loader.build().map(|_| ()).unwrap_err().to_string()
    };
    let said = load(format!("{chain} ocsp={}", other.display()));
    assert!(said.contains("proxy.conf:3"), "{said}");
    assert!(said.contains("about another certificate"), "{said}");
    let said = load(format!("{chain} ocsp={}", garbage.display()));
    assert!(said.contains("not an OCSP response"), "{said}");
    let said = load(format!("{chain} ocsp={}", missing.display()));
    assert!(said.contains("missing.der"), "{said}");
    let large = write(&dir.join("large.der"), &vec![0x30; 16 * 1024 + 1]);
    let said = load(format!("{chain} ocsp={}", large.display()));
    assert!(said.contains("large.der: larger than 16 KiB"), "{said}");
    let said = load(format!("{chain} ocsp={0} ocsp={0}", other.display()));
    assert!(said.contains("`ocsp=` given twice"), "{said}");
    let said = load(format!("{chain} ocsp="));
    assert!(said.contains("names no file"), "{said}");
}

#[test]
fn a_reload_staples_the_response_fetched_since() {
    let pki = Pki::new();
    let backend = Backend::echo("app");
    let chain = pki.localhost.write(&pki.ca, pki.dir.path(), "site.pem");
    let text = conf(&backend, &chain.display().to_string());
    let proxy = start(&text);
    assert_eq!(stapled(&proxy, &pki.ca, &rustls::version::TLS13), b"");
    let bytes = good(&pki.ca, &pki.localhost);
    write(&pki.dir.path().join("site.pem.ocsp"), &bytes);
    let next = proxy.config_for(&[], from_file_with_admin(&text));
    proxy.handle().control().reload(next).unwrap();
    assert_eq!(stapled(&proxy, &pki.ca, &rustls::version::TLS13), bytes);
}
