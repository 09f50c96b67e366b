//! One certificate ordered from an ACME server (RFC 8555 §7): the
//! account made or found, an order for the names, each authorization
//! proven by the challenge the proxy takes (HTTP-01: it answers the
//! server's request for the token, see [`super::Acme::answer`];
//! TLS-ALPN-01: its TLS port gives the validation a certificate made for
//! it), the order finalized with a certificate request for a new key,
//! and the chain downloaded; and when the server suggests the
//! certificate in force be renewed (RFC 9773).

use super::http::{Answer, Client, Url};
use super::jws::{AccountKey, Signer};
use crate::json_value::{self, Value};
use std::time::{Duration, Instant, SystemTime};

/// How often a request refused for its nonce is sent again with a new
/// one (RFC 8555 §6.5: the server says `badNonce` with a fresh one).
const NONCE_RETRIES: usize = 3;

/// The longest an authorization or the order is waited for.
const MAX_WAIT: Duration = Duration::from_secs(120);

/// Between two looks at something the server is working on, unless it
/// says (`Retry-After`); at most [`MAX_POLL`] even when it says more.
const POLL: Duration = Duration::from_secs(1);
const MAX_POLL: Duration = Duration::from_secs(10);

/// Where the server takes each kind of request (its directory).
#[derive(Debug)]
pub struct Directory {
    pub new_nonce: Url,
    pub new_account: Url,
    pub new_order: Url,
    /// ACME Renewal Information (RFC 9773), when the server has it.
    pub renewal_info: Option<Url>,
}

impl Directory {
    /// The endpoints the directory document `directory` names.
    pub fn read(directory: &Value) -> Result<Directory, String> {
        let endpoint = |name: &str| {
            let text = (directory.get(name).and_then(Value::as_str))
                .ok_or_else(|| format!("the directory has no `{name}`"))?;
            Url::parse(text).map_err(|e| format!("the directory's `{name}`: {e}"))
        };
        Ok(Directory {
            new_nonce: endpoint("newNonce")?,
            new_account: endpoint("newAccount")?,
            new_order: endpoint("newOrder")?,
            renewal_info: endpoint("renewalInfo").ok(),
        })
    }
}

/// When the server suggests a certificate be renewed (RFC 9773 §4.2),
/// and when to ask again.
#[derive(Debug, PartialEq, Eq)]
pub struct Window {
    pub start: SystemTime,
    pub end: SystemTime,
    pub ask_again: Option<Duration>,
}

/// Requests to one ACME server by one account.
pub struct Session<'a> {
    client: &'a Client,
    key: &'a AccountKey,
    directory: Directory,
    nonce: Option<String>,
    /// The account's URL, once made or found.
    account: Option<String>,
}

/// A certificate's chain (PEM, as the server gave it) and the private
/// key (PEM) it was requested for.
pub struct Issued {
    pub chain_pem: String,
    pub key_pem: String,
}

/// What the proxy answers while authorizations are proven: the kind of
/// challenge it takes, a name's token published, and taken back.
pub trait Answers {
    /// The challenge's `type` (`http-01`, `tls-alpn-01`, `dns-01`).
    fn kind(&self) -> &'static str;
    fn publish(&self, name: &str, token: &str, key_authorization: String) -> Result<(), String>;
    /// Once every answer of an order is published, before the server is
    /// told to look: time for them to reach where it looks.
    fn settle(&self) {}
    fn withdraw(&self, name: &str, token: &str);
}

/// An authorization whose answer is published.
struct Pending {
    name: String,
    token: String,
    authorization: Url,
    challenge: Url,
}

/// The challenge of an authorization the proxy answers.
#[derive(Debug)]
pub struct Chosen {
    /// The name it proves, as the server says it (`a name` when it does
    /// not).
    pub name: String,
    /// base64url, so it goes into a path as it is.
    pub token: String,
    pub url: Url,
}

impl Chosen {
    /// The challenge of `kind` the authorization document
    /// `authorization` offers; `None` when it is valid already.
    pub fn read(authorization: &Value, kind: &str) -> Result<Option<Chosen>, String> {
        let name = (authorization.get("identifier"))
            .and_then(|i| i.get("value"))
            .and_then(Value::as_str)
            .unwrap_or("a name")
            .to_string();
        match status(authorization) {
            "valid" => return Ok(None),
            "pending" => {}
            other => return Err(format!("the authorization for {name} is {other}")),
        }
        let challenges = (authorization.get("challenges").and_then(Value::as_array))
            .ok_or_else(|| format!("the authorization for {name} offers no challenges"))?;
        let chosen = (challenges.iter())
            .find(|c| c.get("type").and_then(Value::as_str) == Some(kind))
            .ok_or_else(|| format!("the authorization for {name} offers no {kind} challenge"))?;
        let (Some(token), Some(challenge)) = (
            chosen.get("token").and_then(Value::as_str),
            chosen.get("url").and_then(Value::as_str),
        ) else {
            return Err(format!(
                "the {kind} challenge for {name} has no token or URL"
            ));
        };
        // base64url (RFC 8555 §8.3): nothing else goes into a path.
        if token.is_empty()
            || !(token.bytes()).all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err(format!("the {kind} token for {name} is not base64url"));
        }
        Ok(Some(Chosen {
            name,
            token: token.to_string(),
            url: parse_url(challenge)?,
        }))
    }
}

impl Window {
    /// The window the renewal information document `info` suggests,
    /// to be asked again after `ask_again` (its `Retry-After`).
    pub fn read(info: &Value, ask_again: Option<Duration>) -> Result<Window, String> {
        let window = info.get("suggestedWindow");
        let at = |name: &str| {
            (window.and_then(|w| w.get(name)).and_then(Value::as_str))
                .and_then(crate::http::date::parse_rfc3339)
                .ok_or_else(|| format!("the renewal information has no `suggestedWindow.{name}`"))
        };
        let (start, end) = (at("start")?, at("end")?);
        if end < start {
            return Err("the renewal information's window ends before it starts".into());
        }
        Ok(Window {
            start,
            end,
            ask_again,
        })
    }
}

/// What a refusal's problem document (RFC 8555 §6.7) says: its `type`
/// and `detail`, each when it is there (and the body JSON).
#[derive(Debug, Default)]
pub struct Problem {
    pub kind: Option<String>,
    pub detail: Option<String>,
}

impl Problem {
    /// What `body` says; nothing when it is not JSON.
    pub fn read(body: &[u8]) -> Problem {
        let Ok(problem) = json_value::parse(body) else {
            return Problem::default();
        };
        let text = |name: &str| {
            problem
                .get(name)
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        Problem {
            kind: text("type"),
            detail: text("detail"),
        }
    }

    /// Its detail, then its type in brackets.
    pub fn told(&self) -> String {
        format!(
            "{}{}",
            self.detail.as_deref().unwrap_or("(no detail)"),
            (self.kind.as_ref())
                .map(|k| format!(" ({k})"))
                .unwrap_or_default()
        )
    }
}

/// The authorizations the order document `order` lists.
pub fn authorizations(order: &Value) -> Result<Vec<Url>, String> {
    let authorizations = (order.get("authorizations").and_then(Value::as_array))
        .ok_or("the order lists no authorizations")?;
    let mut urls = Vec::new();
    for authorization in authorizations {
        let url = authorization
            .as_str()
            .ok_or("an authorization that is not a URL")?;
        urls.push(parse_url(url)?);
    }
    Ok(urls)
}

/// The URL `state` (an order) gives as `field`; `missing` when none.
pub fn url_field(state: &Value, field: &str, missing: &str) -> Result<Url, String> {
    let text = (state.get(field).and_then(Value::as_str)).ok_or(missing)?;
    parse_url(text)
}

impl<'a> Session<'a> {
    /// Reads the directory at `url`.
    pub fn open(client: &'a Client, key: &'a AccountKey, url: &Url) -> Result<Session<'a>, String> {
        let answer = client.ask("GET", url, None)?;
        let directory = Directory::read(&json_of(&answer, "the directory")?)?;
        Ok(Session {
            client,
            key,
            directory,
            nonce: answer.nonce,
            account: None,
        })
    }

    /// Makes the account, or finds the one of this key (the server
    /// answers 200 with its URL: RFC 8555 §7.3.1), agreeing to the
    /// server's terms of service.
    /// With `binding` (a key ID and MAC key from the CA), the account is
    /// bound to the one made on the CA's site.
    pub fn account(
        &mut self,
        email: Option<&str>,
        binding: Option<(&str, &[u8])>,
    ) -> Result<(), String> {
        let url = self.directory.new_account.clone();
        let mut payload = String::from(r#"{"termsOfServiceAgreed":true"#);
        if let Some(email) = email {
            payload.push_str(r#","contact":["#);
            crate::json::push_str(&mut payload, &format!("mailto:{email}"));
            payload.push(']');
        }
        if let Some((kid, mac_key)) = binding {
            payload.push_str(r#","externalAccountBinding":"#);
            payload.push_str(&self.key.external_binding(kid, mac_key, &url.text));
        }
        payload.push('}');
        let answer = self.post(&url, &payload)?;
        let location = answer
            .location
            .ok_or("the server made the account but gave no URL for it (`Location`)")?;
        self.account = Some(location);
        Ok(())
    }

    /// Orders a certificate for `domains`, proving each with `answers`,
    /// for a key made now. With `replaces` (the certificate renewed, as
    /// RFC 9773 §5 names it), a server with renewal information is told
    /// which one this order renews (its limits spare a renewal); a
    /// server that refuses it is asked again without.
    pub fn order(
        &mut self,
        domains: &[String],
        answers: &dyn Answers,
        replaces: Option<&str>,
    ) -> Result<Issued, String> {
        let mut identifiers = String::from(r#""identifiers":["#);
        for (i, domain) in domains.iter().enumerate() {
            if i > 0 {
                identifiers.push(',');
            }
            identifiers.push_str(r#"{"type":"dns","value":"#);
            crate::json::push_str(&mut identifiers, domain);
            identifiers.push('}');
        }
        identifiers.push(']');
        let url = self.directory.new_order.clone();
        let plain = format!("{{{identifiers}}}");
        let answer = match replaces.filter(|_| self.directory.renewal_info.is_some()) {
            Some(id) => {
                let mut with = format!(r#"{{{identifiers},"replaces":"#);
                crate::json::push_str(&mut with, id);
                with.push('}');
                self.post(&url, &with)
                    .or_else(|_| self.post(&url, &plain))?
            }
            None => self.post(&url, &plain)?,
        };
        let order_url = (answer.location.as_deref())
            .ok_or("the server made the order but gave no URL for it (`Location`)")
            .and_then(|u| Url::parse(u).map_err(|_| "the order's URL is not one"))?;
        let order = json_of(&answer, "the order")?;
        self.authorize(&authorizations(&order)?, answers)?;
        let finalize = url_field(&order, "finalize", "the order has no `finalize` URL")?;
        let (csr, key_pem) = request_for(domains)?;
        let payload = format!(r#"{{"csr":"{csr}"}}"#);
        let answer = self.post(&finalize, &payload)?;
        let order = self.wait_for(
            &order_url,
            json_of(&answer, "the order")?,
            &answer,
            "the order",
        )?;
        let certificate = url_field(
            &order,
            "certificate",
            "the order is valid but names no certificate",
        )?;
        let answer = self.post(&certificate, "")?;
        let chain_pem = String::from_utf8(answer.body)
            .map_err(|_| "the certificate is not PEM text".to_string())?;
        Ok(Issued { chain_pem, key_pem })
    }

    /// The window the server suggests renewing the certificate `id`
    /// (its [`crate::tls::x509::renewal_id`]) in; `None` from a server
    /// without renewal information.
    pub fn renewal_window(&self, id: &str) -> Result<Option<Window>, String> {
        let Some(base) = &self.directory.renewal_info else {
            return Ok(None);
        };
        let url = parse_url(&format!("{}/{id}", base.text.trim_end_matches('/')))?;
        let answer = self.client.ask("GET", &url, None)?;
        if answer.status != 200 {
            return Err(format!("{}: {}", url.text, answer.status));
        }
        let info = json_of(&answer, "the renewal information")?;
        Window::read(&info, answer.retry_after).map(Some)
    }

    /// Proves the authorizations at `urls` that are not valid already:
    /// every answer published, then (once they have settled) the server
    /// told to look at each and its verdict waited for; the answers
    /// taken back whatever it was.
    fn authorize(&mut self, urls: &[Url], answers: &dyn Answers) -> Result<(), String> {
        let mut published = Vec::new();
        let proven = (|| {
            for url in urls {
                if let Some(pending) = self.publish(url, answers)? {
                    published.push(pending);
                }
            }
            if !published.is_empty() {
                answers.settle();
            }
            for pending in &published {
                self.post(&pending.challenge, "{}")?;
                let answer = self.post(&pending.authorization, "")?;
                let first = json_of(&answer, "an authorization")?;
                let what = format!("the authorization for {}", pending.name);
                self.wait_for(&pending.authorization, first, &answer, &what)?;
            }
            Ok(())
        })();
        for pending in &published {
            answers.withdraw(&pending.name, &pending.token);
        }
        proven
    }

    /// Publishes the answer to the authorization at `url`, unless it is
    /// valid already.
    fn publish(&mut self, url: &Url, answers: &dyn Answers) -> Result<Option<Pending>, String> {
        let answer = self.post(url, "")?;
        let authorization = json_of(&answer, "an authorization")?;
        let Some(chosen) = Chosen::read(&authorization, answers.kind())? else {
            return Ok(None);
        };
        let key_authorization = self.key.key_authorization(&chosen.token);
        answers.publish(&chosen.name, &chosen.token, key_authorization)?;
        Ok(Some(Pending {
            name: chosen.name,
            token: chosen.token,
            authorization: url.clone(),
            challenge: chosen.url,
        }))
    }

    /// `first`, the state of what `url` names, looked at again until it
    /// is `valid`; `invalid` is an error that says the server's reason.
    fn wait_for(
        &mut self,
        url: &Url,
        first: Value,
        answer: &Answer,
        what: &str,
    ) -> Result<Value, String> {
        let deadline = Instant::now() + MAX_WAIT;
        let mut state = first;
        let mut retry_after = answer.retry_after;
        loop {
            match status(&state) {
                "valid" => return Ok(state),
                "invalid" => {
                    return Err(format!("{what} is invalid{}", reason(&state)));
                }
                _ if Instant::now() >= deadline => {
                    return Err(format!(
                        "{what} is still {} after {MAX_WAIT:?}",
                        status(&state)
                    ));
                }
                _ => {}
            }
            std::thread::sleep(
                retry_after
                    .unwrap_or(POLL)
                    .clamp(Duration::from_millis(100), MAX_POLL),
            );
            let answer = self.post(url, "")?;
            retry_after = answer.retry_after;
            state = json_of(&answer, what)?;
        }
    }

    /// POSTs `payload` (empty: a POST-as-GET) to `url`, signed; a 4xx
    /// or 5xx is an error saying the server's problem document. A
    /// refused nonce is tried again with the one the refusal brought.
    fn post(&mut self, url: &Url, payload: &str) -> Result<Answer, String> {
        let text = &url.text;
        for _ in 0..=NONCE_RETRIES {
            let nonce = self.fresh_nonce()?;
            let signer = match &self.account {
                Some(account) => Signer::Account(account),
                None => Signer::Key,
            };
            let body = self.key.sign(signer, &nonce, text, payload)?;
            let answer = self.client.ask("POST", url, Some(&body))?;
            self.nonce = answer.nonce.clone();
            if answer.status < 400 {
                return Ok(answer);
            }
            let problem = Problem::read(&answer.body);
            if problem.kind.as_deref() == Some("urn:ietf:params:acme:error:badNonce") {
                continue;
            }
            return Err(format!("{text}: {} {}", answer.status, problem.told()));
        }
        Err(format!(
            "{text}: the server refused {} nonces in a row",
            NONCE_RETRIES + 1
        ))
    }

    /// The nonce the last answer brought, or a new one.
    fn fresh_nonce(&mut self) -> Result<String, String> {
        if let Some(nonce) = self.nonce.take() {
            return Ok(nonce);
        }
        let url = self.directory.new_nonce.clone();
        let answer = self.client.ask("HEAD", &url, None)?;
        answer
            .nonce
            .ok_or_else(|| format!("{}: no Replay-Nonce", url.text))
    }
}

/// A certificate request (DER, base64url) for `domains`, and its new
/// private key (PEM): P-256, as the account's.
fn request_for(domains: &[String]) -> Result<(String, String), String> {
    use base64::Engine as _;
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .map_err(|e| format!("a key for the certificate: {e}"))?;
    let mut params = rcgen::CertificateParams::new(domains.to_vec())
        .map_err(|e| format!("a certificate request: {e}"))?;
    // The names go in the subject alternative names alone, as Let's
    // Encrypt reads them; a subject rcgen would fill in is none.
    params.distinguished_name = rcgen::DistinguishedName::new();
    let request =
        (params.serialize_request(&key)).map_err(|e| format!("a certificate request: {e}"))?;
    let csr = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(request.der());
    Ok((csr, key.serialize_pem()))
}

fn parse_url(text: &str) -> Result<Url, String> {
    Url::parse(text).map_err(|e| format!("the server gave a URL that is not one: {e}"))
}

fn json_of(answer: &Answer, what: &str) -> Result<Value, String> {
    json_value::parse(&answer.body).map_err(|e| format!("{what} is not JSON: {e}"))
}

pub fn status(state: &Value) -> &str {
    state
        .get("status")
        .and_then(Value::as_str)
        .unwrap_or("(no status)")
}

/// What the server said went wrong with an invalid authorization (its
/// challenges' `error`) or order (its own), after `: `.
pub fn reason(state: &Value) -> String {
    let own = state.get("error");
    let of_challenge = (state.get("challenges").and_then(Value::as_array))
        .and_then(|all| all.iter().find_map(|c| c.get("error")));
    let detail = (own.or(of_challenge))
        .and_then(|e| e.get("detail"))
        .and_then(Value::as_str);
    detail.map(|d| format!(": {d}")).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_names_the_domains_and_its_key_is_pem() {
        let (csr, key) = request_for(&["shop.test".into(), "www.shop.test".into()]).unwrap();
        use base64::Engine as _;
        let der = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(csr)
            .unwrap();
        // The names, as dNSName entries of the extension request.
        for name in [&b"shop.test"[..], b"www.shop.test"] {
            assert!(der.windows(name.len()).any(|w| w == name));
        }
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"));
    }

    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use std::io::{Read as _, Write as _};
    use std::sync::{Arc, Mutex};

    /// A request the scripted server took: what its JWS said.
    #[derive(Clone, Debug)]
    struct Took {
        method: String,
        path: String,
        payload: String,
        kid: Option<String>,
    }

    /// What the script answers: a status, more header lines, a body.
    struct Reply(u16, String, String);

    type Script = dyn Fn(&str, &Took, &[Took]) -> Reply + Send + Sync;

    /// An ACME server on 127.0.0.1 that answers as `script` (given its
    /// base URL, the request, and those before it) says. Every answer
    /// brings a fresh nonce; a POST with a nonce it did not give, or
    /// gave and took already, is refused `badNonce`, and so are the
    /// first `refuse` POSTs whatever their nonce.
    fn scripted(refuse: usize, script: Box<Script>) -> (String, Arc<Mutex<Vec<Took>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::<Took>::new()));
        let (base2, log2) = (base.clone(), log.clone());
        std::thread::spawn(move || {
            let mut given = std::collections::HashSet::new();
            let mut refused = 0;
            for (n, socket) in listener.incoming().enumerate() {
                let Ok(mut socket) = socket else { return };
                let mut got = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(at) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        break at + 4;
                    }
                    match socket.read(&mut chunk) {
                        Ok(0) | Err(_) => break 0,
                        Ok(k) => got.extend_from_slice(&chunk[..k]),
                    }
                };
                let head = String::from_utf8_lossy(&got[..head_end]).to_string();
                let length: usize = (head.lines())
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                while got.len() < head_end + length {
                    match socket.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(k) => got.extend_from_slice(&chunk[..k]),
                    }
                }
                let mut words = head.split(' ');
                let method = words.next().unwrap_or("").to_string();
                let path = words.next().unwrap_or("").to_string();
                let mut took = Took {
                    method,
                    path,
                    payload: String::new(),
                    kid: None,
                };
                let mut reply = None;
                if took.method == "POST" {
                    let jws = json_value::parse(&got[head_end..]).unwrap();
                    let part = |name: &str| {
                        let text = jws.get(name).and_then(Value::as_str).unwrap();
                        String::from_utf8(URL_SAFE_NO_PAD.decode(text).unwrap()).unwrap()
                    };
                    let header = json_value::parse(part("protected").as_bytes()).unwrap();
                    let field = |n: &str| header.get(n).and_then(Value::as_str).map(str::to_string);
                    took.kid = field("kid");
                    took.payload = part("payload");
                    let fresh = field("nonce").is_some_and(|nonce| given.remove(&nonce));
                    if !fresh || refused < refuse {
                        refused += 1;
                        reply = Some(Reply(
                            400,
                            String::new(),
                            r#"{"type":"urn:ietf:params:acme:error:badNonce","detail":"stale"}"#
                                .into(),
                        ));
                    }
                }
                let reply = reply.unwrap_or_else(|| {
                    let before = log2.lock().unwrap().clone();
                    let reply = script(&base2, &took, &before);
                    log2.lock().unwrap().push(took);
                    reply
                });
                let nonce = format!("nonce-{n}");
                given.insert(nonce.clone());
                let Reply(status, more, body) = reply;
                let answer = format!(
                    "HTTP/1.1 {status} X\r\nReplay-Nonce: {nonce}\r\n{more}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(answer.as_bytes());
            }
        });
        (base, log)
    }

    fn directory(base: &str, renewal_info: bool) -> Reply {
        let mut body = format!(
            r#"{{"newNonce":"{base}/nonce","newAccount":"{base}/account","newOrder":"{base}/order""#
        );
        if renewal_info {
            body.push_str(&format!(r#","renewalInfo":"{base}/renewal-info/""#));
        }
        body.push('}');
        Reply(200, String::new(), body)
    }

    fn client() -> Client {
        Client {
            tls: crate::tls::backends::default_client_config(),
            timeout: Duration::from_secs(10),
        }
    }

    /// Tokens published and withdrawn, in order.
    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl Answers for Recorded {
        fn kind(&self) -> &'static str {
            "http-01"
        }
        fn publish(
            &self,
            name: &str,
            token: &str,
            key_authorization: String,
        ) -> Result<(), String> {
            (self.0.lock().unwrap()).push(format!("+{name} {token} {key_authorization}"));
            Ok(())
        }
        fn withdraw(&self, name: &str, token: &str) {
            self.0.lock().unwrap().push(format!("-{name} {token}"));
        }
    }

    const PEM: &str = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";

    /// A server that takes an account, an order for two names (the first
    /// authorized already, the second proven with `token`, processing
    /// once, then `verdict`), and issues [`PEM`].
    fn ca(token: &'static str, verdict: &'static str) -> Box<Script> {
        Box::new(move |base, took, before| {
            let posted = |path: &str| before.iter().filter(|t| t.path == path).count();
            let json = |status: u16, more: String, body: String| Reply(status, more, body);
            let retry = "Retry-After: 0\r\n".to_string();
            match (took.method.as_str(), took.path.as_str()) {
                ("GET", "/dir") => directory(base, true),
                ("HEAD", "/nonce") => Reply(200, String::new(), String::new()),
                ("POST", "/account") => {
                    json(201, format!("Location: {base}/acct/1\r\n"), "{}".into())
                }
                ("POST", "/order") => json(
                    201,
                    format!("Location: {base}/order/1\r\n"),
                    format!(
                        r#"{{"status":"pending","authorizations":["{base}/authz/a","{base}/authz/b"],"finalize":"{base}/order/1/finalize"}}"#
                    ),
                ),
                ("POST", "/authz/a") => json(200, String::new(), r#"{"status":"valid"}"#.into()),
                ("POST", "/authz/b") => {
                    let status = match (posted("/chall/b"), posted("/authz/b")) {
                        (0, _) => "pending",
                        (_, 1) => "processing",
                        _ => verdict,
                    };
                    json(
                        200,
                        retry,
                        format!(
                            r#"{{"status":"{status}","identifier":{{"type":"dns","value":"b.test"}},"challenges":[{{"type":"dns-01","url":"{base}/chall/dns","token":"dns"}},{{"type":"http-01","url":"{base}/chall/b","token":"{token}","error":{{"detail":"got 404"}}}}]}}"#
                        ),
                    )
                }
                ("POST", "/chall/b") => {
                    json(200, String::new(), r#"{"status":"processing"}"#.into())
                }
                ("POST", "/order/1/finalize") => {
                    json(200, retry, r#"{"status":"processing"}"#.into())
                }
                ("POST", "/order/1") => json(
                    200,
                    String::new(),
                    format!(r#"{{"status":"valid","certificate":"{base}/cert/1"}}"#),
                ),
                ("POST", "/cert/1") => Reply(200, String::new(), PEM.into()),
                _ => json(404, String::new(), r#"{"detail":"no such thing"}"#.into()),
            }
        })
    }

    fn new_key() -> AccountKey {
        AccountKey::from_pkcs8(&AccountKey::generate().unwrap()).unwrap()
    }

    #[test]
    fn a_certificate_is_ordered_proven_and_downloaded() {
        // The first POST is refused for its nonce: sent again, it goes through.
        let (base, log) = scripted(1, ca("tok_1-A", "valid"));
        let (client, key) = (client(), new_key());
        let mut session =
            Session::open(&client, &key, &Url::parse(&format!("{base}/dir")).unwrap()).unwrap();
        session
            .account(Some("ops@shop.test"), Some(("kid-1", b"mac")))
            .unwrap();
        assert_eq!(
            session.account.as_deref(),
            Some(format!("{base}/acct/1").as_str())
        );
        let answers = Recorded::default();
        let domains = ["a.test".to_string(), "b.test".to_string()];
        let issued = session.order(&domains, &answers, Some("AAA.BBB")).unwrap();
        assert_eq!(issued.chain_pem, PEM);
        assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let keyauth = key.key_authorization("tok_1-A");
        assert_eq!(
            *answers.0.lock().unwrap(),
            [
                format!("+b.test tok_1-A {keyauth}"),
                "-b.test tok_1-A".to_string()
            ]
        );
        let log = log.lock().unwrap();
        let account = &log.iter().find(|t| t.path == "/account").unwrap();
        assert!(account.kid.is_none(), "a new account names its key");
        assert!(
            account
                .payload
                .contains(r#""contact":["mailto:ops@shop.test"]"#),
            "{}",
            account.payload
        );
        assert!(
            account.payload.contains(r#""externalAccountBinding":{"#),
            "{}",
            account.payload
        );
        let order = log.iter().find(|t| t.path == "/order").unwrap();
        assert_eq!(
            order.payload,
            r#"{"identifiers":[{"type":"dns","value":"a.test"},{"type":"dns","value":"b.test"}],"replaces":"AAA.BBB"}"#
        );
        let posts_after = log
            .iter()
            .filter(|t| t.method == "POST" && t.path != "/account");
        for took in posts_after {
            assert_eq!(
                took.kid.as_deref(),
                Some(format!("{base}/acct/1").as_str()),
                "{}",
                took.path
            );
        }
        assert!(log
            .iter()
            .any(|t| t.path == "/chall/b" && t.payload == "{}"));
        let finalize = log.iter().find(|t| t.path == "/order/1/finalize").unwrap();
        assert!(
            finalize.payload.starts_with(r#"{"csr":""#),
            "{}",
            finalize.payload
        );
        // The dns-01 challenge was left alone.
        assert!(!log.iter().any(|t| t.path == "/chall/dns"));
    }

    #[test]
    fn an_invalid_authorization_says_why_and_its_token_is_withdrawn() {
        let (base, _) = scripted(0, ca("tok", "invalid"));
        let (client, key) = (client(), new_key());
        let mut session =
            Session::open(&client, &key, &Url::parse(&format!("{base}/dir")).unwrap()).unwrap();
        session.account(None, None).unwrap();
        let answers = Recorded::default();
        let e = (session.order(&["a.test".into(), "b.test".into()], &answers, None))
            .err()
            .unwrap();
        assert!(e.contains("b.test is invalid: got 404"), "{e}");
        assert_eq!(answers.0.lock().unwrap().last().unwrap(), "-b.test tok");
    }

    #[test]
    fn a_token_that_is_not_base64url_is_not_published() {
        for token in ["../../etc", "a.b", ""] {
            let (base, _) = scripted(0, ca(token, "valid"));
            let (client, key) = (client(), new_key());
            let mut session =
                Session::open(&client, &key, &Url::parse(&format!("{base}/dir")).unwrap()).unwrap();
            session.account(None, None).unwrap();
            let answers = Recorded::default();
            let e = (session.order(&["b.test".into()], &answers, None))
                .err()
                .unwrap();
            assert!(e.contains("not base64url"), "{token}: {e}");
            assert!(answers.0.lock().unwrap().is_empty(), "{token}");
        }
    }

    #[test]
    fn a_refusal_says_the_servers_problem_and_nonces_are_retried_a_few_times() {
        let (base, log) = scripted(0, ca("tok", "valid"));
        let (client, key) = (client(), new_key());
        let url = Url::parse(&format!("{base}/dir")).unwrap();
        let mut session = Session::open(&client, &key, &url).unwrap();
        let e = session
            .post(&parse_url(&format!("{base}/nowhere")).unwrap(), "")
            .unwrap_err();
        assert!(e.ends_with(": 404 no such thing"), "{e}");
        assert_eq!(log.lock().unwrap().len(), 2, "asked once");
        let (base, _) = scripted(4, ca("tok", "valid"));
        let url = Url::parse(&format!("{base}/dir")).unwrap();
        let mut session = Session::open(&client, &key, &url).unwrap();
        let e = session.account(None, None).unwrap_err();
        assert!(e.contains("refused 4 nonces in a row"), "{e}");
    }

    #[test]
    fn the_renewal_window_is_read_and_checked() {
        let (base, _) = scripted(
            0,
            Box::new(|base, took, _| {
                let window = |start: &str, end: &str| {
                    let body =
                        format!(r#"{{"suggestedWindow":{{"start":"{start}","end":"{end}"}}}}"#);
                    Reply(200, "Retry-After: 21600\r\n".into(), body)
                };
                match took.path.as_str() {
                    "/dir" => directory(base, true),
                    "/renewal-info/due" => window("2025-01-02T00:00:00Z", "2025-01-03T00:00:00Z"),
                    "/renewal-info/now" => window("2025-01-02T00:00:00Z", "2025-01-02T00:00:00Z"),
                    "/renewal-info/backwards" => {
                        window("2025-01-03T00:00:00Z", "2025-01-02T00:00:00Z")
                    }
                    _ => Reply(404, String::new(), "{}".into()),
                }
            }),
        );
        let (client, key) = (client(), new_key());
        let session =
            Session::open(&client, &key, &Url::parse(&format!("{base}/dir")).unwrap()).unwrap();
        let at = |secs: u64| SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        assert_eq!(
            session.renewal_window("due").unwrap(),
            Some(Window {
                start: at(1_735_776_000),
                end: at(1_735_862_400),
                ask_again: Some(Duration::from_secs(21600)),
            })
        );
        let now = session.renewal_window("now").unwrap().unwrap();
        assert_eq!((now.start, now.end), (at(1_735_776_000), at(1_735_776_000)));
        assert!(session
            .renewal_window("backwards")
            .unwrap_err()
            .contains("ends before"));
        assert!(session.renewal_window("gone").unwrap_err().contains("404"));
    }

    #[test]
    fn a_server_without_renewal_information_suggests_no_window() {
        let (base, log) = scripted(0, Box::new(|base, _, _| directory(base, false)));
        let (client, key) = (client(), new_key());
        let session =
            Session::open(&client, &key, &Url::parse(&format!("{base}/dir")).unwrap()).unwrap();
        assert_eq!(session.renewal_window("due").unwrap(), None);
        assert_eq!(
            log.lock().unwrap().len(),
            1,
            "the directory alone was asked"
        );
    }

    #[test]
    fn an_invalid_state_says_the_servers_reason() {
        let state = json_value::parse(
            br#"{"status":"invalid","challenges":[{"type":"http-01","error":{"detail":"got 404"}}]}"#,
        )
        .unwrap();
        assert_eq!(reason(&state), ": got 404");
        let state =
            json_value::parse(br#"{"status":"invalid","error":{"detail":"bad CSR"}}"#).unwrap();
        assert_eq!(reason(&state), ": bad CSR");
        let state = json_value::parse(br#"{"status":"invalid"}"#).unwrap();
        assert_eq!(reason(&state), "");
    }
}
