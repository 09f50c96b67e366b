//! A small ACME (RFC 8555) server inside the test process, for the tests
//! of inverso's ACME client: a directory, nonces, accounts, orders,
//! authorizations with an `http-01` and a `dns-01` challenge each, the
//! `http-01` validation by a real request to the proxy's plain port,
//! finalization of a CSR read by a small DER walker, and certificates
//! signed by a CA of its own made with rcgen.
//!
//! It checks what a CA checks, so that a wrong client fails: the
//! Content-Type, the flattened JWS, its ES256 signature (ring), the nonce
//! (issued here, used once), `url`, `jwk` on newAccount alone and a known
//! `kid` elsewhere, each resource's owner, the order's state, and the
//! CSR's names and signature. Every answer carries a fresh
//! `Replay-Nonce`; errors are `application/problem+json`.

use super::{Reader, IO_TIMEOUT, WAIT_LIMIT};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use inverso::json_value::{self, Value};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SignatureAlgorithm,
};
use ring::rand::SecureRandom;
use rustls::pki_types::pem::PemObject;
use std::collections::HashSet;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The longest request body read.
const MAX_BODY: usize = 256 * 1024;

/// Serial numbers of the certificates issued in this run, each its own.
static SERIAL: AtomicU64 = AtomicU64::new(70_000);

/// How the server behaves.
#[derive(Clone)]
pub struct AcmeOptions {
    /// The validity (notBefore, notAfter) of the certificate of the order
    /// numbered `i` (0, 1, ...), where given; otherwise from an hour ago
    /// to 90 days on.
    pub validity: Vec<Option<(SystemTime, SystemTime)>>,
    /// Answer https with a certificate of the server's own CA (for
    /// 127.0.0.1 and localhost).
    pub https: bool,
    /// The `Retry-After` (seconds) sent with a pending authorization or
    /// a processing order.
    pub retry_after: u32,
    /// External Account Binding asked of new accounts: the key ID and
    /// MAC key a CA would give on its site.
    pub eab: Option<(String, Vec<u8>)>,
    /// ACME Renewal Information (RFC 9773): `renewalInfo` in the
    /// directory, and the window suggested for the certificate issued
    /// `i`-th (0, 1, ...) where given; otherwise from 60 to 61 days on.
    pub renewal_info: bool,
    pub windows: Vec<Option<(SystemTime, SystemTime)>>,
    /// Names whose address is another machine's: an `http-01`
    /// validation of one finds nobody.
    pub elsewhere: Vec<String>,
    /// The DNS a `dns-01` validation reads TXT records from; without
    /// it, one fails ("no DNS here").
    pub dns: Option<Arc<super::dns_server::DnsServer>>,
}

impl Default for AcmeOptions {
    fn default() -> AcmeOptions {
        AcmeOptions {
            validity: Vec::new(),
            https: false,
            retry_after: 1,
            eab: None,
            renewal_info: false,
            windows: Vec::new(),
            elsewhere: Vec::new(),
            dns: None,
        }
    }
}

impl AcmeOptions {
    /// The certificate of order `order` valid from `not_before` to
    /// `not_after`.
    pub fn order_valid(
        mut self,
        order: usize,
        not_before: SystemTime,
        not_after: SystemTime,
    ) -> Self {
        if self.validity.len() <= order {
            self.validity.resize(order + 1, None);
        }
        self.validity[order] = Some((not_before, not_after));
        self
    }

    /// The first certificate already due for renewal: valid from 60 days
    /// ago to a day from now.
    pub fn first_due() -> Self {
        let now = SystemTime::now();
        AcmeOptions::default().order_valid(
            0,
            now - Duration::from_secs(60 * 86_400),
            now + Duration::from_secs(86_400),
        )
    }
}

/// One `http-01` validation the server made.
#[derive(Clone, Debug)]
pub struct Validation {
    /// The `Host` it sent: the identifier.
    pub host: String,
    pub path: String,
    /// The status it got (0: no answer).
    pub status: u16,
    pub body: String,
    pub passed: bool,
}

/// A certificate issued.
#[derive(Clone, Debug)]
pub struct Issued {
    pub order: usize,
    pub serial: u64,
    pub der: Vec<u8>,
    /// The chain as served: the leaf's PEM, then the CA's.
    pub chain_pem: String,
    pub names: Vec<String>,
    /// The public key certified (the CSR's subjectPublicKey bits).
    pub public_key: Vec<u8>,
}

/// An account as the server knows it.
#[derive(Clone, Debug)]
pub struct AccountSeen {
    pub url: String,
    pub contact: Vec<String>,
    /// RFC 7638 thumbprint of its key.
    pub thumbprint: String,
    /// Its public key, the uncompressed P-256 point.
    pub key: Vec<u8>,
}

/// An order as the server knows it.
#[derive(Clone, Debug)]
pub struct OrderSeen {
    pub account: String,
    pub identifiers: Vec<String>,
    pub status: String,
    /// The certificate it said it replaces (RFC 9773 §5).
    pub replaces: Option<String>,
}

struct Account {
    key: Vec<u8>,
    thumbprint: String,
    contact: Vec<String>,
}

struct Order {
    account: usize,
    replaces: Option<String>,
    identifiers: Vec<String>,
    authzs: Vec<usize>,
    status: &'static str,
    cert: Option<usize>,
    error: Option<String>,
}

struct Authz {
    account: usize,
    order: usize,
    /// For `*.<identifier>`.
    wildcard: bool,
    identifier: String,
    status: &'static str,
    challenges: Vec<usize>,
}

struct Challenge {
    authz: usize,
    kind: &'static str,
    token: String,
    status: &'static str,
    error: Option<String>,
}

#[derive(Default)]
struct State {
    nonces: HashSet<String>,
    reject_next_nonce: bool,
    bad_nonces_sent: usize,
    accounts: Vec<Account>,
    orders: Vec<Order>,
    authzs: Vec<Authz>,
    challenges: Vec<Challenge>,
    validations: Vec<Validation>,
    issued: Vec<Issued>,
    problems: Vec<String>,
    dns_posts: usize,
    requests: Vec<String>,
    proxy_addr: Option<SocketAddr>,
    proxy_tls_addr: Option<SocketAddr>,
    /// The certificates renewal information was asked about, by index.
    renewal_info_asked: Vec<usize>,
}

struct Inner {
    options: AcmeOptions,
    base: String,
    ca_issuer: Issuer<'static, KeyPair>,
    ca_der: Vec<u8>,
    ca_pem: String,
    tls: Option<Arc<rustls::ServerConfig>>,
    state: Mutex<State>,
    stop: AtomicBool,
}

/// The running server; stops accepting when dropped.
pub struct AcmeServer {
    inner: Arc<Inner>,
    pub addr: SocketAddr,
}

/// An error answered as `application/problem+json`.
#[derive(Debug)]
struct Problem {
    status: u16,
    kind: &'static str,
    detail: String,
}

fn problem(status: u16, kind: &'static str, detail: impl Into<String>) -> Problem {
    Problem {
        status,
        kind,
        detail: detail.into(),
    }
}

fn malformed(detail: impl Into<String>) -> Problem {
    problem(400, "malformed", detail)
}

/// A response before the headers every answer gets.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn json(status: u16, body: String) -> Answer {
        Answer {
            status,
            headers: vec![("Content-Type".into(), "application/json".into())],
            body: body.into_bytes(),
        }
    }

    fn with(mut self, name: &str, value: impl Into<String>) -> Answer {
        self.headers.push((name.into(), value.into()));
        self
    }
}

impl From<Problem> for Answer {
    fn from(p: Problem) -> Answer {
        let body = format!(
            "{{\"type\":\"urn:ietf:params:acme:error:{}\",\"detail\":{},\"status\":{}}}",
            p.kind,
            json_string(&p.detail),
            p.status
        );
        Answer {
            status: p.status,
            headers: vec![("Content-Type".into(), "application/problem+json".into())],
            body: body.into_bytes(),
        }
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn unb64(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text).ok()
}

fn json_string(s: &str) -> String {
    let mut out = String::new();
    inverso::json::push_str(&mut out, s);
    out
}

fn random_token() -> String {
    let mut bytes = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut bytes).unwrap();
    b64(&bytes)
}

/// The canonical JWK (RFC 7638) of a P-256 point `04 || x || y`.
pub fn canonical_jwk(point: &[u8]) -> String {
    format!(
        "{{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"{}\",\"y\":\"{}\"}}",
        b64(&point[1..33]),
        b64(&point[33..65])
    )
}

/// RFC 7638 thumbprint of a P-256 point.
pub fn thumbprint(point: &[u8]) -> String {
    b64(ring::digest::digest(&ring::digest::SHA256, canonical_jwk(point).as_bytes()).as_ref())
}

macro_rules! rcgen_time {
    ($t:expr) => {{
        let secs = $t.duration_since(UNIX_EPOCH).unwrap().as_secs();
        rcgen::date_time_ymd(1970, 1, 1) + Duration::from_secs(secs)
    }};
}

impl AcmeServer {
    pub fn start(options: AcmeOptions) -> AcmeServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "inverso test ACME CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::CrlSign,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        let ca_der = cert.der().to_vec();
        let ca_pem = cert.pem();
        let ca_issuer = Issuer::new(params, key);
        let tls = options.https.then(|| {
            let mut params =
                CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
                    .unwrap();
            params.use_authority_key_identifier_extension = true;
            params
                .extended_key_usages
                .push(ExtendedKeyUsagePurpose::ServerAuth);
            let key = KeyPair::generate().unwrap();
            let leaf = params.signed_by(&key, &ca_issuer).unwrap();
            let chain = vec![
                leaf.der().clone(),
                rustls::pki_types::CertificateDer::from(ca_der.clone()),
            ];
            let key =
                rustls::pki_types::PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes())
                    .unwrap();
            let config = rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
            Arc::new(config)
        });
        let scheme = if options.https { "https" } else { "http" };
        let inner = Arc::new(Inner {
            options,
            base: format!("{scheme}://{addr}"),
            ca_issuer,
            ca_der,
            ca_pem,
            tls,
            state: Mutex::new(State::default()),
            stop: AtomicBool::new(false),
        });
        let server = inner.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if server.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let server = server.clone();
                std::thread::spawn(move || server.connection(stream));
            }
        });
        AcmeServer { inner, addr }
    }

    pub fn directory_url(&self) -> String {
        format!("{}/directory", self.inner.base)
    }

    /// The scheme, address and port every URL of the server starts with.
    pub fn base(&self) -> &str {
        &self.inner.base
    }

    pub fn ca_pem(&self) -> &str {
        &self.inner.ca_pem
    }

    pub fn ca_der(&self) -> &[u8] {
        &self.inner.ca_der
    }

    /// Writes the CA's PEM to `path` (for `acme_directory_ca`).
    pub fn write_ca(&self, path: &std::path::Path) {
        std::fs::write(path, &self.inner.ca_pem).unwrap();
    }

    /// Where `http-01` validations go: the proxy's plain address.
    /// Validations wait for it (at most [`WAIT_LIMIT`]).
    pub fn set_proxy_addr(&self, addr: SocketAddr) {
        self.state().proxy_addr = Some(addr);
    }

    /// Where `tls-alpn-01` validations go: the proxy's TLS address.
    pub fn set_proxy_tls_addr(&self, addr: SocketAddr) {
        self.state().proxy_tls_addr = Some(addr);
    }

    /// The next POST with a good nonce is answered `badNonce` all the same.
    pub fn reject_next_nonce(&self) {
        self.state().reject_next_nonce = true;
    }

    pub fn bad_nonces_sent(&self) -> usize {
        self.state().bad_nonces_sent
    }

    /// The certificates renewal information was asked about, by index,
    /// in order.
    pub fn renewal_info_asked(&self) -> Vec<usize> {
        self.state().renewal_info_asked.clone()
    }

    pub fn orders(&self) -> Vec<OrderSeen> {
        let state = self.state();
        state
            .orders
            .iter()
            .map(|o| OrderSeen {
                account: self.inner.account_url(o.account),
                identifiers: o.identifiers.clone(),
                status: o.status.to_string(),
                replaces: o.replaces.clone(),
            })
            .collect()
    }

    pub fn accounts(&self) -> Vec<AccountSeen> {
        let state = self.state();
        (state.accounts.iter().enumerate())
            .map(|(i, a)| AccountSeen {
                url: self.inner.account_url(i),
                contact: a.contact.clone(),
                thumbprint: a.thumbprint.clone(),
                key: a.key.clone(),
            })
            .collect()
    }

    pub fn validations(&self) -> Vec<Validation> {
        self.state().validations.clone()
    }

    pub fn issued(&self) -> Vec<Issued> {
        self.state().issued.clone()
    }

    /// The `http-01` tokens offered, in order.
    pub fn http01_tokens(&self) -> Vec<String> {
        let state = self.state();
        (state.challenges.iter())
            .filter(|c| c.kind == "http-01")
            .map(|c| c.token.clone())
            .collect()
    }

    /// How many times a client POSTed a `dns-01` challenge (it must not).
    pub fn dns01_posts(&self) -> usize {
        self.state().dns_posts
    }

    /// Each error answered, `type: detail`.
    pub fn problems(&self) -> Vec<String> {
        self.state().problems.clone()
    }

    /// Each request, `METHOD path`.
    pub fn requests(&self) -> Vec<String> {
        self.state().requests.clone()
    }

    /// What the server saw, for a failing assertion's message.
    pub fn describe(&self) -> String {
        format!(
            "requests: {:?}\nproblems: {:?}\nvalidations: {:?}\norders: {:?}",
            self.requests(),
            self.problems(),
            self.validations(),
            self.orders()
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.inner.state.lock().unwrap()
    }
}

impl Drop for AcmeServer {
    fn drop(&mut self) {
        self.inner.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

// ---------------------------------------------------------------- HTTP

/// A request as read.
struct Request {
    method: String,
    path: String,
    headers: super::Head,
    body: Vec<u8>,
}

impl Inner {
    fn connection(self: Arc<Self>, tcp: TcpStream) {
        let _ = tcp.set_read_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_write_timeout(Some(IO_TIMEOUT));
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => self.serve(tcp),
            Some(config) => {
                let Ok(conn) = rustls::ServerConnection::new(config.clone()) else {
                    return;
                };
                self.serve(rustls::StreamOwned::new(conn, tcp));
            }
        }
    }

    /// Answers requests on one connection, kept alive, at most 1,000.
    fn serve<S: Read + Write>(self: &Arc<Self>, stream: S) {
        let mut reader = Reader::new(stream);
        for _ in 0..1000 {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(Some(head)) = reader.read_head() else {
                return;
            };
            let mut words = head.start_line.split(' ');
            let method = words.next().unwrap_or_default().to_string();
            let path = words.next().unwrap_or_default().to_string();
            let length: usize = match head.get("content-length").map(str::parse) {
                None => 0,
                Some(Ok(n)) if n <= MAX_BODY => n,
                _ => return,
            };
            let body = match head.is_chunked() {
                true => reader.read_chunked(),
                false => reader.read_exact_body(length),
            };
            let Ok(body) = body else {
                return;
            };
            if body.len() > MAX_BODY {
                return;
            }
            let close = head.has_token("connection", "close");
            let request = Request {
                method,
                path,
                headers: head,
                body,
            };
            let answer = self.answer(&request);
            let bytes = self.response_bytes(&request, answer, close);
            if reader.stream.write_all(&bytes).is_err() || reader.stream.flush().is_err() {
                return;
            }
            if close {
                return;
            }
        }
    }

    fn response_bytes(&self, request: &Request, answer: Answer, close: bool) -> Vec<u8> {
        let nonce = self.new_nonce();
        let mut head = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
        for (name, value) in &answer.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str(&format!("Replay-Nonce: {nonce}\r\n"));
        head.push_str("Cache-Control: no-store\r\n");
        head.push_str(&format!(
            "Link: <{}/directory>;rel=\"index\"\r\n",
            self.base
        ));
        head.push_str(&format!("Content-Length: {}\r\n", answer.body.len()));
        if close {
            head.push_str("Connection: close\r\n");
        }
        head.push_str("\r\n");
        let mut bytes = head.into_bytes();
        if request.method != "HEAD" {
            bytes.extend_from_slice(&answer.body);
        }
        bytes
    }

    fn new_nonce(&self) -> String {
        let nonce = random_token();
        self.state.lock().unwrap().nonces.insert(nonce.clone());
        nonce
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn account_url(&self, account: usize) -> String {
        self.url(&format!("/acct/{account}"))
    }

    fn answer(self: &Arc<Self>, request: &Request) -> Answer {
        self.state
            .lock()
            .unwrap()
            .requests
            .push(format!("{} {}", request.method, request.path));
        let result = match (request.method.as_str(), request.path.as_str()) {
            ("GET", "/directory") => Ok(self.directory()),
            ("HEAD", "/new-nonce") => Ok(Answer::json(200, String::new())),
            ("GET", "/new-nonce") => Ok(Answer::json(204, String::new())),
            ("GET", path) if path.starts_with("/renewal-info/") => {
                self.renewal_info(&path["/renewal-info/".len()..])
            }
            ("POST", _) => self.post(request),
            (_, "/directory" | "/new-nonce") => {
                Err(problem(405, "malformed", "method not allowed"))
            }
            _ => Err(problem(404, "malformed", format!("no {}", request.path))),
        };
        result.unwrap_or_else(|p| {
            (self.state.lock().unwrap().problems).push(format!("{}: {}", p.kind, p.detail));
            p.into()
        })
    }

    fn directory(&self) -> Answer {
        let renewal_info = match self.options.renewal_info {
            true => format!("\"renewalInfo\":\"{}/renewal-info/\",", self.base),
            false => String::new(),
        };
        Answer::json(
            200,
            format!(
                "{{\"newNonce\":\"{0}/new-nonce\",\"newAccount\":\"{0}/new-account\",\
                 \"newOrder\":\"{0}/new-order\",\"revokeCert\":\"{0}/revoke-cert\",\
                 \"keyChange\":\"{0}/key-change\",{renewal_info}\
                 \"meta\":{{\"termsOfService\":\"{0}/terms\"}}}}",
                self.base
            ),
        )
    }

    /// The certificate issued that RFC 9773 names `id`.
    fn issued_as(&self, state: &State, id: &str) -> Option<usize> {
        (state.issued.iter())
            .position(|c| inverso::tls::x509::renewal_id(&c.der).as_deref() == Some(id))
    }

    /// `GET renewalInfo/<id>`: the window for that certificate.
    fn renewal_info(&self, id: &str) -> Result<Answer, Problem> {
        let mut state = self.state.lock().unwrap();
        let i = (self.issued_as(&state, id))
            .ok_or_else(|| problem(404, "malformed", format!("no certificate {id}")))?;
        state.renewal_info_asked.push(i);
        let now = SystemTime::now();
        let (start, end) = (self.options.windows.get(i).copied().flatten()).unwrap_or((
            now + Duration::from_secs(60 * 86_400),
            now + Duration::from_secs(61 * 86_400),
        ));
        let date = inverso::http::date::format_rfc3339;
        let body = format!(
            "{{\"suggestedWindow\":{{\"start\":\"{}\",\"end\":\"{}\"}}}}",
            date(start),
            date(end)
        );
        Ok(Answer::json(200, body).with("Retry-After", "21600".to_string()))
    }

    // ------------------------------------------------------------ JWS

    /// Checks a POST's JWS; returns the payload, the account (a `kid`)
    /// or the key (a `jwk`, newAccount alone).
    fn verify(&self, request: &Request) -> Result<Verified, Problem> {
        let content_type = request.headers.get("content-type").unwrap_or_default();
        if content_type.split(';').next().unwrap_or_default().trim() != "application/jose+json" {
            return Err(problem(
                415,
                "malformed",
                format!("Content-Type {content_type:?}, not application/jose+json"),
            ));
        }
        let jws = json_value::parse(&request.body)
            .map_err(|e| malformed(format!("the body is not JSON: {e}")))?;
        let Value::Object(members) = &jws else {
            return Err(malformed("the JWS is not an object"));
        };
        let mut names: Vec<&str> = members.iter().map(|(n, _)| n.as_str()).collect();
        names.sort_unstable();
        if names != ["payload", "protected", "signature"] {
            return Err(malformed(format!(
                "a flattened JWS has protected, payload and signature alone, not {names:?}"
            )));
        }
        let field = |name: &str| jws.get(name).and_then(Value::as_str).unwrap_or("\u{0}");
        let (protected64, payload64, signature64) =
            (field("protected"), field("payload"), field("signature"));
        let protected_bytes =
            unb64(protected64).ok_or_else(|| malformed("protected is not base64url"))?;
        let payload = unb64(payload64).ok_or_else(|| malformed("payload is not base64url"))?;
        let signature =
            unb64(signature64).ok_or_else(|| malformed("signature is not base64url"))?;
        let protected = json_value::parse(&protected_bytes)
            .map_err(|e| malformed(format!("the protected header is not JSON: {e}")))?;
        let header = |name: &str| protected.get(name);
        if header("alg").and_then(Value::as_str) != Some("ES256") {
            return Err(problem(
                400,
                "badSignatureAlgorithm",
                format!("alg {:?}, not ES256", header("alg")),
            ));
        }
        let nonce = (header("nonce").and_then(Value::as_str))
            .ok_or_else(|| problem(400, "badNonce", "no nonce"))?;
        let url = (header("url").and_then(Value::as_str))
            .ok_or_else(|| problem(401, "unauthorized", "no url"))?;
        let is_new_account = request.path == "/new-account";
        let (key, account) = match (header("jwk"), header("kid")) {
            (Some(_), Some(_)) => return Err(malformed("both jwk and kid")),
            (None, None) => return Err(malformed("neither jwk nor kid")),
            (Some(jwk), None) => {
                if !is_new_account {
                    return Err(malformed("jwk where a kid is due (not newAccount)"));
                }
                (point_of(jwk)?, None)
            }
            (None, Some(kid)) => {
                if is_new_account {
                    return Err(malformed("kid on newAccount: a jwk is due"));
                }
                let kid = kid
                    .as_str()
                    .ok_or_else(|| malformed("kid is not a string"))?;
                let state = self.state.lock().unwrap();
                let found = (0..state.accounts.len()).find(|&i| self.account_url(i) == kid);
                let Some(i) = found else {
                    return Err(problem(
                        400,
                        "accountDoesNotExist",
                        format!("no account {kid}"),
                    ));
                };
                (state.accounts[i].key.clone(), Some(i))
            }
        };
        let signed = format!("{protected64}.{payload64}");
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, &key)
            .verify(signed.as_bytes(), &signature)
            .map_err(|_| malformed("JWS signature does not verify"))?;
        {
            let mut state = self.state.lock().unwrap();
            if !state.nonces.remove(nonce) {
                return Err(problem(
                    400,
                    "badNonce",
                    format!("nonce {nonce:?} unknown or used"),
                ));
            }
            if state.reject_next_nonce {
                state.reject_next_nonce = false;
                state.bad_nonces_sent += 1;
                return Err(problem(
                    400,
                    "badNonce",
                    "nonce refused (once, by the test)",
                ));
            }
        }
        let expected = self.url(&request.path);
        if url != expected {
            return Err(problem(
                401,
                "unauthorized",
                format!("url {url:?} is not the one requested, {expected:?}"),
            ));
        }
        Ok(Verified {
            payload,
            key,
            account,
        })
    }

    fn post(self: &Arc<Self>, request: &Request) -> Result<Answer, Problem> {
        let v = self.verify(request)?;
        let path = request.path.as_str();
        if path == "/new-account" {
            return self.new_account(&v);
        }
        let account = v.account.expect("kid checked");
        let id = |prefix: &str| -> Option<usize> { path.strip_prefix(prefix)?.parse().ok() };
        if path == "/new-order" {
            self.new_order(account, &v)
        } else if let Some(i) = id("/acct/") {
            if i != account {
                return Err(problem(403, "unauthorized", "another account"));
            }
            let state = self.state.lock().unwrap();
            Ok(Answer::json(200, account_json(&state.accounts[i])))
        } else if let Some(i) = id("/order/") {
            self.order(account, i, &v)
        } else if let Some(i) = id("/authz/") {
            self.authz(account, i, &v)
        } else if let Some(i) = id("/chall/") {
            self.challenge(account, i, &v)
        } else if let Some(i) = id("/finalize/") {
            self.finalize(account, i, &v)
        } else if let Some(i) = id("/cert/") {
            self.certificate(account, i, &v, request)
        } else {
            Err(problem(404, "malformed", format!("no {path}")))
        }
    }

    // ------------------------------------------------------------ resources

    fn new_account(&self, v: &Verified) -> Result<Answer, Problem> {
        let payload = json_value::parse(&v.payload)
            .map_err(|e| malformed(format!("newAccount payload is not JSON: {e}")))?;
        let only_existing = payload.get("onlyReturnExisting") == Some(&Value::Bool(true));
        let mut state = self.state.lock().unwrap();
        if let Some(i) = state.accounts.iter().position(|a| a.key == v.key) {
            let url = self.account_url(i);
            return Ok(Answer::json(200, account_json(&state.accounts[i])).with("Location", url));
        }
        if only_existing {
            return Err(problem(
                400,
                "accountDoesNotExist",
                "no account for this key",
            ));
        }
        if payload.get("termsOfServiceAgreed") != Some(&Value::Bool(true)) {
            return Err(malformed("termsOfServiceAgreed is not true"));
        }
        if let Some((kid, mac_key)) = &self.options.eab {
            let binding = (payload.get("externalAccountBinding"))
                .ok_or_else(|| problem(400, "externalAccountRequired", "no binding"))?;
            self.check_binding(binding, kid, mac_key, &v.key)?;
        }
        let mut contact = Vec::new();
        if let Some(list) = payload.get("contact") {
            let list = list
                .as_array()
                .ok_or_else(|| malformed("contact is not an array"))?;
            for c in list {
                let c = c.as_str().unwrap_or_default();
                if !c.starts_with("mailto:") || c.len() <= "mailto:".len() {
                    return Err(problem(
                        400,
                        "unsupportedContact",
                        format!("contact {c:?} is not mailto:"),
                    ));
                }
                contact.push(c.to_string());
            }
        }
        let account = Account {
            thumbprint: thumbprint(&v.key),
            key: v.key.clone(),
            contact,
        };
        let body = account_json(&account);
        state.accounts.push(account);
        let url = self.account_url(state.accounts.len() - 1);
        Ok(Answer::json(201, body).with("Location", url))
    }

    /// RFC 8555 §7.3.4: an HS256 JWS by `mac_key`, naming `kid` and the
    /// newAccount URL, whose payload is the account's own key.
    fn check_binding(
        &self,
        binding: &Value,
        kid: &str,
        mac_key: &[u8],
        account_key: &[u8],
    ) -> Result<(), Problem> {
        let unauthorized = |why: &str| problem(401, "unauthorized", format!("binding: {why}"));
        let part = |name: &str| (binding.get(name).and_then(Value::as_str)).unwrap_or_default();
        let (protected, payload) = (part("protected"), part("payload"));
        let header = unb64(protected)
            .and_then(|h| json_value::parse(&h).ok())
            .ok_or_else(|| unauthorized("protected is not JSON"))?;
        let field = |name: &str| header.get(name).and_then(Value::as_str);
        if field("alg") != Some("HS256") || field("kid") != Some(kid) {
            return Err(unauthorized("not HS256 by the key ID given"));
        }
        if field("url") != Some(self.url("/new-account").as_str()) {
            return Err(unauthorized("url is not newAccount's"));
        }
        let mac = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
        let signed = format!("{protected}.{payload}");
        let tag = unb64(part("signature")).unwrap_or_default();
        ring::hmac::verify(&mac, signed.as_bytes(), &tag)
            .map_err(|_| unauthorized("the MAC does not verify"))?;
        let jwk = unb64(payload)
            .and_then(|p| json_value::parse(&p).ok())
            .ok_or_else(|| unauthorized("payload is not a JWK"))?;
        match point_of(&jwk)? == account_key {
            true => Ok(()),
            false => Err(unauthorized("payload is another key than the account's")),
        }
    }

    fn new_order(&self, account: usize, v: &Verified) -> Result<Answer, Problem> {
        let payload = json_value::parse(&v.payload)
            .map_err(|e| malformed(format!("newOrder payload is not JSON: {e}")))?;
        let list = (payload.get("identifiers").and_then(Value::as_array))
            .ok_or_else(|| malformed("no identifiers"))?;
        if list.is_empty() {
            return Err(malformed("no identifiers"));
        }
        let mut identifiers = Vec::new();
        for identifier in list {
            let kind = identifier.get("type").and_then(Value::as_str);
            let value = identifier.get("value").and_then(Value::as_str);
            match (kind, value) {
                (Some("dns"), Some(name)) if !name.is_empty() => identifiers.push(name.to_string()),
                _ => {
                    return Err(problem(
                        400,
                        "rejectedIdentifier",
                        format!("identifier {identifier:?}"),
                    ))
                }
            }
        }
        let mut state = self.state.lock().unwrap();
        let order = state.orders.len();
        let mut authzs = Vec::new();
        for name in &identifiers {
            let authz = state.authzs.len();
            let mut challenges = Vec::new();
            // RFC 8555 §7.1.4: a wildcard's authorization is for the name
            // under it, and proven by dns-01 alone.
            let (name, kinds) = match name.strip_prefix("*.") {
                Some(under) => (under, &["dns-01"][..]),
                None => (name.as_str(), &["http-01", "dns-01", "tls-alpn-01"][..]),
            };
            for &kind in kinds {
                challenges.push(state.challenges.len());
                state.challenges.push(Challenge {
                    authz,
                    kind,
                    token: random_token(),
                    status: "pending",
                    error: None,
                });
            }
            state.authzs.push(Authz {
                account,
                order,
                wildcard: kinds.len() == 1,
                identifier: name.to_string(),
                status: "pending",
                challenges,
            });
            authzs.push(authz);
        }
        let replaces = (payload.get("replaces").and_then(Value::as_str)).map(String::from);
        if let Some(id) = &replaces {
            if self.issued_as(&state, id).is_none() {
                return Err(malformed(format!("replaces {id}: no such certificate")));
            }
        }
        state.orders.push(Order {
            account,
            replaces,
            identifiers,
            authzs,
            status: "pending",
            cert: None,
            error: None,
        });
        let body = self.order_json(&state, order);
        Ok(Answer::json(201, body).with("Location", self.url(&format!("/order/{order}"))))
    }

    fn order(&self, account: usize, i: usize, v: &Verified) -> Result<Answer, Problem> {
        post_as_get(v)?;
        let mut state = self.state.lock().unwrap();
        let order = state
            .orders
            .get_mut(i)
            .ok_or_else(|| malformed("no order"))?;
        if order.account != account {
            return Err(problem(403, "unauthorized", "another account's order"));
        }
        let status = order.status;
        if status == "processing" && order.cert.is_some() {
            // Issued at finalize; said to be processing once, so that a
            // client must poll the order.
            order.status = "valid";
        }
        let body = self.order_json(&state, i);
        let answer = Answer::json(200, body);
        Ok(match status {
            "processing" | "pending" => answer.with("Retry-After", self.retry_after()),
            _ => answer,
        })
    }

    fn authz(&self, account: usize, i: usize, v: &Verified) -> Result<Answer, Problem> {
        post_as_get(v)?;
        let state = self.state.lock().unwrap();
        let authz = state
            .authzs
            .get(i)
            .ok_or_else(|| malformed("no authorization"))?;
        if authz.account != account {
            return Err(problem(
                403,
                "unauthorized",
                "another account's authorization",
            ));
        }
        let answer = Answer::json(200, self.authz_json(&state, i));
        Ok(match authz.status {
            "pending" => answer.with("Retry-After", self.retry_after()),
            _ => answer,
        })
    }

    fn challenge(
        self: &Arc<Self>,
        account: usize,
        i: usize,
        v: &Verified,
    ) -> Result<Answer, Problem> {
        let mut state = self.state.lock().unwrap();
        let challenge = state
            .challenges
            .get(i)
            .ok_or_else(|| malformed("no challenge"))?;
        let authz = challenge.authz;
        if state.authzs[authz].account != account {
            return Err(problem(403, "unauthorized", "another account's challenge"));
        }
        let up = |state: &State| {
            let link = format!("<{}>;rel=\"up\"", self.url(&format!("/authz/{authz}")));
            Answer::json(200, self.challenge_json(state, i)).with("Link", link)
        };
        if v.payload.is_empty() {
            return Ok(up(&state));
        }
        let payload = json_value::parse(&v.payload)
            .map_err(|e| malformed(format!("challenge payload is not JSON: {e}")))?;
        if payload != Value::Object(Vec::new()) {
            return Err(malformed("a challenge is answered with {}"));
        }
        if state.authzs[authz].status != "pending" || state.challenges[i].status != "pending" {
            // Already answered: its state as it is.
            return Ok(up(&state));
        }
        if state.challenges[i].kind == "dns-01" {
            state.dns_posts += 1;
        }
        if state.challenges[i].kind == "dns-01" && self.options.dns.is_none() {
            state.challenges[i].status = "invalid";
            state.challenges[i].error = Some("no DNS here: dns-01 cannot pass".into());
            state.authzs[authz].status = "invalid";
            let order = state.authzs[authz].order;
            state.orders[order].status = "invalid";
            return Ok(up(&state));
        }
        state.challenges[i].status = "processing";
        let host = state.authzs[authz].identifier.clone();
        let token = state.challenges[i].token.clone();
        let expected = format!("{token}.{}", state.accounts[account].thumbprint);
        let answer = up(&state).with("Retry-After", self.retry_after());
        let kind = state.challenges[i].kind;
        drop(state);
        let inner = self.clone();
        std::thread::spawn(move || match kind {
            "tls-alpn-01" => inner.validate_by_alpn(i, &host, &expected),
            "dns-01" => inner.validate_by_dns(i, &host, &expected),
            _ => inner.validate(i, &host, &token, &expected),
        });
        Ok(answer)
    }

    /// RFC 8737: a TLS handshake with the proxy's TLS port naming `host`
    /// and offering `acme-tls/1` alone must agree on it, and give a
    /// certificate for `host` whose critical acmeIdentifier extension
    /// holds the SHA-256 of the key authorization.
    fn validate_by_alpn(self: Arc<Self>, challenge: usize, host: &str, expected: &str) {
        let lock = || self.state.lock().unwrap();
        super::wait_until(WAIT_LIMIT, || lock().proxy_tls_addr.is_some());
        let addr = lock().proxy_tls_addr;
        let found = match addr {
            Some(addr) => alpn_certificate(addr, host),
            None => Err("no proxy TLS address".to_string()),
        };
        let digest = ring::digest::digest(&ring::digest::SHA256, expected.as_bytes());
        let holds = |der: &[u8], part: &[u8]| der.windows(part.len()).any(|w| w == part);
        // id-pe-acmeIdentifier (1.3.6.1.5.5.7.1.31), critical, then an
        // OCTET STRING of the OCTET STRING of the digest.
        let oid = [
            0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x01, 0x1f, 0x01, 0x01, 0xff,
        ];
        let value = [&[0x04, 0x22, 0x04, 0x20][..], digest.as_ref()].concat();
        let (passed, body) = match &found {
            Ok(der) if !holds(der, &oid) => (false, "no critical acmeIdentifier".to_string()),
            Ok(der) if !holds(der, &value) => (false, "another key authorization".to_string()),
            Ok(der) if !holds(der, host.as_bytes()) => (false, "not for the name".to_string()),
            Ok(_) => (true, String::new()),
            Err(e) => (false, e.clone()),
        };
        self.judged(
            challenge,
            host,
            "tls-alpn-01",
            (u16::from(passed) * 200, body),
            passed,
            expected,
        );
    }

    /// RFC 8555 §8.4: a TXT record at `_acme-challenge.<host>` holding
    /// the key authorization's SHA-256, base64url.
    fn validate_by_dns(self: Arc<Self>, challenge: usize, host: &str, expected: &str) {
        let digest = ring::digest::digest(&ring::digest::SHA256, expected.as_bytes());
        let wanted = b64(digest.as_ref());
        let name = format!("_acme-challenge.{host}");
        let found = (self.options.dns.as_ref()).map_or_else(Vec::new, |dns| dns.txt(&name));
        let passed = found.contains(&wanted);
        let body = format!("TXT {found:?}");
        let status = u16::from(passed) * 200;
        self.judged(challenge, host, &name, (status, body), passed, &wanted);
    }

    fn validate(self: Arc<Self>, challenge: usize, host: &str, token: &str, expected: &str) {
        let lock = || self.state.lock().unwrap();
        super::wait_until(WAIT_LIMIT, || lock().proxy_addr.is_some());
        let addr = lock().proxy_addr;
        let addr = addr.filter(|_| !self.options.elsewhere.iter().any(|n| n == host));
        let path = format!("/.well-known/acme-challenge/{token}");
        let (status, body) = match addr.map(|addr| fetch(addr, host, &path)) {
            Some(Ok((status, body))) => (status, body),
            Some(Err(e)) => (0, format!("({e})")),
            None => (0, "(nobody at the name's address)".to_string()),
        };
        let passed = status == 200 && body.trim_end() == expected;
        self.judged(challenge, host, &path, (status, body), passed, expected);
    }

    /// Records a validation of `challenge` and what it makes of its
    /// authorization and order.
    fn judged(
        &self,
        challenge: usize,
        host: &str,
        path: &str,
        (status, body): (u16, String),
        passed: bool,
        expected: &str,
    ) {
        let mut state = self.state.lock().unwrap();
        state.validations.push(Validation {
            host: host.to_string(),
            path: path.to_string(),
            status,
            body: body.clone(),
            passed,
        });
        let authz = state.challenges[challenge].authz;
        let order = state.authzs[authz].order;
        if passed {
            state.challenges[challenge].status = "valid";
            state.authzs[authz].status = "valid";
            let all = state.orders[order].authzs.clone();
            if state.orders[order].status == "pending"
                && all.iter().all(|&a| state.authzs[a].status == "valid")
            {
                state.orders[order].status = "ready";
            }
        } else {
            let error = format!(
                "{path} with Host {host}: status {status}, body {body:?}; expected {expected:?}"
            );
            state.challenges[challenge].status = "invalid";
            state.challenges[challenge].error = Some(error.clone());
            state.authzs[authz].status = "invalid";
            state.orders[order].status = "invalid";
            state.orders[order].error = Some(error);
        }
    }

    fn finalize(&self, account: usize, i: usize, v: &Verified) -> Result<Answer, Problem> {
        let mut state = self.state.lock().unwrap();
        let order = state.orders.get(i).ok_or_else(|| malformed("no order"))?;
        if order.account != account {
            return Err(problem(403, "unauthorized", "another account's order"));
        }
        if order.status != "ready" {
            return Err(problem(
                403,
                "orderNotReady",
                format!("the order is {}, not ready", order.status),
            ));
        }
        let payload = json_value::parse(&v.payload)
            .map_err(|e| malformed(format!("finalize payload is not JSON: {e}")))?;
        let csr64 =
            (payload.get("csr").and_then(Value::as_str)).ok_or_else(|| malformed("no csr"))?;
        let csr = unb64(csr64).ok_or_else(|| problem(400, "badCSR", "csr is not base64url"))?;
        let csr = parse_csr(&csr).map_err(|e| problem(400, "badCSR", e))?;
        let mut asked = csr.names.clone();
        asked.sort();
        asked.dedup();
        let mut ordered = order.identifiers.clone();
        ordered.sort();
        ordered.dedup();
        if asked != ordered {
            return Err(problem(
                400,
                "badCSR",
                format!("the CSR names {asked:?}, the order {ordered:?}"),
            ));
        }
        if let Some(cn) = &csr.common_name {
            if !ordered.contains(cn) {
                return Err(problem(
                    400,
                    "badCSR",
                    format!("CN {cn:?} not in the order"),
                ));
            }
        }
        if csr.key == state.accounts[account].key {
            return Err(problem(400, "badCSR", "the CSR's key is the account's"));
        }
        let (not_before, not_after) = (self.options.validity.get(i).copied().flatten())
            .unwrap_or_else(|| {
                let now = SystemTime::now();
                (
                    now - Duration::from_secs(3600),
                    now + Duration::from_secs(90 * 86_400),
                )
            });
        let mut params = CertificateParams::new(csr.names.clone())
            .map_err(|e| problem(400, "badCSR", format!("names: {e}")))?;
        params
            .distinguished_name
            .push(DnType::CommonName, csr.names[0].as_str());
        params.use_authority_key_identifier_extension = true;
        params.key_usages.push(KeyUsagePurpose::DigitalSignature);
        params
            .extended_key_usages
            .push(ExtendedKeyUsagePurpose::ServerAuth);
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(rcgen::SerialNumber::from(serial));
        params.not_before = rcgen_time!(not_before);
        params.not_after = rcgen_time!(not_after);
        let key = RawKey {
            alg: csr.alg,
            key: csr.key.clone(),
        };
        let cert = params
            .signed_by(&key, &self.ca_issuer)
            .map_err(|e| problem(500, "serverInternal", format!("signing: {e}")))?;
        let issued = Issued {
            order: i,
            serial,
            der: cert.der().to_vec(),
            chain_pem: format!("{}{}", cert.pem(), self.ca_pem),
            names: csr.names,
            public_key: csr.key,
        };
        state.issued.push(issued);
        let cert_index = state.issued.len() - 1;
        let order = &mut state.orders[i];
        order.cert = Some(cert_index);
        order.status = "processing";
        let body = self.order_json(&state, i);
        Ok(Answer::json(200, body)
            .with("Location", self.url(&format!("/order/{i}")))
            .with("Retry-After", self.retry_after()))
    }

    fn certificate(
        &self,
        account: usize,
        i: usize,
        v: &Verified,
        request: &Request,
    ) -> Result<Answer, Problem> {
        post_as_get(v)?;
        let state = self.state.lock().unwrap();
        let issued = state
            .issued
            .get(i)
            .ok_or_else(|| malformed("no certificate"))?;
        let order = &state.orders[issued.order];
        if order.account != account || order.status != "valid" {
            return Err(problem(403, "unauthorized", "not a certificate of yours"));
        }
        if let Some(accept) = request.headers.get("accept") {
            let fits = accept.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t == "application/pem-certificate-chain" || t == "*/*" || t == "application/*"
            });
            if !fits {
                return Err(problem(406, "malformed", format!("Accept {accept:?}")));
            }
        }
        Ok(Answer {
            status: 200,
            headers: vec![(
                "Content-Type".into(),
                "application/pem-certificate-chain".into(),
            )],
            body: issued.chain_pem.clone().into_bytes(),
        })
    }

    fn retry_after(&self) -> String {
        self.options.retry_after.to_string()
    }

    // ------------------------------------------------------------ JSON

    fn order_json(&self, state: &State, i: usize) -> String {
        let order = &state.orders[i];
        let identifiers: Vec<String> = (order.identifiers.iter())
            .map(|n| format!("{{\"type\":\"dns\",\"value\":{}}}", json_string(n)))
            .collect();
        let authzs: Vec<String> = (order.authzs.iter())
            .map(|a| json_string(&self.url(&format!("/authz/{a}"))))
            .collect();
        let mut body = format!(
            "{{\"status\":\"{}\",\"expires\":\"2099-01-01T00:00:00Z\",\"identifiers\":[{}],\
             \"authorizations\":[{}],\"finalize\":{}",
            order.status,
            identifiers.join(","),
            authzs.join(","),
            json_string(&self.url(&format!("/finalize/{i}")))
        );
        if let (Some(cert), "valid") = (order.cert, order.status) {
            body.push_str(&format!(
                ",\"certificate\":{}",
                json_string(&self.url(&format!("/cert/{cert}")))
            ));
        }
        if let Some(error) = &order.error {
            body.push_str(&format!(
                ",\"error\":{{\"type\":\"urn:ietf:params:acme:error:unauthorized\",\"detail\":{}}}",
                json_string(error)
            ));
        }
        body.push('}');
        body
    }

    fn authz_json(&self, state: &State, i: usize) -> String {
        let authz = &state.authzs[i];
        let challenges: Vec<String> = (authz.challenges.iter())
            .map(|&c| self.challenge_json(state, c))
            .collect();
        format!(
            "{{\"identifier\":{{\"type\":\"dns\",\"value\":{}}},\"status\":\"{}\",\
             \"expires\":\"2099-01-01T00:00:00Z\",\"wildcard\":{},\"challenges\":[{}]}}",
            json_string(&authz.identifier),
            authz.status,
            authz.wildcard,
            challenges.join(",")
        )
    }

    fn challenge_json(&self, state: &State, i: usize) -> String {
        let c = &state.challenges[i];
        let mut body = format!(
            "{{\"type\":\"{}\",\"url\":{},\"status\":\"{}\",\"token\":\"{}\"",
            c.kind,
            json_string(&self.url(&format!("/chall/{i}"))),
            c.status,
            c.token
        );
        if let Some(error) = &c.error {
            body.push_str(&format!(
                ",\"error\":{{\"type\":\"urn:ietf:params:acme:error:unauthorized\",\"detail\":{}}}",
                json_string(error)
            ));
        }
        body.push('}');
        body
    }
}

fn account_json(account: &Account) -> String {
    let contact: Vec<String> = account.contact.iter().map(|c| json_string(c)).collect();
    format!(
        "{{\"status\":\"valid\",\"contact\":[{}],\"orders\":\"\"}}",
        contact.join(",")
    )
}

struct Verified {
    payload: Vec<u8>,
    /// The P-256 point that signed.
    key: Vec<u8>,
    account: Option<usize>,
}

fn post_as_get(v: &Verified) -> Result<(), Problem> {
    match v.payload.is_empty() {
        true => Ok(()),
        false => Err(malformed("a POST-as-GET has an empty payload")),
    }
}

/// The point `04 || x || y` of a JWK, which must be an EC P-256 key.
fn point_of(jwk: &Value) -> Result<Vec<u8>, Problem> {
    let get = |name: &str| jwk.get(name).and_then(Value::as_str);
    if get("kty") != Some("EC") || get("crv") != Some("P-256") {
        return Err(problem(
            400,
            "badPublicKey",
            format!("jwk {jwk:?}: not EC P-256"),
        ));
    }
    let coordinate = |name: &str| {
        get(name)
            .and_then(unb64)
            .filter(|c| c.len() == 32)
            .ok_or_else(|| problem(400, "badPublicKey", format!("jwk {name} is not 32 bytes")))
    };
    let mut point = vec![4u8];
    point.extend(coordinate("x")?);
    point.extend(coordinate("y")?);
    Ok(point)
}

/// The certificate a handshake with `addr` naming `host` and offering
/// `acme-tls/1` alone is given, once that protocol is agreed.
fn alpn_certificate(addr: SocketAddr, host: &str) -> Result<Vec<u8>, String> {
    let mut config = rustls::ClientConfig::builder_with_provider(super::pki::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyCertificate))
        .with_no_client_auth();
    config.alpn_protocols = vec![b"acme-tls/1".to_vec()];
    let name =
        rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| e.to_string())?;
    let mut tls =
        rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let mut tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT).map_err(|e| e.to_string())?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))
        .map_err(|e| e.to_string())?;
    while tls.is_handshaking() {
        tls.complete_io(&mut tcp)
            .map_err(|e| format!("handshake: {e}"))?;
    }
    if tls.alpn_protocol() != Some(b"acme-tls/1") {
        return Err(format!("ALPN agreed: {:?}", tls.alpn_protocol()));
    }
    let certificate = tls.peer_certificates().and_then(|c| c.first());
    certificate
        .map(|c| c.to_vec())
        .ok_or_else(|| "no certificate".to_string())
}

/// Takes any certificate: `tls-alpn-01`'s is self-signed.
#[derive(Debug)]
struct AnyCertificate;

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &[rustls::pki_types::CertificateDer<'_>],
        _: &rustls::pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &rustls::pki_types::CertificateDer<'_>,
        _: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        super::pki::provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// `GET path` with `Host: host` on `addr`: the status and the body.
fn fetch(addr: SocketAddr, host: &str, path: &str) -> io::Result<(u16, String)> {
    let mut tcp = TcpStream::connect_timeout(&addr, IO_TIMEOUT)?;
    tcp.set_read_timeout(Some(IO_TIMEOUT))?;
    tcp.set_write_timeout(Some(IO_TIMEOUT))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: inverso-test-acme\r\n\
         Accept: */*\r\nConnection: close\r\n\r\n"
    );
    tcp.write_all(request.as_bytes())?;
    let mut reader = Reader::new(tcp);
    let response = reader.read_response(false)?;
    let _ = reader.stream.shutdown(Shutdown::Both);
    Ok((
        response.status,
        String::from_utf8_lossy(&response.body).into_owned(),
    ))
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        415 => "Unsupported Media Type",
        _ => "Error",
    }
}

// ---------------------------------------------------------------- DER

/// A public key as the CSR gave it, for rcgen to certify.
struct RawKey {
    alg: &'static SignatureAlgorithm,
    key: Vec<u8>,
}

impl PublicKeyData for RawKey {
    fn der_bytes(&self) -> &[u8] {
        &self.key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        self.alg
    }
}

/// What the server takes of a CSR.
pub struct Csr {
    /// The subjectPublicKey bits (for EC: the uncompressed point).
    pub key: Vec<u8>,
    alg: &'static SignatureAlgorithm,
    /// The subjectAltName dNSNames, in order.
    pub names: Vec<String>,
    pub common_name: Option<String>,
}

/// One DER element: its tag, its contents, and the whole of it.
#[derive(Clone, Copy)]
struct Der<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// The first element of `input`, and what follows it.
fn der_next(input: &[u8]) -> Result<(Der<'_>, &[u8]), String> {
    let short = || "DER ends early".to_string();
    let tag = *input.first().ok_or_else(short)?;
    if tag & 0x1f == 0x1f {
        return Err("DER: multi-byte tags are not expected".into());
    }
    let first = *input.get(1).ok_or_else(short)?;
    let (length, header) = match first {
        n if n < 0x80 => (n as usize, 2),
        0x81..=0x83 => {
            let count = (first & 0x7f) as usize;
            let bytes = input.get(2..2 + count).ok_or_else(short)?;
            let length = bytes.iter().fold(0usize, |l, &b| l << 8 | b as usize);
            if bytes[0] == 0 || (count == 1 && length < 0x80) {
                return Err("DER: length not in its shortest form".into());
            }
            (length, 2 + count)
        }
        _ => return Err(format!("DER: length byte {first:#x}")),
    };
    let end = header + length;
    let whole = input.get(..end).ok_or_else(short)?;
    Ok((
        Der {
            tag,
            content: &whole[header..],
            whole,
        },
        &input[end..],
    ))
}

/// The elements inside a constructed element's contents.
fn der_children(mut content: &[u8]) -> Result<Vec<Der<'_>>, String> {
    let mut out = Vec::new();
    // Bounded: each round takes at least two bytes.
    while !content.is_empty() && out.len() < 10_000 {
        let (element, rest) = der_next(content)?;
        out.push(element);
        content = rest;
    }
    Ok(out)
}

fn expect_tag<'a>(element: Option<&Der<'a>>, tag: u8, what: &str) -> Result<Der<'a>, String> {
    match element {
        Some(e) if e.tag == tag => Ok(*e),
        Some(e) => Err(format!("{what}: tag {:#x}, not {tag:#x}", e.tag)),
        None => Err(format!("{what}: missing")),
    }
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;

const OID_EC_PUBLIC_KEY: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
const OID_P256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07];
const OID_P384: &[u8] = &[0x2b, 0x81, 0x04, 0x00, 0x22];
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
const OID_ECDSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02];
const OID_ECDSA_SHA384: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x03];
const OID_RSA_SHA256: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x0b];
const OID_EXTENSION_REQUEST: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x0e];
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11];
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];

/// Reads a PKCS#10 CSR: its key, its names, and checks its signature.
pub fn parse_csr(der: &[u8]) -> Result<Csr, String> {
    let (outer, rest) = der_next(der)?;
    if outer.tag != SEQUENCE || !rest.is_empty() {
        return Err("the CSR is not one SEQUENCE".into());
    }
    let parts = der_children(outer.content)?;
    let info = expect_tag(parts.first(), SEQUENCE, "certificationRequestInfo")?;
    let sig_alg = expect_tag(parts.get(1), SEQUENCE, "signatureAlgorithm")?;
    let signature = expect_tag(parts.get(2), BIT_STRING, "signature")?;
    let fields = der_children(info.content)?;
    expect_tag(fields.first(), 0x02, "version")?;
    let subject = expect_tag(fields.get(1), SEQUENCE, "subject")?;
    let spki = expect_tag(fields.get(2), SEQUENCE, "subjectPKInfo")?;
    let spki_parts = der_children(spki.content)?;
    let key_alg = expect_tag(spki_parts.first(), SEQUENCE, "the key's algorithm")?;
    let key_bits = expect_tag(spki_parts.get(1), BIT_STRING, "subjectPublicKey")?;
    let key = match key_bits.content.split_first() {
        Some((0, key)) if !key.is_empty() => key.to_vec(),
        _ => return Err("subjectPublicKey: unused bits or empty".into()),
    };
    let alg_parts = der_children(key_alg.content)?;
    let alg_oid = expect_tag(alg_parts.first(), OID, "the key's algorithm OID")?.content;
    let alg: &'static SignatureAlgorithm = if alg_oid == OID_EC_PUBLIC_KEY {
        let curve = expect_tag(alg_parts.get(1), OID, "the curve")?.content;
        if curve == OID_P256 {
            &rcgen::PKCS_ECDSA_P256_SHA256
        } else if curve == OID_P384 {
            &rcgen::PKCS_ECDSA_P384_SHA384
        } else {
            return Err("an EC key on a curve other than P-256 or P-384".into());
        }
    } else if alg_oid == OID_ED25519 {
        &rcgen::PKCS_ED25519
    } else if alg_oid == OID_RSA {
        &rcgen::PKCS_RSA_SHA256
    } else {
        return Err("a key of an unknown algorithm".into());
    };

    // The CSR's own signature, by its key.
    let sig_oid = expect_tag(der_children(sig_alg.content)?.first(), OID, "signature OID")?.content;
    let verifier: &dyn ring::signature::VerificationAlgorithm = match sig_oid {
        o if o == OID_ECDSA_SHA256 && alg_oid == OID_EC_PUBLIC_KEY => {
            if std::ptr::eq(alg, &rcgen::PKCS_ECDSA_P256_SHA256) {
                &ring::signature::ECDSA_P256_SHA256_ASN1
            } else {
                &ring::signature::ECDSA_P384_SHA256_ASN1
            }
        }
        o if o == OID_ECDSA_SHA384 && alg_oid == OID_EC_PUBLIC_KEY => {
            if std::ptr::eq(alg, &rcgen::PKCS_ECDSA_P256_SHA256) {
                &ring::signature::ECDSA_P256_SHA384_ASN1
            } else {
                &ring::signature::ECDSA_P384_SHA384_ASN1
            }
        }
        o if o == OID_ED25519 && alg_oid == OID_ED25519 => &ring::signature::ED25519,
        o if o == OID_RSA_SHA256 && alg_oid == OID_RSA => {
            &ring::signature::RSA_PKCS1_2048_8192_SHA256
        }
        _ => return Err("a signature algorithm that does not fit the key".into()),
    };
    let sig = match signature.content.split_first() {
        Some((0, sig)) => sig,
        _ => return Err("signature: unused bits".into()),
    };
    ring::signature::UnparsedPublicKey::new(verifier, &key)
        .verify(info.whole, sig)
        .map_err(|_| "the CSR's signature does not verify".to_string())?;

    // The subject's common name, if any.
    let mut common_name = None;
    for rdn in der_children(subject.content)? {
        for atv in der_children(rdn.content)? {
            let atv = der_children(atv.content)?;
            if atv.first().map(|o| o.content) == Some(OID_COMMON_NAME) {
                let value = atv.get(1).ok_or("CN without a value")?;
                common_name = Some(String::from_utf8_lossy(value.content).into_owned());
            }
        }
    }

    // The attributes: [0] IMPLICIT SET OF Attribute.
    let mut names = Vec::new();
    let attributes = expect_tag(fields.get(3), 0xa0, "attributes")?;
    for attribute in der_children(attributes.content)? {
        let parts = der_children(attribute.content)?;
        if expect_tag(parts.first(), OID, "attribute type")?.content != OID_EXTENSION_REQUEST {
            continue;
        }
        let values = expect_tag(parts.get(1), SET, "attribute values")?;
        for extensions in der_children(values.content)? {
            for extension in der_children(extensions.content)? {
                let parts = der_children(extension.content)?;
                if expect_tag(parts.first(), OID, "extnID")?.content != OID_SUBJECT_ALT_NAME {
                    continue;
                }
                let value = expect_tag(parts.last(), OCTET_STRING, "extnValue")?;
                let (general_names, _) = der_next(value.content)?;
                for name in der_children(general_names.content)? {
                    match name.tag {
                        0x82 => names.push(
                            String::from_utf8(name.content.to_vec())
                                .map_err(|_| "a dNSName that is not ASCII")?,
                        ),
                        tag => {
                            return Err(format!("a subjectAltName of tag {tag:#x}, not a dNSName"))
                        }
                    }
                }
            }
        }
    }
    if names.is_empty() {
        return Err("no subjectAltName dNSName".into());
    }
    Ok(Csr {
        key,
        alg,
        names,
        common_name,
    })
}
