//! The `acme_*` keys, as the loader reads them: the names, the server,
//! the account's contact and binding, and how names are proven.

use std::path::PathBuf;
use std::time::Duration;

use super::dns_update::{DnsUpdate, TsigKey};
use super::http;

/// The `acme_*` keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AcmeSettings {
    /// The names of each certificate, as written: `acme_domains`'
    /// groups, separated by `;`.
    pub certificates: Vec<Vec<String>>,
    /// The directory's URL, checked by [`http::Url::parse`].
    pub directory: String,
    pub email: Option<String>,
    pub state_dir: PathBuf,
    /// Authorities trusted for an `https` directory instead of the
    /// system's.
    pub directory_ca: Option<PathBuf>,
    /// `acme_eab_kid` and `acme_eab_hmac_key` (both or neither: the
    /// loader checks): External Account Binding, the key ID and MAC key
    /// a CA gives for an account made on its site, which its ACME
    /// accounts must be bound to (ZeroSSL, Google Trust Services).
    pub eab_kid: Option<String>,
    pub eab_mac_key: Option<MacKey>,
    /// `acme_challenge`: how each name is proven.
    pub challenge: Challenge,
    /// `acme_dns_server`, `acme_dns_zone` and `acme_dns_key`: where and
    /// with which key `dns-01` records are written (all three with
    /// `dns-01`, none without: the loader checks).
    pub dns_server: Option<String>,
    pub dns_zones: Vec<String>,
    pub dns_key: Option<TsigKey>,
    /// `acme_dns_wait`: how long after its record is written a name's
    /// validation is asked for, for the zone's other servers to have it.
    pub dns_wait: Duration,
}

/// How the ACME server is shown that the proxy answers for a name.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Challenge {
    /// A token asked for over HTTP, on port 80 of the name (RFC 8555
    /// §8.3): `port`.
    #[default]
    Http01,
    /// A TLS handshake offering `acme-tls/1`, on port 443 of the name
    /// (RFC 8737): `tls_port`.
    TlsAlpn01,
    /// A TXT record at `_acme-challenge.<name>` (RFC 8555 §8.4), written
    /// by a DNS update: the one challenge that proves a wildcard.
    Dns01,
}

impl Challenge {
    pub fn parse(v: &str) -> Result<Challenge, String> {
        match v.trim().to_ascii_lowercase().as_str() {
            "http-01" => Ok(Challenge::Http01),
            "tls-alpn-01" => Ok(Challenge::TlsAlpn01),
            "dns-01" => Ok(Challenge::Dns01),
            _ => Err(format!("`{v}`: http-01, tls-alpn-01 or dns-01")),
        }
    }

    /// As ACME names it.
    pub fn name(self) -> &'static str {
        match self {
            Challenge::Http01 => "http-01",
            Challenge::TlsAlpn01 => "tls-alpn-01",
            Challenge::Dns01 => "dns-01",
        }
    }
}

/// A MAC key, which `Debug` does not show.
#[derive(Clone, PartialEq, Eq)]
pub struct MacKey(pub Vec<u8>);

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MacKey(..)")
    }
}

impl AcmeSettings {
    /// The folder this directory's account and certificate are kept in.
    pub fn folder(&self) -> PathBuf {
        let folder = match http::Url::parse(&self.directory) {
            Ok(url) => {
                let host = url.host.trim_start_matches('[').trim_end_matches(']');
                format!("{}_{}", host.replace(':', "_"), url.port)
            }
            Err(_) => "unknown".to_string(),
        };
        self.state_dir.join(folder)
    }

    /// Where `dns-01` records are written, when the three keys are set.
    pub fn dns_update(&self) -> Option<DnsUpdate> {
        Some(DnsUpdate {
            server: self.dns_server.clone()?,
            zones: Some(self.dns_zones.clone()).filter(|z| !z.is_empty())?,
            key: self.dns_key.clone()?,
        })
    }

    /// The key ID and MAC key accounts are bound with, when both are set.
    pub(super) fn binding(&self) -> Option<(&str, &[u8])> {
        Some((
            self.eab_kid.as_deref()?,
            self.eab_mac_key.as_ref()?.0.as_slice(),
        ))
    }
}

/// `acme_eab_hmac_key`: base64url, as CAs hand it out (padding, and the
/// standard alphabet, taken too).
pub fn parse_mac_key(v: &str) -> Result<Option<MacKey>, String> {
    use base64::Engine as _;
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let url_safe = v.trim_end_matches('=').replace('+', "-").replace('/', "_");
    match base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(url_safe) {
        Ok(key) if !key.is_empty() => Ok(Some(MacKey(key))),
        _ => Err("not a base64url key (as the CA gives it with the key ID)".into()),
    }
}

/// Let's Encrypt's limit of names on one certificate.
const MAX_DOMAINS: usize = 100;

/// `acme_domains`: the names of each certificate, its host names comma
/// separated, the certificates separated by `;`: each name once in all,
/// at most [`MAX_DOMAINS`] on a certificate; lower-cased, as
/// certificates and SNI compare them.
pub fn parse_domains(v: &str) -> Result<Vec<Vec<String>>, String> {
    let mut certificates: Vec<Vec<String>> = Vec::new();
    if v.trim().is_empty() {
        return Ok(certificates);
    }
    for group in v.split(';') {
        if group.trim().is_empty() {
            return Err("an empty certificate: `;` separates certificates' names".into());
        }
        let names = parse_names(group, &certificates)?;
        certificates.push(names);
    }
    Ok(certificates)
}

/// One certificate's names, none of them on an earlier one.
fn parse_names(v: &str, earlier: &[Vec<String>]) -> Result<Vec<String>, String> {
    let mut domains: Vec<String> = Vec::new();
    for name in v.split(',').map(str::trim) {
        let name = name.to_ascii_lowercase();
        host_name(name.strip_prefix("*.").unwrap_or(&name)).map_err(|e| format!("`{name}`{e}"))?;
        if domains.contains(&name) || earlier.iter().flatten().any(|n| *n == name) {
            return Err(format!("`{name}` is named twice"));
        }
        domains.push(name);
    }
    if domains.len() > MAX_DOMAINS {
        return Err(format!(
            "{} names: at most {MAX_DOMAINS} go on one certificate (`;` begins another)",
            domains.len()
        ));
    }
    Ok(domains)
}

/// Whether `name` is a host name; what it is instead, after its name.
fn host_name(name: &str) -> Result<(), &'static str> {
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(": an address, not a host name");
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if name.len() > 253 || !name.split('.').all(label_ok) {
        return Err(" is not a host name");
    }
    Ok(())
}

/// `acme_dns_zone`: zones' names, comma separated, each once;
/// lower-cased, without their final dots.
pub fn parse_zones(v: &str) -> Result<Vec<String>, String> {
    let mut zones: Vec<String> = Vec::new();
    if v.trim().is_empty() {
        return Ok(zones);
    }
    for zone in v.split(',') {
        let zone = zone.trim().trim_end_matches('.').to_ascii_lowercase();
        host_name(&zone).map_err(|e| format!("`{zone}`{e}"))?;
        if zones.contains(&zone) {
            return Err(format!("`{zone}` is named twice"));
        }
        zones.push(zone);
    }
    Ok(zones)
}

/// `acme_dns_server`: `host:port`, or a host alone for port 53.
pub fn parse_dns_server(v: &str) -> Result<Option<String>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    if let Ok(addr) = v.parse::<std::net::SocketAddr>() {
        return Ok(Some(addr.to_string()));
    }
    if let Ok(ip) = v.trim_start_matches('[').trim_end_matches(']').parse() {
        return Ok(Some(std::net::SocketAddr::new(ip, 53).to_string()));
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|&p| p != 0)),
        None => (v, Some(53)),
    };
    match (host_name(host), port) {
        (Ok(()), Some(port)) => Ok(Some(format!("{host}:{port}"))),
        _ => Err(format!(
            "`{v}`: the zone's primary server as host:port (port 53 unless given)"
        )),
    }
}

/// `acme_email`: one address, or none.
pub fn parse_email(v: &str) -> Result<Option<String>, String> {
    let v = v.trim();
    if v.is_empty() {
        return Ok(None);
    }
    let well_formed = v.split_once('@').is_some_and(|(user, host)| {
        !user.is_empty() && host.contains('.') && !host.starts_with('.') && !host.ends_with('.')
    }) && !v
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control() || b",<>\"".contains(&b));
    match well_formed {
        true => Ok(Some(v.to_string())),
        false => Err(format!(
            "`{v}` is not an email address (one, as ops@example.com)"
        )),
    }
}

#[cfg(test)]
impl AcmeSettings {
    /// shop.test from `directory`, kept in /var/lib/inverso/acme.
    pub(crate) fn example(directory: &str) -> AcmeSettings {
        AcmeSettings {
            certificates: vec![vec!["shop.test".into()]],
            directory: directory.into(),
            email: None,
            state_dir: PathBuf::from("/var/lib/inverso/acme"),
            directory_ca: None,
            eab_kid: None,
            eab_mac_key: None,
            challenge: Challenge::Http01,
            dns_server: None,
            dns_zones: Vec::new(),
            dns_key: None,
            dns_wait: Duration::from_secs(30),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acme::LETS_ENCRYPT;

    fn settings(directory: &str) -> AcmeSettings {
        AcmeSettings::example(directory)
    }

    #[test]
    fn domains_are_host_names_each_once() {
        assert_eq!(
            parse_domains("Shop.Example, www.shop.example").unwrap(),
            [["shop.example", "www.shop.example"]]
        );
        assert_eq!(
            parse_domains("shop.example, www.shop.example; blog.example").unwrap(),
            [
                vec!["shop.example", "www.shop.example"],
                vec!["blog.example"]
            ]
        );
        assert!(parse_domains("").unwrap().is_empty());
        assert_eq!(
            parse_domains("*.Shop.example, shop.example").unwrap(),
            [["*.shop.example", "shop.example"]]
        );
        for (bad, says) in [
            ("*.10.0.0.1", "an address"),
            ("*.*.shop.example", "not a host name"),
            ("www.*.shop.example", "not a host name"),
            ("10.0.0.1", "an address"),
            ("::1", "an address"),
            ("shop.example, shop.example", "twice"),
            ("shop..example", "not a host name"),
            ("-shop.example", "not a host name"),
            ("shop_example.com", "not a host name"),
            ("shop.example,", "not a host name"),
            ("shop.example; www.shop.example, Shop.example", "twice"),
            ("shop.example;", "an empty certificate"),
            (";shop.example", "an empty certificate"),
        ] {
            let e = parse_domains(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        let many: Vec<String> = (0..101).map(|i| format!("h{i}.example")).collect();
        assert!(parse_domains(&many.join(","))
            .unwrap_err()
            .contains("at most 100"));
        let (first, second) = many.split_at(50);
        let two = format!("{}; {}", first.join(","), second.join(","));
        assert_eq!(parse_domains(&two).unwrap().len(), 2, "100 on each");
    }

    #[test]
    fn an_email_is_one_address() {
        assert_eq!(
            parse_email(" ops@shop.example ").unwrap().as_deref(),
            Some("ops@shop.example")
        );
        assert_eq!(parse_email("").unwrap(), None);
        for bad in [
            "ops",
            "ops@",
            "@shop.example",
            "ops@localhost",
            "a@b.example, c@d.example",
            "a b@c.example",
        ] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_dns_server_is_host_and_port_and_a_zone_a_name() {
        for (v, taken) in [
            ("ns1.shop.test", "ns1.shop.test:53"),
            ("ns1.shop.test:5353", "ns1.shop.test:5353"),
            ("127.0.0.1", "127.0.0.1:53"),
            ("127.0.0.1:5353", "127.0.0.1:5353"),
            ("[::1]", "[::1]:53"),
            ("::1", "[::1]:53"),
            ("[::1]:5353", "[::1]:5353"),
        ] {
            assert_eq!(parse_dns_server(v).unwrap().as_deref(), Some(taken), "{v}");
        }
        assert_eq!(parse_dns_server(" ").unwrap(), None);
        for bad in [
            "ns1.shop.test:0",
            "ns1.shop.test:x",
            "ns1 shop:53",
            "http://ns1:53",
        ] {
            assert!(parse_dns_server(bad).is_err(), "{bad}");
        }
        assert_eq!(
            parse_zones("Shop.Test., blog.test").unwrap(),
            ["shop.test", "blog.test"]
        );
        assert!(parse_zones("").unwrap().is_empty());
        assert!(parse_zones("shop..test").is_err());
        assert!(parse_zones("shop.test,").is_err());
        assert!(parse_zones("shop.test, Shop.test")
            .unwrap_err()
            .contains("twice"));
    }

    #[test]
    fn each_server_has_a_folder_of_its_own() {
        let production = settings(LETS_ENCRYPT).folder();
        let staging = settings("https://acme-staging-v02.api.letsencrypt.org/directory").folder();
        assert_eq!(
            production,
            PathBuf::from("/var/lib/inverso/acme/acme-v02.api.letsencrypt.org_443")
        );
        assert_ne!(production, staging);
        let local = settings("http://[::1]:14000/dir").folder();
        assert_eq!(local, PathBuf::from("/var/lib/inverso/acme/__1_14000"));
    }

    #[test]
    fn a_name_and_a_list_may_be_as_long_as_allowed_and_no_longer() {
        // 253 characters: three labels of 63 and one of 61, dotted.
        let label = "a".repeat(63);
        let longest = format!("{label}.{label}.{label}.{}", "b".repeat(61));
        assert_eq!(longest.len(), 253);
        assert_eq!(parse_domains(&longest).unwrap(), [[longest.clone()]]);
        let over = format!("{label}.{label}.{label}.{}", "b".repeat(62));
        assert!(parse_domains(&over)
            .unwrap_err()
            .contains("not a host name"));
        let hundred: Vec<String> = (0..100).map(|i| format!("h{i}.example")).collect();
        assert_eq!(parse_domains(&hundred.join(",")).unwrap()[0].len(), 100);
    }

    #[test]
    fn an_email_has_no_list_or_angle_brackets_or_control_bytes() {
        for bad in [
            "a@b.example,c@d.example",
            "<ops@shop.example>",
            "\"ops\"@shop.example",
            "ops\u{1}@shop.example",
            "ops@.example",
            "ops@example.",
        ] {
            assert!(parse_email(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_challenge_is_one_of_three_and_named_as_acme_names_it() {
        assert_eq!(Challenge::parse(" HTTP-01 ").unwrap(), Challenge::Http01);
        assert_eq!(
            Challenge::parse("tls-alpn-01").unwrap(),
            Challenge::TlsAlpn01
        );
        assert_eq!(Challenge::parse("dns-01").unwrap(), Challenge::Dns01);
        assert!(Challenge::parse("dns-02").unwrap_err().contains("dns-01"));
        assert_eq!(Challenge::Http01.name(), "http-01");
        assert_eq!(Challenge::TlsAlpn01.name(), "tls-alpn-01");
        assert_eq!(Challenge::Dns01.name(), "dns-01");
    }

    #[test]
    fn a_mac_key_is_base64url_or_standard_and_not_shown() {
        // "secret", in both alphabets, padded or not.
        for written in ["c2VjcmV0", " c2VjcmV0 "] {
            assert_eq!(
                parse_mac_key(written).unwrap(),
                Some(MacKey(b"secret".to_vec()))
            );
        }
        // 0xfb 0xff: `-_` in base64url, `+/` in the standard alphabet.
        assert_eq!(
            parse_mac_key("-_8").unwrap(),
            Some(MacKey(vec![0xfb, 0xff]))
        );
        assert_eq!(
            parse_mac_key("+/8=").unwrap(),
            Some(MacKey(vec![0xfb, 0xff]))
        );
        assert_eq!(parse_mac_key("  ").unwrap(), None);
        assert!(parse_mac_key("not base64!").is_err());
        assert!(parse_mac_key("=").is_err(), "an empty key");
        let shown = format!("{:?}", MacKey(b"secret".to_vec()));
        assert_eq!(shown, "MacKey(..)");
        let mut with = settings(LETS_ENCRYPT);
        assert_eq!(with.binding(), None);
        with.eab_kid = Some("kid-1".into());
        assert_eq!(with.binding(), None, "a key ID alone");
        with.eab_mac_key = Some(MacKey(b"secret".to_vec()));
        assert_eq!(with.binding(), Some(("kid-1", &b"secret"[..])));
        with.eab_kid = None;
        assert_eq!(with.binding(), None, "a MAC key alone");
    }

    proptest::proptest! {
        /// Whatever a configuration holds: a list of host names or an
        /// error, never a panic; what is taken is lower case, each once.
        #[test]
        fn any_domains_value_is_taken_or_refused(v in "[a-zA-Z0-9.*:,; _-]{0,80}") {
            if let Ok(certificates) = parse_domains(&v) {
                let domains: Vec<&String> = certificates.iter().flatten().collect();
                for d in &domains {
                    proptest::prop_assert_eq!(*d, &d.to_ascii_lowercase());
                    proptest::prop_assert_eq!(domains.iter().filter(|o| *o == d).count(), 1);
                }
                proptest::prop_assert!(certificates.iter().all(|names| !names.is_empty()));
            }
        }
    }
}
