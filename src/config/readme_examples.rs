//! The README's configuration examples and key table, and the shipped
//! proxy.conf's commented examples, held to what the loader takes: an
//! example a reader copies must load as `inverso check` loads it, and
//! the table must name every key the loader knows, and no other.
//!
//! An example is found by its content, not by a tag: a fenced block of
//! the README (or a run of commented lines of proxy.conf) in which a line
//! is `key = value` with a key such as the loader reads (`max_fails`,
//! `route./api/ if method GET`). Every other line of it must be one too,
//! or a comment.

use super::suggest::FILE_ONLY;
use super::{Config, ConfigError, FieldFamily, Loader, KEYS, POOL_KEYS};
use std::collections::BTreeSet;

const README: &str = include_str!("../../README.md");
const SHIPPED: &str = include_str!("../../proxy.conf");

/// What a file an example names is made as, for the example to load:
/// the loader reads them all (users, certificates, error pages) or opens
/// them (a `files` route's directory) at load, as `check` does.
#[derive(Clone, Copy)]
enum Made {
    /// A directory with an `index.html`, which a `fallback=` may name.
    Dir,
    Users,
    /// A server certificate followed by its authority's: certbot's
    /// `fullchain.pem`.
    Chain,
    /// The key of [`Made::Chain`]'s certificate: certbot's `privkey.pem`.
    Key,
    /// Another server certificate, with its key in the same file.
    ChainAndKey,
    /// The authority that signed the certificates.
    Ca,
    /// A revocation list of that authority's, revoking none.
    Crl,
    /// A JWKS of one HMAC key, as `auth_jwt_key_file` reads.
    Jwks,
    /// A configuration file an `include` reads, with a secret in it.
    Conf,
    /// A list of address blocks as a feed publishes it.
    Blocks,
    /// A MaxMind DB country database of one network.
    Mmdb,
}

/// Every path an example names, and what is made in its place.
const FILES: &[(&str, Made)] = &[
    ("/etc/inverso/htpasswd", Made::Users),
    ("/etc/inverso/jwks.json", Made::Jwks),
    (
        "/etc/letsencrypt/live/shop.example/fullchain.pem",
        Made::Chain,
    ),
    ("/etc/letsencrypt/live/shop.example/privkey.pem", Made::Key),
    ("/etc/inverso/other-sites.pem", Made::ChainAndKey),
    ("/etc/inverso/other.pem", Made::ChainAndKey),
    ("/etc/inverso/clients-ca.pem", Made::Ca),
    ("/etc/inverso/clients-ca.crl", Made::Crl),
    ("/etc/inverso/internal-ca.pem", Made::Ca),
    ("/srv/shop/assets", Made::Dir),
    ("/srv/shop/build", Made::Dir),
    ("/srv/shop/public", Made::Dir),
    ("/var/www/app/public", Made::Dir),
    ("/srv/spa/dist", Made::Dir),
    ("/srv/downloads", Made::Dir),
    ("/srv/app/private", Made::Dir),
    ("/var/lib/acme/challenges", Made::Dir),
    ("/run/secrets/inverso.conf", Made::Conf),
    ("/etc/inverso/drop.txt", Made::Blocks),
    ("/usr/share/GeoIP/GeoLite2-Country.mmdb", Made::Mmdb),
];

/// Backend names the examples use, which resolve nowhere but where they
/// are meant to: each is read as `localhost` (on a port of its own, so
/// that two names stay two targets).
const NAMES: &[(&str, &str)] = &[
    ("app1.internal:8443", "localhost:8443"),
    ("app2.internal:8443", "localhost:8444"),
    ("id.example.com:443", "localhost:8445"),
    // Consul's DNS is not there to ask: a name takes its place.
    ("srv:_http._tcp.web.service.consul", "localhost:8446"),
    // A Compose service's name, which may or may not resolve.
    ("app:8000", "localhost:8447"),
];

/// The environment variables the examples' `{$NAME}`s read, as a
/// container's settings would give them.
const ENVIRONMENT: &[(&str, &str)] = &[("APP_HOST", "192.0.2.10"), ("APP_HOST_2", "192.0.2.11")];

/// Keys an example leaves out because the text around it has them:
/// `(the document, a line of the example, the keys added, why)`.
const CONTEXT: &[(&str, &str, &str, &str)] = &[
    (
        "README.md",
        "route./api/ if method POST,PUT,PATCH,DELETE = primary",
        "pool.api = 127.0.0.1:2\npool.canary = 127.0.0.1:3\npool.primary = 127.0.0.1:4\n\
         pool.sockets = 127.0.0.1:5\npool.admin = 127.0.0.1:6\npool.next = 127.0.0.1:7\n\
         pool.assets = 127.0.0.1:8\n",
        "routes with conditions, in a list: the pools they name are the section's",
    ),
    (
        "README.md",
        "tls_verify_client = on",
        "tls_port = 443\ntls_certificates = /etc/inverso/other-sites.pem\n",
        "clients show certificates on tls_port, which the section before sets up",
    ),
    (
        "proxy.conf",
        "route./ if header Upgrade websocket = sockets",
        "pool.canary = 127.0.0.1:3\npool.sockets = 127.0.0.1:5\npool.admin = 127.0.0.1:6\n\
         pool.next = 127.0.0.1:7\npool.assets = 127.0.0.1:8\n",
        "routes with conditions: the pools they name are the README's",
    ),
    (
        "proxy.conf",
        "tls_ciphers = ECDHE-ECDSA-AES256-GCM-SHA384:TLS_AES_256_GCM_SHA384",
        "tls_port = 443\ntls_certificates = /etc/inverso/other-sites.pem\n",
        "the suites and groups offered on tls_port, which the lines before set up",
    ),
    (
        "proxy.conf",
        "route./ = files /srv/shop/public fallback=app",
        "pool.app = 127.0.0.1:8000\n",
        "`files` routes: the pool they fall back to is the README's",
    ),
    (
        "proxy.conf",
        "targets = unix:/run/app.sock, 10.0.0.5:8000 weight=2",
        "balance = least_conn\n",
        "weights: the comment above the example says `with balance = least_conn`",
    ),
    (
        "proxy.conf",
        "auth_request_redirect = /oauth2/start?rd=$scheme://$host$request_uri",
        "pool.authelia = 127.0.0.1:9091\nauth_request = authelia /api/authz/forward-auth\n",
        "where auth_request's refusals go: the service is the example's above",
    ),
    (
        "README.md",
        "pool.api.auth_jwt_key_request = idp /realms/shop/protocol/openid-connect/certs",
        "pool.api = 10.0.0.9:8080\nroute./api/ = api\npool.api.auth_jwt = api\n",
        "keys fetched for the pool of the section's first example",
    ),
    (
        "README.md",
        "pool.api.auth_jwt_key_request = idp /realms/shop/.well-known/openid-configuration",
        "pool.api = 10.0.0.9:8080\nroute./api/ = api\npool.api.auth_jwt = api\n",
        "keys found from the discovery document for the pool of the section's first example",
    ),
    (
        "proxy.conf",
        "auth_jwt_key_request = idp /realms/shop/protocol/openid-connect/certs",
        "auth_jwt = api\n",
        "keys fetched in place of the file of the example above",
    ),
    (
        "proxy.conf",
        "auth_jwt_key_request = idp /realms/shop/.well-known/openid-configuration",
        "auth_jwt = api\npool.idp = id.example.com:443 tls\n",
        "keys found from the discovery document of the provider of the example above",
    ),
    (
        "README.md",
        "pool.api.auth_jwt_require = scope=orders:read, realm_access.roles=admin|auditor",
        "pool.api = 10.0.0.9:8080\nroute./api/ = api\npool.api.auth_jwt = api\n\
         pool.api.auth_jwt_key_file = /etc/inverso/jwks.json\n",
        "claims required of the tokens of the section's first example",
    ),
    (
        "proxy.conf",
        "auth_jwt_require = scope=orders:read, realm_access.roles=admin|auditor",
        "auth_jwt = api\nauth_jwt_key_file = /etc/inverso/jwks.json\n",
        "claims required of the tokens the keys above verify",
    ),
];

/// Examples that show a configuration refused, on purpose: `(a line of
/// the example, the error it must give)`. None today.
const REFUSED: &[(&str, &str)] = &[];

/// A fenced block of a document: the line of its opening fence, its
/// info string, and its lines.
struct Block<'a> {
    line: usize,
    info: &'a str,
    lines: Vec<&'a str>,
}

fn fenced_blocks(doc: &str) -> Vec<Block<'_>> {
    let mut blocks = Vec::new();
    let mut open: Option<(&str, Block)> = None;
    for (index, raw) in doc.lines().enumerate() {
        let trimmed = raw.trim_start();
        if let Some((fence, block)) = &mut open {
            if trimmed.starts_with(*fence) {
                blocks.extend(open.take().map(|(_, b)| b));
            } else {
                block.lines.push(raw);
            }
            continue;
        }
        let fence_len = trimmed.bytes().take_while(|&b| b == b'`').count();
        if fence_len >= 3 {
            let block = Block {
                line: index + 1,
                info: trimmed[fence_len..].trim(),
                lines: Vec::new(),
            };
            open = Some((&trimmed[..fence_len], block));
        }
    }
    assert!(open.is_none(), "a fenced block is never closed");
    blocks
}

/// The runs of commented lines of proxy.conf that are settings, each
/// with its first line, the `#` taken off: examples, indented
/// (`#   pool.api = ...`), and other values of a key (`# tls_port = 443`).
fn commented_examples(conf: &str) -> Vec<Block<'_>> {
    fn setting(line: &str) -> Option<&str> {
        let key = config_key(line)?;
        // Prose may hold a `key=value` of its own (`# max_fails=N and ...`).
        let spaced = line.split_once('=').is_some_and(|(k, _)| k.ends_with(' '));
        let example = line.starts_with("   ") || KEYS.iter().any(|k| k.name == key);
        (spaced && example).then_some(line)
    }
    let mut runs: Vec<Block> = Vec::new();
    let mut last = None;
    for (index, raw) in conf.lines().enumerate() {
        let Some(line) = raw.strip_prefix('#').and_then(setting) else {
            continue;
        };
        match runs.last_mut() {
            Some(run) if last == Some(index) => run.lines.push(line),
            _ => runs.push(Block {
                line: index + 1,
                info: "",
                lines: vec![line],
            }),
        }
        last = Some(index + 1);
    }
    runs
}

/// The key of a `key = value` line whose key reads as a configuration
/// key: a lower-case name (`max_fails`), or a family's name, a dot and
/// whatever the family takes after it (`route./ if share 5%`).
fn config_key(line: &str) -> Option<&str> {
    let content = line.split_once('#').map_or(line, |(before, _)| before);
    let key = content.split_once('=')?.0.trim();
    let (head, rest) = key.split_once('.').unwrap_or((key, ""));
    let named = head.starts_with(|c: char| c.is_ascii_lowercase())
        && (head.bytes()).all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    let whole = !rest.is_empty() || !key.contains(char::is_whitespace);
    (named && whole).then_some(key)
}

fn comment_or_blank(line: &str) -> bool {
    let line = line.trim();
    line.is_empty() || line.starts_with('#')
}

/// The files of [`FILES`], made in a directory of their own (removed
/// with it).
struct Fixtures {
    dir: tempfile::TempDir,
}

impl Fixtures {
    fn new() -> Fixtures {
        let dir = tempfile::tempdir().unwrap();
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        (ca_params.distinguished_name).push(rcgen::DnType::CommonName, "examples CA");
        ca_params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        let ca = ca_params.self_signed(&ca_key).unwrap().pem();
        let issuer = rcgen::Issuer::new(ca_params, ca_key);
        let leaf = |name: &str| {
            let key = rcgen::KeyPair::generate().unwrap();
            let params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
            let cert = params.signed_by(&key, &issuer).unwrap();
            (cert.pem(), key.serialize_pem())
        };
        let (shop, shop_key) = leaf("shop.example");
        let (other, other_key) = leaf("other.example");
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2999, 1, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: Vec::new(),
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        };
        let crl = crl.signed_by(&issuer).unwrap().pem().unwrap();
        let users = format!("ann:{}\n", bcrypt::hash("secret", 4).unwrap());
        let fixtures = Fixtures { dir };
        for (path, made) in FILES {
            let at = fixtures.path(path);
            let text = match made {
                Made::Dir => {
                    std::fs::create_dir(&at).unwrap();
                    std::fs::write(at.join("index.html"), "<p>index</p>\n").unwrap();
                    continue;
                }
                Made::Mmdb => {
                    use crate::geoip::writer::{country_record, Writer};
                    let mut db = Writer::new(6, 24);
                    let record = db.data(&country_record(Some("DE"), None));
                    db.insert("192.0.2.0/24", record);
                    std::fs::write(&at, db.finish("GeoLite2-Country")).unwrap();
                    continue;
                }
                Made::Users => users.clone(),
                Made::Chain => format!("{shop}{ca}"),
                Made::Key => shop_key.clone(),
                Made::ChainAndKey => format!("{other}{other_key}"),
                Made::Ca => ca.clone(),
                Made::Crl => crl.clone(),
                Made::Conf => "secure_link_secret = s3cret\n".to_string(),
                Made::Blocks => "; DROP\n192.0.2.0/24 ; SBL1\n".to_string(),
                Made::Jwks => {
                    r#"{"keys":[{"kty":"oct","k":"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY"}]}"#
                        .to_string()
                }
            };
            std::fs::write(&at, text).unwrap();
        }
        fixtures
    }

    /// Where the file an example names at `path` is made.
    fn path(&self, path: &str) -> std::path::PathBuf {
        self.dir
            .path()
            .join(path.trim_start_matches('/').replace('/', "_"))
    }
}

/// Which entries of the tables above the examples used: one left unused
/// is stale.
#[derive(Default)]
struct Used {
    files: BTreeSet<&'static str>,
    names: BTreeSet<&'static str>,
    environment: BTreeSet<&'static str>,
    context: BTreeSet<&'static str>,
    refused: BTreeSet<&'static str>,
}

/// `text` built as proxy.conf, with the variables of [`ENVIRONMENT`].
fn build(text: &str) -> Result<Config, ConfigError> {
    let environment = ENVIRONMENT
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()));
    Loader::new()
        .variables(environment)
        .file("proxy.conf", text)?
        .build()
}

/// Loads one example as `check` would, with what it needs added; `Err`
/// says what went wrong.
fn load(fixtures: &Fixtures, doc: &str, lines: &[&str], used: &mut Used) -> Result<(), String> {
    if let Some(line) = lines
        .iter()
        .find(|l| !comment_or_blank(l) && config_key(l).is_none())
    {
        return Err(format!("not `key = value`: `{}`", line.trim()));
    }
    let mut text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let has = |line: &str| lines.iter().any(|l| l.trim() == line);
    for (_, line, added, _why) in CONTEXT.iter().filter(|c| c.0 == doc) {
        if has(line) {
            text.push_str(added);
            used.context.insert(line);
        }
    }
    if !lines.iter().any(|l| config_key(l) == Some("targets")) {
        text.push_str("targets = 127.0.0.1:1\n");
    }
    // Longest first: no path is replaced inside a longer one.
    let mut files: Vec<&(&str, Made)> = FILES.iter().collect();
    files.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    for (path, _) in files {
        if text.contains(path) {
            let made = fixtures.path(path);
            text = text.replace(path, made.to_str().unwrap());
            used.files.insert(path);
        }
    }
    for (name, instead) in NAMES {
        if text.contains(name) {
            text = text.replace(name, instead);
            used.names.insert(name);
        }
    }
    for (name, _) in ENVIRONMENT {
        if text.contains(&format!("{{${name}}}")) || text.contains(&format!("{{${name}:")) {
            used.environment.insert(name);
        }
    }
    let refused = REFUSED.iter().find(|(line, _)| has(line));
    match (build(&text), refused) {
        (Ok(_), None) => Ok(()),
        (Err(e), None) => Err(format!("{e}\n{text}")),
        (Ok(_), Some((_, says))) => Err(format!("loads, but should be refused with `{says}`")),
        (Err(e), Some((line, says))) => {
            used.refused.insert(line);
            (e.to_string().contains(says))
                .then_some(())
                .ok_or_else(|| format!("refused with `{e}`, not `{says}`"))
        }
    }
}

#[test]
fn the_configuration_examples_of_the_readme_and_proxy_conf_load() {
    let fixtures = Fixtures::new();
    let mut used = Used::default();
    let mut failures = Vec::new();
    let mut loaded = 0;
    let readme = fenced_blocks(README)
        .into_iter()
        .filter(|b| b.info.is_empty());
    let readme = readme.map(|b| ("README.md", b));
    let shipped = commented_examples(SHIPPED).into_iter();
    for (doc, block) in readme.chain(shipped.map(|b| ("proxy.conf", b))) {
        if !block.lines.iter().any(|l| config_key(l).is_some()) {
            continue;
        }
        match load(&fixtures, doc, &block.lines, &mut used) {
            Ok(()) => loaded += 1,
            Err(e) => failures.push(format!("{doc}:{}: {e}", block.line)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    // A count that falls tells of examples no longer found.
    assert!(loaded >= 40, "only {loaded} examples found");
    let stale = |all: Vec<&'static str>, used: &BTreeSet<&'static str>| -> Vec<&'static str> {
        all.into_iter().filter(|e| !used.contains(e)).collect()
    };
    let none: [&str; 0] = [];
    assert_eq!(
        stale(FILES.iter().map(|f| f.0).collect(), &used.files),
        none
    );
    assert_eq!(
        stale(NAMES.iter().map(|n| n.0).collect(), &used.names),
        none
    );
    assert_eq!(
        stale(ENVIRONMENT.iter().map(|e| e.0).collect(), &used.environment),
        none
    );
    assert_eq!(
        stale(CONTEXT.iter().map(|c| c.1).collect(), &used.context),
        none
    );
    assert_eq!(
        stale(REFUSED.iter().map(|r| r.0).collect(), &used.refused),
        none
    );
}

/// The rows of the README's table of keys: first cell, second, last.
fn key_table() -> Vec<(&'static str, &'static str, &'static str)> {
    let section = README.split_once("\n## Configuration\n").unwrap().1;
    let table = section
        .split_once("\n| key | meaning | default |\n")
        .unwrap()
        .1;
    let rows = table.lines().skip(1).take_while(|l| l.starts_with('|'));
    rows.map(|row| {
        let cells: Vec<&str> = row.trim_matches('|').split(" | ").map(str::trim).collect();
        let key = cells[0].trim_matches('`');
        (key, cells[1], *cells.last().unwrap())
    })
    .collect()
}

#[test]
fn the_readme_table_names_every_key_with_its_default() {
    let rows = key_table();
    let families: BTreeSet<&str> = (FILE_ONLY.iter().copied())
        .chain(FieldFamily::ALL.iter().map(|f| f.name()))
        .collect();
    let mut problems = Vec::new();
    let mut listed = BTreeSet::new();
    for (key, _, default) in &rows {
        if key.contains('<') {
            let family = key.split_once('.').map_or(*key, |(f, _)| f);
            if !families.contains(family) {
                problems.push(format!("`{key}`: no such family of keys"));
            }
            listed.insert(family);
            continue;
        }
        let Some(spec) = KEYS.iter().find(|k| k.name == *key) else {
            problems.push(format!("`{key}`: not a key"));
            continue;
        };
        listed.insert(spec.name);
        // `(empty)`, or the value, maybe followed by a word on it.
        let written = match default.trim_matches('`') {
            "(empty)" => "",
            "required" if spec.name == "targets" => "",
            d => d.split_once(" (").map_or(d, |(value, _)| value),
        };
        if written != spec.default {
            problems.push(format!(
                "`{key}`: the table says the default is `{default}`, the loader `{}`",
                spec.default
            ));
        }
    }
    let known = (KEYS.iter().map(|k| k.name)).chain(families.iter().copied());
    for key in known.filter(|k| !listed.contains(k)) {
        problems.push(format!("`{key}`: not in the table"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_readme_names_every_key_a_pool_sets() {
    let rows = key_table();
    let (_, meaning, _) = (rows.iter())
        .find(|(key, _, _)| *key == "pool.<name>.<key>")
        .unwrap();
    let mut named = BTreeSet::new();
    for quoted in meaning.split('`').skip(1).step_by(2) {
        if quoted == "health_check_*" {
            named.extend((POOL_KEYS.iter().copied()).filter(|k| k.starts_with("health_check_")));
        } else if FieldFamily::of(quoted).is_none() {
            named.insert(quoted);
        }
    }
    let known: BTreeSet<&str> = POOL_KEYS.iter().copied().collect();
    let unknown: Vec<_> = named.difference(&known).collect();
    let missing: Vec<_> = known.difference(&named).collect();
    assert!(
        unknown.is_empty() && missing.is_empty(),
        "in `pool.<name>.<key>` but not a pool's key: {unknown:?}; a pool's key not in it: {missing:?}"
    );
}

#[test]
fn the_shipped_proxy_conf_names_every_key_a_pool_sets() {
    let from = SHIPPED.split_once("# A pool may set its own ").unwrap().1;
    let paragraph = from.split_once("A backend is in one pool only").unwrap().0;
    let words: BTreeSet<&str> = paragraph
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '*'))
        .collect();
    let missing: Vec<&str> = (POOL_KEYS.iter().copied())
        .filter(|k| !words.contains(k))
        .filter(|k| !(k.starts_with("health_check_") && words.contains("health_check_*")))
        .collect();
    assert!(
        missing.is_empty(),
        "a pool's keys proxy.conf does not name: {missing:?}"
    );
}
