//! Certificates by ACME (RFC 8555, the `http-01` challenge): an ACME
//! server in the test process (`support::acme_server`), first tested
//! alone with a minimal client written here (ring signs its JWS), then
//! in front of inverso configured by `acme_domains`, `acme_directory`,
//! `acme_state_dir` and `acme_email`: issuance, SNI for each name, the
//! state dir's files, a restart that orders nothing, renewal of a
//! certificate due, a failed validation, a `badNonce` retried, and the
//! challenge path's unknown tokens left to the backends.

mod support;

use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, RootCertStore};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use support::acme_server::{b64, thumbprint, AcmeOptions, AcmeServer};
use support::dns_server::DnsServer;
use support::pki::provider;
use support::tls_client::TlsClient;
use support::*;

/// Longest a test waits for a certificate to be issued and served.
const ISSUE_LIMIT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------- a minimal client

/// An ACME client of the test's, just enough to drive the server: an
/// ES256 key, the account URL once made, the last nonce given.
struct Acme {
    addr: SocketAddr,
    base: String,
    key: EcdsaKeyPair,
    /// The key as PKCS#8 DER.
    pkcs8: Vec<u8>,
    kid: Option<String>,
    nonce: Option<String>,
}

impl Acme {
    fn new(server: &AcmeServer) -> Acme {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Acme {
            addr: server.addr,
            base: server.base().to_string(),
            key,
            pkcs8: pkcs8.as_ref().to_vec(),
            kid: None,
            nonce: None,
        }
    }

    fn point(&self) -> Vec<u8> {
        self.key.public_key().as_ref().to_vec()
    }

    fn thumbprint(&self) -> String {
        thumbprint(&self.point())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn path_of<'a>(&self, url: &'a str) -> &'a str {
        url.strip_prefix(&self.base)
            .unwrap_or_else(|| panic!("{url} is not the server's"))
    }

    /// One request on a connection of its own.
    fn http(&self, method: &str, path: &str, fields: &[(&str, &str)], body: &[u8]) -> Response {
        let mut client = Client::connect(self.addr);
        client.send(&request_bytes(method, path, fields, body));
        match method {
            "HEAD" => client.head_response(),
            _ => client.response(),
        }
    }

    fn fresh_nonce(&self) -> String {
        let r = self.http("HEAD", "/new-nonce", &[], b"");
        assert_eq!(r.status, 200, "{}", r.head.raw);
        r.header("replay-nonce").expect("Replay-Nonce").to_string()
    }

    /// The flattened JWS of `payload` for `url`, signed, with `jwk` or
    /// the account's `kid`.
    fn jws(&self, url: &str, nonce: &str, payload: &str, jwk: bool) -> String {
        let identity = match (jwk, &self.kid) {
            (false, Some(kid)) => format!("\"kid\":\"{kid}\""),
            _ => format!(
                "\"jwk\":{}",
                support::acme_server::canonical_jwk(&self.point())
            ),
        };
        let protected =
            format!("{{\"alg\":\"ES256\",\"nonce\":\"{nonce}\",\"url\":\"{url}\",{identity}}}");
        let protected = b64(protected.as_bytes());
        let payload = b64(payload.as_bytes());
        let signature = self
            .key
            .sign(
                &SystemRandom::new(),
                format!("{protected}.{payload}").as_bytes(),
            )
            .unwrap();
        format!(
            "{{\"protected\":\"{protected}\",\"payload\":\"{payload}\",\"signature\":\"{}\"}}",
            b64(signature.as_ref())
        )
    }

    /// POSTs `body` (a JWS) to `path` as application/jose+json; keeps
    /// the answer's nonce.
    fn post_body(&mut self, path: &str, body: &str) -> Response {
        let r = self.http(
            "POST",
            path,
            &[
                ("Content-Type", "application/jose+json"),
                (
                    "Accept",
                    "application/pem-certificate-chain, application/json",
                ),
            ],
            body.as_bytes(),
        );
        let nonce = r.header("replay-nonce");
        assert!(nonce.is_some(), "no Replay-Nonce: {}", r.head.raw);
        self.nonce = nonce.map(str::to_string);
        r
    }

    /// POSTs `payload` to `path`, signed for its URL, with the nonce kept
    /// (or a fresh one).
    fn post(&mut self, path: &str, payload: &str) -> Response {
        let nonce = self.nonce.take().unwrap_or_else(|| self.fresh_nonce());
        let jwk = path == "/new-account";
        let body = self.jws(&self.url(path), &nonce, payload, jwk);
        self.post_body(path, &body)
    }

    /// Makes the account (contact ops@shop.test); keeps its URL.
    fn account(&mut self) -> Response {
        let r = self.post(
            "/new-account",
            r#"{"termsOfServiceAgreed":true,"contact":["mailto:ops@shop.test"]}"#,
        );
        assert!(matches!(r.status, 200 | 201), "{}", describe_response(&r));
        self.kid = Some(r.header("location").expect("Location").to_string());
        r
    }

    /// Orders `names`; the order's path and its JSON.
    fn order(&mut self, names: &[&str]) -> (String, json::Value) {
        let identifiers: Vec<String> = names
            .iter()
            .map(|n| format!("{{\"type\":\"dns\",\"value\":\"{n}\"}}"))
            .collect();
        let payload = format!("{{\"identifiers\":[{}]}}", identifiers.join(","));
        let r = self.post("/new-order", &payload);
        assert_eq!(r.status, 201, "{}", describe_response(&r));
        let location = r.header("location").expect("Location").to_string();
        (self.path_of(&location).to_string(), json_of(&r))
    }

    /// POST-as-GET of `url`.
    fn get(&mut self, url: &str) -> Response {
        let path = self.path_of(url).to_string();
        self.post(&path, "")
    }

    /// POST-as-GETs `url` until its `status` is not `pending` nor
    /// `processing` (bounded); the last JSON.
    fn poll(&mut self, url: &str) -> json::Value {
        let mut last = None;
        let done = wait_until(WAIT_LIMIT, || {
            let r = self.get(url);
            assert_eq!(r.status, 200, "{}", describe_response(&r));
            let value = json_of(&r);
            let status = str_of(&value, "status");
            let done = !matches!(status.as_str(), "pending" | "processing");
            last = Some(value);
            if !done {
                std::thread::sleep(Duration::from_millis(20));
            }
            done
        });
        assert!(done, "{url} stayed {last:?}");
        last.unwrap()
    }
}

use inverso::json_value as json;
use json::Value;

/// [`wait_until`], asking every 50 ms: each question here is a
/// handshake with the proxy or a look at the ACME server's records.
fn wait_slowly(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    wait_until(limit, || {
        let ok = done();
        if !ok {
            std::thread::sleep(Duration::from_millis(50));
        }
        ok
    })
}

/// `items` in order, for lists whose order the server or a map chose.
fn sorted<T: Clone + Ord>(items: &[T]) -> Vec<T> {
    let mut items = items.to_vec();
    items.sort();
    items
}

/// Waits (bounded) until `server` has answered a request with a problem
/// that `found` matches.
fn refused_with(server: &AcmeServer, found: impl Fn(&str) -> bool) -> bool {
    wait_slowly(WAIT_LIMIT, || server.problems().iter().any(|p| found(p)))
}

fn json_of(r: &Response) -> json::Value {
    json::parse(&r.body).unwrap_or_else(|e| panic!("{e}: {}", describe_response(r)))
}

fn str_of(value: &json::Value, name: &str) -> String {
    (value.get(name).and_then(json::Value::as_str))
        .unwrap_or_else(|| panic!("no {name} in {value:?}"))
        .to_string()
}

fn describe_response(r: &Response) -> String {
    format!("{}{}", r.head.raw, r.body_str())
}

/// Asserts `r` is the problem `kind` with `status`.
#[track_caller]
fn assert_problem(r: &Response, status: u16, kind: &str) {
    let text = describe_response(r);
    assert_eq!(r.status, status, "{text}");
    assert_eq!(
        r.header("content-type"),
        Some("application/problem+json"),
        "{text}"
    );
    assert_eq!(
        str_of(&json_of(r), "type"),
        format!("urn:ietf:params:acme:error:{kind}"),
        "{text}"
    );
    assert!(r.header("replay-nonce").is_some(), "{text}");
}

/// A CSR for `names` with a P-256 key of its own.
fn csr(names: &[&str]) -> String {
    csr_with(names, None, &rcgen::KeyPair::generate().unwrap())
}

/// A CSR for `names` with `key`, its subject's CN `cn` (none: an empty
/// subject).
fn csr_with(names: &[&str], cn: Option<&str>, key: &rcgen::KeyPair) -> String {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = rcgen::CertificateParams::new(names).unwrap();
    // rcgen's default subject is CN=rcgen self signed cert, which no CA
    // takes: a CN must be one of the names.
    params.distinguished_name = rcgen::DistinguishedName::new();
    if let Some(cn) = cn {
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, cn);
    }
    b64(params.serialize_request(key).unwrap().der())
}

/// The `http-01` challenge of an authorization's JSON: url and token;
/// asserts a `dns-01` and a `tls-alpn-01` are offered beside it.
fn http01(authz: &json::Value) -> (String, String) {
    let challenges = authz
        .get("challenges")
        .and_then(json::Value::as_array)
        .unwrap();
    let kinds: Vec<String> = challenges.iter().map(|c| str_of(c, "type")).collect();
    assert_eq!(kinds, ["http-01", "dns-01", "tls-alpn-01"], "{authz:?}");
    let c = &challenges[0];
    (str_of(c, "url"), str_of(c, "token"))
}

fn authorizations(order: &json::Value) -> Vec<String> {
    (order.get("authorizations").and_then(json::Value::as_array))
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// A backend that answers every challenge path with the key
/// authorization of `thumbprint`, as the proxy must.
fn challenge_responder(thumbprint: String) -> Backend {
    Backend::start("challenges", move |seen, out| {
        let token = seen
            .path()
            .strip_prefix("/.well-known/acme-challenge/")
            .unwrap_or("?");
        respond(out, 200, &[], format!("{token}.{thumbprint}").as_bytes());
        Action::KeepAlive
    })
}

// ---------------------------------------------------------------- the server alone

#[test]
fn the_server_has_a_directory_and_a_fresh_nonce_on_every_answer() {
    let server = AcmeServer::start(AcmeOptions::default());
    let acme = Acme::new(&server);
    let r = acme.http("GET", "/directory", &[], b"");
    assert_eq!(r.status, 200);
    let directory = json_of(&r);
    for (name, path) in [
        ("newNonce", "/new-nonce"),
        ("newAccount", "/new-account"),
        ("newOrder", "/new-order"),
    ] {
        assert_eq!(str_of(&directory, name), acme.url(path));
    }
    assert_eq!(server.directory_url(), acme.url("/directory"));
    let first = acme.fresh_nonce();
    let second = acme.fresh_nonce();
    assert_ne!(first, second);
    let r = acme.http("GET", "/new-nonce", &[], b"");
    assert_eq!(r.status, 204);
    let third = r.header("replay-nonce").unwrap();
    assert!(third != first && third != second);
}

#[test]
fn an_account_is_made_once_per_key_and_found_again() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    let r = acme.account();
    assert_eq!(r.status, 201, "{}", describe_response(&r));
    let location = r.header("location").unwrap().to_string();
    let r = acme.post(
        "/new-account",
        r#"{"termsOfServiceAgreed":true,"contact":["mailto:ops@shop.test"]}"#,
    );
    assert_eq!(r.status, 200, "{}", describe_response(&r));
    assert_eq!(r.header("location"), Some(location.as_str()));
    let accounts = server.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].url, location);
    assert_eq!(accounts[0].contact, ["mailto:ops@shop.test"]);
    assert_eq!(accounts[0].thumbprint, acme.thumbprint());

    // Another key: another account; without a contact, without agreeing.
    let mut other = Acme::new(&server);
    let r = other.post("/new-account", r#"{"contact":["mailto:a@b.test"]}"#);
    assert_problem(&r, 400, "malformed");
    let r = other.post("/new-account", r#"{"termsOfServiceAgreed":true}"#);
    assert_eq!(r.status, 201, "{}", describe_response(&r));
    assert_ne!(r.header("location"), Some(location.as_str()));

    // Not jose+json.
    let nonce = acme.fresh_nonce();
    let body = acme.jws(&acme.url("/new-account"), &nonce, "{}", true);
    let r = acme.http(
        "POST",
        "/new-account",
        &[("Content-Type", "application/json")],
        body.as_bytes(),
    );
    assert_problem(&r, 415, "malformed");
}

#[test]
fn a_bad_signature_is_refused() {
    let server = AcmeServer::start(AcmeOptions::default());
    let acme = Acme::new(&server);
    let nonce = acme.fresh_nonce();
    let body = acme.jws(
        &acme.url("/new-account"),
        &nonce,
        r#"{"termsOfServiceAgreed":true}"#,
        true,
    );
    // Another payload under the same signature.
    let value = json::parse(body.as_bytes()).unwrap();
    let forged = format!(
        "{{\"protected\":\"{}\",\"payload\":\"{}\",\"signature\":\"{}\"}}",
        str_of(&value, "protected"),
        b64(br#"{"termsOfServiceAgreed":true,"contact":["mailto:x@y.test"]}"#),
        str_of(&value, "signature")
    );
    let mut acme = acme;
    let r = acme.post_body("/new-account", &forged);
    assert_problem(&r, 400, "malformed");
    // A signature of another key.
    let other = Acme::new(&server);
    let signed_by_other = other.jws(
        &acme.url("/new-account"),
        &acme.fresh_nonce(),
        r#"{"termsOfServiceAgreed":true}"#,
        true,
    );
    let theirs = json::parse(signed_by_other.as_bytes()).unwrap();
    let nonce = acme.fresh_nonce();
    let mine = json::parse(
        acme.jws(
            &acme.url("/new-account"),
            &nonce,
            r#"{"termsOfServiceAgreed":true}"#,
            true,
        )
        .as_bytes(),
    )
    .unwrap();
    let swapped = format!(
        "{{\"protected\":\"{}\",\"payload\":\"{}\",\"signature\":\"{}\"}}",
        str_of(&mine, "protected"),
        str_of(&mine, "payload"),
        str_of(&theirs, "signature")
    );
    let r = acme.post_body("/new-account", &swapped);
    assert_problem(&r, 400, "malformed");
    // Not flattened: a compact JWS.
    let nonce = acme.fresh_nonce();
    let good = json::parse(
        acme.jws(&acme.url("/new-account"), &nonce, "{}", true)
            .as_bytes(),
    )
    .unwrap();
    let compact = format!(
        "{}.{}.{}",
        str_of(&good, "protected"),
        str_of(&good, "payload"),
        str_of(&good, "signature")
    );
    let r = acme.post_body("/new-account", &compact);
    assert_problem(&r, 400, "malformed");
    assert!(server.accounts().is_empty());
}

#[test]
fn a_nonce_is_taken_once_and_the_error_gives_a_fresh_one() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    let nonce = acme.fresh_nonce();
    let payload = r#"{"termsOfServiceAgreed":true}"#;
    let body = acme.jws(&acme.url("/new-account"), &nonce, payload, true);
    let r = acme.post_body("/new-account", &body);
    assert_eq!(r.status, 201, "{}", describe_response(&r));
    let r = acme.post_body("/new-account", &body);
    assert_problem(&r, 400, "badNonce");
    // A nonce the server never gave.
    let made_up = acme.jws(&acme.url("/new-account"), "bm90LWdpdmVu", payload, true);
    let r = acme.post_body("/new-account", &made_up);
    assert_problem(&r, 400, "badNonce");
    // The error's own nonce serves.
    let r = acme.post("/new-account", payload);
    assert_eq!(r.status, 200, "{}", describe_response(&r));

    // The test's knob: the next good nonce refused once.
    server.reject_next_nonce();
    let r = acme.post("/new-account", payload);
    assert_problem(&r, 400, "badNonce");
    let r = acme.post("/new-account", payload);
    assert_eq!(r.status, 200, "{}", describe_response(&r));
    assert_eq!(server.bad_nonces_sent(), 1);
}

#[test]
fn a_url_other_than_the_one_requested_is_refused() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    let nonce = acme.fresh_nonce();
    let body = acme.jws(
        &acme.url("/new-order"),
        &nonce,
        r#"{"termsOfServiceAgreed":true}"#,
        true,
    );
    let r = acme.post_body("/new-account", &body);
    assert_problem(&r, 401, "unauthorized");
    // Another host's URL for the same path.
    let nonce = acme.fresh_nonce();
    let other_host = format!("http://localhost:{}/new-account", server.addr.port());
    let body = acme.jws(
        &other_host,
        &nonce,
        r#"{"termsOfServiceAgreed":true}"#,
        true,
    );
    let r = acme.post_body("/new-account", &body);
    assert_problem(&r, 401, "unauthorized");
    assert!(server.accounts().is_empty());
}

#[test]
fn jwk_is_for_new_account_alone_and_kid_must_be_known() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    // A jwk on newOrder, before any account.
    let nonce = acme.fresh_nonce();
    let body = acme.jws(
        &acme.url("/new-order"),
        &nonce,
        r#"{"identifiers":[{"type":"dns","value":"shop.test"}]}"#,
        true,
    );
    let r = acme.post_body("/new-order", &body);
    assert_problem(&r, 400, "malformed");
    // An unknown kid.
    acme.kid = Some(acme.url("/acct/7"));
    let r = acme.post(
        "/new-order",
        r#"{"identifiers":[{"type":"dns","value":"shop.test"}]}"#,
    );
    assert_problem(&r, 400, "accountDoesNotExist");
    acme.kid = None;
    acme.account();
    // A kid on newAccount.
    let nonce = acme.fresh_nonce();
    let body = acme.jws(
        &acme.url("/new-account"),
        &nonce,
        r#"{"termsOfServiceAgreed":true}"#,
        false,
    );
    let r = acme.post_body("/new-account", &body);
    assert_problem(&r, 400, "malformed");
    // Another account's order.
    let (order, _) = acme.order(&["shop.test"]);
    let mut other = Acme::new(&server);
    other.account();
    let r = other.post(&order, "");
    assert_problem(&r, 403, "unauthorized");
    assert_eq!(server.orders().len(), 1);
}

#[test]
fn finalize_before_validation_is_refused() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    acme.account();
    let (order_path, order) = acme.order(&["shop.test", "www.shop.test"]);
    assert_eq!(str_of(&order, "status"), "pending");
    assert_eq!(authorizations(&order).len(), 2);
    let finalize = str_of(&order, "finalize");
    let path = acme.path_of(&finalize).to_string();
    let payload = format!("{{\"csr\":\"{}\"}}", csr(&["shop.test", "www.shop.test"]));
    let r = acme.post(&path, &payload);
    assert_problem(&r, 403, "orderNotReady");
    // One of two authorizations valid is not enough either.
    let responder = challenge_responder(acme.thumbprint());
    server.set_proxy_addr(responder.addr);
    let first = acme.get(&authorizations(&order)[0]);
    let (challenge, _) = http01(&json_of(&first));
    let r = acme.post(acme.path_of(&challenge).to_string().as_str(), "{}");
    assert_eq!(r.status, 200, "{}", describe_response(&r));
    let authz = acme.poll(&authorizations(&order)[0]);
    assert_eq!(str_of(&authz, "status"), "valid");
    let r = acme.post(&path, &payload);
    assert_problem(&r, 403, "orderNotReady");
    let order = acme.get(&acme.url(&order_path));
    assert_eq!(str_of(&json_of(&order), "status"), "pending");
    assert!(server.issued().is_empty());
}

#[test]
fn an_order_is_validated_over_http_and_issued_for_the_csr() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    acme.account();
    let responder = challenge_responder(acme.thumbprint());
    server.set_proxy_addr(responder.addr);
    let (order_path, order) = acme.order(&["shop.test", "www.shop.test"]);
    let mut tokens = Vec::new();
    for (url, name) in authorizations(&order)
        .iter()
        .zip(["shop.test", "www.shop.test"])
    {
        let authz = json_of(&acme.get(url));
        let identifier = authz.get("identifier").unwrap();
        assert_eq!(str_of(identifier, "value"), name);
        assert_eq!(str_of(&authz, "status"), "pending");
        let (challenge, token) = http01(&authz);
        let path = acme.path_of(&challenge).to_string();
        let r = acme.post(&path, "{}");
        assert_eq!(r.status, 200, "{}", describe_response(&r));
        let authz = acme.poll(url);
        assert_eq!(str_of(&authz, "status"), "valid", "{}", server.describe());
        tokens.push(token);
    }
    // The validations: the token's path, the identifier's Host.
    let seen = responder.seen();
    assert_eq!(seen.len(), 2);
    for ((s, token), name) in seen.iter().zip(&tokens).zip(["shop.test", "www.shop.test"]) {
        assert_eq!(s.path(), format!("/.well-known/acme-challenge/{token}"));
        assert_eq!(s.field_or("host", "-"), name);
    }
    let validations = server.validations();
    assert!(validations.iter().all(|v| v.passed), "{validations:?}");
    assert_eq!(server.dns01_posts(), 0);

    let order = json_of(&acme.get(&acme.url(&order_path)));
    assert_eq!(str_of(&order, "status"), "ready");
    let finalize = acme.path_of(&str_of(&order, "finalize")).to_string();
    // A CSR whose names are not the order's.
    let r = acme.post(
        &finalize,
        &format!("{{\"csr\":\"{}\"}}", csr(&["shop.test", "evil.test"])),
    );
    assert_problem(&r, 400, "badCSR");
    let r = acme.post(
        &finalize,
        &format!("{{\"csr\":\"{}\"}}", csr(&["shop.test"])),
    );
    assert_problem(&r, 400, "badCSR");
    // A CSR with its signature broken.
    let mut broken = support::acme_server::unb64(&csr(&["shop.test", "www.shop.test"])).unwrap();
    let last = broken.len() - 1;
    broken[last] ^= 1;
    let r = acme.post(&finalize, &format!("{{\"csr\":\"{}\"}}", b64(&broken)));
    assert_problem(&r, 400, "badCSR");
    // A CN that is not one of the names; the account's own key.
    let names = ["shop.test", "www.shop.test"];
    let fresh = rcgen::KeyPair::generate().unwrap();
    let r = acme.post(
        &finalize,
        &format!(
            "{{\"csr\":\"{}\"}}",
            csr_with(&names, Some("other.test"), &fresh)
        ),
    );
    assert_problem(&r, 400, "badCSR");
    let account_key = rcgen::KeyPair::try_from(acme.pkcs8.as_slice()).unwrap();
    let r = acme.post(
        &finalize,
        &format!("{{\"csr\":\"{}\"}}", csr_with(&names, None, &account_key)),
    );
    assert_problem(&r, 400, "badCSR");
    // A CN among the names is taken, and the names in another order
    // are the same names.
    let r = acme.post(
        &finalize,
        &format!(
            "{{\"csr\":\"{}\"}}",
            csr_with(&["www.shop.test", "shop.test"], Some("shop.test"), &fresh)
        ),
    );
    assert_eq!(r.status, 200, "{}", describe_response(&r));
    let issued_key = fresh.public_key_raw().to_vec();
    assert_eq!(str_of(&json_of(&r), "status"), "processing");
    assert!(json_of(&r).get("certificate").is_none());
    let order = acme.poll(&acme.url(&order_path));
    assert_eq!(str_of(&order, "status"), "valid");
    let r = acme.get(&str_of(&order, "certificate"));
    assert_eq!(r.status, 200, "{}", describe_response(&r));
    assert_eq!(
        r.header("content-type"),
        Some("application/pem-certificate-chain")
    );
    let chain: Vec<CertificateDer> = CertificateDer::pem_slice_iter(&r.body)
        .map(Result::unwrap)
        .collect();
    let issued = server.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0].as_ref(), issued[0].der.as_slice());
    assert_eq!(chain[1].as_ref(), server.ca_der());
    assert_eq!(issued[0].public_key, issued_key);
    // A client that trusts the CA takes it for both names.
    let roots = roots_of(&server);
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .unwrap();
    for name in ["shop.test", "www.shop.test"] {
        let name = ServerName::try_from(name).unwrap();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &chain[0],
            &chain[1..],
            &name,
            &[],
            UnixTime::now(),
        )
        .unwrap();
    }
    // Finalizing again is refused: the order is no longer ready.
    let r = acme.post(
        &finalize,
        &format!("{{\"csr\":\"{}\"}}", csr(&["shop.test", "www.shop.test"])),
    );
    assert_problem(&r, 403, "orderNotReady");
}

#[test]
fn a_wrong_key_authorization_makes_the_order_invalid() {
    let server = AcmeServer::start(AcmeOptions::default());
    let mut acme = Acme::new(&server);
    acme.account();
    // A responder with another account's thumbprint.
    let responder = challenge_responder(Acme::new(&server).thumbprint());
    server.set_proxy_addr(responder.addr);
    let (order_path, order) = acme.order(&["shop.test"]);
    let url = &authorizations(&order)[0];
    let (challenge, _) = http01(&json_of(&acme.get(url)));
    let path = acme.path_of(&challenge).to_string();
    acme.post(&path, "{}");
    let authz = acme.poll(url);
    assert_eq!(str_of(&authz, "status"), "invalid");
    let order = json_of(&acme.get(&acme.url(&order_path)));
    assert_eq!(str_of(&order, "status"), "invalid");
    let validations = server.validations();
    assert_eq!(validations.len(), 1);
    assert!(!validations[0].passed);
    assert_eq!(validations[0].host, "shop.test");
    let finalize = acme.path_of(&str_of(&order, "finalize")).to_string();
    let r = acme.post(
        &finalize,
        &format!("{{\"csr\":\"{}\"}}", csr(&["shop.test"])),
    );
    assert_problem(&r, 403, "orderNotReady");
}

#[test]
fn the_server_answers_https_with_a_certificate_of_its_ca() {
    let server = AcmeServer::start(AcmeOptions {
        https: true,
        ..AcmeOptions::default()
    });
    assert!(server.directory_url().starts_with("https://127.0.0.1:"));
    let config = trusting(&server);
    let mut client = TlsClient::connect(server.addr, &config, "127.0.0.1");
    let r = client.get("/directory");
    assert_eq!(r.status, 200);
    assert_eq!(
        str_of(&json_of(&r), "newNonce"),
        format!("{}/new-nonce", server.base())
    );
}

// ---------------------------------------------------------------- inverso

fn roots_of(server: &AcmeServer) -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots
        .add(CertificateDer::from(server.ca_der().to_vec()))
        .unwrap();
    roots
}

/// Client settings that trust the ACME server's CA.
fn trusting(server: &AcmeServer) -> Arc<ClientConfig> {
    let config = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots_of(server))
        .with_no_client_auth();
    Arc::new(config)
}

/// proxy.conf: `backend`, HTTPS on any port with no certificate of its
/// own, and ACME for shop.test and www.shop.test from `server`, its
/// state in `state`; then `more`.
fn acme_conf(backend: &Backend, server: &AcmeServer, state: &Path, more: &str) -> String {
    format!(
        "targets = {}\ntls_port = 0\nacme_domains = shop.test, www.shop.test\n\
         acme_directory = {}\nacme_state_dir = {}\nacme_email = ops@shop.test\n{more}",
        backend.addr,
        server.directory_url(),
        state.display()
    )
}

/// Starts inverso on `text` (with the admin listener) and tells
/// `server` where to validate.
fn start(text: &str, server: &AcmeServer) -> Proxy {
    let proxy = start_proxy(&[], from_file_with_admin(text));
    server.set_proxy_addr(proxy.addr);
    proxy
}

fn tls_addr(proxy: &Proxy) -> SocketAddr {
    proxy.handle().tls_addr().expect("tls_port is on")
}

/// The certificate a handshake as `name` is served, if one succeeds.
fn served(proxy: &Proxy, config: &Arc<ClientConfig>, name: &str) -> Option<Vec<u8>> {
    let client = TlsClient::try_connect(tls_addr(proxy), config, name).ok()?;
    Some(client.server_cert().to_vec())
}

/// Waits (bounded) until a handshake as `name` is served a certificate
/// for which `wanted` holds; returns it.
#[track_caller]
fn wait_served(
    proxy: &Proxy,
    server: &AcmeServer,
    name: &str,
    wanted: impl Fn(&[u8]) -> bool,
) -> Vec<u8> {
    let config = trusting(server);
    let mut last = None;
    let ok = wait_slowly(ISSUE_LIMIT, || {
        last = served(proxy, &config, name);
        last.as_deref().is_some_and(&wanted)
    });
    assert!(
        ok,
        "no wanted certificate served for {name} (last: {} bytes)\n{}",
        last.map_or(0, |c| c.len()),
        server.describe()
    );
    last.unwrap()
}

/// The folder inverso keeps `server`'s account and certificate in: one
/// per ACME server, named by its host and port.
fn folder(state: &Path, server: &AcmeServer) -> PathBuf {
    let url = server.directory_url();
    let authority = url.split("://").nth(1).unwrap().split('/').next().unwrap();
    state.join(authority.replace(':', "_"))
}

/// `/status`'s `acme` object.
fn acme_object(proxy: &Proxy) -> Value {
    let body = proxy.admin("GET", "/status", "").body_str();
    let status = json::parse(body.as_bytes()).unwrap();
    status.get("acme").cloned().unwrap()
}

/// `/status`' object for the first certificate of `acme_domains`.
fn acme_status(proxy: &Proxy) -> Value {
    certificates_of(&acme_object(proxy)).remove(0)
}

fn certificates_of(acme: &Value) -> Vec<Value> {
    let certificates = acme.get("certificates").and_then(Value::as_array);
    certificates.expect("certificates").to_vec()
}

/// The certificates of a PEM file, in order.
fn certificates_in(path: &Path) -> Vec<Vec<u8>> {
    let text = std::fs::read(path).unwrap();
    CertificateDer::pem_slice_iter(&text)
        .map(|c| c.unwrap().to_vec())
        .collect()
}

#[test]
fn a_certificate_is_issued_for_both_names_and_served_by_sni() {
    let server = AcmeServer::start(AcmeOptions::default());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), ""), &server);
    let cert = wait_served(&proxy, &server, "shop.test", |_| true);

    // Served, and a request over it reaches the backend.
    let mut client = TlsClient::connect(tls_addr(&proxy), &trusting(&server), "shop.test");
    let r = client.get("/hello");
    assert_eq!(r.status, 200, "{}", r.head.raw);
    assert!(
        r.body_str().starts_with("a GET /hello "),
        "{}",
        r.body_str()
    );

    let issued = server.issued();
    assert_eq!(issued.len(), 1, "{}", server.describe());
    assert_eq!(cert, issued[0].der);
    assert_eq!(sorted(&issued[0].names), ["shop.test", "www.shop.test"]);
    // The other name is served the same certificate.
    assert_eq!(
        served(&proxy, &trusting(&server), "www.shop.test").as_deref(),
        Some(cert.as_slice())
    );

    // One order, for the two names.
    let orders = server.orders();
    assert_eq!(orders.len(), 1, "{}", server.describe());
    assert_eq!(
        sorted(&orders[0].identifiers),
        ["shop.test", "www.shop.test"]
    );
    // The validations: each name's Host, its token's path, passed; the
    // proxy answered them itself; dns-01 was left alone.
    let tokens = server.http01_tokens();
    let validations = server.validations();
    let hosts: Vec<&str> = validations.iter().map(|v| v.host.as_str()).collect();
    assert_eq!(
        sorted(&hosts),
        ["shop.test", "www.shop.test"],
        "{validations:?}"
    );
    for v in &validations {
        assert!(v.passed, "{v:?}");
        let token = v.path.strip_prefix("/.well-known/acme-challenge/").unwrap();
        assert!(tokens.iter().any(|t| t == token), "{v:?}");
    }
    assert!(
        !(backend.seen().iter()).any(|s| s.path().starts_with("/.well-known/acme-challenge/")),
        "a challenge reached the backend"
    );
    assert_eq!(server.dns01_posts(), 0);

    // The account: the contact given, the key kept in the state dir.
    let accounts = server.accounts();
    assert_eq!(accounts.len(), 1);
    assert_eq!(accounts[0].contact, ["mailto:ops@shop.test"]);
    let key_pem =
        std::fs::read_to_string(folder(state.path(), &server).join("account.key")).unwrap();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----"),
        "{key_pem}"
    );
    let PrivateKeyDer::Pkcs8(pkcs8) = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).unwrap()
    else {
        panic!("account.key is not PKCS#8");
    };
    let key = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        pkcs8.secret_pkcs8_der(),
        &SystemRandom::new(),
    )
    .unwrap();
    assert_eq!(key.public_key().as_ref(), accounts[0].key.as_slice());

    // shop.test.pem (the certificate's first name): the chain, then the
    // key.
    let path = folder(state.path(), &server).join("shop.test.pem");
    assert_eq!(
        certificates_in(&path),
        [issued[0].der.clone(), server.ca_der().to_vec()]
    );
    let text = std::fs::read_to_string(&path).unwrap();
    let key_at = text
        .find("PRIVATE KEY-----")
        .expect("a key in shop.test.pem");
    assert!(
        key_at > text.rfind("-----END CERTIFICATE-----").unwrap(),
        "{text}"
    );
    assert!(PrivateKeyDer::from_pem_slice(text.as_bytes()).is_ok());
}

#[test]
fn a_restart_serves_the_kept_certificate_at_once_and_orders_nothing() {
    let server = AcmeServer::start(AcmeOptions::default());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let text = acme_conf(&backend, &server, state.path(), "");
    let mut first = start(&text, &server);
    let cert = wait_served(&first, &server, "shop.test", |_| true);
    first.shutdown(Duration::from_secs(1));
    assert_eq!(server.orders().len(), 1);

    let second = start(&text, &server);
    // At once: the first handshake.
    assert_eq!(
        served(&second, &trusting(&server), "shop.test").as_deref(),
        Some(cert.as_slice()),
        "{}",
        server.describe()
    );
    let r = second.get_on("shop.test", "/plain", &[]);
    assert_eq!(r.status, 200);
    // A moment for an order that should not come.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.orders().len(), 1, "{}", server.describe());
    assert_eq!(server.issued().len(), 1);
}

#[test]
fn a_certificate_due_is_renewed_and_served_without_a_restart() {
    let server = AcmeServer::start(AcmeOptions::first_due());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), ""), &server);
    let renewed = wait_slowly(ISSUE_LIMIT, || server.issued().len() >= 2);
    assert!(renewed, "no renewal\n{}", server.describe());
    let issued = server.issued();
    assert_ne!(issued[0].serial, issued[1].serial);
    assert!(server.orders().len() >= 2);
    let second = issued[1].der.clone();
    let cert = wait_served(&proxy, &server, "shop.test", |c| c == second.as_slice());
    assert_ne!(cert, issued[0].der);
    let path = folder(state.path(), &server).join("shop.test.pem");
    let written = wait_until(WAIT_LIMIT, || {
        path.exists() && certificates_in(&path).first() == Some(&second)
    });
    assert!(written, "shop.test.pem does not hold the renewed one");
    // `/status` says the certificate in force and when the next comes.
    let status = acme_status(&proxy);
    let valid_until = status.get("valid_until").and_then(Value::as_str).unwrap();
    let until = inverso::tls::x509::not_after(&second).unwrap();
    assert_eq!(valid_until, inverso::http::date::format_rfc3339(until));
    assert!(status.get("renewed_from").and_then(Value::as_str).is_some());
    assert_eq!(status.get("failed"), Some(&Value::Null));
    // The metric for an alert says the certificate in force.
    let until = inverso::tls::x509::not_after(&second).unwrap();
    let until = until
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let metric = format!(
        "inverso_tls_certificate_expiry_seconds{{file=\"{}\"}}",
        path.display()
    );
    assert_eq!(proxy.metric(&metric), Some(until));
    // The renewed certificate is not due: nothing more is ordered.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.issued().len(), 2, "{}", server.describe());
}

#[test]
fn a_failed_validation_writes_no_certificate_and_plain_http_goes_on() {
    let server = AcmeServer::start(AcmeOptions::default());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let text = acme_conf(&backend, &server, state.path(), "");
    let proxy = start_proxy(&[], from_file_with_admin(&text));
    // The server validates at an address where nobody answers.
    server.set_proxy_addr(dead_addr());
    let failed = wait_slowly(ISSUE_LIMIT, || {
        server.validations().iter().any(|v| !v.passed)
            && server.orders().iter().any(|o| o.status == "invalid")
    });
    assert!(failed, "no failed validation\n{}", server.describe());
    assert!(server.issued().is_empty());
    assert!(!folder(state.path(), &server).join("shop.test.pem").exists());
    assert!(
        served(&proxy, &trusting(&server), "shop.test").is_none(),
        "a certificate is served"
    );
    // `/status` says why, and when the next order is made.
    let failed = wait_until(WAIT_LIMIT, || {
        acme_status(&proxy).get("failed") != Some(&Value::Null)
    });
    assert!(failed);
    let status = acme_status(&proxy);
    let failure = status.get("failed").unwrap();
    let why = failure.get("why").and_then(Value::as_str).unwrap();
    assert!(why.contains("is invalid"), "{why}");
    assert!(failure.get("next").and_then(Value::as_str).is_some());
    assert_eq!(status.get("valid_until"), Some(&Value::Null));
    let r = proxy.get_on("shop.test", "/still-here", &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().starts_with("a GET /still-here "),
        "{}",
        r.body_str()
    );
}

/// Each group of `acme_domains` (`;` between them) is a certificate of
/// its own: ordered apart, kept in a file named by its first name,
/// served for its names; a name that can no longer be proven (its
/// address is another machine's now) holds up its own certificate
/// alone.
#[test]
fn each_group_of_names_is_a_certificate_of_its_own_and_fails_alone() {
    let server = AcmeServer::start(AcmeOptions {
        elsewhere: vec!["gone.test".into()],
        ..AcmeOptions::default()
    });
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let text = acme_conf(&backend, &server, state.path(), "").replace(
        "acme_domains = shop.test, www.shop.test",
        "acme_domains = shop.test, www.shop.test; blog.test; gone.test",
    );
    let proxy = start(&text, &server);
    let shop = wait_served(&proxy, &server, "shop.test", |_| true);
    let blog = wait_served(&proxy, &server, "blog.test", |c| c != shop.as_slice());
    assert_eq!(
        served(&proxy, &trusting(&server), "www.shop.test").as_deref(),
        Some(shop.as_slice())
    );
    // An order a group, each for its names.
    let failed = wait_slowly(ISSUE_LIMIT, || {
        server
            .validations()
            .iter()
            .any(|v| v.host == "gone.test" && !v.passed)
    });
    assert!(failed, "{}", server.describe());
    let orders: Vec<Vec<String>> = server
        .orders()
        .iter()
        .map(|o| sorted(&o.identifiers))
        .collect();
    let ordered = sorted(&orders);
    assert_eq!(
        ordered,
        [
            vec!["blog.test"],
            vec!["gone.test"],
            vec!["shop.test", "www.shop.test"]
        ],
        "{}",
        server.describe()
    );
    let issued = server.issued();
    assert_eq!(issued.len(), 2, "{}", server.describe());
    assert!(issued.iter().any(|i| i.der == shop) && issued.iter().any(|i| i.der == blog));
    // Each kept in its own file; none for the name that failed.
    let folder = folder(state.path(), &server);
    assert_eq!(certificates_in(&folder.join("shop.test.pem"))[0], shop);
    assert_eq!(certificates_in(&folder.join("blog.test.pem"))[0], blog);
    assert!(!folder.join("gone.test.pem").exists());
    // `/status`: each certificate in the order written, the third failed.
    let third_failed = wait_until(WAIT_LIMIT, || {
        certificates_of(&acme_object(&proxy))[2].get("failed") != Some(&Value::Null)
    });
    assert!(third_failed, "{:?}", acme_object(&proxy));
    let acme = acme_object(&proxy);
    assert_eq!(
        acme.get("directory").and_then(Value::as_str),
        Some(server.directory_url().as_str())
    );
    let certificates = certificates_of(&acme);
    let domains = |c: &Value| -> Vec<String> {
        let names = c.get("domains").and_then(Value::as_array).unwrap();
        names
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect()
    };
    let listed: Vec<Vec<String>> = certificates.iter().map(domains).collect();
    assert_eq!(
        listed,
        [
            vec!["shop.test", "www.shop.test"],
            vec!["blog.test"],
            vec!["gone.test"]
        ]
    );
    for good in &certificates[..2] {
        assert!(good.get("valid_until").and_then(Value::as_str).is_some());
        assert_eq!(good.get("failed"), Some(&Value::Null));
    }
    assert_eq!(certificates[2].get("valid_until"), Some(&Value::Null));
    let why = certificates[2].get("failed").and_then(|f| f.get("why"));
    let why = why.and_then(Value::as_str).unwrap();
    assert!(why.contains("is invalid"), "{why}");
    // An expiry gauge a certificate in force.
    for file in ["shop.test.pem", "blog.test.pem"] {
        let metric = format!(
            "inverso_tls_certificate_expiry_seconds{{file=\"{}\"}}",
            folder.join(file).display()
        );
        assert!(proxy.metric(&metric).is_some(), "{metric}");
    }
}

/// The secret of the TSIG key the test zone's primary takes updates with.
const TSIG_SECRET: &[u8] = b"a secret the zone's primary knows";

/// A primary server for shop.test taking updates signed with
/// `inverso-acme`, and an ACME server reading its TXT records; and
/// proxy.conf for `*.shop.test, shop.test` proven by dns-01, its key's
/// secret `secret`.
fn dns_01_setup(secret: &[u8], state: &Path) -> (Arc<DnsServer>, AcmeServer, Backend, String) {
    use base64::Engine as _;
    let keys = [("inverso-acme", "hmac-sha256", TSIG_SECRET)];
    let dns = Arc::new(DnsServer::start("shop.test", &keys));
    let server = AcmeServer::start(AcmeOptions {
        dns: Some(dns.clone()),
        ..AcmeOptions::default()
    });
    let backend = Backend::echo("a");
    let more = format!(
        "acme_challenge = dns-01\nacme_dns_server = {}\nacme_dns_zone = shop.test\n\
         acme_dns_key = hmac-sha256:inverso-acme:{}\nacme_dns_wait = 0s\n",
        dns.addr,
        base64::engine::general_purpose::STANDARD.encode(secret)
    );
    let text = acme_conf(&backend, &server, state, &more).replace(
        "acme_domains = shop.test, www.shop.test",
        "acme_domains = *.shop.test, shop.test",
    );
    (dns, server, backend, text)
}

/// dns-01: each name's TXT record is written by a signed DNS update to
/// the zone's primary, read there by the ACME server, then deleted; a
/// wildcard is proven so, and its certificate served for any name one
/// label under it.
#[test]
fn dns_01_proves_a_wildcard_by_a_signed_update_and_takes_the_record_back() {
    let state = tempfile::tempdir().unwrap();
    let (dns, server, _backend, text) = dns_01_setup(TSIG_SECRET, state.path());
    let proxy = start(&text, &server);
    let cert = wait_served(&proxy, &server, "anything.shop.test", |_| true);
    assert_eq!(
        served(&proxy, &trusting(&server), "shop.test").as_deref(),
        Some(cert.as_slice())
    );
    let issued = server.issued();
    assert_eq!(issued.len(), 1, "{}", server.describe());
    assert_eq!(sorted(&issued[0].names), ["*.shop.test", "shop.test"]);
    // Two authorizations of shop.test (the wildcard's and its own), each
    // proven by its record; nothing asked over HTTP.
    let validations = server.validations();
    assert_eq!(validations.len(), 2, "{validations:?}");
    for v in &validations {
        assert!(v.passed, "{v:?}");
        assert_eq!(v.path, "_acme-challenge.shop.test");
        // Both records written before the server was asked to look at
        // either: one wait for the zone's secondaries, not one a name.
        assert_eq!(v.body.matches('"').count(), 4, "{v:?}");
    }
    assert_eq!(server.dns01_posts(), 2);
    // Each record deleted once looked at, by an update of its own.
    let gone = wait_until(WAIT_LIMIT, || {
        dns.txt("_acme-challenge.shop.test").is_empty() && dns.answered().len() == 4
    });
    assert!(
        gone,
        "{:?} {:?}",
        dns.txt("_acme-challenge.shop.test"),
        dns.answered()
    );
    assert!(
        dns.answered().iter().all(|(rcode, _)| *rcode == 0),
        "{:?}",
        dns.answered()
    );
    let kept = folder(state.path(), &server).join("_wildcard.shop.test.pem");
    assert_eq!(certificates_in(&kept)[0], cert);
}

/// A key the primary does not know by that secret: the update is
/// refused, and the order fails saying so, no record left behind.
#[test]
fn dns_01_with_a_wrong_secret_fails_saying_the_servers_refusal() {
    let state = tempfile::tempdir().unwrap();
    let (dns, server, _backend, text) = dns_01_setup(b"another secret", state.path());
    let proxy = start(&text, &server);
    let failed = wait_slowly(ISSUE_LIMIT, || {
        acme_status(&proxy).get("failed") != Some(&Value::Null)
    });
    assert!(failed, "{}", server.describe());
    let status = acme_status(&proxy);
    let why = status.get("failed").and_then(|f| f.get("why"));
    let why = why.and_then(Value::as_str).unwrap();
    assert!(why.contains("_acme-challenge.shop.test"), "{why}");
    assert!(why.contains("NOTAUTH"), "{why}");
    assert_eq!(dns.answered()[0], (9, "BADSIG".to_string()));
    assert!(dns.txt("_acme-challenge.shop.test").is_empty());
    assert!(server.issued().is_empty());
    assert_eq!(server.dns01_posts(), 0, "the server was not asked to look");
}

#[test]
fn a_bad_nonce_is_retried_and_the_certificate_issued() {
    let server = AcmeServer::start(AcmeOptions::default());
    server.reject_next_nonce();
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), ""), &server);
    let cert = wait_served(&proxy, &server, "shop.test", |_| true);
    assert_eq!(server.bad_nonces_sent(), 1);
    assert!(
        server.problems().iter().any(|p| p.starts_with("badNonce")),
        "{}",
        server.describe()
    );
    let issued = server.issued();
    assert_eq!(issued.len(), 1);
    assert_eq!(cert, issued[0].der);
}

#[test]
fn an_unknown_challenge_token_reaches_the_backend() {
    let server = AcmeServer::start(AcmeOptions::default());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), ""), &server);
    let path = "/.well-known/acme-challenge/not-a-token-of-ours";
    let r = proxy.get_on("shop.test", path, &[]);
    assert_eq!(r.status, 200);
    assert!(
        r.body_str().starts_with(&format!("a GET {path} ")),
        "{}",
        r.body_str()
    );
    assert!(backend.seen().iter().any(|s| s.path() == path));
    // Other paths under /.well-known/ too.
    let r = proxy.get_on("shop.test", "/.well-known/security.txt", &[]);
    assert!(r.body_str().starts_with("a GET /.well-known/security.txt "));
}

#[test]
fn an_https_directory_is_trusted_by_acme_directory_ca() {
    let server = AcmeServer::start(AcmeOptions {
        https: true,
        ..AcmeOptions::default()
    });
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let ca = state.path().join("acme-ca.pem");
    server.write_ca(&ca);
    let more = format!("acme_directory_ca = {}\n", ca.display());
    let proxy = start(&acme_conf(&backend, &server, state.path(), &more), &server);
    let cert = wait_served(&proxy, &server, "www.shop.test", |_| true);
    assert_eq!(cert, server.issued()[0].der);
}

/// A reload that leaves the `acme_*` keys as they were keeps serving the
/// certificate; one that adds a name starts the client anew, which serves
/// the certificate kept for the names it has while it orders the next,
/// for all three.
#[test]
fn a_reload_keeps_the_certificate_and_a_new_name_orders_the_next() {
    let server = AcmeServer::start(AcmeOptions::default());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let text = acme_conf(&backend, &server, state.path(), "");
    let proxy = start(&text, &server);
    let first = wait_served(&proxy, &server, "shop.test", |_| true);
    let reload = |text: &str| {
        let next = proxy.config_for(&[], from_file_with_admin(text));
        proxy.handle().control().reload(next).unwrap()
    };
    let reloaded = reload(&text);
    assert!(
        reloaded.needs_restart.is_empty(),
        "{:?}",
        reloaded.needs_restart
    );
    assert_eq!(
        served(&proxy, &trusting(&server), "shop.test").as_deref(),
        Some(first.as_slice()),
        "the reload dropped the certificate"
    );
    assert_eq!(server.orders().len(), 1);

    let more = text.replace(
        "acme_domains = shop.test, www.shop.test",
        "acme_domains = shop.test, www.shop.test, api.shop.test",
    );
    assert_ne!(more, text);
    reload(&more);
    // The one kept goes on for its names until the next comes.
    let now = served(&proxy, &trusting(&server), "www.shop.test");
    let next = wait_served(&proxy, &server, "api.shop.test", |c| c != first.as_slice());
    if let Some(now) = now {
        assert!(now == first || now == next, "a third certificate");
    }
    assert_eq!(server.orders().len(), 2, "{}", server.describe());
    assert_eq!(
        sorted(&server.orders()[1].identifiers),
        ["api.shop.test", "shop.test", "www.shop.test"]
    );
    assert_eq!(
        served(&proxy, &trusting(&server), "shop.test").as_deref(),
        Some(next.as_slice())
    );
}

/// A CA that asks for External Account Binding takes the account bound
/// with `acme_eab_kid` and `acme_eab_hmac_key`, and refuses it unbound
/// or bound with another key.
#[test]
fn an_account_is_bound_to_the_one_the_ca_gave_when_it_asks() {
    let mac_key = b"the CA's MAC key, 32 bytes long!".to_vec();
    let server = AcmeServer::start(AcmeOptions {
        eab: Some(("kid-7".into(), mac_key.clone())),
        ..AcmeOptions::default()
    });
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    // Unbound: refused, no certificate.
    let unbound = start(&acme_conf(&backend, &server, state.path(), ""), &server);
    let refused = refused_with(&server, |p| p.starts_with("externalAccountRequired"));
    assert!(refused, "{}", server.describe());
    assert!(server.accounts().is_empty());
    drop(unbound);
    // Bound with another key: refused.
    let wrong = format!(
        "acme_eab_kid = kid-7\nacme_eab_hmac_key = {}\n",
        b64(b"another key")
    );
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), &wrong), &server);
    let refused = refused_with(&server, |p| p.contains("the MAC does not verify"));
    assert!(refused, "{}", server.describe());
    assert!(server.accounts().is_empty());
    drop(proxy);
    // Bound as the CA said: issued.
    let right = format!(
        "acme_eab_kid = kid-7\nacme_eab_hmac_key = {}\n",
        b64(&mac_key)
    );
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), &right), &server);
    let cert = wait_served(&proxy, &server, "shop.test", |_| true);
    assert_eq!(server.accounts().len(), 1);
    assert_eq!(cert, server.issued()[0].der);
}

/// A server with renewal information (RFC 9773) that suggests renewing
/// now has the certificate renewed at once, the order naming the one it
/// replaces; one that suggests later leaves the next alone.
#[test]
fn renewal_information_that_says_now_renews_and_names_the_certificate_replaced() {
    let now = std::time::SystemTime::now();
    let hour = Duration::from_secs(3600);
    let server = AcmeServer::start(AcmeOptions {
        renewal_info: true,
        windows: vec![
            Some((now - 2 * hour, now - hour)),
            Some((now + 240 * hour, now + 264 * hour)),
        ],
        ..AcmeOptions::default()
    });
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let proxy = start(&acme_conf(&backend, &server, state.path(), ""), &server);
    let renewed = wait_slowly(ISSUE_LIMIT, || server.issued().len() >= 2);
    assert!(renewed, "no renewal\n{}", server.describe());
    let issued = server.issued();
    let orders = server.orders();
    assert_eq!(orders[0].replaces, None);
    let first_id = inverso::tls::x509::renewal_id(&issued[0].der).unwrap();
    assert_eq!(orders[1].replaces.as_deref(), Some(first_id.as_str()));
    let second = issued[1].der.clone();
    wait_served(&proxy, &server, "shop.test", |c| c == second.as_slice());
    // The second is asked about too, and its window, ten days on, is
    // when it is renewed (not day 60 of 90).
    let asked = wait_until(WAIT_LIMIT, || server.renewal_info_asked().contains(&1));
    assert!(asked, "{:?}", server.renewal_info_asked());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(server.issued().len(), 2, "{}", server.describe());
    let drawn_in_window = || {
        let status = acme_status(&proxy);
        let from = status.get("renewed_from").and_then(Value::as_str);
        let from = from.and_then(inverso::http::date::parse_rfc3339);
        from.is_some_and(|from| from >= now + 240 * hour && from <= now + 264 * hour)
    };
    let drawn = wait_until(WAIT_LIMIT, drawn_in_window);
    assert!(drawn, "{:?}", acme_status(&proxy));
}

/// `acme_challenge = tls-alpn-01`: each name is proven by a handshake
/// with `tls_port` offering `acme-tls/1` (RFC 8737), no http-01 token
/// asked for; the certificate issued is then served, and a client offering
/// `acme-tls/1` once nothing is proven is refused.
#[test]
fn tls_alpn_01_proves_each_name_on_the_tls_port() {
    let server = AcmeServer::start(AcmeOptions::default());
    let backend = Backend::echo("a");
    let state = tempfile::tempdir().unwrap();
    let more = "acme_challenge = tls-alpn-01\n";
    let proxy = start(&acme_conf(&backend, &server, state.path(), more), &server);
    server.set_proxy_tls_addr(tls_addr(&proxy));
    let cert = wait_served(&proxy, &server, "shop.test", |_| true);
    assert_eq!(cert, server.issued()[0].der);
    let validations = server.validations();
    let hosts: Vec<&str> = validations.iter().map(|v| v.host.as_str()).collect();
    assert_eq!(
        sorted(&hosts),
        ["shop.test", "www.shop.test"],
        "{validations:?}"
    );
    for v in &validations {
        assert!(v.passed && v.path == "tls-alpn-01", "{v:?}");
    }
    // Nothing is being proven now: a validation's handshake is refused.
    let mut config = (*trusting(&server)).clone();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let refused = TlsClient::try_connect(tls_addr(&proxy), &Arc::new(config), "shop.test");
    assert!(
        refused.is_err(),
        "a certificate for acme-tls/1 with nothing proven"
    );
    // Browsers go on as before.
    let mut client = TlsClient::connect(tls_addr(&proxy), &trusting(&server), "www.shop.test");
    assert_eq!(client.get("/after").status, 200);
}
