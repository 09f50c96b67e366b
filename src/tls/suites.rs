//! `tls_ciphers` and `tls_groups`: which cipher suites and key exchange
//! groups `tls_port` offers, and in which order (nginx's `ssl_ciphers`
//! and `ssl_ecdh_curve`, HAProxy's `ciphers`, `ciphersuites` and
//! `curves`). rustls offers AEAD suites with ECDHE alone, so what is left
//! to choose is among a few: a compliance rule that asks for AES-GCM
//! alone, or P-384, says so here.
//!
//! Suites are named as OpenSSL names them (`ECDHE-ECDSA-AES128-GCM-SHA256`,
//! `TLS_AES_128_GCM_SHA256`), as IANA does (`TLS_ECDHE_ECDSA_WITH_..`) or
//! as rustls does (`TLS13_AES_128_GCM_SHA256`), so that a list written
//! for nginx (Mozilla's, say) reads as it is: a name of a suite rustls
//! does not have (`DHE-RSA-AES128-GCM-SHA256`, a CBC suite) is skipped,
//! as OpenSSL skips a name it does not know. A TLS version none of whose
//! suites is named keeps all of its own, as OpenSSL's cipher list leaves
//! TLS 1.3's suites alone.

use rustls::crypto::{CryptoProvider, SupportedKxGroup};
use rustls::{CipherSuite, NamedGroup, SupportedCipherSuite};

/// The suites and groups chosen; `None`: all, in rustls's order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TlsChoice {
    suites: Option<Vec<CipherSuite>>,
    groups: Option<Vec<NamedGroup>>,
    /// `tls_prefer_server_ciphers`: the suite agreed is the first of ours
    /// the client offers, not the first of the client's we offer.
    pub prefer_own_order: bool,
}

/// Each suite of rustls's *ring* provider and the names OpenSSL gives it
/// (for TLS 1.3, IANA's).
const OPENSSL_NAMES: &[(CipherSuite, &str)] = &[
    (
        CipherSuite::TLS13_AES_256_GCM_SHA384,
        "TLS_AES_256_GCM_SHA384",
    ),
    (
        CipherSuite::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_128_GCM_SHA256",
    ),
    (
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_CHACHA20_POLY1305_SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-ECDSA-AES256-GCM-SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-ECDSA-AES128-GCM-SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-ECDSA-CHACHA20-POLY1305",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "ECDHE-RSA-AES256-GCM-SHA384",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "ECDHE-RSA-AES128-GCM-SHA256",
    ),
    (
        CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "ECDHE-RSA-CHACHA20-POLY1305",
    ),
];

/// Each group and its names: OpenSSL's, then the others in use.
const GROUP_NAMES: &[(NamedGroup, &[&str])] = &[
    (NamedGroup::X25519, &["X25519"]),
    (NamedGroup::secp256r1, &["prime256v1", "P-256", "secp256r1"]),
    (NamedGroup::secp384r1, &["secp384r1", "P-384"]),
];

/// Every suite and group of the *ring* provider, in its order.
const ALL_SUITES: &[SupportedCipherSuite] = rustls::crypto::ring::ALL_CIPHER_SUITES;
const ALL_GROUPS: &[&dyn SupportedKxGroup] = rustls::crypto::ring::ALL_KX_GROUPS;

/// Whether `name` (any case) names `suite`.
fn names(suite: SupportedCipherSuite, name: &str) -> bool {
    let id = suite.suite();
    let openssl = (OPENSSL_NAMES.iter())
        .find(|(s, _)| *s == id)
        .map(|(_, n)| *n);
    let rustls = id.as_str().unwrap_or_default();
    // IANA writes TLS 1.3's without rustls's `13`; TLS 1.2's are rustls's.
    let iana = rustls.replacen("TLS13_", "TLS_", 1);
    let named = |known: &str| known.eq_ignore_ascii_case(name);
    named(rustls) || named(&iana) || openssl.is_some_and(named)
}

impl TlsChoice {
    /// `tls_ciphers`: suites separated by `:` (OpenSSL's way), commas or
    /// blanks, in order of preference (ours with
    /// `tls_prefer_server_ciphers`; as a client, the order offered).
    /// Returns the choice, and the names
    /// skipped (no suite rustls has), to be warned of; a list that names
    /// none it has is an error. Empty: every suite.
    pub fn with_suites(self, list: &str) -> Result<(TlsChoice, Vec<String>), String> {
        let words: Vec<&str> = (list.split([':', ',', ' ', '\t']))
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Ok((
                TlsChoice {
                    suites: None,
                    ..self
                },
                Vec::new(),
            ));
        }
        let mut chosen: Vec<CipherSuite> = Vec::new();
        let mut skipped = Vec::new();
        for word in words {
            match ALL_SUITES.iter().find(|&&suite| names(suite, word)) {
                Some(suite) if !chosen.contains(&suite.suite()) => chosen.push(suite.suite()),
                Some(_) => {}
                None => skipped.push(word.to_string()),
            }
        }
        if chosen.is_empty() {
            let offered: Vec<&str> = OPENSSL_NAMES.iter().map(|(_, name)| *name).collect();
            return Err(format!(
                "names no cipher suite this build offers (rustls: ECDHE with AES-GCM or \
                 ChaCha20-Poly1305 alone, no keyword like HIGH or !aNULL): {}",
                offered.join(", ")
            ));
        }
        Ok((
            TlsChoice {
                suites: Some(chosen),
                ..self
            },
            skipped,
        ))
    }

    /// `tls_groups`: key exchange groups, as `tls_ciphers` separates
    /// suites (rustls agrees on the first of the client's order it
    /// offers). A name of no group this build has is
    /// an error (OpenSSL refuses one too). Empty: every group.
    pub fn with_groups(self, list: &str) -> Result<TlsChoice, String> {
        let words: Vec<&str> = (list.split([':', ',', ' ', '\t']))
            .filter(|w| !w.is_empty())
            .collect();
        if words.is_empty() {
            return Ok(TlsChoice {
                groups: None,
                ..self
            });
        }
        let mut chosen = Vec::new();
        for word in words {
            let found = (GROUP_NAMES.iter())
                .find(|(_, names)| names.iter().any(|n| n.eq_ignore_ascii_case(word)));
            match found {
                Some((group, _)) if !chosen.contains(group) => chosen.push(*group),
                Some(_) => {}
                None => {
                    return Err(format!(
                        "`{word}` is not a key exchange group this build offers: X25519, \
                         prime256v1 (P-256), secp384r1 (P-384)"
                    ))
                }
            }
        }
        Ok(TlsChoice {
            groups: Some(chosen),
            ..self
        })
    }

    /// Whether anything was chosen: the key is set.
    pub fn suites_chosen(&self) -> bool {
        self.suites.is_some()
    }

    pub fn groups_chosen(&self) -> bool {
        self.groups.is_some()
    }

    /// The *ring* provider with the suites and groups chosen, in the order
    /// chosen: those of a TLS version none of whose suites was named, all
    /// of its own, after the named ones.
    pub(crate) fn provider(&self) -> CryptoProvider {
        let mut provider = rustls::crypto::ring::default_provider();
        if let Some(chosen) = &self.suites {
            let version_named = |tls13: bool| {
                (ALL_SUITES.iter()).any(|s| chosen.contains(&s.suite()) && is_tls13(*s) == tls13)
            };
            let mut suites: Vec<SupportedCipherSuite> = (chosen.iter())
                .filter_map(|id| ALL_SUITES.iter().find(|s| s.suite() == *id).copied())
                .collect();
            for tls13 in [true, false] {
                if !version_named(tls13) {
                    suites.extend(ALL_SUITES.iter().filter(|s| is_tls13(**s) == tls13));
                }
            }
            provider.cipher_suites = suites;
        }
        if let Some(chosen) = &self.groups {
            provider.kx_groups = (chosen.iter())
                .filter_map(|name| ALL_GROUPS.iter().find(|g| g.name() == *name).copied())
                .collect();
        }
        provider
    }

    /// The suites and groups in force, for `check`: by rustls's names,
    /// those `$ssl_cipher` logs.
    pub fn describe(&self) -> (Vec<&'static str>, Vec<&'static str>) {
        let provider = self.provider();
        let suites = (provider.cipher_suites.iter())
            .filter_map(|s| s.suite().as_str())
            .collect();
        let groups = (provider.kx_groups.iter())
            .filter_map(|g| {
                let name = g.name();
                GROUP_NAMES
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, names)| names[0])
            })
            .collect();
        (suites, groups)
    }
}

fn is_tls13(suite: SupportedCipherSuite) -> bool {
    matches!(suite, SupportedCipherSuite::Tls13(_))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn suites(list: &str) -> Vec<&'static str> {
        let (choice, _) = TlsChoice::default().with_suites(list).unwrap();
        choice.describe().0
    }

    #[test]
    fn suites_are_named_as_openssl_iana_or_rustls_names_them_in_any_case() {
        for list in [
            "ECDHE-ECDSA-AES128-GCM-SHA256",
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "tls_ecdhe_ecdsa_with_aes_128_gcm_sha256",
        ] {
            assert_eq!(suites(list)[0], "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256");
        }
        for list in [
            "TLS_CHACHA20_POLY1305_SHA256",
            "TLS13_CHACHA20_POLY1305_SHA256",
        ] {
            assert_eq!(suites(list)[0], "TLS13_CHACHA20_POLY1305_SHA256");
        }
    }

    #[test]
    fn the_suites_named_go_first_in_their_order_and_an_unnamed_version_keeps_all_its_own() {
        let listed = suites("ECDHE-RSA-CHACHA20-POLY1305:ECDHE-ECDSA-AES256-GCM-SHA384");
        assert_eq!(
            listed,
            [
                "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256",
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS13_AES_256_GCM_SHA384",
                "TLS13_AES_128_GCM_SHA256",
                "TLS13_CHACHA20_POLY1305_SHA256",
            ]
        );
        // TLS 1.3's named: TLS 1.2 keeps every one of its own, after.
        let listed = suites("TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384");
        assert_eq!(
            &listed[..2],
            ["TLS13_AES_128_GCM_SHA256", "TLS13_AES_256_GCM_SHA384"]
        );
        assert_eq!(listed.len(), 2 + 6);
        assert!(!listed.contains(&"TLS13_CHACHA20_POLY1305_SHA256"));
    }

    #[test]
    fn a_list_written_for_openssl_keeps_what_rustls_has_and_says_what_it_skipped() {
        // Mozilla's "intermediate" list for nginx.
        let mozilla = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:\
                       ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:\
                       ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:\
                       DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:\
                       DHE-RSA-CHACHA20-POLY1305";
        let (choice, skipped) = TlsChoice::default().with_suites(mozilla).unwrap();
        assert_eq!(
            skipped,
            [
                "DHE-RSA-AES128-GCM-SHA256",
                "DHE-RSA-AES256-GCM-SHA384",
                "DHE-RSA-CHACHA20-POLY1305"
            ]
        );
        assert_eq!(choice.describe().0.len(), 9);
        // Nothing it has: refused, with what it has.
        let e = TlsChoice::default()
            .with_suites("HIGH:!aNULL:!MD5")
            .unwrap_err();
        assert!(e.contains("ECDHE-ECDSA-AES128-GCM-SHA256"), "{e}");
        // Empty: every suite, as without the key.
        let (all, _) = TlsChoice::default().with_suites(" ").unwrap();
        assert_eq!(all, TlsChoice::default());
        assert!(!all.suites_chosen());
    }

    #[test]
    fn groups_are_named_as_openssl_or_nist_names_them_and_an_unknown_one_refused() {
        let choice = TlsChoice::default()
            .with_groups("P-384:prime256v1 x25519 secp384r1")
            .unwrap();
        assert_eq!(choice.describe().1, ["secp384r1", "prime256v1", "X25519"]);
        let e = TlsChoice::default()
            .with_groups("X25519MLKEM768")
            .unwrap_err();
        assert!(e.contains("`X25519MLKEM768`") && e.contains("P-384"), "{e}");
        let (suites_too, _) = choice
            .clone()
            .with_suites("TLS_AES_128_GCM_SHA256")
            .unwrap();
        assert_eq!(
            suites_too.describe().1,
            choice.describe().1,
            "one leaves the other"
        );
    }
}
