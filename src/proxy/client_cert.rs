//! A client's certificate, for its backend: RFC 9440's `Client-Cert` and
//! `Client-Cert-Chain` fields, which the proxy writes for a client that
//! showed one on `tls_port` (`tls_verify_client`), and takes from nobody
//! (not even a proxy in front, which may pass on what its own clients
//! wrote: most pass on fields they do not know).

use crate::http::Headers;
use crate::tls::client_cert::ClientCertificate;

/// Puts the request's `Client-Cert` and `Client-Cert-Chain` right: the
/// certificate the client showed on this connection, if any, and
/// otherwise none, whatever the request said.
pub(super) fn put_fields(headers: &mut Headers, shown: Option<&ClientCertificate>) {
    headers.remove("client-cert");
    headers.remove("client-cert-chain");
    if let Some(shown) = shown {
        headers.push("Client-Cert", &*shown.byte_sequence);
        if let Some(chain) = &shown.chain {
            headers.push("Client-Cert-Chain", &**chain);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::CertificateDer;

    fn fields(headers: &Headers) -> Vec<(String, String)> {
        headers
            .iter()
            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
            .collect()
    }

    #[test]
    fn a_certificate_shown_replaces_what_the_client_wrote_and_none_removes_it() {
        let own = CertificateDer::from(vec![1u8, 2, 3]);
        let issuer = CertificateDer::from(vec![4u8, 5]);
        let shown = ClientCertificate::of(&[own.clone(), issuer]).unwrap();
        // SHA-1 of 01 02 03.
        assert_eq!(
            &*shown.fingerprint,
            "7037807198c22a7d2b0807371d763779a84fdfcf"
        );
        let written = || {
            let mut h = Headers::default();
            h.push("Client-Cert", ":Zm9yZ2Vk:");
            h.push("Client-Cert-Chain", ":Zm9yZ2Vk:");
            h.push("Accept", "*/*");
            h
        };
        let mut h = written();
        put_fields(&mut h, Some(&shown));
        assert_eq!(h.get("client-cert"), Some(&b":AQID:"[..]));
        assert_eq!(h.get("client-cert-chain"), Some(&b":BAU=:"[..]));
        // No intermediates sent: no chain, not even the client's.
        let alone = ClientCertificate::of(&[own]).unwrap();
        let mut h = written();
        put_fields(&mut h, Some(&alone));
        assert_eq!(h.get("client-cert"), Some(&b":AQID:"[..]));
        assert_eq!(h.get("client-cert-chain"), None);
        // None shown: what the request said goes.
        let mut h = written();
        put_fields(&mut h, None);
        assert_eq!(fields(&h), [("Accept".to_string(), "*/*".to_string())]);
    }
}
